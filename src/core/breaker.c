/* breaker.c - circuit breaker state machine. The rolling window of call
 * outcomes is a 64-bit ring (one bit per call), so the breaker is a fixed
 * 112 bytes that can be embedded anywhere and never allocates. */
#include "core/ts_breaker.h"

#include <string.h>

#include "core/ts_err.h"

int ts_brk_init(ts_brk_t *b, const ts_brk_cfg_t *cfg) {
    memset(b, 0, sizeof(*b));
    b->cfg = *cfg;
    ts_brk_cfg_t *c = &b->cfg;
    int rc = 0;
    if (c->window > TS_BRK_WINDOW_MAX) {
        c->window = TS_BRK_WINDOW_MAX;
        rc = TS_EINVAL;
    }
    if (c->window && (c->ratio_pct < 1 || c->ratio_pct > 100)) {
        c->ratio_pct = c->ratio_pct < 1 ? 1 : 100;
        rc = TS_EINVAL;
    }
    if (c->min_calls > c->window) {
        c->min_calls = c->window;
        rc = TS_EINVAL;
    }
    if (c->min_calls == 0) c->min_calls = c->window;
    if (c->probes == 0) c->probes = 1;
    if (c->backoff == 0) c->backoff = 1;
    if (c->cooldown_max_ms < c->cooldown_ms) c->cooldown_max_ms = c->cooldown_ms;
    b->state = TS_BRK_CLOSED;
    b->cooldown_cur = c->cooldown_ms;
    return rc;
}

static void window_reset(ts_brk_t *b) {
    b->consecutive = 0;
    b->window_bits = 0;
    b->window_len = b->window_pos = b->window_fail = 0;
}

static void window_push(ts_brk_t *b, int failed) {
    uint32_t m = b->cfg.window;
    if (!m) return;
    uint64_t bit = 1ull << b->window_pos;
    if (b->window_len == m) { /* the slot holds the oldest outcome: it leaves */
        if (b->window_bits & bit) b->window_fail--;
    } else {
        b->window_len++;
    }
    if (failed) {
        b->window_bits |= bit;
        b->window_fail++;
    } else {
        b->window_bits &= ~bit;
    }
    b->window_pos = (b->window_pos + 1) % m;
}

static int ratio_tripped(const ts_brk_t *b) {
    const ts_brk_cfg_t *c = &b->cfg;
    if (!c->window || b->window_len < c->min_calls || b->window_len == 0) return 0;
    return (uint64_t)b->window_fail * 100 >= (uint64_t)c->ratio_pct * b->window_len;
}

static void trip(ts_brk_t *b, uint64_t now_ms) {
    b->state = TS_BRK_OPEN;
    b->opened_at = now_ms;
    b->opened_total++;
    b->probes_issued = b->probes_ok = 0;
    window_reset(b);
}

static int cooled_down(const ts_brk_t *b, uint64_t now_ms) {
    return now_ms >= b->opened_at && now_ms - b->opened_at >= b->cooldown_cur;
}

int ts_brk_allow(ts_brk_t *b, uint64_t now_ms) {
    switch (b->state) {
    case TS_BRK_CLOSED:
        return 1;
    case TS_BRK_OPEN:
        if (!cooled_down(b, now_ms)) break;
        b->state = TS_BRK_HALF_OPEN;
        b->probes_issued = b->probes_ok = 0;
        /* fallthrough */
    case TS_BRK_HALF_OPEN:
        if (b->probes_issued < b->cfg.probes) {
            b->probes_issued++;
            return 1;
        }
        break;
    }
    b->rejected_total++;
    return 0;
}

void ts_brk_success(ts_brk_t *b, uint64_t now_ms) {
    switch (b->state) {
    case TS_BRK_CLOSED:
        b->consecutive = 0;
        window_push(b, 0);
        /* the call that completes min_calls may be a success */
        if (ratio_tripped(b)) trip(b, now_ms);
        break;
    case TS_BRK_OPEN:
        break;
    case TS_BRK_HALF_OPEN:
        if (b->probes_ok >= b->probes_issued) break; /* no probe outstanding */
        if (++b->probes_ok >= b->cfg.probes) {
            b->state = TS_BRK_CLOSED;
            b->cooldown_cur = b->cfg.cooldown_ms;
            b->probes_issued = b->probes_ok = 0;
            window_reset(b);
        }
        break;
    }
}

