/* test_json_mp.c - tables for src/core/json_mp.c: canonical text to msgpack
 * byte for byte as notepack writes it (rows checked against the bytes of
 * @socket.io/redis-adapter in tests/adapter/rmsg-vectors.json through
 * tests/adapter/test_rmsg.c), msgpack back to the canonical text, and what
 * each direction declines. Every row is also fed cut at every offset: a
 * cut value is declined and leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"

static size_t unhex(const char *h, uint8_t *out) {
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static char *hex(const uint8_t *p, size_t n) {
    static char buf[4096];
    for (size_t i = 0; i < n && 2 * i + 2 < sizeof buf; i++) snprintf(buf + 2 * i, 3, "%02x", p[i]);
    buf[2 * (n < sizeof buf / 2 - 1 ? n : sizeof buf / 2 - 1)] = '\0';
    return buf;
}

/* Both ways: text -> msgpack gives `mp`, and msgpack -> text gives the
 * text back. */
static const struct both {
    const char *text, *mp;
} both[] = {
    {"0", "00"},
    {"127", "7f"},
    {"128", "cc80"},
    {"255", "ccff"},
    {"256", "cd0100"},
    {"65536", "ce00010000"},
    {"4294967296", "cf0000000100000000"},
    {"9007199254740992", "cf0020000000000000"},
    {"-1", "ff"},
    {"-32", "e0"},
    {"-33", "d0df"},
    {"-128", "d080"},
    {"-129", "d1ff7f"},
    {"-32769", "d2ffff7fff"},
    {"-2147483649", "d3ffffffff7fffffff"},
    {"-9007199254740992", "d3ffe0000000000000"},
    {"2.5", "cb4004000000000000"},
    {"-0.1", "cbbfb999999999999a"},
    {"1e+300", "cb7e37e43c8800759c"},
    {"true", "c3"},
    {"false", "c2"},
    {"null", "c0"},
    {"\"\"", "a0"},
    {"\"a\"", "a161"},
    {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "a9c3a9e282acf09f9880"},
    {"\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\"", "ac6122625c630a090d080c011f"},
    {"\"0123456789012345678901234567890\"", "bf30313233343536373839303132333435363738393031323334353637383930"},
    {"\"01234567890123456789012345678901\"",
     "d9203031323334353637383930313233343536373839303132333435363738393031"},
    {"[]", "90"},
    {"{}", "80"},
    {"[1,[2,[3]],{\"a\":{}}]", "93019202910381a16180"},
    {"{\"b\":1,\"a\":2}", "82a16201a16102"},
    {"[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]", "9f000102030405060708090a0b0c0d0e"},
    {"[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", "dc0010000102030405060708090a0b0c0d0e0f"},
    {"{\"a\":0,\"b\":1,\"c\":2,\"d\":3,\"e\":4,\"f\":5,\"g\":6,\"h\":7,\"i\":8,\"j\":9,\"k\":10,"
     "\"l\":11,\"m\":12,\"n\":13,\"o\":14,\"p\":15}",
     "de0010a16100a16201a16302a16403a16504a16605a16706a16807a16908a16a09a16b0aa16c0ba16d0ca16e0da1"
     "6f0ea1700f"},
    {"[\"hello\",\"world\",1,-7,2.5,true,false,null,{\"a\":[1,\"x\"],\"b c\":{\"d\":\"\xc3\xa9\xe2\x82"
     "\xac\xf0\x9f\x98\x80\"}}]",
     "99a568656c6c6fa5776f726c6401f9cb4004000000000000c3c2c082a1619201a178a362206381a164a9c3a9e2"
     "82acf09f9880"},
};

static void check_cuts_decline(const uint8_t *mp, size_t n) {
    for (size_t cut = 0; cut < n; cut++) {
        ts_sbuf_t s = TS_SBUF_INIT;
        size_t used = ts_json_from_msgpack(&s, mp, cut);
        /* a prefix may be a whole value of its own only at a container's
         * or a number's natural end, never here: every row is one value */
        if (used == cut && cut) fail_msg("%s cut at %zu read as a value", hex(mp, n), cut);
        if (used == 0) assert_int_equal(ts_sbuf_len(&s), 0);
        ts_sbuf_free(&s);
    }
}

