/* test_packet_msgpack.c - the msgpack packet codec against the real npm
 * socket.io-msgpack-parser 3.0.2: every "node" hex below was printed by
 * node with that package (Encoder().encode(packet)), decoded here, compared
 * as a jansson tree, and re-encoded byte for byte. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "sio/packet_int.h"

#define assert_ts_err(got, want)                                                   \
    do {                                                                           \
        int g_ = (got), w_ = (want);                                               \
        if (g_ != w_) fail_msg("got %s (%d), want %s (%d)", g_ < 0 ? ts_err_name(g_) : "ok", g_, \
                               w_ < 0 ? ts_err_name(w_) : "ok", w_);              \
    } while (0)

/* Hex (spaces ignored) -> bytes; returns new. */
static uint8_t *unhex(const char *hex, size_t *len) {
    size_t n = strlen(hex), k = 0;
    uint8_t *out = ts_xmalloc(n / 2 + 1);
    int hi = -1;
    for (size_t i = 0; i < n; i++) {
        char c = hex[i];
        if (c == ' ') continue;
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        assert_true(v >= 0);
        if (hi < 0) {
            hi = v;
        } else {
            out[k++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_true(hi < 0);
    *len = k;
    return out;
}

/* Bytes -> hex; returns new. */
static char *tohex(const uint8_t *p, size_t n) {
    char *s = ts_xmalloc(n * 2 + 1);
    for (size_t i = 0; i < n; i++) snprintf(s + 2 * i, 3, "%02x", p[i]);
    s[n * 2] = '\0';
    return s;
}

static const char *g_case = ""; /* the table row being checked, for messages */

static void assert_hex_equal(const uint8_t *p, size_t n, const char *want_hex) {
    size_t wn;
    uint8_t *w = unhex(want_hex, &wn);
    char *got = tohex(p, n), *want = tohex(w, wn);
    if (strcmp(got, want) != 0) print_error("in case: %s\n", g_case);
    assert_string_equal(got, want);
    free(got);
    free(want);
    free(w);
}

static json_t *load(const char *js) {
    json_error_t e;
    json_t *j = json_loads(js, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) fail_msg("bad expected JSON %s: %s", js, e.text);
    return j;
}

#define SAME NULL  /* re-encoding equals the input */
static const char UNCHECKED[] = "-"; /* re-encoding need only decode back the same */

typedef struct dec_case {
    const char *name;
    const char *in;        /* hex of one binary message */
    int want;              /* 1, or the TS_E* code */
    const char *err;       /* fragment of d->errmsg when want < 0 */
    int type;
    const char *nsp;
    int64_t id;            /* TS_SIO_NO_ID when absent */
    const char *data;      /* expected tree as JSON; NULL: no data */
    const char *attach[4]; /* hex of each attachment, in order */
    const char *out;       /* hex of our re-encoding; SAME: `in`; UNCHECKED */
} dec_case_t;

/* "83 type 02 nsp / data" then the data value: shorthand for lenient cases. */
#define EV_HDR "83 a474797065 02 a36e7370 a12f a464617461 "
#define EV_OUT "83 a474797065 02 a464617461 "
#define EV_END " a36e7370 a12f"
#define ERR(n, hex, frag) {.name = (n), .in = (hex), .want = TS_EPROTO, .err = (frag)}

static const dec_case_t dec_cases[] = {
    /* ---- Node's own bytes: decode, compare, re-encode identically ---- */
    {"SOCKETIO.md 4 example {type,data,nsp,id}",
     "84a47479706502a46461746192a26869c4020102a36e7370a12fa2696403", 1, NULL, 2, "/", 3,
     "[\"hi\",{\"_placeholder\":true,\"num\":0}]", {"0102"},
     /* socket.io's emit() adds id before packet() adds nsp */
     "84a47479706502a46461746192a26869c4020102a2696403a36e7370a12f"},
    {"event with ack, node key order",
     "84a47479706502a46461746192a26869c4020102a2696403a36e7370a12f", 1, NULL, 2, "/", 3,
     "[\"hi\",{\"_placeholder\":true,\"num\":0}]", {"0102"}, SAME},
    {"CONNECT with auth", "83a47479706500a36e7370a12fa46461746181a5746f6b656ea3616263", 1, NULL,
     0, "/", TS_SIO_NO_ID, "{\"token\":\"abc\"}", {0},
     "83a47479706500a46461746181a5746f6b656ea3616263a36e7370a12f"},
    {"CONNECT /admin with auth",
     "83a47479706500a36e7370a62f61646d696ea46461746182a5746f6b656ea3616263a16e01", 1, NULL, 0,
     "/admin", TS_SIO_NO_ID, "{\"token\":\"abc\",\"n\":1}", {0},
     "83a47479706500a46461746182a5746f6b656ea3616263a16e01a36e7370a62f61646d696e"},
    {"CONNECT without data", "82a47479706500a36e7370a12f", 1, NULL, 0, "/", TS_SIO_NO_ID, NULL,
     {0}, SAME},
    {"CONNECT reply {sid}",
     "83a47479706500a46461746181a3736964b05472354b7a334758386d627a41414142a36e7370a12f", 1, NULL,
     0, "/", TS_SIO_NO_ID, "{\"sid\":\"Tr5Kz3GX8mbzAAAB\"}", {0}, SAME},
    {"CONNECT reply {sid, pid: undefined} drops pid",
     "83a47479706500a46461746182a3736964b05472354b7a334758386d627a41414142a3706964d40000a36e7370"
     "a12f",
     1, NULL, 0, "/", TS_SIO_NO_ID, "{\"sid\":\"Tr5Kz3GX8mbzAAAB\"}", {0},
     "83a47479706500a46461746181a3736964b05472354b7a334758386d627a41414142a36e7370a12f"},
    {"CONNECT_ERROR string",
     "83a47479706504a464617461ae6e6f7420617574686f72697a6564a36e7370a12f", 1, NULL, 4, "/",
     TS_SIO_NO_ID, "\"not authorized\"", {0}, SAME},
    {"CONNECT_ERROR object",
     "83a47479706504a46461746181a76d657373616765b1496e76616c6964206e616d657370616365a36e7370a72f"
     "72616e646f6d",
     1, NULL, 4, "/random", TS_SIO_NO_ID, "{\"message\":\"Invalid namespace\"}", {0}, SAME},
    {"DISCONNECT /admin", "82a47479706501a36e7370a62f61646d696e", 1, NULL, 1, "/admin",
     TS_SIO_NO_ID, NULL, {0}, SAME},
    {"EVENT with binary",
     "83a47479706502a46461746193a466696c65c404deadbeef81a16e01a36e7370a12f", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"file\",{\"_placeholder\":true,\"num\":0},{\"n\":1}]", {"deadbeef"}, SAME},
    {"ACK with id (id first, as socket.io's ack())",
     "84a2696407a47479706503a46461746192a26f6b2aa36e7370a12f", 1, NULL, 3, "/", 7,
     "[\"ok\",42]", {0}, SAME},
    {"ACK with uint16 id and binary",
     "84a26964cd012ca47479706503a46461746191c40378797aa36e7370a52f63686174", 1, NULL, 3, "/chat",
     300, "[{\"_placeholder\":true,\"num\":0}]", {"78797a"}, SAME},
    {"nested binary",
     "83a47479706502a46461746192a2757084a16192c4010181a162c4020203a163c0a164c3a165c2a36e7370a12f",
     1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"up\",{\"a\":[{\"_placeholder\":true,\"num\":0},{\"b\":{\"_placeholder\":true,\"num\":1}}],"
     "\"c\":null,\"d\":true,\"e\":false}]",
     {"01", "0203"}, SAME},
    {"undefined in data: array element null, map key dropped",
     "83a47479706502a46461746193a26576d4000082a178d40000a17901a36e7370a12f", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"ev\",null,{\"y\":1}]", {0},
     "83a47479706502a46461746193a26576c081a17901a36e7370a12f"},
    {"integers in every width",
     "83a47479706502a464617461dc0015a16e007fcc80ccffcd0100cdffffce00010000ceffffffffcf000000010000"
     "0000ffe0d0dfd080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffffcf001fffffffffffffd3ffe000"
     "0000000001a36e7370a12f",
     1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"n\",0,127,128,255,256,65535,65536,4294967295,4294967296,-1,-32,-33,-128,-129,-32768,"
     "-32769,-2147483648,-2147483649,9007199254740991,-9007199254740991]",
     {0}, SAME},
    {"floats: float64, integral float as int",
     "83a47479706502a46461746194a166cb3ff8000000000000cbbfd000000000000003a36e7370a12f", 1, NULL,
     2, "/", TS_SIO_NO_ID, "[\"f\",1.5,-0.25,3]", {0}, SAME},
    {"fixstr, str8 of 32 and 255, multibyte",
     "83a47479706502a46461746194a173bf61616161616161616161616161616161616161616161616161616161616161"
     "d9206262626262626262626262626262626262626262626262626262626262626262"
     "a9c3a9e282acf09f9880a36e7370a12f",
     1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"s\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\","
     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",
     {0}, SAME},
    {"array16 header", "83a47479706502a46461746192a26576dc001000000000000000000000000000000000a36e"
                       "7370a12f",
     1, NULL, 2, "/", TS_SIO_NO_ID, "[\"ev\",[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]", {0}, SAME},
    {"CONNECT nested object, UTF-8 keys",
     "83a47479706500a46461746182a16181a162920181a163c0a2c3a9a2c3bca36e7370a12f", 1, NULL, 0, "/",
     TS_SIO_NO_ID, "{\"a\":{\"b\":[1,{\"c\":null}]},\"\xc3\xa9\":\"\xc3\xbc\"}", {0}, SAME},
    {"string with NUL", "83a47479706502a46461746192a178a3610062a36e7370a12f", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",\"a\\u0000b\"]", {0}, SAME},
    {"id: undefined is no id", "84a47479706502a46461746191a178a36e7370a12fa26964d40000", 1, NULL, 2,
     "/", TS_SIO_NO_ID, "[\"x\"]", {0}, "83a47479706502a46461746191a178a36e7370a12f"},
    {"data: undefined is no data", "83a47479706500a36e7370a12fa464617461d40000", 1, NULL, 0, "/",
     TS_SIO_NO_ID, NULL, {0}, "82a47479706500a36e7370a12f"},
    {"Date (fixext 8 type 0) -> toJSON string",
     "83a47479706502a46461746192a164d7000000018bcfe5687ba36e7370a12f", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"d\",\"2023-11-14T22:13:20.123Z\"]", {0},
     "83a47479706502a46461746192a164b8323032332d31312d31345432323a31333a32302e3132335aa36e7370a12f"},
    {"ArrayBuffer from node (ext 8 type 0) -> binary",
     "83a47479706502a46461746192a26162c70300090807a36e7370a12f", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"ab\",{\"_placeholder\":true,\"num\":0}]", {"090807"},
     "83a47479706502a46461746192a26162c403090807a36e7370a12f"},

    /* ---- lenient decoding, as notepack 2.2.0 + JSON.stringify see it (node checked) ---- */
    {"invalid UTF-8 -> U+FFFD (lone 0xff)", EV_HDR "92a178 a361ff62", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",\"a\xef\xbf\xbd" "b\"]", {0}, EV_OUT "92a178 a561efbfbd62" EV_END},
    {"invalid UTF-8: truncated sequence at the end", EV_HDR "92a178 a2e282", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",\"\xef\xbf\xbd\"]", {0}, EV_OUT "92a178 a3efbfbd" EV_END},
    {"invalid UTF-8: surrogate is 3 replacements", EV_HDR "92a178 a3eda080", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"]", {0},
     EV_OUT "92a178 a9efbfbdefbfbdefbfbd" EV_END},
    {"invalid UTF-8: cut 4-byte sequence then ASCII", EV_HDR "92a178 a4f09f9878", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",\"\xef\xbf\xbdx\"]", {0}, EV_OUT "92a178 a4efbfbd78" EV_END},
    {"invalid UTF-8: overlong", EV_HDR "92a178 a2c0af", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",\"\xef\xbf\xbd\xef\xbf\xbd\"]", {0}, EV_OUT "92a178 a6efbfbdefbfbd" EV_END},
    {"invalid UTF-8 in a map key", EV_HDR "92a178 81a1ff01", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",{\"\xef\xbf\xbd\":1}]", {0}, EV_OUT "92a178 81a3efbfbd01" EV_END},
    {"Date -1 ms", EV_HDR "92a178 d700ffffffffffffffff", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",\"1969-12-31T23:59:59.999Z\"]", {0}, UNCHECKED},
    {"Date at the JS maximum", EV_HDR "92a178 d700001eb208c2dc0000", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",\"+275760-09-13T00:00:00.000Z\"]", {0}, UNCHECKED},
    {"Date beyond the JS range -> null", EV_HDR "92a178 d700001eb208c2dc0001", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",null]", {0}, UNCHECKED},
    {"Date year -2", EV_HDR "92a178 d700ffffc76cad3c1c00", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",\"-000002-10-16T02:14:42.432Z\"]", {0}, UNCHECKED},
    {"Date year 0", EV_HDR "92a178 d700ffffc77ca1d6e400", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",\"0000-12-17T05:52:56.320Z\"]", {0}, UNCHECKED},
    {"Date year -121815", EV_HDR "92a178 d700fff21f494c589c00", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",\"-121815-11-12T03:33:20.000Z\"]", {0}, UNCHECKED},
    {"ext 8 type 0 of 1 byte is an ArrayBuffer, not undefined", EV_HDR "92a178 c70100aa", 1, NULL,
     2, "/", TS_SIO_NO_ID, "[\"x\",{\"_placeholder\":true,\"num\":0}]", {"aa"},
     EV_OUT "92a178 c401aa" EV_END},
    {"ext 8 type 0 of 8 bytes is an ArrayBuffer, not a Date",
     EV_HDR "92a178 c708000102030405060708", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",{\"_placeholder\":true,\"num\":0}]", {"0102030405060708"},
     EV_OUT "92a178 c4080102030405060708" EV_END},
    {"fixext 1 type 0 is undefined whatever its byte", EV_HDR "92a178 d400aa", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",null]", {0}, EV_OUT "92a178 c0" EV_END},
    {"unknown ext -> [type, binary]", EV_HDR "92a178 d60501020304", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",[5,{\"_placeholder\":true,\"num\":0}]]", {"01020304"},
     EV_OUT "92a178 9205c40401020304" EV_END},
    {"fixext 1 of another type -> [type, binary]", EV_HDR "92a178 d4fdff", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",[-3,{\"_placeholder\":true,\"num\":0}]]", {"ff"},
     EV_OUT "92a178 92fdc401ff" EV_END},
    {"NaN -> null", EV_HDR "92a178 cb7ff8000000000000", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",null]", {0}, EV_OUT "92a178 c0" EV_END},
    {"-0.0 -> 0", EV_HDR "92a178 cb8000000000000000", 1, NULL, 2, "/", TS_SIO_NO_ID, "[\"x\",0]",
     {0}, EV_OUT "92a178 00" EV_END},
    {"float32", EV_HDR "93a178 ca3fc00000 ca40000000", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",1.5,2]", {0}, EV_OUT "93a178 cb3ff8000000000000 02" EV_END},
    {"uint64 max -> real", EV_HDR "92a178 cfffffffffffffffff", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",1.8446744073709552e19]", {0}, UNCHECKED},
    {"int64 min", EV_HDR "92a178 d38000000000000000", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",-9223372036854775808]", {0}, EV_OUT "92a178 d38000000000000000" EV_END},
    {"type as float64 2.0", "83a474797065cb4000000000000000a36e7370a12fa46461746191a178", 1, NULL,
     2, "/", TS_SIO_NO_ID, "[\"x\"]", {0}, "83a47479706502a46461746191a178a36e7370a12f"},
    {"id as float64 3.0", "84a47479706502a46461746191a178a36e7370a12fa26964cb4008000000000000", 1,
     NULL, 2, "/", 3, "[\"x\"]", {0}, "84a47479706502a46461746191a178a2696403a36e7370a12f"},
    {"unknown keys ignored, even with binary",
     "84a3666f6fc40101a47479706502a46461746191a178a36e7370a12f", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\"]", {0}, "83a47479706502a46461746191a178a36e7370a12f"},
    {"duplicate data key: the last wins, its binary only",
     "84a47479706502a46461746191c40101a46461746192a178c4020202a36e7370a12f", 1, NULL, 2, "/",
     TS_SIO_NO_ID, "[\"x\",{\"_placeholder\":true,\"num\":0}]", {"0202"},
     "83a47479706502a46461746192a178c4020202a36e7370a12f"},
    {"duplicate key drops the binaries of the value it replaces",
     EV_HDR "92a178 83a16492c4010181a162c4020203a163c0a164c3", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",{\"d\":true,\"c\":null}]", {0}, EV_OUT "92a178 82a164c3a163c0" EV_END},
    {"duplicate key replaced in place: placeholders renumbered in order",
     EV_HDR "92a178 83a161c40101a162c40102a161c40103", 1, NULL, 2, "/", TS_SIO_NO_ID,
     "[\"x\",{\"a\":{\"_placeholder\":true,\"num\":0},\"b\":{\"_placeholder\":true,"
     "\"num\":1}}]",
     {"03", "02"}, EV_OUT "92a178 82a161c40103a162c40102" EV_END},
    {"duplicate map key then undefined removes it", EV_HDR "92a178 82a16101a161d40000", 1, NULL, 2,
     "/", TS_SIO_NO_ID, "[\"x\",{}]", {0}, EV_OUT "92a178 80" EV_END},
    {"map16 / str16 / bin16 headers", EV_HDR "93a178 de0001a16bda0003616263 c50002abcd", 1, NULL, 2,
     "/", TS_SIO_NO_ID, "[\"x\",{\"k\":\"abc\"},{\"_placeholder\":true,\"num\":0}]", {"abcd"},
     EV_OUT "93a178 81a16ba3616263 c402abcd" EV_END},

    /* ---- errors: node rejects these too ---- */
    ERR("type 7", "82a47479706507a36e7370a12f", "invalid packet type"),
    ERR("type 5 (no BINARY_* in msgpack)", "83a47479706505a36e7370a12fa46461746191a178", "invalid packet type"),
    ERR("type missing", "81a36e7370a12f", "invalid packet type"),
    ERR("type undefined", "82a474797065d40000a36e7370a12f", "invalid packet type"),
    ERR("type a string", "82a474797065a132a36e7370a12f", "invalid packet type"),
    ERR("type 2.5", "83a474797065cb4004000000000000a36e7370a12fa46461746191a178", "invalid packet type"),
    ERR("type -1", "82a474797065ffa36e7370a12f", "invalid packet type"),
    ERR("type binary", "82a474797065c40102a36e7370a12f", "invalid packet type"),
    ERR("missing nsp", "81a47479706500", "invalid namespace"),
    ERR("nsp not a string", "82a47479706500a36e737001", "invalid namespace"),
    ERR("nsp null", "82a47479706500a36e7370c0", "invalid namespace"),
    ERR("id float 3.5", "84a47479706502a46461746191a178a36e7370a12fa26964cb400c000000000000", "invalid packet id"),
    ERR("id a string", "84a47479706502a46461746191a178a36e7370a12fa26964a133", "invalid packet id"),
    ERR("id null", "84a47479706502a46461746191a178a36e7370a12fa26964c0", "invalid packet id"),
    ERR("CONNECT data array", "83a47479706500a36e7370a12fa46461746190", "invalid payload"),
    ERR("CONNECT data null", "83a47479706500a36e7370a12fa464617461c0", "invalid payload"),
    ERR("CONNECT data string", "83a47479706500a36e7370a12fa464617461a178", "invalid payload"),
    ERR("DISCONNECT with data", "83a47479706501a36e7370a12fa46461746180", "invalid payload"),
    ERR("CONNECT_ERROR number", "83a47479706504a36e7370a12fa46461746101", "invalid payload"),
    ERR("CONNECT_ERROR without data", "82a47479706504a36e7370a12f", "invalid payload"),
    ERR("EVENT data not array", "83a47479706502a36e7370a12fa46461746180", "invalid payload"),
    ERR("EVENT without data", "82a47479706502a36e7370a12f", "invalid payload"),
    ERR("ACK data string", "84a47479706503a36e7370a12fa464617461a178a2696401", "invalid payload"),
    ERR("trailing byte", "82a47479706500a36e7370a12f00", "1 trailing bytes"),
    ERR("two packets in one message", "82a47479706500a36e7370a12f82a47479706500a36e7370a12f", "trailing bytes"),
    ERR("truncated: last byte missing",
     "84a47479706502a46461746192a26869c4020102a36e7370a12fa26964", "truncated"),
    ERR("truncated inside a bin", EV_HDR "92a178c40401", "truncated"),
    ERR("truncated inside a str length", EV_HDR "92a178da00", "truncated"),
    ERR("truncated inside a float", EV_HDR "92a178cb3ff8", "truncated"),
    ERR("truncated map key", "82a474797065", "truncated"),
    ERR("empty message", "", "empty"),
    ERR("not a map: positive int", "05", "must be a map"),
    ERR("not a map: array", "920102", "must be a map"),
    ERR("reserved type byte 0xc1", EV_HDR "92a178c1", "0xc1"),
    ERR("array32 claiming 4G elements", EV_HDR "ddffffffff", "truncated"),
    ERR("map32 claiming 4G entries", EV_HDR "92a178dfffffffff", "truncated"),
    ERR("packet map32 claiming 4G entries", "dfffffffff", "truncated"),

    /* ---- errors where we are stricter than node (see packet_msgpack.c) ---- */
    ERR("map with int keys", "83a47479706500a36e7370a12fa4646174618101 02", "not a string"),
    ERR("packet map with an int key", "8301 02a47479706500a36e7370a12f", "not a string"),
    ERR("map key is binary", EV_HDR "92a178 81c40161 01", "not a string"),
    ERR("literal placeholder object",
     "83a47479706500a36e7370a12fa46461746182ac5f706c616365686f6c646572c3a36e756d00", "_placeholder"),
    ERR("negative id", "84a47479706502a46461746191a178a36e7370a12fa26964ff", "invalid packet id"),
    ERR("map key with NUL", EV_HDR "92a178 81a2610001", "NUL"),
    ERR("packet map key with NUL", "83a474797065 02 a4646174 0091a178 a36e7370a12f", "NUL"),
    ERR("nsp with NUL", "82a47479706500a36e7370a32f0061", "NUL"),
    ERR("id beyond int64 (uint64 max)",
     "84a47479706502a46461746191a178a36e7370a12fa26964cfffffffffffffffff", "invalid packet id"),
};

static void free_pkt(ts_sio_packet_t *pkt) { ts_sio_packet_clear(pkt); }

static void check_case(const dec_case_t *c) {
    g_case = c->name;
    size_t n;
    uint8_t *in = unhex(c->in, &n);
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    ts_sio_packet_t pkt;
    int rc = ts_sio__msgpack_decode(&d, in, n, &pkt);
    if (rc != c->want) fail_msg("%s: rc %d (%s) want %d; errmsg: %s", c->name, rc,
                                rc < 0 ? ts_err_name(rc) : "ok", c->want, d.errmsg);
    if (rc < 0) {
        assert_ts_err(d.err, c->want);
        if (!strstr(d.errmsg, c->err))
            fail_msg("%s: errmsg \"%s\" lacks \"%s\"", c->name, d.errmsg, c->err);
        assert_true(strncmp(d.errmsg, "msgpack: ", 9) == 0 || strncmp(d.errmsg, "sio: ", 5) == 0);
        /* nothing owned after an error */
        assert_null(pkt.data);
        assert_null(pkt.nsp);
        assert_null(pkt.attach);
        assert_int_equal(pkt.nattach, 0);
        free(in);
        ts_sio_decoder_deinit(&d);
        return;
    }
    assert_int_equal(pkt.type, c->type);
    assert_string_equal(pkt.nsp, c->nsp);
    if (pkt.id != c->id) fail_msg("%s: id %lld want %lld", c->name, (long long)pkt.id,
                                  (long long)c->id);
    if (c->data) {
        json_t *want = load(c->data);
        if (!pkt.data || !json_equal(pkt.data, want)) {
            char *got = pkt.data ? json_dumps(pkt.data, JSON_ENCODE_ANY) : NULL;
            fail_msg("%s: data %s want %s", c->name, got ? got : "(none)", c->data);
        }
        json_decref(want);
    } else {
        assert_null(pkt.data);
    }
    size_t na = 0;
    while (na < 4 && c->attach[na]) na++;
    assert_int_equal(pkt.nattach, na);
    for (size_t i = 0; i < na; i++) assert_hex_equal(pkt.attach[i]->data, pkt.attach[i]->len,
                                                     c->attach[i]);

    ts_sio_encoded_t enc;
    assert_ts_err(ts_sio__msgpack_encode(&pkt, &enc), 0);
    assert_int_equal(enc.n, 1);
    assert_int_equal(enc.msgs[0].binary, 1);
    if (c->out != UNCHECKED)
        assert_hex_equal(enc.msgs[0].buf->data, enc.msgs[0].buf->len, c->out ? c->out : c->in);
    /* whatever the bytes, they decode to the same packet */
    ts_sio_packet_t again;
    rc = ts_sio__msgpack_decode(&d, enc.msgs[0].buf->data, enc.msgs[0].buf->len, &again);
    assert_int_equal(rc, 1);
    assert_int_equal(again.type, pkt.type);
    assert_string_equal(again.nsp, pkt.nsp);
    assert_true(again.id == pkt.id);
    assert_true((!again.data && !pkt.data) || json_equal(again.data, pkt.data));
    assert_int_equal(again.nattach, pkt.nattach);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(again.attach[i]->len, pkt.attach[i]->len);
        assert_memory_equal(again.attach[i]->data, pkt.attach[i]->data, pkt.attach[i]->len);
    }
    free_pkt(&again);
    ts_sio_encoded_clear(&enc);
    free_pkt(&pkt);
    ts_sio_decoder_deinit(&d);
    free(in);
}

static void test_decode_table(void **state) {
    (void)state;
    for (size_t i = 0; i < TS_ARRAY_LEN(dec_cases); i++) check_case(&dec_cases[i]);
}

/* Every strict prefix of every valid case is an error, never a crash. */
static void test_every_prefix_fails(void **state) {
    (void)state;
    for (size_t i = 0; i < TS_ARRAY_LEN(dec_cases); i++) {
        const dec_case_t *c = &dec_cases[i];
        if (c->want != 1) continue;
        size_t n;
        uint8_t *in = unhex(c->in, &n);
        for (size_t k = 0; k < n; k++) {
            uint8_t *cut = ts_xmemdup(in, k ? k : 1); /* exact-size heap copy for ASan */
            ts_sio_decoder_t d;
            ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
            ts_sio_packet_t pkt;
            int rc = ts_sio__msgpack_decode(&d, cut, k, &pkt);
            if (rc != TS_EPROTO) fail_msg("%s: prefix of %zu bytes gave %d", c->name, k, rc);
            assert_null(pkt.data);
            free(cut);
            ts_sio_decoder_deinit(&d);
        }
        free(in);
    }
}

/* data = ["x", [[...[0]...]]] with `k` nested arrays: the packet map is
 * level 1, data level 2, so k = 62 is the deepest accepted. */
static int decode_nested(int k, ts_sio_decoder_t *d) {
    ts_sbuf_t sb = TS_SBUF_INIT;
    size_t hn;
    uint8_t *hdr = unhex(EV_OUT "92a178", &hn);
    ts_sbuf_append(&sb, hdr, hn);
    free(hdr);
    for (int i = 0; i < k; i++) ts_sbuf_putc(&sb, (char)0x91);
    ts_sbuf_putc(&sb, 0);
    hdr = unhex(EV_END, &hn);
    ts_sbuf_append(&sb, hdr, hn);
    free(hdr);
    ts_buf_t *b = ts_sbuf_finish(&sb);
    ts_sio_packet_t pkt;
    int rc = ts_sio__msgpack_decode(d, b->data, b->len, &pkt);
    if (rc == 1) {
        ts_sio_encoded_t enc;
        assert_int_equal(ts_sio__msgpack_encode(&pkt, &enc), 0);
        assert_int_equal(enc.msgs[0].buf->len, b->len);
        assert_memory_equal(enc.msgs[0].buf->data, b->data, b->len);
        ts_sio_encoded_clear(&enc);
        free_pkt(&pkt);
    }
    ts_buf_unref(b);
    return rc;
}

static void test_deep_nesting(void **state) {
    (void)state;
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    assert_int_equal(decode_nested(62, &d), 1);
    assert_ts_err(decode_nested(63, &d), TS_EPROTO);
    assert_non_null(strstr(d.errmsg, "nesting deeper than 64"));
    assert_ts_err(decode_nested(100000, &d), TS_EPROTO);
    ts_sio_decoder_deinit(&d);
}

/* An ext of an unknown type decodes to [type, binary], one level deeper:
 * at the nesting limit it must be refused, or its re-encoding (an array)
 * would not decode again. Found by fuzz_sio_msgpack. */
static void test_ext_counts_as_nesting(void **state) {
    (void)state;
    static const char crash[] =
        "83a47479706502a36e7370a12fa46461746192a15591919191919191919191919191919191919191"
        "91919191919191919191919191919191919191919191919191919191919191919193919191919191"
        "919191d591717091919191b5919191919191919191919191919191919191919191919191919100";
    size_t n;
    uint8_t *in = unhex(crash, &n);
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    ts_sio_packet_t pkt;
    assert_ts_err(ts_sio_decoder_feed(&d, in, n, 1, &pkt), TS_EPROTO);
    assert_non_null(strstr(d.errmsg, "nesting deeper than 64"));
    ts_sio_decoder_deinit(&d);
    free(in);
}

/* A packet of many empty binaries would multiply its size in memory: at
 * most 256 binary values (each a buffer + a placeholder object). */
static void test_binary_count_limit(void **state) {
    (void)state;
    for (int count = 256; count <= 257; count++) {
        ts_sbuf_t sb = TS_SBUF_INIT;
        size_t hn;
        uint8_t *hdr = unhex("83a47479706502a36e7370a12fa464617461", &hn); /* {type:2,nsp:"/",data: */
        ts_sbuf_append(&sb, hdr, hn);
        free(hdr);
        uint8_t arr[3] = {0xdc, (uint8_t)((count + 1) >> 8), (uint8_t)(count + 1)};
        ts_sbuf_append(&sb, arr, 3);
        ts_sbuf_append(&sb, "\xa1" "e", 2); /* event name "e" */
        for (int i = 0; i < count; i++) ts_sbuf_append(&sb, "\xc4\x00", 2);
        ts_buf_t *b = ts_sbuf_finish(&sb);
        ts_sio_decoder_t d;
        ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
        ts_sio_packet_t pkt;
        int rc = ts_sio_decoder_feed(&d, b->data, b->len, 1, &pkt);
        if (count == 256) {
            assert_int_equal(rc, 1);
            assert_int_equal(pkt.nattach, 256);
            ts_sio_packet_clear(&pkt);
        } else {
            assert_ts_err(rc, TS_EPROTO);
            assert_non_null(strstr(d.errmsg, "more than 256 binary values"));
        }
        ts_sio_decoder_deinit(&d);
        ts_buf_unref(b);
    }
}

/* Maps nested deeply too (each level {"a": ...}). */
static void test_deep_maps(void **state) {
    (void)state;
    ts_sbuf_t sb = TS_SBUF_INIT;
    size_t hn;
    uint8_t *hdr = unhex("83a47479706500a36e7370a12fa464617461", &hn);
    ts_sbuf_append(&sb, hdr, hn);
    free(hdr);
    for (int i = 0; i < 70; i++) ts_sbuf_append(&sb, "\x81\xa1" "a", 3);
    ts_sbuf_putc(&sb, (char)0xc0);
    ts_buf_t *b = ts_sbuf_finish(&sb);
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    ts_sio_packet_t pkt;
    assert_ts_err(ts_sio__msgpack_decode(&d, b->data, b->len, &pkt), TS_EPROTO);
    assert_non_null(strstr(d.errmsg, "nesting"));
    ts_buf_unref(b);
    ts_sio_decoder_deinit(&d);
}

/* ---- encoding packets built in C ---- */

static void set_pkt(ts_sio_packet_t *p, int type, const char *nsp, int64_t id, const char *data) {
    memset(p, 0, sizeof(*p));
    p->type = (uint8_t)type;
    p->nsp = nsp ? ts_xstrdup(nsp) : NULL;
    p->id = id;
    p->data = data ? load(data) : NULL;
}

static void add_attach(ts_sio_packet_t *p, const char *hex) {
    size_t n;
    uint8_t *b = unhex(hex, &n);
    p->attach = ts_xrealloc(p->attach, (p->nattach + 1) * sizeof(*p->attach));
    p->attach[p->nattach++] = ts_buf_from(b, n);
    free(b);
}

static void expect_encode(ts_sio_packet_t *p, const char *want_hex) {
    ts_sio_encoded_t enc;
    assert_ts_err(ts_sio__msgpack_encode(p, &enc), 0);
    assert_int_equal(enc.n, 1);
    assert_int_equal(enc.msgs[0].binary, 1);
    assert_hex_equal(enc.msgs[0].buf->data, enc.msgs[0].buf->len, want_hex);
    ts_sio_encoded_clear(&enc);
    free_pkt(p);
}

static void test_encode_like_node(void **state) {
    (void)state;
    ts_sio_packet_t p;
    /* socket.emit("hi", Buffer.from([1,2]), cb) */
    set_pkt(&p, 2, "/", 3, "[\"hi\",{\"_placeholder\":true,\"num\":0}]");
    add_attach(&p, "0102");
    expect_encode(&p, "84a47479706502a46461746192a26869c4020102a2696403a36e7370a12f");
    /* BINARY_EVENT/BINARY_ACK are string-form only: written as 2/3 */
    set_pkt(&p, TS_SIO_BINARY_ACK, "/chat", 300, "[{\"_placeholder\":true,\"num\":0}]");
    add_attach(&p, "78797a");
    expect_encode(&p, "84a26964cd012ca47479706503a46461746191c40378797aa36e7370a52f63686174");
    /* CONNECT reply, DISCONNECT, CONNECT_ERROR */
    set_pkt(&p, 0, "/", TS_SIO_NO_ID, "{\"sid\":\"Tr5Kz3GX8mbzAAAB\"}");
    expect_encode(&p, "83a47479706500a46461746181a3736964b05472354b7a334758386d627a41414142a36e"
                      "7370a12f");
    set_pkt(&p, 1, "/admin", TS_SIO_NO_ID, NULL);
    expect_encode(&p, "82a47479706501a36e7370a62f61646d696e");
    set_pkt(&p, 4, "/", TS_SIO_NO_ID, "\"not authorized\"");
    expect_encode(&p, "83a47479706504a464617461ae6e6f7420617574686f72697a6564a36e7370a12f");
    /* a NULL nsp is "/" */
    set_pkt(&p, 0, NULL, TS_SIO_NO_ID, NULL);
    expect_encode(&p, "82a47479706500a36e7370a12f");
    /* an empty binary; a placeholder num that is an integral real */
    set_pkt(&p, 2, "/", TS_SIO_NO_ID, "[\"b\",{\"_placeholder\":true,\"num\":0.0}]");
    add_attach(&p, "");
    expect_encode(&p, "83a47479706502a46461746192a162c400a36e7370a12f");
}

/* jansson reals as JS numbers: node wrote
 * {type:2,data:['f',1.5,-0.25,3,-0,2**63,-(2**63),18446744073709549568,2**32,-(2**32)-1],nsp:'/'} */
static void test_encode_reals(void **state) {
    (void)state;
    ts_sio_packet_t p;
    set_pkt(&p, 2, "/", TS_SIO_NO_ID, NULL);
    p.data = json_pack("[s,f,f,f,f,f,f,f,f,f]", "f", 1.5, -0.25, 3.0, -0.0, 9223372036854775808.0,
                       -9223372036854775808.0, 18446744073709549568.0, 4294967296.0,
                       -4294967297.0);
    expect_encode(&p, "83a47479706502a4646174619aa166cb3ff8000000000000cbbfd00000000000000300cf80"
                      "00000000000000d38000000000000000cffffffffffffff800cf0000000100000000d3ffff"
                      "fffeffffffffa36e7370a12f");
    /* beyond 64 bits node writes garbage (cf 00..00 for 1e300); we keep the float64 */
    set_pkt(&p, 2, "/", TS_SIO_NO_ID, NULL);
    p.data = json_pack("[s,f,f]", "f", 1e300, 1.8446744073709552e19);
    expect_encode(&p, EV_OUT "93a166 cb7e37e43c8800759c cb43f0000000000000" EV_END);
}

/* Node: {type:2,data:['big','a'*300,Buffer.alloc(300,7),Array(16).fill(0),
 * {k0:0..kf:15},'b'*70000],nsp:'/'} is 70720 bytes: header bytes pasted
 * from node, bodies repeated here. */
static void test_encode_long_forms(void **state) {
    (void)state;
    ts_sio_packet_t p;
    set_pkt(&p, 2, "/", TS_SIO_NO_ID, NULL);
    char *a300 = ts_xmalloc(301), *b70k = ts_xmalloc(70001);
    memset(a300, 'a', 300);
    a300[300] = 0;
    memset(b70k, 'b', 70000);
    b70k[70000] = 0;
    json_t *arr = json_array(), *map = json_object();
    for (int i = 0; i < 16; i++) {
        char k[4];
        snprintf(k, sizeof(k), "k%x", i);
        json_array_append_new(arr, json_integer(0));
        json_object_set_new(map, k, json_integer(i));
    }
    p.data = json_pack("[s,s,{s:b,s:i},o,o,s]", "big", a300, "_placeholder", 1, "num", 0, arr, map,
                       b70k);
    uint8_t sevens[300];
    memset(sevens, 7, sizeof(sevens));
    p.attach = ts_xmalloc(sizeof(*p.attach));
    p.attach[0] = ts_buf_from(sevens, sizeof(sevens));
    p.nattach = 1;

    ts_sbuf_t want = TS_SBUF_INIT;
    size_t n;
    uint8_t *h;
#define HEX(s)                                                                                     \
    (h = unhex(s, &n), ts_sbuf_append(&want, h, n), free(h))
    HEX("83a47479706502a46461746196a3626967da012c");
    ts_sbuf_append(&want, a300, 300);
    HEX("c5012c");
    ts_sbuf_append(&want, sevens, 300);
    HEX("dc0010");
    for (int i = 0; i < 16; i++) ts_sbuf_putc(&want, 0);
    HEX("de0010");
    for (int i = 0; i < 16; i++) {
        char k[4];
        snprintf(k, sizeof(k), "k%x", i);
        ts_sbuf_putc(&want, (char)0xa2);
        ts_sbuf_append(&want, k, 2);
        ts_sbuf_putc(&want, (char)i);
    }
    HEX("db00011170");
    ts_sbuf_append(&want, b70k, 70000);
    HEX("a36e7370a12f");
#undef HEX
    ts_buf_t *w = ts_sbuf_finish(&want);
    assert_int_equal(w->len, 141440 / 2); /* node's length */

    ts_sio_encoded_t enc;
    assert_int_equal(ts_sio__msgpack_encode(&p, &enc), 0);
    assert_int_equal(enc.msgs[0].buf->len, w->len);
    assert_memory_equal(enc.msgs[0].buf->data, w->data, w->len);
    /* and back */
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    ts_sio_packet_t back;
    assert_int_equal(ts_sio__msgpack_decode(&d, w->data, w->len, &back), 1);
    assert_true(json_equal(back.data, p.data));
    assert_int_equal(back.nattach, 1);
    assert_memory_equal(back.attach[0]->data, sevens, 300);
    free_pkt(&back);
    ts_sio_decoder_deinit(&d);
    ts_sio_encoded_clear(&enc);
    ts_buf_unref(w);
    free(a300);
    free(b70k);
    free_pkt(&p);
}

static void test_encode_errors(void **state) {
    (void)state;
    static const struct {
        const char *name;
        int type;
        int64_t id;
        const char *data;
        int nattach;
    } cases[] = {
        {"placeholder num out of range", 2, TS_SIO_NO_ID,
         "[\"x\",{\"_placeholder\":true,\"num\":1}]", 1},
        {"placeholder without num", 2, TS_SIO_NO_ID, "[\"x\",{\"_placeholder\":true}]", 1},
        {"placeholder num negative", 2, TS_SIO_NO_ID, "[\"x\",{\"_placeholder\":true,\"num\":-1}]",
         1},
        {"placeholder without attachments", 2, TS_SIO_NO_ID,
         "{\"a\":{\"_placeholder\":true,\"num\":0}}", 0},
        {"type 9", 9, TS_SIO_NO_ID, NULL, 0},
        {"negative id other than NO_ID", 3, -5, "[]", 0},
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(cases); i++) {
        ts_sio_packet_t p;
        set_pkt(&p, cases[i].type, "/", cases[i].id, cases[i].data);
        for (int k = 0; k < cases[i].nattach; k++) add_attach(&p, "01");
        ts_sio_encoded_t enc;
        int rc = ts_sio__msgpack_encode(&p, &enc);
        if (rc != TS_EINVAL) fail_msg("%s: rc %d", cases[i].name, rc);
        assert_int_equal(enc.n, 0);
        assert_null(enc.msgs);
        free_pkt(&p);
    }
    /* "_placeholder": false is an ordinary object */
    ts_sio_packet_t p;
    set_pkt(&p, 2, "/", TS_SIO_NO_ID, "[\"x\",{\"_placeholder\":false}]");
    expect_encode(&p, EV_OUT "92a178 81ac5f706c616365686f6c646572c2" EV_END);
}

/* Through the public entry points (packet.c's dispatch). */
static void test_public_api(void **state) {
    (void)state;
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    size_t n;
    uint8_t *in = unhex("84a47479706502a46461746192a26869c4020102a2696403a36e7370a12f", &n);
    ts_sio_packet_t pkt;
    assert_int_equal(ts_sio_decoder_feed(&d, in, n, 1, &pkt), 1);
    assert_int_equal(pkt.type, TS_SIO_EVENT);
    assert_int_equal(pkt.nattach, 1);
    ts_sio_encoded_t enc;
    assert_int_equal(ts_sio_encode(TS_SIO_PARSER_MSGPACK, &pkt, &enc), 0);
    assert_int_equal(enc.n, 1);
    assert_int_equal(enc.msgs[0].binary, 1);
    assert_int_equal(enc.msgs[0].buf->len, n);
    assert_memory_equal(enc.msgs[0].buf->data, in, n);
    ts_sio_encoded_clear(&enc);
    ts_sio_packet_clear(&pkt);
    /* shared shape rule on top of the msgpack ones: reserved event name */
    free(in);
    in = unhex(EV_HDR "91a7636f6e6e656374", &n);
    assert_ts_err(ts_sio_decoder_feed(&d, in, n, 1, &pkt), TS_EPROTO);
    assert_null(pkt.data);
    free(in);
    /* a decoding error through the dispatch keeps our message */
    in = unhex("82a47479706507a36e7370a12f", &n);
    assert_ts_err(ts_sio_decoder_feed(&d, in, n, 1, &pkt), TS_EPROTO);
    assert_non_null(strstr(d.errmsg, "msgpack: invalid packet type"));
    free(in);
    ts_sio_decoder_deinit(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_table),      cmocka_unit_test(test_every_prefix_fails),
        cmocka_unit_test(test_deep_nesting), cmocka_unit_test(test_ext_counts_as_nesting), cmocka_unit_test(test_binary_count_limit),      cmocka_unit_test(test_deep_maps),
        cmocka_unit_test(test_encode_like_node),  cmocka_unit_test(test_encode_reals),
        cmocka_unit_test(test_encode_long_forms), cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_public_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
