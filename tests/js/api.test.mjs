// The backend HTTP API (docs/PROTOCOL.md "Backends (HTTP)") and the admin
// routes over a session's history, against a real tabsyncd with
// --jwt-secret, --admin-token, --publisher-token and --store-sqlite:
//  - a backend publish reaches every connected v3 tab of its session as an
//    `event` with seq (from the backend's `server` device), and nothing of it
//    reaches another session of the user or another user's session of the
//    same id; a batch keeps its order;
//  - a backend state change reaches the tabs as `change`; GET state and GET
//    events answer what a tab's `sync` answers;
//  - exactly-once through the API: client+mut resent is a duplicate, logged
//    once, delivered once;
//  - 401 without the token, with a wrong one, another scheme; the publisher
//    token does not open the admin routes and the admin token does not open
//    the backend routes; 404 when --publisher-token is unset;
//  - 400 for bad JSON and bad ids, 405 for a wrong method, 404 for an
//    unknown resource;
//  - the admin events (audit trail) and health routes.
// Every protocol answer of the API is validated against
// docs/protocol/session-v3.schema.json, as the tabs' are in history.test.mjs.
//
// tabsyncd only (skipped with TS_TARGET=node).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, IS_NODE, sleep } from './harness.mjs';
import { claims, hs256, authFor, tab, ask, itemId, TAB_KEYS, httpRequest } from './session-helpers.mjs';
import { ackError, schemaError } from './history-helpers.mjs';

const T = { timeout: 20000 };
const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference has no /session history)' } : {};

const SECRET = crypto.randomBytes(32).toString('hex');
const ADMIN = `adm-${crypto.randomBytes(16).toString('hex')}`;
const PUB = `pub-${crypto.randomBytes(16).toString('hex')}`;
const NO_LIMITS = [
  '--limit-handshakes-per-ip', '0', '--limit-conns-per-ip', '0',
  '--limit-conns-per-user', '0', '--limit-events-per-socket', '0',
  '--limit-bytes-per-socket', '0', '--limit-strikes', '0',
];

const ident = (user, session, device, tabId) =>
  ({ user, session, device, fingerprint: `fp:${user}:${device}`, tab: tabId });
const auth3 = (id) => authFor(id, hs256(claims(id, { ttl: 3600 }), SECRET), { proto: 3 });

/**
 * An HTTP request; resolves to { status, headers, text, json }. body: a
 * string sent as it is, or a value sent as JSON.
 */
function request(url, { method = 'GET', token, headers = {}, body } = {}) {
  const h = { ...headers };
  if (token !== undefined) h.Authorization = `Bearer ${token}`;
  let data;
  if (body !== undefined) {
    data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    h['Content-Type'] = 'application/json';
    h['Content-Length'] = String(data.length);
  }
  return httpRequest(url, { method, headers: h, data });
}

/** Records every `change` a tab receives (session-helpers records `event`s). */
function changes(sock) {
  const got = [];
  sock.on('change', (c) => got.push(c));
  return got;
}

