/* tls_int.h - private to net (and compiled into libtabsync, like the
 * codecs): TLS sessions as byte pumps. tcp.c feeds the ciphertext it reads
 * and takes out the ciphertext to write; OpenSSL never touches a socket,
 * so reads, writes and their batching stay in one place for plain and TLS
 * connections alike. Server sessions serve tabsyncd's listeners; client
 * sessions carry libtabsync's wss:// connections. */
#ifndef TS_TLS_INT_H
#define TS_TLS_INT_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ts_tls_ctx ts_tls_ctx_t; /* one per listener: the SSL_CTX */
typedef struct ts_tls ts_tls_t;         /* one per connection */

/* Loads the PEM certificate chain `cert` and private key `key` (TLS 1.2+,
 * server cipher order, no renegotiation, ALPN http/1.1). Returns 0 and
 * *out (free with ts_tls__ctx_free); or a negative libuv error (the file's
 * errno, else UV_EINVAL) with one line in err[0..errlen) saying which file
 * and OpenSSL's reason. */
int ts_tls__ctx_new(const char *cert, const char *key, ts_tls_ctx_t **out, char *err,
                    size_t errlen);
/* A client context (TLS 1.2+, ALPN http/1.1): the server's certificate must
 * chain to a certificate in the PEM file `ca_file`, or, when it is NULL, in
 * the system's trust store; `verify` 0 accepts any certificate (debugging
 * only). Returns 0 and *out, or UV_EINVAL (the file's errno when it cannot
 * be read) with one line in err[0..errlen). */
int ts_tls__client_ctx_new(const char *ca_file, int verify, ts_tls_ctx_t **out, char *err,
                           size_t errlen);
void ts_tls__ctx_free(ts_tls_ctx_t *ctx);

/* Returns new: a server session waiting for a ClientHello, or NULL if
 * OpenSSL is out of memory. */
ts_tls_t *ts_tls__new(ts_tls_ctx_t *ctx);
/* A client session to `host` (a name, or an IP address literal): sends the
 * name as SNI and, when the context verifies, requires the certificate to
 * be for that name or address. Call ts_tls__read once to start it (the
 * ClientHello is then pending). NULL if OpenSSL is out of memory. */
ts_tls_t *ts_tls__new_client(ts_tls_ctx_t *ctx, const char *host);
/* 1 once the handshake is complete (ts_tls__write works from then on). */
int ts_tls__ready(const ts_tls_t *t);
/* The session moved to another loop's net (one loop per core): use that
 * context's scratch memory from now on. */
void ts_tls__rehome(ts_tls_t *t, ts_tls_ctx_t *ctx);
void ts_tls__free(ts_tls_t *t);

/* Hands ciphertext from the peer to the session (copied). Returns 0, or
 * TS_ENOMEM (the session is failed). */
int ts_tls__feed(ts_tls_t *t, const uint8_t *p, size_t len);
/* Runs the handshake as far as the fed bytes allow, then decrypts into
 * out[0..cap). Returns the number of plaintext bytes (> 0); 0 if more
 * ciphertext is needed; TS_ECLOSED if the peer sent close_notify; TS_EPROTO
 * on any TLS failure (ts_tls__errmsg says why; an alert may be waiting in
 * the output). Call until it returns <= 0: decrypted records are not
 * announced otherwise. */
int ts_tls__read(ts_tls_t *t, uint8_t *out, size_t cap);
/* Encrypts iov[0..n) as one stream, coalesced into full-size records.
 * Returns 0, or TS_ESTATE before the handshake is done, or TS_EPROTO. */
int ts_tls__write(ts_tls_t *t, const uv_buf_t *iov, size_t n);
/* Queues a close_notify once (not after a failure or before the handshake
 * is done). Returns 1 if it queued one, else 0. */
int ts_tls__close_notify(ts_tls_t *t);
/* Ciphertext bytes waiting to be sent. */
size_t ts_tls__pending(const ts_tls_t *t);
/* Moves all waiting ciphertext into the session's output buffer and
 * returns it. The bytes stay valid until the next call, which must come
 * after the write of these bytes has completed. */
uv_buf_t ts_tls__take(ts_tls_t *t);
/* After a write of ts_tls__take's bytes completes: gives a big output
 * buffer back so idle connections hold little memory. */
void ts_tls__written(ts_tls_t *t);
/* Why the last TS_EPROTO happened ("" if none). */
const char *ts_tls__errmsg(const ts_tls_t *t);

#endif
