/* order.c - a session's log entries delivered on this node in the order of
 * their seq, whichever node committed them. With other writers (nodes over
 * Redis) an entry arrives from this node's own commit or through pub/sub,
 * which keeps one publisher's order only. Each session with entries here
 * gets a cursor (the last seq shown here); an entry that comes early waits
 * for those before it, which are read from the log when their broadcast is
 * late or lost. That is what makes the stock client's recovery (replay.c)
 * exact across nodes: a restore holds the session's deliveries while it
 * reads the log, and the restored tab is left out of the live entries it
 * was replayed. docs/CONSISTENCY.md "The stock client across nodes". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "session/hist_int.h"
#include "store/ts_store.h"

/* How long an entry waits for the ones before it before they are read from
 * the log. Pub/sub between two nodes on one Redis takes well under a
 * millisecond here; a loaded node can be a loop turn of tens of them late,
 * and a read of the log for an entry still on its way is wasted but
 * harmless (the broadcast that comes after is dropped as a repeat). */
#define GAP_MS 50
/* How long a restored tab stays excluded from the live entries it was
 * replayed. An entry committed before the restore's read is on its way for
 * a few milliseconds at most; the bound keeps a floor from outliving that. */
#define FLOOR_MS 5000
/* A cursor without deliveries for this long, in a session without a tab
 * here any more, is dropped (the next entry starts a new one, whose first
 * entries wait a gap's time). */
#define IDLE_MS 60000

typedef struct held { /* an entry waiting for its turn; one allocation */
    struct held *next;
    uint64_t seq;
    ts_sio_target_t to; /* its pointers into this allocation */
    const char *event;
    ts_sio_raw_arg_t *args;
    size_t nargs;
} held_t;

typedef struct floor_mark { /* a restored tab and the last entry replayed to it */
    struct floor_mark *next;
    uint64_t seq, until_ms;
    char sid[];
} floor_mark_t;

struct sess_order {
    ts_sess_t *sess;
    ts_list_t gap_link;  /* in sess->order_gaps while something waits */
    uint64_t epoch;
    uint64_t base;       /* the first seq offered to this cursor (0: none yet) */
    uint64_t shown;      /* the last seq shown here, in order */
    uint64_t used_at;    /* loop ms of the last offer */
    uint64_t wait_since; /* loop ms since when the head of `held` waits */
    held_t *held;        /* by seq */
    floor_mark_t *floors;
    uint32_t holds;      /* restores reading the log: nothing is shown meanwhile */
    uint8_t reading;     /* a read of the log for a gap is out */
    uint8_t settling;    /* a new cursor's first entries wait for earlier ones */
    char key[];          /* "<user>/<session>" (the key in sess->orders) */
};

int ts_sess__order_on(const ts_sess_t *sess) { return sess->ordered; }

static sess_order_t *order_get(ts_sess_t *sess, const char *key, size_t klen, uint64_t epoch) {
    sess_order_t *o = ts_map_get(&sess->orders, key, klen);
    if (o) return o;
    o = ts_xcalloc(1, sizeof *o + klen + 1);
    o->sess = sess;
    o->epoch = epoch;
    ts_list_init(&o->gap_link);
    memcpy(o->key, key, klen);
    ts_map_put(&sess->orders, o->key, klen, o);
    return o;
}

static void held_free_all(held_t *h) {
    while (h) {
        held_t *next = h->next;
        free(h);
        h = next;
    }
}

static void order_free(sess_order_t *o) {
    ts_map_del(&o->sess->orders, o->key, strlen(o->key));
    if (ts_list_linked(&o->gap_link)) ts_list_remove(&o->gap_link);
    held_free_all(o->held);
    while (o->floors) {
        floor_mark_t *f = o->floors;
        o->floors = f->next;
        free(f);
    }
    free(o);
}

/* Sends one entry to this node's tabs, minus the restored tabs that were
 * replayed it. */
