/* server.c - Socket.IO v5 on top of Engine.IO sessions: a "client" per
 * Engine.IO session multiplexes namespace sockets; namespaces own rooms,
 * broadcasts and, when connection state recovery is on, the log of
 * emitted packets and the sessions of recently disconnected sockets.
 * Behaviour mirrors the Node server (packages/socket.io/lib/client.ts,
 * namespace.ts, socket.ts and socket.io-adapter's in-memory adapter).
 *
 * Several loops (one server each, docs/ARCHITECTURE.md "Workers") form a
 * group: a namespace's half that must be one per process (the ordered log
 * of broadcasts, the saved sessions) lives in the group under a mutex. A
 * broadcast appends to that log; every loop delivers the log to its own
 * sockets in log order from its own cursor, so all tabs of a room see one
 * order whichever loop holds them, and a reconnect on any loop finds its
 * session. A single loop without recovery skips the log altogether. */
#include "sio/ts_sio.h"

#include "adapter/ts_adp_bus.h"
#include "adapter/ts_adp_remote.h"
#include "adapter/ts_adp_rooms.h"
#include "adapter/ts_adp_saved.h"
#include "sio/request_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_idmap.h"
#include "core/ts_json.h"
#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_map.h"
#include "core/ts_ratelimit.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "metrics/ts_met.h"

#define ID_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" /* ts_random_id's */
#define SWEEP_MS 1000
#define CONNECTS_BURST 16 /* namespace CONNECTs a connection may make at once */
#define CONNECTS_PER_S 4  /* and then per second */

/* One emitted packet on a namespace's bus (ts_adp_bus.h): kept until
 * every loop delivered it and, with recovery, while a reconnecting socket
 * may still need it. The header is refcounted (atomically): the bus holds
 * one reference and every loop delivering it holds one outside the lock. */
typedef struct log_entry {
    ts_adp_entry_t hdr; /* seq, at_ms, bytes (of enc), refs: first */
    uint8_t only;     /* emitted to one socket: rooms[0] is its id */
    uint8_t cls;      /* delivery class (enum ts_eio_class) */
    uint32_t key;     /* coalesce key, 0 = none */
    char **rooms, **except; /* owned copies; none = everyone */
    size_t nrooms, nexcept;
    ts_sio_encoded_t enc; /* the exact bytes sent, offset included */
} log_entry_t;
_Static_assert(offsetof(struct log_entry, hdr) == 0, "a bus entry is its log entry");

typedef struct pending_ack {
    ts_list_t link;
    int64_t id;
    ts_sio_ack_cb cb;
    void *ud;
    ts_sio_socket_t *s;
    uv_timer_t timer;
} pending_ack_t;

static const char *const recoverable_reasons[] = {"transport error", "transport close",
                                                  "forced close",    "ping timeout",
                                                  "server shutting down",
                                                  "forced server close"};

/* ---- small helpers ---- */

char **ts_sio__strv_copy(const char *const *v, size_t n) {
    if (!n) return NULL;
    char **out = ts_xmalloc(n * sizeof(char *));
    for (size_t i = 0; i < n; i++) out[i] = ts_xstrdup(v[i]);
    return out;
}

void ts_sio__strv_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* The class values are passed down unchanged (ts_eio.h, ts_net.h). */
_Static_assert(TS_SIO_CLASS_SECURITY == (int)TS_EIO_CLASS_SECURITY &&
                   TS_SIO_CLASS_CONTROL == (int)TS_EIO_CLASS_CONTROL &&
                   TS_SIO_CLASS_STATE == (int)TS_EIO_CLASS_STATE &&
                   TS_SIO_CLASS_EVENT == (int)TS_EIO_CLASS_EVENT &&
                   TS_SIO_CLASS_PRESENCE == (int)TS_EIO_CLASS_PRESENCE &&
                   TS_SIO_CLASS_TELEMETRY == (int)TS_EIO_CLASS_TELEMETRY,
               "Socket.IO and Engine.IO delivery classes differ");

/* Engine.IO's class for `cls` (DEFAULT and unknown values: EVENT). */
static uint8_t eio_class(ts_sio_class_t cls) {
    return cls >= TS_SIO_CLASS_SECURITY && cls <= TS_SIO_CLASS_TELEMETRY ? (uint8_t)cls
                                                                          : TS_EIO_CLASS_EVENT;
}

/* One packet to one socket in Engine.IO class `cls` with coalesce key
 * `key`. A packet with attachments is several messages that must arrive
 * together and in order: they go as one group (TS_EIO_MORE), never
 * coalesced. */
static void send_encoded(ts_sio_socket_t *s, const ts_sio_encoded_t *enc, unsigned cls,
                         uint32_t key) {
    ts_eio_sock_t *e = ts_sio__client_eio(s->c);
    if (enc->n == 1) {
        ts_eio_send_class(e, enc->msgs[0].buf, enc->msgs[0].binary, cls, key);
    } else {
        for (size_t i = 0; i < enc->n; i++)
            ts_eio_send_class(e, enc->msgs[i].buf, enc->msgs[i].binary,
                              i + 1 < enc->n ? cls | TS_EIO_MORE : cls, 0);
    }
    TS_MET_INC(SIO_PACKETS_OUT);
}

/* Encodes a packet whose data is built by the caller. */
static int encode(ts_sio_server_t *srv, uint8_t type, const char *nsp, int64_t id, json_t *data,
                  const ts_sio_args_t *args, ts_sio_encoded_t *out) {
    ts_sio_packet_t pkt = {.type = type,
                           .nsp = (char *)(uintptr_t)nsp,
                           .id = id,
                           .data = data,
                           .nattach = args ? args->nattach : 0,
                           .attach = args ? args->attach : NULL};
    int rc = ts_sio_encode(srv->opts.parser, &pkt, out);
    if (rc != 0) ts_warn("sio", "cannot encode a packet for %s: %s", nsp, ts_strerror(rc));
    return rc;
}

/* [event, ...args, offset?] */
static json_t *event_array(const char *event, const ts_sio_args_t *args, const char *offset) {
    json_t *arr = json_array();
    json_array_append_new(arr, json_string(event));
    if (args && args->args) json_array_extend(arr, args->args);
    if (offset) json_array_append_new(arr, json_string(offset));
    return arr;
}

/* Arguments given as canonical JSON texts (ts_sio_broadcast_raw). */
typedef struct raw_args {
    const ts_sio_raw_arg_t *v;
    size_t n;
} raw_args_t;

/* The EVENT [event, ...args, offset?] of a broadcast or emit. Raw
 * arguments are copied as they are when the parser is JSON: no tree, no
 * second serialization. */
static int encode_event(ts_sio_server_t *srv, const char *nsp, const char *event,
                        const ts_sio_args_t *args, const raw_args_t *raw, const char *offset,
                        ts_sio_encoded_t *out) {
    if (raw && srv->opts.parser == TS_SIO_PARSER_JSON) {
        int rc = ts_sio_encode_raw(nsp, TS_SIO_NO_ID, event, raw->v, raw->n, offset, out);
        if (rc != 0) ts_warn("sio", "cannot encode a packet for %s: %s", nsp, ts_strerror(rc));
        return rc;
    }
    json_t *data = event_array(event, args, offset);
    for (size_t i = 0; raw && i < raw->n; i++) {
        json_error_t err;
        json_t *v = ts_json_loadb(raw->v[i].text.p, raw->v[i].text.len,
                                  JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!v) {
            ts_warn("sio", "cannot encode a packet for %s: argument %zu is not JSON", nsp, i);
            json_decref(data);
            return TS_EINVAL;
        }
        json_array_insert_new(data, json_array_size(data) - (offset ? 1 : 0), v);
    }
    int rc = encode(srv, TS_SIO_EVENT, nsp, TS_SIO_NO_ID, data, args, out);
    json_decref(data);
    return rc;
}

static void send_packet(ts_sio_socket_t *s, uint8_t type, json_t *data, int64_t id,
                        const ts_sio_args_t *args) {
    ts_sio_encoded_t enc = {0};
    if (encode(ts_sio__client_srv(s->c), type, s->nsp->name, id, data, args, &enc) == 0)
        send_encoded(s, &enc, TS_EIO_CLASS_EVENT, 0);
    ts_sio_encoded_clear(&enc);
}

