// Several tabsyncd nodes over one Redis (issue #12): what only a cluster can
// show. The suites that run on one node also run across three (js/session@3nodes,
// js/history@3nodes, js/election@3nodes: TS_CLUSTER, cluster.mjs); here:
// - the registry and the admin API of any node show the tabs of every node;
// - a node killed with kill -9 under load: its tabs reconnect to the others,
//   no acknowledged change is lost or applied twice, its registry entries
//   expire by themselves;
// - Redis killed and restarted under load (AOF, appendfsync always): changes
//   sent meanwhile are refused with store_unavailable (never acknowledged),
//   ephemeral traffic between tabs of one node still flows, and everything
//   resumes by itself; afterwards every acknowledged change is on every tab.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { startServer, IS_NODE, sleep } from './harness.mjs';
import { startCluster } from './cluster.mjs';
import { BASE_FLAGS, ident, uniq, tempDir, writeRules, openMirror, waitUntil, submitLoad, checkSubmitted } from './history-helpers.mjs';
import { registryTabs } from './session-helpers.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference is one process)' } : {};
const ADMIN = `adm-${crypto.randomBytes(24).toString('hex')}`;

describe('three nodes over one Redis', SKIP, () => {
  let cluster;
  const tabs = [];
  const dir = tempDir('nodes');
  before(async () => {
    cluster = await startCluster({
      n: 3,
      start: startServer,
      opts: {
        testApp: false,
        extra: [...BASE_FLAGS, '--state-rules', writeRules(dir), '--admin-token', ADMIN,
          '--registry-ttl', '2000', '--registry-sweep', '100'],
      },
    });
  });
  after(async () => {
    for (const t of tabs) t.close();
    await cluster?.stop();
  });

  it('the admin API of any node lists the tabs of every node; kill -9 of a node under load: its tabs reconnect to the others, no acknowledged change is lost or applied twice, its registry entries expire', { timeout: 90000 }, async () => {
    const S = uniq('kill');
    const N = 6;
    for (let i = 0; i < N; i++) {
      tabs.push(await openMirror({ url: cluster.url, id: ident('alice', S, `d${i % 2}`, `t${i}`), client: `k${i}`, reconnection: true, repeatsOk: true }));
    }
    // a seventh tab on node 1 that does not come back: its entry must expire
    const gone = await openMirror({ url: cluster.nodes[1].url, id: ident('alice', S, 'dgone', 'tgone'), client: 'kg' });
    // round robin: two tabs per node, and every node's admin API sees all six
    for (let i = 0; i < 3; i++) {
      const listed = await waitUntil(async () => {
        const l = await registryTabs(cluster.nodes[i].url, S, ADMIN);
        return l.length === N + 1 ? l : null;
      }, 5000, `node ${i} lists the ${N + 1} tabs`);
      const nodes = new Set(listed.map((t) => t.node));
      assert.equal(nodes.size, 3, `the tabs are on three nodes: ${[...nodes]}`);
    }
    // tab k went to node k % 3 (the proxy's turn); the welcome names the node
    const killedId = tabs[1].welcomes[0].node;
    assert.ok(killedId, 'the welcome names the node');
    assert.equal(tabs[4].welcomes[0].node, killedId, 'tabs 1 and 4 share node 1');
    assert.equal(gone.welcomes[0].node, killedId, 'the seventh tab is on node 1 too');

    // load: every tab increments /n and publishes, each change resent until answered
    const M = 80;
    const subs = [];
    const load = submitLoad(tabs, subs, M, 'kill.note');
    await waitUntil(() => subs.filter((s) => s.done).length >= 40, 20000, 'some changes acknowledged');
    const killedAt = Date.now();
    await cluster.killNode(1);
    const inFlightAtKill = subs.filter((s) => !s.done).length;
    await load;
    for (const t of tabs) await t.settle(60000);

    // every tab came back, two of them on other nodes
    for (const t of tabs) assert.ok(t.sock.connected, `${t.name} is connected again`);
    const moved = tabs.filter((t) => t.welcomes.length > 1);
    assert.ok(moved.length >= 2, `the killed node's tabs reconnected (${moved.length} reconnects)`);
    for (const t of moved) assert.notEqual(t.welcomes.at(-1).node, killedId, `${t.name} is on a live node`);

    await checkSubmitted(tabs, subs, S);

    // the tabs that came back replaced their entries; the one that did not
    // expires by itself (ttl 2 s, sweep 100 ms), reported by a live node
    const left = await waitUntil(async () => {
      const l = await registryTabs(cluster.nodes[0].url, S, ADMIN);
      return l.every((t) => t.node !== killedId) ? l : null;
    }, 10000, 'the killed node\'s registry entries expired');
    const expiredAfter = Date.now() - killedAt;
    console.log(`# kill -9 with ${inFlightAtKill} changes in flight; the dead node's last entry left the registry ${expiredAfter} ms after the kill`);
    assert.ok(expiredAfter >= 1200, `not before its ttl less one renewal period (${expiredAfter} ms)`);
    assert.equal(left.length, N, `the ${N} tabs that came back are registered on the live nodes`);
    assert.ok(!left.some((t) => t.tab === 'tgone'), 'the tab that did not come back is gone');
    gone.close();
    for (const t of tabs) t.close();
    tabs.length = 0;
  });
});

