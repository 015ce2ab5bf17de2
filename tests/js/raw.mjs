// Raw protocol helpers for conformance.test.mjs and badinput.test.mjs:
// a queued WebSocket client on the `ws` package, raw HTTP over TCP, and a
// hand-written RFC 6455 frame encoder/decoder for sending frames `ws` refuses
// to produce (unmasked, RSV bits, bad lengths, fragmented control frames).
import net from 'node:net';
import http from 'node:http';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { within } from './harness.mjs';

/**
 * WebSocket with a message queue. Text arrives as string, binary as Buffer.
 * opts.autoPong: answer Engine.IO pings ("2") with "3".
 */
export class WsClient {
  constructor(url, { autoPong = false } = {}) {
    this.ws = new WebSocket(url);
    this.queue = [];
    this.waiters = [];
    this.autoPong = autoPong;
    this.opened = false;
    this.closeInfo = null;
    this.error = null;
    this.unexpected = null;
    this.ws.on('open', () => { this.opened = true; });
    this.ws.on('message', (data, isBinary) => {
      const msg = isBinary ? Buffer.from(data) : data.toString('utf8');
      if (this.autoPong && msg === '2') this.ws.send('3');
      this.queue.push(msg);
      this._wake();
    });
    this.ws.on('error', (err) => {
      this.error = err;
      const m = /Unexpected server response: (\d+)/.exec(err.message);
      if (m) this.unexpected = Number(m[1]);
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        this._wake();
        resolve(this.closeInfo);
      });
    });
    this.openP = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('close', () => reject(new Error(`websocket closed before open (HTTP ${this.unexpected})`)));
    });
    this.openP.catch(() => {});
  }

  _wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Next message; skipPings drops "2" packets. */
  async next({ ms = 3000, skipPings = false } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.queue.length) {
        const m = this.queue.shift();
        if (skipPings && m === '2') continue;
        return m;
      }
      if (this.closeInfo) throw new Error(`websocket closed (${this.closeInfo.code}) while waiting for a message`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for a websocket message');
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Next n messages, pings skipped. */
  async take(n, opts = {}) {
    const out = [];
    while (out.length < n) out.push(await this.next({ ...opts, skipPings: true }));
    return out;
  }

  open(ms = 3000) { return within(this.openP, ms, 'websocket open'); }
  send(data) { this.ws.send(data); }
  waitClose(ms = 3000) { return within(this.closed, ms, 'websocket close'); }
  close() { try { this.ws.terminate(); } catch { /* already closed */ } }
}

/**
 * Raw TCP connection collecting everything the peer sends.
 */
