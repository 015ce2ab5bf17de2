// app.js - starts the app at /: picks the build (development:
// /vendor/tabsync.dev.js with the debug console; `?build=prod`:
// /vendor/tabsync.js without it), the workspace and user from the address,
// makes the @tabsync/client, wires the panels (app/*.js) to its events and
// registers the service worker that lets a reload work offline.
// window.tabsyncApp is for the tests and for poking around in DevTools.
import { $ } from './app/util.js';
import { fromHash, loadDevice, tokenSource } from './app/identity.js';
import { createNotes } from './app/notes.js';
import { createChecklist } from './app/checklist.js';
import { createPeople } from './app/people.js';
import { createSync, describe } from './app/sync.js';
import { createSettings, applyCachedLook } from './app/settings.js';

applyCachedLook();

const build = new URLSearchParams(location.search).get('build') === 'prod' ? 'prod' : 'dev';
const { workspace, user } = fromHash();
const root = $('main');
const phone = window.matchMedia('(max-width: 760px)');

// Another workspace is another session, client and database: start clean.
window.addEventListener('hashchange', () => location.reload());

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((err) => {
    // the app works without it; only an offline reload needs it
    console.warn('service worker not registered:', err.message);
  });
}

function loadError(msg) {
  const b = $('load-error');
  b.hidden = false;
  b.textContent = msg;
  root.dataset.ready = 'error';
}

let lib = null;
try {
  lib = await import(build === 'prod' ? '/vendor/tabsync.js' : '/vendor/tabsync.dev.js');
} catch (err) {
  loadError(`Could not load the tabsync library (${build === 'prod' ? '/vendor/tabsync.js' : '/vendor/tabsync.dev.js'}: ${err.message}). ` +
    'Build it with `node clients/js/build.mjs` (make does) and reload.');
}

if (lib) start(lib);

