/* ts_adp_bus.h - the local adapter's bus between the event loops of one
 * process: one ordered log per namespace. A loop appends its broadcasts and
 * delivers everything (its own and the other loops') from its own cursor,
 * so every socket sees a namespace's broadcasts in one order whichever loop
 * holds it; with connection state recovery the log also keeps what a
 * reconnecting socket may have missed (for the window, within bounds).
 *
 * Entries are the caller's objects with an embedded header: refcounted
 * (atomically: loops deliver them outside the lock), destroyed by their own
 * callback at the last reference. The bus orders, keeps and prunes them.
 * Not thread-safe: the caller holds one mutex per namespace around every
 * call (the same that guards the saved sessions, ts_adp_saved.h). */
#ifndef TS_ADP_BUS_H
#define TS_ADP_BUS_H
#include <stddef.h>
#include <stdint.h>

#define TS_ADP_MAX_LOOPS 64

typedef struct ts_adp_entry ts_adp_entry_t;
struct ts_adp_entry {
    uint32_t refs;  /* private: atomic */
    uint64_t seq;   /* read-only: set by ts_adp_bus_append */
    uint64_t at_ms; /* when it was made (the recovery window counts from it) */
    size_t bytes;   /* what it holds, counted against max_bytes */
    void (*destroy)(ts_adp_entry_t *e); /* frees the object at the last unref */
};

/* A new entry holds one reference (the caller's). */
void ts_adp_entry_init(ts_adp_entry_t *e, uint64_t at_ms, void (*destroy)(ts_adp_entry_t *));
void ts_adp_entry_ref(ts_adp_entry_t *e);
void ts_adp_entry_unref(ts_adp_entry_t *e);

typedef struct ts_adp_bus_limits {
    uint64_t keep_ms;   /* keep delivered entries this long (recovery); 0: drop
                           an entry once every loop delivered it */
    size_t max_entries; /* and, when keeping, at most this many */
    size_t max_bytes;   /* and this many bytes */
} ts_adp_bus_limits_t;

typedef struct ts_adp_bus {
    ts_adp_bus_limits_t lim;       /* read-only */
    size_t nloops;                 /* read-only */
    size_t n, bytes;               /* read-only: entries held and their bytes */
    uint64_t next_seq;             /* read-only: the seq of the next append */
    ts_adp_entry_t **ring;         /* private: ring[(head + i) % cap], ascending seq */
    size_t head, cap;              /* private */
    uint64_t cursor[TS_ADP_MAX_LOOPS]; /* private: next seq each loop delivers */
} ts_adp_bus_t;

void ts_adp_bus_init(ts_adp_bus_t *b, const ts_adp_bus_limits_t *lim, size_t nloops);
/* Drops the bus's references. */
void ts_adp_bus_deinit(ts_adp_bus_t *b);

/* Loop `loop` delivers from now on (its cursor: the next append), or no
 * longer (it stops holding back pruning). */
void ts_adp_bus_attach(ts_adp_bus_t *b, size_t loop);
void ts_adp_bus_detach(ts_adp_bus_t *b, size_t loop);
/* The next seq loop `loop` has to deliver. */
uint64_t ts_adp_bus_cursor(const ts_adp_bus_t *b, size_t loop);

/* New references to the entries loop `loop` has not delivered, in order,
 * in *out (a new array, or NULL); its cursor moves past them. Returns how
 * many. The caller delivers them outside the lock, then unrefs each. */
size_t ts_adp_bus_take(ts_adp_bus_t *b, size_t loop, ts_adp_entry_t ***out);
/* Appends `e` with seq = next_seq; the bus takes its own reference. Loop
 * `loop` made it and delivers it itself: its cursor moves past it (take
 * first, so that what came before is delivered before it). */
void ts_adp_bus_append(ts_adp_bus_t *b, size_t loop, ts_adp_entry_t *e);
/* The entry with sequence `seq` while the bus holds it, else NULL
 * (borrowed: ref it to use it outside the lock). */
ts_adp_entry_t *ts_adp_bus_at(const ts_adp_bus_t *b, uint64_t seq);
/* Drops entries every attached loop delivered that recovery does not need:
 * all of them when keep_ms is 0, else the oldest past keep_ms or over
 * max_entries / max_bytes. */
void ts_adp_bus_prune(ts_adp_bus_t *b, uint64_t now_ms);

#endif
