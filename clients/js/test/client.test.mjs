// @tabsync/client in Node against a real tabsyncd (tests/js/harness.mjs
// starts it: $TABSYNCD, else build/tabsyncd): state sync between two
// clients, events, elections (one leader, whileLeader with its term and
// signal, a closed leader replaced, tasks), presence, reconnection after a
// server restart and after the browser's offline event, fresh tokens on
// every reconnect, refusals that stop the retries.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
process.env.TABSYNCD ??= path.join(HERE, '..', '..', '..', 'build', 'tabsyncd');

const { startServer, sleep } = await import('../../../tests/js/harness.mjs');
const { hs256, claims } = await import('../../../tests/js/session-helpers.mjs');
const { createClient } = await import('../src/index.js');

const SECRET = crypto.randomBytes(32).toString('hex');
const NO_LIMITS = [
  '--limit-handshakes-per-ip', '0', '--limit-conns-per-ip', '0', '--limit-conns-per-user', '0',
  '--limit-events-per-socket', '0', '--limit-bytes-per-socket', '0', '--limit-strikes', '0',
];
const LEASE = 1500;
const T = { timeout: 60000 };

const uniq = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`;

/** A token for whoever asks (the context the library passes). */
function tokenFor(user, session, { ttl = 600 } = {}) {
  const calls = [];
  const fn = ({ device, tab, reason }) => {
    calls.push(reason);
    assert.equal(typeof tab, 'string');
    return hs256(claims({ user, session, device: device.id, fingerprint: device.fingerprint }, { ttl }), SECRET);
  };
  fn.calls = calls;
  return fn;
}

/** Polls pred until it is truthy (returns its value) or throws after ms. */
async function until(pred, ms = 8000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout: ${what}`);
    await sleep(20);
  }
}

/** Records every emission of `name` on a client. */
function record(ts, name) {
  const got = [];
  ts.on(name, (a) => got.push(a));
  return got;
}

