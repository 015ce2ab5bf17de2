/* ts_sess.h - the /session namespace: authenticated tabs bound to their
 * device, rooms derived only from verified claims, throttling, the
 * registry of live tabs, and relay of envelopes between the tabs of a
 * session, a user or a device (docs/PROTOCOL.md). The daemon creates one
 * per process and routes the admin/dev HTTP API to it. */
#ifndef TS_SESS_H
#define TS_SESS_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ts_buf.h"
#include "net/ts_net.h"
#include "session/ts_sess_elect.h"
#include "sio/ts_sio.h"

typedef struct ts_sess ts_sess_t;
struct ts_store;
struct ts_sess_auth;

struct ts_sess_rules;

/* Whether /session keeps a history (protocol v3; docs/CONSISTENCY.md). */
typedef enum ts_sess_history_mode {
    TS_SESS_HISTORY_ON = 0, /* session-scope envelopes logged, state, sync */
    TS_SESS_HISTORY_OFF,    /* relay only, as protocol v2 did */
} ts_sess_history_mode_t;

/* Leader election (docs/ELECTION.md). */
typedef struct ts_sess_elect_task {
    const char *name;  /* borrowed */
    uint64_t stall_ms; /* 0 = 10 s */
} ts_sess_elect_task_t;

typedef struct ts_sess_elect_cfg {
    uint32_t lease_ms;        /* 500..60000; 0 = every member takes its default */
    uint32_t margin;          /* preemption needs this many points more (of 1000) */
    uint32_t demote_below;    /* a leader under this score yields to a better backup */
    uint32_t min_tenure_ms;   /* no preemption before */
    uint32_t max_tenure_ms;   /* rotation after; 0 = never */
    ts_el_weights_t weights;  /* all 0 = the defaults */
    const char *grant_secret; /* HS256 key of leader grants; borrowed; NULL = no grants */
    size_t grant_secret_len;
    const ts_sess_elect_task_t *tasks; /* the operator's tasks of every session scope */
    size_t ntasks;
} ts_sess_elect_cfg_t;

#define TS_SESS_ELECT_CFG_DEFAULT                                                                  \
    {.lease_ms = 3000, .margin = 100, .demote_below = 200, .min_tenure_ms = 2000,                  \
     .max_tenure_ms = 3600000, .weights = {{20, 30, 15, 25, 10}}}

typedef struct ts_sess_cfg {
    const char *node_id;             /* this tabsyncd in the registry; borrowed */
    const char *channel_prefix;      /* starts the session layer's own pub/sub channels
                                        (the election's table): deployments sharing one
                                        Redis keep theirs apart; NULL = "" */
    const struct ts_sess_auth *auth; /* token verifier; borrowed, required */
    int dev;                         /* --dev: the token minting endpoint */
    /* limits; 0 = unlimited */
    uint32_t handshakes_per_ip;   /* Engine.IO handshakes per address per second */
    uint32_t conns_per_ip;        /* concurrent /session sockets per address */
    uint32_t conns_per_user;      /* concurrent /session sockets per user */
    uint32_t events_per_socket;   /* client events per socket per second */
    uint32_t bytes_per_socket;    /* bytes of client events per socket per second; both
                                     per-socket limits also hold per Engine.IO connection
                                     (all its /session sockets, one after the other) */
    uint32_t events_per_user;     /* client events of all of a user's sockets per second,
                                     on every loop; 0 = 10 x events_per_socket */
    uint32_t strikes;             /* refusals within 10 s before a disconnect; 0 = never */
    uint32_t queue_max;           /* events a socket over its rate may have waiting
                                     (handled at the rate instead of refused); 0 =
                                     refuse at once */
    uint32_t registry_ttl_ms;     /* 0 = 30000 */
    uint32_t expiry_warning_s;    /* token_expiring this long before exp; 0 = 60 */
    struct ts_sess *share_with;   /* with one loop per core: another loop's /session,
                                     whose per-address and per-user limits (and
                                     /metrics sums) this one shares; NULL = first */
    uint32_t leeway_s;            /* the verifier's clock leeway: a socket is
                                     disconnected at exp + leeway, the moment its
                                     token would no longer be accepted */
    /* the session history */
    ts_sess_history_mode_t history;
    const struct ts_sess_rules *rules; /* --state-rules; borrowed; NULL = default */
    uint32_t snapshot_every;      /* a snapshot each N entries of a session; 0 = 1000 */
    uint32_t max_batch;           /* envelopes or changes per message; 0 = 256 */
    uint32_t hist_cache_max;      /* sessions whose state a loop keeps; 0 = 10000 */
    size_t hist_cache_bytes;      /* and the bytes of their documents; 0 = 256 MiB */
    size_t state_max_bytes;       /* one session's document; 0 = 1 MiB */
    ts_sess_elect_cfg_t elect;    /* leader election; lease_ms 0 = the defaults */
} ts_sess_cfg_t;

/* Returns new: registers "/session" on `sio`. `store` is borrowed and must
 * outlive the session layer. */
ts_sess_t *ts_sess_new(uv_loop_t *loop, ts_sio_server_t *sio, struct ts_store *store,
                       const ts_sess_cfg_t *cfg);
/* Stops the timers and forgets the registry entries of this node; call
 * before freeing the Socket.IO server. Frees asynchronously. */
void ts_sess_free(ts_sess_t *s);

/* The Engine.IO handshake gate (ts_eio_opts_t.allow): handshakes per
 * address. Same contract as that hook. */
