// Type-checked by bundle.test.mjs against dist/index.d.ts and dist/debug.d.ts
// (tsc --noEmit --strict): how an application uses the library, and a few
// mistakes the types must catch (each @ts-expect-error line must fail).
import { createClient, PROTOCOL, type Change, type ElectView, type TabsyncClient } from '../dist/index.js';
import { mountDebugConsole } from '../dist/debug.js';

const ts: TabsyncClient = createClient({
  url: 'http://127.0.0.1:3000',
  token: async ({ device, tab, reason }) => `${device.id}.${device.fingerprint}.${tab}.${reason}`,
  elect: { scopes: ['session', 'device'], scores: true },
  storage: 'memory',
  conflicts: ({ conflicts }) => (conflicts.length > 1 ? 'drop' : 'rebase'),
  reconnect: { minDelayMs: 250, maxDelayMs: 8000, jitter: 0.5 },
  presence: { intervalMs: 1000, poorIntervalMs: 5000 },
  io: { transports: ['websocket'] },
});
const p: 4 = PROTOCOL;

async function main(): Promise<void> {
  await ts.ready;
  const who: string | null = ts.user;
  const off = ts.subscribe('/todos', (value, { path, source }) => {
    if (source === 'remote') console.log(path, value);
  });
  const c: Change = ts.update([
    { op: 'add', path: '/todos/-', value: { text: 'milk', done: false } },
    { op: 'incr', path: '/counters/open', value: 1 },
    { op: 'sadd', path: '/tags', value: 'home' },
  ], { base: 'current' });
  const settled = await c.done;
  if (settled.status === 'rejected') console.log(settled.error?.code, settled.conflict?.resolution);
  ts.update({ merge: { title: 'Groceries' } }, { lead: 'session' });
  const ack = await ts.publish('chat.msg', { text: 'hi' }, { prio: 'event', to: 'session', cid: 'c-1' });
  if (ack.ok) console.log(ack.seq);
  else console.log(ack.error.code);

  const conn = ts.connection;
  const rtt: number | null = conn.rttMs;
  if (conn.status === 'reconnecting') console.log(conn.nextRetryMs, conn.lastError?.code);

  ts.election.whileLeader('session', async ({ term, signal }) => {
    while (!signal.aborted) await new Promise((r) => setTimeout(r, 1000 + term));
  });
  ts.election.onTask('refresh', async ({ progress, signal }) => {
    progress(50);
    return signal.aborted ? null : { ok: true };
  });
  if (ts.election.isLeader()) await ts.election.declareTask('refresh', { stallMs: 5000 });
  const v: ElectView | null = ts.election.view('device');
  const term: number | null = ts.election.term();
  await ts.election.resign('session');

  ts.presence.set({ page: '/cart' });
  for (const [key, peer] of ts.presence.peers) console.log(key, peer.tab, peer.state, peer.at);

  const offs = [
    ts.on('status', (s) => console.log(s.status, s.quality)),
    ts.on('quality', ({ quality, reason }) => console.log(quality, reason)),
    ts.on('state', ({ state, source }) => console.log(state, source)),
    ts.on('event', (e) => console.log(e.type, e.seq, e.from.tab)),
    ts.on('change', (e) => console.log(e.seq, e.effects.length)),
    ts.on('settled', (ch) => console.log(ch.mut)),
    ts.on('leadership', ({ scope, leading, term: t }) => console.log(scope, leading, t)),
    ts.on('presence', (peers) => console.log(peers.size)),
    ts.on('log', (l) => console.log(l.dir, l.name, l.cid, l.summary)),
    ts.on('error', (e) => console.log(e.code)),
  ];
  for (const o of offs) o();
  off();

  const dbg = mountDebugConsole(ts, { open: true });
  dbg.toggle();
  dbg.destroy();
  console.log(who, rtt, v, term, p, ts.queue().map((q) => q.attempts));
  await ts.close();
}
void main;

// mistakes the types catch
// @ts-expect-error: token is required
createClient({ url: 'x' });
// @ts-expect-error: no such op
ts.update([{ op: 'bogus', path: '/a' }]);
// @ts-expect-error: incr takes a number
ts.update([{ op: 'incr', path: '/n', value: 'one' }]);
// @ts-expect-error: no such scope
ts.election.isLeader('tab');
// @ts-expect-error: no such event
ts.on('nonsense', () => {});
// @ts-expect-error: the quality may be poor or offline too
const q: 'good' = ts.connection.quality;
void q;
