// The session sync: keeps the local mirror in step with the session's
// history (sync at attach, live entries in seq order, sync again on a gap)
// and carries local changes through the offline queue to the server, each
// exactly once (client id + mutation number, docs/CONSISTENCY.md). A change
// is shown at once, written to storage before it is sent, sent in mut order,
// and settled by the server's answer: confirmed, rebased or dropped on a
// version conflict, kept on a transient refusal, rolled back otherwise.
import { Emitter } from './emitter.js';
import { Mirror } from './mirror.js';
import { Hlc } from './hlc.js';
import { nextBatch, toWire, classifyAck, splitAck } from './queue.js';
import { randomId } from './storage.js';

const ACK_MS = 15000;
const GAP_MS = 300; // a gap usually fills by itself (entries from two loops): wait before asking
const SAVE_MS = 500;
const RESERVE = 8; // mutation numbers taken ahead, so that update() can number a change at once
// A reserved number this far below the profile's newest is not used: other
// tabs may have sent enough since for the server to have forgotten it.
const STALE_MUTS = 96;
const MAX_REBASES = 8;
// a fenced change of another tab that is this old can no longer be applied
// (its lease has long ended): it is dropped from the queue
const FENCED_STALE_MS = 5 * 60 * 1000;

const backoff = (attempts) => Math.min(250 * 2 ** Math.max(0, attempts - 1), 10000);

export class SyncService extends Emitter {
  /**
   * @param {{storage: object, conflicts?: 'rebase'|'drop'|Function,
   *   leadTerm?: (scope: string) => number|null, log?: (entry: object) => void}} opts
   */
  constructor({ storage, conflicts = 'rebase', leadTerm = () => null, log = () => {} }) {
    super();
    this.storage = storage;
    this.conflicts = conflicts;
    this.leadTerm = leadTerm;
    this.logFn = log;
    this.clientId = storage.clientId;
    this.origin = randomId(10); // this instance: tells its records from other tabs'
    this.mirror = new Mirror();
    this.hlc = new Hlc();
    this.scope = null; // "user/session" of the cached document and queue
    this.records = new Map(); // mut -> queue record (own and other tabs')
    this.waiting = []; // own records still waiting for a mutation number
    this.handles = new Map(); // record -> {change, resolve}
    this.settledMuts = new Set(); // muts settled here: a stale listing must not revive them
    this.reserve = [];
    this.highMut = 0;
    this.socket = null;
    this.gen = 0; // attachment generation: answers of an older one change nothing
    this.synced = false;
    this.timers = {};
    this.syncWaiters = [];
    this.mirror.on('state', (e) => this.emit('state', e));
    this.mirror.on('entry', (e, source) => {
      this.hlc.observe(e.hlc);
      this.hlc.observe(e.ts);
      if (e.kind === 'change' && source !== 'confirm') this.emit('change', e);
    });
    this.mirror.on('confirmed', () => this.timer('save', SAVE_MS, () => this.save()));
    this.mirror.on('diverged', ({ error }) => {
      this.note('info', 'diverged', `the local copy no longer matches the history (${error.message}): full resync`);
      this.catchUp();
    });
  }

  // ---- accessors -----------------------------------------------------------

  /** The optimistic document (confirmed + pending changes). */
  get state() {
    return this.mirror.view;
  }

  /** {state, ver, seq, epoch} as far as this tab applied the history. */
  get confirmed() {
    return this.mirror.confirmed;
  }

  get(path = '') {
    return this.mirror.get(path);
  }

  subscribe(path, fn) {
    return this.mirror.subscribe(path, fn);
  }

  /** The pending changes, oldest first (API.md `queue()`). */
  queue() {
    const recs = [...this.records.values()].sort((a, b) => a.mut - b.mut).concat(this.waiting);
    return recs.map((r) => ({
      id: r.id, mut: r.mut, status: r.status, ops: r.ops ?? { merge: r.merge }, createdAt: r.createdAt, attempts: r.attempts,
    }));
  }

  // ---- life cycle ------------------------------------------------------------

  /** Loads the cached document and the queue (pending records go into the view). */
  async open() {
    const snap = await this.storage.loadSnapshot();
    if (snap) {
      this.scope = snap.scope ?? null;
      this.saved = `${snap.epoch}/${snap.seq}`;
      this.mirror.reset(snap, 'reset');
    }
    this.offStorage = this.storage.onChange?.(() => this.refresh().catch((e) => this.note('info', 'storage', `could not read the queue: ${e?.message ?? e}`)));
    await this.refresh();
    await this.fill().catch(() => {});
  }

