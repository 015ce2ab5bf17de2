// What a new operator meets on the first day, against the real binary
// (issue #14, items 6-8):
//   6. a second tabsyncd on a port already in use refuses to start (exit 1,
//      "address already in use" with the address) instead of sharing the
//      port through SO_REUSEPORT, and the first keeps every connection; a
//      tabsyncd's own loops (--workers 2) still share their port;
//   7. what --cors-origin governs: polling requests' CORS headers only; a
//      WebSocket from any Origin connects (tabs authenticate with a token in
//      the auth payload, never a cookie: docs/SECURITY.md "Origins");
//   8. --store-sqlite is opened and checked even with /session off, and a
//      token date beyond 64 bits is token_invalid_claim (docs/SECURITY.md).
//
// tabsyncd only (flags and exit statuses): skipped with TS_TARGET=node.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { startServer, IS_NODE, within } from './harness.mjs';
import { authFor, claims, hs256, tryTab, b64url, hmac } from './session-helpers.mjs';

const BIN = process.env.TABSYNCD;
const T = { timeout: 30000 };
const SKIP = IS_NODE ? { skip: 'tabsyncd only (daemon flags and exit statuses)' } : {};
const SECRET_A = crypto.randomBytes(32).toString('hex');
const SECRET_B = crypto.randomBytes(32).toString('hex');
const NO_LIMITS = ['--limit-handshakes-per-ip', '0', '--limit-conns-per-ip', '0'];

const ident = (user, tab) => ({ user, session: `s-${user}`, device: `d-${tab}`, fingerprint: `fp-${tab}`, tab });
const tokenFor = (id, secret, opts) => hs256(claims(id, opts), secret);

/**
 * Run tabsyncd until it exits or `ms` passes: { code, signal, stdout,
 * stderr, started }. A process still running after `ms` (it started, which
 * is the bug this file guards against) is killed by its pid.
 */
function runBin(args, ms = 8000) {
  assert.ok(BIN, 'TABSYNCD is not set (path to the tabsyncd binary)');
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let started = false;
    child.stdout.on('data', (d) => {
      stdout += d;
      if (/listening on/.test(stdout)) started = true;
    });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, ms);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      setImmediate(() => resolve({ code, signal, stdout, stderr, started }));
    });
  });
}

function request(port, { method = 'GET', path: p, headers = {} }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Connects `n` /session tabs signed with `secret`; returns how many got their welcome. */
async function connectAll(url, secret, n, prefix) {
  let ok = 0;
  const why = [];
  for (let i = 0; i < n; i++) {
    const id = ident(`${prefix}-u${i}`, `${prefix}-t${i}`);
    const r = await tryTab(url, authFor(id, tokenFor(id, secret)), { transports: ['websocket'] });
    if (r.ok) ok++;
    else why.push(r.err?.data?.code ?? r.err?.message);
    r.sock.close();
  }
  return { ok, why };
}

const tempDirs = [];
function tempDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-first-day-'));
  tempDirs.push(d);
  return d;
}
after(() => { for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true }); });

// ---- 6. one port, one tabsyncd ------------------------------------------------

