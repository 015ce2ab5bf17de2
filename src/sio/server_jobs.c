/* server_jobs.c - the other nodes' requests (fetchSockets, socketsJoin,
 * serverSideEmit, broadcasts with acks...) and this process's own
 * (ts_sio__local_request), run on every loop's sockets as jobs: each loop
 * adds its part, the last one answers once for the process. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapter/ts_adp_remote.h"
#include "adapter/ts_adp_rooms.h"
#include "adapter/ts_adp_rreq.h"
#include "core/ts_err.h"
#include "core/ts_list.h"
#include "core/ts_map.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "metrics/ts_met.h"
#include "sio/request_int.h"
#include "sio/ts_sio.h"

/* ---- the other nodes' requests ----
 * Heard by the listener loop and run on every loop of the process (each
 * holds its own sockets): a job goes into each loop's queue, each loop adds
 * its part of the answer under the job's mutex, and the last one answers
 * once for the process through its own adapter handle, as one Node server
 * answers once for its sockets. Nothing of a job is shared but its copied
 * strings (read-only), its attachments (atomic refcounts) and the result;
 * every loop makes its own copy of the event's arguments. A request of this
 * process (ts_sio__local_request, request.c) runs the same way; its result
 * goes back to the loop that made it instead of to another node. */

typedef struct job {
    pthread_mutex_t mu;
    size_t pending;            /* loops that have not run it yet */
    ts_adp_req_kind_t kind;
    char *nsp, *request_id, *requester, *sid;
    char **rooms, **except, **names;
    size_t nrooms, nexcept, nnames;
    int close;
    json_t *data;              /* read-only once queued */
    ts_buf_t **attach;
    size_t nattach;
    uint64_t timeout_ms;
    int ack;                   /* a BROADCAST_ACK of this process: acks wanted */
    /* the answer, under mu */
    json_t *list;              /* FETCH_SOCKETS, SOCKETS: array; ALL_ROOMS: object as a set;
                                  a BROADCAST_ACK of this process: the clients' acks */
    uint64_t count;            /* BROADCAST_ACK: clients reached */
    int found;                 /* the one-socket forms: some loop has it */
    /* a request of this process: its loop, and who takes the result there */
    ts_sio_server_t *origin;   /* NULL: another node's request */
    size_t origin_idx;
    ts_sio__local_cb on_local;
    void *local_ud;
} job_t;

typedef struct job_ref {
    ts_list_t link;
    job_t *job;
    int finished;              /* every loop ran it: the result for its origin */
} job_ref_t;

static void job_free(job_t *j) {
    pthread_mutex_destroy(&j->mu);
    free(j->nsp);
    free(j->request_id);
    free(j->requester);
    free(j->sid);
    ts_sio__strv_free(j->rooms, j->nrooms);
    ts_sio__strv_free(j->except, j->nexcept);
    ts_sio__strv_free(j->names, j->nnames);
    json_decref(j->data);
    for (size_t i = 0; i < j->nattach; i++) ts_buf_unref(j->attach[i]);
    free(j->attach);
    json_decref(j->list);
    free(j);
}

static char *strdup_or_null(const char *v) { return v ? ts_xstrdup(v) : NULL; }

static void answer(ts_sio_server_t *srv, const ts_adp_answer_t *a) {
    ts_adp_remote_t *r = srv->remote;
    if (!r || !a->request_id) return; /* this loop no longer talks to the other nodes */
    if (r->ops->answer(r->self, a) != 0) TS_MET_INC(SIO_REMOTE_SEND_FAILED);
}

/* A request of this process: the result goes to the loop that made it. */
static void job_return(ts_sio_server_t *srv, job_t *j) {
    if (srv == j->origin) {
        j->on_local(j->list, (size_t)j->count, j->local_ud);
        job_free(j);
        return;
    }
    ts_sio_group_t *g = srv->group;
    pthread_mutex_lock(&g->mu);
    ts_sio_server_t *o = g->srvs[j->origin_idx];
    int alive = o == j->origin; /* read before handing over: the job is its loop's after */
    if (alive) {
        job_ref_t *r = ts_xcalloc(1, sizeof *r);
        r->job = j;
        r->finished = 1;
        pthread_mutex_lock(&o->jobs_mu);
        ts_list_insert_tail(&o->jobs, &r->link);
        pthread_mutex_unlock(&o->jobs_mu);
        uv_async_send(&o->bus);
    }
    pthread_mutex_unlock(&g->mu);
    if (!alive) job_free(j); /* its loop is gone (shutting down): nobody to tell */
}

