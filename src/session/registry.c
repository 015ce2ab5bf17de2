/* registry.c - the registry entry of each /session socket, kept in the
 * store with a TTL: written on connect and on metadata, renewed by the
 * sweep while the socket lives, removed on disconnect. Every store call
 * goes through the store's circuit breaker; while it is open, writes are
 * skipped (the next sweep renews them) rather than queued without bound.
 * ts_sess_api_tabs reads it back for the admin API, as JSON text. */
#include <arpa/inet.h>
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
static ts_store_reg_key_t key_of(const sess_sock_t *ss, char buf[SESS_NAME_MAX]) {
    const char *dev = ts_sess__name(ss, SN_ROOM_DEVICE, buf) + 2; /* "d/<user>/<device>" */
    return (ts_store_reg_key_t){ts_slice_str(ss->id.session), ts_slice_str(dev),
                                ts_slice_str(ss->id.tab)};
}

/* ---- an entry's data ----
 * As the admin API shows it: {socket, type, connected_at, address, proto},
 * then caps, user_agent and rtt_ms when the tab has them, then its client
 * metadata (sess_meta, whose members replace those of the same name). For
 * the Redis store (other nodes and versions read it) that object is stored
 * as JSON text; for a process-local store (memory) in a compact form only
 * this file reads, 28 B for an idle tab instead of ~110 (docs/STORE.md
 * "Registry data"):
 *
 *   0x01, type | proto << 4, flags (REG_F_*), connected_at (6 bytes, LE),
 *   rtt (2, LE)                  with REG_F_RTT,
 *   socket id: 15 bytes          with REG_F_SOCK15 (20 base64url characters,
 *                                its 120 bits), else length (1) and bytes,
 *   address: 4 bytes             with REG_F_IPV4 (dotted quad as inet_ntop
 *                                writes it), else length (1) and bytes,
 *   user agent: length (2, LE)   with REG_F_UA, and bytes,
 *   and, when the tab has caps or metadata, the JSON text [caps, meta]
 *   (null for the absent one).
 *
 * JSON text never starts with 0x01, so a reader tells the forms apart. A
 * field that does not fit (an id over 255 bytes, a clock past 2^48 ms)
 * makes the writer use the JSON form. */
#define REG_COMPACT 0x01
#define REG_HEAD 9 /* tag, type and proto, flags, connected_at */
enum { REG_F_RTT = 1, REG_F_SOCK15 = 2, REG_F_IPV4 = 4, REG_F_UA = 8 };

/* The first five members. Returns new, or NULL for an unknown type. */
static json_t *reg_base_json(const sess_reg_data_t *d) {
    const char *type = ts_sess_device_type_name((ts_sess_device_type_t)d->type);
    if (!type) return NULL;
    return json_pack("{s:s,s:s,s:I,s:s,s:i}", "socket", d->socket, "type", type, "connected_at",
                     (json_int_t)d->connected_at, "address", d->address, "proto", (int)d->proto);
}

/* Adds the members after the first five to `o`, in their order. */
static void reg_add_rest(json_t *o, const sess_reg_data_t *d, json_t *caps, json_t *meta) {
    if (caps) json_object_set(o, "caps", caps);
    if (d->user_agent) json_object_set_new(o, "user_agent", json_string(d->user_agent));
    if (d->rtt_ms >= 0) json_object_set_new(o, "rtt_ms", json_integer(d->rtt_ms));
    if (meta) json_object_update(o, meta);
}

static int reg_fits(const sess_reg_data_t *d) {
    return d->type < 16 && d->proto < 16 && strlen(d->socket) <= 0xff &&
           strlen(d->address) <= 0xff && (!d->user_agent || strlen(d->user_agent) <= 0xffff) &&
           d->connected_at < ((uint64_t)1 << 48) && d->rtt_ms <= 0xffff;
}

/* A socket id of 20 base64url characters as its 15 bytes (1), or 0. */
static int sock15(const char *id, uint8_t out[15]) {
    return strlen(id) == 20 && ts_b64url_decode(id, 20, out) == 15; /* one encoding per value */
}

/* An IPv4 address in the one form inet_ntop writes (1), or 0. */
static int ipv4(const char *text, uint8_t out[4]) {
    char back[INET_ADDRSTRLEN];
    return inet_pton(AF_INET, text, out) == 1 && inet_ntop(AF_INET, out, back, sizeof back) &&
           strcmp(back, text) == 0;
}

static void put_str(ts_sbuf_t *out, const char *str, int lenbytes) {
    size_t n = str ? strlen(str) : 0;
    ts_sbuf_putc(out, (char)(n & 0xff));
    if (lenbytes == 2) ts_sbuf_putc(out, (char)(n >> 8));
    if (n) ts_sbuf_append(out, str, n);
}

