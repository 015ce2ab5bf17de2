/* proto.c - libtabsync's Engine.IO and Socket.IO half: what arrives over
 * the WebSocket (open, ping, messages; CONNECT, events, acks, errors) and
 * what the API sends (CONNECT with auth and recovery fields, events, acks).
 * The packet codecs are the server's own (src/eio, src/sio), compiled in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Replaces *slot by a copy of s (NULL clears). Returns 0 or TS_ENOMEM. */
static int set_str(char **slot, const char *s) {
    char *n = NULL;
    if (s && !(n = dupstr(s))) return TS_ENOMEM;
    free(*slot);
    *slot = n;
    return 0;
}

char *ts_client__json_text(json_t *arr, size_t nattach, ts_buf_t **attach) {
    /* The shared encoder writes exactly what JSON.stringify would (number
     * forms, key order); encode an ACK without id and keep the JSON part:
     * "43[...]", or "46<n>-[...]" with attachments. */
    ts_sio_packet_t p = {.type = TS_SIO_ACK, .nsp = (char *)"/", .id = TS_SIO_NO_ID,
                         .data = arr, .nattach = nattach, .attach = attach};
    ts_sio_encoded_t enc;
    if (ts_sio_encode(TS_SIO_PARSER_JSON, &p, &enc) < 0) return NULL;
    const char *s = (const char *)enc.msgs[0].buf->data;
    size_t n = enc.msgs[0].buf->len;
    const char *j = nattach ? memchr(s, '-', n) : s + 1;
    char *out = NULL;
    if (j) {
        j++;
        size_t k = n - (size_t)(j - s);
        if (k == 0) { /* an empty array is written as nothing after the type */
            out = dupstr("[]");
        } else if ((out = malloc(k + 1))) {
            memcpy(out, j, k);
            out[k] = '\0';
        }
    }
    ts_sio_encoded_clear(&enc);
    return out;
}

/* ---- acks we wait for ---- */

static ts_client__ack_t *find_ack(ts_client_t *c, int64_t id) {
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &c->acks) {
        ts_client__ack_t *a = ts_list_entry(it, ts_client__ack_t, link);
        if (a->id == id) return a;
    }
    return NULL;
}

void ts_client__rearm_ack_timer(ts_client_t *c) {
    if (c->state == TS_CLIENT_CLOSING) return;
    uint64_t min = 0;
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &c->acks) {
        ts_client__ack_t *a = ts_list_entry(it, ts_client__ack_t, link);
        if (a->deadline && (!min || a->deadline < min)) min = a->deadline;
    }
    if (!min) {
        uv_timer_stop(&c->t_ack);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->t_ack, ts_client__on_ack_timer, min > now ? min - now : 0, 0);
}

void ts_client__on_ack_timer(uv_timer_t *h) {
    ts_client_t *c = h->data;
    uint64_t now = uv_now(c->loop);
    for (;;) {
        ts_client__ack_t *due = NULL;
        ts_list_t *it, *tmp;
        TS_LIST_FOREACH_SAFE(it, tmp, &c->acks) {
            ts_client__ack_t *a = ts_list_entry(it, ts_client__ack_t, link);
            if (a->deadline && a->deadline <= now) {
                due = a;
                break;
            }
        }
        if (!due || c->state == TS_CLIENT_CLOSING) break;
        ts_list_remove(&due->link);
        due->cb(c, TS_ETIMEDOUT, NULL, due->ud);
        free(due);
    }
    ts_client__rearm_ack_timer(c);
}

void ts_client__fail_acks(ts_client_t *c, int all, int status) {
    /* one at a time from the head: a callback may emit (adding acks) */
    for (;;) {
        ts_client__ack_t *hit = NULL;
        ts_list_t *it, *tmp;
        TS_LIST_FOREACH_SAFE(it, tmp, &c->acks) {
            ts_client__ack_t *a = ts_list_entry(it, ts_client__ack_t, link);
            if (all || a->sent) {
                hit = a;
                break;
            }
        }
        if (!hit) break;
        ts_list_remove(&hit->link);
        hit->cb(c, status, NULL, hit->ud);
        free(hit);
    }
    ts_client__rearm_ack_timer(c);
}

