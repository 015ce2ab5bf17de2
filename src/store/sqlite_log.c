/* sqlite_log.c - what must survive a restart in the memory backend: event
 * logs, sequence numbers, session history (epochs, state versions,
 * snapshots, exactly-once windows), state documents and lease terms, in one
 * SQLite file. WAL mode, prepared statements, run synchronously on the
 * calling loop; transactions belong to the caller (the memory backend's
 * group commit, docs/STORE.md). The file is locked exclusively while open:
 * two processes sharing it would hand out the same sequence numbers.
 *
 * Layout (schema 2): events live in an append-only rowid table indexed by
 * (sid, seq), sid being the session row's integer key. Measured against the
 * version 1 layout, a (session, seq) WITHOUT ROWID table, it commits about
 * twice as many events per second when commits are spread over many
 * sessions (docs/STORE.md "Layout"). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "store/store_int.h"

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SESS_LOAD,
    ST_SESS_MAXSEQ,
    ST_SESS_CREATE,
    ST_SESS_META,
    ST_EVENT_INSERT,
    ST_EVENT_READ,
    ST_EVENT_TIME,
    ST_EVENT_TRIM,
    ST_SESS_TRIM,
    ST_STATE_PUT,
    ST_SNAP_PUT,
    ST_CLIENT_GET,
    ST_CLIENT_PUT,
    ST_TERM_GET,
    ST_TERM_PUT,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SESS_LOAD] = "SELECT sid, last_seq, trimmed, state_ver, state, epoch, hist_ver, "
                     "snap_seq, snap_ver, snap FROM sessions WHERE session = ?1",
    [ST_SESS_MAXSEQ] = "SELECT MAX(seq) FROM events WHERE sid = ?1",
    [ST_SESS_CREATE] = "INSERT INTO sessions(session, last_seq, epoch) VALUES(?1, 0, ?2)",
    [ST_SESS_META] = "UPDATE sessions SET epoch = ?2, hist_ver = ?3 WHERE sid = ?1",
    [ST_EVENT_INSERT] = "INSERT INTO events(sid, seq, t, data) VALUES(?1, ?2, ?3, ?4)",
    [ST_EVENT_READ] = "SELECT seq, data FROM events WHERE sid = ?1 AND seq >= ?2 AND seq <= ?3 "
                      "ORDER BY seq LIMIT ?4",
    [ST_EVENT_TIME] = "SELECT t FROM events WHERE sid = ?1 AND seq = ?2",
    [ST_EVENT_TRIM] = "DELETE FROM events WHERE sid = ?1 AND seq <= ?2",
    [ST_SESS_TRIM] = "UPDATE sessions SET last_seq = MAX(last_seq, ?3), "
                     "trimmed = MAX(trimmed, ?2) WHERE sid = ?1",
    [ST_STATE_PUT] = "UPDATE sessions SET state_ver = ?2, state = ?3 WHERE sid = ?1",
    [ST_SNAP_PUT] = "UPDATE sessions SET snap_seq = ?2, snap_ver = ?3, snap = ?4 WHERE sid = ?1",
    [ST_CLIENT_GET] = "SELECT recs FROM clients WHERE sid = ?1 AND client = ?2",
    [ST_CLIENT_PUT] = "INSERT INTO clients(sid, client, recs) VALUES(?1, ?2, ?3) "
                      "ON CONFLICT(sid, client) DO UPDATE SET recs = excluded.recs",
    [ST_TERM_GET] = "SELECT term FROM lease_terms WHERE name = ?1",
    [ST_TERM_PUT] = "INSERT INTO lease_terms(name, term) VALUES(?1, ?2) "
                    "ON CONFLICT(name) DO UPDATE SET term = excluded.term",
};

/* Schema 2. sessions.sid is an INTEGER PRIMARY KEY so that VACUUM never
 * renumbers it (events and clients refer to it). */
