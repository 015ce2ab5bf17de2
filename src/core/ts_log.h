/* ts_log.h - structured logs on stderr, one logfmt line per record:
 *   ts=2026-11-25T13:40:01.123Z level=warn mod=eio msg="..." sid=abc
 * so that both people and log shippers can read them. */
#ifndef TS_LOG_H
#define TS_LOG_H
#include <pthread.h>
#include <stdint.h>

typedef enum ts_log_level {
    TS_LOG_DEBUG = 0,
    TS_LOG_INFO = 1,
    TS_LOG_WARN = 2,
    TS_LOG_ERROR = 3,
    TS_LOG_OFF = 4,
} ts_log_level_t;

extern ts_log_level_t ts_log_min_level; /* records below it are dropped */

/* Parses "debug|info|warn|error|off"; returns 0 or TS_EINVAL. */
int ts_log_level_parse(const char *s, ts_log_level_t *out);
/* `fmt` produces the message; `kv`, if not NULL, is appended verbatim as
 * extra key=value pairs. Non-printable bytes in the message are escaped. */
void ts_log(ts_log_level_t lvl, const char *mod, const char *kv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- Records a peer can cause at will (refusals) ----
 * One ts_log_rl_t per kind of record (bad tokens, throttling, CORS ...),
 * shared by every loop (it locks): at most `per_s` records of that kind in
 * any second of the monotonic clock, the others counted, never written, so
 * a flood cannot fill the disk. The first record written after some were
 * dropped carries suppressed=K (how many since the last one written). */
typedef struct ts_log_rl {
    pthread_mutex_t mu;
    uint32_t per_s;       /* read-only: records per second, at least 1 */
    uint32_t n;           /* private: records written in second `sec` */
    uint64_t sec;         /* private: the current second (now_ms / 1000) */
    uint64_t suppressed;  /* private: dropped since the last record written */
} ts_log_rl_t;
#define TS_LOG_RL_INIT(per_s) {PTHREAD_MUTEX_INITIALIZER, (per_s), 0, 0, 0}

/* Pure (apart from the lock): one record of rl's kind at now_ms. Returns 1
 * if it may be written (*suppressed = how many were dropped before it), or
 * 0 if it is dropped (counted). */
int ts_log_rl_admit(ts_log_rl_t *rl, uint64_t now_ms, uint64_t *suppressed);
/* ts_log with rl's admission (clock: CLOCK_MONOTONIC); `kv` gets
 * suppressed=K appended when some were dropped. Nothing is counted when lvl
 * is below ts_log_min_level (the caller's metrics count the events). */
void ts_log_limited(ts_log_rl_t *rl, ts_log_level_t lvl, const char *mod, const char *kv,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Records dropped by every ts_log_rl_t since start (tabsync_log_suppressed_total). */
uint64_t ts_log_suppressed_total(void);

#define ts_log_enabled(lvl) ((lvl) >= ts_log_min_level)
#define TS_LOG(lvl, mod, ...)                                                  \
    do {                                                                       \
        if (ts_log_enabled(lvl)) ts_log(lvl, mod, NULL, __VA_ARGS__);          \
    } while (0)
#define ts_debug(mod, ...) TS_LOG(TS_LOG_DEBUG, mod, __VA_ARGS__)
#define ts_info(mod, ...) TS_LOG(TS_LOG_INFO, mod, __VA_ARGS__)
#define ts_warn(mod, ...) TS_LOG(TS_LOG_WARN, mod, __VA_ARGS__)
#define ts_error(mod, ...) TS_LOG(TS_LOG_ERROR, mod, __VA_ARGS__)

#endif
