/* mem_int.h - private to the memory backend (memory.c, mem_log.c,
 * mem_batch.c): the store, its doors, queued ops, sessions and leases.
 * Everything reachable from mem_t is guarded by mem_t.mu, except a door's
 * submit queue (its own loop thread only) and the stats (atomics). */
#ifndef TS_STORE_MEM_INT_H
#define TS_STORE_MEM_INT_H
#include <pthread.h>
#include <uv.h>

#include "core/ts_idmap.h"
#include "core/ts_list.h"
#include "core/ts_map.h"
#include "store/store_int.h"

enum op_kind {
    OP_REG_PUT,
    OP_REG_RENEW,
    OP_REG_REMOVE,
    OP_REG_LIST,     /* read */
    OP_LOG_APPEND,
    OP_LOG_READ,     /* read */
    OP_LOG_TRIM,
    OP_STATE_GET,    /* read */
    OP_STATE_CAS,
    OP_SESS_GET,     /* a read that creates the session it asks about */
    OP_COMMIT,
    OP_SNAP_PUT,
    OP_LEASE_ACQUIRE,
    OP_LEASE_RENEW,
    OP_LEASE_RELEASE,
    OP_LEASE_TRANSFER,
    OP_LEASE_GET,    /* runs like a write (in order with them) but changes nothing */
    OP_SUBSCRIBE,
    OP_UNSUBSCRIBE,
    OP_PUBLISH,
};

/* A read runs when its callback is due (so it reflects every write its
 * door completed before it); anything else runs on the turn after it was
 * issued and keeps its result in the op until its callback is due. */
static inline int op_is_read(enum op_kind k) {
    /* OP_SESS_GET is not one: it creates an unknown session (its epoch) */
    return k == OP_REG_LIST || k == OP_LOG_READ || k == OP_STATE_GET;
}

typedef struct mem_door mem_door_t;

/* A queued call: its arguments copied; after it ran, its result. */
typedef struct mem_op {
    ts_list_t link;  /* door queue, then door pending list */
    enum op_kind kind;
    union {
        ts_store_done_cb done;
        ts_store_reg_list_cb list;
        ts_store_seq_cb seq;
        ts_store_log_cb log;
        ts_store_state_cb state;
        ts_store_sess_cb sess;
        ts_store_commit_cb commit;
        ts_store_lease_cb lease;
    } cb;
    void *ud;
    ts_store_msg_cb on_msg; /* subscribe, unsubscribe */
    void *msg_ud;
    uint64_t a, b, c; /* ttl / after_seq / upto / expected / term / mut / seq, max / if_ver / ver */
    uint64_t d;       /* commit: fence term */
    int by;           /* reg_list index; commit: is_state */
    ts_buf_t *buf;    /* event or document: our reference */
    ts_slice_t s[6];  /* copied strings, meaning per kind (see submit sites) */
    /* result (ops that are not reads) */
    uint64_t gen;     /* the batch whose COMMIT the callback waits for; 0 = none */
    int status;
    uint64_t r_seq, r_ver, r_epoch, r_exp; /* seq / version / epoch / lease expiry (wall) */
    uint64_t r_term;  /* commit: TS_ESTALE: the fence lease's term */
    ts_buf_t *r_buf;  /* CAS doc, TS_EDUP original, lease holder: our reference */
    uint8_t mem[];
} mem_op_t;

/* The part of a session that reads show; kept twice while a batch holds
 * writes that are not durable yet (mem_sess_t.h and .dur). */
typedef struct mem_hist {
    uint64_t epoch;     /* 0 until the first write */
    uint64_t last_seq;
    uint64_t hist_ver;  /* state changes committed (sess_get's state_ver) */
    uint64_t snap_seq, snap_ver;
    ts_buf_t *snap;     /* NULL iff snap_seq == 0 */
    uint64_t state_ver; /* state_cas's document version (a separate counter) */
    ts_buf_t *state;    /* NULL iff state_ver == 0 */
} mem_hist_t;

typedef struct mem_ev {
    uint64_t seq;
    uint64_t t;       /* append time, wall-clock ms (retention) */
    ts_buf_t *data;
} mem_ev_t;

/* A session's log tail: seqs last_seq-n+1 .. last_seq, oldest at head. */
typedef struct mem_ring {
    size_t cap, head, n; /* cap: a power of two */
    size_t bytes;        /* of the events' data */
    mem_ev_t ev[];
} mem_ring_t;

typedef struct mem_mut {
    uint64_t mut, seq;
} mem_mut_t;

/* One client's exactly-once window: its newest applied mutations. */
typedef struct mem_client {
    mem_mut_t *w;     /* sorted by mut, at most TS_STORE_MUT_WINDOW */
    uint32_t n, cap;
    int dirty;        /* changed in the open batch: written before COMMIT */
    size_t klen;
    char key[];
} mem_client_t;

