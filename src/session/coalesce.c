/* coalesce.c - adaptive broadcast throttling of a session's low-priority
 * traffic. Presence and telemetry sent to a session are relayed at once
 * while the session is quiet. When one session's low-priority broadcasts
 * pass LOAD_PER_TICK in a tick, they are held over a window instead and
 * only the latest of each stream (sending tab + type: the coalesce key)
 * goes out when it closes. The window doubles while the load stays (up to
 * WINDOW_MAX_MS) and halves when it drops, until the session is quiet and
 * relayed at once again. Everything else (history, control, state, event)
 * is never held here. The load signal is the session's own rate of
 * low-priority broadcasts: it is what fills its tabs' queues, and it is
 * known without walking them. */
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"
#include "session/sess_int.h"

#define TICK_MS 50
#define LOAD_PER_TICK 10   /* low-priority broadcasts per tick before windows start */
#define WINDOW_MIN_MS 50
#define WINDOW_MAX_MS 1000
#define HELD_MAX 256       /* streams held per session; more are sent at once */

typedef struct held {
    uint32_t key;
    ts_sio_class_t cls;
    sess_sock_t *from;     /* a hold on the sender (skipped when relayed) */
    ts_buf_t *text;        /* the latest relayed envelope of the stream */
} held_t;

struct sess_lowprio {
    ts_sess_t *sess;
    ts_list_t link;        /* in sess->lowprio while it counts or holds */
    char *room;            /* one of the session's rooms (owned; sess_session_rooms) */
    uint32_t count;        /* broadcasts in this tick */
    uint32_t window_ms;    /* 0: relaying at once */
    uint64_t window_end;   /* loop ms */
    held_t held[HELD_MAX];
    size_t nheld;
    uint32_t held_in_window; /* offers while the window was open */
};

static void relay(ts_sess_t *sess, const char *room, sess_sock_t *from, ts_buf_t *text,
                  ts_sio_class_t cls, uint32_t key) {
    if (sess->closed) return;
    ts_sio_raw_arg_t arg = {ts_buf_slice(text), NULL};
    const char *rooms[2];
    char other[SESS_NAME_MAX];
    sess_session_rooms(room, other, rooms); /* the session's tabs of every protocol */
    ts_sio_target_t to = {.rooms = rooms, .nrooms = 2, .skip = from->s, .cls = cls, .coalesce = key};
    ts_sio_broadcast_raw(sess->nsp, &to, "event", &arg, 1);
}

static void flush(sess_lowprio_t *lp) {
    for (size_t i = 0; i < lp->nheld; i++) {
        held_t *h = &lp->held[i];
        relay(lp->sess, lp->room, h->from, h->text, h->cls, h->key);
        ts_buf_unref(h->text);
        ts_sess__sock_release(h->from);
    }
    lp->nheld = 0;
}

void ts_sess__lowprio_free(sess_lowprio_t *lp) {
    if (!lp) return;
    flush(lp);
    if (ts_list_linked(&lp->link)) ts_list_remove(&lp->link);
    free(lp->room);
    free(lp);
}

int ts_sess__lowprio_idle(const sess_lowprio_t *lp) {
    return !lp || (!lp->nheld && !lp->window_ms && !lp->count);
}

/* Every tick: close the windows that ended, adapt them, forget quiet ones. */
static void on_tick(uv_timer_t *t) {
    ts_sess_t *sess = t->data;
    uint64_t now = uv_now(sess->loop);
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->lowprio) {
        sess_lowprio_t *lp = TS_CONTAINER_OF(it, sess_lowprio_t, link);
        if (lp->window_ms && now >= lp->window_end) {
            uint32_t load = lp->held_in_window;
            uint32_t per_tick = (uint32_t)((uint64_t)load * TICK_MS / lp->window_ms);
            flush(lp);
            if (per_tick > LOAD_PER_TICK)
                lp->window_ms = TS_MIN(lp->window_ms * 2, WINDOW_MAX_MS);
            else
                lp->window_ms /= 2;
            if (lp->window_ms < WINDOW_MIN_MS) lp->window_ms = 0;
            lp->held_in_window = 0;
            lp->window_end = now + lp->window_ms;
            TS_MET_BUMP_(sess->counters[SC_COALESCE_WINDOWS], 1);
        } else if (!lp->window_ms && lp->count > LOAD_PER_TICK) {
            lp->window_ms = WINDOW_MIN_MS;
            lp->window_end = now + WINDOW_MIN_MS;
        }
        lp->count = 0;
        if (ts_sess__lowprio_idle(lp)) ts_list_remove(&lp->link);
    }
    if (ts_list_empty(&sess->lowprio)) uv_timer_stop(&sess->lowprio_tick);
}

/* A presence or telemetry envelope (its relayed text) for the session of
 * `from`: relayed now, or held (the latest of its stream goes out when the
 * window closes). */
void ts_sess__lowprio_send(sess_lowprio_t **slot, sess_sock_t *from, ts_slice_t text,
                           ts_sio_class_t cls, uint32_t key) {
    ts_sess_t *sess = from->sess;
    sess_lowprio_t *lp = *slot;
    if (!lp) {
        lp = *slot = ts_xcalloc(1, sizeof *lp);
        lp->sess = sess;
        ts_list_init(&lp->link);
        char name[SESS_NAME_MAX];
        lp->room = ts_xstrdup(ts_sess__name(from, SN_ROOM_SESSION, name));
    }
    if (!ts_list_linked(&lp->link)) {
        if (ts_list_empty(&sess->lowprio)) uv_timer_start(&sess->lowprio_tick, on_tick, TICK_MS, TICK_MS);
        ts_list_insert_tail(&sess->lowprio, &lp->link);
    }
    lp->count++;
    if (!lp->window_ms && lp->count > LOAD_PER_TICK) {
        /* a burst within one tick opens a window at once */
        lp->window_ms = WINDOW_MIN_MS;
        lp->window_end = uv_now(sess->loop) + WINDOW_MIN_MS;
    }
    if (!lp->window_ms) {
        ts_buf_t *b = ts_buf_from(text.p, text.len);
        relay(sess, lp->room, from, b, cls, key);
        ts_buf_unref(b);
        return;
    }
    lp->held_in_window++;
    for (size_t i = 0; i < lp->nheld; i++) {
        held_t *h = &lp->held[i];
        if (h->key != key) continue;
        /* latest wins: the older report of this stream is dropped */
        TS_MET_BUMP_(sess->counters[SC_COALESCED], 1);
        ts_buf_unref(h->text);
        ts_sess__sock_release(h->from);
        h->text = ts_buf_from(text.p, text.len);
        h->from = from;
        ts_sess__sock_hold(from);
        return;
    }
    if (lp->nheld == HELD_MAX) { /* too many streams to hold: this one goes now */
        ts_buf_t *b = ts_buf_from(text.p, text.len);
        relay(sess, lp->room, from, b, cls, key);
        ts_buf_unref(b);
        return;
    }
    held_t *h = &lp->held[lp->nheld++];
    h->key = key;
    h->cls = cls;
    h->from = from;
    ts_sess__sock_hold(from);
    h->text = ts_buf_from(text.p, text.len);
}
