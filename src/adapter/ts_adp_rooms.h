/* ts_adp_rooms.h - the local adapter's room index: which of one loop's
 * sockets of a namespace are in which room, and who receives a broadcast
 * (sockets in any of its rooms, or everyone; minus the sockets in an
 * `except` room and the sender), each recipient once. Node's in-memory
 * adapter keeps the same two maps (room -> sockets, socket -> rooms); the
 * `sio` layer owns the sockets and embeds a ts_adp_sock_t in each.
 *
 * Rooms exist while they have members. Every socket is in the room named by
 * its own id without an entry for it (one room object per socket would
 * double the memory of an idle namespace socket). Single-threaded: one
 * index per (namespace, loop). */
#ifndef TS_ADP_ROOMS_H
#define TS_ADP_ROOMS_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_idmap.h"

#define TS_ADP_ID_LEN 20 /* a socket id: Engine.IO's sid alphabet and length */

typedef struct ts_adp_member ts_adp_member_t; /* private (rooms.c) */

/* A socket's part of the index, embedded in the socket and borrowed by the
 * index while added. Field order packs it into 40 bytes. */
typedef struct ts_adp_sock {
    void *rooms;            /* private: its memberships, in joining order (rooms.c) */
    uint32_t gen;           /* private: the broadcast that last reached it */
    uint32_t nrooms;        /* read-only: rooms joined, its own not counted */
    char id[TS_ADP_ID_LEN + 1]; /* its own room; set before ts_adp_add */
} ts_adp_sock_t;

typedef struct ts_adp_rooms {
    ts_idmap_t rooms; /* private: name -> room (one word per slot) */
    ts_idmap_t by_id; /* private: socket id -> ts_adp_sock_t */
    uint32_t gen;     /* private: stamps of broadcasts (wraps: see ts_adp_each) */
} ts_adp_rooms_t;

void ts_adp_rooms_init(ts_adp_rooms_t *r);
/* Every socket must have been removed. */
void ts_adp_rooms_deinit(ts_adp_rooms_t *r);

/* Sockets in the index. */
static inline size_t ts_adp_count(const ts_adp_rooms_t *r) { return r->by_id.count; }

/* Adds `s` (borrowed until ts_adp_del) with its own room only. Returns the
 * socket it displaced with the same id (NULL normally). */
ts_adp_sock_t *ts_adp_add(ts_adp_rooms_t *r, ts_adp_sock_t *s);
/* Makes `s` leave every room and drops it from the index. */
void ts_adp_del(ts_adp_rooms_t *r, ts_adp_sock_t *s);
/* Gives `s` the id `id` (its own room follows) unless another socket has
 * it. Returns 1 when renamed, 0 when `id` is taken. */
int ts_adp_rename(ts_adp_rooms_t *r, ts_adp_sock_t *s, const char *id);
/* The socket whose own room is `name`, or NULL. */
ts_adp_sock_t *ts_adp_find(const ts_adp_rooms_t *r, const char *name);

/* Joins / leaves a room. Return 1 when membership changed, 0 when `s` was
 * already in it (join), or not in it (leave). Its own room is always kept.
 * `room` is the caller's (copied when kept), never a name ts_adp_sock_rooms
 * lent: a join or leave may move those of every socket in the room. */
int ts_adp_join(ts_adp_rooms_t *r, ts_adp_sock_t *s, const char *room);
int ts_adp_leave(ts_adp_rooms_t *r, ts_adp_sock_t *s, const char *room);
/* The socket's rooms, its own first then in joining order: fills out[0..max)
 * (borrowed names, valid until the next join or leave in the index) and
 * returns how many it is in (nrooms + 1), which may exceed max. */
size_t ts_adp_sock_rooms(const ts_adp_sock_t *s, const char **out, size_t max);
/* Members of `room` in this index (a socket id counts its socket). */
size_t ts_adp_room_size(const ts_adp_rooms_t *r, const char *room);

/* Calls visit(s, ud) once for every recipient of a broadcast: the sockets in
 * any of rooms[0..nrooms) (nrooms == 0: every socket), minus those in any
 * of except[0..nexcept), minus `skip` (may be NULL). A visit must not add,
 * remove or move sockets (sending only queues bytes). Returns the recipients. */
typedef void (*ts_adp_visit_fn)(ts_adp_sock_t *s, void *ud);
size_t ts_adp_each(ts_adp_rooms_t *r, const char *const *rooms, size_t nrooms,
                   const char *const *except, size_t nexcept, const ts_adp_sock_t *skip,
                   ts_adp_visit_fn visit, void *ud);

/* The same rule for one socket that is not in the index (a saved session
 * being replayed what it missed): is a socket in sock_rooms[0..n) a
 * recipient of (rooms, except)? */
int ts_adp_rooms_match(const char *const *rooms, size_t nrooms, const char *const *except,
                       size_t nexcept, const char *const *sock_rooms, size_t n);

#endif
