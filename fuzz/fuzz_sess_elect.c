/* fuzz_sess_elect.c - libFuzzer driver for what a tab asks of an election
 * (ts_el_req_parse: the arguments of elect, hb, resign, task and a state
 * change's lead) and the operator's score weights (ts_el_weights_parse).
 * The first byte picks the request kind; the rest is JSON (any value) for
 * requests, or the weights text. Checks the contracts: a refusal has one
 * of its kind's codes and a one-line reason; an accepted request's fields
 * are in range (scopes known, join and leave disjoint, terms 1..2^53-1,
 * names and ids of their alphabets, pct 0..100 or absent, stall_ms in its
 * range or 0); accepted weights sum above 0, each at most 1,000; a score
 * of random inputs under those weights stays within 0..1,000; nothing
 * leaks. Seeds: fuzz/corpus/fuzz_sess_elect. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "session/ts_sess_elect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const codes[] = {"bad_elect", "bad_elect", "bad_elect", "bad_task",
                                    "bad_change"};

static void check_req(ts_el_req_kind_t kind, const ts_el_req_t *r) {
    if (kind == TS_EL_REQ_ELECT) {
        ts_assert((r->join | r->leave) < (1u << TS_SESS_SCOPE_KINDS_));
        ts_assert((r->join & r->leave) == 0);
        ts_assert(r->observer >= -1 && r->observer <= 1 && r->scores >= -1 && r->scores <= 1);
        return;
    }
    ts_assert((unsigned)r->scope < TS_SESS_SCOPE_KINDS_);
    int needs_term = kind != TS_EL_REQ_TASK || r->op == TS_EL_TASK_DECLARE ||
                     r->op == TS_EL_TASK_CANCEL;
    if (needs_term) ts_assert(r->term >= 1 && r->term <= 9007199254740991ULL);
    if (kind != TS_EL_REQ_TASK) return;
    ts_assert(ts_sess_name_ok(r->name));
    ts_assert(r->pct >= -1 && r->pct <= 100);
    ts_assert(r->stall_ms == 0 ||
              (r->stall_ms >= TS_EL_STALL_MIN_MS && r->stall_ms <= TS_EL_STALL_MAX_MS));
    ts_assert((r->to_device[0] == '\0') == (r->to_tab[0] == '\0'));
    ts_assert(strchr(r->to_device, '/') == NULL && strchr(r->to_tab, '/') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned kind = data[0] % 6;
    data++, size--;
    char why[200];
    if (kind == 5) { /* the weights text */
        char *text = ts_xmalloc(size + 1);
        memcpy(text, data, size);
        text[size] = '\0';
        ts_el_weights_t w;
        int rc = ts_el_weights_parse(text, &w, why, sizeof why);
        free(text);
        if (rc) {
            ts_assert(rc == TS_EPROTO && why[0] && !strchr(why, '\n'));
            return 0;
        }
        uint32_t sum = 0;
        for (int i = 0; i < TS_EL_PARTS_; i++) {
            ts_assert(w.w[i] <= TS_EL_WEIGHT_MAX);
            sum += w.w[i];
        }
        ts_assert(sum > 0);
        /* a score of inputs drawn from the text's bytes stays in range */
        ts_el_inputs_t in = {.battery_level = size ? data[0] / 255.0 : -1,
                             .charging = size > 1 ? data[1] % 3 - 1 : -1,
                             .rtt_ms = size > 2 ? data[2] * 10 - 100 : -1,
                             .net_rtt_ms = size > 3 ? data[3] * 20 - 100 : -1,
                             .effective_type = size > 4 && data[4] & 1 ? "3g" : NULL,
                             .type = (ts_sess_device_type_t)(size > 5 ? data[5] % 5 : 0),
                             .visible = size > 6 ? data[6] % 3 - 1 : -1,
                             .uptime_ms = size > 7 ? (uint64_t)data[7] * 10000 : 0,
                             .late_hb = size > 8 ? data[8] % 12 : 0};
        ts_el_score_t s;
        ts_el_score(&in, &w, &s);
        ts_assert(s.total <= TS_EL_SCORE_MAX);
        for (int i = 0; i < TS_EL_PARTS_; i++) ts_assert(s.part[i] <= 1000);
        return 0;
    }
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    ts_el_req_t r;
    const char *code = NULL;
    int rc = ts_el_req_parse(j, (ts_el_req_kind_t)kind, &r, &code, why, sizeof why);
    if (rc) {
        ts_assert(rc == TS_EPROTO);
        ts_assert(code && strcmp(code, codes[kind]) == 0);
        ts_assert(why[0] != '\0' && strchr(why, '\n') == NULL);
    } else {
        check_req((ts_el_req_kind_t)kind, &r);
    }
    json_decref(j);
    return 0;
}
