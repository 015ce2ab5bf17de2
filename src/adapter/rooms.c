/* rooms.c - the local adapter's room index (ts_adp_rooms.h): a map of room
 * name -> members, each socket's rooms as one allocation of its member
 * entries (so leaving every room at disconnect touches only its own, and a
 * socket in four rooms costs one malloc, not four), and broadcasts that
 * mark each recipient with a stamp (`gen`) so that a socket in several
 * target rooms is visited once without a set per broadcast.
 *
 * A room that has only ever had one member (a tab's device room, mostly)
 * has no object of its own: the map holds that member's entry, and the
 * name is kept in its socket's allocation (~50 B less per such room). The
 * room gets its object when a second socket joins (the first one's
 * allocation is then rebuilt without the name), and keeps it until it is
 * empty. */
#include "adapter/ts_adp_rooms.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_list.h"
#include "core/ts_mem.h"

/* A room with its own object: one allocation, its name inside. */
typedef struct room {
    uintptr_t n2;      /* members << 1: bit 0 clear (an entry's ref has it set: the
                        * map holds both kinds, its first word tells them apart) */
    ts_list_t members; /* ts_adp_member_t.link */
    char name[];
} room_t;

/* One membership: 24 bytes. Its socket's allocation holds its entries in
 * groups of GROUP, each group after a word pointing to the socket, then the
 * names of its lone rooms:
 *
 *   [sock][e0 .. e7][sock][e8 .. e15] ... [names of lone rooms]
 *
 * so an entry finds its socket from its place in its group, kept in `ref`
 * (a room object is 16-byte aligned: its pointer has four low bits free).
 *   ref bit 0 clear: room | place << 1, and `link` is in room->members;
 *   ref bit 0 set: a lone room, place << 1 | 1, its name at link.next
 *   (link is in no list; the map holds the entry itself). */
struct ts_adp_member {
    uintptr_t ref;
    ts_list_t link;
};
typedef ts_adp_member_t member_t;

#define GROUP 8 /* entries per group: the place takes bits 1-3 of ref */
#define HDR sizeof(ts_adp_sock_t *)
_Static_assert(_Alignof(max_align_t) >= 2 * GROUP, "room objects leave ref its low bits");
_Static_assert(sizeof(member_t) == 24, "a membership is three words");

static size_t entries_size(size_t n) { return (n + GROUP - 1) / GROUP * HDR + n * sizeof(member_t); }
static member_t *entry_at(void *base, size_t i) {
    return (member_t *)((char *)base + (i / GROUP + 1) * HDR + i * sizeof(member_t));
}
static int entry_lone(const member_t *m) { return (int)(m->ref & 1); }
static room_t *entry_room(const member_t *m) { return (room_t *)(m->ref & ~(uintptr_t)(2 * GROUP - 1)); }
static const char *entry_name(const member_t *m) {
    return entry_lone(m) ? (const char *)m->link.next : entry_room(m)->name;
}
static ts_adp_sock_t *entry_sock(const member_t *m) {
    size_t place = (m->ref >> 1) & (GROUP - 1);
    return *(ts_adp_sock_t *const *)((const char *)m - place * sizeof *m - HDR);
}

/* What the map holds is a lone room's entry (1) or a room object (0): the
 * first word of both is `ref` / `n2`, whose bit 0 tells them apart. */
static int is_lone(const void *o) { return (int)(*(const uintptr_t *)o & 1); }

/* The map's key of a room object or a lone room's entry. */
static ts_slice_t room_key(const void *o) {
    return ts_slice_str(is_lone(o) ? entry_name(o) : ((const room_t *)o)->name);
}

/* What the map holds for `name`: a room object or a lone entry (NULL: none). */
static void *room_find(const ts_adp_rooms_t *r, const char *name) {
    return ts_idmap_get_n(&r->rooms, name, strlen(name));
}

/* One membership of a socket being rebuilt: in room object `room` (then
 * `old` is its current entry, NULL to add it at the room's tail), or lone
 * with `name` (copied; may point into the old allocation). */
typedef struct mspec {
    room_t *room;
    member_t *old;
    const char *name;
} mspec_t;

