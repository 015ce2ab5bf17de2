// Bounds one client cannot push past, whatever it sends: a polling session's
// queue (--max-send-queue), bytes sent behind a held long-poll, and the
// recovery log in bytes. Each case would let a single client grow the
// server's memory without limit if the bound were missing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, IS_NODE, sleep } from './harness.mjs';
import { RawConn } from './raw.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd bounds (Node buffers without limit)' } : {};
const T = { timeout: 30000 };

async function metric(url, kind) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`tabsync_errors_total\\{kind="${kind}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : NaN;
}

async function pollingSession(url) {
  const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
  const body = await r.text();
  const sid = JSON.parse(body.slice(1)).sid;
  const post = (payload) => fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
    method: 'POST', body: payload, headers: { 'content-type': 'text/plain;charset=UTF-8' },
  });
  return { sid, post };
}

describe('bounds a single client cannot exceed', SKIP, () => {
  let srv;
  before(async () => {
    srv = await startServer({ extra: ['--max-send-queue', '65536'] });
  });
  after(async () => { await srv?.stop(); });

  it('a polling client that posts but never polls is closed once its queue passes --max-send-queue', T, async () => {
    const before = await metric(srv.url, 'slow_consumer');
    const { sid, post } = await pollingSession(srv.url);
    assert.equal((await post('40')).status, 200);
    const big = 'x'.repeat(8000);
    // every message is echoed back into the session's queue; nobody polls
    for (let i = 0; i < 20; i++) await post(`42["message","${big}"]`);
    await sleep(200);
    const r = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    assert.equal(r.status, 400, 'the session is gone');
    assert.deepEqual(await r.json(), { code: 1, message: 'Session ID unknown' });
    assert.ok(await metric(srv.url, 'slow_consumer') > before, 'counted as a slow consumer');
  });

  it('a polling client that reads is not cut off by the same traffic', T, async () => {
    const { sid, post } = await pollingSession(srv.url);
    await post('40');
    const big = 'y'.repeat(8000);
    let got = 0;
    const polling = (async () => {
      while (got < 20) {
        const r = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
        assert.equal(r.status, 200);
        got += ((await r.text()).match(/message-back/g) ?? []).length;
      }
    })();
    for (let i = 0; i < 20; i++) {
      await post(`42["message","${big}"]`);
      await sleep(5);
    }
    await polling;
    assert.equal(got, 20);
  });

  it('bytes piped behind a held long-poll are capped: the connection is closed', T, async () => {
    const before = await metric(srv.url, 'http_too_large');
    const { sid, post } = await pollingSession(srv.url);
    await post('40');
    await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`); // takes the CONNECT reply + auth
    const c = new RawConn(srv.port);
    await c.connected;
    await c.write(`GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await sleep(100); // the GET is held: nothing to send yet
    const junk = Buffer.alloc(256 * 1024, 0x41);
    for (let i = 0; i < 16 && !c.ended; i++) await c.write(junk); // 4 MiB, far past one request
    assert.ok(await c.waitEnd(5000), 'the server closes the connection');
    assert.ok(await metric(srv.url, 'http_too_large') > before);
    // and keeps serving others
    const other = await pollingSession(srv.url);
    assert.equal((await other.post('40')).status, 200);
  });
});
