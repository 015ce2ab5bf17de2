/* redis.c - the Redis adapter (ts_adp_redis.h): broadcasts to and from the
 * other nodes and their server-side requests, in @socket.io/redis-adapter's
 * classic or sharded format, through the store's publish/subscribe.
 *
 * Every subscription is a sub_t: the namespace's own channels (made by
 * `listen` on the listener loop) and, sharded in a dynamic mode, one per
 * room this loop has sockets in (made by `room` on that loop, so each loop
 * hears its own rooms and delivers them to its own sockets: no loop hears a
 * room message twice). A sub_t is freed once the store answered both its
 * subscribe and its unsubscribe: until then a message for it is dropped.
 *
 * A request of ours is a pend_t: held until this loop hears the
 * namespace's response channels (subscribed at its first request), then
 * the other nodes are counted (PUBSUB NUMSUB / SHARDNUMSUB, as Node counts
 * them) and it is published; its answers are counted until every other
 * node answered or its timer fires. */
#include "adapter/ts_adp_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "adapter/ts_adp_rreq.h"
#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_map.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "metrics/ts_met.h"

typedef struct sub {
    ts_list_t link;         /* in a->subs while subscribed */
    struct radp *a;
    ts_adp_listener_t l;
    ts_store_chan_t kind;
    char *nsp;
    char *room;             /* a room's own channel (sharded, dynamic), else NULL */
    char *chan;
    char *key;              /* rooms: "<nsp>\n<room>", the key in a->rooms */
    int gone;               /* unsubscribed: drop what still comes */
    int resp;               /* a response channel of this loop's requests */
    unsigned pending;       /* store callbacks not yet received */
} sub_t;

typedef struct radp {
    ts_store_t *store;
    char uid[TS_ADP_REDIS_UID_LEN + 1];
    char prefix[64];
    ts_adp_rmsg_format_t format;
    ts_adp_rmsg_cfg_t cfg;
    ts_list_t subs;
    ts_map_t rooms;         /* key -> sub_t: this loop's room channels */
    int closing;
    size_t live;            /* sub_t not yet freed */
    uint64_t requests[TS_ADP_REQ_KIND_COUNT]; /* heard, by kind (logged at close) */
    uv_loop_t *loop;        /* timers of our requests */
    ts_map_t resps;         /* nsp -> resp_t: this loop's response channels */
    ts_map_t pending;       /* request id -> pend_t: ours, published, awaiting answers */
    ts_list_t pends;        /* pend_t.alink: ours whose callback has not run */
} radp_t;

void ts_adp_redis_uid(char out[TS_ADP_REDIS_UID_LEN + 1]) {
    ts_random_id(out, TS_ADP_REDIS_UID_LEN);
    out[TS_ADP_REDIS_UID_LEN] = '\0';
}

static void maybe_free(radp_t *a) {
    if (!a->closing || a->live) return;
    ts_map_deinit(&a->rooms);
    ts_map_deinit(&a->resps);
    ts_map_deinit(&a->pending);
    free(a);
}

static void sub_release(sub_t *s) {
    if (--s->pending) return;
    radp_t *a = s->a;
    free(s->nsp);
    free(s->room);
    free(s->chan);
    free(s->key);
    free(s);
    a->live--;
    maybe_free(a);
}

/* ---- what comes from the other nodes ---- */

static void collect(radp_t *a, const ts_adp_rmsg_t *m);
static void resp_subscribed(radp_t *a, const char *nsp, int status);

/* Rooms read before a classic broadcast is decoded (a /session entry names
 * two); a broadcast to more is decoded whole. */
#define ROOMS_PEEK 8

