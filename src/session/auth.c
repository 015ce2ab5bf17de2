/* auth.c - JWT verification, device binding and dev-only minting for the
 * /session namespace. The token's header is parsed here first and the key
 * is picked from our configuration by its alg: libjwt 1.x would verify an
 * HS256 token with whatever key it is handed (an RSA public key included),
 * so it is never given a chance to choose. HS256 is checked here with HMAC
 * and a constant-time compare; RS256/ES256 go through libjwt. No globals.
 *
 * HMAC-SHA-256 and SHA-256 come from nettle, each secret's HMAC keyed once
 * at configuration: a handshake pays 0.3 us for its HMAC instead of the
 * 1.2 us of OpenSSL's EVP (provider lookups on every call). The token's
 * JSON parts go through ts_json_loadb, which builds what a JavaScript
 * signer wrote (canonical JSON) without jansson's lexer. */
#include "session/ts_sess_auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <math.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"

/* NumericDate bounds: 0 .. year 9999, so exp + leeway never overflows. */
#define DATE_MAX 253402300799LL
#define HS256_LEN 32

struct ts_sess_auth {
    uint8_t *secrets[TS_SESS_MAX_SECRETS];
    size_t secret_lens[TS_SESS_MAX_SECRETS];
    /* each secret's HMAC state right after keying: copied per verification
     * (verify is const and runs on every loop's thread) */
    struct hmac_sha256_ctx keyed[TS_SESS_MAX_SECRETS];
    size_t n_secrets;
    char *pem; /* NUL-terminated copy, or NULL */
    size_t pem_len;
    unsigned algs; /* ts_sess_alg_t bits */
    char *audience, *issuer; /* NULL = not checked */
    unsigned leeway_s;
};

/* ---- reasons ------------------------------------------------------------ */

const char *ts_sess_reason_name(ts_sess_reason_t r) {
    switch (r) {
#define TS_SESS_REASON_NAME_(name, id, msg)                                                        \
    case TS_SESS_R_##name:                                                                         \
        return id;
        TS_SESS_REASON_MAP(TS_SESS_REASON_NAME_)
#undef TS_SESS_REASON_NAME_
    default:
        return "unknown";
    }
}

const char *ts_sess_reason_text(ts_sess_reason_t r) {
    switch (r) {
#define TS_SESS_REASON_TEXT_(name, id, msg)                                                        \
    case TS_SESS_R_##name:                                                                         \
        return msg;
        TS_SESS_REASON_MAP(TS_SESS_REASON_TEXT_)
#undef TS_SESS_REASON_TEXT_
    default:
        return "unknown reason";
    }
}

