/* test_packet.c - tables for src/eio/packet.c: the examples of the Engine.IO
 * v4 spec (docs/engine.io-protocol/v4-current.md) and SOCKETIO.md 1.2/1.4
 * decode to the expected packets and encode back byte for byte; every
 * invalid piece gives TS_EPROTO with a message naming the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "eio/ts_eio_packet.h"

#define assert_ts_err(got, want)                                                             \
    do {                                                                                     \
        int g_ = (got), w_ = (want);                                                         \
        if (g_ != w_) fail_msg("got %s (%d), want %s (%d)", ts_err_name(g_), g_,             \
                               ts_err_name(w_), w_);                                         \
    } while (0)

#define S(lit) lit, sizeof(lit) - 1

typedef struct want_pkt {
    uint8_t type;
    int binary;
    const char *data;
    size_t len;
} want_pkt_t;

/* ---- single packets (one WebSocket text message each) ---- */

static const struct single_case {
    const char *name;
    const char *in;
    size_t inlen;
    int want_err;
    uint8_t type;
    const char *data;
    size_t datalen;
} single_cases[] = {
    {"message", S("4hello"), 0, TS_EIO_MESSAGE, S("hello")},
    {"probe ping", S("2probe"), 0, TS_EIO_PING, S("probe")},
    {"probe pong", S("3probe"), 0, TS_EIO_PONG, S("probe")},
    {"upgrade", S("5"), 0, TS_EIO_UPGRADE, S("")},
    {"noop", S("6"), 0, TS_EIO_NOOP, S("")},
    {"close", S("1"), 0, TS_EIO_CLOSE, S("")},
    {"open",
     S("0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
       "\"pingTimeout\":20000,\"maxPayload\":1000000}"),
     0, TS_EIO_OPEN,
     S("{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
       "\"pingTimeout\":20000,\"maxPayload\":1000000}")},
    {"utf-8 data", S("4\xe2\x82\xac"), 0, TS_EIO_MESSAGE, S("\xe2\x82\xac")},
    {"data with NUL", S("4a\0b"), 0, TS_EIO_MESSAGE, S("a\0b")},
    {"empty", S(""), TS_EPROTO, 0, S("")},
    {"type 7", S("7"), TS_EPROTO, 0, S("")},
    {"type 9 with data", S("9hello"), TS_EPROTO, 0, S("")},
    {"b is payload-only", S("bAQID"), TS_EPROTO, 0, S("")},
    {"letter", S("abc"), TS_EPROTO, 0, S("")},
    {"high byte", S("\xff"), TS_EPROTO, 0, S("")},
};

static void test_single(void **state) {
    (void)state;
    for (size_t i = 0; i < TS_ARRAY_LEN(single_cases); i++) {
        const struct single_case *c = &single_cases[i];
        print_message("case: %s\n", c->name);
        /* exact-size heap copy so ASan sees any overread */
        uint8_t *in = ts_xmemdup(c->in, c->inlen ? c->inlen : 1);
        ts_eio_packet_t pk;
        memset(&pk, 0xaa, sizeof pk);
        int rc = ts_eio_packet_decode(in, c->inlen, &pk);
        assert_ts_err(rc, c->want_err);
        if (rc == 0) {
            assert_int_equal(pk.type, c->type);
            assert_int_equal(pk.binary, 0);
            assert_int_equal(pk.data.len, c->datalen);
            assert_memory_equal(pk.data.p, c->data, c->datalen);
            assert_ptr_equal(pk.data.p, in + 1); /* borrowed from the input */
            /* encode back: a single text packet is the first piece of a payload */
            ts_sbuf_t sb = TS_SBUF_INIT;
            ts_eio_payload_append(&sb, pk.type, 0, pk.data.p, pk.data.len);
            assert_int_equal(ts_sbuf_len(&sb), ts_eio_payload_size(1, 0, pk.data.len));
            ts_buf_t *b = ts_sbuf_finish(&sb);
            assert_int_equal(b->len, c->inlen);
            assert_memory_equal(b->data, c->in, c->inlen);
            ts_buf_unref(b);
        }
        free(in);
    }
}

/* ---- polling payloads ---- */

