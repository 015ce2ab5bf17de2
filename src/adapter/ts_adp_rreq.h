/* ts_adp_rreq.h - the server-side requests of @socket.io/redis-adapter
 * between a decoded message (ts_adp_rmsg.h) and what the Socket.IO layer
 * acts on (ts_adp_remote.h): which message is a request for us and what it
 * asks, and how an answer travels back in either format; the other way
 * round, how a request of ours travels and what its answers add up to. Pure functions,
 * no I/O; the Redis adapter (redis.c) publishes and subscribes. */
#ifndef TS_ADP_RREQ_H
#define TS_ADP_RREQ_H
#include "adapter/ts_adp_remote.h"
#include "adapter/ts_adp_rmsg.h"

/* Fills *out (borrowing from `m`) when `m` is a request another node (or an
 * emitter) made that this node must act on. Returns 1 then; 0 for anything
 * else: our own (uid == `own_uid`), a broadcast without ack, a response, a
 * heartbeat. */
int ts_adp_rreq_of(const ts_adp_rmsg_t *m, const char *own_uid, ts_adp_req_t *out);

/* Encodes the answer `a` (borrowed) as the Node adapter of `format` answers
 * that request, from node `own_uid`. Returns 0 with *out filled; 1 when the
 * format has no answer of that kind (*out zeroed: nothing to send); or
 * TS_EINVAL with a reason in err (an ill-formed list, a placeholder
 * without its attachment). */
int ts_adp_rreq_encode_answer(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                              const char *own_uid, const ts_adp_answer_t *a,
                              ts_adp_rmsg_wire_t *out, char *err, size_t errlen);

/* Encodes a request of this node (borrowed; kind FETCH_SOCKETS,
 * SOCKETS_JOIN/LEAVE, DISCONNECT_SOCKETS, SERVER_SIDE_EMIT, BROADCAST_ACK
 * (data ["event", args...], its clients' timeout: timeout_ms, 0: 5000;
 * without a request_id, the plain broadcast of the same packet) or
 * ALL_ROOMS, with its
 * request_id where an answer is wanted) as Node's adapter of `format` sends
 * it, from node `own_uid`: on the request channel (classic) or the
 * namespace's main channel (sharded). Returns 0 with *out filled, or
 * TS_EINVAL with a reason in err (another kind, FETCH_SOCKETS without
 * request_id, SERVER_SIDE_EMIT without data, ALL_ROOMS in the sharded
 * format, which has no such request). */
int ts_adp_rreq_encode_request(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                               const char *own_uid, const ts_adp_req_t *req,
                               ts_adp_rmsg_wire_t *out, char *err, size_t errlen);

/* A copy of `v` (borrowed; returns a new reference) in which every binary
 * placeholder {"_placeholder":true,"num":i} is Node's JSON of a Buffer,
 * {"type":"Buffer","data":[bytes...]}: what a JSON answer shows of it. */
json_t *ts_adp_rreq_buffers(json_t *v, ts_buf_t *const *attach, size_t nattach);

/* Counts `m` (a decoded message, borrowed) into `res` when it answers a
 * request of kind `kind` (the caller matched its request_id): a
 * FETCH_SOCKETS_RESPONSE appends its sockets to res->sockets, a
 * SERVER_SIDE_EMIT_RESPONSE its value to res->answers, an
 * ALL_ROOMS_RESPONSE its rooms to the set res->rooms (each created when
 * NULL; the caller releases them), and res->answered grows by one; for
 * BROADCAST_ACK a BROADCAST_CLIENT_COUNT adds its count to res->clients
 * (answered grows by one: a node told its count) and a BROADCAST_ACK its
 * value to res->answers. Binary
 * values become Node's JSON of a Buffer. Returns 1 if counted, 0 if `m` is
 * no answer to such a request (res untouched). */
int ts_adp_rreq_collect(ts_adp_result_t *res, ts_adp_req_kind_t kind, const ts_adp_rmsg_t *m);

#endif