enum { SESS_FLUSH_META = 1 }; /* epoch / hist_ver to write before COMMIT */

/* One session in memory. A session that is only read (a tab's welcome
 * creates it) is most of them, so what writes need is made when they need
 * it: the durable copy while a batch holds it, the client windows at the
 * first exactly-once commit, the log tail at the first event (issue #13:
 * 272 -> 144 B). */
typedef struct mem_sess {
    ts_list_t lru;    /* least recently used first */
    int64_t sid;      /* SQLite row key; 0 = no row yet (or memory only) */
    mem_hist_t h;     /* live: every executed write */
    mem_hist_t *dur;  /* owned while dirty: the durable values, what reads show */
    uint64_t trimmed; /* events <= this are gone */
    uint64_t broken_chain; /* the last commit chain that failed here (ts_store_commit_t.chain) */
    ts_map_t *clients; /* owned; client id -> mem_client_t (SQLite: the ones loaded); NULL = none */
    size_t bytes;     /* what this session counts in mem_bytes */
    mem_ring_t *ring; /* owned; the log tail; NULL until the first event */
    uint32_t dirty_clients; /* clients changed in the open batch */
    uint8_t dirty;    /* touched by the open batch: pinned in memory */
    uint8_t flush;    /* SESS_FLUSH_* */
    uint16_t klen;    /* <= TS_STORE_ID_MAX */
    char key[];
} mem_sess_t;

/* Memory only: a session that was opened (sess_get fixed its epoch) and
 * never written nor read otherwise (a tab's welcome opens its session:
 * most of them, idle) is only this, 10 B + key instead of 144 + key. The
 * sessions' map holds both kinds; the first word tells them apart (a
 * mem_sess_t starts with a list link, an even pointer). sess_get makes a
 * mem_sess_t of it at the first op that needs one. */
typedef struct mem_stub {
    uint64_t tagged; /* epoch << 1 | 1 (an epoch has 63 bits) */
    uint16_t klen;
    char key[];
} mem_stub_t;
_Static_assert(offsetof(mem_sess_t, lru) == 0, "a mem_sess_t starts with an even word");
static inline int ts_store__mem_is_stub(const void *o) {
    return (int)(*(const uint64_t *)o & 1);
}

typedef struct mem_lease {
    uint64_t term;    /* last granted */
    uint64_t exp;     /* monotonic ms; held iff exp > now */
    int dirty;        /* its term is in the open batch */
    size_t hlen;
    char holder[TS_STORE_ID_MAX];
    size_t klen;
    char key[];
} mem_lease_t;

typedef struct mem_store mem_t;

/* The fence of a commit (memory.c): whether lease `name` is held now with
 * `term`; op->r_term gets its last granted term (0: never), and op waits
 * for the batch that granted it if that is not durable yet. */
int ts_store__mem_lease_fence(mem_t *m, mem_op_t *op, ts_slice_t name, ts_slice_t holder,
                              uint64_t term);

/* A loop's way into the store: its op queue, the ops whose callbacks are
 * not due yet, and the handles that run them on that loop. The loop that
 * opened the store uses the door inside mem_t. */
struct mem_door {
    mem_t *m;
    uv_loop_t *loop;
    uv_idle_t idle;    /* runs the op queue on the next turn */
    uv_timer_t timer;  /* commits the batch group_ms after its first write */
    uv_async_t wake;   /* another door committed a batch this one waits for */
    ts_list_t queue;   /* submitted, not run yet (this loop's thread only) */
    ts_list_t pending; /* run (or reads not run), callback not called (under mu) */
    ts_list_t link;    /* in mem_t.doors (under mu) */
    ts_list_t inbox;   /* pub/sub messages for this door's subscribers (under mu) */
    uint64_t armed_gen; /* the batch the timer was started for */
    int closing, finishing, handles_open;
    ts_store_close_cb close_cb;
    void *close_ud;
};

struct mem_store {
    mem_door_t door;    /* the opening loop's */
    pthread_mutex_t mu; /* held while any door runs ops or callbacks, and by the sweep */
    int doors;          /* open doors, own included: the last one frees */
    ts_list_t door_list; /* every door not finished closing (wake-ups) */
    int closing;        /* the opening loop closed: no more sweeps */
    uv_timer_t sweep;   /* expiry + retention on the opening loop, unref'd */
    ts_store_expire_cb on_expire;
    void *expire_ud;
    ts_store_cfg_t lim; /* bounds with defaults applied */
    ts_store_sql_t *sql; /* NULL = memory only */
    ts_idmap_t regs, idx[3]; /* registry: entries, and their first entry by session, user, device */
    struct mem_reg **heap;
    size_t heap_n, heap_cap;
    ts_idmap_t sessions; /* mem_sess_t, their keys inside */
    ts_list_t lru;
    size_t nsess;
    size_t ret_iter;    /* retention's place in `sessions` between sweeps */
    ts_map_t leases;
    ts_map_t chans;     /* pub/sub: kind byte + channel -> mem_chan_t (mem_pubsub.c) */
    ts_list_t patterns; /* the TS_STORE_CHAN_PATTERN ones among them */
    size_t mem_bytes;   /* log tails + documents + snapshots + client windows */
    /* group commit (SQLite only; mem_batch.c) */
    int batch_open;     /* a transaction holds writes not committed yet */
    uint64_t gen;       /* the open batch's number (or the next one's) */
    uint64_t done_gen;  /* every batch <= this committed or failed */
    uint64_t batch_t0;  /* uv_hrtime() (ns) of the open batch's first write */
    uint64_t batch_ops; /* ops waiting for it */
    mem_sess_t **touched;
    size_t ntouched, touched_cap;
    mem_lease_t **ltouched;
    size_t nltouched, ltouched_cap;
    ts_store_stats_t stats; /* atomics: read without mu */
};