int ts_sess__reg_encode(ts_sbuf_t *out, const sess_reg_data_t *d, int compact) {
    if (!compact || !reg_fits(d)) {
        json_t *o = reg_base_json(d);
        if (!o) return TS_EINVAL;
        reg_add_rest(o, d, d->caps, d->meta);
        ts_json_dump(out, o);
        json_decref(o);
        return 0;
    }
    if (!ts_sess_device_type_name((ts_sess_device_type_t)d->type)) return TS_EINVAL;
    uint8_t sock[15], v4[4];
    int has_sock15 = sock15(d->socket, sock), has_v4 = ipv4(d->address, v4);
    uint8_t head[REG_HEAD] = {
        REG_COMPACT, (uint8_t)(d->type | d->proto << 4),
        (uint8_t)((d->rtt_ms >= 0 ? REG_F_RTT : 0) | (has_sock15 ? REG_F_SOCK15 : 0) |
                  (has_v4 ? REG_F_IPV4 : 0) | (d->user_agent ? REG_F_UA : 0))};
    for (int i = 0; i < 6; i++) head[3 + i] = (uint8_t)(d->connected_at >> (8 * i));
    ts_sbuf_append(out, head, sizeof head);
    if (d->rtt_ms >= 0) {
        ts_sbuf_putc(out, (char)(d->rtt_ms & 0xff));
        ts_sbuf_putc(out, (char)(d->rtt_ms >> 8));
    }
    if (has_sock15)
        ts_sbuf_append(out, sock, sizeof sock);
    else
        put_str(out, d->socket, 1);
    if (has_v4)
        ts_sbuf_append(out, v4, sizeof v4);
    else
        put_str(out, d->address, 1);
    if (d->user_agent) put_str(out, d->user_agent, 2);
    if (d->caps || d->meta) {
        json_t *rest = json_pack("[OO]", d->caps ? d->caps : json_null(),
                                 d->meta ? d->meta : json_null());
        ts_json_dump(out, rest);
        json_decref(rest);
    }
    return 0;
}

/* Takes n bytes at *at into a new NUL-ended string (*out). Returns 0, or
 * -1 if they run past end. */
static int take_bytes(const uint8_t **at, const uint8_t *end, size_t n, char **out) {
    if ((size_t)(end - *at) < n) return -1;
    *out = ts_xmalloc(n + 1);
    memcpy(*out, *at, n);
    (*out)[n] = 0;
    *at += n;
    return 0;
}

/* The same after a length of `lenbytes` bytes. */
static int take_str(const uint8_t **at, const uint8_t *end, int lenbytes, char **out) {
    if (end - *at < lenbytes) return -1;
    size_t n = (*at)[0] | (lenbytes == 2 ? (size_t)(*at)[1] << 8 : 0);
    *at += lenbytes;
    return take_bytes(at, end, n, out);
}

json_t *ts_sess__reg_decode(ts_slice_t data) {
    if (!data.len || data.p[0] != REG_COMPACT)
        return json_loadb((const char *)data.p, data.len, 0, NULL);
    const uint8_t *at = data.p, *end = data.p + data.len;
    if (data.len < REG_HEAD) return NULL;
    unsigned flags = at[2];
    sess_reg_data_t d = {.type = at[1] & 15, .proto = at[1] >> 4, .rtt_ms = -1};
    for (int i = 0; i < 6; i++) d.connected_at |= (uint64_t)at[3 + i] << (8 * i);
    at += REG_HEAD;
    char *sock = NULL, *addr = NULL, *ua = NULL;
    json_t *o = NULL, *rest = NULL;
    if (flags & REG_F_RTT) {
        if (end - at < 2) goto out;
        d.rtt_ms = at[0] | at[1] << 8;
        at += 2;
    }
    if (flags & REG_F_SOCK15) {
        if (end - at < 15) goto out;
        sock = ts_xmalloc(ts_b64url_enc_len(15) + 1);
        ts_b64url_encode(at, 15, sock);
        at += 15;
    } else if (take_str(&at, end, 1, &sock)) {
        goto out;
    }
    if (flags & REG_F_IPV4) {
        if (end - at < 4) goto out;
        addr = ts_xmalloc(INET_ADDRSTRLEN);
        inet_ntop(AF_INET, at, addr, INET_ADDRSTRLEN);
        at += 4;
    } else if (take_str(&at, end, 1, &addr)) {
        goto out;
    }
    if ((flags & REG_F_UA) && take_str(&at, end, 2, &ua)) goto out;
    d.socket = sock;
    d.address = addr;
    d.user_agent = ua;
    if (at < end) {
        rest = json_loadb((const char *)at, (size_t)(end - at), 0, NULL);
        if (!json_is_array(rest) || json_array_size(rest) != 2) goto out;
    }
    if (!(o = reg_base_json(&d))) goto out;
    json_t *caps = json_array_get(rest, 0), *meta = json_array_get(rest, 1);
    reg_add_rest(o, &d, json_is_null(caps) ? NULL : caps, json_is_object(meta) ? meta : NULL);
out:
    json_decref(rest);
    free(sock);
    free(addr);
    free(ua);
    return o;
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
    ts_eio_sock_t *eio = ts_sio_socket_eio(ss->s);
    sess_reg_data_t d = {
        .socket = ts_sio_socket_id(ss->s),
        .address = sess_key(ss, SK_PEER),
        .user_agent = eio ? ts_eio_sock_user_agent(eio) : NULL,
        .caps = ss->id.caps,
        .meta = sess_meta(ss),
        .connected_at = ss->connected_at,
        .rtt_ms = eio ? ts_eio_sock_rtt_ms(eio) : -1,
        .type = ss->id.device_type,
        .proto = ss->id.proto,
    };
    /* ts_json_dump, not json_dumps: jansson's writer was 7 % of a /session
     * handshake's instructions and runs again at every renewal */
    ts_sbuf_t text = TS_SBUF_INIT;
    if (ts_sess__reg_encode(&text, &d, ts_store_process_local(sess->store)) != 0) {
        ts_sbuf_free(&text);
        refused(sess, TS_EINVAL, "put");
        return;
    }
    char dev[SESS_NAME_MAX];
    ts_store_reg_t e = {.key = key_of(ss, dev),
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
    char dev[SESS_NAME_MAX];
    ts_store_reg_key_t k = key_of(ss, dev);
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
    json_t *data = ts_sess__reg_decode(e->data);
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
