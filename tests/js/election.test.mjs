// Leader election (docs/ELECTION.md, /session protocol 4) against a real
// tabsyncd with stock socket.io-client tabs (election-helpers.mjs ElectTab:
// they heartbeat while they lead, as a client library does):
//  - the first tab's first view already names it leader; the second is backup;
//  - a leader gone silent (no heartbeats, connection up): the backup leads with
//    a higher term, granted only after the silent one's lease expired; the
//    silent one's heartbeat is then told stale_term;
//  - a leader that disconnects: the backup leads at once (reason left);
//    a graceful resign: the backup leads with term + 1 before the lease could
//    have lapsed (reason handoff);
//  - scores: a hidden tab and a battery drop move leadership, small changes
//    do not; an observer never leads;
//  - rotation after the maximum tenure; demotion of a leader whose heartbeats
//    come late;
//  - tasks: assigned to a follower by capability, reassigned when the
//    assignee leaves and when it stalls; leader-declared tasks need the term;
//  - fenced state changes: applied with the current term, refused stale_term
//    with an old one (nothing applied);
//  - grants: an example backend verifies the signed grant and asks tabsyncd's
//    HTTP check for the current term: a stale leader's request is refused;
//  - device scope: one leader per device, one for the session;
//  - the admin view and /metrics;
//  - randomized churn (TS_CHURN_OPS, default 1000 operations over 12
//    sessions: joins, leaves, crashes, resignations, score changes, leader
//    actions) with a checker: one leader per term, stale actions never
//    accepted, and after it settles every session with a live candidate has
//    exactly one leader that every tab agrees on.
// Every view and heartbeat answer is checked against
// docs/protocol/session-v3.schema.json.
//
// tabsyncd only (skipped with TS_TARGET=node).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, IS_NODE, sleep } from './harness.mjs';
import { BASE_FLAGS, makeRng, schemaError } from './history-helpers.mjs';
import { ElectTab, Checker, ident, uniq, holderOf, httpJson, leaderChange, verifyGrant, exampleBackend } from './election-helpers.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference has no elections)' } : {};
const T = { timeout: 60000 };
const LEASE = 600;
const SWEEP = Math.max(25, LEASE / 10);
const GRANT_KEY = crypto.randomBytes(32).toString('hex');
const PUB = `pub-${crypto.randomBytes(16).toString('hex')}`;
const ADMIN = `adm-${crypto.randomBytes(16).toString('hex')}`;
const SEED = Number(process.env.TS_SEED ?? crypto.randomInt(1, 2 ** 31));
const CHURN_OPS = Number(process.env.TS_CHURN_OPS ?? 1000);

