/* session.c - libtabsync's /session layer: the CONNECT auth object, the
 * typed callbacks for welcome / event / security / error, and publish,
 * metadata and token swap with typed answers. It sits on the ordinary
 * client (emits with acks, on_event) plus one hook in dispatch_event, so
 * reconnection, buffering and recovery work for sessions unchanged. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "core/ts_util.h"

#define DEFAULT_ACK_TIMEOUT_MS 10000
#define PROTO_CURRENT 2
#define PROTO_ELECT 4

struct ts_client__sess {
    char *tab;                   /* the tab id sent in the auth object */
    ts_client_session_callbacks_t scb;
    unsigned ack_timeout_ms;
    char id_prefix[16];          /* "p" + random: generated envelope ids */
    uint64_t next_id;
};

typedef struct ts_client__sess ts_client__sess_t;

enum req_kind { REQ_PUBLISH, REQ_METADATA, REQ_TOKEN, REQ_HOOKED };

/* One request waiting for its ack. */
typedef struct sess_req {
    enum req_kind kind;
    ts_client_result_cb cb; /* may be NULL with a hook */
    void *ud;
    char *token; /* REQ_TOKEN: the token to keep on success */
    ts_client__answer_hook hook;
    void *hook_ud; /* freed with the request */
} sess_req_t;

static const char *const prio_names[] = {NULL,       "control",  "state",
                                         "event",    "presence", "telemetry"};
static const char *const scope_names[] = {"session", "user", "device"};

