/* history.c - the history of each session (protocol v3): envelopes of the
 * session scope logged before anyone receives them, shared-state changes
 * applied under the conflict rules, exactly-once by (client, mut), and the
 * loop's cache of each session's folded state (its struct in hist_int.h;
 * the log read back to one tab, `sync` and the stock client's recovery,
 * in replay.c).
 *
 * The store is the authority (seq, state_ver, the mutation window); this
 * cache only computes. State changes of a session are computed in batches
 * against the cached state, each committed on the condition that the
 * store's state_ver is the one it was computed against (ver, ver+1, ... in
 * one go: the store runs them in issue order). One batch is in flight per
 * session; what arrives meanwhile queues, so between batches the cached
 * state is exactly what the store committed, which is when snapshots are
 * taken and resyncs answered. Any surprise (another loop or node wrote, a
 * resend was a duplicate, the store failed) marks the cache dirty: it is
 * reloaded (snapshot + fold of the tail) and the changes that hit the
 * condition are computed again. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_hlc.h"
#include "core/ts_json.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "session/hist_int.h"
#include "session/sess_int.h"
#include "session/ts_sess_envelope.h"
#include "session/ts_sess_state.h"
#include "store/ts_store.h"

#define BATCH_MAX 256          /* changes committed per batch */
#define RETRIES_MAX 8          /* recomputations of one change after conflicts */
#define HLC_AHEAD_MS 60000     /* a client clock further ahead is refused */
#define IDLE_EVICT_MS 30000    /* idle caches leave after this */
#define APPLIED_MAX 4096       /* mutations a cache remembers as applied */

/* ---- replies: one ack for a message of one or many items ---- */

struct sess_batch {
    sess_sock_t *ss;
    sess_answer_t to;
    int is_array;
    size_t left;
    json_t *items; /* one reply per item; NULL for a single item (answered as it comes) */
};

/* Answers `to` with res (takes): the socket's ack (or its `error` event)
 * or the data API's callback, with the canonical text. */
void ts_sess__answer(sess_sock_t *ss, const sess_answer_t *to, json_t *res) {
    if (to->cb) {
        ts_sbuf_t sb = TS_SBUF_INIT;
        ts_json_dump(&sb, res);
        to->cb(0, ts_slice(ts_sbuf_data(&sb), ts_sbuf_len(&sb)), to->ud);
        ts_sbuf_free(&sb);
        json_decref(res);
    } else if (ss->s) {
        ts_sess__reply(ss->s, to->ack_id, res);
    } else {
        json_decref(res);
    }
}

/* The same with an answer already in canonical text; without an ack, a
 * `synced` event (sync) or, with `quiet` (an ok of a publish), nothing. */
static void answer_text_or(sess_sock_t *ss, const sess_answer_t *to, ts_slice_t text, int quiet) {
    ts_sio_raw_arg_t arg = {text, NULL};
    if (to->cb)
        to->cb(0, text, to->ud);
    else if (ss->s && to->ack_id >= 0)
        ts_sio_ack_raw(ss->s, to->ack_id, &arg, 1);
    else if (ss->s && !quiet)
        ts_sio_emit_raw(ss->s, "synced", &arg, 1);
}

void ts_sess__answer_text(sess_sock_t *ss, const sess_answer_t *to, ts_slice_t text) {
    answer_text_or(ss, to, text, 0);
}

sess_batch_t *ts_sess__batch_new(sess_sock_t *ss, const sess_answer_t *to, size_t n, int is_array) {
    sess_batch_t *b = ts_xcalloc(1, sizeof *b);
    b->ss = ss;
    b->to = *to;
    b->is_array = is_array;
    b->left = n;
    if (is_array || n != 1) {
        b->items = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(b->items, json_null());
    }
    ts_sess__sock_hold(ss);
    return b;
}

static void batch_free(sess_batch_t *b) {
    json_decref(b->items);
    ts_sess__sock_release(b->ss);
    free(b);
}

void ts_sess__batch_ok(sess_batch_t *b, size_t idx, const char *id, const sess_landed_t *at) {
    if (b->items) {
        ts_sess__batch_done(b, idx, at ? json_pack("{s:b,s:s,s:I,s:I}", "ok", 1, "id", id, "seq",
                                                   (json_int_t)at->seq, "ts", (json_int_t)at->ts)
                                       : json_pack("{s:b,s:s}", "ok", 1, "id", id));
        return;
    }
    /* the bytes ts_json_dump writes for that object */
    ts_sbuf_t t = TS_SBUF_INIT;
    ts_sbuf_reserve(&t, 64 + strlen(id));
    ts_sbuf_append_str(&t, "{\"ok\":true,\"id\":");
    ts_json_string(&t, id, strlen(id));
    if (at) {
        ts_sbuf_append_str(&t, ",\"seq\":");
        ts_sbuf_put_u64(&t, at->seq);
        ts_sbuf_append_str(&t, ",\"ts\":");
        ts_sbuf_put_u64(&t, at->ts);
    }
    ts_sbuf_putc(&t, '}');
    answer_text_or(b->ss, &b->to, ts_slice(ts_sbuf_data(&t), ts_sbuf_len(&t)), 1);
    ts_sbuf_free(&t);
    batch_free(b);
}

void ts_sess__batch_done(sess_batch_t *b, size_t idx, json_t *reply /* takes */) {
    sess_sock_t *ss = b->ss;
    if (!b->items) { /* a single item */
        ts_sess__answer(ss, &b->to, reply);
        batch_free(b);
        return;
    }
    json_array_set_new(b->items, idx, reply);
    if (--b->left) return;
    if (b->is_array) {
        size_t failed = 0, i;
        json_t *it;
        json_array_foreach(b->items, i, it) failed += json_is_false(json_object_get(it, "ok"));
        ts_sess__answer(ss, &b->to,
                        json_pack("{s:b,s:I,s:O}", "ok", failed == 0, "failed",
                                  (json_int_t)failed, "results", b->items));
    } else {
        ts_sess__answer(ss, &b->to, json_incref(json_array_get(b->items, 0)));
    }
    batch_free(b);
}

json_t *ts_sess__error(const char *code, const char *message, uint64_t retry_after_ms) {
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", message);
    if (retry_after_ms)
        json_object_set_new(e, "retry_after_ms", json_integer((json_int_t)retry_after_ms));
    return json_pack("{s:b,s:o}", "ok", 0, "error", e);
}

static json_t *item_error(const char *id, const char *code, const char *message,
                          uint64_t retry_after_ms) {
    json_t *r = ts_sess__error(code, message, retry_after_ms);
    if (id && id[0]) json_object_set_new(r, "id", json_string(id));
    return r;
}

/* ---- items: what a message asks of the history ---- */

typedef enum { ITEM_PUB, ITEM_CHANGE } item_kind_t;

