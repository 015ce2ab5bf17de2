/* envelope.c - validation of client envelopes and the relayed form, over a
 * jansson value or (the relay fast path) over the canonical JSON text the
 * client sent, which is relayed without building a tree.
 * Names are restricted to a small alphabet so that they are safe in logs,
 * room names and metrics labels without escaping. */
#include "session/ts_sess_envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_util.h"

static const char *const prio_names[TS_SESS_PRIO_COUNT] = {
    "security", "control", "state", "event", "presence", "telemetry"};
static const char *const scope_names[] = {"session", "user", "device"};

const char *ts_sess_prio_name(ts_sess_prio_t p) {
    return (unsigned)p < TS_SESS_PRIO_COUNT ? prio_names[p] : "?";
}

const char *ts_sess_scope_name(ts_sess_scope_t s) {
    return (unsigned)s < 3 ? scope_names[s] : "?";
}

static int name_ok_n(const char *s, size_t n) {
    if (n == 0 || n > TS_SESS_MAX_NAME) return 0;
    for (const char *p = s; p < s + n; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-' || c == '/'))
            return 0;
    }
    return 1;
}

static int name_ok(const char *s) { return name_ok_n(s, strlen(s)); }
int ts_sess_name_ok(const char *s) { return name_ok(s); }

#define MUT_MAX 9007199254740991LL /* 2^53 - 1: exact in a JavaScript number */

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
        return fail(why, whylen, "unsupported protocol version (this server accepts v1 to v4)");
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
    json_t *client = json_object_get(in, "client");
    if (client && !json_is_null(client)) {
        out->client = json_string_value(client);
        if (!out->client || !name_ok(out->client))
            return fail(why, whylen, "client must be 1-64 characters of [A-Za-z0-9._:/-]");
    }
    json_t *mut = json_object_get(in, "mut");
    if (mut && (!json_is_integer(mut) || json_integer_value(mut) < 1 ||
                json_integer_value(mut) > MUT_MAX))
        return fail(why, whylen, "mut must be an integer from 1 to 2^53-1");
    if (mut) out->mut = (uint64_t)json_integer_value(mut);
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

/* ---- the same over canonical text ---- */

/* The bytes between the quotes of a string text; its escapes stay as they
 * are: every escaped character is outside the name alphabet and the
 * priority and scope names, so they fail the same checks either way. */
static int raw_str(ts_slice_t t, ts_slice_t *out) {
    if (t.len < 2 || t.p[0] != '"') return 0;
    *out = ts_slice(t.p + 1, t.len - 2);
    return 1;
}

static int raw_name_ok(ts_slice_t t, ts_slice_t *out) {
    return raw_str(t, out) && name_ok_n((const char *)out->p, out->len);
}

/* Index in names[0..n) of the string text t, or -1. */
static int raw_lookup(ts_slice_t t, const char *const *names, int n) {
    ts_slice_t v;
    if (!raw_str(t, &v)) return -1;
    for (int i = 0; i < n; i++)
        if (ts_slice_eq_str(v, names[i])) return i;
    return -1;
}

enum { M_V, M_TYPE, M_ID, M_CID, M_SEQ, M_PRIO, M_TO, M_BODY, M_CLIENT, M_MUT, M_ADDR, M_COUNT };

int ts_sess_envelope_parse_raw(ts_slice_t in, ts_sess_envelope_raw_t *out, char *why,
                               size_t whylen) {
    if (!ts_json_is_canonical(in)) {
        memset(out, 0, sizeof(*out));
        return TS_EINVAL;
    }
    return ts_sess_envelope_parse_canonical(in, out, why, whylen);
}