static void on_msg(ts_slice_t channel, ts_buf_t *bytes, void *ud) {
    sub_t *s = ud;
    radp_t *a = s->a;
    if (a->closing || s->gone) return;
    ts_adp_rmsg_t m;
    char err[160];
    if (ts_adp_rmsg_is_from(a->format, ts_buf_slice(bytes), a->uid)) return; /* our own */
    ts_slice_t rooms[ROOMS_PEEK];
    size_t nrooms;
    if (!s->resp && !s->room && s->l.wants &&
        ts_adp_rmsg_peek_rooms(a->format, ts_buf_slice(bytes), rooms, ROOMS_PEEK, &nrooms) &&
        nrooms && !s->l.wants(rooms, nrooms, s->l.ud)) {
        TS_MET_INC(SIO_REMOTE_SKIPPED);
        return;
    }
    if (ts_adp_rmsg_decode_text(&a->cfg, a->format, channel, ts_buf_slice(bytes), &m, err,
                                sizeof err) != 0) {
        TS_MET_INC(SIO_REMOTE_BAD);
        ts_debug("adapter", "a message on %.*s could not be read: %s", (int)channel.len,
                 (const char *)channel.p, err);
        return;
    }
    if ((m.uid && strcmp(m.uid, a->uid) == 0) || (m.nsp && strcmp(m.nsp, s->nsp) != 0)) {
        ts_adp_rmsg_clear(&m); /* our own, or another namespace's */
        return;
    }
    if (s->resp) {
        collect(a, &m);
        ts_adp_rmsg_clear(&m);
        return;
    }
    ts_adp_req_t req;
    if (m.kind == TS_ADP_RMSG_BROADCAST && (m.packet.data || m.packet.data_text)) {
        ts_slice_t items[TS_ADP_RMSG_ITEMS_MAX];
        size_t nitems = m.packet.data_text ? m.packet.nitems : 0;
        for (size_t i = 0; i < nitems; i++)
            items[i] = ts_slice(m.packet.data_text->data + m.packet.items[i].at,
                                m.packet.items[i].len);
        ts_adp_bcast_t b = {.nsp = s->nsp,
                            .items = items,
                            .nitems = nitems,
                            .data = m.packet.data,
                            .data_json = m.packet.data_text ? ts_buf_slice(m.packet.data_text)
                                                            : ts_slice(NULL, 0),
                            .attach = m.attach,
                            .nattach = m.nattach,
                            .rooms = (const char *const *)m.opts.rooms.v,
                            .nrooms = m.opts.rooms.n,
                            .except = (const char *const *)m.opts.except.v,
                            .nexcept = m.opts.except.n,
                            .is_volatile = !!(m.opts.flags & TS_ADP_RMSG_F_VOLATILE),
                            .this_loop = s->room != NULL};
        s->l.on_bcast(&b, s->l.ud);
    } else if (!s->room && s->l.on_request && ts_adp_rreq_of(&m, a->uid, &req)) {
        req.nsp = s->nsp;
        a->requests[req.kind]++;
        ts_debug("adapter", "%s: %s from %s", s->nsp, ts_adp_req_kind_name(req.kind),
                 req.requester);
        s->l.on_request(&req, s->l.ud);
    }
    /* responses are heard on the response channels (s->resp) */
    ts_adp_rmsg_clear(&m);
}

static void on_subscribed(int status, void *ud) {
    sub_t *s = ud;
    if (s->resp && !s->gone) resp_subscribed(s->a, s->nsp, status);
    if (status && status != TS_ECLOSED && !s->gone)
        ts_warn("adapter", "%s: cannot subscribe to %s: %s (what the other nodes send there is "
                           "not heard)", s->nsp, s->chan, ts_strerror(status));
    sub_release(s);
}

static void on_unsubscribed(int status, void *ud) {
    (void)status; /* TS_ECLOSED: the store went first, its subscriptions with it */
    sub_release(ud);
}

