/* test_bus.c - the local adapter's bus between loops: one order for every
 * loop (each takes what it has not delivered, its own appends excepted),
 * pruning only what every attached loop delivered and recovery no longer
 * keeps (window, entries, bytes), detaching a loop releases pruning, seq
 * lookups, the ring growing while wrapped, and each entry destroyed exactly
 * once when the last reference goes; then a random schedule of three loops
 * checked against a model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapter/ts_adp_bus.h"

typedef struct {
    ts_adp_entry_t hdr;
    int tag;
} item_t;

static int live; /* items not destroyed yet */

static void destroy(ts_adp_entry_t *e) {
    live--;
    free(e);
}

/* Appends a new item from `loop` (tagged with its seq-to-be), dropping our
 * reference: the bus holds the only one. */
static void append(ts_adp_bus_t *b, size_t loop, uint64_t at_ms, size_t bytes) {
    item_t *it = calloc(1, sizeof(*it));
    ts_adp_entry_init(&it->hdr, at_ms, destroy);
    it->hdr.bytes = bytes;
    it->tag = (int)b->next_seq;
    live++;
    ts_adp_bus_append(b, loop, &it->hdr);
    assert_int_equal(it->hdr.seq, (uint64_t)it->tag);
    ts_adp_entry_unref(&it->hdr);
}

/* Takes what `loop` has not delivered; checks it is seqs [from, from+n). */
static size_t take_check(ts_adp_bus_t *b, size_t loop, uint64_t from) {
    ts_adp_entry_t **v;
    size_t n = ts_adp_bus_take(b, loop, &v);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i]->seq, from + i);
        assert_int_equal(((item_t *)v[i])->tag, (int)(from + i));
        ts_adp_entry_unref(v[i]);
    }
    free(v);
    return n;
}

static void order_and_pruning(void **state) {
    (void)state;
    ts_adp_bus_limits_t lim = {0, 0, 0}; /* no recovery: drop once delivered */
    ts_adp_bus_t b;
    ts_adp_bus_init(&b, &lim, 2);
    ts_adp_bus_attach(&b, 0);
    ts_adp_bus_attach(&b, 1);
    append(&b, 0, 10, 5);
    append(&b, 0, 10, 5);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.bytes, 10);
    /* loop 0 delivered its own two; loop 1 has them to deliver: nothing may
     * go yet */
    assert_int_equal(ts_adp_bus_cursor(&b, 0), 2);
    assert_int_equal(take_check(&b, 0, 2), 0);
    ts_adp_bus_prune(&b, 10);
    assert_int_equal(b.n, 2);
    assert_non_null(ts_adp_bus_at(&b, 0));
    /* loop 1 takes them, then appends its own; loop 0 has that one to take */
    assert_int_equal(take_check(&b, 1, 0), 2);
    append(&b, 1, 10, 5);
    ts_adp_bus_prune(&b, 10);
    assert_int_equal(b.n, 1);
    assert_null(ts_adp_bus_at(&b, 1));
    assert_non_null(ts_adp_bus_at(&b, 2));
    assert_int_equal(take_check(&b, 0, 2), 1);
    assert_int_equal(take_check(&b, 0, 3), 0);
    ts_adp_bus_prune(&b, 10);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.bytes, 0);
    assert_int_equal(live, 0);
    assert_null(ts_adp_bus_at(&b, 1));
    /* a detached loop holds nothing back, and takes nothing */
    append(&b, 0, 11, 1);
    assert_int_equal(ts_adp_bus_cursor(&b, 0), 4);
    ts_adp_bus_detach(&b, 1);
    ts_adp_bus_prune(&b, 11);
    assert_int_equal(b.n, 0);
    ts_adp_entry_t **v;
    assert_int_equal(ts_adp_bus_take(&b, 1, &v), 0);
    assert_null(v);
    ts_adp_bus_deinit(&b);
    assert_int_equal(live, 0);
}

