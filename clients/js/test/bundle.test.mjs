// The bundles (build.mjs): they build, the core stays under 20 KB gzipped,
// no production bundle contains the debug console, dist/index.js leaves
// socket.io-client and idb to the application's bundler, tabsync.js needs
// nothing else, and the type declarations check an example (tsc --strict).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (f) => fs.readFileSync(path.join(ROOT, 'dist', f), 'utf8');
const TSC = [path.join(ROOT, 'node_modules', '.bin', 'tsc'), path.join(ROOT, '..', '..', 'node_modules', '.bin', 'tsc')]
  .find((p) => fs.existsSync(p));
const CONSOLE_ID = 'tabsync-debug-console';
// a static import or export ... from 'x' (minified or not)
const importsFrom = (code, mod) => new RegExp(`(?:import|export)[^;'"]*?from\\s*["']${mod.replace(/[.]/g, '\\.')}["']|import\\s*["']${mod.replace(/[.]/g, '\\.')}["']`).test(code);

describe('bundles', () => {
  let out;
  before(() => {
    out = execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, encoding: 'utf8' });
  });

  it('build.mjs prints every bundle with its gzipped size and writes sizes.json', () => {
    const sizes = JSON.parse(dist('sizes.json'));
    for (const f of ['index.js', 'debug.js', 'tabsync.js', 'tabsync.dev.js', 'tabsync.core.min.js']) {
      assert.ok(sizes[f]?.bytes > 0 && sizes[f].gzip > 0 && sizes[f].gzip < sizes[f].bytes, f);
      assert.match(out, new RegExp(`${f.replace(/[.]/g, '\\.')}\\s+[0-9.]+ KB\\s+gzip\\s+[0-9.]+ KB`));
    }
    assert.ok(fs.existsSync(path.join(ROOT, 'dist', 'index.d.ts')));
    assert.ok(fs.existsSync(path.join(ROOT, 'dist', 'debug.d.ts')));
    assert.ok(fs.existsSync(path.join(ROOT, 'dist', 'index.js.map')));
  });

  it('the core (without socket.io-client) is under 20 KB gzipped', () => {
    const sizes = JSON.parse(dist('sizes.json'));
    const core = sizes['tabsync.core.min.js'].gzip;
    assert.ok(core < 20 * 1024, `tabsync.core.min.js: ${core} bytes gzipped`);
    assert.equal(sizes.limit.gzip, 20 * 1024);
  });

  it('the debug console is only in the development bundles', () => {
    assert.ok(!dist('tabsync.js').includes(CONSOLE_ID), 'tabsync.js');
    assert.ok(!dist('index.js').includes(CONSOLE_ID), 'index.js');
    assert.ok(!dist('tabsync.core.min.js').includes(CONSOLE_ID), 'tabsync.core.min.js');
    assert.ok(dist('tabsync.dev.js').includes(CONSOLE_ID), 'tabsync.dev.js');
    assert.ok(dist('debug.js').includes(CONSOLE_ID), 'debug.js');
    assert.match(dist('tabsync.dev.js'), /mountDebugConsole/);
  });

  it('dist/index.js imports socket.io-client and idb; tabsync.js is self-contained', () => {
    const idx = dist('index.js');
    assert.ok(importsFrom(idx, 'socket.io-client'), 'index.js imports socket.io-client');
    assert.ok(importsFrom(idx, 'idb'), 'index.js imports idb');
    assert.match(idx, /export\s*\{[^}]*createClient/);
    const core = dist('tabsync.core.min.js');
    assert.ok(importsFrom(core, 'socket.io-client'), 'the core leaves socket.io-client out');
    assert.ok(!importsFrom(core, 'idb'), 'the core has idb inside');
    for (const f of ['tabsync.js', 'tabsync.dev.js']) {
      const code = dist(f);
      assert.ok(!importsFrom(code, 'socket.io-client') && !importsFrom(code, 'idb'), `${f} has no bare imports`);
      assert.ok(!/\bimport\s*["'][^./]/.test(code) && !/from\s*["'][^./]/.test(code), `${f} imports nothing`);
    }
  });

  it('dist/index.js loads in Node (socket.io-client and idb resolved from node_modules)', async () => {
    const m = await import(path.join(ROOT, 'dist', 'index.js'));
    assert.equal(typeof m.createClient, 'function');
    assert.equal(m.PROTOCOL, 4);
  });

  it('the type declarations check an example (tsc --noEmit --strict)', { skip: !TSC && 'no tsc' }, () => {
    try {
      execFileSync(TSC, ['--noEmit', '--strict', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler',
        '--lib', 'es2022,dom', 'test/types-example.ts'], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      assert.fail(`tsc:\n${e.stdout}${e.stderr}`);
    }
  });
});