export class RawConn {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.waiters = [];
    this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this._wake(); });
    this.sock.on('error', () => { /* reset by peer is an acceptable outcome here */ });
    this.sock.on('close', () => { this.ended = true; this._wake(); });
    this.connected = new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
  }

  _wake() { for (const w of this.waiters.splice(0)) w(); }

  write(data) { return new Promise((resolve) => this.sock.write(data, () => resolve())); }

  /** Wait until pred(buf) is truthy or the connection ends; returns pred's value. */
  async until(pred, ms = 5000, what = 'data') {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = pred(this.buf);
      if (v) return v;
      if (this.ended) throw new Error(`connection closed while waiting for ${what}; got ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what}; got ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Resolves true when the peer closes (or resets) the connection. */
  async waitEnd(ms = 5000) {
    await this.until(() => this.ended, ms, 'connection close');
    return true;
  }

  /** Read one HTTP response head + body (Content-Length or until close). */
  async response(ms = 5000) {
    const head = await this.until((b) => {
      const i = b.indexOf('\r\n\r\n');
      return i >= 0 ? i : null;
    }, ms, 'HTTP response head');
    const text = this.buf.subarray(0, head).toString('latin1');
    const [statusLine, ...lines] = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const headers = {};
    for (const l of lines) {
      const c = l.indexOf(':');
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    let body = Buffer.alloc(0);
    const start = head + 4;
    if (headers['content-length'] !== undefined) {
      const len = Number(headers['content-length']);
      await this.until((b) => b.length >= start + len, ms, 'HTTP body');
      body = this.buf.subarray(start, start + len);
      this.buf = this.buf.subarray(start + len);
    } else if (Number(m[1]) === 101) {
      this.buf = this.buf.subarray(start);
    } else if (headers['transfer-encoding'] === 'chunked') {
      const end = await this.until((b) => {
        const i = b.indexOf('0\r\n\r\n', start);
        return i >= 0 ? i + 5 : null;
      }, ms, 'chunked body');
      body = this.buf.subarray(start, end);
      this.buf = this.buf.subarray(end);
    } else {
      await this.waitEnd(ms);
      body = this.buf.subarray(start);
      this.buf = Buffer.alloc(0);
    }
    return { status: Number(m[1]), headers, body: body.toString('utf8') };
  }

  /** Next complete server frame (server frames are unmasked). */
  async frame(ms = 5000) {
    const f = await this.until((b) => decodeFrame(b), ms, 'websocket frame');
    this.buf = this.buf.subarray(f.size);
    return f;
  }

  /** Frames until a close frame; returns it (or null if TCP closed without one). */
  async closeFrame(ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      let f;
      try {
        f = await this.frame(Math.max(1, deadline - Date.now()));
      } catch (err) {
        if (this.ended) return null;
        throw err;
      }
      if (f.opcode === 8) return f;
    }
  }

  destroy() { this.sock.destroy(); }
}

/**
 * Encode one frame. opts: fin (true), rsv (0..7), opcode, mask (true),
 * payload (Buffer|string), length (override the announced length).
 */
export function encodeFrame({ fin = true, rsv = 0, opcode = 1, mask = true, payload = Buffer.alloc(0), length } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const len = length ?? data.length;
  const parts = [];
  const b0 = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  const m = mask ? 0x80 : 0;
  if (len < 126) parts.push(Buffer.from([b0, m | len]));
  else if (len < 65536) {
    const h = Buffer.alloc(4);
    h[0] = b0; h[1] = m | 126; h.writeUInt16BE(len, 2);
    parts.push(h);
  } else {
    const h = Buffer.alloc(10);
    h[0] = b0; h[1] = m | 127; h.writeBigUInt64BE(BigInt(len), 2);
    parts.push(h);
  }
  if (mask) {
    const key = crypto.randomBytes(4);
    const masked = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ key[i & 3];
    parts.push(key, masked);
  } else {
    parts.push(data);
  }
  return Buffer.concat(parts);
}

/** Decode one frame from the start of buf; null if incomplete. */
export function decodeFrame(buf) {
  if (buf.length < 2) return null;
  const fin = (buf[0] & 0x80) !== 0;
  const rsv = (buf[0] >> 4) & 7;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2); off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2)); off = 10;
  }
  let key = null;
  if (masked) {
    if (buf.length < off + 4) return null;
    key = buf.subarray(off, off + 4); off += 4;
  }
  if (buf.length < off + len) return null;
  let payload = Buffer.from(buf.subarray(off, off + len));
  if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
  const f = { fin, rsv, opcode, masked, payload, size: off + len };
  if (opcode === 8) {
    f.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
    f.reason = payload.subarray(2).toString('utf8');
  }
  if (opcode === 1) f.text = payload.toString('utf8');
  return f;
}

/**
 * Open a raw TCP connection and do a valid WebSocket upgrade on `path`
 * (e.g. /socket.io/?EIO=4&transport=websocket). Returns the RawConn after
 * the 101 response.
 */
export async function rawUpgrade(port, path) {
  const c = new RawConn(port);
  await c.connected;
  const key = crypto.randomBytes(16).toString('base64');
  await c.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const res = await c.response();
  if (res.status !== 101) throw new Error(`upgrade failed: HTTP ${res.status}`);
  const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  if (res.headers['sec-websocket-accept'] !== accept) throw new Error('bad Sec-WebSocket-Accept');
  return c;
}

/**
 * A fetch()-like request over node:http without an agent: one TCP connection
 * per request with "Connection: close", as node-fetch (used by the official
 * protocol suites) does. Supports method, body (string|Buffer), headers, signal.
 * Resolves with { status, headers: {get}, text(), json() }.
 */
export function closeFetch(url, { method = 'GET', body, headers = {}, signal } = {}) {
  return new Promise((resolve, reject) => {
    const h = { Connection: 'close', ...headers };
    let data = null;
    if (body !== undefined && body !== null) {
      data = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type') && !Buffer.isBuffer(body)) {
        h['Content-Type'] = 'text/plain;charset=UTF-8';
      }
      h['Content-Length'] = String(data.length);
    } else if (method.toUpperCase() === 'POST' || method.toUpperCase() === 'PUT') {
      h['Content-Length'] = '0';
    }
    const req = http.request(url, { method: method.toUpperCase(), headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: { get: (n) => res.headers[n.toLowerCase()] ?? null },
          text: async () => text,
          json: async () => JSON.parse(text),
        });
      });
    });
    req.on('error', reject);
    if (signal) {
      if (signal.aborted) req.destroy(new Error('aborted'));
      signal.addEventListener('abort', () => req.destroy(new Error('aborted')), { once: true });
    }
    req.end(data ?? undefined);
  });
}