/* ---- rooms (the adapter's index) ---- */

ts_sio_socket_t *ts_sio__sock_of(ts_adp_sock_t *a) {
    return TS_CONTAINER_OF(a, ts_sio_socket_t, adp);
}

static void room_changed(ts_sio_nsp_t *nsp, const char *room, int present);

void ts_sio_join(ts_sio_socket_t *s, const char *room) {
    if (ts_adp_join(&s->nsp->rooms, &s->adp, room) && ts_adp_room_size(&s->nsp->rooms, room) == 1)
        room_changed(s->nsp, room, 1);
}

void ts_sio_leave(ts_sio_socket_t *s, const char *room) {
    if (ts_adp_leave(&s->nsp->rooms, &s->adp, room) && ts_adp_room_size(&s->nsp->rooms, room) == 0)
        room_changed(s->nsp, room, 0);
}

size_t ts_sio_socket_rooms(const ts_sio_socket_t *s, const char **out, size_t max) {
    return ts_adp_sock_rooms(&s->adp, out, max);
}

size_t ts_sio_room_size(const ts_sio_nsp_t *nsp, const char *room) {
    return ts_adp_room_size(&nsp->rooms, room);
}

/* The socket whose own room is `name`, if it is in this namespace. */
ts_sio_socket_t *ts_sio__by_id(ts_sio_nsp_t *nsp, const char *name) {
    ts_adp_sock_t *a = ts_adp_find(&nsp->rooms, name);
    return a ? ts_sio__sock_of(a) : NULL;
}

/* ---- the shared log ---- */

static void log_entry_destroy(ts_adp_entry_t *h) {
    log_entry_t *e = (log_entry_t *)h;
    ts_sio__strv_free(e->rooms, e->nrooms);
    ts_sio__strv_free(e->except, e->nexcept);
    ts_sio_encoded_clear(&e->enc);
    free(e);
}

/* The server's own, in-memory recovery (a namespace with a `restore`
 * hook recovers from its own log instead). */
static int recovery_on(const ts_sio_nsp_t *nsp) {
    return nsp->srv->opts.recovery_ms > 0 && !nsp->h.restore;
}

static void format_offset(const ts_sio_group_t *g, uint64_t seq, char *out, size_t n) {
    snprintf(out, n, "%s.%" PRIu64, g->offset_prefix, seq);
}

/* Returns 1 and the sequence number for one of our offsets. */
static int parse_offset(const ts_sio_group_t *g, const char *off, uint64_t *seq) {
    size_t pl = strlen(g->offset_prefix);
    if (strncmp(off, g->offset_prefix, pl) != 0 || off[pl] != '.') return 0;
    const char *p = off + pl + 1;
    if (!*p || strlen(p) > 19) return 0;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *seq = v;
    return 1;
}

static int entry_matches(const log_entry_t *e, char *const *rooms, size_t nrooms) {
    return ts_adp_rooms_match((const char *const *)e->rooms, e->nrooms,
                              (const char *const *)e->except, e->nexcept,
                              (const char *const *)rooms, nrooms);
}

/* ---- emitting ---- */

typedef struct {
    const ts_sio_encoded_t *enc;
    unsigned cls;
    uint32_t key;
} send_ctx_t;

static void send_visit(ts_adp_sock_t *a, void *ud) {
    const send_ctx_t *x = ud;
    send_encoded(ts_sio__sock_of(a), x->enc, x->cls, x->key);
}

/* Sends `enc` to this loop's recipients of a broadcast: sockets in any of
 * `rooms` (none = everyone), minus those in an `except` room, minus `skip`;
 * in Engine.IO class `cls` with coalesce key `key`. */
static void deliver_local(ts_sio_nsp_t *nsp, char *const *rooms, size_t nrooms,
                          char *const *except, size_t nexcept, const ts_sio_socket_t *skip,
                          const ts_sio_encoded_t *enc, unsigned cls, uint32_t key) {
    send_ctx_t x = {enc, cls, key};
    ts_adp_each(&nsp->rooms, (const char *const *)rooms, nrooms, (const char *const *)except,
                nexcept, skip ? &skip->adp : NULL, send_visit, &x);
}

/* One log entry to this loop's sockets. */
static void deliver_entry(ts_sio_nsp_t *nsp, const log_entry_t *e, const ts_sio_socket_t *skip) {
    if (!e->enc.n) return; /* could not be encoded: keeps the sequence dense */
    if (e->only) {
        ts_sio_socket_t *s = ts_sio__by_id(nsp, e->rooms[0]);
        if (s) send_encoded(s, &e->enc, e->cls, e->key);
        return;
    }
    deliver_local(nsp, e->rooms, e->nrooms, e->except, e->nexcept, skip, &e->enc, e->cls,
                  e->key);
}

static void deliver_taken(ts_sio_nsp_t *nsp, ts_adp_entry_t **v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        deliver_entry(nsp, (const log_entry_t *)v[i], NULL);
        ts_adp_entry_unref(v[i]);
    }
    free(v);
}

/* Tells the group's other loops that a log has news. */
static void wake_others(ts_sio_server_t *srv) {
    ts_sio_group_t *g = srv->group;
    if (g->nloops == 1) return;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->nloops; i++)
        if (i != srv->idx && g->srvs[i]) uv_async_send(&g->srvs[i]->bus);
    pthread_mutex_unlock(&g->mu);
}

/* Delivers what other loops appended to this loop's namespaces. */
static void catch_up(ts_sio_nsp_t *nsp) {
    ts_adp_entry_t **v;
    pthread_mutex_lock(&nsp->sh->mu);
    size_t n = ts_adp_bus_take(&nsp->sh->bus, nsp->srv->idx, &v);
    ts_adp_bus_prune(&nsp->sh->bus, ts_now_ms());
    pthread_mutex_unlock(&nsp->sh->mu);
    if (n) deliver_taken(nsp, v, n);
}

static void on_bus(uv_async_t *h) {
    ts_sio_server_t *srv = h->data;
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&srv->nsps, &it, &e);) catch_up(e->val);
    ts_sio__run_jobs(srv); /* other nodes' requests, after the broadcasts that came before */
}

/* Delivers an EVENT to the recipients of `to` (NULL target = the single
 * socket `only`, in class `cls`; a target names its own class and key).
 * Through the shared log when other loops may hold recipients or recovery
 * is on (the event then carries its offset), so that every loop delivers
 * in one order and a socket that comes back gets what it missed. */
typedef enum {
    FROM_HERE = 0,
    FROM_REMOTE = 1, /* another node's, heard by the listener loop for every loop */
    FROM_ROOM = 2,   /* another node's, heard on a room's channel by this loop for itself */
} origin_t;

static void publish_remote(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                           const ts_sio_args_t *args, const raw_args_t *raw);

