// Unit tests of src/queue.js (batching, wire form, ack classification),
// src/hlc.js, src/emitter.js and the memory storage of src/storage.js.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nextBatch, toWire, classifyAck, splitAck, MAX_BATCH, MAX_IN_FLIGHT } from '../src/queue.js';
import { Hlc, MAX_AHEAD_MS } from '../src/hlc.js';
import { Emitter } from '../src/emitter.js';
import { openStorage, randomId } from '../src/storage.js';

const recs = (n, status = 'pending') => Array.from({ length: n }, (_, i) => ({ mut: n - i, status }));

describe('queue: batching', () => {
  it('takes pending records in mut order, at most 64', () => {
    const b = nextBatch(recs(100));
    assert.equal(MAX_BATCH, 64);
    assert.equal(b.length, 64);
    assert.deepEqual(b.map((r) => r.mut), Array.from({ length: 64 }, (_, i) => i + 1));
  });
  it('skips records being sent and records without a mut yet', () => {
    const rs = [{ mut: 3, status: 'pending' }, { mut: 1, status: 'sending' }, { mut: 2, status: 'pending' }, { mut: null, status: 'pending' }];
    assert.deepEqual(nextBatch(rs).map((r) => r.mut), [2, 3]);
  });
  it('never lets more than 128 be unacknowledged', () => {
    assert.equal(MAX_IN_FLIGHT, 128);
    assert.equal(nextBatch(recs(100), { inFlight: 100 }).length, 28);
    assert.equal(nextBatch(recs(100), { inFlight: 128 }).length, 0);
    assert.equal(nextBatch(recs(100), { inFlight: 200 }).length, 0);
    assert.equal(nextBatch(recs(10), { max: 3 }).length, 3);
  });
});

describe('queue: wire form', () => {
  it('patch is the wire name of ops; optional members only when set', () => {
    const r = { client: 'c-x', mut: 5, id: 'ch-5-a', ops: [{ op: 'incr', path: '/n', value: 1 }], hlc: 99, createdAt: 1, attempts: 2, status: 'pending', origin: 'o' };
    assert.deepEqual(toWire(r), { v: 4, id: 'ch-5-a', client: 'c-x', mut: 5, hlc: 99, patch: r.ops });
    const m = toWire({ ...r, ops: undefined, merge: { a: 1 }, base: 0, lead: { scope: 'session', term: 3 }, type: 'edit' });
    assert.deepEqual(m, { v: 4, id: 'ch-5-a', client: 'c-x', mut: 5, hlc: 99, base: 0, merge: { a: 1 }, lead: { scope: 'session', term: 3 }, type: 'edit' });
  });
});

describe('queue: ack classification', () => {
  const refusal = (code) => ({ ok: false, id: 'x', error: { code, message: code } });
  it('classifies every kind of answer', () => {
    assert.equal(classifyAck({ ok: true, id: 'x', seq: 1, ver: 1, effects: [] }), 'confirmed');
    assert.equal(classifyAck({ ok: true, id: 'x', seq: 1, duplicate: true }), 'duplicate');
    assert.equal(classifyAck({ ...refusal('conflict'), conflicts: [{ path: '/doc/a', ver: 3 }] }), 'conflict');
    for (const c of ['store_unavailable', 'busy', 'throttled']) assert.equal(classifyAck(refusal(c)), 'retry', c);
    for (const c of ['mutation_too_old', 'test_failed', 'bad_patch', 'bad_path', 'type_mismatch', 'strategy_mismatch', 'base_required', 'too_large', 'clock_skew', 'stale_term', 'bad_change', 'counter_overflow']) {
      assert.equal(classifyAck(refusal(c)), 'rejected', c);
    }
    assert.equal(classifyAck(undefined), 'retry');
  });
  it('splits a batch ack, or repeats a whole-message refusal for each change', () => {
    const a = { ok: true, id: 'a', seq: 1 };
    const b = refusal('test_failed');
    assert.deepEqual(splitAck(2, { ok: false, failed: 1, results: [a, b] }), [a, b]);
    const whole = refusal('throttled');
    assert.deepEqual(splitAck(3, whole), [whole, whole, whole]);
  });
});

