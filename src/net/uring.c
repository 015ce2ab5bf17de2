/* uring.c - a loop turn's socket reads, and its writes, each in one
 * io_uring_enter. Every operation is non-blocking (MSG_DONTWAIT): the kernel
 * does it inline while submitting and posts its result at once, so a batch
 * is a batch of recv or sendmsg calls without their per-call entry, and
 * nothing is ever in flight after a run returns. Built only with Debian's
 * liburing. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "net/net_int.h"

#ifdef TS_HAVE_LIBURING
#include <liburing.h>

/* The user_data of the cancel that ends an unexpected wait: not a slot. */
#define CANCEL_TAG UINT64_MAX
/* The user_data of a read's TCP_QUICKACK: it posts nothing when it works
 * (IOSQE_CQE_SKIP_SUCCESS), and a failure needs no answer. */
#define QUICKACK_TAG (UINT64_MAX - 1)

/* A socket command of Linux 6.7 (SOCKET_URING_OP_SETSOCKOPT, an
 * IORING_OP_URING_CMD on a socket), which Debian's kernel headers (6.1) and
 * liburing 2.3 do not name yet: the values are the kernel's ABI. */
#define TS_SOCKET_URING_OP_SETSOCKOPT 3u

enum op_kind { OP_SEND, OP_RECV };

struct ts_uring {
    struct io_uring ring;
    unsigned cap, n;     /* operations queued in this batch, at most cap */
    uint8_t kind;        /* enum op_kind: a batch is all sends or all reads */
    uint8_t running;     /* in a run's callbacks, which must not queue */
    uint8_t sock_cmd;    /* the kernel sets socket options from the ring */
    struct ts_uring_op { /* the batch: what each operation needs, and its result */
        struct msghdr msg; /* a send's segments; a read's buffer is msg_iov[0] */
        struct iovec one;
        void *ud;
        unsigned n; /* a send's segments queued; msg carries at most IOV_MAX of them */
        int res;
    } *ops, *done; /* done: a read batch's copy, handed to its callbacks */
};

/* Fills `sqe` with setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, 0) as the
 * kernel reads it: level and optname where addr is, optlen where
 * splice_fd_in is, the value's address where addr3 is
 * (io_uring_prep_cmd_sock in liburing 2.5). */
static void prep_quickack_off(struct io_uring_sqe *sqe, int fd) {
    static const int zero = 0;
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = TS_SOCKET_URING_OP_SETSOCKOPT;
    sqe->addr = (uint64_t)IPPROTO_TCP | (uint64_t)TCP_QUICKACK << 32;
    sqe->splice_fd_in = (int32_t)sizeof zero;
    sqe->addr3 = (uint64_t)(uintptr_t)&zero;
}

/* Does this kernel set a socket option from the ring (Linux 6.7)? Tried
 * once on a throwaway socket: where it does not, a read's TCP_QUICKACK is a
 * system call of its own, as without the ring. */
static int probe_sock_cmd(ts_uring_t *u) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    prep_quickack_off(sqe, fd);
    sqe->user_data = 1;
    int ok = 0;
    struct io_uring_cqe *cqe;
    if (io_uring_submit_and_wait(&u->ring, 1) >= 0 && io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        ok = cqe->res == 0;
        io_uring_cqe_seen(&u->ring, cqe);
    }
    close(fd);
    return ok;
}

ts_uring_t *ts_uring__new(unsigned batch) {
    ts_uring_t *u = ts_xcalloc(1, sizeof(*u));
    /* The loop's thread is the only submitter, and completions are reaped
     * only when it asks: the kernel then skips its task-work interrupts.
     * Two entries per operation: a read may come with its TCP_QUICKACK. */
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    int rc = io_uring_queue_init_params(2 * batch, &u->ring, &p);
    if (rc == -EINVAL) { /* a kernel before 6.1 */
        p = (struct io_uring_params){0};
        rc = io_uring_queue_init_params(2 * batch, &u->ring, &p);
    }
    if (rc < 0) {
        ts_warn("net", "io_uring unavailable (%s): reads use read, writes writev", strerror(-rc));
        free(u);
        return NULL;
    }
    u->cap = batch;
    u->ops = ts_xcalloc(batch, sizeof(*u->ops));
    u->done = ts_xcalloc(batch, sizeof(*u->done));
    u->sock_cmd = (uint8_t)probe_sock_cmd(u);
    return u;
}

void ts_uring__free(ts_uring_t *u) {
    if (!u) return;
    io_uring_queue_exit(&u->ring);
    free(u->ops);
    free(u->done);
    free(u);
}

unsigned ts_uring__queued(const ts_uring_t *u) { return u->n; }
int ts_uring__full(const ts_uring_t *u) { return u->n == u->cap; }
int ts_uring__sock_cmd(const ts_uring_t *u) { return u->sock_cmd; }

static struct ts_uring_op *op_new(ts_uring_t *u, enum op_kind kind, void *ud) {
    assert(!u->running && u->n < u->cap && (u->n == 0 || u->kind == kind));
    u->kind = (uint8_t)kind;
    struct ts_uring_op *op = &u->ops[u->n];
    op->ud = ud;
    op->res = -EINPROGRESS;
    return op;
}

