/* memory.c - the "memory" store backend: registry and leases in hash maps,
 * per-session logs, state and history in memory (mem_log.c), and (when
 * cfg.sqlite_path is set) everything that must survive a restart written to
 * SQLite under a durability policy (group commit: mem_batch.c).
 *
 * Every call only validates, copies its arguments into an op and queues
 * it; a uv_idle handle runs the queue on the next loop turn, one op at a
 * time in issue order. Reads run when their callback is due; other ops run
 * at once and keep their result until their callback is due, which for a
 * write to the file is after the COMMIT that makes it durable. Callbacks of
 * one door are called in issue order. So callers are never re-entered, the
 * store never changes while a callback holds borrowed pointers into it, and
 * ops through one door complete in issue order.
 *
 * With one loop per core, other loops reach the same store through doors
 * (ts_store_attach): each door has its own queue, pending list and handles
 * on its own loop, and runs its ops, callbacks included, holding the
 * store's mutex. So callbacks still run on the caller's loop with the store
 * unchanged under them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "store/mem_int.h"

#define KEY_SEP '\x1f' /* ids never contain control characters */
#define KEY_MAX (3 * TS_STORE_ID_MAX + 2)

/* One registry entry, one allocation. Its fields are found from lengths
 * (reg_view) rather than kept as slices, and it is found through four
 * ts_idmap tables of one word per slot that read their keys inside it (the
 * whole key; the session, user and device ids). An index's slot points to
 * the first entry of its id; the others follow it in a list through the
 * entries themselves, so an id costs no object of its own (issue #13: the
 * registry was the largest item of an idle tab's memory). */
enum { R_SESSION, R_DEVICE, R_TAB, R_USER, R_NODE, R_DATA, R_NLENS };
typedef struct mem_reg mem_reg_t;
struct mem_reg {
    uint64_t exp;             /* monotonic ms */
    uint32_t hidx;            /* position in the expiry heap */
    uint16_t len[R_NLENS];    /* ids' and data's bytes (<= TS_STORE_ID_MAX, REG_DATA_MAX) */
    mem_reg_t *next[3];       /* by session, user, device: the next entry of the id, or NULL */
    mem_reg_t *prev[3];       /* the one before; the first entry's is the last (O(1) append) */
    char mem[];               /* the key (session SEP device SEP tab), user, node, data */
};
_Static_assert(TS_STORE_ID_MAX <= UINT16_MAX, "an id's length fits mem_reg_t.len");
_Static_assert(TS_STORE_REG_DATA_MAX <= UINT16_MAX, "data's length fits mem_reg_t.len");

/* ---------------------------------------------------------------- clock */

static uint64_t now_ms(void) { return ts_now_ms(); }
static uint64_t wall_of(uint64_t exp, uint64_t now) {
    return exp > now ? ts_wall_ms() + (exp - now) : ts_wall_ms();
}

/* ---------------------------------------------------------------- heap */

static void heap_set(mem_t *m, size_t i, mem_reg_t *e) {
    m->heap[i] = e;
    e->hidx = (uint32_t)i; /* entries are bounded (reg_max) far below 2^32 */
}
static void heap_up(mem_t *m, size_t i) {
    mem_reg_t *e = m->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (m->heap[p]->exp <= e->exp) break;
        heap_set(m, i, m->heap[p]);
        i = p;
    }
    heap_set(m, i, e);
}
static void heap_down(mem_t *m, size_t i) {
    mem_reg_t *e = m->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m->heap_n) break;
        if (c + 1 < m->heap_n && m->heap[c + 1]->exp < m->heap[c]->exp) c++;
        if (e->exp <= m->heap[c]->exp) break;
        heap_set(m, i, m->heap[c]);
        i = c;
    }
    heap_set(m, i, e);
}
static void heap_push(mem_t *m, mem_reg_t *e) {
    if (m->heap_n == m->heap_cap) {
        m->heap_cap = m->heap_cap ? m->heap_cap * 2 : 64;
        m->heap = ts_xrealloc(m->heap, m->heap_cap * sizeof *m->heap);
    }
    heap_set(m, m->heap_n++, e);
    heap_up(m, e->hidx);
}
static void heap_remove(mem_t *m, mem_reg_t *e) {
    size_t i = e->hidx, last = --m->heap_n;
    ts_assert(i <= last && m->heap[i] == e);
    if (i == last) return;
    heap_set(m, i, m->heap[last]);
    heap_up(m, i);
    heap_down(m, m->heap[i]->hidx);
}

/* ---------------------------------------------------------------- registry */

static size_t make_key(char *out, ts_slice_t a, ts_slice_t b, ts_slice_t c) {
    size_t n = 0;
    memcpy(out + n, a.p, a.len), n += a.len, out[n++] = KEY_SEP;
    memcpy(out + n, b.p, b.len), n += b.len, out[n++] = KEY_SEP;
    memcpy(out + n, c.p, c.len), n += c.len;
    return n;
}

static size_t reg_klen(const mem_reg_t *r) {
    return (size_t)r->len[R_SESSION] + 1 + r->len[R_DEVICE] + 1 + r->len[R_TAB];
}

