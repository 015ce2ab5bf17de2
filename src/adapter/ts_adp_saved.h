/* ts_adp_saved.h - the local adapter's recovery storage: the sessions of
 * recently disconnected sockets (Node's adapter persistSession /
 * restoreSession), keyed by private id (pid), kept for the recovery window
 * and bounded besides by count, bytes and per client address, oldest
 * first — a flood of abrupt disconnects (each leaves about 0.7 KB) must not
 * grow memory without bound, nor let one address push everybody else's
 * sessions out.
 *
 * Not thread-safe: the caller serialises (sio keeps one set per namespace
 * and process, under the namespace's shared mutex). */
#ifndef TS_ADP_SAVED_H
#define TS_ADP_SAVED_H
#include <stddef.h>
#include <stdint.h>

#include "adapter/ts_adp_rooms.h"
#include "core/ts_list.h"
#include "core/ts_map.h"

typedef struct ts_adp_saved_addr ts_adp_saved_addr_t;

/* One saved session. The public fields are read-only once saved. */
typedef struct ts_adp_saved {
    char sid[TS_ADP_ID_LEN + 1];
    char pid[TS_ADP_ID_LEN + 1];
    char **rooms;  /* its own room first, then the rooms it was in */
    size_t nrooms;
    char *owner;   /* the identity it belongs to, or NULL */
    uint64_t at_ms; /* when it was saved */
    /* private */
    ts_list_t age_link, addr_link;
    ts_adp_saved_addr_t *addr; /* while in a set */
    char *taken_addr;          /* while taken: where it came from */
    size_t bytes;
} ts_adp_saved_t;

typedef struct ts_adp_saved_limits {
    uint64_t window_ms;  /* kept this long after at_ms */
    size_t max_n;        /* sessions in the set */
    size_t max_bytes;    /* what they cost together (ts_adp_saved_cost) */
    size_t max_per_addr; /* sessions of one client address */
} ts_adp_saved_limits_t;

typedef struct ts_adp_saved_set {
    ts_adp_saved_limits_t lim; /* read-only */
    size_t n, bytes;           /* read-only */
    ts_map_t by_pid;           /* private: pid -> ts_adp_saved_t */
    ts_list_t age;             /* private: oldest first */
    ts_map_t addrs;            /* private: address -> ts_adp_saved_addr_t */
} ts_adp_saved_set_t;

/* A new session (not in a set) with copies of the strings; owner may be
 * NULL. Free with ts_adp_saved_free unless a set took it. */
ts_adp_saved_t *ts_adp_saved_new(const char *sid, const char *pid, const char *const *rooms,
                                 size_t nrooms, const char *owner, uint64_t at_ms);
void ts_adp_saved_free(ts_adp_saved_t *sv);
/* What a saved session is counted as against max_bytes. */
size_t ts_adp_saved_cost(const ts_adp_saved_t *sv);

void ts_adp_saved_init(ts_adp_saved_set_t *set, const ts_adp_saved_limits_t *lim);
/* Frees every session still in the set. */
void ts_adp_saved_deinit(ts_adp_saved_set_t *set);

/* Takes `sv`, saved by a client at `addr` (borrowed), replacing a session
 * of the same pid, then applies the bounds: over max_per_addr the
 * address's oldest go, over max_n or max_bytes the set's oldest. Counted in
 * /metrics (tabsync_sio_saved_*). */
void ts_adp_saved_put(ts_adp_saved_set_t *set, ts_adp_saved_t *sv, const char *addr);
/* The session saved under `pid` if it is within the window at `now_ms`, or
 * NULL. Stays in the set. */
ts_adp_saved_t *ts_adp_saved_get(const ts_adp_saved_set_t *set, const char *pid,
                                 uint64_t now_ms);
/* Removes `sv` (from ts_adp_saved_get) to restore it; the caller now owns
 * it: it frees it once restored, or gives it back with put_back. */
void ts_adp_saved_take(ts_adp_saved_set_t *set, ts_adp_saved_t *sv);
/* A taken session that was not restored after all (the attempt was
 * refused): back under its own address, at its age, for its owner. */
void ts_adp_saved_put_back(ts_adp_saved_set_t *set, ts_adp_saved_t *sv);
/* Drops the sessions older than the window at `now_ms`. */
void ts_adp_saved_expire(ts_adp_saved_set_t *set, uint64_t now_ms);

#endif
