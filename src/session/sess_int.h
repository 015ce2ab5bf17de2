/* sess_int.h - private to the session layer: the namespace state shared by
 * session.c (connections, relay, limits, expiry), identity.c (connect
 * payload + token + device binding), registry.c (the store-backed registry
 * of live tabs with the data API the daemon's HTTP routes use), history.c
 * (the session history: log, state, replay), coalesce.c (throttling of
 * presence and telemetry) and election.c with election_cluster.c (leader
 * election). */
#ifndef TS_SESS_INT_H
#define TS_SESS_INT_H
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <uv.h>

#include "core/ts_breaker.h"
#include "core/ts_idmap.h"
#include "core/ts_list.h"
#include "core/ts_ratelimit.h"
#include "metrics/ts_met.h"
#include "session/ts_sess.h"
#include "store/ts_store.h"
#include "core/ts_hlc.h"
#include "core/ts_map.h"
#include "session/ts_sess_auth.h"
#include "session/ts_sess_envelope.h"
#include "session/ts_sess_state.h"
#include "session/ts_sess_elect.h"


/* Refusal and throttle counters for /metrics. */
enum sess_counter {
    SC_CONNECTED = 0,
    SC_RELAYED,      /* envelopes relayed (once per publish) */
    SC_THROTTLED_HANDSHAKE,
    SC_THROTTLED_CONNS_IP,
    SC_THROTTLED_CONNS_USER,
    SC_THROTTLED_EVENTS,
    SC_THROTTLED_BYTES,
    SC_ABUSE_DISCONNECTS,
    SC_TOKEN_EXPIRED,
    SC_TOKEN_SWAPS,
    SC_STORE_REFUSED, /* connections refused: breaker open */
    SC_LOGGED,        /* entries appended to session histories */
    SC_CHANGES,       /* state changes committed */
    SC_CONFLICTS,     /* state changes refused with "conflict" (version strategy) */
    SC_SUPERSEDED,    /* writes skipped as older than the current one (lww strategy) */
    SC_DUPLICATES,    /* resends answered from the original (exactly-once) */
    SC_RESYNCS,       /* sync answers that started from a snapshot */
    SC_REPLAYED,      /* sync answers */
    SC_REPLAYED_ENTRIES, /* entries sent in sync answers */
    SC_DEFERRED,      /* events over a socket's rate, handled later instead of refused */
    SC_COALESCED,     /* presence/telemetry replaced by a newer one of the same stream */
    SC_COALESCE_WINDOWS, /* coalescing windows closed (sessions under low-priority load) */
    SC_RECOVERED,     /* stock clients recovered from the durable log (recovered === true) */
    SC_HIST_EVICTED,  /* session caches evicted early: the loop's count or byte bound */
    SC_APPEND_LE_1MS, /* entries by append latency (commit issued -> durable), cumulative */
    SC_APPEND_LE_2MS5,
    SC_APPEND_LE_5MS,
    SC_APPEND_LE_10MS,
    SC_APPEND_LE_25MS,
    SC_APPEND_LE_100MS,
    SC_APPEND_SUM_US, /* (rendered as the histogram's _sum, in seconds) */
    SC_APPEND_COUNT,
    SC_REPLAY_LE_1,   /* sync answers by entries sent: <= 1, <= 10, <= 100, <= 1000 */
    SC_REPLAY_LE_10,
    SC_REPLAY_LE_100,
    SC_REPLAY_LE_1000,
    SC_EL_STALE,      /* leader-only actions refused for a stale term */
    SC_EL_LAPSES,     /* leases that lapsed (no heartbeat for a whole lease) */
    SC_EL_TASKS_REASSIGNED,
    SC_EL_LEADERLESS_MS, /* time scopes spent without a leader, summed */
    SC_THROTTLED_EVENTS_CONN, /* events refused: the Engine.IO connection's budget */
    SC_THROTTLED_BYTES_CONN,
    SC_THROTTLED_EVENTS_USER, /* events refused: the user's budget */
    SC_ORDER_WAITED,  /* log entries that came before an earlier one and waited for it (order.c) */
    SC_ORDER_FETCHED, /* log entries read from the log because their broadcast was late or lost */
    SC_ORDER_REPEATS, /* log entries that came again after being shown here (dropped) */
    SC_COUNT
};

/* Counters are written by their loop and summed by /metrics on another:
 * relaxed atomic loads and stores (TS_MET_BUMP_, see metrics/ts_met.h). */
