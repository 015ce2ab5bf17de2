/* test_packet.c - tables for src/sio/packet.c (the JSON string form of
 * socket.io-parser): every example of SOCKETIO.md section 2 and of
 * docs/socket.io-protocol/v5-current.md decodes to the expected fields and
 * encodes back byte for byte; every invalid input of those documents and of
 * socket.io-parser's test/parser.js gives the expected error. */
#include <math.h>
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
#include "sio/packet_int.h"
#include "sio/ts_sio_packet.h"

#define assert_ts_err(got, want)                                                             \
    do {                                                                                     \
        int g_ = (got), w_ = (want);                                                         \
        if (g_ != w_) fail_msg("got %s (%d), want %s (%d)", ts_err_name(g_), g_,             \
                               ts_err_name(w_), w_);                                         \
    } while (0)

#define S(lit) lit, sizeof(lit) - 1
#define NONE TS_SIO_NO_ID
#define PH(n) "{\"_placeholder\":true,\"num\":" #n "}"

typedef struct bin {
    const char *p;
    size_t len;
} bin_t;

/* One row: a text message as on the wire (with the Engine.IO '4'), then its
 * binary attachments. On success the decoded packet has the given fields
 * and encodes back to `out` (NULL: to `wire` itself). */
typedef struct sio_case {
    const char *name;
    const char *wire;
    size_t wirelen;
    size_t nbin;
    bin_t bin[3];
    int want_err;
    const char *want_msg; /* fragment of d->errmsg */
    uint8_t type;
    const char *nsp;
    int64_t id;
    const char *data; /* JSON of the expected data, NULL for none */
    const char *out;
    size_t max_attachments; /* 0: default */
} sio_case_t;