static int deny(ts_sess_deny_t *d, ts_sess_reason_t r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int deny(ts_sess_deny_t *d, ts_sess_reason_t r, const char *field, const char *fmt, ...) {
    if (d) {
        d->reason = r;
        snprintf(d->field, sizeof d->field, "%s", field ? field : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return TS_EAUTH;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A value from a verified token, fit for a one-line message: at most 40
 * bytes, quotes, backslashes and non-printable bytes escaped. */
static const char *show(const char *v, size_t len, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (o + 8 >= cap || i >= 40) {
            snprintf(buf + o, cap - o, "...");
            return buf;
        }
        if (ch == '"' || ch == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- small pieces --------------------------------------------------------- */

int ts_sess_id_valid(const char *s, size_t len) {
    if (!s || len == 0 || len > TS_SESS_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
        if (!ok) return 0;
    }
    return 1;
}

static void hex_encode(const uint8_t *in, size_t n, char *out) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256(const void *in, size_t len, uint8_t out[SHA256_DIGEST_SIZE]) {
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, in);
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

void ts_sess_fp_hash(const void *fingerprint, size_t len, char out[TS_SESS_FP_HEX_LEN + 1]) {
    uint8_t md[SHA256_DIGEST_SIZE];
    sha256(fingerprint, len, md);
    hex_encode(md, sizeof md, out);
}

int ts_sess_fp_equal(const char *fp_hex, const void *fingerprint, size_t len) {
    char want[TS_SESS_FP_HEX_LEN + 1];
    ts_sess_fp_hash(fingerprint, len, want);
    if (!fp_hex || strnlen(fp_hex, TS_SESS_FP_HEX_LEN + 1) != TS_SESS_FP_HEX_LEN) return 0;
    return CRYPTO_memcmp(fp_hex, want, TS_SESS_FP_HEX_LEN) == 0;
}

int ts_sess_secret_equal(const void *given, size_t glen, const void *want, size_t wlen) {
    /* Hash both sides so the compare is over two fixed-size values: the time
     * depends on neither a common prefix nor the secret's length. */
    uint8_t a[SHA256_DIGEST_SIZE], b[SHA256_DIGEST_SIZE];
    sha256(given ? given : "", given ? glen : 0, a);
    sha256(want ? want : "", want ? wlen : 0, b);
    return (CRYPTO_memcmp(a, b, sizeof a) == 0) & (glen == wlen);
}

/* ---- configuration -------------------------------------------------------- */

void ts_sess_auth_cfg_init(ts_sess_auth_cfg_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->leeway_s = TS_SESS_LEEWAY_DEFAULT;
}

int ts_sess_auth_key_check(const char *pem, size_t len, char *err, size_t errlen) {
    if (!pem || len == 0) {
        errf(err, errlen, "the public key is empty (expected a PEM \"BEGIN PUBLIC KEY\" block)");
        return TS_EINVAL;
    }
    if (len > TS_SESS_PEM_MAX) {
        errf(err, errlen, "the public key is larger than %d bytes", TS_SESS_PEM_MAX);
        return TS_EINVAL;
    }
    if (memmem(pem, len, "PRIVATE KEY-----", 16)) {
        errf(err, errlen,
             "this is a private key; give the server only the public key "
             "(openssl pkey -in key.pem -pubout)");
        return TS_EINVAL;
    }
    if (memmem(pem, len, "BEGIN CERTIFICATE", 17)) {
        errf(err, errlen,
             "this is a certificate; extract its public key "
             "(openssl x509 -in cert.pem -pubkey -noout)");
        return TS_EINVAL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        errf(err, errlen, "out of memory reading the public key");
        return TS_EINVAL;
    }
    EVP_PKEY *pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pk) {
        errf(err, errlen,
             "not a PEM public key (expected a \"-----BEGIN PUBLIC KEY-----\" block, RSA or "
             "EC P-256)");
        return TS_EINVAL;
    }
    int rc = TS_EINVAL;
    int id = EVP_PKEY_get_base_id(pk);
    if (id == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits < 2048)
            errf(err, errlen, "the RSA key has %d bits; at least 2048 are required", bits);
        else
            rc = TS_SESS_ALG_RS256;
    } else if (id == EVP_PKEY_EC) {
        char group[64] = "";
        size_t glen = 0;
        if (!EVP_PKEY_get_group_name(pk, group, sizeof group, &glen)) group[0] = '\0';
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
            rc = TS_SESS_ALG_ES256;
        else
            errf(err, errlen, "the EC key is on curve %s; ES256 needs P-256 (prime256v1)",
                 group[0] ? group : "(unknown)");
    } else {
        errf(err, errlen, "unsupported key type (expected RSA for RS256 or EC P-256 for ES256)");
    }
    EVP_PKEY_free(pk);
    return rc;
}

int ts_sess_auth_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
                           size_t errlen) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        errf(err, errlen, "cannot be read (%s)", strerror(errno));
        return TS_EINVAL;
    }
    char *buf = ts_xmalloc(max + 2);
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errf(err, errlen, "cannot be read (I/O error)");
        return TS_EINVAL;
    }
    if (n > max) {
        free(buf);
        errf(err, errlen, "is larger than %zu bytes", max);
        return TS_EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int ts_sess_auth_new(const ts_sess_auth_cfg_t *cfg, ts_sess_auth_t **out, char *err,
                     size_t errlen) {
    *out = NULL;
    if (cfg->n_secrets > TS_SESS_MAX_SECRETS) {
        errf(err, errlen, "%zu HS256 secrets given; at most %d are accepted", cfg->n_secrets,
             TS_SESS_MAX_SECRETS);
        return TS_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_secrets; i++) {
        size_t l = cfg->secrets[i].len;
        if (l < TS_SESS_SECRET_MIN || l > TS_SESS_SECRET_MAX || !cfg->secrets[i].p) {
            errf(err, errlen,
                 "HS256 secret %zu is %zu bytes; a secret needs %d to %d bytes "
                 "(generate one with: openssl rand -base64 48)",
                 i + 1, l, TS_SESS_SECRET_MIN, TS_SESS_SECRET_MAX);
            return TS_EINVAL;
        }
    }
    if (cfg->leeway_s > TS_SESS_LEEWAY_MAX) {
        errf(err, errlen, "a leeway of %u s is too large (at most %d)", cfg->leeway_s,
             TS_SESS_LEEWAY_MAX);
        return TS_EINVAL;
    }
    int key_alg = 0;
    if (cfg->public_key_pem) {
        key_alg = ts_sess_auth_key_check(cfg->public_key_pem, cfg->public_key_len, err, errlen);
        if (key_alg < 0) return key_alg;
    }
    ts_sess_auth_t *a = ts_xcalloc(1, sizeof *a);
    for (size_t i = 0; i < cfg->n_secrets; i++) {
        a->secrets[i] = ts_xmemdup(cfg->secrets[i].p, cfg->secrets[i].len);
        a->secret_lens[i] = cfg->secrets[i].len;
        hmac_sha256_set_key(&a->keyed[i], a->secret_lens[i], a->secrets[i]);
    }
    a->n_secrets = cfg->n_secrets;
    if (a->n_secrets) a->algs |= TS_SESS_ALG_HS256;
    if (key_alg > 0) {
        a->pem = ts_xstrndup(cfg->public_key_pem, cfg->public_key_len);
        a->pem_len = cfg->public_key_len;
        a->algs |= (unsigned)key_alg;
    }
    if (cfg->audience && cfg->audience[0]) a->audience = ts_xstrdup(cfg->audience);
    if (cfg->issuer && cfg->issuer[0]) a->issuer = ts_xstrdup(cfg->issuer);
    a->leeway_s = cfg->leeway_s;
    *out = a;
    return 0;
}

void ts_sess_auth_free(ts_sess_auth_t *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n_secrets; i++) {
        OPENSSL_cleanse(a->secrets[i], a->secret_lens[i]);
        free(a->secrets[i]);
    }
    OPENSSL_cleanse(a->keyed, sizeof a->keyed);
    free(a->pem);
    free(a->audience);
    free(a->issuer);
    free(a);
}

unsigned ts_sess_auth_algs(const ts_sess_auth_t *a) { return a->algs; }

/* ---- verification ---------------------------------------------------------- */

static const char *alg_name(unsigned alg) {
    switch (alg) {
    case TS_SESS_ALG_HS256:
        return "HS256";
    case TS_SESS_ALG_RS256:
        return "RS256";
    case TS_SESS_ALG_ES256:
        return "ES256";
    default:
        return "?";
    }
}

static void algs_text(unsigned algs, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned bit = 1; bit <= TS_SESS_ALG_ES256; bit <<= 1)
        if (algs & bit)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", alg_name(bit));
}

