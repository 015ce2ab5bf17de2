/* itest_elect.c - libtabsync's leader election API (/session protocol 4)
 * against the real server: starts `tabsyncd --jwt-secret S --elect-lease
 * 600 --listen 127.0.0.1:0` (binary path in argv[1]), mints tokens with
 * `tabsyncd token`, and checks through the public API only: the auth
 * object's elect member, one leader and one backup, heartbeats keeping a
 * leader over several leases, resignation (the backup leads with term + 1),
 * the local deadline of a leader whose heartbeats are held (not leader by
 * its own clock before the server says anything), fenced state changes
 * (current term applied, old term refused with stale_term), tasks, and
 * joining and leaving later with ts_client_elect. */
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
#include <jansson.h>

#include "tabsync.h"

#define LEASE_MS 600

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

/* A token from `tabsyncd token` for fingerprint "fp:<device>". Returns new. */
static char *mint(const char *user, const char *session, const char *device) {
    char fp[96];
    snprintf(fp, sizeof fp, "fp:%s", device);
    const char *argv[] = {tabsyncd_path, "token",  "--jwt-secret", secret,        "--user",
                          user,          "--session", session,     "--device",    device,
                          "--fingerprint", fp,     "--ttl",        "600",         NULL};
    char *t = strdup(run_line(argv));
    assert_non_null(t);
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
    const char *argv[] = {tabsyncd_path, "--jwt-secret", secret, "--listen", "127.0.0.1:0",
                          "--elect-lease", "600", "--limit-handshakes-per-ip", "0",
                          "--limit-conns-per-ip", "0", "--limit-conns-per-user", "0",
                          "--limit-events-per-socket", "0", "--limit-strikes", "0", NULL};
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
    uv_timer_start(&e->tick, on_tick, 5, 5);
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

/* ---- a recording tab ---- */

#define S TS_CLIENT_ELECT_SESSION

typedef struct lead_rec {
    int64_t term;
    int leading;
    char reason[24];
    uint64_t at; /* uv_hrtime */
} lead_rec_t;

typedef struct tab {
    env_t *e;
    ts_client_t *c;
    char *token;
    char device[32], tab[32];
    int welcomes, connect_errors, closed;
    char ce[256];
    /* the last view of the session scope */
    int views;
    int64_t v_term;
    ts_client_role_t v_role;
    char v_reason[24], v_leader[64], v_backup[64], v_roles[256], v_tasks[256];
    size_t v_nmembers;
    unsigned v_lease, v_hb;
    int v_grant;
    /* on_leadership reports */
    lead_rec_t lead[16];
    int nlead;
} tab_t;

static void copy(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s ? s : "(null)"); }

static void t_welcome(ts_client_t *c, const ts_client_welcome_t *w, void *u) {
    ((tab_t *)u)->welcomes++;
}
static void t_connect_error(ts_client_t *c, const char *msg, const char *data, void *u) {
    tab_t *t = u;
    t->connect_errors++;
    snprintf(t->ce, sizeof t->ce, "%s %s", msg, data ? data : "");
}

static const char *role_name(ts_client_role_t r) {
    static const char *const n[] = {"none", "leader", "backup", "follower", "observer"};
    return (unsigned)r < 5 ? n[r] : "?";
}

