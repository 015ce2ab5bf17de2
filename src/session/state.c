/* state.c - the shared-state engine of a session (ts_sess_state.h): expands
 * a change into primitive writes, runs each under its path's strategy,
 * yields the log entry (effects + meta) and folds such entries back.
 *
 * Copy-on-write: a committed document node is never modified in place. A
 * change works on shallow copies of the containers along the paths it
 * writes ("fresh" nodes, known by address) and swaps the new root in only
 * when it succeeds. So a refused change leaves the state exactly as it was
 * at the cost of one shallow copy per touched container (never the whole
 * document; but a write into an object of 20,000 members pays ~2.5 ms for
 * copying it), and outcomes may share subtrees with the document. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_util.h"
#include "core/ts_jptr.h"
#include "core/ts_map.h"
#include "core/ts_mem.h"
#include "session/ts_sess_state.h"

struct ts_sess_state {
    json_t *doc;  /* an object; committed nodes are immutable (see above) */
    json_t *meta; /* object: unit pointer -> entry {"v","h","a"[,"t"]}; entries immutable */
    size_t bytes; /* the compact JSON size of doc, exact */
    size_t meta_bytes; /* the same for meta: max_bytes bounds the two together, since
                        * deleted units keep their entries (docs/CONSISTENCY.md) */
};

#define PATH_CAP (TS_JPTR_MAX_LEN + 1)
#define DEFAULT_MAX_OPS 1000
/* Containers nested in the document, the root included. jansson parses at
 * most 2048 levels and recurses (copy, compare, dump, free) without any
 * limit, while move and copy could otherwise stack subtrees deeper with
 * every change: past this, the log's entries would no longer load, and far
 * past it the recursion would overflow the stack. */
#define MAX_NESTING 512
/* A change may measure (every write sizes what it replaces and what it
 * writes), copy and scan at most this many times max_bytes: without a
 * bound, 500 pairs of copy + remove of a 400 KiB subtree (a 34 KB message)
 * kept the loop busy for 8 s. Legitimate changes, even ones that move or
 * replace half the document, stay far below. */
#define WORK_FACTOR 8
#define SCAN_COST 4 /* work of looking at one metadata entry or set element */

/* ---- sizes: what a value adds to the compact text of its container ---- */

static int64_t vsize(const json_t *v) {
    return (int64_t)json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int64_t ksize(const char *k, size_t kl) {
    json_t *s = json_stringn_nocheck(k, kl);
    int64_t n = vsize(s);
    json_decref(s);
    return n;
}

/* The nesting of v (0 for a scalar), or more than limit if it exceeds it
 * (the walk stops there). */
static size_t vdepth(const json_t *v, size_t limit) {
    if (!json_is_object(v) && !json_is_array(v)) return 0;
    if (limit == 0) return 1;
    size_t d = 0, c; /* (not TS_MAX(d, vdepth(...)): it would walk twice per level) */
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && d < limit; i++)
            if ((c = vdepth(json_array_get(v, i), limit - 1)) > d) d = c;
    } else {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m) {
            if ((c = vdepth(m, limit - 1)) > d) d = c;
            if (d >= limit) break;
        }
    }
    return d + 1;
}

/* ---- the set of fresh nodes (created by the running transaction) ----
 * Open addressing over addresses. The set holds a reference to each node,
 * so no address is freed and reused while the transaction runs. */
typedef struct pset {
    json_t **slot;
    size_t cap, n;
} pset_t;

static size_t phash(const void *p, size_t mask) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & mask;
}

static int pset_has(const pset_t *s, const json_t *p) {
    if (!s->cap) return 0;
    for (size_t i = phash(p, s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == p) return 1;
        if (!s->slot[i]) return 0;
    }
}

static void pset_put(json_t **slot, size_t cap, json_t *p) {
    size_t i = phash(p, cap - 1);
    while (slot[i]) i = (i + 1) & (cap - 1);
    slot[i] = p;
}

static void pset_add(pset_t *s, json_t *p) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 32;
        json_t **ns = ts_xcalloc(ncap, sizeof *ns);
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) pset_put(ns, ncap, s->slot[i]);
        free(s->slot);
        s->slot = ns;
        s->cap = ncap;
    }
    pset_put(s->slot, s->cap, json_incref(p));
    s->n++;
}

