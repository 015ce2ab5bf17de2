/* fuzz_sess_auth.c - libFuzzer driver for the /session authentication
 * path: the input is split at its first newline into a token (verified with
 * an HS256 secret and an RSA public key configured, so HS/RS confusion is
 * reachable) and a JSON CONNECT payload (parsed strictly; when it parses,
 * its own token is verified too and bound to its device). Checks the
 * contracts: a refusal has a known reason and a one-line message, accepted
 * claims are valid ids, nothing leaks. Seeds: fuzz/corpus/fuzz_sess_auth. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "session/ts_sess_auth.h"
#include "session/ts_sess_connect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NOW 1700000000LL
#define SECRET "fuzz-secret-0123456789abcdef0123456789"

/* tests/session/keys/rsa_public.pem (a test-only key). */
static const char rsa_public_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyY16NA5prE5AcfbvQQ9I\n"
    "zx5eU83K3N9f9lr7RhDPSWcpXtpKFycMW8xWnb3ZAmEW8XF916wt/UuYik7N9kiH\n"
    "+AGb4U0kYdqIoRnXjHX4QaVauAFYolhcY9Owia5fESAWtmpUzQ4A4dqgiiWuFyVi\n"
    "GSwzJ83e6UI7y6xlKuGl7q/pPRbf3a0ssZmOPMWv5jCu7qHkpYnAw23G/wS+wOQ2\n"
    "qop2kDwUb7vwwNCG5m+JPSutTriGYZDl8KeKHhSSZfLg0e3Vc+nI/F3wuxO1eF/0\n"
    "6eXiBamIG/uWDmiiETBVWjYjMpwAQfTAiJbzhRVYjnsJaDyI/vtuiYJdfK35Q8AK\n"
    "DwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static ts_sess_auth_t *verifier; /* built once: verification never mutates it */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    ts_sess_auth_cfg_t c;
    ts_sess_auth_cfg_init(&c);
    c.secrets[0] = TS_SLICE_LIT(SECRET);
    c.n_secrets = 1;
    c.public_key_pem = rsa_public_pem;
    c.public_key_len = sizeof rsa_public_pem - 1;
    char err[256];
    ts_assert(ts_sess_auth_new(&c, &verifier, err, sizeof err) == 0);
    return 0;
}

static void check_deny(const ts_sess_deny_t *d) {
    ts_assert(d->reason > TS_SESS_R_OK && d->reason < TS_SESS_R_COUNT_);
    ts_assert(d->msg[0] != '\0');
    ts_assert(strchr(d->msg, '\n') == NULL);
    ts_assert(strcmp(ts_sess_reason_name(d->reason), "unknown") != 0);
}

static void check_claims(const ts_sess_claims_t *c) {
    ts_assert(ts_sess_id_valid(c->sub, strlen(c->sub)));
    ts_assert(ts_sess_id_valid(c->sid, strlen(c->sid)));
    ts_assert(ts_sess_id_valid(c->dev, strlen(c->dev)));
    ts_assert(strlen(c->fp) == TS_SESS_FP_HEX_LEN);
    ts_assert(c->exp + TS_SESS_LEEWAY_DEFAULT > NOW);
    ts_assert(c->alg == TS_SESS_ALG_HS256 || c->alg == TS_SESS_ALG_RS256);
}

static void verify(const char *tok, size_t len, const char *dev, const char *fp, size_t fplen) {
    ts_sess_claims_t c;
    ts_sess_deny_t d;
    int rc = ts_sess_auth_verify(verifier, tok, len, NOW, &c, &d);
    if (rc != 0) {
        ts_assert(rc == TS_EAUTH);
        check_deny(&d);
        ts_assert(d.reason >= TS_SESS_R_TOKEN_TOO_LARGE &&
                  d.reason <= TS_SESS_R_TOKEN_INVALID_CLAIM);
        return;
    }
    check_claims(&c);
    if (!dev) return;
    rc = ts_sess_auth_bind(&c, dev, strlen(dev), fp, fplen, &d);
    if (rc != 0) {
        ts_assert(rc == TS_EAUTH);
        check_deny(&d);
        ts_assert(d.reason == TS_SESS_R_DEVICE_MISMATCH ||
                  d.reason == TS_SESS_R_FINGERPRINT_MISMATCH);
    } else {
        ts_assert(strcmp(c.dev, dev) == 0);
        ts_assert(ts_sess_fp_equal(c.fp, fp, fplen));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t tlen = nl ? (size_t)(nl - data) : size;
    verify((const char *)data, tlen, NULL, NULL, 0);
    if (!nl) return 0;

    const char *js = (const char *)nl + 1;
    size_t jlen = size - tlen - 1;
    json_t *auth = json_loadb(js, jlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    ts_sess_connect_t c;
    ts_sess_deny_t d;
    int rc = ts_sess_connect_parse(auth, &c, &d);
    if (rc != 0) {
        ts_assert(rc == TS_EPROTO);
        check_deny(&d);
        ts_assert(c.token == NULL);
    } else {
        ts_assert(c.token_len > 0 && c.token_len <= TS_SESS_TOKEN_MAX);
        ts_assert(ts_sess_id_valid(c.device_id, strlen(c.device_id)));
        ts_assert(ts_sess_id_valid(c.tab_id, strlen(c.tab_id)));
        ts_assert(c.fingerprint_len > 0 && c.fingerprint_len <= TS_SESS_FINGERPRINT_MAX);
        ts_assert(c.n_caps <= TS_SESS_CAPS_MAX);
        ts_assert(c.proto >= TS_SESS_PROTO_MIN && c.proto <= TS_SESS_PROTO_CURRENT);
        ts_assert(ts_sess_device_type_name(c.device_type) != NULL);
        verify(c.token, c.token_len, c.device_id, c.fingerprint, c.fingerprint_len);
        ts_sess_connect_deinit(&c);
    }
    json_decref(auth);
    return 0;
}
