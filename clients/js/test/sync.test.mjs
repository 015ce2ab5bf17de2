// The session sync (src/sync.js) against a real tabsyncd with the state
// rules of docs/CONSISTENCY.md (/counters/* counter, /tags set, /doc/**
// version, lww elsewhere), over real socket.io-client sockets (protocol 4).
// Every test compares what the services hold with what the server holds:
// the document a fresh tab gets and the whole log (to count applications).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, IS_NODE } from '../../../tests/js/harness.mjs';
import { BASE_FLAGS, tempDir, writeRules, uniq, ident } from '../../../tests/js/history-helpers.mjs';
import { openStorage } from '../src/storage.js';
import { toWire } from '../src/queue.js';
import { SyncService } from '../src/sync.js';
import { Tab, waitUntil, serverView, connectSocket } from './helpers.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference has no /session history)' } : {};
const T = { timeout: 30000 };

describe('SyncService against tabsyncd', SKIP, () => {
  let srv;
  let dir;
  const tabs = [];
  const tab = async (opts) => {
    const t = await new Tab(srv.url, opts).open();
    tabs.push(t);
    return t;
  };

  before(async () => {
    dir = tempDir('jsync');
    srv = await startServer({ testApp: false, extra: [...BASE_FLAGS, '--state-rules', writeRules(dir)] });
  });
  after(async () => {
    for (const t of tabs) await t.close().catch(() => {});
    await srv?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Waits until every tab settled its queue and applied the server's newest seq. */
  async function converged(session, ...ts) {
    let view;
    await waitUntil(async () => {
      if (!ts.every((t) => t.settledAll())) return false;
      view = await serverView(srv.url, session);
      return ts.every((t) => t.svc.confirmed.seq === view.seq);
    }, 15000, `tabs converge on ${session}`);
    for (const t of ts) {
      assert.deepEqual(t.svc.state, view.state, `${t.storageName}: the view equals the server's document`);
      assert.deepEqual(t.svc.confirmed.state, view.state);
      assert.equal(t.svc.confirmed.ver, view.ver);
      assert.equal(t.svc.confirmed.epoch, view.epoch);
    }
    return view;
  }

  it('two services on two sockets converge; a confirmed update carries seq and ver', T, async () => {
    const session = uniq('conv');
    const a = await tab({ session, device: 'da' });
    const b = await tab({ session, device: 'db' });
    await a.connect();
    await b.connect();
    assert.notEqual(a.svc.clientId, b.svc.clientId, 'two profiles, two exactly-once clients');
    const seenByB = [];
    b.svc.subscribe('/title', (v, info) => seenByB.push([v, info.source]));

    const c1 = a.svc.update([{ op: 'add', path: '/title', value: 'Groceries' }]);
    assert.equal(c1.status, 'pending');
    assert.match(c1.id, /^ch-\d+-[A-Za-z0-9_-]+$/);
    assert.equal(c1.id.split('-')[1], String(c1.mut));
    assert.equal(c1.client, a.svc.clientId);
    assert.equal(a.svc.get('/title'), 'Groceries', 'shown at once');
    assert.equal(a.svc.confirmed.state.title, undefined, 'not confirmed yet');
    const done = await c1.done;
    assert.equal(done, c1);
    assert.equal(c1.status, 'confirmed');
    assert.ok(Number.isInteger(c1.result.seq) && c1.result.seq >= 1, JSON.stringify(c1.result));
    assert.ok(Number.isInteger(c1.result.ver) && c1.result.ver >= 1);
    assert.deepEqual(c1.result.results, [{ path: '/title', status: 'applied', value: 'Groceries' }]);
    assert.equal(a.svc.confirmed.ver, c1.result.ver);
    assert.equal(a.svc.confirmed.seq, c1.result.seq);

    const all = [];
    for (let i = 0; i < 3; i++) all.push(a.svc.update([{ op: 'incr', path: '/counters/n', value: 1 }]));
    for (let i = 0; i < 4; i++) all.push(b.svc.update([{ op: 'incr', path: '/counters/n', value: 2 }]));
    all.push(a.svc.update([{ op: 'sadd', path: '/tags', value: 'home' }]));
    all.push(b.svc.update([{ op: 'sadd', path: '/tags', value: 'work' }]));
    all.push(b.svc.update({ merge: { meta: { by: 'b', gone: null } } }));
    await Promise.all(all.map((c) => c.done));
    assert.deepEqual(all.map((c) => c.status), all.map(() => 'confirmed'));
    const view = await converged(session, a, b);
    assert.equal(view.state.counters.n, 11);
    assert.deepEqual([...view.state.tags].sort(), ['home', 'work']);
    assert.deepEqual(view.state.meta, { by: 'b' });
    assert.deepEqual(seenByB, [['Groceries', 'remote']]);
    assert.ok(b.changes.some((e) => e.client === a.svc.clientId), "B emitted 'change' for A's entries");
    assert.ok(!a.changes.some((e) => e.client === a.svc.clientId), "A's own acks are not 'change' events");
    assert.equal(view.log.length, 11, 'one log entry per change');
  });

  it('a device whose clock runs five minutes ahead: changes made offline and online are accepted (the welcome gives the server time)', T, async () => {
    const session = uniq('skew');
    const a = await tab({ session, device: 'fast' });
    const AHEAD = 5 * 60 * 1000;
    a.svc.hlc.clock = () => Date.now() + AHEAD; // the server refuses hlc > 60 s ahead
    // made before the first connect: stamped with the fast clock
    const offline = a.svc.update([{ op: 'add', path: '/title', value: 'offline, fast clock' }]);
    const welcome = await a.connect();
    assert.ok(Number.isSafeInteger(welcome.now) && Math.abs(welcome.now - Date.now()) < 5000, `welcome.now ${welcome.now}`);
    await offline.done;
    assert.equal(offline.status, 'confirmed', JSON.stringify(offline.error));
    const online = a.svc.update([{ op: 'incr', path: '/counters/n', value: 1 }]);
    await online.done;
    assert.equal(online.status, 'confirmed', JSON.stringify(online.error));
    const refusedOnce = a.out.filter(([e]) => e === 'state').flatMap(([, m]) => (Array.isArray(m) ? m : [m]))
      .filter((m) => m.mut === offline.mut);
    assert.equal(refusedOnce.length, 2, 'the offline change went twice: refused for its clock, then restamped');
    assert.ok(refusedOnce[1].hlc < refusedOnce[0].hlc, 'the second stamp is from the corrected clock');
    const onlineSent = a.out.filter(([e]) => e === 'state').flatMap(([, m]) => (Array.isArray(m) ? m : [m]))
      .find((m) => m.mut === online.mut);
    // never behind its own earlier stamps (a later write must win over them),
    // but within the server's bound: at most MAX_AHEAD_MS (30 s) ahead
    const ahead = Math.floor(onlineSent.hlc / 1024) - Date.now();
    assert.ok(ahead < 31000, `a change made online is stamped from the corrected clock (${ahead} ms ahead)`);
    const view = await converged(session, a);
    assert.equal(view.state.title, 'offline, fast clock');
    assert.equal(view.state.counters.n, 1);
  });

  it('a detached service queues; after re-attach each change is applied exactly once (sent three times)', T, async () => {
    const session = uniq('once');
    const a = await tab({ session, device: 'da' });
    const b = await tab({ session, device: 'db' });
    await a.connect();
    await b.connect();
    b.disconnect();
    const seqBefore = (await serverView(srv.url, session)).seq;
    const offline = [];
    for (let i = 0; i < 5; i++) offline.push(b.svc.update([{ op: 'incr', path: '/counters/off', value: 1 }]));
    offline.push(b.svc.update({ merge: { note: 'written offline' } }));
    assert.equal(b.svc.get('/counters/off'), 5, 'the offline view shows the changes');
    assert.deepEqual(b.svc.queue().map((q) => q.status), Array(6).fill('pending'));
    assert.deepEqual(b.svc.queue().map((q) => q.mut), offline.map((c) => c.mut));
    assert.deepEqual(b.svc.queue()[5].ops, { merge: { note: 'written offline' } });
    const stored = await waitUntil(async () => {
      const l = await b.storage.listChanges();
      return l.length === 6 && l;
    }, 2000, 'the offline changes are stored');
    assert.deepEqual(stored.map((r) => r.mut), offline.map((c) => c.mut));
    assert.equal((await serverView(srv.url, session)).seq, seqBefore, 'nothing was sent while detached');

    // First send: the stored records, by hand, from another socket of the
    // same profile (as another tab flushing the shared queue would).
    const { sock: other } = await connectSocket(srv.url, ident('alice', session, 'db', uniq('other')));
    const first = await other.timeout(8000).emitWithAck('state', stored.map(toWire));
    assert.equal(first.ok, true, JSON.stringify(first));
    assert.ok(first.results.every((r) => r.ok && !r.duplicate));

    // Second send: B's own flush at re-attach; its answers are duplicates.
    await b.connect();
    await Promise.all(offline.map((c) => c.done));
    for (const [i, c] of offline.entries()) {
      assert.equal(c.status, 'confirmed');
      assert.equal(c.result.duplicate, true, `mut ${c.mut} was a duplicate`);
      assert.equal(c.result.seq, first.results[i].seq, 'answered from the original');
    }
    assert.equal(b.sent('state').flat().length, 6, 'B sent each change once');

    // Third send, by hand again.
    const third = await other.timeout(8000).emitWithAck('state', stored.map(toWire));
    assert.ok(third.results.every((r) => r.ok && r.duplicate), JSON.stringify(third));
    other.close();

    const view = await converged(session, a, b);
    assert.equal(view.state.counters.off, 5, 'counters exact');
    assert.equal(view.state.note, 'written offline');
    const mine = view.log.filter((e) => e.client === b.svc.clientId);
    assert.deepEqual(mine.map((e) => e.mut), offline.map((c) => c.mut), 'each mut logged once, in order');
    assert.deepEqual(await b.storage.listChanges(), [], 'the queue is empty');
  });

  it('a version conflict is rebased on the current value', T, async () => {
    const session = uniq('rebase');
    const a = await tab({ session, device: 'da' });
    const b = await tab({ session, device: 'db' });
    await a.connect();
    await b.connect();
    await a.svc.update([{ op: 'add', path: '/doc', value: { title: 'v1' } }], { base: 'current' }).done;
    await waitUntil(() => b.svc.get('/doc/title') === 'v1', 5000, 'B sees v1');
    b.disconnect();
    const ca = a.svc.update([{ op: 'replace', path: '/doc/title', value: 'by A' }], { base: 'current' });
    await ca.done;
    assert.equal(ca.status, 'confirmed');
    const cb = b.svc.update([{ op: 'replace', path: '/doc/title', value: 'by B' }], { base: 'current' });
    const baseB = b.svc.confirmed.ver;
    await b.connect();
    await cb.done;
    assert.equal(cb.status, 'rejected');
    assert.equal(cb.error.code, 'conflict');
    assert.equal(cb.conflict.resolution, 'rebased');
    assert.ok(cb.conflict.conflicts.some((c) => c.path.startsWith('/doc') && c.ver > baseB), JSON.stringify(cb.conflict));
    assert.match(cb.rebasedAs ?? '', /^ch-\d+-/);
    const nc = await waitUntil(() => b.settled.find((c) => c.id === cb.rebasedAs), 10000, 'the rebased change settles');
    assert.equal(nc.status, 'confirmed', JSON.stringify(nc));
    assert.ok(nc.mut > cb.mut, 'a new mutation number');
    assert.deepEqual(b.conflictEvents.map((e) => [e.change.id, e.resolution]), [[cb.id, 'rebased']]);
    const view = await converged(session, a, b);
    assert.equal(view.state.doc.title, 'by B');
  });

  it("a version conflict with conflicts: 'drop' (and with a function) keeps the server's value", T, async () => {
    const session = uniq('drop');
    const a = await tab({ session, device: 'da' });
    const asked = [];
    const b = await tab({ session, device: 'db', conflicts: 'drop' });
    const c = await tab({ session, device: 'dc', conflicts: (info) => { asked.push(info); return 'drop'; } });
    for (const t of [a, b, c]) await t.connect();
    await a.svc.update({ merge: { doc: { title: 'v1' } } }, { base: 'current' }).done;
    await waitUntil(() => b.svc.get('/doc/title') === 'v1' && c.svc.get('/doc/title') === 'v1', 5000, 'B and C see v1');
    b.disconnect();
    c.disconnect();
    await a.svc.update({ merge: { doc: { title: 'by A' } } }, { base: 'current' }).done;
    const seen = [];
    b.svc.subscribe('/doc/title', (v, info) => seen.push([v, info.source]));
    const cb = b.svc.update({ merge: { doc: { title: 'by B' } } }, { base: 'current' });
    const cc = c.svc.update({ merge: { doc: { title: 'by C' } } }, { base: 'current' });
    assert.equal(b.svc.get('/doc/title'), 'by B');
    await b.connect();
    await c.connect();
    await cb.done;
    await cc.done;
    for (const ch of [cb, cc]) {
      assert.equal(ch.status, 'rejected');
      assert.equal(ch.error.code, 'conflict');
      assert.equal(ch.conflict.resolution, 'dropped');
      assert.equal(ch.rebasedAs, undefined);
    }
    assert.equal(asked.length, 1);
    assert.equal(asked[0].change, cc);
    assert.ok(asked[0].conflicts.length >= 1);
    assert.deepEqual(b.conflictEvents.map((e) => e.resolution), ['dropped']);
    assert.deepEqual(seen, [['by B', 'local'], ['by A', 'rollback']], 'the guess is taken back');
    const view = await converged(session, a, b, c);
    assert.equal(view.state.doc.title, 'by A');
    assert.equal(view.log.filter((e) => e.kind === 'change').length, 2, 'nothing of B or C was applied');
  });

  it('an offline change survives a reload (new service, same storage) and is sent once; the reload replays only what it missed', T, async () => {
    const session = uniq('reload');
    const profile = uniq('profile');
    const a = await tab({ session, device: 'da' });
    await a.connect();
    for (let i = 0; i < 3; i++) await a.svc.update([{ op: 'incr', path: '/counters/r', value: 1 }]).done;
    const s1 = await tab({ session, device: 'db', storageName: profile });
    await s1.connect();
    const cachedSeq = s1.svc.confirmed.seq;
    assert.equal(cachedSeq, 3);
    s1.disconnect();
    const c1 = s1.svc.update([{ op: 'incr', path: '/counters/r', value: 10 }]);
    const c2 = s1.svc.update([{ op: 'add', path: '/reloaded', value: true }]);
    await waitUntil(async () => (await s1.storage.listChanges()).length === 2, 2000, 'stored');
    await s1.close(); // the page goes away: nothing was sent
    assert.equal(c1.status, 'pending');

    await a.svc.update([{ op: 'add', path: '/while', value: 'away' }]).done;
    const s2 = await tab({ session, device: 'db', storageName: profile });
    assert.equal(s2.svc.clientId, s1.svc.clientId, 'the same exactly-once client');
    assert.equal(s2.svc.confirmed.seq, cachedSeq, 'the cached document is back');
    assert.equal(s2.svc.get('/counters/r'), 13, 'cached 3 + the pending 10');
    assert.equal(s2.svc.get('/reloaded'), true);
    assert.deepEqual(s2.svc.queue().map((q) => q.mut), [c1.mut, c2.mut]);
    assert.deepEqual(s2.svc.queue().map((q) => q.id), [c1.id, c2.id]);

    await s2.connect();
    const syncs = s2.sent('sync');
    assert.deepEqual(syncs[0], { after: cachedSeq, epoch: s1.svc.confirmed.epoch }, 'asks only for what it missed');
    await waitUntil(() => s2.settledAll(), 10000, 'the reloaded queue is sent');
    const sentMuts = s2.sent('state').flat().map((m) => m.mut);
    assert.deepEqual(sentMuts, [c1.mut, c2.mut], 'each sent once');
    assert.deepEqual(s2.settled.map((c) => [c.mut, c.status, c.result?.duplicate]), [[c1.mut, 'confirmed', undefined], [c2.mut, 'confirmed', undefined]]);
    const view = await converged(session, a, s2);
    assert.equal(view.state.counters.r, 13);
    assert.equal(view.state.while, 'away');
    assert.equal(view.log.filter((e) => e.client === s1.svc.clientId).length, 2);
  });

  it('a tab that missed entries replays them via sync: after a disconnection, and for a gap in live delivery', T, async () => {
    const session = uniq('replay');
    const a = await tab({ session, device: 'da' });
    const b = await tab({ session, device: 'db' });
    await a.connect();
    await b.connect();
    await a.svc.update([{ op: 'add', path: '/n', value: 0 }]).done;
    await waitUntil(() => b.svc.confirmed.seq === 1, 5000, 'B has seq 1');
    b.disconnect();
    for (let i = 1; i <= 5; i++) await a.svc.update([{ op: 'replace', path: '/n', value: i }]).done;
    await b.connect();
    assert.deepEqual(b.sent('sync')[1], { after: 1, epoch: a.svc.confirmed.epoch });
    assert.equal(b.svc.confirmed.seq, 6, 'the five missed entries, replayed at attach');
    assert.equal(b.svc.get('/n'), 5);

    // drop one live entry: the next ones wait behind the gap until sync fills it
    let dropped = 0;
    let held = false;
    b.liveFilter = (e) => {
      if (e.seq === 8 && ++dropped === 1) return false;
      if (e.seq === 9) setImmediate(() => { held = b.svc.mirror.hasGap(); });
      return true;
    };
    const syncsBefore = b.sent('sync').length;
    for (let i = 6; i <= 8; i++) {
      const c = await a.svc.update([{ op: 'add', path: `/k${i}`, value: i }]).done;
      assert.equal(c.status, 'confirmed');
    }
    await waitUntil(() => b.svc.confirmed.seq === 9, 5000, 'B fills the gap');
    assert.equal(dropped, 1);
    assert.equal(held, true, 'seq 9 waited behind the gap');
    assert.equal(b.sent('sync').length, syncsBefore + 1, 'one sync for the gap');
    await converged(session, a, b);
  });

  it('refused changes are rolled back: a failing test op, a strategy mismatch, a stale fence, not_leader', T, async () => {
    const session = uniq('rollback');
    const a = await tab({ session, device: 'da' });
    const b = await tab({ session, device: 'db', leadTerm: (scope) => (scope === 'session' ? 1 : null) });
    await a.connect();
    await b.connect();
    await a.svc.update([{ op: 'add', path: '/title', value: 'x' }]).done;
    await waitUntil(() => b.svc.get('/title') === 'x', 5000, 'B sees x');

    // test op: true when made offline, false on the server by the time it arrives
    b.disconnect();
    const seen = [];
    b.svc.subscribe('/title', (v, info) => seen.push([v, info.source]));
    const ct = b.svc.update([{ op: 'test', path: '/title', value: 'x' }, { op: 'replace', path: '/title', value: 'mine' }]);
    assert.equal(b.svc.get('/title'), 'mine');
    await a.svc.update([{ op: 'replace', path: '/title', value: 'theirs' }]).done;
    await b.connect();
    await ct.done;
    assert.equal(ct.status, 'rejected');
    assert.equal(ct.error.code, 'test_failed');
    assert.deepEqual(seen, [['mine', 'local'], ['theirs', 'remote']], 'rebased on the new value: the test no longer applies locally');

    // a counter written with replace: fine locally, strategy_mismatch on the server
    await b.svc.update([{ op: 'incr', path: '/counters/y', value: 1 }]).done;
    const seenC = [];
    b.svc.subscribe('/counters/x', (v, info) => seenC.push([v, info.source]));
    const cm = b.svc.update([{ op: 'add', path: '/counters/x', value: 5 }]);
    assert.equal(b.svc.get('/counters/x'), 5);
    await cm.done;
    assert.equal(cm.status, 'rejected');
    assert.equal(cm.error.code, 'strategy_mismatch');
    assert.deepEqual(seenC, [[5, 'local'], [undefined, 'rollback']]);

    // fenced with a term this tab does not hold: the server refuses it
    const cf = b.svc.update([{ op: 'add', path: '/fenced', value: 1 }], { lead: 'session' });
    assert.equal(b.sent('state').flat().find((m) => m.id === cf.id), undefined, 'sent only once stored');
    await cf.done;
    assert.equal(cf.status, 'rejected');
    assert.equal(cf.error.code, 'stale_term');
    const wire = b.sent('state').flat().find((m) => m.id === cf.id);
    assert.deepEqual(wire.lead, { scope: 'session', term: 1 });
    assert.equal(wire.v, 4);
    assert.equal(b.svc.get('/fenced'), undefined);

    // not leading at all: refused at once, nothing stored or sent
    const stateMsgs = b.sent('state').length;
    const cn = b.svc.update([{ op: 'add', path: '/fenced', value: 2 }], { lead: 'device' });
    assert.equal(cn.status, 'rejected');
    assert.equal(cn.error.code, 'not_leader');
    assert.equal(b.svc.get('/fenced'), undefined);
    assert.deepEqual(b.svc.queue(), []);
    assert.deepEqual(await b.storage.listChanges(), []);
    assert.equal((await cn.done).status, 'rejected');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(b.sent('state').length, stateMsgs);

    const view = await converged(session, a, b);
    assert.equal(view.state.title, 'theirs');
    assert.deepEqual(view.log.filter((e) => e.client === b.svc.clientId).map((e) => e.effects), [[{ op: 'set', path: '/counters/y', value: 1 }]], 'nothing else of B was applied');
  });

  it('a long offline queue goes out in mut order, at most 64 per message and 128 unacknowledged', T, async () => {
    const session = uniq('batch');
    const b = await tab({ session, device: 'db' });
    const inFlightAtSend = [];
    b.svc.on('log', (e) => {
      if (e.dir === 'out' && e.name === 'state') inFlightAtSend.push([...b.svc.records.values()].filter((r) => r.status === 'sending').length);
    });
    const cs = [];
    for (let i = 0; i < 300; i++) cs.push(b.svc.update([{ op: 'incr', path: '/counters/many', value: 1 }]));
    await waitUntil(async () => (await b.storage.listChanges()).length === 300, 5000, 'all stored');
    await b.connect();
    await Promise.all(cs.map((c) => c.done));
    const msgs = b.sent('state');
    assert.ok(msgs.every((m) => Array.isArray(m) && m.length >= 1 && m.length <= 64), msgs.map((m) => m.length).join(','));
    const muts = msgs.flat().map((m) => m.mut);
    assert.deepEqual(muts, cs.map((c) => c.mut), 'each once, in mut order');
    assert.ok(Math.max(...inFlightAtSend) <= 128, `in flight: ${inFlightAtSend}`);
    assert.ok(Math.max(...inFlightAtSend) > 64, 'more than one message was in flight (pipelined)');
    const view = await converged(session, b);
    assert.equal(view.state.counters.many, 300);
  });

  it('two services of one profile (two tabs): a change one tab made offline is sent by the other', T, async () => {
    const session = uniq('profile');
    const profile = uniq('shared');
    const t1 = await tab({ session, device: 'dp', storageName: profile });
    const t2 = await tab({ session, device: 'dp', storageName: profile });
    await t2.connect();
    const c = t1.svc.update([{ op: 'incr', path: '/counters/shared', value: 7 }]);
    await waitUntil(() => t2.svc.queue().some((q) => q.id === c.id), 2000, 't2 sees t1\'s queued change');
    assert.equal(t2.svc.get('/counters/shared'), 7, 'and shows it');
    t2.disconnect();
    await t2.connect(); // every tab flushes the shared queue at connect
    await waitUntil(async () => (await serverView(srv.url, session)).state.counters?.shared === 7, 5000, 'applied via t2');
    await t1.connect(); // t1 sends it too: a duplicate, settled
    await c.done;
    assert.equal(c.status, 'confirmed');
    const view = await converged(session, t1, t2);
    assert.equal(view.state.counters.shared, 7);
    assert.equal(view.log.length, 1);
  });

  it('memory storages of one name share the queue and counter (sanity for the tests above)', async () => {
    const name = uniq('same');
    const s1 = await openStorage({ kind: 'memory', name });
    const s2 = await openStorage({ kind: 'memory', name });
    assert.equal(s1.clientId, s2.clientId);
    const m1 = await s1.nextMut();
    assert.equal(await s2.nextMut(), m1 + 1);
    s1.close();
    s2.close();
  });
});

// ---- without a server: a scripted socket, for the timing cases ----------------

/** A socket whose answers `answer(event, arg, n)` scripts (a value, or a promise). */
class ScriptedSocket {
  constructor(answer) {
    this.connected = true;
    this.sent = [];
    this.answer = answer;
  }

  timeout() {
    return this;
  }

  emitWithAck(event, arg) {
    this.sent.push([event, arg]);
    return Promise.resolve(this.answer(event, arg, this.sent.length));
  }

  emit(event, arg, cb) {
    this.sent.push([event, arg]);
    Promise.resolve(this.answer(event, arg, this.sent.length)).then((ack) => cb(null, ack), (err) => cb(err));
  }
}

const INITIAL = { ok: true, epoch: '00000000000000e1', seq: 0, reset: true, reason: 'initial', snapshot: { seq: 0, ver: 0, state: {} }, entries: [], more: false };
const applied = (m, seq) => ({ ok: true, id: m.id, seq, ver: seq, ts: Date.now() * 1024, epoch: INITIAL.epoch, effects: [{ op: 'set', path: '/n', value: seq }], results: [] });

describe('SyncService timing (scripted socket)', () => {
  async function service() {
    const storage = await openStorage({ kind: 'memory', name: uniq('scripted') });
    const svc = new SyncService({ storage });
    await svc.open();
    return svc;
  }
  const within = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);

  it('a re-attach while the previous sync is unanswered syncs on the new socket', T, async () => {
    const svc = await service();
    const s1 = new ScriptedSocket(() => new Promise(() => {}));
    svc.attach(s1, {});
    svc.detach();
    const s2 = new ScriptedSocket((ev) => (ev === 'sync' ? INITIAL : undefined));
    await within(svc.attach(s2, {}), 2000, 'the second attach syncs');
    assert.equal(svc.synced, true);
    assert.deepEqual(s2.sent, [['sync', {}]]);
    await svc.close();
  });

  it('store_unavailable: kept and resent with the same mut and id after retry_after_ms', T, async () => {
    const svc = await service();
    let states = 0;
    const sock = new ScriptedSocket((ev, arg) => {
      if (ev === 'sync') return INITIAL;
      states += 1;
      const r = states === 1 ? { ok: false, id: arg[0].id, error: { code: 'store_unavailable', message: 'x', retry_after_ms: 30 } } : applied(arg[0], 1);
      return { ok: r.ok, failed: r.ok ? 0 : 1, results: [r] };
    });
    await svc.attach(sock, {});
    const c = svc.update([{ op: 'add', path: '/n', value: 0 }]);
    await within(c.done, 3000, 'confirmed after the retry');
    const sends = sock.sent.filter(([e]) => e === 'state').map(([, a]) => a[0]);
    assert.equal(sends.length, 2);
    assert.equal(sends[0].mut, sends[1].mut);
    assert.equal(sends[0].id, sends[1].id);
    assert.equal(sends[0].hlc, sends[1].hlc, 'the same change, not a new one');
    assert.equal(c.status, 'confirmed');
    assert.deepEqual(svc.state, { n: 1 }, "the server's effects replace the guess");
    await svc.close();
  });

  it('no answer (timeout): kept, and resent with the same mut at the next attach', T, async () => {
    const svc = await service();
    const s1 = new ScriptedSocket((ev) => (ev === 'sync' ? INITIAL : Promise.reject(new Error('operation has timed out'))));
    await svc.attach(s1, {});
    const c = svc.update([{ op: 'add', path: '/n', value: 0 }]);
    await waitUntil(() => s1.sent.some(([e]) => e === 'state') && svc.queue()[0]?.status === 'pending', 2000, 'sent and unanswered');
    assert.equal(c.status, 'pending');
    assert.equal(svc.get('/n'), 0, 'still shown');
    svc.detach();
    const s2 = new ScriptedSocket((ev, arg) => (ev === 'sync' ? { ...INITIAL, reset: undefined, reason: undefined, snapshot: undefined } : { ok: true, failed: 0, results: [applied(arg[0], 1)] }));
    await svc.attach(s2, {});
    await within(c.done, 2000, 'confirmed on the new socket');
    const [m1] = s1.sent.find(([e]) => e === 'state')[1];
    const [m2] = s2.sent.find(([e]) => e === 'state')[1];
    assert.equal(m1.mut, m2.mut);
    assert.equal(c.result.seq, 1);
    assert.deepEqual(s2.sent[0], ['sync', { after: 0, epoch: INITIAL.epoch }], 'the new socket syncs from where the first left');
    await svc.close();
  });
});
