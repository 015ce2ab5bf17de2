/* test_ratelimit.c - token buckets (scripted refill/burst/retry-after cases,
 * exactness over 1e6 operations), the keyed table (per-key limits, counters,
 * key flood, LRU and idle eviction) and strikes. Time is a plain integer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "core/ts_ratelimit.h"

#define NEVER TS_RL_NEVER

/* ---- scripted bucket cases: each step takes n at now and expects `want`
 * (0 granted, > 0 retry-after ms, NEVER). */
typedef struct step {
    uint64_t now, n;
    int64_t want;
} step_t;

static const struct bucket_case {
    const char *name;
    uint64_t rate_mtps, burst;
    step_t steps[12];
} bucket_cases[] = {
    {"burst then refill at 10/s", TS_RL_PER_SEC(10), 5,
     {{0, 5, 0}, {0, 1, 100}, {99, 1, 1}, {100, 1, 0}, {100, 1, 100}, {250, 1, 0},
      {250, 1, 50}, {1000, 5, 0}, {5000, 5, 0}, {5000, 1, 100}}},
    {"clock not moving never refills", TS_RL_PER_SEC(1000), 2,
     {{7, 1, 0}, {7, 1, 0}, {7, 1, 1}, {7, 1, 1}, {7, 1, 1}, {8, 1, 0}, {8, 1, 1}}},
    {"n == burst is grantable, n > burst never", TS_RL_PER_SEC(1), 3,
     {{0, 4, NEVER}, {0, 3, 0}, {0, 3, 3000}, {0, 4, NEVER}, {3000, 3, 0}}},
    {"retry-after for several tokens", TS_RL_PER_SEC(4), 4,
     {{0, 4, 0}, {0, 3, 750}, {749, 3, 1}, {750, 3, 0}, {750, 1, 250}}},
    {"fractional rate 0.5/s", 500, 1, {{0, 1, 0}, {0, 1, 2000}, {1999, 1, 1}, {2000, 1, 0}}},
    /* 3/s: token k is due at ceil(k * 1000 / 3) ms, remainders carried
     * (burst 2 and drained: the level never reaches the cap) */
    {"non-divisible rate 3/s keeps remainders", TS_RL_PER_SEC(3), 2,
     {{0, 2, 0}, {0, 1, 334}, {333, 1, 1}, {334, 1, 0}, {334, 1, 333}, {667, 1, 0},
      {667, 1, 333}, {999, 1, 1}, {1000, 1, 0}, {1000, 1, 334}}},
    /* a full bucket banks nothing beyond its burst: at 3/s, burst 1 is full
     * at 333.3 ms; taken at 334 the next token is due at 667.3 -> 668 */
    {"refill beyond the burst is lost", TS_RL_PER_SEC(3), 1,
     {{0, 1, 0}, {333, 1, 1}, {334, 1, 0}, {334, 1, 334}, {667, 1, 1}, {668, 1, 0}}},
    {"rate 0 is a fixed allowance", 0, 2, {{0, 1, 0}, {0, 1, 0}, {0, 1, NEVER}, {999999, 1, NEVER}}},
    {"burst 0 grants nothing but n=0", TS_RL_PER_SEC(100), 0, {{0, 0, 0}, {0, 1, NEVER}, {9, 1, NEVER}}},
    {"clock stepping back: no refill, wait counted from now", TS_RL_PER_SEC(10), 5,
     {{1000, 5, 0}, {500, 1, 600}, {1099, 1, 1}, {1100, 1, 0}, {600, 1, 600}}},
    {"huge gap fills to burst, not beyond", TS_RL_PER_SEC(1), 2,
     {{0, 2, 0}, {UINT64_MAX - 1, 2, 0}, {UINT64_MAX - 1, 1, 1000}, {UINT64_MAX, 3, NEVER}}},
    {"n = UINT64_MAX is never grantable", TS_RL_PER_SEC(10), 5, {{0, UINT64_MAX, NEVER}, {0, 5, 0}}},
};

