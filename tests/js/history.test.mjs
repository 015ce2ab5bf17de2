// The /session history (protocol version 3, docs/PROTOCOL.md "The /session
// namespace (protocol version 3)") end to end, with the real socket.io-client
// against tabsyncd. Every message received (welcome, event, change, acks,
// sync answers) is validated against docs/protocol/session-v3.schema.json;
// the tabs are "mirrors" (history-helpers.mjs) that apply entries by seq and
// keep their own copy of the shared document, so every test can also compare
// what each tab holds with what a fresh tab's `sync {}` says.
//
//  1. v3 basics: welcome epoch/seq/ver, seq 1,2,3 across publishers, ephemeral
//     envelopes (no seq, not replayed), a v2 tab, --history off;
//  2. shared state: merge and JSON patch, effects/results, each strategy (lww,
//     counter, set, version), every refusal code with nothing changed;
//  3. batched publish/state messages;
//  4. exactly-once: resends before and after the ack, across connections;
//  5. replay: 1,000 missed events, the 1 MiB page bound, compaction ("trimmed"),
//     wrong epoch, initial, ahead;
//  6. convergence under chaos: 2-10 tabs, every strategy, connections dropped
//     and restored, resends; a strict checker (seed printed; TS_SEED=n repeats);
//  7. kill -9 with --store-sqlite: every acked change survives, nothing half
//     applied, same epoch; a memory-only restart changes the epoch;
//  8. the stock socket.io-client's own recovery backed by the log:
//     recovered === true after a drop and after a restart, missed entries
//     once and in order, nothing for another identity or another epoch.
//
// tabsyncd only (skipped with TS_TARGET=node).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { io } from 'socket.io-client';
import { startServer, IS_NODE, CLUSTER, sleep } from './harness.mjs';
import { encodeFrame, decodeFrame } from './raw.mjs';
import {
  BASE_FLAGS, ident, uniq, tempDir, auth3, writeRules, makeRng, openMirror, fullLog, fold,
  applyEffects, getPtr, sorted, canon, hlcMs, schemaError, mustMatch, clone, checkpointDiffs,
} from './history-helpers.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference has no /session history)' } : {};
// Under TS_CLUSTER the store is Redis: what is about one process's own store
// (its SQLite file, a memory-only restart) runs in the single-node suite;
// nodes.test.mjs kills and restarts nodes and Redis instead.
const ONE_PROCESS = CLUSTER ? { skip: 'one process\'s own store (runs in js/history; a cluster keeps the history in Redis)' } : {};
const EPOCH_RE = /^[0-9a-f]{16}$/;
const HLC_PER_MS = 1024; // hlc = ms * 1024 + counter (docs/PROTOCOL.md)

/** Poll pred until true or throw after ms. */
async function waitUntil(pred, ms, what) {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timeout (${ms} ms): ${what}`);
    await sleep(15);
  }
}

/** Every violation the mirrors recorded (schema, order, ver...) fails the test. */
function noViolations(...tabs) {
  const all = tabs.flatMap((t) => t.violations);
  assert.deepEqual(all.slice(0, 20), [], `${all.length} protocol violations seen by the tabs`);
}

/** A suite's server and its tabs, all stopped in after(). */
function suiteEnv() {
  const env = { srv: null, tabs: new Set(), dirs: [] };
  env.open = async (id, opts = {}, o2) => {
    const m = await openMirror({ url: env.srv.url, id, ...opts }, o2);
    env.tabs.add(m);
    return m;
  };
  env.cleanup = async () => {
    for (const t of env.tabs) t.close();
    env.tabs.clear();
    await env.srv?.stop();
    for (const d of env.dirs) fs.rmSync(d, { recursive: true, force: true });
  };
  return env;
}

async function startWithRules(env, extra = []) {
  const dir = tempDir('rules');
  env.dirs.push(dir);
  env.srv = await startServer({ testApp: false, extra: [...BASE_FLAGS, '--state-rules', writeRules(dir), ...extra] });
  return env.srv;
}

/** What a fresh tab sees: {epoch, seq, ver, doc} from sync {} (following more). */
async function freshView(env, session, user = 'alice') {
  const f = await env.open(ident(user, session, 'dfresh', uniq('fresh')));
  const view = { epoch: f.epoch, seq: f.lastSeq, ver: f.ver, doc: clone(f.doc), reset: f.resets[0] };
  noViolations(f);
  f.close();
  env.tabs.delete(f);
  return view;
}

/**
 * A raw websocket tab: upgrade, Engine.IO open, then the CONNECT with
 * `auth`; resolves to the text frames that came in each TCP read after the
 * CONNECT was sent, up to and including the one with the welcome.
 */
async function connectReads(port, auth) {
  const sock = net.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  let buf = Buffer.alloc(0);
  let reads = [];
  const waiters = [];
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); reads.push(d); waiters.splice(0).forEach((w) => w()); });
  sock.on('error', () => {});
  const until = async (pred, what) => {
    const deadline = Date.now() + 5000;
    for (let v = pred(); !v; v = pred()) {
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}: ${buf.toString('latin1').slice(0, 200)}`);
      await new Promise((r) => { const t = setTimeout(r, 50); waiters.push(() => { clearTimeout(t); r(); }); });
    }
  };
  const key = crypto.randomBytes(16).toString('base64');
  sock.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await until(() => { const i = buf.indexOf('\r\n\r\n'); return i >= 0 && decodeFrame(buf.subarray(i + 4)); }, 'the open packet');
  reads = [];
  sock.write(encodeFrame({ payload: `40/session,${JSON.stringify(auth)}` }));
  await until(() => reads.some((d) => d.includes('"welcome"')), 'the welcome');
  sock.destroy();
  return reads.map((d) => {
    const texts = [];
    for (let f = decodeFrame(d); f; d = d.subarray(f.size), f = decodeFrame(d)) texts.push(f.text);
    return texts;
  });
}

let envN = 0;
const env3 = (fields = {}) => { envN += 1; return { v: 3, type: 'test.note', id: `n-${envN}`, body: { n: envN }, ...fields }; };
let chN = 0;
const chg = (fields) => { chN += 1; return { v: 3, id: `c-${chN}`, ...fields }; };

// ==== 1. v3 basics ===============================================================

