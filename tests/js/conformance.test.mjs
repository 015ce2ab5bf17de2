// Our own tests of what the official Engine.IO v4 and Socket.IO v5 protocol
// test suites check (socketio/socket.io docs/*/v*-test-suite/test-suite.js),
// written with raw fetch and raw WebSocket against a server started with
// --conformance: pingInterval 300, pingTimeout 200, maxPayload 1000000, no
// recovery, an Engine.IO echo endpoint at /engine.io/ and Socket.IO at
// /socket.io/ (namespaces / and /custom emit `auth`; / answers `message` with
// `message-back` and acks `message-with-ack`).
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sleep, TARGET } from './harness.mjs';
import { WsClient, closeFetch } from './raw.mjs';

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const T = { timeout: 10000 };

let server;
let URL;
let WS_URL;
const open = [];
const HTTP_CLIENTS = [['fetch', globalThis.fetch], ['Connection: close', closeFetch]];

function ws(path, opts) {
  const c = new WsClient(`${WS_URL}${path}`, opts);
  open.push(c);
  return c;
}

async function handshakeValue(text) {
  assert.ok(text.startsWith('0'), `open packet expected, got ${JSON.stringify(text)}`);
  const value = JSON.parse(text.substring(1));
  assert.deepStrictEqual(Object.keys(value).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.equal(typeof value.sid, 'string');
  assert.ok(value.sid.length > 0);
  assert.equal(value.pingInterval, PING_INTERVAL);
  assert.equal(value.pingTimeout, PING_TIMEOUT);
  assert.equal(value.maxPayload, 1000000);
  return value;
}

async function pollingSession(path, fetch) {
  const res = await fetch(`${URL}${path}?EIO=4&transport=polling`);
  assert.equal(res.status, 200);
  return (await handshakeValue(await res.text())).sid;
}

async function expectError(res, code) {
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.code, code, `error body ${JSON.stringify(body)}`);
  assert.equal(typeof body.message, 'string');
}

/**
 * A websocket session that must be refused: either the upgrade is answered
 * HTTP 400, or (Node, for a bad EIO) the websocket opens and is closed before
 * any Engine.IO packet.
 */
async function expectWsRefused(path) {
  const c = ws(path);
  await c.waitClose();
  if (!c.opened) assert.equal(c.unexpected, 400);
  assert.deepStrictEqual(c.queue, [], 'no open packet for a refused session');
}

before(async () => {
  server = await startServer({ conformance: true });
  URL = server.url;
  WS_URL = URL.replace('http', 'ws');
});
after(async () => {
  await server?.stop();
});
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

