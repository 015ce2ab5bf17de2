/* ts_slice.h - a borrowed view into bytes; never NUL-terminated by contract. */
#ifndef TS_SLICE_H
#define TS_SLICE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ts_slice {
    const uint8_t *p;
    size_t len;
} ts_slice_t;

#define TS_SLICE_LIT(s) ((ts_slice_t){(const uint8_t *)(s), sizeof(s) - 1})

static inline ts_slice_t ts_slice(const void *p, size_t len) {
    return (ts_slice_t){(const uint8_t *)p, len};
}
static inline ts_slice_t ts_slice_str(const char *s) {
    return (ts_slice_t){(const uint8_t *)s, s ? strlen(s) : 0};
}
static inline int ts_slice_eq(ts_slice_t a, ts_slice_t b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
static inline int ts_slice_eq_str(ts_slice_t a, const char *s) {
    return ts_slice_eq(a, ts_slice_str(s));
}
/* Copies `s` into dst[0..cap) as a C string, cut at cap - 1 bytes (cap > 0).
 * Reads only s.p[0..len): a slice of peer input has no NUL after it, so
 * ts_strlcpy (which measures its source with strlen) must not be given one. */
static inline void ts_slice_cstr(char *dst, size_t cap, ts_slice_t s) {
    size_t k = s.len < cap ? s.len : cap - 1;
    if (k) memcpy(dst, s.p, k);
    dst[k] = '\0';
}

#endif
