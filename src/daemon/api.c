/* api.c - tabsyncd's HTTP API: the admin routes (registry, a session's
 * events and health; admin token), the backend routes through which an
 * application's server publishes into a session's history and reads or
 * changes its state (publisher token), the cluster's server-side requests
 * (fetchSockets, socketsJoin/Leave, disconnectSockets, serverSideEmit over
 * every node, Node servers included; admin token), and with --dev the token
 * minting endpoint of the demo page. Only HTTP lives here: the data comes from the
 * session layer's data API (ts_sess_api_*), and a request is held until it
 * answers. */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "adapter/ts_adp_remote.h"
#include "daemon/ts_dmn.h"
#include "session/ts_sess_auth.h"

#define JSON_HDR "Content-Type: application/json\r\nCache-Control: no-store\r\n"
#define BAD_ID "bad id: 1-128 characters of [A-Za-z0-9._:@-]"
#define JS_MAX_SAFE 9007199254740991ull /* 2^53 - 1: what a JSON number holds exactly */

/* ---- answers ---- */

static void respond_text(ts_http_conn_t *hc, int status, const char *extra, ts_slice_t text) {
    char hdrs[300];
    snprintf(hdrs, sizeof hdrs, JSON_HDR "%s", extra ? extra : "");
    ts_http_respond(hc, status, hdrs, text.p, text.len, 0);
}

static void respond_json(ts_http_conn_t *hc, int status, const char *extra, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    respond_text(hc, status, extra, ts_slice_str(text));
    free(text);
    json_decref(body);
}

static void respond_error(ts_http_conn_t *hc, int status, const char *extra, const char *msg) {
    respond_json(hc, status, extra, json_pack("{s:s}", "error", msg));
}

/* A data API call that returned instead of calling back. */
static void respond_refused(ts_http_conn_t *hc, int rc) {
    if (rc == TS_ECIRCUIT)
        respond_error(hc, 503, "Retry-After: 1\r\n",
                      "the session store is unavailable (circuit open)");
    else if (rc == TS_ECLOSED)
        respond_error(hc, 503, "Retry-After: 1\r\n", "tabsyncd is shutting down");
    else if (rc == TS_EINVAL) /* the ids were checked: the history is what is missing */
        respond_error(hc, 404, NULL, "the session history is off (tabsyncd --history off)");
    else
        respond_error(hc, 400, NULL, ts_strerror(rc));
}

/* Other answers are the protocol's, ok or not, and go out as 200. */
uint32_t ts_dmn__api_retry_after(ts_slice_t body) {
    static const char refused[] = "{\"ok\":false";
    if (body.len < sizeof refused - 1 || memcmp(body.p, refused, sizeof refused - 1) != 0)
        return 0;
    json_t *a = json_loadb((const char *)body.p, body.len, 0, NULL);
    json_t *items = json_object_get(a, "results");
    size_t n = json_is_array(items) ? json_array_size(items) : 0;
    json_int_t wait = 0;
    int all = 1;
    for (size_t i = 0; i < (n ? n : 1) && all; i++) {
        json_t *err = json_object_get(n ? json_array_get(items, i) : a, "error");
        const char *code = json_string_value(json_object_get(err, "code"));
        all = code && strcmp(code, "store_unavailable") == 0;
        json_int_t ms = json_integer_value(json_object_get(err, "retry_after_ms"));
        if (ms > wait) wait = ms;
    }
    json_decref(a);
    if (!all) return 0;
    return wait > 1000 ? (uint32_t)((wait + 999) / 1000) : 1;
}

static void respond_answer(ts_http_conn_t *hc, ts_slice_t body) {
    uint32_t wait = ts_dmn__api_retry_after(body);
    char extra[40] = "";
    if (wait) snprintf(extra, sizeof extra, "Retry-After: %u\r\n", wait);
    respond_text(hc, wait ? 503 : 200, extra, body);
}

/* ---- requests ---- */

/* Constant-time check of "Authorization: Bearer <token>". */
static int bearer_ok(const ts_http_req_t *req, const char *token) {
    ts_slice_t auth;
    return ts_http_req_header(req, "authorization", &auth) && auth.len > 7 &&
           memcmp(auth.p, "Bearer ", 7) == 0 &&
           ts_sess_secret_equal(auth.p + 7, auth.len - 7, token, strlen(token));
}

