// The socket manager: one socket.io-client socket to the server's /session
// namespace. It reconnects by itself (socket.io-client's own reconnection is
// off) because socket.io-client gives up after a refused CONNECT, cannot be
// told that some refusals never succeed, ignores `retry_after_ms`, and does
// not say when its next attempt is due. It also measures the round trip,
// derives the connection's quality, and follows the browser's online/offline
// events and the server's `security` notices.
import { io } from 'socket.io-client';
import { Emitter } from './emitter.js';

// connect_error codes no retry can fix (docs/PROTOCOL.md, "Connecting")
const FATAL = /^(auth_|device_mismatch$|fingerprint_mismatch$|token_(too_large|malformed|bad_signature|alg_none|alg_not_allowed|wrong_audience|wrong_issuer|missing_claim|invalid_claim)$)/;
// codes only a new token can fix
const TOKEN_WINDOW = /^token_(expired|not_yet_valid|issued_in_future)$/;
const POOR_RTT_MS = 600;
const SLOW_NETS = ['2g', 'slow-2g'];
const RTT_GAIN = 0.2; // weight of a new sample in the smoothed RTT

/** The browser's window, or null (Node, workers). */
export const win = typeof window !== 'undefined' && window.addEventListener ? window : null;

/** Milliseconds of a monotonic clock (timers and round trips, not dates). */
export const now = () => performance.now();

/**
 * A random id of `n` characters of [0-9a-z] (valid in every tabsync id and
 * name); crypto.getRandomValues works in insecure contexts too.
 * @param {number} [n]
 */
export function randomId(n = 16) {
  const b = crypto.getRandomValues(new Uint8Array(n));
  let s = '';
  for (const x of b) s += (x % 36).toString(36);
  return s;
}

/**
 * The connection to /session. Events: 'connect' (socket), 'disconnect'
 * (reason), 'status' (info), 'quality' ({quality, reason}), 'error'
 * ({code, message}).
 */
export class Connection extends Emitter {
  /**
   * @param {object} o
   * @param {string} o.url server origin
   * @param {(reason: string) => Promise<string>} o.token a fresh token
   * @param {(token: string) => object} o.auth the auth payload around a token
   * @param {boolean} o.staticToken true when the token cannot change (a string)
   * @param {{minDelayMs: number, maxDelayMs: number, jitter: number}} o.reconnect
   * @param {object} [o.io] extra socket.io-client options
   * @param {(dir: string, name: string, summary: string, extra?: object) => void} o.log
   */
  constructor(o) {
    super();
    this.o = o;
    this.socket = null;
    this.up = false;            // the socket is connected
    this.everUp = false;
    this.closed = false;        // close() was called
    this.stopped = false;       // a refusal no retry can fix
    this.pending = false;       // an attempt is under way
    this.attempts = 0;          // failed attempts since the last success
    this.attemptNo = 0;         // attempts made, to tell a stale token answer
    this.retryAt = null;        // Date.now() of the next attempt
    this.offline = !!(typeof navigator !== 'undefined' && navigator.onLine === false);
    this.transport = null;
    this.rttMs = null;
    this.rttAt = 0;             // now() of the last RTT sample
    this.reconnects = 0;
    this.network = null;
    this.lastError = null;
    this.quality = 'offline';
    this.last = '';
    this.onOnline = () => this.net(true);
    this.onOffline = () => this.net(false);
  }

  /** `ts.connection`: a snapshot. */
  get info() {
    return {
      status: this.closed || this.stopped ? 'closed' : this.up ? 'online' : this.offline ? 'offline'
        : this.everUp ? 'reconnecting' : 'connecting',
      transport: this.up ? this.transport : null,
      rttMs: this.rttMs,
      reconnects: this.reconnects,
      quality: this.quality,
      network: this.network,
      nextRetryMs: this.retryAt === null ? null : Math.max(0, this.retryAt - Date.now()),
      lastError: this.lastError,
    };
  }

