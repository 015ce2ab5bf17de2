/* redis.c - the "redis" store backend, first part (issue #12): leases with
 * fencing terms and publish/subscribe, over two Redis connections driven on
 * libuv (rconn_int.h): one for commands, one in subscribe mode. Each lease
 * verb is one Lua script (loaded by EVAL's own cache: EVALSHA with the
 * script's SHA-1, EVAL once when Redis answers NOSCRIPT), atomic on the
 * server, with Redis's clock (TIME), so that every node sees one order of
 * grants and one expiry. A lease is one hash, {prefix}lease:<name>, with
 * the holder (h, "" when nobody), the last granted term (t, never reset) and
 * the expiry in ms (x).
 *
 * Not built yet (docs/STATUS.md): the registry, logs, state, commits and
 * snapshots — those verbs answer TS_EINVAL at once — and TLS, Cluster. The
 * daemon does not offer this backend until they are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_map.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "store/rconn_int.h"
#include "store/ts_store.h"

#include <nettle/sha1.h>

#define PREFIX_MAX 64

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
    ts_rconn_t *cmd, *sub;
    char prefix[PREFIX_MAX + 1];
    ts_map_t chans;
    int pending; /* ops whose callback has not run */
    int closing, closed_conns;
    ts_store_close_cb close_cb;
    void *close_ud;
    uv_timer_t defer; /* callbacks of ops that never reached Redis */
    ts_list_t deferred;
} rstore_t;

/* ---- the lease scripts ----
 * KEYS[1] = the lease hash. Every script answers {status, holder, term,
 * expires_at_ms}: status 0 ok, 1 held by another (acquire), 2 stale. */
#define LUA_NOW                                                                \
    "local tm = redis.call('TIME') local now = tm[1] * 1000 + math.floor(tm[2] / 1000) "
#define LUA_READ                                                               \
    "local v = redis.call('HMGET', KEYS[1], 'h', 't', 'x') "                   \
    "local h, t, x = v[1] or '', tonumber(v[2] or '0'), tonumber(v[3] or '0') " \
    "if x <= now then h = '' end "

static const char lua_acquire[] =
    LUA_NOW LUA_READ
    "local ttl = tonumber(ARGV[2]) "
    "if h ~= '' and h ~= ARGV[1] then return {1, h, t, x} end "
    "if h == '' then t = t + 1 end "
    "redis.call('HSET', KEYS[1], 'h', ARGV[1], 't', t, 'x', now + ttl) "
    "return {0, ARGV[1], t, now + ttl}";

static const char lua_renew[] =
    LUA_NOW LUA_READ
    "if h ~= ARGV[1] or t ~= tonumber(ARGV[2]) then return {2, h, t, x} end "
    "local e = now + tonumber(ARGV[3]) "
    "redis.call('HSET', KEYS[1], 'x', e) "
    "return {0, h, t, e}";

static const char lua_release[] =
    LUA_NOW LUA_READ
    "if h ~= ARGV[1] or t ~= tonumber(ARGV[2]) then return {2, h, t, x} end "
    "redis.call('HSET', KEYS[1], 'h', '', 'x', 0) "
    "return {0, '', t, 0}";

/* A compare-and-set on the last granted term, held or lapsed or released. */
static const char lua_transfer[] =
    LUA_NOW LUA_READ
    "if t == 0 or t ~= tonumber(ARGV[1]) then return {2, h, t, x} end "
    "local e = now + tonumber(ARGV[3]) "
    "redis.call('HSET', KEYS[1], 'h', ARGV[2], 't', t + 1, 'x', e) "
    "return {0, ARGV[2], t + 1, e}";

static const char lua_get[] = LUA_NOW LUA_READ "return {0, h, t, x}";

typedef struct script {
    const char *src;
    char sha[41];
} script_t;

static script_t scripts[] = {{lua_acquire, ""}, {lua_renew, ""}, {lua_release, ""},
                             {lua_transfer, ""}, {lua_get, ""}};
enum { S_ACQUIRE, S_RENEW, S_RELEASE, S_TRANSFER, S_GET };

