/* test_store_redis.c - the redis backend against a redis-server the test
 * starts: the whole store contract (registry, logs, state, the session
 * history with exactly-once, fences and snapshots, retention, leases,
 * publish/subscribe), each test with its own key prefix on one server, and
 * c_not_yet for what the backend refuses: a handle on another loop. */
#include "store/store_contract.h"
#include "store/redis_server.h"

static redis_t server;
static char url[64], prefix[32];

static void env_fresh(sc_env_t *env) {
    snprintf(prefix, sizeof prefix, "t%d:", env->counter++);
    env->cfg.redis_prefix = prefix;
}

static sc_env_t env_redis = {
    .label = "redis",
    .ops = &ts_store_redis_ops,
    .fresh = env_fresh,
};

static int group_setup(void **state) {
    (void)state;
    redis_start(&server, NULL);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", server.port);
    env_redis.cfg.redis_url = url;
    return 0;
}

static int group_teardown(void **state) {
    redis_cleanup(&server);
    return redis_stop_all(state);
}

/* What is not built yet is refused at once, never half done: a handle on
 * another loop (each loop would need its own connections). */
static void c_not_yet(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_door_t d;
    assert_int_equal(uv_loop_init(&d.loop), 0);
    assert_ts_err(ts_store_attach(&d.st, &t.st, &d.loop), TS_EINVAL);
    assert_int_equal(uv_loop_close(&d.loop), 0);
    sc_close(&t);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        SC_CONTRACT_TESTS(&env_redis),
        SC_T(c_not_yet, &env_redis),
    };
    return cmocka_run_group_tests_name("store contract, redis", tests,
                                       group_setup, group_teardown);
}
