/* redis_server.h - a redis-server of the test's own, for the suites that
 * talk to Redis (test_rconn.c, test_store_redis.c, test_rcluster.c):
 * started on a free loopback port with a config file in a temp folder
 * (Debian's redis-server; its absence is a failure, not a skip), stopped by
 * its pid. A test that fails (cmocka jumps out of it) leaves it to the
 * teardown: redis_stop_all. redis_tls_files makes a CA, a server and a
 * client certificate (and a second, unrelated CA) with the openssl CLI;
 * redis_tls_conf gives the lines that add a TLS port. */
#ifndef TS_TEST_REDIS_SERVER_H
#define TS_TEST_REDIS_SERVER_H
#include <netinet/in.h>
#include <stdarg.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>


typedef struct {
    char dir[64];
    uint16_t port;
    uint16_t tls_port; /* set by redis_tls_conf */
    pid_t pid;
} redis_t;

#define REDIS_RUNNING_MAX 8

/* Servers still running when a test fails (cmocka jumps out of it): the
 * teardown stops them. */
static redis_t *running[REDIS_RUNNING_MAX];

static __attribute__((unused)) uint16_t free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static int port_open(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

typedef enum { REDIS_AS_SERVER, REDIS_AS_SENTINEL } redis_role_t;

/* Starts redis-server with `extra` config lines (on r->port if set), as a
 * server or as a Sentinel (`extra` then has its `sentinel monitor` lines). */
static void redis_start_as(redis_t *r, const char *extra, redis_role_t role) {
    if (!r->dir[0]) {
        snprintf(r->dir, sizeof r->dir, "/tmp/ts_rconn_XXXXXX");
        assert_non_null(mkdtemp(r->dir));
    }
    if (!r->port) r->port = free_port();
    char conf[512];
    snprintf(conf, sizeof conf, "%s/redis.conf", r->dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "port %u\nbind 127.0.0.1\ndir %s\nsave \"\"\nappendonly no\ndaemonize no\n"
               "logfile %s/redis.log\n%s\n",
            r->port, r->dir, r->dir, extra ? extra : "");
    fclose(f);
    if (access("/usr/bin/redis-server", X_OK) != 0)
        fail_msg("redis-server not found: install the Debian package redis-server "
                 "(scripts/deps.sh does)");
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        if (role == REDIS_AS_SENTINEL)
            execl("/usr/bin/redis-server", "redis-server", conf, "--sentinel", (char *)NULL);
        else
            execl("/usr/bin/redis-server", "redis-server", conf, (char *)NULL);
        _exit(127);
    }
    for (size_t i = 0; i < REDIS_RUNNING_MAX; i++)
        if (!running[i] || running[i] == r) {
            running[i] = r;
            break;
        }
    for (int i = 0; i < 200 && !port_open(r->port); i++) usleep(10000);
    if (!port_open(r->port)) fail_msg("redis-server did not listen on %u", r->port);
}

static __attribute__((unused)) void redis_start(redis_t *r, const char *extra) {
    redis_start_as(r, extra, REDIS_AS_SERVER);
}

/* In dir: ca.pem (the CA), server.pem/.key (signed by it, for IP 127.0.0.1
 * and localhost), client.pem/.key (signed by it), other-ca.pem (a CA that
 * signed nothing here). Made with the openssl CLI; a failure fails the test. */
static __attribute__((unused)) void redis_tls_files(const char *dir) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';"
             "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=ts-test-ca;"
             "openssl req -x509 $K -keyout other-ca.key -out other-ca.pem -days 2 "
             "  -subj /CN=ts-other-ca;"
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext;"
             "openssl req $K -keyout server.key -out server.csr -subj /CN=localhost;"
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "  -out server.pem -days 2 -extfile san.ext;"
             "openssl req $K -keyout client.key -out client.csr -subj /CN=ts-client;"
             "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "  -out client.pem -days 2",
             dir);
    char full[2200];
    snprintf(full, sizeof full, "( %s ) > '%s/openssl.log' 2>&1", cmd, dir);
    if (system(full) != 0)
        fail_msg("openssl CLI could not make the test certificates (see %s/openssl.log)", dir);
}

/* Config lines that add a TLS port (r->tls_port, picked now) with the
 * files of redis_tls_files(certdir); clients: "no", "yes" or "optional". */
static __attribute__((unused)) const char *redis_tls_conf(redis_t *r, const char *certdir,
                                                          const char *clients, char *out,
                                                          size_t cap) {
    if (!r->tls_port) r->tls_port = free_port();
    snprintf(out, cap,
             "tls-port %u\ntls-cert-file %s/server.pem\ntls-key-file %s/server.key\n"
             "tls-ca-cert-file %s/ca.pem\ntls-auth-clients %s\n",
             r->tls_port, certdir, certdir, certdir, clients);
    return out;
}

static void redis_kill(redis_t *r, int sig) {
    if (r->pid <= 0) return;
    kill(r->pid, sig);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

static void redis_cleanup(redis_t *r) {
    redis_kill(r, SIGKILL);
    for (size_t i = 0; i < REDIS_RUNNING_MAX; i++)
        if (running[i] == r) running[i] = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", r->dir);
}


static int redis_stop_all(void **state) {
    (void)state;
    for (size_t i = 0; i < REDIS_RUNNING_MAX; i++) {
        if (running[i]) redis_cleanup(running[i]);
        running[i] = NULL;
    }
    return 0;
}

/* Runs a shell command (redis-cli, for the tests' own looks at Redis); the
 * first cap-1 bytes of its output in out (may be NULL). Returns pclose's
 * status. */
static __attribute__((unused, format(printf, 3, 4))) int sh(char *out, size_t cap,
                                                            const char *fmt, ...) {
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = out && cap ? fread(out, 1, cap - 1, p) : 0;
    if (out && cap) out[n] = '\0';
    char sink[256];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    return pclose(p);
}

#endif