typedef struct hist_item {
    ts_list_t link;
    item_kind_t kind;
    sess_hist_t *h;
    sess_batch_t *b;
    size_t idx;
    sess_sock_t *ss;
    ts_buf_t *entry;        /* the log entry (PUB: from arrival; CHANGE: computed) */
    json_t *change;         /* CHANGE: the change object as sent */
    json_t *refusal;        /* CHANGE: the engine's answer while a probe runs */
    json_t *ack;            /* CHANGE: the writer's answer once committed */
    uint64_t mut, base, hlc, ts, ver;
    int has_base, retries;
    int in_batch;           /* issued by hist_pump: its callback ends the batch */
    int known_dup;          /* probed because the cache saw it applied */
    ts_sio_class_t cls;     /* delivery class of its entry */
    uint64_t issued_us;     /* when its commit was issued (uv_hrtime / 1000) */
    char id[TS_SESS_MAX_NAME + 1];
    char cid[TS_SESS_MAX_NAME + 1];
    char type[TS_SESS_MAX_NAME + 1];
    char client[TS_STORE_ID_MAX + 1]; /* (ts_sess__name writes its own into it) */
    char *fence;            /* CHANGE: the lease name of its `lead` (owned), or NULL */
    char fence_holder[2 * TS_SESS_ID_MAX + 2]; /* "<device>/<tab>": who must hold it */
    uint64_t fence_term;
} hist_item_t;
_Static_assert(TS_STORE_ID_MAX + 1 >= SESS_NAME_MAX, "an item's client holds the tab's own");

/* An item answering to item idx of batch b, written by ss. */
static hist_item_t *item_new(item_kind_t kind, sess_sock_t *ss, sess_batch_t *b, size_t idx) {
    hist_item_t *it = ts_xcalloc(1, sizeof *it);
    ts_list_init(&it->link);
    it->kind = kind;
    it->ss = ss;
    it->b = b;
    it->idx = idx;
    return it;
}

static void item_free(hist_item_t *it) {
    ts_buf_unref(it->entry);
    json_decref(it->change);
    json_decref(it->refusal);
    json_decref(it->ack);
    free(it->fence);
    free(it);
}

static void item_reply(hist_item_t *it, json_t *reply /* takes */) {
    ts_sess__batch_done(it->b, it->idx, reply);
    it->b = NULL;
}

/* The entry as delivered: `,"seq":N` inserted before its final brace. */
void ts_sess__with_seq(ts_sbuf_t *out, ts_slice_t entry, uint64_t seq) {
    ts_sbuf_reserve(out, entry.len + 28);
    ts_sbuf_append(out, entry.p, entry.len - 1);
    ts_sbuf_append_str(out, ",\"seq\":");
    ts_sbuf_put_u64(out, seq);
    ts_sbuf_putc(out, '}');
}

int ts_sess__entry_is_change(const ts_buf_t *data) {
    static const char kchange[] = "{\"kind\":\"change\"";
    return data->len > sizeof kchange - 1 && !memcmp(data->data, kchange, sizeof kchange - 1);
}

void ts_sess__entry_rooms(ts_sio_target_t *to, const char *rooms[2], int change) {
    to->rooms = rooms;
    to->nrooms = 2;
    if (change) {
        /* a state change is v3: tabs of the older protocols (in the
         * session's "o/" room, sess_session_rooms) do not get it. Still
         * named as an exception: an older tabsyncd on another node keeps
         * its older tabs in both rooms. */
        to->nrooms = 1;
        to->except = &rooms[1];
        to->nexcept = 1;
    }
}

static void deliver_entry(sess_hist_t *h, hist_item_t *it, const char *event, uint64_t seq) {
    if (h->sess->closed) return; /* the Socket.IO server is gone */
    char offset[TS_SESS_OFFSET_MAX];
    ts_sess_offset_format(offset, h->epoch, seq);
    ts_sbuf_t out = TS_SBUF_INIT;
    ts_sess__with_seq(&out, ts_buf_slice(it->entry), seq);
    ts_sio_raw_arg_t arg = {ts_slice(ts_sbuf_data(&out), ts_sbuf_len(&out)), NULL};
    const char *rooms[2];
    char name[SESS_NAME_MAX], other[SESS_NAME_MAX];
    sess_session_rooms(ts_sess__name(it->ss, SN_ROOM_SESSION, name), other, rooms);
    ts_sio_target_t to = {.skip = it->ss->s, .cls = it->cls, .offset = offset};
    ts_sess__entry_rooms(&to, rooms, it->kind == ITEM_CHANGE);
    if (ts_sess__order_on(h->sess))
        ts_sess__order_local(h->sess, h->key, h->epoch, seq, &to, event, &arg, 1);
    else
        ts_sio_broadcast_raw(h->sess->nsp, &to, event, &arg, 1);
    ts_sbuf_free(&out);
}

/* The append latency histogram: from the commit's issue to its durable
 * callback (the group-commit window and the fsync are most of it). */
static void note_append(ts_sess_t *sess, hist_item_t *it) {
    static const uint64_t le_us[] = {1000, 2500, 5000, 10000, 25000, 100000};
    uint64_t d = uv_hrtime() / 1000 - it->issued_us;
    for (size_t b = 0; b < TS_ARRAY_LEN(le_us); b++)
        if (d <= le_us[b]) SESS_COUNT(sess->counters[SC_APPEND_LE_1MS + b]);
    TS_MET_BUMP_(sess->counters[SC_APPEND_SUM_US], d);
    SESS_COUNT(sess->counters[SC_APPEND_COUNT]);
}

const char *ts_sess__store_code(int status) {
    return status == TS_ETOOBIG ? "too_large" : "store_unavailable";
}

static json_t *store_failure(hist_item_t *it, int status) {
    if (status == TS_ETOOOLD)
        return item_error(it->id, "mutation_too_old",
                          "this mutation number is older than the server remembers; resync", 0);
    if (status == TS_ETOOBIG)
        return item_error(it->id, "too_large", "the entry exceeds the store's event limit", 0);
    return item_error(it->id, ts_sess__store_code(status),
                      "the session store could not take the change; retry", 1000);
}

/* What a duplicate's original did, from its entry when the log still has it. */
static json_t *dup_reply(hist_item_t *it, const ts_store_commit_res_t *res) {
    json_t *r = json_pack("{s:b,s:s,s:b,s:I}", "ok", 1, "id", it->id, "duplicate", 1, "seq",
                          (json_int_t)res->seq);
    if (res->original && res->original->data) {
        json_t *orig = json_loadb((const char *)res->original->data->data,
                                  res->original->data->len, 0, NULL);
        static const char *const keep[] = {"ver", "ts", "effects"};
        for (size_t i = 0; orig && i < TS_ARRAY_LEN(keep); i++) {
            json_t *v = json_object_get(orig, keep[i]);
            if (v) json_object_set(r, keep[i], v);
        }
        json_decref(orig);
    }
    return r;
}

static void hist_pump(sess_hist_t *h);
static void hist_note(sess_hist_t *h, const ts_store_commit_res_t *res);

/* ---- the cache ---- */

static sess_hist_t *hist_get(ts_sess_t *sess, const char *key, int create) {
    sess_hist_t *h = ts_idmap_get(&sess->hists, key);
    if (h) {
        ts_list_remove(&h->lru);
        ts_list_insert_tail(&sess->hist_lru, &h->lru);
    } else if (create) {
        size_t klen = strlen(key);
        h = ts_xcalloc(1, sizeof *h + klen + 1);
        h->sess = sess;
        memcpy(h->key, key, klen);
        ts_list_init(&h->waiters);
        ts_idmap_put(&sess->hists, h);
        ts_list_insert_tail(&sess->hist_lru, &h->lru);
        __atomic_add_fetch(&sess->nhists, 1, __ATOMIC_RELAXED); /* /metrics reads it */
    }
    if (h) h->used_at = uv_now(sess->loop);
    return h;
}

