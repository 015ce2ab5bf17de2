/* test_http.c - table tests for src/net/http.c. Every row is fed whole, one
 * byte at a time and split at every offset; each run is rendered as a text
 * transcript (requests, then how the input ended) that must equal the row's
 * expected transcript, so all splits give identical results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <http_parser.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "net/ts_http.h"

typedef struct http_case {
    const char *name;
    const char *in;
    size_t len;             /* 0: strlen(in) */
    ts_http_limits_t lim;   /* zero fields: defaults */
    const char *want;       /* transcript, see render_req() and run() */
} http_case_t;

/* Limits used by the limit rows: exactly-at passes, one more fails. */
#define SMALL {48, 3, 10}

static const http_case_t cases[] = {
    /* --- plain requests --- */
    {"GET with query",
     "GET /socket.io/?EIO=4&transport=polling&t=Nx1 HTTP/1.1\r\nHost: localhost:3000\r\n"
     "Accept: */*\r\n\r\n",
     0, {0, 0, 0},
     "req@93 GET /socket.io/?EIO=4&transport=polling&t=Nx1 path=/socket.io/ "
     "query=EIO=4&transport=polling&t=Nx1 v1.1 ka=1 up=0\n"
     "  Host: localhost:3000\n  Accept: */*\nidle\n"},
    {"POST with Content-Length body",
     "POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\n"
     "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 9\r\n\r\n42[\"m\",1]",
     0, {0, 0, 0},
     "req@138 POST /socket.io/?EIO=4&transport=polling&sid=abc path=/socket.io/ "
     "query=EIO=4&transport=polling&sid=abc v1.1 ka=1 up=0\n"
     "  Host: x\n  Content-Type: text/plain;charset=UTF-8\n  Content-Length: 9\n"
     "  body=42[\"m\",1]\nidle\n"},
    {"chunked body",
     "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     0, {0, 0, 0},
     "req@84 POST /up path=/up query= v1.1 ka=1 up=0\n"
     "  Host: x\n  Transfer-Encoding: chunked\n  body=hello world\nidle\n"},
    {"chunked trailer fields are not headers",
     "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
     0, {0, 0, 0},
     "req@76 POST /up path=/up query= v1.1 ka=1 up=0\n"
     "  Transfer-Encoding: chunked\n  body=abc\nidle\n"},
    {"pipelined two requests in one feed",
     "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b?c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
     0, {0, 0, 0},
     "req@28 GET /a path=/a query= v1.1 ka=1 up=0\n  Host: x\n"
     "req@80 POST /b?c path=/b query=c v1.1 ka=1 up=0\n  Host: x\n  Content-Length: 2\n"
     "  body=hi\nidle\n"},
    {"second pipelined request incomplete",
     "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo",
     0, {0, 0, 0},
     "req@28 GET /a path=/a query= v1.1 ka=1 up=0\n  Host: x\nmore\n"},
    {"empty lines before a request are skipped",
     "\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, {0, 0, 0},
     "req@22 GET / path=/ query= v1.1 ka=1 up=0\nidle\n"},
    {"header values: empty, OWS trimmed, obs-fold joined",
     "GET / HTTP/1.1\r\nX-E:\r\nY:  a  \r\nZ: a\r\n b\r\n\r\n", 0, {0, 0, 0},
     "req@43 GET / path=/ query= v1.1 ka=1 up=0\n  X-E: \n  Y: a\n  Z: a b\nidle\n"},
    {"every method http-parser knows is accepted",
     "M-SEARCH * HTTP/1.1\r\n\r\nPATCH /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 0, {0, 0, 0},
     "req@23 M-SEARCH * path=* query= v1.1 ka=1 up=0\n"
     "req@64 PATCH /p path=/p query= v1.1 ka=1 up=0\n  Content-Length: 1\n  body=x\nidle\n"},

    /* --- keep-alive --- */
    {"HTTP/1.1 is keep-alive by default", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, {0, 0, 0},
     "req@27 GET / path=/ query= v1.1 ka=1 up=0\n  Host: a\nidle\n"},
    {"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n", 0, {0, 0, 0},
     "req@18 GET / path=/ query= v1.0 ka=0 up=0\nidle\n"},
    {"HTTP/1.0 with Connection: keep-alive",
     "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, {0, 0, 0},
     "req@42 GET / path=/ query= v1.0 ka=1 up=0\n  Connection: keep-alive\nidle\n"},
    {"HTTP/1.1 with Connection: close", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0,
     {0, 0, 0}, "req@37 GET / path=/ query= v1.1 ka=0 up=0\n  Connection: close\nidle\n"},
    {"stray line ends after Connection: close are fine",
     "GET / HTTP/1.0\r\n\r\n\r\n\n", 0, {0, 0, 0},
     "req@18 GET / path=/ query= v1.0 ka=0 up=0\nidle\n"},
    {"a request after Connection: close is refused",
     "GET / HTTP/1.1\r\nConnection: close\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, {0, 0, 0},
     "req@37 GET / path=/ query= v1.1 ka=0 up=0\n  Connection: close\n"
     "error 400 -1100 http: request received after Connection: close\n"},

    /* --- upgrade --- */
    {"websocket handshake (RFC 6455 1.2) leaves frame bytes unconsumed",
     "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n"
     "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
     241, {0, 0, 0},
     "req@230 GET /chat path=/chat query= v1.1 ka=1 up=1\n"
     "  Host: server.example.com\n  Upgrade: websocket\n  Connection: Upgrade\n"
     "  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n  Origin: http://example.com\n"
     "  Sec-WebSocket-Protocol: chat, superchat\n  Sec-WebSocket-Version: 13\n"
     "upgraded, 11 bytes left\n"},
    {"Upgrade without Connection: upgrade is a plain request",
     "GET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 0, {0, 0, 0},
     "req@42 GET /chat path=/chat query= v1.1 ka=1 up=0\n  Upgrade: websocket\nidle\n"},

    /* --- limits: at the limit passes, one more fails --- */
    {"header bytes exactly at the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdef\r\n\r\n",
     0, SMALL,
     "req@48 GET / path=/ query= v1.1 ka=1 up=0\n  Host: a\n  X: 0123456789abcdef\nidle\n"},
    {"header bytes one over the limit",
     "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdefg\r\n\r\n", 0, SMALL,
     "error 431 -1107 http: request headers exceed 48 bytes\n"},
    {"header bytes over the limit before the head ends",
     "GET / HTTP/1.1\r\nX: 0123456789abcdef0123456789abcdef", 0, SMALL,
     "error 431 -1107 http: request headers exceed 48 bytes\n"},
    {"nothing past limit+1 header bytes is parsed (the 0x01 is never seen)",
     "GET / HTTP/1.1\r\nX: 0123456789abcdef0123456789abcdef\x01\r\n\r\n", 0, SMALL,
     "error 431 -1107 http: request headers exceed 48 bytes\n"},
    {"header count exactly at the limit", "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0,
     SMALL, "req@36 GET / path=/ query= v1.1 ka=1 up=0\n  A: 1\n  B: 2\n  C: 3\nidle\n"},
    {"header count one over the limit", "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
     0, SMALL, "error 431 -1107 http: more than 3 request headers\n"},
    {"Content-Length exactly at the limit", "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789",
     0, SMALL,
     "req@49 POST / path=/ query= v1.1 ka=1 up=0\n  Content-Length: 10\n  body=0123456789\nidle\n"},
    {"Content-Length one over the limit fails before the body",
     "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 0, SMALL,
     "error 413 -1101 http: request body of 11 bytes exceeds 10 bytes\n"},
    {"chunked body exactly at the limit",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n",
     0, SMALL,
     "req@72 POST / path=/ query= v1.1 ka=1 up=0\n  Transfer-Encoding: chunked\n"
     "  body=0123456789\nidle\n"},
    {"chunked body one over the limit fails at the chunk header",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n7\r\n", 0, SMALL,
     "error 413 -1101 http: chunked request body exceeds 10 bytes\n"},

    /* --- bad request lines --- */
    {"unknown method", "FOO / HTTP/1.1\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: unsupported request method\n"},
    {"method prefix of a known one", "GE / HTTP/1.1\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: unsupported request method\n"},
    {"space before the method", " GET / HTTP/1.1\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: invalid HTTP method\n"},
    {"binary garbage (a TLS ClientHello)", "\x16\x03\x01\x02\x00\x01", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: invalid HTTP method\n"},
    {"control byte in the target", "GET /a\x01 HTTP/1.1\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: invalid URL\n"},
    {"no HTTP-version (HTTP/0.9)", "GET /\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request line (no HTTP/1.x at its end)\n"},
    {"misspelt protocol name", "GET / HTTX/1.1\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request line (no HTTP/1.x at its end)\n"},
    {"bad request line and too many headers: the line is reported (fuzz)",
     "GET / HTEIO1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 0, SMALL,
     "error 400 -1100 http: bad request line (no HTTP/1.x at its end)\n"},
    {"junk after the version", "GET / HTTP/1.1 x\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: invalid HTTP version\n"},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 0, {0, 0, 0},
     "error 505 -1104 http: HTTP version 2.0 not supported (only 1.0 and 1.1)\n"},
    {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, {0, 0, 0},
     "error 505 -1104 http: HTTP version 1.2 not supported (only 1.0 and 1.1)\n"},
    {"HTTP/1.10", "GET / HTTP/1.10\r\n\r\n", 0, {0, 0, 0},
     "error 505 -1104 http: unsupported HTTP version (only 1.0 and 1.1)\n"},

    /* --- bad headers --- */
    {"too many headers, then a syntax error: the syntax error wins (fuzz)",
     "POST / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nX-E0\r\n\r\n", 0, SMALL,
     "error 400 -1100 http: bad request: invalid character in header\n"},
    {"bad header name, then a syntax error: the syntax error wins",
     "GET / HTTP/1.1\r\nX Y: 1\r\nZ\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: invalid character in header\n"},
    {"header line without a colon", "GET / HTTP/1.1\r\nNoColon\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: invalid character in header\n"},
    {"space before the colon", "GET / HTTP/1.1\r\nX : y\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: invalid character 0x20 in a header name\n"},
    {"folded first header line", "GET / HTTP/1.1\r\n X: y\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: invalid character 0x20 in a header name\n"},
    {"control byte in a value", "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: invalid character in header\n"},
    {"CR without LF", "GET / HTTP/1.1\r\nX: y\rZ: 1\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: LF character expected\n"},
    {"Content-Length not a number", "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 0,
     {0, 0, 0},
     "error 400 -1100 http: bad request: invalid character in content-length header\n"},
    {"two Content-Length headers",
     "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: unexpected content-length header\n"},
    {"Content-Length with chunked (smuggling)",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     0, {0, 0, 0}, "error 400 -1100 http: bad request: unexpected content-length header\n"},
    {"Transfer-Encoding other than chunked",
     "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: request has invalid transfer-encoding\n"},
    {"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, {0, 0, 0},
     "error 400 -1100 http: bad request: invalid character in chunk size header\n"},

    /* --- LF-only line endings: http-parser 2.9 accepts a bare LF wherever
     * CRLF is expected (RFC 9112 2.2 lets a recipient do so), so these
     * parse like CRLF requests. --- */
    {"LF-only line endings", "GET /a HTTP/1.1\nHost: x\n\n", 0, {0, 0, 0},
     "req@25 GET /a path=/a query= v1.1 ka=1 up=0\n  Host: x\nidle\n"},
    {"LF-only pipelined", "GET /a HTTP/1.1\nHost: x\n\nGET /b HTTP/1.0\n\n", 0, {0, 0, 0},
     "req@25 GET /a path=/a query= v1.1 ka=1 up=0\n  Host: x\n"
     "req@42 GET /b path=/b query= v1.0 ka=0 up=0\nidle\n"},

    /* --- incomplete input --- */
    {"nothing yet", "", 0, {0, 0, 0}, "idle\n"},
    {"half a request line", "GET /soc", 0, {0, 0, 0}, "more\n"},
    {"body still missing", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", 0, {0, 0, 0},
     "more\n"},
};

