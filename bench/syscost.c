/* syscost.c - microbenchmark of the system calls behind one delivery (issue
 * #13, item 2): N connected loopback TCP pairs; a writer thread writes one
 * "turn" (4 WebSocket frames, as tabsyncd's writev carries) to every sender
 * per round while a reader thread drains the receivers, each pinned to its
 * own core. It reports the writer's CPU per socket-turn, per system call and
 * per byte for several ways of handing the same bytes to the kernel. It
 * measures the kernel, not tabsyncd: nothing here is server code. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#ifdef TS_HAVE_LIBURING
#include <liburing.h>
#endif

#define MAX_FRAMES 16 /* --frames limit */
#define TURN_MAX 4096 /* bytes: 16 x (14 + 200) fits */

enum wmode {
    W_WRITEV8,     /* writev, 8 segments: what tabsyncd does */
    W_SENDMSG8,    /* sendmsg, the same 8 segments (no fdget_pos) */
    W_WRITE1,      /* the 8 segments copied into one buffer, one write */
    W_SEND4MORE,   /* one sendmsg per frame, MSG_MORE on all but the last */
    W_WRITEV2X4,   /* one writev per frame: no coalescing (names assume --frames 4) */
    W_URING8,      /* io_uring: N WRITEV SQEs (8 segments), one submit per round */
    W_URING1,      /* io_uring: N SEND SQEs of the copied buffer, one submit per round */
    W_COUNT
};

static const struct {
    const char *name;
    int calls_per_turn; /* system calls per socket-turn: 1, or one per frame (shown as 2) */
    int uring;
} wmodes[W_COUNT] = {
    [W_WRITEV8] = {"writev8", 1, 0},     [W_SENDMSG8] = {"sendmsg8", 1, 0},
    [W_WRITE1] = {"write1", 1, 0},       [W_SEND4MORE] = {"send4more", 2, 0},
    [W_WRITEV2X4] = {"writev2x4", 2, 0}, [W_URING8] = {"uring-writev8", 0, 1},
    [W_URING1] = {"uring-send1", 0, 1},
};

enum rmode { R_READ, R_URING, R_COUNT };
static const char *rmode_names[R_COUNT] = {"read", "uring-recv"};

typedef struct cfg {
    int conns;        /* loopback pairs */
    int rounds;       /* measured rounds per run */
    int warm;         /* unmeasured rounds first */
    int reps;         /* runs of each mode */
    int ahead;        /* rounds the writer may be ahead of the reader */
    int cpu_w, cpu_r; /* cores to pin to; -1 = no pinning */
    int nap_us;       /* reader sleeps this long after each drain; 0 = epoll_wait at once */
    int frames;       /* frames per socket per turn: 4 in the /session scenario */
    int ubatch;       /* io_uring writer: SQEs per submit; 0 = the whole round (<= 4096) */
} cfg_t;

static cfg_t cfg = {1000, 300, 20, 5, 1, 0, 1, 1000, 4, 0};

static int *snd_fd, *rcv_fd;       /* [conns] */
static struct iovec *turn_iov;     /* [conns * 2 * cfg.frames]: header, payload, ... */
static size_t *turn_len;           /* [conns]: bytes of one socket's turn */
static size_t round_bytes;         /* sum of turn_len */
static uint8_t hdr_bytes[16], pay_bytes[256];

static struct iovec *iov_of(int s) { /* socket s's turn: header, payload, header, ... */
    return &turn_iov[(size_t)s * 2 * (size_t)cfg.frames];
}

/* what the reader has drained; the writer waits on it to stay `ahead` rounds ahead */
static _Atomic uint64_t drained;
static _Atomic int writer_waiting;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t stalls; /* short or EAGAIN writes finished the slow way; expect 0 */

