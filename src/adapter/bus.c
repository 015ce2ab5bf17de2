/* bus.c - the local adapter's bus between loops (ts_adp_bus.h): a ring of
 * entry pointers in seq order that grows by doubling, one cursor per loop,
 * and pruning from the oldest end only (an entry is dropped once every
 * attached loop's cursor passed it and recovery no longer wants it), so
 * seq -> slot is one subtraction. */
#include "adapter/ts_adp_bus.h"

#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"

#define DETACHED UINT64_MAX

void ts_adp_entry_init(ts_adp_entry_t *e, uint64_t at_ms, void (*destroy)(ts_adp_entry_t *)) {
    e->refs = 1;
    e->seq = 0;
    e->at_ms = at_ms;
    e->destroy = destroy;
}

void ts_adp_entry_ref(ts_adp_entry_t *e) { __atomic_fetch_add(&e->refs, 1, __ATOMIC_RELAXED); }

void ts_adp_entry_unref(ts_adp_entry_t *e) {
    if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) e->destroy(e);
}

void ts_adp_bus_init(ts_adp_bus_t *b, const ts_adp_bus_limits_t *lim, size_t nloops) {
    ts_assert(nloops >= 1 && nloops <= TS_ADP_MAX_LOOPS);
    memset(b, 0, sizeof(*b));
    b->lim = *lim;
    b->nloops = nloops;
    for (size_t i = 0; i < TS_ADP_MAX_LOOPS; i++) b->cursor[i] = DETACHED;
}

void ts_adp_bus_deinit(ts_adp_bus_t *b) {
    for (size_t i = 0; i < b->n; i++) ts_adp_entry_unref(b->ring[(b->head + i) % b->cap]);
    free(b->ring);
    memset(b, 0, sizeof(*b));
}

void ts_adp_bus_attach(ts_adp_bus_t *b, size_t loop) { b->cursor[loop] = b->next_seq; }
void ts_adp_bus_detach(ts_adp_bus_t *b, size_t loop) { b->cursor[loop] = DETACHED; }
uint64_t ts_adp_bus_cursor(const ts_adp_bus_t *b, size_t loop) { return b->cursor[loop]; }

ts_adp_entry_t *ts_adp_bus_at(const ts_adp_bus_t *b, uint64_t seq) {
    if (!b->n) return NULL;
    uint64_t lo = b->ring[b->head]->seq;
    if (seq < lo || seq - lo >= b->n) return NULL;
    return b->ring[(b->head + (size_t)(seq - lo)) % b->cap];
}

size_t ts_adp_bus_take(ts_adp_bus_t *b, size_t loop, ts_adp_entry_t ***out) {
    uint64_t from = b->cursor[loop];
    *out = NULL;
    if (from == DETACHED || from == b->next_seq) return 0;
    size_t n = (size_t)(b->next_seq - from);
    ts_adp_entry_t **v = ts_xmalloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = ts_adp_bus_at(b, from + i);
        ts_assert(v[i] != NULL); /* undelivered entries are never pruned */
        ts_adp_entry_ref(v[i]);
    }
    b->cursor[loop] = b->next_seq;
    *out = v;
    return n;
}

void ts_adp_bus_append(ts_adp_bus_t *b, size_t loop, ts_adp_entry_t *e) {
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        ts_adp_entry_t **nr = ts_xmalloc(ncap * sizeof(*nr));
        for (size_t i = 0; i < b->n; i++) nr[i] = b->ring[(b->head + i) % b->cap];
        free(b->ring);
        b->ring = nr;
        b->cap = ncap;
        b->head = 0;
    }
    /* the appending loop delivered everything before (take first) */
    ts_assert(b->cursor[loop] == DETACHED || b->cursor[loop] == b->next_seq);
    ts_adp_entry_ref(e);
    e->seq = b->next_seq++;
    b->ring[(b->head + b->n++) % b->cap] = e;
    b->bytes += e->bytes;
    if (b->cursor[loop] != DETACHED) b->cursor[loop] = b->next_seq;
}

/* The lowest cursor of the attached loops: entries below it were delivered
 * everywhere. */
static uint64_t delivered_below(const ts_adp_bus_t *b) {
    uint64_t m = b->next_seq;
    for (size_t i = 0; i < b->nloops; i++)
        if (b->cursor[i] != DETACHED && b->cursor[i] < m) m = b->cursor[i];
    return m;
}

void ts_adp_bus_prune(ts_adp_bus_t *b, uint64_t now_ms) {
    const ts_adp_bus_limits_t *l = &b->lim;
    uint64_t delivered = delivered_below(b);
    while (b->n) {
        ts_adp_entry_t *e = b->ring[b->head];
        if (e->seq >= delivered) break; /* a loop has yet to deliver it */
        if (l->keep_ms && b->n < l->max_entries && b->bytes <= l->max_bytes &&
            now_ms - e->at_ms <= l->keep_ms)
            break;
        b->bytes -= e->bytes;
        b->head = (b->head + 1) % b->cap;
        b->n--;
        ts_adp_entry_unref(e);
    }
}