// The Engine.IO checks apply to the raw echo endpoint and to the Socket.IO path.
// Every HTTP check runs with two clients: undici fetch (keep-alive pool) and
// node:http without an agent, "Connection: close" (what node-fetch, used by the
// official suites, sends).
for (const [cname, fetch] of HTTP_CLIENTS) {
  for (const path of ['/engine.io/', '/socket.io/']) {
    describe(`Engine.IO v4 at ${path} [${cname}] (${TARGET})`, () => {
      describe('handshake', () => {
        it('polling: opens a session', T, async () => {
          const res = await fetch(`${URL}${path}?EIO=4&transport=polling`);
          assert.equal(res.status, 200);
          assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
          const v = await handshakeValue(await res.text());
          assert.deepStrictEqual(v.upgrades, ['websocket']);
        });

        it('polling: invalid EIO -> 400 code 5', T, async () => {
          await expectError(await fetch(`${URL}${path}?transport=polling`), 5);
          await expectError(await fetch(`${URL}${path}?EIO=abc&transport=polling`), 5);
          await expectError(await fetch(`${URL}${path}?EIO=3&transport=polling`), 5);
        });

        it('polling: invalid transport -> 400 code 0', T, async () => {
          await expectError(await fetch(`${URL}${path}?EIO=4`), 0);
          await expectError(await fetch(`${URL}${path}?EIO=4&transport=abc`), 0);
        });

        it('polling: handshake with POST/PUT -> 400 code 2', T, async () => {
          await expectError(await fetch(`${URL}${path}?EIO=4&transport=polling`, { method: 'post' }), 2);
          await expectError(await fetch(`${URL}${path}?EIO=4&transport=polling`, { method: 'put' }), 2);
        });

        it('websocket: opens a session', T, async () => {
          const c = ws(`${path}?EIO=4&transport=websocket`);
          const v = await handshakeValue(await c.next());
          assert.deepStrictEqual(v.upgrades, []);
        });

        it('websocket: invalid EIO is refused', T, async () => {
          await expectWsRefused(`${path}?transport=websocket`);
          await expectWsRefused(`${path}?EIO=abc&transport=websocket`);
        });

        it('websocket: invalid transport is refused', T, async () => {
          await expectWsRefused(`${path}?EIO=4`);
          await expectWsRefused(`${path}?EIO=4&transport=abc`);
        });

        it('unknown sid -> 400 code 1 "Session ID unknown"', T, async () => {
          const res = await fetch(`${URL}${path}?EIO=4&transport=polling&sid=nope-not-a-session`);
          assert.equal(res.status, 400);
          assert.deepStrictEqual(await res.json(), { code: 1, message: 'Session ID unknown' });
        });
      });

      describe('heartbeat', () => {
        it('polling: sends ping, accepts pong, three times', T, async () => {
          const sid = await pollingSession(path, fetch);
          for (let i = 0; i < 3; i++) {
            const t0 = Date.now();
            const poll = await fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`);
            assert.equal(poll.status, 200);
            assert.equal(await poll.text(), '2');
            if (i > 0) assert.ok(Date.now() - t0 >= PING_INTERVAL - 50, 'ping came too early');
            const push = await fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`, { method: 'post', body: '3' });
            assert.equal(push.status, 200);
            assert.equal(await push.text(), 'ok');
          }
        });

        it('polling: closes the session upon ping timeout', T, async () => {
          const sid = await pollingSession(path, fetch);
          // the official suite polls at exactly pingInterval + pingTimeout; 10 ms of slack
          await sleep(PING_INTERVAL + PING_TIMEOUT + 10);
          const poll = await fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`);
          assert.equal(poll.status, 400);
        });

        it('websocket: sends ping, accepts pong, three times', T, async () => {
          const c = ws(`${path}?EIO=4&transport=websocket`);
          await c.next(); // open packet
          for (let i = 0; i < 3; i++) {
            assert.equal(await c.next({ ms: 2000 }), '2');
            c.send('3');
          }
          await sleep(100);
          assert.equal(c.closeInfo, null, 'session closed although pongs were sent');
        });

        it('websocket: closes the session upon ping timeout', T, async () => {
          const c = ws(`${path}?EIO=4&transport=websocket`);
          const t0 = Date.now();
          await c.waitClose(3000);
          const dt = Date.now() - t0;
          assert.ok(dt >= PING_INTERVAL + PING_TIMEOUT - 50, `closed after ${dt} ms, before the ping timeout`);
          assert.ok(c.queue[0]?.startsWith('0'), 'open packet first');
          assert.deepStrictEqual(c.queue.slice(1), ['2'], 'exactly one ping, then the close');
        });
      });

      describe('close', () => {
        it('polling: a close packet ends the session; held GET gets noop', T, async () => {
          const sid = await pollingSession(path, fetch);
          const [poll, push] = await Promise.all([
            fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`),
            sleep(20).then(() => fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`, { method: 'post', body: '1' })),
          ]);
          assert.equal(poll.status, 200);
          assert.equal(await poll.text(), '6');
          assert.equal(push.status, 200);
          const again = await fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`);
          assert.equal(again.status, 400);
          assert.deepStrictEqual(await again.json(), { code: 1, message: 'Session ID unknown' });
        });

        it('websocket: a close packet ends the session', T, async () => {
          const c = ws(`${path}?EIO=4&transport=websocket`);
          await c.next();
          c.send('1');
          await c.waitClose(2000);
        });
      });

      describe('upgrade', () => {
        it('probe, noop to the held poll, upgrade, then traffic on the websocket', T, async () => {
          const sid = await pollingSession(path, fetch);
          const c = ws(`${path}?EIO=4&transport=websocket&sid=${sid}`);
          await c.open();
          c.send('2probe');
          assert.equal(await c.next(), '3probe');
          const poll = await fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`);
          assert.equal(poll.status, 200);
          assert.equal(await poll.text(), '6');
          c.send('5');
          if (path === '/engine.io/') {
            c.send('4hello');
            assert.equal(await c.next({ skipPings: true }), '4hello');
          } else {
            // the session is alive on the websocket: it gets pinged there
            assert.equal(await c.next({ ms: 2000 }), '2');
            c.send('3');
          }
        });

        it('polling requests with the sid are refused after the upgrade', T, async () => {
          const sid = await pollingSession(path, fetch);
          const c = ws(`${path}?EIO=4&transport=websocket&sid=${sid}`);
          await c.open();
          c.send('2probe');
          assert.equal(await c.next(), '3probe');
          c.send('5');
          await sleep(50);
          const poll = await fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`);
          assert.equal(poll.status, 400);
          assert.equal((await poll.json()).code, 3);
          if (path === '/engine.io/') {
            c.send('4hello');
            assert.equal(await c.next({ skipPings: true }), '4hello');
          }
        });

        it('a second websocket with the sid during the upgrade is opened, then closed', T, async () => {
          const sid = await pollingSession(path, fetch);
          const c = ws(`${path}?EIO=4&transport=websocket&sid=${sid}`);
          await c.open();
          c.send('2probe');
          assert.equal(await c.next(), '3probe');
          const c2 = ws(`${path}?EIO=4&transport=websocket&sid=${sid}`);
          await c2.waitClose();
          assert.equal(c2.unexpected, null, `second websocket refused with HTTP ${c2.unexpected}; expected 101 then close`);
          assert.equal(c2.opened, true);
          assert.deepStrictEqual(c2.queue, []);
          // the first upgrade still completes
          c.send('5');
          if (path === '/engine.io/') {
            c.send('4after');
            assert.equal(await c.next({ skipPings: true }), '4after');
          } else {
            assert.equal(await c.next({ ms: 2000 }), '2');
          }
        });

        it('a second websocket with the sid is closed after the upgrade', T, async () => {
          const sid = await pollingSession(path, fetch);
          const c = ws(`${path}?EIO=4&transport=websocket&sid=${sid}`);
          await c.open();
          c.send('2probe');
          assert.equal(await c.next(), '3probe');
          c.send('5');
          await sleep(50);
          const c2 = ws(`${path}?EIO=4&transport=websocket&sid=${sid}`);
          await c2.waitClose();
          // Node completes the handshake (101) and then closes the websocket; the
          // official suite has no error listener on it, so an HTTP error fails it
          assert.equal(c2.unexpected, null, `second websocket refused with HTTP ${c2.unexpected}; expected 101 then close`);
          assert.equal(c2.opened, true);
          assert.deepStrictEqual(c2.queue, [], 'no packets on the second websocket');
          if (path === '/engine.io/') {
            c.send('4hello');
            assert.equal(await c.next({ skipPings: true }), '4hello');
          }
        });
      });
    });
  }

  describe(`Engine.IO v4 messages at /engine.io/ (echo) [${cname}] (${TARGET})`, () => {
    const P = '/engine.io/';
    const q = (sid) => `${URL}${P}?EIO=4&transport=polling&sid=${sid}`;

    it('polling: one text packet', T, async () => {
      const sid = await pollingSession(P, fetch);
      const push = await fetch(q(sid), { method: 'post', body: '4hello' });
      assert.equal(push.status, 200);
      assert.equal(await push.text(), 'ok');
      const poll = await fetch(q(sid));
      assert.equal(poll.status, 200);
      assert.equal(await poll.text(), '4hello');
    });

    it('polling: several text packets in one payload', T, async () => {
      const sid = await pollingSession(P, fetch);
      const push = await fetch(q(sid), { method: 'post', body: '4test1\x1e4test2\x1e4test3' });
      assert.equal(await push.text(), 'ok');
      const poll = await fetch(q(sid));
      assert.equal(await poll.text(), '4test1\x1e4test2\x1e4test3');
    });

    it('polling: text and binary packets', T, async () => {
      const sid = await pollingSession(P, fetch);
      const push = await fetch(q(sid), { method: 'post', body: '4hello\x1ebAQIDBA==' });
      assert.equal(await push.text(), 'ok');
      const poll = await fetch(q(sid));
      assert.equal(await poll.text(), '4hello\x1ebAQIDBA==');
    });

    it('polling: UTF-8 text survives', T, async () => {
      const sid = await pollingSession(P, fetch);
      const text = '4héllo 日本 🎉';
      const push = await fetch(q(sid), { method: 'post', body: text });
      assert.equal(await push.text(), 'ok');
      const poll = await fetch(q(sid));
      assert.equal(await poll.text(), text);
    });

    it('polling: invalid packet closes the session', T, async () => {
      const sid = await pollingSession(P, fetch);
      try {
        const push = await fetch(q(sid), { method: 'post', body: 'abc' });
        assert.equal(push.status, 400);
      } catch {
        // closing the connection without an answer is allowed too
      }
      const poll = await fetch(q(sid));
      assert.equal(poll.status, 400);
    });

    it('polling: a duplicate GET closes the session', T, async () => {
      const sid = await pollingSession(P, fetch);
      const [first, second] = await Promise.all([
        fetch(q(sid)),
        sleep(20).then(() => fetch(`${q(sid)}&t=burst`)),
      ]);
      assert.equal(first.status, 200);
      assert.equal(await first.text(), '1');
      assert.ok([400, 500].includes(second.status), `second GET: ${second.status}`);
      const poll = await fetch(q(sid));
      assert.equal(poll.status, 400);
    });

    it('polling: an aborted GET closes the session', T, async () => {
      const sid = await pollingSession(P, fetch);
      const controller = new AbortController();
      const held = fetch(q(sid), { signal: controller.signal }).catch(() => 'aborted');
      await sleep(20);
      controller.abort();
      assert.equal(await held, 'aborted');
      await sleep(20);
      const poll = await fetch(q(sid));
      assert.equal(poll.status, 400);
    });

    it('websocket: text packet', T, async () => {
      const c = ws(`${P}?EIO=4&transport=websocket`);
      await c.next();
      c.send('4hello');
      assert.equal(await c.next({ skipPings: true }), '4hello');
    });

    it('websocket: binary packet', T, async () => {
      const c = ws(`${P}?EIO=4&transport=websocket`);
      await c.next();
      c.send(Uint8Array.from([1, 2, 3, 4]));
      const m = await c.next({ skipPings: true });
      assert.ok(Buffer.isBuffer(m), 'binary frame expected');
      assert.deepStrictEqual([...m], [1, 2, 3, 4]);
    });

    it('websocket: invalid packet closes the session', T, async () => {
      const c = ws(`${P}?EIO=4&transport=websocket`);
      await c.next();
      c.send('abc');
      const t0 = Date.now();
      await c.waitClose(2000);
      assert.ok(Date.now() - t0 < PING_INTERVAL + PING_TIMEOUT, 'closed by the ping timeout, not by the parse error');
    });
  });
}

