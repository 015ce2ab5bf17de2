/* test_store_redis.c - the redis backend against a redis-server the test
 * starts: the whole store contract (registry, logs, state, the session
 * history with exactly-once, fences and snapshots, retention, leases,
 * publish/subscribe), each test with its own key prefix on one server, and
 * c_two_nodes: two stores on one Redis, as two tabsyncd nodes; plain
 * commits as one XADD, an older build's script refused on such a log
 * (c_plain_xadd), a log of the older id layout read and extended in its
 * own (c_layout1), and the contract again with every new log started in
 * that layout, with a rolling upgrade from a build before it (c_upgrade).
 * All of it
 * twice: over TCP (redis://) and over TLS (rediss://, a CA the test makes,
 * the server's certificate verified); and a wrong CA refused. Then a third
 * time with ?replicas=1 over the same server, which has a replica: every
 * write is answered only once the replica has it (c_repl_acked), a replica
 * stopped (SIGSTOP) or killed makes writes fail with TS_ESTORE, never 0,
 * while reads go on (c_repl_down), and c_repl_cost measures what WAIT
 * costs a commit (docs/STORE.md). */
#include "store/store_contract.h"
#include "store/redis_server.h"

#include <time.h>

static redis_t server, tls_server, replica;
static char url[64], prefix[32], tls_url[256], certdir[64], repl_url[128];

static sc_env_t env_redis, env_tls, env_repl, env_v1;

/* A key prefix of its own for each test, and for each environment on the
 * one server: t0:, t1:, ... (TCP and TLS), r (?replicas=1), v (layout 1). */
static void env_fresh(sc_env_t *env) {
    char tag = env == &env_repl ? 'r' : env == &env_v1 ? 'v' : 't';
    snprintf(prefix, sizeof prefix, "%c%d:", tag, env->counter++);
    env->cfg.redis_prefix = prefix;
}

static sc_env_t env_redis = {
    .label = "redis",
    .ops = &ts_store_redis_ops,
    .fresh = env_fresh,
    .durable_on_execute = 1,
};

static sc_env_t env_tls = {
    .label = "redis over TLS",
    .ops = &ts_store_redis_ops,
    .fresh = env_fresh,
    .durable_on_execute = 1,
};

static sc_env_t env_repl = {
    .label = "redis ?replicas=1",
    .ops = &ts_store_redis_ops,
    .fresh = env_fresh,
    .durable_on_execute = 1,
};

/* Every log it starts in layout 1 (--redis-log-layout 1: a rolling upgrade
 * from a build before layout 2). */
static sc_env_t env_v1 = {
    .label = "redis, new logs in layout 1",
    .ops = &ts_store_redis_ops,
    .fresh = env_fresh,
    .durable_on_execute = 1,
    .cfg = {.redis_log_layout = TS_STORE_RLOG_V1},
};

static int group_setup(void **state) {
    (void)state;
    redis_start(&server, "repl-diskless-sync-delay 0\n"); /* the replica syncs at once */
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", server.port);
    env_redis.cfg.redis_url = url;
    env_v1.cfg.redis_url = url;
    char conf[1024];
    snprintf(conf, sizeof conf, "replicaof 127.0.0.1 %u\nrepl-diskless-sync-delay 0\n", server.port);
    redis_start(&replica, conf);
    char out[4096];
    for (uint64_t until = ts_now_ms() + 10000;;) { /* its first sync is done */
        assert_int_equal(sh(out, sizeof out, "redis-cli -p %u info replication", replica.port), 0);
        if (strstr(out, "master_link_status:up")) break;
        if (ts_now_ms() > until) fail_msg("the replica on %u never synced", replica.port);
        usleep(20000);
    }
    snprintf(repl_url, sizeof repl_url, "%s?replicas=1&replicas_timeout=300", url);
    env_repl.cfg.redis_url = repl_url;
    snprintf(certdir, sizeof certdir, "/tmp/ts_stls_XXXXXX");
    assert_non_null(mkdtemp(certdir));
    redis_tls_files(certdir);
    redis_start(&tls_server, redis_tls_conf(&tls_server, certdir, "no", conf, sizeof conf));
    for (int i = 0; i < 200 && !port_open(tls_server.tls_port); i++) usleep(10000);
    if (!port_open(tls_server.tls_port))
        fail_msg("redis-server has no TLS port (built without TLS?): see %s/redis.log",
                 tls_server.dir);
    snprintf(tls_url, sizeof tls_url, "rediss://127.0.0.1:%u?cacert=%s/ca.pem",
             tls_server.tls_port, certdir);
    env_tls.cfg.redis_url = tls_url;
    return 0;
}