static void t_elect(ts_client_t *c, const ts_client_elect_view_t *v, void *u) {
    tab_t *t = u;
    if (v->scope != S) return;
    t->views++;
    t->v_term = v->term;
    t->v_role = v->role;
    t->v_lease = v->lease_ms;
    t->v_hb = v->hb_ms;
    t->v_grant = v->grant != NULL;
    copy(t->v_reason, sizeof t->v_reason, v->reason);
    if (v->leader)
        snprintf(t->v_leader, sizeof t->v_leader, "%s/%s", v->leader->device, v->leader->tab);
    else
        copy(t->v_leader, sizeof t->v_leader, "-");
    if (v->backup)
        snprintf(t->v_backup, sizeof t->v_backup, "%s/%s", v->backup->device, v->backup->tab);
    else
        copy(t->v_backup, sizeof t->v_backup, "-");
    size_t n = 0;
    t->v_roles[0] = '\0';
    for (size_t i = 0; i < v->nmembers; i++)
        n += (size_t)snprintf(t->v_roles + n, sizeof t->v_roles - n, "%s%s=%s", i ? " " : "",
                              v->members[i].tab, role_name(v->members[i].role));
    n = 0;
    t->v_tasks[0] = '\0';
    for (size_t i = 0; i < v->ntasks; i++)
        n += (size_t)snprintf(t->v_tasks + n, sizeof t->v_tasks - n, "%s%s:%s:%s:%d", i ? " " : "",
                              v->tasks[i].name,
                              v->tasks[i].assignee_tab ? v->tasks[i].assignee_tab : "-",
                              v->tasks[i].state, v->tasks[i].pct);
    t->v_nmembers = v->nmembers;
    assert_non_null(strstr(v->json, "\"scope\":\"session\""));
}

static void t_leadership(ts_client_t *c, int scope, int64_t term, int leading, const char *reason,
                         void *u) {
    tab_t *t = u;
    if (scope != S) return;
    assert_true(t->nlead < 16);
    lead_rec_t *r = &t->lead[t->nlead++];
    r->term = term;
    r->leading = leading;
    copy(r->reason, sizeof r->reason, reason);
    r->at = uv_hrtime();
    /* what is reported is what ts_client_is_leader answers */
    int64_t now_term;
    assert_int_equal(ts_client_is_leader(c, S, &now_term), leading);
    if (leading) assert_int_equal(now_term, term);
}

static void t_closed(ts_client_t *c, void *u) { ((tab_t *)u)->closed = 1; }

/* Opens a tab of (user, session) on device `device`, joining `scopes` at
 * connect (proto 4 either way), and waits for its welcome. */
static void tab_open(tab_t *t, env_t *e, const char *user, const char *session,
                     const char *device, const char *tab_id, unsigned scopes, int observer) {
    memset(t, 0, sizeof *t);
    t->e = e;
    copy(t->device, sizeof t->device, device);
    copy(t->tab, sizeof t->tab, tab_id);
    t->token = mint(user, session, device);
    char fp[96];
    snprintf(fp, sizeof fp, "fp:%s", device);
    ts_client_session_opts_t so;
    ts_client_session_opts_init(&so);
    so.client.url = srv.url;
    so.client.reconnection = 0;
    so.client.cb.on_connect_error = t_connect_error;
    so.client.user = t;
    so.token = t->token;
    so.device_id = device;
    so.fingerprint = fp;
    so.device_type = "desktop";
    so.tab_id = tab_id;
    so.proto = 4;
    so.elect_scopes = scopes;
    so.elect_observer = observer;
    so.scb.on_welcome = t_welcome;
    so.scb.on_elect = t_elect;
    so.scb.on_leadership = t_leadership;
    char err[256];
    int rc = ts_client_session_new(&e->loop, &so, &t->c, err, sizeof err);
    if (rc < 0) fail_msg("ts_client_session_new: %s", err);
    assert_int_equal(ts_client_connect(t->c), 0);
    RUN_UNTIL(e, t->welcomes == 1 || t->connect_errors, 5000);
    if (t->connect_errors) fail_msg("%s refused: %s", tab_id, t->ce);
}

static void tab_close(tab_t *t) {
    ts_client_close(t->c, t_closed);
    RUN_UNTIL(t->e, t->closed, 3000);
    free(t->token);
}

static int leads(tab_t *t) { return ts_client_is_leader(t->c, S, NULL); }

/* The holder id "<device>/<tab>" of t. */
static const char *holder(tab_t *t) {
    static char h[2][64];
    static int k;
    k ^= 1;
    snprintf(h[k], sizeof h[k], "%s/%s", t->device, t->tab);
    return h[k];
}

/* ---- answers ---- */

typedef struct res {
    int done, status, ok;
    char code[40], json[512];
} res_t;

