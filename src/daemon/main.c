/* main.c - tabsyncd: read the configuration, wire net -> Engine.IO ->
 * Socket.IO -> apps on one libuv loop, and shut down gracefully on
 * SIGTERM/SIGINT: stop accepting, tell every client, drain, exit 0. */
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
#include "session/ts_sess_auth.h"
#include "metrics/ts_met.h"

#define DRAIN_TICK_MS 50
/* After every session was told to close, the only ones left are polling
 * sessions waiting for their client's next GET to carry the close packet.
 * A live polling client has a GET out almost all the time, so this wait is
 * short; a client that stopped polling is not waited for beyond it. */
#define POLL_PICKUP_MS 2000

static ts_dmn_t d;
static int phase; /* 0 running, 1 draining sessions, 2 flushing, 3 closing */

static void handle_closed(uv_handle_t *h) { (void)h; }

static void close_net_done(void *ud) { (void)ud; }

static void store_closed(void *ud) { (void)ud; }

static void finish(void) {
    phase = 3;
    uv_timer_stop(&d.drain_timer);
    ts_net_close(d.net, close_net_done, NULL);
    uv_close((uv_handle_t *)&d.drain_timer, handle_closed);
    uv_close((uv_handle_t *)&d.sigterm, handle_closed);
    uv_close((uv_handle_t *)&d.sigint, handle_closed);
}

static size_t sessions(void) {
    return ts_eio_count(d.eio) + (d.raw_eio ? ts_eio_count(d.raw_eio) : 0);
}

static uint64_t pickup_deadline_ms; /* phase 1 ends here at the latest */

/* Phase 1: wait for polling clients to take their close packet. Phase 2:
 * the protocol servers are gone; wait for the queued bytes (close frames,
 * last packets) to reach the kernel, within --shutdown-timeout. */
static void on_drain_tick(uv_timer_t *t) {
    uint64_t now = ts_now_ms();
    if (phase == 1 && (sessions() == 0 || now >= pickup_deadline_ms)) {
        if (sessions())
            ts_info("daemon", "shutdown: %zu polling sessions did not come for their close packet",
                    sessions());
        ts_eio_server_free(d.eio);
        if (d.raw_eio) ts_eio_server_free(d.raw_eio);
        if (d.sess) {
            ts_sess_free(d.sess); /* after the sockets are gone, before Socket.IO */
            d.sess = NULL;
            ts_store_close(&d.store, store_closed, NULL);
        }
        ts_sio_server_free(d.sio);
        d.eio = d.raw_eio = NULL;
        phase = 2;
        return;
    }
    if (phase == 2 && (ts_met.gauges[TS_MET_SEND_QUEUE_BYTES] == 0 || now >= d.drain_deadline_ms)) {
        if (ts_met.gauges[TS_MET_SEND_QUEUE_BYTES])
            ts_warn("daemon", "shutdown: %lld bytes not delivered within --shutdown-timeout",
                    (long long)ts_met.gauges[TS_MET_SEND_QUEUE_BYTES]);
        finish();
    }
}

static void on_signal(uv_signal_t *h, int signum) {
    if (phase != 0) {
        ts_warn("daemon", "second signal: closing at once");
        d.drain_deadline_ms = pickup_deadline_ms = 0;
        return;
    }
    ts_info("daemon", "signal %d: shutting down (stop accepting, close sessions, drain)", signum);
    phase = 1;
    d.shutting_down = 1;
    ts_net_stop_accepting(d.net);
    ts_eio_close_all(d.eio, "server shutting down");
    if (d.raw_eio) ts_eio_close_all(d.raw_eio, "server shutting down");
    uint64_t now = ts_now_ms();
    d.drain_deadline_ms = now + d.cfg.shutdown_timeout_ms;
    pickup_deadline_ms = now + TS_MIN(d.cfg.shutdown_timeout_ms, POLL_PICKUP_MS);
    uv_timer_start(&d.drain_timer, on_drain_tick, 0, DRAIN_TICK_MS);
}

static void on_store_expire(const ts_store_reg_t *e, void *ud) {
    (void)ud;
    ts_debug("session", "registry: tab %.*s of session %.*s expired (its server went away)",
             (int)e->key.tab.len, e->key.tab.p, (int)e->key.session.len, e->key.session.p);
}

/* /session runs when the server can verify tokens. Returns 0, or an exit
 * status after printing why. */
static int start_session(uv_loop_t *loop) {
    char err[512] = "";
    if (!d.cfg.n_jwt_secrets && !d.cfg.jwt_public_key[0]) {
        ts_info("daemon", "/session is off: set --jwt-secret or --jwt-public-key to enable it");
        return 0;
    }
    if (ts_dmn_auth_new(&d.cfg, &d.auth, err, sizeof err) != 0) {
        fprintf(stderr, "tabsyncd: %s\n", err);
        return 2;
    }
    ts_store_cfg_t sc = {.sqlite_path = d.cfg.store_sqlite,
                         .sweep_ms = d.cfg.registry_sweep_ms,
                         .on_expire = on_store_expire};
    if (ts_store_open(&d.store, &ts_store_memory_ops, &sc, loop, err, sizeof err) != 0) {
        fprintf(stderr, "tabsyncd: cannot open the session store: %s\n", err);
        return 1;
    }
    char host[48] = "tabsyncd";
    gethostname(host, sizeof host - 1);
    snprintf(d.node_id, sizeof d.node_id, "%s:%d", host, (int)getpid());
    ts_sess_cfg_t c = {
        .node_id = d.node_id,
        .auth = d.auth,
        .admin_token = d.cfg.admin_token,
        .dev = d.cfg.dev,
        .handshakes_per_ip = d.cfg.limit_handshakes_per_ip,
        .conns_per_ip = d.cfg.limit_conns_per_ip,
        .conns_per_user = d.cfg.limit_conns_per_user,
        .events_per_socket = d.cfg.limit_events_per_socket,
        .bytes_per_socket = d.cfg.limit_bytes_per_socket,
        .strikes = d.cfg.limit_strikes,
        .registry_ttl_ms = d.cfg.registry_ttl_ms,
        .leeway_s = d.cfg.jwt_leeway_s,
    };
    d.sess = ts_sess_new(loop, d.sio, &d.store, &c);
    return 0;
}

