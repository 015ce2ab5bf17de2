/* redis_two_nodes.h - c_two_nodes, shared by the suites that run the redis
 * backend against one server (test_store_redis.c, plain and TLS) and
 * against a cluster (test_rcluster.c). Include after store_contract.h. */
#ifndef TS_TEST_REDIS_TWO_NODES_H
#define TS_TEST_REDIS_TWO_NODES_H

/* Two nodes: two stores opened on one Redis, each on its own loop, as two
 * tabsyncd processes are. One sequence per session whoever appends; the
 * exactly-once window seen by both; one holder of a lease; messages across;
 * an entry whose node went away reported expired once, by one of them. */
static void c_two_nodes(void **state) {
    sc_t a, b;
    sc_open(&a, *state, sc_patch_fast_sweep);
    sc_open(&b, *state, sc_patch_fast_sweep); /* the same prefix: one deployment */
    sc_res_t r;
    uint64_t seq = 0;
    assert_ts_err(sc_commit(&a, "x", "e1", "cl", 1, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 1);
    assert_ts_err(sc_commit(&b, "x", "e1", "cl", 1, SC_ANY, 1, &r), TS_EDUP);
    assert_int_equal(r.seq, 1);
    assert_ts_err(sc_commit(&b, "x", "e2", NULL, 0, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 2);
    assert_int_equal(r.state_ver, 2);
    assert_ts_err(sc_append(&a, "x", "e3", &seq), 0);
    assert_int_equal(seq, 3);
    assert_ts_err(sc_read(&b, "x", 0, 10, &r), 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.ev[0], "e1");
    assert_string_equal(r.ev[2], "e3");
    /* one epoch: both nodes resume the same history */
    sc_res_t sa, sb;
    assert_ts_err(sc_sess(&a, "x", &sa), 0);
    assert_ts_err(sc_sess(&b, "x", &sb), 0);
    assert_true(sa.epoch != 0);
    assert_true(sa.epoch == sb.epoch);
    /* one holder; the other node's grant waits for its term */
    assert_ts_err(sc_acquire(&a, "L", "ha", 5000, &r), 0);
    uint64_t term = r.term;
    assert_ts_err(sc_acquire(&b, "L", "hb", 5000, &r), TS_EHELD);
    assert_string_equal(r.holder, "ha");
    assert_ts_err(sc_transfer(&b, "L", term, "hb", 5000, &r), 0);
    assert_int_equal(r.term, term + 1);
    assert_ts_err(sc_lrenew(&a, "L", "ha", term, 5000, &r), TS_ESTALE);
    /* pub/sub across */
    sc_inbox_t in = {.t = &a};
    assert_ts_err(sc_sub(&a, &a.st, "news", &in), 0);
    assert_ts_err(sc_pub(&b, "news", "hello", 5), 0);
    sc_wait_msgs(&a, &in, 1);
    assert_memory_equal(in.msg[0], "hello", 5);
    /* a tab of a node that stopped renewing: reported once in all */
    assert_ts_err(sc_put(&b, "s1", "u1", "d1", "gone", "", 60), 0);
    uint64_t deadline = ts_now_ms() + 2000;
    while (a.expired + b.expired == 0 && ts_now_ms() < deadline) {
        sc_sleep(&a, 5);
        sc_sleep(&b, 5);
    }
    for (int i = 0; i < 10; i++) { /* both sweep several times more */
        sc_sleep(&a, 10);
        sc_sleep(&b, 10);
    }
    assert_int_equal(a.expired + b.expired, 1);
    sc_close(&b);
    sc_close(&a);
}

#endif
