/* rcluster_int.h - private to src/store: the command layer the redis
 * backend talks to, over one Redis server or a Redis Cluster, with the
 * same calls. It asks the server at start (CLUSTER SLOTS; "cluster support
 * disabled" means one server) unless the URL says ?cluster=0 or 1.
 *
 * One server: one command connection and, from the first subscription on,
 * one subscribe connection (rconn_int.h) — what the backend had before.
 * Cluster: the slot map (CLUSTER SLOTS), one command connection per
 * primary and per replica (the replicas' serve ts_rcl_cmd_all only), each
 * command routed by the CRC16 slot of the key it names (hash
 * tags honoured); MOVED updates the map and retries there, ASK sends
 * ASKING and the command to the node named, TRYAGAIN retries shortly (five
 * redirections at most, then the error reply is the answer). The map is
 * asked again after a MOVED, after a connection to a primary is lost and,
 * while a primary of the map is down, every 250 ms (a failover: the
 * replica takes over after cluster-node-timeout). Shard channels are
 * subscribed (SSUBSCRIBE) on the primary of their slot, and moved when the
 * map changes; classic and pattern subscriptions on one node (Cluster
 * forwards PUBLISH to every node), moved if that node leaves the map.
 *
 * Callbacks: a call that returns 0 gets its callback exactly once, never
 * from inside the call. Statuses as rconn_int.h: 0 (a reply, maybe an error
 * reply), TS_ESTORE (no reply: down, timed out, or the node left the map;
 * a write may or may not have been applied), TS_ECLOSED (closed). While the
 * map is not known yet, commands wait for it up to the connect timeout, or
 * fail at once while the server cannot be reached. With ?replicas=N the
 * writes (ts_rcl_cmdf) are answered only once N replicas of their primary
 * have them, or fail with TS_ESTORE (rconn_int.h). */
#ifndef TS_RCLUSTER_INT_H
#define TS_RCLUSTER_INT_H
#include <stddef.h>
#include <stdint.h>

#include "store/rconn_int.h"

struct uv_loop_s;

typedef struct ts_rcl ts_rcl_t;

typedef void (*ts_rcl_reply_cb)(int status, const redisReply *r, void *ud);
/* A pub/sub message (as ts_rconn_push_cb), from whichever node it came. */
typedef void (*ts_rcl_push_cb)(const redisReply *r, void *ud);

#define TS_RCL_SLOTS 16384

/* Redis Cluster's slot of a key: CRC16 (XMODEM) of the key, or of its hash
 * tag (the text between the first '{' and the next '}', if not empty),
 * modulo 16384. */
unsigned ts_rcl_slot(const char *key, size_t len);

/* Starts at once (connecting to o's host). o->cluster: 0 ask, 1 cluster, -1
 * one server. */
ts_rcl_t *ts_rcl_new(struct uv_loop_s *loop, const ts_rconn_opts_t *o, ts_rcl_push_cb on_push,
                     void *ud);

/* Issues a command on the node that owns `key` (borrowed; NULL: any node).
 * argv is copied. Returns 0 (cb will be called) or TS_ECLOSED. */
int ts_rcl_cmd(ts_rcl_t *cl, const char *key, size_t keylen, int argc, const char **argv,
               const size_t *argvlen, ts_rcl_reply_cb cb, void *ud);
/* The same with flags: TS_RCONN_WRITE marks a command that may write; with
 * ?replicas=N its reply waits for the WAIT that follows the turn's writes
 * on its node's connection (rconn_int.h: ts_rconn_cmdf), so a Cluster
 * sends one WAIT per primary that took writes in a loop turn. A redirected
 * command keeps its flags. */
int ts_rcl_cmdf(ts_rcl_t *cl, const char *key, size_t keylen, unsigned flags, int argc,
                const char **argv, const size_t *argvlen, ts_rcl_reply_cb cb, void *ud);

/* A part of ts_rcl_cmd_all's answer: one node's reply (status as for
 * ts_rcl_reply_cb: a node that is down answers TS_ESTORE), and how many
 * parts are still to come (0: this is the last; the call is over). */
typedef void (*ts_rcl_part_cb)(int status, const redisReply *r, unsigned left, void *ud);

/* Issues a command on every node: the server, or each primary and replica
 * of a Cluster's map (for what each node knows of its own clients only,
 * such as PUBSUB NUMSUB). argv is copied. Returns 0 (cb will be called at
 * least once, the last time with left 0) or TS_ECLOSED. */
int ts_rcl_cmd_all(ts_rcl_t *cl, int argc, const char **argv, const size_t *argvlen,
                   ts_rcl_part_cb cb, void *ud);

/* (Un)subscribes a channel (kinds of rconn_int.h), kept across reconnects
 * and map changes; cb (may be NULL) gets Redis's confirmation, or
 * TS_ESTORE. Returns 0 or TS_ECLOSED. */
int ts_rcl_subscribe(ts_rcl_t *cl, ts_rconn_sub_kind_t kind, const char *channel,
                     ts_rcl_reply_cb cb, void *ud);
int ts_rcl_unsubscribe(ts_rcl_t *cl, ts_rconn_sub_kind_t kind, const char *channel,
                       ts_rcl_reply_cb cb, void *ud);

/* 1 once the mode is known and a command connection is up. */
int ts_rcl_is_up(const ts_rcl_t *cl);
/* 1 cluster, 0 one server, -1 not known yet. */
int ts_rcl_is_cluster(const ts_rcl_t *cl);

/* Fails every waiting command with TS_ECLOSED (from the loop), closes every
 * connection, then calls on_closed (may be NULL). */
void ts_rcl_close(ts_rcl_t *cl, void (*on_closed)(void *ud), void *ud);

typedef struct ts_rcl_stats {
    uint64_t refreshes; /* slot maps received */
    uint64_t moved, ask, tryagain, clusterdown;
    uint64_t nodes;     /* primaries in the map now */
    uint64_t replicas;  /* their replicas */
} ts_rcl_stats_t;
ts_rcl_stats_t ts_rcl_stats(const ts_rcl_t *cl);

#endif