static int group_teardown(void **state) {
    redis_cleanup(&server);
    redis_cleanup(&replica);
    redis_cleanup(&tls_server);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", certdir);
    return redis_stop_all(state);
}

static void sc_patch_wrong_ca(ts_store_cfg_t *c) {
    static char u[256];
    snprintf(u, sizeof u, "rediss://127.0.0.1:%u?cacert=%s/other-ca.pem", tls_server.tls_port,
             certdir);
    c->redis_url = u;
}

static void sc_patch_missing_ca(ts_store_cfg_t *c) {
    static char u[256];
    snprintf(u, sizeof u, "rediss://127.0.0.1:%u?cacert=%s/none.pem", tls_server.tls_port,
             certdir);
    c->redis_url = u;
}

/* A CA that did not sign the server's certificate: every op fails with
 * TS_ESTORE (the log says why); a CA file that cannot be read: open says so. */
static void c_tls_wrong_ca(void **state) {
    sc_t t;
    sc_open(&t, *state, sc_patch_wrong_ca);
    uint64_t seq = 0;
    assert_ts_err(sc_append(&t, "s", "e", &seq), TS_ESTORE);
    sc_res_t r;
    assert_ts_err(sc_lget(&t, "L", &r), TS_ESTORE);
    sc_close(&t);
    char err[512];
    assert_ts_err(sc_open_with(&t, *state, sc_patch_missing_ca, err, sizeof err), TS_EINVAL);
    if (!strstr(err, "none.pem")) fail_msg("open: %s", err);
    assert_int_equal(uv_loop_close(&t.loop), 0);
}

/* The length of a session's log stream on the replica. */
static long long replica_xlen(const char *sess) {
    char out[64];
    assert_int_equal(sh(out, sizeof out, "redis-cli -p %u xlen '%sl:{%s}'", replica.port, prefix,
                        sess),
                     0);
    return strtoll(out, NULL, 10);
}

/* ?replicas=1: when a commit's callback runs, the replica has it already
 * (with asynchronous replication alone it may not have it yet). */
static void c_repl_acked(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r;
    for (uint64_t i = 1; i <= 30; i++) {
        assert_ts_err(sc_commit(&t, "ra", "e", "cl", i, SC_ANY, 1, &r), 0);
        assert_int_equal(r.seq, i);
        assert_int_equal(replica_xlen("ra"), (long long)i);
    }
    assert_ts_err(sc_commit(&t, "ra", "e", "cl", 30, SC_ANY, 1, &r), TS_EDUP); /* a read-only answer */
    sc_close(&t);
}

/* A replica that does not answer: writes fail with TS_ESTORE after the WAIT
 * timeout (300 ms here), never 0, whatever is pipelined with them; reads
 * are answered; once the replica is back, the resend of a write that failed
 * finds it applied (TS_EDUP: the contract's "ask again"); a replica killed:
 * TS_ESTORE again. */
