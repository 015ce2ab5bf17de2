/* test_rconn.c - the Redis connection driver against a real redis-server
 * that the test starts on a free loopback port (Debian's redis-server; its
 * absence is a failure, not a skip): URLs, replies and error replies,
 * pipelining, AUTH with an ACL user and a wrong password, SELECT, pub/sub of
 * the three kinds, a server killed and restarted (in-flight commands fail,
 * the connection and its subscriptions come back), the command timeout, the
 * queue bound, and close; TLS (rediss://) against a TLS port with a CA the
 * test makes: verified, refused with a wrong CA or none, a client
 * certificate, ?insecure=1; a Sentinel of the test's own; and a server
 * that says it is Redis 6.2 (a thread of the test's own answering HELLO)
 * refused by a store connection, which says why. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "core/ts_err.h"
#include "store/rconn_int.h"
#include "store/redis_server.h"

/* ---- running the loop ---- */

static uv_loop_t loop;

static void tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until *flag is non-zero or ms pass; returns *flag. */
static int run_until(volatile int *flag, unsigned ms) {
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 10, 10);
    uint64_t end = uv_now(&loop) + ms;
    while (!*flag && uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *flag;
}

typedef struct {
    int calls, status, type, up, downs;
    long long integer;
    size_t elements;
    char str[256];
    char el1[64]; /* an array's second element, if a string (CONFIG GET's value) */
} res_t;

static void on_reply(ts_rconn_t *c, int status, const redisReply *r, void *ud) {
    (void)c;
    res_t *x = ud;
    x->calls++;
    x->status = status;
    x->type = r ? r->type : 0;
    x->integer = r ? r->integer : 0;
    x->elements = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    x->str[0] = x->el1[0] = '\0';
    if (r && r->str) snprintf(x->str, sizeof x->str, "%s", r->str);
    if (x->elements >= 2 && r->element[1]->str)
        snprintf(x->el1, sizeof x->el1, "%s", r->element[1]->str);
}

static void on_state(ts_rconn_t *c, int up, const char *why, void *ud) {
    (void)c;
    res_t *x = ud;
    if (up) x->up++;
    else {
        x->downs++;
        snprintf(x->str, sizeof x->str, "%s", why);
    }
}

static ts_rconn_opts_t opts_for(const redis_t *r) {
    ts_rconn_opts_t o = {0};
    snprintf(o.host, sizeof o.host, "127.0.0.1");
    o.port = r->port;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    return o;
}

static int cmd(ts_rconn_t *c, res_t *x, int argc, const char **argv) {
    memset(x, 0, sizeof(*x));
    return ts_rconn_cmd(c, argc, argv, NULL, on_reply, x);
}

static void closed_cb(void *ud) { *(int *)ud = 1; }

static void close_conn(ts_rconn_t *c) {
    int closed = 0;
    ts_rconn_close(c, closed_cb, &closed);
    assert_true(run_until(&closed, 2000));
}

/* ---- tests ---- */