void ts_uring__send(ts_uring_t *u, int fd, uv_buf_t *iov, unsigned n, void *ud) {
    /* uv_buf_t is laid out as struct iovec on Unix (libuv documents it) */
    struct ts_uring_op *op = op_new(u, OP_SEND, ud);
    /* The kernel refuses more than IOV_MAX segments (EMSGSIZE); as libuv
     * does for writev, send the first IOV_MAX: the rest is a short write. */
    op->msg = (struct msghdr){.msg_iov = (struct iovec *)iov, .msg_iovlen = TS_MIN(n, IOV_MAX)};
    op->n = n;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring); /* 2 * cap entries */
    io_uring_prep_sendmsg(sqe, fd, &op->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    sqe->user_data = u->n++;
}

void ts_uring__recv(ts_uring_t *u, int fd, void *buf, size_t len, enum ts_uring_ack ack,
                    void *ud) {
    struct ts_uring_op *op = op_new(u, OP_RECV, ud);
    op->one = (struct iovec){buf, len};
    op->msg = (struct msghdr){.msg_iov = &op->one, .msg_iovlen = 1};
    op->n = 1;
    if (ack == TS_URING_ACK_DELAYED && u->sock_cmd) {
        /* Issued in order while submitting, so before the read of the same
         * socket: not linked, since a link's next request runs as task work,
         * which this ring defers to the next wait. */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        prep_quickack_off(sqe, fd);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        sqe->user_data = QUICKACK_TAG;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
    sqe->user_data = u->n++;
}

/* Copies the posted results into the batch; returns how many came. */
static unsigned reap(ts_uring_t *u) {
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0, got = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        seen++;
        if (cqe->user_data >= u->n) continue; /* the cancel, a quickack that failed */
        u->ops[cqe->user_data].res = cqe->res;
        got++;
    }
    io_uring_cq_advance(&u->ring, seen);
    return got;
}

/* Submits the batch in one system call and collects every result. */
static void submit(ts_uring_t *u) {
    unsigned n = u->n;
    int rc = io_uring_submit(&u->ring);
    unsigned got = reap(u);
    if (got < n) {
        /* Not expected: an operation with MSG_DONTWAIT either completes or
         * fails with EAGAIN while it is submitted. Should one ever wait (a
         * kernel that arms a poll anyway), cancel it rather than block the
         * loop: it then did nothing, and is counted as EAGAIN. */
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
        ts_warn("net", "io_uring: %u of %u operations did not complete at once", n - got, n);
    }
}

static int result(const struct ts_uring_op *op) {
    return op->res == -EINPROGRESS || op->res == -ECANCELED ? -EAGAIN : op->res;
}

void ts_uring__run(ts_uring_t *u, ts_uring_cb cb) {
    unsigned n = u->n;
    if (!n) return;
    assert(u->kind == OP_SEND);
    submit(u);
    u->running = 1;
    for (unsigned i = 0; i < n; i++) {
        struct ts_uring_op *op = &u->ops[i];
        cb(op->ud, (uv_buf_t *)op->msg.msg_iov, op->n, result(op));
    }
    u->running = 0;
    u->n = 0;
}

void ts_uring__run_recv(ts_uring_t *u, ts_uring_recv_cb cb) {
    unsigned n = u->n;
    if (!n) return;
    assert(u->kind == OP_RECV);
    submit(u);
    /* Results are copied out and the batch emptied before the callbacks,
     * which call the layers above; `running` catches any use of the ring
     * from there (the flush's sends are queued at the end of the turn). */
    assert(!u->running);
    memcpy(u->done, u->ops, n * sizeof(*u->done));
    u->n = 0;
    u->running = 1; /* for the `done` copy: a read's callback starts no run */
    for (unsigned i = 0; i < n; i++)
        cb(u->done[i].ud, u->done[i].one.iov_base, u->done[i].one.iov_len, result(&u->done[i]));
    u->running = 0;
}

#else /* without liburing */

ts_uring_t *ts_uring__new(unsigned batch) {
    (void)batch;
    return NULL;
}
void ts_uring__free(ts_uring_t *u) { (void)u; }
unsigned ts_uring__queued(const ts_uring_t *u) { (void)u; return 0; }
int ts_uring__full(const ts_uring_t *u) { (void)u; return 0; }
int ts_uring__sock_cmd(const ts_uring_t *u) { (void)u; return 0; }
void ts_uring__send(ts_uring_t *u, int fd, uv_buf_t *iov, unsigned n, void *ud) {
    (void)u, (void)fd, (void)iov, (void)n, (void)ud;
}
void ts_uring__recv(ts_uring_t *u, int fd, void *buf, size_t len, enum ts_uring_ack ack,
                    void *ud) {
    (void)u, (void)fd, (void)buf, (void)len, (void)ack, (void)ud;
}
void ts_uring__run(ts_uring_t *u, ts_uring_cb cb) { (void)u, (void)cb; }
void ts_uring__run_recv(ts_uring_t *u, ts_uring_recv_cb cb) { (void)u, (void)cb; }

#endif
