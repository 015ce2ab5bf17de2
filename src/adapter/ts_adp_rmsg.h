/* ts_adp_rmsg.h - the wire format of npm @socket.io/redis-adapter 8.x, so
 * tabsyncd nodes and Node.js Socket.IO servers share one Redis: the classic
 * adapter (createAdapter: PUBLISH, msgpack broadcasts, JSON requests) and
 * the sharded one (createShardedAdapter, socket.io-adapter's ClusterAdapter:
 * SPUBLISH, JSON unless a binary value forces msgpack). Pure functions:
 * bytes and a channel in, a message out, and back; no I/O, no state.
 * docs/REDIS-WIRE.md says what each message looks like and who sends it. */
#ifndef TS_ADP_RMSG_H
#define TS_ADP_RMSG_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"
#include "core/ts_slice.h"

typedef enum ts_adp_rmsg_format {
    TS_ADP_RMSG_CLASSIC = 0, /* createAdapter (class RedisAdapter) */
    TS_ADP_RMSG_SHARDED = 1, /* createShardedAdapter (ClusterAdapter) */
} ts_adp_rmsg_format_t;

/* What a message is, in both formats. The comment gives the classic request
 * type (RequestType) and the sharded message type (MessageType). */
typedef enum ts_adp_rmsg_kind {
    TS_ADP_RMSG_NONE = 0,
    /* one-way messages and requests */
    TS_ADP_RMSG_BROADCAST,          /* classic: on the broadcast channel; sharded 3 */
    TS_ADP_RMSG_BROADCAST_WITH_ACK, /* classic 7 (msgpack); sharded 3 with requestId */
    TS_ADP_RMSG_SOCKETS_JOIN,       /* classic 2 (REMOTE_JOIN); sharded 4 */
    TS_ADP_RMSG_SOCKETS_LEAVE,      /* classic 3 (REMOTE_LEAVE); sharded 5 */
    TS_ADP_RMSG_DISCONNECT_SOCKETS, /* classic 4 (REMOTE_DISCONNECT); sharded 6 */
    TS_ADP_RMSG_FETCH_SOCKETS,      /* classic 5 (REMOTE_FETCH); sharded 7 */
    TS_ADP_RMSG_SERVER_SIDE_EMIT,   /* classic 6; sharded 9 */
    TS_ADP_RMSG_SOCKETS,            /* classic 0 (only older versions send it) */
    TS_ADP_RMSG_ALL_ROOMS,          /* classic 1 */
    TS_ADP_RMSG_INITIAL_HEARTBEAT,  /* sharded 1 */
    TS_ADP_RMSG_HEARTBEAT,          /* sharded 2 */
    TS_ADP_RMSG_ADAPTER_CLOSE,      /* sharded 13 */
    /* responses */
    TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE,     /* classic {requestId, sockets: [objects]}; sharded 8 */
    TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE,  /* classic type 6; sharded 10 */
    TS_ADP_RMSG_BROADCAST_CLIENT_COUNT,     /* classic 8; sharded 11 */
    TS_ADP_RMSG_BROADCAST_ACK,              /* classic 9 (msgpack); sharded 12 */
    TS_ADP_RMSG_SOCKETS_RESPONSE,           /* classic {requestId, sockets: [ids]} */
    TS_ADP_RMSG_ALL_ROOMS_RESPONSE,         /* classic {requestId, rooms} */
    TS_ADP_RMSG_RESPONSE,                   /* classic {requestId}: one socket joined,
                                               left or was disconnected */
    TS_ADP_RMSG_KIND_COUNT
} ts_adp_rmsg_kind_t;

/* "BROADCAST", "FETCH_SOCKETS_RESPONSE", ...; "?" when out of range. */
const char *ts_adp_rmsg_kind_name(ts_adp_rmsg_kind_t kind);

/* Which channel a sharded broadcast to exactly one room goes to (the
 * adapter's `subscriptionMode`; the zero value is Node's default). */
