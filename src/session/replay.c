/* replay.c - the history's log read back to one tab: answers to `sync`
 * (entries after an offset, or a snapshot of the cache's state and what
 * followed it) and the durable recovery of the stock socket.io-client.
 * Moved out of history.c as it was; the cache it reads is in hist_int.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_json.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "session/hist_int.h"
#include "store/ts_store.h"

#define SYNC_LIMIT_DEFAULT 500 /* entries per sync answer */
#define SYNC_LIMIT_MAX 1000
#define SYNC_BYTES_MAX (1u << 20) /* entry bytes per sync answer */

/* ---- sync ---- */

typedef struct sync_req {
    hist_wait_t w;
    sess_hist_t *h;
    ts_list_t link; /* in h->w->resyncs */
    sess_sock_t *ss;
    sess_answer_t to;
    uint64_t after, limit, snap_seq, snap_ver;
    int has_after;
    char epoch[17];
    const char *reset;  /* NULL, or why the answer starts from a snapshot */
    ts_buf_t *snapshot; /* the state at snap_seq, as JSON text */
} sync_req_t;

static void sync_free(sync_req_t *r) {
    ts_buf_unref(r->snapshot);
    ts_sess__sock_release(r->ss);
    free(r);
}

static void sync_fail(sync_req_t *r, int status) {
    ts_sess__answer(r->ss, &r->to,
                    ts_sess__error(ts_sess__store_code(status),
                                   "the session history is unavailable; retry", 1000));
    sync_free(r);
}

static void on_sync_page(int status, const ts_store_log_page_t *page, void *ud);

static void sync_read(sess_hist_t *h, sync_req_t *r) {
    ts_sess__hist_op_begin(h);
    int rc = ts_store_log_read(h->sess->store, ts_sess__hist_key(h), r->after, r->limit, on_sync_page, r);
    if (rc) {
        ts_sess__hist_op_end(h);
        sync_fail(r, rc);
    }
}

/* Answers from a snapshot of the committed state (between batches). */
static void sync_reset(sess_hist_t *h, sync_req_t *r) {
    json_t *doc = ts_sess_state_doc(h->st);
    ts_sbuf_t sb = TS_SBUF_INIT;
    ts_json_dump(&sb, doc);
    r->snapshot = ts_sbuf_finish(&sb);
    r->snap_seq = h->known_seq;
    r->snap_ver = h->ver;
    r->after = h->known_seq;
    SESS_COUNT(h->sess->counters[SC_RESYNCS]);
    sync_read(h, r);
}

static void sync_need_reset(sess_hist_t *h, sync_req_t *r, const char *why) {
    r->reset = why;
    if (h->phase == H_READY && !h->dirty && !ts_sess__hist_inflight(h)) {
        sync_reset(h, r);
        return;
    }
    ts_list_insert_tail(&ts_sess__hist_work(h)->resyncs, &r->link);
    if (h->phase == H_NEW)
        ts_sess__hist_load(h); /* load_ready pumps, which answers */
    else if (h->phase == H_READY && !ts_sess__hist_inflight(h))
        ts_sess__hist_batch_end(h); /* dirty: reload, then answer */
}

static void on_sync_page(int status, const ts_store_log_page_t *page, void *ud) {
    sync_req_t *r = ud;
    sess_hist_t *h = r->h;
    ts_sess__hist_op_end(h);
    if (status) {
        sync_fail(r, status);
        return;
    }
    if (!r->reset && (page->trimmed_upto > r->after || r->after > page->last_seq)) {
        sync_need_reset(h, r, page->trimmed_upto > r->after ? "trimmed" : "ahead");
        return;
    }
    if (r->reset && page->trimmed_upto > r->after) {
        /* our snapshot is older than what the store kept after it (another
         * loop or node snapshotted and compacted): reload, then answer */
        ts_buf_unref(r->snapshot);
        r->snapshot = NULL;
        h->dirty = 1;
        sync_need_reset(h, r, r->reset);
        return;
    }
    if (!r->ss->s && !r->to.cb) {
        sync_free(r);
        return;
    }
    ts_sbuf_t out = TS_SBUF_INIT;
    ts_sbuf_printf(&out, "{\"ok\":true,\"epoch\":\"%016" PRIx64 "\",\"seq\":%" PRIu64, h->epoch,
                   page->last_seq);
    if (r->reset) {
        ts_sbuf_printf(&out,
                       ",\"reset\":true,\"reason\":\"%s\",\"snapshot\":{\"seq\":%" PRIu64
                       ",\"ver\":%" PRIu64 ",\"state\":",
                       r->reset, r->snap_seq, r->snap_ver);
        ts_sbuf_append(&out, r->snapshot->data, r->snapshot->len);
        ts_sbuf_putc(&out, '}');
    }
    ts_sbuf_append_str(&out, ",\"entries\":[");
    size_t bytes = 0, n = 0;
    uint64_t last = r->after;
    for (; n < page->n; n++) {
        const ts_store_event_t *e = &page->events[n];
        if (n && bytes + e->data->len > SYNC_BYTES_MAX) break;
        if (n) ts_sbuf_putc(&out, ',');
        ts_sess__with_seq(&out, ts_buf_slice(e->data), e->seq);
        bytes += e->data->len;
        last = e->seq;
    }
    ts_sbuf_printf(&out, "],\"more\":%s}", last < page->last_seq ? "true" : "false");
    SESS_COUNT(h->sess->counters[SC_REPLAYED]);
    TS_MET_BUMP_(h->sess->counters[SC_REPLAYED_ENTRIES], n);
    /* the histogram of answer sizes (cumulative buckets, +Inf = SC_REPLAYED) */
    static const size_t le[] = {1, 10, 100, 1000};
    for (size_t b = 0; b < TS_ARRAY_LEN(le); b++)
        if (n <= le[b]) SESS_COUNT(h->sess->counters[SC_REPLAY_LE_1 + b]);
    ts_sess__answer_text(r->ss, &r->to, ts_slice(ts_sbuf_data(&out), ts_sbuf_len(&out)));
    ts_sbuf_free(&out);
    sync_free(r);
}

