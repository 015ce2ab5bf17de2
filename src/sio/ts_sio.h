/* ts_sio.h - Socket.IO v5 server: namespaces (static and by pattern),
 * sockets, rooms, broadcasts, acknowledgements in both directions, and
 * connection state recovery. This is the C API namespace handlers (the
 * test app, the conformance app, and later /session) are written against.
 *
 * Event arguments are jansson arrays in which each binary value stands as
 * a placeholder {"_placeholder":true,"num":i} for attach[i] (see
 * ts_sio_packet.h); handlers pass both along unchanged to echo binary.
 * A relaying namespace may also take events as the JSON texts that arrived
 * (`on_raw_event`) and send those on as they are (ts_sio_broadcast_raw):
 * no tree is built and nothing is serialized again. */
#ifndef TS_SIO_H
#define TS_SIO_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ts_buf.h"
#include "eio/ts_eio.h"
#include "sio/ts_sio_packet.h"

typedef struct ts_sio_server ts_sio_server_t;
typedef struct ts_sio_group ts_sio_group_t;
typedef struct ts_sio_nsp ts_sio_nsp_t;
typedef struct ts_sio_socket ts_sio_socket_t;
typedef struct ts_sio_target ts_sio_target_t; /* a broadcast's recipients: below */

/* Arguments of an event or an ack (borrowed by callees). */
typedef struct ts_sio_args {
    json_t *args;      /* JSON array (never NULL in callbacks) */
    ts_buf_t **attach; /* binary attachments referenced by placeholders */
    size_t nattach;
} ts_sio_args_t;

/* A refusal filled in by an authorize callback: CONNECT_ERROR to the client. */
typedef struct ts_sio_refusal {
    char message[256];
    json_t *data; /* optional; the server takes the reference */
} ts_sio_refusal_t;

typedef struct ts_sio_nsp_handler {
    /* Middleware: return 0 to accept, or nonzero after filling `refuse`.
     * Skipped for a connection restored by state recovery unless
     * `authorize_recovered` is set. `auth` is the
     * CONNECT payload (an object, {} if none). May be NULL (accept all). */
    int (*authorize)(ts_sio_socket_t *s, json_t *auth, ts_sio_refusal_t *refuse, void *nsp_ud);
    /* After the CONNECT reply (and, when recovered, after the missed packets). */
    void (*on_connection)(ts_sio_socket_t *s, void *nsp_ud);
    /* An event from the client. `ack_id` >= 0 if the client wants an ack:
     * answer it once with ts_sio_ack. */
    void (*on_event)(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *args,
                     int64_t ack_id, void *nsp_ud);
    /* The socket is gone; it must not be used after this returns. Reasons:
     * "client namespace disconnect", "server namespace disconnect",
     * "transport close", "transport error", "ping timeout", "parse error",
     * "forced close", "server shutting down". */
    void (*on_disconnect)(ts_sio_socket_t *s, const char *reason, void *nsp_ud);
    /* 1: run `authorize` for a connection restored by state recovery too
     * (Node's skipMiddlewares: false). A refusal then drops the restored
     * session. For namespaces whose credentials expire. */
    int authorize_recovered;
    /* Optional fast path, tried before on_event for an EVENT that
     * ts_sio_raw_event_parse recognizes (the common case: what
     * JSON.stringify wrote, no binary): its arguments as canonical JSON
     * texts borrowed from the message, `str` set for strings without
     * escapes. Return 1 if handled, or 0 before doing anything: the packet
     * is then decoded in full and given to on_event as usual. */
    int (*on_raw_event)(ts_sio_socket_t *s, const char *event, const ts_sio_raw_arg_t *args,
                        size_t nargs, int64_t ack_id, void *nsp_ud);
    /* Durable recovery (optional; its presence turns it on): the namespace
     * recovers sockets from a log of its own, which outlives the process,
     * instead of the server's in-memory one: the server saves no session
     * and appends no offset of its own to this namespace's packets (the
     * namespace gives offsets with ts_sio_target_t.offset and
     * ts_sio_emit_raw_at), and the CONNECT reply always carries a pid. A
     * CONNECT that presents a pid and an offset comes here after
     * `authorize` accepted it: return 0 to connect now as a fresh socket,
     * or 1 to finish later, once, with ts_sio_connect_finish. Until then
     * the socket is in no room; what the namespace emits to it (the missed
     * packets) reaches the client before the CONNECT reply, as Node does.
     * If the connection goes first, on_disconnect is called without
     * on_connection. */
    int (*restore)(ts_sio_socket_t *s, const char *pid, const char *offset, void *nsp_ud);
    /* 1: the namespace reads the CONNECT payload only in `authorize` (and
     * `restore`): the server releases it once the socket is connected, and
     * ts_sio_socket_auth returns an empty object from then on. A payload
     * with a token is a jansson tree of about 1 KB held for the socket's
     * lifetime otherwise. */
    int forget_auth;
    /* Optional: another node's plain broadcast to this namespace (its
     * arguments as canonical texts, borrowed for the call), before it is
     * delivered here. Return 1 to take it: the namespace delivers it itself,
     * now or later, with ts_sio_broadcast_raw and TS_SIO_REACH_HERE (so that
     * it can put the entries of a log in their order); 0 to have it
     * delivered now. Asked only when the process runs one loop (with
     * several, one loop hears the other nodes for all of them). */
    int (*on_remote_raw)(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                         const ts_sio_raw_arg_t *args, size_t nargs, void *nsp_ud);
    /* Optional: another node's broadcast to `rooms` (n > 0), none of which
     * a socket here is in: 1 to have it all the same (delivered, or handed
     * to on_remote_raw), 0 (or no hook) to drop it unread. Asked before it
     * is decoded, where the adapter can read its rooms first, and only when
     * the process runs one loop without the server's own recovery. */
    int (*wants_remote)(ts_sio_nsp_t *nsp, const char *const *rooms, size_t n, void *nsp_ud);
} ts_sio_nsp_handler_t;