#define SESSIONS_V2                                                            \
    "CREATE TABLE sessions("                                                   \
    "  sid INTEGER PRIMARY KEY, session BLOB NOT NULL UNIQUE,"                 \
    "  last_seq INTEGER NOT NULL, trimmed INTEGER NOT NULL DEFAULT 0,"         \
    "  state_ver INTEGER NOT NULL DEFAULT 0, state BLOB,"                      \
    "  epoch INTEGER NOT NULL DEFAULT 0, hist_ver INTEGER NOT NULL DEFAULT 0," \
    "  snap_seq INTEGER NOT NULL DEFAULT 0, snap_ver INTEGER NOT NULL DEFAULT 0, snap BLOB);"
#define EVENTS_V2                                                              \
    "CREATE TABLE events(sid INTEGER NOT NULL, seq INTEGER NOT NULL,"          \
    "  t INTEGER NOT NULL, data BLOB NOT NULL);"                               \
    "CREATE UNIQUE INDEX events_by_seq ON events(sid, seq);"
#define CLIENTS_V2                                                             \
    "CREATE TABLE clients(sid INTEGER NOT NULL, client BLOB NOT NULL,"         \
    "  recs BLOB NOT NULL, PRIMARY KEY(sid, client)) WITHOUT ROWID;"

static const char schema_v2[] =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);" SESSIONS_V2 EVENTS_V2 CLIENTS_V2
    "CREATE TABLE lease_terms(name BLOB PRIMARY KEY, term INTEGER NOT NULL);"
    "INSERT INTO meta(k, v) VALUES('schema', 2);";

/* Version 1 -> 2: sessions gain an integer key and the history columns
 * (every session with events gets a row), events move to the rowid layout
 * keyed by sid with an append time (the upgrade's: retention counts from
 * it), clients is new. Epochs are set afterwards (random, from C). */
static const char migrate_v1[] =
    "ALTER TABLE sessions RENAME TO sessions_v1;" SESSIONS_V2
    "INSERT INTO sessions(session, last_seq, trimmed, state_ver, state)"
    "  SELECT session, last_seq, trimmed, state_ver, state FROM sessions_v1;"
    "INSERT INTO sessions(session, last_seq)"
    "  SELECT session, MAX(seq) FROM events"
    "  WHERE session NOT IN (SELECT session FROM sessions) GROUP BY session;"
    "ALTER TABLE events RENAME TO events_v1;" EVENTS_V2
    "INSERT INTO events(sid, seq, t, data)"
    "  SELECT s.sid, e.seq, ?1, e.data FROM events_v1 e JOIN sessions s USING(session)"
    "  ORDER BY s.sid, e.seq;"
    "DROP TABLE events_v1; DROP TABLE sessions_v1;" CLIENTS_V2
    "UPDATE meta SET v = 2 WHERE k = 'schema';";

struct ts_store_sql {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char *path;
    char errmsg[256];
};

const char *ts_store__sql_errmsg(const ts_store_sql_t *db) { return db->errmsg; }

/* Records the database's message and logs it once per failure. */
static int fail(ts_store_sql_t *db, const char *what) {
    snprintf(db->errmsg, sizeof db->errmsg, "store: SQLite %s on %s failed: %s", what, db->path,
             sqlite3_errmsg(db->db));
    ts_error("store", "%s", db->errmsg);
    return TS_ESTORE;
}

static void bind_slice(sqlite3_stmt *s, int i, ts_slice_t v) {
    /* Blobs compare bytewise, so ids need no NUL and no text encoding. */
    sqlite3_bind_blob(s, i, v.len ? (const void *)v.p : "", (int)v.len, SQLITE_STATIC);
}