static void die(const char *what) {
    fprintf(stderr, "syscost: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Seconds of CPU, user + system, of this thread (RUSAGE_THREAD) or the
 * process (RUSAGE_SELF): the scheduler's exact runtime (the CPU-time clocks
 * bring it up to date when read; getrusage's totals lag by up to a tick). */
static double cpu_of(int who) {
    struct timespec ts;
    clock_gettime(who == RUSAGE_THREAD ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The system part, from getrusage: its user/system split is sampled at the
 * tick, so it is a proportion, good to a few per cent over a run. */

static double sys_of(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        fprintf(stderr, "syscost: cannot pin to cpu %d (running unpinned)\n", cpu);
}

/* Softirq work the kernel defers to ksoftirqd is not charged to our threads:
 * its CPU is read from /proc/<pid>/schedstat (ns on CPU) around every run. */
static int ksoft_pid[64], n_ksoft;

static void find_ksoftirqd(void) {
    DIR *d = opendir("/proc");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) && n_ksoft < 64;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f) && !strncmp(comm, "ksoftirqd/", 10))
            ksoft_pid[n_ksoft++] = atoi(e->d_name);
        fclose(f);
    }
    closedir(d);
}

static double ksoftirqd_cpu(void) { /* seconds, all ksoftirqd threads */
    double sum = 0;
    for (int i = 0; i < n_ksoft; i++) {
        char path[64];
        unsigned long long ns = 0;
        snprintf(path, sizeof path, "/proc/%d/schedstat", ksoft_pid[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fscanf(f, "%llu", &ns) == 1) sum += (double)ns / 1e9;
        fclose(f);
    }
    return sum;
}

/* The entry and exit of a system call that does nothing (getppid), for
 * scale: what io_uring can save per call at most, with this kernel's
 * mitigations. */
static double null_syscall_ns(void) {
    double c0 = cpu_of(RUSAGE_THREAD);
    for (int i = 0; i < 1000000; i++) (void)getppid();
    return (cpu_of(RUSAGE_THREAD) - c0) / 1e6 * 1e9;
}

/* ---- the connections ------------------------------------------------------ */

static void setup_conns(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (bind(lfd, (struct sockaddr *)&sa, sl) < 0 || listen(lfd, 4096) < 0) die("listen");
    if (getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) die("getsockname");
    snd_fd = calloc((size_t)cfg.conns, sizeof *snd_fd);
    rcv_fd = calloc((size_t)cfg.conns, sizeof *rcv_fd);
    int one = 1;
    for (int i = 0; i < cfg.conns; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0) die("socket (is the open-files limit below 2 x --conns?)");
        if (connect(c, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
        int a = accept(lfd, NULL, NULL);
        if (a < 0) die("accept");
        /* the server side sends, as tabsyncd does; both ends TCP_NODELAY and
         * non-blocking, as tabsyncd and tsbench have them */
        setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(a, F_SETFL, O_NONBLOCK);
        fcntl(c, F_SETFL, O_NONBLOCK);
        snd_fd[i] = a;
        rcv_fd[i] = c;
    }
    close(lfd);

    /* Frame sizes vary by socket as in the scenario: headers of 2-14 bytes
     * (WebSocket header and the Socket.IO prefix), payloads of 150-200 bytes.
     * The payload bytes are shared by every socket, as tabsyncd's are. */
    for (size_t i = 0; i < sizeof hdr_bytes; i++) hdr_bytes[i] = (uint8_t)(0x81 + i);
    for (size_t i = 0; i < sizeof pay_bytes; i++) pay_bytes[i] = (uint8_t)('a' + i % 26);
    turn_iov = calloc((size_t)cfg.conns * 2 * (size_t)cfg.frames, sizeof *turn_iov);
    turn_len = calloc((size_t)cfg.conns, sizeof *turn_len);
    round_bytes = 0;
    for (int s = 0; s < cfg.conns; s++) {
        struct iovec *v = iov_of(s);
        for (int f = 0; f < cfg.frames; f++) {
            size_t hl = 2 + (size_t)(s * 7 + f * 5) % 13;
            size_t pl = 150 + (size_t)(s * 13 + f * 17) % 51;
            v[2 * f] = (struct iovec){hdr_bytes, hl};
            v[2 * f + 1] = (struct iovec){pay_bytes, pl};
            turn_len[s] += hl + pl;
        }
        round_bytes += turn_len[s];
    }
}

/* ---- the writer ----------------------------------------------------------- */

/* Finishes a write the kernel took only part of (blocking on poll): counted
 * in `stalls`, which a sane run keeps at 0 (the reader is at most `ahead`
 * rounds behind, far below the socket buffers). */
static void finish_write(int fd, const struct iovec *iov, int n, size_t done) {
    stalls++;
    uint8_t buf[TURN_MAX];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    while (done < len) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w > 0) {
            done += (size_t)w;
        } else if (w < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 1000);
        } else {
            die("write");
        }
    }
}

