/* ts_net.h - what the net layer offers Engine.IO: an HTTP/1.1 server on a
 * libuv loop whose requests can be answered at once or held (long-polling),
 * and WebSocket connections upgraded from those requests. All writes are
 * queued as references to shared buffers and flushed once per loop turn,
 * one write call per connection. */
#ifndef TS_NET_H
#define TS_NET_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ts_buf.h"
#include "net/ts_http.h"
#include "net/ts_ws_frame.h"

typedef struct ts_net ts_net_t;
/* One TCP connection. It starts as HTTP (ts_http_conn_t) and may become a
 * WebSocket (ts_ws_conn_t): the same object under two names. */
typedef struct ts_conn ts_http_conn_t;
typedef struct ts_conn ts_ws_conn_t;

/* How a loop turn's reads and writes reach the kernel. */
enum ts_net_io {
    TS_NET_IO_SYSCALLS = 0, /* a recv per ready socket, a sendmsg per connection to write */
    TS_NET_IO_URING,        /* the turn's reads in io_uring batches, then its writes
                             * (docs/PERFORMANCE.md); system calls where liburing was not
                             * built in or the kernel refuses a ring */
};

/* When the kernel hands a new connection to the listener. */
enum ts_net_accept {
    TS_NET_ACCEPT_CONNECTED = 0, /* once the TCP handshake is done */
    TS_NET_ACCEPT_FIRST_BYTES,   /* once the client's first bytes are in too (TCP_DEFER_ACCEPT),
                                  * or after about a second without any: accepted and read
                                  * in one wake-up */
};

typedef struct ts_net_opts {
    const char *host;              /* listen address, e.g. "127.0.0.1" or "::1" */
    uint16_t port;                 /* 0 = any free port (see ts_net_port) */
    int backlog;                   /* 0 = 511 */
    ts_http_limits_t http;         /* zero fields take the defaults */
    uint32_t request_timeout_ms;   /* a request must arrive whole within; 0 = 10000 */
    uint32_t idle_timeout_ms;      /* idle keep-alive connection closed after; 0 = 5000 */
    size_t max_send_queue;         /* bytes queued to one peer before it is cut off; 0 = 16 MB */
    const char *tls_cert;          /* PEM certificate chain: serve TLS only; NULL or "" = plain */
    const char *tls_key;           /* PEM private key of tls_cert */
    int exclusive;                 /* 1: refuse a port another socket holds (UV_EADDRINUSE),
                                    * although this listener still lets later ones of this
                                    * process share it; set on the process's first listener */
    enum ts_net_io io;             /* how a loop turn's reads and writes reach the kernel */
    enum ts_net_accept accept;     /* when a connection is accepted */
    char *err;                     /* optional: why ts_net_start failed, one line */
    size_t errlen;
} ts_net_opts_t;

/* Called for every complete HTTP request. The handler must answer it,
 * now or later, with ts_http_respond*, upgrade it, or close the connection;
 * until then no further request is parsed (bytes that arrive are kept, up
 * to one more request's worth; a peer that sends more is disconnected).
 * `req` is valid only during the call. */
typedef void (*ts_net_request_cb)(ts_net_t *net, ts_http_conn_t *hc, ts_http_req_t *req, void *ud);

/* Binds and listens (SO_REUSEADDR + SO_REUSEPORT, TCP_NODELAY on accepted
 * sockets). With opts->exclusive and a fixed port, first checks that no
 * other socket is bound to the address: UV_EADDRINUSE if one is, even one
 * that set SO_REUSEPORT itself (another tabsyncd). With tls_cert, loads it and the key first and speaks only TLS
 * 1.2+ on every connection. Returns 0 and *out, or a libuv error (nothing
 * allocated); when the certificate or key cannot be used, opts->err says
 * which file and why. */
int ts_net_start(uv_loop_t *loop, const ts_net_opts_t *opts, ts_net_request_cb cb, void *ud,
                 ts_net_t **out);
