/* test_tsbench.c - unit tests of tsbench's pure parts: the log-bucket
 * histogram (bucket bounds, quantiles against exact answers, merging), the
 * benchmark event (size, round trip, offsets, what it must refuse), its
 * /session envelope form (publish, the relayed and logged event, acks) and the
 * HS256 session tokens (published JWS vectors, a token computed with Node's
 * crypto). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_util.h"
#include "event.h"
#include "hist.h"
#include "jwt.h"

static void hist_buckets_cover_every_value(void **state) {
    /* every value falls in the bucket whose range holds it; ranges are
     * contiguous and at most 1/64 of their values wide */
    uint64_t prev_hi = 0;
    for (uint32_t i = 0; i < TSB_HIST_BUCKETS; i++) {
        uint64_t lo, hi;
        tsb_hist_range(i, &lo, &hi);
        if (i > 0) assert_int_equal(lo, prev_hi + 1);
        assert_true(hi >= lo);
        if (lo >= 64) assert_true((hi - lo + 1) * 64 <= lo);
        assert_int_equal(tsb_hist_index(lo), i);
        assert_int_equal(tsb_hist_index(hi), i);
        prev_hi = hi;
    }
    assert_int_equal(prev_hi, UINT64_MAX);
    static const uint64_t vals[] = {0, 1, 63, 64, 65, 127, 128, 129, 1000, 123456789,
                                    UINT64_C(1) << 40, UINT64_MAX - 1};
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        uint64_t lo, hi;
        tsb_hist_range(tsb_hist_index(vals[k]), &lo, &hi);
        assert_true(lo <= vals[k] && vals[k] <= hi);
    }
}

static void hist_quantiles_match_exact_ones(void **state) {
    tsb_hist_t *h = malloc(sizeof *h);
    tsb_hist_init(h);
    assert_int_equal(tsb_hist_quantile(h, 0.5), 0);
    /* 1..100000 ns: the exact q-quantile is q * 100000 */
    for (uint64_t v = 1; v <= 100000; v++) tsb_hist_record(h, v);
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (size_t k = 0; k < 4; k++) {
        double exact = qs[k] * 100000;
        double got = (double)tsb_hist_quantile(h, qs[k]);
        assert_true(got >= exact);
        assert_true(got <= exact * (1 + 1.0 / 64) + 1);
    }
    assert_int_equal(tsb_hist_quantile(h, 1.0), 100000);
    assert_int_equal(tsb_hist_quantile(h, 0), 1);
    assert_int_equal(h->count, 100000);
    assert_int_equal(h->max, 100000);
    free(h);
}

static void hist_tail_is_not_hidden(void **state) {
    /* 999 fast samples and one slow one: p99.9 is the slow one, and the max
     * is exact */
    tsb_hist_t *h = malloc(sizeof *h);
    tsb_hist_init(h);
    for (int i = 0; i < 999; i++) tsb_hist_record(h, 20000);
    tsb_hist_record(h, 4000000);
    assert_true(tsb_hist_quantile(h, 0.99) < 20400);
    assert_int_equal(tsb_hist_quantile(h, 0.9991), 4000000);
    assert_int_equal(h->max, 4000000);
    free(h);
}

static void hist_merge_adds_counts(void **state) {
    tsb_hist_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    tsb_hist_init(a);
    tsb_hist_init(b);
    for (int i = 0; i < 100; i++) tsb_hist_record(a, 10);
    for (int i = 0; i < 100; i++) tsb_hist_record(b, 1000000);
    tsb_hist_merge(a, b);
    assert_int_equal(a->count, 200);
    assert_int_equal(a->min, 10);
    assert_int_equal(a->max, 1000000);
    assert_int_equal(tsb_hist_quantile(a, 0.5), 10);
    assert_true(tsb_hist_quantile(a, 0.51) >= 1000000);
    free(a);
    free(b);
}

