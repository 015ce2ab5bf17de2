/* hlc.c - hybrid logical clock (ts_hlc.h). Lock-free: each update reads
 * `last`, computes the successor and publishes it with a compare-exchange,
 * so two threads can never hand out the same value. */
#include "core/ts_hlc.h"

#include <stdio.h>

#include "core/ts_err.h"

static uint64_t advance(ts_hlc_t *c, uint64_t floor) {
    uint64_t old = __atomic_load_n(&c->last, __ATOMIC_ACQUIRE);
    for (;;) {
        uint64_t next = old + 1 > floor ? old + 1 : floor;
        if (__atomic_compare_exchange_n(&c->last, &old, next, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return next;
    }
}

uint64_t ts_hlc_now(ts_hlc_t *c, uint64_t wall_ms) {
    return advance(c, ts_hlc_make(wall_ms, 0));
}

int ts_hlc_recv(ts_hlc_t *c, uint64_t remote, uint64_t wall_ms, uint64_t max_ahead_ms,
                uint64_t *out) {
    uint64_t rms = ts_hlc_ms(remote);
    if (rms > wall_ms && rms - wall_ms > max_ahead_ms) return TS_EINVAL;
    uint64_t wall = ts_hlc_make(wall_ms, 0);
    /* > remote: the floor is remote + 1 when remote is ahead of the wall. */
    *out = advance(c, remote + 1 > wall ? remote + 1 : wall);
    return 0;
}

size_t ts_hlc_format(uint64_t h, char *out, size_t cap) {
    int n = snprintf(out, cap, "%llu.%u", (unsigned long long)ts_hlc_ms(h), ts_hlc_logical(h));
    return n < 0 ? 0 : (size_t)n;
}
