#!/usr/bin/env node
// rmsg-vectors.mjs - golden vectors of the @socket.io/redis-adapter wire
// format (src/adapter/rmsg.c, docs/REDIS-WIRE.md), captured from the real
// thing: a redis-server of our own on a free loopback port, real Socket.IO
// servers with the real adapter (classic `createAdapter` and
// `createShardedAdapter`), real socket.io-client sockets, and a raw
// subscriber that records every message on the wire (PSUBSCRIBE * for the
// classic PUBLISHes; SSUBSCRIBE of each channel for the sharded SPUBLISHes,
// which patterns never see).
//
// Writes tests/adapter/rmsg-vectors.json (or the path given as the first
// argument): one row per captured message with its format, channel, bytes
// (hex), what it is (`kind`, named as in ts_adp_rmsg_kind_t) and the value
// Node's own decoder (notepack.io or JSON.parse) reads from it, written as
// tabsync's decoder must give it back: every Buffer / ArrayBuffer as
// {"_placeholder":true,"num":i} with its bytes in `attach`, Dates as
// toJSON() strings, undefined map values dropped and undefined array
// elements as null.
//
// The vectors are random by nature (uids, request ids, socket ids, handshake
// times), so the file is committed and regenerated only when the adapter
// changes: `node tests/adapter/rmsg-vectors.mjs`. Stops everything it
// started (redis-server by its pid).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { Server } = require('socket.io');
const { io: ioc } = require('socket.io-client');
const { createClient } = require('redis');
const { createAdapter, createShardedAdapter } = require('@socket.io/redis-adapter');
// the notepack.io the adapter itself uses (its own copy, not the hoisted one)
const adapterRequire = createRequire(require.resolve('@socket.io/redis-adapter'));
const notepack = adapterRequire('notepack.io');
const { MessageType } = adapterRequire('socket.io-adapter');

