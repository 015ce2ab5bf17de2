/* ts_map.h - string-keyed hash map (open addressing, linear probing).
 * The map borrows its keys: a key must live as long as its entry, which
 * is natural when the key is a field of the value (a sid, a room name). */
#ifndef TS_MAP_H
#define TS_MAP_H
#include <stddef.h>
#include <stdint.h>

/* 24 bytes: maps keyed by session and socket ids have an entry per
 * connection, so the slot size is part of every connection's cost. Keys are
 * limited to 4 GiB, which no caller comes near. */
typedef struct ts_map_entry {
    const char *key; /* NULL = empty slot; TS_MAP_TOMB = deleted */
    void *val;
    uint32_t hash;   /* of the key (32 bits are plenty to skip memcmp) */
    uint32_t klen;
} ts_map_entry_t;

typedef struct ts_map {
    ts_map_entry_t *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count; /* live entries */
    size_t used;  /* live + tombstones */
} ts_map_t;

#define TS_MAP_INIT {NULL, 0, 0, 0}

void ts_map_deinit(ts_map_t *m);
/* Returns the value or NULL. */
void *ts_map_get(const ts_map_t *m, const char *key, size_t klen);
/* Inserts or replaces; borrows `key`. Returns the previous value or NULL. */
void *ts_map_put(ts_map_t *m, const char *key, size_t klen, void *val);
/* Removes; returns the removed value or NULL. */
void *ts_map_del(ts_map_t *m, const char *key, size_t klen);
/* Iteration: for (size_t i = 0; ts_map_next(m, &i, &e);) ... Removing the
 * current entry during iteration is allowed; inserting is not. */
int ts_map_next(const ts_map_t *m, size_t *iter, ts_map_entry_t **out);

#endif
