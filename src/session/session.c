/* session.c - the /session namespace on the ts_sio API: who may connect
 * (identity.c), what they can reach (three rooms from verified claims and
 * nothing else), how fast (token buckets per address, user and socket),
 * relay of envelopes to a scope, token swap and expiry. One sweep timer per
 * process renews registry entries and enforces token expiry, instead of a
 * timer per socket. */
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "session/sess_int.h"
#include "session/ts_sess_connect.h"
#include "session/ts_sess_envelope.h"
#include "store/ts_store.h"

#define SWEEP_MS 1000
#define STRIKE_WINDOW_MS 10000
#define MAX_METADATA_BYTES 4096

static uint64_t now_s(void) { return ts_wall_ms() / 1000; }

/* A limiter key of fixed size for an id of any length (ratelimit.c would
 * hash it at every event otherwise): SHA-256, so that no chosen id can
 * share another's bucket. */
static void rl_key(char out[32], const char *id) {
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, strlen(id), (const uint8_t *)id);
    sha256_digest(&ctx, 32, (uint8_t *)out);
}

/* Refusals a peer can cause at will are logged at info with their code and
 * address, at most a few a second per kind (ts_log_limited): visible at the
 * default level, and a flood cannot fill the disk. /metrics counts them all. */
static ts_log_rl_t log_auth = TS_LOG_RL_INIT(5);     /* connects refused: token, payload */
static ts_log_rl_t log_throttle = TS_LOG_RL_INIT(5); /* handshakes, connections, events */

/* Logs one refusal: code=<code> peer=<address>, then the sentence. */
static void log_refusal(ts_log_rl_t *rl, const char *code, const char *peer, const char *fmt,
                        const char *detail) {
    char kv[120];
    snprintf(kv, sizeof kv, "code=%s peer=%s", code, peer);
    ts_log_limited(rl, TS_LOG_INFO, "session", kv, fmt, detail);
}

/* The limit= label of a throttle counter (also the code= of its log line). */
static const char *limit_name(int counter) {
    switch (counter) {
    case SC_THROTTLED_HANDSHAKE: return "handshakes_per_ip";
    case SC_THROTTLED_CONNS_IP: return "conns_per_ip";
    case SC_THROTTLED_CONNS_USER: return "conns_per_user";
    case SC_THROTTLED_BYTES: return "bytes_per_socket";
    case SC_THROTTLED_EVENTS_CONN: return "events_per_conn";
    case SC_THROTTLED_BYTES_CONN: return "bytes_per_conn";
    case SC_THROTTLED_EVENTS_USER: return "events_per_user";
    default: return "events_per_socket";
    }
}

/* events_per_user as configured, or its default: ten sockets at their full
 * rate (0 when events_per_socket is 0: unlimited). */
