/* itest_session.c - libtabsync's /session API against the real server:
 * starts `tabsyncd --jwt-secret S --listen 127.0.0.1:0` (binary path in
 * argv[1]), mints tokens with `tabsyncd token` run as a child process, and
 * checks through the public API only: the auth object, welcome, publish to
 * session / user / device with `from`, refused connections (data.code),
 * refused publishes and metadata, the `error` event, token swap (then a
 * reconnection with the fresh token after the old one expired), token
 * expiry (security notices, then the server's disconnect), and protocol 3
 * (the session history: `sync` and `state` through ts_client_emit_ack). */
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tabsync.h"

static const char *tabsyncd_path;
static char secret[65];

/* ---- the server and its tokens ---- */

static struct {
    pid_t pid;
    int out_fd;
    char url[80];
} srv;

/* Runs argv, returns its first stdout line (static buffer), or fails. */
static const char *run_line(const char *const *argv) {
    static char line[4096];
    int fds[2];
    assert_int_equal(pipe(fds), 0);
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
    size_t got = 0;
    ssize_t r;
    while (got < sizeof line - 1 && (r = read(fds[0], line + got, sizeof line - 1 - got)) > 0)
        got += (size_t)r;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    line[got] = '\0';
    line[strcspn(line, "\n")] = '\0';
    return line;
}

/* A token from `tabsyncd token`. Returns new (free). */
static char *mint(const char *user, const char *session, const char *device,
                  const char *fingerprint, int ttl) {
    char ttl_s[16];
    snprintf(ttl_s, sizeof ttl_s, "%d", ttl);
    const char *argv[] = {tabsyncd_path, "token",     "--jwt-secret", secret,   "--user",
                          user,          "--session", session,        "--device", device,
                          "--fingerprint", fingerprint, "--ttl",      ttl_s,    NULL};
    char *t = strdup(run_line(argv));
    assert_non_null(t);
    assert_true(strlen(t) > 40);
    return t;
}

static int group_setup(void **state) {
    uint8_t raw[32];
    FILE *f = fopen("/dev/urandom", "rb");
    assert_non_null(f);
    assert_int_equal(fread(raw, 1, sizeof raw, f), sizeof raw);
    fclose(f);
    for (size_t i = 0; i < sizeof raw; i++) snprintf(secret + 2 * i, 3, "%02x", raw[i]);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* no limits: the tests open many tabs quickly; leeway 0: an expired
     * token is refused at once */
    const char *argv[] = {tabsyncd_path, "--jwt-secret", secret, "--listen", "127.0.0.1:0",
                          "--jwt-leeway", "0", "--limit-handshakes-per-ip", "0",
                          "--limit-conns-per-ip", "0", "--limit-conns-per-user", "0",
                          "--limit-events-per-socket", "0", "--limit-bytes-per-socket", "0",
                          "--limit-strikes", "0", NULL};
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
    srv.pid = pid;
    srv.out_fd = fds[0];
    char line[256];
    size_t got = 0;
    while (got < sizeof line - 1 && !memchr(line, '\n', got)) {
        struct pollfd p = {fds[0], POLLIN, 0};
        assert_true(poll(&p, 1, 10000) > 0);
        ssize_t r = read(fds[0], line + got, sizeof line - 1 - got);
        assert_true(r > 0);
        got += (size_t)r;
        line[got] = '\0';
    }
    unsigned port = 0;
    assert_int_equal(sscanf(line, "tabsyncd listening on http://127.0.0.1:%u/", &port), 1);
    snprintf(srv.url, sizeof srv.url, "http://127.0.0.1:%u/", port);
    return 0;
}

/* At exit: a server that group_teardown did not stop (a failed setup). */
static void kill_leftover(void) {
    if (!srv.pid) return;
    kill(srv.pid, SIGKILL);
    waitpid(srv.pid, NULL, 0);
}

static int group_teardown(void **state) {
    pid_t pid = srv.pid;
    assert_int_equal(kill(pid, SIGTERM), 0);
    int st = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) break;
        if (i == 499) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            srv.pid = 0;
            fail_msg("tabsyncd did not stop within 5 s of SIGTERM");
        }
        usleep(10000);
    }
    srv.pid = 0;
    close(srv.out_fd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    return 0;
}

/* ---- a loop with a heartbeat, so waits can time out ---- */

