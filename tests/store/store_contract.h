/* store_contract.h - the store contract: backend-independent tests driven
 * only through the ts_store_* wrappers on a real libuv loop. Included by
 * test_store_<backend>.c, which provides an sc_env_t per configuration and
 * lists SC_CONTRACT_TESTS(&env) in its cmocka group; a new backend passes the
 * same suite. Every callback checks THE CALLBACK RULE of ts_store.h: it is
 * never called from inside its call (t->in_call) and exactly once. */
#ifndef TS_STORE_CONTRACT_H
#define TS_STORE_CONTRACT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "store/ts_store.h"

/* Helpers and contract tests: a file that includes this header for the
 * helpers alone (test_store_sqlite.c) leaves the tests unused. */
#define SC_FN static __attribute__((unused))

#define assert_ts_err(got, want)                                               \
    do {                                                                       \
        int g_ = (got), w_ = (want);                                           \
        if (g_ != w_)                                                          \
            fail_msg("%s: got %s (%d), want %s (%d)", #got, ts_err_name(g_), g_, \
                     ts_err_name(w_), w_);                                     \
    } while (0)

/* One backend configuration. The test file fills ops and cfg; sc_setup gives
 * each test fresh persistent storage through `fresh` (may be NULL). */
typedef struct sc_env {
    const char *label;
    const ts_store_ops_t *ops;
    ts_store_cfg_t cfg;
    void (*fresh)(struct sc_env *env); /* before each test: new empty storage */
    void (*clean)(struct sc_env *env); /* after each test */
    int durable_on_execute; /* a write is durable once the backend ran it (Redis:
                             * its persistence settings decide), so another door
                             * may read it before the writer's callback runs */
    char dir[128];
    char path[192];
    int counter;
} sc_env_t;

#define SC_MAX_ENTRIES 16
#define SC_MAX_EVENTS 64
#define SC_STR 160

typedef struct sc_reg {
    char session[SC_STR], user[SC_STR], device[SC_STR], tab[SC_STR], node[SC_STR];
    char data[256];
    uint64_t expires_at;
} sc_reg_t;

typedef struct sc sc_t;

/* The result of one op, copied out of the callback. */
typedef struct sc_res {
    sc_t *t;
    int called, status;
    uint64_t seq;                          /* append */
    size_t n;                              /* list / read */
    sc_reg_t regs[SC_MAX_ENTRIES];         /* list */
    uint64_t seqs[SC_MAX_EVENTS];          /* read */
    char ev[SC_MAX_EVENTS][64];            /* read */
    uint64_t last_seq, trimmed;            /* read */
    int has_state;                         /* state callbacks with a state */
    uint64_t version;                      /* state */
    char doc[256];                         /* state ("" if none) */
    int has_doc;
    int has_lease;
    char holder[SC_STR];                   /* lease */
    uint64_t term, expires_at;             /* lease */
    int has_res;                           /* commit / sess_get with a result */
    uint64_t epoch, state_ver;             /* commit, sess_get */
    uint64_t snap_seq, snap_ver;           /* sess_get */
    char snap[256];                        /* sess_get ("" if none) */
    int has_orig;                          /* commit TS_EDUP with the original */
    uint64_t orig_seq;
    char orig[64];
    int order;                             /* completion order */
} sc_res_t;

struct sc {
    uv_loop_t loop;
    ts_store_t st;
    sc_env_t *env;
    ts_store_cfg_t cfg;
    int in_call;      /* 1 while a ts_store_* call runs */
    int outstanding;  /* accepted ops whose callback has not run */
    int completions;  /* callbacks so far, for ordering checks */
    int closed;       /* close callback ran */
    int expired;      /* on_expire reports */
    sc_reg_t exp[SC_MAX_ENTRIES];
    uint64_t exp_at[SC_MAX_ENTRIES]; /* monotonic ms of each report */
};

SC_FN void sc_copy(char *dst, size_t cap, ts_slice_t s) {
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n) memcpy(dst, s.p, n);
    dst[n] = '\0';
}

SC_FN void sc_reg_copy(sc_reg_t *d, const ts_store_reg_t *e) {
    sc_copy(d->session, sizeof d->session, e->key.session);
    sc_copy(d->device, sizeof d->device, e->key.device);
    sc_copy(d->tab, sizeof d->tab, e->key.tab);
    sc_copy(d->user, sizeof d->user, e->user);
    sc_copy(d->node, sizeof d->node, e->node);
    sc_copy(d->data, sizeof d->data, e->data);
    d->expires_at = e->expires_at;
}

static void sc_on_expire(const ts_store_reg_t *e, void *ud) {
    sc_t *t = ud;
    assert_false(t->in_call);
    assert_false(t->closed);
    if (t->expired < SC_MAX_ENTRIES) {
        sc_reg_copy(&t->exp[t->expired], e);
        t->exp_at[t->expired] = ts_now_ms();
    }
    t->expired++;
}

/* Every callback starts here: not re-entered, exactly once, not after close. */
static void sc_mark(sc_res_t *r, int status) {
    assert_non_null(r->t);
    assert_false(r->t->in_call);
    assert_int_equal(r->called, 0);
    assert_false(r->t->closed);
    r->called = 1;
    r->status = status;
    r->order = r->t->completions++;
    r->t->outstanding--;
}

static void sc_on_done(int status, void *ud) { sc_mark(ud, status); }

static void sc_on_seq(int status, uint64_t seq, void *ud) {
    sc_res_t *r = ud;
    sc_mark(r, status);
    r->seq = seq;
    if (status) assert_int_equal(seq, 0);
}

static void sc_on_list(int status, const ts_store_reg_t *e, size_t n, void *ud) {
    sc_res_t *r = ud;
    sc_mark(r, status);
    assert_true(n == 0 || e != NULL);
    r->n = n;
    for (size_t i = 0; i < n && i < SC_MAX_ENTRIES; i++) sc_reg_copy(&r->regs[i], &e[i]);
}

static void sc_on_log(int status, const ts_store_log_page_t *p, void *ud) {
    sc_res_t *r = ud;
    sc_mark(r, status);
    if (status) {
        assert_null(p);
        return;
    }
    assert_non_null(p);
    r->n = p->n;
    r->last_seq = p->last_seq;
    r->trimmed = p->trimmed_upto;
    for (size_t i = 0; i < p->n && i < SC_MAX_EVENTS; i++) {
        r->seqs[i] = p->events[i].seq;
        sc_copy(r->ev[i], sizeof r->ev[i], ts_buf_slice(p->events[i].data));
        if (i) assert_int_equal(p->events[i].seq, p->events[i - 1].seq + 1); /* no gaps */
    }
}

static void sc_on_state(int status, const ts_store_state_t *s, void *ud) {
    sc_res_t *r = ud;
    sc_mark(r, status);
    if (status == 0 || status == TS_ECONFLICT) assert_non_null(s);
    if (!s) return;
    r->has_state = 1;
    r->version = s->version;
    r->has_doc = s->doc != NULL;
    assert_true((s->version == 0) == (s->doc == NULL));
    r->doc[0] = '\0';
    if (s->doc) sc_copy(r->doc, sizeof r->doc, ts_buf_slice(s->doc));
}

static void sc_on_lease(int status, const ts_store_lease_t *l, void *ud) {
    sc_res_t *r = ud;
    sc_mark(r, status);
    if (status == 0 || status == TS_EHELD || status == TS_ESTALE) assert_non_null(l);
    if (!l) return;
    r->has_lease = 1;
    sc_copy(r->holder, sizeof r->holder, l->holder);
    r->term = l->term;
    r->expires_at = l->expires_at;
}

static void sc_on_sess(int status, const ts_store_sess_info_t *i, void *ud) {
    sc_res_t *r = ud;
    sc_mark(r, status);
    assert_true((status == 0) == (i != NULL));
    if (!i) return;
    r->has_res = 1;
    r->epoch = i->epoch;
    r->last_seq = i->last_seq;
    r->trimmed = i->trimmed_upto;
    r->state_ver = i->state_ver;
    r->snap_seq = i->snap_seq;
    r->snap_ver = i->snap_ver;
    assert_true((i->snap_seq == 0) == (i->snap == NULL));
    assert_true(i->trimmed_upto <= i->last_seq);
    assert_true(i->snap_seq <= i->last_seq);
    if (i->epoch == 0) assert_int_equal(i->last_seq, 0);
    r->snap[0] = '\0';
    if (i->snap) sc_copy(r->snap, sizeof r->snap, ts_buf_slice(i->snap));
}

static void sc_on_commit(int status, const ts_store_commit_res_t *c, void *ud) {
    sc_res_t *r = ud;
    sc_mark(r, status);
    int with = status == 0 || status == TS_EDUP || status == TS_ECONFLICT || status == TS_ESTALE;
    assert_true(with == (c != NULL));
    if (!c) return;
    r->has_res = 1;
    if (status == TS_ESTALE) r->term = c->term;
    r->epoch = c->epoch;
    r->seq = c->seq;
    r->state_ver = c->state_ver;
    if (status == 0) assert_true(c->epoch != 0 && c->seq != 0);
    if (status != TS_EDUP) assert_null(c->original);
    if (c->original) {
        assert_int_equal(c->original->seq, c->seq);
        r->has_orig = 1;
        r->orig_seq = c->original->seq;
        sc_copy(r->orig, sizeof r->orig, ts_buf_slice(c->original->data));
    }
}

static void sc_on_close(void *ud) {
    sc_t *t = ud;
    assert_false(t->in_call);
    assert_false(t->closed);
    t->closed = 1;
}

/* Wraps one ts_store_* call: flags the call, counts it if accepted. */
#define SC_CALL(t_, r_, expr)                                                  \
    ({                                                                         \
        memset((r_), 0, sizeof *(r_));                                         \
        (r_)->t = (t_);                                                        \
        (t_)->in_call = 1;                                                     \
        int rc_ = (expr);                                                      \
        (t_)->in_call = 0;                                                     \
        if (rc_ == 0) (t_)->outstanding++;                                     \
        rc_;                                                                   \
    })

#define S(str) ts_slice_str(str)

/* Runs the loop until r's callback ran (5 s at most). */
SC_FN void sc_wait(sc_t *t, sc_res_t *r) {
    uint64_t deadline = ts_now_ms() + 5000;
    while (!r->called) {
        assert_true(ts_now_ms() < deadline);
        uv_run(&t->loop, UV_RUN_ONCE);
    }
}

static void sc_on_sleep(uv_timer_t *h) { *(int *)h->data = 1; }
static void sc_on_sleep_flag(void *ud) { *(int *)ud = 1; }

/* Runs the loop for ms milliseconds. */
SC_FN void sc_sleep(sc_t *t, uint64_t ms) {
    uv_timer_t tm;
    int done = 0;
    uv_timer_init(&t->loop, &tm);
    tm.data = &done;
    uv_timer_start(&tm, sc_on_sleep, ms, 0);
    while (!done) uv_run(&t->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tm, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT);
}

/* Opens the store of the test's environment; `patch` may adjust the cfg. */
SC_FN int sc_open_with(sc_t *t, sc_env_t *env, void (*patch)(ts_store_cfg_t *), char *err,
                       size_t errlen) {
    memset(t, 0, sizeof *t);
    t->env = env;
    t->cfg = env->cfg;
    t->cfg.on_expire = sc_on_expire;
    t->cfg.expire_ud = t;
    if (patch) patch(&t->cfg);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    t->in_call = 1;
    int rc = ts_store_open(&t->st, env->ops, &t->cfg, &t->loop, err, errlen);
    t->in_call = 0;
    return rc;
}

SC_FN void sc_open(sc_t *t, sc_env_t *env, void (*patch)(ts_store_cfg_t *)) {
    char err[512];
    int rc = sc_open_with(t, env, patch, err, sizeof err);
    if (rc) fail_msg("open %s: %s (%s)", env->label, ts_err_name(rc), err);
    assert_string_equal(ts_store_backend(&t->st), env->ops->name);
}

/* Closes the store, runs the loop dry, checks that every accepted op was
 * called back before the close callback and that the loop closes clean. */
SC_FN void sc_close(sc_t *t) {
    t->in_call = 1;
    assert_ts_err(ts_store_close(&t->st, sc_on_close, t), 0);
    t->in_call = 0;
    assert_false(t->closed); /* never from inside the call */
    assert_ts_err(ts_store_close(&t->st, sc_on_close, t), TS_ECLOSED);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_true(t->closed);
    assert_int_equal(t->outstanding, 0);
    assert_int_equal(uv_loop_close(&t->loop), 0);
}

/* ---- synchronous helpers: issue, wait, return the callback status ---- */

#define SC_NODE "node-1"

