/* test_json.c - tables for src/core/json.c: which texts the canonical-JSON
 * scanner takes and refuses, and ts_json_loadb, the tree builder for
 * canonical texts, against json_loadb (same tree, types and key order, or
 * the same refusal). The writer is pinned byte for byte through the packet
 * encoder in tests/sio/test_packet.c and tests/sio/test_packet_raw.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_json.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_canonical(void **state) {
    (void)state;
    static const char *const yes[] = {"0", "-1", "0.1", "1e-7", "1.23e-18", "1.7976931348623157e+308",
                                      "\"\"", "[]", "{}", "[[],{}]", "{\"a\":{\"a\":1}}"};
    static const char *const no[] = {"", " 1", "1 ", "00", "1e7", "0.10", ".5", "+1", "-", "tru",
                                     "nul", "123e-20", "[1,]", "{\"a\"}", "{\"a\":}", "[1]]", "\"\\x\""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!ts_json_is_canonical(ts_slice_str(yes[i]))) fail_msg("refused %s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (ts_json_is_canonical(ts_slice_str(no[i]))) fail_msg("took %s", no[i]);
}

/* ts_json_skip, the walker of texts already checked: a value's length up to
 * what follows it, and the same as the checking scan's on every value. */
static void test_skip(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t want;
    } rows[] = {
        {"0", 1}, {"-12.5e-7", 8}, {"true,", 4}, {"null]", 4}, {"\"\"", 2},
        {"\"a\\\"b\",1", 6}, {"\"\\\\\"x", 4}, {"[]", 2}, {"{}}", 2},
        {"[1,[2,{\"a\":\"]\"}],3],4", 19}, {"{\"k\":{\"}\":[\"{\"]}},", 17},
        {"\"cut", 0}, {"[1,2", 0}, {"12", 2}, {"\"x\":1", 3},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t got = ts_json_skip((const uint8_t *)rows[i].in, strlen(rows[i].in));
        if (got != rows[i].want) fail_msg("%s: %zu, want %zu", rows[i].in, got, rows[i].want);
    }
    static const char *const same[] = {"{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u0001\"}",
                                       "[\"\xc3\xa9\",-0.5,1e+21,[],{}]", "\"\\\\\"", "false"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        const uint8_t *p = (const uint8_t *)same[i];
        size_t n = strlen(same[i]);
        assert_true(ts_json_is_canonical(ts_slice(p, n)));
        assert_int_equal(ts_json_skip(p, n), ts_json_canonical_len(p, n));
    }
}

/* Strings on both sides of the bytewise scan's limit (24 bytes; memchr
 * past it): an escaped quote or a run of one to three backslashes at every
 * position, then more bytes, then the end and what follows. Each is
 * measured as the checking scan measures it, with plain set exactly when
 * there is no escape; cut anywhere, it does not end. */
static void test_skip_strings(void **state) {
    (void)state;
    static const char *const escapes[] = {"", "\\\"", "\\\\", "\\\\\\\"", "\\\\\\\\", "\\n"};
    char s[256];
    for (size_t e = 0; e < sizeof escapes / sizeof escapes[0]; e++) {
        for (size_t at = 0; at < 80; at++) {
            for (size_t tail = 0; tail < 60; tail += 7) {
                size_t n = 0;
                s[n++] = '"';
                memset(s + n, 'a', at), n += at;
                size_t el = strlen(escapes[e]);
                memcpy(s + n, escapes[e], el), n += el;
                memset(s + n, 'b', tail), n += tail;
                s[n++] = '"';
                size_t len = n;
                memcpy(s + n, ",\"x\"]", 6), n += 6;
                const uint8_t *p = (const uint8_t *)s;
                assert_int_equal(ts_json_canonical_len(p, len), len);
                int plain = -1;
                assert_int_equal(ts_json_skip_string(p, n, &plain), len);
                assert_int_equal(plain, el == 0);
                assert_int_equal(ts_json_skip(p, n), len);
                for (size_t cut = 1; cut < len; cut++)
                    assert_int_equal(ts_json_skip_string(p, cut, &plain), 0);
            }
        }
    }
}

