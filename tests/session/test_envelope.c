/* test_envelope.c - /session envelopes: every rule of ts_sess_envelope_parse
 * as a table row, and the relayed form; every row again through the text
 * path (ts_sess_envelope_parse_raw), which must answer the same and relay
 * the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "core/ts_json.h"
#include "session/ts_sess_envelope.h"
#include "sio/ts_sio_packet.h"

static const struct env_case {
    const char *name, *json;
    int want;             /* 0 or TS_EPROTO */
    const char *why;      /* fragment of the reason */
    int prio, to;         /* expected when valid */
} cases[] = {
    {"minimal", "{\"v\":1,\"type\":\"cart.add\",\"id\":\"a1\"}", 0, NULL, TS_SESS_PRIO_EVENT,
     TS_SESS_TO_SESSION},
    {"all fields", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"cid\":\"c-1\",\"prio\":\"state\","
                   "\"to\":\"device\",\"body\":{\"x\":[1,2]}}",
     0, NULL, TS_SESS_PRIO_STATE, TS_SESS_TO_DEVICE},
    {"to user", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"to\":\"user\"}", 0, NULL,
     TS_SESS_PRIO_EVENT, TS_SESS_TO_USER},
    {"unknown members ignored", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"zz\":1}", 0, NULL,
     TS_SESS_PRIO_EVENT, TS_SESS_TO_SESSION},
    {"telemetry", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"prio\":\"telemetry\"}", 0, NULL,
     TS_SESS_PRIO_TELEMETRY, TS_SESS_TO_SESSION},
    {"array", "[1]", TS_EPROTO, "not an object", 0, 0},
    {"no version", "{\"type\":\"t\",\"id\":\"i\"}", TS_EPROTO, "v (protocol version)", 0, 0},
    {"string version", "{\"v\":\"1\",\"type\":\"t\",\"id\":\"i\"}", TS_EPROTO, "integer", 0, 0},
    {"future version", "{\"v\":9,\"type\":\"t\",\"id\":\"i\"}", TS_EPROTO, "unsupported", 0, 0},
    {"no type", "{\"v\":1,\"id\":\"i\"}", TS_EPROTO, "type must", 0, 0},
    {"empty type", "{\"v\":1,\"type\":\"\",\"id\":\"i\"}", TS_EPROTO, "type must", 0, 0},
    {"type with space", "{\"v\":1,\"type\":\"a b\",\"id\":\"i\"}", TS_EPROTO, "type must", 0, 0},
    {"type too long",
     "{\"v\":1,\"type\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
     "\"id\":\"i\"}",
     TS_EPROTO, "type must", 0, 0},
    {"id number", "{\"v\":1,\"type\":\"t\",\"id\":5}", TS_EPROTO, "id must", 0, 0},
    {"cid object", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"cid\":{}}", TS_EPROTO, "cid must", 0, 0},
    {"seq from client", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"seq\":3}", TS_EPROTO,
     "assigned by the server", 0, 0},
    {"unknown prio", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"prio\":\"urgent\"}", TS_EPROTO,
     "prio must", 0, 0},
    {"security prio", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"prio\":\"security\"}", TS_EPROTO,
     "reserved to the server", 0, 0},
    {"room named", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"to\":\"room:other\"}", TS_EPROTO,
     "rooms cannot be named", 0, 0},
    {"room member", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"room\":\"x\"}", TS_EPROTO,
     "cannot name a room", 0, 0},
    {"session member", "{\"v\":2,\"type\":\"t\",\"id\":\"i\",\"session\":\"other\"}",
     TS_EPROTO, "cannot name a room", 0, 0},
    {"v2 accepted", "{\"v\":2,\"type\":\"t\",\"id\":\"i\"}", 0, NULL, TS_SESS_PRIO_EVENT,
     TS_SESS_TO_SESSION},
    {"scope not string", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"to\":[\"session\"]}", TS_EPROTO,
     "to must", 0, 0},
    {"cid null", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"cid\":null,\"body\":[1,{\"a\":\"\\n\"}]}", 0,
     NULL, TS_SESS_PRIO_EVENT, TS_SESS_TO_SESSION},
    {"real version", "{\"v\":1.5,\"type\":\"t\",\"id\":\"i\"}", TS_EPROTO, "integer", 0, 0},
    {"exponent version", "{\"v\":1e+21,\"type\":\"t\",\"id\":\"i\"}", TS_EPROTO, "integer", 0, 0},
    {"negative version", "{\"v\":-1,\"type\":\"t\",\"id\":\"i\"}", TS_EPROTO, "unsupported", 0, 0},
    {"version null", "{\"v\":null,\"type\":\"t\",\"id\":\"i\"}", TS_EPROTO, "integer", 0, 0},
    {"escaped type", "{\"v\":1,\"type\":\"a\\nb\",\"id\":\"i\"}", TS_EPROTO, "type must", 0, 0},
    {"escaped prio", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"prio\":\"state\\t\"}", TS_EPROTO,
     "prio must", 0, 0},
    {"to then seq", "{\"to\":\"user\",\"v\":1,\"type\":\"t\",\"id\":\"i\",\"seq\":null}", TS_EPROTO,
     "assigned by the server", 0, 0},
    {"socket member", "{\"v\":1,\"type\":\"t\",\"id\":\"i\",\"socket\":1}", TS_EPROTO,
     "cannot name a room", 0, 0},
    {"64-character id", "{\"v\":2,\"type\":\"t\",\"id\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"prio\":\"control\"}",
     0, NULL, TS_SESS_PRIO_CONTROL, TS_SESS_TO_SESSION},
    {"empty object", "{}", TS_EPROTO, "v (protocol version)", 0, 0},
    {"v3 with client and mut", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"client\":\"cl-1\",\"mut\":42}",
     0, NULL, TS_SESS_PRIO_EVENT, TS_SESS_TO_SESSION},
    {"mut 2^53-1", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"mut\":9007199254740991}", 0, NULL,
     TS_SESS_PRIO_EVENT, TS_SESS_TO_SESSION},
    {"mut 2^53", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"mut\":9007199254740992}", TS_EPROTO,
     "mut must", 0, 0},
    {"mut zero", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"mut\":0}", TS_EPROTO, "mut must", 0, 0},
    {"mut negative", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"mut\":-4}", TS_EPROTO, "mut must", 0,
     0},
    {"mut real", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"mut\":1.5}", TS_EPROTO, "mut must", 0, 0},
    {"mut string", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"mut\":\"4\"}", TS_EPROTO, "mut must", 0,
     0},
    {"client number", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"client\":7}", TS_EPROTO,
     "client must", 0, 0},
    {"client null", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"client\":null}", 0, NULL,
     TS_SESS_PRIO_EVENT, TS_SESS_TO_SESSION},
    {"client with space", "{\"v\":3,\"type\":\"t\",\"id\":\"i\",\"client\":\"a b\"}", TS_EPROTO,
     "client must", 0, 0},
    {"v5", "{\"v\":5,\"type\":\"t\",\"id\":\"i\"}", TS_EPROTO, "accepts v1 to v4", 0, 0},
    {"string", "\"x\"", TS_EPROTO, "not an object", 0, 0},
};