/* The entry as the store's callers see it (slices into r; expires_at not set). */
static ts_store_reg_t reg_view(const mem_reg_t *r) {
    ts_store_reg_t e = {0};
    const char *p = r->mem;
    e.key.session = ts_slice(p, r->len[R_SESSION]);
    p += r->len[R_SESSION] + 1;
    e.key.device = ts_slice(p, r->len[R_DEVICE]);
    p += r->len[R_DEVICE] + 1;
    e.key.tab = ts_slice(p, r->len[R_TAB]);
    p += r->len[R_TAB];
    e.user = ts_slice(p, r->len[R_USER]);
    p += r->len[R_USER];
    e.node = ts_slice(p, r->len[R_NODE]);
    p += r->len[R_NODE];
    e.data = ts_slice(p, r->len[R_DATA]);
    return e;
}

static ts_slice_t idx_id(const mem_reg_t *r, int by) {
    ts_store_reg_t e = reg_view(r);
    return by == TS_STORE_BY_SESSION ? e.key.session
           : by == TS_STORE_BY_USER  ? e.user
                                     : e.key.device;
}

/* The keys of the four tables, read in the entry. */
static ts_slice_t key_whole(const void *o) {
    const mem_reg_t *r = o;
    return ts_slice(r->mem, reg_klen(r));
}
static ts_slice_t key_session(const void *o) { return idx_id(o, TS_STORE_BY_SESSION); }
static ts_slice_t key_user(const void *o) { return idx_id(o, TS_STORE_BY_USER); }
static ts_slice_t key_device(const void *o) { return idx_id(o, TS_STORE_BY_DEVICE); }

static ts_slice_t key_sess(const void *o) {
    if (ts_store__mem_is_stub(o)) {
        const mem_stub_t *t = o;
        return ts_slice(t->key, t->klen);
    }
    const mem_sess_t *s = o;
    return ts_slice(s->key, s->klen);
}

/* The tables that find their keys in their objects (ts_idmap_init_fn). */
static void tables_init(mem_t *m) {
    ts_idmap_init_fn(&m->sessions, key_sess);
    ts_idmap_init_fn(&m->regs, key_whole);
    ts_idmap_init_fn(&m->idx[TS_STORE_BY_SESSION], key_session);
    ts_idmap_init_fn(&m->idx[TS_STORE_BY_USER], key_user);
    ts_idmap_init_fn(&m->idx[TS_STORE_BY_DEVICE], key_device);
}

/* The first entry of an id in index `by`, or NULL. */
static mem_reg_t *idx_first(const mem_t *m, int by, ts_slice_t id) {
    return ts_idmap_get_n(&m->idx[by], (const char *)id.p, id.len);
}

static void reg_unlink(mem_t *m, mem_reg_t *r) {
    ts_idmap_del_n(&m->regs, r->mem, reg_klen(r));
    heap_remove(m, r);
    for (int by = 0; by < 3; by++) {
        ts_slice_t id = idx_id(r, by);
        mem_reg_t *first = idx_first(m, by, id), *next = r->next[by];
        ts_assert(first != NULL);
        if (first == r) {
            if (next) {
                next->prev[by] = r->prev[by];
                ts_idmap_put(&m->idx[by], next); /* the same id: takes r's slot */
            } else {
                ts_idmap_del_n(&m->idx[by], (const char *)id.p, id.len);
            }
        } else {
            r->prev[by]->next[by] = next;
            if (next)
                next->prev[by] = r->prev[by];
            else
                first->prev[by] = r->prev[by];
        }
        r->next[by] = r->prev[by] = NULL;
    }
}

static void reg_link(mem_t *m, mem_reg_t *r) {
    ts_idmap_put(&m->regs, r);
    heap_push(m, r);
    for (int by = 0; by < 3; by++) {
        mem_reg_t *first = idx_first(m, by, idx_id(r, by));
        r->next[by] = NULL;
        if (!first) {
            r->prev[by] = r;
            ts_idmap_put(&m->idx[by], r);
        } else { /* after the last, as before */
            r->prev[by] = first->prev[by];
            first->prev[by]->next[by] = r;
            first->prev[by] = r;
        }
    }
}

static ts_slice_t copy_into(char **at, ts_slice_t v) {
    char *p = *at;
    if (v.len) memcpy(p, v.p, v.len);
    *at += v.len;
    return ts_slice(p, v.len);
}

static mem_reg_t *reg_new(const ts_slice_t *s, uint64_t exp) {
    /* s: session, device, tab, user, node, data (ids checked: each at most
     * TS_STORE_ID_MAX bytes, which fits the 16-bit lengths) */
    size_t total = 2;
    for (int i = 0; i < 6; i++) total += s[i].len;
    mem_reg_t *r = ts_xcalloc(1, sizeof *r + total);
    size_t n = make_key(r->mem, s[0], s[1], s[2]);
    for (int i = 3; i < 6; i++) {
        if (s[i].len) memcpy(r->mem + n, s[i].p, s[i].len);
        n += s[i].len;
    }
    for (int i = 0; i < R_NLENS; i++) r->len[i] = (uint16_t)s[i].len;
    r->exp = exp;
    return r;
}

static mem_reg_t *reg_find(mem_t *m, const ts_slice_t *s) {
    char key[KEY_MAX];
    size_t n = make_key(key, s[0], s[1], s[2]);
    return ts_idmap_get_n(&m->regs, key, n);
}

