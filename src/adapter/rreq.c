/* rreq.c - server-side requests between the wire (ts_adp_rmsg.h) and the
 * Socket.IO layer (ts_adp_remote.h): a decoded request becomes a
 * ts_adp_req_t that borrows from the message, an answer becomes the
 * response message Node's adapter of the same format would send (classic:
 * on the response channel, keyed by requestId; sharded: on the requester's
 * own channel). What tabsyncd does with each request is in
 * docs/REDIS-WIRE.md. */
#include "adapter/ts_adp_rreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"

static const char *const req_names[TS_ADP_REQ_KIND_COUNT] = {
    [TS_ADP_REQ_FETCH_SOCKETS] = "FETCH_SOCKETS",
    [TS_ADP_REQ_SOCKETS] = "SOCKETS",
    [TS_ADP_REQ_ALL_ROOMS] = "ALL_ROOMS",
    [TS_ADP_REQ_SOCKETS_JOIN] = "SOCKETS_JOIN",
    [TS_ADP_REQ_SOCKETS_LEAVE] = "SOCKETS_LEAVE",
    [TS_ADP_REQ_DISCONNECT_SOCKETS] = "DISCONNECT_SOCKETS",
    [TS_ADP_REQ_SERVER_SIDE_EMIT] = "SERVER_SIDE_EMIT",
    [TS_ADP_REQ_BROADCAST_ACK] = "BROADCAST_ACK",
};

const char *ts_adp_req_kind_name(ts_adp_req_kind_t kind) {
    return (unsigned)kind < TS_ADP_REQ_KIND_COUNT ? req_names[kind] : "?";
}

static void targets(const ts_adp_rmsg_t *m, ts_adp_req_t *r) {
    r->rooms = (const char *const *)m->opts.rooms.v;
    r->nrooms = m->opts.rooms.n;
    r->except = (const char *const *)m->opts.except.v;
    r->nexcept = m->opts.except.n;
}

int ts_adp_rreq_of(const ts_adp_rmsg_t *m, const char *own_uid, ts_adp_req_t *out) {
    memset(out, 0, sizeof *out);
    if (!m->uid || (own_uid && strcmp(m->uid, own_uid) == 0)) return 0;
    out->nsp = m->nsp;
    out->request_id = m->request_id;
    out->requester = m->uid;
    switch (m->kind) {
    case TS_ADP_RMSG_FETCH_SOCKETS:
        if (!m->request_id) return 0;
        out->kind = TS_ADP_REQ_FETCH_SOCKETS;
        targets(m, out);
        return 1;
    case TS_ADP_RMSG_SOCKETS:
        if (!m->request_id) return 0;
        out->kind = TS_ADP_REQ_SOCKETS;
        out->rooms = (const char *const *)m->rooms.v; /* the rooms asked about */
        out->nrooms = m->rooms.n;
        return 1;
    case TS_ADP_RMSG_ALL_ROOMS:
        if (!m->request_id) return 0;
        out->kind = TS_ADP_REQ_ALL_ROOMS;
        return 1;
    case TS_ADP_RMSG_SOCKETS_JOIN:
    case TS_ADP_RMSG_SOCKETS_LEAVE:
    case TS_ADP_RMSG_DISCONNECT_SOCKETS:
        out->kind = m->kind == TS_ADP_RMSG_SOCKETS_JOIN    ? TS_ADP_REQ_SOCKETS_JOIN
                    : m->kind == TS_ADP_RMSG_SOCKETS_LEAVE ? TS_ADP_REQ_SOCKETS_LEAVE
                                                           : TS_ADP_REQ_DISCONNECT_SOCKETS;
        if (m->has_opts) {
            targets(m, out);
            out->request_id = NULL; /* Node answers none of these */
        } else {
            if (!m->sid || !m->request_id) return 0;
            out->sid = m->sid;
        }
        out->names = (const char *const *)m->rooms.v;
        out->nnames = m->rooms.n;
        out->close = m->close;
        return 1;
    case TS_ADP_RMSG_SERVER_SIDE_EMIT:
        if (!json_is_array(m->data) || !json_array_size(m->data)) return 0;
        out->kind = TS_ADP_REQ_SERVER_SIDE_EMIT;
        out->data = m->data;
        out->attach = m->attach;
        out->nattach = m->nattach;
        return 1;
    case TS_ADP_RMSG_BROADCAST_WITH_ACK:
        if (!m->request_id || !json_is_array(m->packet.data)) return 0;
        out->kind = TS_ADP_REQ_BROADCAST_ACK;
        targets(m, out);
        out->data = m->packet.data;
        out->attach = m->attach;
        out->nattach = m->nattach;
        if (m->opts.flags & TS_ADP_RMSG_F_TIMEOUT) out->timeout_ms = m->opts.timeout_ms;
        return 1;
    default:
        return 0;
    }
}

