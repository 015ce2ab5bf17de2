/* http.c - the session layer's HTTP endpoints: the admin API over the
 * registry (admin token, constant-time compare) and, with --dev only, the
 * token minting endpoint of the demo page. Answers are asynchronous: the
 * request is held until the store answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "session/sess_int.h"
#include "session/ts_sess_auth.h"
#include "store/ts_store.h"

#define JSON_HDR "Content-Type: application/json\r\nCache-Control: no-store\r\n"

typedef struct admin_req {
    ts_sess_t *sess;
    ts_http_conn_t *hc; /* NULL once the client went away */
    ts_store_by_t by;
    char id[TS_STORE_ID_MAX + 1];
} admin_req_t;

static void respond_json(ts_http_conn_t *hc, int status, const char *extra, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    char hdrs[300];
    snprintf(hdrs, sizeof hdrs, JSON_HDR "%s", extra ? extra : "");
    ts_http_respond(hc, status, hdrs, text, strlen(text), 0);
    free(text);
    json_decref(body);
}

static void respond_error(ts_http_conn_t *hc, int status, const char *extra, const char *msg) {
    respond_json(hc, status, extra, json_pack("{s:s}", "error", msg));
}

static int id_ok(const char *s, size_t n) {
    if (n == 0 || n > TS_STORE_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '@' || c == '-'))
            return 0;
    }
    return 1;
}

static void on_abort(ts_http_conn_t *hc, void *ud) {
    admin_req_t *r = ud;
    r->hc = NULL;
}

static json_t *entry_json(const ts_store_reg_t *e) {
    json_t *data = json_loadb((const char *)e->data.p, e->data.len, 0, NULL);
    ts_slice_t dev = e->key.device; /* "<user>/<device>" (registry.c) */
    const uint8_t *slash = memchr(dev.p, '/', dev.len);
    if (slash) dev = ts_slice(slash + 1, dev.len - (size_t)(slash + 1 - dev.p));
    return json_pack("{s:s%,s:s%,s:s%,s:s%,s:s%,s:I,s:o}", "user", e->user.p, e->user.len,
                     "session", e->key.session.p, e->key.session.len, "device", dev.p, dev.len,
                     "tab", e->key.tab.p, e->key.tab.len, "node", e->node.p,
                     e->node.len, "expires_at", (json_int_t)e->expires_at,
                     "data", data ? data : json_null());
}

/* Groups entries by one key ("device" or "session") with their tab count. */
static json_t *group(json_t *tabs, const char *key, const char *also) {
    json_t *out = json_array(), *seen = json_object();
    size_t i;
    json_t *t;
    json_array_foreach(tabs, i, t) {
        const char *k = json_string_value(json_object_get(t, key));
        const char *u = json_string_value(json_object_get(t, also));
        char name[2 * TS_STORE_ID_MAX + 2];
        snprintf(name, sizeof name, "%s\n%s", u, k);
        json_t *g = json_object_get(seen, name);
        if (!g) {
            g = json_pack("{s:s,s:s,s:i}", also, u, key, k, "tabs", 0);
            json_array_append_new(out, g);
            json_object_set(seen, name, g);
        }
        json_object_set_new(g, "tabs", json_integer(json_integer_value(json_object_get(g, "tabs")) + 1));
    }
    json_decref(seen);
    return out;
}

static void on_list(int status, const ts_store_reg_t *entries, size_t n, void *ud) {
    admin_req_t *r = ud;
    ts_sess_t *sess = r->sess;
    uint64_t now = uv_now(sess->loop);
    if (status == TS_ESTORE || status == TS_ECLOSED)
        ts_brk_failure(&sess->store_brk, now);
    else
        ts_brk_success(&sess->store_brk, now);
    if (r->hc) {
        ts_http_conn_detach(r->hc);
        if (status) {
            respond_error(r->hc, 503, "Retry-After: 1\r\n", "the session store is unavailable");
        } else {
            json_t *tabs = json_array();
            for (size_t i = 0; i < n; i++) json_array_append_new(tabs, entry_json(&entries[i]));
            json_t *body;
            if (r->by == TS_STORE_BY_SESSION)
                body = json_pack("{s:s,s:o,s:o}", "session", r->id, "devices",
                                 group(tabs, "device", "user"), "tabs", tabs);
            else
                body = json_pack("{s:s,s:o,s:o,s:o}", "user", r->id, "devices",
                                 group(tabs, "device", "user"), "sessions",
                                 group(tabs, "session", "user"), "tabs", tabs);
            respond_json(r->hc, 200, NULL, body);
        }
    }
    free(r);
    ts_sess__op_end(sess);
}

