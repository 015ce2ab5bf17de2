/* test_store_sqlite.c - the memory backend's SQLite file itself: its
 * schema and upgrades, and the event index (sqlite_log.c): runs of a
 * session's events written from the tail in passes, found again after a
 * pass, a trim inside a run, a reopen, a rolled-back pass, an upgrade from
 * the index of schema 2, and a damaged index answered with an error. The
 * ring cache is kept at 4 events per session here, so reads reach the file. */
#include "store/sql_env.h"
#include "store/store_int.h"

/* More events than this make at least one pass at a COMMIT. */
enum { TAIL_ROWS = TS_STORE_SQL_TAIL_ROWS };

static void patch_ring_4(ts_store_cfg_t *c) { c->log_mem_events = 4; }

typedef struct bulk {
    int pending, failed;
} bulk_t;

static void on_bulk(int status, uint64_t seq, void *ud) {
    (void)seq;
    bulk_t *b = ud;
    b->pending--;
    if (status) b->failed++;
}

/* Appends events "r<k>-<i>" for i in [from, from + n) to sessions r0..r<nsess-1>,
 * interleaved, 1,000 ops in flight at a time; returns how many failed. */
static int append_bulk(sc_t *t, int nsess, int from, int n) {
    bulk_t b = {0};
    for (int i = from; i < from + n; i++) {
        for (int k = 0; k < nsess; k++) {
            char sess[16], ev[32];
            snprintf(sess, sizeof sess, "r%d", k);
            snprintf(ev, sizeof ev, "r%d-%d", k, i);
            ts_buf_t *buf = ts_buf_from(ev, strlen(ev));
            assert_ts_err(ts_store_log_append(&t->st, S(sess), buf, on_bulk, &b), 0);
            ts_buf_unref(buf);
            b.pending++;
        }
        if (b.pending >= 1000 || i == from + n - 1)
            while (b.pending) uv_run(&t->loop, UV_RUN_ONCE);
    }
    return b.failed;
}

/* Every event of session r<k> from seq `after` + 1 to `last`, in pages of
 * SC_MAX_EVENTS, with its seq and text ("r<k>-<seq - 1>"); the session's
 * last seq is at least `last`. */
static void check_session(sc_t *t, int k, uint64_t after, uint64_t last) {
    char sess[16], want[32];
    snprintf(sess, sizeof sess, "r%d", k);
    sc_res_t r;
    while (after < last) {
        assert_ts_err(sc_read(t, sess, after, SC_MAX_EVENTS, &r), 0);
        assert_true(r.n > 0);
        for (size_t i = 0; i < r.n; i++) {
            assert_int_equal(r.seqs[i], after + 1 + i);
            snprintf(want, sizeof want, "r%d-%llu", k, (unsigned long long)(r.seqs[i] - 1));
            assert_string_equal(r.ev[i], want);
        }
        after = r.seqs[r.n - 1];
    }
    assert_true(r.last_seq >= last);
}

/* ---- schema upgrade ---- */

/* A new file is made with 8 KiB pages (sqlite_log.c says why), and keeps
 * them across a reopen. */
static void m_page_size(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    uint64_t seq;
    sc_open(&t, env, NULL);
    assert_ts_err(sc_append(&t, "p", "one", &seq), 0);
    sc_close(&t);
    assert_int_equal(sql_int_file(env->path, "PRAGMA page_size"), 8192);
    sc_res_t r;
    sc_open(&t, env, NULL);
    assert_ts_err(sc_read(&t, "p", 0, 10, &r), 0);
    assert_int_equal(r.n, 1);
    sc_close(&t);
    assert_int_equal(sql_int_file(env->path, "PRAGMA page_size"), 8192);
}

/* A version 1 file (the schema tabsyncd wrote before session history) is
 * upgraded at open, in one transaction, and everything in it is kept. */
