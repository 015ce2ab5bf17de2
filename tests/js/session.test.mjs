// The /session namespace end to end (docs/PROTOCOL.md "The /session
// namespace", issue #3 "How it must be shown"), with the real
// socket.io-client against tabsyncd:
//  - a valid token connects; `welcome` says who the server thinks we are; the
//    socket is in exactly its session, user and device rooms, shown by
//    behaviour (who receives a publish to each scope, who does not), with
//    order, the relayed form and the acks;
//  - every refusal has its own data.code, and a refused client (raw, so that
//    every packet sent to it is visible) receives nothing published to the
//    session, user or device it claimed;
//  - HS256, RS256 and ES256; alg none and HS/RS key confusion are refused;
//  - cross-session attempts (naming a room, session, user or device) and
//    invalid envelopes are refused with an error ack and reach nobody;
//  - each throttle fires at its configured limit and recovers after; a
//    handshake flood from 127.0.0.1 does not stop 127.0.0.2; repeated abuse
//    disconnects;
//  - the registry and its admin API (401 without the admin token, metadata,
//    server-measured rtt, clean disconnect, killed client, silent client);
//  - token swap and token expiry (`security` events, then a disconnect);
//  - /metrics counts auth refusals and throttles.
//
// tabsyncd only (the Node reference server has no /session): skipped with
// TS_TARGET=node. Timings are generous; nothing asserts speed, only that
// things happen (or do not) within bounds derived from the configured TTLs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startServer, IS_NODE, sleep, within } from './harness.mjs';
import {
  PROTO, nowS, fpHash, jwt, hmac, claims, hs256, rs256, es256, algNone, authFor, b64url,
  openTab, tryTab, tab, ask, envelope, rawTab, parseSio, httpGet, admin, leaves, itemId,
  TAB_KEYS, DEVICE_KEYS, SESSION_KEYS, registryTabs, waitRegistry, hasTab, metricSum,
} from './session-helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HELPERS = path.join(HERE, 'session-helpers.mjs');
const T = { timeout: 20000 };
const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference has no /session namespace)' } : {};

const SECRET = crypto.randomBytes(32).toString('hex'); // 64 bytes of key material
const AUD = 'tabsync-test';
const ISS = 'https://idp.tabsync.test';
const ADMIN = `adm-${crypto.randomBytes(16).toString('hex')}`;
// No limits (0 = unlimited; strikes 0 = never disconnect) for servers that
// test something else: the defaults may be lower than a suite's bursts.
const NO_LIMITS = [
  '--limit-handshakes-per-ip', '0', '--limit-conns-per-ip', '0',
  '--limit-conns-per-user', '0', '--limit-events-per-socket', '0',
  '--limit-bytes-per-socket', '0', '--limit-strikes', '0',
];
const HS_FLAGS = ['--jwt-secret', SECRET, '--jwt-audience', AUD, '--jwt-issuer', ISS, '--jwt-leeway', '1'];

/** An identity: {user, session, device, fingerprint, tab}. */
function ident(user, session, device, tabId) {
  return { user, session, device, fingerprint: `fp:${user}:${device}:secret`, tab: tabId };
}
/** A valid HS256 token for the main server. */
const goodToken = (id, opts = {}) => hs256(claims(id, { aud: AUD, iss: ISS, ...opts }), SECRET);
const goodAuth = (id, opts = {}) => authFor(id, goodToken(id, opts));

const ALL_SOCKETS = new Set();
function track(sock) { ALL_SOCKETS.add(sock); return sock; }
async function connectTab(url, id, opts = {}, tokenOpts = {}) {
  return track(await tab(url, goodAuth(id, tokenOpts), opts));
}
function closeAll() {
  for (const s of ALL_SOCKETS) s.close();
  ALL_SOCKETS.clear();
}

/** The ids of the `event`s a socket has received. */
const ids = (sock) => sock.events.map((e) => e?.id);
const clearEvents = (socks) => { for (const s of socks) s.events.length = 0; };

/**
 * Publish `env` from `sender` with an ack; the ack must be {ok:true,id}; every
 * socket of `expected` must receive it exactly once, every other socket of
 * `all` (the sender included) never.
 */
async function deliver(sender, env, expected, all) {
  const ack = await ask(sender, 'publish', env);
  assert.deepEqual(ack, { ok: true, id: env.id }, `ack of ${env.id}`);
  for (const r of expected) {
    await within((async () => { while (!ids(r).includes(env.id)) await sleep(10); })(), 5000,
      `${env.id} reaching ${r.tabId}`);
  }
  await sleep(250); // anything misrouted has had time to arrive
  for (const s of all) {
    const n = ids(s).filter((x) => x === env.id).length;
    assert.equal(n, expected.includes(s) ? 1 : 0,
      `${env.id} (to ${env.to ?? 'session'}) from ${sender.tabId} received ${n}x by ${s.tabId}`);
  }
}

/** connect_error data of a refused tab (and close it). */
async function refusal(url, auth, opts = {}) {
  const r = await tryTab(url, auth, opts);
  r.sock.close();
  assert.equal(r.ok, false, `expected a refusal, got welcome ${JSON.stringify(r.welcome)}`);
  return r.err;
}

// ==== connect, rooms and relay ===============================================

describe('/session: a valid token lands in exactly its session, user and device rooms', SKIP, () => {
  let srv;
  const who = {
    t1: ident('alice', 's1', 'd1', 't1'),
    t2: ident('alice', 's1', 'd1', 't2'),
    t3: ident('alice', 's1', 'd2', 't3'),
    t4: ident('alice', 's2', 'd1', 't4'),
    t5: ident('bob', 's1', 'd1', 't5'), // bob's "s1" and "d1" are not alice's
    t6: ident('bob', 's9', 'd7', 't6'),
  };
  const tabs = {};
  let all;

  before(async () => {
    srv = await startServer({ testApp: false, extra: [...HS_FLAGS, ...NO_LIMITS] });
    // every transport: websocket only, polling only, polling then upgrade
    const modes = [{ transports: ['websocket'] }, { transports: ['polling'] }, {}];
    let i = 0;
    for (const [k, id] of Object.entries(who)) {
      tabs[k] = await connectTab(srv.url, id, modes[i++ % modes.length]);
    }
    all = Object.values(tabs);
  });
  after(async () => { closeAll(); await srv?.stop(); });

  it('welcome carries the verified user, session, device and tab, proto, exp and node', T, () => {
    for (const [k, id] of Object.entries(who)) {
      const w = tabs[k].welcome;
      assert.equal(w.user, id.user, k);
      assert.equal(w.session, id.session, k);
      assert.equal(w.device, id.device, k);
      assert.equal(w.tab, id.tab, k);
      assert.equal(w.proto, PROTO, k);
      assert.ok(Number.isInteger(w.exp) && Math.abs(w.exp - (nowS() + 600)) < 60, `${k} exp ${w.exp}`);
      assert.equal(typeof w.node, 'string');
      assert.ok(w.node.length > 0);
    }
  });

  it('a client of the previous protocol version (proto 1) is still accepted', T, async () => {
    const id = ident('alice', 's1', 'd1', 't-proto1');
    const s = track(await tab(srv.url, authFor(id, goodToken(id), { proto: 1 })));
    assert.equal(s.welcome.proto, 1);
    assert.equal(s.welcome.tab, 't-proto1');
    s.close();
  });

  it('to session: the other tabs of the session, not the sender, not another session of the user, not another user', T, async () => {
    clearEvents(all);
    await deliver(tabs.t1, envelope({ to: 'session' }), [tabs.t2, tabs.t3], all);
    // the default scope is the session
    await deliver(tabs.t3, envelope(), [tabs.t1, tabs.t2], all);
    // bob's s1 is another session than alice's s1
    await deliver(tabs.t5, envelope({ to: 'session' }), [], all);
    await deliver(tabs.t4, envelope({ to: 'session' }), [], all);
  });

  it('to user: every other tab of the user in all sessions, no other user', T, async () => {
    clearEvents(all);
    await deliver(tabs.t1, envelope({ to: 'user' }), [tabs.t2, tabs.t3, tabs.t4], all);
    await deliver(tabs.t4, envelope({ to: 'user' }), [tabs.t1, tabs.t2, tabs.t3], all);
    await deliver(tabs.t5, envelope({ to: 'user' }), [tabs.t6], all);
  });

  it('to device: the other tabs of that device only (all its sessions), not the user\'s other devices', T, async () => {
    clearEvents(all);
    await deliver(tabs.t1, envelope({ to: 'device' }), [tabs.t2, tabs.t4], all);
    await deliver(tabs.t3, envelope({ to: 'device' }), [], all); // alice's d2 has one tab
    await deliver(tabs.t5, envelope({ to: 'device' }), [], all); // bob's d1 is not alice's d1
  });

  it('the relayed envelope is the envelope plus from {user, device, tab}, nothing else', T, async () => {
    clearEvents(all);
    const full = {
      v: PROTO, type: 'doc.patch', id: 'full-1', cid: 'corr/1', prio: 'state', to: 'session',
      body: { ops: [{ op: 'add', path: '/a', value: [1, 'two', null, true, { x: 1.5 }] }], s: 'é✓' },
    };
    await deliver(tabs.t1, full, [tabs.t2, tabs.t3], all);
    const expectFrom = { user: 'alice', device: 'd1', tab: 't1' };
    for (const r of [tabs.t2, tabs.t3]) {
      // a session-scope envelope of prio state is in the history (protocol
      // v3): v2 tabs receive its kind, seq and ts as added members
      const { kind, seq, ts, ...rest } = r.events.find((e) => e.id === 'full-1');
      assert.deepEqual(rest, { ...full, from: expectFrom });
      assert.equal(kind, 'event');
      assert.ok(Number.isSafeInteger(seq) && seq >= 1, `seq ${seq}`);
      assert.ok(Number.isSafeInteger(ts) && Math.abs(ts / 1024 - Date.now()) < 60000, `ts ${ts}`);
    }
    // a minimal envelope of the previous version (1, still accepted):
    // defaults may be filled in, nothing foreign appears
    const min = { v: 1, type: 'ping', id: 'min-1' };
    await deliver(tabs.t2, min, [tabs.t1, tabs.t3], all);
    const got = tabs.t1.events.find((e) => e.id === 'min-1');
    assert.equal(got.v, 1);
    assert.equal(got.type, 'ping');
    assert.deepEqual(got.from, { user: 'alice', device: 'd1', tab: 't2' });
    // history members (kind, seq, ts) are the server's: the session logs it
    const allowed = new Set(['v', 'type', 'id', 'cid', 'prio', 'to', 'body', 'from', 'kind', 'seq', 'ts']);
    for (const k of Object.keys(got)) assert.ok(allowed.has(k), `unexpected member ${k} in ${JSON.stringify(got)}`);
    if ('prio' in got) assert.equal(got.prio, 'event');
    if ('to' in got) assert.equal(got.to, 'session');
    if ('body' in got) assert.equal(got.body, null);
    assert.equal(got.kind, 'event');
    assert.ok(got.seq > 1, `seq ${got.seq} after the full envelope's`);
  });

  it('100 envelopes from one tab arrive in order, each acked {ok:true,id}', T, async () => {
    clearEvents(all);
    const envs = Array.from({ length: 100 }, (_, i) => envelope({ id: `ord-${i}`, body: i }));
    const acks = await Promise.all(envs.map((e) => ask(tabs.t2, 'publish', e, 10000)));
    acks.forEach((a, i) => assert.deepEqual(a, { ok: true, id: `ord-${i}` }));
    for (const r of [tabs.t1, tabs.t3]) {
      const got = await r.events.waitFor(100, 10000);
      assert.deepEqual(got.map((e) => e.id), envs.map((e) => e.id), `order at ${r.tabId}`);
      assert.deepEqual(got.map((e) => e.body), envs.map((e) => e.body));
    }
    await sleep(200);
    assert.equal(tabs.t1.events.length, 100);
    for (const s of [tabs.t2, tabs.t4, tabs.t5, tabs.t6]) assert.equal(s.events.length, 0, s.tabId);
  });

  it('the server exits 0 on SIGTERM, sanitizers quiet', T, async () => {
    closeAll();
    const s = srv;
    srv = null;
    await s.stop();
  });
});