static void sync_start(sess_hist_t *h, hist_wait_t *w, int status) {
    sync_req_t *r = TS_CONTAINER_OF(w, sync_req_t, w);
    if (status) {
        sync_fail(r, status);
        return;
    }
    char mine[17];
    snprintf(mine, sizeof mine, "%016" PRIx64, h->epoch);
    if (!r->has_after)
        sync_need_reset(h, r, "initial");
    else if (r->after > 0 && strcmp(r->epoch, mine) != 0)
        sync_need_reset(h, r, "epoch");
    else
        sync_read(h, r);
}

void ts_sess__hist_answer_resyncs(sess_hist_t *h) {
    if (!h->w) return;
    while (!ts_list_empty(&h->w->resyncs)) {
        sync_req_t *r = TS_CONTAINER_OF(h->w->resyncs.next, sync_req_t, link);
        ts_list_remove(&r->link);
        sync_reset(h, r);
    }
}

void ts_sess__hist_sync(sess_sock_t *ss, json_t *arg, const sess_answer_t *to) {
    char why[160];
    json_t *after = NULL, *epoch = NULL, *limit = NULL;
    if (arg && !json_is_null(arg)) {
        if (!json_is_object(arg)) {
            snprintf(why, sizeof why, "sync takes {after?, epoch?, limit?}");
            goto refuse;
        }
        after = json_object_get(arg, "after");
        epoch = json_object_get(arg, "epoch");
        limit = json_object_get(arg, "limit");
    }
    if (after && ts_sess__json_uint(after, TS_JS_MAX_SAFE) < 0) {
        snprintf(why, sizeof why, "after must be a seq (an integer >= 0)");
        goto refuse;
    }
    const char *ep = epoch ? json_string_value(epoch) : NULL;
    if (epoch && (!ep || strlen(ep) != 16 || strspn(ep, "0123456789abcdef") != 16)) {
        snprintf(why, sizeof why, "epoch must be the 16 hex digits the server sent");
        goto refuse;
    }
    if (limit && (ts_sess__json_uint(limit, SYNC_LIMIT_MAX) < 1)) {
        snprintf(why, sizeof why, "limit must be an integer from 1 to %d", SYNC_LIMIT_MAX);
        goto refuse;
    }
    sync_req_t *r = ts_xcalloc(1, sizeof *r);
    ts_list_init(&r->link);
    r->ss = ss;
    ts_sess__sock_hold(ss);
    r->to = *to;
    r->has_after = after != NULL;
    r->after = after ? (uint64_t)json_integer_value(after) : 0;
    r->limit = limit ? (uint64_t)json_integer_value(limit) : SYNC_LIMIT_DEFAULT;
    ts_strlcpy(r->epoch, ep ? ep : "0000000000000000", sizeof r->epoch);
    r->w.run = sync_start;
    r->h = ts_sess__hist_of(ss);
    ts_sess__hist_when_ready(r->h, &r->w);
    return;
refuse:
    ts_sess__answer(ss, to, ts_sess__error("bad_sync", why, 0));
}

/* ---- durable recovery of the stock client ----
 * socket.io-client remembers its pid and the offset of the last entry it
 * received ("h<epoch>.<seq>"), and presents both when it reconnects. If the
 * epoch is the session's and the log still has what came after the seq,
 * the entries it missed are sent to it before the CONNECT reply, and the
 * reply gives its pid back: socket.recovered is true on its side — after a
 * restart too, since the log is the store's. The socket joins its rooms in
 * the very callback that read the last page, and only entries this loop has
 * already relayed (seq <= last_seq) are replayed: what comes later arrives
 * live, so each entry reaches it once and in order. With other nodes the
 * replay goes to the store's last and order.c holds and filters the live
 * entries around it (the same guarantee); with several loops in one
 * process an entry relayed by another loop during the replay may be missed
 * or repeated, which a v3 tab's sync mends. */
