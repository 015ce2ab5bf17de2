/* ts_breaker.h - a small circuit breaker (closed, open, half-open) to put
 * around the store or any slow dependency. Pure state machine: no clock and
 * no timers, the caller passes a monotonic now_ms; fixed size, no allocation. */
#ifndef TS_BREAKER_H
#define TS_BREAKER_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"

/* Contract.
 *
 * Use: before a call to the dependency ask ts_brk_allow(); if it says 0 do
 * not call, answer the client with a retryable TS_ECIRCUIT (retry after
 * ts_brk_retry_after() ms). If it says 1, make the call and report its
 * outcome exactly once with ts_brk_success() or ts_brk_failure() (a timeout
 * is a failure). A call that was never allowed is never reported.
 *
 * CLOSED (0): every call is allowed. Each outcome is recorded; the breaker
 *   opens when either rule trips (each can be switched off):
 *   - consecutive: `failures` failures in a row (exactly at the N-th);
 *   - ratio: the last `window` outcomes (a rolling window of calls, up to
 *     64) hold at least `min_calls` outcomes and failures make up at least
 *     `ratio_pct` percent of them. Checked after every outcome, so the call
 *     that completes min_calls may open it even if it succeeded.
 * OPEN (1): calls are rejected (counted in rejected_total) until the current
 *   cool-down has passed since opening; the first ts_brk_allow() after that
 *   turns the breaker HALF_OPEN (lazily: the state getter says OPEN until
 *   then). Outcomes reported while OPEN belong to calls allowed before it
 *   opened and are ignored.
 * HALF_OPEN (2): the first `probes` (K) calls are allowed, later ones are
 *   rejected. When K probes have succeeded the breaker closes (window,
 *   consecutive count and cool-down reset). The first probe failure reopens
 *   it and multiplies the cool-down by `backoff`, capped at cooldown_max_ms.
 *   Outcomes count here only while a probe is outstanding (issued > settled);
 *   others are late answers of pre-open calls and are ignored.
 *
 * Counters: opened_total counts every transition to OPEN (from CLOSED or
 * HALF_OPEN); rejected_total every ts_brk_allow() that answered 0. */

typedef enum ts_brk_state {
    TS_BRK_CLOSED = 0,
    TS_BRK_OPEN = 1,
    TS_BRK_HALF_OPEN = 2,
} ts_brk_state_t;

#define TS_BRK_WINDOW_MAX 64u

typedef struct ts_brk_cfg {
    uint32_t failures;        /* N: open after N consecutive failures; 0 = rule off */
    uint32_t window;          /* M: rolling window of calls, 0..64; 0 = ratio rule off */
    uint32_t ratio_pct;       /* 1..100: open when failures >= ratio_pct% of the window */
    uint32_t min_calls;       /* outcomes needed before the ratio applies; 0 = window */
    uint32_t probes;          /* K: half-open probe calls; 0 = 1 */
    uint32_t backoff;         /* cool-down multiplier on each reopen; 0 or 1 = none */
    uint64_t cooldown_ms;     /* first open period */
    uint64_t cooldown_max_ms; /* backoff cap; below cooldown_ms = cooldown_ms */
} ts_brk_cfg_t;

/* 5 failures in a row, or >= 50% of the last 20 calls (once 10 are in),
 * open it for 1 s, doubling per failed probe up to 30 s; 1 probe. */
#define TS_BRK_CFG_DEFAULT {5, 20, 50, 10, 1, 2, 1000, 30000}

typedef struct ts_brk {
    ts_brk_cfg_t cfg;        /* read-only: validated copy */
    ts_brk_state_t state;    /* read-only: use ts_brk_state() */
    uint32_t consecutive;    /* private: failures in a row while CLOSED */
    uint64_t window_bits;    /* private: ring of outcomes, bit set = failure */
    uint32_t window_len;     /* private: outcomes in the ring (<= window) */
    uint32_t window_pos;     /* private: next bit to write */
    uint32_t window_fail;    /* private: set bits among the window_len */
    uint32_t probes_issued;  /* private: HALF_OPEN calls allowed */
    uint32_t probes_ok;      /* private: HALF_OPEN probes that succeeded */
    uint64_t opened_at;      /* private: now_ms of the last opening */
    uint64_t cooldown_cur;   /* read-only: current open period, ms */
    uint64_t opened_total;   /* read-only */
    uint64_t rejected_total; /* read-only */
} ts_brk_t;

/* Initialises a CLOSED breaker with a copy of *cfg. Out-of-range fields are
 * clamped (window to 64, ratio_pct to 1..100, min_calls to window) and
 * TS_EINVAL is returned so a config parser can complain; the breaker is
 * usable either way. Returns 0 otherwise. */
int ts_brk_init(ts_brk_t *b, const ts_brk_cfg_t *cfg);

/* May this call proceed? 1 yes (report its outcome), 0 no (rejected_total++).
 * Moves OPEN to HALF_OPEN once the cool-down has passed; counts probes. */
int ts_brk_allow(ts_brk_t *b, uint64_t now_ms);
/* Reports the outcome of an allowed call. */
void ts_brk_success(ts_brk_t *b, uint64_t now_ms);
void ts_brk_failure(ts_brk_t *b, uint64_t now_ms);

static inline ts_brk_state_t ts_brk_state(const ts_brk_t *b) { return b->state; }
static inline uint64_t ts_brk_opened_total(const ts_brk_t *b) { return b->opened_total; }
static inline uint64_t ts_brk_rejected_total(const ts_brk_t *b) { return b->rejected_total; }
/* Milliseconds until ts_brk_allow() may answer 1: 0 when CLOSED, when the
 * cool-down is over, or in HALF_OPEN with probes left; the rest of the
 * cool-down when OPEN; the current cool-down in HALF_OPEN with every probe
 * outstanding (a guess: their outcome decides). For retry-after hints. */
uint64_t ts_brk_retry_after(const ts_brk_t *b, uint64_t now_ms);
/* "closed", "open", "half_open". */
const char *ts_brk_state_name(ts_brk_state_t s);

/* Appends three Prometheus sample lines (no # HELP/# TYPE):
 *   tabsync_breaker_state{name="<name>"} 0|1|2
 *   tabsync_breaker_open_total{name="<name>"} <opened_total>
 *   tabsync_breaker_rejected_total{name="<name>"} <rejected_total>
 * `name` is escaped as a label value (\\, \", \n). Borrows everything. */
void ts_brk_render(const ts_brk_t *b, const char *name, ts_sbuf_t *out);
/* Appends the three families for n breakers, each with its # HELP and
 * # TYPE lines once and its samples grouped, as the text format requires
 * (calling ts_brk_render per breaker would interleave families). */
void ts_brk_render_all(const ts_brk_t *const *brks, const char *const *names, size_t n,
                       ts_sbuf_t *out);

#endif