static void pset_clear(pset_t *s) {
    for (size_t i = 0; i < s->cap; i++) json_decref(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* ---- transactions over the document and the metadata ---- */

typedef struct txn {
    ts_sess_state_t *st;
    json_t *doc, *meta; /* working versions: st's until first written, then owned copies */
    int doc_own, meta_own;
    pset_t fresh;
    int64_t dbytes; /* size change of the document so far */
    int64_t dmeta;  /* and of the metadata */
    uint64_t work;  /* bytes measured, plus entries and elements scanned (see WORK_FACTOR) */
} txn_t;

/* The size of v, counted as work. */
static int64_t tsize(txn_t *t, const json_t *v) {
    int64_t n = vsize(v);
    t->work += (uint64_t)n;
    return n;
}

static void txn_begin(txn_t *t, ts_sess_state_t *st) {
    memset(t, 0, sizeof *t);
    t->st = st;
    t->doc = st->doc;
    t->meta = st->meta;
}

static void txn_end(txn_t *t, int commit) {
    ts_sess_state_t *st = t->st;
    if (commit) {
        if (t->doc_own) {
            json_decref(st->doc);
            st->doc = t->doc;
        }
        if (t->meta_own) {
            json_decref(st->meta);
            st->meta = t->meta;
        }
        st->bytes = (size_t)((int64_t)st->bytes + t->dbytes);
        st->meta_bytes = (size_t)((int64_t)st->meta_bytes + t->dmeta);
#if !defined(NDEBUG) || defined(TS_FUZZING)
        ts_assert(st->bytes == (size_t)vsize(st->doc) && st->meta_bytes == (size_t)vsize(st->meta));
#endif
    } else {
        if (t->doc_own) json_decref(t->doc);
        if (t->meta_own) json_decref(t->meta);
    }
    pset_clear(&t->fresh);
    t->doc_own = t->meta_own = 0;
}

static json_t *fresh(txn_t *t, json_t *v) {
    if (json_is_object(v) || json_is_array(v)) pset_add(&t->fresh, v);
    return v;
}

static json_t *own_root(txn_t *t) {
    if (!pset_has(&t->fresh, t->doc)) {
        json_t *c = fresh(t, json_copy(t->doc));
        if (t->doc_own) json_decref(t->doc);
        t->doc = c;
        t->doc_own = 1;
    }
    return t->doc;
}

/* Replaces the root; `excl`: v is the transaction's alone (else shared). */
static void root_set(txn_t *t, json_t *v /* takes */, int excl) {
    t->dbytes += tsize(t, v) - tsize(t, t->doc);
    if (t->doc_own) json_decref(t->doc);
    t->doc = excl ? fresh(t, v) : v;
    t->doc_own = 1;
}

/* Mutations of owned containers, each keeping dbytes exact. */
static void obj_put(txn_t *t, json_t *o, const char *k, size_t kl, json_t *v /* takes */) {
    json_t *old = json_object_getn(o, k, kl);
    if (old)
        t->dbytes += tsize(t, v) - tsize(t, old);
    else
        t->dbytes += ksize(k, kl) + 1 + tsize(t, v) + (json_object_size(o) ? 1 : 0);
    json_object_setn_new_nocheck(o, k, kl, v);
}

static void obj_del(txn_t *t, json_t *o, const char *k, size_t kl) {
    json_t *old = json_object_getn(o, k, kl);
    if (!old) return;
    t->dbytes -= ksize(k, kl) + 1 + tsize(t, old) + (json_object_size(o) > 1 ? 1 : 0);
    json_object_deln(o, k, kl);
}

static void arr_insert(txn_t *t, json_t *a, size_t i, json_t *v /* takes */) {
    t->dbytes += tsize(t, v) + (json_array_size(a) ? 1 : 0);
    json_array_insert_new(a, i, v);
}

static void arr_set(txn_t *t, json_t *a, size_t i, json_t *v /* takes */) {
    t->dbytes += tsize(t, v) - tsize(t, json_array_get(a, i));
    json_array_set_new(a, i, v);
}

static void arr_del(txn_t *t, json_t *a, size_t i) {
    t->dbytes -= tsize(t, json_array_get(a, i)) + (json_array_size(a) > 1 ? 1 : 0);
    json_array_remove(a, i);
}

/* The child `k` of the owned container c, made owned (a shared child is
 * copied and linked in its place). Absent: a new object when `create`
 * (c an object), else NULL; NULL too for a scalar or a bad index. */
static json_t *own_child(txn_t *t, json_t *c, const char *k, size_t kl, int create) {
    json_t *child;
    size_t idx = 0;
    if (json_is_object(c)) {
        child = json_object_getn(c, k, kl);
        if (!child) {
            if (!create) return NULL;
            child = fresh(t, json_object());
            obj_put(t, c, k, kl, child);
            return child;
        }
    } else if (json_is_array(c)) {
        if (ts_jptr_index(k, kl, json_array_size(c), 0, &idx) != 0) return NULL;
        child = json_array_get(c, idx);
    } else {
        return NULL;
    }
    if (!json_is_object(child) && !json_is_array(child)) return NULL;
    if (pset_has(&t->fresh, child)) return child;
    json_t *copy = fresh(t, json_copy(child));
    if (json_is_object(c))
        json_object_setn_new_nocheck(c, k, kl, copy);
    else
        json_array_set_new(c, idx, copy);
    return copy;
}

/* The owned container at the first n segments of p (see own_child). */
static json_t *own_path(txn_t *t, const ts_jptr_t *p, size_t n, int create) {
    json_t *cur = own_root(t);
    for (size_t i = 0; i < n && cur; i++)
        cur = own_child(t, cur, ts_jptr_seg(p, i), p->len[i], create);
    return cur;
}

/* A value for a second place in the document: committed nodes never
 * change, so they are shared; the change's own (fresh) containers are
 * copied, down to the committed nodes they hold. Returns new; the result
 * is exclusively the caller's iff it is not v itself. */
static json_t *copy_value(const txn_t *t, json_t *v) {
    if (!pset_has(&t->fresh, v)) return json_incref(v);
    json_t *c = json_copy(v);
    if (json_is_object(c)) {
        const char *k;
        size_t kl;
        json_t *m;
        void *tmp;
        json_object_keylen_foreach_safe(c, tmp, k, kl, m) {
            if (pset_has(&t->fresh, m)) json_object_setn_new_nocheck(c, k, kl, copy_value(t, m));
        }
    } else {
        for (size_t i = 0; i < json_array_size(c); i++) {
            json_t *m = json_array_get(c, i);
            if (pset_has(&t->fresh, m)) json_array_set_new(c, i, copy_value(t, m));
        }
    }
    return c;
}

/* Sets child k of the owned container c: an object member, or the array
 * element at index idx (replace) / before idx (insert). */
static void put_child(txn_t *t, json_t *c, const char *k, size_t kl, size_t idx, int insert,
                      json_t *v /* takes */) {
    if (json_is_object(c))
        obj_put(t, c, k, kl, v);
    else if (insert)
        arr_insert(t, c, idx, v);
    else
        arr_set(t, c, idx, v);
}

static void own_meta(txn_t *t) {
    if (!t->meta_own) {
        t->meta = json_copy(t->st->meta);
        t->meta_own = 1;
    }
}

/* Replays one metadata item: drops every entry strictly below u, sets u.
 * O(#meta) per write: a scan of the map (a sorted index would make the
 * "below u" and overlap queries logarithmic if sessions grow many units). */
static void meta_write(txn_t *t, const char *u, size_t ulen, json_t *entry /* takes */) {
    own_meta(t);
    t->work += SCAN_COST * json_object_size(t->meta);
    const char *key;
    size_t kl;
    json_t *v;
    void *tmp;
    json_object_keylen_foreach_safe(t->meta, tmp, key, kl, v) {
        if (kl > ulen && ts_jptr_is_prefix(u, ulen, key, kl)) {
            t->dmeta -= ksize(key, kl) + 1 + tsize(t, v) + (json_object_size(t->meta) > 1);
            json_object_deln(t->meta, key, kl);
        }
    }
    json_t *old = json_object_getn(t->meta, u, ulen);
    if (old)
        t->dmeta += tsize(t, entry) - tsize(t, old);
    else
        t->dmeta += ksize(u, ulen) + 1 + tsize(t, entry) + (json_object_size(t->meta) > 0);
    json_object_setn_new_nocheck(t->meta, u, ulen, entry);
}

/* ---- metadata entries ---- */

static uint64_t entry_u64(const json_t *e, const char *k) {
    return (uint64_t)json_integer_value(json_object_get(e, k));
}

static const char *entry_actor(const json_t *e) {
    const char *a = json_string_value(json_object_get(e, "a"));
    return a ? a : "";
}

/* NULL if m is a well-formed entry, else what is wrong with it. */
static const char *entry_check(const json_t *m) {
    if (!json_is_object(m)) return "is not an object";
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)m, k, v) {
        if (strcmp(k, "v") == 0 || strcmp(k, "h") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return "has a v or h that is not a non-negative integer";
        } else if (strcmp(k, "a") == 0) {
            if (!json_is_string(v)) return "has an actor (a) that is not a string";
        } else if (strcmp(k, "t") == 0) {
            if (!json_is_object(v)) return "has set tags (t) that are not an object";
            const char *ek;
            json_t *tags;
            json_object_foreach(v, ek, tags) {
                if (!json_is_array(tags)) return "has set tags (t) that are not arrays";
                size_t i;
                json_t *tag;
                json_array_foreach(tags, i, tag) {
                    if (!json_is_integer(tag) || json_integer_value(tag) < 0)
                        return "has a set tag that is not a non-negative integer";
                }
            }
        } else {
            return "has an unknown member (entries have v, h, a and t)";
        }
    }
    if (!json_object_get(m, "v") || !json_object_get(m, "h") || !json_object_get(m, "a"))
        return "lacks v, h or a";
    return NULL;
}

/* ---- RFC 6902 equality: numbers compare by value ---- */

