/* test_api.c - the pure parts of the daemon's HTTP API (src/daemon/api.c):
 * which data API answers become 503 with Retry-After (store_unavailable,
 * whole or every item of a batch) and which stay 200, and the ids of paths
 * and query values (percent-decoded, then the token alphabet). The routes
 * themselves run against a real tabsyncd in tests/js/api.test.mjs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "daemon/ts_dmn.h"

static const struct retry_case {
    const char *name, *answer;
    uint32_t want; /* Retry-After seconds; 0 = answered 200 */
} retry_cases[] = {
    {"ok", "{\"ok\":true,\"id\":\"a\",\"seq\":3,\"ts\":1}", 0},
    {"a refusal", "{\"ok\":false,\"error\":{\"code\":\"bad_envelope\",\"message\":\"x\"}}", 0},
    {"store unavailable",
     "{\"ok\":false,\"error\":{\"code\":\"store_unavailable\",\"message\":\"x\","
     "\"retry_after_ms\":1000},\"id\":\"a\"}",
     1},
    {"without retry_after_ms",
     "{\"ok\":false,\"error\":{\"code\":\"store_unavailable\",\"message\":\"x\"}}", 1},
    {"rounded up to seconds",
     "{\"ok\":false,\"error\":{\"code\":\"store_unavailable\",\"message\":\"x\","
     "\"retry_after_ms\":2001}}",
     3},
    {"a batch, every item unavailable",
     "{\"ok\":false,\"failed\":2,\"results\":["
     "{\"ok\":false,\"error\":{\"code\":\"store_unavailable\",\"message\":\"x\","
     "\"retry_after_ms\":1000}},"
     "{\"ok\":false,\"error\":{\"code\":\"store_unavailable\",\"message\":\"x\","
     "\"retry_after_ms\":4000}}]}",
     4},
    {"a batch, one item done",
     "{\"ok\":false,\"failed\":1,\"results\":[{\"ok\":true,\"id\":\"a\",\"seq\":1},"
     "{\"ok\":false,\"error\":{\"code\":\"store_unavailable\",\"message\":\"x\"}}]}",
     0},
    {"a batch, another refusal",
     "{\"ok\":false,\"failed\":2,\"results\":["
     "{\"ok\":false,\"error\":{\"code\":\"store_unavailable\",\"message\":\"x\"}},"
     "{\"ok\":false,\"error\":{\"code\":\"bad_envelope\",\"message\":\"x\"}}]}",
     0},
    {"a batch, all done", "{\"ok\":true,\"failed\":0,\"results\":[{\"ok\":true}]}", 0},
    {"a sync answer", "{\"ok\":true,\"epoch\":\"0123456789abcdef\",\"seq\":0,\"entries\":[],"
                      "\"more\":false}",
     0},
    {"not JSON after the prefix", "{\"ok\":false,", 0},
    {"empty", "", 0},
};

static void test_retry_after(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof retry_cases / sizeof retry_cases[0]; i++) {
        const struct retry_case *k = &retry_cases[i];
        uint32_t got = ts_dmn__api_retry_after(ts_slice_str(k->answer));
        if (got != k->want) fail_msg("%s: Retry-After %u, want %u", k->name, got, k->want);
    }
}

static const struct id_case {
    const char *name, *in, *want; /* want NULL: refused */
} id_cases[] = {
    {"plain", "alice", "alice"},
    {"every class of the alphabet", "A-z_0.9:x@y", "A-z_0.9:x@y"},
    {"encoded @ and :", "carol%40x.org%3Ab", "carol@x.org:b"},
    {"lowercase hex", "a%3ab", "a:b"},
    {"empty", "", NULL},
    {"a space", "a%20b", NULL},
    {"a slash", "s%2F1", NULL},
    {"a raw slash", "s/1", NULL},
    {"a NUL", "a%00b", NULL},
    {"a truncated escape", "ab%4", NULL},
    {"a bare percent", "ab%", NULL},
    {"not hex", "a%zzb", NULL},
    {"non-ASCII", "caf%C3%A9", NULL},
    {"a plus is not a space here", "a+b", NULL},
};

static void test_decode_id(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof id_cases / sizeof id_cases[0]; i++) {
        const struct id_case *k = &id_cases[i];
        char out[129];
        int ok = ts_dmn__api_decode_id(ts_slice_str(k->in), out, sizeof out);
        if (ok != (k->want != NULL)) fail_msg("%s: decode says %d", k->name, ok);
        if (ok && strcmp(out, k->want) != 0)
            fail_msg("%s: \"%s\", want \"%s\"", k->name, out, k->want);
    }
    /* 128 bytes is the longest id; encoded forms count decoded bytes */
    char in[400], out[129];
    memset(in, 'u', 128);
    in[128] = '\0';
    assert_int_equal(ts_dmn__api_decode_id(ts_slice_str(in), out, sizeof out), 1);
    in[128] = 'u';
    in[129] = '\0';
    assert_int_equal(ts_dmn__api_decode_id(ts_slice_str(in), out, sizeof out), 0);
    for (int i = 0; i < 128; i++) memcpy(in + 3 * i, "%40", 3);
    in[3 * 128] = '\0';
    assert_int_equal(ts_dmn__api_decode_id(ts_slice_str(in), out, sizeof out), 1);
    assert_int_equal(strlen(out), 128);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_decode_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