  /** Makes the socket (so that handlers can be added) without connecting. */
  create() {
    const s = io(`${this.o.url}/session`, {
      forceNew: true,
      timeout: 20000,
      ...this.o.io,
      reconnection: false,
      autoConnect: false,
      auth: (cb) => this.authorize(cb),
    });
    this.socket = s;
    s.on('connect', () => this.onUp());
    s.on('disconnect', (reason) => this.onDown(reason));
    s.on('connect_error', (err) => this.onRefused(err));
    s.on('security', (n) => this.onSecurity(n));
    s.io.on('open', () => {
      const e = s.io.engine;
      this.transport = e.transport.name;
      e.on('upgrade', (t) => {
        this.transport = t.name;
        this.o.log('info', 'upgrade', t.name);
        this.changed();
      });
    });
    if (win) {
      win.addEventListener('online', this.onOnline);
      win.addEventListener('offline', this.onOffline);
    }
    return s;
  }

  /** Starts connecting. */
  start() {
    this.attempt();
  }

  /** socket.io-client asks for the CONNECT payload: with a fresh token each time. */
  async authorize(cb) {
    // a slow token must not answer for a later attempt (two CONNECTs on one transport)
    const n = this.attemptNo;
    let token;
    try {
      token = await this.o.token(this.everUp ? 'reconnect' : 'connect');
      if (typeof token !== 'string' || !token) throw new Error('the token function returned no token');
    } catch (e) {
      if (n === this.attemptNo) this.fail({ code: 'token_unavailable', message: String(e?.message ?? e) });
      return;
    }
    if (n === this.attemptNo && this.pending && !this.closed) cb(this.o.auth(token));
  }

