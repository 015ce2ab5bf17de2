// Several tabsyncd nodes over one Redis, for the integration tests (issue #12).
//
// startRedis() runs Debian's redis-server on a free loopback port with a
// config written here (AOF with appendfsync always, no RDB), in a temp dir.
// startCluster() starts N tabsyncd nodes with --store redis:// (one key
// prefix per cluster) behind a load balancer (startProxy): every new
// Engine.IO session goes to the next node in turn, and a long-polling
// session's later requests to the node that has it (sticky sessions, as
// docs/DEPLOYMENT.md asks of a real balancer). A reconnecting tab lands on
// another node.
//
// TS_CLUSTER=N makes harness.startServer() start such a cluster (see there),
// so that whole suites run with their tabs spread over N nodes.
//
// startRedisCluster() runs a Redis Cluster instead: six redis-servers (three
// primaries, a replica each), `redis-cli --cluster create`; killPrimary(i)
// SIGKILLs one, restartNode(i) brings it back (it rejoins as a replica).
// TS_REDIS_CLUSTER=1 makes startCluster() use one, the tabsyncd nodes with
// --store redis://127.0.0.1:<a node>?replicas=1 (docs/STORE.md: a write is
// acknowledged once a replica has it, so a failover loses none).
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { freePort, sleep } from './harness.mjs';

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

/** Runs redis-server (a Sentinel with `sentinel`: its `extra` has the
 * `sentinel monitor` lines); returns { port, url, pid, dir, stop(), kill(), restart() }. */
export async function startRedis({ appendonly = true, port = 0, extra = [], sentinel = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-redis-'));
  if (!port) port = await freePort();
  const conf = path.join(dir, 'redis.conf');
  const persistence = sentinel ? [] : ['save ""', `appendonly ${appendonly ? 'yes' : 'no'}`, 'appendfsync always'];
  fs.writeFileSync(conf, [
    `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, ...persistence,
    'daemonize no', 'loglevel warning', 'logfile ""', ...extra,
  ].join('\n') + '\n');
  const r = { port, url: `redis://127.0.0.1:${port}`, dir, child: null, log: '' };
  r.start = async () => {
    const args = sentinel ? [conf, '--sentinel'] : [conf];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    r.child = child;
    r.pid = child.pid;
    child.stdout.on('data', (d) => { r.log += d; });
    child.stderr.on('data', (d) => { r.log += d; });
    child.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }));
    const deadline = Date.now() + 10000;
    for (;;) {
      if (await ping(port)) return;
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`redis-server did not start on ${port}:\n${r.log}`);
      }
      await sleep(20);
    }
  };
  r.kill = async (signal = 'SIGKILL') => {
    const c = r.child;
    if (!c || !live.has(c)) return;
    process.kill(c.pid, signal);
    await c.exited;
  };
  r.restart = async () => { await r.kill('SIGTERM'); await r.start(); };
  r.stop = async () => {
    await r.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  await r.start();
  return r;
}