/* The port actually bound. */
uint16_t ts_net_port(const ts_net_t *net);
/* Stops accepting new connections; open ones continue. */
void ts_net_stop_accepting(ts_net_t *net);
/* Closes every connection (abruptly: call after draining) and the net
 * object; `cb` runs once everything is released. */
void ts_net_close(ts_net_t *net, void (*cb)(void *ud), void *ud);

/* --- HTTP --- */

/* Answers the current request; `body` is copied. `headers` are extra
 * "Name: value\r\n" lines or NULL. After the response, the connection is
 * kept alive if the request allowed it, unless `close` is set. */
void ts_http_respond(ts_http_conn_t *hc, int status, const char *headers, const void *body,
                     size_t len, int close);
/* Same, taking a reference-owning body buffer (takes `body`). */
void ts_http_respond_buf(ts_http_conn_t *hc, int status, const char *headers, ts_buf_t *body,
                         int close);
/* Called at most once if the connection goes away while a request is held
 * (not after ts_http_respond, not after ts_http_conn_detach). */
typedef void (*ts_http_abort_cb)(ts_http_conn_t *hc, void *ud);
/* Marks the current request as held for a later answer (long-polling). */
void ts_http_conn_hold(ts_http_conn_t *hc, ts_http_abort_cb cb, void *ud);
void ts_http_conn_detach(ts_http_conn_t *hc);
/* Closes the connection at once (pending writes are dropped). */
void ts_http_conn_close(ts_http_conn_t *hc);
/* --- Moving a connection to another loop (one loop per core) ---
 * An HTTP request may belong to another loop (an Engine.IO session lives
 * on the loop that created it, while the kernel spreads new connections
 * over the loops). The connection then moves there: its socket, TLS
 * session, the request (re-serialised) and whatever the peer sent after
 * it. */
typedef struct ts_net_handoff ts_net_handoff_t;
typedef void (*ts_net_handoff_cb)(ts_net_handoff_t *h, void *ud);
/* Called from the request callback instead of answering: once the output
 * already queued was written, `cb` runs (on this loop) with the handoff,
 * to be passed to ts_net_adopt on the target loop. `hc` must not be used
 * after this returns. */
void ts_http_conn_handoff(ts_http_conn_t *hc, const ts_http_req_t *req, ts_net_handoff_cb cb,
                          void *ud);
/* On the target's loop: takes the connection over and handles its request
 * there (as if it had arrived on this net). Takes `h`. */
void ts_net_adopt(ts_net_t *net, ts_net_handoff_t *h);
/* Drops a handoff that will not be adopted: the peer sees the connection
 * close. Takes `h`. */
void ts_net_handoff_free(ts_net_handoff_t *h);

/* A peer's IP address in 17 bytes (its text takes up to 46): kept per
 * connection and per session, so it is stored binary and formatted when a
 * log line or a caller needs it. */
typedef struct ts_net_addr {
    uint8_t family;    /* 0 = unknown, 4 or 6 */
    uint8_t bytes[16]; /* the first 4 for IPv4 */
} ts_net_addr_t;
/* "127.0.0.1" or "::1" ("" if unknown), in a per-thread buffer that the
 * fourth call after this one on the same thread reuses: copy it to keep it. */
const char *ts_net_addr_str(const ts_net_addr_t *a);
/* The peer's address. */
ts_net_addr_t ts_conn_addr(const ts_http_conn_t *hc);
/* ts_net_addr_str of the peer's address (same lifetime rule). */
const char *ts_conn_peer(const ts_http_conn_t *hc);

/* --- Delivery classes ---
 * What is queued on a connection behind a write the peer has not taken yet
 * (backpressure: a uv_write to a slow reader is in flight) leaves by class,
 * first to last, and in the order queued within a class: a later entry of
 * an earlier class overtakes queued entries of later classes, and a keyed
 * entry replaces a queued one with the same class and key. A peer that
 * keeps up gets everything in the order queued. What is already being
 * written is never reordered nor replaced. */