static void set_err(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *buf, size_t n, const char *fmt, ...) {
    if (!buf || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* n random characters of [a-z0-9] into out[0..n), NUL-terminated. */
static void random_name(char *out, size_t n) {
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t raw[32];
    if (n > sizeof raw) n = sizeof raw;
    ts_random_bytes(raw, n);
    for (size_t i = 0; i < n; i++) out[i] = alpha[raw[i] % 36];
    out[n] = '\0';
}

/* A JSON value as JSON.stringify writes it. Returns new, or NULL. */
static char *value_text(json_t *v) {
    json_t *wrap = json_pack("[O]", v ? v : json_null());
    char *t = wrap ? ts_client__json_text(wrap, 0, NULL) : NULL;
    json_decref(wrap);
    if (t) { /* "[x]" -> "x" */
        size_t k = strlen(t);
        memmove(t, t + 1, k - 2);
        t[k - 2] = '\0';
    }
    return t;
}

static const char *str_member(json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static int64_t int_member(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* Sets o[key] = v, taking v in every case (o NULL, v NULL, failure).
 * Returns 0 or -1. */
static int put(json_t *o, const char *key, json_t *v) {
    if (!o || !v) {
        json_decref(v);
        return -1;
    }
    return json_object_set_new(o, key, v);
}

/* ---- the auth object ---- */

/* Checks a required string field. Returns 0, or TS_EINVAL with errbuf set
 * when it is missing, empty or not UTF-8. */
static int check_field(const char *value, const char *name, char *errbuf, size_t errlen) {
    if (!value || !*value) {
        set_err(errbuf, errlen, "%s: required (a non-empty string)", name);
        return TS_EINVAL;
    }
    json_t *s = json_string(value); /* NULL: not UTF-8 */
    if (!s) {
        set_err(errbuf, errlen, "%s: not valid UTF-8", name);
        return TS_EINVAL;
    }
    json_decref(s);
    return 0;
}

/* Returns new: the auth object for tab id `tab`, or NULL with *rc
 * (TS_EINVAL, TS_ENOMEM) and errbuf set. */
static json_t *build_auth(const ts_client_session_opts_t *o, const char *tab, int *rc,
                          char *errbuf, size_t errlen) {
    const char *type = o->device_type ? o->device_type : "server";
    if ((*rc = check_field(o->token, "token", errbuf, errlen)) < 0 ||
        (*rc = check_field(o->device_id, "device_id", errbuf, errlen)) < 0 ||
        (*rc = check_field(o->fingerprint, "fingerprint", errbuf, errlen)) < 0 ||
        (*rc = check_field(type, "device_type", errbuf, errlen)) < 0 ||
        (*rc = check_field(tab, "tab_id", errbuf, errlen)) < 0)
        return NULL;
    if (o->ncaps && !o->caps) {
        set_err(errbuf, errlen, "caps: NULL with ncaps %zu", o->ncaps);
        *rc = TS_EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < o->ncaps; i++) {
        char name[40];
        snprintf(name, sizeof name, "caps[%zu]", i);
        if ((*rc = check_field(o->caps[i], name, errbuf, errlen)) < 0) return NULL;
    }
    int elect = o->elect_scopes || o->elect_observer || o->elect_scores;
    if (o->elect_scopes & ~(unsigned)(TS_CLIENT_ELECT_SESSION | TS_CLIENT_ELECT_DEVICE)) {
        set_err(errbuf, errlen, "elect_scopes: 0x%x is not a mask of TS_CLIENT_ELECT_SESSION and "
                "TS_CLIENT_ELECT_DEVICE", o->elect_scopes);
        *rc = TS_EINVAL;
        return NULL;
    }
    if (elect && o->proto && o->proto < PROTO_ELECT) {
        set_err(errbuf, errlen, "elect_*: elections need proto %d (proto is %d)", PROTO_ELECT,
                o->proto);
        *rc = TS_EINVAL;
        return NULL;
    }
    int proto = o->proto ? o->proto : elect ? PROTO_ELECT : PROTO_CURRENT;
    /* every string is valid now: any failure below is out of memory */
    *rc = TS_ENOMEM;
    json_t *auth = json_pack("{s:s,s:{s:s,s:s,s:s},s:{s:s},s:i}", "token", o->token, "device",
                             "id", o->device_id, "fingerprint", o->fingerprint, "type", type,
                             "tab", "id", tab, "proto", proto);
    if (auth && elect) {
        json_t *scopes = json_array();
        if (o->elect_scopes & TS_CLIENT_ELECT_SESSION)
            json_array_append_new(scopes, json_string("session"));
        if (o->elect_scopes & TS_CLIENT_ELECT_DEVICE)
            json_array_append_new(scopes, json_string("device"));
        json_t *el = json_pack("{s:o,s:b,s:b}", "scopes", scopes, "observer",
                               o->elect_observer != 0, "scores", o->elect_scores != 0);
        if (!el || json_object_set_new(auth, "elect", el) < 0) {
            json_decref(auth);
            auth = NULL;
        }
    }
    if (auth && o->ncaps) {
        json_t *caps = json_array();
        int bad = !caps;
        for (size_t i = 0; !bad && i < o->ncaps; i++)
            bad = json_array_append_new(caps, json_string(o->caps[i])) < 0;
        /* set_new takes caps even when it fails */
        if (bad || json_object_set_new(json_object_get(auth, "device"), "caps", caps) < 0) {
            if (bad) json_decref(caps);
            json_decref(auth);
            auth = NULL;
        }
    }
    if (!auth) {
        set_err(errbuf, errlen, "out of memory");
        return NULL;
    }
    *rc = 0;
    return auth;
}

TS_CLIENT_API void ts_client_session_opts_init(ts_client_session_opts_t *o) {
    memset(o, 0, sizeof *o);
    ts_client_opts_init(&o->client);
    o->client.nsp = "/session";
}

TS_CLIENT_API void ts_client_free(void *p) { free(p); }

TS_CLIENT_API int ts_client_session_auth_json(const ts_client_session_opts_t *o, char **out,
                                              char *errbuf, size_t errlen) {
    *out = NULL;
    if (errbuf && errlen) errbuf[0] = '\0';
    char tab[24] = "tab-";
    if (!o->tab_id) random_name(tab + 4, 16);
    int rc;
    json_t *auth = build_auth(o, o->tab_id ? o->tab_id : tab, &rc, errbuf, errlen);
    if (!auth) return rc;
    *out = value_text(auth);
    json_decref(auth);
    if (!*out) {
        set_err(errbuf, errlen, "out of memory");
        return TS_ENOMEM;
    }
    return 0;
}

void ts_client__sess_free(ts_client__sess_t *s) {
    if (!s) return;
    free(s->tab);
    free(s);
}

TS_CLIENT_API int ts_client_session_new(uv_loop_t *loop, const ts_client_session_opts_t *o,
                                        ts_client_t **out, char *errbuf, size_t errlen) {
    *out = NULL;
    if (errbuf && errlen) errbuf[0] = '\0';
    if (!o) {
        set_err(errbuf, errlen, "ts_client_session_new: opts are required");
        return TS_EINVAL;
    }
    if (o->client.auth_json) {
        set_err(errbuf, errlen,
                "client.auth_json: must be NULL (the session options make the auth object)");
        return TS_EINVAL;
    }
    ts_client__sess_t *s = calloc(1, sizeof *s);
    if (!s) return TS_ENOMEM;
    char tab[24] = "tab-";
    if (!o->tab_id) random_name(tab + 4, 16);
    s->tab = dupstr(o->tab_id ? o->tab_id : tab);
    if (!s->tab) {
        free(s);
        return TS_ENOMEM;
    }
    s->scb = o->scb;
    s->ack_timeout_ms = o->ack_timeout_ms ? o->ack_timeout_ms : DEFAULT_ACK_TIMEOUT_MS;
    s->id_prefix[0] = 'p';
    random_name(s->id_prefix + 1, 10);
    int rc;
    json_t *auth = build_auth(o, s->tab, &rc, errbuf, errlen);
    if (!auth) {
        ts_client__sess_free(s);
        return rc;
    }
    struct ts_client__elect *el = ts_client__elect_new(o);
    if (!el) {
        json_decref(auth);
        ts_client__sess_free(s);
        return TS_ENOMEM;
    }
    ts_client_opts_t co = o->client;
    if (!co.nsp || !*co.nsp) co.nsp = "/session";
    ts_client_t *c;
    rc = ts_client_new(loop, &co, &c, errbuf, errlen);
    if (rc < 0) {
        json_decref(auth);
        ts_client__sess_free(s);
        ts_client__elect_free(el);
        return rc;
    }
    c->auth = auth;
    c->sess = s;
    c->el = el;
    *out = c;
    return 0;
}

TS_CLIENT_API const char *ts_client_session_tab(const ts_client_t *c) {
    return c->sess ? c->sess->tab : NULL;
}

/* ---- what the server sends ---- */

static void fill_result(ts_client_result_t *r, json_t *o, const char *text) {
    memset(r, 0, sizeof *r);
    r->ok = json_is_true(json_object_get(o, "ok"));
    r->id = str_member(o, "id");
    r->exp = int_member(o, "exp");
    json_t *err = json_object_get(o, "error");
    if (!json_is_object(err)) err = o; /* the `error` event is {code, message, ...} itself */
    r->code = str_member(err, "code");
    r->message = str_member(err, "message");
    r->retry_after_ms = int_member(err, "retry_after_ms");
    r->json = text;
}

int ts_client__sess_dispatch(ts_client_t *c, const char *name, json_t *args) {
    ts_client__sess_t *s = c->sess;
    json_t *o = json_array_get(args, 0);
    if (!json_is_object(o)) return 0;
    if (strcmp(name, "elect") == 0) return ts_client__elect_view(c, o);
    void *user = c->opts.user;
    int which = strcmp(name, "welcome") == 0    ? (s->scb.on_welcome ? 1 : 0)
                : strcmp(name, "event") == 0    ? (s->scb.on_envelope ? 2 : 0)
                : strcmp(name, "security") == 0 ? (s->scb.on_security ? 3 : 0)
                : strcmp(name, "error") == 0    ? (s->scb.on_refused ? 4 : 0)
                                                : 0;
    if (!which) return 0;
    char *text = value_text(o);
    if (!text) return TS_ENOMEM;
    if (which == 1) {
        ts_client_welcome_t w = {
            .user = str_member(o, "user"),     .session = str_member(o, "session"),
            .device = str_member(o, "device"), .tab = str_member(o, "tab"),
            .node = str_member(o, "node"),     .proto = (int)int_member(o, "proto"),
            .exp = int_member(o, "exp"),       .json = text,
        };
        s->scb.on_welcome(c, &w, user);
    } else if (which == 2) {
        char *body = value_text(json_object_get(o, "body"));
        if (!body) {
            free(text);
            return TS_ENOMEM;
        }
        json_t *from = json_object_get(o, "from");
        ts_client_envelope_t e = {
            .v = (int)int_member(o, "v"),
            .type = str_member(o, "type"),
            .id = str_member(o, "id"),
            .cid = str_member(o, "cid"),
            .prio = str_member(o, "prio"),
            .to = str_member(o, "to"),
            .body_json = body,
            .from_user = str_member(from, "user"),
            .from_device = str_member(from, "device"),
            .from_tab = str_member(from, "tab"),
            .json = text,
        };
        s->scb.on_envelope(c, &e, user);
        free(body);
    } else if (which == 3) {
        ts_client_security_t sec = {.code = str_member(o, "code"),
                                    .exp = int_member(o, "exp"),
                                    .message = str_member(o, "message"),
                                    .json = text};
        s->scb.on_security(c, &sec, user);
    } else {
        ts_client_result_t r;
        fill_result(&r, o, text);
        r.ok = 0;
        s->scb.on_refused(c, &r, user);
    }
    free(text);
    return 1;
}

/* ---- requests ---- */

static void req_free(sess_req_t *q) {
    free(q->token);
    free(q->hook_ud);
    free(q);
}

static void on_req_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud) {
    sess_req_t *q = ud;
    if (status < 0) {
        if (q->hook) q->hook(c, status, NULL, q->hook_ud);
        if (q->cb) q->cb(c, status, NULL, q->ud);
        req_free(q);
        return;
    }
    json_error_t je;
    json_t *args = json_loads(reply->args_json, 0, &je);
    json_t *o = json_array_get(args, 0);
    char *text = json_is_object(o) && json_is_boolean(json_object_get(o, "ok")) ? value_text(o)
                                                                                 : NULL;
    if (!text) {
        int st = args ? TS_EPROTO : TS_ENOMEM;
        json_decref(args);
        if (q->hook) q->hook(c, st, NULL, q->hook_ud);
        if (q->cb) q->cb(c, st, NULL, q->ud);
        req_free(q);
        return;
    }
    ts_client_result_t r;
    fill_result(&r, o, text);
    if (r.ok && q->kind == REQ_TOKEN) {
        /* the next CONNECT must carry the token the server now holds */
        json_t *t = json_string(q->token);
        if (t && c->auth) json_object_set_new(c->auth, "token", t);
        else json_decref(t);
    }
    if (q->hook) q->hook(c, 0, o, q->hook_ud);
    if (q->cb) q->cb(c, 0, &r, q->ud);
    free(text);
    json_decref(args);
    req_free(q);
}

/* Emits `event` with the one argument `arg` (taken), with an ack when cb
 * or hook. token and hook_ud are taken too. */
static int send_req_hooked(ts_client_t *c, const char *event, json_t *arg, enum req_kind kind,
                           char *token, ts_client__answer_hook hook, void *hook_ud,
                           ts_client_result_cb cb, void *ud) {
    json_t *args = json_array();
    if (!args || json_array_append_new(args, arg) < 0) {
        json_decref(args);
        free(token);
        free(hook_ud);
        return TS_ENOMEM;
    }
    sess_req_t *q = NULL;
    if ((cb || hook) && !(q = calloc(1, sizeof *q))) {
        json_decref(args);
        free(token);
        free(hook_ud);
        return TS_ENOMEM;
    }
    if (q) {
        q->kind = kind;
        q->cb = cb;
        q->ud = ud;
        q->token = token;
        q->hook = hook;
        q->hook_ud = hook_ud;
    } else {
        free(token);
        free(hook_ud);
    }
    int rc = ts_client__emit_json(c, event, args, q ? on_req_ack : NULL, q,
                                  c->sess->ack_timeout_ms);
    json_decref(args);
    if (rc < 0 && q) req_free(q);
    return rc;
}

static int send_req(ts_client_t *c, const char *event, json_t *arg, enum req_kind kind,
                    char *token /* taken */, ts_client_result_cb cb, void *ud) {
    return send_req_hooked(c, event, arg, kind, token, NULL, NULL, cb, ud);
}

int ts_client__sess_send(ts_client_t *c, const char *event, json_t *arg,
                         ts_client__answer_hook hook, void *hook_ud, ts_client_result_cb cb,
                         void *ud) {
    return send_req_hooked(c, event, arg, REQ_HOOKED, NULL, hook, hook_ud, cb, ud);
}

TS_CLIENT_API int ts_client_publish(ts_client_t *c, const char *type, const char *id,
                                    const char *body_json, ts_client_scope_t scope,
                                    ts_client_prio_t prio, ts_client_result_cb cb, void *ud) {
    ts_client__sess_t *s = c->sess;
    if (!s || !type || !*type || (id && !*id)) return TS_EINVAL;
    if ((unsigned)scope > TS_CLIENT_TO_DEVICE || (unsigned)prio > TS_CLIENT_PRIO_TELEMETRY)
        return TS_EINVAL;
    if (c->state == TS_CLIENT_CLOSING) return TS_ECLOSED;
    json_t *body = json_null();
    if (body_json) {
        json_error_t je;
        body = json_loads(body_json, JSON_DECODE_ANY, &je);
        if (!body) return TS_EINVAL;
    }
    char gen[64];
    if (!id) {
        snprintf(gen, sizeof gen, "%s-%llu", s->id_prefix, (unsigned long long)++s->next_id);
        id = gen;
    }
    json_t *jtype = json_string(type), *jid = json_string(id);
    if (!jtype || !jid) { /* not UTF-8 */
        json_decref(jtype);
        json_decref(jid);
        json_decref(body);
        return TS_EINVAL;
    }
    json_t *env = json_object();
    int bad = put(env, "v", json_integer(PROTO_CURRENT)) < 0;
    bad |= put(env, "type", jtype) < 0;
    bad |= put(env, "id", jid) < 0;
    if (prio != TS_CLIENT_PRIO_DEFAULT) bad |= put(env, "prio", json_string(prio_names[prio])) < 0;
    bad |= put(env, "to", json_string(scope_names[scope])) < 0;
    bad |= put(env, "body", body) < 0;
    if (bad) {
        json_decref(env);
        return TS_ENOMEM;
    }
    return send_req(c, "publish", env, REQ_PUBLISH, NULL, cb, ud);
}

TS_CLIENT_API int ts_client_set_metadata(ts_client_t *c, const char *json, ts_client_result_cb cb,
                                         void *ud) {
    if (!c->sess || !json) return TS_EINVAL;
    if (c->state == TS_CLIENT_CLOSING) return TS_ECLOSED;
    json_error_t je;
    json_t *o = json_loads(json, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return TS_EINVAL;
    }
    return send_req(c, "metadata", o, REQ_METADATA, NULL, cb, ud);
}

TS_CLIENT_API int ts_client_swap_token(ts_client_t *c, const char *token, ts_client_result_cb cb,
                                       void *ud) {
    if (!c->sess || !token || !*token || !cb) return TS_EINVAL;
    if (c->state == TS_CLIENT_CLOSING) return TS_ECLOSED;
    if (c->state != TS_CLIENT_CONNECTED) return TS_ESTATE;
    json_t *t = json_string(token);
    if (!t) return TS_EINVAL; /* not UTF-8 */
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "token", t) < 0) {
        json_decref(o);
        return TS_ENOMEM;
    }
    char *copy = dupstr(token);
    if (!copy) {
        json_decref(o);
        return TS_ENOMEM;
    }
    return send_req(c, "token", o, REQ_TOKEN, copy, cb, ud);
}

TS_CLIENT_API int ts_client_set_token(ts_client_t *c, const char *token) {
    if (!c->sess || !c->auth || !token || !*token) return TS_EINVAL;
    json_t *t = json_string(token);
    if (!t) return TS_EINVAL; /* not UTF-8 (or out of memory) */
    if (json_object_set_new(c->auth, "token", t) < 0) return TS_ENOMEM;
    return 0;
}
