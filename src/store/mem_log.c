/* mem_log.c - sessions in the memory backend: sequence numbers and the log
 * tail ring, state documents, and session history (epochs, exactly-once
 * commits, snapshots, retention).
 *
 * Memory only, the ring is the log, so it never drops an event the
 * snapshot does not cover (that would lose state). With a SQLite file the
 * ring is a cache of the newest events and the file has them all. While a
 * batch holds a session's writes that are not durable yet, reads show the
 * copy of its durable values taken when the batch first touched it
 * (mem_sess_t.dur) and never an event past its durable last_seq. */
#include <stdlib.h>
#include <string.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "store/mem_int.h"

/* ---------------------------------------------------------------- memory */

static void bytes_add(mem_t *m, mem_sess_t *s, size_t n) {
    s->bytes += n;
    m->mem_bytes += n;
}

static void bytes_sub(mem_t *m, mem_sess_t *s, size_t n) {
    ts_assert(s->bytes >= n && m->mem_bytes >= n);
    s->bytes -= n;
    m->mem_bytes -= n;
}

static size_t buf_len(const ts_buf_t *b) { return b ? b->len : 0; }

void ts_store__mem_hist_release(mem_hist_t *h) {
    ts_buf_unref(h->snap);
    ts_buf_unref(h->state);
    h->snap = h->state = NULL;
}

/* What reads show: the durable values. */
static const mem_hist_t *view(const mem_sess_t *s) { return s->dirty ? s->dur : &s->h; }

/* ---------------------------------------------------------------- ring */

/* Events in the tail. */
static size_t ring_n(const mem_sess_t *s) { return s->ring ? s->ring->n : 0; }

static mem_ev_t *ring_at(mem_sess_t *s, size_t i) {
    mem_ring_t *r = s->ring;
    return &r->ev[(r->head + i) & (r->cap - 1)];
}

/* Seq of the oldest event in the ring (n > 0). */
static uint64_t ring_first(const mem_sess_t *s) { return s->h.last_seq - ring_n(s) + 1; }

static mem_ev_t *ring_find(mem_sess_t *s, uint64_t seq) {
    if (!ring_n(s) || seq < ring_first(s) || seq > s->h.last_seq) return NULL;
    return ring_at(s, (size_t)(seq - ring_first(s)));
}

static void ring_push(mem_t *m, mem_sess_t *s, uint64_t seq, uint64_t t, ts_buf_t *b) {
    mem_ring_t *r = s->ring;
    if (!r || r->n == r->cap) {
        size_t n = ring_n(s), ncap = r ? r->cap * 2 : 8;
        mem_ring_t *nr = ts_xmalloc(sizeof *nr + ncap * sizeof nr->ev[0]);
        for (size_t i = 0; i < n; i++) nr->ev[i] = *ring_at(s, i);
        *nr = (mem_ring_t){ncap, 0, n, r ? r->bytes : 0};
        free(r);
        s->ring = r = nr;
    }
    mem_ev_t *e = &r->ev[(r->head + r->n) & (r->cap - 1)];
    e->seq = seq;
    e->t = t;
    e->data = ts_buf_ref(b);
    r->n++;
    r->bytes += b->len;
    bytes_add(m, s, b->len);
}

/* Drops the oldest tail event. Memory only, that is a trim (nothing else
 * holds it); with SQLite the event stays readable from the file. */
static void ring_pop(mem_t *m, mem_sess_t *s) {
    mem_ring_t *r = s->ring;
    mem_ev_t *e = ring_at(s, 0);
    r->bytes -= e->data->len;
    bytes_sub(m, s, e->data->len);
    if (!m->sql) s->trimmed = e->seq;
    ts_buf_unref(e->data);
    r->head = (r->head + 1) & (r->cap - 1);
    r->n--;
}

/* Applies the tail bounds. Memory only, events the snapshot does not
 * cover stay whatever the bounds say (they count against mem_bytes_max,
 * and appends fail with TS_ELIMIT when it is reached). */
