/* main.c - tabsyncd: read the configuration, start one event loop per
 * worker (--workers; each on its own thread, all accepting on the same
 * port with SO_REUSEPORT, which loop 0 first checks no other process
 * holds: ts_net_opts_t.exclusive) wiring net -> Engine.IO -> Socket.IO -> apps,
 * and shut down gracefully on SIGTERM/SIGINT: stop accepting, tell every
 * client, drain, exit 0.
 *
 * The loops share nothing but what must be one per process: the Socket.IO
 * group (ordered broadcast log, saved sessions), the session store, the
 * token verifier and the per-address/per-user limits. A connection whose
 * Engine.IO session lives on another loop is moved there (inbox). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "daemon/ts_dmn.h"
#include "daemon/ts_dmn_token.h"
#include "metrics/ts_met.h"
#include "session/ts_sess_auth.h"
#include "session/ts_sess_envelope.h"
#include "session/ts_sess_state.h"

#define DRAIN_TICK_MS 50
/* After every session was told to close, the only ones left are polling
 * sessions waiting for their client's next GET to carry the close packet.
 * A live polling client has a GET out almost all the time, so this wait is
 * short; a client that stopped polling is not waited for beyond it. */
#define POLL_PICKUP_MS 2000

enum msg_kind { MSG_CONN, MSG_SHUTDOWN, MSG_HURRY };

/* A message from one loop to another. */
struct dmn_msg {
    dmn_msg_t *next;
    enum msg_kind kind;
    ts_net_handoff_t *conn; /* MSG_CONN */
};

static ts_dmn_proc_t proc;

/* ---- inboxes ---- */

/* Returns 0, or -1 if `to` no longer takes messages (it is closing). */
static int post(ts_dmn_t *to, dmn_msg_t *m) {
    uv_mutex_lock(&proc.mu);
    int open = to->inbox_open;
    if (open) {
        /* appended: the receiver handles them in the order sent */
        dmn_msg_t **at = &to->msgs;
        while (*at) at = &(*at)->next;
        m->next = NULL;
        *at = m;
        uv_async_send(&to->inbox);
    }
    uv_mutex_unlock(&proc.mu);
    return open ? 0 : -1;
}

static void post_kind(ts_dmn_t *to, enum msg_kind kind) {
    dmn_msg_t *m = ts_xcalloc(1, sizeof(*m));
    m->kind = kind;
    if (post(to, m) != 0) free(m);
}

static void send_handoff(ts_net_handoff_t *h, void *ud) {
    ts_dmn_t *to = ud;
    dmn_msg_t *m = ts_xcalloc(1, sizeof(*m));
    m->kind = MSG_CONN;
    m->conn = h;
    if (post(to, m) != 0) {
        ts_net_handoff_free(h); /* that loop is shutting down: the client reconnects */
        free(m);
    }
}

void ts_dmn_send_conn(unsigned to, ts_http_conn_t *hc, ts_http_req_t *req) {
    ts_http_conn_handoff(hc, req, send_handoff, proc.w[to]);
}

static void begin_shutdown(ts_dmn_t *d);
static void hurry(ts_dmn_t *d);

static void on_inbox(uv_async_t *h) {
    ts_dmn_t *d = h->data;
    uv_mutex_lock(&proc.mu);
    dmn_msg_t *m = d->msgs;
    d->msgs = NULL;
    uv_mutex_unlock(&proc.mu);
    while (m) {
        dmn_msg_t *next = m->next;
        if (m->kind == MSG_CONN) {
            if (d->net && d->phase < 2)
                ts_net_adopt(d->net, m->conn);
            else
                ts_net_handoff_free(m->conn);
        } else if (m->kind == MSG_SHUTDOWN) {
            begin_shutdown(d);
        } else {
            hurry(d);
        }
        free(m);
        m = next;
    }
}

/* ---- shutdown, per loop ---- */

static void handle_closed(uv_handle_t *h) { (void)h; }

static void close_net_done(void *ud) { (void)ud; }