/* ---- transcript rendering ---- */

static void put_escaped(ts_sbuf_t *s, ts_slice_t v) {
    for (size_t i = 0; i < v.len; i++) {
        uint8_t c = v.p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            ts_sbuf_putc(s, (char)c);
        else
            ts_sbuf_printf(s, "\\x%02x", c);
    }
}

/* Cross-file internal of http.c (no _int.h exists): the parser's store. */
ts_slice_t ts_http__storage(const ts_http_parser_t *p);

/* Every slice, even an empty one, points into the parser's own store. */
static void check_inside(ts_slice_t v, ts_slice_t store) {
    assert_non_null(v.p);
    assert_true(v.p >= store.p && v.p + v.len <= store.p + store.len);
}

static void render_req(ts_sbuf_t *s, const ts_http_req_t *r, size_t end, ts_slice_t store) {
    ts_sbuf_printf(s, "req@%zu %s ", end, r->method_name);
    put_escaped(s, r->url);
    ts_sbuf_append_str(s, " path=");
    put_escaped(s, r->path);
    ts_sbuf_append_str(s, " query=");
    put_escaped(s, r->query);
    ts_sbuf_printf(s, " v1.%u ka=%u up=%u\n", r->http_minor, r->keep_alive, r->upgrade);
    check_inside(r->url, store);
    check_inside(r->path, store);
    check_inside(r->query, store);
    check_inside(r->body, store);
    assert_string_equal(r->method_name, http_method_str((enum http_method)r->method));
    for (size_t i = 0; i < r->nheaders; i++) {
        ts_sbuf_append_str(s, "  ");
        put_escaped(s, r->headers[i].name);
        ts_sbuf_append_str(s, ": ");
        put_escaped(s, r->headers[i].value);
        ts_sbuf_putc(s, '\n');
        check_inside(r->headers[i].name, store);
        check_inside(r->headers[i].value, store);
    }
    if (r->body.len) {
        ts_sbuf_append_str(s, "  body=");
        put_escaped(s, r->body);
        ts_sbuf_putc(s, '\n');
    }
}

