// One cluster of a Node Socket.IO server (the npm socket.io 4.8 with
// @socket.io/redis-adapter, the classic adapter: tests/js/ref-server.mjs
// --redis) and tabsyncd nodes (--store redis://), on one Redis (issue #12):
// each serves its own clients, and broadcasts made on either side reach the
// clients of both — to everyone, to a room (one and several), with rooms
// excepted, without the sender (socket.to), binary arguments included.
// docs/REDIS-WIRE.md says what is spoken; the server-side requests
// (fetchSockets, serverSideEmit, socketsJoin/Leave, disconnectSockets) and
// the sharded adapter are not built in tabsyncd yet (docs/STATUS.md).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { io } from 'socket.io-client';

import { startServer, IS_NODE, once, sleep } from './harness.mjs';
import { startRedis } from './cluster.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd and Node together: runs against tabsyncd' } : {};
const T = { timeout: 20000 };

describe('a Node Socket.IO server with @socket.io/redis-adapter and tabsyncd nodes in one cluster', SKIP, () => {
  let redis, node, ts1, ts2;
  const clients = new Set();
  before(async () => {
    redis = await startRedis({ appendonly: false });
    node = await startServer({ target: 'node', single: true, extra: ['--redis', redis.url] });
    // the store (and with it the adapter) needs /session on: a secret
    const flags = ['--jwt-secret', crypto.randomBytes(32).toString('hex'), '--store', redis.url, '--recovery-window', '0'];
    ts1 = await startServer({ single: true, extra: flags });
    ts2 = await startServer({ single: true, extra: flags });
    await sleep(300); // every PSUBSCRIBE confirmed before the first broadcast
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const s of [ts1, ts2, node]) await s?.stop().catch(() => {});
    await redis?.stop();
  });

  async function client(srv, name) {
    const c = io(srv.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    c.name = name;
    c.got = [];
    c.onAny((event, ...args) => { if (event !== 'auth') c.got.push([event, ...args]); });
    clients.add(c);
    await once(c, 'connect');
    return c;
  }
  const ask = (c, event, ...args) => c.timeout(5000).emitWithAck(event, ...args);
  async function settle(cs, pred, ms = 5000) {
    const t0 = Date.now();
    while (!cs.every(pred)) {
      if (Date.now() - t0 > ms) break;
      await sleep(20);
    }
    await sleep(150); // and nothing more comes
  }
  const clear = (cs) => { for (const c of cs) c.got = []; };

  it('broadcasts to everyone but the sender (socket.broadcast), both ways', T, async () => {
    const n = await client(node, 'node'), n2 = await client(node, 'node2');
    const a = await client(ts1, 'ts1'), b = await client(ts2, 'ts2');
    const all = [n, n2, a, b];
    clear(all);
    n.emit('broadcast', 'hello', { from: 'node', n: 1 });
    await settle([n2, a, b], (c) => c.got.length >= 1);
    for (const c of [n2, a, b]) assert.deepEqual(c.got, [['hello', { from: 'node', n: 1 }]], `${c.name} got Node's broadcast once`);
    assert.deepEqual(n.got, [], 'not the sender');
    clear(all);
    a.emit('broadcast', 'hello', { from: 'ts1', list: [1, 'two', null, true, 2.5] });
    await settle([n, n2, b], (c) => c.got.length >= 1);
    for (const c of [n, n2, b]) assert.deepEqual(c.got, [['hello', { from: 'ts1', list: [1, 'two', null, true, 2.5] }]], `${c.name} got tabsyncd's broadcast once`);
    assert.deepEqual(a.got, [], 'not the sender');
  });

  it('rooms: to one room and without the sender, to a room with a room excepted; joins on either side', T, async () => {
    const n1 = await client(node, 'n1'), n2 = await client(node, 'n2');
    const a = await client(ts1, 'a'), b = await client(ts2, 'b'), out = await client(ts2, 'out');
    for (const c of [n1, n2, a, b]) await ask(c, 'join', 'r');
    await ask(n2, 'join', 'quiet');
    await ask(b, 'join', 'quiet');
    const all = [n1, n2, a, b, out];
    clear(all);
    // socket.to(room) from tabsyncd: every member but the sender, on both sides
    a.emit('to-room', 'r', 'news', 'from-a');
    await settle([n1, n2, b], (c) => c.got.length >= 1);
    for (const c of [n1, n2, b]) assert.deepEqual(c.got, [['news', 'from-a']], `${c.name}`);
    assert.deepEqual(a.got, [], 'not the sender');
    assert.deepEqual(out.got, [], 'not a socket outside the room');
    clear(all);
    // the same from Node
    n1.emit('to-room', 'r', 'news', 'from-n1');
    await settle([n2, a, b], (c) => c.got.length >= 1);
    for (const c of [n2, a, b]) assert.deepEqual(c.got, [['news', 'from-n1']], `${c.name}`);
    assert.deepEqual(n1.got, [], 'not the sender');
    assert.deepEqual(out.got, []);
    clear(all);
    // a room with another excepted: n2 and b are in "quiet"
    a.emit('broadcast-except', 'r', 'quiet', 'hush', 1);
    n1.emit('broadcast-except', 'r', 'quiet', 'hush', 2);
    await settle([n1, a], (c) => c.got.length >= 2);
    for (const c of [n1, a]) assert.deepEqual(c.got.map((g) => g[1]).sort(), [1, 2], `${c.name} got both`);
    for (const c of [n2, b, out]) assert.deepEqual(c.got, [], `${c.name} was excepted or outside`);
    // a leave on tabsyncd takes b out for both senders
    await ask(b, 'leave', 'r');
    clear(all);
    n1.emit('to-room-all', 'r', 'after-leave', 'n');
    a.emit('to-room-all', 'r', 'after-leave', 't');
    await settle([n1, n2, a], (c) => c.got.length >= 2);
    for (const c of [n1, n2, a]) assert.equal(c.got.length, 2, `${c.name}: ${JSON.stringify(c.got)}`);
    assert.deepEqual(b.got, [], 'b left the room');
  });

  it('binary arguments cross both ways as buffers', T, async () => {
    const n = await client(node, 'nb'), a = await client(ts1, 'ab'), b = await client(ts2, 'bb');
    for (const c of [n, a, b]) await ask(c, 'join', 'bin');
    const all = [n, a, b];
    clear(all);
    const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
    a.emit('to-room-all', 'bin', 'blob', { name: 'x', data: bytes }, bytes);
    n.emit('to-room-all', 'bin', 'blob', { name: 'y', data: bytes }, bytes);
    await settle(all, (c) => c.got.length >= 2);
    for (const c of all) {
      assert.equal(c.got.length, 2, `${c.name}: ${c.got.length}`);
      for (const [event, obj, raw] of c.got) {
        assert.equal(event, 'blob');
        assert.ok(Buffer.from(obj.data).equals(bytes), `${c.name}: the nested buffer of ${obj.name}`);
        assert.ok(Buffer.from(raw).equals(bytes), `${c.name}: the top-level buffer of ${obj.name}`);
      }
      assert.deepEqual(c.got.map((g) => g[1].name).sort(), ['x', 'y']);
    }
  });
});