#define SESS_COUNT(field) TS_MET_BUMP_(field, 1)
#define SESS_COUNT_N(field, n) TS_MET_BUMP_(field, n)

/* Who a socket is, from its verified token and connect payload. */
typedef struct sess_ident {
    /* The four ids, one after the other in one allocation that starts at
     * `user` (owned when `owned`, their exact length: ts_sess__ident_set),
     * or borrowed. Arrays for the longest legal ids would be 516 B per tab. */
    const char *user, *session, *device, *tab;
    json_t *caps;            /* owned: array of strings, or NULL */
    int64_t exp;             /* token expiry, seconds since 1970 */
    uint8_t fp[32];          /* the token's fingerprint hash (the fp claim's 64 hex
                              * digits as bytes: half the size, compared whole) */
    uint16_t elect_scopes;   /* the elections asked for at connect (bit per scope kind) */
    uint8_t proto;           /* TS_SESS_PROTO_* (1..4): bytes, so that the ident is 88 B */
    uint8_t device_type;     /* ts_sess_device_type_t */
    uint8_t elect_observer, elect_scores;
    uint8_t owned;           /* the ids' allocation is ours (at user) */
} sess_ident_t;

/* What only a tab that sends events needs: its limiter entries and keys,
 * the queue of events over the rate, the strike window. Made at its first
 * event (ts_sess__flow), so an idle tab holds none of it (~230 B). */
typedef struct sess_flow {
    struct sess_sock *ss;
    ts_rl_entry_t *rl_held[5]; /* its entries in ev_tab, ev_conn, by_tab, by_conn and
                              * sh->ev_user, held from its first event until it goes
                              * (try_take, sock_free): no lookup per event */
    char rl_tab[32];         /* SHA-256 of owner: its key in ev_tab, by_tab (hashed once) */
    char rl_user[32];        /* SHA-256 of the user id: its key in sh->ev_user */
    char conn[24];           /* its Engine.IO connection's id: the key in ev_conn, by_conn */
    ts_list_t inq;           /* events over the rate, waiting (session.c "slow down") */
    ts_list_t backlog_link;  /* in sess->backlog while inq is not empty */
    uint32_t inq_n;
    ts_rl_strikes_t strikes;
    json_t *meta;            /* client-reported metadata (owned object; NULL until the
                              * first report, an event too) */
    ts_buf_t *from;          /* its relayed envelopes' end, ,"from":{...}} (owned; made at
                              * its first publish: ts_sess_envelope_from_tail) */
} sess_flow_t;

/* A tab's derived strings that must live as long as it does, in this
 * order in sess_sock_t.keys. */
enum sess_key {
    SK_OWNER = 0,    /* "user/session/device/tab": owns its recovery session and keys
                      * its rate buckets (its Socket.IO socket borrows it; "" for a
                      * backend) */
    SK_HIST,         /* "user/session": its history in the store */
    SK_PEER,         /* its address as text ("" for a backend) */
    SK_COUNT
};

/* The names made from its ids where they are used (ts_sess__name): its
 * rooms, which the adapter copies when it joins them, and its exactly-once
 * id. Kept in `keys` they cost ~60 B per idle tab. */
enum sess_name {
    SN_ROOM_SESSION, /* its session room: "s/<user>/<session>", "o/<user>/<session>"
                      * for tabs of protocol 1 and 2 (sess_session_rooms) */
    SN_ROOM_USER,    /* "u/<user>"; a backend has none */
    SN_ROOM_DEVICE,  /* "d/<user>/<device>"; a backend has none */
    SN_CLIENT,       /* exactly-once id when a change names none: "d/<device>/t/<tab>",
                      * "b/<publisher>" for a backend */
};
#define SESS_NAME_MAX (2 * TS_SESS_ID_MAX + 8)

/* One /session tab. Idle tabs are most of them, so everything here is
 * sized for one (issue #13: docs/ARCHITECTURE.md "An idle authenticated
 * /session tab"); what only traffic needs is in `flow`. 184 bytes, a
 * 192-byte malloc chunk. */
