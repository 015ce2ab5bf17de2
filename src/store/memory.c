/* memory.c - the "memory" store backend: registry and leases in hash maps,
 * per-session logs and state in memory, and (when cfg.sqlite_path is set)
 * everything that must survive a restart written through to SQLite first.
 *
 * Every call only validates, copies its arguments into an op and queues it;
 * a uv_idle handle runs the queue on the next loop turn, one op at a time in
 * issue order, then calls its callback. So callers are never re-entered, the
 * store never changes while a callback holds borrowed pointers into it, and
 * ops on one store complete in issue order.
 *
 * With one loop per core, other loops reach the same store through doors
 * (ts_store_attach): each door has its own queue and idle handle on its own
 * loop, and runs its ops, callbacks included, holding the store's mutex. So
 * callbacks still run on the caller's loop with the store unchanged under
 * them, and ops through one door complete in issue order. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_map.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "store/store_int.h"

#define KEY_SEP '\x1f' /* ids never contain control characters */
#define KEY_MAX (3 * TS_STORE_ID_MAX + 2)

enum op_kind {
    OP_REG_PUT,
    OP_REG_RENEW,
    OP_REG_REMOVE,
    OP_REG_LIST,
    OP_LOG_APPEND,
    OP_LOG_READ,
    OP_LOG_TRIM,
    OP_STATE_GET,
    OP_STATE_CAS,
    OP_LEASE_ACQUIRE,
    OP_LEASE_RENEW,
    OP_LEASE_RELEASE,
};

/* A queued call: its arguments copied, executed on the next loop turn. */
typedef struct mem_op {
    ts_list_t link;
    enum op_kind kind;
    union {
        ts_store_done_cb done;
        ts_store_reg_list_cb list;
        ts_store_seq_cb seq;
        ts_store_log_cb log;
        ts_store_state_cb state;
        ts_store_lease_cb lease;
    } cb;
    void *ud;
    uint64_t a, b;  /* ttl / after_seq / upto / expected / term, max */
    int by;
    ts_buf_t *buf;  /* event or document: our reference */
    ts_slice_t s[6]; /* copied strings, meaning per kind (see submit sites) */
    uint8_t mem[];
} mem_op_t;

/* Secondary index bucket: every entry of one session, user or device. */
typedef struct bucket {
    ts_list_t head;
    size_t n;
    size_t klen;
    char key[];
} bucket_t;

typedef struct mem_reg {
    ts_store_reg_t e;   /* slices into mem */
    char *key;          /* session SEP device SEP tab, in mem */
    size_t klen;
    uint64_t exp;       /* monotonic ms */
    size_t hidx;        /* position in the expiry heap */
    ts_list_t link[3];  /* by session, user, device */
    bucket_t *bucket[3];
    char mem[];
} mem_reg_t;

typedef struct mem_sess {
    ts_list_t lru;                /* least recently used first */
    uint64_t last_seq, trimmed;
    uint64_t state_ver;
    ts_buf_t *state;              /* NULL iff state_ver == 0 */
    ts_store_event_t *ring;       /* the log tail: seqs last_seq-n+1 .. last_seq */
    size_t cap, head, n, ring_bytes;
    size_t klen;
    char key[];
} mem_sess_t;

typedef struct mem_lease {
    uint64_t term;                /* last granted */
    uint64_t exp;                 /* monotonic ms; held iff exp > now */
    size_t hlen;
    char holder[TS_STORE_ID_MAX];
    size_t klen;
    char key[];
} mem_lease_t;

typedef struct mem_store mem_t;

/* A loop's way into the store: its op queue and the idle handle that runs
 * it. The loop that opened the store uses the door inside mem_t. */
typedef struct mem_door {
    mem_t *m;
    uv_loop_t *loop;
    uv_idle_t idle;    /* runs the op queue on the next turn */
    ts_list_t queue;
    int closing, finishing, handles_open;
    ts_store_close_cb close_cb;
    void *close_ud;
} mem_door_t;

