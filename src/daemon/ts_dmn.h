/* ts_dmn.h - private to the daemon: the running server's parts, the HTTP
 * router and the built-in namespace apps (echo / test / conformance). */
#ifndef TS_DMN_H
#define TS_DMN_H
#include <uv.h>

#include "daemon/ts_dmn_config.h"
#include "eio/ts_eio.h"
#include "net/ts_net.h"
#include "session/ts_sess.h"
#include "sio/ts_sio.h"
#include "store/ts_store.h"

typedef struct ts_dmn {
    uv_loop_t *loop;
    ts_dmn_config_t cfg;
    ts_net_t *net;
    ts_eio_server_t *eio;      /* Socket.IO's Engine.IO, at /socket.io/ */
    ts_eio_server_t *raw_eio;  /* --conformance: raw Engine.IO echo at /engine.io/ */
    ts_sio_server_t *sio;
    ts_sess_t *sess;           /* /session; NULL without --jwt-secret / --jwt-public-key */
    struct ts_sess_auth *auth; /* the token verifier of /session */
    ts_store_t store;          /* the session store (open when sess is set) */
    char node_id[64];          /* this process in the registry: host:pid */
    const char *cors[TS_DMN_MAX_ORIGINS];
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_timer;
    uint64_t started_ms;
    uint64_t drain_deadline_ms;
    int shutting_down;
} ts_dmn_t;

/* routes.c: every HTTP request lands here. */
void ts_dmn_route(ts_net_t *net, ts_http_conn_t *hc, ts_http_req_t *req, void *ud);

/* apps.c: registers the namespaces of the configured mode on d->sio:
 * the echo app on "/" with --dev; --test-app adds the test namespaces of
 * tests/js/README.md; --conformance the official suites' setup. */
void ts_dmn_apps_register(ts_dmn_t *d);
/* The raw Engine.IO echo of --conformance. */
const ts_eio_handler_t *ts_dmn_echo_eio_handler(void);

#endif