static void c_repl_down(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r;
    assert_ts_err(sc_commit(&t, "rd", "e1", "cl", 1, SC_ANY, 1, &r), 0);
    assert_int_equal(kill(replica.pid, SIGSTOP), 0);
    uint64_t t0 = ts_now_ms();
    assert_ts_err(sc_commit(&t, "rd", "e2", "cl", 2, SC_ANY, 1, &r), TS_ESTORE);
    uint64_t took = ts_now_ms() - t0;
    assert_true(took >= 250 && took < 3000);
    /* pipelined: writes and reads in one turn, and turns after it */
    enum { N = 12 };
    sc_res_t rs[N];
    ts_buf_t *b = ts_buf_from("e3", 2);
    for (int i = 0; i < N; i++) {
        if (i % 4 == 3) {
            assert_ts_err(SC_CALL(&t, &rs[i], ts_store_log_read(&t.st, S("rd"), 0, 10, sc_on_log,
                                                                  &rs[i])),
                          0);
        } else {
            ts_store_commit_t c = {b, S("cl"), (uint64_t)(3 + i), SC_ANY, 1, 0, ts_slice("", 0), 0,
                                   ts_slice("", 0)};
            assert_ts_err(SC_CALL(&t, &rs[i], ts_store_commit(&t.st, S("rd"), &c, sc_on_commit,
                                                             &rs[i])),
                          0);
        }
        if (i == 5) sc_sleep(&t, 5); /* a second turn */
    }
    ts_buf_unref(b);
    for (int i = 0; i < N; i++) {
        sc_wait(&t, &rs[i]);
        if (i % 4 == 3) assert_ts_err(rs[i].status, 0);
        else assert_ts_err(rs[i].status, TS_ESTORE);
        if (i) assert_true(rs[i].order > rs[i - 1].order); /* issue order */
    }
    t0 = ts_now_ms();
    assert_ts_err(sc_read(&t, "rd", 0, 20, &r), 0); /* no write in its turn: no WAIT */
    assert_true(ts_now_ms() - t0 < 250);
    assert_true(r.n >= 2); /* e2 was applied on the primary, just not replicated in time */
    assert_int_equal(kill(replica.pid, SIGCONT), 0);
    int rc;
    uint64_t until = ts_now_ms() + 5000;
    while ((rc = sc_commit(&t, "rd", "e2", "cl", 2, SC_ANY, 1, &r)) == TS_ESTORE &&
           ts_now_ms() < until)
        sc_sleep(&t, 50);
    assert_ts_err(rc, TS_EDUP); /* asked again: it was applied, and is replicated now */
    assert_int_equal(r.orig_seq, 2);
    assert_ts_err(sc_commit(&t, "rd", "e20", "cl", 20, SC_ANY, 1, &r), 0);
    assert_int_equal(replica_xlen("rd"), (long long)r.seq);
    redis_kill(&replica, SIGKILL);
    for (int i = 0; i < 3; i++)
        assert_ts_err(sc_commit(&t, "rd", "e", "cl", 21 + (uint64_t)i, SC_ANY, 1, &r), TS_ESTORE);
    assert_ts_err(sc_read(&t, "rd", 0, 40, &r), 0);
    sc_close(&t);
}

static void sc_patch_no_wait(ts_store_cfg_t *c) { c->redis_url = url; }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* What WAIT costs, on this machine's loopback: one commit at a time (the
 * latency a tab sees) and 64 in flight (throughput), without and with
 * ?replicas=1, on the same primary with one replica. Printed, not judged. */
static void c_repl_cost(void **state) {
    enum { SEQ = 400, PIPE = 4000, DEPTH = 64 };
    for (int with = 0; with < 2; with++) {
        sc_t t;
        sc_open(&t, *state, with ? NULL : sc_patch_no_wait);
        static uint64_t us[SEQ];
        sc_res_t r;
        char sess[16];
        snprintf(sess, sizeof sess, "cost%d", with);
        for (int i = 0; i < 20; i++) assert_ts_err(sc_commit(&t, sess, "w", NULL, 0, SC_ANY, 1, &r), 0);
        for (int i = 0; i < SEQ; i++) {
            struct timespec a, z;
            clock_gettime(CLOCK_MONOTONIC, &a);
            assert_ts_err(sc_commit(&t, sess, "e", NULL, 0, SC_ANY, 1, &r), 0);
            clock_gettime(CLOCK_MONOTONIC, &z);
            us[i] = (uint64_t)((z.tv_sec - a.tv_sec) * 1000000 + (z.tv_nsec - a.tv_nsec) / 1000);
        }
        qsort(us, SEQ, sizeof us[0], cmp_u64);
        static sc_res_t rs[PIPE];
        ts_buf_t *b = ts_buf_from("p", 1);
        ts_store_commit_t c = {b, ts_slice("", 0), 0, SC_ANY, 1, 0, ts_slice("", 0), 0,
                               ts_slice("", 0)};
        uint64_t t0 = ts_now_ms();
        int issued = 0, done = 0;
        while (done < PIPE) {
            while (issued < PIPE && issued - done < DEPTH) {
                assert_ts_err(SC_CALL(&t, &rs[issued], ts_store_commit(&t.st, S(sess), &c,
                                                                       sc_on_commit, &rs[issued])),
                              0);
                issued++;
            }
            uv_run(&t.loop, UV_RUN_ONCE);
            while (done < issued && rs[done].called) assert_ts_err(rs[done++].status, 0);
        }
        uint64_t ms = ts_now_ms() - t0;
        ts_buf_unref(b);
        fprintf(stderr,
                "commit cost %s: one at a time p50 %llu us, p90 %llu us, p99 %llu us; "
                "%d in flight: %llu commits/s\n",
                with ? "?replicas=1" : "without WAIT", (unsigned long long)us[SEQ / 2],
                (unsigned long long)us[SEQ * 9 / 10], (unsigned long long)us[SEQ * 99 / 100],
                DEPTH, (unsigned long long)(PIPE * 1000ull / (ms ? ms : 1)));
        sc_close(&t);
    }
}