static void ring_fit(mem_t *m, mem_sess_t *s) {
    while (ring_n(s) && (ring_n(s) > m->lim.log_mem_events ||
                         (ring_n(s) > 1 && s->ring->bytes > m->lim.log_mem_bytes))) {
        if (!m->sql && ring_at(s, 0)->seq > s->h.snap_seq) break;
        if (!m->sql) MEM_STAT_ADD(m, events_trimmed, 1); /* the log itself: a trim */
        ring_pop(m, s);
    }
    while (m->sql && ring_n(s) > 1 && m->mem_bytes > m->lim.mem_bytes_max) ring_pop(m, s);
}

/* ---------------------------------------------------------------- clients */

static size_t client_bytes(const mem_client_t *c) {
    return sizeof *c + c->klen + (size_t)c->cap * sizeof(mem_mut_t);
}

static void client_free(mem_client_t *c) {
    free(c->w);
    free(c);
}

/* Binary search: the entry of `mut`, or where it would go. */
static uint32_t win_pos(const mem_client_t *c, uint64_t mut) {
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->w[mid].mut < mut)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const mem_mut_t *win_find(const mem_client_t *c, uint64_t mut) {
    uint32_t i = win_pos(c, mut);
    return i < c->n && c->w[i].mut == mut ? &c->w[i] : NULL;
}

/* Remembers (mut, seq); a full window forgets its oldest mutation (the
 * caller refused muts older than that one: TS_ETOOOLD). */
static void win_insert(mem_t *m, mem_sess_t *s, mem_client_t *c, uint64_t mut, uint64_t seq) {
    if (c->n == TS_STORE_MUT_WINDOW) {
        memmove(c->w, c->w + 1, (c->n - 1) * sizeof *c->w);
        c->n--;
    }
    if (c->n == c->cap) {
        uint32_t ncap = c->cap ? c->cap * 2 : 4;
        if (ncap > TS_STORE_MUT_WINDOW) ncap = TS_STORE_MUT_WINDOW;
        c->w = ts_xrealloc(c->w, ncap * sizeof *c->w);
        bytes_add(m, s, (size_t)(ncap - c->cap) * sizeof *c->w);
        c->cap = ncap;
    }
    uint32_t i = win_pos(c, mut);
    memmove(c->w + i + 1, c->w + i, (c->n - i) * sizeof *c->w);
    c->w[i] = (mem_mut_t){mut, seq};
    c->n++;
}

/* Packed window (clients.recs): varint count, then per entry ascending by
 * mut: varint(mut - previous mut), zigzag varint(seq - previous seq). A
 * full window of consecutive muts is ~600 bytes instead of 4 KiB. */
static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

static size_t win_pack(const mem_client_t *c, uint8_t *out) {
    size_t n = put_varint(out, c->n);
    uint64_t pm = 0, ps = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        int64_t ds = (int64_t)(c->w[i].seq - ps);
        n += put_varint(out + n, c->w[i].mut - pm);
        n += put_varint(out + n, ((uint64_t)ds << 1) ^ (uint64_t)(ds >> 63));
        pm = c->w[i].mut;
        ps = c->w[i].seq;
    }
    return n;
}

static int win_unpack(mem_client_t *c, ts_slice_t in) {
    const uint8_t *p = in.p, *end = in.p + in.len;
    uint64_t n, pm = 0, ps = 0;
    if (get_varint(&p, end, &n) || n > TS_STORE_MUT_WINDOW) return -1;
    c->cap = (uint32_t)n;
    c->w = n ? ts_xmalloc(n * sizeof *c->w) : NULL;
    for (c->n = 0; c->n < n; c->n++) {
        uint64_t dm, zs;
        if (get_varint(&p, end, &dm) || get_varint(&p, end, &zs) || dm == 0) return -1;
        pm += dm;
        ps += (uint64_t)((int64_t)(zs >> 1) ^ -(int64_t)(zs & 1));
        c->w[c->n] = (mem_mut_t){pm, ps};
    }
    return p == end ? 0 : -1;
}