struct mem_store {
    mem_door_t door;   /* the opening loop's */
    pthread_mutex_t mu; /* held while any door runs ops, and by the sweep */
    int doors;         /* open doors, own included: the last one frees */
    int closing;       /* the opening loop closed: no more sweeps */
    uv_timer_t sweep;  /* expiry sweep on the opening loop, unref'd: it keeps nobody alive */
    ts_store_expire_cb on_expire;
    void *expire_ud;
    ts_store_cfg_t lim; /* bounds with defaults applied */
    ts_store_sql_t *sql; /* NULL = memory only */
    ts_map_t regs, idx[3];
    mem_reg_t **heap;
    size_t heap_n, heap_cap;
    ts_map_t sessions;
    ts_list_t lru;
    size_t nsess;
    ts_map_t leases;
    size_t mem_bytes;  /* log tails + state documents */
};

/* ---------------------------------------------------------------- clock */

static uint64_t now_ms(void) { return ts_now_ms(); }
static uint64_t wall_of(uint64_t exp, uint64_t now) {
    return exp > now ? ts_wall_ms() + (exp - now) : ts_wall_ms();
}

/* ---------------------------------------------------------------- heap */

static void heap_set(mem_t *m, size_t i, mem_reg_t *e) {
    m->heap[i] = e;
    e->hidx = i;
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

static ts_slice_t idx_id(const mem_reg_t *r, int by) {
    return by == TS_STORE_BY_SESSION ? r->e.key.session
           : by == TS_STORE_BY_USER  ? r->e.user
                                     : r->e.key.device;
}

static void reg_unlink(mem_t *m, mem_reg_t *r) {
    ts_map_del(&m->regs, r->key, r->klen);
    heap_remove(m, r);
    for (int by = 0; by < 3; by++) {
        bucket_t *b = r->bucket[by];
        ts_list_remove(&r->link[by]);
        if (--b->n == 0) {
            ts_map_del(&m->idx[by], b->key, b->klen);
            free(b);
        }
    }
}

static void reg_link(mem_t *m, mem_reg_t *r) {
    ts_map_put(&m->regs, r->key, r->klen, r);
    heap_push(m, r);
    for (int by = 0; by < 3; by++) {
        ts_slice_t id = idx_id(r, by);
        bucket_t *b = ts_map_get(&m->idx[by], (const char *)id.p, id.len);
        if (!b) {
            b = ts_xmalloc(sizeof *b + id.len);
            ts_list_init(&b->head);
            b->n = 0;
            b->klen = id.len;
            memcpy(b->key, id.p, id.len);
            ts_map_put(&m->idx[by], b->key, b->klen, b);
        }
        ts_list_insert_tail(&b->head, &r->link[by]);
        b->n++;
        r->bucket[by] = b;
    }
}

static ts_slice_t copy_into(char **at, ts_slice_t v) {
    char *p = *at;
    if (v.len) memcpy(p, v.p, v.len);
    *at += v.len;
    return ts_slice(p, v.len);
}

static mem_reg_t *reg_new(const ts_slice_t *s, uint64_t exp) {
    /* s: session, device, tab, user, node, data */
    size_t total = 2;
    for (int i = 0; i < 6; i++) total += s[i].len;
    total += s[0].len + s[1].len + s[2].len;
    mem_reg_t *r = ts_xcalloc(1, sizeof *r + total);
    char *at = r->mem;
    r->e.key.session = copy_into(&at, s[0]);
    r->e.key.device = copy_into(&at, s[1]);
    r->e.key.tab = copy_into(&at, s[2]);
    r->e.user = copy_into(&at, s[3]);
    r->e.node = copy_into(&at, s[4]);
    r->e.data = copy_into(&at, s[5]);
    r->key = at;
    r->klen = make_key(r->key, s[0], s[1], s[2]);
    r->exp = exp;
    for (int by = 0; by < 3; by++) ts_list_init(&r->link[by]);
    return r;
}

static mem_reg_t *reg_find(mem_t *m, const ts_slice_t *s) {
    char key[KEY_MAX];
    size_t n = make_key(key, s[0], s[1], s[2]);
    return ts_map_get(&m->regs, key, n);
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

static void exec_reg_list(mem_t *m, mem_op_t *op) {
    bucket_t *b = ts_map_get(&m->idx[op->by], (const char *)op->s[0].p, op->s[0].len);
    ts_store_reg_t *arr = NULL;
    size_t n = 0;
    if (b) {
        uint64_t now = now_ms();
        arr = ts_xmalloc(b->n * sizeof *arr);
        ts_list_t *it, *tmp;
        TS_LIST_FOREACH_SAFE(it, tmp, &b->head) {
            mem_reg_t *r = TS_CONTAINER_OF(it, mem_reg_t, link[op->by]);
            if (r->exp <= now) continue;
            arr[n] = r->e;
            arr[n].expires_at = wall_of(r->exp, now);
            n++;
        }
    }
    if (op->cb.list) op->cb.list(0, n ? arr : NULL, n, op->ud);
    free(arr);
}

static void sweep_leases(mem_t *m, uint64_t now);

static void on_sweep(uv_timer_t *t) {
    mem_t *m = t->data;
    uint64_t now = now_ms();
    pthread_mutex_lock(&m->mu);
    while (m->heap_n && m->heap[0]->exp <= now && !m->closing) {
        mem_reg_t *r = m->heap[0];
        reg_unlink(m, r);
        if (m->on_expire) {
            r->e.expires_at = wall_of(r->exp, now);
            m->on_expire(&r->e, m->expire_ud);
        }
        free(r);
    }
    if (!m->closing) sweep_leases(m, now);
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------- sessions */

static ts_store_event_t *ring_at(mem_sess_t *s, size_t i) {
    return &s->ring[(s->head + i) & (s->cap - 1)];
}

static void ring_push(mem_t *m, mem_sess_t *s, uint64_t seq, ts_buf_t *b) {
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        ts_store_event_t *nr = ts_xmalloc(ncap * sizeof *nr);
        for (size_t i = 0; i < s->n; i++) nr[i] = *ring_at(s, i);
        free(s->ring);
        s->ring = nr;
        s->cap = ncap;
        s->head = 0;
    }
    ts_store_event_t *e = &s->ring[(s->head + s->n) & (s->cap - 1)];
    e->seq = seq;
    e->data = ts_buf_ref(b);
    s->n++;
    s->ring_bytes += b->len;
    m->mem_bytes += b->len;
}

/* Drops the oldest tail event. Memory only: that is a trim (nothing else
 * holds it); with SQLite the event stays readable from the file. */
static void ring_pop(mem_t *m, mem_sess_t *s) {
    ts_store_event_t *e = ring_at(s, 0);
    s->ring_bytes -= e->data->len;
    m->mem_bytes -= e->data->len;
    if (!m->sql) s->trimmed = e->seq;
    ts_buf_unref(e->data);
    s->head = (s->head + 1) & (s->cap - 1);
    s->n--;
}

static void sess_free(mem_t *m, mem_sess_t *s) {
    while (s->n) ring_pop(m, s);
    if (s->state) {
        m->mem_bytes -= s->state->len;
        ts_buf_unref(s->state);
    }
    free(s->ring);
    free(s);
}

static void sess_evict(mem_t *m, mem_sess_t *s) {
    ts_map_del(&m->sessions, s->key, s->klen);
    ts_list_remove(&s->lru);
    m->nsess--;
    sess_free(m, s);
}

/* SQLite mode: forget least recently used sessions (they are in the file)
 * until `need` more sessions and `bytes` more bytes fit; never `keep`. */
static void sess_make_room(mem_t *m, size_t need, size_t bytes, mem_sess_t *keep) {
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &m->lru) {
        if (m->nsess + need <= m->lim.sessions_max && m->mem_bytes + bytes <= m->lim.mem_bytes_max)
            return;
        mem_sess_t *s = TS_CONTAINER_OF(it, mem_sess_t, lru);
        if (s != keep) sess_evict(m, s);
    }
}

/* Finds the session, loading it from SQLite if needed. With create, makes
 * an empty one if it exists nowhere. NULL with *rc = 0: does not exist. */
static mem_sess_t *sess_get(mem_t *m, ts_slice_t name, int create, int *rc) {
    *rc = 0;
    mem_sess_t *s = ts_map_get(&m->sessions, (const char *)name.p, name.len);
    if (s) {
        ts_list_remove(&s->lru);
        ts_list_insert_tail(&m->lru, &s->lru);
        return s;
    }
    ts_store_sql_sess_t row = {0};
    if (m->sql) {
        int lrc = ts_store__sql_sess_load(m->sql, name, &row);
        if (lrc == TS_ESTORE) {
            *rc = TS_ESTORE;
            return NULL;
        }
        if (lrc == TS_ENOTFOUND && !create) return NULL;
        sess_make_room(m, 1, row.state ? row.state->len : 0, NULL);
    } else {
        if (!create) return NULL;
        if (m->nsess >= m->lim.sessions_max) {
            *rc = TS_ELIMIT;
            return NULL;
        }
    }
    s = ts_xcalloc(1, sizeof *s + name.len);
    s->klen = name.len;
    memcpy(s->key, name.p, name.len);
    s->last_seq = row.last_seq;
    s->trimmed = row.trimmed;
    s->state_ver = row.state_ver;
    s->state = row.state;
    if (s->state) m->mem_bytes += s->state->len;
    ts_map_put(&m->sessions, s->key, s->klen, s);
    ts_list_insert_tail(&m->lru, &s->lru);
    m->nsess++;
    return s;
}

static void exec_log_append(mem_t *m, mem_op_t *op) {
    int rc;
    uint64_t seq = 0;
    size_t len = op->buf->len;
    mem_sess_t *s = sess_get(m, op->s[0], 1, &rc);
    if (!s) goto out;
    if (m->sql) {
        sess_make_room(m, 0, len, s);
    } else if (m->mem_bytes + len > m->lim.mem_bytes_max) {
        rc = TS_ELIMIT;
        goto out;
    }
    seq = s->last_seq + 1;
    if (m->sql && (rc = ts_store__sql_append(m->sql, op->s[0], seq, ts_buf_slice(op->buf)))) {
        seq = 0;
        goto out;
    }
    s->last_seq = seq;
    ring_push(m, s, seq, op->buf);
    while (s->n > m->lim.log_mem_events || (s->n > 1 && s->ring_bytes > m->lim.log_mem_bytes))
        ring_pop(m, s);
    while (m->sql && s->n > 1 && m->mem_bytes > m->lim.mem_bytes_max) ring_pop(m, s);
out:
    if (op->cb.seq) op->cb.seq(rc, seq, op->ud);
}

static void exec_log_read(mem_t *m, mem_op_t *op) {
    int rc;
    mem_sess_t *s = sess_get(m, op->s[0], 0, &rc);
    ts_store_log_page_t page = {NULL, 0, 0, 0};
    ts_store_event_t *ev = NULL;
    if (rc) goto out;
    if (!s) goto out;
    page.last_seq = s->last_seq;
    page.trimmed_upto = s->trimmed;
    uint64_t start = TS_MAX(op->a, s->trimmed) + 1;
    if (start > s->last_seq) goto out;
    size_t max = (size_t)TS_MIN(op->b, (uint64_t)m->lim.read_max);
    ev = ts_xmalloc(max * sizeof *ev);
    uint64_t tail_first = s->last_seq - s->n + 1;
    if (start >= tail_first) {
        size_t bytes = 0;
        for (size_t i = (size_t)(start - tail_first); i < s->n && page.n < max; i++) {
            ts_store_event_t *e = ring_at(s, i);
            if (page.n > 0 && bytes + e->data->len > m->lim.read_max_bytes) break;
            bytes += e->data->len;
            ev[page.n].seq = e->seq;
            ev[page.n].data = ts_buf_ref(e->data);
            page.n++;
        }
    } else if (m->sql) {
        rc = ts_store__sql_read(m->sql, op->s[0], start, max, m->lim.read_max_bytes, ev, &page.n);
    } else {
        /* Memory only, the tail starts right after `trimmed`. */
        ts_assert(!"memory log tail out of step with trimmed");
    }
    page.events = ev;
out:
    if (op->cb.log) op->cb.log(rc, rc ? NULL : &page, op->ud);
    for (size_t i = 0; i < page.n; i++) ts_buf_unref(ev[i].data);
    free(ev);
}

static int exec_log_trim(mem_t *m, mem_op_t *op) {
    int rc;
    mem_sess_t *s = sess_get(m, op->s[0], 0, &rc);
    if (!s) return rc;
    uint64_t upto = TS_MIN(op->a, s->last_seq);
    if (upto <= s->trimmed) return 0;
    if (m->sql && (rc = ts_store__sql_trim(m->sql, op->s[0], upto, s->last_seq))) return rc;
    while (s->n && ring_at(s, 0)->seq <= upto) ring_pop(m, s);
    s->trimmed = upto;
    return 0;
}

static void exec_state_get(mem_t *m, mem_op_t *op) {
    int rc;
    mem_sess_t *s = sess_get(m, op->s[0], 0, &rc);
    ts_store_state_t st = {s ? s->state_ver : 0, s ? s->state : NULL};
    if (op->cb.state) op->cb.state(rc, rc ? NULL : &st, op->ud);
}

static void exec_state_cas(mem_t *m, mem_op_t *op) {
    int rc;
    mem_sess_t *s = sess_get(m, op->s[0], 0, &rc);
    ts_store_state_t st = {0, NULL};
    if (rc) goto out;
    if (s) st = (ts_store_state_t){s->state_ver, s->state};
    if (op->a != st.version) {
        rc = TS_ECONFLICT;
        goto out;
    }
    if (!s && !(s = sess_get(m, op->s[0], 1, &rc))) goto out;
    size_t old = s->state ? s->state->len : 0, len = op->buf->len;
    if (m->sql) {
        sess_make_room(m, 0, len, s);
    } else if (m->mem_bytes - old + len > m->lim.mem_bytes_max) {
        rc = TS_ELIMIT;
        goto out;
    }
    uint64_t ver = s->state_ver + 1;
    if (m->sql && (rc = ts_store__sql_state_put(m->sql, op->s[0], ver, ts_buf_slice(op->buf))))
        goto out;
    if (s->state) ts_buf_unref(s->state);
    m->mem_bytes = m->mem_bytes - old + len;
    s->state = ts_buf_ref(op->buf);
    s->state_ver = ver;
    st = (ts_store_state_t){ver, s->state};
out:
    if (op->cb.state)
        op->cb.state(rc, rc == 0 || rc == TS_ECONFLICT ? &st : NULL, op->ud);
}

/* ---------------------------------------------------------------- leases */

static int lease_held(const mem_lease_t *l, uint64_t now) { return l->exp > now; }

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

/* Clears expired holders. With SQLite the term is in the file, so a lease
 * nobody holds is forgotten; memory only, its term must be remembered. */
static void sweep_leases(mem_t *m, uint64_t now) {
    size_t it = 0;
    ts_map_entry_t *e;
    while (ts_map_next(&m->leases, &it, &e)) {
        mem_lease_t *l = e->val;
        if (lease_held(l, now)) continue;
        l->exp = 0;
        l->hlen = 0;
        if (m->sql) {
            ts_map_del(&m->leases, l->key, l->klen);
            free(l);
        }
    }
}

static ts_store_lease_t lease_view(const mem_lease_t *l, ts_slice_t name, uint64_t now) {
    ts_store_lease_t v = {name, ts_slice("", 0), 0, 0};
    if (!l) return v;
    v.term = l->term;
    if (lease_held(l, now)) {
        v.holder = ts_slice(l->holder, l->hlen);
        v.expires_at = wall_of(l->exp, now);
    }
    return v;
}

static int lease_is(const mem_lease_t *l, ts_slice_t holder, uint64_t term, uint64_t now) {
    return l && lease_held(l, now) && l->term == term &&
           ts_slice_eq(ts_slice(l->holder, l->hlen), holder);
}

static void exec_lease_acquire(mem_t *m, mem_op_t *op) {
    int rc;
    uint64_t now = now_ms();
    mem_lease_t *l = lease_get(m, op->s[0], 1, &rc);
    if (l) {
        if (lease_held(l, now)) {
            if (ts_slice_eq(ts_slice(l->holder, l->hlen), op->s[1]))
                l->exp = now + op->a; /* same holder: extend, same term */
            else
                rc = TS_EHELD;
        } else if (!m->sql || !(rc = ts_store__sql_term_put(m->sql, op->s[0], l->term + 1))) {
            l->term++;
            l->exp = now + op->a;
            l->hlen = op->s[1].len;
            memcpy(l->holder, op->s[1].p, l->hlen);
        }
    }
    ts_store_lease_t v = lease_view(l, op->s[0], now);
    if (op->cb.lease) op->cb.lease(rc, rc == 0 || rc == TS_EHELD ? &v : NULL, op->ud);
}

/* The lease as seen by a refused renew/release, term from the file if we
 * do not have it in memory. */
static ts_store_lease_t lease_stale_view(mem_t *m, mem_lease_t *l, ts_slice_t name, uint64_t now) {
    ts_store_lease_t v = lease_view(l, name, now);
    if (!l && m->sql) ts_store__sql_term_get(m->sql, name, &v.term);
    return v;
}

static void exec_lease_renew(mem_t *m, mem_op_t *op) {
    int rc;
    uint64_t now = now_ms();
    mem_lease_t *l = lease_get(m, op->s[0], 0, &rc);
    if (lease_is(l, op->s[1], op->a, now)) {
        l->exp = now + op->b;
        ts_store_lease_t v = lease_view(l, op->s[0], now);
        if (op->cb.lease) op->cb.lease(0, &v, op->ud);
        return;
    }
    ts_store_lease_t v = lease_stale_view(m, l, op->s[0], now);
    if (op->cb.lease) op->cb.lease(TS_ESTALE, &v, op->ud);
}

static int exec_lease_release(mem_t *m, mem_op_t *op) {
    int rc;
    mem_lease_t *l = lease_get(m, op->s[0], 0, &rc);
    if (!lease_is(l, op->s[1], op->a, now_ms())) return TS_ESTALE;
    l->exp = 0;
    l->hlen = 0;
    return 0;
}

/* ---------------------------------------------------------------- queue */

static void exec_op(mem_t *m, mem_op_t *op) {
    int rc;
    switch (op->kind) {
    case OP_REG_PUT: rc = exec_reg_put(m, op); break;
    case OP_REG_RENEW: rc = exec_reg_renew(m, op); break;
    case OP_REG_REMOVE: rc = exec_reg_remove(m, op); break;
    case OP_LOG_TRIM: rc = exec_log_trim(m, op); break;
    case OP_LEASE_RELEASE: rc = exec_lease_release(m, op); break;
    case OP_REG_LIST: exec_reg_list(m, op); return;
    case OP_LOG_APPEND: exec_log_append(m, op); return;
    case OP_LOG_READ: exec_log_read(m, op); return;
    case OP_STATE_GET: exec_state_get(m, op); return;
    case OP_STATE_CAS: exec_state_cas(m, op); return;
    case OP_LEASE_ACQUIRE: exec_lease_acquire(m, op); return;
    case OP_LEASE_RENEW: exec_lease_renew(m, op); return;
    default: ts_assert(!"unknown store op"); return;
    }
    if (op->cb.done) op->cb.done(rc, op->ud);
}

static void op_free(mem_op_t *op) {
    ts_buf_unref(op->buf);
    free(op);
}

static void finish_close(mem_door_t *d);

/* Runs what was queued before this turn; ops queued by the callbacks wait
 * for the next turn (the idle handle stays active), so a callback chain
 * cannot starve the loop. */
static void on_idle(uv_idle_t *h) {
    mem_door_t *d = h->data;
    ts_list_t batch;
    if (ts_list_empty(&d->queue)) {
        ts_list_init(&batch);
    } else {
        batch = d->queue;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        ts_list_init(&d->queue);
    }
    if (!ts_list_empty(&batch)) {
        pthread_mutex_lock(&d->m->mu);
        while (!ts_list_empty(&batch)) {
            mem_op_t *op = TS_CONTAINER_OF(batch.next, mem_op_t, link);
            ts_list_remove(&op->link);
            exec_op(d->m, op);
            op_free(op);
        }
        pthread_mutex_unlock(&d->m->mu);
    }
    if (!ts_list_empty(&d->queue)) return;
    if (d->closing)
        finish_close(d);
    else
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

/* ---------------------------------------------------------------- open/close */

static void free_all(mem_t *m) {
    size_t it = 0;
    ts_map_entry_t *e;
    while (ts_map_next(&m->regs, &it, &e)) {
        mem_reg_t *r = e->val;
        reg_unlink(m, r);
        free(r);
    }
    it = 0;
    while (ts_map_next(&m->sessions, &it, &e)) sess_evict(m, e->val);
    it = 0;
    while (ts_map_next(&m->leases, &it, &e)) {
        mem_lease_t *l = e->val;
        ts_map_del(&m->leases, l->key, l->klen);
        free(l);
    }
    ts_map_deinit(&m->regs);
    for (int by = 0; by < 3; by++) ts_map_deinit(&m->idx[by]);
    ts_map_deinit(&m->sessions);
    ts_map_deinit(&m->leases);
    free(m->heap);
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
    d->handles_open = 1;
    if (d == &d->m->door) {
        d->handles_open = 2;
        uv_timer_stop(&d->m->sweep);
        d->m->sweep.data = d; /* on_sweep never runs again */
        uv_close((uv_handle_t *)&d->m->sweep, on_handle_closed);
    }
    uv_close((uv_handle_t *)&d->idle, on_handle_closed);
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
    /* The queue runs out on the next turn, then the handles close. */
    uv_idle_start(&d->idle, on_idle);
}

static void door_init(mem_door_t *d, mem_t *m, uv_loop_t *loop) {
    d->m = m;
    d->loop = loop;
    ts_list_init(&d->queue);
    uv_idle_init(loop, &d->idle);
    d->idle.data = d;
}

static int mem_attach(void *self, uv_loop_t *loop, void **out) {
    mem_door_t *d = self;
    mem_t *m = d->m;
    if (d->closing) return TS_ECLOSED;
    mem_door_t *nd = ts_xcalloc(1, sizeof *nd);
    door_init(nd, m, loop);
    pthread_mutex_lock(&m->mu);
    m->doors++;
    pthread_mutex_unlock(&m->mu);
    *out = nd;
    return 0;
}

#define DEFAULT(field, value)                                                  \
    if (!m->lim.field) m->lim.field = (value)

static int mem_open(void **self, const ts_store_cfg_t *cfg, uv_loop_t *loop, char *err,
                    size_t errlen) {
    mem_t *m = ts_xcalloc(1, sizeof *m);
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
    m->on_expire = cfg->on_expire;
    m->expire_ud = cfg->expire_ud;
    if (cfg->sqlite_path && cfg->sqlite_path[0]) {
        int rc = ts_store__sql_open(&m->sql, cfg->sqlite_path, err, errlen);
        if (rc) {
            free(m);
            return rc;
        }
    }
    pthread_mutex_init(&m->mu, NULL);
    m->doors = 1;
    door_init(&m->door, m, loop);
    ts_list_init(&m->lru);
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
    return m->sql ? ts_store__sql_exec(m->sql, sql) : TS_EINVAL;
}

const ts_store_ops_t ts_store_memory_ops = {
    .name = "memory",
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
    .lease_acquire = mem_lease_acquire,
    .lease_renew = mem_lease_renew,
    .lease_release = mem_lease_release,
};
