/* client.c - libtabsync's connection life cycle on libuv: resolve, TCP
 * connect, TLS for wss:// (the server's session pump, net/tls.c, in its
 * client role), WebSocket handshake, reads and batched writes, heartbeat
 * and connect timers, reconnection with backoff, and the asynchronous close.
 * Each attempt lives in its own transport object, so a dying connection's
 * pending libuv callbacks never touch the next one (see transport_kill). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "core/ts_util.h"

#define READ_CHUNK 65536
#define CLOSE_WAIT_MS 1000
#define DEFAULT_MAX_MESSAGE (16u << 20)

/* ---- small helpers ---- */

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static void set_err(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *buf, size_t n, const char *fmt, ...) {
    if (!buf || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* ---- public: errors and options ---- */

TS_CLIENT_API const char *ts_client_strerror(int err) { return ts_strerror(err); }
TS_CLIENT_API const char *ts_client_err_name(int err) { return ts_err_name(err); }
TS_CLIENT_API const char *ts_client_version(void) { return TS_CLIENT_VERSION_STRING; }

TS_CLIENT_API void ts_client_opts_init(ts_client_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->nsp = "/";
    o->parser = TS_CLIENT_PARSER_JSON;
    o->reconnection = 1;
    o->backoff_min_ms = 1000;
    o->backoff_max_ms = 5000;
    o->backoff_jitter = 0.5;
    o->connect_timeout_ms = 20000;
}

/* ---- transports ---- */

static void maybe_finish(ts_client_t *c);

static void transport_free(ts_client__transport_t *t) {
    ts_client_t *c = t->c;
    ts_client__obuf_free(&t->out);
    ts_client__obuf_free(&t->inflight);
    ts_tls__free(t->tls);
    free(t->cipher);
    free(t->in);
    ts_ws_reader_deinit(&t->reader);
    ts_sio_decoder_deinit(&t->dec);
    free(t);
    c->live_transports--;
    maybe_finish(c);
}

static void on_report_drop(ts_client__transport_t *t);

static void on_tcp_closed(uv_handle_t *h) {
    ts_client__transport_t *t = h->data;
    if (t->dropped && t->c->t == t) on_report_drop(t);
    t->tcp_init = 0;
    if (!t->gai_active) transport_free(t);
}

/* Detaches `t` from its client and releases its libuv resources; the
 * memory goes when the last of them has called back. Safe to call twice. */
static void transport_kill(ts_client__transport_t *t) {
    ts_client_t *c = t->c;
    if (c->t == t) c->t = NULL;
    if (t->gai_active) uv_cancel((uv_req_t *)&t->gai);
    if (t->tcp_init && !t->tcp_closing) {
        t->tcp_closing = 1;
        uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
    }
}

void ts_client__kill_transport(ts_client_t *c) {
    if (c->t) transport_kill(c->t);
}

/* ---- writes: one uv_write in flight; frames queued meanwhile go out
 * together in the next one ---- */

static void flush(ts_client__transport_t *t);

static void on_written(uv_write_t *req, int status) {
    ts_client__transport_t *t = req->data;
    t->writing = 0;
    t->inflight.len = 0;
    if (t->tls) ts_tls__written(t->tls);
    ts_client_t *c = t->c;
    if (c->t != t) return;
    if (status < 0) {
        ts_client__fail(c, status, "transport error", "write to %s: %s", t->peer,
                        uv_strerror(status));
        return;
    }
    flush(t);
}

/* TLS: encrypts what is queued once the handshake is done (until then it
 * waits in t->out) and hands out the ciphertext to write, handshake
 * records included. Returns 0 with b->len 0 when there is nothing to send,
 * or < 0 after failing the client. */
static int tls_take(ts_client__transport_t *t, uv_buf_t *b) {
    b->len = 0;
    if (t->out.len && ts_tls__ready(t->tls)) {
        uv_buf_t p = uv_buf_init((char *)t->out.p, (unsigned)t->out.len);
        int rc = ts_tls__write(t->tls, &p, 1);
        t->out.len = 0;
        if (rc < 0) {
            ts_client__fail(t->c, rc, "transport error", "TLS with %s: %s", t->peer,
                            ts_tls__errmsg(t->tls));
            return rc;
        }
    }
    if (ts_tls__pending(t->tls)) *b = ts_tls__take(t->tls);
    return 0;
}

static void flush(ts_client__transport_t *t) {
    if (t->writing || t->tcp_closing) return;
    uv_buf_t b;
    if (t->tls) {
        if (tls_take(t, &b) < 0 || b.len == 0) return;
    } else {
        if (t->out.len == 0) return;
        ts_client__obuf_t tmp = t->inflight;
        t->inflight = t->out;
        t->out = tmp;
        t->out.len = 0;
        b = uv_buf_init((char *)t->inflight.p, (unsigned)t->inflight.len);
    }
    t->wreq.data = t;
    int rc = uv_write(&t->wreq, (uv_stream_t *)&t->tcp, &b, 1, on_written);
    if (rc < 0) {
        t->inflight.len = 0;
        ts_client__fail(t->c, rc, "transport error", "write to %s: %s", t->peer, uv_strerror(rc));
        return;
    }
    t->writing = 1;
}

static int send_frame(ts_client__transport_t *t, uint8_t opcode, const void *p, size_t len) {
    uint64_t r = ts_client__rand(&t->c->rng);
    uint8_t mask[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    int rc = ts_client__ws_append(&t->out, opcode, p, len, mask);
    if (rc < 0) return rc;
    flush(t);
    return 0;
}

int ts_client__send_text(ts_client_t *c, const char *s, size_t len) {
    if (!c->t || c->t->phase < PH_WS) return TS_ESTATE;
    return send_frame(c->t, TS_WS_OP_TEXT, s, len);
}

int ts_client__send_encoded(ts_client_t *c, const ts_sio_encoded_t *enc) {
    ts_client__transport_t *t = c->t;
    if (!t || t->phase < PH_WS) return TS_ESTATE;
    size_t total = 0;
    for (size_t i = 0; i < enc->n; i++) {
        if (c->max_payload && enc->msgs[i].buf->len > c->max_payload) return TS_ETOOBIG;
        total += ts_client__ws_frame_size(enc->msgs[i].buf->len);
    }
    /* reserve the whole packet first: it goes out completely or not at all */
    int rc = ts_client__obuf_reserve(&t->out, total);
    if (rc < 0) return rc;
    for (size_t i = 0; i < enc->n; i++) {
        const ts_sio_wire_t *w = &enc->msgs[i];
        uint64_t r = ts_client__rand(&c->rng);
        uint8_t mask[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
        ts_client__ws_append(&t->out, w->binary ? TS_WS_OP_BINARY : TS_WS_OP_TEXT, w->buf->data,
                             w->buf->len, mask);
    }
    flush(t);
    return 0;
}

/* ---- reconnection ---- */

static unsigned backoff_delay(ts_client_t *c, unsigned attempt) {
    double min = c->opts.backoff_min_ms, max = c->opts.backoff_max_ms;
    double ms = attempt > 30 ? max : min * ldexp(1.0, (int)attempt);
    if (c->opts.backoff_jitter > 0) {
        double r = (double)(ts_client__rand(&c->rng) >> 11) / 9007199254740992.0;
        double dev = r * c->opts.backoff_jitter * ms;
        ms = (ts_client__rand(&c->rng) & 1) ? ms + dev : ms - dev;
    }
    if (ms > max) ms = max;
    if (ms < 0) ms = 0;
    return (unsigned)ms;
}

static int transport_start(ts_client_t *c);

static void on_reconnect_timer(uv_timer_t *h) {
    ts_client_t *c = h->data;
    if (c->state != TS_CLIENT_RECONNECT_WAIT) return;
    c->state = TS_CLIENT_CONNECTING;
    int rc = transport_start(c);
    if (rc < 0) ts_client__fail(c, rc, "transport error", "cannot start a connection: %s",
                                ts_strerror(rc));
}

void ts_client__fail(ts_client_t *c, int err, const char *reason, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    ts_client__kill_transport(c);
    uv_timer_stop(&c->t_ping);
    uv_timer_stop(&c->t_connect);
    ts_client__clear_session_io(c);
    if (c->state == TS_CLIENT_CLOSING) return;
    int was_connected = c->state == TS_CLIENT_CONNECTED;
    if (c->state != TS_CLIENT_CONNECTED && c->state != TS_CLIENT_CONNECTING) return;

    int can_retry = c->opts.reconnection &&
                    (c->opts.reconnection_attempts == 0 ||
                     c->attempts < c->opts.reconnection_attempts);
    c->state = can_retry ? TS_CLIENT_RECONNECT_WAIT : TS_CLIENT_DISCONNECTED;
    ts_client__fail_acks(c, 0, TS_ECLOSED);
    if (c->state == TS_CLIENT_CLOSING) return;
    void *u = c->opts.user;
    if (was_connected) {
        if (c->opts.cb.on_disconnect) c->opts.cb.on_disconnect(c, reason, can_retry, u);
    } else if (!can_retry && c->opts.reconnection) {
        char m2[700];
        snprintf(m2, sizeof m2, "gave up after %u reconnection attempts; last error: %s",
                 c->attempts, msg);
        if (c->opts.cb.on_error) c->opts.cb.on_error(c, TS_ELIMIT, m2, u);
    } else {
        if (c->opts.cb.on_error) c->opts.cb.on_error(c, err, msg, u);
    }
    /* the callback may have closed, or connected again */
    if (c->state != TS_CLIENT_RECONNECT_WAIT) return;
    unsigned delay = backoff_delay(c, c->attempts);
    c->attempts++;
    uv_timer_start(&c->t_reconnect, on_reconnect_timer, delay, 0);
    if (c->opts.cb.on_reconnect_attempt) c->opts.cb.on_reconnect_attempt(c, c->attempts, delay, u);
}

/* ---- timers of a connection ---- */

static void on_connect_timer(uv_timer_t *h) {
    ts_client_t *c = h->data;
    ts_client__fail(c, TS_ETIMEDOUT, "transport error",
                    "connect to %s: no Socket.IO CONNECT answer within %u ms", c->url.host_header,
                    c->opts.connect_timeout_ms);
}

static void on_ping_timer(uv_timer_t *h) {
    ts_client_t *c = h->data;
    ts_client__fail(c, TS_ETIMEDOUT, "ping timeout",
                    "no ping from %s for %u ms (pingInterval %u + pingTimeout %u)",
                    c->url.host_header, c->ping_interval + c->ping_timeout, c->ping_interval,
                    c->ping_timeout);
}

/* ---- reading ---- */

/* Room for READ_CHUNK more bytes in t->in. Returns 0 or TS_ENOMEM. */
static int in_reserve(ts_client__transport_t *t) {
    if (t->in_cap - t->in_len >= READ_CHUNK) return 0;
    size_t cap = t->in_cap ? t->in_cap : READ_CHUNK;
    while (cap - t->in_len < READ_CHUNK) cap *= 2;
    uint8_t *p = realloc(t->in, cap);
    if (!p) return TS_ENOMEM;
    t->in = p;
    t->in_cap = cap;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    ts_client__transport_t *t = h->data;
    (void)hint;
    if (t->tls) { /* ciphertext lands apart; the plaintext goes to t->in */
        if (!t->cipher) t->cipher = malloc(READ_CHUNK);
        *buf = uv_buf_init((char *)t->cipher, t->cipher ? READ_CHUNK : 0);
        return;
    }
    if (in_reserve(t) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)t->in + t->in_len, (unsigned)(t->in_cap - t->in_len));
}

/* TLS: decrypts everything the fed ciphertext holds into t->in (the
 * handshake advances on the way). Returns 0, or < 0 after failing the
 * client. */
static int tls_pump(ts_client__transport_t *t) {
    ts_client_t *c = t->c;
    for (;;) {
        if (in_reserve(t) < 0) {
            ts_client__fail(c, TS_ENOMEM, "transport error", "out of memory reading from %s",
                            t->peer);
            return TS_ENOMEM;
        }
        int n = ts_tls__read(t->tls, t->in + t->in_len, t->in_cap - t->in_len);
        if (n > 0) {
            t->in_len += (size_t)n;
            continue;
        }
        if (n == 0) return 0;
        if (n == TS_ECLOSED && t->close_sent) {
            transport_kill(t); /* our close completed */
            return n;
        }
        if (n == TS_ECLOSED)
            ts_client__fail(c, UV_EOF, "transport close", "%s closed the TLS connection", t->peer);
        else
            ts_client__fail(c, n, "transport error", "TLS with %s: %s", t->peer,
                            ts_tls__errmsg(t->tls));
        return n;
    }
}

static void process_input(ts_client__transport_t *t) {
    ts_client_t *c = t->c;
    size_t off = 0;
    if (t->phase == PH_HANDSHAKE) {
        char err[300];
        size_t used;
        int rc = ts_client__handshake_parse(t->in, t->in_len, t->accept, &used, err, sizeof err);
        if (rc == 0) return;
        if (rc < 0) {
            ts_client__fail(c, rc, "transport error", "%s: %s", t->peer, err);
            return;
        }
        off = used;
        t->phase = PH_WS;
    }
    while (c->t == t && !t->tcp_closing && off < t->in_len) {
        size_t used = 0;
        ts_ws_msg_t m;
        int rc = ts_ws_reader_feed(&t->reader, t->in + off, t->in_len - off, &used, &m);
        off += used;
        if (rc == 0) break;
        if (rc < 0) {
            ts_client__fail(c, rc, "transport error", "from %s: %s", t->peer, ts_ws_reader_errmsg(&t->reader));
            break;
        }
        if (m.opcode == TS_WS_OP_CLOSE) {
            if (t->close_sent) {
                transport_kill(t); /* our close completed */
                break;
            }
            ts_client__fail(c, TS_ECLOSED, "transport close",
                            "%s closed the WebSocket (code %u%s%.*s)", t->peer, m.close_code,
                            m.len ? ": " : "", (int)(m.len > 100 ? 100 : m.len), m.data);
            break;
        }
        if (m.opcode == TS_WS_OP_PING) {
            int prc = send_frame(t, TS_WS_OP_PONG, m.data, m.len);
            if (prc < 0) ts_client__fail(c, prc, "transport error", "cannot answer a ping");
            continue;
        }
        if (m.opcode == TS_WS_OP_PONG || t->close_sent) continue;
        ts_client__on_ws_message(c, &m);
    }
    if (off >= t->in_len) {
        t->in_len = 0;
    } else if (off) {
        memmove(t->in, t->in + off, t->in_len - off);
        t->in_len -= off;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    ts_client__transport_t *t = s->data;
    ts_client_t *c = t->c;
    if (c->t != t) return;
    if (nread == 0) return;
    if (nread < 0) {
        if (t->close_sent) {
            transport_kill(t);
            return;
        }
        if (nread == UV_EOF)
            ts_client__fail(c, UV_EOF, "transport close", "%s closed the connection", t->peer);
        else if (nread == UV_ENOBUFS)
            ts_client__fail(c, TS_ENOMEM, "transport error", "out of memory reading from %s",
                            t->peer);
        else
            ts_client__fail(c, (int)nread, "transport error", "read from %s: %s", t->peer,
                            uv_strerror((int)nread));
        return;
    }
    if (t->tls) {
        int rc = ts_tls__feed(t->tls, (const uint8_t *)buf->base, (size_t)nread);
        if (rc < 0) {
            ts_client__fail(c, rc, "transport error", "TLS with %s: %s", t->peer,
                            ts_tls__errmsg(t->tls));
            return;
        }
        if (tls_pump(t) < 0) return;
        flush(t); /* handshake records, and what waited for the handshake */
        if (c->t != t) return;
    } else {
        t->in_len += (size_t)nread;
    }
    process_input(t);
}

/* ---- connecting ---- */

static void on_tcp_connected(uv_connect_t *req, int status) {
    ts_client__transport_t *t = req->data;
    ts_client_t *c = t->c;
    if (c->t != t) return;
    if (status < 0) {
        ts_client__fail(c, status, "transport error", "connect to %s: %s", t->peer,
                        uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&t->tcp, 1);
    uint8_t raw[16];
    char key[32];
    ts_random_bytes(raw, sizeof raw);
    ts_b64_encode(raw, sizeof raw, key);
    if (ts_ws_accept_key(key, strlen(key), t->accept) < 0) {
        ts_client__fail(c, TS_EINTERNAL, "transport error", "cannot compute the accept key");
        return;
    }
    char req_text[3072];
    int n = ts_client__handshake_request(&c->url, key, req_text, sizeof req_text);
    int rc = n < 0 ? n : ts_client__obuf_append(&t->out, req_text, (size_t)n);
    if (rc == 0 && c->tls_ctx && !(t->tls = ts_tls__new_client(c->tls_ctx, c->url.host)))
        rc = TS_ENOMEM;
    if (rc == 0) rc = uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read);
    if (rc < 0) {
        ts_client__fail(c, rc, "transport error", "connect to %s: %s", t->peer, ts_strerror(rc));
        return;
    }
    t->phase = PH_HANDSHAKE;
    /* TLS: the first pump writes the ClientHello; the upgrade request
     * waits in t->out until the handshake is done */
    if (t->tls && tls_pump(t) < 0) return;
    flush(t);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    ts_client__transport_t *t = req->data;
    ts_client_t *c = t->c;
    t->gai_active = 0;
    if (c->t != t) {
        if (res) uv_freeaddrinfo(res);
        if (!t->tcp_init) transport_free(t);
        return;
    }
    if (status < 0 || !res) {
        if (res) uv_freeaddrinfo(res);
        ts_client__fail(c, status < 0 ? status : UV_EAI_NONAME, "transport error",
                        "cannot resolve %s: %s", c->url.host, uv_strerror(status));
        return;
    }
    int rc = uv_tcp_init(c->loop, &t->tcp);
    if (rc == 0) {
        t->tcp_init = 1;
        t->tcp.data = t;
        t->conn_req.data = t;
        t->phase = PH_TCP;
        rc = uv_tcp_connect(&t->conn_req, &t->tcp, res->ai_addr, on_tcp_connected);
    }
    uv_freeaddrinfo(res);
    if (rc < 0)
        ts_client__fail(c, rc, "transport error", "connect to %s: %s", t->peer, uv_strerror(rc));
}

static int transport_start(ts_client_t *c) {
    ts_client__transport_t *t = calloc(1, sizeof *t);
    if (!t) return TS_ENOMEM;
    t->c = c;
    t->phase = PH_RESOLVE;
    snprintf(t->peer, sizeof t->peer, "%s", c->url.host_header);
    if (c->url.port == (c->url.tls ? 443 : 80)) /* the Host header leaves it out */
        snprintf(t->peer, sizeof t->peer, "%s:%u", c->url.host_header, c->url.port);
    ts_ws_reader_init(&t->reader, TS_WS_CLIENT, c->opts.max_message);
    ts_sio_decoder_init(&t->dec, c->kind);
    char port[8];
    snprintf(port, sizeof port, "%u", c->url.port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    t->gai.data = t;
    c->live_transports++;
    int rc = uv_getaddrinfo(c->loop, &t->gai, on_resolved, c->url.host, port, &hints);
    if (rc < 0) {
        c->live_transports--;
        ts_ws_reader_deinit(&t->reader);
        ts_sio_decoder_deinit(&t->dec);
        free(t);
        return rc;
    }
    t->gai_active = 1;
    c->t = t;
    c->recovered = 0;
    if (c->opts.connect_timeout_ms)
        uv_timer_start(&c->t_connect, on_connect_timer, c->opts.connect_timeout_ms, 0);
    return 0;
}

static void on_report_drop(ts_client__transport_t *t) {
    ts_client__fail(t->c, TS_ECLOSED, "transport close",
                    "connection to %s dropped by ts_client_debug_drop", t->peer);
}

/* ---- public: life cycle ---- */

TS_CLIENT_API int ts_client_new(uv_loop_t *loop, const ts_client_opts_t *opts,
                                ts_client_t **out, char *errbuf, size_t errlen) {
    *out = NULL;
    if (errbuf && errlen) errbuf[0] = '\0';
    if (!loop || !opts) {
        set_err(errbuf, errlen, "ts_client_new: loop and opts are required");
        return TS_EINVAL;
    }
    ts_client__url_t url;
    int rc = ts_client__url_parse(opts->url, &url, errbuf, errlen);
    if (rc < 0) return rc;
    const char *nsp = opts->nsp && *opts->nsp ? opts->nsp : "/";
    if (nsp[0] != '/' || strchr(nsp, ',')) {
        set_err(errbuf, errlen, "nsp: \"%s\" is not a namespace (expected /NAME, without commas)",
                nsp);
        return TS_EINVAL;
    }
    if (opts->parser != TS_CLIENT_PARSER_JSON && opts->parser != TS_CLIENT_PARSER_MSGPACK) {
        set_err(errbuf, errlen, "parser: %d is not a parser (expected json or msgpack)",
                (int)opts->parser);
        return TS_EINVAL;
    }
    if (opts->backoff_jitter < 0 || opts->backoff_jitter > 1) {
        set_err(errbuf, errlen, "backoff_jitter: %g is outside 0..1", opts->backoff_jitter);
        return TS_EINVAL;
    }
    json_t *auth = NULL;
    if (opts->auth_json) {
        json_error_t je;
        auth = json_loads(opts->auth_json, JSON_DECODE_ANY, &je);
        if (!auth || !json_is_object(auth)) {
            if (auth)
                set_err(errbuf, errlen, "auth: %s is not a JSON object", opts->auth_json);
            else
                set_err(errbuf, errlen, "auth: invalid JSON at column %d: %s", je.column, je.text);
            json_decref(auth);
            return TS_EINVAL;
        }
    }
    ts_tls_ctx_t *tls_ctx = NULL;
    if (url.tls) {
        char why[300];
        if (ts_tls__client_ctx_new(opts->tls_ca_file, !opts->tls_insecure, &tls_ctx, why,
                                   sizeof why) < 0) {
            set_err(errbuf, errlen, "tls_ca_file: %s", why);
            json_decref(auth);
            return TS_EINVAL;
        }
    }
    ts_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        ts_tls__ctx_free(tls_ctx);
        json_decref(auth);
        return TS_ENOMEM;
    }
    c->tls_ctx = tls_ctx;
    c->loop = loop;
    c->opts = *opts;
    c->url = url;
    c->auth = auth;
    c->url_text = dupstr(opts->url);
    c->nsp = dupstr(nsp);
    if (!c->url_text || !c->nsp) {
        free(c->url_text);
        free(c->nsp);
        json_decref(auth);
        ts_tls__ctx_free(tls_ctx);
        free(c);
        return TS_ENOMEM;
    }
    c->opts.url = c->url_text;
    c->opts.nsp = c->nsp;
    c->opts.auth_json = NULL;
    c->opts.tls_ca_file = NULL; /* read into tls_ctx */
    if (!c->opts.backoff_min_ms) c->opts.backoff_min_ms = 1000;
    if (!c->opts.backoff_max_ms) c->opts.backoff_max_ms = 5000;
    if (c->opts.backoff_max_ms < c->opts.backoff_min_ms)
        c->opts.backoff_max_ms = c->opts.backoff_min_ms;
    if (!c->opts.connect_timeout_ms) c->opts.connect_timeout_ms = 20000;
    if (!c->opts.max_message) c->opts.max_message = DEFAULT_MAX_MESSAGE;
    if (!c->opts.max_buffered) c->opts.max_buffered = 1024;
    c->kind = opts->parser == TS_CLIENT_PARSER_MSGPACK ? TS_SIO_PARSER_MSGPACK : TS_SIO_PARSER_JSON;
    c->state = TS_CLIENT_DISCONNECTED;
    ts_random_bytes(&c->rng, sizeof c->rng);
    ts_list_init(&c->acks);
    ts_list_init(&c->queue);
    uv_timer_t *timers[] = {&c->t_reconnect, &c->t_connect, &c->t_ping,
                            &c->t_ack,       &c->t_close,   &c->t_elect};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++) {
        uv_timer_init(loop, timers[i]); /* cannot fail for timers */
        timers[i]->data = c;
        c->handles++;
    }
    *out = c;
    return 0;
}

TS_CLIENT_API int ts_client_connect(ts_client_t *c) {
    if (c->state == TS_CLIENT_CLOSING) return TS_ECLOSED;
    if (c->state != TS_CLIENT_DISCONNECTED) return TS_ESTATE;
    c->attempts = 0;
    c->state = TS_CLIENT_CONNECTING;
    int rc = transport_start(c);
    if (rc < 0) c->state = TS_CLIENT_DISCONNECTED;
    return rc;
}

static void on_handle_closed(uv_handle_t *h) {
    ts_client_t *c = h->data;
    if (--c->handles > 0) return;
    if (c->close_cb) c->close_cb(c, c->opts.user);
    free(c->sid);
    free(c->pid);
    free(c->offset);
    free(c->sacks);
    free(c->early);
    free(c->url_text);
    free(c->nsp);
    json_decref(c->auth);
    ts_client__sess_free(c->sess);
    ts_client__elect_free(c->el);
    ts_tls__ctx_free(c->tls_ctx);
    free(c);
}

/* Last stage of ts_client_close: no transport left. Pending acks learn
 * they will not be answered, then the client's own handles close. */
static void maybe_finish(ts_client_t *c) {
    if (c->state != TS_CLIENT_CLOSING || c->live_transports > 0 || c->finishing) return;
    c->finishing = 1;
    ts_client__fail_acks(c, 1, TS_ECLOSED);
    uv_timer_t *timers[] = {&c->t_reconnect, &c->t_connect, &c->t_ping,
                            &c->t_ack,       &c->t_close,   &c->t_elect};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++)
        uv_close((uv_handle_t *)timers[i], on_handle_closed);
}

static void on_close_timer(uv_timer_t *h) {
    ts_client_t *c = h->data;
    ts_client__kill_transport(c);
    maybe_finish(c);
}

TS_CLIENT_API void ts_client_close(ts_client_t *c, ts_client_close_cb cb) {
    if (c->state == TS_CLIENT_CLOSING) return;
    int was_connected = c->state == TS_CLIENT_CONNECTED;
    c->state = TS_CLIENT_CLOSING;
    c->close_cb = cb;
    uv_timer_stop(&c->t_reconnect);
    uv_timer_stop(&c->t_connect);
    uv_timer_stop(&c->t_ping);
    uv_timer_stop(&c->t_ack);
    ts_client__clear_session_io(c);
    uv_timer_stop(&c->t_elect); /* no report after close */
    /* drop what never went out */
    while (!ts_list_empty(&c->queue)) {
        ts_client__queued_t *q = ts_list_entry(c->queue.next, ts_client__queued_t, link);
        ts_list_remove(&q->link);
        ts_sio_encoded_clear(&q->enc);
        free(q);
    }
    c->nqueued = 0;
    ts_client__transport_t *t = c->t;
    unsigned wait = 0;
    if (t && t->phase >= PH_WS && !t->tcp_closing) {
        /* Socket.IO goodbye for our namespace, then the WebSocket close
         * handshake; the server's close frame (or EOF) ends the wait */
        if (was_connected) {
            char pkt[300];
            int n = strcmp(c->nsp, "/") == 0 ? snprintf(pkt, sizeof pkt, "41")
                                              : snprintf(pkt, sizeof pkt, "41%s,", c->nsp);
            if (n > 0 && (size_t)n < sizeof pkt) send_frame(t, TS_WS_OP_TEXT, pkt, (size_t)n);
        }
        uint8_t body[2] = {TS_WS_CLOSE_NORMAL >> 8, TS_WS_CLOSE_NORMAL & 0xff};
        if (send_frame(t, TS_WS_OP_CLOSE, body, 2) == 0) {
            t->close_sent = 1;
            wait = CLOSE_WAIT_MS;
        }
    }
    if (!wait) ts_client__kill_transport(c);
    /* always finish from the loop, never from inside this call */
    uv_timer_start(&c->t_close, on_close_timer, wait, 0);
}

TS_CLIENT_API int ts_client_debug_drop(ts_client_t *c) {
    ts_client__transport_t *t = c->t;
    if (!t || !t->tcp_init || t->tcp_closing || c->state == TS_CLIENT_CLOSING) return TS_ESTATE;
    t->dropped = 1;
    t->tcp_closing = 1;
    uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
    return 0;
}

/* ---- public: introspection ---- */

TS_CLIENT_API ts_client_state_t ts_client_state(const ts_client_t *c) {
    return (ts_client_state_t)c->state;
}
TS_CLIENT_API const char *ts_client_id(const ts_client_t *c) {
    return c->state == TS_CLIENT_CONNECTED ? c->sid : NULL;
}
TS_CLIENT_API int ts_client_recovered(const ts_client_t *c) {
    return c->state == TS_CLIENT_CONNECTED && c->recovered;
}
TS_CLIENT_API const char *ts_client_pid(const ts_client_t *c) { return c->pid; }
TS_CLIENT_API const char *ts_client_offset(const ts_client_t *c) { return c->offset; }
TS_CLIENT_API void ts_client_engine_info(const ts_client_t *c, unsigned *ping_interval_ms,
                                         unsigned *ping_timeout_ms, size_t *max_payload) {
    if (ping_interval_ms) *ping_interval_ms = c->ping_interval;
    if (ping_timeout_ms) *ping_timeout_ms = c->ping_timeout;
    if (max_payload) *max_payload = c->max_payload;
}

void ts_client__arm_ping(ts_client_t *c) {
    uv_timer_start(&c->t_ping, on_ping_timer, (uint64_t)c->ping_interval + c->ping_timeout, 0);
}

void ts_client__connected(ts_client_t *c) {
    uv_timer_stop(&c->t_connect);
    c->attempts = 0;
    c->state = TS_CLIENT_CONNECTED;
    if (c->t) c->t->phase = PH_SIO;
}