static uint32_t user_events(const ts_sess_cfg_t *cfg) {
    if (cfg->events_per_user) return cfg->events_per_user;
    uint64_t n = (uint64_t)cfg->events_per_socket * 10u;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* "s/<user>/<session>": '/' is outside the id alphabet (which has ':'), so
 * two different (user, session) pairs can never make the same room name. */
static void refuse_with(ts_sio_refusal_t *refuse, const char *message, const char *code,
                        uint64_t retry_after_ms) {
    ts_strlcpy(refuse->message, message, sizeof refuse->message);
    refuse->data = json_pack("{s:s}", "code", code);
    if (retry_after_ms) json_object_set_new(refuse->data, "retry_after_ms", json_integer((json_int_t)retry_after_ms));
}

/* ---- connect ---- */

/* One derived string: `parts` joined by '/' (none: ""). */
typedef struct key_spec {
    const char *parts[4];
    size_t n;
} key_spec_t;

/* Makes the tab's derived strings (sess_sock_t.keys): spec[i] is enum
 * sess_key i, all in one allocation of their exact length. */
static void sock_keys(sess_sock_t *ss, const key_spec_t *spec, size_t nspec) {
    ts_assert(nspec <= SK_COUNT);
    size_t total = 0;
    for (size_t i = 0; i < nspec; i++) {
        for (size_t j = 0; j < spec[i].n; j++) total += strlen(spec[i].parts[j]) + 1;
        if (!spec[i].n) total++;
    }
    char *k = ts_xmalloc(total), *p = k;
    for (size_t i = 0; i < nspec; i++) {
        size_t len = ts_strjoin(p, (size_t)(k + total - p), '/', spec[i].parts, spec[i].n);
        p += len + 1;
    }
    ts_assert(p == k + total);
    free(ss->keys);
    ss->keys = k;
    ss->nkeys = (uint8_t)nspec;
}

const char *ts_sess__name(const sess_sock_t *ss, enum sess_name n, char buf[SESS_NAME_MAX]) {
    const sess_ident_t *id = &ss->id;
    key_spec_t k;
    switch (n) {
    case SN_ROOM_SESSION: /* tabs of protocol 1 and 2 in the session's other room */
        k = (key_spec_t){{id->proto < 3 ? "o" : "s", id->user, id->session}, 3};
        break;
    case SN_ROOM_USER:
        if (ss->backend) return NULL;
        k = (key_spec_t){{"u", id->user}, 2};
        break;
    case SN_ROOM_DEVICE:
        if (ss->backend) return NULL;
        k = (key_spec_t){{"d", id->user, id->device}, 3};
        break;
    default: /* SN_CLIENT */
        k = ss->backend ? (key_spec_t){{"b", id->tab}, 2}
                        : (key_spec_t){{"d", id->device, "t", id->tab}, 4};
        break;
    }
    ts_strjoin(buf, SESS_NAME_MAX, '/', k.parts, k.n);
    return buf;
}

/* The tables it spends from, in the order of ss->rl_held (try_take). */
static ts_rl_table_t *held_table(ts_sess_t *sess, size_t i) {
    ts_rl_table_t *const t[] = {&sess->ev_tab, &sess->ev_conn, &sess->by_tab, &sess->by_conn,
                                &sess->sh->ev_user};
    return t[i];
}

/* Its limiter entries go back to their tables' LRU: what it spent stays
 * charged to its keys until their buckets refill (ts_ratelimit.h). */
static void release_buckets(sess_sock_t *ss) {
    ts_sess_t *sess = ss->sess;
    sess_flow_t *f = ss->flow;
    if (!f) return;
    for (size_t i = 0; i < TS_ARRAY_LEN(f->rl_held); i++) {
        if (!f->rl_held[i]) continue;
        int shared = held_table(sess, i) == &sess->sh->ev_user;
        if (shared) pthread_mutex_lock(&sess->sh->mu);
        ts_rl_table_release(held_table(sess, i), f->rl_held[i]);
        if (shared) pthread_mutex_unlock(&sess->sh->mu);
        f->rl_held[i] = NULL;
    }
}

/* The tab's traffic state, made at its first event (sess_flow_t): its
 * limiter keys hashed once, its Engine.IO connection's id copied while the
 * socket is there to ask. */
static sess_flow_t *flow_of(sess_sock_t *ss) {
    if (ss->flow) return ss->flow;
    sess_flow_t *f = ts_xcalloc(1, sizeof *f);
    f->ss = ss;
    ts_list_init(&f->inq);
    ts_list_init(&f->backlog_link);
    rl_key(f->rl_tab, sess_key(ss, SK_OWNER));
    rl_key(f->rl_user, ss->id.user);
    if (ss->s) ts_strlcpy(f->conn, ts_eio_sock_id(ts_sio_socket_eio(ss->s)), sizeof f->conn);
    uint32_t strikes = ss->sess->cfg.strikes;
    ts_rl_strikes_init(&f->strikes, strikes ? strikes : 1, STRIKE_WINDOW_MS);
    ss->flow = f;
    return f;
}

/* Events of the tab waiting in its inbound queue. */
static uint32_t inq_n(const sess_sock_t *ss) { return ss->flow ? ss->flow->inq_n : 0; }

static void sock_free(sess_sock_t *ss) {
    release_buckets(ss); /* once gone, try_take goes by key (an event still queued) */
    if (ss->holds) { /* requests still answer to it: the last release frees it */
        ss->gone = 1;
        ss->s = NULL;
        return;
    }
    ts_sess_t *sess = ss->sess;
    pthread_mutex_lock(&sess->sh->mu);
    if (ss->counted_ip) ts_rl_table_dec(&sess->sh->conns_ip, sess_key(ss, SK_PEER), strlen(sess_key(ss, SK_PEER)));
    if (ss->counted_user) ts_rl_table_dec(&sess->sh->conns_user, ss->id.user, strlen(ss->id.user));
    pthread_mutex_unlock(&sess->sh->mu);
    ts_sess__ident_clear(&ss->id);
    if (ss->flow) {
        json_decref(ss->flow->meta);
        ts_buf_unref(ss->flow->from);
    }
    free(ss->flow);
    free(ss->keys);
    free(ss);
}

void ts_sess__sock_hold(sess_sock_t *ss) { ss->holds++; }

void ts_sess__sock_release(sess_sock_t *ss) {
    ts_assert(ss->holds > 0);
    if (--ss->holds == 0 && ss->gone) sock_free(ss);
}

/* ---- the data API (ts_sess.h): backends write as a pseudo tab ---- */

sess_sock_t *ts_sess__backend_sock(ts_sess_t *sess, const char *user, const char *session,
                                   const char *publisher) {
    sess_sock_t *ss = ts_xcalloc(1, sizeof(*ss));
    ss->sess = sess;
    ts_list_init(&ss->link);
    ts_sess__ident_set(&ss->id, user, session, "server", publisher);
    ss->id.proto = TS_SESS_PROTO_CURRENT;
    const key_spec_t keys[] = {
        [SK_OWNER] = {{NULL}, 0}, /* "": no recovery, no buckets */
        [SK_HIST] = {{user, session}, 2},
        [SK_PEER] = {{NULL}, 0},
    };
    sock_keys(ss, keys, TS_ARRAY_LEN(keys));
    ss->gone = 1; /* no socket: the last release frees it */
    ss->backend = 1;
    return ss;
}

int ts_sess__api_id_ok(const char *s) { return s && ts_sess_id_valid(s, strlen(s)); }

static sess_sock_t *api_sock(ts_sess_t *sess, const ts_sess_api_target_t *t) {
    if (sess->closed || !sess->history) return NULL;
    if (!ts_sess__api_id_ok(t->user) || !ts_sess__api_id_ok(t->session) ||
        !ts_sess__api_id_ok(t->publisher))
        return NULL;
    return ts_sess__backend_sock(sess, t->user, t->session, t->publisher);
}

/* Runs one data-API request as a backend writer of (user, session). */
typedef void (*api_op_fn)(sess_sock_t *ss, json_t *arg, const sess_answer_t *to);

static int api_run(ts_sess_t *sess, const ts_sess_api_target_t *t, api_op_fn op, json_t *arg,
                   ts_sess_api_cb cb, void *ud) {
    sess_sock_t *ss = api_sock(sess, t);
    if (!ss) return sess->closed ? TS_ECLOSED : TS_EINVAL;
    ts_sess__sock_hold(ss); /* the request's own holds keep it; this one frees it after */
    op(ss, arg, &(sess_answer_t){-1, cb, ud});
    ts_sess__sock_release(ss);
    return 0;
}

static void api_health(sess_sock_t *ss, json_t *arg, const sess_answer_t *to) {
    (void)arg;
    ts_sess__hist_health(ss, to);
}

int ts_sess_api_publish(ts_sess_t *sess, const ts_sess_api_target_t *t, json_t *arg,
                        ts_sess_api_cb cb, void *ud) {
    return api_run(sess, t, ts_sess__publish, arg, cb, ud);
}

int ts_sess_api_change(ts_sess_t *sess, const ts_sess_api_target_t *t, json_t *arg,
                       ts_sess_api_cb cb, void *ud) {
    return api_run(sess, t, ts_sess__hist_state, arg, cb, ud);
}

int ts_sess_api_read(ts_sess_t *sess, const ts_sess_api_target_t *t, json_t *arg,
                     ts_sess_api_cb cb, void *ud) {
    return api_run(sess, t, ts_sess__hist_sync, arg, cb, ud);
}

int ts_sess_api_health(ts_sess_t *sess, const ts_sess_api_target_t *t, ts_sess_api_cb cb,
                       void *ud) {
    return api_run(sess, t, api_health, NULL, cb, ud);
}

static int on_authorize(ts_sio_socket_t *s, json_t *auth, ts_sio_refusal_t *refuse, void *ud) {
    ts_sess_t *sess = ud;
    uint64_t now = uv_now(sess->loop);
    sess_sock_t *ss = ts_xcalloc(1, sizeof(*ss));
    ss->id.user = ss->id.session = ss->id.device = ss->id.tab = "";
    ss->sess = sess;
    ss->s = s;
    ts_list_init(&ss->link);
    char why[200];
    int reason = ts_sess__identify(sess, auth, now_s(), &ss->id, why, sizeof why);
    if (reason) {
        if ((size_t)reason < TS_ARRAY_LEN(sess->refused)) SESS_COUNT(sess->refused[reason]);
        refuse_with(refuse, why, ts_sess_reason_name((ts_sess_reason_t)reason), 0);
        log_refusal(&log_auth, ts_sess_reason_name((ts_sess_reason_t)reason),
                    ts_eio_sock_peer(ts_sio_socket_eio(s)), "refused a /session connect: %s", why);
        sock_free(ss);
        return 1;
    }
    const char *peer = ts_eio_sock_peer(ts_sio_socket_eio(s));
    /* a restored connection keeps its rooms and missed events only if it is
     * the same tab of the same identity (ts_sio_socket_set_owner) */
    const sess_ident_t *id = &ss->id;
    const key_spec_t keys[] = {
        [SK_OWNER] = {{id->user, id->session, id->device, id->tab}, 4},
        [SK_HIST] = {{id->user, id->session}, 2},
        [SK_PEER] = {{peer}, 1},
    };
    sock_keys(ss, keys, TS_ARRAY_LEN(keys));
    /* the breaker is asked without counting a call: the registry write that
     * follows the connection is the call (registry.c) */
    if (ts_brk_state(&sess->store_brk) == TS_BRK_OPEN && ts_brk_retry_after(&sess->store_brk, now)) {
        SESS_COUNT(sess->counters[SC_STORE_REFUSED]);
        log_refusal(&log_throttle, "store_unavailable", sess_key(ss, SK_PEER), "refused a /session connect: %s",
                    "the session store's breaker is open");
        refuse_with(refuse, "the session store is unavailable; retry later", "store_unavailable",
                    ts_brk_retry_after(&sess->store_brk, now));
        sock_free(ss);
        return 1;
    }
    if (sess->cfg.conns_per_ip) {
        pthread_mutex_lock(&sess->sh->mu);
        int rc = ts_rl_table_inc(&sess->sh->conns_ip, sess_key(ss, SK_PEER), strlen(sess_key(ss, SK_PEER)));
        pthread_mutex_unlock(&sess->sh->mu);
        if (rc != 0) {
            SESS_COUNT(sess->counters[SC_THROTTLED_CONNS_IP]);
            log_refusal(&log_throttle, limit_name(SC_THROTTLED_CONNS_IP), sess_key(ss, SK_PEER),
                        "refused a /session connect: %s", "too many connections from this address");
            refuse_with(refuse, "too many connections from this address", "throttled", 1000);
            sock_free(ss);
            return 1;
        }
        ss->counted_ip = 1;
    }
    if (sess->cfg.conns_per_user) {
        pthread_mutex_lock(&sess->sh->mu);
        int rc = ts_rl_table_inc(&sess->sh->conns_user, ss->id.user, strlen(ss->id.user));
        pthread_mutex_unlock(&sess->sh->mu);
        if (rc != 0) {
            SESS_COUNT(sess->counters[SC_THROTTLED_CONNS_USER]);
            log_refusal(&log_throttle, limit_name(SC_THROTTLED_CONNS_USER), sess_key(ss, SK_PEER),
                        "refused a /session connect of user %s: too many connections", ss->id.user);
            refuse_with(refuse, "too many connections for this user", "throttled", 1000);
            sock_free(ss);
            return 1;
        }
        ss->counted_user = 1;
    }
    ts_sio_socket_set_owner(s, sess_key(ss, SK_OWNER));
    ss->connected_at = ts_wall_ms();
    ss->joined_loop = uv_now(sess->loop);
    ts_sio_socket_set_ud(s, ss);
    return 0;
}

static void on_connection(ts_sio_socket_t *s, void *ud) {
    ts_sess_t *sess = ud;
    sess_sock_t *ss = ts_sio_socket_ud(s);
    if (!ss) return; /* cannot happen: authorize runs for every connection here */
    char name[SESS_NAME_MAX];
    ts_sio_join(s, ts_sess__name(ss, SN_ROOM_SESSION, name));
    ts_sio_join(s, ts_sess__name(ss, SN_ROOM_USER, name));
    ts_sio_join(s, ts_sess__name(ss, SN_ROOM_DEVICE, name));
    ts_list_insert_tail(&sess->socks, &ss->link);
    TS_MET_BUMP_(sess->nsocks, 1);
    SESS_COUNT(sess->counters[SC_CONNECTED]);
    if (ss->id.proto >= 3 && sess->history) {
        /* The welcome says where the history is, which takes a store read
         * (the next loop turn, or a round trip to Redis). The CONNECT reply
         * waits for it, and both leave in one write: one packet and one
         * system call fewer per handshake (issue #13, docs/PERFORMANCE.md). */
        ts_sio_socket_cork(s);
        ss->corked = 1;
        ts_sess__hist_welcome(ss);
    } else {
        ts_sess__emit_welcome(ss, NULL);
    }
    ts_sess__reg_put(ss);
    ts_sess__el_connected(ss);
}

/* What on_connection held for the welcome goes (the welcome with it). */
static void uncork(sess_sock_t *ss) {
    if (!ss->corked) return;
    ss->corked = 0;
    if (ss->s) ts_sio_socket_uncork(ss->s);
}

/* A JSON member "key":"str" (str from a claim or an id: UTF-8 already). */
static void text_member_str(ts_sbuf_t *t, const char *key, const char *str) {
    ts_sbuf_append_str(t, key);
    ts_json_string(t, str, strlen(str));
}

void ts_sess__emit_welcome(sess_sock_t *ss, const ts_store_sess_info_t *hist) {
    /* `now`: the server's wall clock, from which a client estimates its own
     * clock's offset (a change's hlc more than 60 s ahead is refused).
     * Written as canonical text, as a tree was dumped before (jansson's tree
     * and dump were ~3.5 % of a handshake's CPU); every number is within
     * 2^53 (a token's exp is at most year 9999, auth.c; seq and ver count
     * entries), so JSON.stringify writes each as these digits. */
    static const char hex[] = "0123456789abcdef";
    ts_sbuf_t t = TS_SBUF_INIT;
    ts_sbuf_reserve(&t, 320);
    text_member_str(&t, "{\"user\":", ss->id.user);
    text_member_str(&t, ",\"session\":", ss->id.session);
    text_member_str(&t, ",\"device\":", ss->id.device);
    text_member_str(&t, ",\"tab\":", ss->id.tab);
    ts_sbuf_append_str(&t, ",\"proto\":");
    ts_sbuf_put_i64(&t, ss->id.proto);
    ts_sbuf_append_str(&t, ",\"exp\":");
    ts_sbuf_put_i64(&t, ss->id.exp);
    text_member_str(&t, ",\"node\":", ss->sess->node_id);
    ts_sbuf_append_str(&t, ",\"now\":");
    ts_sbuf_put_u64(&t, ts_wall_ms());
    if (hist) {
        char ep[16];
        for (int i = 0; i < 16; i++) ep[i] = hex[(hist->epoch >> (60 - 4 * i)) & 15];
        ts_sbuf_append_str(&t, ",\"epoch\":\"");
        ts_sbuf_append(&t, ep, sizeof ep);
        ts_sbuf_append_str(&t, "\",\"seq\":");
        ts_sbuf_put_u64(&t, hist->last_seq);
        ts_sbuf_append_str(&t, ",\"ver\":");
        ts_sbuf_put_u64(&t, hist->state_ver);
    }
    ts_sbuf_putc(&t, '}');
    ts_sio_raw_arg_t a = {.text = ts_slice(ts_sbuf_data(&t), ts_sbuf_len(&t))};
    ts_sio_emit_raw(ss->s, "welcome", &a, 1);
    ts_sbuf_free(&t);
    uncork(ss);
}

static void inq_clear(sess_sock_t *ss);

static void on_disconnect(ts_sio_socket_t *s, const char *reason, void *ud) {
    ts_sess_t *sess = ud;
    sess_sock_t *ss = ts_sio_socket_ud(s);
    if (!ss) return;
    uncork(ss); /* the connection may carry other namespaces */
    ts_sio_socket_set_ud(s, NULL);
    if (ts_list_linked(&ss->link)) {
        ts_list_remove(&ss->link);
        TS_MET_BUMP_(sess->nsocks, (size_t)-1);
        ts_sess__reg_remove(ss);
    }
    ts_sess__el_gone(ss);
    inq_clear(ss);
    sock_free(ss);
}

/* ---- events ---- */

/* The `error` event form: {code, message, retry_after_ms?}. */
static void emit_error_event(ts_sio_socket_t *s, json_t *res) {
    json_t *arr = json_pack("[O]", json_object_get(res, "error"));
    ts_sio_args_t a = {arr, NULL, 0};
    ts_sio_emit(s, "error", &a);
    json_decref(arr);
}

void ts_sess__reply(ts_sio_socket_t *s, int64_t ack_id, json_t *res /* takes */) {
    if (ack_id >= 0) {
        json_t *arr = json_pack("[o]", res);
        ts_sio_args_t a = {arr, NULL, 0};
        ts_sio_ack(s, ack_id, &a);
        json_decref(arr);
        return;
    }
    if (json_is_false(json_object_get(res, "ok"))) emit_error_event(s, res);
    json_decref(res);
}

/* One budget a client event spends from. */
typedef struct spend {
    ts_rl_table_t *t;
    const char *key;
    size_t klen;
    uint64_t n;
    int counter; /* SC_THROTTLED_*: what a refusal counts as */
    ts_rl_entry_t *e; /* the socket's held entry (NULL: by key) */
} spend_t;

/* The held entry of budget i (held at the socket's first event), or NULL
 * once the socket has gone (sock_free released them). */
static ts_rl_entry_t *held(sess_sock_t *ss, size_t i, const char *key, size_t klen, uint64_t now) {
    sess_flow_t *f = ss->flow;
    if (!f->rl_held[i] && !ss->gone)
        f->rl_held[i] = ts_rl_table_hold(held_table(ss->sess, i), key, klen, now);
    return f->rl_held[i];
}

/* Takes the tokens of one client event: `items` events (a message that
 * carries many changes or envelopes costs one per item, at most a whole
 * burst) and `size` bytes, from every budget it spends, or from none.
 * Returns 0, or the ms to wait for them (*limit: the SC_THROTTLED_* of the
 * budget that is short, if limit is not NULL). */
static uint64_t try_take(sess_sock_t *ss, uint64_t size, uint64_t items, int *limit) {
    ts_sess_t *sess = ss->sess;
    uint64_t now = uv_now(sess->loop);
    /* The tab's buckets (user/session/device/tab) are not the socket's:
     * leaving and re-entering the namespace does not refill them. Picking a
     * new tab id at each CONNECT does not either: the Engine.IO connection
     * has the same budgets, and all of a user's sockets share one. */
    uint32_t ev = sess->cfg.events_per_socket, by = sess->cfg.bytes_per_socket;
    uint32_t evu = sess->cfg.events_per_user;
    spend_t sp[5];
    size_t n = 0;
    if (!ev && !by && !evu) return 0;
    sess_flow_t *f = flow_of(ss);
    if (ev) {
        uint64_t k = TS_MIN(items, (uint64_t)ev);
        sp[n++] = (spend_t){&sess->ev_tab, f->rl_tab, sizeof f->rl_tab, k, SC_THROTTLED_EVENTS, NULL};
        sp[n - 1].e = held(ss, 0, sp[n - 1].key, sp[n - 1].klen, now);
        sp[n++] = (spend_t){&sess->ev_conn, f->conn, strlen(f->conn), k, SC_THROTTLED_EVENTS_CONN, NULL};
        sp[n - 1].e = held(ss, 1, sp[n - 1].key, sp[n - 1].klen, now);
    }
    if (by) {
        uint64_t k = TS_MIN(size, (uint64_t)by);
        sp[n++] = (spend_t){&sess->by_tab, f->rl_tab, sizeof f->rl_tab, k, SC_THROTTLED_BYTES, NULL};
        sp[n - 1].e = held(ss, 2, sp[n - 1].key, sp[n - 1].klen, now);
        sp[n++] = (spend_t){&sess->by_conn, f->conn, strlen(f->conn), k, SC_THROTTLED_BYTES_CONN, NULL};
        sp[n - 1].e = held(ss, 3, sp[n - 1].key, sp[n - 1].klen, now);
    }
    /* the user's table is every loop's: hold, check and take under its lock */
    if (evu) {
        pthread_mutex_lock(&sess->sh->mu);
        sp[n++] = (spend_t){&sess->sh->ev_user, f->rl_user, sizeof f->rl_user,
                            TS_MIN(items, (uint64_t)evu), SC_THROTTLED_EVENTS_USER, NULL};
        sp[n - 1].e = held(ss, 4, sp[n - 1].key, sp[n - 1].klen, now);
    }
    int64_t wait = 0;
    int short_of = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t w = sp[i].e ? ts_rl_held_wait(sp[i].e, now, sp[i].n)
                            : ts_rl_table_wait(sp[i].t, sp[i].key, sp[i].klen, now, sp[i].n);
        if (w == 0) continue;
        uint64_t wi = w < 0 ? 1000 : (uint64_t)w;
        if ((uint64_t)wait < wi) {
            wait = (int64_t)wi;
            short_of = sp[i].counter;
        }
    }
    if (!wait)
        for (size_t i = 0; i < n; i++) {
            if (sp[i].e)
                ts_rl_held_take(sp[i].e, now, sp[i].n);
            else
                ts_rl_table_take(sp[i].t, sp[i].key, sp[i].klen, now, sp[i].n);
        }
    if (evu) pthread_mutex_unlock(&sess->sh->mu);
    if (limit) *limit = short_of;
    return (uint64_t)wait;
}

