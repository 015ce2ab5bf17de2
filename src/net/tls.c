/* tls.c - OpenSSL glue: the server SSL_CTX and per-connection sessions
 * driven through two memory BIOs. Our own libuv reads and writes move the
 * ciphertext (tcp.c), so TLS connections keep the same read buffers and
 * the same one-write-per-loop-turn batching as plain ones. The client side
 * (a verifying client context, sessions bound to a host name) is what
 * libtabsync's wss:// connections use. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "net/tls_int.h"

/* Largest TLS record payload: queued writes are coalesced up to it, so a
 * batch of small frames costs one record, not one per frame. */
#define TLS_RECORD_MAX 16384
/* An output buffer larger than this is freed after its write. */
#define OBUF_KEEP (64u << 10)

/* TLS 1.2 suites (Mozilla "intermediate"); TLS 1.3 keeps OpenSSL's list. */
static const char TLS12_CIPHERS[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct ts_tls_ctx {
    SSL_CTX *ssl_ctx;
    /* Plaintext staging while one connection is flushed; shared because a
     * flush runs start to end within one call on the loop's thread. */
    uint8_t stage[TLS_RECORD_MAX];
};

struct ts_tls {
    SSL *ssl;
    BIO *rbio;           /* ciphertext from the peer (owned by ssl) */
    BIO *wbio;           /* ciphertext to the peer (owned by ssl) */
    ts_tls_ctx_t *ctx;
    uint8_t *obuf;       /* ciphertext handed to the socket write */
    size_t ocap;
    uint8_t failed;      /* a fatal TLS error happened: no more reads or writes */
    uint8_t notify_sent; /* close_notify queued */
    char errmsg[128];
};

/* OpenSSL's reason for the oldest queued error (the cause; later entries
 * only say who passed it on), then the queue is cleared. */
static unsigned long take_error(char *out, size_t len) {
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(out, len, "unknown error");
    } else {
        const char *r = ERR_reason_error_string(e);
        if (!r && ERR_SYSTEM_ERROR(e)) r = strerror((int)ERR_GET_REASON(e));
        /* OpenSSL 3 says only "unsupported" when no decoder took the file */
        if (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER) r = "no PEM key that OpenSSL can read";
        if (r)
            snprintf(out, len, "%s", r);
        else
            ERR_error_string_n(e, out, len);
    }
    ERR_clear_error();
    return e;
}

/* Offer http/1.1 when the client lists it; otherwise carry on without ALPN
 * rather than fail (old clients send nothing, h2-only clients will find
 * out from the HTTP/1.1 answer). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    if (SSL_select_next_proto(&sel, &sellen, ours, sizeof ours - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    *outlen = sellen;
    return SSL_TLSEXT_ERR_OK;
}

static int ctx_fail(SSL_CTX *sc, char *err, size_t errlen, const char *fmt, const char *a,
                    const char *b) {
    char reason[160];
    unsigned long e = take_error(reason, sizeof reason);
    int rc = e && ERR_SYSTEM_ERROR(e) && ERR_GET_REASON(e) > 0 ? -(int)ERR_GET_REASON(e)
                                                               : UV_EINVAL;
    if (err && errlen) {
        char what[1200];
        snprintf(what, sizeof what, fmt, a, b);
        snprintf(err, errlen, "%s: %s", what, reason);
    }
    SSL_CTX_free(sc);
    return rc;
}

/* What both sides share: TLS 1.2+, our TLS 1.2 suites, no renegotiation
 * or compression, record buffers given back by idle connections. Returns
 * the context, or 0 after ctx_fail (then *rc is its result). */
