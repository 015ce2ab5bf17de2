/* tsbench.h - private to tsbench: the lean Socket.IO client connection
 * (conn.c) and the state the scenarios share (tsbench.c). One process, one
 * libuv loop, single-threaded: the state is one global struct. */
#ifndef TSB_TSBENCH_H
#define TSB_TSBENCH_H
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "event.h"
#include "hist.h"
#include "net/ts_ws_frame.h"

enum tsb_scenario { SC_FANOUT, SC_SESSIONS, SC_IDLE, SC_CONNECT, SC_REPLAY, SC_SLOW };

enum tsb_cstate {
    CS_IDLE = 0, /* no socket */
    CS_TCP,      /* TCP connect in progress */
    CS_HTTP,     /* upgrade request sent, waiting for 101 */
    CS_EIO,      /* waiting for the Engine.IO OPEN packet */
    CS_SIO,      /* Socket.IO CONNECT sent, waiting for the reply */
    CS_JOIN,     /* join sent, waiting for its ack */
    CS_READY,    /* connected (and joined): events flow */
    CS_CLOSING,  /* uv_close called, waiting for the close callback */
};

#define TSB_NO_ROOM UINT32_MAX

typedef struct tsb_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uint32_t idx;      /* index in B.conns */
    uint8_t state;     /* enum tsb_cstate */
    uint8_t queued;    /* publisher waiting in the pump queue */
    uint8_t recovered; /* replay: the reconnect kept the session id */
    uint8_t caught;    /* replay: has every event it missed */
    uint8_t slow;      /* slow: stopped reading on purpose */
    uint8_t raw;       /* reads are counted and discarded, not parsed */
    uint32_t ident;    /* connect --session: which identity it presents */
    uint32_t wpending; /* uv_write requests in flight */
    uint32_t room;     /* room to join, or TSB_NO_ROOM */
    uint32_t slot;     /* member number within the room */
    uint8_t *rbuf;     /* bytes kept between reads (partial frame, HTTP head) */
    uint32_t rlen, rcap;
    uint64_t t_start;  /* uv_hrtime() when the TCP connect began */
    ts_ws_reader_t ws;
    /* as a publisher */
    uint32_t sent; /* events published; the next sequence number */
    uint32_t acked; /* /session: publish acks received (in order: the next ack id) */
    uint64_t dlv;  /* deliveries of its events seen by receivers */
    /* connection state recovery (replay) */
    char sid[32], pid[32], off[48];
    /* as a receiver: the next sequence number expected from each member
     * slot of the room (fanout and replay: one publisher, slot 0) */
    uint32_t nexp;
    uint32_t expect[];
} tsb_conn_t;

/* conn.c: the client side of WebSocket + Engine.IO + Socket.IO */
typedef struct tsb_conn_hooks {
    /* Socket.IO CONNECT answered (sid/pid filled in conn). */
    void (*connected)(tsb_conn_t *c);
    /* An ACK for our packet `id`; `ok` = the first argument was "ok". */
    void (*ack)(tsb_conn_t *c, int64_t id, int ok);
    /* A benchmark event. */
    void (*event)(tsb_conn_t *c, const tsb_ev_t *ev);
    /* Writes the CONNECT auth object (JSON) for c into buf; returns its
     * length, 0 for none. NULL: CONNECT without auth. */
    size_t (*auth)(tsb_conn_t *c, char *buf, size_t cap);
    /* The /session `welcome` event arrived; `w` is its object (borrowed). */
    void (*welcome)(tsb_conn_t *c, json_t *w);
    /* The connection failed or the server closed it (not called for our own
     * closes). `why` is a short message. */
    void (*failed)(tsb_conn_t *c, const char *why);
    /* The handle is closed; the conn may be opened again. */
    void (*closed)(tsb_conn_t *c);
} tsb_conn_hooks_t;

typedef struct tsb_client {
    uv_loop_t *loop;
    struct sockaddr_in server;
    char host_hdr[64];
    /* a second server (tsb_client_set_second): conns of odd index go there */
    int two;
    struct sockaddr_in server2;
    char host_hdr2[64];
    uint32_t per_src;   /* connections per loopback source address */
    int recovery;       /* send pid/offset when the conn has them */
    char nsp[64];       /* namespace joined, "/" by default */
    int session;        /* nsp is /session: envelopes and acks take its fast path */
    tsb_conn_hooks_t hooks;
    char accept[29];    /* expected Sec-WebSocket-Accept */
    uint64_t rng;
    uint64_t bytes_out, bytes_in;
} tsb_client_t;

extern tsb_client_t tsb_cl;

int tsb_client_init(uv_loop_t *loop, const char *host, int port, uint32_t per_src, int recovery,
                    const tsb_conn_hooks_t *hooks);
void tsb_client_deinit(void);
/* Sends every other connection (those of odd index) to host:port instead:
 * two servers of one cluster behind one generator. Returns 0 or a uv error. */
int tsb_client_set_second(const char *host, int port);
/* Returns new: a conn with `nexp` expected-sequence slots. */
tsb_conn_t *tsb_conn_new(uint32_t idx, uint32_t nexp);
void tsb_conn_free(tsb_conn_t *c);
/* Starts connecting from source address number `src` (127.0.0.2 + src).
 * Returns 0, or a uv error if no socket could be made (no hook fires then);
 * later failures come through the `failed` hook, then `closed`. */
int tsb_conn_open(tsb_conn_t *c, uint32_t src);
/* Sends one Engine.IO text packet (the type character included). */
void tsb_conn_send(tsb_conn_t *c, const char *text, size_t len);
/* Closes the socket (RST if `reset`, else FIN); `closed` hook fires later. */
void tsb_conn_close(tsb_conn_t *c, int reset);
/* Stops reading (the peer's data piles up in the kernel, then in the
 * server), or starts again with every byte counted and discarded: the
 * `failed` hook then says when the server closed the connection. */
void tsb_conn_pause(tsb_conn_t *c);
void tsb_conn_resume_raw(tsb_conn_t *c);

#endif
