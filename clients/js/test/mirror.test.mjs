// Unit tests of src/mirror.js: entries applied strictly in seq order (gaps
// held, duplicates dropped), sync answers (plain and reset), the optimistic
// view rebased on remote entries, confirm and rollback of pending changes,
// and subscriptions that fire only for the paths whose value changed, with
// the right source.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Mirror } from '../src/mirror.js';

const change = (seq, ver, effects, extra = {}) => ({ kind: 'change', seq, ver, effects, ...extra });
const set = (path, value) => ({ op: 'set', path, value });

/** A mirror with every subscription call recorded as [path, value, source]. */
function watched(paths) {
  const m = new Mirror();
  const calls = [];
  for (const p of paths) m.subscribe(p, (v, info) => calls.push([info.path, v, info.source]));
  const states = [];
  m.on('state', (e) => states.push(e.source));
  return { m, calls, states };
}

describe('Mirror: ordering', () => {
  it('applies entries by seq; holds a gap until it fills; drops what it has', () => {
    const m = new Mirror();
    m.reset({ state: {}, ver: 0, seq: 0, epoch: 'e1' });
    assert.equal(m.applyEntry(change(1, 1, [set('/a', 1)])), 'applied');
    assert.equal(m.applyEntry(change(3, 3, [set('/c', 3)])), 'held');
    assert.equal(m.applyEntry({ kind: 'event', seq: 4 }), 'held');
    assert.ok(m.hasGap());
    assert.equal(typeof m.gapSince(), 'number');
    assert.deepEqual(m.confirmed.state, { a: 1 });
    assert.equal(m.confirmed.seq, 1);
    assert.equal(m.applyEntry(change(1, 1, [set('/a', 'again')])), 'dropped');
    assert.equal(m.applyEntry(change(2, 2, [set('/b', 2)])), 'applied');
    assert.deepEqual(m.confirmed.state, { a: 1, b: 2, c: 3 });
    assert.equal(m.confirmed.seq, 4, 'the event entry advanced seq');
    assert.equal(m.confirmed.ver, 3, 'the event entry did not change ver');
    assert.equal(m.hasGap(), false);
    assert.equal(m.gapSince(), null);
    assert.equal(m.confirmed.epoch, 'e1');
  });

  it('an entry without an integer seq is ignored', () => {
    const m = new Mirror();
    assert.equal(m.applyEntry({ kind: 'event' }), 'dropped');
    assert.equal(m.confirmed.seq, 0);
  });

  it('emits each applied entry once, after the view is recomputed, with its source', () => {
    const m = new Mirror();
    const seen = [];
    m.on('entry', (e, source) => seen.push([e.seq, source, m.get('/n')]));
    m.applyEntry(change(2, 2, [set('/n', 2)]));
    m.applyEntry(change(1, 1, [set('/n', 1)]), 'confirm');
    assert.deepEqual(seen, [[1, 'confirm', 2], [2, 'remote', 2]]);
  });
});

describe('Mirror: sync answers', () => {
  it('a reset replaces the document; held entries after the snapshot (same epoch) survive', () => {
    const { m, calls } = watched(['/a', '/z']);
    m.reset({ state: { a: 'old' }, ver: 5, seq: 5, epoch: 'e1' });
    assert.deepEqual(calls, [['/a', 'old', 'reset']]);
    m.applyEntry(change(12, 9, [set('/z', 'live')]));
    m.applySync({
      ok: true, epoch: 'e1', seq: 11, reset: true, reason: 'trimmed', more: false,
      snapshot: { seq: 10, ver: 8, state: { a: 'snap' } },
      entries: [change(11, 8, [])],
    });
    assert.deepEqual(m.confirmed, { state: { a: 'snap', z: 'live' }, ver: 9, seq: 12, epoch: 'e1' });
    assert.deepEqual(calls.slice(1), [['/a', 'snap', 'reset'], ['/z', 'live', 'reset']]);
  });

  it('a reset with another epoch drops the held entries', () => {
    const m = new Mirror();
    m.reset({ state: {}, ver: 1, seq: 1, epoch: 'e1' });
    m.applyEntry(change(5, 5, [set('/old', 1)]));
    m.applySync({ ok: true, epoch: 'e2', seq: 2, reset: true, reason: 'epoch', more: false, snapshot: { seq: 2, ver: 2, state: { n: 1 } }, entries: [] });
    assert.equal(m.hasGap(), false);
    assert.equal(m.applyEntry(change(3, 3, [set('/m', 1)])), 'applied');
    assert.deepEqual(m.confirmed.state, { n: 1, m: 1 });
    assert.equal(m.confirmed.epoch, 'e2');
  });

  it('plain entries apply in order and take the epoch; a refused answer changes nothing', () => {
    const m = new Mirror();
    m.applySync({ ok: true, epoch: 'e9', seq: 2, more: false, entries: [change(1, 1, [set('/a', 1)]), { kind: 'event', seq: 2 }] });
    assert.deepEqual(m.confirmed, { state: { a: 1 }, ver: 1, seq: 2, epoch: 'e9' });
    m.applySync({ ok: false, error: { code: 'store_unavailable' } });
    assert.equal(m.confirmed.seq, 2);
  });
});

