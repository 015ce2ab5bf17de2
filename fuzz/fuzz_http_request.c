/* fuzz_http_request.c - libFuzzer driver for the HTTP/1.1 request parser.
 * Input: one byte of chunking seed (0 = one chunk; otherwise chunk sizes
 * 1..32 from a PRNG seeded with it), one byte picking the limits (small ones
 * by default, so every limit is reachable with short inputs), then the byte
 * stream. The stream is fed whole and in chunks; both feeds must return the
 * same requests and fail with the same status and message, and every
 * request must satisfy the parser's invariants. */
#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "net/ts_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Cross-file internal of src/net/http.c: the store every slice points into. */
ts_slice_t ts_http__storage(const ts_http_parser_t *p);

typedef struct outcome {
    uint64_t hash; /* FNV-1a over every request produced, with its end offset */
    size_t nreq;
    int rc;        /* 0, or the error */
    int status;
    char errmsg[128];
} outcome_t;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t fnv_slice(uint64_t h, ts_slice_t s) {
    h = fnv(h, &s.len, sizeof(s.len));
    return s.len ? fnv(h, s.p, s.len) : h;
}

static int inside(ts_slice_t s, ts_slice_t store) {
    return s.p != NULL && s.p >= store.p && s.p + s.len <= store.p + store.len;
}

static int is_tchar(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void check_req(const ts_http_parser_t *p, const ts_http_req_t *r,
                      const ts_http_limits_t *lim) {
    ts_slice_t store = ts_http__storage(p);
    ts_assert(inside(r->url, store) && inside(r->path, store) && inside(r->query, store));
    ts_assert(inside(r->body, store));
    ts_assert(r->url.len > 0);
    ts_assert(r->path.p == r->url.p);
    if (r->path.len < r->url.len) { /* url = path '?' query */
        ts_assert(r->url.p[r->path.len] == '?');
        ts_assert(r->query.p == r->url.p + r->path.len + 1);
        ts_assert(r->path.len + 1 + r->query.len == r->url.len);
        ts_assert(memchr(r->path.p, '?', r->path.len) == NULL);
    } else {
        ts_assert(r->query.len == 0);
    }
    ts_assert(r->method_name && strcmp(r->method_name, http_method_str(r->method)) == 0);
    ts_assert(r->http_minor <= 1);
    ts_assert(r->keep_alive <= 1 && r->upgrade <= 1);
    ts_assert(r->nheaders <= lim->max_headers && r->nheaders <= TS_HTTP_MAX_HEADERS_HARD);
    ts_assert(r->body.len <= lim->max_body);
    for (size_t i = 0; i < r->nheaders; i++) {
        const ts_http_header_t *h = &r->headers[i];
        ts_assert(inside(h->name, store) && inside(h->value, store));
        ts_assert(h->name.len > 0);
        for (size_t k = 0; k < h->name.len; k++) ts_assert(is_tchar(h->name.p[k]));
        if (h->value.len) {
            ts_assert(h->value.p[0] != ' ' && h->value.p[0] != '\t');
            ts_assert(h->value.p[h->value.len - 1] != ' ' && h->value.p[h->value.len - 1] != '\t');
        }
        /* lookup by this name finds a header with the same name */
        char name[64];
        if (h->name.len < sizeof(name)) {
            memcpy(name, h->name.p, h->name.len);
            name[h->name.len] = '\0';
            ts_slice_t v;
            ts_assert(ts_http_req_header(r, name, &v) == 1);
            ts_assert(inside(v, store));
        }
        (void)ts_http_header_has_token(h->value, "upgrade");
    }
    ts_slice_t v;
    if (ts_http_query_param(r->query, "EIO", &v)) ts_assert(inside(v, store));
    if (ts_http_query_param(r->query, "sid", &v)) ts_assert(inside(v, store));

    /* moved to another loop, the request reads back the same
     * (ts_http_req_serialize), within the same limits */
    ts_sbuf_t sb = TS_SBUF_INIT;
    ts_http_req_serialize(r, &sb);
    /* trailers of a chunked body come back as headers, in the header
     * section: allow for them (Engine.IO clients send none) */
    ts_http_limits_t lim2 = *lim;
    lim2.max_header_bytes = lim->max_header_bytes * 2 + r->body.len;
    ts_http_parser_t *again = ts_http_parser_new(&lim2);
    size_t used = 0;
    ts_http_req_t *r2 = NULL;
    int st = 0;
    int rc2 = ts_http_parser_feed(again, ts_sbuf_data(&sb), ts_sbuf_len(&sb), &used, &r2, &st);
    if (rc2 != 1)
        fprintf(stderr, "reparse: rc %d status %d %s\n[%.*s]\n", rc2, st, ts_http_parser_errmsg(again),
                (int)ts_sbuf_len(&sb), (const char *)ts_sbuf_data(&sb));
    ts_assert(rc2 == 1);
    ts_assert(r2->method == r->method && r2->http_minor == r->http_minor);
    /* keep_alive and upgrade are http-parser's reading of the Connection
     * header, which it takes before whitespace is trimmed ("close\t" is not
     * "close" to it); the trimmed value can read differently. Harmless: the
     * connection closes after the response or stays; a body-less GET is the
     * same request either way. */
    ts_assert(ts_slice_eq(r2->url, r->url) && ts_slice_eq(r2->body, r->body));
    size_t k2 = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const ts_http_header_t *h = &r->headers[i];
        if ((h->name.len >= 14 && strncasecmp((const char *)h->name.p, "content-length", 14) == 0) ||
            (h->name.len >= 17 && strncasecmp((const char *)h->name.p, "transfer-encoding", 17) == 0))
            continue; /* framing headers are rewritten */
        ts_assert(k2 < r2->nheaders);
        ts_assert(ts_slice_eq(r2->headers[k2].name, h->name));
        ts_assert(ts_slice_eq(r2->headers[k2].value, h->value));
        k2++;
    }
    ts_http_parser_free(again);
    ts_sbuf_free(&sb);

    /* a response echoing the body has the length the format implies */
    ts_buf_t *resp = ts_http_response(200, "X: y\r\n", r->body.p, r->body.len, r->keep_alive);
    ts_assert(resp->len > r->body.len);
    ts_assert(r->body.len == 0 ||
              memcmp(resp->data + resp->len - r->body.len, r->body.p, r->body.len) == 0);
    ts_buf_unref(resp);
}

