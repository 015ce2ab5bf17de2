/* routes.c - the HTTP router of tabsyncd: Engine.IO endpoints, /healthz,
 * /metrics, the HTTP API (api.c) and the static web pages, in that order. */
#include <http_parser.h>
#include <stdio.h>
#include <string.h>

#include "core/ts_log.h"
#include "core/ts_util.h"
#include "daemon/ts_dmn.h"
#include "daemon/ts_dmn_static.h"
#include "metrics/ts_met.h"

static void healthz(ts_dmn_t *d, ts_http_conn_t *hc) {
    char body[256];
    ts_met_t m; /* every loop's sessions */
    ts_met_snapshot(&m);
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"sessions\":%lld,\"workers\":%zu,\"uptime_s\":%llu}\n",
                     d->shutting_down ? "draining" : "ok", (long long)m.gauges[TS_MET_EIO_OPEN],
                     d->proc->n,
                     (unsigned long long)((ts_now_ms() - d->started_ms) / 1000));
    /* 503 while draining so that a load balancer stops sending us users */
    ts_http_respond(hc, d->shutting_down ? 503 : 200, "Content-Type: application/json\r\n", body,
                    (size_t)n, 0);
}

static void metrics(ts_dmn_t *d, ts_http_conn_t *hc) {
    ts_sbuf_t sb = TS_SBUF_INIT;
    ts_met_render(&sb);
    if (d->sess) ts_sess_metrics(d->sess, &sb);
    ts_http_respond_buf(hc, 200, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
                        ts_sbuf_finish(&sb), 0);
}

static void static_file(ts_dmn_t *d, ts_http_conn_t *hc, const ts_http_req_t *req) {
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        ts_http_respond(hc, 405, "Allow: GET, HEAD\r\n", NULL, 0, 0);
        return;
    }
    ts_slice_t inm = {0};
    ts_http_req_header(req, "if-none-match", &inm);
    ts_dmn_static_res_t res;
    int status = ts_dmn_static_site(d->cfg.web_root, d->cfg.node_modules, req->path, inm, &res);
    char hdrs[1400];
    size_t n = 0;
    if (res.content_type) n += (size_t)snprintf(hdrs + n, sizeof hdrs - n, "Content-Type: %s\r\n", res.content_type);
    if (res.etag[0]) n += (size_t)snprintf(hdrs + n, sizeof hdrs - n, "ETag: %s\r\nCache-Control: no-cache\r\n", res.etag);
    if (status == 301) snprintf(hdrs + n, sizeof hdrs - n, "Location: %s\r\n", res.location);
    if (status >= 400) ts_debug("http", "%d %.*s: %s", status, (int)req->path.len, req->path.p, res.why ? res.why : "");
    ts_buf_t *body = res.body;
    res.body = NULL;
    if (req->method == HTTP_HEAD && body) {
        /* HEAD: the headers of the GET without the body (Content-Length
         * then says 0, which HTTP allows for HEAD) */
        ts_buf_unref(body);
        ts_http_respond(hc, status, hdrs, NULL, 0, 0);
    } else if (status == 404) {
        ts_buf_unref(body);
        ts_http_respond(hc, 404, "Content-Type: text/plain; charset=utf-8\r\n", "not found\n", 10, 0);
    } else {
        ts_http_respond_buf(hc, status, hdrs, body, 0);
    }
    ts_dmn_static_res_deinit(&res);
}

/* An Engine.IO request, known by its path even once this loop's servers
 * are gone (draining): the session may live on a loop still serving it. */
static int eio_path(const ts_dmn_t *d, ts_slice_t path) {
    static const char sio[] = TS_DMN_SIO_PATH, raw[] = TS_DMN_RAW_EIO_PATH;
    return (path.len >= sizeof sio - 1 && memcmp(path.p, sio, sizeof sio - 1) == 0) ||
           (d->cfg.conformance && path.len >= sizeof raw - 1 &&
            memcmp(path.p, raw, sizeof raw - 1) == 0);
}

void ts_dmn_route(ts_net_t *net, ts_http_conn_t *hc, ts_http_req_t *req, void *ud) {
    ts_dmn_t *d = ud;
    if (ts_slice_eq_str(req->path, "/healthz")) {
        healthz(d, hc);
        return;
    }
    if (d->proc->n > 1 && eio_path(d, req->path)) {
        /* A session lives on the loop that made it; the kernel spreads
         * connections over the loops: a poll, a post or an upgrade that
         * landed on another one moves there (even while this loop drains:
         * that one may still be serving the session). */
        int owner = ts_eio_request_loop(req, (unsigned)d->proc->n);
        if (owner >= 0 && (unsigned)owner != d->idx) {
            ts_dmn_send_conn((unsigned)owner, hc, req);
            return;
        }
    }
    if (!d->eio) {
        /* the last moments of a shutdown: the protocol servers are gone */
        static const char msg[] = "tabsyncd is shutting down\n";
        ts_http_respond(hc, 503, "Content-Type: text/plain; charset=utf-8\r\n", msg, sizeof msg - 1,
                        1);
        return;
    }
    ts_eio_server_t *eio = ts_eio_matches(d->eio, req->path) ? d->eio
                           : d->raw_eio && ts_eio_matches(d->raw_eio, req->path) ? d->raw_eio
                                                                                 : NULL;
    if (eio) {
        ts_eio_handle(eio, hc, req);
        return;
    }
    if (ts_slice_eq_str(req->path, "/metrics")) {
        metrics(d, hc);
        return;
    }
    if (ts_dmn_api_route(d, hc, req)) return;
    static_file(d, hc, req);
}