typedef enum ts_adp_rmsg_submode {
    TS_ADP_RMSG_SUB_DYNAMIC = 0,     /* "dynamic": <prefix>#<nsp>#<room># unless the room
                                        looks like a socket id (20 characters) */
    TS_ADP_RMSG_SUB_STATIC = 1,      /* "static": always <prefix>#<nsp># */
    TS_ADP_RMSG_SUB_DYNAMIC_PRIVATE = 2, /* "dynamic-private": socket ids too */
} ts_adp_rmsg_submode_t;

#define TS_ADP_RMSG_PREFIX_DEFAULT "socket.io"
#define TS_ADP_RMSG_MAX_BYTES_DEFAULT ((size_t)8 << 20)
#define TS_ADP_RMSG_MAX_DEPTH_DEFAULT 32u
#define TS_ADP_RMSG_MAX_ITEMS_DEFAULT ((size_t)1 << 20)
#define TS_ADP_RMSG_MAX_ATTACH_DEFAULT 256u

/* How the Node side is configured, and our limits. A zeroed struct (or NULL
 * where one is taken) means Node's defaults and ours. */
typedef struct ts_adp_rmsg_cfg {
    const char *prefix;       /* classic `key` / sharded `channelPrefix`; NULL: "socket.io" */
    ts_adp_rmsg_submode_t submode;  /* sharded only */
    int specific_responses;   /* classic `publishOnSpecificResponseChannel`: answers go
                                 to <prefix>-response#<nsp>#<requester uid># */
    size_t max_bytes;         /* a message's size; 0: 8 MiB */
    unsigned max_depth;       /* nesting of arrays and maps, the message's own
                                 included; 0: 32 */
    size_t max_items;         /* array elements and map entries in one message; 0: 2^20 */
    size_t max_attach;        /* binary values in one message; 0: 256 */
} ts_adp_rmsg_cfg_t;

typedef struct ts_adp_rmsg_strs {
    char **v; /* NUL-terminated; may contain no NUL (rooms, ids) */
    size_t n;
} ts_adp_rmsg_strs_t;

/* Broadcast flags (socket.io's BroadcastFlags). */
enum ts_adp_rmsg_flag {
    TS_ADP_RMSG_F_VOLATILE = 1u << 0, /* volatile: true */
    TS_ADP_RMSG_F_LOCAL = 1u << 1,    /* local: true (Node never publishes those) */
    TS_ADP_RMSG_F_COMPRESS = 1u << 2, /* compress present; its value is F_COMPRESS_ON */
    TS_ADP_RMSG_F_COMPRESS_ON = 1u << 3,
    TS_ADP_RMSG_F_TIMEOUT = 1u << 4,  /* timeout present: timeout_ms */
    TS_ADP_RMSG_F_SINGLE = 1u << 5,   /* expectSingleResponse: true (RemoteSocket.emit) */
};

/* Which sockets an operation targets: in any of `rooms` (none: all), in none
 * of `except`. */
typedef struct ts_adp_rmsg_opts {
    ts_adp_rmsg_strs_t rooms;
    ts_adp_rmsg_strs_t except;
    unsigned flags;     /* TS_ADP_RMSG_F_* */
    uint64_t timeout_ms; /* with TS_ADP_RMSG_F_TIMEOUT */
} ts_adp_rmsg_opts_t;

/* A part of a text: data_text's bytes [at, at + len). */
typedef struct ts_adp_rmsg_span {
    size_t at, len;
} ts_adp_rmsg_span_t;

/* An event's name and 16 arguments: as many as sio relays as text. */
#define TS_ADP_RMSG_ITEMS_MAX 17

/* The Socket.IO packet of a broadcast. */
typedef struct ts_adp_rmsg_packet {
    int type;     /* 2 (EVENT) as Node sends it, binary arguments or not */
    char *nsp;    /* packet.nsp: classic always; sharded has none (NULL) */
    int64_t id;   /* packet.id, or -1 (Node never sends one: each node numbers its own) */
    json_t *data; /* ["event", args...]; binaries as placeholders into msg.attach */
    ts_buf_t *data_text; /* ts_adp_rmsg_decode_text only: the same array as canonical
                            text (core/ts_json.h) instead of `data` (then NULL) */
    /* Where data_text's elements lie (the event's name, then its arguments),
     * when the decoder saw them go by (a classic message's msgpack walk);
     * nitems 0: not recorded (the text says, for whoever skips it). */
    ts_adp_rmsg_span_t items[TS_ADP_RMSG_ITEMS_MAX];
    size_t nitems;
} ts_adp_rmsg_packet_t;

