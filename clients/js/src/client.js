// createClient: puts the parts together — the socket manager
// (connection.js), the session sync with its offline queue (sync.js over
// storage.js), the election participant (election.js), presence
// (presence.js) and the device reports (caps.js) — into the object API.md
// describes, and routes the server's events to them.
import { Emitter } from './emitter.js';
import { openStorage } from './storage.js';
import { SyncService } from './sync.js';
import { Connection, randomId, win } from './connection.js';
import { Caps, Reporter } from './caps.js';
import { Election } from './election.js';
import { Presence, PRESENCE_TYPE } from './presence.js';

const DEVICE_KEY = 'tabsync.device';
const LOG_KEEP = 200;
const PUBLISH_TIMEOUT_MS = 30000; // the server slows a busy tab down rather than refusing

/** This browser profile's device: persistent id and fingerprint in localStorage. */
function profileDevice() {
  let d = null;
  try {
    d = JSON.parse(globalThis.localStorage?.getItem(DEVICE_KEY) ?? 'null');
  } catch {
    // unreadable or blocked: a new one
  }
  if (typeof d?.id !== 'string' || typeof d?.fingerprint !== 'string') {
    d = { id: `dev-${randomId(12)}`, fingerprint: randomId(32) };
    try {
      globalThis.localStorage?.setItem(DEVICE_KEY, JSON.stringify(d));
    } catch {
      // private mode or full: this page keeps it
    }
  }
  return d;
}

function deviceType() {
  const n = typeof navigator !== 'undefined' ? navigator : null;
  const mobile = n?.userAgentData?.mobile ?? /Mobi|Android|iPhone|iPad/i.test(n?.userAgent ?? '');
  return mobile ? 'mobile' : 'browser';
}

/**
 * The Change of an update made before the storage is open: it reads through
 * to the sync's own Change once that exists (bind), and settles with it.
 */
function laterChange() {
  let real = null;
  let own = { id: null, client: null, mut: null, status: 'pending' };
  let resolve;
  const c = { done: new Promise((r) => { resolve = r; }) };
  for (const k of ['id', 'client', 'mut', 'status', 'result', 'error', 'conflict', 'rebasedAs']) {
    Object.defineProperty(c, k, { enumerable: true, get: () => (real ?? own)[k] });
  }
  Object.defineProperties(c, {
    bind: { value: (r) => { real = r; r.done.then(() => resolve(c)); } },
    fail: { value: (error) => { own = { ...own, status: 'rejected', error }; resolve(c); } },
  });
  return c;
}

/**
 * A tabsync client (API.md). Made by createClient.
 */