async function waitFor(pred, ms, what) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timeout (${ms} ms): ${what}`);
    await sleep(10);
  }
}

/** The document a sync answer with a snapshot describes: the snapshot's
 * state with the effects of the change entries after it (top-level paths). */
function documentOf(answer) {
  const doc = structuredClone(answer.snapshot.state);
  for (const e of answer.entries) {
    if (e.kind !== 'change') continue;
    for (const f of e.effects) {
      const key = f.path.slice(1);
      assert.ok(!key.includes('/'), `a top-level path: ${f.path}`);
      if (f.op === 'set') doc[key] = f.value;
      else delete doc[key];
    }
  }
  return doc;
}

let n = 0;
const envelope = (fields = {}) => {
  n += 1;
  return { v: 3, type: 'order.confirmed', id: `o-${n}`, body: { order: n }, ...fields };
};

describe('backend HTTP API: publish, state, events', SKIP, () => {
  let srv; let dir; let url;
  let a1; let a2; let a3; let b1; // alice s1 x2, alice s2, bob s1
  let a1Changes; let a2Changes; let a3Changes; let b1Changes;
  const tabs = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsync-api-'));
    srv = await startServer({
      testApp: false,
      extra: ['--jwt-secret', SECRET, '--admin-token', ADMIN, '--publisher-token', PUB,
        '--store-sqlite', path.join(dir, 'api.db'), ...NO_LIMITS],
    });
    url = srv.url;
    a1 = await tab(url, auth3(ident('alice', 's1', 'laptop', 'a1')));
    a2 = await tab(url, auth3(ident('alice', 's1', 'phone', 'a2')));
    a3 = await tab(url, auth3(ident('alice', 's2', 'laptop', 'a3')));
    b1 = await tab(url, auth3(ident('bob', 's1', 'laptop', 'b1')));
    tabs.push(a1, a2, a3, b1);
    a1Changes = changes(a1);
    a2Changes = changes(a2);
    a3Changes = changes(a3);
    b1Changes = changes(b1);
  });
  after(async () => {
    for (const t of tabs) t.close();
    await srv?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const pub = (user, session, body, query = '') =>
    request(`${url}/api/sessions/${user}/${session}/publish${query}`, { method: 'POST', token: PUB, body });

  it('the welcome of a v3 tab says where the history is', T, () => {
    assert.match(a1.welcome.epoch, /^[0-9a-f]{16}$/);
    assert.equal(a1.welcome.proto, 3);
  });

  it('a backend publish reaches every tab of the session as an event with seq, and no other session or user', T, async () => {
    const env = envelope();
    const r = await pub('alice', 's1', env, '?as=orders');
    assert.equal(r.status, 200, r.text);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.equal(r.json.ok, true, r.text);
    assert.equal(r.json.id, env.id);
    assert.equal(ackError('publish', env, r.json), null);
    assert.ok(Number.isInteger(r.json.seq) && r.json.seq >= 1, r.text);
    assert.ok(Number.isInteger(r.json.ts), r.text);
    await a1.events.waitFor(1);
    await a2.events.waitFor(1);
    for (const t of [a1, a2]) {
      const e = t.events[0];
      assert.equal(e.kind, 'event');
      assert.equal(e.id, env.id);
      assert.equal(e.type, 'order.confirmed');
      assert.deepEqual(e.body, env.body);
      assert.equal(e.seq, r.json.seq);
      assert.equal(e.ts, r.json.ts);
      assert.deepEqual(e.from, { user: 'alice', device: 'server', tab: 'orders' });
    }
    await sleep(300);
    assert.equal(a3.events.length, 0, 'another session of the same user');
    assert.equal(b1.events.length, 0, 'another user with the same session id');
  });

  it('an array of envelopes is one batch answer, delivered in order with consecutive seqs', T, async () => {
    const before1 = a1.events.length;
    const envs = [envelope(), envelope(), envelope()];
    const r = await pub('alice', 's1', envs);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true, r.text);
    assert.equal(r.json.failed, 0);
    assert.equal(ackError('publish', envs, r.json), null);
    assert.equal(r.json.results.length, 3);
    const seqs = r.json.results.map((x) => x.seq);
    assert.deepEqual(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2]);
    await a1.events.waitFor(before1 + 3);
    const got = a1.events.slice(before1);
    assert.deepEqual(got.map((e) => e.id), envs.map((e) => e.id));
    assert.deepEqual(got.map((e) => e.seq), seqs);
    assert.deepEqual(got[0].from, { user: 'alice', device: 'server', tab: 'backend' }, 'default publisher');
  });

  it('a refused envelope is the protocol\'s answer with 200, and reaches nobody', T, async () => {
    const before1 = a1.events.length;
    const r = await pub('alice', 's1', { v: 3, type: 'bad type!', id: 'x-1', body: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, false);
    assert.equal(r.json.error.code, 'bad_envelope');
    await sleep(200);
    assert.equal(a1.events.length, before1);
  });

  it('a backend state change reaches the tabs as change; GET state answers what sync answers', T, async () => {
    const change = { v: 3, id: 'c-1', merge: { cart: { items: 3 } } };
    const r = await request(`${url}/api/sessions/alice/s1/state?as=carts`, { method: 'POST', token: PUB, body: change });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true, r.text);
    assert.equal(ackError('state', change, r.json), null);
    assert.ok(Number.isInteger(r.json.ver) && r.json.ver >= 1);
    assert.deepEqual(r.json.effects, [{ op: 'set', path: '/cart', value: { items: 3 } }]);
    await waitFor(() => a1Changes.length >= 1 && a2Changes.length >= 1, 5000, 'change on a1 and a2');
    for (const c of [a1Changes[0], a2Changes[0]]) {
      assert.equal(c.kind, 'change');
      assert.equal(c.id, 'c-1');
      assert.equal(c.seq, r.json.seq);
      assert.equal(c.ver, r.json.ver);
      assert.deepEqual(c.effects, r.json.effects);
      assert.deepEqual(c.from, { user: 'alice', device: 'server', tab: 'carts' });
    }
    await sleep(200);
    assert.deepEqual(a3Changes, [], 'another session of the same user');
    assert.deepEqual(b1Changes, [], 'another user with the same session id');

    const g = await request(`${url}/api/sessions/alice/s1/state`, { token: PUB });
    assert.equal(g.status, 200, g.text);
    assert.equal(g.json.ok, true);
    assert.equal(g.json.reset, true);
    assert.equal(g.json.reason, 'initial');
    assert.equal(schemaError('syncAck', g.json), null);
    assert.equal(g.json.epoch, a1.welcome.epoch);
    assert.ok(g.json.snapshot && typeof g.json.snapshot.state === 'object', g.text);
    // the same answer as a tab's sync {}: where the snapshot is cut may
    // differ (each event loop keeps its own copy), the document may not
    const viaTab = await ask(a1, 'sync', {});
    assert.equal(g.json.epoch, viaTab.epoch);
    assert.equal(g.json.seq, viaTab.seq);
    assert.deepEqual(documentOf(g.json), documentOf(viaTab), 'GET state = a tab\'s sync {}');
    assert.equal(g.json.seq, r.json.seq);
    assert.deepEqual(documentOf(g.json).cart, { items: 3 }, 'the snapshot and its entries hold the change');
  });

  it('GET events answers what sync answers, pages included', T, async () => {
    const epoch = a1.welcome.epoch;
    const all = await request(`${url}/api/sessions/alice/s1/events?after=0&epoch=${epoch}`, { token: PUB });
    assert.equal(all.status, 200, all.text);
    assert.deepEqual(all.json, await ask(a1, 'sync', { after: 0, epoch }));
    assert.equal(all.json.more, false);
    assert.equal(schemaError('syncAck', all.json), null);
    assert.equal(all.json.entries.length, 5, all.text); // 1 + 3 published, 1 change
    assert.deepEqual(all.json.entries.map((e) => e.seq), all.json.entries.map((_, i) => i + 1));
    const page = await request(`${url}/api/sessions/alice/s1/events?after=1&epoch=${epoch}&limit=2`, { token: PUB });
    assert.equal(page.status, 200, page.text);
    assert.deepEqual(page.json, await ask(a1, 'sync', { after: 1, epoch, limit: 2 }));
    assert.deepEqual(page.json.entries.map((e) => e.seq), [2, 3]);
    assert.equal(page.json.more, true);
    // another epoch: the answer starts from a snapshot, as sync says
    const other = await request(`${url}/api/sessions/alice/s1/events?after=3&epoch=0123456789abcdef`, { token: PUB });
    assert.equal(other.json.reset, true);
    assert.equal(other.json.reason, 'epoch');
    // bob's s1 is another history
    const bob = await request(`${url}/api/sessions/bob/s1/events?after=0&epoch=${b1.welcome.epoch}`, { token: PUB });
    assert.equal(bob.status, 200, bob.text);
    assert.deepEqual(bob.json.entries, []);
    // a value sync refuses comes back as its answer
    const big = await request(`${url}/api/sessions/alice/s1/events?after=0&limit=5000`, { token: PUB });
    assert.equal(big.status, 200, big.text);
    assert.equal(big.json.ok, false);
    assert.equal(big.json.error.code, 'bad_sync');
  });

  it('exactly-once through the API: client+mut resent is a duplicate, logged and delivered once', T, async () => {
    const b2 = b1.events.length;
    const env = envelope({ client: 'orders-svc', mut: 7 });
    const first = await pub('bob', 's1', env);
    assert.equal(first.json.ok, true, first.text);
    const again = await pub('bob', 's1', env);
    assert.equal(again.status, 200);
    assert.equal(again.json.ok, true, again.text);
    assert.equal(again.json.duplicate, true, again.text);
    assert.equal(again.json.seq, first.json.seq);
    const change = { v: 3, id: 'c-bob', client: 'orders-svc', mut: 8, merge: { n: 1 } };
    const s1 = await request(`${url}/api/sessions/bob/s1/state`, { method: 'POST', token: PUB, body: change });
    assert.equal(s1.json.ok, true, s1.text);
    const s2 = await request(`${url}/api/sessions/bob/s1/state`, { method: 'POST', token: PUB, body: change });
    assert.equal(s2.json.ok, true, s2.text);
    assert.equal(s2.json.duplicate, true, s2.text);
    assert.equal(s2.json.ver, s1.json.ver);
    await sleep(300);
    assert.deepEqual(b1.events.slice(b2).map((e) => e.id), [env.id], 'delivered once');
    const log = await request(`${url}/api/sessions/bob/s1/events?after=0&epoch=${b1.welcome.epoch}`, { token: PUB });
    assert.deepEqual(log.json.entries.map((e) => e.id), [env.id, 'c-bob'], 'logged once each');
    const state = await request(`${url}/api/sessions/bob/s1/state`, { token: PUB });
    assert.deepEqual(documentOf(state.json), { n: 1 });
    assert.equal(state.json.snapshot.ver + state.json.entries.filter((e) => e.kind === 'change').length, s1.json.ver);
  });

  it('401 without the publisher token, with a wrong one, or another scheme; the admin token is not one', T, async () => {
    const p = `${url}/api/sessions/alice/s1/events?after=0`;
    const cases = [
      {}, { Authorization: `Bearer ${PUB}x` }, { Authorization: `Bearer ${PUB.slice(0, -1)}` },
      { Authorization: 'Bearer ' }, { Authorization: PUB }, { Authorization: `Basic ${Buffer.from(`x:${PUB}`).toString('base64')}` },
      { Authorization: `Bearer ${ADMIN}` },
    ];
    for (const headers of cases) {
      const r = await request(p, { headers });
      assert.equal(r.status, 401, `${JSON.stringify(headers)}: ${r.status} ${r.text}`);
      assert.match(String(r.headers['www-authenticate']), /Bearer/);
      assert.ok(r.json?.error, r.text);
      assert.ok(!r.text.includes('order'), 'nothing leaks in a 401');
    }
    const post = await request(`${url}/api/sessions/alice/s1/publish`, { method: 'POST', token: ADMIN, body: envelope() });
    assert.equal(post.status, 401);
  });

  it('the publisher token does not open the admin routes', T, async () => {
    for (const p of ['/api/admin/sessions/s1', '/api/admin/users/alice',
      '/api/admin/sessions/s1/events?user=alice', '/api/admin/sessions/s1/health?user=alice']) {
      const r = await request(`${url}${p}`, { token: PUB });
      assert.equal(r.status, 401, `${p}: ${r.status} ${r.text}`);
    }
  });

  it('400 for bad JSON, an empty body and bad ids; 405 for a wrong method; 404 for no such resource', T, async () => {
    const post = (p, body) => request(`${url}${p}`, { method: 'POST', token: PUB, body });
    for (const body of ['{"v":3,', 'nope', '[1,', '{"a":1}}']) {
      const r = await post('/api/sessions/alice/s1/publish', body);
      assert.equal(r.status, 400, `${body}: ${r.status} ${r.text}`);
      assert.match(r.json?.error ?? '', /JSON/, r.text);
    }
    const empty = await request(`${url}/api/sessions/alice/s1/state`, { method: 'POST', token: PUB, headers: { 'Content-Length': '0' } });
    assert.equal(empty.status, 400, empty.text);
    assert.ok(empty.json?.error, empty.text);
    for (const p of ['/api/sessions/al%20ice/s1/publish', '/api/sessions/alice/s%2F1/publish',
      `/api/sessions/${'u'.repeat(129)}/s1/publish`, '/api/sessions/alice/s1/publish?as=a%20b',
      '/api/sessions/alice/s1/publish?as=']) {
      const r = await post(p, envelope());
      assert.equal(r.status, 400, `${p}: ${r.status} ${r.text}`);
      assert.ok(r.json?.error, r.text);
    }
    // a backend writes into the session it names: not the user's or a device's rooms
    for (const body of [envelope({ to: 'user' }), envelope({ to: 'device' }), [envelope(), envelope({ to: 'user' })]]) {
      const r = await post('/api/sessions/alice/s1/publish', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.status} ${r.text}`);
      assert.match(r.json?.error ?? '', /session/, r.text);
    }
    for (const q of ['after=abc', 'after=-1', 'limit=1e3', 'epoch=xyz']) {
      const r = await request(`${url}/api/sessions/alice/s1/events?${q}`, { token: PUB });
      assert.equal(r.status, 400, `${q}: ${r.status} ${r.text}`);
    }
    const get = await request(`${url}/api/sessions/alice/s1/publish`, { token: PUB });
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    const put = await request(`${url}/api/sessions/alice/s1/state`, { method: 'PUT', token: PUB, body: {} });
    assert.equal(put.status, 405);
    assert.equal(put.headers.allow, 'GET, POST');
    for (const p of ['/api/sessions/alice/s1/other', '/api/sessions/alice/s1', '/api/sessions/alice/s1/events/x']) {
      const r = await request(`${url}${p}`, { token: PUB });
      assert.equal(r.status, 404, `${p}: ${r.status} ${r.text}`);
    }
    // an ephemeral envelope (presence) is relayed to the session's tabs, not logged
    const eph = envelope({ prio: 'presence', type: 'backend.alive' });
    const before1 = a1.events.length;
    const pr = await post('/api/sessions/alice/s1/publish', eph);
    assert.equal(pr.status, 200, pr.text);
    assert.deepEqual(pr.json, { ok: true, id: eph.id });
    await a1.events.waitFor(before1 + 1);
    assert.equal(a1.events.at(-1).id, eph.id);
    assert.equal(a1.events.at(-1).seq, undefined);
    // percent-encoded ids of the alphabet are the ids
    const enc = await request(`${url}/api/sessions/${encodeURIComponent('carol@x.org')}/s1/publish?as=${encodeURIComponent('a:b')}`,
      { method: 'POST', token: PUB, body: envelope() });
    assert.equal(enc.status, 200, enc.text);
    assert.equal(enc.json.ok, true, enc.text);
  });

  it('admin: GET /api/admin/sessions/<sid>/events is the audit trail of a user\'s session', T, async () => {
    const r = await request(`${url}/api/admin/sessions/s1/events?user=alice&since=2&limit=2`, { token: ADMIN });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true);
    assert.equal(r.json.reset, undefined, 'since is in the current epoch');
    assert.equal(schemaError('syncAck', r.json), null);
    assert.deepEqual(r.json.entries.map((e) => e.seq), [3, 4]);
    assert.deepEqual(r.json, await ask(a1, 'sync', { after: 2, epoch: a1.welcome.epoch, limit: 2 }));
    const all = await request(`${url}/api/admin/sessions/s1/events?user=alice`, { token: ADMIN });
    assert.equal(all.json.entries[0].seq, 1);
    const bob = await request(`${url}/api/admin/sessions/s1/events?user=bob`, { token: ADMIN });
    assert.deepEqual(bob.json.entries.map((e) => e.kind), ['event', 'change'], 'bob\'s history only');
    assert.equal(bob.json.entries[1].id, 'c-bob');
    const none = await request(`${url}/api/admin/sessions/s1/events`, { token: ADMIN });
    assert.equal(none.status, 400);
    const bad = await request(`${url}/api/admin/sessions/s1/events?user=alice&since=x`, { token: ADMIN });
    assert.equal(bad.status, 400);
    const noAuth = await request(`${url}/api/admin/sessions/s1/events?user=alice`);
    assert.equal(noAuth.status, 401);
    const other = await request(`${url}/api/admin/users/alice/events`, { token: ADMIN });
    assert.equal(other.status, 404);
  });

  it('admin: GET /api/admin/sessions/<sid>/health sums up the history and the user\'s tabs of it', T, async () => {
    const r = await request(`${url}/api/admin/sessions/s1/health?user=alice`, { token: ADMIN });
    assert.equal(r.status, 200, r.text);
    const h = r.json;
    assert.equal(h.ok, true);
    assert.equal(h.user, 'alice');
    assert.equal(h.session, 's1');
    assert.equal(h.epoch, a1.welcome.epoch);
    const log = await ask(a1, 'sync', { after: 0, epoch: h.epoch });
    assert.equal(h.seq, log.seq);
    for (const k of ['ver', 'snapshot_seq', 'trimmed_upto', 'entries_since_snapshot'])
      assert.ok(Number.isInteger(h[k]), `${k} in ${r.text}`);
    // this loop's cache of the session (the store's numbers above are fresh)
    assert.equal(typeof h.cache?.loaded, 'boolean', r.text);
    for (const k of ['ver', 'state_bytes', 'queued', 'in_flight'])
      assert.ok(Number.isInteger(h.cache[k]), `cache.${k} in ${r.text}`);
    assert.ok(h.ver >= 1);
    assert.deepEqual(h.tabs.map((t) => itemId(t, TAB_KEYS)).sort(), ['a1', 'a2'], 'alice\'s tabs of s1, not bob\'s');
    assert.deepEqual(h.devices.map((d) => d.device).sort(), ['laptop', 'phone']);
    const missing = await request(`${url}/api/admin/sessions/s1/health`, { token: ADMIN });
    assert.equal(missing.status, 400);
  });

  it('the registry routes answer as before (moved to the daemon)', T, async () => {
    const r = await request(`${url}/api/admin/sessions/s1`, { token: ADMIN });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.tabs.map((t) => itemId(t, TAB_KEYS)).sort(), ['a1', 'a2', 'b1']);
    const bad = await request(`${url}/api/admin/sessions/s%201`, { token: ADMIN });
    assert.equal(bad.status, 400);
    const post = await request(`${url}/api/admin/sessions/s1`, { method: 'POST', token: ADMIN, body: {} });
    assert.equal(post.status, 405);
  });

  it('the server exits 0 on SIGTERM, sanitizers quiet', T, async () => {
    for (const t of tabs) t.close();
    const s = srv;
    srv = null;
    await s.stop();
  });
});

