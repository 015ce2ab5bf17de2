/* redis.c - the "redis" store backend (issue #12): every verb of ts_store.h
 * over one Redis server or a Redis Cluster (rcluster_int.h: the slot map,
 * MOVED/ASK, failover; over rconn_int.h: plain or TLS connections on
 * libuv). Each verb is one Lua script (EVALSHA with the script's SHA-1, EVAL
 * once when Redis answers NOSCRIPT), atomic on the server and, where a
 * lease or an expiry is involved, on Redis's clock (TIME), so that every
 * node sees one order of grants, one sequence per session and one expiry.
 * The exception is the commonest: a plain commit is one XADD, numbered by
 * Redis ("a plain commit without a script", below).
 *
 * The key layout: every script touches one Cluster slot, so all keys it
 * names share one hash tag (the same layout on one server: nothing to
 * migrate when a deployment moves to Cluster).
 *   <prefix>l:{<session>}           the session's log, a stream (ids 0-<seq>;
 *                                   <seq>-1 in logs of older builds:
 *                                   redis_lua.c "the log scripts")
 *   <prefix>l:{<session>}:m         the layout (last), trim mark, epoch,
 *                                   state_ver, broken chain, snapshot,
 *                                   f:<fence> terms
 *   <prefix>l:{<session>}:w:<c>     client c's exactly-once window
 *   <prefix>s:{<session>}           the state document (state_cas)
 *   <prefix>lease:<name>            a lease {h holder, t last term, x expiry}
 *                                   (tagged by the name's own {..}, if any)
 * and, per registry group g (16 of them; a session's group is its slot /
 * 1024, and the group's tag G(g) is a short text chosen to hash into that
 * same range, so group g lives on the node that serves sessions of g):
 *   <prefix>r{G(g)}<s>\x1f<d>\x1f<t>   a registry entry of a session of g
 *   <prefix>i{G(g)}s:<session>     its indexes: by session (all in g),
 *   <prefix>i{G(g)}u:<user>        by user and by device (the entries of
 *   <prefix>i{G(g)}d:<device>      g only: a list by user asks every group)
 *   <prefix>exp{G(g)}              g's entries by expiry (the sweep: each
 *                                  group every sweep)
 *   <prefix>rt{G(g)}               sessions of g with a snapshot (retention:
 *                                  the sweep SSCANs it, then trims each
 *                                  session with a script on its own slot)
 * A fenced commit reads the lease in the same script when the lease is in
 * the session's slot (one server always; Cluster when the lease name holds
 * {<session>}). Otherwise, in Cluster, it goes in two steps: the lease is
 * read on its slot, then the commit script gets the verdict and keeps, per
 * fence, the highest term that committed (f:<fence>): a lower term is
 * refused once a higher one wrote. Later ops of this handle on sessions
 * wait behind it (one FIFO), so per-session order holds. docs/STORE.md
 * says what this weakens and how to avoid it.
 *
 * Each loop has its own handle (attach): connections of its own. The
 * publish/subscribe verbs are in redis_pubsub.c (redis_int.h between them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_map.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "store/rcluster_int.h"
#include "store/rconn_int.h"
#include "store/redis_int.h"
#include "store/redis_lua.h"
#include "store/ts_store.h"

#define TS_STR_(x) #x
#define TS_STR(x) TS_STR_(x)

/* ---- issue order ----
 * Through one handle callbacks run in issue order (ts_store.h), but a
 * cluster answers on several connections. An op whose answer comes while
 * an earlier op of the handle has none yet keeps a copy of it, and is
 * handled when every earlier op was. */

static redisReply *reply_dup(const redisReply *r) {
    redisReply *c = ts_xcalloc(1, sizeof *c);
    c->type = r->type;
    c->integer = r->integer;
    c->len = r->len;
    if (r->str) {
        c->str = ts_xmalloc(r->len + 1);
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
    }
    if (r->element && r->elements) {
        c->elements = r->elements;
        c->element = ts_xcalloc(r->elements, sizeof *c->element);
        for (size_t i = 0; i < r->elements; i++) c->element[i] = reply_dup(r->element[i]);
    }
    return c;
}

static void reply_free(redisReply *r) {
    if (!r) return;
    for (size_t i = 0; i < r->elements; i++) reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static void rop_free(rop_t *o) {
    for (int i = 0; i < o->argc; i++) free(o->argv[i]);
    if (o->ordered) ts_list_remove(&o->olink);
    reply_free(o->rreply);
    free(o);
}

/* Handles the ready answers at the head of the order. */
static void order_drain(rstore_t *s) {
    while (!ts_list_empty(&s->order)) {
        rop_t *o = ts_list_entry(s->order.next, rop_t, olink);
        if (!o->ready) return;
        redisReply *r = o->rreply;
        o->ready = 0;
        o->rreply = NULL;
        o->rfn(o, o->rstatus, r); /* frees o, or sends it again (NOSCRIPT) */
        reply_free(r);
    }
}

/* An answer (or a failure) for o: handled now if o is next, else kept. */
void ts_store__rds_gate(rop_t *o, int status, const redisReply *r, result_fn fn) {
    rstore_t *s = o->s;
    if (o->ordered && s->order.next != &o->olink) {
        o->ready = 1;
        o->rstatus = status;
        o->rreply = r ? reply_dup(r) : NULL;
        o->rfn = fn;
        return;
    }
    fn(o, status, r);
    order_drain(s);
}

void ts_store__rds_order_add(rstore_t *s, rop_t *o) {
    o->ordered = 1;
    ts_list_insert_tail(&s->order, &o->olink);
}

static void finish_close(rstore_t *s);
static void gather_part(reg_gather_t *g, int status, const ts_store_reg_t *rows, size_t n);

static void on_fence(rop_t *o, int status, const redisReply *r);

void ts_store__rds_complete(rop_t *o, int status, const ts_store_lease_t *lease) {
    rstore_t *s = o->s;
    if (o->kind == K_FENCE) { /* never sent: the commit goes on, without a verdict */
        on_fence(o, status ? status : TS_ESTORE, NULL);
        return;
    }
    if (o->kind == K_LEASE) {
        if (o->cb.lease) o->cb.lease(status, lease, o->ud);
    } else if (o->kind == K_LIST) {
        if (o->gather) gather_part(o->gather, status ? status : TS_ESTORE, NULL, 0);
        else if (o->cb.list) o->cb.list(status, NULL, 0, o->ud);
    } else if (o->kind == K_SEQ) {
        if (o->cb.seq) o->cb.seq(status, 0, o->ud);
    } else if (o->kind == K_PAGE) {
        if (o->cb.log) o->cb.log(status, NULL, o->ud);
    } else if (o->kind == K_STATE) {
        if (o->cb.state) o->cb.state(status, NULL, o->ud);
    } else if (o->kind == K_SESS) {
        if (o->cb.sess) o->cb.sess(status, NULL, o->ud);
    } else if (o->kind == K_COMMIT) {
        if (o->cb.commit) o->cb.commit(status, NULL, o->ud);
    } else if (o->kind == K_COUNT) {
        if (o->cb.count) o->cb.count(status, 0, o->ud);
    } else if (o->kind == K_DONE && o->cb.done) {
        o->cb.done(status, o->ud);
    }
    int counted = o->kind != K_SWEEP && o->kind != K_RETAIN && o->kind != K_RSCAN &&
                  o->kind != K_FENCE;
    if (o->kind == K_SWEEP) s->sweeping--;
    if (o->kind == K_RSCAN) s->retaining--;
    rop_free(o);
    if (counted) s->pending--;
    if (s->closing && !s->pending) finish_close(s);
}

static void deferred_result(rop_t *o, int status, const redisReply *r) {
    (void)r;
    ts_store__rds_complete(o, status, NULL);
}

static void run_deferred(uv_timer_t *t) {
    rstore_t *s = t->data;
    while (!ts_list_empty(&s->deferred)) {
        rop_t *o = ts_list_entry(s->deferred.next, rop_t, link);
        ts_list_remove(&o->link);
        ts_store__rds_gate(o, o->status, NULL, deferred_result);
    }
}

/* An op that failed before Redis saw it: its callback comes from the loop. */
void ts_store__rds_defer(rstore_t *s, rop_t *o, int status) {
    o->status = status;
    ts_list_insert_tail(&s->deferred, &o->link);
    uv_timer_start(&s->defer, run_deferred, 0, 0);
}

int ts_store__rds_reply_int(const redisReply *r, long long *out) {
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING) {
        char *end;
        *out = strtoll(r->str, &end, 10);
        return *end ? -1 : 0;
    }
    return -1;
}

