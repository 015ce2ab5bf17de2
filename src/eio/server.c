/* server.c - Engine.IO v4 sessions: handshake, polling and websocket
 * transports, the probe/upgrade dance, heartbeats and closing, mirroring
 * what the Node engine.io server does (see shared/protocol/SOCKETIO.md).
 * A session outlives its upper-layer socket only to deliver a final close
 * packet to a polling client that has no GET waiting. */
#include "eio/ts_eio.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_idmap.h"
#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_map.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "eio/ts_eio_packet.h"
#include "metrics/ts_met.h"

#define SID_LEN 20
#define CLOSING_LINGER_MS 30000 /* Node waits as long for a GET to take the close packet */

enum sock_state { ST_OPEN, ST_CLOSING, ST_CLOSED };
enum transport { TR_POLLING, TR_WEBSOCKET };
enum ping_phase { PING_WAIT_INTERVAL, PING_WAIT_PONG };

/* A message waiting for a transport; the queue is kept in class order
 * (queue_push inserts stably). 16 bytes. */
typedef struct qmsg {
    ts_buf_t *buf;
    uint8_t binary;
    uint8_t cls;  /* enum ts_net_class */
    uint8_t more; /* TS_EIO_MORE: the next message belongs with this one */
    uint32_t key; /* coalesce key; 0 = none */
} qmsg_t;

/* What only a session that polls, or is upgrading from polling, needs: a
 * websocket-only session (most of them) never makes it, and an upgraded
 * one drops it once the upgrade is done (80 bytes). */
typedef struct eio_poll {
    struct ts_eio_sock *s;
    ts_http_conn_t *get;    /* held polling GET */
    ts_ws_conn_t *probe_ws; /* websocket being upgraded to */
    char *get_cors;         /* CORS headers for the held GET's answer (only with --cors-origin) */
    qmsg_t *q;              /* packets not yet handed to a transport; NULL when empty */
    uint32_t qn, qcap;      /* qn reaching 2^31 counts as over the limit */
    size_t qbytes;
    ts_list_t up_link;      /* upgrade deadline: in srv->dq[DQ_UPGRADE] */
    uint64_t up_due;        /* loop time */
} eio_poll_t;

/* One per connection: the field order leaves no holes (120 bytes, a
 * 128-byte malloc chunk; docs/ARCHITECTURE.md has the budget). */
struct ts_eio_sock {
    ts_eio_server_t *srv;
    char sid[SID_LEN + 1];
    uint8_t state;      /* enum sock_state */
    uint8_t transport;  /* enum transport */
    uint8_t ping_phase; /* enum ping_phase */
    uint8_t probed;     /* the upgrading websocket answered 3probe */
    uint8_t hb_q;       /* the deadline queue hb_link is in (enum dq), or DQ_NONE */
    uint8_t doomed;     /* over the queue limit: closed at the next loop turn */
    ts_net_addr_t peer;
    int32_t rtt_ms;     /* last ping -> pong time; -1 until measured */
    ts_ws_conn_t *ws;   /* websocket transport */
    eio_poll_t *poll;   /* owned; NULL while the session has no polling state */
    ts_list_t hb_link;  /* heartbeat or closing deadline: in srv->dq[hb_q] */
    uint64_t hb_due;    /* loop time */
    char *user_agent; /* from the handshake request; NULL if none */
    uint64_t ping_sent; /* loop time of the last ping */
    /* The handler's extra_size bytes, which are also its user data; with
     * none, the user data pointer (sock_ud). */
    uint64_t extra[];
};

/* The polling part, made on first use. */
static eio_poll_t *poll_of(ts_eio_sock_t *s) {
    if (!s->poll) {
        s->poll = ts_xcalloc(1, sizeof *s->poll);
        s->poll->s = s;
        ts_list_init(&s->poll->up_link);
    }
    return s->poll;
}
static ts_http_conn_t *held_get(const ts_eio_sock_t *s) { return s->poll ? s->poll->get : NULL; }
static ts_ws_conn_t *probe_ws(const ts_eio_sock_t *s) { return s->poll ? s->poll->probe_ws : NULL; }
static uint32_t queued(const ts_eio_sock_t *s) { return s->poll ? s->poll->qn : 0; }

static void poll_free(ts_eio_sock_t *s) {
    eio_poll_t *p = s->poll;
    if (!p) return;
    for (size_t i = 0; i < p->qn; i++) ts_buf_unref(p->q[i].buf);
    free(p->q);
    free(p->get_cors);
    if (ts_list_linked(&p->up_link)) ts_list_remove(&p->up_link);
    free(p);
    s->poll = NULL;
}

/* Deadline queues. Every deadline of one kind is "now + a constant" (the
 * ping interval, the ping timeout, the upgrade timeout, the closing
 * linger), so appending keeps each queue sorted: one timer for the whole
 * server serves every session, and a session owns no libuv handle. */
enum dq { DQ_PING = 0, DQ_PONG, DQ_CLOSING, DQ_UPGRADE, DQ_KILL, DQ_N, DQ_NONE = 255 };

struct ts_eio_server {
    uv_loop_t *loop;
    ts_eio_opts_t opts;
    ts_eio_handler_t h;
    void *ud;
    ts_idmap_t sessions; /* by sid: ST_OPEN and ST_CLOSING socks */
    size_t live;         /* sessions not yet freed */
    int freeing;
    int handles;         /* tick + reaper, until closed */
    ts_list_t dq[DQ_N];
    uv_timer_t tick;     /* fires at the earliest deadline of the queues */
    uint64_t armed;      /* deadline the tick is set for; 0 = stopped */
    ts_list_t dead;      /* closed sessions, freed by the reaper */
    uv_idle_t reaper;    /* runs while `dead` is not empty */
    char path[128];
};

static const ts_ws_handler_t ws_handler, probe_handler;

/* The layer above's user data for the session (ts_eio_handler_t.extra_size). */
static void *sock_ud(ts_eio_sock_t *s) {
    if (s->srv->h.extra_size) return s->extra;
    void *ud;
    memcpy(&ud, s->extra, sizeof ud);
    return ud;
}

/* ---- helpers ---- */

static void srv_maybe_free(ts_eio_server_t *srv) {
    if (srv->freeing && srv->live == 0 && srv->handles == 0) {
        ts_idmap_deinit(&srv->sessions);
        free(srv);
    }
}