/* The last loop that ran `j` answers for the process. */
static void job_finish(ts_sio_server_t *srv, job_t *j) {
    if (j->origin) {
        job_return(srv, j);
        return;
    }
    ts_adp_answer_t a = {.kind = j->kind, .nsp = j->nsp, .request_id = j->request_id,
                         .requester = j->requester};
    switch (j->kind) {
    case TS_ADP_REQ_FETCH_SOCKETS:
    case TS_ADP_REQ_SOCKETS:
        a.list = j->list;
        answer(srv, &a);
        break;
    case TS_ADP_REQ_ALL_ROOMS: {
        json_t *arr = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(j->list, k, v) json_array_append_new(arr, json_string(k));
        a.list = arr;
        answer(srv, &a);
        json_decref(arr);
        break;
    }
    case TS_ADP_REQ_SOCKETS_JOIN:
    case TS_ADP_REQ_SOCKETS_LEAVE:
    case TS_ADP_REQ_DISCONNECT_SOCKETS:
        if (j->sid && j->found) answer(srv, &a); /* only the node that has it answers */
        break;
    case TS_ADP_REQ_BROADCAST_ACK:
        a.client_count = j->count;
        answer(srv, &a);
        break;
    default:
        break;
    }
    job_free(j);
}

static void job_done(ts_sio_server_t *srv, job_t *j) {
    pthread_mutex_lock(&j->mu);
    int last = --j->pending == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) job_finish(srv, j);
}

typedef struct {
    ts_sio_socket_t **v;
    size_t n, cap;
} sock_vec_t;

static void collect_visit(ts_adp_sock_t *a, void *ud) {
    sock_vec_t *x = ud;
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 16;
        x->v = ts_xrealloc(x->v, x->cap * sizeof *x->v);
    }
    x->v[x->n++] = ts_sio__sock_of(a);
}

/* This loop's sockets a job targets. */
static void job_targets(ts_sio_nsp_t *nsp, const job_t *j, sock_vec_t *out) {
    if (j->sid) {
        ts_sio_socket_t *s = ts_sio__by_id(nsp, j->sid);
        if (s) collect_visit(&s->adp, out);
        return;
    }
    ts_adp_each(&nsp->rooms, (const char *const *)j->rooms, j->nrooms,
                (const char *const *)j->except, j->nexcept, NULL, collect_visit, out);
}

/* socket.handshake as Node describes a socket to the other nodes (what
 * tabsyncd keeps of the connection: no headers but the User-Agent). */
static json_t *handshake_json(const ts_sio_socket_t *s) {
    ts_eio_sock_t *e = ts_sio__client_eio(s->c);
    uint64_t at = s->c->created_ms;
    time_t t = (time_t)(at / 1000);
    struct tm tm;
    char when[96] = "";
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)",
                 &tm);
    json_t *headers = json_object();
    const char *ua = ts_eio_sock_user_agent(e);
    if (ua) json_object_set_new(headers, "user-agent", json_string(ua));
    return json_pack("{s:o,s:s,s:s,s:b,s:b,s:I,s:s,s:{s:s,s:s},s:o}", "headers", headers,
                     "time", when, "address", ts_eio_sock_peer(e), "xdomain", 0, "secure", 0,
                     "issued", (json_int_t)at, "url", "/socket.io/", "query", "EIO", "4",
                     "transport", ts_eio_sock_transport(e), "auth", json_deep_copy(s->auth));
}

static json_t *rooms_json(const ts_sio_socket_t *s) {
    size_t n = ts_adp_sock_rooms(&s->adp, NULL, 0);
    const char **names = ts_xmalloc(n * sizeof *names);
    ts_adp_sock_rooms(&s->adp, names, n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_string(names[i]));
    free(names);
    return arr;
}

/* One loop's acknowledgements of a broadcast with acks. */
typedef struct ack_req {
    size_t refs;
    char *nsp, *request_id, *requester;
} ack_req_t;

static void ack_req_unref(ack_req_t *q) {
    if (--q->refs) return;
    free(q->nsp);
    free(q->request_id);
    free(q->requester);
    free(q);
}