describe('a second tabsyncd on a port already in use (issue #14 item 6)', SKIP, () => {
  for (const workers of ['1', '2']) {
    it(`exits 1 naming the address; the first (--workers ${workers}) serves all 12 connections`, T, async () => {
      const first = await startServer({ testApp: false, extra: ['--workers', workers, '--jwt-secret', SECRET_A, ...NO_LIMITS] });
      try {
        const addr = `127.0.0.1:${first.port}`;
        for (const w of ['1', '2']) {
          const second = await runBin(['--listen', addr, '--workers', w, '--jwt-secret', SECRET_B, ...NO_LIMITS]);
          assert.ok(!second.started, `the second tabsyncd (--workers ${w}) started on ${addr}: ${second.stdout}`);
          assert.equal(second.code, 1, `exit status; stderr: ${second.stderr}`);
          assert.match(second.stderr, /address already in use/i);
          assert.ok(second.stderr.includes(addr), `the message names ${addr}: ${second.stderr}`);
          const lines = second.stderr.split('\n').filter((l) => l !== '');
          assert.equal(lines.length, 1, `one line: ${second.stderr}`);
        }
        // Before the fix the second one ran and the kernel split these
        // between the two (its secret refused the first's tokens).
        const { ok, why } = await connectAll(first.url, SECRET_A, 12, `port${workers}`);
        assert.equal(ok, 12, `connections refused: ${why.join(', ')}`);
      } finally {
        await first.stop();
      }
    });
  }

  it('a second tabsyncd started while the first is up, then the first stops: the port is free again', T, async () => {
    const first = await startServer({ testApp: false, extra: ['--jwt-secret', SECRET_A] });
    const port = first.port;
    const refused = await runBin(['--listen', `127.0.0.1:${port}`]);
    assert.equal(refused.code, 1, refused.stderr);
    // connections closed by the server stay in TIME_WAIT on its port
    assert.equal((await connectAll(first.url, SECRET_A, 3, 'tw')).ok, 3);
    await first.stop();
    // a restart on the same port (what a supervisor does) must work: the
    // check refuses a port in use, not one just released
    const again = await startServer({ testApp: false, extra: ['--listen', `127.0.0.1:${port}`, '--jwt-secret', SECRET_A] });
    assert.equal(again.port, port);
    await again.stop();
  });
});

// ---- 7. origins -----------------------------------------------------------------