static int hexval(uint8_t c) {
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int ts_dmn__api_decode_id(ts_slice_t in, char *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        int c = in.p[i];
        if (c == '%') {
            int hi = i + 2 < in.len ? hexval(in.p[i + 1]) : -1;
            int lo = i + 2 < in.len ? hexval(in.p[i + 2]) : -1;
            if (hi < 0 || lo < 0) return 0;
            c = hi * 16 + lo;
            i += 2;
        }
        if (n + 1 >= cap) return 0;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return ts_sess_id_valid(out, n);
}

/* A query parameter that is an id: 1 if present (and then *ok says
 * whether it is valid), else 0. */
static int query_id(const ts_http_req_t *req, const char *name, char *out, size_t cap, int *ok) {
    ts_slice_t v;
    if (!ts_http_query_param(req->query, name, &v)) return 0;
    *ok = ts_dmn__api_decode_id(v, out, cap);
    return 1;
}

/* A query parameter that is an integer 0..2^53-1: 1 and *out if present
 * and valid, 0 if absent, -1 if malformed. */
static int query_uint(const ts_http_req_t *req, const char *name, uint64_t *out) {
    ts_slice_t v;
    if (!ts_http_query_param(req->query, name, &v)) return 0;
    if (v.len == 0 || v.len > 16) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return -1;
        x = x * 10 + (uint64_t)(v.p[i] - '0');
    }
    if (x > JS_MAX_SAFE) return -1;
    *out = x;
    return 1;
}

/* A request held while the session layer answers. */
typedef enum api_step {
    STEP_ANSWER,        /* the answer is the response */
    STEP_HEALTH,        /* health, then the session's tabs of that user */
    STEP_HEALTH_TABS,
    STEP_EPOCH,         /* health for the current epoch, then the events since */
} api_step_t;

typedef struct api_req {
    ts_dmn_t *d;
    ts_http_conn_t *hc; /* NULL once the client went away */
    api_step_t step;
    json_t *health;     /* STEP_HEALTH_TABS: the health answer */
    json_t *sync;       /* STEP_EPOCH: the sync argument, without its epoch */
    char user[TS_SESS_ID_MAX + 1], session[TS_SESS_ID_MAX + 1];
} api_req_t;

static void on_abort(ts_http_conn_t *hc, void *ud) {
    (void)hc;
    api_req_t *r = ud;
    r->hc = NULL;
}

static api_req_t *req_hold(ts_dmn_t *d, ts_http_conn_t *hc, api_step_t step) {
    api_req_t *r = ts_xcalloc(1, sizeof(*r));
    r->d = d;
    r->hc = hc;
    r->step = step;
    ts_http_conn_hold(hc, on_abort, r);
    return r;
}

static void req_free(api_req_t *r) {
    json_decref(r->health);
    json_decref(r->sync);
    free(r);
}

/* A data API call's return: nonzero means its callback will never run. */
static void req_started(api_req_t *r, int rc) {
    if (!rc) return;
    if (r->hc) {
        ts_http_conn_detach(r->hc);
        respond_refused(r->hc, rc);
    }
    req_free(r);
}

static ts_sess_api_target_t target_of(api_req_t *r, const char *publisher) {
    return (ts_sess_api_target_t){r->user, r->session, publisher};
}

static void on_answer(int status, ts_slice_t body, void *ud);

/* Starts the call after a first answer (health): the tabs of the session
 * (STEP_HEALTH), or the events since, in the epoch it gave (STEP_EPOCH). */
static void next_step(api_req_t *r, ts_slice_t body) {
    ts_sess_t *sess = r->d->sess;
    json_t *h = json_loadb((const char *)body.p, body.len, 0, NULL);
    if (r->step == STEP_HEALTH) {
        r->health = h;
        r->step = STEP_HEALTH_TABS;
        req_started(r, sess ? ts_sess_api_tabs(sess, TS_SESS_TABS_BY_SESSION, r->session,
                                               r->user, on_answer, r)
                            : TS_ECLOSED);
        return;
    }
    json_t *epoch = json_object_get(h, "epoch");
    if (json_is_string(epoch)) json_object_set(r->sync, "epoch", epoch);
    json_decref(h);
    r->step = STEP_ANSWER;
    ts_sess_api_target_t t = target_of(r, "admin");
    req_started(r, sess ? ts_sess_api_read(sess, &t, r->sync, on_answer, r) : TS_ECLOSED);
}

static void on_answer(int status, ts_slice_t body, void *ud) {
    api_req_t *r = ud;
    if (!r->hc) {
        req_free(r);
        return;
    }
    if (status) { /* the registry's store failed */
        ts_http_conn_detach(r->hc);
        respond_error(r->hc, 503, "Retry-After: 1\r\n", "the session store is unavailable");
        req_free(r);
        return;
    }
    if ((r->step == STEP_HEALTH || r->step == STEP_EPOCH) && !ts_dmn__api_retry_after(body)) {
        next_step(r, body);
        return;
    }
    ts_http_conn_detach(r->hc);
    if (r->step == STEP_HEALTH_TABS) {
        /* the history's health and who is connected to the session */
        json_t *tabs = json_loadb((const char *)body.p, body.len, 0, NULL);
        json_t *out = r->health ? r->health : json_object();
        r->health = NULL;
        json_object_set_new(out, "user", json_string(r->user));
        json_object_set_new(out, "session", json_string(r->session));
        json_object_set(out, "devices", json_object_get(tabs, "devices"));
        json_object_set(out, "tabs", json_object_get(tabs, "tabs"));
        json_decref(tabs);
        respond_json(r->hc, 200, NULL, out);
    } else {
        respond_answer(r->hc, body);
    }
    req_free(r);
}