#include "store/redis_two_nodes.h"

/* Issues commit i of a stream (event "<head><i, two digits>"; is_state 0:
 * a plain event) without waiting for its answer. */
static void commit_nowait(sc_t *t, const char *sess, const char *head, int i, int is_state,
                          sc_res_t *r) {
    char ev[8];
    int l = snprintf(ev, sizeof ev, "%s%02d", head, i);
    ts_buf_t *b = ts_buf_from(ev, (size_t)l);
    ts_store_commit_t c = {b, ts_slice("", 0), 0, SC_ANY, is_state, 0, ts_slice("", 0), 0,
                           ts_slice("", 0)};
    assert_ts_err(SC_CALL(t, r, ts_store_commit(&t->st, S(sess), &c, sc_on_commit, r)), 0);
    ts_buf_unref(b);
}

/* A connection loads every script before its first command: on a server
 * whose script cache is empty (a fresh one, a promoted replica) the
 * scripts exist once the store is up, and commits pipelined behind the
 * first one are appended in issue order. Relying on the EVAL fallback
 * alone, the first commit's NOSCRIPT retry ran after the commits written
 * behind it (js history@3nodes saw seq 2 logged after 3..29; here
 * without the load the order breaks in most runs). */
static void c_fresh_scripts(void **state) {
    assert_int_equal(sh(NULL, 0, "redis-cli -p %u SCRIPT FLUSH", server.port), 0);
    sc_t t;
    sc_open(&t, *state, NULL);
    /* one after the other, each written on its own while the answers of
     * the first ones come back: what a tab publishing a stream does */
    enum { N = 30 };
    sc_res_t r[N];
    for (int i = 0; i < N; i++) {
        commit_nowait(&t, "fresh", "e", i, 1, &r[i]);
        uv_run(&t.loop, UV_RUN_NOWAIT);
        usleep(100);
        uv_run(&t.loop, UV_RUN_NOWAIT);
    }
    for (int i = 0; i < N; i++) {
        sc_wait(&t, &r[i]);
        assert_ts_err(r[i].status, 0);
        if (r[i].seq != (uint64_t)i + 1)
            fail_msg("commit %d appended at seq %llu: out of issue order", i,
                     (unsigned long long)r[i].seq);
    }
    sc_close(&t);
}

/* ---- plain commits without a script, and logs of the older layout ---- */

static ts_store_stats_t stats_of(sc_t *t) {
    ts_store_stats_t st;
    assert_ts_err(ts_store_stats(&t->st, &st), 0);
    return st;
}

/* What redis-cli prints for one command on the test's server, trimmed. */
static void cli(char *out, size_t cap, const char *cmd) {
    assert_int_equal(sh(out, cap, "redis-cli -p %u %s", server.port, cmd), 0);
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
}

/* A plain commit of a build before layout 2 (its script, verbatim) of
 * event ev to session sess: what redis-cli prints (the seq, or the error). */