/* Subscribes `chan` (taken) for namespace `nsp`; NULL on failure. */
static sub_t *sub_open(radp_t *a, ts_store_chan_t kind, char *chan, const char *nsp,
                       const char *room, const ts_adp_listener_t *l) {
    sub_t *s = ts_xcalloc(1, sizeof *s);
    s->a = a;
    s->l = *l;
    s->kind = kind;
    s->nsp = ts_xstrdup(nsp);
    s->room = room ? ts_xstrdup(room) : NULL;
    s->chan = chan;
    s->pending = 2; /* the subscribe's callback, then the unsubscribe's */
    int rc = ts_store_subscribe(a->store, kind, ts_slice_str(chan), on_msg, s, on_subscribed, s);
    if (rc) {
        ts_warn("adapter", "%s: cannot subscribe to %s: %s", nsp, chan, ts_strerror(rc));
        free(s->nsp);
        free(s->room);
        free(s->chan);
        free(s);
        return NULL;
    }
    a->live++;
    ts_list_insert_tail(&a->subs, &s->link);
    return s;
}

static void sub_close(sub_t *s) {
    radp_t *a = s->a;
    s->gone = 1;
    ts_list_remove(&s->link);
    if (s->key) ts_map_del(&a->rooms, s->key, strlen(s->key));
    if (ts_store_unsubscribe(a->store, s->kind, ts_slice_str(s->chan), on_msg, s,
                             on_unsubscribed, s) != 0)
        sub_release(s); /* the store is closed: nothing comes any more */
}

static char *chan_printf(const char *fmt, const char *prefix, const char *nsp, const char *tail) {
    size_t n = strlen(prefix) + strlen(nsp) + (tail ? strlen(tail) : 0) + 16;
    char *c = ts_xmalloc(n);
    snprintf(c, n, fmt, prefix, nsp, tail ? tail : "");
    return c;
}

static int r_listen(void *self, const char *nsp, const ts_adp_listener_t *l) {
    radp_t *a = self;
    if (a->closing) return TS_ECLOSED;
    int ok;
    if (a->format == TS_ADP_RMSG_CLASSIC) {
        /* broadcasts (every room's channel too), then requests: Node counts
         * its peers by the subscribers of the request channel */
        ok = sub_open(a, TS_STORE_CHAN_PATTERN, chan_printf("%s#%s#*%s", a->prefix, nsp, NULL),
                      nsp, NULL, l) != NULL;
        ok &= sub_open(a, TS_STORE_CHAN, chan_printf("%s-request#%s#%s", a->prefix, nsp, NULL),
                       nsp, NULL, l) != NULL;
    } else {
        /* the main channel (SHARDNUMSUB counts us by it) and our own */
        ok = sub_open(a, TS_STORE_CHAN_SHARD, chan_printf("%s#%s#%s", a->prefix, nsp, NULL), nsp,
                      NULL, l) != NULL;
        ok &= sub_open(a, TS_STORE_CHAN_SHARD, chan_printf("%s#%s#%s#", a->prefix, nsp, a->uid),
                       nsp, NULL, l) != NULL;
    }
    return ok ? 0 : TS_ESTORE;
}

/* Does a room get a channel of its own? Where Node's sharded adapter
 * publishes a one-room broadcast (ts_adp_rmsg.h submode). */
static int room_has_channel(const radp_t *a, const char *room) {
    if (a->format != TS_ADP_RMSG_SHARDED) return 0;
    switch (a->cfg.submode) {
    case TS_ADP_RMSG_SUB_DYNAMIC: return strlen(room) != 20; /* not a socket id */
    case TS_ADP_RMSG_SUB_DYNAMIC_PRIVATE: return 1;
    default: return 0;
    }
}

static void r_room(void *self, const char *nsp, const char *room, int present,
                   const ts_adp_listener_t *l) {
    radp_t *a = self;
    if (a->closing || !room_has_channel(a, room)) return;
    char *key = chan_printf("%s\n%s%s", nsp, room, NULL);
    sub_t *s = ts_map_get(&a->rooms, key, strlen(key));
    if (present && !s) {
        s = sub_open(a, TS_STORE_CHAN_SHARD, chan_printf("%s#%s#%s#", a->prefix, nsp, room), nsp,
                     room, l);
        if (s) {
            s->key = key;
            ts_map_put(&a->rooms, s->key, strlen(s->key), s);
            return;
        }
    } else if (!present && s) {
        sub_close(s);
    }
    free(key);
}

