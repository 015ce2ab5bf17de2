/* test_rules.c - the state rules file: every refusal with the fragment of
 * its message, valid files, and matching (strategy and unit for a path,
 * first match in file order, `*` and `**`, paths above a unit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "session/ts_sess_state.h"

static const struct parse_case {
    const char *name, *text;
    int want;
    const char *why; /* fragment of the refusal */
} parse_cases[] = {
    {"empty object", "{}", 0, NULL},
    {"default only", "{\"default\":\"version\"}", 0, NULL},
    {"the example", "{\"default\":\"lww\",\"rules\":[{\"path\":\"/counters/*\",\"strategy\":"
                    "\"counter\"},{\"path\":\"/tags\",\"strategy\":\"set\"},{\"path\":"
                    "\"/doc/**\",\"strategy\":\"version\"}]}",
     0, NULL},
    {"root lww rule", "{\"rules\":[{\"path\":\"\",\"strategy\":\"version\"}]}", 0, NULL},
    {"escaped pattern", "{\"rules\":[{\"strategy\":\"set\",\"path\":\"/a~1b/~0\"}]}", 0, NULL},
    {"not JSON", "{\"rules\":", TS_EPROTO, "rules: not valid JSON (line 1"},
    {"duplicate key", "{\"default\":\"lww\",\"default\":\"version\"}", TS_EPROTO, "not valid JSON"},
    {"array file", "[]", TS_EPROTO, "must be a JSON object"},
    {"unknown member", "{\"defaults\":\"lww\"}", TS_EPROTO, "unknown member \"defaults\""},
    {"default number", "{\"default\":1}", TS_EPROTO, "default must be a string"},
    {"default unknown", "{\"default\":\"sum\"}", TS_EPROTO,
     "default \"sum\" is not one of lww, version, counter, set"},
    {"default counter", "{\"default\":\"counter\"}", TS_EPROTO, "needs a rule naming its place"},
    {"default set", "{\"default\":\"set\"}", TS_EPROTO, "default \"set\" is refused"},
    {"rules object", "{\"rules\":{}}", TS_EPROTO, "rules must be an array"},
    {"rule not object", "{\"rules\":[{\"path\":\"/a\",\"strategy\":\"lww\"},3]}", TS_EPROTO,
     "rule 2: not an object"},
    {"rule unknown member", "{\"rules\":[{\"path\":\"/a\",\"strategy\":\"lww\",\"x\":1}]}",
     TS_EPROTO, "rule 1: unknown member \"x\""},
    {"no path", "{\"rules\":[{\"strategy\":\"lww\"}]}", TS_EPROTO, "rule 1: path is missing"},
    {"path number", "{\"rules\":[{\"path\":5,\"strategy\":\"lww\"}]}", TS_EPROTO,
     "rule 1: path must be a string"},
    {"no strategy", "{\"rules\":[{\"path\":\"/a\"}]}", TS_EPROTO, "rule 1: strategy is missing"},
    {"strategy array", "{\"rules\":[{\"path\":\"/a\",\"strategy\":[]}]}", TS_EPROTO,
     "rule 1: strategy must be a string"},
    {"strategy unknown", "{\"rules\":[{},{}],\"x\":0}", TS_EPROTO, "unknown member \"x\""},
    {"strategy sum", "{\"rules\":[{\"path\":\"/a\",\"strategy\":\"lww\"},{\"path\":\"/b\","
                     "\"strategy\":\"lww\"},{\"path\":\"/c\",\"strategy\":\"sum\"}]}",
     TS_EPROTO, "rule 3: strategy \"sum\" is not one of lww, version, counter, set"},
    {"path without slash", "{\"rules\":[{\"path\":\"a/b\",\"strategy\":\"lww\"}]}", TS_EPROTO,
     "rule 1: path \"a/b\" is not a JSON Pointer: it must start with \"/\""},
    {"bad escape", "{\"rules\":[{\"path\":\"/a~2\",\"strategy\":\"lww\"}]}", TS_EPROTO,
     "rule 1: path \"/a~2\" is not a JSON Pointer: it has a ~ not followed by 0 or 1"},
    {"inner **", "{\"rules\":[{\"path\":\"/a/**/b\",\"strategy\":\"lww\"}]}", TS_EPROTO,
     "rule 1: path \"/a/**/b\": ** may only be the last segment"},
    {"counter **", "{\"rules\":[{\"path\":\"/c/**\",\"strategy\":\"counter\"}]}", TS_EPROTO,
     "rule 1: a counter rule cannot end in **"},
    {"set **", "{\"rules\":[{\"path\":\"/**\",\"strategy\":\"set\"}]}", TS_EPROTO,
     "rule 1: a set rule cannot end in **"},
    {"counter root", "{\"rules\":[{\"path\":\"\",\"strategy\":\"counter\"}]}", TS_EPROTO,
     "rule 1: a counter rule cannot be the document root"},
    /* fuzz_state_rules found these: a message is one line of valid UTF-8 */
    {"newline in a strategy", "{\"rules\":[{\"path\":\"/c/**\",\"strategy\":\"co\\nter\"}]}",
     TS_EPROTO, "rule 1: strategy \"co?ter\" is not one of"},
    {"a cut inside a character",
     "{\"default\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u00e9\"}", TS_EPROTO,
     "default \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa?\" is not one of"},
};

