/* rconn_int.h - private to src/store: one connection to a Redis server,
 * driven on a libuv loop by tabsync itself, with hiredis used only for what
 * it does well and Debian's 0.14 gets right: formatting commands
 * (redisFormatCommandArgv) and parsing RESP2 replies (redisReader). Its own
 * async API is not used: it does not know sharded pub/sub replies.
 *
 * What it does: connects (host names resolved), AUTH (password, or ACL user
 * and password) and SELECT before anything else; pipelines commands (every
 * command issued during a loop turn goes out in one write, before the loop
 * blocks) and matches replies in order; pub/sub (SUBSCRIBE, SSUBSCRIBE,
 * PSUBSCRIBE) with message pushes told apart from command replies, and the
 * subscriptions issued again after every reconnect; a command timeout
 * (a reply that does not come in time resets the connection: later replies
 * could no longer be matched); reconnection with exponential backoff and
 * jitter; a bound on queued commands.
 *
 * Callbacks follow the store's rule (ts_store.h): a call that returns 0 gets
 * its callback exactly once, never from inside the call. A command's status:
 *   0          a reply came (it may be an error reply: r->type ==
 *              REDIS_REPLY_ERROR; the caller decides what it means);
 *   TS_ESTORE  no reply: the connection was down when it was issued, or
 *              went down (or timed out) before the reply — a write may or may
 *              not have been applied;
 *   TS_ECLOSED the connection was closed by ts_rconn_close.
 * TLS (rediss://) runs OpenSSL over memory BIOs on the same libuv read and
 * write path: the server's certificate is verified (system CA store, or
 * ?cacert=), with SNI and host name (or IP) checks. Not thread-safe: one
 * loop. Redis Cluster (slot map, MOVED/ASK) is rcluster_int.h, over this.
 *
 * Sentinel (redis+sentinel://): every attempt first asks the Sentinels in
 * turn (SENTINEL get-master-addr-by-name) where the primary is, connects
 * there and checks with ROLE that it is a primary before anything else; the
 * Sentinel that answered is asked first next time. A connection that meets
 * READONLY (its server was turned into a replica) is reset and asks again,
 * as is one that Sentinel's reconfiguration closes (CLIENT KILL). */
#ifndef TS_RCONN_INT_H
#define TS_RCONN_INT_H
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct uv_loop_s;

typedef struct ts_rconn ts_rconn_t;

#define TS_RCONN_HOST_MAX 255
#define TS_RCONN_CRED_MAX 256
#define TS_RCONN_PATH_MAX 1023
#define TS_RCONN_SENTINELS_MAX 8

typedef struct ts_rconn_addr {
    char host[TS_RCONN_HOST_MAX + 1];
    uint16_t port;
} ts_rconn_addr_t;

typedef struct ts_rconn_opts {
    char host[TS_RCONN_HOST_MAX + 1];   /* with Sentinels: the primary last found */
    uint16_t port;                      /* default 6379 */
    char user[TS_RCONN_CRED_MAX + 1];   /* ACL user ("" = default user) */
    char password[TS_RCONN_CRED_MAX + 1]; /* "" = no AUTH */
    uint32_t db;                        /* SELECT when > 0 */
    int tls;                            /* rediss:// */
    char tls_ca[TS_RCONN_PATH_MAX + 1]; /* ?cacert=: PEM CA file ("" = system store) */
    char tls_cert[TS_RCONN_PATH_MAX + 1]; /* ?cert=, ?key=: client certificate (PEM) */
    char tls_key[TS_RCONN_PATH_MAX + 1];
    int tls_insecure;                   /* ?insecure=1: no verification (tests only) */
    int cluster;                        /* ?cluster=: 0 auto (ask the server), 1 yes, -1 no */
    uint32_t replicas;                  /* ?replicas=N: a write's reply waits for WAIT N (0: no WAIT) */
    uint32_t replicas_timeout_ms;       /* ?replicas_timeout=: WAIT's timeout; default 1000,
                                           at most half the command timeout */
    uint32_t connect_timeout_ms;        /* default 2000 */
    uint32_t command_timeout_ms;        /* default 5000 */
    uint32_t backoff_min_ms;            /* default 50 */
    uint32_t backoff_max_ms;            /* default 5000 */
    size_t max_queued;                  /* commands waiting or unanswered; default 100000 */
    /* Lua sources sent with SCRIPT LOAD at every connect, after AUTH and
     * SELECT, before any queued command (borrowed: static): an EVALSHA then
     * never meets NOSCRIPT on that connection, whose retry would run after
     * the commands pipelined behind it (out of issue order). */
    const char *const *scripts;
    size_t nscripts;
    /* > 0: the handshake asks HELLO (after AUTH and SELECT) and refuses a
     * server whose major version is lower, saying which it is (the store:
     * 7, for XADD <ms>-*); a server that does not know HELLO (before 6.0)
     * is refused too. */
    unsigned min_major;
    /* redis+sentinel://: where to ask for the primary named `master` (port
     * default 26379), with their own credentials (?sentinel_user=,
     * ?sentinel_password=; the URL's user and password are the primary's).
     * nsentinels 0: host and port are the server. */
    ts_rconn_addr_t sentinels[TS_RCONN_SENTINELS_MAX];
    size_t nsentinels;
    char master[TS_RCONN_HOST_MAX + 1];
    char sentinel_user[TS_RCONN_CRED_MAX + 1];
    char sentinel_password[TS_RCONN_CRED_MAX + 1];
    int quiet; /* "connected" logged at debug: a Sentinel's connection, one per attempt */
} ts_rconn_opts_t;

