/* ts_ratelimit.h - token buckets, a bounded keyed limiter table and a
 * strike counter for throttling. Pure code: no I/O, no clock, no globals.
 * The caller passes a monotonic time in milliseconds to every call (uv_now),
 * so behaviour is a function of the inputs and tests are deterministic. */
#ifndef TS_RATELIMIT_H
#define TS_RATELIMIT_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_err.h"
#include "core/ts_list.h"
#include "core/ts_idmap.h"

/* ---- Token bucket --------------------------------------------------------
 *
 * Precision. The level is an integer count of micro-tokens (1 token =
 * 1,000,000 units) and the rate an integer count of milli-tokens per second.
 * One millisecond therefore adds exactly `rate_mtps` units: refill is one
 * integer multiplication, with no division and no remainder, so nothing is
 * ever rounded away and there is no drift over any period: a client that
 * keeps the bucket below its burst gets exactly floor(burst + rate * elapsed)
 * tokens, after 1e6 operations as after one (refill beyond the burst is
 * discarded, as in any token bucket: a full bucket banks nothing). Time has
 * millisecond resolution; the smallest non-zero rate is 0.001 token/s.
 *
 * Clock. `now_ms` must be monotonic. A call whose `now_ms` is earlier than
 * the last one seen is treated as "no time passed" (the bucket never refills
 * twice for the same interval). A gap of any length (a process that slept
 * for days, now_ms near UINT64_MAX) simply fills the bucket: the refill is
 * clamped before multiplying, so it cannot overflow.
 *
 * Size: 32 bytes, embeddable (one per socket for events, one for bytes). */

#define TS_RL_UNIT 1000000ull                   /* micro-tokens per token */
#define TS_RL_MAX_BURST 1000000000000ull        /* 1e12 tokens */
#define TS_RL_PER_SEC(n) ((uint64_t)(n) * 1000u) /* tokens/s -> rate_mtps */
/* ts_rl_take's answer when the request can never be granted. Negative, and
 * equal to TS_ELIMIT so it also reads well as an error code. */
#define TS_RL_NEVER ((int64_t)TS_ELIMIT)

typedef struct ts_rl_bucket {
    uint64_t level;     /* private: micro-tokens available at `last_ms` */
    uint64_t cap;       /* read-only: burst * TS_RL_UNIT */
    uint64_t rate_mtps; /* read-only: refill, milli-tokens per second */
    uint64_t last_ms;   /* private: latest now_ms seen */
} ts_rl_bucket_t;

/* Initialises a full bucket: `burst` tokens may be taken at once, then
 * `rate_mtps / 1000` tokens per second come back, never beyond `burst`.
 * rate 0 = a fixed allowance that never refills; burst 0 = grants nothing.
 * Any rate is valid (refill is clamped before multiplying, it cannot overflow).
 * Returns 0, or TS_EINVAL if burst > TS_RL_MAX_BURST (the bucket is then left
 * as if burst and rate were 0: it denies everything but n = 0). */
int ts_rl_bucket_init(ts_rl_bucket_t *b, uint64_t rate_mtps, uint64_t burst, uint64_t now_ms);

/* Takes `n` tokens if they are all available.
 * Returns 0: granted, n tokens removed (n = 0 is always granted);
 *         > 0: denied, nothing removed; the number of milliseconds after
 *              which n tokens will be available if nothing else takes any
 *              (exact: the smallest wait that suffices, at least 1,
 *              counted from now_ms even if the clock stepped back);
 *         TS_RL_NEVER (< 0): denied forever, nothing removed: n > burst, or
 *              the rate is 0 and the level is short. Distinct from a wait, so
 *              a caller can tell "slow down" from "this message is too big". */
int64_t ts_rl_take(ts_rl_bucket_t *b, uint64_t now_ms, uint64_t n);

/* Whole tokens available at now_ms (refills first; never takes). */
uint64_t ts_rl_available(ts_rl_bucket_t *b, uint64_t now_ms);

/* 1 if the bucket is at its burst at now_ms: it carries no information and
 * a fresh bucket would behave identically, so a table may drop it. */
int ts_rl_is_full(ts_rl_bucket_t *b, uint64_t now_ms);

/* A bucket whose burst and rate are constants of its owner's kind, given
 * at every call instead of kept in it: 16 bytes instead of 32 where every
 * one of many objects has the same pair (a Socket.IO client's namespace
 * CONNECTs). With the same (rate_mtps, burst) at every call it behaves
 * exactly as a ts_rl_bucket_t made with them; init fills it. */
typedef struct ts_rl_lite {
    uint64_t level;   /* private: micro-tokens available at `last_ms` */
    uint64_t last_ms; /* private */
} ts_rl_lite_t;
void ts_rl_lite_init(ts_rl_lite_t *b, uint64_t burst, uint64_t now_ms);
/* ts_rl_take's answers. */
int64_t ts_rl_lite_take(ts_rl_lite_t *b, uint64_t rate_mtps, uint64_t burst, uint64_t now_ms,
                        uint64_t n);

