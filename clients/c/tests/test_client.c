/* test_client.c - libtabsync's public API against a scripted fake server
 * on a libuv loop: option checks, the error table, offline buffering and
 * its limits, retries with backoff until giving up, and the failures a
 * real server cannot be asked to produce (a 400 to the upgrade, a wrong
 * Sec-WebSocket-Accept, silence until the connect timeout, a server that
 * stops pinging, CONNECT_ERROR in string form, maxPayload). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tabsync.h" /* the public header alone defines the codes */
#include "net/ts_ws_frame.h"

/* ---- a scripted server ---- */

enum scenario { S_400, S_BAD_ACCEPT, S_SILENT, S_PING_THEN_SILENT, S_REFUSE_STRING, S_SMALL_PAYLOAD };

typedef struct fake {
    uv_tcp_t srv, conn;
    int have_conn, port, upgraded;
    enum scenario sc;
    char req[8192];
    size_t req_len;
    ts_ws_reader_t reader;
    uint8_t in[65536];
    size_t in_len;
    char log[4096]; /* client text messages, each followed by '|' */
} fake_t;

static void fake_write(fake_t *f, const void *p, size_t n) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int rc = uv_try_write((uv_stream_t *)&f->conn, &b, 1);
    assert_int_equal(rc, (int)n); /* small writes on loopback go out whole */
}

static void fake_text(fake_t *f, const char *s) {
    ts_buf_t *b = ts_ws_frame_encode(TS_WS_OP_TEXT, s, strlen(s));
    fake_write(f, b->data, b->len);
    ts_buf_unref(b);
}

static void fake_on_upgrade(fake_t *f) {
    const char *k = strstr(f->req, "Sec-WebSocket-Key: ");
    assert_non_null(k);
    k += 19;
    char key[64] = "", accept[29];
    size_t kl = strcspn(k, "\r");
    assert_true(kl < sizeof key);
    memcpy(key, k, kl);
    assert_int_equal(ts_ws_accept_key(key, kl, accept), 0);
    char resp[512];
    switch (f->sc) {
    case S_400:
        fake_write(f, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                   strlen("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
        return;
    case S_SILENT:
        return;
    case S_BAD_ACCEPT:
        memcpy(accept, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 29);
        break;
    default:
        break;
    }
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    fake_write(f, resp, (size_t)n);
    f->upgraded = 1;
    if (f->sc == S_BAD_ACCEPT) return;
    fake_text(f, f->sc == S_SMALL_PAYLOAD
                     ? "0{\"sid\":\"e1\",\"upgrades\":[],\"pingInterval\":5000,\"pingTimeout\":5000,"
                       "\"maxPayload\":1000}"
                     : "0{\"sid\":\"e1\",\"upgrades\":[],\"pingInterval\":100,\"pingTimeout\":100,"
                       "\"maxPayload\":100000}");
}

static void fake_on_message(fake_t *f, const ts_ws_msg_t *m) {
    if (m->opcode == TS_WS_OP_CLOSE) { /* answer the close handshake */
        ts_buf_t *b = ts_ws_frame_encode_close(TS_WS_CLOSE_NORMAL, "");
        fake_write(f, b->data, b->len);
        ts_buf_unref(b);
        return;
    }
    if (m->opcode != TS_WS_OP_TEXT) return;
    size_t l = strlen(f->log);
    snprintf(f->log + l, sizeof f->log - l, "%.*s|", (int)m->len, (const char *)m->data);
    if (m->len >= 2 && memcmp(m->data, "40", 2) == 0) {
        if (f->sc == S_REFUSE_STRING) {
            fake_text(f, "44\"just no\"");
        } else {
            fake_text(f, "40{\"sid\":\"abc\"}");
            if (f->sc == S_PING_THEN_SILENT) fake_text(f, "2");
        }
    }
}

static void fake_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    fake_t *f = h->data;
    if (!f->upgraded)
        *b = uv_buf_init(f->req + f->req_len, (unsigned)(sizeof f->req - 1 - f->req_len));
    else
        *b = uv_buf_init((char *)f->in + f->in_len, (unsigned)(sizeof f->in - f->in_len));
}

static void fake_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    fake_t *f = s->data;
    if (n <= 0) return; /* EOF: the client closes; the test closes our side */
    if (!f->upgraded) {
        f->req_len += (size_t)n;
        f->req[f->req_len] = '\0';
        if (strstr(f->req, "\r\n\r\n")) fake_on_upgrade(f);
        return;
    }
    f->in_len += (size_t)n;
    size_t off = 0;
    for (;;) {
        size_t used;
        ts_ws_msg_t m;
        int rc = ts_ws_reader_feed(&f->reader, f->in + off, f->in_len - off, &used, &m);
        off += used;
        assert_true(rc >= 0);
        if (rc == 0) break;
        fake_on_message(f, &m);
    }
    memmove(f->in, f->in + off, f->in_len - off);
    f->in_len -= off;
}

