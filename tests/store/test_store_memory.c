/* test_store_memory.c - the memory backend: the store contract twice (memory
 * only, and written through to a SQLite file in a temp dir), then what only
 * this backend promises: restart from the file, bounded memory, clear open
 * errors, and the measured cost of a durable append and CAS. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "store/store_contract.h"
#include "store/store_int.h"

/* ---- environments ---- */

static void env_mkdir(sc_env_t *env) {
    if (env->dir[0]) return;
    snprintf(env->dir, sizeof env->dir, "/tmp/ts_store_XXXXXX");
    assert_non_null(mkdtemp(env->dir));
}

static void env_unlink_db(const char *path) {
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < TS_ARRAY_LEN(sfx); i++) {
        char p[256];
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
}

static void env_fresh_file(sc_env_t *env) {
    env_mkdir(env);
    snprintf(env->path, sizeof env->path, "%s/store%d.db", env->dir, env->counter++);
    env_unlink_db(env->path);
    env->cfg.sqlite_path = env->path;
}

static void env_clean_file(sc_env_t *env) { env_unlink_db(env->path); }

static sc_env_t env_mem = {
    .label = "memory only",
    .ops = &ts_store_memory_ops,
};

static sc_env_t env_sql = {
    .label = "memory + SQLite",
    .ops = &ts_store_memory_ops,
    .fresh = env_fresh_file,
    .clean = env_clean_file,
};

/* ---- restart ---- */

/* Close and reopen the same file: sequence numbers continue, the log, the
 * trim mark, the state and the lease terms are all there; the registry and
 * lease holders (memory only) are not. */
static void m_restart(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    sc_open(&t, env, NULL);
    for (int i = 1; i <= 4; i++) {
        char ev[16];
        snprintf(ev, sizeof ev, "ev%d", i);
        assert_ts_err(sc_append(&t, "s1", ev, &seq), 0);
    }
    assert_ts_err(sc_trim(&t, "s1", 1), 0);
    assert_ts_err(sc_append(&t, "s2", "other", &seq), 0);
    assert_ts_err(sc_cas(&t, "s1", 0, "{\"v\":1}", &r), 0);
    assert_ts_err(sc_cas(&t, "s1", 1, "{\"v\":2}", &r), 0);
    assert_ts_err(sc_acquire(&t, "leader:s1", "A", 60000, &r), 0);
    assert_int_equal(r.term, 1);
    assert_ts_err(sc_release(&t, "leader:s1", "A", 1), 0);
    assert_ts_err(sc_acquire(&t, "leader:s1", "B", 60000, &r), 0);
    assert_int_equal(r.term, 2); /* B still holds it when the process stops */
    assert_ts_err(sc_put(&t, "s1", "u1", "d1", "t1", "", 60000), 0);
    sc_close(&t);

    for (int round = 0; round < 2; round++) {
        sc_open(&t, env, NULL);
        assert_ts_err(sc_read(&t, "s1", 0, 100, &r), 0);
        assert_int_equal(r.trimmed, 1);
        assert_int_equal(r.last_seq, 4 + (uint64_t)round);
        assert_int_equal(r.n, 3 + (size_t)round);
        assert_int_equal(r.seqs[0], 2);
        assert_string_equal(r.ev[0], "ev2");
        assert_string_equal(r.ev[2], "ev4");
        assert_ts_err(sc_append(&t, "s1", "after", &seq), 0);
        assert_int_equal(seq, 5 + (uint64_t)round); /* continues, never reused */
        assert_ts_err(sc_get(&t, "s1", &r), 0);
        assert_int_equal(r.version, 2 + (uint64_t)round);
        assert_ts_err(sc_cas(&t, "s1", 2 + (uint64_t)round, "{\"v\":3}", &r), 0);
        assert_ts_err(sc_read(&t, "s2", 0, 10, &r), 0);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.ev[0], "other");
        /* holders are not persisted; terms are */
        assert_ts_err(sc_acquire(&t, "leader:s1", "C", 60000, &r), 0);
        assert_int_equal(r.term, 3 + (uint64_t)round);
        assert_ts_err(sc_lrenew(&t, "leader:s1", "B", 2, 1000, &r), TS_ESTALE);
        assert_ts_err(sc_release(&t, "leader:s1", "C", 3 + (uint64_t)round), 0);
        sc_list(&t, TS_STORE_BY_SESSION, "s1", &r);
        assert_int_equal(r.n, 0);
        sc_close(&t);
        /* the next round sees this round's append too */
        if (round == 0) {
            sc_open(&t, env, NULL);
            assert_ts_err(sc_read(&t, "s1", 4, 10, &r), 0);
            assert_int_equal(r.n, 1);
            assert_string_equal(r.ev[0], "after");
            assert_ts_err(sc_trim(&t, "s1", 1), 0);
            sc_close(&t);
        }
    }
}