static void deliver_from(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, ts_sio_socket_t *only,
                         const char *event, const ts_sio_args_t *args, const raw_args_t *raw,
                         ts_sio_class_t cls, const char *at, origin_t origin) {
    ts_sio_server_t *srv = nsp->srv;
    /* the other nodes first: theirs is the longer way */
    if (!only && srv->remote && origin == FROM_HERE && to->reach != TS_SIO_REACH_HERE)
        publish_remote(nsp, to, event, args, raw);
    if (!only && to->reach == TS_SIO_REACH_OTHERS) return;
    ts_sio_group_t *g = srv->group;
    int rec = recovery_on(nsp);
    uint8_t ecls = eio_class(only ? cls : to->cls);
    uint32_t key = only ? 0 : to->coalesce;
    if (!only) TS_MET_INC(SIO_BROADCASTS);
    /* the namespace's own offset (durable recovery), when the server's is off */
    const char *nsp_off = !rec ? (only ? at : to->offset) : NULL;
    /* nobody else needs to see it (a room channel's message: every loop with
     * members hears it itself; not in the recovery log) */
    if ((!rec && (only || g->nloops == 1)) || origin == FROM_ROOM) {
        ts_sio_encoded_t enc = {0};
        int rc = encode_event(srv, nsp->name, event, args, raw, nsp_off, &enc);
        if (rc == 0) {
            if (only)
                send_encoded(only, &enc, ecls, key);
            else
                deliver_local(nsp, (char *const *)to->rooms, to->nrooms,
                              (char *const *)to->except, to->nexcept, to->skip, &enc, ecls, key);
        }
        ts_sio_encoded_clear(&enc);
        return;
    }
    log_entry_t *le = ts_xcalloc(1, sizeof(*le));
    ts_adp_entry_init(&le->hdr, ts_now_ms(), log_entry_destroy); /* ours */
    le->cls = ecls;
    le->key = key;
    if (only) {
        const char *own = only->adp.id;
        le->only = 1;
        le->rooms = ts_sio__strv_copy(&own, 1);
        le->nrooms = 1;
    } else {
        le->rooms = ts_sio__strv_copy(to->rooms, to->nrooms);
        le->nrooms = to->nrooms;
        le->except = ts_sio__strv_copy(to->except, to->nexcept);
        le->nexcept = to->nexcept;
        if (to->skip && rec) {
            /* socket.broadcast is "except the sender's own room": replayed
             * to everyone but the sender (other loops cannot hold it) */
            le->except = ts_xrealloc(le->except, (le->nexcept + 1) * sizeof(char *));
            le->except[le->nexcept++] = ts_xstrdup(to->skip->adp.id);
        }
    }
    nsp_shared_t *sh = nsp->sh;
    int rc = 0;
    if (!rec) /* no offset of the log's in the bytes: encode outside the lock */
        rc = encode_event(srv, nsp->name, event, args, raw, nsp_off, &le->enc);
    ts_adp_entry_t **v;
    pthread_mutex_lock(&sh->mu);
    size_t n = ts_adp_bus_take(&sh->bus, srv->idx, &v); /* what came before ours, in order */
    if (rec) {
        char offset[40];
        format_offset(g, sh->bus.next_seq, offset, sizeof offset); /* the seq it gets */
        rc = encode_event(srv, nsp->name, event, args, raw, offset, &le->enc);
    }
    if (rc != 0) ts_sio_encoded_clear(&le->enc); /* delivered as nothing */
    for (size_t i = 0; i < le->enc.n; i++) le->hdr.bytes += le->enc.msgs[i].buf->len;
    ts_adp_bus_prune(&sh->bus, le->hdr.at_ms);
    ts_adp_bus_append(&sh->bus, srv->idx, &le->hdr);
    pthread_mutex_unlock(&sh->mu);
    wake_others(srv);
    if (n) deliver_taken(nsp, v, n);
    deliver_entry(nsp, le, only ? NULL : to->skip);
    ts_adp_entry_unref(&le->hdr);
}

static void deliver(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, ts_sio_socket_t *only,
                    const char *event, const ts_sio_args_t *args, const raw_args_t *raw,
                    ts_sio_class_t cls, const char *at) {
    deliver_from(nsp, to, only, event, args, raw, cls, at, FROM_HERE);
}

/* ---- the other nodes (ts_adp_remote.h) ---- */

/* A broadcast of ours, as the other nodes get it: the packet's data as
 * JSON text with the namespace's own offset (durable recovery), and the
 * sender skipped by its id (socket.broadcast). Raw arguments are copied as
 * they are. */
static void publish_remote(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                           const ts_sio_args_t *args, const raw_args_t *raw) {
    const char *off = recovery_on(nsp) ? NULL : to->offset;
    ts_sbuf_t text = TS_SBUF_INIT;
    int canonical = 0;
    if (raw) {
        /* canonical texts (ts_sio_raw_arg_t), a name without escapes and an
         * offset of ours: the encoder need not check the whole again */
        canonical = 1;
        for (const unsigned char *c = (const unsigned char *)event; *c; c++)
            if (*c < 0x20 || *c == '"' || *c == '\\') canonical = 0;
        ts_sbuf_putc(&text, '[');
        ts_json_string(&text, event, strlen(event));
        for (size_t i = 0; i < raw->n; i++) {
            ts_sbuf_putc(&text, ',');
            ts_sbuf_append(&text, raw->v[i].text.p, raw->v[i].text.len);
        }
        if (off) { /* an offset needs no escaping */
            ts_sbuf_append_str(&text, ",\"");
            ts_sbuf_append_str(&text, off);
            ts_sbuf_putc(&text, '"');
        }
        ts_sbuf_putc(&text, ']');
    } else {
        json_t *data = event_array(event, args, off);
        char *q = json_dumps(data, JSON_COMPACT);
        if (q) ts_sbuf_append(&text, q, strlen(q));
        free(q);
        json_decref(data);
    }
    const char **except = ts_xmalloc((to->nexcept + 1) * sizeof *except);
    size_t nexcept = 0;
    for (size_t i = 0; i < to->nexcept; i++) except[nexcept++] = to->except[i];
    if (to->skip) except[nexcept++] = to->skip->adp.id;
    ts_adp_bcast_t b = {.nsp = nsp->name,
                        .data_json = ts_slice(ts_sbuf_data(&text), ts_sbuf_len(&text)),
                        .data_canonical = canonical,
                        .attach = args ? args->attach : NULL,
                        .nattach = args ? args->nattach : 0,
                        .rooms = to->rooms,
                        .nrooms = to->nrooms,
                        .except = except,
                        .nexcept = nexcept};
    ts_adp_remote_t *r = nsp->srv->remote;
    if (r->ops->broadcast(r->self, &b) != 0)
        TS_MET_INC(SIO_REMOTE_SEND_FAILED);
    else
        TS_MET_INC(SIO_REMOTE_SENT);
    free(except);
    ts_sbuf_free(&text);
}

/* Another node's broadcast: delivered here like one of ours (through the
 * bus when other loops may hold recipients; only here when this loop heard
 * it on a room's own channel), never sent on again. */
/* ["event", arg...] as canonical text: the event's name (a string without
 * escapes, copied into `name`) and each argument's text. 0 when the text
 * has another shape (the caller builds a tree instead). */
/* The event's name: the string without escapes at p (NUL-terminated into
 * name[cap]); its length in the text, or 0. */
static size_t take_name(const uint8_t *p, size_t n, char *name, size_t cap) {
    int plain;
    size_t k = ts_json_canonical_string_len(p, n, &plain);
    if (!k || !plain || k - 2 >= cap) return 0;
    memcpy(name, p + 1, k - 2);
    name[k - 2] = '\0';
    return k;
}

static int split_event(ts_slice_t text, char *name, size_t cap, ts_sio_raw_arg_t *args,
                       size_t *nargs) {
    const uint8_t *p = text.p, *end = text.p + text.len;
    if (text.len < 4 || p[0] != '[' || end[-1] != ']') return 0;
    p++;
    size_t k = take_name(p, (size_t)(end - p), name, cap);
    if (!k) return 0;
    p += k;
    *nargs = 0;
    while (p < end - 1) {
        if (*p++ != ',' || *nargs == TS_SIO_RAW_MAX_ARGS) return 0;
        k = ts_json_skip(p, (size_t)(end - 1 - p)); /* canonical already: not checked again */
        if (!k) return 0;
        args[(*nargs)++] = (ts_sio_raw_arg_t){.text = ts_slice(p, k)};
        p += k;
    }
    return p == end - 1;
}

/* The same from the elements' places, when the adapter knows them. */
static int split_items(const ts_adp_bcast_t *b, char *name, size_t cap, ts_sio_raw_arg_t *args,
                       size_t *nargs) {
    ts_slice_t n = b->items[0];
    if (b->nitems - 1 > TS_SIO_RAW_MAX_ARGS || !n.len || take_name(n.p, n.len, name, cap) != n.len)
        return 0;
    *nargs = b->nitems - 1;
    for (size_t i = 1; i < b->nitems; i++) args[i - 1] = (ts_sio_raw_arg_t){.text = b->items[i]};
    return 1;
}

