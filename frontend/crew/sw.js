// The crew app's service worker: the app shell is cached so the app opens with no signal; basemap tiles
// are kept as they are fetched (stale-while-revalidate) so the map of the area already seen draws offline.
// API calls and websockets always go to the network.
const SHELL = "crew-shell-v2";
const TILES = "crew-tiles-v2";
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
  "/static/shared/sound.js",
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

const NETWORK_WAIT_MS = 3000; // on a weak signal the app opens from the cache instead of waiting longer
let putsSinceTrim = 0;

async function trimTiles() {
  const cache = await caches.open(TILES);
  const keys = await cache.keys();
  for (let i = 0; i < keys.length - MAX_TILES; i++) await cache.delete(keys[i]);
}

// tiles and the region: the cached copy at once, refreshed from the network behind it (the road data changes
// only with a new graph; the next view shows it)
async function tile(event) {
  const cache = await caches.open(TILES);
  const hit = await cache.match(event.request);
  const refresh = fetch(event.request).then(async (r) => {
    if (r.ok) {
      await cache.put(event.request, r.clone());
      if (++putsSinceTrim >= 100) {
        putsSinceTrim = 0;
        await trimTiles();
      }
    }
    return r;
  });
  if (hit) {
    event.waitUntil(refresh.catch(() => {}));
    return hit;
  }
  return refresh;
}

// the shell: the network when it answers soon (a new release shows at once), else the cache
async function shell(event) {
  const cache = await caches.open(SHELL);
  const network = fetch(event.request).then(async (r) => {
    if (r.ok) await cache.put(event.request, r.clone());
    return r;
  });
  event.waitUntil(network.catch(() => {}));
  const timeout = new Promise((resolve) => setTimeout(resolve, NETWORK_WAIT_MS, null));
  const first = await Promise.race([network.catch(() => null), timeout]);
  if (first) return first;
  const hit = await cache.match(event.request, { ignoreSearch: true });
  if (hit) return hit;
  return network; // nothing cached: wait for the network after all
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname.startsWith("/api/v1/basemap/") || url.pathname === "/api/v1/region") {
    event.respondWith(tile(event));
    return;
  }
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/ws/")) return;
  event.respondWith(shell(event));
});