static void fake_on_conn(uv_stream_t *srv, int status) {
    fake_t *f = srv->data;
    assert_int_equal(status, 0);
    assert_false(f->have_conn);
    uv_tcp_init(srv->loop, &f->conn);
    f->conn.data = f;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&f->conn), 0);
    f->have_conn = 1;
    uv_read_start((uv_stream_t *)&f->conn, fake_alloc, fake_read);
}

static void fake_start(uv_loop_t *loop, fake_t *f, enum scenario sc) {
    memset(f, 0, sizeof *f);
    f->sc = sc;
    ts_ws_reader_init(&f->reader, TS_WS_SERVER, 1 << 20);
    uv_tcp_init(loop, &f->srv);
    f->srv.data = f;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&f->srv, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->srv, 8, fake_on_conn), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&f->srv, (struct sockaddr *)&got, &len);
    f->port = ntohs(got.sin_port);
}

static void fake_stop(fake_t *f) {
    uv_close((uv_handle_t *)&f->srv, NULL);
    if (f->have_conn) uv_close((uv_handle_t *)&f->conn, NULL);
    ts_ws_reader_deinit(&f->reader);
}

/* ---- what the client reported ---- */

typedef struct rec {
    int connects, disconnects, errors, connect_errors, attempts, closed, acks;
    int last_err, ack_status;
    int closed_synchronously_guard;
    char reason[64], errmsg[600], ce_msg[128], ce_data[128];
    unsigned delays[16];
    uint64_t t_connect, t_disconnect;
    uv_loop_t *loop;
} rec_t;

static void r_connect(ts_client_t *c, int recovered, void *u) {
    rec_t *r = u;
    r->connects++;
    r->t_connect = uv_now(r->loop);
}
static void r_disconnect(ts_client_t *c, const char *reason, int will, void *u) {
    rec_t *r = u;
    r->disconnects++;
    r->t_disconnect = uv_now(r->loop);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}
static void r_error(ts_client_t *c, int err, const char *msg, void *u) {
    rec_t *r = u;
    r->errors++;
    r->last_err = err;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
}
static void r_connect_error(ts_client_t *c, const char *msg, const char *data, void *u) {
    rec_t *r = u;
    r->connect_errors++;
    snprintf(r->ce_msg, sizeof r->ce_msg, "%s", msg);
    snprintf(r->ce_data, sizeof r->ce_data, "%s", data ? data : "(null)");
}
static void r_attempt(ts_client_t *c, unsigned attempt, unsigned delay, void *u) {
    rec_t *r = u;
    if (r->attempts < 16) r->delays[r->attempts] = delay;
    r->attempts++;
    assert_int_equal(attempt, (unsigned)r->attempts);
}
static void r_closed(ts_client_t *c, void *u) {
    rec_t *r = u;
    r->closed++;
}
static void r_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *u) {
    rec_t *r = u;
    r->acks++;
    r->ack_status = status;
}

static void opts_for(ts_client_opts_t *o, rec_t *r, int port) {
    static char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/socket.io/", port);
    ts_client_opts_init(o);
    o->url = url;
    o->reconnection = 0;
    o->cb.on_connect = r_connect;
    o->cb.on_disconnect = r_disconnect;
    o->cb.on_error = r_error;
    o->cb.on_connect_error = r_connect_error;
    o->cb.on_reconnect_attempt = r_attempt;
    o->user = r;
}

