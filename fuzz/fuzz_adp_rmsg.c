/* fuzz_adp_rmsg.c - libFuzzer driver for the @socket.io/redis-adapter
 * codec (src/adapter/rmsg.c). Input: one byte whose low bit picks the
 * format (0 classic, 1 sharded), one byte L, L bytes of channel, then the
 * message; so the channel is fuzzed too. A decoded message must encode, its
 * encoding must decode, and encoding that again must give the very same
 * channel and bytes: our encoding is a fixed point. A failure must leave a
 * reason and a zeroed message. The paths without a tree (rfast.c) must
 * agree with the tree path on every input. A decoded request of a kind
 * tabsyncd makes must encode as our own request (src/adapter/rreq.c), and a
 * decoded answer counts into the result of exactly the request kind it
 * answers. The rooms read ahead of decoding (ts_adp_rmsg_peek_rooms) are
 * the decoder's. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "adapter/rmsg_int.h"
#include "adapter/ts_adp_rmsg.h"
#include "adapter/ts_adp_rreq.h"
#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_response(ts_adp_rmsg_kind_t k) { return k >= TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE; }

static void encode_ok(const ts_adp_rmsg_cfg_t *cfg, const ts_adp_rmsg_t *m,
                      ts_adp_rmsg_wire_t *w) {
    char err[256];
    int rc = ts_adp_rmsg_encode(cfg, m, w, err, sizeof(err));
    ts_assert(rc == 0);
    ts_assert(w->bytes && w->channel);
}

/* A string JSON writes as it is: UTF-8 without controls, quotes or
 * backslashes. */
static int plain_text(const char *s) {
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\') return 0;
    return ts_json_utf8_no_nul((const uint8_t *)s, strlen(s));
}

/* The paths without a tree (rfast.c) against the tree path: decode_text
 * takes exactly what decode takes, and where it gives the data as text, that
 * text is ts_json_dump of decode's tree and every other field is the same;
 * a broadcast whose data is canonical encodes to the tree path's bytes. */