/* The relayed envelope as the tree encoder writes it (JSON.stringify's form). */
static char *stringify(json_t *v) {
    json_t *arr = json_pack("[sO]", "x", v);
    ts_sio_packet_t pkt = {.type = TS_SIO_EVENT, .nsp = "/", .id = TS_SIO_NO_ID, .data = arr};
    ts_sio_encoded_t enc;
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    const ts_buf_t *b = enc.msgs[0].buf; /* 42["x",<value>] */
    char *text = strndup((const char *)b->data + 7, b->len - 8);
    ts_sio_encoded_clear(&enc);
    json_decref(arr);
    return text;
}

/* The text path agrees with the tree path on row `c`. */
static void check_raw(const struct env_case *c, json_t *in, int rc, const char *why,
                      const ts_sess_envelope_t *e) {
    ts_slice_t text = ts_slice_str(c->json);
    assert_true(ts_json_is_canonical(text));
    ts_sess_envelope_raw_t r;
    char rwhy[128] = "";
    int rrc = ts_sess_envelope_parse_raw(text, &r, rwhy, sizeof rwhy);
    if (rrc != rc) fail_msg("row '%s': text path rc %d, tree path %d", c->name, rrc, rc);
    if (rc != 0) {
        assert_string_equal(rwhy, why);
        return;
    }
    assert_int_equal(r.v, e->v);
    assert_int_equal(r.prio, e->prio);
    assert_int_equal(r.to, e->to);
    assert_int_equal(r.mut, e->mut);
    assert_int_equal(r.client.len, e->client ? strlen(e->client) : 0);
    if (e->client) assert_memory_equal(r.client.p, e->client, r.client.len);
    static const char *const ids[][3] = {{"u1", "d1", "t1"}, {"u\"q", "d/\n", "t\u00e9"}};
    for (size_t k = 0; k < 2; k++) {
        json_t *tree = ts_sess_envelope_relay(e, ids[k][0], ids[k][1], ids[k][2]);
        char *want = stringify(tree);
        ts_sbuf_t got = TS_SBUF_INIT;
        ts_sess_envelope_relay_raw(&r, ids[k][0], ids[k][1], ids[k][2], &got);
        if (strcmp((const char *)ts_sbuf_data(&got), want) != 0)
            fail_msg("row '%s': text relay\n  %s\ntree relay\n  %s", c->name,
                     (const char *)ts_sbuf_data(&got), want);
        ts_sbuf_free(&got);
        /* with the sender's end written once (what a publishing tab keeps) */
        ts_buf_t *tail = ts_sess_envelope_from_tail(ids[k][0], ids[k][1], ids[k][2]);
        ts_sbuf_t got2 = TS_SBUF_INIT;
        ts_sess_envelope_relay_raw_tail(&r, ts_buf_slice(tail), &got2);
        if (strcmp((const char *)ts_sbuf_data(&got2), want) != 0)
            fail_msg("row '%s': text relay with the kept end\n  %s\ntree relay\n  %s", c->name,
                     (const char *)ts_sbuf_data(&got2), want);
        ts_sbuf_free(&got2);
        ts_buf_unref(tail);
        free(want);
        json_decref(tree);
    }
    (void)in;
}

