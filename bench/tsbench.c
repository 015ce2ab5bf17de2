/* tsbench.c - load generator for tabsyncd and any Socket.IO v5 server that
 * runs the test app (tests/js/README.md): fanout, sessions, idle, connect,
 * replay and slow scenarios over websocket-only connections from several
 * loopback source addresses; `connect --session` handshakes with /session
 * and a pre-minted token. One process, one libuv loop; every run checks
 * that each event arrived exactly once and in order, and stops by itself. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "jwt.h"
#include "tsbench.h"

#define USAGE                                                                                  \
    "usage: tsbench fanout|sessions|idle|connect|replay|slow --port PORT [options]\n"          \
    "\n"                                                                                       \
    "Connects to a Socket.IO server running the test app (tabsyncd --test-app, or\n"          \
    "bench/peer/node-server.mjs), websocket transport only, namespace /.\n"                  \
    "\n"                                                                                       \
    "  --host ADDR        server address (default 127.0.0.1; loopback only)\n"                \
    "  --port PORT        server port (required)\n"                                            \
    "  --server-pid PID   read the server's CPU time and RSS from /proc\n"                     \
    "  --port2 PORT       a second server of the same cluster (same host): connections of\n"  \
    "                     odd index go there (fanout: the publisher stays on --port and the\n" \
    "                     receivers alternate; sessions: each room's members alternate)\n"    \
    "  --server-pid2 PID  the second server's process: server CPU is the sum of both\n"      \
    "  --redis-pid PID    read the CPU time of the Redis both servers share\n"              \
    "  --conns N          fanout/replay/slow: receivers; idle: connections; connect:\n"        \
    "                     handshakes in total (default 1000)\n"                                \
    "  --rooms S          sessions: rooms (default 100)\n"                                     \
    "  --members T        sessions: members per room, each one publishes (default 4)\n"        \
    "  --rate R           publishes per second, all publishers together; 0 = flat\n"          \
    "                     out, each publisher keeping --window events in flight\n"             \
    "  --window W         flat out: events in flight per publisher (default 16)\n"             \
    "  --duration S       seconds of publishing; connect: at most this long (default 5)\n"    \
    "  --conc C           connections opening at once (default 256)\n"                         \
    "  --per-src N        connections per loopback source address (default 4000)\n"            \
    "  --sources N        connect: source addresses to rotate over (default 4)\n"              \
    "  --warm N           replay: events before the disconnect (default 5)\n"                  \
    "  --burst N          replay: events published while disconnected (default 100)\n"         \
    "  --gap MS           replay: wait after the disconnect before the burst (default 500)\n"  \
    "  --settle MS        idle: wait before reading the server's RSS (default 2000)\n"         \
    "  --session          CONNECT to /session with a token, device and tab; a\n"           \
    "                     handshake is complete when `welcome` arrives. sessions,\n"        \
    "                     fanout, slow: each room is one session (user u<room>, session\n"  \
    "                     s<room>; fanout/slow: one session u0/s0), events are `publish`\n" \
    "                     envelopes of --size bytes (default 150) with an ack, received\n"  \
    "                     as `event`; every ack must say ok, in order\n"                      \
    "  --jwt-secret S     --session: the server's HS256 secret (tokens are minted\n"         \
    "                     before the timed part)\n"                                            \
    "  --users U          --session: distinct users (default 10000)\n"                       \
    "  --devices D        --session: devices per user, each its own token (default 2)\n"     \
    "  --proto P          --session: the /session protocol the tabs speak, 1-4\n"             \
    "                     (default 2; 3 and 4 load the session's history)\n"                  \
    "  --slow K           slow: receivers that stop reading (default conns / 10)\n"           \
    "  --size B           fanout/slow: bytes of each delivered event (default 150);\n"        \
    "                     with --session: bytes of each published envelope\n"                \
    "  --rss-cap MIB      slow: stop publishing when the server's RSS passes this\n"          \
    "                     (default 1536)\n"                                                    \
    "  --timeout S        give up after this many seconds in all (default 120)\n"              \
    "  --json             print the result as one JSON object on stdout\n"                     \
    "  --label TEXT       copied into the JSON result\n"                                       \
    "\n"                                                                                       \
    "Exit status: 0 when every check passed, 1 when one failed (loss, duplicate,\n"           \
    "reordering, refused or dropped connection, timeout), 2 on a usage error.\n"

static struct {
    /* options */
    int scenario;
    const char *host;
    int port, port2;
    int server_pid, server_pid2, redis_pid;
    uint32_t conns, rooms, members, window, conc, per_src, sources, warm, burst;
    double rate, duration;
    uint32_t gap_ms, settle_ms, timeout_s;
    int session;
    const char *jwt_secret;
    uint32_t users, devices, proto, slow, size, rss_cap_mb;
    int json;
    const char *label;

    uv_loop_t loop;
    tsb_conn_t **c;
    uint32_t n;
    uint32_t fan; /* receivers of each event */

    /* opening connections */
    uint32_t open_next, open_end, opening, ready, ready_target;
    void (*all_ready)(void);
    int rejoin; /* send join after CONNECT */

    /* phases */
    int publishing, measuring, finished, stopping;
    const char *phase;
    char fail_msg[300];
    uint64_t errors;
    uint64_t t0, t_stop, t_last;
    uv_timer_t tick, phase_timer, deadline;
    uv_check_t pump;
    uint32_t *q; /* flat out: publishers whose window opened */
    uint32_t qlen;
    uint32_t rr;

    /* results */
    uint64_t published, delivered, dups, gaps, missing, foreign, acked;
    tsb_hist_t lat; /* publish to delivery, ns */
    tsb_hist_t hs;  /* connect: handshake; replay: catch-up per client */

    struct pstat {
        int ok;
        double cpu_s, sys_s; /* utime + stime; stime alone */
        long rss_kb, hwm_kb;
    } s0, s1, n0, n1, r0, r1; /* s: the server (or first node); n: the second; r: Redis */
    double cl_cpu0, cl_cpu1;
    double ksirq0, ksirq1; /* the ksoftirqd threads' CPU, machine-wide; -1: unreadable */
    long sock_pages0, sock_pages1;
    long slab_kb0, slab_kb1; /* kernel slab memory, machine-wide (idle) */

    /* connect */
    uint64_t hs_started, hs_done;
    uint32_t src_rr;

    /* replay */
    uint32_t closed_cnt, caught, not_recovered;
    uint64_t t_reconnect, t_caught;

    /* connect --session: tokens[user * devices + device], minted up front */
    char **tokens;

    /* slow */
    uv_timer_t sampler;
    long rss_peak_kb, rss_pub0_kb, rss_pub1_kb;
    long *samples; /* server RSS (KiB) every SAMPLE_MS while publishing */
    uint32_t nsamples, capsamples;
    uint32_t cut, slow_open;
    int capped;
    uint64_t t_cut_phase;
} B;

