// The ticket status page's service worker (scope /t/): shows the hub's pushes (US-NOTIF-008).
// A push carries {title, body, tag}; one tag per ticket, so "called" replaces an unread "3 to go".
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (_) {
    data = { body: event.data ? event.data.text() : "" };
  }
  const options = { body: data.body || "", icon: "/t/status-icon.svg", requireInteraction: true };
  if (data.tag) {
    options.tag = data.tag;
    options.renotify = true;
  }
  event.waitUntil(self.registration.showNotification(data.title || "Antrean / Queue", options));
});

// A tap brings the status page forward (or opens the ticket's page the push named).
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      if (windows.length) return windows[0].focus();
      return undefined;
    }),
  );
});
