/* client_int.h - private to libtabsync: the client struct shared by
 * client.c (connection life cycle, I/O) and proto.c (Engine.IO/Socket.IO
 * dispatch, emits, acks), and the pure helpers (URL, handshake, masked
 * frames) that the unit tests drive directly. Nothing here is exported. */
#ifndef TS_CLIENT_INT_H
#define TS_CLIENT_INT_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ts_err.h"
#include "core/ts_list.h"
#include "eio/ts_eio_packet.h"
#include "net/tls_int.h"
#include "net/ts_ws_frame.h"
#include "sio/ts_sio_packet.h"
#include "tabsync.h" /* after ts_err.h: the server's table wins, values are equal */

/* ---- URL (url.c) ---- */

typedef struct ts_client__url {
    int tls;               /* wss:// or https:// */
    char host[256];        /* without the brackets of an IPv6 literal */
    uint16_t port;         /* 80 (443 with TLS) when absent */
    char host_header[272]; /* "host", "host:port", "[v6]:port" */
    char target[2048];     /* path?EIO=4&transport=websocket[&query] */
} ts_client__url_t;

/* Parses ws://, http://, wss:// and https:// URLs. Returns 0, or TS_EINVAL
 * with err holding a sentence starting "url: ". Allocates nothing. */
int ts_client__url_parse(const char *url, ts_client__url_t *out, char *err, size_t errlen);

/* ---- WebSocket handshake (handshake.c) ---- */

#define TS_CLIENT__MAX_RESPONSE_HEAD 16384

/* Writes the HTTP upgrade request for `u` with the 24-character base64
 * `key` into out[0..cap). Returns its length, or TS_ETOOBIG if cap is short. */
int ts_client__handshake_request(const ts_client__url_t *u, const char *key, char *out,
                                 size_t cap);

/* Parses the server's answer to the upgrade request. `accept` is the
 * expected Sec-WebSocket-Accept (ts_ws_accept_key of the key sent).
 * Returns 1 when a valid 101 head is complete (*used = its length; bytes
 * after it are WebSocket frames), 0 when more bytes are needed, TS_EPROTO
 * (not 101, header missing or wrong, accept mismatch, extension or
 * subprotocol we did not offer, malformed) or TS_ETOOBIG (head over
 * TS_CLIENT__MAX_RESPONSE_HEAD) with err saying why. */
int ts_client__handshake_parse(const uint8_t *p, size_t len, const char *accept, size_t *used,
                               char *err, size_t errlen);

/* ---- output buffer and masked frames (frame.c) ---- */

typedef struct ts_client__obuf {
    uint8_t *p;
    size_t len, cap;
} ts_client__obuf_t;

/* Makes room for `extra` more bytes. Returns 0 or TS_ENOMEM (unchanged). */
int ts_client__obuf_reserve(ts_client__obuf_t *o, size_t extra);
int ts_client__obuf_append(ts_client__obuf_t *o, const void *p, size_t len);
void ts_client__obuf_free(ts_client__obuf_t *o);

/* Bytes a masked single frame of `len` payload bytes takes on the wire. */
size_t ts_client__ws_frame_size(size_t len);
/* Appends one complete FIN frame, masked with `mask` as a client must.
 * Returns 0 or TS_ENOMEM (nothing appended). */
int ts_client__ws_append(ts_client__obuf_t *o, uint8_t opcode, const void *payload, size_t len,
                         const uint8_t mask[4]);

/* xorshift64* seeded from the kernel: masks need not be cryptographic for
 * a native client (RFC 6455 masking protects proxies from browser scripts),
 * and a getrandom() per frame would cost a syscall per message. */
uint64_t ts_client__rand(uint64_t *state);

/* ---- the client ---- */

enum ts_client__phase {
    PH_RESOLVE = 0, /* getaddrinfo */
    PH_TCP,         /* TCP connect */
    PH_HANDSHAKE,   /* upgrade request sent, waiting for 101 */
    PH_WS,          /* WebSocket up, waiting for the Engine.IO open packet */
    PH_EIO,         /* CONNECT sent, waiting for the namespace's answer */
    PH_SIO,         /* namespace connected */
};

typedef struct ts_client__transport ts_client__transport_t;

/* One connection attempt and, if it succeeds, the connection. Freed only
 * when its libuv requests and handle are done, which is always after the
 * client has moved on (c->t != t): see transport_kill in client.c. */
struct ts_client__transport {
    ts_client_t *c;   /* the owner; c->t == this while current */
    int phase;        /* enum ts_client__phase */
    int gai_active;   /* getaddrinfo request outstanding */
    int tcp_init;     /* tcp handle initialised (must be uv_closed) */
    int tcp_closing;
    int writing;      /* a uv_write of `inflight` is outstanding */
    int dropped;      /* ts_client_debug_drop: report when the handle is closed */
    int close_sent;   /* our WebSocket close frame is queued */
    uv_getaddrinfo_t gai;
    uv_connect_t conn_req;
    uv_tcp_t tcp;
    uv_write_t wreq;
    ts_client__obuf_t out;      /* frames queued while a write is in flight (plaintext) */
    ts_client__obuf_t inflight; /* bytes of the outstanding write (plain connections) */
    ts_tls_t *tls;              /* wss://: the TLS session, from the TCP connect on */
    uint8_t *cipher;            /* wss://: the read buffer for ciphertext */
    uint8_t *in;                /* received (decrypted) bytes not yet consumed */
    size_t in_len, in_cap;
    char accept[29];            /* expected Sec-WebSocket-Accept */
    char peer[300];             /* "host:port", for messages */
    ts_ws_reader_t reader;
    ts_sio_decoder_t dec;
};