const OUT = process.argv[2] || path.join(here, 'rmsg-vectors.json');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startRedis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmsg-redis-'));
  const port = await freePort();
  const conf = path.join(dir, 'redis.conf');
  fs.writeFileSync(conf, [
    `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no',
    'daemonize no', 'loglevel warning', `logfile ${path.join(dir, 'redis.log')}`,
  ].join('\n') + '\n');
  const proc = spawn('redis-server', [conf], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const c = createClient({ url });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      await c.quit();
      return { proc, dir, url };
    } catch {
      await sleep(50);
    }
  }
  proc.kill('SIGTERM');
  throw new Error(`redis-server did not answer on ${url}`);
}

// ---- the value Node's decoder reads, in the form tabsync's decoder gives ----

function normalise(value, attach) {
  if (Buffer.isBuffer(value) || value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    const b = Buffer.isBuffer(value) ? value
      : value instanceof ArrayBuffer ? Buffer.from(value)
        : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    attach.push(b.toString('hex'));
    return { _placeholder: true, num: attach.length - 1 };
  }
  if (value instanceof Date) return value.toJSON();
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : normalise(v, attach)));
  if (value && typeof value === 'object') {
    const o = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) o[k] = normalise(v, attach);
    return o;
  }
  return value;
}

const CLASSIC_REQ = ['SOCKETS', 'ALL_ROOMS', 'SOCKETS_JOIN', 'SOCKETS_LEAVE', 'DISCONNECT_SOCKETS',
  'FETCH_SOCKETS', 'SERVER_SIDE_EMIT', 'BROADCAST_WITH_ACK'];
const SHARDED = { 1: 'INITIAL_HEARTBEAT', 2: 'HEARTBEAT', 3: 'BROADCAST', 4: 'SOCKETS_JOIN',
  5: 'SOCKETS_LEAVE', 6: 'DISCONNECT_SOCKETS', 7: 'FETCH_SOCKETS', 8: 'FETCH_SOCKETS_RESPONSE',
  9: 'SERVER_SIDE_EMIT', 10: 'SERVER_SIDE_EMIT_RESPONSE', 11: 'BROADCAST_CLIENT_COUNT',
  12: 'BROADCAST_ACK', 13: 'ADAPTER_CLOSE' };

// What a message is, as the adapter that receives it tells (RedisAdapter
// onmessage/onrequest/onresponse, ClusterAdapter onMessage/onResponse).
function kindOf(format, channel, msg) {
  if (format === 'sharded') {
    if (msg.type === 3 && msg.data.requestId !== undefined) return 'BROADCAST_WITH_ACK';
    return SHARDED[msg.type];
  }
  if (/^[^#]*-request#/.test(channel)) return CLASSIC_REQ[msg.type];
  if (/^[^#]*-response#/.test(channel)) {
    if (msg.type === 6) return 'SERVER_SIDE_EMIT_RESPONSE';
    if (msg.type === 8) return 'BROADCAST_CLIENT_COUNT';
    if (msg.type === 9) return 'BROADCAST_ACK';
    if (Array.isArray(msg.sockets)) {
      return msg.sockets.length && typeof msg.sockets[0] === 'string'
        ? 'SOCKETS_RESPONSE' : 'FETCH_SOCKETS_RESPONSE';
    }
    if (Array.isArray(msg.rooms)) return 'ALL_ROOMS_RESPONSE';
    return 'RESPONSE';
  }
  return 'BROADCAST';
}

// ---- capture ----------------------------------------------------------------

const vectors = [];
let label = 'setup';
let seq = 0;
const names = new Map();

function record(format, channel, bytes) {
  const hex = bytes.toString('hex');
  const json = bytes[0] === 0x7b;
  // the classic broadcast is always msgpack; everything else says by its first byte
  const value = json ? JSON.parse(bytes.toString()) : notepack.decode(bytes);
  const attach = [];
  const decoded = normalise(value, attach);
  const n = (names.get(`${format}/${label}`) || 0) + 1;
  names.set(`${format}/${label}`, n);
  vectors.push({
    name: `${format}/${label}${n > 1 ? ` #${n}` : ''}`,
    format,
    channel: channel.toString(),
    kind: kindOf(format, channel.toString(), value),
    encoding: json ? 'json' : 'msgpack',
    hex,
    decoded,
    attach,
    seq: seq++,
  });
}

async function op(name, fn, wait = 300) {
  label = name;
  await fn();
  await sleep(wait);
}

// A Socket.IO server on the given adapter, with sockets whose query puts
// them in rooms, acks with a value, and some socket.data.
async function startIo(adapter, opts = {}) {
  const httpServer = http.createServer();
  await new Promise((r) => httpServer.listen(0, '127.0.0.1', r));
  const io = new Server(httpServer, { adapter, ...opts });
  const setup = (nsp) => nsp.on('connection', (socket) => {
    const q = socket.handshake.query;
    if (q.rooms) for (const r of String(q.rooms).split(',')) socket.join(r);
    if (q.user) socket.data = { user: q.user, level: 3 };
    if (q.avatar) socket.data.avatar = Buffer.from(q.avatar);
  });
  setup(io.of('/'));
  setup(io.of('/chat'));
  return { io, httpServer, port: httpServer.address().port };
}

function connect(port, nsp, query) {
  return new Promise((resolve, reject) => {
    const s = ioc(`http://127.0.0.1:${port}${nsp}`, { transports: ['websocket'], query, forceNew: true });
    s.on('ask', (n, cb) => cb(query.avatar ? { n, from: query.user, bin: Buffer.from([n, 0xff]) }
      : { n, from: query.user }));
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}

async function redisClient(url) {
  const c = createClient({ url });
  c.on('error', (e) => console.error('redis client:', e.message));
  await c.connect();
  return c;
}

async function classic(url, closers) {
  const rawSub = await redisClient(url);
  closers.push(() => rawSub.quit());
  await rawSub.pSubscribe('*', (msg, channel) => record('classic', channel, msg), true);

  const mk = async (adapterOpts) => {
    const pub = await redisClient(url);
    const sub = pub.duplicate();
    sub.on('error', () => {});
    await sub.connect();
    const s = await startIo(createAdapter(pub, sub, adapterOpts));
    closers.push(async () => {
      s.io.close();
      await pub.quit();
      await sub.quit();
    });
    return s;
  };
  const A = await mk();
  const B = await mk();
  // publishOnSpecificResponseChannel: its answers go to the requester's channel
  const C = await mk({ publishOnSpecificResponseChannel: true });
  await sleep(200);

  const clients = [
    await connect(A.port, '/', { user: 'a1' }),
    await connect(B.port, '/', { user: 'b1', rooms: 'r1', avatar: 'pic' }),
    await connect(B.port, '/', { user: 'b2', rooms: 'r2' }),
    await connect(B.port, '/chat', { user: 'c1', rooms: 'lobby' }),
  ];
  closers.push(() => clients.forEach((c) => c.close()));
  B.io.on('sse-ack', (n, cb) => cb({ got: n, by: 'B' }));
  C.io.on('sse-ack', (n, cb) => cb({ got: n, by: 'C' }));
  await sleep(200);

  await op('broadcast to all', () => A.io.emit('hello', 'world', 1, -7, 2.5, true, false, null,
    { a: [1, 'x'], 'b c': { d: 'é€😀' } }));
  await op('broadcast to one room', () => A.io.to('r1').emit('ev', 'one-room'));
  await op('broadcast to rooms except volatile', () => A.io.volatile.to(['r1', 'r2']).except('r3')
    .emit('ev', 'several'));
  await op('broadcast binary', () => A.io.emit('bin', Buffer.from([1, 2, 3]),
    { nested: Buffer.from('hi'), list: [Buffer.alloc(0)] }));
  await op('broadcast arraybuffer', () => A.io.emit('ab', new Uint8Array([9, 8, 7])));
  await op('broadcast numbers strings date', () => A.io.emit('num', 255, 256, 65536, 2 ** 32,
    2 ** 40, -33, -129, -40000, -(2 ** 31) - 1, 0.1, -1.5e300, 'x'.repeat(40), 'y'.repeat(300),
    new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678))));
  await op('broadcast compress false', () => A.io.compress(false).emit('c', {}));
  await op('broadcast undefined', () => A.io.emit('u', undefined, { k: undefined, v: 1 }));
  await op('broadcast from a socket except itself', () => {
    const s = [...B.io.of('/').sockets.values()].find((x) => x.data.user === 'b2');
    s.broadcast.emit('from-b2', 'hi');
  });
  await op('broadcast to a socket id', () => A.io.to(clients[2].id).emit('direct', 1));
  await op('broadcast on /chat', () => A.io.of('/chat').to('lobby').emit('msg', 'hi chat'));
  await op('serverSideEmit', () => A.io.serverSideEmit('sse', 1, 'two'));
  await op('serverSideEmit with ack', () => A.io.serverSideEmit('sse-ack', 3, () => {}));
  await op('fetchSockets', () => A.io.fetchSockets().catch(() => {}));
  await op('fetchSockets in room except', () => A.io.in('r1').except('r2').fetchSockets().catch(() => {}));
  await op('socketsJoin', () => A.io.in('r1').socketsJoin(['r9', 'r10']));
  await op('socketsLeave', () => A.io.in('r1').except('r2').socketsLeave('r9'));
  await op('allRooms', () => A.io.of('/').adapter.allRooms().catch(() => {}));
  await op('broadcast with ack', () => A.io.timeout(500).to('r1').emit('ask', 5, () => {}), 700);
  await op('broadcast with ack to all', () => A.io.timeout(500).emit('ask', 6, () => {}), 700);
  // Requests 8.x no longer sends (SOCKETS, and REMOTE_JOIN / REMOTE_LEAVE /
  // REMOTE_DISCONNECT of one socket) but still answers: the request is
  // written here by hand, as older versions wrote it; the answers are real.
  const reqChan = 'socket.io-request#/#';
  const pub = await redisClient(url);
  closers.push(() => pub.quit());
  const b1 = [...B.io.of('/').sockets.values()].find((x) => x.data.user === 'b1');
  await op('handmade SOCKETS request', () => pub.publish(reqChan,
    JSON.stringify({ uid: 'legacy', requestId: 'req001', type: 0, rooms: ['r1'] })));
  await op('handmade REMOTE_JOIN of one socket', () => pub.publish(reqChan,
    JSON.stringify({ uid: 'legacy', requestId: 'req002', type: 2, sid: b1.id, room: 'solo' })));
  await op('handmade REMOTE_LEAVE of one socket', () => pub.publish(reqChan,
    JSON.stringify({ uid: 'legacy', requestId: 'req003', type: 3, sid: b1.id, room: 'solo' })));
  await op('disconnectSockets', () => A.io.in('r2').disconnectSockets(true));
  await op('handmade REMOTE_DISCONNECT of one socket', () => pub.publish(reqChan,
    JSON.stringify({ uid: 'legacy', requestId: 'req004', type: 4, sid: b1.id, close: false })));
  await rawSub.pUnsubscribe('*');
}

