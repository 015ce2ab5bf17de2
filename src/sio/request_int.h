/* request_int.h - between server.c, server_jobs.c and request.c: the
 * server's structures (server.c owns them), and the job path: a request of
 * this process runs on every loop's sockets through server_jobs.c (the path
 * another node's request takes), and request.c adds the other nodes.
 * Private to src/sio. */
#ifndef TS_SIO_REQUEST_INT_H
#define TS_SIO_REQUEST_INT_H
#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "adapter/ts_adp_bus.h"
#include "adapter/ts_adp_remote.h"
#include "adapter/ts_adp_rooms.h"
#include "adapter/ts_adp_saved.h"
#include "core/ts_list.h"
#include "core/ts_map.h"
#include "core/ts_ratelimit.h"
#include "eio/ts_eio.h"
#include "sio/ts_sio.h"

#define ID_LEN 20

/* Inside its Engine.IO session's allocation (ts_eio_handler_t.extra_size):
 * the session and the server are found from it (ts_sio__client_eio,
 * ts_sio__client_srv). */
typedef struct client {
    /* Only while a binary packet collects its attachments (216 bytes):
     * every other message is decoded by a decoder on the stack. */
    ts_sio_decoder_t *dec;
    ts_sio_socket_t *socks; /* one per joined namespace, linked by next_in_client */
    ts_list_t pending_link; /* in srv->unconnected until a namespace is joined */
    uint64_t created_ms;
    ts_rl_lite_t connects;  /* namespace CONNECTs: each may verify a token (its rate and
                             * burst: CONNECTS_PER_S, CONNECTS_BURST) */
} client_t;

static inline ts_eio_sock_t *ts_sio__client_eio(client_t *c) { return ts_eio_sock_of_extra(c); }
static inline ts_sio_server_t *ts_sio__client_srv(client_t *c) {
    return ts_eio_sock_server_ud(ts_sio__client_eio(c));
}

/* What only a socket that emitted with an ack needs: made at its first
 * ts_sio_emit_ack (most sockets never do), freed with the socket. */
typedef struct ack_state {
    int64_t next;   /* the next ack id */
    ts_list_t list; /* pending_ack_t.link */
} ack_state_t;

/* Field order packs the struct into 120 bytes (a 128-byte malloc chunk):
 * one per connected namespace, so every byte counts (docs/ARCHITECTURE.md). */
struct ts_sio_socket {
    client_t *c;
    ts_sio_socket_t *next_in_client; /* in joining order; a client has few */
    ts_sio_nsp_t *nsp;
    ts_adp_sock_t adp; /* its id (its own room), the rooms it joined */
    char pid[ID_LEN + 1];
    uint8_t recovered;
    json_t *auth;
    const char *owner; /* identity a restored session must match (optional; borrowed) */
    void *ud;
    ack_state_t *acks; /* owned; NULL until its first emit with an ack */
};
_Static_assert(ID_LEN == TS_ADP_ID_LEN, "socket ids are the adapter's");
_Static_assert(TS_SIO_MAX_LOOPS <= TS_ADP_MAX_LOOPS, "every loop has a cursor on the bus");

/* The part of a namespace shared by the loops of a group. */
typedef struct nsp_shared {
    pthread_mutex_t mu;
    char *name;
    ts_adp_bus_t bus;  /* the ordered log every loop delivers from */
    ts_adp_saved_set_t saved; /* sessions of disconnected sockets, by pid */
} nsp_shared_t;

struct ts_sio_group {
    pthread_mutex_t mu;
    ts_map_t nsps;     /* name -> nsp_shared_t */
    size_t nloops;
    ts_sio_server_t *srvs[TS_SIO_MAX_LOOPS]; /* NULL once freed */
    ts_sio_opts_t opts;
    char offset_prefix[9]; /* offsets of this process: "<prefix>.<seq>" */
    int owned_by_server;   /* a private group of one */
};