const sh = (cmd, args) => new Promise((resolve, reject) => {
  execFile(cmd, args, { timeout: 30000 }, (err, stdout, stderr) => {
    if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`));
    else resolve(stdout);
  });
});

/** What redis-cli prints for one command to the server on `port`. */
export const redisCli = (port, ...args) => sh('redis-cli', ['-p', String(port), ...args]);

function bindable(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port whose cluster bus port (+10000) is free too: 12000-19999. */
async function clusterPort(taken) {
  for (;;) {
    const p = 12000 + crypto.randomInt(8000);
    if (taken.has(p) || taken.has(p + 10000) || taken.has(p - 10000)) continue;
    if (await bindable(p) && await bindable(p + 10000)) {
      taken.add(p);
      return p;
    }
  }
}

/**
 * One primary (AOF, appendfsync always), two replicas and a Sentinel that
 * watches them as `ts` (quorum 1, down-after 500 ms), as docs/DEPLOYMENT.md
 * "Redis with Sentinel" describes. Returns { storeUrl, primary, replicas,
 * sentinel, primaryPort(), onlineReplicas(), stop() }: storeUrl is
 * redis+sentinel://127.0.0.1:<sentinel>/ts?replicas=1 (two replicas, so a
 * promoted one still has a replica to acknowledge writes).
 */
export async function startRedisSentinel() {
  const started = [];
  try {
    const primary = await startRedis();
    started.push(primary);
    const replicas = [];
    for (let i = 0; i < 2; i++) {
      replicas.push(await startRedis({ extra: [`replicaof 127.0.0.1 ${primary.port}`, 'repl-diskless-sync-delay 0'] }));
      started.push(replicas[i]);
    }
    const sentinel = await startRedis({
      sentinel: true,
      extra: [`sentinel monitor ts 127.0.0.1 ${primary.port} 1`, 'sentinel down-after-milliseconds ts 500',
        'sentinel failover-timeout ts 5000'],
    });
    started.push(sentinel);
    const cli = (port, ...args) => sh('redis-cli', ['-p', String(port), ...args]);
    // both replicas in sync and known to the Sentinel, or it cannot fail over
    const deadline = Date.now() + 20000;
    for (;;) {
      const info = await cli(primary.port, 'INFO', 'replication');
      const known = (await cli(sentinel.port, 'SENTINEL', 'replicas', 'ts')).split('\n');
      const healthy = known.filter((line, i) => line === 'flags' && known[i + 1] === 'slave').length;
      if (/connected_slaves:2/.test(info) && healthy === 2) break;
      if (Date.now() > deadline) throw new Error(`Sentinel setup not ready:\n${info}\n${known.join(' ')}`);
      await sleep(100);
    }
    return {
      storeUrl: `redis+sentinel://127.0.0.1:${sentinel.port}/ts?replicas=1`,
      primary,
      replicas,
      sentinel,
      /** The primary's port as the Sentinel names it now. */
      async primaryPort() {
        const out = (await cli(sentinel.port, 'SENTINEL', 'get-master-addr-by-name', 'ts')).trim().split('\n');
        return Number(out[1]);
      },
      /** How many replicas the primary named by the Sentinel has online. */
      async onlineReplicas() {
        const port = await this.primaryPort();
        const info = await cli(port, 'INFO', 'replication').catch(() => '');
        return (info.match(/^slave\d+:.*state=online/gm) ?? []).length;
      },
      async stop() {
        for (const r of started.reverse()) await r.stop();
      },
    };
  } catch (e) {
    for (const r of started.reverse()) await r.stop().catch(() => {});
    throw e;
  }
}

/** Redis Cluster's slot of a key: CRC16/XMODEM of the key or its {hash tag}. */
export function keySlot(key) {
  let k = Buffer.from(key);
  const open = k.indexOf('{');
  if (open >= 0) {
    const close = k.indexOf('}', open + 1);
    if (close > open + 1) k = k.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of k) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 16383;
}

/**
 * A Redis Cluster of six redis-servers on loopback (three primaries with a
 * replica each; cluster-node-timeout 1000, AOF with appendfsync always).
 * Returns { url, storeUrl, ports, pids, primaryOf(slot), killPrimary(i),
 * restartNode(i), waitOk(), stop() }: url names node 0; storeUrl adds
 * ?replicas=1. killPrimary(i) SIGKILLs node i (a primary); restartNode(i)
 * starts it again with its data and nodes.conf (after a failover it joins
 * as the new primary's replica); stop() stops every process by its pid.
 */
export async function startRedisCluster({ nodes = 6, replicas = 1 } = {}) {
  const taken = new Set();
  const rs = [];
  const stopAll = async () => {
    for (const r of rs) await r.stop().catch(() => {});
  };
  try {
    for (let i = 0; i < nodes; i++) {
      const port = await clusterPort(taken);
      rs.push(await startRedis({
        port,
        extra: ['cluster-enabled yes', 'cluster-config-file nodes.conf', 'cluster-node-timeout 1000',
          'cluster-replica-validity-factor 0', 'repl-diskless-sync-delay 0'],
      }));
    }
    await sh('redis-cli', ['--cluster', 'create', ...rs.map((r) => `127.0.0.1:${r.port}`),
      '--cluster-replicas', String(replicas), '--cluster-yes']);
  } catch (e) {
    await stopAll();
    throw e;
  }
  const alive = () => rs.filter((r) => r.child && live.has(r.child));
  const nodesOf = async () => { // [{ port, primary, slots: [[a, b]], primaryPort }]
    for (const r of alive()) {
      const out = await sh('redis-cli', ['-p', String(r.port), 'cluster', 'nodes']).catch(() => null);
      if (!out) continue;
      const byId = new Map();
      const list = out.trim().split('\n').map((l) => {
        const f = l.split(' ');
        const n = { id: f[0], port: Number(f[1].split('@')[0].split(':')[1]), flags: f[2], of: f[3],
          primary: f[2].includes('master') && !f[2].includes('fail'), slots: [] };
        for (const x of f.slice(8)) {
          if (x.startsWith('[')) continue;
          const [a, b] = x.split('-').map(Number);
          n.slots.push([a, b ?? a]);
        }
        byId.set(n.id, n);
        return n;
      });
      for (const n of list) n.primaryPort = byId.get(n.of)?.port;
      return list;
    }
    throw new Error('no Redis Cluster node answers');
  };
  const c = {
    ports: rs.map((r) => r.port),
    get pids() { return rs.map((r) => r.pid); },
    url: `redis://127.0.0.1:${rs[0].port}`,
    storeUrl: `redis://127.0.0.1:${rs[0].port}?replicas=1`,
    nodes: nodesOf,
    /** The index (into ports) of the primary that serves `slot` now. */
    async primaryOf(slot) {
      const n = (await nodesOf()).find((x) => x.primary && x.slots.some(([a, b]) => slot >= a && slot <= b));
      return n ? c.ports.indexOf(n.port) : -1;
    },
    /** Resolves once every running node says cluster_state:ok and has its replication link up. */
    async waitOk(ms = 20000) {
      const deadline = Date.now() + ms;
      for (;;) {
        let ok = true;
        for (const r of alive()) {
          const info = await sh('redis-cli', ['-p', String(r.port), 'cluster', 'info']).catch(() => '');
          const repl = await sh('redis-cli', ['-p', String(r.port), 'info', 'replication']).catch(() => '');
          if (!info.includes('cluster_state:ok') ||
              !(repl.includes('role:master') || repl.includes('master_link_status:up'))) ok = false;
        }
        if (ok) return;
        if (Date.now() > deadline) throw new Error('the Redis Cluster is not ok');
        await sleep(50);
      }
    },
    async killPrimary(i) {
      const me = (await nodesOf()).find((n) => n.port === c.ports[i]);
      if (!me?.primary) throw new Error(`node ${i} (${c.ports[i]}) is not a primary`);
      await rs[i].kill('SIGKILL');
    },
    async restartNode(i) { await rs[i].start(); },
    stop: stopAll,
  };
  try {
    await c.waitOk();
  } catch (e) {
    await stopAll();
    throw e;
  }
  return c;
}

/** PING over RESP: resolves true when redis answers +PONG. */
function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) { s.destroy(); resolve(got.startsWith('+PONG')); }
    });
  });
}

