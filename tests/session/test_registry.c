/* test_registry.c - a registry entry's data (registry.c): one row per tab,
 * each encoded in both forms; the admin API must read the same object
 * back from either, in the same member order, and the compact form must
 * refuse every truncation of itself without reading past it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_buf.h"
#include "core/ts_json.h"
#include "session/sess_int.h"

#define SID "AbCdEfGhIjKlMnOpQrSt"

static char *dump(json_t *v) {
    assert_non_null(v);
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

static const struct reg_case {
    const char *name;
    const char *address, *user_agent, *caps, *meta; /* caps, meta: JSON or NULL */
    const char *socket;                           /* NULL: SID */
    uint64_t connected_at;
    int rtt_ms;
    int type, proto;
    int compact_size; /* 0: it must fall back to JSON */
    const char *want; /* NULL: not checked beyond both forms agreeing */
} cases[] = {
    {"idle tab", "127.0.0.1", NULL, NULL, NULL, NULL, 1733400000123ull, -1, TS_SESS_DEV_DESKTOP, 2, 28,
     "{\"socket\":\"" SID "\",\"type\":\"desktop\",\"connected_at\":1733400000123,"
     "\"address\":\"127.0.0.1\",\"proto\":2}"},
    {"rtt and user agent", "::1", "Mozilla/5.0 (X11; Linux x86_64)", NULL, NULL, NULL, 5, 0,
     TS_SESS_DEV_BROWSER, 4, 63,
     "{\"socket\":\"" SID "\",\"type\":\"browser\",\"connected_at\":5,\"address\":\"::1\","
     "\"proto\":4,\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64)\",\"rtt_ms\":0}"},
    {"largest rtt that fits", "10.0.0.1", NULL, NULL, NULL, NULL, 1, 65535, TS_SESS_DEV_CLI, 3, 30,
     NULL},
    {"empty user agent", "255.255.255.255", "", NULL, NULL, NULL, 1, -1, TS_SESS_DEV_CLI, 3, 30,
     "{\"socket\":\"" SID "\",\"type\":\"cli\",\"connected_at\":1,"
     "\"address\":\"255.255.255.255\",\"proto\":3,\"user_agent\":\"\"}"},
    /* what is not in the packed forms keeps its text */
    {"socket id of another length", "10.0.0.1", NULL, NULL, NULL, "short-id", 1, -1,
     TS_SESS_DEV_CLI, 3, 22, NULL},
    {"socket id not base64url", "10.0.0.1", NULL, NULL, NULL, "AbCdEfGhIjKlMnOpQr.t", 1, -1,
     TS_SESS_DEV_CLI, 3, 34, NULL},
    {"address not as inet_ntop writes it", "010.0.0.1", NULL, NULL, NULL, NULL, 1, -1,
     TS_SESS_DEV_CLI, 3, 34, "{\"socket\":\"" SID "\",\"type\":\"cli\",\"connected_at\":1,"
     "\"address\":\"010.0.0.1\",\"proto\":3}"},
    {"no address", "", NULL, NULL, NULL, NULL, 1, -1, TS_SESS_DEV_SERVER, 3, 25, NULL},
    {"caps and metadata", "10.0.0.1", "ua", "[\"state\",\"elect\"]",
     "{\"visibility\":\"hidden\",\"network\":{\"downlink\":1.5}}", NULL, 1733400000123ull, 42,
     TS_SESS_DEV_MOBILE, 1, 0,
     "{\"socket\":\"" SID "\",\"type\":\"mobile\",\"connected_at\":1733400000123,"
     "\"address\":\"10.0.0.1\",\"proto\":1,\"caps\":[\"state\",\"elect\"],\"user_agent\":\"ua\","
     "\"rtt_ms\":42,\"visibility\":\"hidden\",\"network\":{\"downlink\":1.5}}"},
    /* metadata replaces a member in its place, in both forms */
    {"metadata names a first member", "10.0.0.1", NULL, NULL,
     "{\"type\":\"server\",\"caps\":1,\"x\":null}", NULL, 7, -1, TS_SESS_DEV_MOBILE, 2, 0,
     "{\"socket\":\"" SID "\",\"type\":\"server\",\"connected_at\":7,\"address\":\"10.0.0.1\","
     "\"proto\":2,\"caps\":1,\"x\":null}"},
    {"metadata only", "10.0.0.1", NULL, NULL, "{}", NULL, 7, -1, TS_SESS_DEV_SERVER, 2, 0, NULL},
    /* what does not fit the compact form: JSON text */
    {"rtt over 16 bits", "10.0.0.1", NULL, NULL, NULL, NULL, 7, 65536, TS_SESS_DEV_CLI, 2, -1, NULL},
    {"clock past 2^48 ms", "10.0.0.1", NULL, NULL, NULL, NULL, 1ull << 48, -1, TS_SESS_DEV_CLI, 2, -1,
     "{\"socket\":\"" SID "\",\"type\":\"cli\",\"connected_at\":281474976710656,"
     "\"address\":\"10.0.0.1\",\"proto\":2}"},
};

