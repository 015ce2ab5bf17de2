/* connect.c - strict parser of the /session CONNECT auth payload. Pure
 * (no I/O, no state): the namespace handler, the unit table and the
 * fuzzer call it alike. Every value a client controls is checked for type,
 * size and alphabet before it is copied into fixed-size fields. */
#include "session/ts_sess_connect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"

static const char *const device_types[] = {
    [TS_SESS_DEV_BROWSER] = "browser", [TS_SESS_DEV_MOBILE] = "mobile",
    [TS_SESS_DEV_DESKTOP] = "desktop", [TS_SESS_DEV_SERVER] = "server",
    [TS_SESS_DEV_CLI] = "cli",
};

const char *ts_sess_device_type_name(ts_sess_device_type_t t) {
    if ((unsigned)t >= TS_ARRAY_LEN(device_types)) return NULL;
    return device_types[t];
}

static int refuse(ts_sess_deny_t *d, ts_sess_reason_t r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(ts_sess_deny_t *d, ts_sess_reason_t r, const char *field, const char *fmt,
                  ...) {
    if (d) {
        d->reason = r;
        snprintf(d->field, sizeof d->field, "%s", field);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return TS_EPROTO;
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* A client-chosen key, fit for a message or the field name: at most 24
 * bytes, anything outside the id alphabet shown as '?'. */
static void safe_key(const char *prefix, const char *key, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "%s", prefix);
    for (const char *p = key; *p && o + 4 < cap && p - key < 24; p++)
        buf[o++] = ts_sess_id_valid(p, 1) ? *p : '?';
    if (strlen(key) >= 24 && o + 4 < cap) buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
    buf[o] = '\0';
}

/* Refuses keys of `obj` not in `known` (NULL-terminated). */
static int only_known(const json_t *obj, const char *const *known, const char *prefix,
                      ts_sess_deny_t *d) {
    const char *key;
    json_t *v = NULL;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, key) == 0;
        if (!ok) {
            char f[40];
            safe_key(prefix, key, f, sizeof f);
            return refuse(d, TS_SESS_R_AUTH_UNKNOWN_FIELD, f,
                          "auth payload field \"%s\" is not known (see docs/PROTOCOL.md)", f);
        }
    }
    return 0;
}

/* A required member of type `type`. */
static int member(const json_t *obj, const char *key, const char *path, json_type type,
                  const char *type_name, json_t **out, ts_sess_deny_t *d) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return refuse(d, TS_SESS_R_AUTH_MISSING_FIELD, path, "auth payload has no \"%s\"", path);
    if (json_typeof(v) != type)
        return refuse(d, TS_SESS_R_AUTH_WRONG_TYPE, path,
                      "auth payload field \"%s\" is %s; expected %s", path, json_type_name(v),
                      type_name);
    *out = v;
    return 0;
}

/* An id: non-empty, at most `max` bytes of the id alphabet. */
static int id_field(const json_t *v, const char *path, size_t max, char *out,
                    ts_sess_deny_t *d) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0)
        return refuse(d, TS_SESS_R_AUTH_EMPTY_FIELD, path, "auth payload field \"%s\" is empty",
                      path);
    if (len > max)
        return refuse(d, TS_SESS_R_AUTH_FIELD_TOO_LONG, path,
                      "auth payload field \"%s\" is %zu bytes; at most %zu are accepted", path,
                      len, max);
    if (!ts_sess_id_valid(s, len))
        return refuse(d, TS_SESS_R_AUTH_BAD_CHARACTERS, path,
                      "auth payload field \"%s\" may only use A-Z a-z 0-9 . _ : @ -", path);
    memcpy(out, s, len + 1);
    return 0;
}

