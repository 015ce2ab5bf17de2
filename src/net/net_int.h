/* net_int.h - private to net: the connection object shared by tcp.c
 * (sockets, reads, batched writes, closing), http_conn.c (HTTP/1.1 mode)
 * and ws.c (WebSocket mode). */
#ifndef TS_NET_INT_H
#define TS_NET_INT_H
#include <uv.h>

#include "core/ts_list.h"
#include "net/tls_int.h"
#include "net/ts_net.h"

/* One queued write: a header of up to 14 bytes kept inline (built per
 * connection) and a slice of a shared, refcounted buffer, with its
 * delivery class (ts_net.h): 40 bytes, as before classes. */
typedef struct ts_wentry {
    ts_buf_t *buf;    /* reference held until written; may be NULL if hdr only */
    const uint8_t *p; /* inside buf */
    uint32_t len;
    uint32_t key;     /* coalesce key; 0 = none */
    uint8_t hdrlen;
    uint8_t cls;      /* enum ts_net_class */
    uint8_t hdr[TS_WS_MAX_HEADER];
} ts_wentry_t;

/* While a write is in flight (TS_CONN_WRITING), `pend` is kept in class
 * order (ts_net__queue inserts stably and coalesces); otherwise it is in
 * the order queued. `inflight` is never touched until written. */
typedef struct ts_wqueue {
    ts_wentry_t *e;
    size_t n, cap;
} ts_wqueue_t;

/* Entries and iovecs a write state holds without allocating more: a busy
 * period of up to this many frames costs one malloc (the state) where
 * separate arrays cost three. 4 measured better than 6 both in instructions
 * per fan-out delivery and in the heap left fragmented by handshakes. */
#define TS_WSTATE_INLINE 4

/* What a connection needs only while it has bytes to send: allocated with
 * the first queued byte and freed once everything is written, so an idle
 * connection pays one pointer for it instead of 568 bytes. */
typedef struct ts_wstate {
    ts_wqueue_t pend, inflight; /* `pend` is filled while `inflight` is being written */
    size_t queued;              /* bytes in pend + inflight */
    size_t pend_bytes;          /* bytes in pend (not yet handed to the kernel) */
    uint64_t over_since; /* loop time when unsent bytes went over the limit; 0 = not over */
    uv_buf_t *iov;
    size_t iovcap;
    /* What the kernel did not take at once waits for the socket to be
     * writable: iov[iov_at..iov_end), `waiting` bytes (0: nothing waits). */
    size_t waiting;
    unsigned iov_at, iov_end;
    ts_wentry_t inl[2][TS_WSTATE_INLINE]; /* pend and inflight start here */
    uv_buf_t iov_inl[2 * TS_WSTATE_INLINE + 1];
} ts_wstate_t;

enum ts_conn_mode { TS_CONN_HTTP = 0, TS_CONN_WS = 1 };

enum ts_conn_flags { /* 16 bits */
    TS_CONN_CLOSING = 1u << 0,   /* uv_close called; memory goes in on_closed */
    TS_CONN_ENDING = 1u << 1,    /* close once the queue drains (graceful) */
    TS_CONN_SHUTDOWN = 1u << 2,  /* write side shut down; lingering for EOF */
    TS_CONN_WRITING = 1u << 3,   /* a write waits for the socket, or a send is in the ring's batch */
    TS_CONN_IN_FLUSH = 1u << 4,  /* linked in net->flush_list */
    TS_CONN_AWAITING = 1u << 5,  /* HTTP: a request was handed up, no answer yet */
    TS_CONN_REPROCESS = 1u << 6, /* HTTP: buffered bytes to parse at the next flush */
    TS_CONN_CORKED = 1u << 7,    /* WebSocket: small writes wait for ts_ws_uncork */
    TS_CONN_WS_CLOSE_SENT = 1u << 8,
    TS_CONN_OVERFLOW = 1u << 9,  /* slow consumer: cut off at the next flush */
    TS_CONN_FAILED = 1u << 10,   /* a write failed: closed at the next flush */
    TS_CONN_HANDOFF = 1u << 11,  /* HTTP: moving to another loop once the output is
                                    written; abort_ud then holds the conn_handoff */
    TS_CONN_READING = 1u << 12,  /* a read of it is in the ring's batch */
};

/* What a connection's socket is watched for in its net's epoll set. */
enum ts_conn_watch { TS_WATCH_NONE = 0, TS_WATCH_IN = 1, TS_WATCH_OUT = 2 };

