/* test_store_memory.c - the memory backend: the store contract twice (memory
 * only, and written through to a SQLite file in a temp dir), then what only
 * this backend promises: restart from the file, bounded memory, clear open
 * errors, and the measured cost of a durable append and CAS. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "store/store_contract.h"
#include "store/store_int.h"

#include "store/sql_env.h"

static sc_env_t env_mem = {
    .label = "memory only",
    .ops = &ts_store_memory_ops,
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

/* ---- session history across restarts ---- */

static void patch_one_session(ts_store_cfg_t *c) { c->sessions_max = 1; }

/* Close and reopen the file: epoch, state_ver, snapshot, sequence and the
 * clients' exactly-once windows are all there; a session that left memory
 * and came back has them too. */
static void m_restart_history(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, NULL);
    static const char *const evs[] = {"a1", "a2", "a3"};
    for (uint64_t i = 0; i < 3; i++)
        assert_ts_err(sc_commit(&t, "u/h", evs[i], "A", i + 1, SC_ANY, 1, &r), 0);
    assert_ts_err(sc_snap(&t, "u/h", 2, 2, "{\"snap\":2}"), 0);
    assert_ts_err(sc_commit(&t, "u/h", "b7", "B", 7, 3, 0, &r), 0);
    assert_ts_err(sc_sess(&t, "u/h", &r), 0);
    uint64_t epoch = r.epoch;
    assert_int_equal(r.last_seq, 4);
    assert_int_equal(r.state_ver, 3);
    sc_close(&t);

    sc_open(&t, env, patch_one_session);
    assert_ts_err(sc_sess(&t, "u/h", &r), 0);
    assert_int_equal(r.epoch, epoch);
    assert_int_equal(r.last_seq, 4);
    assert_int_equal(r.state_ver, 3);
    assert_int_equal(r.snap_seq, 2);
    assert_int_equal(r.snap_ver, 2);
    assert_string_equal(r.snap, "{\"snap\":2}");
    assert_ts_err(sc_commit(&t, "u/h", "x", "A", 2, SC_ANY, 1, &r), TS_EDUP);
    assert_int_equal(r.seq, 2);
    assert_string_equal(r.orig, "a2");
    assert_ts_err(sc_commit(&t, "u/h", "x", "B", 7, SC_ANY, 1, &r), TS_EDUP);
    assert_int_equal(r.seq, 4);
    assert_ts_err(sc_commit(&t, "u/h", "a4", "A", 4, 3, 1, &r), 0);
    assert_int_equal(r.seq, 5);
    assert_int_equal(r.state_ver, 4);
    assert_int_equal(r.epoch, epoch);
    /* another session pushes u/h out of memory; it comes back from the file */
    assert_ts_err(sc_commit(&t, "other", "o", "A", 1, SC_ANY, 1, &r), 0);
    assert_ts_err(sc_commit(&t, "u/h", "x", "A", 4, SC_ANY, 1, &r), TS_EDUP);
    assert_int_equal(r.seq, 5);
    assert_string_equal(r.orig, "a4");
    assert_ts_err(sc_commit(&t, "u/h", "x", "A", 3, SC_ANY, 1, &r), TS_EDUP);
    assert_int_equal(r.seq, 3);
    assert_ts_err(sc_sess(&t, "u/h", &r), 0);
    assert_int_equal(r.epoch, epoch);
    assert_int_equal(r.last_seq, 5);
    sc_close(&t);
}

/* Memory only, a restart loses history: the same session gets a new epoch,
 * which is how readers learn that their seqs mean nothing any more. */
static void m_restart_epoch_memory(void **state) {
    sc_t t;
    sc_res_t r;
    sc_open(&t, *state, NULL);
    assert_ts_err(sc_commit(&t, "h", "e", NULL, 0, SC_ANY, 1, &r), 0);
    uint64_t epoch = r.epoch;
    sc_close(&t);
    sc_open(&t, *state, NULL);
    assert_ts_err(sc_sess(&t, "h", &r), 0);
    assert_true(r.epoch != 0 && r.epoch != epoch); /* a new history, created by asking */
    assert_int_equal(r.last_seq, 0);
    uint64_t epoch2 = r.epoch;
    assert_ts_err(sc_commit(&t, "h", "e", NULL, 0, SC_ANY, 1, &r), 0);
    assert_int_equal(r.epoch, epoch2);
    assert_int_equal(r.seq, 1);
    sc_close(&t);
}