export class Client extends Emitter {
  constructor(opts = {}) {
    super();
    const origin = typeof location !== 'undefined' ? location.origin : undefined;
    const url = String(opts.url ?? origin ?? '').replace(/\/+$/, '');
    if (!url) throw new TypeError('tabsync: opts.url is required outside a browser page');
    if (opts.token === undefined) throw new TypeError('tabsync: opts.token is required (a string or a function)');
    const dev = { ...(opts.device?.id && opts.device?.fingerprint ? {} : profileDevice()), ...opts.device };
    dev.type ??= deviceType();
    this.tab = opts.tab ?? `tab-${randomId(12)}`;
    this.device = { id: dev.id, type: dev.type };
    this.user = null;
    this.session = null;
    this.logs = [];
    this.closed = false;
    this.welcomed = false;
    this.eventFloor = 0;
    this.early = { subs: [], updates: [] }; // calls made before the storage is open

    const storageKind = opts.storage ?? (typeof indexedDB !== 'undefined' ? 'indexeddb' : 'memory');
    const elect = opts.elect === false ? null : {
      scopes: opts.elect?.scopes ?? ['session'],
      ...(opts.elect?.observer !== undefined && { observer: !!opts.elect.observer }),
      ...(opts.elect?.scores !== undefined && { scores: !!opts.elect.scores }),
    };
    const token = opts.token;
    const ctx = (reason) => ({ device: { ...dev }, tab: this.tab, reason });
    const log = (dir, name, summary, extra) => this.log({ dir, name, summary, ...extra });
    const emit = (name, arg) => this.emit(name, arg);

    const conn = this.conn = new Connection({
      url,
      token: async (reason) => (typeof token === 'function' ? token(ctx(reason)) : token),
      staticToken: typeof token !== 'function',
      auth: (t) => ({
        token: t,
        device: { id: dev.id, fingerprint: dev.fingerprint, type: dev.type, ...(storageKind === 'indexeddb' && { caps: ['idb'] }) },
        tab: { id: this.tab },
        proto: 4,
        ...(elect && { elect }),
      }),
      reconnect: { minDelayMs: 500, maxDelayMs: 10000, jitter: 0.5, ...opts.reconnect },
      io: opts.io,
      log,
    });
    const presenceOpts = { intervalMs: 1000, poorIntervalMs: 5000, ...opts.presence };
    this.election = new Election({ conn, me: { device: dev.id, tab: this.tab }, emit, log });
    this.presence = new Presence({ conn, opts: presenceOpts, emit, log });
    this.caps = new Caps({ type: dev.type, onChange: () => this.capsChanged() });
    this.reporter = new Reporter({ caps: this.caps, conn, minGapMs: () => (conn.quality === 'poor' ? presenceOpts.poorIntervalMs : 0) });

    conn.on('status', (info) => emit('status', info));
    conn.on('quality', (q) => {
      emit('quality', q);
      this.reporter.due();
    });
    conn.on('error', (e) => emit('error', e));
    conn.on('connect', () => this.election.onConnect());
    conn.on('disconnect', () => {
      this.sync?.detach();
      this.election.onDisconnect();
    });
    const socket = conn.create();
    socket.on('welcome', (w) => this.onWelcome(socket, w));
    socket.on('event', (env) => this.onEvent(env));
    socket.on('change', (entry) => {
      this.log({ dir: 'in', name: 'change', cid: entry?.cid, id: entry?.id, summary: `seq ${entry?.seq} ver ${entry?.ver}` });
      this.sync.handleEntry(entry);
    });
    socket.on('elect', (v) => this.election.onView(v));
    socket.on('error', (e) => {
      this.log({ dir: 'in', name: 'error', summary: `${e?.code}: ${e?.message ?? ''}` });
      emit('error', { code: e?.code ?? 'error', message: e?.message ?? '', ...(e?.retry_after_ms && { retry_after_ms: e.retry_after_ms }) });
    });

    this.onPageHide = () => {
      this.election.resignAll('pagehide');
      this.presence.leave();
    };
    win?.addEventListener('pagehide', this.onPageHide);

    let ready;
    this.ready = new Promise((resolve, reject) => { ready = { resolve, reject }; });
    this.ready.catch(() => {}); // a refusal also reaches 'error'; unawaited it must not crash Node
    this.readyP = ready;
    conn.on('error', (e) => {
      if (conn.stopped && !this.welcomed) ready.reject(Object.assign(new Error(`${e.code}: ${e.message}`), { code: e.code }));
    });

    this.opened = this.open({ storageKind, name: opts.name ?? 'default', conflicts: opts.conflicts ?? 'rebase' });
    this.opened.catch((e) => {
      const err = { code: 'open_failed', message: String(e?.message ?? e) };
      emit('error', err);
      ready.reject(Object.assign(new Error(`${err.code}: ${err.message}`), err));
    });
  }

  /** Opens the storage and the sync (offline: the cached state and queue), then connects. */
  async open({ storageKind, name, conflicts }) {
    let storage;
    try {
      storage = await openStorage({ kind: storageKind, name });
    } catch (e) {
      // IndexedDB refused (private mode, quota, blocked): this page keeps its changes in memory
      this.emit('error', { code: 'storage_unavailable', message: String(e?.message ?? e) });
      storage = await openStorage({ kind: 'memory', name });
    }
    if (this.closed) {
      await storage.close?.();
      return;
    }
    this.storage = storage;
    const sync = new SyncService({
      storage,
      conflicts,
      leadTerm: (scope) => this.election.term(scope),
      log: (entry) => this.log(entry),
    });
    this.sync = sync;
    for (const e of this.early.subs.splice(0)) if (e.fn) e.off = sync.subscribe(e.path, e.fn);
    for (const name of ['state', 'queue', 'settled', 'conflict', 'change']) sync.on(name, (arg) => this.emit(name, arg));
    // history events reach the app as the mirror applies them: in seq order,
    // once, live or replayed after a reconnect
    sync.mirror.on('entry', (e) => {
      if (e.kind === 'event' && e.seq > this.eventFloor) this.emit('event', e);
    });
    await sync.open();
    if (this.closed) return;
    for (const [ops, opts, c] of this.early.updates.splice(0)) {
      try {
        c.bind(sync.update(ops, opts));
      } catch (e) {
        c.fail({ code: 'bad_change', message: String(e?.message ?? e) });
      }
    }
    this.caps.start().then(() => this.capsChanged(), () => {});
    this.conn.start();
  }

  /** A `log` entry: kept for the debug console and emitted. */
  log(entry) {
    const e = { at: Date.now(), ...entry };
    this.logs.push(e);
    if (this.logs.length > LOG_KEEP) this.logs.splice(0, this.logs.length - LOG_KEEP);
    this.emit('log', e);
  }

