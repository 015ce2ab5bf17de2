/* ts_log.h - structured logs on stderr, one logfmt line per record:
 *   ts=2026-11-25T13:40:01.123Z level=warn mod=eio msg="..." sid=abc
 * so that both people and log shippers can read them. */
#ifndef TS_LOG_H
#define TS_LOG_H

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
