/* sqlite_log.c - what must survive a restart in the memory backend: event
 * logs, sequence numbers, state documents and lease terms, in one SQLite
 * file. WAL mode, synchronous=NORMAL, prepared statements, one transaction
 * per operation, run synchronously on the loop (docs/STORE.md has the cost).
 * The file is locked exclusively while open: two processes sharing it would
 * hand out the same sequence numbers. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "store/store_int.h"

#define SCHEMA_VERSION 1

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SESS_LOAD,
    ST_SESS_MAXSEQ,
    ST_EVENT_INSERT,
    ST_EVENT_READ,
    ST_EVENT_TRIM,
    ST_SESS_TRIM,
    ST_STATE_PUT,
    ST_TERM_GET,
    ST_TERM_PUT,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SESS_LOAD] = "SELECT last_seq, trimmed, state_ver, state FROM sessions WHERE session = ?1",
    [ST_SESS_MAXSEQ] = "SELECT MAX(seq) FROM events WHERE session = ?1",
    [ST_EVENT_INSERT] = "INSERT INTO events(session, seq, data) VALUES(?1, ?2, ?3)",
    [ST_EVENT_READ] = "SELECT seq, data FROM events WHERE session = ?1 AND seq >= ?2 "
                      "ORDER BY seq LIMIT ?3",
    [ST_EVENT_TRIM] = "DELETE FROM events WHERE session = ?1 AND seq <= ?2",
    [ST_SESS_TRIM] = "INSERT INTO sessions(session, last_seq, trimmed) VALUES(?1, ?3, ?2) "
                     "ON CONFLICT(session) DO UPDATE SET "
                     "last_seq = MAX(last_seq, excluded.last_seq), "
                     "trimmed = MAX(trimmed, excluded.trimmed)",
    [ST_STATE_PUT] = "INSERT INTO sessions(session, last_seq, state_ver, state) "
                     "VALUES(?1, 0, ?2, ?3) ON CONFLICT(session) DO UPDATE SET "
                     "state_ver = excluded.state_ver, state = excluded.state",
    [ST_TERM_GET] = "SELECT term FROM lease_terms WHERE name = ?1",
    [ST_TERM_PUT] = "INSERT INTO lease_terms(name, term) VALUES(?1, ?2) "
                    "ON CONFLICT(name) DO UPDATE SET term = excluded.term",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sessions("
    "  session BLOB PRIMARY KEY, last_seq INTEGER NOT NULL,"
    "  trimmed INTEGER NOT NULL DEFAULT 0,"
    "  state_ver INTEGER NOT NULL DEFAULT 0, state BLOB);"
    "CREATE TABLE IF NOT EXISTS events("
    "  session BLOB NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,"
    "  PRIMARY KEY(session, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS lease_terms(name BLOB PRIMARY KEY, term INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('schema', 1);";

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

static int begin(ts_store_sql_t *db) { return step_done(db, db->st[ST_BEGIN], "BEGIN"); }
static int commit(ts_store_sql_t *db) {
    int rc = step_done(db, db->st[ST_COMMIT], "COMMIT");
    if (rc && !sqlite3_get_autocommit(db->db)) step_done(db, db->st[ST_ROLLBACK], "ROLLBACK");
    return rc;
}
static int rollback(ts_store_sql_t *db, int rc) {
    if (!sqlite3_get_autocommit(db->db)) {
        sqlite3_step(db->st[ST_ROLLBACK]);
        done(db->st[ST_ROLLBACK]);
    }
    return rc;
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

int ts_store__sql_open(ts_store_sql_t **out, const char *path, char *err, size_t errlen) {
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
    if (sqlite3_exec(db->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "synchronous:");
    /* BEGIN IMMEDIATE takes the write lock now, so "locked by another
     * process" and "read-only file" are open errors, not first-write errors. */
    if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "lock:");
    if (sqlite3_exec(db->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        return open_fail(db, err, errlen, "schema:");
    }
    long version = -1;
    if (sqlite3_prepare_v2(db->db, "SELECT v FROM meta WHERE k = 'schema'", -1, &s, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) version = (long)sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(db, err, errlen, "commit:");
    if (version != SCHEMA_VERSION) {
        if (err && errlen)
            snprintf(err, errlen,
                     "store: SQLite file %s has schema version %ld, this tabsyncd knows %d", path,
                     version, SCHEMA_VERSION);
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
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(db->st[i]);
    if (db->db && sqlite3_close(db->db) != SQLITE_OK)
        ts_error("store", "closing SQLite file %s: %s", db->path, sqlite3_errmsg(db->db));
    free(db->path);
    free(db);
}

int ts_store__sql_sess_load(ts_store_sql_t *db, ts_slice_t sess, ts_store_sql_sess_t *out) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = db->st[ST_SESS_LOAD];
    bind_slice(s, 1, sess);
    int rc = sqlite3_step(s), found = 0;
    if (rc == SQLITE_ROW) {
        found = 1;
        out->last_seq = (uint64_t)sqlite3_column_int64(s, 0);
        out->trimmed = (uint64_t)sqlite3_column_int64(s, 1);
        out->state_ver = (uint64_t)sqlite3_column_int64(s, 2);
        if (out->state_ver && sqlite3_column_type(s, 3) != SQLITE_NULL) {
            const void *p = sqlite3_column_blob(s, 3);
            out->state = ts_buf_from(p ? p : "", (size_t)sqlite3_column_bytes(s, 3));
        } else {
            out->state_ver = 0;
        }
    } else if (rc != SQLITE_DONE) {
        done(s);
        return fail(db, "session load");
    }
    done(s);
    /* The newest event holds the sequence; sessions.last_seq only covers a
     * log trimmed empty. */
    s = db->st[ST_SESS_MAXSEQ];
    bind_slice(s, 1, sess);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        found = 1;
        out->last_seq = TS_MAX(out->last_seq, (uint64_t)sqlite3_column_int64(s, 0));
    }
    done(s);
    if (rc != SQLITE_ROW) {
        ts_buf_unref(out->state);
        memset(out, 0, sizeof *out);
        return fail(db, "session load");
    }
    return found ? 0 : TS_ENOTFOUND;
}