/* The cache's work part, made on first use. */
hist_work_t *ts_sess__hist_work(sess_hist_t *h) {
    if (h->w) return h->w;
    hist_work_t *w = h->w = ts_xcalloc(1, sizeof *w);
    __atomic_add_fetch(&h->sess->nhist_work, 1, __ATOMIC_RELAXED); /* /metrics reads it */
    w->spec_ver = h->ver; /* no batch in flight */
    ts_list_init(&w->queue);
    ts_list_init(&w->retry);
    ts_list_init(&w->resyncs);
    return w;
}

static int hist_idle(const sess_hist_t *h) {
    const hist_work_t *w = h->w;
    return h->phase != H_LOADING && !h->ops && ts_sess__lowprio_idle(h->lp) &&
           ts_list_empty(&h->waiters) &&
           (!w || (!w->inflight && ts_list_empty(&w->queue) && ts_list_empty(&w->retry) &&
                   ts_list_empty(&w->resyncs)));
}

static void applied_clear(sess_hist_t *h);

static void hist_free(sess_hist_t *h) {
    ts_sess_t *sess = h->sess;
    ts_idmap_del(&sess->hists, h->key);
    ts_list_remove(&h->lru);
    __atomic_sub_fetch(&sess->nhists, 1, __ATOMIC_RELAXED);
    ts_sess_state_free(h->st);
    applied_clear(h);
    if (h->w) __atomic_sub_fetch(&sess->nhist_work, 1, __ATOMIC_RELAXED);
    free(h->w);
    ts_sess__lowprio_free(h->lp);
    free(h);
}

/* Mutations this cache saw applied (its commits, the entries it folded).
 * A resend of one goes straight to the store's exactly-once probe instead
 * of being computed into the batch: a duplicate inside a batch's chain of
 * conditional commits would make every later commit of the chain conflict.
 * The store stays the authority; this only avoids most such breaks. */
static size_t applied_key(char *out, size_t cap, const char *client, uint64_t mut) {
    int n = snprintf(out, cap, "%s\x1f%" PRIu64, client, mut);
    return n < 0 ? 0 : TS_MIN((size_t)n, cap - 1);
}

static void applied_note(sess_hist_t *h, const char *client, uint64_t mut, uint64_t seq) {
    if (!client || !mut) return;
    char key[TS_STORE_ID_MAX + 24];
    size_t n = applied_key(key, sizeof key, client, mut);
    hist_work_t *w = ts_sess__hist_work(h);
    if (ts_map_get(&w->applied, key, n)) return;
    if (!w->applied_keys) w->applied_keys = ts_xcalloc(APPLIED_MAX, sizeof(char *));
    if (w->applied_n == APPLIED_MAX) { /* forget the oldest */
        char *old = w->applied_keys[w->applied_head];
        ts_map_del(&w->applied, old, strlen(old));
        free(old);
        w->applied_head = (w->applied_head + 1) % APPLIED_MAX;
        w->applied_n--;
    }
    char *k = ts_xstrdup(key);
    w->applied_keys[(w->applied_head + w->applied_n++) % APPLIED_MAX] = k;
    ts_map_put(&w->applied, k, n, (void *)(uintptr_t)seq);
}

static int applied_has(const sess_hist_t *h, const char *client, uint64_t mut) {
    if (!h->w) return 0;
    char key[TS_STORE_ID_MAX + 24];
    size_t n = applied_key(key, sizeof key, client, mut);
    return ts_map_get(&h->w->applied, key, n) != NULL;
}

static void applied_clear(sess_hist_t *h) {
    hist_work_t *w = h->w;
    if (!w) return;
    for (size_t i = 0; i < w->applied_n; i++)
        free(w->applied_keys[(w->applied_head + i) % APPLIED_MAX]);
    free(w->applied_keys);
    w->applied_keys = NULL;
    w->applied_head = w->applied_n = 0;
    ts_map_deinit(&w->applied);
    w->applied = (ts_map_t)TS_MAP_INIT;
}

/* A store call on behalf of a cache (it stays until the call is back). */
void ts_sess__hist_op_begin(sess_hist_t *h) {
    h->ops++;
    h->sess->pending_ops++;
}
void ts_sess__hist_op_end(sess_hist_t *h) {
    h->ops--;
    ts_sess__op_end(h->sess);
}

static void run_waiters(sess_hist_t *h, int status) {
    while (!ts_list_empty(&h->waiters)) {
        hist_wait_t *w = TS_CONTAINER_OF(h->waiters.next, hist_wait_t, link);
        ts_list_remove(&w->link);
        w->run(h, w, status);
    }
}

static void fail_queue(sess_hist_t *h, int status) {
    if (!h->w) return;
    ts_list_t *l, *tmp;
    TS_LIST_FOREACH_SAFE(l, tmp, &h->w->queue) {
        hist_item_t *it = TS_CONTAINER_OF(l, hist_item_t, link);
        ts_list_remove(&it->link);
        item_reply(it, store_failure(it, status));
        item_free(it);
    }
}

static void load_failed(sess_hist_t *h, int status) {
    ts_warn("session", "cannot load the history of %s: %s", h->key,
            ts_strerror(status));
    h->phase = H_NEW;
    ts_sess_state_free(h->st);
    h->st = NULL;
    run_waiters(h, status);
    fail_queue(h, status);
}

static void load_ready(sess_hist_t *h) {
    h->phase = H_READY;
    h->dirty = 0;
    if (h->w) h->w->spec_ver = h->ver;
    run_waiters(h, 0);
    hist_pump(h);
}

static void on_load_page(int status, const ts_store_log_page_t *page, void *ud);

/* Whether a log entry may be a state change, from its first bytes: every
 * entry written here starts with its "kind" (ts_json_dump keeps the order
 * an entry was built in), and only changes are folded. Parsing each entry
 * to find out made the first load of a session after a restart cost ~45 %
 * of the server's CPU while tabs published (200 sessions of ~900 plain
 * events each). An entry of another shape is parsed and looked at. */
static int maybe_change(const ts_buf_t *d) {
    static const char pre[] = "{\"kind\":\"";
    size_t n = sizeof pre - 1;
    if (d->len < n || memcmp(d->data, pre, n) != 0) return 1;
    const uint8_t *p = d->data + n, *end = d->data + d->len;
    const uint8_t *q = memchr(p, '"', (size_t)(end - p));
    if (!q || memchr(p, '\\', (size_t)(q - p))) return 1;
    return q - p == 6 && memcmp(p, "change", 6) == 0;
}

static void load_read(sess_hist_t *h) {
    ts_sess__hist_op_begin(h);
    int rc = ts_store_log_read(h->sess->store, ts_sess__hist_key(h), h->known_seq, LOAD_PAGE, on_load_page, h);
    if (rc) {
        ts_sess__hist_op_end(h);
        load_failed(h, rc);
    }
}

/* Folds one page of the tail; entries that are not state changes only
 * move known_seq. */