int ts_sess_allow_handshake(const ts_http_req_t *req, const char *peer, char *msg, size_t msglen,
                            uint32_t *retry_after_s, void *sess);


/* ---- the data API: a session's history for an application's backend ----
 * What the HTTP routes of src/daemon call (docs/PROTOCOL.md "Backends"):
 * the same operations a v3 tab has, addressed by (user, session) and
 * written as the backend `publisher` (entries show from = {user, device:
 * "server", tab: publisher}; the default exactly-once client is
 * "b/<publisher>"). Each answer is exactly the JSON a tab's ack gets, as
 * canonical text, given to cb once (possibly before the call returns):
 * status 0 with the body. Each call returns 0, TS_EINVAL (an id outside
 * the token alphabet, or the history is off) or TS_ECLOSED; then cb is
 * never called. */
typedef void (*ts_sess_api_cb)(int status, ts_slice_t body, void *ud);
typedef struct ts_sess_api_target {
    const char *user, *session; /* whose history (the token's sub and sid) */
    const char *publisher;      /* who writes: a name of the id alphabet */
} ts_sess_api_target_t;
/* `arg`: an envelope or an array of them, as `publish` takes (borrowed). */
int ts_sess_api_publish(ts_sess_t *s, const ts_sess_api_target_t *t, json_t *arg,
                        ts_sess_api_cb cb, void *ud);
/* `arg`: a change or an array of them, as `state` takes (borrowed). */
int ts_sess_api_change(ts_sess_t *s, const ts_sess_api_target_t *t, json_t *arg,
                       ts_sess_api_cb cb, void *ud);
/* `arg`: {after?, epoch?, limit?} as `sync` takes, or NULL (the state now:
 * a snapshot and the entries after it). */
int ts_sess_api_read(ts_sess_t *s, const ts_sess_api_target_t *t, json_t *arg,
                     ts_sess_api_cb cb, void *ud);

/* The health of the history: {ok, epoch, seq, ver, snapshot_seq,
 * trimmed_upto, entries_since_snapshot, cache: {loaded, ver, state_bytes,
 * queued, in_flight}} (the store's numbers, and this loop's cache). */
int ts_sess_api_health(ts_sess_t *s, const ts_sess_api_target_t *t, ts_sess_api_cb cb,
                       void *ud);

/* ---- elections: the HTTP check and the admin view (docs/ELECTION.md) ----
 * ts_sess_api_election: the current lease of a scope, read from the store
 * (what an application's backend compares a grant's term with): {scope,
 * term, leader: {device, tab} | null, expires_at}. `scope` is "session"
 * or "device" (then `device` names it). Returns 0 (cb later), TS_EINVAL
 * (an id outside the alphabet, an unknown scope), TS_ECLOSED, or the
 * store's refusal.
 * ts_sess_api_elections: every scope of (user, session) this loop runs,
 * with members, scores, tasks and recent transitions: {user, session,
 * scopes: [...]}; cb runs before the call returns. */
int ts_sess_api_election(ts_sess_t *s, const char *user, const char *session, const char *scope,
                         const char *device, ts_sess_api_cb cb, void *ud);
int ts_sess_api_elections(ts_sess_t *s, const char *user, const char *session, ts_sess_api_cb cb,
                          void *ud);

/* Appends the session layer's metrics (auth refusals by reason, throttles,
 * breaker state) in Prometheus text. */
void ts_sess_metrics(ts_sess_t *s, ts_sbuf_t *out);

/* ---- registry and dev data API (daemon routes) ----
 * What the daemon's admin and dev HTTP routes (src/daemon/api.c) read from
 * the session layer: the registry of live tabs and development tokens. No
 * HTTP here; answers are JSON text through ts_sess_api_cb, as above. */
typedef enum ts_sess_tabs_by {
    TS_SESS_TABS_BY_SESSION = 0, /* {session, devices, tabs}: every user's tabs of a session id */
    TS_SESS_TABS_BY_USER,        /* {user, devices, sessions, tabs}: a user's tabs */
} ts_sess_tabs_by_t;

/* Lists the live tabs of session or user `id` from the registry: each tab
 * {user, session, device, tab, node, expires_at, data} (data: what the tab
 * reported, with the server's rtt), devices (and, by user, sessions)
 * grouped with their tab counts. `user` (borrowed; NULL = every user)
 * keeps only that user's tabs. cb is called once with status 0 and the
 * JSON, or with the store's failure (TS_ESTORE, TS_ECLOSED; body empty).
 * Returns 0; TS_EINVAL (id or user outside the id alphabet); TS_ECIRCUIT
 * (the store's circuit breaker is open: retry in a second); TS_ECLOSED;
 * or the store's refusal of the call; then cb is never called. */
int ts_sess_api_tabs(ts_sess_t *s, ts_sess_tabs_by_t by, const char *id, const char *user,
                     ts_sess_api_cb cb, void *ud);

/* --dev: mints an HS256 session token for (user, session, device) bound
 * to `fingerprint`, valid ttl_s seconds (1..TS_SESS_MINT_TTL_MAX; 0 =
 * TS_SESS_MINT_TTL_DEFAULT) (the demo page).
 * Returns 0 with *token (returns new: free()) and its *exp (seconds since
 * 1970); TS_EFORBIDDEN (the session layer was started without dev);
 * TS_EINVAL (a value outside the id alphabet); or the verifier's refusal
 * (no HS256 secret to sign with). */
int ts_sess_api_dev_token(ts_sess_t *s, const char *user, const char *session, const char *device,
                          const char *fingerprint, uint32_t ttl_s, char **token, int64_t *exp);

#endif