#define SAMPLE_MS 250
#define CUT_WAIT_MS 3000

static void finish(const char *fail_fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- /proc ------------------------------------------------------------- */

static void read_pstat(int pid, struct pstat *o) {
    memset(o, 0, sizeof *o);
    if (pid <= 0) return;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return;
    o->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    o->sys_s = (double)st / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f) return;
    while (fgets(buf, sizeof buf, f)) {
        sscanf(buf, "VmRSS: %ld", &o->rss_kb);
        sscanf(buf, "VmHWM: %ld", &o->hwm_kb);
    }
    fclose(f);
    o->ok = 1;
}

/* Pages of memory the kernel gives TCP sockets, machine-wide. */
static long sock_pages(void) {
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f) return -1;
    char buf[256];
    long mem = -1;
    while (fgets(buf, sizeof buf, f))
        if (sscanf(buf, "TCP: inuse %*d orphan %*d tw %*d alloc %*d mem %ld", &mem) == 1) break;
    fclose(f);
    return mem;
}

/* The kernel's slab memory in KiB, machine-wide: where socket, inode, file
 * and epoll structures live (sockstat's `mem` counts buffer pages only). */
static long slab_kb(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char buf[256];
    long kb = -1;
    while (fgets(buf, sizeof buf, f))
        if (sscanf(buf, "Slab: %ld", &kb) == 1) break;
    fclose(f);
    return kb;
}

/* The CPU of the kernel's softirq threads (ksoftirqd/N), machine-wide.
 * Network receive work that does not fit the softirq run at the end of a
 * system call spills there, out of the server's /proc/<pid>/stat: a server
 * that sends in bigger batches can look cheaper than it is without it. */
static double ksoftirqd_cpu(void) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[300], comm[64];
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int is = fgets(comm, sizeof comm, f) && strncmp(comm, "ksoftirqd/", 10) == 0;
        fclose(f);
        if (!is) continue;
        struct pstat p;
        read_pstat(atoi(e->d_name), &p);
        if (p.ok) sum += p.cpu_s;
    }
    closedir(d);
    return sum;
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void stats_start(void) {
    read_pstat(B.server_pid, &B.s0);
    read_pstat(B.server_pid2, &B.n0);
    read_pstat(B.redis_pid, &B.r0);
    B.cl_cpu0 = self_cpu();
    B.ksirq0 = ksoftirqd_cpu();
}

static void stats_end(void) {
    read_pstat(B.server_pid, &B.s1);
    read_pstat(B.server_pid2, &B.n1);
    read_pstat(B.redis_pid, &B.r1);
    B.cl_cpu1 = self_cpu();
    B.ksirq1 = ksoftirqd_cpu();
}

/* ---- opening connections ----------------------------------------------- */

static uint32_t src_of(tsb_conn_t *c) {
    if (B.scenario == SC_CONNECT) return B.src_rr++ % (B.sources ? B.sources : 1);
    return c->idx / B.per_src;
}

static void open_more(void) {
    while (!B.stopping && B.opening < B.conc && B.open_next < B.open_end) {
        tsb_conn_t *c = B.c[B.open_next++];
        B.opening++;
        int rc = tsb_conn_open(c, src_of(c));
        if (rc) {
            finish("connection %u: %s", c->idx, uv_strerror(rc));
            return;
        }
    }
}

/* Opens conns [lo, hi); calls `done` when all of them are ready. */
static void open_range(uint32_t lo, uint32_t hi, void (*done)(void)) {
    B.open_next = lo;
    B.open_end = hi;
    B.ready = 0;
    B.ready_target = hi - lo;
    B.all_ready = done;
    open_more();
}

static void conn_ready(tsb_conn_t *c) {
    B.opening--;
    B.ready++;
    if (B.ready == B.ready_target && B.all_ready) {
        void (*done)(void) = B.all_ready;
        B.all_ready = NULL;
        done();
    }
    open_more();
}

/* ---- publishing -------------------------------------------------------- */

static tsb_conn_t *publisher_of(uint32_t p) {
    if (B.scenario == SC_SESSIONS) return p < B.n ? B.c[p] : NULL;
    return p == 0 ? B.c[0] : NULL;
}

static void publish(tsb_conn_t *pub) {
    tsb_ev_t ev = {.p = B.scenario == SC_SESSIONS ? pub->idx : 0, .s = pub->sent, .t = uv_hrtime()};
    static char buf[TSB_EV_MAX + 65536];
    size_t n;
    if (B.session) /* an envelope to the publisher's session, ack id = its sequence number */
        n = tsb_sev_format(buf, sizeof buf, pub->sent, &ev, B.size);
    else
        n = tsb_ev_format_sized(buf, sizeof buf,
                                B.scenario == SC_SESSIONS ? "to-room" : "to-room-all",
                                B.scenario == SC_SESSIONS ? pub->room : 0, &ev, B.size);
    tsb_conn_send(pub, buf, n);
    pub->sent++;
    B.published++;
}

static int window_open(const tsb_conn_t *pub) {
    return (uint64_t)pub->sent * B.fan < (uint64_t)B.window * B.fan + pub->dlv;
}

static void enqueue(tsb_conn_t *pub) {
    if (pub->queued) return;
    pub->queued = 1;
    B.q[B.qlen++] = pub->idx;
}

/* Flat out: after each loop iteration, refill every window that opened. */
static void on_pump(uv_check_t *h) {
    if (!B.publishing || B.rate > 0) return;
    uint32_t n = B.qlen;
    B.qlen = 0;
    for (uint32_t i = 0; i < n; i++) {
        tsb_conn_t *pub = B.c[B.q[i]];
        pub->queued = 0;
        while (B.publishing && window_open(pub)) publish(pub);
    }
}

/* Fixed rate: every millisecond, send what is due since t0 (open loop:
 * a slow server does not slow the schedule down). */
static void on_tick(uv_timer_t *t) {
    if (!B.publishing) return;
    uint64_t due = (uint64_t)((double)(uv_hrtime() - B.t0) * B.rate / 1e9) + 1;
    uint32_t cap = 100000;
    while (B.published < due && cap--) {
        if (B.scenario == SC_SESSIONS) {
            publish(B.c[B.rr]);
            B.rr = (B.rr + 1) % B.n;
        } else {
            publish(B.c[0]);
        }
    }
}

static uint64_t expected_deliveries(void) { return B.published * B.fan; }

static void slow_cut_phase(void);

static void on_drain_check(uv_timer_t *t) {
    uint64_t now = uv_hrtime();
    int acks_in = !B.session || B.acked >= B.published;
    if ((B.delivered + B.gaps >= expected_deliveries() && acks_in) ||
        now - B.t_stop > 10000000000ull) {
        if (B.scenario == SC_SLOW)
            slow_cut_phase();
        else
            finish(NULL);
    }
}