static void check_write(ssize_t w, int fd, const struct iovec *iov, int n, size_t want) {
    if (w == (ssize_t)want) return;
    if (w < 0 && errno != EAGAIN) die("write");
    finish_write(fd, iov, n, w < 0 ? 0 : (size_t)w);
}

static size_t copy_turn(uint8_t *dst, int s) {
    const struct iovec *v = iov_of(s);
    size_t len = 0;
    for (int i = 0; i < 2 * cfg.frames; i++) {
        memcpy(dst + len, v[i].iov_base, v[i].iov_len);
        len += v[i].iov_len;
    }
    return len;
}

static void write_round_plain(enum wmode m) {
    for (int s = 0; s < cfg.conns; s++) {
        int fd = snd_fd[s];
        struct iovec *v = iov_of(s);
        switch (m) {
        case W_WRITEV8:
            check_write(writev(fd, v, 2 * cfg.frames), fd, v, 2 * cfg.frames, turn_len[s]);
            break;
        case W_SENDMSG8: {
            struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)(2 * cfg.frames)};
            check_write(sendmsg(fd, &mh, MSG_NOSIGNAL), fd, v, 2 * cfg.frames, turn_len[s]);
            break;
        }
        case W_WRITE1: {
            uint8_t buf[TURN_MAX];
            size_t len = copy_turn(buf, s);
            struct iovec one = {buf, len};
            check_write(write(fd, buf, len), fd, &one, 1, len);
            break;
        }
        case W_SEND4MORE:
        case W_WRITEV2X4:
            for (int f = 0; f < cfg.frames; f++) {
                size_t len = v[2 * f].iov_len + v[2 * f + 1].iov_len;
                ssize_t w;
                if (m == W_SEND4MORE) {
                    struct msghdr mh = {.msg_iov = v + 2 * f, .msg_iovlen = 2};
                    w = sendmsg(fd, &mh, MSG_NOSIGNAL | (f < cfg.frames - 1 ? MSG_MORE : 0));
                } else {
                    w = writev(fd, v + 2 * f, 2);
                }
                check_write(w, fd, v + 2 * f, 2, len);
            }
            break;
        default:
            break;
        }
    }
}

#ifdef TS_HAVE_LIBURING
/* One ring for the writer, with the senders registered (IOSQE_FIXED_FILE
 * skips the file-table lookup) and completions run only when the writer asks
 * (DEFER_TASKRUN, where the kernel has it): the cheapest setup we know. */
static struct io_uring wring;
static unsigned wring_entries; /* ring size, a power of two */
static int wbatch;             /* SQEs per io_uring_enter: --uring-batch, else min(conns, 4096) */
static uint8_t *uring_bufs; /* [conns * TURN_MAX]: W_URING1's copies live until completion */
static const char *uring_setup = "";

static int uring_init(struct io_uring *r, unsigned entries, const int *fds, int n) {
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    p.flags |= IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 2;
    int rc = io_uring_queue_init_params(entries, r, &p);
    uring_setup = "SINGLE_ISSUER|DEFER_TASKRUN, registered files";
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(entries, r, &p);
        uring_setup = "plain, registered files";
    }
    if (rc < 0) return rc;
    rc = io_uring_register_files(r, fds, (unsigned)n);
    if (rc < 0) io_uring_queue_exit(r);
    return rc;
}