/* ---- admin: /api/admin/... (admin token) ---- */

/* GET /api/admin/sessions/<session>/events?user=U&since=N&limit=L and
 * GET /api/admin/sessions/<session>/health?user=U. */
static void admin_history(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req,
                          const char *session, int events) {
    char user[TS_SESS_ID_MAX + 1];
    int ok = 0;
    if (!query_id(req, "user", user, sizeof user, &ok)) {
        respond_error(hc, 400, NULL, "user is required (?user=<the token's sub>)");
        return;
    }
    if (!ok) {
        respond_error(hc, 400, NULL, "bad user: 1-128 characters of [A-Za-z0-9._:@-]");
        return;
    }
    json_t *arg = NULL;
    if (events) {
        uint64_t since = 0, limit = 0;
        int has_limit = query_uint(req, "limit", &limit);
        if (query_uint(req, "since", &since) < 0 || has_limit < 0) {
            respond_error(hc, 400, NULL,
                          "since and limit are integers (since: a seq, limit: 1-1000)");
            return;
        }
        arg = json_pack("{s:I}", "after", (json_int_t)since);
        if (has_limit) json_object_set_new(arg, "limit", json_integer((json_int_t)limit));
    }
    /* an audit reads the current epoch's entries: it asks for the epoch
     * first (since 0 needs none) */
    int need_epoch = events && json_integer_value(json_object_get(arg, "after")) > 0;
    api_req_t *r = req_hold(d, hc, !events ? STEP_HEALTH : need_epoch ? STEP_EPOCH : STEP_ANSWER);
    ts_strlcpy(r->user, user, sizeof r->user);
    ts_strlcpy(r->session, session, sizeof r->session);
    ts_sess_api_target_t t = target_of(r, "admin");
    if (r->step == STEP_ANSWER) {
        req_started(r, ts_sess_api_read(d->sess, &t, arg, on_answer, r));
        json_decref(arg);
    } else {
        r->sync = arg;
        req_started(r, ts_sess_api_health(d->sess, &t, on_answer, r));
    }
}

/* GET /api/admin/sessions/<session>/elections?user=U: the leaders, members,
 * scores, tasks and recent transitions of every election of the session. */
static void admin_elections(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req,
                            const char *session) {
    char user[TS_SESS_ID_MAX + 1];
    int ok = 0;
    if (!query_id(req, "user", user, sizeof user, &ok) || !ok) {
        respond_error(hc, 400, NULL, "user is required (?user=<the token's sub>, 1-128 "
                                     "characters of [A-Za-z0-9._:@-])");
        return;
    }
    api_req_t *r = req_hold(d, hc, STEP_ANSWER);
    req_started(r, ts_sess_api_elections(d->sess, user, session, on_answer, r));
}

/* ---- admin: /api/admin/cluster/... (admin token) ----
 * Node's io.fetchSockets(), socketsJoin(), socketsLeave(),
 * disconnectSockets(), serverSideEmit(), io.emit() (with acks:
 * io.timeout(ms).emit(..., cb)) and the adapter's allRooms() over the
 * whole cluster: this process's sockets and, through the Redis adapter,
 * every other node's (tabsyncd or Node). docs/PROTOCOL.md "The cluster
 * API". */

static json_t *body_json(ts_http_conn_t *hc, const ts_http_req_t *req);

#define CLUSTER_MAX_NAMES 1024       /* rooms, except, names: strings per list */
#define CLUSTER_MAX_TIMEOUT_MS 60000

/* The request's strings and the held HTTP request, until the result. */
typedef struct cluster_req {
    ts_http_conn_t *hc;    /* NULL once the client went away */
    ts_adp_req_kind_t kind;
    int ack;
    json_t *lists;         /* {rooms, except, names}: keeps the strings alive */
} cluster_req_t;

static void cluster_abort(ts_http_conn_t *hc, void *ud) {
    (void)hc;
    cluster_req_t *c = ud;
    c->hc = NULL;
}

static void cluster_done(const ts_sio_result_t *res, void *ud) {
    cluster_req_t *c = ud;
    if (c->hc) {
        ts_http_conn_detach(c->hc);
        json_t *out = json_pack("{s:I}", "local", (json_int_t)res->local);
        json_object_set_new(out, "remote", json_boolean(res->remote));
        json_object_set_new(out, "nodes", json_integer((json_int_t)res->nodes));
        int answered = c->kind == TS_ADP_REQ_FETCH_SOCKETS || c->kind == TS_ADP_REQ_ALL_ROOMS || c->ack;
        if (answered) {
            json_object_set_new(out, "answered", json_integer((json_int_t)res->answered));
            json_object_set_new(out, "timedOut", json_boolean(res->timed_out));
        }
        if (res->sockets) json_object_set(out, "sockets", res->sockets);
        if (res->rooms) json_object_set(out, "rooms", res->rooms);
        if (res->answers && c->ack) json_object_set(out, "answers", res->answers);
        if (c->kind == TS_ADP_REQ_BROADCAST_ACK && c->ack)
            json_object_set_new(out, "clients", json_integer((json_int_t)res->clients));
        if (res->status)
            json_object_set_new(out, "error", json_string(ts_strerror(res->status)));
        respond_json(c->hc, res->status ? 503 : 200, res->status ? "Retry-After: 1\r\n" : NULL,
                     out);
    }
    json_decref(c->lists);
    free(c);
}

