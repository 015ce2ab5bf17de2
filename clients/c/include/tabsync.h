/* tabsync.h - libtabsync, the C client of tabsyncd (and of any Socket.IO v5
 * server reachable over a plain WebSocket). The one installed header of the
 * library: everything it exports is declared here and starts with ts_client_. */
#ifndef TABSYNC_H
#define TABSYNC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TS_CLIENT_BUILDING) && defined(__GNUC__)
#define TS_CLIENT_API __attribute__((visibility("default")))
#else
#define TS_CLIENT_API
#endif

#define TS_CLIENT_VERSION_MAJOR 0
#define TS_CLIENT_VERSION_MINOR 1
#define TS_CLIENT_VERSION_PATCH 0
#define TS_CLIENT_VERSION_STRING "0.1.0"

/*-****************************************************************************
 * Introduction
 *
 * libtabsync connects a program running a libuv loop to a Socket.IO v5 server
 * (tabsyncd, or Node's `socket.io` 4.x) over the websocket transport, plain
 * or over TLS:
 *
 *   WebSocket (RFC 6455, client side: masked frames, Sec-WebSocket-Accept checked)
 *   Engine.IO v4 (websocket transport only: pings answered with pongs, a
 *                 server silent for pingInterval + pingTimeout is declared dead)
 *   Socket.IO v5 (one namespace per client object, auth on CONNECT, events with
 *                 JSON arguments and binary attachments, acks in both
 *                 directions, the JSON parser or socket.io-msgpack-parser)
 *
 * plus what socket.io-client users expect: reconnection with exponential
 * backoff and jitter, emits buffered while disconnected, and connection
 * state recovery (the server's `pid` and the last event offset are sent back
 * on reconnection; a recovered connection keeps its id and rooms and
 * receives the events it missed).
 *
 * For tabsyncd's /session namespace (tabs and devices of a user kept in
 * sync) there is a typed layer on top: ts_client_session_new builds the
 * authenticated CONNECT, and publish / metadata / token swap / welcome /
 * envelopes / security notices have their own calls and callbacks (section
 * "The /session namespace").
 *
 * Shape of a program:
 *
 *   static void on_event(ts_client_t *c, const ts_client_event_t *ev, void *u) {
 *       printf("%s %s\n", ev->name, ev->args_json);
 *   }
 *   ...
 *   ts_client_opts_t o;
 *   ts_client_opts_init(&o);
 *   o.url = "ws://127.0.0.1:3000/socket.io/";
 *   o.auth_json = "{\"token\":\"...\"}";
 *   o.cb.on_event = on_event;
 *   ts_client_t *c;
 *   char err[256];
 *   if (ts_client_new(loop, &o, &c, err, sizeof err) < 0) { puts(err); exit(2); }
 *   ts_client_connect(c);
 *   ts_client_emit(c, "message", "[\"hello\", 1]");
 *   uv_run(loop, UV_RUN_DEFAULT);   // until ts_client_close(c, ...) completes
 *
 * Threads: a client belongs to its loop. Call every function from the loop's
 * thread; callbacks run on it. Different clients on different loops are
 * independent.
 *
 * Callbacks may call any function of this API, including ts_client_close on
 * the client that is calling back.
 *
 * Memory: allocations libtabsync makes itself are checked; a failure returns
 * TS_ENOMEM (or, inside the I/O path, drops the connection with TS_ENOMEM
 * reported through on_error). LIMITATION: the protocol codecs are shared
 * with tabsyncd and allocate with an aborting allocator: if malloc fails
 * while a WebSocket message or a Socket.IO packet is encoded or decoded,
 * the process prints "out of memory" and aborts. Sizes a server can
 * influence are bounded (opts.max_message) before those codecs allocate.
 *
 * TLS: wss:// and https:// URLs connect over TLS 1.2+ (OpenSSL), verifying
 * the server's certificate against the system's trust store or
 * opts.tls_ca_file, and its name against the URL's host.
 *
 * Not supported (yet): the HTTP long-polling transport, several namespaces
 * over one connection (use one client per namespace: each has its own
 * connection), custom HTTP headers, client certificates.
 ******************************************************************************/

/*-****************************************************************************
 * Errors
 *
 * Functions return 0 (or a positive count) on success and a negative code on
 * failure. Codes are tabsync's TS_E* values below (identical to the server's
 * error table) or libuv's negative errno values (UV_ECONNREFUSED, ...).
 * ts_client_strerror() turns either into a message.
 ******************************************************************************/
#ifndef TS_ERR_H /* the server's error table defines the same names and values */
enum {
    TS_EINTERNAL = -1000, /* a bug in libtabsync */
    TS_ENOMEM = -1001,    /* out of memory */
    TS_EINVAL = -1002,    /* invalid argument (bad URL, JSON that is not an array, ...) */
    TS_ECLOSED = -1003,   /* the client is closing, or the connection was lost */
    TS_EPROTO = -1100,    /* the server sent something the protocol does not allow */
    TS_ETOOBIG = -1101,   /* a message over max_message, or over the server's maxPayload */
    TS_EUTF8 = -1102,     /* the server sent invalid UTF-8 in a text frame */
    TS_EJSON = -1103,     /* invalid JSON */
    TS_ENOTFOUND = -1105, /* no such pending ack */
    TS_ESTATE = -1106,    /* not valid in the current state */
    TS_ELIMIT = -1107,    /* a limit was reached (send buffer, reconnection attempts) */
    TS_ETIMEDOUT = -1108, /* connect or ack timeout */
};
#endif

/* Returns: a message for any code this library returns ("connection
 * refused", "malformed protocol data", ...); never NULL. */
TS_CLIENT_API const char *ts_client_strerror(int err);

