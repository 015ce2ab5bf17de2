/* routes.c - the HTTP router of tabsyncd: Engine.IO endpoints, /healthz,
 * /metrics and the static web pages, in that order. */
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
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"sessions\":%zu,\"uptime_s\":%llu}\n",
                     d->shutting_down ? "draining" : "ok", d->eio ? ts_eio_count(d->eio) : 0,
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

void ts_dmn_route(ts_net_t *net, ts_http_conn_t *hc, ts_http_req_t *req, void *ud) {
    ts_dmn_t *d = ud;
    if (ts_slice_eq_str(req->path, "/healthz")) {
        healthz(d, hc);
        return;
    }
    if (!d->eio) {
        /* the last moments of a shutdown: the protocol servers are gone */
        static const char msg[] = "tabsyncd is shutting down\n";
        ts_http_respond(hc, 503, "Content-Type: text/plain; charset=utf-8\r\n", msg, sizeof msg - 1,
                        1);
        return;
    }
    if (ts_eio_matches(d->eio, req->path)) {
        ts_eio_handle(d->eio, hc, req);
        return;
    }
    if (d->raw_eio && ts_eio_matches(d->raw_eio, req->path)) {
        ts_eio_handle(d->raw_eio, hc, req);
        return;
    }
    if (ts_slice_eq_str(req->path, "/metrics")) {
        metrics(d, hc);
        return;
    }
    if (d->sess && ts_sess_http(d->sess, hc, req)) return;
    static_file(d, hc, req);
}
