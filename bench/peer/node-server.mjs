// The Node peer of the benchmarks: the npm socket.io 4.8 server, websocket
// transport only, running the part of the tabsyncd test app (tests/js/README.md)
// that tsbench uses, with the same flags and the same ready line as tabsyncd.
// With --jwt-secret it also serves a /session namespace doing the work of
// tabsyncd's connect path, so `tsbench connect --session` compares like with
// like: the HS256 token verified with node's crypto (HMAC, timingSafeEqual),
// its claims checked, the device bound to it (id = dev, SHA-256 of the
// fingerprint = fp), the same three rooms joined, then `welcome` emitted;
// `publish` validates the envelope as tabsyncd does (src/session/envelope.c),
// relays it with `from` to the other tabs of the scope's room as `event` and
// acks {ok, id} (no history: the peer of tabsyncd's --history off rows).
// ws uses its native add-ons (bufferutil, utf-8-validate) when they are
// installed; the ready line's stderr companion says which were found.
//
// usage: node node-server.mjs --listen 127.0.0.1:0 --test-app
//          [--recovery-window MS] [--ping-interval MS] [--ping-timeout MS]
//          [--max-payload BYTES] [--jwt-secret SECRET] [--redis URL]
// --redis URL: @socket.io/redis-adapter, classic (createAdapter(pub, sub) with
// two `redis` clients, as tests/js/ref-server.mjs does): several node-server
// processes over one Redis form one cluster, the multi-node bench rows.
import crypto from 'node:crypto';
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
    jwtSecret: null,
    redis: '',
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
      case '--jwt-secret': o.jwtSecret = val(); break;
      case '--redis': o.redis = val(); break;
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

// ---- /session: the token check tabsyncd does (src/session/auth.c, identity.c)
const ID = /^[A-Za-z0-9._:@-]{1,128}$/;
const DEVICE_TYPES = new Set(['browser', 'mobile', 'desktop', 'server', 'cli']);

function refuse(code, message) {
  const err = new Error(message);
  err.data = { code };
  return err;
}

// Returns the verified claims, or throws a refusal.
function verifyHS256(token, secret, now) {
  if (typeof token !== 'string' || token.length > 8192) throw refuse('token_malformed', 'bad token');
  const parts = token.split('.');
  if (parts.length !== 3) throw refuse('token_malformed', 'a JWT has three parts');
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    throw refuse('token_malformed', 'token is not JSON');
  }
  if (header.alg === 'none') throw refuse('token_alg_none', 'alg none is refused');
  if (header.alg !== 'HS256') throw refuse('token_alg_not_allowed', 'only HS256 is accepted');
  const mac = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const sig = Buffer.from(parts[2], 'base64url');
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac))
    throw refuse('token_bad_signature', 'token signature does not verify');
  for (const k of ['sub', 'sid', 'dev'])
    if (typeof claims[k] !== 'string' || !ID.test(claims[k])) throw refuse('token_invalid_claim', `bad ${k}`);
  if (typeof claims.fp !== 'string' || !/^[0-9a-f]{64}$/.test(claims.fp)) throw refuse('token_invalid_claim', 'bad fp');
  if (typeof claims.exp !== 'number' || !(claims.exp >= 0)) throw refuse('token_missing_claim', 'no exp');
  if (now >= claims.exp) throw refuse('token_expired', 'token expired');
  if (typeof claims.nbf === 'number' && claims.nbf > now) throw refuse('token_not_yet_valid', 'nbf');
  if (typeof claims.iat === 'number' && claims.iat > now) throw refuse('token_issued_in_future', 'iat');
  return claims;
}

// The checks of ts_sess_envelope_parse: returns why an envelope is refused, or null.
const NAME = /^[A-Za-z0-9._:\/-]{1,64}$/;
const PRIOS = new Set(['control', 'state', 'event', 'presence', 'telemetry']);
const SCOPES = new Set(['session', 'user', 'device']);
const ADDRESSING = ['room', 'rooms', 'session', 'sid', 'user', 'device', 'tab', 'socket'];
function envelopeError(e) {
  if (!e || typeof e !== 'object' || Array.isArray(e)) return 'not an object';
  if (!Number.isInteger(e.v) || e.v < 1 || e.v > 4) return 'unsupported protocol version';
  if (typeof e.type !== 'string' || !NAME.test(e.type)) return 'bad type';
  if (typeof e.id !== 'string' || !NAME.test(e.id)) return 'bad id';
  if (e.cid != null && (typeof e.cid !== 'string' || !NAME.test(e.cid))) return 'bad cid';
  if ('seq' in e) return 'seq is assigned by the server';
  if (e.client != null && (typeof e.client !== 'string' || !NAME.test(e.client))) return 'bad client';
  if ('mut' in e && !(Number.isInteger(e.mut) && e.mut >= 1 && e.mut <= Number.MAX_SAFE_INTEGER)) return 'bad mut';
  for (const k of ADDRESSING) if (k in e) return 'an envelope cannot name a room';
  if ('prio' in e && !PRIOS.has(e.prio)) return 'bad prio';
  if ('to' in e && !SCOPES.has(e.to)) return 'bad to';
  return null;
}

