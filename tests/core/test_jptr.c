/* test_jptr.c - JSON Pointer (RFC 6901): the RFC's section 5 examples,
 * parse refusals and limits, escaping round trips, array indices, and the
 * segment-wise prefix tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "core/ts_jptr.h"

/* RFC 6901 section 5: every pointer and the value it names. */
static const char rfc_doc[] = "{\"foo\":[\"bar\",\"baz\"],\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,"
                              "\"g|h\":4,\"i\\\\j\":5,\"k\\\"l\":6,\" \":7,\"m~n\":8}";
static const struct {
    const char *ptr, *want;
} rfc_cases[] = {
    {"", NULL}, /* the whole document */
    {"/foo", "[\"bar\",\"baz\"]"},
    {"/foo/0", "\"bar\""},
    {"/", "0"},
    {"/a~1b", "1"},
    {"/c%d", "2"},
    {"/e^f", "3"},
    {"/g|h", "4"},
    {"/i\\j", "5"},
    {"/k\"l", "6"},
    {"/ ", "7"},
    {"/m~0n", "8"},
};

static void rfc_examples(void **state) {
    (void)state;
    json_t *doc = json_loads(rfc_doc, 0, NULL);
    assert_non_null(doc);
    for (size_t i = 0; i < sizeof rfc_cases / sizeof rfc_cases[0]; i++) {
        json_t *got = ts_jptr_get_text(doc, rfc_cases[i].ptr, strlen(rfc_cases[i].ptr));
        json_t *want = rfc_cases[i].want ? json_loads(rfc_cases[i].want, JSON_DECODE_ANY, NULL)
                                         : json_incref(doc);
        if (!got || !json_equal(got, want)) fail_msg("pointer '%s'", rfc_cases[i].ptr);
        json_decref(want);
    }
    json_decref(doc);
}

static const struct parse_case {
    const char *name, *text;
    int want;            /* 0 or the error */
    const char *why;     /* fragment */
    unsigned n;          /* segments when valid */
    const char *segs[4]; /* the first unescaped segments */
} parse_cases[] = {
    {"root", "", 0, NULL, 0, {NULL}},
    {"empty segment", "/", 0, NULL, 1, {""}},
    {"two empty", "//", 0, NULL, 2, {"", ""}},
    {"escapes", "/a~1b/m~0n/~01", 0, NULL, 3, {"a/b", "m~n", "~1"}},
    {"~10 is /0 not ~", "/~10", 0, NULL, 1, {"/0"}},
    {"no slash", "a/b", TS_EPROTO, "must start with", 0, {NULL}},
    {"tilde alone", "/a~", TS_EPROTO, "~ not followed", 0, {NULL}},
    {"tilde 2", "/a~2", TS_EPROTO, "~ not followed", 0, {NULL}},
    {"tilde slash", "/a~/b", TS_EPROTO, "~ not followed", 0, {NULL}},
};

static void parse_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        ts_jptr_t p;
        const char *why = "";
        int rc = ts_jptr_parse(&p, c->text, strlen(c->text), &why);
        if (rc != c->want) fail_msg("row '%s': rc %d want %d", c->name, rc, c->want);
        if (c->why && !strstr(why, c->why)) fail_msg("row '%s': why '%s'", c->name, why);
        if (rc) continue;
        assert_int_equal(p.n, c->n);
        for (unsigned k = 0; k < c->n && k < 4; k++) {
            assert_string_equal(ts_jptr_seg(&p, k), c->segs[k]);
            assert_int_equal(p.len[k], strlen(c->segs[k]));
        }
        assert_int_equal(ts_jptr_prefix_len(&p, p.n), strlen(c->text));
    }
    /* a NUL byte inside the text */
    ts_jptr_t p;
    const char *why = "";
    assert_int_equal(ts_jptr_parse(&p, "/a\0b", 4, &why), TS_EPROTO);
    assert_non_null(strstr(why, "NUL"));
}

static void limits(void **state) {
    (void)state;
    char text[2100];
    ts_jptr_t p;
    const char *why = "";
    /* 64 segments pass, 65 do not */
    size_t n = 0;
    for (int i = 0; i < 64; i++) n += (size_t)sprintf(text + n, "/x");
    assert_int_equal(ts_jptr_parse(&p, text, n, &why), 0);
    assert_int_equal(p.n, 64);
    n += (size_t)sprintf(text + n, "/x");
    assert_int_equal(ts_jptr_parse(&p, text, n, &why), TS_ETOOBIG);
    assert_non_null(strstr(why, "64"));
    /* 1024 bytes pass, 1025 do not */
    memset(text, 'a', sizeof text);
    text[0] = '/';
    assert_int_equal(ts_jptr_parse(&p, text, 1024, NULL), 0);
    assert_int_equal(p.len[0], 1023);
    assert_int_equal(ts_jptr_parse(&p, text, 1025, &why), TS_ETOOBIG);
    /* the longest text unescapes into the buffer: 512 "~0" in one segment */
    text[0] = '/';
    for (size_t i = 1; i + 1 < 1024; i += 2) text[i] = '~', text[i + 1] = '0';
    text[1023] = 'z';
    assert_int_equal(ts_jptr_parse(&p, text, 1024, NULL), 0);
    assert_int_equal(p.len[0], 512);
}