/* One socket in an answer to fetchSockets (socket.io's RemoteSocket). */
typedef struct ts_adp_rmsg_sock {
    char *id;
    json_t *handshake;       /* object: headers, time, address, xdomain, secure, issued,
                                url, query, auth (what the Node side sends) */
    ts_adp_rmsg_strs_t rooms; /* its own id first */
    json_t *data;            /* socket.data; NULL: undefined */
} ts_adp_rmsg_sock_t;

/* A message. The decoder fills it with owned members (free with
 * ts_adp_rmsg_clear); the encoder borrows what the caller put in it. Which
 * fields a kind uses is said per field; the others are zero / NULL. */
typedef struct ts_adp_rmsg {
    ts_adp_rmsg_format_t format;
    ts_adp_rmsg_kind_t kind;
    int msgpack;       /* decode: 1 if it came as msgpack, 0 as JSON text (read-only;
                          the encoder picks what Node would send) */
    char *uid;         /* the sender's uid (classic responses have none: NULL) */
    char *nsp;         /* the namespace ("/"): from the channel (classic requests and
                          responses), packet.nsp (classic broadcast) or the message */
    char *request_id;  /* the request this message is or answers; NULL if none */
    char *room;        /* the room a broadcast channel names (classic with exactly one
                          room, sharded dynamic mode), else NULL */
    char *to;          /* the requester's uid a response channel names (sharded
                          responses, classic specific_responses), else NULL; the
                          encoder needs it for those */
    ts_adp_rmsg_packet_t packet; /* BROADCAST, BROADCAST_WITH_ACK */
    int has_opts;                /* opts present (the classic one-socket requests have none) */
    ts_adp_rmsg_opts_t opts;     /* BROADCAST*, SOCKETS_JOIN/LEAVE, DISCONNECT_SOCKETS,
                                    FETCH_SOCKETS */
    ts_adp_rmsg_strs_t rooms;    /* SOCKETS_JOIN/LEAVE: the rooms to join / leave (one-socket
                                    form: its one room); SOCKETS: the rooms asked about;
                                    ALL_ROOMS_RESPONSE: the rooms; SOCKETS_RESPONSE: socket ids */
    char *sid;                   /* classic one-socket SOCKETS_JOIN/LEAVE/DISCONNECT_SOCKETS
                                    (has_opts 0): the socket */
    int close;                   /* DISCONNECT_SOCKETS: close the connection too */
    json_t *data;                /* SERVER_SIDE_EMIT: ["event", args...];
                                    SERVER_SIDE_EMIT_RESPONSE, BROADCAST_ACK: the answer
                                    (NULL: undefined) */
    uint64_t client_count;       /* BROADCAST_CLIENT_COUNT */
    ts_adp_rmsg_sock_t *sockets; /* FETCH_SOCKETS_RESPONSE */
    size_t nsockets;
    ts_buf_t **attach;           /* binary values anywhere in the message, in order: each
                                    stands as {"_placeholder":true,"num":i} in the trees */
    size_t nattach;
} ts_adp_rmsg_t;

/* Frees the members of a decoded message and zeroes it. */
void ts_adp_rmsg_clear(ts_adp_rmsg_t *m);

/* Decodes one message received on `channel` (borrowed, as Redis gave it).
 * The channel says what a classic message is (broadcast, request, response)
 * and must belong to cfg->prefix; a sharded message says it itself, and its
 * channel must be <prefix>#<its nsp>#, optionally followed by <room or
 * requester uid>#. Returns 0 with *out filled (owned), or TS_EINVAL with a
 * one-line reason in err (NUL-terminated, truncated to errlen; err may be
 * NULL) and *out zeroed. Never aborts on any input. */
int ts_adp_rmsg_decode(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                       ts_slice_t channel, ts_slice_t bytes, ts_adp_rmsg_t *out, char *err,
                       size_t errlen);

