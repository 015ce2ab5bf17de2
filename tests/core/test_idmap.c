/* test_idmap.c - the one-word-slot map of objects keyed by their own ids:
 * insert, replace, delete with tombstones, growth, iteration with removal,
 * string keys (klen 0), keys found by a function (init_fn), and that it
 * agrees with a plain array under random churn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_idmap.h"

#define KLEN 20

typedef struct obj {
    int before;        /* the key is not at offset 0 */
    char id[KLEN + 1]; /* NUL-terminated, as the servers keep them */
    int val;
} obj_t;

static void set_id(obj_t *o, unsigned n) { snprintf(o->id, sizeof o->id, "id-%017u", n); }

static void put_get_del(void **state) {
    (void)state;
    ts_idmap_t m;
    ts_idmap_init(&m, offsetof(obj_t, id), KLEN);
    obj_t a = {0}, b = {0}, a2 = {0};
    set_id(&a, 1);
    set_id(&b, 2);
    set_id(&a2, 1); /* another object with a's key */
    assert_null(ts_idmap_get(&m, a.id));
    assert_null(ts_idmap_del(&m, a.id)); /* empty map */
    assert_null(ts_idmap_put(&m, &a));
    assert_null(ts_idmap_put(&m, &b));
    assert_ptr_equal(ts_idmap_get(&m, "id-00000000000000001"), &a);
    assert_ptr_equal(ts_idmap_get(&m, b.id), &b);
    assert_null(ts_idmap_get(&m, "id-00000000000000003"));
    assert_ptr_equal(ts_idmap_put(&m, &a2), &a); /* replaced, count unchanged */
    assert_int_equal(m.count, 2);
    assert_ptr_equal(ts_idmap_get(&m, a.id), &a2);
    assert_ptr_equal(ts_idmap_del(&m, a.id), &a2);
    assert_null(ts_idmap_del(&m, a.id));
    assert_null(ts_idmap_get(&m, a.id));
    assert_ptr_equal(ts_idmap_get(&m, b.id), &b); /* found past the tombstone */
    assert_int_equal(m.count, 1);
    ts_idmap_deinit(&m);
    assert_null(ts_idmap_get(&m, b.id));
}

/* klen 0: string keys of any length, read from the object (room names);
 * a key that is a prefix of another is a different key. */
typedef struct named {
    int n;
    char name[];
} named_t;

static named_t *named_new(const char *name) {
    named_t *o = malloc(sizeof *o + strlen(name) + 1);
    o->n = 0;
    strcpy(o->name, name);
    return o;
}

static void string_keys(void **state) {
    (void)state;
    ts_idmap_t m;
    ts_idmap_init(&m, offsetof(named_t, name), 0);
    named_t *v[200];
    char name[32];
    for (int i = 0; i < 200; i++) { /* through several growths */
        snprintf(name, sizeof name, "u/%d", i);
        v[i] = named_new(name);
        assert_null(ts_idmap_put(&m, v[i]));
    }
    assert_int_equal(m.count, 200);
    assert_ptr_equal(ts_idmap_get(&m, "u/1"), v[1]);
    assert_ptr_equal(ts_idmap_get(&m, "u/19"), v[19]);
    assert_ptr_equal(ts_idmap_get(&m, "u/199"), v[199]);
    assert_null(ts_idmap_get(&m, "u/"));
    assert_null(ts_idmap_get(&m, "u/1999"));
    assert_null(ts_idmap_get(&m, ""));
    assert_ptr_equal(ts_idmap_del(&m, "u/19"), v[19]);
    assert_null(ts_idmap_get(&m, "u/19"));
    assert_ptr_equal(ts_idmap_get(&m, "u/199"), v[199]);
    for (int i = 0; i < 200; i++) free(v[i]);
    ts_idmap_deinit(&m);
}

/* Random puts and deletes against a shadow array: every live object stays
 * reachable, every removed one is gone, the count is exact, through growth
 * and tombstone reuse. */
static void churn_matches_shadow(void **state) {
    (void)state;
    enum { N = 6000, OPS = 60000 };
    obj_t *objs = calloc(N, sizeof *objs);
    char *in = calloc(N, 1);
    for (unsigned i = 0; i < N; i++) set_id(&objs[i], i * 7919u);
    ts_idmap_t m;
    ts_idmap_init(&m, offsetof(obj_t, id), KLEN);
    srand(4242);
    size_t live = 0;
    for (int op = 0; op < OPS; op++) {
        unsigned i = (unsigned)rand() % N;
        if (in[i]) {
            assert_ptr_equal(ts_idmap_del(&m, objs[i].id), &objs[i]);
            in[i] = 0;
            live--;
        } else {
            assert_null(ts_idmap_put(&m, &objs[i]));
            in[i] = 1;
            live++;
        }
        assert_int_equal(m.count, live);
    }
    for (unsigned i = 0; i < N; i++)
        assert_ptr_equal(ts_idmap_get(&m, objs[i].id), in[i] ? &objs[i] : NULL);
    assert_true(m.cap * 3 > m.used * 4); /* an empty slot always ends a probe */
    ts_idmap_deinit(&m);
    free(in);
    free(objs);
}

