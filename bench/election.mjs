// election.mjs - the leader election benchmarks of issue #10 (docs/ELECTION.md,
// /session protocol 4) against a real tabsyncd with the real socket.io-client:
//
//   failover  a leader tab's process is SIGSTOPped (no heartbeat, no read, the
//             TCP connection stays open); time from its last acknowledged
//             heartbeat (and from the lease expiry the ack named) until a backup
//             receives its `elect` view with role "leader" and a higher term.
//             Many sessions at once, heartbeat phases spread, so each session's
//             lease ends at a different point of the sweep period.
//   handoff   the leader emits `resign`; time until another tab's view says
//             "leader" with a higher term. One handoff in flight at a time.
//   storm     S sessions x T tabs (elect: {scopes: ["session"]}) all connecting
//             at once from W worker processes; per session: the time from its
//             last tab's connect to its leader's election and to every tab
//             holding the same final view, whether exactly one tab says leader
//             and all agree on the term; server CPU (/proc/<pid>/stat) per
//             election counted in /metrics. Then the same storm without
//             elections, so the elections' own share of the CPU is visible.
//
// One JSON line per part on stdout ({key, ok, ...}); progress on stderr.
//
//   node bench/election.mjs --bin build/tabsyncd [--quick] [--only "failover handoff storm"]
//        [--leases 3000,500] [--failover-sessions 100] [--handoff-sessions 250]
//        [--handoff-rounds 4] [--storm-sessions 4900] [--storm-tabs 4] [--workers 4]
//        [--storm-baseline 1] [--run N]
import { spawn, fork } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const SELF = fileURLToPath(import.meta.url);
const now = () => performance.timeOrigin + performance.now(); // wall ms, sub-ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (s) => process.stderr.write(`election: ${s}\n`);

// ---- tokens and tabs -----------------------------------------------------------
const b64url = (d) => Buffer.from(d).toString('base64url');
function token(secret, user, session, device, fp) {
  const t = Math.floor(Date.now() / 1000);
  const claims = {
    sub: user, sid: session, dev: device, iat: t, nbf: t, exp: t + 3600,
    fp: crypto.createHash('sha256').update(fp).digest('hex'),
  };
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(crypto.createHmac('sha256', secret).update(input).digest())}`;
}
function authOf(secret, user, session, device, tab, scopes) {
  const fp = `fp:${user}:${device}`;
  const a = {
    token: token(secret, user, session, device, fp),
    device: { id: device, fingerprint: fp, type: 'browser' }, tab: { id: tab }, proto: 4,
  };
  if (scopes) a.elect = { scopes };
  return a;
}
/** A tab: sock.view is the last `elect` view of scope session, sock.onView(v) hooks. */
function openTab(port, auth, opts = {}) {
  const sock = io(`http://127.0.0.1:${port}/session`, {
    transports: ['websocket'], reconnection: false, forceNew: true, timeout: 30000, perMessageDeflate: false,
    auth, ...opts,
  });
  sock.holder = `${auth.device.id}/${auth.tab.id}`;
  sock.view = null;
  sock.hooks = [];
  sock.on('elect', (v) => {
    if (v.scope !== 'session') return;
    sock.view = v;
    for (const h of sock.hooks) h(v);
  });
  return sock;
}
const connected = (sock) => new Promise((resolve, reject) => {
  if (sock.connected) return resolve();
  sock.once('connect', resolve);
  sock.once('connect_error', (e) => reject(new Error(`${sock.holder}: ${e.message}`)));
});
/** Resolves with the first view (already held or coming) that satisfies pred. */
function viewWhere(sock, pred, ms, what) {
  return new Promise((resolve, reject) => {
    if (sock.view && pred(sock.view)) return resolve({ v: sock.view, at: now() });
    const t = setTimeout(() => {
      sock.hooks = sock.hooks.filter((x) => x !== h);
      reject(new Error(`timeout ${ms} ms: ${what} (${sock.holder}, last view ${JSON.stringify(sock.view && { term: sock.view.term, role: sock.view.role, reason: sock.view.reason })})`));
    }, ms);
    const h = (v) => {
      if (!pred(v)) return;
      clearTimeout(t);
      sock.hooks = sock.hooks.filter((x) => x !== h);
      resolve({ v, at: now() });
    };
    sock.hooks.push(h);
  });
}
const holderOf = (who) => (who ? `${who.device}/${who.tab}` : null);

