// Three tabsyncd nodes over a Redis Cluster (issue #12): three primaries with
// a replica each (cluster.mjs startRedisCluster), the nodes on
// --store redis://...?replicas=1, so that a write is acknowledged only once a
// replica has it. Tabs of one session spread over the nodes (with
// reconnection) each submit increments and publishes, resent until answered
// (history-helpers Mirror.submit/settle); in the middle the primary that
// holds the session's keys is killed with SIGKILL, without waiting for its
// replica. Its replica takes over; the killed node is started again once it
// has (as a supervisor would) and joins as the replica, so that WAIT counts
// one again. Afterwards every change answered ok is in the log exactly once,
// the counter is exact, every tab holds the fold of the log, the log has no
// gap.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';

import { startServer, IS_NODE } from './harness.mjs';
import { startCluster, startRedisCluster, keySlot } from './cluster.mjs';
import { BASE_FLAGS, ident, uniq, tempDir, writeRules, openMirror, waitUntil, submitLoad, checkSubmitted } from './history-helpers.mjs';

const SKIP = IS_NODE ? { skip: 'tabsyncd only (the Node reference is one process)' } : {};

const cli = (args) => new Promise((resolve) => {
  execFile('redis-cli', args, { timeout: 10000 }, (err, out) => resolve(err ? '' : out));
});

describe('three nodes over a Redis Cluster, a primary killed', SKIP, () => {
  let redis;
  let cluster;
  const tabs = [];
  const dir = tempDir('rcluster');
  before(async () => {
    redis = await startRedisCluster();
    cluster = await startCluster({
      n: 3,
      start: startServer,
      redis,
      opts: { testApp: false, extra: [...BASE_FLAGS, '--state-rules', writeRules(dir)] },
    });
  });
  after(async () => {
    for (const t of tabs) t.close();
    await cluster?.stop();
    await redis?.stop();
  });

  it('every change answered ok is in the log once, the counter is exact, every tab holds the fold of the log', { timeout: 120000 }, async () => {
    const S = uniq('rc');
    const N = 6;
    for (let i = 0; i < N; i++) {
      tabs.push(await openMirror({ url: cluster.url, id: ident('alice', S, `d${i % 2}`, `t${i}`), client: `c${i}`, reconnection: true, repeatsOk: true }));
    }
    const nodes = new Set(tabs.map((t) => t.welcomes[0].node));
    assert.equal(nodes.size, 3, 'the tabs are on three nodes');

    const M = 80;
    const subs = [];
    const load = submitLoad(tabs, subs, M, 'rc.note');
    await waitUntil(() => subs.filter((s) => s.done).length >= 40, 20000, 'some changes acknowledged');

    // the primary that holds the session's log: its stream key names S
    let key = '';
    for (const port of redis.ports) {
      const out = await cli(['-p', String(port), '--scan', '--pattern', `${cluster.prefix}l:{*${S}*}`]);
      key = out.split('\n').find((k) => k && !k.includes('}:')) || key;
      if (key) break;
    }
    assert.ok(key, 'the session\'s log is in Redis');
    const slot = keySlot(key);
    const victim = await redis.primaryOf(slot);
    assert.ok(victim >= 0, `a primary serves slot ${slot}`);
    const inFlight = subs.filter((s) => !s.done).length;
    const killedAt = Date.now();
    await redis.killPrimary(victim);
    // the replica takes over (cluster-node-timeout 1000); then the killed
    // node comes back, as its replica
    await waitUntil(async () => {
      const p = await redis.primaryOf(slot);
      return p >= 0 && p !== victim;
    }, 20000, 'the replica took over');
    const promotedAt = Date.now();
    await redis.restartNode(victim);
    await redis.waitOk();
    const syncedAt = Date.now();
    await load;
    for (const t of tabs) await t.settle(60000);

    const refused = subs.filter((s) => s.answers.some((x) => x?.error?.code === 'store_unavailable')).length;
    console.log(`# primary of slot ${slot} killed with ${inFlight} changes in flight; replica primary after ${promotedAt - killedAt} ms, ` +
      `the old primary its replica after ${syncedAt - killedAt} ms; ${subs.length} changes, ${refused} refused at least once (store_unavailable), all applied once in the end`);
    await checkSubmitted(tabs, subs, S);
  });
});