static int exec_reg_put(mem_t *m, mem_op_t *op) {
    uint64_t now = now_ms();
    mem_reg_t *old = reg_find(m, op->s);
    if (!old && m->regs.count >= m->lim.reg_max) return TS_ELIMIT;
    if (old) {
        reg_unlink(m, old);
        free(old);
    }
    reg_link(m, reg_new(op->s, now + op->a));
    return 0;
}

static int exec_reg_renew(mem_t *m, mem_op_t *op) {
    uint64_t now = now_ms();
    mem_reg_t *r = reg_find(m, op->s);
    if (!r || r->exp <= now) return TS_ENOTFOUND; /* expired: the sweep reports it */
    r->exp = now + op->a;
    heap_up(m, r->hidx);
    heap_down(m, r->hidx);
    return 0;
}

static int exec_reg_remove(mem_t *m, mem_op_t *op) {
    mem_reg_t *r = reg_find(m, op->s);
    if (!r) return TS_ENOTFOUND;
    int rc = r->exp <= now_ms() ? TS_ENOTFOUND : 0;
    reg_unlink(m, r);
    free(r);
    return rc;
}

void ts_store__mem_read_reg(mem_t *m, mem_op_t *op) {
    mem_reg_t *first = idx_first(m, op->by, op->s[0]);
    ts_store_reg_t *arr = NULL;
    size_t n = 0, all = 0;
    for (mem_reg_t *r = first; r; r = r->next[op->by]) all++;
    if (all) {
        uint64_t now = now_ms();
        arr = ts_xmalloc(all * sizeof *arr);
        for (mem_reg_t *r = first; r; r = r->next[op->by]) {
            if (r->exp <= now) continue;
            arr[n] = reg_view(r);
            arr[n].expires_at = wall_of(r->exp, now);
            n++;
        }
    }
    if (op->cb.list) op->cb.list(0, n ? arr : NULL, n, op->ud);
    free(arr);
}

/* ---------------------------------------------------------------- leases */

static int lease_held(const mem_lease_t *l, uint64_t now) { return l->exp > now; }

static void sweep_leases(mem_t *m, uint64_t now);

static mem_lease_t *lease_get(mem_t *m, ts_slice_t name, int create, int *rc) {
    *rc = 0;
    mem_lease_t *l = ts_map_get(&m->leases, (const char *)name.p, name.len);
    if (l || !create) return l;
    uint64_t term = 0;
    if (m->sql && (*rc = ts_store__sql_term_get(m->sql, name, &term))) return NULL;
    if (m->leases.count >= m->lim.leases_max) {
        if (m->sql) sweep_leases(m, now_ms());
        if (m->leases.count >= m->lim.leases_max) {
            *rc = TS_ELIMIT;
            return NULL;
        }
    }
    l = ts_xcalloc(1, sizeof *l + name.len);
    l->term = term;
    l->klen = name.len;
    memcpy(l->key, name.p, name.len);
    ts_map_put(&m->leases, l->key, l->klen, l);
    return l;
}

void ts_store__mem_lease_forget(mem_t *m, mem_lease_t *l) {
    ts_map_del(&m->leases, l->key, l->klen);
    free(l);
}

/* Clears expired holders. With SQLite the term is in the file, so a lease
 * nobody holds is forgotten (unless the open batch holds its new term);
 * memory only, its term must be remembered. */
static void sweep_leases(mem_t *m, uint64_t now) {
    size_t it = 0;
    ts_map_entry_t *e;
    while (ts_map_next(&m->leases, &it, &e)) {
        mem_lease_t *l = e->val;
        if (lease_held(l, now)) continue;
        l->exp = 0;
        l->hlen = 0;
        if (m->sql && !l->dirty) ts_store__mem_lease_forget(m, l);
    }
}

/* The lease as a callback sees it, kept in the op until it is due. */
static void lease_result(mem_op_t *op, const mem_lease_t *l, uint64_t now) {
    if (!l) return;
    op->r_seq = l->term;
    if (lease_held(l, now)) {
        op->r_exp = wall_of(l->exp, now);
        op->r_buf = ts_buf_from(l->holder, l->hlen);
    }
}

static int lease_is(const mem_lease_t *l, ts_slice_t holder, uint64_t term, uint64_t now) {
    return l && lease_held(l, now) && l->term == term &&
           ts_slice_eq(ts_slice(l->holder, l->hlen), holder);
}

/* Grants l's next term to `to` until now + ttl. A new term goes through
 * the durability policy like any write: a term handed out must never be
 * handed out again after a crash. Returns 0 or the failure (then l may be
 * freed: the batch failed). */
static int lease_grant(mem_t *m, mem_lease_t *l, ts_slice_t name, ts_slice_t to, uint64_t ttl,
                       uint64_t now) {
    int rc = ts_store__mem_batch_begin(m);
    if (rc) return rc;
    if (m->sql && (rc = ts_store__sql_term_put(m->sql, name, l->term + 1))) {
        ts_store__mem_batch_fail(m);
        return rc;
    }
    ts_store__mem_touch_lease(m, l);
    l->term++;
    l->exp = now + ttl;
    l->hlen = to.len;
    memcpy(l->holder, to.p, l->hlen);
    return 0;
}