static void on_remote(const ts_adp_bcast_t *b, void *ud) {
    ts_sio_nsp_t *nsp = ud;
    ts_sio_target_t to = {.rooms = b->rooms, .nrooms = b->nrooms, .except = b->except,
                          .nexcept = b->nexcept};
    origin_t origin = b->this_loop ? FROM_ROOM : FROM_REMOTE;
    if (b->data_json.len) {
        /* a plain broadcast, as canonical text: relayed as it is, as a
         * tab's own events are (no tree, no second serialization) */
        char name[256];
        ts_sio_raw_arg_t args[TS_SIO_RAW_MAX_ARGS];
        raw_args_t raw = {args, 0};
        if (b->nitems ? split_items(b, name, sizeof name, args, &raw.n)
                      : split_event(b->data_json, name, sizeof name, args, &raw.n)) {
            TS_MET_INC(SIO_REMOTE_RECEIVED);
            /* the namespace may put it in its turn (ts_sio_nsp_handler_t) */
            if (nsp->h.on_remote_raw && nsp->srv->group->nloops == 1 &&
                nsp->h.on_remote_raw(nsp, &to, name, args, raw.n, nsp->ud))
                return;
            deliver_from(nsp, &to, NULL, name, NULL, &raw, TS_SIO_CLASS_DEFAULT, NULL, origin);
            return;
        }
        json_error_t je;
        json_t *data = ts_json_loadb(b->data_json.p, b->data_json.len, 0, &je);
        ts_adp_bcast_t tree = *b;
        tree.data = data;
        tree.data_json = ts_slice(NULL, 0);
        if (data) on_remote(&tree, ud);
        else TS_MET_INC(SIO_REMOTE_BAD);
        json_decref(data);
        return;
    }
    const char *event = json_string_value(json_array_get(b->data, 0));
    if (!event) {
        TS_MET_INC(SIO_REMOTE_BAD);
        return;
    }
    json_t *rest = json_array();
    for (size_t i = 1; i < json_array_size(b->data); i++)
        json_array_append(rest, json_array_get(b->data, i));
    ts_sio_args_t args = {rest, (ts_buf_t **)b->attach, b->nattach};
    TS_MET_INC(SIO_REMOTE_RECEIVED);
    deliver_from(nsp, &to, NULL, event, &args, NULL, TS_SIO_CLASS_DEFAULT, NULL, origin);
    json_decref(rest);
}

/* A room of this loop got its first member or lost its last: an adapter
 * that hears rooms on their own channels follows (ts_adp_remote.h). */
static void room_changed(ts_sio_nsp_t *nsp, const char *room, int present) {
    ts_adp_remote_t *r = nsp->srv->remote;
    if (!r || !r->ops->room) return;
    ts_adp_listener_t l = {.on_bcast = on_remote, .ud = nsp};
    r->ops->room(r->self, nsp->name, room, present, &l);
}

#define REMOTE_WANTS_ROOMS 8 /* the adapter reads as many (ROOMS_PEEK) */

/* Another node's broadcast to `rooms`, before it is decoded (the adapter
 * read its rooms first): 0 when it can reach nobody here. Kept whenever
 * another loop or the in-memory recovery (a disconnected socket's) may
 * need it. Room names too long for the buffer are not judged. */
static int remote_wants(const ts_slice_t *rooms, size_t n, void *ud) {
    ts_sio_nsp_t *nsp = ud;
    if (nsp->srv->group->nloops != 1 || recovery_on(nsp) || n > REMOTE_WANTS_ROOMS) return 1;
    char buf[REMOTE_WANTS_ROOMS][256];
    const char *names[REMOTE_WANTS_ROOMS];
    for (size_t i = 0; i < n; i++) {
        if (rooms[i].len >= sizeof buf[i]) return 1;
        memcpy(buf[i], rooms[i].p, rooms[i].len);
        buf[i][rooms[i].len] = '\0';
        names[i] = buf[i];
    }
    for (size_t i = 0; i < n; i++)
        if (ts_adp_room_size(&nsp->rooms, names[i])) return 1;
    return nsp->h.wants_remote && nsp->h.wants_remote(nsp, names, n, nsp->ud);
}

static void remote_listen(ts_sio_nsp_t *nsp) {
    ts_adp_remote_t *r = nsp->srv->remote;
    ts_adp_listener_t l = {.on_bcast = on_remote, .on_request = ts_sio__on_request,
                           .wants = remote_wants, .ud = nsp};
    int rc = r->ops->listen(r->self, nsp->name, &l);
    if (rc) ts_warn("sio", "%s: cannot hear the other nodes: %s", nsp->name, ts_strerror(rc));
}

void ts_sio_server_set_remote(ts_sio_server_t *srv, ts_adp_remote_t *remote, int listener) {
    srv->remote = remote;
    srv->remote_listener = remote && listener;
    if (!srv->remote_listener) return;
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&srv->nsps, &it, &e);) remote_listen(e->val);
}

void ts_sio_emit(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *args) {
    deliver(s->nsp, NULL, s, event, args, NULL, TS_SIO_CLASS_DEFAULT, NULL);
}

void ts_sio_emit_class(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *args,
                       ts_sio_class_t cls) {
    deliver(s->nsp, NULL, s, event, args, NULL, cls, NULL);
}

void ts_sio_broadcast(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                      const ts_sio_args_t *args) {
    deliver(nsp, to, NULL, event, args, NULL, TS_SIO_CLASS_DEFAULT, NULL);
}

void ts_sio_broadcast_raw(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                          const ts_sio_raw_arg_t *args, size_t nargs) {
    raw_args_t raw = {args, nargs};
    deliver(nsp, to, NULL, event, NULL, &raw, TS_SIO_CLASS_DEFAULT, NULL);
}

void ts_sio_emit_raw(ts_sio_socket_t *s, const char *event, const ts_sio_raw_arg_t *args,
                     size_t nargs) {
    raw_args_t raw = {args, nargs};
    deliver(s->nsp, NULL, s, event, NULL, &raw, TS_SIO_CLASS_DEFAULT, NULL);
}

void ts_sio_emit_raw_at(ts_sio_socket_t *s, const char *event, const ts_sio_raw_arg_t *args,
                        size_t nargs, const char *offset) {
    raw_args_t raw = {args, nargs};
    deliver(s->nsp, NULL, s, event, NULL, &raw, TS_SIO_CLASS_DEFAULT, offset);
}

void ts_sio_ack_raw(ts_sio_socket_t *s, int64_t ack_id, const ts_sio_raw_arg_t *args,
                    size_t nargs) {
    ts_sio_server_t *srv = ts_sio__client_srv(s->c);
    if (srv->opts.parser == TS_SIO_PARSER_JSON) {
        ts_sio_encoded_t enc = {0};
        int rc = ts_sio_encode_raw(s->nsp->name, ack_id, NULL, args, nargs, NULL, &enc);
        if (rc == 0)
            send_encoded(s, &enc, TS_EIO_CLASS_EVENT, 0);
        else
            ts_warn("sio", "cannot encode an ack for %s: %s", s->nsp->name, ts_strerror(rc));
        ts_sio_encoded_clear(&enc);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < nargs; i++) {
        json_error_t err;
        json_t *v = ts_json_loadb(args[i].text.p, args[i].text.len,
                                  JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!v) {
            ts_warn("sio", "cannot encode an ack for %s: argument %zu is not JSON", s->nsp->name, i);
            json_decref(data);
            return;
        }
        json_array_append_new(data, v);
    }
    send_packet(s, TS_SIO_ACK, data, ack_id, NULL);
    json_decref(data);
}

static void ack_timer_closed(uv_handle_t *h) { free(h->data); }

static void ack_finish(pending_ack_t *a) {
    ts_list_remove(&a->link);
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, ack_timer_closed);
}

static void on_ack_timeout(uv_timer_t *t) {
    pending_ack_t *a = t->data;
    ts_sio_socket_t *s = a->s;
    ack_finish(a);
    a->cb(s, NULL, 1, a->ud);
}

void ts_sio_emit_ack(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *args,
                     uint32_t timeout_ms, ts_sio_ack_cb cb, void *ud) {
    if (!s->acks) {
        s->acks = ts_xcalloc(1, sizeof *s->acks);
        ts_list_init(&s->acks->list);
    }
    pending_ack_t *a = ts_xcalloc(1, sizeof(*a));
    a->id = s->acks->next++;
    a->cb = cb;
    a->ud = ud;
    a->s = s;
    uv_timer_init(ts_sio__client_srv(s->c)->loop, &a->timer);
    a->timer.data = a;
    ts_list_insert_tail(&s->acks->list, &a->link);
    if (timeout_ms) uv_timer_start(&a->timer, on_ack_timeout, timeout_ms, 0);
    json_t *data = event_array(event, args, NULL);
    send_packet(s, TS_SIO_EVENT, data, a->id, args);
    json_decref(data);
}

