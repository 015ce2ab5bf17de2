/* mem_pubsub.c - publish / subscribe in the memory backend: the doors of
 * one process (one per loop) are the subscribers. A channel lists its
 * subscriptions; publishing queues a reference to the message in the inbox
 * of each subscription's door and wakes that door's loop, which calls the
 * subscribers outside the store's mutex (a message callback fans out to
 * sockets: it must not hold every other loop's store calls). Channels are
 * keyed by kind and name; a plain publish also goes to every pattern that
 * matches it (fnmatch without flags: Redis's glob, * ? [..] and \\). */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"
#include "store/mem_int.h"

typedef struct mem_chan {
    ts_list_t subs;  /* mem_sub_t.link */
    ts_list_t plink; /* in m->patterns (a pattern) */
    size_t klen;
    char key[];      /* kind byte, channel, '\0' */
} mem_chan_t;

typedef struct mem_sub {
    ts_list_t link;
    mem_chan_t *chan;
    mem_door_t *door;
    ts_store_msg_cb on_msg;
    void *ud;
} mem_sub_t;

typedef struct mem_msg {
    ts_list_t link; /* in door->inbox */
    mem_sub_t *sub;
    ts_buf_t *buf;  /* our reference */
    size_t clen;
    char chan[];    /* the channel it was published on */
} mem_msg_t;

#define KEY_MAX (1 + TS_STORE_ID_MAX + 1)

/* The map key of (kind, channel): the kind byte, then the name, NUL-ended
 * (fnmatch reads patterns and names as C strings). */
static size_t chan_key(char *out, int kind, ts_slice_t ch) {
    out[0] = (char)('0' + kind);
    memcpy(out + 1, ch.p, ch.len);
    out[1 + ch.len] = '\0';
    return 1 + ch.len;
}

static mem_sub_t *sub_find(mem_chan_t *c, const mem_door_t *d, ts_store_msg_cb cb, void *ud) {
    ts_list_t *it;
    TS_LIST_FOREACH(it, &c->subs) {
        mem_sub_t *s = ts_list_entry(it, mem_sub_t, link);
        if (s->door == d && s->on_msg == cb && s->ud == ud) return s;
    }
    return NULL;
}

void ts_store__mem_exec_subscribe(mem_t *m, mem_door_t *d, mem_op_t *op) {
    char key[KEY_MAX];
    size_t klen = chan_key(key, op->by, op->s[0]);
    mem_chan_t *c = ts_map_get(&m->chans, key, klen);
    if (!c) {
        c = ts_xcalloc(1, sizeof *c + klen + 1);
        ts_list_init(&c->subs);
        ts_list_init(&c->plink);
        c->klen = klen;
        memcpy(c->key, key, klen + 1);
        ts_map_put(&m->chans, c->key, c->klen, c);
        if (op->by == TS_STORE_CHAN_PATTERN) ts_list_insert_tail(&m->patterns, &c->plink);
    }
    op->status = 0;
    if (sub_find(c, d, op->on_msg, op->msg_ud)) return; /* one subscription */
    mem_sub_t *s = ts_xcalloc(1, sizeof *s);
    s->chan = c;
    s->door = d;
    s->on_msg = op->on_msg;
    s->ud = op->msg_ud;
    ts_list_insert_tail(&c->subs, &s->link);
}

/* Drops s and the messages its door has not delivered to it yet. */
static void sub_drop(mem_t *m, mem_sub_t *s) {
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &s->door->inbox) {
        mem_msg_t *g = ts_list_entry(it, mem_msg_t, link);
        if (g->sub != s) continue;
        ts_list_remove(&g->link);
        ts_buf_unref(g->buf);
        free(g);
    }
    mem_chan_t *c = s->chan;
    ts_list_remove(&s->link);
    free(s);
    if (ts_list_empty(&c->subs)) {
        ts_map_del(&m->chans, c->key, c->klen);
        ts_list_remove(&c->plink); /* a no-op unless a pattern */
        free(c);
    }
}

void ts_store__mem_exec_unsubscribe(mem_t *m, mem_door_t *d, mem_op_t *op) {
    char key[KEY_MAX];
    size_t klen = chan_key(key, op->by, op->s[0]);
    mem_chan_t *c = ts_map_get(&m->chans, key, klen);
    mem_sub_t *s = c ? sub_find(c, d, op->on_msg, op->msg_ud) : NULL;
    op->status = s ? 0 : TS_ENOTFOUND;
    if (s) sub_drop(m, s);
}

/* Queues a reference to the message for each subscriber of c. */
static void fan_out(mem_chan_t *c, const mem_op_t *op) {
    ts_slice_t ch = op->s[0];
    ts_list_t *it;
    TS_LIST_FOREACH(it, &c->subs) {
        mem_sub_t *s = ts_list_entry(it, mem_sub_t, link);
        mem_msg_t *g = ts_xcalloc(1, sizeof *g + ch.len);
        g->sub = s;
        g->buf = ts_buf_ref(op->buf);
        g->clen = ch.len;
        memcpy(g->chan, ch.p, ch.len);
        int was_empty = ts_list_empty(&s->door->inbox);
        ts_list_insert_tail(&s->door->inbox, &g->link);
        if (was_empty) uv_async_send(&s->door->wake); /* on its loop, later */
    }
}

void ts_store__mem_exec_publish(mem_t *m, mem_op_t *op) {
    op->status = 0;
    char key[KEY_MAX];
    size_t klen = chan_key(key, op->by, op->s[0]);
    mem_chan_t *c = ts_map_get(&m->chans, key, klen);
    if (c) fan_out(c, op);
    if (op->by != TS_STORE_CHAN) return; /* shard channels: no patterns (as Redis) */
    ts_list_t *it;
    TS_LIST_FOREACH(it, &m->patterns) {
        mem_chan_t *p = ts_list_entry(it, mem_chan_t, plink);
        if (fnmatch(p->key + 1, key + 1, 0) == 0) fan_out(p, op);
    }
}

void ts_store__mem_door_messages(mem_door_t *d) {
    mem_t *m = d->m;
    ts_list_t got;
    ts_list_init(&got);
    pthread_mutex_lock(&m->mu);
    if (!ts_list_empty(&d->inbox)) {
        got = d->inbox;
        got.next->prev = &got;
        got.prev->next = &got;
        ts_list_init(&d->inbox);
    }
    pthread_mutex_unlock(&m->mu);
    /* A subscription is dropped only by this door's own ops, which run on
     * this loop after these callbacks: the sub pointers stay valid. An
     * unsubscribe issued by a callback here completes after the rest of
     * this batch was delivered, as its callback says. */
    while (!ts_list_empty(&got)) {
        mem_msg_t *g = ts_list_entry(got.next, mem_msg_t, link);
        ts_list_remove(&g->link);
        if (!d->closing)
            g->sub->on_msg(ts_slice(g->chan, g->clen), g->buf, g->sub->ud);
        ts_buf_unref(g->buf);
        free(g);
    }
}

void ts_store__mem_door_unsubscribe_all(mem_t *m, mem_door_t *d) {
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&m->chans, &it, &e);) {
        mem_chan_t *c = e->val;
        ts_list_t *li, *tmp;
        TS_LIST_FOREACH_SAFE(li, tmp, &c->subs) {
            mem_sub_t *s = ts_list_entry(li, mem_sub_t, link);
            if (s->door != d) continue;
            /* the last sub of c frees c: stop looking at it */
            int last = c->subs.next == &s->link && c->subs.prev == &s->link;
            sub_drop(m, s);
            if (last) break;
        }
    }
}