// ---- the server ------------------------------------------------------------------
const NO_LIMITS = [
  '--limit-handshakes-per-ip', '0', '--limit-conns-per-ip', '0',
  '--limit-conns-per-user', '0', '--limit-events-per-socket', '0',
  '--limit-bytes-per-socket', '0', '--limit-strikes', '0',
];
async function startServer(bin, secret, extra) {
  // through sh so the open-file limit is the hard one (TESTING.md: 20,000 here)
  const srv = spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$@"', 'sh', bin,
    '--listen', '127.0.0.1:0', '--jwt-secret', secret, '--log-level', 'warn', ...NO_LIMITS, ...extra],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    srv.stdout.on('data', (d) => {
      buf += d;
      const m = /listening on https?:\/\/127\.0\.0\.1:(\d+)\//.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    srv.on('exit', (c) => reject(new Error(`tabsyncd exited ${c} before listening`)));
    setTimeout(() => reject(new Error('tabsyncd did not start in 15 s')), 15000);
  });
  srv.port = port;
  return srv;
}
async function stopServer(srv) {
  if (srv.exitCode !== null) return;
  const gone = new Promise((r) => srv.once('exit', r));
  srv.kill('SIGTERM');
  const t = setTimeout(() => srv.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(t);
}
/** The server's CPU: clock ticks from /proc/<pid>/stat (utime + stime, 100/s)
 * and nanoseconds from every thread's schedstat (finer, for small amounts). */
function cpuOf(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  let ns = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try { ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]); } catch { /* gone */ }
  }
  return { ticks: Number(f[11]) + Number(f[12]), ns };
}
const cpuMs = (a, b) => ({ stat_ms: (b.ticks - a.ticks) * 10, sched_ms: (b.ns - a.ns) / 1e6 });
async function elections(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const by = {};
  for (const m of text.matchAll(/^tabsync_elect_elections_total\{reason="(\w+)"\} (\d+)$/gm)) by[m[1]] = Number(m[2]);
  const lapses = /^tabsync_elect_lapses_total (\d+)$/m.exec(text);
  return { total: Object.values(by).reduce((a, b) => a + b, 0), by, lapses: lapses ? Number(lapses[1]) : 0 };
}
const diffBy = (a, b) => Object.fromEntries(Object.keys(b.by).map((k) => [k, b.by[k] - (a.by[k] || 0)]).filter(([, v]) => v));

function dist(xs) {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return { n: 0 };
  const q = (p) => v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)];
  const r = (x) => Math.round(x * 100) / 100;
  return { n: v.length, min: r(v[0]), p50: r(q(50)), p90: r(q(90)), p99: r(q(99)), max: r(v[v.length - 1]),
    mean: r(v.reduce((a, b) => a + b, 0) / v.length) };
}
const closeAll = (socks) => { for (const s of socks) s.close(); };

// ---- failover ----------------------------------------------------------------------
// The leaders live in a child process (the same file, --worker leaders) so that
// they can be stopped the way a frozen tab or a suspended laptop stops.
async function leadersWorker() {
  const { port, secret, sessions, prefix } = JSON.parse(process.argv[4]);
  const tabs = [];
  const last = new Array(sessions).fill(null); // last acknowledged heartbeat
  let inflight = 0, quiet = false, failures = 0;
  for (let i = 0; i < sessions; i++) {
    const sock = openTab(port, authOf(secret, `${prefix}u${i}`, `s${i}`, 'dL', 'tL', ['session']));
    tabs.push(sock);
  }
  await Promise.all(tabs.map((s) => connected(s)));
  const views = await Promise.all(tabs.map((s) => viewWhere(s, (v) => v.role === 'leader', 10000, 'leader view')));
  tabs.forEach((sock, i) => {
    const { v } = views[i];
    const beat = () => {
      if (quiet) return;
      const sent = now();
      inflight++;
      sock.emit('hb', { scope: 'session', term: v.term }, (a) => {
        inflight--;
        if (a && a.ok) last[i] = { sent, acked: now(), expires_at: a.expires_at, term: a.term };
        else failures++;
      });
      sock.hbTimer = setTimeout(beat, v.hb_ms);
    };
    // a random phase: the sessions' leases end spread over the sweep period
    sock.hbTimer = setTimeout(beat, Math.random() * v.hb_ms);
  });
  process.send({ type: 'ready', terms: views.map(({ v }) => v.term), hb_ms: views[0].v.hb_ms });
  process.on('message', async (m) => {
    if (m.type !== 'quiesce') return;
    quiet = true;
    for (const s of tabs) clearTimeout(s.hbTimer);
    // no heartbeat in flight: the last acknowledged one is the one that renewed the lease
    for (let k = 0; k < 1000 && inflight > 0; k++) await sleep(1);
    process.send({ type: 'quiet', last, inflight, failures });
  });
}