SC_FN int sc_put(sc_t *t, const char *sess, const char *user, const char *dev, const char *tab,
                 const char *data, uint64_t ttl) {
    sc_res_t r;
    ts_store_reg_t e = {{S(sess), S(dev), S(tab)}, S(user), S(SC_NODE), S(data), 0};
    assert_ts_err(SC_CALL(t, &r, ts_store_reg_put(&t->st, &e, ttl, sc_on_done, &r)), 0);
    sc_wait(t, &r);
    return r.status;
}

SC_FN int sc_renew(sc_t *t, const char *sess, const char *dev, const char *tab, uint64_t ttl) {
    sc_res_t r;
    ts_store_reg_key_t k = {S(sess), S(dev), S(tab)};
    assert_ts_err(SC_CALL(t, &r, ts_store_reg_renew(&t->st, &k, ttl, sc_on_done, &r)), 0);
    sc_wait(t, &r);
    return r.status;
}

SC_FN int sc_remove(sc_t *t, const char *sess, const char *dev, const char *tab) {
    sc_res_t r;
    ts_store_reg_key_t k = {S(sess), S(dev), S(tab)};
    assert_ts_err(SC_CALL(t, &r, ts_store_reg_remove(&t->st, &k, sc_on_done, &r)), 0);
    sc_wait(t, &r);
    return r.status;
}

SC_FN int sc_list(sc_t *t, ts_store_by_t by, const char *id, sc_res_t *r) {
    assert_ts_err(SC_CALL(t, r, ts_store_reg_list(&t->st, by, S(id), sc_on_list, r)), 0);
    sc_wait(t, r);
    return r->status;
}

/* Index of the entry for `tab` in a list result, or -1. */
SC_FN int sc_find_tab(const sc_res_t *r, const char *tab) {
    for (size_t i = 0; i < r->n && i < SC_MAX_ENTRIES; i++)
        if (strcmp(r->regs[i].tab, tab) == 0) return (int)i;
    return -1;
}

SC_FN int sc_append(sc_t *t, const char *sess, const char *ev, uint64_t *seq) {
    sc_res_t r;
    ts_buf_t *b = ts_buf_from(ev, strlen(ev));
    assert_ts_err(SC_CALL(t, &r, ts_store_log_append(&t->st, S(sess), b, sc_on_seq, &r)), 0);
    ts_buf_unref(b); /* the store took its own reference or copy */
    sc_wait(t, &r);
    if (seq) *seq = r.seq;
    return r.status;
}

SC_FN int sc_read(sc_t *t, const char *sess, uint64_t after, size_t max, sc_res_t *r) {
    assert_ts_err(SC_CALL(t, r, ts_store_log_read(&t->st, S(sess), after, max, sc_on_log, r)), 0);
    sc_wait(t, r);
    return r->status;
}

SC_FN int sc_trim(sc_t *t, const char *sess, uint64_t upto) {
    sc_res_t r;
    assert_ts_err(SC_CALL(t, &r, ts_store_log_trim(&t->st, S(sess), upto, sc_on_done, &r)), 0);
    sc_wait(t, &r);
    return r.status;
}

SC_FN int sc_get(sc_t *t, const char *sess, sc_res_t *r) {
    assert_ts_err(SC_CALL(t, r, ts_store_state_get(&t->st, S(sess), sc_on_state, r)), 0);
    sc_wait(t, r);
    return r->status;
}

SC_FN int sc_cas(sc_t *t, const char *sess, uint64_t expected, const char *doc, sc_res_t *r) {
    ts_buf_t *b = ts_buf_from(doc, strlen(doc));
    assert_ts_err(
        SC_CALL(t, r, ts_store_state_cas(&t->st, S(sess), expected, b, sc_on_state, r)), 0);
    ts_buf_unref(b);
    sc_wait(t, r);
    return r->status;
}

SC_FN int sc_acquire(sc_t *t, const char *name, const char *holder, uint64_t ttl, sc_res_t *r) {
    assert_ts_err(SC_CALL(t, r, ts_store_lease_acquire(&t->st, S(name), S(holder), ttl,
                                                       sc_on_lease, r)),
                  0);
    sc_wait(t, r);
    return r->status;
}

SC_FN int sc_lrenew(sc_t *t, const char *name, const char *holder, uint64_t term, uint64_t ttl,
                    sc_res_t *r) {
    assert_ts_err(SC_CALL(t, r, ts_store_lease_renew(&t->st, S(name), S(holder), term, ttl,
                                                     sc_on_lease, r)),
                  0);
    sc_wait(t, r);
    return r->status;
}

SC_FN int sc_release(sc_t *t, const char *name, const char *holder, uint64_t term) {
    sc_res_t r;
    assert_ts_err(SC_CALL(t, &r, ts_store_lease_release(&t->st, S(name), S(holder), term,
                                                        sc_on_done, &r)),
                  0);
    sc_wait(t, &r);
    return r.status;
}

SC_FN int sc_transfer(sc_t *t, const char *name, uint64_t term, const char *to, uint64_t ttl,
                      sc_res_t *r) {
    assert_ts_err(SC_CALL(t, r, ts_store_lease_transfer(&t->st, S(name), term, S(to), ttl,
                                                        sc_on_lease, r)),
                  0);
    sc_wait(t, r);
    return r->status;
}

SC_FN int sc_lget(sc_t *t, const char *name, sc_res_t *r) {
    assert_ts_err(SC_CALL(t, r, ts_store_lease_get(&t->st, S(name), sc_on_lease, r)), 0);
    sc_wait(t, r);
    return r->status;
}

/* A commit fenced by lease `fence` with `term` (a leader's state change). */
SC_FN int sc_commit_fenced(sc_t *t, const char *sess, const char *ev, const char *client,
                           uint64_t mut, const char *fence, uint64_t term, sc_res_t *r) {
    /* the holder is the writing client (the tests name holders like clients) */
    ts_buf_t *b = ts_buf_from(ev, strlen(ev));
    ts_store_commit_t c = {.event = b,
                           .client = client ? S(client) : ts_slice("", 0),
                           .mut = mut,
                           .if_ver = TS_STORE_ANY_VER,
                           .is_state = 1,
                           .fence = S(fence),
                           .fence_term = term,
                           .fence_holder = client ? S(client) : S("nobody")};
    assert_ts_err(SC_CALL(t, r, ts_store_commit(&t->st, S(sess), &c, sc_on_commit, r)), 0);
    ts_buf_unref(b);
    sc_wait(t, r);
    return r->status;
}

/* Commits `ev` (client NULL = no exactly-once bookkeeping). */
SC_FN int sc_commit(sc_t *t, const char *sess, const char *ev, const char *client, uint64_t mut,
                    uint64_t if_ver, int is_state, sc_res_t *r) {
    ts_buf_t *b = ts_buf_from(ev, strlen(ev));
    ts_store_commit_t c = {b, client ? S(client) : ts_slice("", 0), mut, if_ver, is_state, 0, ts_slice("", 0), 0, ts_slice("", 0)};
    assert_ts_err(SC_CALL(t, r, ts_store_commit(&t->st, S(sess), &c, sc_on_commit, r)), 0);
    ts_buf_unref(b);
    sc_wait(t, r);
    return r->status;
}

SC_FN int sc_sess(sc_t *t, const char *sess, sc_res_t *r) {
    assert_ts_err(SC_CALL(t, r, ts_store_sess_get(&t->st, S(sess), sc_on_sess, r)), 0);
    sc_wait(t, r);
    return r->status;
}

SC_FN int sc_snap(sc_t *t, const char *sess, uint64_t seq, uint64_t ver, const char *doc) {
    sc_res_t r;
    ts_buf_t *b = ts_buf_from(doc, strlen(doc));
    assert_ts_err(SC_CALL(t, &r, ts_store_snap_put(&t->st, S(sess), seq, ver, b, sc_on_done, &r)),
                  0);
    ts_buf_unref(b);
    sc_wait(t, &r);
    return r.status;
}

/* ---- fixtures ---- */

static int sc_setup(void **state) {
    sc_env_t *env = *state;
    if (env->fresh) env->fresh(env);
    return 0;
}

static int sc_teardown(void **state) {
    sc_env_t *env = *state;
    if (env->clean) env->clean(env);
    return 0;
}

/* ================================================================ tests */

SC_FN void c_open_close(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_close(&t);
}

/* Refused arguments: the call returns the error and the callback never runs. */
enum sc_verb { V_PUT, V_RENEW, V_REMOVE, V_LIST, V_APPEND, V_READ, V_TRIM, V_GET, V_CAS,
               V_ACQUIRE, V_LRENEW, V_RELEASE, V_SESS, V_COMMIT, V_SNAP };

static const struct sc_arg_case {
    const char *name;
    enum sc_verb verb;
    const char *id1, *id2, *id3; /* session/name, device/holder, tab; "<max+1>" = too long */
    size_t len;                  /* data / event / doc bytes */
    uint64_t n;                  /* ttl, by, max, term */
    int want;
} sc_arg_cases[] = {
    {"put: empty session", V_PUT, "", "d", "t", 0, 1000, TS_EINVAL},
    {"put: session of TS_STORE_ID_MAX + 1 bytes", V_PUT, "<max+1>", "d", "t", 0, 1000, TS_EINVAL},
    {"put: session of TS_STORE_ID_MAX bytes", V_PUT, "<max>", "d", "t", 0, 1000, 0},
    {"put: control byte in tab", V_PUT, "s", "d", "t\n1", 0, 1000, TS_EINVAL},
    {"put: DEL byte in device", V_PUT, "s", "d\x7f", "t", 0, 1000, TS_EINVAL},
    {"put: ttl 0", V_PUT, "s", "d", "t", 0, 0, TS_EINVAL},
    {"put: ttl over a day", V_PUT, "s", "d", "t", 0, TS_STORE_TTL_MAX + 1ull, TS_EINVAL},
    {"put: data of 16 KiB + 1", V_PUT, "s", "d", "t", TS_STORE_REG_DATA_MAX + 1, 1000,
     TS_ETOOBIG},
    {"put: data of 16 KiB", V_PUT, "s", "d", "t", TS_STORE_REG_DATA_MAX, 1000, 0},
    {"put: UTF-8 ids", V_PUT, "s\xc3\xa9", "d\xe2\x82\xac", "t", 2, 1000, 0},
    {"renew: empty tab", V_RENEW, "s", "d", "", 0, 1000, TS_EINVAL},
    {"renew: ttl 0", V_RENEW, "s", "d", "t", 0, 0, TS_EINVAL},
    {"remove: empty device", V_REMOVE, "s", "", "t", 0, 0, TS_EINVAL},
    {"list: unknown index", V_LIST, "s", NULL, NULL, 0, 3, TS_EINVAL},
    {"list: empty id", V_LIST, "", NULL, NULL, 0, TS_STORE_BY_USER, TS_EINVAL},
    {"append: empty event", V_APPEND, "s", NULL, NULL, 0, 0, TS_EINVAL},
    {"append: event over 1 MiB", V_APPEND, "s", NULL, NULL, 1024 * 1024 + 1, 0, TS_ETOOBIG},
    {"append: bad session", V_APPEND, "<max+1>", NULL, NULL, 1, 0, TS_EINVAL},
    {"read: max 0", V_READ, "s", NULL, NULL, 0, 0, TS_EINVAL},
    {"trim: bad session", V_TRIM, "", NULL, NULL, 0, 1, TS_EINVAL},
    {"get: bad session", V_GET, "a\tb", NULL, NULL, 0, 0, TS_EINVAL},
    {"cas: empty doc", V_CAS, "s", NULL, NULL, 0, 0, TS_EINVAL},
    {"cas: doc over 1 MiB", V_CAS, "s", NULL, NULL, 1024 * 1024 + 1, 0, TS_ETOOBIG},
    {"acquire: empty holder", V_ACQUIRE, "lease", "", NULL, 0, 1000, TS_EINVAL},
    {"acquire: ttl 0", V_ACQUIRE, "lease", "h", NULL, 0, 0, TS_EINVAL},
    {"renew lease: term 0", V_LRENEW, "lease", "h", NULL, 0, 0, TS_EINVAL},
    {"release: term 0", V_RELEASE, "lease", "h", NULL, 0, 0, TS_EINVAL},
    {"release: empty name", V_RELEASE, "", "h", NULL, 0, 1, TS_EINVAL},
    {"sess_get: bad session", V_SESS, "<max+1>", NULL, NULL, 0, 0, TS_EINVAL},
    {"sess_get: longest history key", V_SESS, "<max>", NULL, NULL, 0, 0, 0},
    {"commit: empty event", V_COMMIT, "s", "c", NULL, 0, 1, TS_EINVAL},
    {"commit: event over 1 MiB", V_COMMIT, "s", "c", NULL, 1024 * 1024 + 1, 1, TS_ETOOBIG},
    {"commit: mut 0 with a client", V_COMMIT, "s", "c", NULL, 1, 0, TS_EINVAL},
    {"commit: control byte in client", V_COMMIT, "s", "c\x01", NULL, 1, 1, TS_EINVAL},
    {"commit: client too long", V_COMMIT, "s", "<max+1>", NULL, 1, 1, TS_EINVAL},
    {"commit: no client, mut 0", V_COMMIT, "s", "", NULL, 1, 0, 0},
    {"commit: bad session", V_COMMIT, "", "c", NULL, 1, 1, TS_EINVAL},
    {"snap: seq 0", V_SNAP, "s", NULL, NULL, 1, 0, TS_EINVAL},
    {"snap: empty doc", V_SNAP, "s", NULL, NULL, 0, 1, TS_EINVAL},
    {"snap: doc over 1 MiB", V_SNAP, "s", NULL, NULL, 1024 * 1024 + 1, 1, TS_ETOOBIG},
};