static void exec_lease_acquire(mem_t *m, mem_op_t *op) {
    uint64_t now = now_ms();
    mem_lease_t *l = lease_get(m, op->s[0], 1, &op->status);
    if (!l) return;
    if (lease_held(l, now)) {
        if (ts_slice_eq(ts_slice(l->holder, l->hlen), op->s[1]))
            l->exp = now + op->a; /* same holder: extend, same term */
        else
            op->status = TS_EHELD;
    } else if ((op->status = lease_grant(m, l, op->s[0], op->s[1], op->a, now))) {
        return;
    }
    lease_result(op, l, now);
    if (l->dirty) ts_store__mem_op_join(m, op);
}

static void exec_lease_renew(mem_t *m, mem_op_t *op) {
    uint64_t now = now_ms();
    mem_lease_t *l = lease_get(m, op->s[0], 0, &op->status);
    if (lease_is(l, op->s[1], op->a, now)) {
        l->exp = now + op->b;
    } else {
        op->status = TS_ESTALE;
        /* the last granted term, from the file if not in memory */
        if (!l && m->sql) ts_store__sql_term_get(m->sql, op->s[0], &op->r_seq);
    }
    lease_result(op, l, now);
    if (l && l->dirty) ts_store__mem_op_join(m, op);
}

static void exec_lease_release(mem_t *m, mem_op_t *op) {
    mem_lease_t *l = lease_get(m, op->s[0], 0, &op->status);
    if (!lease_is(l, op->s[1], op->a, now_ms())) {
        op->status = TS_ESTALE;
    } else {
        l->exp = 0;
        l->hlen = 0;
    }
    if (l && l->dirty) ts_store__mem_op_join(m, op);
}

/* op: s[0] name, s[1] to, a term, b ttl. Compare-and-set on the last
 * granted term, whoever holds it or whether it lapsed. */
static void exec_lease_transfer(mem_t *m, mem_op_t *op) {
    uint64_t now = now_ms();
    mem_lease_t *l = lease_get(m, op->s[0], 1, &op->status);
    if (!l) return;
    if (l->term != op->a) {
        op->status = TS_ESTALE;
    } else if ((op->status = lease_grant(m, l, op->s[0], op->s[1], op->b, now))) {
        return;
    }
    lease_result(op, l, now);
    if (l->dirty) ts_store__mem_op_join(m, op);
}

/* Runs in order with the door's writes, so it sees the grants they made
 * (and waits, like them, for the batch that made them durable). */
static void exec_lease_get(mem_t *m, mem_op_t *op) {
    mem_lease_t *l = lease_get(m, op->s[0], 0, &op->status);
    if (op->status) return;
    if (!l && m->sql) ts_store__sql_term_get(m->sql, op->s[0], &op->r_seq);
    lease_result(op, l, now_ms());
    if (l && l->dirty) ts_store__mem_op_join(m, op);
}

int ts_store__mem_lease_fence(mem_t *m, mem_op_t *op, ts_slice_t name, ts_slice_t holder,
                              uint64_t term) {
    mem_lease_t *l = ts_map_get(&m->leases, (const char *)name.p, name.len);
    if (!l) {
        op->r_term = 0;
        if (m->sql) ts_store__sql_term_get(m->sql, name, &op->r_term);
        return 0; /* not in memory: nobody holds it */
    }
    op->r_term = l->term;
    if (l->dirty) ts_store__mem_op_join(m, op);
    return lease_is(l, holder, term, now_ms());
}

/* ---------------------------------------------------------------- queue */

uint64_t ts_store__mem_new_epoch(void) {
    uint64_t e = 0;
    while (e == 0) { /* 63 bits: stored as a positive SQLite integer */
        ts_random_bytes(&e, sizeof e);
        e >>= 1;
    }
    return e;
}

/* Runs an op that is not a read; its result waits in the op. */
static void exec_op(mem_t *m, mem_door_t *d, mem_op_t *op) {
    switch (op->kind) {
    case OP_SUBSCRIBE: ts_store__mem_exec_subscribe(m, d, op); break;
    case OP_UNSUBSCRIBE: ts_store__mem_exec_unsubscribe(m, d, op); break;
    case OP_PUBLISH: ts_store__mem_exec_publish(m, op); break;
    case OP_REG_PUT: op->status = exec_reg_put(m, op); break;
    case OP_REG_RENEW: op->status = exec_reg_renew(m, op); break;
    case OP_REG_REMOVE: op->status = exec_reg_remove(m, op); break;
    case OP_LOG_APPEND: ts_store__mem_exec_log_append(m, op); break;
    case OP_LOG_TRIM: ts_store__mem_exec_log_trim(m, op); break;
    case OP_STATE_CAS: ts_store__mem_exec_state_cas(m, op); break;
    case OP_COMMIT: ts_store__mem_exec_commit(m, op); break;
    case OP_SNAP_PUT: ts_store__mem_exec_snap_put(m, op); break;
    case OP_SESS_GET: ts_store__mem_exec_sess_open(m, op); break;
    case OP_LEASE_ACQUIRE: exec_lease_acquire(m, op); break;
    case OP_LEASE_RENEW: exec_lease_renew(m, op); break;
    case OP_LEASE_RELEASE: exec_lease_release(m, op); break;
    case OP_LEASE_TRANSFER: exec_lease_transfer(m, op); break;
    case OP_LEASE_GET: exec_lease_get(m, op); break;
    default: ts_assert(!"unknown store op"); break;
    }
    if (op->status == TS_ESTORE) ts_buf_unref(op->r_buf), op->r_buf = NULL;
}