/* ---- Keyed limiter table --------------------------------------------------
 *
 * Limits by string key (client address, user id). One table is one limit:
 *   TS_RL_RATE:  a token bucket per key ("handshakes per IP per second");
 *   TS_RL_COUNT: a counter per key with inc/dec and a max, no refill
 *                ("concurrent connections per IP / per user").
 *
 * Memory is bounded by `max_entries` whatever the keys are; every operation
 * is O(1) (one hash lookup plus list relinks) apart from ts_idmap's amortised
 * growth, which stops once the table has reached its bound.
 *
 * RATE tables: behaviour when full (the key-flood decision).
 *   Entries are kept in least-recently-used order (any take, granted or not,
 *   makes the key most recent). Every operation first drops up to two
 *   least-recent entries whose bucket has refilled to its burst (idle and
 *   full: they carry no information, so dropping them changes nothing). When
 *   a new key arrives and the table is still full, the least recently used
 *   entry is evicted even if its bucket is not full (counted in
 *   `evicted_total`). New keys are never refused: the table fails OPEN for
 *   the evicted key's history and never CLOSED for newcomers.
 *   Why: refusing new keys while the table is full would let anyone who
 *   rotates through max_entries addresses lock every other address out, the
 *   outcome the limiter exists to prevent. Forgetting is cheap for an
 *   attacker only in appearance: to reset one key's bucket they must first
 *   touch max_entries other keys, each of which already gets its own full
 *   burst, so eviction at most doubles what rotating addresses grants anyway.
 *   A key hammered by a flood stays most-recent and therefore stays limited;
 *   an unrelated key always gets a fresh entry with its full allowance. To
 *   cap the total handshake rate under a distributed flood, put one global
 *   ts_rl_bucket_t in front of the table (the daemon's job).
 *
 * COUNT tables: an entry exists exactly while its count is > 0 (dec to 0
 *   removes it), so an entry always describes live connections and is never
 *   evicted. When max_entries keys all hold connections, inc for a new key
 *   fails CLOSED with TS_ENOMEM ("server full"), distinct from TS_ELIMIT
 *   ("this key is at its max"). Failing open instead would let one address
 *   open unlimited untracked connections whenever the table is full. Size
 *   max_entries at least at the server's connection limit: the table can
 *   then only be full when the server is, and a flood from one address (one
 *   entry, capped at max_count) can never keep another address out. */

typedef enum ts_rl_kind {
    TS_RL_RATE = 0,  /* token bucket per key */
    TS_RL_COUNT = 1, /* concurrent counter per key */
} ts_rl_kind_t;

typedef struct ts_rl_table_cfg {
    ts_rl_kind_t kind;
    uint64_t rate_mtps; /* RATE: refill per key, milli-tokens per second */
    uint64_t burst;     /* RATE: bucket size per key, tokens */
    uint32_t max_count; /* COUNT: max concurrent per key (0 refuses all) */
    size_t max_entries; /* keys tracked at most; 0 = TS_RL_DEFAULT_ENTRIES */
} ts_rl_table_cfg_t;

#define TS_RL_DEFAULT_ENTRIES 65536u
/* Keys are byte strings of any length. Keys of up to 32 bytes are kept as
 * they are, longer ones as their SHA-256 (ratelimit.c): an entry costs at
 * most ~120 bytes whatever the key, and two keys share an entry only if
 * SHA-256 collides. Callers on a hot path may pass a digest they keep. */

typedef struct ts_rl_table {
    ts_rl_table_cfg_t cfg;  /* read-only */
    ts_idmap_t map;         /* private: key -> entry (keys live in the entries; a word
                             * per slot) */
    ts_list_t lru;          /* private: RATE entries, least recently used first */
    size_t entries;         /* read-only: keys tracked now */
    uint64_t evicted_total; /* read-only: RATE entries evicted while not full */
    uint64_t dropped_total; /* read-only: RATE entries dropped because full+idle */
    uint64_t full_total;    /* read-only: COUNT incs refused with TS_ENOMEM */
} ts_rl_table_t;

/* Initialises in place (the table holds a list head: never copy or move it
 * after init). Copies *cfg. Returns 0, or TS_EINVAL (bad burst/rate as for buckets; the
 * table is still initialised and safe to deinit, and it denies). */
int ts_rl_table_init(ts_rl_table_t *t, const ts_rl_table_cfg_t *cfg);
/* Frees every entry. */
void ts_rl_table_deinit(ts_rl_table_t *t);

/* RATE: ts_rl_take on the key's bucket (created full on first sight; borrows
 * `key` for the call only, the table keeps its own copy or digest).
 * Returns what ts_rl_take returns, or TS_EINVAL (a COUNT table). n > burst answers TS_RL_NEVER without creating an entry. */
int64_t ts_rl_table_take(ts_rl_table_t *t, const char *key, size_t klen, uint64_t now_ms,
                         uint64_t n);

/* RATE: what ts_rl_table_take would answer now, without taking anything
 * and without creating or reordering an entry (a key not tracked has a full
 * bucket). Lets a caller check several tables before taking from any.
 * Returns 0, a wait in ms, TS_RL_NEVER, or TS_EINVAL (a COUNT table). */
