// Where the offline queue, the mutation counter, the exactly-once client id
// and the cached document live: IndexedDB (shared by every tab of a browser
// profile, so a reload or another tab finds what was not sent yet), or
// memory (tests, private modes). The mutation counter is taken in a
// readwrite IndexedDB transaction: those are serialized across tabs, which
// makes `nextMut` strictly increasing for the whole profile.
import { openDB } from 'idb';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** n random url-safe characters (crypto-strong). */
export function randomId(n) {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let s = '';
  for (const b of bytes) s += ALPHABET[b & 63];
  return s;
}

const newClientId = () => `c-${randomId(16)}`;

function safeCall(fn, info) {
  try {
    fn(info);
  } catch (e) {
    console.error('tabsync: a storage change listener threw', e);
  }
}

// name -> the shared contents of a memory storage (like one browser profile)
const memory = new Map();

function openMemory(name) {
  let db = memory.get(name);
  if (!db) {
    db = { clientId: newClientId(), mut: 0, changes: new Map(), snapshot: null, instances: new Set() };
    memory.set(name, db);
  }
  // every open storage is one "tab": it is told about the others' changes,
  // asynchronously, as a BroadcastChannel would tell it
  const me = { fns: new Set() };
  db.instances.add(me);
  const changed = (info) => {
    for (const other of db.instances) {
      if (other === me) continue;
      for (const fn of other.fns) queueMicrotask(() => safeCall(fn, info));
    }
  };
  return {
    kind: 'memory',
    name,
    clientId: db.clientId,
    async nextMut() {
      db.mut += 1;
      return db.mut;
    },
    async putChange(record) {
      db.changes.set(record.mut, structuredClone(record));
      changed({ mut: record.mut });
    },
    async deleteChange(mut) {
      if (db.changes.delete(mut)) changed({ mut, deleted: true });
    },
    async listChanges() {
      return [...db.changes.values()].sort((a, b) => a.mut - b.mut).map((r) => structuredClone(r));
    },
    async saveSnapshot(snap) {
      db.snapshot = structuredClone(snap);
    },
    async loadSnapshot() {
      return db.snapshot ? structuredClone(db.snapshot) : null;
    },
    onChange(fn) {
      me.fns.add(fn);
      return () => me.fns.delete(fn);
    },
    close() {
      me.fns.clear();
      db.instances.delete(me);
    },
  };
}

async function openIndexedDb(name) {
  const db = await openDB(`tabsync-${name}`, 1, {
    upgrade(d) {
      d.createObjectStore('meta');
      d.createObjectStore('changes', { keyPath: 'mut' });
    },
  });
  // two tabs opening a new profile at once: the second transaction sees the first's id
  const tx = db.transaction('meta', 'readwrite');
  let clientId = await tx.store.get('clientId');
  if (!clientId) {
    clientId = newClientId();
    await tx.store.put(clientId, 'clientId');
  }
  await tx.done;

  const fns = new Set();
  const bc = typeof BroadcastChannel === 'function' ? new BroadcastChannel(`tabsync-${name}`) : null;
  if (bc) bc.onmessage = (ev) => { for (const fn of fns) safeCall(fn, ev.data); };
  const changed = (info) => {
    try {
      bc?.postMessage(info);
    } catch { /* a closed channel: nobody to tell */ }
  };
  return {
    kind: 'indexeddb',
    name,
    clientId,
    async nextMut() {
      const t = db.transaction('meta', 'readwrite');
      const mut = ((await t.store.get('mut')) || 0) + 1;
      await t.store.put(mut, 'mut');
      await t.done;
      return mut;
    },
    async putChange(record) {
      await db.put('changes', record);
      changed({ mut: record.mut });
    },
    async deleteChange(mut) {
      await db.delete('changes', mut);
      changed({ mut, deleted: true });
    },
    listChanges: () => db.getAll('changes'),
    saveSnapshot: (snap) => db.put('meta', snap, 'snapshot'),
    async loadSnapshot() {
      return (await db.get('meta', 'snapshot')) ?? null;
    },
    onChange(fn) {
      fns.add(fn);
      return () => fns.delete(fn);
    },
    close() {
      fns.clear();
      bc?.close();
      db.close();
    },
  };
}

/**
 * Opens the queue's storage. 'indexeddb' falls back to memory where there is
 * no IndexedDB (Node). Memory storages of the same name in one JS realm share
 * their contents, as the tabs of a profile share IndexedDB.
 * @param {{kind?: 'indexeddb'|'memory', name?: string}} [opts]
 */
export async function openStorage({ kind = 'indexeddb', name = 'default' } = {}) {
  if (kind !== 'indexeddb' && kind !== 'memory') throw new TypeError(`unknown storage kind ${kind}`);
  if (kind === 'indexeddb' && typeof globalThis.indexedDB !== 'undefined') return openIndexedDb(name);
  return openMemory(name);
}
