/* sqlite_log.c - what must survive a restart in the memory backend: event
 * logs, sequence numbers, session history (epochs, state versions,
 * snapshots, exactly-once windows), state documents and lease terms, in one
 * SQLite file. WAL mode, prepared statements, run synchronously on the
 * calling loop; transactions belong to the caller (the memory backend's
 * group commit, docs/STORE.md). The file is locked exclusively while open:
 * two processes sharing it would hand out the same sequence numbers.
 *
 * Layout (schema 3): events live in an append-only rowid table, sid being
 * the session row's integer key, and are found through events_at: a row per
 * run of a session's consecutive events, (sid, first seq) -> their rowids.
 * This file writes those rows for the events appended since its last pass
 * ("the tail", kept in memory) in one sorted pass: a row per session, not
 * per event. An index maintained by SQLite at every append dirtied a leaf
 * page per session per batch: with 1,000 sessions flat out, most of the
 * WAL's frames and its checkpoints' reads, 0.8 us of server CPU per
 * delivery (docs/STORE.md "Layout"). The tail is indexed before anything
 * looks a session's events up, at a COMMIT once it holds
 * TS_STORE_SQL_TAIL_ROWS events, and at open, so every lookup sees all
 * events and never scans. */
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
    ST_SESS_LAST,
    ST_SESS_CREATE,
    ST_SESS_META,
    ST_EVENT_INSERT,
    ST_EVENT_GET,
    ST_EVENT_DEL,
    ST_AT_RANGE,
    ST_AT_PUT,
    ST_AT_TRIM,
    ST_AT_MARK,
    ST_TAIL_LOAD,
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
    [ST_SESS_LAST] = "SELECT seq, rids FROM events_at WHERE sid = ?1 ORDER BY seq DESC LIMIT 1",
    [ST_SESS_CREATE] = "INSERT INTO sessions(session, last_seq, epoch) VALUES(?1, 0, ?2)",
    [ST_SESS_META] = "UPDATE sessions SET epoch = ?2, hist_ver = ?3 WHERE sid = ?1",
    [ST_EVENT_INSERT] = "INSERT INTO events(rowid, sid, seq, t, data) VALUES(?5, ?1, ?2, ?3, ?4)",
    [ST_EVENT_GET] = "SELECT t, data FROM events WHERE rowid = ?1",
    [ST_EVENT_DEL] = "DELETE FROM events WHERE rowid = ?1",
    /* The runs that hold events ?2..?3: the last one starting at or before
     * ?2, and those starting after it up to ?3. */
    [ST_AT_RANGE] = "SELECT seq, rids FROM events_at WHERE sid = ?1 AND seq <= ?3 AND seq >= "
                    "(SELECT IFNULL(MAX(seq), 0) FROM events_at WHERE sid = ?1 AND seq <= ?2) "
                    "ORDER BY seq",
    /* OR REPLACE: a pass that failed inside a batch that went on may have
     * written some of its runs; the next pass writes them again, longer. */
    [ST_AT_PUT] = "INSERT OR REPLACE INTO events_at(sid, seq, rids) VALUES(?1, ?2, ?3)",
    [ST_AT_TRIM] = "DELETE FROM events_at WHERE sid = ?1 AND seq <= ?2",
    [ST_AT_MARK] = "UPDATE meta SET v = ?1 WHERE k = 'indexed'",
    [ST_TAIL_LOAD] = "SELECT sid, seq, rowid FROM events WHERE rowid > ?1 ORDER BY rowid",
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

/* Schema 3: events_at replaces the index. A row is a run of a session's
 * consecutive events: its first seq and their rowids (run_encode). meta
 * 'indexed' is the highest events rowid the runs cover; rowids are given by
 * this file and never reused (next_rid), so "rowid > indexed" is exactly
 * the tail. */
#define EVENTS_AT_V3                                                           \
    "CREATE TABLE events_at(sid INTEGER NOT NULL, seq INTEGER NOT NULL,"       \
    "  rids BLOB NOT NULL, PRIMARY KEY(sid, seq)) WITHOUT ROWID;"

