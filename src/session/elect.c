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
#include "session/ts_sess_auth.h" /* TS_SESS_ID_MAX */

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

/* ---- requests ---- */

static int scope_bits(const json_t *v, unsigned *out) {
    *out = 0;
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) > TS_SESS_SCOPE_KINDS_) return -1;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        int k = json_is_string(x) ? ts_sess_scope_kind_parse(json_string_value(x),
                                                             json_string_length(x))
                                  : -1;
        if (k < 0 || (*out & (1u << k))) return -1;
        *out |= 1u << k;
    }
    return 0;
}

static int flag(const json_t *v, int *out) {
    *out = -1;
    if (!v) return 0;
    if (!json_is_boolean(v)) return -1;
    *out = json_is_true(v);
    return 0;
}

/* uint member 1..max, or 0 if absent; -1 if present and not one. */
static int64_t uint_member(const json_t *o, const char *name, int64_t min, int64_t max) {
    const json_t *v = json_object_get(o, name);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) return -1;
    return json_integer_value(v);
}

#define TERM_MAX 9007199254740991LL /* 2^53 - 1: exact in JavaScript */

int ts_el_req_parse(const json_t *arg, ts_el_req_kind_t kind, ts_el_req_t *out,
                    const char **code, char *why, size_t whylen) {
    memset(out, 0, sizeof *out);
    out->pct = -1;
    *code = kind == TS_EL_REQ_TASK ? "bad_task" : kind == TS_EL_REQ_LEAD ? "bad_change" : "bad_elect";
    if (!json_is_object(arg))
        return ts_errf(why, whylen, TS_EPROTO, "%s",
                       kind == TS_EL_REQ_ELECT ? "elect takes {join?, leave?, observer?, scores?}"
                       : kind == TS_EL_REQ_TASK ? "task takes {op, scope, name, ...}"
                       : kind == TS_EL_REQ_LEAD ? "lead must be {scope, term}"
                                                : "takes {scope, term}");
    if (kind == TS_EL_REQ_ELECT) {
        if (scope_bits(json_object_get(arg, "join"), &out->join) ||
            scope_bits(json_object_get(arg, "leave"), &out->leave))
            return ts_errf(why, whylen, TS_EPROTO,
                           "join and leave are arrays of \"session\" and \"device\", each at "
                           "most once");
        if (out->join & out->leave)
            return ts_errf(why, whylen, TS_EPROTO, "a scope cannot be joined and left at once");
        if (flag(json_object_get(arg, "observer"), &out->observer) ||
            flag(json_object_get(arg, "scores"), &out->scores))
            return ts_errf(why, whylen, TS_EPROTO, "observer and scores are true or false");
        return 0;
    }
    const json_t *sc = json_object_get(arg, "scope");
    int k = json_is_string(sc) ? ts_sess_scope_kind_parse(json_string_value(sc),
                                                          json_string_length(sc))
                               : -1;
    if (k < 0) return ts_errf(why, whylen, TS_EPROTO, "scope must be \"session\" or \"device\"");
    out->scope = (ts_sess_scope_kind_t)k;
    int needs_term = kind != TS_EL_REQ_TASK;
    if (kind == TS_EL_REQ_TASK) {
        static const char *const ops[] = {"declare", "cancel", "progress", "done", "fail"};
        const json_t *op = json_object_get(arg, "op");
        int o = -1;
        for (size_t i = 0; json_is_string(op) && i < TS_ARRAY_LEN(ops); i++)
            if (strcmp(json_string_value(op), ops[i]) == 0) o = (int)i;
        if (o < 0)
            return ts_errf(why, whylen, TS_EPROTO,
                           "op must be declare, cancel, progress, done or fail");
        out->op = (ts_el_task_op_t)o;
        const json_t *name = json_object_get(arg, "name");
        if (!json_is_string(name) || json_string_length(name) > TS_SESS_MAX_NAME ||
            !ts_sess_name_ok(json_string_value(name)))
            return ts_errf(why, whylen, TS_EPROTO,
                           "name must be 1-64 characters of [A-Za-z0-9._:/-]");
        memcpy(out->name, json_string_value(name), json_string_length(name) + 1);
        needs_term = out->op == TS_EL_TASK_DECLARE || out->op == TS_EL_TASK_CANCEL;
        int64_t pct = uint_member(arg, "pct", 0, 100);
        if (pct < 0) return ts_errf(why, whylen, TS_EPROTO, "pct must be an integer 0..100");
        if (json_object_get(arg, "pct")) out->pct = (int)pct;
        int64_t stall = uint_member(arg, "stall_ms", TS_EL_STALL_MIN_MS, TS_EL_STALL_MAX_MS);
        if (stall < 0)
            return ts_errf(why, whylen, TS_EPROTO, "stall_ms must be an integer %d..%d",
                           TS_EL_STALL_MIN_MS, TS_EL_STALL_MAX_MS);
        out->stall_ms = (uint64_t)stall;
        const json_t *to = json_object_get(arg, "to");
        if (to) {
            const json_t *d = json_object_get(to, "device"), *t = json_object_get(to, "tab");
            if (!json_is_string(d) || !json_is_string(t) ||
                !ts_sess_id_valid(json_string_value(d), json_string_length(d)) ||
                !ts_sess_id_valid(json_string_value(t), json_string_length(t)))
                return ts_errf(why, whylen, TS_EPROTO,
                               "to must be {device, tab}, ids of 1-128 characters of "
                               "[A-Za-z0-9._:@-]");
            memcpy(out->to_device, json_string_value(d), json_string_length(d) + 1);
            memcpy(out->to_tab, json_string_value(t), json_string_length(t) + 1);
        }
    }
    if (needs_term) {
        int64_t term = uint_member(arg, "term", 1, TERM_MAX);
        if (term <= 0) return ts_errf(why, whylen, TS_EPROTO, "term must be an integer >= 1");
        out->term = (uint64_t)term;
    }
    return 0;
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
    if (b < 0 || s->leader_remote) return; /* nobody to hand over to; or its own loop decides */
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
