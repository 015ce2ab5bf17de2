// Test helpers for sync.test.mjs: a "tab" = a SyncService on a memory
// storage plus a real socket.io-client socket on tabsyncd's /session
// (protocol 4), wired the way the client assembly wires them; and a look at
// what the server holds (its whole log, and the document a fresh tab gets).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import { sleep } from '../../../tests/js/harness.mjs';
import { ident, tokenFor, uniq, fold } from '../../../tests/js/history-helpers.mjs';
import { authFor } from '../../../tests/js/session-helpers.mjs';
import { openStorage } from '../src/storage.js';
import { SyncService } from '../src/sync.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// the harness runs $TABSYNCD; default to the tree's own build
process.env.TABSYNCD ??= path.join(HERE, '..', '..', '..', 'build', 'tabsyncd');

/** Poll pred until truthy or throw after ms. */
export async function waitUntil(pred, ms, what) {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timeout (${ms} ms): ${what}`);
    await sleep(10);
  }
}

/** Opens a /session socket (proto 4) and resolves to {sock, welcome}. */
export function connectSocket(url, id) {
  const sock = io(`${url}/session`, {
    forceNew: true,
    reconnection: false,
    timeout: 8000,
    transports: ['websocket'],
    auth: authFor(id, tokenFor(id), { proto: 4 }),
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no welcome for ${id.tab}`)), 8000);
    sock.once('welcome', (welcome) => {
      clearTimeout(timer);
      resolve({ sock, welcome });
    });
    sock.once('connect_error', (e) => {
      clearTimeout(timer);
      sock.close();
      reject(new Error(`${id.tab} refused: ${e.message}`));
    });
  });
}

/**
 * A browser tab: SyncService + storage (`storageName` = the browser profile)
 * + a socket when connected. `liveFilter(entry)` may drop live entries (to
 * make gaps). Records every outgoing message in `out` and every 'settled',
 * 'conflict' and 'change' event.
 */
export class Tab {
  constructor(url, { user = 'alice', session, device = 'dev1', storageName = uniq('profile'), conflicts, leadTerm } = {}) {
    this.url = url;
    this.session = session;
    this.user = user;
    this.device = device;
    this.storageName = storageName;
    this.conflicts = conflicts;
    this.leadTerm = leadTerm;
    this.sock = null;
    this.out = []; // [event, arg] sent by the service over its sockets
    this.settled = [];
    this.conflictEvents = [];
    this.changes = [];
    this.liveFilter = () => true;
  }

  async open() {
    this.storage = await openStorage({ kind: 'memory', name: this.storageName });
    const opts = { storage: this.storage };
    if (this.conflicts) opts.conflicts = this.conflicts;
    if (this.leadTerm) opts.leadTerm = this.leadTerm;
    this.svc = new SyncService(opts);
    this.svc.on('settled', (c) => this.settled.push(c));
    this.svc.on('conflict', (c) => this.conflictEvents.push(c));
    this.svc.on('change', (e) => this.changes.push(e));
    await this.svc.open();
    return this;
  }

  async connect() {
    const id = ident(this.user, this.session, this.device, uniq('tab'));
    const { sock, welcome } = await connectSocket(this.url, id);
    this.sock = sock;
    sock.onAnyOutgoing((event, arg) => this.out.push([event, arg]));
    sock.on('event', (e) => { if (e?.seq !== undefined && this.liveFilter(e)) this.svc.handleEntry(e); });
    sock.on('change', (e) => { if (this.liveFilter(e)) this.svc.handleEntry(e); });
    sock.on('disconnect', () => { if (this.sock === sock) this.svc.detach(); });
    await this.svc.attach(sock, welcome);
    return welcome;
  }

  disconnect() {
    this.svc.detach();
    this.sock?.close();
    this.sock = null;
  }

  async close() {
    this.disconnect();
    await this.svc?.close();
    this.storage?.close();
  }

  /** Everything sent and answered: nothing queued, nothing sending. */
  settledAll() {
    return this.svc.queue().length === 0;
  }

  sent(event) {
    return this.out.filter(([e]) => e === event).map(([, a]) => a);
  }
}

/**
 * What the server holds for (user, session): {state, seq, ver, epoch, log}
 * — the document a fresh tab gets from sync {}, and the whole log from seq 1.
 */
export async function serverView(url, session, user = 'alice') {
  const { sock } = await connectSocket(url, ident(user, session, 'dcheck', uniq('check')));
  try {
    const first = await sock.timeout(8000).emitWithAck('sync', {});
    if (!first.ok || first.more) throw new Error(`sync {} answered ${JSON.stringify(first).slice(0, 300)}`);
    const state = fold(first.entries, first.snapshot.state);
    const log = [];
    for (let after = 0; ;) {
      const r = await sock.timeout(8000).emitWithAck('sync', { after, epoch: first.epoch, limit: 1000 });
      if (!r.ok || r.reset) throw new Error(`sync {after: ${after}} answered ${JSON.stringify(r).slice(0, 300)}`);
      log.push(...r.entries);
      if (!r.more) break;
      after = r.entries[r.entries.length - 1].seq;
    }
    const ver = log.filter((e) => e.kind === 'change').length;
    return { state, seq: first.seq, ver, epoch: first.epoch, log };
  } finally {
    sock.close();
  }
}
