/* rconn.c - one Redis connection on libuv (rconn_int.h). Commands live on
 * three lists: `waiting` (issued, not written), `inflight` (written, in
 * reply order) and `done` (to be called back without a reply, from a
 * zero-delay timer, so no callback runs inside the call that caused it);
 * with ?replicas=N a fourth, `held`: the commands of a turn that wrote,
 * answered, whose replies wait for the WAIT sent after them.
 * Every attempt gets its own TCP handle (a closed libuv handle cannot be
 * reopened; the old one finishes closing on its own). TLS sits between the
 * socket and the reader as an SSL object over two memory BIOs: bytes read
 * go in, what OpenSSL wants sent comes out and is written by us, so the
 * event loop, timeouts and pipelining are the same for both. */
#include "store/rconn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "core/ts_err.h"
#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"

#define READ_CHUNK 65536
#define FEED_SLICE 2048 /* bytes given to hiredis's reader at a time (feed) */

/* ST_DISCOVER: asking a Sentinel where the primary is (redis+sentinel://).
 * ST_TLS: TCP connected, the TLS handshake under way (rediss:// only). */
typedef enum { ST_DOWN, ST_DISCOVER, ST_CONNECTING, ST_TLS, ST_HANDSHAKE, ST_UP, ST_CLOSED } state_t;

typedef struct cmd {
    ts_list_t link;
    ts_rconn_reply_cb cb;
    void *ud;
    char *wire; /* the formatted command (ts_rconn__format's: free) */
    size_t len;
    uint64_t sent_ms;
    int status;     /* for the done list */
    uint8_t handshake; /* AUTH, SELECT, resubscription: an error fails the attempt */
    uint8_t write;     /* TS_RCONN_WRITE */
    uint8_t wait;      /* our WAIT (no callback, not counted in queued) */
    uint8_t held;      /* sent before a WAIT: its reply waits for WAIT's */
    uint8_t role;      /* the handshake's ROLE (Sentinel): the server must be a primary */
    uint8_t hello;     /* the handshake's HELLO: the server's version (o.min_major) */
    redisReply *reply; /* on `held`: the reply, kept */
    char *sunsub;      /* SUNSUBSCRIBE's channel: its reply looks like the server's notice */
} cmd_t;

typedef struct sub {
    ts_rconn_sub_kind_t kind;
    char *channel;
} sub_t;

/* One TCP attempt. Outlives the connection's interest in it while closing. */
typedef struct link {
    uv_tcp_t tcp;
    uv_connect_t creq;
    ts_rconn_t *c; /* NULL once abandoned */
    SSL *ssl;      /* rediss://: over two memory BIOs (freed with the link) */
} link_t;

typedef struct wreq {
    uv_write_t req;
    link_t *l;
    char *buf;
} wreq_t;

struct ts_rconn {
    uv_loop_t *loop;
    ts_rconn_opts_t o;
    state_t st;
    link_t *l;            /* the current attempt, or NULL */
    uv_getaddrinfo_t gai;
    int resolving;
    uv_timer_t timer;     /* backoff, connect timeout, command timeouts */
    uv_timer_t done_timer;
    uv_prepare_t flush;
    int handles;          /* open uv handles of this struct (close waits for 0) */
    ts_list_t waiting, inflight, done;
    ts_list_t held;       /* answered, waiting for the WAIT after them */
    int short_logged;     /* a short WAIT was logged; again after a good one */
    size_t queued;        /* waiting + inflight */
    size_t handshake_left;
    redisReader *rd;
    sub_t *subs;
    size_t nsubs, subs_cap;
    uint32_t backoff_ms;
    uint64_t attempt_started;
    ts_rconn_state_cb on_state;
    ts_rconn_push_cb on_push;
    void *ud;
    void (*on_closed)(void *);
    void *closed_ud;
    ts_rconn_stats_t stats;
    SSL_CTX *tls;         /* rediss://: shared by every attempt */
    char tls_err[200];    /* the context could not be made: every attempt fails so */
    char reason[240];
    ts_rconn_t *sentinel; /* ST_DISCOVER: the connection to the Sentinel asked */
    size_t sentinel_at;   /* which one (o.sentinels), tried in order from 0 */
};

static const char *const sub_verbs[] = {"SUBSCRIBE", "SSUBSCRIBE", "PSUBSCRIBE"};
static const char *const unsub_verbs[] = {"UNSUBSCRIBE", "SUNSUBSCRIBE", "PUNSUBSCRIBE"};

/* ---- URL ---- */

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Copies p[0..n) into out (cap bytes with NUL), decoding %XX (not %00). */
static int copy_decoded(const char *p, size_t n, char *out, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1; /* needs two more characters */
            int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (j + 1 >= cap) return -1;
        out[j++] = ch;
    }
    out[j] = '\0';
    return 0;
}

/* The query of a Redis URL: opt=value pairs joined by '&'. */
static int parse_query(const char *q, ts_rconn_opts_t *o, char *err, size_t errlen) {
    while (*q) {
        const char *amp = q + strcspn(q, "&");
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        if (!eq) {
            snprintf(err, errlen, "option '%.*s' of the Redis URL needs a value (opt=value)",
                     (int)(amp - q), q);
            return TS_EINVAL;
        }
        size_t kl = (size_t)(eq - q);
        char val[TS_RCONN_PATH_MAX + 1];
        if (copy_decoded(eq + 1, (size_t)(amp - eq - 1), val, sizeof val) != 0) {
            snprintf(err, errlen, "bad value of option '%.*s' in the Redis URL", (int)kl, q);
            return TS_EINVAL;
        }
#define KEY_IS(k) (kl == strlen(k) && memcmp(q, k, kl) == 0)
        int flag = strcmp(val, "1") == 0 ? 1 : strcmp(val, "0") == 0 ? 0 : -1;
        if (KEY_IS("cacert") || KEY_IS("cert") || KEY_IS("key")) {
            if (!o->tls || !val[0]) {
                snprintf(err, errlen, "option '%.*s' of the Redis URL needs rediss:// and a path",
                         (int)kl, q);
                return TS_EINVAL;
            }
            char *dst = KEY_IS("cacert") ? o->tls_ca : KEY_IS("cert") ? o->tls_cert : o->tls_key;
            memcpy(dst, val, strlen(val) + 1);
        } else if (KEY_IS("insecure")) {
            if (!o->tls || flag < 0) {
                snprintf(err, errlen, "option insecure of the Redis URL is 0 or 1, with rediss://");
                return TS_EINVAL;
            }
            o->tls_insecure = flag;
        } else if (KEY_IS("cluster")) {
            if (flag < 0 && strcmp(val, "auto") != 0) {
                snprintf(err, errlen, "option cluster of the Redis URL is 0, 1 or auto");
                return TS_EINVAL;
            }
            o->cluster = flag == 1 ? 1 : flag == 0 ? -1 : 0;
        } else if (KEY_IS("replicas") || KEY_IS("replicas_timeout")) {
            int rt = KEY_IS("replicas_timeout");
            unsigned long v = 0;
            const char *d = val;
            for (; *d >= '0' && *d <= '9' && v <= 1000000; d++) v = v * 10 + (unsigned long)(*d - '0');
            if (*d || d == val || (rt ? v < 1 || v > 60000 : v > 64)) {
                snprintf(err, errlen, rt ? "option replicas_timeout of the Redis URL is 1-60000 (ms)"
                                         : "option replicas of the Redis URL is 0-64");
                return TS_EINVAL;
            }
            if (rt) o->replicas_timeout_ms = (uint32_t)v;
            else o->replicas = (uint32_t)v;
        } else if (KEY_IS("sentinel_user") || KEY_IS("sentinel_password")) {
            if (!o->nsentinels) {
                snprintf(err, errlen, "option '%.*s' of the Redis URL needs redis+sentinel://",
                         (int)kl, q);
                return TS_EINVAL;
            }
            char *dst = KEY_IS("sentinel_user") ? o->sentinel_user : o->sentinel_password;
            if (strlen(val) > TS_RCONN_CRED_MAX) {
                snprintf(err, errlen, "option '%.*s' of the Redis URL is too long", (int)kl, q);
                return TS_EINVAL;
            }
            memcpy(dst, val, strlen(val) + 1);
        } else {
            snprintf(err, errlen,
                     "unknown option '%.*s' in the Redis URL (known: cacert, cert, key, insecure, "
                     "cluster, replicas, replicas_timeout, sentinel_user, sentinel_password)",
                     (int)kl, q);
            return TS_EINVAL;
        }
#undef KEY_IS
        q = *amp ? amp + 1 : amp;
    }
    if (!o->tls_cert[0] != !o->tls_key[0]) {
        snprintf(err, errlen, "the Redis URL's cert= and key= go together");
        return TS_EINVAL;
    }
    return 0;
}

