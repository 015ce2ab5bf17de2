/* metrics.c - the per-thread metric tables, their sum, and its Prometheus
 * rendering. */
#include "metrics/ts_met.h"

#include <pthread.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"

_Thread_local ts_met_t ts_met;

#define MAX_THREADS 256

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static ts_met_t *tables[MAX_THREADS];
static size_t ntables;
static ts_met_t retired; /* counters of threads that finished */

void ts_met_thread_register(void) {
    pthread_mutex_lock(&reg_mu);
    int known = 0;
    for (size_t i = 0; i < ntables; i++) known |= tables[i] == &ts_met;
    if (!known) {
        ts_assert(ntables < MAX_THREADS);
        tables[ntables++] = &ts_met;
    }
    pthread_mutex_unlock(&reg_mu);
}

void ts_met_thread_unregister(void) {
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < ntables; i++) {
        if (tables[i] != &ts_met) continue;
        for (int k = 0; k < TS_MET_NCOUNTERS; k++) retired.counters[k] += ts_met.counters[k];
        for (int k = 0; k < TS_MET_NERRORS; k++) retired.errors[k] += ts_met.errors[k];
        tables[i] = tables[--ntables];
        break;
    }
    pthread_mutex_unlock(&reg_mu);
}

/* Other threads' tables are read while they run: each value is one aligned
 * word written and read whole (relaxed atomics), so a sum can only be
 * slightly behind, never torn. */
void ts_met_snapshot(ts_met_t *out) {
    pthread_mutex_lock(&reg_mu);
    *out = retired;
    int self_seen = 0;
    for (size_t i = 0; i < ntables; i++) {
        ts_met_t *t = tables[i];
        self_seen |= t == &ts_met;
        for (int k = 0; k < TS_MET_NCOUNTERS; k++)
            out->counters[k] += __atomic_load_n(&t->counters[k], __ATOMIC_RELAXED);
        for (int k = 0; k < TS_MET_NGAUGES; k++)
            out->gauges[k] += __atomic_load_n(&t->gauges[k], __ATOMIC_RELAXED);
        for (int k = 0; k < TS_MET_NERRORS; k++)
            out->errors[k] += __atomic_load_n(&t->errors[k], __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&reg_mu);
    if (!self_seen) { /* unit tests and tools that never register */
        for (int k = 0; k < TS_MET_NCOUNTERS; k++) out->counters[k] += ts_met.counters[k];
        for (int k = 0; k < TS_MET_NGAUGES; k++) out->gauges[k] += ts_met.gauges[k];
        for (int k = 0; k < TS_MET_NERRORS; k++) out->errors[k] += ts_met.errors[k];
    }
}

static const struct {
    const char *name, *help;
} counter_meta[] = {
#define TS_MET_META_(id, name, help) {name, help},
    TS_MET_COUNTERS(TS_MET_META_)
}, gauge_meta[] = {
    TS_MET_GAUGES(TS_MET_META_)
#undef TS_MET_META_
};

static const char *const error_kinds[] = {
#define TS_MET_KIND_(id, kind) kind,
    TS_MET_ERRORS(TS_MET_KIND_)
#undef TS_MET_KIND_
};

void ts_met_render(ts_sbuf_t *out) {
    ts_met_t m;
    ts_met_snapshot(&m);
    for (int i = 0; i < TS_MET_NCOUNTERS; i++) {
        ts_sbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counter_meta[i].name,
                       counter_meta[i].help, counter_meta[i].name, counter_meta[i].name,
                       (unsigned long long)m.counters[i]);
    }
    for (int i = 0; i < TS_MET_NGAUGES; i++) {
        ts_sbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauge_meta[i].name,
                       gauge_meta[i].help, gauge_meta[i].name, gauge_meta[i].name,
                       (long long)m.gauges[i]);
    }
    ts_sbuf_append_str(out, "# HELP tabsync_errors_total peer input refused, by kind\n"
                            "# TYPE tabsync_errors_total counter\n");
    for (int i = 0; i < TS_MET_NERRORS; i++) {
        ts_sbuf_printf(out, "tabsync_errors_total{kind=\"%s\"} %llu\n", error_kinds[i],
                       (unsigned long long)m.errors[i]);
    }
    ts_sbuf_printf(out,
                   "# HELP tabsync_log_suppressed_total log records of refusals dropped by "
                   "their rate limit\n# TYPE tabsync_log_suppressed_total counter\n"
                   "tabsync_log_suppressed_total %llu\n",
                   (unsigned long long)ts_log_suppressed_total());
}