static void bucket_scripts(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bucket_cases / sizeof bucket_cases[0]; i++) {
        const struct bucket_case *c = &bucket_cases[i];
        ts_rl_bucket_t b;
        assert_int_equal(ts_rl_bucket_init(&b, c->rate_mtps, c->burst, c->steps[0].now), 0);
        for (size_t s = 0; s < 12; s++) {
            const step_t *st = &c->steps[s];
            if (s > 0 && st->now == 0 && st->n == 0 && st->want == 0) break; /* end */
            int64_t got = ts_rl_take(&b, st->now, st->n);
            if (got != st->want) {
                fail_msg("%s: step %zu (now=%llu n=%llu): got %lld, want %lld", c->name, s,
                         (unsigned long long)st->now, (unsigned long long)st->n, (long long)got,
                         (long long)st->want);
            }
        }
    }
}

static void bucket_limits_and_overflow(void **state) {
    (void)state;
    ts_rl_bucket_t b;
    /* invalid burst: refused, and the bucket denies */
    assert_int_equal(ts_rl_bucket_init(&b, TS_RL_PER_SEC(1), TS_RL_MAX_BURST + 1, 0), TS_EINVAL);
    assert_int_equal(ts_rl_take(&b, 0, 1), NEVER);
    assert_int_equal(ts_rl_take(&b, 0, 0), 0);
    /* the largest bucket with the largest rate: no overflow in refill */
    assert_int_equal(ts_rl_bucket_init(&b, UINT64_MAX, TS_RL_MAX_BURST, 0), 0);
    assert_int_equal(ts_rl_take(&b, 0, TS_RL_MAX_BURST), 0);
    assert_int_equal(ts_rl_available(&b, 0), 0);
    assert_int_equal(ts_rl_take(&b, 1, TS_RL_MAX_BURST), 0); /* one ms refills it all */
    assert_int_equal(ts_rl_take(&b, UINT64_MAX, TS_RL_MAX_BURST), 0);
    /* the slowest rate and the largest deficit: the wait fits in int64 */
    assert_int_equal(ts_rl_bucket_init(&b, 1, TS_RL_MAX_BURST, 0), 0);
    assert_int_equal(ts_rl_take(&b, 0, TS_RL_MAX_BURST), 0);
    assert_int_equal(ts_rl_take(&b, 0, TS_RL_MAX_BURST), (int64_t)(TS_RL_MAX_BURST * TS_RL_UNIT));
    /* a big bytes bucket: 1 GB/s with a 4 GB burst */
    assert_int_equal(ts_rl_bucket_init(&b, TS_RL_PER_SEC(1000000000ull), 4000000000ull, 0), 0);
    assert_int_equal(ts_rl_take(&b, 0, 4000000000ull), 0);
    assert_int_equal(ts_rl_take(&b, 0, 1000000000ull), 1000);
    assert_int_equal(ts_rl_available(&b, 500), 500000000ull);
}

static void available_and_full(void **state) {
    (void)state;
    ts_rl_bucket_t b;
    ts_rl_bucket_init(&b, TS_RL_PER_SEC(2), 4, 100);
    assert_true(ts_rl_is_full(&b, 100));
    assert_int_equal(ts_rl_available(&b, 100), 4);
    assert_int_equal(ts_rl_take(&b, 100, 3), 0);
    assert_false(ts_rl_is_full(&b, 100));
    assert_int_equal(ts_rl_available(&b, 100), 1);
    assert_int_equal(ts_rl_available(&b, 599), 1); /* 1.998 tokens: whole tokens only */
    assert_int_equal(ts_rl_available(&b, 600), 2);
    assert_false(ts_rl_is_full(&b, 1599));
    assert_true(ts_rl_is_full(&b, 1600));
    assert_int_equal(ts_rl_available(&b, 99999), 4);
}

/* For many (rate, burst, n, level) combinations, the retry-after is exact:
 * waiting one millisecond less is still denied, waiting it is granted. */
static void retry_after_is_exact(void **state) {
    (void)state;
    uint64_t x = 88172645463325252ull; /* xorshift64: deterministic */
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t rate = 1 + x % 5000000; /* up to 5000 tokens/s */
        uint64_t burst = 1 + (x >> 24) % 50;
        uint64_t pre = (x >> 32) % (burst + 1);
        uint64_t n = 1 + (x >> 40) % burst;
        uint64_t t0 = (x >> 48) % 1000;
        ts_rl_bucket_t a, b;
        ts_rl_bucket_init(&a, rate, burst, 0);
        assert_int_equal(ts_rl_take(&a, 0, pre), 0);
        b = a;
        int64_t w = ts_rl_take(&a, t0, n);
        assert_true(w >= 0);
        if (w == 0) continue;
        ts_rl_bucket_t c = b;
        assert_true(ts_rl_take(&c, t0 + (uint64_t)w - 1, n) > 0);
        assert_int_equal(ts_rl_take(&b, t0 + (uint64_t)w, n), 0);
    }
}