static void store_closed(void *ud) { (void)ud; }

/* The adapter goes before the store (its unsubscribes need the store) and
 * after the Socket.IO server stopped broadcasting. */
static void close_store(ts_dmn_t *d) {
    if (d->remote.self) ts_adp_redis_close(&d->remote);
    if (d->store.self) ts_store_close(&d->store, store_closed, NULL);
}


static void finish(ts_dmn_t *d) {
    d->phase = 3;
    uv_timer_stop(&d->drain_timer);
    ts_net_close(d->net, close_net_done, NULL);
    d->net = NULL;
    uv_close((uv_handle_t *)&d->drain_timer, handle_closed);
    if (d->idx == 0) {
        uv_close((uv_handle_t *)&d->sigterm, handle_closed);
        uv_close((uv_handle_t *)&d->sigint, handle_closed);
    }
    uv_mutex_lock(&proc.mu);
    d->inbox_open = 0;
    dmn_msg_t *m = d->msgs;
    d->msgs = NULL;
    uv_mutex_unlock(&proc.mu);
    while (m) { /* nobody will take these now */
        dmn_msg_t *next = m->next;
        ts_net_handoff_free(m->conn);
        free(m);
        m = next;
    }
    uv_close((uv_handle_t *)&d->inbox, handle_closed);
}

static size_t sessions(const ts_dmn_t *d) {
    return ts_eio_count(d->eio) + (d->raw_eio ? ts_eio_count(d->raw_eio) : 0);
}

/* Phase 1: wait for polling clients to take their close packet. Phase 2:
 * the protocol servers are gone; wait for the queued bytes (close frames,
 * last packets) to reach the kernel, within --shutdown-timeout. */
static void on_drain_tick(uv_timer_t *t) {
    ts_dmn_t *d = t->data;
    uint64_t now = ts_now_ms();
    if (d->phase == 1 && (sessions(d) == 0 || now >= d->pickup_deadline_ms)) {
        if (sessions(d))
            ts_info("daemon", "shutdown: %zu polling sessions did not come for their close packet",
                    sessions(d));
        ts_eio_server_free(d->eio);
        if (d->raw_eio) ts_eio_server_free(d->raw_eio);
        if (d->sess) {
            ts_sess_free(d->sess); /* after the sockets are gone, before Socket.IO */
            d->sess = NULL;
        }
        if (d->sio) ts_sio_server_set_remote(d->sio, NULL, 0);
        close_store(d);
        ts_sio_server_free(d->sio);
        d->eio = d->raw_eio = NULL;
        d->phase = 2;
        return;
    }
    /* the send-queue gauge is this thread's: this loop's connections */
    if (d->phase == 2 &&
        (ts_met.gauges[TS_MET_SEND_QUEUE_BYTES] == 0 || now >= d->drain_deadline_ms)) {
        if (ts_met.gauges[TS_MET_SEND_QUEUE_BYTES])
            ts_warn("daemon", "shutdown: %lld bytes not delivered within --shutdown-timeout",
                    (long long)ts_met.gauges[TS_MET_SEND_QUEUE_BYTES]);
        finish(d);
    }
}

static void begin_shutdown(ts_dmn_t *d) {
    if (d->phase != 0) return;
    d->phase = 1;
    d->shutting_down = 1;
    ts_net_stop_accepting(d->net);
    ts_eio_close_all(d->eio, "server shutting down");
    if (d->raw_eio) ts_eio_close_all(d->raw_eio, "server shutting down");
    uint64_t now = ts_now_ms();
    d->drain_deadline_ms = now + d->cfg.shutdown_timeout_ms;
    d->pickup_deadline_ms = now + TS_MIN(d->cfg.shutdown_timeout_ms, POLL_PICKUP_MS);
    uv_timer_start(&d->drain_timer, on_drain_tick, 0, DRAIN_TICK_MS);
}

static void hurry(ts_dmn_t *d) { d->drain_deadline_ms = d->pickup_deadline_ms = 0; }