int main(int argc, char **argv, char **envp) {
    if (argc > 1 && strcmp(argv[1], "token") == 0) return ts_dmn_token_main(argc - 1, argv + 1, envp);
    ts_dmn_config_defaults(&d.cfg);
    char err[512] = "";
    int rc = ts_dmn_config_parse(&d.cfg, argc, argv, envp, err, sizeof err);
    if (rc == 1) return 0;
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    ts_log_min_level = d.cfg.log_level;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    d.loop = &loop;
    d.started_ms = ts_now_ms();

    /* Listen first: if the address or the certificate is unusable, nothing
     * else has been allocated and the exit is clean (and leak-free). */
    ts_net_opts_t no = {
        .host = d.cfg.listen_host,
        .port = d.cfg.listen_port,
        .http = {.max_header_bytes = d.cfg.http_max_header_bytes,
                 .max_headers = d.cfg.http_max_headers,
                 .max_body = d.cfg.max_payload},
        .request_timeout_ms = d.cfg.http_request_timeout_ms,
        .idle_timeout_ms = d.cfg.http_idle_timeout_ms,
        .max_send_queue = d.cfg.ws_max_send_queue,
        .tls_cert = d.cfg.tls_cert,
        .tls_key = d.cfg.tls_key,
        .err = err,
        .errlen = sizeof err,
    };
    rc = ts_net_start(&loop, &no, ts_dmn_route, &d, &d.net);
    if (rc < 0) {
        if (err[0]) /* the TLS certificate or key is unusable */
            fprintf(stderr, "tabsyncd: %s\n", err);
        else
            fprintf(stderr, "tabsyncd: cannot listen on %s:%u (%s); is another server using it? "
                            "(set --listen HOST:PORT)\n",
                    d.cfg.listen_host, d.cfg.listen_port, uv_strerror(rc));
        uv_run(&loop, UV_RUN_DEFAULT); /* releases the half-made listener */
        uv_loop_close(&loop);
        return 1;
    }

    for (size_t i = 0; i < d.cfg.n_cors_origins; i++) d.cors[i] = d.cfg.cors_origins[i];
    ts_eio_opts_t eo = {
        .path = "/socket.io/",
        .ping_interval_ms = d.cfg.ping_interval_ms,
        .ping_timeout_ms = d.cfg.ping_timeout_ms,
        .upgrade_timeout_ms = d.cfg.upgrade_timeout_ms,
        .max_payload = d.cfg.max_payload,
        .max_queue = d.cfg.ws_max_send_queue,
        .cors = {d.cors, d.cfg.n_cors_origins, d.cfg.cors_credentials},
    };
    ts_sio_opts_t so = {
        .parser = d.cfg.parser_msgpack ? TS_SIO_PARSER_MSGPACK : TS_SIO_PARSER_JSON,
        .recovery_ms = d.cfg.recovery_ms,
        .connect_timeout_ms = d.cfg.connect_timeout_ms,
    };
    d.sio = ts_sio_server_new(&loop, &so);
    rc = start_session(&loop);
    if (rc) {
        ts_sio_server_free(d.sio);
        ts_net_close(d.net, close_net_done, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        ts_sess_auth_free(d.auth);
        return rc;
    }
    if (d.sess) {
        eo.allow = ts_sess_allow_handshake;
        eo.allow_ud = d.sess;
    }
    d.eio = ts_eio_server_new(&loop, &eo, ts_sio_eio_handler(), d.sio);
    if (d.cfg.conformance) {
        ts_eio_opts_t raw = eo;
        raw.path = "/engine.io/";
        d.raw_eio = ts_eio_server_new(&loop, &raw, ts_dmn_echo_eio_handler(), NULL);
    }
    ts_dmn_apps_register(&d);

    /* Signals before the ready line: a supervisor may stop us right after it. */
    uv_signal_init(&loop, &d.sigterm);
    uv_signal_init(&loop, &d.sigint);
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_timer_init(&loop, &d.drain_timer);

    const char *host = d.cfg.listen_host;
    int v6 = strchr(host, ':') != NULL;
    printf("tabsyncd listening on %s://%s%s%s:%u/\n", d.cfg.tls_cert[0] ? "https" : "http",
           v6 ? "[" : "", host, v6 ? "]" : "", ts_net_port(d.net));
    fflush(stdout);
    ts_info("daemon", "listening on %s:%u (parser %s, recovery %s, mode %s)", host,
            ts_net_port(d.net), d.cfg.parser_msgpack ? "msgpack" : "json",
            d.cfg.recovery_ms ? "on" : "off",
            d.cfg.conformance ? "conformance" : d.cfg.test_app ? "test-app" : "default");

    uv_run(&loop, UV_RUN_DEFAULT);
    ts_sess_auth_free(d.auth);
    rc = uv_loop_close(&loop);
    if (rc != 0) {
        ts_error("daemon", "event loop did not close cleanly: %s", uv_strerror(rc));
        return 1;
    }
    ts_info("daemon", "stopped");
    return 0;
}
