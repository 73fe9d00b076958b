// "Beri tahu saya / Notify me" on the ticket status page: asks for notification permission, registers the service
// worker (/t/push-sw.js, scope /t/), subscribes with the tenant's VAPID key and posts the subscription to the hub.
// The page reloads every 15 s, so a browser that subscribed remembers it (localStorage) and only shows "on".
(() => {
  const box = document.getElementById("notify");
  if (!box) return;
  const button = box.querySelector("button");
  const note = box.querySelector(".notify-state");
  const base = location.pathname.replace(/\/$/, "");
  const remembered = "qms-notify:" + base;
  const say = (key) => {
    note.textContent = box.dataset[key];
    note.hidden = false;
    note.dataset.state = key;
  };
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say("unsupported");
    return;
  }
  if (Notification.permission === "denied") {
    say("denied");
    return;
  }
  if (Notification.permission === "granted" && localStorage.getItem(remembered)) {
    say("on");
    return;
  }
  const key = (text) => {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  };
  async function subscribe() {
    button.disabled = true;
    try {
      if ((await Notification.requestPermission()) !== "granted") {
        button.hidden = true;
        say("denied");
        return;
      }
      const registration = await navigator.serviceWorker.register("/t/push-sw.js", { scope: "/t/" });
      const { publicKey } = await (await fetch(base + "/push", { cache: "no-store" })).json();
      const subscription =
        (await registration.pushManager.getSubscription()) ||
        (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key(publicKey) }));
      const answer = await fetch(base + "/push", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(subscription),
      });
      if (!answer.ok) throw new Error("hub answered " + answer.status);
      localStorage.setItem(remembered, "1");
      button.hidden = true;
      say("on");
    } catch (error) {
      console.warn("notify me:", error && error.name, error && error.message);
      button.disabled = false;
      say("failed");
    }
  }
  button.addEventListener("click", subscribe);
  button.hidden = false;
})();
