/* store_int.h - private to src/store: the SQLite persistence the memory
 * backend writes through (sqlite_log.c). Every write runs inside the
 * transaction the caller opened with ts_store__sql_begin (the memory
 * backend's batch, docs/STORE.md "Group commit"); a failed statement leaves
 * that transaction to be rolled back by the caller. The database's message
 * for the last failure is in ts_store__sql_errmsg. */
#ifndef TS_STORE_INT_H
#define TS_STORE_INT_H
#include <stddef.h>
#include <stdint.h>

#include "store/ts_store.h"

typedef struct ts_store_sql ts_store_sql_t;

/* A session row. sid is the row's stable integer key: events and client
 * records refer to it (8-byte index keys instead of the session id). */
typedef struct ts_store_sql_sess {
    int64_t sid;
    uint64_t last_seq, trimmed, state_ver;
    uint64_t epoch, hist_ver, snap_seq, snap_ver;
    ts_buf_t *state; /* returns new (NULL if none) */
    ts_buf_t *snap;  /* returns new (NULL if none) */
} ts_store_sql_sess_t;

#define TS_STORE_SQL_SCHEMA 3

/* Events appended since the last pass (the tail, 24 bytes each in memory)
 * that make a COMMIT write them as runs: with 1,000 sessions flat out such
 * a pass takes ~1.5 ms inside its batch and writes ~1,000 runs. */
#define TS_STORE_SQL_TAIL_ROWS 16384

/* Opens (creating if needed) the file: WAL, synchronous=FULL (sync_full)
 * or OFF, exclusive lock held until close; upgrades a version 1 or 2 file in
 * one transaction. Returns 0 or TS_ESTORE with a reason in err. */
int ts_store__sql_open(ts_store_sql_t **out, const char *path, int sync_full, char *err,
                       size_t errlen);
void ts_store__sql_close(ts_store_sql_t *db);
const char *ts_store__sql_errmsg(const ts_store_sql_t *db);

/* Transactions: begin/commit return 0 or TS_ESTORE; a failed commit has
 * been rolled back when it returns. rollback ignores errors. */
int ts_store__sql_begin(ts_store_sql_t *db);
int ts_store__sql_commit(ts_store_sql_t *db);
void ts_store__sql_rollback(ts_store_sql_t *db);

/* 0 (found), TS_ENOTFOUND, TS_ESTORE. */
int ts_store__sql_sess_load(ts_store_sql_t *db, ts_slice_t sess, ts_store_sql_sess_t *out);
void ts_store__sql_sess_free(ts_store_sql_sess_t *row);
/* Inserts the row of a new session with its epoch; *sid is its key. */
int ts_store__sql_sess_create(ts_store_sql_t *db, ts_slice_t sess, uint64_t epoch,
                              int64_t *sid);
int ts_store__sql_sess_meta(ts_store_sql_t *db, int64_t sid, uint64_t epoch, uint64_t hist_ver);
/* Stores event `seq` appended at wall-clock ms `t` (the events table also
 * carries the sequence: see ts_store__sql_sess_load). */
int ts_store__sql_append(ts_store_sql_t *db, int64_t sid, uint64_t seq, uint64_t t,
                         ts_slice_t data);
/* Events with from <= seq <= to, ascending, at most max and (after the
 * first) max_bytes; out[i].data returns new. */
int ts_store__sql_read(ts_store_sql_t *db, int64_t sid, uint64_t from, uint64_t to, size_t max,
                       size_t max_bytes, ts_store_event_t *out, size_t *n);
/* *t = append time of event seq: 0, TS_ENOTFOUND, TS_ESTORE. */
int ts_store__sql_event_time(ts_store_sql_t *db, int64_t sid, uint64_t seq, uint64_t *t);
/* Drops events <= upto and records trimmed = upto and the session's
 * last_seq (the events that carried it may all be gone). */
int ts_store__sql_trim(ts_store_sql_t *db, int64_t sid, uint64_t upto, uint64_t last_seq);
int ts_store__sql_state_put(ts_store_sql_t *db, int64_t sid, uint64_t ver, ts_slice_t doc);
int ts_store__sql_snap_put(ts_store_sql_t *db, int64_t sid, uint64_t seq, uint64_t ver,
                           ts_slice_t doc);
/* A client's exactly-once window, packed (mem_log.c): *recs returns new,
 * or NULL with TS_ENOTFOUND. */
int ts_store__sql_client_get(ts_store_sql_t *db, int64_t sid, ts_slice_t client,
                             ts_buf_t **recs);
int ts_store__sql_client_put(ts_store_sql_t *db, int64_t sid, ts_slice_t client,
                             ts_slice_t recs);
/* *term = last granted term of `name` (0 if never). */
int ts_store__sql_term_get(ts_store_sql_t *db, ts_slice_t name, uint64_t *term);
int ts_store__sql_term_put(ts_store_sql_t *db, ts_slice_t name, uint64_t term);

/* Tests only (fault injection): runs `sql` on the database of an open
 * memory store `self` (ts_store_t.self), under the store's mutex. Returns
 * 0, TS_ESTORE, or TS_EINVAL if the store has no SQLite file. */
int ts_store__mem_sql_exec(void *self, const char *sql);
int ts_store__sql_exec(ts_store_sql_t *db, const char *sql);

#endif