static ts_slice_t sc_arg_id(const char *s, char *buf) {
    if (!s) return ts_slice("", 0);
    if (strcmp(s, "<max+1>") == 0 || strcmp(s, "<max>") == 0) {
        size_t n = TS_STORE_ID_MAX + (s[4] == '+');
        memset(buf, 'x', n);
        return ts_slice(buf, n);
    }
    return ts_slice_str(s);
}

SC_FN void c_invalid_args(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    for (size_t i = 0; i < TS_ARRAY_LEN(sc_arg_cases); i++) {
        const struct sc_arg_case *c = &sc_arg_cases[i];
        char b1[TS_STORE_ID_MAX + 1], b2[TS_STORE_ID_MAX + 1], b3[TS_STORE_ID_MAX + 1];
        ts_slice_t a = sc_arg_id(c->id1, b1), b = sc_arg_id(c->id2, b2), d = sc_arg_id(c->id3, b3);
        ts_buf_t *bytes = ts_buf_new(c->len);
        memset(bytes->data, 'y', c->len);
        ts_slice_t data = ts_buf_slice(bytes);
        ts_store_reg_t e = {{a, b, d}, S("u"), S(SC_NODE), data, 0};
        ts_store_reg_key_t k = {a, b, d};
        sc_res_t r;
        int rc = 0;
        switch (c->verb) {
        case V_PUT: rc = SC_CALL(&t, &r, ts_store_reg_put(&t.st, &e, c->n, sc_on_done, &r)); break;
        case V_RENEW:
            rc = SC_CALL(&t, &r, ts_store_reg_renew(&t.st, &k, c->n, sc_on_done, &r));
            break;
        case V_REMOVE: rc = SC_CALL(&t, &r, ts_store_reg_remove(&t.st, &k, sc_on_done, &r)); break;
        case V_LIST:
            rc = SC_CALL(&t, &r,
                         ts_store_reg_list(&t.st, (ts_store_by_t)c->n, a, sc_on_list, &r));
            break;
        case V_APPEND:
            rc = SC_CALL(&t, &r, ts_store_log_append(&t.st, a, bytes, sc_on_seq, &r));
            break;
        case V_READ:
            rc = SC_CALL(&t, &r, ts_store_log_read(&t.st, a, 0, c->n, sc_on_log, &r));
            break;
        case V_TRIM: rc = SC_CALL(&t, &r, ts_store_log_trim(&t.st, a, c->n, sc_on_done, &r)); break;
        case V_GET: rc = SC_CALL(&t, &r, ts_store_state_get(&t.st, a, sc_on_state, &r)); break;
        case V_CAS:
            rc = SC_CALL(&t, &r, ts_store_state_cas(&t.st, a, 0, bytes, sc_on_state, &r));
            break;
        case V_ACQUIRE:
            rc = SC_CALL(&t, &r, ts_store_lease_acquire(&t.st, a, b, c->n, sc_on_lease, &r));
            break;
        case V_LRENEW:
            rc = SC_CALL(&t, &r,
                         ts_store_lease_renew(&t.st, a, b, c->n, 1000, sc_on_lease, &r));
            break;
        case V_RELEASE:
            rc = SC_CALL(&t, &r, ts_store_lease_release(&t.st, a, b, c->n, sc_on_done, &r));
            break;
        case V_SESS: rc = SC_CALL(&t, &r, ts_store_sess_get(&t.st, a, sc_on_sess, &r)); break;
        case V_COMMIT: {
            ts_store_commit_t cm = {bytes, b, c->n, TS_STORE_ANY_VER, 0, 0, ts_slice("", 0), 0, ts_slice("", 0)};
            rc = SC_CALL(&t, &r, ts_store_commit(&t.st, a, &cm, sc_on_commit, &r));
            break;
        }
        case V_SNAP:
            rc = SC_CALL(&t, &r, ts_store_snap_put(&t.st, a, c->n, 0, bytes, sc_on_done, &r));
            break;
        }
        ts_buf_unref(bytes);
        if (rc != c->want)
            fail_msg("%s: got %s, want %s", c->name, ts_err_name(rc), ts_err_name(c->want));
        if (rc == 0) {
            sc_wait(&t, &r);
            if (r.status != 0) fail_msg("%s: callback %s", c->name, ts_err_name(r.status));
        } else {
            uv_run(&t.loop, UV_RUN_NOWAIT);
            uv_run(&t.loop, UV_RUN_NOWAIT);
            assert_int_equal(r.called, 0); /* a refused call never calls back */
        }
    }
    sc_close(&t);
}

SC_FN void c_reg_put_list(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    uint64_t wall = ts_wall_ms();
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t1", "{\"v\":1}", 10000), 0);
    assert_ts_err(sc_put(&t, "s1", "u1", "d2", "t2", "", 10000), 0);
    assert_ts_err(sc_put(&t, "s2", "u1", "d1", "t3", "x", 10000), 0);
    assert_ts_err(sc_put(&t, "s3", "u2", "d9", "t4", "y", 10000), 0);
    static const struct {
        ts_store_by_t by;
        const char *id;
        size_t n;
        const char *tabs[3];
    } rows[] = {
        {TS_STORE_BY_SESSION, "s1", 2, {"t1", "t2"}},
        {TS_STORE_BY_SESSION, "s2", 1, {"t3"}},
        {TS_STORE_BY_USER, "u1", 3, {"t1", "t2", "t3"}},
        {TS_STORE_BY_USER, "u2", 1, {"t4"}},
        {TS_STORE_BY_DEVICE, "d1", 2, {"t1", "t3"}},
        {TS_STORE_BY_DEVICE, "d2", 1, {"t2"}},
        {TS_STORE_BY_SESSION, "nobody", 0, {NULL}},
        {TS_STORE_BY_USER, "s1", 0, {NULL}}, /* the indexes are separate */
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        sc_res_t r;
        assert_ts_err(sc_list(&t, rows[i].by, rows[i].id, &r), 0);
        assert_int_equal(r.n, rows[i].n);
        for (size_t j = 0; j < rows[i].n; j++) assert_true(sc_find_tab(&r, rows[i].tabs[j]) >= 0);
    }
    sc_res_t r;
    sc_list(&t, TS_STORE_BY_SESSION, "s1", &r);
    const sc_reg_t *e = &r.regs[sc_find_tab(&r, "t1")];
    assert_string_equal(e->session, "s1");
    assert_string_equal(e->user, "u1");
    assert_string_equal(e->device, "d1");
    assert_string_equal(e->node, SC_NODE);
    assert_string_equal(e->data, "{\"v\":1}");
    assert_true(e->expires_at >= wall + 9000 && e->expires_at <= ts_wall_ms() + 10000 + 1000);
    sc_close(&t);
}

SC_FN void c_reg_replace(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t1", "a", 10000), 0);
    assert_ts_err(sc_put(&t, "s1", "u2", "d1", "t1", "b", 10000), 0); /* same key */
    sc_res_t r;
    sc_list(&t, TS_STORE_BY_SESSION, "s1", &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.regs[0].data, "b");
    assert_string_equal(r.regs[0].user, "u2");
    sc_list(&t, TS_STORE_BY_USER, "u1", &r);
    assert_int_equal(r.n, 0);
    sc_list(&t, TS_STORE_BY_USER, "u2", &r);
    assert_int_equal(r.n, 1);
    /* the same tab id on another device is another entry */
    assert_ts_err(sc_put(&t, "s1", "u2", "d2", "t1", "c", 10000), 0);
    sc_list(&t, TS_STORE_BY_SESSION, "s1", &r);
    assert_int_equal(r.n, 2);
    sc_close(&t);
}

SC_FN void c_reg_remove(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t1", "", 50), 0);
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t2", "", 10000), 0);
    assert_ts_err(sc_remove(&t, "s1", "d1", "t1"), 0);
    assert_ts_err(sc_remove(&t, "s1", "d1", "t1"), TS_ENOTFOUND);
    assert_ts_err(sc_renew(&t, "s1", "d1", "t1", 1000), TS_ENOTFOUND);
    assert_ts_err(sc_remove(&t, "s1", "d1", "nope"), TS_ENOTFOUND);
    sc_res_t r;
    sc_list(&t, TS_STORE_BY_DEVICE, "d1", &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.regs[0].tab, "t2");
    sc_sleep(&t, 150); /* past the removed entry's TTL */
    assert_int_equal(t.expired, 0); /* removal is not an expiry */
    sc_close(&t);
}

static void sc_patch_slow_sweep(ts_store_cfg_t *c) { c->sweep_ms = 60000; }
static void sc_patch_fast_sweep(ts_store_cfg_t *c) { c->sweep_ms = 20; }

/* Expired entries are invisible at once, even if no sweep ran yet. */
SC_FN void c_reg_expired_hidden(void **state) {
    sc_t t;
    sc_open(&t, *state, sc_patch_slow_sweep);
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t1", "", 30), 0);
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t2", "", 10000), 0);
    sc_sleep(&t, 60);
    static const struct {
        ts_store_by_t by;
        const char *id;
    } idx[] = {{TS_STORE_BY_SESSION, "s1"}, {TS_STORE_BY_USER, "u1"}, {TS_STORE_BY_DEVICE, "d1"}};
    for (size_t i = 0; i < TS_ARRAY_LEN(idx); i++) {
        sc_res_t r;
        sc_list(&t, idx[i].by, idx[i].id, &r);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.regs[0].tab, "t2");
    }
    assert_ts_err(sc_renew(&t, "s1", "d1", "t1", 10000), TS_ENOTFOUND);
    sc_close(&t);
}