/* The publish packet minus the routing arguments is what a receiver gets. */
static size_t delivered_form(const char *pub, char *out) {
    const char *obj = strstr(pub, "\"b\",{");
    assert_non_null(obj);
    strcpy(out, "42[");
    strcat(out, obj);
    return strlen(out);
}

static void event_is_150_bytes_and_round_trips(void **state) {
    static const tsb_ev_t evs[] = {
        {0, 0, 0, NULL, 0},
        {7, 12345, 987654321012ull, NULL, 0},
        {4294967295u, 4294967295u, UINT64_MAX, NULL, 0},
    };
    for (size_t k = 0; k < 3; k++) {
        char pub[TSB_EV_MAX], got[TSB_EV_MAX];
        size_t n = tsb_ev_format(pub, "to-room-all", 42, &evs[k]);
        assert_int_equal(n, strlen(pub));
        assert_memory_equal(pub, "42[\"to-room-all\",\"r42\",\"b\",{", 28);
        size_t dn = delivered_form(pub, got);
        assert_int_equal(dn, TSB_EV_SIZE);
        tsb_ev_t ev;
        assert_int_equal(tsb_ev_parse((const uint8_t *)got, dn, &ev), 1);
        assert_int_equal(ev.p, evs[k].p);
        assert_int_equal(ev.s, evs[k].s);
        assert_true(ev.t == evs[k].t);
        assert_null(ev.offset);
    }
}

static void event_with_recovery_offset(void **state) {
    const char *in = "42[\"b\",{\"p\":3,\"s\":9,\"t\":77,\"x\":\"xx\"},\"Q8IyUaF\"]";
    tsb_ev_t ev;
    assert_int_equal(tsb_ev_parse((const uint8_t *)in, strlen(in), &ev), 1);
    assert_int_equal(ev.s, 9);
    assert_int_equal(ev.offset_len, 7);
    assert_memory_equal(ev.offset, "Q8IyUaF", 7);
}

static void event_refuses_other_packets(void **state) {
    static const char *bad[] = {
        "42[\"auth\",{}]",
        "42[\"b\",{\"p\":1,\"s\":2,\"t\":3}]",
        "42[\"b\",{\"p\":1,\"s\":2,\"t\":3,\"x\":\"xx\"}",
        "42[\"b\",{\"p\":1,\"s\":2,\"t\":3,\"x\":\"xx\"}]junk",
        "42[\"b\",{\"p\":-1,\"s\":2,\"t\":3,\"x\":\"xx\"}]",
        "42[\"b\",{\"p\":4294967296,\"s\":2,\"t\":3,\"x\":\"xx\"}]",
        "42[\"b\",{\"p\":1,\"s\":2,\"t\":99999999999999999999999,\"x\":\"\"}]",
        "42[\"b\",{\"p\":1,\"s\":2,\"t\":3,\"x\":\"xx\"},5]",
        "42[\"b\",{\"p\":1,\"s\":2,\"t\":3,\"x\":\"xx\"},\"a\"b\"]",
        "430[\"ok\"]",
        "",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        tsb_ev_t ev;
        assert_int_equal(tsb_ev_parse((const uint8_t *)bad[k], strlen(bad[k]), &ev), 0);
    }
    const char *good = "42[\"b\",{\"p\":1,\"s\":2,\"t\":3,\"x\":\"xx\"}]";
    tsb_ev_t ev;
    /* a cut event is never taken for one */
    for (size_t cut = 0; cut < strlen(good); cut++)
        assert_int_equal(tsb_ev_parse((const uint8_t *)good, cut, &ev), 0);
    assert_int_equal(tsb_ev_parse((const uint8_t *)good, strlen(good), &ev), 1);
}

/* The envelope of a publish, 42/session,ACK["publish",ENV]: ENV is `size`
 * bytes; the relayed form the server sends (tabsyncd's order of members,
 * with history members and an offset around it) is recognised. */