/* Gives s a new allocation holding memberships v[0..n) in this order: the
 * entries of room objects take their old entries' places in their lists,
 * lone entries replace their old ones in the map. Every change of a
 * socket's rooms goes through here (they are few, mostly at connect). */
static void rebuild(ts_adp_rooms_t *r, ts_adp_sock_t *s, const mspec_t *v, size_t n) {
    size_t names = 0;
    for (size_t i = 0; i < n; i++)
        if (!v[i].room) names += strlen(v[i].name) + 1;
    void *base = n ? ts_xmalloc(entries_size(n) + names) : NULL;
    char *np = n ? (char *)base + entries_size(n) : NULL;
    for (size_t i = 0; i < n; i++) {
        member_t *m = entry_at(base, i);
        if (i % GROUP == 0) *(ts_adp_sock_t **)((char *)m - HDR) = s;
        uintptr_t place = (uintptr_t)(i % GROUP) << 1;
        if (v[i].room) {
            m->ref = (uintptr_t)v[i].room | place;
            if (v[i].old) { /* its neighbours are other sockets' entries or the head */
                m->link = v[i].old->link;
                m->link.prev->next = &m->link;
                m->link.next->prev = &m->link;
            } else {
                ts_list_insert_tail(&v[i].room->members, &m->link);
                v[i].room->n2 += 2;
            }
        } else {
            size_t len = strlen(v[i].name) + 1;
            memcpy(np, v[i].name, len);
            m->ref = place | 1;
            m->link.next = (ts_list_t *)(void *)np;
            m->link.prev = NULL;
            np += len;
            ts_idmap_put(&r->rooms, m); /* reads the old entry's key: still allocated */
        }
    }
    free(s->rooms);
    s->rooms = base;
    s->nrooms = (uint32_t)n;
}

/* s's memberships as specs (v has room for nrooms + 1). */
static void specs_of(const ts_adp_sock_t *s, mspec_t *v) {
    for (size_t i = 0; i < s->nrooms; i++) {
        member_t *m = entry_at(s->rooms, i);
        v[i] = entry_lone(m) ? (mspec_t){NULL, NULL, entry_name(m)}
                             : (mspec_t){entry_room(m), m, NULL};
    }
}

/* Drops membership m from its room (the entry itself stays until its
 * socket's allocation is rebuilt or freed). */
static void member_drop(ts_adp_rooms_t *r, member_t *m) {
    if (entry_lone(m)) {
        const char *name = entry_name(m);
        ts_idmap_del_n(&r->rooms, name, strlen(name));
        return;
    }
    room_t *room = entry_room(m);
    ts_list_remove(&m->link);
    room->n2 -= 2;
    if (room->n2 == 0) {
        ts_idmap_del_n(&r->rooms, room->name, strlen(room->name));
        free(room);
    }
}

/* A lone room gets its object: the map and its member's entry move to it,
 * and its member's allocation is rebuilt without the name. */
static room_t *room_promote(ts_adp_rooms_t *r, member_t *lone) {
    ts_adp_sock_t *t = entry_sock(lone);
    const char *name = entry_name(lone);
    size_t len = strlen(name);
    room_t *room = ts_xmalloc(sizeof(*room) + len + 1);
    room->n2 = 2; /* bit 0 clear before the map reads its key */
    ts_list_init(&room->members);
    memcpy(room->name, name, len + 1);
    ts_idmap_put(&r->rooms, room); /* replaces the entry (reads its name: still there) */
    lone->ref = (uintptr_t)room | (lone->ref & (uintptr_t)(2 * GROUP - 2)); /* its place */
    ts_list_insert_tail(&room->members, &lone->link);
    mspec_t *v = ts_xmalloc(t->nrooms * sizeof *v);
    specs_of(t, v);
    rebuild(r, t, v, t->nrooms);
    free(v);
    return room;
}

void ts_adp_rooms_init(ts_adp_rooms_t *r) {
    memset(r, 0, sizeof(*r));
    ts_idmap_init(&r->by_id, offsetof(ts_adp_sock_t, id), TS_ADP_ID_LEN);
    ts_idmap_init_fn(&r->rooms, room_key);
}