SC_FN void c_reg_renew_extends(void **state) {
    sc_t t;
    sc_open(&t, *state, sc_patch_fast_sweep);
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t1", "", 300), 0);
    sc_sleep(&t, 100); /* a margin of 200 ms for a loaded machine */
    assert_ts_err(sc_renew(&t, "s1", "d1", "t1", 10000), 0);
    sc_sleep(&t, 300); /* past the first TTL */
    sc_res_t r;
    sc_list(&t, TS_STORE_BY_SESSION, "s1", &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(t.expired, 0);
    sc_close(&t);
}

/* An entry whose TTL passed is reported once, within TTL + one sweep. */
SC_FN void c_reg_expiry_reported(void **state) {
    sc_t t;
    sc_open(&t, *state, sc_patch_fast_sweep);
    uint64_t t0 = ts_now_ms();
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t1", "meta", 60), 0);
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t2", "", 10000), 0);
    uint64_t deadline = t0 + 2000;
    while (t.expired == 0 && ts_now_ms() < deadline) sc_sleep(&t, 5);
    assert_int_equal(t.expired, 1);
    uint64_t took = t.exp_at[0] - t0;
    /* not before the TTL, to the clocks' resolution: Redis's TIME and our
     * clock each count whole milliseconds, so 59.x ms can read as 59 (seen
     * once in ~10 runs against Redis) */
    if (took < 60 - 1) fail_msg("expiry reported after %llu ms", (unsigned long long)took);
    /* TTL + one sweep, plus scheduling slack for a loaded machine (and a
     * round trip to Redis): a sweep that never runs still fails */
    if (took > 60 + 20 + 400) fail_msg("expiry reported after %llu ms", (unsigned long long)took);
    assert_string_equal(t.exp[0].tab, "t1");
    assert_string_equal(t.exp[0].session, "s1");
    assert_string_equal(t.exp[0].user, "u1");
    assert_string_equal(t.exp[0].data, "meta");
    sc_sleep(&t, 80);
    assert_int_equal(t.expired, 1); /* once */
    sc_res_t r;
    sc_list(&t, TS_STORE_BY_SESSION, "s1", &r);
    assert_int_equal(r.n, 1);
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t3", "", 30), 0);
    sc_close(&t); /* t3 never reported: no reports after close */
    assert_int_equal(t.expired, 1);
}

SC_FN void c_log_seq_read(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    uint64_t seq;
    const char *evs[] = {"{\"e\":1}", "{\"e\":2}", "{\"e\":3}"};
    for (int i = 0; i < 3; i++) {
        assert_ts_err(sc_append(&t, "s1", evs[i], &seq), 0);
        assert_int_equal(seq, (uint64_t)i + 1);
    }
    assert_ts_err(sc_append(&t, "s2", "other", &seq), 0);
    assert_int_equal(seq, 1); /* per session */
    static const struct {
        const char *sess;
        uint64_t after;
        size_t max;
        size_t n;
        uint64_t first, last;
    } rows[] = {
        {"s1", 0, 10, 3, 1, 3}, {"s1", 1, 1, 1, 2, 3}, {"s1", 1, 10, 2, 2, 3},
        {"s1", 3, 10, 0, 0, 3}, {"s1", 99, 10, 0, 0, 3}, {"s2", 0, 10, 1, 1, 1},
        {"nobody", 0, 10, 0, 0, 0},
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        sc_res_t r;
        assert_ts_err(sc_read(&t, rows[i].sess, rows[i].after, rows[i].max, &r), 0);
        assert_int_equal(r.n, rows[i].n);
        assert_int_equal(r.last_seq, rows[i].last);
        assert_int_equal(r.trimmed, 0);
        if (r.n) assert_int_equal(r.seqs[0], rows[i].first);
        for (size_t j = 0; j < r.n && strcmp(rows[i].sess, "s1") == 0; j++)
            assert_string_equal(r.ev[j], evs[r.seqs[j] - 1]);
    }
    sc_close(&t);
}

/* Appends issued in one turn, without waiting, complete in issue order with
 * consecutive sequence numbers. */
SC_FN void c_log_pipelined(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    enum { N = 50 };
    static sc_res_t r[N];
    for (int i = 0; i < N; i++) {
        char ev[16];
        snprintf(ev, sizeof ev, "e%d", i);
        ts_buf_t *b = ts_buf_from(ev, strlen(ev));
        assert_ts_err(SC_CALL(&t, &r[i], ts_store_log_append(&t.st, S("s1"), b, sc_on_seq, &r[i])),
                      0);
        ts_buf_unref(b);
    }
    sc_wait(&t, &r[N - 1]);
    for (int i = 0; i < N; i++) {
        assert_true(r[i].called);
        assert_int_equal(r[i].seq, (uint64_t)i + 1);
        if (i) assert_true(r[i].order > r[i - 1].order);
    }
    sc_res_t rd;
    sc_read(&t, "s1", 0, 100, &rd);
    assert_int_equal(rd.n, N);
    for (int i = 0; i < N; i++) {
        char ev[16];
        snprintf(ev, sizeof ev, "e%d", i);
        assert_string_equal(rd.ev[i], ev);
    }
    sc_close(&t);
}

SC_FN void c_log_trim(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    uint64_t seq;
    for (int i = 0; i < 5; i++) sc_append(&t, "s1", "e", &seq);
    assert_ts_err(sc_trim(&t, "s1", 2), 0);
    sc_res_t r;
    sc_read(&t, "s1", 0, 10, &r);
    assert_int_equal(r.trimmed, 2); /* the reader sees it missed 1..2 */
    assert_int_equal(r.n, 3);
    assert_int_equal(r.seqs[0], 3);
    sc_read(&t, "s1", 3, 10, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.seqs[0], 4);
    assert_ts_err(sc_trim(&t, "s1", 1), 0); /* behind the mark: nothing */
    sc_read(&t, "s1", 0, 10, &r);
    assert_int_equal(r.trimmed, 2);
    sc_append(&t, "s1", "e6", &seq);
    assert_int_equal(seq, 6);
    assert_ts_err(sc_trim(&t, "s1", 1000), 0); /* clamped to the last seq */
    sc_read(&t, "s1", 0, 10, &r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.last_seq, 6);
    assert_int_equal(r.trimmed, 6);
    sc_append(&t, "s1", "e7", &seq);
    assert_int_equal(seq, 7); /* the sequence never goes back */
    sc_read(&t, "s1", 6, 10, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0], "e7");
    assert_ts_err(sc_trim(&t, "nobody", 5), 0);
    sc_close(&t);
}

SC_FN void c_state_cas(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r;
    assert_ts_err(sc_get(&t, "s1", &r), 0);
    assert_int_equal(r.version, 0);
    assert_false(r.has_doc);
    static const struct {
        uint64_t expected;
        const char *doc;
        int want;
        uint64_t version;
        const char *now;
    } rows[] = {
        {0, "{\"a\":1}", 0, 1, "{\"a\":1}"},
        {0, "{\"b\":1}", TS_ECONFLICT, 1, "{\"a\":1}"},
        {2, "{\"b\":1}", TS_ECONFLICT, 1, "{\"a\":1}"},
        {1, "{\"a\":2}", 0, 2, "{\"a\":2}"},
        {1, "{\"a\":3}", TS_ECONFLICT, 2, "{\"a\":2}"},
        {2, "{\"a\":3}", 0, 3, "{\"a\":3}"},
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        assert_ts_err(sc_cas(&t, "s1", rows[i].expected, rows[i].doc, &r), rows[i].want);
        assert_true(r.has_state);
        assert_int_equal(r.version, rows[i].version);
        assert_string_equal(r.doc, rows[i].now);
    }
    assert_ts_err(sc_get(&t, "s1", &r), 0);
    assert_int_equal(r.version, 3);
    assert_string_equal(r.doc, "{\"a\":3}");
    assert_ts_err(sc_get(&t, "s2", &r), 0);
    assert_int_equal(r.version, 0);
    assert_ts_err(sc_cas(&t, "s2", 1, "{}", &r), TS_ECONFLICT);
    assert_int_equal(r.version, 0);
    assert_false(r.has_doc);
    sc_close(&t);
}

/* Two writers with the same base in one turn: exactly one wins. */
SC_FN void c_state_race(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t a, b;
    ts_buf_t *da = ts_buf_from("A", 1), *db = ts_buf_from("B", 1);
    assert_ts_err(SC_CALL(&t, &a, ts_store_state_cas(&t.st, S("s"), 0, da, sc_on_state, &a)), 0);
    assert_ts_err(SC_CALL(&t, &b, ts_store_state_cas(&t.st, S("s"), 0, db, sc_on_state, &b)), 0);
    ts_buf_unref(da);
    ts_buf_unref(db);
    sc_wait(&t, &a);
    sc_wait(&t, &b);
    assert_ts_err(a.status, 0);
    assert_int_equal(a.version, 1);
    assert_ts_err(b.status, TS_ECONFLICT);
    assert_int_equal(b.version, 1);
    assert_string_equal(b.doc, "A"); /* what to rebase on */
    sc_close(&t);
}

SC_FN void c_lease_terms(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r;
    static const struct {
        char op; /* a acquire, r renew, x release */
        const char *name, *holder;
        uint64_t term;
        int want;
        uint64_t want_term;     /* lease term in the callback (a/r) */
        const char *want_holder; /* lease holder in the callback (a/r) */
    } rows[] = {
        {'a', "L", "A", 0, 0, 1, "A"},
        {'a', "L", "B", 0, TS_EHELD, 1, "A"},
        {'a', "L", "A", 0, 0, 1, "A"}, /* a retried acquire keeps the term */
        {'r', "L", "A", 1, 0, 1, "A"},
        {'r', "L", "A", 2, TS_ESTALE, 1, "A"},
        {'r', "L", "B", 1, TS_ESTALE, 1, "A"},
        {'x', "L", "B", 1, TS_ESTALE, 0, NULL},
        {'x', "L", "A", 2, TS_ESTALE, 0, NULL},
        {'x', "L", "A", 1, 0, 0, NULL},
        {'x', "L", "A", 1, TS_ESTALE, 0, NULL},
        {'r', "L", "A", 1, TS_ESTALE, 1, ""}, /* released: nobody holds it */
        {'a', "L", "B", 0, 0, 2, "B"},         /* a new grant, a new term */
        {'a', "L2", "A", 0, 0, 1, "A"},        /* terms are per name */
        {'x', "L", "B", 2, 0, 0, NULL},
        {'a', "L", "A", 0, 0, 3, "A"},
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        int rc;
        memset(&r, 0, sizeof r);
        if (rows[i].op == 'a')
            rc = sc_acquire(&t, rows[i].name, rows[i].holder, 10000, &r);
        else if (rows[i].op == 'r')
            rc = sc_lrenew(&t, rows[i].name, rows[i].holder, rows[i].term, 10000, &r);
        else
            rc = sc_release(&t, rows[i].name, rows[i].holder, rows[i].term);
        if (rc != rows[i].want)
            fail_msg("row %zu: got %s, want %s", i, ts_err_name(rc), ts_err_name(rows[i].want));
        if (rows[i].want_holder) {
            assert_true(r.has_lease);
            assert_int_equal(r.term, rows[i].want_term);
            assert_string_equal(r.holder, rows[i].want_holder);
            if (r.holder[0]) assert_true(r.expires_at > ts_wall_ms());
        }
    }
    sc_close(&t);
}

SC_FN void c_lease_expiry(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r;
    /* margins of 150-200 ms: a loaded machine (or a round trip to Redis)
     * must not turn "still held" into "expired" */
    assert_ts_err(sc_acquire(&t, "L", "A", 400, &r), 0);
    assert_int_equal(r.term, 1);
    sc_sleep(&t, 200);
    assert_ts_err(sc_lrenew(&t, "L", "A", 1, 400, &r), 0); /* renewed in time */
    sc_sleep(&t, 250);
    assert_ts_err(sc_acquire(&t, "L", "B", 1000, &r), TS_EHELD);
    sc_sleep(&t, 400); /* now expired */
    assert_ts_err(sc_lrenew(&t, "L", "A", 1, 1000, &r), TS_ESTALE);
    assert_ts_err(sc_acquire(&t, "L", "B", 1000, &r), 0);
    assert_int_equal(r.term, 2);
    assert_string_equal(r.holder, "B");
    assert_ts_err(sc_release(&t, "L", "A", 1), TS_ESTALE); /* the old leader is fenced */
    sc_close(&t);
}

/* lease_transfer is a compare-and-set on the last granted term: the
 * handoff, the backup taking over a lapsed lease, and two loops racing to
 * take over (one wins, the other learns the new term). */
SC_FN void c_lease_transfer(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r;
    assert_ts_err(sc_transfer(&t, "L", 1, "B", 1000, &r), TS_ESTALE); /* never granted */
    assert_int_equal(r.term, 0);
    assert_string_equal(r.holder, "");
    assert_ts_err(sc_acquire(&t, "L", "A", 1000, &r), 0);
    assert_int_equal(r.term, 1);
    assert_ts_err(sc_transfer(&t, "L", 1, "B", 1000, &r), 0); /* A hands over to B */
    assert_int_equal(r.term, 2);
    assert_string_equal(r.holder, "B");
    assert_true(r.expires_at > 0);
    assert_ts_err(sc_transfer(&t, "L", 1, "C", 1000, &r), TS_ESTALE); /* the race's loser */
    assert_int_equal(r.term, 2);
    assert_string_equal(r.holder, "B");
    assert_ts_err(sc_lrenew(&t, "L", "A", 1, 1000, &r), TS_ESTALE); /* A is fenced */
    assert_ts_err(sc_lrenew(&t, "L", "B", 2, 1000, &r), 0);
    assert_ts_err(sc_lget(&t, "L", &r), 0);
    assert_int_equal(r.term, 2);
    assert_string_equal(r.holder, "B");
    /* lapsed: the backup takes over with the lapsed term */
    assert_ts_err(sc_lrenew(&t, "L", "B", 2, 30, &r), 0);
    sc_sleep(&t, 60);
    assert_ts_err(sc_lget(&t, "L", &r), 0);
    assert_int_equal(r.term, 2);
    assert_string_equal(r.holder, ""); /* nobody holds it */
    assert_ts_err(sc_transfer(&t, "L", 2, "C", 1000, &r), 0);
    assert_int_equal(r.term, 3);
    assert_string_equal(r.holder, "C");
    /* released: the next transfer or acquire gets the next term */
    assert_ts_err(sc_release(&t, "L", "C", 3), 0);
    assert_ts_err(sc_transfer(&t, "L", 3, "A", 1000, &r), 0);
    assert_int_equal(r.term, 4);
    assert_ts_err(sc_lget(&t, "never", &r), 0);
    assert_int_equal(r.term, 0);
    assert_string_equal(r.holder, "");
    sc_close(&t);
}

/* A fenced commit is appended only while its lease is held with its term:
 * a leader that lost the lease (transfer, expiry, release), or a member that
 * only knows the term, is refused with the current term, and nothing is
 * appended; a resend of a fenced commit
 * that was applied is still answered from the original. */