/* Feeds `in` in chunks ending at each of cuts[] (ascending) and then at
 * len; returns new: the transcript. */
static char *run(const http_case_t *c, const uint8_t *in, size_t len, const size_t *cuts,
                 size_t ncuts) {
    ts_http_parser_t *p = ts_http_parser_new(&c->lim);
    ts_sbuf_t out = TS_SBUF_INIT;
    size_t start = 0;
    int done = 0;
    for (size_t k = 0; k <= ncuts && !done; k++) {
        size_t stop = k < ncuts ? cuts[k] : len;
        size_t at = start;
        while (at < stop) {
            size_t used = 99999;
            ts_http_req_t *r = NULL;
            int status = -1;
            int rc = ts_http_parser_feed(p, in + at, stop - at, &used, &r, &status);
            assert_in_range(used, 0, stop - at);
            at += used;
            if (rc == 1) {
                assert_non_null(r);
                assert_int_equal(status, 0);
                render_req(&out, r, at, ts_http__storage(p));
                if (r->upgrade) {
                    ts_sbuf_printf(&out, "upgraded, %zu bytes left\n", len - at);
                    done = 1;
                    break;
                }
            } else if (rc == 0) {
                assert_null(r);
                assert_int_equal(at, stop);
            } else {
                assert_true(rc < 0);
                assert_null(r);
                ts_sbuf_printf(&out, "error %d %d %s\n", status, rc, ts_http_parser_errmsg(p));
                assert_int_equal(ts_http_parser_in_request(p), 0);
                done = 1;
                break;
            }
        }
        start = stop;
    }
    if (!done) ts_sbuf_append_str(&out, ts_http_parser_in_request(p) ? "more\n" : "idle\n");
    ts_http_parser_free(p);
    ts_buf_t *b = ts_sbuf_finish(&out);
    char *s = strdup((const char *)b->data);
    ts_buf_unref(b);
    return s;
}

