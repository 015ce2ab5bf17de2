// Helpers for history.test.mjs (the /session history, protocol version 3,
// docs/PROTOCOL.md "The /session namespace (protocol version 3)"):
//
//  - schema validation of every message against
//    docs/protocol/session-v3.schema.json (ajv, draft 2020-12);
//  - `Mirror`: a socket.io-client tab that keeps a copy of the session's
//    shared document the way a real client would: it applies its own acks
//    and the `event` / `change` entries it receives strictly by `seq`, asks
//    `sync` on every (re)connection (following `more`, taking resets), and
//    resends every change that has no answer yet with the same client+mut
//    until it is answered. Everything it sees is validated; anything wrong
//    (schema, a ver that does not follow, an entry delivered twice live, a
//    sync answer with a hole) is recorded in `violations`, never thrown
//    inside an event handler;
//  - folding a log into a document, the state rules file, small utilities.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import Ajv2020 from 'ajv/dist/2020.js';
import { io } from 'socket.io-client';
import { sleep } from './harness.mjs';
import { claims, hs256, authFor } from './session-helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SCHEMA_PATH = path.join(HERE, '..', '..', 'docs', 'protocol', 'session-v3.schema.json');

// ---- schema ------------------------------------------------------------------

const SCHEMA = JSON.parse(fs.readFileSync(SCHEMA_PATH, 'utf8'));
// strict: the schema itself is checked too (unknown keywords, types, required)
const ajv = new Ajv2020({ strict: true, allErrors: true });
ajv.addSchema(SCHEMA);
const validators = new Map();
function validator(def) {
  let v = validators.get(def);
  if (!v) {
    v = ajv.getSchema(`${SCHEMA.$id}#/$defs/${def}`);
    if (!v) throw new Error(`no $defs/${def} in ${SCHEMA_PATH}`);
    validators.set(def, v);
  }
  return v;
}

/** null if msg is valid against $defs/def, else a readable reason. */
export function schemaError(def, msg) {
  const v = validator(def);
  if (v(msg)) return null;
  const errs = v.errors.slice(0, 6).map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
  return `not a valid ${def}: ${errs.join('; ')} -- message: ${JSON.stringify(msg).slice(0, 600)}`;
}

/** Throws if msg is not valid against $defs/def; returns msg. */
export function mustMatch(def, msg, what = '') {
  const err = schemaError(def, msg);
  if (err) throw new Error(`${what ? `${what}: ` : ''}${err}`);
  return msg;
}

/** Validate an ack of `event` (single or batch) against the schema; null or reason. */
export function ackError(event, arg, ack) {
  const single = event === 'publish' ? 'publishAck' : event === 'state' ? 'changeAck' : 'syncAck';
  if (Array.isArray(arg) && event !== 'sync') {
    // an array message is answered with one batch ack... unless the whole
    // message is refused (empty or over-long array): then a refusal
    if (ack && ack.ok === false && ack.error && !('results' in ack)) return schemaError('refusal', ack);
    const e = schemaError('batchAck', ack);
    if (e) return e;
    if (ack.results.length !== arg.length) return `batch ack has ${ack.results.length} results for ${arg.length} items`;
    for (const [i, r] of ack.results.entries()) {
      const ei = schemaError(single, r);
      if (ei) return `results[${i}]: ${ei}`;
    }
    const failed = ack.results.filter((r) => r.ok === false).length;
    if (ack.failed !== failed) return `batch ack says failed ${ack.failed}, results have ${failed} refusals`;
    if (ack.ok !== (failed === 0)) return `batch ack ok=${ack.ok} with ${failed} refusals`;
    return null;
  }
  return schemaError(single, ack);
}

const INCOMING = { welcome: 'welcome', event: 'eventEntry', change: 'changeEntry', security: 'security', error: 'errorEvent' };

// ---- identities and tokens ------------------------------------------------------

export const SECRET = crypto.randomBytes(32).toString('hex');
export const NO_LIMITS = [
  '--limit-handshakes-per-ip', '0', '--limit-conns-per-ip', '0',
  '--limit-conns-per-user', '0', '--limit-events-per-socket', '0',
  '--limit-bytes-per-socket', '0', '--limit-strikes', '0',
];
export const BASE_FLAGS = ['--jwt-secret', SECRET, ...NO_LIMITS];

