// The election participant (docs/ELECTION.md): joins through `auth.elect`,
// heartbeats while a view says this tab leads, and acts as leader only from
// the first acknowledged heartbeat until t_sent + lease × 0.99 − 50 ms after
// the last one, so that two tabs never act at once (the model's P3). It
// resigns when asked to step down, when its conditions degrade and when the
// page goes, runs the tasks the server assigns to it, and declares tasks.
import { now } from './connection.js';

const DRIFT = 0.01;   // ρ: the clock drift bound
const MARGIN = 50;    // δ: ms kept in hand
const TASK_KEEPALIVE_MS = 3000; // progress reports of a running task (the server's default stall is 10 s)

const aborted = (why) => {
  const c = new AbortController();
  c.abort(why);
  return c;
};

/** ts.election. */
export class Election {
  /**
   * @param {object} o
   * @param {import('./connection.js').Connection} o.conn
   * @param {{device: string, tab: string}} o.me
   * @param {(name: string, arg: any) => void} o.emit
   * @param {(dir: string, name: string, summary: string, extra?: object) => void} o.log
   */
  constructor(o) {
    this.o = o;
    this.scopes = new Map();     // scope -> per-scope state
    this.leaderFns = [];         // {scope, fn}
    this.taskFns = new Map();    // name -> fn
    this.running = new Map();    // `${scope}/${name}` -> {ctrl, timer, pct}
  }

  st(scope) {
    let s = this.scopes.get(scope);
    if (!s) {
      s = { view: null, hb: null, leading: false, term: null, deadline: 0, timer: null, ctrl: aborted('not leading'), resigned: 0 };
      this.scopes.set(scope, s);
    }
    return s;
  }

  /** The last `elect` view of a scope, or null. */
  view(scope = 'session') {
    return this.scopes.get(scope)?.view ?? null;
  }

  /** True only within the acting deadline of the last acknowledged heartbeat. */
  isLeader(scope = 'session') {
    const s = this.scopes.get(scope);
    return !!s && s.leading && now() < s.deadline;
  }

  /** The term this tab leads with, or null. */
  term(scope = 'session') {
    return this.isLeader(scope) ? this.scopes.get(scope).term : null;
  }

  /** The leader's grant (a JWT for the application's backend), or null. */
  grant(scope = 'session') {
    return this.isLeader(scope) ? this.scopes.get(scope).grant ?? null : null;
  }

  /** A view arrived. */
  onView(v) {
    const s = this.st(v.scope);
    s.view = v;
    this.o.log('in', 'elect', `${v.scope} term ${v.term} ${v.role}${v.step_down ? ' step_down' : ''} (${v.reason})`);
    const mine = v.role === 'leader' && v.term > s.resigned;
    // why this term began: later views of it give other reasons (a join...)
    if (v.term !== s.viewTerm) {
      s.viewTerm = v.term;
      s.why = v.reason;
    }
    // a term this tab led is over once any view names another
    if (s.leading && s.term !== v.term) this.stop(v.scope, v.reason);
    if (mine && v.step_down) this.stepDown(v.scope, v.term, 'step_down');
    else if (mine) {
      if (v.grant) s.grant = v.grant;
      if (!s.hb) {
        // heartbeat at once: leading starts from its acknowledgement
        s.hb = setInterval(() => this.beat(v.scope), v.hb_ms);
        this.beat(v.scope);
      }
    } else {
      this.quiet(s);
      if (s.leading) this.stop(v.scope, v.reason);
    }
    this.o.emit('election', v);
    this.tasks(v);
  }

  quiet(s) {
    clearInterval(s.hb);
    s.hb = null;
  }