#define MEM_STAT_ADD(m, field, v) __atomic_fetch_add(&(m)->stats.field, (v), __ATOMIC_RELAXED)

/* ---- mem_log.c: sessions, logs, history ---- */
void ts_store__mem_exec_log_append(mem_t *m, mem_op_t *op);
void ts_store__mem_exec_log_trim(mem_t *m, mem_op_t *op);
void ts_store__mem_exec_state_cas(mem_t *m, mem_op_t *op);
void ts_store__mem_exec_commit(mem_t *m, mem_op_t *op);
void ts_store__mem_exec_snap_put(mem_t *m, mem_op_t *op);
void ts_store__mem_exec_sess_open(mem_t *m, mem_op_t *op);
/* reads: run and call back */
void ts_store__mem_read_log(mem_t *m, mem_op_t *op);
void ts_store__mem_read_state(mem_t *m, mem_op_t *op);
void ts_store__mem_read_sess(mem_t *m, mem_op_t *op);
/* Retention over a bounded number of sessions, from the sweep. */
void ts_store__mem_retain(mem_t *m);
/* Forgets a session (a mem_sess_t or a mem_stub_t). */
void ts_store__mem_sess_evict(mem_t *m, void *s);
void ts_store__mem_hist_release(mem_hist_t *h);
/* Writes the session's row fields and changed client windows (before COMMIT). */
int ts_store__mem_sess_flush(mem_t *m, mem_sess_t *s);

/* ---- mem_batch.c: group commit ---- */
/* Opens the batch a write joins (BEGIN on the first). 0 or TS_ESTORE. */
int ts_store__mem_batch_begin(mem_t *m);
/* Marks what a write changes: pinned in memory, dropped if the batch fails. */
void ts_store__mem_touch_sess(mem_t *m, mem_sess_t *s);
void ts_store__mem_touch_lease(mem_t *m, mem_lease_t *l);
/* The op's callback waits for the open batch (it wrote, or saw a write of it). */
void ts_store__mem_op_join(mem_t *m, mem_op_t *op);
/* A statement failed: roll the batch back, drop what it touched, fail its ops. */
void ts_store__mem_batch_fail(mem_t *m);
void ts_store__mem_batch_commit(mem_t *m);
/* Calls the callbacks of d that are due, in issue order. */
void ts_store__mem_door_deliver(mem_door_t *d);
/* Arms d's commit timer if d waits for the open batch. */
void ts_store__mem_door_settle(mem_door_t *d);
/* Starts d's timer to commit the open batch at most group_ms after its
 * first write. */
void ts_store__mem_door_arm(mem_door_t *d);
/* Runs a read and calls its callback. */
void ts_store__mem_run_read(mem_t *m, mem_op_t *op);
void ts_store__mem_deliver_op(mem_t *m, mem_op_t *op);
void ts_store__mem_op_free(mem_op_t *op);
void ts_store__mem_on_timer(uv_timer_t *t);
void ts_store__mem_on_wake(uv_async_t *a);

/* ---- mem_pubsub.c: publish / subscribe between the doors ---- */
void ts_store__mem_exec_subscribe(mem_t *m, mem_door_t *d, mem_op_t *op);
void ts_store__mem_exec_unsubscribe(mem_t *m, mem_door_t *d, mem_op_t *op);
void ts_store__mem_exec_publish(mem_t *m, mem_op_t *op);
/* Calls the door's subscribers with what its inbox holds; takes mu itself. */
void ts_store__mem_door_messages(mem_door_t *d);
/* The door is closing: its subscriptions and undelivered messages go (under mu). */
void ts_store__mem_door_unsubscribe_all(mem_t *m, mem_door_t *d);

/* ---- memory.c ---- */
void ts_store__mem_read_reg(mem_t *m, mem_op_t *op);
void ts_store__mem_lease_forget(mem_t *m, mem_lease_t *l);
uint64_t ts_store__mem_new_epoch(void);

#endif