static int parse_device(const json_t *dev, ts_sess_connect_t *out, ts_sess_deny_t *d) {
    static const char *const known[] = {"id", "fingerprint", "type", "caps", NULL};
    int rc = only_known(dev, known, "device.", d);
    if (rc) return rc;
    json_t *v = NULL;
    if ((rc = member(dev, "id", "device.id", JSON_STRING, "a string", &v, d)) ||
        (rc = id_field(v, "device.id", TS_SESS_ID_MAX, out->device_id, d)))
        return rc;

    if ((rc = member(dev, "fingerprint", "device.fingerprint", JSON_STRING, "a string", &v, d)))
        return rc;
    const char *fp = json_string_value(v);
    size_t fplen = json_string_length(v);
    if (fplen == 0)
        return refuse(d, TS_SESS_R_AUTH_EMPTY_FIELD, "device.fingerprint",
                      "auth payload field \"device.fingerprint\" is empty");
    if (fplen > TS_SESS_FINGERPRINT_MAX)
        return refuse(d, TS_SESS_R_AUTH_FIELD_TOO_LONG, "device.fingerprint",
                      "auth payload field \"device.fingerprint\" is %zu bytes; at most %d are "
                      "accepted",
                      fplen, TS_SESS_FINGERPRINT_MAX);
    for (size_t i = 0; i < fplen; i++)
        if ((unsigned char)fp[i] < 0x20 || fp[i] == 0x7f)
            return refuse(d, TS_SESS_R_AUTH_BAD_CHARACTERS, "device.fingerprint",
                          "auth payload field \"device.fingerprint\" contains control "
                          "characters");
    memcpy(out->fingerprint, fp, fplen + 1);
    out->fingerprint_len = fplen;

    if ((rc = member(dev, "type", "device.type", JSON_STRING, "a string", &v, d))) return rc;
    int found = 0;
    for (size_t i = 0; i < TS_ARRAY_LEN(device_types) && !found; i++)
        if (json_string_length(v) == strlen(device_types[i]) &&
            strcmp(json_string_value(v), device_types[i]) == 0) {
            out->device_type = (ts_sess_device_type_t)i;
            found = 1;
        }
    if (!found)
        return refuse(d, TS_SESS_R_AUTH_UNKNOWN_DEVICE_TYPE, "device.type",
                      "auth payload field \"device.type\" must be browser, mobile, desktop, "
                      "server or cli");

    json_t *caps = json_object_get(dev, "caps");
    if (!caps) return 0; /* optional: no capabilities */
    if (!json_is_array(caps))
        return refuse(d, TS_SESS_R_AUTH_WRONG_TYPE, "device.caps",
                      "auth payload field \"device.caps\" is %s; expected an array of strings",
                      json_type_name(caps));
    if (json_array_size(caps) > TS_SESS_CAPS_MAX)
        return refuse(d, TS_SESS_R_AUTH_TOO_MANY_CAPS, "device.caps",
                      "auth payload field \"device.caps\" has %zu entries; at most %d are "
                      "accepted",
                      json_array_size(caps), TS_SESS_CAPS_MAX);
    size_t i;
    json_t *c;
    json_array_foreach(caps, i, c) {
        char path[40];
        snprintf(path, sizeof path, "device.caps[%zu]", i);
        if (!json_is_string(c))
            return refuse(d, TS_SESS_R_AUTH_WRONG_TYPE, path,
                          "auth payload field \"%s\" is %s; expected a string", path,
                          json_type_name(c));
        if ((rc = id_field(c, path, TS_SESS_CAP_LEN_MAX, out->caps[i], d))) return rc;
    }
    out->n_caps = json_array_size(caps);
    return 0;
}

const char *ts_sess_scope_kind_name(ts_sess_scope_kind_t k) {
    static const char *const names[] = {"session", "device"};
    return (unsigned)k < TS_ARRAY_LEN(names) ? names[k] : NULL;
}

int ts_sess_scope_kind_parse(const char *s, size_t len) {
    for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++) {
        const char *n = ts_sess_scope_kind_name((ts_sess_scope_kind_t)k);
        if (len == strlen(n) && memcmp(s, n, len) == 0) return k;
    }
    return -1;
}

/* elect: {scopes: ["session"|"device"], observer: bool, scores: bool},
 * every member optional, protocol 4 only. */
static int parse_elect(json_t *el, ts_sess_connect_t *out, ts_sess_deny_t *d) {
    static const char *const known[] = {"scopes", "observer", "scores", NULL};
    if (out->proto < TS_SESS_PROTO_ELECT)
        return refuse(d, TS_SESS_R_AUTH_BAD_ELECT, "elect",
                      "auth payload field \"elect\" needs protocol %d or later",
                      TS_SESS_PROTO_ELECT);
    if (!json_is_object(el))
        return refuse(d, TS_SESS_R_AUTH_BAD_ELECT, "elect",
                      "auth payload field \"elect\" is %s; expected an object", json_type_name(el));
    int rc = only_known(el, known, "elect.", d);
    if (rc) return rc;
    json_t *sc = json_object_get(el, "scopes"), *v;
    if (sc && (!json_is_array(sc) || json_array_size(sc) > TS_SESS_SCOPE_KINDS_))
        return refuse(d, TS_SESS_R_AUTH_BAD_ELECT, "elect.scopes",
                      "auth payload field \"elect.scopes\" must be an array of at most %d of "
                      "\"session\" and \"device\"",
                      TS_SESS_SCOPE_KINDS_);
    size_t i;
    json_array_foreach(sc, i, v) {
        int k = json_is_string(v) ? ts_sess_scope_kind_parse(json_string_value(v),
                                                             json_string_length(v))
                                  : -1;
        if (k < 0 || (out->elect_scopes & (1u << k)))
            return refuse(d, TS_SESS_R_AUTH_BAD_ELECT, "elect.scopes",
                          "auth payload field \"elect.scopes[%zu]\" must be \"session\" or "
                          "\"device\", each at most once",
                          i);
        out->elect_scopes |= 1u << k;
    }
    static const char *const flags[] = {"observer", "scores"};
    int *dst[] = {&out->elect_observer, &out->elect_scores};
    for (size_t f = 0; f < TS_ARRAY_LEN(flags); f++) {
        v = json_object_get(el, flags[f]);
        if (!v) continue;
        if (!json_is_boolean(v))
            return refuse(d, TS_SESS_R_AUTH_BAD_ELECT, flags[f],
                          "auth payload field \"elect.%s\" is %s; expected true or false",
                          flags[f], json_type_name(v));
        *dst[f] = json_is_true(v);
    }
    return 0;
}