/* What a connection's deadline is for. Each kind has one fixed delay, so
 * each is a FIFO list in net->dq and one timer per net serves them all: a
 * connection owns no timer handle (a uv_timer_t is 152 bytes). */
enum ts_conn_timer {
    TS_TIMER_NONE = 0,
    TS_TIMER_REQUEST, /* a request must arrive whole: opts.request_timeout_ms */
    TS_TIMER_IDLE,    /* idle keep-alive connection: opts.idle_timeout_ms */
    TS_TIMER_LINGER,  /* write side shut down, waiting for the peer's EOF */
    TS_TIMER_END,     /* a graceful end that the peer does not let finish */
    TS_TIMER_N
};

/* A connection is a socket in its net's epoll set, not a libuv handle:
 * the net reads the turn's ready sockets itself, in one io_uring_enter
 * (docs/PERFORMANCE.md), which libuv's streams leave no room for, and a
 * uv_tcp_t would cost 248 bytes per idle tab. */
struct ts_conn {
    ts_net_t *net;
    ts_list_t link;       /* in net->conns while open, in net->dead once closed */
    ts_list_t flush_link; /* in net->flush_list while TS_CONN_IN_FLUSH */
    int fd;               /* -1 once closed */
    uint16_t flags;           /* enum ts_conn_flags */
    uint8_t mode : 1;         /* enum ts_conn_mode */
    uint8_t keep_alive : 1;   /* HTTP: the request being answered allows keep-alive */
    uint8_t timer_kind : 3;   /* enum ts_conn_timer: the queue dl_link is in */
    uint8_t watch : 2;        /* enum ts_conn_watch: as registered in net->epfd */
    ts_net_addr_t peer;       /* ts_conn_peer formats it */
    uint32_t due;             /* loop time of the deadline modulo 2^32 (conn_due) */
    ts_list_t dl_link;        /* in net->dq[timer_kind] unless TS_TIMER_NONE */
    /* bytes received but not yet consumed (a partial frame or request) */
    uint8_t *rbuf;
    uint32_t rlen, rcap; /* at most 4 GiB: see rbuf_reserve in tcp.c */
    ts_wstate_t *w; /* writes; NULL while nothing is queued or being written */
    /* A connection is in one mode at a time, and only switches from HTTP to
     * WebSocket (ts_ws_upgrade): the fields of the two share memory. */
    union {
        struct { /* HTTP mode */
            ts_http_parser_t *parser;
            ts_http_abort_cb abort_cb;
            void *abort_ud;
        };
        struct { /* WebSocket mode */
            ts_ws_reader_t reader;
            const ts_ws_handler_t *ws_h;
            void *ws_ud;
        };
    };
    ts_tls_t *tls; /* TLS listener: the session; rbuf then holds plaintext */
};

typedef struct ts_uring ts_uring_t; /* uring.c */

/* Reads of one ring batch land in slots of this size (a read that fills
 * one leaves the rest for the next turn, as libuv's 64 KiB reads did). */
#define TS_NET_READ_SLOT 65536

struct ts_net {
    uv_loop_t *loop;
    int epfd;               /* the listener and every connection's socket */
    int lfd;                /* the listening socket; -1 once closed */
    int reserve_fd;         /* spent to shed a connection when out of descriptors */
    uv_poll_t ready;        /* libuv's loop wakes us when epfd has events */
    uv_check_t flush_check; /* flushes queued writes once per loop turn */
    uv_idle_t flush_idle;   /* keeps poll from blocking while writes are queued */
    ts_list_t flush_list;
    ts_list_t conns;          /* open connections */
    ts_list_t dead;           /* closed ones, freed at the end of the turn */
    ts_list_t dq[TS_TIMER_N]; /* connections by deadline, one FIFO per kind */
    uv_timer_t deadline;      /* fires at the earliest deadline of dq */
    uint64_t armed;           /* loop time `deadline` is set for; 0 = stopped */
    ts_net_opts_t opts;
    ts_net_request_cb on_request;
    void *ud;
    uint16_t port;
    uint8_t listening;
    uint8_t closing;
    int handles_open;
    void (*close_cb)(void *ud);
    void *close_ud;
    ts_tls_ctx_t *tls_ctx; /* NULL: plain TCP */
    uint64_t trim_at;      /* loop time of the last malloc_trim */
    uint64_t shed_warned;  /* loop time of the last warning about descriptors */
    uint8_t trim_due;      /* a big send queue was freed: give the memory back */
    uint8_t uring_tried;   /* ts_uring__new was called (in the loop's thread) */
    ts_uring_t *uring;     /* the turn's reads and writes; NULL: a system call each */
    uint8_t *slots;        /* with the ring: a read slot per operation of a batch */
    struct ts_conn *again[32]; /* reads of the last batch that filled their buffer (RING_BATCH) */
    unsigned nagain;
    uint8_t shared_rbuf[65536]; /* reads land here when no partial data is pending */
};

