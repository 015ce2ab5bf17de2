/* ts_adp_remote.h - the adapter's reach beyond this process: a namespace's
 * broadcasts go to the other nodes of a deployment, theirs come back to be
 * delivered here, and their server-side requests (fetchSockets,
 * socketsJoin/Leave, disconnectSockets, serverSideEmit, broadcasts with
 * acks) are answered for this process's sockets; this process makes the
 * same requests of them (`request`) and collects their answers. One small ops table, as
 * Node's Socket.IO separates its Adapter: without one (NULL) a process
 * delivers to its own loops only (the local adapter: ts_adp_rooms.h,
 * ts_adp_bus.h); the Redis one (ts_adp_redis.h) speaks
 * @socket.io/redis-adapter's formats through the store, so that Node
 * servers and tabsyncd nodes can serve one cluster.
 *
 * Every loop of a process has its own handle (each publishes through its
 * own store handle). The Socket.IO layer calls `listen` for each namespace
 * on one loop of the process (the one that then feeds its bus, so every
 * loop delivers remote broadcasts in one order with its own, and that runs
 * each request on every loop), `broadcast`, `answer` and `request` from
 * any loop, and `room` on the loop whose sockets entered or left a room. A remote
 * broadcast is at most once: pub/sub loses what is published while a node
 * cannot be reached (the session history, not this, is what makes a tab
 * whole: docs/CONSISTENCY.md). */
#ifndef TS_ADP_REMOTE_H
#define TS_ADP_REMOTE_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"
#include "core/ts_slice.h"

/* One broadcast as it travels between nodes. */
typedef struct ts_adp_bcast {
    const char *nsp;
    /* The packet's data, ["event", arg..., offset?], with binary values as
     * placeholders {"_placeholder":true,"num":i}: as JSON text when sent
     * (the encoder reads it once); when received (borrowed), as canonical
     * text (core/ts_json.h) when it came as a plain broadcast (no binary
     * values, no acks), else as a tree. */
    ts_slice_t data_json;              /* broadcast; on_bcast: the text, or empty */
    int data_canonical;                /* broadcast: data_json was built from canonical
                                          texts only (not checked again) */
    json_t *data;                      /* on_bcast: the tree when data_json is empty */
    const ts_slice_t *items;           /* on_bcast: data_json's elements (the event's
                                          name, then its arguments), if known */
    size_t nitems;                     /* 0: not known */
    ts_buf_t *const *attach;           /* the binary attachments, in order (borrowed) */
    size_t nattach;
    const char *const *rooms;          /* none: every socket of the namespace */
    size_t nrooms;
    const char *const *except;         /* sockets in these rooms are skipped */
    size_t nexcept;
    int is_volatile;                   /* may be dropped (socket.volatile) */
    int this_loop;                     /* received: heard on a room's own channel by
                                          this loop (`room`): for this loop's sockets
                                          only, the other loops hear it themselves */
} ts_adp_bcast_t;

/* What another node asks of every node's sockets. */
typedef enum ts_adp_req_kind {
    TS_ADP_REQ_FETCH_SOCKETS = 0, /* answer: the matching sockets */
    TS_ADP_REQ_SOCKETS,           /* classic, older versions: answer: their ids */
    TS_ADP_REQ_ALL_ROOMS,         /* classic: answer: every room of every socket */
    TS_ADP_REQ_SOCKETS_JOIN,      /* the matching sockets join `names` */
    TS_ADP_REQ_SOCKETS_LEAVE,     /* ... leave `names` */
    TS_ADP_REQ_DISCONNECT_SOCKETS, /* ... are disconnected (`close`: their connection too) */
    TS_ADP_REQ_SERVER_SIDE_EMIT,  /* an event for the server itself (`data`) */
    TS_ADP_REQ_BROADCAST_ACK,     /* a broadcast whose recipients acknowledge it */
    TS_ADP_REQ_KIND_COUNT
} ts_adp_req_kind_t;

/* "FETCH_SOCKETS", ...; "?" when out of range. */
const char *ts_adp_req_kind_name(ts_adp_req_kind_t kind);

/* A request (borrowed for the call, everything in it too). Which sockets:
 * `sid` when set (the one-socket forms older classic versions send), else
 * those in any of `rooms` (none: all) and in none of `except`. */
typedef struct ts_adp_req {
    ts_adp_req_kind_t kind;
    const char *nsp;
    const char *request_id;   /* NULL: wants no answer */
    const char *requester;    /* the requester's uid (where answers go) */
    const char *const *rooms;
    size_t nrooms;
    const char *const *except;
    size_t nexcept;
    const char *sid;
    const char *const *names; /* SOCKETS_JOIN/LEAVE: the rooms */
    size_t nnames;
    int close;                /* DISCONNECT_SOCKETS */
    json_t *data;             /* SERVER_SIDE_EMIT, BROADCAST_ACK: ["event", args...],
                                 binaries as placeholders into attach */
    ts_buf_t *const *attach;
    size_t nattach;
    uint64_t timeout_ms;      /* BROADCAST_ACK: how long the requester waits; 0: unsaid */
} ts_adp_req_t;

/* An answer to a request (borrowed for the call). Kinds and what they carry:
 * FETCH_SOCKETS: `list` [{id, handshake, rooms, data}]; SOCKETS: `list`
 * ["id", ...]; ALL_ROOMS: `list` ["room", ...]; a one-socket SOCKETS_JOIN /
 * LEAVE / DISCONNECT_SOCKETS (sid set): nothing, sent only by the node that
 * has the socket; SERVER_SIDE_EMIT: `data` (the ack's argument; NULL:
 * undefined); BROADCAST_ACK: `client_count` once, then one answer per client
 * with `is_ack` and `data` (its first ack argument; NULL: undefined).
 * Binary values anywhere in `list` or `data` are placeholders into
 * `attach`. */