static void on_signal(uv_signal_t *h, int signum) {
    ts_dmn_t *d = h->data;
    int again = d->phase != 0;
    if (again)
        ts_warn("daemon", "second signal: closing at once");
    else
        ts_info("daemon", "signal %d: shutting down (stop accepting, close sessions, drain)",
                signum);
    for (size_t i = 1; i < proc.n; i++) post_kind(proc.w[i], again ? MSG_HURRY : MSG_SHUTDOWN);
    if (again)
        hurry(d);
    else
        begin_shutdown(d);
}

/* ---- starting ---- */

static void on_store_expire(const ts_store_reg_t *e, void *ud) {
    (void)ud;
    ts_debug("session", "registry: tab %.*s of session %.*s expired (its server went away)",
             (int)e->key.tab.len, e->key.tab.p, (int)e->key.session.len, e->key.session.p);
}

static int ops_is_redis(const ts_dmn_t *d) { return !strncmp(d->cfg.store, "redis", 5); }

/* /session runs when the server can verify tokens. Loop 0 opens the store;
 * the others attach to it and share loop 0's limits. Returns 0, or an exit
 * status after printing why.
 *
 * A --store-sqlite file is opened (and so checked: its schema, that it can
 * be written and that no other tabsyncd holds it) whenever it is given,
 * also with /session off, where loop 0 keeps it open unused until exit: a
 * corrupt or unusable file fails the start it was given to, not the later
 * one that turns /session on (issue #14). */
