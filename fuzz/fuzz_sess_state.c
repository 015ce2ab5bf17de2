/* fuzz_sess_state.c - libFuzzer driver for the shared-state engine. The
 * first two bytes choose a rules file, an initial state and a context
 * (base, hlc, actor, limits); the rest is up to four changes as JSON
 * texts, one per line, applied in turn. Checks the engine's promises at
 * every step: a refused change leaves the state's dump byte for
 * byte as it was and has a known code and a one-line sentence; an applied
 * change's entry (effects + meta, through JSON text) folded onto a copy of
 * the initial state gives the same state; applying it again on another
 * copy gives the same bytes; effects never point inside an array; the
 * byte count stays exact; nothing leaks. Seeds: fuzz/corpus/fuzz_sess_state. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_jptr.h"
#include "core/ts_mem.h"
#include "session/ts_sess_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *const rule_files[4] = {
    NULL,
    "{\"rules\":[{\"path\":\"/counters/*\",\"strategy\":\"counter\"},"
    "{\"path\":\"/tags\",\"strategy\":\"set\"},{\"path\":\"/doc/**\",\"strategy\":\"version\"},"
    "{\"path\":\"/l/*\",\"strategy\":\"set\"}]}",
    "{\"default\":\"version\",\"rules\":[{\"path\":\"/a/*/c\",\"strategy\":\"counter\"},"
    "{\"path\":\"/a/**\",\"strategy\":\"lww\"}]}",
    "{\"rules\":[{\"path\":\"\",\"strategy\":\"version\"}]}",
};

static const char *const states[4] = {
    "{\"doc\":{}}",
    "{\"doc\":{\"a\":{\"b\":[1,{\"c\":2}],\"c\":\"x\"},\"counters\":{\"n\":5,\"r\":1.5,"
    "\"big\":9223372036854775807},\"tags\":[\"x\",{\"k\":1},2],\"doc\":{\"t\":\"v\"},"
    "\"l\":[[1],[2,3]]},"
    "\"meta\":{\"/a/b\":{\"v\":3,\"h\":50,\"a\":\"y\"},\"/tags\":{\"v\":4,\"h\":1,\"a\":\"x\","
    "\"t\":{\"\\\"x\\\"\":[2,4]}},\"/doc\":{\"v\":6,\"h\":9,\"a\":\"z\"},"
    "\"/counters/n\":{\"v\":2,\"h\":70,\"a\":\"y\"}}}",
    "{\"doc\":{\"\":{\"~\":{\"/\":[]}},\"a\":{\"0\":{\"c\":1}}},"
    "\"meta\":{\"\":{\"v\":1,\"h\":40,\"a\":\"me\"}}}",
    "{\"doc\":{\"a\":[[[]]],\"b\":null,\"c\":true},"
    "\"meta\":{\"/a/0\":{\"v\":9,\"h\":100,\"a\":\"zz\"}}}",
};

static ts_sess_rules_t *rules[4];
static json_t *snaps[4];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char why[200];
    for (int i = 0; i < 4; i++) {
        if (rule_files[i])
            ts_assert(ts_sess_rules_parse(rule_files[i], strlen(rule_files[i]), &rules[i], why,
                                          sizeof why) == 0);
        snaps[i] = json_loads(states[i], 0, NULL);
        ts_assert(snaps[i] != NULL);
    }
    return 0;
}

static ts_sess_state_t *load(int i) {
    ts_sess_state_t *st;
    char why[200];
    ts_assert(ts_sess_state_load(snaps[i], &st, why, sizeof why) == 0);
    return st;
}

static char *dump_text(const ts_sess_state_t *st) {
    json_t *d = ts_sess_state_dump(st);
    char *s = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    ts_assert(s != NULL);
    return s;
}

static size_t compact_size(const json_t *v) { return json_dumpb(v, NULL, 0, JSON_COMPACT); }

/* Through JSON text, as the log keeps it. */
static json_t *roundtrip(const json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    ts_assert(s != NULL);
    json_t *r = json_loads(s, JSON_DECODE_ANY, NULL);
    ts_assert(r != NULL);
    free(s);
    return r;
}

static const char *const codes[] = {"bad_change",        "bad_patch",     "bad_path",
                                    "test_failed",       "strategy_mismatch", "type_mismatch",
                                    "base_required",     "conflict",      "too_large",
                                    "counter_overflow"};

static void check_refusal(int rc, const ts_sess_state_outcome_t *o) {
    int known = 0;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) known |= !strcmp(o->code, codes[i]);
    ts_assert(known);
    ts_assert(o->why[0] != '\0' && strchr(o->why, '\n') == NULL);
    json_t *w = json_string(o->why); /* valid UTF-8 */
    ts_assert(w != NULL);
    json_decref(w);
    ts_assert((rc == TS_ECONFLICT) == !strcmp(o->code, "conflict"));
    ts_assert((rc == TS_ETOOBIG) == !strcmp(o->code, "too_large"));
    ts_assert(rc == TS_ECONFLICT || rc == TS_ETOOBIG || rc == TS_EPROTO);
    ts_assert((o->conflicts != NULL) == (rc == TS_ECONFLICT));
    ts_assert(!o->effects && !o->meta && !o->results);
}

