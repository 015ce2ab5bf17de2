// Builds clients/js/dist with esbuild (API.md, "Entry points and bundles"):
//   index.js            ESM for bundlers, socket.io-client and idb external, sourcemap
//   debug.js            the debug console, ESM
//   tabsync.js          browser ESM, minified, self-contained, no debug console
//   tabsync.dev.js      the same plus mountDebugConsole
//   tabsync.core.min.js minified, socket.io-client external: the size report
// copies the type declarations, prints each file's size (raw and gzipped),
// writes dist/sizes.json, and fails when the core is 20 KB gzipped or more.
// `--quiet` prints nothing unless the limit is broken (the CMake build).
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(HERE, 'dist');
const LIMIT = 20 * 1024;
const quiet = process.argv.includes('--quiet');

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  logLevel: 'warning',
  absWorkingDir: HERE,
  legalComments: 'none',
};
const builds = [
  { entryPoints: ['src/index.js'], outfile: 'dist/index.js', external: ['socket.io-client', 'idb'], sourcemap: true },
  { entryPoints: ['src/debug.js'], outfile: 'dist/debug.js', sourcemap: true },
  { entryPoints: ['src/index.js'], outfile: 'dist/tabsync.js', minify: true, sourcemap: true },
  { entryPoints: ['src/dev.js'], outfile: 'dist/tabsync.dev.js', minify: true, sourcemap: true },
  { entryPoints: ['src/index.js'], outfile: 'dist/tabsync.core.min.js', minify: true, external: ['socket.io-client'] },
];

// Each file is written whole and renamed into place: tabsyncd may be serving
// dist/ (/vendor/) and another suite reading it while this runs.
const put = (file, data) => {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
};
fs.mkdirSync(DIST, { recursive: true });
const results = await Promise.all(builds.map((b) => build({ ...common, ...b, write: false })));
for (const r of results) for (const f of r.outputFiles) put(f.path, f.contents);
for (const f of ['index.d.ts', 'debug.d.ts']) put(path.join(DIST, f), fs.readFileSync(path.join(HERE, 'types', f)));

const sizes = {};
for (const b of builds) {
  const name = path.basename(b.outfile);
  const data = fs.readFileSync(path.join(HERE, b.outfile));
  sizes[name] = { bytes: data.length, gzip: gzipSync(data, { level: 9 }).length };
}
sizes.limit = { file: 'tabsync.core.min.js', gzip: LIMIT };
put(path.join(DIST, 'sizes.json'), `${JSON.stringify(sizes, null, 2)}\n`);

const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
if (!quiet) {
  for (const [name, s] of Object.entries(sizes)) {
    if (name !== 'limit') console.log(`${name.padEnd(22)} ${kb(s.bytes).padStart(9)}  gzip ${kb(s.gzip).padStart(8)}`);
  }
}
const core = sizes['tabsync.core.min.js'].gzip;
if (core >= LIMIT) {
  console.error(`tabsync.core.min.js is ${kb(core)} gzipped: the limit is under ${kb(LIMIT)}`);
  process.exit(1);
}
