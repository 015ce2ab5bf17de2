/* test_handshake.c - tables for clients/c/src/url.c and handshake.c: URLs
 * users type, and server answers to the upgrade request (good ones, and
 * each way a 101 can be wrong), fed whole, one byte at a time and split at
 * every offset, as a socket could deliver them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "client_int.h"

#define assert_ts_err(got, want)                                                   \
    do {                                                                           \
        int got_ = (got), want_ = (want);                                          \
        if (got_ != want_) {                                                       \
            print_error("%s != %s\n", ts_err_name(got_), ts_err_name(want_));      \
            fail();                                                                \
        }                                                                          \
    } while (0)

/* ---- URLs ---- */

static const struct url_case {
    const char *name, *in;
    int want_err;
    const char *host, *host_header, *target, *msg;
    unsigned port;
} url_cases[] = {
    {"ws with port and path", "ws://127.0.0.1:3000/socket.io/", 0, "127.0.0.1",
     "127.0.0.1:3000", "/socket.io/?EIO=4&transport=websocket", NULL, 3000},
    {"http, no path", "http://example.com:8080", 0, "example.com", "example.com:8080",
     "/socket.io/?EIO=4&transport=websocket", NULL, 8080},
    {"root path means default", "http://h:1/", 0, "h", "h:1",
     "/socket.io/?EIO=4&transport=websocket", NULL, 1},
    {"default port 80", "ws://h/custom-path/", 0, "h", "h", "/custom-path/?EIO=4&transport=websocket",
     NULL, 80},
    {"query kept, fragment dropped", "ws://h:9/sio/?a=1&b=2#frag", 0, "h", "h:9",
     "/sio/?EIO=4&transport=websocket&a=1&b=2", NULL, 9},
    {"query without path", "ws://h:9?x=y", 0, "h", "h:9",
     "/socket.io/?EIO=4&transport=websocket&x=y", NULL, 9},
    {"IPv6 literal", "ws://[::1]:4000/socket.io/", 0, "::1", "[::1]:4000",
     "/socket.io/?EIO=4&transport=websocket", NULL, 4000},
    {"IPv6 default port", "http://[fe80::1]/", 0, "fe80::1", "[fe80::1]",
     "/socket.io/?EIO=4&transport=websocket", NULL, 80},
    {"scheme is case-insensitive", "WS://h:2/", 0, "h", "h:2",
     "/socket.io/?EIO=4&transport=websocket", NULL, 2},
    {"missing", "", TS_EINVAL, NULL, NULL, NULL, "url: missing", 0},
    {"no scheme", "127.0.0.1:3000", TS_EINVAL, NULL, NULL, NULL, "has no scheme", 0},
    {"other scheme", "ftp://h/", TS_EINVAL, NULL, NULL, NULL, "scheme \"ftp\" is not supported", 0},
    {"wss, default port 443", "wss://h/", 0, "h", "h", "/socket.io/?EIO=4&transport=websocket",
     NULL, 443},
    {"https with port", "HTTPS://h:8443/x/", 0, "h", "h:8443", "/x/?EIO=4&transport=websocket",
     NULL, 8443},
    {"https on port 80 names it", "https://[::1]:80/", 0, "::1", "[::1]:80",
     "/socket.io/?EIO=4&transport=websocket", NULL, 80},
    {"port 0", "ws://h:0/", TS_EINVAL, NULL, NULL, NULL, "not a port number", 0},
    {"port too big", "ws://h:65536/", TS_EINVAL, NULL, NULL, NULL, "not a port number", 0},
    {"port not a number", "ws://h:80a/", TS_EINVAL, NULL, NULL, NULL, "\"80a\" is not a port", 0},
    {"empty port", "ws://h:/", TS_EINVAL, NULL, NULL, NULL, "not a port number", 0},
    {"no host", "ws://:80/", TS_EINVAL, NULL, NULL, NULL, "has no host", 0},
    {"userinfo", "ws://u:p@h/", TS_EINVAL, NULL, NULL, NULL, "user information", 0},
    {"unclosed v6", "ws://[::1/", TS_EINVAL, NULL, NULL, NULL, "closing ']'", 0},
    {"junk after v6", "ws://[::1]x/", TS_EINVAL, NULL, NULL, NULL, "after ']'", 0},
    {"space", "ws://h /", TS_EINVAL, NULL, NULL, NULL, "space", 0},
};

