/* test_rooms.c - the local adapter's room index: joining and leaving (own
 * room implicit, rooms gone with their last member), renaming, the
 * recipients of broadcasts (rooms, everyone, except, the sender, each
 * recipient once) as a table of cases, the same rule for saved sessions,
 * and agreement with a plain membership matrix under random churn, with
 * rooms of one member (no room object) and sockets in many rooms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapter/ts_adp_rooms.h"

#define NS 6 /* sockets in the fixture */

typedef struct {
    ts_adp_rooms_t r;
    ts_adp_sock_t s[NS];
} fx_t;

static void set_id(ts_adp_sock_t *s, unsigned n) {
    snprintf(s->id, sizeof s->id, "sock-%015u", n);
}

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof(*fx));
    ts_adp_rooms_init(&fx->r);
    for (unsigned i = 0; i < NS; i++) {
        set_id(&fx->s[i], i);
        assert_null(ts_adp_add(&fx->r, &fx->s[i]));
    }
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fx_t *fx = *state;
    for (unsigned i = 0; i < NS; i++) ts_adp_del(&fx->r, &fx->s[i]);
    assert_int_equal(ts_adp_count(&fx->r), 0);
    ts_adp_rooms_deinit(&fx->r);
    free(fx);
    return 0;
}

static void join_leave(void **state) {
    fx_t *fx = *state;
    ts_adp_sock_t *a = &fx->s[0], *b = &fx->s[1];
    assert_int_equal(ts_adp_count(&fx->r), NS);
    assert_ptr_equal(ts_adp_find(&fx->r, a->id), a);
    assert_null(ts_adp_find(&fx->r, "sock-999999999999999"));
    assert_null(ts_adp_find(&fx->r, "short"));

    assert_int_equal(ts_adp_join(&fx->r, a, "x"), 1);
    assert_int_equal(ts_adp_join(&fx->r, a, "x"), 0); /* already in it */
    assert_int_equal(ts_adp_join(&fx->r, a, a->id), 0); /* its own: implicit */
    assert_int_equal(ts_adp_join(&fx->r, a, "y"), 1);
    assert_int_equal(ts_adp_join(&fx->r, b, "x"), 1);
    assert_int_equal(a->nrooms, 2);
    assert_int_equal(ts_adp_room_size(&fx->r, "x"), 2);
    assert_int_equal(ts_adp_room_size(&fx->r, "y"), 1);
    assert_int_equal(ts_adp_room_size(&fx->r, a->id), 1);
    assert_int_equal(ts_adp_room_size(&fx->r, "nope"), 0);

    const char *names[4];
    assert_int_equal(ts_adp_sock_rooms(a, names, 4), 3);
    assert_string_equal(names[0], a->id); /* own first, then joining order */
    assert_string_equal(names[1], "x");
    assert_string_equal(names[2], "y");
    assert_int_equal(ts_adp_sock_rooms(a, names, 1), 3); /* truncated, count whole */

    assert_int_equal(ts_adp_leave(&fx->r, a, "x"), 1);
    assert_int_equal(ts_adp_leave(&fx->r, a, "x"), 0);
    assert_int_equal(ts_adp_leave(&fx->r, a, a->id), 0); /* own room stays */
    assert_int_equal(ts_adp_room_size(&fx->r, "x"), 1);
    assert_int_equal(ts_adp_leave(&fx->r, b, "x"), 1);
    assert_int_equal(ts_adp_room_size(&fx->r, "x"), 0); /* gone with its last member */
    assert_int_equal(ts_adp_join(&fx->r, b, "x"), 1);   /* and made again */
    assert_int_equal(ts_adp_room_size(&fx->r, "x"), 1);

    /* del leaves every room; a second del is harmless */
    ts_adp_del(&fx->r, a);
    assert_int_equal(a->nrooms, 0);
    assert_int_equal(ts_adp_room_size(&fx->r, "y"), 0);
    assert_null(ts_adp_find(&fx->r, a->id));
    ts_adp_del(&fx->r, a);
    assert_int_equal(ts_adp_count(&fx->r), NS - 1);
}