void ts_sio_ack(ts_sio_socket_t *s, int64_t ack_id, const ts_sio_args_t *args) {
    json_t *data = args && args->args ? json_incref(args->args) : json_array();
    send_packet(s, TS_SIO_ACK, data, ack_id, args);
    json_decref(data);
}

/* ---- socket lifecycle ---- */

static void client_close(client_t *c, const char *reason);

/* Removes the socket from everything and frees it; tells the handler. */
static void socket_remove(ts_sio_socket_t *s, const char *reason) {
    ts_sio_nsp_t *nsp = s->nsp;
    client_t *c = s->c;
    if (recovery_on(nsp)) {
        int recoverable = 0;
        for (size_t i = 0; i < TS_ARRAY_LEN(recoverable_reasons); i++)
            if (strcmp(reason, recoverable_reasons[i]) == 0) recoverable = 1;
        if (recoverable) {
            size_t n = (size_t)s->adp.nrooms + 1; /* its own room first */
            const char **names = ts_xmalloc(n * sizeof(char *));
            ts_adp_sock_rooms(&s->adp, names, n);
            ts_adp_saved_t *sv =
                ts_adp_saved_new(s->adp.id, s->pid, names, n, s->owner, ts_now_ms());
            free(names);
            pthread_mutex_lock(&nsp->sh->mu);
            ts_adp_saved_put(&nsp->sh->saved, sv, ts_eio_sock_peer(ts_sio__client_eio(c)));
            pthread_mutex_unlock(&nsp->sh->mu);
        }
    }
    if (nsp->h.on_disconnect) nsp->h.on_disconnect(s, reason, nsp->ud);
    while (s->acks && !ts_list_empty(&s->acks->list)) {
        pending_ack_t *a = ts_list_entry(s->acks->list.next, pending_ack_t, link);
        ack_finish(a);
        a->cb(s, NULL, -1, a->ud);
    }
    /* the rooms it was the last member of on this loop (their names go with them) */
    char **left = NULL;
    size_t nleft = 0;
    if (nsp->srv->remote && nsp->srv->remote->ops->room && s->adp.nrooms) {
        size_t n = (size_t)s->adp.nrooms + 1;
        const char **names = ts_xmalloc(n * sizeof(char *));
        ts_adp_sock_rooms(&s->adp, names, n);
        for (size_t i = 1; i < n; i++) /* its own room first: not a room of its own channel */
            if (ts_adp_room_size(&nsp->rooms, names[i]) == 1) names[1 + nleft++] = names[i];
        left = ts_sio__strv_copy(names + 1, nleft);
        free(names);
    }
    ts_adp_del(&nsp->rooms, &s->adp);
    for (size_t i = 0; i < nleft; i++) room_changed(nsp, left[i], 0);
    ts_sio__strv_free(left, nleft);
    for (ts_sio_socket_t **p = &c->socks; *p; p = &(*p)->next_in_client) {
        if (*p == s) {
            *p = s->next_in_client;
            break;
        }
    }
    json_decref(s->auth);
    free(s->acks);
    free(s);
    TS_MET_GAUGE_ADD(SIO_SOCKETS, -1);
}

void ts_sio_disconnect(ts_sio_socket_t *s, int close_conn) {
    client_t *c = s->c;
    if (close_conn) {
        /* Node: every socket of the connection gets a DISCONNECT, then the
         * connection closes. */
        while (c->socks) {
            ts_sio_socket_t *x = c->socks;
            send_packet(x, TS_SIO_DISCONNECT, NULL, TS_SIO_NO_ID, NULL);
            socket_remove(x, "server namespace disconnect");
        }
        client_close(c, "forced server close");
        return;
    }
    send_packet(s, TS_SIO_DISCONNECT, NULL, TS_SIO_NO_ID, NULL);
    socket_remove(s, "server namespace disconnect");
}

static nsp_shared_t *shared_attach(ts_sio_server_t *srv, const char *name);

static ts_sio_nsp_t *nsp_create(ts_sio_server_t *srv, const char *name,
                                const ts_sio_nsp_handler_t *h, void *ud) {
    ts_sio_nsp_t *nsp = ts_xcalloc(1, sizeof(*nsp));
    ts_adp_rooms_init(&nsp->rooms);
    nsp->srv = srv;
    nsp->sh = shared_attach(srv, name);
    nsp->name = ts_xstrdup(name);
    nsp->h = *h;
    nsp->ud = ud;
    ts_map_put(&srv->nsps, nsp->name, strlen(nsp->name), nsp);
    if (srv->remote_listener) remote_listen(nsp);
    return nsp;
}

static ts_sio_nsp_t *nsp_find(ts_sio_server_t *srv, const char *name) {
    ts_sio_nsp_t *nsp = ts_map_get(&srv->nsps, name, strlen(name));
    if (nsp) return nsp;
    for (size_t i = 0; i < srv->npatterns; i++)
        if (srv->patterns[i].match(name, srv->patterns[i].ud))
            return nsp_create(srv, name, &srv->patterns[i].h, srv->patterns[i].ud);
    return NULL;
}

static void send_connect_error(client_t *c, const char *nsp, const char *message, json_t *data) {
    json_t *obj = json_object();
    json_object_set_new(obj, "message", json_string(message));
    if (data) json_object_set(obj, "data", data);
    ts_sio_encoded_t enc = {0};
    if (encode(ts_sio__client_srv(c), TS_SIO_CONNECT_ERROR, nsp, TS_SIO_NO_ID, obj, NULL,
               &enc) == 0) {
        for (size_t i = 0; i < enc.n; i++)
            ts_eio_send(ts_sio__client_eio(c), enc.msgs[i].buf, enc.msgs[i].binary);
        TS_MET_INC(SIO_PACKETS_OUT);
    }
    ts_sio_encoded_clear(&enc);
    json_decref(obj);
}

/* Looks for a session to restore: returns it (removed from the shared
 * sessions) and, in *missed, references to the logged packets it missed
 * that this loop already delivered to others (later ones reach it through
 * this loop's cursor, after the CONNECT reply, like any live packet). */
static ts_adp_saved_t *find_restorable(ts_sio_nsp_t *nsp, json_t *auth,
                                       ts_adp_entry_t ***missed, size_t *nmissed) {
    const char *pid = json_string_value(json_object_get(auth, "pid"));
    const char *off = json_string_value(json_object_get(auth, "offset"));
    uint64_t seq;
    *missed = NULL;
    *nmissed = 0;
    if (!pid || !off || !parse_offset(nsp->srv->group, off, &seq)) return NULL;
    nsp_shared_t *sh = nsp->sh;
    pthread_mutex_lock(&sh->mu);
    ts_adp_saved_t *sv = ts_adp_saved_get(&sh->saved, pid, ts_now_ms());
    /* the offset must be an entry the log still holds: else it is too old
     * (pruned) or was never ours */
    if (!sv || !ts_adp_bus_at(&sh->bus, seq)) {
        pthread_mutex_unlock(&sh->mu);
        return NULL;
    }
    uint64_t upto = ts_adp_bus_cursor(&sh->bus, nsp->srv->idx);
    if (upto > seq + 1) {
        ts_adp_entry_t **v = ts_xmalloc((size_t)(upto - seq - 1) * sizeof(*v));
        size_t n = 0;
        for (uint64_t q = seq + 1; q < upto; q++) {
            ts_adp_entry_t *h = ts_adp_bus_at(&sh->bus, q);
            const log_entry_t *e = (const log_entry_t *)h;
            if (!e || !e->enc.n || !entry_matches(e, sv->rooms, sv->nrooms)) continue;
            ts_adp_entry_ref(h);
            v[n++] = h;
        }
        *missed = v;
        *nmissed = n;
    }
    ts_adp_saved_take(&sh->saved, sv);
    pthread_mutex_unlock(&sh->mu);
    return sv;
}

/* A session taken by find_restorable that is not restored after all: its
 * owner may still come for it. */
