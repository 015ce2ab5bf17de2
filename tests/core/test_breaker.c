/* test_breaker.c - the circuit breaker state machine, one scripted row per
 * edge (consecutive threshold, ratio window, cool-down, half-open probes,
 * backoff and its cap, late outcomes), plus config clamping and the
 * Prometheus rendering. Time is a plain integer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_breaker.h"
#include "core/ts_err.h"

enum { C = TS_BRK_CLOSED, O = TS_BRK_OPEN, H = TS_BRK_HALF_OPEN };

/* One step: at `now`, do `op` and check the state afterwards.
 * op: 'a' allow and expect 1, 'r' allow and expect 0 (rejected),
 *     's' success, 'f' failure, '\0' ends the script. */
typedef struct step {
    uint64_t now;
    char op;
    int state;
} step_t;

typedef struct brk_case {
    const char *name;
    ts_brk_cfg_t cfg;
    step_t steps[40];
    uint64_t want_opened, want_rejected;
} brk_case_t;

/* cfg: failures, window, ratio_pct, min_calls, probes, backoff, cooldown, cooldown_max */
static const brk_case_t cases[] = {
    {"opens exactly at the N-th consecutive failure",
     {3, 0, 0, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', O}, {0, 'r', O}},
     1, 1},
    {"a success resets the consecutive count",
     {3, 0, 0, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 's', C},
      {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 's', C}},
     0, 0},
    {"N = 1 opens on the first failure",
     {1, 0, 0, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', O}},
     1, 0},
    {"open rejects until the cool-down has passed, then one probe",
     {1, 0, 0, 0, 1, 1, 100, 100},
     {{10, 'a', C}, {10, 'f', O}, {10, 'r', O}, {109, 'r', O}, {110, 'a', H}, {110, 'r', H},
      {150, 'r', H}, {160, 's', C}, {160, 'a', C}},
     1, 4},
    {"half-open lets exactly K probes through; K successes close",
     {1, 0, 0, 0, 3, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', O}, {100, 'a', H}, {100, 'a', H}, {100, 'a', H}, {100, 'r', H},
      {101, 's', H}, {102, 's', H}, {102, 'r', H}, {103, 's', C}, {103, 'a', C}},
     1, 2},
    {"a probe failure after some successes reopens",
     {1, 0, 0, 0, 2, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', O}, {100, 'a', H}, {100, 'a', H}, {101, 's', H}, {102, 'f', O},
      {150, 'r', O}, {202, 'a', H}},
     2, 1},
    {"cool-down backs off per failed probe, capped, and resets on close",
     {1, 0, 0, 0, 1, 2, 100, 350},
     {{0, 'a', C}, {0, 'f', O},                                   /* cd 100 */
      {99, 'r', O}, {100, 'a', H}, {100, 'f', O},                 /* cd 200 */
      {299, 'r', O}, {300, 'a', H}, {300, 'f', O},                /* cd 350 (400 capped) */
      {649, 'r', O}, {650, 'a', H}, {650, 'f', O},                /* cd stays 350 */
      {999, 'r', O}, {1000, 'a', H}, {1000, 's', C},              /* closed: cd 100 */
      {1000, 'a', C}, {1000, 'f', O}, {1099, 'r', O}, {1100, 'a', H}},
     5, 5},
    {"ratio: opens when failures reach the percentage of a full window",
     {0, 4, 50, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 's', C}, {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 's', C},
      {0, 'a', C}, {0, 'f', O}},
     1, 0},
    {"ratio: nothing before min_calls, then the completing call decides",
     {0, 10, 50, 4, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C},
      {0, 'a', C}, {0, 's', O}},
     1, 0},
    {"ratio: the window rolls (oldest outcomes leave)",
     {0, 4, 75, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 's', C},
      {0, 'a', C}, {0, 's', C},                   /* f f s s: 50% */
      {0, 'a', C}, {0, 'f', C},                   /* f s s f: 50% */
      {0, 'a', C}, {0, 'f', C},                   /* s s f f: 50% */
      {0, 'a', C}, {0, 's', C},                   /* s f f s: 50% */
      {0, 'a', C}, {0, 'f', O},                   /* f f s f: 75% */
      {0, 'r', O}},
     1, 1},
    {"ratio: just below the percentage stays closed",
     {0, 4, 75, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 's', C},
      {0, 'a', C}, {0, 's', C}, {0, 'a', C}, {0, 's', C}, {0, 'a', C}, {0, 'f', C}},
     0, 0},
    {"window restarts after closing",
     {0, 2, 50, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 's', C}, {0, 'a', C}, {0, 'f', O}, {100, 'a', H}, {100, 's', C},
      {100, 'a', C}, {100, 'f', C}, /* one outcome: below min_calls 2 */
      {100, 'a', C}, {100, 's', O}},
     2, 0},
    {"outcomes while OPEN are late answers: ignored",
     {2, 0, 0, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'a', C}, {0, 'a', C}, {0, 'f', C}, {0, 'f', O}, {1, 's', O},
      {2, 'f', O}, {99, 'r', O}, {100, 'a', H}, {100, 's', C}},
     1, 1},
    {"half-open outcomes count only while a probe is outstanding",
     {1, 0, 0, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'a', C}, {0, 'f', O}, {100, 'a', H}, {100, 's', C},
      /* the second pre-open call answers late: now CLOSED, counts as a failure */
      {100, 'f', O}, {200, 'a', H}, {200, 'f', O}, {300, 'a', H}, {301, 's', C}},
     3, 0},
    {"half-open ignores outcomes beyond the probes issued",
     {1, 0, 0, 0, 2, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', O}, {100, 'a', H}, {100, 's', H}, {100, 's', H}, /* 2nd: none out */
      {100, 'f', H}, {100, 'a', H}, {100, 'f', O}},
     2, 0},
    {"both rules off: never opens",
     {0, 0, 0, 0, 1, 1, 100, 100},
     {{0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C}, {0, 'a', C}, {0, 'f', C},
      {0, 'a', C}, {0, 'f', C}},
     0, 0},
    {"cool-down 0: the next call is a probe",
     {1, 0, 0, 0, 1, 2, 0, 0},
     {{5, 'a', C}, {5, 'f', O}, {5, 'a', H}, {5, 'r', H}, {5, 'f', O}, {5, 'a', H}, {5, 's', C}},
     2, 1},
    {"a clock stepping back never ends the cool-down early",
     {1, 0, 0, 0, 1, 1, 100, 100},
     {{1000, 'a', C}, {1000, 'f', O}, {10, 'r', O}, {1099, 'r', O}, {1100, 'a', H}},
     1, 2},
};

