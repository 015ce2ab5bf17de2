/* registry.c - the registry entry of each /session socket, kept in the
 * store with a TTL: written on connect and on metadata, renewed by the
 * sweep while the socket lives, removed on disconnect. Every store call
 * goes through the store's circuit breaker; while it is open, writes are
 * skipped (the next sweep renews them) rather than queued without bound. */
#include <stdlib.h>
#include <string.h>

#include "core/ts_log.h"
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
    return (ts_store_reg_key_t){ts_slice_str(ss->id.session), ts_slice_str(ss->room_device + 2),
                                ts_slice_str(ss->id.tab)};
}

json_t *ts_sess__reg_data(const sess_sock_t *ss) {
    ts_eio_sock_t *e = ts_sio_socket_eio(ss->s);
    const char *ua = e ? ts_eio_sock_user_agent(e) : NULL;
    int rtt = e ? ts_eio_sock_rtt_ms(e) : -1;
    json_t *d = json_pack("{s:s,s:s,s:I,s:s,s:i}", "socket", ts_sio_socket_id(ss->s), "type",
                          ss->id.device_type, "connected_at", (json_int_t)ss->connected_at,
                          "address", ss->peer, "proto", ss->id.proto);
    if (ss->id.caps) json_object_set(d, "caps", ss->id.caps);
    if (ua) json_object_set_new(d, "user_agent", json_string(ua));
    if (rtt >= 0) json_object_set_new(d, "rtt_ms", json_integer(rtt));
    json_object_update(d, ss->meta);
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
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    ts_store_reg_t e = {.key = key_of(ss),
                        .user = ts_slice_str(ss->id.user),
                        .node = ts_slice_str(sess->node_id),
                        .data = ts_slice_str(text)};
    int rc = ts_store_reg_put(sess->store, &e, sess->cfg.registry_ttl_ms, op_done, sess);
    free(text);
    if (rc) refused(sess, rc, "put");
}

void ts_sess__reg_remove(sess_sock_t *ss) {
    ts_sess_t *sess = ss->sess;
    if (!begin(sess)) return; /* the entry expires by itself */
    ts_store_reg_key_t k = key_of(ss);
    int rc = ts_store_reg_remove(sess->store, &k, op_done, sess);
    if (rc) refused(sess, rc, "remove");
}