static void put_back(ts_sio_nsp_t *nsp, ts_adp_saved_t *sv) {
    pthread_mutex_lock(&nsp->sh->mu);
    ts_adp_saved_put_back(&nsp->sh->saved, sv);
    pthread_mutex_unlock(&nsp->sh->mu);
}

static void unref_all(ts_adp_entry_t **v, size_t n) {
    for (size_t i = 0; i < n; i++) ts_adp_entry_unref(v[i]);
    free(v);
}

static void connect_reply(ts_sio_socket_t *s);

/* Durable recovery: a socket's id is a function of its pid, so a socket
 * restored after the server restarted (which remembers neither) gets its
 * id back, as Node's recovery gives it. */
static void sid_of_pid(const char *pid, char out[ID_LEN + 1]) {
    static const char alpha[] = ID_ALPHABET;
    uint8_t d[SHA256_DIGEST_SIZE];
    struct sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, 4, (const uint8_t *)"sid:");
    sha256_update(&h, strlen(pid), (const uint8_t *)pid);
    sha256_digest(&h, sizeof d, d);
    for (int i = 0; i < ID_LEN; i++) out[i] = alpha[d[i] & 63];
    out[ID_LEN] = '\0';
}

static void do_connect(client_t *c, const char *name, json_t *auth_in) {
    ts_sio_server_t *srv = ts_sio__client_srv(c);
    for (ts_sio_socket_t *x = c->socks; x; x = x->next_in_client) {
        if (strcmp(x->nsp->name, name) == 0) {
            /* a second CONNECT to the same namespace: Node closes */
            client_close(c, "forced server close");
            return;
        }
    }
    ts_sio_nsp_t *nsp = nsp_find(srv, name);
    if (!nsp) {
        TS_MET_ERR(SIO_BAD_NAMESPACE);
        send_connect_error(c, name, "Invalid namespace", NULL);
        return;
    }
    /* Most clients send no auth: they share one empty object (read-only by
     * contract) instead of a jansson hashtable each. */
    json_t *auth = json_incref(auth_in && json_is_object(auth_in) ? auth_in : srv->no_auth);
    ts_sio_socket_t *s = ts_xcalloc(1, sizeof(*s));
    s->c = c;
    s->nsp = nsp;
    s->auth = auth;

    ts_adp_entry_t **missed = NULL;
    size_t nmissed = 0;
    ts_adp_saved_t *sv = recovery_on(nsp) ? find_restorable(nsp, auth, &missed, &nmissed) : NULL;
    if (sv) {
        memcpy(s->adp.id, sv->sid, sizeof s->adp.id);
        memcpy(s->pid, sv->pid, sizeof s->pid);
        s->recovered = 1;
    } else {
        ts_random_id(s->adp.id, ID_LEN);
        ts_random_id(s->pid, ID_LEN);
        if (nsp->h.restore) sid_of_pid(s->pid, s->adp.id);
    }
    ts_sio_refusal_t refuse = {{0}, NULL};
    if ((!sv || nsp->h.authorize_recovered) && nsp->h.authorize &&
        nsp->h.authorize(s, auth, &refuse, nsp->ud) != 0) {
        TS_MET_ERR(SIO_CONNECT_REFUSED);
        send_connect_error(c, name, refuse.message[0] ? refuse.message : "Not authorized",
                           refuse.data);
        json_decref(refuse.data);
        json_decref(auth);
        /* refused on re-authorization (a garbage or expired token, or somebody
         * else's): the session stays for its owner (docs/SECURITY.md) */
        if (sv) put_back(nsp, sv);
        unref_all(missed, nmissed);
        free(s);
        return;
    }
    if (sv && (!sv->owner != !s->owner || (sv->owner && strcmp(sv->owner, s->owner) != 0))) {
        /* The saved session belongs to another identity (an app that switched
         * account, or a stolen pid): nothing of it is restored. */
        ts_debug("sio", "%s: a restored session's owner differs; starting fresh", name);
        /* put it back: its owner may still come for it */
        put_back(nsp, sv);
        unref_all(missed, nmissed);
        missed = NULL;
        nmissed = 0;
        sv = NULL;
        s->recovered = 0;
        ts_random_id(s->adp.id, ID_LEN);
        ts_random_id(s->pid, ID_LEN);
    }
    /* accepted */
    const char *rpid = json_string_value(json_object_get(auth, "pid"));
    const char *roff = json_string_value(json_object_get(auth, "offset"));
    int restoring = nsp->h.restore && rpid && roff;
    ts_sio_socket_t **tail = &c->socks;
    while (*tail) tail = &(*tail)->next_in_client;
    *tail = s;
    if (ts_list_linked(&c->pending_link)) ts_list_remove(&c->pending_link);
    TS_MET_INC(SIO_CONNECTS);
    TS_MET_GAUGE_ADD(SIO_SOCKETS, 1);
    ts_adp_add(&nsp->rooms, &s->adp);
    if (sv) {
        for (size_t i = 0; i < sv->nrooms; i++) ts_sio_join(s, sv->rooms[i]);
        /* the missed packets go before the CONNECT reply (Node's order),
         * all in the default class: a replay keeps the log's order */
        for (size_t i = 0; i < nmissed; i++)
            send_encoded(s, &((const log_entry_t *)missed[i])->enc, TS_EIO_CLASS_EVENT, 0);
        unref_all(missed, nmissed);
        ts_adp_saved_free(sv);
        TS_MET_INC(SIO_RECOVERED);
    }
    /* durable recovery: the namespace replays from its log, then finishes */
    int later = restoring && nsp->h.restore(s, rpid, roff, nsp->ud);
    if (nsp->h.forget_auth && s->auth != srv->no_auth) { /* rpid, roff are not used below */
        json_decref(s->auth);
        s->auth = json_incref(srv->no_auth);
    }
    if (later) return;
    connect_reply(s);
}

/* The CONNECT reply {sid, pid?}, then the namespace's on_connection. */
static void connect_reply(ts_sio_socket_t *s) {
    ts_sio_nsp_t *nsp = s->nsp;
    json_t *reply = json_object();
    json_object_set_new(reply, "sid", json_string(s->adp.id));
    if (recovery_on(nsp) || nsp->h.restore) json_object_set_new(reply, "pid", json_string(s->pid));
    send_packet(s, TS_SIO_CONNECT, reply, TS_SIO_NO_ID, NULL);
    json_decref(reply);
    if (nsp->h.on_connection) nsp->h.on_connection(s, nsp->ud);
}

void ts_sio_connect_finish(ts_sio_socket_t *s, const char *pid) {
    /* a pid of ours has our length and alphabet; anything else starts fresh */
    if (pid && strlen(pid) == ID_LEN && strspn(pid, ID_ALPHABET) == ID_LEN) {
        memcpy(s->pid, pid, ID_LEN + 1);
        s->recovered = 1;
        TS_MET_INC(SIO_RECOVERED);
        /* the socket gets its id back (a function of the pid), unless the
         * old socket is still here (its connection not yet known dead) */
        char sid[ID_LEN + 1];
        sid_of_pid(pid, sid);
        ts_adp_rename(&s->nsp->rooms, &s->adp, sid);
    }
    connect_reply(s);
}

/* ---- packets from the client ---- */

static ts_sio_socket_t *client_socket(client_t *c, const char *nsp) {
    for (ts_sio_socket_t *x = c->socks; x; x = x->next_in_client)
        if (strcmp(x->nsp->name, nsp) == 0) return x;
    return NULL;
}

static void on_event(ts_sio_socket_t *s, ts_sio_packet_t *p) {
    /* "2" with no payload decodes (as in Node) to no data: no event name,
     * nothing to deliver */
    if (!p->data || json_array_size(p->data) == 0) return;
    json_t *name = json_array_get(p->data, 0);
    char numname[32];
    const char *event = json_string_value(name);
    if (!event) { /* a numeric event name */
        snprintf(numname, sizeof numname, "%" JSON_INTEGER_FORMAT, json_integer_value(name));
        event = numname;
    }
    json_t *rest = json_array();
    for (size_t i = 1; i < json_array_size(p->data); i++)
        json_array_append(rest, json_array_get(p->data, i));
    ts_sio_args_t args = {rest, p->attach, p->nattach};
    if (s->nsp->h.on_event) s->nsp->h.on_event(s, event, &args, p->id, s->nsp->ud);
    json_decref(rest);
}