  /**
   * A connected /session socket (proto 4) and its welcome: sync, then send
   * the queue. Resolves once the first sync answer is applied (or on detach).
   */
  attach(socket, welcome = {}) {
    if (this.socket) this.detach();
    this.hlc.serverTime(welcome.now); // before anything is stamped or sent
    this.gen += 1;
    this.socket = socket;
    this.synced = false;
    const scope = welcome.user && welcome.session ? `${welcome.user}/${welcome.session}` : null;
    if (scope && this.scope && scope !== this.scope) {
      // the cache and queue belong to another session: start from nothing,
      // leave that session's records in storage for when it comes back
      this.note('info', 'attach', `session ${scope} replaces the cached ${this.scope}`);
      this.mirror.batch('reset', () => {
        for (const r of [...this.records.values()]) {
          if (r.scope && r.scope !== scope) {
            this.records.delete(r.mut);
            this.mirror.removePending(r, 'reset');
          }
        }
        this.mirror.reset({}, 'reset');
      });
    }
    if (scope) this.scope = scope;
    const done = new Promise((resolve) => this.syncWaiters.push(resolve));
    this.catchUp();
    this.queueChanged();
    return done;
  }

  /** Disconnected: changes made from now on only go to storage. */
  detach() {
    if (!this.socket) return;
    this.socket = null;
    this.gen += 1;
    this.synced = false;
    for (const k of ['gap', 'retry', 'flush', 'resync']) this.clear(k);
    for (const r of this.records.values()) if (r.status === 'sending') r.status = 'pending';
    for (const w of this.syncWaiters.splice(0)) w();
    this.note('info', 'detach', `${this.records.size} change(s) kept for the next connection`);
    this.queueChanged();
  }

  /** Stops timers, saves the confirmed document; the storage stays open (its owner closes it). */
  async close() {
    this.detach();
    this.closed = true;
    for (const k of Object.keys(this.timers)) this.clear(k);
    this.offStorage?.();
    await this.save();
  }

  // ---- the history ------------------------------------------------------------

  /** A history entry from the socket ('event' with seq, or 'change'); the socket's owner logs it. */
  handleEntry(entry) {
    if (!entry || !Number.isInteger(entry.seq)) return;
    this.mirror.applyEntry(entry, 'remote');
    this.watchGap();
  }

  watchGap() {
    if (!this.mirror.hasGap() || !this.socket || this.timers.gap) return;
    this.timer('gap', GAP_MS, () => {
      if (this.mirror.hasGap()) this.catchUp();
    });
  }

  /**
   * Asks `sync` for everything after confirmed.seq (following `more`) and
   * applies it. One at a time: a call while one runs makes it go once more.
   */
  catchUp() {
    if (!this.socket) return Promise.resolve();
    // a run of an older attachment ends by itself at its next answer
    if (this.syncing && this.syncGen === this.gen) {
      this.syncAgain = true;
      return this.syncing;
    }
    const { gen, socket } = this;
    this.syncGen = gen;
    const run = (async () => {
      try {
        do {
          this.syncAgain = false;
          for (let more = true; more;) {
            const c = this.mirror.confirmed;
            const req = c.epoch ? { after: c.seq, epoch: c.epoch } : {};
            this.note('out', 'sync', JSON.stringify(req));
            const r = await socket.timeout(ACK_MS).emitWithAck('sync', req);
            if (gen !== this.gen) return;
            if (!r || r.ok !== true) throw new Error(`sync refused: ${r?.error?.code ?? 'no answer'}`);
            this.note('in', 'sync', `${r.reset ? `reset (${r.reason}) to seq ${r.snapshot?.seq}, ` : ''}${r.entries.length} entries, seq ${r.seq}${r.more ? ', more' : ''}`);
            this.mirror.applySync(r);
            more = r.more === true;
          }
        } while (this.syncAgain);
        this.synced = true;
        for (const w of this.syncWaiters.splice(0)) w();
        this.watchGap();
        this.flush();
      } catch (e) {
        if (gen !== this.gen) return;
        this.note('info', 'sync', `failed: ${e.message}; again in 1 s`);
        this.timer('resync', 1000, () => this.catchUp());
      }
    })().finally(() => {
      if (this.syncing === run) this.syncing = null;
    });
    this.syncing = run;
    return run;
  }

  // ---- local changes ------------------------------------------------------------