/* Decodes one base64url part and parses it as a JSON object (duplicate keys
 * refused, so that no two parsers can read different values from it).
 * `flags` are added to the parser's. Returns new, or NULL. */
static json_t *part_json(const char *p, size_t n, size_t flags) {
    uint8_t buf[TS_SESS_TOKEN_MAX];
    long len = ts_b64url_decode(p, n, buf);
    if (len <= 0) return NULL;
    json_t *j = ts_json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES | flags, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int hs256_verify(const ts_sess_auth_t *a, const char *signing_input, size_t in_len,
                        const char *sig_b64, size_t sig_len) {
    uint8_t sig[TS_SESS_TOKEN_MAX];
    long n = ts_b64url_decode(sig_b64, sig_len, sig);
    if (n != HS256_LEN) return 0;
    int ok = 0;
    /* Every configured secret is tried, even after a match, so the time
     * says nothing about which one matched. */
    for (size_t i = 0; i < a->n_secrets; i++) {
        struct hmac_sha256_ctx ctx = a->keyed[i];
        uint8_t mac[HS256_LEN];
        hmac_sha256_update(&ctx, in_len, (const uint8_t *)signing_input);
        hmac_sha256_digest(&ctx, HS256_LEN, mac);
        OPENSSL_cleanse(&ctx, sizeof ctx); /* it holds the keyed state */
        ok |= CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
    }
    return ok;
}

static int pem_verify(const ts_sess_auth_t *a, const char *token, jwt_alg_t want) {
    jwt_t *j = NULL;
    int rc = jwt_decode(&j, token, (const unsigned char *)a->pem, (int)a->pem_len);
    int ok = rc == 0 && j && jwt_get_alg(j) == want;
    jwt_free(j);
    return ok;
}

/* A NumericDate claim: absent (0), valid (1, *out set) or invalid (-1). */
static int date_claim(json_t *claims, const char *name, int64_t *out) {
    json_t *v = json_object_get(claims, name);
    if (!v) return 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > DATE_MAX) return -1;
        *out = (int64_t)i;
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < 0 || d > (double)DATE_MAX) return -1;
        *out = (int64_t)floor(d);
        return 1;
    }
    return -1;
}