static int start_session(ts_dmn_t *d) {
    char err[512] = "";
    if (!proc.auth && !(d->idx == 0 && d->cfg.store_sqlite[0])) {
        if (d->idx == 0 && d->cfg.store[0] && strcmp(d->cfg.store, "memory") != 0)
            ts_warn("daemon", "--store %s: unused while /session is off (set --jwt-secret or "
                              "--jwt-public-key)", ts_store_redis_ops.name);
        return 0;
    }
    if (d->idx == 0) {
        static const ts_store_durability_t dur[] = {
            [TS_DMN_DUR_GROUP] = TS_STORE_DUR_GROUP,
            [TS_DMN_DUR_SYNC] = TS_STORE_DUR_SYNC,
            [TS_DMN_DUR_NONE] = TS_STORE_DUR_NONE};
        ts_store_cfg_t sc = {.sqlite_path = d->cfg.store_sqlite,
                             .sweep_ms = d->cfg.registry_sweep_ms,
                             .on_expire = on_store_expire,
                             .durability = dur[d->cfg.durability],
                             .group_ms = d->cfg.group_commit_ms,
                             .retain_events = d->cfg.retain_events,
                             .retain_ms = (uint64_t)d->cfg.retain_age_s * 1000};
        const ts_store_ops_t *ops = &ts_store_memory_ops;
        if (ops_is_redis(d)) { /* redis:// or rediss:// (config.c) */
            ops = &ts_store_redis_ops;
            sc.redis_url = d->cfg.store;
            sc.redis_prefix = d->cfg.redis_prefix[0] ? d->cfg.redis_prefix : NULL;
            sc.redis_log_layout = d->cfg.redis_log_layout == 1 ? TS_STORE_RLOG_V1 : TS_STORE_RLOG_V2;
        } else if (!d->cfg.store_sqlite[0]) {
            /* memory only, the tail in memory is the whole log: let the
             * retention settings bound it (mem_bytes_max bounds them all) */
            sc.log_mem_events = d->cfg.retain_events;
            sc.log_mem_bytes = 64u << 20;
        }
        if (ts_store_open(&d->store, ops, &sc, d->loop, err, sizeof err) != 0) {
            fprintf(stderr, "tabsyncd: cannot open the session store: %s\n", err);
            return 1;
        }
        if (!proc.auth) {
            ts_warn("daemon", "--store-sqlite %s: checked, but unused while /session is off "
                              "(set --jwt-secret or --jwt-public-key)", d->cfg.store_sqlite);
            return 0;
        }
    } else if (ts_store_attach(&d->store, &proc.w[0]->store, d->loop) != 0) {
        fprintf(stderr, "tabsyncd: the session store cannot be shared by several loops\n");
        return 1;
    }
    ts_sess_cfg_t c = {
        .node_id = proc.node_id,
        .auth = proc.auth,
        .dev = d->cfg.dev,
        .handshakes_per_ip = d->cfg.limit_handshakes_per_ip,
        .conns_per_ip = d->cfg.limit_conns_per_ip,
        .conns_per_user = d->cfg.limit_conns_per_user,
        .events_per_socket = d->cfg.limit_events_per_socket,
        .events_per_user = d->cfg.limit_events_per_user,
        .bytes_per_socket = d->cfg.limit_bytes_per_socket,
        .strikes = d->cfg.limit_strikes,
        .queue_max = d->cfg.limit_queue,
        .registry_ttl_ms = d->cfg.registry_ttl_ms,
        .leeway_s = d->cfg.jwt_leeway_s,
        .share_with = d->idx ? proc.w[0]->sess : NULL,
        .history = d->cfg.history ? TS_SESS_HISTORY_ON : TS_SESS_HISTORY_OFF,
        .rules = proc.rules,
        .snapshot_every = d->cfg.snapshot_every,
        .channel_prefix = d->cfg.redis_prefix[0] ? d->cfg.redis_prefix : "ts:",
        .hist_cache_max = d->cfg.hist_cache,
        .hist_cache_bytes = (size_t)d->cfg.hist_cache_mb << 20,
        .elect = proc.elect,
    };
    d->sess = ts_sess_new(d->loop, d->sio, &d->store, &c);
    if (ops_is_redis(d)) {
        /* the other nodes: every loop publishes, loop 0 listens for the process */
        ts_adp_redis_cfg_t ac = {
            .uid = proc.adapter_uid,
            .prefix = d->cfg.redis_adapter_key,
            .format = strcmp(d->cfg.redis_adapter, "sharded") == 0 ? TS_ADP_RMSG_SHARDED
                                                                     : TS_ADP_RMSG_CLASSIC,
            .loop = d->loop,
        };
        if (ts_adp_redis_open(&d->remote, &d->store, &ac) != 0) {
            fprintf(stderr, "tabsyncd: cannot start the Redis adapter\n");
            return 1;
        }
        ts_sio_server_set_remote(d->sio, &d->remote, d->idx == 0);
    }
    return 0;
}

/* --state-rules: read once, shared (read-only) by every loop. */
static int load_rules(void) {
    const char *path = proc.cfg.state_rules;
    if (!path[0]) return 0;
    char why[256] = "";
    size_t len = 0;
    char *text = NULL;
    if (ts_sess_auth_read_file(path, 1 << 20, &text, &len, why, sizeof why) != 0) {
        fprintf(stderr, "tabsyncd: --state-rules %s: %s\n", path, why);
        return 2;
    }
    int rc = ts_sess_rules_parse(text, len, &proc.rules, why, sizeof why);
    free(text);
    if (rc) {
        fprintf(stderr, "tabsyncd: --state-rules %s: %s\n", path, why);
        return 2;
    }
    return 0;
}

