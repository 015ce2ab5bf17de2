/* ts_idmap.h - objects that carry their own fixed-length key (an Engine.IO
 * session id, a socket id), found by that key. There is one such entry per
 * connection, so a slot is a single word: the object pointer, with 16 bits
 * of the key's hash in its unused top bits so that a probe rarely has to
 * read the object. A ts_map slot (key, value, hash, length) is three times
 * as big. */
#ifndef TS_IDMAP_H
#define TS_IDMAP_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_slice.h"

/* Where a key of variable length is in an object (ts_idmap_init_fn). */
typedef ts_slice_t (*ts_idmap_key_fn)(const void *obj);

typedef struct ts_idmap {
    uintptr_t *slots; /* private: 0 = empty, 1 = deleted, else tag << 48 | pointer */
    size_t cap;       /* private: power of two, or 0 */
    size_t count;     /* read-only: objects in the map */
    size_t used;      /* private: objects + deleted slots */
    size_t key_off;   /* read-only: where the key is in every object */
    size_t klen;      /* read-only: the length of every key (0: strings) */
    ts_idmap_key_fn key_fn; /* read-only: finds the key (ts_idmap_init_fn), or NULL */
} ts_idmap_t;

/* Every object put in the map holds its key, klen bytes, at key_off; with
 * klen 0, a NUL-terminated string of any length (a room name kept inside
 * its room). */
void ts_idmap_init(ts_idmap_t *m, size_t key_off, size_t klen);
/* Every object's key is what `fn` returns for it: bytes of any length at
 * any place in the object (a registry entry's session id among its other
 * ids). Such a map is read with ts_idmap_get_n and ts_idmap_del_n. */
void ts_idmap_init_fn(ts_idmap_t *m, ts_idmap_key_fn fn);
void ts_idmap_deinit(ts_idmap_t *m);
/* The object whose key is key[0..klen) (the string key, klen 0), or NULL. */
void *ts_idmap_get(const ts_idmap_t *m, const char *key);
/* The object whose key is key[0..len), or NULL; any kind of map. */
void *ts_idmap_get_n(const ts_idmap_t *m, const char *key, size_t len);
/* Inserts `obj` (borrowed: it must stay alive, with its key unchanged, while
 * in the map). Returns the object it replaces (same key), or NULL. */
void *ts_idmap_put(ts_idmap_t *m, void *obj);
/* Removes and returns the object with this key, or NULL. */
void *ts_idmap_del(ts_idmap_t *m, const char *key);
void *ts_idmap_del_n(ts_idmap_t *m, const char *key, size_t len);
/* Iteration: for (size_t i = 0; ts_idmap_next(m, &i, &obj);) ... Removing
 * the current object during iteration is allowed; inserting is not. */
int ts_idmap_next(const ts_idmap_t *m, size_t *iter, void **out);

#endif