struct ts_sio_nsp {
    ts_sio_server_t *srv;
    nsp_shared_t *sh;
    char *name;
    ts_sio_nsp_handler_t h;
    void *ud;
    ts_adp_rooms_t rooms; /* this loop's sockets of the namespace and their rooms */
};

typedef struct pattern {
    int (*match)(const char *, void *);
    ts_sio_nsp_handler_t h;
    void *ud;
} pattern_t;

struct ts_sio_server {
    uv_loop_t *loop;
    ts_sio_opts_t opts;
    ts_map_t nsps; /* name -> ts_sio_nsp_t */
    pattern_t *patterns;
    size_t npatterns;
    ts_list_t unconnected; /* client_t.pending_link, oldest first */
    /* Our reason for the connection client_close is closing, which
     * Engine.IO's on_close (always called from inside ts_eio_sock_close)
     * takes instead of its own: here rather than in every client. */
    const char *close_reason;
    uv_timer_t sweep;
    uint64_t gen;
    ts_sio_group_t *group;
    unsigned idx;      /* this loop's index in the group */
    uv_async_t bus;    /* woken when another loop appended to a shared log */
    json_t *no_auth;   /* the empty CONNECT payload most sockets share */
    int closing_handles;
    ts_adp_remote_t *remote;  /* the other nodes (borrowed); NULL = this process only */
    int remote_listener;      /* this loop takes the other nodes' broadcasts in */
    pthread_mutex_t jobs_mu;  /* guards jobs */
    ts_list_t jobs;           /* other nodes' requests this loop has to run (job_ref_t) */
};

/* server.c, for server_jobs.c. */
char **ts_sio__strv_copy(const char *const *v, size_t n); /* returns new; NULL if n is 0 */
void ts_sio__strv_free(char **v, size_t n);
ts_sio_socket_t *ts_sio__sock_of(ts_adp_sock_t *a); /* the socket of an adapter entry */
/* The socket whose own room is `name`, if it is in this namespace. */
ts_sio_socket_t *ts_sio__by_id(ts_sio_nsp_t *nsp, const char *name);

/* server_jobs.c, for server.c: runs the jobs other loops queued for this
 * one; a request of another node, heard by the listener loop
 * (ts_adp_listener_t.on_request, ud: the namespace). */
void ts_sio__run_jobs(ts_sio_server_t *srv);
void ts_sio__on_request(const ts_adp_req_t *req, void *ud);

/* list (borrowed for the call): FETCH_SOCKETS: [{id, handshake, rooms,
 * data}] of every loop's matching sockets; ALL_ROOMS: their rooms as a set
 * (an object whose keys are the rooms); BROADCAST_ACK with ack: the acks
 * that came (each client's first argument), else an empty array. matched:
 * how many sockets the request matched. */
typedef void (*ts_sio__local_cb)(json_t *list, size_t matched, void *ud);

/* Runs `req` (borrowed; kind FETCH_SOCKETS, ALL_ROOMS, SOCKETS_JOIN/LEAVE,
 * DISCONNECT_SOCKETS or BROADCAST_ACK (data ["event", args...]: emitted to
 * the matching sockets, with `ack` each one's ack awaited for timeout_ms,
 * 0: 5000); request_id, requester and sid ignored) on the sockets
 * of every loop of the process, this one's first. Returns 0, then cb is
 * called once on this loop when every loop ran it (possibly before this
 * returns; never if this loop's server is freed first); or TS_EINVAL (another
 * kind) / TS_ECLOSED (the server is being freed), and cb is never called. */
int ts_sio__local_request(ts_sio_server_t *srv, const ts_adp_req_t *req, int ack,
                          ts_sio__local_cb cb, void *ud);

/* This loop's adapter to the other nodes (borrowed), or NULL. */
ts_adp_remote_t *ts_sio__remote(const ts_sio_server_t *srv);

#endif