/* Parses redis://[[user][:password]@]host[:port][/db][?opt=v&...] (and
 * rediss://) into *o (other fields zero: defaults). Options: cacert=<path>,
 * cert=<path>, key=<path>, insecure=0|1 (rediss:// only), cluster=0|1|auto,
 * replicas=N (0-64), replicas_timeout=<ms> (1-60000).
 * redis+sentinel://[[user][:password]@]host[:port][,host[:port]...]/name[/db]
 * (and rediss+sentinel://: TLS to the Sentinels and the primary) names up to
 * TS_RCONN_SENTINELS_MAX Sentinels and the primary's name; options as above
 * (not cluster=1) and sentinel_user=, sentinel_password=.
 * Percent-escapes in user, password and option values are decoded. Returns
 * 0, or TS_EINVAL with a reason in err. */
int ts_rconn_parse_url(const char *url, ts_rconn_opts_t *o, char *err, size_t errlen);

/* For rediss://: builds the TLS context once to tell a bad CA, certificate
 * or key file at once (ts_rconn_new would only fail every attempt). Returns
 * 0, or TS_EINVAL with the reason in err. */
int ts_rconn_tls_check(const ts_rconn_opts_t *o, char *err, size_t errlen);

typedef void (*ts_rconn_reply_cb)(ts_rconn_t *c, int status, const redisReply *r, void *ud);
/* A message on a subscribed channel: r is the whole push (["message", channel,
 * payload], ["smessage", channel, payload] or ["pmessage", pattern, channel,
 * payload]); borrowed for the call. Also ["sunsubscribe", channel, n] when
 * Redis Cluster dropped a shard channel (its slot moved): no longer
 * subscribed here, not even after a reconnect. */
typedef void (*ts_rconn_push_cb)(ts_rconn_t *c, const redisReply *r, void *ud);
/* The connection came up (after AUTH, SELECT and the subscriptions), or went
 * down (`why` says why). */
typedef void (*ts_rconn_state_cb)(ts_rconn_t *c, int up, const char *why, void *ud);

/* Starts connecting at once. on_push gets every pub/sub message; on_state
 * may be NULL. */
ts_rconn_t *ts_rconn_new(struct uv_loop_s *loop, const ts_rconn_opts_t *o,
                         ts_rconn_state_cb on_state, ts_rconn_push_cb on_push, void *ud);
int ts_rconn_is_up(const ts_rconn_t *c);

/* Issues a command (argv borrowed for the call; the bytes are copied).
 * Returns 0 (cb will be called), TS_ELIMIT (max_queued reached) or
 * TS_ECLOSED; nothing is sent then. While the connection is being
 * (re)established commands wait (up to the connect timeout); while it is
 * down between attempts they fail at once with TS_ESTORE. */
int ts_rconn_cmd(ts_rconn_t *c, int argc, const char **argv, const size_t *argvlen,
                 ts_rconn_reply_cb cb, void *ud);

/* A command that may write (a script that changes keys). With o.replicas
 * N > 0, every loop turn's write to the socket that holds such a command
 * ends with one `WAIT N <replicas_timeout>` (it covers every write before
 * it on the connection), and the replies of that turn's commands are held
 * until WAIT answered, then called back in order: a write whose reply is
 * not an error reply gets status TS_ESTORE (no reply) when WAIT counted
 * fewer than N replicas (timeout, or an error such as a primary turned
 * replica) — it may have been applied on the primary and then be lost;
 * reads and error replies get their reply. With replicas 0: as
 * ts_rconn_cmd. */
/* A command in RESP (*argc, then $len and the bytes of each argument), as
 * redisFormatCommandArgv writes it, without its sprintf per argument (17 %
 * of a node's instructions with the history on the Redis store,
 * callgrind). argvlen NULL: strlen. Returns new (free), its length in *len. */
char *ts_rconn__format(int argc, const char **argv, const size_t *argvlen, size_t *len);

#define TS_RCONN_WRITE 1
int ts_rconn_cmdf(ts_rconn_t *c, unsigned flags, int argc, const char **argv,
                  const size_t *argvlen, ts_rconn_reply_cb cb, void *ud);

typedef enum ts_rconn_sub_kind {
    TS_RCONN_SUBSCRIBE = 0,  /* SUBSCRIBE channel */
    TS_RCONN_SSUBSCRIBE = 1, /* SSUBSCRIBE shard channel (Redis 7) */
    TS_RCONN_PSUBSCRIBE = 2, /* PSUBSCRIBE pattern */
} ts_rconn_sub_kind_t;

/* Subscribes (or unsubscribes) one channel; kept across reconnects. cb (may
 * be NULL) gets the confirmation. A connection with subscriptions should
 * carry only (un)subscribe commands and PING, as Redis requires in RESP2. */
int ts_rconn_subscribe(ts_rconn_t *c, ts_rconn_sub_kind_t kind, const char *channel,
                       ts_rconn_reply_cb cb, void *ud);
int ts_rconn_unsubscribe(ts_rconn_t *c, ts_rconn_sub_kind_t kind, const char *channel,
                         ts_rconn_reply_cb cb, void *ud);

/* Fails every pending command with TS_ECLOSED (from the loop), closes the
 * socket, frees everything, then calls on_closed (may be NULL). */
void ts_rconn_close(ts_rconn_t *c, void (*on_closed)(void *ud), void *ud);

/* Counters for tests and /metrics. */
typedef struct ts_rconn_stats {
    uint64_t connects, disconnects, commands, replies, pushes, timeouts, writes;
    uint64_t waits, waits_short; /* WAITs sent; those that counted fewer than N replicas */
} ts_rconn_stats_t;
ts_rconn_stats_t ts_rconn_stats(const ts_rconn_t *c);

#endif