static void old_build_commit(char *out, size_t cap, const char *sess, const char *ev) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "EVAL \"local tm = redis.call('TIME') local now = tm[1] * 1000 + math.floor(tm[2] / "
             "1000) local m = redis.call('HMGET', KEYS[2], 'ep', 'hv') local ep = m[1] if not ep "
             "then ep = ARGV[2] redis.call('HSET', KEYS[2], 'ep', ep) end local seq = "
             "redis.call('HINCRBY', KEYS[2], 'last', 1) redis.call('XADD', KEYS[1], seq .. '-1', "
             "'e', ARGV[1], 't', now) return {0, ep, seq, tonumber(m[2] or '0'), false, 0}\" 2 "
             "'%sl:{%s}' '%sl:{%s}:m' %s 1 2>&1",
             prefix, sess, prefix, sess, ev);
    cli(out, cap, cmd);
}

/* Plain events go in as one XADD each (docs/STORE.md): Redis numbers them
 * 0-<seq>; the session's first one also sets the epoch and the layout mark
 * (last = v2). 16 issued at once keep their order; each answer carries the
 * epoch every later read reports, and the state's version. The log reads,
 * trims and snapshots as any other, and no plain commit took the script. */
static void c_plain_xadd(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    ts_store_stats_t st0 = stats_of(&t);
    enum { N = 16 };
    sc_res_t r[N];
    for (int i = 0; i < N; i++) commit_nowait(&t, "plain", "p", i, 0, &r[i]);
    for (int i = 0; i < N; i++) {
        sc_wait(&t, &r[i]);
        assert_ts_err(r[i].status, 0);
        assert_int_equal(r[i].seq, (uint64_t)i + 1);
        assert_int_equal(r[i].epoch, r[0].epoch);
        assert_int_equal(r[i].state_ver, 0);
        assert_int_equal(r[i].order, i + 1 + r[0].order - 1);
    }
    ts_store_stats_t st1 = stats_of(&t);
    assert_int_equal(st1.plain_xadd - st0.plain_xadd, N);
    assert_int_equal(st1.plain_script - st0.plain_script, 0);
    char out[4096], cmd[1024];
    snprintf(cmd, sizeof cmd, "XRANGE '%sl:{plain}' - + COUNT 2", prefix);
    cli(out, sizeof out, cmd);
    assert_non_null(strstr(out, "0-1\ne\np00\nt\n"));
    assert_non_null(strstr(out, "0-2\ne\np01\n"));
    snprintf(cmd, sizeof cmd, "HGET '%sl:{plain}:m' last", prefix);
    cli(out, sizeof out, cmd);
    assert_string_equal(out, "v2");
    sc_res_t s;
    assert_ts_err(sc_sess(&t, "plain", &s), 0);
    assert_int_equal(s.epoch, r[0].epoch);
    assert_int_equal(s.last_seq, N);
    /* a state change between plain events: the next plain answer says so */
    sc_res_t c;
    assert_ts_err(sc_commit(&t, "plain", "{\"k\":1}", "cl", 1, SC_ANY, 1, &c), 0);
    assert_int_equal(c.seq, N + 1);
    assert_int_equal(c.state_ver, 1);
    assert_ts_err(sc_commit(&t, "plain", "after", NULL, 0, SC_ANY, 0, &c), 0);
    assert_int_equal(c.seq, N + 2);
    assert_int_equal(c.state_ver, 1);
    sc_res_t rd;
    assert_ts_err(sc_read(&t, "plain", 14, 10, &rd), 0);
    assert_int_equal(rd.n, 4);
    assert_int_equal(rd.seqs[0], 15);
    assert_string_equal(rd.ev[3], "after");
    assert_int_equal(rd.last_seq, N + 2);
    assert_ts_err(sc_trim(&t, "plain", 10), 0);
    assert_ts_err(sc_read(&t, "plain", 0, 10, &rd), 0);
    assert_int_equal(rd.trimmed, 10);
    assert_int_equal(rd.seqs[0], 11);
    assert_ts_err(sc_snap(&t, "plain", N + 2, 1, "{\"k\":1}"), 0);
    assert_ts_err(sc_snap(&t, "plain", N + 3, 1, "{}"), TS_EINVAL); /* past the last */
    /* an older build's plain commit is refused on this log rather than
     * appending an id of the other layout */
    old_build_commit(out, sizeof out, "plain", "old");
    assert_non_null(strstr(out, "not an integer"));
    assert_ts_err(sc_read(&t, "plain", N, 10, &rd), 0);
    assert_int_equal(rd.n, 2); /* nothing appended */
    assert_int_equal(rd.last_seq, N + 2);
    sc_close(&t);
}