/* The session's client windows, the map made at the first. */
static ts_map_t *clients_of(mem_sess_t *s) {
    if (!s->clients) s->clients = ts_xcalloc(1, sizeof *s->clients);
    return s->clients;
}

static mem_client_t *client_new(mem_t *m, mem_sess_t *s, ts_slice_t id) {
    mem_client_t *c = ts_xcalloc(1, sizeof *c + id.len);
    c->klen = id.len;
    memcpy(c->key, id.p, id.len);
    ts_map_put(clients_of(s), c->key, c->klen, c);
    bytes_add(m, s, client_bytes(c));
    return c;
}

/* The client's window, loaded from the file if needed. NULL with *rc = 0:
 * the client never committed to this session. */
static mem_client_t *client_get(mem_t *m, mem_sess_t *s, ts_slice_t id, int *rc) {
    *rc = 0;
    mem_client_t *c = s->clients ? ts_map_get(s->clients, (const char *)id.p, id.len) : NULL;
    if (c || !m->sql || !s->sid) return c;
    ts_buf_t *recs = NULL;
    int lrc = ts_store__sql_client_get(m->sql, s->sid, id, &recs);
    if (lrc == TS_ENOTFOUND) return NULL;
    if (lrc) {
        *rc = lrc;
        return NULL;
    }
    c = ts_xcalloc(1, sizeof *c + id.len);
    c->klen = id.len;
    memcpy(c->key, id.p, id.len);
    int bad = win_unpack(c, ts_buf_slice(recs));
    ts_buf_unref(recs);
    if (bad) {
        ts_error("store", "exactly-once window of a client of session %.*s is corrupt in the "
                          "file; refusing its commits",
                 (int)s->klen, s->key);
        client_free(c);
        *rc = TS_ESTORE;
        return NULL;
    }
    ts_map_put(clients_of(s), c->key, c->klen, c);
    bytes_add(m, s, client_bytes(c));
    return c;
}

int ts_store__mem_sess_flush(mem_t *m, mem_sess_t *s) {
    int rc;
    if ((s->flush & SESS_FLUSH_META) &&
        (rc = ts_store__sql_sess_meta(m->sql, s->sid, s->h.epoch, s->h.hist_ver)))
        return rc;
    s->flush = 0;
    if (!s->dirty_clients) return 0;
    uint8_t packed[10 + TS_STORE_MUT_WINDOW * 20];
    size_t it = 0;
    ts_map_entry_t *e;
    while (s->dirty_clients && ts_map_next(s->clients, &it, &e)) {
        mem_client_t *c = e->val;
        if (!c->dirty) continue;
        size_t n = win_pack(c, packed);
        if ((rc = ts_store__sql_client_put(m->sql, s->sid, ts_slice(c->key, c->klen),
                                           ts_slice(packed, n))))
            return rc;
        c->dirty = 0;
        s->dirty_clients--;
    }
    return 0;
}

/* ---------------------------------------------------------------- sessions */

static void sess_free(mem_t *m, mem_sess_t *s) {
    for (size_t i = 0; i < ring_n(s); i++) ts_buf_unref(ring_at(s, i)->data);
    size_t it = 0;
    ts_map_entry_t *e;
    if (s->clients) {
        while (ts_map_next(s->clients, &it, &e)) client_free(e->val);
        ts_map_deinit(s->clients);
        free(s->clients);
    }
    ts_store__mem_hist_release(&s->h);
    if (s->dur) ts_store__mem_hist_release(s->dur);
    free(s->dur);
    m->mem_bytes -= s->bytes;
    free(s->ring);
    free(s);
}

void ts_store__mem_sess_evict(mem_t *m, void *o) {
    m->nsess--;
    if (ts_store__mem_is_stub(o)) {
        mem_stub_t *t = o;
        ts_idmap_del_n(&m->sessions, t->key, t->klen);
        free(t);
        return;
    }
    mem_sess_t *s = o;
    ts_idmap_del_n(&m->sessions, s->key, s->klen);
    ts_list_remove(&s->lru);
    sess_free(m, s);
}