static void state_machine(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const brk_case_t *c = &cases[i];
        ts_brk_t b;
        assert_int_equal(ts_brk_init(&b, &c->cfg), 0);
        assert_int_equal(ts_brk_state(&b), TS_BRK_CLOSED);
        for (size_t s = 0; s < 40 && c->steps[s].op; s++) {
            const step_t *st = &c->steps[s];
            int got = -1;
            switch (st->op) {
            case 'a':
            case 'r':
                got = ts_brk_allow(&b, st->now);
                if (got != (st->op == 'a'))
                    fail_msg("%s: step %zu: allow at %llu = %d", c->name, s,
                             (unsigned long long)st->now, got);
                break;
            case 's':
                ts_brk_success(&b, st->now);
                break;
            case 'f':
                ts_brk_failure(&b, st->now);
                break;
            default:
                fail_msg("bad op");
            }
            if ((int)ts_brk_state(&b) != st->state)
                fail_msg("%s: step %zu ('%c' at %llu): state %s, want %s", c->name, s, st->op,
                         (unsigned long long)st->now, ts_brk_state_name(ts_brk_state(&b)),
                         ts_brk_state_name((ts_brk_state_t)st->state));
        }
        if (ts_brk_opened_total(&b) != c->want_opened || ts_brk_rejected_total(&b) != c->want_rejected)
            fail_msg("%s: opened %llu rejected %llu, want %llu %llu", c->name,
                     (unsigned long long)ts_brk_opened_total(&b),
                     (unsigned long long)ts_brk_rejected_total(&b),
                     (unsigned long long)c->want_opened, (unsigned long long)c->want_rejected);
    }
}