SC_FN void c_commit_fence(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r, s;
    assert_ts_err(sc_commit_fenced(&t, "h", "e0", "A", 1, "L", 1, &r), TS_ESTALE); /* no lease */
    assert_int_equal(r.term, 0);
    assert_ts_err(sc_acquire(&t, "L", "A", 1000, &r), 0);
    assert_ts_err(sc_commit_fenced(&t, "h", "e1", "A", 1, "L", 1, &r), 0);
    assert_int_equal(r.seq, 1);
    assert_ts_err(sc_transfer(&t, "L", 1, "B", 1000, &r), 0);
    assert_ts_err(sc_commit_fenced(&t, "h", "e2", "A", 2, "L", 1, &r), TS_ESTALE);
    assert_int_equal(r.term, 2);
    assert_ts_err(sc_commit_fenced(&t, "h", "e1", "A", 1, "L", 1, &r), TS_EDUP); /* resend */
    assert_int_equal(r.seq, 1);
    assert_ts_err(sc_commit_fenced(&t, "h", "e3", "B", 1, "L", 2, &r), 0);
    assert_int_equal(r.seq, 2);
    /* the term alone is not enough: every member knows it, only B holds it */
    assert_ts_err(sc_commit_fenced(&t, "h", "e5", "C", 1, "L", 2, &r), TS_ESTALE);
    assert_int_equal(r.term, 2);
    assert_ts_err(sc_sess(&t, "h", &s), 0);
    assert_int_equal(s.last_seq, 2); /* e0 and e2 were not appended */
    assert_int_equal(s.state_ver, 2);
    /* expired */
    assert_ts_err(sc_lrenew(&t, "L", "B", 2, 30, &r), 0);
    sc_sleep(&t, 60);
    assert_ts_err(sc_commit_fenced(&t, "h", "e4", "B", 2, "L", 2, &r), TS_ESTALE);
    assert_int_equal(r.term, 2);
    sc_close(&t);
}

/* Ops issued right before close still complete, before the close callback;
 * after close every call is refused at once. */
SC_FN void c_close_pending(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r[6];
    ts_buf_t *b = ts_buf_from("x", 1);
    ts_store_reg_t e = {{S("s"), S("d"), S("t")}, S("u"), S(SC_NODE), S(""), 0};
    assert_ts_err(SC_CALL(&t, &r[0], ts_store_log_append(&t.st, S("s"), b, sc_on_seq, &r[0])), 0);
    assert_ts_err(SC_CALL(&t, &r[1], ts_store_state_cas(&t.st, S("s"), 0, b, sc_on_state, &r[1])),
                  0);
    assert_ts_err(SC_CALL(&t, &r[2], ts_store_reg_put(&t.st, &e, 1000, sc_on_done, &r[2])), 0);
    assert_ts_err(
        SC_CALL(&t, &r[3], ts_store_reg_list(&t.st, TS_STORE_BY_USER, S("u"), sc_on_list, &r[3])),
        0);
    assert_ts_err(SC_CALL(&t, &r[4], ts_store_lease_acquire(&t.st, S("L"), S("A"), 1000,
                                                            sc_on_lease, &r[4])),
                  0);
    assert_ts_err(SC_CALL(&t, &r[5], ts_store_log_read(&t.st, S("s"), 0, 10, sc_on_log, &r[5])),
                  0);
    t.in_call = 1;
    assert_ts_err(ts_store_close(&t.st, sc_on_close, &t), 0);
    t.in_call = 0;
    sc_res_t late;
    assert_ts_err(SC_CALL(&t, &late, ts_store_log_append(&t.st, S("s"), b, sc_on_seq, &late)),
                  TS_ECLOSED);
    assert_ts_err(SC_CALL(&t, &late, ts_store_state_get(&t.st, S("s"), sc_on_state, &late)),
                  TS_ECLOSED);
    ts_buf_unref(b);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    assert_true(t.closed);
    assert_int_equal(t.outstanding, 0);
    for (int i = 0; i < 6; i++) {
        assert_true(r[i].called);
        assert_true(r[i].status == 0 || r[i].status == TS_ECLOSED);
    }
    assert_false(late.called);
    assert_int_equal(uv_loop_close(&t.loop), 0);
}

/* A callback may issue the next op (and close the store): it runs later,
 * never nested inside the callback that issued it. */
typedef struct sc_chain {
    sc_t *t;
    sc_res_t r[5];
    int i;
} sc_chain_t;

static void sc_chain_next(int status, uint64_t seq, void *ud);

static void sc_chain_issue(sc_chain_t *c) {
    ts_buf_t *b = ts_buf_from("c", 1);
    sc_t *t = c->t;
    int rc = SC_CALL(t, &c->r[c->i], ts_store_log_append(&t->st, S("chain"), b, sc_chain_next, c));
    ts_buf_unref(b);
    assert_ts_err(rc, 0);
}

static void sc_chain_next(int status, uint64_t seq, void *ud) {
    sc_chain_t *c = ud;
    sc_on_seq(status, seq, &c->r[c->i]);
    assert_int_equal(seq, (uint64_t)c->i + 1);
    c->t->in_call = 1; /* anything called back from here would be re-entry */
    if (++c->i < 5) {
        sc_chain_issue(c);
        c->t->in_call = 1;
    } else {
        assert_ts_err(ts_store_close(&c->t->st, sc_on_close, c->t), 0);
    }
    c->t->in_call = 0;
}

SC_FN void c_callback_chain(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_chain_t c = {.t = &t};
    sc_chain_issue(&c);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    assert_int_equal(c.i, 5);
    assert_true(t.closed);
    assert_int_equal(t.outstanding, 0);
    assert_int_equal(uv_loop_close(&t.loop), 0);
}

/* ---- session history: sess_get, commit, snapshots, retention, durability ---- */

#define SC_ANY TS_STORE_ANY_VER

/* A session never written is all zeros; the first write of any kind gives
 * it a nonzero epoch that then never changes. */
SC_FN void c_sess_get(void **state) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, *state, NULL);
    /* asking creates the session: its epoch is fixed from the first contact */
    assert_ts_err(sc_sess(&t, "h1", &r), 0);
    assert_true(r.has_res);
    uint64_t epoch = r.epoch;
    assert_true(epoch != 0);
    assert_int_equal(r.last_seq + r.trimmed + r.state_ver + r.snap_seq + r.snap_ver, 0);
    assert_string_equal(r.snap, "");
    assert_ts_err(sc_sess(&t, "h1", &r), 0);
    assert_int_equal(r.epoch, epoch);
    assert_ts_err(sc_commit(&t, "h1", "e1", NULL, 0, SC_ANY, 1, &r), 0);
    assert_int_equal(r.epoch, epoch);
    assert_ts_err(sc_commit(&t, "h1", "e2", NULL, 0, SC_ANY, 0, &r), 0);
    assert_int_equal(r.epoch, epoch);
    assert_ts_err(sc_sess(&t, "h1", &r), 0);
    assert_int_equal(r.epoch, epoch);
    assert_int_equal(r.last_seq, 2);
    assert_int_equal(r.state_ver, 1);
    assert_int_equal(r.trimmed, 0);
    /* log_append and state_cas create sessions too, each with its own epoch */
    uint64_t seq;
    assert_ts_err(sc_append(&t, "h2", "x", &seq), 0);
    assert_ts_err(sc_sess(&t, "h2", &r), 0);
    assert_true(r.epoch != 0 && r.epoch != epoch);
    assert_int_equal(r.last_seq, 1);
    assert_int_equal(r.state_ver, 0);
    sc_res_t c;
    assert_ts_err(sc_cas(&t, "h3", 0, "{}", &c), 0);
    assert_ts_err(sc_sess(&t, "h3", &r), 0);
    assert_true(r.epoch != 0);
    assert_int_equal(r.state_ver, 0); /* state_cas's version is a separate counter */
    assert_ts_err(sc_sess(&t, "nobody", &r), 0);
    assert_true(r.epoch != 0); /* created by the asking, empty */
    assert_int_equal(r.last_seq, 0);
    sc_close(&t);
}

/* commit appends like log_append (one sequence per session) and counts
 * state changes; log_read returns what was committed. */
SC_FN void c_commit_basic(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    sc_open(&t, *state, NULL);
    static const struct {
        const char *ev;
        int is_state;
        uint64_t seq, ver;
    } rows[] = {{"s1", 1, 1, 1}, {"n1", 0, 2, 1}, {"s2", 1, 3, 2}, {"s3", 1, 5, 3}};
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        if (i == 3) assert_ts_err(sc_append(&t, "h", "plain", &seq), 0); /* seq 4 */
        assert_ts_err(sc_commit(&t, "h", rows[i].ev, NULL, 0, SC_ANY, rows[i].is_state, &r), 0);
        assert_int_equal(r.seq, rows[i].seq);
        assert_int_equal(r.state_ver, rows[i].ver);
    }
    assert_ts_err(sc_read(&t, "h", 0, 10, &r), 0);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.last_seq, 5);
    static const char *const want[] = {"s1", "n1", "s2", "plain", "s3"};
    for (size_t i = 0; i < 5; i++) assert_string_equal(r.ev[i], want[i]);
    assert_ts_err(sc_commit(&t, "other", "o", NULL, 0, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 1);
    assert_int_equal(r.state_ver, 1);
    sc_close(&t);
}

/* if_ver: a commit against another state_ver writes nothing and says
 * which state_ver it is now. */
SC_FN void c_commit_if_ver(void **state) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, *state, NULL);
    assert_ts_err(sc_commit(&t, "h", "x", NULL, 0, 3, 1, &r), TS_ECONFLICT);
    assert_int_equal(r.state_ver, 0);
    assert_int_equal(r.epoch, 0); /* nothing was created */
    assert_ts_err(sc_sess(&t, "h", &r), 0);
    assert_true(r.epoch != 0); /* asking did */
    assert_int_equal(r.last_seq, 0);
    static const struct {
        uint64_t if_ver;
        int is_state, want;
        uint64_t seq, ver;
    } rows[] = {
        {0, 1, 0, 1, 1},
        {0, 1, TS_ECONFLICT, 0, 1},
        {1, 0, 0, 2, 1},          /* conditioned, not a state change */
        {1, 1, 0, 3, 2},
        {1, 1, TS_ECONFLICT, 0, 2},
        {5, 0, TS_ECONFLICT, 0, 2},
        {SC_ANY, 1, 0, 4, 3},
        {TS_STORE_PROBE_VER, 1, TS_ECONFLICT, 0, 3}, /* never matches */
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        int rc = sc_commit(&t, "h", "ev", NULL, 0, rows[i].if_ver, rows[i].is_state, &r);
        if (rc != rows[i].want)
            fail_msg("row %zu: got %s, want %s", i, ts_err_name(rc), ts_err_name(rows[i].want));
        assert_int_equal(r.state_ver, rows[i].ver);
        if (rc == 0) assert_int_equal(r.seq, rows[i].seq);
    }
    assert_ts_err(sc_sess(&t, "h", &r), 0);
    assert_int_equal(r.last_seq, 4); /* refused commits consumed no seq */
    assert_int_equal(r.state_ver, 3);
    sc_close(&t);
}

/* Commits conditioned on ver, ver+1, ver+2 issued in one go all succeed,
 * in order; a fourth with a stale ver fails. */
SC_FN void c_commit_pipelined_ver(void **state) {
    sc_t t;
    sc_res_t r, p[4];
    sc_open(&t, *state, NULL);
    assert_ts_err(sc_commit(&t, "h", "base", NULL, 0, SC_ANY, 1, &r), 0); /* ver 1 */
    ts_buf_t *b = ts_buf_from("ev", 2);
    static const uint64_t ifv[4] = {1, 2, 3, 2};
    for (int i = 0; i < 4; i++) {
        ts_store_commit_t c = {b, ts_slice("", 0), 0, ifv[i], 1, 0, ts_slice("", 0), 0, ts_slice("", 0)};
        assert_ts_err(SC_CALL(&t, &p[i], ts_store_commit(&t.st, S("h"), &c, sc_on_commit, &p[i])),
                      0);
    }
    ts_buf_unref(b);
    sc_wait(&t, &p[3]);
    for (int i = 0; i < 3; i++) {
        assert_ts_err(p[i].status, 0);
        assert_int_equal(p[i].seq, (uint64_t)i + 2);
        assert_int_equal(p[i].state_ver, (uint64_t)i + 2);
        if (i) assert_true(p[i].order > p[i - 1].order);
    }
    assert_ts_err(p[3].status, TS_ECONFLICT);
    assert_int_equal(p[3].state_ver, 4);
    assert_true(p[3].order > p[2].order);
    sc_close(&t);
}