static const struct payload_case {
    const char *name;
    const char *in;
    size_t inlen;
    size_t npk;          /* packets returned before the end or the error */
    want_pkt_t pk[4];
    int want_err;        /* 0: iteration ends with 0 */
    const char *want_msg; /* fragment of it->errmsg */
    int exact;           /* re-encoding gives back the input byte for byte */
} payload_cases[] = {
    {"spec: text packets", S("4hello\x1e" "2\x1e" "4world"), 3,
     {{TS_EIO_MESSAGE, 0, S("hello")}, {TS_EIO_PING, 0, S("")}, {TS_EIO_MESSAGE, 0, S("world")}},
     0, NULL, 1},
    {"spec: text and binary", S("4hello\x1e" "bAQIDBA=="), 2,
     {{TS_EIO_MESSAGE, 0, S("hello")}, {TS_EIO_MESSAGE, 1, S("\x01\x02\x03\x04")}}, 0, NULL, 1},
    {"digest: binary message alone", S("bAQIDBA=="), 1,
     {{TS_EIO_MESSAGE, 1, S("\x01\x02\x03\x04")}}, 0, NULL, 1},
    {"sio sample: two events", S("42[\"hello\"]\x1e" "42[\"world\"]"), 2,
     {{TS_EIO_MESSAGE, 0, S("2[\"hello\"]")}, {TS_EIO_MESSAGE, 0, S("2[\"world\"]")}}, 0, NULL,
     1},
    {"digest: binary event + attachment",
     S("451-[\"a\",{\"_placeholder\":true,\"num\":0}]\x1e" "bAQID"), 2,
     {{TS_EIO_MESSAGE, 0, S("51-[\"a\",{\"_placeholder\":true,\"num\":0}]")},
      {TS_EIO_MESSAGE, 1, S("\x01\x02\x03")}},
     0, NULL, 1},
    {"digest: noop then close", S("6\x1e" "1"), 2,
     {{TS_EIO_NOOP, 0, S("")}, {TS_EIO_CLOSE, 0, S("")}}, 0, NULL, 1},
    {"sio connect", S("40"), 1, {{TS_EIO_MESSAGE, 0, S("0")}}, 0, NULL, 1},
    {"empty message", S("4"), 1, {{TS_EIO_MESSAGE, 0, S("")}}, 0, NULL, 1},
    {"empty binary message", S("b"), 1, {{TS_EIO_MESSAGE, 1, S("")}}, 0, NULL, 1},
    {"binary 1 and 2 bytes", S("bAQ==\x1e" "bAQI="), 2,
     {{TS_EIO_MESSAGE, 1, S("\x01")}, {TS_EIO_MESSAGE, 1, S("\x01\x02")}}, 0, NULL, 1},
    {"unpadded base64", S("bAQIDBA"), 1, {{TS_EIO_MESSAGE, 1, S("\x01\x02\x03\x04")}}, 0, NULL,
     0},
    {"utf-8 text", S("4\xe2\x82\xac\x1e" "4x"), 2,
     {{TS_EIO_MESSAGE, 0, S("\xe2\x82\xac")}, {TS_EIO_MESSAGE, 0, S("x")}}, 0, NULL, 1},
    {"empty body", S(""), 0, {{0}}, TS_EPROTO, "empty packet", 0},
    {"only a separator", S("\x1e"), 0, {{0}}, TS_EPROTO, "empty packet", 0},
    {"leading separator", S("\x1e" "4a"), 0, {{0}}, TS_EPROTO, "empty packet", 0},
    {"trailing separator", S("4a\x1e"), 1, {{TS_EIO_MESSAGE, 0, S("a")}}, TS_EPROTO,
     "empty packet", 0},
    {"empty piece in the middle", S("4a\x1e\x1e" "4b"), 1, {{TS_EIO_MESSAGE, 0, S("a")}},
     TS_EPROTO, "empty packet", 0},
    {"unknown type 7", S("7"), 0, {{0}}, TS_EPROTO, "unknown packet type '7'", 0},
    {"unknown type after a valid one", S("4a\x1e" "x\x1e" "4b"), 1,
     {{TS_EIO_MESSAGE, 0, S("a")}}, TS_EPROTO, "unknown packet type 'x'", 0},
    {"control byte as type", S("\x01" "abc"), 0, {{0}}, TS_EPROTO, "unknown packet type 0x01",
     0},
    {"base64 of bad length", S("bA"), 0, {{0}}, TS_EPROTO, "invalid base64", 0},
    {"base64 bad char", S("4ok\x1e" "bAQ*D"), 1, {{TS_EIO_MESSAGE, 0, S("ok")}}, TS_EPROTO,
     "invalid base64", 0},
    {"base64url is not base64", S("b-_-_"), 0, {{0}}, TS_EPROTO, "invalid base64", 0},
};

