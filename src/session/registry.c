/* registry.c - the registry entry of each /session socket, kept in the
 * store with a TTL: written on connect and on metadata, renewed by the
 * sweep while the socket lives, removed on disconnect. Every store call
 * goes through the store's circuit breaker; while it is open, writes are
 * skipped (the next sweep renews them) rather than queued without bound.
 * ts_sess_api_tabs reads it back for the admin API, as JSON text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_json.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "session/sess_int.h"
#include "store/ts_store.h"

typedef struct reg_op {
    ts_sess_t *sess;
} reg_op_t;

static void op_done(int status, void *ud) {
    ts_sess_t *sess = ud;
    uint64_t now = uv_now(sess->loop);
    if (status == TS_ESTORE || status == TS_ECLOSED)
        ts_brk_failure(&sess->store_brk, now);
    else
        ts_brk_success(&sess->store_brk, now);
    if (status && status != TS_ENOTFOUND)
        ts_debug("session", "registry write failed: %s", ts_strerror(status));
    ts_sess__op_end(sess);
}

/* The store keys a tab by (session, device, tab); ids are chosen per user,
 * so the device part is "<user>/<device>" ('/' is outside the id alphabet):
 * two users with the same session, device and tab ids keep two entries.
 * The admin API shows the plain device id. */
static ts_store_reg_key_t key_of(const sess_sock_t *ss) {
    return (ts_store_reg_key_t){ts_slice_str(ss->id.session), ts_slice_str(sess_key(ss, SK_ROOM_DEVICE) + 2),
                                ts_slice_str(ss->id.tab)};
}

json_t *ts_sess__reg_data(const sess_sock_t *ss) {
    ts_eio_sock_t *e = ts_sio_socket_eio(ss->s);
    const char *ua = e ? ts_eio_sock_user_agent(e) : NULL;
    int rtt = e ? ts_eio_sock_rtt_ms(e) : -1;
    json_t *d = json_pack("{s:s,s:s,s:I,s:s,s:i}", "socket", ts_sio_socket_id(ss->s), "type",
                          ts_sess_device_type_name((ts_sess_device_type_t)ss->id.device_type),
                          "connected_at", (json_int_t)ss->connected_at,
                          "address", sess_key(ss, SK_PEER), "proto", ss->id.proto);
    if (ss->id.caps) json_object_set(d, "caps", ss->id.caps);
    if (ua) json_object_set_new(d, "user_agent", json_string(ua));
    if (rtt >= 0) json_object_set_new(d, "rtt_ms", json_integer(rtt));
    if (ss->meta) json_object_update(d, ss->meta);
    return d;
}

/* Starts a store call under the breaker: returns 1 if it may proceed. */
static int begin(ts_sess_t *sess) {
    if (!ts_brk_allow(&sess->store_brk, uv_now(sess->loop))) return 0;
    sess->pending_ops++;
    return 1;
}

/* A call refused before it started (bad arguments): not the store's fault. */
static void refused(ts_sess_t *sess, int rc, const char *what) {
    ts_warn("session", "registry %s refused: %s", what, ts_strerror(rc));
    ts_brk_success(&sess->store_brk, uv_now(sess->loop));
    ts_sess__op_end(sess);
}

void ts_sess__reg_put(sess_sock_t *ss) {
    ts_sess_t *sess = ss->sess;
    ss->renewed_at = uv_now(sess->loop);
    if (!begin(sess)) return;
    json_t *d = ts_sess__reg_data(ss);
    /* ts_json_dump, not json_dumps: jansson's writer was 7 % of a /session
     * handshake's instructions and runs again at every renewal */
    ts_sbuf_t text = TS_SBUF_INIT;
    ts_json_dump(&text, d);
    json_decref(d);
    ts_store_reg_t e = {.key = key_of(ss),
                        .user = ts_slice_str(ss->id.user),
                        .node = ts_slice_str(sess->node_id),
                        .data = ts_slice(ts_sbuf_data(&text), ts_sbuf_len(&text))};
    int rc = ts_store_reg_put(sess->store, &e, sess->cfg.registry_ttl_ms, op_done, sess);
    ts_sbuf_free(&text);
    if (rc) refused(sess, rc, "put");
}

void ts_sess__reg_remove(sess_sock_t *ss) {
    ts_sess_t *sess = ss->sess;
    if (!begin(sess)) return; /* the entry expires by itself */
    ts_store_reg_key_t k = key_of(ss);
    int rc = ts_store_reg_remove(sess->store, &k, op_done, sess);
    if (rc) refused(sess, rc, "remove");
}