static void urls(void **state) {
    (void)state;
    ts_rconn_opts_t o;
    char err[128];
    assert_int_equal(ts_rconn_parse_url("redis://127.0.0.1:6390/2", &o, err, sizeof err), 0);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 6390);
    assert_int_equal(o.db, 2);
    assert_int_equal(o.tls, 0);
    assert_int_equal(ts_rconn_parse_url("rediss://alice:p%40ss@cache.example:7000", &o, err,
                                        sizeof err),
                     0);
    assert_string_equal(o.user, "alice");
    assert_string_equal(o.password, "p@ss");
    assert_string_equal(o.host, "cache.example");
    assert_int_equal(o.tls, 1);
    assert_int_equal(ts_rconn_parse_url("redis://secret@h", &o, err, sizeof err), 0);
    assert_string_equal(o.user, "");
    assert_string_equal(o.password, "secret");
    assert_int_equal(o.port, 6379);
    assert_int_equal(ts_rconn_parse_url("redis://:pw@[::1]:6400/", &o, err, sizeof err), 0);
    assert_string_equal(o.host, "::1");
    assert_string_equal(o.password, "pw");
    assert_int_equal(o.port, 6400);
    assert_int_equal(o.db, 0);
    assert_int_equal(ts_rconn_parse_url("rediss://h:7000/0?cacert=%2Ftmp%2Fca.pem&insecure=0"
                                        "&cluster=1&cert=/c.pem&key=/k.pem",
                                        &o, err, sizeof err),
                     0);
    assert_string_equal(o.tls_ca, "/tmp/ca.pem");
    assert_string_equal(o.tls_cert, "/c.pem");
    assert_string_equal(o.tls_key, "/k.pem");
    assert_int_equal(o.tls_insecure, 0);
    assert_int_equal(o.cluster, 1);
    assert_int_equal(o.port, 7000);
    assert_int_equal(ts_rconn_parse_url("redis://h?cluster=0", &o, err, sizeof err), 0);
    assert_int_equal(o.cluster, -1);
    assert_int_equal(ts_rconn_parse_url("redis://h/?cluster=auto", &o, err, sizeof err), 0);
    assert_int_equal(o.cluster, 0);
    assert_int_equal(ts_rconn_parse_url("rediss://h?insecure=1", &o, err, sizeof err), 0);
    assert_int_equal(o.tls_insecure, 1);
    assert_int_equal(ts_rconn_parse_url("redis://h?replicas=2&replicas_timeout=250", &o, err,
                                        sizeof err),
                     0);
    assert_int_equal(o.replicas, 2);
    assert_int_equal(o.replicas_timeout_ms, 250);
    assert_int_equal(ts_rconn_parse_url("redis://h?replicas=0", &o, err, sizeof err), 0);
    assert_int_equal(o.replicas, 0);
    /* Sentinels */
    assert_int_equal(ts_rconn_parse_url("redis+sentinel://u:pw@s1,s2:26380,[::1]/my%20primary/3"
                                        "?sentinel_password=sp&replicas=1",
                                        &o, err, sizeof err),
                     0);
    assert_int_equal(o.nsentinels, 3);
    assert_string_equal(o.sentinels[0].host, "s1");
    assert_int_equal(o.sentinels[0].port, 26379);
    assert_string_equal(o.sentinels[1].host, "s2");
    assert_int_equal(o.sentinels[1].port, 26380);
    assert_string_equal(o.sentinels[2].host, "::1");
    assert_string_equal(o.master, "my primary");
    assert_int_equal(o.db, 3);
    assert_string_equal(o.user, "u");
    assert_string_equal(o.password, "pw");
    assert_string_equal(o.sentinel_password, "sp");
    assert_string_equal(o.sentinel_user, "");
    assert_int_equal(o.replicas, 1);
    assert_int_equal(o.cluster, -1); /* one primary */
    assert_string_equal(o.host, "");  /* found by asking */
    assert_int_equal(ts_rconn_parse_url("rediss+sentinel://s/m?sentinel_user=a&insecure=1", &o, err,
                                        sizeof err),
                     0);
    assert_int_equal(o.tls, 1);
    assert_int_equal(o.nsentinels, 1);
    assert_string_equal(o.sentinel_user, "a");
    assert_string_equal(o.master, "m");
    static const char *const bad[] = {
        "redis+sentinel://s", "redis+sentinel://s/", "redis+sentinel://s,/m",
        "redis+sentinel:///m", "redis+sentinel://s:0/m", "redis+sentinel://s/m/x",
        "redis+sentinel://s/m?cluster=1", "redis://h?sentinel_password=x",
        "redis+sentinel://a,b,c,d,e,f,g,h,i/m",
        "redis://h?replicas=", "redis://h?replicas=-1", "redis://h?replicas=65",
        "redis://h?replicas=1x", "redis://h?replicas_timeout=0", "redis://h?replicas_timeout=60001",
        "http://h",          "redis://",        "redis://h:0",       "redis://h:65536",
        "redis://h:12x",     "redis://h/x",     "redis://[::1",      "redis://u:%zz@h",
        "redis://u:%0@h",    "redis://h?db=1",  "redis://u:%00@h",   "redis://[::1]x",
        "redis://h?cacert=/x", "rediss://h?cacert=", "rediss://h?insecure=2", "redis://h?cluster",
        "redis://h?cluster=yes", "rediss://h?cert=/c", "redis://h#f", "redis://h/1x?cluster=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (ts_rconn_parse_url(bad[i], &o, err, sizeof err) != TS_EINVAL || !err[0])
            fail_msg("%s: accepted", bad[i]);
    }
}

static void replies_and_pipelining(void **state) {
    (void)state;
    static redis_t r; /* static: the teardown may stop it after a failure */
    memset(&r, 0, sizeof r);
    redis_start(&r, NULL);
    ts_rconn_opts_t o = opts_for(&r);
    res_t st = {0};
    ts_rconn_t *c = ts_rconn_new(&loop, &o, on_state, NULL, &st);
    res_t x;
    const char *set[] = {"SET", "k", "v"};
    assert_int_equal(cmd(c, &x, 3, set), 0);
    assert_int_equal(x.calls, 0); /* never from inside the call */
    assert_true(run_until(&x.calls, 2000));
    assert_int_equal(x.status, 0);
    assert_int_equal(x.type, REDIS_REPLY_STATUS);
    assert_string_equal(x.str, "OK");
    assert_int_equal(st.up, 1);
    const char *get[] = {"GET", "k"};
    cmd(c, &x, 2, get);
    run_until(&x.calls, 2000);
    assert_string_equal(x.str, "v");
    const char *incr_k[] = {"INCR", "k"};
    cmd(c, &x, 2, incr_k);
    run_until(&x.calls, 2000);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(x.str, "not an integer"));
    /* binary-safe arguments */
    const char *bset[] = {"SET", "bin", "a\0b\r\n"};
    size_t blen[] = {3, 3, 5};
    memset(&x, 0, sizeof x);
    ts_rconn_cmd(c, 3, bset, blen, on_reply, &x);
    run_until(&x.calls, 2000);
    const char *strlen_[] = {"STRLEN", "bin"};
    cmd(c, &x, 2, strlen_);
    run_until(&x.calls, 2000);
    assert_int_equal(x.integer, 5);

    /* 10,000 commands issued in one turn: in order, in few writes */
    enum { N = 10000 };
    static res_t many[N];
    ts_rconn_stats_t before = ts_rconn_stats(c);
    const char *incr[] = {"INCR", "counter"};
    for (int i = 0; i < N; i++) cmd(c, &many[i], 2, incr);
    assert_true(run_until(&many[N - 1].calls, 10000));
    for (int i = 0; i < N; i++) {
        if (many[i].calls != 1 || many[i].integer != i + 1)
            fail_msg("reply %d: calls %d value %lld", i, many[i].calls, many[i].integer);
    }
    ts_rconn_stats_t after = ts_rconn_stats(c);
    assert_true(after.writes - before.writes <= 4);
    assert_int_equal(after.replies - before.replies, N);
    close_conn(c);
    redis_cleanup(&r);
}