/* The full 64-call window: every bit of the ring is used and rolls. */
static void window_of_64(void **state) {
    (void)state;
    ts_brk_cfg_t cfg = {0, 64, 50, 0, 1, 1, 100, 100};
    ts_brk_t b;
    assert_int_equal(ts_brk_init(&b, &cfg), 0);
    for (int i = 0; i < 32; i++) ts_brk_failure(&b, 0);
    for (int i = 0; i < 31; i++) ts_brk_success(&b, 0);
    assert_int_equal(ts_brk_state(&b), TS_BRK_CLOSED); /* 63 calls < min 64 */
    /* 32 f + 32 s hit 50% on the first success that completes 64 calls */
    ts_brk_init(&b, &cfg);
    for (int i = 0; i < 32; i++) ts_brk_failure(&b, 0);
    for (int i = 0; i < 31; i++) ts_brk_success(&b, 0);
    ts_brk_success(&b, 0);
    assert_int_equal(ts_brk_state(&b), TS_BRK_OPEN);
    /* alternating s f keeps exactly 50% once full: opens at call 64 */
    ts_brk_init(&b, &cfg);
    int opened_at = -1;
    for (int i = 0; i < 200 && opened_at < 0; i++) {
        if (i % 2) ts_brk_failure(&b, 0);
        else ts_brk_success(&b, 0);
        if (ts_brk_state(&b) == TS_BRK_OPEN) opened_at = i + 1;
    }
    assert_int_equal(opened_at, 64);
    /* 31 failures then successes forever: the failures roll out, never opens */
    ts_brk_init(&b, &cfg);
    for (int i = 0; i < 31; i++) ts_brk_failure(&b, 0);
    for (int i = 0; i < 1000; i++) ts_brk_success(&b, 0);
    assert_int_equal(ts_brk_state(&b), TS_BRK_CLOSED);
    /* ...and after they rolled out, 31 more failures do not open it either
     * (31/64 < 50%), the 32nd does */
    for (int i = 0; i < 31; i++) ts_brk_failure(&b, 0);
    assert_int_equal(ts_brk_state(&b), TS_BRK_CLOSED);
    ts_brk_failure(&b, 0);
    assert_int_equal(ts_brk_state(&b), TS_BRK_OPEN);
}

static void backoff_cap_without_overflow(void **state) {
    (void)state;
    ts_brk_cfg_t cfg = {1, 0, 0, 0, 1, 1000, 1000, UINT64_MAX};
    ts_brk_t b;
    ts_brk_init(&b, &cfg);
    ts_brk_failure(&b, 0);
    uint64_t now = 0, prev = b.cooldown_cur;
    int steps = 0;
    /* 1000^7 overflows 64 bits: without the cap check the cool-down would
     * wrap to a small value */
    while (b.cooldown_cur != UINT64_MAX && steps < 20) {
        now += b.cooldown_cur;
        assert_int_equal(ts_brk_allow(&b, now), 1);
        ts_brk_failure(&b, now);
        assert_true(b.cooldown_cur > prev);
        prev = b.cooldown_cur;
        steps++;
    }
    assert_int_equal(steps, 6); /* 1e3 -> 1e6 ... 1e18 -> capped */
    assert_int_equal(b.cooldown_cur, UINT64_MAX);
    assert_int_equal(ts_brk_allow(&b, now + 1), 0);
    assert_int_equal(ts_brk_retry_after(&b, now + 1), UINT64_MAX - 1);
}

static void retry_after(void **state) {
    (void)state;
    ts_brk_cfg_t cfg = {1, 0, 0, 0, 2, 2, 100, 1000};
    ts_brk_t b;
    ts_brk_init(&b, &cfg);
    assert_int_equal(ts_brk_retry_after(&b, 0), 0);
    ts_brk_failure(&b, 10);
    assert_int_equal(ts_brk_retry_after(&b, 10), 100);
    assert_int_equal(ts_brk_retry_after(&b, 50), 60);
    assert_int_equal(ts_brk_retry_after(&b, 5), 100); /* clock behind the opening */
    assert_int_equal(ts_brk_retry_after(&b, 110), 0);
    assert_int_equal(ts_brk_allow(&b, 110), 1);
    assert_int_equal(ts_brk_retry_after(&b, 110), 0); /* one probe left */
    assert_int_equal(ts_brk_allow(&b, 110), 1);
    assert_int_equal(ts_brk_retry_after(&b, 110), 100); /* all out: a guess */
    ts_brk_failure(&b, 120);
    assert_int_equal(ts_brk_retry_after(&b, 120), 200);
}

