/* ts_adp_remote.h - the adapter's reach beyond this process: a namespace's
 * broadcasts go to the other nodes of a deployment, theirs come back to be
 * delivered here. One small ops table, as Node's Socket.IO separates its
 * Adapter: without one (NULL) a process delivers to its own loops only (the
 * local adapter: ts_adp_rooms.h, ts_adp_bus.h); the Redis one
 * (ts_adp_redis.h) speaks @socket.io/redis-adapter's format through the
 * store, so that Node servers and tabsyncd nodes can serve one cluster.
 *
 * The Socket.IO layer calls `listen` for each namespace on one loop of the
 * process (the one that then feeds its bus, so every loop delivers remote
 * broadcasts in one order with its own), and `broadcast` from the loop that
 * made a broadcast. A remote broadcast is at most once: pub/sub loses what
 * is published while a node cannot be reached (the session history, not
 * this, is what makes a tab whole: docs/CONSISTENCY.md). */
#ifndef TS_ADP_REMOTE_H
#define TS_ADP_REMOTE_H
#include <jansson.h>
#include <stddef.h>

#include "core/ts_buf.h"
#include "core/ts_slice.h"

/* One broadcast as it travels between nodes. */
typedef struct ts_adp_bcast {
    const char *nsp;
    /* The packet's data, ["event", arg..., offset?], with binary values as
     * placeholders {"_placeholder":true,"num":i}: as JSON text when sent
     * (the encoder reads it once), as a tree when received (borrowed). */
    ts_slice_t data_json;              /* broadcast */
    json_t *data;                      /* ts_adp_remote_cb */
    ts_buf_t *const *attach;           /* the binary attachments, in order (borrowed) */
    size_t nattach;
    const char *const *rooms;          /* none: every socket of the namespace */
    size_t nrooms;
    const char *const *except;         /* sockets in these rooms are skipped */
    size_t nexcept;
    int is_volatile;                   /* may be dropped (socket.volatile) */
} ts_adp_bcast_t;

/* A broadcast from another node, for this process's sockets (the struct
 * and everything it points to are borrowed for the call). */
typedef void (*ts_adp_remote_cb)(const ts_adp_bcast_t *b, void *ud);

typedef struct ts_adp_remote_ops {
    const char *name; /* "redis" */
    /* From now on, broadcasts of other nodes on namespace `nsp` come to
     * cb(b, ud) on this handle's loop. Returns 0 or a TS_E* code. */
    int (*listen)(void *self, const char *nsp, ts_adp_remote_cb cb, void *ud);
    /* Sends b to the other nodes (borrowed; encoded before it returns).
     * Returns 0, or a TS_E* code when it could not even be sent (counted). */
    int (*broadcast)(void *self, const ts_adp_bcast_t *b);
} ts_adp_remote_ops_t;

/* A handle the Socket.IO layer borrows (its owner closes it after the
 * Socket.IO server is freed). */
typedef struct ts_adp_remote {
    const ts_adp_remote_ops_t *ops;
    void *self;
} ts_adp_remote_t;

#endif
