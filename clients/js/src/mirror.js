// The local mirror of a session's shared document. `confirmed` is the fold
// of the history this tab applied, strictly in seq order (an entry ahead of
// a gap waits until the gap is filled); `view` is confirmed with the pending
// local changes applied on top, in order: the optimistic document the app
// shows. Every change of either recomputes the view (a rebase of the pending
// changes) and tells the subscribers whose value changed, by identity: the
// updates share structure, and reconcile() keeps equal subtrees identical.
import { Emitter } from './emitter.js';
import { applyEffects, applyMerge, applyOps, getPath, parsePointer, reconcile } from './patch.js';

const empty = () => ({ state: {}, ver: 0, seq: 0, epoch: null });

export class Mirror extends Emitter {
  constructor() {
    super();
    this.confirmed = empty();
    this.view = this.confirmed.state;
    this.pending = new Map(); // key -> {ops} | {merge} (+ client, mut: matched against entries)
    this._held = new Map(); // seq -> [entry, source], waiting for the seqs before it
    this._gapAt = null;
    this._subs = new Set();
    this._depth = 0;
    this._applied = []; // [entry, source] applied in the current batch, announced after it
    this._confirmedChanged = false;
  }

  /**
   * Runs fn with recomputes deferred; the view is recomputed once at the
   * end, announced with `source`. Nested calls join the outermost one.
   */
  batch(source, fn) {
    this._depth += 1;
    try {
      return fn();
    } finally {
      this._depth -= 1;
      if (this._depth === 0) this._recompute(source);
    }
  }

  /** Replaces the confirmed document (a cached snapshot, a reset). */
  reset({ state = {}, ver = 0, seq = 0, epoch = null } = {}, source = 'reset') {
    this.batch(source, () => {
      this._dropHeld(() => true);
      this.confirmed = { state, ver, seq, epoch };
      this._confirmedChanged = true;
    });
  }

  /** Adds a pending local change ({ops} or {merge}) on top of the view. */
  addPending(key, change) {
    this.batch('local', () => this.pending.set(key, change));
  }

  /** Takes a pending change out of the view; source 'confirm' or 'rollback'. */
  removePending(key, source = 'rollback') {
    if (!this.pending.has(key)) return;
    this.batch(source, () => this.pending.delete(key));
  }

  /**
   * A history entry ({seq, kind: 'change', ver, effects} or {seq, kind:
   * 'event'}). Returns 'applied', 'held' (waits for the seqs before it) or
   * 'dropped' (already applied).
   */
  applyEntry(entry, source = 'remote') {
    const seq = entry?.seq;
    if (!Number.isInteger(seq) || seq <= this.confirmed.seq) return 'dropped';
    if (seq > this.confirmed.seq + 1) {
      if (!this._held.has(seq)) this._held.set(seq, [entry, source]);
      this._gapAt ??= Date.now();
      return 'held';
    }
    this.batch(source, () => {
      this._apply(entry, source);
      let next;
      while ((next = this._held.get(this.confirmed.seq + 1))) {
        this._held.delete(this.confirmed.seq + 1);
        this._apply(next[0], next[1]);
      }
      for (const s of this._held.keys()) if (s <= this.confirmed.seq) this._held.delete(s);
      if (!this._held.size) this._gapAt = null;
    });
    return 'applied';
  }

  /** A `sync` answer: a reset (snapshot + entries) or the entries after our seq. */
  applySync(answer) {
    if (!answer || answer.ok !== true) return;
    this.batch(answer.reset ? 'reset' : 'remote', () => {
      if (answer.reset && answer.snapshot) {
        const s = answer.snapshot;
        // live entries held for later seqs stay valid within the same history
        const same = answer.epoch === this.confirmed.epoch;
        this._dropHeld((seq) => !same || seq <= s.seq);
        this.confirmed = { state: s.state, ver: s.ver, seq: s.seq, epoch: answer.epoch };
        this._confirmedChanged = true;
      } else if (answer.epoch && answer.epoch !== this.confirmed.epoch) {
        this.confirmed = { ...this.confirmed, epoch: answer.epoch };
        this._confirmedChanged = true;
      }
      for (const e of answer.entries || []) this.applyEntry(e, 'remote');
    });
  }

  /** True while entries wait for a missing seq. */
  hasGap() {
    return this._held.size > 0;
  }

  /** Since when (Date.now() ms) the oldest waiting gap exists, or null. */
  gapSince() {
    return this._held.size ? this._gapAt : null;
  }

  /** The view's value at a JSON Pointer. */
  get(path = '') {
    return getPath(this.view, path);
  }

  /**
   * fn(value, {path, source}) whenever the view's value at path changes.
   * Returns the unsubscribe function. Throws on a malformed pointer.
   */
  subscribe(path, fn) {
    const sub = { path, segs: parsePointer(path), fn, last: undefined };
    sub.last = getPath(this.view, sub.segs);
    this._subs.add(sub);
    return () => this._subs.delete(sub);
  }

  // ---- internals ----------------------------------------------------------

  _apply(entry, source) {
    const c = this.confirmed;
    const next = { ...c, seq: entry.seq };
    if (entry.kind === 'change') {
      try {
        next.state = applyEffects(c.state, entry.effects || []);
      } catch (e) {
        // our copy no longer matches the server's: no epoch makes the next
        // sync start from a snapshot
        next.epoch = null;
        queueMicrotask(() => this.emit('diverged', { entry, error: e }));
      }
      if (Number.isInteger(entry.ver)) next.ver = entry.ver;
      this._dropOwn(entry);
    }
    this.confirmed = next;
    this._confirmedChanged = true;
    this._applied.push([entry, source]);
  }

  // A pending change that the entry is (same client and mut) is in confirmed now.
  _dropOwn(entry) {
    if (entry.client === undefined || entry.mut === undefined) return;
    for (const [k, p] of this.pending) {
      if (p.client === entry.client && p.mut === entry.mut) this.pending.delete(k);
    }
  }

  // Held entries are dropped; pending changes they would have confirmed go with them.
  _dropHeld(which) {
    for (const [seq, [entry]] of this._held) {
      if (!which(seq)) continue;
      this._held.delete(seq);
      if (entry.kind === 'change') this._dropOwn(entry);
    }
    if (!this._held.size) this._gapAt = null;
  }

  _recompute(source) {
    let v = this.confirmed.state;
    for (const p of this.pending.values()) {
      try {
        v = p.ops ? applyOps(v, p.ops) : applyMerge(v, p.merge);
      } catch {
        // does not apply on this base: it stays pending, the server decides
      }
    }
    v = reconcile(this.view, v);
    const changed = v !== this.view;
    this.view = v;
    if (changed) {
      for (const sub of [...this._subs]) {
        if (!this._subs.has(sub)) continue;
        const val = getPath(v, sub.segs);
        if (val === sub.last) continue;
        sub.last = val;
        try {
          sub.fn(val, { path: sub.path, source });
        } catch (e) {
          console.error(`tabsync: a subscriber of '${sub.path}' threw`, e);
        }
      }
      this.emit('state', { state: v, source });
    }
    if (this._confirmedChanged) {
      this._confirmedChanged = false;
      this.emit('confirmed', this.confirmed);
    }
    for (const [entry, src] of this._applied.splice(0)) this.emit('entry', entry, src);
  }
}
