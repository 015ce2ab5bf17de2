// Helpers for election.test.mjs (docs/ELECTION.md, /session protocol 4):
//
//  - `ElectTab`: a socket.io-client tab that joins elections, records every
//    `elect` view (each checked against docs/protocol/session-v3.schema.json),
//    and heartbeats by itself while a view says it leads — what a client
//    library does. `freeze()` stops its heartbeats while the connection
//    stays up: a leader that died silently, as far as the election can tell.
//  - `Checker`: what every tab saw, checked for the election's guarantees:
//    one leader per (scope, term), terms that never go back for a tab, and
//    leader-only actions accepted only in term order.
import crypto from 'node:crypto';
import http from 'node:http';
import { sleep } from './harness.mjs';
import { authFor, openTab } from './session-helpers.mjs';
import { ident, tokenFor, schemaError, uniq } from './history-helpers.mjs';

export { ident, uniq };

/** GET/POST JSON over HTTP: {status, body (parsed when JSON), text}. */
export function httpJson(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent: false,
      headers: { ...headers, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let parsed;
        try { parsed = JSON.parse(text); } catch { parsed = undefined; }
        resolve({ status: res.statusCode, body: parsed, text });
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

export class ElectTab {
  /**
   * id: ident(); opts: {scopes, observer, scores, type, checker, hb: false to
   * never heartbeat, reconnect: true to come back (with the same auth, so
   * into the same elections) when the connection is lost}.
   */
  constructor(url, id, { scopes = ['session'], observer, scores, type = 'browser', checker, hb = true, reconnect = false } = {}) {
    this.url = url;
    this.id = id;
    this.holder = `${id.device}/${id.tab}`;
    this.elect = { scopes };
    if (observer !== undefined) this.elect.observer = observer;
    if (scores !== undefined) this.elect.scores = scores;
    this.type = type;
    this.checker = checker;
    this.autoHb = hb;
    this.reconnect = reconnect;
    this.views = [];        // every view, in arrival order: {at, v}
    this.last = {};         // scope -> last view
    this.violations = [];
    this.hbTimers = {};     // scope -> interval
    this.hbAcks = [];       // {scope, term, sentAt, at, ack}
    this.frozen = false;
    this.waiters = [];
  }

  async open() {
    const auth = authFor(this.id, tokenFor(this.id), { proto: 4, type: this.type });
    auth.elect = this.elect;
    const sock = openTab(this.url, auth,
      this.reconnect ? { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500 } : {});
    this.sock = sock;
    // registered before any I/O: the first view can share a read with the welcome
    sock.on('elect', (v) => this.onView(v));
    await new Promise((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('connect_error', (e) => reject(new Error(`${this.holder}: ${e.message} ${JSON.stringify(e.data ?? '')}`)));
    });
    await sock.welcomes.waitFor(1);
    return this;
  }

  onView(v) {
    const err = schemaError('electView', v);
    if (err) this.violations.push(`${this.holder}: ${err}`);
    const prev = this.last[v.scope];
    if (prev && v.term < prev.term) this.violations.push(`${this.holder}: term went back ${prev.term} -> ${v.term} in ${v.scope}`);
    if (v.role === 'leader' && !(v.leader && `${v.leader.device}/${v.leader.tab}` === this.holder))
      this.violations.push(`${this.holder}: role leader but leader is ${JSON.stringify(v.leader)}`);
    this.last[v.scope] = v;
    this.views.push({ at: performance.now(), v });
    this.checker?.view(this, v);
    // asked to step down (preemption, rotation, demotion): stop, then resign,
    // as docs/ELECTION.md asks of a leader
    if (v.role === 'leader' && v.step_down && !this.frozen && !this.stepping?.[v.scope]) {
      this.stepping = { ...this.stepping, [v.scope]: v.term };
      this.sock.timeout(3000).emitWithAck('resign', { scope: v.scope, term: v.term }).catch(() => {});
    }
    if (v.role !== 'leader' && this.stepping?.[v.scope]) delete this.stepping[v.scope];
    if (this.autoHb && !this.frozen) this.syncHb(v.scope);
    for (const w of this.waiters.splice(0)) w();
  }

  /** Heartbeat while the last view of `scope` says leader (what libraries do). */
  syncHb(scope) {
    const v = this.last[scope];
    const leading = v && v.role === 'leader' && !v.step_down;
    if (leading && !this.hbTimers[scope]) {
      this.hbTimers[scope] = setInterval(() => this.hb(scope), v.hb_ms);
    } else if (!leading && this.hbTimers[scope]) {
      clearInterval(this.hbTimers[scope]);
      delete this.hbTimers[scope];
    }
  }

  async hb(scope, term = this.last[scope]?.term) {
    const sentAt = performance.now();
    let ack;
    try {
      ack = await this.sock.timeout(3000).emitWithAck('hb', { scope, term });
    } catch {
      return null;
    }
    const err = schemaError('hbAck', ack);
    if (err) this.violations.push(`${this.holder}: hb ack: ${err}`);
    this.hbAcks.push({ scope, term, sentAt, at: performance.now(), ack });
    return ack;
  }

  /** Stop heartbeating (the connection stays): a leader that went silent. */
  freeze() {
    this.frozen = true;
    for (const s of Object.keys(this.hbTimers)) clearInterval(this.hbTimers[s]);
    this.hbTimers = {};
  }

  thaw() {
    this.frozen = false;
    for (const s of Object.keys(this.last)) this.syncHb(s);
  }

  view(scope = 'session') { return this.last[scope]; }
  role(scope = 'session') { return this.last[scope]?.role; }
  term(scope = 'session') { return this.last[scope]?.term ?? 0; }

  /** Resolves to the first view (from now on, or the last one) where pred holds. */
  async until(pred, { scope = 'session', ms = 8000, what = 'view' } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = this.last[scope];
      if (v && pred(v)) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.holder}: timeout waiting for ${what}; last ${scope} view ${JSON.stringify(v)}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  ask(event, arg, ms = 5000) { return this.sock.timeout(ms).emitWithAck(event, arg); }

  close() {
    this.freeze();
    this.sock?.close();
  }
}

export const holderOf = (w) => (w ? `${w.device}/${w.tab}` : null);

/**
 * Collects what every tab saw and checks the guarantees (docs/ELECTION.md):
 * - one leader per (scope, term): every view and every hb ack that names a
 *   leader for a term names the same one;
 * - a leader-only action (a fenced state change) is accepted only in term
 *   order: sorted by the log's seq, accepted terms never decrease, and an
 *   accepted term is one some view granted.
 */
export class Checker {
  constructor() {
    this.leaders = new Map(); // `${scopeKey}#${term}` -> holder
    this.violations = [];
    this.accepted = new Map(); // scopeKey -> [{seq, term, by}]
  }

  scopeKey(tab, v) {
    return v.scope === 'device' ? `${tab.id.user}/${tab.id.session}/${tab.id.device}` : `${tab.id.user}/${tab.id.session}`;
  }

  view(tab, v) {
    if (!v.leader) return;
    const key = `${this.scopeKey(tab, v)}#${v.term}`;
    const h = holderOf(v.leader);
    const seen = this.leaders.get(key);
    if (seen && seen !== h) this.violations.push(`two leaders in ${key}: ${seen} and ${h} (seen by ${tab.holder})`);
    else this.leaders.set(key, h);
  }

  accept(scopeKey, seq, term, by) {
    if (!this.accepted.has(scopeKey)) this.accepted.set(scopeKey, []);
    this.accepted.get(scopeKey).push({ seq, term, by });
  }

  check() {
    for (const [key, list] of this.accepted) {
      list.sort((a, b) => a.seq - b.seq);
      for (let i = 1; i < list.length; i++)
        if (list[i].term < list[i - 1].term)
          this.violations.push(`${key}: accepted term ${list[i].term} (by ${list[i].by}, seq ${list[i].seq}) after term ${list[i - 1].term} (seq ${list[i - 1].seq})`);
      for (const a of list) {
        const h = this.leaders.get(`${key}#${a.term}`);
        if (h && h !== a.by) this.violations.push(`${key}: an action of term ${a.term} by ${a.by}, whose leader was ${h}`);
      }
    }
    return this.violations;
  }
}

/** A fenced state change (a leader-only action) with its term. */
export function leaderChange(tab, scope, term, n) {
  return {
    v: 4, id: `lead-${tab.id.tab}-${n}-${crypto.randomBytes(3).toString('hex')}`,
    lead: { scope, term }, merge: { leaderWork: { [tab.id.tab]: n } },
  };
}

/** Verifies an HS256 JWT with key; returns its claims or null. */
export function verifyGrant(token, key) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return null;
  const mac = crypto.createHmac('sha256', key).update(`${parts[0]}.${parts[1]}`).digest();
  const sig = Buffer.from(parts[2], 'base64url');
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return null;
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  if (header.alg !== 'HS256') return null;
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

/**
 * The example backend of docs/ELECTION.md: an application's own service
 * that does leader-only work for tabs. POST /act {grant}: 401 if the grant
 * does not verify or has expired, 409 if its term is not the scope's
 * current one (asked of tabsyncd's HTTP check), 200 otherwise.
 */
export async function exampleBackend({ grantKey, tabsyncd, publisherToken }) {
  const done = [];
  const server = http.createServer(async (req, res) => {
    let text = '';
    for await (const d of req) text += d;
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const { grant } = JSON.parse(text);
      const c = verifyGrant(grant, grantKey);
      if (!c || c.typ !== 'leader' || !(c.exp_ms > Date.now())) return reply(401, { ok: false, why: 'bad or expired grant' });
      const q = c.scope === 'device' ? `?scope=device&device=${encodeURIComponent(c.device)}` : '?scope=session';
      const now = await httpJson(`${tabsyncd}/api/sessions/${encodeURIComponent(c.user)}/${encodeURIComponent(c.session)}/election${q}`,
        { headers: { authorization: `Bearer ${publisherToken}` } });
      if (now.status !== 200) return reply(503, { ok: false, why: `check: ${now.status}` });
      if (now.body.term !== c.term) return reply(409, { ok: false, why: 'stale term', term: c.term, current: now.body.term });
      done.push({ by: c.sub, term: c.term });
      return reply(200, { ok: true, term: c.term });
    } catch (e) {
      return reply(400, { ok: false, why: String(e) });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, done, close: () => new Promise((resolve) => server.close(resolve)) };
}

export { sleep };