/* --elect-*: checked once, shared (read-only) by every loop. */
static int load_elect(void) {
    const ts_dmn_config_t *c = &proc.cfg;
    ts_sess_elect_cfg_t *e = &proc.elect;
    *e = (ts_sess_elect_cfg_t){.lease_ms = c->elect_lease_ms,
                               .margin = c->elect_margin,
                               .demote_below = c->elect_demote_below,
                               .min_tenure_ms = c->elect_min_tenure_ms,
                               .max_tenure_ms = c->elect_max_tenure_ms,
                               .weights = ts_el_default_weights};
    char why[256] = "";
    if (c->elect_weights[0] && ts_el_weights_parse(c->elect_weights, &e->weights, why, sizeof why)) {
        fprintf(stderr, "tabsyncd: --elect-%s\n", why);
        return 2;
    }
    size_t slen = strlen(c->elect_grant_secret);
    if (slen && slen < TS_SESS_SECRET_MIN) {
        fprintf(stderr, "tabsyncd: --elect-grant-secret must be at least %d bytes\n",
                TS_SESS_SECRET_MIN);
        return 2;
    }
    e->grant_secret = slen ? c->elect_grant_secret : NULL;
    e->grant_secret_len = slen;
    /* name[:stall_ms],... : the names point into proc.cfg.elect_tasks (split in place) */
    char *p = proc.cfg.elect_tasks;
    while (p && *p) {
        char *next = strchr(p, ',');
        if (next) *next++ = '\0';
        char *colon = strchr(p, ':'), *stop = NULL;
        unsigned long ms = 0;
        if (colon) {
            *colon = '\0';
            ms = strtoul(colon + 1, &stop, 10);
        }
        if (!ts_sess_name_ok(p) || (colon && (*stop || ms < 100 || ms > 3600000)) ||
            e->ntasks == TS_ARRAY_LEN(proc.elect_tasks)) {
            fprintf(stderr, "tabsyncd: --elect-tasks: \"%s\" is not name[:ms] (a name of "
                            "[A-Za-z0-9._:/-], ms 100..3600000, at most 32 tasks)\n", p);
            return 2;
        }
        proc.elect_tasks[e->ntasks++] = (ts_sess_elect_task_t){p, ms};
        p = next;
    }
    e->tasks = proc.elect_tasks;
    return 0;
}

static int start_auth(void) {
    char err[512] = "";
    if (!proc.cfg.n_jwt_secrets && !proc.cfg.jwt_public_key[0]) {
        ts_info("daemon", "/session is off: set --jwt-secret or --jwt-public-key to enable it");
        return 0;
    }
    if (ts_dmn_auth_new(&proc.cfg, &proc.auth, err, sizeof err) != 0) {
        fprintf(stderr, "tabsyncd: %s\n", err);
        return 2;
    }
    int rc = load_rules();
    return rc ? rc : load_elect();
}

/* Sets up loop `idx` (on the main thread, before any loop runs). Returns 0,
 * or an exit status after printing why; `port` is where loop 0 listens. */