typedef struct sess_sock {
    ts_sess_t *sess;
    ts_sio_socket_t *s;
    ts_list_t link;          /* in sess->socks */
    sess_ident_t id;
    /* Its enum sess_key strings, each of exactly its length and NUL-ended,
     * one after the other in one allocation (owned; sess_key finds them):
     * arrays sized for the longest legal ids cost 4 KB per idle tab, one
     * malloc per name its overhead, and a pointer per name 64 B. */
    char *keys;
    sess_flow_t *flow;       /* owned; NULL until its first event */
    struct el_member *el[TS_SESS_SCOPE_KINDS_]; /* its elections (election.c) */
    uint64_t connected_at;   /* wall clock, ms */
    uint64_t renewed_at;     /* loop time of the last registry write */
    uint64_t joined_loop;    /* loop time it connected (uptime of the score) */
    uint32_t holds;          /* requests still answering to it (ts_sess__sock_hold) */
    uint8_t nkeys;           /* strings in `keys` (the first nkeys of enum sess_key) */
    /* one byte of flags: the struct is then 184 B, a 192-byte chunk */
    uint8_t warned : 1;       /* token_expiring sent */
    uint8_t counted_ip : 1, counted_user : 1;
    uint8_t gone : 1;         /* disconnected: s is NULL, freed at the last release */
    uint8_t backend : 1;      /* a backend's request (the data API): no socket ever */
    uint8_t corked : 1;       /* its connection's writes wait for its welcome */
} sess_sock_t;

/* Its client-reported metadata (borrowed), or NULL. */
static inline json_t *sess_meta(const sess_sock_t *ss) { return ss->flow ? ss->flow->meta : NULL; }

/* One of the tab's strings (borrowed, valid while it lives): NULL when it
 * has none, "" for the first two before it is accepted. Walking the
 * keys before it is a few dozen bytes, less than a lookup in any table. */
static inline const char *sess_key(const sess_sock_t *ss, enum sess_key k) {
    if ((unsigned)k >= ss->nkeys) return k <= SK_HIST ? "" : NULL;
    const char *p = ss->keys;
    for (unsigned i = 0; i < (unsigned)k; i++) p += strlen(p) + 1;
    return p;
}

/* One of the tab's names (enum sess_name), written into buf; NULL when it
 * has none (a backend's user and device rooms). */
const char *ts_sess__name(const sess_sock_t *ss, enum sess_name n, char buf[SESS_NAME_MAX]);

/* A session's tabs are in one of its two rooms: "s/<user>/<session>" for
 * protocol 3 and later, "o/<user>/<session>" for 1 and 2, which state
 * changes (v3) skip. So an older tab pays for no fourth room (a membership
 * and a share of a room, ~70 B); what goes to the whole session goes to
 * both. From either name `room`, out[0] is the "s/" one and out[1] the
 * "o/" one; the one that is not `room` is written into buf. */
static inline void sess_session_rooms(const char *room, char buf[SESS_NAME_MAX],
                                      const char *out[2]) {
    size_t n = strnlen(room, SESS_NAME_MAX - 1);
    memcpy(buf, room, n);
    buf[n] = '\0';
    int v3 = room[0] == 's';
    buf[0] = v3 ? 'o' : 's';
    out[0] = v3 ? room : buf;
    out[1] = v3 ? buf : room;
}

/* What the /session instances of one process's loops share: limits that
 * count per address and per user must see every loop's connections. */
typedef struct sess_shared {
    pthread_mutex_t mu;
    ts_rl_table_t hs_ip, conns_ip, conns_user;
    ts_rl_table_t ev_user;   /* events per user, every loop's sockets (try_take) */
    ts_hlc_t hlc;            /* the process's hybrid logical clock (atomic) */
    uint64_t chain_seq;      /* commit chain ids of every loop's batches (atomic) */
    ts_sess_t *members[TS_SIO_MAX_LOOPS]; /* for /metrics sums */
    size_t nmembers;
} sess_shared_t;

