// The app at / (web/index.html + web/app/*.js on @tabsync/client) in a real
// Chromium, against tabsyncd started as `make run` starts it plus the app's
// conflict rules (--state-rules web/state-rules.json) and a short election
// lease (1.5 s, so a failover is quick). Two devices: a desktop browser
// profile with three tabs, and a phone (another browser context: its own
// storage, device id and token) with one.
// - a change in any tab (checklist, notes, settings, labels) shows in all;
//   presence lists every tab with its device type and visibility;
// - every tab shows the same leader; closing the leader's tab makes
//   another the leader, and all the remaining tabs show that one;
// - the phone goes offline, both sides change things (the same note, the
//   checked-off counter): back online its changes apply once (the counter
//   is exact), the note conflict is merged and the phone said so, and every
//   tab holds the same document;
// - a reload with changes still waiting offline keeps them (IndexedDB) and
//   they are sent exactly once;
// - the production build (?build=prod) has no debug console; the
//   development build's opens and shows the connection, role, term, events;
// - screenshots at desktop and phone size, light and dark, go to
//   $TS_ARTIFACTS (default build/artifacts); no console or page errors
//   (CSP violations included) except network errors while offline.
// Chromium: Debian's /usr/bin/chromium (TS_CHROMIUM overrides); missing
// Chromium is a FAILURE, not a skip. tabsyncd only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, IS_NODE } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const WEB = path.join(ROOT, 'web');
const RULES = path.join(WEB, 'state-rules.json');
const CHROMIUM = process.env.TS_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.TS_ARTIFACTS || path.join(ROOT, 'build', 'artifacts');
const T = { timeout: 45000 };
const WAIT = 10000;
const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference serves no web pages)' } : {};
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const PHONE_UA = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/130.0.0.0 Mobile Safari/537.36';
const WS = `t${Date.now().toString(36)}`;
// network noise a page logs while its context is offline (or its tab closes)
const OFFLINE_NOISE = /ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|ERR_CONNECTION|WebSocket connection to .* failed|Failed to fetch|Failed to load resource/;

