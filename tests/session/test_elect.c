/* test_elect.c - the election rules without I/O: the score of documented
 * inputs (docs/ELECTION.md's table and its worked examples: a hidden tab
 * and a battery at 20 % move leadership past the default margin, a battery
 * going from 90 % to 80 % does not), the weights parser, and ts_el_decide
 * row by row for every reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "core/ts_err.h"
#include "session/ts_sess_elect.h"

static ts_el_inputs_t base(void) {
    ts_el_inputs_t in = {.battery_level = -1, .charging = -1, .rtt_ms = 20, .net_rtt_ms = -1,
                         .effective_type = "4g", .type = TS_SESS_DEV_DESKTOP, .visible = 1,
                         .uptime_ms = TS_EL_UPTIME_FULL_MS};
    return in;
}

static uint32_t score(const ts_el_inputs_t *in) {
    ts_el_score_t s;
    ts_el_score(in, &ts_el_default_weights, &s);
    return s.total;
}

static void t_score_parts(void **state) {
    (void)state;
    ts_el_inputs_t in = base();
    assert_int_equal(score(&in), 1000);
    in.visible = 0; /* hidden: 25 × 0.6 = 150 points */
    assert_int_equal(score(&in), 850);
    in = base();
    in.type = TS_SESS_DEV_MOBILE; /* mobile: device 0.4, battery unknown 0.7 */
    assert_int_equal(score(&in), 1000 - 90 - 60);
    in.battery_level = 0.2, in.charging = 0; /* battery at 20 % */
    assert_int_equal(score(&in), 1000 - 90 - 160);
    in.charging = 1; /* charging counts as full */
    assert_int_equal(score(&in), 1000 - 90);
    in = base();
    in.rtt_ms = 525; /* halfway between 50 and 1000 ms */
    assert_int_equal(score(&in), 850);
    in.rtt_ms = -1, in.net_rtt_ms = 2000; /* the tab's report when not measured */
    assert_int_equal(score(&in), 700);
    in = base();
    in.effective_type = "2g";
    assert_int_equal(score(&in), 1000 - 210);
    in = base();
    in.late_hb = 1; /* halves the connection part */
    assert_int_equal(score(&in), 850);
    in.late_hb = 9; /* at most three halvings */
    assert_int_equal(score(&in), 738); /* 1000 >> 3 = 125: 300 × 0.875 lost */
    in = base();
    in.uptime_ms = 0;
    assert_int_equal(score(&in), 900);
    in.visible = -1; /* unknown visibility */
    assert_int_equal(score(&in), 900 - 75);
}

/* The examples docs/ELECTION.md gives against the default margin of 100. */
static void t_score_examples(void **state) {
    (void)state;
    ts_el_inputs_t a = base();
    a.type = TS_SESS_DEV_BROWSER;
    a.battery_level = 1.0, a.charging = 0;
    uint32_t full = score(&a);
    a.battery_level = 0.2;
    assert_true(full - score(&a) >= 100); /* moves leadership */
    a.battery_level = 0.9;
    uint32_t ninety = score(&a);
    a.battery_level = 0.8;
    assert_true(ninety - score(&a) < 100); /* does not */
    a = base();
    uint32_t vis = score(&a);
    a.visible = 0;
    assert_true(vis - score(&a) >= 100);
}