/* No drift: 1e6 grants at 3 tokens/s, each taken at the retry-after the
 * bucket announced, land exactly on ceil(k * 1000 / 3) ms (burst 2, drained
 * first, so the level stays below the cap and no refill is clamped). */
static void no_drift_over_1e6_grants(void **state) {
    (void)state;
    ts_rl_bucket_t b;
    ts_rl_bucket_init(&b, TS_RL_PER_SEC(3), 2, 0);
    assert_int_equal(ts_rl_take(&b, 0, 2), 0);
    uint64_t now = 0;
    for (uint64_t k = 1; k <= 1000000; k++) {
        int64_t w = ts_rl_take(&b, now, 1);
        assert_true(w > 0);
        now += (uint64_t)w;
        assert_int_equal(ts_rl_take(&b, now, 1), 0);
        if (now != (k * 1000 + 2) / 3) fail_msg("grant %llu at %llu", (unsigned long long)k,
                                                (unsigned long long)now);
    }
    assert_int_equal(now, 333333334u);
}

/* No drift when polled: over 1e6 ms of polling at 7/s, tokens granted =
 * burst + floor(rate * elapsed) exactly; same for a bytes bucket taking
 * uneven sizes (the remainder of each ms is never lost). */
static void no_drift_when_polled(void **state) {
    (void)state;
    ts_rl_bucket_t b;
    ts_rl_bucket_init(&b, 7000, 3, 0);
    uint64_t granted = 0;
    for (uint64_t t = 0; t < 1000000; t++)
        while (ts_rl_take(&b, t, 1) == 0) granted++;
    assert_int_equal(granted, 3 + (7000ull * 999999) / 1000000);

    ts_rl_bucket_init(&b, 1234567, 100, 0); /* 1234.567 bytes/s */
    granted = 0;
    uint64_t sizes[] = {1, 7, 13, 2, 50};
    for (uint64_t t = 0, i = 0; t < 1000000; t += 3) {
        while (ts_rl_take(&b, t, sizes[i % 5]) == 0) granted += sizes[i++ % 5];
    }
    /* drained at every tick, so the level never reaches the burst and
     * nothing is clamped away; last tick 999999; what is left is less than
     * the next size (at most 50) */
    uint64_t supplied = 100 + 1234567ull * 999999 / 1000000;
    assert_true(granted <= supplied);
    assert_true(granted + 50 >= supplied);
    assert_int_equal(granted + ts_rl_available(&b, 999999), supplied);
}

/* ---- table ---- */

/* A table holds a list head: it is initialised in place, never copied. */
static void rate_table(ts_rl_table_t *t, uint64_t rate, uint64_t burst, size_t max) {
    ts_rl_table_cfg_t cfg = {.kind = TS_RL_RATE, .rate_mtps = rate, .burst = burst,
                             .max_entries = max};
    assert_int_equal(ts_rl_table_init(t, &cfg), 0);
}
#define TAKE(t, k, now, n) ts_rl_table_take(&(t), (k), strlen(k), (now), (n))
#define HAS(t, k) (ts_rl_table_peek(&(t), (k), strlen(k)) != NULL)

