/* itest_client.c - libtabsync against the real server: starts `tabsyncd
 * --listen 127.0.0.1:0 --test-app` (JSON and msgpack parsers; binary path
 * in argv[1]), and checks through the public API only (tabsync.h, the
 * shared library): connect with auth, events and acks both ways, binary,
 * rooms, namespaces, refusals, server disconnect, buffered emits, ping
 * timeout of a stopped server, and reconnection with connection state
 * recovery (missed room events replayed, same id, recovered = 1). The test
 * app's events are documented in tests/js/README.md. The core tests run a
 * third time over TLS (wss://, tabsyncd --tls-cert with a self-signed
 * certificate made by the openssl CLI, trusted through tls_ca_file); then
 * what certificate verification must refuse, and reconnection over TLS. */
#include <errno.h>
#include <poll.h>
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

#include <cmocka.h>

#include "tabsync.h"

static const char *tabsyncd_path;

/* ---- the server ---- */

typedef struct srv {
    pid_t pid;
    int out_fd;
    int port;
    char url[80];
    int msgpack;
    const char *ca; /* TLS: the certificate clients trust (tls_ca_file) */
} srv_t;

/* Servers started and not yet stopped: a failed assertion leaves its test
 * by longjmp, so at exit these are killed here, or they would outlive the
 * test (and hold ctest's output pipe open). */
static pid_t live_pids[8];

static void kill_leftovers(void) {
    for (size_t i = 0; i < sizeof live_pids / sizeof *live_pids; i++) {
        if (!live_pids[i]) continue;
        kill(live_pids[i], SIGCONT);
        kill(live_pids[i], SIGKILL);
        waitpid(live_pids[i], NULL, 0);
        live_pids[i] = 0;
    }
}

static void track_pid(pid_t pid, pid_t replace) {
    for (size_t i = 0; i < sizeof live_pids / sizeof *live_pids; i++)
        if (live_pids[i] == replace) {
            live_pids[i] = pid;
            return;
        }
}

static void srv_start(srv_t *s, const char *const *extra) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    const char *argv[16] = {tabsyncd_path, "--listen", "127.0.0.1:0", "--test-app"};
    int n = 4;
    for (; extra && *extra; extra++) argv[n++] = *extra;
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    s->pid = pid;
    track_pid(pid, 0);
    s->out_fd = fds[0];
    /* the ready line: "tabsyncd listening on http://127.0.0.1:PORT/" */
    char line[256];
    size_t got = 0;
    while (got < sizeof line - 1 && !memchr(line, '\n', got)) {
        struct pollfd p = {fds[0], POLLIN, 0};
        int rc = poll(&p, 1, 10000);
        assert_true(rc > 0);
        ssize_t r = read(fds[0], line + got, sizeof line - 1 - got);
        assert_true(r > 0);
        got += (size_t)r;
        line[got] = '\0';
    }
    line[got] = '\0';
    unsigned port = 0;
    char scheme[8] = "";
    assert_int_equal(sscanf(line, "tabsyncd listening on %7[a-z]://127.0.0.1:%u/", scheme, &port),
                     2);
    s->port = (int)port;
    /* https:// in the ready line: --tls-cert; clients take wss:// */
    snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%u/",
             strcmp(scheme, "https") == 0 ? "wss" : "http", port);
}

static void srv_stop(srv_t *s) {
    assert_int_equal(kill(s->pid, SIGTERM), 0);
    int st = 0;
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) break;
        if (i == 499) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            track_pid(0, s->pid);
            fail_msg("tabsyncd did not stop within 5 s of SIGTERM");
        }
        usleep(10000);
    }
    track_pid(0, s->pid);
    close(s->out_fd);
    /* a clean exit: no sanitizer report, no crash */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static srv_t json_srv, mp_srv = {.msgpack = 1}, tls_srv;

/* certificates, made at test time in a temporary directory */
static char cert_dir[64];
static char good_crt[96], good_key[96], other_crt[96], other_key[96];

/* A self-signed P-256 certificate for `san` (e.g. "IP:127.0.0.1"). */
static void make_cert(const char *crt, const char *key, const char *san) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s -out %s -days 2 -subj /CN=tabsync-test -addext subjectAltName=%s "
             ">/dev/null 2>&1",
             key, crt, san);
    if (system(cmd) != 0) fail_msg("openssl req failed: %s", cmd);
}

static int group_setup(void **state) {
    srv_start(&json_srv, NULL);
    static const char *const mp[] = {"--parser", "msgpack", NULL};
    srv_start(&mp_srv, mp);
    snprintf(cert_dir, sizeof cert_dir, "/tmp/itest_client.XXXXXX");
    assert_non_null(mkdtemp(cert_dir));
    snprintf(good_crt, sizeof good_crt, "%s/good.crt", cert_dir);
    snprintf(good_key, sizeof good_key, "%s/good.key", cert_dir);
    snprintf(other_crt, sizeof other_crt, "%s/other.crt", cert_dir);
    snprintf(other_key, sizeof other_key, "%s/other.key", cert_dir);
    make_cert(good_crt, good_key, "IP:127.0.0.1,DNS:localhost");
    make_cert(other_crt, other_key, "DNS:other.invalid");
    const char *tls[] = {"--tls-cert", good_crt, "--tls-key", good_key, NULL};
    srv_start(&tls_srv, tls);
    tls_srv.ca = good_crt;
    return 0;
}

