/* test_util.c - base64 (RFC 4648 vectors, in-place decoding, rejects, the
 * whole alphabet tables), random ids (also across the id pool's refills),
 * bounded string copies and joins, and the error table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "core/ts_slice.h"
#include "core/ts_util.h"

static const struct {
    const char *raw, *b64;
} vectors[] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

static void b64_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char enc[64];
        size_t n = ts_b64_encode((const uint8_t *)vectors[i].raw, strlen(vectors[i].raw), enc);
        assert_int_equal(n, ts_b64_enc_len(strlen(vectors[i].raw)));
        assert_string_equal(enc, vectors[i].b64);
        /* decode in place */
        long d = ts_b64_decode(enc, n, (uint8_t *)enc);
        assert_int_equal(d, (long)strlen(vectors[i].raw));
        assert_memory_equal(enc, vectors[i].raw, (size_t)d);
    }
    uint8_t out[8];
    assert_int_equal(ts_b64_decode("AQID", 4, out), 3); /* the Engine.IO example */
    assert_int_equal(out[0], 1);
    assert_int_equal(out[2], 3);
    assert_int_equal(ts_b64_decode("Zm9vYg", 6, out), 4); /* padding optional */
}

static void b64_rejects(void **state) {
    (void)state;
    uint8_t out[16];
    assert_int_equal(ts_b64_decode("Zm9v!", 5, out), -1);  /* bad character */
    assert_int_equal(ts_b64_decode("Z", 1, out), -1);      /* impossible length */
    assert_int_equal(ts_b64_decode("Zm=v", 4, out), -1);   /* '=' inside */
    assert_int_equal(ts_b64_decode("Zm9v-_", 6, out), -1); /* URL-safe is not standard */
}

static void b64url(void **state) {
    (void)state;
    uint8_t out[16];
    assert_int_equal(ts_b64url_decode("-_8", 3, out), 2); /* 0xfb 0xff */
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(ts_b64url_decode("Zm9vYg", 6, out), 4);
    assert_int_equal(ts_b64url_decode("Zm9vYg==", 8, out), -1); /* no padding in JWTs */
    assert_int_equal(ts_b64url_decode("Zm9vYh", 6, out), -1);   /* non-zero leftover bits */
    assert_int_equal(ts_b64url_decode("+/8", 3, out), -1);      /* standard alphabet */
    assert_int_equal(ts_b64url_decode("Z", 1, out), -1);
    assert_true(ts_b64url_char('-'));
    assert_false(ts_b64url_char('+'));
    /* the encoder: no padding, the URL alphabet, and back through the decoder */
    char enc[32];
    assert_int_equal(ts_b64url_encode((const uint8_t *)"\xfb\xff", 2, enc), 3);
    assert_string_equal(enc, "-_8");
    for (size_t n = 0; n <= 16; n++) {
        uint8_t raw[16], back[16];
        for (size_t i = 0; i < n; i++) raw[i] = (uint8_t)(0xf0 + 7 * i);
        size_t len = ts_b64url_encode(raw, n, enc);
        assert_int_equal(len, ts_b64url_enc_len(n));
        assert_int_equal(ts_b64url_decode(enc, len, back), (long)n);
        assert_memory_equal(back, raw, n);
    }
}

static void b64_alphabets(void **state) {
    (void)state;
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int c = 0; c < 256; c++) {
        const char *u = c ? strchr(url, c) : NULL, *s = c ? strchr(std, c) : NULL;
        assert_int_equal(ts_b64url_char((unsigned char)c), u != NULL);
        /* "cA" decodes to one byte whose top six bits are the value of c */
        char in[2] = {(char)c, 'A'};
        uint8_t out[2];
        long n = ts_b64url_decode(in, 2, out);
        assert_int_equal(n, u ? 1 : -1);
        if (u) assert_int_equal(out[0] >> 2, u - url);
        n = ts_b64_decode(in, 2, out);
        assert_int_equal(n, s ? 1 : -1);
        if (s) assert_int_equal(out[0] >> 2, s - std);
    }
}