typedef struct env {
    uv_loop_t loop;
    uv_timer_t tick;
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

#define RUN_UNTIL(e, cond, ms)                                                            \
    do {                                                                                  \
        uint64_t end_ = uv_now(&(e)->loop) + (ms);                                        \
        while (!(cond) && uv_now(&(e)->loop) < end_) uv_run(&(e)->loop, UV_RUN_ONCE);     \
        if (!(cond)) fail_msg("timed out after %u ms waiting for %s", (unsigned)(ms), #cond); \
    } while (0)

#define RUN_FOR(e, ms)                                                                    \
    do {                                                                                  \
        uint64_t end_ = uv_now(&(e)->loop) + (ms);                                        \
        while (uv_now(&(e)->loop) < end_) uv_run(&(e)->loop, UV_RUN_ONCE);                \
    } while (0)

/* ---- a recording tab ---- */

#define MAX_REC 64

typedef struct env_rec { /* one received envelope */
    int v;
    char type[80], id[80], prio[16], to[16], body[256], fuser[64], fdev[64], ftab[64];
    int has_cid;
} env_rec_t;

typedef struct tab {
    env_t *e;
    ts_client_t *c;
    char *token;
    int connects, disconnects, welcomes, connect_errors, closed, plain_events;
    int will_reconnect;
    char reason[64], ce_msg[256], ce_data[256], plain_name[32], plain_args[512];
    /* last welcome */
    char w_user[64], w_session[64], w_device[64], w_tab[64], w_node[64], w_json[512];
    int w_proto;
    int64_t w_exp;
    env_rec_t ev[MAX_REC];
    int nev;
    char sec_code[4][32];
    int64_t sec_exp[4];
    int nsec;
    char ref_code[32], ref_msg[200];
    int refused;
} tab_t;

static void copy(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s ? s : "(null)"); }

static void t_connect(ts_client_t *c, int recovered, void *u) { ((tab_t *)u)->connects++; }
static void t_disconnect(ts_client_t *c, const char *reason, int will, void *u) {
    tab_t *t = u;
    t->disconnects++;
    t->will_reconnect = will;
    copy(t->reason, sizeof t->reason, reason);
}
static void t_connect_error(ts_client_t *c, const char *msg, const char *data, void *u) {
    tab_t *t = u;
    t->connect_errors++;
    copy(t->ce_msg, sizeof t->ce_msg, msg);
    copy(t->ce_data, sizeof t->ce_data, data);
}
static void t_event(ts_client_t *c, const ts_client_event_t *ev, void *u) {
    tab_t *t = u;
    t->plain_events++;
    copy(t->plain_name, sizeof t->plain_name, ev->name);
    copy(t->plain_args, sizeof t->plain_args, ev->args_json);
}
static void t_welcome(ts_client_t *c, const ts_client_welcome_t *w, void *u) {
    tab_t *t = u;
    t->welcomes++;
    copy(t->w_user, sizeof t->w_user, w->user);
    copy(t->w_session, sizeof t->w_session, w->session);
    copy(t->w_device, sizeof t->w_device, w->device);
    copy(t->w_tab, sizeof t->w_tab, w->tab);
    copy(t->w_node, sizeof t->w_node, w->node);
    copy(t->w_json, sizeof t->w_json, w->json);
    t->w_proto = w->proto;
    t->w_exp = w->exp;
}
static void t_envelope(ts_client_t *c, const ts_client_envelope_t *e, void *u) {
    tab_t *t = u;
    assert_true(t->nev < MAX_REC);
    env_rec_t *r = &t->ev[t->nev++];
    r->v = e->v;
    copy(r->type, sizeof r->type, e->type);
    copy(r->id, sizeof r->id, e->id);
    copy(r->prio, sizeof r->prio, e->prio);
    copy(r->to, sizeof r->to, e->to);
    copy(r->body, sizeof r->body, e->body_json);
    copy(r->fuser, sizeof r->fuser, e->from_user);
    copy(r->fdev, sizeof r->fdev, e->from_device);
    copy(r->ftab, sizeof r->ftab, e->from_tab);
    r->has_cid = e->cid != NULL;
    /* the whole envelope is there too */
    assert_non_null(strstr(e->json, "\"from\":{"));
}
static void t_security(ts_client_t *c, const ts_client_security_t *s, void *u) {
    tab_t *t = u;
    assert_true(t->nsec < 4);
    copy(t->sec_code[t->nsec], sizeof t->sec_code[0], s->code);
    t->sec_exp[t->nsec++] = s->exp;
    assert_non_null(s->message);
    assert_non_null(strstr(s->json, s->code));
}
static void t_refused(ts_client_t *c, const ts_client_result_t *r, void *u) {
    tab_t *t = u;
    t->refused++;
    assert_int_equal(r->ok, 0);
    copy(t->ref_code, sizeof t->ref_code, r->code);
    copy(t->ref_msg, sizeof t->ref_msg, r->message);
}
static void t_closed(ts_client_t *c, void *u) { ((tab_t *)u)->closed = 1; }

/* The /session protocol version the next tabs ask for (0: the default). */
static int open_proto;

/* Opens a tab (does not wait). typed = 0: no typed callbacks (everything
 * goes to on_event). A NULL token is minted for (user, session, device). */
static void tab_open_ex(tab_t *t, env_t *e, const char *user, const char *session,
                        const char *device, const char *fingerprint, const char *token,
                        const char *tab_id, int typed, int reconnect) {
    memset(t, 0, sizeof *t);
    t->e = e;
    t->token = token ? strdup(token) : mint(user, session, device, fingerprint, 600);
    ts_client_session_opts_t so;
    ts_client_session_opts_init(&so);
    so.client.url = srv.url;
    so.client.reconnection = reconnect;
    so.client.backoff_min_ms = 50;
    so.client.backoff_max_ms = 100;
    so.client.cb.on_connect = t_connect;
    so.client.cb.on_disconnect = t_disconnect;
    so.client.cb.on_connect_error = t_connect_error;
    so.client.cb.on_event = t_event;
    so.client.user = t;
    so.token = t->token;
    so.device_id = device;
    so.fingerprint = fingerprint;
    so.device_type = "cli";
    so.tab_id = tab_id;
    so.proto = open_proto;
    if (typed) {
        so.scb.on_welcome = t_welcome;
        so.scb.on_envelope = t_envelope;
        so.scb.on_security = t_security;
        so.scb.on_refused = t_refused;
    }
    char err[256];
    int rc = ts_client_session_new(&e->loop, &so, &t->c, err, sizeof err);
    if (rc < 0) fail_msg("ts_client_session_new: %s", err);
    assert_int_equal(ts_client_connect(t->c), 0);
}

static void fp_of(char *out, size_t n, const char *device) { snprintf(out, n, "fp:%s:secret", device); }

static void tab_open(tab_t *t, env_t *e, const char *user, const char *session,
                     const char *device, const char *tab_id) {
    char fp[96];
    fp_of(fp, sizeof fp, device);
    tab_open_ex(t, e, user, session, device, fp, NULL, tab_id, 1, 0);
    RUN_UNTIL(e, t->welcomes == 1 || t->connect_errors, 5000);
    if (t->connect_errors) fail_msg("%s refused: %s %s", tab_id, t->ce_msg, t->ce_data);
}

static void tab_close(tab_t *t) {
    ts_client_close(t->c, t_closed);
    RUN_UNTIL(t->e, t->closed, 3000);
    free(t->token);
}

/* ---- results ---- */

typedef struct res {
    int done, status, ok;
    char id[80], code[40], msg[200], json[300];
    int64_t exp, retry;
} res_t;

static void on_result(ts_client_t *c, int status, const ts_client_result_t *r, void *ud) {
    res_t *x = ud;
    assert_int_equal(x->done, 0); /* exactly once */
    x->done = 1;
    x->status = status;
    if (!r) return;
    x->ok = r->ok;
    copy(x->id, sizeof x->id, r->id);
    copy(x->code, sizeof x->code, r->code);
    copy(x->msg, sizeof x->msg, r->message);
    copy(x->json, sizeof x->json, r->json);
    x->exp = r->exp;
    x->retry = r->retry_after_ms;
}

static void publish_ok(tab_t *t, const char *type, const char *id, const char *body,
                       ts_client_scope_t scope, ts_client_prio_t prio, res_t *x) {
    memset(x, 0, sizeof *x);
    assert_int_equal(ts_client_publish(t->c, type, id, body, scope, prio, on_result, x), 0);
    RUN_UNTIL(t->e, x->done, 5000);
    assert_int_equal(x->status, 0);
    if (!x->ok) fail_msg("publish refused: %s %s", x->code, x->msg);
}

/* ---- tests ---- */

static void test_auth_json(void **state) {
    static const char *const caps[] = {"idb", "sw"};
    ts_client_session_opts_t so;
    ts_client_session_opts_init(&so);
    assert_string_equal(so.client.nsp, "/session");
    so.token = "tok.en.x";
    so.device_id = "dev-1";
    so.fingerprint = "q\"uote\\back\nline \xc3\xa9 \xe2\x98\x83 \x01";
    so.device_type = "desktop";
    so.caps = caps;
    so.ncaps = 2;
    so.tab_id = "tab-1";
    char *text = NULL, err[200];
    assert_int_equal(ts_client_session_auth_json(&so, &text, err, sizeof err), 0);
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "token")), "tok.en.x");
    json_t *d = json_object_get(o, "device");
    assert_string_equal(json_string_value(json_object_get(d, "id")), "dev-1");
    assert_string_equal(json_string_value(json_object_get(d, "fingerprint")), so.fingerprint);
    assert_string_equal(json_string_value(json_object_get(d, "type")), "desktop");
    assert_int_equal(json_array_size(json_object_get(d, "caps")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "caps"), 1)), "sw");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "tab"), "id")),
                        "tab-1");
    assert_int_equal(json_integer_value(json_object_get(o, "proto")), 2);
    assert_int_equal(json_object_size(o), 4);
    json_decref(o);
    ts_client_free(text);

    /* defaults: a random tab id, type server, no caps */
    so.tab_id = NULL;
    so.device_type = NULL;
    so.ncaps = 0;
    so.caps = NULL;
    assert_int_equal(ts_client_session_auth_json(&so, &text, err, sizeof err), 0);
    o = json_loads(text, 0, &je);
    const char *tab = json_string_value(json_object_get(json_object_get(o, "tab"), "id"));
    assert_int_equal(strncmp(tab, "tab-", 4), 0);
    assert_int_equal(strlen(tab), 20);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "device"), "type")),
                        "server");
    assert_null(json_object_get(json_object_get(o, "device"), "caps"));
    json_decref(o);
    ts_client_free(text);

    /* what is refused before anything is sent */
    static const struct {
        const char *name, *want;
        int field; /* 0 token, 1 device_id, 2 fingerprint, 3 caps[0] */
        const char *value;
    } bad[] = {
        {"no token", "token: required", 0, NULL},
        {"empty device", "device_id: required", 1, ""},
        {"fingerprint not UTF-8", "fingerprint: not valid UTF-8", 2, "\xff\xfe"},
        {"empty cap", "caps[0]: required", 3, ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ts_client_session_opts_t b = so;
        const char *cap1[1] = {"ok"};
        if (bad[i].field == 0) b.token = bad[i].value;
        if (bad[i].field == 1) b.device_id = bad[i].value;
        if (bad[i].field == 2) b.fingerprint = bad[i].value;
        if (bad[i].field == 3) {
            cap1[0] = bad[i].value;
            b.caps = cap1;
            b.ncaps = 1;
        }
        text = (char *)"untouched";
        assert_int_equal(ts_client_session_auth_json(&b, &text, err, sizeof err), TS_EINVAL);
        assert_null(text);
        if (!strstr(err, bad[i].want)) fail_msg("%s: got \"%s\"", bad[i].name, err);
    }

    /* session_new refuses auth_json (the auth object is built) and bad fields */
    env_t e;
    env_init(&e);
    ts_client_t *c = NULL;
    so.client.url = "http://127.0.0.1:1/";
    so.client.auth_json = "{}";
    assert_int_equal(ts_client_session_new(&e.loop, &so, &c, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "client.auth_json"));
    assert_null(c);
    so.client.auth_json = NULL;
    so.token = NULL;
    assert_int_equal(ts_client_session_new(&e.loop, &so, &c, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "token: required"));
    so.token = "t";
    so.client.url = "ftp://x/";
    assert_int_equal(ts_client_session_new(&e.loop, &so, &c, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "url:"));

    /* the session API on a plain client, and a session client's tab id */
    ts_client_opts_t po;
    ts_client_opts_init(&po);
    po.url = "http://127.0.0.1:1/";
    assert_int_equal(ts_client_new(&e.loop, &po, &c, err, sizeof err), 0);
    res_t x = {0};
    assert_int_equal(ts_client_publish(c, "t", NULL, NULL, TS_CLIENT_TO_SESSION,
                                       TS_CLIENT_PRIO_DEFAULT, on_result, &x),
                     TS_EINVAL);
    assert_int_equal(ts_client_set_metadata(c, "{}", on_result, &x), TS_EINVAL);
    assert_int_equal(ts_client_swap_token(c, "t", on_result, &x), TS_EINVAL);
    assert_int_equal(ts_client_set_token(c, "t"), TS_EINVAL);
    assert_null(ts_client_session_tab(c));
    ts_client_close(c, NULL);
    so.client.url = "http://127.0.0.1:1/";
    so.tab_id = "my-tab";
    assert_int_equal(ts_client_session_new(&e.loop, &so, &c, err, sizeof err), 0);
    assert_string_equal(ts_client_session_tab(c), "my-tab");
    /* swap needs a connection; set_token does not */
    assert_int_equal(ts_client_swap_token(c, "t2", on_result, &x), TS_ESTATE);
    assert_int_equal(ts_client_set_token(c, "t2"), 0);
    assert_int_equal(ts_client_set_token(c, ""), TS_EINVAL);
    ts_client_close(c, NULL);
    assert_int_equal(x.done, 0);
    env_done(&e);
}