describe('history 1: v3 basics', SKIP, () => {
  const env = suiteEnv();
  before(async () => { await startWithRules(env); });
  after(() => env.cleanup());

  it('a v3 tab\'s CONNECT reply waits for its welcome (which waits for the history): one write for both', { timeout: 20000 }, async () => {
    // the server's writes, counted: 2 per handshake (101 + open, then
    // CONNECT reply + welcome); 3 when the reply leaves a turn before the
    // welcome. Reads alone cannot tell: the second write usually lands
    // before the client reads the first.
    const writes = async () => {
      const text = await (await fetch(`${env.srv.url}/metrics`)).text();
      return Number(/^tabsync_socket_writes_total (\d+)$/m.exec(text)?.[1]);
    };
    const N = 20;
    const w0 = CLUSTER ? 0 : await writes();
    for (let i = 0; i < N; i++) {
      const id = ident('alice', uniq('b1w'), 'd1', `tw${i}`);
      const reads = await connectReads(env.srv.port, auth3(id, 4));
      assert.equal(reads.length, 1, `reads after the CONNECT: ${JSON.stringify(reads)}`);
      const [reply, welcome] = reads[0];
      assert.match(reply, /^40\/session,\{"sid":"[^"]+","pid":"[^"]+"\}$/);
      assert.ok(welcome.startsWith('42/session,["welcome",'), welcome);
      const w = JSON.parse(welcome.slice('42/session,'.length))[1];
      assert.equal(w.tab, `tw${i}`);
      assert.match(w.epoch ?? '', EPOCH_RE, 'the welcome says where the history is');
    }
    if (!CLUSTER) { // one process: its own counter (a cluster spreads the tabs)
      const d = (await writes()) - w0;
      assert.ok(d >= 2 * N && d <= 2 * N + 4, `${d} writes for ${N} handshakes and one /metrics answer`);
    }
  });

  it('welcome says epoch/seq/ver; session publishes get seq 1,2,3 gap-free across publishers with kind and ts; the same epoch everywhere', { timeout: 20000 }, async () => {
    const S = uniq('b1');
    const a = await env.open(ident('alice', S, 'd1', 'ta'), {}, { sync: false });
    const b = await env.open(ident('alice', S, 'd1', 'tb'), {}, { sync: false });
    const c = await env.open(ident('alice', S, 'd2', 'tc'), {}, { sync: false });
    for (const t of [a, b, c]) {
      const w = t.welcomes[0];
      assert.match(w.epoch ?? '', EPOCH_RE, `welcome.epoch of ${t.name}: ${JSON.stringify(w)}`);
      assert.equal(w.seq, 0, 'a new session has no entries');
      assert.equal(w.ver, 0, 'a new session has state version 0');
    }
    const epoch0 = a.welcomes[0].epoch;
    const t0 = Date.now();
    const acks = [];
    for (const [t, i] of [[a, 1], [b, 2], [c, 3]]) {
      const e = env3({ id: `p${i}`, body: { i } });
      mustMatch('clientEnvelope', e);
      const ack = await t.publish(e);
      assert.deepEqual(Object.keys(ack).sort(), ['id', 'ok', 'seq', 'ts'], `ack ${JSON.stringify(ack)}`);
      assert.equal(ack.ok, true);
      assert.equal(ack.id, `p${i}`);
      assert.equal(ack.seq, i, `publish ${i} got seq ${ack.seq}: seqs are 1, 2, 3 per session across publishers`);
      acks.push(ack);
    }
    const t1 = Date.now();
    for (let i = 0; i < 3; i++) {
      if (i) assert.ok(acks[i].ts > acks[i - 1].ts, 'ts strictly increasing');
      assert.ok(hlcMs(acks[i].ts) >= t0 - 2000 && hlcMs(acks[i].ts) <= t1 + 2000, `ts ${acks[i].ts} is ms*1024+counter of now`);
    }
    // every other tab got each entry once, in seq order, with kind/seq/ts; never its own
    const senders = { p1: 'ta', p2: 'tb', p3: 'tc' };
    for (const t of [a, b, c]) {
      await waitUntil(() => t.events.length >= 2, 5000, `${t.name} receives 2 events`);
    }
    await sleep(150);
    for (const t of [a, b, c]) {
      const got = t.events.map((e) => e.id);
      const want = ['p1', 'p2', 'p3'].filter((id) => senders[id] !== t.id.tab);
      assert.deepEqual(got, want, `${t.name} events`);
      for (const e of t.events) {
        const i = Number(e.id.slice(1));
        assert.equal(e.kind, 'event');
        assert.equal(e.seq, i);
        assert.equal(e.ts, acks[i - 1].ts, 'the entry carries the ack\'s ts');
        assert.deepEqual(e.from, { user: 'alice', device: i === 3 ? 'd2' : 'd1', tab: senders[e.id] });
        assert.deepEqual(e.body, { i });
      }
    }
    // a later tab: welcome at seq 3 with the same epoch; sync gives the 3 entries
    const d = await env.open(ident('alice', S, 'd3', 'td'), {}, { sync: false });
    assert.equal(d.welcomes[0].seq, 3);
    assert.equal(d.welcomes[0].ver, 0);
    const r = await d.sync({ after: 0, epoch: epoch0 });
    assert.equal(r.ok, true);
    assert.deepEqual(r.entries.map((e) => [e.seq, e.id, e.kind]), [[1, 'p1', 'event'], [2, 'p2', 'event'], [3, 'p3', 'event']]);
    assert.equal(r.seq, 3);
    assert.equal(r.more, false);
    // a tab that came in at the first welcome and applied 1..3 live resumes without a reset
    const resume = await a.sync({ after: 3, epoch: epoch0 });
    assert.equal(resume.reset, undefined, `sync {after: 3, epoch: <the epoch of the first welcome>} must not reset (nothing was lost): ${JSON.stringify(resume).slice(0, 300)}`);
    assert.equal(d.welcomes[0].epoch, epoch0, 'the epoch of a session does not change while nothing is lost');
    // a state change's ack carries the same epoch as the welcome
    const sa = await a.state(chg({ merge: { x: 1 } }));
    assert.equal(sa.ok, true, JSON.stringify(sa));
    assert.equal(sa.epoch, epoch0, 'the change ack\'s epoch is the welcome\'s');
    assert.equal(sa.seq, 4);
    noViolations(a, b, c, d);
  });

  it('presence/telemetry and to:user / to:device envelopes are relayed without seq and are not in a later sync', { timeout: 20000 }, async () => {
    const S = uniq('b2');
    const a = await env.open(ident('alice', S, 'd1', 'ta'));
    const b = await env.open(ident('alice', S, 'd1', 'tb')); // same device
    const c = await env.open(ident('alice', S, 'd2', 'tc')); // same user, other device
    const seq0 = (await a.publish(env3({ id: 'logged-1' }))).seq;
    assert.equal(seq0, 1);
    const cases = [
      [{ id: 'pres-1', prio: 'presence' }, [b, c]],
      [{ id: 'tele-1', prio: 'telemetry' }, [b, c]],
      [{ id: 'user-1', to: 'user' }, [b, c]],
      [{ id: 'dev-1', to: 'device' }, [b]],
      [{ id: 'pres-2', prio: 'presence', to: 'session', client: 'eph', mut: 7 }, [b, c]],
    ];
    for (const [fields, receivers] of cases) {
      const e = env3(fields);
      mustMatch('clientEnvelope', e);
      const ack = await a.publish(e);
      assert.deepEqual(ack, { ok: true, id: e.id }, `ephemeral ${e.id}: ack without seq/ts`);
      for (const r of receivers) {
        await waitUntil(() => r.events.some((x) => x.id === e.id), 5000, `${e.id} reaches ${r.name}`);
      }
    }
    await sleep(200);
    for (const t of [b, c]) {
      for (const x of t.events.filter((e) => e.id !== 'logged-1')) {
        assert.equal(x.seq, undefined, `${x.id}: no seq`);
        assert.equal(x.kind, undefined, `${x.id}: no kind`);
        assert.equal(x.ts, undefined, `${x.id}: no ts`);
      }
    }
    assert.equal(c.events.some((x) => x.id === 'dev-1'), false, 'to:device stays on the device');
    // nothing of it is logged
    const r = await b.sync({ after: 0, epoch: b.epoch });
    assert.deepEqual(r.entries.map((e) => e.id), ['logged-1'], 'only the session event is in the history');
    assert.equal(r.seq, 1);
    const w = (await env.open(ident('alice', S, 'd9', 'tw'), {}, { sync: false })).welcomes[0];
    assert.equal(w.seq, 1);
    noViolations(a, b, c);
  });

  it('a proto 2 tab publishes and receives as before (its session events are logged with seq), gets unknown_event for state and sync, and no change events', { timeout: 20000 }, async () => {
    const S = uniq('b3');
    const a = await env.open(ident('alice', S, 'd1', 'ta'));
    const v2 = await env.open(ident('alice', S, 'd2', 'tv2'), { proto: 2 }, { sync: false });
    const w2 = v2.welcomes[0];
    assert.equal(w2.proto, 2);
    for (const k of ['epoch', 'seq', 'ver']) assert.equal(w2[k], undefined, `a v2 welcome has no ${k}`);
    // v2 publishes: logged (the ack is checked in the next test)
    const e2 = { v: 2, type: 'old.note', id: 'v2-1', body: { old: true } };
    const ack2 = await v2.publish(e2);
    assert.equal(ack2.ok, true);
    await waitUntil(() => a.events.some((e) => e.id === 'v2-1'), 5000, 'v3 tab receives the v2 event');
    const got = a.events.find((e) => e.id === 'v2-1');
    assert.equal(got.kind, 'event');
    assert.equal(got.seq, 1);
    assert.equal(got.v, 2);
    // v3 publishes: the v2 tab gets it with kind/seq/ts added
    const ack3 = await a.publish(env3({ id: 'v3-1' }));
    assert.equal(ack3.seq, 2);
    await waitUntil(() => v2.events.some((e) => e.id === 'v3-1'), 5000, 'v2 tab receives the v3 event');
    const ev = v2.events.find((e) => e.id === 'v3-1');
    assert.equal(ev.seq, 2);
    assert.equal(ev.kind, 'event');
    assert.equal(ev.ts, ack3.ts);
    // state and sync do not exist for v2
    for (const [event, arg] of [['state', chg({ merge: { a: 1 } })], ['sync', {}]]) {
      const r = await v2.sock.timeout(5000).emitWithAck(event, arg);
      assert.equal(schemaError('refusal', r), null, schemaError('refusal', r) ?? '');
      assert.equal(r.error.code, 'unknown_event', `v2 ${event}: ${JSON.stringify(r)}`);
    }
    // a v3 change reaches v3 tabs only
    const b = await env.open(ident('alice', S, 'd3', 'tb'));
    const ca = await a.state(chg({ merge: { seen: 'by v3' } }));
    assert.equal(ca.ok, true, JSON.stringify(ca));
    await waitUntil(() => b.changes.length === 1, 5000, 'the v3 tab gets the change');
    await sleep(200);
    assert.equal(v2.changes.length, 0, 'a v2 tab gets no change events');
    assert.equal(v2.events.some((e) => e.kind === 'change'), false, 'nor the change as an event');
    noViolations(a, b, v2);
  });

  it('a proto 2 publisher\'s ack of a logged envelope stays {ok, id} (versions table), while the entry has seq and ts', { timeout: 20000 }, async () => {
    const S = uniq('b3b');
    const a = await env.open(ident('alice', S, 'd1', 'ta'));
    const v2 = await env.open(ident('alice', S, 'd2', 'tv2'), { proto: 2 }, { sync: false });
    const ack = await v2.publish({ v: 2, type: 'old.note', id: 'v2-ack', body: 1 });
    await waitUntil(() => a.events.length === 1, 5000, 'logged and relayed');
    const e = a.events[0];
    assert.equal(e.seq, 1);
    assert.ok(Number.isInteger(e.ts));
    assert.deepEqual(ack, { ok: true, id: 'v2-ack' }, 'docs/PROTOCOL.md "What each version gets", proto 1, 2: "the ack stays {ok: true, id}"');
    noViolations(a, v2);
  });

  it('one sender\'s envelopes reach each recipient in publish order within the history (by seq) and within the ephemeral traffic', { timeout: 20000 }, async () => {
    const S = uniq('b5');
    const a = await env.open(ident('alice', S, 'd1', 'ta'));
    const b = await env.open(ident('alice', S, 'd2', 'tb'));
    const logged = [];
    const eph = [];
    const jobs = [];
    for (let i = 0; i < 30; i++) {
      // ephemeral: to the user (not presence/telemetry, which may be coalesced)
      const e = env3({ id: `o-${i}`, ...(i % 2 ? { to: 'user' } : {}) });
      (i % 2 ? eph : logged).push(e.id);
      jobs.push(a.publish(e));
    }
    // the same in one publish message (an array is published in its order)
    const arr = Array.from({ length: 30 }, (_, i) => env3({ id: `ob-${i}`, ...(i % 3 === 0 ? { to: 'user' } : {}) }));
    for (const e of arr) (e.to ? eph : logged).push(e.id);
    jobs.push(a.publish(arr));
    const acks = await Promise.all(jobs);
    await waitUntil(() => b.events.length === 60, 5000, '60 events');
    const got = b.events.map((e) => e.id);
    assert.deepEqual(got.filter((id) => logged.includes(id)), logged, 'history entries in publish order');
    assert.deepEqual(got.filter((id) => eph.includes(id)), eph, 'ephemeral envelopes in publish order');
    const seqs = b.events.filter((e) => e.seq).map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'history entries arrive by seq');
    const ackSeqs = acks.slice(0, 30).filter((k) => k.seq).map((k) => k.seq);
    assert.deepEqual(ackSeqs, [...ackSeqs].sort((x, y) => x - y), 'seqs follow publish order');
    noViolations(a, b);
  });

  it('--history off: nothing is logged, events have no seq, state and sync are unknown_event for a v3 tab', { timeout: 20000 }, async () => {
    const off = suiteEnv();
    try {
      off.srv = await startServer({ testApp: false, extra: [...BASE_FLAGS, '--history', 'off'] });
      const S = uniq('b4');
      const a = await off.open(ident('alice', S, 'd1', 'ta'), {}, { sync: false });
      const b = await off.open(ident('alice', S, 'd2', 'tb'), {}, { sync: false });
      for (const k of ['epoch', 'seq', 'ver']) assert.equal(a.welcomes[0][k], undefined, `welcome without history has no ${k}: ${JSON.stringify(a.welcomes[0])}`);
      const ack = await a.publish(env3({ id: 'off-1', client: 'c1', mut: 1 }));
      assert.deepEqual(ack, { ok: true, id: 'off-1' });
      await waitUntil(() => b.events.length === 1, 5000, 'relayed');
      const e = b.events[0];
      assert.equal(e.id, 'off-1');
      for (const k of ['seq', 'kind', 'ts']) assert.equal(e[k], undefined, `no ${k} without history`);
      for (const [event, arg] of [['state', chg({ merge: { a: 1 } })], ['sync', {}]]) {
        const r = await a.sock.timeout(5000).emitWithAck(event, arg);
        assert.equal(schemaError('refusal', r), null);
        assert.equal(r.error.code, 'unknown_event', `${event} with --history off: ${JSON.stringify(r)}`);
      }
      noViolations(a, b);
    } finally {
      await off.cleanup();
    }
  });
});

// ==== 2 + 3. shared state, refusals, batches ========================================