static void rename_and_displace(void **state) {
    fx_t *fx = *state;
    ts_adp_sock_t *a = &fx->s[0];
    ts_adp_join(&fx->r, a, "x");
    char old[TS_ADP_ID_LEN + 1];
    memcpy(old, a->id, sizeof old);
    assert_int_equal(ts_adp_rename(&fx->r, a, fx->s[1].id), 0); /* taken */
    assert_int_equal(ts_adp_rename(&fx->r, a, "too-short"), 0);
    assert_int_equal(ts_adp_rename(&fx->r, a, "sock-000000000000077"), 1);
    assert_null(ts_adp_find(&fx->r, old));
    assert_ptr_equal(ts_adp_find(&fx->r, "sock-000000000000077"), a);
    assert_int_equal(ts_adp_room_size(&fx->r, "x"), 1); /* rooms kept */

    /* a socket added under an id already present displaces it; removing the
     * displaced one later must not drop the newcomer */
    ts_adp_sock_t dup = {0};
    memcpy(dup.id, fx->s[2].id, sizeof dup.id);
    assert_ptr_equal(ts_adp_add(&fx->r, &dup), &fx->s[2]);
    ts_adp_del(&fx->r, &fx->s[2]);
    assert_ptr_equal(ts_adp_find(&fx->r, dup.id), &dup);
    ts_adp_del(&fx->r, &dup);
    ts_adp_add(&fx->r, &fx->s[2]); /* back, for teardown */
}

typedef struct {
    unsigned hits[NS];
    unsigned order[NS]; /* sockets in visiting order */
    unsigned n;
    fx_t *fx;
} visits_t;

static void visit(ts_adp_sock_t *s, void *ud) {
    visits_t *v = ud;
    v->hits[s - v->fx->s]++;
    if (v->n < NS) v->order[v->n++] = (unsigned)(s - v->fx->s);
}

/* Membership of the broadcast cases: s0 in a; s1 in a, b; s2 in b; s3 in c;
 * s4 in a, b, c; s5 in none. */
static void members(fx_t *fx) {
    static const char *const m[NS][3] = {{"a"}, {"a", "b"}, {"b"}, {"c"}, {"a", "b", "c"}, {NULL}};
    for (unsigned i = 0; i < NS; i++)
        for (unsigned j = 0; j < 3 && m[i][j]; j++) ts_adp_join(&fx->r, &fx->s[i], m[i][j]);
}

