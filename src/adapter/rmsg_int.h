/* rmsg_int.h - private to the wire format: what its reader (rmsg.c), its
 * writer (rmsg_enc.c) and the tree-free broadcast paths (rfast.c) share. */
#ifndef TS_ADP_RMSG_INT_H
#define TS_ADP_RMSG_INT_H
#include <jansson.h>

#include "adapter/ts_adp_rmsg.h"
#include "core/ts_json.h"

/* Node's classic RequestType and ClusterAdapter's MessageType. */
enum {
    C_SOCKETS = 0,
    C_ALL_ROOMS = 1,
    C_REMOTE_JOIN = 2,
    C_REMOTE_LEAVE = 3,
    C_REMOTE_DISCONNECT = 4,
    C_REMOTE_FETCH = 5,
    C_SERVER_SIDE_EMIT = 6,
    C_BROADCAST = 7,
    C_BROADCAST_CLIENT_COUNT = 8,
    C_BROADCAST_ACK = 9,
};
enum {
    S_INITIAL_HEARTBEAT = 1,
    S_HEARTBEAT = 2,
    S_BROADCAST = 3,
    S_SOCKETS_JOIN = 4,
    S_SOCKETS_LEAVE = 5,
    S_DISCONNECT_SOCKETS = 6,
    S_FETCH_SOCKETS = 7,
    S_FETCH_SOCKETS_RESPONSE = 8,
    S_SERVER_SIDE_EMIT = 9,
    S_SERVER_SIDE_EMIT_RESPONSE = 10,
    S_BROADCAST_CLIENT_COUNT = 11,
    S_BROADCAST_ACK = 12,
    S_ADAPTER_CLOSE = 13,
};

typedef struct lim {
    const char *prefix;
    size_t prefix_len;
    size_t max_bytes, max_items, max_attach;
    unsigned max_depth;
} lim_t;

/* The limits and prefix of cfg (NULL: the defaults). */
lim_t ts_adp__rmsg_lim(const ts_adp_rmsg_cfg_t *cfg);

/* Writes a reason into err[errlen] (may be NULL) and returns TS_EINVAL. */
__attribute__((format(printf, 3, 4))) int ts_adp__rmsg_fail(char *err, size_t errlen,
                                                             const char *fmt, ...);

/* {"_placeholder": true, ...}: Socket.IO's stand-in for a binary value. */
static inline int ts_adp__rmsg_is_placeholder(json_t *v) {
    return json_is_object(v) && json_is_true(json_object_get(v, "_placeholder"));
}

/* JSON.parse's reading of p[0..n): integers too big for int64 are doubles
 * (jansson refuses them), NUL in strings is fine. NULL with je set. */
json_t *ts_adp__rmsg_load_json(const uint8_t *p, size_t n, json_error_t *je);

/* The message of a plain broadcast (no acks, no binary) whose data is the
 * canonical text `data_json` (borrowed), as the tree path would write it:
 * msgpack for the classic format, JSON text for the sharded one. Returns 0
 * with *bytes (returns new), or TS_EINVAL (nothing made): the text is not
 * canonical or has what only the tree path handles. */
int ts_adp__rmsg_fast_broadcast(ts_adp_rmsg_format_t format, const char *uid, const char *nsp,
                                ts_slice_t data_json, ts_adp_rmsg_text_t form,
                                const ts_adp_rmsg_opts_t *opts, ts_buf_t **bytes);

/* Reads a plain broadcast (classic msgpack or sharded JSON) without a tree:
 * fills uid, nsp (sharded), kind, has_opts, opts, msgpack and the packet,
 * its data as canonical text in packet.data_text (packet.data NULL).
 * Returns 0, or TS_EINVAL with *m zeroed for anything else (the tree path
 * then reads it, and judges it). The channel is the caller's to check. */
int ts_adp__rmsg_fast_decode(ts_adp_rmsg_format_t format, ts_slice_t bytes, ts_adp_rmsg_t *m);

/* For the tests and the fuzzer: whether a packet's recorded items are
 * exactly its data_text's elements, as a skip over the text finds them. */
static inline int ts_adp__rmsg_items_agree(const ts_adp_rmsg_packet_t *p) {
    if (!p->nitems) return 1;
    const uint8_t *t = p->data_text->data;
    size_t len = p->data_text->len, at = 1;
    for (size_t i = 0; i < p->nitems; i++, at++) { /* past the ',' or the ']' */
        size_t k = ts_json_skip(t + at, len - at);
        if (p->items[i].at != at || p->items[i].len != k || !k) return 0;
        at += k;
        if (at >= len || t[at] != (i + 1 < p->nitems ? ',' : ']')) return 0;
    }
    return at == len;
}

#endif