/** /metrics of the whole cluster: every sample summed over the nodes (the
 * counters and gauges of N processes add up; the suites read totals). */
async function sumMetrics(ports) {
  const texts = await Promise.all(ports.map((port) => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d) => { body += d; });
      r.on('end', () => resolve(body));
    }).on('error', reject);
  })));
  const order = [];
  const sums = new Map();
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (!line) continue;
      if (line.startsWith('#')) {
        if (!sums.has(line)) { sums.set(line, null); order.push(line); }
        continue;
      }
      const at = line.lastIndexOf(' ');
      const key = line.slice(0, at);
      const v = Number(line.slice(at + 1));
      if (!sums.has(key)) { sums.set(key, 0); order.push(key); }
      sums.set(key, sums.get(key) + v);
    }
  }
  return order.map((k) => (sums.get(k) === null ? k : `${k} ${sums.get(k)}`)).join('\n') + '\n';
}

/** A load balancer on a free port in front of `targets` (a function
 * returning the live ports): requests and WebSocket upgrades without an
 * Engine.IO sid go to the next node in turn; those with one go to the node
 * that issued it (learned from the handshake's answer), as a sticky-session
 * balancer does for long-polling. Returns { port, url, close(), counts }. */
export async function startProxy(targets) {
  let next = 0;
  const sids = new Map(); // Engine.IO sid -> port
  const socks = new Set();
  const counts = new Map();
  const pick = (sid) => {
    const ports = targets();
    const known = sid && sids.get(sid);
    if (known && ports.includes(known)) return known;
    if (!ports.length) return 0;
    const port = ports[next++ % ports.length];
    counts.set(port, (counts.get(port) ?? 0) + 1);
    return port;
  };
  const sidOf = (url) => new URL(url, 'http://x').searchParams.get('sid');
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url.split('?')[0] === '/metrics') {
      sumMetrics(targets()).then((text) => {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(text);
      }, () => res.writeHead(502).end());
      return;
    }
    const sid = sidOf(req.url);
    const port = pick(sid);
    if (!port) { res.writeHead(502).end(); return; }
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url,
      headers: req.headers, agent: false }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      let head = '';
      ur.on('data', (d) => {
        if (!sid && head.length < 512) { // a handshake: remember whose sid it is
          head += d.toString('latin1');
          const m = /"sid":"([^"]+)"/.exec(head);
          if (m) sids.set(m[1], port);
        }
        res.write(d);
      });
      ur.on('end', () => res.end());
      ur.on('error', () => res.destroy());
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  server.on('upgrade', (req, client, head) => {
    const port = pick(sidOf(req.url));
    if (!port) { client.destroy(); return; }
    const up = net.connect(port, '127.0.0.1');
    socks.add(client);
    socks.add(up);
    const done = () => { client.destroy(); up.destroy(); socks.delete(client); socks.delete(up); };
    client.on('error', done);
    up.on('error', done);
    client.on('close', done);
    up.on('close', done);
    up.on('connect', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(raw + '\r\n');
      if (head.length) up.write(head);
      client.pipe(up);
      up.pipe(client);
    });
  });
  server.on('connection', (s) => { socks.add(s); s.on('close', () => socks.delete(s)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    counts,
    sids,
    close: () => new Promise((resolve) => {
      for (const s of socks) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/**
 * N tabsyncd nodes over one Redis (started here unless `redis` is given),
 * behind a round-robin proxy. `start(flags)` is harness.startServer bound
 * to one node. Returns an object shaped like startServer's (url, port,
 * stop(), stderr()) plus { nodes, redis, proxy, killNode(i), startNode(i) }.
 */
export async function startCluster({ n = 3, start, opts = {}, redis = null } = {}) {
  const ownRedis = !redis;
  if (!redis) redis = process.env.TS_REDIS_CLUSTER === '1' ? await startRedisCluster() : await startRedis();
  const prefix = `c${crypto.randomBytes(3).toString('hex')}:`;
  const nodeOpts = (i, more = []) => ({
    ...opts,
    single: true,
    extra: [...(opts.extra ?? []), '--store', redis.storeUrl ?? redis.url, '--redis-prefix', prefix, ...more],
    tag: `node${i}`,
  });
  const nodes = [];
  try {
    for (let i = 0; i < n; i++) nodes.push(await start(nodeOpts(i)));
  } catch (e) { // stop what did start: a live child would keep the test process up
    for (const s of nodes) await s.stop().catch(() => {});
    if (ownRedis) await redis.stop();
    throw e;
  }
  const up = new Set(nodes.map((_, i) => i));
  const proxy = await startProxy(() => [...up].map((i) => nodes[i].port));
  return {
    port: proxy.port,
    url: proxy.url,
    scheme: nodes[0].scheme,
    pid: nodes[0].pid,
    flags: nodes[0].flags,
    readyLine: nodes[0].readyLine,
    nodes,
    redis,
    proxy,
    prefix,
    stderr: () => nodes.map((s, i) => `--- node ${i}\n${s.stderr()}`).join('\n'),
    /** kill -9 node i: the proxy stops sending it connections. */
    async killNode(i) {
      up.delete(i);
      try { process.kill(nodes[i].pid, 'SIGKILL'); } catch { /* gone */ }
      await nodes[i].stop().catch(() => {});
    },
    /** Starts node i again (`more`: flags after the others, which win). */
    async startNode(i, more = []) {
      nodes[i] = await start(nodeOpts(i, more));
      up.add(i);
      return nodes[i];
    },
    async stop() {
      await proxy.close();
      const errs = [];
      for (const i of up) await nodes[i].stop().catch((e) => errs.push(e));
      if (ownRedis) await redis.stop();
      if (errs.length) throw errs[0];
    },
  };
}