static void on_load_page(int status, const ts_store_log_page_t *page, void *ud) {
    sess_hist_t *h = ud;
    ts_sess__hist_op_end(h);
    if (status) {
        load_failed(h, status);
        return;
    }
    h->last_seq = TS_MAX(h->last_seq, page->last_seq);
    h->trimmed = page->trimmed_upto;
    for (size_t i = 0; i < page->n; i++) {
        const ts_store_event_t *e = &page->events[i];
        if (!maybe_change(e->data)) {
            h->known_seq = e->seq;
            continue;
        }
        json_t *entry = json_loadb((const char *)e->data->data, e->data->len, 0, NULL);
        const char *kind = json_string_value(json_object_get(entry, "kind"));
        if (kind && strcmp(kind, "change") == 0) {
            char why[200];
            uint64_t ver = (uint64_t)json_integer_value(json_object_get(entry, "ver"));
            int rc = ver == h->ver + 1
                         ? ts_sess_state_fold(h->st, json_object_get(entry, "effects"),
                                              json_object_get(entry, "meta"), why, sizeof why)
                         : (snprintf(why, sizeof why, "version %" PRIu64 " follows %" PRIu64, ver,
                                     h->ver),
                            TS_EPROTO);
            if (rc) {
                ts_error("session", "history of %s: entry %" PRIu64 " cannot be folded: %s",
                         h->key, e->seq, why);
                json_decref(entry);
                load_failed(h, TS_ESTORE);
                return;
            }
            h->ver = ver;
            applied_note(h, json_string_value(json_object_get(entry, "client")),
                         (uint64_t)json_integer_value(json_object_get(entry, "mut")), e->seq);
        }
        json_decref(entry);
        h->known_seq = e->seq;
    }
    if (page->n && h->known_seq < page->last_seq)
        load_read(h);
    else
        load_ready(h);
}

static void on_load_info(int status, const ts_store_sess_info_t *info, void *ud) {
    sess_hist_t *h = ud;
    ts_sess__hist_op_end(h);
    if (status) {
        load_failed(h, status);
        return;
    }
    if (h->epoch != info->epoch) applied_clear(h); /* another history */
    h->epoch = info->epoch;
    h->last_seq = info->last_seq;
    h->trimmed = info->trimmed_upto;
    h->snap_seq = info->snap_seq;
    ts_sess_state_free(h->st);
    h->st = NULL;
    if (info->snap) {
        char why[200];
        json_t *snap = json_loadb((const char *)info->snap->data, info->snap->len, 0, NULL);
        int rc = snap ? ts_sess_state_load(snap, &h->st, why, sizeof why)
                      : (snprintf(why, sizeof why, "not JSON"), TS_EPROTO);
        json_decref(snap);
        if (rc) {
            ts_error("session", "history of %s: snapshot at %" PRIu64 " unreadable: %s",
                     h->key, info->snap_seq, why);
            load_failed(h, TS_ESTORE);
            return;
        }
    } else {
        h->st = ts_sess_state_new();
    }
    h->ver = info->snap_ver;
    h->known_seq = info->snap_seq;
    if (info->state_ver == info->snap_ver) {
        /* no change committed after the snapshot (each one counts in
         * state_ver): the tail holds nothing to fold, and is not read */
        h->known_seq = info->last_seq;
        load_ready(h);
        return;
    }
    load_read(h);
}

void ts_sess__hist_load(sess_hist_t *h) {
    if (h->phase == H_LOADING) return;
    h->phase = H_LOADING;
    ts_sess__hist_op_begin(h);
    int rc = ts_store_sess_get(h->sess->store, ts_sess__hist_key(h), on_load_info, h);
    if (rc) {
        ts_sess__hist_op_end(h);
        load_failed(h, rc);
    }
}

/* Runs w once the cache is loaded (at once if it is). */
void ts_sess__hist_when_ready(sess_hist_t *h, hist_wait_t *w) {
    if (h->phase == H_READY && !h->dirty) {
        w->run(h, w, 0);
        return;
    }
    ts_list_insert_tail(&h->waiters, &w->link);
    if (h->phase == H_NEW) ts_sess__hist_load(h);
    else if (h->phase == H_READY && !ts_sess__hist_inflight(h)) { /* dirty and idle: reload now */
        h->phase = H_NEW;
        ts_sess__hist_load(h);
    }
}

/* ---- snapshots ---- */

static void on_snap(int status, void *ud) {
    sess_hist_t *h = ud;
    ts_sess__hist_op_end(h);
    h->snap_pending = 0;
    if (status && status != TS_ESTALE)
        ts_debug("session", "snapshot of %s failed: %s", h->key,
                 ts_strerror(status));
}

static void maybe_snapshot(sess_hist_t *h) {
    ts_sess_t *sess = h->sess;
    if (h->phase != H_READY || h->dirty || ts_sess__hist_inflight(h) || h->snap_pending) return;
    if (h->known_seq < h->snap_seq + sess->cfg.snapshot_every) return;
    json_t *dump = ts_sess_state_dump(h->st);
    ts_sbuf_t sb = TS_SBUF_INIT;
    ts_json_dump(&sb, dump);
    json_decref(dump);
    ts_buf_t *doc = ts_sbuf_finish(&sb);
    ts_sess__hist_op_begin(h);
    int rc = ts_store_snap_put(sess->store, ts_sess__hist_key(h), h->known_seq, h->ver, doc, on_snap, h);
    ts_buf_unref(doc);
    if (rc) {
        ts_sess__hist_op_end(h);
        ts_debug("session", "snapshot of %s refused: %s", h->key,
                 ts_strerror(rc));
        return;
    }
    h->snap_pending = 1;
    h->snap_seq = h->known_seq;
}

/* ---- commits ---- */

/* What a commit's result says about the cache: a newer state_ver than
 * ours means another loop or node changed the state. */
static void hist_note(sess_hist_t *h, const ts_store_commit_res_t *res) {
    if (h->phase != H_READY) return;
    h->epoch = res->epoch;
    h->last_seq = TS_MAX(h->last_seq, res->seq);
    if (res->state_ver != h->ver)
        h->dirty = 1;
    else if (!ts_sess__hist_inflight(h))
        h->known_seq = TS_MAX(h->known_seq, res->seq);
}

static void on_pub_commit(int status, const ts_store_commit_res_t *res, void *ud) {
    hist_item_t *it = ud;
    sess_hist_t *h = it->h;
    ts_sess__hist_op_end(h);
    if (status == 0) {
        note_append(h->sess, it);
        h->epoch = res->epoch; /* the entry's offset names it, loaded or not */
        deliver_entry(h, it, "event", res->seq);
        SESS_COUNT(h->sess->counters[SC_RELAYED]);
        SESS_COUNT(h->sess->counters[SC_LOGGED]);
        /* a v1/v2 publisher keeps the ack it knows; v3 learns where it landed */
        sess_landed_t at = {res->seq, it->ts};
        ts_sess__batch_ok(it->b, it->idx, it->id, it->ss->id.proto < 3 ? NULL : &at);
        it->b = NULL;
    } else if (status == TS_EDUP) {
        SESS_COUNT(h->sess->counters[SC_DUPLICATES]);
        item_reply(it, dup_reply(it, res));
    } else {
        item_reply(it, store_failure(it, status));
    }
    if (status == 0 || status == TS_EDUP) hist_note(h, res);
    if (it->in_batch) {
        item_free(it);
        if (!--h->w->inflight) ts_sess__hist_batch_end(h);
        return;
    }
    item_free(it);
    if (status == 0 && h->phase == H_NEW &&
        res->seq >= h->snap_seq + h->sess->cfg.snapshot_every)
        ts_sess__hist_load(h); /* loading ends in maybe_snapshot through hist_pump */
    else
        maybe_snapshot(h);
}