/* Refuses an event over the limits (the inbound queue is off or full):
 * counted, a strike recorded, and past --limit-strikes the socket is
 * disconnected. */
static void refuse_throttled(sess_sock_t *ss, uint64_t wait, int limit, int64_t ack_id) {
    ts_sess_t *sess = ss->sess;
    if (!limit) limit = SC_THROTTLED_EVENTS;
    SESS_COUNT(sess->counters[limit]);
    log_refusal(&log_throttle, limit_name(limit), sess_key(ss, SK_PEER), "throttled an event of user %s",
                ss->id.user);
    ts_sio_socket_t *s = ss->s;
    ts_sess__reply(s, ack_id, ts_sess__error("throttled", "rate limit exceeded; retry later", wait));
    if (sess->cfg.strikes && ts_rl_strike(&flow_of(ss)->strikes, uv_now(sess->loop))) {
        SESS_COUNT(sess->counters[SC_ABUSE_DISCONNECTS]);
        ts_info("session", "disconnecting %s (user %s): %u throttled events within %u s",
                sess_key(ss, SK_PEER), ss->id.user, sess->cfg.strikes, STRIKE_WINDOW_MS / 1000);
        ts_sio_disconnect(s, 0);
    }
}

static const char *scope_room(const sess_sock_t *ss, ts_sess_scope_t to,
                              char buf[SESS_NAME_MAX]) {
    return ts_sess__name(ss,
                         to == TS_SESS_TO_USER     ? SN_ROOM_USER
                         : to == TS_SESS_TO_DEVICE ? SN_ROOM_DEVICE
                                                   : SN_ROOM_SESSION,
                         buf);
}