static void recovery_keeps(void **state) {
    (void)state;
    ts_adp_bus_limits_t lim = {100, 4, 1000};
    ts_adp_bus_t b;
    ts_adp_bus_init(&b, &lim, 1);
    ts_adp_bus_attach(&b, 0);
    for (int i = 0; i < 3; i++) append(&b, 0, 1000 + (uint64_t)i * 10, 10);
    ts_adp_bus_prune(&b, 1050);
    assert_int_equal(b.n, 3); /* delivered, but within the window */
    ts_adp_bus_prune(&b, 1105); /* the first (at 1000) is past it */
    assert_int_equal(b.n, 2);
    assert_null(ts_adp_bus_at(&b, 0));
    assert_non_null(ts_adp_bus_at(&b, 1));
    /* the entry bound: prune before each append keeps at most max_entries */
    for (int i = 0; i < 10; i++) {
        ts_adp_bus_prune(&b, 1110);
        append(&b, 0, 1110, 10);
    }
    assert_true(b.n <= 4);
    assert_non_null(ts_adp_bus_at(&b, 12)); /* the newest */
    /* the byte bound */
    ts_adp_bus_prune(&b, 1110);
    append(&b, 0, 1110, 2000);
    ts_adp_bus_prune(&b, 1110);
    assert_int_equal(b.n, 0); /* one entry over the bytes: it goes too */
    ts_adp_bus_deinit(&b);
    assert_int_equal(live, 0);
}

/* Held references outlive the bus's: destroyed at the last unref only. */
static void references(void **state) {
    (void)state;
    ts_adp_bus_limits_t lim = {0, 0, 0};
    ts_adp_bus_t b;
    ts_adp_bus_init(&b, &lim, 2);
    ts_adp_bus_attach(&b, 0);
    ts_adp_bus_attach(&b, 1);
    append(&b, 0, 1, 1);
    ts_adp_entry_t **v;
    assert_int_equal(ts_adp_bus_take(&b, 1, &v), 1);
    ts_adp_bus_prune(&b, 1);
    assert_int_equal(b.n, 0);
    assert_int_equal(live, 1); /* loop 1 still delivers it */
    ts_adp_entry_unref(v[0]);
    free(v);
    assert_int_equal(live, 0);
    ts_adp_bus_deinit(&b);
}

/* Three loops, random appends, takes, prunes, detach/attach; the ring grows
 * while wrapped. Each loop must see every seq from its attach on exactly
 * once, in order; the bus never holds more than it must. */
static void schedule(void **state) {
    (void)state;
    enum { L = 3 };
    ts_adp_bus_limits_t lim = {0, 0, 0};
    ts_adp_bus_t b;
    ts_adp_bus_init(&b, &lim, L);
    uint64_t next[L];
    int attached[L];
    for (size_t i = 0; i < L; i++) {
        ts_adp_bus_attach(&b, i);
        next[i] = 0;
        attached[i] = 1;
    }
    unsigned seed = 99;
    for (int step = 0; step < 50000; step++) {
        seed = seed * 1103515245u + 12345u;
        size_t loop = (seed >> 8) % L;
        unsigned op = (seed >> 16) % 10;
        if (op < 5) {
            if (!attached[loop]) continue;
            /* as sio does: take what came before, then append ours */
            next[loop] += take_check(&b, loop, next[loop]);
            append(&b, loop, 0, 1);
            next[loop] = b.next_seq;
        } else if (op < 8) {
            if (attached[loop]) next[loop] += take_check(&b, loop, next[loop]);
        } else if (op == 8) {
            ts_adp_bus_prune(&b, 0);
        } else if (attached[loop] && (seed >> 24) % 8 == 0) {
            ts_adp_bus_detach(&b, loop);
            attached[loop] = 0;
        } else if (!attached[loop]) {
            ts_adp_bus_attach(&b, loop);
            attached[loop] = 1;
            next[loop] = b.next_seq;
        }
        /* held = from the lowest attached cursor (or fewer, once pruned) */
        uint64_t low = b.next_seq;
        for (size_t i = 0; i < L; i++)
            if (attached[i] && next[i] < low) low = next[i];
        assert_true(b.n <= b.next_seq);
        for (uint64_t q = low; q < b.next_seq; q++) assert_non_null(ts_adp_bus_at(&b, q));
    }
    ts_adp_bus_deinit(&b);
    assert_int_equal(live, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(order_and_pruning),
        cmocka_unit_test(recovery_keeps),
        cmocka_unit_test(references),
        cmocka_unit_test(schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