static void patch_retain_time_small_cache(ts_store_cfg_t *c) {
    c->retain_events = 1;
    c->retain_ms = 300;
    c->sweep_ms = 20;
    c->log_mem_events = 2; /* append times come from the file */
}

/* Retention with SQLite when the ring caches less than retention looks at
 * (append times read from the file), and its trims survive a restart. */
static void m_retention_sqlite(void **state) {
    sc_env_t *env = *state;
    sc_retention_time_run(env, patch_retain_time_small_cache);
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, NULL);
    assert_ts_err(sc_sess(&t, "h", &r), 0);
    assert_int_equal(r.trimmed, 9);
    assert_int_equal(r.snap_seq, 10);
    ts_store_stats_t st;
    assert_ts_err(ts_store_stats(&t.st, &st), 0);
    assert_int_equal(st.events_trimmed, 0); /* per store, since open */
    sc_close(&t);
}

/* ---- a batch the file refuses ---- */

static void patch_group_50(ts_store_cfg_t *c) { c->group_ms = 50; }
static void patch_group_2(ts_store_cfg_t *c) { c->group_ms = 2; }

/* The COMMIT itself fails (a deferred foreign key, checked only at COMMIT,
 * here standing in for a full disk or an I/O error): every op of the batch
 * gets TS_ESTORE, memory drops what the batch touched, and the next ops see
 * exactly what the file has: no seq gap, no duplicate, no lost term. */