static void expect(const http_case_t *c, const char *how, char *got) {
    if (strcmp(got, c->want) != 0) print_error("case \"%s\" fed %s\n", c->name, how);
    assert_string_equal(got, c->want);
    free(got);
}

static void test_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const http_case_t *c = &cases[i];
        const uint8_t *in = (const uint8_t *)c->in;
        size_t len = c->len ? c->len : strlen(c->in);
        expect(c, "whole", run(c, in, len, NULL, 0));

        size_t *cuts = malloc((len + 1) * sizeof(*cuts));
        for (size_t k = 0; k < len; k++) cuts[k] = k + 1;
        expect(c, "one byte at a time", run(c, in, len, cuts, len ? len - 1 : 0));
        free(cuts);

        for (size_t k = 0; k <= len; k++) {
            char how[64];
            snprintf(how, sizeof(how), "split at %zu", k);
            expect(c, how, run(c, in, len, &k, 1));
        }
    }
}

/* ---- limits built at run time ---- */

/* Returns new: a GET whose head is exactly `bytes` long with `nheaders`
 * headers (nheaders >= 1). */
static char *make_get(size_t bytes, size_t nheaders) {
    ts_sbuf_t s = TS_SBUF_INIT;
    ts_sbuf_append_str(&s, "GET / HTTP/1.1\r\n");
    for (size_t i = 1; i < nheaders; i++) ts_sbuf_printf(&s, "H%zu: v\r\n", i);
    ts_sbuf_append_str(&s, "Pad: ");
    size_t have = ts_sbuf_len(&s) + 4;
    assert_true(bytes >= have);
    for (size_t i = have; i < bytes; i++) ts_sbuf_putc(&s, 'x');
    ts_sbuf_append_str(&s, "\r\n\r\n");
    assert_int_equal(ts_sbuf_len(&s), bytes);
    ts_buf_t *b = ts_sbuf_finish(&s);
    char *r = strdup((const char *)b->data);
    ts_buf_unref(b);
    return r;
}

