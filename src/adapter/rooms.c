/* rooms.c - the local adapter's room index (ts_adp_rooms.h): a map of room
 * name -> members, each socket's rooms as one array of its member entries
 * (so leaving every room at disconnect touches only its own, and a socket
 * in four rooms costs one malloc, not four), and broadcasts that mark each
 * recipient with a stamp (`gen`) so that a socket in several target rooms
 * is visited once without a set per broadcast. */
#include "adapter/ts_adp_rooms.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_list.h"
#include "core/ts_mem.h"

/* One allocation per room, its name inside (the key of r->rooms). */
typedef struct room {
    ts_list_t members; /* ts_adp_member_t.link */
    size_t n;
    char name[];
} room_t;

/* One membership: an element of its socket's array (s->rooms, in joining
 * order), linked into its room's member list. The array is resized to
 * exactly nrooms entries at every join and leave (a socket joins few rooms,
 * mostly at connect), so an entry may move: member_moved relinks it. */
struct ts_adp_member {
    room_t *room;
    ts_adp_sock_t *s;
    ts_list_t link; /* in room->members */
};

/* `m` was copied to a new address: its neighbours point at the old one.
 * They are never entries of the same array (one entry per room), so
 * fixing them up reads nothing that moved. */
static void member_moved(ts_adp_member_t *m) {
    m->link.prev->next = &m->link;
    m->link.next->prev = &m->link;
}

static ts_adp_member_t *members_resize(ts_adp_sock_t *s, size_t n) {
    ts_adp_member_t *old = s->rooms;
    ts_adp_member_t *a = n ? ts_xrealloc(old, n * sizeof *a) : (free(old), NULL);
    if (a != old)
        for (size_t i = 0; i < n && i < s->nrooms; i++) member_moved(&a[i]);
    s->rooms = a;
    return a;
}

void ts_adp_rooms_init(ts_adp_rooms_t *r) {
    memset(r, 0, sizeof(*r));
    ts_idmap_init(&r->by_id, offsetof(ts_adp_sock_t, id), TS_ADP_ID_LEN);
    ts_idmap_init(&r->rooms, offsetof(room_t, name), 0);
}

void ts_adp_rooms_deinit(ts_adp_rooms_t *r) {
    ts_idmap_deinit(&r->rooms); /* empty: rooms go with their last member */
    ts_idmap_deinit(&r->by_id);
}

static room_t *room_get(ts_adp_rooms_t *r, const char *name, int create) {
    room_t *room = ts_idmap_get(&r->rooms, name);
    if (room || !create) return room;
    size_t len = strlen(name);
    room = ts_xmalloc(sizeof(*room) + len + 1);
    ts_list_init(&room->members);
    room->n = 0;
    memcpy(room->name, name, len + 1);
    ts_idmap_put(&r->rooms, room);
    return room;
}

/* Unlinks `m` from its room (the entry itself stays in its array). */
static void member_drop(ts_adp_rooms_t *r, ts_adp_member_t *m) {
    room_t *room = m->room;
    ts_list_remove(&m->link);
    if (--room->n == 0) {
        ts_idmap_del(&r->rooms, room->name);
        free(room);
    }
}

ts_adp_sock_t *ts_adp_add(ts_adp_rooms_t *r, ts_adp_sock_t *s) {
    s->rooms = NULL;
    s->nrooms = 0;
    s->gen = 0;
    return ts_idmap_put(&r->by_id, s);
}

void ts_adp_del(ts_adp_rooms_t *r, ts_adp_sock_t *s) {
    for (size_t i = 0; i < s->nrooms; i++) member_drop(r, &s->rooms[i]);
    free(s->rooms);
    s->rooms = NULL;
    s->nrooms = 0;
    if (ts_idmap_get(&r->by_id, s->id) == s) ts_idmap_del(&r->by_id, s->id);
}

int ts_adp_rename(ts_adp_rooms_t *r, ts_adp_sock_t *s, const char *id) {
    if (strlen(id) != TS_ADP_ID_LEN || ts_idmap_get(&r->by_id, id)) return 0;
    ts_idmap_del(&r->by_id, s->id);
    memcpy(s->id, id, TS_ADP_ID_LEN + 1);
    ts_idmap_put(&r->by_id, s);
    return 1;
}

ts_adp_sock_t *ts_adp_find(const ts_adp_rooms_t *r, const char *name) {
    return strlen(name) == TS_ADP_ID_LEN ? ts_idmap_get(&r->by_id, name) : NULL;
}

