// Helpers for session.test.mjs (the /session namespace, docs/PROTOCOL.md):
// JWT minting with node:crypto only (HS256, RS256, ES256, and the hostile
// forms: alg none, HS/RS confusion, tampered payloads), socket.io-client tabs
// that resolve to their `welcome` or their `connect_error`, raw WebSocket
// tabs (to see every packet a refused or silent client is sent), the admin
// API, /metrics parsing, and a child mode used to kill a connected client
// without a clean close:
//   node session-helpers.mjs child <url> <auth JSON>
// connects, prints "welcome <json>" and waits to be killed.
import crypto from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import { within, sleep } from './harness.mjs';
import { WsClient } from './raw.mjs';

// ---- tokens -----------------------------------------------------------------

export const b64url = (data) => Buffer.from(data).toString('base64url');
export const nowS = () => Math.floor(Date.now() / 1000);
/** Lowercase hex SHA-256 of the fingerprint string (the `fp` claim). */
export const fpHash = (fingerprint) => crypto.createHash('sha256').update(fingerprint, 'utf8').digest('hex');

/**
 * A JWT from a header and a payload object. `sign(signingInput: Buffer)`
 * returns the signature bytes (empty for alg none).
 */
export function jwt(header, payload, sign) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = sign(Buffer.from(input, 'ascii'));
  return `${input}.${b64url(sig)}`;
}

export const hmac = (key) => (input) => crypto.createHmac('sha256', key).update(input).digest();
export const rsaSign = (privateKey) => (input) => crypto.sign('sha256', input, privateKey);
/** ES256 signatures are r||s (IEEE P1363), not DER. */
export const ecSign = (privateKey) => (input) =>
  crypto.sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });

/**
 * Claims for an identity. id = {user, session, device, fingerprint};
 * opts: ttl (s, default 600), aud, iss, extra (merged last), omit ([names]).
 */
export function claims(id, { ttl = 600, aud, iss, extra = {}, omit = [] } = {}) {
  const now = nowS();
  const c = {
    sub: id.user,
    sid: id.session,
    dev: id.device,
    fp: fpHash(id.fingerprint),
    iat: now,
    nbf: now,
    exp: now + ttl,
  };
  if (aud !== undefined) c.aud = aud;
  if (iss !== undefined) c.iss = iss;
  Object.assign(c, extra);
  for (const k of omit) delete c[k];
  return c;
}

export const hs256 = (payload, secret) => jwt({ alg: 'HS256', typ: 'JWT' }, payload, hmac(secret));
export const rs256 = (payload, privateKey) => jwt({ alg: 'RS256', typ: 'JWT' }, payload, rsaSign(privateKey));
export const es256 = (payload, privateKey) => jwt({ alg: 'ES256', typ: 'JWT' }, payload, ecSign(privateKey));
/** alg none: header {alg:'none'}, empty signature. */
export const algNone = (payload) => jwt({ alg: 'none', typ: 'JWT' }, payload, () => Buffer.alloc(0));

/** The auth object a tab sends (PROTOCOL.md "Connecting"). */
export const PROTO = 2; // the /session protocol version this suite speaks (1 is still accepted)
export function authFor(id, token, { type = 'browser', caps = ['idb'], proto = PROTO } = {}) {
  return {
    token,
    device: { id: id.device, fingerprint: id.fingerprint, type, caps },
    tab: { id: id.tab },
    proto,
  };
}

// ---- socket.io-client tabs ---------------------------------------------------

/** Records every emission of `event` (first argument only: a trailing
 * recovery offset is not part of the payload). Registered before any I/O. */
