// tabsyncd with several event loops (--workers): the kernel spreads
// connections over the loops (SO_REUSEPORT), and clients must not notice.
// With the real socket.io-client:
//  - sids name their loop, and connections really land on both loops;
//  - a room whose members sit on different loops receives every broadcast,
//    from publishers on either loop, exactly once and in ONE order;
//  - long-polling clients whose every request opens a new TCP connection
//    (so half of them land on the wrong loop) work: the connection moves;
//  - connection state recovery restores a socket on another loop than the
//    one it left, with the packets it missed;
//  - /session tabs of one session on different loops see each other, and
//    the per-user connection limit counts every loop;
//  - /metrics sums the loops; SIGTERM stops them all, exit 0.
//
// tabsyncd only: skipped with TS_TARGET=node.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { io } from 'socket.io-client';
import { startServer, IS_NODE, once, sleep } from './harness.mjs';
import { authFor, claims, hs256, tab, tryTab, ask, envelope } from './session-helpers.mjs';

const T = { timeout: 60000 };
const SKIP = IS_NODE ? { skip: 'tabsyncd only (--workers)' } : {};
const LOOPS = 2;

/** The loop a socket.io-client's Engine.IO session lives on: the sid's first character. */
const loopOf = (sock) => sock.io.engine.id[0];

async function connectAll(url, n, opts = {}) {
  const socks = [];
  for (let i = 0; i < n; i++) {
    const s = io(url, { forceNew: true, reconnection: false, transports: ['websocket'], ...opts });
    socks.push(s);
  }
  await Promise.all(socks.map((s) => (s.connected ? null : once(s, 'connect', 10000))));
  return socks;
}

/** Sockets until both loops are represented (each new connection is a fresh 4-tuple). */
async function onBothLoops(url, min, opts = {}) {
  const socks = await connectAll(url, min, opts);
  for (let tries = 0; new Set(socks.map(loopOf)).size < LOOPS && tries < 40; tries++) {
    socks.push(...await connectAll(url, 1, opts));
  }
  return socks;
}