/** An identity: {user, session, device, fingerprint, tab}. */
export function ident(user, session, device, tab) {
  return { user, session, device, fingerprint: `fp:${user}:${device}:secret`, tab };
}
export const tokenFor = (id) => hs256(claims(id, { ttl: 3600 }), SECRET);
export const auth3 = (id, proto = 3) => authFor(id, tokenFor(id), { proto });

/** A unique name (session ids etc.). */
export const uniq = (prefix) => `${prefix}-${crypto.randomBytes(4).toString('hex')}`;

/** The state rules of the brief, written to a fresh temp dir; returns the file. */
export const RULES = {
  default: 'lww',
  rules: [
    { path: '/counters/*', strategy: 'counter' },
    { path: '/tags', strategy: 'set' },
    { path: '/doc/**', strategy: 'version' },
  ],
};
export function tempDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ts-hist-${tag}-`));
}
export function writeRules(dir, rules = RULES) {
  const f = path.join(dir, 'rules.json');
  fs.writeFileSync(f, JSON.stringify(rules));
  return f;
}

// ---- seeded randomness ---------------------------------------------------------

/** mulberry32: a small seeded PRNG; rng() in [0,1), rng.int(n) in [0,n). */
export function makeRng(seed) {
  let a = seed >>> 0;
  const rng = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  rng.int = (n) => Math.floor(rng() * n);
  rng.pick = (arr) => arr[rng.int(arr.length)];
  return rng;
}

// ---- JSON Pointer and the document ------------------------------------------------

export function ptrSegments(p) {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new Error(`not a JSON Pointer: ${p}`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}
export const clone = (v) => (v === undefined ? undefined : structuredClone(v));
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The value at pointer p of doc, or undefined. */
export function getPtr(doc, p) {
  let cur = doc;
  for (const s of ptrSegments(p)) {
    if (isObj(cur) && Object.hasOwn(cur, s)) cur = cur[s];
    else if (Array.isArray(cur) && /^(0|[1-9][0-9]*)$/.test(s) && Number(s) < cur.length) cur = cur[Number(s)];
    else return undefined;
  }
  return cur;
}

/**
 * Applies one `effects` list to doc (returns the new doc; doc itself may be
 * changed). set: the value at the path (missing parent objects are made);
 * del: removes it. Throws on a path through a non-object.
 */
export function applyEffects(doc, effects) {
  for (const ef of effects) {
    const segs = ptrSegments(ef.path);
    if (segs.length === 0) {
      if (ef.op === 'set') doc = clone(ef.value);
      else doc = {};
      continue;
    }
    let cur = doc;
    for (let i = 0; i < segs.length - 1; i++) {
      const s = segs[i];
      if (!isObj(cur)) throw new Error(`effect ${JSON.stringify(ef)} goes through a non-object at segment ${i}`);
      if (!Object.hasOwn(cur, s)) {
        if (ef.op === 'del') { cur = undefined; break; }
        cur[s] = {};
      }
      cur = cur[s];
    }
    if (cur === undefined) continue;
    if (!isObj(cur)) throw new Error(`effect ${JSON.stringify(ef)}: its parent is not an object`);
    const last = segs[segs.length - 1];
    if (ef.op === 'set') cur[last] = clone(ef.value);
    else if (ef.op === 'del') delete cur[last];
    else throw new Error(`unknown effect op ${ef.op}`);
  }
  return doc;
}

/** Folds history entries (in seq order) into a document, from `start`. */
export function fold(entries, start = {}) {
  let doc = clone(start);
  for (const e of entries) if (e.kind === 'change') doc = applyEffects(doc, e.effects);
  return doc;
}

// ---- the mirror tab --------------------------------------------------------------

let mirrorCount = 0;
const CHECK_EVERY = 10;

/**
 * Compares the tabs' checkpoints (their document at some seqs, as they held
 * it) with the fold of the log at those seqs. Returns the differences.
 */
export function checkpointDiffs(tabs, log) {
  const want = new Map();
  for (const t of tabs) for (const seq of t.checkpoints.keys()) want.set(seq, null);
  let doc = {};
  if (want.has(0)) want.set(0, canon(doc));
  for (const e of log) {
    if (e.kind === 'change') doc = applyEffects(doc, e.effects);
    if (want.has(e.seq)) want.set(e.seq, canon(doc));
  }
  const diffs = [];
  for (const t of tabs) {
    for (const [seq, c] of t.checkpoints) {
      if (want.get(seq) !== c) diffs.push(`${t.name} at seq ${seq} held ${c.slice(0, 200)}, the fold of the log there is ${String(want.get(seq)).slice(0, 200)}`);
    }
  }
  return diffs;
}

/**
 * A v3 tab with a local copy of the session: see the top of this file.
 * opts: { url, id (ident), proto (3), client (exactly-once client id; default
 * none = the server's default), reconnection (false), name, ackMs (8000) }.
 */
// Entries reach a tab once, in seq order, on one node and across nodes
// (docs/CONSISTENCY.md "The stock client across nodes"); `repeatsOk` is for
// the cases documented as exceptions (several loops in one process).
const REPEATS_ALLOWED = false;

export class Mirror {
  constructor({ url, id, proto = 3, client, reconnection = false, name, ackMs = 8000, transports = ['websocket'], repeatsOk = REPEATS_ALLOWED }) {
    mirrorCount += 1;
    this.url = url;
    this.id = id;
    this.proto = proto;
    this.client = client;
    this.name = name ?? id.tab;
    this.ackMs = ackMs;
    this.repeatsOk = repeatsOk; // several loops: a recovery may repeat an entry (below)
    this.violations = [];
    this.welcomes = [];
    this.events = []; // every `event` received live (validated)
    this.changes = []; // every `change` received live
    this.errors = [];
    this.liveSeen = new Map(); // seq -> times received live
    this.doc = {};
    this.ver = 0;
    this.lastSeq = 0;
    this.epoch = null;
    this.synced = false; // has had its first sync answer
    this.pending = new Map(); // seq -> entry waiting for the seqs before it
    this.applied = []; // {seq, kind, id, client, mut, ver} in seq order (since the last reset)
    this.resets = [];
    this.checkpoints = new Map(); // seq -> canon(doc) there, every CHECK_EVERY seqs and at each reset
    this.nextMut = 1;
    this.outstanding = new Map(); // mut -> submission
    this.subs = []; // every submission, in order
    this.syncing = null;
    this.syncAgain = false;
    this.autoSync = true; // sync and resend on every connect
    this.connects = 0;
    this.sock = io(`${url}/session`, {
      forceNew: true,
      reconnection,
      reconnectionDelay: 50,
      reconnectionDelayMax: 300,
      randomizationFactor: 0.5,
      timeout: 8000,
      transports,
      auth: authFor(id, tokenFor(id), { proto }),
    });
    this.sock.onAny((event, ...args) => this.onIncoming(event, args));
    this.sock.on('connect', () => this.onConnect());
    this.sock.on('disconnect', () => { /* acks in flight are rejected by the client */ });
  }

  violate(what) {
    this.violations.push(`${this.name}: ${what}`);
  }

  onIncoming(event, args) {
    const msg = args[0];
    const def = INCOMING[event];
    if (!def) {
      this.violate(`unexpected server event '${event}' ${JSON.stringify(args).slice(0, 300)}`);
      return;
    }
    const err = schemaError(def, msg);
    if (err) this.violate(`'${event}' ${err}`);
    // with recovery on, a trailing offset string may follow; nothing else may
    if (args.length > 2 || (args.length === 2 && typeof args[1] !== 'string')) {
      this.violate(`'${event}' with extra arguments ${JSON.stringify(args.slice(1))}`);
    }
    if (event === 'welcome') this.onWelcome(msg);
    else if (event === 'event') {
      this.events.push(msg);
      if (msg && msg.seq !== undefined) this.live(msg);
    } else if (event === 'change') {
      this.changes.push(msg);
      if (this.proto < 3) this.violate(`a proto ${this.proto} tab received a 'change'`);
      this.live(msg);
    } else if (event === 'error') this.errors.push(msg);
  }

  onWelcome(w) {
    this.welcomes.push(w);
    if (this.proto >= 3 && this.epoch && w.epoch && w.epoch !== this.epoch) {
      // not a violation by itself (a memory-only server restarted); sync tells
      this.epochChanged = true;
    }
    for (const k of ['user', 'session', 'device', 'tab']) {
      if (w[k] !== this.id[k]) this.violate(`welcome.${k} = ${w[k]}, expected ${this.id[k]}`);
    }
    if (w.proto !== this.proto) this.violate(`welcome.proto = ${w.proto}, expected ${this.proto}`);
  }

  live(e) {
    const n = (this.liveSeen.get(e.seq) ?? 0) + 1;
    this.liveSeen.set(e.seq, n);
    // Across loops of one process, a recovery replay read from the store
    // may repeat an entry whose broadcast was still on its way
    // (docs/CONSISTENCY.md): applied once all the same (by seq).
    if (n > 1 && !this.repeatsOk) this.violate(`seq ${e.seq} delivered live ${n} times`);
    if (n > 1) this.repeats = (this.repeats ?? 0) + 1;
    // and in seq order: what a stock client's recovery offset relies on
    if (n === 1 && e.seq < (this.maxLive ?? 0) && !this.repeatsOk) this.violate(`seq ${e.seq} delivered live after ${this.maxLive}`);
    this.maxLive = Math.max(this.maxLive ?? 0, e.seq);
    this.feed(e);
  }

  /** An entry (live, from a sync answer, or built from an own ack) by seq. */
  feed(e) {
    if (!Number.isInteger(e.seq)) return;
    if (e.seq <= this.lastSeq) return;
    const had = this.pending.get(e.seq);
    if (had) {
      if (had.kind !== e.kind || (had.ver !== undefined && e.ver !== undefined && had.ver !== e.ver)) {
        this.violate(`two different entries for seq ${e.seq}: ${JSON.stringify(had).slice(0, 200)} / ${JSON.stringify(e).slice(0, 200)}`);
      }
      return;
    }
    this.pending.set(e.seq, e);
    this.drain();
  }

  drain() {
    while (this.pending.has(this.lastSeq + 1)) {
      const e = this.pending.get(this.lastSeq + 1);
      this.pending.delete(this.lastSeq + 1);
      this.applyOne(e);
      this.lastSeq += 1;
      if (this.lastSeq % CHECK_EVERY === 0) this.checkpoints.set(this.lastSeq, canon(this.doc));
    }
  }

  applyOne(e) {
    if (e.kind === 'change') {
      if (this.synced && e.ver !== this.ver + 1) {
        this.violate(`change seq ${e.seq} has ver ${e.ver}, the document is at ver ${this.ver}`);
      }
      this.ver = e.ver;
      try {
        this.doc = applyEffects(this.doc, e.effects ?? []);
      } catch (err) {
        this.violate(`seq ${e.seq}: ${err.message}`);
      }
    } else if (e.kind !== 'event') {
      this.violate(`entry seq ${e.seq} has kind ${e.kind}`);
    }
    this.applied.push({ seq: e.seq, kind: e.kind, id: e.id, client: e.client, mut: e.mut, ver: e.ver });
  }

  /** Replace the local document by a sync answer's snapshot. */
  reset(r) {
    this.resets.push({ reason: r.reason, snapshot: { seq: r.snapshot.seq, ver: r.snapshot.ver }, at: this.lastSeq });
    this.doc = clone(r.snapshot.state);
    this.ver = r.snapshot.ver;
    this.lastSeq = r.snapshot.seq;
    this.checkpoints.set(this.lastSeq, canon(this.doc));
    this.applied = [];
    for (const s of [...this.pending.keys()]) if (s <= this.lastSeq) this.pending.delete(s);
    this.drain();
  }

  /** Resolves at the first welcome (throws on connect_error). */
  async ready(ms = 8000) {
    if (this.welcomes.length) return this.welcomes[0];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no welcome within ${ms} ms`)), ms);
      const onWelcome = (w) => { clearTimeout(timer); this.sock.off('connect_error', onErr); resolve(w); };
      const onErr = (e) => { clearTimeout(timer); this.sock.off('welcome', onWelcome); reject(new Error(`${this.name} refused: ${e.message} ${JSON.stringify(e.data ?? '')}`)); };
      this.sock.once('welcome', onWelcome);
      this.sock.once('connect_error', onErr);
    });
  }

  /** Waits until connected (connects if needed). */
  async connected(ms = 10000) {
    if (this.sock.connected) return;
    if (!this.sock.active) this.sock.connect();
    const t0 = Date.now();
    while (!this.sock.connected) {
      if (Date.now() - t0 > ms) throw new Error(`${this.name}: not connected within ${ms} ms`);
      await sleep(10);
    }
  }

  onConnect() {
    this.connects += 1;
    if (!this.autoSync || this.proto < 3) return;
    this.catchUp().catch(() => { /* disconnected meanwhile: the next connect syncs */ });
    for (const sub of this.outstanding.values()) this.send(sub);
  }

  /**
   * Emit with an ack (timeout ackMs); validates the ack against the schema
   * (a violation is recorded and also thrown).
   */
  async ask(event, arg, ms = this.ackMs) {
    const ack = await this.sock.timeout(ms).emitWithAck(event, arg);
    const err = ackError(event, arg, ack);
    if (err) {
      this.violate(`ack of '${event}' ${err}`);
      throw new Error(`${this.name}: ack of '${event}' ${err}`);
    }
    return ack;
  }

  /** Feed the mirror from an ack of a publish / state (single or batch). */
  takeAck(event, arg, ack) {
    if (Array.isArray(arg) && ack.results) {
      ack.results.forEach((r, i) => this.takeAck(event, arg[i], r));
      return;
    }
    if (!ack || ack.ok !== true || ack.seq === undefined) return;
    if (event === 'publish') this.feed({ kind: 'event', seq: ack.seq, id: arg.id, client: arg.client, mut: arg.mut });
    else if (event === 'state' && ack.effects && ack.ver !== undefined) {
      this.feed({ kind: 'change', seq: ack.seq, ver: ack.ver, effects: ack.effects, id: arg.id, client: arg.client, mut: arg.mut });
    }
  }

  /** publish / state with the mirror fed from the ack. */
  async publish(arg, ms) {
    const ack = await this.ask('publish', arg, ms);
    this.takeAck('publish', arg, ack);
    return ack;
  }

  async state(arg, ms) {
    const ack = await this.ask('state', arg, ms);
    this.takeAck('state', arg, ack);
    return ack;
  }

  /** One sync request, validated; the raw answer. */
  async sync(req = {}, ms) {
    const err = schemaError('clientSync', req);
    if (err) throw new Error(`test bug: ${err}`);
    return this.ask('sync', req, ms);
  }

  /**
   * Brings the mirror up to the session's newest seq: sync from lastSeq
   * (or {} the first time), following `more`; resets replace the document.
   * Checks every answer: entries in order, contiguous from `after` (or the
   * snapshot), each once; without `more` they reach the answer's `seq`.
   * Single flight: a call while one runs makes it go round once more.
   */
  catchUp() {
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.syncAgain = false;
          await this.syncOnce();
        } while (this.syncAgain);
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  async syncOnce() {
    let req = this.synced ? { after: this.lastSeq, epoch: this.epoch } : {};
    for (let page = 0; page < 10000; page++) {
      const r = await this.sync(req);
      if (!r.ok) throw new Error(`${this.name}: sync refused ${JSON.stringify(r)}`);
      this.checkAnswer(req, r);
      if (r.reset) this.reset(r);
      else if (this.epoch && r.epoch !== this.epoch) this.violate(`sync answer without reset has epoch ${r.epoch}, mine is ${this.epoch}`);
      this.epoch = r.epoch;
      this.synced = true;
      for (const e of r.entries) this.feed(e);
      if (!r.more) return r;
      const last = r.entries.length ? r.entries[r.entries.length - 1].seq : (r.snapshot?.seq ?? req.after);
      req = { after: last, epoch: r.epoch };
    }
    throw new Error('sync never ended');
  }

  checkAnswer(req, r) {
    let prev = r.reset ? r.snapshot.seq : req.after ?? 0;
    if (r.reset && req.after !== undefined && r.snapshot.seq < 0) this.violate('bad snapshot seq');
    for (const e of r.entries) {
      if (e.seq !== prev + 1) {
        this.violate(`sync ${JSON.stringify(req)}: entry seq ${e.seq} after ${prev} (expected ${prev + 1})`);
      }
      prev = e.seq;
    }
    if (!r.more && prev !== r.seq) this.violate(`sync ${JSON.stringify(req)}: entries end at ${prev} but the answer's seq is ${r.seq} and more is false`);
    if (r.more && r.entries.length === 0) this.violate(`sync ${JSON.stringify(req)}: more with no entries`);
  }

  // ---- exactly-once submissions (resent until answered) ----------------------

  /**
   * Submit a publish or state change with this tab's client id and the next
   * mut. Sent now if connected, else on connect; resent after a timeout or a
   * disconnect and on every reconnect until it is answered. Resolves to the
   * first final answer. Keeps every answer in sub.answers.
   */
  submit(event, body) {
    const msg = { ...body, client: this.client, mut: this.nextMut++ };
    const sub = { event, msg, answers: [], sends: 0, done: false, final: null };
    sub.promise = new Promise((resolve) => { sub.resolve = resolve; });
    this.outstanding.set(msg.mut, sub);
    this.subs.push(sub);
    this.send(sub);
    return sub;
  }

  send(sub) {
    if (sub.done || !this.sock.connected) return;
    sub.sends += 1;
    this.sock.timeout(this.ackMs).emitWithAck(sub.event, sub.msg).then(
      (ack) => this.answered(sub, ack),
      () => {
        // timeout or disconnect: resend now if still connected (else on connect)
        if (!sub.done && this.sock.connected) setTimeout(() => this.send(sub), 50);
      },
    );
  }

  /** Send the same message again now (an extra resend, for exactly-once tests). */
  resend(sub) {
    if (!this.sock.connected) return;
    sub.sends += 1;
    this.sock.timeout(this.ackMs).emitWithAck(sub.event, sub.msg).then((ack) => this.answered(sub, ack), () => {});
  }

  answered(sub, ack) {
    const err = ackError(sub.event, sub.msg, ack);
    if (err) this.violate(`ack of mut ${sub.msg.mut}: ${err}`);
    sub.answers.push(ack);
    if (ack?.ok === true) {
      const first = sub.answers.find((a) => a.ok === true);
      if (first.seq !== ack.seq) this.violate(`mut ${sub.msg.mut} answered with seq ${first.seq} and later ${ack.seq}`);
      this.takeAck(sub.event, sub.msg, ack);
      this.finish(sub, ack);
      return;
    }
    const code = ack?.error?.code;
    if (code === 'store_unavailable' || code === 'busy' || code === 'throttled') {
      setTimeout(() => this.send(sub), Math.min(ack.error.retry_after_ms ?? 50, 500));
      return;
    }
    this.finish(sub, ack);
  }

  finish(sub, ack) {
    if (sub.done) return;
    sub.done = true;
    sub.final = ack;
    this.outstanding.delete(sub.msg.mut);
    sub.resolve(ack);
  }

  inflight() {
    return this.outstanding.size;
  }

  /** Waits until nothing is outstanding (resending as needed). */
  async settle(ms = 60000) {
    const t0 = Date.now();
    while (this.outstanding.size) {
      if (Date.now() - t0 > ms) {
        throw new Error(`${this.name}: ${this.outstanding.size} submissions unanswered after ${ms} ms (muts ${[...this.outstanding.keys()].slice(0, 10)})`);
      }
      if (!this.sock.connected && !this.sock.active) this.sock.connect();
      await sleep(20);
    }
  }

  close() {
    this.closed = true;
    this.autoSync = false;
    this.sock.close();
  }
}

