/* test_buf.c - refcounted buffers and the in-place builder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_buf.h"

static void refcounts(void **state) {
    (void)state;
    ts_buf_t *b = ts_buf_from("hello", 5);
    assert_int_equal(b->len, 5);
    assert_memory_equal(b->data, "hello", 5);
    assert_int_equal(b->data[5], 0);
    assert_ptr_equal(ts_buf_ref(b), b);
    assert_int_equal(b->refs, 2);
    ts_buf_unref(b);
    assert_int_equal(b->refs, 1);
    ts_buf_unref(b); /* freed: ASan would report a leak otherwise */
    ts_buf_unref(NULL);
}

static void builder(void **state) {
    (void)state;
    ts_sbuf_t sb = TS_SBUF_INIT;
    assert_int_equal(ts_sbuf_len(&sb), 0);
    assert_string_equal((char *)ts_sbuf_data(&sb), "");
    ts_sbuf_append_str(&sb, "4");
    ts_sbuf_putc(&sb, '2');
    ts_sbuf_printf(&sb, "[\"%s\",%d]", "n", 7);
    for (int i = 0; i < 1000; i++) ts_sbuf_putc(&sb, 'x'); /* forces growth */
    memcpy(ts_sbuf_extend(&sb, 3), "end", 3);
    assert_int_equal(ts_sbuf_len(&sb), 9 + 1000 + 3);
    assert_memory_equal(ts_sbuf_data(&sb), "42[\"n\",7]", 9);
    ts_sbuf_truncate(&sb, 9);
    ts_buf_t *b = ts_sbuf_finish(&sb);
    assert_int_equal(sb.b, NULL);
    assert_int_equal(b->len, 9);
    assert_string_equal((char *)b->data, "42[\"n\",7]");
    assert_int_equal(b->refs, 1);
    ts_buf_unref(b);

    ts_buf_t *empty = ts_sbuf_finish(&sb);
    assert_int_equal(empty->len, 0);
    ts_buf_unref(empty);

    ts_sbuf_append(&sb, "abc", 3);
    ts_sbuf_free(&sb);
    assert_null(sb.b);
}

/* The number writers against printf, at every width and both ends. */
static void numbers(void **state) {
    (void)state;
    static const uint64_t u[] = {0, 1, 9, 10, 99, 100, 4294967295u, 4294967296u,
                                 9007199254740993u, UINT64_MAX};
    static const int64_t i[] = {0, -1, 9, -10, INT64_MAX, INT64_MIN, -9007199254740993};
    char want[32];
    for (size_t k = 0; k < sizeof u / sizeof u[0]; k++) {
        ts_sbuf_t sb = TS_SBUF_INIT;
        ts_sbuf_put_u64(&sb, u[k]);
        snprintf(want, sizeof want, "%llu", (unsigned long long)u[k]);
        assert_string_equal((char *)ts_sbuf_data(&sb), want);
        ts_sbuf_free(&sb);
    }
    for (size_t k = 0; k < sizeof i / sizeof i[0]; k++) {
        ts_sbuf_t sb = TS_SBUF_INIT;
        ts_sbuf_put_i64(&sb, i[k]);
        snprintf(want, sizeof want, "%lld", (long long)i[k]);
        assert_string_equal((char *)ts_sbuf_data(&sb), want);
        ts_sbuf_free(&sb);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refcounts),
        cmocka_unit_test(builder),
        cmocka_unit_test(numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