/* Feeds a whole string; returns the rc, *status and nheaders (if a request). */
static int feed_all(const ts_http_limits_t *lim, const char *in, int *status, size_t *nheaders) {
    ts_http_parser_t *p = ts_http_parser_new(lim);
    size_t used;
    ts_http_req_t *r;
    int rc = ts_http_parser_feed(p, (const uint8_t *)in, strlen(in), &used, &r, status);
    if (rc == 1) {
        assert_int_equal(used, strlen(in));
        *nheaders = r->nheaders;
    }
    ts_http_parser_free(p);
    return rc;
}

static void test_default_limits(void **state) {
    (void)state;
    int status;
    size_t nh = 0;
    char *s = make_get(16384, 1);
    assert_int_equal(feed_all(NULL, s, &status, &nh), 1);
    free(s);
    s = make_get(16385, 1);
    assert_int_equal(feed_all(NULL, s, &status, &nh), TS_ELIMIT);
    assert_int_equal(status, 431);
    free(s);

    s = make_get(2000, 64);
    assert_int_equal(feed_all(NULL, s, &status, &nh), 1);
    assert_int_equal(nh, 64);
    free(s);
    s = make_get(2000, 65);
    assert_int_equal(feed_all(NULL, s, &status, &nh), TS_ELIMIT);
    assert_int_equal(status, 431);
    free(s);

    ts_http_limits_t zero = {0, 0, 0};
    assert_int_equal(feed_all(&zero, "POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", &status,
                              &nh),
                     TS_ETOOBIG);
    assert_int_equal(status, 413);
    /* exactly 1 MB: headers pass, the parser waits for the body */
    assert_int_equal(
        feed_all(&zero, "POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n", &status, &nh), 0);
}

