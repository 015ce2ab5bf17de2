/* ts_dmn.h - private to the daemon: the running server's parts, the HTTP
 * router, the HTTP API and the built-in namespace apps (echo / test /
 * conformance). */
#ifndef TS_DMN_H
#define TS_DMN_H
#include <uv.h>

#include "daemon/ts_dmn_config.h"
#include "eio/ts_eio.h"
#include "net/ts_net.h"
#include "session/ts_sess.h"
#include "sio/ts_sio.h"
#include "adapter/ts_adp_redis.h"
#include "store/ts_store.h"

/* Where the Engine.IO servers listen: Socket.IO's, and --conformance's raw one. */
#define TS_DMN_SIO_PATH "/socket.io/"
#define TS_DMN_RAW_EIO_PATH "/engine.io/"

typedef struct ts_dmn_proc ts_dmn_proc_t;
typedef struct dmn_msg dmn_msg_t;

/* One event loop of the process (a worker): its listener, protocol
 * servers and /session, on its own thread (worker 0 on the main thread). */
typedef struct ts_dmn {
    ts_dmn_proc_t *proc;
    unsigned idx;              /* 0 .. proc->n - 1 */
    uv_loop_t loop_storage;
    uv_loop_t *loop;
    ts_dmn_config_t cfg;       /* the process's, copied */
    ts_net_t *net;
    ts_eio_server_t *eio;      /* Socket.IO's Engine.IO, at /socket.io/ */
    ts_eio_server_t *raw_eio;  /* --conformance: raw Engine.IO echo at /engine.io/ */
    ts_sio_server_t *sio;
    ts_sess_t *sess;           /* /session; NULL without --jwt-secret / --jwt-public-key */
    struct ts_sess_auth *auth; /* the token verifier of /session (the process's) */
    ts_store_t store;          /* this loop's handle on the session store */
    ts_adp_remote_t remote;    /* the other nodes (--store redis://); self NULL: none */
    const char *cors[TS_DMN_MAX_ORIGINS];
    uv_async_t inbox;          /* other loops' messages (dmn_msg_t) */
    dmn_msg_t *msgs;           /* guarded by proc->mu */
    int inbox_open;            /* guarded by proc->mu: messages accepted */
    uv_thread_t thread;
    uv_signal_t sigterm, sigint; /* worker 0 */
    uv_timer_t drain_timer;
    uint64_t started_ms;
    uint64_t drain_deadline_ms;
    uint64_t pickup_deadline_ms;
    int phase;                 /* 0 running, 1 draining sessions, 2 flushing, 3 closing */
    int shutting_down;
} ts_dmn_t;

/* What the loops of the process share. */
struct ts_dmn_proc {
    ts_dmn_config_t cfg;
    size_t n;                  /* loops */
    ts_dmn_t *w[TS_DMN_MAX_WORKERS];
    ts_sio_group_t *group;     /* the Socket.IO namespaces' shared half */
    struct ts_sess_auth *auth;
    struct ts_sess_rules *rules; /* --state-rules (read-only once the loops run) */
    ts_sess_elect_cfg_t elect;   /* --elect-* (read-only once the loops run) */
    ts_sess_elect_task_t elect_tasks[32];
    char node_id[64];          /* this process in the registry: host:pid */
    char adapter_uid[TS_ADP_REDIS_UID_LEN + 1]; /* this process to the other nodes */
    uv_mutex_t mu;             /* the loops' inboxes */
};

/* Hands a connection whose request belongs to loop `to` over to it. */
void ts_dmn_send_conn(unsigned to, ts_http_conn_t *hc, ts_http_req_t *req);

/* routes.c: every HTTP request lands here. */
void ts_dmn_route(ts_net_t *net, ts_http_conn_t *hc, ts_http_req_t *req, void *ud);

/* api.c: serves /api/admin/... (admin token), /api/sessions/... (publisher
 * token) and /api/dev/token (--dev) from d->sess's data API. Returns 1 if
 * the path was one of them (answered, or held until the session layer
 * answers), else 0 (also while /session is off). */
int ts_dmn_api_route(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req);
/* Retry-After seconds (>= 1) if a data API answer says the store is
 * unavailable (the answer itself, or every item of a batch, refused with
 * store_unavailable: nothing was done, the whole request may be resent;
 * from their largest retry_after_ms), else 0. */
uint32_t ts_dmn__api_retry_after(ts_slice_t answer);
/* Percent-decodes `in` (a path segment or a query value, as
 * encodeURIComponent writes them) into out[cap]. Returns 1 if the result
 * is an id of the token alphabet (ts_sess_id_valid), else 0. */
int ts_dmn__api_decode_id(ts_slice_t in, char *out, size_t cap);

/* apps.c: registers the namespaces of the configured mode on d->sio:
 * the echo app on "/" with --dev; --test-app adds the test namespaces of
 * tests/js/README.md; --conformance the official suites' setup. */
void ts_dmn_apps_register(ts_dmn_t *d);
/* The raw Engine.IO echo of --conformance. */
const ts_eio_handler_t *ts_dmn_echo_eio_handler(void);

#endif