/** Open a Mirror and wait for its welcome (and, for v3, its first sync). */
export async function openMirror(opts, { sync = true } = {}) {
  const m = new Mirror(opts);
  try {
    await m.ready();
    if (sync && m.proto >= 3) await m.catchUp();
  } catch (e) {
    m.close();
    throw e;
  }
  return m;
}

/** The whole log of a session via a fresh sync chain from 0. Returns {entries, epoch, seq}. */
export async function fullLog(tab, epoch) {
  const entries = [];
  let after = 0;
  let last;
  for (;;) {
    const r = await tab.sync({ after, epoch, limit: 1000 });
    if (!r.ok) throw new Error(`sync refused: ${JSON.stringify(r)}`);
    if (r.reset) throw new Error(`sync {after: ${after}} answered with a reset (${r.reason})`);
    entries.push(...r.entries);
    last = r;
    if (!r.more) break;
    after = r.entries[r.entries.length - 1].seq;
  }
  return { entries, epoch: last.epoch, seq: last.seq };
}

/** Sorted copy (for comparing sets). */
export const sorted = (a) => [...a].sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));

/** Deterministic stringify with sorted keys (for comparing documents in messages). */
export function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (isObj(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** The wall-clock ms of an hlc / ts. */
export const hlcMs = (h) => Math.floor(h / 1024);

// ---- many nodes (js/nodes, js/rcluster): load with resends and its check ----

/** Poll pred (sync or async) until truthy; its value, or throw after ms. */
export async function waitUntil(pred, ms, what) {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timeout (${ms} ms): ${what}`);
    await sleep(20);
  }
}

/** Each tab submits m changes (increments of /counters/n, every fourth a
 * publish), resent until answered, a few in flight at a time; pushes them
 * on subs. Resolves when all were submitted. */
export function submitLoad(tabs, subs, m, type = 'load.note') {
  return Promise.all(tabs.map(async (t, i) => {
    for (let k = 0; k < m; k++) {
      const sub = t.submit(k % 4 === 3 ? 'publish' : 'state', k % 4 === 3
        ? { v: 3, type, id: `${t.client}-p${k}`, body: { i, k } }
        : { v: 3, id: `${t.client}-s${k}`, patch: [{ op: 'incr', path: '/counters/n', value: 1 }] });
      subs.push(sub);
      if (k % 5 === 4) await sub.promise;
      await sleep(10);
    }
  }));
}

/** After a load: every submission answered ok, each in the log once at the
 * seq it was acknowledged with, the log gap-free, the counter exact, and
 * every tab (and a fresh one) holding the fold of the log. Returns the doc. */
export async function checkSubmitted(tabs, subs, session) {
  const notOk = subs.filter((s) => s.final?.ok !== true).map((s) => s.final);
  assert.deepEqual(notOk.slice(0, 5), [], `every change was answered ok in the end (${notOk.length} not)`);
  const fresh = await openMirror({ url: tabs[0].url, id: ident('alice', session, 'dcheck', uniq('check')) });
  try {
    const log = (await fullLog(fresh, fresh.epoch)).entries;
    assert.deepEqual(log.map((e) => e.seq), log.map((_, k) => k + 1), 'the log is gap-free');
    const bySeq = new Map(log.map((e) => [e.seq, e]));
    for (const s of subs) {
      const e = bySeq.get(s.final.seq);
      assert.ok(e, `acknowledged change ${s.msg.id} (seq ${s.final.seq}) is in the log`);
      assert.equal(e.id, s.msg.id, `seq ${s.final.seq} holds the change acknowledged with it`);
    }
    const ids = log.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, 'no change applied twice');
    const doc = fold(log);
    const incrs = subs.filter((s) => s.event === 'state').length;
    assert.equal(doc.counters?.n, incrs, 'the counter holds every increment exactly once');
    assert.deepEqual(fresh.doc, doc, 'a fresh tab starts from the fold of the log');
    for (const t of tabs) {
      await t.catchUp();
      assert.deepEqual(t.doc, doc, `${t.name} holds the fold of the log`);
    }
    const all = tabs.flatMap((t) => t.violations);
    assert.deepEqual(all.slice(0, 20), [], `${all.length} protocol violations seen by the tabs`);
    return doc;
  } finally {
    fresh.close();
  }
}