static int worker_start(ts_dmn_t *d, unsigned idx, uint16_t port) {
    char err[512] = "";
    d->proc = &proc;
    d->idx = idx;
    d->cfg = proc.cfg;
    d->loop = &d->loop_storage;
    uv_loop_init(d->loop);
    d->started_ms = ts_now_ms();

    /* Listen first: if the address or the certificate is unusable, nothing
     * else has been allocated and the exit is clean (and leak-free). */
    ts_net_opts_t no = {
        .host = d->cfg.listen_host,
        .port = port,
        .http = {.max_header_bytes = d->cfg.http_max_header_bytes,
                 .max_headers = d->cfg.http_max_headers,
                 .max_body = d->cfg.max_payload},
        .request_timeout_ms = d->cfg.http_request_timeout_ms,
        .idle_timeout_ms = d->cfg.http_idle_timeout_ms,
        .max_send_queue = d->cfg.ws_max_send_queue,
        .io = d->cfg.io_uring ? TS_NET_IO_URING : TS_NET_IO_SYSCALLS,
        .accept = d->cfg.defer_accept ? TS_NET_ACCEPT_FIRST_BYTES : TS_NET_ACCEPT_CONNECTED,
        .tls_cert = d->cfg.tls_cert,
        .tls_key = d->cfg.tls_key,
        /* loop 0 claims the port; the others join it (SO_REUSEPORT) */
        .exclusive = idx == 0,
        .err = err,
        .errlen = sizeof err,
    };
    int rc = ts_net_start(d->loop, &no, ts_dmn_route, d, &d->net);
    if (rc < 0) {
        if (err[0]) /* the TLS certificate or key is unusable */
            fprintf(stderr, "tabsyncd: %s\n", err);
        else {
            int v6 = strchr(d->cfg.listen_host, ':') != NULL;
            fprintf(stderr, "tabsyncd: cannot listen on %s%s%s:%u (%s); is another server using "
                            "it? (set --listen HOST:PORT)\n",
                    v6 ? "[" : "", d->cfg.listen_host, v6 ? "]" : "", port, uv_strerror(rc));
        }
        d->net = NULL;
        return 1;
    }

    if (idx == 0 && (rc = start_auth()) != 0) return rc;
    d->auth = proc.auth;
    for (size_t i = 0; i < d->cfg.n_cors_origins; i++) d->cors[i] = d->cfg.cors_origins[i];
    ts_eio_opts_t eo = {
        .path = TS_DMN_SIO_PATH,
        .ping_interval_ms = d->cfg.ping_interval_ms,
        .ping_timeout_ms = d->cfg.ping_timeout_ms,
        .upgrade_timeout_ms = d->cfg.upgrade_timeout_ms,
        .max_payload = d->cfg.max_payload,
        .max_queue = d->cfg.ws_max_send_queue,
        .cors = {d->cors, d->cfg.n_cors_origins, d->cfg.cors_credentials},
        .loop_index = idx,
        .nloops = (unsigned)proc.n,
    };
    d->sio = ts_sio_server_new_in(d->loop, proc.group, idx);
    rc = start_session(d);
    if (rc) return rc;
    if (d->sess) {
        eo.allow = ts_sess_allow_handshake;
        eo.allow_ud = d->sess;
    }
    d->eio = ts_eio_server_new(d->loop, &eo, ts_sio_eio_handler(), d->sio);
    if (d->cfg.conformance) {
        ts_eio_opts_t raw = eo;
        raw.path = TS_DMN_RAW_EIO_PATH;
        d->raw_eio = ts_eio_server_new(d->loop, &raw, ts_dmn_echo_eio_handler(), NULL);
    }
    ts_dmn_apps_register(d);
    uv_async_init(d->loop, &d->inbox, on_inbox);
    d->inbox.data = d;
    d->inbox_open = 1;
    uv_timer_init(d->loop, &d->drain_timer);
    d->drain_timer.data = d;
    return 0;
}