describe('history 2: shared state and its strategies', SKIP, () => {
  const env = suiteEnv();
  before(async () => { await startWithRules(env); });
  after(() => env.cleanup());

  /** Three tabs of one session: a, b (writers), o (observer). */
  async function trio(tag) {
    const S = uniq(tag);
    const a = await env.open(ident('alice', S, 'da', 'ta'), { client: 'ca' });
    const b = await env.open(ident('alice', S, 'db', 'tb'), { client: 'cb' });
    const o = await env.open(ident('alice', S, 'do', 'to'));
    return { S, a, b, o };
  }

  /** All tabs converge to the fresh view (wait for live delivery first). */
  async function converged(S, tabs) {
    const view = await freshView(env, S);
    for (const t of tabs) {
      await waitUntil(() => t.lastSeq >= view.seq, 5000, `${t.name} reaches seq ${view.seq} (at ${t.lastSeq})`);
      assert.deepEqual(t.doc, view.doc, `${t.name}'s document equals a fresh tab's`);
      assert.equal(t.ver, view.ver, `${t.name}'s ver`);
    }
    return view;
  }

  it('merge patch and JSON patch: ack with seq/ver/ts/epoch, effects and results; other tabs get the change entry', { timeout: 20000 }, async () => {
    const { S, a, b, o } = await trio('st1');
    const m = chg({ merge: { title: 'Groceries', meta: { n: 1, m: 'x' } } });
    mustMatch('clientChange', m);
    const ack = await a.state(m);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.id, m.id);
    assert.equal(ack.seq, 1);
    assert.equal(ack.ver, 1);
    assert.match(ack.epoch, EPOCH_RE);
    assert.deepEqual(applyEffects({}, ack.effects), { title: 'Groceries', meta: { n: 1, m: 'x' } }, 'effects give the document');
    assert.ok(ack.results.length >= 1 && ack.results.every((r) => r.status === 'applied'), JSON.stringify(ack.results));
    for (const r of ack.results) assert.deepEqual(r.value, getPtr(a.doc, r.path), `results value at ${r.path}`);
    for (const t of [b, o]) {
      await waitUntil(() => t.changes.length === 1, 5000, `${t.name} receives the change`);
      const c = t.changes[0];
      assert.equal(c.kind, 'change');
      assert.equal(c.seq, 1);
      assert.equal(c.ver, 1);
      assert.equal(c.ts, ack.ts);
      assert.equal(c.id, m.id);
      assert.equal(c.client, 'd/da/t/ta', 'no client given: the default d/<device>/t/<tab>');
      assert.equal(c.prio, 'state');
      assert.equal(c.to, 'session');
      assert.deepEqual(c.from, { user: 'alice', device: 'da', tab: 'ta' });
      assert.deepEqual(c.effects, ack.effects, 'the entry\'s effects are the ack\'s');
    }
    assert.equal(a.changes.length, 0, 'the writer does not receive its own change');
    // RFC 6902 operations; a write inside an array sets the whole array
    const p = chg({
      patch: [
        { op: 'add', path: '/list', value: [1, 2] },
        { op: 'add', path: '/list/1', value: 9 },
        { op: 'add', path: '/list/-', value: 7 },
        { op: 'remove', path: '/meta/m' },
        { op: 'copy', from: '/title', path: '/title2' },
        { op: 'move', from: '/title2', path: '/t3' },
        { op: 'replace', path: '/meta/n', value: 2 },
        { op: 'test', path: '/t3', value: 'Groceries' },
      ],
    });
    mustMatch('clientChange', p);
    const pa = await a.state(p);
    assert.equal(pa.ok, true, JSON.stringify(pa));
    assert.equal(pa.ver, 2);
    const want = { title: 'Groceries', meta: { n: 2 }, list: [1, 9, 2, 7], t3: 'Groceries' };
    assert.deepEqual(a.doc, want);
    for (const ef of pa.effects) {
      const segs = ef.path.split('/');
      const parent = getPtr(want, segs.slice(0, -1).join('/'));
      assert.ok(!Array.isArray(parent), `effect ${JSON.stringify(ef)} is inside an array`);
    }
    // merge null deletes
    const d = await b.state(chg({ merge: { t3: null, meta: { n: null } } }));
    assert.equal(d.ok, true, JSON.stringify(d));
    assert.ok(d.effects.some((e) => e.op === 'del' && e.path === '/t3'), `del effect: ${JSON.stringify(d.effects)}`);
    const view = await converged(S, [a, b, o]);
    assert.deepEqual(view.doc, { title: 'Groceries', meta: {}, list: [1, 9, 2, 7] });
    noViolations(a, b, o);
  });

  it('lww: the greater (hlc, client) wins; an older write is superseded, reported with the current value, and changes nothing', { timeout: 20000 }, async () => {
    const { S, a, b, o } = await trio('st2');
    const now = Date.now();
    const h = now * HLC_PER_MS + 5;
    const w1 = await a.state(chg({ client: 'ca', mut: 1, hlc: h, patch: [{ op: 'add', path: '/color', value: 'red' }] }));
    assert.equal(w1.ok, true, JSON.stringify(w1));
    assert.deepEqual(w1.results, [{ path: '/color', status: 'applied', value: 'red' }]);
    // older clock: superseded
    const w2 = await b.state(chg({ client: 'cb', mut: 1, hlc: (now - 5000) * HLC_PER_MS, patch: [{ op: 'add', path: '/color', value: 'blue' }] }));
    assert.equal(w2.ok, true, `a superseded lww write is not an error: ${JSON.stringify(w2)}`);
    assert.deepEqual(w2.results, [{ path: '/color', status: 'superseded', value: 'red' }]);
    assert.equal(w2.effects.some((e) => e.path === '/color'), false, 'no effect for a superseded write');
    // same hlc: the greater client wins ('cz' > 'ca'), the smaller loses ('c0' < 'cz')
    const w3 = await b.state(chg({ client: 'cz', mut: 1, hlc: h, patch: [{ op: 'add', path: '/color', value: 'green' }] }));
    assert.deepEqual(w3.results, [{ path: '/color', status: 'applied', value: 'green' }], JSON.stringify(w3));
    const w4 = await a.state(chg({ client: 'c0', mut: 1, hlc: h, patch: [{ op: 'add', path: '/color', value: 'pink' }] }));
    assert.deepEqual(w4.results, [{ path: '/color', status: 'superseded', value: 'green' }], JSON.stringify(w4));
    // without hlc: the server's clock (later than h) wins
    await sleep(5);
    const w5 = await a.state(chg({ merge: { color: 'black' } }));
    assert.deepEqual(w5.results, [{ path: '/color', status: 'applied', value: 'black' }], JSON.stringify(w5));
    // the change entries carry the hlc the write was judged by
    await waitUntil(() => o.changes.length === 5, 5000, 'observer gets 5 changes');
    assert.equal(o.changes[0].hlc, h, 'entry hlc = the client\'s hlc');
    assert.ok(o.changes[4].hlc > h, 'a write without hlc gets the server clock');
    const view = await converged(S, [a, b, o]);
    assert.equal(view.doc.color, 'black');
    noViolations(a, b, o);
  });

  it('counter: incr creates and adds exactly, concurrent increments from two tabs commute', { timeout: 20000 }, async () => {
    const { S, a, b, o } = await trio('st3');
    const jobs = [];
    for (let i = 0; i < 40; i++) {
      jobs.push(a.state(chg({ patch: [{ op: 'incr', path: '/counters/hits', value: 1 }] })));
      jobs.push(b.state(chg({ patch: [{ op: 'incr', path: '/counters/hits', value: 2 }] })));
    }
    jobs.push(b.state(chg({ patch: [{ op: 'incr', path: '/counters/hits', value: -3 }, { op: 'incr', path: '/counters/other', value: 1.5 }] })));
    const acks = await Promise.all(jobs);
    for (const k of acks) assert.equal(k.ok, true, JSON.stringify(k));
    const last = acks.reduce((x, y) => (y.ver > x.ver ? y : x));
    assert.equal(last.results.find((r) => r.path === '/counters/hits').value, 117, 'the change with the greatest ver sees 40*1 + 40*2 - 3');
    assert.ok(acks.every((k) => k.results.find((r) => r.path === '/counters/hits').value <= 120));
    assert.equal(new Set(acks.map((k) => k.ver)).size, acks.length, 'one ver per change');
    const view = await converged(S, [a, b, o]);
    assert.deepEqual(view.doc, { counters: { hits: 117, other: 1.5 } });
    noViolations(a, b, o);
  });

  it('set: sadd/srem keep an array without duplicates; a remove that did not observe an add keeps it (OR-set)', { timeout: 20000 }, async () => {
    const { S, a, b, o } = await trio('st4');
    const add = (t, v, extra = {}) => t.state(chg({ ...extra, patch: [{ op: 'sadd', path: '/tags', value: v }] }));
    const rem = (t, v, base) => t.state(chg({ base, patch: [{ op: 'srem', path: '/tags', value: v }] }));
    const x = await add(a, 'x');
    assert.deepEqual(x.results, [{ path: '/tags', status: 'applied', value: ['x'] }], JSON.stringify(x));
    await add(a, 'y');
    const again = await add(b, 'x');
    assert.deepEqual(sorted(again.results[0].value), ['x', 'y'], 'no duplicate element');
    // b saw everything: its remove takes x
    await waitUntil(() => b.lastSeq === 3, 5000, 'b up to date');
    const r1 = await rem(b, 'x', b.ver);
    assert.deepEqual(r1.results[0].value, ['y'], JSON.stringify(r1));
    // a concurrent add survives a remove that did not observe it
    const z = await add(a, 'z');
    const r2 = await rem(b, 'z', z.ver - 1);
    assert.equal(r2.ok, true, JSON.stringify(r2));
    assert.deepEqual(sorted(r2.results[0].value), ['y', 'z'], `srem with base ${z.ver - 1} must keep the add at ver ${z.ver}: ${JSON.stringify(r2)}`);
    // once observed, it goes
    const r3 = await rem(b, 'z', z.ver);
    assert.deepEqual(r3.results[0].value, ['y'], JSON.stringify(r3));
    // the element re-added concurrently with a remove of an older add stays
    const w1 = await add(a, 'w');
    const w2 = await add(o, 'w');
    const r4 = await rem(b, 'w', w1.ver);
    assert.deepEqual(sorted(r4.results[0].value), ['w', 'y'], `the add at ver ${w2.ver} was not observed by base ${w1.ver}: ${JSON.stringify(r4)}`);
    // structured values are elements too
    const s1 = await add(a, { k: 1 });
    const s2 = await rem(b, { k: 1 }, s1.ver);
    assert.deepEqual(sorted(s2.results[0].value), ['w', 'y']);
    const view = await converged(S, [a, b, o]);
    assert.deepEqual(sorted(view.doc.tags), ['w', 'y']);
    noViolations(a, b, o);
  });

  it('version: a stale base is refused with conflict, the current value and ver; a rebased write applies; own writes never conflict; base_required', { timeout: 20000 }, async () => {
    const { S, a, b, o } = await trio('st5');
    const put = (t, p, value, base, extra = {}) => {
      const c = chg({ ...extra, patch: [{ op: 'add', path: p, value }] });
      if (base !== undefined) c.base = base;
      return t.state(c);
    };
    const d0 = await put(a, '/doc', {}, 0);
    assert.equal(d0.ok, true, JSON.stringify(d0));
    const v1 = await put(a, '/doc/title', 'v1', d0.ver);
    assert.equal(v1.ok, true, JSON.stringify(v1));
    const seqBefore = v1.seq;
    await waitUntil(() => o.changes.length === 2, 5000, 'observer has both');
    const oBefore = o.changes.length; // after both arrived: an ack may come before its broadcast (another node)
    // b writes against the version before a's write: conflict
    const c1 = await put(b, '/doc/title', 'v2', d0.ver);
    assert.equal(c1.ok, false, `stale base must be refused: ${JSON.stringify(c1)}`);
    assert.equal(c1.error.code, 'conflict');
    assert.deepEqual(c1.conflicts, [{ path: '/doc/title', ver: v1.ver, value: 'v1' }]);
    assert.equal(c1.ver, v1.ver, 'the refusal carries the current ver');
    // refused changes are not recorded: a resend (same client+mut) is refused again, not a duplicate
    const cm = chg({ client: 'cb', mut: 77, base: d0.ver, patch: [{ op: 'add', path: '/doc/title', value: 'v2' }] });
    const cm1 = await b.state(cm);
    const cm2 = await b.state(cm);
    assert.equal(cm1.error?.code, 'conflict', JSON.stringify(cm1));
    assert.equal(cm2.error?.code, 'conflict', `a refused change resent is evaluated again: ${JSON.stringify(cm2)}`);
    // rebased: applies
    const c2 = await put(b, '/doc/title', 'v2', v1.ver);
    assert.equal(c2.ok, true, JSON.stringify(c2));
    assert.equal(c2.seq, seqBefore + 1, 'the refused change took no seq');
    // own writes: a writes /doc/mine twice against the same old base
    const m1 = await put(a, '/doc/mine', 1, c2.ver);
    const m2 = await put(a, '/doc/mine', 2, c2.ver);
    assert.equal(m1.ok, true, JSON.stringify(m1));
    assert.equal(m2.ok, true, `own writes never conflict: ${JSON.stringify(m2)}`);
    // other paths are not affected by a stale base
    const other = await put(b, '/doc/else', 'e', d0.ver);
    assert.equal(other.ok, true, `a different unit has not changed since base: ${JSON.stringify(other)}`);
    // base_required
    const nb = await put(b, '/doc/title', 'nobase');
    assert.equal(nb.ok, false);
    assert.equal(nb.error.code, 'base_required', JSON.stringify(nb));
    const view = await converged(S, [a, b, o]);
    assert.deepEqual(view.doc, { doc: { title: 'v2', mine: 2, else: 'e' } });
    assert.equal(o.changes.length - oBefore, 4, 'the observer got the 4 applied changes, not the refusals');
    noViolations(a, b, o);
  });

  it('refusals: every malformed change gets its code and the current ver; nothing changes and other tabs receive nothing', { timeout: 30000 }, async () => {
    const { S, a, b, o } = await trio('st6');
    const setup = await a.state(chg({
      base: 0,
      patch: [
        { op: 'add', path: '/title', value: 'T' },
        { op: 'add', path: '/obj', value: { a: 1 } },
        { op: 'add', path: '/list', value: [1] },
        { op: 'incr', path: '/counters/n', value: 1 },
        { op: 'sadd', path: '/tags', value: 'x' },
      ],
    }));
    assert.equal(setup.ok, true, JSON.stringify(setup));
    await waitUntil(() => o.lastSeq === 1 && b.lastSeq === 1, 5000, 'tabs at seq 1');
    const before = await freshView(env, S);
    const oChanges = o.changes.length;
    const bChanges = b.changes.length;
    const ops1001 = Array.from({ length: 1001 }, (_, i) => ({ op: 'add', path: `/big${i}`, value: i }));
    const future = (Date.now() + 120000) * HLC_PER_MS;
    const cases = [
      ['bad_change', 'a string', 'not a change'],
      ['bad_change', 'v 2', { v: 2, id: 'r1', merge: { a: 1 } }],
      ['bad_change', 'v missing', { id: 'r2', merge: { a: 1 } }],
      ['bad_change', 'merge and patch', { v: 3, id: 'r3', merge: { a: 1 }, patch: [] }],
      ['bad_change', 'neither merge nor patch', { v: 3, id: 'r4' }],
      ['bad_change', 'bad id', { v: 3, id: 'no spaces allowed', merge: { a: 1 } }],
      ['bad_change', 'bad client', { v: 3, id: 'r5', client: 'x'.repeat(65), mut: 1, merge: { a: 1 } }],
      ['bad_change', 'mut 0', { v: 3, id: 'r6', client: 'cx', mut: 0, merge: { a: 1 } }],
      ['bad_change', 'mut 1.5', { v: 3, id: 'r7', client: 'cx', mut: 1.5, merge: { a: 1 } }],
      ['bad_change', 'base -1', { v: 3, id: 'r8', base: -1, merge: { a: 1 } }],
      ['bad_change', 'hlc string', { v: 3, id: 'r9', hlc: '12', merge: { a: 1 } }],
      ['bad_change', 'merge not an object', { v: 3, id: 'r10', merge: [1] }],
      ['bad_patch', 'unknown op', { v: 3, id: 'r11', patch: [{ op: 'frobnicate', path: '/a', value: 1 }] }],
      ['bad_patch', 'replace without value', { v: 3, id: 'r12', patch: [{ op: 'replace', path: '/title' }] }],
      ['bad_patch', 'move without from', { v: 3, id: 'r13', patch: [{ op: 'move', path: '/x' }] }],
      ['bad_patch', 'no op', { v: 3, id: 'r14', patch: [{ path: '/a', value: 1 }] }],
      ['bad_patch', 'path not a pointer', { v: 3, id: 'r15', patch: [{ op: 'add', path: 'title', value: 1 }] }],
      ['bad_patch', 'from not a pointer', { v: 3, id: 'r15b', patch: [{ op: 'copy', from: 'title', path: '/t2' }] }],
      ['bad_patch', 'operation not an object', { v: 3, id: 'r15c', patch: ['add'] }],
      ['bad_path', 'remove of a missing member', { v: 3, id: 'r16', patch: [{ op: 'remove', path: '/nope' }] }],
      ['bad_path', 'replace of a missing member', { v: 3, id: 'r17', patch: [{ op: 'replace', path: '/nope', value: 1 }] }],
      ['bad_path', 'array index out of range', { v: 3, id: 'r18', patch: [{ op: 'add', path: '/list/5', value: 1 }] }],
      ['test_failed', 'test mismatch', { v: 3, id: 'r19', patch: [{ op: 'test', path: '/title', value: 'other' }] }],
      ['test_failed', 'atomic: a good op then a failing test', { v: 3, id: 'r20', patch: [{ op: 'add', path: '/okay', value: 1 }, { op: 'test', path: '/title', value: 'other' }] }],
      ['strategy_mismatch', 'replace on a counter', { v: 3, id: 'r21', patch: [{ op: 'replace', path: '/counters/n', value: 0 }] }],
      ['strategy_mismatch', 'incr on lww', { v: 3, id: 'r22', patch: [{ op: 'incr', path: '/title', value: 1 }] }],
      ['strategy_mismatch', 'sadd on lww', { v: 3, id: 'r23', patch: [{ op: 'sadd', path: '/title', value: 'x' }] }],
      ['strategy_mismatch', 'add on a set', { v: 3, id: 'r24', patch: [{ op: 'add', path: '/tags', value: [] }] }],
      ['bad_path', 'a parent that is not a container', { v: 3, id: 'r25', patch: [{ op: 'add', path: '/title/x', value: 1 }] }],
      ['bad_path', 'a missing parent', { v: 3, id: 'r25b', patch: [{ op: 'add', path: '/nope/x', value: 1 }] }],
      ['bad_path', 'from absent', { v: 3, id: 'r25c', patch: [{ op: 'move', from: '/nope', path: '/x' }] }],
      ['bad_path', 'a move into its own child', { v: 3, id: 'r25d', patch: [{ op: 'move', from: '/obj', path: '/obj/inner' }] }],
      ['type_mismatch', 'the root replaced by a number', { v: 3, id: 'r25e', patch: [{ op: 'replace', path: '', value: 5 }] }],
      ['type_mismatch', 'the root replaced by an array', { v: 3, id: 'r25f', patch: [{ op: 'add', path: '', value: [] }] }],
      ['too_large', '1001 operations', { v: 3, id: 'r26', patch: ops1001 }],
      ['clock_skew', 'hlc 120 s ahead', { v: 3, id: 'r27', hlc: future, merge: { a: 1 } }],
      ['base_required', 'version path without base', { v: 3, id: 'r28', patch: [{ op: 'add', path: '/doc', value: {} }] }],
    ];
    const wrong = [];
    for (const [code, what, msg] of cases) {
      const ack = await b.sock.timeout(8000).emitWithAck('state', msg);
      const err = schemaError('changeAck', ack);
      if (err) { wrong.push(`${what}: ${err}`); continue; }
      if (ack.ok !== false) { wrong.push(`${what}: accepted ${JSON.stringify(ack).slice(0, 200)}`); continue; }
      if (ack.error.code !== code) wrong.push(`${what}: code ${ack.error.code} (${ack.error.message}), expected ${code}`);
      if (ack.ver !== undefined && ack.ver !== before.ver) wrong.push(`${what}: refusal says ver ${ack.ver}, the state is at ${before.ver}`);
      if (typeof msg === 'object' && /^[A-Za-z0-9._:/-]{1,64}$/.test(msg.id ?? '') && ack.id !== msg.id) wrong.push(`${what}: refusal id ${ack.id}, sent ${msg.id}`);
    }
    await sleep(300);
    assert.equal(o.changes.length, oChanges, 'the observer received nothing');
    assert.equal(b.changes.length, bChanges);
    assert.equal(a.changes.length, 0);
    const afterView = await freshView(env, S);
    assert.equal(afterView.seq, before.seq, 'no entry was logged');
    assert.equal(afterView.ver, before.ver, 'no version was used');
    assert.deepEqual(afterView.doc, before.doc, 'the document is unchanged');
    assert.deepEqual(wrong, [], 'refusal codes (docs/PROTOCOL.md "Refusals")');
    // the limit is 1,000 operations: exactly 1,000 applies
    const ok1000 = await b.state(chg({ patch: ops1001.slice(0, 1000) }));
    assert.equal(ok1000.ok, true, `1,000 operations are within the limit: ${JSON.stringify(ok1000).slice(0, 300)}`);
    // an hlc in the past (or 50 s ahead) is fine
    const near = await b.state(chg({ hlc: (Date.now() + 50000) * HLC_PER_MS, merge: { near: 1 } }));
    assert.equal(near.ok, true, `hlc 50 s ahead is within 60 s: ${JSON.stringify(near)}`);
    await converged(S, [a, b, o]);
    noViolations(a, b, o);
  });

  it('counter_overflow: an integer counter may not leave the 64-bit range', { timeout: 10000 }, async () => {
    const { a } = await trio('st7');
    const big = 4611686018427387904; // 2^62 (exact as a double, written 4611686018427388000 by JSON.stringify)
    const k1 = await a.state(chg({ patch: [{ op: 'incr', path: '/counters/big', value: big }] }));
    assert.equal(k1.ok, true, JSON.stringify(k1));
    const k2 = await a.state(chg({ patch: [{ op: 'incr', path: '/counters/big', value: big }] }));
    assert.equal(k2.ok, false, `2^63 does not fit an int64: ${JSON.stringify(k2)}`);
    assert.equal(k2.error.code, 'counter_overflow');
    noViolations(a);
  });

  it('batches: state and publish with an array get one ack {ok, failed, results}; each item independent, in order', { timeout: 20000 }, async () => {
    const { S, a, b, o } = await trio('st8');
    const batch = [
      chg({ merge: { one: 1 } }),
      chg({ patch: [{ op: 'frobnicate', path: '/x' }] }),
      chg({ patch: [{ op: 'incr', path: '/counters/c', value: 5 }] }),
    ];
    const ack = await a.state(batch);
    assert.equal(ack.ok, false);
    assert.equal(ack.failed, 1);
    assert.equal(ack.results.length, 3);
    assert.equal(ack.results[0].ok, true);
    assert.equal(ack.results[1].ok, false);
    assert.equal(ack.results[1].error.code, 'bad_patch');
    assert.equal(ack.results[1].id, batch[1].id);
    assert.equal(ack.results[2].ok, true);
    assert.equal(ack.results[2].seq, ack.results[0].seq + 1, 'applied items in array order, the refused one takes no seq');
    assert.equal(ack.results[2].ver, ack.results[0].ver + 1);
    const good = await a.state([chg({ merge: { two: 2 } }), chg({ merge: { three: 3 } })]);
    assert.deepEqual([good.ok, good.failed], [true, 0], JSON.stringify(good));
    // publish: one bad envelope (names a room) among good ones
    const envs = [env3({ id: 'bp1' }), env3({ id: 'bp2', room: 'elsewhere' }), env3({ id: 'bp3', prio: 'presence' }), env3({ id: 'bp4' })];
    const pack = await a.publish(envs);
    assert.equal(pack.ok, false);
    assert.equal(pack.failed, 1);
    assert.equal(pack.results[1].ok, false);
    assert.deepEqual(pack.results[2], { ok: true, id: 'bp3' }, 'an ephemeral envelope in a batch: no seq');
    assert.ok(pack.results[3].seq > pack.results[0].seq, 'logged in array order');
    await waitUntil(() => o.events.filter((e) => e.id.startsWith('bp')).length === 3, 5000, 'observer gets the 3 good envelopes');
    assert.deepEqual(o.events.filter((e) => e.id.startsWith('bp')).map((e) => e.id).sort(), ['bp1', 'bp3', 'bp4']);
    assert.deepEqual(o.events.filter((e) => e.id === 'bp1' || e.id === 'bp4').map((e) => e.id), ['bp1', 'bp4'], 'logged ones in order');
    // 1-256 items: an empty array and 257 items are refused as a whole
    for (const [event, arr] of [
      ['state', []], ['publish', []],
      ['state', Array.from({ length: 257 }, () => chg({ merge: { z: 1 } }))],
      ['publish', Array.from({ length: 257 }, () => env3())],
    ]) {
      const r = await a.sock.timeout(8000).emitWithAck(event, arr);
      assert.equal(schemaError('refusal', r), null, `${event} with ${arr.length} items: ${schemaError('refusal', r)}`);
      assert.equal(r.ok, false);
    }
    // 256 items are accepted
    const full = await a.publish(Array.from({ length: 256 }, () => env3()));
    assert.deepEqual([full.ok, full.failed, full.results.length], [true, 0, 256]);
    const seqs = full.results.map((r) => r.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'a batch of one sender gets consecutive seqs here');
    await converged(S, [a, b, o]);
    noViolations(a, b, o);
  });
});

