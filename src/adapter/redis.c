/* redis.c - the Redis adapter (ts_adp_redis.h): broadcasts to and from the
 * other nodes, in @socket.io/redis-adapter's classic format, through the
 * store's publish/subscribe. A namespace is heard with one PSUBSCRIBE of
 * <prefix>#<nsp>#* (Node's classic adapter does the same): broadcasts to
 * every room and to one room arrive on it alike. Everything another node
 * sends that is not a broadcast (requests, responses) is counted and
 * ignored for now. */
#include "adapter/ts_adp_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/ts_adp_rmsg.h"
#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "metrics/ts_met.h"

typedef struct listener {
    ts_list_t link;
    struct radp *a;
    ts_adp_remote_cb cb;
    void *ud;
    char *nsp;
    char *pattern;
} listener_t;

typedef struct radp {
    ts_store_t *store;
    char uid[TS_ADP_REDIS_UID_LEN + 1];
    char prefix[64];
    ts_adp_rmsg_cfg_t cfg;
    ts_list_t listeners;
    int closing;
    size_t unsubscribing; /* unsubscribes the store has not answered */
} radp_t;

void ts_adp_redis_uid(char out[TS_ADP_REDIS_UID_LEN + 1]) {
    ts_random_id(out, TS_ADP_REDIS_UID_LEN);
    out[TS_ADP_REDIS_UID_LEN] = '\0';
}

/* ---- what comes from the other nodes ---- */

static void on_msg(ts_slice_t channel, ts_buf_t *bytes, void *ud) {
    listener_t *l = ud;
    radp_t *a = l->a;
    if (a->closing) return;
    ts_adp_rmsg_t m;
    char err[160];
    if (ts_adp_rmsg_decode(&a->cfg, TS_ADP_RMSG_CLASSIC, channel, ts_buf_slice(bytes), &m, err,
                           sizeof err) != 0) {
        TS_MET_INC(SIO_REMOTE_BAD);
        ts_debug("adapter", "a message on %.*s could not be read: %s", (int)channel.len,
                 (const char *)channel.p, err);
        return;
    }
    if (m.kind != TS_ADP_RMSG_BROADCAST || !m.packet.data ||
        (m.uid && strcmp(m.uid, a->uid) == 0) || (m.nsp && strcmp(m.nsp, l->nsp) != 0)) {
        ts_adp_rmsg_clear(&m); /* our own, or not one we act on yet */
        return;
    }
    ts_adp_bcast_t b = {.nsp = l->nsp,
                        .data = m.packet.data,
                        .attach = m.attach,
                        .nattach = m.nattach,
                        .rooms = (const char *const *)m.opts.rooms.v,
                        .nrooms = m.opts.rooms.n,
                        .except = (const char *const *)m.opts.except.v,
                        .nexcept = m.opts.except.n,
                        .is_volatile = !!(m.opts.flags & TS_ADP_RMSG_F_VOLATILE)};
    l->cb(&b, l->ud);
    ts_adp_rmsg_clear(&m);
}

static void on_listening(int status, void *ud) {
    listener_t *l = ud;
    if (status && status != TS_ECLOSED)
        ts_warn("adapter", "%s: cannot subscribe to %s: %s (the other nodes' broadcasts are "
                           "not heard until it succeeds)", l->nsp, l->pattern, ts_strerror(status));
}

static int r_listen(void *self, const char *nsp, ts_adp_remote_cb cb, void *ud) {
    radp_t *a = self;
    if (a->closing) return TS_ECLOSED;
    listener_t *l = ts_xcalloc(1, sizeof *l);
    l->a = a;
    l->cb = cb;
    l->ud = ud;
    l->nsp = ts_xstrdup(nsp);
    size_t n = strlen(a->prefix) + strlen(nsp) + 4;
    l->pattern = ts_xmalloc(n);
    snprintf(l->pattern, n, "%s#%s#*", a->prefix, nsp);
    int rc = ts_store_subscribe(a->store, TS_STORE_CHAN_PATTERN, ts_slice_str(l->pattern), on_msg,
                                l, on_listening, l);
    if (rc) {
        free(l->pattern);
        free(l->nsp);
        free(l);
        return rc;
    }
    ts_list_insert_tail(&a->listeners, &l->link);
    return 0;
}

/* ---- what goes to them ---- */

static void on_published(int status, void *ud) {
    (void)ud;
    if (status) TS_MET_INC(SIO_REMOTE_SEND_FAILED);
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
    int rc = ts_adp_rmsg_encode_broadcast(&a->cfg, TS_ADP_RMSG_CLASSIC, a->uid, b->nsp, NULL,
                                          b->data_json, b->attach, b->nattach, &opts, &w, err,
                                          sizeof err);
    if (rc) {
        ts_warn("adapter", "%s: a broadcast could not be encoded for the other nodes: %s", b->nsp,
                err);
        return rc;
    }
    ts_slice_t ch = ts_slice(w.channel->data, w.channel->len);
    if (ch.len && ch.p[ch.len - 1] == '\0') ch.len--; /* NUL-terminated, not part of the name */
    rc = ts_store_publish(a->store, TS_STORE_CHAN, ch, w.bytes, on_published, NULL);
    ts_adp_rmsg_wire_clear(&w);
    return rc;
}

/* ---- open, close ---- */

static const ts_adp_remote_ops_t redis_ops = {
    .name = "redis",
    .listen = r_listen,
    .broadcast = r_broadcast,
};

int ts_adp_redis_open(ts_adp_remote_t *out, ts_store_t *store, const ts_adp_redis_cfg_t *cfg) {
    out->ops = &redis_ops;
    out->self = NULL;
    if (!cfg || !cfg->uid || !cfg->uid[0] || strlen(cfg->uid) > TS_ADP_REDIS_UID_LEN)
        return TS_EINVAL;
    const char *prefix = cfg->prefix ? cfg->prefix : TS_ADP_RMSG_PREFIX_DEFAULT;
    if (strlen(prefix) >= sizeof((radp_t *)0)->prefix) return TS_EINVAL;
    radp_t *a = ts_xcalloc(1, sizeof *a);
    a->store = store;
    snprintf(a->uid, sizeof a->uid, "%s", cfg->uid);
    snprintf(a->prefix, sizeof a->prefix, "%s", prefix);
    a->cfg.prefix = a->prefix;
    ts_list_init(&a->listeners);
    out->self = a;
    return 0;
}

static void maybe_free(radp_t *a) {
    if (a->unsubscribing) return;
    while (!ts_list_empty(&a->listeners)) {
        listener_t *l = ts_list_entry(a->listeners.next, listener_t, link);
        ts_list_remove(&l->link);
        free(l->pattern);
        free(l->nsp);
        free(l);
    }
    free(a);
}

static void on_unsubscribed(int status, void *ud) {
    (void)status; /* TS_ECLOSED: the store went first, its subscriptions with it */
    radp_t *a = ud;
    a->unsubscribing--;
    maybe_free(a);
}

void ts_adp_redis_close(ts_adp_remote_t *r) {
    radp_t *a = r->self;
    r->self = NULL;
    if (!a) return;
    a->closing = 1;
    /* a listener stays allocated until the store confirmed that its
     * on_msg is not called again */
    ts_list_t *it;
    TS_LIST_FOREACH(it, &a->listeners) {
        listener_t *l = ts_list_entry(it, listener_t, link);
        if (ts_store_unsubscribe(a->store, TS_STORE_CHAN_PATTERN, ts_slice_str(l->pattern), on_msg,
                                 l, on_unsubscribed, a) == 0)
            a->unsubscribing++;
    }
    maybe_free(a);
}
