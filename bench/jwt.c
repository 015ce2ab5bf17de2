/* jwt.c - HS256 session tokens for tsbench (jwt.h). Written against
 * OpenSSL directly rather than libjwt, which the server uses to verify: two
 * independent implementations agreeing is itself a check. */
#include "jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "core/ts_util.h"

size_t tsb_b64url(const uint8_t *in, size_t n, char *out) {
    size_t len = ts_b64_encode(in, n, out);
    while (len && out[len - 1] == '=') len--;
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '+') out[i] = '-';
        else if (out[i] == '/') out[i] = '_';
    }
    out[len] = '\0';
    return len;
}

void tsb_sha256_hex(const void *in, size_t n, char out[65]) {
    static const char hex[] = "0123456789abcdef";
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(in, n, md);
    for (size_t i = 0; i < sizeof md; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

size_t tsb_jwt_hs256(const void *key, size_t klen, const char *header, const char *payload,
                     char *out, size_t cap) {
    size_t hl = strlen(header), pl = strlen(payload);
    /* header and payload as base64url, a dot each, the 43-byte signature */
    size_t need = ts_b64_enc_len(hl) + ts_b64_enc_len(pl) + 2 + 44 + 1;
    if (need > cap) return 0;
    size_t n = tsb_b64url((const uint8_t *)header, hl, out);
    out[n++] = '.';
    n += tsb_b64url((const uint8_t *)payload, pl, out + n);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, (const uint8_t *)out, n, mac, &maclen)) return 0;
    out[n++] = '.';
    n += tsb_b64url(mac, maclen, out + n);
    return n;
}

size_t tsb_jwt_session(const void *key, size_t klen, const char *user, const char *session,
                       const char *device, const char *fingerprint, int64_t iat, int64_t exp,
                       char *out, size_t cap) {
    char fp[65], payload[600];
    tsb_sha256_hex(fingerprint, strlen(fingerprint), fp);
    int pn = snprintf(payload, sizeof payload,
                      "{\"sub\":\"%s\",\"sid\":\"%s\",\"dev\":\"%s\",\"fp\":\"%s\","
                      "\"iat\":%lld,\"exp\":%lld}",
                      user, session, device, fp, (long long)iat, (long long)exp);
    if (pn < 0 || (size_t)pn >= sizeof payload) return 0;
    return tsb_jwt_hs256(key, klen, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, out, cap);
}