/* Iteration sees each object once, also when it removes the current one. */
static void iterate_and_remove(void **state) {
    (void)state;
    enum { N = 100 };
    obj_t objs[N];
    ts_idmap_t m;
    ts_idmap_init(&m, offsetof(obj_t, id), KLEN);
    for (unsigned i = 0; i < N; i++) {
        memset(&objs[i], 0, sizeof objs[i]);
        set_id(&objs[i], i);
        objs[i].val = 0;
        ts_idmap_put(&m, &objs[i]);
    }
    void *o;
    for (size_t it = 0; ts_idmap_next(&m, &it, &o);) {
        obj_t *x = o;
        x->val++;
        if (x->val == 1 && (x - objs) % 2 == 0) assert_ptr_equal(ts_idmap_del(&m, x->id), x);
    }
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(objs[i].val, 1);
        assert_ptr_equal(ts_idmap_get(&m, objs[i].id), i % 2 ? &objs[i] : NULL);
    }
    assert_int_equal(m.count, N / 2);
    ts_idmap_deinit(&m);
}

/* Insert/delete cycles with a small live set do not grow the table. */
static void tombstones_do_not_leak_capacity(void **state) {
    (void)state;
    enum { N = 20000 };
    obj_t *objs = calloc(N, sizeof *objs);
    ts_idmap_t m;
    ts_idmap_init(&m, offsetof(obj_t, id), KLEN);
    for (unsigned i = 0; i < N; i++) {
        set_id(&objs[i], i);
        ts_idmap_put(&m, &objs[i]);
        if (i >= 4) ts_idmap_del(&m, objs[i - 4].id);
    }
    assert_int_equal(m.count, 4);
    assert_true(m.cap <= 64);
    ts_idmap_deinit(&m);
    free(objs);
}

/* init_fn: keys of any length anywhere in the object, found by a function
 * (a registry entry's ids, one after another without separators); keys
 * that are prefixes of each other are different, the same key in another
 * object replaces, and growth rehashes through the function. */
typedef struct rec {
    unsigned char alen, blen; /* the key is b: after a, blen bytes */
    char mem[40];
} rec_t;

static ts_slice_t rec_key(const void *o) {
    const rec_t *r = o;
    return ts_slice(r->mem + r->alen, r->blen);
}

static rec_t *rec_new(const char *a, const char *b) {
    rec_t *r = calloc(1, sizeof *r);
    r->alen = (unsigned char)strlen(a);
    r->blen = (unsigned char)strlen(b);
    memcpy(r->mem, a, r->alen);
    memcpy(r->mem + r->alen, b, r->blen); /* no NUL after b: the length ends it */
    r->mem[r->alen + r->blen] = 'x';
    return r;
}

static void key_function(void **state) {
    (void)state;
    ts_idmap_t m;
    ts_idmap_init_fn(&m, rec_key);
    rec_t *v[300];
    char b[32];
    for (int i = 0; i < 300; i++) {
        snprintf(b, sizeof b, "k%d", i);
        v[i] = rec_new(i % 2 ? "odd-prefix" : "p", b);
        assert_null(ts_idmap_put(&m, v[i]));
    }
    assert_int_equal(m.count, 300);
    for (int i = 0; i < 300; i++) {
        snprintf(b, sizeof b, "k%d", i);
        assert_ptr_equal(ts_idmap_get_n(&m, b, strlen(b)), v[i]);
    }
    assert_ptr_equal(ts_idmap_get_n(&m, "k1", 2), v[1]);
    assert_ptr_equal(ts_idmap_get_n(&m, "k10", 3), v[10]); /* "k1" is a prefix of it */
    assert_null(ts_idmap_get_n(&m, "k1x", 3));
    assert_null(ts_idmap_get_n(&m, "k", 1));
    assert_null(ts_idmap_get_n(&m, "", 0));
    rec_t *again = rec_new("other", "k7"); /* the same key in another object */
    assert_ptr_equal(ts_idmap_put(&m, again), v[7]);
    assert_int_equal(m.count, 300);
    assert_ptr_equal(ts_idmap_get_n(&m, "k7", 2), again);
    assert_ptr_equal(ts_idmap_del_n(&m, "k7", 2), again);
    assert_null(ts_idmap_del_n(&m, "k7", 2));
    assert_null(ts_idmap_get_n(&m, "k7", 2));
    assert_int_equal(m.count, 299);
    size_t it = 0, n = 0;
    void *o;
    while (ts_idmap_next(&m, &it, &o)) n++;
    assert_int_equal(n, 299);
    ts_idmap_deinit(&m);
    for (int i = 0; i < 300; i++) free(v[i]);
    free(again);
}

/* get_n / del_n on the other kinds of map: a fixed-length key of another
 * length is absent; a string key is matched whole. */
static void lengths_on_other_maps(void **state) {
    (void)state;
    ts_idmap_t m;
    ts_idmap_init(&m, offsetof(obj_t, id), KLEN);
    obj_t a = {0};
    set_id(&a, 5);
    ts_idmap_put(&m, &a);
    assert_ptr_equal(ts_idmap_get_n(&m, a.id, KLEN), &a);
    assert_null(ts_idmap_get_n(&m, a.id, KLEN - 1));
    assert_null(ts_idmap_del_n(&m, a.id, KLEN + 1));
    assert_ptr_equal(ts_idmap_del_n(&m, a.id, KLEN), &a);
    ts_idmap_deinit(&m);
    ts_idmap_init(&m, offsetof(named_t, name), 0);
    named_t *r = named_new("room/1");
    ts_idmap_put(&m, r);
    assert_ptr_equal(ts_idmap_get_n(&m, "room/1zz", 6), r);
    assert_null(ts_idmap_get_n(&m, "room/", 5));
    assert_null(ts_idmap_get_n(&m, "room/12", 7));
    ts_idmap_deinit(&m);
    free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_del),
        cmocka_unit_test(string_keys),
        cmocka_unit_test(churn_matches_shadow),
        cmocka_unit_test(iterate_and_remove),
        cmocka_unit_test(tombstones_do_not_leak_capacity),
        cmocka_unit_test(key_function),
        cmocka_unit_test(lengths_on_other_maps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