static void write_round_uring(enum wmode m) {
    for (int base = 0; base < cfg.conns; base += wbatch) {
        int n = cfg.conns - base < wbatch ? cfg.conns - base : wbatch;
        for (int s = base; s < base + n; s++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&wring);
            struct iovec *v = iov_of(s);
            if (m == W_URING8) {
                io_uring_prep_writev(sqe, s, v, (unsigned)(2 * cfg.frames), 0);
            } else {
                uint8_t *b = uring_bufs + (size_t)s * TURN_MAX;
                size_t len = copy_turn(b, s);
                io_uring_prep_send(sqe, s, b, len, MSG_NOSIGNAL);
            }
            sqe->flags |= IOSQE_FIXED_FILE;
            sqe->user_data = (uint64_t)(unsigned)s;
        }
        int rc = io_uring_submit_and_wait(&wring, (unsigned)n);
        if (rc < 0) {
            errno = -rc;
            die("io_uring_submit_and_wait");
        }
        int got = 0;
        while (got < n) {
            struct io_uring_cqe *cqe;
            rc = io_uring_wait_cqe(&wring, &cqe);
            if (rc < 0) {
                errno = -rc;
                die("io_uring_wait_cqe");
            }
            int s = (int)cqe->user_data;
            if (cqe->res != (int)turn_len[s]) {
                if (cqe->res < 0 && cqe->res != -EAGAIN) {
                    errno = -cqe->res;
                    die("io_uring write");
                }
                size_t done = cqe->res < 0 ? 0 : (size_t)cqe->res;
                if (m == W_URING8) {
                    finish_write(snd_fd[s], iov_of(s), 2 * cfg.frames, done);
                } else {
                    struct iovec one = {uring_bufs + (size_t)s * TURN_MAX, turn_len[s]};
                    finish_write(snd_fd[s], &one, 1, done);
                }
            }
            io_uring_cqe_seen(&wring, cqe);
            got++;
        }
    }
}
#endif

static void wait_drained(uint64_t target) {
    if (atomic_load(&drained) >= target) return;
    pthread_mutex_lock(&mu);
    atomic_store(&writer_waiting, 1);
    while (atomic_load(&drained) < target) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    atomic_store(&writer_waiting, 0);
    pthread_mutex_unlock(&mu);
}

/* ---- the reader ----------------------------------------------------------- */

typedef struct reader {
    enum rmode mode;
    int epfd;
    uint64_t total;     /* bytes to drain in this run */
    uint64_t measure_from; /* start the CPU clock once this much is drained */
    double cpu0, cpu1, sys0, sys1;
    uint64_t reads;     /* read calls or recv SQEs in the measured part */
    uint64_t wakeups;   /* epoll_wait calls returning work in the measured part */
} reader_t;