static void both_ways(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof both / sizeof both[0]; i++) {
        uint8_t want[512];
        size_t wn = unhex(both[i].mp, want);
        ts_sbuf_t s = TS_SBUF_INIT;
        ts_sbuf_append(&s, "x", 1); /* appends, keeps what was there */
        if (ts_json_to_msgpack(&s, ts_slice_str(both[i].text)) != 0)
            fail_msg("%s: declined", both[i].text);
        if (ts_sbuf_len(&s) != wn + 1 || memcmp(ts_sbuf_data(&s) + 1, want, wn) != 0)
            fail_msg("%s: %s, want %s", both[i].text, hex(ts_sbuf_data(&s) + 1, ts_sbuf_len(&s) - 1),
                     both[i].mp);
        ts_sbuf_free(&s);
        /* vouched for as canonical (not checked): the same bytes */
        ts_sbuf_t c = TS_SBUF_INIT;
        if (ts_json_to_msgpack_canonical(&c, ts_slice_str(both[i].text)) != 0 ||
            ts_sbuf_len(&c) != wn || memcmp(ts_sbuf_data(&c), want, wn) != 0)
            fail_msg("%s: the unchecked transcoder differs", both[i].text);
        ts_sbuf_free(&c);

        ts_sbuf_t t = TS_SBUF_INIT;
        uint8_t more[520];
        memcpy(more, want, wn);
        memcpy(more + wn, "\xc0\xc0", 2); /* what follows is not read */
        size_t used = ts_json_from_msgpack(&t, more, wn + 2);
        if (used != wn) fail_msg("%s: read %zu of %zu bytes", both[i].mp, used, wn);
        if (ts_sbuf_len(&t) != strlen(both[i].text) ||
            memcmp(ts_sbuf_data(&t), both[i].text, ts_sbuf_len(&t)) != 0)
            fail_msg("%s: text %.*s, want %s", both[i].mp, (int)ts_sbuf_len(&t),
                     (const char *)ts_sbuf_data(&t), both[i].text);
        ts_sbuf_free(&t);
        check_cuts_decline(want, wn);
    }
}

/* msgpack -> text only: encodings notepack or other writers use that the
 * text way never writes (wider than needed, float32, whole doubles). */
static const struct one_way {
    const char *mp, *text;
} from_mp[] = {
    {"cc05", "5"},
    {"d000", "0"},
    {"d3fffffffffffffffe", "-2"},
    {"cf0000000000000007", "7"},
    {"ca40200000", "2.5"},
    {"cb4059000000000000", "100"},
    {"cb8000000000000000", "0"},
    {"cb4350000000000000", "18014398509481984"}, /* 2^54: JS writes whole doubles so */
    {"cb444b1ae4d6e2ef50", "1e+21"},
    {"da0001" "61", "\"a\""},
    {"db00000001" "61", "\"a\""},
    {"dd00000001" "01", "[1]"},
    {"df00000001" "a16101", "{\"a\":1}"},
    {"a3e280a8", "\"\xe2\x80\xa8\""}, /* U+2028 stays as it is, as JSON.stringify writes it */
};

static void from_msgpack_only(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof from_mp / sizeof from_mp[0]; i++) {
        uint8_t in[64];
        size_t n = unhex(from_mp[i].mp, in);
        ts_sbuf_t t = TS_SBUF_INIT;
        assert_int_equal(ts_json_from_msgpack(&t, in, n), n);
        if (ts_sbuf_len(&t) != strlen(from_mp[i].text) ||
            memcmp(ts_sbuf_data(&t), from_mp[i].text, ts_sbuf_len(&t)) != 0)
            fail_msg("%s: %.*s, want %s", from_mp[i].mp, (int)ts_sbuf_len(&t),
                     (const char *)ts_sbuf_data(&t), from_mp[i].text);
        ts_sbuf_free(&t);
    }
}

