/* ts_adp_redis.h - the Redis adapter: the other nodes of a deployment
 * reached through the store's publish/subscribe (only src/store speaks to
 * Redis), in @socket.io/redis-adapter's formats (ts_adp_rmsg.h), so that
 * Node Socket.IO servers using that adapter and tabsyncd nodes see each
 * other's broadcasts and answer each other's server-side requests. One per
 * loop (each loop publishes through its own store handle); the process's
 * listener loop also subscribes to the namespaces' channels, and with the
 * sharded format every loop subscribes to the channels of its own rooms.
 *
 * Classic (createAdapter): PUBLISH; per namespace PSUBSCRIBE
 * <prefix>#<nsp>#* and SUBSCRIBE <prefix>-request#<nsp>#. Sharded
 * (createShardedAdapter, subscriptionMode "dynamic" by default): SPUBLISH;
 * SSUBSCRIBE <prefix>#<nsp>#, <prefix>#<nsp>#<uid># and
 * <prefix>#<nsp>#<room># while a local socket is in that room. Requests
 * are answered (ts_adp_rreq.h); requests of this node (`request`, the
 * admin API's) are published on the same channels, and a loop that makes
 * one hears the answers on the response channels (classic:
 * <prefix>-response#<nsp># and <prefix>-response#<nsp>#<uid>#; sharded:
 * <prefix>#<nsp>#<uid>#), subscribed by that loop at its first request:
 * docs/REDIS-WIRE.md. */
#ifndef TS_ADP_REDIS_H
#define TS_ADP_REDIS_H
#include "adapter/ts_adp_remote.h"
#include "adapter/ts_adp_rmsg.h"
#include "store/ts_store.h"

struct uv_loop_s;

#define TS_ADP_REDIS_UID_LEN 12

typedef struct ts_adp_redis_cfg {
    const char *uid;    /* this process's uid (the same on each of its loops): its
                         * own messages come back through Redis and are skipped */
    const char *prefix; /* Node's `key` / `channelPrefix`; NULL: "socket.io" */
    ts_adp_rmsg_format_t format;  /* classic (0) or sharded */
    ts_adp_rmsg_submode_t submode; /* sharded: Node's subscriptionMode; 0: "dynamic" */
    struct uv_loop_s *loop; /* the store handle's loop: timeouts of our requests;
                             * NULL: `request` answers TS_EINVAL */
} ts_adp_redis_cfg_t;

/* A new adapter on `store` (borrowed: it outlives the adapter's close) in
 * *out (ops and self). Returns 0, or TS_EINVAL (no uid, a prefix over 63
 * bytes). */
int ts_adp_redis_open(ts_adp_remote_t *out, ts_store_t *store, const ts_adp_redis_cfg_t *cfg);
/* Stops delivering at once (no listener callback after this call) and
 * releases the adapter once the store answered its unsubscribes. */
void ts_adp_redis_close(ts_adp_remote_t *r);

/* A fresh uid for a process (TS_ADP_REDIS_UID_LEN characters and a NUL). */
void ts_adp_redis_uid(char out[TS_ADP_REDIS_UID_LEN + 1]);

#endif