struct ts_sess {
    uv_loop_t *loop;
    ts_sio_server_t *sio;
    ts_sio_nsp_t *nsp;
    struct ts_store *store;
    ts_sess_cfg_t cfg;
    char node_id[64];
    sess_shared_t *sh;            /* hs_ip, conns_ip, conns_user (locked) */
    ts_rl_table_t ev_tab, by_tab; /* events and bytes per tab (try_take) */
    ts_rl_table_t ev_conn, by_conn; /* the same per Engine.IO connection: leaving and
                                     * re-entering /session with a new tab id does
                                     * not refill them */
    ts_brk_t store_brk;
    ts_list_t socks;
    uv_timer_t sweep;
    uint64_t counters[SC_COUNT];
    uint64_t refused[TS_SESS_R_COUNT_]; /* connections refused, by reason */
    size_t nsocks;
    size_t pending_ops;     /* store calls whose callback has not run */
    int closed;             /* ts_sess_free done: free when its timers are closed and
                             * pending_ops drops to 0 */
    int timers_open;        /* sweep, drain, lowprio_tick */
    ts_list_t lowprio;      /* sess_lowprio_t counting or holding (coalesce.c) */
    uv_timer_t lowprio_tick;
    ts_list_t backlog;      /* sockets with waiting events */
    uv_timer_t drain;       /* runs their queues while the backlog is not empty */
    int history;            /* cfg.history == TS_SESS_HISTORY_ON */
    const ts_sess_rules_t *rules; /* cfg.rules or the default (owned then: own_rules) */
    ts_sess_rules_t *own_rules;
    ts_idmap_t hists;       /* sess_hist_t by "user/session" (history.c; its key inside) */
    ts_list_t hist_lru;
    size_t nhists;
    size_t nhist_work;      /* those with their work part (written to while cached) */
    size_t hist_bytes;      /* their documents' bytes at the last sweep (read by /metrics) */
    /* log entries shown in seq order across nodes (order.c) */
    int ordered;            /* entries pass the cursors (ts_sess__order_on) */
    ts_map_t orders;        /* sess_order_t by "user/session" */
    ts_list_t order_gaps;   /* those with an entry waiting for an earlier one */
    uv_timer_t order_tick;  /* reads what did not come from the log */
    /* leader election (election.c) */
    ts_map_t el_scopes;     /* el_scope_t by lease name */
    ts_list_t el_list;
    uint64_t el_joins;      /* join order */
    size_t el_nscopes;
    uv_timer_t el_tick;     /* lapses, tenures, stalled tasks */
    uv_timer_t el_lapse;    /* the earliest local leader's lease expiry */
    uint64_t el_reasons[TS_EL_R_COUNT_]; /* elections by reason */
    /* elections across loops and nodes (election_cluster.c) */
    uint64_t el_origin;     /* this loop's id on the election channels (random, nonzero) */
    char el_beacon[80];     /* <channel prefix>tabsync-el: beacons */
    char el_scope_pfx[80];  /* <channel prefix>tabsync-el#: a scope's table */
    char el_reply_pfx[80];  /* <channel prefix>tabsync-el-r#: admin answers */
    uint8_t el_sub;         /* subscribed to the beacon channel */
    uint64_t el_beacon_at;  /* loop ms of the last beacon sent */
    struct sess_el_origin {
        uint64_t id, seen;  /* another loop's origin; loop ms of its last message */
    } el_origins[64];
    size_t el_norigins;
    ts_list_t el_queries;   /* admin queries waiting for the other loops' answers */
    uint64_t el_qid;
};

typedef struct sess_hist sess_hist_t;
typedef struct sess_order sess_order_t;
typedef struct sess_batch sess_batch_t;
typedef struct sess_lowprio sess_lowprio_t;

/* coalesce.c: adaptive throttling of a session's presence and telemetry.
 * *slot is the session's state (created on first use). */
void ts_sess__lowprio_send(sess_lowprio_t **slot, sess_sock_t *from, ts_slice_t text,
                           ts_sio_class_t cls, uint32_t key);
int ts_sess__lowprio_idle(const sess_lowprio_t *lp);
void ts_sess__lowprio_free(sess_lowprio_t *lp); /* relays what it held */
/* history.c: the low-priority slot of ss's session. */
sess_lowprio_t **ts_sess__hist_lowprio(sess_sock_t *ss);

/* Where an answer goes: the socket's ack `ack_id` (< 0: none; a refusal
 * then comes as an `error` event), or, with cb set, the data API's
 * callback (ts_sess.h) with the answer as canonical text. */
typedef struct sess_answer {
    int64_t ack_id;
    ts_sess_api_cb cb;
    void *ud;
} sess_answer_t;
/* Answers `to` with res (takes). */
void ts_sess__answer(sess_sock_t *ss, const sess_answer_t *to, json_t *res);

/* session.c: a socket stays allocated while requests answer to it (a store
 * call in flight); after its disconnect, its last release frees it. */
void ts_sess__sock_hold(sess_sock_t *ss);
void ts_sess__sock_release(sess_sock_t *ss);
/* Answers ack_id with `res` (takes), or without an ack, emits `error` if
 * res says ok: false. */
