/* test_tcp.c - tests for the write queue of src/net/tcp.c: delivery classes
 * and coalescing. A real listener on loopback and a client socket that does
 * not read while the server queues frames behind a write the kernel could
 * not take (backpressure), or within one loop turn with no write waiting
 * (the order queued); then the client reads everything and the test checks
 * what arrived and in which order, and that every byte counter is back to
 * 0. One thread: the loop runs between client reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "core/ts_util.h"
#include "metrics/ts_met.h"
#include "net/net_int.h"

#define BIG (4u << 20) /* far more than the socket buffers below take */
#define MAX_FRAMES 64

typedef struct frame {
    uint8_t op;
    size_t len;
    char text[32]; /* the start of the payload, NUL-terminated */
} frame_t;

typedef struct ctx {
    uv_loop_t loop;
    ts_net_t *net;
    ts_ws_conn_t *ws;
    void (*script)(struct ctx *x);
    int fd;             /* the client */
    uint8_t *in;        /* bytes read and not parsed yet */
    size_t inlen, incap;
    int head_done;      /* the 101 response was read */
    int eof;
    frame_t f[MAX_FRAMES];
    size_t nf;
    uint64_t reordered, coalesced; /* counted while the script ran */
} ctx_t;

static uint64_t counter(int id) { return ts_met.counters[id]; }
static int64_t queue_gauge(void) { return ts_met.gauges[TS_MET_SEND_QUEUE_BYTES]; }

static void send_str(ctx_t *x, uint8_t op, const char *s, unsigned cls, uint32_t key) {
    ts_buf_t *b = ts_buf_from(s, strlen(s));
    assert_int_equal(ts_ws_send_class(x->ws, op, b, cls, key), 0);
    ts_buf_unref(b);
}

static void text(ctx_t *x, const char *s, unsigned cls, uint32_t key) {
    send_str(x, TS_WS_OP_TEXT, s, cls, key);
}

static const ts_ws_handler_t ws_handler = {NULL, NULL};