static void show(sess_order_t *o, uint64_t seq, const ts_sio_target_t *to0, const char *event,
                 const ts_sio_raw_arg_t *args, size_t nargs) {
    ts_sess_t *sess = o->sess;
    if (sess->closed) return;
    uint64_t now = uv_now(sess->loop);
    size_t n = 0;
    for (floor_mark_t **fp = &o->floors; *fp;) {
        floor_mark_t *f = *fp;
        if (f->seq < seq && now >= f->until_ms) { /* past it, and nothing older is on its way */
            *fp = f->next;
            free(f);
            continue;
        }
        n += f->seq >= seq;
        fp = &f->next;
    }
    ts_sio_target_t to = *to0;
    to.reach = TS_SIO_REACH_HERE;
    const char *ex_small[16], **ex = ex_small;
    if (n) {
        size_t total = n + to0->nexcept;
        if (total > TS_ARRAY_LEN(ex_small)) ex = ts_xmalloc(total * sizeof *ex);
        size_t k = 0;
        for (size_t i = 0; i < to0->nexcept; i++) ex[k++] = to0->except[i];
        for (floor_mark_t *f = o->floors; f; f = f->next)
            if (f->seq >= seq) ex[k++] = f->sid;
        to.except = ex;
        to.nexcept = total;
    }
    ts_sio_broadcast_raw(sess->nsp, &to, event, args, nargs);
    if (ex != ex_small) free(ex);
}

static void show_held(sess_order_t *o, held_t *h) {
    show(o, h->seq, &h->to, h->event, h->args, h->nargs);
}

static void gap_tick_start(ts_sess_t *sess);

/* Shows what waited and may go now; keeps the gap list and its timer. */
static void pump(sess_order_t *o) {
    while (!o->holds && !o->settling && o->held) {
        held_t *h = o->held;
        if (h->seq >= o->base && h->seq > o->shown + 1) break; /* a gap */
        o->held = h->next;
        if (h->seq < o->base) {
            show_held(o, h); /* older than the cursor: it never passed here */
        } else if (h->seq == o->shown + 1) {
            show_held(o, h);
            o->shown = h->seq;
        } else {
            SESS_COUNT(o->sess->counters[SC_ORDER_REPEATS]);
        }
        free(h);
        o->wait_since = 0;
    }
    if ((o->held && !o->holds) || o->settling) {
        if (!o->wait_since) o->wait_since = uv_now(o->sess->loop);
        if (!ts_list_linked(&o->gap_link)) {
            gap_tick_start(o->sess);
            ts_list_insert_tail(&o->sess->order_gaps, &o->gap_link);
        }
    } else if (ts_list_linked(&o->gap_link)) {
        ts_list_remove(&o->gap_link);
    }
}

/* A copy of an entry that must wait: the target's rooms and exceptions
 * (the sender's socket as its own room), the offset, the arguments. */
static held_t *held_new(uint64_t seq, const ts_sio_target_t *to, const char *event,
                        const ts_sio_raw_arg_t *args, size_t nargs) {
    const char *skip = to->skip ? ts_sio_socket_id(to->skip) : NULL;
    size_t nex = to->nexcept + (skip != NULL);
    size_t strs = strlen(event) + 1 + (to->offset ? strlen(to->offset) + 1 : 0) +
                  (skip ? strlen(skip) + 1 : 0);
    for (size_t i = 0; i < to->nrooms; i++) strs += strlen(to->rooms[i]) + 1;
    for (size_t i = 0; i < to->nexcept; i++) strs += strlen(to->except[i]) + 1;
    for (size_t i = 0; i < nargs; i++) strs += args[i].text.len;
    size_t ptrs = (to->nrooms + nex) * sizeof(char *);
    held_t *h = ts_xmalloc(sizeof *h + nargs * sizeof(ts_sio_raw_arg_t) + ptrs + strs);
    h->next = NULL;
    h->seq = seq;
    h->args = (ts_sio_raw_arg_t *)(h + 1);
    const char **rooms = (const char **)(h->args + nargs), **except = rooms + to->nrooms;
    char *p = (char *)(except + nex);
#define PUT(dst, s) do { size_t l_ = strlen(s) + 1; memcpy(p, (s), l_); (dst) = p; p += l_; } while (0)
    h->to = *to;
    h->to.skip = NULL;
    h->to.rooms = rooms;
    h->to.except = except;
    h->to.nexcept = nex;
    for (size_t i = 0; i < to->nrooms; i++) PUT(rooms[i], to->rooms[i]);
    for (size_t i = 0; i < to->nexcept; i++) PUT(except[i], to->except[i]);
    if (skip) PUT(except[to->nexcept], skip);
    if (to->offset) PUT(h->to.offset, to->offset);
    PUT(h->event, event);
#undef PUT
    h->nargs = nargs;
    for (size_t i = 0; i < nargs; i++) {
        memcpy(p, args[i].text.p, args[i].text.len);
        h->args[i] = (ts_sio_raw_arg_t){.text = ts_slice(p, args[i].text.len), .str = NULL};
        p += args[i].text.len;
    }
    return h;
}

