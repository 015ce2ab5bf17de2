/* ts_buf.h - immutable, refcounted byte blocks, and a builder that produces
 * them without a final copy. A broadcast encodes its bytes once into one
 * ts_buf_t; every recipient's write queue takes a reference. */
#ifndef TS_BUF_H
#define TS_BUF_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ts_slice.h"

/* Refcounts are atomic: with one loop per core a broadcast's bytes are
 * shared by the writes of every loop (and by the recovery log), so the
 * last reference may be dropped on any thread. The bytes themselves are
 * immutable once a second reference exists, so only the count is shared. */
typedef struct ts_buf {
    uint32_t refs; /* private */
    size_t len;    /* read-only: bytes in data */
    uint8_t data[];
} ts_buf_t;

/* Returns new (refs = 1) with `len` uninitialised bytes plus a NUL after
 * them. Writable until a second reference exists. */
ts_buf_t *ts_buf_new(size_t len);
/* Returns new: a copy of p[0..len). */
ts_buf_t *ts_buf_from(const void *p, size_t len);
static inline ts_buf_t *ts_buf_ref(ts_buf_t *b) {
    __atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}
/* Drops one reference; frees on the last. NULL is ignored. */
void ts_buf_unref(ts_buf_t *b);
static inline ts_slice_t ts_buf_slice(const ts_buf_t *b) {
    return ts_slice(b->data, b->len);
}

/* Growable byte string. The bytes live inside a ts_buf_t under
 * construction, so ts_sbuf_finish hands them over without copying. */
typedef struct ts_sbuf {
    ts_buf_t *b; /* private; NULL until the first append */
    size_t cap;  /* private */
} ts_sbuf_t;

#define TS_SBUF_INIT {NULL, 0}
static inline size_t ts_sbuf_len(const ts_sbuf_t *s) { return s->b ? s->b->len : 0; }
/* Pointer to the bytes so far (may move on the next append); NUL-terminated. */
static inline uint8_t *ts_sbuf_data(ts_sbuf_t *s) { return s->b ? s->b->data : (uint8_t *)""; }
void ts_sbuf_reserve(ts_sbuf_t *s, size_t extra);
/* The growing paths of the two below (buf.c). */
void ts_sbuf__append_grow(ts_sbuf_t *s, const void *p, size_t len);
/* Inline while the bytes fit: the JSON writers and transcoders append a
 * byte or a few at a time (a call per byte was 4 % of a node's CPU
 * relaying other nodes' broadcasts). */
static inline void ts_sbuf_append(ts_sbuf_t *s, const void *p, size_t len) {
    if (s->b && len && s->b->len + len <= s->cap) {
        memcpy(s->b->data + s->b->len, p, len);
        s->b->len += len;
        s->b->data[s->b->len] = '\0';
        return;
    }
    ts_sbuf__append_grow(s, p, len);
}
static inline void ts_sbuf_append_str(ts_sbuf_t *s, const char *str) {
    ts_sbuf_append(s, str, strlen(str));
}
static inline void ts_sbuf_putc(ts_sbuf_t *s, char c) { ts_sbuf_append(s, &c, 1); }
/* Decimal digits of v without printf: the history's numbers (an entry's
 * ts and seq, the acks) went through vsnprintf, 20 % of the instructions of
 * a publish with the history on (docs/PERFORMANCE.md). */
void ts_sbuf_put_u64(ts_sbuf_t *s, uint64_t v);
void ts_sbuf_put_i64(ts_sbuf_t *s, int64_t v);
void ts_sbuf_printf(ts_sbuf_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_sbuf_vprintf(ts_sbuf_t *s, const char *fmt, va_list ap);
/* Reserves n bytes at the end and returns where to write them; the length
 * grows by n at once (write before the next append). */
uint8_t *ts_sbuf_extend(ts_sbuf_t *s, size_t n);
void ts_sbuf_truncate(ts_sbuf_t *s, size_t len);
/* Returns new: the built buffer (an empty one if nothing was appended);
 * the builder is reset. */
ts_buf_t *ts_sbuf_finish(ts_sbuf_t *s);
/* Frees whatever was built. */
void ts_sbuf_free(ts_sbuf_t *s);

#endif