typedef struct ts_conn ts_conn_t;
_Static_assert(TS_TIMER_N <= 8, "timer_kind is 3 bits");

static inline ts_net_t *ts_net__of(const ts_conn_t *c) { return c->net; }

/* tcp.c */
/* Queues hdr[0..hdrlen) and p[0..len) (a reference to `buf` is taken) in
 * delivery class `cls` (enum ts_net_class, TS_NET_MORE or'ed in when more
 * frames of one group follow) with coalesce key `key` (0 = none): see
 * ts_ws_send_class. `hdr` is NULL (hdrlen 0) or a buffer of
 * TS_WS_MAX_HEADER bytes, all of which are read. */
void ts_net__queue(ts_conn_t *c, ts_buf_t *buf, const uint8_t *p, size_t len,
                   const uint8_t *hdr, size_t hdrlen, unsigned cls, uint32_t key);
void ts_net__schedule(ts_conn_t *c); /* flush (and reprocess) at the end of this loop turn */
void ts_net__close(ts_conn_t *c);    /* abrupt */
void ts_net__end(ts_conn_t *c);      /* graceful: flush, shut down, linger, close */
/* Sets the connection's deadline (replacing any), or clears it with
 * TS_TIMER_NONE; the delay is the kind's. */
void ts_net__timer(ts_conn_t *c, enum ts_conn_timer kind);

/* http_conn.c: consumes bytes in HTTP mode; returns how many were used. */
size_t ts_net__http_process(ts_conn_t *c, uint8_t *data, size_t len);
void ts_net__http_timeout(ts_conn_t *c);
void ts_net__http_closed(ts_conn_t *c);

/* uring.c: a loop turn's reads, and its writes, in one io_uring_enter
 * each (NULL, 0 and no-ops when built without liburing). A batch is all
 * sends or all reads. */
/* Called for each send of a batch: `iov[0..n)` as queued, `res` the bytes
 * written or a negative errno (-EAGAIN: none). Must not queue sends. */
typedef void (*ts_uring_cb)(void *ud, uv_buf_t *iov, unsigned n, int res);
/* Called for each read of a batch, in the order queued: `buf` and `len`
 * as queued, `res` the bytes read, 0 at the end of the stream, or a
 * negative errno (-EAGAIN: nothing read). */
typedef void (*ts_uring_recv_cb)(void *ud, void *buf, size_t len, int res);
/* Whether a read first puts the socket in delayed-ACK mode (TCP_QUICKACK 0). */
enum ts_uring_ack { TS_URING_ACK_AS_IS = 0, TS_URING_ACK_DELAYED };
/* A ring for batches of up to `batch` operations; NULL (logged) when the
 * kernel refuses one. */
ts_uring_t *ts_uring__new(unsigned batch);
void ts_uring__free(ts_uring_t *u);
unsigned ts_uring__queued(const ts_uring_t *u);
int ts_uring__full(const ts_uring_t *u);
/* 1 when the kernel sets a read's TCP_QUICKACK from the ring (Linux 6.7);
 * otherwise TS_URING_ACK_DELAYED does nothing and the caller sets it. */
int ts_uring__sock_cmd(const ts_uring_t *u);
/* Queues a non-blocking send of iov[0..n) (borrowed until its callback)
 * on `fd`; the batch must not be full nor hold reads. */
void ts_uring__send(ts_uring_t *u, int fd, uv_buf_t *iov, unsigned n, void *ud);
/* Queues a non-blocking read of at most `len` bytes into `buf` (borrowed
 * until its callback) from `fd`; the batch must not be full nor hold sends. */
void ts_uring__recv(ts_uring_t *u, int fd, void *buf, size_t len, enum ts_uring_ack ack,
                    void *ud);
/* Submit the batch in one system call and call back for every operation,
 * in the order queued; the batch is empty afterwards. */
void ts_uring__run(ts_uring_t *u, ts_uring_cb cb);
void ts_uring__run_recv(ts_uring_t *u, ts_uring_recv_cb cb);

/* ws.c */
size_t ts_net__ws_process(ts_conn_t *c, uint8_t *data, size_t len);
void ts_net__ws_closed(ts_conn_t *c);

#endif