/* Percent-decodes a query value ('+' is a space, as forms send it) into a
 * new JSON string, or NULL (bad escape, NUL, invalid UTF-8). */
static json_t *query_string(ts_slice_t v) {
    char *buf = ts_xmalloc(v.len + 1);
    size_t n = 0;
    int bad = 0;
    for (size_t i = 0; i < v.len && !bad; i++) {
        int c = v.p[i];
        if (c == '+') c = ' ';
        if (c == '%') {
            int hi = i + 2 < v.len ? hexval(v.p[i + 1]) : -1;
            int lo = i + 2 < v.len ? hexval(v.p[i + 2]) : -1;
            c = hi * 16 + lo;
            bad = hi < 0 || lo < 0;
            i += 2;
        }
        bad |= c == 0; /* the adapter's messages carry names without NUL */
        buf[n++] = (char)c;
    }
    json_t *s = bad ? NULL : json_stringn(buf, n); /* NULL for invalid UTF-8 too */
    free(buf);
    return s;
}

/* Every value of query parameter `name` (it may repeat), appended to
 * `out`. Returns 0, or -1 for a value that is not a string we can use. */
static int query_all(const ts_http_req_t *req, const char *name, json_t *out) {
    size_t nl = strlen(name);
    ts_slice_t q = req->query;
    size_t i = 0;
    while (i < q.len) {
        size_t end = i;
        while (end < q.len && q.p[end] != '&') end++;
        ts_slice_t part = ts_slice(q.p + i, end - i);
        if (part.len > nl && memcmp(part.p, name, nl) == 0 && part.p[nl] == '=') {
            json_t *v = query_string(ts_slice(part.p + nl + 1, part.len - nl - 1));
            if (!v || json_array_size(out) >= CLUSTER_MAX_NAMES) {
                json_decref(v);
                return -1;
            }
            json_array_append_new(out, v);
        }
        i = end + 1;
    }
    return 0;
}

/* body[key]: absent, a string or an array of strings, as a new array in
 * lists[key]. Returns 0, or -1 after answering 400. */
static int body_strings(ts_http_conn_t *hc, json_t *body, const char *key, json_t *lists) {
    json_t *v = json_object_get(body, key), *arr = json_array();
    json_object_set_new(lists, key, arr);
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        json_array_append(arr, v);
        return 0;
    }
    size_t i;
    json_t *x;
    int ok = json_is_array(v) && json_array_size(v) <= CLUSTER_MAX_NAMES;
    json_array_foreach(v, i, x) {
        /* the Redis adapter's messages carry names without NUL */
        if (!json_is_string(x) || strlen(json_string_value(x)) != json_string_length(x)) ok = 0;
        else json_array_append(arr, x);
    }
    if (ok) return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: a string or an array of at most %d strings (without NUL)", key,
             CLUSTER_MAX_NAMES);
    respond_error(hc, 400, NULL, msg);
    return -1;
}