  /** One heartbeat of a scope this tab was told it leads. */
  async beat(scope) {
    const s = this.st(scope);
    const v = s.view;
    if (!v || v.role !== 'leader' || v.step_down || !this.o.conn.up) return;
    const term = v.term;
    const t0 = now();
    let ack;
    try {
      ack = await this.o.conn.ask('hb', { scope, term }, v.lease_ms, true);
    } catch {
      return; // no answer: the deadline runs out by itself
    }
    if (ack?.ok) {
      const cur = s.view;
      if (term <= s.resigned || !cur || cur.role !== 'leader' || cur.term !== term) return;
      if (ack.grant) s.grant = ack.grant;
      const deadline = t0 + (ack.lease_ms ?? v.lease_ms) * (1 - DRIFT) - MARGIN;
      if (s.leading && s.term !== term) this.stop(scope, 'term');
      if (deadline <= s.deadline && s.leading) return;
      if (deadline <= now()) return; // the answer came too late to act on
      s.deadline = deadline;
      clearTimeout(s.timer);
      s.timer = setTimeout(() => this.stop(scope, 'lapse'), Math.max(0, deadline - now()));
      if (!s.leading) this.start(scope, term);
    } else {
      const code = ack?.error?.code;
      this.o.log('in', 'hb', `${scope} term ${term}: ${code}`);
      if (code === 'step_down') this.stepDown(scope, term, 'step_down');
      else if (code === 'stale_term') {
        this.quiet(s);
        this.stop(scope, 'stale_term');
      }
    }
  }

  start(scope, term) {
    const s = this.st(scope);
    s.leading = true;
    s.term = term;
    s.ctrl = new AbortController();
    const reason = s.why ?? 'elected';
    this.o.log('info', 'leadership', `${scope}: leading with term ${term}`);
    this.o.emit('leadership', { scope, leading: true, term, reason });
    for (const l of this.leaderFns) if (l.scope === scope) this.runLeader(l, s);
  }

  runLeader(l, s) {
    try {
      Promise.resolve(l.fn({ term: s.term, signal: s.ctrl.signal })).catch((e) => this.o.log('info', 'whileLeader', `threw: ${e?.message ?? e}`));
    } catch (e) {
      this.o.log('info', 'whileLeader', `threw: ${e?.message ?? e}`);
    }
  }

  /** Stops acting as leader of a scope (before anything is said to the server). */
  stop(scope, reason) {
    const s = this.st(scope);
    if (!s.leading) return;
    const term = s.term;
    s.leading = false;
    s.term = null;
    s.deadline = 0;
    clearTimeout(s.timer);
    s.ctrl.abort(reason);
    this.o.log('info', 'leadership', `${scope}: stopped leading term ${term} (${reason})`);
    this.o.emit('leadership', { scope, leading: false, term, reason });
  }

  /** Asked to step down, or decided to: stop, then resign. */
  stepDown(scope, term, reason) {
    const s = this.st(scope);
    if (term <= s.resigned) return Promise.resolve({ ok: true, term });
    this.quiet(s);
    this.stop(scope, reason);
    s.resigned = term;
    this.o.log('out', 'resign', `${scope} term ${term} (${reason})`);
    return this.o.conn.ask('resign', { scope, term }, 5000, true)
      .catch((e) => ({ ok: false, error: { code: 'offline', message: String(e?.message ?? e) } }));
  }

  /**
   * Gives up leading a scope: resolves to the server's answer (or a local
   * `not_leader` / `offline` refusal).
   */
  resign(scope = 'session', reason = 'resign') {
    const s = this.scopes.get(scope);
    const v = s?.view;
    if (!v || v.role !== 'leader' || v.term <= s.resigned) {
      return Promise.resolve({ ok: false, error: { code: 'not_leader', message: 'this tab does not lead that scope' } });
    }
    return this.stepDown(scope, v.term, reason);
  }

  /** Resigns every scope this tab leads (page hidden on battery, 2g, pagehide, close). */
  resignAll(reason) {
    const out = [];
    for (const scope of this.scopes.keys()) {
      const v = this.view(scope);
      if (v?.role === 'leader') out.push(this.resign(scope, reason));
    }
    return Promise.all(out);
  }

  /** `fn({term, signal})` each time this tab starts leading `scope`; returns off(). */
  whileLeader(scope, fn) {
    if (typeof scope === 'function') [scope, fn] = ['session', scope];
    const l = { scope, fn };
    this.leaderFns.push(l);
    const s = this.scopes.get(scope);
    if (s && this.isLeader(scope)) this.runLeader(l, s);
    return () => {
      const i = this.leaderFns.indexOf(l);
      if (i >= 0) this.leaderFns.splice(i, 1);
    };
  }