static void m_migrate_v1(void **state) {
    sc_env_t *env = *state;
    sql_exec_file(env->path,
                  "PRAGMA journal_mode=WAL;"
                  "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
                  "CREATE TABLE sessions("
                  "  session BLOB PRIMARY KEY, last_seq INTEGER NOT NULL,"
                  "  trimmed INTEGER NOT NULL DEFAULT 0,"
                  "  state_ver INTEGER NOT NULL DEFAULT 0, state BLOB);"
                  "CREATE TABLE events("
                  "  session BLOB NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,"
                  "  PRIMARY KEY(session, seq)) WITHOUT ROWID;"
                  "CREATE TABLE lease_terms(name BLOB PRIMARY KEY, term INTEGER NOT NULL);"
                  "INSERT INTO meta(k, v) VALUES('schema', 1);"
                  /* a1: events only; a2: trimmed empty, with a state; a3: both */
                  "INSERT INTO events VALUES(CAST('a1' AS BLOB), 1, CAST('one' AS BLOB)),"
                  "  (CAST('a1' AS BLOB), 2, CAST('two' AS BLOB)),"
                  "  (CAST('a1' AS BLOB), 3, CAST('three' AS BLOB)),"
                  "  (CAST('a3' AS BLOB), 2, CAST('x2' AS BLOB)),"
                  "  (CAST('a3' AS BLOB), 3, CAST('x3' AS BLOB));"
                  "INSERT INTO sessions VALUES"
                  "  (CAST('a2' AS BLOB), 5, 5, 2, CAST('{\"v\":2}' AS BLOB)),"
                  "  (CAST('a3' AS BLOB), 3, 1, 0, NULL);"
                  "INSERT INTO lease_terms VALUES(CAST('L' AS BLOB), 7);");
    sc_t t;
    sc_res_t r;
    uint64_t seq, epochs[3];
    sc_open(&t, env, NULL);
    assert_int_equal(ts_store__mem_sql_exec(t.st.self, "SELECT 1 FROM clients"), 0);
    assert_ts_err(sc_read(&t, "a1", 0, 10, &r), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.last_seq, 3);
    assert_string_equal(r.ev[2], "three");
    assert_ts_err(sc_read(&t, "a2", 0, 10, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.last_seq, 5);
    assert_int_equal(r.trimmed, 5);
    assert_ts_err(sc_get(&t, "a2", &r), 0);
    assert_int_equal(r.version, 2);
    assert_string_equal(r.doc, "{\"v\":2}");
    assert_ts_err(sc_read(&t, "a3", 0, 10, &r), 0);
    assert_int_equal(r.trimmed, 1);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ev[0], "x2");
    static const char *const names[] = {"a1", "a2", "a3"};
    for (int i = 0; i < 3; i++) {
        assert_ts_err(sc_sess(&t, names[i], &r), 0);
        assert_true(r.epoch != 0);
        epochs[i] = r.epoch;
    }
    assert_true(epochs[0] != epochs[1] && epochs[1] != epochs[2]);
    assert_ts_err(sc_append(&t, "a1", "four", &seq), 0);
    assert_int_equal(seq, 4);
    assert_ts_err(sc_commit(&t, "a2", "six", "A", 1, SC_ANY, 1, &r), 0);
    assert_int_equal(r.seq, 6);
    assert_int_equal(r.epoch, epochs[1]);
    assert_ts_err(sc_acquire(&t, "L", "A", 60000, &r), 0);
    assert_int_equal(r.term, 8);
    sc_close(&t);
    assert_int_equal(sql_int_file(env->path, "SELECT v FROM meta WHERE k = 'schema'"), 3);
    /* an existing file keeps its page size (a new one gets 8 KiB: m_page_size) */
    assert_int_equal(sql_int_file(env->path, "PRAGMA page_size"), 4096);
    sc_open(&t, env, NULL); /* and a version 2 file opens as it is */
    for (int i = 0; i < 3; i++) {
        assert_ts_err(sc_sess(&t, names[i], &r), 0);
        assert_int_equal(r.epoch, epochs[i]);
    }
    assert_ts_err(sc_read(&t, "a1", 0, 10, &r), 0);
    assert_int_equal(r.n, 4);
    sc_close(&t);
    /* a version from the future is refused with a clear message */
    sql_exec_file(env->path, "UPDATE meta SET v = 4 WHERE k = 'schema'");
    char err[512];
    assert_ts_err(sc_open_with(&t, env, NULL, err, sizeof err), TS_ESTORE);
    assert_non_null(strstr(err, "schema version 4"));
    assert_int_equal(uv_loop_close(&t.loop), 0);
}