typedef struct ts_client__ack {
    ts_list_t link;
    int64_t id;
    ts_client_ack_cb cb;
    void *ud;
    uint64_t deadline; /* uv_now ms; 0 = none */
    int sent;          /* the EVENT went out on a connection (lost with it) */
} ts_client__ack_t;

typedef struct ts_client__queued {
    ts_list_t link;
    ts_sio_encoded_t enc;
    int64_t ack_id; /* TS_SIO_NO_ID when no ack is wanted */
} ts_client__queued_t;

struct ts_client {
    uv_loop_t *loop;
    ts_client_opts_t opts;     /* copy; strings below are our copies */
    char *url_text, *nsp;
    json_t *auth;              /* NULL or an object */
    ts_client__url_t url;
    ts_tls_ctx_t *tls_ctx;     /* wss:// URLs: the verifying client context */
    ts_sio_parser_kind_t kind;
    int state;                 /* ts_client_state_t */
    ts_client_close_cb close_cb;
    int finishing;             /* handles are being closed */
    int handles;               /* open uv handles of the client itself */
    int live_transports;       /* allocated transports (current or dying) */
    ts_client__transport_t *t; /* current transport or NULL */
    unsigned attempts;         /* reconnection attempts since the last success */
    uint64_t rng;
    /* session */
    char *sid, *pid, *offset;
    int recovered;
    unsigned ping_interval, ping_timeout;
    size_t max_payload;
    /* events received before the CONNECT reply (a recovered session's
     * missed events come first): delivered right after on_connect */
    ts_sio_packet_t *early;
    size_t nearly, early_cap;
    /* acks */
    int64_t next_ack_id;
    ts_list_t acks;      /* ts_client__ack_t, in emit order */
    int64_t *sacks;      /* ack ids the server waits for on this connection */
    size_t nsacks, sacks_cap;
    /* emits waiting for a connection */
    ts_list_t queue;     /* ts_client__queued_t */
    size_t nqueued;
    uv_timer_t t_reconnect, t_connect, t_ping, t_ack, t_close;
    uv_timer_t t_elect;           /* leader heartbeats, deadlines, reports (elect.c) */
    struct ts_client__sess *sess; /* /session state (session.c), NULL for plain clients */
    struct ts_client__elect *el;  /* election state (elect.c), NULL for plain clients */
};

/* client.c, used by proto.c */
int ts_client__send_text(ts_client_t *c, const char *s, size_t len);
int ts_client__send_encoded(ts_client_t *c, const ts_sio_encoded_t *enc);
void ts_client__fail(ts_client_t *c, int err, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ts_client__kill_transport(ts_client_t *c);
/* (Re)starts the heartbeat watchdog: pingInterval + pingTimeout. */
void ts_client__arm_ping(ts_client_t *c);
/* The namespace answered CONNECT: stops the connect timer, resets attempts. */
void ts_client__connected(ts_client_t *c);

/* proto.c, used by client.c */
void ts_client__on_ws_message(ts_client_t *c, const ts_ws_msg_t *m);
int ts_client__send_connect(ts_client_t *c);
void ts_client__flush_queue(ts_client_t *c);
void ts_client__fail_acks(ts_client_t *c, int all, int status);
void ts_client__rearm_ack_timer(ts_client_t *c);
void ts_client__on_ack_timer(uv_timer_t *h);
void ts_client__clear_session_io(ts_client_t *c);
/* Emits `event` with the elements of the JSON array `args` (borrowed) as
 * arguments. As ts_client_emit_ack (cb NULL: no ack). */
int ts_client__emit_json(ts_client_t *c, const char *event, json_t *args, ts_client_ack_cb cb,
                         void *ud, unsigned timeout_ms);

/* session.c, used by proto.c and client.c */
/* A /session event for a typed callback. args: the arguments after the
 * name (borrowed). Returns 1 if delivered to a typed callback, 0 if it
 * goes to on_event as usual, TS_ENOMEM. */
int ts_client__sess_dispatch(ts_client_t *c, const char *name, json_t *args);
void ts_client__sess_free(struct ts_client__sess *s);

/* Called with the parsed answer of a request sent by ts_client__sess_send
 * (answer NULL when status < 0 or the answer is not {ok: ...}), right
 * before the request's own callback. */
typedef void (*ts_client__answer_hook)(ts_client_t *c, int status, json_t *answer, void *hook_ud);

/* Emits `event` with the one argument `arg` (taken) and, when cb or hook,
 * an ack with the session's ack timeout; the answer goes to hook (if any,
 * then hook_ud is free()d) and to cb as a ts_client_result_t. Returns as
 * ts_client_publish (hook_ud is freed on failure too). */
int ts_client__sess_send(ts_client_t *c, const char *event, json_t *arg,
                         ts_client__answer_hook hook, void *hook_ud, ts_client_result_cb cb,
                         void *ud);

/* elect.c, used by session.c and client.c */
/* The election state of a new session client (copies the callbacks and
 * what it needs of `o`). Returns new, or NULL when out of memory. */
struct ts_client__elect *ts_client__elect_new(const ts_client_session_opts_t *o);
void ts_client__elect_free(struct ts_client__elect *e);
/* An `elect` view (borrowed). Returns 1 if scb.on_elect took it, 0 if it
 * goes on to on_event too (after the library has taken it into account). */
int ts_client__elect_view(ts_client_t *c, json_t *view);
/* The connection is gone: nobody may act as leader until the server
 * confirms it again. Reports from the loop, not from here. */
void ts_client__elect_conn_lost(ts_client_t *c);

/* Renders a JSON array as JavaScript's JSON.stringify would (through the
 * shared encoder). Returns new (malloc), or NULL. */
char *ts_client__json_text(json_t *arr, size_t nattach, ts_buf_t **attach);

#endif