int ts_sess_envelope_parse_canonical(ts_slice_t in, ts_sess_envelope_raw_t *out, char *why,
                                     size_t whylen) {
    static const char *const keys[M_ADDR] = {"v",    "type", "id",   "cid",    "seq",
                                             "prio", "to",   "body", "client", "mut"};
    static const char *const addressing[] = {"room", "rooms", "session", "sid", "user",
                                             "device", "tab", "socket"};
    memset(out, 0, sizeof(*out));
    if (!in.len || in.p[0] != '{') return fail(why, whylen, "not an object");
    ts_slice_t m[M_COUNT] = {{0}};
    /* canonical: no whitespace, no duplicate keys, keys without escapes */
    size_t i = 1;
    while (i < in.len && in.p[i] == '"') {
        const uint8_t *q = memchr(in.p + i + 1, '"', in.len - i - 1);
        ts_slice_t key = ts_slice(in.p + i + 1, (size_t)(q - in.p) - i - 1);
        i = (size_t)(q - in.p) + 2; /* past '"' and ':' */
        size_t vl = ts_json_skip(in.p + i, in.len - i);
        ts_slice_t val = ts_slice(in.p + i, vl);
        int k = -1;
        for (int j = 0; j < M_ADDR && k < 0; j++)
            if (ts_slice_eq_str(key, keys[j])) k = j;
        for (size_t j = 0; k < 0 && j < sizeof addressing / sizeof addressing[0]; j++)
            if (ts_slice_eq_str(key, addressing[j])) k = M_ADDR;
        if (k >= 0) m[k] = val;
        i += vl + 1; /* past ',' or the final '}' */
    }
    ts_slice_t v = m[M_V];
    if (!v.len || v.p[0] == '"' || memchr(v.p, '.', v.len) || memchr(v.p, 'e', v.len) ||
        (v.p[0] != '-' && (v.p[0] < '0' || v.p[0] > '9')))
        return fail(why, whylen, "v (protocol version) must be an integer");
    long long ver = strtoll((const char *)v.p, NULL, 10); /* digits, then ',' or '}' */
    if (ver < TS_SESS_PROTO_MIN || ver > TS_SESS_PROTO_CURRENT)
        return fail(why, whylen, "unsupported protocol version (this server accepts v1 to v4)");
    out->v = (int)ver;
    if (!raw_name_ok(m[M_TYPE], &out->type))
        return fail(why, whylen, "type must be 1-64 characters of [A-Za-z0-9._:/-]");
    if (!raw_name_ok(m[M_ID], &out->id))
        return fail(why, whylen, "id must be 1-64 characters of [A-Za-z0-9._:/-]");
    if (m[M_CID].len && !ts_slice_eq_str(m[M_CID], "null") && !raw_name_ok(m[M_CID], &out->cid))
        return fail(why, whylen, "cid must be 1-64 characters of [A-Za-z0-9._:/-]");
    if (m[M_SEQ].len) return fail(why, whylen, "seq is assigned by the server");
    if (m[M_CLIENT].len && !ts_slice_eq_str(m[M_CLIENT], "null") &&
        !raw_name_ok(m[M_CLIENT], &out->client))
        return fail(why, whylen, "client must be 1-64 characters of [A-Za-z0-9._:/-]");
    if (m[M_MUT].len) {
        /* canonical integers are digits with an optional '-', no fraction,
         * no exponent; at most 16 digits fit 2^53-1 */
        ts_slice_t t = m[M_MUT];
        unsigned long long x = 0;
        int ok = t.len <= 16;
        for (size_t k = 0; ok && k < t.len; k++) {
            if (t.p[k] < '0' || t.p[k] > '9') ok = 0;
            else x = x * 10 + (unsigned)(t.p[k] - '0');
        }
        if (!ok || x < 1 || x > (unsigned long long)MUT_MAX)
            return fail(why, whylen, "mut must be an integer from 1 to 2^53-1");
        out->mut = x;
    }
    if (m[M_ADDR].len)
        return fail(why, whylen,
                    "an envelope cannot name a room, session, user, device or tab: use to");
    out->prio = TS_SESS_PRIO_EVENT;
    if (m[M_PRIO].len) {
        int found = raw_lookup(m[M_PRIO], prio_names, TS_SESS_PRIO_COUNT);
        if (found < 0)
            return fail(why, whylen,
                        "prio must be one of control, state, event, presence, telemetry");
        if (found == TS_SESS_PRIO_SECURITY)
            return fail(why, whylen, "prio security is reserved to the server");
        out->prio = (ts_sess_prio_t)found;
    }
    out->to = TS_SESS_TO_SESSION;
    if (m[M_TO].len) {
        int found = raw_lookup(m[M_TO], scope_names, 3);
        if (found < 0)
            return fail(why, whylen,
                        "to must be session, user or device (rooms cannot be named)");
        out->to = (ts_sess_scope_t)found;
    }
    out->body = m[M_BODY].len ? m[M_BODY] : TS_SLICE_LIT("null");
    return 0;
}

