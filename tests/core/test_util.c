/* test_util.c - base64 (RFC 4648 vectors, in-place decoding, rejects),
 * random ids, and the error table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
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
        cmocka_unit_test(random_ids),
        cmocka_unit_test(error_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
