/* tcp.c - listener, connections, reads and batched writes.
 * The sockets sit in the net's own epoll set, which libuv's loop watches
 * as one descriptor: a loop turn's ready sockets are then read in io_uring
 * batches (uring.c) instead of a read call each. Writes are only queued
 * when produced; a check handle flushes every connection with pending
 * bytes once per loop turn in a single write (in io_uring batches too, or
 * one sendmsg each), because one write per delivered message is what caps
 * a server's rate. */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/ts_err.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "metrics/ts_met.h"
#include "net/net_int.h"

#define DEFAULT_MAX_SEND_QUEUE (16u << 20)
#define LINGER_MS 2000
#define EARLY_FLUSH_BYTES (256u << 10) /* flush within the turn past this */
/* A slow consumer is a peer that stays more than --max-send-queue bytes
 * behind for SLOW_GRACE_MS: a burst to a peer that reads is not one. The
 * hard cap bounds memory meanwhile: the limit plus what a kernel socket
 * buffer can hold (tcp_wmem max), and at least four times the limit. */
#define SLOW_GRACE_MS 1000
#define END_DEADLINE_MS 10000 /* a graceful end becomes a close after this */
#define BURST_ALLOWANCE (4u << 20)
#define RBUF_MIN_ROOM 16384

static void flush_conn(ts_conn_t *c);
static void handoff_now(ts_conn_t *c);
static void fail_later(ts_conn_t *c);

/* A request's connection on its way to another loop (ts_http_conn_handoff). */
typedef struct conn_handoff {
    ts_sbuf_t req;    /* the request, re-serialised */
    ts_net_handoff_cb cb;
    void *ud;
} conn_handoff_t;


/* Bytes the peer has not taken yet: queued, and waiting for the socket. */
static size_t unsent(const ts_conn_t *c) { return c->w ? c->w->pend_bytes + c->w->waiting : 0; }
static void net_handle_closed(uv_handle_t *h);

/* Frees the net object once its last handle and connection are gone. */
static void net_maybe_done(ts_net_t *net) {
    if (!net->closing || net->handles_open != 0) return;
    void (*cb)(void *) = net->close_cb;
    void *ud = net->close_ud;
    ts_tls__ctx_free(net->tls_ctx);
    ts_uring__free(net->uring);
    free(net->slots);
    if (net->reserve_fd >= 0) close(net->reserve_fd);
    free(net);
    if (cb) cb(ud);
}

/* An active idle handle only stops the loop from blocking in poll, so that
 * writes queued by close callbacks still go out this turn. */
static void on_idle(uv_idle_t *h) { (void)h; }

/* ---- closing ---- */

static ts_wstate_t *wstate_get(ts_conn_t *c) {
    if (c->w) return c->w;
    ts_wstate_t *w = ts_xmalloc(sizeof(*w)); /* not zeroed: 568 bytes, per busy period */
    w->pend = (ts_wqueue_t){w->inl[0], 0, TS_WSTATE_INLINE};
    w->inflight = (ts_wqueue_t){w->inl[1], 0, TS_WSTATE_INLINE};
    w->queued = w->pend_bytes = 0;
    w->over_since = 0;
    w->iov = w->iov_inl;
    w->iovcap = TS_ARRAY_LEN(w->iov_inl);
    w->waiting = 0;
    w->iov_at = w->iov_end = 0;
    return c->w = w;
}

static int is_inline(const ts_wstate_t *w, const ts_wentry_t *e) {
    return e == w->inl[0] || e == w->inl[1];
}

static void wstate_free(ts_conn_t *c) {
    ts_wstate_t *w = c->w;
    if (!is_inline(w, w->pend.e)) free(w->pend.e);
    if (!is_inline(w, w->inflight.e)) free(w->inflight.e);
    if (w->iov != w->iov_inl) free(w->iov);
    free(w);
    c->w = NULL;
}

static void conn_free(ts_conn_t *c) {
    if (c->flags & TS_CONN_HANDOFF) { /* closed before it could move */
        conn_handoff_t *ho = c->abort_ud;
        ts_sbuf_free(&ho->req);
        free(ho);
    }
    if (c->w) {
        for (size_t i = 0; i < c->w->pend.n; i++) ts_buf_unref(c->w->pend.e[i].buf);
        for (size_t i = 0; i < c->w->inflight.n; i++) ts_buf_unref(c->w->inflight.e[i].buf);
        TS_MET_GAUGE_ADD(SEND_QUEUE_BYTES, -(int64_t)c->w->queued);
        wstate_free(c);
    }
    free(c->rbuf);
    if (c->mode == TS_CONN_WS)
        ts_ws_reader_deinit(&c->reader);
    else if (c->parser)
        ts_http_parser_free(c->parser);
    ts_tls__free(c->tls);
    ts_list_remove(&c->link);
    c->net->handles_open--;
    free(c);
    TS_MET_GAUGE_ADD(TCP_OPEN, -1);
}

/* Frees the connections closed so far. Never while one may still be on the
 * stack: at the end of the loop turn's flush, and when the net's own
 * handles close. A closed connection stays readable until then, as a
 * closed libuv handle did until its close callback. */
static void free_dead(ts_net_t *net) {
    while (!ts_list_empty(&net->dead)) conn_free(ts_list_entry(net->dead.next, ts_conn_t, link));
}

/* Sets what c's socket is watched for: readable unless it is closing or
 * leaving for another loop, writable while a write waits for the peer. */
static void watch(ts_conn_t *c) {
    unsigned want = 0;
    if (!(c->flags & (TS_CONN_CLOSING | TS_CONN_HANDOFF))) want |= TS_WATCH_IN;
    if (c->w && c->w->waiting && !(c->flags & TS_CONN_CLOSING)) want |= TS_WATCH_OUT;
    if (want == c->watch) return;
    struct epoll_event ev = {
        .events = (want & TS_WATCH_IN ? EPOLLIN : 0u) | (want & TS_WATCH_OUT ? EPOLLOUT : 0u),
        .data.ptr = c,
    };
    int op = c->watch == TS_WATCH_NONE ? EPOLL_CTL_ADD : want == TS_WATCH_NONE ? EPOLL_CTL_DEL
                                                                              : EPOLL_CTL_MOD;
    if (epoll_ctl(c->net->epfd, op, c->fd, &ev) < 0) {
        /* ENOMEM or the user's max_user_watches: the socket would hang */
        ts_warn("net", "cannot watch %s's socket: %s", ts_conn_peer(c), strerror(errno));
        c->flags |= TS_CONN_FAILED;
        ts_net__schedule(c);
        return;
    }
    c->watch = want & 3u;
}

void ts_net__close(ts_conn_t *c) {
    if (c->flags & TS_CONN_CLOSING) return;
    c->flags |= TS_CONN_CLOSING;
    if (c->flags & TS_CONN_IN_FLUSH) {
        ts_list_remove(&c->flush_link);
        c->flags &= ~(uint32_t)TS_CONN_IN_FLUSH;
    }
    if (c->timer_kind != TS_TIMER_NONE) ts_list_remove(&c->dl_link);
    c->timer_kind = TS_TIMER_NONE;
    /* Tell the layer above before the memory goes; it must not touch c
     * after this returns. */
    if (c->mode == TS_CONN_WS)
        ts_net__ws_closed(c);
    else
        ts_net__http_closed(c);
    /* Closing the descriptor takes it out of the epoll set: nothing else
     * holds the socket (a handoff's duplicate is made after it left the
     * set). The memory waits for the end of the turn (free_dead). */
    close(c->fd);
    c->fd = -1;
    c->watch = TS_WATCH_NONE;
    ts_list_remove(&c->link);
    ts_list_insert_tail(&c->net->dead, &c->link);
}

/* Queued plaintext, or ciphertext the TLS session produced on its own
 * (handshake, alerts, tickets, close_notify). */