/* A log trimmed empty still remembers its sequence across a restart (the
 * events that carried it are gone). */
static void m_restart_trimmed_empty(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    sc_open(&t, env, NULL);
    for (int i = 0; i < 3; i++) sc_append(&t, "s", "e", &seq);
    assert_ts_err(sc_trim(&t, "s", 3), 0);
    sc_close(&t);
    sc_open(&t, env, NULL);
    assert_ts_err(sc_read(&t, "s", 0, 10, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.last_seq, 3);
    assert_int_equal(r.trimmed, 3);
    assert_ts_err(sc_append(&t, "s", "e4", &seq), 0);
    assert_int_equal(seq, 4);
    sc_close(&t);
}

/* A stale leader's term from before a restart is refused after it. */
static void m_restart_lease_unknown(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, NULL);
    assert_ts_err(sc_acquire(&t, "L", "A", 60000, &r), 0);
    sc_close(&t);
    sc_open(&t, env, NULL);
    assert_ts_err(sc_lrenew(&t, "L", "A", 1, 1000, &r), TS_ESTALE);
    assert_int_equal(r.term, 1); /* the last granted term, from the file */
    assert_string_equal(r.holder, "");
    assert_ts_err(sc_release(&t, "L", "A", 1), TS_ESTALE);
    sc_close(&t);
}

/* A write the file refuses (here: the disk is "full") fails with
 * TS_ESTORE and has no effect: no seq consumed, no version, no term. */
static void m_write_failure(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    static char big[8193];
    memset(big, 'f', sizeof big - 1);
    sc_open(&t, env, NULL);
    assert_ts_err(sc_append(&t, "s", "one", &seq), 0);
    assert_ts_err(sc_cas(&t, "s", 0, "{}", &r), 0);
    /* the file may not grow any more */
    assert_ts_err(ts_store__mem_sql_exec(t.st.self, "PRAGMA max_page_count = 1"), 0);
    assert_ts_err(sc_append(&t, "s", big, &seq), TS_ESTORE);
    assert_int_equal(seq, 0);
    assert_ts_err(sc_cas(&t, "s", 1, big, &r), TS_ESTORE);
    assert_false(r.has_state);
    assert_ts_err(sc_read(&t, "s", 0, 10, &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.last_seq, 1);
    assert_ts_err(sc_get(&t, "s", &r), 0);
    assert_int_equal(r.version, 1);
    assert_string_equal(r.doc, "{}");
    assert_ts_err(ts_store__mem_sql_exec(t.st.self, "PRAGMA max_page_count = 1000000"), 0);
    assert_ts_err(sc_append(&t, "s", big, &seq), 0);
    assert_int_equal(seq, 2);
    assert_ts_err(sc_cas(&t, "s", 1, big, &r), 0);
    assert_int_equal(r.version, 2);
    assert_ts_err(ts_store__mem_sql_exec(t.st.self, "SELEKT"), TS_ESTORE);
    sc_close(&t);
    sc_open(&t, env, NULL); /* and the file agrees with what was acknowledged */
    assert_ts_err(sc_read(&t, "s", 0, 10, &r), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.seqs[1], 2);
    assert_ts_err(sc_get(&t, "s", &r), 0);
    assert_int_equal(r.version, 2);
    sc_close(&t);
}

/* ---- bounds ---- */

static void patch_small_tail(ts_store_cfg_t *c) { c->log_mem_events = 4; }

/* Memory only: the tail is the log; older events are trimmed. */
static void m_tail_bound_memory(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    sc_open(&t, *state, patch_small_tail);
    for (int i = 1; i <= 10; i++) {
        char ev[8];
        snprintf(ev, sizeof ev, "e%d", i);
        sc_append(&t, "s", ev, &seq);
    }
    assert_ts_err(sc_read(&t, "s", 0, 100, &r), 0);
    assert_int_equal(r.trimmed, 6);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.seqs[0], 7);
    assert_string_equal(r.ev[3], "e10");
    sc_close(&t);
}