/* ---- what goes to them ---- */

static void on_published(int status, void *ud) {
    (void)ud;
    if (status) TS_MET_INC(SIO_REMOTE_SEND_FAILED);
}

static int publish(radp_t *a, ts_adp_rmsg_wire_t *w) {
    ts_slice_t ch = ts_slice(w->channel->data, w->channel->len);
    if (ch.len && ch.p[ch.len - 1] == '\0') ch.len--; /* NUL-terminated, not part of the name */
    int rc = ts_store_publish(a->store,
                              a->format == TS_ADP_RMSG_SHARDED ? TS_STORE_CHAN_SHARD : TS_STORE_CHAN,
                              ch, w->bytes, on_published, NULL);
    ts_adp_rmsg_wire_clear(w);
    return rc;
}

static int r_broadcast(void *self, const ts_adp_bcast_t *b) {
    radp_t *a = self;
    if (a->closing) return TS_ECLOSED;
    ts_adp_rmsg_opts_t opts = {
        .rooms = {(char **)b->rooms, b->nrooms},
        .except = {(char **)b->except, b->nexcept},
        .flags = b->is_volatile ? TS_ADP_RMSG_F_VOLATILE : 0,
    };
    ts_adp_rmsg_wire_t w;
    char err[160];
    int rc = ts_adp_rmsg_encode_broadcast(
        &a->cfg, a->format, a->uid, b->nsp, NULL, b->data_json,
        b->data_canonical ? TS_ADP_RMSG_TEXT_CANONICAL : TS_ADP_RMSG_TEXT_ANY, b->attach, b->nattach,
        &opts, &w, err, sizeof err);
    if (rc) {
        ts_warn("adapter", "%s: a broadcast could not be encoded for the other nodes: %s", b->nsp,
                err);
        return rc;
    }
    return publish(a, &w);
}

static int r_answer(void *self, const ts_adp_answer_t *ans) {
    radp_t *a = self;
    if (a->closing) return TS_ECLOSED;
    ts_adp_rmsg_wire_t w;
    char err[160];
    int rc = ts_adp_rreq_encode_answer(&a->cfg, a->format, a->uid, ans, &w, err, sizeof err);
    if (rc == 1) return 0; /* this format has no such answer */
    if (rc) {
        ts_warn("adapter", "%s: an answer to %s could not be encoded: %s", ans->nsp,
                ts_adp_req_kind_name(ans->kind), err);
        return rc;
    }
    return publish(a, &w);
}

/* ---- requests of ours ---- */

#define REQ_TIMEOUT_MS 5000 /* Node's requestsTimeout */
#define REQ_ID_LEN 16

/* This loop's response channels of one namespace. */
typedef struct resp {
    int ready;              /* every subscription confirmed */
    unsigned unconfirmed;   /* subscriptions not confirmed yet */
    ts_list_t held;         /* pend_t.link: requests waiting for `ready` */
    char nsp[];
} resp_t;

typedef struct pend {
    ts_list_t link;         /* in a resp_t's held list while held */
    ts_list_t alink;        /* in a->pends until its callback ran */
    radp_t *a;
    unsigned refs;          /* 1 until its callback ran, + store callbacks due, + its timer */
    int done;               /* its callback ran */
    int want;               /* answers wanted */
    int held, registered, timer_on;
    ts_adp_req_kind_t kind;
    char id[REQ_ID_LEN + 1];
    char *nsp;
    ts_adp_rmsg_wire_t w;   /* the request as published */
    uint64_t timeout_ms;
    uv_timer_t timer;
    ts_adp_result_t res;
    ts_adp_result_cb cb;
    void *ud;
} pend_t;

static void pend_unref(pend_t *p) {
    if (--p->refs) return;
    radp_t *a = p->a;
    json_decref(p->res.sockets);
    json_decref(p->res.answers);
    json_decref(p->res.rooms);
    ts_adp_rmsg_wire_clear(&p->w);
    free(p->nsp);
    free(p);
    a->live--;
    maybe_free(a);
}

