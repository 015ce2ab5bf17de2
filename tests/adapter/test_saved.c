/* test_saved.c - the local adapter's recovery storage: the window, the
 * bounds by count, bytes and address (oldest first, one address cannot
 * push out another's), replacing a pid, take and put back (same address,
 * same age, order kept), and the counts after random churn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapter/ts_adp_saved.h"

static ts_adp_saved_t *mk(unsigned n, uint64_t at_ms) {
    char sid[TS_ADP_ID_LEN + 1], pid[TS_ADP_ID_LEN + 1];
    snprintf(sid, sizeof sid, "sid-%016u", n);
    snprintf(pid, sizeof pid, "pid-%016u", n);
    const char *rooms[2] = {sid, "room-a"};
    return ts_adp_saved_new(sid, pid, rooms, 2, n % 2 ? "alice" : NULL, at_ms);
}

static const char *pid_of(unsigned n) {
    static char pid[TS_ADP_ID_LEN + 1];
    snprintf(pid, sizeof pid, "pid-%016u", n);
    return pid;
}

static const ts_adp_saved_limits_t roomy = {1000, 1000, 1u << 20, 1000};

static void window(void **state) {
    (void)state;
    ts_adp_saved_set_t set;
    ts_adp_saved_init(&set, &roomy);
    ts_adp_saved_put(&set, mk(1, 100), "10.0.0.1");
    ts_adp_saved_put(&set, mk(2, 600), "10.0.0.1");
    assert_int_equal(set.n, 2);
    ts_adp_saved_t *sv = ts_adp_saved_get(&set, pid_of(1), 1100); /* exactly the window */
    assert_non_null(sv);
    assert_string_equal(sv->sid, "sid-0000000000000001");
    assert_int_equal(sv->nrooms, 2);
    assert_string_equal(sv->rooms[1], "room-a");
    assert_string_equal(sv->owner, "alice");
    assert_null(ts_adp_saved_get(&set, pid_of(1), 1101)); /* past it */
    assert_null(ts_adp_saved_get(&set, pid_of(9), 200));  /* never saved */
    ts_adp_saved_expire(&set, 1101);
    assert_int_equal(set.n, 1);
    assert_null(ts_adp_saved_get(&set, pid_of(1), 200));
    assert_non_null(ts_adp_saved_get(&set, pid_of(2), 1101));
    ts_adp_saved_expire(&set, 5000);
    assert_int_equal(set.n, 0);
    assert_int_equal(set.bytes, 0);
    ts_adp_saved_deinit(&set);
}

static void bounds(void **state) {
    (void)state;
    /* count: the oldest go */
    ts_adp_saved_limits_t lim = roomy;
    lim.max_n = 3;
    ts_adp_saved_set_t set;
    ts_adp_saved_init(&set, &lim);
    for (unsigned i = 1; i <= 5; i++) ts_adp_saved_put(&set, mk(i, 100 + i), "a");
    assert_int_equal(set.n, 3);
    assert_null(ts_adp_saved_get(&set, pid_of(1), 200));
    assert_null(ts_adp_saved_get(&set, pid_of(2), 200));
    assert_non_null(ts_adp_saved_get(&set, pid_of(3), 200));
    ts_adp_saved_deinit(&set);

    /* bytes */
    ts_adp_saved_t *probe = mk(1, 0);
    size_t cost = ts_adp_saved_cost(probe);
    ts_adp_saved_free(probe);
    lim = roomy;
    lim.max_bytes = cost * 2 + cost / 2; /* room for two */
    ts_adp_saved_init(&set, &lim);
    for (unsigned i = 1; i <= 4; i++) ts_adp_saved_put(&set, mk(i, 100 + i), "a");
    assert_int_equal(set.n, 2);
    assert_true(set.bytes <= lim.max_bytes);
    assert_non_null(ts_adp_saved_get(&set, pid_of(4), 200));
    assert_null(ts_adp_saved_get(&set, pid_of(2), 200));
    ts_adp_saved_deinit(&set);

    /* per address: one address floods, the other keeps its session */
    lim = roomy;
    lim.max_per_addr = 2;
    ts_adp_saved_init(&set, &lim);
    ts_adp_saved_put(&set, mk(100, 50), "victim");
    for (unsigned i = 1; i <= 10; i++) ts_adp_saved_put(&set, mk(i, 100 + i), "flooder");
    assert_int_equal(set.n, 3);
    assert_non_null(ts_adp_saved_get(&set, pid_of(100), 200));
    assert_non_null(ts_adp_saved_get(&set, pid_of(10), 200));
    assert_non_null(ts_adp_saved_get(&set, pid_of(9), 200));
    assert_null(ts_adp_saved_get(&set, pid_of(8), 200));
    ts_adp_saved_deinit(&set);
}

