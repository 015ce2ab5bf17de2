/* ts_store.h - the store interface: registry with TTL, per-session sequence
 * numbers and event log, state compare-and-set, leases with terms. One ops
 * table, several backends (memory + SQLite file now, Redis later); callers go
 * through the ts_store_* wrappers and never learn which backend runs.
 *
 * Every operation completes asynchronously, and nothing here assumes one
 * process: sequence numbers, versions and lease terms come from the store.
 *
 * THE CALLBACK RULE (every verb below):
 *   - If a call returns 0, its callback is called exactly once, and never
 *     from inside the call: always later, from the loop. A caller is never
 *     re-entered by its own call.
 *   - If a call returns < 0 (TS_EINVAL, TS_ETOOBIG, TS_ECLOSED), the callback
 *     is never called and nothing changed.
 *   - Pointers handed to a callback (entries, pages, documents, leases) are
 *     borrowed for the duration of the callback only; copy what you keep
 *     (or ts_buf_ref a ts_buf_t).
 *   - Ops on the same key (the same session, lease name or registry key)
 *     complete in the order they were issued. Nothing is promised across keys.
 *   - A callback may call any ts_store_* function, including ts_store_close.
 *   - cb may be NULL (fire and forget); the op still runs.
 *   - Every op accepted before ts_store_close gets its callback before the
 *     close callback (with its normal result, or TS_ECLOSED if the backend
 *     could not finish it).
 *
 * Statuses seen in callbacks: 0, TS_ENOTFOUND, TS_ECONFLICT, TS_EHELD,
 * TS_ESTALE, TS_ELIMIT (a configured bound is reached), TS_ESTORE (the
 * backend failed: disk, network; the op had no effect), TS_ECLOSED.
 * See docs/STORE.md for the guarantees of each backend. */
#ifndef TS_STORE_H
#define TS_STORE_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "core/ts_slice.h"

struct uv_loop_s;

/* Identifiers (session, user, device, tab, node, lease name, holder):
 * 1..TS_STORE_ID_MAX bytes, no control characters (< 0x20, 0x7f). */
#define TS_STORE_ID_MAX 520 /* the longest key: "<user>/<session>/<device>/<tab>" of
                             * four 128-byte ids (a device-scope lease name is three) */
#define TS_STORE_REG_DATA_MAX 16384 /* registry metadata bytes */
#define TS_STORE_TTL_MAX (24u * 3600u * 1000u) /* ms; ttl_ms is 1..this */

/* ---- values passed to callbacks ---- */

/* A registry entry identifies one tab: (session, device, tab). */
typedef struct ts_store_reg_key {
    ts_slice_t session, device, tab;
} ts_store_reg_key_t;

typedef struct ts_store_reg {
    ts_store_reg_key_t key;
    ts_slice_t user;
    ts_slice_t node;        /* which tabsyncd holds the connection */
    ts_slice_t data;        /* opaque (JSON metadata), <= TS_STORE_REG_DATA_MAX */
    uint64_t expires_at;    /* wall clock, ms since 1970 (ignored by reg_put) */
} ts_store_reg_t;

typedef enum ts_store_by {
    TS_STORE_BY_SESSION = 0,
    TS_STORE_BY_USER = 1,
    TS_STORE_BY_DEVICE = 2,
} ts_store_by_t;

typedef struct ts_store_event {
    uint64_t seq;
    ts_buf_t *data; /* borrowed; ts_buf_ref it to keep it */
} ts_store_event_t;

typedef struct ts_store_log_page {
    const ts_store_event_t *events; /* seq > after_seq, ascending, no gaps */
    size_t n;
    uint64_t last_seq;     /* newest seq ever assigned to the session (0: none) */
    uint64_t trimmed_upto; /* events <= this were dropped; if after_seq is below
                            * it, the reader missed events and must resync */
} ts_store_log_page_t;

typedef struct ts_store_state {
    uint64_t version; /* 0 = no document yet */
    ts_buf_t *doc;    /* borrowed; NULL when version is 0 */
} ts_store_state_t;

typedef struct ts_store_lease {
    ts_slice_t name;
    ts_slice_t holder; /* empty when nobody holds it */
    uint64_t term;     /* current (or last granted) term; 0 = never granted */
    uint64_t expires_at; /* wall clock ms; 0 when nobody holds it */
} ts_store_lease_t;

/* Session history (issue #9): what a reader needs to resume or rebuild a
 * session. A session's log is event sourced: the state is the snapshot
 * plus every state change after it (the session layer folds them). */
