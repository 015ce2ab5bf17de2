/* ts_mem.h - allocation that aborts on exhaustion, and assertions.
 * Aborting is acceptable in tabsyncd only because every size a peer can
 * influence is checked against a limit before we allocate. */
#ifndef TS_MEM_H
#define TS_MEM_H
#include <stddef.h>

void *ts_xmalloc(size_t n);
void *ts_xcalloc(size_t n, size_t size);
void *ts_xrealloc(void *p, size_t n);
char *ts_xstrdup(const char *s);
char *ts_xstrndup(const char *s, size_t n);
void *ts_xmemdup(const void *p, size_t n);

_Noreturn void ts__assert_fail(const char *expr, const char *file, int line);

/* Cheap invariant that stays on in release builds: its failure means memory
 * corruption is coming. Never use it on anything a peer or a config sent. */
#define ts_assert(x) ((x) ? (void)0 : ts__assert_fail(#x, __FILE__, __LINE__))

/* "Impossible, but recover anyway": asserts in debug builds, evaluates to
 * the condition in release so the caller takes the safe branch. */
#ifdef NDEBUG
#define TS_NEVER(x) (x)
#else
#define TS_NEVER(x) ((x) ? (ts__assert_fail(#x, __FILE__, __LINE__), 1) : 0)
#endif

#define TS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define TS_CONTAINER_OF(ptr, type, member)                                     \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