enum ts_net_class {
    TS_NET_CLASS_FIRST = 0,     /* HTTP output (responses, the 101 of an upgrade) */
    TS_NET_CLASS_SECURITY = 1,  /* the values 1..6 are ts_eio_class's and ts_sio_class_t's */
    TS_NET_CLASS_CONTROL = 2,   /* Engine.IO ping, noop, open, probe; WebSocket pongs */
    TS_NET_CLASS_STATE = 3,
    TS_NET_CLASS_EVENT = 4,     /* ts_ws_send */
    TS_NET_CLASS_PRESENCE = 5,
    TS_NET_CLASS_TELEMETRY = 6,
    TS_NET_CLASS_LAST = 7,      /* the end of the stream: close packets and frames */
    TS_NET_CLASS_MASK = 0x07,
    /* Or'ed into the class of every frame but the last of a group that
     * must arrive together and in order (a Socket.IO packet and its binary
     * attachments): one class, no key. Nothing is flushed before the last
     * one is queued, so nothing is ever put between them. */
    TS_NET_MORE = 0x80,
};

/* --- WebSocket --- */

typedef struct ts_ws_handler {
    /* A complete message (TEXT or BINARY). `msg` is valid during the call. */
    void (*on_message)(ts_ws_conn_t *ws, const ts_ws_msg_t *msg, void *ud);
    /* The WebSocket is gone: close frame received, protocol error, TCP
     * closed, or cut off for not reading. Called once, unless the upper
     * layer closed or detached it first. `code` is the close code seen or
     * sent (1006 when the TCP connection just dropped). */
    void (*on_close)(ts_ws_conn_t *ws, int code, void *ud);
} ts_ws_handler_t;

/* Validates the upgrade request (GET, Upgrade: websocket, Connection:
 * upgrade, Sec-WebSocket-Version: 13, a valid key), writes the 101
 * response (declining every extension) and switches the connection to
 * WebSocket. Returns 0; TS_EVERSION if the version is not 13 (answer 426
 * with "Sec-WebSocket-Version: 13", RFC 6455 4.4); or TS_EPROTO. On error
 * nothing was written: the caller answers. `extra_headers` may be NULL. */
int ts_ws_upgrade(ts_http_conn_t *hc, const ts_http_req_t *req, size_t max_message,
                  const char *extra_headers, const ts_ws_handler_t *h, void *ud);
/* Replaces the handler and its user data (e.g. when an upgrade probe
 * becomes the session's transport). */
void ts_ws_set_handler(ts_ws_conn_t *ws, const ts_ws_handler_t *h, void *ud);
/* Queues a frame whose payload is buf[off..off+len) (a reference is taken;
 * the header is built per connection, the payload bytes are shared).
 * Returns 0, or TS_ECLOSED if the WebSocket is closing. */
int ts_ws_send(ts_ws_conn_t *ws, uint8_t opcode, ts_buf_t *buf, size_t off, size_t len);
/* Queues a frame whose payload is all of `buf` (as ts_ws_send) in delivery
 * class `cls` (enum ts_net_class, TS_NET_MORE or'ed in for all but the last
 * frame of a group; ts_ws_send is EVENT) with coalesce key `key`: 0, or a
 * key: under backpressure, a frame of the same class and key that is still
 * queued (not yet handed to the kernel) is replaced in its place by this
 * one (latest wins) instead of both being sent. Returns 0, or TS_ECLOSED. */
int ts_ws_send_class(ts_ws_conn_t *ws, uint8_t opcode, ts_buf_t *buf, unsigned cls,
                     uint32_t key);
/* Holds the connection's writes until ts_ws_uncork while less than 16 KiB
 * is queued (a close, a cut or a failure is not held): an answer that
 * waits a loop turn for a store read then leaves in one write with what
 * was queued before it, not in two. One holder at a time; uncorking a
 * connection that is not corked does nothing. */
void ts_ws_cork(ts_ws_conn_t *ws);
void ts_ws_uncork(ts_ws_conn_t *ws);
/* Sends a close frame, flushes, then closes the TCP connection. Detaches:
 * on_close will not be called. */
void ts_ws_close(ts_ws_conn_t *ws, uint16_t code, const char *reason);
/* Bytes queued and not yet written to this peer. */
size_t ts_conn_queued(const ts_http_conn_t *c);

#endif
