// The crew app's service worker: the app shell is cached so the app opens with no signal; basemap tiles
// are kept as they are fetched (cache first) so the map of the area already seen still draws offline.
// API calls and websockets always go to the network.
const SHELL = "crew-shell-v1";
const TILES = "crew-tiles-v1";
const SHELL_FILES = [
  "/crew/",
  "/crew/crew.js",
  "/crew/crew.css",
  "/crew/manifest.webmanifest",
  "/crew/icon.svg",
  "/crew/icon-192.png",
  "/static/shared/api.js",
  "/static/shared/live.js",
  "/static/shared/i18n.js",
  "/static/shared/basemap.js",
  "/static/shared/base.css",
  "/static/vendor/leaflet/leaflet.js",
  "/static/vendor/leaflet/leaflet.css",
];
const MAX_TILES = 3000;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(SHELL_FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== SHELL && k !== TILES).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

async function trimTiles() {
  const cache = await caches.open(TILES);
  const keys = await cache.keys();
  for (let i = 0; i < keys.length - MAX_TILES; i++) await cache.delete(keys[i]);
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname.startsWith("/api/v1/basemap/") || url.pathname === "/api/v1/region") {
    event.respondWith(
      caches.open(TILES).then(async (cache) => {
        const hit = url.pathname === "/api/v1/region" ? null : await cache.match(event.request);
        if (hit) return hit;
        try {
          const r = await fetch(event.request);
          if (r.ok) cache.put(event.request, r.clone()).then(trimTiles);
          return r;
        } catch (err) {
          const stale = await cache.match(event.request);
          if (stale) return stale;
          throw err;
        }
      }),
    );
    return;
  }
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/ws/")) return;
  // the shell: the network when there is one (a new release shows at once), the cache when there is none
  event.respondWith(
    fetch(event.request)
      .then((r) => {
        if (r.ok) {
          const copy = r.clone();
          caches.open(SHELL).then((c) => c.put(event.request, copy));
        }
        return r;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true }).then((hit) => hit || Response.error())),
  );
});