describe('Mirror: the optimistic view', () => {
  it('pending changes apply on top in order; confirmed stays the server\'s', () => {
    const { m, calls } = watched(['/n', '/t']);
    m.addPending(1, { ops: [{ op: 'incr', path: '/n', value: 1 }] });
    m.addPending(2, { merge: { t: 'x' } });
    m.addPending(3, { ops: [{ op: 'incr', path: '/n', value: 10 }] });
    assert.deepEqual(m.view, { n: 11, t: 'x' });
    assert.deepEqual(m.confirmed.state, {});
    assert.deepEqual(calls, [['/n', 1, 'local'], ['/t', 'x', 'local'], ['/n', 11, 'local']]);
  });

  it('a remote entry rebases the pending changes on the new confirmed state', () => {
    const { m, calls } = watched(['/n', '/other']);
    m.addPending('k', { ops: [{ op: 'incr', path: '/n', value: 1 }] });
    calls.length = 0;
    m.applyEntry(change(1, 1, [set('/n', 40)]));
    assert.equal(m.get('/n'), 41);
    assert.equal(m.confirmed.state.n, 40);
    assert.deepEqual(calls, [['/n', 41, 'remote']]);
    m.applyEntry(change(2, 2, [set('/other', true)]));
    assert.deepEqual(calls.slice(1), [['/other', true, 'remote']], '/n did not change: no call for it');
  });

  it('a pending change that no longer applies contributes nothing (and stays pending)', () => {
    const m = new Mirror();
    m.reset({ state: { title: 'a' }, ver: 1, seq: 1, epoch: 'e' });
    m.addPending('p', { ops: [{ op: 'test', path: '/title', value: 'a' }, { op: 'replace', path: '/title', value: 'mine' }] });
    assert.equal(m.get('/title'), 'mine');
    m.applyEntry(change(2, 2, [set('/title', 'theirs')]));
    assert.equal(m.get('/title'), 'theirs');
    assert.ok(m.pending.has('p'));
    m.applyEntry(change(3, 3, [set('/title', 'a')]));
    assert.equal(m.get('/title'), 'mine', 'applies again on a base where its test holds');
  });

  it('confirm: the server\'s effects replace the guess in one step (no double count)', () => {
    const { m, calls } = watched(['/n']);
    m.addPending(7, { client: 'c1', mut: 7, ops: [{ op: 'incr', path: '/n', value: 1 }] });
    calls.length = 0;
    // an entry that is this pending change (same client+mut) takes it out of the view
    m.batch('confirm', () => {
      m.applyEntry(change(1, 1, [set('/n', 1)], { client: 'c1', mut: 7 }), 'confirm');
      m.removePending(7, 'confirm');
    });
    assert.equal(m.get('/n'), 1);
    assert.equal(m.pending.size, 0);
    assert.deepEqual(calls, [], 'the value did not change: 1 guessed, 1 confirmed');
  });

  it('confirm with a different outcome (a superseded write) shows the winner with source confirm', () => {
    const { m, calls } = watched(['/t']);
    m.addPending('x', { ops: [{ op: 'add', path: '/t', value: 'mine' }] });
    m.batch('confirm', () => {
      m.applyEntry(change(1, 1, [set('/t', 'winner')]), 'confirm');
      m.removePending('x', 'confirm');
    });
    assert.deepEqual(calls, [['/t', 'mine', 'local'], ['/t', 'winner', 'confirm']]);
  });

  it('an own entry held behind a gap keeps its pending change until the gap fills', () => {
    const m = new Mirror();
    m.addPending(9, { client: 'c1', mut: 9, ops: [{ op: 'incr', path: '/n', value: 1 }] });
    assert.equal(m.applyEntry(change(2, 2, [set('/n', 1)], { client: 'c1', mut: 9 })), 'held');
    assert.equal(m.get('/n'), 1, 'still shown through the pending change');
    m.applyEntry(change(1, 1, [set('/x', 1)]));
    assert.equal(m.pending.size, 0);
    assert.deepEqual(m.view, { n: 1, x: 1 });
  });

  it('rollback takes a refused change back', () => {
    const { m, calls } = watched(['/a', '/b']);
    m.reset({ state: { a: 1, b: 1 }, ver: 1, seq: 1, epoch: 'e' });
    m.addPending('bad', { ops: [{ op: 'replace', path: '/a', value: 2 }] });
    m.removePending('bad', 'rollback');
    assert.deepEqual(m.view, { a: 1, b: 1 });
    assert.deepEqual(calls, [['/a', 1, 'reset'], ['/b', 1, 'reset'], ['/a', 2, 'local'], ['/a', 1, 'rollback']]);
    m.removePending('bad', 'rollback');
    assert.equal(calls.length, 4, 'removing twice is harmless');
  });
});