/* ---- the event index ---- */

/* Past TAIL_ROWS events a COMMIT writes the tail as runs: a row per
 * session per pass, not per event. Reads from anywhere in a run, a read
 * that needs the tail indexed first, a trim that ends inside a run, and a
 * reopen all see exactly the events appended. */
static void m_runs(void **state) {
    sc_env_t *env = *state;
    enum { NSESS = 3, PER = TAIL_ROWS / NSESS + 500 };
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, patch_ring_4);
    assert_int_equal(append_bulk(&t, NSESS, 0, PER), 0);
    /* 1,500 events past the pass are in the tail: a read of one of them
     * from the file indexes it first */
    check_session(&t, 1, PER - 600, PER);
    check_session(&t, 0, 100, 300); /* in the middle of the first run */
    sc_close(&t);
    assert_int_equal(sql_int_file(env->path, "SELECT COUNT(*) FROM events"), NSESS * PER);
    long runs = sql_int_file(env->path, "SELECT COUNT(*) FROM events_at");
    assert_true(runs >= 2 * NSESS && runs <= 4 * NSESS); /* passes x sessions, not events */
    assert_int_equal(sql_int_file(env->path, "SELECT MAX(rowid) FROM events"),
                     sql_int_file(env->path, "SELECT v FROM meta WHERE k = 'indexed'"));

    sc_open(&t, env, patch_ring_4);
    for (int k = 0; k < NSESS; k++) check_session(&t, k, 0, PER);
    /* a trim that ends inside a run keeps the rest of that run */
    assert_ts_err(sc_trim(&t, "r2", 1000), 0);
    check_session(&t, 2, 1000, PER);
    assert_ts_err(sc_read(&t, "r2", 0, 4, &r), 0);
    assert_int_equal(r.seqs[0], 1001);
    assert_int_equal(r.trimmed, 1000);
    uint64_t seq;
    char ev[32];
    snprintf(ev, sizeof ev, "r2-%d", PER);
    assert_ts_err(sc_append(&t, "r2", ev, &seq), 0);
    assert_int_equal(seq, PER + 1);
    sc_close(&t);
    assert_int_equal(sql_int_file(env->path, "SELECT COUNT(*) FROM events"),
                     NSESS * PER - 1000 + 1);

    sc_open(&t, env, patch_ring_4); /* sequences continue from the runs */
    assert_ts_err(sc_sess(&t, "r0", &r), 0);
    assert_int_equal(r.last_seq, PER);
    assert_ts_err(sc_sess(&t, "r2", &r), 0);
    assert_int_equal(r.last_seq, PER + 1);
    check_session(&t, 2, 1000, PER + 1);
    sc_close(&t);
}

/* A COMMIT that fails after its pass wrote runs for the batch's events:
 * the rollback reads the tail back from the file, and later lookups see
 * the committed events only, with no gap and no repeat after them. */