// ==== 4. exactly-once ==============================================================

describe('history 4: exactly-once changes', SKIP, () => {
  const env = suiteEnv();
  before(async () => { await startWithRules(env); });
  after(() => env.cleanup());

  it('every change resent 0-3 times before and after its ack is applied once; duplicates answered with the original', { timeout: 60000 }, async (t) => {
    const seed = Number(process.env.TS_SEED ?? (Date.now() % 1e9));
    t.diagnostic(`seed ${seed}`);
    const rng = makeRng(seed);
    const S = uniq('eo');
    const w = await env.open(ident('alice', S, 'dw', 'tw'), { client: 'eo-w' });
    const o = await env.open(ident('alice', S, 'do', 'to'));
    const N = 240;
    const subs = [];
    const jobs = [];
    let nIncr = 0;
    for (let i = 0; i < N; i++) {
      const k = rng();
      let sub;
      if (k < 0.55) {
        nIncr += 1;
        sub = w.submit('state', chg({ patch: [{ op: 'incr', path: '/counters/eo', value: 1 }] }));
      } else if (k < 0.75) {
        sub = w.submit('state', chg({ merge: { [`k${i % 7}`]: i } }));
      } else if (k < 0.85) {
        sub = w.submit('publish', env3({ body: { i } }));
      } else {
        sub = w.submit('state', chg({ base: 0, merge: { doc: { [`p${i % 5}`]: i } } }));
      }
      subs.push(sub);
      const extra = rng.int(4);
      const now = rng.int(extra + 1);
      for (let j = 0; j < now; j++) w.resend(sub);
      jobs.push(sub.promise.then(() => { for (let j = 0; j < extra - now; j++) w.resend(sub); }));
      if (i % 16 === 15) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
    await waitUntil(() => subs.every((s) => s.answers.length === s.sends), 20000, 'every send answered');
    const problems = [];
    let dups = 0;
    let busy = 0;
    for (const s of subs) {
      const ok = s.answers.filter((x) => x.ok === true);
      // busy is "retry" (the mirror resends the same client+mut); anything else is wrong
      busy += s.answers.filter((x) => x.error?.code === 'busy').length;
      const bad = s.answers.filter((x) => x.ok !== true && x.error?.code !== 'busy');
      if (bad.length || s.final?.ok !== true) { problems.push(`mut ${s.msg.mut}: refused ${JSON.stringify(bad[0] ?? s.final)}`); continue; }
      const orig = ok.filter((x) => !x.duplicate);
      if (orig.length !== 1) problems.push(`mut ${s.msg.mut}: ${orig.length} non-duplicate answers for ${s.sends} sends`);
      const o1 = orig[0] ?? ok[0];
      for (const d of ok.filter((x) => x.duplicate)) {
        dups += 1;
        if (d.seq !== o1.seq) problems.push(`mut ${s.msg.mut}: duplicate says seq ${d.seq}, original ${o1.seq}`);
        if (d.id !== s.msg.id) problems.push(`mut ${s.msg.mut}: duplicate id ${d.id}`);
        if (s.event === 'state') {
          if (d.ver !== o1.ver || d.ts !== o1.ts || canon(d.effects) !== canon(o1.effects)) {
            problems.push(`mut ${s.msg.mut}: duplicate ${JSON.stringify(d)} is not answered from the original ${JSON.stringify(o1)}`);
          }
        }
      }
    }
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} exactly-once problems`);
    t.diagnostic(`${N} changes, ${subs.reduce((n, s) => n + s.sends, 0)} sends, ${dups} duplicate answers, ${busy} busy answers (retried)`);
    assert.ok(dups > N / 2, `resends happened (${dups})`);
    // the observer received each once
    await waitUntil(() => o.lastSeq === N, 10000, `observer reaches seq ${N} (at ${o.lastSeq})`);
    const seen = new Map();
    for (const e of [...o.events, ...o.changes]) {
      if (e.client !== 'eo-w') continue;
      seen.set(e.mut, (seen.get(e.mut) ?? 0) + 1);
    }
    assert.equal(seen.size, N, 'every mutation delivered');
    assert.deepEqual([...seen.values()].filter((n) => n !== 1), [], 'each delivered once');
    // the log has each once, at the acked seq, gap-free
    const log = await fullLog(o, o.epoch);
    assert.deepEqual(log.entries.map((e) => e.seq), Array.from({ length: N }, (_, i) => i + 1));
    const bySeq = new Map(log.entries.map((e) => [e.seq, e]));
    for (const s of subs) {
      const seq = s.answers.find((x) => x.ok).seq;
      const e = bySeq.get(seq);
      assert.equal(e?.mut, s.msg.mut, `seq ${seq} holds mut ${s.msg.mut}`);
      assert.equal(e.client, 'eo-w');
      assert.equal(e.id, s.msg.id);
    }
    const view = await freshView(env, S);
    assert.equal(view.doc.counters.eo, nIncr, 'the counter counted each increment once');
    assert.deepEqual(w.doc, view.doc);
    assert.deepEqual(o.doc, view.doc);

    // across connections: the same client id on a new socket
    w.close();
    const w2 = await env.open(ident('alice', S, 'dw', 'tw2'), { client: 'eo-w' });
    for (const s of [...subs.slice(0, 5), ...subs.slice(-10)]) {
      const ack = await w2.ask(s.event, s.msg);
      assert.equal(ack.duplicate, true, `resend of mut ${s.msg.mut} from a new connection: ${JSON.stringify(ack)}`);
      assert.equal(ack.seq, s.answers.find((x) => x.ok).seq);
    }
    // more than 256 newer mutations: mut 1 is either still known (duplicate) or too old; never applied again
    w2.nextMut = N + 1;
    const more = [];
    for (let i = 0; i < 30; i++) more.push(w2.submit('state', chg({ patch: [{ op: 'incr', path: '/counters/eo', value: 1 }] })));
    await Promise.all(more.map((s) => s.promise));
    const old = await w2.ask(subs[0].event, subs[0].msg);
    if (old.ok) {
      assert.equal(old.duplicate, true, `mut 1 after 270 newer: ${JSON.stringify(old)}`);
    } else {
      assert.equal(old.error.code, 'mutation_too_old', JSON.stringify(old));
    }
    const never = await w2.ask('state', chg({ client: 'eo-w', mut: 2, patch: [{ op: 'incr', path: '/counters/eo', value: 1000 }] }));
    assert.ok(never.ok === false ? never.error.code === 'mutation_too_old' : never.duplicate === true,
      `an old mut with a different body is not applied: ${JSON.stringify(never)}`);
    const view2 = await freshView(env, S);
    assert.equal(view2.doc.counters.eo, nIncr + 30);
    assert.equal(view2.seq, N + 30);
    noViolations(w, o, w2);
  });

  it('one writer on one node is never told busy (PROTOCOL.md: busy = "other nodes writing"), also when it resends', { timeout: 30000 }, async (t) => {
    const S = uniq('busy');
    const w = await env.open(ident('alice', S, 'dw', 'tw'), { client: 'busy-w' });
    const answers = [];
    for (let round = 0; round < 10; round++) {
      const jobs = [];
      for (let i = 0; i < 20; i++) {
        const msg = chg({ client: 'busy-w', mut: w.nextMut++, patch: [{ op: 'incr', path: '/counters/b', value: 1 }] });
        jobs.push(w.ask('state', msg), w.ask('state', msg)); // the same change twice at once
      }
      answers.push(...await Promise.all(jobs));
    }
    const busy = answers.filter((a) => a.error?.code === 'busy');
    t.diagnostic(`${answers.length} answers, ${busy.length} busy`);
    assert.deepEqual(busy.slice(0, 3), [], `${busy.length} of ${answers.length} answers were busy with a single writer and a single node`);
    noViolations(w);
  });

  it('with resends in flight, a conflict still names the ver and value of the write it conflicts with', { timeout: 30000 }, async (t) => {
    const S = uniq('cfv');
    const tabs = [];
    for (let i = 0; i < 6; i++) tabs.push(await env.open(ident('alice', S, `d${i}`, `t${i}`), { client: `k${i}` }));
    const d0 = await tabs[0].state(chg({ base: 0, patch: [{ op: 'add', path: '/doc', value: {} }] }));
    assert.equal(d0.ok, true, JSON.stringify(d0));
    for (const tb of tabs) await waitUntil(() => tb.ver === d0.ver, 5000, 'all see /doc');
    await Promise.all(tabs.map(async (tb, i) => {
      for (let n = 0; n < 60; n++) {
        const sub = tb.submit('state', n % 2
          ? chg({ base: tb.ver, patch: [{ op: 'add', path: '/doc/x', value: { i, n } }] })
          : chg({ patch: [{ op: 'incr', path: '/counters/n', value: 1 }] }));
        tb.resend(sub); // every change sent twice at once
        if (n % 4 === 3) await sub.promise;
      }
      await tb.settle();
    }));
    const f = await env.open(ident('alice', S, 'df', 'tf'));
    const log = (await fullLog(f, f.epoch)).entries;
    const wrong = [];
    let nConf = 0;
    for (const tb of tabs) {
      for (const sub of tb.subs) {
        if (sub.final.error?.code !== 'conflict') continue;
        nConf += 1;
        for (const c of sub.final.conflicts) {
          const w = log.find((e) => e.kind === 'change' && e.ver === c.ver);
          const ef = w?.effects.find((x) => x.path === c.path);
          if (!ef || canon(ef.value) !== canon(c.value)) {
            const real = log.find((e) => e.kind === 'change' && e.effects.some((x) => x.path === c.path && canon(x.value) === canon(c.value)));
            wrong.push(`${sub.msg.client}#${sub.msg.mut} (base ${sub.msg.base}) got ${JSON.stringify(sub.final.error.message)} conflicts ${JSON.stringify(c)}; ` +
              `the log's ver ${c.ver} is ${w ? `${w.client}#${w.mut} writing ${w.effects.map((x) => x.path)}` : 'absent'}; that value was written at ver ${real?.ver}`);
          }
        }
      }
    }
    t.diagnostic(`${log.length} entries, ${nConf} conflicts, ${wrong.length} naming a ver/value the log does not have`);
    assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} of ${nConf} conflicts name a version whose change did not write that value`);
    assert.deepEqual(tabs[0].doc, f.doc);
    noViolations(...tabs, f);
  });

  it('the default client id (d/<device>/t/<tab>) dedupes too; a publish resend is answered {ok, id, seq, duplicate: true} and relayed once', { timeout: 20000 }, async () => {
    const S = uniq('eo2');
    const a = await env.open(ident('alice', S, 'da', 'ta'));
    const o = await env.open(ident('alice', S, 'do', 'to'));
    const c = chg({ mut: 1, patch: [{ op: 'incr', path: '/counters/d', value: 1 }] });
    const k1 = await a.state(c);
    const k2 = await a.state(c);
    assert.equal(k1.ok, true, JSON.stringify(k1));
    assert.equal(k2.duplicate, true, `same (default client, mut): ${JSON.stringify(k2)}`);
    assert.equal(k2.seq, k1.seq);
    const e = env3({ client: 'pub-x', mut: 5 });
    const p1 = await a.publish(e);
    const p2 = await a.publish(e);
    const p3 = await a.publish(e);
    assert.equal(p1.duplicate, undefined);
    for (const p of [p2, p3]) {
      assert.equal(p.duplicate, true, JSON.stringify(p));
      assert.equal(p.seq, p1.seq);
      assert.equal(p.id, e.id);
    }
    await waitUntil(() => o.lastSeq === p1.seq, 5000, 'observer up to date');
    await sleep(200);
    assert.equal(o.changes.length, 1, 'the change was relayed once');
    assert.equal(o.changes[0].client, 'd/da/t/ta', 'the default client id');
    assert.equal(o.events.filter((x) => x.id === e.id).length, 1, 'the event was relayed once');
    assert.equal(o.events[0].client, 'pub-x');
    assert.equal(o.events[0].mut, 5);
    noViolations(a, o);
  });
});

// ==== 5. replay =====================================================================

describe('history 5: replay with sync', SKIP, () => {
  const env = suiteEnv();
  before(async () => { await startWithRules(env); });
  after(() => env.cleanup());


  it('a tab offline while 1,000 events (and 20 changes) happen gets all of them with sync, in order, once, paged by limit', { timeout: 60000 }, async () => {
    const S = uniq('rp');
    const p = await env.open(ident('alice', S, 'dp', 'tp'));
    await p.publish(env3({ id: 'before-1' }));
    await p.state(chg({ merge: { a: 0 } }));
    // (the session exists before `off` comes: its epoch is the session's from the start)
    const off = await env.open(ident('alice', S, 'doff', 'toff'));
    assert.equal(off.lastSeq, 2);
    off.autoSync = false;
    off.sock.disconnect();
    const published = [];
    let n = 0;
    let changes = 0;
    while (n < 1000) {
      const k = Math.min(1000 - n, n % 3 === 0 ? 97 : 1 + (n % 13));
      const envs = Array.from({ length: k }, (_, i) => env3({ id: `r-${n + i}`, body: { n: n + i } }));
      const ack = k === 1 ? await p.publish(envs[0]) : await p.publish(envs);
      const seqs = k === 1 ? [ack.seq] : ack.results.map((r) => r.seq);
      envs.forEach((e, i) => published.push({ id: e.id, seq: seqs[i] }));
      n += k;
      if (changes < 20) {
        changes += 1;
        await p.state(chg({ patch: [{ op: 'incr', path: '/counters/r', value: 1 }] }));
      }
    }
    const last = p.lastSeq;
    assert.equal(last, 2 + 1000 + 20);
    // back online: sync from seq 2 with the default limit (500)
    off.sock.connect();
    await off.connected();
    const got = [];
    let after = 2;
    let pages = 0;
    for (;;) {
      const r = await off.sync({ after, epoch: off.epoch });
      pages += 1;
      assert.equal(r.ok, true);
      assert.equal(r.reset, undefined, `no reset: ${r.reason}`);
      assert.ok(r.entries.length <= 500, 'default limit 500');
      off.checkAnswer({ after }, r);
      for (const e of r.entries) off.feed(e);
      got.push(...r.entries);
      if (!r.more) break;
      after = r.entries[r.entries.length - 1].seq;
    }
    assert.ok(pages >= 3, `1,020 entries take 3 pages of 500 (${pages})`);
    assert.deepEqual(got.map((e) => e.seq), Array.from({ length: 1020 }, (_, i) => i + 3), 'every seq once, in order');
    const evs = got.filter((e) => e.kind === 'event');
    assert.deepEqual(evs.map((e) => e.id), published.map((e) => e.id), 'all 1,000 events in publish order');
    assert.deepEqual(evs.map((e) => e.seq), published.map((e) => e.seq), 'at the seq their acks said');
    assert.equal(got.filter((e) => e.kind === 'change').length, 20);
    assert.deepEqual(off.doc, p.doc);
    assert.deepEqual(off.doc, { a: 0, counters: { r: 20 } });
    // a limit of 100 pages by 100
    const r100 = await off.sync({ after: 2, epoch: off.epoch, limit: 100 });
    assert.equal(r100.entries.length, 100);
    assert.equal(r100.more, true);
    // bad limits are refused
    for (const bad of [{ limit: 0 }, { limit: 1001 }, { after: -1 }, { epoch: 'xyz' }]) {
      const r = await off.sock.timeout(5000).emitWithAck('sync', bad);
      assert.equal(schemaError('syncAck', r), null);
      assert.equal(r.ok, false, `sync ${JSON.stringify(bad)} must be refused: ${JSON.stringify(r).slice(0, 200)}`);
    }
    noViolations(p, off);
  });

  it('a sync answer holds at most 1 MiB of entries (more: true), the rest follows', { timeout: 30000 }, async () => {
    const S = uniq('rp2');
    const p = await env.open(ident('alice', S, 'dp', 'tp'));
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 15; i++) await p.publish(env3({ id: `big-${i}`, body: { big } }));
    const q = await env.open(ident('alice', S, 'dq', 'tq'), {}, { sync: false });
    const r = await q.sync({ after: 0, epoch: q.welcomes[0].epoch, limit: 1000 });
    assert.equal(r.more, true, '15 x 100 KiB do not fit one answer');
    assert.ok(r.entries.length >= 1 && r.entries.length < 15);
    const bytes = Buffer.byteLength(JSON.stringify(r.entries));
    assert.ok(bytes <= 1024 * 1024 + 110 * 1024, `answer holds ${bytes} bytes of entries`);
    await q.catchUp();
    assert.equal(q.lastSeq, 15);
    noViolations(p, q);
  });

  it('wrong epoch → reset "epoch"; sync {} → reset "initial" with the current state; after beyond the end → reset "ahead"', { timeout: 20000 }, async () => {
    const S = uniq('rp3');
    const p = await env.open(ident('alice', S, 'dp', 'tp'));
    for (let i = 0; i < 5; i++) await p.state(chg({ patch: [{ op: 'incr', path: '/counters/k', value: 1 }] }));
    await p.publish(env3());
    const q = await env.open(ident('alice', S, 'dq', 'tq'), {}, { sync: false });
    const epoch = q.welcomes[0].epoch;
    const other = epoch === 'ffffffffffffffff' ? '0123456789abcdef' : 'ffffffffffffffff';
    const e1 = await q.sync({ after: 3, epoch: other });
    assert.equal(e1.reset, true, JSON.stringify(e1));
    assert.equal(e1.reason, 'epoch');
    assert.equal(e1.epoch, epoch);
    assert.deepEqual(fold(e1.entries, e1.snapshot.state), { counters: { k: 5 } });
    const i1 = await q.sync({});
    assert.equal(i1.reset, true);
    assert.equal(i1.reason, 'initial');
    assert.equal(i1.seq, 6);
    assert.equal(i1.snapshot.seq + i1.entries.length, 6, 'snapshot + entries reach the newest seq');
    assert.equal(i1.snapshot.ver + i1.entries.filter((e) => e.kind === 'change').length, 5);
    assert.deepEqual(fold(i1.entries, i1.snapshot.state), p.doc);
    const a1 = await q.sync({ after: 50, epoch });
    assert.equal(a1.reset, true, `after beyond the newest seq: ${JSON.stringify(a1)}`);
    assert.equal(a1.reason, 'ahead');
    // after: 0 with any epoch is a full replay, not a reset
    const z = await q.sync({ after: 0, epoch: other });
    assert.equal(z.reset, undefined, 'after 0: nothing to lose');
    assert.equal(z.entries.length, 6);
    noViolations(p, q);
  });

  it('retention with the defaults (10,000 entries, 1 day): 1,100 entries of a memory-only server all replay from 0', { timeout: 30000 }, async () => {
    // (under TS_CLUSTER: of the Redis store, whose retention has the same defaults)
    const S = uniq('ret');
    const p = await env.open(ident('alice', S, 'dp', 'tp'));
    for (let i = 0; i < 11; i++) {
      await p.publish(Array.from({ length: 50 }, () => env3()));
      await p.state(Array.from({ length: 50 }, (_, k) => chg({ merge: { [`k${k}`]: i } })));
    }
    const q = await env.open(ident('alice', S, 'dq', 'tq'));
    assert.equal(q.lastSeq, 1100);
    const r = await q.sync({ after: 0, epoch: q.epoch, limit: 10 });
    assert.equal(r.reset, undefined, `--history-retain-events defaults to 10,000 and --history-retain-age to 1 day: nothing may be compacted yet; got reset ${r.reason} with snapshot at ${r.snapshot?.seq}`);
    assert.deepEqual(r.entries.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    noViolations(p, q);
  });

  it('compaction: entries older than the retention go into the snapshot; an old tab gets reset "trimmed" with snapshot + tail = the same state', { timeout: 40000 }, async () => {
    const cenv = suiteEnv();
    try {
      await startWithRules(cenv, ['--snapshot-every', '10', '--history-retain-events', '50', '--history-retain-age', '1']);
      const S = uniq('cp');
      const p = await cenv.open(ident('alice', S, 'dp', 'tp'));
      let i = 0;
      const step = async () => {
        i += 1;
        const k = i % 5;
        if (k === 0) return p.publish(env3({ body: { i } }));
        if (k === 1) return p.state(chg({ patch: [{ op: 'incr', path: '/counters/c', value: i }] }));
        if (k === 2) return p.state(chg({ merge: { [`f${i % 9}`]: i } }));
        if (k === 3) return p.state(chg({ patch: [{ op: 'sadd', path: '/tags', value: `t${i % 11}` }] }));
        return p.state(chg({ base: p.ver, patch: [{ op: 'srem', path: '/tags', value: `t${(i + 3) % 11}` }] }));
      };
      for (let j = 0; j < 5; j++) await step();
      const live = await cenv.open(ident('alice', S, 'dl', 'tl'));
      const old = await cenv.open(ident('alice', S, 'do', 'to'));
      assert.equal(old.lastSeq, 5);
      const oldDoc = clone(old.doc);
      old.autoSync = false;
      old.sock.disconnect();
      for (let j = 0; j < 200; j++) await step();
      await sleep(1300); // older than --history-retain-age 1
      for (let j = 0; j < 20; j++) await step();
      const probe = await cenv.open(ident('alice', S, 'dx', 'tx'), {}, { sync: false });
      const epoch = probe.welcomes[0].epoch;
      // compaction may run in the background: give it a few seconds (more entries keep snapshots coming)
      let r;
      await waitUntil(async () => {
        r = await probe.sync({ after: 5, epoch });
        if (r.reset) return true;
        await step();
        await sleep(200);
        return false;
      }, 10000, 'sync {after: 5} answered with reset "trimmed"');
      assert.equal(r.reason, 'trimmed', JSON.stringify(r).slice(0, 300));
      assert.equal(r.epoch, epoch, 'compaction does not change the epoch');
      // the old tab: its document at seq 5, then the reset
      assert.deepEqual(old.doc, oldDoc);
      old.autoSync = true;
      old.sock.connect();
      await old.connected();
      await waitUntil(() => old.resets.length === 2 && !old.syncing, 5000, 'old tab reset');
      await old.catchUp();
      assert.deepEqual(old.resets.map((x) => x.reason), ['initial', 'trimmed']);
      await waitUntil(() => live.lastSeq === p.lastSeq && old.lastSeq === p.lastSeq, 5000, 'all at the newest seq');
      assert.deepEqual(old.doc, live.doc, 'snapshot + tail = the document of a tab that saw every entry');
      assert.deepEqual(live.doc, p.doc);
      assert.equal(old.ver, live.ver);
      // recent entries are kept: the newest 50 replay without reset
      const n = p.lastSeq;
      const r50 = await probe.sync({ after: n - 50, epoch });
      assert.equal(r50.reset, undefined, `the newest 50 entries are retained: ${JSON.stringify(r50).slice(0, 200)}`);
      assert.deepEqual(r50.entries.map((e) => e.seq), Array.from({ length: 50 }, (_, k) => n - 49 + k));
      // after 0 is trimmed too
      const r0 = await probe.sync({ after: 0, epoch });
      assert.equal(r0.reset, true, 'history before the snapshot is gone');
      assert.deepEqual(fold(r0.entries, r0.snapshot.state), live.doc);
      noViolations(p, live, old, probe);
    } finally {
      await cenv.cleanup();
    }
  });
  it('/metrics shows what the suite did, consistently (appends timed, replay sizes, resyncs)', { timeout: 10000 }, async () => {
    const text = await (await fetch(`${env.srv.url}/metrics`)).text();
    const num = (name) => Number((text.match(new RegExp(`^${name} (\\S+)$`, 'm')) || [])[1]);
    const entries = num('tabsync_history_entries_total');
    assert.ok(entries >= 1000, `entries ${entries}`);
    assert.equal(num('tabsync_history_append_seconds_count'), entries, 'every logged entry timed once');
    assert.ok(num('tabsync_history_replays_total') > 0);
    assert.equal(num('tabsync_history_replay_entries_count'), num('tabsync_history_replays_total'));
    assert.equal(num('tabsync_history_replay_entries_sum'), num('tabsync_history_replayed_entries_total'));
    assert.ok(num('tabsync_history_resyncs_total') > 0, 'the resets were counted');
    // the Redis backend keeps no store counters yet (docs/STATUS.md, issue #12)
    if (!CLUSTER) assert.ok(num('tabsync_store_entries_appended_total') >= entries);
  });
});

// ==== 6. convergence under chaos ===================================================

describe('history 6: convergence under chaos', SKIP, () => {
  const env = suiteEnv();
  // SQLite keeps the whole log (the memory store drops entries its snapshot
  // covers past ~1,000: see the retention test in suite 5), and the checker
  // replays the whole log.
  before(async () => {
    const dir = tempDir('chaos');
    env.dirs.push(dir);
    await startWithRules(env, ['--recovery-window', '2000', ...(process.env.TS_CHAOS_MEM === '1' || CLUSTER ? [] : ['--store-sqlite', path.join(dir, 'chaos.db'), '--durability', 'group:2'])]);
  });
  after(() => env.cleanup());

  it('tabs making concurrent changes of every strategy while their connections drop converge to the fold of the log', { timeout: 120000 }, async (t) => {
    const seed = Number(process.env.TS_SEED ?? (Date.now() % 1e9));
    const rng = makeRng(seed);
    const NT = Number(process.env.TS_CHAOS_TABS ?? (2 + rng.int(9)));
    const M = Number(process.env.TS_CHAOS_INCR ?? 100);
    const OTHER = Math.round(M * 0.6);
    t.diagnostic(`seed ${seed}: ${NT} tabs x (${M} increments + ${OTHER} other changes) (TS_SEED=${seed} repeats it)`);
    console.log(`# history chaos: seed ${seed}, ${NT} tabs`);
    const S = uniq('chaos');
    const POOL = ['a', 'b', 'c', 'd'];
    const tabs = [];
    for (let i = 0; i < NT; i++) {
      tabs.push(await env.open(ident('alice', S, `dev${i % 3}`, `tab${i}`), { client: `x${i}`, reconnection: true }));
    }
    // setup: the version subtree
    const d0 = await tabs[0].state(chg({ base: tabs[0].ver, patch: [{ op: 'add', path: '/doc', value: {} }] }));
    assert.equal(d0.ok, true, JSON.stringify(d0));
    for (const tb of tabs) await waitUntil(() => tb.ver === d0.ver, 5000, `${tb.name} sees /doc`);

    // the plan of each tab: M increments and OTHER other changes, shuffled
    const KINDS = ['sadd', 'sadd', 'srem', 'srem', 'lwwHlc', 'lwwMerge', 'version', 'version', 'publish'];
    const usedHlc = tabs.map(() => new Set());
    function materialize(tb, i, kind, n) {
      const id = `${tb.client}-${n}`;
      switch (kind) {
        case 'incr': return ['state', { v: 3, id, patch: [{ op: 'incr', path: `/counters/c${rng.int(3)}`, value: 1 }] }];
        case 'sadd': return ['state', { v: 3, id, patch: [{ op: 'sadd', path: '/tags', value: rng.pick(POOL) }] }];
        case 'srem': {
          // made against the tab's view, or (a third of them) an older one: an offline edit
          const base = rng() < 0.33 ? Math.max(0, tb.ver - 1 - rng.int(40)) : tb.ver;
          return ['state', { v: 3, id, base, patch: [{ op: 'srem', path: '/tags', value: rng.pick(POOL) }] }];
        }
        case 'lwwHlc': {
          let h;
          do {
            h = rng() < 0.3 ? (Date.now() - rng.int(3000)) * HLC_PER_MS + rng.int(1024) : Date.now() * HLC_PER_MS + rng.int(1024);
          } while (usedHlc[i].has(h));
          usedHlc[i].add(h);
          return ['state', { v: 3, id, hlc: h, patch: [{ op: 'add', path: `/l${rng.int(3)}`, value: { by: i, n } }] }];
        }
        case 'lwwMerge': return ['state', { v: 3, id, merge: { [`m${rng.int(2)}`]: rng() < 0.2 ? null : `t${i}-${n}` } }];
        case 'version': return ['state', { v: 3, id, base: tb.ver, patch: [{ op: 'add', path: `/doc/v${rng.int(2)}`, value: { by: i, n } }] }];
        case 'publish': return ['publish', { v: 3, type: 'chaos.note', id, body: { i, n } }];
        default: throw new Error(kind);
      }
    }
    const plans = tabs.map(() => {
      const plan = [...Array(M).fill('incr'), ...Array.from({ length: OTHER }, () => rng.pick(KINDS))];
      for (let k = plan.length - 1; k > 0; k--) { const j = rng.int(k + 1); [plan[k], plan[j]] = [plan[j], plan[k]]; }
      return plan;
    });

    const stats = { drops: 0, engineCloses: 0 };
    let chaosOn = true;
    const timers = new Set();
    const chaos = (async () => {
      while (chaosOn) {
        await sleep(20 + rng.int(120));
        if (!chaosOn) break;
        const tb = rng.pick(tabs);
        const mode = rng.int(3);
        try {
          if (mode === 0 && tb.sock.io.engine && tb.sock.connected) {
            stats.engineCloses += 1;
            tb.sock.io.engine.close(); // transport gone: the manager reconnects (with recovery)
          } else if (tb.sock.connected) {
            stats.drops += 1;
            tb.sock.disconnect();
            const back = 20 + rng.int(300);
            const timer = setTimeout(() => { timers.delete(timer); if (!tb.closed) tb.sock.connect(); }, back);
            timers.add(timer);
          }
        } catch (e) { /* engine in transition */ }
      }
    })();
    const workers = tabs.map(async (tb, i) => {
      let n = 0;
      for (const kind of plans[i]) {
        while (tb.inflight() >= 8) await sleep(3);
        n += 1;
        const [event, body] = materialize(tb, i, kind, n);
        const sub = tb.submit(event, body);
        if (rng() < 0.1) tb.resend(sub); // a flaky client sends it twice
        await sleep(rng.int(30));
      }
    });
    const t0 = Date.now();
    await Promise.all(workers);
    chaosOn = false;
    await chaos;
    for (const timer of timers) clearTimeout(timer); // (a late connect() would revive a closed tab)
    for (const tb of tabs) await tb.connected();
    await Promise.all(tabs.map((tb) => tb.settle(60000)));
    t.diagnostic(`chaos phase ${Date.now() - t0} ms: ${stats.drops} disconnects, ${stats.engineCloses} transport closes`);

    // ---- the log, and what a fresh tab gets ----
    const fresh = await env.open(ident('alice', S, 'dfresh', 'tfresh'));
    const finalSeq = fresh.lastSeq;
    const log = (await fullLog(fresh, fresh.epoch)).entries;
    assert.deepEqual(log.map((e) => e.seq), Array.from({ length: finalSeq }, (_, k) => k + 1), 'the log is gap-free');
    assert.deepEqual(fold(log), fresh.doc, 'sync {} (snapshot) equals the fold of the whole log');
    const changesInLog = log.filter((e) => e.kind === 'change');
    assert.deepEqual(changesInLog.map((e) => e.ver), changesInLog.map((_, k) => k + 1), 'ver counts the changes 1, 2, 3...');
    // ts is one process's clock (docs/CONSISTENCY.md): distinct within a node,
    // not across the nodes of a cluster
    if (!CLUSTER) assert.equal(new Set(log.map((e) => e.ts)).size, log.length, 'every ts distinct');

    // ---- every tab converged, and held the fold of the log all along ----
    for (const tb of tabs) {
      await tb.catchUp();
      await waitUntil(() => tb.lastSeq === finalSeq, 5000, `${tb.name} at seq ${finalSeq} (${tb.lastSeq})`);
      assert.deepEqual(tb.doc, fresh.doc, `${tb.name}'s mirror equals the fold of the log`);
      assert.equal(tb.ver, fresh.ver);
    }
    const diffs = checkpointDiffs(tabs, log);
    const nChecks = tabs.reduce((n, tb) => n + tb.checkpoints.size, 0);
    assert.deepEqual(diffs.slice(0, 3), [], `${diffs.length} of ${nChecks} checkpoints (a tab's document at a seq) differ from the fold of the log`);

    // ---- exactly once: every submission answered, logged once at its seq ----
    const byKey = new Map();
    for (const e of log) {
      if (e.mut === undefined) continue;
      const k = `${e.client}#${e.mut}`;
      assert.equal(byKey.has(k), false, `${k} logged twice (seq ${byKey.get(k)?.seq} and ${e.seq})`);
      byKey.set(k, e);
    }
    const counts = { c0: 0, c1: 0, c2: 0 };
    const conflicts = [];
    const subsByKey = new Map();
    const problems = [];
    let resends = 0;
    for (const tb of tabs) {
      for (const s of tb.subs) {
        resends += s.sends - 1;
        const k = `${tb.client}#${s.msg.mut}`;
        subsByKey.set(k, s);
        const fin = s.final;
        const entry = byKey.get(k);
        if (fin.ok) {
          if (!entry) problems.push(`${k} acked (seq ${fin.seq}) but not in the log`);
          else if (entry.seq !== fin.seq) problems.push(`${k} acked with seq ${fin.seq}, logged at ${entry.seq}`);
          for (const a of s.answers.filter((x) => x.ok)) if (a.seq !== fin.seq) problems.push(`${k} answered with seqs ${fin.seq} and ${a.seq}`);
          if (s.answers.filter((x) => x.ok && !x.duplicate).length > 1) problems.push(`${k} applied twice (two non-duplicate answers)`);
          const inc = s.msg.patch?.[0]?.op === 'incr' ? s.msg.patch[0].path.slice('/counters/'.length) : null;
          if (inc) counts[inc] += 1;
        } else if (fin.error?.code === 'conflict' && s.msg.patch?.[0]?.path?.startsWith('/doc/')) {
          conflicts.push({ k, s });
          if (entry) problems.push(`${k} refused with conflict but logged at ${entry.seq}`);
        } else {
          problems.push(`${k} (${s.event} ${JSON.stringify(s.msg).slice(0, 120)}) refused: ${JSON.stringify(fin)}`);
        }
      }
    }
    for (const k of byKey.keys()) if (!subsByKey.has(k)) problems.push(`${k} in the log but never sent`);
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} exactly-once problems (seed ${seed})`);
    assert.equal(counts.c0 + counts.c1 + counts.c2, NT * M, 'every increment acked');
    for (const c of ['c0', 'c1', 'c2']) {
      assert.equal(fresh.doc.counters?.[c] ?? 0, counts[c], `/counters/${c}: each increment counted once`);
    }

    // ---- the strategies, replayed from the log with what each change sent ----
    const strat = new Map(); // category -> [problem]
    const prob = (cat, msg) => { if (!strat.has(cat)) strat.set(cat, []); strat.get(cat).push(msg); };
    const sent = (e) => subsByKey.get(`${e.client}#${e.mut}`)?.msg;
    const lww = new Map(); // path -> {hlc, client, value, deleted}
    const greater = (x, y) => x.hlc > y.hlc || (x.hlc === y.hlc && x.client > y.client);
    const versionLast = new Map(); // path -> {ver, client}
    const adds = new Map(); // element json -> [ver of each add]
    const rems = []; // {el, base, ver}
    const live = new Map(); // element json -> Set of the vers of its adds not yet removed (the OR-set, step by step)
    for (const e of log) {
      if (e.kind !== 'change') continue;
      const msg = sent(e);
      if (!msg) continue; // the setup
      if (msg.hlc !== undefined && e.hlc !== msg.hlc) prob('hlc', `seq ${e.seq}: entry hlc ${e.hlc}, sent ${msg.hlc}`);
      const sub = subsByKey.get(`${e.client}#${e.mut}`);
      const orig = sub.answers.find((x) => x.ok && !x.duplicate);
      const writes = msg.merge
        ? Object.entries(msg.merge).map(([k, v]) => ({ path: `/${k}`, value: v, deleted: v === null }))
        : msg.patch.map((op) => ({ path: op.path, op: op.op, value: op.value }));
      for (const w of writes) {
        if (w.op === 'incr') continue;
        if (w.op === 'sadd' || w.op === 'srem') {
          const key = canon(w.value);
          if (w.op === 'sadd') {
            adds.set(key, [...(adds.get(key) ?? []), e.ver]);
            if (!live.has(key)) live.set(key, new Set());
            live.get(key).add(e.ver);
          } else {
            rems.push({ el: key, base: msg.base, ver: e.ver });
            for (const a of [...(live.get(key) ?? [])]) if (a <= msg.base) live.get(key).delete(a); // only the adds its base had seen
          }
          const want = sorted([...live].filter(([, tags]) => tags.size).map(([k]) => k));
          const ef = e.effects.find((x) => x.path === '/tags');
          const got = ef ? sorted(ef.op === 'del' ? [] : ef.value.map(canon)) : null;
          if (ef && canon(got) !== canon(want)) prob('set', `seq ${e.seq} (${w.op} ${key}, base ${msg.base}): /tags became ${JSON.stringify(got)}, the OR-set gives ${JSON.stringify(want)}`);
          continue;
        }
        if (w.path.startsWith('/doc/')) {
          const prev = versionLast.get(w.path);
          if (prev && prev.client !== e.client && prev.ver > msg.base) {
            prob('version applied over a newer write', `seq ${e.seq}: version write to ${w.path} with base ${msg.base} applied over ver ${prev.ver} by ${prev.client}`);
          }
          versionLast.set(w.path, { ver: e.ver, client: e.client, value: w.value });
          continue;
        }
        const cand = { hlc: e.hlc, client: e.client, value: w.value, deleted: !!w.deleted };
        const cur = lww.get(w.path);
        // an exact tie (one client, one hlc: two nodes' clocks can give it) goes
        // to the later write in the log, as the server folds it (CONSISTENCY.md)
        const wins = !cur || greater(cand, cur) || (cand.hlc === cur.hlc && cand.client === cur.client);
        if (wins) lww.set(w.path, cand);
        const res = orig?.results?.find((r) => r.path === w.path);
        if (res && res.status !== (wins ? 'applied' : 'superseded')) {
          prob('lww status', `seq ${e.seq}: ${w.path} reported ${res.status}, but by (hlc, client) it ${wins ? 'wins' : 'loses'}`
            + ` (entry hlc ${e.hlc} client ${e.client} ver ${e.ver}; the write it meets: ${JSON.stringify(cur)}; the ack: ${JSON.stringify(orig).slice(0, 400)})`);
        }
      }
    }
    const doc = fresh.doc;
    let superseded = 0;
    for (const [p, w] of lww) {
      const got = getPtr(doc, p);
      if (w.deleted ? got !== undefined : canon(got) !== canon(w.value)) {
        prob('lww value', `lww ${p}: document has ${JSON.stringify(got)}, the greatest (hlc, client) wrote ${JSON.stringify(w.value)}`);
      }
    }
    for (const tb of tabs) for (const s of tb.subs) superseded += (s.final.results ?? []).filter((r) => r.status === 'superseded').length;
    for (const [p, v] of versionLast) {
      if (canon(getPtr(doc, p)) !== canon(v.value)) prob('version value', `version ${p}: document ${JSON.stringify(getPtr(doc, p))}, last applied write ${JSON.stringify(v.value)}`);
    }
    for (const { k, s } of conflicts) {
      const fin = s.final;
      const legit = log.some((e) => e.kind === 'change' && e.ver > s.msg.base && e.client !== s.msg.client &&
        e.effects.some((x) => x.path === s.msg.patch[0].path || x.path === '/doc'));
      if (!legit) prob('false conflict', `${k}: refused with base ${s.msg.base}, but no other client wrote ${s.msg.patch[0].path} after it: ${JSON.stringify(fin)}`);
      for (const c of fin.conflicts ?? []) {
        if (!(c.ver > s.msg.base)) prob('conflict ver not after base', `${k}: conflict at ver ${c.ver} is not newer than base ${s.msg.base}`);
        const w = log.find((e) => e.kind === 'change' && e.ver === c.ver);
        const ef = w?.effects.find((x) => x.path === c.path);
        if (!w || w.client === k.slice(0, k.indexOf('#'))) prob('conflict ver is not a write by another client', `${k}: conflict names ver ${c.ver}, not a write by another client`);
        else if (!ef || canon(ef.value) !== canon(c.value)) {
          const real = log.find((e) => e.kind === 'change' && e.effects.some((x) => x.path === c.path && canon(x.value) === canon(c.value)));
          prob('conflict ver/value not the log\'s', `${k}: conflict ${JSON.stringify(c)} (base ${s.msg.base}): the log's ver ${c.ver} (seq ${w.seq}) did not write ${c.path}; ${JSON.stringify(c.value)} was written at ver ${real?.ver} (seq ${real?.seq}, ${real?.client}#${real?.mut})`);
        }
      }
      if (!fin.conflicts?.length) prob('conflict without conflicts', `${k}`);
    }
    // OR-set: an element stays iff some add of it was not observed by any remove of it
    const expectSet = [];
    for (const [el, vers] of adds) {
      const alive = vers.some((a) => !rems.some((r) => r.el === el && r.ver > a && r.base >= a));
      if (alive) expectSet.push(el);
    }
    let survived = 0; // adds that a later remove did not observe
    for (const [el, vers] of adds) for (const a of vers) if (rems.some((r) => r.el === el && r.ver > a && r.base < a)) survived += 1;
    const gotSet = (doc.tags ?? []).map(canon);
    if (canon(sorted(gotSet)) !== canon(sorted(expectSet))) {
      prob('set', `set /tags is ${JSON.stringify(sorted(gotSet))}, the OR-set of the log gives ${JSON.stringify(sorted(expectSet))}`);
    }
    t.diagnostic(`${log.length} entries, ${resends} resends, ${conflicts.length} version conflicts, ${superseded} superseded lww writes, ` +
      `${rems.length} set removes, ${survived} adds not observed by a later remove, final set ${JSON.stringify(doc.tags)}`);
    const summary = [...strat].map(([cat, list]) => `${cat}: ${list.length}x, e.g. ${list.slice(0, 2).join(' | ')}`);
    assert.deepEqual(summary, [], `strategy problems (seed ${seed})`);
    noViolations(...tabs, fresh);
  });
});

