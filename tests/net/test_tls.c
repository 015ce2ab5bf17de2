/* test_tls.c - tests for src/net/tls.c against a real OpenSSL client held
 * in memory BIOs: certificate loading errors, the handshake and ALPN, reads
 * fed whole, byte by byte and into tiny buffers, writes coalesced into full
 * records, close_notify both ways, and peers that must be refused (plain
 * HTTP, TLS 1.1, writes before the handshake). No sockets: the pump below
 * moves the bytes that tcp.c would move. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include "core/ts_err.h"
#include "net/tls_int.h"

/* TLS 1.3 record overhead with AES-GCM or ChaCha20: header, type, tag. */
#define REC_OVERHEAD 22

static char dir[64];
static char cert_path[128], key_path[128], other_key_path[128], junk_path[128];

static EVP_PKEY *write_key(const char *path) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FILE *f = fopen(path, "w");
    if (!k || !f || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1) abort();
    fclose(f);
    return k;
}

/* A self-signed certificate for CN=127.0.0.1 and its key, in a temp dir. */
static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ts-test-tls-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    snprintf(other_key_path, sizeof other_key_path, "%s/other.pem", dir);
    snprintf(junk_path, sizeof junk_path, "%s/junk.pem", dir);
    EVP_PKEY *k = write_key(key_path);
    EVP_PKEY_free(write_key(other_key_path));
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    if (X509_sign(x, k, EVP_sha256()) <= 0) return -1;
    FILE *f = fopen(cert_path, "w");
    if (!f || PEM_write_X509(f, x) != 1) return -1;
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
    f = fopen(junk_path, "w");
    fputs("not a PEM file\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(cert_path);
    unlink(key_path);
    unlink(other_key_path);
    unlink(junk_path);
    rmdir(dir);
    return 0;
}

/* ---- a client in memory ---- */

typedef struct peer {
    SSL_CTX *cctx;
    SSL *cli;
    BIO *crd, *cwr; /* client side: ciphertext in / out */
    ts_tls_ctx_t *sctx;
    ts_tls_t *srv;
    uint8_t got[1 << 20]; /* plaintext the server read */
    size_t ngot;
    int srv_rc;           /* last ts_tls__read result <= 0 */
    unsigned long cli_err; /* the client's OpenSSL error if its handshake failed */
} peer_t;

static peer_t *peer_new(long max_version, const char *alpn, size_t alpn_len) {
    peer_t *p = calloc(1, sizeof *p);
    char err[256] = "x";
    assert_int_equal(ts_tls__ctx_new(cert_path, key_path, &p->sctx, err, sizeof err), 0);
    p->srv = ts_tls__new(p->sctx);
    assert_non_null(p->srv);
    p->cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(p->cctx, TLS1_VERSION);
    if (max_version) {
        SSL_CTX_set_max_proto_version(p->cctx, max_version);
        SSL_CTX_set_cipher_list(p->cctx, "DEFAULT:@SECLEVEL=0");
    }
    p->cli = SSL_new(p->cctx);
    if (alpn) SSL_set_alpn_protos(p->cli, (const unsigned char *)alpn, (unsigned)alpn_len);
    p->crd = BIO_new(BIO_s_mem());
    p->cwr = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(p->crd, -1);
    SSL_set_bio(p->cli, p->crd, p->cwr);
    SSL_set_connect_state(p->cli);
    return p;
}

static void peer_free(peer_t *p) {
    SSL_free(p->cli);
    SSL_CTX_free(p->cctx);
    ts_tls__free(p->srv);
    ts_tls__ctx_free(p->sctx);
    free(p);
    ERR_clear_error();
}

/* Client ciphertext -> server, `step` bytes per feed (0 = all at once);
 * the server reads into buffers of `cap` bytes until it wants more. */
