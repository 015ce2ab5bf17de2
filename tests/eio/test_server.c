/* test_server.c - tests for src/eio/server.c's queue of messages waiting
 * for a polling client's next GET: delivery classes (a SECURITY message
 * ahead of everything, Engine.IO's ping as CONTROL, equal classes in send
 * order), coalescing by key, and a group (a packet and its attachments)
 * kept whole even when a GET is waiting. A real Engine.IO server on
 * loopback; the client is a plain socket speaking HTTP/1.1, and the loop
 * runs between its reads (one thread). */
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
#include "core/ts_util.h"
#include "eio/ts_eio.h"
#include "metrics/ts_met.h"

typedef struct ctx {
    uv_loop_t loop;
    ts_net_t *net;
    ts_eio_server_t *eio;
    ts_eio_sock_t *sock; /* the session, once open */
    int fd;              /* the client's keep-alive connection */
    char in[65536];
    size_t inlen;
    char sid[32];
} ctx_t;

static uint64_t counter(int id) { return ts_met.counters[id]; }

static void on_open(ts_eio_sock_t *s, void *ud) { ((ctx_t *)ud)->sock = s; }

static void on_close(ts_eio_sock_t *s, const char *reason, void *ud) {
    (void)s;
    (void)reason;
    ctx_t *x = ud; /* the session's user data */
    if (x) x->sock = NULL;
}

static const ts_eio_handler_t handler = {on_open, NULL, on_close, 0};

static void on_request(ts_net_t *net, ts_http_conn_t *hc, ts_http_req_t *req, void *ud) {
    (void)net;
    ts_eio_handle(((ctx_t *)ud)->eio, hc, req);
}

/* The body of a complete response at the start of x->in, or NULL. */
static char *take_response(ctx_t *x) {
    x->in[x->inlen] = '\0';
    char *end = strstr(x->in, "\r\n\r\n");
    if (!end) return NULL;
    char *cl = strstr(x->in, "Content-Length: ");
    assert_non_null(cl);
    size_t len = strtoul(cl + 16, NULL, 10), head = (size_t)(end + 4 - x->in);
    if (x->inlen < head + len) return NULL;
    assert_memory_equal(x->in, "HTTP/1.1 200", 12);
    char *body = strndup(x->in + head, len);
    memmove(x->in, x->in + head + len, x->inlen - head - len);
    x->inlen -= head + len;
    return body;
}

/* Runs the loop and reads until a response is complete (NULL after `ms`). */
static char *response(ctx_t *x, unsigned ms) {
    uint64_t until = uv_hrtime() + (uint64_t)ms * 1000000u;
    for (;;) {
        uv_run(&x->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(x->fd, x->in + x->inlen, sizeof x->in - 1 - x->inlen, MSG_DONTWAIT);
        if (n > 0) x->inlen += (size_t)n;
        char *body = take_response(x);
        if (body || uv_hrtime() > until) return body;
        usleep(500);
    }
}

static void request(ctx_t *x, const char *query) {
    char req[256];
    int n = snprintf(req, sizeof req, "GET /engine.io/?EIO=4&transport=polling%s%s HTTP/1.1\r\n"
                                      "Host: 127.0.0.1\r\n\r\n", x->sid[0] ? "&sid=" : "", query);
    assert_int_equal(send(x->fd, req, (size_t)n, 0), n);
}

/* ping_ms: the server's ping interval (a ping is a packet like any other:
 * a test that waits for "nothing to send" must not meet one). */
static void setup_session(ctx_t *x, uint32_t ping_ms) {
    memset(x, 0, sizeof *x);
    assert_int_equal(uv_loop_init(&x->loop), 0);
    ts_eio_opts_t eo = {.path = "/engine.io/", .ping_interval_ms = ping_ms, .ping_timeout_ms = 60000};
    x->eio = ts_eio_server_new(&x->loop, &eo, &handler, x);
    ts_net_opts_t no = {.host = "127.0.0.1"};
    assert_int_equal(ts_net_start(&x->loop, &no, on_request, x, &x->net), 0);
    x->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ts_net_port(x->net))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(x->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    request(x, "");
    char *open = response(x, 5000);
    assert_non_null(open);
    assert_memory_equal(open, "0{\"sid\":\"", 9);
    memcpy(x->sid, open + 9, 20);
    free(open);
    assert_non_null(x->sock);
    ts_eio_sock_set_ud(x->sock, x);
}

static void teardown_session(ctx_t *x) {
    close(x->fd);
    ts_eio_server_free(x->eio);
    ts_net_close(x->net, NULL, NULL);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&x->loop), 0);
}