/* The strings of lists[key] (borrowed from it), in a new vector. */
static const char **strs_of(json_t *lists, const char *key, size_t *n) {
    json_t *arr = json_object_get(lists, key);
    *n = json_array_size(arr);
    const char **v = ts_xmalloc((*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) v[i] = json_string_value(json_array_get(arr, i));
    return v;
}

static int timeout_of(ts_http_conn_t *hc, json_t *v, uint64_t *out) {
    if (!v) return 0;
    if (json_is_integer(v) && json_integer_value(v) > 0 &&
        json_integer_value(v) <= CLUSTER_MAX_TIMEOUT_MS) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    respond_error(hc, 400, NULL, "timeout: milliseconds, 1-60000 (default 5000)");
    return -1;
}

/* GET /api/admin/cluster/sockets?nsp=/&room=R&except=E&timeout=MS,
 * GET /api/admin/cluster/rooms?nsp=/&timeout=MS and
 * POST /api/admin/cluster/{emit,broadcast,join,leave,disconnect}. */
static void admin_cluster(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req,
                          ts_slice_t what) {
    static const struct {
        const char *name;
        ts_adp_req_kind_t kind;
    } verbs[] = {{"sockets", TS_ADP_REQ_FETCH_SOCKETS},
                 {"rooms", TS_ADP_REQ_ALL_ROOMS},
                 {"join", TS_ADP_REQ_SOCKETS_JOIN},
                 {"leave", TS_ADP_REQ_SOCKETS_LEAVE},
                 {"disconnect", TS_ADP_REQ_DISCONNECT_SOCKETS},
                 {"emit", TS_ADP_REQ_SERVER_SIDE_EMIT},
                 {"broadcast", TS_ADP_REQ_BROADCAST_ACK}};
    size_t k = 0;
    while (k < TS_ARRAY_LEN(verbs) && !ts_slice_eq_str(what, verbs[k].name)) k++;
    if (k == TS_ARRAY_LEN(verbs)) {
        respond_error(hc, 404, NULL, "no such cluster resource (sockets, rooms, join, leave, "
                                     "disconnect, emit, broadcast)");
        return;
    }
    ts_adp_req_kind_t kind = verbs[k].kind;
    int get = kind == TS_ADP_REQ_FETCH_SOCKETS || kind == TS_ADP_REQ_ALL_ROOMS;
    if (req->method != (get ? HTTP_GET : HTTP_POST)) {
        respond_error(hc, 405, get ? "Allow: GET\r\n" : "Allow: POST\r\n",
                      get ? "only GET" : "only POST");
        return;
    }
    json_t *lists = json_object(), *body = NULL, *nsp = NULL, *data = NULL;
    uint64_t timeout = 0;
    int ack = 0, close = 0;
    if (get) {
        json_t *rooms = json_array(), *except = json_array(), *ns = json_array();
        json_object_set_new(lists, "rooms", rooms);
        json_object_set_new(lists, "except", except);
        json_object_set_new(lists, "names", json_array());
        uint64_t ms = 0;
        int has_to = query_uint(req, "timeout", &ms);
        int bad = query_all(req, "room", rooms) || query_all(req, "except", except) ||
                  query_all(req, "nsp", ns) || json_array_size(ns) > 1 || has_to < 0 ||
                  (kind == TS_ADP_REQ_ALL_ROOMS && json_array_size(rooms) + json_array_size(except));
        nsp = json_incref(json_array_get(ns, 0));
        json_decref(ns);
        if (bad) {
            respond_error(hc, 400, NULL,
                          kind == TS_ADP_REQ_ALL_ROOMS
                              ? "bad query: nsp=/, timeout=MS (every room: no room or except)"
                              : "bad query: nsp=/&room=R&except=E (room and except may "
                                "repeat, percent-encoded), timeout=MS");
            goto out;
        }
        json_t *tv = has_to ? json_integer((json_int_t)ms) : NULL;
        bad = timeout_of(hc, tv, &timeout);
        json_decref(tv);
        if (bad) goto out;
    } else {
        if (!(body = body_json(hc, req))) goto out;
        if (!json_is_object(body)) {
            respond_error(hc, 400, NULL, "the body is a JSON object");
            goto out;
        }
        if (body_strings(hc, body, "rooms", lists) || body_strings(hc, body, "except", lists) ||
            body_strings(hc, body, "names", lists) ||
            timeout_of(hc, json_object_get(body, "timeout"), &timeout))
            goto out;
        nsp = json_incref(json_object_get(body, "nsp"));
        close = json_is_true(json_object_get(body, "close"));
        ack = json_is_true(json_object_get(body, "ack"));
        if ((kind == TS_ADP_REQ_SOCKETS_JOIN || kind == TS_ADP_REQ_SOCKETS_LEAVE) &&
            !json_array_size(json_object_get(lists, "names"))) {
            respond_error(hc, 400, NULL, "names: the rooms to join or leave (a string or an array)");
            goto out;
        }
        if (kind == TS_ADP_REQ_SERVER_SIDE_EMIT || kind == TS_ADP_REQ_BROADCAST_ACK) {
            json_t *ev = json_object_get(body, "event"), *args = json_object_get(body, "args");
            if (!json_is_string(ev) || !json_string_length(ev) || (args && !json_is_array(args))) {
                respond_error(hc, 400, NULL,
                              kind == TS_ADP_REQ_BROADCAST_ACK
                                  ? "broadcast: {event: \"name\", args: [...], rooms, except, "
                                    "ack: true|false}"
                                  : "emit: {event: \"name\", args: [...], ack: true|false}");
                goto out;
            }
            data = json_pack("[O]", ev);
            if (args) json_array_extend(data, args);
        }
    }
    if (nsp && (!json_is_string(nsp) || json_string_value(nsp)[0] != '/' ||
                strlen(json_string_value(nsp)) != json_string_length(nsp))) {
        respond_error(hc, 400, NULL, "nsp: a namespace, \"/\" or \"/name\"");
        goto out;
    }
    {
        ts_adp_req_t r = {.kind = kind, .nsp = nsp ? json_string_value(nsp) : "/",
                          .close = close, .data = data};
        const char **rooms = strs_of(lists, "rooms", &r.nrooms);
        const char **except = strs_of(lists, "except", &r.nexcept);
        const char **names = strs_of(lists, "names", &r.nnames);
        r.rooms = rooms;
        r.except = except;
        r.names = names;
        cluster_req_t *c = ts_xcalloc(1, sizeof *c);
        c->hc = hc;
        c->kind = kind;
        c->ack = ack;
        c->lists = json_incref(lists);
        ts_http_conn_hold(hc, cluster_abort, c);
        int rc = ts_sio_request(d->sio, &r, ack, timeout, cluster_done, c);
        if (rc) {
            ts_http_conn_detach(hc);
            respond_error(hc, 400, NULL, ts_strerror(rc));
            json_decref(c->lists);
            free(c);
        }
        free(rooms);
        free(except);
        free(names);
    }
out:
    json_decref(nsp);
    json_decref(data);
    json_decref(body);
    json_decref(lists);
}

static void admin(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req) {
    const char *token = d->cfg.admin_token;
    if (!token[0]) {
        respond_error(hc, 404, NULL, "admin API disabled: start tabsyncd with --admin-token");
        return;
    }
    if (!bearer_ok(req, token)) {
        respond_error(hc, 401, "WWW-Authenticate: Bearer realm=\"tabsync-admin\"\r\n",
                      "admin token required (Authorization: Bearer <token>)");
        return;
    }
    static const char cluster_prefix[] = "/api/admin/cluster/";
    if (req->path.len >= sizeof cluster_prefix - 1 &&
        memcmp(req->path.p, cluster_prefix, sizeof cluster_prefix - 1) == 0) {
        admin_cluster(d, hc, req,
                      ts_slice(req->path.p + sizeof cluster_prefix - 1,
                               req->path.len - (sizeof cluster_prefix - 1)));
        return;
    }
    if (req->method != HTTP_GET) {
        respond_error(hc, 405, "Allow: GET\r\n", "only GET");
        return;
    }
    static const struct {
        const char *prefix;
        ts_sess_tabs_by_t by;
    } routes[] = {{"/api/admin/sessions/", TS_SESS_TABS_BY_SESSION},
                  {"/api/admin/users/", TS_SESS_TABS_BY_USER}};
    for (size_t i = 0; i < TS_ARRAY_LEN(routes); i++) {
        size_t pl = strlen(routes[i].prefix);
        if (req->path.len <= pl || memcmp(req->path.p, routes[i].prefix, pl) != 0) continue;
        ts_slice_t rest = ts_slice(req->path.p + pl, req->path.len - pl);
        const uint8_t *slash = memchr(rest.p, '/', rest.len);
        ts_slice_t seg = slash ? ts_slice(rest.p, (size_t)(slash - rest.p)) : rest;
        ts_slice_t sub = slash ? ts_slice(slash + 1, rest.len - seg.len - 1) : ts_slice(NULL, 0);
        int events = ts_slice_eq_str(sub, "events"), health = ts_slice_eq_str(sub, "health");
        int elections = ts_slice_eq_str(sub, "elections");
        if (slash && !(routes[i].by == TS_SESS_TABS_BY_SESSION && (events || health || elections)))
            break;
        char id[TS_SESS_ID_MAX + 1];
        if (!ts_dmn__api_decode_id(seg, id, sizeof id)) {
            respond_error(hc, 400, NULL, BAD_ID);
            return;
        }
        if (slash && elections) {
            admin_elections(d, hc, req, id);
            return;
        }
        if (slash) {
            admin_history(d, hc, req, id, events);
            return;
        }
        api_req_t *r = req_hold(d, hc, STEP_ANSWER);
        req_started(r, ts_sess_api_tabs(d->sess, routes[i].by, id, NULL, on_answer, r));
        return;
    }
    respond_error(hc, 404, NULL,
                  "no such admin resource (sessions/<id>, sessions/<id>/events, "
                  "sessions/<id>/health, sessions/<id>/elections, users/<id>, "
                  "cluster/sockets, cluster/rooms, cluster/emit, cluster/broadcast, "
                  "cluster/join, cluster/leave, cluster/disconnect)");
}

/* ---- backends: /api/sessions/<user>/<session>/... (publisher token) ---- */

typedef enum backend_op { OP_PUBLISH, OP_STATE, OP_EVENTS, OP_ELECTION } backend_op_t;

/* The body: JSON as a Socket.IO argument is read (a number too large for
 * a 64-bit integer becomes a double, as JSON.parse makes it). Returns new,
 * or NULL after answering 400. */
static json_t *body_json(ts_http_conn_t *hc, const ts_http_req_t *req) {
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_error_t err;
    json_t *v = NULL;
    if (req->body.len) {
        v = ts_json_loadb(req->body.p, req->body.len, flags, &err);
        if (!v && json_error_code(&err) == json_error_numeric_overflow)
            v = json_loadb((const char *)req->body.p, req->body.len,
                           flags | JSON_DECODE_INT_AS_REAL, &err);
    }
    if (!v) {
        char msg[240];
        if (!req->body.len)
            snprintf(msg, sizeof msg, "the body is empty (expected JSON)");
        else
            snprintf(msg, sizeof msg, "the body is not valid JSON: %s at byte %d", err.text,
                     err.position);
        respond_error(hc, 400, NULL, msg);
    }
    return v;
}

/* GET .../events: {after?, epoch?, limit?} as sync takes. Returns new, or
 * NULL after answering 400. */
static json_t *events_arg(ts_http_conn_t *hc, const ts_http_req_t *req) {
    uint64_t after = 0, limit = 0;
    int has_after = query_uint(req, "after", &after), has_limit = query_uint(req, "limit", &limit);
    ts_slice_t ep;
    int has_epoch = ts_http_query_param(req->query, "epoch", &ep);
    int epoch_ok = has_epoch && ep.len == 16;
    for (size_t i = 0; epoch_ok && i < ep.len; i++)
        epoch_ok = (ep.p[i] >= '0' && ep.p[i] <= '9') || (ep.p[i] >= 'a' && ep.p[i] <= 'f');
    if (has_after < 0 || has_limit < 0 || (has_epoch && !epoch_ok)) {
        respond_error(hc, 400, NULL,
                      "after and limit are integers, epoch the 16 hex digits the server sent");
        return NULL;
    }
    json_t *arg = json_object();
    if (has_after) json_object_set_new(arg, "after", json_integer((json_int_t)after));
    if (has_epoch) json_object_set_new(arg, "epoch", json_stringn((const char *)ep.p, ep.len));
    if (has_limit) json_object_set_new(arg, "limit", json_integer((json_int_t)limit));
    return arg;
}

/* A backend writes into the session it names, whose room is the only one
 * its writer is in: an envelope addressed to the user's or a device's
 * rooms is refused. Returns 1 after answering 400. */
static int other_scope(ts_http_conn_t *hc, json_t *arg) {
    size_t n = json_is_array(arg) ? json_array_size(arg) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *env = json_is_array(arg) ? json_array_get(arg, i) : arg;
        const char *to = json_string_value(json_object_get(env, "to"));
        if (to && (strcmp(to, "user") == 0 || strcmp(to, "device") == 0)) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "envelope %zu: a backend publishes to the session it names "
                     "(to: \"session\", the default), not to \"%s\"",
                     i, to);
            respond_error(hc, 400, NULL, msg);
            return 1;
        }
    }
    return 0;
}

