// Hardening (issue #14, items 1, 2, 4 and 9), each with the attack or the
// newcomer's view that found it:
//  - long but valid ids (four 128-byte ids, the longest the alphabet allows)
//    are neither throttled nor struck off, and are registered: the admin API
//    lists the tab, renewals log no warning, a disconnect removes it;
//  - the per-socket event budget is not refilled by leaving and re-entering
//    /session with a new tab id on one Engine.IO connection, and a user's
//    sockets share a budget across connections;
//  - refusals (bad tokens, throttling, CORS) are logged at the default level
//    (info) with their code and the peer's address, at most a few lines a
//    second per kind with a count of what was suppressed, and are counted in
//    /metrics.
//
// tabsyncd only: skipped with TS_TARGET=node.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, IS_NODE, sleep } from './harness.mjs';
import { WsClient } from './raw.mjs';
import {
  claims, hs256, authFor, tab, ask, envelope, httpGet, httpRequest, waitRegistry, hasTab,
  metricSum, parseSio,
} from './session-helpers.mjs';

const T = { timeout: 30000 };
const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference has no /session namespace)' } : {};
const SECRET = crypto.randomBytes(32).toString('hex');
const ADMIN = `adm-${crypto.randomBytes(16).toString('hex')}`;
const HS_FLAGS = ['--jwt-secret', SECRET];
const NO_LIMITS = {
  '--limit-handshakes-per-ip': '0', '--limit-conns-per-ip': '0', '--limit-conns-per-user': '0',
  '--limit-events-per-socket': '0', '--limit-bytes-per-socket': '0', '--limit-strikes': '0',
};

function ident(user, session, device, tabId) {
  return { user, session, device, fingerprint: `fp:${user}:${device}`, tab: tabId };
}
const goodAuth = (id) => authFor(id, hs256(claims(id), SECRET));
/** An id of exactly n bytes from the whole id alphabet. */
const longId = (tag, n = 128) => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-';
  let s = `${tag}-`;
  for (let i = 0; s.length < n; i++) s += alphabet[i % alphabet.length];
  return s.slice(0, n);
};

const servers = [];
const sockets = [];
async function server(limits = {}, extra = []) {
  const flags = { ...NO_LIMITS, ...limits };
  const s = await startServer({ testApp: false, extra: [...HS_FLAGS, ...Object.entries(flags).flat(), ...extra] });
  servers.push(s);
  return s;
}
after(async () => {
  for (const s of sockets) s.close();
  for (const s of servers) await s.stop(); // a sanitizer report or a bad exit fails the suite
});

/** A raw Engine.IO websocket speaking /session packets by hand. */
async function rawConn(port) {
  const ws = new WsClient(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, { autoPong: true });
  sockets.push(ws);
  await ws.open();
  const open = await ws.next({ skipPings: true });
  assert.ok(open.startsWith('0{'), open);
  let ackId = 0;
  const acks = new Map();
  const other = [];
  ws.ws.on('message', (data) => {
    const p = parseSio(data.toString('utf8'));
    if (p && p.type === '3' && acks.has(p.ackId)) {
      acks.get(p.ackId)(p.data[0]);
      acks.delete(p.ackId);
    } else if (p) other.push(p);
  });
  return {
    ws,
    other,
    /** CONNECT to /session as id; resolves to the CONNECT answer packet. */
    async connect(id) {
      other.length = 0;
      ws.send(`40/session,${JSON.stringify(goodAuth(id))}`);
      for (let i = 0; i < 200 && !other.some((p) => p.type === '0' || p.type === '4'); i++) await sleep(10);
      const ans = other.find((p) => p.type === '0' || p.type === '4');
      assert.ok(ans, 'no answer to CONNECT');
      assert.equal(ans.type, '0', `CONNECT refused: ${JSON.stringify(ans.data)}`);
      return ans;
    },
    leave() { ws.send('41/session,'); },
    /** publish with an ack; resolves to the ack's argument (null: none in 3 s). */
    publish(env) {
      ackId += 1;
      const key = String(ackId);
      ws.send(`42/session,${key}${JSON.stringify(['publish', env])}`);
      return new Promise((resolve) => {
        const t = setTimeout(() => { acks.delete(key); resolve(null); }, 3000);
        acks.set(key, (a) => { clearTimeout(t); resolve(a); });
      });
    },
  };
}

const metric = async (s, re) => metricSum((await httpGet(`${s.url}/metrics`)).text, re).sum;

// ==== item 1 and 2: long ids =================================================