/* Everything waiting goes now, in seq order, and the cursor starts again
 * (the session's history has a new epoch: a reset). */
static void restart(sess_order_t *o, uint64_t epoch) {
    for (held_t *h = o->held; h; h = h->next) show_held(o, h);
    held_free_all(o->held);
    o->held = NULL;
    o->epoch = epoch;
    o->base = o->shown = 0;
    o->settling = 0;
    o->wait_since = 0;
    if (ts_list_linked(&o->gap_link)) ts_list_remove(&o->gap_link);
}

static void offer(sess_order_t *o, uint64_t epoch, uint64_t seq, const ts_sio_target_t *to,
                  const char *event, const ts_sio_raw_arg_t *args, size_t nargs) {
    o->used_at = uv_now(o->sess->loop);
    if (epoch != o->epoch) restart(o, epoch);
    if (!o->base) { /* the cursor's first entry */
        o->base = seq;
        o->shown = seq - 1;
        /* An entry of another node committed just before it may still be
         * on its way: unless a restore holds the cursor (and the log's
         * read orders what came before), the first entries wait a gap's
         * time and then go in seq order from the lowest. */
        if (seq > 1 && !o->holds) o->settling = 1;
    }
    if (seq >= o->base && seq <= o->shown) {
        SESS_COUNT(o->sess->counters[SC_ORDER_REPEATS]);
        return;
    }
    if (!o->holds && !o->settling && (seq < o->base || seq == o->shown + 1)) {
        show(o, seq, to, event, args, nargs);
        if (seq >= o->base) o->shown = seq;
        pump(o);
        return;
    }
    held_t **hp = &o->held;
    while (*hp && (*hp)->seq < seq) hp = &(*hp)->next;
    if (*hp && (*hp)->seq == seq) {
        SESS_COUNT(o->sess->counters[SC_ORDER_REPEATS]);
        return;
    }
    held_t *h = held_new(seq, to, event, args, nargs);
    h->next = *hp;
    *hp = h;
    if (!o->holds && !o->settling) SESS_COUNT(o->sess->counters[SC_ORDER_WAITED]);
    if (o->settling && seq < o->base) { /* an earlier one came: the cursor starts there */
        o->base = seq;
        o->shown = seq - 1;
    }
    pump(o);
}

/* The offset last among a broadcast's arguments, as a JSON string's text. */
static int parse_offset(ts_slice_t t, uint64_t *epoch, uint64_t *seq) {
    if (t.len < 2 || t.p[0] != '"' || t.p[t.len - 1] != '"') return 0;
    return ts_sess_offset_parse(ts_slice(t.p + 1, t.len - 2), epoch, seq) == 0 && *seq;
}

int ts_sess__order_remote(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                          const ts_sio_raw_arg_t *args, size_t nargs, void *ud) {
    (void)nsp;
    ts_sess_t *sess = ud;
    uint64_t epoch, seq;
    /* a session's log entry: to its "s/<user>/<session>" room, the offset last */
    if (!ts_sess__order_on(sess) || nargs < 2 || !to->nrooms || strncmp(to->rooms[0], "s/", 2) ||
        !parse_offset(args[nargs - 1].text, &epoch, &seq))
        return 0;
    const char *key = to->rooms[0] + 2;
    sess_order_t *o = ts_map_get(&sess->orders, key, strlen(key));
    if (!o) { /* none of its tabs here (classic pub/sub brings every session's) */
        const char *rooms[2];
        char other[SESS_NAME_MAX];
        sess_session_rooms(to->rooms[0], other, rooms);
        if (!ts_sio_room_size(sess->nsp, rooms[0]) && !ts_sio_room_size(sess->nsp, rooms[1])) return 0;
        o = order_get(sess, key, strlen(key), epoch);
    }
    offer(o, epoch, seq, to, event, args, nargs);
    return 1;
}

