// The socket.io-client integration suite, shared by client.test.mjs (JSON
// parser) and msgpack.test.mjs (socket.io-msgpack-parser on both sides).
// Runs every check three times: websocket only, polling only, and polling
// then upgrade to websocket. The server runs the test app (README.md) with
// connection state recovery on, so every server event without an ack carries
// its offset as the last argument (asserted and stripped by `strip`).
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { startServer, once, sleep, within } from './harness.mjs';

const T = { timeout: 20000 };

export const MODES = [
  { name: 'websocket', transports: ['websocket'] },
  { name: 'polling', transports: ['polling'] },
  { name: 'polling+upgrade', transports: undefined, upgrade: true },
];

/** Binary values become {bin: hex} so deepStrictEqual compares bytes and type. */
export function norm(v) {
  if (Buffer.isBuffer(v)) return { bin: v.toString('hex') };
  if (v instanceof ArrayBuffer) return { bin: Buffer.from(v).toString('hex') };
  if (ArrayBuffer.isView(v)) return { bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = norm(v[k]);
    return o;
  }
  return v;
}

/** Remove the recovery offset the server appends to events without ack. */
function strip(args) {
  assert.ok(args.length >= 1, 'event without the recovery offset argument');
  const off = args[args.length - 1];
  assert.equal(typeof off, 'string', `last argument should be the offset string, got ${JSON.stringify(off)}`);
  assert.ok(off.length > 0, 'empty offset');
  return args.slice(0, -1);
}

/** Next `name` event of sock, offset stripped. */
async function next(sock, name, ms = 5000) {
  return strip(await once(sock, name, ms));
}

/** Accumulate every `name` event of sock (offsets stripped). */
function collect(sock, name) {
  const got = [];
  const waiters = [];
  sock.on(name, (...args) => {
    got.push(strip(args));
    for (const w of [...waiters]) w();
  });
  const waitFor = (n, ms = 5000) => within(new Promise((resolve) => {
    const check = () => {
      if (got.length >= n) {
        waiters.splice(waiters.indexOf(check), 1);
        resolve(got);
      }
    };
    waiters.push(check);
    check();
  }), ms, `${n} '${name}' events (got ${got.length})`);
  Object.defineProperty(got, 'waitFor', { value: waitFor, enumerable: false });
  return got;
}

/** Emit with an ack; resolves with ALL ack arguments. */
function ack(sock, event, ...args) {
  return within(new Promise((resolve) => sock.emit(event, ...args, (...answer) => resolve(answer))),
    5000, `ack of '${event}'`);
}

/** Round trip on sock: every packet the server queued for it before now has arrived. */
async function barrier(sock) {
  const [r] = await ack(sock, 'message-with-ack', 'barrier');
  assert.equal(r, 'barrier');
}