static int commit_pub(sess_hist_t *h, hist_item_t *it) {
    ts_store_commit_t c = {.event = it->entry,
                           .client = ts_slice_str(it->client),
                           .mut = it->mut,
                           .if_ver = TS_STORE_ANY_VER,
                           .is_state = 0};
    if (!it->mut) c.client = ts_slice("", 0);
    ts_sess__hist_op_begin(h);
    it->issued_us = uv_hrtime() / 1000;
    int rc = ts_store_commit(h->sess->store, ts_sess__hist_key(h), &c, on_pub_commit, it);
    if (rc) ts_sess__hist_op_end(h);
    return rc;
}

static void on_change_commit(int status, const ts_store_commit_res_t *res, void *ud) {
    hist_item_t *it = ud;
    sess_hist_t *h = it->h;
    ts_sess_t *sess = h->sess;
    hist_work_t *w = h->w; /* a change was queued: it has one */
    ts_sess__hist_op_end(h);
    w->inflight--;
    if (status != 0 && !it->refusal) w->batch_failed = 1;
    if (it->refusal) { /* a probe: was the refused change applied before? */
        if (status == TS_EDUP) {
            SESS_COUNT(sess->counters[SC_DUPLICATES]);
            item_reply(it, dup_reply(it, res));
        } else if (status == TS_ECONFLICT && it->known_dup) {
            /* the store never applied it (another history): compute it */
            char key[TS_STORE_ID_MAX + 24];
            ts_map_del(&w->applied, key, applied_key(key, sizeof key, it->client, it->mut));
            it->known_dup = 0;
            json_decref(it->refusal);
            it->refusal = NULL;
            ts_list_insert_tail(&w->retry, &it->link);
            it = NULL;
        } else if (status == TS_ECONFLICT && (w->batch_failed || res->state_ver != it->ver - 1)) {
            /* refused by a state that was not the store's: a speculation of
             * this batch that did not come true (computed again, as often as
             * it takes: our own resends cause it), or another loop or node
             * wrote (counts toward busy) */
            if (!w->batch_failed) {
                h->dirty = 1;
                it->retries++;
            }
            json_decref(it->refusal);
            it->refusal = NULL;
            if (it->retries > RETRIES_MAX) {
                item_reply(it, item_error(it->id, "busy",
                                          "the session state kept changing under this change; "
                                          "retry",
                                          100));
            } else {
                ts_list_insert_tail(&w->retry, &it->link);
                it = NULL;
            }
        } else if (status == TS_ECONFLICT) {
            item_reply(it, json_incref(it->refusal));
        } else {
            item_reply(it, store_failure(it, status));
        }
        if (it) item_free(it);
    } else if (status == 0) {
        note_append(sess, it);
        h->ver = res->state_ver;
        h->known_seq = res->seq;
        h->last_seq = TS_MAX(h->last_seq, res->seq);
        h->epoch = res->epoch;
        deliver_entry(h, it, "change", res->seq);
        applied_note(h, it->client, it->mut, res->seq);
        SESS_COUNT(sess->counters[SC_LOGGED]);
        SESS_COUNT(sess->counters[SC_CHANGES]);
        json_t *r = it->ack;
        it->ack = NULL;
        json_object_set_new(r, "seq", json_integer((json_int_t)res->seq));
        json_object_set_new(r, "epoch", json_sprintf("%016" PRIx64, res->epoch));
        item_reply(it, r);
        item_free(it);
    } else if (status == TS_ECONFLICT && it->retries < RETRIES_MAX) {
        /* computed against a state that did not become the store's: again.
         * Only conflicts caused by others count toward giving up. */
        h->dirty = 1;
        if (!w->chain_broken) it->retries++;
        ts_buf_unref(it->entry);
        it->entry = NULL;
        ts_list_insert_tail(&w->retry, &it->link);
    } else {
        h->dirty = 1;
        w->chain_broken = 1;
        w->batch_failed = 1;
        if (status == TS_EDUP) {
            SESS_COUNT(sess->counters[SC_DUPLICATES]);
            item_reply(it, dup_reply(it, res));
        } else if (status == TS_ESTALE && res) {
            /* a leader-only change of a term that is not the lease's now */
            SESS_COUNT(sess->counters[SC_EL_STALE]);
            json_t *r = item_error(it->id, "stale_term",
                                   "the lease of this term is gone: the change was not applied",
                                   0);
            json_object_set_new(r, "term", json_integer((json_int_t)res->term));
            item_reply(it, r);
        } else if (status == TS_ECONFLICT) {
            item_reply(it, item_error(it->id, "busy",
                                      "the session state kept changing under this change; retry",
                                      100));
        } else {
            item_reply(it, store_failure(it, status));
        }
        item_free(it);
    }
    if (!w->inflight) ts_sess__hist_batch_end(h);
}

/* ---- computing a change ---- */

int64_t ts_sess__json_uint(json_t *v, uint64_t max) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return x < 0 || (uint64_t)x > max ? -1 : x;
}

/* The log entry of an applied change and the ack its writer gets. */
static void change_entry(hist_item_t *it, ts_sess_state_outcome_t *o) {
    sess_sock_t *ss = it->ss;
    json_t *e = json_object();
    json_object_set_new(e, "kind", json_string("change"));
    json_object_set_new(e, "v", json_integer(TS_SESS_PROTO_HISTORY));
    json_object_set_new(e, "type", json_string(it->type));
    json_object_set_new(e, "id", json_string(it->id));
    if (it->cid[0]) json_object_set_new(e, "cid", json_string(it->cid));
    json_object_set_new(e, "prio", json_string("state"));
    json_object_set_new(e, "to", json_string("session"));
    json_object_set_new(e, "from", json_pack("{s:s,s:s,s:s}", "user", ss->id.user, "device",
                                             ss->id.device, "tab", ss->id.tab));
    json_object_set_new(e, "client", json_string(it->client));
    if (it->mut) json_object_set_new(e, "mut", json_integer((json_int_t)it->mut));
    if (it->has_base) json_object_set_new(e, "base", json_integer((json_int_t)it->base));
    json_object_set_new(e, "ts", json_integer((json_int_t)it->ts));
    json_object_set_new(e, "hlc", json_integer((json_int_t)it->hlc));
    json_object_set_new(e, "ver", json_integer((json_int_t)it->ver));
    json_object_set(e, "effects", o->effects);
    json_object_set(e, "meta", o->meta);
    ts_sbuf_t sb = TS_SBUF_INIT;
    ts_json_dump(&sb, e);
    json_decref(e);
    ts_buf_unref(it->entry); /* a probe's, when the item comes back to be computed */
    it->entry = ts_sbuf_finish(&sb);
    json_decref(it->ack);
    it->ack = json_pack("{s:b,s:s,s:I,s:I,s:O,s:O}", "ok", 1, "id", it->id, "ver",
                        (json_int_t)it->ver, "ts", (json_int_t)it->ts, "results", o->results,
                        "effects", o->effects);
}