static int has_output(const ts_conn_t *c) {
    return (c->w && c->w->pend.n > 0) || (c->tls && ts_tls__pending(c->tls) > 0);
}

static void start_shutdown(ts_conn_t *c) {
    if (c->flags & (TS_CONN_SHUTDOWN | TS_CONN_CLOSING)) return;
    if (c->tls && ts_tls__close_notify(c->tls)) {
        /* send the close_notify first; on_write comes back here */
        flush_conn(c);
        if (c->flags & (TS_CONN_WRITING | TS_CONN_CLOSING)) return;
    }
    c->flags |= TS_CONN_SHUTDOWN;
    if (shutdown(c->fd, SHUT_WR) < 0) {
        ts_debug("net", "shutdown of %s: %s", ts_conn_peer(c), strerror(errno));
        fail_later(c); /* the caller may be a layer above, mid-call */
        return;
    }
    /* Keep reading until the peer closes too (or the linger timer fires):
     * closing with unread bytes would send a RST that can destroy the last
     * response or close frame before the peer reads it. */
    ts_net__timer(c, TS_TIMER_LINGER);
}

void ts_net__end(ts_conn_t *c) {
    if (c->flags & (TS_CONN_CLOSING | TS_CONN_ENDING)) return;
    c->flags |= TS_CONN_ENDING;
    /* A peer that neither reads our last bytes nor closes must not hold the
     * connection (and its queue) forever. */
    ts_net__timer(c, TS_TIMER_END);
    if (!has_output(c) && !(c->flags & TS_CONN_WRITING)) start_shutdown(c);
}

/* ---- timers ---- */

/* A deadline is kept as 32 bits of loop time, so a delay is at most 2^31
 * ms (24 days; the daemon allows an hour): the full time is then the one
 * within 2^31 ms of now. */
#define MAX_DELAY_MS ((1u << 31) - 1)

static uint64_t timer_delay(const ts_net_t *net, int kind) {
    uint64_t d;
    switch (kind) {
    case TS_TIMER_REQUEST: d = net->opts.request_timeout_ms; break;
    case TS_TIMER_IDLE: d = net->opts.idle_timeout_ms; break;
    case TS_TIMER_LINGER: d = LINGER_MS; break;
    default: d = END_DEADLINE_MS; break;
    }
    return TS_MIN(d, MAX_DELAY_MS);
}

/* The loop time of c's deadline (set at most MAX_DELAY_MS after `now`,
 * and handled on time, so it is within 2^31 ms of now either way). */
static uint64_t conn_due(const ts_conn_t *c, uint64_t now) {
    return now + (uint64_t)(int64_t)(int32_t)(c->due - (uint32_t)now);
}

static void on_deadline(uv_timer_t *t);

/* Sets the timer for the earliest deadline if it is earlier than the one
 * armed. A timer that fires early finds nothing due and re-arms. */
static void rearm(ts_net_t *net) {
    uint64_t first = 0;
    for (int k = TS_TIMER_NONE + 1; k < TS_TIMER_N; k++) {
        if (ts_list_empty(&net->dq[k])) continue;
        uint64_t d = conn_due(ts_list_entry(net->dq[k].next, ts_conn_t, dl_link), uv_now(net->loop));
        if (!first || d < first) first = d;
    }
    if (!first || (net->armed && net->armed <= first)) return;
    uint64_t now = uv_now(net->loop);
    net->armed = first;
    uv_timer_start(&net->deadline, on_deadline, first > now ? first - now : 0, 0);
}

static void on_deadline(uv_timer_t *t) {
    ts_net_t *net = t->data;
    net->armed = 0;
    uint64_t now = uv_now(net->loop);
    for (int k = TS_TIMER_NONE + 1; k < TS_TIMER_N; k++) {
        while (!ts_list_empty(&net->dq[k])) {
            ts_conn_t *c = ts_list_entry(net->dq[k].next, ts_conn_t, dl_link);
            if (conn_due(c, now) > now) break;
            ts_list_remove(&c->dl_link);
            c->timer_kind = TS_TIMER_NONE;
            if (k == TS_TIMER_REQUEST)
                ts_net__http_timeout(c);
            else
                ts_net__close(c);
        }
    }
    rearm(net);
}

void ts_net__timer(ts_conn_t *c, enum ts_conn_timer kind) {
    if (c->flags & TS_CONN_CLOSING) return;
    ts_net_t *net = ts_net__of(c);
    if (c->timer_kind != TS_TIMER_NONE) ts_list_remove(&c->dl_link);
    c->timer_kind = (unsigned)kind & 7u;
    if (kind == TS_TIMER_NONE) return;
    /* now + a constant per kind: appending keeps each queue sorted */
    c->due = (uint32_t)(uv_now(net->loop) + timer_delay(net, kind));
    ts_list_insert_tail(&net->dq[kind], &c->dl_link);
    rearm(net);
}

/* ---- writes ---- */

/* A corked connection's writes wait for ts_ws_uncork while they are few:
 * the cork only merges what one handshake answers in two turns into one
 * write. More than this, a graceful end, a cut or a failure go at once. */
#define CORK_MAX 16384

static int held(const ts_conn_t *c) {
    return (c->flags & TS_CONN_CORKED) &&
           !(c->flags & (TS_CONN_ENDING | TS_CONN_OVERFLOW | TS_CONN_FAILED | TS_CONN_CLOSING)) &&
           ts_conn_queued(c) < CORK_MAX;
}

void ts_net__schedule(ts_conn_t *c) {
    if (c->flags & (TS_CONN_IN_FLUSH | TS_CONN_CLOSING)) return;
    if (held(c)) return; /* ts_ws_uncork schedules it */
    ts_net_t *net = ts_net__of(c);
    if (ts_list_empty(&net->flush_list)) uv_idle_start(&net->flush_idle, on_idle);
    c->flags |= TS_CONN_IN_FLUSH;
    ts_list_insert_tail(&net->flush_list, &c->flush_link);
}

/* Class and key live in what was the entry's padding (docs/ARCHITECTURE.md
 * counts 40 bytes an entry, 568 a write state). */
_Static_assert(sizeof(void *) != 8 || (sizeof(ts_wentry_t) == 40 && sizeof(ts_wstate_t) == 568),
               "a write queue entry or the write state grew");

/* Where an entry of class `cls` goes in `q`: after the last entry of the
 * same or an earlier class, so that equal classes keep their order and
 * `pend` stays in class order. The common case, a class no earlier than
 * the tail's, is an append and does not come here. The frames of a group
 * (TS_NET_MORE) stay together: each is the last of its class once queued,
 * so the next one lands right behind it, and no flush comes between. */
static size_t queue_slot(const ts_wqueue_t *q, unsigned cls) {
    size_t at = q->n;
    while (at > 0 && q->e[at - 1].cls > cls) at--;
    return at;
}

/* The queued entry that an entry of class `cls` and key `key` replaces:
 * `pend` is in class order, so that class's entries sit right before the
 * slot `at`. */
static ts_wentry_t *queue_keyed(ts_wqueue_t *q, size_t at, unsigned cls, uint32_t key) {
    for (size_t i = at; i-- > 0 && q->e[i].cls == cls;)
        if (q->e[i].key == key) return &q->e[i];
    return NULL;
}

static void entry_set(ts_wentry_t *e, ts_buf_t *buf, const uint8_t *p, size_t len,
                      const uint8_t *hdr, size_t hdrlen) {
    e->buf = buf ? ts_buf_ref(buf) : NULL;
    e->p = p;
    e->len = (uint32_t)len;
    e->hdrlen = (uint8_t)hdrlen;
    /* a fixed size is two moves; a variable one, a call to memcpy */
    if (hdrlen) memcpy(e->hdr, hdr, TS_WS_MAX_HEADER);
}