static void admin(ts_sess_t *sess, ts_http_conn_t *hc, const ts_http_req_t *req) {
    if (!sess->admin_token) {
        respond_error(hc, 404, NULL, "admin API disabled: start tabsyncd with --admin-token");
        return;
    }
    ts_slice_t auth;
    const char *bearer = "Bearer ";
    if (!ts_http_req_header(req, "authorization", &auth) || auth.len <= 7 ||
        strncmp((const char *)auth.p, bearer, 7) != 0 ||
        !ts_sess_secret_equal(auth.p + 7, auth.len - 7, sess->admin_token,
                              strlen(sess->admin_token))) {
        respond_error(hc, 401, "WWW-Authenticate: Bearer realm=\"tabsync-admin\"\r\n",
                      "admin token required (Authorization: Bearer <token>)");
        return;
    }
    if (req->method != HTTP_GET) {
        respond_error(hc, 405, "Allow: GET\r\n", "only GET");
        return;
    }
    static const struct {
        const char *prefix;
        ts_store_by_t by;
    } routes[] = {{"/api/admin/sessions/", TS_STORE_BY_SESSION}, {"/api/admin/users/", TS_STORE_BY_USER}};
    for (size_t i = 0; i < TS_ARRAY_LEN(routes); i++) {
        size_t pl = strlen(routes[i].prefix);
        if (req->path.len <= pl || memcmp(req->path.p, routes[i].prefix, pl) != 0) continue;
        const char *id = (const char *)req->path.p + pl;
        size_t n = req->path.len - pl;
        if (!id_ok(id, n)) {
            respond_error(hc, 400, NULL, "bad id: 1-128 characters of [A-Za-z0-9._:@-]");
            return;
        }
        if (!ts_brk_allow(&sess->store_brk, uv_now(sess->loop))) {
            respond_error(hc, 503, "Retry-After: 1\r\n", "the session store is unavailable (circuit open)");
            return;
        }
        admin_req_t *r = ts_xcalloc(1, sizeof(*r));
        r->sess = sess;
        r->hc = hc;
        r->by = routes[i].by;
        memcpy(r->id, id, n);
        sess->pending_ops++;
        int rc = ts_store_reg_list(sess->store, r->by, ts_slice(id, n), on_list, r);
        if (rc) {
            ts_brk_success(&sess->store_brk, uv_now(sess->loop));
            free(r);
            ts_sess__op_end(sess);
            respond_error(hc, 400, NULL, ts_strerror(rc));
            return;
        }
        ts_http_conn_hold(hc, on_abort, r);
        return;
    }
    respond_error(hc, 404, NULL, "no such admin resource (sessions/<id>, users/<id>)");
}

/* --dev: GET /api/dev/token?user=U&session=S&device=D[&fingerprint=F]. */
static void dev_token(ts_sess_t *sess, ts_http_conn_t *hc, const ts_http_req_t *req) {
    if (!sess->cfg.dev) {
        respond_error(hc, 404, NULL, "development endpoints are off (start tabsyncd with --dev)");
        return;
    }
    char vals[4][TS_STORE_ID_MAX + 1];
    static const char *const names[4] = {"user", "session", "device", "fingerprint"};
    for (int i = 0; i < 4; i++) {
        ts_slice_t v;
        vals[i][0] = '\0';
        if (!ts_http_query_param(req->query, names[i], &v)) {
            if (i == 3) continue; /* fingerprint defaults to the device id */
            respond_error(hc, 400, NULL, "user, session and device are required");
            return;
        }
        if (!id_ok((const char *)v.p, v.len)) {
            respond_error(hc, 400, NULL, "bad value: 1-128 characters of [A-Za-z0-9._:@-]");
            return;
        }
        memcpy(vals[i], v.p, v.len);
        vals[i][v.len] = '\0';
    }
    char *token = NULL;
    int64_t exp = 0;
    int rc = ts_sess__dev_mint(sess, vals[0], vals[1], vals[2], vals[3][0] ? vals[3] : vals[2],
                               &token, &exp);
    if (rc) {
        respond_error(hc, 500, NULL, "cannot mint a token (is --jwt-secret set?)");
        return;
    }
    respond_json(hc, 200, NULL, json_pack("{s:s,s:I}", "token", token, "exp", (json_int_t)exp));
    free(token);
}

int ts_sess_http(ts_sess_t *sess, ts_http_conn_t *hc, const ts_http_req_t *req) {
    static const char admin_prefix[] = "/api/admin/", dev_path[] = "/api/dev/token";
    if (req->path.len >= sizeof admin_prefix - 1 &&
        memcmp(req->path.p, admin_prefix, sizeof admin_prefix - 1) == 0) {
        admin(sess, hc, req);
        return 1;
    }
    if (ts_slice_eq_str(req->path, dev_path)) {
        dev_token(sess, hc, req);
        return 1;
    }
    return 0;
}
