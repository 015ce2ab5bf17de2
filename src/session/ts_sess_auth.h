/* ts_sess_auth.h - who may connect to /session: JWT verification (HS256
 * with shared secrets, RS256/ES256 with an identity provider's public key),
 * device binding (the fp claim is the SHA-256 of the device fingerprint),
 * development-only minting, and the constant-time secret compare of the
 * admin API. A verifier is immutable once built: share it between threads.
 *
 * Every refusal carries a reason (ts_sess_reason_t, whose stable name goes
 * into the CONNECT_ERROR data), the claim or field it is about, and a
 * one-line message for people. docs/SECURITY.md explains what each check
 * defends; docs/PROTOCOL.md lists the reasons a client can get. */
#ifndef TS_SESS_AUTH_H
#define TS_SESS_AUTH_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_slice.h"

#define TS_SESS_TOKEN_MAX 8192    /* bytes; a longer token is refused before parsing */
#define TS_SESS_ID_MAX 128        /* bytes of an id (claims sub/sid/dev, device.id, tab.id) */
#define TS_SESS_FP_HEX_LEN 64     /* the fp claim: lowercase hex SHA-256 */
#define TS_SESS_SECRET_MIN 32     /* bytes; HS256 secrets and the admin token */
#define TS_SESS_SECRET_MAX 512    /* bytes */
#define TS_SESS_MAX_SECRETS 4     /* HS256 secrets verified at once (rotation) */
#define TS_SESS_LEEWAY_DEFAULT 30 /* seconds of clock skew tolerated */
#define TS_SESS_LEEWAY_MAX 300
#define TS_SESS_PEM_MAX 65536     /* bytes of a public key file */
#define TS_SESS_MINT_TTL_DEFAULT 3600
#define TS_SESS_MINT_TTL_MAX 2592000 /* 30 days */

/* Why a connection is refused. The name (second column) is the stable,
 * machine-readable identifier sent to clients; the enum values are not. */
#define TS_SESS_REASON_MAP(X)                                                                      \
    X(OK, "ok", "accepted")                                                                        \
    /* the CONNECT auth payload (connect.c) */                                                     \
    X(AUTH_NOT_OBJECT, "auth_not_object", "the CONNECT auth payload is not a JSON object")         \
    X(AUTH_UNKNOWN_FIELD, "auth_unknown_field", "the CONNECT auth payload has an unknown field")   \
    X(AUTH_MISSING_FIELD, "auth_missing_field", "a required field of the auth payload is missing") \
    X(AUTH_WRONG_TYPE, "auth_wrong_type", "a field of the auth payload has the wrong JSON type")   \
    X(AUTH_EMPTY_FIELD, "auth_empty_field", "a field of the auth payload is empty")                \
    X(AUTH_FIELD_TOO_LONG, "auth_field_too_long", "a field of the auth payload is too long")       \
    X(AUTH_BAD_CHARACTERS, "auth_bad_characters",                                                  \
      "a field of the auth payload has characters outside its alphabet")                           \
    X(AUTH_UNKNOWN_DEVICE_TYPE, "auth_unknown_device_type", "device.type is not a known type")     \
    X(AUTH_TOO_MANY_CAPS, "auth_too_many_caps", "device.caps has too many entries")                \
    X(AUTH_UNSUPPORTED_PROTO, "auth_unsupported_proto", "proto is not a supported version")        \
    X(AUTH_BAD_ELECT, "auth_bad_elect",                                                            \
      "elect is not {scopes: [\"session\"|\"device\"], observer, scores} (protocol 4)")           \
    /* the token (auth.c) */                                                                       \
    X(TOKEN_TOO_LARGE, "token_too_large", "the token is larger than 8192 bytes")                   \
    X(TOKEN_MALFORMED, "token_malformed", "the token is not a well-formed JWT")                    \
    X(TOKEN_ALG_NONE, "token_alg_none", "unsigned tokens (alg none) are refused")                  \
    X(TOKEN_ALG_NOT_ALLOWED, "token_alg_not_allowed",                                              \
      "the token's algorithm is not one this server has a key for")                                \
    X(TOKEN_BAD_SIGNATURE, "token_bad_signature", "the token's signature does not verify")         \
    X(TOKEN_EXPIRED, "token_expired", "the token has expired")                                     \
    X(TOKEN_NOT_YET_VALID, "token_not_yet_valid", "the token is not valid yet (nbf)")              \
    X(TOKEN_ISSUED_IN_FUTURE, "token_issued_in_future", "the token was issued in the future")      \
    X(TOKEN_WRONG_AUDIENCE, "token_wrong_audience", "the token is meant for another audience")     \
    X(TOKEN_WRONG_ISSUER, "token_wrong_issuer", "the token comes from another issuer")             \
    X(TOKEN_MISSING_CLAIM, "token_missing_claim", "a required claim is missing from the token")    \
    X(TOKEN_INVALID_CLAIM, "token_invalid_claim", "a claim of the token is invalid")               \
    /* device binding (auth.c) */                                                                  \
    X(DEVICE_MISMATCH, "device_mismatch", "the token was issued for another device")               \
    X(FINGERPRINT_MISMATCH, "fingerprint_mismatch",                                                \
      "the device fingerprint does not match the token")