static void sock_release(ts_eio_sock_t *s) {
    poll_free(s);
    free(s->user_agent);
    ts_eio_server_t *srv = s->srv;
    free(s);
    srv->live--;
}

/* Closed sessions are freed here, from the loop, once no caller up the
 * stack can still hold them (a callback may close its own session). */
static void reap(ts_eio_server_t *srv) {
    while (!ts_list_empty(&srv->dead)) {
        ts_list_t *it = srv->dead.next;
        ts_list_remove(it);
        sock_release(ts_list_entry(it, ts_eio_sock_t, hb_link));
    }
}

static void on_reaper(uv_idle_t *h) {
    ts_eio_server_t *srv = h->data;
    reap(srv);
    uv_idle_stop(h);
}

/* ---- deadlines ---- */

static void on_tick(uv_timer_t *t);

static uint64_t dq_delay(const ts_eio_server_t *srv, int q) {
    switch (q) {
    case DQ_PING: return srv->opts.ping_interval_ms;
    case DQ_PONG: return srv->opts.ping_timeout_ms;
    case DQ_UPGRADE: return srv->opts.upgrade_timeout_ms;
    case DQ_KILL: return 0;
    default: return CLOSING_LINGER_MS;
    }
}

static uint64_t head_due(ts_eio_server_t *srv, int q) {
    if (ts_list_empty(&srv->dq[q])) return 0;
    ts_list_t *h = srv->dq[q].next;
    return q == DQ_UPGRADE ? ts_list_entry(h, eio_poll_t, up_link)->up_due
                           : ts_list_entry(h, ts_eio_sock_t, hb_link)->hb_due;
}

/* Sets the tick for the earliest deadline (an earlier one than armed, or
 * none armed). A tick that fires early finds nothing due and re-arms. */
static void rearm(ts_eio_server_t *srv) {
    uint64_t first = 0;
    for (int q = 0; q < DQ_N; q++) {
        uint64_t d = head_due(srv, q);
        if (d && (!first || d < first)) first = d;
    }
    if (!first) return;
    if (srv->armed && srv->armed <= first) return;
    uint64_t now = uv_now(srv->loop);
    srv->armed = first;
    uv_timer_start(&srv->tick, on_tick, first > now ? first - now : 0, 0);
}

/* Puts the session's heartbeat/closing deadline in queue q, due `from` +
 * that queue's delay. */
static void hb_set_from(ts_eio_sock_t *s, int q, uint64_t from) {
    ts_eio_server_t *srv = s->srv;
    if (ts_list_linked(&s->hb_link)) ts_list_remove(&s->hb_link);
    s->hb_q = (uint8_t)q;
    s->hb_due = from + dq_delay(srv, q);
    ts_list_insert_tail(&srv->dq[q], &s->hb_link);
    rearm(srv);
}

static void hb_set(ts_eio_sock_t *s, int q) { hb_set_from(s, q, uv_now(s->srv->loop)); }

static void hb_cancel(ts_eio_sock_t *s) {
    if (ts_list_linked(&s->hb_link)) ts_list_remove(&s->hb_link);
    s->hb_q = DQ_NONE;
}

static void up_set(ts_eio_sock_t *s) {
    ts_eio_server_t *srv = s->srv;
    eio_poll_t *p = poll_of(s);
    if (ts_list_linked(&p->up_link)) ts_list_remove(&p->up_link);
    p->up_due = uv_now(srv->loop) + srv->opts.upgrade_timeout_ms;
    ts_list_insert_tail(&srv->dq[DQ_UPGRADE], &p->up_link);
    rearm(srv);
}

static void up_cancel(ts_eio_sock_t *s) {
    if (s->poll && ts_list_linked(&s->poll->up_link)) ts_list_remove(&s->poll->up_link);
}

/* CORS headers for a response to `req` ("" when CORS is off or the origin
 * is not allowed). */
static void cors_headers(const ts_eio_server_t *srv, const ts_http_req_t *req, char *out,
                         size_t outlen) {
    out[0] = '\0';
    const ts_eio_cors_t *c = &srv->opts.cors;
    if (c->n == 0) return;
    ts_slice_t origin = {0};
    int has_origin = req && ts_http_req_header(req, "origin", &origin);
    int any = 0, match = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->origins[i], "*") == 0) any = 1;
        else if (has_origin && ts_slice_eq_str(origin, c->origins[i])) match = 1;
    }
    if (any && !c->credentials) {
        snprintf(out, outlen, "Access-Control-Allow-Origin: *\r\n");
    } else if ((any || match) && has_origin && origin.len < 200) {
        snprintf(out, outlen, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n%s",
                 (int)origin.len, origin.p,
                 c->credentials ? "Access-Control-Allow-Credentials: true\r\n" : "");
    }
}

/* A request whose Origin --cors-origin does not allow gets no CORS headers,
 * so the browser refuses it: counted, and logged at info (rate-limited: a
 * flood of them cannot fill the disk). */
static ts_log_rl_t log_cors = TS_LOG_RL_INIT(5);

static void note_cors_refusal(const ts_eio_server_t *srv, ts_http_conn_t *hc,
                              const ts_http_req_t *req) {
    const ts_eio_cors_t *c = &srv->opts.cors;
    ts_slice_t origin;
    if (c->n == 0 || !ts_http_req_header(req, "origin", &origin)) return;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->origins[i], "*") == 0 || ts_slice_eq_str(origin, c->origins[i])) return;
    TS_MET_ERR(CORS_ORIGIN);
    char kv[96];
    snprintf(kv, sizeof kv, "code=cors_origin peer=%s", ts_conn_peer(hc));
    ts_log_limited(&log_cors, TS_LOG_INFO, "eio", kv,
                   "origin %.*s is not allowed by --cors-origin: no CORS headers",
                   (int)TS_MIN(origin.len, 200), (const char *)origin.p);
}