/* A chain: pipelined commits that each assume the one before applied. Once
 * one is not appended (a duplicate here), the rest of its chain is refused
 * even where another writer's change has taken the version they expect;
 * another chain is not affected. */
SC_FN void c_commit_chain(void **state) {
    sc_t t;
    sc_res_t r, p[4];
    sc_open(&t, *state, NULL);
    assert_ts_err(sc_commit(&t, "h", "first", "A", 1, SC_ANY, 1, &r), 0); /* ver 1 */
    ts_buf_t *b = ts_buf_from("ev", 2);
    /* chain 7: a resend of A/1 (expects ver 1 -> 2, but is a duplicate),
     * then a change expecting ver 2; meanwhile B (no chain) takes ver 2 */
    ts_store_commit_t c0 = {b, S("A"), 1, 1, 1, 7, ts_slice("", 0), 0, ts_slice("", 0)};
    ts_store_commit_t other = {b, S("B"), 1, 1, 1, 0, ts_slice("", 0), 0, ts_slice("", 0)};
    ts_store_commit_t c1 = {b, ts_slice("", 0), 0, 2, 1, 7, ts_slice("", 0), 0, ts_slice("", 0)};
    ts_store_commit_t c2 = {b, ts_slice("", 0), 0, 2, 1, 8, ts_slice("", 0), 0, ts_slice("", 0)}; /* another chain */
    assert_ts_err(SC_CALL(&t, &p[0], ts_store_commit(&t.st, S("h"), &c0, sc_on_commit, &p[0])), 0);
    assert_ts_err(SC_CALL(&t, &p[1], ts_store_commit(&t.st, S("h"), &other, sc_on_commit, &p[1])),
                  0);
    assert_ts_err(SC_CALL(&t, &p[2], ts_store_commit(&t.st, S("h"), &c1, sc_on_commit, &p[2])), 0);
    assert_ts_err(SC_CALL(&t, &p[3], ts_store_commit(&t.st, S("h"), &c2, sc_on_commit, &p[3])), 0);
    ts_buf_unref(b);
    sc_wait(&t, &p[3]);
    assert_ts_err(p[0].status, TS_EDUP);
    assert_ts_err(p[1].status, 0);
    assert_int_equal(p[1].state_ver, 2);
    assert_ts_err(p[2].status, TS_ECONFLICT); /* ver 2 is B's, not what the chain assumed */
    assert_ts_err(p[3].status, 0);            /* chain 8 expected ver 2: it is */
    assert_int_equal(p[3].state_ver, 3);
    sc_close(&t);
}

/* Exactly once: a resend is TS_EDUP with the original's seq and bytes and
 * is never appended again; a mut never applied is applied whatever its
 * number; clients and sessions are independent. */
SC_FN void c_commit_exactly_once(void **state) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, *state, NULL);
    static const struct {
        const char *sess, *client;
        uint64_t mut;
        const char *ev;
        int want;
        uint64_t seq; /* new, or the original's */
        const char *orig;
    } rows[] = {
        {"h", "A", 1, "a1", 0, 1, NULL},
        {"h", "A", 1, "a1 again", TS_EDUP, 1, "a1"},
        {"h", "A", 5, "a5", 0, 2, NULL},          /* gaps are fine */
        {"h", "A", 3, "a3", 0, 3, NULL},          /* never applied, inside the range */
        {"h", "A", 3, "a3 again", TS_EDUP, 3, "a3"},
        {"h", "A", 5, "a5 again", TS_EDUP, 2, "a5"},
        {"h", "B", 1, "b1", 0, 4, NULL},          /* another client */
        {"h", "B", 1, "b1 again", TS_EDUP, 4, "b1"},
        {"h2", "A", 1, "h2 a1", 0, 1, NULL},      /* another session */
        {"h", "A", 2, "a2", 0, 5, NULL},
        {"h", "A", 1, "a1 third", TS_EDUP, 1, "a1"},
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        int rc = sc_commit(&t, rows[i].sess, rows[i].ev, rows[i].client, rows[i].mut, SC_ANY, 1,
                           &r);
        if (rc != rows[i].want)
            fail_msg("row %zu: got %s, want %s", i, ts_err_name(rc), ts_err_name(rows[i].want));
        assert_int_equal(r.seq, rows[i].seq);
        assert_true(r.epoch != 0);
        if (rows[i].orig) {
            assert_true(r.has_orig);
            assert_int_equal(r.orig_seq, rows[i].seq);
            assert_string_equal(r.orig, rows[i].orig);
        }
    }
    /* a resend is a duplicate whatever its condition says now */
    assert_ts_err(sc_commit(&t, "h", "x", "A", 5, 1, 1, &r), TS_EDUP);
    assert_ts_err(sc_commit(&t, "h", "x", "A", 5, TS_STORE_PROBE_VER, 1, &r), TS_EDUP);
    assert_int_equal(r.seq, 2);
    /* a probe of a mut never applied: TS_ECONFLICT, nothing written */
    assert_ts_err(sc_commit(&t, "h", "x", "A", 4, TS_STORE_PROBE_VER, 1, &r), TS_ECONFLICT);
    assert_ts_err(sc_read(&t, "h", 0, 20, &r), 0);
    assert_int_equal(r.n, 5);
    static const char *const want[] = {"a1", "a5", "a3", "b1", "a2"};
    for (size_t i = 0; i < 5; i++) assert_string_equal(r.ev[i], want[i]);
    assert_ts_err(sc_sess(&t, "h", &r), 0);
    assert_int_equal(r.state_ver, 5); /* duplicates changed nothing */
    sc_close(&t);
}

typedef struct sc_many {
    sc_t *t;
    int left, failed;
    int status[TS_STORE_MUT_WINDOW + 64];
} sc_many_t;

static void sc_many_cb(int status, const ts_store_commit_res_t *c, void *ud) {
    sc_many_t *m = ud;
    assert_false(m->t->in_call);
    m->t->outstanding--;
    if (status) m->failed++;
    m->left--;
}

/* Commits muts first..last of `client` in one go. */
SC_FN void sc_commit_range(sc_t *t, const char *sess, const char *client, uint64_t first,
                           uint64_t last) {
    sc_many_t m = {.t = t};
    ts_buf_t *b = ts_buf_from("m", 1);
    for (uint64_t mut = first; mut <= last; mut++) {
        ts_store_commit_t c = {b, S(client), mut, SC_ANY, 0, 0, ts_slice("", 0), 0, ts_slice("", 0)};
        m.left++;
        t->in_call = 1;
        assert_ts_err(ts_store_commit(&t->st, S(sess), &c, sc_many_cb, &m), 0);
        t->in_call = 0;
        t->outstanding++;
    }
    ts_buf_unref(b);
    uint64_t deadline = ts_now_ms() + 5000;
    while (m.left) {
        assert_true(ts_now_ms() < deadline);
        uv_run(&t->loop, UV_RUN_ONCE);
    }
    assert_int_equal(m.failed, 0);
}

/* The window remembers a client's newest TS_STORE_MUT_WINDOW mutations;
 * older than all of them while full: TS_ETOOOLD (cannot tell). */
SC_FN void c_commit_window(void **state) {
    sc_t t;
    sc_res_t r;
    const uint64_t W = TS_STORE_MUT_WINDOW;
    sc_open(&t, *state, NULL);
    sc_commit_range(&t, "h", "A", 1, W); /* seqs 1..W */
    assert_ts_err(sc_commit(&t, "h", "x", "A", 1, SC_ANY, 0, &r), TS_EDUP);
    assert_int_equal(r.seq, 1);
    assert_ts_err(sc_commit(&t, "h", "new", "A", W + 10, SC_ANY, 0, &r), 0); /* forgets 1 */
    assert_int_equal(r.seq, W + 1);
    assert_ts_err(sc_commit(&t, "h", "x", "A", 1, SC_ANY, 0, &r), TS_ETOOOLD);
    assert_false(r.has_res);
    assert_ts_err(sc_commit(&t, "h", "x", "A", 1, TS_STORE_PROBE_VER, 0, &r), TS_ETOOOLD);
    assert_ts_err(sc_commit(&t, "h", "x", "A", 2, SC_ANY, 0, &r), TS_EDUP);
    assert_int_equal(r.seq, 2);
    assert_ts_err(sc_commit(&t, "h", "gap", "A", W + 5, SC_ANY, 0, &r), 0); /* forgets 2 */
    assert_int_equal(r.seq, W + 2);
    assert_ts_err(sc_commit(&t, "h", "x", "A", 2, SC_ANY, 0, &r), TS_ETOOOLD);
    assert_ts_err(sc_commit(&t, "h", "x", "A", W + 5, SC_ANY, 0, &r), TS_EDUP);
    assert_int_equal(r.seq, W + 2);
    assert_ts_err(sc_commit(&t, "h", "x", "B", 1, SC_ANY, 0, &r), 0); /* B has its own */
    assert_ts_err(sc_sess(&t, "h", &r), 0);
    assert_int_equal(r.last_seq, W + 3);
    sc_close(&t);
}

/* Snapshots: newer kept, older or equal TS_ESTALE, past last_seq refused. */
SC_FN void c_snapshot(void **state) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, *state, NULL);
    assert_ts_err(sc_snap(&t, "h", 1, 0, "{}"), TS_EINVAL); /* nothing to cover yet */
    for (int i = 0; i < 5; i++) assert_ts_err(sc_commit(&t, "h", "e", NULL, 0, SC_ANY, 1, &r), 0);
    static const struct {
        uint64_t seq, ver;
        const char *doc;
        int want;
        uint64_t snap_seq;
        const char *now;
    } rows[] = {
        {3, 3, "{\"at\":3}", 0, 3, "{\"at\":3}"},
        {2, 2, "{\"at\":2}", TS_ESTALE, 3, "{\"at\":3}"},
        {3, 3, "{\"again\":3}", TS_ESTALE, 3, "{\"at\":3}"},
        {6, 6, "{\"at\":6}", TS_EINVAL, 3, "{\"at\":3}"},
        {5, 5, "{\"at\":5}", 0, 5, "{\"at\":5}"},
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        int rc = sc_snap(&t, "h", rows[i].seq, rows[i].ver, rows[i].doc);
        if (rc != rows[i].want)
            fail_msg("row %zu: got %s, want %s", i, ts_err_name(rc), ts_err_name(rows[i].want));
        assert_ts_err(sc_sess(&t, "h", &r), 0);
        assert_int_equal(r.snap_seq, rows[i].snap_seq);
        assert_int_equal(r.snap_ver, rows[i].snap_seq);
        assert_string_equal(r.snap, rows[i].now);
    }
    assert_int_equal(r.last_seq, 5);
    assert_int_equal(r.state_ver, 5);
    assert_ts_err(sc_snap(&t, "nobody", 1, 0, "{}"), TS_EINVAL);
    sc_close(&t);
}

static void sc_patch_retain(ts_store_cfg_t *c) {
    c->retain_events = 2;
    c->retain_ms = 1;
    c->sweep_ms = 20;
}

static void sc_patch_retain_long(ts_store_cfg_t *c) {
    c->retain_events = 2;
    c->retain_ms = 3600 * 1000;
    c->sweep_ms = 20;
}

/* Runs sweeps until the session's trim mark reaches want (2 s at most). */
SC_FN void sc_wait_trimmed(sc_t *t, const char *sess, uint64_t want) {
    sc_res_t r;
    uint64_t deadline = ts_now_ms() + 2000;
    for (;;) {
        assert_ts_err(sc_sess(t, sess, &r), 0);
        if (r.trimmed >= want || ts_now_ms() > deadline) break;
        sc_sleep(t, 10);
    }
    assert_int_equal(r.trimmed, want);
}

/* Retention drops events beyond the newest retain_events and older than
 * retain_ms, and never past the snapshot. */