static void parse_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        ts_sess_rules_t *r = (ts_sess_rules_t *)1;
        char why[200] = "";
        int rc = ts_sess_rules_parse(c->text, strlen(c->text), &r, why, sizeof why);
        if (rc != c->want) fail_msg("row '%s': rc %d want %d (%s)", c->name, rc, c->want, why);
        if (c->why && !strstr(why, c->why))
            fail_msg("row '%s': why '%s' lacks '%s'", c->name, why, c->why);
        if (rc) {
            assert_null(r);
            json_t *j = json_string(why); /* one line of valid UTF-8 */
            assert_non_null(j);
            json_decref(j);
            assert_null(strchr(why, '\n'));
        }
        ts_sess_rules_free(r);
    }
}

static void too_many(void **state) {
    (void)state;
    for (int n = TS_SESS_RULES_MAX; n <= TS_SESS_RULES_MAX + 1; n++) {
        size_t cap = 64 + (size_t)n * 48, len = 0;
        char *text = malloc(cap);
        len += (size_t)snprintf(text + len, cap - len, "{\"rules\":[");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(text + len, cap - len,
                                    "%s{\"path\":\"/r%d\",\"strategy\":\"lww\"}", i ? "," : "", i);
        len += (size_t)snprintf(text + len, cap - len, "]}");
        ts_sess_rules_t *r;
        char why[200] = "";
        int rc = ts_sess_rules_parse(text, len, &r, why, sizeof why);
        if (n == TS_SESS_RULES_MAX) {
            assert_int_equal(rc, 0);
            ts_sess_rules_free(r);
        } else {
            assert_int_equal(rc, TS_EPROTO);
            assert_non_null(strstr(why, "1001 rules (at most 1000)"));
        }
        free(text);
    }
    /* a short why buffer is cut, not overrun */
    ts_sess_rules_t *r;
    char why[8];
    assert_int_equal(ts_sess_rules_parse("{\"x\":1}", 7, &r, why, sizeof why), TS_EPROTO);
    assert_int_equal(strlen(why), 7);
}

static const char match_rules[] =
    "{\"default\":\"lww\",\"rules\":["
    "{\"path\":\"/counters/*\",\"strategy\":\"counter\"},"
    "{\"path\":\"/tags\",\"strategy\":\"set\"},"
    "{\"path\":\"/doc/**\",\"strategy\":\"version\"},"
    "{\"path\":\"/doc/special\",\"strategy\":\"counter\"},"
    "{\"path\":\"/users/*/score\",\"strategy\":\"counter\"},"
    "{\"path\":\"/users/*/**\",\"strategy\":\"version\"},"
    "{\"path\":\"/a~1b/~0\",\"strategy\":\"set\"},"
    "{\"path\":\"/any/*/*\",\"strategy\":\"version\"}]}";