describe('hlc', () => {
  it('is ms * 1024 + counter and strictly increasing within one ms', () => {
    let t = 1_700_000_000_000;
    const h = new Hlc(() => t);
    const a = h.now();
    const b = h.now();
    assert.equal(a, t * 1024);
    assert.equal(b, a + 1);
    t += 1;
    assert.equal(h.now(), t * 1024);
  });
  it('never goes back when the wall clock does', () => {
    let t = 1_700_000_000_000;
    const h = new Hlc(() => t);
    const a = h.now();
    t -= 5000;
    assert.ok(h.now() > a);
  });
  it('observe keeps ours ahead of what it saw, within the wall clock + 30 s', () => {
    const t = 1_700_000_000_000;
    const h = new Hlc(() => t);
    h.observe((t + 2000) * 1024 + 7);
    assert.equal(h.now(), (t + 2000) * 1024 + 8);
    h.observe((t + 3_600_000) * 1024);
    assert.ok(h.now() <= (t + MAX_AHEAD_MS) * 1024 + 1, 'an hour ahead is capped');
    assert.ok(MAX_AHEAD_MS < 60000);
    const before = h.now();
    h.observe(5);
    h.observe('x');
    assert.equal(h.now(), before + 1, 'older or bogus timestamps change nothing');
  });
});

describe('emitter', () => {
  it('on/off/once; a throwing listener does not stop the others', () => {
    const e = new Emitter();
    const got = [];
    const errs = [];
    const orig = console.error;
    console.error = (...a) => errs.push(a);
    try {
      e.on('x', () => { throw new Error('boom'); });
      const off = e.on('x', (v) => got.push(`on${v}`));
      e.once('x', (v) => got.push(`once${v}`));
      const f = (v) => got.push(`f${v}`);
      e.once('x', f);
      e.off('x', f);
      e.emit('x', 1);
      off();
      e.emit('x', 2);
      e.emit('nobody');
    } finally {
      console.error = orig;
    }
    assert.deepEqual(got, ['on1', 'once1']);
    assert.equal(errs.length, 2);
  });
});

describe('storage (memory)', () => {
  it('a persistent client id per name; url-safe random ids', async () => {
    const name = `t-${randomId(8)}`;
    const a = await openStorage({ kind: 'memory', name });
    const b = await openStorage({ kind: 'memory', name });
    const c = await openStorage({ kind: 'memory', name: `${name}-other` });
    assert.match(a.clientId, /^c-[A-Za-z0-9_-]{16}$/);
    assert.equal(a.clientId, b.clientId);
    assert.notEqual(a.clientId, c.clientId);
    for (const s of [a, b, c]) s.close();
  });

  it('in Node, indexeddb falls back to memory', async () => {
    assert.equal(globalThis.indexedDB, undefined);
    const s = await openStorage({ kind: 'indexeddb', name: `t-${randomId(8)}` });
    assert.equal(s.kind, 'memory');
    s.close();
    await assert.rejects(openStorage({ kind: 'floppy', name: 'x' }), TypeError);
  });

  it('nextMut is strictly increasing under concurrent calls from two "tabs"', async () => {
    const name = `t-${randomId(8)}`;
    const a = await openStorage({ kind: 'memory', name });
    const b = await openStorage({ kind: 'memory', name });
    const pa = Array.from({ length: 200 }, () => a.nextMut());
    const pb = Array.from({ length: 200 }, () => b.nextMut());
    const [ra, rb] = await Promise.all([Promise.all(pa), Promise.all(pb)]);
    for (const r of [ra, rb]) for (let i = 1; i < r.length; i++) assert.ok(r[i] > r[i - 1]);
    const all = new Set([...ra, ...rb]);
    assert.equal(all.size, 400, 'no number given twice');
    assert.equal(Math.max(...all), 400);
    a.close();
    b.close();
  });

  it('changes ordered by mut, snapshots, copies (not references); the other tab is told', async () => {
    const name = `t-${randomId(8)}`;
    const a = await openStorage({ kind: 'memory', name });
    const b = await openStorage({ kind: 'memory', name });
    const told = [];
    const toldA = [];
    b.onChange((info) => told.push(info));
    a.onChange((info) => toldA.push(info));
    const r = { mut: 2, ops: [{ op: 'incr', path: '/n', value: 1 }] };
    await a.putChange(r);
    await a.putChange({ mut: 1, merge: { x: 1 } });
    r.ops.length = 0;
    const list = await b.listChanges();
    assert.deepEqual(list.map((x) => x.mut), [1, 2]);
    assert.equal(list[1].ops.length, 1, 'stored a copy');
    await a.deleteChange(1);
    assert.deepEqual((await b.listChanges()).map((x) => x.mut), [2]);
    assert.equal(await b.loadSnapshot(), null);
    const snap = { state: { n: 1 }, ver: 3, seq: 4, epoch: 'e' };
    await a.saveSnapshot(snap);
    snap.state.n = 99;
    assert.deepEqual(await b.loadSnapshot(), { state: { n: 1 }, ver: 3, seq: 4, epoch: 'e' });
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(told, [{ mut: 2 }, { mut: 1 }, { mut: 1, deleted: true }]);
    assert.deepEqual(toldA, [], 'a tab is not told about its own changes');
    a.close();
    b.close();
  });
});
