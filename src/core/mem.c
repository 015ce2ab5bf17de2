/* mem.c - aborting allocators (see ts_mem.h for why aborting is allowed). */
#include "core/ts_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void oom(size_t n) {
    fprintf(stderr, "tabsyncd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ts_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *ts_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *ts_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

void *ts_xmemdup(const void *p, size_t n) {
    void *q = ts_xmalloc(n + 1);
    if (n) memcpy(q, p, n);
    ((char *)q)[n] = '\0';
    return q;
}

char *ts_xstrndup(const char *s, size_t n) { return ts_xmemdup(s, n); }

char *ts_xstrdup(const char *s) { return ts_xmemdup(s, strlen(s)); }

void ts__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "tabsyncd: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