typedef struct ts_store_sess_info {
    uint64_t epoch;        /* nonzero, random; changes whenever history may have
                            * been lost (memory-only store restarted, file
                            * replaced); sess_get creates it on first contact */
    uint64_t last_seq;     /* newest durable seq (0: none) */
    uint64_t trimmed_upto; /* events <= this are gone from the log */
    uint64_t state_ver;    /* state changes committed so far (ts_store_commit_t.is_state);
                            * not state_cas's version, which counts separately */
    uint64_t snap_seq;     /* the snapshot covers the log up to this seq (0: none) */
    uint64_t snap_ver;     /* state_ver the snapshot was taken at */
    ts_buf_t *snap;        /* borrowed; NULL when snap_seq is 0 */
} ts_store_sess_info_t;

/* One entry appended by ts_store_commit. */
#define TS_STORE_ANY_VER UINT64_MAX
#define TS_STORE_PROBE_VER (UINT64_MAX - 1) /* never a state_ver: see commit */
#define TS_STORE_MUT_WINDOW 256 /* applied mutations remembered per client */
typedef struct ts_store_commit {
    ts_buf_t *event;       /* borrowed: the log entry */
    ts_slice_t client;     /* exactly-once: who sent it (an id); len 0 = no bookkeeping */
    uint64_t mut;          /* that client's mutation number, >= 1 (ignored without client) */
    uint64_t if_ver;       /* the session's state_ver must equal this, or
                            * TS_STORE_ANY_VER (no condition) */
    int is_state;          /* 1: a state change: state_ver += 1 when appended */
    uint64_t chain;        /* 0, or an id shared by pipelined commits that each
                            * assume the one before them applied: once one of them
                            * is not appended, every later one of the same chain on
                            * this session is TS_ECONFLICT, whatever state_ver is
                            * then (another writer's change may have taken the
                            * version the broken one expected) */
    ts_slice_t fence;      /* len 0, or a lease name: appended only if that lease
                            * is held, unexpired, by fence_holder with term
                            * fence_term (a leader's action, docs/ELECTION.md);
                            * else TS_ESTALE */
    uint64_t fence_term;
    ts_slice_t fence_holder; /* who must hold it (the term alone is known to
                              * every member: anyone could act on it) */
} ts_store_commit_t;

typedef struct ts_store_commit_res {
    uint64_t epoch;        /* the session's epoch */
    uint64_t seq;          /* 0: the new entry's seq; TS_EDUP: the original's */
    uint64_t state_ver;    /* 0: after this commit; TS_ECONFLICT: the current one */
    const ts_store_event_t *original; /* TS_EDUP: the original entry while the log
                                       * still has it, else NULL (borrowed) */
    uint64_t term;         /* TS_ESTALE: the fence lease's current term (0: never granted) */
} ts_store_commit_res_t;

/* ---- callbacks (see THE CALLBACK RULE above) ---- */

typedef void (*ts_store_close_cb)(void *ud);
typedef void (*ts_store_done_cb)(int status, void *ud);
/* `entries` is valid only during the call; n = 0 and entries = NULL if none. */
typedef void (*ts_store_reg_list_cb)(int status, const ts_store_reg_t *entries, size_t n,
                                     void *ud);
/* Called from the loop for every entry whose TTL passed, once per entry, at
 * most one sweep interval after it expired. Not called for reg_remove, for an
 * entry replaced by reg_put, nor after ts_store_close. */
typedef void (*ts_store_expire_cb)(const ts_store_reg_t *entry, void *ud);
typedef void (*ts_store_seq_cb)(int status, uint64_t seq, void *ud);
/* n is 0 unless status == 0. */
typedef void (*ts_store_count_cb)(int status, uint64_t n, void *ud);
/* page != NULL iff status == 0. */
typedef void (*ts_store_log_cb)(int status, const ts_store_log_page_t *page, void *ud);
/* state != NULL for 0 (the stored state) and TS_ECONFLICT (the current one). */
typedef void (*ts_store_state_cb)(int status, const ts_store_state_t *state, void *ud);
/* info != NULL iff status == 0. */
typedef void (*ts_store_sess_cb)(int status, const ts_store_sess_info_t *info, void *ud);
/* res != NULL for 0, TS_EDUP, TS_ECONFLICT and TS_ESTALE (a fenced commit). */
typedef void (*ts_store_commit_cb)(int status, const ts_store_commit_res_t *res, void *ud);
/* lease != NULL for 0 (the granted lease; lease_get: the current one, holder
 * empty if nobody holds it), TS_EHELD (the current holder) and TS_ESTALE (the
 * current lease, holder empty if nobody holds it). */
typedef void (*ts_store_lease_cb)(int status, const ts_store_lease_t *lease, void *ud);
/* A message on a subscribed channel (for a pattern subscription: the
 * channel it was published on); both borrowed for the call. */
typedef void (*ts_store_msg_cb)(ts_slice_t channel, ts_buf_t *msg, void *ud);