/* Room for more entries in a full `q`. */
static __attribute__((noinline)) void queue_grow(ts_wstate_t *w, ts_wqueue_t *q) {
    q->cap *= 2;
    if (is_inline(w, q->e)) {
        ts_wentry_t *e = ts_xmalloc(q->cap * sizeof(*q->e));
        memcpy(e, q->e, q->n * sizeof(*q->e));
        q->e = e;
    } else {
        q->e = ts_xrealloc(q->e, q->cap * sizeof(*q->e));
    }
}

/* Behind a write in flight: the entry goes somewhere else than at the tail
 * of `pend` (it overtakes entries of later classes), or has a key and may
 * replace a queued one. */
static __attribute__((noinline)) void queue_sorted(ts_wstate_t *w, ts_buf_t *buf,
                                                   const uint8_t *p, size_t len,
                                                   const uint8_t *hdr, size_t hdrlen,
                                                   unsigned cls, uint32_t key) {
    ts_wqueue_t *q = &w->pend;
    size_t at = queue_slot(q, cls);
    ts_wentry_t *e = key ? queue_keyed(q, at, cls, key) : NULL;
    size_t add = len + hdrlen;
    if (e) {
        /* Latest wins, in the place of the one it replaces. */
        size_t was = e->len + (size_t)e->hdrlen;
        ts_buf_t *drop = e->buf;
        entry_set(e, buf, p, len, hdr, hdrlen);
        ts_buf_unref(drop);
        w->queued -= was;
        w->pend_bytes -= was;
        TS_MET_GAUGE_ADD(SEND_QUEUE_BYTES, -(int64_t)was);
        TS_MET_INC(SEND_COALESCED);
    } else {
        if (q->n == q->cap) queue_grow(w, q);
        if (at < q->n) {
            memmove(&q->e[at + 1], &q->e[at], (q->n - at) * sizeof(*q->e));
            TS_MET_INC(SEND_REORDERED);
        }
        q->n++;
        e = &q->e[at];
        entry_set(e, buf, p, len, hdr, hdrlen);
        e->key = key;
        e->cls = (uint8_t)cls;
    }
    w->queued += add;
    w->pend_bytes += add;
    TS_MET_GAUGE_ADD(SEND_QUEUE_BYTES, (int64_t)add);
}

void ts_net__queue(ts_conn_t *c, ts_buf_t *buf, const uint8_t *p, size_t len,
                   const uint8_t *hdr, size_t hdrlen, unsigned cls, uint32_t key) {
    if (c->flags & (TS_CONN_CLOSING | TS_CONN_SHUTDOWN | TS_CONN_OVERFLOW | TS_CONN_FAILED)) return;
    ts_wstate_t *w = wstate_get(c);
    ts_wqueue_t *q = &w->pend;
    unsigned more = cls & TS_NET_MORE;
    cls &= TS_NET_CLASS_MASK;
    if (more) key = 0; /* a group's frames are never replaced */
    /* Classes and keys only matter behind a write the peer has not taken
     * (backpressure): a peer that keeps up gets everything in the order
     * queued, a loop turn's worth in one write. `pend` is empty when a
     * write starts, so it is either in the order queued or in class order. */
    if (__builtin_expect((c->flags & TS_CONN_WRITING) &&
                             (key || (q->n && q->e[q->n - 1].cls > cls)), 0)) {
        queue_sorted(w, buf, p, len, hdr, hdrlen, cls, key);
    } else { /* the common case: at the tail, as without classes */
        if (q->n == q->cap) queue_grow(w, q);
        ts_wentry_t *e = &q->e[q->n++];
        entry_set(e, buf, p, len, hdr, hdrlen);
        e->key = key;
        e->cls = (uint8_t)cls;
        w->queued += len + hdrlen;
        w->pend_bytes += len + hdrlen;
        TS_MET_GAUGE_ADD(SEND_QUEUE_BYTES, (int64_t)(len + hdrlen));
    }
    /* One loop turn may queue a burst bigger than the limit for a peer that
     * reads (the flush decides), but not without bound. */
    size_t limit = ts_net__of(c)->opts.max_send_queue;
    if (unsent(c) > limit) {
        if (!w->over_since) w->over_since = uv_now(ts_net__of(c)->loop) | 1;
        if (unsent(c) > TS_MAX(limit + BURST_ALLOWANCE, 4 * limit)) c->flags |= TS_CONN_OVERFLOW;
    }
    ts_net__schedule(c);
    /* A big burst goes out now rather than piling up until the turn ends;
     * never inside a group, which would let other frames in between. */
    if (w->pend_bytes >= EARLY_FLUSH_BYTES && !more) flush_conn(c);
}

/* Called after a flush: a peer whose kernel buffer is full and that still
 * has more than --max-send-queue bytes waiting does not read. Cut it off
 * rather than grow without bound; it recovers by reconnecting (and replay,
 * at the session layer). Never called from inside a send, so no layer above
 * is re-entered while it is iterating over recipients. */
static int cut_if_slow(ts_conn_t *c) {
    size_t limit = ts_net__of(c)->opts.max_send_queue;
    ts_wstate_t *w = c->w;
    if (unsent(c) <= limit || !w) { /* bytes unsent mean a write state */
        if (w) w->over_since = 0; /* caught up */
        return 0;
    }
    if (!(c->flags & TS_CONN_OVERFLOW)) {
        uint64_t now = uv_now(ts_net__of(c)->loop);
        if (!w->over_since) w->over_since = now | 1;
        if (now - w->over_since < SLOW_GRACE_MS) return 0;
    }
    TS_MET_ERR(SLOW_CONSUMER);
    ts_warn("net", "peer %s is not reading: %zu bytes unsent exceed --max-send-queue %zu",
            ts_conn_peer(c), unsent(c), limit);
    ts_net__close(c);
    ts_net__of(c)->trim_due = 1;
    return 1;
}

/* The batch in `inflight` has been written: drop its references. */
static void inflight_done(ts_conn_t *c) {
    ts_wstate_t *w = c->w;
    size_t bytes = 0;
    for (size_t i = 0; i < w->inflight.n; i++) {
        bytes += w->inflight.e[i].len + w->inflight.e[i].hdrlen;
        ts_buf_unref(w->inflight.e[i].buf);
    }
    w->inflight.n = 0;
    w->queued -= bytes;
    TS_MET_GAUGE_ADD(SEND_QUEUE_BYTES, -(int64_t)bytes);
    TS_MET_ADD(BYTES_OUT, bytes);
    if (c->tls) ts_tls__written(c->tls);
    if (w->pend.n == 0) {
        /* Nothing more to send: an idle connection keeps no write state
         * (568 bytes, more after a long burst). A busy one allocates it
         * once per flush, which is noise next to the write system call
         * (one malloc: the first entries and iovecs are inside). */
        wstate_free(c);
    }
}

/* A failure found while writing: the connection is closed at the end of
 * the loop turn, never inside a send (the caller may be iterating). */
static void fail_later(ts_conn_t *c) {
    c->flags |= TS_CONN_FAILED;
    ts_net__schedule(c);
}

/* One non-blocking sendmsg of iov[0..n) (at most IOV_MAX of them: the
 * rest is a short write): the bytes taken, or a negative errno. */
static ssize_t sock_send(int fd, uv_buf_t *iov, unsigned n) {
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = TS_MIN(n, IOV_MAX)};
    ssize_t wr;
    do wr = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (wr < 0 && errno == EINTR);
    return wr < 0 ? -errno : wr;
}

/* The socket of a connection whose write waits has room (or failed):
 * send more, and once all is gone do what waited for it. Called from the
 * turn's events, never from inside a layer above. */