/* host[:port] or [v6][:port] in [p, end). */
static int parse_addr(const char *p, const char *end, ts_rconn_addr_t *a, uint16_t defport,
                      char *err, size_t errlen) {
    const char *host = p, *hend, *portp = NULL;
    if (*p == '[') { /* [v6] */
        hend = memchr(p, ']', (size_t)(end - p));
        if (!hend) {
            snprintf(err, errlen, "unclosed [ in the Redis URL's host");
            return TS_EINVAL;
        }
        host = p + 1;
        if (hend + 1 < end && hend[1] == ':') portp = hend + 2;
        else if (hend + 1 != end) {
            snprintf(err, errlen, "unexpected text after the Redis URL's host");
            return TS_EINVAL;
        }
    } else {
        hend = memchr(p, ':', (size_t)(end - p));
        if (hend) portp = hend + 1;
        else hend = end;
    }
    size_t hl = (size_t)(hend - host);
    if (hl == 0 || hl > TS_RCONN_HOST_MAX) {
        snprintf(err, errlen, "the Redis URL needs a host");
        return TS_EINVAL;
    }
    memcpy(a->host, host, hl);
    a->host[hl] = '\0';
    a->port = defport;
    if (portp) {
        unsigned long v = 0;
        const char *q = portp;
        for (; q < end && *q >= '0' && *q <= '9' && v <= 65535; q++) v = v * 10 + (unsigned long)(*q - '0');
        if (q != end || q == portp || v == 0 || v > 65535) {
            snprintf(err, errlen, "bad port in the Redis URL");
            return TS_EINVAL;
        }
        a->port = (uint16_t)v;
    }
    return 0;
}

/* /db in [p, pend): "" and "/" leave it 0. */
static int parse_db(const char *p, const char *pend, ts_rconn_opts_t *o, char *err, size_t errlen) {
    if (p == pend || (*p == '/' && p + 1 == pend)) return 0;
    unsigned long v = 0;
    const char *d = p + 1;
    if (*p == '/')
        for (; d < pend && *d >= '0' && *d <= '9' && v < 1000000; d++) v = v * 10 + (unsigned long)(*d - '0');
    if (*p != '/' || d != pend || d == p + 1) {
        snprintf(err, errlen, *p == '/' ? "bad database number in the Redis URL"
                                        : "unexpected text after the Redis URL's host");
        return TS_EINVAL;
    }
    o->db = (uint32_t)v;
    return 0;
}

int ts_rconn_parse_url(const char *url, ts_rconn_opts_t *o, char *err, size_t errlen) {
    memset(o, 0, sizeof(*o));
    static const struct {
        const char *scheme;
        int tls, sentinel;
    } schemes[] = {{"redis://", 0, 0},
                   {"rediss://", 1, 0},
                   {"redis+sentinel://", 0, 1},
                   {"rediss+sentinel://", 1, 1}};
    const char *p = NULL;
    int sentinel = 0;
    for (size_t i = 0; i < TS_ARRAY_LEN(schemes) && !p; i++) {
        size_t n = strlen(schemes[i].scheme);
        if (strncmp(url, schemes[i].scheme, n) != 0) continue;
        p = url + n;
        o->tls = schemes[i].tls;
        sentinel = schemes[i].sentinel;
    }
    if (!p) {
        snprintf(err, errlen,
                 "a Redis URL starts with redis://, rediss://, redis+sentinel:// or "
                 "rediss+sentinel://");
        return TS_EINVAL;
    }
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@') at = q; /* the last one: a password may hold '@' escaped or not */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (copy_decoded(p, ulen, o->user, sizeof o->user) != 0 ||
            (colon && copy_decoded(colon + 1, (size_t)(at - colon - 1), o->password,
                                   sizeof o->password) != 0)) {
            snprintf(err, errlen, "bad user or password in the Redis URL");
            return TS_EINVAL;
        }
        if (!colon) { /* redis://password@host is the common short form */
            memcpy(o->password, o->user, sizeof o->password);
            o->user[0] = '\0';
        }
        p = at + 1;
    }
    if (strchr(end, '#')) {
        snprintf(err, errlen, "fragments are not supported in the Redis URL");
        return TS_EINVAL;
    }
    const char *q = strchr(end, '?');
    const char *pend = q ? q : end + strlen(end);
    if (!sentinel) {
        ts_rconn_addr_t a;
        if (parse_addr(p, end, &a, 6379, err, errlen) != 0) return TS_EINVAL;
        memcpy(o->host, a.host, sizeof o->host);
        o->port = a.port;
        if (parse_db(end, pend, o, err, errlen) != 0) return TS_EINVAL;
        return q ? parse_query(q + 1, o, err, errlen) : 0;
    }
    /* host[:port],host[:port]... (Sentinels, 26379 by default), then /name[/db] */
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *aend = comma ? comma : end;
        if (o->nsentinels == TS_RCONN_SENTINELS_MAX) {
            snprintf(err, errlen, "at most %d Sentinels in the Redis URL", TS_RCONN_SENTINELS_MAX);
            return TS_EINVAL;
        }
        if (parse_addr(p, aend, &o->sentinels[o->nsentinels++], 26379, err, errlen) != 0)
            return TS_EINVAL;
        p = comma ? comma + 1 : end;
        if (comma && p == end) {
            snprintf(err, errlen, "the Redis URL needs a host after its last comma");
            return TS_EINVAL;
        }
    }
    if (!o->nsentinels) {
        snprintf(err, errlen, "the Redis URL needs a host");
        return TS_EINVAL;
    }
    const char *name = *end == '/' ? end + 1 : end;
    const char *nend = memchr(name, '/', (size_t)(pend - name));
    if (!nend) nend = pend;
    if (name == nend || copy_decoded(name, (size_t)(nend - name), o->master, sizeof o->master) != 0) {
        snprintf(err, errlen,
                 "a redis+sentinel:// URL names the primary after its Sentinels: "
                 "redis+sentinel://HOST:26379/NAME");
        return TS_EINVAL;
    }
    if (parse_db(nend, pend, o, err, errlen) != 0) return TS_EINVAL;
    if (q && parse_query(q + 1, o, err, errlen) != 0) return TS_EINVAL;
    if (o->cluster > 0) {
        snprintf(err, errlen, "a Redis URL with Sentinels cannot also say cluster=1");
        return TS_EINVAL;
    }
    o->cluster = -1; /* Sentinel serves one primary */
    return 0;
}

