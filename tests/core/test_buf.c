/* test_buf.c - refcounted buffers and the in-place builder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refcounts),
        cmocka_unit_test(builder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