static int id_claim(json_t *claims, const char *name, char *out, size_t cap,
                    ts_sess_deny_t *d) {
    json_t *v = json_object_get(claims, name);
    if (!v)
        return deny(d, TS_SESS_R_TOKEN_MISSING_CLAIM, name,
                    "token has no \"%s\" claim (sub, sid, dev, fp and exp are required)", name);
    if (!json_is_string(v))
        return deny(d, TS_SESS_R_TOKEN_INVALID_CLAIM, name, "token claim \"%s\" is not a string",
                    name);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!ts_sess_id_valid(s, len))
        return deny(d, TS_SESS_R_TOKEN_INVALID_CLAIM, name,
                    "token claim \"%s\" must be 1-%d characters of A-Z a-z 0-9 . _ : @ -", name,
                    TS_SESS_ID_MAX);
    ts_assert(len < cap);
    memcpy(out, s, len + 1);
    return 0;
}

static int check_claims(const ts_sess_auth_t *a, json_t *cl, int64_t now, ts_sess_claims_t *out,
                        ts_sess_deny_t *d) {
    int rc;
    if ((rc = id_claim(cl, "sub", out->sub, sizeof out->sub, d)) ||
        (rc = id_claim(cl, "sid", out->sid, sizeof out->sid, d)) ||
        (rc = id_claim(cl, "dev", out->dev, sizeof out->dev, d)))
        return rc;
    json_t *fp = json_object_get(cl, "fp");
    if (!fp)
        return deny(d, TS_SESS_R_TOKEN_MISSING_CLAIM, "fp",
                    "token has no \"fp\" claim (sub, sid, dev, fp and exp are required)");
    const char *fps = json_is_string(fp) ? json_string_value(fp) : NULL;
    int fp_ok = fps && json_string_length(fp) == TS_SESS_FP_HEX_LEN;
    for (size_t i = 0; fp_ok && i < TS_SESS_FP_HEX_LEN; i++)
        fp_ok = (fps[i] >= '0' && fps[i] <= '9') || (fps[i] >= 'a' && fps[i] <= 'f');
    if (!fp_ok)
        return deny(d, TS_SESS_R_TOKEN_INVALID_CLAIM, "fp",
                    "token claim \"fp\" must be 64 lowercase hex digits (SHA-256 of the device "
                    "fingerprint)");
    memcpy(out->fp, fps, TS_SESS_FP_HEX_LEN + 1);

    int got = date_claim(cl, "exp", &out->exp);
    if (got == 0)
        return deny(d, TS_SESS_R_TOKEN_MISSING_CLAIM, "exp",
                    "token has no \"exp\" claim (sub, sid, dev, fp and exp are required)");
    if (got < 0)
        return deny(d, TS_SESS_R_TOKEN_INVALID_CLAIM, "exp",
                    "token claim \"exp\" is not a date (seconds since 1970)");
    if ((got = date_claim(cl, "nbf", &out->nbf)) < 0)
        return deny(d, TS_SESS_R_TOKEN_INVALID_CLAIM, "nbf",
                    "token claim \"nbf\" is not a date (seconds since 1970)");
    out->has_nbf = got;
    if ((got = date_claim(cl, "iat", &out->iat)) < 0)
        return deny(d, TS_SESS_R_TOKEN_INVALID_CLAIM, "iat",
                    "token claim \"iat\" is not a date (seconds since 1970)");
    out->has_iat = got;

    int64_t lw = a->leeway_s;
    if (now >= out->exp + lw)
        return deny(d, TS_SESS_R_TOKEN_EXPIRED, "exp",
                    "token expired at %lld (now %lld, leeway %lld s); get a new token",
                    (long long)out->exp, (long long)now, (long long)lw);
    if (out->has_nbf && out->nbf > now + lw)
        return deny(d, TS_SESS_R_TOKEN_NOT_YET_VALID, "nbf",
                    "token is not valid before %lld (now %lld, leeway %lld s); check the clocks",
                    (long long)out->nbf, (long long)now, (long long)lw);
    if (out->has_iat && out->iat > now + lw)
        return deny(d, TS_SESS_R_TOKEN_ISSUED_IN_FUTURE, "iat",
                    "token was issued at %lld, in the future (now %lld, leeway %lld s); check "
                    "the clocks",
                    (long long)out->iat, (long long)now, (long long)lw);

    char sv[96];
    if (a->audience) {
        json_t *aud = json_object_get(cl, "aud");
        if (!aud)
            return deny(d, TS_SESS_R_TOKEN_MISSING_CLAIM, "aud",
                        "token has no \"aud\" claim; this server expects \"%s\"",
                        show(a->audience, strlen(a->audience), sv, sizeof sv));
        int match = 0;
        if (json_is_string(aud)) {
            match = strcmp(json_string_value(aud), a->audience) == 0 &&
                    json_string_length(aud) == strlen(a->audience);
        } else if (json_is_array(aud)) {
            size_t i;
            json_t *it;
            json_array_foreach(aud, i, it) {
                if (json_is_string(it) && json_string_length(it) == strlen(a->audience) &&
                    strcmp(json_string_value(it), a->audience) == 0)
                    match = 1;
            }
        } else {
            return deny(d, TS_SESS_R_TOKEN_INVALID_CLAIM, "aud",
                        "token claim \"aud\" is neither a string nor an array of strings");
        }
        if (!match)
            return deny(d, TS_SESS_R_TOKEN_WRONG_AUDIENCE, "aud",
                        "token audience does not include \"%s\", the audience of this server",
                        show(a->audience, strlen(a->audience), sv, sizeof sv));
    }
    if (a->issuer) {
        json_t *iss = json_object_get(cl, "iss");
        if (!iss)
            return deny(d, TS_SESS_R_TOKEN_MISSING_CLAIM, "iss",
                        "token has no \"iss\" claim; this server expects \"%s\"",
                        show(a->issuer, strlen(a->issuer), sv, sizeof sv));
        if (!json_is_string(iss))
            return deny(d, TS_SESS_R_TOKEN_INVALID_CLAIM, "iss",
                        "token claim \"iss\" is not a string");
        if (json_string_length(iss) != strlen(a->issuer) ||
            strcmp(json_string_value(iss), a->issuer) != 0) {
            char sv2[96];
            return deny(d, TS_SESS_R_TOKEN_WRONG_ISSUER, "iss",
                        "token issuer \"%s\" is not \"%s\", the issuer this server trusts",
                        show(json_string_value(iss), json_string_length(iss), sv2, sizeof sv2),
                        show(a->issuer, strlen(a->issuer), sv, sizeof sv));
        }
    }
    return 0;
}