void ts_adp_rooms_deinit(ts_adp_rooms_t *r) {
    ts_idmap_deinit(&r->rooms); /* empty: rooms go with their last member */
    ts_idmap_deinit(&r->by_id);
}

ts_adp_sock_t *ts_adp_add(ts_adp_rooms_t *r, ts_adp_sock_t *s) {
    s->rooms = NULL;
    s->nrooms = 0;
    s->gen = 0;
    return ts_idmap_put(&r->by_id, s);
}

void ts_adp_del(ts_adp_rooms_t *r, ts_adp_sock_t *s) {
    for (size_t i = 0; i < s->nrooms; i++) member_drop(r, entry_at(s->rooms, i));
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

/* Where s is in `room` among its memberships, or -1. */
static long place_of(const ts_adp_sock_t *s, const char *room) {
    for (size_t i = 0; i < s->nrooms; i++)
        if (strcmp(entry_name(entry_at(s->rooms, i)), room) == 0) return (long)i;
    return -1;
}

int ts_adp_join(ts_adp_rooms_t *r, ts_adp_sock_t *s, const char *room) {
    if (strcmp(room, s->id) == 0) return 0; /* always in it */
    if (place_of(s, room) >= 0) return 0;
    void *o = room_find(r, room);
    room_t *rm = o && is_lone(o) ? room_promote(r, o) : o;
    mspec_t *v = ts_xmalloc(((size_t)s->nrooms + 1) * sizeof *v);
    specs_of(s, v);
    v[s->nrooms] = (mspec_t){rm, NULL, room};
    rebuild(r, s, v, (size_t)s->nrooms + 1);
    free(v);
    return 1;
}

int ts_adp_leave(ts_adp_rooms_t *r, ts_adp_sock_t *s, const char *room) {
    long i = place_of(s, room);
    if (i < 0) return 0;
    member_drop(r, entry_at(s->rooms, (size_t)i));
    /* the later ones move down one, keeping the joining order */
    mspec_t *v = ts_xmalloc(s->nrooms * sizeof *v);
    specs_of(s, v);
    memmove(v + i, v + i + 1, (s->nrooms - (size_t)i - 1) * sizeof *v);
    rebuild(r, s, v, s->nrooms - 1u);
    free(v);
    return 1;
}

size_t ts_adp_sock_rooms(const ts_adp_sock_t *s, const char **out, size_t max) {
    if (max) out[0] = s->id;
    size_t i = 1;
    for (size_t j = 0; j < s->nrooms && i < max; j++) out[i++] = entry_name(entry_at(s->rooms, j));
    return (size_t)s->nrooms + 1;
}

size_t ts_adp_room_size(const ts_adp_rooms_t *r, const char *room) {
    const void *o = room_find(r, room);
    size_t n = !o ? 0 : is_lone(o) ? 1 : ((const room_t *)o)->n2 >> 1;
    return n + (ts_adp_find(r, room) ? 1 : 0);
}

/* Stamps every socket of `room` (its own included) with `gen`. */
static void mark_room(ts_adp_rooms_t *r, const char *room, uint32_t gen) {
    ts_adp_sock_t *own = ts_adp_find(r, room);
    if (own) own->gen = gen;
    const void *o = room_find(r, room);
    if (!o) return;
    if (is_lone(o)) {
        entry_sock(o)->gen = gen;
        return;
    }
    ts_list_t *it;
    TS_LIST_FOREACH(it, &((room_t *)(uintptr_t)o)->members)
        entry_sock(ts_list_entry(it, member_t, link))->gen = gen;
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
        void *o = room_find(r, rooms[i]);
        if (!o) continue;
        if (is_lone(o)) {
            ts_adp_sock_t *s = entry_sock(o);
            if (s->gen != gen) {
                s->gen = gen;
                visit(s, ud);
                n++;
            }
            continue;
        }
        ts_list_t *it;
        TS_LIST_FOREACH(it, &((room_t *)o)->members) {
            ts_adp_sock_t *s = entry_sock(ts_list_entry(it, member_t, link));
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