static void table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct env_case *c = &cases[i];
        json_t *in = json_loads(c->json, JSON_DECODE_ANY, NULL);
        assert_non_null(in);
        ts_sess_envelope_t e;
        char why[128] = "";
        int rc = ts_sess_envelope_parse(in, &e, why, sizeof why);
        if (rc != c->want) fail_msg("row '%s': rc %d, want %d (%s)", c->name, rc, c->want, why);
        if (c->why && !strstr(why, c->why))
            fail_msg("row '%s': reason '%s' lacks '%s'", c->name, why, c->why);
        if (rc == 0) {
            assert_int_equal(e.prio, c->prio);
            assert_int_equal(e.to, c->to);
            assert_non_null(e.body);
        }
        check_raw(c, in, rc, why, &e);
        json_decref(in);
    }
}

static void relay_form(void **state) {
    (void)state;
    json_t *in = json_loads("{\"v\":1,\"type\":\"cart.add\",\"id\":\"a1\",\"cid\":\"c9\","
                            "\"body\":{\"sku\":\"X\"},\"zz\":true}",
                            0, NULL);
    ts_sess_envelope_t e;
    char why[128];
    assert_int_equal(ts_sess_envelope_parse(in, &e, why, sizeof why), 0);
    json_t *out = ts_sess_envelope_relay(&e, "u1", "d1", "t1");
    char *text = json_dumps(out, JSON_COMPACT);
    assert_string_equal(text, "{\"v\":1,\"type\":\"cart.add\",\"id\":\"a1\",\"cid\":\"c9\","
                              "\"prio\":\"event\",\"to\":\"session\",\"body\":{\"sku\":\"X\"},"
                              "\"from\":{\"user\":\"u1\",\"device\":\"d1\",\"tab\":\"t1\"}}");
    free(text);
    json_decref(out);
    json_decref(in);
}

static void raw_needs_canonical(void **state) {
    (void)state;
    static const char *const texts[] = {"{\"v\": 1}", "{\"v\":1,\"v\":2}", "", "{\"1\":2}",
                                        "{\"v\":1.0}"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ts_sess_envelope_raw_t r;
        char why[64];
        assert_int_equal(ts_sess_envelope_parse_raw(ts_slice_str(texts[i]), &r, why, sizeof why),
                         TS_EINVAL);
    }
}

/* Recovery offsets: what the writer gives reads back; the reader refuses
 * everything else (a table of near misses). */
static void offsets(void **state) {
    (void)state;
    static const uint64_t seqs[] = {0, 1, 9, 10, 12345, UINT64_MAX};
    static const uint64_t epochs[] = {0, 1, 0x0123456789abcdefULL, UINT64_MAX};
    for (size_t i = 0; i < sizeof seqs / sizeof *seqs; i++)
        for (size_t j = 0; j < sizeof epochs / sizeof *epochs; j++) {
            char out[TS_SESS_OFFSET_MAX];
            size_t n = ts_sess_offset_format(out, epochs[j], seqs[i]);
            assert_int_equal(n, strlen(out));
            assert_true(n < TS_SESS_OFFSET_MAX);
            uint64_t e = 1, q = 1;
            assert_int_equal(ts_sess_offset_parse(ts_slice(out, n), &e, &q), 0);
            assert_true(e == epochs[j] && q == seqs[i]);
        }
    uint64_t e, q;
    assert_int_equal(ts_sess_offset_parse(ts_slice_str("h0123456789ABCDEF.7"), &e, &q), 0);
    assert_true(e == 0x0123456789abcdefULL && q == 7);
    static const char *const bad[] = {
        "",                          "h",
        "h0123456789abcdef",         "h0123456789abcdef.",
        "h0123456789abcde.1",        "h0123456789abcdef0.1",
        "x0123456789abcdef.1",       "h0123456789abcdeg.1",
        "h0123456789abcdef,1",       "h0123456789abcdef.01",
        "h0123456789abcdef.-1",      "h0123456789abcdef.+1",
        "h0123456789abcdef.1 ",      "h0123456789abcdef.1a",
        "h0123456789abcdef.18446744073709551616", /* 2^64 */
        "h0123456789abcdef.123456789012345678901",
        "h0\02323456789abcdef.1", /* 0x13: not a digit, but '3' with bit 5 cleared (the fuzzer's find) */
        "h0123456789abcdeG.1",       "h0123456789abcde@.1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(ts_sess_offset_parse(ts_slice_str(bad[i]), &e, &q), TS_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(relay_form),
        cmocka_unit_test(raw_needs_canonical),
        cmocka_unit_test(offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