describe('@tabsync/client against tabsyncd', () => {
  let server;
  let dir;
  const clients = [];
  const open = (id, opts = {}, url = server.url) => {
    const token = tokenFor(id.user, id.session);
    const ts = createClient({
      url,
      token,
      device: { id: id.device, fingerprint: `fp-${id.device}` },
      storage: 'memory',
      name: uniq('db'),
      reconnect: { minDelayMs: 100, maxDelayMs: 400, jitter: 0.2 },
      ...opts,
    });
    ts.tokenCalls = token.calls;
    clients.push(ts);
    return ts;
  };
  const start = (extra = []) => startServer({
    extra: ['--jwt-secret', SECRET, ...NO_LIMITS, '--elect-lease', String(LEASE), '--store-sqlite', path.join(dir, 'db.sqlite'), ...extra],
  });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsync-client-'));
    server = await start();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('two clients of one session sync state', T, async () => {
    const s = uniq('s');
    const a = open({ user: 'u1', session: s, device: 'devA' });
    const b = open({ user: 'u1', session: s, device: 'devB' });
    await Promise.all([a.ready, b.ready]);
    assert.equal(a.user, 'u1');
    assert.equal(a.session, s);
    assert.equal(a.connection.status, 'online');
    const seen = [];
    b.subscribe('/title', (v, info) => seen.push([v, info.source]));
    const ch = a.update([{ op: 'add', path: '/title', value: 'Groceries' }]);
    assert.equal(a.get('/title'), 'Groceries', 'optimistic');
    const done = await ch.done;
    assert.equal(done.status, 'confirmed');
    await until(() => b.get('/title') === 'Groceries', 5000, 'B sees the title');
    assert.deepEqual(seen.at(-1), ['Groceries', 'remote']);
    const mine = b.update({ merge: { count: 2 } });
    assert.equal(b.get('/count'), 2, 'optimistic');
    await until(() => a.get('/count') === 2, 5000, 'A sees the merge');
    await mine.done; // A may see it before B has its answer
    assert.equal(a.confirmed.ver, b.confirmed.ver);
    assert.deepEqual(a.state, b.state);
    assert.equal(typeof a.clientId, 'string');
  });

  it('subscribe and update work before the storage is open (applied once it is)', T, async () => {
    const s = uniq('s');
    const a = open({ user: 'u1', session: s, device: 'devA' });
    const seen = [];
    a.subscribe('/early', (v, info) => seen.push([v, info.source]));
    assert.equal(a.get('/early'), undefined);
    assert.deepEqual(a.get(''), {});
    const ch = a.update({ merge: { early: 1 } });
    assert.equal(ch.status, 'pending');
    assert.throws(() => a.update('nonsense'), TypeError);
    await a.opened;
    assert.equal(a.get('/early'), 1, 'applied at open');
    assert.deepEqual(seen[0], [1, 'local']);
    const done = await ch.done;
    assert.equal(done, ch);
    assert.equal(done.status, 'confirmed');
    assert.ok(Number.isInteger(done.mut) && done.result.ver >= 1);
    assert.equal(JSON.parse(JSON.stringify(done)).status, 'confirmed');
  });

  it('events published arrive at the other tab, with seq for history', T, async () => {
    const s = uniq('s');
    const a = open({ user: 'u1', session: s, device: 'devA' }, { elect: false });
    const b = open({ user: 'u1', session: s, device: 'devB' }, { elect: false });
    await Promise.all([a.ready, b.ready]);
    const got = record(b, 'event');
    const ack = await a.publish('chat.msg', { text: 'hi' }, { cid: 'corr-1' });
    assert.equal(ack.ok, true);
    assert.ok(ack.seq > 0);
    await until(() => got.some((e) => e.type === 'chat.msg'), 5000, 'B gets the event');
    const e = got.find((x) => x.type === 'chat.msg');
    assert.deepEqual(e.body, { text: 'hi' });
    assert.equal(e.seq, ack.seq);
    assert.equal(e.cid, 'corr-1');
    assert.equal(e.from.device, 'devA');
    // ephemeral: no seq
    await a.publish('cursor', { x: 1 }, { prio: 'telemetry' });
    await until(() => got.some((x) => x.type === 'cursor'), 5000, 'telemetry arrives');
    assert.equal(got.find((x) => x.type === 'cursor').seq, undefined);
    assert.ok(a.logs.some((l) => l.cid === 'corr-1' && l.dir === 'out'), 'the log names the cid');
  });

  it('elections: one leader; whileLeader runs with the term and aborts on resign; a closed leader is replaced', T, async () => {
    const s = uniq('s');
    const tabs = ['devA', 'devB', 'devC'].map((d) => open({ user: 'u2', session: s, device: d }));
    await Promise.all(tabs.map((t) => t.ready));
    const runs = new Map(tabs.map((t) => [t, []]));
    for (const t of tabs) {
      t.election.whileLeader('session', ({ term, signal }) => {
        const run = { term, aborted: null };
        runs.get(t).push(run);
        signal.addEventListener('abort', () => { run.aborted = signal.reason ?? true; });
      });
    }
    const leaders = () => tabs.filter((t) => !t.closing && t.election.isLeader());
    await until(() => leaders().length === 1, 8000, 'one leader');
    let leader = leaders()[0];
    const term1 = leader.election.term();
    assert.ok(term1 > 0);
    assert.equal(runs.get(leader).at(-1).term, term1, 'whileLeader ran with the term');
    for (const t of tabs) {
      assert.equal(t.election.view().leader.tab, leader.tab, 'every tab agrees on the leader');
      assert.equal(t.election.isLeader(), t === leader);
    }

    // resign: the run aborts, someone else leads with a later term
    const ack = await leader.election.resign();
    assert.equal(ack.ok, true);
    assert.ok(runs.get(leader).at(-1).aborted, 'aborted on resign');
    assert.equal(leader.election.isLeader(), false);
    await until(() => leaders().length === 1 && leaders()[0] !== leader, 8000, 'a new leader after the resign');
    const second = leaders()[0];
    assert.ok(second.election.term() > term1);

    // close: replaced
    const run2 = runs.get(second).at(-1);
    second.closing = true;
    await second.close();
    assert.ok(run2.aborted, 'aborted on close');
    await until(() => leaders().length === 1, 8000, 'a leader after the close');
    const third = leaders()[0];
    assert.notEqual(third, second);
    assert.ok(third.election.term() > run2.term);
    // a fenced change goes with the term while leading
    const ch = await third.update({ merge: { leaderSays: third.tab } }, { lead: 'session' }).done;
    assert.equal(ch.status, 'confirmed', JSON.stringify(ch.error));
  });

  it('elections: a leader that goes silent stops acting by its deadline, before another tab leads', T, async () => {
    const s = uniq('s');
    // offline, a client retries only every maxDelayMs (navigator.onLine may be wrong): not within this test
    const tabs = ['devA', 'devB'].map((d) => open({ user: 'u2', session: s, device: d }, { reconnect: { minDelayMs: 100, maxDelayMs: 20000 } }));
    await Promise.all(tabs.map((t) => t.ready));
    await until(() => tabs.some((t) => t.election.isLeader()), 8000, 'a leader');
    const leader = tabs.find((t) => t.election.isLeader());
    const other = tabs.find((t) => t !== leader);
    const events = [];
    for (const t of tabs) t.on('leadership', (l) => events.push({ tab: t.tab, ...l, at: performance.now() }));
    const t0 = performance.now();
    leader.conn.net(false); // the network goes: no heartbeat reaches the server
    let both = 0;
    while (!other.election.isLeader()) {
      if (leader.election.isLeader() && other.election.isLeader()) both++;
      if (performance.now() - t0 > 8000) throw new Error('no new leader');
      await sleep(5);
    }
    assert.equal(both, 0, 'never two acting leaders');
    const stop = events.find((e) => e.tab === leader.tab && !e.leading);
    const start = events.find((e) => e.tab === other.tab && e.leading);
    assert.ok(stop && start && stop.at < start.at, 'the old leader stopped first');
    assert.equal(stop.reason, 'lapse');
    assert.ok(stop.at - t0 < LEASE, `stopped within the lease (${Math.round(stop.at - t0)} ms)`);
    leader.conn.net(true);
    await until(() => leader.connection.status === 'online', 5000, 'back');
    await until(() => leader.election.view()?.role !== 'leader' && leader.election.view()?.leader?.tab === other.tab, 5000, 'the old leader sees the new one');
    assert.equal(leader.election.isLeader(), false);
  });

  it('elections: asked to step down (rotation), the leader stops and resigns before the next one leads', T, async () => {
    const srv = await startServer({ extra: ['--jwt-secret', SECRET, ...NO_LIMITS, '--elect-lease', String(LEASE), '--elect-max-tenure', '800'] });
    try {
      const s = uniq('s');
      const tabs = ['devA', 'devB'].map((d) => open({ user: 'u2', session: s, device: d }, {}, srv.url));
      const events = [];
      for (const t of tabs) t.on('leadership', (l) => events.push({ tab: t.tab, ...l, at: performance.now() }));
      await Promise.all(tabs.map((t) => t.ready));
      await until(() => events.filter((e) => e.leading).length >= 2, 10000, 'a rotation');
      const [first, second] = events.filter((e) => e.leading);
      assert.notEqual(first.tab, second.tab);
      assert.ok(second.term > first.term);
      const stop = events.find((e) => e.tab === first.tab && !e.leading);
      assert.equal(stop.reason, 'step_down');
      assert.ok(stop.at <= second.at, 'stopped before the next one began');
      assert.equal(second.reason, 'rotation');
      for (const t of tabs) await t.close();
    } finally {
      await srv.stop();
    }
  });

  it('elections: a task declared by the leader runs on another tab and reports done', T, async () => {
    const s = uniq('s');
    const tabs = ['devA', 'devB'].map((d) => open({ user: 'u3', session: s, device: d }));
    await Promise.all(tabs.map((t) => t.ready));
    const ran = [];
    for (const t of tabs) {
      t.election.onTask('refresh', async ({ name, term, signal, progress }) => {
        ran.push({ tab: t.tab, name, term, signal });
        progress(50);
        await sleep(100);
        return { fine: true };
      });
    }
    await until(() => tabs.find((t) => t.election.isLeader()), 8000, 'a leader');
    const leader = tabs.find((t) => t.election.isLeader());
    const other = tabs.find((t) => t !== leader);
    const ack = await leader.election.declareTask('refresh');
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await until(() => other.election.view()?.tasks.find((t) => t.name === 'refresh')?.state === 'done', 8000, 'the task is done');
    assert.equal(ran.length, 1);
    assert.equal(ran[0].tab, other.tab);
    await assert.rejects(other.election.declareTask('x'), /not_leader/);
  });

  it('presence: peers appear with their state and leave at once on close', T, async () => {
    const s = uniq('s');
    const a = open({ user: 'u4', session: s, device: 'devA' }, { elect: false, presence: { intervalMs: 200 } });
    const b = open({ user: 'u4', session: s, device: 'devB' }, { elect: false, presence: { intervalMs: 200 } });
    await Promise.all([a.ready, b.ready]);
    b.presence.set({ page: '/cart' });
    const key = `devB/${b.tab}`;
    await until(() => a.presence.peers.get(key)?.state?.page === '/cart', 5000, 'A sees B with its state');
    const peer = a.presence.peers.get(key);
    assert.equal(peer.user, 'u4');
    assert.equal(peer.device, 'devB');
    await until(() => b.presence.peers.has(`devA/${a.tab}`), 5000, 'B sees A (announced without set)');
    const t0 = Date.now();
    await b.close();
    await until(() => !a.presence.peers.has(key), 5000, 'B left');
    assert.ok(Date.now() - t0 < 500, 'dropped at once, not after the expiry');
  });

  it('presence: a peer that goes silent is dropped after 3 intervals', T, async () => {
    const s = uniq('s');
    const a = open({ user: 'u5', session: s, device: 'devA' }, { elect: false, presence: { intervalMs: 200 } });
    const b = open({ user: 'u5', session: s, device: 'devB' }, { elect: false, presence: { intervalMs: 200 } });
    await Promise.all([a.ready, b.ready]);
    const key = `devB/${b.tab}`;
    await until(() => a.presence.peers.has(key), 5000, 'A sees B');
    b.presence.close(); // stops announcing; the connection stays
    const t0 = Date.now();
    await until(() => !a.presence.peers.has(key), 5000, 'B expired');
    assert.ok(Date.now() - t0 >= 250, 'not before its time');
  });

  it('publish rejects when offline; the offline event closes the socket at once and online reconnects and replays', T, async () => {
    const s = uniq('s');
    const a = open({ user: 'u6', session: s, device: 'devA' }, { elect: false });
    const b = open({ user: 'u6', session: s, device: 'devB' }, { elect: false });
    await Promise.all([a.ready, b.ready]);
    const events = record(b, 'event');
    b.conn.net(false); // what the window's 'offline' event does
    assert.equal(b.connection.status, 'offline');
    assert.equal(b.connection.quality, 'offline');
    await assert.rejects(b.publish('x', 1), /offline/);
    // offline edits are queued and applied at once
    const mine = b.update({ merge: { fromB: 1 } });
    assert.equal(b.get('/fromB'), 1);
    assert.equal(b.queue().length, 1);
    await a.publish('missed', { n: 1 });
    await a.update({ merge: { fromA: 1 } }).done;
    await sleep(200);
    assert.equal(b.get('/fromA'), undefined, 'nothing arrives while offline');
    b.conn.net(true);
    await until(() => b.connection.status === 'online', 3000, 'B online again at once');
    assert.equal(b.connection.reconnects, 1);
    assert.equal((await mine.done).status, 'confirmed');
    await until(() => b.get('/fromA') === 1 && a.get('/fromB') === 1, 5000, 'both converge');
    await until(() => events.some((e) => e.type === 'missed'), 5000, 'the missed event is replayed');
    assert.equal(b.queue().length, 0);
  });

  it('reconnects after the server restarts on the same port, with a fresh token, and catches up', T, async () => {
    const s = uniq('s');
    const a = open({ user: 'u7', session: s, device: 'devA' });
    // offline, B would retry after maxDelayMs (navigator.onLine may be wrong): not within this test
    const b = open({ user: 'u7', session: s, device: 'devB' }, { reconnect: { minDelayMs: 100, maxDelayMs: 20000 } });
    const bEvents = record(b, 'event');
    await Promise.all([a.ready, b.ready]);
    await a.update({ merge: { before: 1 } }).done;
    await until(() => b.get('/before') === 1, 5000, 'B has the first change');
    const statuses = record(a, 'status');
    const port = server.port;
    await server.stop();
    await until(() => a.connection.status === 'reconnecting' && b.connection.status === 'reconnecting', 5000, 'both reconnecting');
    assert.ok(statuses.some((st) => st.nextRetryMs !== null), 'nextRetryMs while reconnecting');
    b.conn.net(false); // B stays away while A writes
    server = await start(['--listen', `127.0.0.1:${port}`]);
    assert.equal(server.port, port);
    await until(() => a.connection.status === 'online', 8000, 'A back');
    assert.ok(a.connection.reconnects >= 1);
    await a.update({ merge: { after: 2 } }).done;
    await a.publish('while.b.away', {});
    assert.deepEqual(a.tokenCalls.slice(0, 2), ['connect', 'reconnect'], 'a fresh token for the reconnect');
    assert.ok(!bEvents.some((e) => e.type === 'while.b.away'));
    b.conn.net(true);
    await until(() => b.get('/after') === 2, 8000, 'B caught up after the restart');
    await until(() => bEvents.some((e) => e.type === 'while.b.away'), 5000, 'the event B missed is replayed');
    assert.equal(b.get('/before'), 1);
    assert.deepEqual(a.state, b.state);
  });

  it('calls the token function before each connect and surfaces refusals; hopeless ones stop the retries', T, async () => {
    const s = uniq('s');
    const fn = tokenFor('u8', s);
    const a = open({ user: 'u8', session: s, device: 'devA' }, { token: fn, elect: false });
    await a.ready;
    assert.deepEqual(fn.calls, ['connect']);
    a.conn.drop(); // the engine closes (a network drop)
    await until(() => a.connection.reconnects === 1 && a.connection.status === 'online', 5000, 'reconnected');
    assert.deepEqual(fn.calls, ['connect', 'reconnect']);

    // a malformed token: token_malformed, surfaced, not retried
    const errors = [];
    const bad = open({ user: 'u8', session: s, device: 'devB' }, { token: 'not-a-jwt', elect: false });
    bad.on('error', (e) => errors.push(e));
    await assert.rejects(bad.ready, (e) => e.code === 'token_malformed');
    assert.equal(bad.connection.status, 'closed');
    assert.equal(bad.connection.lastError.code, 'token_malformed');
    assert.ok(errors.some((e) => e.code === 'token_malformed'));
    const attempts = bad.logs.filter((l) => l.name === 'connect' && l.dir === 'out').length;
    await sleep(800);
    assert.equal(bad.logs.filter((l) => l.name === 'connect' && l.dir === 'out').length, attempts, 'no retry');

    // an expired token from a function: retried with a new one
    let n = 0;
    const good = tokenFor('u8', s);
    const expired = (ctx) => (n++ === 0
      ? hs256(claims({ user: 'u8', session: s, device: ctx.device.id, fingerprint: ctx.device.fingerprint }, { ttl: -3600 }), SECRET)
      : good(ctx));
    const c = open({ user: 'u8', session: s, device: 'devC' }, { token: expired, elect: false });
    await c.ready;
    assert.equal(c.connection.lastError.code, 'token_expired');
    assert.equal(n, 2);
  });

  it('renews the token when the server says it expires soon', T, async () => {
    const s = uniq('s');
    const calls = [];
    const token = (ctx) => {
      calls.push(ctx.reason);
      // the first one expires in 62 s: token_expiring comes 60 s before that
      const ttl = calls.length === 1 ? 62 : 3600;
      return hs256(claims({ user: 'u10', session: s, device: ctx.device.id, fingerprint: ctx.device.fingerprint }, { ttl }), SECRET);
    };
    const a = open({ user: 'u10', session: s, device: 'devA' }, { token, elect: false });
    await a.ready;
    await until(() => a.logs.some((l) => l.name === 'token' && /renewed/.test(l.summary)), 8000, 'the token renewed');
    assert.deepEqual(calls, ['connect', 'expiring']);
    assert.ok(a.logs.some((l) => l.name === 'security' && /token_expiring/.test(l.summary)));
    assert.equal(a.connection.status, 'online');
  });

  it('a 2g network (Network Information API) makes the quality poor and the leader resign', T, async () => {
    // Node has no navigator.connection: a stand-in while this client starts
    const net = Object.assign(new EventTarget(), { effectiveType: '4g', downlink: 10, rtt: 50, saveData: false });
    const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    Object.defineProperty(globalThis, 'navigator', { value: { connection: net, userAgent: 'node' }, configurable: true, writable: true });
    let a;
    try {
      a = open({ user: 'u11', session: uniq('s'), device: 'devA' });
      await a.opened;
    } finally {
      if (had) Object.defineProperty(globalThis, 'navigator', had);
      else delete globalThis.navigator;
    }
    await a.ready;
    await until(() => a.election.isLeader(), 8000, 'leads (alone)');
    assert.deepEqual(a.connection.network, { effectiveType: '4g', downlink: 10, rtt: 50, saveData: false });
    assert.equal(a.connection.quality, 'good');
    const leadership = record(a, 'leadership');
    const quality = record(a, 'quality');
    net.effectiveType = '2g';
    net.dispatchEvent(new Event('change'));
    await until(() => leadership.some((l) => !l.leading && l.reason === 'network'), 5000, 'resigned');
    assert.deepEqual(quality.at(-1), { quality: 'poor', reason: 'network' });
    assert.equal(a.connection.network.effectiveType, '2g');
  });

  it('reports metadata and measures the round trip', T, async () => {
    const s = uniq('s');
    const a = open({ user: 'u9', session: s, device: 'devA' });
    await a.ready;
    await until(() => a.connection.rttMs !== null, 5000, 'an RTT sample');
    assert.ok(a.connection.rttMs >= 0 && a.connection.rttMs < 600);
    assert.equal(a.connection.quality, 'good');
    assert.ok(['polling', 'websocket'].includes(a.connection.transport));
  });
});