/* What a channel name means (publish / subscribe). */
typedef enum ts_store_chan {
    TS_STORE_CHAN = 0,         /* one channel (Redis: SUBSCRIBE, PUBLISH) */
    TS_STORE_CHAN_PATTERN = 1, /* subscribe only: every TS_STORE_CHAN channel matching a
                                * glob (* ? [..] \; Redis: PSUBSCRIBE) */
    TS_STORE_CHAN_SHARD = 2,   /* a shard channel (Redis 7: SSUBSCRIBE, SPUBLISH; Cluster
                                * routes it by its slot); patterns never see these */
} ts_store_chan_t;

/* ---- configuration ---- */

typedef enum ts_store_durability {
    TS_STORE_DUR_GROUP = 0, /* group commit: one fsync for every write of a window
                             * (group_ms); callbacks after that fsync */
    TS_STORE_DUR_SYNC,      /* one transaction and one fsync per write */
    TS_STORE_DUR_NONE,      /* batched like GROUP with group_ms 0, without fsync:
                             * survives a crash of the process, not of the machine */
} ts_store_durability_t;

/* The stream ids of a session log in the redis backend (docs/STORE.md "A
 * plain commit is one XADD"). Every build since layout 2 reads and extends
 * both; V1 makes it start new logs in layout 1 as well, which builds before
 * it can write: for a rolling upgrade from them (docs/DEPLOYMENT.md). */
typedef enum {
    TS_STORE_RLOG_DEFAULT = 0, /* = TS_STORE_RLOG_V2 */
    TS_STORE_RLOG_V1 = 1,      /* <seq>-1, every append a script */
    TS_STORE_RLOG_V2 = 2,      /* 0-<seq>, a plain append one XADD */
} ts_store_rlog_layout_t;

typedef struct ts_store_cfg {
    const char *sqlite_path;  /* memory: durable file; NULL or "" = memory only */
    const char *redis_url;    /* redis backend: redis[s]://[[user]:password@]host[:port][/db][?options]
                               * (docs/STORE.md: cacert, cert, key, insecure, cluster) */
    const char *redis_prefix; /* redis backend: every key starts with it (not channels); NULL = "ts:" */
    ts_store_rlog_layout_t redis_log_layout; /* redis backend: the layout of the session logs
                                              * it starts; default TS_STORE_RLOG_V2 */
    uint32_t sweep_ms;        /* expiry sweep interval; 0 = 1000 */
    ts_store_expire_cb on_expire; /* may be NULL */
    void *expire_ud;
    /* Bounds (0 = default; docs/STORE.md lists them). */
    uint32_t reg_max;         /* registry entries; 0 = 1,000,000 */
    uint32_t sessions_max;    /* sessions held in memory; 0 = 100,000 */
    uint32_t leases_max;      /* lease names held in memory; 0 = 100,000 */
    uint32_t log_mem_events;  /* per session log tail kept in memory; 0 = 1024 */
    size_t log_mem_bytes;     /* per session log tail bytes; 0 = 256 KiB */
    size_t mem_bytes_max;     /* log tails + state docs + snapshots + exactly-once
                               * windows; 0 = 256 MiB */
    size_t event_max;         /* one event; 0 = 1 MiB */
    size_t state_max;         /* one state document; 0 = 1 MiB */
    uint32_t read_max;        /* events per log_read page; 0 = 1000 */
    size_t read_max_bytes;    /* bytes per log_read page (>= 1 event); 0 = 4 MiB */
    /* Durability of writes (docs/STORE.md "Durability"): when a write's
     * callback runs, the write is on disk under this policy. */
    ts_store_durability_t durability; /* default TS_STORE_DUR_GROUP */
    uint32_t group_ms;        /* TS_STORE_DUR_GROUP: commit at most this long after
                               * the first write of a batch; 0 = at the end of the
                               * loop turn */
    /* Retention: events older than both bounds may be dropped, never past a
     * session's snapshot (snap_seq): the state can always be rebuilt. The
     * memory backend applies it in its sweep (cfg.sweep_ms), to the sessions
     * it holds in memory. */
    uint32_t retain_events;   /* keep at least the newest N events; 0 = 10000 */
    uint64_t retain_ms;       /* and every event younger than this; 0 = 24 h */
} ts_store_cfg_t;

/* ---- statistics (ts_store_stats) ----
 * Cumulative since open, for /metrics; a backend fills what applies to it
 * and leaves the rest 0. The commit latency histogram is Prometheus-shaped:
 * lat_le[i] counts commits that took <= TS_STORE_LAT_BOUNDS_US[i] µs, and
 * the last bucket (+Inf) equals lat_count. */
