/* ratelimit.c - token buckets in integer micro-tokens (exact refill, no
 * drift), a keyed limiter table bounded by LRU eviction of RATE entries, and
 * a sliding-window strike counter. The caller supplies the time. */
#include "core/ts_ratelimit.h"

#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"

/* ---- Token bucket ---- */

int ts_rl_bucket_init(ts_rl_bucket_t *b, uint64_t rate_mtps, uint64_t burst, uint64_t now_ms) {
    b->last_ms = now_ms;
    if (burst > TS_RL_MAX_BURST) {
        b->cap = b->level = b->rate_mtps = 0;
        return TS_EINVAL;
    }
    b->cap = b->level = burst * TS_RL_UNIT;
    b->rate_mtps = rate_mtps;
    return 0;
}

/* Brings the level up to date. One millisecond adds exactly rate_mtps
 * micro-tokens. If the gap is longer than the time to fill the bucket the
 * bucket is simply full; testing that before multiplying means dt * rate is
 * only computed when it is <= the missing amount, so it never overflows. */
static void refill(ts_rl_bucket_t *b, uint64_t now_ms) {
    if (now_ms <= b->last_ms) return; /* clock still, or stepped back */
    uint64_t dt = now_ms - b->last_ms;
    b->last_ms = now_ms;
    if (b->level >= b->cap || b->rate_mtps == 0) return;
    uint64_t missing = b->cap - b->level;
    if (dt > missing / b->rate_mtps)
        b->level = b->cap;
    else
        b->level += dt * b->rate_mtps;
}

int64_t ts_rl_take(ts_rl_bucket_t *b, uint64_t now_ms, uint64_t n) {
    if (n == 0) return 0;
    if (n > b->cap / TS_RL_UNIT) return TS_RL_NEVER;
    refill(b, now_ms);
    uint64_t need = n * TS_RL_UNIT; /* n <= burst <= 1e12: fits */
    if (b->level >= need) {
        b->level -= need;
        return 0;
    }
    if (b->rate_mtps == 0) return TS_RL_NEVER;
    uint64_t deficit = need - b->level;
    uint64_t wait = deficit / b->rate_mtps + (deficit % b->rate_mtps != 0);
    /* refill counts from last_ms; if the caller's clock is behind it, the
     * caller must wait that much longer. */
    if (now_ms < b->last_ms) wait += b->last_ms - now_ms;
    return (int64_t)wait; /* <= 1e18 + a clock step: fits */
}

uint64_t ts_rl_available(ts_rl_bucket_t *b, uint64_t now_ms) {
    refill(b, now_ms);
    return b->level / TS_RL_UNIT;
}

int ts_rl_is_full(ts_rl_bucket_t *b, uint64_t now_ms) {
    refill(b, now_ms);
    return b->level >= b->cap;
}

void ts_rl_lite_init(ts_rl_lite_t *b, uint64_t burst, uint64_t now_ms) {
    ts_rl_bucket_t full;
    ts_rl_bucket_init(&full, 0, burst, now_ms);
    b->level = full.level;
    b->last_ms = full.last_ms;
}

int64_t ts_rl_lite_take(ts_rl_lite_t *b, uint64_t rate_mtps, uint64_t burst, uint64_t now_ms,
                        uint64_t n) {
    ts_rl_bucket_t full;
    ts_rl_bucket_init(&full, rate_mtps, burst, b->last_ms); /* cap and rate as made */
    full.level = b->level;
    int64_t rc = ts_rl_take(&full, now_ms, n);
    b->level = full.level;
    b->last_ms = full.last_ms;
    return rc;
}

/* ---- Keyed limiter table ---- */

/* How a key is stored. A key of up to KEY_INLINE bytes is kept as it is; a
 * longer one as a marker byte followed by its SHA-256 (33 bytes). Every
 * stored literal is shorter than every stored digest, so a short key and a
 * long one never share an entry, and two long keys do only if SHA-256
 * collides: nobody can pick an id that spends another key's budget. Memory
 * per entry stays bounded whatever the callers' keys are (a tab's key is
 * up to 515 bytes). */