// ==== 7. kill -9 ====================================================================

describe('history 7: durability across kill -9 and restarts', { ...SKIP, ...ONE_PROCESS }, () => {
  const dirs = [];
  const servers = [];
  const tabs = [];
  after(async () => {
    for (const t of tabs) t.close();
    for (const s of servers) { try { await s.stop(); } catch { /* killed */ } }
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const open = async (srv, id, opts = {}, o2) => {
    const m = await openMirror({ url: srv.url, id, ...opts }, o2);
    tabs.push(m);
    return m;
  };

  it('SQLite, --durability group:5: every acked change survives SIGKILL with its seq; gap-free; snapshot + tail = fold; same epoch; seqs never reused', { timeout: 60000 }, async (t) => {
    const dir = tempDir('kill');
    dirs.push(dir);
    const db = path.join(dir, 'history.db');
    const flags = [...BASE_FLAGS, '--state-rules', writeRules(dir), '--store-sqlite', db, '--durability', 'group:5', '--snapshot-every', '10'];
    const srv1 = await startServer({ testApp: false, extra: flags });
    servers.push(srv1);
    const S = uniq('kill');
    const a = await open(srv1, ident('alice', S, 'da', 'ta'), { client: 'k-a' });
    const b = await open(srv1, ident('alice', S, 'db', 'tb'), { client: 'k-b' });
    const epoch1 = a.epoch;
    const KILL_AT = 150;
    let acked = 0;
    let killedAt = null;
    const subs = [];
    const onAck = (ack) => {
      if (ack?.ok) acked += 1;
      if (acked === KILL_AT && killedAt === null) {
        killedAt = Date.now();
        process.kill(srv1.pid, 'SIGKILL');
      }
    };
    const pump = async (tb, tag) => {
      for (let n = 0; killedAt === null && n < 2000; n++) {
        while (tb.inflight() >= 12 && killedAt === null) await sleep(1);
        if (killedAt !== null) break;
        const sub = n % 4 === 3
          ? tb.submit('publish', env3({ id: `${tag}-${n}`, body: { n } }))
          : tb.submit('state', chg({ patch: [
            { op: 'incr', path: '/counters/a', value: 1 },
            { op: 'incr', path: '/counters/b', value: 2 },
            { op: 'add', path: `/last${tag}`, value: { n } },
          ] }));
        subs.push({ tb, sub });
        sub.promise.then(onAck);
        if (n % 7 === 0) await sleep(0);
      }
    };
    await Promise.all([pump(a, 'A'), pump(b, 'B')]);
    await waitUntil(() => killedAt !== null, 20000, 'the server killed after 150 acks');
    try { await srv1.stop(); } catch { /* exited by SIGKILL: expected */ }
    a.close();
    b.close();
    const ackedSubs = subs.filter(({ sub }) => sub.final?.ok === true);
    t.diagnostic(`${subs.length} sent, ${ackedSubs.length} acked before SIGKILL`);
    assert.ok(ackedSubs.length >= KILL_AT);

    const srv2 = await startServer({ testApp: false, extra: flags });
    servers.push(srv2);
    const f = await open(srv2, ident('alice', S, 'df', 'tf'));
    assert.equal(f.welcomes[0].epoch, epoch1, 'SQLite keeps the epoch across a restart');
    assert.equal(f.epoch, epoch1);
    assert.equal(f.resets[0].reason, 'initial');
    const log = (await fullLog(f, f.epoch)).entries;
    const N = log.length;
    assert.deepEqual(log.map((e) => e.seq), Array.from({ length: N }, (_, k) => k + 1), 'gap-free after the crash');
    const byKey = new Map(log.map((e) => [`${e.client}#${e.mut}`, e]));
    const lost = [];
    for (const { tb, sub } of ackedSubs) {
      const e = byKey.get(`${tb.client}#${sub.msg.mut}`);
      if (!e || e.seq !== sub.final.seq || e.id !== sub.msg.id) lost.push(`${tb.client}#${sub.msg.mut} acked at seq ${sub.final.seq}: ${e ? `logged at ${e.seq}` : 'missing'}`);
    }
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged changes lost`);
    // what a tab received live was durable before it was delivered
    const seen = [...a.events, ...a.changes, ...b.events, ...b.changes].filter((e) => e.seq !== undefined);
    const bySeq = new Map(log.map((e) => [e.seq, e]));
    const vanished = seen.filter((e) => bySeq.get(e.seq)?.id !== e.id).map((e) => `${e.kind} ${e.id} seq ${e.seq}`);
    t.diagnostic(`${seen.length} entries delivered live before the kill`);
    assert.deepEqual(vanished.slice(0, 10), [], `${vanished.length} entries delivered live are not in the log after the restart`);
    assert.equal(f.welcomes[0].seq, N, 'the welcome after the restart says where the history is');
    assert.equal(byKey.size, N, 'each entry has its own (client, mut)');
    // nothing half-applied: every change incremented a by 1 and b by 2 together
    const folded = fold(log);
    const nChanges = log.filter((e) => e.kind === 'change').length;
    assert.deepEqual(folded.counters, { a: nChanges, b: 2 * nChanges });
    assert.deepEqual(f.doc, folded, 'snapshot + tail (sync {}) = the fold of every entry');
    assert.equal(f.ver, nChanges);
    // the unanswered ones are resent: logged ones are duplicates, the rest apply once
    const a2 = await open(srv2, ident('alice', S, 'da', 'ta2'), { client: 'k-a' });
    const b2 = await open(srv2, ident('alice', S, 'db', 'tb2'), { client: 'k-b' });
    const re = { k_a: a2, k_b: b2 };
    let dupsAfter = 0;
    for (const { tb, sub } of subs.filter(({ sub }) => !sub.final?.ok)) {
      const tab2 = re[tb.client.replace('-', '_')];
      const ack = await tab2.ask(sub.event, sub.msg);
      assert.equal(ack.ok, true, JSON.stringify(ack));
      const e = byKey.get(`${tb.client}#${sub.msg.mut}`);
      if (e) {
        dupsAfter += 1;
        assert.equal(ack.duplicate, true, `${tb.client}#${sub.msg.mut} was logged before the crash: ${JSON.stringify(ack)}`);
        assert.equal(ack.seq, e.seq);
      } else {
        assert.equal(ack.duplicate, undefined);
        assert.ok(ack.seq > N, `new seq ${ack.seq} after the crash's ${N}: never reused`);
      }
    }
    t.diagnostic(`${subs.length - ackedSubs.length} unanswered at the kill, ${dupsAfter} of them had been logged`);
    const next = await a2.publish(env3({ id: 'after-restart' }));
    const f2 = await open(srv2, ident('alice', S, 'df', 'tf2'));
    assert.equal(next.seq, f2.lastSeq);
    const all = (await fullLog(f2, f2.epoch)).entries;
    assert.deepEqual(all.map((e) => e.seq), Array.from({ length: all.length }, (_, k) => k + 1));
    const nc = all.filter((e) => e.kind === 'change').length;
    assert.deepEqual(f2.doc.counters, { a: nc, b: 2 * nc });
    assert.equal(nc, subs.filter(({ sub }) => sub.event === 'state').length, 'every change applied exactly once in the end');
    noViolations(f, a2, b2, f2);
  });

  it('SQLite: a session with only plain entries after its snapshot loads from the snapshot alone; its next change applies at the next version', { timeout: 30000 }, async () => {
    // the load skips reading the log when no change was committed after the
    // snapshot (state_ver == snap_ver): what it then holds must be the fold
    const dir = tempDir('snaponly');
    dirs.push(dir);
    const db = path.join(dir, 'history.db');
    const flags = [...BASE_FLAGS, '--state-rules', writeRules(dir), '--store-sqlite', db, '--snapshot-every', '10'];
    const srv1 = await startServer({ testApp: false, extra: flags });
    servers.push(srv1);
    const S = uniq('snaponly');
    const a = await open(srv1, ident('alice', S, 'da', 'ta'), { client: 's-a' });
    for (let n = 0; n < 10; n++) {
      const ack = await a.submit('state', chg({ patch: [{ op: 'incr', path: '/counters/a', value: 1 }] })).promise;
      assert.equal(ack.ok, true, JSON.stringify(ack));
    }
    for (let n = 0; n < 20; n++) await a.publish(env3({ id: `ev-${n}` }));
    a.close();
    await srv1.stop();
    const srv2 = await startServer({ testApp: false, extra: flags });
    servers.push(srv2);
    const f = await open(srv2, ident('alice', S, 'df', 'tf'), { client: 's-f' });
    assert.equal(f.welcomes[0].seq, 30);
    assert.equal(f.ver, 10);
    assert.deepEqual(f.doc.counters, { a: 10 });
    const ack = await f.submit('state', chg({ patch: [{ op: 'incr', path: '/counters/a', value: 1 }] })).promise;
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.seq, 31);
    const g = await open(srv2, ident('alice', S, 'dg', 'tg'));
    assert.equal(g.ver, 11);
    assert.deepEqual(g.doc.counters, { a: 11 });
    noViolations(f, g);
  });

  it('memory only: a restart changes the epoch; a tab with the old epoch gets reset "epoch"', { timeout: 30000 }, async () => {
    const dir = tempDir('mem');
    dirs.push(dir);
    const flags = [...BASE_FLAGS, '--state-rules', writeRules(dir)];
    const srv1 = await startServer({ testApp: false, extra: flags });
    servers.push(srv1);
    const S = uniq('mem');
    const a = await open(srv1, ident('alice', S, 'da', 'ta'));
    await a.state(chg({ merge: { x: 1 } }));
    await a.publish(env3());
    await a.publish(env3());
    const epoch1 = a.epoch;
    assert.equal(a.lastSeq, 3);
    a.close();
    await srv1.stop();
    const srv2 = await startServer({ testApp: false, extra: flags });
    servers.push(srv2);
    const b = await open(srv2, ident('alice', S, 'db', 'tb'), {}, { sync: false });
    assert.notEqual(b.welcomes[0].epoch, epoch1, 'history was lost: a new epoch');
    assert.equal(b.welcomes[0].seq, 0);
    await b.publish(env3());
    const r = await b.sync({ after: 3, epoch: epoch1 });
    assert.equal(r.reset, true, JSON.stringify(r));
    assert.equal(r.reason, 'epoch');
    assert.notEqual(r.epoch, epoch1);
    assert.deepEqual(fold(r.entries, r.snapshot.state), {});
    noViolations(b);
  });
});