static void test_welcome_and_publish(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, b;
    time_t now = time(NULL);
    tab_open(&a, &e, "alice", "s1", "laptop", "tab-a");
    tab_open(&b, &e, "alice", "s1", "phone", "tab-b");
    assert_string_equal(a.w_user, "alice");
    assert_string_equal(a.w_session, "s1");
    assert_string_equal(a.w_device, "laptop");
    assert_string_equal(a.w_tab, "tab-a");
    assert_int_equal(a.w_proto, 2);
    assert_true(a.w_exp >= now + 590 && a.w_exp <= now + 610);
    assert_true(strlen(a.w_node) > 0);
    assert_non_null(strstr(a.w_json, "\"user\":\"alice\""));
    assert_string_equal(b.w_device, "phone");
    assert_int_equal(a.plain_events, 0); /* the welcome went to the typed callback only */

    /* a generated id, a prio, a body with escapes and non-ASCII */
    res_t x;
    publish_ok(&a, "cart.update", NULL, "{\"items\":[1,2.5],\"s\":\"\xc3\xa9\\\"x\"}",
               TS_CLIENT_TO_SESSION, TS_CLIENT_PRIO_STATE, &x);
    assert_int_equal(x.id[0], 'p');
    assert_non_null(strstr(x.json, "\"ok\":true"));
    RUN_UNTIL(&e, b.nev == 1, 5000);
    env_rec_t *r = &b.ev[0];
    assert_int_equal(r->v, 2);
    assert_string_equal(r->type, "cart.update");
    assert_string_equal(r->id, x.id);
    assert_string_equal(r->prio, "state");
    assert_string_equal(r->to, "session");
    assert_string_equal(r->body, "{\"items\":[1,2.5],\"s\":\"\xc3\xa9\\\"x\"}");
    assert_string_equal(r->fuser, "alice");
    assert_string_equal(r->fdev, "laptop");
    assert_string_equal(r->ftab, "tab-a");
    assert_int_equal(r->has_cid, 0);

    /* ids given, the default prio, no body, order kept */
    char id[32];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "m-%d", i);
        assert_int_equal(ts_client_publish(a.c, "tick", id, i % 2 ? "null" : NULL,
                                           TS_CLIENT_TO_SESSION, TS_CLIENT_PRIO_DEFAULT, NULL,
                                           NULL),
                         0);
    }
    RUN_UNTIL(&e, b.nev == 21, 5000);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "m-%d", i);
        assert_string_equal(b.ev[1 + i].id, id);
        assert_string_equal(b.ev[1 + i].prio, "event");
        assert_string_equal(b.ev[1 + i].body, "null");
    }
    /* B answers; A gets B's envelope and never its own */
    publish_ok(&b, "reply", "r-1", "true", TS_CLIENT_TO_SESSION, TS_CLIENT_PRIO_CONTROL, &x);
    assert_string_equal(x.id, "r-1");
    RUN_UNTIL(&e, a.nev == 1, 5000);
    RUN_FOR(&e, 100);
    assert_int_equal(a.nev, 1);
    assert_string_equal(a.ev[0].type, "reply");
    assert_string_equal(a.ev[0].ftab, "tab-b");
    assert_string_equal(a.ev[0].fdev, "phone");
    assert_int_equal(b.nev, 21);
    assert_int_equal(a.refused + b.refused, 0);
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