/* Undoes a worker_start that failed or never ran its loop. */
static void worker_abort(ts_dmn_t *d) {
    if (!d->loop) return;
    if (d->eio) ts_eio_server_free(d->eio);
    if (d->raw_eio) ts_eio_server_free(d->raw_eio);
    if (d->sess) ts_sess_free(d->sess);
    if (d->sio) ts_sio_server_set_remote(d->sio, NULL, 0);
    close_store(d);
    if (d->sio) ts_sio_server_free(d->sio);
    if (d->net) ts_net_close(d->net, close_net_done, NULL);
    if (d->inbox_open) { /* both were made last, together */
        uv_close((uv_handle_t *)&d->inbox, handle_closed);
        uv_close((uv_handle_t *)&d->drain_timer, handle_closed);
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    uv_loop_close(d->loop);
}

static void worker_main(void *arg) {
    ts_dmn_t *d = arg;
    ts_met_thread_register();
    uv_run(d->loop, UV_RUN_DEFAULT);
    ts_met_thread_unregister();
}

static void proc_free(void) {
    for (size_t i = 0; i < proc.n; i++) free(proc.w[i]);
    ts_sio_group_free(proc.group);
    ts_sess_auth_free(proc.auth);
    ts_sess_rules_free(proc.rules);
    uv_mutex_destroy(&proc.mu);
}

int main(int argc, char **argv, char **envp) {
    if (argc > 1 && strcmp(argv[1], "token") == 0) return ts_dmn_token_main(argc - 1, argv + 1, envp);
    ts_dmn_config_defaults(&proc.cfg);
    char err[512] = "";
    int rc = ts_dmn_config_parse(&proc.cfg, argc, argv, envp, err, sizeof err);
    if (rc == 1) return 0;
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    ts_log_min_level = proc.cfg.log_level;
    signal(SIGPIPE, SIG_IGN);
    ts_met_thread_register();
    proc.n = proc.cfg.workers ? proc.cfg.workers : uv_available_parallelism();
    if (proc.n > TS_DMN_MAX_WORKERS) proc.n = TS_DMN_MAX_WORKERS;
    uv_mutex_init(&proc.mu);
    ts_sio_opts_t so = {
        .parser = proc.cfg.parser_msgpack ? TS_SIO_PARSER_MSGPACK : TS_SIO_PARSER_JSON,
        .recovery_ms = proc.cfg.recovery_ms,
        .connect_timeout_ms = proc.cfg.connect_timeout_ms,
        .max_saved = proc.cfg.recovery_max_sessions,
        .max_saved_bytes = proc.cfg.recovery_max_bytes,
        .max_saved_per_addr = proc.cfg.recovery_max_per_addr,
    };
    proc.group = ts_sio_group_new(&so, proc.n);
    char host[48] = "tabsyncd";
    gethostname(host, sizeof host - 1);
    snprintf(proc.node_id, sizeof proc.node_id, "%s:%d", host, (int)getpid());
    ts_adp_redis_uid(proc.adapter_uid);
    for (size_t i = 0; i < proc.n; i++) proc.w[i] = ts_xcalloc(1, sizeof(ts_dmn_t));

    uint16_t port = proc.cfg.listen_port;
    for (size_t i = 0; rc == 0 && i < proc.n; i++) {
        rc = worker_start(proc.w[i], (unsigned)i, port);
        if (rc == 0 && i == 0) port = ts_net_port(proc.w[0]->net); /* the others share it */
    }
    if (rc) {
        for (size_t i = proc.n; i-- > 0;) worker_abort(proc.w[i]);
        proc_free();
        return rc;
    }
    ts_dmn_t *d0 = proc.w[0];

    /* Signals before the ready line: a supervisor may stop us right after it. */
    uv_signal_init(d0->loop, &d0->sigterm);
    uv_signal_init(d0->loop, &d0->sigint);
    d0->sigterm.data = d0->sigint.data = d0;
    uv_signal_start(&d0->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d0->sigint, on_signal, SIGINT);

    for (size_t i = 1; i < proc.n; i++) {
        if (uv_thread_create(&proc.w[i]->thread, worker_main, proc.w[i]) != 0) {
            fprintf(stderr, "tabsyncd: cannot start thread %zu of %zu\n", i + 1, proc.n);
            abort();
        }
    }

    const char *host_s = proc.cfg.listen_host;
    int v6 = strchr(host_s, ':') != NULL;
    printf("tabsyncd listening on %s://%s%s%s:%u/\n", proc.cfg.tls_cert[0] ? "https" : "http",
           v6 ? "[" : "", host_s, v6 ? "]" : "", port);
    fflush(stdout);
    ts_info("daemon", "listening on %s:%u (workers %zu, parser %s, recovery %s, mode %s)", host_s,
            port, proc.n, proc.cfg.parser_msgpack ? "msgpack" : "json",
            proc.cfg.recovery_ms ? "on" : "off",
            proc.cfg.conformance ? "conformance" : proc.cfg.test_app ? "test-app" : "default");

    uv_run(d0->loop, UV_RUN_DEFAULT);
    int bad = 0;
    for (size_t i = 1; i < proc.n; i++) uv_thread_join(&proc.w[i]->thread);
    for (size_t i = 0; i < proc.n; i++) {
        rc = uv_loop_close(proc.w[i]->loop);
        if (rc != 0) {
            ts_error("daemon", "event loop %zu did not close cleanly: %s", i, uv_strerror(rc));
            bad = 1;
        }
    }
    proc_free();
    if (bad) return 1;
    ts_info("daemon", "stopped");
    return 0;
}
