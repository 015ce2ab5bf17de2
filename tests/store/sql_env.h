/* sql_env.h - the store contract's environments for the memory backend:
 * memory only, and written through to a fresh SQLite file in a temp dir
 * per test; shared by the tests of the backend and of its file. */
#ifndef TS_TEST_SQL_ENV_H
#define TS_TEST_SQL_ENV_H
#include <sqlite3.h>
#include <unistd.h>

#include "store/store_contract.h"

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

static sc_env_t env_sql = {
    .label = "memory + SQLite",
    .ops = &ts_store_memory_ops,
    .fresh = env_fresh_file,
    .clean = env_clean_file,
};

/* One integer from `sql` on the file at `path` (-1 if no row). */
static inline long sql_int_file(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    long v = sqlite3_step(s) == SQLITE_ROW ? (long)sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static inline void sql_exec_file(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("sqlite3: %s", msg);
    sqlite3_close(db);
}

#endif