static void send_script(rop_t *o, int eval);
static void on_reg_reply(rop_t *o, const redisReply *r);

static void script_result(rop_t *o, int status, const redisReply *r);

static void on_script(int status, const redisReply *r, void *ud) {
    ts_store__rds_gate(ud, status, r, script_result);
}

static void script_result(rop_t *o, int status, const redisReply *r) {
    if (o->kind == K_FENCE) {
        on_fence(o, status, r);
        return;
    }
    if (status) {
        ts_store__rds_complete(o, ts_store__rds_failure(status), NULL);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOSCRIPT", 8) == 0) { /* not in Redis's cache yet */
            send_script(o, 1);
            return;
        }
        ts_warn("store", "redis: a script failed: %s", r->str);
        ts_store__rds_complete(o, TS_ESTORE, NULL);
        return;
    }
    if (o->kind != K_LEASE && o->script != S_RELEASE) {
        on_reg_reply(o, r);
        return;
    }
    long long st, term, exp;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        ts_store__rds_reply_int(r->element[0], &st) || r->element[1]->type != REDIS_REPLY_STRING ||
        ts_store__rds_reply_int(r->element[2], &term) ||
        ts_store__rds_reply_int(r->element[3], &exp)) {
        ts_store__rds_complete(o, TS_ESTORE, NULL);
        return;
    }
    ts_store_lease_t l = {ts_slice_str(o->name), ts_slice(r->element[1]->str, r->element[1]->len),
                          (uint64_t)term, (uint64_t)(r->element[1]->len ? exp : 0)};
    int rc = st == 0 ? 0 : st == 1 ? TS_EHELD : TS_ESTALE;
    if (o->script == S_RELEASE) {
        ts_store__rds_complete(o, rc, NULL);
        return;
    }
    ts_store__rds_complete(o, rc, &l);
}

static void send_script(rop_t *o, int eval) {
    script_t *sc = &ts_store__rds_scripts[o->script];
    const char *argv[28];
    size_t lens[28];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", o->nkeys ? o->nkeys : 1);
    int n = 0;
    argv[n] = eval ? "EVAL" : "EVALSHA";
    lens[n++] = strlen(argv[0]);
    argv[n] = eval ? sc->src : sc->sha;
    lens[n++] = strlen(argv[1]);
    argv[n] = nk;
    lens[n++] = strlen(nk);
    for (int i = 0; i < o->argc; i++) {
        argv[n] = o->argv[i];
        lens[n++] = o->argvlen[i];
    }
    /* routed by KEYS[1]: every key of a script shares its slot */
    int rc = ts_rcl_cmdf(o->s->rc, o->argv[0], o->argvlen[0],
                         ts_store__rds_script_writes(o->script) && o->kind != K_FENCE ? TS_RCONN_WRITE : 0, n,
                         argv, lens, on_script, o);
    if (rc) ts_store__rds_defer(o->s, o, ts_store__rds_failure(rc));
}

static void send_fast(rop_t *o);

static void send_op(rop_t *o) {
    if (o->fast) send_fast(o);
    else send_script(o, 0);
}

/* A session op: sent now, or queued behind a two-step fenced commit whose
 * lease is being read (so that ops on one session keep their order). */
static void sess_send(rop_t *o) {
    rstore_t *s = o->s;
    if (!ts_list_empty(&s->fifo)) {
        ts_list_insert_tail(&s->fifo, &o->link);
        return;
    }
    send_op(o);
}

/* Sends the FIFO's ops up to the first one still waiting for its lease. */
static void fifo_drain(rstore_t *s) {
    while (!ts_list_empty(&s->fifo)) {
        rop_t *o = ts_list_entry(s->fifo.next, rop_t, link);
        if (o->held) return;
        ts_list_remove(&o->link);
        send_op(o);
    }
}

/* A script op: keys, then args (all copied). Counted in `pending` unless it
 * is the sweep's or a commit's first step. */
static rop_t *script_op(rstore_t *s, int script, op_kind_t kind, const char *const *keys,
                        const size_t *klens, int nkeys, const char *const *args, int nargs,
                        void *ud) {
    rop_t *o = ts_xcalloc(1, sizeof *o);
    o->s = s;
    o->script = script;
    o->kind = kind;
    o->ud = ud;
    o->nkeys = nkeys;
    for (int i = 0; i < nkeys + nargs; i++) {
        const char *v = i < nkeys ? keys[i] : args[i - nkeys];
        size_t l = i < nkeys ? klens[i] : strlen(v);
        o->argv[o->argc] = ts_xmemdup(v, l + 1);
        o->argv[o->argc][l] = '\0';
        o->argvlen[o->argc++] = l;
    }
    if (kind != K_SWEEP && kind != K_RETAIN && kind != K_RSCAN && kind != K_FENCE) {
        s->pending++; /* the sweep's are not, nor a commit's first step */
        ts_store__rds_order_add(s, o);
    }
    return o;
}

/* A lease op: KEYS[1] = {prefix}lease:<name>, then the ARGV strings. */
static int lease_op(rstore_t *s, int script, ts_slice_t name, const char *const *args, int nargs,
                    ts_store_lease_cb lcb, ts_store_done_cb dcb, void *ud) {
    if (s->closing) return TS_ECLOSED;
    char key[PREFIX_MAX + TS_STORE_ID_MAX + 8];
    int kl = snprintf(key, sizeof key, "%slease:%.*s", s->prefix, (int)name.len,
                      (const char *)name.p);
    const char *keys[1] = {key};
    size_t klens[1] = {(size_t)kl};
    /* release answers without a lease */
    rop_t *o = script_op(s, script, script == S_RELEASE ? K_DONE : K_LEASE, keys, klens, 1, args,
                         nargs, ud);
    if (o->kind == K_DONE) o->cb.done = dcb;
    else o->cb.lease = lcb;
    memcpy(o->name, name.p, name.len);
    o->name[name.len] = '\0';
    send_script(o, 0);
    return 0;
}

static int r_lease_acquire(void *self, ts_slice_t name, ts_slice_t holder, uint64_t ttl_ms,
                           ts_store_lease_cb cb, void *ud) {
    char h[TS_STORE_ID_MAX + 1], ttl[24];
    snprintf(h, sizeof h, "%.*s", (int)holder.len, (const char *)holder.p);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    const char *args[] = {h, ttl};
    return lease_op(self, S_ACQUIRE, name, args, 2, cb, NULL, ud);
}

static int r_lease_renew(void *self, ts_slice_t name, ts_slice_t holder, uint64_t term,
                         uint64_t ttl_ms, ts_store_lease_cb cb, void *ud) {
    char h[TS_STORE_ID_MAX + 1], tm[24], ttl[24];
    snprintf(h, sizeof h, "%.*s", (int)holder.len, (const char *)holder.p);
    snprintf(tm, sizeof tm, "%llu", (unsigned long long)term);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    const char *args[] = {h, tm, ttl};
    return lease_op(self, S_RENEW, name, args, 3, cb, NULL, ud);
}

static int r_lease_release(void *self, ts_slice_t name, ts_slice_t holder, uint64_t term,
                           ts_store_done_cb cb, void *ud) {
    char h[TS_STORE_ID_MAX + 1], tm[24];
    snprintf(h, sizeof h, "%.*s", (int)holder.len, (const char *)holder.p);
    snprintf(tm, sizeof tm, "%llu", (unsigned long long)term);
    const char *args[] = {h, tm};
    return lease_op(self, S_RELEASE, name, args, 2, NULL, cb, ud);
}

static int r_lease_transfer(void *self, ts_slice_t name, uint64_t term, ts_slice_t to,
                            uint64_t ttl_ms, ts_store_lease_cb cb, void *ud) {
    char h[TS_STORE_ID_MAX + 1], tm[24], ttl[24];
    snprintf(h, sizeof h, "%.*s", (int)to.len, (const char *)to.p);
    snprintf(tm, sizeof tm, "%llu", (unsigned long long)term);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    const char *args[] = {tm, h, ttl};
    return lease_op(self, S_TRANSFER, name, args, 3, cb, NULL, ud);
}

static int r_lease_get(void *self, ts_slice_t name, ts_store_lease_cb cb, void *ud) {
    return lease_op(self, S_GET, name, NULL, 0, cb, NULL, ud);
}