static void *reader_main(void *arg) {
    reader_t *r = arg;
    pin(cfg.cpu_r);
    static uint8_t buf[65536];
    struct epoll_event *ev = calloc((size_t)cfg.conns, sizeof *ev);
#ifdef TS_HAVE_LIBURING
    struct io_uring ring;
    unsigned entries = 1;
    while (entries < (unsigned)cfg.conns && entries < 4096) entries <<= 1;
    uint8_t *rbufs = NULL;
    if (r->mode == R_URING) {
        int rc = uring_init(&ring, entries, rcv_fd, cfg.conns);
        if (rc < 0) {
            errno = -rc;
            die("io_uring setup (reader)");
        }
        rbufs = malloc((size_t)entries * 4096);
    }
#endif
    uint64_t got = 0;
    int measuring = 0;
    r->cpu0 = r->sys0 = -1;
    while (got < r->total) {
        if (!measuring && got >= r->measure_from) {
            measuring = 1;
            r->cpu0 = cpu_of(RUSAGE_THREAD);
            r->sys0 = sys_of(RUSAGE_THREAD);
        }
        int n = epoll_wait(r->epfd, ev, cfg.conns, 100);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        if (n == 0) continue;
        uint64_t batch = 0;
        if (r->mode == R_READ) {
            for (int i = 0; i < n; i++) {
                ssize_t k = read(rcv_fd[ev[i].data.u32], buf, sizeof buf);
                if (k > 0) batch += (uint64_t)k;
                else if (k == 0 || errno != EAGAIN) die("read");
            }
        }
#ifdef TS_HAVE_LIBURING
        else {
            /* every ready socket's recv in one submit: one system call per
             * wake-up instead of one per socket */
            for (int base = 0; base < n; base += (int)entries) {
                int k = n - base < (int)entries ? n - base : (int)entries;
                for (int i = 0; i < k; i++) {
                    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                    io_uring_prep_recv(sqe, (int)ev[base + i].data.u32,
                                       rbufs + (size_t)i * 4096, 4096, 0);
                    sqe->flags |= IOSQE_FIXED_FILE;
                }
                int rc = io_uring_submit_and_wait(&ring, (unsigned)k);
                if (rc < 0) {
                    errno = -rc;
                    die("io_uring_submit_and_wait (reader)");
                }
                for (int i = 0; i < k; i++) {
                    struct io_uring_cqe *cqe;
                    if ((rc = io_uring_wait_cqe(&ring, &cqe)) < 0) {
                        errno = -rc;
                        die("io_uring_wait_cqe (reader)");
                    }
                    if (cqe->res > 0) batch += (uint64_t)cqe->res;
                    else if (cqe->res != -EAGAIN) {
                        errno = cqe->res ? -cqe->res : EPIPE;
                        die("io_uring recv");
                    }
                    io_uring_cqe_seen(&ring, cqe);
                }
            }
        }
#endif
        got += batch;
        if (measuring) {
            r->reads += (uint64_t)n;
            r->wakeups++;
        }
        atomic_fetch_add(&drained, batch);
        if (atomic_load(&writer_waiting)) {
            pthread_mutex_lock(&mu);
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
        }
        /* A busy peer (tsbench's saturated loop) finds many sockets ready per
         * epoll_wait and is rarely asleep in it when data arrives, so the
         * writer seldom pays for waking it. Napping outside epoll_wait
         * models that; --reader-nap 0 makes every write a wake-up instead. */
        if (cfg.nap_us > 0 && got < r->total) {
            struct timespec ts = {0, (long)cfg.nap_us * 1000};
            nanosleep(&ts, NULL);
        }
    }
    r->cpu1 = cpu_of(RUSAGE_THREAD);
    r->sys1 = sys_of(RUSAGE_THREAD);
#ifdef TS_HAVE_LIBURING
    if (r->mode == R_URING) {
        io_uring_queue_exit(&ring);
        free(rbufs);
    }
#endif
    free(ev);
    return NULL;
}

/* ---- one run -------------------------------------------------------------- */

typedef struct result {
    double w_us, w_sys_us; /* writer CPU per socket-turn (all, of which sys) */
    double r_us;           /* reader CPU per socket-turn */
    double other_us;       /* rest of the process per socket-turn (io_uring workers) */
    double ksoft_us;       /* ksoftirqd threads (all cores) per socket-turn */
    double reads_per_wake; /* sockets read per epoll wake-up */
    double wall_s;
} result_t;

