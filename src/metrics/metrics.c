/* metrics.c - the process-wide metric table and its Prometheus rendering. */
#include "metrics/ts_met.h"

ts_met_t ts_met;

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
    for (int i = 0; i < TS_MET_NCOUNTERS; i++) {
        ts_sbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counter_meta[i].name,
                       counter_meta[i].help, counter_meta[i].name, counter_meta[i].name,
                       (unsigned long long)ts_met.counters[i]);
    }
    for (int i = 0; i < TS_MET_NGAUGES; i++) {
        ts_sbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauge_meta[i].name,
                       gauge_meta[i].help, gauge_meta[i].name, gauge_meta[i].name,
                       (long long)ts_met.gauges[i]);
    }
    ts_sbuf_append_str(out, "# HELP tabsync_errors_total peer input refused, by kind\n"
                            "# TYPE tabsync_errors_total counter\n");
    for (int i = 0; i < TS_MET_NERRORS; i++) {
        ts_sbuf_printf(out, "tabsync_errors_total{kind=\"%s\"} %llu\n", error_kinds[i],
                       (unsigned long long)ts_met.errors[i]);
    }
}
