/* ts_http.h - HTTP/1.1 request parsing on http-parser, with the limits a
 * public server needs (header bytes, header count, body bytes), and
 * response serialisation. No sockets here: the connection code in
 * http_conn.c feeds bytes and acts on the results; the fuzzer does too. */
#ifndef TS_HTTP_H
#define TS_HTTP_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"
#include "core/ts_slice.h"

#define TS_HTTP_MAX_HEADERS_HARD 128 /* array size; the limit below can be lower */

typedef struct ts_http_limits {
    size_t max_header_bytes; /* request line + headers; default 16384 -> 431 */
    size_t max_headers;      /* header count; default 64 -> 431 */
    size_t max_body;         /* body bytes; default 1 MB -> 413 */
} ts_http_limits_t;

typedef struct ts_http_header {
    ts_slice_t name; /* borrowed from the request's own storage */
    ts_slice_t value;
} ts_http_header_t;

/* A complete request. Everything points into storage owned by the parser
 * and stays valid until the next ts_http_parser_feed or _deinit. */
typedef struct ts_http_req {
    int method;           /* http-parser's enum http_method (HTTP_GET, ...) */
    const char *method_name; /* "GET" */
    ts_slice_t url;       /* raw request target, e.g. "/socket.io/?EIO=4&transport=polling" */
    ts_slice_t path;      /* url up to '?' */
    ts_slice_t query;     /* after '?', without it; empty if none */
    size_t nheaders;
    ts_slice_t body;
    uint8_t http_minor;   /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    uint8_t keep_alive;   /* what http_should_keep_alive said */
    uint8_t upgrade;      /* "Connection: upgrade" with an Upgrade header */
    ts_http_header_t headers[TS_HTTP_MAX_HEADERS_HARD]; /* the first nheaders are set;
                                                           last: left unzeroed (http.c) */
} ts_http_req_t;

typedef struct ts_http_parser ts_http_parser_t; /* opaque */

/* Returns new. `limits` is copied; zero fields take the defaults. */
ts_http_parser_t *ts_http_parser_new(const ts_http_limits_t *limits);
void ts_http_parser_free(ts_http_parser_t *p);

/* Feeds bytes. Returns 1 when a complete request is ready (*req points to
 * it, *used bytes were consumed; for an upgrade request, bytes after the
 * headers are NOT consumed: they belong to the new protocol). Returns 0 when
 * all bytes were consumed and more are needed. Returns < 0 on a bad or
 * over-limit request; then *status is the HTTP status to answer with (400,
 * 413, 431, 501, 505) and ts_http_parser_errmsg says why; the connection
 * must be answered and closed. After a request, call again to parse the next
 * one (keep-alive, pipelining). */
int ts_http_parser_feed(ts_http_parser_t *p, const uint8_t *data, size_t len, size_t *used,
                        ts_http_req_t **req, int *status);
const char *ts_http_parser_errmsg(const ts_http_parser_t *p);
/* True while a request has started arriving but is not complete (for the
 * slow-request timeout). */
int ts_http_parser_in_request(const ts_http_parser_t *p);

/* Case-insensitive header lookup; returns 1 and sets *value when found. */
int ts_http_req_header(const ts_http_req_t *req, const char *name, ts_slice_t *value);
/* Query parameter lookup (no percent-decoding: the Engine.IO parameters
 * never need it). Returns 1 and sets *value when found. */
int ts_http_query_param(ts_slice_t query, const char *name, ts_slice_t *value);
/* True if a comma-separated header value contains `token` (case-insensitive),
 * e.g. Connection: keep-alive, Upgrade. */
int ts_http_header_has_token(ts_slice_t value, const char *token);

/* Appends `req` as HTTP/1.x bytes that a parser with the same limits reads
 * back as the same request: method, target, version, every header in order
 * except Content-Length, Transfer-Encoding (and names that begin with
 * them: http-parser takes those for the real ones), and the (de-chunked) body
 * with a Content-Length; header values are written trimmed, so
 * http-parser's keep-alive and upgrade flags (taken from the untrimmed
 * Connection header) may read differently for "close\t". Its header
 * section is never longer than the one that arrived, except that trailers
 * of a chunked body (which Engine.IO clients do not send) join it.
 * Used to move a request to another event loop. */
void ts_http_req_serialize(const ts_http_req_t *req, ts_sbuf_t *out);

/* Response serialisation: status line + headers + Content-Length + body.
 * `headers` is a block of "Name: value\r\n" lines (may be NULL). Returns new. */
ts_buf_t *ts_http_response(int status, const char *headers, const void *body, size_t len,
                           int keep_alive);
const char *ts_http_status_text(int status);

#endif