describe(`Socket.IO v5 at /socket.io/ (${TARGET})`, () => {
  async function eioWs() {
    const c = ws('/socket.io/?EIO=4&transport=websocket', { autoPong: true });
    await c.next(); // Engine.IO open
    return c;
  }

  async function sioConnected() {
    const c = await eioWs();
    c.send('40');
    assert.match(await c.next({ skipPings: true }), /^40\{/);
    assert.equal(await c.next({ skipPings: true }), '42["auth",{}]');
    return c;
  }

  function handshake(data, prefix) {
    assert.ok(data.startsWith(prefix), `expected ${prefix}..., got ${data}`);
    const h = JSON.parse(data.substring(prefix.length));
    assert.deepStrictEqual(Object.keys(h), ['sid']);
    assert.equal(typeof h.sid, 'string');
    return h;
  }

  describe('connect', () => {
    it('main namespace', T, async () => {
      const c = await eioWs();
      c.send('40');
      const h = handshake(await c.next({ skipPings: true }), '40');
      assert.ok(h.sid.length > 0);
      assert.equal(await c.next({ skipPings: true }), '42["auth",{}]');
    });

    it('main namespace with a payload', T, async () => {
      const c = await eioWs();
      c.send('40{"token":"123"}');
      handshake(await c.next({ skipPings: true }), '40');
      assert.equal(await c.next({ skipPings: true }), '42["auth",{"token":"123"}]');
    });

    it('custom namespace', T, async () => {
      const c = await eioWs();
      c.send('40/custom,');
      handshake(await c.next({ skipPings: true }), '40/custom,');
      assert.equal(await c.next({ skipPings: true }), '42/custom,["auth",{}]');
    });

    it('custom namespace without the trailing comma, with a payload', T, async () => {
      const c = await eioWs();
      c.send('40/custom,{"token":"abc"}');
      handshake(await c.next({ skipPings: true }), '40/custom,');
      assert.equal(await c.next({ skipPings: true }), '42/custom,["auth",{"token":"abc"}]');
      const c2 = await eioWs();
      c2.send('40/custom');
      handshake(await c2.next({ skipPings: true }), '40/custom,');
      assert.equal(await c2.next({ skipPings: true }), '42/custom,["auth",{}]');
    });

    it('each namespace socket gets its own id', T, async () => {
      const c = await eioWs();
      c.send('40');
      const a = handshake(await c.next({ skipPings: true }), '40');
      await c.next({ skipPings: true });
      c.send('40/custom,');
      const b = handshake(await c.next({ skipPings: true }), '40/custom,');
      assert.notEqual(a.sid, b.sid);
    });

    it('unknown namespace -> 44 Invalid namespace', T, async () => {
      const c = await eioWs();
      c.send('40/random');
      assert.equal(await c.next({ skipPings: true }), '44/random,{"message":"Invalid namespace"}');
    });

    it('invalid handshake closes the connection', T, async () => {
      const c = await eioWs();
      c.send('4abc');
      await c.waitClose(2000);
    });

    it('no handshake at all: the connection is closed', T, async () => {
      const c = ws('/socket.io/?EIO=4&transport=websocket');
      await c.waitClose(3000);
    });
  });

  describe('disconnect', () => {
    it('41 from the client gets no answer', T, async () => {
      const c = ws('/socket.io/?EIO=4&transport=websocket');
      await c.next();
      c.send('40');
      await c.next();
      await c.next(); // auth
      c.send('41');
      assert.equal(await c.next({ ms: 2000 }), '2', 'the next thing after 41 must be the ping');
    });

    it('connect then disconnect a custom namespace; main still works', T, async () => {
      const c = await sioConnected();
      c.send('40/custom');
      handshake(await c.next({ skipPings: true }), '40/custom,');
      assert.equal(await c.next({ skipPings: true }), '42/custom,["auth",{}]');
      c.send('41/custom');
      c.send('42["message","message to main namespace"]');
      assert.equal(await c.next({ skipPings: true }), '42["message-back","message to main namespace"]');
    });
  });

  describe('message', () => {
    it('plain-text event, exact compact JSON', T, async () => {
      const c = await sioConnected();
      c.send('42["message",1,"2",{"3":[true]}]');
      assert.equal(await c.next({ skipPings: true }), '42["message-back",1,"2",{"3":[true]}]');
    });

    it('event with binary attachments', T, async () => {
      const c = await sioConnected();
      c.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      c.send(Uint8Array.from([1, 2, 3]));
      c.send(Uint8Array.from([4, 5, 6]));
      const [head, b1, b2] = await c.take(3);
      assert.equal(head, '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.deepStrictEqual(b1, Buffer.from([1, 2, 3]));
      assert.deepStrictEqual(b2, Buffer.from([4, 5, 6]));
    });

    it('plain-text event with an ack', T, async () => {
      const c = await sioConnected();
      c.send('42456["message-with-ack",1,"2",{"3":[false]}]');
      assert.equal(await c.next({ skipPings: true }), '43456[1,"2",{"3":[false]}]');
    });

    it('binary event with an ack -> binary ack', T, async () => {
      const c = await sioConnected();
      c.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      c.send(Uint8Array.from([1, 2, 3]));
      c.send(Uint8Array.from([4, 5, 6]));
      const [head, b1, b2] = await c.take(3);
      assert.equal(head, '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.deepStrictEqual(b1, Buffer.from([1, 2, 3]));
      assert.deepStrictEqual(b2, Buffer.from([4, 5, 6]));
    });

    for (const [name, bad] of [
      ['unknown packet type', '4abc'],
      ['invalid payload format', '42{}'],
      ['invalid ack id', '42abc["message-with-ack",1,"2",{"3":[false]}]'],
    ]) {
      it(`invalid format closes the connection (${name})`, T, async () => {
        const c = await sioConnected();
        c.send(bad);
        await c.waitClose(2000);
      });
    }
  });
});