/* GET .../election?scope=session|device[&device=D]: the current term of a
 * scope, so that an application's backend can refuse a stale leader. */
static void backend_election(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req,
                             const char *user, const char *session) {
    char scope[16] = "session", device[TS_SESS_ID_MAX + 1] = "";
    ts_slice_t v;
    if (ts_http_query_param(req->query, "scope", &v)) {
        if (!ts_slice_eq_str(v, "session") && !ts_slice_eq_str(v, "device")) {
            respond_error(hc, 400, NULL, "bad scope: session or device");
            return;
        }
        memcpy(scope, v.p, v.len);
        scope[v.len] = '\0';
    }
    int ok = 0;
    if (!strcmp(scope, "device") && (!query_id(req, "device", device, sizeof device, &ok) || !ok)) {
        respond_error(hc, 400, NULL, "scope=device needs device=<id> (1-128 characters of "
                                     "[A-Za-z0-9._:@-])");
        return;
    }
    api_req_t *r = req_hold(d, hc, STEP_ANSWER);
    req_started(r, ts_sess_api_election(d->sess, user, session, scope, device, on_answer, r));
}

static void backend(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req, size_t prefix) {
    const char *token = d->cfg.publisher_token;
    if (!token[0]) {
        respond_error(hc, 404, NULL,
                      "backend API disabled: start tabsyncd with --publisher-token");
        return;
    }
    if (!bearer_ok(req, token)) {
        respond_error(hc, 401, "WWW-Authenticate: Bearer realm=\"tabsync-publisher\"\r\n",
                      "publisher token required (Authorization: Bearer <token>)");
        return;
    }
    /* <user>/<session>/<publish|state|events> */
    ts_slice_t seg[3];
    size_t nseg = 0;
    const uint8_t *p = req->path.p + prefix, *end = req->path.p + req->path.len;
    while (nseg < 3) {
        const uint8_t *slash = memchr(p, '/', (size_t)(end - p));
        seg[nseg++] = ts_slice(p, (size_t)((slash ? slash : end) - p));
        if (!slash) break;
        p = slash + 1;
    }
    static const struct {
        const char *name, *allow;
    } ops[] = {{"publish", "POST"}, {"state", "GET, POST"}, {"events", "GET"}, {"election", "GET"}};
    size_t op = TS_ARRAY_LEN(ops);
    for (size_t i = 0; nseg == 3 && p + seg[2].len == end && i < TS_ARRAY_LEN(ops); i++)
        if (ts_slice_eq_str(seg[2], ops[i].name)) op = i;
    if (op == TS_ARRAY_LEN(ops)) {
        respond_error(hc, 404, NULL,
                      "no such resource (sessions/<user>/<session>/publish, .../state, "
                      ".../events, .../election)");
        return;
    }
    char user[TS_SESS_ID_MAX + 1], session[TS_SESS_ID_MAX + 1];
    if (!ts_dmn__api_decode_id(seg[0], user, sizeof user) ||
        !ts_dmn__api_decode_id(seg[1], session, sizeof session)) {
        respond_error(hc, 400, NULL, BAD_ID);
        return;
    }
    int post = req->method == HTTP_POST, get = req->method == HTTP_GET;
    if (op == OP_ELECTION && get) {
        backend_election(d, hc, req, user, session);
        return;
    }
    if (op == OP_PUBLISH ? !post : op == OP_STATE ? !(post || get) : !get) {
        char allow[40];
        snprintf(allow, sizeof allow, "Allow: %s\r\n", ops[op].allow);
        respond_error(hc, 405, allow, "method not allowed");
        return;
    }
    char as[TS_SESS_ID_MAX + 1] = "backend";
    int ok = 1;
    if (post && query_id(req, "as", as, sizeof as, &ok) && !ok) {
        respond_error(hc, 400, NULL, "bad as: a publisher name of 1-128 characters of "
                                     "[A-Za-z0-9._:@-]");
        return;
    }
    json_t *arg = post ? body_json(hc, req) : op == OP_EVENTS ? events_arg(hc, req) : NULL;
    if ((post || op == OP_EVENTS) && !arg) return;
    if (op == OP_PUBLISH && other_scope(hc, arg)) {
        json_decref(arg);
        return;
    }
    api_req_t *r = req_hold(d, hc, STEP_ANSWER);
    memcpy(r->user, user, sizeof r->user);
    memcpy(r->session, session, sizeof r->session);
    ts_sess_api_target_t t = target_of(r, as);
    int rc = op == OP_PUBLISH ? ts_sess_api_publish(d->sess, &t, arg, on_answer, r)
             : post           ? ts_sess_api_change(d->sess, &t, arg, on_answer, r)
                              : ts_sess_api_read(d->sess, &t, arg, on_answer, r);
    json_decref(arg);
    req_started(r, rc);
}

