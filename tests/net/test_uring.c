/* test_uring.c - tests for a loop turn's reads and writes in io_uring
 * batches (src/net/uring.c, tcp.c on_ready and on_flush_check), each also
 * run with a system call per socket for comparison: many WebSocket clients
 * get frames in one loop turn (more connections than a batch holds), a
 * client that reset its connection makes its send fail and only that
 * connection close, a frame bigger than the socket buffer goes out partly
 * from the batch and the rest once the socket is writable, and so do more
 * segments than one system call takes; many clients' frames are read in
 * one turn, a frame that comes in pieces continues in the connection's own
 * buffer, one bigger than a read slot arrives whole, and a socket with more
 * than a slot waiting is read whole in one turn; a process out of
 * descriptors closes new connections instead of spinning, then accepts
 * again; a listener that waits for a client's first bytes accepts and
 * reads it in one turn; and a corked connection holds its small frames
 * until it is uncorked, then sends them in one write. Real sockets on loopback; one thread, the loop runs between the
 * clients' reads. */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/ts_buf.h"
#include "core/ts_util.h"
#include "metrics/ts_met.h"
#include "net/net_int.h"

#define NCLIENTS 100 /* more than three batches of RING_BATCH (32) */
/* far more than the socket buffers take, less than the 256 KiB that make a
 * connection flush in the middle of a turn (tcp.c EARLY_FLUSH_BYTES) */
#define BIG (200u << 10)

typedef struct client {
    int fd;
    ts_ws_conn_t *ws;  /* the server's side; NULL once closed */
    int close_code;    /* from on_close; 0 while open */
    uint8_t *in;
    size_t inlen, incap;
    uint8_t *got; /* the last message the server read from this client */
    size_t gotlen;
    int messages; /* how many it read */
} client_t;

typedef struct ctx {
    uv_loop_t loop;
    ts_net_t *net;
    enum ts_net_io writes;
    client_t c[NCLIENTS];
    int upgraded;
} ctx_t;

static uint64_t counter(int id) { return ts_met.counters[id]; }

static void on_ws_close(ts_ws_conn_t *ws, int code, void *ud) {
    client_t *c = ud;
    (void)ws;
    c->close_code = code;
    c->ws = NULL;
}

static void on_ws_message(ts_ws_conn_t *ws, const ts_ws_msg_t *msg, void *ud) {
    client_t *c = ud;
    (void)ws;
    free(c->got);
    c->got = malloc(msg->len + 1);
    memcpy(c->got, msg->data, msg->len);
    c->gotlen = msg->len;
    c->messages++;
}

static const ts_ws_handler_t handler = {on_ws_message, on_ws_close};

/* The request's path names the client: /ws/<index>. */
static void on_request(ts_net_t *net, ts_http_conn_t *hc, ts_http_req_t *req, void *ud) {
    (void)net;
    ctx_t *x = ud;
    char num[8] = {0};
    memcpy(num, req->path.p + 4, TS_MIN(req->path.len - 4, sizeof num - 1));
    int i = atoi(num);
    assert_true(i >= 0 && i < NCLIENTS);
    int sndbuf = 16384; /* small: a big frame does not fit */
    setsockopt(hc->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    assert_int_equal(ts_ws_upgrade(hc, req, 1u << 20, NULL, &handler, &x->c[i]), 0);
    x->c[i].ws = hc;
    x->upgraded++;
}

static void client_read(client_t *c) {
    for (;;) {
        if (c->incap - c->inlen < 65536) {
            c->incap = c->incap ? c->incap * 2 : 1u << 16;
            c->in = realloc(c->in, c->incap);
            assert_non_null(c->in);
        }
        ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, MSG_DONTWAIT);
        if (n <= 0) break;
        c->inlen += (size_t)n;
    }
}

/* Runs the loop and reads every client until `done` holds (10 s at most). */
static void pump(ctx_t *x, int (*done)(ctx_t *x)) {
    uint64_t until = uv_hrtime() + 10000000000ull;
    while (!done(x)) {
        assert_true(uv_hrtime() < until);
        uv_run(&x->loop, UV_RUN_NOWAIT);
        for (int i = 0; i < NCLIENTS; i++) client_read(&x->c[i]);
        if (!done(x)) usleep(200);
    }
}

