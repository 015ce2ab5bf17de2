/* redis_pubsub.c - publish / subscribe in the "redis" store backend: a
 * handle's local subscribers per channel (the first one makes the Redis
 * subscription, the last one ends it), the pushes Redis sends them, and
 * PUBLISH / SPUBLISH and PUBSUB NUMSUB as ops in the handle's issue order. */
#include <stdlib.h>
#include <string.h>

#include "core/ts_list.h"
#include "core/ts_map.h"
#include "core/ts_mem.h"
#include "store/rcluster_int.h"
#include "store/redis_int.h"
#include "store/ts_store.h"

/* ---- publish / subscribe ----
 * Channels are used as given (no key prefix: ts_store.h). The local map is
 * keyed by the kind byte and the name, as Redis keeps SUBSCRIBE, PSUBSCRIBE
 * and SSUBSCRIBE apart. */

#define CHAN_KEY_MAX (1 + TS_STORE_ID_MAX)

static size_t chan_key(char *out, int kind, const char *name, size_t len) {
    out[0] = (char)('0' + kind);
    memcpy(out + 1, name, len);
    return 1 + len;
}

void ts_store__rds_on_push(const redisReply *r, void *ud) {
    rstore_t *s = ud;
    /* ["message", channel, payload], ["smessage", ...] or ["pmessage",
     * pattern, channel, payload] */
    if (r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING) return;
    const char *what = r->element[0]->str;
    int kind = !strcmp(what, "pmessage")   ? TS_STORE_CHAN_PATTERN
               : !strcmp(what, "smessage") ? TS_STORE_CHAN_SHARD
                                           : TS_STORE_CHAN;
    size_t n = kind == TS_STORE_CHAN_PATTERN ? 4 : 3;
    if (r->elements != n) return;
    for (size_t i = 1; i < n; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING) return;
    const redisReply *sub = r->element[1], *ch = r->element[n - 2], *pl = r->element[n - 1];
    if (sub->len > TS_STORE_ID_MAX) return;
    char key[CHAN_KEY_MAX];
    size_t klen = chan_key(key, kind, sub->str, sub->len);
    rchan_t *rc = ts_map_get(&s->chans, key, klen);
    if (!rc) return; /* unsubscribed meanwhile */
    ts_buf_t *msg = ts_buf_from(pl->str, pl->len);
    ts_slice_t name = ts_slice(ch->str, ch->len);
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &rc->subs) {
        rsub_t *x = ts_list_entry(it, rsub_t, link);
        x->on_msg(name, msg, x->ud);
    }
    ts_buf_unref(msg);
}

static void sub_result(rop_t *o, int status, const redisReply *r) {
    int rc = status ? ts_store__rds_failure(status)
                    : r && r->type == REDIS_REPLY_ERROR ? TS_ESTORE : 0;
    ts_store__rds_complete(o, rc, NULL);
}

static void on_sub_done(int status, const redisReply *r, void *ud) {
    ts_store__rds_gate(ud, status, r, sub_result);
}

static rop_t *done_op(rstore_t *s, ts_store_done_cb cb, void *ud) {
    rop_t *o = ts_xcalloc(1, sizeof *o);
    o->s = s;
    o->kind = K_DONE;
    o->cb.done = cb;
    o->ud = ud;
    s->pending++;
    ts_store__rds_order_add(s, o);
    return o;
}

/* The channel's name as a C string (Redis's API here takes one). */
static char *chan_name(ts_slice_t ch) {
    char *k = ts_xmalloc(ch.len + 1);
    memcpy(k, ch.p, ch.len);
    k[ch.len] = '\0';
    return k;
}

static const ts_rconn_sub_kind_t SUB_KIND[] = {
    [TS_STORE_CHAN] = TS_RCONN_SUBSCRIBE,
    [TS_STORE_CHAN_PATTERN] = TS_RCONN_PSUBSCRIBE,
    [TS_STORE_CHAN_SHARD] = TS_RCONN_SSUBSCRIBE,
};

int ts_store__rds_subscribe(void *self, ts_store_chan_t kind, ts_slice_t channel,
                            ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    char key[CHAN_KEY_MAX];
    size_t klen = chan_key(key, kind, (const char *)channel.p, channel.len);
    rchan_t *c = ts_map_get(&s->chans, key, klen);
    if (!c) {
        c = ts_xcalloc(1, sizeof *c + klen);
        ts_list_init(&c->subs);
        c->klen = klen;
        memcpy(c->key, key, klen);
        ts_map_put(&s->chans, c->key, c->klen, c);
    }
    ts_list_t *it;
    int have = 0;
    TS_LIST_FOREACH(it, &c->subs) {
        rsub_t *x = ts_list_entry(it, rsub_t, link);
        if (x->on_msg == on_msg && x->ud == msg_ud) have = 1;
    }
    if (!have) {
        rsub_t *x = ts_xcalloc(1, sizeof *x);
        x->on_msg = on_msg;
        x->ud = msg_ud;
        ts_list_insert_tail(&c->subs, &x->link);
    }
    rop_t *o = done_op(s, cb, ud);
    /* Every subscribe waits for Redis's confirmation, so that its callback
     * means "messages published from now on reach you" (a second local
     * subscriber of a channel: Redis confirms the channel again). */
    char *k = chan_name(channel);
    int rc = ts_rcl_subscribe(s->rc, SUB_KIND[kind], k, on_sub_done, o);
    free(k);
    if (rc) ts_store__rds_defer(s, o, TS_ESTORE);
    return 0;
}

