/* idmap.c - open addressing over one-word slots: the object pointer in the
 * low 48 bits (user-space addresses fit), 16 bits of the key's hash above
 * it. Linear probing, tombstones, growth at 3/4 as in map.c. */
#include "core/ts_idmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"

#define EMPTY ((uintptr_t)0)
#define TOMB ((uintptr_t)1)
#define PTR_BITS 48
#define PTR_MASK (((uintptr_t)1 << PTR_BITS) - 1)

static uint64_t hash_key(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The slot's tag: the hash's top 16 bits (the low bits pick the slot). */
static uintptr_t tag_of(uint64_t h) { return (uintptr_t)(h >> 48) << PTR_BITS; }
static void *obj_of(uintptr_t slot) { return (void *)(slot & PTR_MASK); }
/* The object's key: found by key_fn, or klen bytes at key_off, or (klen 0)
 * a NUL-terminated string there. */
static ts_slice_t key_of(const ts_idmap_t *m, const void *obj) {
    if (m->key_fn) return m->key_fn(obj);
    const char *k = (const char *)obj + m->key_off;
    return ts_slice(k, m->klen ? m->klen : strlen(k));
}
static int same_key(const ts_idmap_t *m, const void *obj, const char *key, size_t len) {
    if (m->klen) return memcmp((const char *)obj + m->key_off, key, len) == 0;
    ts_slice_t k = key_of(m, obj);
    return k.len == len && memcmp(k.p, key, len) == 0;
}

void ts_idmap_init(ts_idmap_t *m, size_t key_off, size_t klen) {
    memset(m, 0, sizeof(*m));
    m->key_off = key_off;
    m->klen = klen;
}

void ts_idmap_init_fn(ts_idmap_t *m, ts_idmap_key_fn fn) {
    memset(m, 0, sizeof(*m));
    m->key_fn = fn;
}

void ts_idmap_deinit(ts_idmap_t *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = m->used = 0;
}

/* Index of the slot holding `key`, or of the empty slot ending its probe. */
static size_t find(const ts_idmap_t *m, const char *key, size_t len, uint64_t h) {
    size_t mask = m->cap - 1;
    uintptr_t tag = tag_of(h);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uintptr_t s = m->slots[i];
        if (s == EMPTY) return i;
        if (s != TOMB && (s & ~PTR_MASK) == tag && same_key(m, obj_of(s), key, len))
            return i;
    }
}

static void grow(ts_idmap_t *m) {
    size_t ncap = m->cap ? m->cap * 2 : 16;
    if (m->count * 4 < m->cap) ncap = m->cap; /* mostly tombstones: rehash at this size */
    uintptr_t *old = m->slots;
    size_t ocap = m->cap;
    m->slots = ts_xcalloc(ncap, sizeof(*m->slots));
    m->cap = ncap;
    m->used = m->count;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i] == EMPTY || old[i] == TOMB) continue;
        ts_slice_t k = key_of(m, obj_of(old[i]));
        uint64_t h = hash_key((const char *)k.p, k.len);
        size_t j = h & (ncap - 1);
        while (m->slots[j] != EMPTY) j = (j + 1) & (ncap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void *ts_idmap_get_n(const ts_idmap_t *m, const char *key, size_t len) {
    if (!m->cap || (m->klen && len != m->klen)) return NULL;
    uintptr_t s = m->slots[find(m, key, len, hash_key(key, len))];
    return s == EMPTY ? NULL : obj_of(s);
}

/* The length of a key passed without one (a map without key_fn). */
static size_t len_of(const ts_idmap_t *m, const char *key) {
    return m->klen ? m->klen : strlen(key);
}

void *ts_idmap_get(const ts_idmap_t *m, const char *key) {
    return ts_idmap_get_n(m, key, len_of(m, key));
}

void *ts_idmap_put(ts_idmap_t *m, void *obj) {
    uintptr_t p = (uintptr_t)obj;
    ts_assert(p > TOMB && (p & ~PTR_MASK) == 0);
    ts_slice_t k = key_of(m, obj);
    const char *key = (const char *)k.p;
    uint64_t h = hash_key(key, k.len);
    if (m->cap) {
        size_t i = find(m, key, k.len, h);
        if (m->slots[i] != EMPTY) {
            void *prev = obj_of(m->slots[i]);
            m->slots[i] = tag_of(h) | p;
            return prev;
        }
    }
    if ((m->used + 1) * 4 >= m->cap * 3) grow(m);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i] != EMPTY && m->slots[i] != TOMB) i = (i + 1) & mask;
    if (m->slots[i] == EMPTY) m->used++;
    m->slots[i] = tag_of(h) | p;
    m->count++;
    return NULL;
}

void *ts_idmap_del_n(ts_idmap_t *m, const char *key, size_t len) {
    if (!m->cap || (m->klen && len != m->klen)) return NULL;
    size_t i = find(m, key, len, hash_key(key, len));
    if (m->slots[i] == EMPTY) return NULL;
    void *obj = obj_of(m->slots[i]);
    m->slots[i] = TOMB;
    m->count--;
    return obj;
}

void *ts_idmap_del(ts_idmap_t *m, const char *key) {
    return ts_idmap_del_n(m, key, len_of(m, key));
}

int ts_idmap_next(const ts_idmap_t *m, size_t *iter, void **out) {
    while (*iter < m->cap) {
        uintptr_t s = m->slots[(*iter)++];
        if (s != EMPTY && s != TOMB) {
            *out = obj_of(s);
            return 1;
        }
    }
    return 0;
}