/* ---- groups ----
 * The registry and the retention index are split in REG_GROUPS groups by
 * the session's slot (slot / 1024), each under one hash tag: a short text
 * (g<g>.<n>, the first n that fits) whose own slot falls in the group's
 * range, so a group sits on the node that serves most of its sessions. The
 * tags depend on nothing but CRC16: every node computes the same ones. */

static char group_tag[REG_GROUPS][16];

static void group_tags_init(void) {
    if (group_tag[REG_GROUPS - 1][0]) return;
    char tags[REG_GROUPS][16];
    for (unsigned g = 0; g < REG_GROUPS; g++) {
        unsigned lo = g * (TS_RCL_SLOTS / REG_GROUPS), hi = lo + TS_RCL_SLOTS / REG_GROUPS;
        for (unsigned n = 0;; n++) {
            int l = snprintf(tags[g], sizeof tags[g], "g%u.%u", g, n);
            unsigned slot = ts_rcl_slot(tags[g], (size_t)l);
            if (slot >= lo && slot < hi) break;
        }
    }
    memcpy(group_tag, tags, sizeof tags);
}

/* A session's group: its keys' slot / 1024 (the slot of <prefix>l:{<session>},
 * so that even a session id with braces lands where its keys are). */
static int sess_group(const rstore_t *s, ts_slice_t session) {
    char k[PREFIX_MAX + TS_STORE_ID_MAX + 8];
    int n = snprintf(k, sizeof k, "%sl:{%.*s}", s->prefix, (int)session.len,
                     (const char *)session.p);
    size_t l = n < 0 ? 0 : (size_t)n < sizeof k ? (size_t)n : sizeof k - 1;
    return (int)(ts_rcl_slot(k, l) / (TS_RCL_SLOTS / REG_GROUPS));
}

/* ---- open, close ---- */

static void on_sweep(uv_timer_t *t);

/* The last step of a close: both timers closed, so nothing of the handle
 * is left on the loop when the close callback runs (its loop may close). */
static void timer_closed(uv_handle_t *h) {
    rstore_t *s = h->data;
    if (++s->closed_timers < 2) return;
    ts_store_close_cb cb = s->close_cb;
    void *cud = s->close_ud;
    free(s);
    if (cb) cb(cud);
}

static void conn_closed(void *ud) {
    rstore_t *s = ud;
    s->closed_conns = 1;
    ts_map_entry_t *e;
    for (size_t it = 0; ts_map_next(&s->chans, &it, &e);) {
        rchan_t *c = e->val;
        while (!ts_list_empty(&c->subs)) {
            rsub_t *x = ts_list_entry(c->subs.next, rsub_t, link);
            ts_list_remove(&x->link);
            free(x);
        }
        free(c);
    }
    ts_map_deinit(&s->chans);
    s->defer.data = s->sweep.data = s;
    uv_close((uv_handle_t *)&s->defer, timer_closed);
    uv_close((uv_handle_t *)&s->sweep, timer_closed);
}

static void finish_close(rstore_t *s) {
    if (s->closed_conns || !s->rc) return;
    ts_rcl_t *rc = s->rc;
    s->rc = NULL;
    ts_rcl_close(rc, conn_closed, s);
}

static void r_close(void *self, ts_store_close_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    uv_timer_stop(&s->sweep);
    /* accepted ops finish first (their replies come), then the connections go */
    if (!s->pending) finish_close(s);
}

/* A handle on `loop` with its own two connections. The handle that opened
 * the store sweeps (registry expiry, retention); attached ones do not: one
 * sweeper per process is enough, and across nodes the scripts decide who
 * reports an expiry. */
static rstore_t *rstore_new(uv_loop_t *loop, const ts_rconn_opts_t *o, const rstore_t *like,
                            int sweeper) {
    rstore_t *s = ts_xcalloc(1, sizeof *s);
    *s = *like; /* the settings; every handle and list is made below */
    s->loop = loop;
    s->conn = *o;
    memset(&s->chans, 0, sizeof s->chans); /* an empty map (not `like`'s) */
    ts_list_init(&s->deferred);
    ts_list_init(&s->fifo);
    ts_list_init(&s->order);
    uv_timer_init(loop, &s->defer);
    s->defer.data = s;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    if (sweeper) {
        uv_timer_start(&s->sweep, on_sweep, s->sweep_ms, s->sweep_ms);
        uv_unref((uv_handle_t *)&s->sweep);
    } else {
        s->on_expire = NULL;
    }
    s->rc = ts_rcl_new(loop, o, ts_store__rds_on_push, s);
    return s;
}

static int r_open(void **self, const ts_store_cfg_t *cfg, uv_loop_t *loop, char *err,
                  size_t errlen) {
    ts_rconn_opts_t o;
    if (!cfg->redis_url || ts_rconn_parse_url(cfg->redis_url, &o, err, errlen) != 0) {
        if (!cfg->redis_url && err && errlen) snprintf(err, errlen, "store: no Redis URL");
        return TS_EINVAL;
    }
    char why[400];
    if (ts_rconn_tls_check(&o, why, sizeof why) != 0) { /* a CA or key file it cannot read */
        if (err && errlen) snprintf(err, errlen, "store: %s", why);
        return TS_EINVAL;
    }
    const char *prefix = cfg->redis_prefix ? cfg->redis_prefix : "ts:";
    if (strlen(prefix) > PREFIX_MAX) {
        if (err && errlen) snprintf(err, errlen, "store: Redis key prefix over %d bytes", PREFIX_MAX);
        return TS_EINVAL;
    }
    if (strpbrk(prefix, "{}")) { /* it would be the hash tag of every key */
        if (err && errlen)
            snprintf(err, errlen, "store: the Redis key prefix \"%s\" may not hold { or }", prefix);
        return TS_EINVAL;
    }
    static const char *srcs[S_COUNT];
    for (size_t i = 0; i < S_COUNT; i++) {
        if (!ts_store__rds_scripts[i].sha[0])
            ts_store__rds_sha1_hex(ts_store__rds_scripts[i].src, ts_store__rds_scripts[i].sha);
        srcs[i] = ts_store__rds_scripts[i].src;
    }
    /* Every connection loads them before its first command: the EVAL
     * fallback on NOSCRIPT stays for a SCRIPT FLUSH, but its retry runs
     * after whatever was pipelined behind the refused call, so relying on
     * it reordered a session's commits (seq 2 logged after 3..29: seen by
     * js history@3nodes on fresh servers). */
    o.scripts = srcs;
    o.nscripts = S_COUNT;
    o.min_major = 7; /* XADD <log> 0-* (a plain commit) */
    group_tags_init();
    rstore_t like = {0};
    snprintf(like.prefix, sizeof like.prefix, "%s", prefix);
    like.on_expire = cfg->on_expire;
    like.expire_ud = cfg->expire_ud;
    like.sweep_ms = cfg->sweep_ms ? cfg->sweep_ms : 1000;
    like.reg_max = cfg->reg_max ? cfg->reg_max : 1000000;
    like.event_max = cfg->event_max ? cfg->event_max : 1u << 20;
    like.state_max = cfg->state_max ? cfg->state_max : 1u << 20;
    like.retain_events = cfg->retain_events ? cfg->retain_events : 10000;
    like.retain_ms = cfg->retain_ms ? cfg->retain_ms : 24ull * 3600 * 1000;
    like.new_logs = cfg->redis_log_layout == TS_STORE_RLOG_V1 ? TS_STORE_RLOG_V1 : TS_STORE_RLOG_V2;
    for (int g = 0; g < REG_GROUPS; g++)
        snprintf(like.retain_cursor[g], sizeof like.retain_cursor[g], "0");
    like.read_max = cfg->read_max ? cfg->read_max : 1000;
    like.read_max_bytes = cfg->read_max_bytes ? cfg->read_max_bytes : 4u << 20;
    *self = rstore_new(loop, &o, &like, 1);
    return 0;
}

/* Another loop's door: the same settings, its own connections on `loop`
 * (called before that loop runs, or from its thread: nothing here touches
 * the first handle's loop). Handles close independently. */
static int r_attach(void *self, uv_loop_t *loop, void **out) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    rstore_t like = *s;
    like.closing = like.closed_conns = like.closed_timers = like.pending = 0;
    like.sweeping = like.retaining = 0;
    like.close_cb = NULL;
    like.close_ud = NULL;
    *out = rstore_new(loop, &s->conn, &like, 0);
    return 0;
}