void ts_sess__reply(ts_sio_socket_t *s, int64_t ack_id, json_t *res);
/* Returns new: {ok: false, error: {code, message, retry_after_ms?}}. */
json_t *ts_sess__error(const char *code, const char *message, uint64_t retry_after_ms);
/* The welcome event; `hist` (borrowed, may be NULL: none to tell of) adds
 * the v3 members epoch, seq and ver. */
void ts_sess__emit_welcome(sess_sock_t *ss, const ts_store_sess_info_t *hist);

/* The delivery class of an envelope priority. */
ts_sio_class_t ts_sess__prio_class(ts_sess_prio_t prio);

/* history.c: the session history (protocol v3). */
typedef struct sess_pub_meta {
    const char *id;     /* the envelope's id (for the answer) */
    const char *client; /* exactly-once: who (always set) */
    uint64_t mut;       /* 0: no exactly-once bookkeeping */
    uint64_t ts;        /* the HLC in the entry */
    ts_sio_class_t cls; /* delivery class of the entry */
} sess_pub_meta_t;
/* Logs a session-scope envelope (entry: takes, the canonical text without
 * seq) and relays it once durable; answers item idx of batch b. */
void ts_sess__hist_publish(sess_sock_t *ss, sess_batch_t *b, size_t idx, ts_buf_t *entry,
                           const sess_pub_meta_t *m);
/* The batch of a message with n items (one ack for all). */
sess_batch_t *ts_sess__batch_new(sess_sock_t *ss, const sess_answer_t *to, size_t n,
                                 int is_array);
void ts_sess__batch_done(sess_batch_t *b, size_t idx, json_t *reply);
/* Where an appended entry landed, for a v3 publisher's ack. */
typedef struct sess_landed {
    uint64_t seq, ts;
} sess_landed_t;
/* Item idx answered ok: {"ok":true,"id":id} and, with `at`, "seq" and "ts".
 * A batch of one item (nearly every publish) answers with that text at
 * once, without a jansson tree; an array batch as ts_sess__batch_done. */
void ts_sess__batch_ok(sess_batch_t *b, size_t idx, const char *id, const sess_landed_t *at);
void ts_sess__hist_state(sess_sock_t *ss, json_t *arg, const sess_answer_t *to);
void ts_sess__hist_sync(sess_sock_t *ss, json_t *arg, const sess_answer_t *to);
/* {ok, epoch, seq, ver, snapshot_seq, trimmed_upto, entries_since_snapshot,
 * cache: {loaded, ver, state_bytes, queued, in_flight}} of ss's session
 * history (the store's numbers are read fresh). */
void ts_sess__hist_health(sess_sock_t *ss, const sess_answer_t *to);
/* Publishes an envelope or an array of them (session.c). */
void ts_sess__publish(sess_sock_t *ss, json_t *in, const sess_answer_t *to);
/* A writer without a socket: the data API's backend `publisher` writing
 * into (user, session). Freed by its last ts_sess__sock_release. */
sess_sock_t *ts_sess__backend_sock(ts_sess_t *sess, const char *user, const char *session,
                                   const char *publisher);
void ts_sess__hist_welcome(sess_sock_t *ss);
/* The restore hook (ts_sio_nsp_handler_t.restore) of a socket whose
 * authorize accepted it: returns 1 if it will finish the CONNECT (after
 * replaying what the client missed), 0 for a fresh connect. */
int ts_sess__hist_restore(sess_sock_t *ss, const char *pid, const char *offset);
void ts_sess__hist_sweep(ts_sess_t *sess);
void ts_sess__hist_shutdown(ts_sess_t *sess);
void ts_sess__hist_deinit(ts_sess_t *sess);
void ts_sess__hist_init(ts_sess_t *sess); /* the caches' map and list, before any use */
size_t ts_sess__hist_count(const ts_sess_t *sess);

/* order.c: a session's log entries shown on this node in seq order, with
 * other writers (nodes over Redis; ts_sess__order_on says when). */
int ts_sess__order_on(const ts_sess_t *sess);
/* An entry this loop committed: to the other nodes at once, here in its turn. */
void ts_sess__order_local(ts_sess_t *sess, const char *key, uint64_t epoch, uint64_t seq,
                          const ts_sio_target_t *to, const char *event,
                          const ts_sio_raw_arg_t *args, size_t nargs);