/* The history entry of a logged envelope: its relayed form plus
 * kind, ts and (exactly-once) client and mut, as canonical text. */
static ts_buf_t *pub_entry(ts_slice_t relayed, uint64_t ts, const char *client, uint64_t mut) {
    ts_sbuf_t e = TS_SBUF_INIT;
    ts_sbuf_reserve(&e, relayed.len + 96);
    ts_sbuf_append_str(&e, "{\"kind\":\"event\",");
    ts_sbuf_append(&e, relayed.p + 1, relayed.len - 2);
    ts_sbuf_append_str(&e, ",\"ts\":");
    ts_sbuf_put_u64(&e, ts);
    if (mut) {
        ts_sbuf_append_str(&e, ",\"client\":");
        ts_json_string(&e, client, strlen(client));
        ts_sbuf_append_str(&e, ",\"mut\":");
        ts_sbuf_put_u64(&e, mut);
    }
    ts_sbuf_putc(&e, '}');
    return ts_sbuf_finish(&e);
}

/* One envelope of a publish message, from either parser. */
typedef struct pub {
    ts_sess_prio_t prio;
    ts_sess_scope_t to;
    ts_slice_t relayed;  /* its canonical relayed text */
    ts_slice_t type;
    const char *id;
    const char *client;  /* "" or NULL: none given */
    uint64_t mut;        /* 0: none */
} pub_t;

ts_sio_class_t ts_sess__prio_class(ts_sess_prio_t prio) {
    static const ts_sio_class_t cls[TS_SESS_PRIO_COUNT] = {
        [TS_SESS_PRIO_SECURITY] = TS_SIO_CLASS_SECURITY,
        [TS_SESS_PRIO_CONTROL] = TS_SIO_CLASS_CONTROL,
        [TS_SESS_PRIO_STATE] = TS_SIO_CLASS_STATE,
        [TS_SESS_PRIO_EVENT] = TS_SIO_CLASS_EVENT,
        [TS_SESS_PRIO_PRESENCE] = TS_SIO_CLASS_PRESENCE,
        [TS_SESS_PRIO_TELEMETRY] = TS_SIO_CLASS_TELEMETRY};
    return (unsigned)prio < TS_SESS_PRIO_COUNT ? cls[prio] : TS_SIO_CLASS_DEFAULT;
}

/* The coalesce key of a presence or telemetry stream: one per sending tab
 * and envelope type, so a newer report replaces an older one still queued
 * for a slow reader (FNV-1a; 0 means "never coalesce", so never 0). */