/* Runs the loop until *flag becomes non-zero or ms pass. Returns the flag. */
static int run_until(uv_loop_t *loop, const int *flag, unsigned ms) {
    uint64_t end = uv_now(loop) + ms;
    while (!*flag && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    return *flag;
}

static void close_and_drain(uv_loop_t *loop, ts_client_t *c, rec_t *r) {
    ts_client_close(c, r_closed);
    assert_int_equal(r->closed, 0); /* never from inside the call */
    ts_client_close(c, r_closed);   /* twice: a no-op */
    run_until(loop, &r->closed, 3000);
    assert_int_equal(r->closed, 1);
}

static void end_loop(uv_loop_t *loop) {
    uv_run(loop, UV_RUN_DEFAULT); /* close callbacks of the fake server */
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- tests ---- */

static void test_error_table(void **state) {
    /* tabsync.h's values are the server table's (ts_client_err_name reads that one) */
    static const struct {
        int code;
        const char *name;
    } rows[] = {
        {TS_EINTERNAL, "TS_EINTERNAL"}, {TS_ENOMEM, "TS_ENOMEM"},   {TS_EINVAL, "TS_EINVAL"},
        {TS_ECLOSED, "TS_ECLOSED"},     {TS_EPROTO, "TS_EPROTO"},   {TS_ETOOBIG, "TS_ETOOBIG"},
        {TS_EUTF8, "TS_EUTF8"},         {TS_EJSON, "TS_EJSON"},     {TS_ENOTFOUND, "TS_ENOTFOUND"},
        {TS_ESTATE, "TS_ESTATE"},       {TS_ELIMIT, "TS_ELIMIT"},   {TS_ETIMEDOUT, "TS_ETIMEDOUT"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        assert_string_equal(ts_client_err_name(rows[i].code), rows[i].name);
    assert_string_equal(ts_client_strerror(TS_ETIMEDOUT), "timed out");
    assert_string_equal(ts_client_strerror(UV_ECONNREFUSED), "connection refused");
    assert_string_equal(ts_client_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(ts_client_version(), TS_CLIENT_VERSION_STRING);
}

static void test_new_validation(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const struct {
        const char *url, *nsp, *auth;
        double jitter;
        int parser;
        const char *msg;
        const char *ca;
    } rows[] = {
        {NULL, NULL, NULL, 0.5, 0, "url: missing", NULL},
        {"wss://h/", NULL, NULL, 0.5, 0,
         "tls_ca_file: cannot load trusted certificates from /nonexistent/ca.pem",
         "/nonexistent/ca.pem"},
        {"ws://h:1/", "custom", NULL, 0.5, 0, "nsp: \"custom\" is not a namespace", NULL},
        {"ws://h:1/", "/a,b", NULL, 0.5, 0, "not a namespace", NULL},
        {"ws://h:1/", NULL, "[1]", 0.5, 0, "auth: [1] is not a JSON object", NULL},
        {"ws://h:1/", NULL, "{\"a\":", 0.5, 0, "auth: invalid JSON", NULL},
        {"ws://h:1/", NULL, NULL, 1.5, 0, "backoff_jitter", NULL},
        {"ws://h:1/", NULL, NULL, 0.5, 7, "parser: 7", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        ts_client_opts_t o;
        ts_client_opts_init(&o);
        o.url = rows[i].url;
        o.nsp = rows[i].nsp;
        o.auth_json = rows[i].auth;
        o.backoff_jitter = rows[i].jitter;
        o.parser = (ts_client_parser_t)rows[i].parser;
        o.tls_ca_file = rows[i].ca;
        ts_client_t *c = (ts_client_t *)&o;
        char err[256] = "";
        assert_int_equal(ts_client_new(&loop, &o, &c, err, sizeof err), TS_EINVAL);
        assert_null(c);
        if (!strstr(err, rows[i].msg)) print_error("\"%s\" lacks \"%s\"\n", err, rows[i].msg);
        assert_non_null(strstr(err, rows[i].msg));
    }
    /* a zeroed struct with a URL is valid too */
    ts_client_opts_t z;
    memset(&z, 0, sizeof z);
    z.url = "http://localhost:9/";
    rec_t r = {.loop = &loop};
    z.user = &r;
    ts_client_t *c;
    assert_int_equal(ts_client_new(&loop, &z, &c, NULL, 0), 0);
    assert_int_equal(ts_client_state(c), TS_CLIENT_DISCONNECTED);
    assert_null(ts_client_id(c));
    assert_null(ts_client_pid(c));
    assert_null(ts_client_offset(c));
    assert_int_equal(ts_client_recovered(c), 0);
    assert_int_equal(ts_client_debug_drop(c), TS_ESTATE);
    close_and_drain(&loop, c, &r);
    end_loop(&loop);
}

static void test_offline_buffer_and_close(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    rec_t r = {.loop = &loop};
    ts_client_opts_t o;
    opts_for(&o, &r, 9);
    o.max_buffered = 2;
    ts_client_t *c;
    assert_int_equal(ts_client_new(&loop, &o, &c, NULL, 0), 0);
    assert_int_equal(ts_client_emit(c, "connect", NULL), TS_EINVAL); /* reserved */
    assert_int_equal(ts_client_emit(c, "", NULL), TS_EINVAL);
    assert_int_equal(ts_client_emit(c, "x", "{\"not\":\"an array\"}"), TS_EINVAL);
    assert_int_equal(ts_client_emit(c, "x", "[1,"), TS_EINVAL);
    assert_int_equal(ts_client_emit(c, "x", "[{\"_placeholder\":true,\"num\":0}]"), TS_EINVAL);
    assert_int_equal(ts_client_emit_ack(c, "x", NULL, NULL, NULL, 0), TS_EINVAL);
    assert_int_equal(ts_client_emit(c, "x", "[1]"), 0);
    assert_int_equal(ts_client_emit_ack(c, "x", NULL, r_ack, &r, 0), 0);
    assert_int_equal(ts_client_emit(c, "x", NULL), TS_ELIMIT);
    assert_int_equal(ts_client_ack(c, 0, NULL), TS_ENOTFOUND);
    /* closing completes the buffered emit's ack with TS_ECLOSED, from the loop */
    ts_client_close(c, r_closed);
    assert_int_equal(r.acks, 0);
    assert_int_equal(ts_client_emit(c, "x", NULL), TS_ECLOSED);
    assert_int_equal(ts_client_connect(c), TS_ECLOSED);
    run_until(&loop, &r.closed, 3000);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.acks, 1);
    assert_int_equal(r.ack_status, TS_ECLOSED);
    assert_int_equal(r.connects + r.errors, 0);
    end_loop(&loop);
}

static int free_port(uv_loop_t *loop) {
    fake_t f;
    fake_start(loop, &f, S_SILENT);
    int port = f.port;
    fake_stop(&f);
    uv_run(loop, UV_RUN_DEFAULT);
    return port;
}

static void test_refused_retries_then_gives_up(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    rec_t r = {.loop = &loop};
    ts_client_opts_t o;
    opts_for(&o, &r, free_port(&loop));
    o.reconnection = 1;
    o.reconnection_attempts = 3;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 30;
    o.backoff_jitter = 0;
    ts_client_t *c;
    assert_int_equal(ts_client_new(&loop, &o, &c, NULL, 0), 0);
    assert_int_equal(ts_client_connect(c), 0);
    assert_int_equal(ts_client_connect(c), TS_ESTATE);
    int gave_up = 0;
    uint64_t end = uv_now(&loop) + 5000;
    while (!gave_up && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        gave_up = r.last_err == TS_ELIMIT;
    }
    assert_int_equal(r.last_err, TS_ELIMIT);
    assert_non_null(strstr(r.errmsg, "gave up after 3 reconnection attempts"));
    assert_non_null(strstr(r.errmsg, "connection refused"));
    assert_int_equal(r.errors, 4); /* refused x3, then the verdict */
    assert_int_equal(r.attempts, 3);
    /* exponential, capped, no jitter: 10, 20, 30 */
    assert_int_equal(r.delays[0], 10);
    assert_int_equal(r.delays[1], 20);
    assert_int_equal(r.delays[2], 30);
    assert_int_equal(ts_client_state(c), TS_CLIENT_DISCONNECTED);
    assert_int_equal(r.connects, 0);
    close_and_drain(&loop, c, &r);
    end_loop(&loop);
}

static void test_jitter_stays_in_range(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    rec_t r = {.loop = &loop};
    ts_client_opts_t o;
    opts_for(&o, &r, free_port(&loop));
    o.reconnection = 1;
    o.reconnection_attempts = 6;
    o.backoff_min_ms = 8;
    o.backoff_max_ms = 100;
    o.backoff_jitter = 0.5;
    ts_client_t *c;
    assert_int_equal(ts_client_new(&loop, &o, &c, NULL, 0), 0);
    assert_int_equal(ts_client_connect(c), 0);
    uint64_t end = uv_now(&loop) + 5000;
    while (r.last_err != TS_ELIMIT && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
    }
    assert_int_equal(r.attempts, 6);
    for (int i = 0; i < 6; i++) {
        double base = 8.0 * (1 << i);
        double lo = base * 0.5 > 100 ? 100 : base * 0.5, hi = base * 1.5 > 100 ? 100 : base * 1.5;
        if (r.delays[i] + 1 < lo || r.delays[i] > hi)
            print_error("delay %d = %u outside [%g, %g]\n", i, r.delays[i], lo, hi);
        assert_true(r.delays[i] + 1 >= lo && r.delays[i] <= hi);
    }
    close_and_drain(&loop, c, &r);
    end_loop(&loop);
}

static void run_failing_handshake(enum scenario sc, int want_err, const char *want_msg,
                                  unsigned timeout_ms) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_t f;
    fake_start(&loop, &f, sc);
    rec_t r = {.loop = &loop};
    ts_client_opts_t o;
    opts_for(&o, &r, f.port);
    if (timeout_ms) o.connect_timeout_ms = timeout_ms;
    ts_client_t *c;
    assert_int_equal(ts_client_new(&loop, &o, &c, NULL, 0), 0);
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(ts_client_connect(c), 0);
    assert_int_equal(ts_client_state(c), TS_CLIENT_CONNECTING);
    run_until(&loop, &r.errors, 5000);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.last_err, want_err);
    if (!strstr(r.errmsg, want_msg)) print_error("\"%s\" lacks \"%s\"\n", r.errmsg, want_msg);
    assert_non_null(strstr(r.errmsg, want_msg));
    if (timeout_ms) assert_true(uv_now(&loop) - t0 + 5 >= timeout_ms);
    assert_int_equal(ts_client_state(c), TS_CLIENT_DISCONNECTED);
    assert_int_equal(r.connects, 0);
    close_and_drain(&loop, c, &r);
    fake_stop(&f);
    end_loop(&loop);
}

static void test_handshake_400(void **state) {
    run_failing_handshake(S_400, TS_EPROTO, "answered \"HTTP/1.1 400 Bad Request\"", 0);
}

static void test_handshake_bad_accept(void **state) {
    run_failing_handshake(S_BAD_ACCEPT, TS_EPROTO, "does not match the key", 0);
}

static void test_connect_timeout(void **state) {
    run_failing_handshake(S_SILENT, TS_ETIMEDOUT, "no Socket.IO CONNECT answer within 200 ms", 200);
}

static void test_ping_timeout(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_t f;
    fake_start(&loop, &f, S_PING_THEN_SILENT);
    rec_t r = {.loop = &loop};
    ts_client_opts_t o;
    opts_for(&o, &r, f.port);
    o.auth_json = "{\"token\":\"t\"}";
    ts_client_t *c;
    assert_int_equal(ts_client_new(&loop, &o, &c, NULL, 0), 0);
    assert_int_equal(ts_client_connect(c), 0);
    run_until(&loop, &r.connects, 3000);
    assert_int_equal(r.connects, 1);
    assert_string_equal(ts_client_id(c), "abc");
    assert_null(ts_client_pid(c)); /* no pid: recovery off on that server */
    unsigned pi, pt;
    size_t mp;
    ts_client_engine_info(c, &pi, &pt, &mp);
    assert_int_equal(pi, 100);
    assert_int_equal(pt, 100);
    assert_int_equal(mp, 100000);
    run_until(&loop, &r.disconnects, 3000);
    assert_int_equal(r.disconnects, 1);
    assert_string_equal(r.reason, "ping timeout");
    /* armed at the ping (right after CONNECT): 100 + 100 ms, not earlier */
    assert_true(r.t_disconnect - r.t_connect >= 190);
    /* the client sent CONNECT with its auth, then answered the ping */
    assert_string_equal(f.log, "40{\"token\":\"t\"}|3|");
    assert_int_equal(ts_client_state(c), TS_CLIENT_DISCONNECTED);
    close_and_drain(&loop, c, &r);
    fake_stop(&f);
    end_loop(&loop);
}

static void test_connect_error_string(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_t f;
    fake_start(&loop, &f, S_REFUSE_STRING);
    rec_t r = {.loop = &loop};
    ts_client_opts_t o;
    opts_for(&o, &r, f.port);
    o.reconnection = 1; /* a refusal is final anyway */
    o.nsp = "/ns";
    ts_client_t *c;
    assert_int_equal(ts_client_new(&loop, &o, &c, NULL, 0), 0);
    assert_int_equal(ts_client_connect(c), 0);
    run_until(&loop, &r.connect_errors, 300);
    /* the fake answers in the root namespace: not ours, ignored */
    assert_int_equal(r.connect_errors, 0);
    close_and_drain(&loop, c, &r);
    fake_stop(&f);
    end_loop(&loop);

    uv_loop_init(&loop);
    fake_start(&loop, &f, S_REFUSE_STRING);
    memset(&r, 0, sizeof r);
    r.loop = &loop;
    opts_for(&o, &r, f.port);
    o.reconnection = 1;
    assert_int_equal(ts_client_new(&loop, &o, &c, NULL, 0), 0);
    assert_int_equal(ts_client_connect(c), 0);
    run_until(&loop, &r.connect_errors, 3000);
    assert_int_equal(r.connect_errors, 1);
    assert_string_equal(r.ce_msg, "just no");
    assert_string_equal(r.ce_data, "(null)");
    assert_int_equal(r.attempts, 0);
    assert_int_equal(ts_client_state(c), TS_CLIENT_DISCONNECTED);
    assert_string_equal(f.log, "40|");
    close_and_drain(&loop, c, &r);
    fake_stop(&f);
    end_loop(&loop);
}

static void test_max_payload(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_t f;
    fake_start(&loop, &f, S_SMALL_PAYLOAD);
    rec_t r = {.loop = &loop};
    ts_client_opts_t o;
    opts_for(&o, &r, f.port);
    ts_client_t *c;
    assert_int_equal(ts_client_new(&loop, &o, &c, NULL, 0), 0);
    assert_int_equal(ts_client_connect(c), 0);
    run_until(&loop, &r.connects, 3000);
    assert_int_equal(r.connects, 1);
    char big[1200];
    memset(big, 'a', sizeof big);
    memcpy(big, "[\"", 2);
    memcpy(big + sizeof big - 3, "\"]", 3);
    assert_int_equal(ts_client_emit(c, "x", big), TS_ETOOBIG);
    assert_int_equal(ts_client_emit(c, "x", "[\"small\"]"), 0);
    assert_int_equal(ts_client_ack(c, 5, NULL), TS_ENOTFOUND);
    /* an ack that never comes: the close completes it */
    assert_int_equal(ts_client_emit_ack(c, "y", NULL, r_ack, &r, 0), 0);
    /* let the fake read it */
    for (int i = 0; i < 20 && !strstr(f.log, "420[\"y\"]"); i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_string_equal(f.log, "40|42[\"x\",\"small\"]|420[\"y\"]|");
    close_and_drain(&loop, c, &r);
    assert_int_equal(r.acks, 1);
    assert_int_equal(r.ack_status, TS_ECLOSED);
    /* the goodbye: DISCONNECT for the namespace, then the WebSocket close */
    assert_string_equal(f.log, "40|42[\"x\",\"small\"]|420[\"y\"]|41|");
    fake_stop(&f);
    end_loop(&loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_new_validation),
        cmocka_unit_test(test_offline_buffer_and_close),
        cmocka_unit_test(test_refused_retries_then_gives_up),
        cmocka_unit_test(test_jitter_stays_in_range),
        cmocka_unit_test(test_handshake_400),
        cmocka_unit_test(test_handshake_bad_accept),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_ping_timeout),
        cmocka_unit_test(test_connect_error_string),
        cmocka_unit_test(test_max_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