/* ---- --dev: GET /api/dev/token?user=U&session=S&device=D[&fingerprint=F][&ttl=S] ---- */

static void dev_token(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req) {
    if (!d->cfg.dev) {
        respond_error(hc, 404, NULL, "development endpoints are off (start tabsyncd with --dev)");
        return;
    }
    char vals[4][TS_SESS_ID_MAX + 1];
    static const char *const names[4] = {"user", "session", "device", "fingerprint"};
    for (int i = 0; i < 4; i++) {
        int ok = 0;
        char msg[160];
        if (!query_id(req, names[i], vals[i], sizeof vals[i], &ok)) {
            if (i == 3) { /* the fingerprint defaults to the device id */
                memcpy(vals[3], vals[2], sizeof vals[3]);
                continue;
            }
            snprintf(msg, sizeof msg, "%s is required (user, session and device are)", names[i]);
            respond_error(hc, 400, NULL, msg);
            return;
        }
        if (!ok) {
            snprintf(msg, sizeof msg, "bad %s: 1-128 characters of [A-Za-z0-9._:@-]", names[i]);
            respond_error(hc, 400, NULL, msg);
            return;
        }
    }
    uint64_t ttl = 0;
    int has_ttl = query_uint(req, "ttl", &ttl);
    if (has_ttl < 0 || (has_ttl && (ttl < 1 || ttl > TS_SESS_MINT_TTL_MAX))) {
        char msg[96];
        snprintf(msg, sizeof msg, "bad ttl: seconds, 1..%d", TS_SESS_MINT_TTL_MAX);
        respond_error(hc, 400, NULL, msg);
        return;
    }
    char *token = NULL;
    int64_t exp = 0;
    if (ts_sess_api_dev_token(d->sess, vals[0], vals[1], vals[2], vals[3], (uint32_t)ttl, &token,
                              &exp) != 0) {
        respond_error(hc, 500, NULL, "cannot mint a token (is --jwt-secret set?)");
        return;
    }
    respond_json(hc, 200, NULL, json_pack("{s:s,s:I}", "token", token, "exp", (json_int_t)exp));
    free(token);
}

int ts_dmn_api_route(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req) {
    static const char admin_prefix[] = "/api/admin/", backend_prefix[] = "/api/sessions/";
    if (!d->sess) return 0;
    if (req->path.len >= sizeof admin_prefix - 1 &&
        memcmp(req->path.p, admin_prefix, sizeof admin_prefix - 1) == 0) {
        admin(d, hc, req);
        return 1;
    }
    if (req->path.len >= sizeof backend_prefix - 1 &&
        memcmp(req->path.p, backend_prefix, sizeof backend_prefix - 1) == 0) {
        backend(d, hc, req, sizeof backend_prefix - 1);
        return 1;
    }
    if (ts_slice_eq_str(req->path, "/api/dev/token")) {
        dev_token(d, hc, req);
        return 1;
    }
    return 0;
}
