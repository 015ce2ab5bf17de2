/* fuzz_state_rules.c - libFuzzer driver for the state rules file parser.
 * The input is a rules file. A refusal must be TS_EPROTO with a one-line
 * reason and no rules; accepted rules are matched against fixed paths and
 * against the pointers found in the input itself (so the rules' own
 * patterns get hit): the strategy is a known one, the unit is a valid
 * pointer that is a prefix of the path, and a counter or set unit is never
 * the root. Seeds: fuzz/corpus/fuzz_state_rules. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_jptr.h"
#include "core/ts_mem.h"
#include "session/ts_sess_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const paths[] = {
    "",           "/",          "/a",        "/a/b",          "/counters",   "/counters/x",
    "/counters/x/y", "/tags",   "/tags/0",   "/doc",          "/doc/a/b/c",  "/*",
    "/**",        "/a~1b/~0",   "/a/*/c",    "//",            "/0/1/2/3/4/5/6/7/8/9",
};

static void check(const ts_sess_rules_t *r, const char *path, size_t len) {
    char unit[TS_JPTR_MAX_LEN + 1];
    ts_sess_strategy_t st = ts_sess_rules_match(r, path, unit, sizeof unit);
    ts_assert((unsigned)st < TS_SESS_ST_COUNT_);
    ts_assert(strcmp(ts_sess_strategy_name(st), "unknown") != 0);
    size_t ulen = strlen(unit);
    ts_jptr_t p;
    ts_assert(ts_jptr_parse(&p, unit, ulen, NULL) == 0);
    ts_assert(ts_jptr_is_prefix(unit, ulen, path, len));
    if (st == TS_SESS_ST_COUNTER || st == TS_SESS_ST_SET) ts_assert(ulen > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ts_sess_rules_t *r = (ts_sess_rules_t *)1;
    char why[200] = "";
    int rc = ts_sess_rules_parse((const char *)data, size, &r, why, sizeof why);
    if (rc != 0) {
        ts_assert(rc == TS_EPROTO && r == NULL);
        ts_assert(why[0] != '\0' && strchr(why, '\n') == NULL);
        json_t *w = json_string(why); /* valid UTF-8 */
        ts_assert(w != NULL);
        json_decref(w);
        return 0;
    }
    ts_assert(r != NULL);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        check(r, paths[i], strlen(paths[i]));
    /* Pointers in the input: from each '/' up to a quote, made longer by
     * a segment so `*` and `**` patterns have something below them. */
    size_t found = 0;
    for (size_t i = 0; i < size && found < 16; i++) {
        if (data[i] != '/') continue;
        size_t j = i;
        while (j < size && j - i < 200 && data[j] != '"' && data[j] != '\0') j++;
        char text[256];
        size_t len = j - i;
        memcpy(text, data + i, len);
        text[len] = '\0';
        ts_jptr_t p;
        if (ts_jptr_parse(&p, text, len, NULL) == 0) check(r, text, len);
        memcpy(text + len, "/q", 3);
        if (ts_jptr_parse(&p, text, len + 2, NULL) == 0) check(r, text, len + 2);
        found++;
        i = j;
    }
    ts_sess_rules_free(r);
    return 0;
}