/* SQLite mode: forget least recently used sessions (they are in the file)
 * until `need` more sessions and `bytes` more bytes fit; never `keep`, nor
 * a session the open batch holds. */
static void sess_make_room(mem_t *m, size_t need, size_t bytes, mem_sess_t *keep) {
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &m->lru) {
        if (m->nsess + need <= m->lim.sessions_max && m->mem_bytes + bytes <= m->lim.mem_bytes_max)
            return;
        mem_sess_t *s = TS_CONTAINER_OF(it, mem_sess_t, lru);
        if (s != keep && !s->dirty) ts_store__mem_sess_evict(m, s);
    }
}

/* Finds the session, loading it from SQLite if needed. With create, makes
 * an empty one if it exists nowhere. NULL with *rc = 0: does not exist. */
static mem_sess_t *sess_get(mem_t *m, ts_slice_t name, int create, int *rc) {
    *rc = 0;
    mem_sess_t *s = ts_idmap_get_n(&m->sessions, (const char *)name.p, name.len);
    if (s && ts_store__mem_is_stub(s)) { /* it becomes a session like any other */
        mem_stub_t *t = (mem_stub_t *)s;
        s = ts_xcalloc(1, sizeof *s + t->klen);
        s->klen = t->klen;
        memcpy(s->key, t->key, t->klen);
        s->h.epoch = t->tagged >> 1;
        ts_idmap_put(&m->sessions, s); /* takes the stub's slot */
        ts_list_insert_tail(&m->lru, &s->lru);
        free(t);
        return s;
    }
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
        sess_make_room(m, 1, buf_len(row.state) + buf_len(row.snap), NULL);
    } else {
        if (!create) return NULL;
        if (m->nsess >= m->lim.sessions_max) {
            *rc = TS_ELIMIT;
            return NULL;
        }
    }
    s = ts_xcalloc(1, sizeof *s + name.len);
    s->klen = (uint16_t)name.len; /* an id: at most TS_STORE_ID_MAX */
    memcpy(s->key, name.p, name.len);
    s->sid = row.sid;
    s->h = (mem_hist_t){row.epoch, row.last_seq, row.hist_ver, row.snap_seq, row.snap_ver,
                        row.snap, row.state_ver, row.state};
    s->trimmed = row.trimmed;
    bytes_add(m, s, buf_len(s->h.state) + buf_len(s->h.snap));
    ts_idmap_put(&m->sessions, s);
    ts_list_insert_tail(&m->lru, &s->lru);
    m->nsess++;
    return s;
}

/* Room for `len` more bytes in s. Memory only: TS_ELIMIT if they do not
 * fit; with SQLite other sessions leave memory instead. */
static int sess_room(mem_t *m, mem_sess_t *s, size_t len, size_t freed) {
    if (m->sql) {
        sess_make_room(m, 0, len, s);
        return 0;
    }
    return m->mem_bytes - freed + len > m->lim.mem_bytes_max ? TS_ELIMIT : 0;
}

/* Every write to a session starts here: it joins the batch (SQLite), the
 * session gets its epoch at its first write and its row in the file. On
 * TS_ESTORE the batch failed and `s` is gone. */
static int sess_write(mem_t *m, mem_sess_t *s) {
    int rc = ts_store__mem_batch_begin(m);
    if (rc) return rc;
    ts_store__mem_touch_sess(m, s);
    if (!s->h.epoch) {
        s->h.epoch = ts_store__mem_new_epoch();
        s->flush |= SESS_FLUSH_META;
    }
    if (m->sql && !s->sid &&
        (rc = ts_store__sql_sess_create(m->sql, ts_slice(s->key, s->klen), s->h.epoch,
                                        &s->sid))) {
        ts_store__mem_batch_fail(m);
        return rc;
    }
    return 0;
}

/* The op's callback waits for the batch if the op wrote or saw a write of
 * it (a conflict, a duplicate: answers the file might not confirm). */
static void settle(mem_t *m, mem_op_t *op, mem_sess_t *s) {
    if (s && s->dirty) ts_store__mem_op_join(m, op);
}

/* Appends the session's next event; on failure nothing changed (and with
 * TS_ESTORE the batch failed: `s` is gone). */