void ts_client__clear_session_io(ts_client_t *c) {
    for (size_t i = 0; i < c->nearly; i++) ts_sio_packet_clear(&c->early[i]);
    c->nearly = 0;
    c->nsacks = 0;
    if (c->el) ts_client__elect_conn_lost(c);
}

/* ---- sending ---- */

int ts_client__send_connect(ts_client_t *c) {
    json_t *data = NULL;
    if (c->pid || c->auth) {
        /* socket.io-client's order: pid, offset, then the auth keys */
        data = json_object();
        if (!data) return TS_ENOMEM;
        int bad = 0;
        if (c->pid) bad |= json_object_set_new(data, "pid", json_string(c->pid));
        if (c->pid && c->offset) bad |= json_object_set_new(data, "offset", json_string(c->offset));
        if (c->auth) bad |= json_object_update(data, c->auth);
        if (bad) {
            json_decref(data);
            return TS_ENOMEM;
        }
    }
    ts_sio_packet_t p = {.type = TS_SIO_CONNECT, .nsp = c->nsp, .id = TS_SIO_NO_ID, .data = data};
    ts_sio_encoded_t enc;
    int rc = ts_sio_encode(c->kind, &p, &enc);
    json_decref(data);
    if (rc < 0) return rc;
    rc = ts_client__send_encoded(c, &enc);
    ts_sio_encoded_clear(&enc);
    return rc;
}

static int build_event(ts_client_t *c, const char *event, const char *args_json,
                       json_t *args_arr, const ts_client_bytes_t *attach, size_t nattach,
                       int64_t id, ts_sio_encoded_t *enc) {
    if (!event || !*event || ts_sio_is_reserved_event(event)) return TS_EINVAL;
    if (nattach && !attach) return TS_EINVAL;
    json_t *arr = json_array();
    if (!arr) return TS_ENOMEM;
    json_t *name = json_string(event); /* NULL: not UTF-8 */
    if (!name || json_array_append_new(arr, name) < 0) {
        json_decref(arr);
        return name ? TS_ENOMEM : TS_EINVAL;
    }
    if (args_json) {
        json_error_t je;
        json_t *args = json_loads(args_json, JSON_DECODE_ANY, &je);
        if (!args || !json_is_array(args) || json_array_extend(arr, args) < 0) {
            json_decref(args);
            json_decref(arr);
            return TS_EINVAL;
        }
        json_decref(args);
    } else if (args_arr && json_array_extend(arr, args_arr) < 0) {
        json_decref(arr);
        return TS_ENOMEM;
    }
    ts_buf_t **bufs = NULL;
    if (nattach) {
        bufs = calloc(nattach, sizeof *bufs);
        if (!bufs) {
            json_decref(arr);
            return TS_ENOMEM;
        }
        /* our own checked allocation of the codec's buffer type (it frees
         * with free()), so a big attachment cannot abort the process */
        for (size_t i = 0; i < nattach; i++) {
            ts_buf_t *b = malloc(sizeof *b + attach[i].len + 1);
            if (!b) {
                for (size_t k = 0; k < i; k++) ts_buf_unref(bufs[k]);
                free(bufs);
                json_decref(arr);
                return TS_ENOMEM;
            }
            b->refs = 1;
            b->len = attach[i].len;
            if (b->len) memcpy(b->data, attach[i].data, b->len);
            b->data[b->len] = '\0';
            bufs[i] = b;
        }
    }
    ts_sio_packet_t p = {.type = TS_SIO_EVENT, .nsp = c->nsp, .id = id, .data = arr,
                         .nattach = nattach, .attach = bufs};
    int rc = ts_sio_encode(c->kind, &p, enc);
    json_decref(arr);
    for (size_t i = 0; i < nattach; i++) ts_buf_unref(bufs[i]);
    free(bufs);
    return rc;
}