int ts_sess__order_wants(ts_sio_nsp_t *nsp, const char *const *rooms, size_t n, void *ud) {
    (void)nsp, (void)n;
    ts_sess_t *sess = ud;
    /* a log entry goes to "s/<key>" first (order_remote): its order may be
     * held here while a tab connects, before the tab is in the room */
    return ts_sess__order_on(sess) && !strncmp(rooms[0], "s/", 2) &&
           ts_map_get(&sess->orders, rooms[0] + 2, strlen(rooms[0] + 2)) != NULL;
}

void ts_sess__order_local(ts_sess_t *sess, const char *key, uint64_t epoch, uint64_t seq,
                          const ts_sio_target_t *to0, const char *event,
                          const ts_sio_raw_arg_t *args, size_t nargs) {
    ts_sio_target_t to = *to0;
    to.reach = TS_SIO_REACH_OTHERS; /* theirs at once: each node orders its own */
    ts_sio_broadcast_raw(sess->nsp, &to, event, args, nargs);
    offer(order_get(sess, key, strlen(key), epoch), epoch, seq, to0, event, args, nargs);
}

sess_order_t *ts_sess__order_hold(ts_sess_t *sess, const char *key, uint64_t epoch) {
    sess_order_t *o = order_get(sess, key, strlen(key), epoch);
    o->holds++;
    if (ts_list_linked(&o->gap_link)) ts_list_remove(&o->gap_link);
    return o;
}

void ts_sess__order_release(sess_order_t *o, const char *sid, uint64_t floor) {
    ts_assert(o->holds > 0);
    o->holds--;
    o->used_at = uv_now(o->sess->loop);
    /* Entries up to `floor` were replayed to it: those not yet shown here
     * must not reach it again. */
    if (sid && (!o->base || floor > o->shown)) {
        size_t l = strlen(sid) + 1;
        floor_mark_t *f = ts_xmalloc(sizeof *f + l);
        f->seq = floor;
        f->until_ms = o->used_at + FLOOR_MS;
        memcpy(f->sid, sid, l);
        f->next = o->floors;
        o->floors = f;
    }
    pump(o);
}

/* ---- gaps: read from the log what did not come ---- */

typedef struct gap_read {
    sess_order_t *o;
    uint64_t upto; /* the first entry that waits: read what comes before it */
    uint64_t want; /* entries asked for */
} gap_read_t;

static void show_logged(sess_order_t *o, const ts_store_event_t *e) {
    int change = ts_sess__entry_is_change(e->data);
    char room[SESS_NAME_MAX], other[SESS_NAME_MAX], offset[TS_SESS_OFFSET_MAX];
    const char *rooms[2];
    snprintf(room, sizeof room, "s/%s", o->key);
    sess_session_rooms(room, other, rooms);
    ts_sio_target_t to = {.offset = offset};
    ts_sess__entry_rooms(&to, rooms, change);
    ts_sess_offset_format(offset, o->epoch, e->seq);
    ts_sbuf_t out = TS_SBUF_INIT;
    ts_sess__with_seq(&out, ts_buf_slice(e->data), e->seq);
    ts_sio_raw_arg_t arg = {ts_slice(ts_sbuf_data(&out), ts_sbuf_len(&out)), NULL};
    show(o, e->seq, &to, change ? "change" : "event", &arg, 1);
    ts_sbuf_free(&out);
}