static void bind_u64(sqlite3_stmt *s, int i, uint64_t v) {
    sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

static uint64_t col_u64(sqlite3_stmt *s, int i) { return (uint64_t)sqlite3_column_int64(s, i); }

static ts_buf_t *col_buf(sqlite3_stmt *s, int i) {
    if (sqlite3_column_type(s, i) == SQLITE_NULL) return NULL;
    const void *p = sqlite3_column_blob(s, i);
    return ts_buf_from(p ? p : "", (size_t)sqlite3_column_bytes(s, i));
}

static void done(sqlite3_stmt *s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows. */
static int step_done(ts_store_sql_t *db, sqlite3_stmt *s, const char *what) {
    int rc = sqlite3_step(s);
    int ret = rc == SQLITE_DONE ? 0 : fail(db, what);
    done(s);
    return ret;
}

int ts_store__sql_begin(ts_store_sql_t *db) { return step_done(db, db->st[ST_BEGIN], "BEGIN"); }

int ts_store__sql_commit(ts_store_sql_t *db) {
    int rc = step_done(db, db->st[ST_COMMIT], "COMMIT");
    if (rc) ts_store__sql_rollback(db);
    return rc;
}

void ts_store__sql_rollback(ts_store_sql_t *db) {
    if (sqlite3_get_autocommit(db->db)) return; /* SQLite rolled back already */
    sqlite3_step(db->st[ST_ROLLBACK]);
    done(db->st[ST_ROLLBACK]);
}

static int open_fail(ts_store_sql_t *db, char *err, size_t errlen, const char *what) {
    int code = sqlite3_errcode(db->db);
    const char *hint = "";
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        hint = " (is another tabsyncd using this file?)";
    else if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
        hint = " (not a tabsync database: move it away or pick another path)";
    else if (code == SQLITE_CANTOPEN || code == SQLITE_READONLY || code == SQLITE_PERM)
        hint = " (does the directory exist and is it writable?)";
    if (err && errlen)
        snprintf(err, errlen, "store: cannot use SQLite file %s: %s %s%s", db->path, what,
                 sqlite3_errmsg(db->db), hint);
    ts_store__sql_close(db);
    return TS_ESTORE;
}

/* -1: no meta table (a new file); else the schema version. */
static long schema_version(sqlite3 *db) {
    sqlite3_stmt *s = NULL;
    long v = -1;
    if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'schema'", -1, &s, NULL) ==
        SQLITE_OK) {
        v = sqlite3_step(s) == SQLITE_ROW ? (long)sqlite3_column_int64(s, 0) : 0;
        sqlite3_finalize(s);
    }
    return v;
}

static uint64_t new_epoch(void) {
    uint64_t e = 0;
    while (e == 0 || e > INT64_MAX) { /* stored as a positive SQLite integer */
        ts_random_bytes(&e, sizeof e);
        e >>= 1;
    }
    return e;
}

/* Inside the open transaction: version 1 -> 2, then a random epoch for
 * every session that came from version 1. */
static int migrate(sqlite3 *db) {
    sqlite3_stmt *s = NULL;
    const char *tail = migrate_v1;
    uint64_t now = ts_wall_ms();
    while (tail && *tail) {
        if (sqlite3_prepare_v2(db, tail, -1, &s, &tail) != SQLITE_OK) return -1;
        if (!s) break;
        if (sqlite3_bind_parameter_count(s) >= 1) sqlite3_bind_int64(s, 1, (sqlite3_int64)now);
        int rc = sqlite3_step(s);
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE) return -1;
    }
    sqlite3_stmt *sel = NULL, *upd = NULL;
    int ok = sqlite3_prepare_v2(db, "SELECT sid FROM sessions WHERE epoch = 0", -1, &sel, NULL) ==
                 SQLITE_OK &&
             sqlite3_prepare_v2(db, "UPDATE sessions SET epoch = ?2 WHERE sid = ?1", -1, &upd,
                                NULL) == SQLITE_OK;
    while (ok && sqlite3_step(sel) == SQLITE_ROW) {
        sqlite3_bind_int64(upd, 1, sqlite3_column_int64(sel, 0));
        sqlite3_bind_int64(upd, 2, (sqlite3_int64)new_epoch());
        ok = sqlite3_step(upd) == SQLITE_DONE;
        sqlite3_reset(upd);
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    return ok ? 0 : -1;
}

int ts_store__sql_open(ts_store_sql_t **out, const char *path, int sync_full, char *err,
                       size_t errlen) {
    *out = NULL;
    ts_store_sql_t *db = ts_xcalloc(1, sizeof *db);
    db->path = ts_xstrdup(path);
    int rc = sqlite3_open_v2(path, &db->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) return open_fail(db, err, errlen, "open:");
    sqlite3_extended_result_codes(db->db, 0);
    /* Exclusive locking before the first WAL access: no shared-memory file,
     * and a second process gets SQLITE_BUSY at open instead of sharing. */
    if (sqlite3_exec(db->db, "PRAGMA locking_mode=EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "locking_mode:");
    /* 8 KiB pages for a new file; an existing one keeps its size (SQLite
     * changes it only by a VACUUM outside WAL mode: docs/STORE.md). Fewer,
     * larger WAL frames: 1,000 sessions x 4 tabs flat out made 0.56 WAL
     * writes per envelope with 4 KiB pages and 0.28 with 8 KiB, and the
     * server's CPU per delivery fell from 5.59 to 5.35 us (the two builds,
     * 3 alternating runs; 5.96 -> 5.44 in a first sweep of page sizes);
     * 16 KiB gained nothing more, and at 4,000 publishes/s, where
     * a commit rewrites a few scattered pages, the bytes written grow with
     * the page: 13, 19, 32 and 100 MB/s for 4, 8, 16 and 64 KiB
     * (docs/PERFORMANCE.md "SQLite's page size"). */
    if (sqlite3_exec(db->db, "PRAGMA page_size=8192", NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "page_size:");
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "journal_mode:");
    rc = sqlite3_step(s);
    int wal = rc == SQLITE_ROW && sqlite3_column_text(s, 0) &&
              strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) return open_fail(db, err, errlen, "journal_mode:");
    if (!wal) {
        if (err && errlen)
            snprintf(err, errlen, "store: SQLite file %s cannot use WAL journaling", path);
        ts_store__sql_close(db);
        return TS_ESTORE;
    }
    /* FULL: every COMMIT fsyncs the WAL, so an acknowledged write survives
     * a power loss too (docs/STORE.md "Durability"). */
    if (sqlite3_exec(db->db, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF",
                     NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "synchronous:");
    /* BEGIN IMMEDIATE takes the write lock now, so "locked by another
     * process" and "read-only file" are open errors, not first-write errors. */
    if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "lock:");
    long version = schema_version(db->db);
    const char *what = NULL;
    if (version == -1 && sqlite3_exec(db->db, schema_v2, NULL, NULL, NULL) != SQLITE_OK)
        what = "schema:";
    else if (version == 1 && migrate(db->db) != 0)
        what = "upgrade from schema 1:";
    if (what) {
        /* the message first: ROLLBACK replaces it */
        int code = sqlite3_errcode(db->db);
        char msg[160];
        snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db->db));
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        if (err && errlen)
            snprintf(err, errlen, "store: cannot use SQLite file %s: %s %s%s", path, what, msg,
                     code == SQLITE_FULL ? " (disk full?)" : "");
        ts_store__sql_close(db);
        return TS_ESTORE;
    }
    if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "commit:");
    if (version == 1) ts_info("store", "SQLite file %s upgraded to schema 2", path);
    if (version != -1 && version != 1 && version != TS_STORE_SQL_SCHEMA) {
        if (err && errlen)
            snprintf(err, errlen,
                     "store: SQLite file %s has schema version %ld, this tabsyncd knows %d", path,
                     version, TS_STORE_SQL_SCHEMA);
        ts_store__sql_close(db);
        return TS_ESTORE;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(db->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->st[i],
                               NULL) != SQLITE_OK)
            return open_fail(db, err, errlen, "prepare:");
    }
    *out = db;
    return 0;
}