static result_t run_once(enum wmode wm, enum rmode rm, int epfd) {
    result_t res = {0};
#ifdef TS_HAVE_LIBURING
    if (wmodes[wm].uring) {
        wbatch = cfg.ubatch ? cfg.ubatch : cfg.conns < 4096 ? cfg.conns : 4096;
        wring_entries = 1;
        while (wring_entries < (unsigned)wbatch) wring_entries <<= 1;
        int rc = uring_init(&wring, wring_entries, snd_fd, cfg.conns);
        if (rc < 0) {
            errno = -rc;
            die("io_uring setup (writer)");
        }
        if (!uring_bufs) uring_bufs = malloc((size_t)cfg.conns * TURN_MAX);
    }
#endif
    atomic_store(&drained, 0);
    reader_t rd = {.mode = rm, .epfd = epfd};
    rd.total = (uint64_t)(cfg.warm + cfg.rounds) * round_bytes;
    rd.measure_from = (uint64_t)cfg.warm * round_bytes;
    pthread_t th;
    if (pthread_create(&th, NULL, reader_main, &rd) != 0) die("pthread_create");

    double w0 = 0, ws0 = 0, p0 = 0, k0 = 0, t0 = 0;
    for (int r = 0; r < cfg.warm + cfg.rounds; r++) {
        if (r == cfg.warm) {
            wait_drained((uint64_t)r * round_bytes); /* warm-up fully drained */
            w0 = cpu_of(RUSAGE_THREAD);
            ws0 = sys_of(RUSAGE_THREAD);
            p0 = cpu_of(RUSAGE_SELF);
            k0 = ksoftirqd_cpu();
            t0 = now_s();
        }
        if (r > cfg.ahead) wait_drained((uint64_t)(r - cfg.ahead) * round_bytes);
#ifdef TS_HAVE_LIBURING
        if (wmodes[wm].uring) {
            write_round_uring(wm);
            continue;
        }
#endif
        write_round_plain(wm);
    }
    double w1 = cpu_of(RUSAGE_THREAD), ws1 = sys_of(RUSAGE_THREAD);
    pthread_join(th, NULL);
    double p1 = cpu_of(RUSAGE_SELF), k1 = ksoftirqd_cpu();
    res.wall_s = now_s() - t0;
#ifdef TS_HAVE_LIBURING
    if (wmodes[wm].uring) io_uring_queue_exit(&wring);
#endif
    double turns = (double)cfg.conns * cfg.rounds;
    res.w_us = (w1 - w0) / turns * 1e6;
    res.w_sys_us = (ws1 - ws0) / turns * 1e6;
    res.r_us = (rd.cpu1 - rd.cpu0) / turns * 1e6;
    /* the reader's clock starts when it has drained the warm-up, close to w0 */
    res.other_us = ((p1 - p0) - (w1 - w0) - (rd.cpu1 - rd.cpu0)) / turns * 1e6;
    res.ksoft_us = (k1 - k0) / turns * 1e6;
    res.reads_per_wake = rd.wakeups ? (double)rd.reads / (double)rd.wakeups : 0;
    return res;
}