/* The fast path: an EVENT recognized by ts_sio_raw_event_parse, offered to
 * the namespace's on_raw_event. Returns 0 (nothing done) when the packet
 * must go through the full decoder instead: a namespace this connection
 * has not joined (dispatch answers that), one without on_raw_event, or a
 * handler that declined. */
static int on_raw_event(client_t *c, ts_sio_raw_event_t *ev, size_t len) {
    ts_sio_socket_t *s = NULL;
    for (ts_sio_socket_t *x = c->socks; x && !s; x = x->next_in_client)
        if (ts_slice_eq_str(ev->nsp, x->nsp->name)) s = x;
    if (!s || !s->nsp->h.on_raw_event) return 0;
    /* NUL-terminated copies of the name and of the string arguments without
     * escapes: together never longer than the message */
    char stack[512];
    size_t cap = len + 1 + ev->nargs;
    char *strs = cap <= sizeof stack ? stack : ts_xmalloc(cap);
    memcpy(strs, ev->name.p, ev->name.len);
    strs[ev->name.len] = '\0';
    size_t used = ev->name.len + 1;
    for (size_t i = 0; i < ev->nargs; i++) {
        ts_slice_t t = ev->args[i].text;
        if (t.p[0] != '"' || memchr(t.p, '\\', t.len)) continue;
        memcpy(strs + used, t.p + 1, t.len - 2);
        strs[used + t.len - 2] = '\0';
        ev->args[i].str = strs + used;
        used += t.len - 1;
    }
    int done = s->nsp->h.on_raw_event(s, strs, ev->args, ev->nargs, ev->id, s->nsp->ud);
    if (strs != stack) free(strs);
    if (done) TS_MET_INC(SIO_PACKETS_IN);
    return done;
}

static void on_ack(ts_sio_socket_t *s, ts_sio_packet_t *p) {
    ts_list_t *it, *tmp;
    if (!s->acks) return; /* it asked for none: ignored, as below */
    TS_LIST_FOREACH_SAFE(it, tmp, &s->acks->list) {
        pending_ack_t *a = ts_list_entry(it, pending_ack_t, link);
        if (a->id != p->id) continue;
        ack_finish(a);
        json_t *data = p->data ? p->data : json_array();
        ts_sio_args_t args = {data, p->attach, p->nattach};
        a->cb(s, &args, 0, a->ud);
        if (!p->data) json_decref(data);
        return;
    }
    /* unknown ack id: ignored, as Node does */
}

static void dispatch(client_t *c, ts_sio_packet_t *p) {
    TS_MET_INC(SIO_PACKETS_IN);
    ts_sio_socket_t *s = client_socket(c, p->nsp);
    if (p->type == TS_SIO_CONNECT && !s) {
        /* Leaving and re-entering namespaces in a loop would redo their
         * authorization (a token check) and reset whatever they count per
         * socket: a connection gets a small allowance of CONNECTs. */
        if (ts_rl_lite_take(&c->connects, TS_RL_PER_SEC(CONNECTS_PER_S), CONNECTS_BURST,
                            uv_now(ts_sio__client_srv(c)->loop), 1) != 0) {
            TS_MET_ERR(SIO_CONNECT_FLOOD);
            ts_info("sio", "closing %s: namespace CONNECTs faster than %d/s",
                    ts_eio_sock_peer(ts_sio__client_eio(c)), CONNECTS_PER_S);
            client_close(c, "forced server close");
            return;
        }
        do_connect(c, p->nsp, p->data);
        return;
    }
    if (!s || p->type == TS_SIO_CONNECT || p->type == TS_SIO_CONNECT_ERROR) {
        ts_debug("sio", "invalid state: packet type %d for namespace %s", p->type, p->nsp);
        client_close(c, "forced server close");
        return;
    }
    switch (p->type) {
    case TS_SIO_EVENT:
        on_event(s, p);
        break;
    case TS_SIO_ACK:
        on_ack(s, p);
        break;
    case TS_SIO_DISCONNECT:
        socket_remove(s, "client namespace disconnect");
        break;
    default:
        break;
    }
}

/* ---- Engine.IO callbacks ---- */

static void client_free(client_t *c, const char *reason) {
    while (c->socks) socket_remove(c->socks, reason);
    if (ts_list_linked(&c->pending_link)) ts_list_remove(&c->pending_link);
    if (c->dec) {
        ts_sio_decoder_deinit(c->dec);
        free(c->dec);
    }
    /* its memory goes with its Engine.IO session's */
}

/* We close the connection: Engine.IO calls on_close synchronously, where
 * the client is freed with our reason. */
static void client_close(client_t *c, const char *reason) {
    ts_sio_server_t *srv = ts_sio__client_srv(c);
    const char *outer = srv->close_reason; /* a close inside another's on_close */
    srv->close_reason = reason;
    ts_eio_sock_close(ts_sio__client_eio(c));
    srv->close_reason = outer;
}

static void eio_open(ts_eio_sock_t *e, void *server_ud) {
    ts_sio_server_t *srv = server_ud;
    client_t *c = ts_eio_sock_extra(e);
    c->created_ms = ts_now_ms();
    ts_rl_lite_init(&c->connects, CONNECTS_BURST, uv_now(srv->loop));
    ts_list_init(&c->pending_link);
    ts_list_insert_tail(&srv->unconnected, &c->pending_link);
    ts_eio_sock_set_ud(e, c);
}

static void eio_message(ts_eio_sock_t *e, const uint8_t *data, size_t len, int binary, void *ud) {
    client_t *c = ud;
    if (!c) return;
    ts_sio_decoder_t local, *d = c->dec;
    if (!d) {
        /* between packets a decoder holds nothing: a fresh one per message */
        d = &local;
        ts_sio_decoder_init(d, ts_sio__client_srv(c)->opts.parser);
    }
    /* the fast path (JSON parser, text, no attachments being collected) */
    ts_sio_raw_event_t ev;
    if (ts_sio_decoder_feed_raw(d, data, len, binary, &ev) && on_raw_event(c, &ev, len)) return;
    ts_sio_packet_t pkt;
    int rc = ts_sio_decoder_feed(d, data, len, binary, &pkt);
    if (rc == 0 && d == &local) {
        /* attachments follow in the next messages: the state moves to the
         * heap (a decoder is plain data, it may be copied) */
        c->dec = ts_xmalloc(sizeof(*c->dec));
        *c->dec = local;
    } else if (rc != 0 && d == c->dec) {
        c->dec = NULL; /* the packet is complete (or failed): freed below */
    }
    if (rc < 0) {
        TS_MET_ERR(SIO_PARSE);
        ts_debug("sio", "closing %s: %s", ts_eio_sock_id(e), d->errmsg);
    }
    if (rc != 0 && d != &local) {
        ts_sio_decoder_deinit(d);
        free(d);
    }
    if (rc < 0) {
        client_close(c, "parse error");
        return;
    }
    if (rc == 1) {
        dispatch(c, &pkt);
        ts_sio_packet_clear(&pkt);
    }
}

static void eio_close(ts_eio_sock_t *e, const char *reason, void *ud) {
    client_t *c = ud;
    if (!c) return;
    ts_sio_server_t *srv = ts_sio__client_srv(c);
    const char *ours = srv->close_reason;
    srv->close_reason = NULL; /* taken: a close this one causes has its own */
    client_free(c, ours ? ours : reason);
}

static const ts_eio_handler_t eio_handler = {eio_open, eio_message, eio_close, sizeof(client_t)};

const ts_eio_handler_t *ts_sio_eio_handler(void) { return &eio_handler; }

/* ---- server ---- */

static void on_sweep(uv_timer_t *t) {
    ts_sio_server_t *srv = t->data;
    uint64_t now = ts_now_ms();
    while (!ts_list_empty(&srv->unconnected)) {
        client_t *c = ts_list_entry(srv->unconnected.next, client_t, pending_link);
        if (now - c->created_ms < srv->opts.connect_timeout_ms) break;
        ts_list_remove(&c->pending_link);
        client_close(c, "forced server close"); /* no namespace joined in time */
    }
    if (!srv->opts.recovery_ms) return;
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&srv->nsps, &it, &e);) {
        nsp_shared_t *sh = ((ts_sio_nsp_t *)e->val)->sh;
        pthread_mutex_lock(&sh->mu);
        ts_adp_bus_prune(&sh->bus, now);
        ts_adp_saved_expire(&sh->saved, now);
        pthread_mutex_unlock(&sh->mu);
    }
}