/* A log written by a build before layout 2 (ids <seq>-1, the hash's last a
 * number), made here by hand: read, appended to (plain commits through the
 * script, counted), deduplicated, trimmed and snapshotted in its own
 * layout; its new entries keep its ids. */
static void c_layout1(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    char out[4096], cmd[512];
    snprintf(cmd, sizeof cmd,
             "HSET '%sl:{old}:m' last 3 ep 77 && redis-cli -p %u XADD '%sl:{old}' 1-1 e one t 1 "
             "&& redis-cli -p %u XADD '%sl:{old}' 2-1 e two t 1 && redis-cli -p %u XADD '%sl:{old}' "
             "3-1 e three t 1",
             prefix, server.port, prefix, server.port, prefix, server.port, prefix);
    cli(out, sizeof out, cmd);
    sc_res_t s;
    assert_ts_err(sc_sess(&t, "old", &s), 0);
    assert_int_equal(s.epoch, 77);
    assert_int_equal(s.last_seq, 3);
    sc_res_t rd;
    assert_ts_err(sc_read(&t, "old", 1, 10, &rd), 0);
    assert_int_equal(rd.n, 2);
    assert_int_equal(rd.seqs[0], 2);
    assert_string_equal(rd.ev[1], "three");
    assert_int_equal(rd.last_seq, 3);
    ts_store_stats_t st0 = stats_of(&t);
    sc_res_t c;
    assert_ts_err(sc_commit(&t, "old", "four", NULL, 0, SC_ANY, 0, &c), 0);
    assert_int_equal(c.seq, 4);
    assert_int_equal(c.epoch, 77);
    ts_store_stats_t st1 = stats_of(&t);
    assert_int_equal(st1.plain_script - st0.plain_script, 1);
    assert_int_equal(st1.plain_xadd - st0.plain_xadd, 0);
    assert_ts_err(sc_commit(&t, "old", "five", "cl", 1, SC_ANY, 0, &c), 0);
    assert_int_equal(c.seq, 5);
    assert_ts_err(sc_commit(&t, "old", "five", "cl", 1, SC_ANY, 0, &c), TS_EDUP);
    assert_int_equal(c.orig_seq, 5);
    assert_string_equal(c.orig, "five");
    snprintf(cmd, sizeof cmd, "XREVRANGE '%sl:{old}' + - COUNT 1", prefix);
    cli(out, sizeof out, cmd);
    assert_int_equal(strncmp(out, "5-1\n", 4), 0);
    assert_ts_err(sc_trim(&t, "old", 2), 0);
    assert_ts_err(sc_read(&t, "old", 0, 10, &rd), 0);
    assert_int_equal(rd.n, 3);
    assert_int_equal(rd.seqs[0], 3);
    assert_int_equal(rd.trimmed, 2);
    assert_int_equal(rd.last_seq, 5);
    assert_ts_err(sc_snap(&t, "old", 5, 0, "{}"), 0);
    assert_ts_err(sc_sess(&t, "old", &s), 0);
    assert_int_equal(s.last_seq, 5);
    assert_int_equal(s.snap_seq, 5);
    sc_close(&t);
}

static void sc_patch_v1(ts_store_cfg_t *c) { c->redis_log_layout = TS_STORE_RLOG_V1; }

/* A rolling upgrade (docs/DEPLOYMENT.md "Upgrading the nodes"): upgraded
 * nodes with --redis-log-layout 1 start logs that a node of a build before
 * layout 2 extends (its script, verbatim), and every plain commit of
 * theirs takes the script. Then the nodes restarted with the default
 * layout extend those logs in layout 1 and start new ones in layout 2;
 * where one of them made a log with its XADD whose mark is not set yet, a
 * layout-1 node's script follows the stream's layout rather than the
 * flag's. */