/* Returns: the code's name ("TS_EPROTO", "ECONNREFUSED"); never NULL. */
TS_CLIENT_API const char *ts_client_err_name(int err);

/* Returns: the library's version, "0.1.0". */
TS_CLIENT_API const char *ts_client_version(void);

/*-****************************************************************************
 * Types
 ******************************************************************************/
typedef struct ts_client ts_client_t; /* opaque */

typedef enum ts_client_parser {
    TS_CLIENT_PARSER_JSON = 0,    /* socket.io-parser, the Socket.IO default */
    TS_CLIENT_PARSER_MSGPACK = 1, /* socket.io-msgpack-parser (the server must use it too) */
} ts_client_parser_t;

typedef enum ts_client_state {
    TS_CLIENT_DISCONNECTED = 0, /* not connected and not trying (initial state too) */
    TS_CLIENT_CONNECTING = 1,   /* an attempt is in progress (TCP, WebSocket, Engine.IO, CONNECT) */
    TS_CLIENT_CONNECTED = 2,    /* the namespace is connected: events flow */
    TS_CLIENT_RECONNECT_WAIT = 3, /* waiting for the backoff delay before the next attempt */
    TS_CLIENT_CLOSING = 4,      /* ts_client_close was called */
} ts_client_state_t;

/* A run of bytes (a binary attachment). */
typedef struct ts_client_bytes {
    const uint8_t *data;
    size_t len;
} ts_client_bytes_t;

/* An event from the server, or the arguments of an ack (then name is NULL).
 * Everything is borrowed for the duration of the callback only. */
typedef struct ts_client_event {
    const char *name;      /* event name; a numeric name is given as its decimal text */
    const char *args_json; /* the arguments after the name, as a JSON array text ("[]" if none),
                              written as JavaScript's JSON.stringify would write them; each
                              binary value appears as {"_placeholder":true,"num":i} */
    size_t nattach;        /* binary attachments; placeholder i is attach[i] */
    const ts_client_bytes_t *attach;
    int64_t ack_id;        /* >= 0: the server waits for ts_client_ack(c, ack_id, ...);
                              -1: no ack wanted */
} ts_client_event_t;

/* Note on recovery offsets: when the server has connection state recovery
 * on, it appends an offset string as the last argument of every event
 * emitted without an ack (tabsyncd: "Ab3dEf9x.42"). libtabsync records it
 * and, like socket.io-client, still passes it to on_event as the last
 * element of args_json. */

typedef struct ts_client_callbacks {
    /* The namespace is connected (after each successful (re)connection).
     * recovered = 1 when the server restored the previous session (same id,
     * same rooms, missed events delivered right before this call). */
    void (*on_connect)(ts_client_t *c, int recovered, void *user);
    /* A connection that on_connect announced is gone. reason is one of the
     * socket.io-client strings: "io server disconnect" (the server's
     * DISCONNECT; no reconnection), "transport close", "transport error",
     * "ping timeout", "parse error". will_reconnect = 1 when a reconnection
     * is scheduled (on_reconnect_attempt follows). Not called for
     * ts_client_close: its callback is the last word. */
    void (*on_disconnect)(ts_client_t *c, const char *reason, int will_reconnect, void *user);
    /* An event from the server. */
    void (*on_event)(ts_client_t *c, const ts_client_event_t *ev, void *user);
    /* The server refused the namespace connection (CONNECT_ERROR): message
     * is its message, data_json its `data` as JSON text or NULL. The client
     * is DISCONNECTED afterwards and does not retry (ts_client_connect may). */
    void (*on_connect_error)(ts_client_t *c, const char *message, const char *data_json,
                             void *user);
    /* A connection attempt failed or a connection broke: err is a TS_E* or
     * libuv code, msg one line saying what happened ("connect to
     * 127.0.0.1:3000: connection refused"). If no further attempt will be
     * made, ts_client_state(c) is already TS_CLIENT_DISCONNECTED here (after
     * the last of reconnection_attempts, err is TS_ELIMIT). */
    void (*on_error)(ts_client_t *c, int err, const char *msg, void *user);
    /* A reconnection attempt is scheduled in delay_ms (attempt counts from 1
     * and restarts after each successful connection). */
    void (*on_reconnect_attempt)(ts_client_t *c, unsigned attempt, unsigned delay_ms, void *user);
} ts_client_callbacks_t;

typedef struct ts_client_opts {
    /* Required. ws://HOST[:PORT][/PATH][?QUERY] or http://... (the same),
     * wss:// or https:// for TLS (port 443 by default). PATH is the
     * Engine.IO path, "/socket.io/" when empty or "/"; QUERY is added to the
     * handshake request. HOST may be a name, an IPv4 address or [an IPv6
     * address]. */
    const char *url;
    const char *nsp;       /* namespace, "/" when NULL; must start with '/' */
    const char *auth_json; /* NULL, or a JSON object sent in CONNECT (the server's handshake.auth) */
    ts_client_parser_t parser;
    int reconnection;              /* 1: reconnect after a lost connection or failed attempt */
    unsigned reconnection_attempts; /* 0: unlimited */
    unsigned backoff_min_ms;       /* first delay; 0 = 1000 */
    unsigned backoff_max_ms;       /* cap; 0 = 5000 */
    double backoff_jitter;         /* 0..1: the delay varies by +-jitter * delay */
    unsigned connect_timeout_ms;   /* for one attempt, up to the CONNECT reply; 0 = 20000 */
    size_t max_message;            /* largest message accepted from the server; 0 = 16 MiB */
    size_t max_buffered;           /* emits held while not connected; 0 = 1024 */
    ts_client_callbacks_t cb;      /* any may be NULL */
    void *user;                    /* passed to every callback */
    /* TLS (wss://, https://): the server's certificate must chain to one in
     * tls_ca_file (a PEM file; read by ts_client_new) or, when NULL, in the
     * system's trust store, and must be for the URL's host (name or
     * address). tls_insecure = 1 accepts any certificate: for debugging
     * only, anyone on the path can then read and change the traffic. */
    const char *tls_ca_file;
    int tls_insecure;
} ts_client_opts_t;

