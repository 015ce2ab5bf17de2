// Delivery classes on a connection's outbound queue (docs/ARCHITECTURE.md
// "Delivery classes"): a raw WebSocket peer stops reading (its net.Socket is
// paused), the test app queues packets for it in every class through
// `to-room-class` and `emit-class`, then the peer reads again. A SECURITY
// packet overtakes the queued events, equal classes keep their order,
// presence and telemetry with one key arrive coalesced (only the latest),
// a packet with attachments stays whole, and nothing else is lost. A peer
// that never reads again is cut off (--max-send-queue) with the server's
// memory bounded.
//
// tabsyncd only (classes, the test-app events and /metrics are not the
// Node reference's): skipped with TS_TARGET=node.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { io } from 'socket.io-client';
import { startServer, IS_NODE, sleep, within } from './harness.mjs';
import { encodeFrame } from './raw.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only (delivery classes, metrics)' } : {};
const EIO_WS = '/socket.io/?EIO=4&transport=websocket';

// See daemon.test.mjs: keep ASan's quarantine from inflating RSS.
process.env.ASAN_OPTIONS = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16']
  .filter(Boolean).join(':');

// ---- helpers ----------------------------------------------------------------

function metricsText(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

async function metrics(port) {
  const text = await metricsText(port);
  return {
    queued: metric(text, 'tabsync_send_queue_bytes'),
    coalesced: metric(text, 'tabsync_send_coalesced_total'),
    reordered: metric(text, 'tabsync_send_reordered_total'),
    received: metric(text, 'tabsync_sio_packets_received_total'),
    cut: metric(text, 'tabsync_errors_total{kind="slow_consumer"}'),
  };
}

function memOf(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function connect(url) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ['websocket'] });
  s.on('connect_error', () => {});
  await within(new Promise((resolve, reject) => {
    s.once('connect', resolve);
    s.once('connect_error', reject);
  }), 8000, 'socket.io connect');
  return s;
}

/** The sender's round trip: every packet it sent before was handled. */
function ack(sock, v) {
  return within(new Promise((resolve) => sock.emit('message-with-ack', v, (...a) => resolve(a))),
    8000, 'message-with-ack');
}

/**
 * A WebSocket peer on a raw TCP connection that can stop reading
 * (pause()): frames are parsed as they arrive, without re-copying what
 * was read before (megabytes arrive at once when it resumes).
 */
class Peer {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    this.buf = Buffer.alloc(0);
    this.head = false;
    this.frames = [];
    this.ended = false;
    this.waiters = [];
    this.sock.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.parse();
      this.wake();
    });
    this.sock.on('error', () => { /* a reset after the cut is expected */ });
    this.sock.on('close', () => { this.ended = true; this.wake(); });
  }

  wake() { for (const w of this.waiters.splice(0)) w(); }

  parse() {
    if (!this.head) {
      const i = this.buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      assert.match(this.buf.subarray(0, 12).toString('latin1'), /^HTTP\/1\.1 101/);
      this.head = true;
      this.buf = this.buf.subarray(i + 4);
    }
    let off = 0;
    for (;;) {
      const b = this.buf;
      if (b.length - off < 2) break;
      let len = b[off + 1] & 0x7f;
      let hl = 2;
      if (len === 126) {
        if (b.length - off < 4) break;
        len = b.readUInt16BE(off + 2);
        hl = 4;
      } else if (len === 127) {
        if (b.length - off < 10) break;
        len = Number(b.readBigUInt64BE(off + 2));
        hl = 10;
      }
      if (b.length - off < hl + len) break;
      const opcode = b[off] & 0x0f;
      const payload = b.subarray(off + hl, off + hl + len);
      this.frames.push(opcode === 1 ? { opcode, text: payload.toString('utf8') } : { opcode, payload: Buffer.from(payload) });
      off += hl + len;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(off));
  }

  async until(pred, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = pred(this);
      if (v) return v;
      if (this.ended) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what} (${this.frames.length} frames)`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** The next text frame satisfying pred (earlier frames are dropped). */
  async text(pred, ms = 5000) {
    return this.until((p) => {
      while (p.frames.length) {
        const f = p.frames.shift();
        if (f.opcode === 1 && pred(f.text)) return f.text;
      }
      return null;
    }, ms, 'a text frame');
  }

  send(text) { this.sock.write(encodeFrame({ payload: text })); }

  /** Upgrade, CONNECT to "/", join `room`. */
  async join(port, room) {
    await new Promise((resolve) => this.sock.once('connect', resolve));
    const key = crypto.randomBytes(16).toString('base64');
    this.sock.write(`GET ${EIO_WS} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await this.text((t) => t.startsWith('0{"sid":'));
    this.send('40');
    await this.text((t) => t.startsWith('40{'));
    this.send(`421["join","${room}"]`);
    await this.text((t) => t === '431["ok"]');
  }

  destroy() { this.sock.destroy(); }
}

