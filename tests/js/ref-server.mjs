// Reference implementation of the tabsyncd test app on the real npm socket.io
// server. The integration tests run against it with TS_TARGET=node to prove the
// tests themselves are right; tabsyncd implements the same spec (README.md here).
//
// usage: node ref-server.mjs --listen 127.0.0.1:0 (--test-app | --conformance)
//          [--parser msgpack] [--recovery-window MS] [--ping-interval MS]
//          [--ping-timeout MS] [--max-payload BYTES]
//          [--redis URL [--redis-sharded]]  (@socket.io/redis-adapter: the
//          interop tests put this server and tabsyncd nodes on one Redis;
//          the test namespaces then also take fetch-sockets, sockets-join,
//          sockets-leave, disconnect-sockets, server-side-emit[-ack],
//          broadcast-with-ack, server-count and all-rooms, which act on the cluster)
// Prints "tabsyncd listening on http://127.0.0.1:PORT/" once ready.
import http from 'node:http';
import { Server } from 'socket.io';
import { Server as EngineServer } from 'engine.io';
import msgpackParser from 'socket.io-msgpack-parser';

function parseArgs(argv) {
  const o = {
    listen: '127.0.0.1:0',
    testApp: false,
    conformance: false,
    parser: 'json',
    recoveryWindow: 120000,
    pingInterval: 25000,
    pingTimeout: 20000,
    maxPayload: 1e6,
    redis: '',
    redisSharded: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const num = () => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a}: bad number`);
      return v;
    };
    switch (a) {
      case '--listen': o.listen = val(); break;
      case '--test-app': o.testApp = true; break;
      case '--conformance': o.conformance = true; break;
      case '--parser': o.parser = val(); break;
      case '--recovery-window': o.recoveryWindow = num(); break;
      case '--ping-interval': o.pingInterval = num(); break;
      case '--ping-timeout': o.pingTimeout = num(); break;
      case '--max-payload': o.maxPayload = num(); break;
      case '--redis': o.redis = val(); break;
      case '--redis-sharded': o.redisSharded = true; break;
      default: throw new Error(`unknown flag ${a}`);
    }
  }
  if (o.parser !== 'json' && o.parser !== 'msgpack') throw new Error('--parser json|msgpack');
  return o;
}

const DYN_RE = /^\/dyn-[a-z0-9]+$/;

// With --redis: what a Node app asks of the whole cluster through its
// adapter (the server-side requests of @socket.io/redis-adapter), triggered
// by a client's event and answered through its ack, for tests/js/interop.
function setupClusterHooks(socket) {
  const nsp = socket.nsp;
  const sel = (room) => (room ? nsp.in(room) : nsp);
  const ok = (cb, v) => { if (typeof cb === 'function') cb(v); };
  socket.on('fetch-sockets', async (room, cb) => {
    try {
      const socks = await sel(room).fetchSockets();
      ok(cb, socks.map((s) => ({ id: s.id, rooms: [...s.rooms], handshake: s.handshake, data: s.data })));
    } catch (err) { ok(cb, { error: err.message }); }
  });
  socket.on('sockets-join', (room, target, cb) => { sel(room).socketsJoin(target); ok(cb, 'ok'); });
  socket.on('sockets-leave', (room, target, cb) => { sel(room).socketsLeave(target); ok(cb, 'ok'); });
  socket.on('disconnect-sockets', (room, close, cb) => { sel(room).disconnectSockets(close); ok(cb, 'ok'); });
  socket.on('server-side-emit', (event, arg, cb) => { nsp.serverSideEmit(event, arg); ok(cb, 'ok'); });
  socket.on('server-side-emit-ack', async (event, arg, cb) => {
    try {
      const t0 = Date.now();
      const responses = await nsp.serverSideEmitWithAck(event, arg);
      ok(cb, { responses, ms: Date.now() - t0 });
    } catch (err) { ok(cb, { error: err.message }); }
  });
  socket.on('broadcast-with-ack', (room, event, arg, cb) => {
    const t0 = Date.now();
    sel(room).except(socket.id).timeout(4000).emit(event, arg, (err, responses) =>
      ok(cb, { error: err ? err.message : null, responses, ms: Date.now() - t0 }));
  });
  socket.on('server-count', async (cb) => ok(cb, await nsp.adapter.serverCount()));
  socket.on('all-rooms', async (cb) => {
    try { ok(cb, [...await nsp.adapter.allRooms()]); } catch (err) { ok(cb, { error: err.message }); }
  });
  socket.on('server-side-received', (cb) => ok(cb, nsp.serverSideReceived || []));
}

// With --redis: the namespace's handlers of other servers' serverSideEmit
// (a tabsyncd node's, through its admin API): one answers through its ack,
// one records what came, for tests/js/interop.
function setupServerSideHandlers(nsp) {
  nsp.serverSideReceived = [];
  nsp.on('cluster-ping', (arg, cb) => { if (typeof cb === 'function') cb({ from: 'node', got: arg }); });
  nsp.on('cluster-note', (...args) => { nsp.serverSideReceived.push(args); });
}

function setupTestNamespace(nsp, cluster = false) {
  nsp.use((socket, next) => {
    const auth = socket.handshake.auth || {};
    if (typeof auth.refuse === 'string') {
      const err = new Error(auth.refuse);
      err.data = { code: 403 };
      return next(err);
    }
    next();
  });
  nsp.on('connection', (socket) => {
    const fnLast = (args) => (typeof args[args.length - 1] === 'function' ? args.pop() : () => {});
    socket.emit('auth', socket.handshake.auth);
    if (cluster) setupClusterHooks(socket);
    socket.on('message', (...args) => socket.emit('message-back', ...args));
    socket.on('message-with-ack', (...args) => {
      const cb = fnLast(args);
      cb(...args);
    });
    socket.on('join', (room, cb) => {
      socket.join(room);
      if (typeof cb === 'function') cb('ok');
    });
    socket.on('leave', (room, cb) => {
      socket.leave(room);
      if (typeof cb === 'function') cb('ok');
    });
    socket.on('rooms', (cb) => {
      if (typeof cb === 'function') cb([...socket.rooms].sort());
    });
    socket.on('to-room', (room, event, ...args) => socket.to(room).emit(event, ...args));
    socket.on('to-room-all', (room, event, ...args) => socket.nsp.to(room).emit(event, ...args));
    socket.on('broadcast', (event, ...args) => socket.broadcast.emit(event, ...args));
    socket.on('broadcast-except', (room, exceptRoom, event, ...args) =>
      socket.nsp.to(room).except(exceptRoom).emit(event, ...args));
    socket.on('server-ack', (event, ...args) => {
      const cb = fnLast(args);
      socket.emit(event, ...args, (...answer) => cb(...answer));
    });
    socket.on('server-ack-timeout', (ms, event, cb) => {
      socket.timeout(ms).emit(event, (err, ...answer) => {
        if (typeof cb === 'function') cb(err ? 'timeout' : 'answered', ...answer);
      });
    });
    socket.on('emit-binary', (cb) => {
      socket.emit('binary', Buffer.from([1, 2, 3]), { nested: Buffer.from([4, 5]), n: 1 });
      if (typeof cb === 'function') cb('ok');
    });
    socket.on('disconnect-me', () => socket.disconnect());
    socket.on('close-all', () => socket.disconnect(true));
    socket.on('recovered', (cb) => {
      if (typeof cb === 'function') cb(socket.recovered);
    });
  });
}

function startTestApp(httpServer, o) {
  const opts = {
    pingInterval: o.pingInterval,
    pingTimeout: o.pingTimeout,
    maxHttpBufferSize: o.maxPayload,
    cors: { origin: '*' },
  };
  if (o.recoveryWindow > 0) {
    opts.connectionStateRecovery = { maxDisconnectionDuration: o.recoveryWindow, skipMiddlewares: true };
  }
  if (o.parser === 'msgpack') opts.parser = msgpackParser;
  if (o.adapter) {
    opts.adapter = o.adapter;
    delete opts.connectionStateRecovery; // the Redis adapters do not keep a log
  }
  const io = new Server(httpServer, opts);
  setupTestNamespace(io.of('/'), !!o.redis);
  setupTestNamespace(io.of('/custom'), !!o.redis);
  if (o.redis) setupServerSideHandlers(io.of('/'));
  setupTestNamespace(io.of(DYN_RE));
  io.of('/refuse').use((socket, next) => {
    const err = new Error('not allowed');
    err.data = { reason: 'test', code: 42 };
    next(err);
  });
  return [io];
}

function startConformance(httpServer) {
  const common = { pingInterval: 300, pingTimeout: 200, maxHttpBufferSize: 1e6 };
  const eio = new EngineServer(common);
  eio.attach(httpServer, { path: '/engine.io/' });
  eio.on('connection', (socket) => {
    socket.on('message', (data) => socket.send(data));
  });
  const io = new Server(httpServer, { ...common, path: '/socket.io/' });
  io.of('/').on('connection', (socket) => {
    socket.emit('auth', socket.handshake.auth);
    socket.on('message', (...args) => socket.emit('message-back', ...args));
    socket.on('message-with-ack', (...args) => {
      const cb = args.pop();
      if (typeof cb === 'function') cb(...args);
    });
  });
  io.of('/custom').on('connection', (socket) => {
    socket.emit('auth', socket.handshake.auth);
  });
  return [io, eio];
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`ref-server: ${err.message}\n`);
    process.exit(2);
  }
  const colon = o.listen.lastIndexOf(':');
  const host = o.listen.slice(0, colon);
  const port = Number(o.listen.slice(colon + 1));
  const httpServer = http.createServer();
  const redisClients = [];
  if (o.redis) {
    const { createClient } = await import('redis');
    const { createAdapter, createShardedAdapter } = await import('@socket.io/redis-adapter');
    const pub = createClient({ url: o.redis });
    const sub = pub.duplicate();
    pub.on('error', (e) => process.stderr.write(`ref-server: redis: ${e.message}\n`));
    sub.on('error', (e) => process.stderr.write(`ref-server: redis: ${e.message}\n`));
    await Promise.all([pub.connect(), sub.connect()]);
    redisClients.push(pub, sub);
    o.adapter = o.redisSharded ? createShardedAdapter(pub, sub) : createAdapter(pub, sub);
  }
  let servers;
  if (o.conformance) servers = startConformance(httpServer);
  else if (o.testApp) servers = startTestApp(httpServer, o);
  else {
    process.stderr.write('ref-server: need --test-app or --conformance\n');
    process.exit(2);
  }
  httpServer.listen(port, host, () => {
    const addr = httpServer.address();
    process.stdout.write(`tabsyncd listening on http://127.0.0.1:${addr.port}/\n`);
  });
  const shutdown = () => {
    for (const s of servers) s.close();
    httpServer.close();
    for (const c of redisClients) c.disconnect().catch(() => {});
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main();