static void write_more(ts_conn_t *c) {
    ts_wstate_t *w = c->w;
    ssize_t wr = sock_send(c->fd, w->iov + w->iov_at, w->iov_end - w->iov_at);
    if (wr == -EAGAIN) return;
    if (wr < 0) {
        ts_debug("net", "write to %s failed: %s", ts_conn_peer(c), strerror((int)-wr));
        ts_net__close(c);
        return;
    }
    w->waiting -= (size_t)wr;
    while (wr > 0 && (size_t)wr >= w->iov[w->iov_at].len) wr -= (ssize_t)w->iov[w->iov_at++].len;
    if (wr > 0) {
        w->iov[w->iov_at].base += wr;
        w->iov[w->iov_at].len -= (size_t)wr;
    }
    if (w->waiting) return;
    w->iov_at = w->iov_end = 0;
    c->flags &= ~(uint32_t)TS_CONN_WRITING;
    watch(c); /* no longer for writing */
    inflight_done(c);
    if (has_output(c))
        flush_conn(c);
    else if (c->flags & TS_CONN_ENDING)
        start_shutdown(c);
    else if (c->flags & TS_CONN_HANDOFF)
        handoff_now(c);
}

/* Starts a write of everything queued: moves it to `inflight` and returns
 * its segments (in w->iov), or 0 when there is nothing to write or it
 * failed (fail_later). Closes nothing itself. */
static unsigned flush_begin(ts_conn_t *c) {
    if (c->flags & (TS_CONN_WRITING | TS_CONN_CLOSING | TS_CONN_FAILED) || !has_output(c)) return 0;
    ts_wstate_t *w = wstate_get(c); /* none yet with TLS output of its own */
    ts_wqueue_t tmp = w->inflight;
    w->inflight = w->pend;
    w->pend = tmp;
    w->pend_bytes = 0;
    size_t need = w->inflight.n * 2 + 1;
    if (w->iovcap < need) {
        /* rebuilt below: nothing to copy */
        if (w->iov != w->iov_inl) free(w->iov);
        w->iovcap = need;
        w->iov = ts_xmalloc(need * sizeof(uv_buf_t));
    }
    uv_buf_t *iov = w->iov;
    unsigned n = 0;
    for (size_t i = 0; i < w->inflight.n; i++) {
        ts_wentry_t *e = &w->inflight.e[i];
        if (e->hdrlen) iov[n++] = uv_buf_init((char *)e->hdr, e->hdrlen);
        if (e->len) iov[n++] = uv_buf_init((char *)(uintptr_t)e->p, e->len);
    }
    if (c->tls) {
        /* The batch becomes one ciphertext buffer. The plaintext references
         * go now; the entries keep their lengths for the byte counts. */
        int rc = n ? ts_tls__write(c->tls, iov, n) : 0;
        for (size_t i = 0; i < w->inflight.n; i++) {
            ts_buf_unref(w->inflight.e[i].buf);
            w->inflight.e[i].buf = NULL;
        }
        if (rc < 0) {
            ts_debug("tls", "cannot encrypt for %s: %s", ts_conn_peer(c),
                     rc == TS_ESTATE ? "handshake not done" : ts_tls__errmsg(c->tls));
            fail_later(c);
            return 0;
        }
        iov[0] = ts_tls__take(c->tls);
        n = 1;
    }
    TS_MET_INC(WRITES);
    return n;
}

/* Ends a write of iov[0..n) (c->w->iov) of which the kernel took `wr`
 * bytes (a negative errno: none): done, or the rest waits for the socket
 * to be writable (write_more). */
static void flush_end(ts_conn_t *c, uv_buf_t *iov, unsigned n, ssize_t wr) {
    if (wr == -EAGAIN) wr = 0;
    if (wr < 0) {
        ts_debug("net", "write to %s failed: %s", ts_conn_peer(c), strerror((int)-wr));
        fail_later(c);
        return;
    }
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += iov[i].len;
    if ((size_t)wr == total) {
        inflight_done(c);
        return;
    }
    /* skip what went out */
    unsigned k = 0;
    size_t done = (size_t)wr;
    while (done >= iov[k].len) done -= iov[k++].len;
    iov[k].base += done;
    iov[k].len -= done;
    ts_wstate_t *w = c->w;
    w->iov_at = k;
    w->iov_end = n;
    w->waiting = total - (size_t)wr;
    c->flags |= TS_CONN_WRITING;
    watch(c); /* for writing too */
}

/* Hands everything queued to the kernel: a non-blocking write of the whole
 * batch (usually all of it goes); the rest waits for the socket.
 * Closes nothing itself (see fail_later). */
static void flush_conn(ts_conn_t *c) {
    unsigned n = flush_begin(c);
    if (n) flush_end(c, c->w->iov, n, sock_send(c->fd, c->w->iov, n));
}

static void process(ts_conn_t *c);

/* A slow consumer that was cut off held up to --max-send-queue of queue
 * entries and kept broadcast buffers alive; once freed, that memory sits in
 * the allocator's free lists (per thread arena) and the process's RSS stays
 * at its peak. Returning it costs a walk of the heap: at most once a second,
 * and only after a cut. */
#define TRIM_EVERY_MS 1000
/* jemalloc's control call when tabsyncd links it (CMakeLists.txt): its
 * arenas are purged instead, glibc's malloc_trim would walk an unused heap. */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));
#define MALLCTL_PURGE_ALL "arena.4096.purge" /* 4096: MALLCTL_ARENAS_ALL */
static void maybe_trim(ts_net_t *net) {
    if (!net->trim_due) return;
    uint64_t now = uv_now(net->loop);
    if (net->trim_at && now - net->trim_at < TRIM_EVERY_MS) return;
    net->trim_due = 0;
    net->trim_at = now;
    if (mallctl)
        mallctl(MALLCTL_PURGE_ALL, NULL, NULL, NULL, 0);
    else
        malloc_trim(0);
}

/* After c's flush: what was waiting for its bytes to go. May call the
 * layers above (a close, a handoff), so never while a ring batch is
 * queued: they could close a socket that the batch is about to write. */
static void after_flush(ts_conn_t *c) {
    if (c->flags & TS_CONN_FAILED) {
        ts_net__close(c);
        return;
    }
    if (c->flags & TS_CONN_CLOSING || cut_if_slow(c)) return;
    if ((c->flags & TS_CONN_ENDING) && !has_output(c) && !(c->flags & TS_CONN_WRITING))
        start_shutdown(c);
    else if ((c->flags & TS_CONN_HANDOFF) && !has_output(c) && !(c->flags & TS_CONN_WRITING))
        handoff_now(c);
}

/* A send of the ring's batch has its result. Until now the connection was
 * marked as writing, so nothing else wrote to it meanwhile. */
static void on_ring_sent(void *ud, uv_buf_t *iov, unsigned n, int res) {
    ts_conn_t *c = ud;
    c->flags &= ~(uint32_t)TS_CONN_WRITING;
    if (c->flags & TS_CONN_CLOSING) { /* closed by an earlier one's after_flush */
        inflight_done(c);
        return;
    }
    flush_end(c, iov, n, res);
    after_flush(c);
    if (has_output(c)) ts_net__schedule(c); /* queued by another's after_flush */
}

/* Sends per io_uring_enter. Measured (/session 1,000 x 4, one in flight,
 * server + ksoftirqd CPU per delivery, 3 runs each): 16-32 cost the least,
 * 0.5 us below writev; from ~128 the loopback's receive work no longer fits
 * the softirq run at the end of the call and spills into ksoftirqd, and at
 * 1,024 half the saving is gone. docs/PERFORMANCE.md has the table. */
#define RING_BATCH 32
_Static_assert(RING_BATCH <= sizeof ((ts_net_t *)0)->again / sizeof(ts_conn_t *),
               "a batch's reads that filled their buffer fit net->again");

/* The ring, made in the loop's thread at its first read or flush (a ring
 * with a single issuer belongs to the thread that makes it), with a read
 * slot per operation of a batch. */