int ts_adp_join(ts_adp_rooms_t *r, ts_adp_sock_t *s, const char *room) {
    if (strcmp(room, s->id) == 0) return 0; /* always in it */
    for (size_t i = 0; i < s->nrooms; i++)
        if (strcmp(s->rooms[i].room->name, room) == 0) return 0;
    room_t *rm = room_get(r, room, 1);
    ts_adp_member_t *m = &members_resize(s, (size_t)s->nrooms + 1)[s->nrooms];
    m->room = rm;
    m->s = s;
    ts_list_insert_tail(&rm->members, &m->link);
    rm->n++;
    s->nrooms++;
    return 1;
}

int ts_adp_leave(ts_adp_rooms_t *r, ts_adp_sock_t *s, const char *room) {
    for (size_t i = 0; i < s->nrooms; i++) {
        ts_adp_member_t *m = &s->rooms[i];
        if (strcmp(m->room->name, room) != 0) continue;
        member_drop(r, m);
        /* the later ones move down one, keeping the joining order */
        memmove(m, m + 1, (s->nrooms - i - 1) * sizeof *m);
        for (size_t j = i; j + 1 < s->nrooms; j++) member_moved(&s->rooms[j]);
        s->nrooms--;
        members_resize(s, s->nrooms);
        return 1;
    }
    return 0;
}

size_t ts_adp_sock_rooms(const ts_adp_sock_t *s, const char **out, size_t max) {
    if (max) out[0] = s->id;
    size_t i = 1;
    for (size_t j = 0; j < s->nrooms && i < max; j++) out[i++] = s->rooms[j].room->name;
    return (size_t)s->nrooms + 1;
}

size_t ts_adp_room_size(const ts_adp_rooms_t *r, const char *room) {
    const room_t *rm = ts_idmap_get(&r->rooms, room);
    return (rm ? rm->n : 0) + (ts_adp_find(r, room) ? 1 : 0);
}

/* Stamps every socket of `room` (its own included) with `gen`. */
static void mark_room(ts_adp_rooms_t *r, const char *room, uint32_t gen) {
    ts_adp_sock_t *own = ts_adp_find(r, room);
    if (own) own->gen = gen;
    room_t *rm = room_get(r, room, 0);
    if (!rm) return;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &rm->members) ts_list_entry(it, ts_adp_member_t, link)->s->gen = gen;
}

size_t ts_adp_each(ts_adp_rooms_t *r, const char *const *rooms, size_t nrooms,
                   const char *const *except, size_t nexcept, const ts_adp_sock_t *skip,
                   ts_adp_visit_fn visit, void *ud) {
    uint32_t gen = ++r->gen;
    if (gen == 0) {
        /* After 2^32 broadcasts a stamp could be taken for this one's:
         * every stamp starts over (a socket's stamp is 32 bits, not 64,
         * so that ts_adp_sock_t fits 40 bytes). */
        void *obj;
        for (size_t it = 0; ts_idmap_next(&r->by_id, &it, &obj);) ((ts_adp_sock_t *)obj)->gen = 0;
        gen = r->gen = 1;
    }
    size_t n = 0;
    /* the excluded are marked as if already visited */
    for (size_t i = 0; i < nexcept; i++) mark_room(r, except[i], gen);
    if (skip) ((ts_adp_sock_t *)(uintptr_t)skip)->gen = gen;
    if (nrooms == 0) {
        void *obj;
        for (size_t it = 0; ts_idmap_next(&r->by_id, &it, &obj);) {
            ts_adp_sock_t *s = obj;
            if (s->gen == gen) continue;
            s->gen = gen;
            visit(s, ud);
            n++;
        }
        return n;
    }
    for (size_t i = 0; i < nrooms; i++) {
        ts_adp_sock_t *own = ts_adp_find(r, rooms[i]);
        if (own && own->gen != gen) {
            own->gen = gen;
            visit(own, ud);
            n++;
        }
        room_t *rm = room_get(r, rooms[i], 0);
        if (!rm) continue;
        ts_list_t *it;
        TS_LIST_FOREACH(it, &rm->members) {
            ts_adp_sock_t *s = ts_list_entry(it, ts_adp_member_t, link)->s;
            if (s->gen == gen) continue;
            s->gen = gen; /* in several target rooms: once */
            visit(s, ud);
            n++;
        }
    }
    return n;
}

static int has(const char *const *v, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0) return 1;
    return 0;
}

int ts_adp_rooms_match(const char *const *rooms, size_t nrooms, const char *const *except,
                       size_t nexcept, const char *const *sock_rooms, size_t n) {
    for (size_t i = 0; i < nexcept; i++)
        if (has(sock_rooms, n, except[i])) return 0;
    if (nrooms == 0) return 1;
    for (size_t i = 0; i < nrooms; i++)
        if (has(sock_rooms, n, rooms[i])) return 1;
    return 0;
}