// ==== refusals ================================================================

/** Each refusal: its distinct code, and no room joined (checked at the end). */
function refusalCases() {
  const id = ident('carol', 'cs', 'cd', 'c-refused');
  const now = nowS();
  const c = (o = {}) => claims(id, { aud: AUD, iss: ISS, ...o });
  const tok = (o) => hs256(c(o), SECRET);
  const with_ = (token) => authFor(id, token);
  const good = tok();
  const [h, p] = good.split('.');
  const tampered = `${h}.${b64url(JSON.stringify({ ...c(), sub: 'mallory' }))}.${good.split('.')[2]}`;
  const hs384 = jwt({ alg: 'HS384', typ: 'JWT' }, c(),
    (input) => crypto.createHmac('sha384', SECRET).update(input).digest());
  const { privateKey: rsaKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const phone = ident('carol', 'cs', 'carol-phone', 'c-refused');
  return [
    { name: 'expired (an hour ago)', code: 'token_expired',
      auth: with_(tok({ extra: { iat: now - 7200, nbf: now - 7200, exp: now - 3600 } })) },
    { name: 'expired beyond the leeway (5 s ago, leeway 1 s)', code: 'token_expired',
      auth: with_(tok({ extra: { iat: now - 600, nbf: now - 600, exp: now - 5 } })) },
    { name: 'not yet valid (nbf in an hour)', code: 'token_not_yet_valid',
      auth: with_(tok({ extra: { nbf: now + 3600, exp: now + 7200 } })) },
    { name: 'issued in the future (iat in an hour)', code: 'token_issued_in_future',
      auth: with_(tok({ extra: { iat: now + 3600, exp: now + 7200 } })) },
    { name: 'bad signature (another secret)', code: 'token_bad_signature',
      auth: with_(hs256(c(), crypto.randomBytes(32).toString('hex'))) },
    { name: 'bad signature (payload changed after signing)', code: 'token_bad_signature',
      auth: with_(tampered) },
    { name: 'alg none', code: 'token_alg_none', auth: with_(algNone(c())) },
    { name: 'alg none with a signature', code: 'token_alg_none',
      auth: with_(jwt({ alg: 'none', typ: 'JWT' }, c(), hmac(SECRET))) },
    { name: 'alg HS384 (server allows HS256)', code: 'token_alg_not_allowed', auth: with_(hs384) },
    { name: 'alg RS256 on an HS256 server', code: 'token_alg_not_allowed', auth: with_(rs256(c(), rsaKey)) },
    { name: 'wrong audience', code: 'token_wrong_audience', auth: with_(tok({ aud: 'another-service' })) },
    { name: 'wrong issuer', code: 'token_wrong_issuer', auth: with_(tok({ iss: 'https://evil.test' })) },
    ...['sub', 'sid', 'dev', 'exp', 'fp'].map((k) => (
      { name: `missing claim ${k}`, code: 'token_missing_claim', auth: with_(tok({ omit: [k] })) })),
    { name: 'invalid claim: sub is a number', code: 'token_invalid_claim', auth: with_(tok({ extra: { sub: 42 } })) },
    { name: 'invalid claim: exp is a string', code: 'token_invalid_claim',
      auth: with_(tok({ extra: { exp: String(now + 600) } })) },
    { name: 'malformed token (one segment)', code: 'token_malformed', auth: with_('abc') },
    { name: 'malformed token (header not JSON)', code: 'token_malformed',
      auth: with_(`${b64url('{nope')}.${p}.${b64url('sig')}`) },
    { name: 'wrong fingerprint', code: 'fingerprint_mismatch',
      auth: { ...with_(good), device: { ...with_(good).device, fingerprint: 'another-device-secret' } } },
    { name: 'wrong device id', code: 'device_mismatch',
      auth: { ...with_(good), device: { ...with_(good).device, id: 'carol-phone' } } },
    { name: 'a token of another device replayed with this device\'s id and fingerprint', code: 'device_mismatch',
      auth: authFor(id, hs256(claims(phone, { aud: AUD, iss: ISS }), SECRET)) },
    // the auth payload itself (the message names the field)
    { name: 'bad payload: no auth at all', code: ['auth_not_object', 'auth_missing_field'], auth: undefined },
    { name: 'bad payload: missing device', code: 'auth_missing_field', field: 'device',
      auth: { token: good, tab: { id: id.tab }, proto: PROTO } },
    { name: 'bad payload: device is a string', code: 'auth_wrong_type', field: 'device',
      auth: { token: good, device: 'cd', tab: { id: id.tab }, proto: PROTO } },
    { name: 'bad payload: device.id is a number', code: 'auth_wrong_type', field: 'device.id',
      auth: { ...with_(good), device: { id: 7, fingerprint: id.fingerprint } } },
    { name: 'bad payload: device.fingerprint missing', code: 'auth_missing_field', field: 'device.fingerprint',
      auth: { ...with_(good), device: { id: id.device } } },
    { name: 'bad payload: token missing', code: 'auth_missing_field', field: 'token',
      auth: { device: { id: id.device, fingerprint: id.fingerprint }, tab: { id: id.tab }, proto: PROTO } },
    { name: 'bad payload: token is a number', code: 'auth_wrong_type', field: 'token', auth: { ...with_(good), token: 12345 } },
    { name: 'bad payload: tab missing', code: 'auth_missing_field', field: 'tab',
      auth: { token: good, device: with_(good).device, proto: PROTO } },
    { name: 'bad payload: tab.id is a number', code: 'auth_wrong_type', field: 'tab.id', auth: { ...with_(good), tab: { id: 5 } } },
    { name: 'bad payload: an unknown field (room)', code: 'auth_unknown_field', field: 'room',
      auth: { ...with_(good), room: 's:carol:other' } },
    { name: 'bad payload: an unknown field (session)', code: 'auth_unknown_field', field: 'session',
      auth: { ...with_(good), session: 'other' } },
    { name: 'bad payload: empty device.id', code: 'auth_empty_field', field: 'device.id',
      auth: { ...with_(good), device: { ...with_(good).device, id: '' } } },
    { name: 'bad payload: tab.id with a slash', code: 'auth_bad_characters', field: 'tab.id',
      auth: { ...with_(good), tab: { id: 'a/b' } } },
    { name: 'bad payload: device.id of 200 characters', code: 'auth_field_too_long', field: 'device.id',
      auth: { ...with_(good), device: { ...with_(good).device, id: 'd'.repeat(200) } } },
    { name: 'bad payload: unknown device.type', code: 'auth_unknown_device_type', field: 'type',
      auth: { ...with_(good), device: { ...with_(good).device, type: 'toaster' } } },
    { name: 'bad payload: 40 device.caps', code: 'auth_too_many_caps', field: 'caps',
      auth: { ...with_(good), device: { ...with_(good).device, caps: Array.from({ length: 40 }, (_, i) => `c${i}`) } } },
    { name: 'bad payload: proto 5', code: 'auth_unsupported_proto', field: 'proto', auth: { ...with_(good), proto: 5 } },
    { name: 'bad payload: proto 0', code: 'auth_unsupported_proto', field: 'proto', auth: { ...with_(good), proto: 0 } },
    { name: 'oversized token (64 KiB)', code: 'token_too_large', auth: with_(`${good}${'A'.repeat(65536)}`) },
  ];
}

describe('/session: refusals, each with its own data.code and no room joined', SKIP, () => {
  let srv;
  const raws = [];
  const clients = [];
  const cases = refusalCases();

  before(async () => {
    srv = await startServer({ testApp: false, extra: [...HS_FLAGS, ...NO_LIMITS] });
  });
  after(async () => {
    for (const r of raws) r.close();
    for (const s of clients) s.close();
    closeAll();
    await srv?.stop();
  });

  for (const cs of cases) {
    const codes = [cs.code].flat();
    it(`${cs.name} -> ${codes.join(' or ')}`, T, async () => {
      // socket.io-client: connect_error with a message and data.code
      const r = await tryTab(srv.url, cs.auth);
      clients.push(r.sock);
      assert.equal(r.ok, false, `connected: welcome ${JSON.stringify(r.welcome)}`);
      assert.equal(typeof r.err.message, 'string');
      assert.ok(r.err.message.length > 0, 'a readable message');
      assert.ok(codes.includes(r.err.data?.code), `data: ${JSON.stringify(r.err.data)} message: ${r.err.message}`);
      if (cs.field) assert.ok(r.err.message.includes(cs.field), `the message names ${cs.field}: ${r.err.message}`);
      // the same on the wire, from a raw client kept open for the room check
      const { ws, reply } = await rawTab(srv.port, cs.auth);
      raws.push(ws);
      const pkt = parseSio(reply);
      assert.ok(pkt, `a /session packet, got ${reply.slice(0, 200)}`);
      assert.equal(pkt.type, '4', `CONNECT_ERROR, got ${reply.slice(0, 200)}`);
      assert.equal(pkt.data.data.code, r.err.data.code);
    });
  }

  it('a refused client receives nothing published to the session, user or device it claimed', T, async () => {
    const a = await connectTab(srv.url, ident('carol', 'cs', 'cd', 'c-legit-1'));
    const b = await connectTab(srv.url, ident('carol', 'cs', 'cd', 'c-legit-2'));
    for (const to of ['session', 'user', 'device']) await deliver(a, envelope({ to }), [b], [a, b]);
    await sleep(300);
    for (const [i, ws] of raws.entries()) {
      const sent = ws.queue.filter((m) => m !== '2' && m !== '3');
      assert.deepEqual(sent, [], `raw refused client #${i} (${cases[i]?.name}) was sent ${JSON.stringify(sent).slice(0, 300)}`);
    }
    for (const s of clients) {
      assert.equal(s.events.length, 0, `${s.tabId} got events`);
      assert.equal(s.receiveBuffer.length, 0, 'buffered events for a refused socket');
    }
  });

  it('/metrics counts the auth refusals', T, async () => {
    const r = await httpGet(`${srv.url}/metrics`);
    assert.equal(r.status, 200);
    const { sum, lines } = metricSum(r.text, /^tabsync_.*auth/);
    assert.ok(lines > 0, `no tabsync_*auth* metric in:\n${r.text.slice(0, 3000)}`);
    assert.ok(sum >= cases.length, `auth refusal counters sum to ${sum}, expected >= ${cases.length}`);
  });

  it('the server exits 0 on SIGTERM, sanitizers quiet', T, async () => {
    for (const r of raws.splice(0)) r.close();
    const s = srv;
    srv = null;
    await s.stop();
  });
});

// ==== public keys =============================================================

describe('/session: RS256 and ES256 public keys; HS/RS confusion and alg none refused', SKIP, () => {
  let rsa;
  let ec;
  let dir;
  const rsaKeys = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaPem = rsaKeys.publicKey.export({ type: 'spki', format: 'pem' });
  const ecPem = ecKeys.publicKey.export({ type: 'spki', format: 'pem' });
  const id = ident('gina', 'gs', 'gd', 'g1');

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsync-sess-'));
    fs.writeFileSync(path.join(dir, 'rsa.pem'), rsaPem);
    fs.writeFileSync(path.join(dir, 'ec.pem'), ecPem);
    rsa = await startServer({ testApp: false, extra: ['--jwt-public-key', path.join(dir, 'rsa.pem'), ...NO_LIMITS] });
    ec = await startServer({ testApp: false, extra: ['--jwt-public-key', path.join(dir, 'ec.pem'), ...NO_LIMITS] });
  });
  after(async () => {
    closeAll();
    await rsa?.stop();
    await ec?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('an RS256 token connects', T, async () => {
    const s = track(await tab(rsa.url, authFor(id, rs256(claims(id), rsaKeys.privateKey))));
    assert.equal(s.welcome.user, 'gina');
    assert.equal(s.welcome.device, 'gd');
  });

  it('an ES256 token connects', T, async () => {
    const s = track(await tab(ec.url, authFor(id, es256(claims(id), ecKeys.privateKey))));
    assert.equal(s.welcome.session, 'gs');
  });

  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const otherEc = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const cases = [
    { srv: () => rsa, name: 'HS/RS confusion: HS256 keyed with the server\'s RSA public key PEM', code: 'token_alg_not_allowed',
      token: () => hs256(claims(id), Buffer.from(rsaPem, 'utf8')) },
    { srv: () => rsa, name: 'HS/RS confusion: HS256 keyed with the public key DER', code: 'token_alg_not_allowed',
      token: () => hs256(claims(id), rsaKeys.publicKey.export({ type: 'spki', format: 'der' })) },
    { srv: () => ec, name: 'HS/EC confusion: HS256 keyed with the server\'s EC public key PEM', code: 'token_alg_not_allowed',
      token: () => hs256(claims(id), Buffer.from(ecPem, 'utf8')) },
    { srv: () => rsa, name: 'alg none on an RS256 server', code: 'token_alg_none', token: () => algNone(claims(id)) },
    { srv: () => rsa, name: 'RS256 signed by another key', code: 'token_bad_signature',
      token: () => rs256(claims(id), other.privateKey) },
    { srv: () => ec, name: 'ES256 signed by another key', code: 'token_bad_signature',
      token: () => es256(claims(id), otherEc.privateKey) },
    { srv: () => rsa, name: 'ES256 on an RS256 server', code: 'token_alg_not_allowed',
      token: () => es256(claims(id), ecKeys.privateKey) },
  ];
  const raws = [];
  for (const cs of cases) {
    it(`${cs.name} -> ${cs.code}`, T, async () => {
      const auth = authFor(id, cs.token());
      const err = await refusal(cs.srv().url, auth);
      assert.equal(err.data?.code, cs.code, `data: ${JSON.stringify(err.data)} message: ${err.message}`);
      const { ws, reply } = await rawTab(cs.srv().port, auth);
      raws.push(ws);
      assert.equal(parseSio(reply)?.type, '4', reply.slice(0, 200));
    });
  }

  it('the confused and unsigned clients receive nothing published to gina\'s rooms', T, async () => {
    const a = track(await tab(rsa.url, authFor(ident('gina', 'gs', 'gd', 'g2'), rs256(claims(id), rsaKeys.privateKey))));
    const b = track(await tab(rsa.url, authFor(ident('gina', 'gs', 'gd', 'g3'), rs256(claims(id), rsaKeys.privateKey))));
    const c = track(await tab(ec.url, authFor(ident('gina', 'gs', 'gd', 'g4'), es256(claims(id), ecKeys.privateKey))));
    const d = track(await tab(ec.url, authFor(ident('gina', 'gs', 'gd', 'g5'), es256(claims(id), ecKeys.privateKey))));
    for (const to of ['session', 'user', 'device']) {
      await deliver(a, envelope({ to }), [b], [a, b]);
      await deliver(c, envelope({ to }), [d], [c, d]);
    }
    await sleep(200);
    for (const [i, ws] of raws.entries()) {
      const sent = ws.queue.filter((m) => m !== '2');
      assert.deepEqual(sent, [], `${cases[i].name}: ${JSON.stringify(sent).slice(0, 300)}`);
      ws.close();
    }
  });

  it('the servers exit 0 on SIGTERM, sanitizers quiet', T, async () => {
    closeAll();
    const a = rsa;
    const b = ec;
    rsa = null;
    ec = null;
    await a.stop();
    await b.stop();
  });
});

// ==== cross-session attempts and envelope validation ==========================

describe('/session: cross-session attempts and invalid envelopes are refused and reach nobody', SKIP, () => {
  let srv;
  let x; let y; let z; let w; let v; let all;

  before(async () => {
    srv = await startServer({ testApp: false, extra: [...HS_FLAGS, ...NO_LIMITS] });
    x = await connectTab(srv.url, ident('dave', 's1', 'd1', 'x'));
    y = await connectTab(srv.url, ident('dave', 's1', 'd1', 'y'));
    z = await connectTab(srv.url, ident('dave', 's2', 'd1', 'z'));
    w = await connectTab(srv.url, ident('dave', 's1', 'd2', 'w'));
    v = await connectTab(srv.url, ident('erin', 's1', 'd1', 'v'));
    all = [x, y, z, w, v];
  });
  after(async () => { closeAll(); await srv?.stop(); });

  const hostile = [
    ['to names a session room', { to: 's:dave:s2' }],
    ['to names another session', { to: 's:other' }],
    ['to names a user room', { to: 'u:erin' }],
    ['to names a device room', { to: 'd:dave:d2' }],
    ['to names a socket-ish room', { to: 'room' }],
    ['to is an object naming a session', { to: { session: 's2' } }],
    ['to is an object naming a user', { to: { user: 'erin' } }],
    ['to is a list of scopes', { to: ['session', 'user'] }],
    ['to is an empty string', { to: '' }],
    ['to in another case', { to: 'USER' }],
    ['to is a number', { to: 1 }],
  ];
  const invalid = [
    ['seq set by the client', { seq: 1 }],
    ['prio security (server only)', { prio: 'security' }],
    ['unknown prio', { prio: 'urgent' }],
    ['type with a space', { type: 'bad type' }],
    ['empty type', { type: '' }],
    ['type of 65 characters', { type: 't'.repeat(65) }],
    ['type is a number', { type: 42 }],
    ['id missing', { id: undefined }],
    ['id with a quote', { id: 'a"b' }],
    ['cid with a space', { cid: 'c 1' }],
    ['v 5 (unsupported)', { v: 5 }],
    ['v 0', { v: 0 }],
    ['v is a string', { v: '1' }],
  ];
  const refusedIds = [];

  for (const [name, fields] of [...hostile, ...invalid]) {
    it(`${name} -> {ok:false, error}`, T, async () => {
      const env = envelope(fields);
      for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
      if (typeof env.id === 'string') refusedIds.push(env.id);
      const ack = await ask(x, 'publish', env);
      assert.equal(ack?.ok, false, `ack ${JSON.stringify(ack)}`);
      assert.equal(typeof ack.error?.code, 'string', `ack ${JSON.stringify(ack)}`);
      assert.equal(typeof ack.error?.message, 'string', `ack ${JSON.stringify(ack)}`);
    });
  }

  for (const [name, arg] of [['a string', 'hello'], ['a number', 7], ['an empty array', []], ['null', null]]) {
    it(`a publish of ${name} -> {ok:false}`, T, async () => {
      const ack = await ask(x, 'publish', arg);
      assert.equal(ack?.ok, false, JSON.stringify(ack));
      assert.equal(typeof ack.error?.code, 'string');
    });
  }

  it('a refused publish without an ack gets an `error` event', T, async () => {
    x.errors.length = 0;
    x.emit('publish', envelope({ to: 's:dave:s2' }));
    const [e] = await x.errors.waitFor(1);
    assert.equal(typeof e.code, 'string', JSON.stringify(e));
    assert.equal(typeof e.message, 'string');
  });

  it('none of the refused envelopes reached anybody; the sender is still connected and delivers to its session', T, async () => {
    await sleep(300);
    for (const s of all) {
      assert.deepEqual([...s.events], [], `${s.tabId} received ${JSON.stringify(s.events).slice(0, 300)}`);
    }
    assert.ok(x.connected);
    await deliver(x, envelope({ to: 'session' }), [y, w], all);
  });

  // Unknown members are not part of the envelope: the server may refuse the
  // envelope, or ignore them; either way they cannot widen or redirect its
  // scope, and they are not relayed.
  const extras = [
    ['an extra session member', { session: 's2' }, () => [y, w]],
    ['an extra room member', { room: 's:erin:s1' }, () => [y, w]],
    ['an extra rooms member', { rooms: ['u:erin', 's:dave:s2'] }, () => [y, w]],
    ['an extra user member with to user', { to: 'user', user: 'erin' }, () => [y, z, w]],
    ['an extra device member with to device', { to: 'device', device: 'd2' }, () => [y, z]],
    ['an extra from member (spoofing the sender)', { from: { user: 'erin', device: 'd1', tab: 'v' } }, () => [y, w]],
  ];
  for (const [name, fields, scope] of extras) {
    it(`${name}: refused, or ignored without changing the scope`, T, async () => {
      clearEvents(all);
      const env = envelope(fields);
      const ack = await ask(x, 'publish', env);
      const expected = ack?.ok ? scope() : [];
      if (ack?.ok) {
        assert.deepEqual(ack, { ok: true, id: env.id });
      } else {
        assert.equal(typeof ack?.error?.code, 'string', JSON.stringify(ack));
      }
      for (const r of expected) {
        await within((async () => { while (!ids(r).includes(env.id)) await sleep(10); })(), 5000, `${env.id} at ${r.tabId}`);
      }
      await sleep(250);
      for (const s of all) {
        const got = s.events.filter((e) => e.id === env.id);
        assert.equal(got.length, expected.includes(s) ? 1 : 0, `${s.tabId} received ${got.length}`);
        for (const e of got) {
          for (const k of Object.keys(fields)) if (k !== 'to' && k !== 'from') assert.ok(!(k in e), `${k} relayed: ${JSON.stringify(e)}`);
          assert.deepEqual(e.from, { user: 'dave', device: 'd1', tab: 'x' });
        }
      }
    });
  }

  it('metadata and token events validate their argument', T, async () => {
    assert.equal((await ask(x, 'metadata', 'fast'))?.ok, false);
    assert.equal((await ask(x, 'token', { token: 42 }))?.ok, false);
    assert.equal((await ask(x, 'token', 'not-an-object'))?.ok, false);
    const ok = await ask(x, 'metadata', { network: { effectiveType: '4g', downlink: 10, rtt: 50 }, visibility: 'visible' });
    assert.deepEqual(ok, { ok: true });
  });

  it('the server exits 0 on SIGTERM, sanitizers quiet', T, async () => {
    closeAll();
    const s = srv;
    srv = null;
    await s.stop();
  });
});

// ==== throttles ===============================================================

/** An http.Agent bound to a local address (for socket.io-client, both transports). */
const agentFrom = (localAddress) => new http.Agent({ localAddress });

describe('/session: throttles fire at their limit and recover', SKIP, () => {
  const servers = [];
  async function server(limits) {
    const flags = {};
    for (let i = 0; i < NO_LIMITS.length; i += 2) flags[NO_LIMITS[i]] = NO_LIMITS[i + 1];
    Object.assign(flags, limits);
    // limits are a node's own (docs/DEPLOYMENT.md): under TS_CLUSTER these
    // run against one node, whose counts they check
    const s = await startServer({ single: true, testApp: false, extra: [...HS_FLAGS, ...Object.entries(flags).flat()] });
    servers.push(s);
    return s;
  }
  after(async () => {
    closeAll();
    for (const s of servers) await s.stop().catch(() => {});
  });
  const metricTexts = [];
  async function keepMetrics(s) {
    const r = await httpGet(`${s.url}/metrics`, { localAddress: '127.0.0.3' });
    assert.equal(r.status, 200);
    metricTexts.push(r.text);
  }

  it('handshakes per address: 429 with Retry-After past the limit; another address still connects; recovery', T, async () => {
    const s = await server({ '--limit-handshakes-per-ip': '5' });
    const flood = await Promise.all(Array.from({ length: 12 }, () =>
      httpGet(`${s.url}/socket.io/?EIO=4&transport=polling`)));
    const ok = flood.filter((r) => r.status === 200);
    const refused = flood.filter((r) => r.status !== 200);
    // 5 at once (burst = rate), maybe one more refilled while the flood is under way
    assert.ok(ok.length >= 5 && ok.length <= 7, `handshakes granted: ${ok.length} of 12 (limit 5/s)`);
    for (const r of refused) {
      assert.equal(r.status, 429, r.text);
      assert.match(String(r.headers['retry-after']), /^[1-9][0-9]*$/, 'Retry-After in seconds');
      if (r.json) assert.equal(r.json.code, 4, r.text);
    }
    // socket.io-client from the flooded address is refused too
    const id = ident('hank', 'hs', 'hd', 'h1');
    const blocked = await tryTab(s.url, goodAuth(id));
    blocked.sock.close();
    assert.equal(blocked.ok, false, 'connected from the flooded address');
    assert.ok(blocked.err.description === 429 || blocked.err.data?.code === 'throttled',
      `refusal: ${blocked.err.message} ${blocked.err.description} ${JSON.stringify(blocked.err.data)}`);
    // ... but 127.0.0.2 is another address, over both transports
    const other = track(await tab(s.url, goodAuth(ident('hank', 'hs', 'hd', 'h2')), { agent: agentFrom('127.0.0.2') }));
    assert.equal(other.welcome.tab, 'h2');
    const otherWs = track(await tab(s.url, goodAuth(ident('hank', 'hs', 'hd', 'h3')),
      { agent: agentFrom('127.0.0.2'), transports: ['websocket'] }));
    assert.equal(otherWs.welcome.tab, 'h3');
    await keepMetrics(s);
    // recovery after the advertised delay
    const wait = Math.max(...refused.map((r) => Number(r.headers['retry-after'])));
    await sleep(wait * 1000 + 200);
    const back = track(await tab(s.url, goodAuth(ident('hank', 'hs', 'hd', 'h4'))));
    assert.equal(back.welcome.tab, 'h4');
  });

  it('connections per address: throttled past the limit, other addresses unaffected, free again after a disconnect', T, async () => {
    const s = await server({ '--limit-conns-per-ip': '3' });
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await connectTab(s.url, ident(`ip-user-${i}`, 'is', 'id', `ip${i}`)));
    const fourth = ident('ip-user-3', 'is', 'id', 'ip3');
    const err = await refusal(s.url, goodAuth(fourth));
    assert.equal(err.data?.code, 'throttled', `${err.message} ${JSON.stringify(err.data)}`);
    assert.equal(typeof err.data.retry_after_ms, 'number');
    assert.ok(err.data.retry_after_ms >= 0);
    const elsewhere = track(await tab(s.url, goodAuth(ident('ip-user-4', 'is', 'id', 'ip4')), { agent: agentFrom('127.0.0.2') }));
    assert.equal(elsewhere.welcome.tab, 'ip4');
    await keepMetrics(s);
    mine[0].disconnect();
    const t0 = Date.now();
    for (;;) {
      const r = await tryTab(s.url, goodAuth(fourth));
      if (r.ok) { track(r.sock); break; }
      r.sock.close();
      assert.equal(r.err.data?.code, 'throttled');
      assert.ok(Date.now() - t0 < 5000, 'the freed slot was not given back');
      await sleep(100);
    }
  });

  it('connections per user: throttled past the limit from any address, other users unaffected, free again after a disconnect', T, async () => {
    const s = await server({ '--limit-conns-per-user': '2' });
    const a1 = await connectTab(s.url, ident('ivy', 'is1', 'id1', 'a1'));
    await connectTab(s.url, ident('ivy', 'is2', 'id2', 'a2'));
    const a3 = ident('ivy', 'is1', 'id1', 'a3');
    const err = await refusal(s.url, goodAuth(a3));
    assert.equal(err.data?.code, 'throttled', `${err.message} ${JSON.stringify(err.data)}`);
    assert.equal(typeof err.data.retry_after_ms, 'number');
    const err2 = await refusal(s.url, goodAuth(a3), { agent: agentFrom('127.0.0.2') });
    assert.equal(err2.data?.code, 'throttled', 'the per-user limit holds from another address');
    const b1 = await connectTab(s.url, ident('jack', 'js', 'jd', 'b1'));
    assert.equal(b1.welcome.user, 'jack');
    await keepMetrics(s);
    a1.disconnect();
    const t0 = Date.now();
    for (;;) {
      const r = await tryTab(s.url, goodAuth(a3));
      if (r.ok) { track(r.sock); break; }
      r.sock.close();
      assert.ok(Date.now() - t0 < 5000, 'the freed slot was not given back');
      await sleep(100);
    }
  });

  it('events per socket: throttled acks past the limit (nothing relayed), an error event without ack, recovery', T, async () => {
    // --limit-queue 0: refused at once, as before the inbound queue (tested below)
    const s = await server({ '--limit-events-per-socket': '10', '--limit-queue': '0' });
    const tx = await connectTab(s.url, ident('kim', 'ks', 'kd', 'tx'));
    const rx = await connectTab(s.url, ident('kim', 'ks', 'kd', 'rx'));
    const envs = Array.from({ length: 20 }, (_, i) => envelope({ id: `burst-${i}` }));
    const pending = envs.map((e) => ask(tx, 'publish', e));
    // in the same burst, without an ack: refusals come as `error` events
    for (let i = 0; i < 3; i++) tx.emit('publish', envelope({ id: `noack-${i}` }));
    const acks = await Promise.all(pending);
    const okIds = acks.filter((a) => a.ok).map((a) => a.id);
    const throttled = acks.filter((a) => !a.ok);
    assert.deepEqual(okIds.slice(0, 10), envs.slice(0, 10).map((e) => e.id), 'the first 10 are granted');
    // a few may refill while the burst is under way (10/s: one per 100 ms)
    assert.ok(okIds.length <= 13, `granted ${okIds.length} of 20 at 10/s`);
    for (const a of throttled) {
      assert.equal(a.error?.code, 'throttled', JSON.stringify(a));
      assert.ok(Number.isInteger(a.error.retry_after_ms) && a.error.retry_after_ms > 0, JSON.stringify(a));
      assert.equal(typeof a.error.message, 'string');
    }
    const [e] = await tx.errors.waitFor(1);
    assert.equal(e.code, 'throttled', JSON.stringify(e));
    assert.ok(e.retry_after_ms > 0, JSON.stringify(e));
    // only the granted ones were relayed
    await rx.events.waitFor(okIds.length);
    await sleep(250);
    assert.deepEqual(ids(rx).filter((x) => x.startsWith('burst-')), okIds);
    assert.ok(ids(rx).filter((x) => x.startsWith('noack-')).length + tx.errors.length === 3);
    await keepMetrics(s);
    // recovery
    await sleep(Math.max(e.retry_after_ms, ...throttled.map((a) => a.error.retry_after_ms)) + 100);
    await deliver(tx, envelope({ id: 'after-pause' }), [rx], [tx, rx]);
    assert.ok(tx.connected, 'a socket under the strike limit stays connected');
  });

  it('bytes per socket: throttled past the byte budget, recovery', T, async () => {
    const s = await server({ '--limit-bytes-per-socket': '4000', '--limit-queue': '0' });
    const tx = await connectTab(s.url, ident('lou', 'ls', 'ld', 'tx'));
    const rx = await connectTab(s.url, ident('lou', 'ls', 'ld', 'rx'));
    const acks = [];
    for (let i = 0; i < 8; i++) acks.push(await ask(tx, 'publish', envelope({ id: `big-${i}`, body: 'x'.repeat(900) })));
    const okN = acks.findIndex((a) => !a.ok);
    assert.ok(okN >= 2 && okN <= 5, `envelopes of ~1 KB granted before the first refusal: ${okN} (budget 4000 B/s); ${JSON.stringify(acks.map((a) => a.ok))}`);
    const refused = acks.filter((a) => !a.ok);
    assert.ok(refused.length >= 3, `${refused.length} refused of 8`);
    for (const a of refused) {
      assert.equal(a.error?.code, 'throttled', JSON.stringify(a));
      assert.ok(a.error.retry_after_ms > 0);
    }
    await sleep(250);
    assert.deepEqual(ids(rx), acks.filter((a) => a.ok).map((a) => a.id));
    await keepMetrics(s);
    await sleep(Math.max(...refused.map((a) => a.error.retry_after_ms)) + 100);
    await deliver(tx, envelope({ id: 'big-after', body: 'x'.repeat(900) }), [rx], [tx, rx]);
  });

  it('repeated abuse (--limit-strikes 3) disconnects the abuser, not its neighbours', T, async () => {
    const s = await server({ '--limit-events-per-socket': '5', '--limit-strikes': '3', '--limit-queue': '0' });
    const bad = await connectTab(s.url, ident('max', 'ms', 'md', 'bad'));
    const good = await connectTab(s.url, ident('max', 'ms', 'md', 'good'));
    const acks = await Promise.all(Array.from({ length: 40 }, () =>
      ask(bad, 'publish', envelope(), 3000).catch(() => null)));
    const [reason] = await bad.disconnects.waitFor(1, 5000);
    assert.equal(reason, 'io server disconnect');
    const throttled = acks.filter((a) => a && !a.ok).length;
    assert.ok(throttled >= 1 && throttled <= 4, `throttled acks before the disconnect: ${throttled}`);
    assert.ok(acks.filter((a) => a === null).length > 0, 'the rest were never answered');
    await keepMetrics(s);
    assert.ok(good.connected);
    await deliver(good, envelope(), [], [good]);
  });

  it('events over the rate wait and go through at the rate: all acked, in order, none refused, no disconnect', T, async () => {
    const s = await server({ '--limit-events-per-socket': '10', '--limit-strikes': '3' });
    const tx = await connectTab(s.url, ident('nia', 'ns', 'nd', 'tx'));
    const rx = await connectTab(s.url, ident('nia', 'ns', 'nd', 'rx'));
    const t0 = Date.now();
    const envs = Array.from({ length: 30 }, (_, i) => envelope({ id: `slow-${i}` }));
    const acks = await Promise.all(envs.map((e) => ask(tx, 'publish', e, 10000)));
    const took = Date.now() - t0;
    assert.deepEqual(acks.map((a) => a.ok), envs.map(() => true), JSON.stringify(acks.filter((a) => !a.ok)));
    // 10 at once (the burst), then 10 per second: the last 20 need ~2 s
    assert.ok(took >= 1500, `30 events at 10/s took ${took} ms: not slowed down`);
    await rx.events.waitFor(30, 5000);
    assert.deepEqual(ids(rx).filter((x) => x.startsWith('slow-')), envs.map((e) => e.id), 'relayed in order');
    assert.ok(tx.connected, 'slowed down, not disconnected');
    const m = await httpGet(`${s.url}/metrics`, { localAddress: '127.0.0.3' });
    const deferred = Number((m.text.match(/^tabsync_session_deferred_total (\d+)/m) || [])[1]);
    assert.ok(deferred >= 15, `deferred ${deferred}`);
    const refused = Number((m.text.match(/^tabsync_session_throttled_total\{limit="events_per_socket"\} (\d+)/m) || [])[1]);
    assert.equal(refused, 0, 'nothing refused');
  });

  it('a burst of 1,000 envelopes in batches (an offline queue flushing) is taken at the rate, never refused', T, async () => {
    const s = await server({ '--limit-events-per-socket': '200', '--limit-strikes': '1' });
    const tx = await connectTab(s.url, ident('ola', 'os', 'od', 'tx'));
    const rx = await connectTab(s.url, ident('ola', 'os', 'od', 'rx'));
    const t0 = Date.now();
    const batches = Array.from({ length: 4 }, (_, b) =>
      Array.from({ length: 250 }, (_, i) => envelope({ id: `q-${b}-${i}` })));
    const acks = await Promise.all(batches.map((b) => ask(tx, 'publish', b, 20000)));
    const took = Date.now() - t0;
    for (const a of acks) {
      assert.equal(a.ok, true, JSON.stringify(a).slice(0, 300));
      assert.equal(a.failed, 0);
      assert.equal(a.results.length, 250);
    }
    // a message costs one token per envelope, at most a whole burst (200)
    assert.ok(took >= 2000, `4 batches at 200 envelopes/s took ${took} ms`);
    await rx.events.waitFor(1000, 10000);
    assert.deepEqual(ids(rx).filter((x) => x.startsWith('q-')), batches.flat().map((e) => e.id));
    assert.ok(tx.connected);
  });

  it('a socket whose queue of waiting events is full is refused (throttled), then struck off', T, async () => {
    const s = await server({ '--limit-events-per-socket': '5', '--limit-queue': '5', '--limit-strikes': '3' });
    const bad = await connectTab(s.url, ident('pip', 'ps', 'pd', 'bad'));
    const rx = await connectTab(s.url, ident('pip', 'ps', 'pd', 'rx'));
    const acks = await Promise.all(Array.from({ length: 40 }, () =>
      ask(bad, 'publish', envelope(), 5000).catch(() => null)));
    const [reason] = await bad.disconnects.waitFor(1, 5000);
    assert.equal(reason, 'io server disconnect');
    const throttled = acks.filter((a) => a && !a.ok);
    assert.ok(throttled.length >= 1, 'refused once the queue was full');
    for (const a of throttled) assert.equal(a.error.code, 'throttled');
    // the burst (5) was granted and logged even if its acks lost the race
    // with the disconnect; what waited in the queue went with the socket
    await rx.events.waitFor(5, 5000);
    assert.ok(rx.events.length <= 10, `relayed ${rx.events.length}: at most the burst and the queue`);
  });

  it('/metrics counts the throttles', T, () => {
    assert.ok(metricTexts.length >= 5, 'metrics were collected by the throttle tests');
    for (const text of metricTexts) {
      const { sum, lines } = metricSum(text, /^tabsync_.*throttl/);
      assert.ok(lines > 0, `no tabsync_*throttl* metric in:\n${text.slice(0, 3000)}`);
      assert.ok(sum > 0, 'throttle counters are all 0');
    }
  });

  it('the servers exit 0 on SIGTERM, sanitizers quiet', T, async () => {
    closeAll();
    for (const s of servers.splice(0)) await s.stop();
  });
});