static void finish_close(mem_door_t *d);
static void on_idle(uv_idle_t *h);

/* Commits now, whatever group_ms says: SYNC after every write, NONE and
 * group_ms 0 at the end of the turn, a closing door before it goes. */
static int commit_now(const mem_t *m, const mem_door_t *d, int end_of_turn) {
    if (!m->batch_open) return 0;
    if (m->lim.durability == TS_STORE_DUR_SYNC) return 1;
    return end_of_turn && (m->lim.group_ms == 0 || d->closing);
}

/* Runs what was queued before this turn; ops queued by the callbacks wait
 * for the next turn (the idle handle stays active), so a callback chain
 * cannot starve the loop. */
static void on_idle(uv_idle_t *h) {
    mem_door_t *d = h->data;
    mem_t *m = d->m;
    ts_list_t batch;
    if (ts_list_empty(&d->queue)) {
        ts_list_init(&batch);
    } else {
        batch = d->queue;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        ts_list_init(&d->queue);
    }
    pthread_mutex_lock(&m->mu);
    while (!ts_list_empty(&batch)) {
        mem_op_t *op = TS_CONTAINER_OF(batch.next, mem_op_t, link);
        ts_list_remove(&op->link);
        if (!op_is_read(op->kind)) {
            exec_op(m, d, op);
            if (commit_now(m, d, 0)) ts_store__mem_batch_commit(m);
        }
        /* due now: nothing of this door waits before it, nor its batch */
        if (ts_list_empty(&d->pending) && op->gen <= m->done_gen) {
            if (op_is_read(op->kind))
                ts_store__mem_run_read(m, op);
            else
                ts_store__mem_deliver_op(m, op);
            ts_store__mem_op_free(op);
        } else {
            ts_list_insert_tail(&d->pending, &op->link);
        }
    }
    if (commit_now(m, d, 1)) ts_store__mem_batch_commit(m);
    ts_store__mem_door_deliver(d);
    ts_store__mem_door_settle(d);
    int idle = ts_list_empty(&d->queue), drained = idle && ts_list_empty(&d->pending);
    pthread_mutex_unlock(&m->mu);
    if (!idle) return;
    if (d->closing && drained)
        finish_close(d);
    else if (!d->closing)
        uv_idle_stop(&d->idle);
}

/* Copies the strings into one allocation with the op. */
static mem_op_t *op_new(enum op_kind kind, void *ud, const ts_slice_t *s, int ns) {
    size_t total = 0;
    for (int i = 0; i < ns; i++) total += s[i].len;
    mem_op_t *op = ts_xcalloc(1, sizeof *op + total);
    op->kind = kind;
    op->ud = ud;
    char *at = (char *)op->mem;
    for (int i = 0; i < ns; i++) op->s[i] = copy_into(&at, s[i]);
    return op;
}

static int submit(mem_door_t *d, mem_op_t *op) {
    ts_list_insert_tail(&d->queue, &op->link);
    uv_idle_start(&d->idle, on_idle);
    return 0;
}

#define CHECK_OPEN(m)                                                          \
    do {                                                                       \
        if ((m)->closing) return TS_ECLOSED;                                   \
    } while (0)

static int mem_reg_put(void *self, const ts_store_reg_t *e, uint64_t ttl_ms, ts_store_done_cb cb,
                       void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    ts_slice_t s[6] = {e->key.session, e->key.device, e->key.tab, e->user, e->node, e->data};
    mem_op_t *op = op_new(OP_REG_PUT, ud, s, 6);
    op->cb.done = cb;
    op->a = ttl_ms;
    return submit(d, op);
}

static int mem_reg_renew(void *self, const ts_store_reg_key_t *k, uint64_t ttl_ms,
                         ts_store_done_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    ts_slice_t s[3] = {k->session, k->device, k->tab};
    mem_op_t *op = op_new(OP_REG_RENEW, ud, s, 3);
    op->cb.done = cb;
    op->a = ttl_ms;
    return submit(d, op);
}

static int mem_reg_remove(void *self, const ts_store_reg_key_t *k, ts_store_done_cb cb,
                          void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    ts_slice_t s[3] = {k->session, k->device, k->tab};
    mem_op_t *op = op_new(OP_REG_REMOVE, ud, s, 3);
    op->cb.done = cb;
    return submit(d, op);
}

static int mem_reg_list(void *self, ts_store_by_t by, ts_slice_t id, ts_store_reg_list_cb cb,
                        void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    mem_op_t *op = op_new(OP_REG_LIST, ud, &id, 1);
    op->cb.list = cb;
    op->by = (int)by;
    return submit(d, op);
}

static int mem_log_append(void *self, ts_slice_t session, ts_buf_t *event, ts_store_seq_cb cb,
                          void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    if (event->len > d->m->lim.event_max) return TS_ETOOBIG;
    mem_op_t *op = op_new(OP_LOG_APPEND, ud, &session, 1);
    op->cb.seq = cb;
    op->buf = ts_buf_ref(event);
    return submit(d, op);
}

