/* test_rcluster.c - the redis backend over a Redis Cluster the test starts:
 * six redis-server processes on free loopback ports (three primaries, one
 * replica each, cluster-node-timeout 1000), made a cluster by
 * `redis-cli --cluster create`. The slot function against Redis's own
 * (CLUSTER KEYSLOT), the whole store contract and c_two_nodes through the
 * slot map (auto-detected from redis://), a session's slot migrated to
 * another primary while in use (ASK, then MOVED), then a primary killed with
 * SIGKILL in the middle of traffic: commands fail with TS_ESTORE meanwhile,
 * none hangs past its timeout, and they succeed again once the replica took
 * over, shard subscriptions included. Then the same with ?replicas=1 on
 * another primary, killed without waiting for its replica: every commit
 * answered 0 is there afterwards. Every process is stopped by its pid,
 * also when a test fails (the group teardown). */
#include "store/rcluster_int.h"
#include "store/store_contract.h"
#include "store/redis_server.h"

#define NODES 6

static redis_t node[NODES];
static char url[64], prefix[32], repl_url[96];

static const char CLUSTER_CONF[] = "cluster-enabled yes\ncluster-config-file nodes.conf\n"
                                   "cluster-node-timeout 1000\ncluster-replica-validity-factor 0\n"
                                   "repl-diskless-sync-delay 0\n";

static void env_fresh(sc_env_t *env) {
    snprintf(prefix, sizeof prefix, "c%d:", env->counter++);
    env->cfg.redis_prefix = prefix;
}

static sc_env_t env_cluster = {
    .label = "redis cluster",
    .ops = &ts_store_redis_ops,
    .fresh = env_fresh,
    .durable_on_execute = 1,
};