static json_t *refusal_reply(hist_item_t *it, sess_hist_t *h, ts_sess_state_outcome_t *o) {
    json_t *r = item_error(it->id, o->code, o->why, 0);
    json_object_set_new(r, "ver", json_integer((json_int_t)h->w->spec_ver));
    if (o->conflicts) json_object_set(r, "conflicts", o->conflicts);
    return r;
}

static int probe(sess_hist_t *h, hist_item_t *it);

/* Computes one change against the speculative state and commits it (or,
 * refused, answers it — after asking the store whether a resend of it was
 * applied before). Returns 1 if a commit was issued. */
static int compute(sess_hist_t *h, hist_item_t *it) {
    ts_sess_t *sess = h->sess;
    if (it->ss->gone && !it->ss->backend && it->mut) {
        /* Its sender left before it was computed (queued, or to compute
         * again after a conflict): dropped. The sender has no answer, so it
         * resends with the same mut, perhaps through another node; were
         * this copy applied later, after that node had refused the resend
         * (its state then made it a conflict; here one of the sender's own
         * later writes would not), the sender would have been told
         * "conflict" for a change in the log (js history@3nodes' chaos
         * checker saw exactly that, 2 runs in 6). */
        item_reply(it, item_error(it->id, "gone", "the sender disconnected before it was applied", 0));
        item_free(it);
        return 0;
    }
    uint64_t wall = ts_wall_ms();
    uint64_t now = ts_hlc_now(&sess->sh->hlc, wall);
    uint64_t hlc = now;
    if (it->hlc && ts_hlc_recv(&sess->sh->hlc, it->hlc, wall, HLC_AHEAD_MS, &now) != 0) {
        item_reply(it, item_error(it->id, "clock_skew",
                                  "hlc is more than 60 s ahead of the server's clock", 0));
        item_free(it);
        return 0;
    }
    if (it->hlc) hlc = it->hlc;
    it->ts = now;
    if (it->mut && applied_has(h, it->client, it->mut)) {
        /* a resend this cache saw applied: the store answers from the original */
        it->known_dup = 1;
        it->refusal = item_error(it->id, "busy", "could not confirm the original; retry", 100);
        return probe(h, it);
    }
    hist_work_t *w = h->w; /* a change was queued: it has one */
    it->ver = w->spec_ver + 1;
    ts_sess_state_ctx_t ctx = {.ver = it->ver,
                               .base = it->base,
                               .has_base = it->has_base,
                               .hlc = hlc,
                               .actor = it->client,
                               .max_bytes = sess->cfg.state_max_bytes};
    it->hlc = hlc;
    ts_sess_state_outcome_t o = {0};
    int rc = ts_sess_state_apply(h->st, sess->rules, it->change, &ctx, &o);
    if (rc == 0) {
        size_t i;
        json_t *res;
        json_array_foreach(o.results, i, res) {
            const char *st = json_string_value(json_object_get(res, "status"));
            if (st && !strcmp(st, "superseded")) SESS_COUNT(sess->counters[SC_SUPERSEDED]);
        }
        change_entry(it, &o);
        ts_sess_state_outcome_clear(&o);
        ts_store_commit_t c = {.event = it->entry,
                               .client = ts_slice_str(it->client),
                               .mut = it->mut,
                               .if_ver = w->spec_ver,
                               .is_state = 1,
                               .chain = w->chain,
                               .fence = it->fence ? ts_slice_str(it->fence) : ts_slice("", 0),
                               .fence_term = it->fence_term,
                               .fence_holder = ts_slice_str(it->fence_holder)};
        if (!it->mut) c.client = ts_slice("", 0);
        ts_sess__hist_op_begin(h);
        it->issued_us = uv_hrtime() / 1000;
        int crc = ts_store_commit(sess->store, ts_sess__hist_key(h), &c, on_change_commit, it);
        if (crc) {
            ts_sess__hist_op_end(h);
            /* the state moved under a change nobody will commit */
            h->dirty = 1;
            item_reply(it, store_failure(it, crc));
            item_free(it);
            return 0;
        }
        w->spec_ver++;
        w->inflight++;
        return 1;
    }
    if (!strcmp(o.code, "conflict")) SESS_COUNT(sess->counters[SC_CONFLICTS]);
    json_t *refusal = refusal_reply(it, h, &o);
    ts_sess_state_outcome_clear(&o);
    /* A refusal is only as true as the state it was computed on: the probe
     * asks the store, in the batch's order, whether that state is the
     * store's (another loop or node may have written) and, for a resend,
     * whether the change was applied before (its effect would be there). */
    it->refusal = refusal;
    return probe(h, it);
}

/* Asks the store (TS_STORE_PROBE_VER writes nothing) whether it->mut was
 * applied, and which state version is current: the answer is the
 * original's, or it->refusal if it was computed on the current state, or
 * the change is computed again. Returns 1 if the probe was issued. */
static int probe(sess_hist_t *h, hist_item_t *it) {
    ts_sess_t *sess = h->sess;
    ts_buf_unref(it->entry);
    it->entry = ts_buf_from("{}", 2);
    ts_store_commit_t c = {.event = it->entry,
                           .client = ts_slice_str(it->client),
                           .mut = it->mut,
                           .if_ver = TS_STORE_PROBE_VER,
                           .is_state = 0};
    if (!it->mut) c.client = ts_slice("", 0);
    it->ver = h->w->spec_ver + 1; /* the refusal saw the state at spec_ver */
    ts_sess__hist_op_begin(h);
    if (ts_store_commit(sess->store, ts_sess__hist_key(h), &c, on_change_commit, it) != 0) {
        ts_sess__hist_op_end(h);
        item_reply(it, json_incref(it->refusal));
        item_free(it);
        return 0;
    }
    h->w->inflight++;
    return 1;
}

/* ---- batches ---- */

/* The batch in flight is over: the cache is the store's state again (or
 * dirty). Reload if needed, answer resyncs, snapshot, run the next batch. */
void ts_sess__hist_batch_end(sess_hist_t *h) {
    hist_work_t *w = h->w;
    if (w) {
        w->chain_broken = 0;
        w->batch_failed = 0;
    }
    if (w && !ts_list_empty(&w->retry)) { /* computed again first, in their order */
        ts_list_t *first = w->retry.next, *last = w->retry.prev;
        first->prev = &w->queue;
        last->next = w->queue.next;
        w->queue.next->prev = last;
        w->queue.next = first;
        ts_list_init(&w->retry);
    }
    if (h->dirty) {
        h->phase = H_NEW;
        ts_sess__hist_load(h); /* load_ready pumps */
        return;
    }
    if (w) w->spec_ver = h->ver;
    ts_sess__hist_answer_resyncs(h);
    maybe_snapshot(h);
    hist_pump(h);
}