static void to_server(peer_t *p, size_t step, size_t cap) {
    uint8_t buf[65536];
    int n;
    while ((n = BIO_read(p->cwr, buf, sizeof buf)) > 0) {
        size_t len = (size_t)n;
        for (size_t off = 0; off < len;) {
            size_t k = step && step < len - off ? step : len - off;
            assert_int_equal(ts_tls__feed(p->srv, buf + off, k), 0);
            off += k;
            int r;
            while ((r = ts_tls__read(p->srv, p->got + p->ngot,
                                     cap < sizeof p->got - p->ngot ? cap
                                                                   : sizeof p->got - p->ngot)) > 0)
                p->ngot += (size_t)r;
            p->srv_rc = r;
        }
    }
}

/* Server ciphertext -> client; returns how many bytes went. */
static size_t to_client(peer_t *p) {
    size_t n = ts_tls__pending(p->srv);
    if (!n) return 0;
    uv_buf_t b = ts_tls__take(p->srv);
    assert_int_equal(b.len, n);
    assert_int_equal(ts_tls__pending(p->srv), 0);
    BIO_write(p->crd, b.base, (int)b.len);
    ts_tls__written(p->srv);
    return n;
}

/* Runs the handshake; returns 1 if the client finished it. */
static int handshake(peer_t *p, size_t step) {
    for (int i = 0; i < 10; i++) {
        int r = SSL_do_handshake(p->cli);
        if (r != 1) p->cli_err = ERR_peek_last_error();
        to_server(p, step, 65536);
        if (r == 1) {
            to_client(p);
            return 1;
        }
        if (SSL_get_error(p->cli, r) != SSL_ERROR_WANT_READ) return 0;
        if (!to_client(p)) return 0;
    }
    return 0;
}

/* Everything the client can read now. */
static size_t client_read(peer_t *p, uint8_t *out, size_t cap) {
    size_t got = 0, n = 0;
    while (got < cap && SSL_read_ex(p->cli, out + got, cap - got, &n) == 1) got += n;
    return got;
}

/* ---- tests ---- */

static void test_ctx_errors(void **state) {
    (void)state;
    ts_tls_ctx_t *ctx = NULL;
    char err[300], want[300];

    int rc = ts_tls__ctx_new("/nonexistent/cert.pem", key_path, &ctx, err, sizeof err);
    assert_int_equal(rc, UV_ENOENT);
    assert_string_equal(err, "cannot load TLS certificate /nonexistent/cert.pem: "
                             "No such file or directory");

    rc = ts_tls__ctx_new(junk_path, key_path, &ctx, err, sizeof err);
    assert_int_equal(rc, UV_EINVAL);
    snprintf(want, sizeof want, "cannot load TLS certificate %s: no start line", junk_path);
    assert_string_equal(err, want);

    rc = ts_tls__ctx_new(cert_path, junk_path, &ctx, err, sizeof err);
    assert_int_equal(rc, UV_EINVAL);
    snprintf(want, sizeof want, "cannot load TLS key %s: no PEM key that OpenSSL can read",
             junk_path);
    assert_string_equal(err, want);

    rc = ts_tls__ctx_new(cert_path, other_key_path, &ctx, err, sizeof err);
    assert_int_equal(rc, UV_EINVAL);
    snprintf(want, sizeof want, "cannot load TLS key %s: key values mismatch", other_key_path);
    assert_string_equal(err, want);
    assert_null(ctx);
    assert_int_equal(ERR_peek_error(), 0); /* nothing left behind for the next caller */

    rc = ts_tls__ctx_new(cert_path, key_path, &ctx, NULL, 0);
    assert_int_equal(rc, 0);
    ts_tls__ctx_free(ctx);
}