static void broadcasts(void **state) {
    fx_t *fx = *state;
    members(fx);
    static const struct {
        const char *rooms[3];
        const char *except[3];
        int skip;            /* index of the sender, -1 none */
        const char *expect;  /* '1' for each socket that receives it once */
    } cases[] = {
        {{NULL}, {NULL}, -1, "111111"},               /* everyone */
        {{NULL}, {NULL}, 5, "111110"},                /* everyone but the sender */
        {{"a"}, {NULL}, -1, "110010"},
        {{"a", "b"}, {NULL}, -1, "111010"},           /* s1, s4 in both: once */
        {{"a", "b", "c"}, {NULL}, -1, "111110"},
        {{"a"}, {"b"}, -1, "100000"},
        {{NULL}, {"a"}, -1, "001101"},                /* everyone except a */
        {{"b"}, {NULL}, 1, "001010"},                 /* socket.broadcast from s1 */
        {{"nobody"}, {NULL}, -1, "000000"},
        {{"sock-000000000000003"}, {NULL}, -1, "000100"}, /* a socket's own room */
        {{"c", "sock-000000000000003"}, {NULL}, -1, "000110"},
        {{"a"}, {"sock-000000000000004"}, -1, "110000"},  /* except one socket */
        {{"a"}, {"a"}, -1, "000000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t nr = 0, ne = 0;
        while (nr < 3 && cases[i].rooms[nr]) nr++;
        while (ne < 3 && cases[i].except[ne]) ne++;
        visits_t v = {.fx = fx};
        size_t n = ts_adp_each(&fx->r, cases[i].rooms, nr, cases[i].except, ne,
                               cases[i].skip >= 0 ? &fx->s[cases[i].skip] : NULL, visit, &v);
        char got[NS + 1] = {0};
        size_t want = 0;
        for (unsigned k = 0; k < NS; k++) {
            got[k] = (char)('0' + v.hits[k]);
            want += cases[i].expect[k] == '1';
        }
        if (strcmp(got, cases[i].expect) != 0 || n != want)
            fail_msg("case %zu: visited %s (%zu), want %s", i, got, n, cases[i].expect);

        /* the rule for a saved session agrees with the index, socket by socket */
        for (unsigned k = 0; k < NS; k++) {
            if (cases[i].skip == (int)k) continue; /* the sender is not a rule of rooms */
            const char *names[4];
            size_t nn = ts_adp_sock_rooms(&fx->s[k], names, 4);
            int m = ts_adp_rooms_match(cases[i].rooms, nr, cases[i].except, ne, names, nn);
            if (m != (cases[i].expect[k] == '1'))
                fail_msg("case %zu: match says %d for socket %u", i, m, k);
        }
    }
}

/* Random joins, leaves, removals and re-adds against a matrix; every
 * single-room broadcast must reach exactly the matrix's members, and every
 * socket lists its rooms in joining order (its entries move when it leaves
 * one in the middle or its array is resized). */
static void churn(void **state) {
    fx_t *fx = *state;
    enum { NR = 5 };
    static const char *const rooms[NR] = {"r0", "r1", "r2", "r3", "r4"};
    int in[NS][NR] = {{0}}, present[NS];
    unsigned order[NS][NR], nord[NS] = {0}; /* rooms joined, in joining order */
    for (unsigned i = 0; i < NS; i++) present[i] = 1;
    unsigned seed = 12345;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 8) % NS, j = (seed >> 16) % NR, op = (seed >> 24) % 8;
        if (op == 7) { /* remove or re-add */
            if (present[i]) {
                ts_adp_del(&fx->r, &fx->s[i]);
                memset(in[i], 0, sizeof in[i]);
                nord[i] = 0;
            } else {
                ts_adp_add(&fx->r, &fx->s[i]);
            }
            present[i] = !present[i];
        } else if (present[i] && op < 4) {
            assert_int_equal(ts_adp_join(&fx->r, &fx->s[i], rooms[j]), !in[i][j]);
            if (!in[i][j]) order[i][nord[i]++] = j;
            in[i][j] = 1;
        } else if (present[i]) {
            assert_int_equal(ts_adp_leave(&fx->r, &fx->s[i], rooms[j]), in[i][j]);
            for (unsigned k = 0, w = 0; k < nord[i]; k++)
                if (order[i][k] != j) order[i][w++] = order[i][k];
            if (in[i][j]) nord[i]--;
            in[i][j] = 0;
        }
        if (step % 97 != 0) continue;
        for (unsigned r = 0; r < NR; r++) {
            visits_t v = {.fx = fx};
            ts_adp_each(&fx->r, &rooms[r], 1, NULL, 0, NULL, visit, &v);
            size_t size = 0;
            for (unsigned k = 0; k < NS; k++) {
                assert_int_equal(v.hits[k], in[k][r]);
                size += (size_t)in[k][r];
            }
            assert_int_equal(ts_adp_room_size(&fx->r, rooms[r]), size);
        }
        for (unsigned k = 0; k < NS; k++) {
            if (!present[k]) continue;
            const char *names[NR + 1];
            assert_int_equal(ts_adp_sock_rooms(&fx->s[k], names, NR + 1), nord[k] + 1);
            assert_string_equal(names[0], fx->s[k].id);
            for (unsigned q = 0; q < nord[k]; q++) assert_string_equal(names[q + 1], rooms[order[k][q]]);
        }
    }
    for (unsigned i = 0; i < NS; i++)
        if (!present[i]) ts_adp_add(&fx->r, &fx->s[i]);
}

/* Many rooms per socket (more than a group of entries), rooms with one
 * member (no room object: the entry is in the map) becoming shared and
 * back to one member, against a matrix; a room's members are visited in
 * their joining order, and a socket lists its rooms in its joining order. */