static void m_commit_failure(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, patch_group_50);
    assert_ts_err(sc_commit(&t, "h1", "one", "A", 1, SC_ANY, 1, &r), 0);
    uint64_t epoch1 = r.epoch;
    assert_ts_err(sc_commit(&t, "h2", "two", "A", 1, SC_ANY, 1, &r), 0);
    assert_ts_err(sc_acquire(&t, "L", "A", 60000, &r), 0);
    assert_ts_err(sc_release(&t, "L", "A", 1), 0);
    assert_ts_err(ts_store__mem_sql_exec(t.st.self,
                                         "PRAGMA foreign_keys = ON;"
                                         "CREATE TABLE fk_parent(id INTEGER PRIMARY KEY);"
                                         "CREATE TABLE fk_child(p INTEGER REFERENCES fk_parent(id)"
                                         "  DEFERRABLE INITIALLY DEFERRED);"
                                         "CREATE TRIGGER boom AFTER INSERT ON events"
                                         "  BEGIN INSERT INTO fk_child VALUES(42); END;"),
                  0);
    enum { N = 7 };
    sc_res_t p[N];
    ts_buf_t *b = ts_buf_from("lost", 4);
    ts_store_commit_t c1 = {b, S("A"), 2, SC_ANY, 1, 0, ts_slice("", 0), 0, ts_slice("", 0)}, c2 = {b, S("B"), 1, 1, 1, 0, ts_slice("", 0), 0, ts_slice("", 0)};
    assert_ts_err(SC_CALL(&t, &p[0], ts_store_commit(&t.st, S("h1"), &c1, sc_on_commit, &p[0])), 0);
    assert_ts_err(SC_CALL(&t, &p[1], ts_store_commit(&t.st, S("h2"), &c2, sc_on_commit, &p[1])), 0);
    assert_ts_err(SC_CALL(&t, &p[2], ts_store_log_append(&t.st, S("h3"), b, sc_on_seq, &p[2])), 0);
    assert_ts_err(SC_CALL(&t, &p[3], ts_store_snap_put(&t.st, S("h1"), 2, 2, b, sc_on_done, &p[3])),
                  0);
    assert_ts_err(SC_CALL(&t, &p[4], ts_store_lease_acquire(&t.st, S("L"), S("B"), 60000,
                                                            sc_on_lease, &p[4])),
                  0);
    assert_ts_err(SC_CALL(&t, &p[5], ts_store_commit(&t.st, S("h1"), &c1, sc_on_commit, &p[5])), 0);
    assert_ts_err(SC_CALL(&t, &p[6], ts_store_sess_get(&t.st, S("h1"), sc_on_sess, &p[6])), 0);
    ts_buf_unref(b);
    sc_wait(&t, &p[N - 1]);
    for (int i = 0; i < 6; i++) /* the duplicate (5) saw the failed write: TS_ESTORE too */
        if (p[i].status != TS_ESTORE) fail_msg("op %d: got %s", i, ts_err_name(p[i].status));
    assert_false(p[4].has_lease);
    assert_ts_err(p[6].status, 0); /* the read shows the file */
    assert_int_equal(p[6].last_seq, 1);
    assert_int_equal(p[6].state_ver, 1);
    assert_int_equal(p[6].snap_seq, 0);
    assert_int_equal(p[6].epoch, epoch1);
    ts_store_stats_t st;
    assert_ts_err(ts_store_stats(&t.st, &st), 0);
    assert_int_equal(st.commit_failures, 1);
    assert_ts_err(ts_store__mem_sql_exec(t.st.self, "DROP TRIGGER boom"), 0);
    /* never applied, so applied now, right after the last durable seq */
    assert_ts_err(sc_commit(&t, "h1", "again", "A", 2, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 2);
    assert_int_equal(r.state_ver, 2);
    assert_ts_err(sc_commit(&t, "h1", "x", "A", 2, SC_ANY, 1, &r), TS_EDUP);
    assert_ts_err(sc_sess(&t, "h3", &r), 0);
    assert_int_equal(r.last_seq, 0); /* its creation was rolled back (asking creates it anew) */
    assert_ts_err(sc_acquire(&t, "L", "B", 60000, &r), 0);
    assert_int_equal(r.term, 2); /* term 2 was never handed out */
    /* a statement that fails fails its batch the same way */
    assert_ts_err(ts_store__mem_sql_exec(t.st.self,
                                         "CREATE TRIGGER boom2 BEFORE INSERT ON events"
                                         "  BEGIN SELECT RAISE(ABORT, 'injected'); END;"),
                  0);
    assert_ts_err(sc_commit(&t, "h2", "x", "A", 2, SC_ANY, 1, &r), TS_ESTORE);
    assert_ts_err(ts_store__mem_sql_exec(t.st.self, "DROP TRIGGER boom2"), 0);
    assert_ts_err(sc_commit(&t, "h2", "two b", "A", 2, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 2);
    sc_close(&t);
    sc_open(&t, env, NULL); /* the file agrees with every acknowledgement */
    static const struct {
        const char *sess;
        size_t n;
        const char *last;
    } rows[] = {{"h1", 2, "again"}, {"h2", 2, "two b"}, {"h3", 0, NULL}};
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        assert_ts_err(sc_read(&t, rows[i].sess, 0, 10, &r), 0);
        assert_int_equal(r.n, rows[i].n);
        assert_int_equal(r.last_seq, rows[i].n);
        if (rows[i].last) assert_string_equal(r.ev[r.n - 1], rows[i].last);
    }
    sc_close(&t);
}

/* ---- bounds ---- */

static void patch_small_tail(ts_store_cfg_t *c) { c->log_mem_events = 4; }

/* Memory only: the tail is the log. Events the snapshot does not cover
 * stay whatever log_mem_events says (dropping them would lose state);
 * covered ones go as soon as the bound wants. */
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
    assert_int_equal(r.trimmed, 0);
    assert_int_equal(r.n, 10);
    assert_ts_err(sc_snap(&t, "s", 6, 0, "{\"at\":6}"), 0);
    assert_ts_err(sc_read(&t, "s", 0, 100, &r), 0);
    assert_int_equal(r.trimmed, 6);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.seqs[0], 7);
    assert_string_equal(r.ev[3], "e10");
    assert_ts_err(sc_snap(&t, "s", 10, 0, "{\"at\":10}"), 0);
    assert_ts_err(sc_append(&t, "s", "e11", &seq), 0);
    assert_ts_err(sc_read(&t, "s", 0, 100, &r), 0);
    assert_int_equal(r.trimmed, 7); /* the bound again, now that 7 is covered */
    assert_int_equal(r.n, 4);
    sc_close(&t);
}