// ==== registry and admin API ==================================================

describe('/session: the registry and the admin API', SKIP, () => {
  let reg; // short TTL: --registry-ttl 1000 --registry-sweep 200, heartbeats every 300 ms
  let longTtl; // default TTL: a clean disconnect must not wait for it
  const UA = 'tabsync-session-test/1.0';

  before(async () => {
    const flags = [...HS_FLAGS, ...NO_LIMITS, '--admin-token', ADMIN];
    reg = await startServer({
      testApp: false, pingInterval: 300, pingTimeout: 300,
      extra: [...flags, '--registry-ttl', '1000', '--registry-sweep', '200'],
    });
    longTtl = await startServer({ testApp: false, extra: flags });
  });
  after(async () => { closeAll(); await reg?.stop(); await longTtl?.stop(); });

  it('the admin API answers 401 without the admin token, with a wrong one, or another scheme', T, async () => {
    for (const p of ['/api/admin/sessions/fs-1', '/api/admin/users/frank']) {
      const cases = [
        {}, { Authorization: `Bearer ${ADMIN}x` }, { Authorization: `Bearer ${ADMIN.slice(0, -1)}` },
        { Authorization: 'Bearer ' }, { Authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` },
        { Authorization: ADMIN }, { 'X-Admin-Token': ADMIN },
      ];
      for (const headers of cases) {
        const r = await httpGet(`${reg.url}${p}`, { headers });
        assert.equal(r.status, 401, `${p} with ${JSON.stringify(headers)}: ${r.status} ${r.text.slice(0, 200)}`);
        assert.ok(!r.text.includes('frank'), 'nothing leaks in a 401');
      }
    }
  });

  it('without --admin-token the admin paths are 404', T, async () => {
    const s = await startServer({ testApp: false, extra: [...HS_FLAGS, ...NO_LIMITS] });
    try {
      for (const p of ['/api/admin/sessions/x', '/api/admin/users/x']) {
        assert.equal((await admin(s.url, p, ADMIN)).status, 404, p);
        assert.equal((await admin(s.url, p)).status, 404, p);
      }
      assert.equal((await httpGet(`${s.url}/api/dev/token?user=u&session=s&device=d&fingerprint=f`)).status, 404,
        'the dev token endpoint is off without --dev');
    } finally {
      await s.stop();
    }
  });

  let f1; let f2; let f3;
  it('GET /api/admin/sessions/<sid> lists its tabs and devices with their metadata', T, async () => {
    f1 = await connectTab(reg.url, ident('frank', 'fs-1', 'fd1', 'f1'),
      { transports: ['websocket'], extraHeaders: { 'User-Agent': UA } });
    f2 = await connectTab(reg.url, ident('frank', 'fs-1', 'fd2', 'f2'), { transports: ['polling'] });
    f3 = await connectTab(reg.url, ident('frank', 'fs-2', 'fd1', 'f3'));
    await connectTab(reg.url, ident('gus', 'gs-1', 'gd1', 'g1'));
    const r = await admin(reg.url, '/api/admin/sessions/fs-1', ADMIN);
    assert.equal(r.status, 200, r.text);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.equal(r.json.session, 'fs-1');
    assert.deepEqual(r.json.tabs.map((t) => itemId(t, TAB_KEYS)).sort(), ['f1', 'f2']);
    assert.deepEqual(r.json.devices.map((d) => itemId(d, DEVICE_KEYS)).sort(), ['fd1', 'fd2']);
    const e1 = r.json.tabs.find((t) => itemId(t, TAB_KEYS) === 'f1');
    const vals = leaves(e1).map(([, v]) => v);
    assert.ok(vals.includes('fd1'), `device in ${JSON.stringify(e1)}`);
    assert.ok(vals.some((v) => typeof v === 'string' && v.includes('127.0.0.1')), `address in ${JSON.stringify(e1)}`);
    assert.ok(vals.includes(UA), `user agent in ${JSON.stringify(e1)}`);
    assert.ok(vals.includes('browser'), `device type in ${JSON.stringify(e1)}`);
    const connectTime = leaves(e1).find(([p, v]) => /connect/i.test(p) && typeof v === 'number');
    assert.ok(connectTime, `connect time in ${JSON.stringify(e1)}`);
    // the entry's data, whatever form the store keeps it in (docs/STORE.md
    // "Registry data"): its members in their order, the tab's socket id
    assert.deepEqual(Object.keys(e1.data),
      ['socket', 'type', 'connected_at', 'address', 'proto', 'caps', 'user_agent'], JSON.stringify(e1));
    assert.equal(e1.data.socket, f1.id);
    assert.equal(e1.data.address, '127.0.0.1');
    assert.ok(Math.abs(e1.data.connected_at - Date.now()) < 60000, JSON.stringify(e1));
    const e2 = r.json.tabs.find((t) => itemId(t, TAB_KEYS) === 'f2');
    assert.equal(e2.data.socket, f2.id);
  });

  it('a metadata event shows up in the registry; the server-measured rtt appears after heartbeats', T, async () => {
    const meta = {
      network: { effectiveType: '3g', downlink: 1.25, rtt: 321 },
      battery: { level: 0.42, charging: true },
      visibility: 'hidden',
      type: 'mobile',
    };
    assert.deepEqual(await ask(f1, 'metadata', meta), { ok: true });
    const { tabs } = await waitRegistry(reg.url, 'fs-1', ADMIN, (ts) => {
      const e = ts.find((t) => itemId(t, TAB_KEYS) === 'f1');
      return e && leaves(e).some(([p, v]) => /downlink/.test(p) && v === 1.25)
        && leaves(e).some(([p, v]) => /rtt/i.test(p) && !/network/.test(p) && typeof v === 'number');
    }, 4000, 'metadata and server rtt of f1');
    const e = tabs.find((t) => itemId(t, TAB_KEYS) === 'f1');
    const has = (suffix, v) => leaves(e).some(([p, x]) => p.endsWith(suffix) && x === v);
    assert.ok(has('effectiveType', '3g'), JSON.stringify(e));
    assert.ok(has('downlink', 1.25), JSON.stringify(e));
    assert.ok(leaves(e).some(([p, v]) => /network/.test(p) && p.endsWith('rtt') && v === 321), JSON.stringify(e));
    assert.ok(has('level', 0.42), JSON.stringify(e));
    assert.ok(has('charging', true), JSON.stringify(e));
    assert.ok(has('visibility', 'hidden'), JSON.stringify(e));
    const srvRtt = leaves(e).find(([p, v]) => /rtt/i.test(p) && !/network/.test(p) && typeof v === 'number');
    assert.ok(srvRtt[1] >= 0 && srvRtt[1] < 10000, `server rtt ${JSON.stringify(srvRtt)}`);
    // the other tab is untouched
    const e2 = tabs.find((t) => itemId(t, TAB_KEYS) === 'f2');
    assert.ok(!leaves(e2).some(([, v]) => v === 0.42 || v === '3g'), JSON.stringify(e2));
  });

  it('the device type sent in metadata (type) replaces the one of the connect payload in the registry', T, async () => {
    const { tabs } = await waitRegistry(reg.url, 'fs-1', ADMIN, (ts) => hasTab(ts, 'f1'), 2000, 'f1 registered');
    const e = tabs.find((t) => itemId(t, TAB_KEYS) === 'f1');
    assert.ok(leaves(e).some(([p, v]) => p.endsWith('type') && v === 'mobile'),
      `metadata {type: 'mobile'} sent by f1 is not in the registry: ${JSON.stringify(e)}`);
  });

  it('GET /api/admin/users/<user> lists the devices and sessions of the user', T, async () => {
    const r = await admin(reg.url, '/api/admin/users/frank', ADMIN);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.user, 'frank');
    assert.deepEqual([...new Set(r.json.devices.map((d) => itemId(d, DEVICE_KEYS)))].sort(), ['fd1', 'fd2']);
    assert.deepEqual([...new Set(r.json.sessions.map((s) => itemId(s, SESSION_KEYS)))].sort(), ['fs-1', 'fs-2']);
    assert.ok(!r.text.includes('gs-1') && !r.text.includes('gd1'), 'another user\'s entries leak');
    const none = await admin(reg.url, '/api/admin/users/nobody', ADMIN);
    assert.ok(none.status === 404 || (none.status === 200 && none.json.devices.length === 0
      && none.json.sessions.length === 0), `${none.status} ${none.text}`);
  });

  it('a clean disconnect leaves the registry at once (well before the TTL)', T, async () => {
    const t = await connectTab(longTtl.url, ident('hal', 'hs-1', 'hd', 'clean'));
    await waitRegistry(longTtl.url, 'hs-1', ADMIN, (ts) => hasTab(ts, 'clean'), 2000, 'clean tab registered');
    t.disconnect();
    // the default TTL is far longer than this bound
    await waitRegistry(longTtl.url, 'hs-1', ADMIN, (ts) => !hasTab(ts, 'clean'), 2000, 'clean tab gone');
    f2.disconnect();
    await waitRegistry(reg.url, 'fs-1', ADMIN, (ts) => !hasTab(ts, 'f2') && hasTab(ts, 'f1'), 2000, 'f2 gone, f1 kept');
  });

  it('a client process killed without closing leaves within TTL + one sweep', T, async () => {
    const id = ident('ken', 'ks-1', 'kd', 'killed');
    const child = spawn(process.execPath, [HELPERS, 'child', reg.url, JSON.stringify(goodAuth(id))],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    process.once('exit', () => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } });
    try {
      const line = await within(new Promise((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.once('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)));
      }), 10000, 'child welcome');
      assert.match(line, /^welcome /);
      await waitRegistry(reg.url, 'ks-1', ADMIN, (ts) => hasTab(ts, 'killed'), 2000, 'killed tab registered');
    } finally {
      process.kill(child.pid, 'SIGKILL');
    }
    // TTL 1000 + sweep 200, plus one heartbeat period (300 + 300) and slack
    const { ms } = await waitRegistry(reg.url, 'ks-1', ADMIN, (ts) => !hasTab(ts, 'killed'), 3500, 'killed tab gone');
    assert.ok(ms <= 3500);
  });

  it('a raw client that stops answering pings leaves after the ping timeout', T, async () => {
    const id = ident('len', 'ls-1', 'ld', 'silent');
    const { ws, reply } = await rawTab(reg.port, goodAuth(id), { autoPong: false });
    try {
      assert.equal(parseSio(reply)?.type, '0', reply);
      await waitRegistry(reg.url, 'ls-1', ADMIN, (ts) => hasTab(ts, 'silent'), 2000, 'silent tab registered');
      await ws.waitClose(3000); // ping interval 300 + ping timeout 300
      await waitRegistry(reg.url, 'ls-1', ADMIN, (ts) => !hasTab(ts, 'silent'), 2500, 'silent tab gone');
    } finally {
      ws.close();
    }
  });

  it('entries of live tabs are renewed past the TTL', T, async () => {
    await sleep(1500); // > --registry-ttl 1000 + sweep
    const tabs = await registryTabs(reg.url, 'fs-1', ADMIN);
    assert.ok(hasTab(tabs, 'f1'), `f1 expired while connected: ${JSON.stringify(tabs).slice(0, 300)}`);
    assert.ok(hasTab(await registryTabs(reg.url, 'fs-2', ADMIN), 'f3'));
    assert.ok(f3.connected);
  });

  it('the servers exit 0 on SIGTERM, sanitizers quiet', T, async () => {
    closeAll();
    const a = reg;
    const b = longTtl;
    reg = null;
    longTtl = null;
    await a.stop();
    await b.stop();
  });
});

// ==== token swap and expiry ===================================================

describe('/session: token swap and token expiry', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ testApp: false, extra: [...HS_FLAGS, ...NO_LIMITS] });
  });
  after(async () => { closeAll(); await srv?.stop(); });

  it('a fresh token of the same identity is accepted: {ok:true, exp}', T, async () => {
    const id = ident('nina', 'ns', 'nd', 'n1');
    const s = await connectTab(srv.url, id);
    const fresh = claims(id, { aud: AUD, iss: ISS, ttl: 1200 });
    assert.deepEqual(await ask(s, 'token', { token: hs256(fresh, SECRET) }), { ok: true, exp: fresh.exp });
  });

  it('a token of another user, session or device, or an invalid one, is refused and changes nothing', T, async () => {
    const id = ident('olga', 'os', 'od', 'o1');
    const s = await connectTab(srv.url, id);
    const sameUser = await connectTab(srv.url, ident('olga', 'os2', 'od2', 'o2'));
    const pete = await connectTab(srv.url, ident('pete', 'ps', 'pd', 'p1'));
    const peteSess = await connectTab(srv.url, ident('pete', 'os', 'od', 'p2'));
    const c = (o) => claims(id, { aud: AUD, iss: ISS, ...o });
    const bad = [
      ['another user', hs256(c({ extra: { sub: 'pete' } }), SECRET)],
      ['another session', hs256(c({ extra: { sid: 'os2' } }), SECRET)],
      ['another device', hs256(c({ extra: { dev: 'od2', fp: fpHash('fp:olga:od2:secret') } }), SECRET)],
      ['another fingerprint', hs256(c({ extra: { fp: fpHash('other') } }), SECRET)],
      ['expired', hs256(c({ extra: { exp: nowS() - 3600 } }), SECRET)],
      ['bad signature', hs256(c(), 'k'.repeat(40))],
      ['alg none', algNone(c())],
    ];
    for (const [name, token] of bad) {
      if (!s.connected) break; // a server may also cut a hostile swap: equally safe
      const ack = await ask(s, 'token', { token });
      assert.equal(ack?.ok, false, `${name}: ${JSON.stringify(ack)}`);
      assert.equal(typeof ack.error?.code, 'string', `${name}: ${JSON.stringify(ack)}`);
    }
    if (s.connected) {
      // still olga's tab: reaches olga's other session, not pete's
      const all = [s, sameUser, pete, peteSess];
      await deliver(s, envelope({ to: 'user' }), [sameUser], all);
      await deliver(s, envelope({ to: 'session' }), [], all);
    }
  });

  it('token_expiring then token_expired, then a disconnect; a tab that swapped in time stays', T, async () => {
    const idX = ident('quinn', 'qs', 'qd', 'expiring');
    const idY = ident('quinn', 'qs', 'qd', 'swapped');
    const idZ = ident('quinn', 'qs', 'qd2', 'watcher');
    const x = await connectTab(srv.url, idX, {}, { ttl: 3 });
    const y = await connectTab(srv.url, idY, {}, { ttl: 3 });
    const z = await connectTab(srv.url, idZ);
    const expX = x.welcome.exp;
    assert.ok(expX <= nowS() + 3);
    const fresh = claims(idY, { aud: AUD, iss: ISS, ttl: 600 });
    assert.deepEqual(await ask(y, 'token', { token: hs256(fresh, SECRET) }), { ok: true, exp: fresh.exp });

    const [reason] = await x.disconnects.waitFor(1, 9000);
    assert.equal(reason, 'io server disconnect');
    assert.ok(Date.now() >= (expX - 1) * 1000, 'disconnected before the token expired');
    const codes = x.security.map((e) => e.code);
    assert.deepEqual(codes, ['token_expiring', 'token_expired'], JSON.stringify(x.security));
    for (const e of x.security) {
      assert.equal(e.exp, expX);
      assert.equal(typeof e.message, 'string');
    }
    await sleep(1500);
    assert.ok(y.connected, 'the swapped tab was disconnected');
    assert.ok(!y.security.some((e) => e.code === 'token_expired'), JSON.stringify(y.security));
    await deliver(y, envelope(), [z], [y, z]);
  });

  it('the server exits 0 on SIGTERM, sanitizers quiet', T, async () => {
    closeAll();
    const s = srv;
    srv = null;
    await s.stop();
  });
});

// ==== development tokens ======================================================

describe('/session: development tokens (--dev)', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ testApp: false, extra: ['--jwt-secret', SECRET, '--dev', ...NO_LIMITS] });
  });
  after(async () => { await srv?.stop(); });

  it('GET /api/dev/token mints a token that connects with its device and fingerprint', T, async () => {
    const q = 'user=dev-u&session=dev-s&device=dev-d&fingerprint=dev-fp';
    const r = await fetch(`${srv.url}/api/dev/token?${q}`);
    assert.equal(r.status, 200);
    const { token, exp } = await r.json();
    assert.ok(exp > nowS() + 60, `exp ${exp}`);
    const auth = { token, device: { id: 'dev-d', fingerprint: 'dev-fp', type: 'browser' }, tab: { id: 'dev-t' }, proto: 2 };
    const t = await tab(srv.url, auth);
    assert.deepEqual([t.welcome.user, t.welcome.session, t.welcome.device], ['dev-u', 'dev-s', 'dev-d']);
    t.close();
    // the token is bound to the fingerprint it was minted for
    const other = await tryTab(srv.url, { ...auth, device: { ...auth.device, fingerprint: 'other' }, tab: { id: 'dev-t2' } });
    other.sock.close();
    assert.equal(other.ok, false);
    assert.equal(other.err.data?.code, 'fingerprint_mismatch');
  });

  it('missing or malformed parameters are 400', T, async () => {
    assert.equal((await fetch(`${srv.url}/api/dev/token?user=u&session=s`)).status, 400);
    assert.equal((await fetch(`${srv.url}/api/dev/token?user=u%20x&session=s&device=d`)).status, 400);
  });
});

// ==== connection state recovery is bound to the identity ========================

describe('/session: connection state recovery restores only the same tab of the same identity', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ testApp: false, extra: [...HS_FLAGS, ...NO_LIMITS] });
  });
  after(async () => { await srv?.stop(); });
  const mk = (user, session, device, tab) => ({ user, session, device, fingerprint: `fp-${device}`, tab });

  it('the same tab recovers its rooms and missed events; another identity with its pid gets nothing', T, async () => {
    const a1 = mk('rec-alice', 'rs1', 'rd1', 'rt1'), a2 = mk('rec-alice', 'rs1', 'rd1', 'rt2');
    const bob = mk('rec-bob', 'rs9', 'rd9', 'rt9');
    const t1 = await tab(srv.url, authFor(a1, goodToken(a1)), { transports: ['websocket'], reconnection: true });
    const t2 = await tab(srv.url, authFor(a2, goodToken(a2)), { transports: ['websocket'] });
    await deliver(t2, envelope({ id: 'r0' }), [t1], [t1, t2]); // t1 now has an offset
    const pid = t1._pid, offset = t1._lastOffset, oldId = t1.id;
    assert.ok(pid && offset, 'the client got a pid and an offset');
    // a stranger presenting alice's pid and offset with a valid token of its own
    t1.io.reconnection(false);
    t1.io.engine.close();
    await sleep(200);
    assert.deepEqual(await ask(t2, 'publish', envelope({ id: 'r1', body: 'secret' })), { ok: true, id: 'r1' });
    const b = openTab(srv.url, { ...authFor(bob, goodToken(bob)), pid, offset }, { transports: ['websocket'] });
    await b.welcomes.waitFor(1, 5000);
    assert.notEqual(b.id, oldId, 'a stranger must not take over alice\'s socket');
    assert.deepEqual(await ask(t2, 'publish', envelope({ id: 'r2', body: 'secret too' })), { ok: true, id: 'r2' });
    await sleep(300);
    assert.deepEqual(ids(b), [], `bob received ${JSON.stringify(b.events.all ?? ids(b))}`);
    b.close();
    // alice's own tab, with the same pid and offset, recovers what it missed
    // (a new client object cannot know it recovered: the server shows it by
    // giving back the old socket id and replaying the missed events)
    const back = openTab(srv.url, { ...authFor(a1, goodToken(a1)), pid, offset }, { transports: ['websocket'] });
    await back.welcomes.waitFor(1, 5000);
    assert.equal(back.id, oldId, 'the same tab recovers its socket');
    await within((async () => { while (!(ids(back).includes('r1') && ids(back).includes('r2'))) await sleep(10); })(), 5000, 'missed events');
    await deliver(t2, envelope({ id: 'r3' }), [back], [back, t2]);
    back.close();
    t1.close();
    t2.close();
  });
});

// ==== re-entering the namespace does not reset limits ===========================

describe('/session: limits survive leaving and re-entering the namespace', SKIP, () => {
  let srv;
  before(async () => {
    const flags = {};
    for (let i = 0; i < NO_LIMITS.length; i += 2) flags[NO_LIMITS[i]] = NO_LIMITS[i + 1];
    Object.assign(flags, { '--limit-events-per-socket': '5', '--limit-strikes': '0', '--limit-queue': '0' });
    srv = await startServer({ testApp: false, extra: [...HS_FLAGS, ...Object.entries(flags).flat()] });
  });
  after(async () => { await srv?.stop(); });

  it('a tab that disconnects and reconnects on the same connection keeps its spent event bucket', T, async () => {
    const id = { user: 'lim-u', session: 'lim-s', device: 'lim-d', fingerprint: 'fp-lim', tab: 'lim-t' };
    const auth = authFor(id, goodToken(id));
    const { ws, reply } = await rawTab(srv.port, auth);
    assert.match(reply, /^40\/session,\{"sid"/);
    const publish = async (n, eid) => {
      ws.send(`42/session,${n}["publish",${JSON.stringify(envelope({ id: eid }))}]`);
      for (;;) {
        const p = await ws.next({ skipPings: true });
        if (p.startsWith(`43/session,${n}`)) return JSON.parse(p.slice(`43/session,${n}`.length))[0];
      }
    };
    const acks = [];
    for (let i = 0; i < 6; i++) acks.push(await publish(i, `l${i}`));
    assert.equal(acks.filter((a) => a.ok).length, 5, JSON.stringify(acks));
    assert.equal(acks[5].error?.code, 'throttled');
    // leave and re-enter /session over the same Engine.IO connection
    ws.send('41/session,');
    ws.send(`40/session,${JSON.stringify(auth)}`);
    for (;;) if ((await ws.next({ skipPings: true })).startsWith('40/session,{"sid"')) break;
    const again = await publish(99, 'l-after');
    assert.equal(again.ok, false, `the bucket was refilled by reconnecting: ${JSON.stringify(again)}`);
    assert.equal(again.error.code, 'throttled');
    ws.close();
  });

  it('a connection that keeps re-entering namespaces is closed', T, async () => {
    const id = { user: 'lim-u2', session: 'lim-s', device: 'lim-d2', fingerprint: 'fp-lim2', tab: 'lim-t2' };
    const auth = authFor(id, goodToken(id));
    const { ws } = await rawTab(srv.port, auth);
    for (let i = 0; i < 40; i++) {
      ws.send('41/session,');
      ws.send(`40/session,${JSON.stringify(auth)}`);
    }
    await ws.waitClose(5000);
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    assert.match(m, /tabsync_errors_total\{kind="sio_connect_flood"\} [1-9]/);
  });
});

// ==== registry entries of different users never collide ========================

describe('/session: two users with the same session, device and tab ids keep two registry entries', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ testApp: false, extra: [...HS_FLAGS, ...NO_LIMITS, '--admin-token', ADMIN] });
  });
  after(async () => { await srv?.stop(); });

  it('bob leaving does not remove alice', T, async () => {
    const same = { session: 'same-s', device: 'same-d', fingerprint: 'fp-same', tab: 'same-t' };
    const a = { ...same, user: 'col-alice' }, b = { ...same, user: 'col-bob' };
    const ta = await tab(srv.url, authFor(a, goodToken(a)));
    const tb = await tab(srv.url, authFor(b, goodToken(b)));
    const users = async () => {
      const r = await admin(srv.url, '/api/admin/sessions/same-s', ADMIN);
      assert.equal(r.status, 200);
      return JSON.parse(r.text).tabs.map((t) => `${t.user}/${t.device}/${t.tab}`).sort();
    };
    assert.deepEqual(await users(), ['col-alice/same-d/same-t', 'col-bob/same-d/same-t']);
    tb.close();
    await sleep(300);
    assert.deepEqual(await users(), ['col-alice/same-d/same-t']);
    ta.close();
  });
});

// ==== adaptive throttling of presence and telemetry ===========================

describe('/session: a session flooded with presence gets it coalesced per stream; other traffic untouched', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ testApp: false, extra: [...HS_FLAGS, ...NO_LIMITS] });
  });
  after(async () => { await srv?.stop(); });

  it('quiet: every presence envelope is relayed; flooded: windows hold them and only the latest of each stream goes out', T, async () => {
    const tx = await connectTab(srv.url, ident('ada', 'as', 'ad', 'tx'));
    const rx = await connectTab(srv.url, ident('ada', 'as', 'ad', 'rx'));
    // quiet: a few, spaced out, all arrive
    for (let i = 0; i < 3; i++) {
      await ask(tx, 'publish', envelope({ id: `q-${i}`, prio: 'presence', type: 'cursor' }));
      await sleep(120);
    }
    await rx.events.waitFor(3, 3000);
    assert.deepEqual(ids(rx), ['q-0', 'q-1', 'q-2']);
    clearEvents([rx]);
    // flooded: 300 cursor moves and 300 typing reports as fast as they go,
    // and 20 ordinary events among them
    const jobs = [];
    for (let i = 0; i < 300; i++) {
      jobs.push(ask(tx, 'publish', envelope({ id: `c-${i}`, prio: 'presence', type: 'cursor', body: i })));
      jobs.push(ask(tx, 'publish', envelope({ id: `t-${i}`, prio: 'telemetry', type: 'typing', body: i })));
      if (i % 15 === 0) jobs.push(ask(tx, 'publish', envelope({ id: `e-${i}` })));
    }
    const acks = await Promise.all(jobs);
    assert.ok(acks.every((a) => a.ok), 'every publish is acked: coalescing is not a refusal');
    await sleep(1500); // the windows close (at most 1 s)
    const got = ids(rx);
    const cursor = got.filter((x) => x.startsWith('c-')), typing = got.filter((x) => x.startsWith('t-'));
    const events = got.filter((x) => x.startsWith('e-'));
    assert.deepEqual(events, Array.from({ length: 20 }, (_, k) => `e-${k * 15}`), 'events are never held or coalesced');
    assert.ok(cursor.length < 150, `cursor moves relayed: ${cursor.length} of 300 (coalesced)`);
    assert.ok(typing.length < 150, `typing reports relayed: ${typing.length} of 300`);
    assert.equal(cursor.at(-1), 'c-299', 'the latest of each stream is delivered');
    assert.equal(typing.at(-1), 't-299');
    const inOrder = (xs) => xs.every((x, i) => i === 0 || Number(x.slice(2)) > Number(xs[i - 1].slice(2)));
    assert.ok(inOrder(cursor) && inOrder(typing), 'a stream stays in order');
    const m = await httpGet(`${srv.url}/metrics`);
    const num = (re) => Number((m.text.match(re) || [])[1]);
    assert.ok(num(/^tabsync_session_coalesced_total (\d+)/m) > 0, 'coalesced counted');
    assert.ok(num(/^tabsync_session_coalesce_windows_total (\d+)/m) > 0, 'windows counted');
    // the load is gone: windows narrow and close, presence flows at once again
    await sleep(1200);
    clearEvents([rx]);
    await ask(tx, 'publish', envelope({ id: 'after', prio: 'presence', type: 'cursor' }));
    await rx.events.waitFor(1, 500);
    assert.deepEqual(ids(rx), ['after']);
  });
});