typedef struct ts_sio_opts {
    ts_sio_parser_kind_t parser;
    uint32_t recovery_ms;        /* maxDisconnectionDuration; 0 = recovery off */
    uint32_t connect_timeout_ms; /* no namespace joined by then: close; 0 = 45000 */
    size_t max_log_entries;      /* recovery log bound per namespace; 0 = 100000 */
    size_t max_log_bytes;        /* and in payload bytes; 0 = 64 MiB. A client that
                                    missed more than the log holds gets a fresh session */
    /* Saved sessions (disconnected sockets that may come back) per namespace,
     * bounded besides recovery_ms; over a bound the oldest go first. */
    size_t max_saved;            /* 0 = 10000 */
    size_t max_saved_bytes;      /* 0 = 16 MiB */
    size_t max_saved_per_addr;   /* per client address; 0 = 1000 */
} ts_sio_opts_t;

/* Returns new. The server installs itself as the Engine.IO handler of `eio`
 * (create the Engine.IO server with ts_sio_eio_handler() and the returned
 * server as its user data: see ts_sio_attach). */
ts_sio_server_t *ts_sio_server_new(uv_loop_t *loop, const ts_sio_opts_t *opts);
/* The Engine.IO callbacks to pass to ts_eio_server_new with the sio server
 * as server_ud. */
const ts_eio_handler_t *ts_sio_eio_handler(void);
/* Frees the server; call after the Engine.IO server closed every session.
 * The memory goes once the loop ran its handle callbacks. */
void ts_sio_server_free(ts_sio_server_t *srv);

/* Several loops, one server each, serving one process's clients: a
 * broadcast on any loop reaches the recipients on every loop, all in one
 * order per namespace, and a reconnecting client is recovered on whichever
 * loop it lands (its saved session and the log are shared). Create the
 * group once, then one server per loop with ts_sio_server_new_in (each on
 * its own thread's loop); every loop must register the same namespaces
 * (patterns included). Free the group after every server was freed and
 * its loop ran (ts_sio_server_new makes a private group of one). */