  attempt() {
    if (this.closed || this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryAt = null;
    this.pending = true;
    this.attemptNo++;
    // a CONNECT that never comes back (a token function that hangs, a
    // server that accepts the transport but not the namespace)
    clearTimeout(this.attemptTimer);
    this.attemptTimer = setTimeout(() => this.fail({ code: 'connect_timeout', message: 'no answer to the connect' }),
      (this.o.io?.timeout ?? 20000) + 5000);
    this.o.log('out', 'connect', `attempt ${this.attempts + 1}`);
    this.changed();
    this.socket.connect();
  }

  onUp() {
    clearTimeout(this.attemptTimer);
    this.pending = false;
    this.attempts = 0;
    if (this.everUp) this.reconnects++;
    this.everUp = true;
    this.up = true;
    this.offline = false; // whatever navigator.onLine said
    this.transport = this.socket.io.engine?.transport?.name ?? null;
    this.o.log('in', 'connect', `${this.transport}${this.socket.recovered ? ', recovered' : ''}`);
    this.emit('connect', this.socket);
    this.changed();
  }

  onDown(reason) {
    if (this.closed) return;
    if (!this.up) {
      this.fail({ code: 'transport', message: String(reason) });
      return;
    }
    this.up = false;
    this.o.log('info', 'disconnect', String(reason));
    this.emit('disconnect', reason);
    this.schedule(0);
  }

  onRefused(err) {
    if (this.closed) return;
    const code = err?.data?.code;
    if (!code) {
      this.fail({ code: 'transport', message: String(err?.message ?? err) });
      return;
    }
    const fatal = FATAL.test(code) || (TOKEN_WINDOW.test(code) && this.o.staticToken);
    this.fail({ code, message: String(err.message) }, Number(err.data.retry_after_ms) || 0, fatal);
  }

  /** The attempt under way failed: once per attempt, whoever notices first. */
  fail(error, minDelayMs = 0, fatal = false) {
    if (!this.pending || this.closed) return;
    this.pending = false;
    clearTimeout(this.attemptTimer);
    this.lastError = error;
    this.o.log('in', 'connect_error', `${error.code}: ${error.message}${fatal ? ' (not retried)' : ''}`);
    this.drop();
    if (fatal) this.stopped = true;
    else this.schedule(minDelayMs);
    // an unreachable server is the status's business, not an error per attempt
    if (error.code !== 'transport') this.emit('error', error);
    this.changed();
  }

  /** Closes the transport now (what the server sees as a lost connection: recoverable). */
  drop() {
    this.socket.io._close();
  }

  /** Exponential backoff with jitter; while offline only a slow fallback (`online` comes first). */
  schedule(minDelayMs) {
    clearTimeout(this.retryTimer);
    const r = this.o.reconnect;
    let ms = Math.min(r.maxDelayMs, r.minDelayMs * 2 ** Math.min(this.attempts, 30));
    ms = Math.min(r.maxDelayMs, ms * (1 + r.jitter * (2 * Math.random() - 1)));
    if (this.offline) ms = r.maxDelayMs;
    ms = Math.max(minDelayMs, Math.round(ms));
    this.attempts++;
    this.retryAt = Date.now() + ms;
    this.retryTimer = setTimeout(() => this.attempt(), ms);
    this.changed();
  }

  /** The browser's online/offline events. */
  net(online) {
    if (this.closed || this.stopped) return;
    this.offline = !online;
    this.o.log('info', online ? 'online' : 'offline', online ? 'the browser is online: connecting now'
      : 'the browser is offline: closing the socket');
    if (!online) {
      // an open WebSocket may not notice for minutes; a retry due soon waits for `online`
      if (this.up || this.pending) this.drop();
      else if (this.retryAt !== null) this.schedule(0);
      else this.changed();
    } else if (!this.up && !this.pending) {
      this.attempts = 0;
      this.attempt();
    } else this.changed();
  }

  async onSecurity(n) {
    this.o.log('in', 'security', `${n?.code}: ${n?.message ?? ''}`);
    if (n?.code !== 'token_expiring') return;
    if (this.o.staticToken) {
      this.emit('error', { code: 'token_expiring', message: 'the token expires soon and cannot be renewed (a string)' });
      return;
    }
    try {
      const token = await this.o.token('expiring');
      const ack = await this.socket.timeout(10000).emitWithAck('token', { token });
      this.o.log('in', 'token', ack?.ok ? `renewed until ${ack.exp}` : `refused: ${ack?.error?.code}`);
      if (!ack?.ok) this.emit('error', { code: ack?.error?.code ?? 'token_refused', message: ack?.error?.message ?? '' });
    } catch (e) {
      this.emit('error', { code: 'token_unavailable', message: String(e?.message ?? e) });
    }
  }

  /** A measured round trip (an acknowledged emit), smoothed. */
  sample(ms) {
    this.rttAt = now();
    this.rttMs = Math.round(this.rttMs === null ? ms : this.rttMs + RTT_GAIN * (ms - this.rttMs));
    this.changed();
  }

  /** The Network Information API's view, from caps. */
  setNetwork(network) {
    this.network = network;
    this.changed();
  }

  /**
   * Emits an event with an ack, measuring the round trip; rejects when not
   * connected (nothing is buffered for later) or after `ms`.
   */
  async ask(event, arg, ms = 10000, measure = false) {
    if (!this.up) throw new Error('offline');
    const t0 = now();
    const ack = await this.socket.timeout(ms).emitWithAck(event, arg);
    if (measure) this.sample(now() - t0);
    return ack;
  }

  /** Emits without an ack, only when connected. */
  send(event, arg) {
    if (!this.up) return false;
    this.socket.emit(event, arg);
    return true;
  }

  /** Recomputes the quality and emits what changed. */
  changed() {
    const n = this.network;
    const [q, reason] = !this.up ? ['offline', this.offline ? 'offline' : 'disconnected']
      : n && SLOW_NETS.includes(n.effectiveType) ? ['poor', 'network']
      : n?.saveData ? ['poor', 'saveData']
      : this.rttMs > POOR_RTT_MS ? ['poor', 'rtt'] : ['good', 'ok'];
    if (q !== this.quality) {
      this.quality = q;
      this.o.log('info', 'quality', `${q} (${reason})`);
      this.emit('quality', { quality: q, reason });
    }
    const info = this.info;
    const key = JSON.stringify({ ...info, nextRetryMs: this.retryAt });
    if (key !== this.last) {
      this.last = key;
      this.emit('status', info);
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    clearTimeout(this.retryTimer);
    clearTimeout(this.attemptTimer);
    this.retryAt = null;
    if (win) {
      win.removeEventListener('online', this.onOnline);
      win.removeEventListener('offline', this.onOffline);
    }
    this.socket?.disconnect();
    this.socket?.io._close();
    this.changed();
  }
}