static void stop_publishing(uv_timer_t *t) {
    B.publishing = 0;
    B.t_stop = uv_hrtime();
    B.phase = "drain";
    uv_timer_stop(&B.tick);
    uv_timer_start(&B.phase_timer, on_drain_check, 2, 2);
}

static void on_sample(uv_timer_t *t);

static void start_publishing(uv_timer_t *t) {
    B.phase = "publish";
    stats_start();
    if (B.scenario == SC_SLOW) {
        B.rss_pub0_kb = B.rss_peak_kb = B.s0.rss_kb;
        uv_timer_start(&B.sampler, on_sample, SAMPLE_MS, SAMPLE_MS);
    }
    B.t0 = B.t_last = uv_hrtime();
    B.measuring = 1;
    B.publishing = 1;
    if (B.rate > 0) {
        uv_timer_start(&B.tick, on_tick, 0, 1);
    } else {
        if (B.scenario == SC_SESSIONS)
            for (uint32_t i = 0; i < B.n; i++) enqueue(B.c[i]);
        else
            enqueue(B.c[0]);
        on_pump(&B.pump); /* the check phase would wait for the next poll */
    }
    uv_timer_start(&B.phase_timer, stop_publishing, (uint64_t)(B.duration * 1000), 0);
}

static void all_joined(void) {
    B.phase = "settle";
    if (B.scenario == SC_SLOW)
        for (uint32_t i = 1; i < B.n; i++)
            if (B.c[i]->slow) tsb_conn_pause(B.c[i]);
    uv_timer_start(&B.phase_timer, start_publishing, 300, 0);
}

/* ---- slow -------------------------------------------------------------- */

/* Every SAMPLE_MS while publishing: the server's RSS, and the cap that
 * bounds a server whose memory grows without limit. */
static void on_sample(uv_timer_t *t) {
    struct pstat p;
    read_pstat(B.server_pid, &p);
    if (!p.ok) return;
    if (B.nsamples == B.capsamples) {
        uint32_t cap = B.capsamples ? 2 * B.capsamples : 256;
        long *ns = realloc(B.samples, cap * sizeof *ns);
        if (!ns) return;
        B.samples = ns;
        B.capsamples = cap;
    }
    B.samples[B.nsamples++] = p.rss_kb;
    if (p.rss_kb > B.rss_peak_kb) B.rss_peak_kb = p.rss_kb;
    if (B.publishing && (uint64_t)p.rss_kb > (uint64_t)B.rss_cap_mb * 1024) {
        B.capped = 1;
        stop_publishing(&B.phase_timer);
    }
}

static void slow_done(uv_timer_t *t) { finish(NULL); }

/* The fast receivers have everything. The server's memory is read now,
 * before the slow ones read again (reading lets a server that kept their
 * backlog free it); then each slow receiver reads and discards for up to
 * CUT_WAIT_MS: the server cut it off if the connection ends. */
static void slow_cut_phase(void) {
    uv_timer_stop(&B.sampler);
    on_sample(&B.sampler);
    stats_end();
    B.rss_pub1_kb = B.s1.rss_kb;
    B.phase = "cut";
    B.t_cut_phase = uv_hrtime();
    B.slow_open = 0;
    for (uint32_t i = 1; i < B.n; i++)
        if (B.c[i]->slow && B.c[i]->state != CS_IDLE && B.c[i]->state != CS_CLOSING) {
            B.slow_open++;
            tsb_conn_resume_raw(B.c[i]);
        }
    if (B.slow_open == 0) {
        finish(NULL);
        return;
    }
    uv_timer_start(&B.phase_timer, slow_done, CUT_WAIT_MS, 0);
}

/* ---- idle -------------------------------------------------------------- */

static void idle_measure(uv_timer_t *t) {
    stats_end();
    B.sock_pages1 = sock_pages();
    B.slab_kb1 = slab_kb();
    finish(NULL);
}

static void idle_all_ready(void) {
    B.phase = "settle";
    uv_timer_start(&B.phase_timer, idle_measure, B.settle_ms, 0);
}

/* ---- replay ------------------------------------------------------------ */

static void replay_reconnect(void) {
    B.phase = "catch-up";
    B.rejoin = 0;
    B.t0 = B.t_reconnect = uv_hrtime();
    stats_start();
    open_range(1, B.n, NULL);
}

static void replay_burst(uv_timer_t *t) {
    B.phase = "burst";
    for (uint32_t i = 0; i < B.burst; i++) publish(B.c[0]);
    /* acks come back in order after the events: when it arrives, every
     * event of the burst has been handed to the server's broadcast */
    tsb_conn_send(B.c[0], "429[\"join\",\"r-sync\"]", 20);
}

static void replay_disconnect(void) {
    B.phase = "disconnect";
    for (uint32_t i = 1; i < B.n; i++) {
        tsb_conn_t *c = B.c[i];
        if (!c->pid[0] || !c->off[0]) {
            finish("replay: receiver %u has no %s (is connection state recovery on?)", i,
                   c->pid[0] ? "offset" : "pid");
            return;
        }
    }
    B.closed_cnt = 0;
    for (uint32_t i = 1; i < B.n; i++) tsb_conn_close(B.c[i], 0);
}

static void replay_warm(void) {
    B.phase = "warm";
    for (uint32_t i = 0; i < B.warm; i++) publish(B.c[0]);
}

/* ---- connect ----------------------------------------------------------- */

static void connect_next(tsb_conn_t *c) {
    if (B.stopping || B.hs_started >= B.conns) return;
    if ((double)(uv_hrtime() - B.t0) / 1e9 > B.duration) return;
    c->ident = (uint32_t)B.hs_started;
    B.hs_started++;
    int rc = tsb_conn_open(c, src_of(c));
    if (rc) finish("connect: %s", uv_strerror(rc));
}

/* Handshake k presents user k % users with device (k / users) % devices,
 * tab t<k>: every user reconnects now and then, from several devices. */
static uint32_t ident_user(uint32_t k) { return k % B.users; }
static uint32_t ident_dev(uint32_t k) { return (k / B.users) % B.devices; }

static int mint_tokens(void) {
    size_t klen = strlen(B.jwt_secret);
    int64_t now = (int64_t)time(NULL);
    B.tokens = calloc((size_t)B.users * B.devices, sizeof *B.tokens);
    if (!B.tokens) return -1;
    for (uint32_t u = 0; u < B.users; u++)
        for (uint32_t d = 0; d < B.devices; d++) {
            char user[16], sid[16], dev[16], fp[40], tok[TSB_JWT_MAX];
            snprintf(user, sizeof user, "u%u", u);
            snprintf(sid, sizeof sid, "s%u", u);
            snprintf(dev, sizeof dev, "d%u", d);
            snprintf(fp, sizeof fp, "fp-u%u-d%u", u, d);
            size_t n = tsb_jwt_session(B.jwt_secret, klen, user, sid, dev, fp, now, now + 3600, tok,
                                       sizeof tok);
            if (!n || !(B.tokens[(size_t)u * B.devices + d] = strdup(tok))) return -1;
        }
    return 0;
}

