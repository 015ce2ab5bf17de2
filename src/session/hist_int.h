/* hist_int.h - private to the history of sessions (history.c: the cache,
 * batches and commits; replay.c: the log read back to one tab). The cache
 * of a session and what replaying needs of it. */
#ifndef TS_SESS_HIST_INT_H
#define TS_SESS_HIST_INT_H
#include <stdint.h>

#include "core/ts_buf.h"
#include "core/ts_list.h"
#include "core/ts_map.h"
#include "core/ts_slice.h"
#include "session/sess_int.h"

#define LOAD_PAGE 1000         /* events per read while folding the tail */
#define TS_JS_MAX_SAFE 9007199254740991ULL /* 2^53 - 1: the largest exact JS integer */

typedef enum { H_NEW, H_LOADING, H_READY } hist_phase_t;

/* What a cache needs once its session is written to: the batch machinery
 * (queue, retries, resyncs waiting for the batch's end, the commit chain)
 * and the exactly-once memory. Made at the first change (or publish that
 * must wait its turn, or mutation seen applied: ts_sess__hist_work), freed
 * with the cache; a session that is only read (a tab's welcome) never has
 * one (issue #13: 136 of the cache's 280 bytes). */
typedef struct hist_work {
    uint64_t spec_ver;      /* ver plus the batch in flight */
    uint64_t chain;         /* the batch in flight's commit chain (ts_store_commit_t) */
    size_t inflight;        /* commits issued and not called back */
    int chain_broken;       /* a commit of the batch in flight failed: the later ones
                             * conflict because of it, not because of others */
    int batch_failed;       /* a commit of the batch in flight did not apply: what
                             * was computed after it saw a state that never was */
    ts_list_t queue;        /* hist_item_t not yet committed, in arrival order */
    ts_list_t retry;        /* items that hit the condition, to compute again */
    ts_list_t resyncs;      /* sync_req_t waiting for the end of the batch */
    ts_map_t applied;       /* "client\x1fmut" -> seq: mutations known applied */
    char **applied_keys;    /* their keys, oldest first (a ring of APPLIED_MAX) */
    size_t applied_head, applied_n;
} hist_work_t;

struct sess_hist {
    ts_sess_t *sess;
    ts_list_t lru;          /* in sess->hist_lru, least recently used first */
    uint8_t phase;          /* hist_phase_t */
    uint8_t dirty;          /* may be behind the store: reload before computing */
    uint8_t snap_pending;   /* a snap_put is in flight */
    uint32_t ops;           /* store calls outstanding (keeps it from eviction) */
    uint64_t epoch, last_seq, trimmed, snap_seq;
    uint64_t ver;           /* committed state version of `st` between batches */
    uint64_t known_seq;     /* between batches, `st` is the state as of this seq */
    uint64_t used_at;       /* loop ms */
    ts_sess_state_t *st;    /* NULL until loaded */
    sess_lowprio_t *lp;     /* presence/telemetry throttling (coalesce.c); NULL if none */
    ts_list_t waiters;      /* hist_wait_t: run once ready (or failed) */
    hist_work_t *w;         /* owned; NULL until the session is written to */
    char key[];             /* "<user>/<session>", NUL-terminated (the key in sess->hists) */
};

/* Waiters: things that need the cache loaded. */
typedef struct hist_wait {
    ts_list_t link;
    void (*run)(sess_hist_t *h, struct hist_wait *w, int status);
} hist_wait_t;

static inline size_t ts_sess__hist_inflight(const sess_hist_t *h) {
    return h->w ? h->w->inflight : 0;
}
static inline ts_slice_t ts_sess__hist_key(const sess_hist_t *h) { return ts_slice_str(h->key); }

/* ---- history.c ---- */
/* The cache of ss's session, made if there is none. */
sess_hist_t *ts_sess__hist_of(sess_sock_t *ss);
/* The cache's work part, made on first use. */
hist_work_t *ts_sess__hist_work(sess_hist_t *h);
/* A store call on behalf of a cache (it stays until the call is back). */
void ts_sess__hist_op_begin(sess_hist_t *h);
void ts_sess__hist_op_end(sess_hist_t *h);
/* Loads the cache (snapshot + fold of the tail) unless it is loading. */
void ts_sess__hist_load(sess_hist_t *h);
/* Runs w once the cache is loaded (at once if it is). */
void ts_sess__hist_when_ready(sess_hist_t *h, hist_wait_t *w);
/* The batch in flight is over (or there is none): reload if dirty, answer
 * resyncs, snapshot, run the next batch. */
void ts_sess__hist_batch_end(sess_hist_t *h);
/* The entry as delivered: `,"seq":N` inserted before its final brace. */
void ts_sess__with_seq(ts_sbuf_t *out, ts_slice_t entry, uint64_t seq);
/* Whether a logged entry is a state change ({"kind":"change",...}). */
int ts_sess__entry_is_change(const ts_buf_t *data);
/* The session's rooms (rooms[0] "s/", rooms[1] "o/": sess_session_rooms) as
 * an entry's recipients: a change not to the older protocols' room. */
void ts_sess__entry_rooms(ts_sio_target_t *to, const char *rooms[2], int change);
/* The error code a store failure is answered with. */
const char *ts_sess__store_code(int status);
/* v as an integer in 0..max, or -1. */
int64_t ts_sess__json_uint(json_t *v, uint64_t max);
/* Answers `to` with text already canonical (or, without an ack, a `synced` event). */
void ts_sess__answer_text(sess_sock_t *ss, const sess_answer_t *to, ts_slice_t text);

/* ---- replay.c ---- */
/* Answers the syncs that waited for the end of the batch, from the cache. */
void ts_sess__hist_answer_resyncs(sess_hist_t *h);

#endif