static int mem_log_read(void *self, ts_slice_t session, uint64_t after_seq, size_t max,
                        ts_store_log_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    mem_op_t *op = op_new(OP_LOG_READ, ud, &session, 1);
    op->cb.log = cb;
    op->a = after_seq;
    op->b = max;
    return submit(d, op);
}

static int mem_log_trim(void *self, ts_slice_t session, uint64_t upto_seq, ts_store_done_cb cb,
                        void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    mem_op_t *op = op_new(OP_LOG_TRIM, ud, &session, 1);
    op->cb.done = cb;
    op->a = upto_seq;
    return submit(d, op);
}

static int mem_state_get(void *self, ts_slice_t session, ts_store_state_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    mem_op_t *op = op_new(OP_STATE_GET, ud, &session, 1);
    op->cb.state = cb;
    return submit(d, op);
}

static int mem_state_cas(void *self, ts_slice_t session, uint64_t expected, ts_buf_t *doc,
                         ts_store_state_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    if (doc->len > d->m->lim.state_max) return TS_ETOOBIG;
    mem_op_t *op = op_new(OP_STATE_CAS, ud, &session, 1);
    op->cb.state = cb;
    op->a = expected;
    op->buf = ts_buf_ref(doc);
    return submit(d, op);
}

static int mem_sess_get(void *self, ts_slice_t session, ts_store_sess_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    mem_op_t *op = op_new(OP_SESS_GET, ud, &session, 1);
    op->cb.sess = cb;
    return submit(d, op);
}

static int mem_commit(void *self, ts_slice_t session, const ts_store_commit_t *c,
                      ts_store_commit_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    if (c->event->len > d->m->lim.event_max) return TS_ETOOBIG;
    ts_slice_t s[4] = {session, c->client, c->fence, c->fence_holder};
    mem_op_t *op = op_new(OP_COMMIT, ud, s, 4);
    op->cb.commit = cb;
    op->a = c->mut;
    op->b = c->if_ver;
    op->by = c->is_state != 0;
    op->c = c->chain;
    op->d = c->fence_term;
    op->buf = ts_buf_ref(c->event);
    return submit(d, op);
}

static int mem_snap_put(void *self, ts_slice_t session, uint64_t seq, uint64_t ver, ts_buf_t *doc,
                        ts_store_done_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    if (doc->len > d->m->lim.state_max) return TS_ETOOBIG;
    mem_op_t *op = op_new(OP_SNAP_PUT, ud, &session, 1);
    op->cb.done = cb;
    op->a = seq;
    op->b = ver;
    op->buf = ts_buf_ref(doc);
    return submit(d, op);
}

static int mem_lease_acquire(void *self, ts_slice_t name, ts_slice_t holder, uint64_t ttl_ms,
                             ts_store_lease_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    ts_slice_t s[2] = {name, holder};
    mem_op_t *op = op_new(OP_LEASE_ACQUIRE, ud, s, 2);
    op->cb.lease = cb;
    op->a = ttl_ms;
    return submit(d, op);
}

static int mem_lease_renew(void *self, ts_slice_t name, ts_slice_t holder, uint64_t term,
                           uint64_t ttl_ms, ts_store_lease_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    ts_slice_t s[2] = {name, holder};
    mem_op_t *op = op_new(OP_LEASE_RENEW, ud, s, 2);
    op->cb.lease = cb;
    op->a = term;
    op->b = ttl_ms;
    return submit(d, op);
}

static int mem_lease_release(void *self, ts_slice_t name, ts_slice_t holder, uint64_t term,
                             ts_store_done_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    ts_slice_t s[2] = {name, holder};
    mem_op_t *op = op_new(OP_LEASE_RELEASE, ud, s, 2);
    op->cb.done = cb;
    op->a = term;
    return submit(d, op);
}

static int mem_lease_transfer(void *self, ts_slice_t name, uint64_t term, ts_slice_t to,
                              uint64_t ttl_ms, ts_store_lease_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    ts_slice_t s[2] = {name, to};
    mem_op_t *op = op_new(OP_LEASE_TRANSFER, ud, s, 2);
    op->cb.lease = cb;
    op->a = term;
    op->b = ttl_ms;
    return submit(d, op);
}

static int mem_lease_get(void *self, ts_slice_t name, ts_store_lease_cb cb, void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    mem_op_t *op = op_new(OP_LEASE_GET, ud, &name, 1);
    op->cb.lease = cb;
    return submit(d, op);
}

static int pubsub_op(void *self, enum op_kind kind, ts_store_chan_t chan, ts_slice_t channel,
                     ts_store_msg_cb on_msg, void *msg_ud, ts_buf_t *msg, ts_store_done_cb cb,
                     void *ud) {
    mem_door_t *d = self;
    CHECK_OPEN(d);
    mem_op_t *op = op_new(kind, ud, &channel, 1);
    op->cb.done = cb;
    op->by = (int)chan;
    op->on_msg = on_msg;
    op->msg_ud = msg_ud;
    op->buf = msg ? ts_buf_ref(msg) : NULL;
    return submit(d, op);
}

static int mem_subscribe(void *self, ts_store_chan_t kind, ts_slice_t channel,
                         ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb, void *ud) {
    return pubsub_op(self, OP_SUBSCRIBE, kind, channel, on_msg, msg_ud, NULL, cb, ud);
}

