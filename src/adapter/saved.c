/* saved.c - the local adapter's recovery storage (ts_adp_saved.h): a map
 * pid -> session, one age list (oldest first) for the window and the
 * global bounds, and one list per client address for the per-address
 * bound. A session put back after a refused restore keeps its age, so the
 * lists are kept ordered by at_ms, not by insertion. */
#include "adapter/ts_adp_saved.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"
#include "metrics/ts_met.h"

/* The saved sessions of one client address. */
struct ts_adp_saved_addr {
    ts_list_t list; /* ts_adp_saved_t.addr_link, oldest first */
    size_t n;
    size_t klen;
    char key[];
};

ts_adp_saved_t *ts_adp_saved_new(const char *sid, const char *pid, const char *const *rooms,
                                 size_t nrooms, const char *owner, uint64_t at_ms) {
    ts_adp_saved_t *sv = ts_xcalloc(1, sizeof(*sv));
    snprintf(sv->sid, sizeof sv->sid, "%s", sid);
    snprintf(sv->pid, sizeof sv->pid, "%s", pid);
    if (nrooms) {
        sv->rooms = ts_xmalloc(nrooms * sizeof(char *));
        for (size_t i = 0; i < nrooms; i++) sv->rooms[i] = ts_xstrdup(rooms[i]);
    }
    sv->nrooms = nrooms;
    sv->owner = owner ? ts_xstrdup(owner) : NULL;
    sv->at_ms = at_ms;
    ts_list_init(&sv->age_link);
    ts_list_init(&sv->addr_link);
    return sv;
}

void ts_adp_saved_free(ts_adp_saved_t *sv) {
    if (!sv) return;
    for (size_t i = 0; i < sv->nrooms; i++) free(sv->rooms[i]);
    free(sv->rooms);
    free(sv->owner);
    free(sv->taken_addr);
    free(sv);
}

size_t ts_adp_saved_cost(const ts_adp_saved_t *sv) {
    size_t b = sizeof *sv + 64 /* map slot and allocator overhead */ + sv->nrooms * sizeof(char *);
    for (size_t i = 0; i < sv->nrooms; i++) b += strlen(sv->rooms[i]) + 1;
    return b + (sv->owner ? strlen(sv->owner) + 1 : 0);
}

void ts_adp_saved_init(ts_adp_saved_set_t *set, const ts_adp_saved_limits_t *lim) {
    memset(set, 0, sizeof(*set));
    set->lim = *lim;
    ts_list_init(&set->age);
}

/* Removes sv from the set (not freed). */
static void unlink_sv(ts_adp_saved_set_t *set, ts_adp_saved_t *sv) {
    ts_map_del(&set->by_pid, sv->pid, strlen(sv->pid));
    ts_list_remove(&sv->age_link);
    ts_list_remove(&sv->addr_link);
    ts_list_init(&sv->age_link);
    ts_list_init(&sv->addr_link);
    set->n--;
    set->bytes -= sv->bytes;
    TS_MET_GAUGE_ADD(SIO_SAVED, -1);
    TS_MET_GAUGE_ADD(SIO_SAVED_BYTES, -(int64_t)sv->bytes);
    ts_adp_saved_addr_t *a = sv->addr;
    sv->addr = NULL;
    if (a && --a->n == 0) {
        ts_map_del(&set->addrs, a->key, a->klen);
        free(a);
    }
}

static void drop(ts_adp_saved_set_t *set, ts_adp_saved_t *sv) {
    unlink_sv(set, sv);
    ts_adp_saved_free(sv);
}

void ts_adp_saved_deinit(ts_adp_saved_set_t *set) {
    while (!ts_list_empty(&set->age))
        drop(set, ts_list_entry(set->age.next, ts_adp_saved_t, age_link));
    ts_map_deinit(&set->by_pid);
    ts_map_deinit(&set->addrs);
}

void ts_adp_saved_put(ts_adp_saved_set_t *set, ts_adp_saved_t *sv, const char *addr) {
    ts_adp_saved_t *old = ts_map_get(&set->by_pid, sv->pid, strlen(sv->pid));
    if (old) drop(set, old);
    size_t klen = strlen(addr);
    ts_adp_saved_addr_t *a = ts_map_get(&set->addrs, addr, klen);
    if (!a) {
        a = ts_xcalloc(1, sizeof *a + klen + 1);
        ts_list_init(&a->list);
        a->klen = klen;
        memcpy(a->key, addr, klen + 1);
        ts_map_put(&set->addrs, a->key, klen, a);
    }
    sv->addr = a;
    sv->bytes = ts_adp_saved_cost(sv);
    /* from the newest back to its place (almost always the end) */
    ts_list_t *at = set->age.prev;
    while (at != &set->age && ts_list_entry(at, ts_adp_saved_t, age_link)->at_ms > sv->at_ms)
        at = at->prev;
    ts_list_insert_tail(at->next, &sv->age_link); /* after `at` */
    at = a->list.prev;
    while (at != &a->list && ts_list_entry(at, ts_adp_saved_t, addr_link)->at_ms > sv->at_ms)
        at = at->prev;
    ts_list_insert_tail(at->next, &sv->addr_link);
    a->n++;
    ts_map_put(&set->by_pid, sv->pid, strlen(sv->pid), sv);
    set->n++;
    set->bytes += sv->bytes;
    TS_MET_GAUGE_ADD(SIO_SAVED, 1);
    TS_MET_GAUGE_ADD(SIO_SAVED_BYTES, (int64_t)sv->bytes);
    while (a->n > set->lim.max_per_addr) {
        TS_MET_INC(SIO_SAVED_DROPPED_ADDR);
        int last = a->n == 1;
        drop(set, ts_list_entry(a->list.next, ts_adp_saved_t, addr_link));
        if (last) break; /* a is gone with its last session */
    }
    while (set->n > set->lim.max_n || set->bytes > set->lim.max_bytes) {
        TS_MET_INC(SIO_SAVED_DROPPED);
        drop(set, ts_list_entry(set->age.next, ts_adp_saved_t, age_link));
    }
}

ts_adp_saved_t *ts_adp_saved_get(const ts_adp_saved_set_t *set, const char *pid,
                                 uint64_t now_ms) {
    ts_adp_saved_t *sv = ts_map_get(&set->by_pid, pid, strlen(pid));
    if (!sv || now_ms - sv->at_ms > set->lim.window_ms) return NULL;
    return sv;
}

void ts_adp_saved_take(ts_adp_saved_set_t *set, ts_adp_saved_t *sv) {
    free(sv->taken_addr);
    sv->taken_addr = ts_xstrdup(sv->addr->key);
    unlink_sv(set, sv);
}

void ts_adp_saved_put_back(ts_adp_saved_set_t *set, ts_adp_saved_t *sv) {
    char *addr = sv->taken_addr;
    sv->taken_addr = NULL;
    ts_adp_saved_put(set, sv, addr ? addr : "");
    free(addr);
}

void ts_adp_saved_expire(ts_adp_saved_set_t *set, uint64_t now_ms) {
    while (!ts_list_empty(&set->age)) { /* oldest first: stop at the first kept */
        ts_adp_saved_t *sv = ts_list_entry(set->age.next, ts_adp_saved_t, age_link);
        if (now_ms - sv->at_ms <= set->lim.window_ms) break;
        drop(set, sv);
    }
}