static void lone_and_many(void **state) {
    fx_t *fx = *state;
    enum { NR = 21 };
    char names[NR][32];
    const char *rooms[NR];
    for (unsigned j = 0; j < NR; j++) {
        snprintf(names[j], sizeof names[j], "room-%u%s", j, j % 3 ? "" : "-with-a-longer-name");
        rooms[j] = names[j];
    }
    unsigned joined[NR][NS], nj[NR] = {0}; /* members of each room, in joining order */
    unsigned order[NS][NR], nord[NS] = {0};
    unsigned seed = 777;
    for (int step = 0; step < 30000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 8) % NS, j = (seed >> 14) % NR, op = (seed >> 24) % 16;
        int in = 0;
        for (unsigned k = 0; k < nj[j]; k++) in |= joined[j][k] == i;
        if (op == 15) { /* leaves every room */
            ts_adp_del(&fx->r, &fx->s[i]);
            ts_adp_add(&fx->r, &fx->s[i]);
            for (unsigned q = 0; q < NR; q++) {
                unsigned w = 0;
                for (unsigned k = 0; k < nj[q]; k++)
                    if (joined[q][k] != i) joined[q][w++] = joined[q][k];
                nj[q] = w;
            }
            nord[i] = 0;
        } else if (op < 9) {
            assert_int_equal(ts_adp_join(&fx->r, &fx->s[i], rooms[j]), !in);
            if (!in) {
                joined[j][nj[j]++] = i;
                order[i][nord[i]++] = j;
            }
        } else {
            assert_int_equal(ts_adp_leave(&fx->r, &fx->s[i], rooms[j]), in);
            if (in) {
                unsigned w = 0;
                for (unsigned k = 0; k < nj[j]; k++)
                    if (joined[j][k] != i) joined[j][w++] = joined[j][k];
                nj[j] = w;
                w = 0;
                for (unsigned k = 0; k < nord[i]; k++)
                    if (order[i][k] != j) order[i][w++] = order[i][k];
                nord[i] = w;
            }
        }
        if (step % 53 != 0) continue;
        for (unsigned r = 0; r < NR; r++) {
            visits_t v = {.fx = fx};
            assert_int_equal(ts_adp_each(&fx->r, &rooms[r], 1, NULL, 0, NULL, visit, &v), nj[r]);
            assert_int_equal(v.n, nj[r]);
            for (unsigned k = 0; k < nj[r]; k++) assert_int_equal(v.order[k], joined[r][k]);
            assert_int_equal(ts_adp_room_size(&fx->r, rooms[r]), nj[r]);
            /* except the room: everyone else */
            visits_t e = {.fx = fx};
            assert_int_equal(ts_adp_each(&fx->r, NULL, 0, &rooms[r], 1, NULL, visit, &e),
                             NS - nj[r]);
        }
        for (unsigned k = 0; k < NS; k++) {
            const char *got[NR + 1];
            assert_int_equal(ts_adp_sock_rooms(&fx->s[k], got, NR + 1), nord[k] + 1);
            for (unsigned q = 0; q < nord[k]; q++) assert_string_equal(got[q + 1], rooms[order[k][q]]);
        }
    }
}

/* Broadcast stamps are 32 bits: across the wrap every recipient is still
 * visited exactly once. */
static void stamps_wrap(void **state) {
    fx_t *fx = *state;
    members(fx);
    fx->r.gen = UINT32_MAX - 3;
    const char *const ab[] = {"a", "b"};
    for (int i = 0; i < 8; i++) {
        visits_t v = {.fx = fx};
        assert_int_equal(ts_adp_each(&fx->r, ab, 2, NULL, 0, NULL, visit, &v), 4);
        for (unsigned k = 0; k < NS; k++) assert_int_equal(v.hits[k], k == 0 || k == 1 || k == 2 || k == 4);
        visits_t w = {.fx = fx};
        assert_int_equal(ts_adp_each(&fx->r, NULL, 0, NULL, 0, &fx->s[5], visit, &w), NS - 1);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(join_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(rename_and_displace, setup, teardown),
        cmocka_unit_test_setup_teardown(broadcasts, setup, teardown),
        cmocka_unit_test_setup_teardown(churn, setup, teardown),
        cmocka_unit_test_setup_teardown(lone_and_many, setup, teardown),
        cmocka_unit_test_setup_teardown(stamps_wrap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
