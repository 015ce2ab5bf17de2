/* mem_batch.c - group commit for the memory backend with a SQLite file.
 *
 * A write runs at once: memory is updated and its rows are written inside
 * the one open transaction (the batch) that every door's writes join under
 * the store's mutex. Its callback waits in its door's pending list until
 * the COMMIT that makes it durable: right after the op (SYNC), at the end
 * of the loop turn (group_ms 0, NONE), or when the first door's timer fires
 * group_ms after the batch's first write. The committing door wakes the
 * others (uv_async) and each calls its own callbacks on its own loop, in
 * issue order. If the COMMIT (or any statement of the batch) fails, the
 * batch is rolled back, every session and lease it touched leaves memory
 * (the next use reloads it from the file, so memory never shows what the
 * file lacks) and every op that waited for it gets TS_ESTORE. */
#include <stdlib.h>
#include <string.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "store/mem_int.h"

int ts_store__mem_batch_begin(mem_t *m) {
    if (!m->sql || m->batch_open) return 0;
    int rc = ts_store__sql_begin(m->sql);
    if (rc) return rc;
    m->batch_open = 1;
    m->batch_t0 = uv_hrtime();
    return 0;
}

#define PUSH(arr, n, cap, v)                                                   \
    do {                                                                       \
        if ((n) == (cap)) {                                                    \
            (cap) = (cap) ? (cap) * 2 : 64;                                    \
            (arr) = ts_xrealloc((arr), (cap) * sizeof *(arr));                 \
        }                                                                      \
        (arr)[(n)++] = (v);                                                    \
    } while (0)

static void hist_copy(mem_hist_t *dst, const mem_hist_t *src) {
    *dst = *src;
    if (dst->snap) ts_buf_ref(dst->snap);
    if (dst->state) ts_buf_ref(dst->state);
}

void ts_store__mem_touch_sess(mem_t *m, mem_sess_t *s) {
    if (!m->batch_open || s->dirty) return;
    s->dirty = 1;
    s->dur = ts_xmalloc(sizeof *s->dur);
    hist_copy(s->dur, &s->h); /* what reads show until the COMMIT */
    PUSH(m->touched, m->ntouched, m->touched_cap, s);
}

void ts_store__mem_touch_lease(mem_t *m, mem_lease_t *l) {
    if (!m->batch_open || l->dirty) return;
    l->dirty = 1;
    PUSH(m->ltouched, m->nltouched, m->ltouched_cap, l);
}

void ts_store__mem_op_join(mem_t *m, mem_op_t *op) {
    if (!m->batch_open || op->gen == m->gen) return;
    op->gen = m->gen;
    m->batch_ops++;
}

static void op_release_result(mem_op_t *op) {
    ts_buf_unref(op->r_buf);
    op->r_buf = NULL;
}

/* Closes the batch: its callbacks are due; wake every door that waits. */
static void batch_end(mem_t *m) {
    m->batch_open = 0;
    m->done_gen = m->gen++;
    m->batch_ops = 0;
    m->ntouched = m->nltouched = 0;
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &m->door_list) {
        mem_door_t *d = TS_CONTAINER_OF(it, mem_door_t, link);
        if (!ts_list_empty(&d->pending)) uv_async_send(&d->wake);
    }
}

void ts_store__mem_batch_fail(mem_t *m) {
    if (!m->batch_open) return;
    ts_store__sql_rollback(m->sql);
    ts_warn("store", "a batch of %llu ops failed (TS_ESTORE) and was rolled back; %zu sessions "
                     "and %zu leases will be reloaded from the file",
            (unsigned long long)m->batch_ops, m->ntouched, m->nltouched);
    for (size_t i = 0; i < m->ntouched; i++) ts_store__mem_sess_evict(m, m->touched[i]);
    for (size_t i = 0; i < m->nltouched; i++) ts_store__mem_lease_forget(m, m->ltouched[i]);
    ts_list_t *dit;
    for (dit = m->door_list.next; dit != &m->door_list; dit = dit->next) {
        mem_door_t *d = TS_CONTAINER_OF(dit, mem_door_t, link);
        for (ts_list_t *it = d->pending.next; it != &d->pending; it = it->next) {
            mem_op_t *op = TS_CONTAINER_OF(it, mem_op_t, link);
            if (op->gen != m->gen) continue;
            op->status = TS_ESTORE;
            op_release_result(op);
        }
    }
    MEM_STAT_ADD(m, commit_failures, 1);
    batch_end(m);
}

