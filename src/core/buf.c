/* buf.c - refcounted byte blocks and the builder that grows one in place. */
#include "core/ts_buf.h"
#include "core/ts_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"

ts_buf_t *ts_buf_new(size_t len) {
    ts_buf_t *b = ts_xmalloc(sizeof(*b) + len + 1);
    b->refs = 1;
    b->len = len;
    b->data[len] = '\0';
    return b;
}

ts_buf_t *ts_buf_from(const void *p, size_t len) {
    ts_buf_t *b = ts_buf_new(len);
    if (len) memcpy(b->data, p, len);
    return b;
}

void ts_buf_unref(ts_buf_t *b) {
    if (!b) return;
    uint32_t left = __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL);
    ts_assert(left != UINT32_MAX);
    if (left == 0) free(b);
}

void ts_sbuf_reserve(ts_sbuf_t *s, size_t extra) {
    size_t len = ts_sbuf_len(s);
    if (s->b && len + extra <= s->cap) return;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < len + extra) cap *= 2;
    s->b = ts_xrealloc(s->b, sizeof(ts_buf_t) + cap + 1);
    if (s->cap == 0) {
        s->b->refs = 1;
        s->b->len = 0;
    }
    s->cap = cap;
}

uint8_t *ts_sbuf_extend(ts_sbuf_t *s, size_t n) {
    ts_sbuf_reserve(s, n);
    uint8_t *at = s->b->data + s->b->len;
    s->b->len += n;
    s->b->data[s->b->len] = '\0';
    return at;
}

void ts_sbuf__append_grow(ts_sbuf_t *s, const void *p, size_t len) {
    if (len == 0) {
        ts_sbuf_reserve(s, 0);
        return;
    }
    memcpy(ts_sbuf_extend(s, len), p, len);
}


void ts_sbuf_put_u64(ts_sbuf_t *s, uint64_t v) {
    char d[TS_U64_DEC_MAX];
    ts_sbuf_append(s, d, ts_fmt_u64(d, v));
}

void ts_sbuf_put_i64(ts_sbuf_t *s, int64_t v) {
    if (v < 0) {
        ts_sbuf_putc(s, '-');
        ts_sbuf_put_u64(s, 0 - (uint64_t)v);
    } else {
        ts_sbuf_put_u64(s, (uint64_t)v);
    }
}

void ts_sbuf_vprintf(ts_sbuf_t *s, const char *fmt, va_list ap) {
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n <= 0) return;
    ts_sbuf_reserve(s, (size_t)n);
    vsnprintf((char *)s->b->data + s->b->len, (size_t)n + 1, fmt, ap);
    s->b->len += (size_t)n;
}

void ts_sbuf_printf(ts_sbuf_t *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ts_sbuf_vprintf(s, fmt, ap);
    va_end(ap);
}

void ts_sbuf_truncate(ts_sbuf_t *s, size_t len) {
    if (s->b && len < s->b->len) {
        s->b->len = len;
        s->b->data[len] = '\0';
    }
}

ts_buf_t *ts_sbuf_finish(ts_sbuf_t *s) {
    ts_buf_t *b = s->b ? s->b : ts_buf_new(0);
    /* Doubling leaves up to half the capacity unused, and a finished buffer
     * may be kept a long time (send queues, the recovery log: 64 MiB of
     * events held 128 MiB). Give a large slack back while nobody else holds
     * the buffer; shrinking in place is cheap. */
    if (s->b && s->cap - b->len > 4096 && s->cap - b->len > b->len / 4) {
        ts_buf_t *nb = realloc(b, sizeof(ts_buf_t) + b->len + 1);
        if (nb) b = nb;
    }
    s->b = NULL;
    s->cap = 0;
    return b;
}

void ts_sbuf_free(ts_sbuf_t *s) {
    free(s->b);
    s->b = NULL;
    s->cap = 0;
}