static void put_member(ts_sbuf_t *out, const char *key, ts_slice_t name) {
    ts_sbuf_append_str(out, key);
    ts_sbuf_putc(out, '"');
    ts_sbuf_append(out, name.p, name.len); /* the name alphabet needs no escapes */
    ts_sbuf_putc(out, '"');
}

static void from_tail(ts_sbuf_t *out, const char *user, const char *device, const char *tab) {
    ts_sbuf_append_str(out, ",\"from\":{\"user\":");
    ts_json_string(out, user, strlen(user));
    ts_sbuf_append_str(out, ",\"device\":");
    ts_json_string(out, device, strlen(device));
    ts_sbuf_append_str(out, ",\"tab\":");
    ts_json_string(out, tab, strlen(tab));
    ts_sbuf_append_str(out, "}}");
}

ts_buf_t *ts_sess_envelope_from_tail(const char *user, const char *device, const char *tab) {
    ts_sbuf_t out = TS_SBUF_INIT;
    from_tail(&out, user, device, tab);
    return ts_sbuf_finish(&out);
}

/* Everything before the sender: {"v":..,"type":..,...,"body":..} without its brace. */
static void relay_head(const ts_sess_envelope_raw_t *e, ts_sbuf_t *out) {
    ts_sbuf_append_str(out, "{\"v\":");
    ts_sbuf_put_i64(out, e->v); /* not printf: 8 % of a relay's instructions */
    put_member(out, ",\"type\":", e->type);
    put_member(out, ",\"id\":", e->id);
    if (e->cid.len) put_member(out, ",\"cid\":", e->cid);
    put_member(out, ",\"prio\":", ts_slice_str(prio_names[e->prio]));
    put_member(out, ",\"to\":", ts_slice_str(scope_names[e->to]));
    ts_sbuf_append_str(out, ",\"body\":");
    ts_sbuf_append(out, e->body.p, e->body.len);
}

void ts_sess_envelope_relay_raw(const ts_sess_envelope_raw_t *e, const char *user,
                                const char *device, const char *tab, ts_sbuf_t *out) {
    ts_sbuf_reserve(out, 160 + e->body.len + 2 * (strlen(user) + strlen(device) + strlen(tab)));
    relay_head(e, out);
    from_tail(out, user, device, tab);
}

void ts_sess_envelope_relay_raw_tail(const ts_sess_envelope_raw_t *e, ts_slice_t tail,
                                     ts_sbuf_t *out) {
    ts_sbuf_reserve(out, 160 + e->body.len + tail.len);
    relay_head(e, out);
    ts_sbuf_append(out, tail.p, tail.len);
}

/* ---- recovery offsets ---- */

size_t ts_sess_offset_format(char out[TS_SESS_OFFSET_MAX], uint64_t epoch, uint64_t seq) {
    static const char hex[] = "0123456789abcdef";
    out[0] = 'h';
    for (int i = 0; i < 16; i++) out[1 + i] = hex[(epoch >> (60 - 4 * i)) & 15];
    out[17] = '.';
    size_t n = 18 + ts_fmt_u64(out + 18, seq);
    out[n] = '\0';
    return n;
}

int ts_sess_offset_parse(ts_slice_t text, uint64_t *epoch, uint64_t *seq) {
    const char *p = (const char *)text.p;
    size_t n = text.len;
    if (n < 19 || n > TS_SESS_OFFSET_MAX - 1 || p[0] != 'h' || p[17] != '.') return TS_EINVAL;
    uint64_t e = 0, s = 0;
    for (int i = 1; i < 17; i++) {
        int c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 /* either case */
                                       : -1;
        if (d < 0) return TS_EINVAL;
        e = e << 4 | (uint64_t)d;
    }
    if (p[18] == '0' && n > 19) return TS_EINVAL; /* a leading zero */
    for (size_t i = 18; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return TS_EINVAL;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (s > (UINT64_MAX - d) / 10) return TS_EINVAL;
        s = s * 10 + d;
    }
    *epoch = e;
    *seq = s;
    return 0;
}