static size_t session_auth(tsb_conn_t *c, char *buf, size_t cap) {
    uint32_t u = ident_user(c->ident), d = ident_dev(c->ident);
    int n = snprintf(buf, cap,
                     "{\"token\":\"%s\",\"device\":{\"id\":\"d%u\",\"fingerprint\":\"fp-u%u-d%u\","
                     "\"type\":\"browser\"},\"tab\":{\"id\":\"t%u\"},\"proto\":%u}",
                     B.tokens[(size_t)u * B.devices + d], d, u, d, c->ident, B.proto);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void handshake_done(tsb_conn_t *c) {
    uint64_t now = uv_hrtime();
    tsb_hist_record(&B.hs, now - c->t_start);
    B.hs_done++;
    B.t_last = now;
    tsb_conn_close(c, 1);
}

/* The handshake is complete when the server says who we are; it must be
 * who the token and the auth object said. */
static void on_welcome(tsb_conn_t *c, json_t *w) {
    char want[3][24];
    snprintf(want[0], sizeof want[0], "u%u", ident_user(c->ident));
    snprintf(want[1], sizeof want[1], "d%u", ident_dev(c->ident));
    snprintf(want[2], sizeof want[2], "t%u", c->ident);
    static const char *keys[] = {"user", "device", "tab"};
    for (int i = 0; i < 3; i++) {
        const char *got = json_string_value(json_object_get(w, keys[i]));
        if (!got || strcmp(got, want[i]) != 0) {
            B.errors++;
            if (!B.fail_msg[0])
                snprintf(B.fail_msg, sizeof B.fail_msg, "welcome %s is %s, expected %s", keys[i],
                         got ? got : "missing", want[i]);
            tsb_conn_close(c, 1);
            return;
        }
    }
    if (B.scenario == SC_CONNECT) handshake_done(c);
    else conn_ready(c); /* the tab stays connected: idle, or publishing next */
}

static void connect_check_done(void) {
    for (uint32_t i = 0; i < B.n; i++)
        if (B.c[i]->state != CS_IDLE) return;
    stats_end();
    finish(NULL);
}

/* ---- connection hooks -------------------------------------------------- */

static void on_connected(tsb_conn_t *c) {
    if (B.scenario == SC_CONNECT) {
        if (!B.session) handshake_done(c); /* else: when `welcome` comes */
        return;
    }
    if (B.session) return; /* idle --session: ready at its `welcome` */
    if (B.scenario == SC_REPLAY && !B.rejoin && !c->recovered) B.not_recovered++;
    if (B.rejoin && c->room != TSB_NO_ROOM) {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "421[\"join\",\"r%u\"]", c->room);
        c->state = CS_JOIN;
        tsb_conn_send(c, buf, (size_t)n);
        return;
    }
    conn_ready(c);
}

static void on_ack(tsb_conn_t *c, int64_t id, int ok) {
    if (B.session) { /* a publish's ack (conn.c refused the ones not ok) */
        if (id != (int64_t)c->acked || c->acked >= c->sent) {
            finish("connection %u: ack %lld, expected %u (order, or an ack of nothing)", c->idx,
                   (long long)id, c->acked);
            return;
        }
        c->acked++;
        B.acked++;
        return;
    }
    if (!ok) {
        finish("connection %u: ack %lld was not \"ok\"", c->idx, (long long)id);
        return;
    }
    if (id == 1 && c->state == CS_JOIN) {
        c->state = CS_READY;
        conn_ready(c);
    } else if (id == 9 && B.scenario == SC_REPLAY) {
        uv_timer_start(&B.phase_timer, (uv_timer_cb)replay_reconnect, 0, 0);
    }
}

static void on_event(tsb_conn_t *c, const tsb_ev_t *ev) {
    uint64_t now = uv_hrtime();
    tsb_conn_t *pub = publisher_of(ev->p);
    uint32_t slot = 0;
    if (!pub || c->nexp == 0) {
        B.foreign++;
        return;
    }
    if (B.scenario == SC_SESSIONS) {
        if (pub->room != c->room || pub == c) {
            B.foreign++;
            return;
        }
        slot = pub->slot;
    }
    uint32_t *e = &c->expect[slot];
    if (ev->s < *e) {
        B.dups++;
        return;
    }
    if (ev->s > *e) B.gaps += ev->s - *e;
    *e = ev->s + 1;
    B.delivered++;
    B.t_last = now;
    pub->dlv++;
    if (B.measuring) tsb_hist_record(&B.lat, now - ev->t);
    if (ev->offset && ev->offset_len < sizeof c->off) {
        memcpy(c->off, ev->offset, ev->offset_len);
        c->off[ev->offset_len] = 0;
    }
    if (B.publishing && B.rate <= 0 && !pub->queued && window_open(pub)) enqueue(pub);
    if (B.scenario == SC_REPLAY) {
        if (!B.phase || strcmp(B.phase, "warm") == 0) {
            if (B.delivered == (uint64_t)B.warm * B.fan) replay_disconnect();
        } else if (*e == B.warm + B.burst && !c->caught) {
            c->caught = 1;
            B.caught++;
            tsb_hist_record(&B.hs, now - B.t_reconnect);
            if (B.caught == B.fan) {
                B.t_caught = now;
                stats_end();
                finish(NULL);
            }
        }
    }
}

static void on_failed(tsb_conn_t *c, const char *why) {
    if (B.stopping) return;
    if (B.scenario == SC_SLOW && c->slow && B.phase && strcmp(B.phase, "cut") == 0) {
        B.cut++;
        if (--B.slow_open == 0) finish(NULL);
        return;
    }
    B.errors++;
    if (B.scenario == SC_CONNECT) {
        if (!B.fail_msg[0]) snprintf(B.fail_msg, sizeof B.fail_msg, "%s", why);
        return;
    }
    finish("connection %u (%s phase): %s", c->idx, B.phase ? B.phase : "setup", why);
}

static void on_closed(tsb_conn_t *c) {
    if (B.stopping) return;
    if (B.scenario == SC_CONNECT) {
        connect_next(c);
        if (c->state == CS_IDLE) connect_check_done();
        return;
    }
    if (B.scenario == SC_REPLAY && B.phase && strcmp(B.phase, "disconnect") == 0) {
        c->state = CS_IDLE;
        if (++B.closed_cnt == B.fan)
            uv_timer_start(&B.phase_timer, replay_burst, B.gap_ms, 0);
    }
}

/* ---- results ----------------------------------------------------------- */

static const char *scenario_name(int s) {
    static const char *names[] = {"fanout", "sessions", "idle", "connect", "replay", "slow"};
    return names[s];
}

