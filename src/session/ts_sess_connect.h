/* ts_sess_connect.h - the CONNECT auth payload of the /session namespace:
 *
 *   { "token": "<JWT>",
 *     "device": { "id": "<id>", "fingerprint": "<string>",
 *                 "type": "browser|mobile|desktop|server|cli",
 *                 "caps": ["<cap>", ...] },          (caps optional)
 *     "tab": { "id": "<id>" },
 *     "proto": 4,
 *     "elect": { "scopes": ["session", "device"],        (optional, protocol 4)
 *                "observer": false, "scores": false } }
 *
 * Parsed strictly: every field's type, size and alphabet is checked, an
 * unknown field is refused, and each problem has its own reason (see
 * ts_sess_auth.h). "pid" and "offset" (strings the Socket.IO client adds
 * for connection state recovery) are accepted and ignored. */
#ifndef TS_SESS_CONNECT_H
#define TS_SESS_CONNECT_H
#include <jansson.h>
#include <stddef.h>

#include "session/ts_sess_auth.h"

#define TS_SESS_PROTO_CURRENT 4 /* the version this server speaks */
#define TS_SESS_PROTO_HISTORY 3 /* the first with the session history; its entries say v 3 */
#define TS_SESS_PROTO_ELECT 4   /* the first with leader election (docs/ELECTION.md) */
#define TS_SESS_PROTO_MIN 1     /* the previous one, still accepted */
#define TS_SESS_FINGERPRINT_MAX 512 /* bytes of device.fingerprint */
#define TS_SESS_CAPS_MAX 32         /* entries of device.caps */
#define TS_SESS_CAP_LEN_MAX 32      /* bytes of one cap (the id alphabet) */
#define TS_SESS_RECOVERY_FIELD_MAX 256 /* bytes of pid / offset */

/* The elections a tab can take part in (docs/ELECTION.md). */
typedef enum ts_sess_scope_kind {
    TS_SESS_SCOPE_SESSION = 0, /* every device of (user, session) */
    TS_SESS_SCOPE_DEVICE,      /* the tabs of one device of (user, session) */
    TS_SESS_SCOPE_KINDS_
} ts_sess_scope_kind_t;

/* "session", "device"; NULL outside the enum. */
const char *ts_sess_scope_kind_name(ts_sess_scope_kind_t k);
/* The kind named by s[0..len), or -1. */
int ts_sess_scope_kind_parse(const char *s, size_t len);

typedef enum ts_sess_device_type {
    TS_SESS_DEV_BROWSER,
    TS_SESS_DEV_MOBILE,
    TS_SESS_DEV_DESKTOP,
    TS_SESS_DEV_SERVER,
    TS_SESS_DEV_CLI,
} ts_sess_device_type_t;

/* "browser", ...; NULL outside the enum. */
const char *ts_sess_device_type_name(ts_sess_device_type_t t);

typedef struct ts_sess_connect {
    char *token;       /* NUL-terminated copy (owned; freed by ts_sess_connect_deinit) */
    size_t token_len;  /* 1..TS_SESS_TOKEN_MAX */
    char device_id[TS_SESS_ID_MAX + 1];
    char fingerprint[TS_SESS_FINGERPRINT_MAX + 1]; /* UTF-8, no control characters */
    size_t fingerprint_len;
    ts_sess_device_type_t device_type;
    char caps[TS_SESS_CAPS_MAX][TS_SESS_CAP_LEN_MAX + 1];
    size_t n_caps;
    char tab_id[TS_SESS_ID_MAX + 1];
    int proto; /* TS_SESS_PROTO_MIN..TS_SESS_PROTO_CURRENT */
    unsigned elect_scopes; /* elect.scopes: bit (1 << ts_sess_scope_kind_t) each */
    int elect_observer;    /* elect.observer: never leads */
    int elect_scores;      /* elect.scores: views carry every member's score */
} ts_sess_connect_t;

/* Validates `auth` (borrowed; NULL counts as not an object) and copies its
 * fields into *out. Returns 0 (call ts_sess_connect_deinit later), or
 * TS_EPROTO with *deny filled (deny may be NULL) and nothing to free.
 * A token longer than TS_SESS_TOKEN_MAX is refused with TOKEN_TOO_LARGE;
 * its contents are left to ts_sess_auth_verify. */
int ts_sess_connect_parse(const json_t *auth, ts_sess_connect_t *out, ts_sess_deny_t *deny);
void ts_sess_connect_deinit(ts_sess_connect_t *c);

#endif
