/* redis_lua.h - private to src/store: the Lua scripts of the "redis"
 * backend (redis_lua.c) by id, with the SHA-1 EVALSHA names them by. */
#ifndef TS_STORE_REDIS_LUA_H
#define TS_STORE_REDIS_LUA_H

enum {
    S_ACQUIRE, S_RENEW, S_RELEASE, S_TRANSFER, S_GET,
    S_REG_PUT, S_REG_RENEW, S_REG_REMOVE, S_REG_LIST, S_REG_SWEEP,
    S_LOG_APPEND, S_LOG_READ, S_LOG_TRIM, S_STATE_GET, S_STATE_CAS,
    S_SESS_GET, S_COMMIT, S_SNAP_PUT, S_RETAIN, S_RETAIN_SCAN, S_COMMIT_PLAIN,
    /* the appending scripts that start a new log in layout 1
     * (--redis-log-layout 1, redis_lua.c) */
    S_LOG_APPEND1, S_COMMIT1, S_COMMIT_PLAIN1,
    S_COUNT
};

typedef struct script {
    const char *src;
    char sha[41]; /* hex SHA-1 of src, set at the first open */
} script_t;

/* Indexed by the ids above. */
extern script_t ts_store__rds_scripts[S_COUNT];

/* 1 if the script changes what a caller was (or will be) answered: with
 * ?replicas=N its answer waits for WAIT (rconn_int.h). */
int ts_store__rds_script_writes(int script);

/* EVALSHA's name of a script: the hex SHA-1 of its text. */
void ts_store__rds_sha1_hex(const char *src, char out[41]);

#endif