/** [name, ...args] of a text EVENT frame (42[...]), or null. */
function event(f) {
  if (f.opcode !== 1 || !f.text.startsWith('42[')) return null;
  return JSON.parse(f.text.slice(2));
}

// ---- ordering and coalescing -----------------------------------------------------

describe('delivery classes on a slow peer\'s queue', SKIP, () => {
  let server;
  before(async () => {
    // the queue may grow well past the kernel's buffers without a cut
    server = await startServer({ pingInterval: 60000, extra: ['--max-send-queue', String(64 << 20)] });
  });
  after(async () => { await server?.stop(); });

  it('SECURITY overtakes queued events; presence and telemetry coalesce by key; nothing else is lost', { timeout: 60000 }, async (t) => {
    const sender = await connect(server.url);
    const slow = new Peer(server.port);
    try {
      await slow.join(server.port, 'slow');
      slow.sock.pause(); // stop reading: the kernel buffers fill, then a write waits
      const m0 = await metrics(server.port);
      const blob = 'x'.repeat(8192);
      let seq = 0;
      const events = (n) => {
        for (let i = 0; i < n; i++) sender.emit('to-room-class', 'slow', 'event', 0, 'ev', seq++, blob);
      };

      // A: until the server holds a backlog it could not hand to the kernel
      let round = 0;
      for (;;) {
        events(8);
        assert.deepStrictEqual(await ack(sender, ++round), [round]);
        if ((await metrics(server.port)).queued > 2 * 1048576) break;
        assert.ok(seq < 8000, 'the server never held a backlog for the paused peer');
      }
      const firstQueued = seq;
      // B: events that wait behind the write in flight
      events(20);
      assert.deepStrictEqual(await ack(sender, ++round), [round]);
      // C: a packet with attachments (its own request), a SECURITY
      // broadcast, a SECURITY emit to the peer alone (its own request)
      let received = (await metrics(server.port)).received;
      const handled = async () => {
        for (let i = 0; i < 100; i++) {
          const r = (await metrics(server.port)).received;
          if (r > received) { received = r; return; }
          await sleep(20);
        }
        throw new Error('the paused peer\'s request was not handled');
      };
      slow.send('42["emit-binary"]');
      await handled();
      sender.emit('to-room-class', 'slow', 'security', 0, 'sec', 'broadcast');
      assert.deepStrictEqual(await ack(sender, ++round), [round]);
      received = (await metrics(server.port)).received;
      slow.send('42["emit-class","security","sec2","own"]');
      await handled();
      // D: presence and telemetry, one key each (and a second presence key)
      for (let i = 0; i < 10; i++) {
        sender.emit('to-room-class', 'slow', 'presence', 42, 'pres', i);
        sender.emit('to-room-class', 'slow', 'telemetry', 7, 'tel', i);
        if (i < 5) sender.emit('to-room-class', 'slow', 'presence', 43, 'pres2', i);
      }
      // E: events after all that
      events(20);
      assert.deepStrictEqual(await ack(sender, ++round), [round]);

      const m1 = await metrics(server.port);
      t.diagnostic(`${seq} events of 8 KB; ${(m1.queued / 1048576).toFixed(1)} MB queued when the peer resumes`);
      assert.ok(m1.coalesced - m0.coalesced >= 9 + 9 + 4, `coalesced ${m1.coalesced - m0.coalesced}`);
      assert.ok(m1.reordered - m0.reordered >= 2 + 20, `reordered ${m1.reordered - m0.reordered}`);

      slow.sock.resume();
      const seen = (p, name) => p.frames.some((f) => event(f)?.[0] === name);
      await slow.until((p) => ['pres', 'tel', 'pres2', 'sec', 'sec2'].every((n) => seen(p, n)) &&
        p.frames.filter((f) => event(f)?.[0] === 'ev').length === seq, 30000, 'every packet');
      await sleep(200); // anything more would be a duplicate
      const frames = slow.frames;
      const at = (pred) => frames.findIndex(pred);
      const evs = frames.map(event).filter((e) => e?.[0] === 'ev').map((e) => e[1]);
      assert.deepStrictEqual(evs, [...Array(seq).keys()], 'events lost, duplicated or reordered');
      const iSec = at((f) => event(f)?.[0] === 'sec');
      const iSec2 = at((f) => event(f)?.[0] === 'sec2');
      const iFirstQueued = at((f) => event(f)?.[0] === 'ev' && event(f)[1] === firstQueued);
      t.diagnostic(`sec at frame ${iSec}, sec2 at ${iSec2}; event ${firstQueued} (queued before both) at ${iFirstQueued}`);
      assert.ok(iSec < iFirstQueued, 'the SECURITY broadcast did not overtake the queued events');
      assert.ok(iSec < iSec2 && iSec2 < iFirstQueued, 'the SECURITY emit did not follow the first one ahead of the events');
      // coalesced: only the latest of each key, after every event
      const values = (name) => frames.map(event).filter((e) => e?.[0] === name).map((e) => e[1]);
      assert.deepStrictEqual(values('pres'), [9]);
      assert.deepStrictEqual(values('pres2'), [4]);
      assert.deepStrictEqual(values('tel'), [9]);
      const lastEv = frames.length - 1 - [...frames].reverse().findIndex((f) => event(f)?.[0] === 'ev');
      assert.ok(at((f) => event(f)?.[0] === 'pres') > lastEv, 'presence overtook events');
      assert.ok(at((f) => event(f)?.[0] === 'tel') > at((f) => event(f)?.[0] === 'pres2'), 'telemetry overtook presence');
      // the packet with attachments arrived whole: header, then its two parts
      const iBin = at((f) => f.opcode === 1 && f.text.startsWith('452-["binary"'));
      assert.ok(iBin >= 0, 'no binary packet');
      assert.deepStrictEqual(frames.slice(iBin + 1, iBin + 3).map((f) => [f.opcode, [...f.payload]]),
        [[2, [1, 2, 3]], [2, [4, 5]]]);
      // everything drained
      let q = 0;
      for (let i = 0; i < 30; i++) {
        q = (await metrics(server.port)).queued;
        if (q === 0) break;
        await sleep(100);
      }
      assert.equal(q, 0, 'send queue gauge after the drain');
      assert.deepStrictEqual(await ack(sender, 'after'), ['after']);
    } finally {
      slow.destroy();
      sender.disconnect();
    }
  });
});