#define TS_STORE_LAT_BUCKETS 8
#define TS_STORE_LAT_BOUNDS_US {100, 250, 500, 1000, 2500, 5000, 10000, UINT64_MAX}
typedef struct ts_store_stats {
    uint64_t commits;          /* durable transactions (memory + SQLite: COMMITs) */
    uint64_t commit_failures;  /* batches that failed (every op in them got TS_ESTORE) */
    uint64_t commit_ops;       /* ops whose callback waited for a commit */
    uint64_t lat_le[TS_STORE_LAT_BUCKETS]; /* COMMIT (= fsync) latency, cumulative */
    uint64_t lat_count;
    uint64_t lat_sum_us;
    uint64_t events_appended;  /* log_append + commit entries */
    uint64_t events_trimmed;   /* dropped by retention (not by log_trim) */
    uint64_t dups;             /* commits answered TS_EDUP */
    /* redis: plain commits (no client, version, chain or fence) appended by
     * one XADD, and those that took the script (a log written by an older
     * build, or Redis before 7.0): docs/STORE.md */
    uint64_t plain_xadd, plain_script;
} ts_store_stats_t;

/* ---- the ops table a backend implements ---- */

typedef struct ts_store_ops {
    const char *name; /* "memory", "redis" */
    /* 1 when only this process ever reads what the backend holds (memory):
     * a registry entry's data may then be in a form private to this build
     * (the session layer's compact one, docs/STORE.md "Registry data").
     * 0 when other processes, other versions and tools read it (Redis). */
    unsigned char process_local;
    /* Returns 0 and *self, or a TS_E* code with a one-line reason in err. */
    int (*open)(void **self, const ts_store_cfg_t *cfg, struct uv_loop_s *loop, char *err,
                size_t errlen);
    /* Completes every accepted op, releases every handle, then calls cb once
     * from the loop; self is freed before cb runs. */
    void (*close)(void *self, ts_store_close_cb cb, void *ud);
    /* Another loop's handle on the same store (one loop per core): ops
     * through it complete, callbacks included, on that loop. NULL when the
     * backend cannot be shared that way. */
    int (*attach)(void *self, struct uv_loop_s *loop, void **out);
    int (*reg_put)(void *self, const ts_store_reg_t *e, uint64_t ttl_ms, ts_store_done_cb cb,
                   void *ud);
    int (*reg_renew)(void *self, const ts_store_reg_key_t *k, uint64_t ttl_ms,
                     ts_store_done_cb cb, void *ud);
    int (*reg_remove)(void *self, const ts_store_reg_key_t *k, ts_store_done_cb cb, void *ud);
    int (*reg_list)(void *self, ts_store_by_t by, ts_slice_t id, ts_store_reg_list_cb cb,
                    void *ud);
    int (*log_append)(void *self, ts_slice_t session, ts_buf_t *event, ts_store_seq_cb cb,
                      void *ud);
    int (*log_read)(void *self, ts_slice_t session, uint64_t after_seq, size_t max,
                    ts_store_log_cb cb, void *ud);
    int (*log_trim)(void *self, ts_slice_t session, uint64_t upto_seq, ts_store_done_cb cb,
                    void *ud);
    int (*state_get)(void *self, ts_slice_t session, ts_store_state_cb cb, void *ud);
    int (*state_cas)(void *self, ts_slice_t session, uint64_t expected, ts_buf_t *doc,
                     ts_store_state_cb cb, void *ud);
    int (*sess_get)(void *self, ts_slice_t session, ts_store_sess_cb cb, void *ud);
    int (*commit)(void *self, ts_slice_t session, const ts_store_commit_t *c,
                  ts_store_commit_cb cb, void *ud);
    int (*snap_put)(void *self, ts_slice_t session, uint64_t seq, uint64_t ver, ts_buf_t *doc,
                    ts_store_done_cb cb, void *ud);
    int (*lease_acquire)(void *self, ts_slice_t name, ts_slice_t holder, uint64_t ttl_ms,
                         ts_store_lease_cb cb, void *ud);
    int (*lease_renew)(void *self, ts_slice_t name, ts_slice_t holder, uint64_t term,
                       uint64_t ttl_ms, ts_store_lease_cb cb, void *ud);
    int (*lease_release)(void *self, ts_slice_t name, ts_slice_t holder, uint64_t term,
                         ts_store_done_cb cb, void *ud);
    int (*lease_transfer)(void *self, ts_slice_t name, uint64_t term, ts_slice_t to,
                          uint64_t ttl_ms, ts_store_lease_cb cb, void *ud);
    int (*lease_get)(void *self, ts_slice_t name, ts_store_lease_cb cb, void *ud);
    int (*subscribe)(void *self, ts_store_chan_t kind, ts_slice_t channel, ts_store_msg_cb on_msg,
                     void *msg_ud, ts_store_done_cb cb, void *ud);
    int (*unsubscribe)(void *self, ts_store_chan_t kind, ts_slice_t channel,
                       ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb, void *ud);
    int (*publish)(void *self, ts_store_chan_t kind, ts_slice_t channel, ts_buf_t *msg,
                   ts_store_done_cb cb, void *ud);
    /* Optional (NULL: ts_store_numsub answers TS_EINVAL). */
    int (*numsub)(void *self, ts_store_chan_t kind, ts_slice_t channel, ts_store_count_cb cb,
                  void *ud);
    /* Optional (NULL: ts_store_stats answers TS_EINVAL). Synchronous, any
     * thread, also from inside a store callback. */
    int (*stats)(void *self, ts_store_stats_t *out);
} ts_store_ops_t;