static void on_gap_page(int status, const ts_store_log_page_t *page, void *ud) {
    gap_read_t *g = ud;
    sess_order_t *o = g->o;
    ts_sess_t *sess = o->sess;
    o->reading = 0;
    if (status == 0 && !sess->closed && !o->holds) {
        for (size_t i = 0; i < page->n && page->events[i].seq < g->upto; i++) {
            const ts_store_event_t *e = &page->events[i];
            if (e->seq <= o->shown) continue;
            /* A seq the log no longer has (trimmed) cannot be shown: on. */
            o->shown = e->seq - 1;
            show_logged(o, e);
            o->shown = e->seq;
            SESS_COUNT(sess->counters[SC_ORDER_FETCHED]);
        }
        /* A short page: the log has nothing more before the head (what
         * it lacks was trimmed): nothing more to wait for. */
        if (page->n < g->want) o->shown = TS_MAX(o->shown, g->upto - 1);
        o->wait_since = 0;
        pump(o);
    }
    free(g);
    ts_sess__op_end(sess);
}

static void gap_read(sess_order_t *o) {
    if (o->held->seq <= o->shown + 1) { /* nothing is missing any more */
        pump(o);
        return;
    }
    gap_read_t *g = ts_xmalloc(sizeof *g);
    g->o = o;
    g->upto = o->held->seq;
    g->want = TS_MIN(g->upto - o->shown - 1, (uint64_t)LOAD_PAGE);
    o->reading = 1;
    o->sess->pending_ops++;
    if (ts_store_log_read(o->sess->store, ts_slice_str(o->key), o->shown, g->want, on_gap_page, g)) {
        o->reading = 0;
        free(g);
        ts_sess__op_end(o->sess);
    }
}

static void on_gap_tick(uv_timer_t *t) {
    ts_sess_t *sess = t->data;
    uint64_t now = uv_now(sess->loop);
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->order_gaps) {
        sess_order_t *o = TS_CONTAINER_OF(it, sess_order_t, gap_link);
        if (now - o->wait_since < GAP_MS) continue;
        if (o->settling) {
            o->settling = 0;
            o->wait_since = 0;
            pump(o);
        } else if (!o->reading && o->held) {
            gap_read(o);
        }
    }
    if (ts_list_empty(&sess->order_gaps)) uv_timer_stop(t);
}

static void gap_tick_start(ts_sess_t *sess) {
    if (ts_list_empty(&sess->order_gaps) && !sess->closed)
        uv_timer_start(&sess->order_tick, on_gap_tick, GAP_MS / 2, GAP_MS / 2);
}

/* ---- lifetime ---- */

void ts_sess__order_init(ts_sess_t *sess) {
    /* One loop on the embedded store writes every entry of its sessions
     * itself, in order, and replay.c's restore is exact without a cursor.
     * With several loops in one process, the bus orders what they deliver
     * (docs/CONSISTENCY.md says what that leaves). Asked at every entry:
     * answered once. */
    sess->ordered = ts_sio_server_loops(sess->sio) == 1 &&
                    strcmp(ts_store_backend(sess->store), "memory") != 0;
    sess->orders = (ts_map_t)TS_MAP_INIT;
    ts_list_init(&sess->order_gaps);
    uv_timer_init(sess->loop, &sess->order_tick);
    sess->order_tick.data = sess;
    uv_unref((uv_handle_t *)&sess->order_tick);
}

void ts_sess__order_sweep(ts_sess_t *sess) {
    uint64_t now = uv_now(sess->loop);
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&sess->orders, &it, &e);) {
        sess_order_t *o = e->val;
        if (o->held || o->holds || o->reading || o->settling || now - o->used_at < IDLE_MS ||
            (o->floors && now < o->floors->until_ms))
            continue;
        char room[SESS_NAME_MAX], other[SESS_NAME_MAX];
        const char *rooms[2];
        snprintf(room, sizeof room, "s/%s", o->key);
        sess_session_rooms(room, other, rooms);
        if (!ts_sio_room_size(sess->nsp, rooms[0]) && !ts_sio_room_size(sess->nsp, rooms[1]))
            order_free(o);
    }
}

size_t ts_sess__order_count(const ts_sess_t *sess) { return sess->orders.count; }

/* Every store call is back (maybe_free): nothing refers to a cursor. */
void ts_sess__order_deinit(ts_sess_t *sess) {
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&sess->orders, &it, &e);) order_free(e->val);
    ts_map_deinit(&sess->orders);
}