static uint32_t coalesce_key(const sess_sock_t *ss, ts_slice_t type) {
    uint32_t h = 2166136261u;
    for (const char *p = sess_key(ss, SK_OWNER); *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (size_t i = 0; i < type.len; i++) h = (h ^ type.p[i]) * 16777619u;
    return h ? h : 1;
}

/* Relays one envelope, or for the session history, logs it first. */
static void publish_one(sess_sock_t *ss, sess_batch_t *b, size_t idx, const pub_t *pb) {
    ts_sess_t *sess = ss->sess;
    if (ss->backend && pb->to != TS_SESS_TO_SESSION) { /* the data API */
        ts_sess__batch_done(b, idx, ts_sess__error("bad_envelope",
                                                   "envelope: a backend publishes to the session only", 0));
        return;
    }
    if (sess->history && ts_sess_envelope_logged(pb->prio, pb->to)) {
        uint64_t ts = ts_hlc_now(&sess->sh->hlc, ts_wall_ms());
        char own[SESS_NAME_MAX];
        const char *cl =
            pb->client && pb->client[0] ? pb->client : ts_sess__name(ss, SN_CLIENT, own);
        ts_sess__hist_publish(ss, b, idx, pub_entry(pb->relayed, ts, cl, pb->mut),
                              &(sess_pub_meta_t){.id = pb->id,
                                                 .client = cl,
                                                 .mut = pb->mut,
                                                 .ts = ts,
                                                 .cls = ts_sess__prio_class(pb->prio)});
        return;
    }
    ts_sio_class_t cls = ts_sess__prio_class(pb->prio);
    int low = pb->prio == TS_SESS_PRIO_PRESENCE || pb->prio == TS_SESS_PRIO_TELEMETRY;
    uint32_t key = low ? coalesce_key(ss, pb->type) : 0;
    SESS_COUNT(sess->counters[SC_RELAYED]);
    if (low && pb->to == TS_SESS_TO_SESSION) { /* may be held and coalesced (coalesce.c) */
        ts_sess__lowprio_send(ts_sess__hist_lowprio(ss), ss, pb->relayed, cls, key);
        ts_sess__batch_ok(b, idx, pb->id, NULL);
        return;
    }
    char name[SESS_NAME_MAX], other[SESS_NAME_MAX];
    const char *rooms[2] = {scope_room(ss, pb->to, name)};
    if (pb->to == TS_SESS_TO_SESSION) sess_session_rooms(rooms[0], other, rooms);
    ts_sio_raw_arg_t arg = {pb->relayed, NULL};
    ts_sio_target_t tgt = {.rooms = rooms,
                           .nrooms = pb->to == TS_SESS_TO_SESSION ? 2 : 1,
                           .skip = ss->s,
                           .cls = cls,
                           .coalesce = key};
    ts_sio_broadcast_raw(sess->nsp, &tgt, "event", &arg, 1);
    ts_sess__batch_ok(b, idx, pb->id, NULL);
}

/* An envelope given as a tree (anything the fast path did not take). */
static void publish_tree(sess_sock_t *ss, sess_batch_t *b, size_t idx, json_t *in) {
    ts_sess_envelope_t env;
    char why[160];
    if (ts_sess_envelope_parse(in, &env, why, sizeof why) != 0) {
        ts_sess__batch_done(b, idx, ts_sess__error("bad_envelope", why, 0));
        return;
    }
    json_t *out = ts_sess_envelope_relay(&env, ss->id.user, ss->id.device, ss->id.tab);
    ts_sbuf_t text = TS_SBUF_INIT;
    ts_json_dump(&text, out);
    json_decref(out);
    pub_t pb = {.prio = env.prio,
                .to = env.to,
                .relayed = ts_slice(ts_sbuf_data(&text), ts_sbuf_len(&text)),
                .type = ts_slice_str(env.type),
                .id = env.id,
                .client = env.client,
                .mut = env.mut};
    publish_one(ss, b, idx, &pb);
    ts_sbuf_free(&text);
}

void ts_sess__publish(sess_sock_t *ss, json_t *in, const sess_answer_t *to) {
    /* a message may carry many envelopes (an offline queue flushing): one
     * ack for all, {ok, failed, results: [one answer per envelope]} */
    if (json_is_array(in)) {
        size_t n = json_array_size(in);
        if (n == 0 || n > ss->sess->cfg.max_batch) {
            char why[100];
            snprintf(why, sizeof why, "a publish message holds 1 to %u envelopes",
                     ss->sess->cfg.max_batch);
            ts_sess__answer(ss, to, ts_sess__error("bad_envelope", why, 0));
            return;
        }
        sess_batch_t *b = ts_sess__batch_new(ss, to, n, 1);
        for (size_t i = 0; i < n; i++) publish_tree(ss, b, i, json_array_get(in, i));
        return;
    }
    publish_tree(ss, ts_sess__batch_new(ss, to, 1, 0), 0, in);
}

static void do_publish(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    if (a->nattach) {
        ts_sess__reply(ss->s, ack_id,
                       ts_sess__error("bad_envelope", "envelope: binary values are not supported", 0));
        return;
    }
    ts_sess__publish(ss, json_array_get(a->args, 0), &(sess_answer_t){ack_id, NULL, NULL});
}

/* do_publish on the fast path: the envelope is the canonical text the
 * client sent; its body is copied into the relayed envelope as it is. */
static void do_publish_raw(sess_sock_t *ss, const ts_sess_envelope_raw_t *env, int64_t ack_id) {
    ts_sbuf_t out = TS_SBUF_INIT;
    sess_flow_t *f = flow_of(ss);
    if (!f->from) f->from = ts_sess_envelope_from_tail(ss->id.user, ss->id.device, ss->id.tab);
    ts_sess_envelope_relay_raw_tail(env, ts_buf_slice(f->from), &out);
    char id[TS_SESS_MAX_NAME + 1], client[TS_SESS_MAX_NAME + 1];
    ts_slice_cstr(id, sizeof id, env->id);
    ts_slice_cstr(client, sizeof client, env->client);
    pub_t pb = {.prio = env->prio,
                .to = env->to,
                .relayed = ts_slice(ts_sbuf_data(&out), ts_sbuf_len(&out)),
                .type = env->type,
                .id = id,
                .client = client,
                .mut = env->mut};
    publish_one(ss, ts_sess__batch_new(ss, &(sess_answer_t){ack_id, NULL, NULL}, 1, 0), 0, &pb);
    ts_sbuf_free(&out);
}

/* Copies the metadata members we keep, each checked; others are ignored. */
static int take_metadata(sess_sock_t *ss, json_t *in, char *why, size_t whylen) {
    if (!json_is_object(in)) {
        snprintf(why, whylen, "metadata must be an object");
        return -1;
    }
    size_t size = json_dumpb(in, NULL, 0, JSON_COMPACT);
    if (size > MAX_METADATA_BYTES) {
        snprintf(why, whylen, "metadata larger than %d bytes", MAX_METADATA_BYTES);
        return -1;
    }
    json_t *net = json_object_get(in, "network"), *bat = json_object_get(in, "battery");
    json_t *vis = json_object_get(in, "visibility");
    if (net && !json_is_object(net)) {
        snprintf(why, whylen, "network must be an object {effectiveType, downlink, rtt}");
        return -1;
    }
    if (bat && !json_is_object(bat)) {
        snprintf(why, whylen, "battery must be an object {level, charging}");
        return -1;
    }
    if (vis && !(json_is_string(vis) && (strcmp(json_string_value(vis), "visible") == 0 ||
                                         strcmp(json_string_value(vis), "hidden") == 0))) {
        snprintf(why, whylen, "visibility must be \"visible\" or \"hidden\"");
        return -1;
    }
    json_t **meta = &flow_of(ss)->meta;
    if (!*meta && (net || bat || vis || json_object_get(in, "type")))
        *meta = json_object(); /* made at the first report: most tabs never send one */
    if (net) {
        json_t *n = json_object();
        json_t *et = json_object_get(net, "effectiveType");
        if (json_is_string(et) && strlen(json_string_value(et)) <= 16)
            json_object_set(n, "effectiveType", et);
        json_t *dl = json_object_get(net, "downlink"), *rtt = json_object_get(net, "rtt");
        if (json_is_number(dl)) json_object_set(n, "downlink", dl);
        if (json_is_number(rtt)) json_object_set(n, "rtt", rtt);
        json_object_set_new(*meta, "network", n);
    }
    if (bat) {
        json_t *b = json_object();
        json_t *lv = json_object_get(bat, "level"), *ch = json_object_get(bat, "charging");
        if (json_is_number(lv) && json_number_value(lv) >= 0 && json_number_value(lv) <= 1)
            json_object_set(b, "level", lv);
        if (json_is_boolean(ch)) json_object_set(b, "charging", ch);
        json_object_set_new(*meta, "battery", b);
    }
    if (vis) json_object_set(*meta, "visibility", vis);
    json_t *type = json_object_get(in, "type");
    if (type) {
        const char *t = json_string_value(type);
        int known = 0;
        for (int i = TS_SESS_DEV_BROWSER; t && i <= TS_SESS_DEV_CLI; i++)
            if (strcmp(t, ts_sess_device_type_name((ts_sess_device_type_t)i)) == 0) known = 1;
        if (!known) {
            snprintf(why, whylen, "type must be browser, mobile, desktop, server or cli");
            return -1;
        }
        json_object_set(*meta, "type", type);
    }
    return 0;
}

static void do_metadata(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    char why[160];
    if (take_metadata(ss, json_array_get(a->args, 0), why, sizeof why) != 0) {
        ts_sess__reply(ss->s, ack_id, ts_sess__error("bad_metadata", why, 0));
        return;
    }
    ts_sess__reg_put(ss);
    ts_sess__reply(ss->s, ack_id, json_pack("{s:b}", "ok", 1));
    ts_sess__el_rescore(ss);
}

static void do_token(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    const char *token = json_string_value(json_object_get(json_array_get(a->args, 0), "token"));
    char why[200];
    int64_t exp = 0;
    int reason = token ? ts_sess__reauth(ss->sess, &ss->id, token, now_s(), &exp, why, sizeof why)
                       : (snprintf(why, sizeof why, "token event: expected {token: string}"), -1);
    if (reason) {
        ts_sess__reply(ss->s, ack_id,
              ts_sess__error(reason > 0 ? ts_sess_reason_name((ts_sess_reason_t)reason) : "bad_payload",
                        why, 0));
        return;
    }
    ss->id.exp = exp;
    ss->warned = 0;
    SESS_COUNT(ss->sess->counters[SC_TOKEN_SWAPS]);
    ts_sess__reply(ss->s, ack_id, json_pack("{s:b,s:I}", "ok", 1, "exp", (json_int_t)exp));
}

static void do_state(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    if (a->nattach) {
        ts_sess__reply(ss->s, ack_id,
                       ts_sess__error("bad_change", "binary values are not supported", 0));
        return;
    }
    ts_sess__hist_state(ss, json_array_get(a->args, 0), &(sess_answer_t){ack_id, NULL, NULL});
}

static void do_sync(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    ts_sess__hist_sync(ss, json_array_get(a->args, 0), &(sess_answer_t){ack_id, NULL, NULL});
}

/* The raw form of publish: one envelope as the text that arrived. Returns
 * 0 to take the tree path (an array, or text the raw parser cannot read). */
static int raw_publish(sess_sock_t *ss, const ts_sio_raw_arg_t *a, size_t n, int64_t ack_id);

/* Client events, one row each: the oldest protocol version that has it,
 * the handler, and optionally a handler of the raw form (the relay fast
 * path). Events of a later version than the socket's are unknown to it. */
typedef struct sess_event {
    const char *name;
    int min_proto;
    int needs_history; /* only with --history on */
    void (*handler)(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id);
    int (*raw)(sess_sock_t *ss, const ts_sio_raw_arg_t *a, size_t n, int64_t ack_id);
} sess_event_t;

static const sess_event_t events[] = {
    {"publish", 1, 0, do_publish, raw_publish},
    {"metadata", 1, 0, do_metadata, NULL},
    {"token", 1, 0, do_token, NULL},
    {"state", 3, 1, do_state, NULL},
    {"sync", 3, 1, do_sync, NULL},
    {"elect", TS_SESS_PROTO_ELECT, 0, ts_sess__el_on_elect, NULL},
    {"hb", TS_SESS_PROTO_ELECT, 0, ts_sess__el_on_hb, NULL},
    {"resign", TS_SESS_PROTO_ELECT, 0, ts_sess__el_on_resign, NULL},
    {"task", TS_SESS_PROTO_ELECT, 0, ts_sess__el_on_task, NULL},
};

static const sess_event_t *event_find(const sess_sock_t *ss, const char *name) {
    for (size_t i = 0; i < TS_ARRAY_LEN(events); i++)
        if (strcmp(events[i].name, name) == 0)
            return ss->id.proto >= events[i].min_proto &&
                           (!events[i].needs_history || ss->sess->history)
                       ? &events[i]
                       : NULL;
    return NULL;
}

static int raw_publish(sess_sock_t *ss, const ts_sio_raw_arg_t *a, size_t n, int64_t ack_id) {
    ts_sess_envelope_raw_t env;
    char why[160];
    (void)n; /* on_raw_event checked: one object at least */
    /* the texts of a raw event are canonical (ts_sio_raw_event_parse
     * checked them): not scanned again; TS_EINVAL does not happen */
    int rc = ts_sess_envelope_parse_canonical(a[0].text, &env, why, sizeof why);
    if (rc == TS_EINVAL) return 0;
    if (rc != 0)
        ts_sess__reply(ss->s, ack_id, ts_sess__error("bad_envelope", why, 0));
    else
        do_publish_raw(ss, &env, ack_id);
    return 1;
}

/* ---- limits that slow a client down ----
 * An event over the socket's rate is not refused: it waits in the socket's
 * inbound queue (in arrival order, behind anything already waiting) and is
 * handled when its tokens are there, so a burst — an offline queue flushing
 * a thousand changes at reconnect — goes through at the rate the limits
 * allow. Only an event that finds the queue full (--limit-queue, or 0: no
 * queue) is refused, and only refusals count as strikes. */

typedef struct sess_defer {
    ts_list_t link;
    const sess_event_t *ev; /* NULL: unknown to this socket */
    json_t *args;           /* the arguments array (a reference) */
    int64_t ack_id;
    uint64_t size, items;
} sess_defer_t;

#define DRAIN_MS 10

/* Messages that carry many items cost one token per item. */
static uint64_t cost_items(const sess_event_t *ev, json_t *args) {
    json_t *a0 = json_array_get(args, 0);
    int batches = ev && (ev->handler == do_publish || ev->handler == do_state);
    return batches && json_is_array(a0) && json_array_size(a0) ? json_array_size(a0) : 1;
}

static void dispatch(sess_sock_t *ss, const sess_event_t *ev, const ts_sio_args_t *a,
                     int64_t ack_id) {
    if (ev)
        ev->handler(ss, a, ack_id);
    else
        ts_sess__reply(ss->s, ack_id,
                       ts_sess__error("unknown_event", "unknown event (see docs/PROTOCOL.md)", 0));
}

static void defer_free(sess_defer_t *d) {
    json_decref(d->args);
    free(d);
}

/* Drops what a disconnected socket still had waiting. */
static void inq_clear(sess_sock_t *ss) {
    sess_flow_t *f = ss->flow;
    if (!f) return;
    while (!ts_list_empty(&f->inq)) {
        sess_defer_t *d = TS_CONTAINER_OF(f->inq.next, sess_defer_t, link);
        ts_list_remove(&d->link);
        defer_free(d);
    }
    f->inq_n = 0;
    if (ts_list_linked(&f->backlog_link)) ts_list_remove(&f->backlog_link);
}

static void on_drain(uv_timer_t *t) {
    ts_sess_t *sess = t->data;
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->backlog) {
        sess_flow_t *f = TS_CONTAINER_OF(it, sess_flow_t, backlog_link);
        sess_sock_t *ss = f->ss;
        ts_sess__sock_hold(ss);
        while (f->inq_n && !ss->gone) {
            sess_defer_t *d = TS_CONTAINER_OF(f->inq.next, sess_defer_t, link);
            if (try_take(ss, d->size, d->items, NULL)) break;
            ts_list_remove(&d->link);
            f->inq_n--;
            ts_sio_args_t a = {d->args, NULL, 0};
            dispatch(ss, d->ev, &a, d->ack_id);
            defer_free(d);
        }
        /* a dispatch can only unlink ss itself (its disconnect clears its queue) */
        if (!f->inq_n && ts_list_linked(&f->backlog_link)) ts_list_remove(&f->backlog_link);
        ts_sess__sock_release(ss);
    }
    if (ts_list_empty(&sess->backlog)) uv_timer_stop(&sess->drain);
}