static void on_result(ts_client_t *c, int status, const ts_client_result_t *r, void *ud) {
    res_t *x = ud;
    assert_int_equal(x->done, 0); /* exactly once */
    x->done = 1;
    x->status = status;
    if (!r) return;
    x->ok = r->ok;
    copy(x->code, sizeof x->code, r->code);
    copy(x->json, sizeof x->json, r->json);
}

typedef struct ack_rec {
    int done, status;
    char args[2048];
} ack_rec_t;

static void on_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud) {
    ack_rec_t *k = ud;
    assert_int_equal(k->done, 0);
    k->done = 1;
    k->status = status;
    copy(k->args, sizeof k->args, reply ? reply->args_json : NULL);
}

/* Two tabs a, b of (user, session) joined at connect; waits until both
 * agree on a leader. Returns the leader's term; *ld / *bk the two. */
static int64_t open_pair(env_t *e, tab_t *a, tab_t *b, const char *user, tab_t **ld,
                         tab_t **bk) {
    tab_open(a, e, user, "s1", "laptop", "tab-a", S, 0);
    tab_open(b, e, user, "s1", "phone", "tab-b", S, 0);
    RUN_UNTIL(e, (leads(a) || leads(b)) && a->v_term > 0 && a->v_term == b->v_term &&
                     a->v_nmembers == 2 && b->v_nmembers == 2 &&
                     strcmp(a->v_backup, "-") != 0 && strcmp(b->v_backup, "-") != 0,
              5000);
    *ld = leads(a) ? a : b;
    *bk = leads(a) ? b : a;
    return a->v_term;
}

/* ---- tests ---- */

/* The auth object asks for elections with proto 4; options that cannot
 * work are refused before anything is sent. */
