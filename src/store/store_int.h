/* store_int.h - private to src/store: the SQLite persistence the memory
 * backend writes through (sqlite_log.c). Every function runs one statement or
 * one transaction synchronously; on failure nothing was written and the
 * database's message is in ts_store__sql_errmsg. */
#ifndef TS_STORE_INT_H
#define TS_STORE_INT_H
#include <stddef.h>
#include <stdint.h>

#include "store/ts_store.h"

typedef struct ts_store_sql ts_store_sql_t;

typedef struct ts_store_sql_sess {
    uint64_t last_seq, trimmed, state_ver;
    ts_buf_t *state; /* returns new (NULL if none) */
} ts_store_sql_sess_t;

/* Opens (creating if needed) the file, WAL + synchronous=NORMAL, exclusive
 * lock held until close. Returns 0 or TS_ESTORE with a reason in err. */
int ts_store__sql_open(ts_store_sql_t **out, const char *path, char *err, size_t errlen);
void ts_store__sql_close(ts_store_sql_t *db);
const char *ts_store__sql_errmsg(const ts_store_sql_t *db);

/* 0 (found), TS_ENOTFOUND, TS_ESTORE. */
int ts_store__sql_sess_load(ts_store_sql_t *db, ts_slice_t sess, ts_store_sql_sess_t *out);
/* Stores event `seq` (one statement: the events table is also where the
 * sequence number lives). */
int ts_store__sql_append(ts_store_sql_t *db, ts_slice_t sess, uint64_t seq, ts_slice_t data);
/* Events with seq >= from, ascending, at most max and (after the first)
 * max_bytes; out[i].data returns new. */
int ts_store__sql_read(ts_store_sql_t *db, ts_slice_t sess, uint64_t from, size_t max,
                       size_t max_bytes, ts_store_event_t *out, size_t *n);
/* One transaction: drop events <= upto, remember trimmed = upto and the
 * session's last_seq (the events that carried it may all be gone). */
int ts_store__sql_trim(ts_store_sql_t *db, ts_slice_t sess, uint64_t upto, uint64_t last_seq);
int ts_store__sql_state_put(ts_store_sql_t *db, ts_slice_t sess, uint64_t ver, ts_slice_t doc);
/* *term = last granted term of `name` (0 if never). */
int ts_store__sql_term_get(ts_store_sql_t *db, ts_slice_t name, uint64_t *term);
int ts_store__sql_term_put(ts_store_sql_t *db, ts_slice_t name, uint64_t term);

/* Tests only (fault injection): runs `sql` on the database of an open
 * memory store `self` (ts_store_t.self). Returns 0, TS_ESTORE, or TS_EINVAL
 * if the store has no SQLite file. */
int ts_store__mem_sql_exec(void *self, const char *sql);
int ts_store__sql_exec(ts_store_sql_t *db, const char *sql);

#endif