describe('what --cors-origin governs (issue #14 item 7)', SKIP, () => {
  const APP = 'http://app.test';
  const EVIL = 'http://evil.test';

  it('--help says it governs polling (CORS), that WebSocket origins are not checked, and why', T, async () => {
    const r = await runBin(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!/only pages served by tabsyncd can connect/.test(r.stdout), 'the old promise is gone');
    const at = r.stdout.indexOf('--cors-origin');
    assert.ok(at >= 0, 'usage lists --cors-origin');
    const row = r.stdout.slice(at, r.stdout.indexOf('--cors-credentials', at)).replace(/\s+/g, ' ');
    assert.match(row, /polling/i, row);
    assert.match(row, /WebSocket/, row);
    assert.match(row, /not checked/i, row);
    assert.match(row, /token/i, row);
  });

  it('a WebSocket from another Origin connects to /session (documented: not checked); polling from it gets no CORS allow header', T, async () => {
    const srv = await startServer({ testApp: false, extra: ['--jwt-secret', SECRET_A, '--cors-origin', APP, '--shutdown-timeout', '1000'] });
    try {
      // the WebSocket transport directly, with a browser's Origin header
      const id = ident('orig-u', 'orig-t');
      const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`, { origin: EVIL });
      const got = [];
      const waiters = [];
      ws.on('message', (d) => {
        const m = d.toString('utf8');
        if (m === '2') ws.send('3');
        got.push(m);
        for (const w of waiters.splice(0)) w();
      });
      const next = async (pred, what) => within((async () => {
        for (;;) {
          const hit = got.find(pred);
          if (hit) return hit;
          await new Promise((resolve) => waiters.push(resolve));
        }
      })(), 5000, what);
      await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'ws open');
      await next((m) => m.startsWith('0{'), 'Engine.IO open');
      ws.send(`40/session,${JSON.stringify(authFor(id, tokenFor(id, SECRET_A)))}`);
      const answer = await next((m) => m.startsWith('40/session,') || m.startsWith('44/session,'), 'CONNECT answer');
      assert.match(answer, /^40\/session,\{"sid":/, `a WebSocket from ${EVIL} is not refused for its Origin: ${answer}`);
      ws.close();

      // polling: the browser's CORS check is what --cors-origin feeds
      const hs = '/socket.io/?EIO=4&transport=polling';
      const evil = await request(srv.port, { path: hs, headers: { Origin: EVIL } });
      assert.equal(evil.headers['access-control-allow-origin'], undefined, 'no allow header for another origin');
      assert.equal(evil.headers['access-control-allow-credentials'], undefined);
      const pre = await request(srv.port, { method: 'OPTIONS', path: hs, headers: { Origin: EVIL, 'Access-Control-Request-Method': 'POST' } });
      assert.equal(pre.headers['access-control-allow-origin'], undefined, 'no allow header on a preflight from another origin');
      const app = await request(srv.port, { path: hs, headers: { Origin: APP } });
      assert.equal(app.headers['access-control-allow-origin'], APP);
    } finally {
      await srv.stop();
    }
  });

  it('without --cors-origin, no polling response carries a CORS allow header', T, async () => {
    const srv = await startServer({ testApp: false, extra: ['--shutdown-timeout', '1000'] });
    try {
      const r = await request(srv.port, { path: '/socket.io/?EIO=4&transport=polling', headers: { Origin: EVIL } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['access-control-allow-origin'], undefined);
    } finally {
      await srv.stop();
    }
  });
});

// ---- 8. the store file and token dates ------------------------------------------

describe('--store-sqlite is checked with /session off; 64-bit dates (issue #14 item 8)', SKIP, () => {
  it('a corrupt --store-sqlite file: exit 1 naming the file, even without --jwt-secret', T, async () => {
    const dir = tempDir();
    const file = path.join(dir, 'corrupt.db');
    fs.writeFileSync(file, Buffer.concat([Buffer.from('this is not a database\n'), crypto.randomBytes(8192)]));
    const r = await runBin(['--listen', '127.0.0.1:0', '--store-sqlite', file]);
    assert.ok(!r.started, `started with a corrupt store: ${r.stdout}`);
    assert.equal(r.code, 1, `exit status; stderr: ${r.stderr}`);
    assert.ok(r.stderr.includes(file), `the message names the file: ${r.stderr}`);
    assert.match(r.stderr, /not a (tabsync )?database/i);
  });

  it('an unusable --store-sqlite path (no such directory): exit 1 naming it, even without --jwt-secret', T, async () => {
    const file = path.join(tempDir(), 'missing-dir', 'store.db');
    const r = await runBin(['--listen', '127.0.0.1:0', '--store-sqlite', file]);
    assert.ok(!r.started, `started with an unusable store: ${r.stdout}`);
    assert.equal(r.code, 1, `exit status; stderr: ${r.stderr}`);
    assert.ok(r.stderr.includes(file), `the message names the file: ${r.stderr}`);
  });

  it('a good --store-sqlite file with /session off: starts, says the store is unused, stops cleanly', T, async () => {
    const file = path.join(tempDir(), 'ok.db');
    const srv = await startServer({ extra: ['--store-sqlite', file] });
    await srv.stop();
    assert.ok(fs.existsSync(file), 'the file was opened (created)');
    assert.match(srv.stderr(), /store-sqlite/, `a line says the file is not used while /session is off: ${srv.stderr()}`);
  });

  for (const claim of ['exp', 'nbf', 'iat']) {
    it(`a token whose ${claim} is beyond 64 bits: token_invalid_claim naming ${claim}`, T, async () => {
      const srv = await startServer({ testApp: false, extra: ['--jwt-secret', SECRET_A, ...NO_LIMITS] });
      try {
        const id = ident(`big-${claim}`, `big-${claim}-t`);
        const c = claims(id);
        // 2^64 * 10: an integer literal no 64-bit integer holds (JSON.stringify
        // writes 1e20 as 100000000000000000000)
        const payload = JSON.stringify(c).replace(`"${claim}":${c[claim]}`, `"${claim}":184467440737095516160`);
        assert.ok(payload.includes('184467440737095516160'));
        const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(payload)}`;
        const token = `${input}.${b64url(hmac(SECRET_A)(Buffer.from(input, 'ascii')))}`;
        const r = await tryTab(srv.url, authFor(id, token), { transports: ['websocket'] });
        r.sock.close();
        assert.equal(r.ok, false, 'refused');
        assert.equal(r.err.data?.code, 'token_invalid_claim', `data: ${JSON.stringify(r.err.data)} ${r.err.message}`);
        assert.ok(r.err.message.includes(`"${claim}"`), `the message names ${claim}: ${r.err.message}`);
      } finally {
        await srv.stop();
      }
    });
  }
});