/* ts_sio_nsp_handler_t.on_remote_raw (ud: the ts_sess_t). */
/* ts_sio_nsp_handler_t.wants_remote: an entry of a session whose order is
 * held here with no tab in its rooms yet (what order_remote takes too). */
int ts_sess__order_wants(ts_sio_nsp_t *nsp, const char *const *rooms, size_t n, void *ud);
int ts_sess__order_remote(ts_sio_nsp_t *nsp, const ts_sio_target_t *to, const char *event,
                          const ts_sio_raw_arg_t *args, size_t nargs, void *ud);
/* A restore reads the log: the session's entries wait until the release,
 * which names the restored socket (NULL: not restored) and the last entry
 * replayed to it, so that it does not get that one or older ones again. */
sess_order_t *ts_sess__order_hold(ts_sess_t *sess, const char *key, uint64_t epoch);
void ts_sess__order_release(sess_order_t *o, const char *sid, uint64_t floor);
void ts_sess__order_init(ts_sess_t *sess);
void ts_sess__order_sweep(ts_sess_t *sess);
void ts_sess__order_deinit(ts_sess_t *sess);
size_t ts_sess__order_count(const ts_sess_t *sess);

/* session.c: a store call's callback ran (frees a closed session layer
 * once the last one has). */
void ts_sess__op_end(ts_sess_t *sess);

/* identity.c: parses the CONNECT payload and verifies the token and the
 * device binding. Returns 0 and fills *id, or a reason (ts_sess_reason_t,
 * > 0; ts_sess_reason_name gives connect_error's data.code) with a human
 * sentence in why[0..len). */
int ts_sess__identify(ts_sess_t *sess, json_t *auth, uint64_t now_s, sess_ident_t *id, char *why,
                      size_t whylen);
/* Verifies a replacement token for a connected socket: same user, session,
 * device and fingerprint. Returns 0 and the new expiry, or a reason. */
int ts_sess__reauth(ts_sess_t *sess, const sess_ident_t *cur, const char *token, uint64_t now_s,
                    int64_t *exp, char *why, size_t whylen);
void ts_sess__ident_clear(sess_ident_t *id);
/* Copies the four ids into one allocation of their exact length. */
void ts_sess__ident_set(sess_ident_t *id, const char *user, const char *session,
                        const char *device, const char *tab);
/* --dev: mints an HS256 token (returns new in *token). Returns 0 or TS_E*. */
int ts_sess__dev_mint(ts_sess_t *sess, const char *user, const char *session, const char *device,
                      const char *fingerprint, uint32_t ttl_s, char **token, int64_t *exp);

/* election.c and election_cluster.c: a scope of an election (a lease), its
 * members on this loop, those other loops published, its tasks and its
 * last transitions. */
#define HOLDER_MAX (2 * TS_SESS_ID_MAX + 2) /* "<device>/<tab>" */
#define HIST_MAX 8                          /* transitions a scope remembers */

typedef struct el_scope el_scope_t;

typedef struct el_member el_member_t;
struct el_member {
    ts_list_t link;            /* in sc->members */
    el_scope_t *sc;
    sess_sock_t *ss;
    char holder[HOLDER_MAX];
    uint64_t joined;           /* join order: ties go to the earlier */
    ts_el_score_t score;
    uint8_t observer;
    uint64_t stalled_until;    /* loop ms: a lapsed or resigned leader is no candidate before */
    uint64_t rotated_at;       /* loop ms it was rotated out (0: never) */
    uint64_t last_hb;          /* loop ms of its last heartbeat as leader */
    uint16_t late;             /* late bits of its last TS_EL_LATE_WINDOW heartbeats */
    uint8_t lapses;            /* leases it let lapse in a row (its stall doubles each time) */
    uint32_t pub_score;        /* the score the shared table last got */
};

/* A member of another loop or node, as its loop last published it (the
 * shared table below). */
typedef struct el_remote {
    char holder[HOLDER_MAX];
    uint64_t origin;           /* the loop that holds its connection */
    uint64_t joined;           /* wall clock us of its join (ranks ties cluster-wide) */
    ts_el_score_t score;
    uint8_t flags;             /* EL_F_* */
} el_remote_t;

enum {
    EL_F_OBSERVER = 1,    /* never leads, never backup, no tasks */
    EL_F_ELIGIBLE = 2,    /* a candidate now (not an observer, not stalled) */
    EL_F_MAY_PREEMPT = 4, /* not rotated out within the last tenure */
};