static void table_rate_per_key(void **state) {
    (void)state;
    ts_rl_table_t t;
    rate_table(&t, TS_RL_PER_SEC(2), 2, 100);
    assert_int_equal(TAKE(t, "10.0.0.1", 0, 1), 0);
    assert_int_equal(TAKE(t, "10.0.0.1", 0, 1), 0);
    assert_int_equal(TAKE(t, "10.0.0.1", 0, 1), 500);
    assert_int_equal(TAKE(t, "10.0.0.2", 0, 2), 0); /* another key: its own bucket */
    assert_int_equal(TAKE(t, "10.0.0.1", 500, 1), 0);
    assert_int_equal(TAKE(t, "10.0.0.1", 500, 3), NEVER);
    assert_int_equal(TAKE(t, "new", 500, 3), NEVER); /* no entry for a never-grantable ask */
    assert_false(HAS(t, "new"));
    assert_int_equal(TAKE(t, "new", 500, 0), 0);
    assert_false(HAS(t, "new"));
    assert_int_equal(t.entries, 2);
    /* keys are byte strings with a length, not C strings */
    assert_int_equal(ts_rl_table_take(&t, "ab\0c", 4, 500, 2), 0);
    assert_int_equal(ts_rl_table_take(&t, "ab\0d", 4, 500, 2), 0);
    assert_int_equal(ts_rl_table_take(&t, "ab\0c", 4, 500, 1), 500);
    /* wrong kind */
    assert_int_equal(ts_rl_table_inc(&t, "x", 1), TS_EINVAL);
    assert_int_equal(ts_rl_table_count(&t, "x", 1), 0);
    ts_rl_table_deinit(&t);

    ts_rl_table_cfg_t bad = {.kind = TS_RL_RATE, .rate_mtps = 1, .burst = TS_RL_MAX_BURST + 1};
    assert_int_equal(ts_rl_table_init(&t, &bad), TS_EINVAL);
    assert_int_equal(TAKE(t, "k", 0, 1), NEVER);
    ts_rl_table_deinit(&t);
}

static void table_counters(void **state) {
    (void)state;
    ts_rl_table_t t;
    ts_rl_table_cfg_t cfg = {.kind = TS_RL_COUNT, .max_count = 2, .max_entries = 3};
    assert_int_equal(ts_rl_table_init(&t, &cfg), 0);
#define INC(k) ts_rl_table_inc(&t, (k), strlen(k))
#define DEC(k) ts_rl_table_dec(&t, (k), strlen(k))
#define CNT(k) ts_rl_table_count(&t, (k), strlen(k))
    assert_int_equal(INC("a"), 0);
    assert_int_equal(INC("a"), 0);
    assert_int_equal(INC("a"), TS_ELIMIT); /* a at its max ... */
    assert_int_equal(INC("b"), 0);         /* ... does not keep b out */
    assert_int_equal(CNT("a"), 2);
    assert_int_equal(CNT("b"), 1);
    assert_int_equal(DEC("a"), 1);
    assert_int_equal(INC("a"), 0); /* recovers as soon as one ends */
    assert_int_equal(INC("c"), 0);
    assert_int_equal(t.entries, 3);
    assert_int_equal(INC("d"), TS_ENOMEM); /* full of live keys: closed, distinct code */
    assert_int_equal(t.full_total, 1);
    assert_int_equal(INC("a"), TS_ELIMIT); /* existing keys still answer their own limit */
    assert_int_equal(DEC("c"), 0);          /* back to 0: the entry goes */
    assert_int_equal(t.entries, 2);
    assert_int_equal(INC("d"), 0);
    assert_int_equal(DEC("zz"), TS_ENOTFOUND);
    assert_int_equal(DEC("c"), TS_ENOTFOUND); /* never negative */
    assert_int_equal(CNT("c"), 0);
    assert_int_equal(ts_rl_table_take(&t, "a", 1, 0, 1), TS_EINVAL);
    assert_null(ts_rl_table_peek(&t, "a", 1));
    ts_rl_table_deinit(&t);

    cfg.max_count = 0;
    ts_rl_table_init(&t, &cfg);
    assert_int_equal(INC("a"), TS_ELIMIT);
    assert_int_equal(t.entries, 0);
    ts_rl_table_deinit(&t);
#undef INC
#undef DEC
#undef CNT
}

/* Keys of any length work (issue #14: a tab's "user/session/device/tab" is
 * up to 515 bytes and was refused, which read as "never fits"): each long
 * key has its own bucket or count, even next to one that differs only in
 * its last byte, and a long key never shares an entry with a short one. */