/* ts_adp_rmsg_decode for a node that relays what it hears as text: a plain
 * broadcast (no acks, no binary values, canonical data) comes back with its
 * data as canonical text in packet.data_text and no tree; every other
 * message, as ts_adp_rmsg_decode returns it. About a third of the cost of a
 * tree (docs/PERFORMANCE.md, "Across nodes"). */
int ts_adp_rmsg_decode_text(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                            ts_slice_t channel, ts_slice_t bytes, ts_adp_rmsg_t *out, char *err,
                            size_t errlen);

/* 1 if `bytes` is a message sent by `uid`, which a node skips without
 * decoding: a classic one whose first item is that uid (as notepack writes
 * it), a sharded one that ends with "uid":"<uid>","nsp":"..."} (as
 * ClusterAdapter.publish and we write it); 0 otherwise (decoded, then
 * judged by its uid). */
int ts_adp_rmsg_is_from(ts_adp_rmsg_format_t format, ts_slice_t bytes, const char *uid);

/* The rooms of a classic broadcast ([uid, packet, opts]) without reading
 * its packet, so that a node with no socket in them drops it without
 * transcoding its data (adapter/redis.c). Returns 1 with the rooms in
 * rooms[0..*nrooms) (borrowed from bytes, not NUL-terminated; none: to
 * the whole namespace); 0 for what the decoder must judge: another shape,
 * more than `cap` rooms, "rooms" twice, a name that is not UTF-8
 * or holds NUL, anything cut. What it returns 1 for and the decoder takes,
 * the decoder reads the same rooms of (fuzz_adp_rmsg). */
int ts_adp_rmsg_peek_rooms(ts_adp_rmsg_format_t format, ts_slice_t bytes, ts_slice_t *rooms,
                           size_t cap, size_t *nrooms);

/* What to publish: classic with PUBLISH, sharded with SPUBLISH. */
typedef struct ts_adp_rmsg_wire {
    ts_buf_t *bytes;   /* returns new */
    ts_buf_t *channel; /* returns new; NUL-terminated */
} ts_adp_rmsg_wire_t;

/* Releases both buffers and zeroes *w. */
void ts_adp_rmsg_wire_clear(ts_adp_rmsg_wire_t *w);

/* Encodes `m` (borrowed; m->format and m->kind say what) as the Node adapter
 * of that format writes it: same encoding (JSON text or msgpack), same keys
 * in the same order, same channel. Needs uid and nsp; request_id where the
 * kind has one; `to` for sharded responses (and classic ones with
 * specific_responses). Binary values: placeholders in the trees with their
 * buffers in m->attach (written as msgpack bin, or as Node's JSON of a
 * Buffer where Node writes JSON). Returns 0 with *out filled, or TS_EINVAL
 * (err says why: a missing field, a placeholder without its attachment, a
 * kind the format does not have) with *out zeroed. */
int ts_adp_rmsg_encode(const ts_adp_rmsg_cfg_t *cfg, const ts_adp_rmsg_t *m,
                       ts_adp_rmsg_wire_t *out, char *err, size_t errlen);

/* What the caller of ts_adp_rmsg_encode_broadcast knows of the data text. */
typedef enum ts_adp_rmsg_text {
    TS_ADP_RMSG_TEXT_ANY = 0,   /* any JSON: checked (a canonical one takes the fast path) */
    TS_ADP_RMSG_TEXT_CANONICAL, /* built from canonical texts only: not checked again */
} ts_adp_rmsg_text_t;

/* The broadcast path: the packet's arguments as JSON text (borrowed), e.g.
 * ["event",1,{"_placeholder":true,"num":0}], with its attachments (borrowed)
 * and targets. request_id non-NULL: a broadcast with acknowledgements.
 * Otherwise as ts_adp_rmsg_encode: 0 or TS_EINVAL (bad JSON, not an array,
 * a placeholder without its attachment). */
int ts_adp_rmsg_encode_broadcast(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                                 const char *uid, const char *nsp, const char *request_id,
                                 ts_slice_t data_json, ts_adp_rmsg_text_t form,
                                 ts_buf_t *const *attach, size_t nattach,
                                 const ts_adp_rmsg_opts_t *opts, ts_adp_rmsg_wire_t *out,
                                 char *err, size_t errlen);

#endif