int64_t ts_rl_table_wait(const ts_rl_table_t *t, const char *key, size_t klen, uint64_t now_ms,
                         uint64_t n);

/* COUNT: one more concurrent use of `key`.
 * Returns 0 (counted: call ts_rl_table_dec exactly once later), TS_ELIMIT
 * (the key is at max_count; not counted), TS_ENOMEM (table full of live
 * keys; not counted), TS_EINVAL (a RATE table). */
int ts_rl_table_inc(ts_rl_table_t *t, const char *key, size_t klen);
/* COUNT: one use of `key` ended. Returns the count left (>= 0), or
 * TS_ENOTFOUND if the key has no live count (a caller bug, ignored). */
int64_t ts_rl_table_dec(ts_rl_table_t *t, const char *key, size_t klen);
/* COUNT: the key's current count (0 if absent). */
uint32_t ts_rl_table_count(const ts_rl_table_t *t, const char *key, size_t klen);

/* RATE: the key's bucket, or NULL if it is not tracked. Does not refill and
 * does not change the LRU order (for tests and diagnostics). */
const ts_rl_bucket_t *ts_rl_table_peek(const ts_rl_table_t *t, const char *key, size_t klen);

/* ---- Held entries: a hot path without lookups ------------------------------
 *
 * A caller that spends from the same key at every event (a connected tab, its
 * Engine.IO connection, its user) holds the key's entry for as long as it
 * lives and spends through the handle: no key lookup, no LRU relink, and the
 * entry is neither dropped as idle nor evicted while held, so a tab whose
 * bucket refills between two events keeps one entry instead of being freed
 * and allocated again at every event (the churn drop_idle caused). Holds are
 * counted: several holders of one key share one bucket, exactly as takes by
 * key do. At the last release the entry goes back to the LRU as its most
 * recent one, with its bucket as it is, so what a departed holder spent stays
 * charged to the key until the bucket has refilled (then it is dropped).
 *
 * Memory: entries not held are bounded by max_entries as before; held ones by
 * the number of holders. A new key met when the table is full and every entry
 * is held is still answered (from a fresh, full bucket not kept: fail open, as
 * eviction would) and counted in evicted_total; a hold of a new key then
 * creates the entry beyond max_entries. Taking by key from a held entry works
 * as before (the holder and the caller share its bucket). */

typedef struct ts_rl_entry ts_rl_entry_t; /* opaque */

/* RATE: holds the key's entry (created full on first sight, as
 * ts_rl_table_take would). Returns the handle (release it exactly once with
 * ts_rl_table_release, before ts_rl_table_deinit), or NULL for a COUNT table. */
ts_rl_entry_t *ts_rl_table_hold(ts_rl_table_t *t, const char *key, size_t klen, uint64_t now_ms);
/* Ends one hold; the entry stays tracked (LRU, most recent) until dropped. */
void ts_rl_table_release(ts_rl_table_t *t, ts_rl_entry_t *e);
/* ts_rl_table_take / ts_rl_table_wait on a held entry (same answers). */
int64_t ts_rl_held_take(ts_rl_entry_t *e, uint64_t now_ms, uint64_t n);
int64_t ts_rl_held_wait(const ts_rl_entry_t *e, uint64_t now_ms, uint64_t n);

/* ---- Strikes: repeated abuse ----------------------------------------------
 *
 * Counts violations (a throttled event, an oversized message) per socket and
 * says when `limit` of them fell within any `window_ms` span: a sliding
 * window over the last `limit` strike times, exact to the millisecond (a
 * strike at t expires at t + window_ms). The caller disconnects when
 * ts_rl_strike returns 1. Embeddable, 72 bytes, no allocation. */

#define TS_RL_STRIKES_MAX 8u

typedef struct ts_rl_strikes {
    uint64_t at[TS_RL_STRIKES_MAX]; /* private: ring of strike times */
    uint32_t window_ms;             /* read-only */
    uint8_t limit;                  /* read-only: 1..TS_RL_STRIKES_MAX */
    uint8_t n;                      /* private: strikes in the ring */
    uint8_t head;                   /* private: index of the oldest */
} ts_rl_strikes_t;

/* limit is clamped to 1..TS_RL_STRIKES_MAX; window_ms 0 means every strike
 * expires at once (only limit 1 can then be reached). */
void ts_rl_strikes_init(ts_rl_strikes_t *s, unsigned limit, uint32_t window_ms);
/* Records a strike at now_ms. Returns 1 if `limit` strikes (this one
 * included) lie within the window ending at now_ms, else 0. Keeps counting
 * after the limit is reached (it answers 1 again while the window holds). */
int ts_rl_strike(ts_rl_strikes_t *s, uint64_t now_ms);
/* Strikes still inside the window at now_ms, at most `limit` (only the
 * newest `limit` are remembered); does not record one. */
unsigned ts_rl_strikes_count(ts_rl_strikes_t *s, uint64_t now_ms);

#endif
