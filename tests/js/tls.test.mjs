// TLS: tabsyncd started with --tls-cert/--tls-key (a self-signed P-256
// certificate for 127.0.0.1 made with the openssl CLI at test time) serves
// https:// and wss://. socket.io-client verifies it against that certificate
// (`ca`) over websocket, polling and polling+upgrade; then raw TLS checks
// (versions, cipher order, ALPN, renegotiation), plain HTTP and junk on the
// TLS port, graceful shutdown, and start-up errors for unusable files.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import { io } from 'socket.io-client';
import { startServer, once, within, sleep, IS_NODE } from './harness.mjs';

const T = { timeout: 30000 };

const MODES = [
  { name: 'websocket', transports: ['websocket'] },
  { name: 'polling', transports: ['polling'] },
  { name: 'polling+upgrade', transports: undefined, upgrade: true },
];

/** Self-signed certificate + key (PEM) in dir; returns their paths. */
function makeCert(dir, name, cn = '127.0.0.1') {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', `subjectAltName=IP:${cn},DNS:localhost`], { stdio: 'ignore' });
  return { cert, key, ca: fs.readFileSync(cert) };
}

/** Runs tabsyncd to completion (it is expected to refuse to start). */
function runDaemon(args, ms = 10000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.TABSYNCD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tabsyncd ${args.join(' ')} still running after ${ms} ms; stdout: ${out}`));
    }, ms);
    // 'close', not 'exit': 'exit' can come before the pipes are read to
    // their end (a refusal's stderr was seen empty once, under load)
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** Starts tabsyncd, returns its first stdout line, stops it (exit 0 expected). */
function readyLine(args) {
  return within(new Promise((resolve, reject) => {
    const child = spawn(process.env.TABSYNCD, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      // main.c installs its signal handlers just after printing the line
      if (out.includes('\n')) setTimeout(() => child.kill('SIGTERM'), 300);
    });
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${out}`))));
  }), 10000, 'ready line');
}

/** TLS connection to the server; resolves once the handshake is done, rejects on error. */
function tlsConnect(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...opts }, () => resolve(s));
    s.once('error', reject);
  });
}