function start({ createClient, mountDebugConsole }) {
  const device = loadDevice();
  // the modules are made below; the library may ask about a conflict only
  // after connecting, by which time they exist
  let notes = null;
  const ts = createClient({
    token: tokenSource({ user, workspace, device }),
    device: { id: device.id, fingerprint: device.fingerprint, type: device.type },
    elect: { scopes: ['session'], scores: true },
    name: `app-${workspace}`,
    conflicts: (c) => (notes ? notes.decide(c) : 'rebase'),
  });

  let presenceState = { name: device.name, type: device.type, visible: document.visibilityState === 'visible', note: null };
  const app = {
    ts, device, workspace, user, build,
    conflicts: [], // merges this tab made (for the tests and DevTools)
    key: (name) => `tabsync-app.${workspace}.${name}`,
    state: () => ts.state || {},
    confirmedVer: () => ts.confirmed?.ver ?? 0,
    // the document is known (cached or synced): only then may a note that
    // is not in it count as deleted
    docKnown: () => root.dataset.ready === 'true' || (ts.confirmed?.ver ?? 0) > 0,
    isPhone: () => phone.matches,
    change(ops, opts) {
      const label = describe(ops, ts.state || {});
      let ch;
      try {
        ch = ts.update(ops, opts);
      } catch (err) {
        sync.toast({ kind: 'error', title: 'That change could not be made', body: err.message });
        return null;
      }
      sync.track(ch, label);
      return ch;
    },
    presence(patch) {
      presenceState = { ...presenceState, ...patch };
      try { ts.presence.set(presenceState); } catch { /* offline: sent at the next connect */ }
    },
    toast: (t) => sync.toast(t),
    announce: (text) => sync.announce(text),
    show,
    renderAll: () => schedule('all'),
  };
  const sync = createSync(app);
  notes = createNotes(app);
  app.notes = notes;
  const checklist = createChecklist(app);
  const people = createPeople(app);
  const settings = createSettings(app);

  // ---- rendering: batched per task, by part
  const due = new Set();
  let timer = null;
  function schedule(...parts) {
    for (const p of parts) due.add(p);
    if (timer === null) timer = setTimeout(flush, 0);
  }
  function flush() {
    timer = null;
    const all = due.has('all');
    const run = (p, fn) => {
      if (!all && !due.has(p)) return;
      try { fn(); } catch (err) { console.error(`render ${p}:`, err); }
    };
    run('doc', () => { settings.render(); notes.render(); checklist.render(); });
    run('people', () => people.render());
    run('sync', () => sync.render());
    due.clear();
  }

  ts.on('state', () => schedule('doc', 'sync'));
  ts.on('status', () => schedule('sync', 'people'));
  ts.on('queue', (q) => {
    const queue = Array.isArray(q) ? q : ts.queue();
    sync.onQueue(queue);
    notes.onQueue(queue);
  });
  ts.on('settled', (c) => sync.settled(c));
  ts.on('conflict', (c) => notes.onConflict(c));
  ts.on('election', () => schedule('people'));
  ts.on('leadership', () => schedule('people'));
  ts.on('presence', () => schedule('people'));
  // Errors the library retries by itself (a dropped transport, no token
  // while offline, a busy server) are told by the badge and the Sync
  // panel; a toast is for what needs the user (a refused token, a store
  // that cannot keep changes).
  const TRANSIENT = /^(transport|connect_timeout|throttled|token_unavailable|token_expiring|error)$/;
  ts.on('error', (e) => {
    schedule('sync');
    if (!e || TRANSIENT.test(e.code || '')) return;
    sync.toast({ kind: 'error', title: 'Sync problem', body: `${e.code}: ${e.message || ''}`, timeout: 10000 });
  });
  // "edited 2 minutes ago", "seen …" and peers that went quiet
  setInterval(() => schedule('people', 'doc'), 10000);

  document.addEventListener('visibilitychange', () => {
    app.presence({ visible: document.visibilityState === 'visible' });
    schedule('people');
  });

  // ---- sections on a phone: one at a time, chosen in the tab bar
  function show(view) {
    document.body.dataset.view = view;
    for (const b of document.querySelectorAll('.tabbar button')) {
      if (b.dataset.target === view) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
  }
  for (const b of document.querySelectorAll('.tabbar button')) {
    b.addEventListener('click', () => { show(b.dataset.target); window.scrollTo(0, 0); });
  }
  show('notes');
  const reveal = (view, id) => {
    if (phone.matches) show(view);
    const target = $(id);
    target.scrollIntoView({ behavior: 'smooth', block: 'start' });
    target.focus({ preventScroll: true });
  };
  $('conn').addEventListener('click', () => reveal('sync', 'panel-sync'));
  $('lead-chip').addEventListener('click', () => reveal('people', 'panel-people'));

  // ---- the debug console: development build only (the production bundle
  // does not contain it, and the toggle stays hidden)
  if (build === 'dev' && typeof mountDebugConsole === 'function') {
    // style.css styles the console to match the app (styles: false), and
    // the top bar's button is the toggle (style.css hides the console's own
    // floating one, which would sit on the toasts and the phone's tab bar)
    const dbg = mountDebugConsole(ts, { open: false, styles: false });
    dbg.element.classList.add('app-debug');
    const btn = $('btn-debug');
    btn.hidden = false;
    let open = false;
    btn.addEventListener('click', () => {
      open = !open;
      dbg.toggle(open);
      btn.setAttribute('aria-pressed', String(open));
    });
    app.debug = dbg;
  }

  window.tabsyncApp = {
    client: ts, app, build, workspace, user,
    device: { id: device.id, type: device.type, get name() { return device.name; } },
    conflicts: app.conflicts,
  };

  app.presence({});
  schedule('all');
  // The library opens its storage (the cached document and the offline
  // queue) before it can take changes: started = usable, possibly offline;
  // ready = synced with the server once.
  Promise.resolve(ts.opened).then(() => {
    root.dataset.started = 'true';
    schedule('all');
  }, (err) => loadError(`Could not open the local storage: ${err?.message || err}`));
  Promise.resolve(ts.ready).then(() => {
    root.dataset.ready = 'true';
    const q = ts.queue();
    sync.onQueue(q);
    notes.onQueue(q);
    schedule('all');
  }, (err) => loadError(`Could not start: ${err?.message || err}`));
}