  async onWelcome(socket, w) {
    this.user = w.user;
    this.session = w.session;
    this.log({ dir: 'in', name: 'welcome', summary: `${w.user}/${w.session} epoch ${w.epoch ?? '-'} seq ${w.seq ?? '-'} ver ${w.ver ?? '-'}` });
    this.reporter.due(true);
    this.presence.onConnect();
    // a tab new to this history does not replay its old events as news
    const c = this.sync.confirmed;
    this.eventFloor = c.epoch && c.epoch === w.epoch ? 0 : w.seq ?? 0;
    await this.sync.attach(socket, w);
    if (this.sync.synced && !this.welcomed && !this.closed) {
      this.welcomed = true;
      this.readyP.resolve();
    }
  }

  onEvent(env) {
    if (!env || typeof env !== 'object') return;
    if (env.type === PRESENCE_TYPE) {
      this.presence.receive(env);
      return;
    }
    this.log({ dir: 'in', name: 'event', cid: env.cid, id: env.id, summary: `${env.type}${env.seq ? ` seq ${env.seq}` : ''}` });
    if (Number.isInteger(env.seq)) this.sync.handleEntry(env);
    else this.emit('event', env);
  }

  capsChanged() {
    this.conn.setNetwork(this.caps.network);
    this.reporter.due();
    const why = this.caps.degraded();
    // once per episode: re-elected anyway (nobody better), the tab leads on
    if (why && why !== this.degradedWhy) this.election.resignAll(why);
    this.degradedWhy = why;
  }

  /** ts.connection: a snapshot (API.md). */
  get connection() {
    return this.conn.info;
  }

  get clientId() {
    return this.sync?.clientId ?? this.storage?.clientId ?? null;
  }

  get state() {
    return this.sync ? this.sync.state : {};
  }

  get confirmed() {
    return this.sync ? this.sync.confirmed : { state: {}, ver: 0, seq: 0, epoch: null };
  }

  /** The value at a JSON Pointer ('' is the whole document). */
  get(path = '') {
    if (this.sync) return this.sync.get(path);
    return path === '' ? {} : undefined;
  }

  /** fn(value, {path, source}) on each change at or below path; returns unsubscribe(). */
  subscribe(path, fn) {
    if (this.sync) return this.sync.subscribe(path, fn);
    // before the storage is open: attached as soon as it is (and sees the cached document)
    const early = { path, fn, off: null };
    this.early.subs.push(early);
    return () => {
      early.fn = null;
      early.off?.();
    };
  }

  /** A change to the shared state: applied now, queued, sent in order (API.md). */
  update(ops, opts) {
    if (this.sync) return this.sync.update(ops, opts);
    // before the storage is open: made once it is, on top of the stored queue
    const merge = ops?.merge;
    if (!Array.isArray(ops) && !(merge && typeof merge === 'object' && !Array.isArray(merge))) {
      throw new TypeError('update: a JSON Patch array or {merge: {...}}');
    }
    const c = laterChange();
    this.early.updates.push([structuredClone(ops), opts, c]);
    return c;
  }

  /** The pending changes of this session in this browser profile, oldest first. */
  queue() {
    return this.sync ? this.sync.queue() : [];
  }

  /**
   * Publishes an envelope to the other tabs; rejects with Error('offline')
   * when not connected (events are not queued).
   */
  async publish(type, body, { prio, to, cid } = {}) {
    const env = { v: 4, type, id: `e.${randomId(10)}`, body };
    if (prio) env.prio = prio;
    if (to) env.to = to;
    if (cid) env.cid = cid;
    this.log({ dir: 'out', name: 'publish', cid, id: env.id, summary: type });
    const ack = await this.conn.ask('publish', env, PUBLISH_TIMEOUT_MS);
    this.log({ dir: 'in', name: 'publish', cid, id: env.id, summary: ack?.ok ? `ok${ack.seq ? ` seq ${ack.seq}` : ''}` : `refused: ${ack?.error?.code}` });
    return ack;
  }

  /** Resigns what it leads, closes the socket and the storage. */
  async close() {
    if (this.closed) return;
    win?.removeEventListener('pagehide', this.onPageHide);
    if (this.conn.up) {
      this.presence.leave();
      await Promise.race([this.election.resignAll('closed'), new Promise((r) => setTimeout(r, 1000))]);
    }
    this.closed = true;
    if (!this.welcomed) this.readyP.reject(Object.assign(new Error('closed'), { code: 'closed' }));
    for (const [, , c] of this.early.updates.splice(0)) c.fail({ code: 'closed', message: 'closed before the storage was open' });
    this.election.close();
    this.presence.close();
    this.reporter.stop();
    this.caps.stop();
    this.sync?.detach();
    this.conn.close();
    await this.opened.catch(() => {});
    await this.sync?.close?.();
    await this.storage?.close?.();
  }
}

/**
 * Makes a client and starts connecting (API.md, "createClient").
 * @param {object} [opts] see API.md
 * @returns {Client}
 */
export function createClient(opts) {
  return new Client(opts);
}