static void test_url_table(void **state) {
    for (size_t i = 0; i < sizeof url_cases / sizeof *url_cases; i++) {
        const struct url_case *k = &url_cases[i];
        ts_client__url_t u;
        char err[256] = "";
        int rc = ts_client__url_parse(k->in, &u, err, sizeof err);
        print_message("url: %s\n", k->name);
        assert_ts_err(rc, k->want_err);
        if (rc == 0) {
            assert_string_equal(u.host, k->host);
            assert_string_equal(u.host_header, k->host_header);
            assert_string_equal(u.target, k->target);
            assert_int_equal(u.port, k->port);
            assert_int_equal(u.tls, strncasecmp(k->in, "wss", 3) == 0 ||
                                        strncasecmp(k->in, "https", 5) == 0);
        } else {
            if (!strstr(err, k->msg)) print_error("message \"%s\" lacks \"%s\"\n", err, k->msg);
            assert_non_null(strstr(err, k->msg));
            assert_int_equal(strncmp(err, "url: ", 5), 0);
        }
    }
}

static void test_url_too_long(void **state) {
    char url[4000];
    memcpy(url, "ws://h/", 7);
    memset(url + 7, 'a', sizeof url - 8);
    url[sizeof url - 1] = '\0';
    ts_client__url_t u;
    char err[200];
    assert_ts_err(ts_client__url_parse(url, &u, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "too long"));
    assert_ts_err(ts_client__url_parse(NULL, &u, NULL, 0), TS_EINVAL);
}

/* ---- the request ---- */