void ts_store__sql_close(ts_store_sql_t *db) {
    if (!db) return;
    if (db->db && !sqlite3_get_autocommit(db->db))
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(db->st[i]);
    if (db->db && sqlite3_close(db->db) != SQLITE_OK)
        ts_error("store", "closing SQLite file %s: %s", db->path, sqlite3_errmsg(db->db));
    free(db->path);
    free(db);
}

void ts_store__sql_sess_free(ts_store_sql_sess_t *row) {
    ts_buf_unref(row->state);
    ts_buf_unref(row->snap);
    row->state = row->snap = NULL;
}

int ts_store__sql_sess_load(ts_store_sql_t *db, ts_slice_t sess, ts_store_sql_sess_t *out) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = db->st[ST_SESS_LOAD];
    bind_slice(s, 1, sess);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        done(s);
        return TS_ENOTFOUND;
    }
    if (rc != SQLITE_ROW) {
        done(s);
        return fail(db, "session load");
    }
    out->sid = sqlite3_column_int64(s, 0);
    out->last_seq = col_u64(s, 1);
    out->trimmed = col_u64(s, 2);
    out->state_ver = col_u64(s, 3);
    out->state = out->state_ver ? col_buf(s, 4) : NULL;
    if (!out->state) out->state_ver = 0;
    out->epoch = col_u64(s, 5);
    out->hist_ver = col_u64(s, 6);
    out->snap_seq = col_u64(s, 7);
    out->snap_ver = col_u64(s, 8);
    out->snap = out->snap_seq ? col_buf(s, 9) : NULL;
    if (!out->snap) out->snap_seq = out->snap_ver = 0;
    done(s);
    /* The newest event holds the sequence; sessions.last_seq only covers a
     * log trimmed empty. */
    s = db->st[ST_SESS_MAXSEQ];
    sqlite3_bind_int64(s, 1, out->sid);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        out->last_seq = TS_MAX(out->last_seq, col_u64(s, 0));
    done(s);
    if (rc != SQLITE_ROW) {
        ts_store__sql_sess_free(out);
        memset(out, 0, sizeof *out);
        return fail(db, "session load");
    }
    return 0;
}