static void on_request(ts_net_t *net, ts_http_conn_t *hc, ts_http_req_t *req, void *ud) {
    (void)net;
    ctx_t *x = ud;
    /* a small send buffer: the kernel takes little, the rest waits for a
     * uv_write (SO_SNDBUF also turns off the buffer's autotuning) */
    int sndbuf = 16384;
    setsockopt(hc->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    assert_int_equal(ts_ws_upgrade(hc, req, 1u << 20, NULL, &ws_handler, x), 0);
    x->ws = hc;
    uint64_t r0 = counter(TS_MET_SEND_REORDERED), c0 = counter(TS_MET_SEND_COALESCED);
    x->script(x);
    x->reordered = counter(TS_MET_SEND_REORDERED) - r0;
    x->coalesced = counter(TS_MET_SEND_COALESCED) - c0;
}

/* Parses what the client read: the 101 response, then server frames. */
static void parse(ctx_t *x) {
    size_t off = 0;
    if (!x->head_done) {
        for (size_t i = 3; i < x->inlen && !x->head_done; i++)
            if (memcmp(x->in + i - 3, "\r\n\r\n", 4) == 0) {
                assert_memory_equal(x->in, "HTTP/1.1 101", 12);
                x->head_done = 1;
                off = i + 1;
            }
        if (!x->head_done) return;
    }
    for (;;) {
        const uint8_t *p = x->in + off;
        size_t n = x->inlen - off, hl = 2;
        if (n < 2) break;
        assert_int_equal(p[1] & 0x80, 0); /* server frames are not masked */
        size_t len = p[1] & 0x7f;
        if (len == 126) {
            hl = 4;
            if (n < hl) break;
            len = (size_t)p[2] << 8 | p[3];
        } else if (len == 127) {
            hl = 10;
            if (n < hl) break;
            len = 0;
            for (int i = 2; i < 10; i++) len = len << 8 | p[i];
        }
        if (n < hl + len) break;
        assert_true(x->nf < MAX_FRAMES);
        frame_t *f = &x->f[x->nf++];
        f->op = p[0] & 0x0f;
        f->len = len;
        size_t keep = TS_MIN(len, sizeof f->text - 1);
        memcpy(f->text, p + hl, keep);
        f->text[keep] = '\0';
        off += hl + len;
    }
    memmove(x->in, x->in + off, x->inlen - off);
    x->inlen -= off;
}

static void client_read(ctx_t *x) {
    for (;;) {
        if (x->incap - x->inlen < 65536) {
            x->incap = x->incap ? x->incap * 2 : 1u << 20;
            x->in = realloc(x->in, x->incap);
            assert_non_null(x->in);
        }
        ssize_t n = recv(x->fd, x->in + x->inlen, x->incap - x->inlen, MSG_DONTWAIT);
        if (n == 0) x->eof = 1;
        if (n <= 0) break;
        x->inlen += (size_t)n;
    }
    parse(x);
}

/* Runs the loop (and the client's reads, when `reading`) until `done`
 * holds; fails after 10 s. */
static void pump(ctx_t *x, int reading, int (*done)(ctx_t *x)) {
    uint64_t until = uv_hrtime() + 10000000000ull;
    while (!done(x)) {
        assert_true(uv_hrtime() < until);
        uv_run(&x->loop, UV_RUN_NOWAIT);
        if (reading) client_read(x);
        if (!done(x)) usleep(500);
    }
}

static int upgraded(ctx_t *x) { return x->ws != NULL; }
static int drained(ctx_t *x) { return x->ws && ts_conn_queued(x->ws) == 0 && queue_gauge() == 0; }
static int got_close(ctx_t *x) { return x->nf > 0 && x->f[x->nf - 1].op == TS_WS_OP_CLOSE; }
static int at_eof(ctx_t *x) { return x->eof; }

static void net_closed(void *ud) { *(int *)ud = 1; }

/* Starts a server, connects a client that does not read, lets `script`
 * queue on the upgraded connection, reads it all, and checks the drain. */
static void run(ctx_t *x, void (*script)(ctx_t *x)) {
    memset(x, 0, sizeof *x);
    x->script = script;
    assert_int_equal(uv_loop_init(&x->loop), 0);
    ts_net_opts_t o = {.host = "127.0.0.1", .max_send_queue = 64u << 20};
    assert_int_equal(ts_net_start(&x->loop, &o, on_request, x, &x->net), 0);

    x->fd = socket(AF_INET, SOCK_STREAM, 0);
    int rcvbuf = 4096;
    setsockopt(x->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ts_net_port(x->net))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(x->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    static const char req[] = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    assert_int_equal(send(x->fd, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
    pump(x, 0, upgraded);
    /* a few turns without reading: whatever is queued stays queued */
    for (int i = 0; i < 5; i++) uv_run(&x->loop, UV_RUN_NOWAIT);
    assert_int_equal((int64_t)ts_conn_queued(x->ws), queue_gauge());
}

/* Reads the rest, checks every counter drained, closes everything. */
static void finish(ctx_t *x) {
    pump(x, 1, drained);
    ts_ws_close(x->ws, TS_WS_CLOSE_NORMAL, "");
    pump(x, 1, got_close);
    x->nf--; /* the close frame came last */
    close(x->fd);
    int closed = 0;
    ts_net_close(x->net, net_closed, &closed);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    assert_int_equal(queue_gauge(), 0);
    free(x->in);
}

/* Frame texts in order; a long frame's text is compared as a prefix. */
static void expect(const ctx_t *x, const char *const *want, size_t n) {
    for (size_t i = 0; i < TS_MIN(n, x->nf); i++) {
        size_t k = x->f[i].len >= sizeof x->f[i].text ? strlen(want[i]) : sizeof x->f[i].text;
        if (strncmp(x->f[i].text, want[i], k) != 0)
            fail_msg("frame %zu is \"%s\", expected \"%s\"", i, x->f[i].text, want[i]);
    }
    assert_int_equal(x->nf, n);
}

/* ---- behind a write in flight ---- */

static void script_inflight(ctx_t *x) {
    /* p0 and a group (big text + its binary tail) fill a write the kernel
     * does not take at once (no write waits yet: the order queued); p0
     * already in flight is never coalesced */
    text(x, "p0", TS_NET_CLASS_PRESENCE, 7);
    ts_buf_t *big = ts_buf_new(BIG);
    memset(big->data, 'A', BIG);
    memcpy(big->data, "big", 3);
    unsigned group = TS_NET_CLASS_EVENT | TS_NET_MORE;
    assert_int_equal(ts_ws_send_class(x->ws, TS_WS_OP_TEXT, big, group, 0), 0);
    ts_buf_unref(big);
    send_str(x, TS_WS_OP_BINARY, "tail", TS_NET_CLASS_EVENT, 0); /* early flush: all go */
    assert_true(x->ws->flags & TS_CONN_WRITING);
    assert_int_equal(x->ws->w->pend.n, 0);

    /* queued behind the write: sorted by class, keyed ones replaced */
    text(x, "e1", TS_NET_CLASS_EVENT, 0);
    text(x, "e2", TS_NET_CLASS_EVENT, 0);
    text(x, "p1", TS_NET_CLASS_PRESENCE, 7);
    text(x, "t1", TS_NET_CLASS_TELEMETRY, 9);
    text(x, "e3", TS_NET_CLASS_EVENT, 0);
    text(x, "s1", TS_NET_CLASS_STATE, 0);
    text(x, "p2 (longer)", TS_NET_CLASS_PRESENCE, 7);
    text(x, "u1", TS_NET_CLASS_EVENT | TS_NET_MORE, 5); /* a group has no key */
    send_str(x, TS_WS_OP_BINARY, "u2", TS_NET_CLASS_EVENT, 0);
    text(x, "x1", TS_NET_CLASS_SECURITY, 0);
    text(x, "c1", TS_NET_CLASS_CONTROL, 0);
    text(x, "t2", TS_NET_CLASS_TELEMETRY, 9);
    text(x, "q1", TS_NET_CLASS_PRESENCE, 8);
    text(x, "x2", TS_NET_CLASS_SECURITY, 0);
    text(x, "p3", TS_NET_CLASS_PRESENCE, 7);
    text(x, "e4", TS_NET_CLASS_EVENT, 0);
    assert_int_equal(x->ws->w->pend.n, 13);
    assert_int_equal((int64_t)ts_conn_queued(x->ws), queue_gauge());
}

static void test_classes_behind_write(void **state) {
    (void)state;
    ctx_t x;
    run(&x, script_inflight);
    assert_int_equal(x.reordered, 9); /* e3, s1, u1, u2, x1, c1, q1, x2, e4 */
    assert_int_equal(x.coalesced, 3); /* p2, t2, p3 */
    finish(&x);
    static const char *const want[] = {"p0", "bigAAA", "tail", "x1", "x2", "c1", "s1", "e1",
                                       "e2", "e3",     "u1",   "u2", "e4", "p3", "q1", "t2"};
    expect(&x, want, TS_ARRAY_LEN(want));
    assert_int_equal(x.f[1].len, BIG);
    assert_int_equal(x.f[2].op, TS_WS_OP_BINARY);
    assert_int_equal(x.f[11].op, TS_WS_OP_BINARY);
}

/* ---- within one loop turn, no write waiting: the order queued ---- */

static void script_one_turn(ctx_t *x) {
    text(x, "e1", TS_NET_CLASS_EVENT, 0);
    text(x, "p1", TS_NET_CLASS_PRESENCE, 5);
    text(x, "s1", TS_NET_CLASS_STATE, 0);
    text(x, "x1", TS_NET_CLASS_SECURITY, 0);
    text(x, "p2", TS_NET_CLASS_PRESENCE, 5);
    text(x, "e2", TS_NET_CLASS_EVENT, 0);
    assert_false(x->ws->flags & TS_CONN_WRITING);
    assert_int_equal(x->ws->w->pend.n, 7); /* the 101 response, then these */
}

static void test_order_queued_when_keeping_up(void **state) {
    (void)state;
    ctx_t x;
    run(&x, script_one_turn);
    assert_int_equal(x.reordered, 0);
    assert_int_equal(x.coalesced, 0);
    finish(&x);
    static const char *const want[] = {"e1", "p1", "s1", "x1", "p2", "e2"};
    expect(&x, want, TS_ARRAY_LEN(want));
}

/* ---- the close frame goes after everything, a pong before events ---- */

static void script_close_last(ctx_t *x) {
    text(x, "e1", TS_NET_CLASS_EVENT, 0);
    text(x, "t1", TS_NET_CLASS_TELEMETRY, 0);
    ts_ws_close(x->ws, TS_WS_CLOSE_NORMAL, "bye");
    /* refused after the close: nothing may follow it */
    ts_buf_t *b = ts_buf_from("x1", 2);
    int rc = ts_ws_send_class(x->ws, TS_WS_OP_TEXT, b, TS_NET_CLASS_SECURITY, 0);
    assert_int_equal(rc, TS_ECLOSED);
    ts_buf_unref(b);
}

static void test_close_last(void **state) {
    (void)state;
    ctx_t x;
    run(&x, script_close_last);
    pump(&x, 1, at_eof);
    close(x.fd);
    assert_int_equal(x.nf, 3);
    assert_string_equal(x.f[0].text, "e1");
    assert_string_equal(x.f[1].text, "t1");
    assert_int_equal(x.f[2].op, TS_WS_OP_CLOSE);
    int closed = 0;
    ts_net_close(x.net, net_closed, &closed);
    uv_run(&x.loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_int_equal(uv_loop_close(&x.loop), 0);
    assert_int_equal(queue_gauge(), 0);
    free(x.in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_behind_write),
        cmocka_unit_test(test_order_queued_when_keeping_up),
        cmocka_unit_test(test_close_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
