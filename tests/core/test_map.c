/* test_map.c - the string hash map: insert, replace, delete with
 * tombstones, growth, iteration with removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_map.h"

static void put_get_del(void **state) {
    (void)state;
    ts_map_t m = TS_MAP_INIT;
    int a = 1, b = 2, c = 3;
    assert_null(ts_map_get(&m, "x", 1));
    assert_null(ts_map_put(&m, "alpha", 5, &a));
    assert_null(ts_map_put(&m, "beta", 4, &b));
    assert_ptr_equal(ts_map_get(&m, "alpha", 5), &a);
    assert_ptr_equal(ts_map_get(&m, "beta", 4), &b);
    assert_null(ts_map_get(&m, "alph", 4)); /* length is part of the key */
    assert_ptr_equal(ts_map_put(&m, "alpha", 5, &c), &a);
    assert_ptr_equal(ts_map_get(&m, "alpha", 5), &c);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(ts_map_del(&m, "alpha", 5), &c);
    assert_null(ts_map_del(&m, "alpha", 5));
    assert_null(ts_map_get(&m, "alpha", 5));
    assert_ptr_equal(ts_map_get(&m, "beta", 4), &b); /* found past the tombstone */
    assert_int_equal(m.count, 1);
    ts_map_deinit(&m);
}

/* Many keys, deletes interleaved: every live key stays reachable and the
 * count is exact through growth and tombstone reuse. */
static void growth_and_churn(void **state) {
    (void)state;
    enum { N = 5000 };
    static char keys[N][16];
    ts_map_t m = TS_MAP_INIT;
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        ts_map_put(&m, keys[i], strlen(keys[i]), keys[i]);
        if (i % 3 == 0) ts_map_del(&m, keys[i / 2], strlen(keys[i / 2]));
    }
    size_t live = 0;
    for (int i = 0; i < N; i++) {
        void *v = ts_map_get(&m, keys[i], strlen(keys[i]));
        if (v) {
            assert_ptr_equal(v, keys[i]);
            live++;
        }
    }
    assert_int_equal(live, m.count);
    /* iteration visits each live entry once, and may delete as it goes */
    size_t seen = 0, it = 0;
    ts_map_entry_t *e;
    while (ts_map_next(&m, &it, &e)) {
        seen++;
        ts_map_del(&m, e->key, e->klen);
    }
    assert_int_equal(seen, live);
    assert_int_equal(m.count, 0);
    ts_map_deinit(&m);
}

/* Insert/delete cycles on a small live set must not grow without bound. */
static void tombstones_do_not_leak_capacity(void **state) {
    (void)state;
    ts_map_t m = TS_MAP_INIT;
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "s%d", i);
        char *k = strdup(key);
        ts_map_put(&m, k, strlen(k), k);
        free(ts_map_del(&m, k, strlen(k)));
    }
    assert_int_equal(m.count, 0);
    assert_true(m.cap <= 64);
    ts_map_deinit(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_del),
        cmocka_unit_test(growth_and_churn),
        cmocka_unit_test(tombstones_do_not_leak_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
