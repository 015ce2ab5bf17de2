// The tabsyncd daemon as an operator sees it, against the real binary:
// command line (--help, --version, exit status 2 with a one-line message for
// a bad flag or TABSYNC_* value, exit 1 when the port is taken), /healthz,
// /metrics (counters that move with real socket.io-client traffic and with
// refused input), static files (index.html, /vendor/, ETag/304, traversal),
// CORS, slow HTTP clients (request and idle timeouts), a WebSocket peer that
// stops reading (cut off at --max-send-queue, bounded RSS), graceful shutdown
// on SIGTERM, and the Engine.IO ping timeout.
//
// tabsyncd only (metrics, flags and shutdown are not the Node reference's):
// skipped with TS_TARGET=node. Timings are generous; nothing asserts speed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { io } from 'socket.io-client';
import { startServer, IS_NODE, once, sleep, within } from './harness.mjs';
import { RawConn, WsClient, encodeFrame, rawUpgrade } from './raw.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const WEB = path.join(ROOT, 'web');
const BIN = process.env.TABSYNCD;
const T = { timeout: 20000 };
const SKIP = IS_NODE ? { skip: 'tabsyncd only (daemon flags, metrics, shutdown)' } : {};
const EIO_WS = '/socket.io/?EIO=4&transport=websocket';

// Under AddressSanitizer freed memory sits in a quarantine (256 MB by
// default) and inflates RSS; keep it small so the RSS bound of the
// backpressure test measures the server, not the sanitizer.
process.env.ASAN_OPTIONS = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16']
  .filter(Boolean).join(':');

// ---- helpers ----------------------------------------------------------------

/** Run tabsyncd to completion: { code, signal, stdout, stderr }. */
function runBin(args, env = {}) {
  assert.ok(BIN, 'TABSYNCD is not set (path to the tabsyncd binary)');
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
      reject(new Error(`tabsyncd ${args.join(' ')} did not exit within 10 s; stderr: ${stderr}`));
    }, 10000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' can come before the pipes are drained
      setImmediate(() => resolve({ code, signal, stdout, stderr }));
    });
  });
}

/**
 * Start tabsyncd ourselves (the shutdown test needs the exit code; the
 * harness hides the child). Returns { port, url, pid, exited, stderr() }.
 */
async function spawnDaemon(flags) {
  assert.ok(BIN, 'TABSYNCD is not set (path to the tabsyncd binary)');
  const child = spawn(BIN, ['--listen', '127.0.0.1:0', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  process.once('exit', () => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } });
  const port = await within(new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) resolve(Number(m[1]));
    });
    exited.then(({ code }) => reject(new Error(`tabsyncd exited (${code}) before ready: ${err}`)));
  }), 10000, 'tabsyncd ready line');
  return { port, url: `http://127.0.0.1:${port}`, pid: child.pid, exited, stderr: () => err };
}

/** One HTTP request on a fresh connection: { status, headers, body (Buffer) }. */
function request(port, { method = 'GET', path: p = '/', headers = {}, body } = {}) {
  return within(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  }), 10000, `${method} ${p}`);
}

/** A raw request line + headers on a new TCP connection; the parsed response. */
async function rawRequest(port, text) {
  const c = new RawConn(port);
  await c.connected;
  try {
    await c.write(text);
    return await c.response();
  } finally {
    c.destroy();
  }
}

/** Parse Prometheus text: Map of "name" or 'name{labels}' -> number, checking the format. */
function parseMetrics(text) {
  const values = new Map();
  const typed = new Set();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) { typed.add(t[1]); continue; }
    if (line.startsWith('# HELP ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    assert.ok(typed.has(m[1]), `sample ${m[1]} before its # TYPE line`);
    values.set(m[1] + (m[2] || ''), Number(m[3]));
  }
  return values;
}

async function metrics(port) {
  const res = await request(port, { path: '/metrics' });
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/plain/);
  return parseMetrics(res.body.toString('utf8'));
}

function metric(m, name) {
  assert.ok(m.has(name), `metric ${name} missing from /metrics`);
  return m.get(name);
}

const errKind = (kind) => `tabsync_errors_total{kind="${kind}"}`;

/** A socket.io-client connection that does not reconnect; resolves when connected. */
async function connect(url, opts = {}) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ['websocket'], ...opts });
  s.on('connect_error', () => {});
  await within(new Promise((resolve, reject) => {
    s.once('connect', resolve);
    s.once('connect_error', reject);
  }), 8000, 'socket.io connect');
  return s;
}

function ack(sock, ...args) {
  return within(new Promise((resolve) => sock.emit('message-with-ack', ...args, (...a) => resolve(a))),
    8000, 'message-with-ack');
}