extern const ts_store_ops_t ts_store_memory_ops;
/* Every verb, over Redis (src/store/redis.c): `--store redis://` or
 * `rediss://`, one server or a Redis Cluster (docs/STORE.md). */
extern const ts_store_ops_t ts_store_redis_ops;

/* A handle callers embed. */
typedef struct ts_store {
    const ts_store_ops_t *ops; /* read-only */
    void *self;                /* private: the backend; NULL once closed */
} ts_store_t;

/* ts_store_ops_t.process_local of the store's backend. */
static inline int ts_store_process_local(const ts_store_t *st) {
    return st->ops->process_local;
}

/* Argument checks shared by every backend (the wrappers run them, so all
 * backends refuse the same inputs the same way). Return 0 or TS_EINVAL. */
int ts_store__check_id(ts_slice_t id);
int ts_store__check_key(const ts_store_reg_key_t *k);
int ts_store__check_ttl(uint64_t ttl_ms);

/* Opens a store of backend `ops` on `loop`; borrows cfg (strings are copied).
 * Returns 0, or TS_EINVAL (bad cfg) / TS_ESTORE (cannot open the backend:
 * `err` says which file or address and why) and *st is left closed. */
int ts_store_open(ts_store_t *st, const ts_store_ops_t *ops, const ts_store_cfg_t *cfg,
                  struct uv_loop_s *loop, char *err, size_t errlen);
/* Starts closing; cb(ud) runs once from the loop when everything is released.
 * Returns 0, or TS_ECLOSED if already closed (cb never called). */
int ts_store_close(ts_store_t *st, ts_store_close_cb cb, void *ud);
/* Opens `out` on `loop` onto the store `st` is open on (another thread's
 * loop; call before that loop runs or from its thread). Close every handle
 * with ts_store_close; the store is released when the last one closed.
 * Returns 0, TS_ECLOSED, or TS_EINVAL if the backend cannot be shared. */
int ts_store_attach(ts_store_t *out, ts_store_t *st, struct uv_loop_s *loop);
static inline const char *ts_store_backend(const ts_store_t *st) { return st->ops->name; }
/* Copies the store's cumulative counters into *out (any door of the store
 * gives the same numbers). Synchronous; no callback. Returns 0, TS_ECLOSED,
 * or TS_EINVAL if the backend keeps none. */
static inline int ts_store_stats(ts_store_t *st, ts_store_stats_t *out) {
    if (!st->self) return TS_ECLOSED;
    if (!st->ops->stats) return TS_EINVAL;
    return st->ops->stats(st->self, out);
}

/* ---- registry ----
 * reg_put: inserts or replaces the entry of e->key (all strings copied; the
 *   expiry is now + ttl_ms). Returns TS_EINVAL for a bad id or ttl,
 *   TS_ETOOBIG for data over TS_STORE_REG_DATA_MAX. Callback: 0, TS_ELIMIT.
 * reg_renew: expiry = now + ttl_ms. Callback: 0, TS_ENOTFOUND (gone or expired).
 * reg_remove: Callback: 0, TS_ENOTFOUND (absent, or already expired: then it
 *   is removed without an expiry report). Never reported to on_expire.
 * reg_list: the live entries of one session / user / device (never expired
 *   ones, even between sweeps), in no particular order. */
static inline int ts_store_reg_put(ts_store_t *st, const ts_store_reg_t *e, uint64_t ttl_ms,
                                   ts_store_done_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_key(&e->key);
    if (!rc) rc = ts_store__check_id(e->user);
    if (!rc) rc = ts_store__check_id(e->node);
    if (!rc) rc = ts_store__check_ttl(ttl_ms);
    if (rc) return rc;
    if (e->data.len > TS_STORE_REG_DATA_MAX) return TS_ETOOBIG;
    return st->ops->reg_put(st->self, e, ttl_ms, cb, ud);
}
static inline int ts_store_reg_renew(ts_store_t *st, const ts_store_reg_key_t *k,
                                     uint64_t ttl_ms, ts_store_done_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_key(k);
    if (!rc) rc = ts_store__check_ttl(ttl_ms);
    return rc ? rc : st->ops->reg_renew(st->self, k, ttl_ms, cb, ud);
}
static inline int ts_store_reg_remove(ts_store_t *st, const ts_store_reg_key_t *k,
                                      ts_store_done_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_key(k);
    return rc ? rc : st->ops->reg_remove(st->self, k, cb, ud);
}
static inline int ts_store_reg_list(ts_store_t *st, ts_store_by_t by, ts_slice_t id,
                                    ts_store_reg_list_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    if ((unsigned)by > TS_STORE_BY_DEVICE) return TS_EINVAL;
    int rc = ts_store__check_id(id);
    return rc ? rc : st->ops->reg_list(st->self, by, id, cb, ud);
}

