/* http.c - HTTP/1.1 request parsing on http-parser 2.9 with per-parser
 * limits, and response serialisation. Pieces from http-parser are copied
 * into one growable store as offsets, turned into slices only when a request
 * is complete. We pause http-parser at the end of the head (to count it
 * exactly and check limits before any body byte) and at the end of each
 * request (pipelining); every error is decided at a fixed byte so any split
 * of the input gives the same answer. */
#include "net/ts_http.h"

#include <http_parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"

#define TS_HTTP_DEF_HEADER_BYTES 16384
#define TS_HTTP_DEF_HEADERS 64
#define TS_HTTP_DEF_BODY (1024 * 1024)

enum last_cb { LAST_NONE, LAST_FIELD, LAST_VALUE }; /* which header callback ran last */
enum pause_why { PAUSE_NONE, PAUSE_HEAD, PAUSE_DONE };
enum line_state { LINE_BEFORE, LINE_IN, LINE_DONE }; /* request-line scan */

typedef struct hdr_off {
    size_t name_off, name_len; /* offsets into the store */
    size_t value_off, value_len;
} hdr_off_t;

struct ts_http_parser {
    http_parser hp;
    ts_http_limits_t lim;
    ts_sbuf_t store;        /* url, header names and values, body of the current request */
    size_t url_off, url_len;
    size_t nheaders;        /* stored, at most lim.max_headers */
    size_t nseen;           /* header lines seen, stored or not */
    int bad_name;           /* first byte outside tchar in a header name, or -1 */
    size_t body_off, body_len;
    size_t header_bytes;    /* raw bytes of the current head so far (leading CRLFs too) */
    enum last_cb last;
    enum pause_why pause;
    enum line_state line;
    uint8_t tail[10];       /* last bytes of the request line, to check " HTTP/x.y" */
    size_t tail_len;
    uint8_t begun;          /* on_message_begin ran for the current request */
    uint8_t headers_done;   /* on_headers_complete ran */
    uint8_t complete;       /* the current request was returned to the caller */
    uint8_t keep_alive;     /* http_should_keep_alive at message end */
    uint8_t closed;         /* a request without keep-alive was returned: no more requests */
    int err;                /* TS_E* once failed; sticky */
    int status;             /* HTTP status to answer with once failed */
    char errmsg[128];
    /* Last, and not zeroed when made: 8 KiB that are filled header by
     * header up to nheaders (calloc's memset of them was a sixth of a
     * /session handshake's instructions, callgrind). */
    hdr_off_t hdrs[TS_HTTP_MAX_HEADERS_HARD];
    ts_http_req_t req; /* its headers[] last, not zeroed either */
};

/* Cross-file internal for the fuzzer: the bytes all slices of the last
 * request point into. Declared here and in the fuzz driver (no _int.h). */
ts_slice_t ts_http__storage(const ts_http_parser_t *p);