static void hist_pump(sess_hist_t *h) {
    if (h->phase != H_READY || ts_sess__hist_inflight(h)) return;
    if (h->dirty) {
        ts_sess__hist_batch_end(h);
        return;
    }
    ts_sess__hist_answer_resyncs(h);
    hist_work_t *w = h->w;
    if (!w || ts_list_empty(&w->queue)) {
        maybe_snapshot(h);
        return;
    }
    /* the batch's commits each assume the previous one applied: if one does
     * not, the store refuses the rest even if another writer's change has
     * meanwhile taken the version they expect */
    w->chain = __atomic_add_fetch(&h->sess->sh->chain_seq, 1, __ATOMIC_RELAXED);
    size_t n = 0;
    while (!ts_list_empty(&w->queue) && n < BATCH_MAX) {
        hist_item_t *it = TS_CONTAINER_OF(w->queue.next, hist_item_t, link);
        ts_list_remove(&it->link);
        n++;
        if (it->kind == ITEM_PUB) {
            it->in_batch = 1;
            if (commit_pub(h, it) == 0) {
                w->inflight++;
            } else {
                item_reply(it, store_failure(it, TS_ESTORE));
                item_free(it);
            }
        } else {
            compute(h, it);
        }
    }
    if (!w->inflight) maybe_snapshot(h);
}

/* ---- entry points ---- */

sess_hist_t *ts_sess__hist_of(sess_sock_t *ss) {
    return hist_get(ss->sess, sess_key(ss, SK_HIST), 1);
}

sess_lowprio_t **ts_sess__hist_lowprio(sess_sock_t *ss) { return &ts_sess__hist_of(ss)->lp; }

void ts_sess__hist_publish(sess_sock_t *ss, sess_batch_t *b, size_t idx, ts_buf_t *entry,
                           const sess_pub_meta_t *m) {
    sess_hist_t *h = ts_sess__hist_of(ss);
    hist_item_t *it = item_new(ITEM_PUB, ss, b, idx);
    it->h = h;
    it->entry = entry;
    it->mut = m->mut;
    it->ts = m->ts;
    it->cls = m->cls;
    ts_strlcpy(it->id, m->id, sizeof it->id);
    ts_strlcpy(it->client, m->client, sizeof it->client);
    /* behind queued changes of this session, to keep each sender's order */
    if ((h->w && (!ts_list_empty(&h->w->queue) || !ts_list_empty(&h->w->retry))) ||
        h->phase == H_LOADING) {
        ts_list_insert_tail(&ts_sess__hist_work(h)->queue, &it->link);
        return;
    }
    if (commit_pub(h, it) != 0) {
        item_reply(it, store_failure(it, TS_ESTORE));
        item_free(it);
    }
}

/* Parses one change of a `state` message into an item. Returns NULL after
 * answering it if it is malformed. */
static hist_item_t *change_item(sess_sock_t *ss, sess_batch_t *b, size_t idx, json_t *c) {
    char why[160];
    const char *code = "bad_change";
    json_t *idv = json_object_get(c, "id");
    const char *id = json_string_value(idv);
    if (!json_is_object(c)) {
        snprintf(why, sizeof why, "a change must be an object");
        goto refuse;
    }
    json_t *v = json_object_get(c, "v");
    if (!json_is_integer(v) || json_integer_value(v) < TS_SESS_PROTO_HISTORY ||
        json_integer_value(v) > TS_SESS_PROTO_CURRENT) {
        snprintf(why, sizeof why, "v must be %d or %d", TS_SESS_PROTO_HISTORY,
                 TS_SESS_PROTO_CURRENT);
        goto refuse;
    }
    if (!id || !ts_sess_name_ok(id)) {
        id = NULL;
        snprintf(why, sizeof why, "id must be 1-64 characters of [A-Za-z0-9._:/-]");
        goto refuse;
    }
    static const char *const names[] = {"cid", "type", "client"};
    const char *vals[3] = {NULL, "state", NULL};
    for (int i = 0; i < 3; i++) {
        json_t *x = json_object_get(c, names[i]);
        if (!x || json_is_null(x)) continue;
        vals[i] = json_string_value(x);
        if (!vals[i] || !ts_sess_name_ok(vals[i])) {
            snprintf(why, sizeof why, "%s must be 1-64 characters of [A-Za-z0-9._:/-]", names[i]);
            goto refuse;
        }
    }
    int64_t mut = 0, base = 0, hlc = 0;
    json_t *x;
    if ((x = json_object_get(c, "mut")) && (mut = ts_sess__json_uint(x, TS_JS_MAX_SAFE)) < 1) {
        snprintf(why, sizeof why, "mut must be an integer from 1 to 2^53-1");
        goto refuse;
    }
    if ((x = json_object_get(c, "base")) && (base = ts_sess__json_uint(x, TS_JS_MAX_SAFE)) < 0) {
        snprintf(why, sizeof why, "base must be a state version (an integer >= 0)");
        goto refuse;
    }
    if ((x = json_object_get(c, "hlc")) && (hlc = ts_sess__json_uint(x, TS_JS_MAX_SAFE)) < 1) {
        snprintf(why, sizeof why, "hlc must be a positive integer (ms * 1024 + counter)");
        goto refuse;
    }
    char fence[TS_STORE_ID_MAX + 1] = "";
    uint64_t fence_term = 0;
    if ((x = json_object_get(c, "lead")) &&
        ts_sess__el_fence(ss, x, fence, sizeof fence, &fence_term, why, sizeof why))
        goto refuse;
    hist_item_t *it = item_new(ITEM_CHANGE, ss, b, idx);
    it->cls = TS_SIO_CLASS_STATE;
    if (fence[0]) {
        it->fence = ts_xstrdup(fence);
        it->fence_term = fence_term;
        const char *h[] = {ss->id.device, ss->id.tab}; /* the holder id of election.c */
        ts_strjoin(it->fence_holder, sizeof it->fence_holder, '/', h, 2);
    }
    it->change = json_copy(c); /* shallow: the engine only reads merge/patch */
    it->mut = (uint64_t)mut;
    it->base = (uint64_t)base;
    it->has_base = json_object_get(c, "base") != NULL;
    it->hlc = (uint64_t)hlc;
    ts_strlcpy(it->id, id, sizeof it->id);
    if (vals[0]) ts_strlcpy(it->cid, vals[0], sizeof it->cid);
    ts_strlcpy(it->type, vals[1], sizeof it->type);
    if (vals[2])
        ts_strlcpy(it->client, vals[2], sizeof it->client);
    else
        ts_sess__name(ss, SN_CLIENT, it->client);
    return it;
refuse:
    ts_sess__batch_done(b, idx, item_error(id, code, why, 0));
    return NULL;
}

void ts_sess__hist_state(sess_sock_t *ss, json_t *arg, const sess_answer_t *to) {
    ts_sess_t *sess = ss->sess;
    int is_array = json_is_array(arg);
    size_t n = is_array ? json_array_size(arg) : 1;
    if (is_array && (n == 0 || n > sess->cfg.max_batch)) {
        char why[120];
        snprintf(why, sizeof why, "a state message holds 1 to %u changes", sess->cfg.max_batch);
        ts_sess__answer(ss, to, ts_sess__error("bad_change", why, 0));
        return;
    }
    sess_batch_t *b = ts_sess__batch_new(ss, to, n, is_array);
    sess_hist_t *h = ts_sess__hist_of(ss);
    hist_work_t *w = ts_sess__hist_work(h); /* the session's first write makes it */
    for (size_t i = 0; i < n; i++) {
        hist_item_t *it = change_item(ss, b, i, is_array ? json_array_get(arg, i) : arg);
        if (!it) continue;
        it->h = h;
        ts_list_insert_tail(&w->queue, &it->link);
    }
    if (h->phase == H_NEW) ts_sess__hist_load(h);
    else hist_pump(h);
}