static void test_request(void **state) {
    ts_client__url_t u;
    assert_int_equal(ts_client__url_parse("ws://[::1]:81/x/?q=1", &u, NULL, 0), 0);
    char out[1024];
    int n = ts_client__handshake_request(&u, "dGhlIHNhbXBsZSBub25jZQ==", out, sizeof out);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_non_null(strstr(out, "GET /x/?EIO=4&transport=websocket&q=1 HTTP/1.1\r\n"));
    assert_int_equal(strncmp(out, "GET ", 4), 0);
    assert_non_null(strstr(out, "\r\nHost: [::1]:81\r\n"));
    assert_non_null(strstr(out, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(out, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_string_equal(out + n - 4, "\r\n\r\n");
    assert_null(strstr(out, "Sec-WebSocket-Extensions")); /* we offer none */
    assert_ts_err(ts_client__handshake_request(&u, "k", out, 20), TS_ETOOBIG);
}

/* ---- the response ---- */

/* RFC 6455 section 1.3's example key and answer */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define OK_HEAD                                                                    \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
    "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"

static const struct resp_case {
    const char *name, *in;
    int want; /* 1, 0 (incomplete) or TS_E* */
    size_t trailing; /* bytes after the head (frames) when want == 1 */
    const char *msg;
} resp_cases[] = {
    {"node/tabsyncd answer", OK_HEAD, 1, 0, NULL},
    {"frames right after the head", OK_HEAD "\x81\x02" "40", 1, 4, NULL},
    {"header names and tokens in any case",
     "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, upgrade\r\n"
     "sec-websocket-accept:   " ACCEPT "  \r\nX-Other: 1\r\n\r\n",
     1, 0, NULL},
    {"status without reason", "HTTP/1.1 101\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     1, 0, NULL},
    {"empty extensions header is fine",
     "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Extensions:\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     1, 0, NULL},
    {"incomplete head", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", 0, 0, NULL},
    {"not 101", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", TS_EPROTO, 0,
     "answered \"HTTP/1.1 400 Bad Request\""},
    {"404 for a wrong path", "HTTP/1.1 404 Not Found\r\n\r\n", TS_EPROTO, 0, "Socket.IO path"},
    {"not HTTP at all", "SSH-2.0-OpenSSH\r\n", TS_EPROTO, 0, "did not answer HTTP"},
    {"HTTP/1.0", "HTTP/1.0 101 Switching Protocols\r\n\r\n", TS_EPROTO, 0, "malformed status"},
    {"wrong accept",
     "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
     TS_EPROTO, 0, "does not match the key"},
    {"accept missing", "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     TS_EPROTO, 0, "without Sec-WebSocket-Accept"},
    {"upgrade missing",
     "HTTP/1.1 101 S\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     TS_EPROTO, 0, "Upgrade: websocket"},
    {"upgrade to something else",
     "HTTP/1.1 101 S\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT
     "\r\n\r\n",
     TS_EPROTO, 0, "Upgrade: websocket"},
    {"connection missing",
     "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     TS_EPROTO, 0, "Connection: Upgrade"},
    {"connection token is not a substring match",
     "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: upgraded\r\nSec-WebSocket-Accept: " ACCEPT
     "\r\n\r\n",
     TS_EPROTO, 0, "Connection: Upgrade"},
    {"extension we did not offer",
     "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     TS_EPROTO, 0, "extension"},
    {"subprotocol we did not offer",
     "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     TS_EPROTO, 0, "subprotocol"},
    {"header without colon",
     "HTTP/1.1 101 S\r\nUpgrade websocket\r\n\r\n", TS_EPROTO, 0, "malformed header line"},
    {"bare LF inside a header block",
     "HTTP/1.1 101 S\r\nUpgrade: websocket\nX: y\r\n\r\n", TS_EPROTO, 0, NULL},
};

/* Feeds `in` the way a socket might: the first `split` bytes, then the rest
 * (or one byte at a time when step is 1); returns the final verdict. */
static int feed(const char *in, size_t len, size_t split, int bytewise, size_t *used, char *err,
                size_t errlen) {
    uint8_t *buf = malloc(len + 1);
    size_t have = 0;
    int rc = 0;
    while (have < len) {
        size_t add = bytewise ? 1 : (have == 0 && split ? split : len - have);
        memcpy(buf + have, in + have, add);
        have += add;
        rc = ts_client__handshake_parse(buf, have, ACCEPT, used, err, errlen);
        if (rc != 0) break;
    }
    free(buf);
    return rc;
}

static void test_response_table(void **state) {
    char acc[29];
    assert_int_equal(ts_ws_accept_key(KEY, strlen(KEY), acc), 0);
    assert_string_equal(acc, ACCEPT);
    for (size_t i = 0; i < sizeof resp_cases / sizeof *resp_cases; i++) {
        const struct resp_case *k = &resp_cases[i];
        size_t len = strlen(k->in);
        print_message("response: %s\n", k->name);
        for (int mode = 0; mode < 3; mode++) {
            size_t splits = mode == 2 ? len : 1;
            for (size_t s = 0; s < splits; s++) {
                size_t used = 99;
                char err[300] = "";
                int rc = feed(k->in, len, mode == 2 ? s : 0, mode == 1, &used, err, sizeof err);
                /* bytewise feeding stops at the head: trailing frames are
                 * never offered, so `used` is the head either way */
                assert_ts_err(rc, k->want);
                if (rc == 1) assert_int_equal(used, len - k->trailing);
                if (rc < 0) {
                    assert_int_equal(used, 0);
                    assert_int_equal(strncmp(err, "handshake: ", 11), 0);
                    if (k->msg && !strstr(err, k->msg))
                        print_error("message \"%s\" lacks \"%s\"\n", err, k->msg);
                    if (k->msg) assert_non_null(strstr(err, k->msg));
                }
            }
        }
    }
}

static void test_response_head_limit(void **state) {
    size_t n = TS_CLIENT__MAX_RESPONSE_HEAD + 10;
    char *big = malloc(n);
    memcpy(big, "HTTP/1.1 101 S\r\nX: ", 19);
    memset(big + 19, 'a', n - 19);
    size_t used;
    char err[200];
    assert_ts_err(ts_client__handshake_parse((uint8_t *)big, n, ACCEPT, &used, err, sizeof err),
                  TS_ETOOBIG);
    assert_non_null(strstr(err, "exceeds"));
    /* under the limit it is just incomplete */
    assert_int_equal(ts_client__handshake_parse((uint8_t *)big, 1000, ACCEPT, &used, err,
                                                sizeof err),
                     0);
    free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_url_too_long),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_response_table),
        cmocka_unit_test(test_response_head_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