// ---- a peer that never reads again ------------------------------------------------

describe('a paused peer that never resumes (--max-send-queue 1048576)', SKIP, () => {
  let server;
  before(async () => {
    server = await startServer({ pingInterval: 60000, extra: ['--max-send-queue', '1048576'] });
  });
  after(async () => { await server?.stop(); });

  it('is cut off: slow_consumer counted, server memory bounded, others unaffected', { timeout: 60000 }, async (t) => {
    const sender = await connect(server.url);
    const slow = new Peer(server.port);
    try {
      await slow.join(server.port, 'never');
      slow.sock.pause();
      const base = memOf(server.pid);
      const m0 = await metrics(server.port);
      const blob = 'y'.repeat(8192);
      let sent = 0;
      let cut = m0.cut;
      for (let round = 1; sent < 96 * 1048576 && cut === m0.cut; round++) {
        for (let i = 0; i < 4; i++) {
          sender.emit('to-room-class', 'never', 'event', 0, 'ev', blob);
          sender.emit('to-room-class', 'never', 'presence', 5, 'pres', round, blob);
        }
        sender.emit('to-room-class', 'never', 'security', 0, 'sec', round);
        sent += 8 * blob.length;
        assert.deepStrictEqual(await ack(sender, round), [round]);
        if (round % 16 === 0) cut = (await metrics(server.port)).cut;
      }
      const mem = memOf(server.pid);
      t.diagnostic(`cut after ${(sent / 1048576).toFixed(1)} MB; server RSS ${(base.rss / 1048576).toFixed(1)} MB before, peak ${(mem.hwm / 1048576).toFixed(1)} MB`);
      assert.ok(cut > m0.cut, 'slow_consumer never counted');
      assert.ok(mem.hwm - base.rss < 64 * 1048576, `server peak RSS grew ${((mem.hwm - base.rss) / 1048576).toFixed(1)} MB`);
      // the peer's connection was closed: what the kernel held, then EOF or a reset
      slow.sock.resume();
      await slow.until((p) => p.ended, 10000, 'the connection to end');
      let q = 0;
      for (let i = 0; i < 30; i++) {
        q = (await metrics(server.port)).queued;
        if (q < 65536) break;
        await sleep(100);
      }
      assert.ok(q < 65536, `send queue gauge stays at ${q} bytes after the cut`);
      assert.deepStrictEqual(await ack(sender, 'after'), ['after']);
    } finally {
      slow.destroy();
      sender.disconnect();
    }
  });
});