describe('long but valid ids (four 128-byte ids)', SKIP, () => {
  it('are not throttled or struck off, are registered, renew without warnings, are removed on disconnect', T, async () => {
    const s = await server({ '--limit-events-per-socket': '20', '--limit-strikes': '3', '--limit-queue': '0' },
      ['--admin-token', ADMIN, '--registry-ttl', '1000', '--registry-sweep', '200']);
    const id = ident(longId('u'), longId('s'), longId('d'), longId('t'));
    const id2 = { ...id, tab: longId('x') };
    for (const k of ['user', 'session', 'device', 'tab']) assert.equal(Buffer.byteLength(id[k]), 128);
    const tx = await tab(s.url, goodAuth(id));
    const rx = await tab(s.url, goodAuth(id2));
    sockets.push(tx, rx);
    assert.equal(tx.welcome.tab, id.tab);
    for (let i = 0; i < 10; i++) {
      const a = await ask(tx, 'publish', envelope());
      assert.equal(a.ok, true, `publish ${i}: ${JSON.stringify(a)}`);
    }
    await rx.events.waitFor(10);
    assert.ok(tx.connected, 'the tab was disconnected');
    // the registry: both tabs under the session, with the plain device id
    const reg = await waitRegistry(s.url, id.session, ADMIN, (tabs) => hasTab(tabs, id.tab) && hasTab(tabs, id2.tab),
      3000, 'both long-id tabs registered');
    const mine = reg.tabs.find((t) => t.tab === id.tab);
    assert.equal(mine.device, id.device);
    assert.equal(mine.user, id.user);
    // several renewals (every sweep with a 1 s TTL): still there, nothing logged
    await sleep(2500);
    const still = await waitRegistry(s.url, id.session, ADMIN, (tabs) => hasTab(tabs, id.tab), 1000, 'renewed');
    assert.ok(hasTab(still.tabs, id2.tab));
    assert.doesNotMatch(s.stderr(), /level=(warn|error).*registry/, 'registry warnings logged');
    tx.disconnect();
    await waitRegistry(s.url, id.session, ADMIN, (tabs) => !hasTab(tabs, id.tab) && hasTab(tabs, id2.tab), 3000,
      'the disconnected tab removed, the other kept');
    rx.disconnect();
    await waitRegistry(s.url, id.session, ADMIN, (tabs) => tabs.length === 0, 3000, 'all removed');
    assert.doesNotMatch(s.stderr(), /level=(warn|error).*registry/, 'registry warnings logged');
  });

  it('long ids keep their own budgets: a tab that differs only at the end is not throttled by its neighbour', T, async () => {
    const s = await server({ '--limit-events-per-socket': '10', '--limit-queue': '0' });
    const base = ident(longId('u'), longId('s'), longId('d'), longId('t'));
    const a = await tab(s.url, goodAuth(base));
    const b = await tab(s.url, goodAuth({ ...base, tab: `${base.tab.slice(0, 127)}Z` }));
    sockets.push(a, b);
    const ra = await Promise.all(Array.from({ length: 10 }, () => ask(a, 'publish', envelope())));
    assert.deepEqual(ra.map((x) => x.ok), ra.map(() => true));
    const rb = await Promise.all(Array.from({ length: 10 }, () => ask(b, 'publish', envelope())));
    assert.deepEqual(rb.map((x) => x.ok), rb.map(() => true), 'the neighbour spent b\'s budget');
    // and the limit still holds for a long id
    const over = await ask(a, 'publish', envelope());
    assert.equal(over.ok, false);
    assert.equal(over.error.code, 'throttled');
  });
});

// ==== item 4: budgets that survive namespace reconnects =========================

describe('event budgets per connection and per user', SKIP, () => {
  it('rotating tab ids on one Engine.IO connection does not refill the budget', T, async () => {
    const s = await server({ '--limit-events-per-socket': '10', '--limit-queue': '0' });
    const c = await rawConn(s.port);
    let ok = 0;
    let sent = 0;
    for (let r = 0; r < 6; r++) {
      await c.connect(ident('rot', 'rs', 'rd', `tab-${r}`));
      const acks = await Promise.all(Array.from({ length: 10 }, () => c.publish(envelope())));
      sent += acks.length;
      ok += acks.filter((a) => a && a.ok).length;
      for (const a of acks) if (a && !a.ok) assert.equal(a.error.code, 'throttled', JSON.stringify(a));
      c.leave();
      await sleep(20);
    }
    // 10 at once, then 10/s over well under a second
    assert.ok(ok <= 20, `${ok} of ${sent} events granted on one connection at 10/s`);
    assert.ok(ok >= 10, `${ok} granted: the first burst must go through`);
    assert.ok(await metric(s, /^tabsync_session_throttled_total\{limit="events_per_conn"\}/) > 0,
      'counted in /metrics as events_per_conn');
  });

  it('a user\'s sockets share a budget across connections (by default ten sockets\' worth)', T, async () => {
    // --limit-events-per-user defaults to 10 x --limit-events-per-socket: 30/s here
    const s = await server({ '--limit-events-per-socket': '3', '--limit-queue': '0' });
    let ok = 0;
    for (let r = 0; r < 16; r++) {
      const c = await rawConn(s.port);
      await c.connect(ident('many', 'ms', 'md', `conn-${r}`));
      const acks = await Promise.all(Array.from({ length: 3 }, () => c.publish(envelope())));
      ok += acks.filter((a) => a && a.ok).length;
      c.ws.close();
    }
    assert.ok(ok >= 30 && ok <= 42, `${ok} of 48 events granted to one user at 30/s`);
    assert.ok(await metric(s, /^tabsync_session_throttled_total\{limit="events_per_user"\}/) > 0);
    // another user is not affected
    const c = await rawConn(s.port);
    await c.connect(ident('other', 'os', 'od', 'o1'));
    const acks = await Promise.all(Array.from({ length: 3 }, () => c.publish(envelope())));
    assert.deepEqual(acks.map((a) => a && a.ok), acks.map(() => true));
  });

  it('--limit-events-per-user sets that budget', T, async () => {
    const s = await server({ '--limit-events-per-socket': '3', '--limit-events-per-user': '6', '--limit-queue': '0' });
    let ok = 0;
    for (let r = 0; r < 6; r++) {
      const c = await rawConn(s.port);
      await c.connect(ident('capped', 'cs', 'cd', `conn-${r}`));
      const acks = await Promise.all(Array.from({ length: 3 }, () => c.publish(envelope())));
      ok += acks.filter((x) => x && x.ok).length;
      c.ws.close();
    }
    assert.ok(ok >= 6 && ok <= 10, `${ok} of 18 events granted to one user at 6/s`);
  });
});