static void on_client_ack(ts_sio_socket_t *s, const ts_sio_args_t *ans, int timed_out, void *ud) {
    ack_req_t *q = ud;
    if (timed_out == 0) { /* the requester takes the first argument, as Node's adapters do */
        ts_adp_answer_t a = {.kind = TS_ADP_REQ_BROADCAST_ACK, .nsp = q->nsp,
                             .request_id = q->request_id, .requester = q->requester,
                             .is_ack = 1, .data = json_array_get(ans->args, 0),
                             .attach = ans->attach, .nattach = ans->nattach};
        answer(ts_sio__client_srv(s->c), &a);
    }
    ack_req_unref(q);
}

#define REMOTE_ACK_TIMEOUT_MS 60000 /* a broadcast with acks that names no timeout */
#define OWN_ACK_TIMEOUT_MS 5000     /* ours: Node's requestsTimeout, as the other nodes' part */

/* A broadcast job's event name, or NULL; *args gets a copy of its
 * arguments (this loop's own: other loops read j->data), to release with
 * json_decref(args->args). */
static const char *job_event(const job_t *j, ts_sio_args_t *args) {
    const char *event = json_string_value(json_array_get(j->data, 0));
    if (!event) return NULL;
    json_t *data = json_deep_copy(j->data);
    json_array_remove(data, 0);
    *args = (ts_sio_args_t){data, j->attach, j->nattach};
    return event;
}

/* The time a broadcast's clients have to answer: the request's, or `dflt`. */
static uint32_t job_ack_ms(const job_t *j, uint32_t dflt) {
    return j->timeout_ms && j->timeout_ms < UINT32_MAX ? (uint32_t)j->timeout_ms : dflt;
}

static void job_broadcast_ack(ts_sio_nsp_t *nsp, job_t *j, sock_vec_t *v) {
    ts_sio_args_t args;
    const char *event = v->n ? job_event(j, &args) : NULL;
    if (!event) return;
    ack_req_t *q = ts_xcalloc(1, sizeof *q);
    q->refs = v->n + 1;
    q->nsp = ts_xstrdup(nsp->name);
    q->request_id = ts_xstrdup(j->request_id);
    q->requester = strdup_or_null(j->requester);
    uint32_t ms = job_ack_ms(j, REMOTE_ACK_TIMEOUT_MS);
    for (size_t i = 0; i < v->n; i++) ts_sio_emit_ack(v->v[i], event, &args, ms, on_client_ack, q);
    ack_req_unref(q);
    json_decref(args.args);
}

/* One loop's part of a broadcast of this process: its clients' acks go
 * into the job's list; the loop's part is done when the last one answered,
 * timed out or disconnected (one reference is the emitting loop's). */
typedef struct own_acks {
    job_t *j;
    ts_sio_server_t *srv;
    size_t left;
} own_acks_t;

static void own_acks_release(own_acks_t *w) {
    if (--w->left) return;
    ts_sio_server_t *srv = w->srv;
    job_t *j = w->j;
    free(w);
    job_done(srv, j);
}

static void on_own_ack(ts_sio_socket_t *s, const ts_sio_args_t *ans, int timed_out, void *ud) {
    (void)s;
    own_acks_t *w = ud;
    if (timed_out == 0) { /* its first argument, as a broadcast's ack callback gets it */
        json_t *first = json_array_get(ans->args, 0);
        json_t *v = first ? ts_adp_rreq_buffers(first, ans->attach, ans->nattach) : json_null();
        pthread_mutex_lock(&w->j->mu);
        json_array_append_new(w->j->list, v);
        pthread_mutex_unlock(&w->j->mu);
    }
    own_acks_release(w);
}

/* Emits a broadcast of this process to this loop's targets; with acks,
 * returns what waits for them (NULL: nothing to wait for). */
static own_acks_t *own_broadcast(ts_sio_server_t *srv, job_t *j, sock_vec_t *v) {
    ts_sio_args_t args;
    const char *event = v->n ? job_event(j, &args) : NULL;
    if (!event) return NULL;
    own_acks_t *w = NULL;
    if (j->ack) {
        w = ts_xcalloc(1, sizeof *w);
        w->j = j;
        w->srv = srv;
        w->left = v->n + 1; /* + this loop's, until every emit is made */
    }
    uint32_t ms = job_ack_ms(j, OWN_ACK_TIMEOUT_MS);
    for (size_t i = 0; i < v->n; i++) {
        if (w) ts_sio_emit_ack(v->v[i], event, &args, ms, on_own_ack, w);
        else ts_sio_emit(v->v[i], event, &args);
    }
    json_decref(args.args);
    return w;
}