typedef enum ts_sess_reason {
#define TS_SESS_REASON_ENUM_(name, id, msg) TS_SESS_R_##name,
    TS_SESS_REASON_MAP(TS_SESS_REASON_ENUM_)
#undef TS_SESS_REASON_ENUM_
        TS_SESS_R_COUNT_
} ts_sess_reason_t;

/* "token_expired": the stable identifier for CONNECT_ERROR data. Never NULL
 * ("unknown" for values outside the enum). */
const char *ts_sess_reason_name(ts_sess_reason_t r);
/* The generic message of a reason (the refusal's own msg is more precise). */
const char *ts_sess_reason_text(ts_sess_reason_t r);

/* A refusal: filled by every function below that refuses something. */
typedef struct ts_sess_deny {
    ts_sess_reason_t reason;
    char field[32]; /* the claim ("sid") or payload field ("device.id"), or "" */
    char msg[224];  /* one line for people; never contains a secret or an
                       unverified claim value */
} ts_sess_deny_t;

/* ---- identifiers ----
 * Ids (claims sub, sid, dev; device.id, tab.id) become room and registry
 * names, so they use one alphabet: 1..128 bytes of A-Z a-z 0-9 and . _ : @ -
 * (no spaces, slashes, quotes or control bytes). */
int ts_sess_id_valid(const char *s, size_t len); /* 1 if valid, else 0 */

/* ---- the verifier ---- */

typedef enum ts_sess_alg {
    TS_SESS_ALG_HS256 = 1u << 0,
    TS_SESS_ALG_RS256 = 1u << 1,
    TS_SESS_ALG_ES256 = 1u << 2,
} ts_sess_alg_t;

typedef struct ts_sess_auth ts_sess_auth_t; /* opaque; immutable once built */

typedef struct ts_sess_auth_cfg {
    ts_slice_t secrets[TS_SESS_MAX_SECRETS]; /* HS256 secrets, 32..512 bytes each;
                                                all verify, the first one mints */
    size_t n_secrets;
    const char *public_key_pem; /* SPKI "BEGIN PUBLIC KEY" PEM: RSA >= 2048 bits
                                   enables RS256, EC P-256 enables ES256; NULL = none */
    size_t public_key_len;
    const char *audience; /* expected aud; NULL or "" = not checked */
    const char *issuer;   /* expected iss; NULL or "" = not checked */
    unsigned leeway_s;    /* clock skew tolerated on exp/nbf/iat; 0..300 */
} ts_sess_auth_cfg_t;

/* Zeroes `cfg` and sets the default leeway (30 s). */
void ts_sess_auth_cfg_init(ts_sess_auth_cfg_t *cfg);

/* Builds a verifier; copies (does not borrow) everything in `cfg`. Returns 0
 * with *out set (free with ts_sess_auth_free), or TS_EINVAL with a one-line
 * reason in `err` (a secret of the wrong size, too many secrets, an unusable
 * key, a leeway above 300). A verifier without any key refuses every token
 * with TOKEN_ALG_NOT_ALLOWED. */
int ts_sess_auth_new(const ts_sess_auth_cfg_t *cfg, ts_sess_auth_t **out, char *err,
                     size_t errlen);
void ts_sess_auth_free(ts_sess_auth_t *a);
/* Bit set of the algorithms this verifier accepts (ts_sess_alg_t). */
unsigned ts_sess_auth_algs(const ts_sess_auth_t *a);

/* Checks a public key PEM as ts_sess_auth_new would. Returns TS_SESS_ALG_RS256
 * or TS_SESS_ALG_ES256, or TS_EINVAL with the reason in `err`. */
int ts_sess_auth_key_check(const char *pem, size_t len, char *err, size_t errlen);

