/* http_conn.c - the HTTP/1.1 side of a connection: parse requests, hand
 * each up, and send the answer now or later (a held long-polling GET).
 * One request at a time per connection: bytes of a pipelined request wait
 * in the read buffer until the current one is answered. */
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_log.h"
#include "metrics/ts_met.h"
#include "net/net_int.h"

static void respond_error(ts_conn_t *c, int status, const char *why) {
    if (status == 413 || status == 431)
        TS_MET_ERR(HTTP_TOO_LARGE);
    else if (status == 408)
        TS_MET_ERR(HTTP_TIMEOUT);
    else
        TS_MET_ERR(HTTP_BAD_REQUEST);
    ts_debug("http", "%d for %s: %s", status, ts_conn_peer(c), why);
    char body[160];
    int n = snprintf(body, sizeof body, "%s\n", why);
    ts_buf_t *r = ts_http_response(status, "Content-Type: text/plain; charset=utf-8\r\n", body,
                                   (size_t)n, 0);
    ts_net__queue(c, r, r->data, r->len, NULL, 0, TS_NET_CLASS_FIRST, 0);
    ts_buf_unref(r);
    c->flags &= ~(uint32_t)TS_CONN_AWAITING;
    c->abort_cb = NULL;
    ts_net__end(c);
}

size_t ts_net__http_process(ts_conn_t *c, uint8_t *data, size_t len) {
    if (c->flags & TS_CONN_AWAITING) return 0; /* answer the current request first */
    if (!c->parser) c->parser = ts_http_parser_new(&ts_net__of(c)->opts.http);
    size_t off = 0;
    while (off < len) {
        size_t used = 0;
        ts_http_req_t *req = NULL;
        int status = 0;
        int rc = ts_http_parser_feed(c->parser, data + off, len - off, &used, &req, &status);
        off += used;
        if (rc < 0) {
            respond_error(c, status ? status : 400, ts_http_parser_errmsg(c->parser));
            return len;
        }
        if (rc == 0) {
            if (ts_http_parser_in_request(c->parser) && c->timer_kind != TS_TIMER_REQUEST)
                ts_net__timer(c, TS_TIMER_REQUEST);
            return off;
        }
        TS_MET_INC(HTTP_REQUESTS);
        ts_net__timer(c, TS_TIMER_NONE);
        c->keep_alive = req->keep_alive;
        c->flags |= TS_CONN_AWAITING;
        ts_net__of(c)->on_request(ts_net__of(c), c, req, ts_net__of(c)->ud);
        if (c->flags & (TS_CONN_CLOSING | TS_CONN_ENDING | TS_CONN_SHUTDOWN)) return len;
        if (c->mode != TS_CONN_HTTP || (c->flags & TS_CONN_AWAITING)) return off;
    }
    return off;
}

void ts_net__http_timeout(ts_conn_t *c) {
    if (c->parser && ts_http_parser_in_request(c->parser)) {
        respond_error(c, 408, "http: request not received in time");
        return;
    }
    ts_net__close(c); /* a connection that never said anything */
}

void ts_net__http_closed(ts_conn_t *c) {
    if ((c->flags & TS_CONN_AWAITING) && c->abort_cb) {
        ts_http_abort_cb cb = c->abort_cb;
        c->abort_cb = NULL;
        cb(c, c->abort_ud);
    }
}

void ts_http_respond_buf(ts_http_conn_t *c, int status, const char *headers, ts_buf_t *body,
                         int close) {
    if (!(c->flags & TS_CONN_AWAITING) || (c->flags & TS_CONN_CLOSING)) {
        ts_buf_unref(body);
        return;
    }
    c->flags &= ~(uint32_t)TS_CONN_AWAITING;
    c->abort_cb = NULL;
    int keep = c->keep_alive && !close && !ts_net__of(c)->closing;
    size_t blen = body ? body->len : 0;
    ts_sbuf_t head = TS_SBUF_INIT;
    ts_sbuf_printf(&head, "HTTP/1.1 %d %s\r\n%s", status, ts_http_status_text(status),
                   headers ? headers : "");
    /* RFC 9110 8.6: no Content-Length on 204 and 304 */
    if (status != 204 && status != 304) ts_sbuf_printf(&head, "Content-Length: %zu\r\n", blen);
    ts_sbuf_printf(&head, "Connection: %s\r\n\r\n", keep ? "keep-alive" : "close");
    ts_buf_t *h = ts_sbuf_finish(&head);
    ts_net__queue(c, h, h->data, h->len, NULL, 0, TS_NET_CLASS_FIRST, 0);
    ts_buf_unref(h);
    if (blen) ts_net__queue(c, body, body->data, blen, NULL, 0, TS_NET_CLASS_FIRST, 0);
    ts_buf_unref(body);
    if (!keep) {
        ts_net__end(c);
        return;
    }
    ts_net__timer(c, TS_TIMER_IDLE);
    if (c->rlen) {
        /* a pipelined request is waiting in the read buffer */
        c->flags |= TS_CONN_REPROCESS;
        ts_net__schedule(c);
    }
}

void ts_http_respond(ts_http_conn_t *c, int status, const char *headers, const void *body,
                     size_t len, int close) {
    ts_http_respond_buf(c, status, headers, len ? ts_buf_from(body, len) : NULL, close);
}

void ts_http_conn_hold(ts_http_conn_t *c, ts_http_abort_cb cb, void *ud) {
    c->abort_cb = cb;
    c->abort_ud = ud;
}

void ts_http_conn_detach(ts_http_conn_t *c) {
    if (c->mode == TS_CONN_HTTP) c->abort_cb = NULL; /* in WebSocket mode: the reader's bytes */
}

void ts_http_conn_close(ts_http_conn_t *c) {
    if (c->mode == TS_CONN_HTTP) c->abort_cb = NULL;
    ts_net__close(c);
}
