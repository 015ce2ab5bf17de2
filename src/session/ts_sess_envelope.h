/* ts_sess_envelope.h - the envelope every /session application event
 * travels in: {v, type, id, cid, seq?, prio, to, body}. Pure validation and
 * construction over jansson values, shared by the namespace and the fuzzer. */
#ifndef TS_SESS_ENVELOPE_H
#define TS_SESS_ENVELOPE_H
#include <jansson.h>
#include <stddef.h>

#include "core/ts_buf.h"
#include "session/ts_sess_connect.h" /* TS_SESS_PROTO_CURRENT, TS_SESS_PROTO_MIN */

#define TS_SESS_MAX_NAME 64 /* type, id, cid: bytes */

/* Delivery priority, highest first (DESIGN.md). Under backpressure only
 * presence and telemetry may be coalesced; nothing else is dropped. */
typedef enum ts_sess_prio {
    TS_SESS_PRIO_SECURITY = 0, /* server only */
    TS_SESS_PRIO_CONTROL,
    TS_SESS_PRIO_STATE,
    TS_SESS_PRIO_EVENT,
    TS_SESS_PRIO_PRESENCE,
    TS_SESS_PRIO_TELEMETRY,
    TS_SESS_PRIO_COUNT
} ts_sess_prio_t;

/* Who receives a published envelope: every other tab of the sender's
 * session, of its user (all sessions), or of its device. Nothing else can
 * be named: the rooms come from the verified token. */
typedef enum ts_sess_scope {
    TS_SESS_TO_SESSION = 0,
    TS_SESS_TO_USER,
    TS_SESS_TO_DEVICE,
} ts_sess_scope_t;

typedef struct ts_sess_envelope {
    int v;
    const char *type;  /* borrowed from the parsed object */
    const char *id;
    const char *cid;   /* NULL if absent */
    ts_sess_prio_t prio;
    ts_sess_scope_t to;
    json_t *body;      /* borrowed; JSON null if absent */
    const char *client; /* exactly-once: the sender's client id, NULL if absent */
    uint64_t mut;      /* its mutation number (1..2^53-1), 0 if absent */
} ts_sess_envelope_t;

/* Validates an envelope sent by a client. Returns 0 and fills *out (which
 * borrows from `in`), or TS_EPROTO with a one-line reason in why[0..len):
 * not an object, unsupported version, missing/invalid type or id, cid not a
 * string, unknown or server-only priority, unknown scope, a `seq` (only the
 * server assigns those), a client that is not a name or a mut that is not
 * an integer from 1 to 2^53-1, a member that tries to address (room, rooms,
 * session, sid, user, device, tab, socket). Other unknown members are
 * ignored (and not relayed). */
int ts_sess_envelope_parse(json_t *in, ts_sess_envelope_t *out, char *why, size_t whylen);

/* Returns new: the envelope as other tabs receive it, with the sender added:
 * {v, type, id, [cid], prio, to, body, from: {user, device, tab}}. */
json_t *ts_sess_envelope_relay(const ts_sess_envelope_t *e, const char *user, const char *device,
                               const char *tab);

/* The same check over the canonical JSON text of the envelope (as a raw
 * event carries it, see ts_sio_raw_event_parse), without building a tree,
 * for the relay fast path: the same answers and reasons as
 * ts_sess_envelope_parse gives for the parsed value. *out borrows from
 * `in`. Returns 0, TS_EPROTO with why set, or TS_EINVAL if `in` is not
 * canonical JSON (use ts_sess_envelope_parse then). */
typedef struct ts_sess_envelope_raw {
    int v;
    ts_slice_t type, id;
    ts_slice_t cid; /* len 0 if absent or null */
    ts_sess_prio_t prio;
    ts_sess_scope_t to;
    ts_slice_t body; /* canonical text; "null" if absent */
    ts_slice_t client; /* len 0 if absent or null */
    uint64_t mut;      /* 0 if absent */
} ts_sess_envelope_raw_t;
int ts_sess_envelope_parse_raw(ts_slice_t in, ts_sess_envelope_raw_t *out, char *why,
                               size_t whylen);
/* The same for a text the caller knows is canonical (a raw argument of
 * ts_sio_raw_event_parse, which checked it): no second scan over it. */
int ts_sess_envelope_parse_canonical(ts_slice_t in, ts_sess_envelope_raw_t *out, char *why,
                                     size_t whylen);
/* Appends the relayed form (as ts_sess_envelope_relay builds it, written as
 * JSON.stringify writes it) to `out`. */
void ts_sess_envelope_relay_raw(const ts_sess_envelope_raw_t *e, const char *user,
                                const char *device, const char *tab, ts_sbuf_t *out);
/* The relayed form's end, `,"from":{...}}`, for a sender: the same for all
 * its envelopes, so a tab that publishes writes it once (returns new). */
ts_buf_t *ts_sess_envelope_from_tail(const char *user, const char *device, const char *tab);
/* ts_sess_envelope_relay_raw with that end (borrowed). */
void ts_sess_envelope_relay_raw_tail(const ts_sess_envelope_raw_t *e, ts_slice_t tail,
                                     ts_sbuf_t *out);

/* 1 if s is 1-64 characters of [A-Za-z0-9._:/-] (type, id, cid, client). */
int ts_sess_name_ok(const char *s);
/* Whether an envelope of this priority and scope joins the session history
 * (protocol v3): control, state and event to the session; presence,
 * telemetry and the user and device scopes are ephemeral. */
static inline int ts_sess_envelope_logged(ts_sess_prio_t prio, ts_sess_scope_t to) {
    return to == TS_SESS_TO_SESSION && prio >= TS_SESS_PRIO_CONTROL && prio <= TS_SESS_PRIO_EVENT;
}
const char *ts_sess_prio_name(ts_sess_prio_t p);
const char *ts_sess_scope_name(ts_sess_scope_t s);

/* The recovery offset of a session's log entry, "h<epoch>.<seq>": the epoch
 * in 16 lowercase hex digits, the seq in decimal. socket.io-client keeps the
 * last one it received and presents it when it reconnects; other nodes'
 * broadcasts carry it as their last argument. */
#define TS_SESS_OFFSET_MAX (1 + 16 + 1 + 20 + 1) /* with its NUL */
/* Writes the offset into out; returns its length. */
size_t ts_sess_offset_format(char out[TS_SESS_OFFSET_MAX], uint64_t epoch, uint64_t seq);
/* Reads one (hex digits of either case, the seq 0..2^64-1 without a sign
 * or leading zeros): 0 and its parts, or TS_EINVAL. */
int ts_sess_offset_parse(ts_slice_t text, uint64_t *epoch, uint64_t *seq);

#endif