/* ---- the registry ---- */

/* Index kinds, in ts_store_by_t order: <prefix>i{G}<kind><id>. */
static const char *const IDX[3] = {"s:", "u:", "d:"};

#define KEY_CAP (PREFIX_MAX + 3 * TS_STORE_ID_MAX + 32)

/* Key `what` of group g: <prefix><what>{G(g)}<kind><id>. */
static size_t gkey(char *out, size_t cap, const rstore_t *s, const char *what, int g,
                   const char *kind, ts_slice_t id) {
    int n = snprintf(out, cap, "%s%s{%s}%s%.*s", s->prefix, what, group_tag[g], kind,
                     (int)id.len, (const char *)id.p);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* <prefix>r{G}<session>\x1f<device>\x1f<tab> (ids have no control characters) */
static size_t entry_key(char *out, size_t cap, const rstore_t *s, const ts_store_reg_key_t *k) {
    int n = snprintf(out, cap, "%sr{%s}%.*s\x1f%.*s\x1f%.*s", s->prefix,
                     group_tag[sess_group(s, k->session)], (int)k->session.len,
                     (const char *)k->session.p, (int)k->device.len, (const char *)k->device.p,
                     (int)k->tab.len, (const char *)k->tab.p);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Entries from HMGET s, d, t, u, n, m, x rows. */
static size_t reg_rows(const redisReply *r, ts_store_reg_t *out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < r->elements && n < max; i++) {
        const redisReply *v = r->element[i];
        if (v->type != REDIS_REPLY_ARRAY || v->elements != 7) continue;
        int ok = 1;
        for (int j = 0; j < 7; j++) ok &= v->element[j]->type == REDIS_REPLY_STRING;
        if (!ok) continue;
#define F(j) ts_slice(v->element[j]->str, v->element[j]->len)
        out[n] = (ts_store_reg_t){{F(0), F(1), F(2)}, F(3), F(4), F(5),
                                  (uint64_t)strtoull(v->element[6]->str, NULL, 10)};
#undef F
        n++;
    }
    return n;
}

/* A list by user or device: one script per group, the rows copied as they
 * come, one answer when the last group answered. */
struct reg_gather {
    ts_store_reg_list_cb cb;
    void *ud;
    int left, failed;
    ts_store_reg_t *rows;
    size_t n, cap;
};

static ts_slice_t copy_slice(ts_slice_t v) {
    return ts_slice(v.len ? ts_xmemdup(v.p, v.len) : NULL, v.len);
}

static void gather_part(reg_gather_t *g, int status, const ts_store_reg_t *rows, size_t n) {
    if (status && !g->failed) g->failed = status;
    for (size_t i = 0; !status && i < n; i++) {
        if (g->n == g->cap) {
            g->cap = g->cap ? 2 * g->cap : 16;
            g->rows = ts_xrealloc(g->rows, g->cap * sizeof *g->rows);
        }
        const ts_store_reg_t *e = &rows[i];
        g->rows[g->n++] = (ts_store_reg_t){{copy_slice(e->key.session), copy_slice(e->key.device),
                                            copy_slice(e->key.tab)},
                                           copy_slice(e->user), copy_slice(e->node),
                                           copy_slice(e->data), e->expires_at};
    }
    if (--g->left > 0) return;
    if (g->cb) {
        if (g->failed) g->cb(g->failed, NULL, 0, g->ud);
        else g->cb(0, g->n ? g->rows : NULL, g->n, g->ud);
    }
    for (size_t i = 0; i < g->n; i++) {
        ts_store_reg_t *e = &g->rows[i];
        free((void *)e->key.session.p);
        free((void *)e->key.device.p);
        free((void *)e->key.tab.p);
        free((void *)e->user.p);
        free((void *)e->node.p);
        free((void *)e->data.p);
    }
    free(g->rows);
    free(g);
}

static void on_log_reply(rop_t *o, const redisReply *r);
static void on_hist_reply(rop_t *o, const redisReply *r);
static void on_rscan(rop_t *o, const redisReply *r);

static void on_reg_reply(rop_t *o, const redisReply *r) {
    rstore_t *s = o->s;
    if (o->kind == K_SEQ || o->kind == K_PAGE) {
        on_log_reply(o, r);
        return;
    }
    if (o->kind == K_SESS || o->kind == K_COMMIT) {
        on_hist_reply(o, r);
        return;
    }
    if (o->kind == K_RSCAN) {
        on_rscan(o, r);
        return;
    }
    if (o->kind == K_RETAIN) {
        ts_store__rds_complete(o, 0, NULL);
        return;
    }
    if (o->kind == K_STATE) {
        long long st, ver;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            ts_store__rds_reply_int(r->element[0], &st) ||
            ts_store__rds_reply_int(r->element[1], &ver)) {
            ts_store__rds_complete(o, TS_ESTORE, NULL);
            return;
        }
        const redisReply *d = r->element[2];
        ts_buf_t *doc = d->type == REDIS_REPLY_STRING ? ts_buf_from(d->str, d->len) : NULL;
        ts_store_state_t v = {(uint64_t)ver, doc};
        if (o->cb.state) o->cb.state(st ? TS_ECONFLICT : 0, &v, o->ud);
        o->cb.state = NULL;
        ts_buf_unref(doc);
        ts_store__rds_complete(o, 0, NULL);
        return;
    }
    if (o->kind == K_DONE) {
        long long v;
        int rc = ts_store__rds_reply_int(r, &v) ? TS_ESTORE
                 : v == 0                       ? 0
                 : v == -1                      ? TS_ELIMIT
                 : v == -2                      ? TS_ENOTFOUND
                 : v == -3                      ? TS_EINVAL
                                                : TS_ESTALE;
        ts_store__rds_complete(o, rc, NULL);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        ts_store__rds_complete(o, TS_ESTORE, NULL);
        return;
    }
    ts_store_reg_t *rows = r->elements ? ts_xcalloc(r->elements, sizeof *rows) : NULL;
    size_t n = reg_rows(r, rows, r->elements);
    if (o->kind == K_LIST) {
        if (o->gather) gather_part(o->gather, 0, rows, n);
        else if (o->cb.list) o->cb.list(0, rows, n, o->ud);
        o->cb.list = NULL; /* answered */
        o->gather = NULL;
    } else if (!s->closing && s->on_expire) { /* K_SWEEP: no report after close */
        for (size_t i = 0; i < n; i++) s->on_expire(&rows[i], s->expire_ud);
    }
    free(rows);
    if (o->kind == K_LIST) {
        /* ts_store__rds_complete() would answer again: finish by hand */
        rop_free(o);
        s->pending--;
        if (s->closing && !s->pending) finish_close(s);
        return;
    }
    ts_store__rds_complete(o, 0, NULL);
}

