/* envelope.c - validation of client envelopes and the relayed form.
 * Names are restricted to a small alphabet so that they are safe in logs,
 * room names and metrics labels without escaping. */
#include "session/ts_sess_envelope.h"

#include <stdio.h>
#include <string.h>

#include "core/ts_err.h"

static const char *const prio_names[TS_SESS_PRIO_COUNT] = {
    "security", "control", "state", "event", "presence", "telemetry"};
static const char *const scope_names[] = {"session", "user", "device"};

const char *ts_sess_prio_name(ts_sess_prio_t p) {
    return (unsigned)p < TS_SESS_PRIO_COUNT ? prio_names[p] : "?";
}

const char *ts_sess_scope_name(ts_sess_scope_t s) {
    return (unsigned)s < 3 ? scope_names[s] : "?";
}

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > TS_SESS_MAX_NAME) return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-' || c == '/'))
            return 0;
    }
    return 1;
}

static int fail(char *why, size_t len, const char *msg) {
    snprintf(why, len, "envelope: %s", msg);
    return TS_EPROTO;
}

int ts_sess_envelope_parse(json_t *in, ts_sess_envelope_t *out, char *why, size_t whylen) {
    memset(out, 0, sizeof(*out));
    if (!json_is_object(in)) return fail(why, whylen, "not an object");
    json_t *v = json_object_get(in, "v");
    if (!json_is_integer(v)) return fail(why, whylen, "v (protocol version) must be an integer");
    json_int_t ver = json_integer_value(v);
    if (ver < TS_SESS_PROTO_MIN || ver > TS_SESS_PROTO_CURRENT)
        return fail(why, whylen, "unsupported protocol version (this server accepts v1 and v2)");
    out->v = (int)ver;
    out->type = json_string_value(json_object_get(in, "type"));
    if (!out->type || !name_ok(out->type))
        return fail(why, whylen, "type must be 1-64 characters of [A-Za-z0-9._:/-]");
    out->id = json_string_value(json_object_get(in, "id"));
    if (!out->id || !name_ok(out->id))
        return fail(why, whylen, "id must be 1-64 characters of [A-Za-z0-9._:/-]");
    json_t *cid = json_object_get(in, "cid");
    if (cid && !json_is_null(cid)) {
        out->cid = json_string_value(cid);
        if (!out->cid || !name_ok(out->cid))
            return fail(why, whylen, "cid must be 1-64 characters of [A-Za-z0-9._:/-]");
    }
    if (json_object_get(in, "seq")) return fail(why, whylen, "seq is assigned by the server");
    /* members that look like addressing are refused rather than ignored: a
     * client that tries to name a target learns at once that it cannot */
    static const char *const addressing[] = {"room", "rooms", "session", "sid", "user",
                                             "device", "tab", "socket"};
    for (size_t i = 0; i < sizeof addressing / sizeof addressing[0]; i++)
        if (json_object_get(in, addressing[i]))
            return fail(why, whylen,
                        "an envelope cannot name a room, session, user, device or tab: use to");
    out->prio = TS_SESS_PRIO_EVENT;
    json_t *prio = json_object_get(in, "prio");
    if (prio) {
        const char *p = json_string_value(prio);
        int found = -1;
        for (int i = 0; p && i < TS_SESS_PRIO_COUNT; i++)
            if (strcmp(p, prio_names[i]) == 0) found = i;
        if (found < 0)
            return fail(why, whylen,
                        "prio must be one of control, state, event, presence, telemetry");
        if (found == TS_SESS_PRIO_SECURITY)
            return fail(why, whylen, "prio security is reserved to the server");
        out->prio = (ts_sess_prio_t)found;
    }
    out->to = TS_SESS_TO_SESSION;
    json_t *to = json_object_get(in, "to");
    if (to) {
        const char *t = json_string_value(to);
        int found = -1;
        for (int i = 0; t && i < 3; i++)
            if (strcmp(t, scope_names[i]) == 0) found = i;
        if (found < 0)
            return fail(why, whylen,
                        "to must be session, user or device (rooms cannot be named)");
        out->to = (ts_sess_scope_t)found;
    }
    out->body = json_object_get(in, "body");
    if (!out->body) out->body = json_null();
    return 0;
}

json_t *ts_sess_envelope_relay(const ts_sess_envelope_t *e, const char *user, const char *device,
                               const char *tab) {
    json_t *o = json_object();
    json_object_set_new(o, "v", json_integer(e->v));
    json_object_set_new(o, "type", json_string(e->type));
    json_object_set_new(o, "id", json_string(e->id));
    if (e->cid) json_object_set_new(o, "cid", json_string(e->cid));
    json_object_set_new(o, "prio", json_string(prio_names[e->prio]));
    json_object_set_new(o, "to", json_string(scope_names[e->to]));
    json_object_set(o, "body", e->body);
    json_object_set_new(o, "from",
                        json_pack("{s:s,s:s,s:s}", "user", user, "device", device, "tab", tab));
    return o;
}