/*-****************************************************************************
 * Life cycle
 ******************************************************************************/

/* Sets the defaults: url NULL, nsp "/", JSON parser, reconnection on,
 * unlimited attempts, backoff 1000..5000 ms with jitter 0.5, connect
 * timeout 20 s, no callbacks. (A zeroed struct is also valid: then
 * reconnection is off and jitter is 0.) */
TS_CLIENT_API void ts_client_opts_init(ts_client_opts_t *opts);

/* Creates a client on `loop` (borrowed: it must outlive the client). Copies
 * everything it needs from `opts` (borrowed). Does not connect yet.
 * Returns: 0 and *out (close it with ts_client_close); TS_EINVAL with a
 * sentence in errbuf (if not NULL) naming the bad option, e.g. `url:
 * scheme "ftp" is not supported (expected ws://, wss://, http:// or
 * https://)` or `tls_ca_file: cannot load trusted certificates from
 * ca.pem: no certificate or crl found`; TS_ENOMEM. */
TS_CLIENT_API int ts_client_new(uv_loop_t *loop, const ts_client_opts_t *opts,
                                ts_client_t **out, char *errbuf, size_t errlen);

/* Starts connecting (name resolution, TCP, WebSocket, Engine.IO, CONNECT).
 * The outcome arrives as on_connect, or on_error / on_connect_error.
 * Also valid when DISCONNECTED again (a failure with reconnection off, a
 * refusal, the server's DISCONNECT): if the last connection was lost to the
 * network, its pid and offset are sent, so the server may recover it.
 * Returns: 0; TS_ESTATE if already connecting, connected or waiting to
 * reconnect (then it does nothing); TS_ECLOSED if closing. */
TS_CLIENT_API int ts_client_connect(ts_client_t *c);

typedef void (*ts_client_close_cb)(ts_client_t *c, void *user);

/* Closes the client: if connected, sends DISCONNECT and a WebSocket close
 * and waits (at most 1 s) for the server's close; stops reconnecting;
 * completes every pending ack with TS_ECLOSED; drops buffered emits. Then
 * cb (may be NULL) is called once, from the loop, never from inside this
 * call, and the client's memory is freed when cb returns. No other callback
 * runs after this call except those acks. Calling it twice is a no-op. */
TS_CLIENT_API void ts_client_close(ts_client_t *c, ts_client_close_cb cb);

/*-****************************************************************************
 * Events
 *
 * args_json is NULL (no arguments) or the text of a JSON array whose
 * elements are the arguments: "[1, \"two\", {\"three\": 3}]". While the
 * client is not connected, emits are buffered (up to max_buffered) and sent
 * in order once it connects, as socket.io-client does.
 ******************************************************************************/

/* Emits `event` (borrowed) with arguments. Returns: 0 (sent or buffered);
 * TS_EINVAL (empty or reserved event name, args_json not a JSON array);
 * TS_ETOOBIG (larger than the server's maxPayload); TS_ELIMIT (send buffer
 * full while disconnected); TS_ECLOSED (closing); TS_ENOMEM. */
TS_CLIENT_API int ts_client_emit(ts_client_t *c, const char *event, const char *args_json);

/* Completion of an emit with ack. status 0: the server answered, reply
 * holds its arguments (reply->name is NULL). status TS_ETIMEDOUT: no answer
 * within timeout_ms (counted from the emit, buffered time included);
 * TS_ECLOSED: the connection was lost after the emit was sent (an answer
 * can no longer come: acks are not replayed by recovery) or the client was
 * closed; TS_ETOOBIG / TS_ENOMEM: an emit buffered while disconnected could
 * not be sent once connected (over the server's maxPayload, out of memory).
 * reply is NULL unless status is 0. */
typedef void (*ts_client_ack_cb)(ts_client_t *c, int status, const ts_client_event_t *reply,
                                 void *ud);

/* Emits `event` and waits for the server's ack. timeout_ms 0 = no timeout.
 * Returns: as ts_client_emit. If it returns 0, cb is called exactly once,
 * later (never from inside this call); otherwise never. */
TS_CLIENT_API int ts_client_emit_ack(ts_client_t *c, const char *event, const char *args_json,
                                     ts_client_ack_cb cb, void *ud, unsigned timeout_ms);

/* The general form: binary attachments (borrowed; copied before return)
 * referenced from args_json by {"_placeholder":true,"num":i} objects, and
 * an optional ack (cb NULL: none). Returns: as ts_client_emit_ack, and
 * TS_EINVAL when a placeholder is out of range. */
TS_CLIENT_API int ts_client_emit_binary(ts_client_t *c, const char *event, const char *args_json,
                                        const ts_client_bytes_t *attach, size_t nattach,
                                        ts_client_ack_cb cb, void *ud, unsigned timeout_ms);

/* Answers an event the server emitted with an ack (ev->ack_id >= 0), with
 * arguments args_json (NULL: none). Valid once per ack id, on the
 * connection that delivered the event.
 * Returns: 0; TS_ENOTFOUND (no such pending ack: already answered, or the
 * connection it came on is gone); TS_EINVAL (args_json not a JSON array);
 * TS_ECLOSED; TS_ENOMEM. */