/* ---- commands ---- */

static void cmd_free(cmd_t *k) {
    free(k->wire);
    if (k->reply) freeReplyObject(k->reply);
    free(k->sunsub);
    free(k);
}

static void done_run(uv_timer_t *t) {
    ts_rconn_t *c = t->data;
    while (!ts_list_empty(&c->done)) {
        cmd_t *k = ts_list_entry(c->done.next, cmd_t, link);
        ts_list_remove(&k->link);
        if (k->cb) k->cb(c, k->status, NULL, k->ud);
        cmd_free(k);
    }
}

/* Moves k (unlinked) to the done list: called back with `status` later. */
static void fail_later(ts_rconn_t *c, cmd_t *k, int status) {
    k->status = status;
    ts_list_insert_tail(&c->done, &k->link);
    if (!uv_is_active((uv_handle_t *)&c->done_timer)) uv_timer_start(&c->done_timer, done_run, 0, 0);
}

static void fail_list(ts_rconn_t *c, ts_list_t *l, int status) {
    while (!ts_list_empty(l)) {
        cmd_t *k = ts_list_entry(l->next, cmd_t, link);
        ts_list_remove(&k->link);
        if (k->handshake || k->wait) {
            cmd_free(k);
            continue;
        }
        c->queued--;
        if (k->reply) { /* held: applied maybe, replicated unknown */
            freeReplyObject(k->reply);
            k->reply = NULL;
        }
        fail_later(c, k, status);
    }
}

/* ---- connection lifecycle ---- */

static void start_attempt(ts_rconn_t *c);
static void on_timer(uv_timer_t *t);
static void release(ts_rconn_t *c);
static void drop_sentinel(ts_rconn_t *c);

static void link_closed(uv_handle_t *h) {
    link_t *l = h->data;
    if (l->ssl) SSL_free(l->ssl); /* and its two BIOs */
    free(l);
}

/* ---- TLS ---- */

/* The last OpenSSL error as text (the queue is emptied). */
static void ssl_reason(char *out, size_t cap) {
    unsigned long e = ERR_get_error();
    if (!e) {
        snprintf(out, cap, "unknown error");
        return;
    }
    ERR_error_string_n(e, out, cap);
    ERR_clear_error();
}

static SSL_CTX *tls_ctx_new(const ts_rconn_opts_t *o, char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[160];
    if (!ctx) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "TLS: cannot create a context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    int ok = o->tls_ca[0] ? SSL_CTX_load_verify_locations(ctx, o->tls_ca, NULL)
                          : SSL_CTX_set_default_verify_paths(ctx);
    if (!ok) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "TLS: cannot load the CA %s: %s", o->tls_ca[0] ? o->tls_ca : "store",
                 why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (o->tls_cert[0] && (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1 ||
                           SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1)) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "TLS: cannot use the client certificate %s / key %s: %s",
                 o->tls_cert, o->tls_key, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, o->tls_insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    return ctx;
}

int ts_rconn_tls_check(const ts_rconn_opts_t *o, char *err, size_t errlen) {
    if (!o->tls) return 0;
    SSL_CTX *ctx = tls_ctx_new(o, err, errlen);
    if (!ctx) return TS_EINVAL;
    SSL_CTX_free(ctx);
    return 0;
}

static int is_ip(const char *host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The SSL object of one attempt: SNI for a host name, and the certificate
 * must name the host (or the IP address) we dialled. */
static SSL *tls_new(ts_rconn_t *c) {
    SSL *ssl = SSL_new(c->tls);
    if (!ssl) return NULL;
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (!rb || !wb) {
        BIO_free(rb);
        BIO_free(wb);
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_mem_eof_return(rb, -1); /* empty means "more later", not EOF */
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    if (is_ip(c->o.host)) {
        if (!c->o.tls_insecure)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->o.host);
    } else {
        SSL_set_tlsext_host_name(ssl, c->o.host);
        if (!c->o.tls_insecure) SSL_set1_host(ssl, c->o.host);
    }
    return ssl;
}

static void drop_link(ts_rconn_t *c) {
    link_t *l = c->l;
    c->l = NULL;
    if (!l) return;
    l->c = NULL;
    uv_read_stop((uv_stream_t *)&l->tcp);
    uv_close((uv_handle_t *)&l->tcp, link_closed);
}

/* The attempt or the connection failed: everything in flight fails, and the
 * next attempt comes after the backoff. */
static void reset(ts_rconn_t *c, const char *why) {
    if (c->st == ST_CLOSED) return;
    int was_up = c->st == ST_UP;
    if (why != c->reason) snprintf(c->reason, sizeof c->reason, "%s", why);
    drop_link(c);
    drop_sentinel(c);
    if (c->rd) {
        redisReaderFree(c->rd);
        c->rd = NULL;
    }
    fail_list(c, &c->held, TS_ESTORE);
    fail_list(c, &c->inflight, TS_ESTORE);
    fail_list(c, &c->waiting, TS_ESTORE);
    c->handshake_left = 0;
    c->st = ST_DOWN;
    if (was_up) c->stats.disconnects++;
    if (was_up) ts_warn("store", "redis %s:%u: connection lost: %s", c->o.host, c->o.port, why);
    else ts_debug("store", "redis %s:%u: attempt failed: %s", c->o.host, c->o.port, why);
    /* exponential backoff with jitter: half fixed, half random */
    uint32_t b = c->backoff_ms ? c->backoff_ms : c->o.backoff_min_ms;
    uint32_t delay = b / 2;
    uint32_t r;
    ts_random_bytes(&r, sizeof r);
    delay += (uint32_t)(r % (b / 2 + 1));
    c->backoff_ms = b * 2 > c->o.backoff_max_ms ? c->o.backoff_max_ms : b * 2;
    uv_timer_start(&c->timer, on_timer, delay, 0);
    if (c->on_state) c->on_state(c, 0, c->reason, c->ud);
}

static void flush_cb(uv_prepare_t *p);
static cmd_t *cmd_make(int argc, const char **argv, const size_t *argvlen, ts_rconn_reply_cb cb,
                       void *ud);

static void want_flush(ts_rconn_t *c) {
    if (!uv_is_active((uv_handle_t *)&c->flush)) uv_prepare_start(&c->flush, flush_cb);
}

static void write_done(uv_write_t *req, int status) {
    wreq_t *w = (wreq_t *)req;
    link_t *l = w->l;
    free(w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED && l->c) reset(l->c, uv_strerror(status));
}

/* Writes buf (taken: freed when written) on the socket. */
static int raw_write(ts_rconn_t *c, char *buf, size_t len) {
    wreq_t *w = ts_xcalloc(1, sizeof(*w));
    w->l = c->l;
    w->buf = buf;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    c->stats.writes++;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->l->tcp, &b, 1, write_done);
    if (rc < 0) {
        free(buf);
        free(w);
    }
    return rc;
}