static void patch_small_tail_pages(ts_store_cfg_t *c) {
    c->log_mem_events = 4;
    c->read_max = 3;
}

/* With SQLite the tail is a cache: older events come from the file. */
static void m_tail_bound_sqlite(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    sc_open(&t, *state, patch_small_tail_pages);
    for (int i = 1; i <= 10; i++) {
        char ev[8];
        snprintf(ev, sizeof ev, "e%d", i);
        sc_append(&t, "s", ev, &seq);
    }
    uint64_t after = 0;
    int pages = 0;
    for (;;) { /* page through, as a reconnecting client would */
        assert_ts_err(sc_read(&t, "s", after, 100, &r), 0);
        assert_int_equal(r.trimmed, 0);
        assert_int_equal(r.last_seq, 10);
        if (r.n == 0) break;
        assert_true(r.n <= 3);
        for (size_t i = 0; i < r.n; i++) {
            char ev[8];
            snprintf(ev, sizeof ev, "e%llu", (unsigned long long)r.seqs[i]);
            assert_int_equal(r.seqs[i], after + 1 + i);
            assert_string_equal(r.ev[i], ev);
        }
        after = r.seqs[r.n - 1];
        pages++;
    }
    assert_int_equal(after, 10);
    assert_int_equal(pages, 4);
    sc_close(&t);
}

static void patch_two_sessions(ts_store_cfg_t *c) { c->sessions_max = 2; }

/* With SQLite, sessions beyond sessions_max are forgotten and reloaded. */
static void m_session_cache_sqlite(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    sc_open(&t, *state, patch_two_sessions);
    const char *names[] = {"a", "b", "c", "d", "e"};
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 5; i++) {
            assert_ts_err(sc_append(&t, names[i], names[i], &seq), 0);
            assert_int_equal(seq, (uint64_t)round + 1);
            assert_ts_err(sc_cas(&t, names[i], (uint64_t)round, names[i], &r), 0);
        }
    for (int i = 4; i >= 0; i--) {
        assert_ts_err(sc_read(&t, names[i], 0, 10, &r), 0);
        assert_int_equal(r.n, 2);
        assert_string_equal(r.ev[1], names[i]);
        assert_ts_err(sc_get(&t, names[i], &r), 0);
        assert_int_equal(r.version, 2);
        assert_string_equal(r.doc, names[i]);
    }
    sc_close(&t);
}

/* Memory only, sessions_max is a hard bound: the next session is refused. */
static void m_session_bound_memory(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq = 99;
    sc_open(&t, *state, patch_two_sessions);
    assert_ts_err(sc_append(&t, "a", "x", &seq), 0);
    assert_ts_err(sc_cas(&t, "b", 0, "{}", &r), 0);
    assert_ts_err(sc_read(&t, "c", 0, 10, &r), 0); /* reads create nothing */
    assert_ts_err(sc_get(&t, "c", &r), 0);
    assert_ts_err(sc_append(&t, "c", "x", &seq), TS_ELIMIT);
    assert_int_equal(seq, 0);
    assert_ts_err(sc_cas(&t, "c", 0, "{}", &r), TS_ELIMIT);
    assert_ts_err(sc_append(&t, "a", "y", &seq), 0); /* known sessions go on */
    assert_int_equal(seq, 2);
    sc_close(&t);
}

static void patch_small_budget(ts_store_cfg_t *c) { c->mem_bytes_max = 100; }

static void m_byte_budget_memory(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    char big[61];
    memset(big, 'z', 60);
    big[60] = '\0';
    sc_open(&t, *state, patch_small_budget);
    assert_ts_err(sc_append(&t, "s", big, &seq), 0);
    assert_ts_err(sc_append(&t, "s", big, &seq), TS_ELIMIT);
    assert_int_equal(seq, 0);
    assert_ts_err(sc_cas(&t, "s2", 0, big, &r), TS_ELIMIT);
    assert_ts_err(sc_trim(&t, "s", 1), 0); /* frees the budget */
    assert_ts_err(sc_append(&t, "s", big, &seq), 0);
    assert_int_equal(seq, 2); /* the refused append consumed no seq */
    sc_close(&t);
}

