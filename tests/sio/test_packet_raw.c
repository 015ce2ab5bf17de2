/* test_packet_raw.c - tables for src/sio/packet_raw.c: which messages the
 * relay fast path takes, and that for every one it takes, the full decoder
 * agrees (same namespace, id, name and values) and the encoder writes each
 * argument back as exactly the bytes that arrived; every row it declines
 * is checked the same way when the full decoder accepts it, so a row can
 * only fail by the fast path being lax, never by it being strict. (The
 * canonical-JSON scanner and tree builder themselves: tests/core/test_json.c.) */
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
#include "core/ts_json.h"
#include "sio/ts_sio_packet.h"

#define S(lit) lit, sizeof(lit) - 1

typedef struct raw_case {
    const char *name;
    const char *in; /* without the Engine.IO '4' */
    size_t len;
    int want;       /* 1: the fast path takes it */
    int full;       /* what the full decoder says: 1 accepts, < 0 its error */
} raw_case_t;

static const raw_case_t cases[] = {
    /* taken */
    {"tsbench publish", S("2[\"to-room\",\"r7\",\"b\",{\"p\":1,\"s\":2,\"t\":12345678901234,"
                          "\"x\":\"xxxx\"}]"), 1, 1},
    {"name only", S("2[\"hi\"]"), 1, 1},
    {"namespace and id", S("2/admin,12[\"foo\",1]"), 1, 1},
    {"root namespace named", S("2/,[\"a\"]"), 1, 1},
    {"every scalar", S("2[\"e\",true,false,null,0,-1,1.5,-0.25,1e+21,5e-324,\"s\"]"), 1, 1},
    {"2^53", S("2[\"e\",9007199254740992,-9007199254740992]"), 1, 1},
    {"nested", S("2[\"e\",{\"a\":[1,{\"b\":[]},{}],\"c\":{\"d\":null}}]"), 1, 1},
    {"canonical escapes", S("2[\"e\",\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0000\\u001f\\u000b\"]"), 1,
     1},
    {"utf-8 kept", S("2[\"\xc3\xa9v\xe2\x82\xac\",\"\xf0\x9f\x98\x80\"]"), 1, 1},
    {"slash kept", S("2[\"e\",\"a/b\",{\"k/\":1}]"), 1, 1},
    {"key like a number but not an index", S("2[\"e\",{\"01\":1,\"-1\":2,\"4294967295\":3}]"), 1,
     1},
    {"sixteen args", S("2[\"e\",1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]"), 1, 1},
    /* valid, but the full decoder's job */
    {"whitespace", S("2[\"e\", 1]"), 0, 1},
    {"escaped slash", S("2[\"e\",\"a\\/b\"]"), 0, 1},
    {"unicode escape of a letter", S("2[\"e\",\"\\u0041\"]"), 0, 1},
    {"upper-case hex", S("2[\"e\",\"\\u001F\"]"), 0, 1},
    {"\\u0008 instead of \\b", S("2[\"e\",\"\\u0008\"]"), 0, 1},
    {"1.0", S("2[\"e\",1.0]"), 0, 1},
    {"1E5", S("2[\"e\",1E5]"), 0, 1},
    {"1e21 without +", S("2[\"e\",1e21]"), 0, 1},
    {"-0", S("2[\"e\",-0]"), 0, 1},
    {"beyond 2^53", S("2[\"e\",9007199254740993]"), 0, 1},
    {"beyond int64", S("2[\"e\",123456789012345678901]"), 0, 1},
    {"index key", S("2[\"e\",{\"b\":1,\"1\":2}]"), 0, 1},
    {"duplicate key", S("2[\"e\",{\"a\":1,\"a\":2}]"), 0, 1},
    {"escape in a key", S("2[\"e\",{\"a\\n\":1}]"), 0, 1},
    {"escape in the name", S("2[\"a\\nb\"]"), 0, 1},
    {"numeric name", S("2[1,2]"), 0, 1},
    {"ack request is fine, binary is not", S("51-[\"e\",{\"_placeholder\":true,\"num\":0}]"), 0,
     0},
    {"seventeen args", S("2[\"e\",1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]"), 0, 1},
    {"no payload", S("2"), 0, 1},
    {"namespace without payload", S("2/admin"), 0, 1},
    {"ack", S("3[\"e\"]"), 0, 1},
    /* invalid: the full decoder's error stays the answer */
    {"reserved name", S("2[\"connect\"]"), 0, TS_EPROTO},
    {"empty array", S("2[]"), 0, TS_EPROTO},
    {"trailing bytes", S("2[\"e\"]x"), 0, TS_EJSON},
    {"raw control character", S("2[\"e\",\"a\x01\"]"), 0, TS_EJSON},
    {"bad utf-8", S("2[\"e\",\"\xc3\"]"), 0, TS_EJSON},
    {"surrogate in utf-8", S("2[\"e\",\"\xed\xa0\x80\"]"), 0, TS_EJSON},
    {"overlong utf-8", S("2[\"e\",\"\xc0\xaf\"]"), 0, TS_EJSON},
    {"lone surrogate escape", S("2[\"e\",\"\\ud800\"]"), 0, TS_EJSON},
    {"unterminated", S("2[\"e\",{\"a\":1}"), 0, TS_EJSON},
    {"leading zero", S("2[\"e\",01]"), 0, TS_EJSON},
    {"bare dot", S("2[\"e\",1.]"), 0, TS_EJSON},
    {"ack id too large", S("299999999999999999999[\"e\"]"), 0, TS_EPROTO},
    {"namespace with NUL", S("2/a\0b,[\"e\"]"), 0, TS_EPROTO},
};