static void opts_defaults(ts_sio_opts_t *o) {
    if (!o->connect_timeout_ms) o->connect_timeout_ms = 45000;
    if (!o->max_log_entries) o->max_log_entries = 100000;
    if (!o->max_log_bytes) o->max_log_bytes = 64u << 20;
    if (!o->max_saved) o->max_saved = 10000;
    if (!o->max_saved_bytes) o->max_saved_bytes = 16u << 20;
    if (!o->max_saved_per_addr) o->max_saved_per_addr = 1000;
}

ts_sio_group_t *ts_sio_group_new(const ts_sio_opts_t *opts, size_t nloops) {
    ts_assert(nloops >= 1 && nloops <= TS_SIO_MAX_LOOPS);
    ts_sio_group_t *g = ts_xcalloc(1, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    g->nloops = nloops;
    g->opts = *opts;
    opts_defaults(&g->opts);
    ts_random_id(g->offset_prefix, sizeof g->offset_prefix - 1);
    return g;
}

static void shared_free(nsp_shared_t *sh) {
    ts_adp_bus_deinit(&sh->bus);
    ts_adp_saved_deinit(&sh->saved);
    pthread_mutex_destroy(&sh->mu);
    free(sh->name);
    free(sh);
}

void ts_sio_group_free(ts_sio_group_t *g) {
    if (!g) return;
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&g->nsps, &it, &e);) shared_free(e->val);
    ts_map_deinit(&g->nsps);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* The shared half of namespace `name`, created on first use; this loop is
 * attached to it from the current end of its log. */
static nsp_shared_t *shared_attach(ts_sio_server_t *srv, const char *name) {
    ts_sio_group_t *g = srv->group;
    pthread_mutex_lock(&g->mu);
    nsp_shared_t *sh = ts_map_get(&g->nsps, name, strlen(name));
    if (!sh) {
        sh = ts_xcalloc(1, sizeof(*sh));
        pthread_mutex_init(&sh->mu, NULL);
        sh->name = ts_xstrdup(name);
        const ts_sio_opts_t *o = &g->opts;
        ts_adp_saved_limits_t lim = {o->recovery_ms, o->max_saved, o->max_saved_bytes,
                                     o->max_saved_per_addr};
        ts_adp_saved_init(&sh->saved, &lim);
        ts_adp_bus_limits_t blim = {o->recovery_ms, o->max_log_entries, o->max_log_bytes};
        ts_adp_bus_init(&sh->bus, &blim, g->nloops);
        ts_map_put(&g->nsps, sh->name, strlen(sh->name), sh);
    }
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_lock(&sh->mu);
    ts_adp_bus_attach(&sh->bus, srv->idx);
    pthread_mutex_unlock(&sh->mu);
    return sh;
}

size_t ts_sio_server_loops(const ts_sio_server_t *srv) { return srv->group->nloops; }

ts_sio_server_t *ts_sio_server_new_in(uv_loop_t *loop, ts_sio_group_t *g, size_t idx) {
    ts_assert(idx < g->nloops);
    ts_sio_server_t *srv = ts_xcalloc(1, sizeof(*srv));
    srv->loop = loop;
    srv->opts = g->opts;
    srv->group = g;
    srv->idx = (unsigned)idx;
    srv->no_auth = json_object();
    ts_list_init(&srv->unconnected);
    uv_timer_init(loop, &srv->sweep);
    srv->sweep.data = srv;
    uv_timer_start(&srv->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&srv->sweep);
    uv_async_init(loop, &srv->bus, on_bus);
    srv->bus.data = srv;
    pthread_mutex_init(&srv->jobs_mu, NULL);
    ts_list_init(&srv->jobs);
    uv_unref((uv_handle_t *)&srv->bus);
    pthread_mutex_lock(&g->mu);
    ts_assert(!g->srvs[idx]);
    g->srvs[idx] = srv;
    pthread_mutex_unlock(&g->mu);
    return srv;
}

ts_sio_server_t *ts_sio_server_new(uv_loop_t *loop, const ts_sio_opts_t *opts) {
    ts_sio_group_t *g = ts_sio_group_new(opts, 1);
    g->owned_by_server = 1;
    return ts_sio_server_new_in(loop, g, 0);
}

static void nsp_free(ts_sio_nsp_t *nsp) {
    nsp_shared_t *sh = nsp->sh;
    pthread_mutex_lock(&sh->mu);
    ts_adp_bus_detach(&sh->bus, nsp->srv->idx); /* no longer holds back pruning */
    ts_adp_bus_prune(&sh->bus, ts_now_ms());
    pthread_mutex_unlock(&sh->mu);
    ts_adp_rooms_deinit(&nsp->rooms);
    free(nsp->name);
    free(nsp);
}

static void server_release(ts_sio_server_t *srv) {
    if (--srv->closing_handles) return;
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&srv->nsps, &it, &e);) nsp_free(e->val);
    ts_map_deinit(&srv->nsps);
    free(srv->patterns);
    json_decref(srv->no_auth);
    pthread_mutex_destroy(&srv->jobs_mu);
    if (srv->group->owned_by_server) ts_sio_group_free(srv->group);
    free(srv);
}

static void handle_closed(uv_handle_t *h) { server_release(h->data); }

void ts_sio_server_free(ts_sio_server_t *srv) {
    ts_sio_group_t *g = srv->group;
    pthread_mutex_lock(&g->mu); /* nobody wakes us from now on */
    g->srvs[srv->idx] = NULL;
    pthread_mutex_unlock(&g->mu);
    srv->remote = NULL;
    ts_sio__run_jobs(srv); /* queued before: counted done, answered by the last loop */
    srv->closing_handles = 2;
    uv_close((uv_handle_t *)&srv->sweep, handle_closed);
    uv_close((uv_handle_t *)&srv->bus, handle_closed);
}

ts_sio_nsp_t *ts_sio_nsp_add(ts_sio_server_t *srv, const char *name,
                             const ts_sio_nsp_handler_t *h, void *ud) {
    return nsp_create(srv, name, h, ud);
}

void ts_sio_nsp_pattern(ts_sio_server_t *srv, int (*match)(const char *, void *),
                        const ts_sio_nsp_handler_t *h, void *ud) {
    srv->patterns = ts_xrealloc(srv->patterns, (srv->npatterns + 1) * sizeof(*srv->patterns));
    srv->patterns[srv->npatterns++] = (pattern_t){match, *h, ud};
}

const char *ts_sio_nsp_name(const ts_sio_nsp_t *nsp) { return nsp->name; }
size_t ts_sio_nsp_count(const ts_sio_nsp_t *nsp) { return ts_adp_count(&nsp->rooms); }
const char *ts_sio_socket_id(const ts_sio_socket_t *s) { return s->adp.id; }
ts_sio_nsp_t *ts_sio_socket_nsp(const ts_sio_socket_t *s) { return s->nsp; }
json_t *ts_sio_socket_auth(const ts_sio_socket_t *s) { return s->auth; }
void ts_sio_socket_set_owner(ts_sio_socket_t *s, const char *owner) { s->owner = owner; }
int ts_sio_socket_recovered(const ts_sio_socket_t *s) { return s->recovered; }
void ts_sio_socket_set_ud(ts_sio_socket_t *s, void *ud) { s->ud = ud; }
void *ts_sio_socket_ud(const ts_sio_socket_t *s) { return s->ud; }
ts_eio_sock_t *ts_sio_socket_eio(const ts_sio_socket_t *s) { return ts_sio__client_eio(s->c); }
void ts_sio_socket_cork(ts_sio_socket_t *s) { ts_eio_sock_cork(ts_sio__client_eio(s->c)); }
void ts_sio_socket_uncork(ts_sio_socket_t *s) { ts_eio_sock_uncork(ts_sio__client_eio(s->c)); }