static int defer(sess_sock_t *ss, const sess_event_t *ev, const ts_sio_args_t *a, int64_t ack_id,
                 uint64_t size, uint64_t items) {
    ts_sess_t *sess = ss->sess;
    if (inq_n(ss) >= sess->cfg.queue_max || a->nattach) return 0;
    sess_flow_t *f = flow_of(ss);
    sess_defer_t *d = ts_xcalloc(1, sizeof *d);
    d->ev = ev;
    d->args = json_incref(a->args);
    d->ack_id = ack_id;
    d->size = size;
    d->items = items;
    ts_list_insert_tail(&f->inq, &d->link);
    f->inq_n++;
    SESS_COUNT(sess->counters[SC_DEFERRED]);
    if (!ts_list_linked(&f->backlog_link)) {
        if (ts_list_empty(&sess->backlog)) uv_timer_start(&sess->drain, on_drain, DRAIN_MS, DRAIN_MS);
        ts_list_insert_tail(&sess->backlog, &f->backlog_link);
    }
    return 1;
}

/* The relay fast path (ts_sio_nsp_handler_t.on_raw_event): events whose
 * row has a raw handler, with their arguments as the texts that arrived,
 * the same checks and answers as on_event's, without a JSON tree. Anything
 * that has to wait (over the rate, or behind waiting events) takes the
 * tree path, which queues it. */
static int on_raw_event(ts_sio_socket_t *s, const char *event, const ts_sio_raw_arg_t *a,
                        size_t n, int64_t ack_id, void *ud) {
    (void)ud;
    sess_sock_t *ss = ts_sio_socket_ud(s);
    if (!ss || inq_n(ss) || n == 0 || a[0].text.p[0] != '{') return 0;
    const sess_event_t *ev = event_find(ss, event);
    if (!ev || !ev->raw) return 0;
    /* what json_dumpb of the arguments array measures on the other path */
    size_t size = n + 1;
    for (size_t i = 0; i < n; i++) size += a[i].text.len;
    if (try_take(ss, size, 1, NULL)) return 0;
    return ev->raw(ss, a, n, ack_id);
}

static void on_event(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *a, int64_t ack_id,
                     void *ud) {
    (void)ud;
    sess_sock_t *ss = ts_sio_socket_ud(s);
    if (!ss) return;
    const sess_event_t *ev = event_find(ss, event);
    uint64_t size = json_dumpb(a->args, NULL, 0, JSON_COMPACT), items = cost_items(ev, a->args);
    for (size_t i = 0; i < a->nattach; i++) size += a->attach[i]->len;
    uint64_t wait = 0;
    int limit = 0;
    if (!inq_n(ss) && !(wait = try_take(ss, size, items, &limit))) {
        dispatch(ss, ev, a, ack_id);
        return;
    }
    if (defer(ss, ev, a, ack_id, size, items)) return;
    refuse_throttled(ss, wait ? wait : DRAIN_MS, limit, ack_id);
}

/* ---- sweep: token expiry and registry renewal ---- */

static void emit_security(sess_sock_t *ss, const char *code, const char *message) {
    json_t *arr = json_pack("[{s:s,s:I,s:s}]", "code", code, "exp", (json_int_t)ss->id.exp,
                            "message", message);
    ts_sio_args_t a = {arr, NULL, 0};
    ts_sio_emit_class(ss->s, "security", &a, TS_SIO_CLASS_SECURITY);
    json_decref(arr);
}

static void on_sweep(uv_timer_t *t) {
    ts_sess_t *sess = t->data;
    uint64_t now = uv_now(sess->loop), wall = now_s();
    uint64_t renew_every = sess->cfg.registry_ttl_ms / 3;
    uint32_t warn = sess->cfg.expiry_warning_s;
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->socks) {
        sess_sock_t *ss = ts_list_entry(it, sess_sock_t, link);
        if ((int64_t)wall >= ss->id.exp + (int64_t)sess->cfg.leeway_s) {
            SESS_COUNT(sess->counters[SC_TOKEN_EXPIRED]);
            emit_security(ss, "token_expired", "the token expired; reconnect with a new one");
            ts_sio_disconnect(ss->s, 0); /* frees ss through on_disconnect */
            continue;
        }
        if (!ss->warned && (int64_t)(wall + warn) >= ss->id.exp) {
            ss->warned = 1;
            emit_security(ss, "token_expiring", "the token expires soon; send a fresh one (event token)");
        }
        if (now - ss->renewed_at >= renew_every) ts_sess__reg_put(ss);
    }
    ts_sess__hist_sweep(sess);
    ts_sess__order_sweep(sess);
}

/* ---- handshakes per address (Engine.IO level) ---- */

int ts_sess_allow_handshake(const ts_http_req_t *req, const char *peer, char *msg, size_t msglen,
                            uint32_t *retry_after_s, void *ud) {
    ts_sess_t *sess = ud;
    (void)req;
    if (!sess->cfg.handshakes_per_ip) return 0;
    /* one clock for every loop: each loop's uv_now is its own cached read */
    pthread_mutex_lock(&sess->sh->mu);
    int64_t wait = ts_rl_table_take(&sess->sh->hs_ip, peer, strlen(peer), ts_now_ms(), 1);
    pthread_mutex_unlock(&sess->sh->mu);
    if (wait == 0) return 0;
    SESS_COUNT(sess->counters[SC_THROTTLED_HANDSHAKE]);
    if (wait < 0) wait = 1000;
    *retry_after_s = (uint32_t)((wait + 999) / 1000);
    log_refusal(&log_throttle, limit_name(SC_THROTTLED_HANDSHAKE), peer,
                "throttled an Engine.IO handshake: %s", "too many from this address");
    snprintf(msg, msglen, "Too many handshakes from this address; retry in %u s", *retry_after_s);
    return 429;
}

/* ---- lifecycle ---- */

/* Durable recovery of the stock client (history.c): with the history on,
 * from the session log; without it, the server's in-memory recovery. */
static int on_restore(ts_sio_socket_t *s, const char *pid, const char *offset, void *ud) {
    ts_sess_t *sess = ud;
    sess_sock_t *ss = ts_sio_socket_ud(s);
    return ss && sess->history ? ts_sess__hist_restore(ss, pid, offset) : 0;
}