static void table_long_keys(void **state) {
    (void)state;
    static char a[4096], b[4096];
    memset(a, 'k', sizeof a);
    memcpy(b, a, sizeof b);
    b[514] = 'z';
    ts_rl_table_t t;
    rate_table(&t, TS_RL_PER_SEC(2), 2, 100);
    assert_int_equal(ts_rl_table_take(&t, a, 515, 0, 2), 0);
    assert_int_equal(ts_rl_table_take(&t, a, 515, 0, 1), 500);
    assert_int_equal(ts_rl_table_take(&t, b, 515, 0, 2), 0); /* its own bucket */
    assert_int_equal(ts_rl_table_take(&t, a, 514, 0, 2), 0); /* a prefix is another key */
    assert_int_equal(ts_rl_table_take(&t, a, sizeof a, 0, 2), 0);
    assert_int_equal(ts_rl_table_take(&t, a, sizeof a, 0, 1), 500);
    assert_non_null(ts_rl_table_peek(&t, b, 515));
    assert_null(ts_rl_table_peek(&t, b, 516));
    /* every length around the point where keys start being hashed */
    for (size_t n = 1; n <= 80; n++) assert_int_equal(ts_rl_table_take(&t, b, n, 0, 2), 0);
    for (size_t n = 1; n <= 80; n++) assert_int_equal(ts_rl_table_take(&t, b, n, 0, 1), 500);
    ts_rl_table_deinit(&t);

    ts_rl_table_cfg_t cfg = {.kind = TS_RL_COUNT, .max_count = 1};
    assert_int_equal(ts_rl_table_init(&t, &cfg), 0);
    assert_int_equal(ts_rl_table_inc(&t, a, 515), 0);
    assert_int_equal(ts_rl_table_inc(&t, a, 515), TS_ELIMIT);
    assert_int_equal(ts_rl_table_inc(&t, b, 515), 0);
    assert_int_equal(ts_rl_table_count(&t, a, 515), 1);
    assert_int_equal(ts_rl_table_dec(&t, a, 515), 0);
    assert_int_equal(ts_rl_table_count(&t, a, 515), 0);
    assert_int_equal(ts_rl_table_count(&t, b, 515), 1);
    assert_int_equal(ts_rl_table_dec(&t, b, 515), 0);
    assert_int_equal(t.entries, 0);
    ts_rl_table_deinit(&t);
}

/* ts_rl_table_wait answers what take would, without taking or creating. */
static void table_wait(void **state) {
    (void)state;
    ts_rl_table_t t;
    rate_table(&t, TS_RL_PER_SEC(2), 2, 100);
    assert_int_equal(ts_rl_table_wait(&t, "a", 1, 0, 2), 0);
    assert_int_equal(ts_rl_table_wait(&t, "a", 1, 0, 3), NEVER);
    assert_false(HAS(t, "a"));
    assert_int_equal(TAKE(t, "a", 0, 2), 0);
    assert_int_equal(ts_rl_table_wait(&t, "a", 1, 0, 1), 500);
    assert_int_equal(ts_rl_table_wait(&t, "a", 1, 250, 1), 250);
    assert_int_equal(ts_rl_table_wait(&t, "a", 1, 500, 1), 0);
    assert_int_equal(ts_rl_table_wait(&t, "a", 1, 500, 1), 0); /* nothing was taken */
    assert_int_equal(TAKE(t, "a", 500, 1), 0);
    assert_int_equal(TAKE(t, "a", 500, 1), 500);
    assert_int_equal(ts_rl_table_wait(&t, "a", 1, 500, 0), 0);
    ts_rl_table_deinit(&t);
}

/* 1e5 distinct keys into a table of 1e3 (an attacker rotating addresses),
 * with one address hammering throughout: memory stays bounded, the hammering
 * address stays limited, an unrelated address still gets its full burst. */
static void table_key_flood(void **state) {
    (void)state;
    enum { MAX = 1000, FLOOD = 100000, BURST = 5 };
    ts_rl_table_t t;
    rate_table(&t, TS_RL_PER_SEC(1), BURST, MAX);
    char key[32];
    uint64_t attacker_grants = 0;
    size_t max_cap = 0;
    for (int i = 0; i < FLOOD; i++) {
        uint64_t now = (uint64_t)i / 10; /* 10 new keys per ms: 10 s in all */
        snprintf(key, sizeof key, "198.51.%d.%d", i / 256, i % 256);
        assert_int_equal(TAKE(t, key, now, BURST), 0); /* each new key: full burst */
        assert_true(TAKE(t, key, now, 1) > 0);
        if (TAKE(t, "203.0.113.66", now, 1) == 0) attacker_grants++;
        assert_true(t.entries <= MAX);
        if (t.map.cap > max_cap) max_cap = t.map.cap;
    }
    assert_int_equal(t.entries, MAX);
    /* hash slots bounded too: ts_map doubles only while live entries fill at
     * least a quarter of it, so at most the power of two above 4 * MAX */
    if (max_cap > 4096) fail_msg("map grew to %zu slots", max_cap);
    assert_true(t.evicted_total >= FLOOD - MAX);
    /* hammering address: burst + 1/s over 10 s, never reset by eviction */
    assert_int_equal(attacker_grants, BURST + 9);
    /* an unrelated address, mid-flood: its full allowance, then limited */
    uint64_t now = FLOOD / 10;
    for (int k = 0; k < BURST; k++) assert_int_equal(TAKE(t, "192.0.2.7", now, 1), 0);
    assert_int_equal(TAKE(t, "192.0.2.7", now, 1), 1000);
    ts_rl_table_deinit(&t);
}