void ts_brk_failure(ts_brk_t *b, uint64_t now_ms) {
    switch (b->state) {
    case TS_BRK_CLOSED:
        b->consecutive++;
        window_push(b, 1);
        if ((b->cfg.failures && b->consecutive >= b->cfg.failures) || ratio_tripped(b))
            trip(b, now_ms);
        break;
    case TS_BRK_OPEN:
        break;
    case TS_BRK_HALF_OPEN:
        if (b->probes_ok >= b->probes_issued) break; /* no probe outstanding */
        if (b->cooldown_cur > b->cfg.cooldown_max_ms / b->cfg.backoff)
            b->cooldown_cur = b->cfg.cooldown_max_ms;
        else
            b->cooldown_cur *= b->cfg.backoff;
        trip(b, now_ms);
        break;
    }
}

uint64_t ts_brk_retry_after(const ts_brk_t *b, uint64_t now_ms) {
    switch (b->state) {
    case TS_BRK_CLOSED:
        return 0;
    case TS_BRK_OPEN:
        if (cooled_down(b, now_ms)) return 0;
        if (now_ms < b->opened_at) return b->cooldown_cur; /* clock stepped back */
        return b->cooldown_cur - (now_ms - b->opened_at);
    case TS_BRK_HALF_OPEN:
        return b->probes_issued < b->cfg.probes ? 0 : b->cooldown_cur;
    }
    return 0;
}

const char *ts_brk_state_name(ts_brk_state_t s) {
    switch (s) {
    case TS_BRK_CLOSED:
        return "closed";
    case TS_BRK_OPEN:
        return "open";
    case TS_BRK_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

/* Label values escape backslash, double quote and newline (text format
 * 0.0.4); everything else goes through as UTF-8 bytes. */
static void put_label(ts_sbuf_t *out, const char *name) {
    for (const char *p = name; *p; p++) {
        if (*p == '\\')
            ts_sbuf_append_str(out, "\\\\");
        else if (*p == '"')
            ts_sbuf_append_str(out, "\\\"");
        else if (*p == '\n')
            ts_sbuf_append_str(out, "\\n");
        else
            ts_sbuf_putc(out, *p);
    }
}

enum { F_STATE, F_OPEN, F_REJECTED, F_COUNT };
static const struct {
    const char *name, *type, *help;
} families[F_COUNT] = {
    {"tabsync_breaker_state", "gauge", "circuit breaker state: 0 closed, 1 open, 2 half-open"},
    {"tabsync_breaker_open_total", "counter", "times the circuit breaker opened"},
    {"tabsync_breaker_rejected_total", "counter", "calls rejected by an open circuit breaker"},
};

static void render_sample(const ts_brk_t *b, const char *name, int f, ts_sbuf_t *out) {
    unsigned long long v = f == F_STATE    ? (unsigned long long)b->state
                           : f == F_OPEN ? (unsigned long long)b->opened_total
                                           : (unsigned long long)b->rejected_total;
    ts_sbuf_append_str(out, families[f].name);
    ts_sbuf_append_str(out, "{name=\"");
    put_label(out, name);
    ts_sbuf_printf(out, "\"} %llu\n", v);
}

void ts_brk_render(const ts_brk_t *b, const char *name, ts_sbuf_t *out) {
    for (int f = 0; f < F_COUNT; f++) render_sample(b, name, f, out);
}

void ts_brk_render_all(const ts_brk_t *const *brks, const char *const *names, size_t n,
                       ts_sbuf_t *out) {
    for (int f = 0; f < F_COUNT; f++) {
        ts_sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                       families[f].name, families[f].type);
        for (size_t i = 0; i < n; i++) render_sample(brks[i], names[i], f, out);
    }
}