/* Sends what OpenSSL has queued in its output BIO (records, handshake). */
static int tls_flush(ts_rconn_t *c) {
    BIO *wb = SSL_get_wbio(c->l->ssl);
    size_t n = BIO_ctrl_pending(wb);
    if (!n) return 0;
    char *buf = ts_xmalloc(n);
    int got = BIO_read(wb, buf, (int)n);
    if (got <= 0) {
        free(buf);
        return 0;
    }
    return raw_write(c, buf, (size_t)got);
}

/* Writes buf (taken) as application data: encrypted first under TLS. A
 * memory BIO takes every byte, so SSL_write does not stop half way. */
static int link_write(ts_rconn_t *c, char *buf, size_t len) {
    if (!c->l->ssl) return raw_write(c, buf, len);
    int n = SSL_write(c->l->ssl, buf, (int)len);
    free(buf);
    if (n <= 0 || (size_t)n != len) return UV_EPROTO;
    return tls_flush(c);
}

/* Writes every waiting command (handshake commands always; the others only
 * once the connection is up) in one write. */
static void flush_cb(uv_prepare_t *p) {
    ts_rconn_t *c = p->data;
    uv_prepare_stop(p);
    if (!c->l || (c->st != ST_UP && c->st != ST_HANDSHAKE)) return;
    size_t total = 0;
    int writes = 0;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &c->waiting) {
        cmd_t *k = ts_list_entry(it, cmd_t, link);
        if (c->st != ST_UP && !k->handshake) break;
        total += k->len;
        writes |= k->write;
    }
    if (!total) return;
    cmd_t *w = NULL; /* ?replicas=N: one WAIT after this turn's writes */
    if (writes && c->o.replicas) {
        char n[16], ms[16];
        snprintf(n, sizeof n, "%u", c->o.replicas);
        snprintf(ms, sizeof ms, "%u", c->o.replicas_timeout_ms);
        const char *argv[] = {"WAIT", n, ms};
        w = cmd_make(3, argv, NULL, NULL, NULL);
        w->wait = 1;
        total += w->len;
        c->stats.waits++;
    }
    char *buf = ts_xmalloc(total);
    size_t off = 0;
    uint64_t now = ts_now_ms();
    while (!ts_list_empty(&c->waiting) || w) {
        cmd_t *k = ts_list_empty(&c->waiting) ? NULL : ts_list_entry(c->waiting.next, cmd_t, link);
        if (!k || (c->st != ST_UP && !k->handshake)) {
            if (!w) break;
            k = w; /* last, after every command of the turn */
            w = NULL;
        } else {
            ts_list_remove(&k->link);
            k->held = writes && c->o.replicas && !k->handshake;
        }
        memcpy(buf + off, k->wire, k->len);
        off += k->len;
        free(k->wire);
        k->wire = NULL;
        k->sent_ms = now;
        ts_list_insert_tail(&c->inflight, &k->link);
    }
    int rc = link_write(c, buf, total);
    if (rc < 0) {
        reset(c, uv_strerror(rc));
        return;
    }
    if (!uv_is_active((uv_handle_t *)&c->timer)) {
        uint32_t every = c->o.command_timeout_ms / 4;
        uv_timer_start(&c->timer, on_timer, every ? every : 1, 0);
    }
}