SC_FN void c_retention(void **state) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, *state, sc_patch_retain);
    for (int i = 1; i <= 10; i++) {
        char ev[8];
        snprintf(ev, sizeof ev, "e%d", i);
        assert_ts_err(sc_commit(&t, "h", ev, NULL, 0, SC_ANY, 1, &r), 0);
    }
    sc_sleep(&t, 80); /* several sweeps: no snapshot, nothing may go */
    assert_ts_err(sc_read(&t, "h", 0, 20, &r), 0);
    assert_int_equal(r.trimmed, 0);
    assert_int_equal(r.n, 10);
    assert_ts_err(sc_snap(&t, "h", 6, 6, "{\"at\":6}"), 0);
    sc_wait_trimmed(&t, "h", 6); /* the snapshot bounds it */
    sc_sleep(&t, 60);
    assert_ts_err(sc_read(&t, "h", 0, 20, &r), 0);
    assert_int_equal(r.trimmed, 6);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.seqs[0], 7);
    assert_string_equal(r.ev[0], "e7");
    assert_ts_err(sc_snap(&t, "h", 10, 10, "{\"at\":10}"), 0);
    sc_wait_trimmed(&t, "h", 8); /* the newest 2 stay */
    assert_ts_err(sc_read(&t, "h", 8, 20, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ev[1], "e10");
    assert_ts_err(sc_commit(&t, "h", "e11", NULL, 0, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 11);
    sc_close(&t);

    /* younger than retain_ms: kept, snapshot or not */
    sc_open(&t, *state, sc_patch_retain_long);
    for (int i = 0; i < 6; i++) assert_ts_err(sc_commit(&t, "y", "e", NULL, 0, SC_ANY, 1, &r), 0);
    assert_ts_err(sc_snap(&t, "y", 6, 6, "{}"), 0);
    sc_sleep(&t, 80);
    assert_ts_err(sc_sess(&t, "y", &r), 0);
    assert_int_equal(r.trimmed, 0);
    sc_close(&t);
}

static void sc_patch_retain_time(ts_store_cfg_t *c) {
    c->retain_events = 1;
    c->retain_ms = 300;
    c->sweep_ms = 20;
}

/* The time bound: of ten events covered by a snapshot, the five appended
 * 400 ms earlier go, the five appended just now stay until they are older
 * than retain_ms too (then all but the newest retain_events). */
SC_FN void sc_retention_time_run(sc_env_t *env, void (*patch)(ts_store_cfg_t *)) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, patch);
    for (int i = 1; i <= 10; i++) {
        if (i == 6) sc_sleep(&t, 400);
        char ev[8];
        snprintf(ev, sizeof ev, "e%d", i);
        assert_ts_err(sc_commit(&t, "h", ev, NULL, 0, SC_ANY, 1, &r), 0);
    }
    uint64_t young = ts_now_ms();
    assert_ts_err(sc_snap(&t, "h", 10, 10, "{}"), 0);
    sc_wait_trimmed(&t, "h", 5);
    sc_sleep(&t, 60);
    assert_ts_err(sc_read(&t, "h", 0, 20, &r), 0);
    if (ts_now_ms() - young < 300) assert_int_equal(r.trimmed, 5); /* else too slow to tell */
    assert_string_equal(r.ev[0], "e6");
    sc_sleep(&t, 300);
    sc_wait_trimmed(&t, "h", 9);
    assert_ts_err(sc_read(&t, "h", 0, 20, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0], "e10");
    sc_close(&t);
}

SC_FN void c_retention_time(void **state) { sc_retention_time_run(*state, sc_patch_retain_time); }

static void sc_patch_slow_group(ts_store_cfg_t *c) { c->group_ms = 300; }
static void sc_patch_group(ts_store_cfg_t *c) { c->group_ms = 30; }

/* A second loop's handle on the store, run from the test's thread. */
typedef struct sc_door {
    uv_loop_t loop;
    ts_store_t st;
} sc_door_t;

/* Reads never show a write before it is durable: a read through another
 * door, issued right after a commit executed, sees the event only if the
 * commit's callback already ran. */
SC_FN void c_durable_reads(void **state) {
    sc_t t;
    sc_open(&t, *state, sc_patch_slow_group);
    sc_res_t w0, w, rd, si;
    assert_ts_err(sc_commit(&t, "h", "first", NULL, 0, SC_ANY, 1, &w0), 0);
    sc_door_t b;
    assert_int_equal(uv_loop_init(&b.loop), 0);
    int rc = ts_store_attach(&b.st, &t.st, &b.loop);
    if (rc == TS_EINVAL) { /* a backend without doors has nothing to show here */
        assert_int_equal(uv_loop_close(&b.loop), 0);
        sc_close(&t);
        return;
    }
    assert_ts_err(rc, 0);
    ts_buf_t *ev = ts_buf_from("second", 6);
    ts_store_commit_t c = {ev, ts_slice("", 0), 0, SC_ANY, 1, 0, ts_slice("", 0), 0, ts_slice("", 0)};
    assert_ts_err(SC_CALL(&t, &w, ts_store_commit(&t.st, S("h"), &c, sc_on_commit, &w)), 0);
    ts_buf_unref(ev);
    uv_run(&t.loop, UV_RUN_NOWAIT); /* the commit runs */
    assert_ts_err(SC_CALL(&t, &rd, ts_store_log_read(&b.st, S("h"), 0, 10, sc_on_log, &rd)), 0);
    assert_ts_err(SC_CALL(&t, &si, ts_store_sess_get(&b.st, S("h"), sc_on_sess, &si)), 0);
    uint64_t deadline = ts_now_ms() + 5000;
    while (!rd.called || !si.called) {
        assert_true(ts_now_ms() < deadline);
        uv_run(&b.loop, UV_RUN_NOWAIT);
    }
    if (!w.called && !t.env->durable_on_execute) {
        assert_int_equal(rd.n, 1);
        assert_int_equal(rd.last_seq, 1);
        assert_int_equal(si.last_seq, 1);
        assert_int_equal(si.state_ver, 1);
    }
    sc_wait(&t, &w);
    assert_ts_err(w.status, 0);
    assert_int_equal(w.seq, 2);
    assert_ts_err(SC_CALL(&t, &rd, ts_store_log_read(&b.st, S("h"), 0, 10, sc_on_log, &rd)), 0);
    while (!rd.called) uv_run(&b.loop, UV_RUN_ONCE);
    assert_int_equal(rd.n, 2);
    assert_string_equal(rd.ev[1], "second");
    int closed = 0;
    assert_ts_err(ts_store_close(&b.st, sc_on_sleep_flag, &closed), 0);
    while (!closed) uv_run(&b.loop, UV_RUN_ONCE);
    assert_int_equal(uv_loop_close(&b.loop), 0);
    sc_close(&t);
}

/* Callbacks come in issue order, writes waiting for their commit or not,
 * and a read issued after a write sees it. Closing right after lets every
 * op finish first. */
SC_FN void c_order_group(void **state) {
    sc_t t;
    sc_open(&t, *state, sc_patch_group);
    enum { N = 9 };
    sc_res_t r[N];
    ts_buf_t *b = ts_buf_from("ev", 2);
    ts_store_commit_t c = {b, S("A"), 1, SC_ANY, 1, 0, ts_slice("", 0), 0, ts_slice("", 0)};
    ts_store_reg_t e = {{S("h"), S("d"), S("t")}, S("u"), S(SC_NODE), S(""), 0};
    int i = 0;
    assert_ts_err(SC_CALL(&t, &r[i], ts_store_commit(&t.st, S("h"), &c, sc_on_commit, &r[i])), 0);
    i++;
    assert_ts_err(SC_CALL(&t, &r[i], ts_store_log_read(&t.st, S("h"), 0, 10, sc_on_log, &r[i])), 0);
    i++;
    assert_ts_err(SC_CALL(&t, &r[i], ts_store_reg_put(&t.st, &e, 10000, sc_on_done, &r[i])), 0);
    i++;
    assert_ts_err(SC_CALL(&t, &r[i], ts_store_sess_get(&t.st, S("h"), sc_on_sess, &r[i])), 0);
    i++;
    assert_ts_err(SC_CALL(&t, &r[i], ts_store_commit(&t.st, S("h"), &c, sc_on_commit, &r[i])), 0);
    i++; /* the same mut again: a duplicate */
    assert_ts_err(SC_CALL(&t, &r[i], ts_store_snap_put(&t.st, S("h"), 1, 1, b, sc_on_done, &r[i])),
                  0);
    i++;
    assert_ts_err(SC_CALL(&t, &r[i], ts_store_lease_acquire(&t.st, S("L"), S("A"), 10000,
                                                            sc_on_lease, &r[i])),
                  0);
    i++;
    assert_ts_err(SC_CALL(&t, &r[i],
                          ts_store_reg_list(&t.st, TS_STORE_BY_SESSION, S("h"), sc_on_list, &r[i])),
                  0);
    i++;
    assert_ts_err(SC_CALL(&t, &r[i], ts_store_log_append(&t.st, S("h2"), b, sc_on_seq, &r[i])), 0);
    i++;
    assert_int_equal(i, N);
    ts_buf_unref(b);
    sc_wait(&t, &r[N - 1]);
    for (i = 0; i < N; i++) {
        assert_true(r[i].called);
        if (i) assert_int_equal(r[i].order, r[i - 1].order + 1);
    }
    assert_ts_err(r[0].status, 0);
    assert_int_equal(r[1].n, 1); /* the read saw the commit before it */
    assert_ts_err(r[2].status, 0);
    assert_int_equal(r[3].last_seq, 1);
    assert_int_equal(r[3].state_ver, 1);
    assert_ts_err(r[4].status, TS_EDUP);
    assert_int_equal(r[4].seq, 1);
    assert_ts_err(r[5].status, 0);
    assert_ts_err(r[6].status, 0);
    assert_int_equal(r[7].n, 1);
    assert_ts_err(r[8].status, 0);
    /* again, and close at once: every callback before the close callback */
    b = ts_buf_from("ev2", 3);
    c = (ts_store_commit_t){b, S("A"), 2, SC_ANY, 1, 0, ts_slice("", 0), 0, ts_slice("", 0)};
    assert_ts_err(SC_CALL(&t, &r[0], ts_store_commit(&t.st, S("h"), &c, sc_on_commit, &r[0])), 0);
    assert_ts_err(SC_CALL(&t, &r[1], ts_store_sess_get(&t.st, S("h"), sc_on_sess, &r[1])), 0);
    ts_buf_unref(b);
    sc_close(&t);
    assert_ts_err(r[0].status, 0);
    assert_int_equal(r[0].seq, 2);
    assert_int_equal(r[1].last_seq, 2);
}

/* ---- publish / subscribe ---- */

#define SC_MAX_MSGS 128

/* What one subscriber received. */
typedef struct sc_inbox {
    sc_t *t;
    int n;
    char chan[SC_MAX_MSGS][32];
    char msg[SC_MAX_MSGS][32];
    size_t len[SC_MAX_MSGS];
} sc_inbox_t;

static void sc_on_tick(uv_timer_t *h) { (void)h; }

static void sc_on_msg(ts_slice_t channel, ts_buf_t *msg, void *ud) {
    sc_inbox_t *in = ud;
    assert_false(in->t->in_call);
    assert_false(in->t->closed); /* never after the close callback */
    if (in->n < SC_MAX_MSGS) {
        sc_copy(in->chan[in->n], sizeof in->chan[0], channel);
        size_t l = msg->len < sizeof in->msg[0] ? msg->len : sizeof in->msg[0];
        memcpy(in->msg[in->n], msg->data, l);
        in->len[in->n] = msg->len;
    }
    in->n++;
}

SC_FN int sc_sub_k(sc_t *t, ts_store_t *st, ts_store_chan_t kind, const char *ch,
                   sc_inbox_t *in) {
    sc_res_t r;
    int rc = SC_CALL(t, &r, ts_store_subscribe(st, kind, S(ch), sc_on_msg, in, sc_on_done, &r));
    if (rc) return rc;
    sc_wait(t, &r);
    return r.status;
}

SC_FN int sc_sub(sc_t *t, ts_store_t *st, const char *ch, sc_inbox_t *in) {
    sc_res_t r;
    int rc = SC_CALL(t, &r, ts_store_subscribe(st, TS_STORE_CHAN, S(ch), sc_on_msg, in,
                                               sc_on_done, &r));
    if (rc) return rc;
    sc_wait(t, &r);
    return r.status;
}

SC_FN int sc_unsub(sc_t *t, ts_store_t *st, const char *ch, sc_inbox_t *in) {
    sc_res_t r;
    int rc = SC_CALL(t, &r, ts_store_unsubscribe(st, TS_STORE_CHAN, S(ch), sc_on_msg, in,
                                                 sc_on_done, &r));
    if (rc) return rc;
    sc_wait(t, &r);
    return r.status;
}

SC_FN int sc_pub_k(sc_t *t, ts_store_chan_t kind, const char *ch, const void *p, size_t n) {
    sc_res_t r;
    ts_buf_t *b = ts_buf_from(p, n);
    int rc = SC_CALL(t, &r, ts_store_publish(&t->st, kind, S(ch), b, sc_on_done, &r));
    ts_buf_unref(b); /* the store took what it needs */
    if (rc) return rc;
    sc_wait(t, &r);
    return r.status;
}

/* Runs the loop until in has n messages (5 s at most), then a little more:
 * nothing else may come. */
SC_FN int sc_pub(sc_t *t, const char *ch, const void *p, size_t n) {
    return sc_pub_k(t, TS_STORE_CHAN, ch, p, n);
}