static int mem_unsubscribe(void *self, ts_store_chan_t kind, ts_slice_t channel,
                           ts_store_msg_cb on_msg, void *msg_ud, ts_store_done_cb cb, void *ud) {
    return pubsub_op(self, OP_UNSUBSCRIBE, kind, channel, on_msg, msg_ud, NULL, cb, ud);
}

static int mem_publish(void *self, ts_store_chan_t kind, ts_slice_t channel, ts_buf_t *msg,
                       ts_store_done_cb cb, void *ud) {
    return pubsub_op(self, OP_PUBLISH, kind, channel, NULL, NULL, msg, cb, ud);
}

static int mem_stats(void *self, ts_store_stats_t *out) {
    const ts_store_stats_t *s = &((mem_door_t *)self)->m->stats;
    const uint64_t *src = (const uint64_t *)s;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *s / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    return 0;
}

/* ---------------------------------------------------------------- sweep */

/* Registry expiry, leases nobody holds, retention; then the retention's
 * writes are committed like any others (right away if group_ms is 0). */
static void on_sweep(uv_timer_t *t) {
    mem_t *m = t->data;
    uint64_t now = now_ms();
    pthread_mutex_lock(&m->mu);
    while (m->heap_n && m->heap[0]->exp <= now && !m->closing) {
        mem_reg_t *r = m->heap[0];
        reg_unlink(m, r);
        if (m->on_expire) {
            ts_store_reg_t e = reg_view(r);
            e.expires_at = wall_of(r->exp, now);
            m->on_expire(&e, m->expire_ud);
        }
        free(r);
    }
    if (!m->closing) {
        sweep_leases(m, now);
        ts_store__mem_retain(m);
        if (m->batch_open && (m->lim.group_ms == 0 || m->lim.durability == TS_STORE_DUR_SYNC))
            ts_store__mem_batch_commit(m);
        else if (m->batch_open)
            ts_store__mem_door_arm(&m->door);
    }
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------- open/close */

static void free_all(mem_t *m) {
    if (m->batch_open) ts_store__mem_batch_commit(m); /* retention's, if any */
    size_t it = 0;
    void *o;
    while (ts_idmap_next(&m->regs, &it, &o)) {
        reg_unlink(m, o);
        free(o);
    }
    it = 0;
    ts_map_entry_t *e;
    while (ts_idmap_next(&m->sessions, &it, &o)) ts_store__mem_sess_evict(m, o);
    it = 0;
    while (ts_map_next(&m->leases, &it, &e)) ts_store__mem_lease_forget(m, e->val);
    ts_idmap_deinit(&m->regs);
    for (int by = 0; by < 3; by++) ts_idmap_deinit(&m->idx[by]);
    ts_idmap_deinit(&m->sessions);
    ts_map_deinit(&m->leases);
    ts_assert(m->chans.count == 0); /* every door took its subscriptions along */
    ts_assert(ts_list_empty(&m->patterns));
    ts_map_deinit(&m->chans);
    free(m->heap);
    free(m->touched);
    free(m->ltouched);
    ts_store__sql_close(m->sql);
    ts_assert(m->mem_bytes == 0);
    free(m);
}

/* A door's handles are closed: the last door out frees the store (on
 * whichever loop that is; nothing in free_all is tied to a loop). */
static void on_handle_closed(uv_handle_t *h) {
    mem_door_t *d = h->data;
    if (--d->handles_open) return;
    mem_t *m = d->m;
    ts_store_close_cb cb = d->close_cb;
    void *ud = d->close_ud;
    pthread_mutex_lock(&m->mu);
    int last = --m->doors == 0;
    pthread_mutex_unlock(&m->mu);
    if (d != &m->door) free(d);
    if (last) {
        pthread_mutex_destroy(&m->mu);
        free_all(m);
    }
    if (cb) cb(ud);
}

static void finish_close(mem_door_t *d) {
    if (d->finishing) return;
    d->finishing = 1;
    uv_idle_stop(&d->idle);
    uv_timer_stop(&d->timer);
    pthread_mutex_lock(&d->m->mu);
    ts_list_remove(&d->link); /* no more wake-ups: the async handle goes */
    ts_store__mem_door_unsubscribe_all(d->m, d); /* nor messages */
    pthread_mutex_unlock(&d->m->mu);
    d->handles_open = 3;
    d->timer.data = d;
    d->wake.data = d;
    if (d == &d->m->door) {
        d->handles_open = 4;
        uv_timer_stop(&d->m->sweep);
        d->m->sweep.data = d; /* on_sweep never runs again */
        uv_close((uv_handle_t *)&d->m->sweep, on_handle_closed);
    }
    uv_close((uv_handle_t *)&d->idle, on_handle_closed);
    uv_close((uv_handle_t *)&d->timer, on_handle_closed);
    uv_close((uv_handle_t *)&d->wake, on_handle_closed);
}

static void mem_close(void *self, ts_store_close_cb cb, void *ud) {
    mem_door_t *d = self;
    if (d->closing) return;
    d->closing = 1;
    d->close_cb = cb;
    d->close_ud = ud;
    if (d == &d->m->door) {
        /* the sweep's loop is going: no more expiry. Only that loop reads
         * this, and it may be inside a callback holding mu: no lock. */
        d->m->closing = 1;
        uv_timer_stop(&d->m->sweep);
    }
    /* The queue runs out on the next turn (a batch this door waits for is
     * committed then), then the handles close. */
    uv_idle_start(&d->idle, on_idle);
}

static void door_init(mem_door_t *d, mem_t *m, uv_loop_t *loop) {
    d->m = m;
    d->loop = loop;
    ts_list_init(&d->queue);
    ts_list_init(&d->pending);
    ts_list_init(&d->inbox);
    uv_idle_init(loop, &d->idle);
    d->idle.data = d;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_async_init(loop, &d->wake, ts_store__mem_on_wake);
    d->wake.data = d;
    /* Neither keeps the loop alive by itself: a door waits for a commit
     * with its timer running (ref'd while started). */
    uv_unref((uv_handle_t *)&d->wake);
}

static int mem_attach(void *self, uv_loop_t *loop, void **out) {
    mem_door_t *d = self;
    mem_t *m = d->m;
    if (d->closing) return TS_ECLOSED;
    mem_door_t *nd = ts_xcalloc(1, sizeof *nd);
    door_init(nd, m, loop);
    pthread_mutex_lock(&m->mu);
    m->doors++;
    ts_list_insert_tail(&m->door_list, &nd->link);
    pthread_mutex_unlock(&m->mu);
    *out = nd;
    return 0;
}

#define DEFAULT(field, value)                                                  \
    if (!m->lim.field) m->lim.field = (value)

static int mem_open(void **self, const ts_store_cfg_t *cfg, uv_loop_t *loop, char *err,
                    size_t errlen) {
    if ((unsigned)cfg->durability > TS_STORE_DUR_NONE) {
        if (err && errlen) snprintf(err, errlen, "store: unknown durability %d", cfg->durability);
        return TS_EINVAL;
    }
    mem_t *m = ts_xcalloc(1, sizeof *m);
    tables_init(m);
    m->lim = *cfg;
    m->lim.sqlite_path = m->lim.redis_url = NULL; /* not kept: borrowed */
    DEFAULT(sweep_ms, 1000);
    DEFAULT(reg_max, 1000000);
    DEFAULT(sessions_max, 100000);
    DEFAULT(leases_max, 100000);
    DEFAULT(log_mem_events, 1024);
    DEFAULT(log_mem_bytes, 256 * 1024);
    DEFAULT(mem_bytes_max, 256u * 1024 * 1024);
    DEFAULT(event_max, 1024 * 1024);
    DEFAULT(state_max, 1024 * 1024);
    DEFAULT(read_max, 1000);
    DEFAULT(read_max_bytes, 4u * 1024 * 1024);
    DEFAULT(retain_events, 10000);
    DEFAULT(retain_ms, 24ull * 3600 * 1000);
    if (m->lim.durability != TS_STORE_DUR_GROUP) m->lim.group_ms = 0;
    m->on_expire = cfg->on_expire;
    m->expire_ud = cfg->expire_ud;
    if (cfg->sqlite_path && cfg->sqlite_path[0]) {
        int rc = ts_store__sql_open(&m->sql, cfg->sqlite_path,
                                    m->lim.durability != TS_STORE_DUR_NONE, err, errlen);
        if (rc) {
            free(m);
            return rc;
        }
    }
    pthread_mutex_init(&m->mu, NULL);
    m->doors = 1;
    m->gen = 1;
    ts_list_init(&m->door_list);
    door_init(&m->door, m, loop);
    ts_list_insert_tail(&m->door_list, &m->door.link);
    ts_list_init(&m->lru);
    ts_list_init(&m->patterns);
    uv_timer_init(loop, &m->sweep);
    m->sweep.data = m;
    uv_timer_start(&m->sweep, on_sweep, m->lim.sweep_ms, m->lim.sweep_ms);
    uv_unref((uv_handle_t *)&m->sweep);
    ts_debug("store", "memory store open (%s)", m->sql ? cfg->sqlite_path : "memory only");
    *self = &m->door;
    return 0;
}

int ts_store__mem_sql_exec(void *self, const char *sql) {
    mem_t *m = ((mem_door_t *)self)->m;
    if (!m->sql) return TS_EINVAL;
    pthread_mutex_lock(&m->mu);
    int rc = ts_store__sql_exec(m->sql, sql);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

const ts_store_ops_t ts_store_memory_ops = {
    .name = "memory",
    .process_local = 1,
    .open = mem_open,
    .close = mem_close,
    .attach = mem_attach,
    .reg_put = mem_reg_put,
    .reg_renew = mem_reg_renew,
    .reg_remove = mem_reg_remove,
    .reg_list = mem_reg_list,
    .log_append = mem_log_append,
    .log_read = mem_log_read,
    .log_trim = mem_log_trim,
    .state_get = mem_state_get,
    .state_cas = mem_state_cas,
    .sess_get = mem_sess_get,
    .commit = mem_commit,
    .snap_put = mem_snap_put,
    .lease_acquire = mem_lease_acquire,
    .lease_renew = mem_lease_renew,
    .lease_release = mem_lease_release,
    .lease_transfer = mem_lease_transfer,
    .lease_get = mem_lease_get,
    .subscribe = mem_subscribe,
    .unsubscribe = mem_unsubscribe,
    .publish = mem_publish,
    .stats = mem_stats,
};