int ts_sess_auth_verify(const ts_sess_auth_t *a, const char *token, size_t len, int64_t now,
                        ts_sess_claims_t *out, ts_sess_deny_t *d) {
    ts_sess_claims_t tmp;
    memset(&tmp, 0, sizeof tmp);
    if (out) memset(out, 0, sizeof *out);
    if (len > TS_SESS_TOKEN_MAX)
        return deny(d, TS_SESS_R_TOKEN_TOO_LARGE, "token",
                    "token is %zu bytes; at most %d are accepted", len, TS_SESS_TOKEN_MAX);
    if (!token || len == 0)
        return deny(d, TS_SESS_R_TOKEN_MALFORMED, "token", "token is empty");

    /* Shape: header.payload.signature, base64url only. */
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) ||
        dot1 == token || dot2 == dot1 + 1)
        return deny(d, TS_SESS_R_TOKEN_MALFORMED, "token",
                    "token is not a JWT (expected three base64url parts separated by dots)");
    for (size_t i = 0; i < len; i++)
        if (token[i] != '.' && !ts_b64url_char((unsigned char)token[i]))
            return deny(d, TS_SESS_R_TOKEN_MALFORMED, "token",
                        "token has a byte 0x%02x outside base64url (A-Z a-z 0-9 - _ and dots)",
                        (unsigned char)token[i]);
    size_t hlen = (size_t)(dot1 - token), plen = (size_t)(dot2 - dot1 - 1);
    const char *sig = dot2 + 1;
    size_t slen = len - (size_t)(sig - token);

    json_t *hdr = part_json(token, hlen, 0);
    if (!hdr)
        return deny(d, TS_SESS_R_TOKEN_MALFORMED, "token",
                    "token header is not a base64url JSON object");
    json_t *jalg = json_object_get(hdr, "alg");
    const char *alg = json_is_string(jalg) ? json_string_value(jalg) : NULL;
    int has_crit = json_object_get(hdr, "crit") != NULL;
    char algbuf[16];
    snprintf(algbuf, sizeof algbuf, "%s", alg ? alg : "");
    /* Exact length: an alg with a NUL inside ("HS256\u0000x") matches nothing. */
    int alg_len_ok = alg && json_string_length(jalg) == strlen(alg) && strlen(alg) < sizeof algbuf;
    json_decref(hdr);
    if (!alg)
        return deny(d, TS_SESS_R_TOKEN_MALFORMED, "alg", "token header has no \"alg\" string");
    if (strcasecmp(algbuf, "none") == 0 && alg_len_ok)
        return deny(d, TS_SESS_R_TOKEN_ALG_NONE, "alg",
                    "token is unsigned (alg \"none\"); this server accepts only signed tokens");
    if (has_crit)
        return deny(d, TS_SESS_R_TOKEN_MALFORMED, "crit",
                    "token header lists critical extensions (crit), which this server does not "
                    "support");
    unsigned want = 0;
    if (alg_len_ok && strcmp(algbuf, "HS256") == 0) want = TS_SESS_ALG_HS256;
    if (alg_len_ok && strcmp(algbuf, "RS256") == 0) want = TS_SESS_ALG_RS256;
    if (alg_len_ok && strcmp(algbuf, "ES256") == 0) want = TS_SESS_ALG_ES256;
    if (!want || !(a->algs & want)) {
        char allowed[32], sv[96];
        algs_text(a->algs, allowed, sizeof allowed);
        return deny(d, TS_SESS_R_TOKEN_ALG_NOT_ALLOWED, "alg",
                    "token algorithm \"%s\" is not accepted here (%s%s)",
                    show(algbuf, strlen(algbuf), sv, sizeof sv), a->algs ? "accepted: " : "",
                    a->algs ? allowed : "no verification key is configured");
    }

    /* The payload is parsed before the signature is checked only to tell a
     * malformed token from a forged one; nothing in it is used until then. */
    /* Integers as doubles: jansson refuses an integer beyond 64 bits as a
     * parse error, which would make "exp": 1e20 written out in digits a
     * malformed token, while it is a readable date out of range
     * (token_invalid_claim, as docs/SECURITY.md says). Only date_claim reads
     * numbers, and every valid date (< 2^53) is exact as a double. */
    json_t *claims = part_json(dot1 + 1, plen, JSON_DECODE_INT_AS_REAL);
    if (!claims)
        return deny(d, TS_SESS_R_TOKEN_MALFORMED, "token",
                    "token payload is not a base64url JSON object");

    int ok;
    if (want == TS_SESS_ALG_HS256) {
        ok = hs256_verify(a, token, hlen + 1 + plen, sig, slen);
    } else {
        char copy[TS_SESS_TOKEN_MAX + 1];
        memcpy(copy, token, len);
        copy[len] = '\0';
        ok = slen > 0 &&
             pem_verify(a, copy, want == TS_SESS_ALG_RS256 ? JWT_ALG_RS256 : JWT_ALG_ES256);
    }
    if (!ok) {
        json_decref(claims);
        return deny(d, TS_SESS_R_TOKEN_BAD_SIGNATURE, "token",
                    "token signature does not verify with the configured %s %s",
                    alg_name(want), want == TS_SESS_ALG_HS256 ? "secret" : "public key");
    }
    tmp.alg = (ts_sess_alg_t)want;
    int rc = check_claims(a, claims, now, &tmp, d);
    json_decref(claims);
    if (rc) return rc;
    if (out) *out = tmp;
    return 0;
}