/* Runs `j` on this loop's sockets, then counts this loop done. */
static void job_run(ts_sio_server_t *srv, job_t *j) {
    ts_sio_nsp_t *nsp = ts_map_get(&srv->nsps, j->nsp, strlen(j->nsp));
    sock_vec_t v = {0};
    if (nsp) job_targets(nsp, j, &v);
    json_t *part = NULL;
    char **ids = NULL;
    own_acks_t *acks = NULL; /* a broadcast of ours with acks: this loop is done later */
    switch (nsp ? j->kind : TS_ADP_REQ_KIND_COUNT) {
    case TS_ADP_REQ_FETCH_SOCKETS:
    case TS_ADP_REQ_SOCKETS:
        part = json_array();
        for (size_t i = 0; i < v.n; i++) {
            ts_sio_socket_t *s = v.v[i];
            if (j->kind == TS_ADP_REQ_SOCKETS)
                json_array_append_new(part, json_string(s->adp.id));
            else
                json_array_append_new(part, json_pack("{s:s,s:o,s:o,s:{}}", "id", s->adp.id,
                                                      "handshake", handshake_json(s), "rooms",
                                                      rooms_json(s), "data"));
        }
        break;
    case TS_ADP_REQ_ALL_ROOMS:
        part = json_object();
        for (size_t i = 0; i < v.n; i++) {
            json_t *rooms = rooms_json(v.v[i]);
            size_t k;
            json_t *r;
            json_array_foreach(rooms, k, r) json_object_set(part, json_string_value(r), json_null());
            json_decref(rooms);
        }
        break;
    case TS_ADP_REQ_SOCKETS_JOIN:
    case TS_ADP_REQ_SOCKETS_LEAVE:
    case TS_ADP_REQ_DISCONNECT_SOCKETS:
        /* by id: joining, leaving and disconnecting change the index */
        ids = ts_xmalloc((v.n + 1) * sizeof *ids);
        for (size_t i = 0; i < v.n; i++) ids[i] = ts_xstrdup(v.v[i]->adp.id);
        for (size_t i = 0; i < v.n; i++) {
            ts_sio_socket_t *s = ts_sio__by_id(nsp, ids[i]);
            for (size_t k = 0; s && k < j->nnames && j->kind != TS_ADP_REQ_DISCONNECT_SOCKETS; k++)
                (j->kind == TS_ADP_REQ_SOCKETS_JOIN ? ts_sio_join : ts_sio_leave)(s, j->names[k]);
            if (s && j->kind == TS_ADP_REQ_DISCONNECT_SOCKETS) ts_sio_disconnect(s, j->close);
        }
        ts_sio__strv_free(ids, v.n);
        break;
    case TS_ADP_REQ_BROADCAST_ACK:
        if (j->origin) acks = own_broadcast(srv, j, &v);
        else job_broadcast_ack(nsp, j, &v);
        break;
    default:
        break;
    }
    pthread_mutex_lock(&j->mu);
    if (part && json_is_array(part)) json_array_extend(j->list, part);
    if (part && json_is_object(part)) json_object_update(j->list, part);
    j->count += v.n;
    j->found |= v.n > 0;
    pthread_mutex_unlock(&j->mu);
    json_decref(part);
    free(v.v);
    if (acks) own_acks_release(acks);
    else job_done(srv, j);
}

/* Runs the jobs other loops queued for this one. */
void ts_sio__run_jobs(ts_sio_server_t *srv) {
    ts_list_t q;
    ts_list_init(&q);
    pthread_mutex_lock(&srv->jobs_mu);
    while (!ts_list_empty(&srv->jobs)) {
        ts_list_t *it = srv->jobs.next;
        ts_list_remove(it);
        ts_list_insert_tail(&q, it);
    }
    pthread_mutex_unlock(&srv->jobs_mu);
    while (!ts_list_empty(&q)) {
        job_ref_t *r = ts_list_entry(q.next, job_ref_t, link);
        ts_list_remove(&r->link);
        if (r->finished) job_return(srv, r->job); /* srv is its origin */
        else if (srv->group->srvs[srv->idx] && (srv->remote || r->job->origin))
            job_run(srv, r->job);
        else job_done(srv, r->job); /* shutting down: this loop has no part */
        free(r);
    }
}