const JSON_CASES = [
  ['string', 'hello'],
  ['numbers', 0, 1, -1, 3.25, -1234567.5, 2 ** 31, -(2 ** 31), 2 ** 53 - 1, -(2 ** 53 - 1), 1e-7, -2.5e-300, 123456.789],
  ['null and booleans', null, true, false],
  ['unicode', 'héllo wörld', '日本語テキスト', 'emoji 🎉🚀 and surrogate 𝄞', 'quote " backslash \\ slash / nl \n tab \t', '\u0000\u001f'],
  ['nested', { a: 1, b: { c: [1, 2, { d: 'e' }], f: null, g: true }, 'ключ': 'значение', '': 'empty key' }],
  ['arrays', [], [[]], [1, 'two', [3, [4, [5]]], { six: 6 }], {}],
  ['many args', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  ['large string', 'x'.repeat(50000)],
];

/**
 * Register the whole client suite. opts: { title, parser (socket.io parser
 * object or undefined), serverOpts (extra startServer options, e.g. {parser:'msgpack'}) }.
 */
export function clientSuite({ title, parser, serverOpts = {} }) {
  describe(title, () => {
    let server;
    let shortServer; // --recovery-window 1000

    before(async () => {
      server = await startServer({ ...serverOpts });
      shortServer = await startServer({ ...serverOpts, recoveryWindow: 1000 });
    });
    after(async () => {
      await server?.stop();
      await shortServer?.stop();
    });

    for (const mode of MODES) {
      describe(`over ${mode.name}`, () => {
        const sockets = [];

        function client(nsp = '/', extra = {}, srv = server) {
          const opts = {
            forceNew: true,
            reconnectionDelay: 100,
            reconnectionDelayMax: 200,
            timeout: 5000,
            ...(mode.transports ? { transports: mode.transports } : {}),
            ...(parser ? { parser } : {}),
            ...extra,
          };
          const s = io(srv.url + nsp, opts);
          sockets.push(s);
          s.auths = collect(s, 'auth'); // registered before any I/O
          return s;
        }

        function sub(sock, nsp, opts = {}) {
          const s = sock.io.socket(nsp, opts);
          sockets.push(s);
          s.auths = collect(s, 'auth');
          return s;
        }

        /** Wait for connect (and, in upgrade mode, for the websocket upgrade); returns the auth args. */
        async function ready(sock, { waitUpgrade = true } = {}) {
          await within(new Promise((resolve, reject) => {
            if (sock.connected) return resolve();
            sock.once('connect', resolve);
            sock.once('connect_error', (e) => reject(new Error(`connect_error: ${e.message}`)));
          }), 8000, 'connect');
          const [auth] = await sock.auths.waitFor(1, 8000);
          if (mode.upgrade && waitUpgrade && sock.io.engine.transport.name !== 'websocket') {
            await once(sock.io.engine, 'upgrade', 8000);
          }
          return auth;
        }

        function connectError(sock) {
          return within(new Promise((resolve, reject) => {
            sock.once('connect', () => reject(new Error('connected, expected connect_error')));
            sock.once('connect_error', resolve);
          }), 8000, 'connect_error');
        }

        afterEach(() => {
          for (const s of sockets.splice(0)) {
            s.disconnect();
            s.io.disconnect();
          }
        });

        it('connects, receives its auth object, uses the expected transport', T, async () => {
          const auth = { token: 'abc', n: 1, nested: { x: [1, 2], u: 'ü' } };
          const s = client('/', { auth });
          const initial = await new Promise((resolve) => s.io.once('open', () => resolve(s.io.engine.transport.name)));
          let upgraded = null;
          if (mode.upgrade) s.io.engine.once('upgrade', (t) => { upgraded = t.name; });
          const got = await ready(s);
          assert.deepStrictEqual(got, [auth]);
          assert.equal(typeof s.id, 'string');
          assert.ok(s.id.length > 0);
          assert.notEqual(s.id, s.io.engine.id, 'namespace socket id must differ from the Engine.IO sid');
          if (mode.upgrade) {
            assert.equal(initial, 'polling');
            assert.equal(upgraded, 'websocket');
            assert.equal(s.io.engine.transport.name, 'websocket');
          } else {
            assert.equal(initial, mode.transports[0]);
            await barrier(s);
            assert.equal(s.io.engine.transport.name, mode.transports[0]);
          }
        });

        it('connects without auth: auth event carries {}', T, async () => {
          const s = client('/');
          assert.deepStrictEqual(await ready(s), [{}]);
        });

        it('JSON arguments round-trip exactly (event and ack)', T, async () => {
          const s = client('/');
          await ready(s);
          for (const args of JSON_CASES) {
            const back = next(s, 'message-back');
            s.emit('message', ...args);
            assert.deepStrictEqual(await back, args, `event ${args[0]}`);
            assert.deepStrictEqual(await ack(s, 'message-with-ack', ...args), args, `ack ${args[0]}`);
          }
        });

        it('events keep their order (200 events, sent before and during upgrade)', T, async () => {
          const s = client('/');
          const got = collect(s, 'message-back');
          s.emit('message', 'first'); // buffered by the client until connected
          await ready(s, { waitUpgrade: false });
          for (let i = 0; i < 199; i++) s.emit('message', i, { i });
          await got.waitFor(200, 10000);
          assert.deepStrictEqual(got[0], ['first']);
          for (let i = 0; i < 199; i++) assert.deepStrictEqual(got[i + 1], [i, { i }]);
        });

        it('binary arguments and nested binary round-trip', T, async () => {
          const s = client('/');
          await ready(s);
          const big = Buffer.alloc(70000);
          for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
          const args = [
            Buffer.from([1, 2, 3]),
            'text between',
            { nested: { deep: Buffer.from([0, 255, 128]) }, list: [Buffer.from('abc'), 2, null] },
            Buffer.alloc(0),
            big,
          ];
          const back = once(s, 'message-back');
          s.emit('message', ...args);
          assert.deepStrictEqual(norm(strip(await back)), norm(args));
          // binary in an ack (BINARY_ACK)
          assert.deepStrictEqual(norm(await ack(s, 'message-with-ack', ...args)), norm(args));
          // binary emitted by the server
          const bin = once(s, 'binary');
          assert.deepStrictEqual(await ack(s, 'emit-binary'), ['ok']);
          assert.deepStrictEqual(norm(strip(await bin)),
            norm([Buffer.from([1, 2, 3]), { nested: Buffer.from([4, 5]), n: 1 }]));
        });

        it('acks client -> server, including an empty ack', T, async () => {
          const s = client('/');
          await ready(s);
          assert.deepStrictEqual(await ack(s, 'message-with-ack'), []);
          assert.deepStrictEqual(await ack(s, 'message-with-ack', 1, '2', { 3: [false] }), [1, '2', { 3: [false] }]);
          // many concurrent acks, each answered once with its own value
          const all = await Promise.all(Array.from({ length: 30 }, (_, i) => ack(s, 'message-with-ack', i)));
          assert.deepStrictEqual(all, Array.from({ length: 30 }, (_, i) => [i]));
        });

        it('acks server -> client (server-ack)', T, async () => {
          const s = client('/');
          await ready(s);
          const seen = [];
          s.on('question', (a, b, cb) => {
            seen.push([a, b]);
            cb(a + 1, `${b}y`, { ok: true });
          });
          assert.deepStrictEqual(await ack(s, 'server-ack', 'question', 41, 'x'), [42, 'xy', { ok: true }]);
          assert.deepStrictEqual(seen, [[41, 'x']]);
        });

        it('server ack timeout fires when the client never answers', T, async () => {
          const s = client('/');
          await ready(s);
          let asked = 0;
          s.on('never', () => { asked++; }); // no callback call: no ACK
          s.on('answer-me', (cb) => cb('yes', 42));
          const t0 = Date.now();
          assert.deepStrictEqual(await ack(s, 'server-ack-timeout', 300, 'never'), ['timeout']);
          assert.ok(Date.now() - t0 >= 250, 'timeout fired too early');
          assert.equal(asked, 1, 'the event reached the client');
          assert.deepStrictEqual(await ack(s, 'server-ack-timeout', 3000, 'answer-me'), ['answered', 'yes', 42]);
        });

        it('rooms: join, to-room, to-room-all, broadcast-except, rooms, leave', T, async () => {
          const a = client('/');
          const b = client('/');
          const c = client('/');
          await Promise.all([ready(a), ready(b), ready(c)]);
          const ga = collect(a, 'room-ev');
          const gb = collect(b, 'room-ev');
          const gc = collect(c, 'room-ev');
          assert.deepStrictEqual(await ack(a, 'join', 'room1'), ['ok']);
          assert.deepStrictEqual(await ack(b, 'join', 'room1'), ['ok']);
          assert.deepStrictEqual(await ack(b, 'join', 'ex'), ['ok']);
          assert.deepStrictEqual(await ack(a, 'rooms'), [[a.id, 'room1'].sort()]);
          assert.deepStrictEqual(await ack(b, 'rooms'), [[b.id, 'ex', 'room1'].sort()]);
          assert.deepStrictEqual(await ack(c, 'rooms'), [[c.id]]);

          // to-room: members except the sender
          a.emit('to-room', 'room1', 'room-ev', 'from-a', { n: 1 });
          await gb.waitFor(1);
          await Promise.all([barrier(a), barrier(c)]);
          assert.deepStrictEqual(gb, [['from-a', { n: 1 }]]);
          assert.deepStrictEqual(ga, []);
          assert.deepStrictEqual(gc, []);

          // to-room-all from a non-member: every member
          c.emit('to-room-all', 'room1', 'room-ev', 'all');
          await ga.waitFor(1);
          await gb.waitFor(2);
          await barrier(c);
          assert.deepStrictEqual(ga, [['all']]);
          assert.deepStrictEqual(gb[1], ['all']);
          assert.deepStrictEqual(gc, []);

          // to-room-all from a member reaches the sender too
          a.emit('to-room-all', 'room1', 'room-ev', 'all2');
          await ga.waitFor(2);
          await gb.waitFor(3);
          assert.deepStrictEqual(ga[1], ['all2']);

          // broadcast-except: room1 minus the 'ex' room
          c.emit('broadcast-except', 'room1', 'ex', 'room-ev', 'except');
          await ga.waitFor(3);
          await Promise.all([barrier(b), barrier(c)]);
          assert.deepStrictEqual(ga[2], ['except']);
          assert.equal(gb.length, 3);
          assert.deepStrictEqual(gc, []);

          // a socket's own id is a room
          c.emit('to-room', a.id, 'room-ev', 'direct');
          await ga.waitFor(4);
          assert.deepStrictEqual(ga[3], ['direct']);

          // leave stops delivery
          assert.deepStrictEqual(await ack(b, 'leave', 'room1'), ['ok']);
          assert.deepStrictEqual(await ack(b, 'rooms'), [[b.id, 'ex'].sort()]);
          c.emit('to-room-all', 'room1', 'room-ev', 'after-leave');
          await ga.waitFor(5);
          await barrier(b);
          assert.deepStrictEqual(ga[4], ['after-leave']);
          assert.equal(gb.length, 3, 'b left room1 but still got its events');
        });

        it('broadcast reaches every other socket of the namespace, not the sender', T, async () => {
          const a = client('/');
          const b = client('/');
          const c = client('/');
          const other = client('/custom'); // another namespace must not see it
          await Promise.all([ready(a), ready(b), ready(c), ready(other)]);
          const ga = collect(a, 'bc');
          const go = collect(other, 'bc');
          const nb = next(b, 'bc');
          const nc = next(c, 'bc');
          a.emit('broadcast', 'bc', 'hi', [1, { two: 2 }]);
          assert.deepStrictEqual(await nb, ['hi', [1, { two: 2 }]]);
          assert.deepStrictEqual(await nc, ['hi', [1, { two: 2 }]]);
          await Promise.all([barrier(a), barrier(other)]);
          assert.deepStrictEqual(ga, []);
          assert.deepStrictEqual(go, []);
        });

        it('several namespaces over one connection (/, /custom, /dyn-abc)', T, async () => {
          const root = client('/', { auth: { ns: 'root' } });
          let opens = 0;
          root.io.on('open', () => { opens++; });
          await ready(root);
          const engineId = root.io.engine.id;
          const custom = sub(root, '/custom', { auth: { ns: 'custom' } });
          const dyn = sub(root, '/dyn-abc', { auth: { ns: 'dyn' } });
          assert.deepStrictEqual(await ready(custom), [{ ns: 'custom' }]);
          assert.deepStrictEqual(await ready(dyn), [{ ns: 'dyn' }]);
          assert.equal(custom.io, root.io);
          assert.equal(custom.io.engine.id, engineId);
          assert.equal(dyn.io.engine.id, engineId);
          assert.equal(opens, 1, 'one Engine.IO connection');
          assert.notEqual(custom.id, root.id);
          assert.notEqual(dyn.id, root.id);

          // each namespace answers on its own socket only
          const rootBacks = collect(root, 'message-back');
          const dynBacks = collect(dyn, 'message-back');
          const cb = next(custom, 'message-back');
          custom.emit('message', 'to-custom', 1);
          assert.deepStrictEqual(await cb, ['to-custom', 1]);
          assert.deepStrictEqual(await ack(dyn, 'message-with-ack', 'dyn-ack'), ['dyn-ack']);
          dyn.emit('message', 'to-dyn');
          await dynBacks.waitFor(1);
          assert.deepStrictEqual(dynBacks, [['to-dyn']]);
          await barrier(root);
          assert.deepStrictEqual(rootBacks, []);

          // rooms are per namespace
          assert.deepStrictEqual(await ack(custom, 'join', 'shared'), ['ok']);
          assert.deepStrictEqual(await ack(root, 'rooms'), [[root.id]]);
          assert.deepStrictEqual(await ack(custom, 'rooms'), [[custom.id, 'shared'].sort()]);
          // disconnecting one namespace keeps the others
          custom.disconnect();
          assert.deepStrictEqual(await ack(root, 'message-with-ack', 'still'), ['still']);
          assert.deepStrictEqual(await ack(dyn, 'message-with-ack', 'here'), ['here']);
          assert.equal(root.io.engine.id, engineId);
        });

        it('dynamic namespaces: /dyn-[a-z0-9]+ accepted, others invalid', T, async () => {
          const ok = client('/dyn-x9');
          assert.deepStrictEqual(await ready(ok), [{}]);
          assert.deepStrictEqual(await ack(ok, 'message-with-ack', 'dyn'), ['dyn']);
          const bad = client('/dyn-ABC');
          const err = await connectError(bad);
          assert.equal(err.message, 'Invalid namespace');
        });

        it('connect errors carry message and data; the connection stays usable', T, async () => {
          const r = client('/refuse');
          const e1 = await connectError(r);
          assert.equal(e1.message, 'not allowed');
          assert.deepStrictEqual(e1.data, { reason: 'test', code: 42 });
          assert.equal(r.active, false, 'refused socket must not retry');
          // the same Engine.IO connection can still join another namespace
          const root = sub(r, '/');
          assert.deepStrictEqual(await ready(root), [{}]);

          const a = client('/', { auth: { refuse: 'go away', x: 1 } });
          const e2 = await connectError(a);
          assert.equal(e2.message, 'go away');
          assert.deepStrictEqual(e2.data, { code: 403 });

          const n = client('/nope');
          const e3 = await connectError(n);
          assert.equal(e3.message, 'Invalid namespace');
          assert.equal(e3.data, undefined);
          await sleep(300);
          assert.equal(n.connected, false);
        });

        it("server-initiated disconnect: 'io server disconnect', no reconnection, other namespaces stay", T, async () => {
          const s = client('/');
          await ready(s);
          const custom = sub(s, '/custom');
          await ready(custom);
          const engineId = s.io.engine.id;
          let connects = 0;
          s.on('connect', () => { connects++; });
          const d = once(s, 'disconnect');
          s.emit('disconnect-me');
          const [reason] = await d;
          assert.equal(reason, 'io server disconnect');
          // only that namespace socket: the connection and /custom keep working
          assert.deepStrictEqual(await ack(custom, 'message-with-ack', 'alive'), ['alive']);
          assert.equal(custom.io.engine.id, engineId);
          await sleep(600);
          assert.equal(connects, 0);
          assert.equal(s.connected, false);
          assert.equal(s.active, false);
          assert.equal(custom.connected, true);
        });

        it('close-all disconnects every namespace of the connection and closes it', T, async () => {
          // Node: socket.disconnect(true) sends DISCONNECT to each namespace socket of
          // the connection, then closes the Engine.IO session.
          const s = client('/');
          await ready(s);
          const custom = sub(s, '/custom');
          await ready(custom);
          const other = client('/');
          await ready(other);
          let reconnects = 0;
          s.io.on('reconnect_attempt', () => { reconnects++; });
          const engine = s.io.engine;
          const engineClosed = once(engine, 'close', 5000);
          const d1 = once(s, 'disconnect');
          const d2 = once(custom, 'disconnect');
          s.emit('close-all');
          assert.equal((await d1)[0], 'io server disconnect');
          assert.equal((await d2)[0], 'io server disconnect');
          await engineClosed;
          await sleep(600);
          assert.equal(reconnects, 0);
          assert.equal(s.connected, false);
          assert.equal(custom.connected, false);
          // other connections are not affected
          assert.deepStrictEqual(await ack(other, 'message-with-ack', 'unaffected'), ['unaffected']);
        });

        it('client-initiated disconnect is seen by the server', T, async () => {
          const a = client('/');
          await ready(a);
          const aCustom = sub(a, '/custom');
          await ready(aCustom);
          const b = client('/');
          await ready(b);
          const bCustom = sub(b, '/custom');
          await ready(bCustom);
          const rootPackets = [];
          a.io.on('packet', (p) => {
            if (p.nsp === '/' && p.type === 2) rootPackets.push(p.data[0]);
          });
          assert.deepStrictEqual(await ack(a, 'join', 'gone-room'), ['ok']);
          a.disconnect();
          await barrier(aCustom); // the server has handled a's DISCONNECT by now
          const got = next(aCustom, 'marker');
          b.emit('broadcast', 'ghost', 1);
          b.emit('to-room-all', 'gone-room', 'ghost', 2);
          await barrier(b);
          bCustom.emit('broadcast', 'marker', 'done');
          assert.deepStrictEqual(await got, ['done']);
          assert.deepStrictEqual(rootPackets, [], 'server still sent to a disconnected namespace socket');
          assert.equal(aCustom.connected, true);
        });

        it('connection state recovery: same id, missed events in order, rooms restored', T, async () => {
          const a = client('/', { reconnectionDelay: 1000, reconnectionDelayMax: 1000, randomizationFactor: 0 });
          const b = client('/');
          await Promise.all([ready(a), ready(b)]);
          assert.deepStrictEqual(await ack(a, 'join', 'r'), ['ok']);
          assert.deepStrictEqual(await ack(a, 'recovered'), [false]);
          const oldId = a.id;
          const missed = collect(a, 'missed');
          // one event while connected, so the client has an offset
          b.emit('to-room-all', 'r', 'missed', 0);
          await missed.waitFor(1);

          const d = once(a, 'disconnect');
          a.io.engine.close();
          await d;
          assert.equal(a.connected, false);
          const reconnected = once(a, 'connect', 8000);
          b.emit('to-room-all', 'r', 'missed', 1, { n: 'one' });
          b.emit('to-room-all', 'r', 'missed', 2, [2]);
          b.emit('to-room-all', 'r', 'missed', 3, 'three');
          await barrier(b);
          assert.equal(a.connected, false, 'reconnected too early for the test to mean anything');
          await reconnected;
          assert.equal(a.recovered, true);
          assert.equal(a.id, oldId);
          await missed.waitFor(4);
          assert.deepStrictEqual(missed, [[0], [1, { n: 'one' }], [2, [2]], [3, 'three']]);
          assert.deepStrictEqual(await ack(a, 'recovered'), [true]);
          const [rooms] = await ack(a, 'rooms');
          assert.ok(rooms.includes('r'), `rooms after recovery: ${rooms}`);
          assert.deepStrictEqual(rooms, [oldId, 'r'].sort());
          // and it still receives room traffic
          b.emit('to-room-all', 'r', 'missed', 4);
          await missed.waitFor(5);
          assert.deepStrictEqual(missed[4], [4]);
        });

        it('connection state recovery is refused after the window (--recovery-window 1000)', T, async () => {
          const a = client('/', { reconnectionDelay: 1600, reconnectionDelayMax: 1600, randomizationFactor: 0 }, shortServer);
          await ready(a);
          assert.deepStrictEqual(await ack(a, 'join', 'r'), ['ok']);
          const oldId = a.id;
          const got = next(a, 'tick');
          a.emit('message-with-ack', 'x', () => {});
          a.emit('to-room-all', 'r', 'tick', 1);
          await got;
          const d = once(a, 'disconnect');
          const t0 = Date.now();
          a.io.engine.close();
          await d;
          await once(a, 'connect', 8000);
          assert.ok(Date.now() - t0 >= 1400, 'reconnected before the window elapsed');
          assert.equal(a.recovered, false);
          assert.notEqual(a.id, oldId);
          assert.deepStrictEqual(await ack(a, 'recovered'), [false]);
          assert.deepStrictEqual(await ack(a, 'rooms'), [[a.id]]);
        });
      });
    }
  });
}