TS_CLIENT_API int ts_client_ack(ts_client_t *c, int64_t ack_id, const char *args_json);

/*-****************************************************************************
 * The /session namespace
 *
 * tabsyncd's /session namespace (docs/PROTOCOL.md, "The /session namespace")
 * keeps a user's tabs and devices in sync. A session client is an ordinary
 * client, so every function above works on it, made by
 * ts_client_session_new, which adds three things:
 *
 *   1. the CONNECT auth object, built from the options and JSON-escaped:
 *        {"token": T, "device": {"id", "fingerprint", "type", "caps"},
 *         "tab": {"id"}, "proto": 2 (or opts.proto)}
 *      and sent to the namespace "/session";
 *   2. typed callbacks for what the server sends: `welcome` (who the
 *      server thinks you are), `event` (an envelope another tab published,
 *      with `from`), `security` (token_expiring, then token_expired just
 *      before the server disconnects) and `error` (an event sent without
 *      an ack was refused). When a typed callback is NULL, that event goes
 *      to cb.on_event like any other (name "welcome", "event", ...; the
 *      object is the first element of args_json);
 *   3. publish, metadata and token swap, answered by a ts_client_result_t;
 *   4. with protocol 4, leader election (section "Leader election").
 *
 * A refused connection arrives as cb.on_connect_error: message is the
 * server's sentence, data_json is {"code":"...","retry_after_ms":N} with
 * the code from docs/PROTOCOL.md (auth_missing_field, token_expired,
 * fingerprint_mismatch, throttled, ...; retry_after_ms only for throttled
 * and store_unavailable). The client does not retry a refusal.
 *
 * Shape of a program:
 *
 *   static void on_env(ts_client_t *c, const ts_client_envelope_t *e, void *u) {
 *       printf("%s from tab %s: %s\n", e->type, e->from_tab, e->body_json);
 *   }
 *   ...
 *   ts_client_session_opts_t so;
 *   ts_client_session_opts_init(&so);
 *   so.client.url = "http://127.0.0.1:3000/";
 *   so.token = token;                        // e.g. from `tabsyncd token ...`
 *   so.device_id = "laptop-7";
 *   so.fingerprint = "stable device secret";  // SHA-256 of it = the token's fp
 *   so.scb.on_envelope = on_env;
 *   ts_client_t *c;
 *   if (ts_client_session_new(loop, &so, &c, err, sizeof err) < 0) ...
 *   ts_client_connect(c);
 *   ts_client_publish(c, "cart.update", NULL, "{\"items\":3}", TS_CLIENT_TO_SESSION,
 *                     TS_CLIENT_PRIO_DEFAULT, on_published, NULL);
 ******************************************************************************/

/* Who receives a published envelope (the server derives the rooms from the
 * token: no other target can be named). */
typedef enum ts_client_scope {
    TS_CLIENT_TO_SESSION = 0, /* every other tab of this session (the default) */
    TS_CLIENT_TO_USER = 1,    /* every other tab of this user, all sessions and devices */
    TS_CLIENT_TO_DEVICE = 2,  /* every other tab of this user on this device, all sessions */
} ts_client_scope_t;

/* Delivery priority of an envelope (`security` is the server's own). */
typedef enum ts_client_prio {
    TS_CLIENT_PRIO_DEFAULT = 0, /* not sent: the server's default, "event" */
    TS_CLIENT_PRIO_CONTROL = 1,
    TS_CLIENT_PRIO_STATE = 2,
    TS_CLIENT_PRIO_EVENT = 3,
    TS_CLIENT_PRIO_PRESENCE = 4,
    TS_CLIENT_PRIO_TELEMETRY = 5,
} ts_client_prio_t;

/* Every string of the structs below is borrowed for the duration of the
 * callback only; `json` is the whole object as the server sent it
 * (written as JSON.stringify would), for members this struct does not
 * name. A member the server left out is NULL (strings) or 0 (numbers). */

/* `welcome`: sent right after each connection. */
typedef struct ts_client_welcome {
    const char *user, *session, *device, *tab; /* from the verified token and the auth object */
    const char *node;                          /* the server's node id */
    int proto;                                 /* the /session protocol version in use */
    int64_t exp;                               /* the token's expiry, seconds since 1970 */
    const char *json;
} ts_client_welcome_t;

/* `event`: an envelope another tab published to a scope this tab is in. */
typedef struct ts_client_envelope {
    int v;                   /* envelope version (1, 2 or 3) */
    const char *type;        /* the application's event name */
    const char *id;          /* unique per sender */
    const char *cid;         /* correlation id, or NULL */
    const char *prio;        /* "control", "state", "event", "presence" or "telemetry" */
    const char *to;          /* "session", "user" or "device": the scope it was sent to */
    const char *body_json;   /* the body as JSON text ("null" when absent) */
    const char *from_user;   /* the sender, as the server verified it */
    const char *from_device;
    const char *from_tab;
    const char *json;
} ts_client_envelope_t;

/* `security`: code "token_expiring" (about 60 s before exp: send a fresh
 * token with ts_client_swap_token) or "token_expired" (the server
 * disconnects right after; on_disconnect follows with "io server
 * disconnect"). */
typedef struct ts_client_security {
    const char *code;
    int64_t exp;         /* the expiry the notice is about */
    const char *message; /* a sentence for people */
    const char *json;
} ts_client_security_t;

/* The answer to publish, metadata or token swap; also what an `error`
 * event carries. */