static void text_paths_agree(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t f,
                             ts_slice_t channel, ts_slice_t bytes) {
    ts_adp_rmsg_t m, t;
    char err[256];
    int rc = ts_adp_rmsg_decode(cfg, f, channel, bytes, &m, err, sizeof(err));
    int rt = ts_adp_rmsg_decode_text(cfg, f, channel, bytes, &t, err, sizeof(err));
    ts_assert(rc == rt);
    /* the rooms a node reads before deciding to decode (adapter/redis.c)
     * are the decoder's, wherever both take the message */
    ts_slice_t pr[8];
    size_t np;
    if (ts_adp_rmsg_peek_rooms(f, bytes, pr, 8, &np)) {
        ts_assert(f == TS_ADP_RMSG_CLASSIC && np <= 8);
        if (rc == 0 && m.kind == TS_ADP_RMSG_BROADCAST) {
            ts_assert(np == m.opts.rooms.n);
            for (size_t i = 0; i < np; i++)
                ts_assert(strlen(m.opts.rooms.v[i]) == pr[i].len &&
                          memcmp(m.opts.rooms.v[i], pr[i].p, pr[i].len) == 0);
        }
    }
    if (rc != 0) return;
    ts_assert(m.kind == t.kind && strcmp(m.nsp, t.nsp) == 0);
    ts_assert(!m.uid == !t.uid && (!m.uid || strcmp(m.uid, t.uid) == 0));
    ts_assert(!m.room == !t.room && (!m.room || strcmp(m.room, t.room) == 0));
    if (t.packet.data_text) {
        ts_assert(!t.packet.data && m.packet.data && !m.nattach);
        ts_sbuf_t want = TS_SBUF_INIT;
        ts_json_dump(&want, m.packet.data);
        ts_assert(ts_sbuf_len(&want) == t.packet.data_text->len);
        ts_assert(memcmp(ts_sbuf_data(&want), t.packet.data_text->data, ts_sbuf_len(&want)) == 0);
        ts_assert(ts_adp__rmsg_items_agree(&t.packet));
        ts_assert(m.opts.rooms.n == t.opts.rooms.n && m.opts.except.n == t.opts.except.n);
        for (size_t i = 0; i < m.opts.rooms.n; i++)
            ts_assert(strcmp(m.opts.rooms.v[i], t.opts.rooms.v[i]) == 0);
        for (size_t i = 0; i < m.opts.except.n; i++)
            ts_assert(strcmp(m.opts.except.v[i], t.opts.except.v[i]) == 0);
        ts_assert(m.opts.flags == t.opts.flags);
        /* is_from is sound on any input (another writer may use wider
         * headers than notepack, or other spacing, so it may say no to a
         * message of uid, never yes to another's) */
        if (ts_adp_rmsg_is_from(f, bytes, "fz")) ts_assert(strcmp(m.uid, "fz") == 0);
        ts_sbuf_free(&want);
    }
    if (m.kind == TS_ADP_RMSG_BROADCAST && !m.nattach && m.uid) {
        ts_sbuf_t text = TS_SBUF_INIT;
        ts_json_dump(&text, m.packet.data);
        ts_buf_t *fast = NULL;
        ts_slice_t tx = ts_slice(ts_sbuf_data(&text), ts_sbuf_len(&text));
        /* a canonical text is vouched for, as sio does for its own: the
         * unchecked transcoder must give the tree path's bytes too */
        ts_adp_rmsg_text_t form = ts_json_is_canonical(tx) ? TS_ADP_RMSG_TEXT_CANONICAL
                                                           : TS_ADP_RMSG_TEXT_ANY;
        if (ts_adp__rmsg_fast_broadcast(f, m.uid, m.nsp, tx, form, &m.opts, &fast) == 0) {
            ts_adp_rmsg_t e = m;
            e.packet.nsp = f == TS_ADP_RMSG_CLASSIC ? m.packet.nsp : NULL;
            e.packet.id = -1;
            e.packet.type = 2;
            e.request_id = NULL;
            ts_adp_rmsg_wire_t w;
            ts_assert(ts_adp_rmsg_encode(NULL, &e, &w, err, sizeof(err)) == 0);
            /* and complete on what notepack (and we) write, for a uid
             * written as it is (no escape) */
            if (f == TS_ADP_RMSG_CLASSIC || (plain_text(m.uid) && plain_text(m.nsp)))
                ts_assert(ts_adp_rmsg_is_from(f, ts_buf_slice(w.bytes), m.uid) == 1);
            ts_assert(w.bytes->len == fast->len);
            ts_assert(memcmp(w.bytes->data, fast->data, fast->len) == 0);
            ts_adp_rmsg_wire_clear(&w);
            ts_buf_unref(fast);
        }
        ts_sbuf_free(&text);
    }
    ts_adp_rmsg_clear(&t);
    ts_adp_rmsg_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || (size_t)data[1] + 2 > size) return 0;
    ts_adp_rmsg_format_t f = (data[0] & 1) ? TS_ADP_RMSG_SHARDED : TS_ADP_RMSG_CLASSIC;
    ts_slice_t channel = ts_slice(data + 2, data[1]);
    ts_slice_t bytes = ts_slice(data + 2 + data[1], size - 2 - data[1]);

    text_paths_agree(NULL, f, channel, bytes);

    static const ts_adp_rmsg_t zero;
    ts_adp_rmsg_t m;
    char err[256];
    int rc = ts_adp_rmsg_decode(NULL, f, channel, bytes, &m, err, sizeof(err));
    if (rc != 0) {
        ts_assert(rc == TS_EINVAL);
        ts_assert(err[0] != '\0');
        ts_assert(memcmp(&m, &zero, sizeof(m)) == 0);
        return 0;
    }
    ts_assert(m.kind > TS_ADP_RMSG_NONE && m.kind < TS_ADP_RMSG_KIND_COUNT);
    ts_assert(m.nsp != NULL);
    for (size_t i = 0; i < m.nattach; i++) ts_assert(m.attach[i] != NULL);

    /* a sharded response on a channel that names no requester still
     * encodes once it has one */
    if (f == TS_ADP_RMSG_SHARDED && is_response(m.kind) && !m.to) m.to = ts_xstrdup("req");
    ts_adp_rmsg_cfg_t cfg = {.specific_responses = m.to != NULL};
    ts_adp_rmsg_wire_t w1, w2;
    encode_ok(&cfg, &m, &w1);

    /* Where Node writes JSON, a binary becomes {"type":"Buffer","data":[...]}:
     * two levels deeper than the bin it was */
    ts_adp_rmsg_cfg_t cfg2 = cfg;
    if (m.nattach && w1.bytes->len && w1.bytes->data[0] == '{')
        cfg2.max_depth = TS_ADP_RMSG_MAX_DEPTH_DEFAULT + 2;
    ts_adp_rmsg_t again;
    rc = ts_adp_rmsg_decode(&cfg2, f, ts_buf_slice(w1.channel), ts_buf_slice(w1.bytes), &again, err,
                            sizeof(err));
    ts_assert(rc == 0);
    ts_assert(again.kind == m.kind);
    ts_assert(strcmp(again.nsp, m.nsp) == 0);
    if (f == TS_ADP_RMSG_SHARDED && is_response(again.kind) && !again.to)
        again.to = ts_xstrdup("req");
    encode_ok(&cfg, &again, &w2);
    ts_assert(w2.channel->len == w1.channel->len);
    ts_assert(memcmp(w2.channel->data, w1.channel->data, w1.channel->len) == 0);
    ts_assert(w2.bytes->len == w1.bytes->len);
    ts_assert(memcmp(w2.bytes->data, w1.bytes->data, w1.bytes->len) == 0);

    /* the broadcast path from JSON text takes what the decoder gave */
    if (m.kind == TS_ADP_RMSG_BROADCAST || m.kind == TS_ADP_RMSG_BROADCAST_WITH_ACK) {
        ts_sbuf_t text = TS_SBUF_INIT;
        ts_json_dump(&text, m.packet.data);
        ts_adp_rmsg_wire_t w3;
        rc = ts_adp_rmsg_encode_broadcast(NULL, f, m.uid, m.nsp, m.request_id,
                                          ts_slice(ts_sbuf_data(&text), ts_sbuf_len(&text)),
                                          TS_ADP_RMSG_TEXT_ANY, m.attach, m.nattach, &m.opts, &w3,
                                          err, sizeof(err));
        ts_assert(rc == 0);
        ts_adp_rmsg_t b;
        rc = ts_adp_rmsg_decode(&cfg2, f, ts_buf_slice(w3.channel), ts_buf_slice(w3.bytes), &b,
                                err, sizeof(err));
        ts_assert(rc == 0);
        ts_assert(b.kind == m.kind);
        ts_assert(b.nattach == m.nattach || w3.bytes->data[0] == '{');
        ts_adp_rmsg_clear(&b);
        ts_adp_rmsg_wire_clear(&w3);
        ts_sbuf_free(&text);
    }

    /* our requests and the answers to them */
    ts_adp_req_t req;
    if (ts_adp_rreq_of(&m, "fuzz-self", &req) && !req.sid &&
        req.kind != TS_ADP_REQ_ALL_ROOMS && req.kind != TS_ADP_REQ_SOCKETS &&
        req.kind != TS_ADP_REQ_BROADCAST_ACK) {
        ts_adp_rmsg_wire_t w4;
        rc = ts_adp_rreq_encode_request(NULL, f, "fuzz-self", &req, &w4, err, sizeof(err));
        ts_assert(rc == 0);
        ts_adp_rmsg_wire_clear(&w4);
    }
    ts_adp_result_t fetch = {0}, emit = {0};
    int cf = ts_adp_rreq_collect(&fetch, TS_ADP_REQ_FETCH_SOCKETS, &m);
    int ce = ts_adp_rreq_collect(&emit, TS_ADP_REQ_SERVER_SIDE_EMIT, &m);
    ts_assert(cf == (m.kind == TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE));
    ts_assert(ce == (m.kind == TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE));
    ts_assert(!cf || json_array_size(fetch.sockets) == m.nsockets);
    ts_assert(!ce || json_array_size(emit.answers) == 1);
    json_decref(fetch.sockets);
    json_decref(emit.answers);

    ts_adp_rmsg_wire_clear(&w2);
    ts_adp_rmsg_wire_clear(&w1);
    ts_adp_rmsg_clear(&again);
    ts_adp_rmsg_clear(&m);
    return 0;
}
