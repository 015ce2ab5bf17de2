/* jwt.h - the session tokens tsbench presents to /session: HS256 JWTs with
 * the claims tabsyncd checks (sub, sid, dev, fp, iat, exp), minted with
 * OpenSSL's HMAC before a timed run so the generator's signing cost is never
 * inside the handshake figures. Pure functions, no state. */
#ifndef TSB_JWT_H
#define TSB_JWT_H
#include <stddef.h>
#include <stdint.h>

#define TSB_JWT_MAX 1024 /* room for any token tsbench mints */

/* Unpadded base64url of in[0..n) into out (NUL-terminated); out must hold
 * 4 * ceil(n / 3) + 1 bytes. Returns the length. */
size_t tsb_b64url(const uint8_t *in, size_t n, char *out);

/* Lowercase hex SHA-256 of in[0..n) (the token's fp claim of a device
 * fingerprint) into out[65], NUL-terminated. */
void tsb_sha256_hex(const void *in, size_t n, char out[65]);

/* Signs the JWS b64url(header).b64url(payload).b64url(HMAC-SHA256) with
 * `key`, header and payload taken as given (bytes, not re-encoded). Borrows
 * everything; writes the token NUL-terminated into out. Returns its length,
 * or 0 if it does not fit in `cap` or signing failed. */
size_t tsb_jwt_hs256(const void *key, size_t klen, const char *header, const char *payload,
                     char *out, size_t cap);

/* A /session token: header {"alg":"HS256","typ":"JWT"}, payload
 * {"sub":user,"sid":session,"dev":device,"fp":sha256hex(fingerprint),
 * "iat":iat,"exp":exp}. Ids must already be in the id alphabet (no JSON
 * escaping is done). Returns the length as tsb_jwt_hs256, 0 on failure. */
size_t tsb_jwt_session(const void *key, size_t klen, const char *user, const char *session,
                       const char *device, const char *fingerprint, int64_t iat, int64_t exp,
                       char *out, size_t cap);

#endif