static int sess_append(mem_t *m, mem_sess_t *s, ts_buf_t *ev, uint64_t *seq) {
    int rc = sess_write(m, s);
    if (rc) return rc;
    uint64_t t = ts_wall_ms();
    if (ring_n(s)) t = TS_MAX(t, ring_at(s, ring_n(s) - 1)->t); /* never goes back: retention */
    *seq = s->h.last_seq + 1;
    if (m->sql && (rc = ts_store__sql_append(m->sql, s->sid, *seq, t, ts_buf_slice(ev)))) {
        ts_store__mem_batch_fail(m);
        *seq = 0;
        return rc;
    }
    s->h.last_seq = *seq;
    ring_push(m, s, *seq, t, ev);
    ring_fit(m, s);
    MEM_STAT_ADD(m, events_appended, 1);
    return 0;
}

/* Drops events <= upto (upto <= last_seq). */
static int sess_trim(mem_t *m, mem_sess_t *s, uint64_t upto) {
    int rc = sess_write(m, s);
    if (rc) return rc;
    if (m->sql && (rc = ts_store__sql_trim(m->sql, s->sid, upto, s->h.last_seq))) {
        ts_store__mem_batch_fail(m);
        return rc;
    }
    while (ring_n(s) && ring_at(s, 0)->seq <= upto) ring_pop(m, s);
    s->trimmed = upto;
    return 0;
}

/* ---------------------------------------------------------------- verbs */

void ts_store__mem_exec_log_append(mem_t *m, mem_op_t *op) {
    mem_sess_t *s = sess_get(m, op->s[0], 1, &op->status);
    if (!s) return;
    if ((op->status = sess_room(m, s, op->buf->len, 0))) { settle(m, op, s); return; }
    if ((op->status = sess_append(m, s, op->buf, &op->r_seq))) return;
    settle(m, op, s);
}

void ts_store__mem_exec_log_trim(mem_t *m, mem_op_t *op) {
    mem_sess_t *s = sess_get(m, op->s[0], 0, &op->status);
    if (!s) return;
    uint64_t upto = TS_MIN(op->a, s->h.last_seq);
    if (upto > s->trimmed && (op->status = sess_trim(m, s, upto))) return;
    settle(m, op, s);
}

void ts_store__mem_exec_state_cas(mem_t *m, mem_op_t *op) {
    mem_sess_t *s = sess_get(m, op->s[0], 0, &op->status);
    if (op->status) return;
    uint64_t cur = s ? s->h.state_ver : 0;
    if (op->a != cur) {
        op->status = TS_ECONFLICT;
        op->r_ver = cur;
        if (s && s->h.state) op->r_buf = ts_buf_ref(s->h.state);
        { settle(m, op, s); return; }
    }
    if (!s && !(s = sess_get(m, op->s[0], 1, &op->status))) return;
    size_t old = buf_len(s->h.state), len = op->buf->len;
    if ((op->status = sess_room(m, s, len, old))) { settle(m, op, s); return; }
    if ((op->status = sess_write(m, s))) return;
    uint64_t ver = s->h.state_ver + 1;
    if (m->sql &&
        (op->status = ts_store__sql_state_put(m->sql, s->sid, ver, ts_buf_slice(op->buf)))) {
        ts_store__mem_batch_fail(m);
        return;
    }
    bytes_sub(m, s, old);
    ts_buf_unref(s->h.state);
    s->h.state = ts_buf_ref(op->buf);
    s->h.state_ver = ver;
    bytes_add(m, s, len);
    op->r_ver = ver;
    op->r_buf = ts_buf_ref(s->h.state);
    settle(m, op, s);
}

/* The entry `seq` while the log has it (ring, then file), or NULL. */
static ts_buf_t *sess_entry(mem_t *m, mem_sess_t *s, uint64_t seq) {
    if (seq <= s->trimmed) return NULL;
    mem_ev_t *e = ring_find(s, seq);
    if (e) return ts_buf_ref(e->data);
    if (!m->sql || !s->sid) return NULL;
    ts_store_event_t ev;
    size_t n = 0;
    if (ts_store__sql_read(m->sql, s->sid, seq, seq, 1, SIZE_MAX, &ev, &n) || n == 0) return NULL;
    return ev.data;
}