typedef struct ts_client_result {
    int ok;                 /* 1: done; 0: refused, see code */
    const char *id;         /* publish: the envelope id (the generated one if id was NULL) */
    int64_t exp;            /* token swap: the new token's expiry */
    const char *code;       /* refused: "bad_envelope", "bad_metadata", "throttled",
                               "token_expired", "device_mismatch", ... (docs/PROTOCOL.md) */
    const char *message;    /* refused: a sentence saying why */
    int64_t retry_after_ms; /* refused with "throttled": try again after this; else 0 */
    const char *json;       /* the whole answer, e.g. {"ok":true,"id":"x"} */
} ts_client_result_t;

/* Completion of a publish, metadata or token swap. status 0: the server
 * answered and r says how (r->ok). Otherwise r is NULL and status is as for
 * ts_client_ack_cb (TS_ETIMEDOUT, TS_ECLOSED, ...) or TS_EPROTO (the answer
 * was not {ok: ...}). */
typedef void (*ts_client_result_cb)(ts_client_t *c, int status, const ts_client_result_t *r,
                                    void *ud);

struct ts_client_elect_view; /* section "Leader election" */

typedef struct ts_client_session_callbacks {
    void (*on_welcome)(ts_client_t *c, const ts_client_welcome_t *w, void *user);
    void (*on_envelope)(ts_client_t *c, const ts_client_envelope_t *e, void *user);
    void (*on_security)(ts_client_t *c, const ts_client_security_t *s, void *user);
    /* the server's `error` event: r->ok is 0, code/message/retry_after_ms
     * say what was refused (a publish without cb, for instance) */
    void (*on_refused)(ts_client_t *c, const ts_client_result_t *r, void *user);
    /* Protocol 4: an election view (`elect` event) of a scope this tab is
     * in, after the library has taken it into account (so
     * ts_client_is_leader already answers by it). See "Leader election". */
    void (*on_elect)(ts_client_t *c, const struct ts_client_elect_view *v, void *user);
    /* Protocol 4: what ts_client_is_leader(c, scope, ...) answers changed.
     * leading = 0: stop leader-only work now; reason is "deadline" (no
     * heartbeat was acknowledged in time), "stale_term" (the server
     * refused this term), "resigned", "left", "disconnected", or the
     * reason of the view that named someone else ("preempt", "demotion",
     * "rotation", "lapse", ...). leading = 1: reason "elected" (a view made
     * this tab leader of `term`) or "renewed" (an acknowledged heartbeat
     * after a "deadline" or "disconnected" loss of the same term). Called
     * from the loop, never from inside a call of this API. scope is a
     * ts_client_elect_scope_t. */
    void (*on_leadership)(ts_client_t *c, int scope, int64_t term, int leading,
                          const char *reason, void *user);
} ts_client_session_callbacks_t;

typedef struct ts_client_session_opts {
    /* The ordinary options: url (the server, e.g. "http://host:3000/"),
     * reconnection, timeouts, cb, user. client.nsp NULL means "/session";
     * client.auth_json must be NULL (the auth object is built from the
     * fields below). */
    ts_client_opts_t client;
    const char *token;       /* required: the JWT (sub, sid, dev, fp, exp claims) */
    const char *device_id;   /* required: must equal the token's dev claim */
    const char *fingerprint; /* required: its SHA-256 must equal the token's fp claim */
    const char *device_type; /* "browser", "mobile", "desktop", "server" or "cli"; NULL = "server" */
    const char *const *caps; /* ncaps capability names (NULL when ncaps is 0), sent as device.caps */
    size_t ncaps;
    const char *tab_id;      /* this tab's id; NULL = a random "tab-" id */
    int proto;               /* /session protocol version: 1 to 4; 0 = 2 (4 with elect_*).
                                With 3 the welcome also has epoch, seq and ver (in its json), and
                                the session history's events (state, sync) are sent with
                                ts_client_emit_ack, their answers read from args_json;
                                other tabs' `change` events arrive at cb.on_event */
    unsigned ack_timeout_ms; /* for publish, metadata, token swap, elections; 0 = 10000 */
    ts_client_session_callbacks_t scb; /* any may be NULL */
    /* Protocol 4, leader election (section "Leader election"): the scopes
     * to join at connect, an OR of TS_CLIENT_ELECT_SESSION and
     * TS_CLIENT_ELECT_DEVICE (0: none), sent as the auth object's
     * `elect: {scopes, observer, scores}`. elect_observer = 1: see the
     * views, never lead, never backup, no tasks. elect_scores = 1: views
     * carry every member's score. Any of the three set makes proto 4
     * (proto must then be 0 or 4). */
    unsigned elect_scopes;
    int elect_observer;
    int elect_scores;
} ts_client_session_opts_t;

/* Sets the defaults: ts_client_opts_init for client (then client.nsp =
 * "/session"), every other field NULL or 0. */
TS_CLIENT_API void ts_client_session_opts_init(ts_client_session_opts_t *opts);

/* Builds the CONNECT auth object of `opts` (borrowed) as JSON text, the
 * same that ts_client_session_new sends, for programs that connect by
 * other means. A NULL tab_id gets a random id.
 * Returns: 0 and *out, new (free it with ts_client_free); TS_EINVAL with a
 * sentence in errbuf (if not NULL) naming the field that is missing or not
 * UTF-8; TS_ENOMEM. The server checks the rest (alphabets, lengths, the
 * token): its refusal comes as on_connect_error. */
TS_CLIENT_API int ts_client_session_auth_json(const ts_client_session_opts_t *opts, char **out,
                                              char *errbuf, size_t errlen);

/* Frees what ts_client_session_auth_json returned. NULL is a no-op. */
TS_CLIENT_API void ts_client_free(void *p);

/* Creates a /session client on `loop`, as ts_client_new does (copies what
 * it needs from `opts`, does not connect yet).
 * Returns: 0 and *out; TS_EINVAL with a sentence in errbuf (a missing
 * field, client.auth_json set, or whatever ts_client_new refuses);
 * TS_ENOMEM. */
