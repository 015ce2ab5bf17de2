// The first day, as a newcomer lives it (issue #14 items 10-12):
//  - `make run`'s start (scripts/run.sh) keeps its development secret in a
//    file under the build folder and prints ready-to-paste commands; each
//    printed command works as printed: `tabsyncd token` mints a token that
//    connects, the dev token URL answers, the CLI path exists;
//  - the README's example block runs exactly as written (only the address
//    is this test's server instead of 127.0.0.1:3000) and exits 0, also
//    from another directory; it fails loudly (exit 1, a reason) when the
//    server is not there;
//  - /api/dev/token takes a ttl and names the field it refuses;
//  - every HTTP endpoint named in docs/PROTOCOL.md and docs/ELECTION.md
//    exists (answers something other than 404 with the right token).
//
// tabsyncd only (skipped with TS_TARGET=node).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IS_NODE, freePort, sleep } from './harness.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only' } : {};
const T = { timeout: 60000 };
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ADMIN = `adm-${crypto.randomBytes(16).toString('hex')}`;
const PUB = `pub-${crypto.randomBytes(16).toString('hex')}`;

/** The binary's build folder, relative to the repository (build, build-asan). */
const BIN = process.env.TABSYNCD ? path.resolve(process.env.TABSYNCD) : '';
const BUILD = BIN ? path.relative(ROOT, path.dirname(BIN)) : 'build';

/** Runs a shell snippet in the repository; resolves {code, out, err}. */
function sh(script, { cwd = ROOT, env = {}, ms = 30000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, env: { ...process.env, ...env } });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    // 'close': after the pipes are read to their end ('exit' may come first)
    child.on('close', (code) => { clearTimeout(t); resolve({ code, out, err }); });
  });
}