static void t_weights(void **state) {
    (void)state;
    static const struct {
        const char *spec;
        int want;
        const char *why;
        uint32_t w0;
    } rows[] = {
        {"", 0, NULL, 20},
        {"battery=0", 0, NULL, 0},
        {"battery=5,uptime=0,connection=1000", 0, NULL, 5},
        {"batt=3", TS_EPROTO, "is not <part>=<n>", 0},
        {"battery", TS_EPROTO, "is not <part>=<n>", 0},
        {"battery=", TS_EPROTO, "needs a number", 0},
        {"battery=-1", TS_EPROTO, "is not a number", 0},
        {"battery=1001", TS_EPROTO, "is not a number 0..1000", 0},
        {"battery=1x", TS_EPROTO, "is not a number", 0},
        {"battery=0,connection=0,device=0,visibility=0,uptime=0", TS_EPROTO, "at least one", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ts_el_weights_t w;
        char why[160] = "";
        int rc = ts_el_weights_parse(rows[i].spec, &w, why, sizeof why);
        if (rc != rows[i].want) fail_msg("%s: %d (%s)", rows[i].spec, rc, why);
        if (rc == 0) assert_int_equal(w.w[0], rows[i].w0);
        if (rows[i].why && !strstr(why, rows[i].why)) fail_msg("%s: why \"%s\"", rows[i].spec, why);
    }
}

static const ts_el_params_t P = {.margin = 100, .demote_below = 200, .min_tenure_ms = 2000,
                                 .max_tenure_ms = 3600000};

/* Members: A (900, joined 1), B (800, joined 2), C (observer), D (800, joined 3). */
static ts_el_cand_t C4[4];
static void reset(void) {
    ts_el_cand_t c[4] = {{900, 1, "d/A", 1, 1}, {800, 2, "d/B", 1, 1}, {990, 0, "d/C", 0, 1},
                         {800, 3, "d/D", 1, 1}};
    memcpy(C4, c, sizeof c);
}

static ts_el_decision_t decide(int leader, int held, ts_el_gone_t gone, uint64_t tenure,
                               unsigned late) {
    ts_el_situation_t s = {C4, 4, leader, held, gone, tenure, late, 0};
    ts_el_decision_t d;
    ts_el_decide(&s, &P, &d);
    return d;
}

static void t_decide(void **state) {
    (void)state;
    reset();
    ts_el_decision_t d = decide(-1, 0, TS_EL_GONE_NONE, 0, 0);
    assert_int_equal(d.act, TS_EL_ACT_ACQUIRE); /* nobody holds it: the best, never C */
    assert_int_equal(d.to, 0);
    assert_int_equal(d.backup, 1); /* B before D: same score, joined earlier */
    assert_int_equal(d.reason, TS_EL_R_ELECTED);
    d = decide(-1, 1, TS_EL_GONE_NONE, 0, 0); /* led from elsewhere: nothing */
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    assert_int_equal(d.backup, 0);
    d = decide(0, 1, TS_EL_GONE_NONE, 10000, 0); /* A leads, nothing better */
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    assert_int_equal(d.backup, 1);
    assert_int_equal(d.recheck_ms, 3600000 - 10000);
    /* hysteresis: B at 999 vs A at 900 is 99 more: stays */
    C4[1].score = 999;
    d = decide(0, 1, TS_EL_GONE_NONE, 10000, 0);
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    C4[0].score = 899; /* 100 more: preempts */
    d = decide(0, 1, TS_EL_GONE_NONE, 10000, 0);
    assert_int_equal(d.act, TS_EL_ACT_TRANSFER);
    assert_int_equal(d.reason, TS_EL_R_PREEMPT);
    assert_int_equal(d.to, 1);
    assert_int_equal(d.backup, 0); /* the old leader is the backup now */
    d = decide(0, 1, TS_EL_GONE_NONE, 500, 0); /* before the minimum tenure: wait */
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    assert_int_equal(d.recheck_ms, 1500);
    C4[1].may_preempt = 0; /* rotated out recently: does not preempt */
    d = decide(0, 1, TS_EL_GONE_NONE, 10000, 0);
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    reset();
    /* rotation */
    d = decide(0, 1, TS_EL_GONE_NONE, 3600000, 0);
    assert_int_equal(d.act, TS_EL_ACT_TRANSFER);
    assert_int_equal(d.reason, TS_EL_R_ROTATION);
    assert_int_equal(d.to, 1);
    /* demotion: late heartbeats; a score under the threshold with a better backup */
    d = decide(0, 1, TS_EL_GONE_NONE, 10000, 2);
    assert_int_equal(d.reason, TS_EL_R_DEMOTION);
    assert_int_equal(d.act, TS_EL_ACT_TRANSFER);
    C4[0].score = 150;
    C4[1].score = 160; /* within the margin, but A is under 200 */
    d = decide(0, 1, TS_EL_GONE_NONE, 10000, 0);
    assert_int_equal(d.reason, TS_EL_R_DEMOTION);
    C4[1].score = 100, C4[3].score = 100; /* nobody better: A stays */
    d = decide(0, 1, TS_EL_GONE_NONE, 10000, 0);
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    reset();
    C4[0].eligible = 0; /* the leader became an observer or stalled */
    d = decide(0, 1, TS_EL_GONE_NONE, 10, 0);
    assert_int_equal(d.reason, TS_EL_R_DEMOTION);
    assert_int_equal(d.to, 1);
    /* the leader went (A is not among the candidates any more) */
    ts_el_gone_t gone[] = {TS_EL_GONE_LEFT, TS_EL_GONE_RESIGNED, TS_EL_GONE_LAPSED};
    ts_el_reason_t why[] = {TS_EL_R_LEFT, TS_EL_R_HANDOFF, TS_EL_R_LAPSE};
    for (int i = 0; i < 3; i++) {
        d = decide(-1, 1, gone[i], 0, 0);
        assert_int_equal(d.act, TS_EL_ACT_TRANSFER);
        assert_int_equal(d.reason, why[i]);
        assert_int_equal(d.to, 1);
        assert_int_equal(d.backup, 3);
    }
    /* ... with nobody to take over */
    for (int i = 0; i < 4; i++) C4[i].eligible = 0;
    d = decide(-1, 1, TS_EL_GONE_LEFT, 0, 0);
    assert_int_equal(d.act, TS_EL_ACT_RELEASE);
    d = decide(-1, 1, TS_EL_GONE_LAPSED, 0, 0);
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    d = decide(-1, 0, TS_EL_GONE_NONE, 0, 0);
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    assert_int_equal(d.backup, -1);
    /* ties: same score and join order go to the smaller holder id */
    ts_el_cand_t tie[2] = {{500, 7, "d/z", 1, 1}, {500, 7, "d/a", 1, 1}};
    ts_el_situation_t s = {tie, 2, -1, 0, TS_EL_GONE_NONE, 0, 0, 0};
    ts_el_decide(&s, &P, &d);
    assert_int_equal(d.to, 1);
    /* the leader is another loop's or node's member (the shared table):
     * whatever would move leadership, its own loop decides; here only the
     * backup, the best other than that leader */
    reset();
    C4[1].score = 999;
    C4[0].score = 150;
    ts_el_situation_t r = {C4, 4, 0, 1, TS_EL_GONE_NONE, 0, 0, 1};
    ts_el_decide(&r, &P, &d);
    assert_int_equal(d.act, TS_EL_ACT_NONE);
    assert_int_equal(d.backup, 1);
    assert_int_equal(d.recheck_ms, 0);
    assert_string_equal(ts_el_reason_name(TS_EL_R_ADOPTED), "adopted");
    assert_string_equal(ts_el_reason_name((ts_el_reason_t)99), "unknown");
}

/* Every refusal of a request's argument, with its code and a fragment of
 * the reason, and what accepted ones yield. */
static void t_requests(void **state) {
    (void)state;
    static const struct {
        ts_el_req_kind_t kind;
        const char *json;
        int want;
        const char *code, *why;
    } rows[] = {
        {TS_EL_REQ_ELECT, "{}", 0, NULL, NULL},
        {TS_EL_REQ_ELECT, "{\"join\":[\"session\",\"device\"],\"scores\":true}", 0, NULL, NULL},
        {TS_EL_REQ_ELECT, "[]", TS_EPROTO, "bad_elect", "elect takes"},
        {TS_EL_REQ_ELECT, "{\"join\":\"session\"}", TS_EPROTO, "bad_elect", "arrays of"},
        {TS_EL_REQ_ELECT, "{\"join\":[\"session\",\"session\"]}", TS_EPROTO, "bad_elect", "at most once"},
        {TS_EL_REQ_ELECT, "{\"join\":[\"tab\"]}", TS_EPROTO, "bad_elect", "arrays of"},
        {TS_EL_REQ_ELECT, "{\"join\":[\"device\"],\"leave\":[\"device\"]}", TS_EPROTO, "bad_elect", "joined and left"},
        {TS_EL_REQ_ELECT, "{\"observer\":1}", TS_EPROTO, "bad_elect", "true or false"},
        {TS_EL_REQ_HB, "{\"scope\":\"session\",\"term\":7}", 0, NULL, NULL},
        {TS_EL_REQ_HB, "{\"scope\":\"session\"}", TS_EPROTO, "bad_elect", "term must be"},
        {TS_EL_REQ_HB, "{\"scope\":\"session\",\"term\":0}", TS_EPROTO, "bad_elect", "term must be"},
        {TS_EL_REQ_HB, "{\"scope\":\"session\",\"term\":1.5}", TS_EPROTO, "bad_elect", "term must be"},
        {TS_EL_REQ_HB, "{\"scope\":\"session\",\"term\":9007199254740992}", TS_EPROTO, "bad_elect", "term must be"},
        {TS_EL_REQ_RESIGN, "{\"scope\":\"tab\",\"term\":1}", TS_EPROTO, "bad_elect", "scope must be"},
        {TS_EL_REQ_RESIGN, "null", TS_EPROTO, "bad_elect", "takes {scope, term}"},
        {TS_EL_REQ_LEAD, "{\"scope\":\"device\",\"term\":3}", 0, NULL, NULL},
        {TS_EL_REQ_LEAD, "{\"scope\":\"device\"}", TS_EPROTO, "bad_change", "term must be"},
        {TS_EL_REQ_LEAD, "3", TS_EPROTO, "bad_change", "lead must be"},
        {TS_EL_REQ_TASK, "{\"op\":\"progress\",\"scope\":\"session\",\"name\":\"poll\",\"pct\":30}", 0, NULL, NULL},
        {TS_EL_REQ_TASK, "{\"op\":\"done\",\"scope\":\"device\",\"name\":\"a.b:c/d-e\"}", 0, NULL, NULL},
        {TS_EL_REQ_TASK, "{\"op\":\"declare\",\"scope\":\"session\",\"name\":\"p\",\"term\":2,\"stall_ms\":100,\"to\":{\"device\":\"d\",\"tab\":\"t\"}}", 0, NULL, NULL},
        {TS_EL_REQ_TASK, "{\"op\":\"declare\",\"scope\":\"session\",\"name\":\"p\"}", TS_EPROTO, "bad_task", "term must be"},
        {TS_EL_REQ_TASK, "{\"op\":\"nap\",\"scope\":\"session\",\"name\":\"p\"}", TS_EPROTO, "bad_task", "op must be"},
        {TS_EL_REQ_TASK, "{\"op\":\"done\",\"scope\":\"session\",\"name\":\"no space\"}", TS_EPROTO, "bad_task", "name must be"},
        {TS_EL_REQ_TASK, "{\"op\":\"done\",\"scope\":\"session\",\"name\":\"\"}", TS_EPROTO, "bad_task", "name must be"},
        {TS_EL_REQ_TASK, "{\"op\":\"progress\",\"scope\":\"session\",\"name\":\"p\",\"pct\":101}", TS_EPROTO, "bad_task", "pct must be"},
        {TS_EL_REQ_TASK, "{\"op\":\"declare\",\"scope\":\"session\",\"name\":\"p\",\"term\":1,\"stall_ms\":99}", TS_EPROTO, "bad_task", "stall_ms must be"},
        {TS_EL_REQ_TASK, "{\"op\":\"declare\",\"scope\":\"session\",\"name\":\"p\",\"term\":1,\"to\":{\"device\":\"d/x\",\"tab\":\"t\"}}", TS_EPROTO, "bad_task", "to must be"},
        {TS_EL_REQ_TASK, "{\"op\":\"done\",\"name\":\"p\"}", TS_EPROTO, "bad_task", "scope must be"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_error_t jerr;
        json_t *j = json_loads(rows[i].json, JSON_DECODE_ANY, &jerr);
        assert_non_null(j);
        ts_el_req_t r;
        const char *code = NULL;
        char why[160] = "";
        int rc = ts_el_req_parse(j, rows[i].kind, &r, &code, why, sizeof why);
        if (rc != rows[i].want) fail_msg("row %zu %s: %d (%s)", i, rows[i].json, rc, why);
        if (rc) {
            assert_string_equal(code, rows[i].code);
            if (!strstr(why, rows[i].why)) fail_msg("row %zu: why \"%s\"", i, why);
            assert_null(strchr(why, '\n'));
        }
        json_decref(j);
    }
    /* what accepted ones yield */
    json_t *j = json_loads("{\"op\":\"declare\",\"scope\":\"device\",\"name\":\"p\",\"term\":9,"
                           "\"stall_ms\":500,\"to\":{\"device\":\"d\",\"tab\":\"t\"}}", 0, NULL);
    ts_el_req_t r;
    const char *code;
    char why[160];
    assert_int_equal(ts_el_req_parse(j, TS_EL_REQ_TASK, &r, &code, why, sizeof why), 0);
    assert_int_equal(r.op, TS_EL_TASK_DECLARE);
    assert_int_equal(r.scope, TS_SESS_SCOPE_DEVICE);
    assert_int_equal(r.term, 9);
    assert_int_equal(r.stall_ms, 500);
    assert_int_equal(r.pct, -1);
    assert_string_equal(r.name, "p");
    assert_string_equal(r.to_device, "d");
    assert_string_equal(r.to_tab, "t");
    json_decref(j);
    j = json_loads("{\"join\":[\"device\"],\"leave\":[\"session\"],\"observer\":false}", 0, NULL);
    assert_int_equal(ts_el_req_parse(j, TS_EL_REQ_ELECT, &r, &code, why, sizeof why), 0);
    assert_int_equal(r.join, 1u << TS_SESS_SCOPE_DEVICE);
    assert_int_equal(r.leave, 1u << TS_SESS_SCOPE_SESSION);
    assert_int_equal(r.observer, 0);
    assert_int_equal(r.scores, -1);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_requests),
        cmocka_unit_test(t_score_parts),
        cmocka_unit_test(t_score_examples),
        cmocka_unit_test(t_weights),
        cmocka_unit_test(t_decide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