static int fail(ts_http_parser_t *p, int err, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ts_http_parser_t *p, int err, int status, const char *fmt, ...) {
    if (p->err) return p->err; /* keep the first reason */
    p->err = err;
    p->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

/* RFC 9110 tchar. http-parser, built without HTTP_PARSER_STRICT as Debian
 * ships it, lets spaces into header names ("X : y"), a smuggling vector. */
static int is_tchar(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static ts_http_parser_t *parser_of(http_parser *hp) { return hp->data; }

static int on_message_begin(http_parser *hp) {
    parser_of(hp)->begun = 1;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len) {
    ts_http_parser_t *p = parser_of(hp);
    if (p->url_len == 0) p->url_off = ts_sbuf_len(&p->store);
    ts_sbuf_append(&p->store, at, len);
    p->url_len += len;
    return 0;
}

/* Header callbacks never fail: http-parser delivers a name or value late
 * (at its end, or at the end of the fed buffer) and drops what is pending
 * when it meets a syntax error, so an error raised here would depend on
 * how the input was split. They record what is wrong; check_head() reports
 * it once the head is complete. Headers over the limit are counted only. */
static int on_header_field(http_parser *hp, const char *at, size_t len) {
    ts_http_parser_t *p = parser_of(hp);
    if (p->headers_done) return 0; /* chunked trailer fields: ignored */
    for (size_t i = 0; i < len && p->bad_name < 0; i++)
        if (!is_tchar((uint8_t)at[i])) p->bad_name = (uint8_t)at[i];
    if (p->last != LAST_FIELD) {
        p->nseen++;
        if (p->nheaders < p->lim.max_headers) {
            size_t at_off = ts_sbuf_len(&p->store);
            p->hdrs[p->nheaders++] = (hdr_off_t){at_off, 0, at_off, 0};
        }
    }
    p->last = LAST_FIELD;
    if (p->nseen > p->nheaders) return 0;
    ts_sbuf_append(&p->store, at, len);
    p->hdrs[p->nheaders - 1].name_len += len;
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len) {
    ts_http_parser_t *p = parser_of(hp);
    if (p->headers_done || TS_NEVER(p->nseen == 0)) return 0;
    enum last_cb was = p->last;
    p->last = LAST_VALUE;
    if (p->nseen > p->nheaders) return 0;
    hdr_off_t *h = &p->hdrs[p->nheaders - 1];
    if (was != LAST_VALUE) {
        h->value_off = ts_sbuf_len(&p->store);
        h->value_len = 0;
    }
    ts_sbuf_append(&p->store, at, len);
    h->value_len += len;
    return 0;
}

static int on_headers_complete(http_parser *hp) {
    ts_http_parser_t *p = parser_of(hp);
    p->headers_done = 1;
    p->body_off = ts_sbuf_len(&p->store);
    /* Stop here so feed() can count the head exactly and check the
     * version and Content-Length before a single body byte is read. */
    p->pause = PAUSE_HEAD;
    http_parser_pause(hp, 1);
    return 0;
}

static int on_chunk_header(http_parser *hp) {
    ts_http_parser_t *p = parser_of(hp);
    /* hp->content_length is the size of the chunk about to arrive */
    if (hp->content_length > p->lim.max_body - p->body_len) {
        fail(p, TS_ETOOBIG, 413, "http: chunked request body exceeds %zu bytes", p->lim.max_body);
        return -1;
    }
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len) {
    ts_http_parser_t *p = parser_of(hp);
    if (len > p->lim.max_body - p->body_len) { /* the checks above make this unreachable */
        fail(p, TS_ETOOBIG, 413, "http: request body exceeds %zu bytes", p->lim.max_body);
        return -1;
    }
    ts_sbuf_append(&p->store, at, len);
    p->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *hp) {
    ts_http_parser_t *p = parser_of(hp);
    p->keep_alive = (uint8_t)(http_should_keep_alive(hp) != 0);
    p->pause = PAUSE_DONE;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

ts_http_parser_t *ts_http_parser_new(const ts_http_limits_t *limits) {
    ts_http_parser_t *p = ts_xmalloc(sizeof(*p));
    memset(p, 0, offsetof(ts_http_parser_t, hdrs));
    memset(&p->req, 0, offsetof(ts_http_req_t, headers));
    if (limits) p->lim = *limits;
    if (!p->lim.max_header_bytes) p->lim.max_header_bytes = TS_HTTP_DEF_HEADER_BYTES;
    if (!p->lim.max_headers) p->lim.max_headers = TS_HTTP_DEF_HEADERS;
    if (!p->lim.max_body) p->lim.max_body = TS_HTTP_DEF_BODY;
    /* http-parser has its own compile-time cap, and counts the final LF
     * twice because we pause on it; stay under it so ours decides. */
    p->lim.max_header_bytes = TS_MIN(p->lim.max_header_bytes, (size_t)HTTP_MAX_HEADER_SIZE - 1);
    p->lim.max_headers = TS_MIN(p->lim.max_headers, (size_t)TS_HTTP_MAX_HEADERS_HARD);
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
    ts_sbuf_reserve(&p->store, 256); /* so empty slices still point into the store */
    p->bad_name = -1;
    return p;
}

void ts_http_parser_free(ts_http_parser_t *p) {
    if (!p) return;
    ts_sbuf_free(&p->store);
    free(p);
}

const char *ts_http_parser_errmsg(const ts_http_parser_t *p) { return p->errmsg; }

int ts_http_parser_in_request(const ts_http_parser_t *p) {
    return !p->err && p->begun && !p->complete;
}

ts_slice_t ts_http__storage(const ts_http_parser_t *p) {
    return ts_slice(p->store.b->data, p->store.b->len);
}

/* Forgets the request returned last; its slices die here. */
static void next_message(ts_http_parser_t *p) {
    ts_sbuf_truncate(&p->store, 0);
    p->url_off = p->url_len = 0;
    p->nheaders = p->nseen = 0;
    p->bad_name = -1;
    p->body_off = p->body_len = 0;
    p->header_bytes = 0;
    p->last = LAST_NONE;
    p->line = LINE_BEFORE;
    p->tail_len = 0;
    p->begun = p->headers_done = p->complete = 0;
}

/* Follows the request line through bytes http-parser has consumed, keeping
 * its last bytes. The non-strict http-parser accepts any 4 bytes after 'H'
 * ("HTTX/1.1"), so we check the version token ourselves at the line's end.
 * Returns 0, or TS_EPROTO (failed) when the line ends badly. */
static int scan_request_line(ts_http_parser_t *p, const uint8_t *d, size_t n) {
    for (size_t i = 0; i < n && p->line != LINE_DONE; i++) {
        uint8_t c = d[i];
        if (p->line == LINE_BEFORE) {
            if (c == '\r' || c == '\n') continue; /* http-parser skips empty lines too */
            p->line = LINE_IN;
        }
        if (c == '\n') {
            p->line = LINE_DONE;
            size_t k = p->tail_len;
            if (k && p->tail[k - 1] == '\r') k--;
            if (k < 9 || memcmp(p->tail + k - 9, " HTTP/", 6) != 0 || p->tail[k - 2] != '.') {
                return fail(p, TS_EPROTO, 400, "http: bad request line (no HTTP/1.x at its end)");
            }
            return 0;
        }
        if (p->tail_len == sizeof(p->tail)) {
            memmove(p->tail, p->tail + 1, sizeof(p->tail) - 1);
            p->tail_len--;
        }
        p->tail[p->tail_len++] = c;
    }
    return 0;
}

/* Turns an http-parser error into a status; `bad` is the byte it stopped
 * on, or -1 if unknown. */
static int fail_from_parser(ts_http_parser_t *p, int bad) {
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    if (p->err) return p->err; /* one of our callbacks said why */
    switch (e) {
    case HPE_HEADER_OVERFLOW:
        return fail(p, TS_ELIMIT, 431, "http: request headers exceed %d bytes",
                    (int)HTTP_MAX_HEADER_SIZE);
    case HPE_INVALID_METHOD:
        /* http-parser stops at the first byte that leaves its method table,
         * before the rest of the line is seen, so a method it does not know
         * ("FOO /") cannot be told from noise ("NOT A REQUEST"): both get
         * 400, as Node's HTTP server answers. */
        if (bad >= 0 && (is_tchar((uint8_t)bad) || (bad == ' ' && p->begun)))
            return fail(p, TS_EPROTO, 400, "http: unsupported request method");
        break;
    case HPE_INVALID_VERSION:
        if (bad >= '0' && bad <= '9')
            return fail(p, TS_EVERSION, 505, "http: unsupported HTTP version (only 1.0 and 1.1)");
        break;
    default:
        break;
    }
    return fail(p, TS_EPROTO, 400, "http: bad request: %s", http_errno_description(e));
}

/* Everything about the head, checked in a fixed order once all of it has
 * been read (and found within max_header_bytes), so that the answer does
 * not depend on how the bytes were split. */
static int check_head(ts_http_parser_t *p) {
    if (p->nseen > p->lim.max_headers)
        return fail(p, TS_ELIMIT, 431, "http: more than %zu request headers", p->lim.max_headers);
    if (p->bad_name >= 0)
        return fail(p, TS_EPROTO, 400, "http: invalid character 0x%02x in a header name",
                    (unsigned)p->bad_name);
    if (p->hp.http_major != 1 || p->hp.http_minor > 1)
        return fail(p, TS_EVERSION, 505, "http: HTTP version %u.%u not supported (only 1.0 and 1.1)",
                    p->hp.http_major, p->hp.http_minor);
    if ((p->hp.flags & F_CONTENTLENGTH) && !(p->hp.flags & F_CHUNKED) &&
        p->hp.content_length > p->lim.max_body)
        return fail(p, TS_ETOOBIG, 413, "http: request body of %llu bytes exceeds %zu bytes",
                    (unsigned long long)p->hp.content_length, p->lim.max_body);
    return 0;
}

static ts_slice_t trim_ows(ts_slice_t s) {
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t')) s.len--;
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.len--;
    return s;
}

static void build_req(ts_http_parser_t *p) {
    const uint8_t *base = p->store.b->data;
    ts_http_req_t *r = &p->req;
    r->method = (int)p->hp.method;
    r->method_name = http_method_str((enum http_method)p->hp.method);
    r->url = ts_slice(base + p->url_off, p->url_len);
    const uint8_t *q = p->url_len ? memchr(r->url.p, '?', r->url.len) : NULL;
    if (q) {
        r->path = ts_slice(r->url.p, (size_t)(q - r->url.p));
        r->query = ts_slice(q + 1, r->url.len - r->path.len - 1);
    } else {
        r->path = r->url;
        r->query = ts_slice(r->url.p + r->url.len, 0);
    }
    r->nheaders = p->nheaders;
    for (size_t i = 0; i < p->nheaders; i++) {
        const hdr_off_t *h = &p->hdrs[i];
        r->headers[i].name = ts_slice(base + h->name_off, h->name_len);
        r->headers[i].value = trim_ows(ts_slice(base + h->value_off, h->value_len));
    }
    r->body = ts_slice(base + p->body_off, p->body_len);
    r->http_minor = (uint8_t)p->hp.http_minor;
    r->keep_alive = p->keep_alive;
    r->upgrade = (uint8_t)p->hp.upgrade;
}

int ts_http_parser_feed(ts_http_parser_t *p, const uint8_t *data, size_t len, size_t *used,
                        ts_http_req_t **req, int *status) {
    *used = 0;
    *req = NULL;
    *status = 0;
    if (p->err) {
        *status = p->status;
        return p->err;
    }
    if (p->complete) next_message(p);

    size_t off = 0;
    int rc = 0;
    if (p->closed) {
        /* The non-strict http-parser would happily parse a request after
         * "Connection: close"; the connection is about to close, so only
         * stray line ends are allowed. */
        while (off < len && (data[off] == '\r' || data[off] == '\n')) off++;
        if (off < len) rc = fail(p, TS_EPROTO, 400, "http: request received after Connection: close");
    }
    while (rc == 0 && off < len) {
        size_t n = len - off;
        int in_head = !p->headers_done;
        if (in_head) /* never read past the limit: at most one byte more */
            n = TS_MIN(n, p->lim.max_header_bytes + 1 - p->header_bytes);
        p->pause = PAUSE_NONE;
        size_t got = http_parser_execute(&p->hp, &settings, (const char *)data + off, n);
        enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
        if (in_head) {
            /* Paused at the end of the headers, http-parser has not yet
             * consumed the final LF: it is still part of the head. */
            size_t head = got + (p->pause == PAUSE_HEAD ? 1 : 0);
            p->header_bytes += head;
            rc = scan_request_line(p, data + off, head);
        }
        if (rc == 0 && e != HPE_OK && e != HPE_PAUSED)
            rc = fail_from_parser(p, got < n ? data[off + got] : -1);
        /* Not at the end of the headers yet, but already past the limit. */
        if (rc == 0 && in_head && p->header_bytes > p->lim.max_header_bytes)
            rc = fail(p, TS_ELIMIT, 431, "http: request headers exceed %zu bytes",
                      p->lim.max_header_bytes);
        if (rc == 0 && p->pause == PAUSE_HEAD) rc = check_head(p);
        if (rc) {
            off += got;
            break;
        }
        off += got;
        if (e == HPE_PAUSED) http_parser_pause(&p->hp, 0);
        if (p->pause == PAUSE_DONE) {
            build_req(p);
            p->complete = 1;
            if (!p->keep_alive) p->closed = 1;
            *used = off;
            *req = &p->req;
            return 1;
        }
        if (TS_NEVER(e == HPE_OK && got < n)) {
            rc = fail(p, TS_EINTERNAL, 400, "http: parser stopped without a reason");
            break;
        }
    }
    *used = off;
    if (rc) *status = p->status;
    return rc;
}

int ts_http_req_header(const ts_http_req_t *req, const char *name, ts_slice_t *value) {
    size_t nlen = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const ts_http_header_t *h = &req->headers[i];
        if (h->name.len == nlen && strncasecmp((const char *)h->name.p, name, nlen) == 0) {
            *value = h->value;
            return 1;
        }
    }
    return 0;
}

int ts_http_query_param(ts_slice_t query, const char *name, ts_slice_t *value) {
    size_t nlen = strlen(name);
    if (query.len == 0) return 0;
    const uint8_t *s = query.p, *end = query.p + query.len;
    while (s && s < end) {
        const uint8_t *amp = memchr(s, '&', (size_t)(end - s));
        const uint8_t *pe = amp ? amp : end;
        const uint8_t *eq = memchr(s, '=', (size_t)(pe - s));
        const uint8_t *ke = eq ? eq : pe;
        if ((size_t)(ke - s) == nlen && memcmp(s, name, nlen) == 0) {
            *value = eq ? ts_slice(eq + 1, (size_t)(pe - eq - 1)) : ts_slice(pe, 0);
            return 1;
        }
        s = amp ? amp + 1 : NULL;
    }
    return 0;
}

int ts_http_header_has_token(ts_slice_t value, const char *token) {
    size_t tlen = strlen(token);
    if (value.len == 0 || tlen == 0) return 0;
    const uint8_t *s = value.p, *end = value.p + value.len;
    while (s && s <= end) {
        const uint8_t *comma = s < end ? memchr(s, ',', (size_t)(end - s)) : NULL;
        ts_slice_t item = trim_ows(ts_slice(s, (size_t)((comma ? comma : end) - s)));
        if (item.len == tlen && tlen && strncasecmp((const char *)item.p, token, tlen) == 0)
            return 1;
        s = comma ? comma + 1 : NULL;
    }
    return 0;
}

const char *ts_http_status_text(int status) {
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: break;
    }
    const char *s = http_status_str((enum http_status)status);
    return strcmp(s, "<unknown>") == 0 ? "Unknown" : s;
}

ts_buf_t *ts_http_response(int status, const char *headers, const void *body, size_t len,
                           int keep_alive) {
    ts_sbuf_t s = TS_SBUF_INIT;
    ts_sbuf_printf(&s, "HTTP/1.1 %d %s\r\n", status, ts_http_status_text(status));
    if (headers) ts_sbuf_append_str(&s, headers);
    /* 1xx, 204 and 304 carry no body and must not send Content-Length
     * (RFC 9110 8.6); a 101 takes its Connection header ("Upgrade") from
     * the caller, since "keep-alive" there would break the handshake. */
    int bodyless = (status >= 100 && status < 200) || status == 204 || status == 304;
    if (!bodyless) ts_sbuf_printf(&s, "Content-Length: %zu\r\n", len);
    if (status != 101)
        ts_sbuf_append_str(&s, keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    ts_sbuf_append(&s, "\r\n", 2);
    if (!bodyless && len) ts_sbuf_append(&s, body, len);
    return ts_sbuf_finish(&s);
}

/* Content-Length, Transfer-Encoding, and any name they begin: http-parser
 * reads "Transfer-EncodingX" as Transfer-Encoding, so such a header would
 * make the rewritten request (with its Content-Length) unreadable. */
static int framing_header(ts_slice_t name) {
    static const char *const names[] = {"content-length", "transfer-encoding"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(names[i]);
        if (name.len >= n && strncasecmp((const char *)name.p, names[i], n) == 0) return 1;
    }
    return 0;
}

void ts_http_req_serialize(const ts_http_req_t *req, ts_sbuf_t *sb) {
    ts_sbuf_printf(sb, "%s %.*s HTTP/1.%u\r\n", req->method_name, (int)req->url.len,
                   (const char *)req->url.p, req->http_minor);
    for (size_t i = 0; i < req->nheaders; i++) {
        const ts_http_header_t *h = &req->headers[i];
        if (framing_header(h->name)) continue;
        ts_sbuf_append(sb, h->name.p, h->name.len);
        ts_sbuf_append(sb, ":", 1); /* no space: never longer than what arrived */
        ts_sbuf_append(sb, h->value.p, h->value.len);
        ts_sbuf_append(sb, "\r\n", 2);
    }
    /* not longer than the Content-Length or Transfer-Encoding: chunked line
     * it replaces, so the request still fits the same header limit */
    if (req->body.len) ts_sbuf_printf(sb, "Content-Length:%zu\r\n", req->body.len);
    ts_sbuf_append(sb, "\r\n", 2);
    ts_sbuf_append(sb, req->body.p, req->body.len);
}