int ts_store__sql_sess_create(ts_store_sql_t *db, ts_slice_t sess, uint64_t epoch,
                              int64_t *sid) {
    sqlite3_stmt *s = db->st[ST_SESS_CREATE];
    bind_slice(s, 1, sess);
    bind_u64(s, 2, epoch);
    int rc = step_done(db, s, "session insert");
    *sid = rc ? 0 : sqlite3_last_insert_rowid(db->db);
    return rc;
}

int ts_store__sql_sess_meta(ts_store_sql_t *db, int64_t sid, uint64_t epoch, uint64_t hist_ver) {
    sqlite3_stmt *s = db->st[ST_SESS_META];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, epoch);
    bind_u64(s, 3, hist_ver);
    return step_done(db, s, "session update");
}

int ts_store__sql_append(ts_store_sql_t *db, int64_t sid, uint64_t seq, uint64_t t,
                         ts_slice_t data) {
    sqlite3_stmt *s = db->st[ST_EVENT_INSERT];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, seq);
    bind_u64(s, 3, t);
    bind_slice(s, 4, data);
    return step_done(db, s, "event insert");
}

int ts_store__sql_read(ts_store_sql_t *db, int64_t sid, uint64_t from, uint64_t to, size_t max,
                       size_t max_bytes, ts_store_event_t *out, size_t *n) {
    *n = 0;
    sqlite3_stmt *s = db->st[ST_EVENT_READ];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, from);
    bind_u64(s, 3, to);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)max);
    size_t bytes = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        if (*n > 0 && bytes + len > max_bytes) {
            rc = SQLITE_DONE;
            break;
        }
        const void *p = sqlite3_column_blob(s, 1);
        out[*n].seq = col_u64(s, 0);
        out[*n].data = ts_buf_from(p ? p : "", len);
        bytes += len;
        (*n)++;
    }
    int ret = rc == SQLITE_DONE ? 0 : fail(db, "event read");
    done(s);
    if (ret) {
        for (size_t i = 0; i < *n; i++) ts_buf_unref(out[i].data);
        *n = 0;
    }
    return ret;
}