static int all_upgraded(ctx_t *x) { return x->upgraded == NCLIENTS; }

/* The bytes after the 101 response's head. */
static const uint8_t *body_of(const client_t *c, size_t *len) {
    for (size_t i = 3; i < c->inlen; i++)
        if (memcmp(c->in + i - 3, "\r\n\r\n", 4) == 0) {
            assert_memory_equal(c->in, "HTTP/1.1 101", 12);
            *len = c->inlen - i - 1;
            return c->in + i + 1;
        }
    *len = 0;
    return NULL;
}

static enum ts_net_accept accept_mode; /* of the next start() */

static void start(ctx_t *x, enum ts_net_io writes) {
    memset(x, 0, sizeof *x);
    x->writes = writes;
    assert_int_equal(uv_loop_init(&x->loop), 0);
    ts_net_opts_t o = {.host = "127.0.0.1", .max_send_queue = 64u << 20, .io = writes,
                       .accept = accept_mode};
    assert_int_equal(ts_net_start(&x->loop, &o, on_request, x, &x->net), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ts_net_port(x->net))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < NCLIENTS; i++) {
        client_t *c = &x->c[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        int rcvbuf = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
        char req[256];
        int n = snprintf(req, sizeof req,
                         "GET /ws/%d HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         i);
        assert_int_equal(send(c->fd, req, (size_t)n, 0), n);
    }
    pump(x, all_upgraded);
}

static void net_closed(void *ud) { *(int *)ud = 1; }

static void stop(ctx_t *x) {
    for (int i = 0; i < NCLIENTS; i++) {
        if (x->c[i].fd >= 0) close(x->c[i].fd);
        free(x->c[i].in);
        free(x->c[i].got);
    }
    int closed = 0;
    ts_net_close(x->net, net_closed, &closed);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    assert_int_equal(ts_met.gauges[TS_MET_SEND_QUEUE_BYTES], 0);
}

/* How many io_uring submissions `writes` should have made: some with the
 * ring (when liburing is built in), none without. */
static void check_submits(enum ts_net_io writes, uint64_t submits, uint64_t at_least) {
#ifdef TS_HAVE_LIBURING
    if (writes == TS_NET_IO_URING) {
        assert_true(submits >= at_least);
        return;
    }
#endif
    (void)writes, (void)at_least;
    assert_int_equal(submits, 0);
}

/* Two frames to each of 100 clients in one turn: every client gets both,
 * in order, and the ring needed at least ceil(100 / 32) submissions. */
static void many_in_one_turn(enum ts_net_io writes) {
    ctx_t x;
    start(&x, writes);
    uint64_t s0 = counter(TS_MET_URING_SUBMITS), w0 = counter(TS_MET_WRITES);
    ts_buf_t *shared = ts_buf_from("shared by all", 13);
    for (int i = 0; i < NCLIENTS; i++) {
        char own[16];
        int n = snprintf(own, sizeof own, "to %d", i);
        ts_buf_t *b = ts_buf_from(own, (size_t)n);
        assert_int_equal(ts_ws_send_class(x.c[i].ws, TS_WS_OP_TEXT, b, TS_NET_CLASS_EVENT, 0), 0);
        ts_buf_unref(b);
        assert_int_equal(
            ts_ws_send_class(x.c[i].ws, TS_WS_OP_TEXT, shared, TS_NET_CLASS_EVENT, 0), 0);
    }
    ts_buf_unref(shared);
    uv_run(&x.loop, UV_RUN_NOWAIT); /* one turn: the flush */
    assert_int_equal(counter(TS_MET_WRITES) - w0, NCLIENTS); /* one write each */
    check_submits(writes, counter(TS_MET_URING_SUBMITS) - s0, (NCLIENTS + 31) / 32);
    for (int i = 0; i < NCLIENTS; i++) {
        client_t *c = &x.c[i];
        char want[64];
        int n = snprintf(want + 2, sizeof want - 2, "to %d", i);
        want[0] = (char)0x81;
        want[1] = (char)n;
        memcpy(want + 2 + n, "\x81\x0dshared by all", 15);
        size_t len;
        const uint8_t *p;
        uint64_t until = uv_hrtime() + 5000000000ull;
        while ((p = body_of(c, &len)) == NULL || len < (size_t)(n + 17)) {
            assert_true(uv_hrtime() < until);
            client_read(c);
        }
        assert_int_equal(len, (size_t)(n + 17));
        assert_memory_equal(p, want, (size_t)(n + 17));
        assert_int_equal(ts_conn_queued(c->ws), 0);
    }
    stop(&x);
}

static int reset_seen(ctx_t *x) { return x->c[7].close_code != 0; }

/* A client that reset its connection while frames were queued to every
 * client: that connection closes (1006; the loop's read side usually sees
 * the reset before the flush, else its send fails) and the others of the
 * turn get their frames. */
static void one_reset(enum ts_net_io writes) {
    ctx_t x;
    start(&x, writes);
    struct linger lg = {1, 0};
    setsockopt(x.c[7].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(x.c[7].fd); /* RST */
    x.c[7].fd = -1;
    usleep(20000);
    /* queue before the loop sees the reset on its read side */
    ts_buf_t *b = ts_buf_from("after the reset", 15);
    for (int i = 0; i < NCLIENTS; i++)
        assert_int_equal(ts_ws_send_class(x.c[i].ws, TS_WS_OP_TEXT, b, TS_NET_CLASS_EVENT, 0), 0);
    ts_buf_unref(b);
    uint64_t s0 = counter(TS_MET_URING_SUBMITS);
    pump(&x, reset_seen);
    assert_int_equal(x.c[7].close_code, 1006);
    check_submits(writes, counter(TS_MET_URING_SUBMITS) - s0, 1);
    for (int i = 0; i < NCLIENTS; i++) {
        if (i == 7) continue;
        client_t *c = &x.c[i];
        size_t len;
        const uint8_t *p;
        uint64_t until = uv_hrtime() + 5000000000ull;
        while ((p = body_of(c, &len)) == NULL || len < 17) {
            assert_true(uv_hrtime() < until);
            client_read(c);
        }
        assert_int_equal(len, 17);
        assert_memory_equal(p, "\x81\x0f" "after the reset", 17);
        assert_non_null(c->ws);
    }
    stop(&x);
}

static int big_done(ctx_t *x) {
    size_t len;
    return body_of(&x->c[3], &len) && len == BIG + 10 + 7 && ts_conn_queued(x->c[3].ws) == 0;
}

/* A frame far bigger than the socket buffer: the batch's send takes what
 * fits, the rest goes as the socket becomes writable; a frame queued
 * meanwhile follows it. */
static void big_frame(enum ts_net_io writes) {
    ctx_t x;
    start(&x, writes);
    uint8_t *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) big[i] = (uint8_t)('a' + i % 26);
    ts_buf_t *b = ts_buf_from(big, BIG);
    assert_int_equal(ts_ws_send_class(x.c[3].ws, TS_WS_OP_BINARY, b, TS_NET_CLASS_EVENT, 0), 0);
    ts_buf_unref(b);
    uv_run(&x.loop, UV_RUN_NOWAIT);
    assert_true(x.c[3].ws->flags & TS_CONN_WRITING); /* the rest waits for the socket */
    assert_true(x.c[3].ws->watch & TS_WATCH_OUT);
    b = ts_buf_from("after", 5);
    assert_int_equal(ts_ws_send_class(x.c[3].ws, TS_WS_OP_TEXT, b, TS_NET_CLASS_EVENT, 0), 0);
    ts_buf_unref(b);
    pump(&x, big_done);
    size_t len;
    const uint8_t *p = body_of(&x.c[3], &len);
    assert_int_equal(p[0], 0x82);
    assert_int_equal(p[1], 127); /* a 64-bit length: 10 bytes of header */
    assert_memory_equal(p + 10, big, BIG);
    assert_memory_equal(p + 10 + BIG, "\x81\x05" "after", 7);
    free(big);
    stop(&x);
}

static int many_frames_done(ctx_t *x) {
    size_t len;
    return body_of(&x->c[5], &len) && len == 700 * 7 && ts_conn_queued(x->c[5].ws) == 0;
}

/* 700 frames to one client in one turn: 1,400 segments, more than the
 * kernel takes in one call (IOV_MAX, 1,024; it refuses the whole call with
 * EMSGSIZE). The first 1,024 go in the batch, the rest as a short write's
 * remainder; every frame arrives once, in order. */
static void many_frames(enum ts_net_io writes) {
    ctx_t x;
    start(&x, writes);
    for (int i = 0; i < 700; i++) {
        char t[8];
        snprintf(t, sizeof t, "f%04d", i);
        ts_buf_t *b = ts_buf_from(t, 5);
        assert_int_equal(ts_ws_send_class(x.c[5].ws, TS_WS_OP_TEXT, b, TS_NET_CLASS_EVENT, 0), 0);
        ts_buf_unref(b);
    }
    pump(&x, many_frames_done);
    size_t len;
    const uint8_t *p = body_of(&x.c[5], &len);
    for (int i = 0; i < 700; i++) {
        char want[8];
        snprintf(want, sizeof want, "f%04d", i);
        assert_int_equal(p[7 * i], 0x81);
        assert_int_equal(p[7 * i + 1], 5);
        assert_memory_equal(p + 7 * i + 2, want, 5);
    }
    assert_non_null(x.c[5].ws); /* not closed by a refused send */
    stop(&x);
}

static int cork_big_done(ctx_t *x) {
    size_t len;
    return body_of(&x->c[4], &len) && len == 18 + 4 + 20000 && ts_conn_queued(x->c[4].ws) == 0;
}

/* A corked connection (ts_ws_cork) holds its small frames over several
 * loop turns, including one queued and scheduled before the cork (as a
 * CONNECT reply is before the session's welcome); the uncork sends them in
 * one write. 16 KiB or more is not held. */
static void cork(enum ts_net_io io) {
    ctx_t x;
    start(&x, io);
    client_t *c = &x.c[4];
    uint64_t w0 = counter(TS_MET_WRITES);
    ts_buf_t *a = ts_buf_from("connect", 7), *b = ts_buf_from("welcome", 7);
    assert_int_equal(ts_ws_send_class(c->ws, TS_WS_OP_TEXT, a, TS_NET_CLASS_EVENT, 0), 0);
    ts_ws_cork(c->ws);
    for (int i = 0; i < 5; i++) uv_run(&x.loop, UV_RUN_NOWAIT);
    assert_int_equal(counter(TS_MET_WRITES) - w0, 0);
    assert_int_equal(ts_conn_queued(c->ws), 9);
    assert_int_equal(ts_ws_send_class(c->ws, TS_WS_OP_TEXT, b, TS_NET_CLASS_EVENT, 0), 0);
    for (int i = 0; i < 5; i++) uv_run(&x.loop, UV_RUN_NOWAIT);
    assert_int_equal(counter(TS_MET_WRITES) - w0, 0);
    client_read(c);
    size_t len;
    assert_non_null(body_of(c, &len));
    assert_int_equal(len, 0); /* nothing but the 101 */
    ts_ws_uncork(c->ws);
    uv_run(&x.loop, UV_RUN_NOWAIT);
    assert_int_equal(counter(TS_MET_WRITES) - w0, 1); /* both frames, one write */
    const uint8_t *p;
    uint64_t until = uv_hrtime() + 5000000000ull;
    while ((p = body_of(c, &len)) == NULL || len < 18) {
        assert_true(uv_hrtime() < until);
        client_read(c);
    }
    assert_int_equal(len, 18);
    assert_memory_equal(p, "\x81\x07" "connect" "\x81\x07" "welcome", 18);
    /* past the cork's bound: not held */
    ts_ws_cork(c->ws);
    uint8_t *big = malloc(20000);
    memset(big, 'z', 20000);
    ts_buf_t *z = ts_buf_from(big, 20000);
    assert_int_equal(ts_ws_send_class(c->ws, TS_WS_OP_BINARY, z, TS_NET_CLASS_EVENT, 0), 0);
    pump(&x, cork_big_done);
    p = body_of(c, &len);
    assert_int_equal(p[18], 0x82);
    assert_memory_equal(p + 22, big, 20000);
    ts_ws_uncork(c->ws);
    ts_ws_uncork(c->ws); /* not corked: nothing happens */
    ts_buf_unref(a);
    ts_buf_unref(b);
    ts_buf_unref(z);
    free(big);
    stop(&x);
}

/* A masked client frame (opcode, payload) into `out` (len + 14 bytes). */
static size_t client_frame(uint8_t *out, uint8_t opcode, const uint8_t *p, size_t len) {
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = ts_ws_frame_header(out, opcode, 1, len, mask);
    for (size_t i = 0; i < len; i++) out[h + i] = p[i] ^ mask[i % 4];
    return h + len;
}

static void send_all(int fd, const uint8_t *p, size_t len) {
    while (len) {
        ssize_t n = send(fd, p, len, 0);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static int all_read(ctx_t *x) {
    for (int i = 0; i < NCLIENTS; i++)
        if (x->c[i].messages < 1) return 0;
    return 1;
}

/* Every client sends a frame before the loop runs: the turn reads them
 * all (with the ring, in batches of 32: at least ceil(100 / 32)
 * submissions, no read system call), each message whole and to its own
 * connection. */
static void many_read(enum ts_net_io io) {
    ctx_t x;
    start(&x, io);
    for (int i = 0; i < NCLIENTS; i++) {
        char t[32];
        int n = snprintf(t, sizeof t, "from client %d", i);
        uint8_t f[64];
        send_all(x.c[i].fd, f, client_frame(f, TS_WS_OP_TEXT, (const uint8_t *)t, (size_t)n));
    }
    usleep(20000); /* every frame is in its socket */
    uint64_t s0 = counter(TS_MET_URING_SUBMITS), b0 = counter(TS_MET_BYTES_IN);
    uv_run(&x.loop, UV_RUN_NOWAIT);
    assert_true(all_read(&x)); /* in that one turn */
    check_submits(io, counter(TS_MET_URING_SUBMITS) - s0, (NCLIENTS + 31) / 32);
    uint64_t bytes = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        char t[32];
        int n = snprintf(t, sizeof t, "from client %d", i);
        assert_int_equal(x.c[i].messages, 1);
        assert_int_equal(x.c[i].gotlen, (size_t)n);
        assert_memory_equal(x.c[i].got, t, (size_t)n);
        bytes += (uint64_t)n + 6;
    }
    assert_int_equal(counter(TS_MET_BYTES_IN) - b0, bytes);
    stop(&x);
}

static int client2_read(ctx_t *x) { return x->c[2].messages >= x->c[2].close_code + 1; }

/* A frame that arrives in pieces over several turns (its header split,
 * then one byte, then the rest) continues in the connection's own buffer;
 * a 200 KiB frame, bigger than a read slot (64 KiB), needs several reads
 * and arrives whole; a third frame behind it, in the same bytes, too. */
static void pieces_and_big(enum ts_net_io io) {
    ctx_t x;
    start(&x, io);
    client_t *c = &x.c[2];
    const uint8_t text[] = "a frame that comes in pieces";
    uint8_t f[64];
    size_t n = client_frame(f, TS_WS_OP_TEXT, text, sizeof text - 1);
    size_t cuts[] = {1, 3, 4, n};
    size_t at = 0;
    for (size_t k = 0; k < TS_ARRAY_LEN(cuts); k++) {
        send_all(c->fd, f + at, cuts[k] - at);
        at = cuts[k];
        usleep(5000);
        uv_run(&x.loop, UV_RUN_NOWAIT);
        if (at < n) assert_int_equal(c->messages, 0);
    }
    pump(&x, client2_read);
    assert_int_equal(c->gotlen, sizeof text - 1);
    assert_memory_equal(c->got, text, sizeof text - 1);

    uint8_t *big = malloc(BIG), *fb = malloc(BIG + 64);
    for (size_t i = 0; i < BIG; i++) big[i] = (uint8_t)(i * 7 + i / 251);
    size_t nb = client_frame(fb, TS_WS_OP_BINARY, big, BIG);
    nb += client_frame(fb + nb, TS_WS_OP_TEXT, (const uint8_t *)"behind", 6);
    send_all(c->fd, fb, nb);
    c->close_code = 1; /* client2_read: two messages now */
    pump(&x, client2_read);
    c->close_code = 2;
    pump(&x, client2_read);
    c->close_code = 0;
    assert_int_equal(c->messages, 3);
    assert_int_equal(c->gotlen, 6);
    assert_memory_equal(c->got, "behind", 6);
    assert_non_null(c->ws);
    free(big);
    free(fb);
    stop(&x);
}

/* Out of descriptors: the connection is closed as it is accepted (counted
 * in tabsync_tcp_shed_total) and the loop goes on; once descriptors are
 * free again, a new client is served. */
static void out_of_descriptors(enum ts_net_io io) {
    ctx_t x;
    start(&x, io);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ts_net_port(x.net))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int late = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(late >= 0);
    struct rlimit was;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    /* Fill every descriptor below a limit just above those in use. */
    int top = dup(0);
    struct rlimit low = {(rlim_t)top + 4, was.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fill[64], nfill = 0;
    while (nfill < 64 && (fill[nfill] = dup(0)) >= 0) nfill++;
    assert_true(nfill < 64);
    uint64_t shed0 = counter(TS_MET_TCP_SHED), acc0 = counter(TS_MET_TCP_ACCEPTED);
    assert_int_equal(connect(late, (struct sockaddr *)&sa, sizeof sa), 0);
    uint64_t until = uv_hrtime() + 5000000000ull;
    while (counter(TS_MET_TCP_SHED) == shed0) {
        assert_true(uv_hrtime() < until);
        uv_run(&x.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(counter(TS_MET_TCP_ACCEPTED), acc0);
    char b;
    struct timeval tv = {5, 0};
    setsockopt(late, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_true(recv(late, &b, 1, 0) <= 0); /* closed by the server */
    close(late);
    for (int i = 0; i < nfill; i++) close(fill[i]);
    close(top);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    /* served again: a request on a new connection gets its answer */
    client_t *c = &x.c[0];
    close(c->fd);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char req[] = "GET /ws/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n";
    send_all(c->fd, (const uint8_t *)req, sizeof req - 1);
    c->inlen = 0;
    int up = x.upgraded;
    until = uv_hrtime() + 5000000000ull;
    while (x.upgraded == up) {
        assert_true(uv_hrtime() < until);
        uv_run(&x.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(counter(TS_MET_TCP_ACCEPTED), acc0 + 1);
    stop(&x);
}

/* Six 16 KiB frames waiting in one socket (more than a 64 KiB read slot
 * holds): one turn reads them all, a full read being followed by another,
 * so that what they bring is written in that turn, not one read per turn. */
static void full_reads(enum ts_net_io io) {
    ctx_t x;
    start(&x, io);
    client_t *c = &x.c[4];
    size_t one = 16384, n = 0;
    uint8_t *p = malloc(one), *f = malloc(6 * (one + 14));
    memset(p, 'z', one);
    for (int i = 0; i < 6; i++) n += client_frame(f + n, TS_WS_OP_BINARY, p, one);
    send_all(c->fd, f, n);
    usleep(20000);
    uv_run(&x.loop, UV_RUN_NOWAIT);
    assert_int_equal(c->messages, 6);
    assert_int_equal(c->gotlen, one);
    free(p);
    free(f);
    stop(&x);
}

static void test_full_ring(void **s) { (void)s, full_reads(TS_NET_IO_URING); }
static void test_full_syscalls(void **s) { (void)s, full_reads(TS_NET_IO_SYSCALLS); }

static int c0_closed(ctx_t *x) { return x->c[0].ws == NULL; }

/* When a connection is accepted: at once, or (TS_NET_ACCEPT_FIRST_BYTES,
 * TCP_DEFER_ACCEPT) only once the client's first bytes are in, and then
 * read in the same loop turn: the turn that accepts it upgrades it. */
static void accept_when(enum ts_net_accept mode) {
    ctx_t x;
    accept_mode = mode;
    start(&x, TS_NET_IO_URING);
    accept_mode = TS_NET_ACCEPT_CONNECTED;
    client_t *c = &x.c[0];
    close(c->fd); /* client 0 comes again, silent at first */
    c->fd = -1;
    pump(&x, c0_closed);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ts_net_port(x.net))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    uint64_t acc0 = counter(TS_MET_TCP_ACCEPTED);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    for (int i = 0; i < 50; i++) { /* 50 ms of silence */
        uv_run(&x.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(counter(TS_MET_TCP_ACCEPTED) - acc0, mode == TS_NET_ACCEPT_CONNECTED);
    const char req[] = "GET /ws/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n";
    send_all(c->fd, (const uint8_t *)req, sizeof req - 1);
    uint64_t until = uv_hrtime() + 5000000000ull;
    while (c->ws == NULL) {
        assert_true(uv_hrtime() < until);
        uint64_t before = counter(TS_MET_TCP_ACCEPTED);
        uv_run(&x.loop, UV_RUN_NOWAIT);
        if (mode == TS_NET_ACCEPT_FIRST_BYTES && counter(TS_MET_TCP_ACCEPTED) != before)
            assert_non_null(c->ws); /* accepted and read in one turn */
        if (!c->ws) usleep(1000);
    }
    assert_int_equal(counter(TS_MET_TCP_ACCEPTED) - acc0, 1);
    stop(&x);
}

static void test_cork_ring(void **s) { (void)s, cork(TS_NET_IO_URING); }
static void test_cork_syscalls(void **s) { (void)s, cork(TS_NET_IO_SYSCALLS); }
static void test_accept_connected(void **s) { (void)s, accept_when(TS_NET_ACCEPT_CONNECTED); }
static void test_accept_first_bytes(void **s) { (void)s, accept_when(TS_NET_ACCEPT_FIRST_BYTES); }

static void test_read_ring(void **s) { (void)s, many_read(TS_NET_IO_URING); }
static void test_read_syscalls(void **s) { (void)s, many_read(TS_NET_IO_SYSCALLS); }
static void test_pieces_ring(void **s) { (void)s, pieces_and_big(TS_NET_IO_URING); }
static void test_pieces_syscalls(void **s) { (void)s, pieces_and_big(TS_NET_IO_SYSCALLS); }
static void test_shed_ring(void **s) { (void)s, out_of_descriptors(TS_NET_IO_URING); }
static void test_shed_syscalls(void **s) { (void)s, out_of_descriptors(TS_NET_IO_SYSCALLS); }

static void test_many_ring(void **s) { (void)s, many_in_one_turn(TS_NET_IO_URING); }
static void test_many_writev(void **s) { (void)s, many_in_one_turn(TS_NET_IO_SYSCALLS); }
static void test_reset_ring(void **s) { (void)s, one_reset(TS_NET_IO_URING); }
static void test_reset_writev(void **s) { (void)s, one_reset(TS_NET_IO_SYSCALLS); }
static void test_big_ring(void **s) { (void)s, big_frame(TS_NET_IO_URING); }
static void test_big_writev(void **s) { (void)s, big_frame(TS_NET_IO_SYSCALLS); }
static void test_frames_ring(void **s) { (void)s, many_frames(TS_NET_IO_URING); }
static void test_frames_writev(void **s) { (void)s, many_frames(TS_NET_IO_SYSCALLS); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_ring),  cmocka_unit_test(test_many_writev),
        cmocka_unit_test(test_reset_ring), cmocka_unit_test(test_reset_writev),
        cmocka_unit_test(test_big_ring),   cmocka_unit_test(test_big_writev),
        cmocka_unit_test(test_frames_ring), cmocka_unit_test(test_frames_writev),
        cmocka_unit_test(test_read_ring),   cmocka_unit_test(test_read_syscalls),
        cmocka_unit_test(test_pieces_ring), cmocka_unit_test(test_pieces_syscalls),
        cmocka_unit_test(test_shed_ring),   cmocka_unit_test(test_shed_syscalls),
        cmocka_unit_test(test_accept_connected), cmocka_unit_test(test_accept_first_bytes),
        cmocka_unit_test(test_full_ring),   cmocka_unit_test(test_full_syscalls),
        cmocka_unit_test(test_cork_ring),   cmocka_unit_test(test_cork_syscalls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