static ts_uring_t *net_ring(ts_net_t *net) {
    if (!net->uring_tried && net->opts.io == TS_NET_IO_URING) {
        net->uring_tried = 1;
        net->uring = ts_uring__new(RING_BATCH);
        if (net->uring) net->slots = ts_xmalloc((size_t)RING_BATCH * TS_NET_READ_SLOT);
    }
    return net->uring;
}

static void ring_run(ts_net_t *net) {
    if (!net->uring || !ts_uring__queued(net->uring)) return;
    TS_MET_INC(URING_SUBMITS);
    ts_uring__run(net->uring, on_ring_sent);
}

static void on_flush_check(uv_check_t *h) {
    ts_net_t *net = h->data;
    ts_uring_t *ring = net_ring(net);
    do {
        while (!ts_list_empty(&net->flush_list)) {
            ts_list_t *it = net->flush_list.next;
            ts_list_remove(it);
            ts_conn_t *c = ts_list_entry(it, ts_conn_t, flush_link);
            c->flags &= ~(uint32_t)TS_CONN_IN_FLUSH;
            if (held(c)) continue; /* corked since it was scheduled */
            if (c->flags & TS_CONN_REPROCESS) {
                c->flags &= ~(uint32_t)TS_CONN_REPROCESS;
                ring_run(net); /* process() calls the layers above */
                process(c);
                if (c->flags & TS_CONN_CLOSING) continue;
            }
            if (ring) {
                /* One system call for the turn's writes. The connection is
                 * marked as writing until its result comes (on_ring_sent). */
                if (ts_uring__full(ring)) ring_run(net);
                unsigned n = flush_begin(c);
                if (n) {
                    c->flags |= TS_CONN_WRITING;
                    ts_uring__send(ring, c->fd, c->w->iov, n, c);
                    continue;
                }
                ring_run(net); /* before after_flush, which may close */
            } else {
                flush_conn(c);
            }
            after_flush(c);
        }
        ring_run(net); /* may schedule more */
    } while (!ts_list_empty(&net->flush_list));
    uv_idle_stop(&net->flush_idle);
    free_dead(net);
    maybe_trim(net);
}

size_t ts_conn_queued(const ts_http_conn_t *c) { return c->w ? c->w->queued : 0; }
ts_net_addr_t ts_conn_addr(const ts_http_conn_t *c) { return c->peer; }
const char *ts_conn_peer(const ts_http_conn_t *c) { return ts_net_addr_str(&c->peer); }

const char *ts_net_addr_str(const ts_net_addr_t *a) {
    static _Thread_local char ring[4][48];
    static _Thread_local unsigned next;
    char *out = ring[next++ % 4];
    out[0] = '\0';
    if (a->family == 4 || a->family == 6)
        uv_inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, out, sizeof ring[0]);
    return out;
}

/* ---- reads ---- */

/* Hands buffered bytes to the protocol of the connection; a request that
 * upgrades to WebSocket leaves the rest for the WebSocket reader. */
static size_t dispatch(ts_conn_t *c, uint8_t *data, size_t len) {
    size_t off = 0;
    while (off < len && !(c->flags & (TS_CONN_CLOSING | TS_CONN_SHUTDOWN))) {
        uint8_t mode = c->mode;
        size_t used = mode == TS_CONN_HTTP ? ts_net__http_process(c, data + off, len - off)
                                           : ts_net__ws_process(c, data + off, len - off);
        off += used;
        if (c->mode == mode) break; /* no protocol switch: the rest waits for more bytes */
    }
    /* ending or lingering: whatever else the peer sends is not read */
    if (c->flags & (TS_CONN_SHUTDOWN | TS_CONN_ENDING)) return len;
    return off;
}

/* Bytes a peer may send beyond a request still being answered (a held
 * long-polling GET): one more request at most. Past that it is not an HTTP
 * client but a memory pump. */
static size_t held_input_max(const ts_conn_t *c) {
    const ts_http_limits_t *l = &ts_net__of(c)->opts.http;
    return (l->max_header_bytes ? l->max_header_bytes : 16384) +
           (l->max_body ? l->max_body : 1000000);
}

/* `n` is at most what rbuf or one read into the shared buffer holds. */
static void keep_rest(ts_conn_t *c, const uint8_t *rest, size_t n) {
    if (n > c->rcap) {
        c->rcap = n < RBUF_MIN_ROOM ? RBUF_MIN_ROOM : (uint32_t)n;
        c->rbuf = ts_xrealloc(c->rbuf, c->rcap);
    }
    memmove(c->rbuf, rest, n);
    c->rlen = (uint32_t)n;
}