/* Eviction order is least recently used, where a denied take also counts
 * as use. */
static void table_lru_order(void **state) {
    (void)state;
    ts_rl_table_t t;
    rate_table(&t, TS_RL_PER_SEC(1), 2, 3);
    assert_int_equal(TAKE(t, "a", 0, 2), 0);
    assert_int_equal(TAKE(t, "b", 0, 2), 0);
    assert_int_equal(TAKE(t, "c", 0, 2), 0);
    assert_int_equal(TAKE(t, "a", 1, 1), 999); /* denied, but a is now most recent */
    assert_int_equal(TAKE(t, "d", 2, 1), 0);   /* evicts b */
    assert_false(HAS(t, "b"));
    assert_true(HAS(t, "a") && HAS(t, "c") && HAS(t, "d"));
    assert_int_equal(t.evicted_total, 1);
    assert_int_equal(TAKE(t, "c", 3, 1), 997);
    assert_int_equal(TAKE(t, "e", 4, 1), 0); /* LRU is now a */
    assert_false(HAS(t, "a"));
    assert_true(HAS(t, "c") && HAS(t, "d") && HAS(t, "e"));
    assert_int_equal(TAKE(t, "f", 5, 1), 0); /* then d */
    assert_false(HAS(t, "d"));
    assert_true(HAS(t, "c") && HAS(t, "e") && HAS(t, "f"));
    assert_int_equal(t.evicted_total, 3);
    assert_int_equal(t.dropped_total, 0);
    /* an evicted key that comes back starts full (its history is forgotten) */
    assert_int_equal(TAKE(t, "a", 6, 2), 0);
    ts_rl_table_deinit(&t);
}

/* Full, idle entries are dropped (they carry no information), at most two
 * per operation, least recent first, and a full LRU head makes room without
 * counting as an eviction. */
static void table_idle_drop(void **state) {
    (void)state;
    ts_rl_table_t t;
    rate_table(&t, TS_RL_PER_SEC(1), 1, 10);
    const char *keys[] = {"k0", "k1", "k2", "k3", "k4"};
    for (int i = 0; i < 5; i++) assert_int_equal(TAKE(t, keys[i], (uint64_t)i, 1), 0);
    assert_int_equal(t.entries, 5);
    /* at 1001 k0 and k1 have refilled (k2 refills at 1002) */
    assert_int_equal(TAKE(t, "x", 1001, 1), 0);
    assert_false(HAS(t, "k0") || HAS(t, "k1"));
    assert_true(HAS(t, "k2"));
    assert_int_equal(t.dropped_total, 2);
    assert_int_equal(t.entries, 4);
    assert_int_equal(TAKE(t, "x", 5000, 1), 0); /* at most two per call: k2, k3 */
    assert_int_equal(t.entries, 2);
    assert_true(HAS(t, "k4") && HAS(t, "x"));
    assert_int_equal(t.dropped_total, 4);
    assert_int_equal(TAKE(t, "y", 5000, 1), 0); /* k4 goes; x, just taken, is not full */
    assert_int_equal(t.entries, 2);
    assert_true(HAS(t, "x") && HAS(t, "y") && !HAS(t, "k4"));
    assert_int_equal(t.dropped_total, 5);
    assert_int_equal(TAKE(t, "z", 6000, 1), 0); /* now x and y have refilled */
    assert_int_equal(t.entries, 1);
    assert_int_equal(t.dropped_total, 7);
    assert_int_equal(t.evicted_total, 0);
    ts_rl_table_deinit(&t);

    /* max 2: a full head is dropped before anything is evicted */
    rate_table(&t, TS_RL_PER_SEC(1), 2, 2);
    assert_int_equal(TAKE(t, "a", 0, 1), 0);
    assert_int_equal(TAKE(t, "b", 0, 2), 0);
    assert_int_equal(TAKE(t, "c", 1000, 1), 0); /* a refilled at 1000: dropped first */
    assert_false(HAS(t, "a"));
    assert_int_equal(t.dropped_total, 1);
    assert_int_equal(t.evicted_total, 0);
    assert_int_equal(TAKE(t, "d", 1001, 1), 0); /* b is not full: evicted */
    assert_int_equal(t.evicted_total, 1);
    ts_rl_table_deinit(&t);
}