#define KEY_INLINE 32u
#define KEY_DIGEST_MARK '\xff'

typedef struct rl_key {
    const char *p;
    size_t len;
    char digest[1 + SHA256_DIGEST_SIZE];
} rl_key_t;

/* Fills *k for `key` (k->p borrows key or points into k: do not copy *k). */
static void key_norm(rl_key_t *k, const char *key, size_t klen) {
    if (klen <= KEY_INLINE) {
        k->p = key;
        k->len = klen;
        return;
    }
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, klen, (const uint8_t *)key);
    k->digest[0] = KEY_DIGEST_MARK;
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, (uint8_t *)k->digest + 1);
    k->p = k->digest;
    k->len = sizeof k->digest;
}

typedef struct ts_rl_entry {
    ts_list_t link; /* RATE: in t->lru unless held; COUNT: unlinked */
    union {
        ts_rl_bucket_t bucket; /* RATE */
        uint32_t count;        /* COUNT: > 0 while the entry exists */
    } u;
    uint32_t holds; /* RATE: holders (ts_rl_table_hold); held = out of the LRU */
    size_t klen;
    char key[]; /* the map borrows this copy */
} rl_entry_t;

/* The map's key of an entry (ts_idmap_init_fn): one word per slot. */
static ts_slice_t entry_key(const void *o) {
    const rl_entry_t *e = o;
    return ts_slice(e->key, e->klen);
}

int ts_rl_table_init(ts_rl_table_t *t, const ts_rl_table_cfg_t *cfg) {
    memset(t, 0, sizeof(*t));
    t->cfg = *cfg;
    ts_idmap_init_fn(&t->map, entry_key);
    ts_list_init(&t->lru);
    if (!t->cfg.max_entries) t->cfg.max_entries = TS_RL_DEFAULT_ENTRIES;
    if (t->cfg.kind == TS_RL_RATE && t->cfg.burst > TS_RL_MAX_BURST) {
        t->cfg.burst = t->cfg.rate_mtps = 0;
        return TS_EINVAL;
    }
    if (t->cfg.kind != TS_RL_RATE && t->cfg.kind != TS_RL_COUNT) {
        t->cfg.kind = TS_RL_COUNT;
        t->cfg.max_count = 0;
        return TS_EINVAL;
    }
    return 0;
}

void ts_rl_table_deinit(ts_rl_table_t *t) {
    size_t it = 0;
    void *e;
    while (ts_idmap_next(&t->map, &it, &e)) free(e);
    ts_idmap_deinit(&t->map);
    ts_list_init(&t->lru);
    t->entries = 0;
}

static rl_entry_t *entry_new(const char *key, size_t klen) {
    rl_entry_t *e = ts_xmalloc(sizeof(*e) + klen + 1);
    ts_list_init(&e->link);
    e->holds = 0;
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    return e;
}

static void entry_free(ts_rl_table_t *t, rl_entry_t *e) {
    ts_idmap_del_n(&t->map, e->key, e->klen);
    ts_list_remove(&e->link);
    t->entries--;
    free(e);
}

static rl_entry_t *lru_head(ts_rl_table_t *t) {
    return ts_list_empty(&t->lru) ? NULL : ts_list_entry(t->lru.next, rl_entry_t, link);
}

/* Drops up to `max` least-recent entries that are full (idle long enough to
 * have refilled): a constant amount of work per call, and every entry is
 * dropped at most once, so memory shrinks back when traffic stops. */
static void drop_idle(ts_rl_table_t *t, uint64_t now_ms, int max) {
    rl_entry_t *e;
    while (max-- > 0 && (e = lru_head(t)) && ts_rl_is_full(&e->u.bucket, now_ms)) {
        entry_free(t, e);
        t->dropped_total++;
    }
}

