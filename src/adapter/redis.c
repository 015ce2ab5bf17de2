/* redis.c - the Redis adapter (ts_adp_redis.h): broadcasts to and from the
 * other nodes and their server-side requests, in @socket.io/redis-adapter's
 * classic or sharded format, through the store's publish/subscribe.
 *
 * Every subscription is a sub_t: the namespace's own channels (made by
 * `listen` on the listener loop) and, sharded in a dynamic mode, one per
 * room this loop has sockets in (made by `room` on that loop, so each loop
 * hears its own rooms and delivers them to its own sockets: no loop hears a
 * room message twice). A sub_t is freed once the store answered both its
 * subscribe and its unsubscribe: until then a message for it is dropped. */
#include "adapter/ts_adp_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
} radp_t;

void ts_adp_redis_uid(char out[TS_ADP_REDIS_UID_LEN + 1]) {
    ts_random_id(out, TS_ADP_REDIS_UID_LEN);
    out[TS_ADP_REDIS_UID_LEN] = '\0';
}

static void maybe_free(radp_t *a) {
    if (!a->closing || a->live) return;
    ts_map_deinit(&a->rooms);
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

static void on_msg(ts_slice_t channel, ts_buf_t *bytes, void *ud) {
    sub_t *s = ud;
    radp_t *a = s->a;
    if (a->closing || s->gone) return;
    ts_adp_rmsg_t m;
    char err[160];
    if (ts_adp_rmsg_is_from(a->format, ts_buf_slice(bytes), a->uid)) return; /* our own */
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
    ts_adp_req_t req;
    if (m.kind == TS_ADP_RMSG_BROADCAST && (m.packet.data || m.packet.data_text)) {
        ts_adp_bcast_t b = {.nsp = s->nsp,
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
    /* responses: this node makes no requests */
    ts_adp_rmsg_clear(&m);
}

static void on_subscribed(int status, void *ud) {
    sub_t *s = ud;
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
    int rc = ts_adp_rmsg_encode_broadcast(&a->cfg, a->format, a->uid, b->nsp, NULL, b->data_json,
                                          b->attach, b->nattach, &opts, &w, err, sizeof err);
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

/* ---- open, close ---- */

static const ts_adp_remote_ops_t redis_ops = {
    .name = "redis",
    .listen = r_listen,
    .broadcast = r_broadcast,
    .answer = r_answer,
    .room = r_room,
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
    ts_list_init(&a->subs);
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
    while (!ts_list_empty(&a->subs)) sub_close(ts_list_entry(a->subs.next, sub_t, link));
    a->live--;
    maybe_free(a);
}