static void print_hist_json(const char *name, const tsb_hist_t *h) {
    printf(",\"%s\":{\"count\":%llu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
           "\"mean\":%.1f}",
           name, (unsigned long long)h->count, (double)tsb_hist_quantile(h, 0.5) / 1e3,
           (double)tsb_hist_quantile(h, 0.99) / 1e3, (double)tsb_hist_quantile(h, 0.999) / 1e3,
           (double)(h->count ? h->max : 0) / 1e3, h->count ? h->sum / (double)h->count / 1e3 : 0.0);
}

static void report(int ok) {
    uint64_t end = B.t_last > B.t0 ? B.t_last : uv_hrtime();
    if (B.scenario == SC_REPLAY && B.t_caught) end = B.t_caught;
    double elapsed = (double)(end - B.t0) / 1e9;
    if (elapsed <= 0) elapsed = 1e-9;
    double rate = 0;
    if (B.scenario == SC_FANOUT || B.scenario == SC_SESSIONS || B.scenario == SC_SLOW)
        rate = (double)B.delivered / elapsed;
    if (B.scenario == SC_CONNECT) rate = (double)B.hs_done / elapsed;
    if (B.scenario == SC_REPLAY) rate = (double)B.burst * B.fan / elapsed;
    /* the slow scenario's cut phase is not part of the measured run */
    double wall = (double)((B.t_cut_phase ? B.t_cut_phase : uv_hrtime()) - B.t0) / 1e9;
    double srv_cpu = B.s0.ok && B.s1.ok ? B.s1.cpu_s - B.s0.cpu_s : -1;
    /* two nodes: the server's CPU is both processes' */
    double srv2_cpu = B.n0.ok && B.n1.ok ? B.n1.cpu_s - B.n0.cpu_s : -1;
    if (srv_cpu >= 0 && srv2_cpu >= 0) srv_cpu += srv2_cpu;
    double redis_cpu = B.r0.ok && B.r1.ok ? B.r1.cpu_s - B.r0.cpu_s : -1;
    double cl_cpu = B.cl_cpu1 - B.cl_cpu0;
    double ksirq = B.ksirq0 >= 0 && B.ksirq1 >= 0 ? B.ksirq1 - B.ksirq0 : -1;
    double per_conn = 0;
    if (B.scenario == SC_IDLE && B.conns)
        per_conn = (double)(B.s1.rss_kb - B.s0.rss_kb) * 1024.0 / (double)B.conns;

    fprintf(stderr, "tsbench %s: %s\n", scenario_name(B.scenario), ok ? "ok" : "FAILED");
    if (B.fail_msg[0]) fprintf(stderr, "  %s%s\n", ok ? "note: " : "", B.fail_msg);
    switch (B.scenario) {
    case SC_FANOUT:
    case SC_SESSIONS:
    case SC_SLOW:
        fprintf(stderr, "  published %llu, delivered %llu in %.3f s: %.0f msg/s\n",
                (unsigned long long)B.published, (unsigned long long)B.delivered, elapsed, rate);
        fprintf(stderr, "  latency us: p50 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
                (double)tsb_hist_quantile(&B.lat, 0.5) / 1e3,
                (double)tsb_hist_quantile(&B.lat, 0.99) / 1e3,
                (double)tsb_hist_quantile(&B.lat, 0.999) / 1e3, (double)B.lat.max / 1e3);
        break;
    case SC_IDLE:
        fprintf(stderr, "  %u connections: server RSS %ld -> %ld KiB, %.0f bytes/conn\n", B.conns,
                B.s0.rss_kb, B.s1.rss_kb, per_conn);
        fprintf(stderr,
                "  kernel (machine-wide, both ends of each connection): TCP buffer pages %ld -> "
                "%ld, slab %ld -> %ld KiB (%.0f bytes/conn)\n",
                B.sock_pages0, B.sock_pages1, B.slab_kb0, B.slab_kb1,
                (double)(B.slab_kb1 - B.slab_kb0) * 1024.0 / (double)B.conns);
        break;
    case SC_CONNECT:
        fprintf(stderr, "  %llu handshakes in %.3f s: %.0f/s, p50 %.1f us p99 %.1f us\n",
                (unsigned long long)B.hs_done, elapsed, rate,
                (double)tsb_hist_quantile(&B.hs, 0.5) / 1e3,
                (double)tsb_hist_quantile(&B.hs, 0.99) / 1e3);
        break;
    default: break;
    }
    if (B.scenario == SC_SLOW)
        fprintf(stderr,
                "  %u fast receivers, %u slow (stopped reading): server RSS %ld KiB at the start, "
                "peak %ld KiB, %ld KiB at the end%s; %u of %u slow receivers cut off\n",
                B.fan, B.slow, B.rss_pub0_kb, B.rss_peak_kb, B.rss_pub1_kb,
                B.capped ? " (publishing stopped at --rss-cap)" : "", B.cut, B.slow);
    switch (B.scenario) {
    case SC_REPLAY:
        fprintf(stderr,
                "  %u clients recovered %u missed events each in %.3f s (%.0f msg/s); "
                "not recovered %u\n",
                B.fan, B.burst, elapsed, rate, B.not_recovered);
        break;
    default: break;
    }
    fprintf(stderr, "  checks: dup %llu, gap %llu, missing %llu, foreign %llu, errors %llu\n",
            (unsigned long long)B.dups, (unsigned long long)B.gaps,
            (unsigned long long)B.missing, (unsigned long long)B.foreign,
            (unsigned long long)B.errors);
    double srv_sys = B.s0.ok && B.s1.ok ? B.s1.sys_s - B.s0.sys_s : -1;
    if (srv_sys >= 0 && srv2_cpu >= 0) srv_sys += B.n1.sys_s - B.n0.sys_s;
    double redis_per_dlv =
        redis_cpu >= 0 && B.delivered ? redis_cpu * 1e6 / (double)B.delivered : -1;
    /* server CPU per unit of work: independent of the generator's speed */
    double per_dlv = srv_cpu >= 0 && B.delivered ? srv_cpu * 1e6 / (double)B.delivered : -1;
    double per_hs = srv_cpu >= 0 && B.hs_done ? srv_cpu * 1e6 / (double)B.hs_done : -1;
    if (srv_cpu >= 0)
        fprintf(stderr,
                "  server: cpu %.2f s (%.0f%% of a core, %.0f%% of it in the kernel), rss %ld KiB, "
                "peak %ld KiB\n",
                srv_cpu, 100 * srv_cpu / wall, srv_cpu > 0 ? 100 * srv_sys / srv_cpu : 0.0,
                B.s1.rss_kb, B.s1.hwm_kb);
    if (per_dlv >= 0 && B.scenario != SC_IDLE)
        fprintf(stderr, "  server cpu per delivery: %.2f us\n", per_dlv);
    if (per_hs >= 0) fprintf(stderr, "  server cpu per handshake: %.1f us\n", per_hs);
    double ksirq_per_dlv = ksirq >= 0 && B.delivered ? ksirq * 1e6 / (double)B.delivered : -1;
    if (ksirq_per_dlv >= 0 && B.scenario != SC_IDLE)
        fprintf(stderr, "  ksoftirqd (machine-wide): cpu %.2f s, %.2f us per delivery\n", ksirq,
                ksirq_per_dlv);
    if (srv2_cpu >= 0)
        fprintf(stderr, "  second server: cpu %.2f s of the sum (%.0f%% of a core), peak %ld KiB\n",
                srv2_cpu, 100 * srv2_cpu / wall, B.n1.hwm_kb);
    if (redis_cpu >= 0)
        fprintf(stderr, "  redis: cpu %.2f s (%.0f%% of a core), %.2f us per delivery\n", redis_cpu,
                100 * redis_cpu / wall, redis_per_dlv);
    if (B.session && B.published)
        fprintf(stderr, "  acks: %llu of %llu publishes\n", (unsigned long long)B.acked,
                (unsigned long long)B.published);
    fprintf(stderr, "  tsbench: cpu %.2f s (%.0f%% of a core)\n", cl_cpu, 100 * cl_cpu / wall);

    if (!B.json) return;
    printf("{\"scenario\":\"%s\",\"label\":\"%s\",\"ok\":%s", scenario_name(B.scenario),
           B.label ? B.label : "", ok ? "true" : "false");
    printf(",\"error\":\"");
    for (const char *p = B.fail_msg; *p; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) putchar(*p);
    printf("\"");
    printf(",\"conns\":%u,\"rooms\":%u,\"members\":%u,\"rate\":%.0f,\"window\":%u,"
           "\"duration\":%.2f",
           B.conns, B.rooms, B.members, B.rate, B.window, B.duration);
    printf(",\"published\":%llu,\"delivered\":%llu,\"elapsed\":%.4f,\"per_s\":%.1f",
           (unsigned long long)B.published, (unsigned long long)B.delivered, elapsed, rate);
    printf(",\"dup\":%llu,\"gap\":%llu,\"missing\":%llu,\"foreign\":%llu,\"errors\":%llu",
           (unsigned long long)B.dups, (unsigned long long)B.gaps, (unsigned long long)B.missing,
           (unsigned long long)B.foreign, (unsigned long long)B.errors);
    print_hist_json("lat_us", &B.lat);
    print_hist_json(B.scenario == SC_REPLAY ? "catchup_us" : "handshake_us", &B.hs);
    printf(",\"server_cpu_s\":%.3f,\"server_cpu_pct\":%.1f,\"server_rss_kb\":%ld,"
           "\"server_rss0_kb\":%ld,\"server_hwm_kb\":%ld",
           srv_cpu, srv_cpu >= 0 ? 100 * srv_cpu / wall : -1.0, B.s1.rss_kb, B.s0.rss_kb,
           B.s1.hwm_kb);
    printf(",\"client_cpu_pct\":%.1f,\"wall\":%.3f", 100 * cl_cpu / wall, wall);
    printf(",\"server_sys_s\":%.3f,\"server_us_per_delivery\":%.3f,\"server_us_per_handshake\":%.2f"
           ",\"session\":%s,\"proto\":%u,\"acked\":%llu,\"size\":%u",
           srv_sys, per_dlv, per_hs, B.session ? "true" : "false", B.proto,
           (unsigned long long)B.acked, B.size);
    printf(",\"ksoftirqd_cpu_s\":%.3f,\"ksoftirqd_us_per_delivery\":%.3f", ksirq, ksirq_per_dlv);
    if (B.port2)
        printf(",\"nodes\":2,\"server2_cpu_s\":%.3f,\"server2_hwm_kb\":%ld", srv2_cpu,
               B.n1.hwm_kb);
    if (B.redis_pid)
        printf(",\"redis_cpu_s\":%.3f,\"redis_cpu_pct\":%.1f,\"redis_us_per_delivery\":%.3f",
               redis_cpu, redis_cpu >= 0 ? 100 * redis_cpu / wall : -1.0, redis_per_dlv);
    if (B.scenario == SC_IDLE)
        printf(",\"bytes_per_conn\":%.1f,\"sock_pages0\":%ld,\"sock_pages1\":%ld,\"slab_kb0\":%ld,"
               "\"slab_kb1\":%ld",
               per_conn, B.sock_pages0, B.sock_pages1, B.slab_kb0, B.slab_kb1);
    if (B.scenario == SC_CONNECT || B.scenario == SC_IDLE)
        printf(",\"users\":%u,\"devices\":%u,\"sources\":%u", B.users, B.devices, B.sources);
    if (B.scenario == SC_SLOW) {
        printf(",\"slow\":%u,\"fast\":%u,\"cut\":%u,\"capped\":%s,\"rss_cap_mb\":%u"
               ",\"rss_pub0_kb\":%ld,\"rss_peak_kb\":%ld,\"rss_pub1_kb\":%ld,\"sample_ms\":%d,"
               "\"samples_kb\":[",
               B.slow, B.fan, B.cut, B.capped ? "true" : "false", B.rss_cap_mb,
               B.rss_pub0_kb, B.rss_peak_kb, B.rss_pub1_kb, SAMPLE_MS);
        for (uint32_t i = 0; i < B.nsamples; i++) printf("%s%ld", i ? "," : "", B.samples[i]);
        printf("]");
    }
    if (B.scenario == SC_REPLAY)
        printf(",\"burst\":%u,\"not_recovered\":%u,\"caught\":%u", B.burst, B.not_recovered,
               B.caught);
    printf("}\n");
    fflush(stdout);
}