/** Resident and peak resident memory of a process, bytes (Linux). */
function memOf(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Resolves true if a TCP connect to port succeeds, false if refused/reset. */
function tcpConnects(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const t = setTimeout(() => { s.destroy(); resolve(false); }, 3000);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
}

/** Stop a harness server and check it exited cleanly (sanitizer builds report at exit). */
async function stopClean(server) {
  if (!server) return;
  const res = await server.stop();
  const err = server.stderr();
  assert.ok(!/runtime error|AddressSanitizer|LeakSanitizer/.test(err), `sanitizer report:\n${err.slice(-4000)}`);
  assert.deepStrictEqual(res, { code: 0, signal: null }, `server exit after SIGTERM; stderr:\n${err.slice(-4000)}`);
}

/** The last test of a suite: its server exits 0 on SIGTERM, no sanitizer report. */
function itExitsCleanly(getServer) {
  it('the server exits 0 on SIGTERM, sanitizers quiet', T, async () => { await stopClean(getServer()); });
}

// ---- command line -----------------------------------------------------------

describe('command line', SKIP, () => {
  it('--help exits 0 and lists the main flags', T, async () => {
    const r = await runBin(['--help']);
    assert.equal(r.code, 0, `exit status; stderr: ${r.stderr}`);
    for (const flag of ['--listen', '--ping-interval', '--ping-timeout', '--max-payload', '--cors-origin',
      '--parser', '--recovery-window', '--log-level', '--max-send-queue', '--http-request-timeout',
      '--http-idle-timeout', '--shutdown-timeout', '--web']) {
      assert.ok(new RegExp(`^\\s+${flag}\\b`, 'm').test(r.stdout), `--help does not list ${flag}`);
    }
    assert.equal(r.stderr, '');
    const short = await runBin(['-h']);
    assert.equal(short.code, 0);
    assert.equal(short.stdout, r.stdout);
  });

  it('--version prints one line and exits 0', T, async () => {
    const r = await runBin(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^tabsyncd \d+\.\d+\.\d+\n$/);
  });

  const badCases = [
    { args: ['--bogus'], names: '--bogus' },
    { args: ['--ping-interval', 'abc'], names: '--ping-interval' },
    { args: ['--ping-interval=0'], names: '--ping-interval' },
    { args: ['--max-send-queue', '1000'], names: '--max-send-queue' },
    { args: ['--max-payload', '12x'], names: '--max-payload' },
    { args: ['--parser', 'xml'], names: '--parser' },
    { args: ['--log-level', 'loud'], names: '--log-level' },
    { args: ['--listen', 'nowhere'], names: '--listen' },
    { args: ['--listen'], names: '--listen' },
    { args: ['--recovery-window', '-5'], names: '--recovery-window' },
    { args: [], env: { TABSYNC_PING_INTERVAL: 'abc' }, names: 'TABSYNC_PING_INTERVAL' },
    { args: [], env: { TABSYNC_PARSER: 'yaml' }, names: 'TABSYNC_PARSER' },
    { args: [], env: { TABSYNC_TEST_APP: 'maybe' }, names: 'TABSYNC_TEST_APP' },
    { args: [], env: { TABSYNC_LISTEN: '127.0.0.1:99999' }, names: 'TABSYNC_LISTEN' },
  ];
  for (const c of badCases) {
    const label = [...Object.entries(c.env || {}).map(([k, v]) => `${k}=${v}`), ...c.args].join(' ');
    it(`bad setting exits 2 naming it: ${label}`, T, async () => {
      // a free port first, so that a wrongly accepted setting cannot take :3000
      const pre = /LISTEN|--listen/i.test(c.names) ? [] : ['--listen=127.0.0.1:0'];
      const r = await runBin([...pre, ...c.args], c.env);
      assert.equal(r.code, 2, `exit status for ${label}; stdout ${JSON.stringify(r.stdout)} stderr ${JSON.stringify(r.stderr)}`);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, `one line on stderr, got ${JSON.stringify(r.stderr)}`);
      assert.ok(lines[0].includes(c.names), `message ${JSON.stringify(lines[0])} does not name ${c.names}`);
      assert.ok(!/listening/.test(r.stdout), 'must not start');
    });
  }

  it('a port already in use exits 1 with a clear message', T, async () => {
    const blocker = net.createServer();
    await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address();
    try {
      const r = await runBin(['--listen', `127.0.0.1:${port}`]);
      assert.equal(r.code, 1, `exit status; stderr: ${r.stderr}`);
      assert.ok(r.stderr.includes(String(port)), `message names the port: ${r.stderr}`);
      assert.match(r.stderr, /in use/i);
      assert.ok(!/listening on/.test(r.stdout));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

// ---- HTTP endpoints, metrics, static files ------------------------------------

describe('endpoints and metrics', SKIP, () => {
  let server;
  const socks = [];

  before(async () => {
    server = await startServer({ extra: ['--web', WEB] });
  });
  after(async () => {
    for (const s of socks) s.disconnect();
    await server?.stop();
  });

  it('/healthz is 200 JSON with status ok', T, async () => {
    const res = await request(server.port, { path: '/healthz' });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^application\/json/);
    const j = JSON.parse(res.body.toString('utf8'));
    assert.equal(j.status, 'ok');
    assert.equal(typeof j.sessions, 'number');
  });

  it('/metrics counters move with real socket.io-client traffic', T, async () => {
    const before0 = await metrics(server.port);
    const N = 3;
    const EVENTS = 5;
    const made = [];
    for (let i = 0; i < N; i++) {
      const s = await connect(server.url, { transports: i === 0 ? ['polling'] : ['websocket'] });
      made.push(s);
      socks.push(s);
    }
    for (const s of made) {
      for (let k = 0; k < EVENTS; k++) assert.deepStrictEqual(await ack(s, { k }), [{ k }]);
    }
    const after0 = await metrics(server.port);
    const delta = (name) => metric(after0, name) - metric(before0, name);
    assert.ok(delta('tabsync_sio_connects_total') >= N, `sio connects +${delta('tabsync_sio_connects_total')}`);
    assert.ok(delta('tabsync_eio_sessions_total') >= N, `eio sessions +${delta('tabsync_eio_sessions_total')}`);
    // each event is one Engine.IO message packet in and one ack out
    assert.ok(delta('tabsync_eio_packets_received_total') >= N * (EVENTS + 1));
    assert.ok(delta('tabsync_eio_packets_sent_total') >= N * (EVENTS + 2));
    assert.ok(delta('tabsync_sio_packets_received_total') >= N * (EVENTS + 1));
    assert.ok(delta('tabsync_sio_packets_sent_total') >= N * (EVENTS + 1));
    assert.ok(delta('tabsync_tcp_accepted_total') >= N);
    assert.ok(delta('tabsync_http_requests_total') >= N);
    assert.ok(delta('tabsync_ws_upgrades_total') >= N - 1);
    assert.ok(delta('tabsync_bytes_received_total') > 0);
    assert.ok(delta('tabsync_bytes_sent_total') > 0);
    // gauges: the open sessions are counted
    assert.ok(metric(after0, 'tabsync_sio_sockets') >= N);
    assert.ok(metric(after0, 'tabsync_eio_sessions') >= N);
    assert.ok(metric(after0, 'tabsync_eio_sessions_websocket') >= N - 1);
    // and counted down when they go
    for (const s of made) s.disconnect();
    socks.length = 0;
    let now;
    for (let i = 0; i < 50; i++) {
      now = await metrics(server.port);
      if (metric(now, 'tabsync_sio_sockets') <= metric(after0, 'tabsync_sio_sockets') - N) break;
      await sleep(100);
    }
    assert.equal(metric(now, 'tabsync_sio_sockets'), metric(after0, 'tabsync_sio_sockets') - N);
  });

  const errorCases = [
    {
      kind: 'http_bad_request',
      what: 'a malformed request line',
      run: async (port) => {
        const r = await rawRequest(port, 'NONSENSE\r\n\r\n');
        assert.equal(r.status, 400);
      },
    },
    {
      kind: 'http_too_large',
      what: 'a header block over --http-max-header-bytes',
      run: async (port) => {
        const r = await rawRequest(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
        assert.equal(r.status, 431);
      },
    },
    {
      kind: 'eio_bad_request',
      what: 'an unknown Engine.IO transport',
      run: async (port) => {
        const r = await request(port, { path: '/socket.io/?EIO=4&transport=carrier-pigeon' });
        assert.equal(r.status, 400);
      },
    },
    {
      kind: 'ws_protocol',
      what: 'an unmasked client frame',
      run: async (port) => {
        const c = await rawUpgrade(port, EIO_WS);
        try {
          await c.frame();
          await c.write(encodeFrame({ payload: '40', mask: false }));
          const f = await c.closeFrame();
          if (f) assert.equal(f.code, 1002);
        } finally {
          c.destroy();
        }
      },
    },
    {
      kind: 'sio_bad_namespace',
      what: 'an unknown namespace',
      run: async (port) => {
        const s = io(`http://127.0.0.1:${port}/nope`, { forceNew: true, reconnection: false, transports: ['websocket'] });
        try {
          const [err] = await once(s, 'connect_error', 8000);
          assert.equal(err.message, 'Invalid namespace');
        } finally {
          s.disconnect();
        }
      },
    },
    {
      kind: 'sio_parse',
      what: 'a Socket.IO packet that does not parse',
      run: async (port) => {
        const c = new WsClient(`ws://127.0.0.1:${port}${EIO_WS}`, { autoPong: true });
        try {
          assert.ok((await c.next()).startsWith('0{'));
          c.send('4abc');
          await c.waitClose(5000);
        } finally {
          c.close();
        }
      },
    },
  ];
  for (const c of errorCases) {
    it(`tabsync_errors_total{kind="${c.kind}"} counts ${c.what}`, T, async () => {
      const before0 = metric(await metrics(server.port), errKind(c.kind));
      await c.run(server.port);
      let now;
      for (let i = 0; i < 30; i++) {
        now = metric(await metrics(server.port), errKind(c.kind));
        if (now > before0) break;
        await sleep(100);
      }
      assert.ok(now >= before0 + 1, `${c.kind}: ${before0} -> ${now}`);
    });
  }

  it('GET / serves web/index.html', T, async () => {
    const res = await request(server.port, { path: '/' });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^text\/html/);
    assert.ok(res.body.equals(fs.readFileSync(path.join(WEB, 'index.html'))), 'body is web/index.html');
    const css = await request(server.port, { path: '/style.css' });
    assert.equal(css.status, 200);
    assert.match(css.headers['content-type'], /^text\/css/);
    const js = await request(server.port, { path: '/app.js' });
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /javascript/);
    const missing = await request(server.port, { path: '/no-such-file.html' });
    assert.equal(missing.status, 404);
  });

  it('/vendor/socket.io.min.js is served as JavaScript, with ETag and 304', T, async () => {
    const p = '/vendor/socket.io.min.js';
    const res = await request(server.port, { path: p });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^(text|application)\/javascript/);
    const file = fs.readFileSync(path.join(ROOT, 'node_modules/socket.io-client/dist/socket.io.min.js'));
    assert.ok(res.body.equals(file), 'body is node_modules/socket.io-client/dist/socket.io.min.js');
    const etag = res.headers.etag;
    assert.ok(etag, 'ETag header');
    const again = await request(server.port, { path: p, headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    assert.equal(again.headers.etag, etag);
    const other = await request(server.port, { path: p, headers: { 'If-None-Match': '"something-else"' } });
    assert.equal(other.status, 200);
    assert.equal(other.body.length, file.length);
    const head = await request(server.port, { method: 'HEAD', path: p });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  const traversals = [
    '/../etc/passwd',
    '/../../../../../../etc/passwd',
    '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/..%2f..%2f..%2fetc/passwd',
    '/vendor/../../../etc/passwd',
    '/vendor/%2e%2e/%2e%2e/package.json',
    '/../package.json',
    '/%2e%2e/package.json',
    '/.%2e/.%2e/etc/passwd',
  ];
  for (const t of traversals) {
    it(`path traversal ${t} -> 404`, T, async () => {
      const r = await rawRequest(server.port, `GET ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      assert.ok(r.status === 404 || r.status === 400, `status ${r.status}`);
      if (t === '/../etc/passwd') assert.equal(r.status, 404);
      assert.ok(!/root:/.test(r.body), 'leaked /etc/passwd');
      assert.ok(!/devDependencies/.test(r.body), 'leaked package.json');
    });
  }

  itExitsCleanly(() => server);
});

// ---- CORS ---------------------------------------------------------------------

describe('CORS with --cors-origin http://example.test', SKIP, () => {
  let server;
  const ALLOWED = 'http://example.test';
  before(async () => {
    // the handshakes below leave polling sessions that nobody polls: they
    // hold a graceful shutdown for --shutdown-timeout (default 10 s)
    server = await startServer({ extra: ['--cors-origin', ALLOWED, '--shutdown-timeout', '1000'] });
  });
  after(async () => { await server?.stop(); });

  const handshakePath = '/socket.io/?EIO=4&transport=polling';

  it('a polling handshake from the allowed origin gets Access-Control-Allow-Origin', T, async () => {
    const res = await request(server.port, { path: handshakePath, headers: { Origin: ALLOWED } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], ALLOWED);
    assert.match(res.body.toString('utf8'), /^0\{"sid":/);
    // the next poll and a POST carry it too
    const sid = JSON.parse(res.body.toString('utf8').slice(1)).sid;
    const post = await request(server.port, {
      method: 'POST', path: `${handshakePath}&sid=${sid}`, headers: { Origin: ALLOWED, 'Content-Type': 'text/plain' }, body: '40',
    });
    assert.equal(post.status, 200);
    assert.equal(post.headers['access-control-allow-origin'], ALLOWED);
    const poll = await request(server.port, { path: `${handshakePath}&sid=${sid}`, headers: { Origin: ALLOWED } });
    assert.equal(poll.status, 200);
    assert.equal(poll.headers['access-control-allow-origin'], ALLOWED);
    assert.match(poll.body.toString('utf8'), /40\{"sid":/);
  });

  it('another origin gets no Access-Control-Allow-Origin', T, async () => {
    for (const origin of ['http://evil.test', 'http://example.test.evil.test', 'https://example.test']) {
      const res = await request(server.port, { path: handshakePath, headers: { Origin: origin } });
      const acao = res.headers['access-control-allow-origin'];
      assert.ok(acao === undefined, `origin ${origin} got Access-Control-Allow-Origin: ${acao}`);
    }
    const none = await request(server.port, { path: handshakePath });
    assert.equal(none.headers['access-control-allow-origin'], undefined);
  });

  it('preflight OPTIONS -> 204 with the allow headers', T, async () => {
    const res = await request(server.port, {
      method: 'OPTIONS',
      path: handshakePath,
      headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], ALLOWED);
    assert.match(res.headers['access-control-allow-methods'] || '', /POST/);
    assert.match(res.headers['access-control-allow-headers'] || '', /content-type/i);
    assert.equal(res.body.length, 0);
    const evil = await request(server.port, {
      method: 'OPTIONS', path: handshakePath, headers: { Origin: 'http://evil.test', 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
  });

  itExitsCleanly(() => server);
});

// ---- slow HTTP clients ----------------------------------------------------------

describe('slow clients (--http-request-timeout 300 --http-idle-timeout 300)', SKIP, () => {
  // Lower bounds on when a connection is closed are loose (100 ms for a
  // 300 ms timeout): libuv starts timers from the loop's cached time, which
  // lags on a busy (or sanitized) loop. They only show it was not at once.
  let server;
  before(async () => {
    server = await startServer({ extra: ['--http-request-timeout', '300', '--http-idle-timeout', '300'] });
  });
  after(async () => { await server?.stop(); });

  it('half a request line gets 408 (or a close) while another client is served', T, async () => {
    const before0 = metric(await metrics(server.port), errKind('http_timeout'));
    const c = new RawConn(server.port);
    await c.connected;
    const t0 = Date.now();
    await c.write('GET /healthz HT');
    // another client is served normally meanwhile
    await sleep(100);
    const ok = await request(server.port, { path: '/healthz' });
    assert.equal(ok.status, 200);
    let status = null;
    try {
      status = (await c.response(5000)).status;
    } catch (err) {
      assert.ok(c.ended, `neither a response nor a close: ${err.message}`);
    }
    if (status !== null) {
      assert.equal(status, 408);
      await c.waitEnd(3000);
    }
    const waited = Date.now() - t0;
    assert.ok(waited >= 100, `closed after ${waited} ms: not by the 300 ms timeout`);
    c.destroy();
    assert.ok(metric(await metrics(server.port), errKind('http_timeout')) >= before0 + 1);
  });

  it('headers sent byte by byte too slowly still time out', T, async () => {
    const c = new RawConn(server.port);
    await c.connected;
    const t0 = Date.now();
    const line = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ';
    await c.write(line);
    // trickle a byte every 100 ms: the timeout is for the whole request
    let closed = false;
    for (let i = 0; i < 40 && !c.ended; i++) {
      await sleep(100);
      if (c.ended || c.buf.length) { closed = true; break; }
      c.sock.write('a');
    }
    closed = closed || c.ended;
    assert.ok(closed, 'a slowloris connection is never cut off');
    assert.ok(Date.now() - t0 >= 100);
    if (c.buf.length) assert.match(c.buf.toString('latin1'), /^HTTP\/1\.1 408/);
    c.destroy();
  });

  it('a connection that sends nothing is closed', T, async () => {
    const c = new RawConn(server.port);
    await c.connected;
    const t0 = Date.now();
    await c.waitEnd(5000);
    assert.ok(Date.now() - t0 >= 100);
    c.destroy();
  });

  it('an idle keep-alive connection is closed after the idle timeout', T, async () => {
    const c = new RawConn(server.port);
    await c.connected;
    await c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.match(r.headers.connection || '', /keep-alive/i);
    const t0 = Date.now();
    // a second request right away is still served on the same connection
    await c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await c.response()).status, 200);
    await c.waitEnd(5000);
    const waited = Date.now() - t0;
    assert.ok(waited >= 100, `idle connection closed after ${waited} ms`);
    // the server still answers new connections
    assert.equal((await request(server.port, { path: '/healthz' })).status, 200);
    c.destroy();
  });

  it('an open websocket is not cut by the HTTP timeouts', T, async () => {
    const c = new WsClient(`ws://127.0.0.1:${server.port}${EIO_WS}`, { autoPong: true });
    try {
      assert.ok((await c.next()).startsWith('0{'));
      c.send('40');
      assert.match(await c.next({ skipPings: true }), /^40\{"sid":/);
      await sleep(1000);
      assert.equal(c.closeInfo, null, 'websocket closed by an HTTP timeout');
      c.send('421["message-with-ack","still"]');
      const got = await c.take(2, { ms: 5000 });
      assert.ok(got.includes('431["still"]'), `ack after 1 s idle: ${JSON.stringify(got)}`);
    } finally {
      c.close();
    }
  });

  itExitsCleanly(() => server);
});

// ---- backpressure -------------------------------------------------------------------

describe('backpressure (--max-send-queue 65536)', SKIP, () => {
  let server;
  before(async () => {
    server = await startServer({ extra: ['--max-send-queue', '65536'] });
  });
  after(async () => { await server?.stop(); });

  it('a websocket peer that stops reading is cut off; memory stays bounded; others keep working', { timeout: 45000 }, async (t) => {
    const sender = await connect(server.url);
    // a reading peer in the same room gets every broadcast the slow one misses
    const reader = await connect(server.url);
    let readerBlobs = 0;
    reader.on('blob', () => { readerBlobs++; });
    assert.deepStrictEqual(await within(new Promise((resolve) => reader.emit('join', 'slow', (...a) => resolve(a))), 5000), ['ok']);
    // a bystander outside the room, on polling
    const bystander = await connect(server.url, { transports: ['polling'] });
    let bystanderBlobs = 0;
    bystander.on('blob', () => { bystanderBlobs++; });

    // the slow peer: Engine.IO + Socket.IO CONNECT by hand, joins room "slow"
    const slow = await rawUpgrade(server.port, EIO_WS);
    try {
      const open = await slow.frame();
      assert.match(open.text, /^0\{"sid":/);
      await slow.write(encodeFrame({ payload: '40' }));
      for (;;) {
        const f = await slow.frame();
        if (f.opcode === 1 && f.text.startsWith('40{')) break;
      }
      await slow.write(encodeFrame({ payload: '421["join","slow"]' }));
      for (;;) {
        const f = await slow.frame();
        if (f.opcode === 1 && f.text === '431["ok"]') break;
      }
      slow.sock.pause(); // stop reading: the kernel buffers fill, then the server's queue

      const base = memOf(server.pid);
      const cut0 = metric(await metrics(server.port), errKind('slow_consumer'));

      // 8 KB events, 4 per round trip: far below --max-send-queue per
      // loop turn, so only a peer that does not read can exceed it
      const blob = 'x'.repeat(8192);
      const PER_ROUND = 4;
      const MAX_BYTES = 96 * 1024 * 1024;
      let sent = 0;
      let events = 0;
      let cut = cut0;
      for (let round = 1; sent < MAX_BYTES; round++) {
        for (let i = 0; i < PER_ROUND; i++) sender.emit('to-room-all', 'slow', 'blob', blob);
        sent += PER_ROUND * blob.length;
        events += PER_ROUND;
        // an ack on the same socket: the server has handled the round
        assert.deepStrictEqual(await ack(sender, round), [round]);
        if (round % 16 === 0) {
          cut = metric(await metrics(server.port), errKind('slow_consumer'));
          if (cut > cut0) break;
        }
      }
      const mb = (sent / 1048576).toFixed(1);
      t.diagnostic(`cut after ${mb} MB; server RSS ${(base.rss / 1048576).toFixed(1)} MB before, peak ${(memOf(server.pid).hwm / 1048576).toFixed(1)} MB`);
      assert.ok(cut >= cut0 + 1, `slow_consumer never counted after ${mb} MB sent to a peer that does not read`);
      const mem = memOf(server.pid);
      const growth = mem.hwm - base.rss;
      assert.ok(growth < 64 * 1024 * 1024,
        `server peak RSS grew ${(growth / 1048576).toFixed(1)} MB while ${mb} MB went to a slow peer`);

      // the slow peer's connection was closed: what the kernel held, then EOF/reset
      slow.sock.resume();
      await slow.waitEnd(10000);

      // the reading peer got every event and is still connected
      for (let i = 0; i < 100 && readerBlobs < events; i++) await sleep(100);
      assert.equal(readerBlobs, events, 'the reading peer in the same room missed events');
      assert.equal(reader.connected, true, 'the reading peer was cut off too');
      assert.deepStrictEqual(await ack(reader, 'after'), ['after']);
      assert.deepStrictEqual(await ack(sender, 'after'), ['after']);
      assert.deepStrictEqual(await ack(bystander, 'after'), ['after']);
      assert.equal(bystanderBlobs, 0, 'the bystander is not in room "slow"');
      const late = await connect(server.url);
      assert.deepStrictEqual(await ack(late, 'late'), ['late']);
      late.disconnect();
      let q;
      for (let i = 0; i < 30; i++) {
        q = metric(await metrics(server.port), 'tabsync_send_queue_bytes');
        if (q < 65536) break;
        await sleep(100);
      }
      assert.ok(q < 65536, `send queue gauge stays at ${q} bytes after the slow peer is gone`);
    } finally {
      slow.destroy();
      sender.disconnect();
      reader.disconnect();
      bystander.disconnect();
    }
  });

  it('a peer cut off during a broadcast to a room it is alone in: the server survives', { timeout: 30000 }, async () => {
    // Cutting the peer closes its session while the broadcast is still
    // walking the room's member list; the room becomes empty and goes away.
    const sender = await connect(server.url);
    const slow = await rawUpgrade(server.port, EIO_WS);
    try {
      assert.match((await slow.frame()).text, /^0\{"sid":/);
      await slow.write(encodeFrame({ payload: '40' }));
      for (;;) if ((await slow.frame()).text?.startsWith('40{')) break;
      await slow.write(encodeFrame({ payload: '421["join","solo"]' }));
      for (;;) if ((await slow.frame()).text === '431["ok"]') break;
      slow.sock.pause();
      const cut0 = metric(await metrics(server.port), errKind('slow_consumer'));
      const blob = 'z'.repeat(8192);
      let cut = cut0;
      for (let round = 1; round <= 4000 && cut === cut0; round++) {
        for (let i = 0; i < 4; i++) sender.emit('to-room-all', 'solo', 'blob', blob);
        assert.deepStrictEqual(await ack(sender, round), [round], `server answers after round ${round}\n${server.stderr().slice(-3000)}`);
        if (round % 16 === 0) cut = metric(await metrics(server.port), errKind('slow_consumer'));
      }
      assert.ok(cut > cut0, 'the slow peer was never cut off');
      // the server is alive and the (now empty) room can be broadcast to
      sender.emit('to-room-all', 'solo', 'blob', 'after');
      assert.deepStrictEqual(await ack(sender, 'alive'), ['alive']);
      assert.equal((await request(server.port, { path: '/healthz' })).status, 200);
      assert.ok(!/AddressSanitizer|runtime error/.test(server.stderr()), server.stderr().slice(-4000));
      slow.sock.resume();
      await slow.waitEnd(10000);
    } finally {
      slow.destroy();
      sender.disconnect();
    }
  });

  it('a peer that reads is not cut off by a burst bigger than --max-send-queue', T, async () => {
    // The limit is for peers that do not read. 128 events of 8 KB sent at
    // once reach the server in one loop turn; a reading peer must get them.
    const sender = await connect(server.url);
    const reader = await connect(server.url);
    let got = 0;
    let gone = null;
    reader.on('blob', () => { got++; });
    reader.on('disconnect', (reason) => { gone = reason; });
    try {
      assert.deepStrictEqual(await within(new Promise((resolve) => reader.emit('join', 'burst', (...a) => resolve(a))), 5000), ['ok']);
      const cut0 = metric(await metrics(server.port), errKind('slow_consumer'));
      const blob = 'y'.repeat(8192);
      for (let i = 0; i < 128; i++) sender.emit('to-room-all', 'burst', 'blob', blob);
      assert.deepStrictEqual(await ack(sender, 'done'), ['done'], `server answers after the burst\n${server.stderr().slice(-3000)}`);
      for (let i = 0; i < 100 && got < 128 && !gone; i++) await sleep(50);
      const cut = metric(await metrics(server.port), errKind('slow_consumer'));
      assert.equal(gone, null, `a reading peer was disconnected (${gone}) after ${got} of 128 events; slow_consumer ${cut0} -> ${cut}`);
      assert.equal(got, 128);
      assert.equal(cut, cut0);
    } finally {
      sender.disconnect();
      reader.disconnect();
    }
  });

  itExitsCleanly(() => server);
});

// ---- graceful shutdown --------------------------------------------------------------

describe('graceful shutdown', SKIP, () => {
  it('SIGTERM: stop accepting, clients see a disconnect, exit 0', T, async () => {
    const d = await spawnDaemon(['--test-app', '--log-level', 'warn']);
    const wsSock = await connect(d.url, { transports: ['websocket'] });
    const pollSock = await connect(d.url, { transports: ['polling'] });
    assert.deepStrictEqual(await ack(wsSock, 1), [1]);
    assert.deepStrictEqual(await ack(pollSock, 2), [2]);
    const wsGone = once(wsSock, 'disconnect', 8000);
    const pollGone = once(pollSock, 'disconnect', 8000);
    const t0 = Date.now();
    process.kill(d.pid, 'SIGTERM');

    const [wsReason] = await wsGone;
    const [pollReason] = await pollGone;
    const reasons = ['transport close', 'io server disconnect', 'transport error'];
    assert.ok(reasons.includes(wsReason), `websocket: ${wsReason}`);
    assert.ok(reasons.includes(pollReason), `polling: ${pollReason}`);

    // the listener is closed: a new connection attempt fails
    assert.equal(await tcpConnects(d.port), false, 'a new connection was accepted after SIGTERM');

    const res = await within(d.exited, 8000, 'tabsyncd exit after SIGTERM');
    assert.deepStrictEqual(res, { code: 0, signal: null }, `exit; stderr: ${d.stderr()}`);
    assert.ok(Date.now() - t0 < 8000);
    wsSock.disconnect();
    pollSock.disconnect();
  });

  it('a request on a kept-alive connection during the drain: 503 draining (or closed), then exit 0', T, async () => {
    const d = await spawnDaemon(['--test-app', '--log-level', 'warn']);
    // a socket.io client keeps the drain going for a moment
    const sock = await connect(d.url, { transports: ['websocket'] });
    const keep = new RawConn(d.port);
    await keep.connected;
    await keep.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await keep.response()).status, 200);
    const gone = once(sock, 'disconnect', 8000);
    process.kill(d.pid, 'SIGTERM');
    await gone; // the signal has been handled
    let health = null;
    try {
      await keep.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      health = await keep.response(3000);
    } catch {
      // closed before answering: acceptable
    } finally {
      keep.destroy();
    }
    if (health) {
      assert.equal(health.status, 503, '/healthz after SIGTERM');
      if (/json/.test(health.headers['content-type'] || '')) assert.equal(JSON.parse(health.body).status, 'draining');
    }
    const res = await within(d.exited, 8000, 'tabsyncd exit after SIGTERM');
    assert.deepStrictEqual(res, { code: 0, signal: null }, `exit; stderr: ${d.stderr()}`);
    sock.disconnect();
  });

  it('/healthz says draining (503 JSON) while a polling session drains; its next poll gets the close packet', T, async () => {
    const d = await spawnDaemon(['--test-app', '--log-level', 'warn', '--shutdown-timeout', '5000']);
    // a polling session with no GET pending keeps the drain going
    const hs = await request(d.port, { path: '/socket.io/?EIO=4&transport=polling' });
    const sid = JSON.parse(hs.body.toString('utf8').slice(1)).sid;
    // a kept-alive connection: it has carried a request (a connection still
    // silent when the drain starts was never accepted, --defer-accept)
    const keep = new RawConn(d.port);
    await keep.connected;
    await keep.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await keep.response(3000)).status, 200);
    const t0 = Date.now();
    process.kill(d.pid, 'SIGTERM');
    let health;
    let poll;
    try {
      for (;;) {
        await keep.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        health = await keep.response(3000);
        if (health.status !== 200 || Date.now() - t0 > 3000) break;
        await sleep(20);
      }
      // new connections are refused now; the kept-alive one carries the poll
      await keep.write(`GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n\r\n`);
      poll = await keep.response(3000);
    } finally {
      keep.destroy();
    }
    assert.equal(health.status, 503);
    assert.match(health.headers['content-type'], /json/);
    assert.equal(JSON.parse(health.body).status, 'draining');
    assert.equal(poll.status, 200);
    assert.match(poll.body, /(^|\x1e)1$/, `the drained session's poll: ${JSON.stringify(poll.body)}`);
    const res = await within(d.exited, 8000, 'tabsyncd exit after SIGTERM');
    assert.deepStrictEqual(res, { code: 0, signal: null }, `exit; stderr: ${d.stderr()}`);
  });

  it('SIGINT exits 0 like SIGTERM', T, async () => {
    const d = await spawnDaemon(['--test-app']);
    assert.equal((await request(d.port, { path: '/healthz' })).status, 200);
    process.kill(d.pid, 'SIGINT');
    const res = await within(d.exited, 8000, 'exit after SIGINT');
    assert.deepStrictEqual(res, { code: 0, signal: null }, `stderr ${d.stderr()}`);
  });

  it('SIGTERM right after the ready line is a graceful shutdown too', T, async () => {
    // A supervisor may stop the server as soon as it said it is ready.
    for (let i = 0; i < 5; i++) {
      const d = await spawnDaemon(['--test-app']);
      process.kill(d.pid, 'SIGTERM');
      const res = await within(d.exited, 8000, 'exit after SIGTERM');
      assert.deepStrictEqual(res, { code: 0, signal: null },
        `killed by the signal: the ready line is printed before the SIGTERM handler is installed; stderr ${d.stderr()}`);
    }
  });
});

// ---- ping timeout --------------------------------------------------------------------

describe('ping timeout (--ping-interval 200 --ping-timeout 200)', SKIP, () => {
  let server;
  before(async () => {
    server = await startServer({ pingInterval: 200, pingTimeout: 200 });
  });
  after(async () => { await server?.stop(); });

  it('a websocket client that never answers pings is closed', T, async () => {
    const before0 = metric(await metrics(server.port), errKind('eio_ping_timeout'));
    const c = new WsClient(`ws://127.0.0.1:${server.port}${EIO_WS}`, { autoPong: false });
    try {
      const open = JSON.parse((await c.next()).slice(1));
      assert.equal(open.pingInterval, 200);
      assert.equal(open.pingTimeout, 200);
      const t0 = Date.now();
      assert.equal(await c.next({ ms: 3000 }), '2', 'a ping after pingInterval');
      await c.waitClose(5000);
      const waited = Date.now() - t0;
      assert.ok(waited >= 100, `closed ${waited} ms after the ping, before pingTimeout`);
      assert.ok(metric(await metrics(server.port), errKind('eio_ping_timeout')) >= before0 + 1);
    } finally {
      c.close();
    }
  });

  it('a client that answers pings stays connected past several intervals', T, async () => {
    const c = new WsClient(`ws://127.0.0.1:${server.port}${EIO_WS}`, { autoPong: true });
    try {
      assert.ok((await c.next()).startsWith('0{'));
      c.send('40');
      assert.match(await c.next({ skipPings: true }), /^40\{"sid":/);
      await sleep(1500);
      assert.equal(c.closeInfo, null, 'closed although it answered every ping');
      const pings = c.queue.filter((m) => m === '2').length;
      assert.ok(pings >= 2, `saw ${pings} pings in 1.5 s`);
    } finally {
      c.close();
    }
  });

  it('a polling client that stops polling loses its session', T, async () => {
    const hs = await request(server.port, { path: '/socket.io/?EIO=4&transport=polling' });
    assert.equal(hs.status, 200);
    const sid = JSON.parse(hs.body.toString('utf8').slice(1)).sid;
    await sleep(1500); // > pingInterval + pingTimeout
    const poll = await request(server.port, { path: `/socket.io/?EIO=4&transport=polling&sid=${sid}` });
    assert.equal(poll.status, 400, `poll after the ping timeout: ${poll.status} ${poll.body}`);
    assert.deepStrictEqual(JSON.parse(poll.body.toString('utf8')), { code: 1, message: 'Session ID unknown' });
  });

  it('socket.io-client (which answers pings) keeps its connection', T, async () => {
    const s = await connect(server.url, { transports: ['polling'] });
    try {
      await sleep(1500);
      assert.equal(s.connected, true);
      assert.deepStrictEqual(await ack(s, 'alive'), ['alive']);
    } finally {
      s.disconnect();
    }
  });

  itExitsCleanly(() => server);
});