/* An ack's arguments, for events without a typed call (sync, state). */
typedef struct ack_rec {
    int done, status;
    char args[2048];
} ack_rec_t;

static void on_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud) {
    ack_rec_t *k = ud;
    assert_int_equal(k->done, 0); /* exactly once */
    k->done = 1;
    k->status = status;
    copy(k->args, sizeof k->args, reply ? reply->args_json : NULL);
}

static void ask(tab_t *t, const char *event, const char *args, ack_rec_t *k) {
    memset(k, 0, sizeof *k);
    assert_int_equal(ts_client_emit_ack(t->c, event, args, on_ack, k, 5000), 0);
    RUN_UNTIL(t->e, k->done, 5000);
    assert_int_equal(k->status, 0);
}

/* proto 3: the welcome says where the session's history is, a publish is
 * logged (seq in its answer and on the event), `sync` answers the entries,
 * and a `state` change reaches the other tab as `change` (through on_event:
 * it has no typed callback). */
static void test_proto3_history(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, b;
    open_proto = 3;
    tab_open(&a, &e, "hal", "h1", "laptop", "tab-h1");
    tab_open(&b, &e, "hal", "h1", "phone", "tab-h2");
    open_proto = 0;
    assert_int_equal(a.w_proto, 3);
    assert_non_null(strstr(a.w_json, "\"epoch\":\""));
    assert_non_null(strstr(a.w_json, "\"seq\":0"));
    res_t x;
    publish_ok(&a, "note", "n-1", "{\"k\":1}", TS_CLIENT_TO_SESSION, TS_CLIENT_PRIO_DEFAULT, &x);
    assert_non_null(strstr(x.json, "\"seq\":1"));
    RUN_UNTIL(&e, b.nev == 1, 5000);
    assert_string_equal(b.ev[0].id, "n-1");

    ack_rec_t k;
    ask(&b, "sync", "[{\"after\":0}]", &k);
    assert_non_null(strstr(k.args, "\"ok\":true"));
    assert_non_null(strstr(k.args, "\"entries\":[{\"kind\":\"event\""));
    assert_non_null(strstr(k.args, "\"id\":\"n-1\""));
    assert_non_null(strstr(k.args, "\"more\":false"));

    ask(&a, "state", "[{\"v\":3,\"id\":\"c-1\",\"merge\":{\"x\":1}}]", &k);
    assert_non_null(strstr(k.args, "\"ok\":true"));
    assert_non_null(strstr(k.args, "\"seq\":2"));
    RUN_UNTIL(&e, b.plain_events == 1, 5000);
    assert_string_equal(b.plain_name, "change");
    assert_non_null(strstr(b.plain_args, "\"effects\":[{\"op\":\"set\",\"path\":\"/x\""));
    assert_int_equal(a.refused + b.refused, 0);
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

static void test_scopes(void **state) {
    env_t e;
    env_init(&e);
    /* a: alice/s1/laptop. b: same session, other device. c: same device,
     * other session. d: same user, other session and device. x: another
     * user in a session of the same name, on a device of the same name. */
    tab_t a, b, c, d, x;
    tab_open(&a, &e, "alice", "s1", "laptop", "tab-a");
    tab_open(&b, &e, "alice", "s1", "phone", "tab-b");
    tab_open(&c, &e, "alice", "s2", "laptop", "tab-c");
    tab_open(&d, &e, "alice", "s3", "tablet", "tab-d");
    tab_open(&x, &e, "bob", "s1", "laptop", "tab-x");
    res_t r;
    publish_ok(&a, "to.session", NULL, "1", TS_CLIENT_TO_SESSION, TS_CLIENT_PRIO_DEFAULT, &r);
    publish_ok(&a, "to.user", NULL, "2", TS_CLIENT_TO_USER, TS_CLIENT_PRIO_DEFAULT, &r);
    publish_ok(&a, "to.device", NULL, "3", TS_CLIENT_TO_DEVICE, TS_CLIENT_PRIO_DEFAULT, &r);
    /* wait for what must arrive, then long enough for what must not */
    RUN_UNTIL(&e, b.nev == 2 && c.nev == 2 && d.nev == 1, 5000);
    RUN_FOR(&e, 300);
    assert_int_equal(a.nev, 0);
    assert_int_equal(b.nev, 2);
    assert_string_equal(b.ev[0].type, "to.session");
    assert_string_equal(b.ev[1].type, "to.user");
    assert_string_equal(b.ev[1].to, "user");
    assert_int_equal(c.nev, 2);
    assert_string_equal(c.ev[0].type, "to.user");
    assert_string_equal(c.ev[1].type, "to.device");
    assert_string_equal(c.ev[1].to, "device");
    assert_string_equal(c.ev[1].fdev, "laptop");
    assert_int_equal(d.nev, 1);
    assert_string_equal(d.ev[0].type, "to.user");
    assert_int_equal(x.nev, 0);
    tab_t *all[] = {&a, &b, &c, &d, &x};
    for (size_t i = 0; i < 5; i++) tab_close(all[i]);
    env_done(&e);
}

static void test_refused_connections(void **state) {
    env_t e;
    env_init(&e);
    char *tok = mint("carol", "s1", "dev-c", "the-right-fp", 600);
    static const struct {
        const char *name, *device, *fingerprint, *token, *type, *code;
    } cases[] = {
        {"wrong fingerprint", "dev-c", "another-fp", NULL, "cli", "fingerprint_mismatch"},
        {"wrong device", "dev-z", "the-right-fp", NULL, "cli", "device_mismatch"},
        {"garbage token", "dev-c", "the-right-fp", "not-a-jwt", "cli", "token_malformed"},
        {"unknown device type", "dev-c", "the-right-fp", NULL, "toaster",
         "auth_unknown_device_type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tab_t t;
        memset(&t, 0, sizeof t);
        t.e = &e;
        ts_client_session_opts_t so;
        ts_client_session_opts_init(&so);
        so.client.url = srv.url;
        so.client.cb.on_connect = t_connect;
        so.client.cb.on_connect_error = t_connect_error;
        so.client.user = &t;
        so.token = cases[i].token ? cases[i].token : tok;
        so.device_id = cases[i].device;
        so.fingerprint = cases[i].fingerprint;
        so.device_type = cases[i].type;
        so.scb.on_welcome = t_welcome;
        char err[200];
        assert_int_equal(ts_client_session_new(&e.loop, &so, &t.c, err, sizeof err), 0);
        assert_int_equal(ts_client_connect(t.c), 0);
        RUN_UNTIL(&e, t.connect_errors == 1, 5000);
        char want[80];
        snprintf(want, sizeof want, "\"code\":\"%s\"", cases[i].code);
        if (!strstr(t.ce_data, want))
            fail_msg("%s: data %s, want %s", cases[i].name, t.ce_data, want);
        assert_true(strlen(t.ce_msg) > 5);
        assert_int_equal(ts_client_state(t.c), TS_CLIENT_DISCONNECTED);
        RUN_FOR(&e, 50);
        assert_int_equal(t.connects + t.welcomes, 0);
        tab_close(&t);
    }
    /* the right fingerprint is accepted */
    tab_t ok;
    tab_open_ex(&ok, &e, NULL, NULL, "dev-c", "the-right-fp", tok, "tab-ok", 1, 0);
    RUN_UNTIL(&e, ok.welcomes == 1 || ok.connect_errors, 5000);
    assert_int_equal(ok.connect_errors, 0);
    assert_string_equal(ok.w_user, "carol");
    tab_close(&ok);
    free(tok);
    env_done(&e);
}

static void test_refused_requests(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, b;
    tab_open(&a, &e, "dave", "s1", "d1", "tab-a");
    tab_open(&b, &e, "dave", "s1", "d2", "tab-b");
    static const struct {
        const char *name, *type, *id;
    } bad[] = {
        {"space in type", "has space", "id-1"},
        {"type too long", "t123456789012345678901234567890123456789012345678901234567890123456",
         "id-2"},
        {"bad character in id", "ok.type", "id!"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        res_t x = {0};
        assert_int_equal(ts_client_publish(a.c, bad[i].type, bad[i].id, "{}", TS_CLIENT_TO_SESSION,
                                           TS_CLIENT_PRIO_DEFAULT, on_result, &x),
                         0);
        RUN_UNTIL(&e, x.done, 5000);
        assert_int_equal(x.status, 0);
        assert_int_equal(x.ok, 0);
        if (strcmp(x.code, "bad_envelope") != 0) fail_msg("%s: code %s", bad[i].name, x.code);
        assert_non_null(strstr(x.msg, "envelope"));
        assert_non_null(strstr(x.json, "\"ok\":false"));
    }
    /* without an ack, the refusal comes as the `error` event */
    assert_int_equal(ts_client_publish(a.c, "bad type", NULL, NULL, TS_CLIENT_TO_SESSION,
                                       TS_CLIENT_PRIO_DEFAULT, NULL, NULL),
                     0);
    RUN_UNTIL(&e, a.refused == 1, 5000);
    assert_string_equal(a.ref_code, "bad_envelope");
    assert_non_null(strstr(a.ref_msg, "type"));
    /* refused locally: nothing sent, no callback */
    res_t y = {0};
    assert_int_equal(ts_client_publish(a.c, "t", NULL, "{", TS_CLIENT_TO_SESSION,
                                       TS_CLIENT_PRIO_DEFAULT, on_result, &y),
                     TS_EINVAL);
    assert_int_equal(ts_client_publish(a.c, "", NULL, NULL, TS_CLIENT_TO_SESSION,
                                       TS_CLIENT_PRIO_DEFAULT, on_result, &y),
                     TS_EINVAL);
    assert_int_equal(ts_client_publish(a.c, "t", NULL, NULL, (ts_client_scope_t)7,
                                       TS_CLIENT_PRIO_DEFAULT, on_result, &y),
                     TS_EINVAL);
    assert_int_equal(ts_client_publish(a.c, "t", NULL, NULL, TS_CLIENT_TO_SESSION,
                                       (ts_client_prio_t)9, on_result, &y),
                     TS_EINVAL);
    assert_int_equal(ts_client_set_metadata(a.c, "[1]", on_result, &y), TS_EINVAL);
    assert_int_equal(ts_client_set_metadata(a.c, "{", on_result, &y), TS_EINVAL);
    /* metadata: accepted, then refused */
    res_t m = {0};
    assert_int_equal(ts_client_set_metadata(a.c,
                                            "{\"network\":{\"effectiveType\":\"4g\",\"rtt\":50},"
                                            "\"battery\":{\"level\":0.5,\"charging\":true},"
                                            "\"visibility\":\"visible\",\"type\":\"desktop\"}",
                                            on_result, &m),
                     0);
    RUN_UNTIL(&e, m.done, 5000);
    assert_int_equal(m.status, 0);
    assert_int_equal(m.ok, 1);
    memset(&m, 0, sizeof m);
    assert_int_equal(ts_client_set_metadata(a.c, "{\"visibility\":\"sideways\"}", on_result, &m),
                     0);
    RUN_UNTIL(&e, m.done, 5000);
    assert_int_equal(m.ok, 0);
    assert_string_equal(m.code, "bad_metadata");
    assert_non_null(strstr(m.msg, "visibility"));
    /* nothing of this reached b; y never completed */
    RUN_FOR(&e, 100);
    assert_int_equal(b.nev, 0);
    assert_int_equal(y.done, 0);
    assert_int_equal(a.plain_events, 0);
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

static void test_token_swap(void **state) {
    env_t e;
    env_init(&e);
    /* a token that expires in 3 s: token_expiring comes at the first sweep
     * (60 s warning); after a swap the connection outlives the old token,
     * and a reconnection must use the new one (leeway 0 refuses the old).
     * Every token is minted first: the swap must beat the old expiry even
     * on a loaded machine. */
    char *other = mint("erin", "s1", "dev-other", "fp-e", 600);
    char *fresh = mint("erin", "s1", "dev-e", "fp-e", 900);
    char *old = mint("erin", "s1", "dev-e", "fp-e", 3);
    tab_t a;
    tab_open_ex(&a, &e, NULL, NULL, "dev-e", "fp-e", old, "tab-e", 1, 1);
    RUN_UNTIL(&e, a.welcomes == 1 && a.nsec == 1, 5000);
    assert_string_equal(a.sec_code[0], "token_expiring");
    assert_int_equal(a.sec_exp[0], a.w_exp);
    /* a token for another device is refused and changes nothing (its
     * fingerprint would match: the claims differ) */
    res_t x = {0};
    assert_int_equal(ts_client_swap_token(a.c, other, on_result, &x), 0);
    RUN_UNTIL(&e, x.done, 5000);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.ok, 0);
    assert_string_equal(x.code, "token_invalid_claim");
    assert_non_null(strstr(x.msg, "another user, session or device"));
    /* the good one */
    memset(&x, 0, sizeof x);
    assert_int_equal(ts_client_swap_token(a.c, fresh, on_result, &x), 0);
    RUN_UNTIL(&e, x.done, 5000);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.ok, 1);
    assert_true(x.exp > a.w_exp + 800);
    /* the old token's expiry passes (plus a sweep): no token_expired, still
     * connected */
    int64_t old_exp = a.w_exp;
    RUN_UNTIL(&e, (int64_t)time(NULL) >= old_exp + 2, 10000);
    assert_int_equal(a.nsec, 1);
    assert_int_equal(a.disconnects, 0);
    assert_int_equal(ts_client_state(a.c), TS_CLIENT_CONNECTED);
    /* a lost connection comes back with the fresh token */
    assert_int_equal(ts_client_debug_drop(a.c), 0);
    RUN_UNTIL(&e, a.welcomes == 2 || a.connect_errors, 5000);
    if (a.connect_errors) fail_msg("reconnection refused: %s %s", a.ce_msg, a.ce_data);
    assert_int_equal(a.connects, 2);
    assert_int_equal(a.w_exp, x.exp);
    tab_close(&a);
    free(old);
    free(other);
    free(fresh);
    env_done(&e);
}

static void test_token_expiry(void **state) {
    env_t e;
    env_init(&e);
    char *tok = mint("fred", "s1", "dev-f", "fp-f", 2);
    tab_t a;
    tab_open_ex(&a, &e, NULL, NULL, "dev-f", "fp-f", tok, "tab-f", 1, 1);
    RUN_UNTIL(&e, a.disconnects == 1, 10000);
    assert_int_equal(a.nsec, 2);
    assert_string_equal(a.sec_code[0], "token_expiring");
    assert_string_equal(a.sec_code[1], "token_expired");
    assert_int_equal(a.sec_exp[1], a.w_exp);
    assert_string_equal(a.reason, "io server disconnect");
    assert_int_equal(a.will_reconnect, 0);
    assert_int_equal(ts_client_state(a.c), TS_CLIENT_DISCONNECTED);
    /* connecting again with the expired token is refused ... */
    assert_int_equal(ts_client_connect(a.c), 0);
    RUN_UNTIL(&e, a.connect_errors == 1, 5000);
    assert_non_null(strstr(a.ce_data, "\"code\":\"token_expired\""));
    /* ... and with a new one (set while disconnected) accepted */
    char *fresh = mint("fred", "s1", "dev-f", "fp-f", 600);
    assert_int_equal(ts_client_set_token(a.c, fresh), 0);
    assert_int_equal(ts_client_connect(a.c), 0);
    RUN_UNTIL(&e, a.welcomes == 2, 5000);
    assert_true(a.w_exp > a.sec_exp[1] + 500);
    tab_close(&a);
    free(tok);
    free(fresh);
    env_done(&e);
}

static void test_untyped_callbacks(void **state) {
    /* no typed callbacks: welcome and event reach on_event as plain events */
    env_t e;
    env_init(&e);
    tab_t a, b;
    tab_open_ex(&a, &e, "gina", "s1", "g1", "fp:g1:secret", NULL, "tab-a", 0, 0);
    RUN_UNTIL(&e, a.plain_events == 1, 5000);
    assert_string_equal(a.plain_name, "welcome");
    assert_non_null(strstr(a.plain_args, "\"tab\":\"tab-a\""));
    assert_int_equal(a.welcomes, 0);
    tab_open(&b, &e, "gina", "s1", "g2", "tab-b");
    res_t x;
    publish_ok(&b, "hello", "h-1", "[1]", TS_CLIENT_TO_SESSION, TS_CLIENT_PRIO_DEFAULT, &x);
    RUN_UNTIL(&e, a.plain_events == 2, 5000);
    assert_string_equal(a.plain_name, "event");
    assert_non_null(strstr(a.plain_args, "\"type\":\"hello\""));
    assert_non_null(strstr(a.plain_args, "\"from\":{\"user\":\"gina\",\"device\":\"g2\""));
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH_TO_TABSYNCD\n", argv[0]);
        return 2;
    }
    tabsyncd_path = argv[1];
    atexit(kill_leftover);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_json),
        cmocka_unit_test(test_welcome_and_publish),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_refused_connections),
        cmocka_unit_test(test_refused_requests),
        cmocka_unit_test(test_token_swap),
        cmocka_unit_test(test_token_expiry),
        cmocka_unit_test(test_untyped_callbacks),
        cmocka_unit_test(test_proto3_history),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
