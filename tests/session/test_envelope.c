/* test_envelope.c - /session envelopes: every rule of ts_sess_envelope_parse
 * as a table row, and the relayed form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "session/ts_sess_envelope.h"

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
};

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(relay_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