static const char schema_v3[] =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);" SESSIONS_V2
    "CREATE TABLE events(sid INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  t INTEGER NOT NULL, data BLOB NOT NULL);" EVENTS_AT_V3 CLIENTS_V2
    "CREATE TABLE lease_terms(name BLOB PRIMARY KEY, term INTEGER NOT NULL);"
    "INSERT INTO meta(k, v) VALUES('schema', 3), ('indexed', 0);";

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

/* Version 2 -> 3: the index goes; with nothing indexed, the whole events
 * table is the tail, which the open then indexes. */
static const char migrate_v2[] =
    EVENTS_AT_V3 "DROP INDEX events_by_seq;"
    "INSERT INTO meta(k, v) VALUES('indexed', 0);"
    "UPDATE meta SET v = 3 WHERE k = 'schema';";

typedef struct tail_row {
    int64_t sid, rid;
    uint64_t seq;
} tail_row_t;

struct ts_store_sql {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int64_t indexed;  /* events_at covers the events with rowid <= indexed */
    int64_t next_rid; /* the rowid of the next append: above every used one */
    tail_row_t *tail; /* the events above `indexed` (a pass sorts them) */
    size_t ntail, tail_cap;
    int tail_lost; /* reading the tail failed: read it before the next pass */
    uint8_t *enc; /* run_encode's scratch */
    size_t enc_cap;
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

/* ------------------------------------------------------------------ runs */

/* A run's rowids, as LEB128 varints: the first, then each one's distance
 * from the one before (rowids only grow): 2-3 bytes an event. */
static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    for (; v >= 0x80; v >>= 7) p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* Encodes the rowids of rows[0..n) into db->enc; returns its length. */
static size_t run_encode(ts_store_sql_t *db, const tail_row_t *rows, size_t n) {
    if (n * 10 > db->enc_cap) {
        db->enc_cap = n * 10;
        db->enc = ts_xrealloc(db->enc, db->enc_cap);
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += put_varint(db->enc + len, (uint64_t)(rows[i].rid - (i ? rows[i - 1].rid : 0)));
    return len;
}

typedef struct run {
    const uint8_t *p, *end; /* borrows the statement's column */
    int64_t rid;
} run_t;

static void run_open(run_t *r, sqlite3_stmt *s, int col) {
    r->p = sqlite3_column_blob(s, col);
    r->end = r->p + sqlite3_column_bytes(s, col);
    r->rid = 0;
}

/* The run's next rowid: 1 (in *rid), 0 at its end, -1 if malformed. */
static int run_next(run_t *r, int64_t *rid) {
    if (r->p == r->end) return 0;
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (r->p == r->end || shift > 63) return -1;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    if (v == 0 || v > (uint64_t)(INT64_MAX - r->rid)) return -1;
    *rid = r->rid += (int64_t)v;
    return 1;
}

/* *last = the seq of the last event of a run starting at `first`; -1 if
 * the run is malformed or empty. */
static int run_last(run_t *r, uint64_t first, uint64_t *last) {
    int64_t rid;
    uint64_t n = 0;
    int k;
    while ((k = run_next(r, &rid)) > 0) n++;
    if (k < 0 || n == 0) return -1;
    *last = first + n - 1;
    return 0;
}

static int corrupt(ts_store_sql_t *db, int64_t sid, uint64_t seq) {
    snprintf(db->errmsg, sizeof db->errmsg,
             "store: SQLite file %s: its event index is damaged at session row %lld, seq %llu",
             db->path, (long long)sid, (unsigned long long)seq);
    ts_error("store", "%s", db->errmsg);
    return TS_ESTORE;
}

/* ------------------------------------------------------------------ tail */

static void tail_push(ts_store_sql_t *db, int64_t sid, uint64_t seq, int64_t rid) {
    if (db->ntail == db->tail_cap) {
        db->tail_cap = db->tail_cap ? db->tail_cap * 2 : 1024;
        db->tail = ts_xrealloc(db->tail, db->tail_cap * sizeof *db->tail);
    }
    db->tail[db->ntail++] = (tail_row_t){.sid = sid, .rid = rid, .seq = seq};
}

/* One integer from a query with no parameters; `dflt` if it has no row, a
 * NULL, or fails. */
static int64_t query_int(sqlite3 *db, const char *sql, int64_t dflt) {
    sqlite3_stmt *s = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW &&
        sqlite3_column_type(s, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Reads the tail from the file (at open, after a rollback). next_rid only
 * grows, so a rowid is never given twice. If the read fails, the tail is
 * read again before the next pass (tail_lost). */
static int load_tail(ts_store_sql_t *db) {
    db->indexed = query_int(db->db, "SELECT v FROM meta WHERE k = 'indexed'", -1);
    int64_t top = query_int(db->db, "SELECT MAX(rowid) FROM events", 0);
    db->ntail = 0;
    db->tail_lost = 1;
    if (db->indexed < 0) return fail(db, "index mark read");
    db->next_rid = TS_MAX(db->next_rid, TS_MAX(top, db->indexed) + 1);
    sqlite3_stmt *s = db->st[ST_TAIL_LOAD];
    sqlite3_bind_int64(s, 1, db->indexed);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        tail_push(db, sqlite3_column_int64(s, 0), col_u64(s, 1), sqlite3_column_int64(s, 2));
    done(s);
    if (rc != SQLITE_DONE) return fail(db, "tail read");
    db->tail_lost = 0;
    return 0;
}

static int cmp_tail(const void *a, const void *b) {
    const tail_row_t *x = a, *y = b;
    if (x->sid != y->sid) return x->sid < y->sid ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes the tail's runs, sorted so that each leaf of events_at is written
 * once, and the mark. */
static int write_runs(ts_store_sql_t *db) {
    tail_row_t *r = db->tail;
    qsort(r, db->ntail, sizeof *r, cmp_tail);
    for (size_t i = 0, j; i < db->ntail; i = j) {
        for (j = i + 1; j < db->ntail && r[j].sid == r[i].sid && r[j].seq == r[j - 1].seq + 1; j++)
            ;
        size_t len = run_encode(db, r + i, j - i);
        sqlite3_stmt *s = db->st[ST_AT_PUT];
        sqlite3_bind_int64(s, 1, r[i].sid);
        bind_u64(s, 2, r[i].seq);
        sqlite3_bind_blob(s, 3, db->enc, (int)len, SQLITE_STATIC);
        if (step_done(db, s, "event index")) return TS_ESTORE;
    }
    sqlite3_stmt *s = db->st[ST_AT_MARK];
    sqlite3_bind_int64(s, 1, db->next_rid - 1);
    return step_done(db, s, "event index mark");
}

int ts_store__sql_begin(ts_store_sql_t *db) { return step_done(db, db->st[ST_BEGIN], "BEGIN"); }

/* Indexes the tail, inside the caller's transaction or, if there is none,
 * in one of its own. Once its runs are written the tail is empty; if the
 * transaction then rolls back, the rollback reads it again. */
static int index_tail(ts_store_sql_t *db) {
    if (db->tail_lost && load_tail(db)) return TS_ESTORE;
    if (!db->ntail) return 0;
    int own = sqlite3_get_autocommit(db->db);
    if (own && ts_store__sql_begin(db)) return TS_ESTORE;
    int rc = write_runs(db);
    if (!rc) {
        db->indexed = db->next_rid - 1;
        db->ntail = 0;
    }
    if (own && rc) ts_store__sql_rollback(db);
    if (own && !rc) rc = ts_store__sql_commit(db);
    return rc;
}

int ts_store__sql_commit(ts_store_sql_t *db) {
    int rc = db->ntail >= TS_STORE_SQL_TAIL_ROWS ? index_tail(db) : 0;
    if (!rc) rc = step_done(db, db->st[ST_COMMIT], "COMMIT");
    if (rc) ts_store__sql_rollback(db);
    return rc;
}

void ts_store__sql_rollback(ts_store_sql_t *db) {
    if (!sqlite3_get_autocommit(db->db)) { /* else SQLite rolled back already */
        sqlite3_step(db->st[ST_ROLLBACK]);
        done(db->st[ST_ROLLBACK]);
    }
    load_tail(db); /* the batch's appends and any pass in it are undone */
}

/* Calls visit for each event of the runs that hold sid's events from..to,
 * in seq order (events of those runs outside from..to too: the visitor
 * skips them), until it returns 1 (stop) or an error. Returns 0 or the
 * error. */
typedef int (*run_visit_fn)(ts_store_sql_t *db, void *ctx, uint64_t seq, int64_t rid);

static int walk_runs(ts_store_sql_t *db, int64_t sid, uint64_t from, uint64_t to,
                     run_visit_fn visit, void *ctx) {
    if (index_tail(db)) return TS_ESTORE;
    sqlite3_stmt *s = db->st[ST_AT_RANGE];
    sqlite3_bind_int64(s, 1, sid);
    bind_u64(s, 2, from);
    bind_u64(s, 3, to);
    int rc, v = 0;
    while (v == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        run_t r;
        run_open(&r, s, 1);
        uint64_t first = col_u64(s, 0), seq = first;
        int64_t rid;
        int k = 1;
        while (v == 0 && (k = run_next(&r, &rid)) > 0) v = visit(db, ctx, seq++, rid);
        if (k < 0 || seq == first) v = corrupt(db, sid, first);
    }
    int ret = v < 0 ? v : v == 0 && rc != SQLITE_DONE ? fail(db, "event index read") : 0;
    done(s);
    return ret;
}

/* The event at rowid rid: its time and (if data) its bytes, returned new. */
static int event_get(ts_store_sql_t *db, int64_t sid, uint64_t seq, int64_t rid, uint64_t *t,
                     ts_buf_t **data) {
    sqlite3_stmt *s = db->st[ST_EVENT_GET];
    sqlite3_bind_int64(s, 1, rid);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        *t = col_u64(s, 0);
        if (data) *data = col_buf(s, 1);
    } else {
        ret = rc == SQLITE_DONE ? corrupt(db, sid, seq) : fail(db, "event read");
    }
    done(s);
    return ret;
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
    if (version == -1 && sqlite3_exec(db->db, schema_v3, NULL, NULL, NULL) != SQLITE_OK)
        what = "schema:";
    else if (version == 1 && migrate(db->db) != 0)
        what = "upgrade from schema 1:";
    else if ((version == 1 || version == 2) &&
             sqlite3_exec(db->db, migrate_v2, NULL, NULL, NULL) != SQLITE_OK)
        what = "upgrade from schema 2:";
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
    if (version == 1 || version == 2)
        ts_info("store", "SQLite file %s upgraded from schema %ld to %d", path, version,
                TS_STORE_SQL_SCHEMA);
    if (version != -1 && version != 1 && version != 2 && version != TS_STORE_SQL_SCHEMA) {
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
    if (load_tail(db) || index_tail(db)) /* what a crash (or an upgrade) left */
        return open_fail(db, err, errlen, "event index:");
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
    free(db->tail);
    free(db->enc);
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
    if (index_tail(db)) {
        ts_store__sql_sess_free(out);
        memset(out, 0, sizeof *out);
        return TS_ESTORE;
    }
    s = db->st[ST_SESS_LAST];
    sqlite3_bind_int64(s, 1, out->sid);
    rc = sqlite3_step(s);
    int ret = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(db, "session load");
    if (rc == SQLITE_ROW) {
        run_t r;
        run_open(&r, s, 1);
        uint64_t last;
        if (run_last(&r, col_u64(s, 0), &last))
            ret = corrupt(db, out->sid, col_u64(s, 0));
        else
            out->last_seq = TS_MAX(out->last_seq, last);
    }
    done(s);
    if (ret) {
        ts_store__sql_sess_free(out);
        memset(out, 0, sizeof *out);
    }
    return ret;
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
    sqlite3_bind_int64(s, 5, db->next_rid);
    int rc = step_done(db, s, "event insert");
    if (!rc) tail_push(db, sid, seq, db->next_rid++);
    return rc;
}

typedef struct read_ctx {
    int64_t sid;
    uint64_t from, to;
    size_t max, max_bytes, bytes, n;
    ts_store_event_t *out;
} read_ctx_t;

static int visit_read(ts_store_sql_t *db, void *ctx, uint64_t seq, int64_t rid) {
    read_ctx_t *c = ctx;
    if (seq < c->from) return 0;
    if (seq > c->to || c->n == c->max) return 1;
    uint64_t t;
    ts_buf_t *data;
    int rc = event_get(db, c->sid, seq, rid, &t, &data);
    if (rc) return rc;
    if (c->n > 0 && c->bytes + data->len > c->max_bytes) {
        ts_buf_unref(data);
        return 1;
    }
    c->out[c->n].seq = seq;
    c->out[c->n++].data = data;
    c->bytes += data->len;
    return 0;
}

int ts_store__sql_read(ts_store_sql_t *db, int64_t sid, uint64_t from, uint64_t to, size_t max,
                       size_t max_bytes, ts_store_event_t *out, size_t *n) {
    read_ctx_t c = {.sid = sid, .from = from, .to = to, .max = max, .max_bytes = max_bytes, .out = out};
    int ret = max ? walk_runs(db, sid, from, to, visit_read, &c) : 0;
    if (ret) {
        for (size_t i = 0; i < c.n; i++) ts_buf_unref(out[i].data);
        c.n = 0;
    }
    *n = c.n;
    return ret;
}

typedef struct time_ctx {
    int64_t sid;
    uint64_t seq, t;
    int found;
} time_ctx_t;

static int visit_time(ts_store_sql_t *db, void *ctx, uint64_t seq, int64_t rid) {
    time_ctx_t *c = ctx;
    if (seq < c->seq) return 0;
    if (seq > c->seq) return 1;
    int rc = event_get(db, c->sid, seq, rid, &c->t, NULL);
    c->found = !rc;
    return rc ? rc : 1;
}

int ts_store__sql_event_time(ts_store_sql_t *db, int64_t sid, uint64_t seq, uint64_t *t) {
    time_ctx_t c = {.sid = sid, .seq = seq};
    int rc = walk_runs(db, sid, seq, seq, visit_time, &c);
    if (rc) return rc;
    if (!c.found) return TS_ENOTFOUND;
    *t = c.t;
    return 0;
}

/* Trimming collects what goes, and what stays of the run holding `upto`,
 * before it changes events_at (walk_runs is reading it). */
typedef struct trim_ctx {
    uint64_t upto;
    tail_row_t *rows; /* [0, ngone): rowids to delete; then what stays */
    size_t n, ngone, cap;
} trim_ctx_t;

static int visit_trim(ts_store_sql_t *db, void *ctx, uint64_t seq, int64_t rid) {
    (void)db;
    trim_ctx_t *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->rows = ts_xrealloc(c->rows, c->cap * sizeof *c->rows);
    }
    c->rows[c->n++] = (tail_row_t){.rid = rid, .seq = seq};
    if (seq <= c->upto) c->ngone = c->n;
    return 0;
}

int ts_store__sql_trim(ts_store_sql_t *db, int64_t sid, uint64_t upto, uint64_t last_seq) {
    trim_ctx_t c = {.upto = upto};
    int rc = walk_runs(db, sid, 0, upto, visit_trim, &c);
    for (size_t i = 0; !rc && i < c.ngone; i++) {
        sqlite3_stmt *s = db->st[ST_EVENT_DEL];
        sqlite3_bind_int64(s, 1, c.rows[i].rid);
        rc = step_done(db, s, "event trim");
    }
    if (!rc) {
        sqlite3_stmt *s = db->st[ST_AT_TRIM];
        sqlite3_bind_int64(s, 1, sid);
        bind_u64(s, 2, upto);
        rc = step_done(db, s, "event trim");
    }
    if (!rc && c.n > c.ngone) { /* the run that held upto, from upto + 1 on */
        size_t len = run_encode(db, c.rows + c.ngone, c.n - c.ngone);
        sqlite3_stmt *s = db->st[ST_AT_PUT];
        sqlite3_bind_int64(s, 1, sid);
        bind_u64(s, 2, c.rows[c.ngone].seq);
        sqlite3_bind_blob(s, 3, db->enc, (int)len, SQLITE_STATIC);
        rc = step_done(db, s, "event trim");
    }
    free(c.rows);
    if (rc) return rc;
    sqlite3_stmt *s = db->st[ST_SESS_TRIM];
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
