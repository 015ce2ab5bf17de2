/* test_frame.c - tests for clients/c/src/frame.c and the JSON rendering in
 * proto.c: every masked frame libtabsync writes must come out of a
 * server-role ts_ws_reader (the one tabsyncd uses) byte for byte, whatever
 * the length class and however the bytes are split; and event arguments
 * must read as JavaScript's JSON.stringify would print them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client_int.h"

/* Reads every message out of `wire` through a server-role reader, feeding
 * it in pieces of `step` bytes (0 = all at once), like tabsyncd's conn. */
typedef struct got {
    uint8_t op[8];
    uint8_t *data[8];
    size_t len[8];
    int n;
} got_t;

static int read_all(const uint8_t *wire, size_t n, size_t step, got_t *g) {
    ts_ws_reader_t r;
    ts_ws_reader_init(&r, TS_WS_SERVER, 1 << 20);
    uint8_t *buf = malloc(n + 1);
    size_t have = 0, fed = 0;
    int rc = 0;
    memset(g, 0, sizeof *g);
    while (fed < n || have) {
        size_t add = step ? (n - fed < step ? n - fed : step) : n - fed;
        memcpy(buf + have, wire + fed, add);
        have += add;
        fed += add;
        for (;;) {
            size_t used = 0;
            ts_ws_msg_t m;
            rc = ts_ws_reader_feed(&r, buf, have, &used, &m);
            if (rc < 0) goto out;
            if (rc == 1) {
                g->op[g->n] = m.opcode;
                g->data[g->n] = malloc(m.len + 1);
                memcpy(g->data[g->n], m.data, m.len);
                g->len[g->n++] = m.len;
            }
            memmove(buf, buf + used, have - used);
            have -= used;
            if (rc == 0) break;
        }
        if (add == 0) break;
    }
out:
    free(buf);
    ts_ws_reader_deinit(&r);
    return rc < 0 ? rc : 0;
}

static void got_free(got_t *g) {
    for (int i = 0; i < g->n; i++) free(g->data[i]);
}

static void test_masked_round_trip(void **state) {
    static const size_t lens[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 125, 126, 127, 65535, 65536, 70001};
    uint64_t rng = 42;
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        size_t len = lens[li];
        uint8_t *payload = malloc(len + 1);
        for (size_t i = 0; i < len; i++) payload[i] = (uint8_t)('a' + i % 26); /* valid UTF-8 */
        uint64_t r = ts_client__rand(&rng);
        uint8_t mask[4] = {(uint8_t)r | 1, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
        ts_client__obuf_t o = {0};
        assert_int_equal(ts_client__ws_append(&o, TS_WS_OP_TEXT, payload, len, mask), 0);
        assert_int_equal(o.len, ts_client__ws_frame_size(len));
        assert_int_equal(o.p[0], 0x80 | TS_WS_OP_TEXT); /* FIN, no RSV */
        assert_true(o.p[1] & 0x80);                      /* MASK bit set */
        size_t hl = o.len - len;
        assert_memory_equal(o.p + hl - 4, mask, 4);
        if (len) assert_true(memcmp(o.p + hl, payload, len) != 0); /* really masked */
        size_t steps[] = {0, 1, 3, 7, 4096};
        for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
            if (steps[s] == 1 && len > 70000) continue; /* 70k single-byte feeds: covered by 65536 */
            got_t g;
            assert_int_equal(read_all(o.p, o.len, steps[s], &g), 0);
            assert_int_equal(g.n, 1);
            assert_int_equal(g.op[0], TS_WS_OP_TEXT);
            assert_int_equal(g.len[0], len);
            if (len) assert_memory_equal(g.data[0], payload, len);
            got_free(&g);
        }
        ts_client__obuf_free(&o);
        free(payload);
    }
}