static void test_auth_elect(void **state) {
    ts_client_session_opts_t so;
    ts_client_session_opts_init(&so);
    so.token = "t.o.k";
    so.device_id = "d";
    so.fingerprint = "f";
    so.tab_id = "x";
    so.elect_scopes = TS_CLIENT_ELECT_SESSION | TS_CLIENT_ELECT_DEVICE;
    so.elect_scores = 1;
    char *text = NULL, err[200];
    assert_int_equal(ts_client_session_auth_json(&so, &text, err, sizeof err), 0);
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    assert_int_equal(json_integer_value(json_object_get(o, "proto")), 4);
    char *el = json_dumps(json_object_get(o, "elect"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        el, "{\"observer\":false,\"scopes\":[\"session\",\"device\"],\"scores\":true}");
    free(el);
    json_decref(o);
    ts_client_free(text);
    so.proto = 3;
    assert_int_equal(ts_client_session_auth_json(&so, &text, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "need proto 4"));
    so.proto = 0;
    so.elect_scopes = 4;
    assert_int_equal(ts_client_session_auth_json(&so, &text, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "elect_scopes"));
    /* without elect_*: no elect member, proto 2 as before */
    so.elect_scopes = 0;
    so.elect_scores = 0;
    assert_int_equal(ts_client_session_auth_json(&so, &text, err, sizeof err), 0);
    assert_null(strstr(text, "elect"));
    assert_non_null(strstr(text, "\"proto\":2"));
    ts_client_free(text);

    /* the pure fencing helper */
    char *out;
    assert_int_equal(ts_client_lead_attach("{\"v\":3,\"id\":\"c\",\"merge\":{}}", S, 7, &out), 0);
    assert_string_equal(
        out, "{\"v\":3,\"id\":\"c\",\"merge\":{},\"lead\":{\"scope\":\"session\",\"term\":7}}");
    ts_client_free(out);
    assert_int_equal(ts_client_lead_attach("[{\"id\":\"a\"},{\"id\":\"b\"}]",
                                           TS_CLIENT_ELECT_DEVICE, 2, &out),
                     0);
    assert_string_equal(out, "[{\"id\":\"a\",\"lead\":{\"scope\":\"device\",\"term\":2}},"
                             "{\"id\":\"b\",\"lead\":{\"scope\":\"device\",\"term\":2}}]");
    ts_client_free(out);
    assert_int_equal(ts_client_lead_attach("[1]", S, 2, &out), TS_EINVAL);
    assert_int_equal(ts_client_lead_attach("{}", S, 0, &out), TS_EINVAL);
    assert_int_equal(ts_client_lead_attach("{}", 3, 1, &out), TS_EINVAL);
    assert_null(out);
}

/* Two tabs join: exactly one leads, the other is its backup, and both
 * views say so; the leader's own heartbeats keep it leader over five
 * leases without a single gap, in the same term. */
static void test_one_leader_and_heartbeats(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, b, *ld, *bk;
    int64_t term = open_pair(&e, &a, &b, "ann", &ld, &bk);
    assert_true(term >= 1);
    assert_int_equal(leads(ld) + leads(bk), 1);
    assert_int_equal(ld->v_role, TS_CLIENT_ROLE_LEADER);
    assert_int_equal(bk->v_role, TS_CLIENT_ROLE_BACKUP);
    assert_int_equal(ts_client_elect_role(bk->c, S), TS_CLIENT_ROLE_BACKUP);
    assert_string_equal(ld->v_leader, holder(ld));
    assert_string_equal(bk->v_leader, holder(ld));
    assert_string_equal(ld->v_backup, holder(bk));
    assert_int_equal(ld->v_lease, LEASE_MS);
    assert_int_equal(ld->v_hb, LEASE_MS / 3);
    char roles[128];
    snprintf(roles, sizeof roles, "tab-a=%s tab-b=%s", ld == &a ? "leader" : "backup",
             ld == &a ? "backup" : "leader");
    assert_string_equal(bk->v_roles, roles);
    assert_int_equal(ld->nlead, 1);
    assert_int_equal(ld->lead[0].leading, 1);
    assert_string_equal(ld->lead[0].reason, "elected");
    assert_int_equal(ld->lead[0].term, term);
    assert_int_equal(bk->nlead, 0);
    /* a new deadline is less than a lease away */
    int64_t left = ts_client_lead_ms_left(ld->c, S);
    assert_true(left > 0 && left < LEASE_MS);
    assert_int_equal(ts_client_lead_ms_left(bk->c, S), 0);

    /* five leases: checked every loop turn, never a gap */
    uint64_t end = uv_now(&e.loop) + 5 * LEASE_MS;
    int64_t min_left = LEASE_MS;
    while (uv_now(&e.loop) < end) {
        uv_run(&e.loop, UV_RUN_ONCE);
        int64_t t;
        if (!ts_client_is_leader(ld->c, S, &t)) fail_msg("the leader lost its lease at a check");
        assert_int_equal(t, term);
        assert_false(leads(bk));
        left = ts_client_lead_ms_left(ld->c, S);
        if (left < min_left) min_left = left;
    }
    /* renewed every hb_ms: never closer to the deadline than a lease minus
     * two beats and the margins */
    assert_true(min_left > LEASE_MS / 3 - 60);
    assert_int_equal(ld->nlead, 1);
    assert_int_equal(bk->nlead, 0);
    assert_int_equal(ld->v_term, term);
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

/* The leader resigns: it is not leader from the call on, and the backup
 * leads with term + 1 (reason handoff). */
static void test_resign(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, b, *ld, *bk;
    int64_t term = open_pair(&e, &a, &b, "bob", &ld, &bk);
    res_t x = {0};
    assert_int_equal(ts_client_resign(bk->c, S, on_result, &x), TS_ESTATE);
    assert_int_equal(ts_client_resign(ld->c, S, on_result, &x), 0);
    assert_false(leads(ld)); /* at once, before any answer */
    RUN_UNTIL(&e, x.done, 5000);
    assert_int_equal(x.status, 0);
    if (!x.ok) fail_msg("resign refused: %s", x.json);
    RUN_UNTIL(&e, leads(bk) && ld->v_term == term + 1, 5000);
    int64_t t;
    assert_true(ts_client_is_leader(bk->c, S, &t));
    assert_int_equal(t, term + 1);
    assert_string_equal(bk->v_reason, "handoff");
    assert_string_equal(ld->v_leader, holder(bk));
    assert_false(leads(ld));
    assert_true(ts_client_is_leader(ld->c, S, &t) == 0 && t == 0);
    assert_int_not_equal(ld->v_role, TS_CLIENT_ROLE_LEADER);
    /* reports: the resigned one lost its term, the other won the next */
    assert_int_equal(ld->nlead, 2);
    assert_int_equal(ld->lead[1].leading, 0);
    assert_int_equal(ld->lead[1].term, term);
    assert_string_equal(ld->lead[1].reason, "resigned");
    assert_int_equal(bk->nlead, 1);
    assert_int_equal(bk->lead[0].leading, 1);
    assert_int_equal(bk->lead[0].term, term + 1);
    /* the new leader keeps it by its heartbeats */
    uint64_t end = uv_now(&e.loop) + 3 * LEASE_MS;
    while (uv_now(&e.loop) < end) {
        uv_run(&e.loop, UV_RUN_ONCE);
        if (!leads(bk)) fail_msg("the new leader lost its lease");
    }
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

/* A leader whose heartbeats are held stops being leader by its own
 * deadline, before the server has told it anything and no later than the
 * other tab is elected; the other then leads with term + 1 (lapse). */
static void test_deadline(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, b, *ld, *bk;
    int64_t term = open_pair(&e, &a, &b, "cat", &ld, &bk);
    /* a fresh heartbeat answered: the deadline is a lease from now */
    RUN_UNTIL(&e, ts_client_lead_ms_left(ld->c, S) > LEASE_MS - 150, 2000);
    assert_int_equal(ts_client_debug_hold_heartbeats(ld->c, 1), 0);
    int views = ld->views;
    uint64_t held = uv_hrtime();
    while (leads(ld)) {
        uv_run(&e.loop, UV_RUN_NOWAIT);
        if (uv_hrtime() - held > 2000000000ull) fail_msg("still leader 2 s after holding");
    }
    uint64_t lost = uv_hrtime();
    /* by its own clock: no view came since the heartbeats stopped */
    assert_int_equal(ld->views, views);
    assert_int_equal(ld->v_role, TS_CLIENT_ROLE_LEADER); /* the server has not said otherwise */
    assert_true((lost - held) / 1000000 < LEASE_MS);
    assert_false(leads(bk));
    /* the report follows from the loop, with the reason */
    RUN_UNTIL(&e, ld->nlead == 2, 1000);
    assert_int_equal(ld->lead[1].leading, 0);
    assert_int_equal(ld->lead[1].term, term);
    assert_string_equal(ld->lead[1].reason, "deadline");
    /* the server lapses the lease and the backup takes the next term */
    RUN_UNTIL(&e, leads(bk), 5000);
    int64_t t;
    assert_true(ts_client_is_leader(bk->c, S, &t));
    assert_int_equal(t, term + 1);
    assert_string_equal(bk->v_reason, "lapse");
    assert_true(ld->lead[1].at <= bk->lead[0].at);
    RUN_UNTIL(&e, ld->v_term == term + 1, 2000);
    assert_false(leads(ld));
    assert_int_not_equal(ld->v_role, TS_CLIENT_ROLE_LEADER);
    assert_int_equal(ts_client_debug_hold_heartbeats(ld->c, 0), 0);
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

/* A state change fenced with the current term is applied; one with an
 * old term is refused with stale_term, and nothing is applied. */
static void test_fenced_state(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, b, *ld, *bk;
    int64_t term = open_pair(&e, &a, &b, "dan", &ld, &bk);
    ack_rec_t k = {0};
    assert_int_equal(ts_client_state_lead(bk->c, S, "{\"v\":3,\"id\":\"c-0\",\"merge\":{}}", on_ack,
                                          &k, 5000),
                     TS_ESTATE);
    assert_int_equal(ts_client_state_lead(ld->c, S,
                                          "{\"v\":3,\"id\":\"c-1\",\"merge\":{\"polled\":1}}",
                                          on_ack, &k, 5000),
                     0);
    RUN_UNTIL(&e, k.done, 5000);
    assert_int_equal(k.status, 0);
    if (!strstr(k.args, "\"ok\":true")) fail_msg("fenced change refused: %s", k.args);
    assert_non_null(strstr(k.args, "\"seq\":"));

    /* hand over: the old term is gone */
    res_t x = {0};
    assert_int_equal(ts_client_resign(ld->c, S, on_result, &x), 0);
    RUN_UNTIL(&e, x.done && leads(bk), 5000);
    char *old;
    assert_int_equal(ts_client_lead_attach("{\"v\":3,\"id\":\"c-2\",\"merge\":{\"polled\":2}}", S,
                                           term, &old),
                     0);
    char args[512];
    snprintf(args, sizeof args, "[%s]", old);
    ts_client_free(old);
    memset(&k, 0, sizeof k);
    assert_int_equal(ts_client_emit_ack(ld->c, "state", args, on_ack, &k, 5000), 0);
    RUN_UNTIL(&e, k.done, 5000);
    assert_int_equal(k.status, 0);
    if (!strstr(k.args, "\"code\":\"stale_term\"")) fail_msg("old term not refused: %s", k.args);
    assert_non_null(strstr(k.args, "\"ok\":false"));
    /* the same old term from the new leader's tab is refused too */
    memset(&k, 0, sizeof k);
    assert_int_equal(ts_client_emit_ack(bk->c, "state", args, on_ack, &k, 5000), 0);
    RUN_UNTIL(&e, k.done, 5000);
    assert_non_null(strstr(k.args, "\"code\":\"stale_term\""));
    /* and the new term is applied */
    memset(&k, 0, sizeof k);
    assert_int_equal(ts_client_state_lead(bk->c, S,
                                          "{\"v\":3,\"id\":\"c-3\",\"merge\":{\"polled\":3}}",
                                          on_ack, &k, 5000),
                     0);
    RUN_UNTIL(&e, k.done, 5000);
    if (!strstr(k.args, "\"ok\":true")) fail_msg("new term refused: %s", k.args);
    assert_true(leads(bk)); /* an accepted change does not end leadership */
    /* the state has 1 then 3, never 2 */
    memset(&k, 0, sizeof k);
    assert_int_equal(ts_client_emit_ack(bk->c, "sync", "[{\"after\":0}]", on_ack, &k, 5000), 0);
    RUN_UNTIL(&e, k.done, 5000);
    assert_non_null(strstr(k.args, "\"id\":\"c-1\""));
    assert_non_null(strstr(k.args, "\"id\":\"c-3\""));
    assert_null(strstr(k.args, "\"id\":\"c-2\""));
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

/* The leader declares a task; the server gives it to the other tab, whose
 * progress and completion show in every view. */
static void test_tasks(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, b, *ld, *bk;
    open_pair(&e, &a, &b, "eve", &ld, &bk);
    res_t x = {0};
    assert_int_equal(ts_client_task_declare(bk->c, S, "poll", 1, NULL, NULL, 0, on_result, &x),
                     TS_ESTATE);
    assert_int_equal(ts_client_task_declare(ld->c, S, "poll", 1, NULL, NULL, 5000, on_result, &x),
                     0);
    RUN_UNTIL(&e, x.done, 5000);
    if (!x.ok) fail_msg("declare refused: %s", x.json);
    char want[64];
    snprintf(want, sizeof want, "poll:%s:assigned:0", bk->tab);
    RUN_UNTIL(&e, strcmp(ld->v_tasks, want) == 0, 5000);
    memset(&x, 0, sizeof x);
    assert_int_equal(ts_client_task_report(ld->c, S, "poll", TS_CLIENT_TASK_PROGRESS, 10, NULL,
                                           on_result, &x),
                     0);
    RUN_UNTIL(&e, x.done, 5000);
    assert_false(x.ok);
    assert_string_equal(x.code, "not_assignee");
    memset(&x, 0, sizeof x);
    assert_int_equal(ts_client_task_report(bk->c, S, "poll", TS_CLIENT_TASK_PROGRESS, 50, NULL,
                                           on_result, &x),
                     0);
    RUN_UNTIL(&e, x.done, 5000);
    assert_true(x.ok);
    snprintf(want, sizeof want, "poll:%s:running:50", bk->tab);
    RUN_UNTIL(&e, strcmp(ld->v_tasks, want) == 0, 5000);
    memset(&x, 0, sizeof x);
    assert_int_equal(ts_client_task_report(bk->c, S, "poll", TS_CLIENT_TASK_DONE, -1,
                                           "{\"items\":4}", on_result, &x),
                     0);
    RUN_UNTIL(&e, x.done, 5000);
    assert_true(x.ok);
    snprintf(want, sizeof want, "poll:%s:done:100", bk->tab);
    RUN_UNTIL(&e, strcmp(ld->v_tasks, want) == 0 && strcmp(bk->v_tasks, want) == 0, 5000);
    assert_int_equal(ts_client_task_report(bk->c, S, "", TS_CLIENT_TASK_DONE, -1, NULL, NULL,
                                           NULL),
                     TS_EINVAL);
    assert_int_equal(ts_client_task_report(bk->c, S, "x", TS_CLIENT_TASK_PROGRESS, 101, NULL, NULL,
                                           NULL),
                     TS_EINVAL);
    tab_close(&a);
    tab_close(&b);
    env_done(&e);
}

/* Joining later with ts_client_elect, as an observer first (never leads,
 * sees the views), then as a candidate; leaving as leader ends leadership
 * at once and hands over. */
static void test_join_later(void **state) {
    env_t e;
    env_init(&e);
    tab_t a, c;
    tab_open(&a, &e, "fay", "s1", "laptop", "tab-a", 0, 0);
    assert_int_equal(ts_client_elect_role(a.c, S), TS_CLIENT_ROLE_NONE);
    res_t x = {0};
    assert_int_equal(ts_client_elect(a.c, S, 0, 1, -1, on_result, &x), 0);
    RUN_UNTIL(&e, x.done && a.views >= 1, 5000);
    if (!x.ok) fail_msg("elect refused: %s", x.json);
    assert_int_equal(a.v_role, TS_CLIENT_ROLE_OBSERVER);
    assert_string_equal(a.v_leader, "-");
    assert_false(leads(&a));
    /* a candidate joins at connect and leads; the observer sees it */
    tab_open(&c, &e, "fay", "s1", "phone", "tab-c", S, 0);
    RUN_UNTIL(&e, leads(&c) && strcmp(a.v_leader, holder(&c)) == 0, 5000);
    assert_int_equal(a.v_role, TS_CLIENT_ROLE_OBSERVER);
    assert_string_equal(a.v_backup, "-"); /* an observer is never backup */
    /* the observer becomes a candidate: backup */
    memset(&x, 0, sizeof x);
    assert_int_equal(ts_client_elect(a.c, 0, 0, 0, -1, on_result, &x), 0);
    RUN_UNTIL(&e, x.done && a.v_role == TS_CLIENT_ROLE_BACKUP, 5000);
    int64_t term = c.v_term;
    /* the leader leaves the scope: not leader at once, then a follower-less scope */
    memset(&x, 0, sizeof x);
    assert_int_equal(ts_client_elect(c.c, 0, S, -1, -1, on_result, &x), 0);
    assert_false(leads(&c));
    RUN_UNTIL(&e, x.done && leads(&a), 5000);
    int64_t t;
    assert_true(ts_client_is_leader(a.c, S, &t));
    assert_int_equal(t, term + 1);
    assert_int_equal(ts_client_elect_role(c.c, S), TS_CLIENT_ROLE_NONE);
    assert_string_equal(c.lead[c.nlead - 1].reason, "left");
    /* argument checks */
    assert_int_equal(ts_client_elect(a.c, S, S, -1, -1, NULL, NULL), TS_EINVAL);
    assert_int_equal(ts_client_elect(a.c, 8, 0, -1, -1, NULL, NULL), TS_EINVAL);
    assert_int_equal(ts_client_elect(a.c, 0, 0, 2, -1, NULL, NULL), TS_EINVAL);
    tab_close(&a);
    tab_close(&c);
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
        cmocka_unit_test(test_auth_elect),
        cmocka_unit_test(test_one_leader_and_heartbeats),
        cmocka_unit_test(test_resign),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_fenced_state),
        cmocka_unit_test(test_tasks),
        cmocka_unit_test(test_join_later),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
