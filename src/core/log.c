/* log.c - logfmt records on stderr; the message is quoted and escaped so a
 * peer-supplied string can never forge a second record, and records a peer
 * can cause at will go through a per-kind rate limit (ts_log_limited). */
#include "core/ts_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/ts_err.h"

ts_log_level_t ts_log_min_level = TS_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int ts_log_level_parse(const char *s, ts_log_level_t *out) {
    for (int i = 0; i <= TS_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (ts_log_level_t)i;
            return 0;
        }
    }
    return TS_EINVAL;
}

void ts_log(ts_log_level_t lvl, const char *mod, const char *kv, const char *fmt, ...) {
    if (lvl < ts_log_min_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char esc[2200];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && o + 5 < sizeof esc; p++) {
        if (*p == '"' || *p == '\\') {
            esc[o++] = '\\';
            esc[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(esc + o, sizeof esc - o, "\\x%02x", *p);
        } else {
            esc[o++] = (char)*p;
        }
    }
    esc[o] = '\0';

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "ts=%s.%03ldZ level=%s mod=%s msg=\"%s\"%s%s\n", when,
            ts.tv_nsec / 1000000, level_names[lvl], mod, esc, kv ? " " : "", kv ? kv : "");
}

/* ---- rate-limited records ---- */

static uint64_t suppressed_total; /* atomic: every limiter's drops */

int ts_log_rl_admit(ts_log_rl_t *rl, uint64_t now_ms, uint64_t *suppressed) {
    uint64_t sec = now_ms / 1000;
    uint32_t max = rl->per_s ? rl->per_s : 1;
    int ok;
    pthread_mutex_lock(&rl->mu);
    if (sec > rl->sec) { /* a later second; one stepped back counts as the current one */
        rl->sec = sec;
        rl->n = 0;
    }
    ok = rl->n < max;
    if (ok) {
        rl->n++;
        *suppressed = rl->suppressed;
        rl->suppressed = 0;
    } else {
        rl->suppressed++;
        __atomic_add_fetch(&suppressed_total, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&rl->mu);
    return ok;
}

uint64_t ts_log_suppressed_total(void) {
    return __atomic_load_n(&suppressed_total, __ATOMIC_RELAXED);
}

void ts_log_limited(ts_log_rl_t *rl, ts_log_level_t lvl, const char *mod, const char *kv,
                    const char *fmt, ...) {
    if (lvl < ts_log_min_level) return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t sup = 0;
    if (!ts_log_rl_admit(rl, (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000, &sup))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char kvs[600];
    if (sup)
        snprintf(kvs, sizeof kvs, "%s%ssuppressed=%llu", kv ? kv : "", kv ? " " : "",
                 (unsigned long long)sup);
    else
        snprintf(kvs, sizeof kvs, "%s", kv ? kv : "");
    ts_log(lvl, mod, kvs[0] ? kvs : NULL, "%s", msg);
}