#define TS_SIO_MAX_LOOPS 64
ts_sio_group_t *ts_sio_group_new(const ts_sio_opts_t *opts, size_t nloops);
void ts_sio_group_free(ts_sio_group_t *g);
/* Returns new: loop number `idx` (0 <= idx < nloops) of the group. */
ts_sio_server_t *ts_sio_server_new_in(uv_loop_t *loop, ts_sio_group_t *g, size_t idx);
/* How many loops the server's group has (fixed when it was made). */
size_t ts_sio_server_loops(const ts_sio_server_t *srv);

/* The other nodes of a deployment (ts_adp_remote.h; borrowed, NULL = none):
 * every broadcast made on this loop is also sent to them. The one loop of
 * the process with `listener` set hears theirs, for every namespace it has
 * or will have, and delivers them to every loop (as its own broadcasts);
 * it also hears their server-side requests (fetchSockets, socketsJoin/
 * Leave, disconnectSockets, serverSideEmit, broadcasts with acks), runs
 * each on every loop's sockets and answers once for the process. Each loop
 * tells its remote when one of its rooms gets its first socket or loses
 * its last (adapters that hear rooms on channels of their own). */
struct ts_adp_remote;
void ts_sio_server_set_remote(ts_sio_server_t *srv, struct ts_adp_remote *remote, int listener);

/* What a server-side request of this process found (ts_sio_request),
 * borrowed for the callback. */
typedef struct ts_sio_result {
    int status;       /* 0, or why the other nodes were not (all) asked: TS_ESTORE,
                         TS_ECLOSED; this process's part was done anyway */
    int remote;       /* the other nodes were asked (an adapter is set) */
    size_t local;     /* this process's sockets the request matched, every loop's */
    size_t nodes;     /* the other nodes it went to (ts_adp_result_t) */
    size_t answered;  /* of those, how many answered (fetchSockets, emit with ack) */
    int timed_out;    /* the timeout passed before every answer came */
    json_t *sockets;  /* FETCH_SOCKETS: [{id, handshake, rooms, data}], this
                         process's sockets first, then the other nodes' */
    json_t *answers;  /* SERVER_SIDE_EMIT with ack: the other nodes' answers;
                         BROADCAST_ACK with ack: every client's ack (its first
                         argument), this process's clients' first */
    uint64_t clients; /* BROADCAST_ACK: the clients it reached, this process's
                         (`local`) and the other nodes' (as they counted them) */
    json_t *rooms;    /* ALL_ROOMS: every room of this process's sockets and the
                         other nodes', each once, sorted */
} ts_sio_result_t;
typedef void (*ts_sio_result_cb)(const ts_sio_result_t *res, void *ud);

/* What Node's io.fetchSockets(), io.socketsJoin(), io.socketsLeave(),
 * io.disconnectSockets(), io.serverSideEmit() and adapter.allRooms() do,
 * made by this process: `req` (borrowed; a ts_adp_req_t of kind
 * FETCH_SOCKETS, SOCKETS_JOIN, SOCKETS_LEAVE, DISCONNECT_SOCKETS,
 * SERVER_SIDE_EMIT, BROADCAST_ACK (data ["event", args...] emitted to the
 * matching sockets of every node; with `ack` each client's ack is awaited,
 * up to `timeout_ms`, which its client is given too) or ALL_ROOMS (every
 * room, whatever the targets: the other nodes are asked only with the
 * classic format, which has the request; with the sharded one `remote` is
 * 0) with nsp, rooms,
 * except, names, close, data ["event", args...]) runs on the sockets of
 * every loop of the process (not SERVER_SIDE_EMIT: as in Node, it is for
 * the other servers only) and goes to the other nodes through the adapter,
 * whose answers (fetchSockets, allRooms; serverSideEmit when `ack`) are awaited up to
 * `timeout_ms` (0: 5000). Returns 0, then cb is called exactly once on
 * this loop, possibly before this returns (nothing to wait for); or
 * TS_EINVAL (another kind, no namespace, an emit without an event name)
 * and cb is never called. */
struct ts_adp_req;
int ts_sio_request(ts_sio_server_t *srv, const struct ts_adp_req *req, int ack,
                   uint64_t timeout_ms, ts_sio_result_cb cb, void *ud);