static void mark_sent(ts_client_t *c, int64_t id) {
    ts_client__ack_t *a = id >= 0 ? find_ack(c, id) : NULL;
    if (a) a->sent = 1;
}

void ts_client__flush_queue(ts_client_t *c) {
    while (!ts_list_empty(&c->queue) && c->state == TS_CLIENT_CONNECTED && c->t) {
        ts_client__queued_t *q = ts_list_entry(c->queue.next, ts_client__queued_t, link);
        ts_list_remove(&q->link);
        c->nqueued--;
        int rc = ts_client__send_encoded(c, &q->enc);
        ts_sio_encoded_clear(&q->enc);
        int64_t id = q->ack_id;
        free(q);
        if (rc == 0) {
            mark_sent(c, id);
            continue;
        }
        /* too big for this server, or no memory: that emit is lost; its
         * ack (if any) says so */
        ts_client__ack_t *a = id >= 0 ? find_ack(c, id) : NULL;
        if (a) {
            ts_list_remove(&a->link);
            a->cb(c, rc, NULL, a->ud);
            free(a);
        }
    }
}

static int emit_common(ts_client_t *c, const char *event, const char *args_json,
                       json_t *args_arr, const ts_client_bytes_t *attach, size_t nattach,
                       ts_client_ack_cb cb, void *ud, unsigned timeout_ms) {
    if (c->state == TS_CLIENT_CLOSING) return TS_ECLOSED;
    int now = c->state == TS_CLIENT_CONNECTED && c->t;
    if (!now && c->nqueued >= c->opts.max_buffered) return TS_ELIMIT;
    ts_client__ack_t *a = NULL;
    ts_client__queued_t *q = NULL;
    if (cb && !(a = calloc(1, sizeof *a))) return TS_ENOMEM;
    if (!now && !(q = calloc(1, sizeof *q))) {
        free(a);
        return TS_ENOMEM;
    }
    int64_t id = a ? c->next_ack_id : TS_SIO_NO_ID;
    ts_sio_encoded_t enc;
    int rc = build_event(c, event, args_json, args_arr, attach, nattach, id, &enc);
    if (rc == 0 && now) {
        rc = ts_client__send_encoded(c, &enc);
        ts_sio_encoded_clear(&enc);
    }
    if (rc < 0) {
        free(a);
        free(q);
        return rc;
    }
    if (q) {
        q->enc = enc;
        q->ack_id = id;
        ts_list_insert_tail(&c->queue, &q->link);
        c->nqueued++;
    }
    if (a) {
        c->next_ack_id++;
        a->id = id;
        a->cb = cb;
        a->ud = ud;
        a->sent = now;
        a->deadline = timeout_ms ? uv_now(c->loop) + timeout_ms : 0;
        ts_list_insert_tail(&c->acks, &a->link);
        if (timeout_ms) ts_client__rearm_ack_timer(c);
    }
    return 0;
}

TS_CLIENT_API int ts_client_emit(ts_client_t *c, const char *event, const char *args_json) {
    return emit_common(c, event, args_json, NULL, NULL, 0, NULL, NULL, 0);
}

int ts_client__emit_json(ts_client_t *c, const char *event, json_t *args, ts_client_ack_cb cb,
                         void *ud, unsigned timeout_ms) {
    return emit_common(c, event, NULL, args, NULL, 0, cb, ud, timeout_ms);
}

TS_CLIENT_API int ts_client_emit_ack(ts_client_t *c, const char *event, const char *args_json,
                                     ts_client_ack_cb cb, void *ud, unsigned timeout_ms) {
    if (!cb) return TS_EINVAL;
    return emit_common(c, event, args_json, NULL, NULL, 0, cb, ud, timeout_ms);
}