static const sio_case_t cases[] = {
    /* SOCKETIO.md 2.2 examples */
    {"connect", S("40"), 0, {{0}}, 0, NULL, TS_SIO_CONNECT, "/", NONE, NULL, NULL, 0},
    {"connect with auth", S("40{\"token\":\"123\"}"), 0, {{0}}, 0, NULL, TS_SIO_CONNECT, "/",
     NONE, "{\"token\":\"123\"}", NULL, 0},
    {"connect reply", S("40/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}"), 0, {{0}}, 0, NULL,
     TS_SIO_CONNECT, "/admin", NONE, "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", NULL, 0},
    {"connect error", S("44{\"message\":\"Not authorized\"}"), 0, {{0}}, 0, NULL,
     TS_SIO_CONNECT_ERROR, "/", NONE, "{\"message\":\"Not authorized\"}", NULL, 0},
    {"event", S("42[\"hello\",1,{\"a\":true}]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE,
     "[\"hello\",1,{\"a\":true}]", NULL, 0},
    {"event nsp + id", S("42/admin,12[\"foo\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/admin", 12,
     "[\"foo\"]", NULL, 0},
    {"ack id 12", S("4312[\"bar\"]"), 0, {{0}}, 0, NULL, TS_SIO_ACK, "/", 12, "[\"bar\"]", NULL,
     0},
    {"empty ack", S("43/admin,13[]"), 0, {{0}}, 0, NULL, TS_SIO_ACK, "/admin", 13, "[]", NULL, 0},
    {"disconnect nsp", S("41/admin,"), 0, {{0}}, 0, NULL, TS_SIO_DISCONNECT, "/admin", NONE,
     NULL, NULL, 0},
    {"disconnect", S("41"), 0, {{0}}, 0, NULL, TS_SIO_DISCONNECT, "/", NONE, NULL, NULL, 0},
    {"connect without comma", S("40/custom"), 0, {{0}}, 0, NULL, TS_SIO_CONNECT, "/custom", NONE,
     NULL, "40/custom,", 0},
    {"connect nsp with comma", S("40/admin,"), 0, {{0}}, 0, NULL, TS_SIO_CONNECT, "/admin", NONE,
     NULL, NULL, 0},
    {"connect nsp + auth", S("40/admin,{\"token\":\"x\"}"), 0, {{0}}, 0, NULL, TS_SIO_CONNECT,
     "/admin", NONE, "{\"token\":\"x\"}", NULL, 0},
    {"invalid namespace reply", S("44/random,{\"message\":\"Invalid namespace\"}"), 0, {{0}}, 0,
     NULL, TS_SIO_CONNECT_ERROR, "/random", NONE, "{\"message\":\"Invalid namespace\"}", NULL,
     0},
    {"suite: message-back", S("42[\"message-back\",1,\"2\",{\"3\":[true]}]"), 0, {{0}}, 0, NULL,
     TS_SIO_EVENT, "/", NONE, "[\"message-back\",1,\"2\",{\"3\":[true]}]", NULL, 0},
    /* SOCKETIO.md 2.3 */
    {"binary event", S("451-[\"upload\"," PH(0) "]"), 1, {{S("\x01\x02\x03")}}, 0, NULL,
     TS_SIO_EVENT, "/", NONE, "[\"upload\"," PH(0) "]", NULL, 0},
    {"binary ack, 2 attachments", S("462-789[" PH(0) "," PH(1) "]"), 2,
     {{S("\x01")}, {S("\x02\x03")}}, 0, NULL, TS_SIO_ACK, "/", 789, "[" PH(0) "," PH(1) "]",
     NULL, 0},
    /* v5-current.md examples */
    {"v5: connect /admin", S("40/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}"), 0, {{0}}, 0, NULL,
     TS_SIO_CONNECT, "/admin", NONE, "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", NULL, 0},
    {"v5: event", S("42[\"foo\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE, "[\"foo\"]",
     NULL, 0},
    {"v5: event /admin", S("42/admin,[\"bar\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/admin",
     NONE, "[\"bar\"]", NULL, 0},
    {"v5: binary event", S("451-[\"baz\"," PH(0) "]"), 1, {{S("\x01\x02\x03\x04")}}, 0, NULL,
     TS_SIO_EVENT, "/", NONE, "[\"baz\"," PH(0) "]", NULL, 0},
    {"v5: two attachments", S("452-/admin,[\"baz\"," PH(0) "," PH(1) "]"), 2,
     {{S("\x01\x02")}, {S("\x03\x04")}}, 0, NULL, TS_SIO_EVENT, "/admin", NONE,
     "[\"baz\"," PH(0) "," PH(1) "]", NULL, 0},
    {"v5: event with ack", S("4212[\"foo\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", 12,
     "[\"foo\"]", NULL, 0},
    {"v5: ack /admin", S("43/admin,13[\"bar\"]"), 0, {{0}}, 0, NULL, TS_SIO_ACK, "/admin", 13,
     "[\"bar\"]", NULL, 0},
    {"v5: binary ack", S("461-15[\"bar\"," PH(0) "]"), 1, {{S("\x01\x02\x03\x04")}}, 0, NULL,
     TS_SIO_ACK, "/", 15, "[\"bar\"," PH(0) "]", NULL, 0},
    {"v5: sample binary ack", S("461-/admin,1[" PH(0) "]"), 1, {{S("")}}, 0, NULL, TS_SIO_ACK,
     "/admin", 1, "[" PH(0) "]", NULL, 0},
    {"v5: sample event", S("42[\"hey\",\"Jude\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE,
     "[\"hey\",\"Jude\"]", NULL, 0},
    {"v5: sample event with ack", S("42/admin,1[\"tellme\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT,
     "/admin", 1, "[\"tellme\"]", NULL, 0},
    /* socket.io-parser test/parser.js, valid packets */
    {"parser: connect /woot", S("40/woot,{\"token\":\"123\"}"), 0, {{0}}, 0, NULL,
     TS_SIO_CONNECT, "/woot", NONE, "{\"token\":\"123\"}", NULL, 0},
    {"parser: disconnect /woot", S("41/woot,"), 0, {{0}}, 0, NULL, TS_SIO_DISCONNECT, "/woot",
     NONE, NULL, NULL, 0},
    {"parser: event", S("42[\"a\",1,{}]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE,
     "[\"a\",1,{}]", NULL, 0},
    {"parser: integer event name", S("42[1,\"a\",{}]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/",
     NONE, "[1,\"a\",{}]", NULL, 0},
    {"parser: event with ack", S("42/test,1[\"a\",1,{}]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT,
     "/test", 1, "[\"a\",1,{}]", NULL, 0},
    {"parser: ack", S("43123[\"a\",1,{}]"), 0, {{0}}, 0, NULL, TS_SIO_ACK, "/", 123,
     "[\"a\",1,{}]", NULL, 0},
    {"parser: connect error string", S("44\"Unauthorized\""), 0, {{0}}, 0, NULL,
     TS_SIO_CONNECT_ERROR, "/", NONE, "\"Unauthorized\"", NULL, 0},
    {"parser: reviver case", S("42[\"b\",{\"a\":\"val\"}]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT,
     "/", NONE, "[\"b\",{\"a\":\"val\"}]", NULL, 0},
    /* absent payloads: Node decodes them with data undefined */
    {"event without payload", S("42"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE, NULL, NULL,
     0},
    {"ack without payload", S("437"), 0, {{0}}, 0, NULL, TS_SIO_ACK, "/", 7, NULL, NULL, 0},
    {"connect error without payload", S("44"), 0, {{0}}, 0, NULL, TS_SIO_CONNECT_ERROR, "/",
     NONE, NULL, NULL, 0},
    /* edges */
    {"nsp runs to the end", S("42/admin1[\"a\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT,
     "/admin1[\"a\"]", NONE, NULL, "42/admin1[\"a\"],", 0},
    {"nsp is just a slash", S("40/,{}"), 0, {{0}}, 0, NULL, TS_SIO_CONNECT, "/", NONE, "{}",
     "40{}", 0},
    {"utf-8 namespace", S("42/\xc3\xa9t\xc3\xa9,[\"a\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT,
     "/\xc3\xa9t\xc3\xa9", NONE, "[\"a\"]", NULL, 0},
    {"connect with an id", S("40/admin,5{}"), 0, {{0}}, 0, NULL, TS_SIO_CONNECT, "/admin", 5,
     "{}", NULL, 0},
    {"id with leading zeros", S("42007[\"a\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", 7,
     "[\"a\"]", "427[\"a\"]", 0},
    {"id 0", S("420[\"a\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", 0, "[\"a\"]", NULL, 0},
    {"largest id", S("429223372036854775807[\"a\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/",
     INT64_MAX, "[\"a\"]", NULL, 0},
    {"json whitespace", S("42 [ \"a\" , 1 ]\n"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE,
     "[\"a\",1]", "42[\"a\",1]", 0},
    {"attachment count 01", S("4501-[\"a\"," PH(0) "]"), 1, {{S("x")}}, 0, NULL, TS_SIO_EVENT,
     "/", NONE, "[\"a\"," PH(0) "]", "451-[\"a\"," PH(0) "]", 0},
    {"placeholder num as real", S("451-[\"a\",{\"_placeholder\":true,\"num\":0.0}]"), 1,
     {{S("x")}}, 0, NULL, TS_SIO_EVENT, "/", NONE, "[\"a\"," PH(0) "]",
     "451-[\"a\"," PH(0) "]", 0},
    {"nested placeholder", S("451-[\"a\",{\"x\":[1,{\"y\":" PH(0) "}]}]"), 1, {{S("x")}}, 0,
     NULL, TS_SIO_EVENT, "/", NONE, "[\"a\",{\"x\":[1,{\"y\":" PH(0) "}]}]", NULL, 0},
    {"placeholder with extra keys", S("451-[\"a\",{\"_placeholder\":true,\"num\":0,\"k\":1}]"),
     1, {{S("x")}}, 0, NULL, TS_SIO_EVENT, "/", NONE,
     "[\"a\",{\"_placeholder\":true,\"num\":0,\"k\":1}]", NULL, 0},
    {"false placeholder is a plain object", S("42[\"a\",{\"_placeholder\":false,\"num\":3}]"), 0,
     {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE, "[\"a\",{\"_placeholder\":false,\"num\":3}]", NULL,
     0},
    {"unreferenced attachment kept", S("451-[\"a\"]"), 1, {{S("zz")}}, 0, NULL, TS_SIO_EVENT,
     "/", NONE, "[\"a\"]", NULL, 0},
    /* JSON.stringify fidelity */
    {"numbers as JS writes them",
     S("42[\"n\",1.0,1.5,-0.0,-0,0.1,1e21,1e20,1e-7,0.000001,123e-20,100,-2.5e-3]"), 0, {{0}}, 0,
     NULL, TS_SIO_EVENT, "/", NONE, NULL,
     "42[\"n\",1,1.5,0,0,0.1,1e+21,100000000000000000000,1e-7,0.000001,1.23e-18,100,-0.0025]",
     0},
    {"integer beyond int64", S("42[\"big\",12345678901234567890,1]"), 0, {{0}}, 0, NULL,
     TS_SIO_EVENT, "/", NONE, NULL, "42[\"big\",12345678901234567000,1]", 0},
    {"int64 extremes", S("42[\"i\",9223372036854775807,-9223372036854775808]"), 0, {{0}}, 0,
     NULL, TS_SIO_EVENT, "/", NONE, "[\"i\",9223372036854775807,-9223372036854775808]",
     "42[\"i\",9223372036854776000,-9223372036854776000]", 0},
    {"integers beyond 2^53 written as doubles",
     S("42[\"s\",9007199254740993,9007199254740992,-9007199254740993]"), 0, {{0}}, 0, NULL,
     TS_SIO_EVENT, "/", NONE, "[\"s\",9007199254740993,9007199254740992,-9007199254740993]",
     "42[\"s\",9007199254740992,9007199254740992,-9007199254740992]", 0},
    {"fuzz: 1e20 re-reads as a double, big int as JS", /* fuzz_sio_packet crash f3a47171 */
     S("42[\"n\",21,0.0,1,1e20,1e-5,1e-5,1234000001930489374]"), 0, {{0}}, 0, NULL,
     TS_SIO_EVENT, "/", NONE, NULL,
     "42[\"n\",21,0,1,100000000000000000000,0.00001,0.00001,1234000001930489300]", 0},
    {"escapes as JS writes them",
     S("42[\"c\",\"\\u0001\\u001F\\b\\t\\n\\f\\r\\\"\\\\\\/\\u2028\\u007f\\u00e9\"]"), 0, {{0}},
     0, NULL, TS_SIO_EVENT, "/", NONE, NULL,
     "42[\"c\",\"\\u0001\\u001f\\b\\t\\n\\f\\r\\\"\\\\/\xe2\x80\xa8\x7f\xc3\xa9\"]", 0},
    {"NUL in a string", S("42[\"a\\u0000b\"]"), 0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE,
     "[\"a\\u0000b\"]", NULL, 0},
    {"raw utf-8 and astral", S("42[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"\\ud83d\\ude00\"]"),
     0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE, NULL,
     "42[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"\xf0\x9f\x98\x80\"]", 0},
    {"reserved name with NUL is not reserved", S("42[\"connect\\u0000\"]"), 0, {{0}}, 0, NULL,
     TS_SIO_EVENT, "/", NONE, "[\"connect\\u0000\"]", NULL, 0},
    {"duplicate keys: last value, first position", S("42[\"d\",{\"a\":1,\"b\":2,\"a\":3}]"), 0,
     {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE, "[\"d\",{\"a\":3,\"b\":2}]",
     "42[\"d\",{\"a\":3,\"b\":2}]", 0},
    {"array-index keys first",
     S("42[\"o\",{\"b\":1,\"2\":2,\"1\":3,\"a\":4,\"01\":5,\"4294967295\":6,\"4294967294\":7,"
       "\"0\":8}]"),
     0, {{0}}, 0, NULL, TS_SIO_EVENT, "/", NONE, NULL,
     "42[\"o\",{\"0\":8,\"1\":3,\"2\":2,\"4294967294\":7,\"b\":1,\"a\":4,\"01\":5,"
     "\"4294967295\":6}]",
     0},
    {"connect error with null data key", S("44{\"message\":\"x\",\"data\":null}"), 0, {{0}}, 0,
     NULL, TS_SIO_CONNECT_ERROR, "/", NONE, "{\"message\":\"x\",\"data\":null}", NULL, 0},

    /* ---- invalid: SOCKETIO.md 2.8 (the conformance suite) ---- */
    {"suite: type a", S("4abc"), 0, {{0}}, TS_EPROTO, "unknown packet type 'a'", 0, NULL, 0,
     NULL, NULL, 0},
    {"suite: event not an array", S("42{}"), 0, {{0}}, TS_EPROTO, "EVENT takes", 0, NULL, 0,
     NULL, NULL, 0},
    {"suite: junk before JSON", S("42abc[\"a\"]"), 0, {{0}}, TS_EJSON, "invalid JSON", 0, NULL,
     0, NULL, NULL, 0},
    /* socket.io-parser test/parser.js: "invalid payload" */
    {"parser: unterminated array", S("4442[\"some\",\"data\""), 0, {{0}}, TS_EJSON,
     "invalid JSON", 0, NULL, 0, NULL, NULL, 0},
    {"parser: connect with a string", S("40/admin,\"invalid\""), 0, {{0}}, TS_EPROTO,
     "CONNECT takes", 0, NULL, 0, NULL, NULL, 0},
    {"parser: connect with an array", S("40[]"), 0, {{0}}, TS_EPROTO, "CONNECT takes", 0, NULL,
     0, NULL, NULL, 0},
    {"parser: disconnect with payload", S("41/admin,{}"), 0, {{0}}, TS_EPROTO,
     "DISCONNECT takes none", 0, NULL, 0, NULL, NULL, 0},
    {"parser: unterminated string", S("42/admin,\"invalid"), 0, {{0}}, TS_EJSON, "invalid JSON",
     0, NULL, 0, NULL, NULL, 0},
    {"parser: event object", S("42/admin,{}"), 0, {{0}}, TS_EPROTO, "EVENT takes", 0, NULL, 0,
     NULL, NULL, 0},
    {"parser: event name object", S("42[{\"toString\":\"foo\"}]"), 0, {{0}}, TS_EPROTO,
     "event name", 0, NULL, 0, NULL, NULL, 0},
    {"parser: event name true", S("42[true,\"foo\"]"), 0, {{0}}, TS_EPROTO, "event name", 0,
     NULL, 0, NULL, NULL, 0},
    {"parser: event name null", S("42[null,\"bar\"]"), 0, {{0}}, TS_EPROTO, "event name", 0,
     NULL, 0, NULL, NULL, 0},
    {"parser: reserved connect", S("42[\"connect\"]"), 0, {{0}}, TS_EPROTO, "reserved", 0, NULL,
     0, NULL, NULL, 0},
    {"parser: reserved disconnect", S("42[\"disconnect\",\"123\"]"), 0, {{0}}, TS_EPROTO,
     "reserved", 0, NULL, 0, NULL, NULL, 0},
    {"reserved connect_error", S("42[\"connect_error\"]"), 0, {{0}}, TS_EPROTO, "reserved", 0,
     NULL, 0, NULL, NULL, 0},
    {"reserved disconnecting", S("42[\"disconnecting\"]"), 0, {{0}}, TS_EPROTO, "reserved", 0,
     NULL, 0, NULL, NULL, 0},
    {"reserved newListener", S("42[\"newListener\",1]"), 0, {{0}}, TS_EPROTO, "reserved", 0,
     NULL, 0, NULL, NULL, 0},
    {"reserved removeListener", S("42/a,[\"removeListener\"]"), 0, {{0}}, TS_EPROTO, "reserved",
     0, NULL, 0, NULL, NULL, 0},
    {"reserved in a binary event", S("451-[\"disconnect\"," PH(0) "]"), 0, {{0}}, TS_EPROTO,
     "reserved", 0, NULL, 0, NULL, NULL, 0},
    {"empty event array", S("42[]"), 0, {{0}}, TS_EPROTO, "non-empty", 0, NULL, 0, NULL, NULL,
     0},
    {"event null", S("42null"), 0, {{0}}, TS_EPROTO, "EVENT takes", 0, NULL, 0, NULL, NULL, 0},
    {"ack object", S("431{}"), 0, {{0}}, TS_EPROTO, "ACK takes", 0, NULL, 0, NULL, NULL, 0},
    {"connect null", S("40null"), 0, {{0}}, TS_EPROTO, "CONNECT takes", 0, NULL, 0, NULL, NULL,
     0},
    {"connect error array", S("44[]"), 0, {{0}}, TS_EPROTO, "CONNECT_ERROR takes", 0, NULL, 0,
     NULL, NULL, 0},
    {"connect error boolean", S("44true"), 0, {{0}}, TS_EPROTO, "CONNECT_ERROR takes", 0, NULL, 0,
     NULL, NULL, 0},
    /* socket.io-parser test/parser.js: "Illegal attachments" */
    {"parser: 5", S("45"), 0, {{0}}, TS_EPROTO, "illegal attachments", 0, NULL, 0, NULL, NULL,
     0},
    {"parser: 51", S("451"), 0, {{0}}, TS_EPROTO, "illegal attachments", 0, NULL, 0, NULL, NULL,
     0},
    {"parser: 50-", S("450-"), 0, {{0}}, TS_EPROTO, "illegal attachments", 0, NULL, 0, NULL,
     NULL, 0},
    {"parser: 5a-", S("45a-"), 0, {{0}}, TS_EPROTO, "illegal attachments", 0, NULL, 0, NULL,
     NULL, 0},
    {"parser: 51.23-", S("451.23-"), 0, {{0}}, TS_EPROTO, "illegal attachments", 0, NULL, 0,
     NULL, NULL, 0},
    {"empty count", S("45-[\"a\"]"), 0, {{0}}, TS_EPROTO, "illegal attachments", 0, NULL, 0,
     NULL, NULL, 0},
    {"binary ack without count", S("46[\"a\"]"), 0, {{0}}, TS_EPROTO, "illegal attachments", 0,
     NULL, 0, NULL, NULL, 0},
    {"parser: type 9", S("4999"), 0, {{0}}, TS_EPROTO, "unknown packet type '9'", 0, NULL, 0,
     NULL, NULL, 0},
    {"parser: too many attachments (max 2)", S("453-[\"hello\"," PH(0) "," PH(1) "," PH(2) "]"),
     0, {{0}}, TS_ELIMIT, "too many attachments", 0, NULL, 0, NULL, NULL, 2},
    {"11 attachments", S("4511-[\"a\"]"), 0, {{0}}, TS_ELIMIT, "too many attachments", 0, NULL,
     0, NULL, NULL, 0},
    {"huge attachment count", S("45999999999999999999999999-[\"a\"]"), 0, {{0}}, TS_ELIMIT,
     "too many attachments", 0, NULL, 0, NULL, NULL, 0},
    /* placeholders */
    {"placeholder out of range", S("451-[\"a\",{\"_placeholder\":true,\"num\":1}]"), 0, {{0}},
     TS_EPROTO, "out of range", 0, NULL, 0, NULL, NULL, 0},
    {"placeholder negative", S("451-[\"a\",{\"_placeholder\":true,\"num\":-1}]"), 0, {{0}},
     TS_EPROTO, "out of range", 0, NULL, 0, NULL, NULL, 0},
    {"placeholder without num", S("451-[\"a\",{\"_placeholder\":true}]"), 0, {{0}}, TS_EPROTO,
     "illegal attachments", 0, NULL, 0, NULL, NULL, 0},
    {"placeholder string num", S("451-[\"a\",{\"_placeholder\":true,\"num\":\"0\"}]"), 0, {{0}},
     TS_EPROTO, "illegal attachments", 0, NULL, 0, NULL, NULL, 0},
    {"placeholder fractional num", S("451-[\"a\",{\"_placeholder\":true,\"num\":0.5}]"), 0,
     {{0}}, TS_EPROTO, "illegal attachments", 0, NULL, 0, NULL, NULL, 0},
    {"placeholder without attachments", S("42[\"a\"," PH(0) "]"), 0, {{0}}, TS_EPROTO,
     "out of range", 0, NULL, 0, NULL, NULL, 0},
    /* ids, namespaces, JSON */
    {"ack id overflow", S("429223372036854775808[\"a\"]"), 0, {{0}}, TS_EPROTO, "ack id", 0,
     NULL, 0, NULL, NULL, 0},
    {"namespace not utf-8", S("42/\xff,[\"a\"]"), 0, {{0}}, TS_EPROTO, "UTF-8", 0, NULL, 0,
     NULL, NULL, 0},
    {"namespace with NUL", S("42/a\0b,[\"a\"]"), 0, {{0}}, TS_EPROTO, "UTF-8", 0, NULL, 0, NULL,
     NULL, 0},
    {"namespace surrogate", S("42/\xed\xa0\x80,[\"a\"]"), 0, {{0}}, TS_EPROTO, "UTF-8", 0, NULL,
     0, NULL, NULL, 0},
    {"namespace overlong", S("42/\xc0\xaf,[\"a\"]"), 0, {{0}}, TS_EPROTO, "UTF-8", 0, NULL, 0,
     NULL, NULL, 0},
    {"namespace truncated utf-8", S("42/\xe2\x82"), 0, {{0}}, TS_EPROTO, "UTF-8", 0, NULL, 0,
     NULL, NULL, 0},
    {"trailing data", S("42[\"a\"]x"), 0, {{0}}, TS_EJSON, "invalid JSON", 0, NULL, 0, NULL,
     NULL, 0},
    {"two JSON values", S("42[\"a\"][\"b\"]"), 0, {{0}}, TS_EJSON, "invalid JSON", 0, NULL, 0,
     NULL, NULL, 0},
    {"comma without namespace", S("42,[\"a\"]"), 0, {{0}}, TS_EJSON, "invalid JSON", 0, NULL, 0,
     NULL, NULL, 0},
    {"real overflow (Node: Infinity)", S("42[\"a\",1e400]"), 0, {{0}}, TS_EJSON, "overflow", 0,
     NULL, 0, NULL, NULL, 0},
    {"invalid utf-8 in JSON", S("42[\"\xff\"]"), 0, {{0}}, TS_EJSON, "invalid JSON", 0, NULL, 0,
     NULL, NULL, 0},
    {"lone surrogate escape", S("42[\"\\ud800\"]"), 0, {{0}}, TS_EJSON, "invalid JSON", 0, NULL,
     0, NULL, NULL, 0},
    {"NUL in a key", S("42[\"a\",{\"k\\u0000\":1}]"), 0, {{0}}, TS_EJSON, "invalid JSON", 0,
     NULL, 0, NULL, NULL, 0},
    {"empty text message", S("4"), 0, {{0}}, TS_EPROTO, "empty packet", 0, NULL, 0, NULL, NULL,
     0},
    {"control byte type", S("4\x01"), 0, {{0}}, TS_EPROTO, "unknown packet type 0x01", 0, NULL,
     0, NULL, NULL, 0},
};

/* ---- helpers ---- */

/* Equality as JS sees it: numbers are doubles (1 and 1.0 are one number,
 * and so are 2^53 + 1 and 2^53). */
static int json_eq_js(json_t *a, json_t *b) {
    if (!a || !b) return a == b;
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq_js(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) {
            if (!json_eq_js(v, json_object_get(b, k))) return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

static void assert_pkt_equal(const ts_sio_packet_t *a, const ts_sio_packet_t *b) {
    assert_int_equal(a->type, b->type);
    assert_string_equal(a->nsp, b->nsp);
    assert_int_equal(a->id, b->id);
    assert_true(json_eq_js(a->data, b->data));
    assert_int_equal(a->nattach, b->nattach);
    for (size_t i = 0; i < a->nattach; i++) {
        assert_int_equal(a->attach[i]->len, b->attach[i]->len);
        assert_memory_equal(a->attach[i]->data, b->attach[i]->data, a->attach[i]->len);
    }
}

/* Feeds a text message (wire form, '4' included) and its attachments;
 * returns the last feed result. */
static int feed_all(ts_sio_decoder_t *d, const char *wire, size_t wirelen, size_t nbin,
                    const bin_t *bins, ts_sio_packet_t *out) {
    assert_true(wirelen >= 1 && wire[0] == '4');
    /* exact-size heap copies so ASan sees any overread */
    uint8_t *txt = ts_xmemdup(wire + 1, wirelen > 1 ? wirelen - 1 : 1);
    int rc = ts_sio_decoder_feed(d, txt, wirelen - 1, 0, out);
    free(txt);
    for (size_t i = 0; i < nbin && rc == 0; i++) {
        uint8_t *b = ts_xmemdup(bins[i].p, bins[i].len ? bins[i].len : 1);
        rc = ts_sio_decoder_feed(d, b, bins[i].len, 1, out);
        free(b);
        if (i + 1 < nbin && rc == 0) assert_null(out->nsp); /* nothing owned yet */
    }
    return rc;
}

/* Feeds an encoder's output into a fresh decoder. */
static int feed_encoded(ts_sio_decoder_t *d, const ts_sio_encoded_t *enc, ts_sio_packet_t *out) {
    int rc = 0;
    for (size_t i = 0; i < enc->n; i++) {
        const ts_buf_t *b = enc->msgs[i].buf;
        if (enc->msgs[i].binary) {
            rc = ts_sio_decoder_feed(d, b->data, b->len, 1, out);
        } else {
            assert_true(b->len >= 1 && b->data[0] == '4');
            rc = ts_sio_decoder_feed(d, b->data + 1, b->len - 1, 0, out);
        }
        if (rc < 0) return rc;
    }
    return rc;
}

/* ---- tests ---- */

static void test_table(void **state) {
    (void)state;
    for (size_t i = 0; i < TS_ARRAY_LEN(cases); i++) {
        const sio_case_t *c = &cases[i];
        print_message("case: %s\n", c->name);
        ts_sio_decoder_t d;
        ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
        if (c->max_attachments) d.max_attachments = c->max_attachments;
        ts_sio_packet_t pkt;
        int rc = feed_all(&d, c->wire, c->wirelen, c->nbin, c->bin, &pkt);
        if (c->want_err) {
            assert_ts_err(rc, c->want_err);
            assert_ts_err(d.err, c->want_err);
            if (!strstr(d.errmsg, c->want_msg))
                fail_msg("errmsg \"%s\" lacks \"%s\"", d.errmsg, c->want_msg);
            assert_null(pkt.nsp);
            assert_null(pkt.data);
            ts_sio_decoder_deinit(&d);
            continue;
        }
        if (rc != 1) fail_msg("rc %s: %s", ts_err_name(rc), d.errmsg);
        assert_int_equal(pkt.type, c->type);
        assert_string_equal(pkt.nsp, c->nsp);
        assert_int_equal(pkt.id, c->id);
        assert_int_equal(pkt.nattach, c->nbin);
        for (size_t k = 0; k < c->nbin; k++) {
            assert_int_equal(pkt.attach[k]->len, c->bin[k].len);
            assert_memory_equal(pkt.attach[k]->data, c->bin[k].p, c->bin[k].len);
        }
        if (c->data) {
            json_error_t err;
            json_t *want = json_loads(c->data, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            assert_non_null(want);
            if (!json_equal(want, pkt.data)) fail_msg("data differs from %s", c->data);
            json_decref(want);
        } else if (!c->out) {
            assert_null(pkt.data);
        }

        /* encode back, byte for byte */
        ts_sio_encoded_t enc;
        assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
        const char *want_out = c->out ? c->out : c->wire;
        size_t want_len = c->out ? strlen(c->out) : c->wirelen;
        assert_int_equal(enc.n, 1 + c->nbin);
        assert_int_equal(enc.msgs[0].binary, 0);
        if (enc.msgs[0].buf->len != want_len ||
            memcmp(enc.msgs[0].buf->data, want_out, want_len) != 0)
            fail_msg("encoded \"%.*s\", want \"%s\"", (int)enc.msgs[0].buf->len,
                     (const char *)enc.msgs[0].buf->data, want_out);
        for (size_t k = 0; k < c->nbin; k++) {
            assert_int_equal(enc.msgs[1 + k].binary, 1);
            assert_ptr_equal(enc.msgs[1 + k].buf, pkt.attach[k]); /* shared, not copied */
        }
        /* and the encoding decodes to the same packet */
        ts_sio_decoder_t d2;
        ts_sio_decoder_init(&d2, TS_SIO_PARSER_JSON);
        ts_sio_packet_t again;
        assert_int_equal(feed_encoded(&d2, &enc, &again), 1);
        assert_pkt_equal(&pkt, &again);
        ts_sio_packet_clear(&again);
        ts_sio_decoder_deinit(&d2);

        ts_sio_encoded_clear(&enc);
        assert_int_equal(enc.n, 0);
        ts_sio_packet_clear(&pkt);
        assert_null(pkt.nsp);
        ts_sio_decoder_deinit(&d);
    }
}

static void test_binary_sequences(void **state) {
    (void)state;
    ts_sio_decoder_t d;
    ts_sio_packet_t pkt;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
    assert_int_equal(d.max_attachments, TS_SIO_MAX_ATTACHMENTS_DEFAULT);

    /* a binary message when none is expected */
    assert_ts_err(ts_sio_decoder_feed(&d, (const uint8_t *)"\x01", 1, 1, &pkt), TS_EPROTO);
    assert_non_null(strstr(d.errmsg, "no attachment is expected"));

    /* a text message while attachments are pending; the pending packet is dropped */
    ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
    const char hdr[] = "52-[\"a\"," PH(0) "," PH(1) "]";
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)hdr, strlen(hdr), 0, &pkt), 0);
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)"x", 1, 1, &pkt), 0);
    assert_null(pkt.nsp);
    assert_ts_err(ts_sio_decoder_feed(&d, (const uint8_t *)"2[\"b\"]", 6, 0, &pkt), TS_EPROTO);
    assert_non_null(strstr(d.errmsg, "1 of 2 attachments"));
    ts_sio_decoder_deinit(&d);

    /* ten attachments, one message at a time; an empty attachment is fine */
    ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
    const char ten[] = "510-[\"a\"," PH(9) "]";
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)ten, strlen(ten), 0, &pkt), 0);
    for (int i = 0; i < 10; i++) {
        uint8_t b[2] = {(uint8_t)i, 0xff};
        int rc = ts_sio_decoder_feed(&d, b, (size_t)(i % 3), 1, &pkt);
        assert_int_equal(rc, i == 9 ? 1 : 0);
    }
    assert_int_equal(pkt.type, TS_SIO_EVENT);
    assert_int_equal(pkt.nattach, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(pkt.attach[i]->len, (size_t)(i % 3));
        if (i % 3) assert_int_equal(pkt.attach[i]->data[0], i);
    }
    ts_sio_packet_clear(&pkt);
    /* the decoder is ready for the next packet */
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)"2[\"n\"]", 6, 0, &pkt), 1);
    ts_sio_packet_clear(&pkt);

    /* socket.io-parser "should resume decoding after calling destroy()" */
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)"51-[\"hello\"]", 12, 0, &pkt), 0);
    ts_sio_decoder_deinit(&d);
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)"2[\"hello\"]", 10, 0, &pkt), 1);
    assert_string_equal(json_string_value(json_array_get(pkt.data, 0)), "hello");
    ts_sio_packet_clear(&pkt);

    /* deinit frees a half-collected packet (ASan checks for leaks) */
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)hdr, strlen(hdr), 0, &pkt), 0);
    assert_int_equal(ts_sio_decoder_feed(&d, (const uint8_t *)"x", 1, 1, &pkt), 0);
    ts_sio_decoder_deinit(&d);

    /* max_attachments 0 forbids binary packets */
    ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
    d.max_attachments = 0;
    assert_ts_err(ts_sio_decoder_feed(&d, (const uint8_t *)"51-[\"a\"]", 8, 0, &pkt), TS_ELIMIT);
    ts_sio_decoder_deinit(&d);

    /* a text message on a msgpack decoder */
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    assert_ts_err(ts_sio_decoder_feed(&d, (const uint8_t *)"2[\"a\"]", 6, 0, &pkt), TS_EPROTO);
    assert_non_null(strstr(d.errmsg, "msgpack"));
    ts_sio_decoder_deinit(&d);
}

static void test_deep_nesting(void **state) {
    (void)state;
    /* jansson stops at depth 2048 (documented divergence); 2000 is fine */
    for (int depth = 2000; depth <= 3000; depth += 1000) {
        size_t n = 4 + 2 * (size_t)depth;
        char *s = ts_xmalloc(n + 1);
        size_t k = 0;
        s[k++] = '2';
        s[k++] = '[';
        s[k++] = '1';
        s[k++] = ',';
        for (int i = 0; i < depth - 1; i++) s[k++] = '[';
        for (int i = 0; i < depth; i++) s[k++] = ']';
        ts_sio_decoder_t d;
        ts_sio_packet_t pkt;
        ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
        int rc = ts_sio_decoder_feed(&d, (const uint8_t *)s, k, 0, &pkt);
        if (depth == 2000) {
            assert_int_equal(rc, 1);
            ts_sio_encoded_t enc;
            assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
            assert_int_equal(enc.msgs[0].buf->len, k + 1);
            assert_memory_equal(enc.msgs[0].buf->data + 1, s, k);
            ts_sio_encoded_clear(&enc);
            ts_sio_packet_clear(&pkt);
        } else {
            assert_ts_err(rc, TS_EJSON);
        }
        ts_sio_decoder_deinit(&d);
        free(s);
    }
}

static const struct real_case {
    double v;
    const char *js; /* String(v) in JS */
} real_cases[] = {
    {0.1, "0.1"},
    {1.5, "1.5"},
    {-1.5, "-1.5"},
    {1e21, "1e+21"},
    {1e20, "100000000000000000000"},
    {123456789012345678901.0, "123456789012345680000"},
    {-0.0, "0"},
    {0.0, "0"},
    {100, "100"},
    {1.0 / 3, "0.3333333333333333"},
    {0.1 + 0.2, "0.30000000000000004"},
    {4.35, "4.35"},
    {9007199254740992.0, "9007199254740992"},
    {5e-324, "5e-324"},
    {1.7976931348623157e308, "1.7976931348623157e+308"},
    {0.000001, "0.000001"},
    {0.0000012, "0.0000012"},
    {1e-7, "1e-7"},
    {1.5e-7, "1.5e-7"},
    {123e-20, "1.23e-18"},
    {2.5e22, "2.5e+22"},
    {-1e-100, "-1e-100"},
    {12.34, "12.34"},
    {1234.5678, "1234.5678"},
};

static void test_reals(void **state) {
    (void)state;
    for (size_t i = 0; i < TS_ARRAY_LEN(real_cases); i++) {
        ts_sio_packet_t pkt = {.type = TS_SIO_ACK, .id = TS_SIO_NO_ID, .nsp = "/"};
        pkt.data = json_pack("[f]", real_cases[i].v);
        ts_sio_encoded_t enc;
        assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
        char want[64];
        snprintf(want, sizeof want, "43[%s]", real_cases[i].js);
        assert_string_equal((const char *)enc.msgs[0].buf->data, want);
        /* it reads back as the same double */
        double back = strtod(real_cases[i].js, NULL);
        assert_true(back == real_cases[i].v);
        ts_sio_encoded_clear(&enc);
        json_decref(pkt.data);
    }
}

static void test_string_escapes(void **state) {
    (void)state;
    /* every byte below 0x20, then 0x7f and a few that JS leaves alone */
    char raw[40];
    for (int i = 0; i < 32; i++) raw[i] = (char)i;
    memcpy(raw + 32, "\x7f\"\\/<>'", 7);
    ts_sio_packet_t pkt = {.type = TS_SIO_ACK, .id = TS_SIO_NO_ID, .nsp = "/"};
    pkt.data = json_array();
    json_array_append_new(pkt.data, json_stringn(raw, 39));
    ts_sio_encoded_t enc;
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    /* JSON.stringify(String.fromCharCode(...Array(32).keys()) + "\x7f\"\\/<>'") */
    const char *want = "43[\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n"
                       "\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015"
                       "\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e"
                       "\\u001f\x7f\\\"\\\\/<>'\"]";
    assert_int_equal(enc.msgs[0].buf->len, strlen(want));
    assert_memory_equal(enc.msgs[0].buf->data, want, strlen(want));
    ts_sio_encoded_clear(&enc);
    json_decref(pkt.data);
}

static void test_encode_built_packets(void **state) {
    (void)state;
    ts_sio_encoded_t enc;
    /* CONNECT reply on a namespace */
    ts_sio_packet_t pkt = {.type = TS_SIO_CONNECT, .id = TS_SIO_NO_ID, .nsp = "/admin"};
    pkt.data = json_pack("{s:s}", "sid", "oSO0OpakMV_3jnilAAAA");
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    assert_string_equal((const char *)enc.msgs[0].buf->data,
                        "40/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}");
    ts_sio_encoded_clear(&enc);
    json_decref(pkt.data);

    /* keys in insertion order, not sorted */
    pkt = (ts_sio_packet_t){.type = TS_SIO_CONNECT_ERROR, .id = TS_SIO_NO_ID, .nsp = "/admin"};
    pkt.data = json_object();
    json_object_set_new(pkt.data, "message", json_string("Not authorized"));
    json_object_set_new(pkt.data, "data", json_pack("{s:i,s:b}", "z", 1, "a", 0));
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    assert_string_equal((const char *)enc.msgs[0].buf->data,
                        "44/admin,{\"message\":\"Not authorized\",\"data\":{\"z\":1,\"a\":false}}");
    ts_sio_encoded_clear(&enc);
    json_decref(pkt.data);

    /* JSON null data is left out, as Node's `null != obj.data` does */
    pkt = (ts_sio_packet_t){.type = TS_SIO_DISCONNECT, .id = TS_SIO_NO_ID, .nsp = "/a"};
    pkt.data = json_null();
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    assert_string_equal((const char *)enc.msgs[0].buf->data, "41/a,");
    ts_sio_encoded_clear(&enc);
    pkt.data = NULL;

    /* NULL nsp means "/" */
    pkt = (ts_sio_packet_t){.type = TS_SIO_EVENT, .id = 3, .nsp = NULL};
    pkt.data = json_pack("[s]", "x");
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    assert_string_equal((const char *)enc.msgs[0].buf->data, "423[\"x\"]");
    ts_sio_encoded_clear(&enc);

    /* attachments: BINARY_EVENT header, then each buffer, shared */
    ts_buf_t *att[2] = {ts_buf_from("\x01\x02\x03", 3), ts_buf_from("", 0)};
    json_decref(pkt.data);
    pkt = (ts_sio_packet_t){.type = TS_SIO_EVENT, .id = TS_SIO_NO_ID, .nsp = "/admin",
                            .nattach = 2, .attach = att};
    pkt.data = json_pack("[s,{s:b,s:i},{s:b,s:i}]", "upload", "_placeholder", 1, "num", 1,
                         "_placeholder", 1, "num", 0);
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    assert_int_equal(enc.n, 3);
    assert_string_equal((const char *)enc.msgs[0].buf->data,
                        "452-/admin,[\"upload\"," PH(1) "," PH(0) "]");
    assert_ptr_equal(enc.msgs[1].buf, att[0]);
    assert_ptr_equal(enc.msgs[2].buf, att[1]);
    assert_int_equal(att[0]->refs, 2);
    ts_sio_encoded_clear(&enc);
    assert_int_equal(att[0]->refs, 1);

    /* an ACK with attachments becomes BINARY_ACK */
    pkt.type = TS_SIO_ACK;
    pkt.id = 9;
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), 0);
    assert_string_equal((const char *)enc.msgs[0].buf->data,
                        "462-/admin,9[\"upload\"," PH(1) "," PH(0) "]");
    ts_sio_encoded_clear(&enc);

    /* packets that cannot be encoded */
    pkt.type = TS_SIO_CONNECT; /* binary only for EVENT/ACK */
    assert_ts_err(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), TS_EINVAL);
    assert_int_equal(enc.n, 0);
    pkt.type = TS_SIO_EVENT;
    pkt.nattach = 1; /* placeholder num 1 out of range */
    assert_ts_err(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), TS_EINVAL);
    pkt.nattach = 2;
    pkt.nsp = "/a,b"; /* Node: "invalid namespace: must not contain a comma" */
    assert_ts_err(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), TS_EINVAL);
    pkt.nsp = "admin"; /* would not decode back */
    assert_ts_err(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), TS_EINVAL);
    pkt.nsp = "/";
    pkt.id = -2;
    assert_ts_err(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), TS_EINVAL);
    pkt.id = TS_SIO_NO_ID;
    pkt.type = 7;
    assert_ts_err(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), TS_EINVAL);
    pkt.type = TS_SIO_EVENT;
    ts_buf_unref(att[1]);
    att[1] = NULL;
    assert_ts_err(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), TS_EINVAL);
    assert_ts_err(ts_sio_encode((ts_sio_parser_kind_t)5, &pkt, &enc), TS_EINVAL);
    ts_buf_unref(att[0]);
    json_decref(pkt.data);

    /* a placeholder in a packet without attachments cannot be encoded */
    pkt = (ts_sio_packet_t){.type = TS_SIO_EVENT, .id = TS_SIO_NO_ID, .nsp = "/"};
    pkt.data = json_pack("[s,{s:b,s:i}]", "a", "_placeholder", 1, "num", 0);
    assert_ts_err(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &enc), TS_EINVAL);
    json_decref(pkt.data);
}