static void auth_and_select(void **state) {
    (void)state;
    static redis_t r; /* static: the teardown may stop it after a failure */
    memset(&r, 0, sizeof r);
    redis_start(&r, "requirepass topsecret\nuser alice on >s3cret ~* &* +@all\n");
    /* an ACL user, database 3 */
    ts_rconn_opts_t o = opts_for(&r);
    snprintf(o.user, sizeof o.user, "alice");
    snprintf(o.password, sizeof o.password, "s3cret");
    o.db = 3;
    res_t st = {0};
    ts_rconn_t *a = ts_rconn_new(&loop, &o, on_state, NULL, &st);
    res_t x;
    const char *set[] = {"SET", "where", "db3"};
    cmd(a, &x, 3, set);
    assert_true(run_until(&x.calls, 2000));
    assert_int_equal(x.status, 0);
    assert_string_equal(x.str, "OK");
    /* the default user's password, database 0: the key is not there */
    ts_rconn_opts_t o0 = opts_for(&r);
    snprintf(o0.password, sizeof o0.password, "topsecret");
    ts_rconn_t *b = ts_rconn_new(&loop, &o0, NULL, NULL, NULL);
    const char *get[] = {"GET", "where"};
    cmd(b, &x, 2, get);
    run_until(&x.calls, 2000);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.type, REDIS_REPLY_NIL);
    const char *sel_get[] = {"SELECT", "3"};
    cmd(b, &x, 2, sel_get);
    run_until(&x.calls, 2000);
    cmd(b, &x, 2, get);
    run_until(&x.calls, 2000);
    assert_string_equal(x.str, "db3");
    close_conn(a);
    close_conn(b);

    /* a wrong password: the connection never comes up, says why, and the
     * commands fail instead of waiting for ever */
    ts_rconn_opts_t bad = opts_for(&r);
    snprintf(bad.password, sizeof bad.password, "nope");
    res_t bst = {0};
    ts_rconn_t *c = ts_rconn_new(&loop, &bad, on_state, NULL, &bst);
    cmd(c, &x, 2, get);
    assert_true(run_until(&x.calls, 3000));
    assert_int_equal(x.status, TS_ESTORE);
    assert_true(run_until(&bst.downs, 3000));
    assert_int_equal(bst.up, 0);
    assert_non_null(strstr(bst.str, "WRONGPASS"));
    close_conn(c);
    redis_cleanup(&r);
}

typedef struct {
    int n;
    char kind[16], channel[64], payload[64];
} pushes_t;

static void on_push(ts_rconn_t *c, const redisReply *r, void *ud) {
    (void)c;
    pushes_t *p = ud;
    p->n++;
    size_t last = r->elements - 1;
    snprintf(p->kind, sizeof p->kind, "%s", r->element[0]->str);
    snprintf(p->channel, sizeof p->channel, "%s", r->element[last - 1]->str);
    snprintf(p->payload, sizeof p->payload, "%s", r->element[last]->str);
}

static void publish(ts_rconn_t *pub, const char *verb, const char *ch, const char *msg) {
    res_t x;
    const char *argv[] = {verb, ch, msg};
    cmd(pub, &x, 3, argv);
    assert_true(run_until(&x.calls, 2000));
    assert_int_equal(x.status, 0);
    if (x.type == REDIS_REPLY_ERROR) fail_msg("%s: %s", verb, x.str);
}

