// What the browser says about the device: the Battery Status API, the
// Network Information API and the Page Visibility API, each used only where
// present (none of them exists in Node, Firefox lacks the first two). The
// election scores a tab from these reports (docs/ELECTION.md, "The score"),
// the connection's quality reads the network, and the election resigns by
// itself when they say the tab is a poor leader.
const nav = () => (typeof navigator !== 'undefined' ? navigator : null);
const doc = () => (typeof document !== 'undefined' ? document : null);

/**
 * The device's conditions. `onChange()` is called after any of them changed.
 */
export class Caps {
  /** @param {{type: string, onChange: () => void}} o */
  constructor(o) {
    this.o = o;
    this.bat = null;      // BatteryManager
    this.conn = null;     // NetworkInformation
    this.offs = [];
  }

  /** Subscribes to what the browser offers; resolves once the battery (if any) is known. */
  async start() {
    const n = nav();
    const d = doc();
    const listen = (target, name, fn) => {
      target.addEventListener(name, fn);
      this.offs.push(() => target.removeEventListener(name, fn));
    };
    const changed = () => this.o.onChange();
    this.conn = n?.connection ?? null;
    if (this.conn?.addEventListener) listen(this.conn, 'change', changed);
    if (d && 'visibilityState' in d) listen(d, 'visibilitychange', changed);
    if (typeof n?.getBattery === 'function') {
      try {
        const b = await n.getBattery();
        if (this.closed) return;
        this.bat = b;
        listen(b, 'levelchange', changed);
        listen(b, 'chargingchange', changed);
      } catch {
        // not allowed here (a permissions policy): scored as unknown
      }
    }
  }

  /** {level, charging} or null. */
  get battery() {
    const b = this.bat;
    return b ? { level: b.level, charging: b.charging } : null;
  }

  /** {effectiveType, downlink, rtt, saveData} or null. */
  get network() {
    const c = this.conn;
    return c ? { effectiveType: c.effectiveType ?? null, downlink: c.downlink ?? null, rtt: c.rtt ?? null, saveData: !!c.saveData } : null;
  }

  /** 'visible' | 'hidden' | null. */
  get visibility() {
    const v = doc()?.visibilityState;
    return v === 'visible' || v === 'hidden' ? v : null;
  }

  /** The `metadata` report: only what is known. */
  metadata() {
    const m = { type: this.o.type };
    const net = this.network;
    if (net) {
      m.network = {};
      if (net.effectiveType) m.network.effectiveType = net.effectiveType;
      if (typeof net.downlink === 'number') m.network.downlink = net.downlink;
      if (typeof net.rtt === 'number') m.network.rtt = net.rtt;
    }
    const bat = this.battery;
    if (bat) m.battery = bat;
    const vis = this.visibility;
    if (vis) m.visibility = vis;
    return m;
  }

  /**
   * Why this tab should not lead now, or null: hidden while on battery under
   * 20 %, or a 2g / slow-2g network.
   */
  degraded() {
    const b = this.battery;
    if (this.visibility === 'hidden' && b && !b.charging && b.level < 0.2) return 'battery';
    const t = this.network?.effectiveType;
    if (t === '2g' || t === 'slow-2g') return 'network';
    return null;
  }

  stop() {
    this.closed = true;
    for (const off of this.offs.splice(0)) off();
  }
}

/**
 * Sends `metadata` at connect, on each change (coalesced: at most one report
 * per `minGapMs()` while the quality is poor), and now and then when nothing
 * else measured the round trip for a while.
 */
export class Reporter {
  /**
   * @param {{caps: Caps, conn: import('./connection.js').Connection, minGapMs: () => number, probeMs?: number}} o
   */
  constructor(o) {
    this.o = o;
    this.lastAt = -Infinity;
    this.timer = null;
    this.probe = setInterval(() => {
      if (o.conn.up && performance.now() - o.conn.rttAt > (o.probeMs ?? 15000)) this.send();
    }, o.probeMs ?? 15000);
  }

  /** A report is due (a change, or a connect when `now`). */
  due(now = false) {
    if (now) {
      this.send();
      return;
    }
    if (this.timer) return;
    const wait = Math.max(0, this.lastAt + this.o.minGapMs() - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.send();
    }, wait);
  }

  async send() {
    const { conn, caps } = this.o;
    if (!conn.up) return;
    this.lastAt = performance.now();
    try {
      await conn.ask('metadata', caps.metadata(), 10000, true);
    } catch {
      // offline or no answer: the next connect reports again
    }
  }

  stop() {
    clearTimeout(this.timer);
    clearInterval(this.probe);
  }
}