const metric = (text, name) => {
  const m = new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} ([0-9.]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

describe('leader election', SKIP, () => {
  let srv;
  const tabs = [];
  const open = async (id, opts) => {
    const t = await new ElectTab(srv.url, id, opts).open();
    tabs.push(t);
    return t;
  };

  before(async () => {
    srv = await startServer({
      extra: [...BASE_FLAGS, '--elect-lease', String(LEASE), '--elect-min-tenure', '0',
        '--elect-tasks', 'refresh:400', '--elect-grant-secret', GRANT_KEY,
        '--publisher-token', PUB, '--admin-token', ADMIN],
    });
  });
  after(async () => {
    for (const t of tabs) t.close();
    const bad = tabs.flatMap((t) => t.violations);
    await srv?.stop();
    assert.deepEqual(bad, [], 'every view matched the schema and terms never went back');
  });

  it('the first tab leads from its first view; the second is backup', T, async () => {
    const s = uniq('first');
    const a = await open(ident('u', s, 'd1', 'A'));
    const v = await a.until((x) => x.role === 'leader', { what: 'A leads' });
    assert.equal(a.views[0].v.role, 'leader', 'no leaderless view came first');
    assert.ok(v.term >= 1);
    assert.equal(v.reason, 'elected');
    assert.equal(v.lease_ms, LEASE);
    assert.equal(v.hb_ms, Math.floor(LEASE / 3));
    assert.equal(v.backup, null);
    assert.ok(verifyGrant(v.grant, GRANT_KEY), 'the leader got a grant signed with the key');
    const b = await open(ident('u', s, 'd2', 'B'));
    const vb = await b.until((x) => x.role === 'backup', { what: 'B is backup' });
    assert.equal(b.views[0].v.role, 'backup');
    assert.equal(vb.term, v.term);
    assert.deepEqual(holderOf(vb.leader), 'd1/A');
    assert.equal(vb.grant, undefined, 'only the leader gets the grant');
    await a.until((x) => holderOf(x.backup) === 'd2/B', { what: 'A sees B as backup' });
    // the leader keeps its lease over many lease periods by heartbeating
    await sleep(LEASE * 3);
    assert.equal(a.term(), v.term);
    assert.equal(a.role(), 'leader');
    assert.ok(a.hbAcks.filter((h) => h.ack.ok).length >= 6, 'heartbeats were answered');
    a.close();
    b.close();
  });

  it('a leader gone silent: the backup leads with a higher term after its lease, and the silent one is told stale_term', T, async () => {
    const s = uniq('silent');
    const a = await open(ident('u', s, 'd1', 'A'));
    const v1 = await a.until((x) => x.role === 'leader');
    const b = await open(ident('u', s, 'd2', 'B'));
    await b.until((x) => x.role === 'backup');
    await sleep(LEASE); // a few heartbeats
    a.freeze();
    const lastAck = a.hbAcks.filter((h) => h.ack.ok).at(-1);
    assert.ok(lastAck, 'A heartbeated before going silent');
    const vb = await b.until((x) => x.role === 'leader', { what: 'B takes over' });
    assert.ok(vb.term > v1.term, 'a higher term');
    assert.equal(vb.reason, 'lapse');
    assert.ok(vb.since >= lastAck.ack.expires_at, `granted at ${vb.since}, not before A's lease ended at ${lastAck.ack.expires_at}`);
    console.log(`# failover after silence: ${(vb.since - lastAck.ack.expires_at)} ms after the lease expired (sweep ${SWEEP} ms)`);
    // A still believes it leads with the old term: its heartbeat is refused
    const ack = await a.hb('session', v1.term);
    assert.equal(ack.ok, false);
    assert.equal(ack.error.code, 'stale_term');
    assert.equal(ack.term, vb.term);
    assert.equal(holderOf(ack.leader), 'd2/B');
    await a.until((x) => x.role !== 'leader' && x.term === vb.term, { what: 'A sees itself stepped down' });
    a.close();
    b.close();
  });

  it('a graceful resign hands over before the lease could lapse; a leader that disconnects is succeeded when its lease ends', T, async () => {
    const s = uniq('handoff');
    const a = await open(ident('u', s, 'd1', 'A'));
    const v1 = await a.until((x) => x.role === 'leader');
    const b = await open(ident('u', s, 'd2', 'B'));
    await b.until((x) => x.role === 'backup');
    const c = await open(ident('u', s, 'd3', 'C'));
    await c.until((x) => x.role === 'follower');
    // graceful: A resigns; B (the backup) leads with the next term
    const ack = await a.ask('resign', { scope: 'session', term: v1.term });
    assert.deepEqual(ack, { ok: true, term: v1.term });
    // until() returns the latest view, and a task view (the operator's
    // refresh moves every 400 ms: nobody reports it here) may have come
    // right behind the one that changed the term; the reason is that one's
    const firstOf = (t, term) => t.views.find((x) => x.v.scope === 'session' && x.v.term === term).v;
    await b.until((x) => x.role === 'leader', { what: 'B leads after the resign' });
    const vb = b.views.find((x) => x.v.scope === 'session' && x.v.role === 'leader').v;
    assert.equal(vb.term, v1.term + 1);
    assert.equal(vb.reason, 'handoff');
    const aLease = a.hbAcks.filter((h) => h.ack.ok).at(-1)?.ack.expires_at ?? v1.since + LEASE;
    assert.ok(vb.since < aLease, 'handed over while A\'s lease still ran: not a lapse');
    await a.until((x) => x.role !== 'leader' && x.term === vb.term);
    await c.until((x) => x.term === vb.term && holderOf(x.leader) === 'd2/B');
    // B's connection goes: B may still be acting on its lease (a cut it has
    // not noticed), so its successor is granted only once that lease ended
    await sleep(LEASE / 2);
    const bLease = b.hbAcks.filter((h) => h.ack.ok).at(-1)?.ack.expires_at ?? vb.since + LEASE;
    b.close();
    await c.until((x) => x.term === vb.term + 1, { what: 'a leader after B left' });
    const next = firstOf(c, vb.term + 1);
    assert.equal(next.reason, 'left');
    assert.ok(['d1/A', 'd3/C'].includes(holderOf(next.leader)));
    assert.ok(next.since >= bLease, `granted at ${next.since}, B's lease ran until ${bLease}`);
    // a leader that says it leaves (elect leave) has stopped: at once
    // (across nodes the other tab's view of that term may come a little later)
    await Promise.any([a, c].map((t) => t.until((x) => x.role === 'leader' && x.term === next.term)));
    const lead = [a, c].find((t) => t.role() === 'leader');
    const other = lead === a ? c : a;
    const ack2 = await lead.ask('elect', { leave: ['session'] });
    assert.equal(ack2.ok, true);
    await other.until((x) => x.term === next.term + 1, { what: 'a leader after the leave' });
    const v3 = firstOf(other, next.term + 1);
    assert.equal(v3.reason, 'left');
    assert.ok(v3.since < (lead.hbAcks.filter((h) => h.ack.ok).at(-1)?.ack.expires_at ?? next.since + LEASE), 'before its lease would end');
    a.close();
    c.close();
  });

  it('scores: a hidden tab and a battery drop move leadership, small changes do not; observers never lead', T, async () => {
    const s = uniq('score');
    const full = { visibility: 'visible', battery: { level: 1, charging: true } };
    const a = await open(ident('u', s, 'd1', 'A'), { scores: true });
    await a.ask('metadata', full);
    await a.until((x) => x.role === 'leader');
    const o = await open(ident('u', s, 'd0', 'O'), { observer: true });
    const b = await open(ident('u', s, 'd2', 'B'), { scores: true });
    await b.ask('metadata', full);
    await b.until((x) => x.role === 'backup');
    assert.equal(o.role(), 'observer');
    const t0 = a.term();
    // A hidden: 150 points down, more than the margin of 100: B leads
    await a.ask('metadata', { visibility: 'hidden' });
    const vb = await b.until((x) => x.role === 'leader', { what: 'B leads once A is hidden' });
    assert.equal(vb.reason, 'preempt');
    assert.equal(vb.term, t0 + 1);
    const parts = vb.members.find((m) => m.tab === 'A').parts;
    assert.equal(parts.visibility, 0.4, 'scores: true shows the parts');
    // small changes: B's battery to 90 %, A visible again (within 100 points): nothing moves
    await b.ask('metadata', { battery: { level: 0.9, charging: false } });
    await a.ask('metadata', { visibility: 'visible' });
    await sleep(LEASE);
    assert.equal(b.role(), 'leader');
    assert.equal(b.term(), t0 + 1, 'no new term for small changes');
    // B's battery falls to 20 %: A scores 160 more and leads again
    await b.ask('metadata', { battery: { level: 0.2, charging: false } });
    const va = await a.until((x) => x.role === 'leader', { what: 'A leads after B\'s battery drop' });
    assert.equal(va.reason, 'preempt');
    assert.equal(va.term, t0 + 2);
    // the observer is never leader nor backup, even alone with better scores
    a.close();
    b.close();
    await sleep(LEASE + 2 * SWEEP);
    assert.equal(o.role(), 'observer');
    assert.equal(o.view().leader, null);
    assert.ok(!o.views.some((x) => x.v.role === 'leader' || holderOf(x.v.backup) === 'd0/O'));
    o.close();
  });

  it('tasks: assigned to a follower, reassigned when the assignee leaves or stalls; leader tasks need the term', T, async () => {
    const s = uniq('tasks');
    const a = await open(ident('u', s, 'd1', 'A'));
    const va = await a.until((x) => x.role === 'leader');
    const b = await open(ident('u', s, 'd2', 'B'));
    const c = await open(ident('u', s, 'd3', 'C'));
    const assigned = (t, name = 'refresh') => t.view()?.tasks.find((x) => x.name === name);
    // the operator's task: never the leader's while followers exist
    let v = await a.until((x) => x.tasks.some((k) => k.name === 'refresh' && k.assignee && holderOf(k.assignee) !== 'd1/A'), { what: 'refresh assigned to a follower' });
    let who = holderOf(v.tasks.find((k) => k.name === 'refresh').assignee);
    assert.equal(v.tasks.find((k) => k.name === 'refresh').by, 'server');
    const tabOf = (h) => ({ 'd2/B': b, 'd3/C': c })[h];
    const first = tabOf(who);
    // the assignee reports progress; someone else may not
    const other = first === b ? c : b;
    assert.deepEqual(await first.ask('task', { op: 'progress', scope: 'session', name: 'refresh', pct: 40 }), { ok: true });
    const notMine = await other.ask('task', { op: 'progress', scope: 'session', name: 'refresh', pct: 1 });
    assert.equal(notMine.error.code, 'not_assignee');
    await a.until((x) => assigned({ view: () => x })?.state === 'running' && assigned({ view: () => x }).pct === 40);
    // the assignee leaves: reassigned to the other follower
    first.close();
    v = await a.until((x) => { const k = x.tasks.find((t) => t.name === 'refresh'); return k && holderOf(k.assignee) === other.holder; }, { what: 'refresh reassigned on leave' });
    assert.equal(v.tasks.find((k) => k.name === 'refresh').state, 'assigned');
    // the new assignee never reports: after 400 ms without progress it is
    // reassigned (to the leader: the only other candidate)
    v = await a.until((x) => { const k = x.tasks.find((t) => t.name === 'refresh'); return k && holderOf(k.assignee) === 'd1/A'; }, { what: 'refresh reassigned on stall' });
    // leader-declared task with the term; a wrong term is refused
    const stale = await a.ask('task', { op: 'declare', scope: 'session', term: va.term + 5, name: 'poll' });
    assert.equal(stale.error.code, 'stale_term');
    const notLeader = await other.ask('task', { op: 'declare', scope: 'session', term: va.term, name: 'poll' });
    assert.equal(notLeader.error.code, 'stale_term');
    assert.deepEqual(await a.ask('task', { op: 'declare', scope: 'session', term: va.term, name: 'poll', stall_ms: 5000 }), { ok: true });
    v = await other.until((x) => x.tasks.some((k) => k.name === 'poll'));
    const poll = v.tasks.find((k) => k.name === 'poll');
    assert.equal(poll.by, 'leader');
    assert.equal(poll.term, va.term);
    assert.equal(holderOf(poll.assignee), other.holder);
    assert.deepEqual(await other.ask('task', { op: 'done', scope: 'session', name: 'poll' }), { ok: true });
    await a.until((x) => x.tasks.find((k) => k.name === 'poll')?.state === 'done');
    assert.deepEqual(await a.ask('task', { op: 'cancel', scope: 'session', term: va.term, name: 'poll' }), { ok: true });
    await a.until((x) => !x.tasks.some((k) => k.name === 'poll'));
    const bad = await a.ask('task', { op: 'nap', scope: 'session', name: 'refresh' });
    assert.equal(bad.error.code, 'bad_task'); // A is the assignee of refresh now; nap is no op
    const badName = await a.ask('task', { op: 'progress', scope: 'session', name: 'no spaces' });
    assert.equal(badName.error.code, 'bad_task');
    a.close();
    other.close();
  });

  it('fenced state changes: applied with the current term, refused stale_term with an old one', T, async () => {
    const s = uniq('fence');
    const a = await open(ident('u', s, 'd1', 'A'));
    const v1 = await a.until((x) => x.role === 'leader');
    const b = await open(ident('u', s, 'd2', 'B'));
    await b.until((x) => x.role === 'backup');
    const ok = await a.ask('state', leaderChange(a, 'session', v1.term, 1));
    assert.equal(ok.ok, true, JSON.stringify(ok));
    assert.equal(schemaError('changeAck', ok), null);
    const wrongScope = await a.ask('state', leaderChange(a, 'device', v1.term, 2));
    assert.equal(wrongScope.error.code, 'stale_term', 'A never led its device scope');
    // B knows the term (every view shows it) but does not hold it
    const notMine = await b.ask('state', leaderChange(b, 'session', v1.term, 6));
    assert.equal(notMine.ok, false);
    assert.equal(notMine.error.code, 'stale_term', 'the term alone is not enough');
    await a.ask('resign', { scope: 'session', term: v1.term });
    const vb = await b.until((x) => x.role === 'leader');
    const stale = await a.ask('state', leaderChange(a, 'session', v1.term, 3));
    assert.equal(stale.ok, false);
    assert.equal(stale.error.code, 'stale_term');
    assert.equal(stale.term, vb.term);
    const okB = await b.ask('state', leaderChange(b, 'session', vb.term, 4));
    assert.equal(okB.ok, true);
    const bad = await b.ask('state', { ...leaderChange(b, 'session', vb.term, 5), lead: { scope: 'session' } });
    assert.equal(bad.error.code, 'bad_change');
    // the document has A's first change and B's, not the stale one
    const sync = await b.ask('sync', {});
    const work = sync.snapshot?.state?.leaderWork ?? sync.state?.leaderWork;
    const doc = JSON.stringify(sync);
    assert.ok(doc.includes('"A":1') && doc.includes('"B":4') && !doc.includes('"A":3') && !doc.includes('"B":6'), `the log: ${doc.slice(0, 800)} ${JSON.stringify(work)}`);
    a.close();
    b.close();
  });

  it('grants: an example backend refuses a stale leader by asking tabsyncd for the current term', T, async () => {
    const be = await exampleBackend({ grantKey: GRANT_KEY, tabsyncd: srv.url, publisherToken: PUB });
    try {
      const s = uniq('grant');
      const a = await open(ident('u', s, 'd1', 'A'));
      const va = await a.until((x) => x.role === 'leader' && x.grant);
      const b = await open(ident('u', s, 'd2', 'B'));
      await b.until((x) => x.role === 'backup');
      const claims = verifyGrant(va.grant, GRANT_KEY);
      assert.equal(claims.sub, 'd1/A');
      assert.equal(claims.term, va.term);
      assert.equal(claims.scope, 'session');
      assert.equal(claims.user, 'u');
      assert.equal(claims.session, s);
      // heartbeat acks carry a fresh grant, expiring with the lease
      const hb = await a.hb('session');
      const fresh = verifyGrant(hb.grant, GRANT_KEY);
      assert.equal(fresh.exp_ms, hb.expires_at);
      let r = await httpJson(`${be.url}/act`, { method: 'POST', body: { grant: hb.grant } });
      assert.equal(r.status, 200, r.text);
      // the HTTP check itself
      const check = await httpJson(`${srv.url}/api/sessions/u/${s}/election?scope=session`, { headers: { authorization: `Bearer ${PUB}` } });
      assert.equal(check.status, 200);
      assert.equal(schemaError('electionCheck', check.body), null);
      assert.equal(check.body.term, va.term);
      assert.equal(holderOf(check.body.leader), 'd1/A');
      const unauth = await httpJson(`${srv.url}/api/sessions/u/${s}/election`);
      assert.equal(unauth.status, 401);
      const badScope = await httpJson(`${srv.url}/api/sessions/u/${s}/election?scope=tab`, { headers: { authorization: `Bearer ${PUB}` } });
      assert.equal(badScope.status, 400);
      // A hands over; its grant is still within its expiry but its term is stale
      await a.ask('resign', { scope: 'session', term: va.term });
      const vb = await b.until((x) => x.role === 'leader' && x.grant);
      r = await httpJson(`${be.url}/act`, { method: 'POST', body: { grant: hb.grant } });
      assert.equal(r.status, 409, `stale grant refused: ${r.text}`);
      assert.equal(r.body.current, vb.term);
      r = await httpJson(`${be.url}/act`, { method: 'POST', body: { grant: vb.grant } });
      assert.equal(r.status, 200);
      // a forged grant (signed with another key) and a tampered one
      const [h, p] = vb.grant.split('.');
      const forged = `${h}.${p}.${crypto.createHmac('sha256', 'x'.repeat(32)).update(`${h}.${p}`).digest('base64url')}`;
      r = await httpJson(`${be.url}/act`, { method: 'POST', body: { grant: forged } });
      assert.equal(r.status, 401);
      const body = JSON.parse(Buffer.from(p, 'base64url'));
      body.term += 1;
      r = await httpJson(`${be.url}/act`, { method: 'POST', body: { grant: `${h}.${Buffer.from(JSON.stringify(body)).toString('base64url')}.${vb.grant.split('.')[2]}` } });
      assert.equal(r.status, 401);
      assert.deepEqual(be.done.map((d) => d.by), ['d1/A', 'd2/B']);
      a.close();
      b.close();
    } finally {
      await be.close();
    }
  });

  it('device scope: one leader per device, one for the session', T, async () => {
    const s = uniq('dev');
    const both = { scopes: ['session', 'device'] };
    const ts = [];
    for (const [d, t] of [['d1', 'A'], ['d1', 'B'], ['d2', 'C'], ['d2', 'D']]) ts.push(await open(ident('u', s, d, t), both));
    for (const t of ts) await t.until((x) => x.leader, { scope: 'device' });
    for (const t of ts) await t.until((x) => x.leader && x.term === ts[0].term('session'), { scope: 'session' });
    const devLeaders = new Set(ts.map((t) => holderOf(t.view('device').leader)));
    assert.equal(devLeaders.size, 2, 'one leader per device');
    assert.ok(holderOf(ts[0].view('device').leader).startsWith('d1/'));
    assert.ok(holderOf(ts[2].view('device').leader).startsWith('d2/'));
    const sessLeaders = new Set(ts.map((t) => holderOf(t.view('session').leader)));
    assert.equal(sessLeaders.size, 1, 'one session leader');
    assert.equal(ts.filter((t) => t.role('session') === 'leader').length, 1);
    // leave the device election later, join it again
    const c = ts[2];
    const left = await c.ask('elect', { leave: ['device'] });
    assert.equal(left.ok, true);
    assert.deepEqual(left.scopes.map((x) => x.scope), ['session']);
    const bad = await c.ask('elect', { join: ['tab'] });
    assert.equal(bad.error.code, 'bad_elect');
    const again = await c.ask('elect', { join: ['device'], scores: true });
    assert.deepEqual(again.scopes.map((x) => x.scope).sort(), ['device', 'session']);
    await c.until((x) => x.members.every((m) => typeof m.score === 'number'), { scope: 'device', what: 'scores on request' });
    for (const t of ts) t.close();
  });

  it('the admin view and /metrics show leaders, transitions and counts', T, async () => {
    const s = uniq('admin');
    const a = await open(ident('u', s, 'd1', 'A'));
    const va = await a.until((x) => x.role === 'leader');
    const b = await open(ident('u', s, 'd2', 'B'));
    await b.until((x) => x.role === 'backup');
    await a.ask('resign', { scope: 'session', term: va.term });
    await b.until((x) => x.role === 'leader');
    const r = await httpJson(`${srv.url}/api/admin/sessions/${s}/elections?user=u`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(r.status, 200, r.text);
    const sc = r.body.scopes.find((x) => x.scope === 'session');
    assert.equal(holderOf(sc.leader), 'd2/B');
    assert.equal(sc.term, va.term + 1);
    assert.deepEqual(sc.transitions.map((t) => [t.term, holderOf(t.leader), t.reason]),
      [[va.term, 'd1/A', 'elected'], [va.term + 1, 'd2/B', 'handoff']]);
    assert.equal(sc.members.length, 2);
    assert.ok(sc.members.every((m) => typeof m.score === 'number'));
    const noUser = await httpJson(`${srv.url}/api/admin/sessions/${s}/elections`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(noUser.status, 400);
    const m = await httpJson(`${srv.url}/metrics`);
    for (const reason of ['elected', 'handoff', 'lapse', 'left', 'preempt'])
      assert.ok(metric(m.text, `tabsync_elect_elections_total{reason="${reason}"}`) >= 1, `elections by ${reason}`);
    assert.ok(metric(m.text, 'tabsync_elect_stale_refused_total') >= 3);
    assert.ok(metric(m.text, 'tabsync_elect_tasks_reassigned_total') >= 2);
    // a scope without a leader: its only candidate goes silent, another comes 300 ms later
    const before = metric(m.text, 'tabsync_elect_leaderless_seconds_total');
    assert.ok(before >= 0);
    const s2 = uniq('leaderless');
    const x = await open(ident('u', s2, 'd1', 'X'));
    await x.until((v) => v.role === 'leader');
    x.freeze();
    await x.until((v) => v.leader === null, { what: 'X lapsed, nobody leads' });
    await sleep(300);
    const y = await open(ident('u', s2, 'd2', 'Y'));
    await y.until((v) => v.role === 'leader');
    // the view that made it leader (across nodes, the other node's members
    // may come in a 'join' view right after it)
    const vy = y.views.find((v) => v.v.role === 'leader').v;
    assert.equal(vy.reason, 'elected');
    // counted by the node that saw the scope without a leader when it learns
    // of Y's term: across nodes that is X's node, from Y's node's
    // announcement, which may come a moment after Y's view
    let m2;
    for (const t0 = Date.now(); ; await sleep(20)) {
      m2 = await httpJson(`${srv.url}/metrics`);
      if (metric(m2.text, 'tabsync_elect_leaderless_seconds_total') - before >= 0.3 || Date.now() - t0 > 2000) break;
    }
    assert.ok(metric(m2.text, 'tabsync_elect_leaderless_seconds_total') - before >= 0.3, 'the leaderless time was counted');
    assert.ok(metric(m2.text, 'tabsync_elect_lapses_total') >= 2);
    x.close();
    y.close();
    assert.ok(metric(m.text, 'tabsync_elect_scopes') >= 1);
    // elections are entries of the session log
    const ev = await httpJson(`${srv.url}/api/sessions/u/${s}/events?after=0`, { headers: { authorization: `Bearer ${PUB}` } });
    const elect = (ev.body.entries ?? []).filter((e) => e.type === 'tabsync.elect');
    if (!elect.length) console.log(`# events: ${ev.text.slice(0, 1500)}`);
    assert.deepEqual(elect.map((e) => [e.body.term, e.body.reason]), [[va.term, 'elected'], [va.term + 1, 'handoff']]);
    a.close();
    b.close();
  });

  it(`randomized churn (${CHURN_OPS} operations, seed ${SEED}): one leader per term, no stale action accepted, one agreed leader after settling`, { timeout: 240000 }, async () => {
    const rng = makeRng(SEED);
    const checker = new Checker();
    const SESSIONS = 12;
    const live = new Map(); // session -> [ElectTab]
    const all = [];
    let n = 0, actions = 0, refusedStale = 0;
    const sessions = Array.from({ length: SESSIONS }, (_, i) => `churn-${SEED}-${i}`);
    for (const s of sessions) live.set(s, []);
    const join = async (s) => {
      const t = new ElectTab(srv.url, ident('c', s, `dev${rng.int(3)}`, `t${n++}`), { checker, scores: rng() < 0.2 });
      await t.open();
      all.push(t);
      live.get(s).push(t);
    };
    const act = async (t) => {
      const v = t.view();
      if (!v || v.role !== 'leader') return;
      const ack = await t.ask('state', leaderChange(t, 'session', v.term, actions++)).catch(() => null);
      if (ack?.ok) checker.accept(`c/${t.id.session}`, ack.seq, v.term, t.holder);
      else if (ack?.error?.code === 'stale_term') refusedStale++;
    };
    for (const s of sessions) await join(s);
    for (let i = 0; i < CHURN_OPS; i++) {
      const s = rng.pick(sessions);
      const ts = live.get(s);
      const t = ts.length ? rng.pick(ts) : null;
      const r = rng();
      if (!t || (r < 0.2 && ts.length < 6)) {
        await join(s);
      } else if (r < 0.32) { // leave
        t.close();
        ts.splice(ts.indexOf(t), 1);
      } else if (r < 0.40) { // crash: silent, connection up
        t.freeze();
      } else if (r < 0.46) { // the crashed one comes back
        t.thaw();
      } else if (r < 0.54) { // resign if it leads
        const v = t.view();
        if (v?.role === 'leader') await t.ask('resign', { scope: 'session', term: v.term }).catch(() => null);
      } else if (r < 0.70) { // score change
        await t.ask('metadata', rng() < 0.5 ? { visibility: rng() < 0.5 ? 'hidden' : 'visible' }
          : { battery: { level: Math.round(rng() * 100) / 100, charging: rng() < 0.3 } }).catch(() => null);
      } else if (r < 0.85) { // a leader-only action by whoever believes it leads (stale or not)
        await act(t);
      } else { // a stale action on purpose: an old term
        const v = t.view();
        if (v && v.term > 1) {
          const ack = await t.ask('state', leaderChange(t, 'session', v.term - 1, actions++)).catch(() => null);
          if (ack?.ok) checker.accept(`c/${t.id.session}`, ack.seq, v.term - 1, t.holder);
          else if (ack?.error?.code === 'stale_term') refusedStale++;
        }
      }
      if (rng() < 0.1) await sleep(rng.int(LEASE / 2));
    }
    // settle: crashed tabs leave, the rest keep heartbeating
    for (const [, ts] of live) for (const t of ts.filter((x) => x.frozen)) { t.close(); ts.splice(ts.indexOf(t), 1); }
    await sleep(2 * LEASE + 4 * SWEEP);
    const problems = checker.check();
    for (const [s, ts] of live) {
      if (!ts.length) continue;
      const views = ts.map((t) => t.view());
      const terms = new Set(views.map((v) => v?.term));
      const leaders = new Set(views.map((v) => holderOf(v?.leader)));
      if (terms.size !== 1 || leaders.size !== 1) problems.push(`${s}: tabs disagree: ${JSON.stringify(views.map((v) => [v?.term, holderOf(v?.leader), v?.role]))}`);
      const lead = ts.filter((t) => t.role() === 'leader');
      if (lead.length !== 1) problems.push(`${s}: ${lead.length} tabs say leader with ${ts.length} live candidates`);
    }
    for (const t of all) problems.push(...t.violations);
    // the session logs: every transfer came in time, and the terms of the
    // log never go back. A voluntary transfer (handoff, preemption, rotation,
    // demotion) leaves no gap longer than a lease. After a lapse or a leader
    // whose connection went, the gap can be longer by design when the only
    // candidates left are stalled (docs/ELECTION.md "When the server acts":
    // a member that lapsed is no candidate for 2 x lease, doubling with each
    // lapse in a row) — churn freezes leaders, so this happens (seed
    // 600045414: "left" after 1,069 ms at a 600 ms lease). Those get four
    // leases: a stall of two lapses in a row of the best candidate; a scope
    // stuck without a leader still fails.
    let transfers = 0;
    for (const sname of sessions) {
      const ev = await httpJson(`${srv.url}/api/sessions/c/${sname}/events?after=0&limit=1000`, { headers: { authorization: `Bearer ${PUB}` } });
      assert.equal(ev.status, 200, ev.text);
      assert.equal(ev.body.more, false);
      let last = 0;
      for (const e of ev.body.entries.filter((x) => x.type === 'tabsync.elect' && x.body.scope === 'session')) {
        if (e.body.term <= last) problems.push(`${sname}: log term ${e.body.term} after ${last}: ${JSON.stringify(ev.body.entries.filter((x) => x.type === 'tabsync.elect').map((x) => [x.seq, x.body.term, x.body.reason, x.body.leader, x.id]))}`);
        last = e.body.term;
        if (['handoff', 'left', 'lapse', 'preempt', 'rotation', 'demotion'].includes(e.body.reason)) {
          transfers++;
          const bound = ['left', 'lapse'].includes(e.body.reason) ? 4 * LEASE : LEASE;
          if (e.body.leaderless_ms > bound) problems.push(`${sname}: ${e.body.reason} to term ${e.body.term} after ${e.body.leaderless_ms} ms without a leader (bound ${bound} ms)`);
        }
      }
    }
    assert.ok(transfers > 0, 'transfers happened');
    for (const t of all) t.close();
    console.log(`# churn seed ${SEED}: ${CHURN_OPS} ops, ${all.length} tabs, ${checker.leaders.size} terms, ${[...checker.accepted.values()].reduce((a, l) => a + l.length, 0)} leader actions accepted, ${refusedStale} refused stale`);
    assert.deepEqual(problems, [], `seed ${SEED} (rerun with TS_SEED=${SEED})`);
    if (CHURN_OPS >= 200) assert.ok(refusedStale > 0, 'stale actions were tried and refused');
  });
});

describe('leader election: rotation and demotion', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ extra: [...BASE_FLAGS, '--elect-lease', String(LEASE), '--elect-max-tenure', '900', '--elect-min-tenure', '0'] });
  });
  after(async () => { await srv?.stop(); });

  it('rotates leadership after the maximum tenure', T, async () => {
    const s = uniq('rot');
    const a = await new ElectTab(srv.url, ident('u', s, 'd1', 'A')).open();
    const va = await a.until((x) => x.role === 'leader');
    const b = await new ElectTab(srv.url, ident('u', s, 'd2', 'B')).open();
    const vb = await b.until((x) => x.role === 'leader', { what: 'B leads after A\'s tenure' });
    assert.equal(vb.reason, 'rotation');
    assert.equal(vb.term, va.term + 1);
    // A, rotated out, does not take it back by preemption before another tenure
    // (its step_down view of the old term may still be its last one here)
    const back = await a.until((x) => x.role === 'leader' && x.term > vb.term, { what: 'A leads again at the next rotation' });
    assert.equal(back.reason, 'rotation');
    a.close();
    b.close();
    assert.ok(back.since - vb.since >= 800, `a whole tenure later: ${back.since - vb.since} ms`);
    assert.deepEqual([...a.violations, ...b.violations], []);
  });

  it('demotes a leader whose heartbeats come late', T, async () => {
    // The scenario needs heartbeats late but within the lease; on a loaded
    // machine a sleep can overrun the lease, and the server rightly sees a
    // lapse instead. Such a run did not test demotion: it is run again (at
    // most three times); a lapse after heartbeats that were all within the
    // lease is a failure.
    for (let attempt = 1; ; attempt++) {
      const s = uniq('late');
      const a = await new ElectTab(srv.url, ident('u', s, 'd1', 'A'), { hb: false }).open();
      const b = await new ElectTab(srv.url, ident('u', s, 'd2', 'B')).open();
      try {
        const va = await a.until((x) => x.role === 'leader');
        await b.until((x) => x.role === 'backup');
        // heartbeats every 0.35 s against hb_ms 0.2 s: late, within the lease
        let last = Date.now(), maxGap = 0;
        for (let i = 0; i < 4 && a.role() === 'leader'; i++) {
          await sleep(Math.floor(va.hb_ms * 1.75));
          maxGap = Math.max(maxGap, Date.now() - last);
          await a.hb('session', va.term);
          last = Date.now();
        }
        const vb = await b.until((x) => x.role === 'leader', { what: 'B leads after A\'s late heartbeats' });
        if (vb.reason === 'lapse' && maxGap >= va.lease_ms && attempt < 3) continue; // not this test's case
        assert.equal(vb.reason, 'demotion', `heartbeat gaps up to ${maxGap} ms, lease ${va.lease_ms} ms`);
        assert.equal(vb.term, va.term + 1);
        assert.deepEqual([...a.violations, ...b.violations], []);
        return;
      } finally {
        a.close();
        b.close();
      }
    }
  });
});