static void test_check_shape(void **state) {
    (void)state;
    /* the shared check, as the msgpack parser uses it: absent data is only
     * fine where Node's msgpack parser accepts it */
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    ts_sio_packet_t pkt = {.type = TS_SIO_EVENT, .id = TS_SIO_NO_ID, .nsp = "/"};
    assert_ts_err(ts_sio__check_shape(&d, &pkt), TS_EPROTO);
    pkt.type = TS_SIO_CONNECT;
    assert_int_equal(ts_sio__check_shape(&d, &pkt), 0);
    pkt.type = TS_SIO_CONNECT_ERROR;
    assert_ts_err(ts_sio__check_shape(&d, &pkt), TS_EPROTO);
    d.kind = TS_SIO_PARSER_JSON;
    assert_int_equal(ts_sio__check_shape(&d, &pkt), 0);
    pkt.type = TS_SIO_BINARY_EVENT; /* never in a decoded packet */
    assert_ts_err(ts_sio__check_shape(&d, &pkt), TS_EPROTO);
    pkt.type = TS_SIO_ACK;
    pkt.id = -5;
    assert_ts_err(ts_sio__check_shape(&d, &pkt), TS_EPROTO);
    pkt.id = 0;
    pkt.nsp = NULL;
    assert_ts_err(ts_sio__check_shape(&d, &pkt), TS_EPROTO);
    pkt.nsp = "/";
    pkt.data = json_pack("[{s:b,s:f}]", "_placeholder", 1, "num", 1.0);
    pkt.nattach = 2; /* the real num is rewritten as an integer */
    assert_int_equal(ts_sio__check_shape(&d, &pkt), 0);
    assert_true(json_is_integer(json_object_get(json_array_get(pkt.data, 0), "num")));
    pkt.nattach = 1;
    assert_ts_err(ts_sio__check_shape(&d, &pkt), TS_EPROTO);
    json_decref(pkt.data);
    ts_sio_decoder_deinit(&d);
}