int ts_store__sql_event_time(ts_store_sql_t *db, int64_t sid, uint64_t seq, uint64_t *t) {
    sqlite3_stmt *s = db->st[ST_EVENT_TIME];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, seq);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW)
        *t = col_u64(s, 0);
    else
        ret = rc == SQLITE_DONE ? TS_ENOTFOUND : fail(db, "event time");
    done(s);
    return ret;
}

int ts_store__sql_trim(ts_store_sql_t *db, int64_t sid, uint64_t upto, uint64_t last_seq) {
    sqlite3_stmt *s = db->st[ST_EVENT_TRIM];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, upto);
    int rc = step_done(db, s, "event trim");
    if (rc) return rc;
    s = db->st[ST_SESS_TRIM];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, upto);
    bind_u64(s, 3, last_seq);
    return step_done(db, s, "trim mark");
}

int ts_store__sql_state_put(ts_store_sql_t *db, int64_t sid, uint64_t ver, ts_slice_t doc) {
    sqlite3_stmt *s = db->st[ST_STATE_PUT];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, ver);
    bind_slice(s, 3, doc);
    return step_done(db, s, "state write");
}

int ts_store__sql_snap_put(ts_store_sql_t *db, int64_t sid, uint64_t seq, uint64_t ver,
                           ts_slice_t doc) {
    sqlite3_stmt *s = db->st[ST_SNAP_PUT];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, seq);
    bind_u64(s, 3, ver);
    bind_slice(s, 4, doc);
    return step_done(db, s, "snapshot write");
}

int ts_store__sql_client_get(ts_store_sql_t *db, int64_t sid, ts_slice_t client,
                             ts_buf_t **recs) {
    *recs = NULL;
    sqlite3_stmt *s = db->st[ST_CLIENT_GET];
    sqlite3_bind_int64(s, 1, sid);
    bind_slice(s, 2, client);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW)
        *recs = col_buf(s, 0);
    else
        ret = rc == SQLITE_DONE ? TS_ENOTFOUND : fail(db, "client read");
    done(s);
    return ret;
}

int ts_store__sql_client_put(ts_store_sql_t *db, int64_t sid, ts_slice_t client,
                             ts_slice_t recs) {
    sqlite3_stmt *s = db->st[ST_CLIENT_PUT];
    sqlite3_bind_int64(s, 1, sid);
    bind_slice(s, 2, client);
    bind_slice(s, 3, recs);
    return step_done(db, s, "client write");
}

int ts_store__sql_term_get(ts_store_sql_t *db, ts_slice_t name, uint64_t *term) {
    *term = 0;
    sqlite3_stmt *s = db->st[ST_TERM_GET];
    bind_slice(s, 1, name);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW)
        *term = col_u64(s, 0);
    else if (rc != SQLITE_DONE)
        ret = fail(db, "lease term read");
    done(s);
    return ret;
}

int ts_store__sql_term_put(ts_store_sql_t *db, ts_slice_t name, uint64_t term) {
    sqlite3_stmt *s = db->st[ST_TERM_PUT];
    bind_slice(s, 1, name);
    bind_u64(s, 2, term);
    return step_done(db, s, "lease term write");
}

int ts_store__sql_exec(ts_store_sql_t *db, const char *sql) {
    return sqlite3_exec(db->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(db, "exec");
}