/* With SQLite the budget evicts cached tails; nothing is refused or lost. */
static void m_byte_budget_sqlite(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    char big[61];
    memset(big, 'z', 60);
    big[60] = '\0';
    sc_open(&t, *state, patch_small_budget);
    for (int i = 0; i < 5; i++) assert_ts_err(sc_append(&t, i % 2 ? "a" : "b", big, &seq), 0);
    assert_ts_err(sc_cas(&t, "c", 0, big, &r), 0);
    assert_ts_err(sc_read(&t, "b", 0, 10, &r), 0);
    assert_int_equal(r.n, 3);
    assert_ts_err(sc_read(&t, "a", 0, 10, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ev[1], big);
    sc_close(&t);
}

static void patch_two_entries(ts_store_cfg_t *c) { c->reg_max = 2; }

static void m_registry_bound(void **state) {
    sc_t t;
    sc_open(&t, *state, patch_two_entries);
    assert_ts_err(sc_put(&t, "s", "u", "d", "t1", "", 10000), 0);
    assert_ts_err(sc_put(&t, "s", "u", "d", "t2", "", 10000), 0);
    assert_ts_err(sc_put(&t, "s", "u", "d", "t3", "", 10000), TS_ELIMIT);
    assert_ts_err(sc_put(&t, "s", "u", "d", "t2", "new", 10000), 0); /* replacing is fine */
    assert_ts_err(sc_remove(&t, "s", "d", "t1"), 0);
    assert_ts_err(sc_put(&t, "s", "u", "d", "t3", "", 10000), 0);
    sc_close(&t);
}

static void patch_two_leases(ts_store_cfg_t *c) { c->leases_max = 2; }

static void m_lease_bound_memory(void **state) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, *state, patch_two_leases);
    assert_ts_err(sc_acquire(&t, "L1", "A", 10000, &r), 0);
    assert_ts_err(sc_acquire(&t, "L2", "A", 10000, &r), 0);
    assert_ts_err(sc_acquire(&t, "L3", "A", 10000, &r), TS_ELIMIT);
    /* memory only, a released lease still remembers its term */
    assert_ts_err(sc_release(&t, "L1", "A", 1), 0);
    assert_ts_err(sc_acquire(&t, "L3", "A", 10000, &r), TS_ELIMIT);
    assert_ts_err(sc_acquire(&t, "L1", "B", 10000, &r), 0);
    assert_int_equal(r.term, 2);
    sc_close(&t);
}

/* With SQLite, released leases leave memory; their terms stay in the file. */
static void m_lease_bound_sqlite(void **state) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, *state, patch_two_leases);
    assert_ts_err(sc_acquire(&t, "L1", "A", 10000, &r), 0);
    assert_ts_err(sc_acquire(&t, "L2", "A", 10000, &r), 0);
    assert_ts_err(sc_acquire(&t, "L3", "A", 10000, &r), TS_ELIMIT);
    assert_ts_err(sc_release(&t, "L1", "A", 1), 0);
    assert_ts_err(sc_acquire(&t, "L3", "A", 10000, &r), 0);
    assert_int_equal(r.term, 1);
    assert_ts_err(sc_release(&t, "L3", "A", 1), 0);
    assert_ts_err(sc_acquire(&t, "L1", "B", 10000, &r), 0);
    assert_int_equal(r.term, 2); /* reloaded from the file */
    sc_close(&t);
}

/* ---- open errors ---- */

static void write_file(const char *path, const char *bytes, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, n), (ssize_t)n);
    close(fd);
}

