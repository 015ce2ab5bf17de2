/* test_hlc.c - the hybrid logical clock: monotonic whatever the wall clock
 * does (frozen, backwards), the logical part carrying into the next
 * millisecond, the rules for remote timestamps, and two threads drawing
 * from one clock without ever getting the same value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/ts_err.h"
#include "core/ts_hlc.h"

#define T0 1700000000000ull /* a wall clock in ms */

static void layout(void **state) {
    (void)state;
    uint64_t h = ts_hlc_make(T0, 7);
    assert_int_equal(h, T0 * 1024 + 7);
    assert_int_equal(ts_hlc_ms(h), T0);
    assert_int_equal(ts_hlc_logical(h), 7);
    assert_true(ts_hlc_make(T0, 1023) < (1ull << 53)); /* a JavaScript number */
    /* and it stays one until the year 2248 (2^43 ms) */
    assert_true(ts_hlc_make((1ull << 43) - 1, 1023) < (1ull << 53));
    char buf[32];
    assert_int_equal(ts_hlc_format(h, buf, sizeof buf), strlen("1700000000000.7"));
    assert_string_equal(buf, "1700000000000.7");
}

static void now_monotonic(void **state) {
    (void)state;
    ts_hlc_t c = TS_HLC_INIT;
    uint64_t a = ts_hlc_now(&c, T0);
    assert_int_equal(a, ts_hlc_make(T0, 0));
    /* frozen wall clock: the logical part counts */
    uint64_t prev = a;
    for (int i = 1; i < 100; i++) {
        uint64_t h = ts_hlc_now(&c, T0);
        assert_true(h > prev);
        assert_int_equal(ts_hlc_ms(h), T0);
        assert_int_equal(ts_hlc_logical(h), (uint32_t)i);
        prev = h;
    }
    /* backwards wall clock: still increasing */
    for (int i = 0; i < 100; i++) {
        uint64_t h = ts_hlc_now(&c, T0 - 1000 - (uint64_t)i);
        assert_true(h > prev);
        prev = h;
    }
    /* the wall clock moves on: back to logical 0 */
    uint64_t h = ts_hlc_now(&c, T0 + 5);
    assert_int_equal(h, ts_hlc_make(T0 + 5, 0));
}

static void logical_overflow(void **state) {
    (void)state;
    ts_hlc_t c = TS_HLC_INIT;
    uint64_t prev = 0;
    for (unsigned i = 0; i <= TS_HLC_LOGICAL_MAX + 2; i++) {
        uint64_t h = ts_hlc_now(&c, T0);
        assert_true(h > prev);
        prev = h;
    }
    /* 1026 values from a frozen ms: 1024 in T0, then T0 + 1 with 0 and 1 */
    assert_int_equal(ts_hlc_ms(prev), T0 + 1);
    assert_int_equal(ts_hlc_logical(prev), 1);
    /* the wall clock reaching T0 + 1 does not go back to logical 0 */
    assert_true(ts_hlc_now(&c, T0 + 1) > prev);
}

static void recv_rules(void **state) {
    (void)state;
    ts_hlc_t c = TS_HLC_INIT;
    uint64_t out = 0, h = ts_hlc_now(&c, T0);
    /* a remote from the past: local time goes on */
    assert_int_equal(ts_hlc_recv(&c, ts_hlc_make(T0 - 50, 3), T0, 60000, &out), 0);
    assert_true(out > h);
    assert_int_equal(ts_hlc_ms(out), T0);
    /* a remote ahead within the limit: adopted, plus one */
    uint64_t r = ts_hlc_make(T0 + 30000, 9);
    assert_int_equal(ts_hlc_recv(&c, r, T0, 60000, &out), 0);
    assert_int_equal(out, r + 1);
    assert_true(ts_hlc_now(&c, T0) > r + 1);
    /* exactly at the limit: accepted; one ms beyond: refused, clock unchanged */
    assert_int_equal(ts_hlc_recv(&c, ts_hlc_make(T0 + 60000, 0), T0, 60000, &out), 0);
    uint64_t before = c.last;
    assert_int_equal(ts_hlc_recv(&c, ts_hlc_make(T0 + 60001, 0), T0, 60000, &out), TS_EINVAL);
    assert_int_equal(c.last, before);
    /* a remote equal to last: the result is still greater */
    assert_int_equal(ts_hlc_recv(&c, c.last, T0, 60000, &out), 0);
    assert_int_equal(out, before + 1);
    /* the remote's logical part full: carries */
    ts_hlc_t d = TS_HLC_INIT;
    assert_int_equal(ts_hlc_recv(&d, ts_hlc_make(T0, TS_HLC_LOGICAL_MAX), T0, 0, &out), 0);
    assert_int_equal(out, ts_hlc_make(T0 + 1, 0));
}

#define PER_THREAD 200000

static void *hammer(void *arg) {
    ts_hlc_t *c = ((void **)arg)[0];
    uint64_t *vals = ((void **)arg)[1];
    for (int i = 0; i < PER_THREAD; i++) {
        /* mixed: local events and merges of a slightly older remote */
        if (i % 7 == 3) {
            uint64_t out;
            ts_hlc_recv(c, i > 0 ? vals[i - 1] : 0, T0, 60000, &out);
            vals[i] = out;
        } else {
            vals[i] = ts_hlc_now(c, T0 + (uint64_t)(i % 5));
        }
        if (i > 0 && vals[i] <= vals[i - 1]) return (void *)1; /* per thread: increasing */
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void two_threads(void **state) {
    (void)state;
    ts_hlc_t c = TS_HLC_INIT;
    uint64_t *vals = calloc(2 * PER_THREAD, sizeof *vals);
    void *args[2][2] = {{&c, vals}, {&c, vals + PER_THREAD}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, hammer, args[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    qsort(vals, 2 * PER_THREAD, sizeof *vals, cmp_u64);
    for (size_t i = 1; i < 2 * PER_THREAD; i++)
        if (vals[i] == vals[i - 1])
            fail_msg("value %llu handed out twice", (unsigned long long)vals[i]);
    assert_int_equal(c.last, vals[2 * PER_THREAD - 1]);
    free(vals);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout),     cmocka_unit_test(now_monotonic),
        cmocka_unit_test(logical_overflow), cmocka_unit_test(recv_rules),
        cmocka_unit_test(two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
