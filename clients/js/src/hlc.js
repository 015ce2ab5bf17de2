// The client's hybrid logical clock, in the server's format: ms_since_1970 *
// 1024 + counter (docs/PROTOCOL.md "The history"). A change's hlc decides
// lww races, so it must be greater than every hlc this tab has seen (an edit
// made after seeing a change wins against it) without running ahead of the
// wall clock far enough for the server to refuse it (clock_skew, > 60 s).

const PER_MS = 1024;
// How far an observed clock may pull ours ahead of our wall clock: half the
// server's clock_skew limit, so the 60 s are never reached through us.
export const MAX_AHEAD_MS = 30000;

export class Hlc {
  /** @param {() => number} [clock] the wall clock in ms (Date.now) */
  constructor(clock = Date.now) {
    this.clock = clock;
    this.offset = 0; // server clock - ours (ms), once the server said its time
    this.last = 0;
  }

  /** Our wall clock corrected by the server's: a device whose clock is off
   * by minutes would otherwise have every change refused (clock_skew) or,
   * behind, lose every lww race. */
  wall() {
    return Math.floor(this.clock() + this.offset);
  }

  /** The server's wall clock `serverMs` (the welcome's `now`), read now. */
  serverTime(serverMs) {
    if (!Number.isSafeInteger(serverMs) || serverMs <= 0) return;
    this.offset = serverMs - this.clock();
    // a clock that jumped back: `last` may now be ahead of the wall clock,
    // which keeps timestamps increasing and is capped like an observation
    const cap = (this.wall() + MAX_AHEAD_MS) * PER_MS;
    if (this.last > cap) this.last = cap;
  }

  /** The next timestamp: strictly greater than every earlier one and every observed one. */
  now() {
    this.last = Math.max(this.last + 1, this.wall() * PER_MS);
    return this.last;
  }

  /** Takes a server ts / a change's hlc into account (capped at wall clock + MAX_AHEAD_MS). */
  observe(ts) {
    if (!Number.isSafeInteger(ts) || ts <= this.last) return;
    const cap = (this.wall() + MAX_AHEAD_MS) * PER_MS;
    this.last = Math.max(this.last, Math.min(ts, cap));
  }
}