TS_CLIENT_API int ts_client_session_new(uv_loop_t *loop, const ts_client_session_opts_t *opts,
                                        ts_client_t **out, char *errbuf, size_t errlen);

/* Returns: the tab id this client sends (borrowed, lives as long as the
 * client), or NULL if c is not a /session client. */
TS_CLIENT_API const char *ts_client_session_tab(const ts_client_t *c);

/* Publishes an envelope {v: 2, type, id, prio, to, body} to `scope`: the
 * other tabs there receive it as `event`, with `from` added by the server;
 * this tab does not. type: the application's event name, id: unique per
 * sender, NULL = generated (the answer reports it). Both must be 1-64
 * characters of [A-Za-z0-9._:/-]; the server checks that and refuses with
 * code "bad_envelope". body_json: any JSON value as text, NULL = null.
 * cb NULL: no ack is asked for; a refusal then comes as scb.on_refused.
 * While not connected the publish is buffered, as emits are.
 * Returns: 0 (cb, if any, is called exactly once, never from inside this
 * call); TS_EINVAL (not a /session client, type or id empty or not UTF-8,
 * body_json not JSON, scope or prio out of range); then as ts_client_emit (TS_ELIMIT,
 * TS_ECLOSED, TS_ETOOBIG, TS_ENOMEM): cb is not called. */
TS_CLIENT_API int ts_client_publish(ts_client_t *c, const char *type, const char *id,
                                    const char *body_json, ts_client_scope_t scope,
                                    ts_client_prio_t prio, ts_client_result_cb cb, void *ud);

/* Reports this tab's metadata for the server's registry: a JSON object
 * {network: {effectiveType, downlink, rtt}, battery: {level, charging},
 * visibility: "visible"|"hidden", type?} (docs/PROTOCOL.md). The server
 * answers {ok: true} or refuses with code "bad_metadata".
 * Returns: as ts_client_publish (TS_EINVAL when json is not a JSON object). */
TS_CLIENT_API int ts_client_set_metadata(ts_client_t *c, const char *json,
                                         ts_client_result_cb cb, void *ud);

/* Swaps the connection's token for a fresh one (same user, session and
 * device) without reconnecting; do it when on_security says
 * "token_expiring". On success (r->ok, r->exp the new expiry) the new
 * token also replaces the one sent when the client reconnects; a refused
 * token (r->code: token_expired, token_invalid_claim, ...) changes nothing.
 * Returns: 0 (cb called exactly once, later); TS_EINVAL (not a /session
 * client, token empty or not UTF-8, cb NULL); TS_ESTATE (not connected:
 * use ts_client_set_token); TS_ECLOSED; TS_ENOMEM. */
TS_CLIENT_API int ts_client_swap_token(ts_client_t *c, const char *token, ts_client_result_cb cb,
                                       void *ud);

/* Replaces the token sent with the next CONNECT (after a token_expired
 * disconnect, say), without telling the server now.
 * Returns: 0; TS_EINVAL (not a /session client, token empty or not
 * UTF-8); TS_ENOMEM. */
TS_CLIENT_API int ts_client_set_token(ts_client_t *c, const char *token);

/*-****************************************************************************
 * Leader election (/session protocol 4)
 *
 * tabsyncd elects one leader among the tabs that ask for it, per session
 * (scope "session": every device) or per device (scope "device"), and hands
 * out terms: numbers from the store, never reused, that fence what a leader
 * does (docs/ELECTION.md). A tab joins at connect (opts.elect_scopes) or
 * later (ts_client_elect); every change of the election arrives as a view
 * (scb.on_elect) naming the leader, the backup, this tab's role, the
 * members and the tasks.
 *
 * When a view makes this tab leader, the library heartbeats by itself
 * (`hb` every hb_ms, with an ack) and keeps a local deadline: this tab may
 * act as leader of a term only until
 *
 *   t_sent + lease_ms * (1 - 0.01) - 50 ms
 *
 * where t_sent is this process's monotonic clock when it sent the last
 * heartbeat the server acknowledged (for the view that elected it: the
 * time the view arrived minus the last measured heartbeat round trip; a
 * heartbeat goes out at once to measure and renew). 1 % covers clock drift
 * and 50 ms the rest; the server's lease runs from its receipt of that
 * heartbeat, later than t_sent, so a leader that stops renewing stops by
 * itself before the store can grant the lease to anyone else. So:
 *
 *   int64_t term;
 *   if (ts_client_is_leader(c, TS_CLIENT_ELECT_SESSION, &term))
 *       refresh_token(term);          // every leader-only action carries the term
 *
 * ask before each leader-only action, and let on_leadership stop work that
 * is already running. A `stale_term` answer (to a heartbeat or to a fenced
 * state change) ends leadership of that term at once; so do a view naming
 * someone else, ts_client_resign, leaving the scope and a lost connection
 * (after a reconnection the server may confirm the same term: leadership
 * then resumes with the first acknowledged heartbeat).
 *
 * Shape of a program:
 *
 *   static void on_lead(ts_client_t *c, int scope, int64_t term, int leading,
 *                       const char *reason, void *u) {
 *       if (!leading) stop_poller();              // at once: reason says why
 *       else start_poller(term);
 *   }
 *   ...
 *   so.elect_scopes = TS_CLIENT_ELECT_SESSION;    // proto 4
 *   so.scb.on_leadership = on_lead;
 *   ...
 *   // leader only, fenced: applied only if this term still holds the lease
 *   ts_client_state_lead(c, TS_CLIENT_ELECT_SESSION,
 *                        "{\"v\":3,\"id\":\"c-9\",\"merge\":{\"polled\":17}}",
 *                        on_state, NULL, 5000);
 ******************************************************************************/

