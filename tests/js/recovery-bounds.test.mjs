// Connection state recovery under abuse (issue #14 items 3 and 5;
// docs/SECURITY.md "Connection state recovery"):
//  - a recovery attempt refused on re-authorization (a garbage token, an
//    expired one, another user's) leaves the saved session for its owner,
//    who then recovers it: same socket id, the missed events;
//  - saved sessions are bounded per client address (its oldest go first),
//    in total and in bytes, besides the recovery window: a flood of abrupt
//    disconnects keeps memory bounded, the newest sessions stay recoverable,
//    and what was dropped is counted in /metrics.
//
// tabsyncd only (skipped with TS_TARGET=node).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { io } from 'socket.io-client';
import { startServer, IS_NODE, sleep, within } from './harness.mjs';
import { BASE_FLAGS, ident, tokenFor, SECRET } from './history-helpers.mjs';
import { authFor, claims, hs256, openTab, envelope, ask } from './session-helpers.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only (recovery bounds and /metrics)' } : {};
const T = { timeout: 60000 };

function metrics(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
const metric = (text, name) => {
  const m = new RegExp(`^${name} ([0-9.]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

/** A tab of the test app's `/` namespace from `localAddress`, in room r, with an offset. */
async function roomTab(url, localAddress, auth) {
  const s = io(`${url}/`, { forceNew: true, reconnection: false, transports: ['websocket'], localAddress, auth });
  await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject); });
  return s;
}

/** Connects, gets an offset (one broadcast), then drops the transport (recoverable). */
async function savedTab(url, localAddress) {
  const s = await roomTab(url, localAddress);
  await s.timeout(5000).emitWithAck('join', 'r');
  const got = new Promise((resolve) => s.once('tick', resolve));
  s.emit('to-room-all', 'r', 'tick', 1);
  await got;
  const saved = { id: s.id, pid: s._pid, offset: s._lastOffset };
  assert.ok(saved.pid && saved.offset, 'a pid and an offset');
  const d = new Promise((resolve) => s.once('disconnect', resolve));
  s.io.engine.close(); // "transport close": the server saves the session
  await d;
  return saved;
}

/** Whether a client presenting a saved session's pid and offset recovers it. */
async function recovers(url, saved, localAddress = '127.0.0.1') {
  const s = await roomTab(url, localAddress, { pid: saved.pid, offset: saved.offset });
  const rec = await s.timeout(5000).emitWithAck('recovered');
  const same = s.id === saved.id;
  s.close();
  assert.equal(rec, same, 'recovered iff the old id came back');
  return rec;
}

describe('recovery: a refused attempt leaves the saved session to its owner', SKIP, () => {
  let srv;
  before(async () => {
    // --history off: /session uses the server's in-memory recovery
    srv = await startServer({ testApp: false, extra: [...BASE_FLAGS, '--history', 'off'] });
  });
  after(async () => { await srv?.stop(); });

  it('garbage, expired and foreign tokens with the victim\'s pid are refused; the victim then recovers', T, async () => {
    const alice = ident('rb-alice', 'rb-s', 'rb-d1', 'rb-t1');
    const peer = ident('rb-alice', 'rb-s', 'rb-d2', 'rb-t2');
    const bob = ident('rb-bob', 'rb-s9', 'rb-d9', 'rb-t9');
    const victim = openTab(srv.url, authFor(alice, tokenFor(alice)), { transports: ['websocket'] });
    const other = openTab(srv.url, authFor(peer, tokenFor(peer)), { transports: ['websocket'] });
    await victim.welcomes.waitFor(1);
    await other.welcomes.waitFor(1);
    assert.deepEqual(await ask(other, 'publish', envelope({ id: 'p0' })), { ok: true, id: 'p0' });
    await victim.events.waitFor(1);
    const pid = victim._pid, offset = victim._lastOffset, oldId = victim.id;
    assert.ok(pid && offset);
    victim.io.engine.close();
    await sleep(200);
    assert.deepEqual(await ask(other, 'publish', envelope({ id: 'p1', body: 'missed' })), { ok: true, id: 'p1' });
    const attempts = [
      ['garbage', { ...authFor(alice, 'not.a.token'), pid, offset }],
      ['expired', { ...authFor(alice, hs256(claims(alice, { ttl: -3600 }), SECRET)), pid, offset }],
      ['another user', { ...authFor(bob, tokenFor(bob)), pid, offset }],
    ];
    for (const [what, auth] of attempts) {
      const t = openTab(srv.url, auth, { transports: ['websocket'] });
      await within(new Promise((resolve) => { t.once('connect_error', resolve); t.once('connect', resolve); }), 5000, what);
      if (t.connected) {
        assert.notEqual(t.id, oldId, `${what}: must not take over the victim's socket`);
        await sleep(100);
        assert.deepEqual(t.events.map((e) => e.id), [], `${what}: got the victim's events`);
      }
      t.close();
    }
    const back = openTab(srv.url, { ...authFor(alice, tokenFor(alice)), pid, offset }, { transports: ['websocket'] });
    await back.welcomes.waitFor(1);
    assert.equal(back.id, oldId, 'the owner recovers its socket after the refused attempts');
    await back.events.waitFor(1);
    assert.deepEqual(back.events.map((e) => e.id), ['p1'], 'and the event it missed');
    back.close();
    other.close();
    victim.close();
  });
});

