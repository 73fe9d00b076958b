// "Beri tahu saya / Notify me" on the ticket status page. The section stays hidden unless the hub answers with the
// tenant's VAPID key (the tenant offers web push). A click asks for notification permission, registers the service
// worker (/t/push-sw.js, scope /t/), subscribes with that key and posts the subscription to the hub. The page
// reloads every 15 s, so a browser that subscribed remembers it (localStorage) and only shows "on". The hub's refusals
// are problem+json with a `code`: `ticket_finished` hides the section, `too_many_devices` says so.
(async () => {
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
  let offer;
  try {
    const answer = await fetch(base + "/push", { cache: "no-store" });
    if (!answer.ok) return; // no web push for this tenant, or nothing left to be told about
    offer = await answer.json();
  } catch (_) {
    return;
  }
  if (!offer.open) return;
  box.hidden = false;
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
      const subscription =
        (await registration.pushManager.getSubscription()) ||
        (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key(offer.publicKey) }));
      const answer = await fetch(base + "/push", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(subscription),
      });
      if (!answer.ok) {
        // A refusal is problem+json: act on its code (the ticket finished meanwhile, or has enough devices).
        const problem = await answer.json().catch(() => ({}));
        if (problem.code === "ticket_finished") {
          box.hidden = true;
          return;
        }
        if (problem.code === "too_many_devices") {
          button.hidden = true;
          say("full");
          return;
        }
        throw new Error("hub answered " + answer.status + " " + (problem.code || ""));
      }
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
