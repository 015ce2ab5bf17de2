/* identity.c - who a /session connection is: the CONNECT payload parsed
 * strictly (connect.c), the token verified (auth.c), and the token bound to
 * the device that presents it (its id and the hash of its fingerprint).
 * Only what survives all three becomes the socket's identity, and with it
 * the only rooms it will ever be in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "session/sess_int.h"
#include "session/ts_sess_connect.h"

/* The fp claim (64 lowercase hex digits, checked by auth.c) as its 32 bytes. */
static void fp_bytes(uint8_t out[32], const char *hex) {
    for (size_t i = 0; i < 32; i++) {
        uint8_t b = 0;
        for (size_t j = 0; j < 2; j++) {
            char c = hex[2 * i + j];
            b = (uint8_t)(b << 4 | (c <= '9' ? c - '0' : c - 'a' + 10));
        }
        out[i] = b;
    }
}

static int deny_out(const ts_sess_deny_t *d, char *why, size_t whylen) {
    snprintf(why, whylen, "%s", d->msg[0] ? d->msg : ts_sess_reason_text(d->reason));
    return d->reason ? (int)d->reason : (int)TS_SESS_R_TOKEN_MALFORMED;
}

int ts_sess__identify(ts_sess_t *sess, json_t *auth, uint64_t now_s, sess_ident_t *id, char *why,
                      size_t whylen) {
    memset(id, 0, sizeof(*id));
    id->user = id->session = id->device = id->tab = ""; /* until verified */
    ts_sess_connect_t c;
    ts_sess_deny_t deny = {0};
    if (ts_sess_connect_parse(auth, &c, &deny) != 0) return deny_out(&deny, why, whylen);
    ts_sess_claims_t claims;
    int reason = 0;
    if (ts_sess_auth_verify(sess->cfg.auth, c.token, c.token_len, (int64_t)now_s, &claims,
                            &deny) != 0 ||
        ts_sess_auth_bind(&claims, c.device_id, strlen(c.device_id), c.fingerprint,
                          c.fingerprint_len, &deny) != 0) {
        reason = deny_out(&deny, why, whylen);
        ts_sess_connect_deinit(&c);
        return reason;
    }
    ts_sess__ident_set(id, claims.sub, claims.sid, claims.dev, c.tab_id);
    fp_bytes(id->fp, claims.fp);
    id->device_type = (uint8_t)c.device_type;
    if (c.n_caps) {
        id->caps = json_array();
        for (size_t i = 0; i < c.n_caps; i++) json_array_append_new(id->caps, json_string(c.caps[i]));
    }
    id->proto = (uint8_t)c.proto; /* validated: TS_SESS_PROTO_MIN..TS_SESS_PROTO_CURRENT */
    id->elect_scopes = c.elect_scopes;
    id->elect_observer = c.elect_observer != 0;
    id->elect_scores = c.elect_scores != 0;
    id->exp = claims.exp;
    ts_sess_connect_deinit(&c);
    return 0;
}

int ts_sess__reauth(ts_sess_t *sess, const sess_ident_t *cur, const char *token, uint64_t now_s,
                    int64_t *exp, char *why, size_t whylen) {
    size_t len = strlen(token);
    ts_sess_claims_t claims;
    ts_sess_deny_t deny = {0};
    if (len > TS_SESS_TOKEN_MAX) {
        snprintf(why, whylen, "%s", ts_sess_reason_text(TS_SESS_R_TOKEN_TOO_LARGE));
        return TS_SESS_R_TOKEN_TOO_LARGE;
    }
    if (ts_sess_auth_verify(sess->cfg.auth, token, len, (int64_t)now_s, &claims, &deny) != 0)
        return deny_out(&deny, why, whylen);
    /* the same identity, bound to the same device: a swap may extend a
     * connection's life, never change who it is */
    if (strcmp(claims.sub, cur->user) || strcmp(claims.sid, cur->session) ||
        strcmp(claims.dev, cur->device)) {
        snprintf(why, whylen, "the new token is for another user, session or device");
        return TS_SESS_R_TOKEN_INVALID_CLAIM;
    }
    uint8_t fp[32];
    fp_bytes(fp, claims.fp);
    if (memcmp(fp, cur->fp, sizeof fp) != 0) {
        snprintf(why, whylen, "%s", ts_sess_reason_text(TS_SESS_R_FINGERPRINT_MISMATCH));
        return TS_SESS_R_FINGERPRINT_MISMATCH;
    }
    *exp = claims.exp;
    return 0;
}

static void ids_free(sess_ident_t *id) {
    if (id->owned) free((char *)(uintptr_t)id->user);
    id->owned = 0;
}

void ts_sess__ident_clear(sess_ident_t *id) {
    json_decref(id->caps);
    id->caps = NULL;
    ids_free(id);
    id->user = id->session = id->device = id->tab = "";
}

void ts_sess__ident_set(sess_ident_t *id, const char *user, const char *session,
                        const char *device, const char *tab) {
    size_t lu = strlen(user), ls = strlen(session), ld = strlen(device), lt = strlen(tab);
    char *p = ts_xmalloc(lu + ls + ld + lt + 4);
    const char *u = memcpy(p, user, lu + 1);
    const char *s = memcpy(p += lu + 1, session, ls + 1);
    const char *d = memcpy(p += ls + 1, device, ld + 1);
    const char *t = memcpy(p + ld + 1, tab, lt + 1);
    ids_free(id); /* after copying: the new ids may be the old ones */
    id->owned = 1;
    id->user = u;
    id->session = s;
    id->device = d;
    id->tab = t;
}

int ts_sess__dev_mint(ts_sess_t *sess, const char *user, const char *session, const char *device,
                      const char *fingerprint, uint32_t ttl_s, char **token, int64_t *exp) {
    if (!ttl_s) ttl_s = TS_SESS_MINT_TTL_DEFAULT;
    if (ttl_s > TS_SESS_MINT_TTL_MAX) return TS_EINVAL;
    char err[160];
    int64_t now = (int64_t)(ts_wall_ms() / 1000);
    ts_sess_mint_t m = {.user = user,
                        .session = session,
                        .device = device,
                        .fingerprint = fingerprint,
                        .now = now,
                        .ttl_s = ttl_s};
    int rc = ts_sess_auth_mint(sess->cfg.auth, &m, token, err, sizeof err);
    if (rc) return rc;
    *exp = now + (int64_t)ttl_s;
    return 0;
}

int ts_sess_api_dev_token(ts_sess_t *sess, const char *user, const char *session,
                          const char *device, const char *fingerprint, uint32_t ttl_s,
                          char **token, int64_t *exp) {
    if (!sess->cfg.dev) return TS_EFORBIDDEN;
    const char *const vals[] = {user, session, device, fingerprint};
    for (size_t i = 0; i < TS_ARRAY_LEN(vals); i++)
        if (!vals[i] || !ts_sess_id_valid(vals[i], strlen(vals[i]))) return TS_EINVAL;
    return ts_sess__dev_mint(sess, user, session, device, fingerprint, ttl_s, token, exp);
}