  /**
   * A local change (API.md `update`): a JSON Patch array or {merge}. Shown at
   * once, stored, then sent in order. opts: {base?: number|'current', lead?, type?}.
   * @returns {object} the Change
   */
  update(input, opts = {}) {
    let body;
    if (Array.isArray(input)) body = { ops: structuredClone(input) };
    else if (input && typeof input.merge === 'object' && input.merge !== null && !Array.isArray(input.merge)) body = { merge: structuredClone(input.merge) };
    else throw new TypeError('update: a JSON Patch array or {merge: {...}}');
    const change = this.newChange();
    let lead;
    if (opts.lead) {
      const term = this.leadTerm(opts.lead);
      if (term == null) {
        // fenced changes are made only while leading: nothing is stored
        change.change.id = `ch-0-${randomId(6)}`;
        this.settleChange(change, 'rejected', { error: { code: 'not_leader', message: `this tab does not lead '${opts.lead}'` } });
        return change.change;
      }
      lead = { scope: opts.lead, term };
    }
    const base = opts.base === 'current' ? this.mirror.confirmed.ver : opts.base;
    const rec = this.newRecord({ ...body, base, lead, type: opts.type });
    this.handles.set(rec, change);
    this.enqueue(rec);
    return change.change;
  }

  newChange() {
    const h = { change: { id: null, client: this.clientId, mut: null, status: 'pending' } };
    h.change.done = new Promise((resolve) => { h.resolve = resolve; });
    return h;
  }

  newRecord(fields) {
    return {
      client: this.clientId, mut: null, id: null, ...fields, hlc: this.hlc.now(), createdAt: Date.now(),
      attempts: 0, status: 'pending', origin: this.origin, scope: this.scope,
    };
  }

  // Into the view now; numbered now if a reserved number is at hand (else
  // as soon as one is), then stored, then sent.
  enqueue(rec) {
    this.mirror.addPending(rec, rec);
    const mut = this.waiting.length ? null : this.takeMut();
    if (mut != null) this.assign(rec, mut);
    else {
      this.waiting.push(rec);
      this.assignWaiting();
    }
    this.queueChanged();
  }

  takeMut() {
    while (this.reserve.length && this.reserve[0] < this.highMut - STALE_MUTS) this.reserve.shift();
    const mut = this.reserve.shift() ?? null;
    if (this.reserve.length < RESERVE / 2) this.fill().catch(() => {});
    return mut;
  }

  fill() {
    this.filling ??= (async () => {
      try {
        while (this.reserve.length < RESERVE) {
          const m = await this.storage.nextMut();
          this.highMut = Math.max(this.highMut, m);
          this.reserve.push(m);
        }
      } finally {
        this.filling = null;
      }
    })();
    return this.filling;
  }

  async assignWaiting() {
    if (this.assigning) return;
    this.assigning = true;
    try {
      while (this.waiting.length) {
        const mut = this.takeMut();
        if (mut == null) await this.fill();
        else this.assign(this.waiting.shift(), mut);
      }
    } catch (e) {
      // no numbers from the storage: these changes cannot be sent exactly once
      for (const rec of this.waiting.splice(0)) this.reject(rec, { code: 'storage_unavailable', message: String(e?.message ?? e) });
    } finally {
      this.assigning = false;
    }
  }

  assign(rec, mut) {
    rec.mut = mut;
    rec.id = `ch-${mut}-${randomId(6)}`;
    const h = this.handles.get(rec);
    if (h) Object.assign(h.change, { mut, id: rec.id });
    if (rec.rebaseOf) rec.rebaseOf.change.rebasedAs = rec.id;
    this.records.set(mut, rec);
    const { stored, rebaseOf, ...data } = rec;
    this.storage.putChange(data).catch((e) => this.note('info', 'storage', `could not store mut ${mut}: ${e?.message ?? e}`))
      .then(() => {
        rec.stored = true;
        this.queueChanged();
        this.timer('flush', 0, () => this.flush());
      });
  }

  // Another tab of the profile changed the queue: adopt its new records
  // (shown, sent at our next connection if still there); forget those of
  // other tabs that it settled.
  async refresh() {
    const list = await this.storage.listChanges();
    const present = new Set();
    let changed = false;
    for (const r of list) {
      present.add(r.mut);
      this.highMut = Math.max(this.highMut, r.mut);
      if (this.records.has(r.mut) || this.settledMuts.has(r.mut)) continue;
      if (r.scope && this.scope && r.scope !== this.scope) continue;
      if (r.lead && r.origin !== this.origin && Date.now() - r.createdAt > FENCED_STALE_MS) {
        this.storage.deleteChange(r.mut).catch(() => {});
        continue;
      }
      const rec = { ...r, status: 'pending', stored: true };
      this.records.set(rec.mut, rec);
      this.handles.set(rec, this.newChange());
      Object.assign(this.handles.get(rec).change, { id: rec.id, mut: rec.mut, client: rec.client });
      this.mirror.addPending(rec, rec);
      changed = true;
    }
    for (const rec of [...this.records.values()]) {
      if (rec.origin === this.origin || !rec.stored || present.has(rec.mut) || rec.status === 'sending') continue;
      this.records.delete(rec.mut);
      this.mirror.removePending(rec, 'confirm');
      const h = this.handles.get(rec);
      this.handles.delete(rec);
      if (h) {
        h.change.status = 'confirmed';
        h.resolve(h.change);
      }
      changed = true;
    }
    if (changed) this.queueChanged();
  }

