// Presence: each tab announces itself (and what the app set with
// `presence.set`) in ephemeral envelopes of type `tabsync.presence`, prio
// `presence` — relayed to the session's tabs now, never logged, coalesced by
// the server under load. A tab repeats its announcement every 2 intervals,
// so a peer not heard of for 3 intervals is gone; one that says it leaves
// (pagehide, close) is dropped at once. Sends are rate-limited by the
// connection's quality: at most one per interval, the poor interval on a
// poor connection, none offline.
import { randomId } from './connection.js';

export const PRESENCE_TYPE = 'tabsync.presence';

/** ts.presence. */
export class Presence {
  /**
   * @param {object} o
   * @param {import('./connection.js').Connection} o.conn
   * @param {{intervalMs: number, poorIntervalMs: number}} o.opts
   * @param {(name: string, arg: any) => void} o.emit
   * @param {(dir: string, name: string, summary: string) => void} o.log
   */
  constructor(o) {
    this.o = o;
    /** @type {Map<string, {device: string, tab: string, user: string, state: any, at: number}>} */
    this.peers = new Map();
    this.expiry = new Map();   // key -> Date.now() when dropped
    this.state = null;
    this.lastAt = -Infinity;   // performance.now() of the last send
    this.timer = null;         // a send waiting for the rate limit
    this.n = 0;
    this.prefix = `p.${randomId(8)}`;
    this.tick = setInterval(() => this.sweep(), o.opts.intervalMs);
  }

  /** The least time between two sends now. */
  gap() {
    return this.o.conn.quality === 'poor' ? this.o.opts.poorIntervalMs : this.o.opts.intervalMs;
  }

  /** Sets this tab's presence (any JSON value; the latest wins). */
  set(state) {
    this.state = state;
    this.due();
  }

  /** A send is due: now if the rate allows, else when it does (coalesced). */
  due() {
    if (this.timer) return;
    const wait = this.lastAt + this.gap() - performance.now();
    if (wait <= 0) this.send();
    else this.timer = setTimeout(() => {
      this.timer = null;
      this.send();
    }, wait);
  }

  send(leaving = false) {
    clearTimeout(this.timer);
    this.timer = null;
    const body = { state: this.state, iv: this.gap() };
    if (leaving) body.leaving = true;
    const env = { v: 4, type: PRESENCE_TYPE, id: `${this.prefix}.${++this.n}`, prio: 'presence', body };
    if (this.o.conn.send('publish', env)) {
      this.lastAt = performance.now();
      this.o.log('out', 'presence', leaving ? 'leaving' : JSON.stringify(this.state)?.slice(0, 80) ?? 'null');
    }
  }

  /** An envelope of type tabsync.presence from another tab. */
  receive(env) {
    const f = env.from;
    if (!f) return;
    const key = `${f.device}/${f.tab}`;
    const b = env.body ?? {};
    if (b.leaving) {
      this.expiry.delete(key);
      if (this.peers.delete(key)) this.o.emit('presence', this.peers);
      return;
    }
    const iv = Math.min(Math.max(Number(b.iv) || this.o.opts.intervalMs, 100), 600000);
    const at = Date.now();
    this.peers.set(key, { device: f.device, tab: f.tab, user: f.user, state: b.state ?? null, at });
    this.expiry.set(key, at + 3 * iv);
    this.o.emit('presence', this.peers);
  }

  /** Drops peers not heard of in time; repeats this tab's announcement. */
  sweep() {
    const t = Date.now();
    let changed = false;
    for (const [key, until] of this.expiry) {
      if (t > until) {
        this.expiry.delete(key);
        this.peers.delete(key);
        changed = true;
      }
    }
    if (changed) this.o.emit('presence', this.peers);
    if (this.o.conn.up && performance.now() - this.lastAt >= 2 * this.gap() - 50) this.due();
  }

  /** Connected (again): announce at once, whatever the rate limit. */
  onConnect() {
    this.lastAt = -Infinity;
    this.due();
  }

  /** This tab goes (pagehide, close): peers drop it at once. */
  leave() {
    this.send(true);
  }

  close() {
    clearInterval(this.tick);
    clearTimeout(this.timer);
    this.timer = null;
  }
}
