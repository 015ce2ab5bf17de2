/* ws.c - the WebSocket side of a connection: the upgrade handshake, frames
 * in through the pure reader of ws_frame.c, frames out as a per-connection
 * header plus a shared payload buffer, and the closing handshake. */
#include <http_parser.h>
#include <stdio.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_log.h"
#include "metrics/ts_met.h"
#include "net/net_int.h"

static void ws_notify(ts_conn_t *c, int code) {
    const ts_ws_handler_t *h = c->ws_h;
    c->ws_h = NULL;
    if (h && h->on_close) h->on_close(c, code, c->ws_ud);
}

static void send_close(ts_conn_t *c, uint16_t code, const char *reason) {
    if (c->flags & TS_CONN_WS_CLOSE_SENT) return;
    c->flags |= TS_CONN_WS_CLOSE_SENT;
    ts_buf_t *f = ts_ws_frame_encode_close(code, reason);
    ts_net__queue(c, f, f->data, f->len, NULL, 0, TS_NET_CLASS_LAST, 0); /* after all queued */
    ts_buf_unref(f);
}

int ts_ws_upgrade(ts_http_conn_t *c, const ts_http_req_t *req, size_t max_message,
                  const char *extra_headers, const ts_ws_handler_t *h, void *ud) {
    ts_slice_t v, key;
    if (req->method != HTTP_GET || !ts_http_req_header(req, "upgrade", &v) ||
        !ts_http_header_has_token(v, "websocket") || !ts_http_req_header(req, "connection", &v) ||
        !ts_http_header_has_token(v, "upgrade") ||
        !ts_http_req_header(req, "sec-websocket-key", &key)) {
        TS_MET_ERR(WS_HANDSHAKE);
        return TS_EPROTO;
    }
    if (!ts_http_req_header(req, "sec-websocket-version", &v) || !ts_slice_eq_str(v, "13")) {
        TS_MET_ERR(WS_HANDSHAKE);
        return TS_EVERSION;
    }
    char accept[29];
    if (ts_ws_accept_key((const char *)key.p, key.len, accept) != 0) {
        TS_MET_ERR(WS_HANDSHAKE);
        return TS_EPROTO;
    }
    ts_sbuf_t sb = TS_SBUF_INIT;
    ts_sbuf_reserve(&sb, 160 + (extra_headers ? strlen(extra_headers) : 0));
    ts_sbuf_append_str(&sb, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    ts_sbuf_append_str(&sb, accept);
    ts_sbuf_append_str(&sb, "\r\n");
    if (extra_headers) ts_sbuf_append_str(&sb, extra_headers);
    ts_sbuf_append_str(&sb, "\r\n");
    ts_buf_t *resp = ts_sbuf_finish(&sb);
    ts_net__queue(c, resp, resp->data, resp->len, NULL, 0, TS_NET_CLASS_FIRST, 0);
    ts_buf_unref(resp);

    c->flags &= ~(uint32_t)TS_CONN_AWAITING;
    c->abort_cb = NULL;
    ts_http_parser_free(c->parser);
    c->parser = NULL;
    c->mode = TS_CONN_WS;
    ts_ws_reader_init(&c->reader, TS_WS_SERVER, max_message);
    c->ws_h = h;
    c->ws_ud = ud;
    ts_net__timer(c, TS_TIMER_NONE);
    TS_MET_INC(WS_UPGRADES);
    return 0;
}

size_t ts_net__ws_process(ts_conn_t *c, uint8_t *data, size_t len) {
    size_t off = 0;
    while (off < len && !(c->flags & (TS_CONN_CLOSING | TS_CONN_ENDING | TS_CONN_SHUTDOWN))) {
        size_t used = 0;
        ts_ws_msg_t m;
        int rc = ts_ws_reader_feed(&c->reader, data + off, len - off, &used, &m);
        off += used;
        if (rc < 0) {
            if (rc == TS_ETOOBIG)
                TS_MET_ERR(WS_TOO_BIG);
            else if (rc == TS_EUTF8)
                TS_MET_ERR(WS_UTF8);
            else
                TS_MET_ERR(WS_PROTOCOL);
            ts_debug("ws", "closing %s with %u: %s", ts_conn_peer(c), c->reader.close_code,
                     ts_ws_reader_errmsg(&c->reader));
            send_close(c, c->reader.close_code, ts_ws_reader_errmsg(&c->reader));
            ws_notify(c, c->reader.close_code);
            ts_net__end(c);
            return len;
        }
        if (rc == 0) return off;
        switch (m.opcode) {
        case TS_WS_OP_PING: {
            uint8_t hdr[TS_WS_MAX_HEADER];
            size_t hl = ts_ws_frame_header(hdr, TS_WS_OP_PONG, 1, m.len, NULL);
            ts_buf_t *p = ts_buf_from(m.data, m.len);
            ts_net__queue(c, p, p->data, p->len, hdr, hl, TS_NET_CLASS_CONTROL, 0);
            ts_buf_unref(p);
            break;
        }
        case TS_WS_OP_PONG:
            break;
        case TS_WS_OP_CLOSE:
            /* Echo the peer's code (RFC 6455 5.5.1), then close our side. */
            send_close(c, m.close_code == TS_WS_CLOSE_NO_STATUS ? TS_WS_CLOSE_NORMAL
                                                                : m.close_code, "");
            ws_notify(c, m.close_code);
            ts_net__end(c);
            return len;
        default:
            if (c->ws_h && c->ws_h->on_message) c->ws_h->on_message(c, &m, c->ws_ud);
            break;
        }
    }
    return off;
}

void ts_net__ws_closed(ts_conn_t *c) { ws_notify(c, TS_WS_CLOSE_ABNORMAL); }

void ts_ws_set_handler(ts_ws_conn_t *c, const ts_ws_handler_t *h, void *ud) {
    c->ws_h = h;
    c->ws_ud = ud;
}

int ts_ws_send(ts_ws_conn_t *c, uint8_t opcode, ts_buf_t *buf, size_t off, size_t len) {
    if (c->flags & (TS_CONN_CLOSING | TS_CONN_ENDING | TS_CONN_SHUTDOWN | TS_CONN_WS_CLOSE_SENT))
        return TS_ECLOSED;
    uint8_t hdr[TS_WS_MAX_HEADER];
    size_t hl = ts_ws_frame_header(hdr, opcode, 1, len, NULL);
    ts_net__queue(c, buf, buf->data + off, len, hdr, hl, TS_NET_CLASS_EVENT, 0);
    return 0;
}

int ts_ws_send_class(ts_ws_conn_t *c, uint8_t opcode, ts_buf_t *buf, unsigned cls, uint32_t key) {
    if (c->flags & (TS_CONN_CLOSING | TS_CONN_ENDING | TS_CONN_SHUTDOWN | TS_CONN_WS_CLOSE_SENT))
        return TS_ECLOSED;
    uint8_t hdr[TS_WS_MAX_HEADER];
    size_t hl = ts_ws_frame_header(hdr, opcode, 1, buf->len, NULL);
    ts_net__queue(c, buf, buf->data, buf->len, hdr, hl, cls, key);
    return 0;
}

void ts_ws_cork(ts_ws_conn_t *c) {
    if (!(c->flags & TS_CONN_CLOSING)) c->flags |= TS_CONN_CORKED;
}

void ts_ws_uncork(ts_ws_conn_t *c) {
    if (!(c->flags & TS_CONN_CORKED)) return;
    c->flags &= ~(uint32_t)TS_CONN_CORKED;
    if (ts_conn_queued(c)) ts_net__schedule(c);
}

void ts_ws_close(ts_ws_conn_t *c, uint16_t code, const char *reason) {
    if (c->mode == TS_CONN_WS) c->ws_h = NULL; /* in HTTP mode: the parser's bytes */
    if (c->flags & TS_CONN_CLOSING) return;
    send_close(c, code, reason);
    ts_net__end(c);
}
