/* request_int.h - between server.c and request.c: a request of this
 * process runs on every loop's sockets through server.c's job path (the
 * one another node's request takes), and request.c adds the other nodes.
 * Private to src/sio. */
#ifndef TS_SIO_REQUEST_INT_H
#define TS_SIO_REQUEST_INT_H
#include <jansson.h>
#include <stddef.h>

#include "adapter/ts_adp_remote.h"
#include "sio/ts_sio.h"

/* list (borrowed for the call): FETCH_SOCKETS: [{id, handshake, rooms,
 * data}] of every loop's matching sockets; else an empty array. matched:
 * how many sockets the request matched. */
typedef void (*ts_sio__local_cb)(json_t *list, size_t matched, void *ud);

/* Runs `req` (borrowed; kind FETCH_SOCKETS, SOCKETS_JOIN/LEAVE or
 * DISCONNECT_SOCKETS; request_id, requester and sid ignored) on the sockets
 * of every loop of the process, this one's first. Returns 0, then cb is
 * called once on this loop when every loop ran it (possibly before this
 * returns; never if this loop's server is freed first); or TS_EINVAL (another
 * kind) / TS_ECLOSED (the server is being freed), and cb is never called. */
int ts_sio__local_request(ts_sio_server_t *srv, const ts_adp_req_t *req, ts_sio__local_cb cb,
                          void *ud);

/* This loop's adapter to the other nodes (borrowed), or NULL. */
ts_adp_remote_t *ts_sio__remote(const ts_sio_server_t *srv);

#endif