/* An election scope; masks are ORs of them. */
typedef enum ts_client_elect_scope {
    TS_CLIENT_ELECT_SESSION = 1, /* every device of the session */
    TS_CLIENT_ELECT_DEVICE = 2,  /* the tabs of this device in this session */
} ts_client_elect_scope_t;

/* A member's role in a scope. */
typedef enum ts_client_role {
    TS_CLIENT_ROLE_NONE = 0,     /* not a member, or a role this library does not know */
    TS_CLIENT_ROLE_LEADER = 1,   /* holds the lease of the current term */
    TS_CLIENT_ROLE_BACKUP = 2,   /* promoted at once when the leader goes */
    TS_CLIENT_ROLE_FOLLOWER = 3, /* a candidate that is neither */
    TS_CLIENT_ROLE_OBSERVER = 4, /* sees the views, never leads, no tasks */
} ts_client_role_t;

/* A tab of the election. Strings borrowed for the callback only. */
typedef struct ts_client_elect_member {
    const char *device, *tab;
    ts_client_role_t role; /* TS_CLIENT_ROLE_NONE for the leader/backup fields of a view */
    int score;             /* 0..1000; -1 when the server did not send it */
} ts_client_elect_member_t;

/* A task of the scope's table. */
typedef struct ts_client_elect_task {
    const char *name;
    const char *assignee_device; /* NULL: nobody could take it */
    const char *assignee_tab;
    const char *state;           /* "assigned", "running", "done" or "failed" */
    int pct;                     /* 0..100 */
    int64_t term;                /* the term that declared it; 0: the operator's */
    const char *by;              /* "leader" or "server" */
} ts_client_elect_task_t;

/* An `elect` view. Everything is borrowed for the duration of the callback
 * only; `json` is the whole view as the server sent it. */
typedef struct ts_client_elect_view {
    ts_client_elect_scope_t scope;
    int64_t term;                           /* 0: the scope never had a leader */
    const ts_client_elect_member_t *leader; /* NULL: none now */
    const ts_client_elect_member_t *backup; /* NULL: none */
    ts_client_role_t role;                  /* this tab's */
    const char *reason;  /* "elected", "handoff", "lapse", "left", "preempt", "rotation",
                            "demotion", "join", "leave", "score", "task", "stale", ... */
    unsigned lease_ms, hb_ms;
    int64_t since;       /* wall clock ms the current term started */
    const char *grant;   /* the leader's signed grant (JWT), or NULL */
    const ts_client_elect_member_t *members;
    size_t nmembers;
    const ts_client_elect_task_t *tasks;
    size_t ntasks;
    const char *json;
} ts_client_elect_view_t;

/* Joins the scopes of `join` and leaves those of `leave` (masks of
 * ts_client_elect_scope_t; not both the same scope), and sets observer
 * and scores (0 or 1; -1 leaves it as it is). The server answers
 * {ok: true, scopes: [{scope, term, role}]} and sends a view per scope
 * joined. On success the scopes, observer and scores also replace those of
 * the auth object, so a reconnection joins the same elections. Leaving a
 * scope this tab leads ends its leadership first (on_leadership "left").
 * Returns: 0 (cb, if any, called exactly once, later); TS_EINVAL (not a
 * /session client, a mask out of range or overlapping, observer or scores
 * not -1, 0 or 1); TS_ESTATE (the client was not made with proto 4); then
 * as ts_client_emit. */
TS_CLIENT_API int ts_client_elect(ts_client_t *c, unsigned join, unsigned leave, int observer,
                                  int scores, ts_client_result_cb cb, void *ud);

/* Asks whether this tab may act as leader of `scope` now: a view made it
 * leader, no stale_term answer came since, the connection is up, and the
 * local deadline (see above) has not passed. Checks the monotonic clock at
 * each call; sends nothing. If term is not NULL it receives the term (0
 * when not leader).
 * Returns: 1 or 0. */
TS_CLIENT_API int ts_client_is_leader(ts_client_t *c, ts_client_elect_scope_t scope,
                                      int64_t *term);

/* Returns: the ms left before this tab must stop acting as leader of
 * `scope` (>= 1), or 0 when it is not leader. For sizing a piece of work;
 * ask ts_client_is_leader again before the next action. */
TS_CLIENT_API int64_t ts_client_lead_ms_left(ts_client_t *c, ts_client_elect_scope_t scope);

/* Returns: this tab's role in `scope` by the last view (TS_CLIENT_ROLE_NONE
 * if not a member). The role says what the server decided; whether this
 * tab may act as leader is ts_client_is_leader's answer. */
TS_CLIENT_API ts_client_role_t ts_client_elect_role(const ts_client_t *c,
                                                    ts_client_elect_scope_t scope);

/* Hands leadership of `scope` over to the backup: this tab stops being
 * leader at once (on_leadership "resigned"), then sends `resign` {scope,
 * term}. The server transfers the lease with the next term and sends new
 * views; r->json is its answer ({ok: true, term} or a stale_term refusal).
 * Returns: 0 (cb, if any, called exactly once, later); TS_EINVAL (not a
 * /session client, scope out of range); TS_ESTATE (no view made this tab
 * leader of the current term); then as ts_client_emit. */
TS_CLIENT_API int ts_client_resign(ts_client_t *c, ts_client_elect_scope_t scope,
                                   ts_client_result_cb cb, void *ud);

