// The connection page (web/connection.html + web/connection.js, at
// /connection.html of what `make run` serves; the app at / has its own
// tests in app*.test.mjs) in a
// real Chromium driven by playwright-core, against tabsyncd started as
// `make run` starts it (--web web, the echo app on "/"):
// - the page connects, shows a socket id, the transport upgrades from
//   polling to websocket (a real browser's upgrade), a round-trip time is
//   measured;
// - Disconnect / Connect change the state; "Polling only" stays on polling;
// - socket.io-client in the page round-trips binary (ArrayBuffer, nested
//   typed array) through message-with-ack, over websocket and over polling;
// - no console errors or page errors (the page's CSP included).
// A screenshot goes to /tmp/tabsync-demo.png (TS_SCREENSHOT overrides).
//
// Chromium: Debian's `chromium` (/usr/bin/chromium, installed by
// scripts/deps.sh; TS_CHROMIUM overrides). Missing Chromium is a FAILURE,
// not a skip. tabsyncd only (the Node reference serves no pages).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, IS_NODE } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WEB = path.resolve(HERE, '..', '..', 'web');
const CHROMIUM = process.env.TS_CHROMIUM || '/usr/bin/chromium';
const SHOT = process.env.TS_SCREENSHOT || '/tmp/tabsync-demo.png';
const T = { timeout: 30000 };
const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference serves no web pages)' } : {};
const WAIT = 10000; // generous: the page measures every 2 s