static char *put_count(char *p, char lead, size_t n) {
    *p++ = lead;
    p += ts_fmt_u64(p, n);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

char *ts_rconn__format(int argc, const char **argv, const size_t *argvlen, size_t *len) {
    size_t total = 1 + 20 + 2;
    for (int i = 0; i < argc; i++)
        total += 1 + 20 + 2 + (argvlen ? argvlen[i] : strlen(argv[i])) + 2;
    char *wire = ts_xmalloc(total), *p = put_count(wire, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        p = put_count(p, '$', n);
        if (n) memcpy(p, argv[i], n);
        p += n;
        *p++ = '\r';
        *p++ = '\n';
    }
    *len = (size_t)(p - wire);
    return wire;
}

static cmd_t *cmd_make(int argc, const char **argv, const size_t *argvlen, ts_rconn_reply_cb cb,
                       void *ud) {
    size_t len;
    char *wire = ts_rconn__format(argc, argv, argvlen, &len);
    cmd_t *k = ts_xcalloc(1, sizeof(*k));
    k->wire = wire;
    k->len = len;
    k->cb = cb;
    k->ud = ud;
    return k;
}

/* WAIT answered: the held commands are called back in order; the writes
 * among them fail (TS_ESTORE) unless at least N replicas had them. */
static void wait_done(ts_rconn_t *c, const redisReply *r) {
    int ok = r->type == REDIS_REPLY_INTEGER && r->integer >= (long long)c->o.replicas;
    if (!ok) {
        c->stats.waits_short++;
        if (!c->short_logged) {
            c->short_logged = 1;
            char got[160];
            if (r->type == REDIS_REPLY_INTEGER) snprintf(got, sizeof got, "%lld", r->integer);
            else snprintf(got, sizeof got, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
            ts_warn("store",
                    "redis %s:%u: WAIT %u %u answered %s: writes fail (TS_ESTORE) until %u "
                    "replica(s) acknowledge in time (are the replicas up? ?replicas=)",
                    c->o.host, c->o.port, c->o.replicas, c->o.replicas_timeout_ms, got,
                    c->o.replicas);
        }
    } else if (c->short_logged) {
        c->short_logged = 0;
        ts_info("store", "redis %s:%u: WAIT: %u replica(s) acknowledge again", c->o.host,
                c->o.port, c->o.replicas);
    }
    ts_list_t mine; /* callbacks may reset or close the connection: ours first */
    ts_list_init(&mine);
    while (!ts_list_empty(&c->held)) {
        ts_list_t *e = c->held.next;
        ts_list_remove(e);
        ts_list_insert_tail(&mine, e);
    }
    while (!ts_list_empty(&mine)) {
        cmd_t *k = ts_list_entry(mine.next, cmd_t, link);
        ts_list_remove(&k->link);
        c->queued--;
        if (!ok && k->write && k->reply->type != REDIS_REPLY_ERROR) {
            if (k->cb) k->cb(c, TS_ESTORE, NULL, k->ud);
        } else if (k->cb) {
            k->cb(c, 0, k->reply, k->ud);
        }
        cmd_free(k);
    }
}

static cmd_t *handshake_cmd(ts_rconn_t *c, int argc, const char **argv) {
    cmd_t *k = cmd_make(argc, argv, NULL, NULL, NULL);
    k->handshake = 1;
    /* before any waiting user command */
    ts_list_t *at = &c->waiting;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &c->waiting) {
        if (!ts_list_entry(it, cmd_t, link)->handshake) {
            at = it;
            break;
        }
    }
    ts_list_insert_tail(at, &k->link); /* before `at` */
    c->handshake_left++;
    return k;
}

static void became_up(ts_rconn_t *c) {
    c->st = ST_UP;
    c->backoff_ms = 0;
    c->stats.connects++;
    uv_timer_stop(&c->timer);
    if (c->o.quiet) ts_debug("store", "redis %s:%u: connected", c->o.host, c->o.port);
    else ts_info("store", "redis %s:%u: connected", c->o.host, c->o.port);
    want_flush(c);
    if (!ts_list_empty(&c->inflight) || !ts_list_empty(&c->waiting)) {
        uint32_t every = c->o.command_timeout_ms / 4;
        uv_timer_start(&c->timer, on_timer, every ? every : 1, 0);
    }
    if (c->on_state) c->on_state(c, 1, "connected", c->ud);
}

/* A push is a pub/sub message; only a connection with subscriptions gets
 * them, and such a connection (RESP2) answers nothing else that looks so. */
static int is_push(const ts_rconn_t *c, const redisReply *r) {
    if (!c->nsubs || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return 0;
    const redisReply *k = r->element[0];
    if (k->type != REDIS_REPLY_STRING) return 0;
    if (r->elements == 3 && (strcmp(k->str, "message") == 0 || strcmp(k->str, "smessage") == 0))
        return 1;
    return r->elements == 4 && strcmp(k->str, "pmessage") == 0;
}

static int sub_find(const ts_rconn_t *c, ts_rconn_sub_kind_t kind, const char *channel);

/* ["sunsubscribe", channel, n] that answers no SUNSUBSCRIBE of ours: Redis
 * Cluster dropped a shard channel whose slot moved to another node. */
static int is_sunsub_notice(const ts_rconn_t *c, const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "sunsubscribe") != 0)
        return 0;
    if (ts_list_empty(&c->inflight)) return 1;
    const cmd_t *k = ts_list_entry(c->inflight.next, cmd_t, link);
    return !k->sunsub || strcmp(k->sunsub, r->element[1]->str) != 0;
}

/* HELLO's answer (RESP2: [key, value, ...]) names a server older than
 * major version `min`? why then says which. An answer without a version
 * is taken as old too. */
static int too_old(const redisReply *r, unsigned min, char *why, size_t cap) {
    const char *v = NULL;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[i]->str, "version") == 0 &&
                r->element[i + 1]->type == REDIS_REPLY_STRING)
                v = r->element[i + 1]->str;
    if (v && strtoul(v, NULL, 10) >= min) return 0;
    snprintf(why, cap, "Redis %.40s: tabsync's store needs Redis %u.0 or later", v ? v : "(no version)",
             min);
    return 1;
}

/* Returns 1 if it kept r (a held reply), else the caller frees it. */
static int on_reply(ts_rconn_t *c, redisReply *r) {
    if (is_push(c, r)) {
        c->stats.pushes++;
        if (c->on_push) c->on_push(c, r, c->ud);
        return 0;
    }
    if (is_sunsub_notice(c, r)) { /* not subscribed again after a reconnect; told as a push */
        int i = sub_find(c, TS_RCONN_SSUBSCRIBE, r->element[1]->str);
        if (i >= 0) {
            free(c->subs[i].channel);
            c->subs[i] = c->subs[--c->nsubs];
        }
        c->stats.pushes++;
        if (c->on_push) c->on_push(c, r, c->ud);
        return 0;
    }
    if (ts_list_empty(&c->inflight)) {
        reset(c, "a reply nobody asked for");
        return 0;
    }
    cmd_t *k = ts_list_entry(c->inflight.next, cmd_t, link);
    ts_list_remove(&k->link);
    c->stats.replies++;
    if (k->handshake) {
        int bad = r->type == REDIS_REPLY_ERROR;
        char why[400];
        if (bad && k->hello) {
            snprintf(why, sizeof why, "HELLO refused (%.200s): the server is older than Redis %u.0",
                     r->str, c->o.min_major);
        } else if (bad) {
            snprintf(why, sizeof why, "handshake refused: %s", r->str);
        } else if (k->hello && (bad = too_old(r, c->o.min_major, why, sizeof why))) {
            /* why says which version it is */
        } else if (k->role && !(r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                                r->element[0]->type == REDIS_REPLY_STRING &&
                                strcmp(r->element[0]->str, "master") == 0)) {
            bad = 1; /* Sentinel's answer was stale (a failover under way) */
            snprintf(why, sizeof why, "Sentinel named %.100s:%u as the primary %.60s, but it is not one (ROLE: %.20s)",
                     c->o.host, c->o.port, c->o.master,
                     r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->str
                         ? r->element[0]->str
                         : "?");
        }
        cmd_free(k);
        if (bad) {
            reset(c, why);
            return 0;
        }
        if (--c->handshake_left == 0 && c->st == ST_HANDSHAKE) became_up(c);
        return 0;
    }
    if (k->wait) {
        cmd_free(k);
        wait_done(c, r);
        return 0;
    }
    /* a server turned replica under us (Sentinel moved the primary): the
     * command is answered, then the connection asks Sentinel again */
    int readonly = c->o.nsentinels && r->type == REDIS_REPLY_ERROR &&
                   strncmp(r->str, "READONLY", 8) == 0;
    if (k->held) {
        k->reply = r;
        ts_list_insert_tail(&c->held, &k->link);
        if (readonly) reset(c, "the server is a replica now (READONLY): asking Sentinel again");
        return 1;
    }
    c->queued--;
    if (k->cb) k->cb(c, 0, r, k->ud);
    cmd_free(k);
    if (readonly && c->st == ST_UP)
        reset(c, "the server is a replica now (READONLY): asking Sentinel again");
    return 0;
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)h;
    (void)hint;
    static __thread char chunk[READ_CHUNK]; /* fed to the reader at once */
    *buf = uv_buf_init(chunk, sizeof chunk);
}