function metric(text, name) {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

function get(port, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

describe('several loops (--workers 2)', SKIP, () => {
  let srv;
  before(async () => {
    if (IS_NODE) return;
    srv = await startServer({ recoveryWindow: 10000, extra: ['--workers', String(LOOPS)] });
  });
  after(async () => {
    if (srv) {
      const res = await srv.stop();
      assert.deepStrictEqual(res, { code: 0, signal: null });
    }
  });

  it('/healthz reports the loops; sids name their loop; connections land on both', T, async () => {
    const h = JSON.parse((await get(srv.port, '/healthz')).body);
    assert.equal(h.workers, LOOPS);
    const socks = await onBothLoops(srv.url, 16);
    try {
      const loops = new Set(socks.map(loopOf));
      assert.deepEqual([...loops].sort(), ['A', 'B'], 'every sid starts with A or B, and both occur');
    } finally {
      for (const s of socks) s.close();
    }
  });

  it('a room spread over both loops gets every broadcast from publishers on both, once, in one order', T, async () => {
    const members = await onBothLoops(srv.url, 20);
    const pubs = [];
    try {
      await Promise.all(members.map((s) => s.timeout(5000).emitWithAck('join', 'spread')));
      // one publisher per loop
      const more = await onBothLoops(srv.url, 2);
      for (const loop of ['A', 'B']) {
        const p = more.find((s) => loopOf(s) === loop);
        pubs.push(p);
      }
      for (const s of more) if (!pubs.includes(s)) s.close();
      const N = 150;
      const got = members.map(() => []);
      members.forEach((s, i) => s.on('m', (who, n) => got[i].push(`${who}:${n}`)));
      // both publish at once, interleaving on the wire
      for (let n = 0; n < N; n++) {
        pubs[0].emit('to-room-all', 'spread', 'm', 'A', n);
        pubs[1].emit('to-room-all', 'spread', 'm', 'B', n);
      }
      const deadline = Date.now() + 20000;
      while (got.some((g) => g.length < 2 * N) && Date.now() < deadline) await sleep(50);
      await sleep(200); // duplicates would show up now
      for (let i = 0; i < members.length; i++) {
        assert.equal(got[i].length, 2 * N, `member ${i} (loop ${loopOf(members[i])}) got ${got[i].length}`);
        for (const who of ['A', 'B']) {
          const seq = got[i].filter((x) => x.startsWith(`${who}:`)).map((x) => Number(x.split(':')[1]));
          assert.deepEqual(seq, [...Array(N).keys()], `member ${i}: publisher ${who} in order, once each`);
        }
        assert.deepEqual(got[i], got[0], `member ${i} (loop ${loopOf(members[i])}) saw the same order as member 0 (loop ${loopOf(members[0])})`);
      }
    } finally {
      for (const s of [...members, ...pubs]) s.close();
    }
  });

  it('long-polling with a new TCP connection per request: requests that land on the other loop move there', T, async () => {
    const before = (await get(srv.port, '/metrics')).body;
    // agent: false -> every poll and post opens its own connection
    const clients = await connectAll(srv.url, 4, { transports: ['polling'], agent: false });
    try {
      for (let round = 0; round < 15; round++) {
        const answers = await Promise.all(clients.map((c, i) => c.timeout(5000).emitWithAck('message-with-ack', { i, round })));
        answers.forEach((a, i) => assert.deepEqual(a, { i, round }));
      }
      for (const c of clients) assert.equal(c.io.engine.transport.name, 'polling');
    } finally {
      for (const c of clients) c.close();
    }
    const afterText = (await get(srv.port, '/metrics')).body;
    const moved = metric(afterText, 'tabsync_loop_handoffs_total') - metric(before, 'tabsync_loop_handoffs_total');
    // about half of ~130 requests land on the wrong loop; all must have worked
    assert.ok(moved > 0, `connections moved between loops: ${moved}`);
  });

  it('polling then upgrade to websocket, from either loop', T, async () => {
    const clients = await connectAll(srv.url, 6, { transports: ['polling', 'websocket'], agent: false });
    try {
      await Promise.all(clients.map(async (c) => {
        if (c.io.engine.transport.name !== 'websocket') await once(c.io.engine, 'upgrade', 10000);
      }));
      for (const c of clients) {
        assert.deepEqual(await c.timeout(5000).emitWithAck('message-with-ack', 'up'), 'up');
      }
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('connection state recovery restores a socket on the other loop with what it missed', T, async () => {
    let crossed = 0;
    for (let attempt = 0; attempt < 30 && crossed < 1; attempt++) {
      const [sub] = await connectAll(srv.url, 1, { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
      const [pub] = await connectAll(srv.url, 1);
      try {
        await sub.timeout(5000).emitWithAck('join', `rec-${attempt}`);
        const got = [];
        sub.on('r', (n) => got.push(n));
        pub.emit('to-room-all', `rec-${attempt}`, 'r', 0);
        while (got.length < 1) await sleep(10);
        const from = loopOf(sub);
        sub.io.engine.close(); // transport close: the client reconnects and asks for recovery
        for (let n = 1; n <= 5; n++) pub.emit('to-room-all', `rec-${attempt}`, 'r', n);
        await once(sub, 'connect', 10000);
        const deadline = Date.now() + 5000;
        while (got.length < 6 && Date.now() < deadline) await sleep(10);
        assert.equal(sub.recovered, true, 'recovered');
        assert.deepEqual(got, [0, 1, 2, 3, 4, 5], 'every missed packet, once, in order');
        if (loopOf(sub) !== from) crossed++;
      } finally {
        sub.close();
        pub.close();
      }
    }
    assert.ok(crossed >= 1, `at least one recovery crossed loops (${crossed})`);
  });
});

describe('/session over several loops', SKIP, () => {
  const secret = 'w'.repeat(48);
  const CAP = 8; // --limit-conns-per-user
  let srv;
  before(async () => {
    if (IS_NODE) return;
    srv = await startServer({
      testApp: false,
      extra: ['--workers', String(LOOPS), '--jwt-secret', secret, '--limit-conns-per-user', String(CAP),
        '--limit-handshakes-per-ip', '1000'],
    });
  });
  after(async () => {
    if (srv) {
      const res = await srv.stop();
      assert.deepStrictEqual(res, { code: 0, signal: null });
    }
  });

  /** Tabs of `user` on both loops: the kernel picks the loop, so connect
   * until one lands on the other loop (closing the ones that do not). */
  async function tabsOnBothLoops(user, base) {
    const tabs = [await tab(srv.url, authOf(ident(base, user)), { transports: ['websocket'] })];
    for (let k = 1; k < 60 && tabs.length < 2; k++) {
      const t = await tab(srv.url, authOf(ident(base + k, user)), { transports: ['websocket'] });
      if (loopOf(t) !== loopOf(tabs[0])) {
        tabs.push(t);
      } else {
        t.close();
        await sleep(20); // its slot under --limit-conns-per-user is given back
      }
    }
    return tabs;
  }
  const ident = (n, user = 'wuser') => ({ user, session: 'ws1', device: `dev${n}`, fingerprint: `fp-${n}`, tab: `tab${n}` });
  const authOf = (id) => authFor(id, hs256(claims(id), secret));

  it('tabs of one session on different loops see every publish, in order', T, async () => {
    const tabs = [];
    try {
      tabs.push(...await tabsOnBothLoops('wuser', 0));
      assert.equal(new Set(tabs.map(loopOf)).size, LOOPS, 'tabs on both loops');
      tabs.push(await tab(srv.url, authOf(ident(100)), { transports: ['websocket'] }));
      const [sender, ...others] = tabs;
      const envs = [];
      for (let i = 0; i < 20; i++) envs.push(envelope({ to: 'session', body: { i } }));
      for (const e of envs) await ask(sender, 'publish', e, 5000);
      for (const o of others) {
        const evs = await o.events.waitFor(20, 10000);
        assert.deepEqual(evs.map((e) => e.body.i), [...Array(20).keys()], `tab ${o.tabId} (loop ${loopOf(o)})`);
      }
      assert.equal(sender.events.length, 0, 'the sender gets none of its own');
    } finally {
      for (const t of tabs) t.close();
    }
  });

  it('the per-user connection limit counts the connections of every loop', T, async () => {
    const tabs = [];
    try {
      for (let n = 0; n < CAP; n++) tabs.push(await tab(srv.url, authOf(ident(n, 'capped')), { transports: ['websocket'] }));
      // One more, on whichever loop, is refused: with a count per loop, one
      // of these attempts would land on a loop holding fewer than CAP.
      for (let k = 0; k < 3; k++) {
        const r = await tryTab(srv.url, authOf(ident(10 + k, 'capped')), { transports: ['websocket'] });
        r.sock.close();
        assert.equal(r.ok, false, `a connection past --limit-conns-per-user ${CAP} is refused`);
        assert.equal(r.err?.data?.code, 'throttled', JSON.stringify(r.err?.data));
      }
    } finally {
      for (const t of tabs) t.close();
    }
  });

  it('/metrics sums the loops', T, async () => {
    const tabs = [];
    try {
      tabs.push(...await tabsOnBothLoops('metered', 20));
      const text = (await get(srv.port, '/metrics')).body;
      assert.ok(metric(text, 'tabsync_session_sockets') >= tabs.length, text.slice(0, 400));
      assert.ok(metric(text, 'tabsync_eio_sessions_websocket') >= tabs.length);
    } finally {
      for (const t of tabs) t.close();
    }
  });
});