static const ts_sio_nsp_handler_t handler = {
    .authorize = on_authorize,
    .on_connection = on_connection,
    .on_event = on_event,
    .on_disconnect = on_disconnect,
    .on_raw_event = on_raw_event,
    .authorize_recovered = 1, /* tokens expire: a restored socket shows a valid one too */
};

/* With the history on, the stock client's recovery comes from the session
 * log (durable, also across restarts) instead of the server's memory. */
static const ts_sio_nsp_handler_t handler_durable = {
    .authorize = on_authorize,
    .on_connection = on_connection,
    .on_event = on_event,
    .on_disconnect = on_disconnect,
    .on_raw_event = on_raw_event,
    .restore = on_restore,
    .forget_auth = 1, /* its token and device live on in sess_sock_t, parsed */
    .on_remote_raw = ts_sess__order_remote, /* other nodes' entries in seq order */
    .wants_remote = ts_sess__order_wants,   /* a session's with no tab here, if ordered */
};

static sess_shared_t *shared_new(const ts_sess_cfg_t *cfg) {
    sess_shared_t *sh = ts_xcalloc(1, sizeof(*sh));
    pthread_mutex_init(&sh->mu, NULL);
    ts_rl_table_init(&sh->hs_ip, &(ts_rl_table_cfg_t){.kind = TS_RL_RATE,
                                                      .rate_mtps = TS_RL_PER_SEC(cfg->handshakes_per_ip),
                                                      .burst = cfg->handshakes_per_ip});
    ts_rl_table_init(&sh->conns_ip, &(ts_rl_table_cfg_t){.kind = TS_RL_COUNT,
                                                         .max_count = cfg->conns_per_ip});
    ts_rl_table_init(&sh->conns_user, &(ts_rl_table_cfg_t){.kind = TS_RL_COUNT,
                                                           .max_count = cfg->conns_per_user});
    uint32_t evu = user_events(cfg);
    ts_rl_table_init(&sh->ev_user, &(ts_rl_table_cfg_t){.kind = TS_RL_RATE,
                                                        .rate_mtps = TS_RL_PER_SEC(evu),
                                                        .burst = evu});
    return sh;
}

/* The last instance out frees what they shared. */
static void shared_leave(ts_sess_t *sess) {
    sess_shared_t *sh = sess->sh;
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < sh->nmembers; i++)
        if (sh->members[i] == sess) sh->members[i] = sh->members[--sh->nmembers];
    size_t left = sh->nmembers;
    pthread_mutex_unlock(&sh->mu);
    if (left) return;
    ts_rl_table_deinit(&sh->hs_ip);
    ts_rl_table_deinit(&sh->conns_ip);
    ts_rl_table_deinit(&sh->conns_user);
    ts_rl_table_deinit(&sh->ev_user);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

ts_sess_t *ts_sess_new(uv_loop_t *loop, ts_sio_server_t *sio, struct ts_store *store,
                       const ts_sess_cfg_t *cfg) {
    ts_sess_t *sess = ts_xcalloc(1, sizeof(*sess));
    sess->loop = loop;
    sess->sio = sio;
    sess->store = store;
    sess->cfg = *cfg;
    if (!sess->cfg.registry_ttl_ms) sess->cfg.registry_ttl_ms = 30000;
    if (!sess->cfg.expiry_warning_s) sess->cfg.expiry_warning_s = 60;
    snprintf(sess->node_id, sizeof sess->node_id, "%s", cfg->node_id ? cfg->node_id : "tabsyncd");
    ts_sess__el_channels(sess, cfg->channel_prefix ? cfg->channel_prefix : "");
    sess->cfg.node_id = sess->node_id;
    sess->sh = cfg->share_with ? cfg->share_with->sh : shared_new(cfg);
    pthread_mutex_lock(&sess->sh->mu);
    ts_assert(sess->sh->nmembers < TS_SIO_MAX_LOOPS);
    sess->sh->members[sess->sh->nmembers++] = sess;
    pthread_mutex_unlock(&sess->sh->mu);
    sess->cfg.share_with = NULL;
    ts_rl_table_init(&sess->ev_tab, &(ts_rl_table_cfg_t){.kind = TS_RL_RATE,
                                                         .rate_mtps = TS_RL_PER_SEC(cfg->events_per_socket),
                                                         .burst = cfg->events_per_socket});
    ts_rl_table_init(&sess->by_tab, &(ts_rl_table_cfg_t){.kind = TS_RL_RATE,
                                                         .rate_mtps = TS_RL_PER_SEC(cfg->bytes_per_socket),
                                                         .burst = cfg->bytes_per_socket});
    ts_rl_table_init(&sess->ev_conn, &(ts_rl_table_cfg_t){.kind = TS_RL_RATE,
                                                          .rate_mtps = TS_RL_PER_SEC(cfg->events_per_socket),
                                                          .burst = cfg->events_per_socket});
    ts_rl_table_init(&sess->by_conn, &(ts_rl_table_cfg_t){.kind = TS_RL_RATE,
                                                          .rate_mtps = TS_RL_PER_SEC(cfg->bytes_per_socket),
                                                          .burst = cfg->bytes_per_socket});
    sess->cfg.events_per_user = user_events(cfg);
    ts_brk_init(&sess->store_brk, &(ts_brk_cfg_t)TS_BRK_CFG_DEFAULT);
    ts_list_init(&sess->socks);
    sess->history = cfg->history == TS_SESS_HISTORY_ON;
    if (!sess->cfg.snapshot_every) sess->cfg.snapshot_every = 1000;
    if (!sess->cfg.max_batch) sess->cfg.max_batch = 256;
    if (!sess->cfg.hist_cache_max) sess->cfg.hist_cache_max = 10000;
    if (!sess->cfg.hist_cache_bytes) sess->cfg.hist_cache_bytes = (size_t)256 << 20;
    if (!sess->cfg.state_max_bytes) sess->cfg.state_max_bytes = 1024 * 1024;
    sess->rules = cfg->rules;
    if (!sess->rules) sess->rules = sess->own_rules = ts_sess_rules_default();
    ts_sess__hist_init(sess);
    sess->nsp = ts_sio_nsp_add(sio, "/session", sess->history ? &handler_durable : &handler, sess);
    uv_timer_init(loop, &sess->sweep);
    sess->sweep.data = sess;
    uv_timer_start(&sess->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&sess->sweep);
    ts_list_init(&sess->backlog);
    uv_timer_init(loop, &sess->drain);
    sess->drain.data = sess;
    uv_unref((uv_handle_t *)&sess->drain);
    ts_list_init(&sess->lowprio);
    uv_timer_init(loop, &sess->lowprio_tick);
    sess->lowprio_tick.data = sess;
    uv_unref((uv_handle_t *)&sess->lowprio_tick);
    ts_sess__el_init(sess);
    ts_sess__order_init(sess);
    sess->timers_open = 6;
    return sess;
}

/* The session layer goes once its timers are closed and no store call is
 * outstanding (their callbacks carry it as user data). */
static void maybe_free(ts_sess_t *sess) {
    if (!sess->closed || sess->timers_open || sess->pending_ops) return;
    shared_leave(sess);
    ts_rl_table_deinit(&sess->ev_tab);
    ts_rl_table_deinit(&sess->by_tab);
    ts_rl_table_deinit(&sess->ev_conn);
    ts_rl_table_deinit(&sess->by_conn);
    ts_sess__hist_deinit(sess);
    ts_sess__order_deinit(sess);
    ts_sess__el_deinit(sess);
    ts_sess_rules_free(sess->own_rules);
    free(sess);
}

void ts_sess__op_end(ts_sess_t *sess) {
    sess->pending_ops--;
    maybe_free(sess);
}

static void timer_closed(uv_handle_t *h) {
    ts_sess_t *sess = h->data;
    sess->timers_open--;
    maybe_free(sess);
}

void ts_sess_free(ts_sess_t *sess) {
    ts_sess__el_drop_all(sess);
    /* sockets still connected are gone with the Socket.IO server; forget them */
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->socks) {
        sess_sock_t *ss = ts_list_entry(it, sess_sock_t, link);
        ts_list_remove(&ss->link);
        ts_sess__reg_remove(ss);
        ts_sio_socket_set_ud(ss->s, NULL);
        inq_clear(ss);
        sock_free(ss);
    }
    sess->closed = 1;
    ts_sess__hist_shutdown(sess);
    uv_close((uv_handle_t *)&sess->sweep, timer_closed);
    uv_close((uv_handle_t *)&sess->drain, timer_closed);
    uv_close((uv_handle_t *)&sess->lowprio_tick, timer_closed);
    uv_close((uv_handle_t *)&sess->el_tick, timer_closed);
    uv_close((uv_handle_t *)&sess->el_lapse, timer_closed);
    uv_close((uv_handle_t *)&sess->order_tick, timer_closed);
}

/* The store's durability costs: commits and their latency (the fsync of
 * a group), entries appended and compacted. One store per process: loop
 * 0's handle speaks for all. */