/* Feeds bytes to the reader and handles every whole reply. Returns 0, or
 * -1 when the link is no longer the connection's (reset or closed). */
static int feed(ts_rconn_t *c, link_t *l, const char *data, size_t n) {
    /* In slices: hiredis 0.14's reader moves what is left of its buffer to
     * the front each time 1 KiB of it was consumed, so 64 KiB fed at once
     * (a busy subscriber's read) was moved ~64 times: memmove was 12 % of
     * a node's instructions (callgrind). Slices keep what is moved small. */
    for (size_t off = 0; off < n;) {
        size_t k = n - off < FEED_SLICE ? n - off : FEED_SLICE;
        if (redisReaderFeed(c->rd, data + off, k) != REDIS_OK) {
            reset(c, "reader refused the bytes");
            return -1;
        }
        off += k;
        for (;;) {
            void *rep = NULL;
            if (redisReaderGetReply(c->rd, &rep) != REDIS_OK) {
                reset(c, c->rd->errstr[0] ? c->rd->errstr : "protocol error");
                return -1;
            }
            if (!rep) break;
            if (!on_reply(c, rep)) freeReplyObject(rep);
            /* a callback may have closed or reset the connection */
            if (c->l != l || c->st == ST_CLOSED) return -1;
        }
    }
    return 0;
}

static void start_session(ts_rconn_t *c);