static int jequal(const json_t *a, const json_t *b) {
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!jequal(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        size_t kl;
        json_t *v;
        json_object_keylen_foreach((json_t *)a, k, kl, v) {
            json_t *w = json_object_getn(b, k, kl);
            if (!w || !jequal(v, w)) return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

/* ---- applying a change ---- */

typedef enum wkind { W_ADD, W_REPLACE, W_REMOVE, W_INCR, W_SADD, W_SREM } wkind_t;

typedef struct unit_rec {
    char *u;
    size_t len;
    int applied; /* some write to it was applied (else all were superseded) */
} unit_rec_t;

typedef struct applier {
    txn_t t;
    const ts_sess_rules_t *rules; /* NULL: every path lww, unit = the path */
    const ts_sess_state_ctx_t *ctx;
    const char *actor;
    json_t *actor_js;
    ts_sess_state_outcome_t *out;
    size_t max_ops, writes;
    char where[40]; /* "op 2 (replace)", "merge" or "" */
    char **paths;   /* written paths (resolved), first-write order */
    size_t npaths, cappaths;
    unit_rec_t *units; /* units written, first-write order */
    size_t nunits, capunits;
    ts_map_t umap;     /* unit -> index + 1 in units */
    json_t *meta_items; /* the outcome's meta */
    json_t *conflicts;  /* unit -> ver of conflicting entries, or NULL */
    char mpath[PATH_CAP]; /* the merge patch's current path */
    size_t mlen;
} applier_t;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int refuse(applier_t *a, const char *code, int rc, const char *fmt, ...) {
    ts_sess_state_outcome_t *o = a->out;
    snprintf(o->code, sizeof o->code, "%s", code);
    size_t k = 0, cap = sizeof o->why;
    if (a->where[0]) {
        k = strlen(a->where);
        memcpy(o->why, a->where, k);
        memcpy(o->why + k, ": ", 3);
        k += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->why + k, cap - k, fmt, ap);
    va_end(ap);
    ts_str_one_line(o->why);
    return rc;
}

static void note_path(applier_t *a, const char *p, size_t len) {
    if (a->npaths == a->cappaths) {
        a->cappaths = a->cappaths ? a->cappaths * 2 : 8;
        a->paths = ts_xrealloc(a->paths, a->cappaths * sizeof *a->paths);
    }
    a->paths[a->npaths++] = ts_xstrndup(p, len);
}

static void note_unit(applier_t *a, const char *u, size_t len, int applied) {
    size_t i = (size_t)(uintptr_t)ts_map_get(&a->umap, u, len);
    if (i) {
        a->units[i - 1].applied |= applied;
        return;
    }
    if (a->nunits == a->capunits) {
        a->capunits = a->capunits ? a->capunits * 2 : 8;
        a->units = ts_xrealloc(a->units, a->capunits * sizeof *a->units);
    }
    unit_rec_t *r = &a->units[a->nunits++];
    r->u = ts_xstrndup(u, len);
    r->len = len;
    r->applied = applied;
    ts_map_put(&a->umap, r->u, len, (void *)(uintptr_t)a->nunits);
}

/* Appends {"u","m"} to the outcome's meta; a repeat of the last unit
 * replaces it (replaying both equals replaying the second). */
static void note_meta(applier_t *a, const char *u, size_t ulen, json_t *entry) {
    size_t n = json_array_size(a->meta_items);
    json_t *last = n ? json_array_get(a->meta_items, n - 1) : NULL;
    json_t *lu = last ? json_object_get(last, "u") : NULL;
    if (lu && json_string_length(lu) == ulen && memcmp(json_string_value(lu), u, ulen) == 0) {
        json_object_set(last, "m", entry);
        return;
    }
    json_t *item = json_object();
    json_object_set_new(item, "u", json_stringn_nocheck(u, ulen));
    json_object_set(item, "m", entry);
    json_array_append_new(a->meta_items, item);
}

/* lww: 1 if an entry overlapping the unit was written by a greater
 * (hlc, actor) than this change. */
static int superseded(applier_t *a, const char *u, size_t ulen) {
    a->t.work += SCAN_COST * json_object_size(a->t.meta);
    const char *key;
    size_t kl;
    json_t *e;
    json_object_keylen_foreach(a->t.meta, key, kl, e) {
        if (!ts_jptr_overlap(u, ulen, key, kl)) continue;
        uint64_t h = entry_u64(e, "h");
        if (h > a->ctx->hlc || (h == a->ctx->hlc && strcmp(entry_actor(e), a->actor) > 0))
            return 1;
    }
    return 0;
}

/* version: records every entry overlapping the unit that another actor
 * wrote after the change's base. */
static void check_version(applier_t *a, const char *u, size_t ulen) {
    a->t.work += SCAN_COST * json_object_size(a->t.meta);
    const char *key;
    size_t kl;
    json_t *e;
    json_object_keylen_foreach(a->t.meta, key, kl, e) {
        if (!ts_jptr_overlap(u, ulen, key, kl)) continue;
        uint64_t v = entry_u64(e, "v");
        if (v <= a->ctx->base || strcmp(entry_actor(e), a->actor) == 0) continue;
        if (!a->conflicts) a->conflicts = json_object();
        if (!json_object_getn(a->conflicts, key, kl))
            json_object_setn_new_nocheck(a->conflicts, key, kl, json_integer((json_int_t)v));
    }
}

static int strategy_check(applier_t *a, wkind_t kind, ts_sess_strategy_t s, const char *path,
                          const char *unit, int at_unit) {
    const char *ms = "strategy_mismatch";
    if (kind == W_INCR || kind == W_SADD || kind == W_SREM) {
        ts_sess_strategy_t want = kind == W_INCR ? TS_SESS_ST_COUNTER : TS_SESS_ST_SET;
        const char *op = kind == W_INCR ? "incr" : kind == W_SADD ? "sadd" : "srem";
        if (s == want && at_unit) return 0;
        if (s == want)
            return refuse(a, ms, TS_EPROTO, "%.80s is inside the %s %.80s: %s the %s itself",
                          path, ts_sess_strategy_name(s), unit, op, ts_sess_strategy_name(s));
        return refuse(a, ms, TS_EPROTO, "%.80s is not a %s (its strategy is %s)", path,
                      ts_sess_strategy_name(want), ts_sess_strategy_name(s));
    }
    if (s != TS_SESS_ST_COUNTER && s != TS_SESS_ST_SET) return 0;
    if (kind == W_REMOVE && at_unit) return 0;
    const char *use = s == TS_SESS_ST_COUNTER ? "{op:\"incr\"}" : "{op:\"sadd\"} or {op:\"srem\"}";
    if (at_unit)
        return refuse(a, ms, TS_EPROTO, "path %.80s is a %s: use %s (remove resets it)", path,
                      ts_sess_strategy_name(s), use);
    return refuse(a, ms, TS_EPROTO, "path %.80s is inside the %s %.80s: use %s on it", path,
                  ts_sess_strategy_name(s), unit, use);
}

static size_t find_elem(txn_t *t, const json_t *arr, const json_t *v, const char *key) {
    t->work += SCAN_COST * json_array_size(arr);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = json_array_get(arr, i);
        if (!json_equal(e, (json_t *)v)) continue; /* cheap filter: equal keys => equal */
        char *ek = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        int same = ek && strcmp(ek, key) == 0;
        free(ek);
        if (same) return i;
    }
    return SIZE_MAX;
}

/* sadd / srem on the set at p (cur: its current value, an array or NULL).
 * Returns new: the unit's tags after the operation. */
static json_t *set_op(applier_t *a, wkind_t kind, const ts_jptr_t *p, json_t *cur,
                      const json_t *value, const char *unit, size_t ulen) {
    txn_t *t = &a->t;
    size_t n = p->n;
    const char *last = ts_jptr_seg(p, n - 1);
    size_t ll = p->len[n - 1];
    /* Elements are told apart by their compact text with sorted keys. */
    char *key = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    size_t klen = strlen(key);
    json_t *old = json_object_getn(t->meta, unit, ulen);
    json_t *ot = old ? json_object_get(old, "t") : NULL;
    json_t *nt = json_is_object(ot) ? json_copy(ot) : json_object();
    t->work += SCAN_COST * json_object_size(nt);
    json_t *tags = json_object_getn(nt, key, klen);
    json_t *arr = NULL;
    if (cur) {
        arr = own_child(t, own_path(t, p, n - 1, 0), last, ll, 0);
    } else if (kind == W_SADD) {
        arr = fresh(t, json_array());
        obj_put(t, own_path(t, p, n - 1, 1), last, ll, arr);
    }
    if (kind == W_SADD) {
        if (find_elem(t, arr, value, key) == SIZE_MAX)
            arr_insert(t, arr, json_array_size(arr), fresh(t, json_deep_copy(value)));
        json_t *nts = tags ? json_copy(tags) : json_array();
        size_t i;
        json_t *tag;
        int have = 0;
        json_array_foreach(nts, i, tag) have |= (uint64_t)json_integer_value(tag) == a->ctx->ver;
        if (!have) json_array_append_new(nts, json_integer((json_int_t)a->ctx->ver));
        json_object_setn_new_nocheck(nt, key, klen, nts);
    } else {
        /* Tags the change's base has seen go; an element without recorded
         * tags counts as tag 0. Later (concurrent) adds keep it. */
        json_t *keep = json_array();
        size_t i;
        json_t *tag;
        if (a->ctx->has_base && tags) {
            json_array_foreach(tags, i, tag) {
                if ((uint64_t)json_integer_value(tag) > a->ctx->base)
                    json_array_append(keep, tag);
            }
        }
        if (json_array_size(keep)) {
            json_object_setn_new_nocheck(nt, key, klen, keep);
        } else {
            json_decref(keep);
            json_object_deln(nt, key, klen);
            size_t at;
            while (arr && (at = find_elem(t, arr, value, key)) != SIZE_MAX) arr_del(t, arr, at);
        }
    }
    free(key);
    return nt;
}

/* The new counter value, or NULL with the refusal set (*rc). */
static json_t *incr_value(applier_t *a, const char *path, const json_t *cur, const json_t *by,
                          int *rc) {
    if (!cur) return json_deep_copy(by);
    if (!json_is_number(cur)) {
        *rc = refuse(a, "type_mismatch", TS_EPROTO, "%.80s holds a %s, not a number", path,
                     json_is_string(cur) ? "string" : json_is_object(cur) ? "object"
                     : json_is_array(cur) ? "array" : json_is_null(cur) ? "null" : "boolean");
        return NULL;
    }
    if (json_is_integer(cur) && json_is_integer(by)) {
        long long r;
        if (__builtin_add_overflow(json_integer_value(cur), json_integer_value(by), &r)) {
            *rc = refuse(a, "counter_overflow", TS_EPROTO,
                         "%.80s + %lld leaves the 64-bit integer range", path,
                         (long long)json_integer_value(by));
            return NULL;
        }
        return json_integer((json_int_t)r);
    }
    double r = json_number_value(cur) + json_number_value(by);
    if (!isfinite(r)) {
        *rc = refuse(a, "counter_overflow", TS_EPROTO, "%.80s + %g is not a finite number", path,
                     json_number_value(by));
        return NULL;
    }
    return json_real(r);
}

#define ELEN(n) ((int)TS_MIN((size_t)(n), (size_t)80)) /* bound a %.*s path in messages */

/* Where a write lands, checked without changing anything: *cur (the value
 * there or NULL), *idx (array index), path (resolved: "-" becomes the
 * index). Fills err on a bad path. */
static void locate(const txn_t *t, wkind_t kind, const ts_jptr_t *p, char *path, size_t *plen,
                   json_t **cur, size_t *idx, char *err, size_t errlen) {
    size_t n = p->n, pl = ts_jptr_prefix_len(p, n ? n - 1 : 0);
    json_t *doc = t->doc;
    *cur = NULL;
    if (n == 0) {
        *cur = doc;
        if (kind == W_REMOVE) snprintf(err, errlen, "the document root cannot be removed");
        return;
    }
    const char *last = ts_jptr_seg(p, n - 1);
    size_t ll = p->len[n - 1];
    if (kind == W_ADD || kind == W_REPLACE || kind == W_REMOVE) {
        json_t *parent = ts_jptr_get(doc, p, n - 1);
        if (!parent && kind == W_ADD) {
            snprintf(err, errlen, "the parent %.*s does not exist", ELEN(pl), path);
        } else if (!parent) {
            snprintf(err, errlen, "%.80s does not exist", path);
        } else if (json_is_object(parent)) {
            *cur = json_object_getn(parent, last, ll);
            if (!*cur && kind != W_ADD) snprintf(err, errlen, "%.80s does not exist", path);
        } else if (json_is_array(parent)) {
            size_t size = json_array_size(parent);
            int r = ts_jptr_index(last, ll, size, kind == W_ADD, idx);
            if (r == TS_EPROTO)
                snprintf(err, errlen, "\"%.20s\" is not an index of the array %.*s", last,
                         ELEN(pl), path);
            else if (r != 0 && kind == W_ADD)
                snprintf(err, errlen, "index %.20s is past the end of the array %.*s (size %zu)",
                         last, ELEN(pl), path, size);
            else if (r != 0)
                snprintf(err, errlen, "%.80s does not exist", path);
            else if (*idx < size)
                *cur = json_array_get(parent, *idx);
            if (r == 0 && ll == 1 && last[0] == '-') {
                char num[24];
                size_t nl = (size_t)snprintf(num, sizeof num, "%zu", *idx), keep = *plen;
                *plen = pl;
                if (ts_jptr_append(path, plen, PATH_CAP, num, nl) != 0) *plen = keep;
                path[*plen] = '\0';
            }
        } else if (kind == W_ADD) {
            snprintf(err, errlen, "the parent %.*s is not an object or array", ELEN(pl), path);
        } else {
            snprintf(err, errlen, "%.80s does not exist", path);
        }
        return;
    }
    /* incr, sadd, srem: missing objects on the way will be created */
    json_t *node = doc;
    for (size_t i = 0; i < n && node; i++) {
        const char *s = ts_jptr_seg(p, i);
        size_t pi = ts_jptr_prefix_len(p, i);
        if (json_is_object(node)) {
            node = json_object_getn(node, s, p->len[i]);
        } else if (json_is_array(node)) {
            if (ts_jptr_index(s, p->len[i], json_array_size(node), 0, idx) != 0) {
                snprintf(err, errlen, "\"%.20s\" is not an index of the array %.*s", s,
                         ELEN(pi), path);
                return;
            }
            node = json_array_get(node, *idx);
        } else {
            snprintf(err, errlen, "%.*s is not an object or array", ELEN(pi), path);
            return;
        }
    }
    *cur = node;
}

/* One primitive write. `value` is borrowed; `excl`: it is exclusively the
 * change's (a copy), so the document may adopt it as a fresh node. */
static int write1(applier_t *a, wkind_t kind, const char *text, size_t tlen, json_t *value,
                  int excl, int *applied) {
    txn_t *t = &a->t;
    const ts_sess_state_ctx_t *ctx = a->ctx;
    *applied = 0;
    if (++a->writes > a->max_ops)
        return refuse(a, "too_large", TS_ETOOBIG, "the change makes more than %zu writes",
                      a->max_ops);
    ts_jptr_t p;
    const char *perr = "";
    int rc = ts_jptr_parse(&p, text, tlen, &perr);
    if (rc != 0) /* patch paths were checked: only a merge patch can get here */
        return refuse(a, "bad_change", TS_EPROTO, "the path %.80s %s", text, perr);
    size_t n = p.n, plen = tlen, idx = 0;
    char path[PATH_CAP], err[160] = "";
    memcpy(path, text, tlen);
    path[tlen] = '\0';
    json_t *cur;
    locate(t, kind, &p, path, &plen, &cur, &idx, err, sizeof err);

    char unit[PATH_CAP];
    ts_sess_strategy_t s = TS_SESS_ST_LWW;
    if (a->rules)
        s = ts_sess_rules_match(a->rules, path, unit, sizeof unit);
    else
        memcpy(unit, path, plen + 1);
    size_t ulen = strlen(unit);
    if ((rc = strategy_check(a, kind, s, path, unit, ulen == plen)) != 0) return rc;
    if (err[0]) return refuse(a, "bad_path", TS_EPROTO, "%s", err);
    json_t *nv = NULL;
    if ((kind == W_ADD || kind == W_REPLACE) && n == 0 && !json_is_object(value))
        return refuse(a, "type_mismatch", TS_EPROTO, "the document root must be an object");
    if ((kind == W_SADD || kind == W_SREM) && cur && !json_is_array(cur))
        return refuse(a, "type_mismatch", TS_EPROTO, "%.80s is not an array (a set)", path);
    if (kind == W_INCR && !(nv = incr_value(a, path, cur, value, &rc))) return rc;
    size_t at = n + (kind == W_SADD); /* containers around the new value */
    if ((kind == W_ADD || kind == W_REPLACE || kind == W_SADD) &&
        at + vdepth(value, MAX_NESTING - at) > MAX_NESTING)
        return refuse(a, "too_large", TS_ETOOBIG,
                      "the document would nest deeper than %d levels at %.80s", MAX_NESTING,
                      path);

    if (s == TS_SESS_ST_LWW && superseded(a, unit, ulen)) {
        json_decref(nv);
        note_unit(a, unit, ulen, 0);
        return 0;
    }
    if (s == TS_SESS_ST_VERSION) {
        if (!ctx->has_base) {
            json_decref(nv);
            return refuse(a, "base_required", TS_EPROTO,
                          "%.80s is under version control: send the base version you edited",
                          unit);
        }
        check_version(a, unit, ulen);
    }

    json_t *tags = NULL, *c;
    const char *last = n ? ts_jptr_seg(&p, n - 1) : "";
    size_t ll = n ? p.len[n - 1] : 0;
    switch (kind) {
    case W_ADD:
    case W_REPLACE:
        if (n == 0) {
            root_set(t, json_incref(value), excl);
            break;
        }
        if (excl) fresh(t, value);
        c = own_path(t, &p, n - 1, 0);
        if (TS_NEVER(!c)) return refuse(a, "bad_path", TS_EINTERNAL, "%.80s: lost", path);
        put_child(t, c, last, ll, idx, kind == W_ADD, json_incref(value));
        break;
    case W_REMOVE:
        c = own_path(t, &p, n - 1, 0);
        if (TS_NEVER(!c)) return refuse(a, "bad_path", TS_EINTERNAL, "%.80s: lost", path);
        if (json_is_object(c))
            obj_del(t, c, last, ll);
        else
            arr_del(t, c, idx);
        if (s == TS_SESS_ST_SET) tags = json_object();
        break;
    case W_INCR:
        c = own_path(t, &p, n - 1, 1);
        if (TS_NEVER(!c)) {
            json_decref(nv);
            return refuse(a, "bad_path", TS_EINTERNAL, "%.80s: lost", path);
        }
        put_child(t, c, last, ll, idx, 0, nv);
        break;
    case W_SADD:
    case W_SREM:
        tags = set_op(a, kind, &p, cur, value, unit, ulen);
        break;
    }
    json_t *entry = json_object();
    json_object_set_new(entry, "v", json_integer((json_int_t)ctx->ver));
    json_object_set_new(entry, "h", json_integer((json_int_t)ctx->hlc));
    json_object_set(entry, "a", a->actor_js);
    if (tags) json_object_set_new(entry, "t", tags);
    note_meta(a, unit, ulen, entry);
    meta_write(t, unit, ulen, entry);
    note_path(a, path, plen);
    note_unit(a, unit, ulen, 1);
    *applied = 1;
    /* Checked after every write, not only at the end: copies can double the
     * document with each operation. A state already over the limit (it was
     * lowered) may take changes that do not grow it. */
    const ts_sess_state_t *st = t->st;
    int64_t now = (int64_t)(st->bytes + st->meta_bytes) + t->dbytes + t->dmeta;
    size_t limit = TS_MAX(ctx->max_bytes, st->bytes + st->meta_bytes);
    if (ctx->max_bytes && now > (int64_t)limit)
        return refuse(a, "too_large", TS_ETOOBIG,
                      "the document and its bookkeeping would be %lld bytes (max_bytes %zu)",
                      (long long)now, ctx->max_bytes);
    if (ctx->max_bytes && t->work > (uint64_t)WORK_FACTOR * limit)
        return refuse(a, "too_large", TS_ETOOBIG,
                      "the change copies and rewrites too much (over %d times max_bytes); "
                      "split it",
                      WORK_FACTOR);
    return 0;
}

/* write1 taking `value` (a new reference or NULL). */
static int do_write(applier_t *a, wkind_t kind, const char *text, size_t tlen, json_t *value,
                    int excl, int *applied) {
    int dummy;
    int rc = write1(a, kind, text, tlen, value, excl, applied ? applied : &dummy);
    json_decref(value);
    return rc;
}

/* ---- JSON Patch (RFC 6902) and the three set/counter ops ---- */

enum { P_ADD, P_REMOVE, P_REPLACE, P_MOVE, P_COPY, P_TEST, P_INCR, P_SADD, P_SREM, P_COUNT_ };
static const char *const op_names[P_COUNT_] = {"add",  "remove", "replace", "move", "copy",
                                               "test", "incr",   "sadd",    "srem"};

static int patch_ptr(applier_t *a, const json_t *op, const char *member, ts_jptr_t *p,
                     const char **text, size_t *len) {
    json_t *v = json_object_get(op, member);
    if (!json_is_string(v))
        return refuse(a, "bad_patch", TS_EPROTO, "%s is missing or not a string", member);
    *text = json_string_value(v);
    *len = json_string_length(v);
    const char *why = "";
    if (ts_jptr_parse(p, *text, *len, &why) != 0)
        return refuse(a, "bad_patch", TS_EPROTO, "%s \"%.80s\" is not a JSON Pointer: it %s",
                      member, *text, why);
    return 0;
}

static int patch_move(applier_t *a, const char *path, size_t plen, const char *from,
                      size_t flen, json_t *v) {
    if (flen == plen && memcmp(from, path, plen) == 0) return 0; /* onto itself: no change */
    if (ts_jptr_is_prefix(from, flen, path, plen))
        return refuse(a, "bad_path", TS_EPROTO, "cannot move %.80s into its own child %.80s", from,
                      path);
    json_incref(v);
    int removed = 0, rc = do_write(a, W_REMOVE, from, flen, NULL, 0, &removed);
    if (rc != 0) {
        json_decref(v);
        return rc;
    }
    /* The removal applied: v left its place and may move as it is. It was
     * superseded: v stays there too, so the new place gets its own copy
     * (two places must never share a node the change may still modify). */
    int excl = 0;
    if (!removed) {
        json_t *copy = copy_value(&a->t, v);
        excl = copy != v;
        json_decref(v);
        v = copy;
    }
    return do_write(a, W_ADD, path, plen, v, excl, NULL);
}

static int patch_op(applier_t *a, const json_t *op, size_t no) {
    snprintf(a->where, sizeof a->where, "op %zu", no);
    if (!json_is_object(op)) return refuse(a, "bad_patch", TS_EPROTO, "not an object");
    const char *name = json_string_value(json_object_get(op, "op"));
    if (!name) return refuse(a, "bad_patch", TS_EPROTO, "\"op\" is missing or not a string");
    int k = 0;
    while (k < P_COUNT_ && strcmp(name, op_names[k]) != 0) k++;
    if (k == P_COUNT_)
        return refuse(a, "bad_patch", TS_EPROTO,
                      "unknown op \"%.20s\" (add, remove, replace, move, copy, test, incr, "
                      "sadd, srem)",
                      name);
    snprintf(a->where, sizeof a->where, "op %zu (%s)", no, op_names[k]);
    ts_jptr_t p;
    const char *path;
    size_t plen;
    int rc = patch_ptr(a, op, "path", &p, &path, &plen);
    if (rc != 0) return rc;
    json_t *value = json_object_get(op, "value");
    if (!value && k != P_REMOVE && k != P_MOVE && k != P_COPY)
        return refuse(a, "bad_patch", TS_EPROTO, "value is missing");
    if (k == P_INCR && !json_is_number(value))
        return refuse(a, "bad_patch", TS_EPROTO, "value must be a number");
    switch (k) {
    case P_ADD:
    case P_REPLACE:
        return do_write(a, k == P_ADD ? W_ADD : W_REPLACE, path, plen, json_deep_copy(value), 1,
                        NULL);
    case P_REMOVE:
        return do_write(a, W_REMOVE, path, plen, NULL, 0, NULL);
    case P_TEST: {
        json_t *cur = ts_jptr_get(a->t.doc, &p, p.n);
        if (!cur) return refuse(a, "test_failed", TS_EPROTO, "%.80s does not exist", path);
        if (!jequal(cur, value))
            return refuse(a, "test_failed", TS_EPROTO,
                          "the value at %.80s is not the tested value", path);
        return 0;
    }
    case P_MOVE:
    case P_COPY: {
        ts_jptr_t f;
        const char *from;
        size_t flen;
        if ((rc = patch_ptr(a, op, "from", &f, &from, &flen)) != 0) return rc;
        json_t *v = ts_jptr_get(a->t.doc, &f, f.n);
        if (!v) return refuse(a, "bad_path", TS_EPROTO, "from %.80s does not exist", from);
        if (k == P_COPY) {
            json_t *copy = copy_value(&a->t, v);
            return do_write(a, W_ADD, path, plen, copy, copy != v, NULL);
        }
        return patch_move(a, path, plen, from, flen, v);
    }
    default:
        return do_write(a, k == P_INCR ? W_INCR : k == P_SADD ? W_SADD : W_SREM, path, plen,
                        json_incref(value), 0, NULL);
    }
}

static int run_patch(applier_t *a, const json_t *ops) {
    if (!json_is_array(ops))
        return refuse(a, "bad_change", TS_EPROTO, "patch must be an array of operations");
    size_t n = json_array_size(ops);
    if (n > a->max_ops)
        return refuse(a, "too_large", TS_ETOOBIG, "the patch has %zu operations (at most %zu)",
                      n, a->max_ops);
    for (size_t i = 0; i < n; i++) {
        int rc = patch_op(a, json_array_get(ops, i), i + 1);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- JSON Merge Patch (RFC 7396) ---- */

/* The value a merge patch sets where it does not recurse: v with every
 * null object member removed, at any depth of objects (arrays are values:
 * taken as they are). */
static json_t *strip_nulls(const json_t *v) {
    if (!json_is_object(v)) return json_deep_copy(v);
    json_t *o = json_object();
    const char *k;
    size_t kl;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, k, kl, m) {
        if (!json_is_null(m)) json_object_setn_new_nocheck(o, k, kl, strip_nulls(m));
    }
    return o;
}

/* Merges `patch` into the object at a->mpath (which exists). */
/* A merge patch's null for a member that is not there: nothing to delete,
 * but under lww it is a write at (hlc, actor) all the same, kept in the
 * metadata (a tombstone) so that an older write coming later loses to it,
 * as "the greatest (hlc, client) wins" says. One node's clock never gives
 * a later write an older hlc; two nodes' clocks can (js history@3nodes'
 * checker: a write applied over a newer delete of an absent member). */
static int merge_absent(applier_t *a, const char *path, size_t plen) {
    char unit[PATH_CAP];
    ts_sess_strategy_t s = TS_SESS_ST_LWW;
    if (a->rules)
        s = ts_sess_rules_match(a->rules, path, unit, sizeof unit);
    else
        memcpy(unit, path, plen + 1);
    if (s != TS_SESS_ST_LWW) return 0; /* the other strategies have nothing to keep */
    size_t ulen = strlen(unit);
    if (++a->writes > a->max_ops)
        return refuse(a, "too_large", TS_ETOOBIG, "the change makes more than %zu writes",
                      a->max_ops);
    if (superseded(a, unit, ulen)) {
        note_unit(a, unit, ulen, 0);
        return 0;
    }
    json_t *entry = json_object();
    json_object_set_new(entry, "v", json_integer((json_int_t)a->ctx->ver));
    json_object_set_new(entry, "h", json_integer((json_int_t)a->ctx->hlc));
    json_object_set(entry, "a", a->actor_js);
    note_meta(a, unit, ulen, entry);
    meta_write(&a->t, unit, ulen, entry);
    note_unit(a, unit, ulen, 1);
    return 0;
}

static int run_merge(applier_t *a, const json_t *patch, size_t depth) {
    size_t base = a->mlen;
    const char *k;
    size_t kl;
    json_t *v;
    int rc = 0;
    json_object_keylen_foreach((json_t *)patch, k, kl, v) {
        a->mlen = base;
        a->mpath[base] = '\0';
        if (memchr(k, '\0', kl))
            return refuse(a, "bad_change", TS_EPROTO, "member names cannot contain a NUL byte");
        if (depth >= TS_JPTR_MAX_DEPTH || ts_jptr_append(a->mpath, &a->mlen, PATH_CAP, k, kl) != 0)
            return refuse(a, "bad_change", TS_EPROTO,
                          "the path %.60s/%.20s is too long (1024 bytes, 64 levels at most)",
                          a->mpath, k);
        json_t *cur = ts_jptr_get_text(a->t.doc, a->mpath, a->mlen);
        if (json_is_null(v))
            rc = cur ? do_write(a, W_REMOVE, a->mpath, a->mlen, NULL, 0, NULL)
                     : merge_absent(a, a->mpath, a->mlen);
        else if (json_is_object(v) && json_is_object(cur))
            rc = run_merge(a, v, depth + 1);
        else
            rc = do_write(a, W_ADD, a->mpath, a->mlen, strip_nulls(v), 1, NULL);
        if (rc != 0) return rc;
    }
    a->mlen = base;
    a->mpath[base] = '\0';
    return 0;
}

/* ---- the outcome ---- */

/* Length of the prefix of `path` that effects name: the first array on
 * the way from the root, or the whole path. */
static size_t lift(const json_t *doc, const char *path, size_t len) {
    ts_jptr_t p;
    if (ts_jptr_parse(&p, path, len, NULL) != 0) return len;
    const json_t *node = doc;
    for (size_t k = 0; k < p.n; k++) {
        if (json_is_array(node)) return ts_jptr_prefix_len(&p, k);
        if (!json_is_object(node)) break;
        node = json_object_getn(node, ts_jptr_seg(&p, k), p.len[k]);
        if (!node) break;
    }
    return len;
}

static json_t *build_effects(const applier_t *a, const json_t *doc) {
    json_t *eff = json_array();
    ts_map_t written = TS_MAP_INIT, done = TS_MAP_INIT;
    size_t *lens = ts_xcalloc(a->npaths + 1, sizeof *lens);
    for (size_t i = 0; i < a->npaths; i++) {
        lens[i] = lift(doc, a->paths[i], strlen(a->paths[i]));
        ts_map_put(&written, a->paths[i], lens[i], (void *)1);
    }
    for (size_t i = 0; i < a->npaths; i++) {
        const char *s = a->paths[i];
        size_t len = lens[i];
        ts_jptr_t p;
        if (ts_map_get(&done, s, len) || ts_jptr_parse(&p, s, len, NULL) != 0) continue;
        int covered = 0; /* an ancestor was written: its value includes this one */
        for (size_t k = 0; k < p.n && !covered; k++)
            covered = ts_map_get(&written, s, ts_jptr_prefix_len(&p, k)) != NULL;
        if (covered) continue;
        ts_map_put(&done, s, len, (void *)1);
        json_t *v = ts_jptr_get(doc, &p, p.n), *e = json_object();
        json_object_set_new(e, "op", json_string(v ? "set" : "del"));
        json_object_set_new(e, "path", json_stringn_nocheck(s, len));
        if (v) json_object_set(e, "value", v);
        json_array_append_new(eff, e);
    }
    free(lens);
    ts_map_deinit(&written);
    ts_map_deinit(&done);
    return eff;
}

static json_t *build_results(const applier_t *a, const json_t *doc) {
    json_t *res = json_array();
    for (size_t i = 0; i < a->nunits; i++) {
        const unit_rec_t *u = &a->units[i];
        json_t *r = json_object(), *v = ts_jptr_get_text(doc, u->u, u->len);
        json_object_set_new(r, "path", json_stringn_nocheck(u->u, u->len));
        json_object_set_new(r, "status", json_string(u->applied ? "applied" : "superseded"));
        if (v) json_object_set(r, "value", v);
        json_array_append_new(res, r);
    }
    return res;
}

/* The refusal of a change that touched units others wrote after its base. */
static int report_conflicts(applier_t *a, const json_t *doc) {
    json_t *list = json_array();
    const char *key, *first = NULL;
    size_t kl;
    json_t *ver;
    json_object_keylen_foreach(a->conflicts, key, kl, ver) {
        json_t *c = json_object(), *v = ts_jptr_get_text(doc, key, kl);
        json_object_set_new(c, "path", json_stringn_nocheck(key, kl));
        json_object_set(c, "ver", ver);
        if (v) json_object_set(c, "value", v);
        json_array_append_new(list, c);
        if (!first) first = key;
    }
    size_t n = json_array_size(list);
    json_t *fv = json_object_get(a->conflicts, first);
    a->where[0] = '\0';
    refuse(a, "conflict", TS_ECONFLICT, "%.80s changed at version %lld, after your base %llu%s",
           first, (long long)json_integer_value(fv), (unsigned long long)a->ctx->base,
           n > 1 ? " (and more: see conflicts)" : "");
    json_decref(a->out->conflicts);
    a->out->conflicts = list;
    return TS_ECONFLICT;
}

int ts_sess_state_apply(ts_sess_state_t *st, const ts_sess_rules_t *rules, json_t *change,
                        const ts_sess_state_ctx_t *ctx, ts_sess_state_outcome_t *out) {
    memset(out, 0, sizeof *out);
    applier_t *a = ts_xcalloc(1, sizeof *a);
    a->rules = rules;
    a->ctx = ctx;
    a->out = out;
    a->actor = ctx->actor ? ctx->actor : "";
    a->max_ops = ctx->max_ops ? ctx->max_ops : DEFAULT_MAX_OPS;
    a->meta_items = json_array();
    a->actor_js = json_string(a->actor);
    txn_begin(&a->t, st);
    json_t *merge = json_object_get(change, "merge"), *patch = json_object_get(change, "patch");
    int rc;
    if (!a->actor_js) {
        rc = refuse(a, "bad_change", TS_EPROTO, "the actor id is not valid UTF-8");
    } else if (!json_is_object(change) || !merge == !patch) {
        rc = refuse(a, "bad_change", TS_EPROTO,
                    merge ? "a change has merge or patch, not both"
                          : "a change is {\"merge\": object} or {\"patch\": [operations]}");
    } else if (merge && !json_is_object(merge)) {
        rc = refuse(a, "bad_change", TS_EPROTO, "merge must be an object (the document root is)");
    } else if (merge) {
        snprintf(a->where, sizeof a->where, "merge");
        rc = run_merge(a, merge, 0);
    } else {
        rc = run_patch(a, patch);
    }
    a->where[0] = '\0';
    if (a->conflicts) {
        /* A conflict explains whatever else failed after it (a stale base). */
        txn_end(&a->t, 0);
        memset(out->code, 0, sizeof out->code);
        rc = report_conflicts(a, st->doc);
    } else if (rc != 0) {
        txn_end(&a->t, 0);
    } else {
        txn_end(&a->t, 1);
        out->effects = build_effects(a, st->doc);
        out->results = build_results(a, st->doc);
        out->meta = a->meta_items;
        a->meta_items = NULL;
    }
    json_decref(a->meta_items);
    json_decref(a->actor_js);
    json_decref(a->conflicts);
    for (size_t i = 0; i < a->npaths; i++) free(a->paths[i]);
    for (size_t i = 0; i < a->nunits; i++) free(a->units[i].u);
    free(a->paths);
    free(a->units);
    ts_map_deinit(&a->umap);
    free(a);
    return rc;
}

void ts_sess_state_outcome_clear(ts_sess_state_outcome_t *out) {
    json_decref(out->effects);
    json_decref(out->meta);
    json_decref(out->results);
    json_decref(out->conflicts);
    memset(out, 0, sizeof *out);
}

/* ---- folding a logged change ---- */

static int fold_effect(txn_t *t, const json_t *e, size_t no, char *why, size_t whylen) {
    const char *op = json_string_value(json_object_get(e, "op"));
    json_t *jp = json_object_get(e, "path"), *v = json_object_get(e, "value");
    ts_jptr_t p;
    if (!op || !json_is_string(jp))
        return ts_errf(why, whylen, TS_EPROTO, "effect %zu: needs op and path (strings)", no);
    if (ts_jptr_parse(&p, json_string_value(jp), json_string_length(jp), NULL) != 0)
        return ts_errf(why, whylen, TS_EPROTO, "effect %zu: path is not a JSON Pointer", no);
    int set = strcmp(op, "set") == 0;
    if (!set && strcmp(op, "del") != 0)
        return ts_errf(why, whylen, TS_EPROTO, "effect %zu: op must be set or del", no);
    if (set && !v) return ts_errf(why, whylen, TS_EPROTO, "effect %zu: set needs a value", no);
    if (p.n == 0) {
        if (!set || !json_is_object(v))
            return ts_errf(why, whylen, TS_EPROTO,
                           "effect %zu: the root can only be set to an object", no);
        root_set(t, json_deep_copy(v), 1);
        return 0;
    }
    /* Effects never point inside an array (apply names the array). */
    const json_t *node = t->doc;
    for (size_t k = 0; k + 1 < p.n && node; k++) {
        node = json_object_getn(node, ts_jptr_seg(&p, k), p.len[k]);
        if (node && !json_is_object(node)) {
            if (!set && !json_is_array(node)) return 0; /* under a scalar: absent */
            return ts_errf(why, whylen, TS_EPROTO, "effect %zu: %.*s is not an object", no,
                           ELEN(p.end[k]), json_string_value(jp));
        }
    }
    const char *last = ts_jptr_seg(&p, p.n - 1);
    size_t ll = p.len[p.n - 1];
    if (set) {
        obj_put(t, own_path(t, &p, p.n - 1, 1), last, ll, fresh(t, json_deep_copy(v)));
    } else if (node && json_object_getn(node, last, ll)) {
        obj_del(t, own_path(t, &p, p.n - 1, 0), last, ll);
    }
    return 0;
}

int ts_sess_state_fold(ts_sess_state_t *st, json_t *effects, json_t *meta, char *why,
                       size_t whylen) {
    if (!json_is_array(effects) || !json_is_array(meta))
        return ts_errf(why, whylen, TS_EPROTO, "effects and meta must be arrays");
    txn_t t;
    txn_begin(&t, st);
    int rc = 0;
    size_t i;
    json_t *x;
    json_array_foreach(effects, i, x) {
        if (!json_is_object(x)) {
            rc = ts_errf(why, whylen, TS_EPROTO, "effect %zu: not an object", i + 1);
            break;
        }
        if ((rc = fold_effect(&t, x, i + 1, why, whylen)) != 0) break;
    }
    if (rc == 0) {
        json_array_foreach(meta, i, x) {
            json_t *u = json_object_get(x, "u"), *m = json_object_get(x, "m");
            ts_jptr_t p;
            const char *bad;
            if (!json_is_string(u) || !m) {
                rc = ts_errf(why, whylen, TS_EPROTO, "meta %zu: needs u (a string) and m", i + 1);
            } else if (ts_jptr_parse(&p, json_string_value(u), json_string_length(u), NULL)) {
                rc = ts_errf(why, whylen, TS_EPROTO, "meta %zu: u is not a JSON Pointer", i + 1);
            } else if ((bad = entry_check(m)) != NULL) {
                rc = ts_errf(why, whylen, TS_EPROTO, "meta %zu: the entry %s", i + 1, bad);
            } else {
                meta_write(&t, json_string_value(u), json_string_length(u), json_deep_copy(m));
                continue;
            }
            break;
        }
    }
    txn_end(&t, rc == 0);
    return rc;
}

/* ---- the state object ---- */

ts_sess_state_t *ts_sess_state_new(void) {
    ts_sess_state_t *st = ts_xcalloc(1, sizeof *st);
    st->doc = json_object();
    st->meta = json_object();
    st->bytes = st->meta_bytes = 2; /* {} */
    return st;
}

void ts_sess_state_free(ts_sess_state_t *st) {
    if (!st) return;
    json_decref(st->doc);
    json_decref(st->meta);
    free(st);
}

json_t *ts_sess_state_dump(const ts_sess_state_t *st) {
    json_t *d = json_object();
    json_object_set_new(d, "doc", json_deep_copy(st->doc));
    json_object_set_new(d, "meta", json_deep_copy(st->meta));
    return d;
}

int ts_sess_state_load(json_t *snapshot, ts_sess_state_t **out, char *why, size_t whylen) {
    *out = NULL;
    if (!json_is_object(snapshot))
        return ts_errf(why, whylen, TS_EPROTO, "snapshot: not an object");
    const char *k;
    size_t kl;
    json_t *v;
    json_object_foreach(snapshot, k, v) {
        if (strcmp(k, "doc") != 0 && strcmp(k, "meta") != 0)
            return ts_errf(why, whylen, TS_EPROTO, "snapshot: unknown member \"%.40s\" (doc, meta)",
                           k);
    }
    json_t *doc = json_object_get(snapshot, "doc"), *meta = json_object_get(snapshot, "meta");
    if (!json_is_object(doc))
        return ts_errf(why, whylen, TS_EPROTO, "snapshot: doc must be an object");
    if (meta && !json_is_object(meta))
        return ts_errf(why, whylen, TS_EPROTO, "snapshot: meta must be an object");
    if (meta) {
        json_object_keylen_foreach(meta, k, kl, v) {
            ts_jptr_t p;
            const char *bad = NULL;
            if (ts_jptr_parse(&p, k, kl, NULL) != 0)
                return ts_errf(why, whylen, TS_EPROTO,
                               "snapshot: meta unit \"%.80s\" is not a JSON Pointer", k);
            if ((bad = entry_check(v)) != NULL)
                return ts_errf(why, whylen, TS_EPROTO, "snapshot: the meta entry of %.80s %s", k,
                               bad);
        }
    }
    ts_sess_state_t *st = ts_xcalloc(1, sizeof *st);
    st->doc = json_deep_copy(doc);
    st->meta = meta ? json_deep_copy(meta) : json_object();
    st->bytes = (size_t)vsize(st->doc);
    st->meta_bytes = (size_t)vsize(st->meta);
    *out = st;
    return 0;
}

json_t *ts_sess_state_doc(const ts_sess_state_t *st) { return st->doc; }

size_t ts_sess_state_bytes(const ts_sess_state_t *st) { return st->bytes; }

json_t *ts_sess_state_get(const ts_sess_state_t *st, const char *path) {
    return ts_jptr_get_text(st->doc, path, strlen(path));
}