static void test_limits_clamped(void **state) {
    (void)state;
    ts_http_limits_t lim = {100000, 1000, 0};
    int status;
    size_t nh = 0;
    char *s = make_get(4000, TS_HTTP_MAX_HEADERS_HARD);
    assert_int_equal(feed_all(&lim, s, &status, &nh), 1);
    assert_int_equal(nh, TS_HTTP_MAX_HEADERS_HARD);
    free(s);
    s = make_get(4000, TS_HTTP_MAX_HEADERS_HARD + 1);
    assert_int_equal(feed_all(&lim, s, &status, &nh), TS_ELIMIT);
    assert_int_equal(status, 431);
    free(s);
    /* header bytes are capped just under http-parser's HTTP_MAX_HEADER_SIZE */
    s = make_get(HTTP_MAX_HEADER_SIZE - 1, 1);
    assert_int_equal(feed_all(&lim, s, &status, &nh), 1);
    free(s);
    s = make_get(HTTP_MAX_HEADER_SIZE, 1);
    assert_int_equal(feed_all(&lim, s, &status, &nh), TS_ELIMIT);
    assert_int_equal(status, 431);
    free(s);
}

/* ---- parser state ---- */

static void test_error_is_sticky(void **state) {
    (void)state;
    ts_http_parser_t *p = ts_http_parser_new(NULL);
    size_t used;
    ts_http_req_t *r;
    int status;
    const char *bad = "GET / HTTP/2.0\r\n\r\n";
    assert_int_equal(ts_http_parser_feed(p, (const uint8_t *)bad, strlen(bad), &used, &r, &status),
                     TS_EVERSION);
    assert_int_equal(status, 505);
    const char *good = "GET / HTTP/1.1\r\n\r\n";
    status = 0;
    assert_int_equal(
        ts_http_parser_feed(p, (const uint8_t *)good, strlen(good), &used, &r, &status),
        TS_EVERSION);
    assert_int_equal(status, 505);
    assert_int_equal(used, 0);
    assert_null(r);
    assert_string_equal(ts_http_parser_errmsg(p),
                        "http: HTTP version 2.0 not supported (only 1.0 and 1.1)");
    ts_http_parser_free(p);
}

static void test_in_request(void **state) {
    (void)state;
    ts_http_parser_t *p = ts_http_parser_new(NULL);
    size_t used;
    ts_http_req_t *r;
    int status;
    assert_false(ts_http_parser_in_request(p));
    assert_int_equal(ts_http_parser_feed(p, (const uint8_t *)"\r\n", 2, &used, &r, &status), 0);
    assert_false(ts_http_parser_in_request(p)); /* empty lines start nothing */
    assert_int_equal(ts_http_parser_feed(p, (const uint8_t *)"PO", 2, &used, &r, &status), 0);
    assert_true(ts_http_parser_in_request(p));
    const char *rest = "ST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
    assert_int_equal(
        ts_http_parser_feed(p, (const uint8_t *)rest, strlen(rest), &used, &r, &status), 0);
    assert_true(ts_http_parser_in_request(p));
    assert_int_equal(ts_http_parser_feed(p, (const uint8_t *)"cG", 2, &used, &r, &status), 1);
    assert_int_equal(used, 1);
    assert_true(ts_slice_eq_str(r->body, "abc"));
    assert_false(ts_http_parser_in_request(p));
    /* the next request starts with the byte that was not used */
    assert_int_equal(ts_http_parser_feed(p, (const uint8_t *)"G", 1, &used, &r, &status), 0);
    assert_true(ts_http_parser_in_request(p));
    ts_http_parser_free(p);
}

/* A large body grows the store several times; slices built at the end must
 * still be right (offsets, not pointers, are kept while parsing). */
static void test_store_growth(void **state) {
    (void)state;
    ts_http_parser_t *p = ts_http_parser_new(NULL);
    ts_sbuf_t s = TS_SBUF_INIT;
    ts_sbuf_append_str(&s, "POST /x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n");
    size_t head = ts_sbuf_len(&s);
    for (int i = 0; i < 100000; i++) ts_sbuf_putc(&s, (char)('a' + i % 26));
    ts_buf_t *b = ts_sbuf_finish(&s);
    size_t used, at = 0;
    ts_http_req_t *r = NULL;
    int status, rc = 0;
    while (at < b->len && rc == 0) { /* 1000-byte reads */
        size_t n = b->len - at < 1000 ? b->len - at : 1000;
        rc = ts_http_parser_feed(p, b->data + at, n, &used, &r, &status);
        at += used;
    }
    assert_int_equal(rc, 1);
    assert_int_equal(at, b->len);
    assert_int_equal(r->body.len, 100000);
    assert_memory_equal(r->body.p, b->data + head, 100000);
    ts_slice_t v;
    assert_true(ts_http_req_header(r, "host", &v));
    assert_true(ts_slice_eq_str(v, "h"));
    assert_true(ts_slice_eq_str(r->path, "/x"));
    assert_true(ts_http_query_param(r->query, "y", &v));
    assert_true(ts_slice_eq_str(v, "1"));
    ts_buf_unref(b);
    ts_http_parser_free(p);
}