  // ---- sending ----------------------------------------------------------------

  /** Sends every stored pending record, in batches, within the in-flight window. */
  flush() {
    if (!this.socket?.connected || !this.synced) return;
    const now = Date.now();
    const ready = [...this.records.values()].filter((r) => r.stored && !(r.notBefore > now)
      && !(r.lead && r.origin !== this.origin)); // a fenced change only goes out from the tab that leads
    let inFlight = ready.length ? [...this.records.values()].filter((r) => r.status === 'sending').length : 0;
    for (;;) {
      const batch = nextBatch(ready, { inFlight });
      if (!batch.length) break;
      this.send(batch);
      inFlight += batch.length;
    }
    const later = [...this.records.values()].filter((r) => r.notBefore > now).map((r) => r.notBefore);
    this.clear('retry');
    if (later.length) this.timer('retry', Math.min(...later) - now, () => this.flush());
  }

  send(batch) {
    const { socket } = this;
    const token = {};
    for (const r of batch) {
      r.status = 'sending';
      r.attempts += 1;
      r.sendToken = token;
    }
    const msgs = batch.map(toWire);
    this.note('out', 'state', `${msgs.length} change(s): mut ${msgs.map((m) => m.mut).join(',')}`, { id: msgs[0].id });
    this.queueChanged();
    socket.timeout(ACK_MS).emit('state', msgs, (err, ack) => {
      if (err) {
        // timeout or disconnect: kept, resent later with the same mut
        this.note('in', 'state', `no answer (${err.message}) for mut ${msgs.map((m) => m.mut).join(',')}`, { id: msgs[0].id });
        for (const r of batch) {
          if (r.sendToken !== token || r.status !== 'sending') continue;
          r.status = 'pending';
          r.notBefore = Date.now() + backoff(r.attempts);
        }
        this.queueChanged();
        if (this.socket === socket) this.flush();
        return;
      }
      const acks = splitAck(batch.length, ack);
      this.note('in', 'state', acks.map((a, i) => `mut ${msgs[i].mut}: ${a?.ok ? `${a.duplicate ? 'duplicate ' : ''}seq ${a.seq}` : a?.error?.code}`).join('; '), { id: msgs[0].id });
      batch.forEach((r, i) => this.settle(r, acks[i]).catch((e) => console.error('tabsync: settling a change failed', e)));
      this.flush();
    });
  }

  // ---- answers ------------------------------------------------------------------

  async settle(rec, ack) {
    if (this.records.get(rec.mut) !== rec) return; // already settled (e.g. a second answer)
    rec.status = 'pending';
    const kind = classifyAck(ack);
    if (kind === 'confirmed' || kind === 'duplicate') this.confirm(rec, ack, kind === 'duplicate');
    else if (kind === 'retry') {
      rec.notBefore = Date.now() + Math.min(ack?.error?.retry_after_ms ?? backoff(rec.attempts), 10000);
    } else if (kind === 'conflict') await this.conflict(rec, ack);
    else if (ack.error?.code === 'clock_skew' && (rec.restamps ?? 0) < 2) {
      // stamped before the server's clock was known (made offline on a
      // device whose clock runs minutes ahead): stamped again from the
      // corrected clock and sent again (refused changes are not recorded,
      // so the same mut is still new to the server)
      rec.restamps = (rec.restamps ?? 0) + 1;
      rec.hlc = this.hlc.now();
      rec.notBefore = 0;
      const { stored, rebaseOf, ...data } = rec;
      this.storage.putChange(data).catch(() => {});
    }
    else {
      this.reject(rec, ack.error);
      if (ack.error?.code === 'mutation_too_old') this.catchUp();
    }
    this.queueChanged();
  }