static void stat_latency(mem_t *m, uint64_t us) {
    static const uint64_t bounds[TS_STORE_LAT_BUCKETS] = TS_STORE_LAT_BOUNDS_US;
    for (int i = 0; i < TS_STORE_LAT_BUCKETS; i++)
        if (us <= bounds[i]) MEM_STAT_ADD(m, lat_le[i], 1);
    MEM_STAT_ADD(m, lat_count, 1);
    MEM_STAT_ADD(m, lat_sum_us, us);
}

void ts_store__mem_batch_commit(mem_t *m) {
    if (!m->batch_open) return;
    /* Row fields and client windows are written once per batch, however
     * many of its ops changed them. */
    for (size_t i = 0; i < m->ntouched; i++) {
        if (ts_store__mem_sess_flush(m, m->touched[i])) {
            ts_store__mem_batch_fail(m);
            return;
        }
    }
    uint64_t t0 = uv_hrtime();
    if (ts_store__sql_commit(m->sql)) {
        ts_store__mem_batch_fail(m);
        return;
    }
    stat_latency(m, (uv_hrtime() - t0) / 1000);
    MEM_STAT_ADD(m, commits, 1);
    MEM_STAT_ADD(m, commit_ops, m->batch_ops);
    for (size_t i = 0; i < m->ntouched; i++) {
        mem_sess_t *s = m->touched[i];
        ts_store__mem_hist_release(s->dur);
        free(s->dur);
        s->dur = NULL;
        s->dirty = 0;
    }
    for (size_t i = 0; i < m->nltouched; i++) m->ltouched[i]->dirty = 0;
    batch_end(m);
}

void ts_store__mem_op_free(mem_op_t *op) {
    ts_buf_unref(op->buf);
    ts_buf_unref(op->r_buf);
    free(op);
}

/* Calls an executed op's callback with its stored result. */
void ts_store__mem_deliver_op(mem_t *m, mem_op_t *op) {
    int st = op->status;
    switch (op->kind) {
    case OP_LOG_APPEND:
        if (op->cb.seq) op->cb.seq(st, st ? 0 : op->r_seq, op->ud);
        break;
    case OP_STATE_CAS: {
        ts_store_state_t v = {op->r_ver, op->r_buf};
        if (op->cb.state) op->cb.state(st, st == 0 || st == TS_ECONFLICT ? &v : NULL, op->ud);
        break;
    }
    case OP_COMMIT: {
        ts_store_event_t orig = {op->r_seq, op->r_buf};
        ts_store_commit_res_t res = {op->r_epoch, op->r_seq, op->r_ver,
                                     st == TS_EDUP && op->r_buf ? &orig : NULL, op->r_term};
        if (st == TS_EDUP) MEM_STAT_ADD(m, dups, 1);
        int with = st == 0 || st == TS_EDUP || st == TS_ECONFLICT || st == TS_ESTALE;
        if (op->cb.commit) op->cb.commit(st, with ? &res : NULL, op->ud);
        break;
    }
    case OP_LEASE_ACQUIRE:
    case OP_LEASE_RENEW:
    case OP_LEASE_TRANSFER:
    case OP_LEASE_GET: {
        ts_store_lease_t v = {op->s[0], ts_slice("", 0), op->r_seq, op->r_exp};
        if (op->r_buf) v.holder = ts_buf_slice(op->r_buf);
        int with = op->kind == OP_LEASE_ACQUIRE ? st == 0 || st == TS_EHELD
                                                : st == 0 || st == TS_ESTALE;
        if (op->cb.lease) op->cb.lease(st, with ? &v : NULL, op->ud);
        break;
    }
    case OP_SESS_GET: /* its answer is read when due, after the creation is durable */
        ts_store__mem_read_sess(m, op);
        break;
    case OP_REG_LIST:
    case OP_LOG_READ:
    case OP_STATE_GET:
        ts_assert(!"reads are delivered by running them");
        break;
    default:
        if (op->cb.done) op->cb.done(st, op->ud);
        break;
    }
}