/* EVALSHA's name of a script: the hex SHA-1 of its text. */
static void sha1_hex(const char *src, char out[41]) {
    struct sha1_ctx ctx;
    uint8_t d[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(src), (const uint8_t *)src);
    sha1_digest(&ctx, sizeof d, d);
    for (int i = 0; i < SHA1_DIGEST_SIZE; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- ops ---- */

typedef enum { K_LEASE, K_DONE } op_kind_t;

typedef struct rop {
    ts_list_t link; /* in deferred */
    rstore_t *s;
    op_kind_t kind;
    int script;
    union {
        ts_store_lease_cb lease;
        ts_store_done_cb done;
    } cb;
    void *ud;
    int status; /* deferred */
    /* for a NOSCRIPT retry with EVAL: the arguments again */
    int argc;
    char *argv[8];
    size_t argvlen[8];
    char name[TS_STORE_ID_MAX + 1];
} rop_t;

static void rop_free(rop_t *o) {
    for (int i = 0; i < o->argc; i++) free(o->argv[i]);
    free(o);
}

static void finish_close(rstore_t *s);

static void complete(rop_t *o, int status, const ts_store_lease_t *lease) {
    rstore_t *s = o->s;
    if (o->kind == K_LEASE) {
        if (o->cb.lease) o->cb.lease(status, lease, o->ud);
    } else if (o->cb.done) {
        o->cb.done(status, o->ud);
    }
    rop_free(o);
    s->pending--;
    if (s->closing && !s->pending) finish_close(s);
}

static void run_deferred(uv_timer_t *t) {
    rstore_t *s = t->data;
    while (!ts_list_empty(&s->deferred)) {
        rop_t *o = ts_list_entry(s->deferred.next, rop_t, link);
        ts_list_remove(&o->link);
        complete(o, o->status, NULL);
    }
}

/* An op that failed before Redis saw it: its callback comes from the loop. */
static void defer(rstore_t *s, rop_t *o, int status) {
    o->status = status;
    ts_list_insert_tail(&s->deferred, &o->link);
    uv_timer_start(&s->defer, run_deferred, 0, 0);
}

static int reply_int(const redisReply *r, long long *out) {
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

static void on_script(ts_rconn_t *c, int status, const redisReply *r, void *ud) {
    (void)c;
    rop_t *o = ud;
    if (status) {
        complete(o, status == TS_ECLOSED ? TS_ECLOSED : TS_ESTORE, NULL);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOSCRIPT", 8) == 0) { /* not in Redis's cache yet */
            send_script(o, 1);
            return;
        }
        ts_warn("store", "redis: a lease script failed: %s", r->str);
        complete(o, TS_ESTORE, NULL);
        return;
    }
    long long st, term, exp;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || reply_int(r->element[0], &st) ||
        r->element[1]->type != REDIS_REPLY_STRING || reply_int(r->element[2], &term) ||
        reply_int(r->element[3], &exp)) {
        complete(o, TS_ESTORE, NULL);
        return;
    }
    ts_store_lease_t l = {ts_slice_str(o->name), ts_slice(r->element[1]->str, r->element[1]->len),
                          (uint64_t)term, (uint64_t)(r->element[1]->len ? exp : 0)};
    int rc = st == 0 ? 0 : st == 1 ? TS_EHELD : TS_ESTALE;
    if (o->script == S_RELEASE) {
        complete(o, rc, NULL);
        return;
    }
    complete(o, rc, &l);
}

static void send_script(rop_t *o, int eval) {
    script_t *sc = &scripts[o->script];
    const char *argv[12];
    size_t lens[12];
    int n = 0;
    argv[n] = eval ? "EVAL" : "EVALSHA";
    lens[n++] = strlen(argv[0]);
    argv[n] = eval ? sc->src : sc->sha;
    lens[n++] = strlen(argv[1]);
    argv[n] = "1";
    lens[n++] = 1;
    for (int i = 0; i < o->argc; i++) {
        argv[n] = o->argv[i];
        lens[n++] = o->argvlen[i];
    }
    int rc = ts_rconn_cmd(o->s->cmd, n, argv, lens, on_script, o);
    if (rc) defer(o->s, o, rc == TS_ECLOSED ? TS_ECLOSED : TS_ESTORE);
}

/* A lease op: KEYS[1] = {prefix}lease:<name>, then the ARGV strings. */
static int lease_op(rstore_t *s, int script, ts_slice_t name, const char *const *args, int nargs,
                    ts_store_lease_cb lcb, ts_store_done_cb dcb, void *ud) {
    if (s->closing) return TS_ECLOSED;
    rop_t *o = ts_xcalloc(1, sizeof *o);
    o->s = s;
    o->script = script;
    o->kind = script == S_RELEASE ? K_DONE : K_LEASE; /* release answers without a lease */
    if (o->kind == K_DONE) o->cb.done = dcb;
    else o->cb.lease = lcb;
    o->ud = ud;
    memcpy(o->name, name.p, name.len);
    o->name[name.len] = '\0';
    size_t kl = strlen(s->prefix) + 6 + name.len;
    o->argv[0] = ts_xmalloc(kl + 1);
    snprintf(o->argv[0], kl + 1, "%slease:%s", s->prefix, o->name);
    o->argvlen[0] = kl;
    o->argc = 1;
    for (int i = 0; i < nargs; i++) {
        o->argv[o->argc] = ts_xstrdup(args[i]);
        o->argvlen[o->argc] = strlen(args[i]);
        o->argc++;
    }
    s->pending++;
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

/* ---- publish / subscribe ---- */

static void on_push(ts_rconn_t *c, const redisReply *r, void *ud) {
    (void)c;
    rstore_t *s = ud;
    /* ["message", channel, payload] or ["smessage", ...] */
    const redisReply *ch = r->element[1], *pl = r->element[2];
    if (r->elements != 3 || ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING)
        return;
    size_t pl_len = strlen(s->prefix);
    if (ch->len < pl_len || memcmp(ch->str, s->prefix, pl_len) != 0) return;
    rchan_t *rc = ts_map_get(&s->chans, ch->str + pl_len, ch->len - pl_len);
    if (!rc) return; /* unsubscribed meanwhile */
    ts_buf_t *msg = ts_buf_from(pl->str, pl->len);
    ts_slice_t name = ts_slice(rc->key, rc->klen);
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &rc->subs) {
        rsub_t *sub = ts_list_entry(it, rsub_t, link);
        sub->on_msg(name, msg, sub->ud);
    }
    ts_buf_unref(msg);
}

static void on_sub_done(ts_rconn_t *c, int status, const redisReply *r, void *ud) {
    (void)c;
    rop_t *o = ud;
    int rc = status ? (status == TS_ECLOSED ? TS_ECLOSED : TS_ESTORE)
                    : r->type == REDIS_REPLY_ERROR ? TS_ESTORE : 0;
    complete(o, rc, NULL);
}

static char *prefixed(const rstore_t *s, ts_slice_t ch) {
    size_t pl = strlen(s->prefix);
    char *k = ts_xmalloc(pl + ch.len + 1);
    memcpy(k, s->prefix, pl);
    memcpy(k + pl, ch.p, ch.len);
    k[pl + ch.len] = '\0';
    return k;
}

static rop_t *done_op(rstore_t *s, ts_store_done_cb cb, void *ud) {
    rop_t *o = ts_xcalloc(1, sizeof *o);
    o->s = s;
    o->kind = K_DONE;
    o->cb.done = cb;
    o->ud = ud;
    s->pending++;
    return o;
}

static int r_subscribe(void *self, ts_slice_t channel, ts_store_msg_cb on_msg, void *msg_ud,
                       ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    rchan_t *c = ts_map_get(&s->chans, (const char *)channel.p, channel.len);
    if (!c) {
        c = ts_xcalloc(1, sizeof *c + channel.len);
        ts_list_init(&c->subs);
        c->klen = channel.len;
        memcpy(c->key, channel.p, channel.len);
        ts_map_put(&s->chans, c->key, c->klen, c);
    }
    ts_list_t *it;
    int have = 0;
    TS_LIST_FOREACH(it, &c->subs) {
        rsub_t *x = ts_list_entry(it, rsub_t, link);
        if (x->on_msg == on_msg && x->ud == msg_ud) have = 1;
    }
    if (!have) {
        rsub_t *x = ts_xcalloc(1, sizeof *x);
        x->on_msg = on_msg;
        x->ud = msg_ud;
        ts_list_insert_tail(&c->subs, &x->link);
    }
    rop_t *o = done_op(s, cb, ud);
    /* Every subscribe waits for Redis's confirmation, so that its callback
     * means "messages published from now on reach you" (a second local
     * subscriber of a channel: Redis confirms the channel again). */
    char *k = prefixed(s, channel);
    int rc = ts_rconn_subscribe(s->sub, TS_RCONN_SUBSCRIBE, k, on_sub_done, o);
    free(k);
    if (rc) defer(s, o, TS_ESTORE);
    return 0;
}

static int r_unsubscribe(void *self, ts_slice_t channel, ts_store_msg_cb on_msg, void *msg_ud,
                         ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    rchan_t *c = ts_map_get(&s->chans, (const char *)channel.p, channel.len);
    rsub_t *found = NULL;
    if (c) {
        ts_list_t *it;
        TS_LIST_FOREACH(it, &c->subs) {
            rsub_t *x = ts_list_entry(it, rsub_t, link);
            if (x->on_msg == on_msg && x->ud == msg_ud) found = x;
        }
    }
    rop_t *o = done_op(s, cb, ud);
    if (!found) {
        defer(s, o, TS_ENOTFOUND);
        return 0;
    }
    ts_list_remove(&found->link);
    free(found);
    if (!ts_list_empty(&c->subs)) { /* others still listen here */
        defer(s, o, 0);
        return 0;
    }
    ts_map_del(&s->chans, c->key, c->klen);
    char *k = prefixed(s, channel);
    free(c);
    int rc = ts_rconn_unsubscribe(s->sub, TS_RCONN_SUBSCRIBE, k, on_sub_done, o);
    free(k);
    if (rc) defer(s, o, 0); /* nobody local listens any more either way */
    return 0;
}

static int r_publish(void *self, ts_slice_t channel, ts_buf_t *msg, ts_store_done_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return TS_ECLOSED;
    rop_t *o = done_op(s, cb, ud);
    char *k = prefixed(s, channel);
    const char *argv[] = {"PUBLISH", k, (const char *)msg->data};
    size_t lens[] = {7, strlen(k), msg->len};
    int rc = ts_rconn_cmd(s->cmd, 3, argv, lens, on_sub_done, o);
    free(k);
    if (rc) defer(s, o, rc == TS_ECLOSED ? TS_ECLOSED : TS_ESTORE);
    return 0;
}

/* ---- open, close ---- */

static void on_cmd_state(ts_rconn_t *c, int up, const char *why, void *ud) {
    (void)c;
    (void)ud;
    if (!up) ts_debug("store", "redis: command connection down: %s", why);
}

static void conn_closed(void *ud) {
    rstore_t *s = ud;
    if (++s->closed_conns < 2) return;
    uv_close((uv_handle_t *)&s->defer, NULL);
    ts_store_close_cb cb = s->close_cb;
    void *cud = s->close_ud;
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
    free(s); /* the defer timer's close callback is NULL: nothing reads s */
    if (cb) cb(cud);
}

static void finish_close(rstore_t *s) {
    if (s->closed_conns || !s->cmd) return;
    ts_rconn_t *cmd = s->cmd, *sub = s->sub;
    s->cmd = s->sub = NULL;
    ts_rconn_close(cmd, conn_closed, s);
    ts_rconn_close(sub, conn_closed, s);
}

static void r_close(void *self, ts_store_close_cb cb, void *ud) {
    rstore_t *s = self;
    if (s->closing) return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    /* accepted ops finish first (their replies come), then the connections go */
    if (!s->pending) finish_close(s);
}

static int r_open(void **self, const ts_store_cfg_t *cfg, uv_loop_t *loop, char *err,
                  size_t errlen) {
    ts_rconn_opts_t o;
    if (!cfg->redis_url || ts_rconn_parse_url(cfg->redis_url, &o, err, errlen) != 0) {
        if (!cfg->redis_url && err && errlen) snprintf(err, errlen, "store: no Redis URL");
        return TS_EINVAL;
    }
    if (o.tls) {
        if (err && errlen) snprintf(err, errlen, "store: rediss:// (TLS to Redis) is not built yet");
        return TS_EINVAL;
    }
    const char *prefix = cfg->redis_prefix ? cfg->redis_prefix : "ts:";
    if (strlen(prefix) > PREFIX_MAX) {
        if (err && errlen) snprintf(err, errlen, "store: Redis key prefix over %d bytes", PREFIX_MAX);
        return TS_EINVAL;
    }
    for (size_t i = 0; i < TS_ARRAY_LEN(scripts); i++)
        if (!scripts[i].sha[0]) sha1_hex(scripts[i].src, scripts[i].sha);
    rstore_t *s = ts_xcalloc(1, sizeof *s);
    s->loop = loop;
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    ts_list_init(&s->deferred);
    uv_timer_init(loop, &s->defer);
    s->defer.data = s;
    s->cmd = ts_rconn_new(loop, &o, on_cmd_state, NULL, s);
    s->sub = ts_rconn_new(loop, &o, NULL, on_push, s);
    *self = s;
    return 0;
}

/* ---- what is not built yet: refused at once (docs/STATUS.md) ---- */

static int r_attach(void *self, uv_loop_t *loop, void **out) {
    (void)self, (void)loop, (void)out;
    return TS_EINVAL; /* each loop opens its own connections: not built yet */
}
static int r_reg_put(void *self, const ts_store_reg_t *e, uint64_t ttl_ms, ts_store_done_cb cb,
                     void *ud) {
    (void)self, (void)e, (void)ttl_ms, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_reg_renew(void *self, const ts_store_reg_key_t *k, uint64_t ttl_ms,
                       ts_store_done_cb cb, void *ud) {
    (void)self, (void)k, (void)ttl_ms, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_reg_remove(void *self, const ts_store_reg_key_t *k, ts_store_done_cb cb, void *ud) {
    (void)self, (void)k, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_reg_list(void *self, ts_store_by_t by, ts_slice_t id, ts_store_reg_list_cb cb,
                      void *ud) {
    (void)self, (void)by, (void)id, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_log_append(void *self, ts_slice_t session, ts_buf_t *event, ts_store_seq_cb cb,
                        void *ud) {
    (void)self, (void)session, (void)event, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_log_read(void *self, ts_slice_t session, uint64_t after_seq, size_t max,
                      ts_store_log_cb cb, void *ud) {
    (void)self, (void)session, (void)after_seq, (void)max, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_log_trim(void *self, ts_slice_t session, uint64_t upto_seq, ts_store_done_cb cb,
                      void *ud) {
    (void)self, (void)session, (void)upto_seq, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_state_get(void *self, ts_slice_t session, ts_store_state_cb cb, void *ud) {
    (void)self, (void)session, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_state_cas(void *self, ts_slice_t session, uint64_t expected, ts_buf_t *doc,
                       ts_store_state_cb cb, void *ud) {
    (void)self, (void)session, (void)expected, (void)doc, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_sess_get(void *self, ts_slice_t session, ts_store_sess_cb cb, void *ud) {
    (void)self, (void)session, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_commit(void *self, ts_slice_t session, const ts_store_commit_t *c,
                    ts_store_commit_cb cb, void *ud) {
    (void)self, (void)session, (void)c, (void)cb, (void)ud;
    return TS_EINVAL;
}
static int r_snap_put(void *self, ts_slice_t session, uint64_t seq, uint64_t ver, ts_buf_t *doc,
                      ts_store_done_cb cb, void *ud) {
    (void)self, (void)session, (void)seq, (void)ver, (void)doc, (void)cb, (void)ud;
    return TS_EINVAL;
}

const ts_store_ops_t ts_store_redis_ops = {
    .name = "redis",
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
    .subscribe = r_subscribe,
    .unsubscribe = r_unsubscribe,
    .publish = r_publish,
};