/* What the tree path must judge: each declined, nothing appended. */
static void declined(void **state) {
    (void)state;
    static const char *const texts[] = {
        "",
        " 1",
        "1e7",                       /* not canonical */
        "\"\\u0000\"",               /* NUL: JSON_ALLOW_NUL is the tree path's business */
        "\"\\ud800\"",               /* a lone surrogate */
        "{\"0\":1}",                 /* an array-index key: JS orders those first */
        "{\"a\":1,\"a\":2}",          /* repeated key */
        "{\"_placeholder\":true,\"num\":0}",
        "9007199254740993",          /* beyond 2^53 */
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", /* 33 deep */
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ts_sbuf_t s = TS_SBUF_INIT;
        if (ts_json_to_msgpack(&s, ts_slice_str(texts[i])) != TS_EINVAL)
            fail_msg("took %s", texts[i]);
        assert_int_equal(ts_sbuf_len(&s), 0);
        ts_sbuf_free(&s);
    }
    static const char *const mps[] = {
        "",
        "c1",                 /* never used */
        "c40161",             /* bin: a Buffer */
        "d4ff00",             /* ext: notepack's undefined */
        "d6ff00000000",       /* ext -1: a timestamp */
        "cf0020000000000001", /* 2^53 + 1 */
        "d3ffdfffffffffffff", /* -(2^53 + 1) */
        "cb7ff0000000000000", /* Infinity */
        "cb7ff8000000000000", /* NaN */
        "81a13001",           /* {"0": 1} */
        "82a16101a16102",     /* {"a":1,"a":2} */
        "8101a0",             /* an integer key */
        "a2c328",             /* not UTF-8 */
        "a200ff",             /* NUL (and not UTF-8) */
        "a161ff",             /* trailing garbage is fine, a bad value is not: see below */
        "82ac5f706c616365686f6c646572c3a36e756d00", /* a placeholder object */
        "91919191919191919191919191919191919191919191919191919191919191919190", /* 33 deep */
    };
    for (size_t i = 0; i < sizeof mps / sizeof mps[0]; i++) {
        uint8_t in[128];
        size_t n = unhex(mps[i], in);
        ts_sbuf_t t = TS_SBUF_INIT;
        size_t used = ts_json_from_msgpack(&t, in, n);
        if (strcmp(mps[i], "a161ff") == 0) { /* "a" followed by a byte the caller did not ask about */
            assert_int_equal(used, 2);
        } else if (used != 0) {
            fail_msg("took %s as %.*s", mps[i], (int)ts_sbuf_len(&t), (const char *)ts_sbuf_data(&t));
        } else {
            assert_int_equal(ts_sbuf_len(&t), 0);
        }
        ts_sbuf_free(&t);
    }
}

/* ts_mp_rd_skip passes exactly one value of the given bytes (followed by
 * one that is not read), and refuses every cut of it. */
static void check_skip(const char *mphex) {
    uint8_t in[600];
    size_t n = unhex(mphex, in);
    in[n] = 0xc1; /* never used: reading it would fail */
    ts_mp_rd_t r = {in, in + n + 1};
    if (ts_mp_rd_skip(&r) != 0 || r.p != in + n) fail_msg("%s: not skipped whole", mphex);
    for (size_t cut = 0; cut < n; cut++) {
        ts_mp_rd_t c = {in, in + cut};
        if (ts_mp_rd_skip(&c) == 0) fail_msg("%s cut at %zu skipped as a value", mphex, cut);
    }
}

/* Every value the transcoders take, and the well-formed ones they decline
 * (bin, ext, fixext, deep nesting): skipped whole; what is not msgpack is
 * refused; nesting far beyond the transcoders' 32 levels costs no stack. */