static void store_metrics(ts_sess_t *sess, ts_sbuf_t *out) {
    ts_store_stats_t st;
    if (ts_store_stats(sess->store, &st) != 0) return;
    static const uint64_t bounds[TS_STORE_LAT_BUCKETS] = TS_STORE_LAT_BOUNDS_US;
    ts_sbuf_printf(out,
                   "# TYPE tabsync_store_commits_total counter\n"
                   "tabsync_store_commits_total %llu\n"
                   "tabsync_store_commit_failures_total %llu\n"
                   "tabsync_store_entries_appended_total %llu\n"
                   "tabsync_store_entries_compacted_total %llu\n"
                   "tabsync_store_duplicates_total %llu\n"
                   "# TYPE tabsync_store_commit_seconds histogram\n",
                   (unsigned long long)st.commits, (unsigned long long)st.commit_failures,
                   (unsigned long long)st.events_appended, (unsigned long long)st.events_trimmed,
                   (unsigned long long)st.dups);
    for (int i = 0; i < TS_STORE_LAT_BUCKETS; i++) {
        if (bounds[i] == UINT64_MAX)
            ts_sbuf_append_str(out, "tabsync_store_commit_seconds_bucket{le=\"+Inf\"}");
        else
            ts_sbuf_printf(out, "tabsync_store_commit_seconds_bucket{le=\"%g\"}",
                           (double)bounds[i] / 1e6);
        ts_sbuf_printf(out, " %llu\n", (unsigned long long)st.lat_le[i]);
    }
    ts_sbuf_printf(out,
                   "tabsync_store_commit_seconds_sum %.6f\n"
                   "tabsync_store_commit_seconds_count %llu\n"
                   "# TYPE tabsync_store_plain_commits_total counter\n"
                   "tabsync_store_plain_commits_total{path=\"xadd\"} %llu\n"
                   "tabsync_store_plain_commits_total{path=\"script\"} %llu\n",
                   (double)st.lat_sum_us / 1e6, (unsigned long long)st.lat_count,
                   (unsigned long long)st.plain_xadd, (unsigned long long)st.plain_script);
}

/* A Prometheus histogram from cumulative bucket counters. */
static void hist_render(ts_sbuf_t *out, const char *name, const char *const *le,
                        const uint64_t *bucket, size_t n, double sum, uint64_t count) {
    ts_sbuf_printf(out, "# TYPE %s histogram\n", name);
    for (size_t i = 0; i < n; i++)
        ts_sbuf_printf(out, "%s_bucket{le=\"%s\"} %llu\n", name, le[i],
                       (unsigned long long)bucket[i]);
    ts_sbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6g\n%s_count %llu\n", name,
                   (unsigned long long)count, name, sum, name, (unsigned long long)count);
}

void ts_sess_metrics(ts_sess_t *sess, ts_sbuf_t *out) {
    static const char *const names[SC_COUNT] = {
        "tabsync_session_connects_total",          "tabsync_session_relayed_total",
        "tabsync_session_throttled_total{limit=\"handshakes_per_ip\"}",
        "tabsync_session_throttled_total{limit=\"conns_per_ip\"}",
        "tabsync_session_throttled_total{limit=\"conns_per_user\"}",
        "tabsync_session_throttled_total{limit=\"events_per_socket\"}",
        "tabsync_session_throttled_total{limit=\"bytes_per_socket\"}",
        "tabsync_session_abuse_disconnects_total", "tabsync_session_token_expired_total",
        "tabsync_session_token_swaps_total",       "tabsync_session_store_refused_total",
        "tabsync_history_entries_total",           "tabsync_history_changes_total",
        "tabsync_history_conflicts_total{strategy=\"version\"}",
        "tabsync_history_conflicts_total{strategy=\"lww\"}",
        "tabsync_history_duplicates_total",
        "tabsync_history_resyncs_total",           "tabsync_history_replays_total",
        "tabsync_history_replayed_entries_total",  "tabsync_session_deferred_total",
        "tabsync_session_coalesced_total",         "tabsync_session_coalesce_windows_total",
        "tabsync_session_recovered_total",
        "tabsync_history_cache_evicted_total",
        [SC_EL_STALE] = "tabsync_elect_stale_refused_total",
        [SC_EL_LAPSES] = "tabsync_elect_lapses_total",
        [SC_EL_TASKS_REASSIGNED] = "tabsync_elect_tasks_reassigned_total",
        [SC_THROTTLED_EVENTS_CONN] = "tabsync_session_throttled_total{limit=\"events_per_conn\"}",
        [SC_THROTTLED_BYTES_CONN] = "tabsync_session_throttled_total{limit=\"bytes_per_conn\"}",
        [SC_THROTTLED_EVENTS_USER] = "tabsync_session_throttled_total{limit=\"events_per_user\"}",
        [SC_ORDER_WAITED] = "tabsync_session_order_waited_total",
        [SC_ORDER_FETCHED] = "tabsync_session_order_fetched_total",
        [SC_ORDER_REPEATS] = "tabsync_session_order_repeats_total",
        /* the histograms are rendered whole below (NULL: not here) */
};
    /* the sum over every loop's instance; each value is read whole (relaxed
     * loads) while its loop may be bumping it */
    uint64_t counters[SC_COUNT] = {0}, refused[TS_SESS_R_COUNT_] = {0};
    uint64_t reasons[TS_EL_R_COUNT_] = {0};
    size_t nsocks = 0, nscopes = 0, nhists = 0, nwork = 0, hist_bytes = 0;
    pthread_mutex_lock(&sess->sh->mu);
    for (size_t m = 0; m < sess->sh->nmembers; m++) {
        ts_sess_t *x = sess->sh->members[m];
        nsocks += __atomic_load_n(&x->nsocks, __ATOMIC_RELAXED);
        nscopes += __atomic_load_n(&x->el_nscopes, __ATOMIC_RELAXED);
        nhists += __atomic_load_n(&x->nhists, __ATOMIC_RELAXED);
        nwork += __atomic_load_n(&x->nhist_work, __ATOMIC_RELAXED);
        hist_bytes += __atomic_load_n(&x->hist_bytes, __ATOMIC_RELAXED);
        for (int r = 0; r < TS_EL_R_COUNT_; r++)
            reasons[r] += __atomic_load_n(&x->el_reasons[r], __ATOMIC_RELAXED);
        for (int i = 0; i < SC_COUNT; i++)
            counters[i] += __atomic_load_n(&x->counters[i], __ATOMIC_RELAXED);
        for (int r = 0; r < TS_SESS_R_COUNT_; r++)
            refused[r] += __atomic_load_n(&x->refused[r], __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&sess->sh->mu);
    ts_sbuf_printf(out, "# TYPE tabsync_session_sockets gauge\ntabsync_session_sockets %zu\n",
                   nsocks);
    ts_sbuf_printf(out,
                   "# TYPE tabsync_history_cached_sessions gauge\ntabsync_history_cached_sessions %zu\n"
                   "# TYPE tabsync_history_cache_bytes gauge\ntabsync_history_cache_bytes %zu\n"
                   "# TYPE tabsync_history_cache_writing gauge\ntabsync_history_cache_writing %zu\n",
                   nhists, hist_bytes, nwork);
    for (int i = 0; i < SC_COUNT; i++)
        if (names[i]) ts_sbuf_printf(out, "%s %llu\n", names[i], (unsigned long long)counters[i]);
    static const char *const append_le[] = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.1"};
    hist_render(out, "tabsync_history_append_seconds", append_le, counters + SC_APPEND_LE_1MS,
                TS_ARRAY_LEN(append_le), (double)counters[SC_APPEND_SUM_US] / 1e6,
                counters[SC_APPEND_COUNT]);
    static const char *const replay_le[] = {"1", "10", "100", "1000"};
    hist_render(out, "tabsync_history_replay_entries", replay_le, counters + SC_REPLAY_LE_1,
                TS_ARRAY_LEN(replay_le), (double)counters[SC_REPLAYED_ENTRIES],
                counters[SC_REPLAYED]);
    ts_sbuf_printf(out, "# TYPE tabsync_elect_scopes gauge\ntabsync_elect_scopes %zu\n", nscopes);
    ts_sbuf_printf(out, "# TYPE tabsync_elect_elections_total counter\n");
    for (int r = 0; r < TS_EL_R_COUNT_; r++)
        ts_sbuf_printf(out, "tabsync_elect_elections_total{reason=\"%s\"} %llu\n",
                       ts_el_reason_name((ts_el_reason_t)r), (unsigned long long)reasons[r]);
    ts_sbuf_printf(out, "# TYPE tabsync_elect_leaderless_seconds_total counter\n"
                        "tabsync_elect_leaderless_seconds_total %.3f\n",
                   (double)counters[SC_EL_LEADERLESS_MS] / 1000.0);
    for (int r = 1; r < TS_SESS_R_COUNT_; r++)
        ts_sbuf_printf(out, "tabsync_session_auth_refused_total{reason=\"%s\"} %llu\n",
                       ts_sess_reason_name((ts_sess_reason_t)r), (unsigned long long)refused[r]);
    ts_brk_render(&sess->store_brk, "store", out);
    store_metrics(sess, out);
}