/* op: s[0] session, s[1] client, s[2] fence, s[3] fence holder, a mut, b if_ver, c chain, d
 * fence term, by is_state, buf event.
 * The exactly-once check comes first: a resend of an applied mutation is
 * TS_EDUP whatever its condition says now. */
void ts_store__mem_exec_commit(mem_t *m, mem_op_t *op) {
    ts_slice_t client = op->s[1];
    uint64_t mut = op->a, if_ver = op->b;
    mem_sess_t *s = sess_get(m, op->s[0], 0, &op->status);
    mem_client_t *c = NULL;
    if (op->status) return;
    if (s && client.len && !(c = client_get(m, s, client, &op->status)) && op->status) return;
    op->r_epoch = s ? s->h.epoch : 0;
    op->r_ver = s ? s->h.hist_ver : 0;
    if (c) {
        const mem_mut_t *w = win_find(c, mut);
        if (w) {
            op->status = TS_EDUP;
            if (op->c) s->broken_chain = op->c; /* not appended: the chain is broken */
            op->r_seq = w->seq;
            op->r_buf = sess_entry(m, s, w->seq);
            { settle(m, op, s); return; }
        }
        if (c->n == TS_STORE_MUT_WINDOW && mut < c->w[0].mut) {
            op->status = TS_ETOOOLD;
            if (op->c) s->broken_chain = op->c;
            { settle(m, op, s); return; }
        }
    }
    /* The fence after the exactly-once check (a leader's resend after it
     * lost the lease is still answered from the original), before the
     * version: a stale leader learns it is stale, not that it conflicts. */
    if (op->s[2].len && !ts_store__mem_lease_fence(m, op, op->s[2], op->s[3], op->d)) {
        op->status = TS_ESTALE;
        if (op->c && s) s->broken_chain = op->c;
        { settle(m, op, s); return; }
    }
    if ((if_ver != TS_STORE_ANY_VER && if_ver != op->r_ver) ||
        (op->c && s && s->broken_chain == op->c)) {
        op->status = TS_ECONFLICT;
        if (op->c && s) s->broken_chain = op->c;
        { settle(m, op, s); return; }
    }
    if (!s && !(s = sess_get(m, op->s[0], 1, &op->status))) return;
    size_t need = op->buf->len + (client.len && !c ? sizeof *c + client.len : 0);
    if ((op->status = sess_room(m, s, need, 0))) {
        if (op->c) s->broken_chain = op->c;
        settle(m, op, s);
        return;
    }
    if ((op->status = sess_append(m, s, op->buf, &op->r_seq))) return;
    if (op->by) {
        s->h.hist_ver++;
        s->flush |= SESS_FLUSH_META;
    }
    if (client.len) {
        if (!c) c = client_new(m, s, client);
        win_insert(m, s, c, mut, op->r_seq);
        if (m->sql && !c->dirty) {
            c->dirty = 1;
            s->dirty_clients++;
        }
    }
    op->r_epoch = s->h.epoch;
    op->r_ver = s->h.hist_ver;
    settle(m, op, s);
}

/* op: s[0] session, a seq, b ver, buf doc. */
void ts_store__mem_exec_snap_put(mem_t *m, mem_op_t *op) {
    mem_sess_t *s = sess_get(m, op->s[0], 0, &op->status);
    if (op->status) return;
    if (!s || op->a > s->h.last_seq) {
        op->status = TS_EINVAL; /* past last_seq */
        { settle(m, op, s); return; }
    }
    if (op->a <= s->h.snap_seq) {
        op->status = TS_ESTALE;
        { settle(m, op, s); return; }
    }
    /* Never refused for memory: a snapshot is what lets events go. */
    size_t old = buf_len(s->h.snap), len = op->buf->len;
    if (m->sql) sess_make_room(m, 0, len, s);
    if ((op->status = sess_write(m, s))) return;
    if (m->sql && (op->status = ts_store__sql_snap_put(m->sql, s->sid, op->a, op->b,
                                                       ts_buf_slice(op->buf)))) {
        ts_store__mem_batch_fail(m);
        return;
    }
    bytes_sub(m, s, old);
    ts_buf_unref(s->h.snap);
    s->h.snap = ts_buf_ref(op->buf);
    s->h.snap_seq = op->a;
    s->h.snap_ver = op->b;
    bytes_add(m, s, len);
    ring_fit(m, s);
    settle(m, op, s);
}