static void escape_append(void **state) {
    (void)state;
    char out[16];
    assert_int_equal(ts_jptr_escape(out, sizeof out, "a/b~c", 5), 7);
    assert_string_equal(out, "a~1b~0c");
    /* cut: never half an escape */
    assert_int_equal(ts_jptr_escape(out, 3, "a/b", 3), 4);
    assert_string_equal(out, "a");
    assert_int_equal(ts_jptr_escape(NULL, 0, "~~", 2), 4);
    char path[TS_JPTR_MAX_LEN + 1] = "";
    size_t len = 0;
    assert_int_equal(ts_jptr_append(path, &len, sizeof path, "x/y", 3), 0);
    assert_int_equal(ts_jptr_append(path, &len, sizeof path, "", 0), 0);
    assert_string_equal(path, "/x~1y/");
    /* round trip through parse */
    ts_jptr_t p;
    assert_int_equal(ts_jptr_parse(&p, path, len, NULL), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(ts_jptr_seg(&p, 0), "x/y");
    /* too long: refused, path unchanged */
    char big[1100];
    memset(big, 'b', sizeof big);
    assert_int_equal(ts_jptr_append(path, &len, sizeof path, big, 1019), TS_ETOOBIG);
    assert_int_equal(len, 6);
    assert_int_equal(ts_jptr_append(path, &len, sizeof path, big, 1017), 0);
    assert_int_equal(len, 1024);
    char small[8] = "/a";
    len = 2;
    assert_int_equal(ts_jptr_append(small, &len, sizeof small, "bcdef", 5), TS_ETOOBIG);
    assert_int_equal(ts_jptr_append(small, &len, sizeof small, "bcde", 4), 0);
    assert_string_equal(small, "/a/bcde");
}

static const struct {
    const char *seg;
    size_t size;
    int allow_end, want;
    size_t idx;
} index_cases[] = {
    {"0", 3, 0, 0, 0},
    {"2", 3, 0, 0, 2},
    {"3", 3, 0, TS_ENOTFOUND, 0},
    {"3", 3, 1, 0, 3},
    {"4", 3, 1, TS_ENOTFOUND, 0},
    {"-", 3, 1, 0, 3},
    {"-", 3, 0, TS_ENOTFOUND, 0},
    {"01", 3, 0, TS_EPROTO, 0},
    {"", 3, 0, TS_EPROTO, 0},
    {"1a", 3, 0, TS_EPROTO, 0},
    {"+1", 3, 0, TS_EPROTO, 0},
    {"-1", 3, 0, TS_EPROTO, 0},
    {"99999999999999999999", 3, 0, TS_EPROTO, 0},
    {"9999999999999999999", 3, 0, TS_ENOTFOUND, 0},
};

static void indices(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof index_cases / sizeof index_cases[0]; i++) {
        size_t idx = 99;
        int rc = ts_jptr_index(index_cases[i].seg, strlen(index_cases[i].seg), index_cases[i].size,
                               index_cases[i].allow_end, &idx);
        if (rc != index_cases[i].want)
            fail_msg("index '%s': rc %d want %d", index_cases[i].seg, rc, index_cases[i].want);
        if (rc == 0) assert_int_equal(idx, index_cases[i].idx);
    }
    json_t *doc = json_loads("{\"a\":[10,[20,21]],\"n\":null}", 0, NULL);
    assert_int_equal(json_integer_value(ts_jptr_get_text(doc, "/a/1/1", 6)), 21);
    assert_null(ts_jptr_get_text(doc, "/a/2", 4));
    assert_null(ts_jptr_get_text(doc, "/a/-", 4));
    assert_null(ts_jptr_get_text(doc, "/a/01", 5));
    assert_null(ts_jptr_get_text(doc, "/a/0/x", 6)); /* through a number */
    assert_true(json_is_null(ts_jptr_get_text(doc, "/n", 2)));
    assert_null(ts_jptr_get_text(doc, "/n/x", 4));
    assert_null(ts_jptr_get_text(doc, "a", 1)); /* not a pointer */
    json_decref(doc);
}

static const struct {
    const char *a, *b;
    int prefix, overlap;
} prefix_cases[] = {
    {"", "", 1, 1},         {"", "/a", 1, 1},          {"/a", "", 0, 1},
    {"/a", "/a", 1, 1},     {"/a", "/a/b", 1, 1},      {"/a", "/ab", 0, 0},
    {"/a/b", "/a", 0, 1},   {"/a/b", "/a/c", 0, 0},    {"/a~1b", "/a/b", 0, 0},
    {"/", "//", 1, 1},      {"/", "/a", 0, 0},         {"/a/", "/a/", 1, 1},
};

static void prefixes(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof prefix_cases / sizeof prefix_cases[0]; i++) {
        const char *a = prefix_cases[i].a, *b = prefix_cases[i].b;
        if (ts_jptr_is_prefix(a, strlen(a), b, strlen(b)) != prefix_cases[i].prefix)
            fail_msg("is_prefix('%s', '%s')", a, b);
        if (ts_jptr_overlap(a, strlen(a), b, strlen(b)) != prefix_cases[i].overlap)
            fail_msg("overlap('%s', '%s')", a, b);
    }
    assert_int_equal(ts_jptr_parent_len("/a/b~1c", 7), 2);
    assert_int_equal(ts_jptr_parent_len("/a", 2), 0);
    assert_int_equal(ts_jptr_parent_len("", 0), 0);
    assert_int_equal(ts_jptr_parent_len("//", 2), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc_examples), cmocka_unit_test(parse_table),
        cmocka_unit_test(limits),       cmocka_unit_test(escape_append),
        cmocka_unit_test(indices),      cmocka_unit_test(prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