describe('the app in Chromium', SKIP, () => {
  let server;
  let browser;
  let desk; // browser context: the desktop device
  let phone; // browser context: the phone
  const tabs = {}; // name -> page
  const offline = new Set(); // contexts offline now
  const problems = [];
  let setupError = null;
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
    if (!fs.existsSync(path.join(ROOT, 'clients/js/dist/tabsync.dev.js'))) {
      throw new Error('clients/js/dist/tabsync.dev.js is missing: build the library (node clients/js/build.mjs)');
    }
    const { chromium } = await import('playwright-core');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServer({
      testApp: false,
      extra: ['--web', WEB, '--dev', '--jwt-secret', crypto.randomBytes(32).toString('hex'),
        '--state-rules', RULES, '--elect-lease', '1500'],
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 20000 });
    desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    phone = await browser.newContext({
      viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, userAgent: PHONE_UA, deviceScaleFactor: 2,
    });
    // one after the other: the first tab is the first candidate (the leader)
    for (const [name, ctx] of [['a1', desk], ['a2', desk], ['a3', desk], ['b1', phone]]) {
      tabs[name] = await open(ctx, name);
    }
  }

  async function open(ctx, name, query = '') {
    const page = await ctx.newPage();
    watch(page, name, ctx);
    const res = await page.goto(`${server.url}/${query}#w=${WS}`, { waitUntil: 'load' });
    assert.equal(res.status(), 200);
    await page.waitForFunction(() => document.getElementById('main')?.dataset.ready === 'true', null, { timeout: WAIT })
      .catch(async (err) => { throw new Error(`${name} not ready: ${await page.locator('#load-error').innerText().catch(() => '?')} ${err.message}`); });
    return page;
  }

  function watch(page, name, ctx) {
    const note = (what) => {
      if (offline.has(ctx) && OFFLINE_NOISE.test(what)) return;
      problems.push(`${name}: ${what}`);
    };
    page.on('console', (msg) => { if (msg.type() === 'error') note(`console error: ${msg.text()}`); });
    page.on('pageerror', (err) => note(`page error: ${err.message}`));
    page.on('response', (res) => { if (res.status() >= 400) note(`HTTP ${res.status()} for ${res.url()}`); });
  }

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop().catch(() => {});
  });

  // ---- helpers -------------------------------------------------------------

  const live = () => Object.entries(tabs).filter(([, p]) => !p.isClosed());
  const idOf = (p) => p.evaluate(() => `${window.tabsyncApp.device.id}/${window.tabsyncApp.client.tab}`);
  const docOf = (p) => p.evaluate(() => JSON.parse(JSON.stringify(window.tabsyncApp.client.state)));

  // Poll fn() (async) until it returns a truthy value; the failure says
  // what was waited for and the last value seen.
  async function until(fn, what, timeout = WAIT) {
    const end = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        last = await fn();
        if (last) return last;
      } catch (err) {
        last = err.message;
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 1500)}`);
      await new Promise((r) => setTimeout(r, 60));
    }
  }

  // every open tab satisfies pred(page) (a page.evaluate'd function with arg)
  // fn returns true when the tab is as wanted, else anything that says
  // what it holds instead (the failure lists that per tab)
  const everywhere = async (what, fn, arg, timeout) => {
    let got = [];
    try {
      await until(async () => {
        got = await Promise.all(live().map(async ([n, p]) => [n, await p.evaluate(fn, arg)]));
        return got.every(([, v]) => v === true);
      }, what, timeout);
    } catch (err) {
      err.message += `\n  per tab: ${JSON.stringify(got)}`;
      throw err;
    }
  };

  // on a phone the sections are tabs: show the one with the element first
  async function nav(page, target) {
    const b = page.locator(`[data-testid=nav-${target}]`);
    if (await b.isVisible()) await b.click();
  }

  const pending = (p) => p.evaluate(() => window.tabsyncApp.client.queue().length);
  const status = (p) => p.locator('[data-testid=conn-badge]').getAttribute('data-status');

  async function addItem(page, text) {
    await nav(page, 'list');
    await page.fill('[data-testid=item-input]', text);
    await page.press('[data-testid=item-input]', 'Enter');
  }
  async function check(page, text) {
    await nav(page, 'list');
    await page.locator(`[data-testid=item][data-text="${text}"] [data-testid=item-toggle]`).check();
  }
  const itemsNamed = (doc, text) => Object.values(doc.items || {}).filter((it) => it.text === text);
  const noteId = (doc, title) => Object.entries(doc.notes || {}).find(([, n]) => n.title === title)?.[0];

  async function openNote(page, id) {
    await nav(page, 'notes');
    if (await page.locator('[data-testid=editor]').getAttribute('data-id') !== id) {
      await page.locator(`[data-testid=note-item][data-id="${id}"] button`).click();
    }
    await page.waitForFunction((i) => document.getElementById('editor').dataset.id === i, id, { timeout: WAIT });
  }

  async function goOffline(ctx, page) {
    offline.add(ctx);
    await ctx.setOffline(true);
    // the library closes its socket on the window's offline event
    await until(async () => (await status(page)) === 'offline', 'the offline badge');
    assert.equal(await page.locator('[data-testid=offline-banner]').isVisible(), true, 'offline banner');
  }
  async function goOnline(ctx, page) {
    await ctx.setOffline(false);
    await until(async () => (await status(page)) === 'online', 'back online');
    await until(async () => (await pending(page)) === 0, 'the queue to drain');
    offline.delete(ctx);
  }

  // ---- tests ----------------------------------------------------------------

  it('a change in any tab shows in every tab of both devices', T, async () => {
    ready();
    const { a1, a2, a3, b1 } = tabs;
    await addItem(a1, 'Milk');
    await addItem(a2, 'Bread');
    await addItem(b1, 'Eggs');
    for (const text of ['Milk', 'Bread', 'Eggs']) {
      await everywhere(`item ${text} in every tab`, (t) => !!document.querySelector(`[data-testid=item][data-text="${t}"]`), text);
    }
    await check(b1, 'Milk');
    await everywhere('Milk checked and counted everywhere', () =>
      document.querySelector('[data-testid=item][data-text="Milk"]')?.dataset.done === 'true' &&
      document.querySelector('[data-testid=done-counter]').textContent === '1');

    // a note, from the second desktop tab
    await a2.click('[data-testid=new-note]');
    await a2.fill('[data-testid=note-title]', 'Plan');
    await a2.fill('[data-testid=note-text]', 'Line one\nLine two');
    await everywhere('the note in every tab', () => [...document.querySelectorAll('[data-testid=note-item]')]
      .some((li) => li.textContent.includes('Plan') && li.textContent.includes('Line one')));
    const id = noteId(await docOf(a1), 'Plan');
    assert.ok(id, 'note Plan in a1\'s document');
    await openNote(b1, id);
    assert.equal(await b1.inputValue('[data-testid=note-text]'), 'Line one\nLine two');

    // settings from the third, a label and the theme from the phone
    await a3.click('[data-testid=open-settings]');
    await a3.fill('[data-testid=settings-title]', 'Weekend trip');
    await a3.click('[data-testid=close-settings]');
    await everywhere('the new title everywhere', () =>
      document.querySelector('[data-testid=workspace-title]').textContent === 'Weekend trip' &&
      document.title.startsWith('Weekend trip'));
    await b1.fill('[data-testid=tag-input]', 'camping');
    await b1.press('[data-testid=tag-input]', 'Enter');
    await everywhere('the label everywhere', () => !!document.querySelector('[data-testid=tag][data-tag=camping]'));
    await b1.click('[data-testid=open-settings]');
    await b1.locator('[data-testid=theme-dark]').check({ force: true });
    await b1.click('[data-testid=close-settings]');
    await everywhere('the dark theme everywhere', () => document.documentElement.dataset.theme === 'dark');
    await a1.click('[data-testid=open-settings]');
    await a1.locator('[data-testid=theme-system]').check({ force: true });
    await a1.click('[data-testid=close-settings]');
    await everywhere('the system theme again', () => document.documentElement.dataset.theme === 'system');

    // presence: each tab lists the four, the phone as a phone
    const ids = await Promise.all(live().map(([, p]) => idOf(p)));
    const phoneId = await idOf(b1);
    await everywhere('four tabs with device type and visibility in every tab', ([all, ph]) => {
      const rows = [...document.querySelectorAll('[data-testid=member]')];
      return all.every((k) => rows.some((r) => r.dataset.holder === k && r.dataset.visible !== 'unknown' &&
        r.dataset.type === (k === ph ? 'mobile' : 'browser')));
    }, [ids, phoneId]);
    // the phone goes to the background (headless pages are always visible:
    // the page's visibility is faked, the event is real), then comes back
    const setHidden = (hidden) => b1.evaluate((h) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
    const phoneRow = (want) => everywhere(`the phone shown ${want ? 'visible' : 'in the background'}`, ([ph, w]) =>
      document.querySelector(`[data-testid=member][data-holder="${ph}"]`)?.dataset.visible === w, [phoneId, String(want)]);
    await setHidden(true);
    await phoneRow(false);
    assert.match(await a1.locator(`[data-testid=member][data-holder="${phoneId}"]`).innerText(), /in the background/);
    await setHidden(false);
    await phoneRow(true);
  });

  it('every tab shows the same leader; close its tab and the others show the new one', T, async () => {
    ready();
    const leaderSeen = async () => {
      const views = await Promise.all(live().map(async ([name, p]) => ({
        name, me: await idOf(p),
        ...(await p.evaluate(() => {
          const el = document.querySelector('[data-testid=leader]');
          return {
            holder: el.dataset.holder, self: el.dataset.self === 'true', term: Number(el.dataset.term),
            score: el.querySelector('[data-testid=leader-score]')?.textContent,
            why: el.querySelector('[data-testid=leader-why]')?.textContent,
            backup: el.querySelector('[data-testid=backup]')?.dataset.holder,
            parts: [...el.querySelectorAll('.parts li')].map((li) => li.dataset.part),
            memberParts: [...document.querySelectorAll('[data-testid=member]')].map((r) => r.dataset.parts),
          };
        })),
      })));
      const h = views[0].holder;
      if (!h || !views.every((v) => v.holder === h && v.term === views[0].term)) return null;
      const selfs = views.filter((v) => v.self);
      if (selfs.length !== 1 || selfs[0].me !== h) return null;
      return views;
    };
    const first = await until(leaderSeen, 'one leader shown alike by every tab');
    const v = first[0];
    assert.match(v.score, /^\d+$/, 'the leader\'s score');
    assert.ok(v.why.length > 10, `why: ${v.why}`);
    assert.ok(v.backup && v.backup !== v.holder, `a backup other than the leader (${v.backup})`);
    // the score's parts (docs/ELECTION.md "The score"), the leader's drawn,
    // every member's in its score's label
    assert.deepStrictEqual(v.parts, ['battery', 'connection', 'device', 'visibility', 'uptime']);
    await until(async () => {
      const x = await leaderSeen();
      return x && x.every((y) => y.memberParts.length === 4 && y.memberParts.every((p) => /battery \d+%.*uptime \d+%/.test(p)));
    }, 'every member\'s score parts in every tab');
    const leaderName = first.find((x) => x.self).name;
    const t0 = Date.now();
    await tabs[leaderName].close({ runBeforeUnload: true });
    const next = await until(async () => {
      const views = await leaderSeen();
      return views && views[0].holder !== v.holder && views[0].term > v.term ? views : null;
    }, 'a new leader shown alike by the remaining tabs');
    const newName = next.find((x) => x.self).name;
    assert.notEqual(newName, leaderName);
    assert.ok(next[0].why.length > 10);
    console.log(`# leader ${leaderName} (term ${v.term}) closed; ${newName} leads (term ${next[0].term}) after ${Date.now() - t0} ms`);
    // keep a tab on each device for what follows
    if (leaderName === 'b1') tabs.b2 = await open(phone, 'b2');
    else tabs[`${leaderName}x`] = await open(desk, `${leaderName}x`);
  });

  // the desktop tab and the phone tab used from here on
  const deskTab = () => live().find(([n]) => n.startsWith('a'))[1];
  const phoneTab = () => live().find(([n]) => n.startsWith('b'))[1];

  it('offline on the phone, changes on both sides: applied once, the note conflict merged and shown, one document', T, async () => {
    ready();
    const a = deskTab();
    const b = phoneTab();
    const before0 = await docOf(a);
    const id = noteId(before0, 'Plan');
    const c0 = before0.counters?.done || 0;
    await openNote(b, id);
    await openNote(a, id);

    await goOffline(phone, b);
    // on the phone: edit the note's second line, check Bread, add and check Tent
    await openNote(b, id);
    await b.fill('[data-testid=note-text]', 'Line one\nLine two, from the phone');
    await check(b, 'Bread');
    await addItem(b, 'Tent');
    await b.waitForSelector('[data-testid=item][data-text="Tent"]');
    await check(b, 'Tent');
    await until(async () => (await pending(b)) >= 4, 'four changes waiting on the phone');
    await until(async () => Number(await b.locator('[data-testid=pending-count]').textContent()) >= 4, 'the badge counts them');
    assert.ok(await b.locator('[data-testid=activity-item][data-status=pending]').count() >= 4, 'pending rows');

    // and uncheck Milk, which the desktop deletes meanwhile: refused
    await nav(b, 'list');
    await b.locator('[data-testid=item][data-text="Milk"] [data-testid=item-toggle]').uncheck();
    await until(async () => (await pending(b)) >= 5, 'five changes waiting on the phone');

    // meanwhile on the desktop: the first line, Eggs checked, Milk deleted
    await a.fill('[data-testid=note-text]', 'Line one, from the laptop\nLine two');
    await check(a, 'Eggs');
    await a.locator('[data-testid=item][data-text="Milk"] [data-testid=item-delete]').click();
    await until(async () => (await pending(a)) === 0 &&
      (await docOf(a)).notes[id].text === 'Line one, from the laptop\nLine two', 'the desktop\'s edit confirmed');

    await goOnline(phone, b);
    const merged = 'Line one, from the laptop\nLine two, from the phone';
    await everywhere('the merged note everywhere', ([i, m]) => window.tabsyncApp.client.state.notes?.[i]?.text === m ||
      JSON.stringify({ text: window.tabsyncApp.client.state.notes?.[i]?.text, conflicts: window.tabsyncApp.conflicts, q: window.tabsyncApp.client.queue().length, toasts: document.getElementById('toasts').innerText }), [id, merged]);
    // the phone said so: a toast, the note's notice, and the change's row
    const toast = b.locator('[data-testid=toast][data-kind=conflict]');
    await toast.first().waitFor({ timeout: WAIT });
    assert.match(await toast.first().innerText(), /rebased on Chrome on Linux/);
    await nav(b, 'notes');
    await b.screenshot({ path: path.join(ARTIFACTS, 'app-phone-conflict.png') });
    assert.match(await b.locator('[data-testid=note-notice]').innerText(), /Merged .* Chrome on Linux/);
    assert.ok(await b.locator('[data-testid=activity-item][data-status=conflict]').count() >= 1, 'a conflict row');
    assert.equal(await b.evaluate(() => window.tabsyncApp.conflicts.length >= 1), true);

    // exactly once: three check-offs in all, one Tent
    await everywhere('the counter exact everywhere', (want) => window.tabsyncApp.client.state.counters?.done === want, c0 + 3);
    await converged();
    const doc = await docOf(a);
    assert.equal(itemsNamed(doc, 'Tent').length, 1);
    assert.equal(itemsNamed(doc, 'Tent')[0].done, true);
    assert.equal(itemsNamed(doc, 'Bread')[0].done, true);
    assert.equal(itemsNamed(doc, 'Eggs')[0].done, true);
    assert.equal(itemsNamed(doc, 'Milk').length, 0, 'Milk deleted, not brought back by the refused uncheck');
    // the refused change: its row says rejected, a toast says why
    await nav(b, 'sync');
    const rejected = b.locator('[data-testid=activity-item][data-status=rejected]');
    assert.equal(await rejected.count(), 1, 'one rejected row');
    assert.match(await rejected.innerText(), /Unchecked “Milk”[\s\S]*deleted on another device/);
    const refusal = b.locator('[data-testid=toast][data-kind=error]');
    assert.equal(await refusal.count(), 1, 'one toast for the refusal');
    assert.match(await refusal.innerText(), /Not saved: Unchecked “Milk”/);
    assert.equal(await b.locator('[data-testid=activity-item][data-status=pending]').count(), 0, 'no row left pending');
  });

  // every tab holds the same document at the same version
  async function converged() {
    await until(async () => {
      const got = await Promise.all(live().map(([, p]) => p.evaluate(() => ({
        ver: window.tabsyncApp.client.confirmed.ver,
        pending: window.tabsyncApp.client.queue().length,
        doc: JSON.stringify(window.tabsyncApp.client.state, (k, v) => (v && typeof v === 'object' && !Array.isArray(v)
          ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : 1))) : v)),
      }))));
      return got.every((g) => g.pending === 0 && g.ver === got[0].ver && g.doc === got[0].doc);
    }, 'every tab at the same version with the same document');
  }

  it('two devices typing in one note at once: both edits kept, everywhere', T, async () => {
    ready();
    const a = deskTab();
    const b = phoneTab();
    const id = noteId(await docOf(a), 'Plan');
    await openNote(a, id);
    await openNote(b, id);
    const base = await a.inputValue('[data-testid=note-text]');
    const mergesBefore = await Promise.all([a, b].map((p) => p.evaluate(() => window.tabsyncApp.conflicts.length)));
    assert.equal(await b.inputValue('[data-testid=note-text]'), base);
    // both saves are made against the same version: the second to reach
    // the server is refused, merged on its device and sent again
    await Promise.all([
      a.fill('[data-testid=note-text]', `Packing: tent\n${base}`),
      b.fill('[data-testid=note-text]', `${base}\nPacking: stove`),
    ]);
    const want = `Packing: tent\n${base}\nPacking: stove`;
    await everywhere('both edits in every tab', ([i, w]) => window.tabsyncApp.client.state.notes?.[i]?.text === w ||
      window.tabsyncApp.client.state.notes?.[i]?.text, [id, want]);
    await everywhere('and in both editors', (w) => !document.getElementById('editor').dataset.id ||
      document.getElementById('note-text').value === w || document.getElementById('note-text').value, want);
    const merges = await Promise.all([a, b].map((p) => p.evaluate(() => window.tabsyncApp.conflicts.length)));
    assert.ok(merges[0] + merges[1] > mergesBefore[0] + mergesBefore[1], `a merge was made and shown (${mergesBefore} -> ${merges})`);
    await converged();
  });

  it('a reload with changes waiting offline keeps them and sends them once', T, async () => {
    ready();
    let b = phoneTab();
    const c0 = (await docOf(b)).counters.done;
    // the service worker must control the page before the network goes
    await b.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: WAIT });
    await goOffline(phone, b);
    await addItem(b, 'Stove');
    await b.waitForSelector('[data-testid=item][data-text="Stove"]');
    await check(b, 'Stove');
    await until(async () => (await pending(b)) === 2, 'two changes waiting');
    // Reload while offline (no need to close the page and open another:
    // Playwright's offline emulation covers the service worker's own
    // fetches too, checked below, so the reload is served from its cache —
    // the app shell and the library bundle); the queue comes back from
    // IndexedDB.
    const sw = phone.serviceWorkers()[0];
    assert.ok(sw, 'the service worker runs');
    assert.equal(await sw.evaluate(() => fetch('/icon.svg', { cache: 'no-store' }).then(() => 'network', () => 'offline')),
      'offline', 'the service worker cannot reach the network');
    const res = await b.reload({ waitUntil: 'load' });
    assert.equal(res.fromServiceWorker(), true, 'the page came from the service worker');
    await b.waitForFunction(() => document.getElementById('main')?.dataset.started === 'true', null, { timeout: WAIT });
    assert.equal(await status(b), 'offline');
    await until(async () => (await pending(b)) === 2, 'the two changes still waiting after the reload');
    await nav(b, 'sync');
    await until(async () => await b.locator('[data-testid=activity-item][data-status=pending]').count() === 2, 'their rows, pending');
    await goOnline(phone, b);
    await everywhere('Stove, checked, in every tab', () =>
      document.querySelector('[data-testid=item][data-text="Stove"]')?.dataset.done === 'true');
    await everywhere('counted once', (want) => window.tabsyncApp.client.state.counters?.done === want, c0 + 1);
    await converged();
    assert.equal(itemsNamed(await docOf(deskTab()), 'Stove').length, 1);
    b = phoneTab();
    await until(async () => await b.locator('[data-testid=activity-item][data-status=confirmed]').count() >= 2, 'their rows, confirmed');
  });

  it('the production build has no debug console; the development build has one that works', T, async () => {
    ready();
    const loaded = [];
    const prod = await desk.newPage();
    watch(prod, 'prod', desk);
    prod.on('response', (r) => loaded.push(new URL(r.url()).pathname));
    await prod.goto(`${server.url}/?build=prod#w=${WS}`);
    await prod.waitForFunction(() => document.getElementById('main')?.dataset.ready === 'true', null, { timeout: WAIT });
    await prod.waitForFunction(() => !!document.querySelector('[data-testid=item][data-text="Stove"]'), null, { timeout: WAIT });
    assert.equal(await prod.evaluate(() => window.tabsyncApp.build), 'prod');
    assert.ok(loaded.includes('/vendor/tabsync.js'), `loaded ${loaded.join(' ')}`);
    assert.ok(!loaded.includes('/vendor/tabsync.dev.js'), 'the dev bundle was not loaded');
    assert.equal(await prod.locator('#tabsync-debug-console').count(), 0, 'no debug console');
    assert.equal(await prod.locator('[data-testid=debug-toggle]').isVisible(), false, 'no debug toggle');
    await prod.close();

    const dev = deskTab();
    const toggle = dev.locator('[data-testid=debug-toggle]');
    assert.equal(await toggle.isVisible(), true, 'the debug toggle');
    await toggle.click();
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    const con = dev.locator('#tabsync-debug-console');
    await until(() => con.isVisible(), 'the debug console open');
    const text = await until(async () => {
      const t = await con.innerText();
      return /online/i.test(t) && /term/i.test(t) && /(leader|follower|backup)/i.test(t) && /(welcome|state|elect|hb)/.test(t) ? t : null;
    }, 'the console showing connection, role, term and events');
    assert.ok(text.length > 50);
    await dev.screenshot({ path: path.join(ARTIFACTS, 'app-debug-console.png') });
    await toggle.click();
    await until(async () => !(await con.isVisible()), 'the debug console closed');

    // The library's own styling under this page's strict CSP (no inline
    // styles): an adopted stylesheet, which the CSP allows (an inserted
    // <style> would be refused with a console error, which the "no console
    // errors" test below would report). Mounted last: it replaces the app's.
    const own = await dev.evaluate(async () => {
      const lib = await import('/vendor/tabsync.dev.js');
      const d = lib.mountDebugConsole(window.tabsyncApp.client, { open: true });
      const r = {
        position: getComputedStyle(d.element).position,
        styleElements: d.element.querySelectorAll('style').length,
        adopted: document.adoptedStyleSheets.length,
      };
      d.destroy();
      r.after = document.adoptedStyleSheets.length;
      return r;
    });
    assert.deepEqual(own, { position: 'fixed', styleElements: 0, adopted: 1, after: 0 });
  });

  it('screenshots at desktop and phone size, light and dark; nothing overflows', T, async () => {
    ready();
    const a = deskTab();
    const b = phoneTab();
    await a.bringToFront();
    const plan = noteId(await docOf(a), 'Plan');
    await openNote(a, plan);
    await openNote(b, plan);
    const shots = [];
    for (const scheme of ['light', 'dark']) {
      for (const [p, name] of [[a, 'desktop'], [b, 'phone']]) {
        await p.emulateMedia({ colorScheme: scheme });
        const file = path.join(ARTIFACTS, `app-${name}${scheme === 'dark' ? '-dark' : ''}.png`);
        const { sw, iw } = await p.evaluate(() => ({ sw: document.documentElement.scrollWidth, iw: innerWidth }));
        assert.ok(sw <= iw, `${name} ${scheme}: ${sw} px wide in a ${iw} px viewport`);
        await p.screenshot({ path: file });
        assert.ok(fs.statSync(file).size > 15000, `${file} written`);
        shots.push(file);
      }
    }
    // and the phone's other sections, light
    await b.emulateMedia({ colorScheme: 'light' });
    for (const section of ['list', 'people', 'sync']) {
      await nav(b, section);
      const file = path.join(ARTIFACTS, `app-phone-${section}.png`);
      await b.screenshot({ path: file });
      shots.push(file);
    }
    console.log(`# screenshots: ${shots.join(' ')}`);
  });

  it('no console errors, page errors or failed requests (CSP included)', T, async () => {
    ready();
    assert.deepStrictEqual(problems, []);
  });

  it('the server exits 0 on SIGTERM after the browser closes', T, async () => {
    ready();
    await browser.close();
    const res = await server.stop();
    assert.deepStrictEqual(res, { code: 0, signal: null }, `server exit; stderr:\n${server.stderr().slice(-3000)}`);
  });
});
