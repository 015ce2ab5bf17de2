/* conn.c - the lean Socket.IO client of tsbench: TCP from a chosen loopback
 * source address, the WebSocket upgrade, then Engine.IO and Socket.IO over
 * the server's own pure codecs (ws_frame.c in client role, eio/packet.c,
 * sio/packet.c). Benchmark events take a hand-written fast path (event.c);
 * everything else goes through the real decoder. */
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/ts_util.h"
#include "eio/ts_eio_packet.h"
#include "sio/ts_sio_packet.h"
#include "tsbench.h"

#define WS_KEY "dGFic3luYy1iZW5jaGtleQ==" /* 16 bytes, base64; one key for all */
#define HTTP_HEAD_MAX 8192
#define READ_BUF (256 * 1024)

tsb_client_t tsb_cl;

static uint8_t g_rbuf[READ_BUF];     /* every read lands here first */
static ts_sio_decoder_t g_dec;       /* text packets only: never keeps state */

typedef struct wreq {
    uv_write_t req;
    tsb_conn_t *c;
    size_t n;
    uint8_t data[];
} wreq_t;

static uint32_t rnd32(void) {
    uint64_t x = tsb_cl.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    tsb_cl.rng = x;
    return (uint32_t)(x >> 16);
}

int tsb_client_init(uv_loop_t *loop, const char *host, int port, uint32_t per_src, int recovery,
                    const tsb_conn_hooks_t *hooks) {
    memset(&tsb_cl, 0, sizeof tsb_cl);
    tsb_cl.loop = loop;
    tsb_cl.per_src = per_src ? per_src : 4000;
    tsb_cl.recovery = recovery;
    tsb_cl.hooks = *hooks;
    tsb_cl.rng = uv_hrtime() | 1;
    snprintf(tsb_cl.host_hdr, sizeof tsb_cl.host_hdr, "%s:%d", host, port);
    snprintf(tsb_cl.nsp, sizeof tsb_cl.nsp, "/");
    int rc = uv_ip4_addr(host, port, &tsb_cl.server);
    if (rc) return rc;
    if (ts_ws_accept_key(WS_KEY, strlen(WS_KEY), tsb_cl.accept) != 0) return UV_EINVAL;
    ts_sio_decoder_init(&g_dec, TS_SIO_PARSER_JSON);
    return 0;
}

int tsb_client_set_second(const char *host, int port) {
    snprintf(tsb_cl.host_hdr2, sizeof tsb_cl.host_hdr2, "%s:%d", host, port);
    int rc = uv_ip4_addr(host, port, &tsb_cl.server2);
    if (rc == 0) tsb_cl.two = 1;
    return rc;
}

void tsb_client_deinit(void) { ts_sio_decoder_deinit(&g_dec); }

tsb_conn_t *tsb_conn_new(uint32_t idx, uint32_t nexp) {
    tsb_conn_t *c = calloc(1, sizeof *c + nexp * sizeof(uint32_t));
    if (!c) {
        fprintf(stderr, "tsbench: out of memory\n");
        exit(1);
    }
    c->idx = idx;
    c->nexp = nexp;
    c->room = TSB_NO_ROOM;
    c->tcp.data = c;
    return c;
}

void tsb_conn_free(tsb_conn_t *c) {
    if (!c) return;
    free(c->rbuf);
    free(c);
}

static void fail(tsb_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(tsb_conn_t *c, const char *fmt, ...) {
    if (c->state == CS_CLOSING || c->state == CS_IDLE) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tsb_conn_close(c, 1);
    if (tsb_cl.hooks.failed) tsb_cl.hooks.failed(c, msg);
}

static void on_close(uv_handle_t *h) {
    tsb_conn_t *c = h->data;
    c->state = CS_IDLE;
    c->rlen = 0;
    ts_ws_reader_deinit(&c->ws);
    if (tsb_cl.hooks.closed) tsb_cl.hooks.closed(c);
}

void tsb_conn_close(tsb_conn_t *c, int reset) {
    if (c->state == CS_CLOSING || c->state == CS_IDLE) return;
    c->state = CS_CLOSING;
    if (reset && uv_tcp_close_reset(&c->tcp, on_close) == 0) return;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_write(uv_write_t *req, int status) {
    wreq_t *w = (wreq_t *)req;
    tsb_conn_t *c = w->c;
    c->wpending--;
    free(w);
    if (status < 0 && status != UV_ECANCELED) fail(c, "write: %s", uv_strerror(status));
}

/* Writes bytes in order: straight to the socket when nothing is queued,
 * else (or for what the socket did not take) through a copied uv_write. */
static void conn_write(tsb_conn_t *c, const uint8_t *p, size_t n) {
    if (c->state == CS_CLOSING || c->state == CS_IDLE || c->state == CS_TCP) return;
    tsb_cl.bytes_out += n;
    if (c->wpending == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (r == (int)n) return;
        if (r < 0 && r != UV_EAGAIN) {
            fail(c, "write: %s", uv_strerror(r));
            return;
        }
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        }
    }
    wreq_t *w = malloc(sizeof *w + n);
    if (!w) {
        fail(c, "out of memory");
        return;
    }
    w->c = c;
    w->n = n;
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc) {
        free(w);
        fail(c, "write: %s", uv_strerror(rc));
        return;
    }
    c->wpending++;
}