/* What an assignee reports about a task. */
typedef enum ts_client_task_op {
    TS_CLIENT_TASK_PROGRESS = 0, /* still at it; pct 0..100, or -1 to send none */
    TS_CLIENT_TASK_DONE = 1,     /* finished; note_json, if any, is sent as `result` */
    TS_CLIENT_TASK_FAIL = 2,     /* gave up; note_json, if any, is sent as `reason` */
} ts_client_task_op_t;

/* Reports on task `name` of `scope`, assigned to this tab (views list the
 * tasks and their assignees): `task` {op, scope, name, pct?, result? |
 * reason?}. Progress also keeps the task from being reassigned as stalled.
 * Refusals: not_assignee, bad_task, not_member.
 * Returns: 0 (cb, if any, called exactly once, later); TS_EINVAL (not a
 * /session client, scope or op out of range, name empty, pct outside
 * -1..100, note_json not JSON); then as ts_client_emit. */
TS_CLIENT_API int ts_client_task_report(ts_client_t *c, ts_client_elect_scope_t scope,
                                        const char *name, ts_client_task_op_t op, int pct,
                                        const char *note_json, ts_client_result_cb cb, void *ud);

/* Leader only: declares task `name` of `scope` with the current term,
 * preferably for the member to_device/to_tab (both NULL: the server
 * chooses), reassigned when its assignee sends nothing for stall_ms (0:
 * the server's 10 s; else 100..3600000). declare = 0 cancels it instead
 * (to_* and stall_ms ignored).
 * Returns: 0 (cb, if any, called exactly once, later); TS_EINVAL (as
 * ts_client_task_report); TS_ESTATE (ts_client_is_leader says no); then as
 * ts_client_emit. */
TS_CLIENT_API int ts_client_task_declare(ts_client_t *c, ts_client_elect_scope_t scope,
                                         const char *name, int declare, const char *to_device,
                                         const char *to_tab, unsigned stall_ms,
                                         ts_client_result_cb cb, void *ud);

/* Adds `lead: {scope, term}` to a state change (a JSON object as the
 * `state` event takes it) or to each change of an array of them, so that
 * tabsyncd applies it only while `term` holds the scope's lease and
 * otherwise refuses it with {ok: false, error: {code: "stale_term"}, term}.
 * change_json is borrowed. Pure: sends nothing, checks no leadership.
 * Returns: 0 and *out, new (free it with ts_client_free); TS_EINVAL
 * (change_json not an object or an array of objects, scope out of range,
 * term < 1); TS_ENOMEM. */
TS_CLIENT_API int ts_client_lead_attach(const char *change_json, ts_client_elect_scope_t scope,
                                        int64_t term, char **out);

/* Leader only: sends a state change (or an array of them, as
 * ts_client_emit_ack(c, "state", ...) would) fenced with the current term
 * of `scope` (ts_client_lead_attach). cb receives the server's answer as
 * for ts_client_emit_ack; a stale_term answer for this tab's term also
 * ends its leadership (on_leadership "stale_term") before cb runs.
 * Returns: 0 (cb called exactly once, later); TS_EINVAL (not a /session
 * client, cb NULL, change_json as ts_client_lead_attach refuses);
 * TS_ESTATE (ts_client_is_leader says no); then as ts_client_emit_ack. */
TS_CLIENT_API int ts_client_state_lead(ts_client_t *c, ts_client_elect_scope_t scope,
                                       const char *change_json, ts_client_ack_cb cb, void *ud,
                                       unsigned timeout_ms);

/*-****************************************************************************
 * Introspection
 ******************************************************************************/

/* Returns: the current state. */
TS_CLIENT_API ts_client_state_t ts_client_state(const ts_client_t *c);

/* Returns: the Socket.IO socket id while CONNECTED (borrowed, valid until the
 * next callback), or NULL. */
TS_CLIENT_API const char *ts_client_id(const ts_client_t *c);

/* Returns: 1 if the current connection recovered the previous session, else 0. */
TS_CLIENT_API int ts_client_recovered(const ts_client_t *c);

/* Returns: the recovery session id the server gave (`pid` of the CONNECT
 * reply), or NULL when the server has recovery off. Borrowed. */
TS_CLIENT_API const char *ts_client_pid(const ts_client_t *c);

/* Returns: the offset of the last event received (the string the server
 * appends when recovery is on), or NULL. Borrowed. */
TS_CLIENT_API const char *ts_client_offset(const ts_client_t *c);

/* Returns: the Engine.IO session's pingInterval and pingTimeout in ms and
 * the server's maxPayload in bytes, as announced in its open packet (0
 * before the first one). Any pointer may be NULL. */
TS_CLIENT_API void ts_client_engine_info(const ts_client_t *c, unsigned *ping_interval_ms,
                                         unsigned *ping_timeout_ms, size_t *max_payload);

/*-****************************************************************************
 * Testing
 ******************************************************************************/

/* Drops the connection the way a network failure would: closes the TCP
 * socket without any Socket.IO, Engine.IO or WebSocket goodbye. The client
 * reports on_disconnect("transport close", ...) from the loop and
 * reconnects if reconnection is on. For tests of recovery and reconnection.
 * Returns: 0, or TS_ESTATE when there is no connection. */
TS_CLIENT_API int ts_client_debug_drop(ts_client_t *c);

/* Holds (hold = 1) or resumes (hold = 0) the automatic leader heartbeats of
 * every scope, as a blocked or starved program would: nothing else
 * changes, so ts_client_is_leader turns false at the local deadline and
 * the server's lease lapses. For tests of the deadline.
 * Returns: 0; TS_EINVAL when c is not a /session client. */
TS_CLIENT_API int ts_client_debug_hold_heartbeats(ts_client_t *c, int hold);

#ifdef __cplusplus
}
#endif
#endif