  /** `fn({name, scope, term, signal, progress})` when task `name` is assigned here; returns off(). */
  onTask(name, fn) {
    this.taskFns.set(name, fn);
    for (const s of this.scopes.values()) if (s.view) this.tasks(s.view);
    return () => {
      if (this.taskFns.get(name) === fn) this.taskFns.delete(name);
    };
  }

  /** Declares a task (leader only): resolves to the server's answer. */
  async declareTask(name, { to, stallMs, scope = 'session' } = {}) {
    const term = this.term(scope);
    if (term === null) throw Object.assign(new Error('not_leader'), { code: 'not_leader' });
    const req = { op: 'declare', scope, term, name };
    if (to) req.to = { device: to.device, tab: to.tab };
    if (stallMs) req.stall_ms = stallMs;
    this.o.log('out', 'task', `declare ${name} in ${scope}`);
    return this.o.conn.ask('task', req, 10000);
  }

  /** Starts and aborts task runs as the view's task table says. */
  tasks(v) {
    const { device, tab } = this.o.me;
    const seen = new Set();
    for (const t of v.tasks ?? []) {
      const key = `${v.scope}/${t.name}`;
      const mine = t.assignee?.device === device && t.assignee?.tab === tab;
      if (!mine) continue;
      seen.add(key);
      const r = this.running.get(key);
      // a finished run is forgotten once the server has seen it started:
      // until then a late view still says 'assigned' and would run it again
      if (r?.finished && t.state !== 'assigned') this.running.delete(key);
      const fn = this.taskFns.get(t.name);
      if (t.state === 'assigned' && fn && !this.running.has(key)) this.runTask(v.scope, t, fn, key);
    }
    for (const [key, r] of this.running) {
      if (key.startsWith(`${v.scope}/`) && !seen.has(key)) {
        // reassigned, or cancelled
        this.running.delete(key);
        clearInterval(r.timer);
        if (!r.finished) r.ctrl.abort('reassigned');
      }
    }
  }

  runTask(scope, t, fn, key) {
    const ctrl = new AbortController();
    const r = { ctrl, pct: 0, timer: null };
    const report = (op, extra) => {
      if (ctrl.signal.aborted) return;
      this.o.conn.ask('task', { op, scope, name: t.name, ...extra }, 10000).catch(() => {});
    };
    r.timer = setInterval(() => report('progress', { pct: r.pct }), TASK_KEEPALIVE_MS);
    this.running.set(key, r);
    this.o.log('info', 'task', `running ${t.name} (${scope})`);
    report('progress', { pct: 0 });
    const progress = (pct) => {
      r.pct = Math.max(0, Math.min(100, Math.round(Number(pct) || 0)));
      report('progress', { pct: r.pct });
    };
    const finish = (op, extra) => {
      clearInterval(r.timer);
      report(op, extra);
      r.finished = true;
    };
    Promise.resolve()
      .then(() => fn({ name: t.name, scope, term: t.term, signal: ctrl.signal, progress }))
      .then((result) => finish('done', result === undefined ? {} : { result }),
        (e) => finish('fail', { reason: String(e?.message ?? e).slice(0, 200) }));
  }

  /**
   * Connected (again): a view that came first (a recovered connection
   * delivers what it missed before 'connect') could not heartbeat yet.
   */
  onConnect() {
    for (const [scope, s] of this.scopes) if (s.hb) this.beat(scope);
  }

  /** The connection went: heartbeats stop; leading ends at its deadline. */
  onDisconnect() {
    for (const s of this.scopes.values()) this.quiet(s);
  }

  close() {
    for (const [scope, s] of this.scopes) {
      this.quiet(s);
      this.stop(scope, 'closed');
    }
    for (const r of this.running.values()) {
      clearInterval(r.timer);
      r.ctrl.abort('closed');
    }
    this.running.clear();
  }
}