/* ---- main ----------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void loadavg(char *out, size_t cap) {
    FILE *f = fopen("/proc/loadavg", "r");
    out[0] = 0;
    if (f) {
        if (fgets(out, (int)cap, f)) out[strcspn(out, "\n")] = 0;
        fclose(f);
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: syscost [--conns N] [--rounds M] [--reps R] [--warm W] [--ahead A] [--reader-nap US]\n"
            "               [--frames F] [--uring-batch B]\n"
            "               [--modes m1,m2,...] [--read-modes read,uring-recv] [--no-pin]\n"
            "modes:");
    for (int i = 0; i < W_COUNT; i++) fprintf(stderr, " %s", wmodes[i].name);
    fprintf(stderr, "\n(default: every mode this build has, with the `read` reader; then\n"
                    " writev8 with every reader mode)\n");
    exit(2);
}

static int int_arg(const char *flag, const char *v, int lo, int hi) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi) {
        fprintf(stderr, "syscost: %s=\"%s\" is not a number in %d..%d\n", flag, v ? v : "",
                lo, hi);
        exit(2);
    }
    return (int)x;
}

int main(int argc, char **argv) {
    int want_w[W_COUNT] = {0}, want_r[R_COUNT] = {0}, any_w = 0, any_r = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--conns")) cfg.conns = int_arg(a, v, 1, 9900), i++;
        else if (!strcmp(a, "--rounds")) cfg.rounds = int_arg(a, v, 1, 1000000), i++;
        else if (!strcmp(a, "--reps")) cfg.reps = int_arg(a, v, 1, 1000), i++;
        else if (!strcmp(a, "--warm")) cfg.warm = int_arg(a, v, 0, 100000), i++;
        else if (!strcmp(a, "--ahead")) cfg.ahead = int_arg(a, v, 0, 16), i++;
        else if (!strcmp(a, "--uring-batch")) cfg.ubatch = int_arg(a, v, 1, 4096), i++;
        else if (!strcmp(a, "--frames")) cfg.frames = int_arg(a, v, 1, MAX_FRAMES), i++;
        else if (!strcmp(a, "--reader-nap")) cfg.nap_us = int_arg(a, v, 0, 1000000), i++;
        else if (!strcmp(a, "--no-pin")) cfg.cpu_w = cfg.cpu_r = -1;
        else if (!strcmp(a, "--modes") || !strcmp(a, "--read-modes")) {
            if (!v) usage();
            char *list = strdup(v), *save = NULL;
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int found = 0;
                if (a[2] == 'm') {
                    for (int k = 0; k < W_COUNT; k++)
                        if (!strcmp(t, wmodes[k].name)) want_w[k] = found = any_w = 1;
                } else {
                    for (int k = 0; k < R_COUNT; k++)
                        if (!strcmp(t, rmode_names[k])) want_r[k] = found = any_r = 1;
                }
                if (!found) {
                    fprintf(stderr, "syscost: unknown mode \"%s\"\n", t);
                    usage();
                }
            }
            free(list);
            i++;
        } else usage();
    }
#ifndef TS_HAVE_LIBURING
    for (int k = 0; k < W_COUNT; k++)
        if (wmodes[k].uring && want_w[k]) {
            fprintf(stderr, "syscost: %s needs liburing (apt-get install liburing-dev, then "
                            "reconfigure)\n", wmodes[k].name);
            return 2;
        }
    if (want_r[R_URING]) {
        fprintf(stderr, "syscost: uring-recv needs liburing\n");
        return 2;
    }
#endif
    if (!any_w) {
        for (int k = 0; k < W_COUNT; k++) want_w[k] = 1;
#ifndef TS_HAVE_LIBURING
        want_w[W_URING8] = want_w[W_URING1] = 0;
#endif
    }
    /* the list of (writer, reader) pairs, run in turn `reps` times */
    struct pair { enum wmode w; enum rmode r; } pairs[W_COUNT + R_COUNT];
    int np = 0;
    for (int k = 0; k < W_COUNT; k++)
        if (want_w[k]) pairs[np++] = (struct pair){(enum wmode)k, R_READ};
    if (!any_r) {
        want_r[R_READ] = 1;
#ifdef TS_HAVE_LIBURING
        if (!any_w) want_r[R_URING] = 1;
#endif
    }
    for (int k = 1; k < R_COUNT; k++)
        if (want_r[k]) pairs[np++] = (struct pair){W_WRITEV8, (enum rmode)k};

    pin(cfg.cpu_w);
    find_ksoftirqd();
    setup_conns();
    int epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    for (int i = 0; i < cfg.conns; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, rcv_fd[i], &e) < 0) die("epoll_ctl");
    }
    char la[128];
    loadavg(la, sizeof la);
    printf("# syscost: %d loopback pairs, %d rounds (+%d warm-up) per run, %d runs per mode,\n"
           "# %zu bytes per round (%.1f per socket-turn, %d frames), writer ahead <= %d rounds,\n"
           "# writer on cpu %d, reader on cpu %d, reader naps %d us after each drain;\n"
           "# load average before: %s\n",
           cfg.conns, cfg.rounds, cfg.warm, cfg.reps, round_bytes,
           (double)round_bytes / cfg.conns, cfg.frames, cfg.ahead, cfg.cpu_w, cfg.cpu_r, cfg.nap_us, la);
#ifdef TS_HAVE_LIBURING
    printf("# io_uring: liburing %s\n", TS_LIBURING_VERSION);
