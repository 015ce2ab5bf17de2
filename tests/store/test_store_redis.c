/* test_store_redis.c - the redis backend against a redis-server the test
 * starts: the whole store contract (registry, logs, state, the session
 * history with exactly-once, fences and snapshots, retention, leases,
 * publish/subscribe), each test with its own key prefix on one server, and
 * c_two_nodes: two stores on one Redis, as two tabsyncd nodes. All of it
 * twice: over TCP (redis://) and over TLS (rediss://, a CA the test makes,
 * the server's certificate verified); and a wrong CA refused. */
#include "store/store_contract.h"
#include "store/redis_server.h"

static redis_t server, tls_server;
static char url[64], prefix[32], tls_url[256], certdir[64];

static void env_fresh(sc_env_t *env) {
    snprintf(prefix, sizeof prefix, "t%d:", env->counter++);
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

static int group_setup(void **state) {
    (void)state;
    redis_start(&server, NULL);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", server.port);
    env_redis.cfg.redis_url = url;
    snprintf(certdir, sizeof certdir, "/tmp/ts_stls_XXXXXX");
    assert_non_null(mkdtemp(certdir));
    redis_tls_files(certdir);
    char conf[1024];
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

#include "store/redis_two_nodes.h"

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        SC_CONTRACT_TESTS(&env_redis),
        SC_T(c_two_nodes, &env_redis),
        SC_CONTRACT_TESTS(&env_tls),
        SC_T(c_two_nodes, &env_tls),
        SC_T(c_tls_wrong_ca, &env_tls),
    };
    return cmocka_run_group_tests_name("store contract, redis", tests,
                                       group_setup, group_teardown);
}
