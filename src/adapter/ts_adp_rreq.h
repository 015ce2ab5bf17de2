/* ts_adp_rreq.h - the server-side requests of @socket.io/redis-adapter
 * between a decoded message (ts_adp_rmsg.h) and what the Socket.IO layer
 * acts on (ts_adp_remote.h): which message is a request for us and what it
 * asks, and how an answer travels back in either format. Pure functions,
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

#endif