static const struct match_case {
    const char *path;
    ts_sess_strategy_t st;
    const char *unit;
} match_cases[] = {
    {"/counters/x", TS_SESS_ST_COUNTER, "/counters/x"},
    {"/counters/x/y", TS_SESS_ST_COUNTER, "/counters/x"}, /* below the unit */
    {"/counters", TS_SESS_ST_LWW, "/counters"},           /* above: the default */
    {"/counters/", TS_SESS_ST_COUNTER, "/counters/"},     /* an empty key is a key */
    {"/tags", TS_SESS_ST_SET, "/tags"},
    {"/tags/0", TS_SESS_ST_SET, "/tags"},
    {"/tagsx", TS_SESS_ST_LWW, "/tagsx"},
    {"/doc", TS_SESS_ST_VERSION, "/doc"}, /* ** matches zero segments */
    {"/doc/a/b", TS_SESS_ST_VERSION, "/doc/a/b"},
    {"/doc/special", TS_SESS_ST_VERSION, "/doc/special"}, /* first match wins */
    {"/users/u1/score", TS_SESS_ST_COUNTER, "/users/u1/score"},
    {"/users/u1/name", TS_SESS_ST_VERSION, "/users/u1/name"},
    {"/users/u1", TS_SESS_ST_VERSION, "/users/u1"},
    {"/users", TS_SESS_ST_LWW, "/users"},
    {"/a~1b/~0", TS_SESS_ST_SET, "/a~1b/~0"},
    {"/a~1b/~0/x", TS_SESS_ST_SET, "/a~1b/~0"},
    {"/a/b/~0", TS_SESS_ST_LWW, "/a/b/~0"},
    {"/any/1", TS_SESS_ST_LWW, "/any/1"},
    {"/any/1/2/3", TS_SESS_ST_VERSION, "/any/1/2"},
    {"", TS_SESS_ST_LWW, ""},
    {"/other", TS_SESS_ST_LWW, "/other"},
};

static void match_table(void **state) {
    (void)state;
    ts_sess_rules_t *r;
    char why[200];
    assert_int_equal(ts_sess_rules_parse(match_rules, strlen(match_rules), &r, why, sizeof why), 0);
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const struct match_case *c = &match_cases[i];
        char unit[1025];
        ts_sess_strategy_t st = ts_sess_rules_match(r, c->path, unit, sizeof unit);
        if (st != c->st || strcmp(unit, c->unit) != 0)
            fail_msg("path '%s': %s at '%s', want %s at '%s'", c->path, ts_sess_strategy_name(st),
                     unit, ts_sess_strategy_name(c->st), c->unit);
    }
    /* a short unit buffer is cut */
    char small[4];
    assert_int_equal(ts_sess_rules_match(r, "/counters/x", small, sizeof small),
                     TS_SESS_ST_COUNTER);
    assert_string_equal(small, "/co");
    ts_sess_rules_free(r);
}

static void first_match_order(void **state) {
    (void)state;
    static const char *const files[] = {
        "{\"rules\":[{\"path\":\"/a/*\",\"strategy\":\"counter\"},"
        "{\"path\":\"/a/b\",\"strategy\":\"set\"}]}",
        "{\"rules\":[{\"path\":\"/a/b\",\"strategy\":\"set\"},"
        "{\"path\":\"/a/*\",\"strategy\":\"counter\"}]}",
        "{\"default\":\"version\",\"rules\":[{\"path\":\"/**\",\"strategy\":\"lww\"},"
        "{\"path\":\"/a/b\",\"strategy\":\"set\"}]}",
        "{\"default\":\"version\",\"rules\":[{\"path\":\"\",\"strategy\":\"lww\"}]}",
    };
    static const ts_sess_strategy_t want[] = {TS_SESS_ST_COUNTER, TS_SESS_ST_SET, TS_SESS_ST_LWW,
                                              TS_SESS_ST_LWW};
    static const char *const want_unit[] = {"/a/b", "/a/b", "/a/b/c", ""};
    for (size_t i = 0; i < 4; i++) {
        ts_sess_rules_t *r;
        char why[200], unit[64];
        assert_int_equal(ts_sess_rules_parse(files[i], strlen(files[i]), &r, why, sizeof why), 0);
        const char *path = i >= 2 ? "/a/b/c" : "/a/b";
        if (ts_sess_rules_match(r, path, unit, sizeof unit) != want[i] ||
            strcmp(unit, want_unit[i]) != 0)
            fail_msg("file %zu: %s '%s'", i, ts_sess_strategy_name(want[i]), unit);
        ts_sess_rules_free(r);
    }
    ts_sess_rules_t *d = ts_sess_rules_default();
    char unit[64];
    assert_int_equal(ts_sess_rules_match(d, "/x/y", unit, sizeof unit), TS_SESS_ST_LWW);
    assert_string_equal(unit, "/x/y");
    ts_sess_rules_free(d);
    assert_string_equal(ts_sess_strategy_name(TS_SESS_ST_SET), "set");
    assert_string_equal(ts_sess_strategy_name(TS_SESS_ST_COUNT_), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_table),
        cmocka_unit_test(too_many),
        cmocka_unit_test(match_table),
        cmocka_unit_test(first_match_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