/* ---- strikes ---- */

static const struct strike_case {
    const char *name;
    unsigned limit;
    uint32_t window;
    uint64_t at[8];
    const char *want; /* one char per strike: '1' = limit reached */
    unsigned count_after;
} strike_cases[] = {
    {"3 within 1000 ms", 3, 1000, {0, 500, 999}, "001", 3},
    {"window is half-open: t+window has expired", 3, 1000, {0, 500, 1000}, "000", 2},
    {"spread out never reaches", 2, 100, {0, 100, 200, 300, 400}, "00000", 1},
    {"keeps answering while the window holds", 2, 100, {0, 10, 20, 30, 131}, "01110", 1},
    {"limit 1: the first strike", 1, 1000, {5}, "1", 1},
    {"limit 0 is clamped to 1", 0, 1000, {5}, "1", 1},
    {"window 0: only limit 1 reachable", 2, 0, {5, 5, 5}, "000", 0},
    {"limit above max clamps to 8", 100, 1000, {1, 2, 3, 4, 5, 6, 7, 8}, "00000001", 8},
    {"clock stepping back keeps strikes", 3, 100, {500, 400, 450}, "001", 3},
};

/* Held entries: shared with takes by key, never dropped or evicted while
 * held, back in the LRU (most recent) at the last release. */
static void table_hold(void **state) {
    (void)state;
    ts_rl_table_t t;
    rate_table(&t, TS_RL_PER_SEC(2), 2, 2);
    ts_rl_entry_t *a = ts_rl_table_hold(&t, "a", 1, 0);
    assert_non_null(a);
    assert_ptr_equal(ts_rl_table_hold(&t, "a", 1, 0), a); /* counted: one entry */
    assert_int_equal(t.entries, 1);
    assert_int_equal(ts_rl_held_wait(a, 0, 2), 0);
    assert_int_equal(ts_rl_held_take(a, 0, 2), 0);
    assert_int_equal(ts_rl_held_wait(a, 0, 1), 500);
    assert_int_equal(TAKE(t, "a", 0, 1), 500);         /* by key: the same bucket */
    assert_int_equal(ts_rl_held_take(a, 0, 3), NEVER);
    assert_int_equal(ts_rl_held_take(a, 0, 0), 0);
    assert_int_equal(ts_rl_held_wait(a, 0, 0), 0);
    /* refilled and idle for a long time: a held entry is not dropped */
    assert_int_equal(TAKE(t, "b", 100000, 1), 0);
    assert_int_equal(TAKE(t, "c", 200000, 1), 0); /* full table: evicts b, not a */
    assert_true(HAS(t, "a"));
    assert_false(HAS(t, "b"));
    assert_int_equal(t.evicted_total, 0);          /* b was full: dropped as idle */
    ts_rl_entry_t *c = ts_rl_table_hold(&t, "c", 1, 200000);
    /* every entry held and the table full: a new key gets a fresh bucket, not kept */
    assert_int_equal(TAKE(t, "d", 200000, 2), 0);
    assert_int_equal(TAKE(t, "d", 200000, 2), 0);
    assert_false(HAS(t, "d"));
    assert_int_equal(t.evicted_total, 2);
    /* a holder may go beyond max_entries */
    ts_rl_entry_t *e = ts_rl_table_hold(&t, "e", 1, 200000);
    assert_int_equal(t.entries, 3);
    assert_int_equal(ts_rl_held_take(e, 200000, 2), 0);
    ts_rl_table_release(&t, e); /* back in the LRU, not full: kept */
    ts_rl_table_release(&t, a);
    assert_true(HAS(t, "a"));
    assert_int_equal(ts_rl_held_take(a, 200000, 2), 0); /* still held once */
    ts_rl_table_release(&t, a);
    ts_rl_table_release(&t, c);
    /* released: the usual rules again (a full LRU head is dropped) */
    assert_int_equal(TAKE(t, "f", 300000, 1), 0);
    assert_false(HAS(t, "e"));
    assert_false(HAS(t, "a"));
    assert_int_equal(ts_rl_table_hold(&t, "x", 1, 0) == NULL, 0);
    ts_rl_table_deinit(&t); /* frees held entries too */
    ts_rl_table_cfg_t cnt = {.kind = TS_RL_COUNT, .max_count = 1};
    ts_rl_table_init(&t, &cnt);
    assert_null(ts_rl_table_hold(&t, "a", 1, 0));
    ts_rl_table_deinit(&t);
}