describe('Mirror: subscriptions', () => {
  it('fire for a path when its value or something below it changes, never for siblings', () => {
    const { m, calls, states } = watched(['', '/a', '/a/x', '/b', '/list/1']);
    m.reset({ state: { a: { x: 1, y: 1 }, b: 1, list: [0, 1] }, ver: 1, seq: 1, epoch: 'e' });
    calls.length = 0;
    states.length = 0;
    m.addPending(1, { ops: [{ op: 'replace', path: '/a/y', value: 2 }] });
    assert.deepEqual(calls.map((c) => c[0]), ['', '/a']);
    calls.length = 0;
    m.addPending(2, { ops: [{ op: 'replace', path: '/list/1', value: 5 }] });
    assert.deepEqual(calls.map((c) => [c[0], c[2]]), [['', 'local'], ['/list/1', 'local']]);
    calls.length = 0;
    m.addPending(3, { ops: [{ op: 'test', path: '/b', value: 1 }] });
    assert.deepEqual(calls, [], 'a change that changes nothing calls nobody');
    assert.deepEqual(states, ['local', 'local'], "'state' only when the view changed");
  });

  it('an entry rewriting a value with an equal one calls nobody (identity is kept)', () => {
    const { m, calls, states } = watched(['/cfg', '/cfg/deep']);
    m.applyEntry(change(1, 1, [set('/cfg', { deep: { k: [1, 2] } })]));
    assert.equal(calls.length, 2);
    const before = m.get('/cfg');
    m.applyEntry(change(2, 2, [set('/cfg', { deep: { k: [1, 2] } })]));
    assert.equal(calls.length, 2);
    assert.equal(m.get('/cfg'), before);
    assert.equal(states.length, 1);
  });

  it('unsubscribe stops the calls; a throwing subscriber does not stop the others', () => {
    const m = new Mirror();
    const got = [];
    const errors = [];
    const orig = console.error;
    console.error = (...a) => errors.push(a);
    try {
      m.subscribe('/n', () => { throw new Error('boom'); });
      const off = m.subscribe('/n', (v) => got.push(v));
      m.addPending(1, { merge: { n: 1 } });
      off();
      m.addPending(2, { merge: { n: 2 } });
    } finally {
      console.error = orig;
    }
    assert.deepEqual(got, [1]);
    assert.equal(errors.length, 2);
  });

  it('subscribe refuses a malformed pointer', () => {
    assert.throws(() => new Mirror().subscribe('nope', () => {}), /JSON Pointer/);
  });
});