static void pubsub_and_restart(void **state) {
    (void)state;
    static redis_t r; /* static: the teardown may stop it after a failure */
    memset(&r, 0, sizeof r);
    redis_start(&r, NULL);
    ts_rconn_opts_t o = opts_for(&r);
    pushes_t p = {0};
    ts_rconn_t *sub = ts_rconn_new(&loop, &o, NULL, on_push, &p);
    ts_rconn_t *pub = ts_rconn_new(&loop, &o, NULL, NULL, NULL);
    res_t c1 = {0}, c2 = {0}, c3 = {0};
    assert_int_equal(ts_rconn_subscribe(sub, TS_RCONN_SUBSCRIBE, "news", on_reply, &c1), 0);
    assert_int_equal(ts_rconn_subscribe(sub, TS_RCONN_SSUBSCRIBE, "{s1}sharded", on_reply, &c2), 0);
    assert_int_equal(ts_rconn_subscribe(sub, TS_RCONN_PSUBSCRIBE, "pat.*", on_reply, &c3), 0);
    assert_true(run_until(&c3.calls, 2000));
    assert_int_equal(c1.status, 0);
    assert_int_equal(c2.status, 0);
    assert_int_equal(c2.type, REDIS_REPLY_ARRAY);

    publish(pub, "PUBLISH", "news", "hello");
    assert_true(run_until(&p.n, 2000));
    assert_int_equal(p.n, 1);
    assert_string_equal(p.kind, "message");
    assert_string_equal(p.payload, "hello");
    publish(pub, "SPUBLISH", "{s1}sharded", "shard!");
    for (int i = 0; i < 200 && p.n < 2; i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.kind, "smessage");
    assert_string_equal(p.channel, "{s1}sharded");
    publish(pub, "PUBLISH", "pat.x", "by pattern");
    for (int i = 0; i < 200 && p.n < 3; i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.kind, "pmessage");
    assert_string_equal(p.channel, "pat.x");

    /* the server dies with a command in flight: it fails, the connection
     * goes down, and while it is down commands fail at once */
    res_t x;
    const char *blpop[] = {"BLPOP", "nothing", "0"}; /* waits for ever */
    cmd(pub, &x, 3, blpop);
    for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(2000);
    redis_kill(&r, SIGKILL);
    assert_true(run_until(&x.calls, 3000));
    assert_int_equal(x.status, TS_ESTORE);

    /* back on the same port: both connections come back by themselves, and
     * the subscriptions are there again */
    redis_start(&r, NULL);
    const char *ping[] = {"PING"};
    for (int i = 0; i < 300 && !ts_rconn_is_up(pub); i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
    assert_true(ts_rconn_is_up(pub));
    for (int i = 0; i < 300 && !ts_rconn_is_up(sub); i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
    assert_true(ts_rconn_is_up(sub));
    cmd(pub, &x, 1, ping);
    assert_true(run_until(&x.calls, 2000));
    assert_int_equal(x.status, 0);
    assert_string_equal(x.str, "PONG");
    publish(pub, "PUBLISH", "news", "again");
    for (int i = 0; i < 200 && p.n < 4; i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
    assert_int_equal(p.n, 4);
    assert_string_equal(p.payload, "again");
    ts_rconn_stats_t s = ts_rconn_stats(sub);
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.disconnects, 1);
    /* unsubscribed: no more pushes */
    res_t u = {0};
    ts_rconn_unsubscribe(sub, TS_RCONN_SUBSCRIBE, "news", on_reply, &u);
    assert_true(run_until(&u.calls, 2000));
    publish(pub, "PUBLISH", "news", "unheard");
    for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
    assert_int_equal(p.n, 4);
    close_conn(sub);
    close_conn(pub);
    redis_cleanup(&r);
}

static void down_timeout_bounds_close(void **state) {
    (void)state;
    static redis_t r; /* static: the teardown may stop it after a failure */
    memset(&r, 0, sizeof r);
    redis_start(&r, NULL);
    ts_rconn_opts_t o = opts_for(&r);
    o.command_timeout_ms = 300;
    res_t st = {0};
    ts_rconn_t *c = ts_rconn_new(&loop, &o, on_state, NULL, &st);
    ts_rconn_t *admin = ts_rconn_new(&loop, &o, NULL, NULL, NULL);
    res_t x;
    const char *ping[] = {"PING"};
    cmd(c, &x, 1, ping);
    assert_true(run_until(&x.calls, 2000));
    /* every client paused for 1.5 s: the reply is late, the command fails
     * after the timeout, and the connection comes back after the pause */
    const char *pause[] = {"CLIENT", "PAUSE", "1500"};
    cmd(admin, &x, 3, pause);
    assert_true(run_until(&x.calls, 2000));
    assert_string_equal(x.str, "OK");
    cmd(c, &x, 1, ping);
    assert_true(run_until(&x.calls, 2000));
    assert_int_equal(x.status, TS_ESTORE);
    assert_int_equal(ts_rconn_stats(c).timeouts, 1);
    assert_non_null(strstr(st.str, "timeout"));
    /* after the pause (plus a margin) it answers again, on a new connection */
    uint64_t until = uv_now(&loop) + 1500;
    while (uv_now(&loop) < until) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(5000);
        uv_update_time(&loop);
    }
    for (int i = 0; i < 600 && !ts_rconn_is_up(c); i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
    assert_true(st.up >= 2);
    cmd(c, &x, 1, ping);
    assert_true(run_until(&x.calls, 4000));
    assert_int_equal(x.status, 0);
    assert_string_equal(x.str, "PONG");
    close_conn(admin);
    close_conn(c);

    /* the queue bound */
    ts_rconn_opts_t small = opts_for(&r);
    small.max_queued = 5;
    ts_rconn_t *b = ts_rconn_new(&loop, &small, NULL, NULL, NULL);
    res_t q[6];
    for (int i = 0; i < 5; i++) assert_int_equal(cmd(b, &q[i], 1, ping), 0);
    assert_int_equal(cmd(b, &q[5], 1, ping), TS_ELIMIT);
    assert_true(run_until(&q[4].calls, 2000));
    assert_int_equal(q[5].calls, 0);
    assert_int_equal(cmd(b, &q[5], 1, ping), 0); /* room again */
    assert_true(run_until(&q[5].calls, 2000));

    /* close with commands pending: each gets TS_ECLOSED, before on_closed */
    for (int i = 0; i < 5; i++) cmd(b, &q[i], 1, ping);
    int closed = 0;
    ts_rconn_close(b, closed_cb, &closed);
    assert_int_equal(cmd(b, &q[5], 1, ping), TS_ECLOSED);
    assert_true(run_until(&closed, 2000));
    for (int i = 0; i < 5; i++) {
        assert_int_equal(q[i].calls, 1);
        assert_int_equal(q[i].status, TS_ECLOSED);
    }

    /* nobody listening: the first attempt fails, commands fail fast */
    redis_kill(&r, SIGKILL);
    res_t dst = {0};
    ts_rconn_t *d = ts_rconn_new(&loop, &o, on_state, NULL, &dst);
    assert_true(run_until(&dst.downs, 3000));
    cmd(d, &x, 1, ping);
    assert_true(run_until(&x.calls, 1000));
    assert_int_equal(x.status, TS_ESTORE);
    close_conn(d);
    redis_cleanup(&r);
}

/* One PING on a new connection (want_ok 1: answered; 0: never up, the PING
 * fails; -1: the PING fails); returns the state callbacks' record. */
static res_t tls_ping(const ts_rconn_opts_t *o, int want_ok) {
    res_t st = {0}, x;
    ts_rconn_t *c = ts_rconn_new(&loop, o, on_state, NULL, &st);
    const char *ping[] = {"PING"};
    for (int i = 0; i < 3 && !st.up; i++) { /* the first may race the handshake's failure */
        cmd(c, &x, 1, ping);
        assert_true(run_until(&x.calls, 3000));
        if (want_ok > 0 && x.status) run_until(&st.up, 1000);
        else break;
    }
    if (want_ok > 0) {
        cmd(c, &x, 1, ping);
        assert_true(run_until(&x.calls, 3000));
        assert_int_equal(x.status, 0);
        assert_string_equal(x.str, "PONG");
    } else {
        assert_int_equal(x.status, TS_ESTORE);
        assert_true(run_until(&st.downs, 3000));
        if (want_ok == 0) assert_int_equal(st.up, 0); /* -1: TLS 1.3 may say no after "up" */
    }
    close_conn(c);
    return st;
}

static char certdir[64];

static int tls_teardown(void **state) {
    redis_stop_all(state);
    char cmd_[128];
    snprintf(cmd_, sizeof cmd_, "rm -rf '%s'", certdir);
    if (certdir[0] && system(cmd_) != 0) fprintf(stderr, "cleanup of %s failed\n", certdir);
    return 0;
}

static void tls(void **state) {
    (void)state;
    snprintf(certdir, sizeof certdir, "/tmp/ts_rtls_XXXXXX");
    assert_non_null(mkdtemp(certdir));
    redis_tls_files(certdir);
    static redis_t r;
    memset(&r, 0, sizeof r);
    char conf[1024];
    redis_start(&r, redis_tls_conf(&r, certdir, "yes", conf, sizeof conf));
    for (int i = 0; i < 200 && !port_open(r.tls_port); i++) usleep(10000);
    if (!port_open(r.tls_port))
        fail_msg("redis-server has no TLS port (built without TLS?): see %s/redis.log", r.dir);

    char url[512], err[256];
    ts_rconn_opts_t o;
    snprintf(url, sizeof url, "rediss://127.0.0.1:%u?cacert=%s/ca.pem&cert=%s/client.pem&key=%s/client.key",
             r.tls_port, certdir, certdir, certdir);
    assert_int_equal(ts_rconn_parse_url(url, &o, err, sizeof err), 0);
    assert_int_equal(ts_rconn_tls_check(&o, err, sizeof err), 0);
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;

    /* verified: commands, 2,000 pipelined, a big value, pub/sub */
    res_t st = {0}, x;
    pushes_t p = {0};
    ts_rconn_t *c = ts_rconn_new(&loop, &o, on_state, NULL, &st);
    ts_rconn_t *sub = ts_rconn_new(&loop, &o, NULL, on_push, &p);
    enum { N = 2000 };
    static res_t many[N];
    const char *incr[] = {"INCR", "n"};
    for (int i = 0; i < N; i++) cmd(c, &many[i], 2, incr);
    assert_true(run_until(&many[N - 1].calls, 10000));
    for (int i = 0; i < N; i++)
        if (many[i].status || many[i].integer != i + 1) fail_msg("reply %d: %lld", i, many[i].integer);
    static char big[300000];
    memset(big, 'b', sizeof big);
    const char *set[] = {"SET", "big", big};
    size_t lens[] = {3, 3, sizeof big};
    memset(&x, 0, sizeof x);
    ts_rconn_cmd(c, 3, set, lens, on_reply, &x);
    assert_true(run_until(&x.calls, 5000));
    assert_int_equal(x.status, 0);
    const char *sl[] = {"STRLEN", "big"};
    cmd(c, &x, 2, sl);
    assert_true(run_until(&x.calls, 5000));
    assert_int_equal(x.integer, (long long)sizeof big);
    res_t sc = {0};
    ts_rconn_subscribe(sub, TS_RCONN_SUBSCRIBE, "tls-news", on_reply, &sc);
    assert_true(run_until(&sc.calls, 3000));
    assert_int_equal(sc.status, 0);
    publish(c, "PUBLISH", "tls-news", "secret");
    assert_true(run_until(&p.n, 3000));
    assert_string_equal(p.payload, "secret");
    close_conn(sub);
    close_conn(c);

    /* a CA that did not sign the server's certificate: refused, and says why */
    ts_rconn_opts_t wrong = o;
    snprintf(wrong.tls_ca, sizeof wrong.tls_ca, "%s/other-ca.pem", certdir);
    res_t ws = tls_ping(&wrong, 0);
    if (!strstr(ws.str, "not trusted") || !strstr(ws.str, "cacert"))
        fail_msg("wrong CA: %s", ws.str);
    fprintf(stderr, "wrong CA refused: %s\n", ws.str);
    /* no CA given: the system store does not know the test's CA either */
    ts_rconn_opts_t sys = o;
    sys.tls_ca[0] = '\0';
    ws = tls_ping(&sys, 0);
    assert_non_null(strstr(ws.str, "not trusted"));
    /* ?insecure=1 skips verification (tests only) */
    ts_rconn_opts_t ins = wrong;
    ins.tls_insecure = 1;
    tls_ping(&ins, 1);
    /* the server asks for a client certificate: without one, refused */
    ts_rconn_opts_t nocert = o;
    nocert.tls_cert[0] = nocert.tls_key[0] = '\0';
    ws = tls_ping(&nocert, -1); /* TLS 1.3: the server's alert comes after our Finished */
    fprintf(stderr, "no client certificate: %s\n", ws.str);
    /* plain text to a TLS port, TLS to a plain port: no hang, a failure */
    ts_rconn_opts_t plain = opts_for(&r);
    plain.port = r.tls_port;
    plain.command_timeout_ms = 500;
    plain.connect_timeout_ms = 500;
    tls_ping(&plain, -1); /* TCP is "up" at once: no handshake commands */
    ts_rconn_opts_t toplain = o;
    toplain.port = r.port;
    tls_ping(&toplain, 0);

    /* files that cannot be read: told at once */
    ts_rconn_opts_t missing = o;
    snprintf(missing.tls_ca, sizeof missing.tls_ca, "%s/nope.pem", certdir);
    err[0] = '\0';
    assert_int_equal(ts_rconn_tls_check(&missing, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "nope.pem"));
    ws = tls_ping(&missing, 0);
    assert_non_null(strstr(ws.str, "nope.pem"));
    redis_cleanup(&r);
}

/* Our RESP formatter writes exactly what hiredis's does, for every row
 * (empty arguments, binary bytes, CRLF inside, a long one, none). */
static void format_as_hiredis(void **state) {
    (void)state;
    char big[70000];
    memset(big, 'x', sizeof big);
    static const char bin[] = {'a', 0, '\r', '\n', (char)0xff};
    const char *a1[] = {"PING"};
    const char *a2[] = {"SET", "", "v"};
    const char *a3[] = {"EVALSHA", "0123456789abcdef", "3", bin, big};
    size_t l3[] = {7, 16, 1, sizeof bin, sizeof big};
    struct {
        int argc;
        const char **argv;
        const size_t *len;
    } rows[] = {{1, a1, NULL}, {3, a2, NULL}, {5, a3, l3}, {0, a1, NULL}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n;
        char *ours = ts_rconn__format(rows[i].argc, rows[i].argv, rows[i].len, &n);
        char *theirs = NULL;
        int tn = redisFormatCommandArgv(&theirs, rows[i].argc, rows[i].argv, rows[i].len);
        assert_int_equal(n, (size_t)tn);
        assert_memory_equal(ours, theirs, n);
        free(ours);
        redisFreeCommand(theirs);
    }
}

/* Sends one command on c and waits for its answer. */
static void run_cmd(ts_rconn_t *c, res_t *x, int argc, const char **argv) {
    assert_int_equal(cmd(c, x, argc, argv), 0);
    assert_true(run_until(&x->calls, 6000));
}

/* The port of the server c is connected to (CONFIG GET port), or 0. */
static int server_port(ts_rconn_t *c) {
    res_t x;
    const char *q[] = {"CONFIG", "GET", "port"};
    run_cmd(c, &x, 3, q);
    return x.status == 0 ? atoi(x.el1) : 0;
}

static ts_rconn_t *sentinel_conn(const char *fmt, uint16_t a, uint16_t b, const char *name,
                                 res_t *st) {
    char url[200];
    char err[200];
    snprintf(url, sizeof url, fmt, a, b, name);
    ts_rconn_opts_t o;
    if (ts_rconn_parse_url(url, &o, err, sizeof err) != 0) fail_msg("%s: %s", url, err);
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    return ts_rconn_new(&loop, &o, on_state, NULL, st);
}

/* A primary, its replica and a Sentinel of the test's own: the connection
 * finds the primary through the Sentinel (the first one named is not
 * listening), refuses a name that points at a replica or at nothing,
 * follows a failover after the primary's SIGKILL, and asks again when its
 * server turns replica under it (READONLY). */
static void sentinel(void **state) {
    (void)state;
    static redis_t p, rep, sen; /* static: the teardown may stop them after a failure */
    memset(&p, 0, sizeof p);
    memset(&rep, 0, sizeof rep);
    memset(&sen, 0, sizeof sen);
    redis_start(&p, "repl-diskless-sync-delay 0\n");
    char conf[512];
    snprintf(conf, sizeof conf, "replicaof 127.0.0.1 %u\n", p.port);
    redis_start(&rep, conf);
    snprintf(conf, sizeof conf,
             "sentinel monitor ts 127.0.0.1 %u 1\nsentinel down-after-milliseconds ts 500\n"
             "sentinel failover-timeout ts 5000\nsentinel monitor fake 127.0.0.1 %u 1\n",
             p.port, rep.port);
    redis_start_as(&sen, conf, REDIS_AS_SENTINEL);
    ts_rconn_opts_t ao = opts_for(&rep);
    ts_rconn_t *rep_admin = ts_rconn_new(&loop, &ao, NULL, NULL, NULL);
    ao = opts_for(&sen);
    ts_rconn_t *sen_admin = ts_rconn_new(&loop, &ao, NULL, NULL, NULL);
    res_t x;
    /* the replica in sync, and known to the Sentinel (or it cannot fail over) */
    int ready = 0;
    for (int i = 0; i < 100 && !ready; i++) {
        const char *info[] = {"INFO", "replication"};
        run_cmd(rep_admin, &x, 2, info);
        int synced = strstr(x.str, "master_link_status:up") != NULL;
        const char *reps[] = {"SENTINEL", "replicas", "ts"};
        run_cmd(sen_admin, &x, 3, reps);
        ready = synced && x.elements == 1;
        if (!ready) usleep(100000);
    }
    assert_true(ready);

    uint16_t dead = free_port();
    const char *two = "redis+sentinel://127.0.0.1:%u,127.0.0.1:%u/%s";
    res_t st = {0};
    ts_rconn_t *c = sentinel_conn(two, dead, sen.port, "ts", &st);
    assert_int_equal(server_port(c), p.port);
    assert_int_equal(st.up, 1);
    const char *set[] = {"SET", "k", "v"};
    run_cmd(c, &x, 3, set);
    assert_string_equal(x.str, "OK");
    const char *wait1[] = {"WAIT", "1", "2000"};
    run_cmd(c, &x, 3, wait1);
    assert_int_equal(x.integer, 1);

    /* a name the Sentinel resolves to a replica: ROLE says so, never up */
    res_t fst = {0};
    ts_rconn_t *f = sentinel_conn(two, dead, sen.port, "fake", &fst);
    assert_true(run_until(&fst.downs, 3000));
    assert_false(ts_rconn_is_up(f));
    assert_int_equal(fst.up, 0);
    if (!strstr(fst.str, "not one (ROLE: slave)")) fail_msg("reason: %s", fst.str);
    const char *ping[] = {"PING"};
    run_cmd(f, &x, 1, ping);
    assert_int_equal(x.status, TS_ESTORE);
    close_conn(f);
    /* a name no Sentinel knows, and a list of Sentinels none of which listens */
    res_t nst = {0};
    ts_rconn_t *n = sentinel_conn(two, dead, sen.port, "nope", &nst);
    assert_true(run_until(&nst.downs, 3000));
    if (!strstr(nst.str, "does not know a primary named nope")) fail_msg("reason: %s", nst.str);
    close_conn(n);
    memset(&nst, 0, sizeof nst);
    n = sentinel_conn(two, dead, free_port(), "ts", &nst);
    assert_true(run_until(&nst.downs, 3000));
    if (!strstr(nst.str, "no Sentinel named the primary ts")) fail_msg("reason: %s", nst.str);
    close_conn(n);

    /* the primary dies: the Sentinel promotes the replica, the connection
     * follows by itself, and what was replicated is there */
    redis_kill(&p, SIGKILL);
    int now_at = 0;
    for (int i = 0; i < 150 && now_at != rep.port; i++) {
        now_at = server_port(c);
        if (now_at != rep.port) usleep(100000);
    }
    assert_int_equal(now_at, rep.port);
    assert_true(st.downs >= 1);
    const char *get[] = {"GET", "k"};
    run_cmd(c, &x, 2, get);
    assert_string_equal(x.str, "v");
    run_cmd(c, &x, 3, set);
    assert_string_equal(x.str, "OK");

    /* its server turns replica under it: the write is answered READONLY,
     * then the connection resets and asks the Sentinel again */
    int downs = st.downs;
    char deadport[8];
    snprintf(deadport, sizeof deadport, "%u", dead);
    const char *demote[] = {"REPLICAOF", "127.0.0.1", deadport};
    run_cmd(rep_admin, &x, 3, demote);
    assert_string_equal(x.str, "OK");
    run_cmd(c, &x, 3, set);
    assert_int_equal(x.type, REDIS_REPLY_ERROR);
    assert_true(strncmp(x.str, "READONLY", 8) == 0);
    for (int i = 0; i < 200 && st.downs == downs; i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(10000);
    assert_true(st.downs > downs);
    if (!strstr(st.str, "READONLY") && !strstr(st.str, "ROLE: slave")) fail_msg("reason: %s", st.str);
    const char *promote[] = {"REPLICAOF", "NO", "ONE"};
    run_cmd(rep_admin, &x, 3, promote);
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        run_cmd(c, &x, 3, set);
        ok = x.status == 0 && strcmp(x.str, "OK") == 0;
        if (!ok) usleep(50000);
    }
    assert_true(ok);
    close_conn(c);
    close_conn(rep_admin);
    close_conn(sen_admin);
    redis_cleanup(&sen);
    redis_cleanup(&rep);
    redis_cleanup(&p);
}

/* ---- a server older than the store needs ---- */

/* Answers HELLO as Redis 6.2 does (RESP2), on every connection it gets,
 * until told to stop. */
typedef struct {
    int fd;
    uint16_t port;
    volatile int stop, served;
    pthread_t th;
} old_redis_t;

static void *old_redis_run(void *ud) {
    old_redis_t *f = ud;
    static const char ans[] = "*6\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n"
                              "$6\r\n6.2.14\r\n$5\r\nproto\r\n:2\r\n";
    while (!f->stop) {
        struct pollfd p = {f->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(f->fd, NULL, NULL);
        if (c < 0) continue;
        char buf[4096];
        size_t got = 0;
        while (got < sizeof buf - 1) {
            ssize_t n = recv(c, buf + got, sizeof buf - 1 - got, 0);
            if (n <= 0) break;
            got += (size_t)n;
            buf[got] = '\0';
            if (strstr(buf, "HELLO")) {
                if (send(c, ans, sizeof ans - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof ans - 1))
                    f->served++;
                break;
            }
        }
        while (recv(c, buf, sizeof buf, 0) > 0) {} /* until the client closes */
        close(c);
    }
    return NULL;
}

/* A store connection (min_major 7) to a server that says it is Redis
 * 6.2.14 never comes up, and says why; the same to the test's Redis 7
 * comes up and answers. */
static void old_server(void **state) {
    (void)state;
    old_redis_t f = {0};
    f.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(f.fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f.fd, 8), 0);
    assert_int_equal(getsockname(f.fd, (struct sockaddr *)&a, &al), 0);
    f.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f.th, NULL, old_redis_run, &f), 0);
    ts_rconn_opts_t o = {0};
    snprintf(o.host, sizeof o.host, "127.0.0.1");
    o.port = f.port;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    o.min_major = 7;
    res_t st = {0};
    ts_rconn_t *c = ts_rconn_new(&loop, &o, on_state, NULL, &st);
    assert_true(run_until(&st.downs, 3000));
    assert_int_equal(st.up, 0);
    assert_non_null(strstr(st.str, "Redis 6.2.14: tabsync's store needs Redis 7.0 or later"));
    assert_false(ts_rconn_is_up(c));
    close_conn(c);
    f.stop = 1;
    pthread_join(f.th, NULL);
    close(f.fd);
    assert_true(f.served >= 1);

    static redis_t r; /* static: the teardown may stop it after a failure */
    memset(&r, 0, sizeof r);
    redis_start(&r, NULL);
    ts_rconn_opts_t o7 = opts_for(&r);
    o7.min_major = 7;
    res_t up = {0}, x;
    ts_rconn_t *d = ts_rconn_new(&loop, &o7, on_state, NULL, &up);
    const char *ping[] = {"PING"};
    cmd(d, &x, 1, ping);
    assert_true(run_until(&x.calls, 2000));
    assert_int_equal(x.status, 0);
    assert_string_equal(x.str, "PONG");
    assert_int_equal(up.up, 1);
    assert_int_equal(up.downs, 0);
    close_conn(d);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls),
        cmocka_unit_test(format_as_hiredis),
        cmocka_unit_test_teardown(replies_and_pipelining, redis_stop_all),
        cmocka_unit_test_teardown(auth_and_select, redis_stop_all),
        cmocka_unit_test_teardown(pubsub_and_restart, redis_stop_all),
        cmocka_unit_test_teardown(down_timeout_bounds_close, redis_stop_all),
        cmocka_unit_test_teardown(tls, tls_teardown),
        cmocka_unit_test_teardown(sentinel, redis_stop_all),
        cmocka_unit_test_teardown(old_server, redis_stop_all),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    return rc;
}