TS_CLIENT_API int ts_client_emit_binary(ts_client_t *c, const char *event, const char *args_json,
                                        const ts_client_bytes_t *attach, size_t nattach,
                                        ts_client_ack_cb cb, void *ud, unsigned timeout_ms) {
    return emit_common(c, event, args_json, NULL, attach, nattach, cb, ud, timeout_ms);
}

TS_CLIENT_API int ts_client_ack(ts_client_t *c, int64_t ack_id, const char *args_json) {
    if (c->state == TS_CLIENT_CLOSING) return TS_ECLOSED;
    size_t i = 0;
    while (i < c->nsacks && c->sacks[i] != ack_id) i++;
    if (i == c->nsacks || c->state != TS_CLIENT_CONNECTED) return TS_ENOTFOUND;
    json_t *arr;
    if (args_json) {
        json_error_t je;
        arr = json_loads(args_json, JSON_DECODE_ANY, &je);
        if (!arr || !json_is_array(arr)) {
            json_decref(arr);
            return TS_EINVAL;
        }
    } else if (!(arr = json_array())) {
        return TS_ENOMEM;
    }
    ts_sio_packet_t p = {.type = TS_SIO_ACK, .nsp = c->nsp, .id = ack_id, .data = arr};
    ts_sio_encoded_t enc;
    int rc = ts_sio_encode(c->kind, &p, &enc);
    json_decref(arr);
    if (rc < 0) return rc;
    rc = ts_client__send_encoded(c, &enc);
    ts_sio_encoded_clear(&enc);
    if (rc < 0) return rc;
    c->sacks[i] = c->sacks[--c->nsacks];
    return 0;
}

/* ---- receiving ---- */

static void fail_proto(ts_client_t *c, int rc, const char *what) {
    ts_client__fail(c, rc, "parse error", "%s", what);
}

static void dispatch_event(ts_client_t *c, ts_sio_packet_t *pkt) {
    json_t *data = pkt->data;
    if (!data || json_array_size(data) == 0) { /* an EVENT without payload delivers nothing */
        ts_sio_packet_clear(pkt);
        return;
    }
    json_t *name = json_incref(json_array_get(data, 0));
    json_array_remove(data, 0);
    char numname[64];
    const char *name_s = json_string_value(name);
    if (!name_s) {
        if (json_is_integer(name))
            snprintf(numname, sizeof numname, "%" JSON_INTEGER_FORMAT, json_integer_value(name));
        else
            snprintf(numname, sizeof numname, "%.17g", json_number_value(name));
        name_s = numname;
    }
    size_t n = json_array_size(data);
    int err = 0;
    if (pkt->id == TS_SIO_NO_ID && c->pid && n > 0 && json_is_string(json_array_get(data, n - 1)))
        err = set_str(&c->offset, json_string_value(json_array_get(data, n - 1)));
    if (!err && pkt->id != TS_SIO_NO_ID) {
        if (c->nsacks == c->sacks_cap) {
            size_t cap = c->sacks_cap ? c->sacks_cap * 2 : 8;
            int64_t *p = realloc(c->sacks, cap * sizeof *p);
            if (!p)
                err = TS_ENOMEM;
            else
                c->sacks = p, c->sacks_cap = cap;
        }
        if (!err) c->sacks[c->nsacks++] = pkt->id;
    }
    if (!err && c->sess && pkt->id == TS_SIO_NO_ID && !pkt->nattach) {
        /* /session events with a typed callback go there instead */
        int taken = ts_client__sess_dispatch(c, name_s, data);
        if (taken != 0) {
            json_decref(name);
            ts_sio_packet_clear(pkt);
            if (taken < 0)
                ts_client__fail(c, taken, "transport error", "out of memory delivering an event");
            return;
        }
    }
    char *args = err ? NULL : ts_client__json_text(data, pkt->nattach, pkt->attach);
    ts_client_bytes_t *bytes = NULL;
    if (args && pkt->nattach && !(bytes = malloc(pkt->nattach * sizeof *bytes))) {
        free(args);
        args = NULL;
    }
    if (!args) {
        json_decref(name);
        ts_sio_packet_clear(pkt);
        ts_client__fail(c, TS_ENOMEM, "transport error", "out of memory delivering an event");
        return;
    }
    for (size_t i = 0; i < pkt->nattach; i++)
        bytes[i] = (ts_client_bytes_t){pkt->attach[i]->data, pkt->attach[i]->len};
    ts_client_event_t ev = {name_s, args, pkt->nattach, bytes, pkt->id};
    if (c->opts.cb.on_event) c->opts.cb.on_event(c, &ev, c->opts.user);
    free(bytes);
    free(args);
    json_decref(name);
    ts_sio_packet_clear(pkt);
}