describe('backend HTTP API: off without --publisher-token', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ testApp: false, extra: ['--jwt-secret', SECRET, '--admin-token', ADMIN, ...NO_LIMITS] });
  });
  after(async () => { await srv?.stop(); });

  it('every backend path is 404, with or without a token; the admin API still works', T, async () => {
    for (const [method, p] of [['POST', '/api/sessions/u/s/publish'], ['POST', '/api/sessions/u/s/state'],
      ['GET', '/api/sessions/u/s/state'], ['GET', '/api/sessions/u/s/events?after=0']]) {
      for (const token of [undefined, PUB, ADMIN]) {
        const r = await request(`${srv.url}${p}`, { method, token, body: method === 'POST' ? envelope() : undefined });
        assert.equal(r.status, 404, `${method} ${p}: ${r.status} ${r.text}`);
        assert.match(r.json?.error ?? '', /--publisher-token/);
      }
    }
    const a = await request(`${srv.url}/api/admin/sessions/s`, { token: ADMIN });
    assert.equal(a.status, 200, a.text);
  });
});

describe('tabsyncd refuses one token for both APIs', SKIP, () => {
  it('--publisher-token equal to --admin-token stops the start with exit 2', T, async () => {
    await assert.rejects(
      startServer({ testApp: false, extra: ['--jwt-secret', SECRET, '--admin-token', ADMIN, '--publisher-token', ADMIN] }),
      /is the same as --admin-token/,
    );
  });
});