static void replace_take_put_back(void **state) {
    (void)state;
    ts_adp_saved_limits_t lim = roomy;
    lim.max_per_addr = 2;
    ts_adp_saved_set_t set;
    ts_adp_saved_init(&set, &lim);
    ts_adp_saved_put(&set, mk(1, 100), "a");
    ts_adp_saved_put(&set, mk(1, 150), "a"); /* same pid: replaced */
    assert_int_equal(set.n, 1);
    assert_int_equal(ts_adp_saved_get(&set, pid_of(1), 200)->at_ms, 150);

    ts_adp_saved_put(&set, mk(2, 200), "a");
    ts_adp_saved_t *sv = ts_adp_saved_get(&set, pid_of(1), 300);
    ts_adp_saved_take(&set, sv);
    assert_int_equal(set.n, 1);
    assert_null(ts_adp_saved_get(&set, pid_of(1), 300));
    size_t bytes_without = set.bytes;
    ts_adp_saved_put_back(&set, sv); /* refused restore: back for its owner */
    assert_int_equal(set.n, 2);
    assert_true(set.bytes > bytes_without);
    assert_ptr_equal(ts_adp_saved_get(&set, pid_of(1), 300), sv);
    /* it kept its age and its address: the next session of address "a"
     * pushes out the oldest, which is still pid 1 */
    ts_adp_saved_put(&set, mk(3, 300), "a");
    assert_null(ts_adp_saved_get(&set, pid_of(1), 300));
    assert_non_null(ts_adp_saved_get(&set, pid_of(2), 300));
    /* and expiry walks ages in order */
    ts_adp_saved_expire(&set, 1250);
    assert_null(ts_adp_saved_get(&set, pid_of(2), 300));
    assert_non_null(ts_adp_saved_get(&set, pid_of(3), 300));
    ts_adp_saved_deinit(&set);
}

/* Random puts, takes, put-backs and expiries: the count and bytes always
 * equal what is reachable, and every bound holds after every step. */
static void churn(void **state) {
    (void)state;
    ts_adp_saved_limits_t lim = {400, 50, 50 * 200, 8};
    ts_adp_saved_set_t set;
    ts_adp_saved_init(&set, &lim);
    static const char *const addrs[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    ts_adp_saved_t *taken[16] = {0};
    unsigned seed = 7, now = 1000;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned op = (seed >> 8) % 10, k = (seed >> 12) % 200, t = (seed >> 20) % 16;
        now += (seed >> 24) % 3;
        if (op < 6) {
            ts_adp_saved_put(&set, mk(k, now), addrs[k % 10]);
        } else if (op < 8 && !taken[t]) {
            ts_adp_saved_t *sv = ts_adp_saved_get(&set, pid_of(k), now);
            if (sv) {
                ts_adp_saved_take(&set, sv);
                taken[t] = sv;
            }
        } else if (op == 8 && taken[t]) {
            ts_adp_saved_put_back(&set, taken[t]);
            taken[t] = NULL;
        } else {
            ts_adp_saved_expire(&set, now);
        }
        assert_true(set.n <= lim.max_n);
        assert_true(set.bytes <= lim.max_bytes);
        size_t n = 0, bytes = 0;
        /* reachable through the pid map, whatever their age (a shallow
         * copy of the set with an endless window reads the same maps) */
        for (unsigned i = 0; i < 200; i++) {
            ts_adp_saved_set_t probe = set;
            probe.lim.window_ms = UINT64_MAX;
            ts_adp_saved_t *sv = ts_adp_saved_get(&probe, pid_of(i), now);
            if (sv) {
                n++;
                bytes += ts_adp_saved_cost(sv);
            }
        }
        assert_int_equal(n, set.n);
        assert_int_equal(bytes, set.bytes);
    }
    for (unsigned t = 0; t < 16; t++) ts_adp_saved_free(taken[t]);
    ts_adp_saved_deinit(&set);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(window),
        cmocka_unit_test(bounds),
        cmocka_unit_test(replace_take_put_back),
        cmocka_unit_test(churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