/* JSON.stringify's escaping, a byte at a time: the reference for the
 * word-at-a-time scan of ts_json_string. */
static size_t ref_string(char *out, const uint8_t *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                      : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
        if (e) {
            memcpy(out + o, e, 2), o += 2;
        } else if (c < 0x20) {
            memcpy(out + o, "\\u00", 4), o += 4;
            out[o++] = hex[c >> 4], out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    return o;
}

/* ts_json_string and ts_json_utf8_no_nul look at whole words: every byte
 * value at every position of strings 0 to 40 bytes long (the words' edges
 * and the bytes after the last word) gives the bytewise answers. */
static void test_string_words(void **state) {
    (void)state;
    uint8_t in[48];
    char want[48 * 6 + 2];
    for (size_t n = 0; n <= 40; n++) {
        for (size_t at = 0; at < (n ? n : 1); at++) {
            for (unsigned c = 0; c < 256; c++) {
                for (size_t i = 0; i < n; i++) in[i] = (uint8_t)('a' + i % 26);
                if (n) in[at] = (uint8_t)c;
                ts_sbuf_t s = TS_SBUF_INIT;
                ts_sbuf_append(&s, "x", 1); /* not at the buffer's start */
                ts_json_string(&s, (const char *)in, n);
                size_t wl = ref_string(want, in, n);
                assert_int_equal(ts_sbuf_len(&s), wl + 1);
                assert_memory_equal(ts_sbuf_data(&s) + 1, want, wl);
                ts_sbuf_free(&s);
                /* one byte at `at`, ASCII around it: valid unless NUL or a
                 * byte of 0x80 and up standing alone */
                int ok = !n || (c != 0 && c < 0x80);
                assert_int_equal(ts_json_utf8_no_nul(in, n), ok);
                /* the checked writer: the same text when valid, nothing if not */
                ts_sbuf_t k = TS_SBUF_INIT;
                ts_sbuf_append(&k, "x", 1);
                assert_int_equal(ts_json_string_checked(&k, in, n), ok ? 0 : -1);
                assert_int_equal(ts_sbuf_len(&k), ok ? wl + 1 : 1);
                if (ok) assert_memory_equal(ts_sbuf_data(&k) + 1, want, wl);
                ts_sbuf_free(&k);
            }
        }
    }
    /* two-byte sequences across a word's edge */
    static const uint8_t e_acute[2] = {0xc3, 0xa9};
    for (size_t at = 0; at + 2 <= 40; at++) {
        for (size_t i = 0; i < 40; i++) in[i] = 'b';
        memcpy(in + at, e_acute, 2);
        assert_true(ts_json_utf8_no_nul(in, 40));
        ts_sbuf_t k = TS_SBUF_INIT;
        assert_int_equal(ts_json_string_checked(&k, in, 40), 0);
        assert_int_equal(ts_sbuf_len(&k), 42); /* the bytes as they are, quoted */
        assert_memory_equal(ts_sbuf_data(&k) + 1, in, 40);
        in[at + 1] = 'b'; /* cut */
        assert_false(ts_json_utf8_no_nul(in, 40));
        ts_sbuf_truncate(&k, 0);
        assert_int_equal(ts_json_string_checked(&k, in, 40), -1);
        assert_int_equal(ts_sbuf_len(&k), 0);
        ts_sbuf_free(&k);
    }
}

/* ts_json_loadb gives exactly json_loadb's tree (types, values, key
 * order) or its refusal, whichever path it takes; `fast` says whether the
 * row must take the fast path (jansson then never touched the error). */
static void check_loadb(const char *in, size_t len, size_t flags, int fast) {
    json_error_t e1, e2;
    snprintf(e1.text, sizeof e1.text, "untouched");
    json_t *a = ts_json_loadb((const uint8_t *)in, len, flags, &e1);
    json_t *b = json_loadb(in, len, flags, &e2);
    if (!a != !b) fail_msg("%.*s (flags %zx): %s vs jansson %s", (int)len, in, flags,
                           a ? "parsed" : "refused", b ? "parsed" : "refused");
    if (fast != (strcmp(e1.text, "untouched") == 0))
        fail_msg("%.*s (flags %zx): fast path %s", (int)len, in, flags,
                 fast ? "not taken" : "taken");
    if (!a) return;
    char *da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
    char *db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
    if (strcmp(da, db) != 0 || !json_equal(a, b))
        fail_msg("%.*s: fast path built %s, jansson %s", (int)len, in, da, db);
    free(da);
    free(db);
    json_decref(a);
    json_decref(b);
}

static void test_loadb(void **state) {
    (void)state;
    const size_t any = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    static const struct {
        const char *in;
        size_t len;
        int fast;
    } rows[] = {
        /* a /session CONNECT's auth object and a token's claims */
        {S("{\"token\":\"a.b.c\",\"device\":{\"id\":\"d1\",\"fingerprint\":\"fp\","
           "\"type\":\"browser\",\"caps\":[\"push\"]},\"tab\":{\"id\":\"t1\"},\"proto\":2}"), 1},
        {S("{\"sub\":\"u1\",\"exp\":1700003600,\"iat\":1.5,\"aud\":[\"x\",\"y\"]}"), 1},
        {S("[true,false,null,0,-1,1.5,-0.25,1e+21,5e-324,9007199254740992,-9007199254740992]"), 1},
        {S("[\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u001f\\u000b\",\"\xc3\xa9\xf0\x9f\x98\x80\"]"), 1},
        {S("{\"a\":[1,{\"b\":[]},{}],\"c\":{\"d\":null},\"\":\"\"}"), 1},
        {S("{}"), 1},
        {S("[]"), 1},
        /* not canonical: jansson parses them (or refuses) */
        {S("{\"a\": 1}"), 0},
        {S("{\"a\":1,\"a\":2}"), 0},
        {S("[1.0,1E5,-0]"), 0},
        {S("[9007199254740993]"), 0},
        {S("[\"\\u0041\\/\"]"), 0},
        {S("{\"a\\n\":1}"), 0},
        {S("[1,]"), 0},
        {S("[\"\xc3\"]"), 0},
        {S(""), 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        check_loadb(rows[i].in, rows[i].len, any, rows[i].fast);
        check_loadb(rows[i].in, rows[i].len, JSON_REJECT_DUPLICATES, rows[i].fast);
        check_loadb(rows[i].in, rows[i].len, any | JSON_DECODE_INT_AS_REAL, rows[i].fast);
    }
    /* scalars on top only with JSON_DECODE_ANY */
    check_loadb(S("\"s\""), any, 1);
    check_loadb(S("\"s\""), 0, 0);
    check_loadb(S("12"), 0, 0);
    /* a NUL inside a string: built with JSON_ALLOW_NUL, refused (by jansson,
     * with its message) without it */
    check_loadb(S("[\"a\\u0000b\"]"), any, 1);
    check_loadb(S("[\"a\\u0000b\"]"), JSON_DECODE_ANY, 0);
    check_loadb(S("{\"k\":[\"\\u0000\"]}"), 0, 0);
    /* a flag the fast path does not know: jansson */
    check_loadb(S("[1]"), JSON_DISABLE_EOF_CHECK, 0);
    /* long strings with escapes (unescaped on the heap) */
    char big[1200];
    size_t n = 0;
    big[n++] = '[';
    big[n++] = '"';
    for (int i = 0; i < 200; i++) n += (size_t)snprintf(big + n, sizeof big - n, "x\\n");
    big[n++] = '"';
    big[n++] = ']';
    check_loadb(big, n, any, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loadb),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_skip_strings),
        cmocka_unit_test(test_string_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
