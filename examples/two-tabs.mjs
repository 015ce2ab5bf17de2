// two-tabs.mjs - two tabs of one session, from a terminal: the first
// publishes, the second prints what it receives. Against `make run` (which
// starts tabsyncd with --dev): the token comes from /api/dev/token.
//
//   node examples/two-tabs.mjs            (TABSYNC_URL, default http://127.0.0.1:3000)
//
// Exit status 0 when the second tab received the envelope; 1 with the reason
// otherwise (the server is not running, not in --dev mode, refused the tab).
// socket.io-client resolves from this file's folder, so it runs from any
// directory once `make run` (or `npm install`) has put it in node_modules.
import { io } from 'socket.io-client';

const url = process.env.TABSYNC_URL || 'http://127.0.0.1:3000';
const fail = (why) => {
  console.error(`two-tabs: ${why}`);
  process.exit(1);
};
setTimeout(() => fail('nothing received within 10 s'), 10000).unref();

const q = new URLSearchParams({ user: 'me', session: 'demo', device: 'laptop', ttl: '600' });
let res;
try {
  res = await fetch(`${url}/api/dev/token?${q}`);
} catch (e) {
  fail(`cannot reach ${url}: ${e.cause?.code ?? e.message} (is \`make run\` running?)`);
}
if (!res.ok) fail(`GET /api/dev/token answered ${res.status}: ${await res.text()} (is tabsyncd started with --dev?)`);
const { token } = await res.json();

const tab = (id) => {
  const s = io(`${url}/session`, {
    auth: { token, device: { id: 'laptop', fingerprint: 'laptop', type: 'browser' }, tab: { id }, proto: 4 },
    reconnection: false,
  });
  s.on('connect_error', (e) => fail(`tab ${id} refused: ${e.message} ${JSON.stringify(e.data ?? '')}`));
  return s;
};
const a = tab('a'), b = tab('b');
b.on('event', (e) => {
  console.log('b received', JSON.stringify(e));
  a.close();
  b.close();
  process.exit(0);
});
let ready = 0;
const go = () => {
  if (++ready < 2) return;
  a.emit('publish', { v: 4, type: 'hello', id: `hello-${Date.now()}`, body: 'hi' }, (ack) => {
    if (!ack.ok) fail(`publish refused: ${JSON.stringify(ack.error)}`);
  });
};
a.on('welcome', go);
b.on('welcome', go);
