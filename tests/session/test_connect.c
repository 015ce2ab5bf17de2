/* test_connect.c - the /session CONNECT auth payload: one row per payload,
 * accepted ones with the fields they must yield, refused ones with their
 * reason, field and a message fragment; every payload reason has a row. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "session/ts_sess_connect.h"

#define TOK "\"token\":\"eyJhbGciOiJIUzI1NiJ9.e30.sig\""
#define DEV "\"device\":{\"id\":\"laptop-1\",\"fingerprint\":\"fp-laptop-1\",\"type\":\"browser\"}"
#define TAB "\"tab\":{\"id\":\"tab-1\"}"
#define PROTO "\"proto\":2"
#define GOOD TOK "," DEV "," TAB "," PROTO
#define O(...) "{" __VA_ARGS__ "}"
#define X64 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

#define OK_ TS_SESS_R_OK
/* A refused payload: only what the refusal must say. */
#define R(name_, json_, want_, field_, frag_)                                                    \
    { .name = name_, .json = json_, .want = want_, .field = field_, .fragment = frag_ }
static const struct conn_case {
    const char *name;
    const char *json; /* NULL: a C NULL payload */
    ts_sess_reason_t want;
    const char *field;
    const char *fragment;
    /* for accepted rows */
    const char *device_id, *fingerprint, *tab_id;
    int type, proto, n_caps;
} cases[] = {
    {"minimal", O(GOOD), OK_, NULL, NULL, "laptop-1", "fp-laptop-1", "tab-1", TS_SESS_DEV_BROWSER,
     2, 0},
    {"previous proto", O(TOK "," DEV "," TAB ",\"proto\":1"), OK_, NULL, NULL, "laptop-1",
     "fp-laptop-1", "tab-1", TS_SESS_DEV_BROWSER, 1, 0},
    {"every device type: mobile",
     O(TOK ",\"device\":{\"id\":\"p\",\"fingerprint\":\"f\",\"type\":\"mobile\"}," TAB "," PROTO),
     OK_, NULL, NULL, "p", "f", "tab-1", TS_SESS_DEV_MOBILE, 2, 0},
    {"desktop", O(TOK ",\"device\":{\"id\":\"p\",\"fingerprint\":\"f\",\"type\":\"desktop\"}," TAB
                  "," PROTO),
     OK_, NULL, NULL, "p", "f", "tab-1", TS_SESS_DEV_DESKTOP, 2, 0},
    {"server", O(TOK ",\"device\":{\"id\":\"p\",\"fingerprint\":\"f\",\"type\":\"server\"}," TAB
                 "," PROTO),
     OK_, NULL, NULL, "p", "f", "tab-1", TS_SESS_DEV_SERVER, 2, 0},
    {"cli", O(TOK ",\"device\":{\"id\":\"p\",\"fingerprint\":\"f\",\"type\":\"cli\"}," TAB
              "," PROTO),
     OK_, NULL, NULL, "p", "f", "tab-1", TS_SESS_DEV_CLI, 2, 0},
    {"caps", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":\"browser\","
                   "\"caps\":[\"idb\",\"sw\",\"leader.v1\"]}," TAB "," PROTO),
     OK_, NULL, NULL, "d", "f", "tab-1", TS_SESS_DEV_BROWSER, 2, 3},
    {"empty caps", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":\"browser\","
                         "\"caps\":[]}," TAB "," PROTO),
     OK_, NULL, NULL, "d", "f", "tab-1", TS_SESS_DEV_BROWSER, 2, 0},
    {"recovery fields from socket.io-client", O(GOOD ",\"pid\":\"Zk3x\",\"offset\":\"MzQ1\""), OK_,
     NULL, NULL, "laptop-1", "fp-laptop-1", "tab-1", TS_SESS_DEV_BROWSER, 2, 0},
    {"fingerprint with unicode and spaces",
     O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"Mozilla/5.0 (X11) \\u00e9 1920x1080\","
           "\"type\":\"browser\"}," TAB "," PROTO),
     OK_, NULL, NULL, "d", "Mozilla/5.0 (X11) \xc3\xa9 1920x1080", "tab-1", TS_SESS_DEV_BROWSER,
     2, 0},
    {"keys in any order", O(PROTO "," TAB "," DEV "," TOK), OK_, NULL, NULL, "laptop-1",
     "fp-laptop-1", "tab-1", TS_SESS_DEV_BROWSER, 2, 0},
    {"ids of 128 bytes",
     O(TOK ",\"device\":{\"id\":\"" X64 X64 "\",\"fingerprint\":\"f\",\"type\":\"cli\"},"
           "\"tab\":{\"id\":\"" X64 X64 "\"}," PROTO),
     OK_, NULL, NULL, X64 X64, "f", X64 X64, TS_SESS_DEV_CLI, 2, 0},

    /* the object itself */
    R("C NULL", NULL, TS_SESS_R_AUTH_NOT_OBJECT, "", "missing"),
    R("array", "[1]", TS_SESS_R_AUTH_NOT_OBJECT, "", "is an array; expected an object"),
    R("string", "\"token\"", TS_SESS_R_AUTH_NOT_OBJECT, "", "is a string"),
    R("null", "null", TS_SESS_R_AUTH_NOT_OBJECT, "", "is null"),
    R("empty object (no auth sent)", "{}", TS_SESS_R_AUTH_MISSING_FIELD, "token",
     "auth payload has no \"token\""),

    /* unknown fields */
    R("unknown top-level field", O(GOOD ",\"room\":\"s2\""), TS_SESS_R_AUTH_UNKNOWN_FIELD, "room",
     "\"room\" is not known"),
    R("a client naming its session", O(GOOD ",\"sid\":\"other\""), TS_SESS_R_AUTH_UNKNOWN_FIELD,
     "sid", NULL),
    R("unknown device field", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":"
                                   "\"cli\",\"user\":\"bob\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_UNKNOWN_FIELD, "device.user", NULL),
    R("unknown tab field", O(TOK "," DEV ",\"tab\":{\"id\":\"t\",\"session\":\"s2\"}," PROTO),
     TS_SESS_R_AUTH_UNKNOWN_FIELD, "tab.session", NULL),
    R("unknown field with odd characters", O(GOOD ",\"a b\\\"c\":1"), TS_SESS_R_AUTH_UNKNOWN_FIELD,
     "a?b?c", NULL),

    /* token */
    R("token missing", O(DEV "," TAB "," PROTO), TS_SESS_R_AUTH_MISSING_FIELD, "token", NULL),
    R("token a number", O("\"token\":42," DEV "," TAB "," PROTO), TS_SESS_R_AUTH_WRONG_TYPE,
     "token", "\"token\" is an integer; expected a string"),
    R("token null", O("\"token\":null," DEV "," TAB "," PROTO), TS_SESS_R_AUTH_WRONG_TYPE, "token",
     NULL),
    R("token empty", O("\"token\":\"\"," DEV "," TAB "," PROTO), TS_SESS_R_AUTH_EMPTY_FIELD,
     "token", NULL),
    /* token too large: built in the test (8193 bytes) */

    /* device */
    R("device missing", O(TOK "," TAB "," PROTO), TS_SESS_R_AUTH_MISSING_FIELD, "device", NULL),
    R("device a string", O(TOK ",\"device\":\"laptop-1\"," TAB "," PROTO),
     TS_SESS_R_AUTH_WRONG_TYPE, "device", "expected an object"),
    R("device.id missing", O(TOK ",\"device\":{\"fingerprint\":\"f\",\"type\":\"cli\"}," TAB
                            "," PROTO),
     TS_SESS_R_AUTH_MISSING_FIELD, "device.id", NULL),
    R("device.id a number", O(TOK ",\"device\":{\"id\":1,\"fingerprint\":\"f\",\"type\":\"cli\"},"
                             TAB "," PROTO),
     TS_SESS_R_AUTH_WRONG_TYPE, "device.id", NULL),
    R("device.id empty", O(TOK ",\"device\":{\"id\":\"\",\"fingerprint\":\"f\",\"type\":\"cli\"},"
                          TAB "," PROTO),
     TS_SESS_R_AUTH_EMPTY_FIELD, "device.id", NULL),
    R("device.id 129 bytes",
     O(TOK ",\"device\":{\"id\":\"" X64 X64 "x\",\"fingerprint\":\"f\",\"type\":\"cli\"}," TAB
           "," PROTO),
     TS_SESS_R_AUTH_FIELD_TOO_LONG, "device.id", "129 bytes; at most 128"),
    R("device.id with a slash", O(TOK ",\"device\":{\"id\":\"a/b\",\"fingerprint\":\"f\",\"type\":"
                                     "\"cli\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_BAD_CHARACTERS, "device.id", "A-Z a-z 0-9 . _ : @ -"),
    R("device.id with a NUL", O(TOK ",\"device\":{\"id\":\"a\\u0000b\",\"fingerprint\":\"f\","
                                   "\"type\":\"cli\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_BAD_CHARACTERS, "device.id", NULL),
    R("fingerprint missing", O(TOK ",\"device\":{\"id\":\"d\",\"type\":\"cli\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_MISSING_FIELD, "device.fingerprint", NULL),
    R("fingerprint an object", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":{},\"type\":"
                                    "\"cli\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_WRONG_TYPE, "device.fingerprint", NULL),
    R("fingerprint empty", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"\",\"type\":\"cli\"},"
                            TAB "," PROTO),
     TS_SESS_R_AUTH_EMPTY_FIELD, "device.fingerprint", NULL),
    R("fingerprint with a newline", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"a\\nb\","
                                         "\"type\":\"cli\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_BAD_CHARACTERS, "device.fingerprint", "control characters"),
    R("fingerprint with a NUL", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"a\\u0000b\","
                                     "\"type\":\"cli\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_BAD_CHARACTERS, "device.fingerprint", NULL),
    /* fingerprint of 512 / 513 bytes: built in the test */
    R("type missing", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_MISSING_FIELD, "device.type", NULL),
    R("type a number", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":3}," TAB
                        "," PROTO),
     TS_SESS_R_AUTH_WRONG_TYPE, "device.type", NULL),
    R("type unknown", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":\"tv\"},"
                       TAB "," PROTO),
     TS_SESS_R_AUTH_UNKNOWN_DEVICE_TYPE, "device.type", "browser, mobile, desktop, server or cli"),
    R("type in capitals", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":"
                               "\"Browser\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_UNKNOWN_DEVICE_TYPE, "device.type", NULL),
    R("type with a NUL suffix", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":"
                                     "\"cli\\u0000x\"}," TAB "," PROTO),
     TS_SESS_R_AUTH_UNKNOWN_DEVICE_TYPE, "device.type", NULL),
    R("caps an object", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":\"cli\","
                             "\"caps\":{}}," TAB "," PROTO),
     TS_SESS_R_AUTH_WRONG_TYPE, "device.caps", "expected an array of strings"),
    R("caps with a number", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":\"cli\","
                                 "\"caps\":[\"a\",2]}," TAB "," PROTO),
     TS_SESS_R_AUTH_WRONG_TYPE, "device.caps[1]", NULL),
    R("caps with an empty string", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":"
                                        "\"cli\",\"caps\":[\"\"]}," TAB "," PROTO),
     TS_SESS_R_AUTH_EMPTY_FIELD, "device.caps[0]", NULL),
    R("cap of 33 bytes", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":\"cli\","
                              "\"caps\":[\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]}," TAB "," PROTO),
     TS_SESS_R_AUTH_FIELD_TOO_LONG, "device.caps[0]", "33 bytes; at most 32"),
    R("cap with a space", O(TOK ",\"device\":{\"id\":\"d\",\"fingerprint\":\"f\",\"type\":\"cli\","
                               "\"caps\":[\"ok\",\"a b\"]}," TAB "," PROTO),
     TS_SESS_R_AUTH_BAD_CHARACTERS, "device.caps[1]", NULL),
    /* 32 / 33 caps: built in the test */

    /* tab */
    R("tab missing", O(TOK "," DEV "," PROTO), TS_SESS_R_AUTH_MISSING_FIELD, "tab", NULL),
    R("tab an array", O(TOK "," DEV ",\"tab\":[]," PROTO), TS_SESS_R_AUTH_WRONG_TYPE, "tab", NULL),
    R("tab.id missing", O(TOK "," DEV ",\"tab\":{}," PROTO), TS_SESS_R_AUTH_MISSING_FIELD, "tab.id",
     NULL),
    R("tab.id a boolean", O(TOK "," DEV ",\"tab\":{\"id\":true}," PROTO), TS_SESS_R_AUTH_WRONG_TYPE,
     "tab.id", "is a boolean"),
    R("tab.id empty", O(TOK "," DEV ",\"tab\":{\"id\":\"\"}," PROTO), TS_SESS_R_AUTH_EMPTY_FIELD,
     "tab.id", NULL),
    R("tab.id with a quote", O(TOK "," DEV ",\"tab\":{\"id\":\"a\\\"b\"}," PROTO),
     TS_SESS_R_AUTH_BAD_CHARACTERS, "tab.id", NULL),
    R("tab.id 129 bytes", O(TOK "," DEV ",\"tab\":{\"id\":\"" X64 X64 "y\"}," PROTO),
     TS_SESS_R_AUTH_FIELD_TOO_LONG, "tab.id", NULL),

    /* proto */
    R("proto missing", O(TOK "," DEV "," TAB), TS_SESS_R_AUTH_MISSING_FIELD, "proto", NULL),
    R("proto a string", O(TOK "," DEV "," TAB ",\"proto\":\"2\""), TS_SESS_R_AUTH_WRONG_TYPE,
     "proto", "expected an integer"),
    R("proto a real", O(TOK "," DEV "," TAB ",\"proto\":2.0"), TS_SESS_R_AUTH_WRONG_TYPE, "proto",
     NULL),
    R("proto 0", O(TOK "," DEV "," TAB ",\"proto\":0"), TS_SESS_R_AUTH_UNSUPPORTED_PROTO, "proto",
     "protocol version 0 is not supported (this server speaks 4 and accepts 1..4)"),
    R("proto 5 (a newer client)", O(TOK "," DEV "," TAB ",\"proto\":5"),
     TS_SESS_R_AUTH_UNSUPPORTED_PROTO, "proto", NULL),
    R("proto negative", O(TOK "," DEV "," TAB ",\"proto\":-1"), TS_SESS_R_AUTH_UNSUPPORTED_PROTO,
     "proto", NULL),
    R("proto huge", O(TOK "," DEV "," TAB ",\"proto\":9223372036854775807"),
     TS_SESS_R_AUTH_UNSUPPORTED_PROTO, "proto", NULL),

    /* elections (protocol 4) */
#define P4 TOK "," DEV "," TAB ",\"proto\":4"
    R("elect before protocol 4", O(GOOD ",\"elect\":{}"), TS_SESS_R_AUTH_BAD_ELECT, "elect",
      "needs protocol 4"),
    R("elect an array", O(P4 ",\"elect\":[\"session\"]"), TS_SESS_R_AUTH_BAD_ELECT, "elect",
      "expected an object"),
    R("elect unknown member", O(P4 ",\"elect\":{\"scope\":[]}"), TS_SESS_R_AUTH_UNKNOWN_FIELD,
      "elect.scope", NULL),
    R("elect scopes a string", O(P4 ",\"elect\":{\"scopes\":\"session\"}"),
      TS_SESS_R_AUTH_BAD_ELECT, "elect.scopes", "an array of at most 2"),
    R("elect scopes unknown", O(P4 ",\"elect\":{\"scopes\":[\"tab\"]}"),
      TS_SESS_R_AUTH_BAD_ELECT, "elect.scopes", "elect.scopes[0]"),
    R("elect scopes twice", O(P4 ",\"elect\":{\"scopes\":[\"device\",\"device\"]}"),
      TS_SESS_R_AUTH_BAD_ELECT, "elect.scopes", "each at most once"),
    R("elect scopes three", O(P4 ",\"elect\":{\"scopes\":[\"device\",\"session\",\"x\"]}"),
      TS_SESS_R_AUTH_BAD_ELECT, "elect.scopes", NULL),
    R("elect observer a number", O(P4 ",\"elect\":{\"observer\":1}"), TS_SESS_R_AUTH_BAD_ELECT,
      "observer", "expected true or false"),
    R("elect scores a string", O(P4 ",\"elect\":{\"scores\":\"yes\"}"),
      TS_SESS_R_AUTH_BAD_ELECT, "scores", NULL),

    /* recovery fields */
    R("pid a number", O(GOOD ",\"pid\":5"), TS_SESS_R_AUTH_WRONG_TYPE, "pid", NULL),
    R("offset an object", O(GOOD ",\"offset\":{}"), TS_SESS_R_AUTH_WRONG_TYPE, "offset", NULL),
};

static json_t *load(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) fail_msg("bad test JSON (%s): %s", e.text, text);
    return j;
}

static void run_case(const struct conn_case *k, json_t *j, int seen[]) {
    ts_sess_connect_t c;
    ts_sess_deny_t d;
    memset(&d, 0x5a, sizeof d);
    int rc = ts_sess_connect_parse(j, &c, &d);
    seen[k->want]++;
    if (k->want == TS_SESS_R_OK) {
        if (rc != 0) fail_msg("%s: refused (%s, %s): %s", k->name, ts_sess_reason_name(d.reason),
                              d.field, d.msg);
        assert_string_equal(c.device_id, k->device_id);
        assert_string_equal(c.fingerprint, k->fingerprint);
        assert_int_equal(c.fingerprint_len, strlen(k->fingerprint));
        assert_string_equal(c.tab_id, k->tab_id);
        assert_int_equal(c.device_type, k->type);
        assert_int_equal(c.proto, k->proto);
        assert_int_equal(c.n_caps, k->n_caps);
        assert_non_null(c.token);
        assert_int_equal(c.token_len, strlen(c.token));
        ts_sess_connect_deinit(&c);
        assert_null(c.token);
        return;
    }
    if (rc != TS_EPROTO) fail_msg("%s: rc %s (want TS_EPROTO)", k->name, ts_err_name(rc));
    if (d.reason != k->want)
        fail_msg("%s: reason %s (want %s): %s", k->name, ts_sess_reason_name(d.reason),
                 ts_sess_reason_name(k->want), d.msg);
    if (k->field && strcmp(d.field, k->field) != 0)
        fail_msg("%s: field \"%s\" (want \"%s\")", k->name, d.field, k->field);
    if (k->fragment && !strstr(d.msg, k->fragment))
        fail_msg("%s: message \"%s\" lacks \"%s\"", k->name, d.msg, k->fragment);
    if (!d.msg[0] || strchr(d.msg, '\n')) fail_msg("%s: bad message \"%s\"", k->name, d.msg);
    assert_null(c.token); /* nothing to free on refusal */
    assert_int_equal(ts_sess_connect_parse(j, &c, NULL), TS_EPROTO);
}

static void test_table(void **state) {
    (void)state;
    int seen[TS_SESS_R_COUNT_] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = cases[i].json ? load(cases[i].json) : NULL;
        run_case(&cases[i], j, seen);
        json_decref(j);
    }

    /* Sizes at and over the limits, built here. */
    char *big = malloc(20000);
    struct conn_case k = {0};
    json_t *j;

    /* token: 8192 bytes accepted (the verifier judges it), 8193 refused. */
    for (int n = 8192; n <= 8193; n++) {
        j = load(O(GOOD));
        memset(big, 'a', (size_t)n);
        big[n] = '\0';
        json_object_set_new(j, "token", json_string(big));
        k = (struct conn_case){"token size", NULL,
                               n == 8192 ? TS_SESS_R_OK : TS_SESS_R_TOKEN_TOO_LARGE, "token",
                               "token is 8193 bytes; at most 8192", "laptop-1", "fp-laptop-1",
                               "tab-1", TS_SESS_DEV_BROWSER, 2, 0};
        run_case(&k, j, seen);
        json_decref(j);
    }
    /* fingerprint: 512 bytes accepted, 513 refused. */
    for (int n = 512; n <= 513; n++) {
        j = load(O(GOOD));
        memset(big, 'f', (size_t)n);
        big[n] = '\0';
        json_object_set_new(json_object_get(j, "device"), "fingerprint", json_string(big));
        k = (struct conn_case){"fingerprint size", NULL,
                               n == 512 ? TS_SESS_R_OK : TS_SESS_R_AUTH_FIELD_TOO_LONG,
                               "device.fingerprint", "513 bytes; at most 512", "laptop-1", big,
                               "tab-1", TS_SESS_DEV_BROWSER, 2, 0};
        run_case(&k, j, seen);
        json_decref(j);
    }
    /* caps: 32 accepted (and copied), 33 refused. */
    for (int n = 32; n <= 33; n++) {
        j = load(O(GOOD));
        json_t *caps = json_array();
        for (int i = 0; i < n; i++) {
            char cap[40];
            snprintf(cap, sizeof cap, "cap-%02d-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxx"); /* 32 B */
            json_array_append_new(caps, json_string(cap));
        }
        json_object_set_new(json_object_get(j, "device"), "caps", caps);
        k = (struct conn_case){"caps count", NULL,
                               n == 32 ? TS_SESS_R_OK : TS_SESS_R_AUTH_TOO_MANY_CAPS,
                               "device.caps", "33 entries; at most 32", "laptop-1", "fp-laptop-1",
                               "tab-1", TS_SESS_DEV_BROWSER, 2, n};
        run_case(&k, j, seen);
        if (n == 32) {
            ts_sess_connect_t c;
            assert_int_equal(ts_sess_connect_parse(j, &c, NULL), 0);
            assert_string_equal(c.caps[0], "cap-00-xxxxxxxxxxxxxxxxxxxxxxxxx");
            assert_string_equal(c.caps[31], "cap-31-xxxxxxxxxxxxxxxxxxxxxxxxx");
            ts_sess_connect_deinit(&c);
        }
        json_decref(j);
    }
    /* pid longer than 256 bytes. */
    j = load(O(GOOD));
    memset(big, 'p', 257);
    big[257] = '\0';
    json_object_set_new(j, "pid", json_string(big));
    k = (struct conn_case)R("pid size", NULL, TS_SESS_R_AUTH_FIELD_TOO_LONG, "pid", NULL);
    run_case(&k, j, seen);
    json_decref(j);
    free(big);

    /* Every payload reason (and the token size) has a row. */
    for (int r = TS_SESS_R_AUTH_NOT_OBJECT; r <= TS_SESS_R_AUTH_BAD_ELECT; r++)
        if (!seen[r]) fail_msg("no row for %s", ts_sess_reason_name((ts_sess_reason_t)r));
    assert_true(seen[TS_SESS_R_TOKEN_TOO_LARGE] > 0);
    print_message("%zu payload cases + 9 built\n", sizeof cases / sizeof cases[0]);
}