/* The key's entry, most recent in the LRU unless held, created full on first
 * sight. A new key in a full table evicts the least recently used entry not
 * held; if every entry is held, NULL (the caller answers from a fresh bucket)
 * unless `hold` (a holder may go beyond max_entries: holders bound those). */
static rl_entry_t *entry_get(ts_rl_table_t *t, const char *key, size_t klen, uint64_t now_ms,
                             int hold) {
    drop_idle(t, now_ms, 2);
    rl_key_t k;
    key_norm(&k, key, klen);
    rl_entry_t *e = ts_idmap_get_n(&t->map, k.p, k.len);
    if (e) {
        if (!e->holds) {
            ts_list_remove(&e->link); /* most recent goes to the tail */
            ts_list_insert_tail(&t->lru, &e->link);
        }
        return e;
    }
    if (t->entries >= t->cfg.max_entries) {
        rl_entry_t *old = lru_head(t);
        if (old) {
            /* not full: drop_idle would have taken it (it stops only at a
             * head that is not full, or after making room) */
            t->evicted_total++;
            entry_free(t, old);
        } else if (!hold) {
            t->evicted_total++;
            return NULL;
        }
    }
    e = entry_new(k.p, k.len);
    ts_rl_bucket_init(&e->u.bucket, t->cfg.rate_mtps, t->cfg.burst, now_ms);
    ts_idmap_put(&t->map, e);
    ts_list_insert_tail(&t->lru, &e->link);
    t->entries++;
    return e;
}

int64_t ts_rl_table_take(ts_rl_table_t *t, const char *key, size_t klen, uint64_t now_ms,
                         uint64_t n) {
    if (t->cfg.kind != TS_RL_RATE) return TS_EINVAL;
    if (n == 0) return 0;
    if (n > t->cfg.burst) return TS_RL_NEVER;
    rl_entry_t *e = entry_get(t, key, klen, now_ms, 0);
    if (!e) { /* every entry held: a fresh bucket, not kept */
        ts_rl_bucket_t b;
        ts_rl_bucket_init(&b, t->cfg.rate_mtps, t->cfg.burst, now_ms);
        return ts_rl_take(&b, now_ms, n);
    }
    return ts_rl_take(&e->u.bucket, now_ms, n);
}

rl_entry_t *ts_rl_table_hold(ts_rl_table_t *t, const char *key, size_t klen, uint64_t now_ms) {
    if (t->cfg.kind != TS_RL_RATE) return NULL;
    rl_entry_t *e = entry_get(t, key, klen, now_ms, 1);
    if (e->holds++ == 0) ts_list_remove(&e->link); /* out of the LRU: never dropped */
    return e;
}

void ts_rl_table_release(ts_rl_table_t *t, rl_entry_t *e) {
    ts_assert(e->holds > 0);
    if (--e->holds == 0) ts_list_insert_tail(&t->lru, &e->link);
}

int64_t ts_rl_held_take(rl_entry_t *e, uint64_t now_ms, uint64_t n) {
    return ts_rl_take(&e->u.bucket, now_ms, n);
}

int64_t ts_rl_held_wait(const rl_entry_t *e, uint64_t now_ms, uint64_t n) {
    if (n == 0) return 0;
    ts_rl_bucket_t b = e->u.bucket; /* a copy: refilling it changes nothing */
    return ts_rl_take(&b, now_ms, n);
}

int64_t ts_rl_table_wait(const ts_rl_table_t *t, const char *key, size_t klen, uint64_t now_ms,
                         uint64_t n) {
    if (t->cfg.kind != TS_RL_RATE) return TS_EINVAL;
    if (n == 0) return 0;
    if (n > t->cfg.burst) return TS_RL_NEVER;
    rl_key_t k;
    key_norm(&k, key, klen);
    const rl_entry_t *e = ts_idmap_get_n(&t->map, k.p, k.len);
    if (!e) return 0;
    ts_rl_bucket_t b = e->u.bucket; /* a copy: refilling it changes nothing */
    return ts_rl_take(&b, now_ms, n);
}