SC_FN void sc_wait_msgs(sc_t *t, sc_inbox_t *in, int n) {
    uint64_t deadline = ts_now_ms() + 5000;
    while (in->n < n) {
        assert_true(ts_now_ms() < deadline);
        uv_run(&t->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    sc_sleep(t, 20);
    assert_int_equal(in->n, n);
}

/* Messages reach the subscribers of their channel only, in the order
 * published, byte for byte; a subscription made twice is one; after an
 * unsubscribe nothing more comes; a closed handle gets nothing more. */
SC_FN void c_pubsub(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_inbox_t a = {.t = &t}, a2 = {.t = &t};
    sc_res_t r;
    assert_ts_err(SC_CALL(&t, &r, ts_store_subscribe(&t.st, TS_STORE_CHAN, S(""), sc_on_msg, &a, sc_on_done, &r)),
                  TS_EINVAL);
    assert_ts_err(SC_CALL(&t, &r, ts_store_subscribe(&t.st, TS_STORE_CHAN, S("c1"), NULL, &a, sc_on_done, &r)),
                  TS_EINVAL);
    assert_ts_err(SC_CALL(&t, &r, ts_store_publish(&t.st, TS_STORE_CHAN, S("c1"), NULL, sc_on_done, &r)),
                  TS_EINVAL);
    assert_ts_err(sc_unsub(&t, &t.st, "c1", &a), TS_ENOTFOUND);
    /* nobody listening: published, delivered to nobody */
    assert_ts_err(sc_pub(&t, "c1", "lost", 4), 0);
    assert_ts_err(sc_sub(&t, &t.st, "c1", &a), 0);
    assert_ts_err(sc_sub(&t, &t.st, "c1", &a), 0); /* the same: one subscription */
    assert_ts_err(sc_sub(&t, &t.st, "c2", &a2), 0);
    assert_ts_err(sc_pub(&t, "c1", "one", 3), 0);
    assert_ts_err(sc_pub(&t, "c3", "nobody", 6), 0);
    sc_wait_msgs(&t, &a, 1);
    assert_string_equal(a.chan[0], "c1");
    assert_memory_equal(a.msg[0], "one", 3);
    assert_int_equal(a2.n, 0);
    /* binary, byte for byte */
    static const char bin[] = {'\0', 'x', '\n', '\0', (char)0xff};
    assert_ts_err(sc_pub(&t, "c2", bin, sizeof bin), 0);
    sc_wait_msgs(&t, &a2, 1);
    assert_int_equal(a2.len[0], sizeof bin);
    assert_memory_equal(a2.msg[0], bin, sizeof bin);
    /* order: 100 published without waiting */
    sc_res_t rs[100];
    for (int i = 0; i < 100; i++) {
        char m[16];
        int l = snprintf(m, sizeof m, "m%03d", i);
        ts_buf_t *b = ts_buf_from(m, (size_t)l);
        assert_ts_err(SC_CALL(&t, &rs[i], ts_store_publish(&t.st, TS_STORE_CHAN, S("c1"), b, sc_on_done, &rs[i])), 0);
        ts_buf_unref(b);
    }
    sc_wait(&t, &rs[99]);
    sc_wait_msgs(&t, &a, 101);
    for (int i = 0; i < 100; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%03d", i);
        assert_ts_err(rs[i].status, 0);
        assert_memory_equal(a.msg[1 + i], m, 4);
    }
    /* a handle on another loop subscribes and receives what this one
     * publishes, and this one what it publishes */
    sc_door_t b;
    assert_int_equal(uv_loop_init(&b.loop), 0);
    int rc = ts_store_attach(&b.st, &t.st, &b.loop);
    if (rc == 0) {
        sc_inbox_t bi = {.t = &t};
        sc_res_t br;
        assert_ts_err(SC_CALL(&t, &br, ts_store_subscribe(&b.st, TS_STORE_CHAN, S("c1"), sc_on_msg, &bi,
                                                         sc_on_done, &br)), 0);
        while (!br.called) uv_run(&b.loop, UV_RUN_ONCE);
        assert_ts_err(br.status, 0);
        assert_ts_err(sc_pub(&t, "c1", "both", 4), 0);
        /* a timer keeps the other loop alive while it waits: the store's
         * wake-up handle does not (a loop with nothing else to do ends) */
        uv_timer_t tick;
        uv_timer_init(&b.loop, &tick);
        uv_timer_start(&tick, sc_on_tick, 1, 1);
        uint64_t deadline = ts_now_ms() + 5000;
        while (bi.n < 1 || a.n < 102) {
            assert_true(ts_now_ms() < deadline);
            uv_run(&b.loop, UV_RUN_ONCE);
            sc_sleep(&t, 1);
        }
        uv_close((uv_handle_t *)&tick, NULL);
        assert_memory_equal(bi.msg[0], "both", 4);
        assert_memory_equal(a.msg[101], "both", 4);
        int closed = 0;
        assert_ts_err(ts_store_close(&b.st, sc_on_sleep_flag, &closed), 0);
        while (!closed) uv_run(&b.loop, UV_RUN_ONCE);
        assert_ts_err(sc_pub(&t, "c1", "after", 5), 0); /* the closed handle's sub is gone */
        sc_wait_msgs(&t, &a, 103);
        assert_int_equal(bi.n, 1);
    } else {
        assert_ts_err(rc, TS_EINVAL); /* a backend without doors */
        assert_ts_err(sc_pub(&t, "c1", "both", 4), 0);
        assert_ts_err(sc_pub(&t, "c1", "after", 5), 0);
        sc_wait_msgs(&t, &a, 103);
    }
    assert_int_equal(uv_loop_close(&b.loop), 0);
    /* unsubscribed: nothing more, the other channel still works */
    assert_ts_err(sc_unsub(&t, &t.st, "c1", &a), 0);
    assert_ts_err(sc_pub(&t, "c1", "gone", 4), 0);
    assert_ts_err(sc_pub(&t, "c2", "still", 5), 0);
    sc_wait_msgs(&t, &a2, 2);
    assert_int_equal(a.n, 103);
    /* close with a subscription and a message on its way: sc_on_msg fails
     * if it comes after the close callback */
    assert_ts_err(sc_pub(&t, "c2", "closing", 7), 0);
    sc_close(&t);
}

/* A pattern subscription gets every plain channel its glob matches, named
 * by the channel it was published on; shard channels are their own: a plain
 * or pattern subscriber of the same name gets none of their messages, nor
 * the other way round. A pattern cannot be published to. */
SC_FN void c_pubsub_kinds(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_inbox_t pat = {.t = &t}, plain = {.t = &t}, shard = {.t = &t};
    sc_res_t r;
    assert_ts_err(SC_CALL(&t, &r, ts_store_publish(&t.st, TS_STORE_CHAN_PATTERN, S("n*"), NULL,
                                                   sc_on_done, &r)), TS_EINVAL);
    assert_ts_err(SC_CALL(&t, &r, ts_store_subscribe(&t.st, (ts_store_chan_t)7, S("x"), sc_on_msg,
                                                     &pat, sc_on_done, &r)), TS_EINVAL);
    assert_ts_err(sc_sub_k(&t, &t.st, TS_STORE_CHAN_PATTERN, "news#*#", &pat), 0);
    assert_ts_err(sc_sub_k(&t, &t.st, TS_STORE_CHAN, "news#a#", &plain), 0);
    assert_ts_err(sc_sub_k(&t, &t.st, TS_STORE_CHAN_SHARD, "news#a#", &shard), 0);
    assert_ts_err(sc_pub(&t, "news#a#", "one", 3), 0);
    assert_ts_err(sc_pub(&t, "news#bb#", "two", 3), 0);
    assert_ts_err(sc_pub(&t, "other#a#", "none", 4), 0);
    assert_ts_err(sc_pub_k(&t, TS_STORE_CHAN_SHARD, "news#a#", "sharded", 7), 0);
    sc_wait_msgs(&t, &pat, 2);
    sc_wait_msgs(&t, &shard, 1);
    assert_string_equal(pat.chan[0], "news#a#");
    assert_memory_equal(pat.msg[0], "one", 3);
    assert_string_equal(pat.chan[1], "news#bb#");
    assert_memory_equal(pat.msg[1], "two", 3);
    assert_int_equal(plain.n, 1);
    assert_memory_equal(plain.msg[0], "one", 3);
    assert_string_equal(shard.chan[0], "news#a#");
    assert_memory_equal(shard.msg[0], "sharded", 7);
    /* unsubscribing the pattern leaves the plain channel alone */
    assert_ts_err(SC_CALL(&t, &r, ts_store_unsubscribe(&t.st, TS_STORE_CHAN_PATTERN, S("news#*#"),
                                                       sc_on_msg, &pat, sc_on_done, &r)), 0);
    sc_wait(&t, &r);
    assert_ts_err(r.status, 0);
    assert_ts_err(sc_pub(&t, "news#a#", "three", 5), 0);
    sc_wait_msgs(&t, &plain, 2);
    assert_int_equal(pat.n, 2);
    assert_int_equal(shard.n, 1);
    sc_close(&t);
}

/* numsub counts a channel's subscribers across the deployment, each kind
 * on its own (a shard channel's on its slot, a classic one's on every node
 * of a Redis Cluster); a
 * backend without other nodes has no numsub (TS_EINVAL). */
SC_FN void c_numsub(void **state) {
    sc_t t;
    sc_open(&t, *state, NULL);
    sc_res_t r = {0};
    int rc = SC_CALL(&t, &r, ts_store_numsub(&t.st, TS_STORE_CHAN_SHARD, S("ns#none#"), sc_on_seq, &r));
    if (rc == TS_EINVAL) { /* the memory backend */
        assert_null(t.st.ops->numsub);
        sc_close(&t);
        return;
    }
    assert_ts_err(rc, 0);
    sc_wait(&t, &r);
    assert_ts_err(r.status, 0);
    assert_int_equal(r.seq, 0);
    assert_ts_err(SC_CALL(&t, &r, ts_store_numsub(&t.st, TS_STORE_CHAN_PATTERN, S("ns#*"), sc_on_seq, &r)),
                  TS_EINVAL);
    sc_inbox_t shard = {.t = &t}, plain = {.t = &t};
    assert_ts_err(sc_sub_k(&t, &t.st, TS_STORE_CHAN_SHARD, "ns#s#", &shard), 0);
    assert_ts_err(sc_sub_k(&t, &t.st, TS_STORE_CHAN, "ns#s#", &plain), 0);
    sc_res_t s1 = {0}, p1 = {0};
    assert_ts_err(SC_CALL(&t, &s1, ts_store_numsub(&t.st, TS_STORE_CHAN_SHARD, S("ns#s#"), sc_on_seq, &s1)), 0);
    assert_ts_err(SC_CALL(&t, &p1, ts_store_numsub(&t.st, TS_STORE_CHAN, S("ns#s#"), sc_on_seq, &p1)), 0);
    sc_wait(&t, &s1);
    sc_wait(&t, &p1);
    assert_ts_err(s1.status, 0);
    assert_int_equal(s1.seq, 1);
    assert_ts_err(p1.status, 0);
    assert_int_equal(p1.seq, 1); /* on a Redis Cluster: summed over every node */
    sc_close(&t);
}

#define SC_T(fn, env) cmocka_unit_test_prestate_setup_teardown(fn, sc_setup, sc_teardown, env)
#define SC_CONTRACT_TESTS(env)                                                 \
    SC_T(c_open_close, env), SC_T(c_invalid_args, env), SC_T(c_reg_put_list, env),           \
        SC_T(c_reg_replace, env), SC_T(c_reg_remove, env), SC_T(c_reg_expired_hidden, env),  \
        SC_T(c_reg_renew_extends, env), SC_T(c_reg_expiry_reported, env),                    \
        SC_T(c_log_seq_read, env), SC_T(c_log_pipelined, env), SC_T(c_log_trim, env),        \
        SC_T(c_state_cas, env), SC_T(c_state_race, env), SC_T(c_lease_terms, env),           \
        SC_T(c_lease_expiry, env), SC_T(c_lease_transfer, env), SC_T(c_commit_fence, env), SC_T(c_close_pending, env), SC_T(c_callback_chain, env),  \
        SC_T(c_sess_get, env), SC_T(c_commit_basic, env), SC_T(c_commit_if_ver, env),         \
        SC_T(c_commit_pipelined_ver, env), SC_T(c_commit_chain, env),                         \
        SC_T(c_commit_exactly_once, env),                  \
        SC_T(c_commit_window, env), SC_T(c_snapshot, env), SC_T(c_retention, env),           \
        SC_T(c_retention_time, env),                                                         \
        SC_T(c_durable_reads, env), SC_T(c_order_group, env), SC_T(c_pubsub, env), \
        SC_T(c_pubsub_kinds, env), SC_T(c_numsub, env)

#endif