static void session_envelope_round_trips(void **state) {
    static const tsb_ev_t evs[] = {
        {0, 0, 0, NULL, 0},
        {3999, 12345, 987654321012ull, NULL, 0},
        {4294967295u, 4294967295u, UINT64_MAX, NULL, 0},
    };
    for (size_t k = 0; k < 3; k++) {
        char pub[600], got[900];
        size_t n = tsb_sev_format(pub, sizeof pub, 77, &evs[k], 150);
        assert_int_equal(n, strlen(pub));
        const char *head = "42/session,77[\"publish\",";
        assert_memory_equal(pub, head, strlen(head));
        assert_int_equal(pub[n - 1], ']');
        const char *env = pub + strlen(head);
        size_t envlen = n - strlen(head) - 1;
        assert_int_equal(envlen, 150);
        assert_int_equal(env[0], '{');
        assert_int_equal(env[envlen - 1], '}');
        /* the body, as relayed */
        const char *body = strstr(env, "\"body\":");
        assert_non_null(body);
        int bl = (int)(env + envlen - 1 - body);
        static const char *forms[] = {
            "42/session,[\"event\",{\"v\":4,\"type\":\"b\",\"id\":\"e1\",\"prio\":\"event\","
            "\"to\":\"session\",%.*s,\"from\":{\"user\":\"u1\",\"device\":\"d0\",\"tab\":\"t1\"}}]",
            "42/session,[\"event\",{\"kind\":\"event\",\"v\":4,\"type\":\"b\",\"id\":\"e1\",%.*s,"
            "\"from\":{\"user\":\"u1\",\"device\":\"d0\",\"tab\":\"t1\"},\"ts\":1,\"seq\":9},"
            "\"h0123456789abcdef.9\"]",
        };
        for (size_t f = 0; f < 2; f++) {
            int gl = snprintf(got, sizeof got, forms[f], bl, body);
            tsb_ev_t ev;
            assert_int_equal(tsb_sev_parse((const uint8_t *)got, (size_t)gl, &ev), 1);
            assert_int_equal(ev.p, evs[k].p);
            assert_int_equal(ev.s, evs[k].s);
            assert_true(ev.t == evs[k].t);
            /* a cut packet is never taken for one */
            for (int cut = 0; cut < gl - 1; cut += 7)
                if (cut < gl - 30) assert_int_equal(tsb_sev_parse((const uint8_t *)got, (size_t)cut, &ev), 0);
        }
    }
    char small[40];
    assert_int_equal(tsb_sev_format(small, sizeof small, 1, &evs[1], 150), 0);
}

static void session_acks(void **state) {
    uint64_t id = 0;
    int ok = -1;
    const char *a = "43/session,12[{\"ok\":true,\"id\":\"e12\"}]";
    assert_int_equal(tsb_sev_ack((const uint8_t *)a, strlen(a), &id, &ok), 1);
    assert_int_equal(id, 12);
    assert_int_equal(ok, 1);
    const char *r = "43/session,3[{\"ok\":false,\"error\":{\"code\":\"throttled\"}}]";
    assert_int_equal(tsb_sev_ack((const uint8_t *)r, strlen(r), &id, &ok), 1);
    assert_int_equal(id, 3);
    assert_int_equal(ok, 0);
    static const char *other[] = {"430[\"ok\"]", "43/session,[{\"ok\":true}]",
                                  "42/session,[\"event\",{}]", "43/other,1[{\"ok\":true}]", ""};
    for (size_t k = 0; k < sizeof other / sizeof other[0]; k++)
        assert_int_equal(tsb_sev_ack((const uint8_t *)other[k], strlen(other[k]), &id, &ok), 0);
}

static void b64url_has_no_padding_and_url_alphabet(void **state) {
    char out[16];
    assert_int_equal(tsb_b64url((const uint8_t *)"", 0, out), 0);
    assert_string_equal(out, "");
    assert_int_equal(tsb_b64url((const uint8_t *)"f", 1, out), 2);
    assert_string_equal(out, "Zg");
    assert_int_equal(tsb_b64url((const uint8_t *)"fo", 2, out), 3);
    assert_string_equal(out, "Zm8");
    assert_int_equal(tsb_b64url((const uint8_t *)"foo", 3, out), 4);
    assert_string_equal(out, "Zm9v");
    static const uint8_t hi[] = {0xfb, 0xff, 0xbf}; /* "+/+/" in standard base64 */
    tsb_b64url(hi, 3, out);
    assert_string_equal(out, "-_-_");
}