/* The full decoder's view of `in`: returns its result; on 1, *pkt holds it. */
static int full_decode(const uint8_t *in, size_t len, ts_sio_packet_t *pkt) {
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
    int rc = ts_sio_decoder_feed(&d, in, len, 0, pkt);
    ts_sio_decoder_deinit(&d);
    return rc;
}

/* What the encoder writes for one value. */
static ts_buf_t *encode_value(json_t *v) {
    json_t *arr = json_pack("[sO]", "x", v);
    ts_sio_packet_t pkt = {.type = TS_SIO_EVENT, .nsp = "/", .id = TS_SIO_NO_ID, .data = arr};
    ts_sio_encoded_t enc;
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    ts_buf_t *b = ts_buf_ref(enc.msgs[0].buf);
    ts_sio_encoded_clear(&enc);
    json_decref(arr);
    return b;
}

/* A row the fast path took: the full decoder must agree in every respect. */
static void check_agrees(const raw_case_t *c, const ts_sio_raw_event_t *ev) {
    ts_sio_packet_t pkt;
    int rc = full_decode((const uint8_t *)c->in, c->len, &pkt);
    if (rc != 1) fail_msg("%s: the fast path took what the decoder refuses (%d)", c->name, rc);
    assert_int_equal(pkt.type, TS_SIO_EVENT);
    assert_int_equal(pkt.nattach, 0);
    assert_true(ts_slice_eq_str(ev->nsp, pkt.nsp));
    assert_int_equal(ev->id, pkt.id);
    assert_int_equal(json_array_size(pkt.data), 1 + ev->nargs);
    json_t *name = json_array_get(pkt.data, 0);
    assert_true(json_is_string(name));
    assert_int_equal(ev->name.len, json_string_length(name));
    assert_memory_equal(ev->name.p, json_string_value(name), ev->name.len);
    for (size_t i = 0; i < ev->nargs; i++) {
        ts_buf_t *b = encode_value(json_array_get(pkt.data, i + 1));
        /* "42[\"x\"," + text + "]" */
        size_t pre = 7;
        ts_slice_t t = ev->args[i].text;
        if (b->len != pre + t.len + 1 || memcmp(b->data + pre, t.p, t.len) != 0)
            fail_msg("%s: argument %zu encodes as %.*s, arrived as %.*s", c->name, i,
                     (int)b->len, (const char *)b->data, (int)t.len, (const char *)t.p);
        assert_true(ts_json_is_canonical(t));
        ts_buf_unref(b);
    }
    /* and the whole packet encodes back to the message itself (but for a
     * root namespace spelled out, "2/,[...]", which is written "2[...]") */
    if (c->len > 1 && c->in[1] == '/' && ts_slice_eq_str(ev->nsp, "/")) {
        ts_sio_packet_clear(&pkt);
        return;
    }
    ts_sio_encoded_t enc;
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    assert_int_equal(enc.msgs[0].buf->len, c->len + 1);
    assert_memory_equal(enc.msgs[0].buf->data + 1, c->in, c->len);
    ts_sio_encoded_clear(&enc);
    ts_sio_packet_clear(&pkt);
}

