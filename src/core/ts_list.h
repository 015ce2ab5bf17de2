/* ts_list.h - intrusive doubly linked list: the link lives in the element,
 * so inserting allocates nothing (the shape of nginx's ngx_queue_t). */
#ifndef TS_LIST_H
#define TS_LIST_H
#include <stddef.h>

#include "core/ts_mem.h"

typedef struct ts_list {
    struct ts_list *prev, *next;
} ts_list_t;

static inline void ts_list_init(ts_list_t *h) { h->prev = h->next = h; }
static inline int ts_list_empty(const ts_list_t *h) { return h->next == h; }
/* A link that is not in any list (after ts_list_remove or init) points at itself. */
static inline int ts_list_linked(const ts_list_t *n) { return n->next != n; }
static inline void ts_list_insert_tail(ts_list_t *h, ts_list_t *n) {
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void ts_list_remove(ts_list_t *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
#define ts_list_entry(ptr, type, member) TS_CONTAINER_OF(ptr, type, member)
#define TS_LIST_FOREACH(it, head) for ((it) = (head)->next; (it) != (head); (it) = (it)->next)
/* Safe against removal of the current element. */
#define TS_LIST_FOREACH_SAFE(it, tmp, head)                                    \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head);              \
         (it) = (tmp), (tmp) = (it)->next)

#endif