async function sharded(url, closers) {
  const rawSub = await redisClient(url);
  closers.push(() => rawSub.quit());
  const listen = (ch) => rawSub.sSubscribe(ch, (msg, channel) => record('sharded', channel, msg), true);

  const mk = async () => {
    const pub = await redisClient(url);
    const sub = pub.duplicate();
    sub.on('error', () => {});
    await sub.connect();
    const s = await startIo(createShardedAdapter(pub, sub));
    closers.push(async () => {
      s.io.close();
      await pub.quit();
      await sub.quit();
    });
    return s;
  };
  const A = await mk();
  const B = await mk();
  const uidA = A.io.of('/').adapter.uid;
  const uidB = B.io.of('/').adapter.uid;
  for (const ch of ['socket.io#/#', 'socket.io#/#r1#', 'socket.io#/#r2#', `socket.io#/#${uidA}#`,
    `socket.io#/#${uidB}#`, 'socket.io#/chat#', 'socket.io#/chat#lobby#']) await listen(ch);
  // SHARDNUMSUB now counts this subscriber too: requests that wait for one
  // answer per server time out (their answers are captured all the same).
  await sleep(200);
  const clients = [
    await connect(A.port, '/', { user: 'a1' }),
    await connect(B.port, '/', { user: 'b1', rooms: 'r1', avatar: 'pic' }),
    await connect(B.port, '/', { user: 'b2', rooms: 'r2' }),
    await connect(B.port, '/chat', { user: 'c1', rooms: 'lobby' }),
  ];
  closers.push(() => clients.forEach((c) => c.close()));
  B.io.on('sse-ack', (n, cb) => cb({ got: n, by: 'B' }));
  B.io.on('sse-ack-bin', (n, cb) => cb({ got: n, bin: Buffer.from([4, 5]) }));
  await sleep(200);

  await op('broadcast to all', () => A.io.emit('hello', 'world', 1, -7, 2.5, true, false, null,
    { a: [1, 'x'], 'b c': { d: 'é€😀' } }));
  await op('broadcast to one room', () => A.io.to('r1').emit('ev', 'one-room'));
  await op('broadcast to rooms except volatile', () => A.io.volatile.to(['r1', 'r2']).except('r3')
    .emit('ev', 'several'));
  await op('broadcast binary', () => A.io.emit('bin', Buffer.from([1, 2, 3]),
    { nested: Buffer.from('hi'), list: [Buffer.alloc(0)] }));
  await op('broadcast numbers strings date', () => A.io.emit('num', 255, 256, 65536, 2 ** 32,
    2 ** 40, -33, -129, -40000, -(2 ** 31) - 1, 0.1, -1.5e300, 'x'.repeat(40), 'y'.repeat(300),
    new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678))));
  await op('broadcast compress false', () => A.io.compress(false).emit('c', {}));
  await op('broadcast to a socket id', () => A.io.to(clients[2].id).emit('direct', 1));
  await op('broadcast on /chat', () => A.io.of('/chat').to('lobby').emit('msg', 'hi chat'));
  await op('serverSideEmit', () => A.io.serverSideEmit('sse', 1, 'two'));
  await op('serverSideEmit binary', () => A.io.serverSideEmit('sse-bin', Buffer.from([7])));
  await op('serverSideEmit with ack', () => A.io.serverSideEmit('sse-ack', 3, () => {}));
  await op('serverSideEmit with ack binary answer', () => A.io.serverSideEmit('sse-ack-bin', 4, () => {}));
  await op('fetchSockets', () => A.io.fetchSockets().catch(() => {}));
  await op('fetchSockets in room except', () => A.io.in('r2').except('r1').fetchSockets().catch(() => {}));
  await op('socketsJoin', () => A.io.in('r1').socketsJoin(['r9', 'r10']));
  await op('socketsLeave', () => A.io.in('r1').except('r2').socketsLeave('r9'));
  await op('broadcast with ack', () => A.io.timeout(500).to('r1').emit('ask', 5, () => {}), 700);
  await op('broadcast with ack to all', () => A.io.timeout(500).emit('ask', 6, () => {}), 700);
  await op('disconnectSockets', () => A.io.in('r2').disconnectSockets(true));
  // ShardedRedisAdapter extends ClusterAdapter, which sends no heartbeats
  // (ClusterAdapterWithHeartbeat does): these go through the adapter's own
  // publish path (uid, nsp, encoding, channel) with the message a
  // heartbeating ClusterAdapter sends.
  const adp = A.io.of('/').adapter;
  await op('synthesised INITIAL_HEARTBEAT', () => adp.publish({ type: MessageType.INITIAL_HEARTBEAT }));
  await op('synthesised HEARTBEAT', () => adp.publish({ type: MessageType.HEARTBEAT }));
  await op('synthesised ADAPTER_CLOSE', () => adp.publish({ type: MessageType.ADAPTER_CLOSE }));
}