static void on_ack(ts_client_t *c, ts_sio_packet_t *pkt) {
    ts_client__ack_t *a = find_ack(c, pkt->id);
    if (!a || !a->sent) {
        ts_sio_packet_clear(pkt);
        return;
    }
    ts_list_remove(&a->link);
    json_t *data = pkt->data ? pkt->data : NULL;
    json_t *empty = data ? NULL : json_array();
    char *args = ts_client__json_text(data ? data : empty, pkt->nattach, pkt->attach);
    ts_client_bytes_t *bytes = NULL;
    if (args && pkt->nattach && !(bytes = malloc(pkt->nattach * sizeof *bytes))) {
        free(args);
        args = NULL;
    }
    if (args) {
        for (size_t i = 0; i < pkt->nattach; i++)
            bytes[i] = (ts_client_bytes_t){pkt->attach[i]->data, pkt->attach[i]->len};
        ts_client_event_t ev = {NULL, args, pkt->nattach, bytes, TS_SIO_NO_ID};
        a->cb(c, 0, &ev, a->ud);
    } else {
        a->cb(c, TS_ENOMEM, NULL, a->ud);
    }
    free(bytes);
    free(args);
    free(a);
    json_decref(empty);
    ts_sio_packet_clear(pkt);
    ts_client__rearm_ack_timer(c);
}

static void on_sio_connect(ts_client_t *c, ts_sio_packet_t *pkt) {
    if (c->state != TS_CLIENT_CONNECTING) {
        ts_sio_packet_clear(pkt);
        return;
    }
    const char *sid = json_string_value(json_object_get(pkt->data, "sid"));
    const char *pid = json_string_value(json_object_get(pkt->data, "pid"));
    if (!sid) {
        ts_sio_packet_clear(pkt);
        fail_proto(c, TS_EPROTO, "Socket.IO: CONNECT answer without a sid");
        return;
    }
    int recovered = c->pid && pid && strcmp(c->pid, pid) == 0;
    int rc = set_str(&c->sid, sid);
    if (rc == 0 && !recovered) rc = set_str(&c->pid, pid);
    if (rc == 0 && !recovered) rc = set_str(&c->offset, NULL);
    ts_sio_packet_clear(pkt);
    if (rc < 0) {
        ts_client__fail(c, rc, "transport error", "out of memory on CONNECT");
        return;
    }
    c->recovered = recovered;
    ts_client__connected(c);
    if (c->opts.cb.on_connect) c->opts.cb.on_connect(c, recovered, c->opts.user);
    if (c->state != TS_CLIENT_CONNECTED) return;
    ts_client__flush_queue(c);
    /* events that came before the answer: a recovered session's missed
     * ones. Taken out of the client first, so a callback that drops the
     * connection (clearing c->early) cannot pull them from under us. */
    ts_sio_packet_t *early = c->early;
    size_t n = c->nearly;
    c->early = NULL;
    c->nearly = c->early_cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (c->state == TS_CLIENT_CONNECTED)
            dispatch_event(c, &early[i]);
        else
            ts_sio_packet_clear(&early[i]);
    }
    free(early);
}