void ts_store__mem_run_read(mem_t *m, mem_op_t *op) {
    switch (op->kind) {
    case OP_REG_LIST: ts_store__mem_read_reg(m, op); break;
    case OP_LOG_READ: ts_store__mem_read_log(m, op); break;
    case OP_STATE_GET: ts_store__mem_read_state(m, op); break;
    default: ts_assert(!"not a read"); break;
    }
}

void ts_store__mem_door_deliver(mem_door_t *d) {
    mem_t *m = d->m;
    while (!ts_list_empty(&d->pending)) {
        mem_op_t *op = TS_CONTAINER_OF(d->pending.next, mem_op_t, link);
        if (op->gen > m->done_gen) break; /* its batch is not durable yet */
        ts_list_remove(&op->link);
        if (op_is_read(op->kind))
            ts_store__mem_run_read(m, op);
        else
            ts_store__mem_deliver_op(m, op);
        ts_store__mem_op_free(op);
    }
}

void ts_store__mem_door_arm(mem_door_t *d) {
    mem_t *m = d->m;
    if (!m->batch_open) return;
    if (uv_is_active((uv_handle_t *)&d->timer) && d->armed_gen == m->gen) return;
    /* The window is counted in nanoseconds from the batch's first write,
     * and the timer armed for the whole milliseconds left, rounded down,
     * against a loop clock brought up to date first. libuv counts a timer in
     * whole milliseconds of a truncated clock and epoll_wait sleeps that
     * many from the real now, so a timer fires up to 1 ms after its due
     * time: rounding down ends the window between group_ms - 1 and group_ms
     * after the first write, never later, as --durability group:MS promises.
     * Before (whole ms of ts_now_ms(), the turn's cached clock) a 2 ms
     * window lasted 2.24-2.27 ms at the median, 2.45 at p99, now 1.22 and
     * 1.35-1.54; p99 publish -> delivery at 4,000 publishes/s 3.6-3.9 ms,
     * now 2.7-3.1 ms (docs/PERFORMANCE.md "The group commit's window"). */
    uint64_t due = m->batch_t0 + (uint64_t)m->lim.group_ms * 1000000u, now = uv_hrtime();
    d->armed_gen = m->gen;
    uv_update_time(d->timer.loop);
    uint64_t left_ms = due > now ? (due - now) / 1000000u : 0;
    uv_timer_start(&d->timer, ts_store__mem_on_timer, left_ms, 0);
}

void ts_store__mem_door_settle(mem_door_t *d) {
    if (ts_list_empty(&d->pending)) return; /* a running timer is harmless */
    mem_op_t *op = TS_CONTAINER_OF(d->pending.next, mem_op_t, link);
    if (op->gen > d->m->done_gen) ts_store__mem_door_arm(d);
}

/* Whichever waiting door's timer fires first commits for every door. */
void ts_store__mem_on_timer(uv_timer_t *t) {
    mem_door_t *d = t->data;
    mem_t *m = d->m;
    pthread_mutex_lock(&m->mu);
    if (m->batch_open && m->gen == d->armed_gen) ts_store__mem_batch_commit(m);
    ts_store__mem_door_deliver(d);
    ts_store__mem_door_settle(d);
    pthread_mutex_unlock(&m->mu);
}

void ts_store__mem_on_wake(uv_async_t *a) {
    mem_door_t *d = a->data;
    mem_t *m = d->m;
    pthread_mutex_lock(&m->mu);
    ts_store__mem_door_deliver(d);
    ts_store__mem_door_settle(d);
    pthread_mutex_unlock(&m->mu);
    ts_store__mem_door_messages(d); /* pub/sub: outside the mutex */
}