static void process(ts_conn_t *c) {
    if (c->rlen == 0) return;
    size_t used = dispatch(c, c->rbuf, c->rlen);
    if (c->flags & TS_CONN_CLOSING) return;
    keep_rest(c, c->rbuf + used, c->rlen - used);
    if (c->rlen == 0 && c->rcap > RBUF_MIN_ROOM) {
        /* a big frame passed through: give its memory back */
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

/* Room for the next read after the partial frame or request kept so far.
 * Returns TS_ETOOBIG past 4 GiB (32-bit lengths keep idle connections
 * small; every limit a server configures refuses far less long before). */
static int rbuf_reserve(ts_conn_t *c) {
    if (c->rcap - c->rlen >= RBUF_MIN_ROOM) return 0;
    size_t want = (size_t)c->rlen + RBUF_MIN_ROOM, ncap = (size_t)c->rcap * 2;
    if (ncap < want) ncap = want;
    if (ncap > UINT32_MAX) {
        if (want > UINT32_MAX) return TS_ETOOBIG;
        ncap = UINT32_MAX;
    }
    c->rcap = (uint32_t)ncap;
    c->rbuf = ts_xrealloc(c->rbuf, c->rcap);
    return 0;
}

/* Delayed-ACK mode for the read about to be made: tcp_recvmsg then sends
 * no bare ACK, and the ACK rides on what this loop turn writes back (the
 * ack of a publish, the deliveries), or goes with the delayed-ACK timer.
 * Linux leaves the mode by itself, so it is set before every read;
 * WebSocket connections over plain TCP only (HTTP answers may be held:
 * long polls). docs/PERFORMANCE.md. */
static int wants_delayed_ack(const ts_conn_t *c) { return c->mode == TS_CONN_WS && !c->tls; }

static void quickack_off(ts_conn_t *c) {
#ifdef TCP_QUICKACK
    int zero = 0;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
#else
    (void)c;
#endif
}

/* Where c's next read goes: a partial frame or request kept so far is
 * continued in c->rbuf; otherwise `shared` (the loop's buffer or a ring
 * slot): most reads complete whatever they carry, so only a leftover is
 * copied, and idle connections own no read buffer at all. Ciphertext
 * always goes to `shared`: the TLS session copies it at once. Returns NULL
 * past 4 GiB unparsed. */
static uint8_t *read_room(ts_conn_t *c, uint8_t *shared, size_t shared_len, size_t *room) {
    if (c->rlen == 0 || c->tls) {
        *room = shared_len;
        return shared;
    }
    if (rbuf_reserve(c) != 0) return NULL;
    *room = c->rcap - c->rlen;
    return c->rbuf + c->rlen;
}

/* New bytes for the protocol, either in a shared buffer or appended at
 * c->rbuf + c->rlen. */
static void deliver(ts_conn_t *c, uint8_t *data, size_t n) {
    if (!c->rbuf || data != c->rbuf + c->rlen) {
        size_t used = dispatch(c, data, n);
        if (!(c->flags & TS_CONN_CLOSING) && used < n) keep_rest(c, data + used, n - used);
    } else {
        c->rlen += (uint32_t)n; /* n <= rcap - rlen: the room read_room gave */
        process(c);
    }
    if (!(c->flags & TS_CONN_CLOSING) && c->mode == TS_CONN_HTTP &&
        (c->flags & TS_CONN_AWAITING) && c->rlen > held_input_max(c)) {
        TS_MET_ERR(HTTP_TOO_LARGE);
        ts_debug("http", "closing %s: %zu bytes sent behind a request still being answered",
                 ts_conn_peer(c), (size_t)c->rlen);
        ts_net__close(c);
    }
}

/* Ciphertext in, plaintext through the same path as a plain read. */
static void tls_read(ts_conn_t *c, const uint8_t *ct, size_t len) {
    int rc = ts_tls__feed(c->tls, ct, len);
    /* ct is copied, so plaintext may reuse the shared buffer */
    while (rc == 0 && !(c->flags & (TS_CONN_CLOSING | TS_CONN_SHUTDOWN))) {
        uint8_t *dst = ts_net__of(c)->shared_rbuf;
        size_t cap = sizeof ts_net__of(c)->shared_rbuf;
        if (c->rlen) {
            if (rbuf_reserve(c) != 0) {
                ts_debug("net", "closing %s: over 4 GiB unparsed", ts_conn_peer(c));
                ts_net__close(c);
                return;
            }
            dst = c->rbuf + c->rlen;
            cap = c->rcap - c->rlen;
        }
        rc = ts_tls__read(c->tls, dst, cap);
        if (rc > 0) {
            deliver(c, dst, (size_t)rc);
            rc = 0;
            continue;
        }
        if (rc == 0) break;
    }
    if (c->flags & TS_CONN_CLOSING) return;
    if (rc == TS_ECLOSED) {
        ts_debug("tls", "%s sent close_notify", ts_conn_peer(c));
        ts_net__close(c);
        return;
    }
    if (rc < 0) {
        /* e.g. plain HTTP on the TLS port: send the alert, if any, and go */
        ts_debug("tls", "closing %s: %s", ts_conn_peer(c), ts_tls__errmsg(c->tls));
        ts_net__end(c);
    }
    if (ts_tls__pending(c->tls)) ts_net__schedule(c);
}

/* What one read of c gave: `nread` bytes at `buf`, 0 at the end of the
 * stream, or a negative errno. */
static void on_read(ts_conn_t *c, uint8_t *buf, ssize_t nread) {
    if (nread == -EAGAIN || nread == -EINTR) return; /* the socket stays ready or wakes us again */
    if (nread <= 0) {
        if (nread < 0) ts_debug("net", "read from %s: %s", ts_conn_peer(c), strerror((int)-nread));
        ts_net__close(c);
        return;
    }
    TS_MET_ADD(BYTES_IN, nread);
    if (c->flags & TS_CONN_SHUTDOWN) return; /* lingering: discard */
    if (c->tls)
        tls_read(c, buf, (size_t)nread);
    else
        deliver(c, buf, (size_t)nread);
}

/* Closed at the end of the turn, not now: a read may be queued in the
 * ring's batch for another socket, and nothing may close sockets (whose
 * layers above could close more) between queuing and submitting. */
static void out_of_room(ts_conn_t *c) {
    ts_debug("net", "closing %s: over 4 GiB unparsed", ts_conn_peer(c));
    fail_later(c);
}

/* A socket whose read filled its buffer is read again in the same turn,
 * up to this many times, as libuv did: a publisher with 256 KiB in flight
 * is then read in one turn, and its messages reach each receiver in one
 * write instead of one per turn (the slow-receivers scenario of 16 KiB
 * envelopes ran at 40-55 % of its rate with a single read per turn). */
#define READS_PER_TURN 32

/* Reads with one system call each, as libuv made them (no ring). */
static void read_now(ts_conn_t *c) {
    for (int k = 0; k < READS_PER_TURN && !(c->flags & (TS_CONN_CLOSING | TS_CONN_FAILED)); k++) {
        size_t room;
        uint8_t *dst = read_room(c, c->net->shared_rbuf, sizeof c->net->shared_rbuf, &room);
        if (!dst) {
            out_of_room(c);
            return;
        }
        if (wants_delayed_ack(c)) quickack_off(c);
        ssize_t n = recv(c->fd, dst, room, MSG_DONTWAIT);
        on_read(c, dst, n < 0 ? -errno : n);
        if (n < 0 || (size_t)n < room) return;
    }
}

static void on_ring_read(void *ud, void *buf, size_t len, int res) {
    ts_conn_t *c = ud;
    c->flags &= ~(uint32_t)TS_CONN_READING;
    if (c->flags & TS_CONN_CLOSING) return; /* closed by an earlier one of the batch */
    on_read(c, buf, res);
    /* a full buffer: more may be waiting (at most one per operation) */
    if (res > 0 && (size_t)res == len && !(c->flags & TS_CONN_CLOSING))
        c->net->again[c->net->nagain++] = c;
}

static void read_queue(ts_net_t *net, ts_uring_t *ring, ts_conn_t *c);

/* Runs the ring's batch of reads; sockets whose read filled its buffer go
 * again in another batch, up to READS_PER_TURN in all. Reads are never
 * left queued: between queuing and submitting, nothing may close a socket
 * (its descriptor could be reused). */
static void reads_run(ts_net_t *net) {
    ts_uring_t *ring = net->uring;
    for (int round = 1; ring && ts_uring__queued(ring); round++) {
        net->nagain = 0;
        TS_MET_INC(URING_SUBMITS);
        ts_uring__run_recv(ring, on_ring_read);
        if (round == READS_PER_TURN) break; /* the rest is read next turn */
        unsigned n = net->nagain; /* at most one batch: they fit the next */
        net->nagain = 0;
        for (unsigned i = 0; i < n; i++)
            if (!(net->again[i]->flags & (TS_CONN_CLOSING | TS_CONN_FAILED)))
                read_queue(net, ring, net->again[i]);
    }
}

/* c's socket is readable: a read in the ring's batch (its TCP_QUICKACK
 * too, where the kernel takes it from the ring), or one now. */
static void read_ready(ts_net_t *net, ts_conn_t *c) {
    ts_uring_t *ring = net_ring(net);
    if (!ring) {
        read_now(c);
        return;
    }
    if (c->flags & (TS_CONN_READING | TS_CONN_FAILED)) return;
    if (ts_uring__full(ring)) reads_run(net);
    if (c->flags & TS_CONN_CLOSING) return; /* closed by that batch's reads */
    read_queue(net, ring, c);
}

/* Queues a read of c in the ring's batch, which has room. */
static void read_queue(ts_net_t *net, ts_uring_t *ring, ts_conn_t *c) {
    size_t room;
    uint8_t *slot = net->slots + (size_t)ts_uring__queued(ring) * TS_NET_READ_SLOT;
    uint8_t *dst = read_room(c, slot, TS_NET_READ_SLOT, &room);
    if (!dst) {
        out_of_room(c);
        return;
    }
    enum ts_uring_ack ack = TS_URING_ACK_AS_IS;
    if (wants_delayed_ack(c)) {
        if (ts_uring__sock_cmd(ring))
            ack = TS_URING_ACK_DELAYED;
        else
            quickack_off(c);
    }
    c->flags |= TS_CONN_READING;
    ts_uring__recv(ring, c->fd, dst, room, ack, c);
}

/* ---- accepting ---- */

/* A connection for socket `fd` (non-blocking), watched for reading; NULL
 * (and the socket closed) when it cannot be watched. */
static ts_conn_t *conn_new(ts_net_t *net, int fd) {
    ts_conn_t *c = ts_xcalloc(1, sizeof(*c));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(net->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        /* ENOMEM or the user's max_user_watches */
        ts_warn("net", "cannot watch a new connection: %s", strerror(errno));
        close(fd);
        free(c);
        return NULL;
    }
    c->net = net;
    c->fd = fd;
    c->watch = TS_WATCH_IN;
    ts_list_init(&c->flush_link);
    ts_list_insert_tail(&net->conns, &c->link);
    net->handles_open++;
    TS_MET_GAUGE_ADD(TCP_OPEN, 1);
    return c;
}

static void conn_accepted(ts_net_t *net, int fd, const struct sockaddr_storage *sa) {
    ts_conn_t *c = conn_new(net, fd);
    if (!c) return;
    TS_MET_INC(TCP_ACCEPTED);
    /* accept4 gave the peer's address: no getpeername per connection */
    if (sa->ss_family == AF_INET6) {
        c->peer.family = 6;
        memcpy(c->peer.bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa->ss_family == AF_INET) {
        c->peer.family = 4;
        memcpy(c->peer.bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
    if (net->tls_ctx && !(c->tls = ts_tls__new(net->tls_ctx))) {
        ts_warn("net", "cannot start TLS for %s: out of memory", ts_conn_peer(c));
        ts_net__close(c);
        return;
    }
    ts_net__timer(c, TS_TIMER_REQUEST);
    /* A listener that defers accepting until the client's first bytes are
     * in (bind_socket) has them ready: read them in this turn's batch rather
     * than when the socket shows up ready in the next one. */
    if (net->opts.accept == TS_NET_ACCEPT_FIRST_BYTES) read_ready(net, c);
}

/* Out of descriptors (EMFILE, ENFILE): the pending connections would keep
 * the listener ready and the loop spinning. As libuv does, a descriptor
 * kept in reserve is given up to accept and close them, then taken again;
 * the peers see their connection closed at once. */
#define SHED_WARN_EVERY_MS 10000
static void shed(ts_net_t *net, int err) {
    TS_MET_INC(TCP_SHED);
    uint64_t now = uv_now(net->loop);
    if (!net->shed_warned || now - net->shed_warned >= SHED_WARN_EVERY_MS) {
        net->shed_warned = now | 1;
        ts_warn("net", "accept: %s: closing new connections until descriptors are free",
                strerror(err));
    }
    if (net->reserve_fd < 0) return;
    close(net->reserve_fd);
    int fd;
    while ((fd = accept4(net->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) close(fd);
    net->reserve_fd = open("/", O_RDONLY | O_CLOEXEC);
}

/* Connections accepted per wake-up at most, so that a flood of them does
 * not starve the sockets already open. */
#define ACCEPT_MAX 128

static void accept_all(ts_net_t *net) {
    for (int i = 0; i < ACCEPT_MAX && net->lfd >= 0; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int fd = accept4(net->lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_accepted(net, fd, &sa);
            continue;
        }
        switch (errno) {
        case EAGAIN: return;
        case EINTR:
        case ECONNABORTED: continue; /* that peer gave up: take the next */
        case EMFILE:
        case ENFILE: shed(net, errno); return;
        default: ts_warn("net", "accept failed: %s", strerror(errno)); return;
        }
    }
}

/* ---- the turn's events ---- */

/* Events taken from the epoll set per call. */
#define READY_MAX 256
/* The set is asked again, up to this many times in a turn, for as long as
 * it had something: what arrived while the turn's reads ran goes out with
 * the same flush, so a socket's frames meet in fewer writes. Measured
 * (docs/PERFORMANCE.md "Across nodes"): over two nodes the fan-out to 1,000
 * sent 7.5-8.0 -> 9.0-10.1 frames per write and cost 0.57-0.60 -> 0.48-0.56
 * us per delivery; the /session rows on one node and the latency at 4,000
 * publishes/s did not move beyond their spread. Asking once more costs an
 * epoll_wait that finds nothing when the turn is done. */
#define READY_ROUNDS 4

/* The listener's tag in the epoll set (a connection's is its address). */
static void *listener_tag(ts_net_t *net) { return &net->lfd; }

/* libuv found the epoll set ready: its sockets' events, the readable ones
 * read in the ring's batches. A connection closed by an earlier event of
 * the same call is still in memory (free_dead) and is skipped. */
static void on_ready(uv_poll_t *h, int status, int events) {
    (void)status, (void)events;
    ts_net_t *net = h->data;
    struct epoll_event ev[READY_MAX];
    int n;
    for (int rounds = 0; rounds < READY_ROUNDS; rounds++) {
        do n = epoll_wait(net->epfd, ev, READY_MAX, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == listener_tag(net)) {
                reads_run(net); /* accepting reuses the descriptors closed meanwhile */
                accept_all(net);
                continue;
            }
            ts_conn_t *c = ev[i].data.ptr;
            uint32_t e = ev[i].events;
            if (c->flags & TS_CONN_CLOSING) continue;
            if ((e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && c->w && c->w->waiting) {
                reads_run(net); /* what follows a write may call the layers above */
                write_more(c);
                if (c->flags & TS_CONN_CLOSING) continue;
            }
            if ((e & (EPOLLIN | EPOLLERR | EPOLLHUP)) && (c->watch & TS_WATCH_IN)) read_ready(net, c);
        }
        reads_run(net);
    }
}

/* Is the address free of every other socket? A probe bound WITHOUT
 * SO_REUSEPORT conflicts with any socket on it, SO_REUSEPORT or not, and is
 * closed at once (a bound, never-listening socket leaves no TIME_WAIT).
 * SO_REUSEADDR as on the real listener: a previous run's connections still
 * in TIME_WAIT do not hold the port, a listener does (issue #14).
 *
 * Why a probe: the loops of one tabsyncd share the port with SO_REUSEPORT
 * so that the kernel spreads new connections across them (issue #4), but
 * Linux lets ANY socket of the same effective user join that group, so a
 * second tabsyncd started on the port used to run silently and take a
 * share of the connections. Nothing on the group itself can refuse a
 * member: a reuseport BPF program only picks among the members. One
 * listener without SO_REUSEPORT whose fd every loop accepts on would be
 * exclusive, but then every loop wakes for every connection and the
 * busiest takes bursts of them: the kernel's spreading, which the issue #4
 * measurements rely on, is lost. What the probe leaves open: two tabsyncd
 * starting within the same microseconds (probe, probe, bind, bind), and a
 * process of the same user that sets SO_REUSEPORT itself after we started
 * (it asked to share). */
static int probe_free(const struct sockaddr *sa, socklen_t len) {
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, sa, len) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static int bind_socket(ts_net_t *net) {
    struct sockaddr_storage sa;
    const char *host = net->opts.host ? net->opts.host : "127.0.0.1";
    int rc = strchr(host, ':') ? uv_ip6_addr(host, net->opts.port, (struct sockaddr_in6 *)&sa)
                               : uv_ip4_addr(host, net->opts.port, (struct sockaddr_in *)&sa);
    if (rc < 0) return rc;
    socklen_t len = sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in);
    /* Port 0 needs no probe: the kernel picks a port no socket is bound to. */
    if (net->opts.exclusive && net->opts.port != 0 &&
        (rc = probe_free((struct sockaddr *)&sa, len)) < 0)
        return rc;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    /* SO_REUSEPORT lets one listener per loop share the port (issue #4);
     * only this process's loops, see probe_free. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    /* Linux copies the listener's TCP_NODELAY into every socket it accepts:
     * set once here, not with a system call per accepted connection. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Every client of ours speaks first (an HTTP request, a TLS hello): the
     * kernel can hand a connection over once its first bytes are in, so it
     * is accepted and read in one wake-up (-3 us of server CPU per /session
     * handshake, docs/PERFORMANCE.md). One that sends nothing is handed over
     * anyway after about a second, and its request deadline runs. */
    if (net->opts.accept == TS_NET_ACCEPT_FIRST_BYTES) {
        int defer_s = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
    }
    if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = listener_tag(net)};
    if (listen(fd, net->opts.backlog) < 0 || epoll_ctl(net->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    net->lfd = fd;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    net->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    net->listening = 1;
    return 0;
}

static void net_handle_closed(uv_handle_t *h) {
    ts_net_t *net = h->data;
    free_dead(net);
    net->handles_open--;
    net_maybe_done(net);
}

/* The epoll set's watcher is closed: the set goes with it. */
static void ready_closed(uv_handle_t *h) {
    ts_net_t *net = h->data;
    close(net->epfd);
    net->epfd = -1;
    net_handle_closed(h);
}

int ts_net_start(uv_loop_t *loop, const ts_net_opts_t *opts, ts_net_request_cb cb, void *ud,
                 ts_net_t **out) {
    ts_net_t *net = ts_xcalloc(1, sizeof(*net));
    net->loop = loop;
    net->opts = *opts;
    if (!net->opts.backlog) net->opts.backlog = 511;
    if (!net->opts.request_timeout_ms) net->opts.request_timeout_ms = 10000;
    if (!net->opts.idle_timeout_ms) net->opts.idle_timeout_ms = 5000;
    if (!net->opts.max_send_queue) net->opts.max_send_queue = DEFAULT_MAX_SEND_QUEUE;
    net->on_request = cb;
    net->ud = ud;
    net->epfd = net->lfd = net->reserve_fd = -1;
    ts_list_init(&net->flush_list);
    ts_list_init(&net->conns);
    ts_list_init(&net->dead);
    for (int k = 0; k < TS_TIMER_N; k++) ts_list_init(&net->dq[k]);
    if (opts->err && opts->errlen) opts->err[0] = '\0';
    int rc = 0;
    if (opts->tls_cert && opts->tls_cert[0])
        rc = ts_tls__ctx_new(opts->tls_cert, opts->tls_key ? opts->tls_key : "", &net->tls_ctx,
                             opts->err, opts->errlen);
    net->opts.err = NULL; /* the caller's buffer is only for this call */
    if (rc == 0) {
        net->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (net->epfd < 0) {
            rc = -errno;
        } else if ((rc = uv_poll_init(loop, &net->ready, net->epfd)) < 0) {
            close(net->epfd);
        } else {
            net->ready.data = net;
            net->handles_open++;
            if ((rc = bind_socket(net)) < 0) {
                net->closing = 1; /* freed once the watcher is closed */
                uv_close((uv_handle_t *)&net->ready, ready_closed);
                return rc;
            }
        }
    }
    if (rc < 0) {
        net->closing = 1;
        net_maybe_done(net);
        return rc;
    }
    net->reserve_fd = open("/", O_RDONLY | O_CLOEXEC);
    uv_poll_start(&net->ready, UV_READABLE, on_ready);
    uv_check_init(loop, &net->flush_check);
    uv_idle_init(loop, &net->flush_idle);
    uv_timer_init(loop, &net->deadline);
    net->flush_check.data = net->flush_idle.data = net->deadline.data = net;
    net->handles_open += 3;
    uv_check_start(&net->flush_check, on_flush_check);
    *out = net;
    return 0;
}

uint16_t ts_net_port(const ts_net_t *net) { return net->port; }

void ts_net_stop_accepting(ts_net_t *net) {
    if (!net->listening) return;
    net->listening = 0;
    close(net->lfd); /* and out of the epoll set */
    net->lfd = -1;
}

void ts_net_close(ts_net_t *net, void (*cb)(void *ud), void *ud) {
    ts_net_stop_accepting(net);
    net->closing = 1;
    net->close_cb = cb;
    net->close_ud = ud;
    while (!ts_list_empty(&net->conns)) ts_net__close(ts_list_entry(net->conns.next, ts_conn_t, link));
    uv_idle_stop(&net->flush_idle);
    uv_close((uv_handle_t *)&net->ready, ready_closed);
    uv_close((uv_handle_t *)&net->flush_check, net_handle_closed);
    uv_close((uv_handle_t *)&net->flush_idle, net_handle_closed);
    uv_close((uv_handle_t *)&net->deadline, net_handle_closed);
}

/* ---- moving a connection to another loop ---- */

struct ts_net_handoff {
    int fd;           /* a duplicate of the socket; the original was closed */
    ts_tls_t *tls;    /* the TLS session, NULL for plain TCP */
    ts_buf_t *bytes;  /* the request, then what the peer sent after it */
    ts_net_addr_t peer;
};

void ts_http_conn_handoff(ts_http_conn_t *c, const ts_http_req_t *req, ts_net_handoff_cb cb,
                          void *ud) {
    conn_handoff_t *ho = ts_xcalloc(1, sizeof(*ho));
    ts_http_req_serialize(req, &ho->req);
    ho->cb = cb;
    ho->ud = ud;
    /* AWAITING stays set: nothing more is parsed here; what arrives is kept
     * in rbuf and travels too. Reading stops: the rest is read there. */
    c->flags |= TS_CONN_HANDOFF;
    c->abort_cb = NULL;
    c->abort_ud = ho;
    ts_net__timer(c, TS_TIMER_NONE);
    watch(c); /* not read here any more */
    ts_net__schedule(c);
}

/* The output is written: the socket leaves this loop. */
static void handoff_now(ts_conn_t *c) {
    conn_handoff_t *ho = c->abort_ud;
    c->flags &= ~(uint32_t)(TS_CONN_HANDOFF | TS_CONN_AWAITING);
    c->abort_ud = NULL;
    /* Out of the epoll set first (watch() took it out when nothing waits to
     * be written, and this runs only then): the duplicate would keep it in. */
    int nfd = c->watch == TS_WATCH_NONE ? fcntl(c->fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (nfd < 0) {
        ts_warn("net", "cannot move %s to another loop: %s", ts_net_addr_str(&c->peer),
                strerror(errno));
        ts_sbuf_free(&ho->req);
        free(ho);
        ts_net__close(c);
        return;
    }
    ts_net_handoff_t *h = ts_xcalloc(1, sizeof(*h));
    h->fd = nfd;
    h->tls = c->tls;
    c->tls = NULL;
    h->peer = c->peer;
    ts_sbuf_append(&ho->req, c->rbuf, c->rlen);
    h->bytes = ts_sbuf_finish(&ho->req);
    c->rlen = 0;
    /* Closing our descriptor neither sends a FIN nor disturbs the duplicate. */
    ts_net__close(c);
    TS_MET_INC(LOOP_HANDOFFS);
    ho->cb(h, ho->ud);
    free(ho);
}

void ts_net_adopt(ts_net_t *net, ts_net_handoff_t *h) {
    if (net->closing) { /* this loop is shutting down: the peer reconnects */
        ts_net_handoff_free(h);
        return;
    }
    /* The socket came from another loop's listener: non-blocking already. */
    ts_conn_t *c = conn_new(net, h->fd);
    h->fd = -1;
    if (!c) {
        ts_net_handoff_free(h);
        return;
    }
    c->peer = h->peer;
    c->tls = h->tls;
    h->tls = NULL;
    if (c->tls) ts_tls__rehome(c->tls, net->tls_ctx);
    if (c->tls && !net->tls_ctx) {
        ts_warn("net", "cannot take over %s's connection: TLS on a plain listener",
                ts_net_addr_str(&c->peer));
        ts_net_handoff_free(h);
        ts_net__close(c);
        return;
    }
    keep_rest(c, h->bytes->data, h->bytes->len);
    ts_net_handoff_free(h);
    ts_net__timer(c, TS_TIMER_REQUEST);
    c->flags |= TS_CONN_REPROCESS; /* the request is parsed at the end of this turn */
    ts_net__schedule(c);
}

void ts_net_handoff_free(ts_net_handoff_t *h) {
    if (!h) return;
    if (h->fd >= 0) close(h->fd);
    ts_tls__free(h->tls);
    ts_buf_unref(h->bytes);
    free(h);
}