static void m_open_errors(void **state) {
    sc_env_t *env = *state;
    env_mkdir(env);
    char missing[256], isdir[256], garbage[256];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.db", env->dir);
    snprintf(isdir, sizeof isdir, "%s/adir", env->dir);
    mkdir(isdir, 0755);
    snprintf(garbage, sizeof garbage, "%s/garbage.db", env->dir);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7 + 3);
    write_file(garbage, junk, sizeof junk);
    static const struct {
        const char *name;
        int which;
        const char *hint;
    } rows[] = {
        {"directory missing", 0, "does the directory exist"},
        {"path is a directory", 1, "does the directory exist"},
        {"not a database", 2, "not a tabsync database"},
    };
    const char *paths[] = {missing, isdir, garbage};
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        sc_env_t e = *env;
        e.cfg.sqlite_path = paths[rows[i].which];
        sc_t t;
        char err[512];
        int rc = sc_open_with(&t, &e, NULL, err, sizeof err);
        if (rc != TS_ESTORE) fail_msg("%s: got %s", rows[i].name, ts_err_name(rc));
        if (!strstr(err, paths[rows[i].which]) || !strstr(err, rows[i].hint))
            fail_msg("%s: unclear message: %s", rows[i].name, err);
        assert_null(t.st.self);
        assert_ts_err(ts_store_close(&t.st, sc_on_close, &t), TS_ECLOSED);
        assert_int_equal(uv_loop_close(&t.loop), 0); /* nothing left behind */
    }
    /* a second process (here: a second open) on the same file is refused */
    env_fresh_file(env);
    sc_t a, b;
    sc_open(&a, env, NULL);
    char err[512];
    assert_ts_err(sc_open_with(&b, env, NULL, err, sizeof err), TS_ESTORE);
    assert_non_null(strstr(err, "another tabsyncd"));
    assert_int_equal(uv_loop_close(&b.loop), 0);
    uint64_t seq;
    assert_ts_err(sc_append(&a, "s", "still fine", &seq), 0);
    sc_close(&a);
    unlink(garbage);
    rmdir(isdir);
}

/* ---- cost of durable writes (printed for docs/STORE.md) ---- */

typedef struct perf_ctx {
    sc_t *t;
    int left, failed;
    uint64_t version;
    ts_buf_t *b;
} perf_ctx_t;

static void perf_on_seq(int status, uint64_t seq, void *ud) {
    perf_ctx_t *p = ud;
    if (status) p->failed++;
    p->left--;
}

static void perf_on_state(int status, const ts_store_state_t *s, void *ud) {
    perf_ctx_t *p = ud;
    if (status) p->failed++;
    else p->version = s->version;
    p->left--;
}

static double perf_run(sc_t *t, int cas, int n, int pipelined) {
    perf_ctx_t p = {.t = t};
    char ev[200];
    memset(ev, 'p', sizeof ev);
    memcpy(ev, "{\"type\":\"event\",\"body\":\"", 24);
    p.b = ts_buf_from(ev, sizeof ev);
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < n; i++) {
        p.left++;
        int rc = cas ? ts_store_state_cas(&t->st, S("perf"), p.version, p.b, perf_on_state, &p)
                     : ts_store_log_append(&t->st, S("perf"), p.b, perf_on_seq, &p);
        assert_ts_err(rc, 0);
        if (!pipelined)
            while (p.left) uv_run(&t->loop, UV_RUN_ONCE);
    }
    while (p.left) uv_run(&t->loop, UV_RUN_ONCE);
    uint64_t ns = uv_hrtime() - t0;
    ts_buf_unref(p.b);
    assert_int_equal(p.failed, 0);
    return (double)ns / 1000.0 / n;
}

static void m_perf(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_open(&t, env, NULL);
    enum { N = 2000 };
    double app = perf_run(&t, 0, N, 0);
    double app_p = perf_run(&t, 0, N, 1);
    double cas = perf_run(&t, 1, N, 0);
    print_message("store perf (%s): append %.1f us/op one at a time, %.1f us/op pipelined; "
                  "CAS %.1f us/op (200-byte events, %d ops)\n",
                  env->label, app, app_p, cas, N);
    /* A loose bound: a regression to fsync per op (milliseconds) fails. */
    assert_true(app < 2000.0 && cas < 2000.0);
    sc_close(&t);
}


/* ---- doors: one store, several loops on their own threads ---- */

enum { DOOR_N = 3000 };

typedef struct door_side {
    uv_loop_t loop;
    ts_store_t st;
    pthread_t want;     /* the thread every callback must run on */
    int left, wrong_thread, failed, closed;
    uint8_t *seen;      /* seq -> how many times handed out (shared, seq-indexed) */
} door_side_t;

static void door_on_seq(int status, uint64_t seq, void *ud) {
    door_side_t *d = ud;
    if (!pthread_equal(pthread_self(), d->want)) d->wrong_thread++;
    if (status || seq == 0 || seq > 2 * DOOR_N)
        d->failed++;
    else
        __atomic_fetch_add(&d->seen[seq], 1, __ATOMIC_RELAXED);
    d->left--;
}

static void door_on_close(void *ud) { ((door_side_t *)ud)->closed = 1; }