describe('recovery: saved sessions are bounded by address, count and bytes', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ extra: ['--recovery-max-per-address', '4', '--recovery-max-sessions', '10'] });
  });
  after(async () => { await srv?.stop(); });

  it('one address keeps its newest 4; the total keeps the newest 10; the dropped are counted and gone', T, async () => {
    const before = await metrics(srv.port);
    const flood = [];
    for (let i = 0; i < 7; i++) flood.push(await savedTab(srv.url, '127.0.0.2'));
    let m = await metrics(srv.port);
    assert.equal(metric(m, 'tabsync_sio_saved_sessions'), 4, 'one address: its 4 newest');
    assert.equal(metric(m, 'tabsync_sio_saved_dropped_address_total') - metric(before, 'tabsync_sio_saved_dropped_address_total'), 3);
    assert.ok(metric(m, 'tabsync_sio_saved_bytes') > 0);
    // other addresses: the total bound (10) drops the oldest of everyone's
    const others = [];
    for (let i = 0; i < 8; i++) others.push(await savedTab(srv.url, `127.0.0.${3 + (i % 4)}`));
    m = await metrics(srv.port);
    assert.equal(metric(m, 'tabsync_sio_saved_sessions'), 10);
    assert.equal(metric(m, 'tabsync_sio_saved_dropped_total') - metric(before, 'tabsync_sio_saved_dropped_total'), 2);
    // the oldest of the flood went (address bound, then total), the newest recover
    assert.equal(await recovers(srv.url, flood[0]), false, 'dropped by its address bound');
    assert.equal(await recovers(srv.url, flood[3]), false, 'dropped by the total bound');
    assert.equal(await recovers(srv.url, flood[6]), true, 'the newest of the flood');
    assert.equal(await recovers(srv.url, others[7]), true, 'the newest of the others');
    m = await metrics(srv.port);
    assert.equal(metric(m, 'tabsync_sio_saved_sessions'), 8, 'the recovered left the saved set');
  });
});

describe('recovery: saved sessions are bounded in bytes', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ extra: ['--recovery-max-bytes', '2048'] });
  });
  after(async () => { await srv?.stop(); });

  it('the memory of the saved sessions stays under --recovery-max-bytes, oldest dropped first', T, async () => {
    const saved = [];
    for (let i = 0; i < 20; i++) saved.push(await savedTab(srv.url, `127.0.1.${1 + (i % 5)}`));
    const m = await metrics(srv.port);
    const n = metric(m, 'tabsync_sio_saved_sessions');
    assert.ok(metric(m, 'tabsync_sio_saved_bytes') <= 2048, `bytes ${metric(m, 'tabsync_sio_saved_bytes')}`);
    assert.ok(n >= 1 && n < 20, `${n} kept`);
    assert.equal(metric(m, 'tabsync_sio_saved_dropped_total'), 20 - n);
    assert.equal(await recovers(srv.url, saved[0]), false);
    assert.equal(await recovers(srv.url, saved[19]), true);
  });
});
