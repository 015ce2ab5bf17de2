// sw.js - the app's service worker: keeps the app shell (the page, its
// modules, styles, icon) and the library bundles (/vendor/tabsync.js and
// /vendor/tabsync.dev.js) in a cache, so a reload while offline still
// opens the app; the changes made offline wait in IndexedDB (the
// library's queue) and go out when the network is back. Network first:
// online, every load gets the current files (no stale app after an
// update); the cache answers only when the network does not. The sync
// itself (/socket.io/) and the token endpoint (/api/) never touch it.
const CACHE = 'tabsync-app-v1';
const SHELL = [
  '/', '/app.js', '/style.css', '/icon.svg', '/manifest.webmanifest',
  '/app/util.js', '/app/identity.js', '/app/merge.js', '/app/notes.js', '/app/checklist.js',
  '/app/people.js', '/app/sync.js', '/app/settings.js',
  '/vendor/tabsync.js', '/vendor/tabsync.dev.js',
];

self.addEventListener('install', (event) => {
  // one by one: a file missing (say, a bundle not built yet) must not stop
  // the others from being cached
  event.waitUntil(caches.open(CACHE)
    .then((c) => Promise.all(SHELL.map((u) => c.add(new Request(u, { cache: 'reload' })).catch(() => {}))))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('tabsync-app-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function cacheable(url) {
  if (url.origin !== self.location.origin) return false;
  if (url.pathname.startsWith('/socket.io/') || url.pathname.startsWith('/api/')) return false;
  return url.pathname === '/' || url.pathname === '/index.html' || SHELL.includes(url.pathname) ||
    url.pathname.startsWith('/app/');
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (!cacheable(url)) return;
  // the app's one page answers every navigation to it (?build=prod, #w=…)
  const key = req.mode === 'navigate' || url.pathname === '/index.html' ? '/' : url.pathname;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const res = await fetch(req);
      if (res.ok) await cache.put(key, res.clone());
      return res;
    } catch (err) {
      const hit = await cache.match(key);
      if (hit) return hit;
      throw err;
    }
  })());
});