static SSL_CTX *ctx_base(const SSL_METHOD *method, uint64_t options, char *err, size_t errlen,
                         int *rc) {
    ERR_clear_error();
    SSL_CTX *sc = SSL_CTX_new(method);
    if (!sc) {
        *rc = ctx_fail(NULL, err, errlen, "cannot set up TLS%s%s", "", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION);
    SSL_CTX_set_options(sc, options | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(sc, TLS12_CIPHERS) != 1) {
        *rc = ctx_fail(sc, err, errlen, "cannot set up TLS ciphers%s%s", "", "");
        return NULL;
    }
    return sc;
}

static int ctx_done(SSL_CTX *sc, ts_tls_ctx_t **out) {
    ts_tls_ctx_t *ctx = ts_xcalloc(1, sizeof(*ctx));
    ctx->ssl_ctx = sc;
    *out = ctx;
    return 0;
}

int ts_tls__ctx_new(const char *cert, const char *key, ts_tls_ctx_t **out, char *err,
                    size_t errlen) {
    int rc;
    SSL_CTX *sc = ctx_base(TLS_server_method(), SSL_OP_CIPHER_SERVER_PREFERENCE, err, errlen, &rc);
    if (!sc) return rc;
    SSL_CTX_set_alpn_select_cb(sc, on_alpn, NULL);
    if (SSL_CTX_use_certificate_chain_file(sc, cert) != 1)
        return ctx_fail(sc, err, errlen, "cannot load TLS certificate %s%s", cert, "");
    if (SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM) != 1)
        return ctx_fail(sc, err, errlen, "cannot load TLS key %s%s", key, "");
    if (SSL_CTX_check_private_key(sc) != 1)
        return ctx_fail(sc, err, errlen, "TLS key %s does not match certificate %s", key, cert);
    return ctx_done(sc, out);
}

int ts_tls__client_ctx_new(const char *ca_file, int verify, ts_tls_ctx_t **out, char *err,
                           size_t errlen) {
    int rc;
    SSL_CTX *sc = ctx_base(TLS_client_method(), 0, err, errlen, &rc);
    if (!sc) return rc;
    /* (0 is success here) */
    if (SSL_CTX_set_alpn_protos(sc, (const unsigned char *)"\x08http/1.1", 9) != 0)
        return ctx_fail(sc, err, errlen, "cannot set up ALPN%s%s", "", "");
    if (verify) {
        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
        if (ca_file && SSL_CTX_load_verify_locations(sc, ca_file, NULL) != 1)
            return ctx_fail(sc, err, errlen, "cannot load trusted certificates from %s%s", ca_file,
                            "");
        if (!ca_file && SSL_CTX_set_default_verify_paths(sc) != 1)
            return ctx_fail(sc, err, errlen, "cannot load the system's trusted certificates%s%s",
                            "", "");
    }
    return ctx_done(sc, out);
}

void ts_tls__ctx_free(ts_tls_ctx_t *ctx) {
    if (!ctx) return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

void ts_tls__rehome(ts_tls_t *t, ts_tls_ctx_t *ctx) { t->ctx = ctx; }

static ts_tls_t *session_new(ts_tls_ctx_t *ctx) {
    SSL *ssl = SSL_new(ctx->ssl_ctx);
    BIO *r = BIO_new(BIO_s_mem());
    BIO *w = BIO_new(BIO_s_mem());
    if (!ssl || !r || !w) {
        SSL_free(ssl);
        BIO_free(r);
        BIO_free(w);
        ERR_clear_error();
        return NULL;
    }
    /* An empty read BIO means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(r, -1);
    SSL_set_bio(ssl, r, w);
    ts_tls_t *t = ts_xcalloc(1, sizeof(*t));
    t->ssl = ssl;
    t->rbio = r;
    t->wbio = w;
    t->ctx = ctx;
    return t;
}

ts_tls_t *ts_tls__new(ts_tls_ctx_t *ctx) {
    ts_tls_t *t = session_new(ctx);
    if (t) SSL_set_accept_state(t->ssl);
    return t;
}

ts_tls_t *ts_tls__new_client(ts_tls_ctx_t *ctx, const char *host) {
    ts_tls_t *t = session_new(ctx);
    if (!t) return NULL;
    SSL_set_connect_state(t->ssl);
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    /* SNI carries names only (RFC 6066); an address is checked as one */
    int ok = is_ip || SSL_set_tlsext_host_name(t->ssl, host) == 1;
    if (ok && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER))
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1
                   : SSL_set1_host(t->ssl, host) == 1;
    if (!ok) {
        ERR_clear_error();
        ts_tls__free(t);
        return NULL;
    }
    return t;
}

int ts_tls__ready(const ts_tls_t *t) { return SSL_is_init_finished(t->ssl); }

void ts_tls__free(ts_tls_t *t) {
    if (!t) return;
    SSL_free(t->ssl);
    free(t->obuf);
    free(t);
}