/* Registers namespace `name` ("/", "/custom"). Returns it (owned by the server). */
ts_sio_nsp_t *ts_sio_nsp_add(ts_sio_server_t *srv, const char *name,
                             const ts_sio_nsp_handler_t *h, void *ud);
/* Registers a dynamic namespace family: any name for which `match` returns
 * true gets a namespace with handler `h`, created at its first CONNECT. */
void ts_sio_nsp_pattern(ts_sio_server_t *srv, int (*match)(const char *name, void *ud),
                        const ts_sio_nsp_handler_t *h, void *ud);
const char *ts_sio_nsp_name(const ts_sio_nsp_t *nsp);
size_t ts_sio_nsp_count(const ts_sio_nsp_t *nsp);

/* --- sockets --- */
const char *ts_sio_socket_id(const ts_sio_socket_t *s);
ts_sio_nsp_t *ts_sio_socket_nsp(const ts_sio_socket_t *s);
/* The CONNECT payload as received (borrowed, an object; read-only: an
 * empty one is shared by every socket that sent none, and by every socket
 * of a namespace with `forget_auth` once it is connected). */
json_t *ts_sio_socket_auth(const ts_sio_socket_t *s);
int ts_sio_socket_recovered(const ts_sio_socket_t *s);
/* The identity this socket's session belongs to (e.g. "user/session/device/
 * tab"), set by `authorize`. With `authorize_recovered`, a connection that
 * presents a saved session's pid is restored (same id, rooms, missed
 * packets) only if its authorize sets the same owner; otherwise it starts
 * fresh. Borrows `owner`: it must stay valid until the socket's
 * on_disconnect returns, or until authorize returns if it refuses (every
 * /session tab keeps it in its own keys, so a copy here cost each tab a
 * malloc). NULL clears it. */
void ts_sio_socket_set_owner(ts_sio_socket_t *s, const char *owner);
void ts_sio_socket_set_ud(ts_sio_socket_t *s, void *ud);
void *ts_sio_socket_ud(const ts_sio_socket_t *s);
ts_eio_sock_t *ts_sio_socket_eio(const ts_sio_socket_t *s);
/* Holds the writes of the socket's connection (every namespace on it)
 * until ts_sio_socket_uncork, while they are small (ts_eio_sock_cork): a
 * namespace whose first event waits for a store read sends the CONNECT
 * reply and that event in one write. One holder per connection. */
void ts_sio_socket_cork(ts_sio_socket_t *s);
void ts_sio_socket_uncork(ts_sio_socket_t *s);
/* Room names the socket is in (its own id first). Returns the count and
 * fills up to `max` borrowed names. */
size_t ts_sio_socket_rooms(const ts_sio_socket_t *s, const char **out, size_t max);
/* How many of this loop's sockets of `nsp` are in `room`. */
size_t ts_sio_room_size(const ts_sio_nsp_t *nsp, const char *room);

/* Completes a CONNECT that `restore` took: `pid` restored (the client's
 * own, so that socket.recovered is true on its side), or NULL to start a
 * fresh session. Sends the CONNECT reply, then calls on_connection. */
void ts_sio_connect_finish(ts_sio_socket_t *s, const char *pid);

void ts_sio_join(ts_sio_socket_t *s, const char *room);
void ts_sio_leave(ts_sio_socket_t *s, const char *room);
/* Server-side disconnect of this socket ("server namespace disconnect");
 * with `close_conn`, the whole connection is closed too. on_disconnect runs
 * before this returns. */
void ts_sio_disconnect(ts_sio_socket_t *s, int close_conn);

/* --- emitting --- */

/* Delivery classes, first to last. While a connection's peer reads slower
 * than we write, its queued packets leave highest class first (a queued
 * SECURITY packet overtakes everything), packets of one class in the order
 * sent; and a queued packet with a nonzero coalesce key is replaced by a
 * newer one with the same class and key (latest wins: presence, telemetry).
 * Nothing else is ever dropped; what was already handed to the kernel is
 * never reordered. Engine.IO's own packets (ping, noop) travel as CONTROL;
 * its close packet goes after everything queued (a client drops what
 * follows it). Socket.IO's own packets (CONNECT, DISCONNECT, acks) and
 * recovery replays are DEFAULT. A packet with binary attachments arrives
 * whole (nothing is put between its parts) and is never coalesced.
 * TS_SIO_CLASS_DEFAULT (0, what zeroed targets say) is EVENT. */