static void respond_error(ts_eio_server_t *srv, ts_http_conn_t *hc, const ts_http_req_t *req,
                          int code, const char *message) {
    static const char *const msgs[] = {"Transport unknown", "Session ID unknown",
                                       "Bad handshake method", "Bad request", "Forbidden",
                                       "Unsupported protocol version"};
    TS_MET_ERR(EIO_BAD_REQUEST);
    char hdrs[600], body[160];
    cors_headers(srv, req, hdrs, sizeof hdrs);
    strcat(hdrs, "Content-Type: application/json\r\n");
    int n = snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}", code,
                     message ? message : msgs[code]);
    ts_http_respond(hc, code == 4 ? 403 : 400, hdrs, body, (size_t)n, 0);
}

/* A failed websocket handshake gets Node's raw answer, then the TCP close. */
static void respond_ws_error(ts_http_conn_t *hc, const char *message) {
    TS_MET_ERR(EIO_BAD_REQUEST);
    ts_http_respond(hc, 400, "Content-type: text/html\r\n", message, strlen(message), 1);
}

/* A handshake the allow hook refused: Engine.IO error code 4 with the
 * hook's status and message (a raw answer for a websocket handshake). */
static void refuse_handshake(ts_eio_server_t *srv, ts_http_conn_t *hc, const ts_http_req_t *req,
                             int status, const char *msg, uint32_t retry_after_s, int is_ws) {
    TS_MET_ERR(EIO_BAD_REQUEST);
    char hdrs[800], body[300];
    size_t n = 0;
    if (retry_after_s) n += (size_t)snprintf(hdrs, sizeof hdrs, "Retry-After: %u\r\n", retry_after_s);
    hdrs[n] = '\0';
    if (is_ws && req->upgrade) {
        snprintf(hdrs + n, sizeof hdrs - n, "Content-type: text/html\r\n");
        ts_http_respond(hc, status, hdrs, msg, strlen(msg), 1);
        return;
    }
    cors_headers(srv, req, hdrs + n, sizeof hdrs - n);
    n = strlen(hdrs);
    snprintf(hdrs + n, sizeof hdrs - n, "Content-Type: application/json\r\n");
    json_t *j = json_pack("{s:i,s:s}", "code", 4, "message", msg);
    char *text = json_dumps(j, JSON_COMPACT);
    snprintf(body, sizeof body, "%s", text ? text : "{\"code\":4,\"message\":\"Forbidden\"}");
    free(text);
    json_decref(j);
    ts_http_respond(hc, status, hdrs, body, strlen(body), 0);
}

/* After ts_ws_upgrade failed: RFC 6455 4.4 for a version we do not speak. */
static void respond_upgrade_failed(ts_http_conn_t *hc, int rc) {
    if (rc == TS_EVERSION) {
        TS_MET_ERR(EIO_BAD_REQUEST);
        static const char msg[] = "Unsupported WebSocket version (this server speaks 13)";
        ts_http_respond(hc, 426, "Sec-WebSocket-Version: 13\r\nContent-type: text/html\r\n", msg,
                        sizeof msg - 1, 1);
        return;
    }
    respond_ws_error(hc, "Bad request");
}

/* ---- sending ---- */

static void hb_set(ts_eio_sock_t *s, int q);

/* Queues a message for the transport in class `how` (enum ts_net_class,
 * TS_EIO_MORE or'ed in inside a group) as net's connection queue does
 * (ts_net__queue in net/tcp.c): after the last message of the same or an
 * earlier class (so a group's messages stay together), or in the place of
 * a queued message with the same class and nonzero key. */
static void queue_push(ts_eio_sock_t *s, ts_buf_t *buf, int binary, unsigned how, uint32_t key) {
    if (s->doomed) return;
    eio_poll_t *p = poll_of(s);
    uint8_t cls = (uint8_t)(how & TS_NET_CLASS_MASK), more = (how & TS_EIO_MORE) != 0;
    uint32_t at = p->qn;
    while (at > 0 && p->q[at - 1].cls > cls) at--;
    qmsg_t *old = NULL;
    for (uint32_t i = at; key && !more && !old && i-- > 0 && p->q[i].cls == cls;)
        if (p->q[i].key == key) old = &p->q[i];
    size_t after = p->qbytes - (old ? old->buf->len : 0) + buf->len;
    if (after > s->srv->opts.max_queue || (!old && p->qn == UINT32_MAX / 2)) {
        /* A polling client that does not come for its packets (while it
         * keeps posting and answering pings) would grow this queue without
         * bound: it is closed, at the next loop turn rather than inside the
         * send (the caller may be walking a room). */
        TS_MET_ERR(SLOW_CONSUMER);
        ts_warn("eio", "session %s: %zu bytes waiting for a poll exceed the send queue limit %zu",
                s->sid, after, s->srv->opts.max_queue);
        s->doomed = 1;
        hb_set(s, DQ_KILL);
        return;
    }
    p->qbytes = after;
    if (old) { /* latest wins, in the place of the one it replaces */
        ts_buf_t *drop = old->buf;
        old->buf = ts_buf_ref(buf);
        old->binary = (uint8_t)binary;
        ts_buf_unref(drop);
        TS_MET_INC(SEND_COALESCED);
        return;
    }
    if (p->qn == p->qcap) {
        p->qcap = p->qcap ? p->qcap * 2 : 8;
        p->q = ts_xrealloc(p->q, p->qcap * sizeof(*p->q));
    }
    if (at < p->qn) {
        memmove(&p->q[at + 1], &p->q[at], (p->qn - at) * sizeof(*p->q));
        TS_MET_INC(SEND_REORDERED);
    }
    p->qn++;
    p->q[at] = (qmsg_t){ts_buf_ref(buf), (uint8_t)binary, cls, more, more ? 0 : key};
}

/* An empty queue holds no memory: a polling session waits empty most of
 * the time. */
static void queue_clear(ts_eio_sock_t *s) {
    eio_poll_t *p = s->poll;
    if (!p) return;
    for (size_t i = 0; i < p->qn; i++) ts_buf_unref(p->q[i].buf);
    free(p->q);
    p->q = NULL;
    p->qn = p->qcap = 0;
    p->qbytes = 0;
}

/* `how`: enum ts_net_class, TS_EIO_MORE or'ed in inside a group. */
static void ws_write(ts_ws_conn_t *ws, ts_buf_t *buf, int binary, unsigned how, uint32_t key) {
    ts_ws_send_class(ws, binary ? TS_WS_OP_BINARY : TS_WS_OP_TEXT, buf, how, key);
}