static void strikes(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof strike_cases / sizeof strike_cases[0]; i++) {
        const struct strike_case *c = &strike_cases[i];
        ts_rl_strikes_t s;
        ts_rl_strikes_init(&s, c->limit, c->window);
        size_t n = strlen(c->want);
        for (size_t k = 0; k < n; k++) {
            int got = ts_rl_strike(&s, c->at[k]);
            if (got != (c->want[k] == '1'))
                fail_msg("%s: strike %zu at %llu: got %d", c->name, k,
                         (unsigned long long)c->at[k], got);
        }
        unsigned cnt = ts_rl_strikes_count(&s, c->at[n - 1]);
        if (cnt != c->count_after) fail_msg("%s: count %u, want %u", c->name, cnt, c->count_after);
    }
    ts_rl_strikes_t s;
    ts_rl_strikes_init(&s, 3, 1000);
    for (uint64_t t = 0; t < 100000; t += 400) ts_rl_strike(&s, t); /* 2.5 per window */
    assert_int_equal(ts_rl_strikes_count(&s, 99999), 2);
    assert_int_equal(ts_rl_strikes_count(&s, 1000000), 0);
    assert_int_equal(sizeof(ts_rl_strikes_t), 72);
    assert_int_equal(sizeof(ts_rl_bucket_t), 32);
}

/* A ts_rl_lite_t given the same rate and burst at every call answers as
 * the full bucket does, step for step, clock steps back included. */
static void lite_matches_bucket(void **state) {
    (void)state;
    static const struct { uint64_t rate, burst; } kinds[] = {
        {TS_RL_PER_SEC(4), 16}, {0, 3}, {TS_RL_PER_SEC(1000), 1}, {1, 5}, {TS_RL_PER_SEC(4), 0},
        {TS_RL_PER_SEC(4), TS_RL_MAX_BURST + 1},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        ts_rl_bucket_t full;
        ts_rl_lite_t lite;
        uint64_t now = 1000;
        ts_rl_bucket_init(&full, kinds[k].rate, kinds[k].burst, now);
        ts_rl_lite_init(&lite, kinds[k].burst, now);
        uint32_t x = 12345u + (uint32_t)k;
        for (int i = 0; i < 20000; i++) {
            x = x * 1103515245u + 12345u;
            uint32_t r = x >> 8;
            if (r % 7 == 0 && now > 50) now -= r % 50; /* a step back */
            else now += r % 300;
            uint64_t n = (r >> 4) % 4;
            int64_t want = ts_rl_take(&full, now, n);
            assert_int_equal(ts_rl_lite_take(&lite, kinds[k].rate, kinds[k].burst, now, n), want);
            assert_int_equal(lite.level, full.level);
        }
    }
    assert_int_equal(sizeof(ts_rl_lite_t), 16);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bucket_scripts),
        cmocka_unit_test(lite_matches_bucket),
        cmocka_unit_test(bucket_limits_and_overflow),
        cmocka_unit_test(available_and_full),
        cmocka_unit_test(retry_after_is_exact),
        cmocka_unit_test(no_drift_over_1e6_grants),
        cmocka_unit_test(no_drift_when_polled),
        cmocka_unit_test(table_rate_per_key),
        cmocka_unit_test(table_counters),
        cmocka_unit_test(table_long_keys),
        cmocka_unit_test(table_wait),
        cmocka_unit_test(table_key_flood),
        cmocka_unit_test(table_lru_order),
        cmocka_unit_test(table_idle_drop),
        cmocka_unit_test(table_hold),
        cmocka_unit_test(strikes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