/* ---- helpers ---- */

static void test_req_header(void **state) {
    (void)state;
    ts_http_parser_t *p = ts_http_parser_new(NULL);
    const char *in = "GET / HTTP/1.1\r\nHost: a\r\nSEC-WEBSOCKET-KEY: k1\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
    size_t used;
    ts_http_req_t *r;
    int status;
    assert_int_equal(ts_http_parser_feed(p, (const uint8_t *)in, strlen(in), &used, &r, &status), 1);
    ts_slice_t v;
    assert_true(ts_http_req_header(r, "Sec-WebSocket-Key", &v));
    assert_true(ts_slice_eq_str(v, "k1"));
    assert_true(ts_http_req_header(r, "HOST", &v));
    assert_true(ts_slice_eq_str(v, "a"));
    assert_true(ts_http_req_header(r, "x-dup", &v)); /* the first one wins */
    assert_true(ts_slice_eq_str(v, "1"));
    assert_false(ts_http_req_header(r, "Hos", &v));
    assert_false(ts_http_req_header(r, "Hostx", &v));
    assert_false(ts_http_req_header(r, "Upgrade", &v));
    ts_http_parser_free(p);
}

static void test_query_param(void **state) {
    (void)state;
    ts_slice_t q = ts_slice_str("EIO=4&transport=polling&sid=ab%3D&flag&t=&EIO=3");
    ts_slice_t v;
    assert_true(ts_http_query_param(q, "EIO", &v)); /* the first one wins */
    assert_true(ts_slice_eq_str(v, "4"));
    assert_true(ts_http_query_param(q, "transport", &v));
    assert_true(ts_slice_eq_str(v, "polling"));
    assert_true(ts_http_query_param(q, "sid", &v)); /* no percent-decoding */
    assert_true(ts_slice_eq_str(v, "ab%3D"));
    assert_true(ts_http_query_param(q, "flag", &v));
    assert_int_equal(v.len, 0);
    assert_true(ts_http_query_param(q, "t", &v));
    assert_int_equal(v.len, 0);
    assert_false(ts_http_query_param(q, "EI", &v));
    assert_false(ts_http_query_param(q, "transports", &v));
    assert_false(ts_http_query_param(q, "polling", &v));
    assert_false(ts_http_query_param(ts_slice(NULL, 0), "EIO", &v));
    assert_false(ts_http_query_param(ts_slice_str("&&"), "EIO", &v));
    assert_true(ts_http_query_param(ts_slice_str("&&b=2&"), "b", &v));
    assert_true(ts_slice_eq_str(v, "2"));
}

