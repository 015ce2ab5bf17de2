// Starts and stops the server under test for the integration tests.
//
// TS_TARGET=node  -> the reference server tests/js/ref-server.mjs (real npm socket.io)
// otherwise       -> the tabsyncd binary named by $TABSYNCD
//
// Both take the same flags and print one line when ready:
//   tabsyncd listening on http://127.0.0.1:PORT/   (https:// with TLS)
// Every process started here is stopped by its pid (SIGTERM, SIGKILL after 3 s),
// also when the test process exits early.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import net from 'node:net';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const TARGET = process.env.TS_TARGET === 'node' ? 'node' : 'tabsyncd';
export const IS_NODE = TARGET === 'node';
// TS_CLUSTER=N: startServer() starts N tabsyncd nodes over one Redis behind a
// round-robin proxy (cluster.mjs), so a suite's tabs spread over the nodes.
export const CLUSTER = IS_NODE ? 0 : Number(process.env.TS_CLUSTER || 0);

const READY_RE = /tabsyncd listening on (https?):\/\/127\.0\.0\.1:(\d+)\//;
const live = new Set();

process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

function command(flags, target = TARGET) {
  if (target === 'node') {
    return [process.execPath, [path.join(HERE, 'ref-server.mjs'), ...flags]];
  }
  const bin = process.env.TABSYNCD;
  if (!bin) {
    throw new Error('TABSYNCD is not set (path to the tabsyncd binary); or run with TS_TARGET=node');
  }
  return [bin, flags];
}

/**
 * Start a server. opts: { parser: 'msgpack', recoveryWindow, pingInterval,
 * pingTimeout, maxPayload, conformance: true, testApp: false to omit --test-app,
 * extra: [flags], single: true (one process even under TS_CLUSTER),
 * target: 'node' (the reference server whatever TS_TARGET says) }.
 * Returns { port, url, pid, stop(), stderr() } (a cluster: also nodes, redis).
 */
export async function startServer(opts = {}) {
  if (CLUSTER > 1 && !opts.single && !opts.conformance) {
    const { startCluster } = await import('./cluster.mjs');
    return startCluster({ n: CLUSTER, start: startServer, opts });
  }
  const flags = ['--listen', '127.0.0.1:0'];
  if (opts.testApp !== false && !opts.conformance) flags.push('--test-app');
  if (opts.parser) flags.push('--parser', opts.parser);
  if (opts.recoveryWindow !== undefined) flags.push('--recovery-window', String(opts.recoveryWindow));
  if (opts.pingInterval !== undefined) flags.push('--ping-interval', String(opts.pingInterval));
  if (opts.pingTimeout !== undefined) flags.push('--ping-timeout', String(opts.pingTimeout));
  if (opts.maxPayload !== undefined) flags.push('--max-payload', String(opts.maxPayload));
  if (opts.conformance) flags.push('--conformance');
  if (opts.extra) flags.push(...opts.extra);

  const [bin, args] = command(flags, opts.target);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 200000) stderr = stderr.slice(-100000);
    if (process.env.TS_SERVER_LOG) process.stderr.write(d);
  });
  child.stdout.setEncoding('utf8');
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    live.delete(child);
    resolve({ code, signal });
  }));

  const { scheme, port } = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('server did not print its ready line within 10 s')), 10000);
    function fail(err) {
      clearTimeout(timer);
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
      err.message += `\ncommand: ${bin} ${args.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`;
      reject(err);
    }
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = READY_RE.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ scheme: m[1], port: Number(m[2]) });
      }
    });
    child.once('error', (err) => fail(err));
    exited.then(({ code, signal }) => fail(new Error(`server exited before ready (code ${code}, signal ${signal})`)));
  });
  // keep draining stdout so the child never blocks on a full pipe
  child.stdout.on('data', () => {});

  const url = `${scheme}://127.0.0.1:${port}`;
  return {
    port,
    url,
    scheme,
    readyLine: stdout.split('\n')[0],
    pid: child.pid,
    flags,
    stderr: () => stderr,
    async stop() {
      if (!live.has(child)) return exited;
      try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
      const timer = setTimeout(() => {
        try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
      }, 3000);
      const res = await exited;
      clearTimeout(timer);
      // Every suite also runs against the ASan+UBSan build: a report there,
      // or a server that did not exit 0 on SIGTERM, fails the suite.
      if (!IS_NODE) {
        if (/AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:/.test(stderr)) {
          throw new Error(`sanitizer report from the server:\n${stderr.slice(-6000)}`);
        }
        if (res.code !== 0) {
          throw new Error(`server exited with code ${res.code} (signal ${res.signal}) on SIGTERM\n${stderr.slice(-3000)}`);
        }
      }
      return res;
    },
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolve when emitter fires `event` (args array), reject after ms. */
export function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timeout waiting for '${event}'`));
    }, ms);
    function handler(...args) {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(event, handler);
  });
}

/** Race a promise against a timeout. */
export function within(promise, ms, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** A free TCP port on 127.0.0.1 (for tools that need a fixed port). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