static void check_pkt(const ts_eio_packet_t *pk, const want_pkt_t *w) {
    assert_int_equal(pk->type, w->type);
    assert_int_equal(pk->binary, w->binary);
    assert_int_equal(pk->data.len, w->len);
    assert_memory_equal(pk->data.p, w->data, w->len);
}

static void test_payload(void **state) {
    (void)state;
    for (size_t i = 0; i < TS_ARRAY_LEN(payload_cases); i++) {
        const struct payload_case *c = &payload_cases[i];
        print_message("case: %s\n", c->name);
        uint8_t *body = ts_xmemdup(c->in, c->inlen ? c->inlen : 1);
        ts_eio_payload_iter_t it;
        ts_eio_payload_iter_init(&it, body, c->inlen);
        ts_sbuf_t sb = TS_SBUF_INIT;
        size_t n = 0, predicted = 0;
        ts_eio_packet_t pk;
        int rc;
        while ((rc = ts_eio_payload_next(&it, &pk)) == 1) {
            assert_true(n < c->npk);
            check_pkt(&pk, &c->pk[n]);
            /* packets point into the (mutated) body */
            assert_true(pk.data.len == 0 ||
                        (pk.data.p >= body && pk.data.p + pk.data.len <= body + c->inlen));
            predicted += ts_eio_payload_size(n == 0, pk.binary, pk.data.len);
            ts_eio_payload_append(&sb, pk.type, pk.binary, pk.data.p, pk.data.len);
            n++;
        }
        assert_int_equal(n, c->npk);
        assert_ts_err(rc, c->want_err);
        if (c->want_err) {
            assert_non_null(strstr(it.errmsg, c->want_msg));
            /* the iterator stays failed */
            assert_ts_err(ts_eio_payload_next(&it, &pk), c->want_err);
        } else {
            assert_int_equal(ts_eio_payload_next(&it, &pk), 0); /* stays at the end */
        }
        assert_int_equal(ts_sbuf_len(&sb), predicted);
        ts_buf_t *b = ts_sbuf_finish(&sb);
        if (c->exact) {
            assert_int_equal(b->len, c->inlen);
            assert_memory_equal(b->data, c->in, c->inlen);
        }
        ts_buf_unref(b);
        free(body);
    }
}

/* Splitting a payload at its separators and decoding each piece on its own
 * gives the same packets as decoding the whole body. */
static void test_payload_pieces_independent(void **state) {
    (void)state;
    for (size_t i = 0; i < TS_ARRAY_LEN(payload_cases); i++) {
        const struct payload_case *c = &payload_cases[i];
        print_message("case: %s\n", c->name);
        size_t start = 0, k = 0;
        for (size_t j = 0; j <= c->inlen && k < c->npk; j++) {
            if (j < c->inlen && c->in[j] != TS_EIO_RS) continue;
            size_t plen = j - start;
            uint8_t *piece = ts_xmemdup(c->in + start, plen ? plen : 1);
            ts_eio_payload_iter_t it;
            ts_eio_packet_t pk;
            ts_eio_payload_iter_init(&it, piece, plen);
            assert_int_equal(ts_eio_payload_next(&it, &pk), 1);
            check_pkt(&pk, &c->pk[k]);
            assert_int_equal(ts_eio_payload_next(&it, &pk), 0);
            if (!pk.binary) { /* and a text piece is a valid single packet */
                ts_eio_packet_t one;
                assert_int_equal(ts_eio_packet_decode(piece, plen, &one), 0);
                check_pkt(&one, &c->pk[k]);
            }
            free(piece);
            k++;
            start = j + 1;
        }
        assert_int_equal(k, c->npk);
    }
}