static int r_reg_put(void *self, const ts_store_reg_t *e, uint64_t ttl_ms, ts_store_done_cb cb,
                     void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    int g = sess_group(s, e->key.session);
    char k[5][KEY_CAP], ip[KEY_CAP];
    size_t kl[5];
    kl[0] = entry_key(k[0], KEY_CAP, s, &e->key);
    kl[1] = gkey(k[1], KEY_CAP, s, "i", g, IDX[TS_STORE_BY_SESSION], e->key.session);
    kl[2] = gkey(k[2], KEY_CAP, s, "i", g, IDX[TS_STORE_BY_USER], e->user);
    kl[3] = gkey(k[3], KEY_CAP, s, "i", g, IDX[TS_STORE_BY_DEVICE], e->key.device);
    kl[4] = gkey(k[4], KEY_CAP, s, "exp", g, "", ts_slice("", 0));
    gkey(ip, KEY_CAP, s, "i", g, "", ts_slice("", 0));
    char ttl[24], max[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    /* the bound holds per group: entries spread over the groups by session */
    snprintf(max, sizeof max, "%u", (s->reg_max + REG_GROUPS - 1) / REG_GROUPS);
    char *a[6];
    const ts_slice_t f[6] = {e->key.session, e->key.device, e->key.tab, e->user, e->node, e->data};
    for (int i = 0; i < 6; i++) a[i] = ts_xstrndup((const char *)f[i].p, f[i].len);
    const char *keys[5] = {k[0], k[1], k[2], k[3], k[4]};
    const char *args[9] = {a[0], a[1], a[2], a[3], a[4], a[5], ttl, ip, max};
    rop_t *o = script_op(s, S_REG_PUT, K_DONE, keys, kl, 5, args, 9, ud);
    for (int i = 0; i < 6; i++) free(a[i]);
    o->cb.done = cb;
    send_script(o, 0);
    return 0;
}

static int r_reg_renew(void *self, const ts_store_reg_key_t *key, uint64_t ttl_ms,
                       ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    char k[2][KEY_CAP], ttl[24];
    int g = sess_group(s, key->session);
    size_t kl[2] = {entry_key(k[0], KEY_CAP, s, key),
                    gkey(k[1], KEY_CAP, s, "exp", g, "", ts_slice("", 0))};
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    const char *keys[2] = {k[0], k[1]};
    const char *args[1] = {ttl};
    rop_t *o = script_op(s, S_REG_RENEW, K_DONE, keys, kl, 2, args, 1, ud);
    o->cb.done = cb;
    send_script(o, 0);
    return 0;
}

static int r_reg_remove(void *self, const ts_store_reg_key_t *key, ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    char k[2][KEY_CAP], ip[KEY_CAP];
    int g = sess_group(s, key->session);
    size_t kl[2] = {entry_key(k[0], KEY_CAP, s, key),
                    gkey(k[1], KEY_CAP, s, "exp", g, "", ts_slice("", 0))};
    gkey(ip, KEY_CAP, s, "i", g, "", ts_slice("", 0));
    const char *keys[2] = {k[0], k[1]};
    const char *args[1] = {ip};
    rop_t *o = script_op(s, S_REG_REMOVE, K_DONE, keys, kl, 2, args, 1, ud);
    o->cb.done = cb;
    send_script(o, 0);
    return 0;
}

static int r_reg_list(void *self, ts_store_by_t by, ts_slice_t id, ts_store_reg_list_cb cb,
                      void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    if ((unsigned)by > TS_STORE_BY_DEVICE) return TS_EINVAL;
    char k[KEY_CAP];
    if (by == TS_STORE_BY_SESSION) { /* one group holds them all */
        size_t kl = gkey(k, KEY_CAP, s, "i", sess_group(s, id), IDX[by], id);
        const char *keys[1] = {k};
        rop_t *o = script_op(s, S_REG_LIST, K_LIST, keys, &kl, 1, NULL, 0, ud);
        o->cb.list = cb;
        send_script(o, 0);
        return 0;
    }
    reg_gather_t *gt = ts_xcalloc(1, sizeof *gt);
    gt->cb = cb;
    gt->ud = ud;
    gt->left = REG_GROUPS;
    for (int g = 0; g < REG_GROUPS; g++) {
        size_t kl = gkey(k, KEY_CAP, s, "i", g, IDX[by], id);
        const char *keys[1] = {k};
        rop_t *o = script_op(s, S_REG_LIST, K_LIST, keys, &kl, 1, NULL, 0, ud);
        o->gather = gt;
        send_script(o, 0);
    }
    return 0;
}

static void retain_scan(rstore_t *s);

/* Every sweep_ms: the expired entries, reported once (loop-relative timer,
 * unref'd: it keeps no loop alive), one script per group; then a page of
 * each group's sessions with a snapshot, each trimmed by retention. One
 * round of each in flight at a time. */
static void on_sweep(uv_timer_t *t) {
    rstore_t *s = t->data;
    if (s->closing || s->sweeping || !ts_rcl_is_up(s->rc)) return;
    for (int g = 0; g < REG_GROUPS; g++) {
        char k[KEY_CAP], ip[KEY_CAP];
        size_t kl = gkey(k, KEY_CAP, s, "exp", g, "", ts_slice("", 0));
        gkey(ip, KEY_CAP, s, "i", g, "", ts_slice("", 0));
        const char *keys[1] = {k};
        const char *args[2] = {ip, "1000"};
        rop_t *o = script_op(s, S_REG_SWEEP, K_SWEEP, keys, &kl, 1, args, 2, NULL);
        o->group = g;
        s->sweeping++;
        send_script(o, 0);
    }
    if (!s->retaining) retain_scan(s);
}

static void retain_scan(rstore_t *s) {
    for (int g = 0; g < REG_GROUPS; g++) {
        char k[KEY_CAP];
        size_t kl = gkey(k, KEY_CAP, s, "rt", g, "", ts_slice("", 0));
        const char *keys[1] = {k};
        const char *args[1] = {s->retain_cursor[g]};
        rop_t *o = script_op(s, S_RETAIN_SCAN, K_RSCAN, keys, &kl, 1, args, 1, NULL);
        o->group = g;
        s->retaining++;
        send_script(o, 0);
    }
}

static void log_keys(const rstore_t *s, ts_slice_t session, char k[2][KEY_CAP], size_t kl[2]);

/* {cursor, sessions}: the next cursor, and each session trimmed. */
static void on_rscan(rop_t *o, const redisReply *r) {
    rstore_t *s = o->s;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->len < sizeof s->retain_cursor[0]) {
        snprintf(s->retain_cursor[o->group], sizeof s->retain_cursor[0], "%s", r->element[0]->str);
        char ev[24], ms[24];
        snprintf(ev, sizeof ev, "%u", s->retain_events);
        snprintf(ms, sizeof ms, "%llu", (unsigned long long)s->retain_ms);
        const redisReply *list = r->element[1];
        for (size_t i = 0; i < list->elements && !s->closing; i++) {
            const redisReply *m = list->element[i];
            if (m->type != REDIS_REPLY_STRING || !m->len || m->len > TS_STORE_ID_MAX) continue;
            char k[2][KEY_CAP];
            size_t kl[2];
            log_keys(s, ts_slice(m->str, m->len), k, kl);
            const char *keys[2] = {k[0], k[1]};
            const char *args[2] = {ev, ms};
            send_script(script_op(s, S_RETAIN, K_RETAIN, keys, kl, 2, args, 2, NULL), 0);
        }
    }
    ts_store__rds_complete(o, 0, NULL);
}

/* ---- the log ---- */

/* A new session's epoch: random, nonzero, as text (the scripts keep it so). */
/* v in decimal, NUL-terminated: these run per commit, where snprintf was
 * 5 % of a node's instructions (callgrind). */
static void dec(char out[24], uint64_t v) { out[ts_fmt_u64(out, v)] = '\0'; }

/* a, b and c one after the other, cut to KEY_CAP - 1 (ids are bounded:
 * never), NUL-terminated; returns the length. */
static size_t cat3(char out[KEY_CAP], ts_slice_t a, ts_slice_t b, ts_slice_t c) {
    size_t n = 0;
    const ts_slice_t part[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        size_t k = TS_MIN(part[i].len, KEY_CAP - 1 - n);
        if (k) memcpy(out + n, part[i].p, k);
        n += k;
    }
    out[n] = '\0';
    return n;
}

/* A history's epoch: random and non-zero, from a generator (splitmix64)
 * seeded once per thread by the kernel; a getrandom per commit was a
 * system call per publish. */
static void new_epoch(char out[24]) {
    static __thread uint64_t state;
    while (!state) ts_random_bytes(&state, sizeof state);
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    dec(out, z ? z : 1);
}

static void log_keys(const rstore_t *s, ts_slice_t session, char k[2][KEY_CAP], size_t kl[2]) {
    char head[PREFIX_MAX + 4];
    size_t hl = ts_strlcpy(head, s->prefix, PREFIX_MAX + 1);
    memcpy(head + hl, "l:{", 4);
    kl[0] = cat3(k[0], ts_slice(head, hl + 3), session, TS_SLICE_LIT("}"));
    if (kl[0] + 3 > KEY_CAP) kl[0] = KEY_CAP - 3; /* ids are bounded: never */
    memcpy(k[1], k[0], kl[0]); /* not snprintf("%s:m", k[0]): -Wrestrict */
    memcpy(k[1] + kl[0], ":m", 3);
    kl[1] = kl[0] + 2;
}

/* The script that appends as `script` does (S_LOG_APPEND, S_COMMIT,
 * S_COMMIT_PLAIN) and starts a new log in this node's layout. */
static int appender(const rstore_t *s, int script) {
    if (s->new_logs == TS_STORE_RLOG_V2) return script;
    return script == S_LOG_APPEND ? S_LOG_APPEND1 : script == S_COMMIT ? S_COMMIT1 : S_COMMIT_PLAIN1;
}