static uint32_t xorshift(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* chunk_seed 0: one feed; otherwise chunks of 1..32 bytes. */
static outcome_t run(const uint8_t *in, size_t len, const ts_http_limits_t *lim,
                     const ts_http_limits_t *eff, uint8_t chunk_seed) {
    outcome_t o = {0xcbf29ce484222325ull, 0, 0, 0, ""};
    ts_http_parser_t *p = ts_http_parser_new(lim);
    uint32_t prng = 0x9e3779b9u ^ chunk_seed;
    size_t at = 0, stop = 0;
    while (at < len || stop < len) {
        if (at == stop) {
            size_t n = chunk_seed ? 1 + xorshift(&prng) % 32 : len;
            stop = TS_MIN(len, stop + n);
        }
        size_t used = (size_t)-1;
        ts_http_req_t *r = NULL;
        int status = -1;
        int rc = ts_http_parser_feed(p, in + at, stop - at, &used, &r, &status);
        ts_assert(used <= stop - at);
        at += used;
        if (rc == 1) {
            ts_assert(r != NULL && status == 0);
            ts_assert(!ts_http_parser_in_request(p));
            check_req(p, r, eff);
            o.nreq++;
            o.hash = fnv(o.hash, &at, sizeof(at));
            o.hash = fnv_slice(o.hash, r->url);
            o.hash = fnv_slice(o.hash, r->body);
            for (size_t i = 0; i < r->nheaders; i++) {
                o.hash = fnv_slice(o.hash, r->headers[i].name);
                o.hash = fnv_slice(o.hash, r->headers[i].value);
            }
            uint8_t flags[4] = {(uint8_t)r->method, r->http_minor, r->keep_alive, r->upgrade};
            o.hash = fnv(o.hash, flags, sizeof(flags));
            if (r->upgrade) break; /* the rest belongs to another protocol */
        } else if (rc == 0) {
            ts_assert(r == NULL && at == stop);
        } else {
            ts_assert(r == NULL);
            ts_assert(rc == TS_EPROTO || rc == TS_ELIMIT || rc == TS_ETOOBIG || rc == TS_EVERSION);
            ts_assert(status == 400 || status == 413 || status == 431 || status == 501 ||
                      status == 505);
            ts_assert(strncmp(ts_http_parser_errmsg(p), "http: ", 6) == 0);
            ts_assert(!ts_http_parser_in_request(p));
            /* sticky */
            int status2 = 0;
            ts_assert(ts_http_parser_feed(p, in, len, &used, &r, &status2) == rc);
            ts_assert(status2 == status && used == 0);
            o.rc = rc;
            o.status = status;
            snprintf(o.errmsg, sizeof(o.errmsg), "%s", ts_http_parser_errmsg(p));
            break;
        }
    }
    ts_http_parser_free(p);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    uint8_t chunk_seed = data[0];
    ts_http_limits_t lim = {256, 8, 128}; /* given to the parser */
    ts_http_limits_t eff = lim;           /* what it must enforce */
    switch (data[1] & 3) {
    case 1: lim = eff = (ts_http_limits_t){64, 3, 16}; break;
    case 2: /* zero fields take the defaults */
        lim = (ts_http_limits_t){0, 0, 0};
        eff = (ts_http_limits_t){16384, 64, 1024 * 1024};
        break;
    default: break;
    }
    data += 2;
    size -= 2;

    outcome_t whole = run(data, size, &lim, &eff, 0);
    outcome_t chunked = run(data, size, &lim, &eff, chunk_seed ? chunk_seed : 1);
    ts_assert(whole.nreq == chunked.nreq);
    ts_assert(whole.hash == chunked.hash);
    ts_assert(whole.rc == chunked.rc);
    ts_assert(whole.status == chunked.status);
    ts_assert(strcmp(whole.errmsg, chunked.errmsg) == 0);
    return 0;
}