/* ---- the registry as the admin API shows it (ts_sess_api_tabs) ---- */

typedef struct tabs_req {
    ts_sess_t *sess;
    ts_sess_tabs_by_t by;
    ts_sess_api_cb cb;
    void *ud;
    char id[TS_SESS_ID_MAX + 1];
    char user[TS_SESS_ID_MAX + 1]; /* "" = every user */
} tabs_req_t;

static json_t *entry_json(const ts_store_reg_t *e) {
    json_t *data = json_loadb((const char *)e->data.p, e->data.len, 0, NULL);
    ts_slice_t dev = e->key.device; /* "<user>/<device>" (key_of) */
    const uint8_t *slash = memchr(dev.p, '/', dev.len);
    if (slash) dev = ts_slice(slash + 1, dev.len - (size_t)(slash + 1 - dev.p));
    return json_pack("{s:s%,s:s%,s:s%,s:s%,s:s%,s:I,s:o}", "user", e->user.p, e->user.len,
                     "session", e->key.session.p, e->key.session.len, "device", dev.p, dev.len,
                     "tab", e->key.tab.p, e->key.tab.len, "node", e->node.p, e->node.len,
                     "expires_at", (json_int_t)e->expires_at, "data", data ? data : json_null());
}

/* Groups tabs by one key ("device" or "session") of each user, with their
 * tab count. */
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
        json_object_set_new(g, "tabs",
                            json_integer(json_integer_value(json_object_get(g, "tabs")) + 1));
    }
    json_decref(seen);
    return out;
}

static void on_list(int status, const ts_store_reg_t *entries, size_t n, void *ud) {
    tabs_req_t *r = ud;
    ts_sess_t *sess = r->sess;
    uint64_t now = uv_now(sess->loop);
    if (status == TS_ESTORE || status == TS_ECLOSED)
        ts_brk_failure(&sess->store_brk, now);
    else
        ts_brk_success(&sess->store_brk, now);
    if (status) {
        r->cb(status, ts_slice(NULL, 0), r->ud);
    } else {
        json_t *tabs = json_array();
        for (size_t i = 0; i < n; i++) {
            if (r->user[0] && !ts_slice_eq_str(entries[i].user, r->user)) continue;
            json_array_append_new(tabs, entry_json(&entries[i]));
        }
        json_t *body;
        if (r->by == TS_SESS_TABS_BY_SESSION)
            body = json_pack("{s:s,s:o,s:o}", "session", r->id, "devices",
                             group(tabs, "device", "user"), "tabs", tabs);
        else
            body = json_pack("{s:s,s:o,s:o,s:o}", "user", r->id, "devices",
                             group(tabs, "device", "user"), "sessions",
                             group(tabs, "session", "user"), "tabs", tabs);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        r->cb(0, ts_slice_str(text), r->ud);
        free(text);
    }
    free(r);
    ts_sess__op_end(sess);
}

int ts_sess_api_tabs(ts_sess_t *sess, ts_sess_tabs_by_t by, const char *id, const char *user,
                     ts_sess_api_cb cb, void *ud) {
    if (sess->closed) return TS_ECLOSED;
    if (!id || !ts_sess_id_valid(id, strlen(id)) ||
        (user && !ts_sess_id_valid(user, strlen(user))) ||
        (by != TS_SESS_TABS_BY_SESSION && by != TS_SESS_TABS_BY_USER))
        return TS_EINVAL;
    if (!begin(sess)) return TS_ECIRCUIT;
    tabs_req_t *r = ts_xcalloc(1, sizeof(*r));
    r->sess = sess;
    r->by = by;
    r->cb = cb;
    r->ud = ud;
    ts_strlcpy(r->id, id, sizeof r->id);
    if (user) ts_strlcpy(r->user, user, sizeof r->user);
    ts_store_by_t sby = by == TS_SESS_TABS_BY_SESSION ? TS_STORE_BY_SESSION : TS_STORE_BY_USER;
    int rc = ts_store_reg_list(sess->store, sby, ts_slice_str(r->id), on_list, r);
    if (rc) {
        /* refused before it started (bad arguments): not the store's fault */
        ts_brk_success(&sess->store_brk, uv_now(sess->loop));
        free(r);
        ts_sess__op_end(sess);
    }
    return rc;
}
