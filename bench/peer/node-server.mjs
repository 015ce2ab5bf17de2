// The Node peer of the benchmarks: the npm socket.io 4.8 server, websocket
// transport only, running the part of the tabsyncd test app (tests/js/README.md)
// that tsbench uses, with the same flags and the same ready line as tabsyncd.
// ws uses its native add-ons (bufferutil, utf-8-validate) when they are
// installed; the ready line's stderr companion says which were found.
//
// usage: node node-server.mjs --listen 127.0.0.1:0 --test-app
//          [--recovery-window MS] [--ping-interval MS] [--ping-timeout MS]
//          [--max-payload BYTES]
import http from 'node:http';
import { createRequire } from 'node:module';
import { Server } from 'socket.io';

const require = createRequire(import.meta.url);

function parseArgs(argv) {
  const o = {
    listen: '127.0.0.1:0',
    testApp: false,
    recoveryWindow: 120000,
    pingInterval: 25000,
    pingTimeout: 20000,
    maxPayload: 1e6,
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
      case '--recovery-window': o.recoveryWindow = num(); break;
      case '--ping-interval': o.pingInterval = num(); break;
      case '--ping-timeout': o.pingTimeout = num(); break;
      case '--max-payload': o.maxPayload = num(); break;
      default: throw new Error(`unknown flag ${a}`);
    }
  }
  if (!o.testApp) throw new Error('need --test-app');
  return o;
}

// Which of ws's native add-ons load here. Both ship prebuilt linux-x64
// binaries; if neither a prebuild nor a local build loads, the packages fall
// back to JavaScript. (ws 8 validates UTF-8 with Node's own buffer.isUtf8 when
// it exists, so only bufferutil's masking is used on Node 20.)
function addons() {
  const found = [];
  for (const name of ['bufferutil', 'utf-8-validate']) {
    try {
      const dir = require.resolve(`${name}/package.json`, { paths: [require.resolve('ws')] });
      require('node-gyp-build')(dir.slice(0, -'/package.json'.length));
      found.push(name);
    } catch {
      /* not installed, or no binary: JavaScript fallback */
    }
  }
  return found;
}

function setup(nsp) {
  nsp.on('connection', (socket) => {
    socket.emit('auth', socket.handshake.auth);
    socket.on('message', (...args) => socket.emit('message-back', ...args));
    socket.on('message-with-ack', (...args) => {
      const cb = typeof args[args.length - 1] === 'function' ? args.pop() : () => {};
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
    socket.on('to-room', (room, event, ...args) => socket.to(room).emit(event, ...args));
    socket.on('to-room-all', (room, event, ...args) => nsp.to(room).emit(event, ...args));
    socket.on('recovered', (cb) => {
      if (typeof cb === 'function') cb(socket.recovered);
    });
  });
}

function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`node-server: ${err.message}\n`);
    process.exit(2);
  }
  const colon = o.listen.lastIndexOf(':');
  const host = o.listen.slice(0, colon);
  const port = Number(o.listen.slice(colon + 1));
  const httpServer = http.createServer();
  const opts = {
    transports: ['websocket'],
    pingInterval: o.pingInterval,
    pingTimeout: o.pingTimeout,
    maxHttpBufferSize: o.maxPayload,
  };
  if (o.recoveryWindow > 0) {
    opts.connectionStateRecovery = { maxDisconnectionDuration: o.recoveryWindow, skipMiddlewares: true };
  }
  const io = new Server(httpServer, opts);
  setup(io.of('/'));
  httpServer.listen({ port, host, backlog: 511 }, () => {
    const addr = httpServer.address();
    process.stderr.write(`node-server: socket.io ${require('socket.io/package.json').version}, ` +
      `ws ${require('ws/package.json').version}, node ${process.version}, ` +
      `native add-ons: ${addons().join(', ') || 'none'}\n`);
    process.stdout.write(`tabsyncd listening on http://127.0.0.1:${addr.port}/\n`);
  });
  const shutdown = () => {
    io.close();
    httpServer.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main();