/* ---- per-session sequence numbers and event log ----
 * log_append: assigns the session's next seq (1, 2, 3, ...; never reused,
 *   also across restarts and trims) and stores the event. Borrows `event`
 *   (the store takes its own reference or copies). Returns TS_ETOOBIG for an
 *   event over cfg.event_max, TS_EINVAL for an empty one. Callback: the seq,
 *   or TS_ELIMIT / TS_ESTORE with seq 0 (no seq consumed).
 * log_read: events with seq > after_seq, ascending, at most `max` (1..; capped
 *   by cfg.read_max and cfg.read_max_bytes: ask again from the last seq).
 *   An unknown session is an empty page, status 0.
 * log_trim: drops events with seq <= upto_seq (clamped to last_seq); the
 *   sequence continues. Callback: 0. */
static inline int ts_store_log_append(ts_store_t *st, ts_slice_t session, ts_buf_t *event,
                                      ts_store_seq_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(session);
    if (rc) return rc;
    if (!event || event->len == 0) return TS_EINVAL;
    return st->ops->log_append(st->self, session, event, cb, ud);
}
static inline int ts_store_log_read(ts_store_t *st, ts_slice_t session, uint64_t after_seq,
                                    size_t max, ts_store_log_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(session);
    if (rc) return rc;
    if (max == 0) return TS_EINVAL;
    return st->ops->log_read(st->self, session, after_seq, max, cb, ud);
}
static inline int ts_store_log_trim(ts_store_t *st, ts_slice_t session, uint64_t upto_seq,
                                    ts_store_done_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(session);
    return rc ? rc : st->ops->log_trim(st->self, session, upto_seq, cb, ud);
}

/* ---- state compare-and-set ----
 * state_get: version 0 and doc NULL if the session has no document.
 * state_cas: if the current version is `expected` (0 = no document yet),
 *   stores `doc` (borrowed; the store keeps its own reference or a copy) as
 *   version expected + 1. Callback: 0 with the new state, or TS_ECONFLICT with
 *   the current version and document (so the client can rebase), TS_ELIMIT,
 *   TS_ESTORE. Returns TS_ETOOBIG over cfg.state_max, TS_EINVAL if doc is
 *   NULL or empty. */
static inline int ts_store_state_get(ts_store_t *st, ts_slice_t session, ts_store_state_cb cb,
                                     void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(session);
    return rc ? rc : st->ops->state_get(st->self, session, cb, ud);
}
static inline int ts_store_state_cas(ts_store_t *st, ts_slice_t session, uint64_t expected,
                                     ts_buf_t *doc, ts_store_state_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(session);
    if (rc) return rc;
    if (!doc || doc->len == 0) return TS_EINVAL;
    return st->ops->state_cas(st->self, session, expected, doc, cb, ud);
}

/* ---- session history: info, exactly-once commits, snapshots ----
 * sess_get: the session's epoch, last durable seq, trim mark, state_ver and
 *   snapshot. A session that does not exist yet is created by the call (a
 *   write: it gets its epoch, durable before the callback), so the epoch a
 *   reader first sees stays the session's for as long as its history lasts;
 *   everything else is 0. Callback: 0, TS_ELIMIT, TS_ESTORE.
 * commit: appends c->event as the session's next seq, atomically with
 *   (a) the condition: if c->if_ver != TS_STORE_ANY_VER and the session's
 *       state_ver differs, nothing is written: TS_ECONFLICT with the current
 *       state_ver;
 *   (b) exactly-once bookkeeping: with a client id, the store remembers the
 *       (mut, seq) of that client's newest TS_STORE_MUT_WINDOW applied
 *       mutations in the same write as the entry. A mut it remembers is not
 *       appended again: TS_EDUP with the original's seq (and the entry, while
 *       the log has it). A mut it does not remember but that is older than
 *       every remembered one while the window is full: TS_ETOOOLD (cannot
 *       tell). Any other mut is applied (gaps and out-of-order numbers are
 *       fine: absence from the window means "never applied").
 *   (c) is_state: state_ver += 1.
 *   (b) is checked before (a): a resend of an applied mutation is TS_EDUP
 *   whatever the state_ver is now, so a commit with an if_ver that cannot
 *   match (TS_STORE_PROBE_VER) asks "was this mutation applied?" without
 *   writing anything: TS_EDUP, TS_ETOOOLD, or TS_ECONFLICT (never applied).
 *   A new session gets a random nonzero epoch at its first write (commit,
 *   log_append, state_cas).
 *   Returns TS_ETOOBIG over cfg.event_max, TS_EINVAL for an empty event, a
 *   bad client id, or mut 0 with a client. Callback: 0, TS_EDUP,
 *   TS_ECONFLICT, TS_ETOOOLD, TS_ELIMIT, TS_ESTORE (nothing written; also
 *   an answer that depended on a write that then failed: ask again).
 * snap_put: keeps `doc` as the session's snapshot of the log up to `seq`
 *   (state_ver `ver`) if seq is newer than the current snapshot and not past
 *   last_seq. Callback: 0, TS_ESTALE (not newer: ignored), TS_EINVAL (seq
 *   past last_seq, or a session never written), TS_ESTORE. Returns
 *   TS_ETOOBIG over cfg.state_max. Never TS_ELIMIT: a snapshot is what lets
 *   a memory-only store drop events.
 * Reads (log_read, sess_get, state_get, and the original in a TS_EDUP) never
 *   show a write before it is durable. Through one handle callbacks run in
 *   issue order, and a read reflects every write whose callback ran before
 *   its own (it may also show a later write of that handle that is already
 *   durable). */
