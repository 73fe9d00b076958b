/* Board service worker: signage media and board assets are served from a local cache, so playlists play offline.
   Registered only where the browser allows it (https or localhost); elsewhere the appliance-side cache does the job. */
const CACHE = "qms-board-v1";
const CACHED = ["/board/media/", "/board/remote", "/board/static/"];

self.addEventListener("install", (event) => { self.skipWaiting(); });
self.addEventListener("activate", (event) => { event.waitUntil(self.clients.claim()); });

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!CACHED.some((prefix) => url.pathname.startsWith(prefix))) return;  // live data never comes from a cache
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(event.request);
    const fresh = fetch(event.request).then((response) => {
      if (response.ok && response.status === 200) cache.put(event.request, response.clone());
      return response;
    });
    if (hit) { fresh.catch(() => {}); return hit; }  // cache first, refreshed in the background
    return fresh;
  })());
});