static void test_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const raw_case_t *c = &cases[i];
        /* exact-size copy so ASan sees any overread */
        uint8_t *in = malloc(c->len ? c->len : 1);
        memcpy(in, c->in, c->len);
        ts_sio_raw_event_t ev;
        int got = ts_sio_raw_event_parse(in, c->len, &ev);
        if (got != c->want) fail_msg("%s: fast path says %d, want %d", c->name, got, c->want);
        raw_case_t copy = *c;
        copy.in = (const char *)in;
        if (got) check_agrees(&copy, &ev);
        ts_sio_packet_t pkt;
        int full = full_decode(in, c->len, &pkt);
        if (full == 1) ts_sio_packet_clear(&pkt);
        if (full != c->full) fail_msg("%s: full decoder says %d, want %d", c->name, full, c->full);
        /* every prefix: never more lax than the decoder */
        for (size_t n = 0; n < c->len; n++) {
            if (ts_sio_raw_event_parse(in, n, &ev) != 1) continue;
            raw_case_t pre = copy;
            pre.len = n;
            check_agrees(&pre, &ev);
        }
        free(in);
    }
}

static void test_depth(void **state) {
    (void)state;
    for (size_t k = 1; k <= 40; k++) {
        char buf[128];
        size_t n = (size_t)snprintf(buf, sizeof buf, "2[\"e\",");
        for (size_t i = 0; i < k; i++) buf[n++] = '[';
        for (size_t i = 0; i < k; i++) buf[n++] = ']';
        buf[n++] = ']';
        ts_sio_raw_event_t ev;
        int got = ts_sio_raw_event_parse((const uint8_t *)buf, n, &ev);
        if (k <= 30) assert_int_equal(got, 1);
        if (k >= 32) assert_int_equal(got, 0);
        raw_case_t c = {"depth", buf, n, got, 1};
        if (got) check_agrees(&c, &ev);
        ts_sio_packet_t pkt;
        assert_int_equal(full_decode((const uint8_t *)buf, n, &pkt), 1);
        ts_sio_packet_clear(&pkt);
    }
}

static void test_decoder_state(void **state) {
    (void)state;
    static const char ev[] = "2[\"e\",1]";
    ts_sio_raw_event_t out;
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
    assert_int_equal(ts_sio_decoder_feed_raw(&d, (const uint8_t *)ev, sizeof ev - 1, 0, &out), 1);
    assert_int_equal(ts_sio_decoder_feed_raw(&d, (const uint8_t *)ev, sizeof ev - 1, 1, &out), 0);
    /* waiting for an attachment: the next text message is the decoder's error */
    static const char bin[] = "51-[\"e\",{\"_placeholder\":true,\"num\":0}]";
    ts_sio_packet_t pkt;
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)bin, sizeof bin - 1, 0, &pkt), 0);
    assert_int_equal(ts_sio_decoder_feed_raw(&d, (const uint8_t *)ev, sizeof ev - 1, 0, &out), 0);
    ts_sio_decoder_deinit(&d);
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    assert_int_equal(ts_sio_decoder_feed_raw(&d, (const uint8_t *)ev, sizeof ev - 1, 0, &out), 0);
    ts_sio_decoder_deinit(&d);
}