int ts_sess_claims_same_identity(const ts_sess_claims_t *a, const ts_sess_claims_t *b) {
    return strcmp(a->sub, b->sub) == 0 && strcmp(a->sid, b->sid) == 0 &&
           strcmp(a->dev, b->dev) == 0 && strcmp(a->fp, b->fp) == 0;
}

int ts_sess_auth_bind(const ts_sess_claims_t *c, const char *device_id, size_t id_len,
                      const void *fingerprint, size_t fp_len, ts_sess_deny_t *d) {
    if (!device_id || strlen(c->dev) != id_len || memcmp(c->dev, device_id, id_len) != 0)
        return deny(d, TS_SESS_R_DEVICE_MISMATCH, "device.id",
                    "token was issued for another device (its dev claim is not device.id)");
    if (!fingerprint || !ts_sess_fp_equal(c->fp, fingerprint, fp_len))
        return deny(d, TS_SESS_R_FINGERPRINT_MISMATCH, "device.fingerprint",
                    "SHA-256 of device.fingerprint does not match the token's fp claim");
    return 0;
}

/* ---- minting --------------------------------------------------------------- */

int ts_sess_auth_mint_hs256(const void *secret, size_t secret_len, const ts_sess_mint_t *m,
                            char **out, char *err, size_t errlen) {
    *out = NULL;
    if (!secret || secret_len < TS_SESS_SECRET_MIN || secret_len > TS_SESS_SECRET_MAX) {
        errf(err, errlen, "the HS256 secret is %zu bytes; a secret needs %d to %d bytes",
             secret_len, TS_SESS_SECRET_MIN, TS_SESS_SECRET_MAX);
        return TS_EINVAL;
    }
    const char *names[] = {"user", "session", "device"};
    const char *vals[] = {m->user, m->session, m->device};
    for (size_t i = 0; i < 3; i++)
        if (!vals[i] || !ts_sess_id_valid(vals[i], strlen(vals[i]))) {
            errf(err, errlen, "the %s id must be 1-%d characters of A-Z a-z 0-9 . _ : @ -",
                 names[i], TS_SESS_ID_MAX);
            return TS_EINVAL;
        }
    uint32_t ttl = m->ttl_s ? m->ttl_s : TS_SESS_MINT_TTL_DEFAULT;
    if (ttl > TS_SESS_MINT_TTL_MAX) {
        errf(err, errlen, "a ttl of %u s is too long (at most %d, 30 days)", ttl,
             TS_SESS_MINT_TTL_MAX);
        return TS_EINVAL;
    }
    if (m->now < 0 || m->now > DATE_MAX - (int64_t)ttl) {
        errf(err, errlen, "the issue time %lld is out of range", (long long)m->now);
        return TS_EINVAL;
    }
    char fp[TS_SESS_FP_HEX_LEN + 1];
    if (m->fingerprint)
        ts_sess_fp_hash(m->fingerprint,
                        m->fingerprint_len ? m->fingerprint_len : strlen(m->fingerprint), fp);
    else
        ts_sess_fp_hash(m->device, strlen(m->device), fp);

    jwt_t *j = NULL;
    if (jwt_new(&j) != 0) {
        errf(err, errlen, "out of memory");
        return TS_EINVAL;
    }
    int rc = jwt_add_grant(j, "sub", m->user) || jwt_add_grant(j, "sid", m->session) ||
             jwt_add_grant(j, "dev", m->device) || jwt_add_grant(j, "fp", fp) ||
             jwt_add_grant_int(j, "iat", (long)m->now) ||
             jwt_add_grant_int(j, "exp", (long)(m->now + (int64_t)ttl)) ||
             (m->audience && m->audience[0] && jwt_add_grant(j, "aud", m->audience)) ||
             (m->issuer && m->issuer[0] && jwt_add_grant(j, "iss", m->issuer)) ||
             jwt_set_alg(j, JWT_ALG_HS256, secret, (int)secret_len);
    char *tok = rc ? NULL : jwt_encode_str(j);
    jwt_free(j);
    if (!tok) {
        errf(err, errlen, "could not sign the token");
        return TS_EINVAL;
    }
    *out = tok;
    return 0;
}

int ts_sess_auth_mint(const ts_sess_auth_t *a, const ts_sess_mint_t *m, char **out, char *err,
                      size_t errlen) {
    if (!a->n_secrets) {
        *out = NULL;
        errf(err, errlen, "no HS256 secret is configured (--jwt-secret-file or --jwt-secret)");
        return TS_EINVAL;
    }
    return ts_sess_auth_mint_hs256(a->secrets[0], a->secret_lens[0], m, out, err, errlen);
}