static void test_header_has_token(void **state) {
    (void)state;
    static const struct {
        const char *value, *token;
        int want;
    } rows[] = {
        {"keep-alive, Upgrade", "upgrade", 1},
        {"keep-alive, Upgrade", "keep-alive", 1},
        {"Upgrade", "UPGRADE", 1},
        {"  upgrade\t,x", "upgrade", 1},
        {"keep-alive,,upgrade,", "upgrade", 1},
        {"upgrader", "upgrade", 0},
        {"keep-alive, upgrade-insecure", "upgrade", 0},
        {"up grade", "upgrade", 0},
        {"", "upgrade", 0},
        {",", "upgrade", 0},
        {"close", "", 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (ts_http_header_has_token(ts_slice_str(rows[i].value), rows[i].token) != rows[i].want)
            fail_msg("has_token(\"%s\", \"%s\") != %d", rows[i].value, rows[i].token, rows[i].want);
    }
    assert_false(ts_http_header_has_token(ts_slice(NULL, 0), "upgrade"));
}

static void assert_buf_str(ts_buf_t *b, const char *want) {
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
    ts_buf_unref(b);
}

static void test_response(void **state) {
    (void)state;
    assert_buf_str(ts_http_response(200, "Content-Type: text/plain; charset=UTF-8\r\n", "ok", 2, 1),
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                   "Content-Length: 2\r\nConnection: keep-alive\r\n\r\nok");
    assert_buf_str(ts_http_response(404, NULL, NULL, 0, 0),
                   "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_buf_str(ts_http_response(431, NULL, "too big\n", 8, 0),
                   "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 8\r\n"
                   "Connection: close\r\n\r\ntoo big\n");
    /* 101: no Content-Length, and the caller's Connection: Upgrade only */
    assert_buf_str(ts_http_response(101,
                                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                                    NULL, 0, 1),
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    assert_buf_str(ts_http_response(204, NULL, NULL, 0, 1),
                   "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n");
}


/* A request moved to another loop is written back as bytes the parser
 * reads as the same request: framing headers rewritten, body de-chunked. */
static void test_req_serialize(void **state) {
    (void)state;
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"GET /socket.io/?EIO=4&transport=polling&sid=Bxyz HTTP/1.1\r\nHost: h\r\n"
         "Cookie:  a=b \r\n\r\n",
         "GET /socket.io/?EIO=4&transport=polling&sid=Bxyz HTTP/1.1\r\nHost:h\r\nCookie:a=b\r\n\r\n"},
        {"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
         "POST /p HTTP/1.1\r\nHost:h\r\nContent-Length:5\r\n\r\nhello"},
        {"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n"
         "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
         "POST /p HTTP/1.1\r\nX:1\r\nContent-Length:11\r\n\r\nhello world"},
        {"GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
         "GET /ws HTTP/1.0\r\nUpgrade:websocket\r\nConnection:Upgrade\r\n\r\n"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ts_http_parser_t *p = ts_http_parser_new(NULL);
        size_t used = 0;
        ts_http_req_t *r = NULL;
        int status = 0;
        assert_int_equal(ts_http_parser_feed(p, (const uint8_t *)rows[i].in, strlen(rows[i].in),
                                             &used, &r, &status), 1);
        ts_sbuf_t sb = TS_SBUF_INIT;
        ts_http_req_serialize(r, &sb);
        assert_int_equal(ts_sbuf_len(&sb), strlen(rows[i].want));
        assert_memory_equal(ts_sbuf_data(&sb), rows[i].want, strlen(rows[i].want));
        /* and it reads back the same */
        ts_http_parser_t *q = ts_http_parser_new(NULL);
        ts_http_req_t *r2 = NULL;
        assert_int_equal(ts_http_parser_feed(q, ts_sbuf_data(&sb), ts_sbuf_len(&sb), &used, &r2,
                                             &status), 1);
        assert_true(ts_slice_eq(r2->url, r->url) && ts_slice_eq(r2->body, r->body));
        assert_int_equal(r2->method, r->method);
        ts_http_parser_free(q);
        ts_sbuf_free(&sb);
        ts_http_parser_free(p);
    }
}

static void test_status_text(void **state) {
    (void)state;
    static const struct {
        int code;
        const char *text;
    } rows[] = {
        {101, "Switching Protocols"}, {200, "OK"}, {204, "No Content"},
        {301, "Moved Permanently"}, {304, "Not Modified"}, {400, "Bad Request"},
        {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
        {408, "Request Timeout"}, {413, "Payload Too Large"},
        {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"},
        {501, "Not Implemented"}, {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"}, {429, "Too Many Requests"}, {299, "Unknown"},
        {0, "Unknown"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_string_equal(ts_http_status_text(rows[i].code), rows[i].text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_limits_clamped),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_in_request),
        cmocka_unit_test(test_store_growth),
        cmocka_unit_test(test_req_header),
        cmocka_unit_test(test_query_param),
        cmocka_unit_test(test_header_has_token),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_req_serialize),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