static void m_runs_rollback(void **state) {
    sc_env_t *env = *state;
    enum { NSESS = 2, BEFORE = TAIL_ROWS / NSESS - 200, FAILING = 400 };
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, patch_ring_4);
    assert_int_equal(append_bulk(&t, NSESS, 0, BEFORE), 0);
    assert_ts_err(ts_store__mem_sql_exec(t.st.self,
                                         "PRAGMA foreign_keys = ON;"
                                         "CREATE TABLE fk_parent(id INTEGER PRIMARY KEY);"
                                         "CREATE TABLE fk_child(p INTEGER REFERENCES fk_parent(id)"
                                         "  DEFERRABLE INITIALLY DEFERRED);"
                                         "CREATE TRIGGER boom AFTER INSERT ON events_at"
                                         "  BEGIN INSERT INTO fk_child VALUES(42); END;"),
                  0);
    /* the tail passes TAIL_ROWS in this batch: its COMMIT makes a pass,
     * the pass fires the trigger, the COMMIT fails */
    assert_int_equal(append_bulk(&t, NSESS, BEFORE, FAILING), NSESS * FAILING);
    assert_ts_err(ts_store__mem_sql_exec(t.st.self, "DROP TRIGGER boom"), 0);
    for (int k = 0; k < NSESS; k++) check_session(&t, k, BEFORE - 100, BEFORE);
    uint64_t seq;
    char ev[32];
    snprintf(ev, sizeof ev, "r0-%d", BEFORE);
    assert_ts_err(sc_append(&t, "r0", ev, &seq), 0);
    assert_int_equal(seq, BEFORE + 1);
    sc_close(&t);
    assert_int_equal(sql_int_file(env->path, "SELECT COUNT(*) FROM events"), NSESS * BEFORE + 1);
    sc_open(&t, env, patch_ring_4);
    check_session(&t, 0, 0, BEFORE + 1);
    check_session(&t, 1, 0, BEFORE);
    assert_ts_err(sc_sess(&t, "r1", &r), 0);
    assert_int_equal(r.last_seq, BEFORE);
    sc_close(&t);
}

/* A schema 2 file (events indexed by SQLite on (sid, seq)) is upgraded at
 * open: the index goes, its events become runs, a gap (events deleted by
 * hand, r2's 3: only the file is asked about r2) ending one. */
static void m_migrate_v2(void **state) {
    sc_env_t *env = *state;
    sql_exec_file(env->path,
                  "PRAGMA journal_mode=WAL;"
                  "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
                  "CREATE TABLE sessions("
                  "  sid INTEGER PRIMARY KEY, session BLOB NOT NULL UNIQUE,"
                  "  last_seq INTEGER NOT NULL, trimmed INTEGER NOT NULL DEFAULT 0,"
                  "  state_ver INTEGER NOT NULL DEFAULT 0, state BLOB,"
                  "  epoch INTEGER NOT NULL DEFAULT 0, hist_ver INTEGER NOT NULL DEFAULT 0,"
                  "  snap_seq INTEGER NOT NULL DEFAULT 0, snap_ver INTEGER NOT NULL DEFAULT 0,"
                  "  snap BLOB);"
                  "CREATE TABLE events(sid INTEGER NOT NULL, seq INTEGER NOT NULL,"
                  "  t INTEGER NOT NULL, data BLOB NOT NULL);"
                  "CREATE UNIQUE INDEX events_by_seq ON events(sid, seq);"
                  "CREATE TABLE clients(sid INTEGER NOT NULL, client BLOB NOT NULL,"
                  "  recs BLOB NOT NULL, PRIMARY KEY(sid, client)) WITHOUT ROWID;"
                  "CREATE TABLE lease_terms(name BLOB PRIMARY KEY, term INTEGER NOT NULL);"
                  "INSERT INTO meta(k, v) VALUES('schema', 2);"
                  "INSERT INTO sessions(sid, session, last_seq, trimmed, epoch) VALUES"
                  "  (1, CAST('r0' AS BLOB), 0, 0, 11), (2, CAST('r1' AS BLOB), 1, 1, 22),"
                  "  (3, CAST('r2' AS BLOB), 0, 0, 33);"
                  /* interleaved; r1 trimmed up to 1 */
                  "INSERT INTO events VALUES (1, 1, 5, CAST('r0-0' AS BLOB)),"
                  "  (2, 2, 5, CAST('r1-1' AS BLOB)), (1, 2, 5, CAST('r0-1' AS BLOB)),"
                  "  (2, 3, 5, CAST('r1-2' AS BLOB)), (1, 3, 5, CAST('r0-2' AS BLOB)),"
                  "  (2, 4, 5, CAST('r1-3' AS BLOB)), (2, 5, 5, CAST('r1-4' AS BLOB)),"
                  "  (3, 1, 5, CAST('r2-0' AS BLOB)), (3, 2, 5, CAST('r2-1' AS BLOB)),"
                  "  (3, 4, 5, CAST('r2-3' AS BLOB));");
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, patch_ring_4);
    check_session(&t, 0, 0, 3);
    check_session(&t, 1, 1, 5);
    assert_ts_err(sc_read(&t, "r1", 0, 10, &r), 0);
    assert_int_equal(r.seqs[0], 2);
    assert_int_equal(r.trimmed, 1);
    assert_int_equal(r.last_seq, 5);
    assert_ts_err(sc_sess(&t, "r1", &r), 0);
    assert_int_equal(r.epoch, 22);
    assert_ts_err(sc_sess(&t, "r2", &r), 0);
    assert_int_equal(r.last_seq, 4); /* from the run after the gap */
    uint64_t seq;
    assert_ts_err(sc_append(&t, "r1", "r1-5", &seq), 0);
    assert_int_equal(seq, 6);
    sc_close(&t);
    assert_int_equal(sql_int_file(env->path, "SELECT v FROM meta WHERE k = 'schema'"), 3);
    assert_int_equal(
        sql_int_file(env->path, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'events_by_seq'"),
        0);
    /* r0 1..3, r1 2..5, r2 1..2 and 4: four runs; r1's 6 is still in the tail */
    assert_int_equal(sql_int_file(env->path, "SELECT COUNT(*) FROM events_at"), 4);
    assert_int_equal(sql_int_file(env->path, "SELECT COUNT(*) FROM events_at WHERE sid = 3 AND "
                                             "seq = 4 AND length(rids) = 1"),
                     1);
}