static void door_appends(door_side_t *d) {
    ts_buf_t *b = ts_buf_from("{\"door\":1}", 10);
    for (int i = 0; i < DOOR_N; i++) {
        d->left++;
        assert_ts_err(ts_store_log_append(&d->st, S("doors"), b, door_on_seq, d), 0);
        if (i % 64 == 0) uv_run(&d->loop, UV_RUN_NOWAIT); /* interleave with the other loop */
    }
    ts_buf_unref(b);
    while (d->left) uv_run(&d->loop, UV_RUN_ONCE);
}

static void *door_thread(void *arg) {
    door_side_t *d = arg;
    d->want = pthread_self();
    door_appends(d);
    ts_store_close(&d->st, door_on_close, d);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Another loop's door and the store's own loop append to one session at
 * the same time: every op completes once, on its caller's thread, and the
 * sequence numbers are exactly 1..2N. Closing the door leaves the store
 * working; closing it last releases everything (ASan/TSan watch). */
static void m_doors(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_open(&t, env, NULL);
    uint8_t *seen = calloc(2 * DOOR_N + 2, 1);
    door_side_t b = {.seen = seen};
    uv_loop_init(&b.loop);
    assert_ts_err(ts_store_attach(&b.st, &t.st, &b.loop), 0);
    door_side_t a = {.seen = seen, .st = t.st, .want = pthread_self()};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, door_thread, &b), 0);
    /* side a runs on t's loop */
    ts_buf_t *buf = ts_buf_from("{\"door\":0}", 10);
    for (int i = 0; i < DOOR_N; i++) {
        a.left++;
        assert_ts_err(ts_store_log_append(&t.st, S("doors"), buf, door_on_seq, &a), 0);
        if (i % 64 == 0) uv_run(&t.loop, UV_RUN_NOWAIT);
    }
    ts_buf_unref(buf);
    while (a.left) uv_run(&t.loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
    assert_true(b.closed);
    assert_int_equal(uv_loop_close(&b.loop), 0);
    assert_int_equal(a.failed + b.failed, 0);
    assert_int_equal(a.wrong_thread + b.wrong_thread, 0);
    for (int q = 1; q <= 2 * DOOR_N; q++)
        if (seen[q] != 1) fail_msg("seq %d handed out %d times", q, seen[q]);
    free(seen);
    /* the door is gone; the store's own loop goes on */
    uint64_t seq = 0;
    assert_ts_err(sc_append(&t, "doors", "{\"after\":1}", &seq), 0);
    assert_int_equal(seq, 2 * DOOR_N + 1);
    sc_close(&t);
}

int main(void) {
    const struct CMUnitTest contract_mem[] = {SC_CONTRACT_TESTS(&env_mem)};
    const struct CMUnitTest contract_sql[] = {SC_CONTRACT_TESTS(&env_sql)};
    const struct CMUnitTest memory_only[] = {
        SC_T(m_tail_bound_memory, &env_mem),    SC_T(m_session_bound_memory, &env_mem),
        SC_T(m_byte_budget_memory, &env_mem),   SC_T(m_registry_bound, &env_mem),
        SC_T(m_lease_bound_memory, &env_mem),   SC_T(m_perf, &env_mem),
        SC_T(m_doors, &env_mem),
    };
    const struct CMUnitTest with_sqlite[] = {
        SC_T(m_restart, &env_sql),           SC_T(m_restart_lease_unknown, &env_sql),
        SC_T(m_restart_trimmed_empty, &env_sql), SC_T(m_write_failure, &env_sql),
        SC_T(m_tail_bound_sqlite, &env_sql), SC_T(m_session_cache_sqlite, &env_sql),
        SC_T(m_byte_budget_sqlite, &env_sql), SC_T(m_lease_bound_sqlite, &env_sql),
        SC_T(m_open_errors, &env_sql),       SC_T(m_perf, &env_sql),
        SC_T(m_doors, &env_sql),
    };
    int fails = 0;
    fails += cmocka_run_group_tests_name("store contract: memory only", contract_mem, NULL, NULL);
    fails += cmocka_run_group_tests_name("store contract: memory + SQLite", contract_sql, NULL,
                                         NULL);
    fails += cmocka_run_group_tests_name("memory backend: memory only", memory_only, NULL, NULL);
    fails += cmocka_run_group_tests_name("memory backend: SQLite file", with_sqlite, NULL, NULL);
    if (env_sql.dir[0]) rmdir(env_sql.dir);
    return fails ? 1 : 0;
}