static inline int ts_store_sess_get(ts_store_t *st, ts_slice_t session, ts_store_sess_cb cb,
                                    void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(session);
    return rc ? rc : st->ops->sess_get(st->self, session, cb, ud);
}
static inline int ts_store_commit(ts_store_t *st, ts_slice_t session, const ts_store_commit_t *c,
                                  ts_store_commit_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(session);
    if (rc) return rc;
    if (!c->event || c->event->len == 0) return TS_EINVAL;
    if (c->client.len && (ts_store__check_id(c->client) || c->mut == 0)) return TS_EINVAL;
    if (c->fence.len && (ts_store__check_id(c->fence) || ts_store__check_id(c->fence_holder) ||
                         c->fence_term == 0))
        return TS_EINVAL;
    return st->ops->commit(st->self, session, c, cb, ud);
}
static inline int ts_store_snap_put(ts_store_t *st, ts_slice_t session, uint64_t seq,
                                    uint64_t ver, ts_buf_t *doc, ts_store_done_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(session);
    if (rc) return rc;
    if (!doc || doc->len == 0 || seq == 0) return TS_EINVAL;
    return st->ops->snap_put(st->self, session, seq, ver, doc, cb, ud);
}

/* ---- leases with terms (fencing tokens) ----
 * lease_acquire: if nobody holds `name` (never granted, released or expired),
 *   grants it to `holder` with term = last term + 1 (terms are per name,
 *   monotonic, never reused, also across restarts). If `holder` already holds
 *   it, extends it and keeps the term (a retried acquire is harmless).
 *   Callback: 0 with the lease, TS_EHELD with the current holder and term,
 *   TS_ELIMIT, TS_ESTORE.
 * lease_renew: extends the lease if `holder` holds it with `term` and it has
 *   not expired. Callback: 0, or TS_ESTALE (lost: re-acquire for a new term).
 * lease_release: gives it up if `holder` holds it with `term`; the next
 *   acquire gets term + 1. Callback: 0, or TS_ESTALE.
 * lease_transfer: compare-and-set on the term: if the last granted term of
 *   `name` is `term` (held by anyone, or lapsed, or released), grants it to
 *   `to` with term + 1 at once (a leader's handoff, preemption, or the
 *   backup taking over a lapsed lease). Callback: 0 with the new lease, or
 *   TS_ESTALE with the current one (another grant came first).
 * lease_get: the lease now (holder empty if nobody holds it). Callback: 0. */
static inline int ts_store_lease_acquire(ts_store_t *st, ts_slice_t name, ts_slice_t holder,
                                         uint64_t ttl_ms, ts_store_lease_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(name);
    if (!rc) rc = ts_store__check_id(holder);
    if (!rc) rc = ts_store__check_ttl(ttl_ms);
    return rc ? rc : st->ops->lease_acquire(st->self, name, holder, ttl_ms, cb, ud);
}
static inline int ts_store_lease_renew(ts_store_t *st, ts_slice_t name, ts_slice_t holder,
                                       uint64_t term, uint64_t ttl_ms, ts_store_lease_cb cb,
                                       void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(name);
    if (!rc) rc = ts_store__check_id(holder);
    if (!rc) rc = ts_store__check_ttl(ttl_ms);
    if (!rc && term == 0) rc = TS_EINVAL;
    return rc ? rc : st->ops->lease_renew(st->self, name, holder, term, ttl_ms, cb, ud);
}
static inline int ts_store_lease_release(ts_store_t *st, ts_slice_t name, ts_slice_t holder,
                                         uint64_t term, ts_store_done_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(name);
    if (!rc) rc = ts_store__check_id(holder);
    if (!rc && term == 0) rc = TS_EINVAL;
    return rc ? rc : st->ops->lease_release(st->self, name, holder, term, cb, ud);
}
static inline int ts_store_lease_transfer(ts_store_t *st, ts_slice_t name, uint64_t term,
                                          ts_slice_t to, uint64_t ttl_ms, ts_store_lease_cb cb,
                                          void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(name);
    if (!rc) rc = ts_store__check_id(to);
    if (!rc) rc = ts_store__check_ttl(ttl_ms);
    if (!rc && term == 0) rc = TS_EINVAL;
    return rc ? rc : st->ops->lease_transfer(st->self, name, term, to, ttl_ms, cb, ud);
}
static inline int ts_store_lease_get(ts_store_t *st, ts_slice_t name, ts_store_lease_cb cb,
                                     void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(name);
    return rc ? rc : st->ops->lease_get(st->self, name, cb, ud);
}

