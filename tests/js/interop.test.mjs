// One cluster of a Node Socket.IO server (the npm socket.io 4.8 with
// @socket.io/redis-adapter: tests/js/ref-server.mjs --redis, classic, or
// --redis-sharded) and two tabsyncd nodes (--store redis://, --redis-adapter
// classic|sharded; the second with two event loops), on one Redis (issue
// #12): each serves its own clients, and broadcasts made on either side
// reach the clients of both — to everyone, to a room (one and several),
// with rooms excepted, without the sender (socket.to), binary arguments
// included; and Node's server-side requests reach tabsyncd's sockets:
// fetchSockets, socketsJoin/Leave, disconnectSockets, serverSideEmit (a
// tabsyncd node acknowledges it without a value) and broadcasts with acks;
// and the other way, tabsyncd's requests (its admin API, /api/admin/cluster/)
// reach Node's sockets and Node's handlers: fetchSockets, serverSideEmit
// (Node's answer comes back), socketsJoin/Leave, disconnectSockets, and a
// node that never answers is reported as a timeout.
// docs/REDIS-WIRE.md says what is spoken.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { io } from 'socket.io-client';

import { startServer, IS_NODE, once, sleep } from './harness.mjs';
import { startRedis } from './cluster.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd and Node together: runs against tabsyncd' } : {};
const T = { timeout: 20000 };