static void patch_one_event_budget(ts_store_cfg_t *c) {
    c->log_mem_events = 1;
    c->mem_bytes_max = 200;
}

/* Memory only: events after the snapshot count against mem_bytes_max
 * until a snapshot covers them; then the tail bound lets them go. */
static void m_uncovered_budget_memory(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq;
    char big[61];
    memset(big, 'z', 60);
    big[60] = '\0';
    sc_open(&t, *state, patch_one_event_budget);
    for (int i = 0; i < 3; i++) assert_ts_err(sc_commit(&t, "s", big, NULL, 0, SC_ANY, 1, &r), 0);
    assert_ts_err(sc_commit(&t, "s", big, NULL, 0, SC_ANY, 1, &r), TS_ELIMIT);
    assert_ts_err(sc_append(&t, "s", big, &seq), TS_ELIMIT);
    assert_ts_err(sc_snap(&t, "s", 3, 3, "{}"), 0); /* accepted even when full */
    assert_ts_err(sc_read(&t, "s", 0, 10, &r), 0);
    assert_int_equal(r.trimmed, 2);
    assert_int_equal(r.n, 1);
    assert_ts_err(sc_commit(&t, "s", big, NULL, 0, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 4); /* refused commits consumed no seq */
    ts_store_stats_t st;
    assert_ts_err(ts_store_stats(&t.st, &st), 0);
    assert_int_equal(st.events_appended, 4);
    assert_int_equal(st.events_trimmed, 3); /* 1, 2 at the snapshot; 3 after the commit */
    assert_int_equal(st.commits, 0); /* memory only: no transactions */
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

/* Memory only, a session that was only asked about is an epoch (a
 * mem_stub_t): it counts against sessions_max like any other, reads show
 * it empty with its epoch, and whatever op comes next keeps that epoch. */
static void m_session_stub_memory(void **state) {
    sc_t t;
    sc_res_t r;
    uint64_t seq = 99;
    sc_open(&t, *state, patch_two_sessions);
    assert_ts_err(sc_sess(&t, "a", &r), 0);
    uint64_t ea = r.epoch;
    assert_true(ea != 0);
    assert_ts_err(sc_sess(&t, "b", &r), 0);
    uint64_t eb = r.epoch;
    assert_true(eb != 0 && eb != ea);
    assert_ts_err(sc_sess(&t, "c", &r), TS_ELIMIT); /* two sessions: full */
    assert_ts_err(sc_append(&t, "c", "x", &seq), TS_ELIMIT);
    assert_ts_err(sc_sess(&t, "a", &r), 0); /* asked again: the same */
    assert_int_equal(r.epoch, ea);
    assert_int_equal(r.last_seq + r.trimmed + r.state_ver + r.snap_seq + r.snap_ver, 0);
    assert_ts_err(sc_get(&t, "b", &r), 0); /* a read makes it a session: the same epoch */
    assert_ts_err(sc_sess(&t, "b", &r), 0);
    assert_int_equal(r.epoch, eb);
    assert_ts_err(sc_append(&t, "a", "x", &seq), 0);
    assert_int_equal(seq, 1);
    assert_ts_err(sc_sess(&t, "a", &r), 0);
    assert_int_equal(r.epoch, ea);
    assert_int_equal(r.last_seq, 1);
    sc_close(&t); /* frees both kinds */
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

/* The registry's three indexes keep no object per id: an id's first entry
 * is in the index, the others follow it through the entries. Random puts,
 * replacements (which may move an entry to another user), removals and
 * expiries of 16 keys against a model: after each step every id of every
 * index lists exactly its live entries, in the order they were put. */
typedef struct reg_model {
    int live, sess, dev, tab, user;
    unsigned order; /* when it was (last) put */
} reg_model_t;

static void reg_model_check(sc_t *t, const reg_model_t *mdl, size_t n) {
    static const char *const names[3][4] = {
        {"s0", "s1", NULL, NULL}, {"u0", "u1", "u2", NULL}, {"d0", "d1", NULL, NULL}};
    for (int by = 0; by < 3; by++) {
        for (int id = 0; id < 4 && names[by][id]; id++) {
            /* the model's entries of this id, oldest first */
            const reg_model_t *want[16];
            size_t nw = 0;
            for (size_t i = 0; i < n; i++) {
                const reg_model_t *e = &mdl[i];
                int of = by == TS_STORE_BY_SESSION ? e->sess
                         : by == TS_STORE_BY_USER  ? e->user
                                                   : e->dev;
                if (!e->live || of != id) continue;
                size_t j = nw++;
                for (; j > 0 && want[j - 1]->order > e->order; j--) want[j] = want[j - 1];
                want[j] = e;
            }
            sc_res_t r;
            assert_ts_err(sc_list(t, (ts_store_by_t)by, names[by][id], &r), 0);
            assert_int_equal(r.n, nw);
            for (size_t i = 0; i < nw; i++) {
                char tab[8];
                snprintf(tab, sizeof tab, "t%d", want[i]->tab);
                assert_string_equal(r.regs[i].session, names[0][want[i]->sess]);
                assert_string_equal(r.regs[i].device, names[2][want[i]->dev]);
                assert_string_equal(r.regs[i].tab, tab);
                assert_string_equal(r.regs[i].user, names[1][want[i]->user]);
            }
        }
    }
}

static void m_registry_indexes(void **state) {
    sc_t t;
    sc_open(&t, *state, sc_patch_fast_sweep);
    reg_model_t mdl[16] = {{0}}; /* key = sess * 8 + dev * 4 + tab */
    unsigned order = 0, seed = 12345;
    int expired = 0;
    for (int step = 0; step < 400; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % 16, what = (seed >> 16) % 10;
        reg_model_t *e = &mdl[k];
        int sess = (int)(k / 8), dev = (int)(k / 4 % 2), tab = (int)(k % 4);
        char s[4], d[4], tb[4], u[4];
        snprintf(s, sizeof s, "s%d", sess);
        snprintf(d, sizeof d, "d%d", dev);
        snprintf(tb, sizeof tb, "t%d", tab);
        if (what < 6) { /* put or replace, perhaps for another user */
            int user = (int)((seed >> 20) % 3);
            snprintf(u, sizeof u, "u%d", user);
            assert_ts_err(sc_put(&t, s, u, d, tb, "{}", 60000), 0);
            *e = (reg_model_t){1, sess, dev, tab, user, order++};
        } else if (what < 9) {
            assert_ts_err(sc_remove(&t, s, d, tb), e->live ? 0 : TS_ENOTFOUND);
            e->live = 0;
        } else { /* a few short-lived ones, then wait for the sweep */
            for (int i = 0; i < 3; i++) {
                reg_model_t *x = &mdl[(k + (unsigned)i * 5) % 16];
                int xk = (int)((k + (unsigned)i * 5) % 16);
                snprintf(s, sizeof s, "s%d", xk / 8);
                snprintf(d, sizeof d, "d%d", xk / 4 % 2);
                snprintf(tb, sizeof tb, "t%d", xk % 4);
                assert_ts_err(sc_put(&t, s, "u1", d, tb, "", 30), 0);
                x->live = 0;
                expired++;
            }
            uint64_t deadline = ts_now_ms() + 3000;
            while (t.expired < expired && ts_now_ms() < deadline) sc_sleep(&t, 10);
            assert_int_equal(t.expired, expired);
        }
        reg_model_check(&t, mdl, 16);
    }
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

typedef struct gperf {
    int left, failed;
} gperf_t;

static void gperf_on_commit(int status, const ts_store_commit_res_t *r, void *ud) {
    gperf_t *g = ud;
    if (status) g->failed++;
    g->left--;
}

/* `total` commits of 200-byte events spread over 1,000 sessions (each with
 * its exactly-once bookkeeping), `per_turn` issued at once, then waited
 * for. Returns commits per second. */
static double perf_group(sc_t *t, int per_turn, int total) {
    char ev[200];
    memset(ev, 'p', sizeof ev);
    memcpy(ev, "{\"type\":\"event\",\"body\":\"", 24);
    ts_buf_t *b = ts_buf_from(ev, sizeof ev);
    gperf_t g = {0, 0};
    static uint64_t mut;
    uint64_t t0 = uv_hrtime();
    for (int done = 0; done < total;) {
        for (int i = 0; i < per_turn && done < total; i++, done++) {
            char sess[48];
            snprintf(sess, sizeof sess, "user-%03d/session-%08d", done * 7919 % 1000,
                     done * 7919 % 1000 * 31);
            ts_store_commit_t c = {b, S("client-1"), ++mut, SC_ANY, 1, 0, ts_slice("", 0), 0, ts_slice("", 0)};
            g.left++;
            assert_ts_err(ts_store_commit(&t->st, S(sess), &c, gperf_on_commit, &g), 0);
        }
        while (g.left) uv_run(&t->loop, UV_RUN_ONCE);
    }
    uint64_t ns = uv_hrtime() - t0;
    ts_buf_unref(b);
    assert_int_equal(g.failed, 0);
    return (double)total * 1e9 / (double)ns;
}

static void patch_sync(ts_store_cfg_t *c) { c->durability = TS_STORE_DUR_SYNC; }
static void patch_none(ts_store_cfg_t *c) { c->durability = TS_STORE_DUR_NONE; }

/* Median COMMIT latency bucket, from the stats histogram. */
static uint64_t stats_p50_bound(const ts_store_stats_t *s) {
    static const uint64_t bounds[TS_STORE_LAT_BUCKETS] = TS_STORE_LAT_BOUNDS_US;
    for (int i = 0; i < TS_STORE_LAT_BUCKETS; i++)
        if (s->lat_le[i] * 2 >= s->lat_count) return bounds[i];
    return UINT64_MAX;
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
    /* Times are printed, not asserted (a loaded machine makes any bound
     * flaky; bench/ measures speed). What is asserted: no second COMMIT (an
     * fsync each) per op — one at a time, append and CAS take one each,
     * pipelined appends share them. */
    ts_store_stats_t ps;
    assert_ts_err(ts_store_stats(&t.st, &ps), 0);
    assert_true(ps.commits <= 2 * (uint64_t)N + (uint64_t)N / 2);
    if (env->fresh) assert_true(ps.commits >= 2 * (uint64_t)N); /* and durable ones were made */
    sc_close(&t);
    if (!env->fresh) return; /* memory only: no policies */
    static const struct {
        const char *name;
        void (*patch)(ts_store_cfg_t *);
        int per_turn, total;
    } rows[] = {
        {"SYNC, 1 at a time", patch_sync, 1, 1000},
        {"SYNC, 100 at a time", patch_sync, 100, 2000},
        {"GROUP 0 ms, 1 at a time", NULL, 1, 1000},
        {"GROUP 0 ms, 100 per turn", NULL, 100, 20000},
        {"GROUP 0 ms, 1000 per turn", NULL, 1000, 40000},
        {"GROUP 2 ms, 100 per turn", patch_group_2, 100, 20000},
        {"NONE, 1 at a time", patch_none, 1, 2000},
        {"NONE, 1000 per turn", patch_none, 1000, 40000},
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        sc_open(&t, env, rows[i].patch);
        double rate = perf_group(&t, rows[i].per_turn, rows[i].total);
        ts_store_stats_t st;
        assert_ts_err(ts_store_stats(&t.st, &st), 0);
        char p50[24];
        uint64_t b = stats_p50_bound(&st);
        snprintf(p50, sizeof p50, b == UINT64_MAX ? "+Inf" : "%llu", (unsigned long long)b);
        print_message("store perf (group commit, %s): %.0f commits/s over 1000 sessions; "
                      "%llu COMMITs, mean %.0f us, median <= %s us\n",
                      rows[i].name, rate, (unsigned long long)st.commits,
                      st.lat_count ? (double)st.lat_sum_us / (double)st.lat_count : 0.0, p50);
        assert_true(st.commits > 0 && st.commit_failures == 0);
        sc_close(&t);
    }
}


/* ---- crash durability ---- */

enum { CRASH_INFLIGHT = 8, CRASH_EV = 48 };

typedef struct crash_ack {
    uint64_t seq, mut;
    char ev[CRASH_EV];
} crash_ack_t;

typedef struct crash_child {
    ts_store_t st;
    int fd, round;
    uint64_t mut;
} crash_child_t;

typedef struct crash_op {
    crash_child_t *c;
    crash_ack_t ack;
} crash_op_t;

static void crash_issue(crash_child_t *c);

/* The child's ack: written only once the commit is acknowledged (durable). */
static void crash_on_commit(int status, const ts_store_commit_res_t *res, void *ud) {
    crash_op_t *op = ud;
    if (status) _exit(5);
    op->ack.seq = res->seq;
    if (write(op->c->fd, &op->ack, sizeof op->ack) != (ssize_t)sizeof op->ack) _exit(6);
    crash_issue(op->c);
    free(op);
}

static void crash_issue(crash_child_t *c) {
    crash_op_t *op = calloc(1, sizeof *op);
    op->c = c;
    op->ack.mut = ++c->mut;
    int n = snprintf(op->ack.ev, CRASH_EV, "round %d mut %llu", c->round,
                     (unsigned long long)op->ack.mut);
    memset(op->ack.ev + n, '.', CRASH_EV - 1 - (size_t)n); /* NUL stays last */
    ts_buf_t *b = ts_buf_from(op->ack.ev, CRASH_EV - 1);
    ts_store_commit_t cm = {b, S("writer"), op->ack.mut, TS_STORE_ANY_VER, 1, 0, ts_slice("", 0), 0, ts_slice("", 0)};
    if (ts_store_commit(&c->st, S("crash/h"), &cm, crash_on_commit, op)) _exit(7);
    ts_buf_unref(b);
}

static void crash_child(const char *path, int fd, int round, uint64_t first_mut) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    ts_store_cfg_t cfg = {.sqlite_path = path, .durability = TS_STORE_DUR_GROUP, .group_ms = 2};
    crash_child_t c = {.fd = fd, .round = round, .mut = first_mut};
    char err[256];
    if (ts_store_open(&c.st, &ts_store_memory_ops, &cfg, &loop, err, sizeof err)) _exit(3);
    for (int i = 0; i < CRASH_INFLIGHT; i++) crash_issue(&c);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(4); /* never: the parent kills it */
}

static int read_ack(int fd, crash_ack_t *a) {
    size_t got = 0;
    while (got < sizeof *a) {
        ssize_t n = read(fd, (char *)a + got, sizeof *a - got);
        if (n == 0) return 0;
        if (n < 0 && errno == EINTR) continue;
        assert_true(n > 0);
        got += (size_t)n;
    }
    return 1;
}

/* A child commits in a loop (GROUP, group_ms 2) and reports each
 * acknowledged commit through a pipe; it is SIGKILLed at a random moment.
 * Every acknowledged event is in the file with its bytes, the log has no
 * gap, the exactly-once window survived, and the sequence goes on. */
static void m_crash(void **state) {
    sc_env_t *env = *state;
    enum { ROUNDS = 4, MAX_ACKS = ROUNDS * 2000 };
    crash_ack_t *acks = calloc(MAX_ACKS, sizeof *acks);
    size_t nacks = 0;
    uint64_t next_seq = 1;
    for (int round = 0; round < ROUNDS; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        uint32_t rnd;
        ts_random_bytes(&rnd, sizeof rnd);
        size_t want = 200 + rnd % 400, first = nacks;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(env->path, fds[1], round, (uint64_t)round * 1000000);
        }
        close(fds[1]);
        crash_ack_t a;
        while (nacks - first < want && read_ack(fds[0], &a)) acks[nacks++] = a;
        usleep(rnd % 3000); /* somewhere inside a batch */
        kill(pid, SIGKILL);
        int wst;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        if (!WIFSIGNALED(wst)) fail_msg("child exited with %d", WEXITSTATUS(wst));
        while (nacks < MAX_ACKS && read_ack(fds[0], &a)) acks[nacks++] = a; /* acked before */
        close(fds[0]);
        assert_true(nacks - first >= want);

        sc_t t;
        sc_res_t r;
        sc_open(&t, env, NULL);
        assert_ts_err(sc_sess(&t, "crash/h", &r), 0);
        uint64_t last = r.last_seq;
        assert_int_equal(r.trimmed, 0);
        assert_true(last >= acks[nacks - 1].seq);
        assert_int_equal(acks[first].seq, next_seq); /* the child went on from there */
        for (size_t i = first; i < nacks; i++) {
            if (i > first) assert_int_equal(acks[i].seq, acks[i - 1].seq + 1);
            assert_ts_err(sc_read(&t, "crash/h", acks[i].seq - 1, 1, &r), 0);
            assert_int_equal(r.n, 1);
            assert_int_equal(r.seqs[0], acks[i].seq);
            assert_string_equal(r.ev[0], acks[i].ev);
        }
        for (uint64_t after = 0; after < last;) { /* gap-free from 1 */
            assert_ts_err(sc_read(&t, "crash/h", after, SC_MAX_EVENTS, &r), 0);
            assert_true(r.n > 0);
            assert_int_equal(r.seqs[0], after + 1);
            after = r.seqs[r.n - 1];
        }
        const crash_ack_t *la = &acks[nacks - 1];
        assert_ts_err(sc_commit(&t, "crash/h", "x", "writer", la->mut, SC_ANY, 1, &r), TS_EDUP);
        assert_int_equal(r.seq, la->seq);
        assert_ts_err(sc_commit(&t, "crash/h", "after the crash", NULL, 0, SC_ANY, 1, &r), 0);
        assert_int_equal(r.seq, last + 1);
        next_seq = last + 2;
        sc_close(&t);
    }
    free(acks);
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
static void doors_run(void **state, void (*patch)(ts_store_cfg_t *)) {
    sc_env_t *env = *state;
    sc_t t;
    sc_open(&t, env, patch);
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

static void m_doors(void **state) { doors_run(state, NULL); }

/* The same with group commit: whichever loop's timer fires first commits
 * for both, and wakes the other to call its own callbacks. */
static void m_doors_group(void **state) { doors_run(state, patch_group_2); }

int main(void) {
    const struct CMUnitTest contract_mem[] = {SC_CONTRACT_TESTS(&env_mem)};
    const struct CMUnitTest contract_sql[] = {SC_CONTRACT_TESTS(&env_sql)};
    const struct CMUnitTest memory_only[] = {
        SC_T(m_tail_bound_memory, &env_mem),      SC_T(m_uncovered_budget_memory, &env_mem),
        SC_T(m_session_bound_memory, &env_mem),   SC_T(m_session_stub_memory, &env_mem),
        SC_T(m_byte_budget_memory, &env_mem),     SC_T(m_registry_bound, &env_mem),
        SC_T(m_lease_bound_memory, &env_mem),     SC_T(m_registry_indexes, &env_mem),
        SC_T(m_restart_epoch_memory, &env_mem),   SC_T(m_perf, &env_mem),
        SC_T(m_doors, &env_mem),
    };
    const struct CMUnitTest with_sqlite[] = {
        SC_T(m_restart, &env_sql),               SC_T(m_restart_lease_unknown, &env_sql),
        SC_T(m_restart_trimmed_empty, &env_sql), SC_T(m_restart_history, &env_sql),
        SC_T(m_write_failure, &env_sql),
        SC_T(m_commit_failure, &env_sql),        SC_T(m_crash, &env_sql),
        SC_T(m_retention_sqlite, &env_sql),
        SC_T(m_tail_bound_sqlite, &env_sql),     SC_T(m_session_cache_sqlite, &env_sql),
        SC_T(m_byte_budget_sqlite, &env_sql),    SC_T(m_lease_bound_sqlite, &env_sql),
        SC_T(m_open_errors, &env_sql),           SC_T(m_perf, &env_sql),
        SC_T(m_doors, &env_sql),                 SC_T(m_doors_group, &env_sql),
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