/* Answers the held GET with everything queued (plus `extra`, a packet
 * string such as "1" or "6", if not NULL). */
static void poll_answer(ts_eio_sock_t *s, const char *extra) {
    eio_poll_t *p = s->poll;
    ts_http_conn_t *hc = p->get;
    p->get = NULL;
    ts_http_conn_detach(hc);
    ts_sbuf_t sb = TS_SBUF_INIT;
    for (size_t i = 0; i < p->qn; i++) {
        ts_buf_t *b = p->q[i].buf;
        if (p->q[i].binary)
            ts_eio_payload_append(&sb, TS_EIO_MESSAGE, 1, b->data, b->len);
        else
            ts_eio_payload_append(&sb, (uint8_t)(b->data[0] - '0'), 0, b->data + 1, b->len - 1);
    }
    if (extra) ts_eio_payload_append(&sb, (uint8_t)(extra[0] - '0'), 0,
                                     (const uint8_t *)extra + 1, strlen(extra) - 1);
    TS_MET_ADD(EIO_PACKETS_OUT, p->qn + (extra ? 1 : 0));
    queue_clear(s);
    ts_buf_t *body = ts_sbuf_finish(&sb);
    char hdrs[700];
    snprintf(hdrs, sizeof hdrs, "Content-Type: text/plain; charset=UTF-8\r\ncache-control: no-store\r\n%s",
             p->get_cors ? p->get_cors : "");
    ts_http_respond_buf(hc, 200, hdrs, body, 0);
}

static void flush(ts_eio_sock_t *s) {
    if (!s->poll) return; /* nothing queued */
    if (s->transport == TR_WEBSOCKET && s->ws) {
        for (size_t i = 0; i < s->poll->qn; i++) {
            const qmsg_t *m = &s->poll->q[i];
            ws_write(s->ws, m->buf, m->binary, m->cls | (m->more ? TS_EIO_MORE : 0u), m->key);
        }
        TS_MET_ADD(EIO_PACKETS_OUT, s->poll->qn);
        queue_clear(s);
    } else if (s->transport == TR_POLLING && s->poll->get && s->poll->qn && !s->probed) {
        poll_answer(s, NULL);
    }
}

/* Sends a one-character control packet ("2", "6", ...): straight to a
 * websocket with nothing queued before it, as ts_eio_send_class does (a
 * queue made for every ping would stay with each idle session). */
static void send_ctrl(ts_eio_sock_t *s, char type) {
    ts_buf_t *b = ts_buf_from(&type, 1);
    if (s->transport == TR_WEBSOCKET && s->ws && queued(s) == 0) {
        ws_write(s->ws, b, 0, TS_NET_CLASS_CONTROL, 0);
        TS_MET_INC(EIO_PACKETS_OUT);
    } else {
        queue_push(s, b, 0, TS_NET_CLASS_CONTROL, 0);
        flush(s);
    }
    ts_buf_unref(b);
}

void ts_eio_send_class(ts_eio_sock_t *s, ts_buf_t *buf, int binary, unsigned cls, uint32_t key) {
    if (s->state != ST_OPEN) return;
    unsigned c = cls & TS_NET_CLASS_MASK;
    if (c < TS_EIO_CLASS_SECURITY || c > TS_EIO_CLASS_TELEMETRY)
        cls = (cls & TS_EIO_MORE) | TS_EIO_CLASS_EVENT;
    if (s->transport == TR_WEBSOCKET && s->ws && queued(s) == 0) {
        ws_write(s->ws, buf, binary, cls, key);
        TS_MET_INC(EIO_PACKETS_OUT);
        return;
    }
    queue_push(s, buf, binary, cls, key);
    /* a group goes out whole: a held poll is answered after its last part */
    if (!(cls & TS_EIO_MORE)) flush(s);
}

void ts_eio_send(ts_eio_sock_t *s, ts_buf_t *buf, int binary) {
    ts_eio_send_class(s, buf, binary, TS_EIO_CLASS_EVENT, 0);
}

/* ---- closing ---- */

/* A closed session leaves the map and every deadline queue now; its memory
 * goes at the reaper's next run (the hb_link is reused for the dead list). */
static void sock_free(ts_eio_sock_t *s) {
    if (s->state != ST_CLOSED || s->hb_q == DQ_N) return;
    ts_eio_server_t *srv = s->srv;
    ts_idmap_del(&srv->sessions, s->sid);
    hb_cancel(s);
    up_cancel(s);
    s->hb_q = DQ_N; /* marks "on the dead list" */
    ts_list_insert_tail(&srv->dead, &s->hb_link);
    if (!srv->freeing) uv_idle_start(&srv->reaper, on_reaper);
}

static void drop_probe(ts_eio_sock_t *s) {
    if (!probe_ws(s)) return;
    ts_ws_close(s->poll->probe_ws, TS_WS_CLOSE_NORMAL, "");
    s->poll->probe_ws = NULL;
    s->probed = 0;
    up_cancel(s);
}

/* Tells the upper layer, once. */
static void notify_close(ts_eio_sock_t *s, const char *reason) {
    if (s->srv->h.on_close) s->srv->h.on_close(s, reason, sock_ud(s));
    ts_eio_sock_set_ud(s, NULL);
}

/* The session is over at once: transports dropped, upper layer told. */
static void sock_destroy(ts_eio_sock_t *s, const char *reason) {
    if (s->state == ST_CLOSED) return;
    int was_open = s->state == ST_OPEN;
    s->state = ST_CLOSED;
    TS_MET_GAUGE_ADD(EIO_OPEN, -1);
    if (s->transport == TR_WEBSOCKET) TS_MET_GAUGE_ADD(EIO_OPEN_WS, -1);
    hb_cancel(s);
    drop_probe(s);
    if (held_get(s)) {
        /* a client-side close or error: release the poll with a noop */
        queue_clear(s);
        poll_answer(s, "6");
    }
    if (s->ws) {
        ts_ws_close(s->ws, TS_WS_CLOSE_NORMAL, "");
        s->ws = NULL;
    }
    queue_clear(s);
    ts_debug("eio", "session %s closed: %s", s->sid, reason);
    if (was_open) notify_close(s, reason);
    sock_free(s);
}

