/* test_auth.c - the /session token verifier: one table row per way a token
 * is accepted or refused (every refusal reason at least once, checked at the
 * end), HS256/RS256/ES256 tokens made here (by hand for the forged ones, with
 * libjwt for the rest) and by PyJWT (independent implementation), leeway
 * edges, the HS/RS confusion, device binding, minting, the constant-time
 * compares, and verification from several threads at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <jwt.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "session/ts_sess_auth.h"

#define NOW 1700000000LL
#define S1 "test-secret-one-0123456789abcdef-0123456789"
#define S2 "test-secret-two-0123456789abcdef-0123456789"
#define S_OTHER "not-the-configured-secret-0123456789abcdef"
/* sha256("fp-laptop-1") and sha256("fp-phone-7") */
#define FP_LAPTOP "358dc59f6b853a2640bffd6ec52f75b240d5fa789cb99ca37bf5bb4ddd0a8c82"
#define FP_PHONE "850c48a00bd1795db561cefe0eac6f8bdc29ee523533c5b556a47912d3dbca96"

/* The claims of a good token, with the given extra members (or overrides:
 * later duplicates are not allowed, so rows that change a claim spell the
 * whole payload). */
#define GOOD_CLAIMS                                                                                \
    "\"sub\":\"alice\",\"sid\":\"s1\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP "\""
#define GOOD GOOD_CLAIMS ",\"exp\":1700003600,\"iat\":1700000000"
#define P(...) "{" __VA_ARGS__ "}"

/* ---- key files (tests/session/keys, next to this file) ---- */

static char *read_key(const char *name, size_t *len) {
    char here[1024], path[1200];
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(path, sizeof path, "%s/keys/%s", dirname(here), name);
    char *buf = NULL, err[160];
    size_t n = 0;
    if (ts_sess_auth_read_file(path, TS_SESS_PEM_MAX, &buf, &n, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
    if (len) *len = n;
    return buf;
}

/* ---- verifiers ---- */

enum { V_HS, V_RS, V_ES, V_HS_RS, V_AUD, V_NOKEY, V_LEEWAY0, V_COUNT };
static ts_sess_auth_t *verifiers[V_COUNT];
static char *rsa_pub, *rsa_priv, *rsa2_priv, *ec_pub, *ec_priv;
static size_t rsa_pub_len, rsa_priv_len, rsa2_priv_len, ec_pub_len, ec_priv_len;

static ts_sess_auth_t *make_verifier(int kind) {
    ts_sess_auth_cfg_t c;
    ts_sess_auth_cfg_init(&c);
    switch (kind) {
    case V_HS:
        c.secrets[0] = TS_SLICE_LIT(S1);
        c.secrets[1] = TS_SLICE_LIT(S2);
        c.n_secrets = 2;
        break;
    case V_RS:
        c.public_key_pem = rsa_pub;
        c.public_key_len = rsa_pub_len;
        break;
    case V_ES:
        c.public_key_pem = ec_pub;
        c.public_key_len = ec_pub_len;
        break;
    case V_HS_RS:
        c.secrets[0] = TS_SLICE_LIT(S1);
        c.n_secrets = 1;
        c.public_key_pem = rsa_pub;
        c.public_key_len = rsa_pub_len;
        break;
    case V_AUD:
        c.secrets[0] = TS_SLICE_LIT(S1);
        c.n_secrets = 1;
        c.audience = "tabsync-api";
        c.issuer = "https://idp.example";
        break;
    case V_NOKEY:
        break;
    case V_LEEWAY0:
        c.secrets[0] = TS_SLICE_LIT(S1);
        c.n_secrets = 1;
        c.leeway_s = 0;
        break;
    }
    ts_sess_auth_t *a = NULL;
    char err[256] = "";
    if (ts_sess_auth_new(&c, &a, err, sizeof err) != 0) fail_msg("verifier %d: %s", kind, err);
    return a;
}

static int setup(void **state) {
    (void)state;
    rsa_pub = read_key("rsa_public.pem", &rsa_pub_len);
    rsa_priv = read_key("rsa_private.pem", &rsa_priv_len);
    rsa2_priv = read_key("rsa2_private.pem", &rsa2_priv_len);
    ec_pub = read_key("ec_public.pem", &ec_pub_len);
    ec_priv = read_key("ec_private.pem", &ec_priv_len);
    for (int i = 0; i < V_COUNT; i++) verifiers[i] = make_verifier(i);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < V_COUNT; i++) ts_sess_auth_free(verifiers[i]);
    free(rsa_pub);
    free(rsa_priv);
    free(rsa2_priv);
    free(ec_pub);
    free(ec_priv);
    return 0;
}

/* ---- token builders ---- */

static void b64url(const void *in, size_t n, char *out) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const uint8_t *p = in;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
    }
    out[o] = '\0';
}

/* header.payload, HMAC-SHA256 with `secret` (NULL: empty signature). */
static char *hand_hs256(const char *header, const char *payload, const void *secret,
                        size_t secret_len) {
    char *tok = malloc(16384);
    b64url(header, strlen(header), tok);
    strcat(tok, ".");
    b64url(payload, strlen(payload), tok + strlen(tok));
    size_t in_len = strlen(tok);
    strcat(tok, ".");
    if (secret) {
        uint8_t mac[32];
        unsigned ml = 0;
        assert_non_null(HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)tok, in_len,
                             mac, &ml));
        b64url(mac, ml, tok + strlen(tok));
    }
    return tok;
}