describe('demo page in Chromium', SKIP, () => {
  let server;
  let context;
  let page;
  let userDataDir;
  const problems = []; // console errors, page errors, failed requests

  let setupError = null;
  // A failed setup fails every test (a failing before hook alone would
  // leave the runner's summary at "fail 0").
  const ready = () => { if (setupError) throw setupError; };

  before(async () => {
    try {
      await setup();
    } catch (err) {
      setupError = err;
    }
  });

  async function setup() {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`Chromium not found at ${CHROMIUM}: install the Debian package "chromium" ` +
        '(scripts/deps.sh does), or point TS_CHROMIUM at a Chromium binary');
    }
    let chromium;
    try {
      ({ chromium } = await import('playwright-core'));
    } catch (err) {
      throw new Error(`playwright-core is not installed (npm ci): ${err.message}`);
    }
    server = await startServer({ testApp: false, extra: ['--web', WEB, '--dev'] }); // as make run
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsync-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1100, height: 860 },
      timeout: 20000,
    });
    page = context.pages()[0] || await context.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => {
      // the client aborts long-polling requests on upgrade/disconnect: not a problem
      if (!req.url().includes('/socket.io/')) problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 400) problems.push(`HTTP ${res.status()} for ${res.url()}`);
    });
    const res = await page.goto(`${server.url}/connection.html`, { waitUntil: 'load' });
    assert.equal(res.status(), 200);
  }

  after(async () => {
    await context?.close().catch(() => {});
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
    await server?.stop();
  });

  const text = (sel) => page.locator(sel).innerText();
  // wait until the element's text matches re (a RegExp; no eval: the page has a strict CSP)
  const waitText = (sel, re, what) => page.waitForFunction(
    ([s, src, flags]) => {
      const el = document.querySelector(s);
      return el && new RegExp(src, flags).test(el.textContent.trim());
    },
    [sel, re.source, re.flags], { timeout: WAIT },
  ).catch(async (err) => {
    throw new Error(`${what}: ${sel} is ${JSON.stringify(await text(sel).catch(() => '?'))} (${err.message.split('\n')[0]})`);
  });
  const waitState = (state) => page.waitForFunction(
    (s) => document.getElementById('state')?.dataset.state === s, state, { timeout: WAIT },
  ).catch(async () => {
    const now = await page.evaluate(() => document.getElementById('state').dataset.state);
    const log = await text('#log').catch(() => '');
    throw new Error(`state did not become ${state} (is ${now}); log:\n${log}`);
  });

  it('loads the client library without a load error', T, async () => {
    ready();
    assert.equal(await page.evaluate(() => typeof window.io), 'function', '/vendor/socket.io.min.js not loaded');
    assert.equal(await page.locator('#load-error').isHidden(), true, 'the load-error banner is shown');
    assert.match(await text('#server-url'), /^127\.0\.0\.1:\d+$/);
  });

  it('the footer shows the Socket.IO protocol version', T, async () => {
    ready();
    // connection.js writes String(window.io.protocol); the browser bundle's io has no
    // `protocol` property, so this reads "vundefined" unless connection.js falls back
    assert.equal(await text('#client-protocol'), '5');
  });

  it('connects, shows a socket id, upgrades to websocket and measures a round trip', T, async () => {
    ready();
    await waitState('connected');
    assert.equal(await text('#state-label'), 'Connected');
    await waitText('#socket-id', /^[A-Za-z0-9_-]{8,}$/, 'socket id');
    await waitText('#transport', /^websocket$/, 'transport upgrade to websocket');
    assert.match(await page.locator('#step-websocket').getAttribute('class'), /\bcurrent\b/);
    assert.match(await page.locator('#step-polling').getAttribute('class'), /\bdone\b/);
    await waitText('#rtt', /^\d+(\.\d)?$/, 'round-trip time');
    const rtt = Number(await text('#rtt'));
    assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
    await waitText('#rtt-stats', /^min .* avg .* max .* ms \(last \d+\)$/, 'rtt stats');
    const log = await text('#log');
    assert.match(log, /Engine\.IO session \S+ open over polling/);
    assert.match(log, /Upgraded to websocket/);
    assert.match(log, /Connected as \S+/);
    assert.doesNotMatch(log, /No ack|Ack carried/);
    // a second sample draws the sparkline
    await page.waitForFunction(() => document.getElementById('spark-line').getAttribute('points').split(' ').length >= 2,
      null, { timeout: WAIT });
    await page.screenshot({ path: SHOT, fullPage: true });
    assert.ok(fs.statSync(SHOT).size > 10000, 'screenshot written');
  });

  it('Disconnect and Connect change the state', T, async () => {
    ready();
    await waitState('connected');
    const id1 = await text('#socket-id');
    assert.equal(await text('#btn-connect'), 'Disconnect');
    await page.click('#btn-connect');
    await waitState('disconnected');
    assert.equal(await text('#state-label'), 'Disconnected');
    assert.match(await text('#state-detail'), /io client disconnect/);
    assert.equal(await text('#socket-id'), '—');
    assert.equal(await text('#transport'), '—');
    assert.equal(await text('#btn-connect'), 'Connect');
    await page.screenshot({ path: SHOT.replace(/\.png$/, '-disconnected.png'), fullPage: true });
    await page.click('#btn-connect');
    await waitState('connected');
    await waitText('#socket-id', /^[A-Za-z0-9_-]{8,}$/, 'socket id after reconnect');
    const id2 = await text('#socket-id');
    assert.notEqual(id2, id1, 'a new connection gets a new id');
    assert.equal(await text('#btn-connect'), 'Disconnect');
    await waitText('#transport', /^websocket$/, 'websocket after reconnect');
  });

  it('"Polling only" connects over polling and stays there', T, async () => {
    ready();
    await page.click('#btn-polling');
    assert.equal(await page.locator('#btn-polling').getAttribute('aria-pressed'), 'true');
    assert.equal(await text('#btn-polling'), 'Allow WebSocket');
    await waitState('connected');
    await waitText('#transport', /^polling$/, 'transport polling');
    // an upgrade would happen within a moment; make sure none does
    await waitText('#rtt', /^\d+(\.\d)?$/, 'round-trip time over polling');
    await page.waitForTimeout(1500);
    assert.equal(await text('#transport'), 'polling');
    assert.match(await page.locator('#step-websocket').getAttribute('class'), /\boff\b/);
    assert.equal(await page.evaluate(() => document.getElementById('state').dataset.state), 'connected');
    await page.screenshot({ path: SHOT.replace(/\.png$/, '-polling.png'), fullPage: true });
    // and back
    await page.click('#btn-polling');
    assert.equal(await text('#btn-polling'), 'Polling only');
    await waitState('connected');
    await waitText('#transport', /^websocket$/, 'websocket again');
  });

  for (const transports of [['websocket'], ['polling']]) {
    it(`socket.io-client in the page round-trips binary over ${transports[0]}`, T, async () => {
      ready();
      const got = await page.evaluate(async (tr) => {
        const s = window.io({ forceNew: true, transports: tr, reconnection: false });
        try {
          await new Promise((resolve, reject) => {
            s.once('connect', resolve);
            s.once('connect_error', reject);
          });
          const bytes = new Uint8Array(300);
          for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
          const nested = new Uint8Array([0, 255, 128, 1]);
          const answer = await new Promise((resolve, reject) => {
            s.timeout(5000).emit('message-with-ack', bytes.buffer, { n: 1, bin: nested }, 'text',
              (err, ...args) => (err ? reject(err) : resolve(args)));
          });
          const show = (v) => (v instanceof ArrayBuffer ? { ab: [...new Uint8Array(v)] } : v);
          return {
            transport: s.io.engine.transport.name,
            n: answer.length,
            first: show(answer[0]),
            nested: { n: answer[1].n, bin: show(answer[1].bin) },
            third: answer[2],
          };
        } finally {
          s.disconnect();
        }
      }, transports);
      assert.equal(got.transport, transports[0]);
      assert.equal(got.n, 3);
      const want = Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
      assert.deepStrictEqual(got.first, { ab: want }, 'ArrayBuffer round trip');
      assert.deepStrictEqual(got.nested, { n: 1, bin: { ab: [0, 255, 128, 1] } }, 'nested binary round trip');
      assert.equal(got.third, 'text');
    });
  }

  it('fits a phone-sized viewport without horizontal scrolling', T, async () => {
    ready();
    await page.setViewportSize({ width: 375, height: 740 });
    await waitState('connected');
    const { scroll, inner } = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
    }));
    await page.screenshot({ path: SHOT.replace(/\.png$/, '-phone.png'), fullPage: true });
    assert.ok(scroll <= inner, `page is ${scroll} px wide in a ${inner} px viewport`);
    await page.setViewportSize({ width: 1100, height: 860 });
  });

  it('no console errors, page errors or failed requests', T, async () => {
    ready();
    assert.deepStrictEqual(problems, []);
  });

  it('the server exits 0 on SIGTERM after the browser leaves, sanitizers quiet', T, async () => {
    ready();
    await context.close();
    const res = await server.stop();
    const err = server.stderr();
    assert.ok(!/runtime error|AddressSanitizer|LeakSanitizer/.test(err), `sanitizer report:\n${err.slice(-4000)}`);
    assert.deepStrictEqual(res, { code: 0, signal: null }, `server exit; stderr:\n${err.slice(-4000)}`);
  });
});