int ts_store__rds_unsubscribe(void *self, ts_store_chan_t kind, ts_slice_t channel,
                              ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    char key[CHAN_KEY_MAX];
    size_t klen = chan_key(key, kind, (const char *)channel.p, channel.len);
    rchan_t *c = ts_map_get(&s->chans, key, klen);
    rsub_t *found = NULL;
    if (c) {
        ts_list_t *it;
        TS_LIST_FOREACH(it, &c->subs) {
            rsub_t *x = ts_list_entry(it, rsub_t, link);
            if (x->on_msg == on_msg && x->ud == msg_ud) found = x;
        }
    }
    rop_t *o = done_op(s, cb, ud);
    if (!found) {
        ts_store__rds_defer(s, o, TS_ENOTFOUND);
        return 0;
    }
    ts_list_remove(&found->link);
    free(found);
    if (!ts_list_empty(&c->subs)) { /* others still listen here */
        ts_store__rds_defer(s, o, 0);
        return 0;
    }
    ts_map_del(&s->chans, c->key, c->klen);
    free(c);
    char *k = chan_name(channel);
    int rc = ts_rcl_unsubscribe(s->rc, SUB_KIND[kind], k, on_sub_done, o);
    free(k);
    if (rc) ts_store__rds_defer(s, o, 0); /* nobody local listens any more either way */
    return 0;
}

int ts_store__rds_publish(void *self, ts_store_chan_t kind, ts_slice_t channel, ts_buf_t *msg,
                          ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    rop_t *o = done_op(s, cb, ud);
    const char *verb = kind == TS_STORE_CHAN_SHARD ? "SPUBLISH" : "PUBLISH";
    const char *argv[] = {verb, (const char *)channel.p, (const char *)msg->data};
    size_t lens[] = {strlen(verb), channel.len, msg->len};
    /* a shard channel lives on its slot's node; PUBLISH reaches every node */
    int shard = kind == TS_STORE_CHAN_SHARD;
    int rc = ts_rcl_cmd(s->rc, shard ? argv[1] : NULL, shard ? lens[1] : 0, 3, argv, lens,
                        on_sub_done, o);
    if (rc) ts_store__rds_defer(s, o, ts_store__rds_failure(rc));
    return 0;
}

static void count_result(rop_t *o, int status, const redisReply *r) {
    (void)r; /* the sum is in o */
    if (!status) {
        ts_store_count_cb cb = o->cb.count;
        o->cb.count = NULL; /* ts_store__rds_complete() calls back only on failure */
        if (cb) cb(0, o->sum, o->ud);
    }
    ts_store__rds_complete(o, status, NULL);
}

/* PUBSUB NUMSUB answers [channel, count], from each node asked (a classic
 * channel on a Cluster: every node, each counting its own clients). A
 * node that does not answer is counted 0: a message published now would
 * not reach its subscribers either. Fails only if no node answered. */
static void on_count_part(int status, const redisReply *r, unsigned left, void *ud) {
    rop_t *o = ud;
    long long n = -1;
    if (!status && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        ts_store__rds_reply_int(r->element[1], &n) == 0 && n >= 0) {
        o->sum += (uint64_t)n;
        o->summed++;
    }
    if (left) return;
    int rc = o->summed ? 0 : ts_store__rds_failure(status);
    ts_store__rds_gate(o, rc, NULL, count_result);
}

static void on_count(int status, const redisReply *r, void *ud) {
    on_count_part(status, r, 0, ud);
}

int ts_store__rds_numsub(void *self, ts_store_chan_t kind, ts_slice_t channel,
                         ts_store_count_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    rop_t *o = done_op(s, NULL, NULL);
    o->kind = K_COUNT;
    o->cb.count = cb;
    o->ud = ud;
    int shard = kind == TS_STORE_CHAN_SHARD;
    const char *verb = shard ? "SHARDNUMSUB" : "NUMSUB";
    const char *argv[] = {"PUBSUB", verb, (const char *)channel.p};
    size_t lens[] = {6, strlen(verb), channel.len};
    /* a shard channel is counted on its slot's node, a classic one on
     * every node */
    int rc = shard ? ts_rcl_cmd(s->rc, argv[2], lens[2], 3, argv, lens, on_count, o)
                   : ts_rcl_cmd_all(s->rc, 3, argv, lens, on_count_part, o);
    if (rc) ts_store__rds_defer(s, o, ts_store__rds_failure(rc));
    return 0;
}
