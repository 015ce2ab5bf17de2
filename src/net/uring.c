/* uring.c - a loop turn's socket writes in one io_uring_enter.
 * Every send is non-blocking (MSG_DONTWAIT): the kernel does it inline
 * while submitting and posts its result at once, so a batch is a batch of
 * writev calls without their per-call entry, and nothing is ever in flight
 * after ts_uring__run returns. Built only with Debian's liburing. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "net/net_int.h"

#ifdef TS_HAVE_LIBURING
#include <liburing.h>

/* The user_data of the cancel that ends an unexpected wait: not a slot. */
#define CANCEL_TAG UINT64_MAX

struct ts_uring {
    struct io_uring ring;
    unsigned cap, n;     /* sends queued in this batch, at most cap */
    int running;         /* in ts_uring__run's callbacks, which must not queue */
    struct ts_uring_op { /* the batch: its message headers and results */
        struct msghdr msg;
        void *ud;
        unsigned n; /* segments queued; msg carries at most IOV_MAX of them */
        int res;
    } *ops;
};

ts_uring_t *ts_uring__new(unsigned entries) {
    ts_uring_t *u = ts_xcalloc(1, sizeof(*u));
    /* The loop's thread is the only submitter, and completions are reaped
     * only when it asks: the kernel then skips its task-work interrupts. */
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    int rc = io_uring_queue_init_params(entries, &u->ring, &p);
    if (rc == -EINVAL) { /* a kernel before 6.1 */
        p = (struct io_uring_params){0};
        rc = io_uring_queue_init_params(entries, &u->ring, &p);
    }
    if (rc < 0) {
        ts_warn("net", "io_uring unavailable (%s): writes use writev", strerror(-rc));
        free(u);
        return NULL;
    }
    u->cap = entries;
    u->ops = ts_xcalloc(entries, sizeof(*u->ops));
    return u;
}

void ts_uring__free(ts_uring_t *u) {
    if (!u) return;
    io_uring_queue_exit(&u->ring);
    free(u->ops);
    free(u);
}

unsigned ts_uring__queued(const ts_uring_t *u) { return u->n; }
int ts_uring__full(const ts_uring_t *u) { return u->n == u->cap; }

void ts_uring__send(ts_uring_t *u, int fd, uv_buf_t *iov, unsigned n, void *ud) {
    /* uv_buf_t is laid out as struct iovec on Unix (libuv documents it) */
    assert(!u->running && u->n < u->cap);
    struct ts_uring_op *op = &u->ops[u->n];
    /* The kernel refuses more than IOV_MAX segments (EMSGSIZE); as libuv
     * does for writev, send the first IOV_MAX: the rest is a short write. */
    op->msg = (struct msghdr){.msg_iov = (struct iovec *)iov, .msg_iovlen = TS_MIN(n, IOV_MAX)};
    op->ud = ud;
    op->n = n;
    op->res = -EINPROGRESS;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring); /* cap = the ring's size */
    io_uring_prep_sendmsg(sqe, fd, &op->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    sqe->user_data = u->n++;
}

/* Copies the posted results into the batch; returns how many came. */
static unsigned reap(ts_uring_t *u) {
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0, got = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        seen++;
        if (cqe->user_data == CANCEL_TAG || cqe->user_data >= u->n) continue;
        u->ops[cqe->user_data].res = cqe->res;
        got++;
    }
    io_uring_cq_advance(&u->ring, seen);
    return got;
}

void ts_uring__run(ts_uring_t *u, ts_uring_cb cb) {
    unsigned n = u->n;
    if (!n) return;
    int rc = io_uring_submit(&u->ring);
    unsigned got = reap(u);
    if (got < n) {
        /* Not expected: a send with MSG_DONTWAIT either completes or fails
         * with EAGAIN while it is submitted. Should one ever wait (a kernel
         * that arms a poll anyway), cancel it rather than block the loop;
         * a cancelled send wrote nothing and goes through libuv instead. */
        if (rc < 0) ts_warn("net", "io_uring_submit: %s", strerror(-rc));
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        if (sqe) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            sqe->user_data = CANCEL_TAG;
            for (int tries = 0; got < n && tries < 100; tries++) {
                io_uring_submit_and_wait(&u->ring, 1);
                got += reap(u);
            }
        }
        ts_warn("net", "io_uring: %u of %u sends did not complete at once", n - got, n);
    }
    u->running = 1;
    for (unsigned i = 0; i < n; i++) {
        struct ts_uring_op *op = &u->ops[i];
        int res = op->res == -EINPROGRESS || op->res == -ECANCELED ? -EAGAIN : op->res;
        cb(op->ud, (uv_buf_t *)op->msg.msg_iov, op->n, res);
    }
    u->running = 0;
    u->n = 0;
}

#else /* without liburing */

ts_uring_t *ts_uring__new(unsigned entries) {
    (void)entries;
    return NULL;
}
void ts_uring__free(ts_uring_t *u) { (void)u; }
unsigned ts_uring__queued(const ts_uring_t *u) { (void)u; return 0; }
int ts_uring__full(const ts_uring_t *u) { (void)u; return 0; }
void ts_uring__send(ts_uring_t *u, int fd, uv_buf_t *iov, unsigned n, void *ud) {
    (void)u, (void)fd, (void)iov, (void)n, (void)ud;
}
void ts_uring__run(ts_uring_t *u, ts_uring_cb cb) { (void)u, (void)cb; }

#endif