export function recorder(sock, event) {
  const got = [];
  const waiters = [];
  sock.on(event, (arg) => {
    got.push(arg);
    for (const w of waiters.splice(0)) w();
  });
  got.waitFor = async (n, ms = 5000) => {
    const deadline = Date.now() + ms;
    while (got.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout: ${got.length}/${n} '${event}' on ${sock.tabId ?? '?'}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return got.slice(0, n);
  };
  return got;
}

/**
 * Open a socket.io-client socket to `${url}/session` with `auth`.
 * opts: any io() option (transports, agent, extraHeaders ...).
 * The socket gets .events (recorded `event`s), .security, .errors,
 * .welcomes, .disconnects (reasons), and .tabId.
 */
export function openTab(url, auth, opts = {}) {
  const sock = io(`${url}/session`, {
    forceNew: true,
    reconnection: false,
    timeout: 8000,
    auth,
    ...opts,
  });
  sock.tabId = auth?.tab?.id;
  sock.welcomes = recorder(sock, 'welcome');
  sock.events = recorder(sock, 'event');
  sock.security = recorder(sock, 'security');
  sock.errors = recorder(sock, 'error');
  sock.disconnects = recorder(sock, 'disconnect');
  sock.connectErrors = recorder(sock, 'connect_error');
  return sock;
}

/**
 * Connect and resolve to { ok: true, sock, welcome } or
 * { ok: false, sock, err } (err = the connect_error: message, data,
 * description for transport errors).
 */
export async function tryTab(url, auth, opts = {}, ms = 8000) {
  const sock = openTab(url, auth, opts);
  return within(new Promise((resolve) => {
    sock.once('connect', async () => {
      try {
        const [welcome] = await sock.welcomes.waitFor(1, ms);
        resolve({ ok: true, sock, welcome });
      } catch (e) {
        resolve({ ok: false, sock, err: e });
      }
    });
    sock.once('connect_error', (err) => resolve({ ok: false, sock, err }));
  }), ms + 1000, `connect of tab ${auth?.tab?.id}`);
}

/** Connect or throw; returns the socket (with .welcome). */
export async function tab(url, auth, opts = {}) {
  const r = await tryTab(url, auth, opts);
  if (!r.ok) {
    r.sock.close();
    throw new Error(`tab ${auth?.tab?.id} refused: ${r.err?.message} ${JSON.stringify(r.err?.data ?? r.err?.description ?? '')}`);
  }
  r.sock.welcome = r.welcome;
  return r.sock;
}

/** Emit with an ack; rejects after ms. Resolves to the ack's first argument. */
export function ask(sock, event, arg, ms = 5000) {
  return sock.timeout(ms).emitWithAck(event, arg);
}

/** A valid envelope; fields override. */
let envCounter = 0;
export function envelope(fields = {}) {
  envCounter += 1;
  return { v: PROTO, type: 'test.note', id: `e-${process.pid}-${envCounter}`, body: { n: envCounter }, ...fields };
}

// ---- raw tabs (every packet visible) -----------------------------------------

/**
 * A raw Engine.IO websocket that sends `40/session,<auth>` and answers
 * pings unless autoPong is false. Resolves to { ws, reply } where reply is
 * the first Socket.IO packet of /session ("40/session,{...}" or
 * "44/session,{...}").
 */
export async function rawTab(port, auth, { autoPong = true } = {}) {
  const ws = new WsClient(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, { autoPong });
  await ws.open();
  const open = await ws.next({ skipPings: true });
  if (!open.startsWith('0{')) throw new Error(`expected an Engine.IO open packet, got ${open}`);
  ws.send(auth === undefined ? '40/session,' : `40/session,${JSON.stringify(auth)}`);
  const reply = await ws.next({ skipPings: true });
  return { ws, reply };
}

/** Parse "4<type>/session,<json>" into {type, data} (type as digit string). */
export function parseSio(pkt) {
  const m = /^4(\d)\/session,(\d*)(.*)$/s.exec(pkt);
  if (!m) return null;
  return { type: m[1], ackId: m[2] || null, data: m[3] ? JSON.parse(m[3]) : undefined };
}

// ---- HTTP --------------------------------------------------------------------

/**
 * GET with optional headers and a local address; resolves to
 * { status, headers, text, json } (json null when not JSON).
 */
export function httpGet(url, { headers = {}, localAddress } = {}) {
  return httpRequest(url, { headers, localAddress });
}

/**
 * An HTTP request (`data`: a Buffer or string body, sent as it is);
 * resolves to { status, headers, text, json } (json null when not JSON).
 */
export function httpRequest(url, { method = 'GET', headers = {}, data, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, localAddress }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.end(data);
  });
}

export function admin(url, path, token) {
  const headers = token === undefined ? {} : { Authorization: `Bearer ${token}` };
  return httpGet(`${url}${path}`, { headers });
}

/** Every [path, value] of a JSON value, paths like "tabs.0.network.rtt". */
export function leaves(v, prefix = '') {
  if (v === null || typeof v !== 'object') return [[prefix, v]];
  const out = [];
  for (const [k, x] of Object.entries(v)) out.push(...leaves(x, prefix ? `${prefix}.${k}` : k));
  return out;
}

/** The identifier of a list item: the string itself, or one of its id-like members. */
export function itemId(item, keys) {
  if (typeof item === 'string') return item;
  if (item && typeof item === 'object') {
    for (const k of keys) if (typeof item[k] === 'string') return item[k];
  }
  return undefined;
}

export const TAB_KEYS = ['tab', 'id', 'tab_id', 'tabId'];
export const DEVICE_KEYS = ['device', 'id', 'device_id', 'deviceId', 'dev'];
export const SESSION_KEYS = ['session', 'id', 'session_id', 'sessionId', 'sid'];

/** Tabs listed by GET /api/admin/sessions/<sid> (an empty list for 404). */
export async function registryTabs(url, session, token) {
  const r = await admin(url, `/api/admin/sessions/${encodeURIComponent(session)}`, token);
  if (r.status === 404) return [];
  if (r.status !== 200 || !r.json || !Array.isArray(r.json.tabs)) {
    throw new Error(`GET /api/admin/sessions/${session}: ${r.status} ${r.text.slice(0, 300)}`);
  }
  return r.json.tabs;
}

/** Poll until pred(tabs) is true; returns { tabs, ms } or throws after ms. */
export async function waitRegistry(url, session, token, pred, ms = 5000, what = 'registry condition') {
  const t0 = Date.now();
  let tabs;
  for (;;) {
    tabs = await registryTabs(url, session, token);
    if (pred(tabs)) return { tabs, ms: Date.now() - t0 };
    if (Date.now() - t0 > ms) {
      throw new Error(`${what}: not reached within ${ms} ms; tabs: ${JSON.stringify(tabs).slice(0, 800)}`);
    }
    await sleep(40);
  }
}

export const hasTab = (tabs, id) => tabs.some((t) => itemId(t, TAB_KEYS) === id);

/** Sum of the samples of every /metrics line whose name matches re. */
export function metricSum(text, re) {
  let sum = 0;
  let lines = 0;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && re.test(m[1] + (m[2] ?? ''))) {
      sum += Number(m[3]);
      lines += 1;
    }
  }
  return { sum, lines };
}

// ---- child mode: a client to kill without a clean close ------------------------

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'child') {
  const [, , , url, authJson] = process.argv;
  const sock = io(`${url}/session`, {
    forceNew: true, reconnection: false, transports: ['websocket'], auth: JSON.parse(authJson),
  });
  sock.on('welcome', (w) => process.stdout.write(`welcome ${JSON.stringify(w)}\n`));
  sock.on('connect_error', (e) => {
    process.stdout.write(`refused ${e.message} ${JSON.stringify(e.data ?? null)}\n`);
    process.exit(3);
  });
  setInterval(() => {}, 1 << 30); // stay alive until killed
}