/* ts_sio_encode_raw writes what ts_sio_encode writes for the same values. */
static void test_encode_raw(void **state) {
    (void)state;
    static const struct {
        const char *nsp;
        int64_t id;
        const char *event; /* NULL: an ACK */
        const char *args;  /* a JSON array of the arguments, canonical */
        const char *offset;
        const char *want;
    } rows[] = {
        {"/", TS_SIO_NO_ID, "b", "[{\"p\":1,\"x\":\"y\"}]", NULL, "42[\"b\",{\"p\":1,\"x\":\"y\"}]"},
        {"/", TS_SIO_NO_ID, "b", "[]", NULL, "42[\"b\"]"},
        {"/admin", 7, "q\"\n", "[1,\"s\",null]", NULL, "42/admin,7[\"q\\\"\\n\",1,\"s\",null]"},
        {"/", TS_SIO_NO_ID, "b", "[true]", "abc.12", "42[\"b\",true,\"abc.12\"]"},
        {"/", 12, NULL, "[{\"ok\":true}]", NULL, "4312[{\"ok\":true}]"},
        {"/x", 0, NULL, "[]", NULL, "43/x,0[]"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        json_t *arr = json_loads(rows[r].args, 0, NULL);
        assert_non_null(arr);
        ts_sio_raw_arg_t raw[4];
        char *texts[4];
        size_t n = json_array_size(arr);
        for (size_t i = 0; i < n; i++) {
            texts[i] = json_dumps(json_array_get(arr, i), JSON_COMPACT | JSON_ENCODE_ANY);
            raw[i] = (ts_sio_raw_arg_t){ts_slice_str(texts[i]), NULL};
            assert_true(ts_json_is_canonical(raw[i].text));
        }
        ts_sio_encoded_t got, ref;
        assert_int_equal(ts_sio_encode_raw(rows[r].nsp, rows[r].id, rows[r].event, raw, n,
                                           rows[r].offset, &got),
                         0);
        assert_int_equal(got.n, 1);
        assert_false(got.msgs[0].binary);
        assert_int_equal(got.msgs[0].buf->len, strlen(rows[r].want));
        assert_memory_equal(got.msgs[0].buf->data, rows[r].want, strlen(rows[r].want));
        /* the tree encoder agrees */
        json_t *data = json_array();
        if (rows[r].event) json_array_append_new(data, json_string(rows[r].event));
        json_array_extend(data, arr);
        if (rows[r].offset) json_array_append_new(data, json_string(rows[r].offset));
        ts_sio_packet_t pkt = {.type = rows[r].event ? TS_SIO_EVENT : TS_SIO_ACK,
                               .nsp = (char *)rows[r].nsp, .id = rows[r].id, .data = data};
        assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &ref), 0);
        assert_int_equal(ref.msgs[0].buf->len, got.msgs[0].buf->len);
        assert_memory_equal(ref.msgs[0].buf->data, got.msgs[0].buf->data, got.msgs[0].buf->len);
        ts_sio_encoded_clear(&got);
        ts_sio_encoded_clear(&ref);
        json_decref(data);
        for (size_t i = 0; i < n; i++) free(texts[i]);
        json_decref(arr);
    }
    ts_sio_encoded_t bad;
    assert_int_equal(ts_sio_encode_raw("/a,b", TS_SIO_NO_ID, "e", NULL, 0, NULL, &bad), TS_EINVAL);
    assert_int_equal(ts_sio_encode_raw("x", TS_SIO_NO_ID, "e", NULL, 0, NULL, &bad), TS_EINVAL);
    assert_int_equal(ts_sio_encode_raw("/", -5, "e", NULL, 0, NULL, &bad), TS_EINVAL);
    assert_int_equal(bad.n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_decoder_state),
        cmocka_unit_test(test_encode_raw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
