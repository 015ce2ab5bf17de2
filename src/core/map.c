/* map.c - open-addressing hash map with FNV-1a hashing and tombstones. */
#include "core/ts_map.h"

#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"

static const char tomb_key[] = "";
#define TS_MAP_TOMB tomb_key

static uint32_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)h; /* the low bits choose the slot, as they always did */
}

static ts_map_entry_t *find(const ts_map_t *m, const char *key, size_t klen, uint32_t h) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        ts_map_entry_t *e = &m->slots[i];
        if (!e->key) return NULL;
        if (e->key != TS_MAP_TOMB && e->hash == h && e->klen == klen &&
            memcmp(e->key, key, klen) == 0)
            return e;
    }
}

static void grow(ts_map_t *m) {
    size_t ncap = m->cap ? m->cap * 2 : 16;
    if (m->count * 4 < m->cap) ncap = m->cap; /* mostly tombstones: rehash in place size */
    ts_map_entry_t *old = m->slots;
    size_t ocap = m->cap;
    m->slots = ts_xcalloc(ncap, sizeof(*m->slots));
    m->cap = ncap;
    m->used = m->count;
    for (size_t i = 0; i < ocap; i++) {
        ts_map_entry_t *e = &old[i];
        if (!e->key || e->key == TS_MAP_TOMB) continue;
        size_t j = e->hash & (ncap - 1);
        while (m->slots[j].key) j = (j + 1) & (ncap - 1);
        m->slots[j] = *e;
    }
    free(old);
}

void ts_map_deinit(ts_map_t *m) {
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

void *ts_map_get(const ts_map_t *m, const char *key, size_t klen) {
    ts_map_entry_t *e = find(m, key, klen, hash_bytes(key, klen));
    return e ? e->val : NULL;
}

void *ts_map_put(ts_map_t *m, const char *key, size_t klen, void *val) {
    uint32_t h = hash_bytes(key, klen);
    ts_map_entry_t *e = find(m, key, klen, h);
    if (e) {
        void *prev = e->val;
        e->val = val;
        e->key = key;
        return prev;
    }
    if ((m->used + 1) * 4 >= m->cap * 3) grow(m);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TS_MAP_TOMB) i = (i + 1) & mask;
    if (!m->slots[i].key) m->used++;
    m->slots[i] = (ts_map_entry_t){key, val, h, (uint32_t)klen};
    m->count++;
    return NULL;
}

void *ts_map_del(ts_map_t *m, const char *key, size_t klen) {
    ts_map_entry_t *e = find(m, key, klen, hash_bytes(key, klen));
    if (!e) return NULL;
    void *v = e->val;
    e->key = TS_MAP_TOMB;
    e->val = NULL;
    m->count--;
    return v;
}

int ts_map_next(const ts_map_t *m, size_t *iter, ts_map_entry_t **out) {
    while (*iter < m->cap) {
        ts_map_entry_t *e = &m->slots[(*iter)++];
        if (e->key && e->key != TS_MAP_TOMB) {
            *out = e;
            return 1;
        }
    }
    return 0;
}