describe('the first day', SKIP, () => {
  let child, port, printed = '', tmp;
  const url = () => `http://127.0.0.1:${port}`;
  /** A README/printed command with this test's address and build folder. */
  const local = (cmd) => cmd.replaceAll('127.0.0.1:3000', `127.0.0.1:${port}`).replace(/(^|[\s=$(])build\//g, `$1${BUILD}/`);

  before(async () => {
    port = await freePort();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-docs-'));
    child = spawn(path.join(ROOT, 'scripts', 'run.sh'), ['--admin-token', ADMIN, '--publisher-token', PUB], {
      cwd: ROOT,
      env: { ...process.env, BUILD, LISTEN: `127.0.0.1:${port}`, DATA: tmp, TABSYNCD: BIN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`run.sh did not start: ${printed} ${err}`)), 15000);
      child.stdout.on('data', (d) => {
        printed += d;
        if (/listening on/.test(printed)) { clearTimeout(t); resolve(); }
      });
      child.on('exit', (c) => reject(new Error(`run.sh exited ${c}: ${printed} ${err}`)));
    });
  });
  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      const code = await new Promise((resolve) => child.on('exit', resolve));
      assert.equal(code, 0, 'tabsyncd stopped cleanly');
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('make run keeps its secret in a file of the build folder and prints commands that work', T, async () => {
    const secret = path.join(ROOT, BUILD, 'dev-secret');
    const st = fs.statSync(secret);
    assert.equal(st.mode & 0o077, 0, 'the secret file is readable by its owner only');
    assert.ok(fs.readFileSync(secret, 'utf8').length >= 64);
    const token = /^\s*TOKEN=\$\((.*)\)\s*$/m.exec(printed);
    const curl = /^\s*(curl '.*')\s*$/m.exec(printed);
    const cli = /the CLI:\s+(\S+) --help/.exec(printed);
    assert.ok(token && curl && cli, `printed: ${printed}`);
    const t = await sh(token[1]); // exactly as printed
    assert.equal(t.code, 0, t.err);
    assert.match(t.out.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const c = await sh(curl[1]);
    assert.equal(c.code, 0, c.err);
    const body = JSON.parse(c.out);
    assert.ok(body.token && body.exp - Date.now() / 1000 > 3500, c.out);
    assert.ok(fs.existsSync(path.join(ROOT, cli[1])) || fs.existsSync(path.join(ROOT, local(cli[1]))), `the CLI at ${cli[1]}`);
  });

  it('the README example runs exactly as written and exits 0; also from another directory', T, async () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const m = /<!-- example:[^>]*-->\s*```sh\n([\s\S]*?)```/.exec(readme);
    assert.ok(m, 'the README has its example block');
    const block = local(m[1]);
    const r = await sh(block, { env: { TABSYNC_URL: url() } });
    assert.equal(r.code, 0, `exit ${r.code}\n${r.out}\n${r.err}`);
    assert.match(r.out, /^b received \{.*"body":"hi"/m, r.out);
    assert.match(r.out, /"token":"[\w-]+\.[\w-]+\.[\w-]+"/, 'the dev token URL');
    assert.match(r.out, /"event":"elect"/, 'the CLI shows the elections');
    const away = await sh(`node ${path.join(ROOT, 'examples', 'two-tabs.mjs')}`, { cwd: os.tmpdir(), env: { TABSYNC_URL: url() } });
    assert.equal(away.code, 0, away.err);
    // no server there: a reason and exit 1, never a silent 0
    const none = await sh(`node ${path.join(ROOT, 'examples', 'two-tabs.mjs')}`, { env: { TABSYNC_URL: `http://127.0.0.1:${await freePort()}` } });
    assert.equal(none.code, 1);
    assert.match(none.err, /cannot reach .*is `make run` running/);
  });

  it('/api/dev/token takes a ttl and names what it refuses', T, async () => {
    const get = async (q) => { const r = await fetch(`${url()}/api/dev/token?${q}`); return { status: r.status, body: await r.json() }; };
    const now = Date.now() / 1000;
    const ok = await get('user=u&session=s&device=d&ttl=120');
    assert.equal(ok.status, 200);
    assert.ok(Math.abs(ok.body.exp - now - 120) <= 2, `exp ${ok.body.exp}`);
    const cases = [
      ['user=u&session=s', /device is required/],
      ['session=s&device=d', /user is required/],
      ['user=u%20x&session=s&device=d', /bad user/],
      ['user=u&session=s&device=d&fingerprint=f%0A', /bad fingerprint/],
      ['user=u&session=s&device=d&ttl=0', /bad ttl/],
      ['user=u&session=s&device=d&ttl=99999999', /bad ttl/],
      ['user=u&session=s&device=d&ttl=ten', /bad ttl/],
    ];
    for (const [q, why] of cases) {
      const r = await get(q);
      assert.equal(r.status, 400, q);
      assert.match(r.body.error, why, q);
    }
  });

  it('every HTTP endpoint docs/PROTOCOL.md and docs/ELECTION.md name exists', T, async () => {
    const names = new Set();
    for (const f of ['docs/PROTOCOL.md', 'docs/ELECTION.md']) {
      const text = fs.readFileSync(path.join(ROOT, f), 'utf8');
      for (const m of text.matchAll(/\b(GET|POST) (\/api\/[^\s`)]+)/g)) names.add(`${m[1]} ${m[2]}`);
    }
    assert.ok(names.size >= 10, [...names].join('\n'));
    const fill = (p) => p.replace(/\[[^\]]*\]/g, '') // optional parts
      .replace(/<user>/g, 'u').replace(/<session>|<id>/g, 's').replace(/<[^>]+>/g, 'x')
      .replace(/=U\b/g, '=u').replace(/=S\b/g, '=s').replace(/=D\b/g, '=d').replace(/=F\b/g, '=f')
      .replace(/=N\b/g, '=0').replace(/=L\b/g, '=10').replace(/=E\b/g, '=0000000000000000')
      .replace(/scope=session\|device/, 'scope=session');
    const missing = [];
    for (const n of names) {
      const [method, p] = n.split(' ');
      const token = p.startsWith('/api/admin/') ? ADMIN : PUB;
      const r = await fetch(`${url()}${fill(p)}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: method === 'POST' ? JSON.stringify(p.includes('publish') ? { v: 4, type: 't', id: 'docs-1', body: 1 } : { v: 4, id: 'docs-2', merge: { a: 1 } }) : undefined,
      });
      if (r.status === 404) missing.push(`${n} -> ${fill(p)}: ${await r.text()}`);
    }
    assert.deepEqual(missing, []);
  });
});

// keep `sleep` and `spawnSync` available for debugging this suite by hand
void sleep;
void spawnSync;