/* No effect names a place inside an array, and their paths are disjoint. */
static void check_effects(const json_t *eff, const json_t *doc) {
    ts_assert(json_is_array(eff));
    size_t i, j;
    json_t *e, *f;
    json_array_foreach(eff, i, e) {
        const char *p = json_string_value(json_object_get(e, "path"));
        ts_assert(p != NULL);
        ts_jptr_t ptr;
        ts_assert(ts_jptr_parse(&ptr, p, strlen(p), NULL) == 0);
        for (size_t k = 0; k < ptr.n; k++) ts_assert(!json_is_array(ts_jptr_get(doc, &ptr, k)));
        json_array_foreach(eff, j, f) {
            const char *q = json_string_value(json_object_get(f, "path"));
            if (i != j) ts_assert(!ts_jptr_overlap(p, strlen(p), q, strlen(q)));
        }
    }
}

static ts_sess_state_t *copy_of(const ts_sess_state_t *st) {
    json_t *d = ts_sess_state_dump(st);
    ts_sess_state_t *c;
    char why[200];
    ts_assert(ts_sess_state_load(d, &c, why, sizeof why) == 0);
    json_decref(d);
    return c;
}

/* Applies one change to st and checks every promise. */
static void step(ts_sess_state_t *st, const ts_sess_rules_t *r, json_t *change,
                 const ts_sess_state_ctx_t *ctx) {
    ts_sess_state_t *orig = copy_of(st);
    char *before = dump_text(st);
    ts_sess_state_outcome_t o;
    int rc = ts_sess_state_apply(st, r, change, ctx, &o);
    char *after = dump_text(st);
    ts_assert(ts_sess_state_bytes(st) == compact_size(ts_sess_state_doc(st)));
    if (rc != 0) {
        check_refusal(rc, &o);
        ts_assert(strcmp(before, after) == 0);
    } else {
        ts_assert(o.code[0] == '\0' && !o.conflicts);
        ts_assert(json_is_array(o.meta) && json_is_array(o.results));
        check_effects(o.effects, ts_sess_state_doc(st));
        /* fold(copy of S, entry) == apply(S, change) */
        ts_sess_state_t *st2 = copy_of(orig);
        json_t *e = roundtrip(o.effects), *m = roundtrip(o.meta);
        char why[200];
        ts_assert(ts_sess_state_fold(st2, e, m, why, sizeof why) == 0);
        json_t *d1 = ts_sess_state_dump(st), *d2 = ts_sess_state_dump(st2);
        ts_assert(json_equal(d1, d2));
        ts_assert(ts_sess_state_bytes(st2) == ts_sess_state_bytes(st));
        json_decref(d1);
        json_decref(d2);
        json_decref(e);
        json_decref(m);
        ts_sess_state_free(st2);
        /* the same change on another copy: the same bytes */
        ts_sess_state_outcome_t o3;
        ts_assert(ts_sess_state_apply(orig, r, change, ctx, &o3) == 0);
        char *again = dump_text(orig);
        ts_assert(strcmp(again, after) == 0);
        ts_assert(json_equal(o.effects, o3.effects) && json_equal(o.results, o3.results));
        free(again);
        ts_sess_state_outcome_clear(&o3);
    }
    ts_sess_state_outcome_clear(&o);
    free(before);
    free(after);
    ts_sess_state_free(orig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > 8192) return 0;
    /* byte 0: rules, state, has_base, limits; byte 1: base, hlc, actor.
     * Then up to 4 changes, one per line, applied in turn. */
    uint8_t b0 = data[0], b1 = data[1];
    int ri = b0 & 3, si = (b0 >> 2) & 3;
    static const uint64_t hlcs[] = {1, 50, 60, 200};
    static const char *const actors[] = {"me", "y", "zz", ""};
    ts_sess_state_ctx_t ctx = {.ver = 10,
                               .base = b1 & 15,
                               .has_base = (b0 & 0x10) != 0,
                               .hlc = hlcs[(b1 >> 4) & 3],
                               .actor = actors[(b1 >> 6) & 3],
                               .max_bytes = (b0 & 0x20) ? 300 : 1u << 20, /* as sessions */
                               .max_ops = (b0 & 0x40) ? 4 : 0};
    ts_sess_state_t *st = load(si);
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    for (int n = 0; n < 4 && p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_t *change = json_loadb(p, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (change) step(st, rules[ri], change, &ctx);
        json_decref(change);
        /* the next change: a later version, its base one behind, a later clock
         * and the other actor every other time */
        ctx.ver++;
        ctx.base = ctx.ver - 1 - (uint64_t)(n & 1);
        ctx.hlc += 7;
        ctx.actor = actors[(size_t)(n + ((b1 >> 6) & 3)) & 3];
        p += len + 1;
    }
    ts_sess_state_free(st);
    return 0;
}
