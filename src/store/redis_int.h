/* redis_int.h - private to the "redis" store backend (redis.c,
 * redis_pubsub.c): a handle, its channels, its ops and their issue order.
 * One handle per loop; nothing here is shared between threads. */
#ifndef TS_STORE_REDIS_INT_H
#define TS_STORE_REDIS_INT_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ts_list.h"
#include "core/ts_map.h"
#include "store/rcluster_int.h"
#include "store/rconn_int.h"
#include "store/ts_store.h"

#define PREFIX_MAX 64
#define REG_GROUPS 16 /* registry and retention groups: changing it moves keys */

typedef struct rsub {
    ts_list_t link;
    ts_store_msg_cb on_msg;
    void *ud;
} rsub_t;

/* Local subscribers of one channel: the first makes the SUBSCRIBE. */
typedef struct rchan {
    ts_list_t subs;
    size_t klen;
    char key[];
} rchan_t;

typedef struct rstore {
    uv_loop_t *loop;
    ts_rcl_t *rc;         /* one server or a cluster */
    ts_rconn_opts_t conn; /* how to connect (attach opens the same) */
    char prefix[PREFIX_MAX + 1];
    ts_map_t chans;
    int pending; /* ops whose callback has not run */
    ts_store_expire_cb on_expire;
    void *expire_ud;
    uint32_t sweep_ms, reg_max, read_max;
    size_t event_max, read_max_bytes, state_max;
    int sweeping;         /* sweep scripts on their way */
    int retaining;        /* retention scans on their way */
    char retain_cursor[REG_GROUPS][24]; /* SSCAN's, per group */
    ts_list_t fifo;       /* session ops behind a two-step fenced commit */
    ts_list_t order;      /* the callers' ops not called back yet, in issue order */
    uint32_t retain_events;
    uint64_t retain_ms;
    ts_store_rlog_layout_t new_logs; /* the layout of the logs this node starts */
    uv_timer_t sweep;
    int closing, closed_conns, closed_timers;
    ts_store_close_cb close_cb;
    void *close_ud;
    uv_timer_t defer; /* callbacks of ops that never reached Redis */
    ts_list_t deferred;
} rstore_t;

/* ---- ops ---- */

typedef enum {
    K_LEASE, K_DONE, K_LIST, K_SWEEP, K_SEQ, K_PAGE, K_STATE, K_SESS, K_COMMIT, K_RETAIN,
    K_RSCAN, /* a page of a group's retention set */
    K_FENCE, /* step one of a two-step fenced commit: the lease, read on its slot */
    K_COUNT, /* PUBSUB NUMSUB / SHARDNUMSUB */
} op_kind_t;

typedef struct reg_gather reg_gather_t;

typedef struct rop {
    ts_list_t link; /* in deferred */
    rstore_t *s;
    op_kind_t kind;
    int script;
    union {
        ts_store_lease_cb lease;
        ts_store_done_cb done;
        ts_store_reg_list_cb list;
        ts_store_seq_cb seq;
        ts_store_log_cb log;
        ts_store_state_cb state;
        ts_store_sess_cb sess;
        ts_store_commit_cb commit;
        ts_store_count_cb count;
    } cb;
    size_t max_bytes; /* K_PAGE: the page's byte budget */
    uint64_t sum;     /* K_COUNT: the subscribers counted so far */
    int summed;       /* K_COUNT: the nodes that answered */
    void *ud;
    int status; /* deferred */
    int group;  /* K_RSCAN, K_SWEEP: the registry group */
    ts_list_t olink;      /* in s->order (a caller's op) */
    int ordered, ready;   /* ready: its answer came before an earlier op's */
    int rstatus;
    redisReply *rreply;   /* that answer, copied (reply_free) */
    void (*rfn)(struct rop *o, int status, const redisReply *r);
    int held;   /* K_COMMIT in the FIFO: its fence is being read */
    struct rop *commit;   /* K_FENCE: the commit it decides */
    reg_gather_t *gather; /* K_LIST over every group */
    /* K_COMMIT of a plain event, first sent as XADD + HMGET (redis.c
     * send_fast): the step, its replies still to come, what they said */
    int fast, fast_left, fast_fail, fast_layout1, fast_unmarked;
    uint64_t fast_seq, fast_ep, fast_hv;
    /* for a NOSCRIPT retry with EVAL: the arguments again */
    int argc, nkeys;
    char *argv[24];
    size_t argvlen[24];
    char name[TS_STORE_ID_MAX + 1];
} rop_t;

typedef void (*result_fn)(rop_t *o, int status, const redisReply *r);

/* redis.c, for redis_pubsub.c: an op in the handle's issue order
 * (order_add), its answer handled in that order (gate), its callback and
 * end (complete: status, and the lease of a lease op), or its failure
 * before Redis saw it, called back from the loop (defer). */
void ts_store__rds_order_add(rstore_t *s, rop_t *o);
void ts_store__rds_gate(rop_t *o, int status, const redisReply *r, result_fn fn);
void ts_store__rds_complete(rop_t *o, int status, const ts_store_lease_t *lease);
void ts_store__rds_defer(rstore_t *s, rop_t *o, int status);
/* The status an op fails with when Redis gave no usable answer: closed
 * stays closed, anything else is the store's failure. */
static inline int ts_store__rds_failure(int status) {
    return status == TS_ECLOSED ? TS_ECLOSED : TS_ESTORE;
}

/* An integer reply, or a string holding one, into *out: 0, or -1. */
int ts_store__rds_reply_int(const redisReply *r, long long *out);

/* redis_pubsub.c: the messages of the handle's subscriptions (the push
 * callback of its rcluster), and the verbs of ts_store.h. */
void ts_store__rds_on_push(const redisReply *r, void *ud);
int ts_store__rds_subscribe(void *self, ts_store_chan_t kind, ts_slice_t channel,
                            ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb, void *ud);
int ts_store__rds_unsubscribe(void *self, ts_store_chan_t kind, ts_slice_t channel,
                              ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb, void *ud);
int ts_store__rds_publish(void *self, ts_store_chan_t kind, ts_slice_t channel, ts_buf_t *msg,
                          ts_store_done_cb cb, void *ud);
int ts_store__rds_numsub(void *self, ts_store_chan_t kind, ts_slice_t channel,
                         ts_store_count_cb cb, void *ud);

#endif