/* Missing = events a receiver should have and never got. */
static void count_missing(void) {
    if (B.scenario == SC_FANOUT || B.scenario == SC_REPLAY || B.scenario == SC_SLOW) {
        for (uint32_t i = 1; i < B.n; i++)
            if (!B.c[i]->slow && B.c[i]->expect[0] < B.c[0]->sent) B.missing += B.c[0]->sent - B.c[i]->expect[0];
    } else if (B.scenario == SC_SESSIONS) {
        for (uint32_t i = 0; i < B.n; i++) {
            tsb_conn_t *c = B.c[i];
            uint32_t base = c->room * B.members;
            for (uint32_t s = 0; s < B.members; s++) {
                tsb_conn_t *pub = B.c[base + s];
                if (pub != c && c->expect[s] < pub->sent) B.missing += pub->sent - c->expect[s];
            }
        }
    }
}

static int g_exit = 0;

static void close_cb_noop(uv_handle_t *h) {}

static void finish(const char *fail_fmt, ...) {
    if (B.finished) return;
    B.finished = 1;
    if (fail_fmt) {
        va_list ap;
        va_start(ap, fail_fmt);
        vsnprintf(B.fail_msg, sizeof B.fail_msg, fail_fmt, ap);
        va_end(ap);
    }
    if (!B.s1.ok) stats_end();
    count_missing();
    int ok = !fail_fmt && B.dups == 0 && B.gaps == 0 && B.missing == 0 && B.foreign == 0 &&
             B.errors == 0 && B.not_recovered == 0;
    if (ok && B.session && B.acked != B.published) {
        ok = 0;
        snprintf(B.fail_msg, sizeof B.fail_msg, "%llu of %llu publishes acknowledged",
                 (unsigned long long)B.acked, (unsigned long long)B.published);
    }
    if (B.scenario == SC_CONNECT && B.hs_done < B.conns && !fail_fmt) {
        char first[sizeof B.fail_msg];
        memcpy(first, B.fail_msg, sizeof first);
        snprintf(B.fail_msg, sizeof B.fail_msg, "%llu of %u handshakes in %.1f s%s%.200s",
                 (unsigned long long)B.hs_done, B.conns, B.duration,
                 B.errors ? "; first error: " : "", B.errors ? first : "");
    }
    report(ok);
    g_exit = ok ? 0 : 1;
    B.stopping = 1;
    B.publishing = 0;
    uv_close((uv_handle_t *)&B.tick, close_cb_noop);
    uv_close((uv_handle_t *)&B.phase_timer, close_cb_noop);
    uv_close((uv_handle_t *)&B.deadline, close_cb_noop);
    uv_close((uv_handle_t *)&B.pump, close_cb_noop);
    uv_close((uv_handle_t *)&B.sampler, close_cb_noop);
    for (uint32_t i = 0; i < B.n; i++) tsb_conn_close(B.c[i], 1);
}

