/* ts_eio.h - Engine.IO v4 server: sessions over HTTP long-polling and
 * WebSocket, the upgrade between them, heartbeats and close. The layer
 * above (Socket.IO) sees a session as an ordered pipe of text and binary
 * messages that closes exactly once, with a reason. */
#ifndef TS_EIO_H
#define TS_EIO_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ts_buf.h"
#include "net/ts_net.h"

typedef struct ts_eio_server ts_eio_server_t;
typedef struct ts_eio_sock ts_eio_sock_t;

typedef struct ts_eio_cors {
    const char *const *origins; /* borrowed; "*" = any origin; n = 0: no CORS headers */
    size_t n;
    int credentials;
} ts_eio_cors_t;

typedef struct ts_eio_opts {
    const char *path;            /* e.g. "/socket.io/" (must end in '/') */
    uint32_t ping_interval_ms;   /* 0 = 25000 */
    uint32_t ping_timeout_ms;    /* 0 = 20000 */
    uint32_t upgrade_timeout_ms; /* 0 = 10000 */
    size_t max_payload;          /* 0 = 1000000 */
    size_t max_queue;            /* bytes waiting for a polling client's GET before the
                                    session is closed; 0 = 16 MiB */
    int no_polling;              /* disable the polling transport */
    int no_websocket;            /* disable the websocket transport */
    ts_eio_cors_t cors;
    /* One loop per core: this server's loop number (0..63) and how many
     * there are. With nloops > 1 every sid starts with a character that
     * names its loop (ts_eio_request_loop), so a request that lands on
     * another loop can be sent to the right one. */
    unsigned loop_index, nloops;
    /* Optional gate for handshakes (requests without sid), before a session
     * exists: Node's allowRequest. Returns 0 to accept; or an HTTP status
     * (403, 429, 503) after writing a short sentence into msg[0..msglen) and
     * the seconds the client should wait into *retry_after_s (0 = none).
     * The client gets {"code":4,"message":msg} (and Retry-After). `peer` is
     * the remote address. */
    int (*allow)(const ts_http_req_t *req, const char *peer, char *msg, size_t msglen,
                 uint32_t *retry_after_s, void *ud);
    void *allow_ud;
} ts_eio_opts_t;

typedef struct ts_eio_handler {
    /* A new session; the handler may set its user data and send. */
    void (*on_open)(ts_eio_sock_t *s, void *server_ud);
    /* One message: text (data without the '4') or binary. Valid during the call. */
    void (*on_message)(ts_eio_sock_t *s, const uint8_t *data, size_t len, int binary, void *ud);
    /* The session is closed (every cause, including ts_eio_sock_close).
     * Called exactly once; `s` must not be used after it returns. Reasons:
     * "transport close", "transport error", "ping timeout", "parse error",
     * "forced close", "server shutting down". */
    void (*on_close)(ts_eio_sock_t *s, const char *reason, void *ud);
    /* Bytes of the layer above's own state that every session carries in
     * its allocation (ts_eio_sock_extra), zeroed: one object per connection
     * instead of two (a malloc header and two back pointers less). The area
     * is then also the session's user data (ts_eio_sock_ud). 0 = none. */
    size_t extra_size;
} ts_eio_handler_t;

/* Returns new. Strings in `opts` are borrowed for the server's lifetime. */
ts_eio_server_t *ts_eio_server_new(uv_loop_t *loop, const ts_eio_opts_t *opts,
                                   const ts_eio_handler_t *h, void *server_ud);
/* Closes every session with "server shutting down" (a close packet goes to
 * each peer), then frees the server once its timers are released. */
void ts_eio_server_free(ts_eio_server_t *srv);
/* True if `path` belongs to this server (prefix match on opts.path). */
int ts_eio_matches(const ts_eio_server_t *srv, ts_slice_t path);
/* Handles one HTTP request for this server: a handshake, a poll, a post, a
 * WebSocket handshake or upgrade, a CORS preflight, or one of the error
 * answers of the protocol. Always answers or keeps the request. */
void ts_eio_handle(ts_eio_server_t *srv, ts_http_conn_t *hc, const ts_http_req_t *req);
/* The loop a request belongs to: the loop number its sid names, or -1 for
 * a handshake (no sid) or a sid no loop could have made (the request is
 * then answered as an unknown session by whichever loop has it). */
int ts_eio_request_loop(const ts_http_req_t *req, unsigned nloops);
/* Number of open sessions. */
size_t ts_eio_count(const ts_eio_server_t *srv);
/* Closes every session with `reason` (graceful shutdown). */
void ts_eio_close_all(ts_eio_server_t *srv, const char *reason);