int ts_tls__feed(ts_tls_t *t, const uint8_t *p, size_t len) {
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        int n = BIO_write(t->rbio, p, chunk);
        if (n <= 0) { /* a memory BIO only fails to allocate */
            ERR_clear_error();
            snprintf(t->errmsg, sizeof t->errmsg, "out of memory buffering ciphertext");
            t->failed = 1;
            return TS_ENOMEM;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fail(ts_tls_t *t, int ssl_err) {
    char reason[100];
    if (ssl_err == SSL_ERROR_SSL) {
        take_error(reason, sizeof reason);
        /* a client's "certificate verify failed" says why in the result */
        long v = SSL_get_verify_result(t->ssl);
        size_t k = strlen(reason);
        if (!SSL_is_server(t->ssl) && v != X509_V_OK)
            snprintf(reason + k, sizeof reason - k, " (%s)", X509_verify_cert_error_string(v));
    } else
        snprintf(reason, sizeof reason, "SSL error %d", ssl_err);
    snprintf(t->errmsg, sizeof t->errmsg, "%s%s",
             SSL_is_init_finished(t->ssl) ? "" : "handshake failed: ", reason);
    t->failed = 1;
    return TS_EPROTO;
}

int ts_tls__read(ts_tls_t *t, uint8_t *out, size_t cap) {
    if (t->failed) return TS_EPROTO;
    ERR_clear_error();
    size_t n = 0;
    if (cap > INT_MAX) cap = INT_MAX; /* keeps the int return meaningful */
    int rc = SSL_read_ex(t->ssl, out, cap, &n);
    if (rc == 1) return (int)n;
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) return TS_ECLOSED;
    return fail(t, e);
}

static int write_all(ts_tls_t *t, const uint8_t *p, size_t len) {
    size_t n = 0;
    ERR_clear_error();
    /* The write BIO grows as needed, so one call takes everything. */
    int rc = SSL_write_ex(t->ssl, p, len, &n);
    if (rc != 1 || n != len) return fail(t, SSL_get_error(t->ssl, rc));
    return 0;
}

int ts_tls__write(ts_tls_t *t, const uv_buf_t *iov, size_t n) {
    if (t->failed) return TS_EPROTO;
    if (!SSL_is_init_finished(t->ssl)) return TS_ESTATE;
    uint8_t *stage = t->ctx->stage;
    size_t fill = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = (const uint8_t *)iov[i].base;
        size_t len = iov[i].len;
        while (len > 0) {
            if (fill == 0 && len >= TLS_RECORD_MAX) {
                /* whole records straight from the shared buffer */
                size_t direct = len - len % TLS_RECORD_MAX;
                if (write_all(t, p, direct) < 0) return TS_EPROTO;
                p += direct;
                len -= direct;
                continue;
            }
            size_t take = TLS_RECORD_MAX - fill < len ? TLS_RECORD_MAX - fill : len;
            memcpy(stage + fill, p, take);
            fill += take;
            p += take;
            len -= take;
            if (fill == TLS_RECORD_MAX) {
                if (write_all(t, stage, fill) < 0) return TS_EPROTO;
                fill = 0;
            }
        }
    }
    if (fill && write_all(t, stage, fill) < 0) return TS_EPROTO;
    return 0;
}

int ts_tls__close_notify(ts_tls_t *t) {
    if (t->failed || t->notify_sent || !SSL_is_init_finished(t->ssl)) return 0;
    t->notify_sent = 1;
    ERR_clear_error();
    SSL_shutdown(t->ssl); /* 0: ours sent, theirs not yet seen; we do not wait for it */
    ERR_clear_error();
    return BIO_ctrl_pending(t->wbio) > 0;
}

size_t ts_tls__pending(const ts_tls_t *t) { return BIO_ctrl_pending(t->wbio); }

uv_buf_t ts_tls__take(ts_tls_t *t) {
    size_t n = BIO_ctrl_pending(t->wbio);
    if (n > t->ocap) {
        free(t->obuf);
        t->obuf = ts_xmalloc(n);
        t->ocap = n;
    }
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > INT_MAX ? INT_MAX : n - got;
        int r = BIO_read(t->wbio, t->obuf + got, (int)want);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return uv_buf_init((char *)t->obuf, (unsigned)got);
}

void ts_tls__written(ts_tls_t *t) {
    if (t->ocap > OBUF_KEEP) {
        free(t->obuf);
        t->obuf = NULL;
        t->ocap = 0;
    }
}

const char *ts_tls__errmsg(const ts_tls_t *t) { return t->errmsg; }