for (const format of ['classic', 'sharded']) describe(`a Node Socket.IO server with @socket.io/redis-adapter (${format}) and tabsyncd nodes in one cluster`, SKIP, () => {
  let redis, node, ts1, ts2;
  const clients = new Set();
  const ADMIN = crypto.randomBytes(16).toString('hex');
  before(async () => {
    redis = await startRedis({ appendonly: false });
    node = await startServer({ target: 'node', single: true, extra: ['--redis', redis.url, ...(format === 'sharded' ? ['--redis-sharded'] : [])] });
    // the store (and with it the adapter) needs /session on: a secret
    const flags = ['--jwt-secret', crypto.randomBytes(32).toString('hex'), '--store', redis.url, '--recovery-window', '0', '--redis-adapter', format, '--admin-token', ADMIN];
    ts1 = await startServer({ single: true, extra: flags });
    ts2 = await startServer({ single: true, extra: [...flags, '--workers', '2'] });
    await sleep(300); // every (S|P)SUBSCRIBE confirmed before the first broadcast
  });
  after(async () => {
    for (const c of clients) c.close();
    try {
      // tabsyncd's stop() fails on a sanitizer report or a non-zero exit;
      // the Node reference server exits 1 when its Redis client is cut
      for (const s of [ts1, ts2]) await s?.stop();
    } finally {
      await node?.stop().catch(() => {});
      await redis?.stop();
    }
  });

  async function client(srv, name) {
    const c = io(srv.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { name } });
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
    await sleep(200); // sharded: each node's SSUBSCRIBE of its new rooms' channels
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
    await sleep(200);
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
  // ---- Node's server-side requests, answered by tabsyncd for its sockets ----

  it('fetchSockets from Node lists tabsyncd\'s sockets (ids, rooms, handshake), by room', T, async () => {
    const n = await client(node, 'fs-n'), a = await client(ts1, 'fs-a');
    const b = await client(ts2, 'fs-b'), b2 = await client(ts2, 'fs-b2');
    for (const c of [n, a, b]) await ask(c, 'join', 'fs');
    await ask(b2, 'join', 'fs-other');
    const all = await ask(n, 'fetch-sockets', null);
    assert.ok(Array.isArray(all), JSON.stringify(all));
    const ids = new Set(all.map((s) => s.id));
    for (const c of [n, a, b, b2]) assert.ok(ids.has(c.id), `${c.name} listed`);
    const inRoom = await ask(n, 'fetch-sockets', 'fs');
    assert.deepEqual(inRoom.map((s) => s.id).sort(), [n.id, a.id, b.id].sort());
    const sa = inRoom.find((s) => s.id === a.id);
    assert.deepEqual(sa.rooms.sort(), [a.id, 'fs'].sort(), 'its own room and the joined one');
    assert.deepEqual(sa.handshake.auth, { name: 'fs-a' }, 'the CONNECT payload');
    assert.equal(sa.handshake.query.transport, 'websocket');
    assert.equal(typeof sa.handshake.issued, 'number');
    assert.match(sa.handshake.address, /127\.0\.0\.1/);
    assert.deepEqual(sa.data, {});
  });

  it('socketsJoin / socketsLeave from Node move tabsyncd\'s sockets between rooms', T, async () => {
    const n = await client(node, 'sj-n'), a = await client(ts1, 'sj-a');
    const b = await client(ts2, 'sj-b'), out = await client(ts2, 'sj-out');
    for (const c of [n, a, b]) await ask(c, 'join', 'sj-src');
    await ask(n, 'sockets-join', 'sj-src', 'sj-dst');
    await sleep(300); // a request is fire-and-forget: no answer to wait for
    for (const c of [a, b]) assert.deepEqual(await ask(c, 'rooms'), [c.id, 'sj-dst', 'sj-src'].sort(), `${c.name} joined`);
    assert.deepEqual(await ask(out, 'rooms'), [out.id], 'not a socket outside the source room');
    const all = [n, a, b, out];
    clear(all);
    n.emit('to-room-all', 'sj-dst', 'moved', 1);
    await settle([n, a, b], (c) => c.got.length >= 1);
    for (const c of [n, a, b]) assert.deepEqual(c.got, [['moved', 1]], `${c.name}`);
    assert.deepEqual(out.got, []);
    await ask(n, 'sockets-leave', null, 'sj-src');
    await sleep(300);
    for (const c of [a, b]) assert.deepEqual(await ask(c, 'rooms'), [c.id, 'sj-dst'].sort(), `${c.name} left`);
  });

  it('disconnectSockets from Node disconnects tabsyncd\'s sockets in a room', T, async () => {
    const n = await client(node, 'ds-n'), a = await client(ts1, 'ds-a');
    const b = await client(ts2, 'ds-b'), stay = await client(ts1, 'ds-stay');
    for (const c of [a, b]) await ask(c, 'join', 'ds');
    const gone = [a, b].map((c) => once(c, 'disconnect'));
    await ask(n, 'disconnect-sockets', 'ds', false);
    const reasons = await Promise.race([Promise.all(gone), sleep(5000).then(() => 'timeout')]);
    assert.deepEqual(reasons.map((r) => (Array.isArray(r) ? r[0] : r)), ['io server disconnect', 'io server disconnect']);
    assert.ok(stay.connected && n.connected, 'sockets outside the room stay');
    for (const c of [a, b]) clients.delete(c);
  });

  it('serverSideEmit from Node: every tabsyncd node acknowledges without a value, at once', T, async () => {
    const n = await client(node, 'sse-n');
    assert.equal(await ask(n, 'server-count'), 3, 'Node counts both tabsyncd nodes as servers');
    assert.equal(await ask(n, 'server-side-emit', 'hello-servers', { x: 1 }), 'ok');
    const r = await ask(n, 'server-side-emit-ack', 'hello-servers', { x: 2 });
    assert.equal(r.error, undefined, JSON.stringify(r));
    assert.equal(r.responses.length, 2, 'one answer per tabsyncd node');
    for (const v of r.responses) assert.equal(v ?? null, null, 'no value');
    assert.ok(r.ms < 2000, `answered at once (${r.ms} ms), not at the timeout`);
  });

  it('broadcast with acks from Node collects the acks of tabsyncd\'s clients', T, async () => {
    const n = await client(node, 'ba-n'), n2 = await client(node, 'ba-n2');
    const a = await client(ts1, 'ba-a'), b = await client(ts2, 'ba-b'), b2 = await client(ts2, 'ba-b2');
    const out = await client(ts1, 'ba-out');
    const members = [n2, a, b, b2];
    for (const c of [n, ...members]) await ask(c, 'join', 'ba');
    for (const c of [...members, out]) c.on('question', (q, cb) => cb({ from: c.name, q }));
    const r = await ask(n, 'broadcast-with-ack', 'ba', 'question', 42);
    assert.equal(r.error, null, JSON.stringify(r));
    assert.deepEqual(r.responses.map((x) => x.from).sort(), members.map((c) => c.name).sort());
    for (const x of r.responses) assert.equal(x.q, 42);
    assert.ok(r.ms < 3000, `every ack in (${r.ms} ms), not at the timeout`);
    // binary arguments reach the clients, binary acks come back
    for (const c of [a, b]) c.on('blob-q', (buf, cb) => cb(Buffer.concat([Buffer.from(buf), Buffer.from([c.name.length])])));
    n2.on('blob-q', (buf, cb) => cb(Buffer.from(buf)));
    b2.on('blob-q', (buf, cb) => cb(Buffer.from(buf)));
    const rb = await ask(n, 'broadcast-with-ack', 'ba', 'blob-q', Buffer.from([7, 8]));
    assert.equal(rb.error, null, JSON.stringify(rb));
    assert.equal(rb.responses.length, 4);
    for (const x of rb.responses) assert.deepEqual([...Buffer.from(x)].slice(0, 2), [7, 8]);
  });
  // ---- tabsyncd's server-side requests (its admin API), answered by Node too ----

  async function cluster(srv, method, path, body) {
    const r = await fetch(`${srv.url}/api/admin/cluster/${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  }

  it('fetchSockets from tabsyncd lists every node\'s sockets, Node\'s included, by room', T, async () => {
    const n = await client(node, 'tfs-n'), a = await client(ts1, 'tfs-a');
    const b = await client(ts2, 'tfs-b'), b2 = await client(ts2, 'tfs-b2');
    for (const c of [n, a, b]) await ask(c, 'join', 'tfs');
    await ask(b2, 'join', 'tfs-other');
    for (const [srv, here] of [[ts2, [b]], [ts1, [a]]]) {
      const r = await cluster(srv, 'GET', 'sockets?nsp=/&room=tfs');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual([r.body.nodes, r.body.answered, r.body.timedOut, r.body.remote], [2, 2, false, true], 'Node and the other tabsyncd answered');
      assert.equal(r.body.local, 1, 'this node\'s socket, on whichever of its loops');
      assert.deepEqual(r.body.sockets.map((s) => s.id).sort(), [n.id, a.id, b.id].sort());
      assert.equal(r.body.sockets[0].id, here[0].id, 'this node\'s sockets first, as Node lists them');
      const sn = r.body.sockets.find((s) => s.id === n.id);
      assert.deepEqual(sn.rooms.sort(), [n.id, 'tfs'].sort(), 'a Node socket\'s rooms');
      assert.deepEqual(sn.handshake.auth, { name: 'tfs-n' }, 'its handshake, as Node describes it');
      const sa = r.body.sockets.find((s) => s.id === a.id);
      assert.deepEqual(sa.handshake.auth, { name: 'tfs-a' });
    }
    const all = await cluster(ts1, 'GET', 'sockets');
    const ids = new Set(all.body.sockets.map((s) => s.id));
    for (const c of [n, a, b, b2]) assert.ok(ids.has(c.id), `${c.name} listed`);
    const except = await cluster(ts1, 'GET', `sockets?room=tfs&room=tfs-other&except=${encodeURIComponent(n.id)}&except=${encodeURIComponent(b2.id)}`);
    assert.deepEqual(except.body.sockets.map((s) => s.id).sort(), [a.id, b.id].sort(), 'two rooms, two excepted (socket ids are rooms)');
  });

  it('broadcast from tabsyncd reaches every node\'s sockets in its rooms; with acks each client\'s answer comes back, Node\'s included, and at the timeout what came', T, async () => {
    const n = await client(node, 'tb-n'), a = await client(ts1, 'tb-a'), a2 = await client(ts1, 'tb-a2');
    const b = await client(ts2, 'tb-b'), out = await client(node, 'tb-out'), ex = await client(ts2, 'tb-ex');
    const members = [n, a, a2, b];
    for (const c of [...members, ex]) await ask(c, 'join', 'tb');
    await ask(ex, 'join', 'tb-skip');
    for (const c of [...members, out, ex]) c.on('tb-q', (q, cb) => cb({ from: c.name, q }));
    const t0 = Date.now();
    const r = await cluster(ts1, 'POST', 'broadcast', { rooms: ['tb'], except: 'tb-skip', event: 'tb-q', args: [7], ack: true, timeout: 4000 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.remote, r.body.nodes, r.body.answered, r.body.timedOut], [true, 2, 2, false], JSON.stringify(r.body));
    assert.equal(r.body.local, 2, 'this node\'s two sockets, on whichever of its loops');
    assert.equal(r.body.clients, 4, 'every node\'s clients counted');
    assert.deepEqual(r.body.answers.map((x) => x.from).sort(), members.map((c) => c.name).sort());
    for (const x of r.body.answers) assert.equal(x.q, 7);
    assert.ok(Date.now() - t0 < 3000, 'every ack in, not at the timeout');
    // a Node client and one of ours that never answer: the answer at the timeout
    for (const c of [n, a2]) { c.off('tb-q'); c.on('tb-q', () => {}); }
    const t1 = Date.now();
    const slow = await cluster(ts2, 'POST', 'broadcast', { rooms: 'tb', except: ['tb-skip'], event: 'tb-q', args: [8], ack: true, timeout: 700 });
    const ms = Date.now() - t1;
    assert.equal(slow.status, 200, JSON.stringify(slow.body));
    assert.deepEqual([slow.body.clients, slow.body.timedOut], [4, true]);
    assert.deepEqual(slow.body.answers.map((x) => x.from).sort(), [a.name, b.name].sort());
    assert.ok(ms >= 650 && ms < 3000, `at the timeout (${ms} ms)`);
    // without acks: delivered to the rooms' sockets of every node, once
    clear([...members, out, ex]);
    const plain = await cluster(ts2, 'POST', 'broadcast', { rooms: 'tb', event: 'tb-note', args: ['hi', { k: 1 }] });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.deepEqual([plain.body.local, plain.body.nodes, plain.body.answers, plain.body.clients], [2, 2, undefined, undefined]);
    await settle([...members, ex], (c) => c.got.length >= 1);
    for (const c of [...members, ex]) assert.deepEqual(c.got, [['tb-note', 'hi', { k: 1 }]], c.name);
    assert.deepEqual(out.got, [], 'not a socket outside the room');
    assert.equal((await cluster(ts1, 'POST', 'broadcast', { rooms: 'tb' })).status, 400, 'an event is needed');
    assert.equal((await cluster(ts1, 'GET', 'broadcast')).status, 405);
  });

  it('allRooms from tabsyncd: every node\'s rooms with the classic format (Node\'s included), this node\'s with the sharded one', T, async () => {
    const n = await client(node, 'tar-n'), a = await client(ts1, 'tar-a'), b = await client(ts2, 'tar-b');
    await ask(n, 'join', 'tar-node');
    await ask(a, 'join', 'tar-1');
    await ask(b, 'join', 'tar-2');
    const r = await cluster(ts1, 'GET', 'rooms?nsp=%2F');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([...r.body.rooms].sort(), r.body.rooms, 'sorted');
    assert.equal(new Set(r.body.rooms).size, r.body.rooms.length, 'each once');
    assert.ok(r.body.rooms.includes('tar-1') && r.body.rooms.includes(a.id), 'this node\'s rooms, socket ids included');
    if (format === 'classic') {
      assert.deepEqual([r.body.remote, r.body.nodes, r.body.answered, r.body.timedOut], [true, 2, 2, false]);
      for (const room of ['tar-node', n.id, 'tar-2', b.id]) assert.ok(r.body.rooms.includes(room), `${room} of another node`);
      const mine = await ask(n, 'all-rooms');
      for (const room of ['tar-1', 'tar-2', 'tar-node']) assert.ok(mine.includes(room), `Node's allRooms has ${room}`);
    } else {
      assert.equal(r.body.remote, false, 'the sharded format has no allRooms request: this node only');
      assert.ok(!r.body.rooms.includes('tar-node') && !r.body.rooms.includes('tar-2'));
    }
    assert.equal((await cluster(ts1, 'GET', 'rooms?room=x')).status, 400, 'every room: no filter');
    assert.equal((await cluster(ts1, 'POST', 'rooms', {})).status, 405);
  });

  it('serverSideEmit from tabsyncd: Node\'s handler answers through its ack, the other tabsyncd without a value', T, async () => {
    const n = await client(node, 'tse-n');
    const t0 = Date.now();
    const r = await cluster(ts2, 'POST', 'emit', { event: 'cluster-ping', args: [{ x: 1 }], ack: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.nodes, r.body.answered, r.body.timedOut], [2, 2, false]);
    assert.deepEqual(r.body.answers.filter((x) => x !== null), [{ from: 'node', got: { x: 1 } }], 'Node\'s answer came back');
    assert.equal(r.body.answers.filter((x) => x === null).length, 1, 'tabsyncd answers without a value');
    assert.ok(Date.now() - t0 < 2000, 'every answer in, not at the timeout');
    const one = await cluster(ts1, 'POST', 'emit', { event: 'cluster-note', args: ['hi', 2] });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(one.body.nodes, 2);
    assert.equal(one.body.answers, undefined, 'without ack: no answers awaited');
    const t1 = Date.now();
    while (!(await ask(n, 'server-side-received')).length && Date.now() - t1 < 3000) await sleep(50);
    assert.deepEqual(await ask(n, 'server-side-received'), [['hi', 2]], 'Node\'s handler got the event');
    const bad = await cluster(ts1, 'POST', 'emit', { args: [] });
    assert.equal(bad.status, 400);
  });

  it('socketsJoin / socketsLeave from tabsyncd move Node\'s sockets too; a broadcast to the joined room reaches them', T, async () => {
    const n = await client(node, 'tj-n'), a = await client(ts1, 'tj-a');
    const b = await client(ts2, 'tj-b'), out = await client(node, 'tj-out');
    for (const c of [n, a, b]) await ask(c, 'join', 'tj-src');
    const j = await cluster(ts2, 'POST', 'join', { rooms: ['tj-src'], names: ['tj-dst'] });
    assert.equal(j.status, 200, JSON.stringify(j.body));
    assert.deepEqual([j.body.local, j.body.nodes], [1, 2]);
    await sleep(300); // Node's socketsJoin has no answer either
    for (const c of [n, a, b]) assert.deepEqual(await ask(c, 'rooms'), [c.id, 'tj-dst', 'tj-src'].sort(), `${c.name} joined`);
    assert.deepEqual(await ask(out, 'rooms'), [out.id], 'not a socket outside the source room');
    const all = [n, a, b, out];
    clear(all);
    a.emit('to-room-all', 'tj-dst', 'moved', 1);
    await settle([n, a, b], (c) => c.got.length >= 1);
    for (const c of [n, a, b]) assert.deepEqual(c.got, [['moved', 1]], `${c.name}`);
    assert.deepEqual(out.got, []);
    const l = await cluster(ts1, 'POST', 'leave', { names: 'tj-src' });
    assert.equal(l.status, 200, JSON.stringify(l.body));
    await sleep(300);
    for (const c of [n, a, b]) assert.deepEqual(await ask(c, 'rooms'), [c.id, 'tj-dst'].sort(), `${c.name} left`);
    const none = await cluster(ts1, 'POST', 'join', { rooms: ['tj-src'] });
    assert.equal(none.status, 400, 'join needs names');
  });

  it('disconnectSockets from tabsyncd disconnects Node\'s sockets in a room too', T, async () => {
    const n = await client(node, 'td-n'), a = await client(ts1, 'td-a');
    const b = await client(ts2, 'td-b'), stay = await client(node, 'td-stay');
    for (const c of [n, a, b]) await ask(c, 'join', 'td');
    const gone = [n, a, b].map((c) => once(c, 'disconnect'));
    const r = await cluster(ts1, 'POST', 'disconnect', { rooms: 'td' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.local, r.body.nodes], [1, 2]);
    const reasons = await Promise.race([Promise.all(gone), sleep(5000).then(() => 'timeout')]);
    assert.deepEqual(reasons.map((x) => (Array.isArray(x) ? x[0] : x)), Array(3).fill('io server disconnect'));
    assert.ok(stay.connected, 'a socket outside the room stays');
    for (const c of [n, a, b]) clients.delete(c);
  });

  it('a node that never answers: tabsyncd answers with what came at the timeout and says so', T, async () => {
    const { createClient } = await import('redis');
    const silent = createClient({ url: redis.url });
    await silent.connect();
    try {
      // counted as a server (NUMSUB / SHARDNUMSUB), never answers
      if (format === 'sharded') await silent.sSubscribe('socket.io#/#', () => {});
      else await silent.subscribe('socket.io-request#/#', () => {});
      const a = await client(ts1, 'tt-a');
      const t0 = Date.now();
      const r = await cluster(ts1, 'GET', 'sockets?timeout=600');
      const ms = Date.now() - t0;
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual([r.body.nodes, r.body.answered, r.body.timedOut], [3, 2, true]);
      assert.ok(r.body.sockets.some((s) => s.id === a.id), 'what came is there');
      assert.ok(ms >= 550 && ms < 3000, `at the timeout (${ms} ms)`);
      const e = await cluster(ts2, 'POST', 'emit', { event: 'cluster-ping', args: [3], ack: true, timeout: 600 });
      assert.deepEqual([e.body.nodes, e.body.answered, e.body.timedOut], [3, 2, true]);
      assert.deepEqual(e.body.answers.filter((x) => x !== null), [{ from: 'node', got: 3 }]);
    } finally {
      await silent.disconnect();
    }
  });

  it('the cluster API wants the admin token and the right method', T, async () => {
    const noTok = await fetch(`${ts1.url}/api/admin/cluster/sockets`);
    assert.equal(noTok.status, 401);
    assert.equal((await cluster(ts1, 'POST', 'sockets', {})).status, 405);
    assert.equal((await cluster(ts1, 'GET', 'emit')).status, 405);
    assert.equal((await cluster(ts1, 'GET', 'nope')).status, 404);
    assert.equal((await cluster(ts1, 'GET', 'sockets?timeout=0')).status, 400);
    for (const q of ['timeout=x', 'timeout=60001', 'room=%00', 'room=%zz', 'room=%ff', 'nsp=/&nsp=/custom'])
      assert.equal((await cluster(ts1, 'GET', `sockets?${q}`)).status, 400, q);
    const custom = await cluster(ts1, 'GET', 'sockets?nsp=%2Fcustom&timeout=2000');
    assert.equal(custom.status, 200, 'another namespace, percent-encoded');
    assert.equal((await cluster(ts1, 'POST', 'join', { names: 'x', nsp: 'nope' })).status, 400);
  });
  it('sharded: a tabsyncd node subscribes to a room\'s channel only while it has a socket in it', { ...T, skip: format !== 'sharded' && 'sharded only' }, async () => {
    const { createClient } = await import('redis');
    const r = createClient({ url: redis.url });
    await r.connect();
    try {
      const subs = async (ch) => Number((await r.sendCommand(['PUBSUB', 'SHARDNUMSUB', ch]))[1]);
      const ch = 'socket.io#/#dyn-room#';
      assert.equal(await subs(ch), 0);
      const a = await client(ts1, 'dyn-a'), a2 = await client(ts1, 'dyn-a2');
      await ask(a, 'join', 'dyn-room');
      await ask(a2, 'join', 'dyn-room');
      await sleep(200);
      assert.equal(await subs(ch), 1, 'one subscription for the node');
      await ask(a, 'leave', 'dyn-room');
      await sleep(200);
      assert.equal(await subs(ch), 1, 'a member is left');
      a2.close(); // the last member goes with its connection
      await sleep(300);
      assert.equal(await subs(ch), 0, 'unsubscribed with the last member');
      assert.equal(await subs(`socket.io#/#${a.id}#`), 0, 'a socket id is no room of its own channel');
      assert.equal(await subs('socket.io#/#'), 3, 'the main channel: Node and both tabsyncd nodes');
    } finally {
      await r.disconnect();
    }
  });
});