static void on_sio_connect_error(ts_client_t *c, ts_sio_packet_t *pkt) {
    const char *msg = "connection refused by the server";
    char *data_text = NULL;
    if (json_is_string(pkt->data)) {
        msg = json_string_value(pkt->data);
    } else if (json_is_object(pkt->data)) {
        const char *m = json_string_value(json_object_get(pkt->data, "message"));
        if (m) msg = m;
        json_t *d = json_object_get(pkt->data, "data");
        if (d) {
            json_t *wrap = json_pack("[O]", d);
            char *t = wrap ? ts_client__json_text(wrap, 0, NULL) : NULL;
            json_decref(wrap);
            if (t) { /* "[x]" -> "x" */
                size_t k = strlen(t);
                memmove(t, t + 1, k - 2);
                t[k - 2] = '\0';
                data_text = t;
            }
        }
    }
    ts_client__kill_transport(c);
    uv_timer_stop(&c->t_ping);
    uv_timer_stop(&c->t_connect);
    ts_client__clear_session_io(c);
    c->state = TS_CLIENT_DISCONNECTED;
    ts_client__fail_acks(c, 0, TS_ECLOSED);
    if (c->state == TS_CLIENT_DISCONNECTED && c->opts.cb.on_connect_error)
        c->opts.cb.on_connect_error(c, msg, data_text, c->opts.user);
    free(data_text);
    ts_sio_packet_clear(pkt);
}

static void on_sio_disconnect(ts_client_t *c, ts_sio_packet_t *pkt) {
    ts_sio_packet_clear(pkt);
    int was_connected = c->state == TS_CLIENT_CONNECTED;
    ts_client__kill_transport(c);
    uv_timer_stop(&c->t_ping);
    uv_timer_stop(&c->t_connect);
    ts_client__clear_session_io(c);
    /* the server ended the session on purpose: nothing to recover */
    set_str(&c->pid, NULL);
    set_str(&c->offset, NULL);
    c->state = TS_CLIENT_DISCONNECTED;
    ts_client__fail_acks(c, 0, TS_ECLOSED);
    if (c->state != TS_CLIENT_DISCONNECTED) return;
    if (was_connected && c->opts.cb.on_disconnect)
        c->opts.cb.on_disconnect(c, "io server disconnect", 0, c->opts.user);
    else if (!was_connected && c->opts.cb.on_error)
        c->opts.cb.on_error(c, TS_ECLOSED, "the server disconnected the namespace", c->opts.user);
}

static void on_sio_packet(ts_client_t *c, ts_sio_packet_t *pkt) {
    if (!pkt->nsp || strcmp(pkt->nsp, c->nsp) != 0) {
        ts_sio_packet_clear(pkt);
        return;
    }
    switch (pkt->type) {
    case TS_SIO_CONNECT:
        on_sio_connect(c, pkt);
        break;
    case TS_SIO_CONNECT_ERROR:
        on_sio_connect_error(c, pkt);
        break;
    case TS_SIO_DISCONNECT:
        on_sio_disconnect(c, pkt);
        break;
    case TS_SIO_EVENT:
        if (c->state == TS_CLIENT_CONNECTED) {
            dispatch_event(c, pkt);
            break;
        }
        if (c->nearly == c->early_cap) {
            size_t cap = c->early_cap ? c->early_cap * 2 : 16;
            ts_sio_packet_t *p = realloc(c->early, cap * sizeof *p);
            if (!p) {
                ts_sio_packet_clear(pkt);
                ts_client__fail(c, TS_ENOMEM, "transport error", "out of memory buffering events");
                return;
            }
            c->early = p;
            c->early_cap = cap;
        }
        c->early[c->nearly++] = *pkt; /* moved */
        break;
    case TS_SIO_ACK:
        on_ack(c, pkt);
        break;
    default:
        ts_sio_packet_clear(pkt);
    }
}