static void send_frame(tsb_conn_t *c, uint8_t op, const void *data, size_t len) {
    uint8_t stack[TS_WS_MAX_HEADER + 600];
    uint8_t *buf = len + TS_WS_MAX_HEADER <= sizeof stack ? stack : malloc(len + TS_WS_MAX_HEADER);
    if (!buf) {
        fail(c, "out of memory");
        return;
    }
    uint32_t m = rnd32();
    uint8_t mask[4];
    memcpy(mask, &m, 4);
    size_t h = ts_ws_frame_header(buf, op, 1, len, mask);
    if (len) memcpy(buf + h, data, len);
    ts_ws_mask(buf + h, len, mask, 0);
    conn_write(c, buf, h + len);
    if (buf != stack) free(buf);
}

void tsb_conn_send(tsb_conn_t *c, const char *text, size_t len) {
    send_frame(c, TS_WS_OP_TEXT, text, len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    buf->base = (char *)g_rbuf;
    buf->len = sizeof g_rbuf;
}

/* Keeps p[0..n) in c->rbuf (after what is already there). */
static int keep(tsb_conn_t *c, const uint8_t *p, size_t n) {
    if (c->rlen + n + 1 > c->rcap) {
        size_t cap = c->rcap ? c->rcap : 512;
        while (cap < c->rlen + n + 1) cap *= 2;
        uint8_t *nb = realloc(c->rbuf, cap);
        if (!nb) return -1;
        c->rbuf = nb;
        c->rcap = (uint32_t)cap;
    }
    memmove(c->rbuf + c->rlen, p, n);
    c->rlen += (uint32_t)n;
    c->rbuf[c->rlen] = 0;
    return 0;
}

/* Copies the JSON string member `key` of `obj` into out (empty if absent). */
static void str_member(json_t *obj, const char *key, char *out, size_t cap) {
    const char *v = json_string_value(json_object_get(obj, key));
    snprintf(out, cap, "%s", v ? v : "");
}

static void on_sio(tsb_conn_t *c, const uint8_t *msg, size_t len) {
    tsb_ev_t ev;
    /* CS_SIO too: a recovered session's missed events come before the
     * CONNECT reply, as Node sends them (socket.io-client buffers them) */
    if (c->state == CS_READY || c->state == CS_JOIN || c->state == CS_SIO) {
        if (tsb_ev_parse(msg, len, &ev)) {
            if (tsb_cl.hooks.event) tsb_cl.hooks.event(c, &ev);
            return;
        }
    }
    if (c->state == CS_READY && tsb_cl.session) {
        uint64_t id;
        int ok;
        if (tsb_sev_parse(msg, len, &ev)) {
            if (tsb_cl.hooks.event) tsb_cl.hooks.event(c, &ev);
            return;
        }
        if (tsb_sev_ack(msg, len, &id, &ok)) {
            if (!ok)
                fail(c, "publish refused: %.*s", (int)(len > 200 ? 200 : len), msg);
            else if (tsb_cl.hooks.ack)
                tsb_cl.hooks.ack(c, (int64_t)id, ok);
            return;
        }
    }
    ts_sio_packet_t pkt;
    int rc = ts_sio_decoder_feed(&g_dec, msg + 1, len - 1, 0, &pkt);
    if (rc != 1) {
        fail(c, "socket.io: %s", rc < 0 ? g_dec.errmsg : "unexpected attachments");
        ts_sio_decoder_deinit(&g_dec);
        ts_sio_decoder_init(&g_dec, TS_SIO_PARSER_JSON);
        return;
    }
    switch (pkt.type) {
    case TS_SIO_CONNECT:
        if (c->state != CS_SIO || strcmp(pkt.nsp, tsb_cl.nsp) != 0) {
            fail(c, "socket.io: unexpected CONNECT");
            break;
        }
        char old[sizeof c->sid];
        memcpy(old, c->sid, sizeof old);
        str_member(pkt.data, "sid", c->sid, sizeof c->sid);
        c->recovered = old[0] && strcmp(old, c->sid) == 0;
        if (json_object_get(pkt.data, "pid")) str_member(pkt.data, "pid", c->pid, sizeof c->pid);
        c->state = CS_READY;
        if (tsb_cl.hooks.connected) tsb_cl.hooks.connected(c);
        break;
    case TS_SIO_CONNECT_ERROR:
        fail(c, "socket.io: CONNECT refused: %.*s", (int)(len > 100 ? 100 : len), msg);
        break;
    case TS_SIO_DISCONNECT:
        fail(c, "socket.io: server sent DISCONNECT");
        break;
    case TS_SIO_ACK: {
        const char *a = json_string_value(json_array_get(pkt.data, 0));
        if (tsb_cl.hooks.ack) tsb_cl.hooks.ack(c, pkt.id, a && strcmp(a, "ok") == 0);
        break;
    }
    case TS_SIO_EVENT:
        if (tsb_cl.hooks.welcome && strcmp(pkt.nsp, tsb_cl.nsp) == 0 &&
            json_is_string(json_array_get(pkt.data, 0)) &&
            strcmp(json_string_value(json_array_get(pkt.data, 0)), "welcome") == 0) {
            tsb_cl.hooks.welcome(c, json_array_get(pkt.data, 1));
            break;
        }
        /* fall through */
    default: /* "auth" and other events of the test app: not ours */
        if (pkt.type == TS_SIO_EVENT && len > 6 &&
            memcmp(msg, "42[\"b\"", 6) == 0)
            fail(c, "malformed benchmark event: %.*s", (int)(len > 160 ? 160 : len), msg);
        else if (pkt.type == TS_SIO_EVENT && tsb_cl.session && len > 19 &&
                 memcmp(msg, "42/session,[\"event\"", 19) == 0)
            fail(c, "unexpected /session event: %.*s", (int)(len > 200 ? 200 : len), msg);
        break;
    }
    ts_sio_packet_clear(&pkt);
}

static void on_message(tsb_conn_t *c, const ts_ws_msg_t *m) {
    switch (m->opcode) {
    case TS_WS_OP_PING:
        send_frame(c, TS_WS_OP_PONG, m->data, m->len);
        return;
    case TS_WS_OP_PONG:
        return;
    case TS_WS_OP_CLOSE:
        fail(c, "server closed the websocket (%u)", m->close_code);
        return;
    case TS_WS_OP_BINARY:
        fail(c, "unexpected binary message");
        return;
    default:
        break;
    }
    ts_eio_packet_t p;
    if (ts_eio_packet_decode(m->data, m->len, &p) != 0) {
        fail(c, "engine.io: bad packet");
        return;
    }
    switch (p.type) {
    case TS_EIO_OPEN: {
        if (c->state != CS_EIO) {
            fail(c, "engine.io: unexpected OPEN");
            return;
        }
        c->state = CS_SIO;
        if (tsb_cl.hooks.auth) {
            /* 40/session,{...}: one CONNECT to the namespace with its auth */
            char buf[2048];
            int h = snprintf(buf, sizeof buf, "40%s%s", tsb_cl.nsp,
                             strcmp(tsb_cl.nsp, "/") ? "," : "");
            size_t a = tsb_cl.hooks.auth(c, buf + h, sizeof buf - (size_t)h);
            tsb_conn_send(c, buf, (size_t)h + a);
        } else if (tsb_cl.recovery && c->pid[0]) {
            char buf[160];
            int n = snprintf(buf, sizeof buf, "40{\"pid\":\"%s\",\"offset\":\"%s\"}", c->pid, c->off);
            tsb_conn_send(c, buf, (size_t)n);
        } else {
            tsb_conn_send(c, "40", 2);
        }
        return;
    }
    case TS_EIO_PING:
        tsb_conn_send(c, "3", 1);
        return;
    case TS_EIO_CLOSE:
        fail(c, "engine.io: server sent CLOSE");
        return;
    case TS_EIO_MESSAGE:
        if (c->state < CS_SIO) {
            fail(c, "engine.io: MESSAGE before OPEN");
            return;
        }
        on_sio(c, m->data, m->len);
        return;
    default:
        return;
    }
}

/* Feeds WebSocket bytes; returns how many were consumed. */
static size_t feed_frames(tsb_conn_t *c, uint8_t *p, size_t n) {
    size_t off = 0;
    while (off < n && c->state != CS_CLOSING && c->state != CS_IDLE) {
        ts_ws_msg_t m;
        size_t used = 0;
        int rc = ts_ws_reader_feed(&c->ws, p + off, n - off, &used, &m);
        off += used;
        if (rc < 0) {
            fail(c, "%s", ts_ws_reader_errmsg(&c->ws));
            return n;
        }
        if (rc == 0) break;
        on_message(c, &m);
    }
    return off;
}

static int http_head(tsb_conn_t *c) {
    char *end = strstr((char *)c->rbuf, "\r\n\r\n");
    if (!end) {
        if (c->rlen > HTTP_HEAD_MAX) fail(c, "http: response head too long");
        return 0;
    }
    *end = 0;
    if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0) {
        char *eol = strchr((char *)c->rbuf, '\r');
        if (eol) *eol = 0;
        fail(c, "http: upgrade refused: %s", (char *)c->rbuf);
        return 0;
    }
    int accept_ok = 0;
    for (char *line = strstr((char *)c->rbuf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Sec-WebSocket-Accept:", 21) == 0) {
            char *v = line + 23;
            while (*v == ' ') v++;
            accept_ok = strncmp(v, tsb_cl.accept, 28) == 0;
        }
    }
    if (!accept_ok) {
        fail(c, "http: bad or missing Sec-WebSocket-Accept");
        return 0;
    }
    size_t head = (size_t)(end + 4 - (char *)c->rbuf);
    memmove(c->rbuf, c->rbuf + head, c->rlen - head);
    c->rlen -= (uint32_t)head;
    c->state = CS_EIO;
    return 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    tsb_conn_t *c = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        fail(c, "%s", nread == UV_EOF ? "server closed the connection" : uv_strerror((int)nread));
        return;
    }
    tsb_cl.bytes_in += (uint64_t)nread;
    if (c->raw) return; /* draining a paused receiver: the bytes do not matter */
    uint8_t *p = (uint8_t *)buf->base;
    size_t n = (size_t)nread;
    if (c->state == CS_HTTP) {
        if (keep(c, p, n) < 0) {
            fail(c, "out of memory");
            return;
        }
        if (!http_head(c)) return;
        n = 0;
    }
    if (c->rlen) {
        if (n && keep(c, p, n) < 0) {
            fail(c, "out of memory");
            return;
        }
        size_t used = feed_frames(c, c->rbuf, c->rlen);
        if (c->state == CS_IDLE || c->state == CS_CLOSING) return;
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= (uint32_t)used;
        if (c->rlen == 0 && c->rcap > 4096) {
            free(c->rbuf);
            c->rbuf = NULL;
            c->rcap = 0;
        }
        return;
    }
    size_t used = feed_frames(c, p, n);
    if (c->state == CS_IDLE || c->state == CS_CLOSING) return;
    if (used < n && keep(c, p + used, n - used) < 0) fail(c, "out of memory");
}

