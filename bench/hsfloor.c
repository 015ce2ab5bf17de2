/* hsfloor.c - the kernel's floor under one handshake (issue #13): a
 * responder with no protocol work that answers `tsbench connect` with the
 * packets tabsyncd sends, through the system calls tabsyncd makes per
 * handshake, so that its CPU per handshake is what the TCP connection
 * alone costs the server on this machine. It accepts on a TCP_DEFER_ACCEPT
 * listener (so the upgrade request is already in), reads it, writes the
 * canned `101` with the Engine.IO `open`, registers the socket with epoll,
 * reads the Socket.IO CONNECT, writes the CONNECT reply (and, for
 * `/session`, a `welcome` that echoes the identity tsbench's auth object
 * carries: nothing is checked), then reads the client's end and closes.
 * It relies on tsbench's fixed Sec-WebSocket-Key and on each of its
 * messages arriving whole, which holds for tsbench on loopback; anything
 * else closes the connection, and tsbench reports it. It measures the
 * kernel, not tabsyncd: nothing here is server code.
 *
 *   hsfloor [--port N]   prints "hsfloor listening on http://127.0.0.1:PORT/"
 *                        (the line tabsyncd prints) and serves until SIGTERM */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* What tabsyncd answers bench/conn.c's fixed WS_KEY with, and an
 * Engine.IO open of the same length as tabsyncd's. */
static const char k_upgrade[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: 2Byi61n7JD3Qr97ccaqskN+jAuw=\r\n\r\n";
static const char k_open[] =
    "0{\"sid\":\"AAAAAAAAAAAAAAAAAAAA\",\"upgrades\":[],\"pingInterval\":25000,"
    "\"pingTimeout\":20000,\"maxPayload\":1000000}";

enum conn_state { C_OPEN, C_READY };

static volatile sig_atomic_t g_stop;
static void on_term(int sig) {
    (void)sig;
    g_stop = 1;
}

/* An unmasked text frame header for a payload of n bytes (n < 65536). */
static size_t frame_head(unsigned char *h, size_t n) {
    h[0] = 0x81;
    if (n < 126) {
        h[1] = (unsigned char)n;
        return 2;
    }
    h[1] = 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    return 4;
}

static size_t put_frame(char *out, const char *payload, size_t n) {
    size_t h = frame_head((unsigned char *)out, n);
    memcpy(out + h, payload, n);
    return h + n;
}

/* The payload of one masked client frame that arrived whole, unmasked in
 * place; its length, or 0 if the bytes are not exactly one such frame. */
static size_t client_frame(unsigned char *p, size_t len, unsigned char **payload) {
    if (len < 6 || (p[1] & 0x80) == 0) return 0;
    size_t n = p[1] & 0x7f, at = 2;
    if (n == 126) {
        if (len < 8) return 0;
        n = (size_t)p[2] << 8 | p[3];
        at = 4;
    } else if (n == 127) {
        return 0;
    }
    if (len != at + 4 + n) return 0;
    unsigned char *mask = p + at;
    *payload = p + at + 4;
    for (size_t i = 0; i < n; i++) (*payload)[i] ^= mask[i & 3];
    return n;
}

/* Copies the text after `key` up to `stop` into out; 0 if absent. */
static int grab(const char *s, const char *key, char stop, char *out, size_t cap) {
    const char *p = strstr(s, key);
    if (!p) return 0;
    p += strlen(key);
    size_t n = 0;
    while (p[n] && p[n] != stop && n + 1 < cap) n++;
    memcpy(out, p, n);
    out[n] = 0;
    return 1;
}

/* The CONNECT reply, and for /session a welcome, as frames; 0 if the
 * CONNECT is not one tsbench sends. */
static size_t connect_reply(const char *msg, char *out, size_t cap) {
    char body[512];
    size_t w = 0;
    if (strcmp(msg, "40") == 0) {
        static const char r[] = "40{\"sid\":\"BBBBBBBBBBBBBBBBBBBB\"}";
        return put_frame(out, r, sizeof r - 1);
    }
    if (strncmp(msg, "40/session,", 11) != 0) return 0;
    char user[24], dev[24], tab[24];
    if (!grab(msg, "\"fingerprint\":\"fp-", '-', user, sizeof user) ||
        !grab(msg, "\"device\":{\"id\":\"", '"', dev, sizeof dev) ||
        !grab(msg, "\"tab\":{\"id\":\"", '"', tab, sizeof tab))
        return 0;
    static const char r[] = "40/session,{\"sid\":\"BBBBBBBBBBBBBBBBBBBB\"}";
    w = put_frame(out, r, sizeof r - 1);
    int n = snprintf(body, sizeof body,
                     "42/session,[\"welcome\",{\"user\":\"%s\",\"session\":\"s-%s\",\"device\":\"%s\","
                     "\"tab\":\"%s\",\"proto\":4,\"exp\":4102444800,\"node\":\"hsfloor\","
                     "\"now\":1796428800000}]",
                     user, user, dev, tab);
    if (n < 0 || (size_t)n >= sizeof body || w + 4 + (size_t)n > cap) return 0;
    return w + put_frame(out + w, body, (size_t)n);
}

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: hsfloor [--port N]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, defer = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* as tabsyncd: copied into accepted sockets, and accepted once the
     * client's first bytes are in (its --defer-accept default) */
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        perror("hsfloor: listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("hsfloor listening on http://127.0.0.1:%d/\n", ntohs(a.sin_port));
    fflush(stdout);

    char out[1024];
    size_t open_len = strlen(k_upgrade);
    memcpy(out, k_upgrade, open_len);
    open_len += put_frame(out + open_len, k_open, sizeof k_open - 1);
    static char upgrade_reply[512];
    memcpy(upgrade_reply, out, open_len);

    unsigned char buf[4096];
    struct epoll_event evs[256];
    unsigned long served = 0, failed = 0;
    while (!g_stop) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("hsfloor: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    /* the upgrade request is in (TCP_DEFER_ACCEPT) */
                    ssize_t r = recv(c, buf, sizeof buf - 1, 0);
                    if (r <= 0 || !memmem(buf, (size_t)r, "\r\n\r\n", 4) ||
                        send(c, upgrade_reply, open_len, MSG_NOSIGNAL) != (ssize_t)open_len) {
                        failed++;
                        close(c);
                        continue;
                    }
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
            if (r < 0 && errno == EAGAIN) continue;
            unsigned char *msg;
            size_t m = r > 0 ? client_frame(buf, (size_t)r, &msg) : 0;
            if (m == 0) { /* the client's end (a reset or a close) */
                close(fd); /* leaves the epoll set with it */
                continue;
            }
            msg[m] = 0;
            size_t w = connect_reply((const char *)msg, out, sizeof out);
            if (w == 0 || send(fd, out, w, MSG_NOSIGNAL) != (ssize_t)w) {
                failed++;
                close(fd); /* leaves the epoll set with it */
                continue;
            }
            served++;
        }
    }
    fprintf(stderr, "hsfloor: %lu handshakes answered, %lu failed\n", served, failed);
    return 0;
}
