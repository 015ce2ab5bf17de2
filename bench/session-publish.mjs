// session-publish.mjs - what one /session publish costs the server, with the
// history off and on: S sessions x T tabs (socket.io-client, websocket, an
// HS256 token each), every tab publishing session-scope envelopes at a fixed
// total rate; the server's CPU time (utime + stime from /proc/<pid>/stat) over
// the timed window divided by the deliveries counted at the receivers. The
// generator shares the machine, so the per-delivery server CPU is the number
// to compare, not the rate. Every delivery is checked: each envelope reaches
// each other tab of its session once.
//
//   node bench/session-publish.mjs --bin build/tabsyncd [--sessions 50] [--tabs 4]
//        [--rate 2000] [--seconds 5] [--proto 2|3] [--label L] -- <tabsyncd flags>
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { io } from 'socket.io-client';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const args = dash >= 0 ? argv.slice(0, dash) : argv;
const extra = dash >= 0 ? argv.slice(dash + 1) : [];
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const BIN = opt('bin', 'build/tabsyncd');
const SESSIONS = Number(opt('sessions', 50));
const TABS = Number(opt('tabs', 4));
const RATE = Number(opt('rate', 2000));
const SECONDS = Number(opt('seconds', 5));
const PROTO = Number(opt('proto', 2));
const LABEL = opt('label', '');
const SECRET = crypto.randomBytes(32).toString('hex');

const b64url = (d) => Buffer.from(d).toString('base64url');
function token(user, session, device, fingerprint) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    sub: user, sid: session, dev: device, iat: now, nbf: now, exp: now + 3600,
    fp: crypto.createHash('sha256').update(fingerprint).digest('hex'),
  };
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(crypto.createHmac('sha256', SECRET).update(input).digest())}`;
}

const ticks = () => {
  const f = fs.readFileSync(`/proc/${srv.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100/s)
};

const srv = spawn(BIN, ['--listen', '127.0.0.1:0', '--jwt-secret', SECRET, '--log-level', 'warn',
  '--limit-events-per-socket', '0', '--limit-bytes-per-socket', '0', '--limit-conns-per-user', '0',
  '--limit-handshakes-per-ip', '0', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve, reject) => {
  srv.stdout.on('data', (d) => {
    const m = /listening on https?:\/\/127\.0\.0\.1:(\d+)\//.exec(String(d));
    if (m) resolve(Number(m[1]));
  });
  srv.on('exit', (c) => reject(new Error(`tabsyncd exited ${c}`)));
});

const tabs = [];
let received = 0, wrong = 0;
for (let s = 0; s < SESSIONS; s++) {
  for (let t = 0; t < TABS; t++) {
    const user = `u${s}`, session = `s${s}`, device = `d${t}`, fp = `fp${t}`;
    const sock = io(`http://127.0.0.1:${port}/session`, {
      transports: ['websocket'], reconnection: false,
      auth: { token: token(user, session, device, fp), device: { id: device, fingerprint: fp, type: 'browser' },
        tab: { id: `t${t}` }, proto: PROTO },
    });
    sock.seen = new Set();
    sock.on('event', (e) => {
      const k = e.id;
      if (sock.seen.has(k) || !k.startsWith(`s${s}-`)) wrong++;
      sock.seen.add(k);
      received++;
    });
    tabs.push({ sock, s, t });
  }
}
await Promise.all(tabs.map(({ sock }) => new Promise((r, j) => {
  sock.on('welcome', r);
  sock.on('connect_error', j);
})));

const body = 'x'.repeat(100);
let sent = 0, acked = 0, n = 0;
const t0 = Date.now(), c0 = ticks();
const interval = 10; // ms
const perTick = Math.max(1, Math.round((RATE * interval) / 1000));
await new Promise((resolve) => {
  const timer = setInterval(() => {
    if (Date.now() - t0 >= SECONDS * 1000) {
      clearInterval(timer);
      resolve();
      return;
    }
    for (let k = 0; k < perTick; k++) {
      const tab = tabs[n++ % tabs.length];
      sent++;
      tab.sock.emit('publish', { v: PROTO, type: 'bench', id: `s${tab.s}-${sent}`, body },
        (a) => { if (a?.ok) acked++; });
    }
  }, interval);
});
// let the last deliveries land before the CPU is read
const want = sent * (TABS - 1);
for (let i = 0; i < 100 && (received < want || acked < sent); i++) await new Promise((r) => setTimeout(r, 50));
const c1 = ticks(), t1 = Date.now();
const cpuMs = ((c1 - c0) * 1000) / 100;
const out = {
  label: LABEL, proto: PROTO, sessions: SESSIONS, tabs: TABS, sent, acked, deliveries: received, want,
  wrong, seconds: (t1 - t0) / 1000, server_cpu_ms: cpuMs,
  us_per_delivery: +((cpuMs * 1000) / Math.max(1, received)).toFixed(2),
  us_per_publish: +((cpuMs * 1000) / Math.max(1, sent)).toFixed(2),
};
console.log(JSON.stringify(out));
for (const { sock } of tabs) sock.close();
srv.kill('SIGTERM');
process.exit(received === want && acked === sent && wrong === 0 ? 0 : 1);