/* The strings of a JSON array of strings (borrowed), or -1. */
static int list_strs(json_t *list, ts_adp_rmsg_strs_t *out) {
    out->n = json_array_size(list);
    out->v = out->n ? ts_xmalloc(out->n * sizeof(char *)) : NULL;
    for (size_t i = 0; i < out->n; i++) {
        out->v[i] = (char *)json_string_value(json_array_get(list, i));
        if (!out->v[i]) return -1;
    }
    return 0;
}

/* The sockets of a FETCH_SOCKETS answer (borrowed from `list`), or -1. */
static int list_sockets(json_t *list, ts_adp_rmsg_t *m) {
    m->nsockets = json_array_size(list);
    m->sockets = m->nsockets ? ts_xcalloc(m->nsockets, sizeof *m->sockets) : NULL;
    for (size_t i = 0; i < m->nsockets; i++) {
        json_t *s = json_array_get(list, i);
        ts_adp_rmsg_sock_t *o = &m->sockets[i];
        o->id = (char *)json_string_value(json_object_get(s, "id"));
        o->handshake = json_object_get(s, "handshake");
        o->data = json_object_get(s, "data");
        if (!o->id || !json_is_object(o->handshake) ||
            list_strs(json_object_get(s, "rooms"), &o->rooms) < 0)
            return -1;
    }
    return 0;
}

int ts_adp_rreq_encode_answer(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                              const char *own_uid, const ts_adp_answer_t *a,
                              ts_adp_rmsg_wire_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int classic = format == TS_ADP_RMSG_CLASSIC;
    ts_adp_rmsg_t m = {.format = format,
                       .uid = (char *)own_uid,
                       .nsp = (char *)a->nsp,
                       .request_id = (char *)a->request_id,
                       .to = (char *)a->requester};
    int bad = 0;
    switch (a->kind) {
    case TS_ADP_REQ_FETCH_SOCKETS:
        m.kind = TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE;
        bad = list_sockets(a->list, &m);
        break;
    case TS_ADP_REQ_SOCKETS:
    case TS_ADP_REQ_ALL_ROOMS:
        if (!classic) return 1;
        m.kind = a->kind == TS_ADP_REQ_SOCKETS ? TS_ADP_RMSG_SOCKETS_RESPONSE
                                               : TS_ADP_RMSG_ALL_ROOMS_RESPONSE;
        bad = list_strs(a->list, &m.rooms);
        break;
    case TS_ADP_REQ_SOCKETS_JOIN:
    case TS_ADP_REQ_SOCKETS_LEAVE:
    case TS_ADP_REQ_DISCONNECT_SOCKETS:
        if (!classic) return 1;
        m.kind = TS_ADP_RMSG_RESPONSE;
        break;
    case TS_ADP_REQ_SERVER_SIDE_EMIT:
        m.kind = TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE;
        m.data = a->data;
        break;
    case TS_ADP_REQ_BROADCAST_ACK:
        m.kind = a->is_ack ? TS_ADP_RMSG_BROADCAST_ACK : TS_ADP_RMSG_BROADCAST_CLIENT_COUNT;
        m.client_count = a->client_count;
        m.data = a->data;
        break;
    default:
        return 1;
    }
    m.attach = (ts_buf_t **)a->attach; /* binaries anywhere in the answer */
    m.nattach = a->nattach;
    int rc;
    if (bad) {
        if (err && errlen) snprintf(err, errlen, "%s: an ill-formed answer list",
                                    ts_adp_req_kind_name(a->kind));
        rc = TS_EINVAL;
    } else {
        rc = ts_adp_rmsg_encode(cfg, &m, out, err, errlen);
    }
    for (size_t i = 0; i < m.nsockets; i++) free(m.sockets[i].rooms.v);
    free(m.sockets);
    free(m.rooms.v);
    return rc;
}