/* Sends one message. Text: `buf` holds the whole Engine.IO packet
 * ("4..."): callers put the message type first so that the same bytes go
 * to every recipient. Binary: raw bytes. A reference is taken. Ignored
 * after close. Delivery class EVENT, no coalesce key. */
void ts_eio_send(ts_eio_sock_t *s, ts_buf_t *buf, int binary);

/* Delivery classes of a session's messages, first to last. While the peer
 * reads slower than we write (a write to its websocket is in flight; with
 * polling, until its next GET), queued messages leave highest class first,
 * equal classes in the order sent (ts_ws_send_class; the queue waiting for
 * a polling client's GET works alike). Engine.IO's own packets are
 * CONTROL (ping, noop, open, probe), except the close packet, which goes
 * after everything queued (the peer drops what follows it). The values are
 * net's (TS_NET_CLASS_*) and Socket.IO's (ts_sio_class_t). */
enum ts_eio_class {
    TS_EIO_CLASS_SECURITY = TS_NET_CLASS_SECURITY,
    TS_EIO_CLASS_CONTROL = TS_NET_CLASS_CONTROL,
    TS_EIO_CLASS_STATE = TS_NET_CLASS_STATE,
    TS_EIO_CLASS_EVENT = TS_NET_CLASS_EVENT,
    TS_EIO_CLASS_PRESENCE = TS_NET_CLASS_PRESENCE,
    TS_EIO_CLASS_TELEMETRY = TS_NET_CLASS_TELEMETRY,
    /* Or'ed into the class of every message but the last of a group that
     * must arrive together and in order (a Socket.IO packet and its binary
     * attachments): one class, no key. Nothing is sent before the last one
     * is queued, and nothing is ever put between them. */
    TS_EIO_MORE = TS_NET_MORE,
};
/* ts_eio_send in delivery class `cls` (a TS_EIO_CLASS_*, TS_EIO_MORE or'ed
 * in for all but the last message of a group; any other value counts as
 * EVENT) with coalesce key `key`: 0, or a key: a message of the same class
 * and key still queued for this peer as above (not yet handed to the
 * kernel) is replaced in its place by this one (latest wins). */
void ts_eio_send_class(ts_eio_sock_t *s, ts_buf_t *buf, int binary, unsigned cls, uint32_t key);
/* Holds the session's writes until ts_eio_sock_uncork (ts_ws_cork: while
 * small), so that what it answers in two loop turns leaves in one write.
 * Websocket transport only: a polling client's answers wait for its next
 * GET anyway. One holder at a time. */
void ts_eio_sock_cork(ts_eio_sock_t *s);
void ts_eio_sock_uncork(ts_eio_sock_t *s);
/* Server-initiated close: flush what is queued, send a close packet, then
 * close ("forced close"). on_close runs before this returns. */
void ts_eio_sock_close(ts_eio_sock_t *s);
/* The session's user data, passed to the handler's callbacks. With an
 * extra_size, it is always the extra area (set_ud does nothing). */
void ts_eio_sock_set_ud(ts_eio_sock_t *s, void *ud);
/* The handler's extra_size bytes of `s` (aligned for pointers and 64-bit
 * integers), valid from on_open until on_close returns; and back. */
void *ts_eio_sock_extra(ts_eio_sock_t *s);
ts_eio_sock_t *ts_eio_sock_of_extra(void *extra);
/* The server_ud the session's server was made with. */
void *ts_eio_sock_server_ud(const ts_eio_sock_t *s);
void *ts_eio_sock_ud(ts_eio_sock_t *s);
const char *ts_eio_sock_id(const ts_eio_sock_t *s);
/* "polling" or "websocket". */
const char *ts_eio_sock_transport(const ts_eio_sock_t *s);
/* The peer's address as text, with ts_net_addr_str's lifetime (a per-thread
 * buffer reused four calls later): copy it to keep it. */
const char *ts_eio_sock_peer(const ts_eio_sock_t *s);
/* The handshake's User-Agent (at most 256 bytes), or NULL. Borrowed. */
const char *ts_eio_sock_user_agent(const ts_eio_sock_t *s);
/* Round-trip time of the last heartbeat (ping -> pong) in ms; -1 before the
 * first pong. Server-measured: includes the client's event-loop delay. */
int ts_eio_sock_rtt_ms(const ts_eio_sock_t *s);

#endif