/** One HTTP/1.1 request on a connected stream; resolves with the raw response text. */
function rawRequest(sock, pathname) {
  return within(new Promise((resolve, reject) => {
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => {
      got += d;
      const m = /Content-Length: (\d+)\r\n/i.exec(got);
      const end = got.indexOf('\r\n\r\n');
      if (m && end >= 0 && got.length >= end + 4 + Number(m[1])) resolve(got);
    });
    sock.once('error', reject);
    sock.write(`GET ${pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  }), 5000, `GET ${pathname}`);
}

function httpsGet(url, opts) {
  return within(new Promise((resolve, reject) => {
    https.get(url, { agent: false, ...opts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, socket: res.socket }));
    }).on('error', reject);
  }), 5000, `GET ${url}`);
}

/** Plain TCP: send bytes, collect what comes back until the server closes. */
function plainExchange(port, bytes, ms = 5000) {
  return within(new Promise((resolve, reject) => {
    const chunks = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => s.end());
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('error', (e) => (e.code === 'ECONNRESET' ? resolve(Buffer.concat(chunks)) : reject(e)));
  }), ms, 'server closing a non-TLS connection');
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Strip (and check) the connection-state-recovery offset the test app appends. */
function strip(args) {
  const off = args[args.length - 1];
  assert.equal(typeof off, 'string', `last argument should be the recovery offset, got ${JSON.stringify(off)}`);
  return args.slice(0, -1);
}

function ack(sock, event, ...args) {
  return within(new Promise((resolve) => sock.emit(event, ...args, (...answer) => resolve(answer))),
    8000, `ack of '${event}'`);
}

describe('TLS (https:// and wss://)', { skip: IS_NODE && 'the reference server has no TLS' }, () => {
  let dir;
  let good;
  let server;
  let base;
  const sockets = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsync-tls-'));
    good = makeCert(dir, 'good');
    server = await startServer({ extra: ['--tls-cert', good.cert, '--tls-key', good.key, '--log-level', 'debug'] });
    base = `https://127.0.0.1:${server.port}`;
  });
  after(async () => {
    const res = await server?.stop();
    if (res) assert.equal(res.code, 0, `server exit: ${JSON.stringify(res)}\n${server.stderr()}`);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) {
      s.disconnect();
      s.io.disconnect();
    }
  });

  function client(mode, extra = {}) {
    const s = io(base + '/', {
      forceNew: true,
      reconnection: false,
      timeout: 8000,
      ca: good.ca,
      ...(mode.transports ? { transports: mode.transports } : {}),
      ...extra,
    });
    sockets.push(s);
    return s;
  }

  async function ready(sock, mode) {
    await within(new Promise((resolve, reject) => {
      if (sock.connected) return resolve();
      sock.once('connect', resolve);
      sock.once('connect_error', (e) => reject(new Error(`connect_error: ${e.message} ${e.description?.message ?? ''}`)));
    }), 10000, 'connect');
    if (mode.upgrade && sock.io.engine.transport.name !== 'websocket') await once(sock.io.engine, 'upgrade', 10000);
  }

  it('prints an https:// ready line (http:// without TLS)', T, async () => {
    const withTls = await readyLine(['--listen', '127.0.0.1:0', '--tls-cert', good.cert, '--tls-key', good.key]);
    assert.match(withTls, /^tabsyncd listening on https:\/\/127\.0\.0\.1:\d+\/\n$/);
    const plain = await readyLine(['--listen', '127.0.0.1:0']);
    assert.match(plain, /^tabsyncd listening on http:\/\/127\.0\.0\.1:\d+\/\n$/);
  });

  for (const mode of MODES) {
    describe(`socket.io-client over ${mode.name} (verifying the certificate)`, () => {
      it('connects, round-trips an event and an ack', T, async () => {
        const s = client(mode);
        const auth = once(s, 'auth', 10000);
        await ready(s, mode);
        const [a] = strip(await auth);
        assert.deepStrictEqual(a, {});
        assert.equal(s.io.engine.transport.name, mode.upgrade ? 'websocket' : mode.transports[0]);
        const back = once(s, 'message-back');
        s.emit('message', 'hello', { n: 1, u: 'ü' });
        assert.deepStrictEqual(strip(await back), ['hello', { n: 1, u: 'ü' }]);
        assert.deepStrictEqual(await ack(s, 'message-with-ack', 'ack', [1, 2, 3]), ['ack', [1, 2, 3]]);
      });

      it('carries a 300 KB message both ways and a burst of 200 events in order', T, async () => {
        const s = client(mode);
        await ready(s, mode);
        const big = 'x'.repeat(150000) + 'é'.repeat(75000); // > many TLS records, multi-byte UTF-8
        const [echo] = await ack(s, 'message-with-ack', big);
        assert.equal(echo.length, big.length);
        assert.ok(echo === big, 'big payload corrupted');
        const got = [];
        const all = within(new Promise((resolve) => {
          s.on('message-back', (...args) => {
            got.push(strip(args)[0]);
            if (got.length === 200) resolve();
          });
        }), 15000, '200 events');
        for (let i = 0; i < 200; i++) s.emit('message', i);
        await all;
        assert.deepStrictEqual(got, Array.from({ length: 200 }, (_, i) => i));
      });
    });
  }

  it('a client that does not trust the certificate is refused (the certificate is really used)', T, async () => {
    const other = makeCert(dir, 'other');
    await assert.rejects(tlsConnect(server.port, { ca: other.ca }), /self[- ]signed|unable to verify|certificate/i);
    const s = client(MODES[0], { ca: other.ca });
    const [err] = await once(s, 'connect_error', 10000);
    assert.ok(err instanceof Error);
  });

  it('/healthz over https', T, async () => {
    const res = await httpsGet(`${base}/healthz`, { ca: good.ca });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).status, 'ok');
  });

  it('20 concurrent https requests each get their answer', T, async () => {
    const all = await Promise.all(Array.from({ length: 20 }, () => httpsGet(`${base}/healthz`, { ca: good.ca })));
    for (const r of all) assert.equal(r.status, 200);
  });

  it('keep-alive: several requests on one TLS connection', T, async () => {
    const s = await tlsConnect(server.port, { ca: good.ca });
    for (let i = 0; i < 3; i++) {
      const res = await rawRequest(s, '/healthz');
      assert.match(res, /^HTTP\/1\.1 200 /);
      s.removeAllListeners('data');
    }
    s.destroy();
  });

  it('TLS 1.3 by default; TLS 1.2 with the server\'s cipher order; TLS 1.1 refused', T, async () => {
    const s13 = await tlsConnect(server.port, { ca: good.ca });
    assert.equal(s13.getProtocol(), 'TLSv1.3');
    s13.destroy();
    // the client prefers ChaCha20; the server's list puts AES-GCM first
    const s12 = await tlsConnect(server.port, {
      ca: good.ca, maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256',
    });
    assert.equal(s12.getProtocol(), 'TLSv1.2');
    assert.equal(s12.getCipher().name, 'ECDHE-ECDSA-AES128-GCM-SHA256');
    assert.match(await rawRequest(s12, '/healthz'), /^HTTP\/1\.1 200 /);
    s12.destroy();
    await assert.rejects(
      tlsConnect(server.port, { ca: good.ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
      /alert protocol version|unsupported protocol/i);
  });

  it('ALPN: http/1.1 chosen when offered; no ALPN answer when only h2 is offered', T, async () => {
    const a = await tlsConnect(server.port, { ca: good.ca, ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(a.alpnProtocol, 'http/1.1');
    assert.match(await rawRequest(a, '/healthz'), /^HTTP\/1\.1 200 /);
    a.destroy();
    const b = await tlsConnect(server.port, { ca: good.ca, ALPNProtocols: ['h2'] });
    assert.equal(b.alpnProtocol, false);
    b.destroy();
  });

  it('renegotiation is refused (TLS 1.2) and the server carries on', T, async () => {
    const s = await tlsConnect(server.port, { ca: good.ca, maxVersion: 'TLSv1.2' });
    s.on('error', () => {});
    const outcome = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve('no answer'), 2000);
      const ok = s.renegotiate({ rejectUnauthorized: false }, (err) => {
        clearTimeout(timer);
        resolve(err ? 'error' : 'renegotiated');
      });
      if (ok === false) resolve('error');
    });
    assert.notEqual(outcome, 'renegotiated');
    s.destroy();
    assert.equal((await httpsGet(`${base}/healthz`, { ca: good.ca })).status, 200);
  });

  it('plain HTTP to the TLS port is closed, not answered; the server keeps serving', T, async () => {
    const got = await plainExchange(server.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.ok(!got.toString('latin1').startsWith('HTTP/'), `answered in plain text: ${got.toString('latin1')}`);
    if (got.length) assert.equal(got[0], 0x15, 'expected nothing or a TLS alert record');
    await assert.rejects(within(new Promise((resolve, reject) => {
      http.get(`http://127.0.0.1:${server.port}/healthz`, { agent: false }, resolve).on('error', reject);
    }), 5000, 'plain http.get'));
    assert.match(server.stderr(), /mod=tls msg="closing 127\.0\.0\.1: handshake failed: http request"/);
    assert.ok(alive(server.pid));
    const s = client(MODES[0]);
    await ready(s, MODES[0]);
    assert.deepStrictEqual(await ack(s, 'message-with-ack', 'still here'), ['still here']);
  });

  it('junk, a truncated handshake and an abandoned connection do not hurt', T, async () => {
    const junk = Buffer.alloc(3000);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
    await plainExchange(server.port, junk);
    // the first bytes of a real ClientHello, then the client goes away
    const hello = await new Promise((resolve) => {
      const srv = net.createServer((c) => c.once('data', (d) => { resolve(d); c.destroy(); srv.close(); }));
      srv.listen(0, '127.0.0.1', () => {
        const t = tls.connect({ port: srv.address().port, host: '127.0.0.1', rejectUnauthorized: false });
        t.on('error', () => {});
      });
    });
    const half = net.connect(server.port, '127.0.0.1', () => half.end(hello.subarray(0, Math.floor(hello.length / 2))));
    half.on('error', () => {});
    await once(half, 'close', 5000);
    const s = await tlsConnect(server.port, { ca: good.ca });
    s.destroy(); // handshake done, no request, gone
    await sleep(100);
    assert.ok(alive(server.pid));
    assert.equal((await httpsGet(`${base}/healthz`, { ca: good.ca })).status, 200);
  });

  it('shutdown: connected wss and polling clients are told, the server exits 0', T, async () => {
    const srv = await startServer({ extra: ['--tls-cert', good.cert, '--tls-key', good.key] });
    const url = `https://127.0.0.1:${srv.port}/`;
    const ws = io(url, { forceNew: true, reconnection: false, ca: good.ca, transports: ['websocket'] });
    const poll = io(url, { forceNew: true, reconnection: false, ca: good.ca, transports: ['polling'] });
    try {
      await Promise.all([once(ws, 'connect', 10000), once(poll, 'connect', 10000)]);
      const gone = Promise.all([once(ws, 'disconnect', 10000), once(poll, 'disconnect', 10000)]);
      const res = await srv.stop();
      assert.equal(res.code, 0, srv.stderr());
      const [[r1], [r2]] = await gone;
      assert.ok(['io server disconnect', 'transport close'].includes(r1), r1);
      assert.ok(['io server disconnect', 'transport close', 'transport error'].includes(r2), r2);
    } finally {
      ws.disconnect();
      poll.disconnect();
      await srv.stop();
    }
  });

  describe('start-up errors', () => {
    it('a file that is not a certificate: exit 1, which file and why', T, async () => {
      const bad = path.join(dir, 'not-a-cert.pem');
      fs.writeFileSync(bad, 'this is not PEM\n');
      const r = await runDaemon(['--listen', '127.0.0.1:0', '--tls-cert', bad, '--tls-key', good.key]);
      assert.equal(r.code, 1, r.err);
      assert.equal(r.out, '');
      assert.equal(r.err.trim(), `tabsyncd: cannot load TLS certificate ${bad}: no start line`);
    });

    it('a key file without a key: exit 1', T, async () => {
      const r = await runDaemon(['--listen', '127.0.0.1:0', '--tls-cert', good.cert, '--tls-key', good.cert]);
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, new RegExp(`^tabsyncd: cannot load TLS key ${good.cert.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\S`));
    });

    it('a key that does not belong to the certificate: exit 1', T, async () => {
      const other = makeCert(dir, 'mismatch');
      const r = await runDaemon(['--listen', '127.0.0.1:0', '--tls-cert', good.cert, '--tls-key', other.key]);
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, /^tabsyncd: cannot load TLS key .*mismatch\.key: key values mismatch\n$/);
    });

    it('a certificate path that does not exist: the configuration refuses it (usage error, exit 2)', T, async () => {
      const missing = path.join(dir, 'missing.pem');
      const r = await runDaemon(['--listen', '127.0.0.1:0', '--tls-cert', missing, '--tls-key', good.key]);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, /tls-cert="[^"]*missing\.pem" cannot be read/);
    });
  });
});