static void random_ids(void **state) {
    (void)state;
    char a[21], b[21];
    ts_random_id(a, 20);
    ts_random_id(b, 20);
    assert_int_equal(strlen(a), 20);
    assert_string_not_equal(a, b);
    for (size_t i = 0; i < 20; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a[i]));
    /* through several refills of the pool, ids longer than it included:
     * every character of the alphabet shows up, no two ids are equal */
    static char big[2001], prev[2001];
    int seen[256] = {0};
    for (int r = 0; r < 8; r++) {
        ts_random_id(big, 2000);
        assert_int_equal(strlen(big), 2000);
        assert_string_not_equal(big, prev);
        memcpy(prev, big, sizeof big);
        for (size_t i = 0; i < 2000; i++) seen[(unsigned char)big[i]]++;
    }
    for (const char *p = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"; *p; p++)
        assert_true(seen[(unsigned char)*p] > 0);
}

/* A slice of peer input has no NUL after it: the copy reads its bytes
 * only (under ASan, a read past this exact-size buffer fails the test). */
static void slice_cstr(void **state) {
    (void)state;
    char *src = malloc(5);
    memcpy(src, "hello", 5);
    char d[8];
    ts_slice_cstr(d, sizeof d, ts_slice(src, 5));
    assert_string_equal(d, "hello");
    ts_slice_cstr(d, 4, ts_slice(src, 5)); /* cut at cap - 1 */
    assert_string_equal(d, "hel");
    ts_slice_cstr(d, sizeof d, ts_slice(src, 0));
    assert_string_equal(d, "");
    ts_slice_cstr(d, sizeof d, ts_slice(NULL, 0));
    assert_string_equal(d, "");
    free(src);
}

static void strings(void **state) {
    (void)state;
    char d[8];
    assert_int_equal(ts_strlcpy(d, "abc", sizeof d), 3);
    assert_string_equal(d, "abc");
    assert_int_equal(ts_strlcpy(d, "abcdefghij", sizeof d), 10); /* cut */
    assert_string_equal(d, "abcdefg");
    assert_int_equal(ts_strlcpy(d, "", 1), 0);
    assert_string_equal(d, "");
    const char *parts[] = {"s", "u1", "s1"};
    char r[16];
    assert_int_equal(ts_strjoin(r, sizeof r, '/', parts, 3), 7);
    assert_string_equal(r, "s/u1/s1");
    assert_int_equal(ts_strjoin(r, sizeof r, '/', parts, 1), 1);
    assert_string_equal(r, "s");
    assert_int_equal(ts_strjoin(r, sizeof r, '/', parts, 0), 0);
    assert_string_equal(r, "");
    /* cut at every length: always a prefix of the whole, NUL-terminated */
    for (size_t cap = 1; cap <= 9; cap++) {
        char c[9];
        memset(c, 'x', sizeof c);
        assert_int_equal(ts_strjoin(c, cap, '/', parts, 3), 7);
        assert_int_equal(strlen(c), cap - 1 < 7 ? cap - 1 : 7);
        assert_memory_equal(c, "s/u1/s1", strlen(c));
    }
}

/* Messages that quote peer input become one line of valid UTF-8. */
static void one_line(void **state) {
    (void)state;
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"plain", "plain"},
        {"two\nlines\r\tand\x7f", "two?lines??and?"},
        {"caf\xc3\xa9 \xf0\x9f\x99\x82", "caf\xc3\xa9 \xf0\x9f\x99\x82"}, /* é and an emoji stay */
        {"cut \xf0\x9f\x99", "cut ???"},              /* a character cut by a length limit */
        {"lone \x80 \xc0\xaf \xed\xa0\x80", "lone ? ?? ???"}, /* continuation, overlong, surrogate */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[64];
        ts_strlcpy(buf, rows[i].in, sizeof buf);
        ts_str_one_line(buf);
        assert_string_equal(buf, rows[i].want);
    }
}

static void error_table(void **state) {
    (void)state;
    assert_string_equal(ts_err_name(TS_EPROTO), "TS_EPROTO");
    assert_string_equal(ts_strerror(TS_ETOOBIG), "message exceeds the configured limit");
    assert_string_equal(ts_err_name(0), "OK");
    assert_string_equal(ts_err_name(-104), "ECONNRESET"); /* libuv/errno pass through */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b64_vectors),
        cmocka_unit_test(b64_rejects),
        cmocka_unit_test(b64url),
        cmocka_unit_test(b64_alphabets),
        cmocka_unit_test(random_ids),
        cmocka_unit_test(strings),
        cmocka_unit_test(slice_cstr),
        cmocka_unit_test(one_line),
        cmocka_unit_test(error_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