int ts_sess_connect_parse(const json_t *auth, ts_sess_connect_t *out, ts_sess_deny_t *d) {
    memset(out, 0, sizeof *out);
    if (!auth || !json_is_object(auth))
        return refuse(d, TS_SESS_R_AUTH_NOT_OBJECT, "",
                      "the CONNECT auth payload is %s; expected an object with token, device, "
                      "tab and proto",
                      auth ? json_type_name(auth) : "missing");
    static const char *const known[] = {"token", "device", "tab",    "proto",
                                        "pid",   "offset", "elect", NULL};
    int rc = only_known(auth, known, "", d);
    if (rc) return rc;

    json_t *tok, *dev, *tab, *tid, *proto;
    if ((rc = member(auth, "token", "token", JSON_STRING, "a string", &tok, d))) return rc;
    size_t tlen = json_string_length(tok);
    if (tlen == 0)
        return refuse(d, TS_SESS_R_AUTH_EMPTY_FIELD, "token",
                      "auth payload field \"token\" is empty");
    if (tlen > TS_SESS_TOKEN_MAX)
        return refuse(d, TS_SESS_R_TOKEN_TOO_LARGE, "token",
                      "token is %zu bytes; at most %d are accepted", tlen, TS_SESS_TOKEN_MAX);

    if ((rc = member(auth, "device", "device", JSON_OBJECT, "an object", &dev, d)) ||
        (rc = parse_device(dev, out, d)))
        return rc;

    if ((rc = member(auth, "tab", "tab", JSON_OBJECT, "an object", &tab, d))) return rc;
    static const char *const tab_known[] = {"id", NULL};
    if ((rc = only_known(tab, tab_known, "tab.", d)) ||
        (rc = member(tab, "id", "tab.id", JSON_STRING, "a string", &tid, d)) ||
        (rc = id_field(tid, "tab.id", TS_SESS_ID_MAX, out->tab_id, d)))
        return rc;

    if ((rc = member(auth, "proto", "proto", JSON_INTEGER, "an integer", &proto, d))) return rc;
    json_int_t pv = json_integer_value(proto);
    if (pv < TS_SESS_PROTO_MIN || pv > TS_SESS_PROTO_CURRENT)
        return refuse(d, TS_SESS_R_AUTH_UNSUPPORTED_PROTO, "proto",
                      "protocol version %lld is not supported (this server speaks %d and "
                      "accepts %d..%d)",
                      (long long)pv, TS_SESS_PROTO_CURRENT, TS_SESS_PROTO_MIN,
                      TS_SESS_PROTO_CURRENT);
    out->proto = (int)pv;
    json_t *el = json_object_get(auth, "elect");
    if (el && (rc = parse_elect(el, out, d))) return rc;

    /* Connection state recovery: the Socket.IO client merges these into
     * the auth object; the Socket.IO layer uses them, we only check them. */
    static const char *const recovery[] = {"pid", "offset"};
    for (size_t i = 0; i < TS_ARRAY_LEN(recovery); i++) {
        json_t *r = json_object_get(auth, recovery[i]);
        if (!r) continue;
        if (!json_is_string(r))
            return refuse(d, TS_SESS_R_AUTH_WRONG_TYPE, recovery[i],
                          "auth payload field \"%s\" is %s; expected a string", recovery[i],
                          json_type_name(r));
        if (json_string_length(r) > TS_SESS_RECOVERY_FIELD_MAX)
            return refuse(d, TS_SESS_R_AUTH_FIELD_TOO_LONG, recovery[i],
                          "auth payload field \"%s\" is %zu bytes; at most %d are accepted",
                          recovery[i], json_string_length(r), TS_SESS_RECOVERY_FIELD_MAX);
    }

    out->token = ts_xmemdup(json_string_value(tok), tlen + 1);
    out->token_len = tlen;
    return 0;
}

void ts_sess_connect_deinit(ts_sess_connect_t *c) {
    if (!c) return;
    free(c->token);
    c->token = NULL;
    c->token_len = 0;
}