/* The seq out of a stream id: "0-<seq>", or "<seq>-1" (layout 1, whose
 * seqs start at 1). 0: not an id. */
static uint64_t id_seq(const redisReply *id) {
    if (id->type != REDIS_REPLY_STRING) return 0;
    char *end;
    uint64_t ms = strtoull(id->str, &end, 10);
    if (*end != '-' || end == id->str) return 0;
    return ms ? ms : strtoull(end + 1, NULL, 10);
}

static void on_log_reply(rop_t *o, const redisReply *r) {
    rstore_t *s = o->s;
    if (o->kind == K_SEQ) {
        long long seq;
        if (ts_store__rds_reply_int(r, &seq) || seq <= 0) {
            ts_store__rds_complete(o, TS_ESTORE, NULL);
            return;
        }
        if (o->cb.seq) o->cb.seq(0, (uint64_t)seq, o->ud);
        o->cb.seq = NULL; /* answered */
        ts_store__rds_complete(o, 0, NULL);
        return;
    }
    long long last, trim;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        ts_store__rds_reply_int(r->element[0], &last) ||
        ts_store__rds_reply_int(r->element[1], &trim) || r->element[2]->type != REDIS_REPLY_ARRAY) {
        ts_store__rds_complete(o, TS_ESTORE, NULL);
        return;
    }
    const redisReply *rows = r->element[2];
    ts_store_event_t *ev = rows->elements ? ts_xcalloc(rows->elements, sizeof *ev) : NULL;
    size_t n = 0, bytes = 0;
    for (size_t i = 0; i < rows->elements; i++) {
        const redisReply *e = rows->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements < 2)
            continue; /* fields: e (the event) first, then t (its time) */
        const redisReply *val = e->element[1]->element[1];
        if (val->type != REDIS_REPLY_STRING) continue;
        if (n && bytes + val->len > o->max_bytes) break; /* the page's byte budget (one at least) */
        bytes += val->len;
        ev[n].seq = id_seq(e->element[0]);
        ev[n].data = ts_buf_from(val->str, val->len);
        n++;
    }
    ts_store_log_page_t page = {ev, n, (uint64_t)last, (uint64_t)trim};
    if (o->cb.log) o->cb.log(0, &page, o->ud);
    o->cb.log = NULL;
    for (size_t i = 0; i < n; i++) ts_buf_unref(ev[i].data);
    free(ev);
    (void)s;
    ts_store__rds_complete(o, 0, NULL);
}

static int r_log_append(void *self, ts_slice_t session, ts_buf_t *event, ts_store_seq_cb cb,
                        void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    if (!event->len) return TS_EINVAL;
    if (event->len > s->event_max) return TS_ETOOBIG;
    char k[2][KEY_CAP];
    size_t kl[2];
    log_keys(s, session, k, kl);
    const char *keys[2] = {k[0], k[1]};
    rop_t *o = script_op(s, appender(s, S_LOG_APPEND), K_SEQ, keys, kl, 2, NULL, 0, ud);
    /* the event is binary: appended by hand, with its length */
    o->argv[o->argc] = ts_xmemdup(event->data, event->len);
    o->argvlen[o->argc++] = event->len;
    char ep[24], now[24];
    new_epoch(ep);
    dec(now, ts_wall_ms());
    o->argv[o->argc] = ts_xstrdup(ep);
    o->argvlen[o->argc++] = strlen(ep);
    o->argv[o->argc] = ts_xstrdup(now);
    o->argvlen[o->argc++] = strlen(now);
    o->cb.seq = cb;
    sess_send(o);
    return 0;
}

static int r_log_read(void *self, ts_slice_t session, uint64_t after_seq, size_t max,
                      ts_store_log_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    if (!max) return TS_EINVAL;
    if (max > s->read_max) max = s->read_max;
    char k[2][KEY_CAP], a[2][24];
    size_t kl[2];
    log_keys(s, session, k, kl);
    snprintf(a[0], sizeof a[0], "%llu", (unsigned long long)after_seq);
    snprintf(a[1], sizeof a[1], "%zu", max);
    const char *keys[2] = {k[0], k[1]};
    const char *args[2] = {a[0], a[1]};
    rop_t *o = script_op(s, S_LOG_READ, K_PAGE, keys, kl, 2, args, 2, ud);
    o->cb.log = cb;
    o->max_bytes = s->read_max_bytes;
    sess_send(o);
    return 0;
}

static int r_log_trim(void *self, ts_slice_t session, uint64_t upto_seq, ts_store_done_cb cb,
                      void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    char k[2][KEY_CAP], a[24];
    size_t kl[2];
    log_keys(s, session, k, kl);
    snprintf(a, sizeof a, "%llu", (unsigned long long)upto_seq);
    const char *keys[2] = {k[0], k[1]};
    const char *args[1] = {a};
    rop_t *o = script_op(s, S_LOG_TRIM, K_DONE, keys, kl, 2, args, 1, ud);
    o->cb.done = cb;
    sess_send(o);
    return 0;
}

/* ---- the state ---- */

static int state_op(rstore_t *s, int script, ts_slice_t session, const char *const *args,
                    const size_t *alens, int nargs, ts_store_state_cb cb, void *ud) {
    if (s->closing) return TS_ECLOSED;
    char k[KEY_CAP], lk[2][KEY_CAP];
    size_t lkl[2];
    int n = snprintf(k, KEY_CAP, "%ss:{%.*s}", s->prefix, (int)session.len,
                     (const char *)session.p);
    log_keys(s, session, lk, lkl); /* lk[1]: the log's hash, where the epoch is */
    const char *keys[2] = {k, lk[1]};
    size_t klens[2] = {n < 0 ? 0 : (size_t)n, lkl[1]};
    rop_t *o = script_op(s, script, K_STATE, keys, klens, 2, NULL, 0, ud);
    for (int i = 0; i < nargs; i++) { /* binary-safe: a document may hold anything */
        o->argv[o->argc] = ts_xmemdup(args[i], alens[i]);
        o->argvlen[o->argc++] = alens[i];
    }
    o->cb.state = cb;
    sess_send(o);
    return 0;
}

static int r_state_get(void *self, ts_slice_t session, ts_store_state_cb cb, void *ud) {
    return state_op(self, S_STATE_GET, session, NULL, NULL, 0, cb, ud);
}

static int r_state_cas(void *self, ts_slice_t session, uint64_t expected, ts_buf_t *doc,
                       ts_store_state_cb cb, void *ud) {
    rstore_t *s = self;
    if (!doc || !doc->len) return TS_EINVAL;
    if (doc->len > s->state_max) return TS_ETOOBIG;
    char e[24];
    int n = snprintf(e, sizeof e, "%llu", (unsigned long long)expected);
    char ep[24];
    new_epoch(ep);
    const char *args[3] = {e, (const char *)doc->data, ep};
    size_t lens[3] = {(size_t)n, doc->len, strlen(ep)};
    return state_op(self, S_STATE_CAS, session, args, lens, 3, cb, ud);
}

/* ---- the history ---- */

static uint64_t num(const redisReply *r) {
    return r && r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10)
           : r && r->type == REDIS_REPLY_INTEGER ? (uint64_t)r->integer
                                                 : 0;
}

static void on_hist_reply(rop_t *o, const redisReply *r) {
    if (o->kind == K_SESS) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 7) {
            ts_store__rds_complete(o, TS_ESTORE, NULL);
            return;
        }
        const redisReply *sd = r->element[6];
        ts_buf_t *snap = sd->type == REDIS_REPLY_STRING ? ts_buf_from(sd->str, sd->len) : NULL;
        ts_store_sess_info_t info = {num(r->element[0]), num(r->element[1]), num(r->element[2]),
                                     num(r->element[3]), num(r->element[4]), num(r->element[5]),
                                     snap};
        if (!info.snap_seq && snap) {
            ts_buf_unref(snap);
            info.snap = NULL;
        }
        if (o->cb.sess) o->cb.sess(0, &info, o->ud);
        o->cb.sess = NULL;
        ts_buf_unref(info.snap);
        ts_store__rds_complete(o, 0, NULL);
        return;
    }
    long long st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 6 ||
        ts_store__rds_reply_int(r->element[0], &st)) {
        ts_store__rds_complete(o, TS_ESTORE, NULL);
        return;
    }
    static const int codes[] = {0, TS_EDUP, TS_ETOOOLD, TS_ESTALE, TS_ECONFLICT, TS_ESTORE};
    int rc = st >= 0 && st <= 5 ? codes[st] : TS_ESTORE;
    const redisReply *orig = r->element[4];
    ts_store_event_t ev = {num(r->element[2]), NULL};
    if (rc == TS_EDUP && orig->type == REDIS_REPLY_STRING) ev.data = ts_buf_from(orig->str, orig->len);
    ts_store_commit_res_t res = {num(r->element[1]), num(r->element[2]), num(r->element[3]),
                                 ev.data ? &ev : NULL, num(r->element[5])};
    int with = rc == 0 || rc == TS_EDUP || rc == TS_ECONFLICT || rc == TS_ESTALE;
    if (o->cb.commit) o->cb.commit(rc, with ? &res : NULL, o->ud);
    o->cb.commit = NULL;
    ts_buf_unref(ev.data);
    ts_store__rds_complete(o, 0, NULL);
}