static void skip_values(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof both / sizeof both[0]; i++) check_skip(both[i].mp);
    for (size_t i = 0; i < sizeof from_mp / sizeof from_mp[0]; i++) check_skip(from_mp[i].mp);
    static const char *const more[] = {
        "c40161", "c5000161", "c60000000161",               /* bin 8, 16, 32 */
        "c701ff61", "c80001ff61", "c900000001ff61",        /* ext 8, 16, 32 */
        "d4ff00", "d5ff0000", "d6ff00000000", "d7ff0000000000000000",
        "d8ff00000000000000000000000000000000",             /* fixext 1..16 */
        "cf0020000000000001", "cb7ff8000000000000", "8101a0", "a2c328",
        "91919191919191919191919191919191919191919191919191919191919191919190",
        "de0001c0c0", "dc0002c4016192c3c2",
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) check_skip(more[i]);
    static const char *const bad[] = {"", "c1", "91c1", "81a161c1", "dc0001c1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t in[16];
        size_t n = unhex(bad[i], in);
        ts_mp_rd_t r = {in, in + n};
        if (ts_mp_rd_skip(&r) == 0) fail_msg("skipped %s", bad[i]);
    }
    /* a million arrays, one in the other, then a count no bytes could hold */
    enum { DEEP = 1000000 };
    uint8_t *deep = ts_xmalloc(DEEP + 5);
    memset(deep, 0x91, DEEP);
    deep[DEEP] = 0x90;
    ts_mp_rd_t r = {deep, deep + DEEP + 1};
    assert_int_equal(ts_mp_rd_skip(&r), 0);
    assert_ptr_equal(r.p, deep + DEEP + 1);
    memcpy(deep, "\xdd\xff\xff\xff\xff", 5);
    r = (ts_mp_rd_t){deep, deep + DEEP + 1};
    assert_int_equal(ts_mp_rd_skip(&r), -1);
    free(deep);
}

/* Random canonical texts: text -> msgpack -> text is the identity. */
static void random_round_trips(void **state) {
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int run = 0; run < 3000; run++) {
        ts_sbuf_t src = TS_SBUF_INIT;
        /* a small random document: an array of mixed values */
        ts_sbuf_putc(&src, '[');
        int n = (int)(x % 8);
        for (int i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (i) ts_sbuf_putc(&src, ',');
            switch (x % 7) {
            case 0: ts_sbuf_printf(&src, "%lld", (long long)(int64_t)(x >> 11) - (1ll << 52)); break;
            case 1: ts_sbuf_printf(&src, "%d", (int)(x % 70000) - 35000); break;
            case 2: {
                char r[TS_JSON_REAL_MAX];
                double d = (double)(int64_t)(x >> 20) / 1024.0 + 0.5;
                ts_sbuf_append(&src, r, ts_json_fmt_real(r, d));
                break;
            }
            case 3: {
                char str[40];
                size_t k = (x >> 8) % 40;
                for (size_t j = 0; j < k; j++) str[j] = (char)(1 + (x >> (j % 50)) % 126);
                ts_json_string(&src, str, k);
                break;
            }
            case 4: ts_sbuf_append_str(&src, "{\"k\":[true,false,null],\"v\":{}}"); break;
            case 5: ts_sbuf_append_str(&src, "[]"); break;
            default: ts_sbuf_append_str(&src, "\"\xe2\x82\xac\""); break;
            }
        }
        ts_sbuf_putc(&src, ']');
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ts_slice_t text = ts_slice(ts_sbuf_data(&src), ts_sbuf_len(&src));
        assert_true(ts_json_is_canonical(text));
        ts_sbuf_t mp = TS_SBUF_INIT, back = TS_SBUF_INIT;
        if (ts_json_to_msgpack(&mp, text) != 0) fail_msg("declined %.*s", (int)text.len, text.p);
        assert_int_equal(ts_json_from_msgpack(&back, ts_sbuf_data(&mp), ts_sbuf_len(&mp)),
                         ts_sbuf_len(&mp));
        if (ts_sbuf_len(&back) != text.len || memcmp(ts_sbuf_data(&back), text.p, text.len) != 0)
            fail_msg("%.*s came back as %.*s", (int)text.len, text.p, (int)ts_sbuf_len(&back),
                     (const char *)ts_sbuf_data(&back));
        ts_sbuf_free(&mp);
        ts_sbuf_free(&back);
        ts_sbuf_free(&src);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(both_ways),
        cmocka_unit_test(from_msgpack_only),
        cmocka_unit_test(declined),
        cmocka_unit_test(random_round_trips),
        cmocka_unit_test(skip_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