/* Reads a small file (a PEM key, a secret) whole. Returns 0 with *out (returns
 * new, NUL-terminated, free with free()) and *len, or TS_EINVAL with "cannot
 * be read (why)" / "is larger than N bytes" in `err`. */
int ts_sess_auth_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
                           size_t errlen);

/* The verified claims; strings are copies (nothing to free). */
typedef struct ts_sess_claims {
    char sub[TS_SESS_ID_MAX + 1]; /* user */
    char sid[TS_SESS_ID_MAX + 1]; /* session */
    char dev[TS_SESS_ID_MAX + 1]; /* device */
    char fp[TS_SESS_FP_HEX_LEN + 1]; /* lowercase hex SHA-256 of the device fingerprint */
    int64_t exp;                  /* seconds since 1970 */
    int64_t nbf, iat;             /* valid when has_nbf / has_iat */
    int has_nbf, has_iat;
    ts_sess_alg_t alg;            /* the algorithm that verified the signature */
} ts_sess_claims_t;

/* Verifies `token` (`len` bytes, need not be NUL-terminated) at `now`
 * (seconds since 1970). Borrows everything. Returns 0 with *out filled, or
 * TS_EAUTH with *deny filled (deny may be NULL). Checks, in order: size,
 * shape and header (alg none, allowed algorithm: the key is picked from the
 * header's alg, never trusted from the token), signature, then the claims:
 * sub/sid/dev/fp/exp present and valid, exp, nbf, iat, aud, iss. */
int ts_sess_auth_verify(const ts_sess_auth_t *a, const char *token, size_t len, int64_t now,
                        ts_sess_claims_t *out, ts_sess_deny_t *deny);

/* 1 if two verified tokens name the same user, session, device and
 * fingerprint (a tab may swap its token only for one with the same identity). */
int ts_sess_claims_same_identity(const ts_sess_claims_t *a, const ts_sess_claims_t *b);

/* ---- device binding ----
 * The client sends device.id and device.fingerprint in its CONNECT payload.
 * fp = lowercase hex of SHA-256 over the fingerprint's exact bytes (its
 * UTF-8 as sent in the JSON string, no normalization, no terminator). */

/* Writes the 64 hex digits and a NUL into out (65 bytes). */
void ts_sess_fp_hash(const void *fingerprint, size_t len, char out[TS_SESS_FP_HEX_LEN + 1]);
/* 1 if `fp_hex` is the hash of `fingerprint`; the comparison takes the same
 * time wherever the first difference is. */
int ts_sess_fp_equal(const char *fp_hex, const void *fingerprint, size_t len);
/* Binds verified claims to the device the client says it is: the dev claim
 * must equal `device_id` and fp must be the hash of `fingerprint`. Returns 0,
 * or TS_EAUTH with DEVICE_MISMATCH or FINGERPRINT_MISMATCH in *deny. */
int ts_sess_auth_bind(const ts_sess_claims_t *c, const char *device_id, size_t id_len,
                      const void *fingerprint, size_t fp_len, ts_sess_deny_t *deny);

/* ---- secrets ---- */

/* 1 if the two byte strings are equal. Takes the same time whatever the
 * contents, and whatever the lengths (both are hashed first), so a timing
 * observer learns neither a prefix nor the length of `want`. For the admin
 * token and any other shared secret. */
int ts_sess_secret_equal(const void *given, size_t glen, const void *want, size_t wlen);

/* ---- minting (development and tests only) ---- */

typedef struct ts_sess_mint {
    const char *user, *session, *device; /* ids: the alphabet above */
    const char *fingerprint;             /* hashed into fp; NULL = the device id is */
    size_t fingerprint_len;              /* 0 with a non-NULL fingerprint = strlen */
    int64_t now;                         /* iat; exp = now + ttl_s */
    uint32_t ttl_s;                      /* 1..TS_SESS_MINT_TTL_MAX; 0 = 3600 */
    const char *audience, *issuer;       /* NULL or "" = claim left out */
} ts_sess_mint_t;

/* Signs an HS256 token with `secret` (32..512 bytes). Returns 0 with *out
 * (returns new, free with free()), or TS_EINVAL with the reason in `err`. */
int ts_sess_auth_mint_hs256(const void *secret, size_t secret_len, const ts_sess_mint_t *m,
                            char **out, char *err, size_t errlen);
/* The same with the verifier's first secret; TS_EINVAL if it has none. */
int ts_sess_auth_mint(const ts_sess_auth_t *a, const ts_sess_mint_t *m, char **out, char *err,
                      size_t errlen);

#endif