typedef enum { TASK_ASSIGNED, TASK_RUNNING, TASK_DONE, TASK_FAILED } task_state_t;

typedef struct el_task {
    char name[TS_SESS_MAX_NAME + 1];
    char to[HOLDER_MAX];       /* the assignee's holder, here or on another node; "": nobody */
    task_state_t state;
    uint32_t pct;
    uint64_t term;             /* the term that declared it; 0: the server */
    uint64_t stall_ms;
    uint64_t last;             /* loop ms of its assignment or last report (or of its
                                * table's arrival from the owner, below) */
    uint32_t reassigned;
} el_task_t;

typedef struct el_trans {
    uint64_t term, at;         /* at: wall ms */
    ts_el_reason_t reason;
    uint64_t leaderless_ms;    /* how long the scope had no leader before */
    char *leader;              /* holder (owned); NULL: none */
} el_trans_t;

struct el_scope {
    ts_list_t link;            /* in sess->el_list */
    ts_sess_t *sess;
    ts_sess_scope_kind_t kind;
    char user[TS_SESS_ID_MAX + 1], session[TS_SESS_ID_MAX + 1], device[TS_SESS_ID_MAX + 1];
    ts_list_t members;
    size_t n;
    /* the lease as last seen from the store */
    uint64_t term;
    char leader[HOLDER_MAX];   /* "" = nobody */
    uint64_t expires_at;       /* wall ms */
    uint64_t since;            /* wall ms the current term started (as seen here) */
    el_member_t *lm;           /* the leader, when it is a member on this loop */
    char bk[HOLDER_MAX];       /* the backup's holder ("" = none), here or elsewhere */
    el_remote_t *rm;           /* the other loops' members (shared table) */
    size_t nrm;
    uint8_t subscribed;        /* to its channel (a cluster) */
    uint64_t pub_hash;         /* of what it last published of its members */
    uint64_t leaderless_since; /* wall ms; 0 while led or with no candidate */
    uint64_t wake_at;          /* loop ms: evaluate again (time alone may change it); 0 = no */
    uint64_t retry_at;         /* loop ms: the store failed a lease call; none before this */
    int busy, again;
    ts_el_gone_t gone;         /* the local leader just went: the next evaluation's input */
    uint8_t stepping;          /* the leader was asked to step down (views say step_down):
                                * its heartbeats no longer renew; its resign or its
                                * lapse hands over, with reason `stepdown` */
    ts_el_reason_t stepdown;
    uint8_t ghost;             /* the leader disconnected: its lease runs out first */
    char gone_holder[HOLDER_MAX];
    ts_el_reason_t last_reason;
    el_task_t *tasks;          /* over Redis: the owner's table (the leader's node) */
    size_t ntasks;
    uint8_t task_owner;        /* this loop owned the table at the last evaluation */
    ts_list_t reports;         /* el_report_t: reports waiting for the owner's table */
    el_trans_t hist[HIST_MAX];
    size_t nhist;              /* total recorded; the ring keeps HIST_MAX */
    size_t klen;
    char name[];               /* the lease name: "e/<user>/<session>[/<device>]" */
};

/* election.c: leader election (docs/ELECTION.md). */
void ts_sess__el_init(ts_sess_t *sess);
void ts_sess__el_drop_all(ts_sess_t *sess); /* shutdown: members go, no election */
void ts_sess__el_deinit(ts_sess_t *sess);
void ts_sess__el_connected(sess_sock_t *ss); /* joins the scopes its auth asked for */
void ts_sess__el_gone(sess_sock_t *ss);      /* leaves them all (disconnect) */
void ts_sess__el_rescore(sess_sock_t *ss);   /* its metadata changed */
void ts_sess__el_sweep(ts_sess_t *sess);
void ts_sess__el_on_elect(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id);
void ts_sess__el_on_hb(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id);
void ts_sess__el_on_resign(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id);
void ts_sess__el_on_task(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id);
/* A state change's `lead` {scope, term}: the lease name its commit is
 * fenced by, and the term. Returns 0, or TS_EPROTO with why. */
int ts_sess__el_fence(sess_sock_t *ss, json_t *lead, char *name, size_t cap, uint64_t *term,
                      char *why, size_t whylen);

struct ts_store_lease;

