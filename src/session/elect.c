/* elect.c - the rules of leader election: the capability score and a
 * scope's next step, as pure functions (ts_sess_elect.h). Numbers are
 * integers in thousandths so that two loops, or a test, computing the same
 * score from the same inputs get the same number. */
#include "session/ts_sess_elect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"

static const char *const part_names[TS_EL_PARTS_] = {"battery", "connection", "device",
                                                     "visibility", "uptime"};

const char *ts_el_part_name(ts_el_part_t p) {
    return (unsigned)p < TS_EL_PARTS_ ? part_names[p] : NULL;
}

const ts_el_weights_t ts_el_default_weights = {{20, 30, 15, 25, 10}};

int ts_el_weights_parse(const char *spec, ts_el_weights_t *out, char *why, size_t whylen) {
    ts_el_weights_t w = ts_el_default_weights;
    const char *p = spec;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        int part = -1;
        for (int i = 0; eq && i < TS_EL_PARTS_; i++)
            if ((size_t)(eq - p) == strlen(part_names[i]) && memcmp(p, part_names[i], eq - p) == 0)
                part = i;
        if (part < 0)
            return ts_errf(why, whylen, TS_EPROTO,
                           "weights: \"%.*s\" is not <part>=<n> with part battery, connection, "
                           "device, visibility or uptime",
                           (int)TS_MIN(len, 40), p);
        char num[16] = {0}, *stop;
        size_t nlen = len - (size_t)(eq + 1 - p);
        if (nlen == 0 || nlen >= sizeof num)
            return ts_errf(why, whylen, TS_EPROTO, "weights: %s needs a number 0..%d",
                           part_names[part], TS_EL_WEIGHT_MAX);
        memcpy(num, eq + 1, nlen);
        unsigned long v = strtoul(num, &stop, 10);
        if (*stop || num[0] == '-' || v > TS_EL_WEIGHT_MAX)
            return ts_errf(why, whylen, TS_EPROTO, "weights: %s=%s is not a number 0..%d",
                           part_names[part], num, TS_EL_WEIGHT_MAX);
        w.w[part] = (uint32_t)v;
        p = end ? end + 1 : NULL;
    }
    uint32_t sum = 0;
    for (int i = 0; i < TS_EL_PARTS_; i++) sum += w.w[i];
    if (sum == 0) return ts_errf(why, whylen, TS_EPROTO, "weights: at least one must be above 0");
    *out = w;
    return 0;
}

/* ---- score parts, each 0..1000 ---- */

static uint32_t f_battery(const ts_el_inputs_t *in) {
    if (in->charging > 0) return 1000;
    if (in->battery_level >= 0) return (uint32_t)(in->battery_level * 1000 + 0.5);
    /* no Battery Status API: a desktop or a server is on mains power */
    return in->type == TS_SESS_DEV_DESKTOP || in->type == TS_SESS_DEV_SERVER ? 1000 : 700;
}

static uint32_t f_connection(const ts_el_inputs_t *in) {
    int rtt = in->rtt_ms >= 0 ? in->rtt_ms : in->net_rtt_ms;
    uint32_t f_rtt = 1000;
    if (rtt >= 1000)
        f_rtt = 0;
    else if (rtt > 50)
        f_rtt = (uint32_t)(1000 - (rtt - 50) * 1000 / 950);
    uint32_t f_type = 1000;
    if (in->effective_type) {
        static const struct { const char *name; uint32_t f; } types[] = {
            {"4g", 1000}, {"3g", 600}, {"2g", 300}, {"slow-2g", 100}};
        for (size_t i = 0; i < TS_ARRAY_LEN(types); i++)
            if (strcmp(in->effective_type, types[i].name) == 0) f_type = types[i].f;
    }
    uint32_t f = TS_MIN(f_rtt, f_type);
    unsigned late = TS_MIN(in->late_hb, 3u);
    return f >> late; /* halved by each late heartbeat, at most three times */
}

static uint32_t f_device(const ts_el_inputs_t *in) {
    switch (in->type) {
    case TS_SESS_DEV_DESKTOP:
    case TS_SESS_DEV_SERVER: return 1000;
    case TS_SESS_DEV_BROWSER: return 800;
    case TS_SESS_DEV_CLI: return 600;
    case TS_SESS_DEV_MOBILE: return 400;
    }
    return 800;
}

static uint32_t f_visibility(const ts_el_inputs_t *in) {
    return in->visible > 0 ? 1000 : in->visible == 0 ? 400 : 700;
}