typedef struct ts_adp_answer {
    ts_adp_req_kind_t kind;
    const char *nsp;
    const char *request_id;
    const char *requester;
    json_t *list;
    int is_ack;
    uint64_t client_count;
    json_t *data;
    ts_buf_t *const *attach;
    size_t nattach;
} ts_adp_answer_t;

/* What came back from a request this node made (`request`), borrowed for
 * the callback. Binary values in answers are Node's JSON of a Buffer,
 * {"type":"Buffer","data":[bytes...]}, as JSON.stringify writes one. */
typedef struct ts_adp_result {
    int status;       /* 0, or TS_E* when the request could not be sent or
                         counted (the rest is then as far as it got) */
    size_t nodes;     /* the other nodes the request went to: subscribers of the
                         request channel (PUBSUB NUMSUB / SHARDNUMSUB), this one
                         excepted, as Node counts them */
    size_t answered;  /* answers that came (FETCH_SOCKETS, SERVER_SIDE_EMIT with ack) */
    int timed_out;    /* the timeout passed before `nodes` answers came */
    json_t *sockets;  /* FETCH_SOCKETS: [{id, handshake, rooms, data}] of the other
                         nodes, in the order their answers came; else NULL */
    json_t *answers;  /* SERVER_SIDE_EMIT with ack: each answer's value (null for
                         undefined), in the order they came; BROADCAST_ACK: each
                         client's ack (its first argument); else NULL */
    uint64_t clients; /* BROADCAST_ACK: the clients the other nodes reached (their
                         counts summed); `answered` counts the nodes that told theirs */
    json_t *rooms;    /* ALL_ROOMS: the other nodes' rooms as a set (an object
                         whose keys are the rooms); else NULL */
} ts_adp_result_t;

typedef void (*ts_adp_result_cb)(const ts_adp_result_t *res, void *ud);

/* Where another node's messages for one namespace go (on the loop that
 * listens, or for `room`, on the loop that asked). Everything passed is
 * borrowed for the call. */
typedef struct ts_adp_listener {
    void (*on_bcast)(const ts_adp_bcast_t *b, void *ud);
    /* May be NULL: requests are then not heard. */
    void (*on_request)(const ts_adp_req_t *req, void *ud);
    /* May be NULL. Asked before a broadcast to `rooms` (n > 0) is decoded,
     * where the format lets the rooms be read first (classic): 0 drops it
     * (nobody here is in them), which spares the data's transcoding on
     * every node a session has no tab on (docs/PERFORMANCE.md "Across
     * nodes"). The names are not NUL-terminated. */
    int (*wants)(const ts_slice_t *rooms, size_t n, void *ud);
    void *ud;
} ts_adp_listener_t;

typedef struct ts_adp_remote_ops {
    const char *name; /* "redis" */
    /* From now on, broadcasts and requests of other nodes on namespace
     * `nsp` come to `l` (copied) on this handle's loop. Returns 0 or a TS_E*
     * code. */
    int (*listen)(void *self, const char *nsp, const ts_adp_listener_t *l);
    /* Sends b to the other nodes (borrowed; encoded before it returns).
     * Returns 0, or a TS_E* code when it could not even be sent (counted). */
    int (*broadcast)(void *self, const ts_adp_bcast_t *b);
    /* Sends an answer to the requester (borrowed; encoded before it
     * returns), from any loop's handle. Returns 0 or a TS_E* code. */
    int (*answer)(void *self, const ts_adp_answer_t *a);
    /* Room `room` of `nsp` got its first socket on this handle's loop
     * (`present` 1) or lost its last (0). An adapter that hears rooms on
     * channels of their own (sharded, "dynamic") subscribes and
     * unsubscribes; their broadcasts come to l->on_bcast on this loop with
     * `this_loop` set. May be NULL; `l` is copied. */
    void (*room)(void *self, const char *nsp, const char *room, int present,
                 const ts_adp_listener_t *l);
    /* Makes a request of the other nodes (`req` borrowed: kind
     * FETCH_SOCKETS, SOCKETS_JOIN, SOCKETS_LEAVE, DISCONNECT_SOCKETS,
     * SERVER_SIDE_EMIT, BROADCAST_ACK or ALL_ROOMS (a format that has no
     * such request: TS_EINVAL); its nsp, targets, names, close, data and
     * attach; request_id and requester are the adapter's own). FETCH_SOCKETS,
     * ALL_ROOMS, and SERVER_SIDE_EMIT when `ack` is set, collect one answer per other node
     * for up to `timeout_ms` (0: 5000, Node's requestsTimeout); BROADCAST_ACK
     * with `ack` (its clients are told `timeout_ms` too) collects every
     * node's client count and then as many clients' acks, for up to
     * `timeout_ms` (without `ack`: a plain broadcast of `data`); the other
     * kinds want no answer, as Node's. Returns 0, then cb is called exactly
     * once on this handle's loop (with TS_ECLOSED if the adapter closes
     * first); or TS_EINVAL (a kind this op does not send, a message that
     * cannot be encoded) / TS_ECLOSED, and cb is never called. May be NULL
     * (no other nodes to ask). */
    int (*request)(void *self, const ts_adp_req_t *req, int ack, uint64_t timeout_ms,
                   ts_adp_result_cb cb, void *ud);
} ts_adp_remote_ops_t;

/* A handle the Socket.IO layer borrows (its owner closes it after the
 * Socket.IO server is freed). */
typedef struct ts_adp_remote {
    const ts_adp_remote_ops_t *ops;
    void *self;
} ts_adp_remote_t;

#endif