static void on_deadline(uv_timer_t *t) {
    finish("timeout after %u s in the %s phase (%u of %u connections ready, %llu of %llu "
           "deliveries)",
           B.timeout_s, B.phase ? B.phase : "setup", B.ready, B.ready_target,
           (unsigned long long)B.delivered, (unsigned long long)expected_deliveries());
}

/* ---- main -------------------------------------------------------------- */

static int parse_u32(const char *s, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int usage(const char *msg) {
    if (msg) fprintf(stderr, "tsbench: %s\n", msg);
    fputs(USAGE, stderr);
    return 2;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},     {"server-pid", 1, 0, 'P'},
        {"conns", 1, 0, 'n'},    {"rooms", 1, 0, 'S'},    {"members", 1, 0, 'T'},
        {"rate", 1, 0, 'r'},     {"window", 1, 0, 'w'},   {"duration", 1, 0, 'd'},
        {"conc", 1, 0, 'c'},     {"per-src", 1, 0, 'a'},  {"sources", 1, 0, 'A'},
        {"warm", 1, 0, 'W'},     {"burst", 1, 0, 'b'},    {"gap", 1, 0, 'g'},
        {"settle", 1, 0, 's'},   {"timeout", 1, 0, 't'},  {"json", 0, 0, 'j'},
        {"label", 1, 0, 'l'},    {"help", 0, 0, 'h'},     {"session", 0, 0, 'X'},
        {"jwt-secret", 1, 0, 'J'}, {"users", 1, 0, 'U'},  {"devices", 1, 0, 'D'},
        {"slow", 1, 0, 'k'},     {"size", 1, 0, 'z'},     {"rss-cap", 1, 0, 'R'},
        {"proto", 1, 0, 'o'},    {"port2", 1, 0, '2'},    {"server-pid2", 1, 0, 'Q'},
        {"redis-pid", 1, 0, 'Y'}, {0, 0, 0, 0}};
    B.host = "127.0.0.1";
    B.conns = 1000;
    B.rooms = 100;
    B.members = 4;
    B.window = 16;
    B.duration = 5;
    B.conc = 256;
    B.per_src = 4000;
    B.sources = 4;
    B.warm = 5;
    B.burst = 100;
    B.gap_ms = 500;
    B.settle_ms = 2000;
    B.timeout_s = 120;
    B.users = 10000;
    B.proto = 2;
    B.devices = 2;
    B.slow = UINT32_MAX; /* conns / 10 */
    B.size = TSB_EV_SIZE;
    B.rss_cap_mb = 1536;
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        return usage("missing scenario");
    }
    static const char *names[] = {"fanout", "sessions", "idle", "connect", "replay", "slow"};
    B.scenario = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(argv[1], names[i]) == 0) B.scenario = i;
    if (B.scenario < 0) return usage("unknown scenario");
    optind = 2;
    int o;
    uint32_t u;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        const char *a = optarg;
        int bad = 0;
        switch (o) {
        case 'H': B.host = a; break;
        case 'p': bad = parse_u32(a, &u) || u == 0 || u > 65535; B.port = (int)u; break;
        case 'P': bad = parse_u32(a, &u); B.server_pid = (int)u; break;
        case '2': bad = parse_u32(a, &u) || u == 0 || u > 65535; B.port2 = (int)u; break;
        case 'Q': bad = parse_u32(a, &u); B.server_pid2 = (int)u; break;
        case 'Y': bad = parse_u32(a, &u); B.redis_pid = (int)u; break;
        case 'n': bad = parse_u32(a, &B.conns) || B.conns == 0; break;
        case 'S': bad = parse_u32(a, &B.rooms) || B.rooms == 0; break;
        case 'T': bad = parse_u32(a, &B.members) || B.members < 2; break;
        case 'r': B.rate = strtod(a, NULL); bad = B.rate < 0; break;
        case 'w': bad = parse_u32(a, &B.window) || B.window == 0; break;
        case 'd': B.duration = strtod(a, NULL); bad = B.duration <= 0; break;
        case 'c': bad = parse_u32(a, &B.conc) || B.conc == 0; break;
        case 'a': bad = parse_u32(a, &B.per_src) || B.per_src == 0; break;
        case 'A': bad = parse_u32(a, &B.sources) || B.sources == 0 || B.sources > 250; break;
        case 'W': bad = parse_u32(a, &B.warm) || B.warm == 0; break;
        case 'b': bad = parse_u32(a, &B.burst) || B.burst == 0; break;
        case 'g': bad = parse_u32(a, &B.gap_ms); break;
        case 's': bad = parse_u32(a, &B.settle_ms); break;
        case 't': bad = parse_u32(a, &B.timeout_s) || B.timeout_s == 0; break;
        case 'j': B.json = 1; break;
        case 'l': B.label = a; break;
        case 'X': B.session = 1; break;
        case 'J': B.jwt_secret = a; bad = strlen(a) == 0; break;
        case 'U': bad = parse_u32(a, &B.users) || B.users == 0 || B.users > 1000000; break;
        case 'D': bad = parse_u32(a, &B.devices) || B.devices == 0 || B.devices > 64; break;
        case 'o': bad = parse_u32(a, &B.proto) || B.proto == 0 || B.proto > 4; break;
        case 'k': bad = parse_u32(a, &B.slow); break;
        case 'z': bad = parse_u32(a, &B.size) || B.size < TSB_EV_SIZE || B.size > 65536; break;
        case 'R': bad = parse_u32(a, &B.rss_cap_mb) || B.rss_cap_mb == 0; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return usage(NULL);
        }
        if (bad) {
            char m[160];
            snprintf(m, sizeof m, "bad value for --%s: %s", lo[0].name ? "" : "", a);
            for (int i = 0; lo[i].name; i++)
                if (lo[i].val == o) snprintf(m, sizeof m, "bad value for --%s: %s", lo[i].name, a);
            return usage(m);
        }
    }
    if (optind < argc) return usage("unexpected argument");
    if (!B.port) return usage("--port is required");
    if (B.port2 && B.scenario != SC_FANOUT && B.scenario != SC_SESSIONS)
        return usage("--port2 goes with fanout and sessions");
    if (strncmp(B.host, "127.", 4) != 0) return usage("--host must be a loopback address");
    if (B.session && B.scenario == SC_REPLAY)
        return usage("--session does not go with replay");
    if (B.session && !B.jwt_secret) return usage("--session needs --jwt-secret");
    if (B.size != TSB_EV_SIZE && B.scenario != SC_FANOUT && B.scenario != SC_SLOW &&
        !(B.session && B.scenario == SC_SESSIONS))
        return usage("--size goes with fanout and slow (and sessions --session)");
    if (B.slow == UINT32_MAX) B.slow = B.conns / 10;
    if (B.scenario == SC_SLOW && (B.slow == 0 || B.slow >= B.conns))
        return usage("slow: --slow must be between 1 and --conns - 1");

    uint32_t nexp = 0;
    switch (B.scenario) {
    case SC_FANOUT:
    case SC_REPLAY:
        B.n = B.conns + 1;
        B.fan = B.conns;
        nexp = 1;
        break;
    case SC_SLOW:
        B.n = B.conns + 1;
        B.fan = B.conns - B.slow; /* receivers that read: the publisher's pace */
        nexp = 1;
        break;
    case SC_SESSIONS:
        B.n = B.rooms * B.members;
        B.fan = B.members - 1;
        nexp = B.members;
        break;
    case SC_IDLE: B.n = B.conns; break;
    case SC_CONNECT: B.n = B.conc < B.conns ? B.conc : B.conns; break;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (B.scenario != SC_CONNECT && (uint64_t)B.n + 32 > rl.rlim_cur) {
        fprintf(stderr, "tsbench: %u connections do not fit in the open-file limit %llu\n", B.n,
                (unsigned long long)rl.rlim_cur);
        return 2;
    }

    uv_loop_init(&B.loop);
    tsb_conn_hooks_t hooks = {.connected = on_connected,
                              .ack = on_ack,
                              .event = on_event,
                              .failed = on_failed,
                              .closed = on_closed};
    if (B.session && B.scenario == SC_SESSIONS) { /* a token per tab: user = room, device = slot */
        B.users = B.rooms;
        B.devices = B.members;
    } else if (B.session && (B.scenario == SC_FANOUT || B.scenario == SC_SLOW)) {
        B.users = 1; /* one session, u0/s0; tabs spread over the devices */
        if (B.devices > 4) B.devices = 4;
    }
    if (B.session) {
        hooks.auth = session_auth;
        hooks.welcome = on_welcome;
        if (mint_tokens() != 0) {
            fprintf(stderr, "tsbench: could not mint the session tokens\n");
            return 2;
        }
    }
    if (tsb_client_init(&B.loop, B.host, B.port, B.per_src, B.scenario == SC_REPLAY, &hooks)) {
        fprintf(stderr, "tsbench: bad address %s:%d\n", B.host, B.port);
        return 2;
    }
    if (B.port2 && tsb_client_set_second(B.host, B.port2)) {
        fprintf(stderr, "tsbench: bad address %s:%d\n", B.host, B.port2);
        return 2;
    }
    if (B.session) {
        snprintf(tsb_cl.nsp, sizeof tsb_cl.nsp, "/session");
        tsb_cl.session = 1;
    }
    B.c = calloc(B.n, sizeof *B.c);
    B.q = calloc(B.n, sizeof *B.q);
    for (uint32_t i = 0; i < B.n; i++) B.c[i] = tsb_conn_new(i, nexp);
    if (B.scenario == SC_FANOUT || B.scenario == SC_REPLAY || B.scenario == SC_SLOW)
        for (uint32_t i = 1; i < B.n; i++) B.c[i]->room = 0;
    if (B.scenario == SC_SLOW) /* spread over the room, not one block */
        for (uint32_t k = 0; k < B.slow; k++) B.c[1 + (uint32_t)((uint64_t)k * B.conns / B.slow)]->slow = 1;
    if (B.scenario == SC_SESSIONS)
        for (uint32_t i = 0; i < B.n; i++) {
            B.c[i]->room = i / B.members;
            B.c[i]->slot = i % B.members;
            /* --session: user (and session) = room, device = slot, tab t<ident> */
            B.c[i]->ident = B.c[i]->slot * B.rooms + B.c[i]->room;
        }
    if (B.scenario == SC_FANOUT || B.scenario == SC_SLOW)
        for (uint32_t i = 0; i < B.n; i++) B.c[i]->ident = i;
    tsb_hist_init(&B.lat);
    tsb_hist_init(&B.hs);
    uv_timer_init(&B.loop, &B.tick);
    uv_timer_init(&B.loop, &B.phase_timer);
    uv_timer_init(&B.loop, &B.deadline);
    uv_timer_init(&B.loop, &B.sampler);
    uv_check_init(&B.loop, &B.pump);
    uv_check_start(&B.pump, on_pump);
    uv_timer_start(&B.deadline, on_deadline, (uint64_t)B.timeout_s * 1000, 0);
    B.rejoin = 1;

    switch (B.scenario) {
    case SC_FANOUT:
    case SC_SLOW:
    case SC_SESSIONS: open_range(0, B.n, all_joined); break;
    case SC_IDLE:
        for (uint32_t i = 0; i < B.n; i++) B.c[i]->ident = i; /* tab t<i> */
        stats_start();
        B.sock_pages0 = sock_pages();
        B.slab_kb0 = slab_kb();
        B.t0 = uv_hrtime();
        open_range(0, B.n, idle_all_ready);
        break;
    case SC_CONNECT:
        stats_start();
        B.t0 = uv_hrtime();
        B.phase = "connect";
        for (uint32_t i = 0; i < B.n; i++) connect_next(B.c[i]);
        break;
    case SC_REPLAY: open_range(0, B.n, replay_warm); break;
    }
    uv_run(&B.loop, UV_RUN_DEFAULT);
    for (uint32_t i = 0; i < B.n; i++) tsb_conn_free(B.c[i]);
    if (B.tokens)
        for (size_t i = 0; i < (size_t)B.users * B.devices; i++) free(B.tokens[i]);
    free(B.tokens);
    free(B.samples);
    free(B.c);
    free(B.q);
    tsb_client_deinit();
    uv_loop_close(&B.loop);
    return g_exit;
}