/* ---------------------------------------------------------------- reads */

void ts_store__mem_read_log(mem_t *m, mem_op_t *op) {
    int rc;
    mem_sess_t *s = sess_get(m, op->s[0], 0, &rc);
    ts_store_log_page_t page = {NULL, 0, 0, 0};
    ts_store_event_t *ev = NULL;
    if (!s) goto out;
    uint64_t last = view(s)->last_seq;
    page.last_seq = last;
    page.trimmed_upto = TS_MIN(s->trimmed, last);
    /* Trims show at once (they only hide what a reader must resync past);
     * events only once durable. */
    uint64_t start = TS_MAX(op->a, s->trimmed) + 1;
    if (start > last) goto out;
    size_t max = (size_t)TS_MIN(op->b, (uint64_t)m->lim.read_max);
    ev = ts_xmalloc(max * sizeof *ev);
    if (ring_n(s) && start >= ring_first(s)) {
        size_t bytes = 0;
        for (size_t i = (size_t)(start - ring_first(s)); i < ring_n(s) && page.n < max; i++) {
            mem_ev_t *e = ring_at(s, i);
            if (e->seq > last) break;
            if (page.n > 0 && bytes + e->data->len > m->lim.read_max_bytes) break;
            bytes += e->data->len;
            ev[page.n].seq = e->seq;
            ev[page.n].data = ts_buf_ref(e->data);
            page.n++;
        }
    } else if (m->sql) {
        rc = ts_store__sql_read(m->sql, s->sid, start, last, max, m->lim.read_max_bytes, ev,
                                &page.n);
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

void ts_store__mem_read_state(mem_t *m, mem_op_t *op) {
    int rc;
    mem_sess_t *s = sess_get(m, op->s[0], 0, &rc);
    ts_store_state_t st = {0, NULL};
    if (s) st = (ts_store_state_t){view(s)->state_ver, view(s)->state};
    if (op->cb.state) op->cb.state(rc, rc ? NULL : &st, op->ud);
}

/* sess_get of a session that does not exist yet creates it: its epoch is
 * fixed (and durable) from the first time anyone asks, so a reader that
 * saw a session empty and later events can never mistake another
 * incarnation (a memory-only restart) for the one it saw. */
void ts_store__mem_exec_sess_open(mem_t *m, mem_op_t *op) {
    ts_slice_t name = op->s[0];
    if (ts_idmap_get_n(&m->sessions, (const char *)name.p, name.len))
        return; /* a plain read, answered when due (ts_store__mem_read_sess) */
    if (!m->sql) { /* memory only: nothing to load, and an epoch is all it has */
        if (m->nsess >= m->lim.sessions_max || m->mem_bytes > m->lim.mem_bytes_max) {
            op->status = TS_ELIMIT;
            return;
        }
        mem_stub_t *t = ts_xmalloc(sizeof *t + name.len);
        t->tagged = ts_store__mem_new_epoch() << 1 | 1;
        t->klen = (uint16_t)name.len; /* an id: at most TS_STORE_ID_MAX */
        memcpy(t->key, name.p, name.len);
        ts_idmap_put(&m->sessions, t);
        m->nsess++;
        return;
    }
    mem_sess_t *s = sess_get(m, op->s[0], 0, &op->status);
    if (op->status) return;
    if (s) return; /* a plain read, answered when due (ts_store__mem_read_sess) */
    if (!(s = sess_get(m, op->s[0], 1, &op->status))) return;
    if ((op->status = sess_room(m, s, 0, 0))) return;
    if ((op->status = sess_write(m, s))) return;
    settle(m, op, s);
}

void ts_store__mem_read_sess(mem_t *m, mem_op_t *op) {
    int rc = op->status;
    ts_slice_t name = op->s[0];
    void *o = rc ? NULL : ts_idmap_get_n(&m->sessions, (const char *)name.p, name.len);
    mem_sess_t *s = NULL;
    ts_store_sess_info_t info = {0};
    if (o && ts_store__mem_is_stub(o)) /* read as it is: an epoch, nothing written */
        info.epoch = ((const mem_stub_t *)o)->tagged >> 1;
    else if (!rc)
        s = sess_get(m, name, 0, &rc);
    if (s) {
        const mem_hist_t *v = view(s);
        info = (ts_store_sess_info_t){v->epoch,   v->last_seq, TS_MIN(s->trimmed, v->last_seq),
                                      v->hist_ver, v->snap_seq, v->snap_ver, v->snap};
    }
    if (op->cb.sess) op->cb.sess(rc, rc ? NULL : &info, op->ud);
}

/* ---------------------------------------------------------------- retention */

enum { RETAIN_VISITS = 4096, RETAIN_EVENTS = 100000 }; /* work per sweep */

/* Append time of event seq (trimmed < seq <= last_seq); 0 if unknown. */
static int event_time(mem_t *m, mem_sess_t *s, uint64_t seq, uint64_t *t) {
    mem_ev_t *e = ring_find(s, seq);
    if (e) {
        *t = e->t;
        return 0;
    }
    if (!m->sql || !s->sid) return -1;
    return ts_store__sql_event_time(m->sql, s->sid, seq, t) ? -1 : 0;
}

/* The newest seq retention may drop: beyond the newest retain_events,
 * older than `cutoff` (append times never go back within a session, so
 * those events are a prefix: binary search) and covered by the snapshot. */
static uint64_t retain_upto(mem_t *m, mem_sess_t *s, uint64_t cutoff) {
    uint64_t keep = m->lim.retain_events, last = s->h.last_seq;
    if (last <= keep) return 0;
    uint64_t hi = TS_MIN(s->h.snap_seq, last - keep), lo = s->trimmed, t;
    if (hi <= lo) return 0;
    if (event_time(m, s, hi, &t)) return 0;
    if (t < cutoff) return hi;
    while (hi - lo > 1) { /* t(lo) < cutoff (or lo trimmed), t(hi) >= cutoff */
        uint64_t mid = lo + (hi - lo) / 2;
        if (event_time(m, s, mid, &t)) return 0;
        if (t < cutoff)
            lo = mid;
        else
            hi = mid;
    }
    return lo > s->trimmed ? lo : 0;
}

void ts_store__mem_retain(mem_t *m) {
    uint64_t wall = ts_wall_ms();
    uint64_t cutoff = wall > m->lim.retain_ms ? wall - m->lim.retain_ms : 0;
    uint64_t budget = RETAIN_EVENTS;
    size_t visits = TS_MIN((size_t)RETAIN_VISITS, m->sessions.count);
    void *o;
    while (visits > 0 && budget > 0) {
        if (!ts_idmap_next(&m->sessions, &m->ret_iter, &o)) {
            m->ret_iter = 0; /* wrapped: the next sweep starts over */
            break;
        }
        visits--;
        if (ts_store__mem_is_stub(o)) continue; /* nothing in it */
        mem_sess_t *s = o;
        if (s->h.snap_seq <= s->trimmed || s->h.last_seq - s->trimmed <= m->lim.retain_events)
            continue; /* cheap test before any lookup */
        uint64_t upto = retain_upto(m, s, cutoff);
        if (!upto) continue;
        upto = TS_MIN(upto, s->trimmed + budget);
        uint64_t n = upto - s->trimmed;
        if (sess_trim(m, s, upto)) break; /* the batch failed; `s` is gone */
        budget -= n;
        MEM_STAT_ADD(m, events_trimmed, n);
    }
}