typedef enum ts_sio_class {
    TS_SIO_CLASS_DEFAULT = 0,
    TS_SIO_CLASS_SECURITY,
    TS_SIO_CLASS_CONTROL,
    TS_SIO_CLASS_STATE,
    TS_SIO_CLASS_EVENT,
    TS_SIO_CLASS_PRESENCE,
    TS_SIO_CLASS_TELEMETRY,
} ts_sio_class_t;


/* socket.emit(event, ...args): `args` may be NULL (no arguments). */
void ts_sio_emit(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *args);
/* The same in delivery class `cls` (e.g. SECURITY: ahead of everything queued). */
void ts_sio_emit_class(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *args,
                       ts_sio_class_t cls);
/* Called once: with the client's answer (timed_out = 0), or timed_out = 1
 * after `timeout_ms` (0 = wait forever), or with timed_out = -1 if the
 * socket disconnected first (args NULL in both of those cases). */
typedef void (*ts_sio_ack_cb)(ts_sio_socket_t *s, const ts_sio_args_t *answer, int timed_out,
                              void *ud);
void ts_sio_emit_ack(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *args,
                     uint32_t timeout_ms, ts_sio_ack_cb cb, void *ud);
/* Answers the client's ack request `ack_id`. */
void ts_sio_ack(ts_sio_socket_t *s, int64_t ack_id, const ts_sio_args_t *args);
/* ts_sio_emit and ts_sio_ack with arguments given as canonical JSON texts
 * (see ts_sio_broadcast_raw): copied into the packet as they are with the
 * JSON parser, parsed first with msgpack. */
void ts_sio_emit_raw(ts_sio_socket_t *s, const char *event, const ts_sio_raw_arg_t *args,
                     size_t nargs);
void ts_sio_ack_raw(ts_sio_socket_t *s, int64_t ack_id, const ts_sio_raw_arg_t *args,
                    size_t nargs);
/* ts_sio_emit_raw with an offset as the last argument (durable recovery:
 * a replayed packet carries the offset it had). */
void ts_sio_emit_raw_at(ts_sio_socket_t *s, const char *event, const ts_sio_raw_arg_t *args,
                        size_t nargs, const char *offset);

/* Broadcast target: rooms (none = the whole namespace), minus sockets in
 * any `except` room, minus `skip` (socket.broadcast / socket.to(): the
 * sender). The packet is encoded once; every recipient shares its bytes. */
/* Where a broadcast goes: this process's sockets and the other nodes'
 * (the default), or one of the two (a namespace that orders what it
 * delivers here sends to the others at once and here in its turn). */
typedef enum ts_sio_reach {
    TS_SIO_REACH_ALL = 0,
    TS_SIO_REACH_HERE,   /* this process's sockets only */
    TS_SIO_REACH_OTHERS, /* the other nodes only */
} ts_sio_reach_t;

struct ts_sio_target {
    const char *const *rooms;
    size_t nrooms;
    const char *const *except;
    size_t nexcept;
    const ts_sio_socket_t *skip;
    ts_sio_class_t cls;   /* delivery class (see above) */
    uint32_t coalesce;    /* 0, or a key: a queued packet with the same key is replaced */
    const char *offset;   /* durable recovery: appended as the last argument (the
                           * offset a client presents when it reconnects); NULL */
    ts_sio_reach_t reach;
};
void ts_sio_broadcast(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                      const ts_sio_args_t *args);
/* The same with arguments given as canonical JSON texts (ts_sio_raw_arg_t:
 * from on_raw_event, or built by the caller in JSON.stringify's form, which
 * ts_json_is_canonical checks): with the JSON parser they are copied
 * into the packet as they are; with msgpack they are parsed first. */
void ts_sio_broadcast_raw(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                          const ts_sio_raw_arg_t *args, size_t nargs);

#endif