static int r_sess_get(void *self, ts_slice_t session, ts_store_sess_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    char k[2][KEY_CAP], ep[24];
    size_t kl[2];
    log_keys(s, session, k, kl);
    new_epoch(ep);
    const char *keys[2] = {k[0], k[1]};
    const char *args[1] = {ep};
    rop_t *o = script_op(s, S_SESS_GET, K_SESS, keys, kl, 2, args, 1, ud);
    o->cb.sess = cb;
    sess_send(o);
    return 0;
}

/* Step one of a two-step fenced commit answered: the verdict goes into the
 * commit's arguments (ARGV[11], ARGV[12]), which may then go. */
static void on_fence(rop_t *o, int status, const redisReply *r) {
    rop_t *c = o->commit;
    rstore_t *s = o->s;
    if (!status && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        send_script(o, 1);
        return;
    }
    long long st, term = 0, exp;
    const char *verdict = "2"; /* unknown: the commit fails, its chain breaks */
    if (!status && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
        !ts_store__rds_reply_int(r->element[0], &st) && r->element[1]->type == REDIS_REPLY_STRING &&
        !ts_store__rds_reply_int(r->element[2], &term) &&
        !ts_store__rds_reply_int(r->element[3], &exp)) {
        /* ARGV[8] (argv[3 + 7]): the holder that must hold it; ARGV[7]: the term */
        int held = r->element[1]->len == c->argvlen[10] &&
                   memcmp(r->element[1]->str, c->argv[10], c->argvlen[10]) == 0 &&
                   (unsigned long long)term == strtoull(c->argv[9], NULL, 10);
        verdict = held ? "0" : "1";
    }
    char t[24];
    snprintf(t, sizeof t, "%lld", term);
    free(c->argv[13]);
    free(c->argv[14]);
    c->argv[13] = ts_xstrdup(verdict);
    c->argvlen[13] = 1;
    c->argv[14] = ts_xstrdup(t);
    c->argvlen[14] = strlen(t);
    c->held = 0;
    rop_free(o);
    fifo_drain(s);
}

/* ---- a plain commit without a script ----
 * A plain event on a layout-2 log (redis_lua.c) is one XADD: Redis numbers
 * it (0-*), and makes the log if the session has none. Right behind it, on
 * the same connection, an HMGET reads the epoch and the state's version for
 * the answer, and the layout. All are single commands on one slot: about
 * 2.2 us of Redis CPU against 6.5 for lua_commit_plain (redis-benchmark,
 * docs/PERFORMANCE.md "Across nodes").
 *
 * A layout-1 log refuses the XADD (its ids are larger than 0-*): the op is
 * then sent again as the script, which extends it. Every XADD of the
 * handle to that log fails the same way, so their scripts run in the order
 * the ops were issued. A session whose hash has no epoch yet (its first
 * entry, before any load) gets one, and the layout mark, right after
 * (HSETNX: whoever set it first wins, and every reader sees that one).
 *
 * Not atomic, and it needs not be: the HMGET runs after the XADD (one
 * connection, in order), so the version it reads is at least the one the
 * entry was appended under: a state change by another node in between
 * makes the answer's version newer than the entry's, which the session
 * takes as "the cache may be stale" (reloaded), never the other way round.
 * Under a Cluster slot migration the HMGET may run on the old node before
 * the XADD on the new one; while the slot's keys are split no script that
 * changes the version can run (they name both keys), so it reads the same. */

enum { FAST_APPEND = 1, FAST_MARK = 2 }; /* rop_t.fast: the step under way */

/* For /metrics (ts_store_stats): every loop's handle counts here, as the
 * embedded store's one process-wide handle does. */
static _Atomic uint64_t plain_xadd, plain_script;

static void fast_result(rop_t *o, int status, const redisReply *r) {
    (void)r; /* the answer is in o */
    if (status) {
        ts_store__rds_complete(o, status, NULL);
        return;
    }
    ts_store_commit_res_t res = {o->fast_ep, o->fast_seq, o->fast_hv, NULL, 0};
    plain_xadd++;
    if (o->cb.commit) o->cb.commit(0, &res, o->ud);
    o->cb.commit = NULL;
    ts_store__rds_complete(o, 0, NULL);
}

static void on_fast_reply(int status, const redisReply *r, void *ud);

/* Queues one command of the step; a command that cannot be queued fails
 * the step (the ones queued before it still answer). */
static void fast_cmd(rop_t *o, int argc, const char **argv, const size_t *lens, unsigned flags) {
    o->fast_left++;
    int rc = ts_rcl_cmdf(o->s->rc, argv[1], lens[1], flags, argc, argv, lens, on_fast_reply, o);
    if (rc) {
        o->fast_fail = ts_store__rds_failure(rc);
        o->fast_left--;
    }
}

/* The HMGET's answer (last in each step): ep, hv, last. */
static void fast_read(rop_t *o, const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        o->fast_fail = TS_ESTORE;
        return;
    }
    o->fast_ep = num(r->element[0]);
    o->fast_hv = num(r->element[1]);
    const redisReply *last = r->element[2];
    o->fast_layout1 = last->type == REDIS_REPLY_STRING && strcmp(last->str, "v2") != 0;
    o->fast_unmarked = last->type != REDIS_REPLY_STRING;
}

static void fast_step_done(rop_t *o) {
    if (o->fast_left > 0) return;
    if (o->fast_fail) {
        ts_store__rds_gate(o, o->fast_fail, NULL, fast_result);
        return;
    }
    if (!o->fast_seq) { /* refused: a layout-1 log (or Redis before 7.0) */
        plain_script++;
        o->fast = 0;
        send_script(o, 0);
        return;
    }
    if (o->fast_layout1) { /* appended 0-<n> to a log whose hash says layout 1 */
        ts_warn("store", "redis: %s: a layout-1 hash without its stream", o->argv[1]);
        ts_store__rds_gate(o, TS_ESTORE, NULL, fast_result);
        return;
    }
    if (o->fast == FAST_APPEND && (!o->fast_ep || o->fast_unmarked)) {
        o->fast = FAST_MARK;
        const char *ea[4] = {"HSETNX", o->argv[1], "ep", o->argv[3]};
        size_t el[4] = {6, o->argvlen[1], 2, o->argvlen[3]};
        const char *la[4] = {"HSETNX", o->argv[1], "last", "v2"};
        size_t ll[4] = {6, o->argvlen[1], 4, 2};
        const char *ha[5] = {"HMGET", o->argv[1], "ep", "hv", "last"};
        size_t hl[5] = {5, o->argvlen[1], 2, 2, 4};
        fast_cmd(o, 4, ea, el, TS_RCONN_WRITE);
        fast_cmd(o, 4, la, ll, TS_RCONN_WRITE);
        fast_cmd(o, 5, ha, hl, 0);
        if (!o->fast_left) fast_step_done(o);
        return;
    }
    if (!o->fast_ep) o->fast_fail = TS_ESTORE; /* marked, and still no epoch */
    ts_store__rds_gate(o, o->fast_fail, NULL, fast_result);
}

static void on_fast_reply(int status, const redisReply *r, void *ud) {
    rop_t *o = ud;
    o->fast_left--;
    if (status) {
        o->fast_fail = ts_store__rds_failure(status);
    } else if (r->type == REDIS_REPLY_ARRAY) {
        fast_read(o, r);
    } else if (o->fast == FAST_APPEND && r->type == REDIS_REPLY_STRING) {
        o->fast_seq = id_seq(r); /* the XADD's id */
    } else if (o->fast == FAST_MARK && r->type == REDIS_REPLY_ERROR) {
        o->fast_fail = TS_ESTORE;
    }
    /* else the step's XADD refused (an error reply): fast_seq stays 0 */
    fast_step_done(o);
}