/* Server-side close: the peer is told with a close packet. */
static void sock_close_graceful(ts_eio_sock_t *s, const char *reason) {
    if (s->state != ST_OPEN) return;
    drop_probe(s);
    if (s->transport == TR_WEBSOCKET && s->ws) {
        flush(s);
        ts_buf_t *b = ts_buf_from("1", 1);
        /* last, not CONTROL: a peer drops whatever follows a close packet */
        ws_write(s->ws, b, 0, TS_NET_CLASS_LAST, 0);
        ts_buf_unref(b);
        sock_destroy(s, reason);
        return;
    }
    if (held_get(s) && queued(s) == 0) {
        poll_answer(s, "1");
        sock_destroy(s, reason);
        return;
    }
    /* The close packet travels alone, after everything queued: clients
     * handle a payload's close before its messages (socket.io-client
     * defers decoded packets to the next tick), so a DISCONNECT sharing a
     * payload with the close would be read as a transport close. */
    if (held_get(s)) poll_answer(s, NULL);
    /* Polling without a GET waiting: keep the session (invisible to the
     * layer above) until the client's next GET takes the close packet. */
    s->state = ST_CLOSING;
    notify_close(s, reason);
    hb_set(s, DQ_CLOSING);
}

void ts_eio_sock_close(ts_eio_sock_t *s) { sock_close_graceful(s, "forced close"); }

void ts_eio_sock_cork(ts_eio_sock_t *s) {
    if (s->state == ST_OPEN && s->transport == TR_WEBSOCKET && s->ws) ts_ws_cork(s->ws);
}

void ts_eio_sock_uncork(ts_eio_sock_t *s) {
    if (s->ws) ts_ws_uncork(s->ws);
}

void ts_eio_close_all(ts_eio_server_t *srv, const char *reason) {
    void *e;
    for (size_t it = 0; ts_idmap_next(&srv->sessions, &it, &e);) {
        ts_eio_sock_t *s = e;
        if (s->state == ST_OPEN) sock_close_graceful(s, reason);
    }
}

/* ---- heartbeat ---- */

static void schedule_ping(ts_eio_sock_t *s) {
    s->ping_phase = PING_WAIT_INTERVAL;
    hb_set(s, DQ_PING);
}

static void on_upgrade_timeout(ts_eio_sock_t *s);

/* Handles every deadline that has passed, queue by queue, oldest first. */
static void on_tick(uv_timer_t *t) {
    ts_eio_server_t *srv = t->data;
    srv->armed = 0;
    uint64_t now = uv_now(srv->loop);
    for (int q = 0; q < DQ_N; q++) {
        uint64_t due;
        while ((due = head_due(srv, q)) && due <= now) {
            ts_list_t *h = srv->dq[q].next;
            ts_list_remove(h);
            if (q == DQ_UPGRADE) {
                on_upgrade_timeout(ts_list_entry(h, eio_poll_t, up_link)->s);
                continue;
            }
            ts_eio_sock_t *s = ts_list_entry(h, ts_eio_sock_t, hb_link);
            s->hb_q = DQ_NONE;
            if (q == DQ_PING) {
                s->ping_phase = PING_WAIT_PONG;
                s->ping_sent = now;
                /* the timeout counts from when the ping was due, so a late
                 * tick does not stretch pingInterval + pingTimeout (which
                 * clients and the conformance suite rely on); dues stay in
                 * FIFO order because ping dues are */
                hb_set_from(s, DQ_PONG, due);
                send_ctrl(s, '2');
            } else if (q == DQ_PONG) {
                TS_MET_ERR(EIO_PING_TIMEOUT);
                sock_destroy(s, "ping timeout");
            } else if (q == DQ_KILL) {
                sock_destroy(s, "transport error");
            } else {
                sock_destroy(s, "forced close"); /* nobody came for the close packet */
            }
        }
    }
    rearm(srv);
}

/* ---- receiving ---- */

static void on_packet(ts_eio_sock_t *s, const ts_eio_packet_t *p) {
    TS_MET_INC(EIO_PACKETS_IN);
    switch (p->type) {
    case TS_EIO_PONG:
        if (s->ping_phase == PING_WAIT_PONG) {
            uint64_t rtt = uv_now(s->srv->loop) - s->ping_sent;
            s->rtt_ms = rtt > INT32_MAX ? INT32_MAX : (int32_t)rtt;
            schedule_ping(s);
        }
        break;
    case TS_EIO_PING:
        /* v4: only the server pings */
        ts_debug("eio", "session %s: invalid heartbeat direction", s->sid);
        sock_destroy(s, "transport error");
        break;
    case TS_EIO_MESSAGE:
        if (s->srv->h.on_message) s->srv->h.on_message(s, p->data.p, p->data.len, p->binary, sock_ud(s));
        break;
    case TS_EIO_CLOSE:
        sock_destroy(s, "transport close");
        break;
    default: /* open, upgrade, noop from the client: nothing to do */
        break;
    }
}

/* ---- websocket transport ---- */

static void ws_on_message(ts_ws_conn_t *ws, const ts_ws_msg_t *m, void *ud) {
    ts_eio_sock_t *s = ud;
    if (s->state != ST_OPEN) return;
    if (m->len > s->srv->opts.max_payload) {
        TS_MET_ERR(EIO_TOO_LARGE);
        sock_destroy(s, "transport error");
        return;
    }
    ts_eio_packet_t p;
    if (m->opcode == TS_WS_OP_BINARY) {
        p = (ts_eio_packet_t){TS_EIO_MESSAGE, 1, ts_slice(m->data, m->len)};
    } else if (ts_eio_packet_decode(m->data, m->len, &p) != 0) {
        TS_MET_ERR(EIO_PARSE);
        sock_destroy(s, "parse error");
        return;
    }
    on_packet(s, &p);
}

static void ws_on_close(ts_ws_conn_t *ws, int code, void *ud) {
    ts_eio_sock_t *s = ud;
    if (s->ws != ws) return;
    s->ws = NULL;
    sock_destroy(s, code == TS_WS_CLOSE_NORMAL || code == TS_WS_CLOSE_GOING_AWAY ||
                            code == TS_WS_CLOSE_NO_STATUS || code == TS_WS_CLOSE_ABNORMAL
                        ? "transport close"
                        : "transport error");
}