/* The v3 welcome waits for the history: it says where the session is, as
 * the store has it now (another loop or node may have written since this
 * loop's cache last looked). It asks the store without the session's cache:
 * a tab that is only welcomed makes none (issue #13). */
static void on_welcome_info(int status, const ts_store_sess_info_t *info, void *ud) {
    sess_sock_t *ss = ud;
    ts_sess__op_end(ss->sess);
    if (ss->s) ts_sess__emit_welcome(ss, status == 0 ? info : NULL);
    ts_sess__sock_release(ss);
}

void ts_sess__hist_welcome(sess_sock_t *ss) {
    ts_sess_t *sess = ss->sess;
    ts_sess__sock_hold(ss);
    sess->pending_ops++;
    if (ts_store_sess_get(sess->store, ts_slice_str(sess_key(ss, SK_HIST)), on_welcome_info, ss) !=
        0) {
        sess->pending_ops--;
        ts_sess__emit_welcome(ss, NULL); /* no history to tell of */
        ts_sess__sock_release(ss);
    }
}

/* The health of one session's history, for the admin API: the store's
 * numbers (fresh: another loop or node may have written), and this loop's
 * cache of it. */
typedef struct health_req {
    sess_hist_t *h;
    sess_sock_t *ss;
    sess_answer_t to;
} health_req_t;

static void on_health(int status, const ts_store_sess_info_t *info, void *ud) {
    health_req_t *r = ud;
    sess_hist_t *h = r->h;
    ts_sess__hist_op_end(h);
    if (status) {
        ts_sess__answer(r->ss, &r->to,
                        ts_sess__error(ts_sess__store_code(status), "the session history is unavailable", 1000));
    } else {
        size_t queued = 0;
        if (h->w)
            for (ts_list_t *l = h->w->queue.next; l != &h->w->queue; l = l->next) queued++;
        json_t *o = json_pack("{s:b,s:s%,s:I,s:I,s:I,s:I,s:I}", "ok", 1, "epoch", "", (size_t)0,
                              "seq", (json_int_t)info->last_seq, "ver",
                              (json_int_t)info->state_ver, "snapshot_seq",
                              (json_int_t)info->snap_seq, "trimmed_upto",
                              (json_int_t)info->trimmed_upto, "entries_since_snapshot",
                              (json_int_t)(info->last_seq - TS_MIN(info->snap_seq, info->last_seq)));
        json_object_set_new(o, "epoch", json_sprintf("%016" PRIx64, info->epoch));
        json_object_set_new(o, "cache",
                            json_pack("{s:b,s:I,s:I,s:I,s:I}", "loaded", h->phase == H_READY,
                                      "ver", (json_int_t)h->ver, "state_bytes",
                                      (json_int_t)(h->st ? ts_sess_state_bytes(h->st) : 0),
                                      "queued", (json_int_t)queued, "in_flight",
                                      (json_int_t)ts_sess__hist_inflight(h)));
        ts_sess__answer(r->ss, &r->to, o);
    }
    ts_sess__sock_release(r->ss);
    free(r);
}

void ts_sess__hist_health(sess_sock_t *ss, const sess_answer_t *to) {
    health_req_t *r = ts_xcalloc(1, sizeof *r);
    r->ss = ss;
    r->to = *to;
    r->h = ts_sess__hist_of(ss);
    ts_sess__sock_hold(ss);
    ts_sess__hist_op_begin(r->h);
    int rc = ts_store_sess_get(ss->sess->store, ts_sess__hist_key(r->h), on_health, r);
    if (rc) {
        ts_sess__hist_op_end(r->h);
        ts_sess__answer(ss, to, ts_sess__error(ts_sess__store_code(rc), "the session history is unavailable", 1000));
        ts_sess__sock_release(ss);
        free(r);
    }
}

/* ---- lifecycle ---- */

static size_t hist_doc_bytes(const sess_hist_t *h) {
    return h->st ? ts_sess_state_bytes(h->st) : 0;
}

/* Each sweep: caches idle for IDLE_EVICT_MS leave, and while the loop keeps
 * more sessions or more document bytes than configured, the least recently
 * used idle ones leave too (a cache with work in flight stays: the bounds
 * may be passed by what is being worked on). An evicted session is loaded
 * again (snapshot + tail) when it is next used. Summing the bytes walks
 * every cache: 10,000 of them cost ~20 µs a second (one loop turn). */
void ts_sess__hist_sweep(ts_sess_t *sess) {
    uint64_t now = uv_now(sess->loop);
    size_t bytes = 0;
    ts_list_t *l, *tmp;
    for (l = sess->hist_lru.next; l != &sess->hist_lru; l = l->next)
        bytes += hist_doc_bytes(TS_CONTAINER_OF(l, sess_hist_t, lru));
    TS_LIST_FOREACH_SAFE(l, tmp, &sess->hist_lru) {
        sess_hist_t *h = TS_CONTAINER_OF(l, sess_hist_t, lru);
        int over = sess->nhists > sess->cfg.hist_cache_max || bytes > sess->cfg.hist_cache_bytes;
        if (!over && now - h->used_at < IDLE_EVICT_MS) break; /* the rest are newer */
        if (!hist_idle(h)) continue;
        if (over) SESS_COUNT(sess->counters[SC_HIST_EVICTED]);
        bytes -= hist_doc_bytes(h);
        hist_free(h);
    }
    __atomic_store_n(&sess->hist_bytes, bytes, __ATOMIC_RELAXED);
}

/* The namespace is closing: queued work is dropped (its sockets are gone);
 * what the store holds completes and is then released by _deinit. */
/* Everything a cache still holds that was not committed: retried items
 * join the queue, which is failed. */
static void drop_pending(sess_hist_t *h, int status) {
    hist_work_t *w = h->w;
    if (!w) return;
    while (!ts_list_empty(&w->retry)) {
        ts_list_t *m = w->retry.next;
        ts_list_remove(m);
        ts_list_insert_tail(&w->queue, m);
    }
    fail_queue(h, status);
}

void ts_sess__hist_shutdown(ts_sess_t *sess) {
    ts_list_t *l;
    for (l = sess->hist_lru.next; l != &sess->hist_lru; l = l->next)
        drop_pending(TS_CONTAINER_OF(l, sess_hist_t, lru), TS_ECLOSED);
}

/* Every store call is back: nothing refers to the caches any more. */
void ts_sess__hist_deinit(ts_sess_t *sess) {
    while (!ts_list_empty(&sess->hist_lru)) {
        sess_hist_t *h = TS_CONTAINER_OF(sess->hist_lru.next, sess_hist_t, lru);
        ts_assert(h->ops == 0);
        drop_pending(h, TS_ECLOSED);
        hist_free(h);
    }
    ts_idmap_deinit(&sess->hists);
}

void ts_sess__hist_init(ts_sess_t *sess) {
    ts_idmap_init(&sess->hists, offsetof(sess_hist_t, key), 0);
    ts_list_init(&sess->hist_lru);
}

size_t ts_sess__hist_count(const ts_sess_t *sess) { return sess->nhists; }