/* ---- publish / subscribe: fan-out between the handles of a store ----
 * What the adapter layer sends to the other loops and nodes (issue #12):
 * messages that may be lost, never the history (which goes through commit).
 * Channels are ids (1..TS_STORE_ID_MAX bytes, no control characters), used
 * as they are: cfg.redis_prefix does not apply to them (Redis has one
 * pub/sub namespace per server, whatever the db; the adapter names its
 * channels as @socket.io/redis-adapter does, docs/REDIS-WIRE.md).
 * subscribe: from its callback (0) on, every message published on `channel`
 *   (kind TS_STORE_CHAN or TS_STORE_CHAN_SHARD), or on any TS_STORE_CHAN
 *   channel matching the glob `channel` (TS_STORE_CHAN_PATTERN), through any
 *   handle of the store (memory: this process's doors; Redis: every node) is
 *   given to on_msg(channel, msg, msg_ud) on this handle's loop, at most
 *   once per subscription: a message published while a subscriber cannot be
 *   reached (Redis down) is lost. Messages of one publisher on one channel
 *   arrive in the order published. The same (kind, channel, on_msg, msg_ud)
 *   twice is one subscription. Returns TS_EINVAL for a bad kind or channel,
 *   or no on_msg.
 * unsubscribe: after its callback, on_msg is not called again for that
 *   subscription through this handle. Callback: 0, TS_ENOTFOUND (not subscribed).
 * publish: hands msg (borrowed; copied or referenced) to every subscriber;
 *   kind TS_STORE_CHAN or TS_STORE_CHAN_SHARD. Callback: 0 once handed over
 *   (memory: queued for each; Redis: PUBLISH answered), TS_ESTORE if it
 *   could not be.
 * numsub: how many subscribers `channel` has across the deployment (Redis:
 *   PUBSUB NUMSUB, or PUBSUB SHARDNUMSUB for TS_STORE_CHAN_SHARD, which a
 *   Redis Cluster answers from the channel's slot; NUMSUB on a Cluster
 *   counts the subscribers of one node only), so that a requester knows how
 *   many answers to wait for, as Node's adapters count their peers.
 *   Callback: 0 with the count, TS_ESTORE. The memory backend has no other
 *   nodes and no numsub (TS_EINVAL).
 * A handle's subscriptions end with its close: no message after its close
 * callback. */
static inline int ts_store_subscribe(ts_store_t *st, ts_store_chan_t kind, ts_slice_t channel,
                                     ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb,
                                     void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(channel);
    if (!rc && (!on_msg || (unsigned)kind > TS_STORE_CHAN_SHARD)) rc = TS_EINVAL;
    return rc ? rc : st->ops->subscribe(st->self, kind, channel, on_msg, msg_ud, cb, ud);
}
static inline int ts_store_unsubscribe(ts_store_t *st, ts_store_chan_t kind, ts_slice_t channel,
                                       ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb,
                                       void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(channel);
    if (!rc && (!on_msg || (unsigned)kind > TS_STORE_CHAN_SHARD)) rc = TS_EINVAL;
    return rc ? rc : st->ops->unsubscribe(st->self, kind, channel, on_msg, msg_ud, cb, ud);
}
static inline int ts_store_publish(ts_store_t *st, ts_store_chan_t kind, ts_slice_t channel,
                                   ts_buf_t *msg, ts_store_done_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(channel);
    if (!rc && (!msg || (kind != TS_STORE_CHAN && kind != TS_STORE_CHAN_SHARD))) rc = TS_EINVAL;
    return rc ? rc : st->ops->publish(st->self, kind, channel, msg, cb, ud);
}
static inline int ts_store_numsub(ts_store_t *st, ts_store_chan_t kind, ts_slice_t channel,
                                  ts_store_count_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    int rc = ts_store__check_id(channel);
    if (!rc && (!st->ops->numsub || (kind != TS_STORE_CHAN && kind != TS_STORE_CHAN_SHARD)))
        rc = TS_EINVAL;
    return rc ? rc : st->ops->numsub(st->self, kind, channel, cb, ud);
}

#endif