static void timer_closed(uv_handle_t *h) { pend_unref(h->data); }

/* Calls p's callback (once) and lets go of it. */
static void finish(pend_t *p, int status) {
    if (p->done) return;
    radp_t *a = p->a;
    p->done = 1;
    ts_list_remove(&p->alink);
    if (p->held) ts_list_remove(&p->link);
    p->held = 0;
    if (p->registered) ts_map_del(&a->pending, p->id, strlen(p->id));
    p->registered = 0;
    if (p->timer_on) {
        uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *)&p->timer, timer_closed); /* its reference goes there */
    }
    p->res.status = status;
    p->cb(&p->res, p->ud);
    pend_unref(p);
}

static void collect(radp_t *a, const ts_adp_rmsg_t *m) {
    pend_t *p = m->request_id ? ts_map_get(&a->pending, m->request_id, strlen(m->request_id))
                              : NULL;
    if (!p || !ts_adp_rreq_collect(&p->res, p->kind, m) || p->res.answered < p->res.nodes) return;
    /* a broadcast with acks: every node told its count, then every client answered */
    if (p->kind == TS_ADP_REQ_BROADCAST_ACK && json_array_size(p->res.answers) < p->res.clients)
        return;
    finish(p, 0);
}

static void on_timeout(uv_timer_t *t) {
    pend_t *p = t->data;
    p->res.timed_out = 1; /* answer with what came, as Node's serverSideEmit does */
    finish(p, 0);
}

static ts_store_chan_t pub_kind(const radp_t *a) {
    return a->format == TS_ADP_RMSG_SHARDED ? TS_STORE_CHAN_SHARD : TS_STORE_CHAN;
}

static void on_request_published(int status, void *ud) {
    pend_t *p = ud;
    if (status) TS_MET_INC(SIO_REMOTE_SEND_FAILED);
    if (status) finish(p, TS_ESTORE);
    else if (!p->want) finish(p, 0);
    pend_unref(p);
}

static void on_counted(int status, uint64_t n, void *ud) {
    pend_t *p = ud;
    radp_t *a = p->a;
    if (p->done || status) {
        finish(p, status == TS_ECLOSED ? TS_ECLOSED : TS_ESTORE);
        pend_unref(p);
        return;
    }
    /* the request channel's subscribers: one per process (its listener
     * loop), ours included, and whoever else listens there */
    p->res.nodes = n ? (size_t)n - 1 : 0;
    if (p->want && !p->res.nodes) { /* nobody to ask: Node does not publish either */
        finish(p, 0);
        pend_unref(p);
        return;
    }
    if (p->want) {
        ts_map_put(&a->pending, p->id, strlen(p->id), p);
        p->registered = 1;
        uv_timer_init(a->loop, &p->timer);
        p->timer.data = p;
        uv_timer_start(&p->timer, on_timeout, p->timeout_ms, 0);
        p->timer_on = 1;
        p->refs++;
    }
    ts_slice_t ch = ts_slice(p->w.channel->data, p->w.channel->len);
    if (ch.len && ch.p[ch.len - 1] == '\0') ch.len--;
    p->refs++;
    if (ts_store_publish(a->store, pub_kind(a), ch, p->w.bytes, on_request_published, p) != 0) {
        p->refs--;
        TS_MET_INC(SIO_REMOTE_SEND_FAILED);
        finish(p, TS_ESTORE);
    }
    pend_unref(p);
}

/* Counts the other nodes, then publishes. Returns 0 or a TS_E* code
 * (nothing started). */
static int count_nodes(pend_t *p) {
    radp_t *a = p->a;
    char *ch = a->format == TS_ADP_RMSG_CLASSIC ? chan_printf("%s-request#%s#%s", a->prefix, p->nsp, NULL)
                                                : chan_printf("%s#%s#%s", a->prefix, p->nsp, NULL);
    p->refs++;
    int rc = ts_store_numsub(a->store, pub_kind(a), ts_slice_str(ch), on_counted, p);
    free(ch);
    if (rc) p->refs--;
    return rc;
}