static void test_reserved(void **state) {
    (void)state;
    static const char *const yes[] = {"connect",       "connect_error", "disconnect",
                                      "disconnecting", "newListener",   "removeListener"};
    static const char *const no[] = {"", "Connect", "connected", "message", "error",
                                     "ping", "newlistener"};
    for (size_t i = 0; i < TS_ARRAY_LEN(yes); i++) assert_true(ts_sio_is_reserved_event(yes[i]));
    for (size_t i = 0; i < TS_ARRAY_LEN(no); i++) assert_false(ts_sio_is_reserved_event(no[i]));
}

/* Through the dispatch to the msgpack half: what one encodes, the other reads. */
static void test_msgpack_dispatch(void **state) {
    (void)state;
    ts_buf_t *att[1] = {ts_buf_from("\x01\x02", 2)};
    ts_sio_packet_t pkt = {.type = TS_SIO_EVENT, .id = 4, .nsp = "/admin", .nattach = 1,
                           .attach = att};
    pkt.data = json_pack("[s,{s:b,s:i}]", "up", "_placeholder", 1, "num", 0);
    ts_sio_encoded_t enc;
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_MSGPACK, &pkt, &enc), 0);
    assert_int_equal(enc.n, 1);
    assert_int_equal(enc.msgs[0].binary, 1);
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    ts_sio_packet_t back;
    int rc = ts_sio_decoder_feed(&d, enc.msgs[0].buf->data, enc.msgs[0].buf->len, 1, &back);
    if (rc != 1) fail_msg("rc %s: %s", ts_err_name(rc), d.errmsg);
    assert_pkt_equal(&pkt, &back);
    ts_sio_packet_clear(&back);
    ts_sio_decoder_deinit(&d);
    ts_sio_encoded_clear(&enc);
    json_decref(pkt.data);
    ts_buf_unref(att[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_binary_sequences),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_reals),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_encode_built_packets),
        cmocka_unit_test(test_check_shape),
        cmocka_unit_test(test_reserved),
        cmocka_unit_test(test_msgpack_dispatch),
    };
    return cmocka_run_group_tests_name("sio_packet", tests, NULL, NULL);
}