static void fill(const struct reg_case *c, sess_reg_data_t *d) {
    *d = (sess_reg_data_t){.socket = c->socket ? c->socket : SID,
                           .address = c->address,
                           .user_agent = c->user_agent,
                           .caps = c->caps ? json_loads(c->caps, 0, NULL) : NULL,
                           .meta = c->meta ? json_loads(c->meta, 0, NULL) : NULL,
                           .connected_at = c->connected_at,
                           .rtt_ms = c->rtt_ms,
                           .type = (uint8_t)c->type,
                           .proto = (uint8_t)c->proto};
}

static void test_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct reg_case *c = &cases[i];
        sess_reg_data_t d;
        fill(c, &d);
        ts_sbuf_t js = TS_SBUF_INIT, cs = TS_SBUF_INIT;
        assert_int_equal(ts_sess__reg_encode(&js, &d, 0), 0);
        assert_int_equal(ts_sess__reg_encode(&cs, &d, 1), 0);
        ts_slice_t jt = ts_slice(ts_sbuf_data(&js), ts_sbuf_len(&js));
        ts_slice_t ct = ts_slice(ts_sbuf_data(&cs), ts_sbuf_len(&cs));
        assert_int_equal(jt.p[0], '{');
        if (c->compact_size < 0) {
            assert_int_equal(ct.p[0], '{'); /* fell back */
        } else {
            assert_int_equal(ct.p[0], 0x01);
            if (c->compact_size) assert_int_equal(ct.len, c->compact_size);
            assert_true(ct.len < jt.len);
        }
        char *from_json = dump(ts_sess__reg_decode(jt));
        char *from_compact = dump(ts_sess__reg_decode(ct));
        assert_string_equal(from_compact, from_json);
        if (c->want) assert_string_equal(from_json, c->want);
        /* every truncation of the compact form is refused, never misread,
         * but one: cut where its [caps, meta] tail starts, it is the tab
         * without them (the store keeps what it was given whole) */
        if (ct.p[0] == 0x01) {
            size_t whole = 0;
            for (size_t n = 0; n < ct.len; n++) {
                json_t *v = ts_sess__reg_decode(ts_slice(ct.p, n));
                if (!v) continue;
                json_decref(v);
                assert_true(c->caps || c->meta);
                assert_int_equal(whole++, 0);
                assert_int_equal(ct.p[n], '[');
            }
        }
        free(from_json);
        free(from_compact);
        ts_sbuf_free(&js);
        ts_sbuf_free(&cs);
        json_decref(d.caps);
        json_decref(d.meta);
    }
}

static void test_unknown_type(void **state) {
    (void)state;
    sess_reg_data_t d = {.socket = SID, .address = "a", .rtt_ms = -1, .type = 99, .proto = 2};
    ts_sbuf_t out = TS_SBUF_INIT;
    assert_int_equal(ts_sess__reg_encode(&out, &d, 1), TS_EINVAL);
    assert_int_equal(ts_sess__reg_encode(&out, &d, 0), TS_EINVAL);
    assert_int_equal(ts_sbuf_len(&out), 0);
    /* stored bytes that are neither form */
    assert_null(ts_sess__reg_decode(ts_slice_str("\x01")));
    assert_null(ts_sess__reg_decode(ts_slice_str("not json")));
    ts_sbuf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_unknown_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