typedef struct restore_req {
    hist_wait_t w;
    sess_hist_t *h;
    sess_sock_t *ss;
    uint64_t epoch, after;
    sess_order_t *hold; /* the session's deliveries wait while the log is read (order.c) */
    char pid[64];
} restore_req_t;

static void restore_done(restore_req_t *r, int restored) {
    sess_sock_t *ss = r->ss;
    if (ss->s) ts_sio_connect_finish(ss->s, restored ? r->pid : NULL);
    if (restored) SESS_COUNT(ss->sess->counters[SC_RECOVERED]);
    /* In its rooms now: what waited goes, except what it was replayed. */
    if (r->hold) ts_sess__order_release(r->hold, restored && ss->s ? ts_sio_socket_id(ss->s) : NULL, r->after);
    ts_sess__sock_release(ss);
    free(r);
}

static void restore_read(sess_hist_t *h, restore_req_t *r);

/* 1 if this loop is the only one that writes its sessions' histories: one
 * loop of one process on the embedded store. */
static int sole_writer(const ts_sess_t *sess) {
    return ts_sio_server_loops(sess->sio) == 1 &&
           strcmp(ts_store_backend(sess->store), "memory") == 0;
}

static void on_restore_page(int status, const ts_store_log_page_t *page, void *ud) {
    restore_req_t *r = ud;
    sess_hist_t *h = r->h;
    ts_sess__hist_op_end(h);
    if (!r->ss->s) { /* gone meanwhile */
        restore_done(r, 0);
        return;
    }
    if (status || page->trimmed_upto > r->after || r->after > page->last_seq) {
        restore_done(r, 0); /* too old (or another history): a fresh session */
        return;
    }
    /* One loop on the embedded store relays every entry of its sessions
     * itself: what it has not relayed yet comes live, so the replay stops at
     * what it relayed and each entry arrives once. With other writers (this
     * process's other loops, other nodes) an entry committed while the tab
     * was away was relayed by them, never by this loop: stopping at
     * last_seq missed it (js history@3nodes, history 8, under ASan). Then
     * the replay goes to the store's last, and order.c keeps what is on
     * its way from reaching the tab again (restore_done). */
    uint64_t cap = sole_writer(h->sess) ? h->last_seq : page->last_seq;
    int old = r->ss->id.proto < 3;
    size_t i = 0;
    for (; i < page->n && page->events[i].seq <= cap; i++) {
        const ts_store_event_t *e = &page->events[i];
        r->after = e->seq;
        int change = ts_sess__entry_is_change(e->data);
        if (change && old) continue; /* v1/v2 tabs never get state changes */
        ts_sbuf_t out = TS_SBUF_INIT;
        ts_sess__with_seq(&out, ts_buf_slice(e->data), e->seq);
        char offset[TS_SESS_OFFSET_MAX];
        ts_sess_offset_format(offset, r->epoch, e->seq);
        ts_sio_raw_arg_t arg = {ts_slice(ts_sbuf_data(&out), ts_sbuf_len(&out)), NULL};
        ts_sio_emit_raw_at(r->ss->s, change ? "change" : "event", &arg, 1, offset);
        ts_sbuf_free(&out);
    }
    if (i == page->n && page->n && r->after < cap) {
        restore_read(h, r); /* a full page, and more this loop relayed */
        return;
    }
    restore_done(r, 1); /* joins its rooms now, in this callback */
}

static void restore_read(sess_hist_t *h, restore_req_t *r) {
    /* With other writers, an entry committed after this read may reach this
     * node before the tab joins its rooms, and one committed before it may
     * still be on its way: the session's deliveries here wait for the
     * replay, and then leave out what it was replayed. */
    if (!r->hold && ts_sess__order_on(h->sess)) r->hold = ts_sess__order_hold(h->sess, h->key, h->epoch);
    ts_sess__hist_op_begin(h);
    if (ts_store_log_read(h->sess->store, ts_sess__hist_key(h), r->after, LOAD_PAGE, on_restore_page, r)) {
        ts_sess__hist_op_end(h);
        restore_done(r, 0);
    }
}

static void restore_start(sess_hist_t *h, hist_wait_t *w, int status) {
    restore_req_t *r = TS_CONTAINER_OF(w, restore_req_t, w);
    if (status || r->epoch != h->epoch || !r->ss->s)
        restore_done(r, 0);
    else
        restore_read(h, r);
}

int ts_sess__hist_restore(sess_sock_t *ss, const char *pid, const char *offset) {
    uint64_t epoch, seq;
    if (strlen(pid) >= sizeof ((restore_req_t *)0)->pid ||
        ts_sess_offset_parse(ts_slice_str(offset), &epoch, &seq))
        return 0; /* not an offset of ours: a fresh session */
    restore_req_t *r = ts_xcalloc(1, sizeof *r);
    r->ss = ss;
    r->epoch = epoch;
    r->after = seq;
    ts_strlcpy(r->pid, pid, sizeof r->pid);
    ts_sess__sock_hold(ss);
    r->w.run = restore_start;
    r->h = ts_sess__hist_of(ss);
    ts_sess__hist_when_ready(r->h, &r->w);
    return 1;
}