static void config_clamping(void **state) {
    (void)state;
    ts_brk_t b;
    ts_brk_cfg_t def = TS_BRK_CFG_DEFAULT;
    assert_int_equal(ts_brk_init(&b, &def), 0);
    assert_int_equal(b.cfg.min_calls, 10);
    ts_brk_cfg_t c1 = {5, 100, 50, 0, 1, 1, 100, 100};
    assert_int_equal(ts_brk_init(&b, &c1), TS_EINVAL);
    assert_int_equal(b.cfg.window, 64);
    assert_int_equal(b.cfg.min_calls, 64);
    ts_brk_cfg_t c2 = {5, 10, 0, 0, 1, 1, 100, 100};
    assert_int_equal(ts_brk_init(&b, &c2), TS_EINVAL);
    assert_int_equal(b.cfg.ratio_pct, 1);
    ts_brk_cfg_t c3 = {5, 10, 101, 0, 1, 1, 100, 100};
    assert_int_equal(ts_brk_init(&b, &c3), TS_EINVAL);
    assert_int_equal(b.cfg.ratio_pct, 100);
    ts_brk_cfg_t c4 = {5, 10, 50, 11, 1, 1, 100, 100};
    assert_int_equal(ts_brk_init(&b, &c4), TS_EINVAL);
    assert_int_equal(b.cfg.min_calls, 10);
    ts_brk_cfg_t c5 = {5, 0, 0, 0, 0, 0, 500, 10}; /* probes 0 -> 1, no backoff, max >= base */
    assert_int_equal(ts_brk_init(&b, &c5), 0);
    assert_int_equal(b.cfg.probes, 1);
    assert_int_equal(b.cfg.backoff, 1);
    assert_int_equal(b.cfg.cooldown_max_ms, 500);
}

static void render(void **state) {
    (void)state;
    ts_brk_cfg_t cfg = {1, 0, 0, 0, 1, 1, 100, 100};
    ts_brk_t store, jwks;
    ts_brk_init(&store, &cfg);
    ts_brk_init(&jwks, &cfg);
    ts_brk_failure(&store, 0);
    ts_brk_allow(&store, 1);
    ts_brk_allow(&store, 2);
    ts_sbuf_t out = TS_SBUF_INIT;
    ts_brk_render(&store, "store", &out);
    assert_string_equal((char *)ts_sbuf_data(&out),
                        "tabsync_breaker_state{name=\"store\"} 1\n"
                        "tabsync_breaker_open_total{name=\"store\"} 1\n"
                        "tabsync_breaker_rejected_total{name=\"store\"} 2\n");
    ts_sbuf_truncate(&out, 0);
    ts_brk_allow(&store, 100); /* half-open */
    ts_brk_render(&store, "a\"b\\c\nd", &out);
    assert_string_equal((char *)ts_sbuf_data(&out),
                        "tabsync_breaker_state{name=\"a\\\"b\\\\c\\nd\"} 2\n"
                        "tabsync_breaker_open_total{name=\"a\\\"b\\\\c\\nd\"} 1\n"
                        "tabsync_breaker_rejected_total{name=\"a\\\"b\\\\c\\nd\"} 2\n");
    ts_sbuf_truncate(&out, 0);
    const ts_brk_t *all[] = {&store, &jwks};
    const char *names[] = {"store", "jwks"};
    ts_brk_render_all(all, names, 2, &out);
    assert_string_equal(
        (char *)ts_sbuf_data(&out),
        "# HELP tabsync_breaker_state circuit breaker state: 0 closed, 1 open, 2 half-open\n"
        "# TYPE tabsync_breaker_state gauge\n"
        "tabsync_breaker_state{name=\"store\"} 2\n"
        "tabsync_breaker_state{name=\"jwks\"} 0\n"
        "# HELP tabsync_breaker_open_total times the circuit breaker opened\n"
        "# TYPE tabsync_breaker_open_total counter\n"
        "tabsync_breaker_open_total{name=\"store\"} 1\n"
        "tabsync_breaker_open_total{name=\"jwks\"} 0\n"
        "# HELP tabsync_breaker_rejected_total calls rejected by an open circuit breaker\n"
        "# TYPE tabsync_breaker_rejected_total counter\n"
        "tabsync_breaker_rejected_total{name=\"store\"} 2\n"
        "tabsync_breaker_rejected_total{name=\"jwks\"} 0\n");
    ts_sbuf_free(&out);
    assert_string_equal(ts_brk_state_name(TS_BRK_CLOSED), "closed");
    assert_string_equal(ts_brk_state_name(TS_BRK_OPEN), "open");
    assert_string_equal(ts_brk_state_name(TS_BRK_HALF_OPEN), "half_open");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(state_machine),
        cmocka_unit_test(window_of_64),
        cmocka_unit_test(backoff_cap_without_overflow),
        cmocka_unit_test(retry_after),
        cmocka_unit_test(config_clamping),
        cmocka_unit_test(render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