/* With libjwt: `claims` JSON, `alg`, `key` (secret or private key PEM). */
static char *lib_token(const char *claims, jwt_alg_t alg, const void *key, size_t key_len) {
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(jwt_set_alg(j, alg, key, (int)key_len), 0);
    char *t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

typedef enum sign {
    T_HS,        /* HS256 by hand with S1, header `hdr` or the default */
    T_HS2,       /* ... with S2 (the second, rotated secret) */
    T_HS_OTHER,  /* ... with a secret the server does not have */
    T_LIB_HS,    /* libjwt HS256 with S1 */
    T_RS,        /* libjwt RS256 with rsa_private.pem */
    T_RS_OTHER,  /* libjwt RS256 with rsa2_private.pem (another identity provider) */
    T_ES,        /* libjwt ES256 with ec_private.pem */
    T_CONFUSE,   /* libjwt HS256 keyed with the bytes of rsa_public.pem */
    T_NOSIG,     /* header.payload. with no signature (alg from `hdr`) */
    T_TAMPER_SIG,     /* a valid S1 token with one signature character changed */
    T_TAMPER_PAYLOAD, /* S1 signature of GOOD, payload replaced by `pay` */
    T_RAW,       /* `pay` is the whole token */
    T_BIG,       /* 8193 bytes */
    T_EXACT_MAX, /* 8192 bytes: not too large, but not a JWT either */
} sign_t;

static char *build(sign_t s, const char *hdr, const char *pay) {
    const char *h = hdr ? hdr : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    switch (s) {
    case T_HS:
        return hand_hs256(h, pay, S1, strlen(S1));
    case T_HS2:
        return hand_hs256(h, pay, S2, strlen(S2));
    case T_HS_OTHER:
        return hand_hs256(h, pay, S_OTHER, strlen(S_OTHER));
    case T_LIB_HS:
        return lib_token(pay, JWT_ALG_HS256, S1, strlen(S1));
    case T_RS:
        return lib_token(pay, JWT_ALG_RS256, rsa_priv, rsa_priv_len);
    case T_RS_OTHER:
        return lib_token(pay, JWT_ALG_RS256, rsa2_priv, rsa2_priv_len);
    case T_ES:
        return lib_token(pay, JWT_ALG_ES256, ec_priv, ec_priv_len);
    case T_CONFUSE:
        return lib_token(pay, JWT_ALG_HS256, rsa_pub, rsa_pub_len);
    case T_NOSIG:
        return hand_hs256(h, pay, NULL, 0);
    case T_TAMPER_SIG: {
        char *t = hand_hs256(h, pay, S1, strlen(S1));
        char *c = t + strlen(t) - 5;
        *c = *c == 'A' ? 'B' : 'A';
        return t;
    }
    case T_TAMPER_PAYLOAD: {
        char *good = hand_hs256(h, P(GOOD), S1, strlen(S1));
        char *forged = hand_hs256(h, pay, NULL, 0);
        strcat(forged, strrchr(good, '.') + 1);
        free(good);
        return forged;
    }
    case T_RAW:
        return strdup(pay);
    case T_BIG:
    case T_EXACT_MAX: {
        size_t n = s == T_BIG ? 8193 : 8192;
        char *t = malloc(n + 1);
        memset(t, 'a', n);
        t[n] = '\0';
        return t;
    }
    }
    return NULL;
}

/* ---- the table ---- */

#define OK_ TS_SESS_R_OK
static const struct tok_case {
    const char *name;
    int verifier;
    sign_t sign;
    const char *hdr; /* NULL: {"alg":"HS256","typ":"JWT"} for hand-made tokens */
    const char *pay;
    long long now;
    ts_sess_reason_t want;
    const char *field;    /* expected deny.field, NULL = not checked */
    const char *fragment; /* expected in deny.msg, NULL = not checked */
} cases[] = {
    /* accepted */
    {"HS256 by hand", V_HS, T_HS, NULL, P(GOOD), NOW, OK_, NULL, NULL},
    {"HS256 by libjwt", V_HS, T_LIB_HS, NULL, P(GOOD), NOW, OK_, NULL, NULL},
    {"HS256 with the second secret (rotation)", V_HS, T_HS2, NULL, P(GOOD), NOW, OK_, NULL, NULL},
    {"RS256", V_RS, T_RS, NULL, P(GOOD), NOW, OK_, NULL, NULL},
    {"ES256", V_ES, T_ES, NULL, P(GOOD), NOW, OK_, NULL, NULL},
    {"RS256 where HS256 is also configured", V_HS_RS, T_RS, NULL, P(GOOD), NOW, OK_, NULL, NULL},
    {"HS256 where RS256 is also configured", V_HS_RS, T_HS, NULL, P(GOOD), NOW, OK_, NULL, NULL},
    {"PyJWT RS256 (independent implementation)", V_RS, T_RAW, NULL,
     "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
     "eyJzdWIiOiJhbGljZSIsInNpZCI6InMxIiwiZGV2IjoibGFwdG9wLTEiLCJmcCI6IjM1OGRjNTlmNmI4NTNhMjY0MGJm"
     "ZmQ2ZWM1MmY3NWIyNDBkNWZhNzg5Y2I5OWNhMzdiZjViYjRkZGQwYThjODIiLCJleHAiOjQxMDI0NDQ4MDAsImlhdCI6"
     "MTcwMDAwMDAwMH0.J0W04iIeR34uIBUs0lOu8t_DhfETlR-u34RzjY2t2IAUe29IANuDNQJeaRtuwFnON5gapDqZvbIS"
     "In-oml_jM_ti0lRecS8WaUD6o93IojrCO00yrZG_9w5oU1974tbrH8StFN38mqzgOiV0AU6CZ_WIK2tA7--mO38PWoQq"
     "QN4fTz4Old0QEsiInQ5UBfYNFxGfb6mjGOEK6-sWe4eV89yYC0NtNJqOr3xPpHnVGmcxZ-dTfKuQ9Cfa_Z86lSAtabPB"
     "uEy8yFSYdkdTZRt-epk_VqbqhsXhB7BrPpHyoKJdpQURy_r-HMOJp9cUflFu4Ekv7gwUtaNqMIHVbOTmvw",
     NOW, OK_, NULL, NULL},
    {"PyJWT ES256 (raw R||S signature)", V_ES, T_RAW, NULL,
     "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9."
     "eyJzdWIiOiJhbGljZSIsInNpZCI6InMxIiwiZGV2IjoibGFwdG9wLTEiLCJmcCI6IjM1OGRjNTlmNmI4NTNhMjY0MGJm"
     "ZmQ2ZWM1MmY3NWIyNDBkNWZhNzg5Y2I5OWNhMzdiZjViYjRkZGQwYThjODIiLCJleHAiOjQxMDI0NDQ4MDAsImlhdCI6"
     "MTcwMDAwMDAwMH0.8dkV29YziMsB_V5VuTlFQLj5KUANOUo5dBSNsMlA3e5v1mo7MLQ5XcXM1RcJ7QIiy8eA-51IurE-"
     "frieEGhWcg",
     NOW, OK_, NULL, NULL},
    {"aud string and iss match", V_AUD, T_HS, NULL,
     P(GOOD ",\"aud\":\"tabsync-api\",\"iss\":\"https://idp.example\""), NOW, OK_, NULL, NULL},
    {"aud array includes ours", V_AUD, T_HS, NULL,
     P(GOOD ",\"aud\":[\"x\",\"tabsync-api\"],\"iss\":\"https://idp.example\""), NOW, OK_, NULL,
     NULL},
    {"aud/iss not configured: ignored", V_HS, T_HS, NULL,
     P(GOOD ",\"aud\":\"elsewhere\",\"iss\":\"someone\""), NOW, OK_, NULL, NULL},
    {"exp as a fractional number", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":1700003600.5"), NOW,
     OK_, NULL, NULL},
    {"no iat, nbf in the past", V_HS, T_HS, NULL,
     P(GOOD_CLAIMS ",\"exp\":1700003600,\"nbf\":1699990000"), NOW, OK_, NULL, NULL},
    {"extra claims are ignored", V_HS, T_HS, NULL, P(GOOD ",\"jti\":\"x\",\"role\":[1,2]"), NOW,
     OK_, NULL, NULL},
    {"ids of 128 bytes, full alphabet", V_HS, T_HS, NULL,
     P("\"sub\":\"user.name_1:x@example-org\",\"sid\":\"" /* 128 x 's' */
       "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
       "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
       "\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP "\",\"exp\":1700003600"),
     NOW, OK_, NULL, NULL},

    /* leeway edges (30 s by default; now >= exp + leeway is expired) */
    {"exp 29 s ago: within leeway", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":1699999971"), NOW,
     OK_, NULL, NULL},
    {"exp 30 s ago: expired", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":1699999970"), NOW,
     TS_SESS_R_TOKEN_EXPIRED, "exp", "token expired at 1699999970 (now 1700000000, leeway 30 s)"},
    {"exp long ago", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":1600000000"), NOW,
     TS_SESS_R_TOKEN_EXPIRED, "exp", "get a new token"},
    {"leeway 0: exp == now is expired", V_LEEWAY0, T_HS, NULL,
     P(GOOD_CLAIMS ",\"exp\":1700000000"), NOW, TS_SESS_R_TOKEN_EXPIRED, "exp", "leeway 0 s"},
    {"leeway 0: exp == now + 1 is fine", V_LEEWAY0, T_HS, NULL,
     P(GOOD_CLAIMS ",\"exp\":1700000001"), NOW, OK_, NULL, NULL},
    {"nbf 30 s ahead: within leeway", V_HS, T_HS, NULL,
     P(GOOD ",\"nbf\":1700000030"), NOW, OK_, NULL, NULL},
    {"nbf 31 s ahead: not yet valid", V_HS, T_HS, NULL, P(GOOD ",\"nbf\":1700000031"), NOW,
     TS_SESS_R_TOKEN_NOT_YET_VALID, "nbf", "not valid before 1700000031"},
    {"leeway 0: nbf 1 s ahead", V_LEEWAY0, T_HS, NULL, P(GOOD ",\"nbf\":1700000001"), NOW,
     TS_SESS_R_TOKEN_NOT_YET_VALID, "nbf", NULL},
    {"iat 30 s ahead: within leeway", V_HS, T_HS, NULL,
     P(GOOD_CLAIMS ",\"exp\":1700003600,\"iat\":1700000030"), NOW, OK_, NULL, NULL},
    {"iat 31 s ahead: issued in the future", V_HS, T_HS, NULL,
     P(GOOD_CLAIMS ",\"exp\":1700003600,\"iat\":1700000031"), NOW,
     TS_SESS_R_TOKEN_ISSUED_IN_FUTURE, "iat", "in the future"},

    /* size and shape */
    {"8193 bytes: refused before parsing", V_HS, T_BIG, NULL, NULL, NOW,
     TS_SESS_R_TOKEN_TOO_LARGE, "token", "token is 8193 bytes; at most 8192"},
    {"8192 bytes: parsed (and malformed)", V_HS, T_EXACT_MAX, NULL, NULL, NOW,
     TS_SESS_R_TOKEN_MALFORMED, "token", "three base64url parts"},
    {"empty", V_HS, T_RAW, NULL, "", NOW, TS_SESS_R_TOKEN_MALFORMED, "token", "empty"},
    {"one part", V_HS, T_RAW, NULL, "eyJhbGciOiJIUzI1NiJ9", NOW, TS_SESS_R_TOKEN_MALFORMED,
     "token", NULL},
    {"four parts", V_HS, T_RAW, NULL, "a.b.c.d", NOW, TS_SESS_R_TOKEN_MALFORMED, "token", NULL},
    {"empty header", V_HS, T_RAW, NULL, ".eyJ9.x", NOW, TS_SESS_R_TOKEN_MALFORMED, "token", NULL},
    {"empty payload", V_HS, T_RAW, NULL, "eyJhbGciOiJIUzI1NiJ9..x", NOW,
     TS_SESS_R_TOKEN_MALFORMED, "token", NULL},
    {"Bearer prefix", V_HS, T_RAW, NULL, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", NOW,
     TS_SESS_R_TOKEN_MALFORMED, "token", "byte 0x20"},
    {"padding is not base64url", V_HS, T_RAW, NULL, "eyJhbGciOiJIUzI1NiJ9.e30=.x", NOW,
     TS_SESS_R_TOKEN_MALFORMED, "token", "byte 0x3d"},
    {"header not JSON", V_HS, T_HS, "alg=HS256", P(GOOD), NOW, TS_SESS_R_TOKEN_MALFORMED, "token",
     "header"},
    {"header a JSON array", V_HS, T_HS, "[\"HS256\"]", P(GOOD), NOW, TS_SESS_R_TOKEN_MALFORMED,
     "token", "header"},
    {"header with a duplicate alg", V_HS, T_HS, "{\"alg\":\"none\",\"alg\":\"HS256\"}", P(GOOD),
     NOW, TS_SESS_R_TOKEN_MALFORMED, "token", "header"},
    {"header without alg", V_HS, T_HS, "{\"typ\":\"JWT\"}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_MALFORMED, "alg", "no \"alg\""},
    {"alg not a string", V_HS, T_HS, "{\"alg\":256}", P(GOOD), NOW, TS_SESS_R_TOKEN_MALFORMED,
     "alg", NULL},
    {"crit extension", V_HS, T_HS, "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_MALFORMED, "crit", "critical"},
    {"payload not JSON", V_HS, T_HS, NULL, "sub=alice", NOW, TS_SESS_R_TOKEN_MALFORMED, "token",
     "payload"},
    {"payload a JSON string", V_HS, T_HS, NULL, "\"alice\"", NOW, TS_SESS_R_TOKEN_MALFORMED,
     "token", "payload"},
    {"payload with a duplicate sub", V_HS, T_HS, NULL, P(GOOD ",\"sub\":\"mallory\""), NOW,
     TS_SESS_R_TOKEN_MALFORMED, "token", "payload"},

    /* alg none */
    {"alg none, no signature", V_HS, T_NOSIG, "{\"alg\":\"none\"}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NONE, "alg", "unsigned"},
    {"alg NONE", V_HS, T_NOSIG, "{\"alg\":\"NONE\",\"typ\":\"JWT\"}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NONE, "alg", NULL},
    {"alg nOnE with an HS256 signature", V_HS, T_HS, "{\"alg\":\"nOnE\"}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NONE, "alg", NULL},
    {"alg none on an RS256 server", V_RS, T_NOSIG, "{\"alg\":\"none\"}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NONE, "alg", NULL},

    /* algorithm not allowed for the configured keys */
    {"HS/RS confusion: HS256 keyed with the RSA public key", V_RS, T_CONFUSE, NULL, P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NOT_ALLOWED, "alg", "\"HS256\" is not accepted here (accepted: RS256)"},
    {"HS256 on an ES256-only server", V_ES, T_HS, NULL, P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NOT_ALLOWED, "alg", "accepted: ES256"},
    {"RS256 on an HS256-only server", V_HS, T_RS, NULL, P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NOT_ALLOWED, "alg", "accepted: HS256"},
    {"ES256 on an RS256 server", V_RS, T_ES, NULL, P(GOOD), NOW, TS_SESS_R_TOKEN_ALG_NOT_ALLOWED,
     "alg", NULL},
    {"HS384", V_HS, T_HS, "{\"alg\":\"HS384\"}", P(GOOD), NOW, TS_SESS_R_TOKEN_ALG_NOT_ALLOWED,
     "alg", "\"HS384\""},
    {"alg in lower case", V_HS, T_HS, "{\"alg\":\"hs256\"}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NOT_ALLOWED, "alg", NULL},
    {"alg with a NUL inside (JSON without NULs only)", V_HS, T_HS,
     "{\"alg\":\"HS256\\u0000x\"}", P(GOOD), NOW, TS_SESS_R_TOKEN_MALFORMED, "token", NULL},
    {"no key configured at all", V_NOKEY, T_HS, NULL, P(GOOD), NOW,
     TS_SESS_R_TOKEN_ALG_NOT_ALLOWED, "alg", "no verification key is configured"},

    /* bad signature */
    {"HS/RS confusion where HS256 is allowed: the PEM is not our secret", V_HS_RS, T_CONFUSE,
     NULL, P(GOOD), NOW, TS_SESS_R_TOKEN_BAD_SIGNATURE, "token", "HS256 secret"},
    {"unknown secret", V_HS, T_HS_OTHER, NULL, P(GOOD), NOW, TS_SESS_R_TOKEN_BAD_SIGNATURE,
     "token", "does not verify"},
    {"signature changed", V_HS, T_TAMPER_SIG, NULL, P(GOOD), NOW, TS_SESS_R_TOKEN_BAD_SIGNATURE,
     "token", NULL},
    {"payload changed after signing", V_HS, T_TAMPER_PAYLOAD, NULL,
     P("\"sub\":\"mallory\",\"sid\":\"s1\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP
       "\",\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_BAD_SIGNATURE, "token", NULL},
    {"HS256 without a signature", V_HS, T_NOSIG, NULL, P(GOOD), NOW,
     TS_SESS_R_TOKEN_BAD_SIGNATURE, "token", NULL},
    {"signature of the wrong length", V_HS, T_RAW, NULL,
     "eyJhbGciOiJIUzI1NiJ9.e30.AAAA", NOW, TS_SESS_R_TOKEN_BAD_SIGNATURE, "token", NULL},
    {"RS256 from another identity provider", V_RS, T_RS_OTHER, NULL, P(GOOD), NOW,
     TS_SESS_R_TOKEN_BAD_SIGNATURE, "token", "RS256 public key"},
    {"RS256 without a signature", V_RS, T_NOSIG, "{\"alg\":\"RS256\"}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_BAD_SIGNATURE, "token", NULL},
    {"ES256 signed with the HS secret", V_ES, T_HS, "{\"alg\":\"ES256\"}", P(GOOD), NOW,
     TS_SESS_R_TOKEN_BAD_SIGNATURE, "token", "ES256 public key"},

    /* audience and issuer */
    {"wrong audience", V_AUD, T_HS, NULL,
     P(GOOD ",\"aud\":\"other-api\",\"iss\":\"https://idp.example\""), NOW,
     TS_SESS_R_TOKEN_WRONG_AUDIENCE, "aud", "does not include \"tabsync-api\""},
    {"audience array without ours", V_AUD, T_HS, NULL,
     P(GOOD ",\"aud\":[\"a\",\"b\"],\"iss\":\"https://idp.example\""), NOW,
     TS_SESS_R_TOKEN_WRONG_AUDIENCE, "aud", NULL},
    {"audience prefix only", V_AUD, T_HS, NULL,
     P(GOOD ",\"aud\":\"tabsync\",\"iss\":\"https://idp.example\""), NOW,
     TS_SESS_R_TOKEN_WRONG_AUDIENCE, "aud", NULL},
    {"audience missing", V_AUD, T_HS, NULL, P(GOOD ",\"iss\":\"https://idp.example\""), NOW,
     TS_SESS_R_TOKEN_MISSING_CLAIM, "aud", "expects \"tabsync-api\""},
    {"audience a number", V_AUD, T_HS, NULL, P(GOOD ",\"aud\":7,\"iss\":\"https://idp.example\""),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "aud", NULL},
    {"wrong issuer", V_AUD, T_HS, NULL,
     P(GOOD ",\"aud\":\"tabsync-api\",\"iss\":\"https://evil.example\""), NOW,
     TS_SESS_R_TOKEN_WRONG_ISSUER, "iss",
     "token issuer \"https://evil.example\" is not \"https://idp.example\""},
    {"issuer missing", V_AUD, T_HS, NULL, P(GOOD ",\"aud\":\"tabsync-api\""), NOW,
     TS_SESS_R_TOKEN_MISSING_CLAIM, "iss", NULL},
    {"issuer not a string", V_AUD, T_HS, NULL, P(GOOD ",\"aud\":\"tabsync-api\",\"iss\":[]"), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "iss", NULL},

    /* missing claims, each named */
    {"no sub", V_HS, T_HS, NULL,
     P("\"sid\":\"s1\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP "\",\"exp\":1700003600"), NOW,
     TS_SESS_R_TOKEN_MISSING_CLAIM, "sub", "token has no \"sub\" claim"},
    {"no sid", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP "\",\"exp\":1700003600"), NOW,
     TS_SESS_R_TOKEN_MISSING_CLAIM, "sid", "\"sid\""},
    {"no dev", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\"s1\",\"fp\":\"" FP_LAPTOP "\",\"exp\":1700003600"), NOW,
     TS_SESS_R_TOKEN_MISSING_CLAIM, "dev", "\"dev\""},
    {"no fp", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\"s1\",\"dev\":\"laptop-1\",\"exp\":1700003600"), NOW,
     TS_SESS_R_TOKEN_MISSING_CLAIM, "fp", "\"fp\""},
    {"no exp", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"iat\":1700000000"), NOW,
     TS_SESS_R_TOKEN_MISSING_CLAIM, "exp", "\"exp\""},
    {"empty claims", V_HS, T_HS, NULL, "{}", NOW, TS_SESS_R_TOKEN_MISSING_CLAIM, "sub", NULL},

    /* invalid claims, each named */
    {"sub empty", V_HS, T_HS, NULL,
     P("\"sub\":\"\",\"sid\":\"s1\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP
       "\",\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "sub", "A-Z a-z 0-9 . _ : @ -"},
    {"sub with a space", V_HS, T_HS, NULL,
     P("\"sub\":\"al ice\",\"sid\":\"s1\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP
       "\",\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "sub", NULL},
    {"sid with a slash (room name injection)", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\"s1/../s2\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP
       "\",\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "sid", NULL},
    {"sid of 129 bytes", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\""
       "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
       "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
       "\",\"dev\":\"laptop-1\",\"fp\":\"" FP_LAPTOP "\",\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "sid", "1-128"},
    {"dev a number", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\"s1\",\"dev\":7,\"fp\":\"" FP_LAPTOP "\",\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "dev", "not a string"},
    {"dev with unicode", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\"s1\",\"dev\":\"lapt\\u00f6p\",\"fp\":\"" FP_LAPTOP
       "\",\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "dev", NULL},
    {"fp in upper case", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\"s1\",\"dev\":\"laptop-1\",\"fp\":"
       "\"358DC59F6B853A2640BFFD6EC52F75B240D5FA789CB99CA37BF5BB4DDD0A8C82\",\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "fp", "64 lowercase hex"},
    {"fp too short", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\"s1\",\"dev\":\"laptop-1\",\"fp\":\"358dc59f\","
       "\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "fp", NULL},
    {"fp the raw fingerprint, not its hash", V_HS, T_HS, NULL,
     P("\"sub\":\"alice\",\"sid\":\"s1\",\"dev\":\"laptop-1\",\"fp\":\"fp-laptop-1\","
       "\"exp\":1700003600"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "fp", NULL},
    {"exp a string", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":\"1700003600\""), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "exp", "not a date"},
    {"exp negative", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":-1"), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "exp", NULL},
    {"exp beyond year 9999", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":9223372036854775807"), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "exp", NULL},
    /* Dates beyond 64 bits are numbers like any other: out of range, not a
     * malformed payload (issue #14; docs/SECURITY.md "Claims"). */
    {"exp beyond 64 bits", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":184467440737095516160"),
     NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "exp", "not a date"},
    {"exp beyond 64 bits, negative", V_HS, T_HS, NULL,
     P(GOOD_CLAIMS ",\"exp\":-184467440737095516160"), NOW, TS_SESS_R_TOKEN_INVALID_CLAIM, "exp",
     "not a date"},
    {"nbf beyond 64 bits", V_HS, T_HS, NULL, P(GOOD ",\"nbf\":184467440737095516160"), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "nbf", "not a date"},
    {"iat beyond 64 bits", V_HS, T_HS, NULL,
     P(GOOD_CLAIMS ",\"exp\":1700003600,\"iat\":99999999999999999999999999999999"), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "iat", "not a date"},
    {"a claim we ignore beyond 64 bits", V_HS, T_HS, NULL,
     P(GOOD ",\"counter\":184467440737095516160"), NOW, OK_, NULL, NULL},
    {"exp 1e19 as a real", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":1e19"), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "exp", NULL},
    /* beyond a double (JSON.parse reads Infinity): the payload cannot be read */
    {"exp beyond a double", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":1e400"), NOW,
     TS_SESS_R_TOKEN_MALFORMED, "token", "payload"},
    {"exp true", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":true"), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "exp", NULL},
    {"nbf a string", V_HS, T_HS, NULL, P(GOOD ",\"nbf\":\"soon\""), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "nbf", NULL},
    {"iat null", V_HS, T_HS, NULL, P(GOOD_CLAIMS ",\"exp\":1700003600,\"iat\":null"), NOW,
     TS_SESS_R_TOKEN_INVALID_CLAIM, "iat", NULL},
};

static void check_deny(const char *name, const ts_sess_deny_t *d) {
    if (!d->msg[0]) fail_msg("%s: empty message", name);
    if (strchr(d->msg, '\n')) fail_msg("%s: message has a newline: %s", name, d->msg);
    if (strstr(d->msg, S1) || strstr(d->msg, S2) || strstr(d->msg, "BEGIN"))
        fail_msg("%s: message leaks a key: %s", name, d->msg);
}

static void test_token_table(void **state) {
    (void)state;
    int seen[TS_SESS_R_COUNT_] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct tok_case *k = &cases[i];
        char *tok = build(k->sign, k->hdr, k->pay);
        ts_sess_claims_t c;
        ts_sess_deny_t d;
        memset(&d, 0x5a, sizeof d);
        int rc = ts_sess_auth_verify(verifiers[k->verifier], tok, strlen(tok), k->now, &c, &d);
        if (k->want == TS_SESS_R_OK) {
            if (rc != 0) fail_msg("%s: refused (%s: %s)", k->name, ts_sess_reason_name(d.reason),
                                  d.msg);
            if (strlen(c.fp) != 64) fail_msg("%s: fp not copied", k->name);
        } else {
            if (rc != TS_EAUTH) fail_msg("%s: rc %s (want TS_EAUTH)", k->name, ts_err_name(rc));
            if (d.reason != k->want)
                fail_msg("%s: reason %s (want %s): %s", k->name, ts_sess_reason_name(d.reason),
                         ts_sess_reason_name(k->want), d.msg);
            if (k->field && strcmp(d.field, k->field) != 0)
                fail_msg("%s: field \"%s\" (want \"%s\")", k->name, d.field, k->field);
            if (k->fragment && !strstr(d.msg, k->fragment))
                fail_msg("%s: message \"%s\" lacks \"%s\"", k->name, d.msg, k->fragment);
            check_deny(k->name, &d);
            /* A refusal leaves nothing behind in the output. */
            if (c.sub[0] || c.exp) fail_msg("%s: claims filled on refusal", k->name);
            /* deny may be NULL. */
            assert_int_equal(ts_sess_auth_verify(verifiers[k->verifier], tok, strlen(tok), k->now,
                                                 &c, NULL),
                             TS_EAUTH);
        }
        seen[k->want]++;
        free(tok);
    }
    /* Every token reason has at least one row. */
    for (int r = TS_SESS_R_TOKEN_TOO_LARGE; r <= TS_SESS_R_TOKEN_INVALID_CLAIM; r++)
        if (!seen[r]) fail_msg("no row for %s", ts_sess_reason_name((ts_sess_reason_t)r));
    print_message("%zu token cases\n", sizeof cases / sizeof cases[0]);
}

/* The claims come back as copies, with the algorithm that verified them. */
static void test_claims_out(void **state) {
    (void)state;
    char *tok = build(T_ES, NULL, P(GOOD ",\"nbf\":1699999000"));
    ts_sess_claims_t c;
    ts_sess_deny_t d;
    assert_int_equal(ts_sess_auth_verify(verifiers[V_ES], tok, strlen(tok), NOW, &c, &d), 0);
    free(tok);
    assert_string_equal(c.sub, "alice");
    assert_string_equal(c.sid, "s1");
    assert_string_equal(c.dev, "laptop-1");
    assert_string_equal(c.fp, FP_LAPTOP);
    assert_int_equal(c.exp, 1700003600);
    assert_int_equal(c.has_iat, 1);
    assert_int_equal(c.iat, 1700000000);
    assert_int_equal(c.has_nbf, 1);
    assert_int_equal(c.nbf, 1699999000);
    assert_int_equal(c.alg, TS_SESS_ALG_ES256);

    tok = build(T_HS2, NULL, P(GOOD_CLAIMS ",\"exp\":1700003600"));
    assert_int_equal(ts_sess_auth_verify(verifiers[V_HS], tok, strlen(tok), NOW, &c, &d), 0);
    assert_int_equal(c.has_iat, 0);
    assert_int_equal(c.has_nbf, 0);
    assert_int_equal(c.alg, TS_SESS_ALG_HS256);
    /* The token need not be NUL-terminated: a prefix of a longer buffer. */
    char buf[2048];
    snprintf(buf, sizeof buf, "%sGARBAGE", tok);
    assert_int_equal(ts_sess_auth_verify(verifiers[V_HS], buf, strlen(tok), NOW, &c, &d), 0);
    assert_int_equal(ts_sess_auth_verify(verifiers[V_HS], buf, strlen(buf), NOW, &c, &d),
                     TS_EAUTH);
    free(tok);

    assert_int_equal(ts_sess_auth_algs(verifiers[V_HS]), TS_SESS_ALG_HS256);
    assert_int_equal(ts_sess_auth_algs(verifiers[V_RS]), TS_SESS_ALG_RS256);
    assert_int_equal(ts_sess_auth_algs(verifiers[V_ES]), TS_SESS_ALG_ES256);
    assert_int_equal(ts_sess_auth_algs(verifiers[V_HS_RS]), TS_SESS_ALG_HS256 | TS_SESS_ALG_RS256);
    assert_int_equal(ts_sess_auth_algs(verifiers[V_NOKEY]), 0);
}

/* Reason names are distinct, stable identifiers. */
static void test_reason_names(void **state) {
    (void)state;
    for (int i = 0; i < TS_SESS_R_COUNT_; i++) {
        const char *a = ts_sess_reason_name((ts_sess_reason_t)i);
        assert_non_null(a);
        assert_true(strlen(ts_sess_reason_text((ts_sess_reason_t)i)) > 0);
        for (const char *p = a; *p; p++) assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
        for (int j = 0; j < i; j++)
            if (strcmp(a, ts_sess_reason_name((ts_sess_reason_t)j)) == 0)
                fail_msg("reason name %s used twice", a);
    }
    assert_string_equal(ts_sess_reason_name(TS_SESS_R_TOKEN_EXPIRED), "token_expired");
    assert_string_equal(ts_sess_reason_name(TS_SESS_R_TOKEN_ALG_NONE), "token_alg_none");
    assert_string_equal(ts_sess_reason_name(TS_SESS_R_FINGERPRINT_MISMATCH),
                        "fingerprint_mismatch");
    assert_string_equal(ts_sess_reason_name(TS_SESS_R_COUNT_), "unknown");
}

/* ---- verifier configuration ---- */

static void test_config_refusals(void **state) {
    (void)state;
    ts_sess_auth_cfg_t c;
    ts_sess_auth_t *a = (ts_sess_auth_t *)0x1;
    char err[256];

    ts_sess_auth_cfg_init(&c);
    assert_int_equal(c.leeway_s, 30);
    c.secrets[0] = TS_SLICE_LIT("0123456789012345678901234567890"); /* 31 bytes */
    c.n_secrets = 1;
    assert_int_equal(ts_sess_auth_new(&c, &a, err, sizeof err), TS_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "HS256 secret 1 is 31 bytes; a secret needs 32 to 512 bytes"));
    assert_null(strstr(err, "0123456789")); /* the secret is never shown */

    c.secrets[0] = TS_SLICE_LIT("01234567890123456789012345678901"); /* 32: fine */
    assert_int_equal(ts_sess_auth_new(&c, &a, err, sizeof err), 0);
    ts_sess_auth_free(a);

    static char big[513];
    memset(big, 'k', sizeof big);
    c.secrets[0] = ts_slice(big, 513);
    assert_int_equal(ts_sess_auth_new(&c, &a, err, sizeof err), TS_EINVAL);
    c.secrets[0] = ts_slice(big, 512);
    assert_int_equal(ts_sess_auth_new(&c, &a, err, sizeof err), 0);
    ts_sess_auth_free(a);

    c.n_secrets = TS_SESS_MAX_SECRETS + 1;
    assert_int_equal(ts_sess_auth_new(&c, &a, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "at most 4"));

    ts_sess_auth_cfg_init(&c);
    c.leeway_s = 301;
    assert_int_equal(ts_sess_auth_new(&c, &a, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "leeway"));
    c.leeway_s = 300;
    assert_int_equal(ts_sess_auth_new(&c, &a, err, sizeof err), 0);
    ts_sess_auth_free(a);

    static const struct {
        const char *file, *fragment;
    } bad_keys[] = {
        {"rsa_private.pem", "this is a private key"},
        {"ec_private.pem", "this is a private key"},
        {"ec384_public.pem", "ES256 needs P-256"},
        {"rsa1024_public.pem", "1024 bits; at least 2048"},
        {"ed25519_public.pem", "unsupported key type"},
        {"README.md", "not a PEM public key"},
    };
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        size_t n;
        char *pem = read_key(bad_keys[i].file, &n);
        ts_sess_auth_cfg_init(&c);
        c.public_key_pem = pem;
        c.public_key_len = n;
        err[0] = '\0';
        assert_int_equal(ts_sess_auth_new(&c, &a, err, sizeof err), TS_EINVAL);
        if (!strstr(err, bad_keys[i].fragment))
            fail_msg("%s: \"%s\" lacks \"%s\"", bad_keys[i].file, err, bad_keys[i].fragment);
        assert_int_equal(ts_sess_auth_key_check(pem, n, err, sizeof err), TS_EINVAL);
        free(pem);
    }
    const char cert[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    assert_int_equal(ts_sess_auth_key_check(cert, sizeof cert - 1, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "certificate"));
    assert_int_equal(ts_sess_auth_key_check("", 0, err, sizeof err), TS_EINVAL);
    assert_int_equal(ts_sess_auth_key_check(rsa_pub, rsa_pub_len, err, sizeof err),
                     TS_SESS_ALG_RS256);
    assert_int_equal(ts_sess_auth_key_check(ec_pub, ec_pub_len, err, sizeof err),
                     TS_SESS_ALG_ES256);

    char *buf;
    size_t n;
    assert_int_equal(
        ts_sess_auth_read_file("/nonexistent/key.pem", 100, &buf, &n, err, sizeof err),
        TS_EINVAL);
    assert_non_null(strstr(err, "cannot be read"));
    assert_null(buf);
    char here[1024], path[1200];
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(path, sizeof path, "%s/keys/rsa_public.pem", dirname(here));
    assert_int_equal(ts_sess_auth_read_file(path, 100, &buf, &n, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "is larger than 100 bytes"));
}

/* ---- device binding ---- */

static void test_fingerprint_hash(void **state) {
    (void)state;
    char out[65];
    ts_sess_fp_hash("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ts_sess_fp_hash("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ts_sess_fp_hash("fp-laptop-1", 11, out);
    assert_string_equal(out, FP_LAPTOP);
    assert_int_equal(ts_sess_fp_equal(FP_LAPTOP, "fp-laptop-1", 11), 1);
    assert_int_equal(ts_sess_fp_equal(FP_LAPTOP, "fp-laptop-2", 11), 0);
    assert_int_equal(ts_sess_fp_equal(FP_LAPTOP, "fp-laptop-1\n", 12), 0); /* exact bytes */
    assert_int_equal(ts_sess_fp_equal(FP_PHONE, "fp-laptop-1", 11), 0);
    assert_int_equal(ts_sess_fp_equal("358dc59f", "fp-laptop-1", 11), 0);
    assert_int_equal(ts_sess_fp_equal(NULL, "fp-laptop-1", 11), 0);
    /* The hex is lowercase: an uppercase claim does not match. */
    assert_int_equal(
        ts_sess_fp_equal("358DC59F6B853A2640BFFD6EC52F75B240D5FA789CB99CA37BF5BB4DDD0A8C82",
                         "fp-laptop-1", 11),
        0);
}

static const struct bind_case {
    const char *name;
    const char *token_dev, *token_fp; /* the verified token's claims */
    const char *device_id, *fingerprint; /* what the client sends */
    ts_sess_reason_t want;
    const char *field;
} binds[] = {
    {"own token, own device", "laptop-1", FP_LAPTOP, "laptop-1", "fp-laptop-1", TS_SESS_R_OK,
     NULL},
    {"wrong fingerprint", "laptop-1", FP_LAPTOP, "laptop-1", "fp-laptop-X",
     TS_SESS_R_FINGERPRINT_MISMATCH, "device.fingerprint"},
    {"phone's token replayed by the laptop (its id and fingerprint)", "phone-7", FP_PHONE,
     "laptop-1", "fp-laptop-1", TS_SESS_R_DEVICE_MISMATCH, "device.id"},
    {"phone's token, laptop claims to be the phone", "phone-7", FP_PHONE, "phone-7",
     "fp-laptop-1", TS_SESS_R_FINGERPRINT_MISMATCH, "device.fingerprint"},
    {"phone's token with the phone's fingerprint but the laptop's id", "phone-7", FP_PHONE,
     "laptop-1", "fp-phone-7", TS_SESS_R_DEVICE_MISMATCH, "device.id"},
    {"device id prefix", "laptop-1", FP_LAPTOP, "laptop-", "fp-laptop-1",
     TS_SESS_R_DEVICE_MISMATCH, "device.id"},
    {"device id longer", "laptop-1", FP_LAPTOP, "laptop-10", "fp-laptop-1",
     TS_SESS_R_DEVICE_MISMATCH, "device.id"},
    {"empty fingerprint", "laptop-1", FP_LAPTOP, "laptop-1", "", TS_SESS_R_FINGERPRINT_MISMATCH,
     "device.fingerprint"},
    {"the hash sent instead of the fingerprint", "laptop-1", FP_LAPTOP, "laptop-1", FP_LAPTOP,
     TS_SESS_R_FINGERPRINT_MISMATCH, "device.fingerprint"},
};

static void test_bind_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof binds / sizeof binds[0]; i++) {
        const struct bind_case *k = &binds[i];
        /* Real verified claims: mint, verify, then bind. */
        char payload[512];
        snprintf(payload, sizeof payload,
                 "{\"sub\":\"alice\",\"sid\":\"s1\",\"dev\":\"%s\",\"fp\":\"%s\","
                 "\"exp\":1700003600}",
                 k->token_dev, k->token_fp);
        char *tok = build(T_HS, NULL, payload);
        ts_sess_claims_t c;
        ts_sess_deny_t d;
        assert_int_equal(ts_sess_auth_verify(verifiers[V_HS], tok, strlen(tok), NOW, &c, &d), 0);
        free(tok);
        memset(&d, 0, sizeof d);
        int rc = ts_sess_auth_bind(&c, k->device_id, strlen(k->device_id), k->fingerprint,
                                   strlen(k->fingerprint), &d);
        if (k->want == TS_SESS_R_OK) {
            if (rc != 0) fail_msg("%s: refused: %s", k->name, d.msg);
        } else {
            if (rc != TS_EAUTH || d.reason != k->want)
                fail_msg("%s: rc %d reason %s (want %s)", k->name, rc,
                         ts_sess_reason_name(d.reason), ts_sess_reason_name(k->want));
            assert_string_equal(d.field, k->field);
            check_deny(k->name, &d);
            assert_int_equal(ts_sess_auth_bind(&c, k->device_id, strlen(k->device_id),
                                               k->fingerprint, strlen(k->fingerprint), NULL),
                             TS_EAUTH);
        }
    }
}

/* ---- secrets ---- */

static void test_secret_equal(void **state) {
    (void)state;
    const char *s = "admin-token-0123456789abcdef0123456789";
    assert_int_equal(ts_sess_secret_equal(s, strlen(s), s, strlen(s)), 1);
    char copy[64];
    snprintf(copy, sizeof copy, "%s", s);
    assert_int_equal(ts_sess_secret_equal(copy, strlen(copy), s, strlen(s)), 1);
    copy[0] ^= 1;
    assert_int_equal(ts_sess_secret_equal(copy, strlen(copy), s, strlen(s)), 0);
    snprintf(copy, sizeof copy, "%s", s);
    copy[strlen(copy) - 1] ^= 1;
    assert_int_equal(ts_sess_secret_equal(copy, strlen(copy), s, strlen(s)), 0);
    /* Prefixes and extensions are not equal. */
    assert_int_equal(ts_sess_secret_equal(s, strlen(s) - 1, s, strlen(s)), 0);
    snprintf(copy, sizeof copy, "%sx", s);
    assert_int_equal(ts_sess_secret_equal(copy, strlen(copy), s, strlen(s)), 0);
    assert_int_equal(ts_sess_secret_equal("", 0, s, strlen(s)), 0);
    assert_int_equal(ts_sess_secret_equal(NULL, 0, s, strlen(s)), 0);
    assert_int_equal(ts_sess_secret_equal("", 0, "", 0), 1);
    /* Embedded NULs count. */
    assert_int_equal(ts_sess_secret_equal("a\0b", 3, "a\0c", 3), 0);
    assert_int_equal(ts_sess_secret_equal("a\0b", 3, "a\0b", 3), 1);
}

/* ---- ids ---- */

static void test_id_alphabet(void **state) {
    (void)state;
    assert_int_equal(ts_sess_id_valid("A-Za-z0-9._:@-", 14), 1);
    const char *bad[] = {" ", "/", "\\", "\"", "'", "#", "%", "+", "=", "?", "&", "*", "$",
                         "{", "\x7f", "\x01", "\xc3\xa9", ","};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char id[16];
        snprintf(id, sizeof id, "ab%scd", bad[i]);
        if (ts_sess_id_valid(id, strlen(id))) fail_msg("\"%s\" accepted", id);
    }
    assert_int_equal(ts_sess_id_valid("", 0), 0);
    assert_int_equal(ts_sess_id_valid(NULL, 3), 0);
    assert_int_equal(ts_sess_id_valid("a\0b", 3), 0);
    char id[130];
    memset(id, 'x', sizeof id);
    assert_int_equal(ts_sess_id_valid(id, 128), 1);
    assert_int_equal(ts_sess_id_valid(id, 129), 0);
}

/* ---- minting ---- */

static void test_mint(void **state) {
    (void)state;
    char err[256];
    char *tok = NULL;
    ts_sess_mint_t m = {.user = "alice", .session = "s1", .device = "laptop-1",
                        .fingerprint = "fp-laptop-1", .now = NOW, .ttl_s = 600};
    assert_int_equal(ts_sess_auth_mint(verifiers[V_HS], &m, &tok, err, sizeof err), 0);
    ts_sess_claims_t c;
    ts_sess_deny_t d;
    assert_int_equal(ts_sess_auth_verify(verifiers[V_HS], tok, strlen(tok), NOW, &c, &d), 0);
    assert_string_equal(c.sub, "alice");
    assert_string_equal(c.sid, "s1");
    assert_string_equal(c.dev, "laptop-1");
    assert_string_equal(c.fp, FP_LAPTOP);
    assert_int_equal(c.exp, NOW + 600);
    assert_int_equal(c.iat, NOW);
    assert_int_equal(ts_sess_auth_bind(&c, "laptop-1", 8, "fp-laptop-1", 11, &d), 0);
    /* It lives exactly ttl (+ leeway). */
    assert_int_equal(ts_sess_auth_verify(verifiers[V_LEEWAY0], tok, strlen(tok), NOW + 599, &c,
                                         &d),
                     0);
    assert_int_equal(ts_sess_auth_verify(verifiers[V_LEEWAY0], tok, strlen(tok), NOW + 600, &c,
                                         &d),
                     TS_EAUTH);
    assert_int_equal(d.reason, TS_SESS_R_TOKEN_EXPIRED);
    /* Signed with the first secret only: an RS-only server refuses it. */
    assert_int_equal(ts_sess_auth_verify(verifiers[V_RS], tok, strlen(tok), NOW, &c, &d),
                     TS_EAUTH);
    assert_int_equal(d.reason, TS_SESS_R_TOKEN_ALG_NOT_ALLOWED);
    free(tok);

    /* No fingerprint: fp is the hash of the device id. */
    m.fingerprint = NULL;
    m.ttl_s = 0; /* default 3600 */
    m.audience = "tabsync-api";
    m.issuer = "https://idp.example";
    assert_int_equal(ts_sess_auth_mint_hs256(S1, strlen(S1), &m, &tok, err, sizeof err), 0);
    assert_int_equal(ts_sess_auth_verify(verifiers[V_AUD], tok, strlen(tok), NOW, &c, &d), 0);
    assert_int_equal(c.exp, NOW + 3600);
    assert_int_equal(ts_sess_auth_bind(&c, "laptop-1", 8, "laptop-1", 8, &d), 0);
    assert_int_equal(ts_sess_auth_bind(&c, "laptop-1", 8, "fp-laptop-1", 11, &d), TS_EAUTH);
    free(tok);

    /* Fingerprints with a length (bytes after a NUL count). */
    m.fingerprint = "ab\0cd";
    m.fingerprint_len = 5;
    m.audience = m.issuer = NULL;
    assert_int_equal(ts_sess_auth_mint_hs256(S1, strlen(S1), &m, &tok, err, sizeof err), 0);
    assert_int_equal(ts_sess_auth_verify(verifiers[V_HS], tok, strlen(tok), NOW, &c, &d), 0);
    assert_int_equal(ts_sess_auth_bind(&c, "laptop-1", 8, "ab\0cd", 5, &d), 0);
    assert_int_equal(ts_sess_auth_bind(&c, "laptop-1", 8, "ab", 2, &d), TS_EAUTH);
    free(tok);

    /* Refusals. */
    ts_sess_mint_t bad = m;
    bad.user = "al ice";
    assert_int_equal(ts_sess_auth_mint_hs256(S1, strlen(S1), &bad, &tok, err, sizeof err),
                     TS_EINVAL);
    assert_non_null(strstr(err, "the user id must be"));
    assert_null(tok);
    bad = m;
    bad.session = "";
    assert_int_equal(ts_sess_auth_mint_hs256(S1, strlen(S1), &bad, &tok, err, sizeof err),
                     TS_EINVAL);
    assert_non_null(strstr(err, "session id"));
    bad = m;
    bad.device = NULL;
    assert_int_equal(ts_sess_auth_mint_hs256(S1, strlen(S1), &bad, &tok, err, sizeof err),
                     TS_EINVAL);
    bad = m;
    bad.ttl_s = TS_SESS_MINT_TTL_MAX + 1;
    assert_int_equal(ts_sess_auth_mint_hs256(S1, strlen(S1), &bad, &tok, err, sizeof err),
                     TS_EINVAL);
    assert_non_null(strstr(err, "ttl"));
    assert_int_equal(ts_sess_auth_mint_hs256("short", 5, &m, &tok, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "5 bytes"));
    assert_int_equal(ts_sess_auth_mint(verifiers[V_RS], &m, &tok, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "no HS256 secret"));
}

/* ---- the same verifier from several threads ---- */

static char *thread_tokens[3];
static void *verify_many(void *arg) {
    long ok = 0;
    (void)arg;
    for (int i = 0; i < 150; i++) {
        ts_sess_claims_t c;
        ts_sess_deny_t d;
        const char *t = thread_tokens[i % 3];
        int rc = ts_sess_auth_verify(verifiers[V_HS_RS], t, strlen(t), NOW, &c, &d);
        if ((i % 3 == 2) ? (rc == TS_EAUTH && d.reason == TS_SESS_R_TOKEN_BAD_SIGNATURE)
                         : (rc == 0 && strcmp(c.sub, "alice") == 0))
            ok++;
    }
    return (void *)ok;
}

static void test_threads(void **state) {
    (void)state;
    thread_tokens[0] = build(T_HS, NULL, P(GOOD));
    thread_tokens[1] = build(T_RS, NULL, P(GOOD));
    thread_tokens[2] = build(T_HS_OTHER, NULL, P(GOOD));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, verify_many, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_int_equal((long)r, 150);
    }
    for (int i = 0; i < 3; i++) free(thread_tokens[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_table),     cmocka_unit_test(test_claims_out),
        cmocka_unit_test(test_reason_names),    cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_fingerprint_hash), cmocka_unit_test(test_bind_table),
        cmocka_unit_test(test_secret_equal),    cmocka_unit_test(test_id_alphabet),
        cmocka_unit_test(test_mint),            cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