static const ts_ws_handler_t ws_handler = {ws_on_message, ws_on_close};

static void on_upgrade_timeout(ts_eio_sock_t *s) {
    ts_debug("eio", "session %s: upgrade timed out", s->sid);
    drop_probe(s);
}

static void probe_on_message(ts_ws_conn_t *ws, const ts_ws_msg_t *m, void *ud) {
    ts_eio_sock_t *s = ud;
    if (s->state != ST_OPEN || probe_ws(s) != ws) return;
    ts_eio_packet_t p;
    int ok = m->opcode == TS_WS_OP_TEXT && ts_eio_packet_decode(m->data, m->len, &p) == 0;
    if (ok && p.type == TS_EIO_PING && ts_slice_eq_str(p.data, "probe")) {
        ts_buf_t *b = ts_buf_from("3probe", 6);
        ws_write(ws, b, 0, TS_NET_CLASS_CONTROL, 0);
        ts_buf_unref(b);
        s->probed = 1;
        /* The client pauses polling: release its pending GET so it can. */
        if (held_get(s)) poll_answer(s, "6");
        return;
    }
    if (ok && p.type == TS_EIO_UPGRADE) {
        up_cancel(s);
        s->poll->probe_ws = NULL;
        s->probed = 0;
        if (held_get(s)) poll_answer(s, "6");
        s->transport = TR_WEBSOCKET;
        s->ws = ws;
        ts_ws_set_handler(ws, &ws_handler, s);
        TS_MET_INC(EIO_UPGRADES);
        TS_MET_GAUGE_ADD(EIO_OPEN_WS, 1);
        flush(s);
        poll_free(s); /* nothing held, nothing queued: polling is over */
        return;
    }
    /* anything else during the probe closes the probe, not the session */
    drop_probe(s);
}

static void probe_on_close(ts_ws_conn_t *ws, int code, void *ud) {
    ts_eio_sock_t *s = ud;
    if (probe_ws(s) != ws) return;
    s->poll->probe_ws = NULL;
    s->probed = 0;
    up_cancel(s);
    flush(s); /* polling goes on */
}

static const ts_ws_handler_t probe_handler = {probe_on_message, probe_on_close};

/* ---- polling transport ---- */

static void on_get_abort(ts_http_conn_t *hc, void *ud) {
    ts_eio_sock_t *s = ud;
    if (held_get(s) != hc) return;
    s->poll->get = NULL;
    sock_destroy(s, "transport close");
}

/* The answer to a GET may be sent much later, when the request is gone:
 * keep the CORS headers it earned. */
static void remember_cors(ts_eio_sock_t *s, const ts_http_req_t *req) {
    if (!s->srv->opts.cors.n) return;
    char hdrs[600];
    cors_headers(s->srv, req, hdrs, sizeof hdrs);
    eio_poll_t *p = poll_of(s);
    if (p->get_cors && strcmp(p->get_cors, hdrs) == 0) return;
    free(p->get_cors);
    p->get_cors = ts_xstrdup(hdrs);
}

static void handle_get(ts_eio_sock_t *s, ts_http_conn_t *hc, const ts_http_req_t *req) {
    if (held_get(s)) {
        /* overlapping GETs: the protocol forbids it; Node closes the
         * session, and the held GET learns it with a close packet */
        respond_error(s->srv, hc, req, 3, NULL);
        queue_clear(s);
        poll_answer(s, "1");
        sock_destroy(s, "transport error");
        return;
    }
    poll_of(s)->get = hc;
    remember_cors(s, req);
    if (s->state == ST_CLOSING) {
        if (queued(s)) {
            poll_answer(s, NULL); /* the close packet goes in the next one */
            return;
        }
        poll_answer(s, "1");
        sock_destroy(s, "forced close");
        return;
    }
    if (s->probed) {
        poll_answer(s, "6"); /* upgrading: polling is paused */
        return;
    }
    if (queued(s)) {
        poll_answer(s, NULL);
        return;
    }
    ts_http_conn_hold(hc, on_get_abort, s);
}

static void handle_post(ts_eio_sock_t *s, ts_http_conn_t *hc, const ts_http_req_t *req) {
    char hdrs[600];
    cors_headers(s->srv, req, hdrs, sizeof hdrs);
    strcat(hdrs, "Content-Type: text/html\r\n");
    ts_slice_t ct;
    if (ts_http_req_header(req, "content-type", &ct) &&
        ts_slice_eq_str(ct, "application/octet-stream")) {
        /* v4 polling is text only */
        respond_error(s->srv, hc, req, 3, NULL);
        sock_destroy(s, "transport error");
        return;
    }
    if (req->body.len > s->srv->opts.max_payload) {
        TS_MET_ERR(EIO_TOO_LARGE);
        ts_http_respond(hc, 413, hdrs, NULL, 0, 1);
        sock_destroy(s, "transport error");
        return;
    }
    if (s->state == ST_OPEN) {
        /* the body is ours to decode in place: the parser's storage is
         * valid until the next request on this connection */
        ts_eio_payload_iter_t it;
        ts_eio_payload_iter_init(&it, (uint8_t *)(uintptr_t)req->body.p, req->body.len);
        ts_eio_packet_t p;
        int rc;
        while (s->state == ST_OPEN && (rc = ts_eio_payload_next(&it, &p)) == 1) on_packet(s, &p);
        if (s->state == ST_OPEN && rc < 0) {
            TS_MET_ERR(EIO_PARSE);
            ts_debug("eio", "session %s: %s", s->sid, it.errmsg);
            sock_destroy(s, "parse error");
        }
    }
    ts_http_respond(hc, 200, hdrs, "ok", 2, 0);
}

/* ---- handshake ---- */

