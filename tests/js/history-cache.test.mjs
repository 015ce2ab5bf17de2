// The history's in-memory cache is bounded by configuration (issue #13):
// --history-cache N sessions and --history-cache-mb MB of their documents
// per event loop. Over a bound the least recently used idle sessions leave
// at the next sweep (counted); a session that left is read again from the
// store when it is next used, with its document and version intact.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, IS_NODE, sleep } from './harness.mjs';
import { BASE_FLAGS, ident, uniq, openMirror, Mirror } from './history-helpers.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference has no /session history)' } : {};

async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  return (name) => Number((text.match(new RegExp(`^${name} (\\S+)$`, 'm')) || [])[1]);
}

describe('the history cache has bounds', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ single: true, testApp: false, extra: [...BASE_FLAGS, '--history-cache', '4', '--history-cache-mb', '1'] });
  });
  after(async () => { await srv?.stop(); });

  it('over --history-cache-mb and --history-cache the least recently used sessions leave, and come back from the store intact', { timeout: 60000 }, async () => {
    const BIG = 300 * 1024; // four of these pass 1 MiB
    const sessions = [];
    for (let i = 0; i < 8; i++) {
      const S = uniq(`cache${i}`);
      const t = await openMirror({ url: srv.url, id: ident('alice', S, 'd', 't') });
      const r = await t.state({ v: 3, id: `big-${i}`, merge: { big: String(i).repeat(BIG), i } });
      assert.equal(r.ok, true, JSON.stringify(r).slice(0, 300));
      sessions.push({ S, ver: r.ver });
      t.close();
    }
    // the sweep runs every second
    let m;
    for (let k = 0; k < 40; k++) {
      await sleep(100);
      m = await metrics(srv.url);
      if (m('tabsync_history_cache_bytes') <= 1 << 20 && m('tabsync_history_cached_sessions') <= 4) break;
    }
    const bytes = m('tabsync_history_cache_bytes');
    const cached = m('tabsync_history_cached_sessions');
    console.log(`# 8 sessions of ${BIG} B each: ${cached} cached, ${bytes} B, ${m('tabsync_history_cache_evicted_total')} evicted early`);
    assert.ok(bytes <= 1 << 20, `cache bytes ${bytes} within --history-cache-mb 1`);
    assert.ok(cached <= 4, `cached sessions ${cached} within --history-cache 4`);
    assert.ok(bytes >= BIG, `the most recent ones stay (${bytes} B)`);
    assert.ok(m('tabsync_history_cache_evicted_total') >= 4, 'evictions counted');
    // the first session left; it is read again, whole, and takes a change at the right version
    const { S, ver } = sessions[0];
    const t = await openMirror({ url: srv.url, id: ident('alice', S, 'd2', 't2') });
    assert.equal(t.doc.big.length, BIG, 'the document came back from the store');
    assert.equal(t.doc.i, 0);
    assert.equal(t.ver, ver);
    const r = await t.state({ v: 3, id: 'after-eviction', merge: { more: 1 } });
    assert.equal(r.ok, true, JSON.stringify(r).slice(0, 300));
    assert.equal(r.ver, ver + 1);
    t.close();
  });
});

// A session's cache keeps its write machinery (queues, the exactly-once
// memory) in a part made at the session's first write and freed with the
// cache (issue #13): a tab that only reads costs none of it, and a tab that
// is only welcomed makes no cache at all.
describe('the history cache makes its work part at the first write', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ single: true, testApp: false, extra: [...BASE_FLAGS, '--history-cache', '1'] });
  });
  after(async () => { await srv?.stop(); });

  it('a tab only welcomed makes no cache; a session read (sync) has no work part; a change makes it; the cache leaving frees it', { timeout: 30000 }, async () => {
    const S1 = uniq('work1'), S2 = uniq('work2');
    const w = new Mirror({ url: srv.url, id: ident('alice', S1, 'd0', 't0') });
    w.autoSync = false; // welcomed, never syncs
    await w.ready();
    assert.match(w.welcomes[0].epoch, /^[0-9a-f]{16}$/, 'the welcome tells where the history is');
    let m = await metrics(srv.url);
    assert.equal(m('tabsync_history_cached_sessions'), 0, 'welcomed only: no cache');
    const a = await openMirror({ url: srv.url, id: ident('alice', S1, 'd', 't') });
    m = await metrics(srv.url);
    assert.equal(m('tabsync_history_cached_sessions'), 1, 'the tab\'s sync cached its session');
    assert.equal(m('tabsync_history_cache_writing'), 0, 'read only: no work part');
    const r = await a.state({ v: 3, id: 'first', merge: { x: 1 } });
    assert.equal(r.ok, true, JSON.stringify(r));
    m = await metrics(srv.url);
    assert.equal(m('tabsync_history_cache_writing'), 1, 'the first change made it');
    a.close();
    w.close();
    const b = await openMirror({ url: srv.url, id: ident('bob', S2, 'd', 't') });
    const r2 = await b.state({ v: 3, id: 'second', merge: { y: 1 } });
    assert.equal(r2.ok, true, JSON.stringify(r2));
    // over --history-cache 1, the idle S1 leaves at the next sweep (every second)
    for (let k = 0; k < 50; k++) {
      m = await metrics(srv.url);
      if (m('tabsync_history_cached_sessions') === 1) break;
      await sleep(100);
    }
    assert.equal(m('tabsync_history_cached_sessions'), 1, 'S1 left the cache');
    assert.equal(m('tabsync_history_cache_writing'), 1, 'and its work part with it');
    b.close();
  });
});