async function failover(o, lease) {
  const secret = crypto.randomBytes(32).toString('hex');
  const srv = await startServer(o.bin, secret, ['--elect-lease', String(lease)]);
  const prefix = `fo${lease}-`;
  const child = fork(SELF, ['--worker', 'leaders', JSON.stringify({ port: srv.port, secret, sessions: o.foSessions, prefix })],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const msg = (type) => new Promise((resolve, reject) => {
    const h = (m) => { if (m.type === type) { child.off('message', h); resolve(m); } };
    child.on('message', h);
    child.once('exit', (c) => reject(new Error(`leaders process exited ${c}`)));
  });
  const backups = [];
  let res;
  try {
    const ready = await msg('ready');
    for (let i = 0; i < o.foSessions; i++)
      for (const d of ['dB', 'dC'])
        backups.push(openTab(srv.port, authOf(secret, `${prefix}u${i}`, `s${i}`, d, `t${d}`, ['session'])));
    await Promise.all(backups.map((s) => connected(s)));
    await Promise.all(backups.map((s, k) => viewWhere(s, (v) => v.term === ready.terms[k >> 1] && holderOf(v.leader) === 'dL/tL',
      5000, 'a view of the leader')));
    // heartbeats run a whole lease with their spread phases, then the leaders freeze
    await sleep(Math.max(lease, 1000));
    const quiet = msg('quiet');
    child.send({ type: 'quiesce' });
    const q = await quiet;
    process.kill(child.pid, 'SIGSTOP');
    const tStop = now(), c0 = cpuOf(srv.pid), e0 = await elections(srv.port);
    const wait = 2 * lease + 3000;
    const got = await Promise.allSettled(Array.from({ length: o.foSessions }, (_, i) => {
      const pair = [backups[2 * i], backups[2 * i + 1]];
      return Promise.any(pair.map((s) => viewWhere(s, (v) => v.role === 'leader' && v.term > ready.terms[i], wait, 'role leader')));
    }));
    const c1 = cpuOf(srv.pid), e1 = await elections(srv.port);
    const sweep = Math.max(25, lease / 10);
    const fromHb = [], fromAck = [], fromExpiry = [], fromStop = [], reasons = {};
    let missing = 0, twoLeaders = 0, noHb = 0;
    got.forEach((g, i) => {
      const l = q.last[i];
      if (g.status !== 'fulfilled') { missing++; return; }
      if (!l) { noHb++; return; }
      const { v, at } = g.value;
      reasons[v.reason] = (reasons[v.reason] || 0) + 1;
      fromHb.push(at - l.sent);
      fromAck.push(at - l.acked);
      fromExpiry.push(at - l.expires_at);
      fromStop.push(at - tStop);
    });
    await sleep(20); // the other backup's view of the same change
    for (let i = 0; i < o.foSessions; i++) {
      const leaders = [backups[2 * i], backups[2 * i + 1]].filter((s) => s.view && s.view.role === 'leader').length;
      if (leaders !== 1) twoLeaders++;
    }
    const hb = dist(fromHb);
    const ok = !missing && !noHb && !twoLeaders && q.failures === 0 && q.inflight === 0;
    res = {
      key: `elect-failover@${lease}`, ok, lease_ms: lease, sweep_ms: sweep, hb_ms: ready.hb_ms,
      sessions: o.foSessions, tabs_per_session: 3, target_ms: lease + sweep,
      from_last_hb_ms: hb, from_last_ack_ms: dist(fromAck), after_expiry_ms: dist(fromExpiry),
      from_stop_ms: dist(fromStop), within_target: fromHb.filter((x) => x <= lease + sweep).length,
      reasons, missing, no_hb: noHb, not_one_leader: twoLeaders, hb_failures: q.failures,
      elections: e1.total - e0.total, elections_by: diffBy(e0, e1),
      server_cpu: cpuMs(c0, c1), window_ms: Math.round(now() - tStop),
      error: ok ? undefined : `missing ${missing}, no hb ${noHb}, not exactly one leader ${twoLeaders}, hb refused ${q.failures}`,
    };
  } catch (e) {
    res = { key: `elect-failover@${lease}`, ok: false, lease_ms: lease, error: String(e.message || e) };
  }
  try { process.kill(child.pid, 'SIGKILL'); } catch { /* exited */ }
  closeAll(backups);
  await stopServer(srv);
  return res;
}

// ---- graceful handoff -------------------------------------------------------------
async function handoff(o) {
  const secret = crypto.randomBytes(32).toString('hex');
  const srv = await startServer(o.bin, secret, []);
  const S = o.hoSessions, T = 4;
  const sess = [];
  const all = [];
  let res;
  try {
    for (let i = 0; i < S; i++) {
      const tabs = [];
      for (let t = 0; t < T; t++) tabs.push(openTab(srv.port, authOf(secret, `ho-u${i}`, `s${i}`, `d${t}`, `t${t}`, ['session'])));
      sess.push({ tabs });
      all.push(...tabs);
    }
    await Promise.all(all.map((s) => connected(s)));
    for (const x of sess) {
      const { v } = await Promise.any(x.tabs.map((s) => viewWhere(s, (w) => w.role === 'leader', 5000, 'leader')));
      x.term = v.term;
      x.leader = x.tabs.find((s) => s.view.role === 'leader' && s.view.term === v.term);
    }
    const hbMs = sess[0].leader.view.hb_ms, lease = sess[0].leader.view.lease_ms;
    let hbBad = 0;
    // every session's current leader heartbeats, as a tab must
    const hbTimer = setInterval(() => {
      for (const x of sess) {
        if (x.busy) continue;
        x.leader.emit('hb', { scope: 'session', term: x.term }, (a) => { if (!a || !a.ok) hbBad++; });
      }
    }, hbMs);
    // the heartbeats' own cost, to take out of the handoffs' CPU
    const b0 = cpuOf(srv.pid), tb0 = now();
    await sleep(1000);
    const b1 = cpuOf(srv.pid), baseNsPerMs = (b1.ns - b0.ns) / (now() - tb0);
    const lat = [], ackLat = [], reasons = {};
    let activeMs = 0, activeNs = 0, bad = 0;
    const e0 = await elections(srv.port);
    for (let r = 0; r < o.hoRounds; r++) {
      const t0 = now(), c0 = cpuOf(srv.pid);
      for (const x of sess) {
        x.busy = true;
        const old = x.leader, term = x.term;
        const next = Promise.any(x.tabs.filter((s) => s !== old)
          .map((s) => viewWhere(s, (v) => v.role === 'leader' && v.term > term, 2000, 'leader after resign').then((g) => ({ ...g, s }))));
        const ts = now();
        let ackAt = 0;
        old.emit('resign', { scope: 'session', term }, (a) => { ackAt = now(); if (!a || !a.ok) bad++; });
        try {
          const g = await next;
          lat.push(g.at - ts);
          if (ackAt) ackLat.push(ackAt - ts);
          reasons[g.v.reason] = (reasons[g.v.reason] || 0) + 1;
          x.leader = g.s;
          x.term = g.v.term;
        } catch {
          bad++;
        }
        x.busy = false;
      }
      const c1 = cpuOf(srv.pid), t1 = now();
      activeMs += t1 - t0;
      activeNs += c1.ns - c0.ns;
      // a resigned tab is no candidate for one lease: with 4 tabs a session's
      // next resign waits a third of the lease, so its backup is never stalled
      if (r + 1 < o.hoRounds) await sleep(Math.max(0, lease / 3 + 100 - (t1 - t0)));
    }
    clearInterval(hbTimer);
    const e1 = await elections(srv.port);
    let notOne = 0;
    await sleep(20);
    for (const x of sess) if (x.tabs.filter((s) => s.view && s.view.role === 'leader').length !== 1) notOne++;
    const n = lat.length;
    const cpuNs = activeNs - baseNsPerMs * activeMs;
    const ok = n === S * o.hoRounds && !bad && !notOne && !hbBad;
    res = {
      key: 'elect-handoff', ok, sessions: S, tabs_per_session: T, rounds: o.hoRounds, handoffs: n,
      lease_ms: lease, latency_ms: dist(lat), resign_ack_ms: dist(ackLat), reasons,
      elections: e1.total - e0.total, elections_by: diffBy(e0, e1),
      server_cpu_us_per_handoff: Math.round((cpuNs / 1000 / Math.max(1, n)) * 10) / 10,
      server_cpu_us_per_handoff_raw: Math.round((activeNs / 1000 / Math.max(1, n)) * 10) / 10,
      baseline_cpu_pct: Math.round((baseNsPerMs / 1e6) * 1000) / 10, not_one_leader: notOne, failed: bad, hb_refused: hbBad,
      error: ok ? undefined : `${n}/${S * o.hoRounds} handoffs seen, ${bad} failed, ${notOne} sessions without exactly one leader, ${hbBad} heartbeats refused`,
    };
  } catch (e) {
    res = { key: 'elect-handoff', ok: false, error: String(e.message || e) };
  }
  closeAll(all);
  await stopServer(srv);
  return res;
}

// ---- restart storm ----------------------------------------------------------------
// A worker holds whole sessions (all tabs of one session in one process, one
// clock). It connects all its tabs at startAt, keeps each leader heartbeating,
// and reports per session once every session has settled (or at the deadline).
async function stormWorker() {
  const o = JSON.parse(process.argv[4]);
  const plan = [];
  for (let s = o.from; s < o.to; s++)
    for (let t = 0; t < o.tabs; t++) {
      const g = s * o.tabs + t;
      plan.push({ s, auth: authOf(o.secret, `st-u${s}`, `s${s}`, `d${t}`, `t${t}`, o.elect ? ['session'] : null),
        localAddress: `127.0.0.${2 + (g % o.naddr)}` });
    }
  const tabs = [];
  let connectErrors = 0, disconnects = 0;
  const errSamples = new Set();
  await sleep(Math.max(0, o.startAt - Date.now()));
  const t0 = now();
  // this process's event-loop lag: what it adds to every time it measures
  const lags = [];
  let tick = now();
  const lagTimer = setInterval(() => { const t = now(); lags.push(t - tick - 10); tick = t; }, 10);
  for (const p of plan) {
    const sock = openTab(o.port, p.auth, { localAddress: p.localAddress });
    sock.sess = p.s;
    sock.viewAt = new Map(); // "term/leader" -> first time this tab held such a view
    sock.on('connect', () => { sock.connAt = now(); });
    sock.on('connect_error', (e) => { connectErrors++; if (errSamples.size < 5) errSamples.add(e.message); });
    sock.on('disconnect', () => { disconnects++; });
    // the server's own measure: leaderless_ms of each transition (from the
    // first candidate's join, for an election, to the store's grant)
    sock.leaderless = new Map();
    sock.on('event', (e) => {
      if (e && e.type === 'tabsync.elect' && e.body && e.body.scope === 'session') sock.leaderless.set(e.body.term, e.body.leaderless_ms);
    });
    sock.hooks.push((v) => {
      const k = `${v.term}/${holderOf(v.leader)}/${v.role}`;
      if (!sock.viewAt.has(k)) sock.viewAt.set(k, now());
      if (v.role === 'leader') {
        if (!sock.hb || sock.hbTerm !== v.term) {
          clearInterval(sock.hb);
          sock.hbTerm = v.term;
          sock.hb = setInterval(() => sock.emit('hb', { scope: 'session', term: v.term }), v.hb_ms);
        }
      } else if (sock.hb) {
        clearInterval(sock.hb);
        sock.hb = null;
      }
    });
    tabs.push(sock);
  }
  const tCreated = now();
  const bySess = new Map();
  for (const s of tabs) {
    if (!bySess.has(s.sess)) bySess.set(s.sess, []);
    bySess.get(s.sess).push(s);
  }
  const settled = (ts) => {
    if (!ts.every((s) => s.connAt && (!o.elect || s.view))) return false;
    if (!o.elect) return true;
    const v0 = ts[0].view;
    return ts.every((s) => s.view.term === v0.term && holderOf(s.view.leader) === holderOf(v0.leader)) &&
      ts.filter((s) => s.view.role === 'leader').length === 1;
  };
  const deadline = t0 + o.deadlineMs;
  let allSettledAt = 0;
  for (;;) {
    let n = 0;
    for (const ts of bySess.values()) if (settled(ts)) n++;
    if (n === bySess.size) { allSettledAt = now(); break; }
    if (now() > deadline) break;
    await sleep(20);
  }
  clearInterval(lagTimer);
  lags.sort((a, b) => a - b);
  const lag = { p50: lags[lags.length >> 1] || 0, p99: lags[Math.floor(lags.length * 0.99)] || 0, max: lags[lags.length - 1] || 0 };
  process.send({ type: 'settled', ok: !!allSettledAt, at: allSettledAt, t0, created_ms: tCreated - t0, lag });
  await new Promise((r) => process.on('message', (m) => { if (m.type === 'report') r(); }));
  // the final check, after the parent's hold: every tab's last view
  const rows = [];
  for (const [s, ts] of bySess) {
    const con = ts.map((x) => x.connAt).filter(Boolean);
    const row = { s, connected: con.length, first: Math.min(...con) - t0, last: Math.max(...con) - t0 };
    if (o.elect) {
      const withView = ts.filter((x) => x.view);
      const leaders = withView.filter((x) => x.view.role === 'leader');
      const terms = new Set(withView.map((x) => x.view.term));
      const named = new Set(withView.map((x) => holderOf(x.view.leader)));
      row.leaders = leaders.length;
      row.agree = withView.length === ts.length && terms.size === 1 && named.size === 1 &&
        leaders.length === 1 && holderOf(leaders[0].view.leader) === leaders[0].holder;
      row.term = withView.length ? Math.max(...withView.map((x) => x.view.term)) : 0;
      if (leaders.length === 1) {
        const L = leaders[0], v = L.view;
        row.elected = L.viewAt.get(`${v.term}/${L.holder}/leader`) - t0;
        // when the last tab came to hold the final view (its own role in it)
        row.agreed = Math.max(...ts.map((x) => {
          const a = x.viewAt.get(`${v.term}/${L.holder}/${x.view.role}`);
          return a === undefined ? NaN : a - t0;
        }));
        row.since_ms = v.since; // the server's wall clock at the term's start
        row.leaderless_ms = L.leaderless.get(v.term);
        row.t0 = t0;
      }
    }
    rows.push(row);
  }
  for (const s of tabs) clearInterval(s.hb);
  // exit only once the report is handed over (a large message under load takes a while)
  process.send({ type: 'report', rows, connectErrors, disconnects, errSamples: [...errSamples], tabs: tabs.length,
    created_ms: tCreated - t0 }, () => process.exit(0));
}

async function storm(o, elect, lease) {
  const key = !elect ? 'elect-storm-noelect' : lease === o.stLease ? 'elect-storm' : `elect-storm@${lease}`;
  const secret = crypto.randomBytes(32).toString('hex');
  const srv = await startServer(o.bin, secret, ['--elect-lease', String(lease)]);
  const S = o.stSessions, T = o.stTabs, W = Math.min(o.workers, S);
  const conns = S * T;
  const naddr = Math.max(1, Math.ceil(conns / 3000)); // TESTING.md: ~4,000 per source address at most
  const workers = [];
  let res;
  try {
    const e0 = await elections(srv.port);
    const startAt = Date.now() + 1500; // every worker has its tokens minted by then
    for (let w = 0; w < W; w++) {
      const from = Math.floor((w * S) / W), to = Math.floor(((w + 1) * S) / W);
      const cp = fork(SELF, ['--worker', 'storm', JSON.stringify({
        port: srv.port, secret, from, to, tabs: T, startAt, naddr, elect, deadlineMs: o.stDeadline,
      })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
      cp.msgs = [];
      cp.waiters = [];
      cp.on('message', (m) => { cp.msgs.push(m); for (const f of cp.waiters.splice(0)) f(); });
      workers.push(cp);
    }
    const msg = async (cp, type) => {
      for (;;) {
        const m = cp.msgs.find((x) => x.type === type);
        if (m) return m;
        if (cp.exitCode !== null) throw new Error(`storm worker exited ${cp.exitCode}`);
        await new Promise((r) => { cp.waiters.push(r); setTimeout(r, 500); });
      }
    };
    await sleep(Math.max(0, startAt - Date.now() - 50));
    const c0 = cpuOf(srv.pid);
    const settled = await Promise.all(workers.map((cp) => msg(cp, 'settled')));
    const c1 = cpuOf(srv.pid), e1 = await elections(srv.port);
    const wall = Math.max(...settled.map((m) => m.at || now())) - Math.min(...settled.map((m) => m.t0));
    // hold a little longer (heartbeats flowing): a later change would show in the final views
    await sleep(o.stHold);
    const e2 = await elections(srv.port);
    for (const cp of workers) cp.send({ type: 'report' });
    const reps = await Promise.all(workers.map((cp) => msg(cp, 'report')));
    const rows = reps.flatMap((r) => r.rows);
    const full = rows.filter((r) => r.connected === T);
    const cpu = cpuMs(c0, c1);
    const elections_ = e1.total - e0.total;
    res = {
      key, elect, lease_ms: lease, sessions: S, tabs_per_session: T, connections: conns, workers: W, source_addresses: naddr,
      connected: rows.reduce((a, r) => a + r.connected, 0), connect_errors: reps.reduce((a, r) => a + r.connectErrors, 0),
      disconnects: reps.reduce((a, r) => a + r.disconnects, 0), error_samples: [...new Set(reps.flatMap((r) => r.errSamples))],
      all_settled: settled.every((m) => m.ok), settle_wall_ms: Math.round(wall),
      last_connect_ms: dist(full.map((r) => r.last)), server_cpu: cpu,
      created_ms: Math.round(Math.max(...reps.map((r) => r.created_ms))),
      client_loop_lag_ms: { p50: Math.round(Math.max(...settled.map((m) => m.lag.p50))),
        p99: Math.round(Math.max(...settled.map((m) => m.lag.p99))), max: Math.round(Math.max(...settled.map((m) => m.lag.max))) },
      connects_per_s: Math.round(conns / (Math.max(...full.map((r) => r.last)) / 1000)),
      server_cpu_us_per_connection: Math.round((cpu.stat_ms * 1000) / conns),
    };
    if (elect) {
      const lead = full.filter((r) => r.leaders === 1);
      const toLeader = lead.map((r) => Math.max(0, r.elected - r.last));
      res.elections = elections_;
      res.elections_by = diffBy(e0, e1);
      res.elections_during_hold = e2.total - e1.total;
      res.exactly_one_leader = rows.filter((r) => r.agree).length;
      res.not_one_leader = rows.filter((r) => !r.agree).length;
      res.leader_counts = rows.reduce((m, r) => ((m[r.leaders] = (m[r.leaders] || 0) + 1), m), {});
      res.sessions_term_gt_1 = rows.filter((r) => r.term > 1).length;
      res.elected_before_last_connect = lead.filter((r) => r.elected <= r.last).length;
      res.last_connect_to_leader_ms = dist(toLeader);
      res.last_connect_to_agreement_ms = dist(lead.map((r) => r.agreed - r.last));
      res.first_connect_to_leader_ms = dist(lead.map((r) => r.elected - r.first));
      // the server's own clock: the term's start (view.since) after the first
      // tab's connect as the client saw it, and the view's way to the tab after it
      res.first_connect_to_term_start_ms = dist(lead.map((r) => r.since_ms - (r.t0 + r.first)));
      res.term_start_to_leader_view_ms = dist(lead.map((r) => r.t0 + r.elected - r.since_ms));
      res.server_leaderless_ms = dist(lead.filter((r) => r.term === 1).map((r) => r.leaderless_ms));
      res.within_2s = lead.filter((r) => Math.max(0, r.elected - r.last) <= 2000 && r.agreed - r.last <= 2000).length;
      res.server_cpu_us_per_election = elections_ ? Math.round((cpu.stat_ms * 1000) / elections_) : null;
      // the server's clock: first join to grant (longer than last join to grant)
      res.server_within_2s = lead.filter((r) => r.term === 1 && r.leaderless_ms <= 2000).length;
      const main = lease === o.stLease;
      // the target as issue #10 states it: from the session's last connect (client clock)
      res.ok = res.all_settled && res.not_one_leader === 0 && res.connected === conns && (!main || res.within_2s === S);
      if (!res.ok)
        res.error = `${res.connected}/${conns} connected, ${res.not_one_leader} sessions without exactly one agreed leader, ` +
          `${S - res.within_2s} without a leader within 2 s of the last connect${res.error_samples.length ? `; ${res.error_samples.join('; ')}` : ''}`;
    } else {
      res.ok = res.all_settled && res.connected === conns;
      if (!res.ok) res.error = `${res.connected}/${conns} connected${res.error_samples.length ? `; ${res.error_samples.join('; ')}` : ''}`;
    }
  } catch (e) {
    res = { key, ok: false, sessions: S, tabs_per_session: T, error: String(e.message || e) };
  }
  await stopServer(srv);
  for (const cp of workers) if (cp.exitCode === null) cp.kill('SIGKILL');
  return res;
}

// ---- main ------------------------------------------------------------------------
async function main() {
  const argv = process.argv.slice(2);
  const opt = (name, def) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : def;
  };
  const quick = argv.includes('--quick');
  const o = {
    bin: opt('bin', 'build/tabsyncd'),
    leases: opt('leases', '3000,500').split(',').map(Number),
    foSessions: Number(opt('failover-sessions', quick ? 20 : 100)),
    hoSessions: Number(opt('handoff-sessions', quick ? 50 : 250)),
    hoRounds: Number(opt('handoff-rounds', quick ? 2 : 4)),
    stSessions: Number(opt('storm-sessions', quick ? 500 : 4900)),
    stTabs: Number(opt('storm-tabs', 4)),
    workers: Number(opt('workers', 4)),
    stBaseline: opt('storm-baseline', '1') === '1',
    stDeadline: Number(opt('storm-deadline', 60000)),
    stHold: Number(opt('storm-hold', 1000)),
    // the generator shares the 2 cores and delays its own heartbeats by up to
    // ~0.7 s in the storm: with a 3 s lease (hb 1 s, "late" past 1.5 s) the
    // server then demotes leaders for the generator's lag. The main storm runs
    // with a 10 s lease; the default lease runs too (stDefault) and is shown.
    stLease: Number(opt('storm-lease', 10000)),
    stDefault: opt('storm-default-lease', '1') === '1',
    run: Number(opt('run', 1)),
  };
  const only = opt('only', 'failover handoff storm').split(/[ ,]+/);
  const emit = (r) => {
    r.server = 'tabsyncd';
    r.run = o.run;
    process.stdout.write(`${JSON.stringify(r)}\n`);
    say(`${r.key}: ${r.ok ? 'ok' : `FAILED (${r.error})`}`);
  };
  let bad = 0;
  const t0 = Date.now();
  if (only.includes('failover'))
    for (const lease of o.leases) {
      const r = await failover(o, lease);
      if (r.ok) say(`failover lease ${lease}: from last hb p50 ${r.from_last_hb_ms.p50} p99 ${r.from_last_hb_ms.p99} max ${r.from_last_hb_ms.max} ms (target ${r.target_ms})`);
      emit(r);
      bad += !r.ok;
    }
  if (only.includes('handoff')) {
    const r = await handoff(o);
    if (r.latency_ms) say(`handoff: p50 ${r.latency_ms.p50} p99 ${r.latency_ms.p99} ms, ${r.server_cpu_us_per_handoff} us server CPU each`);
    emit(r);
    bad += !r.ok;
  }
  if (only.includes('storm')) {
    for (const lease of o.stDefault && o.stLease !== 3000 ? [o.stLease, 3000] : [o.stLease]) {
      const r = await storm(o, true, lease);
      if (r.last_connect_to_agreement_ms) say(`storm ${r.sessions} x ${r.tabs_per_session}, lease ${lease}: agreement p99 ${r.last_connect_to_agreement_ms.p99} ms, ${r.server_cpu_us_per_election} us per election`);
      emit(r);
      bad += !r.ok;
    }
    if (o.stBaseline) {
      const b = await storm(o, false, o.stLease);
      emit(b);
      bad += !b.ok;
    }
  }
  say(`done in ${Math.round((Date.now() - t0) / 1000)} s`);
  process.exit(bad ? 1 : 0);
}

if (process.argv[2] === '--worker') {
  const role = process.argv[3];
  (role === 'leaders' ? leadersWorker() : stormWorker()).catch((e) => {
    process.stderr.write(`election worker ${role}: ${e.stack || e}\n`);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    process.stderr.write(`election: ${e.stack || e}\n`);
    process.exit(1);
  });
}