// ==== item 9: refusals are visible at the default level ============================

describe('refusals are logged at info, rate-limited, and counted', SKIP, () => {
  it('a bad token: one info line with the code and the address; a flood is cut down and the suppressed count reported', T, async () => {
    const s = await server();
    const bad = await rawConn(s.port);
    const badAuth = (token) => JSON.stringify(authFor(ident('mallory', 'ms', 'md', 'mt'), token));
    bad.ws.send(`40/session,${badAuth('not.a.token')}`);
    await sleep(300);
    assert.match(s.stderr(), /level=info mod=session msg="[^"]*refused[^"]*".*code=token_\w+.*peer=127\.0\.0\.1/);
    // a flood of 300 refusals from many connections
    const conns = await Promise.all(Array.from({ length: 30 }, () => rawConn(s.port)));
    for (let i = 0; i < 10; i++) {
      for (const c of conns) c.ws.send(`40/session,${badAuth(`x${i}`)}`);
      await sleep(30);
    }
    await sleep(1200);
    // one more, a second later: it carries the count of the suppressed ones
    const last = await rawConn(s.port);
    last.ws.send(`40/session,${badAuth('y')}`);
    await sleep(300);
    const lines = s.stderr().split('\n').filter((l) => /code=token_/.test(l));
    assert.ok(lines.length <= 25, `${lines.length} lines logged for ~300 refusals`);
    const sup = lines.map((l) => Number((/suppressed=(\d+)/.exec(l) || [])[1] || 0)).reduce((x, y) => x + y, 0);
    assert.ok(sup > 200, `suppressed counts reported: ${sup}`);
    assert.ok(lines.length + sup >= 300, `${lines.length} logged + ${sup} suppressed < 302 refusals`);
    assert.ok(await metric(s, /^tabsync_session_auth_refused_total/) >= 300);
    assert.ok(await metric(s, /^tabsync_log_suppressed_total/) >= sup);
  });

  it('throttling is logged at info with the limit and the address', T, async () => {
    const s = await server({ '--limit-events-per-socket': '3', '--limit-queue': '0', '--limit-conns-per-user': '1' });
    const t1 = await tab(s.url, goodAuth(ident('thr', 'ts', 'td', 't1')));
    sockets.push(t1);
    await Promise.all(Array.from({ length: 6 }, () => ask(t1, 'publish', envelope())));
    await sleep(200);
    assert.match(s.stderr(), /level=info mod=session msg="[^"]*throttled[^"]*".*code=events_per_socket.*peer=127\.0\.0\.1/);
    const c = await rawConn(s.port);
    c.ws.send(`40/session,${JSON.stringify(goodAuth(ident('thr', 'ts', 'td', 't2')))}`);
    await sleep(300);
    assert.match(s.stderr(), /level=info mod=session msg="[^"]*".*code=conns_per_user.*peer=127\.0\.0\.1/);
  });

  it('a handshake refused by the per-address limit is logged at info', T, async () => {
    const s = await server({ '--limit-handshakes-per-ip': '2' });
    await Promise.all(Array.from({ length: 6 }, () => httpGet(`${s.url}/socket.io/?EIO=4&transport=polling`)));
    await sleep(100);
    assert.match(s.stderr(), /level=info .*code=handshakes_per_ip.*peer=127\.0\.0\.1/);
  });

  it('a CORS refusal (an origin not allowed) is logged at info and counted', T, async () => {
    const s = await server({}, ['--cors-origin', 'https://good.example']);
    const ok = await httpRequest(`${s.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'https://good.example' } });
    assert.equal(ok.headers['access-control-allow-origin'], 'https://good.example');
    const r = await httpRequest(`${s.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'https://evil.example' } });
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    await sleep(100);
    assert.match(s.stderr(), /level=info mod=eio msg="[^"]*origin[^"]*".*code=cors_origin.*peer=127\.0\.0\.1/);
    assert.doesNotMatch(s.stderr(), /good\.example/, 'an allowed origin is not logged');
    assert.ok(await metric(s, /^tabsync_errors_total\{kind="cors_origin"\}/) >= 1);
  });
});