static void test_append_builds_payload(void **state) {
    (void)state;
    ts_sbuf_t sb = TS_SBUF_INIT;
    static const uint8_t bin[] = {0xff, 0x00, 0x1e, 0x34};
    ts_eio_payload_append(&sb, TS_EIO_OPEN, 0, (const uint8_t *)"{}", 2);
    ts_eio_payload_append(&sb, TS_EIO_MESSAGE, 0, (const uint8_t *)"0", 1);
    ts_eio_payload_append(&sb, TS_EIO_MESSAGE, 1, bin, sizeof bin);
    ts_eio_payload_append(&sb, TS_EIO_PING, 0, NULL, 0);
    ts_eio_payload_append(&sb, TS_EIO_MESSAGE, 1, NULL, 0);
    static const char want[] = "0{}\x1e" "40\x1e" "b/wAeNA==\x1e" "2\x1e" "b";
    ts_buf_t *b = ts_sbuf_finish(&sb);
    assert_int_equal(b->len, sizeof want - 1);
    assert_memory_equal(b->data, want, sizeof want - 1);
    assert_int_equal(b->data[b->len], 0);

    /* and it decodes back, binary bytes including a 0x1e intact */
    ts_eio_payload_iter_t it;
    ts_eio_packet_t pk;
    ts_eio_payload_iter_init(&it, b->data, b->len);
    assert_int_equal(ts_eio_payload_next(&it, &pk), 1);
    assert_int_equal(ts_eio_payload_next(&it, &pk), 1);
    assert_int_equal(ts_eio_payload_next(&it, &pk), 1);
    assert_int_equal(pk.binary, 1);
    assert_int_equal(pk.data.len, sizeof bin);
    assert_memory_equal(pk.data.p, bin, sizeof bin);
    assert_int_equal(ts_eio_payload_next(&it, &pk), 1);
    assert_int_equal(pk.type, TS_EIO_PING);
    assert_int_equal(ts_eio_payload_next(&it, &pk), 1);
    assert_int_equal(pk.binary, 1);
    assert_int_equal(pk.data.len, 0);
    assert_int_equal(ts_eio_payload_next(&it, &pk), 0);
    ts_buf_unref(b);
}

static void test_payload_size(void **state) {
    (void)state;
    assert_int_equal(ts_eio_payload_size(1, 0, 0), 1);
    assert_int_equal(ts_eio_payload_size(0, 0, 5), 7);
    assert_int_equal(ts_eio_payload_size(1, 1, 0), 1);
    assert_int_equal(ts_eio_payload_size(1, 1, 1), 5);
    assert_int_equal(ts_eio_payload_size(0, 1, 3), 6);
    assert_int_equal(ts_eio_payload_size(0, 1, 4), 10);
    for (size_t n = 0; n < 64; n++) {
        uint8_t data[64];
        for (int bin = 0; bin <= 1; bin++) {
            /* text data must not contain the separator; binary may hold anything */
            for (size_t j = 0; j < n; j++)
                data[j] = bin ? (uint8_t)(j * 37 + n) : (uint8_t)('a' + (j + n) % 26);
            ts_sbuf_t sb = TS_SBUF_INIT;
            ts_eio_payload_append(&sb, TS_EIO_MESSAGE, bin, data, n);
            assert_int_equal(ts_sbuf_len(&sb), ts_eio_payload_size(1, bin, n));
            size_t before = ts_sbuf_len(&sb);
            ts_eio_payload_append(&sb, TS_EIO_MESSAGE, bin, data, n);
            assert_int_equal(ts_sbuf_len(&sb) - before, ts_eio_payload_size(0, bin, n));
            /* round trip */
            ts_buf_t *b = ts_sbuf_finish(&sb);
            ts_eio_payload_iter_t it;
            ts_eio_packet_t pk;
            ts_eio_payload_iter_init(&it, b->data, b->len);
            for (int k = 0; k < 2; k++) {
                assert_int_equal(ts_eio_payload_next(&it, &pk), 1);
                assert_int_equal(pk.binary, bin);
                assert_int_equal(pk.type, TS_EIO_MESSAGE);
                assert_int_equal(pk.data.len, n);
                if (n) assert_memory_equal(pk.data.p, data, n);
            }
            assert_int_equal(ts_eio_payload_next(&it, &pk), 0);
            ts_buf_unref(b);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_payload_pieces_independent),
        cmocka_unit_test(test_append_builds_payload),
        cmocka_unit_test(test_payload_size),
    };
    return cmocka_run_group_tests_name("eio_packet", tests, NULL, NULL);
}
