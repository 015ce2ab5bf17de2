// clients/js/README.md "Two tabs syncing in five minutes", run as a web
// developer would: the page of that section, taken from the README as it is
// written, saved as hello.html in a web folder of its own and served by
// tabsyncd as `make run` starts it (--dev, the /vendor/ bundles), opened in
// two tabs of real Chromium. What the README promises must happen: typing in
// one tab shows in the other, one tab says it is the leader, and closing it
// makes the other one the leader. No console errors.
//
// Chromium: Debian's /usr/bin/chromium (TS_CHROMIUM overrides); missing is a
// failure, not a skip.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, IS_NODE } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const README = path.join(ROOT, 'clients', 'js', 'README.md');
const CHROMIUM = process.env.TS_CHROMIUM || '/usr/bin/chromium';
const T = { timeout: 60000 };
const WAIT = 15000;
const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference serves no web pages)' } : {};

/** The first ```html block after the heading `title` in the README. */
function exampleOf(md, title) {
  const at = md.indexOf(`## ${title}`);
  assert.ok(at >= 0, `README section "${title}"`);
  const m = /```html\n([\s\S]*?)```/.exec(md.slice(at));
  assert.ok(m, `an html block in "${title}"`);
  return m[1];
}

describe('clients/js README: two tabs syncing, as written', SKIP, () => {
  let server;
  let browser;
  let context;
  let web;
  let setupError = null;
  const problems = [];
  const ready = () => { if (setupError) throw setupError; };

  before(async () => {
    try {
      if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (scripts/deps.sh installs it)`);
      const { chromium } = await import('playwright-core');
      web = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsync-readme-'));
      fs.writeFileSync(path.join(web, 'hello.html'), exampleOf(fs.readFileSync(README, 'utf8'), 'Two tabs syncing in five minutes'));
      server = await startServer({
        testApp: false,
        extra: ['--web', web, '--node-modules', path.join(ROOT, 'node_modules'), '--dev',
          '--jwt-secret', crypto.randomBytes(16).toString('hex'), '--elect-lease', '1500'],
      });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        timeout: 20000,
      });
      context = await browser.newContext();
    } catch (err) {
      setupError = err;
    }
  });

  after(async () => {
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
    if (web) fs.rmSync(web, { recursive: true, force: true });
  });

  async function tab() {
    const page = await context.newPage();
    // the page has no icon: the browser's /favicon.ico 404 is not the example's
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) problems.push(`console: ${msg.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`HTTP ${r.status()} ${r.url()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    const res = await page.goto(`${server.url}/hello.html`);
    assert.equal(res.status(), 200);
    return page;
  }

  const who = (page) => page.locator('#who').innerText();
  async function until(fn, what) {
    const end = Date.now() + WAIT;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('typing in one tab shows in the other; one leader; closing it hands over', T, async () => {
    ready();
    const a = await tab();
    const b = await tab();
    // both tabs know who leads: exactly one of them says it is the leader
    await until(async () => {
      const [wa, wb] = [await who(a), await who(b)];
      return [wa, wb].filter((w) => /^leader \(term \d+\)$/.test(w)).length === 1 &&
        [wa, wb].filter((w) => w === 'not the leader').length === 1;
    }, 'one tab leads, the other does not');

    const text = `hello ${crypto.randomBytes(3).toString('hex')}`;
    await a.locator('#title').fill(text);
    await until(async () => (await b.locator('#title').inputValue()) === text, 'the other tab shows what was typed');
    await b.locator('#title').fill(`${text}!`);
    await until(async () => (await a.locator('#title').inputValue()) === `${text}!`, 'and back');

    const [leader, other] = /^leader/.test(await who(a)) ? [a, b] : [b, a];
    const term = Number(/term (\d+)/.exec(await who(leader))[1]);
    await leader.close();
    const w = await until(async () => {
      const s = await who(other);
      return /^leader \(term \d+\)$/.test(s) ? s : null;
    }, 'the remaining tab becomes the leader');
    assert.ok(Number(/term (\d+)/.exec(w)[1]) > term, `a later term: ${w} after ${term}`);
    // the debug console the example mounts is there
    assert.equal(await other.locator('#tabsync-debug-console').count(), 1);
    assert.deepEqual(problems, []);
  });
});
