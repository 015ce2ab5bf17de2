/* request.c - server-side requests made by this process (ts_sio_request):
 * what Node's io.fetchSockets(), socketsJoin/Leave, disconnectSockets,
 * serverSideEmit, io.emit() with or without acks and the adapter's
 * allRooms do, in two parts run side by side: this process's sockets on
 * every loop (server_jobs.c, the path another node's request takes) and
 * the other nodes (the adapter's `request`); the result is the two
 * combined, on the loop that asked, local sockets (and their acks) first
 * as Node lists them. */
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "sio/request_int.h"

typedef struct sreq {
    unsigned parts;          /* parts not done, + 1 while ts_sio_request runs */
    ts_adp_req_kind_t kind;
    ts_sio_result_cb cb;
    void *ud;
    ts_sio_result_t res;
    int ack;
    json_t *remote;          /* the other nodes' sockets (FETCH_SOCKETS) or answers
                                (SERVER_SIDE_EMIT, BROADCAST_ACK), after this process's */
    json_t *rooms;           /* ALL_ROOMS: the set of both parts' rooms */
} sreq_t;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of the set `set`, sorted, as a new array. */
static json_t *sorted_keys(json_t *set) {
    size_t n = json_object_size(set), i = 0;
    const char **keys = ts_xmalloc((n ? n : 1) * sizeof *keys);
    const char *k;
    json_t *v;
    json_object_foreach(set, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    json_t *arr = json_array();
    for (i = 0; i < n; i++) json_array_append_new(arr, json_string(keys[i]));
    free(keys);
    return arr;
}

/* The list of this process's part (a new one when there was none) and the
 * other nodes' after it. */
static json_t *joined(json_t *here, json_t *there) {
    if (!here) here = json_array();
    if (there) json_array_extend(here, there);
    return here;
}

static void part_done(sreq_t *q) {
    if (--q->parts) return;
    switch (q->kind) {
    case TS_ADP_REQ_FETCH_SOCKETS: q->res.sockets = joined(q->res.sockets, q->remote); break;
    case TS_ADP_REQ_SERVER_SIDE_EMIT: q->res.answers = joined(NULL, q->remote); break;
    case TS_ADP_REQ_BROADCAST_ACK:
        if (q->ack) q->res.answers = joined(q->res.answers, q->remote);
        q->res.clients += q->res.local;
        /* a client that did not answer in time: what came is the answer */
        if (q->ack && json_array_size(q->res.answers) < q->res.clients) q->res.timed_out = 1;
        break;
    case TS_ADP_REQ_ALL_ROOMS: q->res.rooms = sorted_keys(q->rooms); break;
    default: break;
    }
    q->cb(&q->res, q->ud);
    json_decref(q->res.sockets);
    json_decref(q->res.answers);
    json_decref(q->res.rooms);
    json_decref(q->remote);
    json_decref(q->rooms);
    free(q);
}

static void on_local(json_t *list, size_t matched, void *ud) {
    sreq_t *q = ud;
    q->res.local = matched;
    /* a copy: the list belongs to a job other loops filled */
    if (q->kind == TS_ADP_REQ_FETCH_SOCKETS) q->res.sockets = json_deep_copy(list);
    if (q->kind == TS_ADP_REQ_BROADCAST_ACK && q->ack) q->res.answers = json_deep_copy(list);
    if (q->kind == TS_ADP_REQ_ALL_ROOMS) json_object_update(q->rooms, list);
    part_done(q);
}

static void on_remote(const ts_adp_result_t *r, void *ud) {
    sreq_t *q = ud;
    q->res.status = r->status;
    q->res.nodes = r->nodes;
    q->res.answered = r->answered;
    q->res.timed_out = r->timed_out;
    q->res.clients += r->clients;
    q->remote = json_incref(r->sockets ? r->sockets : r->answers);
    if (r->rooms) json_object_update(q->rooms, r->rooms);
    part_done(q);
}

int ts_sio_request(ts_sio_server_t *srv, const ts_adp_req_t *req, int ack, uint64_t timeout_ms,
                   ts_sio_result_cb cb, void *ud) {
    int local = 1;
    switch (req->kind) {
    case TS_ADP_REQ_ALL_ROOMS:
    case TS_ADP_REQ_FETCH_SOCKETS:
    case TS_ADP_REQ_SOCKETS_JOIN:
    case TS_ADP_REQ_SOCKETS_LEAVE:
    case TS_ADP_REQ_DISCONNECT_SOCKETS: break;
    case TS_ADP_REQ_SERVER_SIDE_EMIT:
        if (!json_is_string(json_array_get(req->data, 0))) return TS_EINVAL;
        local = 0; /* Node's serverSideEmit is for the other servers only */
        break;
    case TS_ADP_REQ_BROADCAST_ACK:
        if (!json_is_string(json_array_get(req->data, 0))) return TS_EINVAL;
        break;
    default: return TS_EINVAL;
    }
    if (!req->nsp || !cb) return TS_EINVAL;
    sreq_t *q = ts_xcalloc(1, sizeof *q);
    q->parts = 1;
    q->kind = req->kind;
    q->cb = cb;
    q->ud = ud;
    q->ack = ack;
    if (req->kind == TS_ADP_REQ_ALL_ROOMS) q->rooms = json_object();
    ts_adp_req_t local_req = *req;
    local_req.timeout_ms = timeout_ms; /* a broadcast's clients wait as long here */
    ts_adp_remote_t *r = ts_sio__remote(srv);
    if (r && r->ops->request) {
        q->res.remote = 1;
        q->parts++;
        int rc = r->ops->request(r->self, req, ack, timeout_ms, on_remote, q);
        if (rc) {
            q->parts--;
            if (rc == TS_EINVAL && req->kind == TS_ADP_REQ_ALL_ROOMS)
                q->res.remote = 0; /* the adapter's format has no such request (sharded) */
            else
                q->res.status = rc;
        }
    }
    if (local) {
        q->parts++;
        if (ts_sio__local_request(srv, &local_req, ack, on_local, q) != 0) q->parts--;
    }
    part_done(q);
    return 0;
}