int ts_store__sql_append(ts_store_sql_t *db, ts_slice_t sess, uint64_t seq, ts_slice_t data) {
    /* One statement, so one implicit transaction: the event row also
     * carries the sequence number (see ts_store__sql_sess_load). */
    sqlite3_stmt *s = db->st[ST_EVENT_INSERT];
    bind_slice(s, 1, sess);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
    bind_slice(s, 3, data);
    return step_done(db, s, "event insert");
}

int ts_store__sql_read(ts_store_sql_t *db, ts_slice_t sess, uint64_t from, size_t max,
                       size_t max_bytes, ts_store_event_t *out, size_t *n) {
    *n = 0;
    sqlite3_stmt *s = db->st[ST_EVENT_READ];
    bind_slice(s, 1, sess);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)from);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)max);
    size_t bytes = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        if (*n > 0 && bytes + len > max_bytes) {
            rc = SQLITE_DONE;
            break;
        }
        const void *p = sqlite3_column_blob(s, 1);
        out[*n].seq = (uint64_t)sqlite3_column_int64(s, 0);
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

int ts_store__sql_trim(ts_store_sql_t *db, ts_slice_t sess, uint64_t upto, uint64_t last_seq) {
    int rc = begin(db);
    if (rc) return rc;
    sqlite3_stmt *s = db->st[ST_EVENT_TRIM];
    bind_slice(s, 1, sess);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)upto);
    if ((rc = step_done(db, s, "event trim"))) return rollback(db, rc);
    s = db->st[ST_SESS_TRIM];
    bind_slice(s, 1, sess);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)upto);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)last_seq);
    if ((rc = step_done(db, s, "trim mark"))) return rollback(db, rc);
    return commit(db);
}

int ts_store__sql_state_put(ts_store_sql_t *db, ts_slice_t sess, uint64_t ver, ts_slice_t doc) {
    sqlite3_stmt *s = db->st[ST_STATE_PUT];
    bind_slice(s, 1, sess);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)ver);
    bind_slice(s, 3, doc);
    return step_done(db, s, "state write");
}

int ts_store__sql_term_get(ts_store_sql_t *db, ts_slice_t name, uint64_t *term) {
    *term = 0;
    sqlite3_stmt *s = db->st[ST_TERM_GET];
    bind_slice(s, 1, name);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW)
        *term = (uint64_t)sqlite3_column_int64(s, 0);
    else if (rc != SQLITE_DONE)
        ret = fail(db, "lease term read");
    done(s);
    return ret;
}

int ts_store__sql_term_put(ts_store_sql_t *db, ts_slice_t name, uint64_t term) {
    sqlite3_stmt *s = db->st[ST_TERM_PUT];
    bind_slice(s, 1, name);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)term);
    return step_done(db, s, "lease term write");
}

int ts_store__sql_exec(ts_store_sql_t *db, const char *sql) {
    return sqlite3_exec(db->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(db, "exec");
}