/* election.c, for election_cluster.c. */
int ts_sess__el_is_candidate(const el_member_t *m, uint64_t now);
/* Decides and acts; without a store op to wait for, sends every member's
 * view when `why` is set (or, why NULL, when the backup changed). Then
 * tells the other loops what changed of this loop's members. */
void ts_sess__el_evaluate(el_scope_t *sc, const char *why);
/* Takes what the store says the lease is now (remote: what another loop
 * announced it got). Returns whether the term or the holder changed. */
int ts_sess__el_adopt(el_scope_t *sc, const struct ts_store_lease *l, ts_el_reason_t reason,
                      int remote);
/* Every member's view (only = one member). */
void ts_sess__el_send_views(el_scope_t *sc, const char *reason, el_member_t *only);
/* The owner's task table on the scope's channel; the owner's table from the
 * channel (o: the message); a report another loop forwarded to the owner. */
void ts_sess__el_tasks_publish(el_scope_t *sc);
void ts_sess__el_tasks_take(el_scope_t *sc, json_t *o);
void ts_sess__el_tasks_report_take(el_scope_t *sc, json_t *o);
/* Returns new: the admin view of this loop's scopes of (user, session). */
json_t *ts_sess__el_local_scopes(ts_sess_t *sess, const char *user, const char *session);

/* election_cluster.c: the shared table (election.c's members as the other
 * loops and nodes see them), for election.c. Nothing is published without a
 * cluster (a store other than the memory one). */
uint32_t ts_sess__el_member_flags(const el_member_t *m, uint64_t now); /* EL_F_* */
/* This loop's members of sc on its channel, when what others rank by
 * changed (or force); ask: the others publish theirs too. */
void ts_sess__el_share(el_scope_t *sc, int force, int ask);
/* The lease as this loop knows it, for the others. */
void ts_sess__el_share_lease(el_scope_t *sc, ts_el_reason_t reason, uint64_t leaderless_ms);
void ts_sess__el_scope_subscribe(el_scope_t *sc);   /* a new scope: its channel */
void ts_sess__el_scope_unsubscribe(el_scope_t *sc); /* its last member here went */
void ts_sess__el_beacon_unsubscribe(ts_sess_t *sess);
/* Publishes msg (takes) with this loop's origin on chan. */
void ts_sess__el_publish(ts_sess_t *sess, const char *chan, json_t *msg);
void ts_sess__el_chan_of(const el_scope_t *sc, char *out, size_t cap); /* sc's channel */
/* Drops the members of loops not heard of for a lease; returns how many. */
size_t ts_sess__el_drop_dead(el_scope_t *sc, uint64_t now);
el_remote_t *ts_sess__el_remote_find(el_scope_t *sc, const char *holder);
/* Finishes the admin queries whose wait is over (all: shutdown). */
void ts_sess__el_admin_sweep(ts_sess_t *sess, int all);

/* session.c: 1 if s is an id of the token alphabet (what `sub` and `sid` may be). */
int ts_sess__api_id_ok(const char *s);

/* registry.c: the registry entry of a socket (put on connect and on
 * metadata, renewed by the sweep, removed on disconnect). */
void ts_sess__reg_put(sess_sock_t *ss);
void ts_sess__reg_remove(sess_sock_t *ss);
/* An entry's data, before it is encoded (everything borrowed). */
typedef struct sess_reg_data {
    const char *socket, *address;
    const char *user_agent;  /* NULL: none */
    json_t *caps, *meta;     /* NULL: none */
    uint64_t connected_at;   /* wall clock, ms */
    int rtt_ms;              /* < 0: not measured yet */
    uint8_t type, proto;     /* ts_sess_device_type_t, TS_SESS_PROTO_* */
} sess_reg_data_t;
/* Appends d to out as JSON text, or, with `compact` (a process-local
 * store), in registry.c's compact form when every field fits it. Returns
 * 0, or TS_EINVAL for an unknown device type (nothing appended). */
int ts_sess__reg_encode(ts_sbuf_t *out, const sess_reg_data_t *d, int compact);
/* Returns new: the data of either form as the admin API shows it, or NULL
 * when it is neither. */
json_t *ts_sess__reg_decode(ts_slice_t data);

/* election_cluster.c: the names of the election's channels, under the
 * configured prefix (ts_sess_cfg_t.channel_prefix). */
void ts_sess__el_channels(ts_sess_t *sess, const char *prefix);

#endif