/* o is lua_commit_plain's op: argv = the log, its hash, the event, an
 * epoch, the time. */
static void send_fast(rop_t *o) {
    o->fast = FAST_APPEND;
    const char *xa[7] = {"XADD", o->argv[0], "0-*", "e", o->argv[2], "t", o->argv[4]};
    size_t xl[7] = {4, o->argvlen[0], 3, 1, o->argvlen[2], 1, o->argvlen[4]};
    const char *ha[5] = {"HMGET", o->argv[1], "ep", "hv", "last"};
    size_t hl[5] = {5, o->argvlen[1], 2, 2, 4};
    fast_cmd(o, 7, xa, xl, TS_RCONN_WRITE);
    if (!o->fast_left) { /* not even queued: nothing was sent */
        ts_store__rds_defer(o->s, o, o->fast_fail);
        return;
    }
    fast_cmd(o, 5, ha, hl, 0);
}

static int r_commit(void *self, ts_slice_t session, const ts_store_commit_t *c,
                    ts_store_commit_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    if (c->event->len > s->event_max) return TS_ETOOBIG;
    if (c->client.len && (ts_store__check_id(c->client) || !c->mut)) return TS_EINVAL;
    char k[4][KEY_CAP];
    size_t kl[4];
    log_keys(s, session, k, kl);
    if (!c->client.len && c->if_ver == TS_STORE_ANY_VER && !c->is_state && !c->chain &&
        !c->fence.len) {
        /* a plain event: XADD (send_fast), or the script without
         * conditions when that appends nothing */
        char ep[24], now[24];
        new_epoch(ep);
        dec(now, ts_wall_ms());
        const char *keys[2] = {k[0], k[1]};
        rop_t *o = script_op(s, appender(s, S_COMMIT_PLAIN), K_COMMIT, keys, kl, 2, NULL, 0, ud);
        o->argv[o->argc] = ts_xmemdup(c->event->data, c->event->len); /* binary */
        o->argvlen[o->argc++] = c->event->len;
        o->argv[o->argc] = ts_xstrdup(ep);
        o->argvlen[o->argc++] = strlen(ep);
        o->argv[o->argc] = ts_xstrdup(now);
        o->argvlen[o->argc++] = strlen(now);
        o->cb.commit = cb;
        if (s->new_logs == TS_STORE_RLOG_V2) o->fast = FAST_APPEND;
        else plain_script++; /* an XADD would start a new log in layout 2 */
        sess_send(o);
        return 0;
    }
    kl[2] = cat3(k[2], ts_slice(k[0], kl[0]), TS_SLICE_LIT(":w:"), c->client);
    kl[3] = cat3(k[3], ts_slice_str(s->prefix), TS_SLICE_LIT("lease:"), c->fence);
    /* the fence: read here when the lease shares the session's slot (always
     * on one server), else in a first step on its own slot (Cluster, or not
     * known yet) */
    const char *mode = "0";
    if (c->fence.len)
        mode = ts_rcl_is_cluster(s->rc) != 0 && ts_rcl_slot(k[3], kl[3]) != ts_rcl_slot(k[0], kl[0])
                   ? "v"
                   : "1";
    char mut[24], ifv[24], chain[24], term[24], ep[24];
    dec(mut, c->mut);
    if (c->if_ver == TS_STORE_ANY_VER) memcpy(ifv, "any", 4);
    else dec(ifv, c->if_ver);
    dec(chain, c->chain);
    dec(term, c->fence_term);
    new_epoch(ep);
    char *client = ts_xstrndup((const char *)c->client.p, c->client.len);
    char *holder = ts_xstrndup((const char *)c->fence_holder.p, c->fence_holder.len);
    char *fence = ts_xstrndup((const char *)c->fence.p, c->fence.len);
    const char *keys[4] = {k[0], k[1], k[2], k[3]};
    const char *args[12] = {client, mut, ifv, c->is_state ? "1" : "0", chain, term, holder, ep,
                            mode, "0", "0", fence};
    int nkeys = mode[0] == '1' ? 4 : 3; /* the lease is named only where it is read */
    rop_t *o = script_op(s, appender(s, S_COMMIT), K_COMMIT, keys, kl, nkeys, NULL, 0, ud);
    /* ARGV[1], the event, is binary: first, by hand */
    o->argv[o->argc] = ts_xmemdup(c->event->data, c->event->len);
    o->argvlen[o->argc++] = c->event->len;
    for (int i = 0; i < 12; i++) {
        o->argv[o->argc] = ts_xstrdup(args[i]);
        o->argvlen[o->argc++] = strlen(args[i]);
    }
    free(client);
    free(holder);
    free(fence);
    o->cb.commit = cb;
    if (mode[0] != 'v') {
        sess_send(o);
        return 0;
    }
    /* argv: 3 keys, then ARGV[1..13] at 3..15; the verdict slots are ARGV[11],
     * ARGV[12] (argv[13], argv[14]), the holder ARGV[8] and term ARGV[7] */
    ts_assert(o->argc == 16);
    o->held = 1;
    ts_list_insert_tail(&s->fifo, &o->link);
    const char *fkeys[1] = {k[3]};
    rop_t *f = script_op(s, S_GET, K_FENCE, fkeys, &kl[3], 1, NULL, 0, NULL);
    f->commit = o;
    send_script(f, 0);
    return 0;
}

static int r_snap_put(void *self, ts_slice_t session, uint64_t seq, uint64_t ver, ts_buf_t *doc,
                      ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    if (doc->len > s->state_max) return TS_ETOOBIG;
    char k[2][KEY_CAP], a[2][24];
    size_t kl[2];
    log_keys(s, session, k, kl);
    snprintf(a[0], sizeof a[0], "%llu", (unsigned long long)seq);
    snprintf(a[1], sizeof a[1], "%llu", (unsigned long long)ver);
    const char *keys[2] = {k[0], k[1]};
    const char *args[2] = {a[0], a[1]};
    rop_t *o = script_op(s, S_SNAP_PUT, K_DONE, keys, kl, 2, args, 2, ud);
    o->argv[o->argc] = ts_xmemdup(doc->data, doc->len);
    o->argvlen[o->argc++] = doc->len;
    o->cb.done = cb;
    /* the group's retention set learns the session, beside the snapshot
     * (another slot: not atomic; a snapshot whose SADD was lost is retained
     * from its session's next snapshot on) */
    char rk[KEY_CAP];
    size_t rkl = gkey(rk, KEY_CAP, s, "rt", sess_group(s, session), "", ts_slice("", 0));
    const char *sadd[3] = {"SADD", rk, (const char *)session.p};
    size_t slens[3] = {4, rkl, session.len};
    ts_rcl_cmd(s->rc, rk, rkl, 3, sadd, slens, NULL, NULL);
    sess_send(o);
    return 0;
}

/* What applies to Redis: how plain commits went (the rest is the
 * embedded store's and stays 0). */
static int r_stats(void *self, ts_store_stats_t *out) {
    (void)self;
    *out = (ts_store_stats_t){0};
    out->plain_xadd = plain_xadd;
    out->plain_script = plain_script;
    return 0;
}

const ts_store_ops_t ts_store_redis_ops = {
    .name = "redis",
    .stats = r_stats,
    .open = r_open,
    .close = r_close,
    .attach = r_attach,
    .reg_put = r_reg_put,
    .reg_renew = r_reg_renew,
    .reg_remove = r_reg_remove,
    .reg_list = r_reg_list,
    .log_append = r_log_append,
    .log_read = r_log_read,
    .log_trim = r_log_trim,
    .state_get = r_state_get,
    .state_cas = r_state_cas,
    .sess_get = r_sess_get,
    .commit = r_commit,
    .snap_put = r_snap_put,
    .lease_acquire = r_lease_acquire,
    .lease_renew = r_lease_renew,
    .lease_release = r_lease_release,
    .lease_transfer = r_lease_transfer,
    .lease_get = r_lease_get,
    .subscribe = ts_store__rds_subscribe,
    .unsubscribe = ts_store__rds_unsubscribe,
    .publish = ts_store__rds_publish,
    .numsub = ts_store__rds_numsub,
};