#else
    printf("# io_uring: not built (no liburing)\n");
#endif
    printf("# getppid(), a system call that does nothing: %.0f ns\n", null_syscall_ns());
    printf("# %-14s %-10s %3s %9s %9s %9s %9s %9s %9s %7s\n", "mode", "reader", "rep", "w_us/turn",
           "w_sys_us", "r_us/turn", "other_us", "ksoft_us", "rd/wake", "wall_s");

    int reps = cfg.reps;
    double *w = calloc((size_t)(np * reps), sizeof *w), *ws = calloc((size_t)(np * reps), sizeof *ws);
    double *rr = calloc((size_t)(np * reps), sizeof *rr), *ot = calloc((size_t)(np * reps), sizeof *ot);
    double *ratio = calloc((size_t)(np * reps), sizeof *ratio);
    double *rpw = calloc((size_t)(np * reps), sizeof *rpw);
    double *ks = calloc((size_t)(np * reps), sizeof *ks);
    for (int rep = 0; rep < reps; rep++) {
        for (int p = 0; p < np; p++) {
            result_t res = run_once(pairs[p].w, pairs[p].r, epfd);
            int k = p * reps + rep;
            w[k] = res.w_us;
            ws[k] = res.w_sys_us;
            rr[k] = res.r_us;
            ot[k] = res.other_us;
            rpw[k] = res.reads_per_wake;
            ks[k] = res.ksoft_us;
            printf("  %-14s %-10s %3d %9.3f %9.3f %9.3f %9.3f %9.3f %9.1f %7.2f\n",
                   wmodes[pairs[p].w].name, rmode_names[pairs[p].r], rep, res.w_us, res.w_sys_us,
                   res.r_us, res.other_us, res.ksoft_us, res.reads_per_wake, res.wall_s);
            fflush(stdout);
        }
        /* ratio to the first pair (writev8 with read) of the same repetition */
        for (int p = 0; p < np; p++) ratio[p * reps + rep] = w[p * reps + rep] / w[rep];
    }
    loadavg(la, sizeof la);
    printf("# load average after: %s; short writes finished by poll: %llu\n\n", la,
           (unsigned long long)stalls);
#ifdef TS_HAVE_LIBURING
    printf("io_uring rings: %s\n\n", uring_setup);
#endif
    printf("| writer | reader | calls per socket-turn | writer CPU per socket-turn, µs "
           "(median [min-max]) | of which sys | per byte, ns | vs %s | reader CPU per "
           "socket-turn, µs | other threads, µs | ksoftirqd, µs | sockets per wake-up |\n",
           wmodes[pairs[0].w].name);
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int p = 0; p < np; p++) {
        double *x = w + p * reps;
        double mn = x[0], mx = x[0];
        for (int i = 1; i < reps; i++) {
            if (x[i] < mn) mn = x[i];
            if (x[i] > mx) mx = x[i];
        }
        double mw = median(x, reps), msys = median(ws + p * reps, reps);
        char calls[32];
        if (wmodes[pairs[p].w].uring)
            snprintf(calls, sizeof calls, "1/%d",
                     cfg.ubatch ? cfg.ubatch : cfg.conns < 4096 ? cfg.conns : 4096);
        else
            snprintf(calls, sizeof calls, "%d",
                     wmodes[pairs[p].w].calls_per_turn > 1 ? cfg.frames : 1);
        printf("| %s | %s | %s | %.2f [%.2f-%.2f] | %.0f %% | %.2f | %.2f | %.2f | %.2f | %.2f "
               "| %.0f |\n",
               wmodes[pairs[p].w].name, rmode_names[pairs[p].r], calls, mw, mn, mx,
               100 * msys / mw, mw * 1e3 / ((double)round_bytes / cfg.conns),
               median(ratio + p * reps, reps), median(rr + p * reps, reps),
               median(ot + p * reps, reps), median(ks + p * reps, reps),
               median(rpw + p * reps, reps));
    }
    return 0;
}