/* Drives the TLS handshake; when it is done, the Redis handshake starts. */
static void tls_handshake(ts_rconn_t *c) {
    SSL *ssl = c->l->ssl;
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    if (tls_flush(c) < 0) {
        reset(c, "TLS: write failed");
        return;
    }
    if (rc == 1) {
        start_session(c);
        return;
    }
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    char why[200];
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        snprintf(why, sizeof why,
                 "TLS: the server's certificate is not trusted: %s (is the CA right? "
                 "rediss://...?cacert=/path/ca.pem)",
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else {
        char r[160];
        ssl_reason(r, sizeof r);
        snprintf(why, sizeof why, "TLS handshake failed: %s", r);
    }
    reset(c, why);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    link_t *l = s->data;
    ts_rconn_t *c = l->c;
    if (!c) return;
    if (n < 0) {
        reset(c, n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
        return;
    }
    if (n == 0) return;
    if (!l->ssl) {
        feed(c, l, buf->base, (size_t)n);
        return;
    }
    BIO_write(SSL_get_rbio(l->ssl), buf->base, (int)n);
    if (c->st == ST_TLS) {
        tls_handshake(c);
        if (c->l != l || c->st == ST_TLS || c->st == ST_CLOSED) return;
    }
    char plain[16384];
    for (;;) {
        ERR_clear_error();
        int got = SSL_read(l->ssl, plain, sizeof plain);
        if (got > 0) {
            if (feed(c, l, plain, (size_t)got) < 0) return;
            continue;
        }
        int e = SSL_get_error(l->ssl, got);
        if (e == SSL_ERROR_WANT_READ) break;
        char why[200], r[160];
        if (e == SSL_ERROR_ZERO_RETURN) snprintf(why, sizeof why, "closed by the server (TLS)");
        else {
            ssl_reason(r, sizeof r);
            snprintf(why, sizeof why, "TLS: %s", r);
        }
        reset(c, why);
        return;
    }
    if (tls_flush(c) < 0) reset(c, "TLS: write failed"); /* e.g. a key update's answer */
}

static void connected(uv_connect_t *req, int status) {
    link_t *l = req->data;
    ts_rconn_t *c = l->c;
    if (!c) return;
    if (status < 0) {
        reset(c, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    c->rd = redisReaderCreate();
    ts_assert(c->rd != NULL);
    uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, read_cb);
    if (c->o.tls) {
        if (!c->tls) {
            reset(c, c->tls_err);
            return;
        }
        l->ssl = tls_new(c);
        if (!l->ssl) {
            reset(c, "TLS: cannot create a session (out of memory?)");
            return;
        }
        c->st = ST_TLS;
        tls_handshake(c);
        return;
    }
    start_session(c);
}

/* AUTH, SELECT, the scripts and the subscriptions, before any user command. */
static void start_session(ts_rconn_t *c) {
    c->st = ST_HANDSHAKE;
    if (c->o.password[0]) {
        if (c->o.user[0]) {
            const char *argv[] = {"AUTH", c->o.user, c->o.password};
            handshake_cmd(c, 3, argv);
        } else {
            const char *argv[] = {"AUTH", c->o.password};
            handshake_cmd(c, 2, argv);
        }
    }
    if (c->o.db) {
        char db[16];
        snprintf(db, sizeof db, "%u", c->o.db);
        const char *argv[] = {"SELECT", db};
        handshake_cmd(c, 2, argv);
    }
    if (c->o.min_major) {
        const char *argv[] = {"HELLO"};
        handshake_cmd(c, 1, argv)->hello = 1;
    }
    if (c->o.nsentinels) { /* Sentinel's answer may be stale: ask the server itself */
        const char *argv[] = {"ROLE"};
        handshake_cmd(c, 1, argv)->role = 1;
    }
    for (size_t i = 0; i < c->o.nscripts; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", c->o.scripts[i]};
        handshake_cmd(c, 3, argv);
    }
    for (size_t i = 0; i < c->nsubs; i++) {
        const char *argv[] = {sub_verbs[c->subs[i].kind], c->subs[i].channel};
        handshake_cmd(c, 2, argv);
    }
    if (!c->handshake_left) {
        became_up(c);
        return;
    }
    want_flush(c);
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    ts_rconn_t *c = req->data;
    c->resolving = 0;
    if (c->st == ST_CLOSED) {
        if (res) uv_freeaddrinfo(res);
        release(c);
        return;
    }
    if (status < 0 || !res) {
        reset(c, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    link_t *l = ts_xcalloc(1, sizeof(*l));
    l->c = c;
    uv_tcp_init(c->loop, &l->tcp);
    l->tcp.data = l;
    l->creq.data = l;
    c->l = l;
    int rc = uv_tcp_connect(&l->creq, &l->tcp, res->ai_addr, connected);
    uv_freeaddrinfo(res);
    if (rc < 0) reset(c, uv_strerror(rc));
}

/* Resolves o.host and connects (the primary, with Sentinels). */
static void connect_attempt(ts_rconn_t *c) {
    c->st = ST_CONNECTING;
    c->attempt_started = ts_now_ms();
    uv_timer_start(&c->timer, on_timer, c->o.connect_timeout_ms, 0);
    char port[8];
    snprintf(port, sizeof port, "%u", c->o.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    c->resolving = 1;
    int rc = uv_getaddrinfo(c->loop, &c->gai, resolved, c->o.host, port, &hints);
    if (rc < 0) {
        c->resolving = 0;
        reset(c, uv_strerror(rc));
    }
}

/* ---- Sentinel: where the primary is ---- */

static void ask_sentinel(ts_rconn_t *c);

static void sentinel_closed(void *ud) { release(ud); }

static void drop_sentinel(ts_rconn_t *c) {
    ts_rconn_t *s = c->sentinel;
    if (!s) return;
    c->sentinel = NULL;
    ts_rconn_close(s, sentinel_closed, c);
}

/* SENTINEL get-master-addr-by-name's answer: [ip, port], or nil. */
static void on_master_addr(ts_rconn_t *s, int status, const redisReply *r, void *ud) {
    ts_rconn_t *c = ud;
    if (c->sentinel != s) return; /* c was reset or closed meanwhile */
    ts_rconn_addr_t *at = &c->o.sentinels[c->sentinel_at];
    unsigned long port = 0;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len > 0 && r->element[0]->len <= TS_RCONN_HOST_MAX) {
        char *e;
        port = strtoul(r->element[1]->str, &e, 10);
        if (*e || port > 65535) port = 0;
    }
    if (!port) {
        if (status) snprintf(c->reason, sizeof c->reason, "%.80s:%u: %.120s", at->host, at->port, s->reason);
        else if (r->type == REDIS_REPLY_NIL)
            snprintf(c->reason, sizeof c->reason, "%.80s:%u does not know a primary named %.80s", at->host,
                     at->port, c->o.master);
        else
            snprintf(c->reason, sizeof c->reason, "%.80s:%u: %.120s", at->host, at->port,
                     r->type == REDIS_REPLY_ERROR ? r->str : "an answer that is not [ip, port]");
        drop_sentinel(c);
        ts_debug("store", "redis sentinel %s", c->reason);
        c->sentinel_at++;
        ask_sentinel(c);
        return;
    }
    if (strcmp(c->o.host, r->element[0]->str) != 0 || c->o.port != port)
        ts_info("store", "redis sentinel %s:%u: the primary %s is at %s:%lu", at->host, at->port,
                c->o.master, r->element[0]->str, port);
    memcpy(c->o.host, r->element[0]->str, r->element[0]->len + 1);
    c->o.port = (uint16_t)port;
    if (c->sentinel_at) { /* the one that answered is asked first next time */
        ts_rconn_addr_t first = *at;
        memmove(&c->o.sentinels[1], &c->o.sentinels[0], c->sentinel_at * sizeof first);
        c->o.sentinels[0] = first;
    }
    drop_sentinel(c);
    connect_attempt(c);
}

/* Asks o.sentinels[sentinel_at], on a connection of its own closed after
 * the answer; each gets an equal share of the connect timeout. */
static void ask_sentinel(ts_rconn_t *c) {
    if (c->sentinel_at == c->o.nsentinels) {
        char why[400];
        snprintf(why, sizeof why, "no Sentinel named the primary %.80s (last: %.240s)", c->o.master,
                 c->reason);
        reset(c, why);
        return;
    }
    const ts_rconn_addr_t *a = &c->o.sentinels[c->sentinel_at];
    ts_rconn_opts_t so = {0};
    memcpy(so.host, a->host, sizeof so.host);
    so.port = a->port;
    memcpy(so.user, c->o.sentinel_user, sizeof so.user);
    memcpy(so.password, c->o.sentinel_password, sizeof so.password);
    so.tls = c->o.tls;
    memcpy(so.tls_ca, c->o.tls_ca, sizeof so.tls_ca);
    memcpy(so.tls_cert, c->o.tls_cert, sizeof so.tls_cert);
    memcpy(so.tls_key, c->o.tls_key, sizeof so.tls_key);
    so.tls_insecure = c->o.tls_insecure;
    uint32_t share = c->o.connect_timeout_ms / (uint32_t)c->o.nsentinels;
    so.connect_timeout_ms = so.command_timeout_ms = share < 100 ? 100 : share;
    so.backoff_min_ms = so.backoff_max_ms = so.connect_timeout_ms;
    so.quiet = 1;
    c->sentinel = ts_rconn_new(c->loop, &so, NULL, NULL, NULL);
    c->handles++; /* sentinel_closed releases it */
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", c->o.master};
    /* a new connection takes any command (TS_ELIMIT needs 100,000 queued) */
    if (ts_rconn_cmd(c->sentinel, 3, argv, NULL, on_master_addr, c) != 0) {
        drop_sentinel(c);
        snprintf(c->reason, sizeof c->reason, "%.80s:%u: the query was refused", a->host, a->port);
        c->sentinel_at++;
        ask_sentinel(c);
    }
}

static void start_attempt(ts_rconn_t *c) {
    if (!c->o.nsentinels) {
        connect_attempt(c);
        return;
    }
    c->st = ST_DISCOVER;
    c->sentinel_at = 0;
    ask_sentinel(c);
}

/* One timer for the three clocks: the backoff (DOWN), the connect timeout
 * (CONNECTING, HANDSHAKE) and the oldest unanswered command (UP). */
static void on_timer(uv_timer_t *t) {
    ts_rconn_t *c = t->data;
    uint64_t now = ts_now_ms();
    switch (c->st) {
    case ST_DOWN:
        start_attempt(c);
        return;
    case ST_DISCOVER: /* each Sentinel's connection keeps its own time */
        return;
    case ST_CONNECTING:
    case ST_TLS:
    case ST_HANDSHAKE:
        if (now - c->attempt_started >= c->o.connect_timeout_ms) {
            if (c->resolving) return; /* getaddrinfo cannot be cut short: wait */
            reset(c, "connect timeout");
        } else {
            uv_timer_start(t, on_timer, c->o.connect_timeout_ms - (now - c->attempt_started), 0);
        }
        return;
    case ST_UP: {
        if (ts_list_empty(&c->inflight)) return; /* restarted with the next write */
        cmd_t *k = ts_list_entry(c->inflight.next, cmd_t, link);
        if (now - k->sent_ms >= c->o.command_timeout_ms) {
            c->stats.timeouts++;
            reset(c, "command timeout");
            return;
        }
        uint32_t every = c->o.command_timeout_ms / 4;
        uv_timer_start(t, on_timer, every ? every : 1, 0);
        return;
    }
    case ST_CLOSED:
        return;
    }
}

ts_rconn_t *ts_rconn_new(uv_loop_t *loop, const ts_rconn_opts_t *o, ts_rconn_state_cb on_state,
                         ts_rconn_push_cb on_push, void *ud) {
    ts_rconn_t *c = ts_xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->o = *o;
    if (!c->o.port) c->o.port = 6379;
    if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 2000;
    if (!c->o.command_timeout_ms) c->o.command_timeout_ms = 5000;
    if (!c->o.backoff_min_ms) c->o.backoff_min_ms = 50;
    if (!c->o.backoff_max_ms) c->o.backoff_max_ms = 5000;
    if (c->o.backoff_max_ms < c->o.backoff_min_ms) c->o.backoff_max_ms = c->o.backoff_min_ms;
    if (!c->o.max_queued) c->o.max_queued = 100000;
    if (c->o.tls) c->tls = tls_ctx_new(&c->o, c->tls_err, sizeof c->tls_err);
    c->on_state = on_state;
    c->on_push = on_push;
    c->ud = ud;
    ts_list_init(&c->waiting);
    ts_list_init(&c->inflight);
    ts_list_init(&c->done);
    ts_list_init(&c->held);
    if (c->o.replicas) {
        if (!c->o.replicas_timeout_ms) c->o.replicas_timeout_ms = 1000;
        if (c->o.replicas_timeout_ms > c->o.command_timeout_ms / 2)
            c->o.replicas_timeout_ms = c->o.command_timeout_ms / 2 ? c->o.command_timeout_ms / 2 : 1;
    }
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->done_timer);
    uv_prepare_init(loop, &c->flush);
    c->timer.data = c->done_timer.data = c->flush.data = c;
    c->handles = 3;
    start_attempt(c);
    return c;
}

int ts_rconn_is_up(const ts_rconn_t *c) { return c->st == ST_UP; }

static int issue(ts_rconn_t *c, cmd_t *k) {
    c->stats.commands++;
    c->queued++;
    if (c->st == ST_DOWN) { /* between attempts: fail fast, later */
        c->queued--;
        fail_later(c, k, TS_ESTORE);
        return 0;
    }
    ts_list_insert_tail(&c->waiting, &k->link);
    if (c->st == ST_UP) want_flush(c);
    return 0;
}

int ts_rconn_cmdf(ts_rconn_t *c, unsigned flags, int argc, const char **argv,
                  const size_t *argvlen, ts_rconn_reply_cb cb, void *ud) {
    if (c->st == ST_CLOSED) return TS_ECLOSED;
    if (argc < 1) return TS_EINVAL;
    if (c->queued >= c->o.max_queued) return TS_ELIMIT;
    cmd_t *k = cmd_make(argc, argv, argvlen, cb, ud);
    k->write = (flags & TS_RCONN_WRITE) != 0;
    return issue(c, k);
}

int ts_rconn_cmd(ts_rconn_t *c, int argc, const char **argv, const size_t *argvlen,
                 ts_rconn_reply_cb cb, void *ud) {
    return ts_rconn_cmdf(c, 0, argc, argv, argvlen, cb, ud);
}

static int sub_find(const ts_rconn_t *c, ts_rconn_sub_kind_t kind, const char *channel) {
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i].kind == kind && strcmp(c->subs[i].channel, channel) == 0) return (int)i;
    return -1;
}

int ts_rconn_subscribe(ts_rconn_t *c, ts_rconn_sub_kind_t kind, const char *channel,
                       ts_rconn_reply_cb cb, void *ud) {
    if (c->st == ST_CLOSED) return TS_ECLOSED;
    if ((unsigned)kind > TS_RCONN_PSUBSCRIBE) return TS_EINVAL;
    if (c->queued >= c->o.max_queued) return TS_ELIMIT;
    if (sub_find(c, kind, channel) < 0) {
        if (c->nsubs == c->subs_cap) {
            c->subs_cap = c->subs_cap ? c->subs_cap * 2 : 8;
            c->subs = ts_xrealloc(c->subs, c->subs_cap * sizeof(*c->subs));
        }
        c->subs[c->nsubs++] = (sub_t){kind, ts_xstrdup(channel)};
    }
    const char *argv[] = {sub_verbs[kind], channel};
    return issue(c, cmd_make(2, argv, NULL, cb, ud));
}

int ts_rconn_unsubscribe(ts_rconn_t *c, ts_rconn_sub_kind_t kind, const char *channel,
                         ts_rconn_reply_cb cb, void *ud) {
    if (c->st == ST_CLOSED) return TS_ECLOSED;
    if ((unsigned)kind > TS_RCONN_PSUBSCRIBE) return TS_EINVAL;
    if (c->queued >= c->o.max_queued) return TS_ELIMIT;
    int i = sub_find(c, kind, channel);
    if (i >= 0) {
        free(c->subs[i].channel);
        c->subs[i] = c->subs[--c->nsubs];
    }
    const char *argv[] = {unsub_verbs[kind], channel};
    cmd_t *k = cmd_make(2, argv, NULL, cb, ud);
    if (kind == TS_RCONN_SSUBSCRIBE) k->sunsub = ts_xstrdup(channel);
    return issue(c, k);
}

/* Drops one of the things close waits for; the last frees the connection. */
static void release(ts_rconn_t *c) {
    if (--c->handles > 0) return;
    void (*on_closed)(void *) = c->on_closed;
    void *ud = c->closed_ud;
    for (size_t i = 0; i < c->nsubs; i++) free(c->subs[i].channel);
    free(c->subs);
    if (c->tls) SSL_CTX_free(c->tls);
    free(c);
    if (on_closed) on_closed(ud);
}

static void handle_closed(uv_handle_t *h) { release(h->data); }

static void close_done(uv_timer_t *t) {
    ts_rconn_t *c = t->data;
    done_run(t); /* every command's callback first */
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->done_timer, handle_closed);
    uv_close((uv_handle_t *)&c->flush, handle_closed);
}

void ts_rconn_close(ts_rconn_t *c, void (*on_closed)(void *ud), void *ud) {
    if (c->st == ST_CLOSED) return;
    c->on_closed = on_closed;
    c->closed_ud = ud;
    drop_link(c);
    drop_sentinel(c);
    if (c->rd) {
        redisReaderFree(c->rd);
        c->rd = NULL;
    }
    fail_list(c, &c->held, TS_ECLOSED);
    fail_list(c, &c->inflight, TS_ECLOSED);
    fail_list(c, &c->waiting, TS_ECLOSED);
    c->st = ST_CLOSED;
    uv_timer_stop(&c->timer);
    uv_prepare_stop(&c->flush);
    if (c->resolving) c->handles++; /* resolved() finishes it */
    uv_timer_start(&c->done_timer, close_done, 0, 0);
}

ts_rconn_stats_t ts_rconn_stats(const ts_rconn_t *c) { return c->stats; }