static void test_several_frames_one_buffer(void **state) {
    /* what one batched write carries: pong, text, binary, close */
    ts_client__obuf_t o = {0};
    uint8_t m1[4] = {1, 2, 3, 4}, m2[4] = {0xff, 0, 0xaa, 0x55}, m3[4] = {0, 0, 0, 0};
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof bin; i++) bin[i] = (uint8_t)i;
    uint8_t close_body[2] = {0x03, 0xe8};
    assert_int_equal(ts_client__ws_append(&o, TS_WS_OP_PONG, "x", 1, m1), 0);
    assert_int_equal(ts_client__ws_append(&o, TS_WS_OP_TEXT, "42[\"hi\"]", 8, m2), 0);
    assert_int_equal(ts_client__ws_append(&o, TS_WS_OP_BINARY, bin, sizeof bin, m3), 0);
    assert_int_equal(ts_client__ws_append(&o, TS_WS_OP_CLOSE, close_body, 2, m1), 0);
    for (size_t step = 0; step < 20; step++) {
        got_t g;
        assert_int_equal(read_all(o.p, o.len, step, &g), 0);
        assert_int_equal(g.n, 4);
        assert_int_equal(g.op[0], TS_WS_OP_PONG);
        assert_int_equal(g.op[1], TS_WS_OP_TEXT);
        assert_int_equal(g.len[1], 8);
        assert_memory_equal(g.data[1], "42[\"hi\"]", 8);
        assert_int_equal(g.op[2], TS_WS_OP_BINARY);
        assert_int_equal(g.len[2], sizeof bin);
        assert_memory_equal(g.data[2], bin, sizeof bin);
        assert_int_equal(g.op[3], TS_WS_OP_CLOSE);
        got_free(&g);
    }
    ts_client__obuf_free(&o);
}

static void test_unmasked_is_refused_by_server(void **state) {
    /* the reason clients must mask: a server-role reader rejects plain frames */
    uint8_t hdr[TS_WS_MAX_HEADER + 2];
    size_t h = ts_ws_frame_header(hdr, TS_WS_OP_TEXT, 1, 2, NULL);
    memcpy(hdr + h, "40", 2);
    got_t g;
    assert_int_equal(read_all(hdr, h + 2, 0, &g), TS_EPROTO);
    got_free(&g);
}

static void test_obuf(void **state) {
    ts_client__obuf_t o = {0};
    for (int i = 0; i < 10000; i++) assert_int_equal(ts_client__obuf_append(&o, "abc", 3), 0);
    assert_int_equal(o.len, 30000);
    assert_true(o.cap >= o.len);
    assert_memory_equal(o.p + 29997, "abc", 3);
    /* an impossible size fails cleanly and leaves the buffer as it was */
    assert_int_equal(ts_client__obuf_reserve(&o, SIZE_MAX - 10), TS_ENOMEM);
    assert_int_equal(o.len, 30000);
    ts_client__obuf_free(&o);
    assert_null(o.p);
}

static void test_rand(void **state) {
    uint64_t s = 0; /* a zero seed must not stick at zero */
    uint64_t a = ts_client__rand(&s), b = ts_client__rand(&s);
    assert_true(a != 0 && b != 0 && a != b);
    int seen[256] = {0}, distinct = 0;
    for (int i = 0; i < 4096; i++) {
        uint8_t v = (uint8_t)ts_client__rand(&s);
        if (!seen[v]++) distinct++;
    }
    assert_true(distinct > 240);
}

/* ---- JSON as JavaScript writes it ---- */

static void test_json_text(void **state) {
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"[]", "[]"},
        {"[1, 2.5, -0.1, 1e21, 1e-7, 100]", "[1,2.5,-0.1,1e+21,1e-7,100]"},
        {"[0.1]", "[0.1]"},
        {"[{\"b\":1,\"a\":2,\"1\":3}]", "[{\"1\":3,\"b\":1,\"a\":2}]"},
        {"[\"\\u00e9\\u2028\", \"\\u0001\", \"a/b\"]", "[\"\xc3\xa9\xe2\x80\xa8\",\"\\u0001\",\"a/b\"]"},
        {"[null, true, false, [[]]]", "[null,true,false,[[]]]"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        json_error_t je;
        json_t *v = json_loads(rows[i].in, 0, &je);
        assert_non_null(v);
        char *t = ts_client__json_text(v, 0, NULL);
        assert_non_null(t);
        assert_string_equal(t, rows[i].want);
        free(t);
        json_decref(v);
    }
    /* with attachments the placeholders stay in the text */
    json_t *v = json_loads("[{\"_placeholder\":true,\"num\":0}]", 0, NULL);
    ts_buf_t *b = ts_buf_from("\x01\x02", 2);
    char *t = ts_client__json_text(v, 1, &b);
    assert_non_null(t);
    assert_string_equal(t, "[{\"_placeholder\":true,\"num\":0}]");
    free(t);
    /* a placeholder without its attachment cannot be rendered */
    assert_null(ts_client__json_text(v, 0, NULL));
    ts_buf_unref(b);
    json_decref(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masked_round_trip),
        cmocka_unit_test(test_several_frames_one_buffer),
        cmocka_unit_test(test_unmasked_is_refused_by_server),
        cmocka_unit_test(test_obuf),
        cmocka_unit_test(test_rand),
        cmocka_unit_test(test_json_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
