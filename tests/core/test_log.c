/* test_log.c - the rate limit of records a peer can cause (ts_log_rl_t):
 * at most per_s a second, the rest counted and reported by the next record
 * written, so a flood of refusals cannot fill the disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/ts_log.h"

static void admits_per_second(void **state) {
    (void)state;
    ts_log_rl_t rl = TS_LOG_RL_INIT(3);
    uint64_t sup = 99;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ts_log_rl_admit(&rl, 1000 + (uint64_t)i, &sup), 1);
        assert_int_equal(sup, 0);
    }
    for (int i = 0; i < 1000; i++) assert_int_equal(ts_log_rl_admit(&rl, 1500, &sup), 0);
    assert_int_equal(ts_log_rl_admit(&rl, 1999, &sup), 0);
    /* the next second: written, with the count of what was dropped */
    assert_int_equal(ts_log_rl_admit(&rl, 2000, &sup), 1);
    assert_int_equal(sup, 1001);
    assert_int_equal(ts_log_rl_admit(&rl, 2001, &sup), 1);
    assert_int_equal(sup, 0); /* reported once */
    assert_int_equal(ts_log_rl_admit(&rl, 2002, &sup), 1);
    assert_int_equal(ts_log_rl_admit(&rl, 2003, &sup), 0);
    /* a quiet gap of any length: a fresh second */
    assert_int_equal(ts_log_rl_admit(&rl, 90000000, &sup), 1);
    assert_int_equal(sup, 1);
    /* a clock that steps back stays in the current second */
    assert_int_equal(ts_log_rl_admit(&rl, 5, &sup), 1);
    assert_int_equal(ts_log_rl_admit(&rl, 6, &sup), 1);
    assert_int_equal(ts_log_rl_admit(&rl, 7, &sup), 0);
    assert_true(ts_log_suppressed_total() >= 1003);
}

static void zero_means_one(void **state) {
    (void)state;
    ts_log_rl_t rl = TS_LOG_RL_INIT(0);
    uint64_t sup;
    assert_int_equal(ts_log_rl_admit(&rl, 0, &sup), 1);
    assert_int_equal(ts_log_rl_admit(&rl, 1, &sup), 0);
}

static void limited_writes_below_level_nothing(void **state) {
    (void)state;
    ts_log_rl_t rl = TS_LOG_RL_INIT(1);
    ts_log_level_t old = ts_log_min_level;
    ts_log_min_level = TS_LOG_OFF;
    uint64_t before = ts_log_suppressed_total();
    for (int i = 0; i < 10; i++) ts_log_limited(&rl, TS_LOG_INFO, "test", "code=x", "refused %d", i);
    assert_int_equal(ts_log_suppressed_total(), before); /* not admitted, not counted */
    ts_log_min_level = old;
    uint64_t sup;
    assert_int_equal(ts_log_rl_admit(&rl, 0, &sup), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admits_per_second),
        cmocka_unit_test(zero_means_one),
        cmocka_unit_test(limited_writes_below_level_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