static void on_connect(uv_connect_t *req, int status) {
    tsb_conn_t *c = req->data;
    if (c->state != CS_TCP) return; /* closed meanwhile */
    if (status < 0) {
        c->state = CS_HTTP; /* so that fail() closes it */
        fail(c, "connect: %s", uv_strerror(status));
        return;
    }
    c->state = CS_HTTP;
    char req_buf[300];
    int n = snprintf(req_buf, sizeof req_buf,
                     "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                     "Host: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     tsb_cl.two && (c->idx & 1) ? tsb_cl.host_hdr2 : tsb_cl.host_hdr);
    conn_write(c, (const uint8_t *)req_buf, (size_t)n);
}

void tsb_conn_pause(tsb_conn_t *c) {
    if (c->state == CS_CLOSING || c->state == CS_IDLE || c->state == CS_TCP) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
}

void tsb_conn_resume_raw(tsb_conn_t *c) {
    if (c->state == CS_CLOSING || c->state == CS_IDLE || c->state == CS_TCP) return;
    c->raw = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int tsb_conn_open(tsb_conn_t *c, uint32_t src) {
    int rc = uv_tcp_init_ex(tsb_cl.loop, &c->tcp, AF_INET);
    if (rc) return rc;
    c->tcp.data = c;
    c->state = CS_TCP;
    c->rlen = 0;
    c->wpending = 0;
    c->raw = 0;
    ts_ws_reader_init(&c->ws, TS_WS_CLIENT, 0);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        int one = 1;
        /* the port is picked at connect(), per destination: no bind-time
         * exhaustion of the ephemeral range */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7F000002u + (src % 250u)); /* 127.0.0.2 .. */
    rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&a, 0);
    if (rc == 0) {
        c->creq.data = c;
        c->t_start = uv_hrtime();
        const struct sockaddr_in *dst =
            tsb_cl.two && (c->idx & 1) ? &tsb_cl.server2 : &tsb_cl.server;
        rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)dst, on_connect);
        /* reading from the start: one epoll registration for the connect and
         * the reads (started later, libuv would add, fail, then modify) */
        if (rc == 0) rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    if (rc) {
        c->state = CS_HTTP; /* so that fail() closes it and reports */
        fail(c, "connect: %s", uv_strerror(rc));
    }
    return 0;
}