int ts_rl_table_inc(ts_rl_table_t *t, const char *key, size_t klen) {
    if (t->cfg.kind != TS_RL_COUNT) return TS_EINVAL;
    rl_key_t k;
    key_norm(&k, key, klen);
    rl_entry_t *e = ts_idmap_get_n(&t->map, k.p, k.len);
    if (e) {
        if (e->u.count >= t->cfg.max_count) return TS_ELIMIT;
        e->u.count++;
        return 0;
    }
    if (t->cfg.max_count == 0) return TS_ELIMIT;
    if (t->entries >= t->cfg.max_entries) {
        t->full_total++;
        return TS_ENOMEM;
    }
    e = entry_new(k.p, k.len);
    e->u.count = 1;
    ts_idmap_put(&t->map, e);
    t->entries++;
    return 0;
}

int64_t ts_rl_table_dec(ts_rl_table_t *t, const char *key, size_t klen) {
    if (t->cfg.kind != TS_RL_COUNT) return TS_ENOTFOUND;
    rl_key_t k;
    key_norm(&k, key, klen);
    rl_entry_t *e = ts_idmap_get_n(&t->map, k.p, k.len);
    if (!e) return TS_ENOTFOUND;
    uint32_t left = --e->u.count;
    if (left == 0) entry_free(t, e);
    return left;
}

uint32_t ts_rl_table_count(const ts_rl_table_t *t, const char *key, size_t klen) {
    if (t->cfg.kind != TS_RL_COUNT) return 0;
    rl_key_t k;
    key_norm(&k, key, klen);
    const rl_entry_t *e = ts_idmap_get_n(&t->map, k.p, k.len);
    return e ? e->u.count : 0;
}

const ts_rl_bucket_t *ts_rl_table_peek(const ts_rl_table_t *t, const char *key, size_t klen) {
    if (t->cfg.kind != TS_RL_RATE) return NULL;
    rl_key_t k;
    key_norm(&k, key, klen);
    const rl_entry_t *e = ts_idmap_get_n(&t->map, k.p, k.len);
    return e ? &e->u.bucket : NULL;
}

/* ---- Strikes ---- */

void ts_rl_strikes_init(ts_rl_strikes_t *s, unsigned limit, uint32_t window_ms) {
    memset(s, 0, sizeof(*s));
    if (limit < 1) limit = 1;
    if (limit > TS_RL_STRIKES_MAX) limit = TS_RL_STRIKES_MAX;
    s->limit = (uint8_t)limit;
    s->window_ms = window_ms;
}

/* Forgets strikes that left the window. A strike time after now_ms (clock
 * stepped back) has age 0: it stays until the clock passes it. */
static void strikes_expire(ts_rl_strikes_t *s, uint64_t now_ms) {
    while (s->n > 0) {
        uint64_t t = s->at[s->head];
        uint64_t age = now_ms > t ? now_ms - t : 0;
        if (age < s->window_ms) break;
        s->head = (uint8_t)((s->head + 1) % TS_RL_STRIKES_MAX);
        s->n--;
    }
}

int ts_rl_strike(ts_rl_strikes_t *s, uint64_t now_ms) {
    strikes_expire(s, now_ms);
    if (s->n == s->limit) { /* only the newest limit-1 matter for the next answer */
        s->head = (uint8_t)((s->head + 1) % TS_RL_STRIKES_MAX);
        s->n--;
    }
    s->at[(s->head + s->n) % TS_RL_STRIKES_MAX] = now_ms;
    s->n++;
    return s->n >= s->limit;
}

unsigned ts_rl_strikes_count(ts_rl_strikes_t *s, uint64_t now_ms) {
    strikes_expire(s, now_ms);
    return s->n;
}