/* ---- requests of ours ---- */

int ts_adp_rreq_encode_request(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                               const char *own_uid, const ts_adp_req_t *req,
                               ts_adp_rmsg_wire_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    ts_adp_rmsg_t m = {.format = format,
                       .uid = (char *)own_uid,
                       .nsp = (char *)req->nsp,
                       .has_opts = 1,
                       .opts = {.rooms = {(char **)req->rooms, req->nrooms},
                                .except = {(char **)req->except, req->nexcept}}};
    switch (req->kind) {
    case TS_ADP_REQ_FETCH_SOCKETS:
        m.kind = TS_ADP_RMSG_FETCH_SOCKETS;
        m.request_id = (char *)req->request_id;
        break;
    case TS_ADP_REQ_SOCKETS_JOIN:
    case TS_ADP_REQ_SOCKETS_LEAVE:
        /* Node sends no requestId with these: nobody answers them */
        m.kind = req->kind == TS_ADP_REQ_SOCKETS_JOIN ? TS_ADP_RMSG_SOCKETS_JOIN
                                                      : TS_ADP_RMSG_SOCKETS_LEAVE;
        m.rooms = (ts_adp_rmsg_strs_t){(char **)req->names, req->nnames};
        break;
    case TS_ADP_REQ_DISCONNECT_SOCKETS:
        m.kind = TS_ADP_RMSG_DISCONNECT_SOCKETS;
        m.close = req->close;
        break;
    case TS_ADP_REQ_BROADCAST_ACK:
        /* io.timeout(ms).emit(event, ...args, cb): the packet Node builds;
         * without a request_id, io.emit(event, ...args): a plain broadcast */
        if (!json_is_array(req->data) || !json_is_string(json_array_get(req->data, 0))) {
            if (err && errlen) snprintf(err, errlen, "BROADCAST_ACK needs data [\"event\", ...]");
            return TS_EINVAL;
        }
        m.kind = req->request_id ? TS_ADP_RMSG_BROADCAST_WITH_ACK : TS_ADP_RMSG_BROADCAST;
        m.request_id = (char *)req->request_id;
        m.packet = (ts_adp_rmsg_packet_t){.type = 2,
                                          .nsp = format == TS_ADP_RMSG_CLASSIC ? (char *)req->nsp : NULL,
                                          .id = -1,
                                          .data = req->data};
        if (req->request_id) {
            m.opts.flags = TS_ADP_RMSG_F_TIMEOUT;
            m.opts.timeout_ms = req->timeout_ms ? req->timeout_ms : 5000;
        }
        m.attach = (ts_buf_t **)req->attach;
        m.nattach = req->nattach;
        break;
    case TS_ADP_REQ_ALL_ROOMS:
        /* RedisAdapter.allRooms(); the sharded adapter has no such request */
        if (format != TS_ADP_RMSG_CLASSIC) {
            if (err && errlen)
                snprintf(err, errlen, "ALL_ROOMS is a request of the classic format only");
            return TS_EINVAL;
        }
        m.kind = TS_ADP_RMSG_ALL_ROOMS;
        m.request_id = (char *)req->request_id;
        m.has_opts = 0;
        m.opts = (ts_adp_rmsg_opts_t){0};
        break;
    case TS_ADP_REQ_SERVER_SIDE_EMIT:
        m.kind = TS_ADP_RMSG_SERVER_SIDE_EMIT;
        m.request_id = (char *)req->request_id; /* present: answers wanted */
        m.has_opts = 0;
        m.opts = (ts_adp_rmsg_opts_t){0};
        m.data = req->data;
        m.attach = (ts_buf_t **)req->attach;
        m.nattach = req->nattach;
        break;
    default:
        if (err && errlen) snprintf(err, errlen, "%s is not a request this node makes",
                                    ts_adp_req_kind_name(req->kind));
        return TS_EINVAL;
    }
    return ts_adp_rmsg_encode(cfg, &m, out, err, errlen);
}