// ==== 8. the stock client's connection state recovery, from the log ==========

describe('history 8: socket.io-client recovery (recovered === true) backed by the durable log', SKIP, () => {
  const servers = [];
  const socks = new Set();
  after(async () => {
    for (const s of socks) s.close();
    for (const s of servers) await s.stop().catch(() => {});
  });
  const start = async (extra = []) => {
    const srv = await startServer({ testApp: false, extra: [...BASE_FLAGS, ...extra] });
    servers.push(srv);
    return srv;
  };
  /** A plain socket.io-client tab (no mirror): what an app without the library gets. */
  const plain = (url, id, proto = 2) => {
    const s = io(`${url}/session`, {
      auth: auth3(id, proto), transports: ['websocket'], reconnectionDelay: 50, reconnectionDelayMax: 100,
    });
    s.got = [];
    s.on('event', (e, offset) => s.got.push({ id: e.id, seq: e.seq, offset }));
    s.on('change', (e, offset) => s.got.push({ id: e.id, seq: e.seq, offset, change: true }));
    socks.add(s);
    return s;
  };
  const up = (s) => waitUntil(() => s.connected, 5000, 'connected');
  const publish = (s, id) => new Promise((r) => s.emit('publish', { v: 2, type: 't', id }, r));
  /** Drops the connection without a goodbye; the client reconnects by itself. */
  const drop = (s) => s.io.engine.close();

  it('a dropped tab gets recovered === true, the same id, and exactly the entries it missed, in order', { timeout: 20000 }, async () => {
    const srv = await start();
    const S = uniq('r1');
    const a = plain(srv.url, ident('rita', S, 'd1', 'a')), b = plain(srv.url, ident('rita', S, 'd2', 'b'));
    await up(a); await up(b);
    for (let i = 0; i < 3; i++) await publish(a, `x${i}`);
    await waitUntil(() => b.got.length === 3, 5000, 'live entries');
    assert.match(b.got[2].offset, /^h[0-9a-f]{16}\.3$/, 'each history entry carries its recovery offset');
    const id0 = b.id;
    drop(b);
    await waitUntil(() => !b.connected, 5000, 'dropped');
    for (let i = 3; i < 8; i++) await publish(a, `x${i}`);
    // a state change meanwhile: a v3 tab recovers it as a `change`, this
    // proto 2 tab never gets one (docs/PROTOCOL.md "What each version gets")
    const c = plain(srv.url, ident('rita', S, 'd3', 'c'), 3);
    await up(c);
    // c needs an offset to come back with. (Seen once under ASan with
    // three nodes and a parallel suite: this wait timed out; the ack and
    // what c had are in the message should it happen again.)
    const ackc = await publish(a, 'x-c');
    assert.equal(ackc.ok, true, `x-c: ${JSON.stringify(ackc)}`);
    await waitUntil(() => c.got.length >= 1, 10000, 'c has an offset')
      .catch((e) => { throw new Error(`${e.message}; c.got ${JSON.stringify(c.got)}, c.connected ${c.connected}, ack ${JSON.stringify(ackc)}`); });
    // x-c once, last. Across nodes c may also get x7 or an earlier entry
    // first: committed before c connected, still on its way through pub/sub
    // to c's node when c joined the session's room (seen once under ASan
    // with a three-primary Redis Cluster). That is delivery of a live entry
    // to a tab already in the room, not a repeat: each entry at most once.
    assert.equal(c.got.filter((g) => g.id === 'x-c').length, 1, `c got x-c once: ${JSON.stringify(c.got)}`);
    assert.equal(c.got.at(-1).id, 'x-c', `x-c last: ${JSON.stringify(c.got)}`);
    assert.equal(new Set(c.got.map((g) => g.id)).size, c.got.length, `each entry once: ${JSON.stringify(c.got)}`);
    c.io.engine.close();
    const w = plain(srv.url, ident('rita', S, 'd4', 'w'), 3);
    await up(w);
    const ack = await new Promise((r) => w.emit('state', { v: 3, id: 'ch1', merge: { k: 1 } }, r));
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await up(c);
    await waitUntil(() => c.got.some((g) => g.change), 5000, 'the v3 tab recovered the change');
    assert.equal(c.recovered, true);
    await up(b);
    assert.equal(b.recovered, true, 'socket.recovered');
    assert.equal(b.id, id0, 'a recovered socket keeps its id');
    for (let i = 8; i < 10; i++) await publish(a, `x${i}`);
    await waitUntil(() => b.got.length >= 11, 5000, 'missed + live');
    await sleep(200);
    const want = Array.from({ length: 10 }, (_, i) => `x${i}`);
    want.splice(8, 0, 'x-c');
    assert.deepEqual(b.got.map((g) => g.id), want, 'once each, in order, no change');
    const seqs = b.got.map((g) => g.seq);
    assert.ok(seqs.every((q, i) => i === 0 || q > seqs[i - 1]), `ascending seqs ${seqs}`);
  });

  it('across a kill -9 and a restart on the same SQLite file: recovered === true with what was missed', { timeout: 30000, ...ONE_PROCESS }, async () => {
    const dir = tempDir('recov');
    const flags = ['--store-sqlite', path.join(dir, 'store.db')];
    let srv = await start(flags);
    const S = uniq('r2');
    const a = plain(srv.url, ident('sam', S, 'd1', 'a'), 3), b = plain(srv.url, ident('sam', S, 'd2', 'b'), 3);
    await up(a); await up(b);
    for (let i = 0; i < 4; i++) await publish(a, `y${i}`);
    await waitUntil(() => b.got.length === 4, 5000, 'live');
    b.io.reconnection(false);
    drop(b);
    for (let i = 4; i < 7; i++) await publish(a, `y${i}`);
    process.kill(srv.pid, 'SIGKILL');
    await waitUntil(() => !a.connected, 5000, 'server gone');
    // the same address and port, so the clients' reconnection finds it
    const port = new URL(srv.url).port;
    const srv2 = await startServer({ testApp: false, extra: [...BASE_FLAGS, ...flags, '--listen', `127.0.0.1:${port}`] });
    servers.push(srv2);
    await up(a);
    b.io.reconnection(true);
    b.connect();
    await up(b);
    assert.equal(b.recovered, true, 'recovered after the restart (Node forgets everything)');
    await waitUntil(() => b.got.length >= 7, 5000, 'missed entries');
    await sleep(150);
    assert.deepEqual(b.got.map((g) => g.id), Array.from({ length: 7 }, (_, i) => `y${i}`));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a memory-only restart (another epoch), a stranger with someone else\'s pid and offset, or no offset: a fresh session', { timeout: 30000, ...ONE_PROCESS }, async () => {
    let srv = await start();
    const S = uniq('r3');
    const a = plain(srv.url, ident('tom', S, 'd1', 'a')), b = plain(srv.url, ident('tom', S, 'd2', 'b'));
    await up(a); await up(b);
    await publish(a, 'z0');
    await waitUntil(() => b.got.length === 1, 5000, 'live');
    const { _pid: pid, _lastOffset: offset } = b;
    assert.ok(pid && offset, 'the client holds a pid and an offset');
    // a stranger presenting tom's pid and offset with its own valid token
    const st = io(`${srv.url}/session`, {
      auth: { ...auth3(ident('eve', uniq('e'), 'de', 'te')), pid, offset }, transports: ['websocket'], reconnection: false,
    });
    socks.add(st);
    await up(st);
    assert.equal(st.recovered, false);
    assert.notEqual(st.id, b.id);
    // memory only: a restart is another history (epoch): nothing to recover
    const port = new URL(srv.url).port;
    process.kill(srv.pid, 'SIGKILL');
    await waitUntil(() => !b.connected, 5000, 'server gone');
    servers.push(await startServer({ testApp: false, extra: [...BASE_FLAGS, '--listen', `127.0.0.1:${port}`] }));
    await up(b);
    assert.equal(b.recovered, false, 'another epoch: not recovered');
  });
});