static void c_upgrade(void **state) {
    sc_t a, b;
    sc_open(&a, *state, sc_patch_v1); /* upgraded, --redis-log-layout 1 */
    ts_store_stats_t st0 = stats_of(&a);
    enum { N = 8 };
    sc_res_t r[N];
    for (int i = 0; i < N; i++) commit_nowait(&a, "up", "u", i, 0, &r[i]);
    for (int i = 0; i < N; i++) {
        sc_wait(&a, &r[i]);
        assert_ts_err(r[i].status, 0);
        assert_int_equal(r[i].seq, (uint64_t)i + 1);
    }
    ts_store_stats_t st1 = stats_of(&a);
    assert_int_equal(st1.plain_script - st0.plain_script, N);
    assert_int_equal(st1.plain_xadd - st0.plain_xadd, 0);
    char out[4096], cmd[512];
    snprintf(cmd, sizeof cmd, "HGET '%sl:{up}:m' last", prefix);
    cli(out, sizeof out, cmd);
    assert_string_equal(out, "8");
    /* the node not upgraded yet extends it, and the upgraded one goes on */
    old_build_commit(out, sizeof out, "up", "older");
    assert_non_null(strstr(out, "\n9\n"));
    sc_res_t c, rd;
    assert_ts_err(sc_commit(&a, "up", "{\"k\":1}", "cl", 1, SC_ANY, 1, &c), 0);
    assert_int_equal(c.seq, 10);
    assert_ts_err(sc_read(&a, "up", 7, 10, &rd), 0);
    assert_int_equal(rd.n, 3);
    assert_string_equal(rd.ev[1], "older");
    snprintf(cmd, sizeof cmd, "XREVRANGE '%sl:{up}' + - COUNT 1", prefix);
    cli(out, sizeof out, cmd);
    assert_int_equal(strncmp(out, "10-1\n", 5), 0);
    /* a node restarted with layout 2 extends it in layout 1 (its XADD is
     * refused, the script appends) */
    sc_open(&b, *state, NULL);
    ts_store_stats_t sb0 = stats_of(&b);
    assert_ts_err(sc_commit(&b, "up", "eleven", NULL, 0, SC_ANY, 0, &c), 0);
    assert_int_equal(c.seq, 11);
    ts_store_stats_t sb1 = stats_of(&b);
    assert_int_equal(sb1.plain_script - sb0.plain_script, 1);
    cli(out, sizeof out, cmd);
    assert_int_equal(strncmp(out, "11-1\n", 5), 0);
    /* a stream a layout-2 node started (its XADD landed, its HSETNX of the
     * mark not yet): the layout-1 node's next append follows it */
    snprintf(cmd, sizeof cmd, "XADD '%sl:{race}' 0-* e first t 1", prefix);
    cli(out, sizeof out, cmd);
    assert_string_equal(out, "0-1");
    assert_ts_err(sc_commit(&a, "race", "second", NULL, 0, SC_ANY, 0, &c), 0);
    assert_int_equal(c.seq, 2);
    snprintf(cmd, sizeof cmd, "HGET '%sl:{race}:m' last", prefix);
    cli(out, sizeof out, cmd);
    assert_string_equal(out, "v2");
    assert_ts_err(sc_commit(&b, "race", "third", NULL, 0, SC_ANY, 0, &c), 0);
    assert_int_equal(c.seq, 3);
    assert_ts_err(sc_read(&a, "race", 0, 10, &rd), 0);
    assert_int_equal(rd.n, 3);
    assert_string_equal(rd.ev[0], "first");
    assert_string_equal(rd.ev[2], "third");
    sc_close(&b);
    sc_close(&a);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        SC_CONTRACT_TESTS(&env_redis),
        SC_T(c_two_nodes, &env_redis),
        SC_T(c_fresh_scripts, &env_redis),
        SC_T(c_plain_xadd, &env_redis),
        SC_T(c_layout1, &env_redis),
        SC_T(c_upgrade, &env_redis),
        SC_CONTRACT_TESTS(&env_v1),
        SC_T(c_two_nodes, &env_v1),
        SC_CONTRACT_TESTS(&env_tls),
        SC_T(c_two_nodes, &env_tls),
        SC_T(c_tls_wrong_ca, &env_tls),
        SC_CONTRACT_TESTS(&env_repl),
        SC_T(c_two_nodes, &env_repl),
        SC_T(c_repl_acked, &env_repl),
        SC_T(c_repl_cost, &env_repl),
        SC_T(c_repl_down, &env_repl), /* last: it kills the replica */
    };
    return cmocka_run_group_tests_name("store contract, redis", tests,
                                       group_setup, group_teardown);
}