/* A damaged run is a clear TS_ESTORE for the session it belongs to; other
 * sessions go on. */
static void m_runs_damaged(void **state) {
    sc_env_t *env = *state;
    sc_t t;
    sc_res_t r;
    sc_open(&t, env, patch_ring_4);
    assert_int_equal(append_bulk(&t, 3, 0, 20), 0);
    sc_close(&t);
    sc_open(&t, env, NULL); /* indexes the tail */
    sc_close(&t);
    assert_int_equal(sql_int_file(env->path, "SELECT COUNT(*) FROM events_at"), 3);
    sql_exec_file(env->path,
                  "UPDATE events_at SET rids = x'80' WHERE sid = (SELECT sid FROM sessions"
                  "  WHERE session = CAST('r0' AS BLOB));" /* a varint that never ends */
                  "DELETE FROM events WHERE seq = 10 AND sid = (SELECT sid FROM sessions"
                  "  WHERE session = CAST('r1' AS BLOB));");
    sc_open(&t, env, patch_ring_4);
    assert_ts_err(sc_sess(&t, "r0", &r), TS_ESTORE);    /* its last seq is in the run */
    assert_ts_err(sc_read(&t, "r1", 0, 20, &r), TS_ESTORE); /* a run points at nothing */
    check_session(&t, 2, 0, 20);
    sc_close(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        SC_T(m_page_size, &env_sql),  SC_T(m_migrate_v1, &env_sql),
        SC_T(m_migrate_v2, &env_sql), SC_T(m_runs, &env_sql),
        SC_T(m_runs_rollback, &env_sql), SC_T(m_runs_damaged, &env_sql),
    };
    int fails = cmocka_run_group_tests_name("memory backend: its SQLite file", tests, NULL, NULL);
    if (env_sql.dir[0]) rmdir(env_sql.dir);
    return fails ? 1 : 0;
}