static void resp_subscribed(radp_t *a, const char *nsp, int status) {
    resp_t *r = ts_map_get(&a->resps, nsp, strlen(nsp));
    if (!r || r->ready) return;
    if (!status && --r->unconfirmed) return;
    if (status) {
        /* the answers could not be heard: the held requests fail, and the
         * next request subscribes again */
        ts_map_del(&a->resps, r->nsp, strlen(r->nsp));
        ts_list_t *it, *tmp;
        TS_LIST_FOREACH_SAFE(it, tmp, &a->subs) {
            sub_t *s = ts_list_entry(it, sub_t, link);
            if (s->resp && strcmp(s->nsp, nsp) == 0) sub_close(s);
        }
    } else {
        r->ready = 1;
    }
    while (!ts_list_empty(&r->held)) {
        pend_t *p = ts_list_entry(r->held.next, pend_t, link);
        ts_list_remove(&p->link);
        p->held = 0;
        int rc = status ? TS_ESTORE : count_nodes(p);
        if (rc) finish(p, rc);
    }
    if (status) free(r);
}

/* This loop's response channels of `nsp`, subscribed at the first request. */
static resp_t *resp_get(radp_t *a, const char *nsp) {
    resp_t *r = ts_map_get(&a->resps, nsp, strlen(nsp));
    if (r) return r;
    size_t n = strlen(nsp);
    r = ts_xcalloc(1, sizeof *r + n + 1);
    memcpy(r->nsp, nsp, n + 1);
    ts_list_init(&r->held);
    char *chans[2] = {NULL, NULL};
    ts_store_chan_t kind = pub_kind(a);
    if (a->format == TS_ADP_RMSG_CLASSIC) {
        /* a Node responder with publishOnSpecificResponseChannel names us */
        chans[0] = chan_printf("%s-response#%s#%s", a->prefix, nsp, NULL);
        chans[1] = chan_printf("%s-response#%s#%s#", a->prefix, nsp, a->uid);
    } else {
        chans[0] = chan_printf("%s#%s#%s#", a->prefix, nsp, a->uid);
    }
    ts_map_put(&a->resps, r->nsp, n, r);
    ts_adp_listener_t none = {0};
    int ok = 1;
    for (size_t i = 0; i < 2; i++) {
        if (!chans[i]) continue;
        if (!ok) { /* an earlier one failed */
            free(chans[i]);
            continue;
        }
        sub_t *s = sub_open(a, kind, chans[i], nsp, NULL, &none); /* takes chans[i] */
        if (!s) {
            ok = 0;
            continue;
        }
        s->resp = 1;
        r->unconfirmed++;
    }
    if (!ok) {
        resp_subscribed(a, nsp, TS_ESTORE); /* closes what was opened, frees r */
        return NULL;
    }
    return r;
}