/* A job of `req` (borrowed; everything copied) on namespace `nsp`. */
static job_t *job_new(const ts_adp_req_t *req, const char *nsp) {
    job_t *j = ts_xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->kind = req->kind;
    j->nsp = ts_xstrdup(nsp);
    j->request_id = strdup_or_null(req->request_id);
    j->requester = strdup_or_null(req->requester);
    j->sid = strdup_or_null(req->sid);
    j->rooms = ts_sio__strv_copy(req->rooms, req->nrooms);
    j->nrooms = req->nrooms;
    j->except = ts_sio__strv_copy(req->except, req->nexcept);
    j->nexcept = req->nexcept;
    j->names = ts_sio__strv_copy(req->names, req->nnames);
    j->nnames = req->nnames;
    j->close = req->close;
    j->data = req->data ? json_deep_copy(req->data) : NULL;
    if (req->nattach) {
        j->attach = ts_xmalloc(req->nattach * sizeof *j->attach);
        for (size_t i = 0; i < req->nattach; i++) j->attach[i] = ts_buf_ref(req->attach[i]);
        j->nattach = req->nattach;
    }
    j->timeout_ms = req->timeout_ms;
    j->list = j->kind == TS_ADP_REQ_ALL_ROOMS ? json_object() : json_array();
    return j;
}

/* Runs `j` on every loop of the process, this one first. */
static void job_start(ts_sio_server_t *srv, job_t *j) {
    /* every loop alive gets it; a loop freed meanwhile counts itself done */
    ts_sio_group_t *g = srv->group;
    j->pending = 1;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->nloops; i++) {
        ts_sio_server_t *o = g->srvs[i];
        if (i == srv->idx || !o) continue;
        job_ref_t *r = ts_xcalloc(1, sizeof *r);
        r->job = j;
        pthread_mutex_lock(&j->mu);
        j->pending++;
        pthread_mutex_unlock(&j->mu);
        pthread_mutex_lock(&o->jobs_mu);
        ts_list_insert_tail(&o->jobs, &r->link);
        pthread_mutex_unlock(&o->jobs_mu);
        uv_async_send(&o->bus);
    }
    pthread_mutex_unlock(&g->mu);
    job_run(srv, j);
}

int ts_sio__local_request(ts_sio_server_t *srv, const ts_adp_req_t *req, int ack,
                          ts_sio__local_cb cb, void *ud) {
    switch (req->kind) {
    case TS_ADP_REQ_BROADCAST_ACK:
    case TS_ADP_REQ_ALL_ROOMS:
    case TS_ADP_REQ_FETCH_SOCKETS:
    case TS_ADP_REQ_SOCKETS_JOIN:
    case TS_ADP_REQ_SOCKETS_LEAVE:
    case TS_ADP_REQ_DISCONNECT_SOCKETS: break;
    default: return TS_EINVAL;
    }
    if (!srv->group->srvs[srv->idx]) return TS_ECLOSED;
    ts_adp_req_t q = *req;
    q.request_id = q.requester = q.sid = NULL; /* nobody to answer: the result comes back */
    job_t *j = job_new(&q, req->nsp);
    j->ack = ack;
    j->origin = srv;
    j->origin_idx = srv->idx;
    j->on_local = cb;
    j->local_ud = ud;
    job_start(srv, j);
    return 0;
}

ts_adp_remote_t *ts_sio__remote(const ts_sio_server_t *srv) { return srv->remote; }

/* A request of another node, on the listener loop. */
void ts_sio__on_request(const ts_adp_req_t *req, void *ud) {
    ts_sio_nsp_t *nsp = ud;
    ts_sio_server_t *srv = nsp->srv;
    if (req->kind == TS_ADP_REQ_SERVER_SIDE_EMIT) {
        /* tabsyncd has no server-side event handlers: counted by the
         * adapter, and acknowledged at once without a value when an ack is
         * wanted, so that the requester does not wait for us until its
         * timeout (docs/REDIS-WIRE.md) */
        ts_adp_answer_t a = {.kind = req->kind, .nsp = nsp->name, .request_id = req->request_id,
                             .requester = req->requester};
        answer(srv, &a);
        return;
    }
    job_start(srv, job_new(req, nsp->name));
}