static void sha256_hex_known_answer(void **state) {
    char hex[65];
    tsb_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* RFC 7515 appendix A.1: the header and payload bytes (with their CRLFs)
 * and the JWK key of the RFC give exactly its signature. */
static void jwt_rfc7515_a1_vector(void **state) {
    static const char k64[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    uint8_t key[64];
    long klen = ts_b64url_decode(k64, strlen(k64), key);
    assert_int_equal(klen, 64);
    char tok[TSB_JWT_MAX];
    size_t n = tsb_jwt_hs256(key, (size_t)klen, "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}",
                             "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n "
                             "\"http://example.com/is_root\":true}",
                             tok, sizeof tok);
    assert_int_equal(n, strlen(tok));
    assert_string_equal(tok,
                        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9p"
                        "c19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
}

/* The example token of jwt.io, a vector every JWT library is checked with. */
static void jwt_io_vector(void **state) {
    char tok[TSB_JWT_MAX];
    const char *key = "your-256-bit-secret";
    tsb_jwt_hs256(key, strlen(key), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                  "{\"sub\":\"1234567890\",\"name\":\"John Doe\",\"iat\":1516239022}", tok,
                  sizeof tok);
    assert_string_equal(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                             "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
                             "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
}

/* A /session token: the same bytes Node's crypto gives for these claims
 * (fp = SHA-256 hex of the fingerprint), and 0 when it does not fit. */
static void jwt_session_token_matches_node(void **state) {
    const char *secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char tok[TSB_JWT_MAX];
    size_t n = tsb_jwt_session(secret, strlen(secret), "u1", "s1", "d1", "fp-1", 1700000000,
                               1700003600, tok, sizeof tok);
    assert_string_equal(
        tok,
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZGV2IjoiZDEiLCJmcCI6Ijg1OGMwNmNmOWM1MDVjOWYxMzVlNjRkNTA2"
        "ZjJlNDBkY2I1YmM2OTkyYmZkOGQ5N2YzMWU2YjdjYWE4YjBkMzgiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcw"
        "MDAwMzYwMH0.fBO8g3NWQowMnqMmsn1Cq6DcnFXcPZWXhabbIj6cT_o");
    assert_int_equal(n, strlen(tok));
    /* another secret, another signature; the claims part is unchanged */
    char tok2[TSB_JWT_MAX];
    tsb_jwt_session("x", 1, "u1", "s1", "d1", "fp-1", 1700000000, 1700003600, tok2, sizeof tok2);
    assert_memory_equal(tok, tok2, strrchr(tok, '.') - tok);
    assert_string_not_equal(strrchr(tok, '.'), strrchr(tok2, '.'));
    assert_int_equal(tsb_jwt_session(secret, strlen(secret), "u1", "s1", "d1", "fp-1", 1, 2, tok2,
                                     100),
                     0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hist_buckets_cover_every_value),
        cmocka_unit_test(hist_quantiles_match_exact_ones),
        cmocka_unit_test(hist_tail_is_not_hidden),
        cmocka_unit_test(hist_merge_adds_counts),
        cmocka_unit_test(event_is_150_bytes_and_round_trips),
        cmocka_unit_test(event_with_recovery_offset),
        cmocka_unit_test(event_refuses_other_packets),
        cmocka_unit_test(session_envelope_round_trips),
        cmocka_unit_test(session_acks),
        cmocka_unit_test(b64url_has_no_padding_and_url_alphabet),
        cmocka_unit_test(sha256_hex_known_answer),
        cmocka_unit_test(jwt_rfc7515_a1_vector),
        cmocka_unit_test(jwt_io_vector),
        cmocka_unit_test(jwt_session_token_matches_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