describe('Redis killed and restarted under load', SKIP, () => {
  let cluster;
  const tabs = [];
  const dir = tempDir('nodes-redis');
  before(async () => {
    cluster = await startCluster({
      n: 2,
      start: startServer,
      opts: { testApp: false, extra: [...BASE_FLAGS, '--state-rules', writeRules(dir)] },
    });
  });
  after(async () => {
    for (const t of tabs) t.close();
    await cluster?.stop();
  });

  it('changes meanwhile get store_unavailable (never an ack), ephemeral traffic on a node still flows, everything resumes; every acknowledged change is on every tab', { timeout: 90000 }, async () => {
    const S = uniq('redis');
    for (let i = 0; i < 4; i++) {
      tabs.push(await openMirror({ url: cluster.url, id: ident('alice', S, `d${i}`, `t${i}`), client: `r${i}`, reconnection: true, repeatsOk: true }));
    }
    const subs = [];
    let stop = false;
    const load = tabs.map(async (t) => {
      for (let k = 0; !stop; k++) {
        const sub = t.submit('state', { v: 3, id: `${t.client}-s${k}`, patch: [{ op: 'incr', path: '/counters/n', value: 1 }] });
        sub.at = Date.now();
        subs.push(sub);
        await sleep(20);
      }
    });
    try {
      await waitUntil(() => subs.filter((s) => s.done).length >= 20, 20000, 'some changes acknowledged');
      await cluster.redis.kill('SIGKILL');
      // while Redis is down: refusals, and presence between two tabs of one node
      await waitUntil(() => subs.some((s) => s.answers.some((a) => a?.error?.code === 'store_unavailable')), 15000,
        'a change sent while Redis is down is refused with store_unavailable');
      const [a, b] = [0, 2].map((k) => tabs[k]); // round robin over 2 nodes: tabs 0 and 2 share node 0
      assert.equal(a.welcomes[0].node, b.welcomes[0].node, 'tabs 0 and 2 are on one node');
      const got = [];
      b.sock.on('event', (e) => { if (e.type === 'presence.here') got.push(e); });
      a.sock.emit('publish', { v: 3, type: 'presence.here', id: uniq('pr'), prio: 'presence', body: { at: 1 } });
      await waitUntil(() => got.length > 0, 5000, 'presence relayed between tabs of one node while Redis is down');
      await sleep(500);
      const back = Date.now();
      await cluster.redis.start();
      // resumes by itself: a change submitted after Redis came back is acknowledged
      await waitUntil(() => subs.some((s) => s.at > back && s.final?.ok === true), 30000,
        'a change made after Redis came back is acknowledged');
    } finally {
      stop = true;
      await Promise.all(load);
    }
    for (const t of tabs) await t.settle(60000);
    const refused = subs.filter((s) => s.answers.some((x) => x?.error?.code === 'store_unavailable')).length;
    console.log(`# ${subs.length} changes, ${refused} refused at least once while Redis was down, all applied once in the end`);
    await checkSubmitted(tabs, subs, S);
  });
});