function setupSession(nsp, secret) {
  nsp.use((socket, next) => {
    try {
      const a = socket.handshake.auth;
      if (!a || typeof a !== 'object' || Array.isArray(a)) throw refuse('auth_not_object', 'auth must be an object');
      const d = a.device, t = a.tab;
      if (!d || typeof d !== 'object' || typeof d.id !== 'string' || !ID.test(d.id) ||
          typeof d.fingerprint !== 'string' || d.fingerprint.length === 0 || d.fingerprint.length > 512 ||
          !DEVICE_TYPES.has(d.type))
        throw refuse('auth_wrong_type', 'bad device');
      if (!t || typeof t !== 'object' || typeof t.id !== 'string' || !ID.test(t.id)) throw refuse('auth_wrong_type', 'bad tab');
      if (![1, 2, 3, 4].includes(a.proto)) throw refuse('auth_unsupported_proto', 'bad proto');
      const claims = verifyHS256(a.token, secret, Math.floor(Date.now() / 1000));
      if (d.id !== claims.dev) throw refuse('device_mismatch', 'device id is not the token\'s');
      const fp = crypto.createHash('sha256').update(d.fingerprint).digest();
      if (!crypto.timingSafeEqual(fp, Buffer.from(claims.fp, 'hex')))
        throw refuse('fingerprint_mismatch', 'fingerprint is not the token\'s');
      socket.data.id = { user: claims.sub, session: claims.sid, device: claims.dev, tab: t.id, proto: a.proto, exp: claims.exp };
      next();
    } catch (err) {
      next(err.data ? err : refuse('token_malformed', String(err.message || err)));
    }
  });
  nsp.on('connection', (socket) => {
    const id = socket.data.id;
    const rooms = { session: `s/${id.user}/${id.session}`, user: `u/${id.user}`, device: `d/${id.user}/${id.device}` };
    socket.join([rooms.session, rooms.user, rooms.device]);
    const from = { user: id.user, device: id.device, tab: id.tab };
    socket.on('publish', (env, cb) => {
      const ack = typeof cb === 'function' ? cb : () => {};
      const why = envelopeError(env);
      if (why) return ack({ ok: false, error: { code: 'bad_envelope', message: `envelope: ${why}` } });
      const out = { v: env.v, type: env.type, id: env.id };
      if (env.cid != null) out.cid = env.cid;
      out.prio = env.prio ?? 'event';
      out.to = env.to ?? 'session';
      out.body = env.body === undefined ? null : env.body;
      out.from = from;
      socket.to(rooms[out.to]).emit('event', out);
      ack({ ok: true, id: env.id });
    });
    socket.emit('welcome', { ...id, node: 'node-peer' });
  });
}

async function main() {
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
  const redisClients = [];
  if (o.redis) {
    const { createClient } = await import('redis');
    const { createAdapter } = await import('@socket.io/redis-adapter');
    const pub = createClient({ url: o.redis });
    const sub = pub.duplicate();
    pub.on('error', (e) => process.stderr.write(`node-server: redis: ${e.message}\n`));
    sub.on('error', (e) => process.stderr.write(`node-server: redis: ${e.message}\n`));
    await Promise.all([pub.connect(), sub.connect()]);
    redisClients.push(pub, sub);
    opts.adapter = createAdapter(pub, sub);
  }
  const io = new Server(httpServer, opts);
  setup(io.of('/'));
  if (o.jwtSecret) setupSession(io.of('/session'), o.jwtSecret);
  httpServer.listen({ port, host, backlog: 511 }, () => {
    const addr = httpServer.address();
    process.stderr.write(`node-server: socket.io ${require('socket.io/package.json').version}, ` +
      `ws ${require('ws/package.json').version}, node ${process.version}, ` +
      `native add-ons: ${addons().join(', ') || 'none'}` +
      `${o.redis ? `, @socket.io/redis-adapter ${require('@socket.io/redis-adapter/package.json').version} (classic)` : ''}\n`);
    process.stdout.write(`tabsyncd listening on http://127.0.0.1:${addr.port}/\n`);
  });
  const shutdown = () => {
    io.close();
    httpServer.close();
    for (const c of redisClients) c.disconnect().catch(() => {});
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((err) => {
  process.stderr.write(`node-server: ${err.message}\n`);
  process.exit(1);
});