static void send_str(ctx_t *x, const char *s, int binary, unsigned cls, uint32_t key) {
    ts_buf_t *b = ts_buf_from(s, strlen(s));
    ts_eio_send_class(x->sock, b, binary, cls, key);
    ts_buf_unref(b);
}

/* "a\x1eb\x1ec" -> "a|b|c" */
static char *packets(char *body) {
    for (char *p = body; *p; p++)
        if (*p == '\x1e') *p = '|';
    return body;
}

static void test_poll_queue_classes(void **state) {
    (void)state;
    ctx_t x;
    setup_session(&x, 50); /* its ping takes part */
    uint64_t r0 = counter(TS_MET_SEND_REORDERED), c0 = counter(TS_MET_SEND_COALESCED);
    send_str(&x, "4e1", 0, TS_EIO_CLASS_EVENT, 0);
    send_str(&x, "4p1", 0, TS_EIO_CLASS_PRESENCE, 7);
    send_str(&x, "4s1", 0, TS_EIO_CLASS_STATE, 0);
    send_str(&x, "4x1", 0, TS_EIO_CLASS_SECURITY, 0);
    send_str(&x, "4p2", 0, TS_EIO_CLASS_PRESENCE, 7);
    send_str(&x, "4g1", 0, TS_EIO_CLASS_EVENT | TS_EIO_MORE, 0);
    send_str(&x, "g2", 1, TS_EIO_CLASS_EVENT, 0);
    send_str(&x, "4e2", 0, 0, 0); /* not a class: EVENT */
    send_str(&x, "4t1", 0, TS_EIO_CLASS_TELEMETRY, 3);
    send_str(&x, "4p3", 0, TS_EIO_CLASS_PRESENCE, 8);
    /* no GET waits: the ping (every 50 ms here) joins the queue as CONTROL */
    assert_null(response(&x, 120));
    request(&x, x.sid);
    char *body = response(&x, 5000);
    assert_non_null(body);
    assert_string_equal(packets(body), "4x1|2|4s1|4e1|4g1|bZzI=|4e2|4p2|4p3|4t1");
    free(body);
    /* s1, x1, g1, g2, e2, p3 and the ping went ahead of queued messages
     * (the ping not when it came first); p2 replaced p1 */
    uint64_t reordered = counter(TS_MET_SEND_REORDERED) - r0;
    assert_true(reordered == 7 || reordered == 6);
    assert_int_equal(counter(TS_MET_SEND_COALESCED) - c0, 1);
    teardown_session(&x);
}

static void test_poll_group_whole(void **state) {
    (void)state;
    ctx_t x;
    /* no ping within the test: under a loaded or sanitized run, a 50 ms ping
     * came inside the 20 ms window that must stay silent */
    setup_session(&x, 60000);
    request(&x, x.sid);
    assert_null(response(&x, 20)); /* held: nothing to send */
    send_str(&x, "4g1", 0, TS_EIO_CLASS_STATE | TS_EIO_MORE, 0);
    assert_null(response(&x, 20)); /* not answered inside a group */
    send_str(&x, "g2", 1, TS_EIO_CLASS_STATE, 0);
    char *body = response(&x, 5000);
    assert_non_null(body);
    assert_string_equal(packets(body), "4g1|bZzI=");
    free(body);
    teardown_session(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_queue_classes),
        cmocka_unit_test(test_poll_group_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