static void test_handshake_alpn_and_echo(void **state) {
    (void)state;
    static const struct {
        const char *name, *alpn;
        size_t alpn_len;
        const char *want; /* selected protocol, NULL = none */
    } rows[] = {
        {"h2 and http/1.1 offered", "\x02h2\x08http/1.1", 12, "http/1.1"},
        {"only h2 offered", "\x02h2", 3, NULL},
        {"no ALPN", NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        peer_t *p = peer_new(0, rows[i].alpn, rows[i].alpn_len);
        assert_true(handshake(p, 0));
        assert_string_equal(SSL_get_version(p->cli), "TLSv1.3");
        const unsigned char *sel = NULL;
        unsigned sellen = 0;
        SSL_get0_alpn_selected(p->cli, &sel, &sellen);
        if (rows[i].want) {
            assert_int_equal(sellen, strlen(rows[i].want));
            assert_memory_equal(sel, rows[i].want, sellen);
        } else {
            assert_int_equal(sellen, 0);
        }
        size_t n = 0;
        assert_int_equal(SSL_write_ex(p->cli, "GET / HTTP/1.1\r\n\r\n", 18, &n), 1);
        to_server(p, 0, 65536);
        assert_int_equal(p->srv_rc, 0);
        assert_int_equal(p->ngot, 18);
        assert_memory_equal(p->got, "GET / HTTP/1.1\r\n\r\n", 18);
        peer_free(p);
    }
}

/* The same client bytes give the same plaintext however they are split
 * and however small the server's read buffer is. */
static void test_read_splits(void **state) {
    (void)state;
    static uint8_t msg[100000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 7 + i / 251);
    static const struct {
        size_t step, cap;
    } rows[] = {{0, 65536}, {1, 65536}, {7, 3}, {1000, 1}, {16384 + 22, 16384}, {5, 100000}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        peer_t *p = peer_new(0, NULL, 0);
        assert_true(handshake(p, rows[i].step));
        size_t n = 0;
        assert_int_equal(SSL_write_ex(p->cli, msg, sizeof msg, &n), 1);
        assert_int_equal(SSL_write_ex(p->cli, "tail", 4, &n), 1);
        to_server(p, rows[i].step, rows[i].cap);
        assert_int_equal(p->srv_rc, 0);
        assert_int_equal(p->ngot, sizeof msg + 4);
        assert_memory_equal(p->got, msg, sizeof msg);
        assert_memory_equal(p->got + sizeof msg, "tail", 4);
        peer_free(p);
    }
}

/* Many small pieces become one record; big pieces go out whole; the client
 * reads back exactly the concatenation. */
static void test_write_coalesces(void **state) {
    (void)state;
    peer_t *p = peer_new(0, NULL, 0);
    assert_true(handshake(p, 0));
    to_client(p);
    client_read(p, p->got, 1); /* let the client take the session tickets */

    uv_buf_t iov[100];
    char small[100][10];
    for (int i = 0; i < 100; i++) {
        memset(small[i], 'a' + i % 26, sizeof small[i]);
        iov[i] = uv_buf_init(small[i], sizeof small[i]);
    }
    assert_int_equal(ts_tls__write(p->srv, iov, 100), 0);
    size_t ct = ts_tls__pending(p->srv);
    assert_int_equal(ct, 1000 + REC_OVERHEAD); /* one record, not a hundred */
    to_client(p);
    static uint8_t back[200000];
    assert_int_equal(client_read(p, back, sizeof back), 1000);
    for (int i = 0; i < 100; i++) assert_memory_equal(back + i * 10, small[i], 10);

    /* 3 bytes + 40000 + 5: records of 16384 bytes, last one partial */
    static uint8_t big[40000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i % 253);
    uv_buf_t mix[3] = {uv_buf_init("abc", 3), uv_buf_init((char *)big, sizeof big),
                       uv_buf_init("vwxyz", 5)};
    assert_int_equal(ts_tls__write(p->srv, mix, 3), 0);
    size_t total = 3 + sizeof big + 5;
    size_t records = (total + 16383) / 16384;
    assert_int_equal(ts_tls__pending(p->srv), total + records * REC_OVERHEAD);
    to_client(p);
    assert_int_equal(client_read(p, back, sizeof back), total);
    assert_memory_equal(back, "abc", 3);
    assert_memory_equal(back + 3, big, sizeof big);
    assert_memory_equal(back + 3 + sizeof big, "vwxyz", 5);

    /* a piece of exactly two records goes straight through */
    static uint8_t two[32768];
    memset(two, 'z', sizeof two);
    uv_buf_t one = uv_buf_init((char *)two, sizeof two);
    assert_int_equal(ts_tls__write(p->srv, &one, 1), 0);
    assert_int_equal(ts_tls__pending(p->srv), sizeof two + 2 * REC_OVERHEAD);
    to_client(p);
    assert_int_equal(client_read(p, back, sizeof back), sizeof two);
    assert_memory_equal(back, two, sizeof two);
    peer_free(p);
}

static void test_close_notify(void **state) {
    (void)state;
    peer_t *p = peer_new(0, NULL, 0);
    assert_int_equal(ts_tls__close_notify(p->srv), 0); /* not before the handshake */
    assert_true(handshake(p, 0));
    assert_int_equal(ts_tls__close_notify(p->srv), 1);
    assert_int_equal(ts_tls__close_notify(p->srv), 0); /* once */
    to_client(p);
    uint8_t b[16];
    size_t n = 0;
    int r = SSL_read_ex(p->cli, b, sizeof b, &n);
    assert_int_equal(SSL_get_error(p->cli, r), SSL_ERROR_ZERO_RETURN);
    peer_free(p);

    /* the client's close_notify reaches the server as TS_ECLOSED */
    p = peer_new(0, NULL, 0);
    assert_true(handshake(p, 0));
    SSL_shutdown(p->cli);
    to_server(p, 0, 65536);
    assert_int_equal(p->srv_rc, TS_ECLOSED);
    peer_free(p);
}

static void test_refused_peers(void **state) {
    (void)state;
    /* plain HTTP on the TLS port */
    ts_tls_ctx_t *ctx = NULL;
    assert_int_equal(ts_tls__ctx_new(cert_path, key_path, &ctx, NULL, 0), 0);
    ts_tls_t *t = ts_tls__new(ctx);
    uv_buf_t early = uv_buf_init("x", 1);
    assert_int_equal(ts_tls__write(t, &early, 1), TS_ESTATE);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(ts_tls__feed(t, (const uint8_t *)req, strlen(req)), 0);
    uint8_t out[64];
    assert_int_equal(ts_tls__read(t, out, sizeof out), TS_EPROTO);
    assert_string_equal(ts_tls__errmsg(t), "handshake failed: http request");
    assert_int_equal(ts_tls__read(t, out, sizeof out), TS_EPROTO); /* stays failed */
    assert_int_equal(ts_tls__write(t, &early, 1), TS_EPROTO);
    assert_int_equal(ts_tls__close_notify(t), 0);
    assert_int_equal(ERR_peek_error(), 0);
    ts_tls__free(t);

    /* random bytes */
    t = ts_tls__new(ctx);
    uint8_t junk[512];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 97 + 13);
    assert_int_equal(ts_tls__feed(t, junk, sizeof junk), 0);
    assert_int_equal(ts_tls__read(t, out, sizeof out), TS_EPROTO);
    assert_true(strncmp(ts_tls__errmsg(t), "handshake failed: ", 18) == 0);
    ts_tls__free(t);
    ts_tls__ctx_free(ctx);

    /* TLS 1.1 gets a protocol_version alert */
    peer_t *p = peer_new(TLS1_1_VERSION, NULL, 0);
    assert_false(handshake(p, 0));
    assert_int_equal(p->srv_rc, TS_EPROTO);
    assert_string_equal(ts_tls__errmsg(p->srv), "handshake failed: unsupported protocol");
    assert_int_equal(ERR_GET_REASON(p->cli_err), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    peer_free(p);

    /* TLS 1.2 works, with the server's cipher order */
    p = peer_new(TLS1_2_VERSION, NULL, 0);
    SSL_set_cipher_list(p->cli, "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256");
    assert_true(handshake(p, 0));
    assert_string_equal(SSL_get_version(p->cli), "TLSv1.2");
    assert_string_equal(SSL_get_cipher_name(p->cli), "ECDHE-ECDSA-AES128-GCM-SHA256");
    peer_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_handshake_alpn_and_echo),
        cmocka_unit_test(test_read_splits),
        cmocka_unit_test(test_write_coalesces),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_refused_peers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