/* The first character of a sid names its loop (ts_random_id's alphabet). */
static const char loop_tags[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int ts_eio_request_loop(const ts_http_req_t *req, unsigned nloops) {
    ts_slice_t sid;
    if (nloops < 2 || !ts_http_query_param(req->query, "sid", &sid) || sid.len != SID_LEN)
        return -1;
    const char *at = memchr(loop_tags, sid.p[0], sizeof loop_tags - 1);
    if (!at || (unsigned)(at - loop_tags) >= nloops) return -1;
    return (int)(at - loop_tags);
}

static ts_eio_sock_t *sock_new(ts_eio_server_t *srv, ts_http_conn_t *hc, int transport) {
    ts_eio_sock_t *s =
        ts_xcalloc(1, sizeof(*s) + (srv->h.extra_size ? srv->h.extra_size : sizeof(void *)));
    s->srv = srv;
    do {
        ts_random_id(s->sid, SID_LEN);
        if (srv->opts.nloops > 1) s->sid[0] = loop_tags[srv->opts.loop_index];
    } while (ts_idmap_get(&srv->sessions, s->sid));
    s->transport = (uint8_t)transport;
    ts_list_init(&s->hb_link);
    s->hb_q = DQ_NONE;
    s->peer = ts_conn_addr(hc);
    s->rtt_ms = -1;
    ts_idmap_put(&srv->sessions, s);
    srv->live++;
    TS_MET_INC(EIO_SESSIONS);
    TS_MET_GAUGE_ADD(EIO_OPEN, 1);
    if (transport == TR_WEBSOCKET) TS_MET_GAUGE_ADD(EIO_OPEN_WS, 1);
    return s;
}

static ts_buf_t *open_packet(ts_eio_sock_t *s) {
    ts_sbuf_t sb = TS_SBUF_INIT;
    const ts_eio_opts_t *o = &s->srv->opts;
    /* appended, not printf'd: one per handshake, 3 % of its instructions */
    ts_sbuf_reserve(&sb, 160);
    ts_sbuf_append_str(&sb, "0{\"sid\":\"");
    ts_sbuf_append_str(&sb, s->sid);
    ts_sbuf_append_str(&sb, "\",\"upgrades\":");
    ts_sbuf_append_str(&sb, s->transport == TR_POLLING && !o->no_websocket ? "[\"websocket\"]" : "[]");
    ts_sbuf_append_str(&sb, ",\"pingInterval\":");
    ts_sbuf_put_u64(&sb, o->ping_interval_ms);
    ts_sbuf_append_str(&sb, ",\"pingTimeout\":");
    ts_sbuf_put_u64(&sb, o->ping_timeout_ms);
    ts_sbuf_append_str(&sb, ",\"maxPayload\":");
    ts_sbuf_put_u64(&sb, o->max_payload);
    ts_sbuf_putc(&sb, '}');
    return ts_sbuf_finish(&sb);
}

static void handshake(ts_eio_server_t *srv, ts_http_conn_t *hc, const ts_http_req_t *req,
                      int transport) {
    ts_eio_sock_t *s = sock_new(srv, hc, transport);
    ts_slice_t ua;
    if (ts_http_req_header(req, "user-agent", &ua) && ua.len)
        s->user_agent = ts_xstrndup((const char *)ua.p, TS_MIN(ua.len, 256));
    ts_buf_t *open = open_packet(s);
    if (transport == TR_WEBSOCKET) {
        char hdrs[600];
        cors_headers(srv, req, hdrs, sizeof hdrs);
        int rc = ts_ws_upgrade(hc, req, srv->opts.max_payload, hdrs, &ws_handler, s);
        if (rc != 0) {
            s->state = ST_CLOSED;
            TS_MET_GAUGE_ADD(EIO_OPEN, -1);
            TS_MET_GAUGE_ADD(EIO_OPEN_WS, -1);
            sock_free(s);
            ts_buf_unref(open);
            respond_upgrade_failed(hc, rc);
            return;
        }
        s->ws = hc;
        ws_write(s->ws, open, 0, TS_NET_CLASS_CONTROL, 0);
    } else {
        queue_push(s, open, 0, TS_NET_CLASS_CONTROL, 0);
        poll_of(s)->get = hc;
        remember_cors(s, req);
        poll_answer(s, NULL);
    }
    ts_buf_unref(open);
    schedule_ping(s);
    if (srv->h.on_open) srv->h.on_open(s, srv->ud);
}

static void upgrade(ts_eio_server_t *srv, ts_eio_sock_t *s, ts_http_conn_t *hc,
                    const ts_http_req_t *req) {
    char hdrs[600];
    cors_headers(srv, req, hdrs, sizeof hdrs);
    if (s->state != ST_OPEN || s->transport == TR_WEBSOCKET || probe_ws(s)) {
        /* Already upgraded or upgrading: like Node, complete the WebSocket
         * handshake, then close that socket; the session is untouched. */
        if (ts_ws_upgrade(hc, req, srv->opts.max_payload, hdrs, NULL, NULL) == 0)
            ts_ws_close(hc, TS_WS_CLOSE_NORMAL, "");
        else
            respond_ws_error(hc, "Bad request");
        return;
    }
    int rc = ts_ws_upgrade(hc, req, srv->opts.max_payload, hdrs, &probe_handler, s);
    if (rc != 0) {
        respond_upgrade_failed(hc, rc);
        return;
    }
    poll_of(s)->probe_ws = hc;
    up_set(s);
}

/* ---- request routing ---- */

void ts_eio_handle(ts_eio_server_t *srv, ts_http_conn_t *hc, const ts_http_req_t *req) {
    ts_slice_t transport, sid, eio;
    int has_transport = ts_http_query_param(req->query, "transport", &transport);
    int is_ws = has_transport && ts_slice_eq_str(transport, "websocket");
    int is_poll = has_transport && ts_slice_eq_str(transport, "polling");
    note_cors_refusal(srv, hc, req);

    if (req->method == HTTP_OPTIONS && srv->opts.cors.n) {
        char hdrs[900];
        cors_headers(srv, req, hdrs, 600);
        ts_slice_t rh;
        size_t n = strlen(hdrs);
        n += (size_t)snprintf(hdrs + n, sizeof hdrs - n,
                              "Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n");
        if (ts_http_req_header(req, "access-control-request-headers", &rh) && rh.len < 200)
            snprintf(hdrs + n, sizeof hdrs - n, "Access-Control-Allow-Headers: %.*s\r\n",
                     (int)rh.len, rh.p);
        ts_http_respond(hc, 204, hdrs, NULL, 0, 0);
        return;
    }
    if ((!is_ws && !is_poll) || (is_ws && srv->opts.no_websocket) ||
        (is_poll && srv->opts.no_polling)) {
        if (is_ws && req->upgrade)
            respond_ws_error(hc, "Transport unknown");
        else
            respond_error(srv, hc, req, 0, NULL);
        return;
    }
    if (ts_http_query_param(req->query, "sid", &sid)) {
        ts_eio_sock_t *s = sid.len == SID_LEN
                               ? ts_idmap_get(&srv->sessions, (const char *)sid.p)
                               : NULL;
        if (!s || s->state == ST_CLOSED) {
            if (is_ws && req->upgrade)
                respond_ws_error(hc, "Session ID unknown");
            else
                respond_error(srv, hc, req, 1, NULL);
            return;
        }
        if (is_ws) {
            if (!req->upgrade) {
                respond_error(srv, hc, req, 3, NULL);
                return;
            }
            upgrade(srv, s, hc, req);
            return;
        }
        if (s->transport != TR_POLLING) {
            respond_error(srv, hc, req, 3, NULL);
            return;
        }
        if (req->method == HTTP_GET)
            handle_get(s, hc, req);
        else if (req->method == HTTP_POST)
            handle_post(s, hc, req);
        else
            ts_http_respond(hc, 500, NULL, NULL, 0, 0);
        return;
    }
    if (req->method != HTTP_GET) {
        respond_error(srv, hc, req, 2, NULL);
        return;
    }
    if (is_ws && !req->upgrade) {
        respond_error(srv, hc, req, 3, NULL);
        return;
    }
    if (srv->opts.allow) {
        char msg[160] = "Forbidden";
        uint32_t retry = 0;
        int status = srv->opts.allow(req, ts_conn_peer(hc), msg, sizeof msg, &retry,
                                     srv->opts.allow_ud);
        if (status) {
            refuse_handshake(srv, hc, req, status, msg, retry, is_ws);
            return;
        }
    }
    if (!ts_http_query_param(req->query, "EIO", &eio) || !ts_slice_eq_str(eio, "4")) {
        if (is_ws)
            respond_ws_error(hc, "Unsupported protocol version");
        else
            respond_error(srv, hc, req, 5, NULL);
        return;
    }
    handshake(srv, hc, req, is_ws ? TR_WEBSOCKET : TR_POLLING);
}

/* ---- server ---- */

ts_eio_server_t *ts_eio_server_new(uv_loop_t *loop, const ts_eio_opts_t *opts,
                                   const ts_eio_handler_t *h, void *server_ud) {
    ts_eio_server_t *srv = ts_xcalloc(1, sizeof(*srv));
    ts_idmap_init(&srv->sessions, offsetof(ts_eio_sock_t, sid), SID_LEN);
    srv->loop = loop;
    srv->opts = *opts;
    if (!srv->opts.ping_interval_ms) srv->opts.ping_interval_ms = 25000;
    if (!srv->opts.ping_timeout_ms) srv->opts.ping_timeout_ms = 20000;
    if (!srv->opts.upgrade_timeout_ms) srv->opts.upgrade_timeout_ms = 10000;
    if (!srv->opts.max_payload) srv->opts.max_payload = 1000000;
    if (!srv->opts.max_queue) srv->opts.max_queue = 16u << 20;
    snprintf(srv->path, sizeof srv->path, "%s", opts->path ? opts->path : "/engine.io/");
    srv->opts.path = srv->path;
    srv->h = *h;
    srv->ud = server_ud;
    for (int q = 0; q < DQ_N; q++) ts_list_init(&srv->dq[q]);
    ts_list_init(&srv->dead);
    uv_timer_init(loop, &srv->tick);
    uv_idle_init(loop, &srv->reaper);
    srv->tick.data = srv->reaper.data = srv;
    srv->handles = 2;
    return srv;
}

static void srv_handle_closed(uv_handle_t *h) {
    ts_eio_server_t *srv = h->data;
    srv->handles--;
    srv_maybe_free(srv);
}

void ts_eio_server_free(ts_eio_server_t *srv) {
    void *e;
    for (size_t it = 0; ts_idmap_next(&srv->sessions, &it, &e);) {
        ts_eio_sock_t *s = e;
        if (s->state == ST_OPEN) sock_close_graceful(s, "server shutting down");
    }
    /* sessions still lingering for a last GET go now */
    for (size_t it = 0; ts_idmap_next(&srv->sessions, &it, &e);) {
        sock_destroy(e, "server shutting down");
    }
    srv->freeing = 1;
    reap(srv); /* called from the loop: no session is on the stack */
    uv_close((uv_handle_t *)&srv->tick, srv_handle_closed);
    uv_close((uv_handle_t *)&srv->reaper, srv_handle_closed);
}

int ts_eio_matches(const ts_eio_server_t *srv, ts_slice_t path) {
    size_t n = strlen(srv->path);
    /* "/socket.io" and "/socket.io/..." both match "/socket.io/" */
    if (path.len + 1 == n && memcmp(path.p, srv->path, path.len) == 0) return 1;
    return path.len >= n && memcmp(path.p, srv->path, n) == 0;
}

size_t ts_eio_count(const ts_eio_server_t *srv) { return srv->sessions.count; }

void ts_eio_sock_set_ud(ts_eio_sock_t *s, void *ud) {
    if (!s->srv->h.extra_size) memcpy(s->extra, &ud, sizeof ud);
}
void *ts_eio_sock_ud(ts_eio_sock_t *s) { return sock_ud(s); }
void *ts_eio_sock_extra(ts_eio_sock_t *s) { return s->extra; }
ts_eio_sock_t *ts_eio_sock_of_extra(void *extra) {
    return (ts_eio_sock_t *)((char *)extra - offsetof(ts_eio_sock_t, extra));
}
void *ts_eio_sock_server_ud(const ts_eio_sock_t *s) { return s->srv->ud; }
const char *ts_eio_sock_id(const ts_eio_sock_t *s) { return s->sid; }
const char *ts_eio_sock_transport(const ts_eio_sock_t *s) {
    return s->transport == TR_WEBSOCKET ? "websocket" : "polling";
}
const char *ts_eio_sock_peer(const ts_eio_sock_t *s) { return ts_net_addr_str(&s->peer); }
const char *ts_eio_sock_user_agent(const ts_eio_sock_t *s) { return s->user_agent; }
int ts_eio_sock_rtt_ms(const ts_eio_sock_t *s) { return s->rtt_ms; }