/* A field of INFO <section> as a number (-1: none). */
static long long info_num(uint16_t port, const char *section, const char *field) {
    char out[8192];
    if (sh(out, sizeof out, "redis-cli -p %u info %s 2>/dev/null", port, section) != 0) return -1;
    char key[64];
    snprintf(key, sizeof key, "%s:", field);
    const char *p = strstr(out, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static int cluster_ok(uint16_t port) {
    char out[2048];
    if (sh(out, sizeof out, "redis-cli -p %u cluster info 2>/dev/null", port) != 0) return 0;
    return strstr(out, "cluster_state:ok") != NULL;
}

static int bindable(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A node's port: its cluster bus is port + 10000, so both must be free (and
 * below 55536); taken in 20000-29999, under the ephemeral range. */
static uint16_t cluster_port(void) {
    for (;;) {
        uint32_t r;
        ts_random_bytes(&r, sizeof r);
        uint16_t p = (uint16_t)(20000 + r % 10000);
        int taken = 0;
        for (int i = 0; i < NODES; i++) taken |= node[i].port == p || node[i].port + 10000 == p;
        if (!taken && bindable(p) && bindable((uint16_t)(p + 10000))) return p;
    }
}

static int group_setup(void **state) {
    (void)state;
    for (int i = 0; i < NODES; i++) node[i].port = cluster_port();
    for (int i = 0; i < NODES; i++)
        redis_start(&node[i], CLUSTER_CONF);
    char cmd[1024];
    int n = snprintf(cmd, sizeof cmd, "redis-cli --cluster create");
    for (int i = 0; i < NODES; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " 127.0.0.1:%u", node[i].port);
    snprintf(cmd + n, sizeof cmd - (size_t)n,
             " --cluster-replicas 1 --cluster-yes > %s/create.log 2>&1", node[0].dir);
    if (system(cmd) != 0) fail_msg("redis-cli --cluster create failed: see %s/create.log", node[0].dir);
    uint64_t deadline = ts_now_ms() + 15000;
    for (int i = 0; i < NODES; i++)
        while (!cluster_ok(node[i].port)) {
            if (ts_now_ms() > deadline) fail_msg("node %u: cluster_state is not ok", node[i].port);
            usleep(50000);
        }
    /* every replica has had its first sync (a failover then has data to keep) */
    for (int i = 0; i < NODES; i++) {
        char out[8192];
        for (;;) {
            assert_int_equal(sh(out, sizeof out, "redis-cli -p %u info replication", node[i].port), 0);
            if (strstr(out, "role:master") || strstr(out, "master_link_status:up")) break;
            if (ts_now_ms() > deadline) fail_msg("replica %u never synced", node[i].port);
            usleep(50000);
        }
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", node[0].port); /* a cluster: found out */
    env_cluster.cfg.redis_url = url;
    return 0;
}

static int group_teardown(void **state) {
    for (int i = 0; i < NODES; i++) redis_cleanup(&node[i]);
    return redis_stop_all(state);
}

/* ts_rcl_slot against CLUSTER KEYSLOT, hash tags included. */
static void c_slots(void **state) {
    (void)state;
    static const char *const keys[] = {"", "a", "foo", "{user1000}.following", "{user1000}.followers",
                                       "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{}x",
                                       "ts:l:{sess-1}:m", "ts:lease:e/u/{sess-1}", "}{"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char out[64];
        assert_int_equal(sh(out, sizeof out, "redis-cli -p %u cluster keyslot '%s'", node[0].port,
                            keys[i]),
                         0);
        unsigned want = (unsigned)strtoul(out, NULL, 10);
        if (ts_rcl_slot(keys[i], strlen(keys[i])) != want)
            fail_msg("slot of \"%s\": %u, Redis says %u", keys[i],
                     ts_rcl_slot(keys[i], strlen(keys[i])), want);
    }
    assert_int_equal(ts_rcl_slot("123456789", 9), 0x31C3 & 16383); /* CRC16/XMODEM check value */
}

/* A session name whose keys fall in [lo, hi]. */
static void sess_in(char *out, size_t cap, const char *base, unsigned lo, unsigned hi) {
    for (int i = 0;; i++) {
        snprintf(out, cap, "%s%d", base, i);
        if (ts_rcl_slot(out, strlen(out)) >= lo && ts_rcl_slot(out, strlen(out)) <= hi) return;
    }
}

/* The port of the primary that serves `slot` (CLUSTER SLOTS as redis-cli
 * prints it: start, end, host, port, id, then the replicas). */
static uint16_t owner_of(unsigned slot) {
    char out[8192];
    int asked = 0; /* a node that is running */
    for (int i = 1; i < NODES + 1 && !asked; i++)
        if (node[i % NODES].pid > 0)
            asked = sh(out, sizeof out, "redis-cli -p %u cluster slots", node[i % NODES].port) == 0;
    assert_true(asked);
    char *save = NULL, *prev[4] = {0};
    int n = 0;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        /* a range starts where two numbers follow each other, then a host */
        prev[0] = prev[1], prev[1] = prev[2], prev[2] = prev[3], prev[3] = l;
        if (++n < 4) continue;
        if (strspn(prev[0], "0123456789") == strlen(prev[0]) &&
            strspn(prev[1], "0123456789") == strlen(prev[1]) && strchr(prev[2], '.') &&
            strspn(prev[3], "0123456789") == strlen(prev[3])) {
            unsigned a = (unsigned)atoi(prev[0]), b = (unsigned)atoi(prev[1]);
            if (slot >= a && slot <= b) return (uint16_t)atoi(prev[3]);
        }
    }
    return 0;
}

/* A session's slot moved to another primary while it is used: during the
 * migration its keys are on the target (ASK: ASKING and the script there),
 * after it the old owner answers MOVED (the map is updated); the history
 * continues unbroken, and the lists of the registry still find it. */
static void c_migrate(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    char sess[32], key[96];
    sess_in(sess, sizeof sess, "mig", 6000, 10000);
    snprintf(key, sizeof key, "%sl:{%s}", prefix, sess);
    unsigned slot = ts_rcl_slot(key, strlen(key));
    uint16_t from = owner_of(slot), to = owner_of(slot < 8192 ? 14000 : 2000);
    assert_true(from && to && from != to);
    sc_res_t r;
    for (int i = 0; i < 5; i++) assert_ts_err(sc_commit(&t, sess, "e", "cl", (uint64_t)i + 1, SC_ANY, 1, &r), 0);
    char fid[64], tid[64], keys[4096];
    assert_int_equal(sh(fid, sizeof fid, "redis-cli -p %u cluster myid", from), 0);
    assert_int_equal(sh(tid, sizeof tid, "redis-cli -p %u cluster myid", to), 0);
    fid[strcspn(fid, "\n")] = tid[strcspn(tid, "\n")] = '\0';
    assert_int_equal(sh(NULL, 0, "redis-cli -p %u cluster setslot %u importing %s", to, slot, fid), 0);
    assert_int_equal(sh(NULL, 0, "redis-cli -p %u cluster setslot %u migrating %s", from, slot, tid), 0);
    assert_int_equal(sh(keys, sizeof keys, "redis-cli -p %u cluster getkeysinslot %u 100", from, slot), 0);
    int nkeys = 0;
    char *save = NULL;
    for (char *k = strtok_r(keys, "\n", &save); k; k = strtok_r(NULL, "\n", &save)) {
        assert_int_equal(sh(NULL, 0, "redis-cli -p %u migrate 127.0.0.1 %u '%s' 0 5000", from, to, k), 0);
        nkeys++;
    }
    assert_true(nkeys >= 3); /* the log, its hash, the client's window */
    /* migrating: the old owner has none of the keys any more: ASK */
    assert_ts_err(sc_commit(&t, sess, "e", "cl", 6, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 6);
    assert_ts_err(sc_commit(&t, sess, "e", "cl", 3, SC_ANY, 1, &r), TS_EDUP); /* the window moved too */
    assert_ts_err(sc_read(&t, sess, 0, 20, &r), 0);
    assert_int_equal(r.n, 6);
    /* done: the slot is the target's; the old owner answers MOVED */
    for (int i = 0; i < NODES; i++)
        if (node[i].pid > 0)
            sh(NULL, 0, "redis-cli -p %u cluster setslot %u node %s", node[i].port, slot, tid);
    assert_ts_err(sc_commit(&t, sess, "e", "cl", 7, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 7);
    assert_ts_err(sc_sess(&t, sess, &r), 0);
    assert_int_equal(r.last_seq, 7);
    assert_int_equal(owner_of(slot), to);
    sc_close(&t);
}

/* The primary serving slot 0 (redis-cli gave it 0-5460) is killed. */
static void c_failover(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    char dead[32], alive[32], ch[32];
    sess_in(dead, sizeof dead, "fo", 0, 5000);      /* on the primary killed */
    sess_in(alive, sizeof alive, "ok", 11000, 16000); /* on another */
    sess_in(ch, sizeof ch, "shard", 0, 5000);
    uint16_t victim = 0;
    char out[4096];
    for (int i = 0; i < NODES && !victim; i++) { /* who serves slot 0 now */
        assert_int_equal(sh(out, sizeof out, "redis-cli -p %u cluster slots", node[i].port), 0);
        char first[16];
        snprintf(first, sizeof first, "0\n5460\n");
        if (strncmp(out, first, strlen(first)) == 0) {
            char *p = out + strlen(first);
            p = strchr(p, '\n') + 1; /* the host line, then the port */
            victim = (uint16_t)strtoul(p, NULL, 10);
        }
    }
    assert_true(victim != 0);
    redis_t *v = NULL;
    for (int i = 0; i < NODES; i++)
        if (node[i].port == victim) v = &node[i];
    assert_non_null(v);

    sc_inbox_t in = {.t = &t};
    sc_res_t r;
    ts_buf_t *m = ts_buf_from("before", 6);
    assert_ts_err(SC_CALL(&t, &r, ts_store_subscribe(&t.st, TS_STORE_CHAN_SHARD, S(ch), sc_on_msg,
                                                     &in, sc_on_done, &r)),
                  0);
    sc_wait(&t, &r);
    assert_ts_err(r.status, 0);
    assert_ts_err(SC_CALL(&t, &r, ts_store_publish(&t.st, TS_STORE_CHAN_SHARD, S(ch), m,
                                                   sc_on_done, &r)),
                  0);
    ts_buf_unref(m);
    sc_wait(&t, &r);
    sc_wait_msgs(&t, &in, 1);

    uint64_t acked = 0;
    for (int i = 0; i < 20; i++) {
        assert_ts_err(sc_commit(&t, dead, "e", NULL, 0, SC_ANY, 1, &r), 0);
        acked = r.seq;
        assert_ts_err(sc_commit(&t, alive, "e", NULL, 0, SC_ANY, 1, &r), 0);
    }
    /* replication is asynchronous: wait until the victim's replica has every
     * write acknowledged so far, so that none may be lost by the failover */
    long long off = info_num(victim, "replication", "master_repl_offset");
    assert_true(off > 0);
    int synced = 0;
    for (uint64_t until = ts_now_ms() + 3000; !synced && ts_now_ms() < until;) {
        for (int i = 0; i < NODES && !synced; i++)
            if (info_num(node[i].port, "replication", "master_port") == victim &&
                info_num(node[i].port, "replication", "slave_repl_offset") >= off)
                synced = 1;
        if (!synced) sc_sleep(&t, 20);
    }
    assert_true(synced);
    uint64_t killed = ts_now_ms();
    redis_kill(v, SIGKILL);
    int failures = 0, other_failures = 0;
    uint64_t first_ok = 0, longest = 0;
    while (ts_now_ms() - killed < 20000) {
        uint64_t t0 = ts_now_ms();
        int rc = sc_commit(&t, dead, "e", NULL, 0, SC_ANY, 1, &r); /* sc_wait: 5 s at most */
        uint64_t took = ts_now_ms() - t0;
        if (took > longest) longest = took;
        if (rc == 0) {
            first_ok = ts_now_ms();
            break;
        }
        assert_ts_err(rc, TS_ESTORE);
        failures++;
        rc = sc_commit(&t, alive, "e", NULL, 0, SC_ANY, 1, &r);
        if (rc) {
            assert_ts_err(rc, TS_ESTORE);
            other_failures++;
        }
        sc_sleep(&t, 50);
    }
    if (!first_ok) fail_msg("no success 20 s after the primary was killed");
    fprintf(stderr,
            "failover: %d ops on the killed primary's slots failed with TS_ESTORE over %llu ms "
            "(the slowest answered in %llu ms), %d on other slots; then they succeed\n",
            failures, (unsigned long long)(first_ok - killed), (unsigned long long)longest,
            other_failures);
    assert_true(failures > 0);
    /* everything works again, on both sides, and the history is whole */
    for (int i = 0; i < 10; i++) {
        assert_ts_err(sc_commit(&t, dead, "e", NULL, 0, SC_ANY, 1, &r), 0);
        assert_ts_err(sc_commit(&t, alive, "e", NULL, 0, SC_ANY, 1, &r), 0);
    }
    /* nothing acknowledged before the kill was lost: seqs continue */
    assert_ts_err(sc_sess(&t, dead, &r), 0);
    assert_int_equal(r.last_seq, acked + 11);
    assert_ts_err(sc_read(&t, dead, 0, 60, &r), 0);
    assert_int_equal(r.n, acked + 11);
    /* the shard channel was subscribed again on the new primary */
    uint64_t until = ts_now_ms() + 5000;
    while ((size_t)in.n < 2 && ts_now_ms() < until) {
        m = ts_buf_from("after", 5);
        assert_ts_err(SC_CALL(&t, &r, ts_store_publish(&t.st, TS_STORE_CHAN_SHARD, S(ch), m,
                                                       sc_on_done, &r)),
                      0);
        ts_buf_unref(m);
        sc_wait(&t, &r);
        sc_sleep(&t, 50);
    }
    assert_true(in.n >= 2);
    assert_memory_equal(in.msg[1], "after", 5);
    sc_close(&t);
}

static void sc_patch_replicas(ts_store_cfg_t *c) { c->redis_url = repl_url; }

/* ?replicas=1 through a failover. Commits, 16 in flight (state changes and
 * plain events, which go as one XADD, in turn), to a session on a
 * primary (the one of slots 10923-16383: it still has its replica); that
 * primary is SIGKILLed in the middle of them, without waiting for the
 * replica to catch up. Once the replica took over, the killed node is
 * started again (empty: it joins as the new primary's replica, and WAIT
 * counts one again). Every commit answered 0 is in the log afterwards, at
 * the seq it was answered with; the log has no gap and no event twice. */
static void c_failover_acked(void **state) {
    char sess[32];
    sess_in(sess, sizeof sess, "fa", 11000, 16000);
    unsigned slot = ts_rcl_slot(sess, strlen(sess));
    uint16_t victim = owner_of(slot);
    redis_t *v = NULL, *seed = NULL; /* the URL names a node that stays up (c_failover killed one) */
    for (int i = 0; i < NODES; i++) {
        if (node[i].port == victim && node[i].pid > 0) v = &node[i];
        else if (node[i].pid > 0 && !seed) seed = &node[i];
    }
    assert_non_null(v);
    assert_non_null(seed);
    snprintf(repl_url, sizeof repl_url, "redis://127.0.0.1:%u?replicas=1&replicas_timeout=500",
             seed->port);
    sc_t t;
    sc_open(&t, *state, sc_patch_replicas);

    enum { MAXOPS = 20000, DEPTH = 16 };
    static sc_res_t ops[MAXOPS];
    static char evs[MAXOPS][16];
    int issued = 0, done = 0, acked = 0, failed = 0, acked_at_kill = 0, inflight_at_kill = 0;
    int ok_after = 0;
    uint64_t start = ts_now_ms(), killed = 0, restarted = 0, first_fail = 0, last_fail = 0;
    uint64_t first_ok_after = 0, pause_until = 0, checked = 0;
    for (;;) {
        uint64_t now = ts_now_ms();
        while (issued < MAXOPS && issued - done < DEPTH && now >= pause_until) {
            snprintf(evs[issued], sizeof evs[issued], "e%d", issued);
            ts_buf_t *b = ts_buf_from(evs[issued], strlen(evs[issued]));
            /* every other one plain: one XADD, not the script (redis.c send_fast) */
            ts_store_commit_t c = {b, ts_slice("", 0), 0, SC_ANY, issued % 2, 0, ts_slice("", 0), 0,
                                   ts_slice("", 0)};
            assert_ts_err(SC_CALL(&t, &ops[issued], ts_store_commit(&t.st, S(sess), &c,
                                                                   sc_on_commit, &ops[issued])),
                          0);
            ts_buf_unref(b);
            issued++;
        }
        assert_true(issued < MAXOPS);
        if (!killed && now - start >= 400) {
            acked_at_kill = acked;
            inflight_at_kill = issued - done;
            redis_kill(v, SIGKILL); /* with 16 in flight, no waiting for the replica */
            killed = ts_now_ms();
        }
        if (issued - done >= DEPTH || now < pause_until) uv_run(&t.loop, UV_RUN_ONCE);
        else uv_run(&t.loop, UV_RUN_NOWAIT);
        now = ts_now_ms();
        while (done < issued && ops[done].called) {
            int st = ops[done++].status;
            if (st == 0) {
                acked++;
                if (killed) {
                    ok_after++;
                    if (!first_ok_after && last_fail) first_ok_after = now;
                }
                continue;
            }
            assert_ts_err(st, TS_ESTORE); /* never anything else, never a 0 that is lost */
            failed++;
            if (!first_fail) first_fail = now;
            last_fail = now;
            ok_after = 0;
            first_ok_after = 0;
            pause_until = now + 20; /* do not spin while it is down */
        }
        if (killed && !restarted && now - checked >= 100) {
            checked = now;
            uint16_t o = owner_of(slot);
            if (o && o != victim) { /* failed over: the old primary comes back as a replica */
                redis_start(v, CLUSTER_CONF);
                restarted = ts_now_ms();
            }
        }
        if (restarted && ok_after >= 200) break;
        if (now - start > 20000) {
            char cmd[256];
            snprintf(cmd, sizeof cmd, "tail -20 %s/redis.log >&2", v->dir);
            if (system(cmd) != 0) fprintf(stderr, "no log\n");
            fail_msg("no steady success 20 s after the start (killed %d, restarted %d; %d answered "
                     "0, %d failed, %d ok in a row)",
                     killed > 0, restarted > 0, acked, failed, ok_after);
        }
    }
    while (done < issued) { /* the rest in flight */
        uv_run(&t.loop, UV_RUN_ONCE);
        while (done < issued && ops[done].called) {
            assert_true(ops[done].status == 0 || ops[done].status == TS_ESTORE);
            if (ops[done].status == 0) acked++;
            else failed++;
            done++;
        }
    }
    /* the whole log, page by page */
    uint64_t n = 0;
    static int seen[MAXOPS];
    memset(seen, 0, sizeof seen);
    int applied_unacked = 0;
    for (;;) {
        sc_res_t r;
        assert_ts_err(sc_read(&t, sess, n, SC_MAX_EVENTS, &r), 0);
        if (!r.n) break;
        for (size_t i = 0; i < r.n; i++) {
            assert_int_equal(r.seqs[i], n + 1); /* gap-free */
            n = r.seqs[i];
            int e = atoi(r.ev[i] + 1);
            assert_true(e >= 0 && e < issued);
            assert_int_equal(seen[e], 0); /* once */
            seen[e] = 1;
            if (ops[e].status == 0) assert_int_equal(ops[e].seq, n); /* at its seq */
            else applied_unacked++;
        }
    }
    int lost = 0;
    for (int e = 0; e < issued; e++)
        if (ops[e].status == 0 && !seen[e]) lost++;
    fprintf(stderr,
            "?replicas=1 failover: %d commits, %d answered 0 (%d before the kill, %d in flight "
            "at it), %d TS_ESTORE (%d of them applied on a primary all the same); ops failed "
            "from %llu ms to %llu ms after the kill (replica promoted, the old primary restarted "
            "%llu ms after the kill and synced); acknowledged and lost: %d\n",
            issued, acked, acked_at_kill, inflight_at_kill, failed, applied_unacked,
            (unsigned long long)(first_fail ? first_fail - killed : 0),
            (unsigned long long)(first_ok_after ? first_ok_after - killed : 0),
            (unsigned long long)(restarted - killed), lost);
    assert_int_equal(lost, 0);
    assert_true(failed > 0);
    ts_store_stats_t st;
    assert_ts_err(ts_store_stats(&t.st, &st), 0);
    assert_true(st.plain_xadd >= (uint64_t)acked / 4); /* the plain half went as XADDs */
    sc_close(&t);
}

#include "store/redis_two_nodes.h"

/* ---- NUMSUB over every node ---- */

static void on_sub_ok(ts_rconn_t *c, int status, const redisReply *r, void *ud) {
    (void)c;
    assert_ts_err(status, 0);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    (*(int *)ud)++;
}

static void on_ignore(ts_rconn_t *c, const redisReply *r, void *ud) {
    (void)c, (void)r, (void)ud;
}

static void on_gone(void *ud) { (*(int *)ud)++; }

/* A client of the test's own, subscribed on one node. */
static ts_rconn_t *subscriber(sc_t *t, uint16_t port, const char *ch) {
    char u[64], err[128];
    ts_rconn_opts_t o;
    snprintf(u, sizeof u, "redis://127.0.0.1:%u", port);
    assert_int_equal(ts_rconn_parse_url(u, &o, err, sizeof err), 0);
    ts_rconn_t *c = ts_rconn_new(&t->loop, &o, NULL, on_ignore, NULL);
    int ok = 0;
    assert_ts_err(ts_rconn_subscribe(c, TS_RCONN_SUBSCRIBE, ch, on_sub_ok, &ok), 0);
    uint64_t deadline = ts_now_ms() + 5000;
    while (!ok) {
        assert_true(ts_now_ms() < deadline);
        uv_run(&t->loop, UV_RUN_ONCE);
    }
    return c;
}

static uint64_t numsub(sc_t *t, const char *ch) {
    sc_res_t r;
    assert_ts_err(SC_CALL(t, &r, ts_store_numsub(&t->st, TS_STORE_CHAN, S(ch), sc_on_seq, &r)), 0);
    sc_wait(t, &r);
    assert_ts_err(r.status, 0);
    return r.seq;
}

/* A classic channel's subscribers, as Node's adapter counts the servers of
 * a cluster over ioredis: NUMSUB summed over every node of the map,
 * replicas included, since each node knows only its own clients (Cluster
 * forwards a PUBLISH to all of them). Subscribers here on a replica and on
 * a primary, beside the store's own subscription on the node it chose; then
 * a replica killed (SIGKILL) counts 0 while the others are summed, and is
 * started again. */
static void c_numsub_every_node(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    uint16_t replica = 0, primary = 0;
    int ri = -1;
    for (int i = 0; i < NODES; i++) {
        char out[8192];
        assert_int_equal(sh(out, sizeof out, "redis-cli -p %u info replication", node[i].port), 0);
        if (strstr(out, "role:slave") && ri < 0) replica = node[ri = i].port;
        else if (!strstr(out, "role:slave") && !primary) primary = node[i].port;
    }
    assert_true(replica && primary);
    const char *ch = "cnt#every#";
    assert_int_equal(numsub(&t, ch), 0);
    ts_rconn_t *a = subscriber(&t, replica, ch), *b = subscriber(&t, primary, ch);
    sc_inbox_t own = {.t = &t};
    assert_ts_err(sc_sub_k(&t, &t.st, TS_STORE_CHAN, ch, &own), 0);
    assert_int_equal(numsub(&t, ch), 3);
    assert_int_equal(numsub(&t, "cnt#nobody#"), 0);
    int gone = 0;
    ts_rconn_close(a, on_gone, &gone);
    ts_rconn_close(b, on_gone, &gone);
    uint64_t deadline = ts_now_ms() + 5000, n;
    while ((n = numsub(&t, ch)) != 1) { /* a closed client is counted until its node saw the FIN */
        assert_true(ts_now_ms() < deadline);
        sc_sleep(&t, 20);
    }
    assert_int_equal(gone, 2);
    /* a node that cannot answer counts 0: the others are still summed */
    b = subscriber(&t, primary, ch);
    assert_int_equal(numsub(&t, ch), 2);
    redis_kill(&node[ri], SIGKILL);
    assert_int_equal(numsub(&t, ch), 2);
    redis_start(&node[ri], CLUSTER_CONF); /* back as the replica it was, for the tests after */
    deadline = ts_now_ms() + 15000;
    for (;;) {
        char out[8192];
        if (sh(out, sizeof out, "redis-cli -p %u info replication", replica) == 0 &&
            strstr(out, "master_link_status:up"))
            break;
        if (ts_now_ms() > deadline) fail_msg("replica %u did not sync again", replica);
        sc_sleep(&t, 50);
    }
    ts_rconn_close(b, on_gone, &gone);
    while (gone < 3) uv_run(&t.loop, UV_RUN_ONCE);
    sc_close(&t);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(c_slots),
        SC_CONTRACT_TESTS(&env_cluster),
        SC_T(c_two_nodes, &env_cluster),
        SC_T(c_numsub_every_node, &env_cluster),
        SC_T(c_migrate, &env_cluster),
        SC_T(c_failover, &env_cluster),
        SC_T(c_failover_acked, &env_cluster), /* after c_failover: another primary */
    };
    return cmocka_run_group_tests_name("store contract, redis cluster", tests, group_setup,
                                       group_teardown);
}