static int r_request(void *self, const ts_adp_req_t *req, int ack, uint64_t timeout_ms,
                     ts_adp_result_cb cb, void *ud) {
    radp_t *a = self;
    if (a->closing) return TS_ECLOSED;
    if (!a->loop || !cb || !req->nsp) return TS_EINVAL;
    int want = req->kind == TS_ADP_REQ_FETCH_SOCKETS || req->kind == TS_ADP_REQ_ALL_ROOMS ||
               ((req->kind == TS_ADP_REQ_BROADCAST_ACK || req->kind == TS_ADP_REQ_SERVER_SIDE_EMIT) &&
                ack);
    pend_t *p = ts_xcalloc(1, sizeof *p);
    ts_random_id(p->id, REQ_ID_LEN);
    ts_adp_req_t q = *req;
    q.request_id = want ? p->id : NULL;
    if (q.kind == TS_ADP_REQ_BROADCAST_ACK) /* what its clients are given too */
        q.timeout_ms = timeout_ms ? timeout_ms : REQ_TIMEOUT_MS;
    q.requester = a->uid;
    char err[160];
    int rc = ts_adp_rreq_encode_request(&a->cfg, a->format, a->uid, &q, &p->w, err, sizeof err);
    if (rc) {
        ts_warn("adapter", "%s: a %s request could not be encoded: %s", req->nsp,
                ts_adp_req_kind_name(req->kind), err);
        free(p);
        return rc;
    }
    p->a = a;
    p->refs = 1;
    p->want = want;
    p->kind = req->kind;
    p->nsp = ts_xstrdup(req->nsp);
    p->timeout_ms = timeout_ms ? timeout_ms : REQ_TIMEOUT_MS;
    p->cb = cb;
    p->ud = ud;
    a->live++;
    ts_list_insert_tail(&a->pends, &p->alink);
    resp_t *r = want ? resp_get(a, p->nsp) : NULL;
    if (want && !r) {
        rc = TS_ESTORE;
    } else if (r && !r->ready) {
        ts_list_insert_tail(&r->held, &p->link);
        p->held = 1;
        return 0;
    } else {
        rc = count_nodes(p);
    }
    if (rc) { /* nothing started: no callback */
        p->done = 1;
        ts_list_remove(&p->alink);
        pend_unref(p);
    }
    return rc;
}

/* ---- open, close ---- */

static const ts_adp_remote_ops_t redis_ops = {
    .name = "redis",
    .listen = r_listen,
    .broadcast = r_broadcast,
    .answer = r_answer,
    .room = r_room,
    .request = r_request,
};

int ts_adp_redis_open(ts_adp_remote_t *out, ts_store_t *store, const ts_adp_redis_cfg_t *cfg) {
    out->ops = &redis_ops;
    out->self = NULL;
    if (!cfg || !cfg->uid || !cfg->uid[0] || strlen(cfg->uid) > TS_ADP_REDIS_UID_LEN ||
        (cfg->format != TS_ADP_RMSG_CLASSIC && cfg->format != TS_ADP_RMSG_SHARDED))
        return TS_EINVAL;
    const char *prefix = cfg->prefix && cfg->prefix[0] ? cfg->prefix : TS_ADP_RMSG_PREFIX_DEFAULT;
    if (strlen(prefix) >= sizeof((radp_t *)0)->prefix) return TS_EINVAL;
    radp_t *a = ts_xcalloc(1, sizeof *a);
    a->store = store;
    snprintf(a->uid, sizeof a->uid, "%s", cfg->uid);
    snprintf(a->prefix, sizeof a->prefix, "%s", prefix);
    a->format = cfg->format;
    a->cfg.prefix = a->prefix;
    a->cfg.submode = cfg->submode;
    a->loop = cfg->loop;
    ts_list_init(&a->subs);
    ts_list_init(&a->pends);
    out->self = a;
    return 0;
}

void ts_adp_redis_close(ts_adp_remote_t *r) {
    radp_t *a = r->self;
    r->self = NULL;
    if (!a) return;
    a->closing = 1;
    uint64_t n = 0;
    for (size_t k = 0; k < TS_ADP_REQ_KIND_COUNT; k++) n += a->requests[k];
    if (n)
        ts_debug("adapter", "requests answered: %" PRIu64 " (serverSideEmit %" PRIu64 ")", n,
                 a->requests[TS_ADP_REQ_SERVER_SIDE_EMIT]);
    /* a sub stays allocated until the store confirmed that its on_msg is
     * not called again; `live` holds one more meanwhile, so that a sub
     * released at once does not free the adapter under this loop */
    a->live++;
    while (!ts_list_empty(&a->pends))
        finish(ts_list_entry(a->pends.next, pend_t, alink), TS_ECLOSED);
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&a->resps, &it, &e);) {
        resp_t *rs = e->val;
        ts_map_del(&a->resps, rs->nsp, strlen(rs->nsp));
        free(rs);
    }
    while (!ts_list_empty(&a->subs)) sub_close(ts_list_entry(a->subs.next, sub_t, link));
    a->live--;
    maybe_free(a);
}