async function main() {
  const redis = await startRedis();
  // a crash still stops our redis-server (by its pid)
  process.on('exit', () => redis.proc.exitCode === null && redis.proc.kill('SIGTERM'));
  const closers = [];
  try {
    await classic(redis.url, closers);
    await sharded(redis.url, closers);
  } finally {
    label = 'teardown';
    for (const c of closers.reverse()) {
      try {
        await c();
      } catch {
        // already closed
      }
    }
    redis.proc.kill('SIGTERM');
    await new Promise((r) => (redis.proc.exitCode !== null ? r() : redis.proc.once('exit', r)));
    fs.rmSync(redis.dir, { recursive: true, force: true });
  }
  const rows = vectors.filter((v) => !v.name.includes('/teardown') && !v.name.includes('/setup'));
  const doc = {
    about: 'Golden vectors of @socket.io/redis-adapter, captured by tests/adapter/rmsg-vectors.mjs; see docs/REDIS-WIRE.md',
    versions: {
      '@socket.io/redis-adapter': require('@socket.io/redis-adapter/package.json').version,
      'socket.io-adapter': adapterRequire('socket.io-adapter/package.json').version,
      'notepack.io': adapterRequire('notepack.io/package.json').version,
      'socket.io': require('socket.io/package.json').version,
    },
    vectors: rows.map(({ seq: _s, ...v }) => v),
  };
  fs.writeFileSync(OUT, JSON.stringify(doc, null, 1) + '\n');
  console.log(`${rows.length} vectors written to ${OUT}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