static void feed_sio(ts_client_t *c, const uint8_t *p, size_t len, int binary) {
    ts_client__transport_t *t = c->t;
    ts_sio_packet_t pkt;
    int rc = ts_sio_decoder_feed(&t->dec, p, len, binary, &pkt);
    if (rc == 0) return;
    if (rc < 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "Socket.IO: %s", t->dec.errmsg);
        fail_proto(c, rc, msg);
        return;
    }
    on_sio_packet(c, &pkt);
}

static void on_eio_open(ts_client_t *c, const ts_eio_packet_t *p) {
    ts_client__transport_t *t = c->t;
    if (t->phase != PH_WS) {
        fail_proto(c, TS_EPROTO, "Engine.IO: a second open packet");
        return;
    }
    json_error_t je;
    json_t *o = json_loadb((const char *)p->data.p, p->data.len, 0, &je);
    json_t *pi = json_object_get(o, "pingInterval"), *pt = json_object_get(o, "pingTimeout");
    json_t *mp = json_object_get(o, "maxPayload");
    if (!json_is_string(json_object_get(o, "sid")) || !json_is_integer(pi) ||
        !json_is_integer(pt) || json_integer_value(pi) <= 0 || json_integer_value(pt) <= 0 ||
        json_integer_value(pi) > 86400000 || json_integer_value(pt) > 86400000) {
        json_decref(o);
        fail_proto(c, TS_EPROTO,
                   "Engine.IO: open packet without sid, pingInterval and pingTimeout");
        return;
    }
    c->ping_interval = (unsigned)json_integer_value(pi);
    c->ping_timeout = (unsigned)json_integer_value(pt);
    c->max_payload = json_is_integer(mp) && json_integer_value(mp) > 0
                         ? (size_t)json_integer_value(mp)
                         : 0;
    json_decref(o);
    t->phase = PH_EIO;
    ts_client__arm_ping(c);
    int rc = ts_client__send_connect(c);
    if (rc < 0) ts_client__fail(c, rc, "transport error", "cannot send CONNECT: %s",
                                ts_strerror(rc));
}

void ts_client__on_ws_message(ts_client_t *c, const ts_ws_msg_t *m) {
    ts_client__transport_t *t = c->t;
    if (m->opcode == TS_WS_OP_BINARY) {
        if (t->phase < PH_EIO) {
            fail_proto(c, TS_EPROTO, "Engine.IO: binary message before the open packet");
            return;
        }
        feed_sio(c, m->data, m->len, 1);
        return;
    }
    ts_eio_packet_t p;
    if (ts_eio_packet_decode(m->data, m->len, &p) < 0) {
        char msg[120];
        snprintf(msg, sizeof msg, "Engine.IO: invalid packet \"%.*s\"",
                 (int)(m->len > 40 ? 40 : m->len), m->len ? (const char *)m->data : "");
        fail_proto(c, TS_EPROTO, msg);
        return;
    }
    switch (p.type) {
    case TS_EIO_OPEN:
        on_eio_open(c, &p);
        break;
    case TS_EIO_CLOSE:
        ts_client__fail(c, TS_ECLOSED, "transport close", "the server closed the Engine.IO session");
        break;
    case TS_EIO_PING: {
        char pong[64] = "3";
        size_t n = 1;
        if (p.data.len && p.data.len < sizeof pong - 1) {
            memcpy(pong + 1, p.data.p, p.data.len);
            n += p.data.len;
        }
        ts_client__arm_ping(c);
        int rc = ts_client__send_text(c, pong, n);
        if (rc < 0) ts_client__fail(c, rc, "transport error", "cannot answer a ping");
        break;
    }
    case TS_EIO_MESSAGE:
        if (t->phase < PH_EIO) {
            fail_proto(c, TS_EPROTO, "Engine.IO: message before the open packet");
            return;
        }
        feed_sio(c, p.data.p, p.data.len, 0);
        break;
    default: /* pong, upgrade, noop: nothing to do over a websocket-only session */
        break;
    }
}