/* A copy of `v` (returns new) in which every binary placeholder is the
 * JSON of Node's Buffer, {"type":"Buffer","data":[...]}: what a JSON
 * answer shows of it. A placeholder without its attachment stays as is. */
json_t *ts_adp_rreq_buffers(json_t *v, ts_buf_t *const *attach, size_t nattach) {
    if (json_is_array(v)) {
        json_t *c = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) json_array_append_new(c, ts_adp_rreq_buffers(x, attach, nattach));
        return c;
    }
    if (!json_is_object(v)) return json_incref(v);
    json_t *num = json_object_get(v, "num");
    if (json_is_true(json_object_get(v, "_placeholder")) && json_is_integer(num) &&
        json_integer_value(num) >= 0 && (size_t)json_integer_value(num) < nattach) {
        const ts_buf_t *b = attach[json_integer_value(num)];
        json_t *bytes = json_array();
        for (size_t i = 0; i < b->len; i++) json_array_append_new(bytes, json_integer(b->data[i]));
        return json_pack("{s:s,s:o}", "type", "Buffer", "data", bytes);
    }
    json_t *c = json_object();
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) json_object_set_new(c, k, ts_adp_rreq_buffers(x, attach, nattach));
    return c;
}

/* m's value (undefined: null; binaries as Node's JSON of a Buffer) at the
 * end of res->answers. */
static void append_answer(ts_adp_result_t *res, const ts_adp_rmsg_t *m) {
    if (!res->answers) res->answers = json_array();
    json_array_append_new(res->answers, m->data ? ts_adp_rreq_buffers(m->data, m->attach, m->nattach)
                                                : json_null());
}

int ts_adp_rreq_collect(ts_adp_result_t *res, ts_adp_req_kind_t kind, const ts_adp_rmsg_t *m) {
    if (kind == TS_ADP_REQ_FETCH_SOCKETS && m->kind == TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE) {
        if (!res->sockets) res->sockets = json_array();
        for (size_t i = 0; i < m->nsockets; i++) {
            const ts_adp_rmsg_sock_t *s = &m->sockets[i];
            json_t *rooms = json_array();
            for (size_t k = 0; k < s->rooms.n; k++)
                json_array_append_new(rooms, json_string(s->rooms.v[k]));
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(s->id));
            /* undefined (a peer may send a socket without them): no member,
             * as JSON.stringify leaves it out */
            if (s->handshake)
                json_object_set_new(o, "handshake",
                                    ts_adp_rreq_buffers(s->handshake, m->attach, m->nattach));
            json_object_set_new(o, "rooms", rooms);
            if (s->data) json_object_set_new(o, "data", ts_adp_rreq_buffers(s->data, m->attach, m->nattach));
            json_array_append_new(res->sockets, o);
        }
        res->answered++;
        return 1;
    }
    if (kind == TS_ADP_REQ_BROADCAST_ACK && m->kind == TS_ADP_RMSG_BROADCAST_CLIENT_COUNT) {
        res->clients += m->client_count;
        res->answered++;
        return 1;
    }
    if (kind == TS_ADP_REQ_BROADCAST_ACK && m->kind == TS_ADP_RMSG_BROADCAST_ACK) {
        append_answer(res, m); /* a client's, not a node's: `answered` counts nodes */
        return 1;
    }
    if (kind == TS_ADP_REQ_ALL_ROOMS && m->kind == TS_ADP_RMSG_ALL_ROOMS_RESPONSE) {
        if (!res->rooms) res->rooms = json_object();
        for (size_t i = 0; i < m->rooms.n; i++) json_object_set_new(res->rooms, m->rooms.v[i], json_null());
        res->answered++;
        return 1;
    }
    if (kind == TS_ADP_REQ_SERVER_SIDE_EMIT && m->kind == TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE) {
        append_answer(res, m);
        res->answered++;
        return 1;
    }
    return 0;
}