static uint32_t f_uptime(const ts_el_inputs_t *in) {
    if (in->uptime_ms >= TS_EL_UPTIME_FULL_MS) return 1000;
    return (uint32_t)(in->uptime_ms * 1000 / TS_EL_UPTIME_FULL_MS);
}

void ts_el_score(const ts_el_inputs_t *in, const ts_el_weights_t *w, ts_el_score_t *out) {
    uint32_t f[TS_EL_PARTS_] = {f_battery(in), f_connection(in), f_device(in), f_visibility(in),
                                f_uptime(in)};
    uint64_t num = 0, den = 0;
    for (int i = 0; i < TS_EL_PARTS_; i++) {
        out->part[i] = (uint16_t)f[i];
        num += (uint64_t)w->w[i] * f[i];
        den += w->w[i];
    }
    out->total = den ? (uint32_t)((num + den / 2) / den) : 0;
}

/* ---- decisions ---- */

const char *ts_el_reason_name(ts_el_reason_t r) {
    static const char *const names[TS_EL_R_COUNT_] = {"elected",  "handoff",  "left",
                                                      "lapse",    "preempt",  "rotation",
                                                      "demotion", "adopted"};
    return (unsigned)r < TS_EL_R_COUNT_ ? names[r] : "unknown";
}

/* Whether a ranks before b: higher score, then earlier joined, then the
 * smaller holder id (a total order: every loop picks the same). */
static int ranks_before(const ts_el_cand_t *a, const ts_el_cand_t *b) {
    if (a->score != b->score) return a->score > b->score;
    if (a->joined != b->joined) return a->joined < b->joined;
    return strcmp(a->holder, b->holder) < 0;
}

/* The best eligible candidate other than `skip`; -1 if none. */
static int best_except(const ts_el_situation_t *s, int skip) {
    int best = -1;
    for (size_t i = 0; i < s->n; i++) {
        if ((int)i == skip || !s->c[i].eligible) continue;
        if (best < 0 || ranks_before(&s->c[i], &s->c[best])) best = (int)i;
    }
    return best;
}

static void act(ts_el_decision_t *d, const ts_el_situation_t *s, ts_el_act_t a,
                ts_el_reason_t r, int to) {
    d->act = a;
    d->reason = r;
    d->to = to;
    d->backup = best_except(s, to);
}

void ts_el_decide(const ts_el_situation_t *s, const ts_el_params_t *p, ts_el_decision_t *d) {
    memset(d, 0, sizeof *d);
    d->to = -1;
    int best = best_except(s, -1);
    if (s->gone != TS_EL_GONE_NONE) {
        /* the leader is not among c: the best of the rest takes over at once */
        static const ts_el_reason_t why[] = {TS_EL_R_LEFT, TS_EL_R_LEFT, TS_EL_R_HANDOFF,
                                             TS_EL_R_LAPSE};
        if (best >= 0)
            act(d, s, TS_EL_ACT_TRANSFER, why[s->gone], best);
        else
            act(d, s, s->gone == TS_EL_GONE_LAPSED ? TS_EL_ACT_NONE : TS_EL_ACT_RELEASE,
                why[s->gone], -1);
        return;
    }
    if (!s->held) {
        act(d, s, best >= 0 ? TS_EL_ACT_ACQUIRE : TS_EL_ACT_NONE, TS_EL_R_ELECTED, best);
        return;
    }
    if (s->leader < 0) { /* led from another loop or node: its loop decides */
        d->backup = best;
        return;
    }
    const ts_el_cand_t *L = &s->c[s->leader];
    int b = best_except(s, s->leader);
    d->backup = b;
    if (b < 0) return; /* nobody to hand over to: the leader stays */
    const ts_el_cand_t *B = &s->c[b];
    if (!L->eligible || (L->score < p->demote_below && B->score > L->score) || s->late_hb >= 2) {
        act(d, s, TS_EL_ACT_TRANSFER, TS_EL_R_DEMOTION, b);
        return;
    }
    if (p->max_tenure_ms && s->tenure_ms >= p->max_tenure_ms) {
        act(d, s, TS_EL_ACT_TRANSFER, TS_EL_R_ROTATION, b);
        return;
    }
    if (p->max_tenure_ms) d->recheck_ms = p->max_tenure_ms - s->tenure_ms;
    if (B->may_preempt && B->score >= L->score + p->margin) {
        if (s->tenure_ms >= p->min_tenure_ms) {
            act(d, s, TS_EL_ACT_TRANSFER, TS_EL_R_PREEMPT, b);
            return;
        }
        uint64_t wait = p->min_tenure_ms - s->tenure_ms;
        if (!d->recheck_ms || wait < d->recheck_ms) d->recheck_ms = wait;
    }
}