static int group_teardown(void **state) {
    srv_stop(&json_srv);
    srv_stop(&mp_srv);
    srv_stop(&tls_srv);
    const char *files[] = {good_crt, good_key, other_crt, other_key};
    for (size_t i = 0; i < 4; i++) unlink(files[i]);
    rmdir(cert_dir);
    return 0;
}

/* ---- a loop with a heartbeat, so waits can time out ---- */

typedef struct env {
    uv_loop_t loop;
    uv_timer_t tick;
    int counter; /* orders callbacks across clients */
} env_t;

static void on_tick(uv_timer_t *h) {}

static void env_init(env_t *e) {
    memset(e, 0, sizeof *e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->tick);
    uv_timer_start(&e->tick, on_tick, 10, 10);
}

static void env_done(env_t *e) {
    uv_close((uv_handle_t *)&e->tick, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

#define RUN_UNTIL(e, cond, ms)                                                     \
    do {                                                                           \
        uint64_t end_ = uv_now(&(e)->loop) + (ms);                                 \
        while (!(cond) && uv_now(&(e)->loop) < end_) uv_run(&(e)->loop, UV_RUN_ONCE); \
        if (!(cond)) fail_msg("timed out after %u ms waiting for %s", (unsigned)(ms), #cond); \
    } while (0)

/* ---- a recording client ---- */

#define MAX_EV 256

typedef struct ev {
    char name[64];
    char *args;
    int nattach;
    uint8_t att[4][300];
    size_t attlen[4];
    int64_t ack;
    int order;
} ev_t;

typedef struct tc {
    env_t *e;
    ts_client_t *c;
    int connects, disconnects, errors, connect_errors, closed, attempts;
    int last_recovered, connect_order, will_reconnect, last_err;
    char reason[64], ce_msg[128], ce_data[256], errmsg[512];
    ev_t ev[MAX_EV];
    int nev;
    const char *auto_ack; /* answer server acks with this (JSON array) */
    int auto_ack_rc, auto_ack_again_rc;
} tc_t;

static void c_connect(ts_client_t *c, int recovered, void *u) {
    tc_t *t = u;
    t->connects++;
    t->last_recovered = recovered;
    t->connect_order = ++t->e->counter;
    assert_int_equal(ts_client_recovered(c), recovered);
    assert_non_null(ts_client_id(c));
}
static void c_disconnect(ts_client_t *c, const char *reason, int will, void *u) {
    tc_t *t = u;
    t->disconnects++;
    t->will_reconnect = will;
    snprintf(t->reason, sizeof t->reason, "%s", reason);
}
static void c_error(ts_client_t *c, int err, const char *msg, void *u) {
    tc_t *t = u;
    t->errors++;
    t->last_err = err;
    snprintf(t->errmsg, sizeof t->errmsg, "%s", msg);
}
static void c_connect_error(ts_client_t *c, const char *msg, const char *data, void *u) {
    tc_t *t = u;
    t->connect_errors++;
    snprintf(t->ce_msg, sizeof t->ce_msg, "%s", msg);
    snprintf(t->ce_data, sizeof t->ce_data, "%s", data ? data : "(null)");
}
static void c_attempt(ts_client_t *c, unsigned attempt, unsigned delay, void *u) {
    ((tc_t *)u)->attempts++;
}
static void c_event(ts_client_t *c, const ts_client_event_t *ev, void *u) {
    tc_t *t = u;
    assert_true(t->nev < MAX_EV);
    ev_t *r = &t->ev[t->nev++];
    snprintf(r->name, sizeof r->name, "%s", ev->name);
    r->args = strdup(ev->args_json);
    r->nattach = (int)ev->nattach;
    for (size_t i = 0; i < ev->nattach && i < 4; i++) {
        assert_true(ev->attach[i].len <= sizeof r->att[i]);
        memcpy(r->att[i], ev->attach[i].data, ev->attach[i].len);
        r->attlen[i] = ev->attach[i].len;
    }
    r->ack = ev->ack_id;
    r->order = ++t->e->counter;
    if (ev->ack_id >= 0 && t->auto_ack) {
        t->auto_ack_rc = ts_client_ack(c, ev->ack_id, t->auto_ack);
        t->auto_ack_again_rc = ts_client_ack(c, ev->ack_id, t->auto_ack);
    }
}
static void c_closed(ts_client_t *c, void *u) { ((tc_t *)u)->closed = 1; }

typedef struct copts {
    const char *nsp, *auth;
    int reconnection;
    unsigned bmin, bmax, connect_timeout;
    const char *url, *ca; /* instead of the server's */
    int insecure;
} copts_t;

static void tc_new(tc_t *t, env_t *e, const srv_t *s, const copts_t *co) {
    memset(t, 0, sizeof *t);
    t->e = e;
    ts_client_opts_t o;
    ts_client_opts_init(&o);
    o.url = s->url;
    o.tls_ca_file = s->ca;
    o.parser = s->msgpack ? TS_CLIENT_PARSER_MSGPACK : TS_CLIENT_PARSER_JSON;
    o.reconnection = co ? co->reconnection : 0;
    if (co) {
        if (co->url) o.url = co->url;
        if (co->ca) o.tls_ca_file = co->ca;
        o.tls_insecure = co->insecure;
        o.nsp = co->nsp;
        o.auth_json = co->auth;
        if (co->bmin) o.backoff_min_ms = co->bmin;
        if (co->bmax) o.backoff_max_ms = co->bmax;
        if (co->connect_timeout) o.connect_timeout_ms = co->connect_timeout;
        o.backoff_jitter = 0;
    }
    o.cb.on_connect = c_connect;
    o.cb.on_disconnect = c_disconnect;
    o.cb.on_error = c_error;
    o.cb.on_connect_error = c_connect_error;
    o.cb.on_event = c_event;
    o.cb.on_reconnect_attempt = c_attempt;
    o.user = t;
    char err[256];
    int rc = ts_client_new(&e->loop, &o, &t->c, err, sizeof err);
    if (rc) fail_msg("ts_client_new: %s", err);
}

static void tc_open(tc_t *t, env_t *e, const srv_t *s, const copts_t *co) {
    tc_new(t, e, s, co);
    assert_int_equal(ts_client_connect(t->c), 0);
    RUN_UNTIL(e, t->connects == 1 || t->errors || t->connect_errors, 5000);
    if (t->connects != 1) fail_msg("not connected: %s %s", t->errmsg, t->ce_msg);
}

static void tc_close(tc_t *t) {
    ts_client_close(t->c, c_closed);
    RUN_UNTIL(t->e, t->closed, 3000);
    for (int i = 0; i < t->nev; i++) free(t->ev[i].args);
}

static ev_t *find_ev(tc_t *t, const char *name, int nth) {
    for (int i = 0; i < t->nev; i++)
        if (strcmp(t->ev[i].name, name) == 0 && nth-- == 0) return &t->ev[i];
    return NULL;
}

static int count_ev(tc_t *t, const char *name) {
    int n = 0;
    for (int i = 0; i < t->nev; i++) n += strcmp(t->ev[i].name, name) == 0;
    return n;
}

/* Arguments without the recovery offset the test app appends to every
 * event emitted without an ack ("...,\"Ab3dEf9x.42\"]"); checks it is there
 * and has the tabsyncd form. Returns new. */
static char *strip_offset(const char *args) {
    const char *q = strrchr(args, ',');
    const char *start = q ? q + 1 : args + 1;
    assert_true(start[0] == '"');
    assert_non_null(strchr(start, '.'));
    size_t keep = q ? (size_t)(q - args) : 1;
    char *out = malloc(keep + 2);
    memcpy(out, args, keep);
    out[keep] = ']';
    out[keep + 1] = '\0';
    return out;
}

static void assert_args(const ev_t *ev, const char *want_without_offset) {
    assert_non_null(ev);
    char *a = strip_offset(ev->args);
    assert_string_equal(a, want_without_offset);
    free(a);
}

/* ---- acks ---- */

typedef struct ackr {
    int done, status, nattach;
    char *args;
    uint8_t att[4][300];
    size_t attlen[4];
    uint64_t t_done;
    uv_loop_t *loop;
} ackr_t;

static void on_ackr(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud) {
    ackr_t *a = ud;
    assert_int_equal(a->done, 0); /* exactly once */
    a->done = 1;
    a->status = status;
    a->t_done = a->loop ? uv_now(a->loop) : 0;
    if (status == 0) {
        assert_null(reply->name);
        a->args = strdup(reply->args_json);
        a->nattach = (int)reply->nattach;
        for (size_t i = 0; i < reply->nattach && i < 4; i++) {
            memcpy(a->att[i], reply->attach[i].data, reply->attach[i].len);
            a->attlen[i] = reply->attach[i].len;
        }
    } else {
        assert_null(reply);
    }
}

/* Emits with an ack and waits for the answer; returns its args (new). */
static char *emit_wait(tc_t *t, const char *event, const char *args) {
    ackr_t a = {0};
    assert_int_equal(ts_client_emit_ack(t->c, event, args, on_ackr, &a, 5000), 0);
    RUN_UNTIL(t->e, a.done, 6000);
    assert_int_equal(a.status, 0);
    return a.args;
}

static void join(tc_t *t, const char *room) {
    char args[128];
    snprintf(args, sizeof args, "[\"%s\"]", room);
    char *r = emit_wait(t, "join", args);
    assert_string_equal(r, "[\"ok\"]");
    free(r);
}

/* ---- tests (each runs on the JSON and on the msgpack server) ---- */

static void test_connect_auth(void **state) {
    const srv_t *s = *state;
    env_t e;
    env_init(&e);
    tc_t a;
    copts_t co = {.auth = "{\"token\":\"abc\",\"n\":1,\"nested\":{\"k\":[true,null]}}"};
    tc_open(&a, &e, s, &co);
    assert_int_equal(a.last_recovered, 0);
    assert_int_equal(ts_client_state(a.c), TS_CLIENT_CONNECTED);
    assert_int_equal(strlen(ts_client_id(a.c)), 20);
    assert_non_null(ts_client_pid(a.c)); /* the test app has recovery on */
    unsigned pi, pt;
    size_t mp;
    ts_client_engine_info(a.c, &pi, &pt, &mp);
    assert_int_equal(pi, 25000);
    assert_int_equal(pt, 20000);
    assert_int_equal(mp, 1000000);
    RUN_UNTIL(&e, find_ev(&a, "auth", 0), 3000);
    ev_t *ev = find_ev(&a, "auth", 0);
    assert_args(ev, "[{\"token\":\"abc\",\"n\":1,\"nested\":{\"k\":[true,null]}}]");
    assert_int_equal(ev->ack, -1);
    /* the offset is the last argument, and the client remembers it */
    assert_non_null(strstr(ev->args, ts_client_offset(a.c)));
    /* no auth: the server sees {} */
    tc_t b;
    tc_open(&b, &e, s, NULL);
    RUN_UNTIL(&e, find_ev(&b, "auth", 0), 3000);
    assert_args(find_ev(&b, "auth", 0), "[{}]");
    assert_string_not_equal(ts_client_id(a.c), ts_client_id(b.c));
    tc_close(&a);
    tc_close(&b);
    env_done(&e);
}

static void test_message_round_trip(void **state) {
    const srv_t *s = *state;
    env_t e;
    env_init(&e);
    tc_t a;
    tc_open(&a, &e, s, NULL);
    static const char *const rows[] = {
        "[1,\"two\",{\"three\":[3,4.5]},null,true,false]",
        "[\"h\xc3\xa9llo \xe2\x98\x83 \\\"quoted\\\" \\n\"]",
        "[-0.001,1e+21,12345678901234,{\"1\":\"index keys first\",\"b\":2}]",
        "[[],{},\"\"]",
    };
    size_t nrows = sizeof rows / sizeof *rows;
    for (size_t i = 0; i < nrows; i++) assert_int_equal(ts_client_emit(a.c, "message", rows[i]), 0);
    /* a 50 kB string */
    size_t big_len = 50000;
    char *big = malloc(big_len + 5);
    big[0] = '[';
    big[1] = '"';
    for (size_t i = 0; i < big_len; i++) big[2 + i] = (char)('a' + i % 26);
    memcpy(big + 2 + big_len, "\"]", 3);
    assert_int_equal(ts_client_emit(a.c, "message", big), 0);
    RUN_UNTIL(&e, count_ev(&a, "message-back") == (int)nrows + 1, 5000);
    for (size_t i = 0; i < nrows; i++) assert_args(find_ev(&a, "message-back", (int)i), rows[i]);
    assert_args(find_ev(&a, "message-back", (int)nrows), big);
    free(big);
    /* no arguments at all */
    assert_int_equal(ts_client_emit(a.c, "message", NULL), 0);
    RUN_UNTIL(&e, count_ev(&a, "message-back") == (int)nrows + 2, 5000);
    assert_args(find_ev(&a, "message-back", (int)nrows + 1), "[]");
    tc_close(&a);
    env_done(&e);
}

static void test_acks_in_order(void **state) {
    const srv_t *s = *state;
    env_t e;
    env_init(&e);
    tc_t a;
    tc_open(&a, &e, s, NULL);
    char *r = emit_wait(&a, "message-with-ack", "[1,\"two\",{\"x\":null}]");
    assert_string_equal(r, "[1,\"two\",{\"x\":null}]"); /* acks carry no offset */
    free(r);
    enum { N = 50 };
    ackr_t acks[N];
    memset(acks, 0, sizeof acks);
    for (int i = 0; i < N; i++) {
        char args[32];
        snprintf(args, sizeof args, "[%d]", i);
        assert_int_equal(ts_client_emit_ack(a.c, "message-with-ack", args, on_ackr, &acks[i], 0), 0);
    }
    RUN_UNTIL(&e, acks[N - 1].done, 5000);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "[%d]", i);
        assert_int_equal(acks[i].done, 1);
        assert_string_equal(acks[i].args, want);
        free(acks[i].args);
    }
    tc_close(&a);
    env_done(&e);
}

static void test_server_ack(void **state) {
    const srv_t *s = *state;
    env_t e;
    env_init(&e);
    tc_t a;
    tc_open(&a, &e, s, NULL);
    a.auto_ack = "[\"pong\",8,{\"deep\":[1]}]";
    /* server-ack (event, ...args, cb): the server emits `event` with an ack
     * to us and hands our answer back as its ack */
    char *r = emit_wait(&a, "server-ack", "[\"ping-me\",7]");
    assert_string_equal(r, "[\"pong\",8,{\"deep\":[1]}]");
    free(r);
    ev_t *ev = find_ev(&a, "ping-me", 0);
    assert_non_null(ev);
    assert_true(ev->ack >= 0);
    assert_string_equal(ev->args, "[7]"); /* with an ack: no offset */
    assert_int_equal(a.auto_ack_rc, 0);
    assert_int_equal(a.auto_ack_again_rc, TS_ENOTFOUND); /* once per id */
    assert_int_equal(ts_client_ack(a.c, ev->ack + 1000, NULL), TS_ENOTFOUND);
    tc_close(&a);
    env_done(&e);
}

static void test_ack_timeout_and_close(void **state) {
    const srv_t *s = *state;
    env_t e;
    env_init(&e);
    tc_t a;
    tc_open(&a, &e, s, NULL);
    /* `message` is answered by an event, never by an ack */
    ackr_t t1 = {.loop = &e.loop}, t2 = {0};
    uint64_t t0 = uv_now(&e.loop);
    assert_int_equal(ts_client_emit_ack(a.c, "message", "[\"x\"]", on_ackr, &t1, 200), 0);
    assert_int_equal(ts_client_emit_ack(a.c, "message", "[\"y\"]", on_ackr, &t2, 0), 0);
    RUN_UNTIL(&e, t1.done, 3000);
    assert_int_equal(t1.status, TS_ETIMEDOUT);
    assert_true(t1.t_done - t0 >= 195);
    assert_int_equal(t2.done, 0);
    RUN_UNTIL(&e, count_ev(&a, "message-back") == 2, 3000);
    /* closing completes the one without a timeout */
    ts_client_close(a.c, c_closed);
    assert_int_equal(t2.done, 0);
    RUN_UNTIL(&e, a.closed, 3000);
    assert_int_equal(t2.done, 1);
    assert_int_equal(t2.status, TS_ECLOSED);
    for (int i = 0; i < a.nev; i++) free(a.ev[i].args);
    env_done(&e);
}

static void test_binary(void **state) {
    const srv_t *s = *state;
    env_t e;
    env_init(&e);
    tc_t a;
    tc_open(&a, &e, s, NULL);
    char *r = emit_wait(&a, "emit-binary", NULL);
    assert_string_equal(r, "[\"ok\"]");
    free(r);
    RUN_UNTIL(&e, find_ev(&a, "binary", 0), 3000);
    ev_t *ev = find_ev(&a, "binary", 0);
    assert_args(ev, "[{\"_placeholder\":true,\"num\":0},{\"nested\":{\"_placeholder\":true,"
                    "\"num\":1},\"n\":1}]");
    assert_int_equal(ev->nattach, 2);
    assert_int_equal(ev->attlen[0], 3);
    assert_memory_equal(ev->att[0], "\x01\x02\x03", 3);
    assert_int_equal(ev->attlen[1], 2);
    assert_memory_equal(ev->att[1], "\x04\x05", 2);

    /* ours: 256 bytes and an empty buffer, nested, echoed back */
    uint8_t bytes[256];
    for (int i = 0; i < 256; i++) bytes[i] = (uint8_t)i;
    ts_client_bytes_t att[2] = {{bytes, sizeof bytes}, {bytes, 0}};
    const char *args = "[\"bin\",{\"_placeholder\":true,\"num\":0},{\"e\":{\"_placeholder\":true,"
                       "\"num\":1}}]";
    assert_int_equal(ts_client_emit_binary(a.c, "message", args, att, 2, NULL, NULL, 0), 0);
    RUN_UNTIL(&e, find_ev(&a, "message-back", 0), 3000);
    ev = find_ev(&a, "message-back", 0);
    assert_args(ev, args);
    assert_int_equal(ev->nattach, 2);
    assert_int_equal(ev->attlen[0], 256);
    assert_memory_equal(ev->att[0], bytes, 256);
    assert_int_equal(ev->attlen[1], 0);
    /* and through an ack */
    ackr_t k = {0};
    assert_int_equal(ts_client_emit_binary(a.c, "message-with-ack",
                                           "[{\"_placeholder\":true,\"num\":0}]", att, 1, on_ackr,
                                           &k, 5000),
                     0);
    RUN_UNTIL(&e, k.done, 3000);
    assert_int_equal(k.status, 0);
    assert_string_equal(k.args, "[{\"_placeholder\":true,\"num\":0}]");
    assert_int_equal(k.nattach, 1);
    assert_memory_equal(k.att[0], bytes, 256);
    free(k.args);
    /* a placeholder without its attachment is refused before sending */
    assert_int_equal(ts_client_emit_binary(a.c, "message", "[{\"_placeholder\":true,\"num\":1}]",
                                           att, 1, NULL, NULL, 0),
                     TS_EINVAL);
    tc_close(&a);
    env_done(&e);
}

static void test_rooms(void **state) {
    const srv_t *s = *state;
    env_t e;
    env_init(&e);
    tc_t a, b, c;
    tc_open(&a, &e, s, NULL);
    tc_open(&b, &e, s, NULL);
    tc_open(&c, &e, s, NULL);
    join(&a, "room-1");
    join(&b, "room-1");
    assert_int_equal(ts_client_emit(b.c, "to-room-all", "[\"room-1\",\"hello\",42]"), 0);
    assert_int_equal(ts_client_emit(b.c, "to-room", "[\"room-1\",\"others\",1]"), 0);
    free(emit_wait(&b, "message-with-ack", NULL)); /* the server has handled both */
    RUN_UNTIL(&e, find_ev(&a, "others", 0), 3000);
    assert_args(find_ev(&a, "hello", 0), "[42]");
    assert_args(find_ev(&b, "hello", 0), "[42]");
    assert_args(find_ev(&a, "others", 0), "[1]");
    assert_null(find_ev(&b, "others", 0)); /* to-room skips the sender */
    free(emit_wait(&c, "message-with-ack", NULL));
    assert_null(find_ev(&c, "hello", 0)); /* not in the room */
    tc_close(&a);
    tc_close(&b);
    tc_close(&c);
    env_done(&e);
}

/* ---- JSON server only ---- */

static void test_namespaces(void **state) {
    env_t e;
    env_init(&e);
    static const char *const nsps[] = {"/custom", "/dyn-abc1"};
    for (int i = 0; i < 2; i++) {
        tc_t a;
        copts_t co = {.nsp = nsps[i], .auth = "{\"who\":\"ns\"}"};
        tc_open(&a, &e, &json_srv, &co);
        RUN_UNTIL(&e, find_ev(&a, "auth", 0), 3000);
        assert_args(find_ev(&a, "auth", 0), "[{\"who\":\"ns\"}]");
        char *r = emit_wait(&a, "message-with-ack", "[\"in ns\"]");
        assert_string_equal(r, "[\"in ns\"]");
        free(r);
        tc_close(&a);
    }
    env_done(&e);
}

static void test_connect_errors(void **state) {
    env_t e;
    env_init(&e);
    static const struct {
        const char *nsp, *auth, *msg, *data;
    } rows[] = {
        {"/refuse", NULL, "not allowed", "{\"reason\":\"test\",\"code\":42}"},
        {"/", "{\"refuse\":\"go away\"}", "go away", "{\"code\":403}"},
        {"/nope", NULL, "Invalid namespace", "(null)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        tc_t a;
        copts_t co = {.nsp = rows[i].nsp, .auth = rows[i].auth, .reconnection = 1};
        tc_new(&a, &e, &json_srv, &co);
        assert_int_equal(ts_client_connect(a.c), 0);
        RUN_UNTIL(&e, a.connect_errors, 3000);
        assert_string_equal(a.ce_msg, rows[i].msg);
        assert_string_equal(a.ce_data, rows[i].data);
        assert_int_equal(a.connects, 0);
        assert_int_equal(a.attempts, 0); /* a refusal is not retried */
        assert_int_equal(ts_client_state(a.c), TS_CLIENT_DISCONNECTED);
        tc_close(&a);
    }
    env_done(&e);
}

static void test_server_disconnect(void **state) {
    env_t e;
    env_init(&e);
    tc_t a;
    copts_t co = {.reconnection = 1};
    tc_open(&a, &e, &json_srv, &co);
    RUN_UNTIL(&e, find_ev(&a, "auth", 0), 3000);
    assert_int_equal(ts_client_emit(a.c, "disconnect-me", NULL), 0);
    RUN_UNTIL(&e, a.disconnects, 3000);
    assert_string_equal(a.reason, "io server disconnect");
    assert_int_equal(a.will_reconnect, 0);
    assert_int_equal(ts_client_state(a.c), TS_CLIENT_DISCONNECTED);
    assert_null(ts_client_pid(a.c)); /* nothing to recover */
    assert_null(ts_client_id(a.c));
    /* connecting again is up to the user */
    assert_int_equal(ts_client_connect(a.c), 0);
    RUN_UNTIL(&e, a.connects == 2, 3000);
    assert_int_equal(a.last_recovered, 0);
    tc_close(&a);
    env_done(&e);
}

static void test_buffered_before_connect(void **state) {
    env_t e;
    env_init(&e);
    tc_t a;
    tc_new(&a, &e, &json_srv, NULL);
    assert_int_equal(ts_client_emit(a.c, "message", "[\"early\",1]"), 0);
    ackr_t k = {0};
    assert_int_equal(ts_client_emit_ack(a.c, "message-with-ack", "[\"early ack\"]", on_ackr, &k,
                                        5000),
                     0);
    assert_int_equal(ts_client_emit(a.c, "message", "[\"early\",2]"), 0);
    assert_int_equal(ts_client_connect(a.c), 0);
    RUN_UNTIL(&e, count_ev(&a, "message-back") == 2 && k.done, 5000);
    assert_args(find_ev(&a, "message-back", 0), "[\"early\",1]");
    assert_args(find_ev(&a, "message-back", 1), "[\"early\",2]");
    assert_string_equal(k.args, "[\"early ack\"]");
    free(k.args);
    tc_close(&a);
    env_done(&e);
}

/* Drops A's connection, has B send 3 events to A's room while A is away,
 * then lets A come back (by hand or by reconnection) and checks recovery. */
static void run_recovery(int automatic) {
    env_t e;
    env_init(&e);
    tc_t a, b;
    copts_t co = {.reconnection = automatic, .bmin = 500, .bmax = 500};
    tc_open(&a, &e, &json_srv, &co);
    tc_open(&b, &e, &json_srv, NULL);
    join(&a, "rec");
    RUN_UNTIL(&e, find_ev(&a, "auth", 0), 3000); /* A has an offset */
    char id[64], pid[64];
    snprintf(id, sizeof id, "%s", ts_client_id(a.c));
    snprintf(pid, sizeof pid, "%s", ts_client_pid(a.c));
    assert_non_null(ts_client_offset(a.c));

    assert_int_equal(ts_client_debug_drop(a.c), 0);
    RUN_UNTIL(&e, a.disconnects, 3000);
    assert_string_equal(a.reason, "transport close");
    assert_int_equal(a.will_reconnect, automatic);
    assert_int_equal(ts_client_state(a.c),
                     automatic ? TS_CLIENT_RECONNECT_WAIT : TS_CLIENT_DISCONNECTED);
    for (int i = 1; i <= 3; i++) {
        char args[64];
        snprintf(args, sizeof args, "[\"rec\",\"missed\",%d]", i);
        assert_int_equal(ts_client_emit(b.c, "to-room-all", args), 0);
    }
    free(emit_wait(&b, "message-with-ack", NULL));
    assert_int_equal(a.connects, 1); /* still away (500 ms backoff) */
    assert_int_equal(count_ev(&a, "missed"), 0);
    if (!automatic) assert_int_equal(ts_client_connect(a.c), 0);
    RUN_UNTIL(&e, a.connects == 2 && count_ev(&a, "missed") == 3, 5000);
    if (automatic) assert_int_equal(a.attempts, 1);
    assert_int_equal(a.last_recovered, 1);
    assert_int_equal(ts_client_recovered(a.c), 1);
    assert_string_equal(ts_client_id(a.c), id);
    assert_string_equal(ts_client_pid(a.c), pid);
    for (int i = 0; i < 3; i++) {
        char want[16];
        snprintf(want, sizeof want, "[%d]", i + 1);
        ev_t *ev = find_ev(&a, "missed", i);
        assert_args(ev, want);
        assert_true(ev->order > a.connect_order); /* delivered after on_connect */
    }
    /* the server says so too, and A is still in its room */
    char *r = emit_wait(&a, "recovered", NULL);
    assert_string_equal(r, "[true]");
    free(r);
    assert_int_equal(ts_client_emit(b.c, "to-room-all", "[\"rec\",\"after\",4]"), 0);
    RUN_UNTIL(&e, find_ev(&a, "after", 0), 3000);
    assert_args(find_ev(&a, "after", 0), "[4]");
    assert_int_equal(count_ev(&a, "missed"), 3); /* exactly once */
    tc_close(&a);
    tc_close(&b);
    env_done(&e);
}

static void test_recovery_by_hand(void **state) { run_recovery(0); }
static void test_recovery_by_reconnection(void **state) { run_recovery(1); }

static void test_ping_timeout_of_stopped_server(void **state) {
    srv_t s = {0}; /* the JSON parser */
    static const char *const args[] = {"--ping-interval", "300", "--ping-timeout", "200", NULL};
    srv_start(&s, args);
    env_t e;
    env_init(&e);
    tc_t a;
    copts_t co = {.reconnection = 1, .bmin = 100, .bmax = 200, .connect_timeout = 1000};
    tc_open(&a, &e, &s, &co);
    unsigned pi, pt;
    ts_client_engine_info(a.c, &pi, &pt, NULL);
    assert_int_equal(pi, 300);
    assert_int_equal(pt, 200);
    /* a few heartbeats go by without trouble */
    uint64_t t0 = uv_now(&e.loop);
    RUN_UNTIL(&e, uv_now(&e.loop) - t0 >= 1000, 2000);
    assert_int_equal(a.disconnects, 0);
    assert_int_equal(kill(s.pid, SIGSTOP), 0);
    t0 = uv_now(&e.loop);
    RUN_UNTIL(&e, a.disconnects, 3000);
    assert_string_equal(a.reason, "ping timeout");
    assert_int_equal(a.will_reconnect, 1);
    /* pingInterval + pingTimeout after the last ping; generous slack for a
     * loaded machine, still far below what TCP alone would take to notice */
    assert_true(uv_now(&e.loop) - t0 <= 500 + 1000);
    assert_int_equal(kill(s.pid, SIGCONT), 0);
    RUN_UNTIL(&e, a.connects == 2, 5000);
    assert_true(a.attempts >= 1);
    tc_close(&a);
    env_done(&e);
    srv_stop(&s);
}

/* ---- TLS ---- */

/* One attempt that must fail: returns the error message (static). */
static const char *tls_refused(env_t *e, const srv_t *s, const copts_t *co) {
    static char msg[512];
    tc_t a;
    tc_new(&a, e, s, co);
    assert_int_equal(ts_client_connect(a.c), 0);
    RUN_UNTIL(e, a.errors || a.connects, 5000);
    assert_int_equal(a.connects, 0);
    snprintf(msg, sizeof msg, "%s", a.errmsg);
    tc_close(&a);
    return msg;
}

static void test_tls_verification(void **state) {
    env_t e;
    env_init(&e);
    char url[80];
    /* the system's trust store does not know a self-signed certificate */
    srv_t sys = tls_srv;
    sys.ca = NULL;
    const char *m = tls_refused(&e, &sys, NULL);
    if (!strstr(m, "certificate verify failed") || !strstr(m, "self-signed"))
        fail_msg("no CA: %s", m);
    /* trusting another certificate is no better */
    copts_t co = {.ca = other_crt};
    m = tls_refused(&e, &tls_srv, &co);
    if (!strstr(m, "certificate verify failed")) fail_msg("other CA: %s", m);
    /* a trusted certificate that is not for this address */
    srv_t other = {0};
    const char *args[] = {"--tls-cert", other_crt, "--tls-key", other_key, NULL};
    srv_start(&other, args);
    other.ca = other_crt;
    m = tls_refused(&e, &other, NULL);
    if (!strstr(m, "certificate verify failed") || !strstr(m, "mismatch"))
        fail_msg("wrong name: %s", m);
    /* ... which tls_insecure accepts (debugging only) */
    tc_t a;
    copts_t insecure = {.insecure = 1};
    other.ca = NULL;
    tc_open(&a, &e, &other, &insecure);
    char *r = emit_wait(&a, "message-with-ack", "[\"over tls\"]");
    assert_string_equal(r, "[\"over tls\"]");
    free(r);
    tc_close(&a);
    srv_stop(&other);
    /* the certificate's DNS name works as well as its address */
    snprintf(url, sizeof url, "wss://localhost:%d/", tls_srv.port);
    copts_t byname = {.url = url};
    tc_open(&a, &e, &tls_srv, &byname);
    tc_close(&a);
    /* TLS to a server that does not speak it: a handshake failure, said so */
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", json_srv.port);
    copts_t plain = {.url = url, .ca = good_crt};
    m = tls_refused(&e, &json_srv, &plain);
    char want[64];
    snprintf(want, sizeof want, "TLS with 127.0.0.1:%d: handshake failed", json_srv.port);
    if (!strstr(m, want)) fail_msg("plain server: %s", m);
    env_done(&e);
}

/* A dropped wss:// connection reconnects over a new TLS session and the
 * server restores the session (recovered = 1, the missed event replayed). */
static void test_tls_reconnection(void **state) {
    env_t e;
    env_init(&e);
    tc_t a, b;
    copts_t co = {.reconnection = 1, .bmin = 300, .bmax = 400};
    tc_open(&a, &e, &tls_srv, &co);
    tc_open(&b, &e, &tls_srv, NULL);
    join(&a, "tls-room");
    join(&b, "tls-room");
    char *id = strdup(ts_client_id(a.c));
    assert_int_equal(ts_client_debug_drop(a.c), 0);
    RUN_UNTIL(&e, a.disconnects == 1, 3000);
    assert_int_equal(ts_client_emit(b.c, "to-room", "[\"tls-room\",\"while-away\",1]"), 0);
    char *r = emit_wait(&b, "message-with-ack", "[0]"); /* b's packets are in order */
    free(r);
    RUN_UNTIL(&e, a.connects == 2, 5000);
    assert_int_equal(a.last_recovered, 1);
    assert_string_equal(ts_client_id(a.c), id);
    RUN_UNTIL(&e, find_ev(&a, "while-away", 0), 3000);
    assert_args(find_ev(&a, "while-away", 0), "[1]");
    free(id);
    tc_close(&a);
    tc_close(&b);
    env_done(&e);
}

static int all_done(const ackr_t *a, int n) {
    for (int i = 0; i < n; i++)
        if (!a[i].done) return 0;
    return 1;
}

static void test_many_clients(void **state) {
    enum { N = 40 };
    env_t e;
    env_init(&e);
    static tc_t cs[N];
    for (int i = 0; i < N; i++) {
        tc_new(&cs[i], &e, &json_srv, NULL);
        assert_int_equal(ts_client_connect(cs[i].c), 0);
    }
    ackr_t acks[N];
    memset(acks, 0, sizeof acks);
    for (int i = 0; i < N; i++) {
        char args[32];
        snprintf(args, sizeof args, "[%d]", i);
        assert_int_equal(ts_client_emit_ack(cs[i].c, "message-with-ack", args, on_ackr, &acks[i],
                                            5000),
                         0);
    }
    RUN_UNTIL(&e, all_done(acks, N), 8000);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "[%d]", i);
        assert_int_equal(acks[i].status, 0);
        assert_string_equal(acks[i].args, want);
        free(acks[i].args);
        assert_int_equal(cs[i].connects, 1);
    }
    for (int i = 0; i < N; i++) ts_client_close(cs[i].c, c_closed);
    for (int i = 0; i < N; i++) {
        RUN_UNTIL(&e, cs[i].closed, 3000);
        for (int k = 0; k < cs[i].nev; k++) free(cs[i].ev[k].args);
    }
    env_done(&e);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: itest_client PATH_TO_TABSYNCD\n");
        return 2;
    }
    tabsyncd_path = argv[1];
    atexit(kill_leftovers);
    signal(SIGPIPE, SIG_IGN);
#define BOTH(f)                                                                    \
    cmocka_unit_test_prestate(f, &json_srv), cmocka_unit_test_prestate(f, &mp_srv),  \
        cmocka_unit_test_prestate(f, &tls_srv)
    const struct CMUnitTest tests[] = {
        BOTH(test_connect_auth),
        BOTH(test_message_round_trip),
        BOTH(test_acks_in_order),
        BOTH(test_server_ack),
        BOTH(test_ack_timeout_and_close),
        BOTH(test_binary),
        BOTH(test_rooms),
        cmocka_unit_test(test_tls_verification),
        cmocka_unit_test(test_tls_reconnection),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_connect_errors),
        cmocka_unit_test(test_server_disconnect),
        cmocka_unit_test(test_buffered_before_connect),
        cmocka_unit_test(test_recovery_by_hand),
        cmocka_unit_test(test_recovery_by_reconnection),
        cmocka_unit_test(test_ping_timeout_of_stopped_server),
        cmocka_unit_test(test_many_clients),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