static void test_copies_outlive_json(void **state) {
    (void)state;
    json_t *j = load(O(GOOD ",\"pid\":\"p\""));
    ts_sess_connect_t c;
    assert_int_equal(ts_sess_connect_parse(j, &c, NULL), 0);
    json_decref(j); /* the copies stay valid */
    assert_string_equal(c.token, "eyJhbGciOiJIUzI1NiJ9.e30.sig");
    assert_string_equal(c.device_id, "laptop-1");
    assert_string_equal(c.tab_id, "tab-1");
    ts_sess_connect_deinit(&c);
    ts_sess_connect_deinit(&c); /* twice is harmless */
    ts_sess_connect_deinit(NULL);
    assert_string_equal(ts_sess_device_type_name(TS_SESS_DEV_CLI), "cli");
    assert_null(ts_sess_device_type_name((ts_sess_device_type_t)99));
}

/* The elect member of a protocol 4 payload, as the session layer reads it. */
static void test_elect(void **state) {
    (void)state;
    static const struct {
        const char *json;
        unsigned scopes;
        int observer, scores;
    } rows[] = {
        {O(P4), 0, 0, 0},
        {O(P4 ",\"elect\":{}"), 0, 0, 0},
        {O(P4 ",\"elect\":{\"scopes\":[]}"), 0, 0, 0},
        {O(P4 ",\"elect\":{\"scopes\":[\"session\"]}"), 1, 0, 0},
        {O(P4 ",\"elect\":{\"scopes\":[\"device\",\"session\"],\"scores\":true}"), 3, 0, 1},
        {O(P4 ",\"elect\":{\"scopes\":[\"device\"],\"observer\":true,\"scores\":false}"), 2,
         1, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_t *j = load(rows[i].json);
        ts_sess_connect_t c;
        assert_int_equal(ts_sess_connect_parse(j, &c, NULL), 0);
        assert_int_equal(c.proto, 4);
        assert_int_equal(c.elect_scopes, rows[i].scopes);
        assert_int_equal(c.elect_observer, rows[i].observer);
        assert_int_equal(c.elect_scores, rows[i].scores);
        ts_sess_connect_deinit(&c);
        json_decref(j);
    }
    assert_string_equal(ts_sess_scope_kind_name(TS_SESS_SCOPE_DEVICE), "device");
    assert_null(ts_sess_scope_kind_name(TS_SESS_SCOPE_KINDS_));
    assert_int_equal(ts_sess_scope_kind_parse("session", 7), TS_SESS_SCOPE_SESSION);
    assert_int_equal(ts_sess_scope_kind_parse("sessions", 8), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elect),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_copies_outlive_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