  confirm(rec, ack, duplicate) {
    this.hlc.observe(ack.ts);
    let behind = false;
    this.mirror.batch('confirm', () => {
      let r = 'dropped';
      if (Array.isArray(ack.effects) && Number.isInteger(ack.ver)) {
        // our own change is not echoed to us: its ack is its history entry
        r = this.mirror.applyEntry({ kind: 'change', seq: ack.seq, ver: ack.ver, ts: ack.ts, effects: ack.effects, client: rec.client, mut: rec.mut, id: rec.id }, 'confirm');
      } else behind = ack.seq > this.mirror.confirmed.seq;
      // a held entry takes its pending change out when it is applied
      if (r !== 'held') this.mirror.removePending(rec, 'confirm');
    });
    if (behind) this.catchUp();
    this.watchGap();
    const result = { seq: ack.seq, ver: ack.ver, results: ack.results };
    if (duplicate) result.duplicate = true;
    this.finish(rec, 'confirmed', { result });
  }

  async conflict(rec, ack) {
    const conflicts = ack.conflicts ?? [];
    const h = this.handles.get(rec);
    let how = this.conflicts;
    if (typeof how === 'function') {
      try {
        how = await how({ change: h?.change, conflicts });
      } catch {
        how = 'drop';
      }
      if (this.records.get(rec.mut) !== rec) return;
    }
    const error = ack.error ?? { code: 'conflict', message: 'conflict' };
    if (how === 'rebase' && (rec.rebases ?? 0) < MAX_REBASES) {
      const base = Math.max(this.mirror.confirmed.ver, ...conflicts.map((c) => c.ver).filter(Number.isInteger));
      const next = this.newRecord({ ops: rec.ops, merge: rec.merge, lead: rec.lead, type: rec.type, base, rebases: (rec.rebases ?? 0) + 1 });
      if (!next.ops) delete next.ops;
      if (!next.merge) delete next.merge;
      const nh = this.newChange();
      this.handles.set(next, nh);
      next.rebaseOf = h; // assign() names the new change in the old one's rebasedAs
      // the old change leaves the view and the new one enters it in one step
      this.mirror.batch('local', () => {
        this.mirror.removePending(rec, 'local');
        this.enqueue(next);
      });
      this.finish(rec, 'rejected', { error, conflict: { conflicts, resolution: 'rebased' } });
      this.emit('conflict', { change: h?.change, conflicts, resolution: 'rebased' });
    } else {
      this.reject(rec, error, { conflict: { conflicts, resolution: 'dropped' } });
      this.emit('conflict', { change: h?.change, conflicts, resolution: 'dropped' });
    }
  }

  reject(rec, error, extra = {}) {
    this.mirror.removePending(rec, 'rollback');
    this.finish(rec, 'rejected', { error: { code: error?.code ?? 'rejected', message: error?.message ?? '' }, ...extra });
  }

  finish(rec, status, fields) {
    if (rec.mut != null) {
      this.records.delete(rec.mut);
      this.settledMuts.add(rec.mut);
      if (this.settledMuts.size > 4096) this.settledMuts.delete(this.settledMuts.values().next().value);
      this.storage.deleteChange(rec.mut).catch(() => {});
    }
    const i = this.waiting.indexOf(rec);
    if (i >= 0) this.waiting.splice(i, 1);
    const h = this.handles.get(rec);
    this.handles.delete(rec);
    if (h) this.settleChange(h, status, fields);
    this.queueChanged();
  }

  settleChange(h, status, fields) {
    Object.assign(h.change, { status, ...fields });
    h.resolve(h.change);
    this.emit('settled', h.change);
  }

  // ---- small things ----------------------------------------------------------------

  async save() {
    this.clear('save');
    const c = this.mirror.confirmed;
    const key = `${c.epoch}/${c.seq}`;
    if (key === this.saved || !c.epoch) return;
    this.saved = key;
    try {
      await this.storage.saveSnapshot({ state: c.state, ver: c.ver, seq: c.seq, epoch: c.epoch, scope: this.scope });
    } catch (e) {
      this.note('info', 'storage', `could not save the document: ${e?.message ?? e}`);
    }
  }

  queueChanged() {
    if (this.queueSoon) return;
    this.queueSoon = true;
    queueMicrotask(() => {
      this.queueSoon = false;
      this.emit('queue', this.queue());
    });
  }

  timer(name, ms, fn) {
    if (this.timers[name] || this.closed) return;
    this.timers[name] = setTimeout(() => {
      delete this.timers[name];
      fn();
    }, Math.max(0, ms));
  }

  clear(name) {
    clearTimeout(this.timers[name]);
    delete this.timers[name];
  }

  note(dir, name, summary, extra = {}) {
    const entry = { at: Date.now(), dir, name, ...extra, summary };
    try {
      this.logFn(entry);
    } catch { /* the log must never break the sync */ }
    this.emit('log', entry);
  }
}
