/* test_rreq.c - server-side requests between the wire and the Socket.IO
 * layer (src/adapter/rreq.c): every request the real Node adapters sent in
 * the golden vectors (rmsg-vectors.json) becomes the request tabsyncd acts
 * on, and every response Node sent is what our answer encodes to, byte for
 * byte and on the same channel; every request Node sent is what our own
 * request of that kind encodes to, and every answer Node sent counts into
 * the result of the request it answers; then the cases the vectors lack
 * (our own messages, formats without an answer, ill-formed answers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapter/ts_adp_rreq.h"
#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"

static json_t *g_doc;

static json_t *vectors(void) {
    if (g_doc) return json_object_get(g_doc, "vectors");
    char path[4096];
    const char *env = getenv("TS_RMSG_VECTORS");
    if (env) {
        snprintf(path, sizeof(path), "%s", env);
    } else {
        snprintf(path, sizeof(path), "%s", __FILE__);
        char *slash = strrchr(path, '/');
        snprintf(slash ? slash + 1 : path, sizeof(path) - (size_t)(slash ? slash + 1 - path : 0),
                 "rmsg-vectors.json");
    }
    json_error_t je;
    g_doc = json_load_file(path, 0, &je);
    if (!g_doc) fail_msg("cannot read %s: %s (set TS_RMSG_VECTORS)", path, je.text);
    return json_object_get(g_doc, "vectors");
}

static uint8_t *unhex(const char *h, size_t *len) {
    size_t n = strlen(h) / 2;
    uint8_t *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        b[i] = (uint8_t)v;
    }
    *len = n;
    return b;
}

/* Decodes vector i into *m; returns its format (and bytes, owned). */
static ts_adp_rmsg_format_t decode_vec(json_t *v, ts_adp_rmsg_t *m, uint8_t **bytes,
                                       size_t *len) {
    ts_adp_rmsg_format_t f = strcmp(json_string_value(json_object_get(v, "format")), "sharded") == 0
                                 ? TS_ADP_RMSG_SHARDED
                                 : TS_ADP_RMSG_CLASSIC;
    *bytes = unhex(json_string_value(json_object_get(v, "hex")), len);
    char err[160];
    if (ts_adp_rmsg_decode(NULL, f, ts_slice_str(json_string_value(json_object_get(v, "channel"))),
                           ts_slice(*bytes, *len), m, err, sizeof err) != 0)
        fail_msg("%s: %s", json_string_value(json_object_get(v, "name")), err);
    return f;
}

static int is_kind(const ts_adp_rmsg_t *m, ts_adp_rmsg_kind_t k) { return m->kind == k; }

/* One golden vector, decoded: its name, its message, its format and Node's
 * bytes (x->bytes[0..len)). */
typedef struct vec {
    json_t *v;
    const char *name;
    ts_adp_rmsg_t m;
    ts_adp_rmsg_format_t f;
    uint8_t *bytes;
    size_t len;
} vec_t;

/* Calls check(x, ud) with every vector, decoded (and freed after). */
static void each_vector(void (*check)(vec_t *x, void *ud), void *ud) {
    json_t *vs = vectors();
    for (size_t i = 0; i < json_array_size(vs); i++) {
        vec_t x = {.v = json_array_get(vs, i)};
        x.name = json_string_value(json_object_get(x.v, "name"));
        x.f = decode_vec(x.v, &x.m, &x.bytes, &x.len);
        check(&x, ud);
        ts_adp_rmsg_clear(&x.m);
        free(x.bytes);
    }
}

/* Our message `what` for vector x (rc, err: its encoder's answer; w: cleared
 * here) is Node's, on the same channel, byte for byte. */
static void same_as_nodes(const vec_t *x, const char *what, int rc, const char *err,
                          ts_adp_rmsg_wire_t *w) {
    if (rc != 0) fail_msg("%s: %d %s", x->name, rc, err);
    const char *ch = json_string_value(json_object_get(x->v, "channel"));
    if (strcmp((const char *)w->channel->data, ch) != 0)
        fail_msg("%s: channel %s, Node's %s", x->name, (const char *)w->channel->data, ch);
    if (w->bytes->len != x->len || memcmp(w->bytes->data, x->bytes, x->len) != 0)
        fail_msg("%s: our %s differs from Node's (%zu bytes, Node %zu: %.*s)", x->name, what,
                 w->bytes->len, x->len, (int)w->bytes->len, (const char *)w->bytes->data);
    ts_adp_rmsg_wire_clear(w);
}

/* ---- requests: what Node sent becomes what we act on ---- */

static void request_from_node(vec_t *x, void *ud) {
    size_t *seen = ud;
    const char *name = x->name;
    ts_adp_rmsg_t *m = &x->m;
    ts_adp_req_t r;
    int is = ts_adp_rreq_of(m, "not-the-sender", &r);
    ts_adp_req_kind_t want;
    int request = 1;
    switch (m->kind) {
    case TS_ADP_RMSG_FETCH_SOCKETS: want = TS_ADP_REQ_FETCH_SOCKETS; break;
    case TS_ADP_RMSG_SOCKETS: want = TS_ADP_REQ_SOCKETS; break;
    case TS_ADP_RMSG_ALL_ROOMS: want = TS_ADP_REQ_ALL_ROOMS; break;
    case TS_ADP_RMSG_SOCKETS_JOIN: want = TS_ADP_REQ_SOCKETS_JOIN; break;
    case TS_ADP_RMSG_SOCKETS_LEAVE: want = TS_ADP_REQ_SOCKETS_LEAVE; break;
    case TS_ADP_RMSG_DISCONNECT_SOCKETS: want = TS_ADP_REQ_DISCONNECT_SOCKETS; break;
    case TS_ADP_RMSG_SERVER_SIDE_EMIT: want = TS_ADP_REQ_SERVER_SIDE_EMIT; break;
    case TS_ADP_RMSG_BROADCAST_WITH_ACK: want = TS_ADP_REQ_BROADCAST_ACK; break;
    default: want = TS_ADP_REQ_KIND_COUNT; request = 0;
    }
    if (is != request) fail_msg("%s (%s): request %d, want %d", name,
                                ts_adp_rmsg_kind_name(m->kind), is, request);
    if (request) {
        seen[want]++;
        if (r.kind != want) fail_msg("%s: kind %s", name, ts_adp_req_kind_name(r.kind));
        assert_string_equal(r.requester, m->uid);
        assert_ptr_equal(r.nsp, m->nsp);
        if (m->has_opts) {
            assert_int_equal(r.nrooms, m->opts.rooms.n);
            assert_int_equal(r.nexcept, m->opts.except.n);
            assert_null(r.sid);
        }
        if (want == TS_ADP_REQ_SOCKETS_JOIN || want == TS_ADP_REQ_SOCKETS_LEAVE) {
            assert_int_equal(r.nnames, m->rooms.n);
            assert_true(r.nnames > 0);
        }
        /* answers are wanted exactly where Node answers */
        int answered = want == TS_ADP_REQ_FETCH_SOCKETS || want == TS_ADP_REQ_SOCKETS ||
                       want == TS_ADP_REQ_ALL_ROOMS || want == TS_ADP_REQ_BROADCAST_ACK ||
                       (want == TS_ADP_REQ_SERVER_SIDE_EMIT && m->request_id) || r.sid;
        if (!answered != !r.request_id)
            fail_msg("%s: request_id %s", name, r.request_id ? r.request_id : "(none)");
        if (want == TS_ADP_REQ_BROADCAST_ACK || want == TS_ADP_REQ_SERVER_SIDE_EMIT)
            assert_true(json_is_array(r.data));
        if (want == TS_ADP_REQ_BROADCAST_ACK && (m->opts.flags & TS_ADP_RMSG_F_TIMEOUT))
            assert_int_equal(r.timeout_ms, m->opts.timeout_ms);
        /* the sender's own request is not ours to act on */
        assert_int_equal(ts_adp_rreq_of(m, m->uid, &r), 0);
    }
}

static void test_requests_from_node(void **state) {
    (void)state;
    size_t seen[TS_ADP_REQ_KIND_COUNT] = {0};
    each_vector(request_from_node, seen);
    for (size_t k = 0; k < TS_ADP_REQ_KIND_COUNT; k++)
        if (!seen[k]) fail_msg("no vector of request %s", ts_adp_req_kind_name((ts_adp_req_kind_t)k));
}

/* ---- answers: ours are Node's bytes ---- */

static json_t *strs_json(const ts_adp_rmsg_strs_t *s) {
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++) json_array_append_new(a, json_string(s->v[i]));
    return a;
}

static void answer_is_nodes(vec_t *x, void *ud) {
    size_t *checked = ud;
    ts_adp_rmsg_t *m = &x->m;
    ts_adp_answer_t a = {.nsp = m->nsp, .request_id = m->request_id, .requester = m->to};
    json_t *list = NULL;
    int answer = 1;
    if (is_kind(m, TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE)) {
        a.kind = TS_ADP_REQ_FETCH_SOCKETS;
        list = json_array();
        for (size_t k = 0; k < m->nsockets; k++) {
            json_t *s = json_pack("{s:s,s:O,s:o}", "id", m->sockets[k].id, "handshake",
                                  m->sockets[k].handshake, "rooms",
                                  strs_json(&m->sockets[k].rooms));
            if (m->sockets[k].data) json_object_set(s, "data", m->sockets[k].data);
            json_array_append_new(list, s);
        }
    } else if (is_kind(m, TS_ADP_RMSG_SOCKETS_RESPONSE) ||
               is_kind(m, TS_ADP_RMSG_ALL_ROOMS_RESPONSE)) {
        a.kind = is_kind(m, TS_ADP_RMSG_SOCKETS_RESPONSE) ? TS_ADP_REQ_SOCKETS
                                                          : TS_ADP_REQ_ALL_ROOMS;
        list = strs_json(&m->rooms);
    } else if (is_kind(m, TS_ADP_RMSG_RESPONSE)) {
        a.kind = TS_ADP_REQ_SOCKETS_JOIN;
    } else if (is_kind(m, TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE)) {
        a.kind = TS_ADP_REQ_SERVER_SIDE_EMIT;
        a.data = m->data;
    } else if (is_kind(m, TS_ADP_RMSG_BROADCAST_CLIENT_COUNT)) {
        a.kind = TS_ADP_REQ_BROADCAST_ACK;
        a.client_count = m->client_count;
    } else if (is_kind(m, TS_ADP_RMSG_BROADCAST_ACK)) {
        a.kind = TS_ADP_REQ_BROADCAST_ACK;
        a.is_ack = 1;
        a.data = m->data;
    } else {
        answer = 0;
    }
    if (answer) {
        a.list = list;
        a.attach = m->attach; /* binaries anywhere: socket data, ack values */
        a.nattach = m->nattach;
        ts_adp_rmsg_wire_t w;
        char err[160];
        /* a Node responder with publishOnSpecificResponseChannel names the requester */
        ts_adp_rmsg_cfg_t cfg = {.specific_responses = x->f == TS_ADP_RMSG_CLASSIC && m->to};
        int rc = ts_adp_rreq_encode_answer(&cfg, x->f, m->uid, &a, &w, err, sizeof err);
        same_as_nodes(x, "answer", rc, err, &w);
        (*checked)++;
    }
    json_decref(list);
}

static void test_answers_are_nodes_bytes(void **state) {
    (void)state;
    size_t checked = 0;
    each_vector(answer_is_nodes, &checked);
    assert_true(checked >= 10);
}

/* ---- requests of ours: Node's bytes too ---- */

static void request_is_nodes(vec_t *x, void *ud) {
    size_t (*seen)[TS_ADP_REQ_KIND_COUNT + 1] = ud;
    ts_adp_rmsg_t *m = &x->m;
    ts_adp_req_t r;
    /* the kinds this node sends, in their current (not one-socket) form */
    if (ts_adp_rreq_of(m, "not-the-sender", &r) && !r.sid &&
        (r.kind == TS_ADP_REQ_FETCH_SOCKETS || r.kind == TS_ADP_REQ_SOCKETS_JOIN ||
         r.kind == TS_ADP_REQ_SOCKETS_LEAVE || r.kind == TS_ADP_REQ_DISCONNECT_SOCKETS ||
         r.kind == TS_ADP_REQ_SERVER_SIDE_EMIT || r.kind == TS_ADP_REQ_ALL_ROOMS ||
         r.kind == TS_ADP_REQ_BROADCAST_ACK)) {
        ts_adp_rmsg_wire_t w;
        char err[160];
        int rc = ts_adp_rreq_encode_request(NULL, x->f, m->uid, &r, &w, err, sizeof err);
        same_as_nodes(x, "request", rc, err, &w);
        seen[x->f][r.kind]++;
    }
    /* io.emit(): a plain broadcast (no request_id) with no flags but rooms
     * and except, as the cluster API sends one (not the vector with a Date:
     * docs/REDIS-WIRE.md "Not supported") */
    if (m->kind == TS_ADP_RMSG_BROADCAST && !m->opts.flags && json_is_array(m->packet.data) &&
        m->packet.id < 0 && m->packet.type == 2 && !strstr(x->name, "date")) {
        ts_adp_req_t b = {.kind = TS_ADP_REQ_BROADCAST_ACK, .nsp = m->nsp,
                          .rooms = (const char *const *)m->opts.rooms.v, .nrooms = m->opts.rooms.n,
                          .except = (const char *const *)m->opts.except.v, .nexcept = m->opts.except.n,
                          .data = m->packet.data, .attach = m->attach, .nattach = m->nattach};
        ts_adp_rmsg_wire_t w;
        char err[160];
        int rc = ts_adp_rreq_encode_request(NULL, x->f, m->uid, &b, &w, err, sizeof err);
        same_as_nodes(x, "plain broadcast", rc, err, &w);
        seen[x->f][TS_ADP_REQ_KIND_COUNT]++; /* the slot past the kinds: plain broadcasts */
    }
}

static void test_requests_are_nodes_bytes(void **state) {
    (void)state;
    size_t seen[2][TS_ADP_REQ_KIND_COUNT + 1] = {{0}};
    each_vector(request_is_nodes, seen);
    const ts_adp_req_kind_t kinds[] = {TS_ADP_REQ_FETCH_SOCKETS, TS_ADP_REQ_SOCKETS_JOIN,
                                       TS_ADP_REQ_SOCKETS_LEAVE, TS_ADP_REQ_DISCONNECT_SOCKETS,
                                       TS_ADP_REQ_SERVER_SIDE_EMIT, TS_ADP_REQ_BROADCAST_ACK};
    for (size_t f = 0; f < 2; f++)
        for (size_t k = 0; k < TS_ARRAY_LEN(kinds); k++)
            if (!seen[f][kinds[k]])
                fail_msg("no %s vector of request %s", f ? "sharded" : "classic",
                         ts_adp_req_kind_name(kinds[k]));
    if (!seen[TS_ADP_RMSG_CLASSIC][TS_ADP_REQ_ALL_ROOMS]) fail_msg("no classic vector of ALL_ROOMS");
    for (size_t f = 0; f < 2; f++)
        if (!seen[f][TS_ADP_REQ_KIND_COUNT]) fail_msg("no plain broadcast vector (%zu)", f);
}

static void test_requests_we_do_not_make(void **state) {
    (void)state;
    char err[160] = "";
    ts_adp_rmsg_wire_t w;
    const struct {
        const char *name;
        ts_adp_req_t req;
        const char *want;
    } rows[] = {
        {"broadcast with acks without data", {.kind = TS_ADP_REQ_BROADCAST_ACK, .nsp = "/", .request_id = "r"},
         "BROADCAST_ACK needs"},
        {"broadcast without data", {.kind = TS_ADP_REQ_BROADCAST_ACK, .nsp = "/"},
         "BROADCAST_ACK needs"},
        {"another kind", {.kind = TS_ADP_REQ_SOCKETS, .nsp = "/", .request_id = "r"}, "SOCKETS"},
        {"fetch without id", {.kind = TS_ADP_REQ_FETCH_SOCKETS, .nsp = "/"}, "request_id"},
        {"emit without data", {.kind = TS_ADP_REQ_SERVER_SIDE_EMIT, .nsp = "/"}, "data"},
    };
    for (size_t i = 0; i < TS_ARRAY_LEN(rows); i++) {
        for (int f = 0; f < 2; f++) {
            int rc = ts_adp_rreq_encode_request(NULL, (ts_adp_rmsg_format_t)f, "me", &rows[i].req,
                                                &w, err, sizeof err);
            if (rc != TS_EINVAL || !strstr(err, rows[i].want))
                fail_msg("%s (%d): %d \"%s\", want TS_EINVAL \"%s\"", rows[i].name, f, rc, err,
                         rows[i].want);
            assert_null(w.bytes);
        }
    }
    /* allRooms: the classic format's request only */
    ts_adp_req_t all = {.kind = TS_ADP_REQ_ALL_ROOMS, .nsp = "/", .request_id = "r"};
    int rc = ts_adp_rreq_encode_request(NULL, TS_ADP_RMSG_SHARDED, "me", &all, &w, err, sizeof err);
    assert_int_equal(rc, TS_EINVAL);
    assert_non_null(strstr(err, "classic format only"));
    assert_null(w.bytes);
    assert_int_equal(ts_adp_rreq_encode_request(NULL, TS_ADP_RMSG_CLASSIC, "me", &all, &w, err, sizeof err), 0);
    ts_adp_rmsg_wire_clear(&w);
}

/* ---- answers to requests of ours ---- */

static void collect_nodes_answer(vec_t *x, void *ud) {
    size_t *counted = ud;
    const char *name = x->name;
    ts_adp_rmsg_t *m = &x->m;
    ts_adp_result_t fetch = {0}, emit = {0}, all = {0};
    int f = ts_adp_rreq_collect(&fetch, TS_ADP_REQ_FETCH_SOCKETS, m);
    int e = ts_adp_rreq_collect(&emit, TS_ADP_REQ_SERVER_SIDE_EMIT, m);
    int r = ts_adp_rreq_collect(&all, TS_ADP_REQ_ALL_ROOMS, m);
    if (r != is_kind(m, TS_ADP_RMSG_ALL_ROOMS_RESPONSE))
        fail_msg("%s (%s): counted %d for allRooms", name, ts_adp_rmsg_kind_name(m->kind), r);
    if (r) { /* each room once, none else */
        assert_int_equal(all.answered, 1);
        for (size_t k = 0; k < m->rooms.n; k++) assert_non_null(json_object_get(all.rooms, m->rooms.v[k]));
        assert_true(json_object_size(all.rooms) <= m->rooms.n);
        assert_true(m->rooms.n == 0 || json_object_size(all.rooms) > 0);
        counted[2]++;
    }
    if (!r) assert_null(all.rooms);
    json_decref(all.rooms);
    ts_adp_result_t bc = {0};
    int b = ts_adp_rreq_collect(&bc, TS_ADP_REQ_BROADCAST_ACK, m);
    int count = is_kind(m, TS_ADP_RMSG_BROADCAST_CLIENT_COUNT), ack = is_kind(m, TS_ADP_RMSG_BROADCAST_ACK);
    if (b != (count || ack))
        fail_msg("%s (%s): counted %d for a broadcast with acks", name, ts_adp_rmsg_kind_name(m->kind), b);
    if (count) { /* a node told how many clients it reached */
        assert_int_equal(bc.answered, 1);
        assert_int_equal(bc.clients, m->client_count);
        assert_null(bc.answers);
        counted[3]++;
    }
    if (ack) { /* one client's answer, not a node's */
        assert_int_equal(bc.answered, 0);
        assert_int_equal(json_array_size(bc.answers), 1);
        assert_int_equal(json_is_null(json_array_get(bc.answers, 0)), !m->data);
        counted[4]++;
    }
    json_decref(bc.answers);
    if (f != is_kind(m, TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE) ||
        e != is_kind(m, TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE))
        fail_msg("%s (%s): counted %d for fetchSockets, %d for serverSideEmit", name,
                 ts_adp_rmsg_kind_name(m->kind), f, e);
    if (f) {
        assert_int_equal(fetch.answered, 1);
        assert_int_equal(json_array_size(fetch.sockets), m->nsockets);
        for (size_t k = 0; k < m->nsockets; k++) {
            json_t *s = json_array_get(fetch.sockets, k);
            assert_string_equal(json_string_value(json_object_get(s, "id")), m->sockets[k].id);
            assert_int_equal(json_array_size(json_object_get(s, "rooms")),
                             m->sockets[k].rooms.n);
            assert_int_equal(!json_object_get(s, "handshake"), !m->sockets[k].handshake);
            assert_int_equal(!json_object_get(s, "data"), !m->sockets[k].data);
        }
        counted[0]++;
    }
    if (e) {
        assert_int_equal(emit.answered, 1);
        assert_int_equal(json_array_size(emit.answers), 1);
        assert_int_equal(json_is_null(json_array_get(emit.answers, 0)), !m->data);
        counted[1]++;
    }
    if (!f) assert_null(fetch.sockets);
    if (!e) assert_null(emit.answers);
    json_decref(fetch.sockets);
    json_decref(emit.answers);
}

static void test_collect_nodes_answers(void **state) {
    (void)state;
    size_t counted[5] = {0};
    each_vector(collect_nodes_answer, counted);
    assert_true(counted[3] >= 2 && counted[4] >= 2); /* client counts and acks, both formats */
    assert_true(counted[0] >= 2); /* both formats */
    assert_true(counted[1] >= 2);
    assert_true(counted[2] >= 1); /* classic only */
}

static void test_collect_values(void **state) {
    (void)state;
    ts_buf_t *bin = ts_buf_from("\x01\xff", 2);
    ts_buf_t *attach[] = {bin};
    json_t *ph = json_pack("{s:b,s:i}", "_placeholder", 1, "num", 0);
    json_t *far = json_pack("{s:b,s:i}", "_placeholder", 1, "num", 5);
    json_t *data = json_pack("{s:O,s:[O]}", "b", ph, "far", far);
    ts_adp_result_t res = {0};
    /* an answer without a value (undefined), then one with a binary */
    ts_adp_rmsg_t none = {.kind = TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE, .request_id = "r"};
    ts_adp_rmsg_t bins = {.kind = TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE, .request_id = "r",
                          .data = data, .attach = attach, .nattach = 1};
    assert_int_equal(ts_adp_rreq_collect(&res, TS_ADP_REQ_SERVER_SIDE_EMIT, &none), 1);
    assert_int_equal(ts_adp_rreq_collect(&res, TS_ADP_REQ_SERVER_SIDE_EMIT, &bins), 1);
    assert_int_equal(res.answered, 2);
    char *got = json_dumps(res.answers, JSON_COMPACT | JSON_SORT_KEYS);
    /* a placeholder naming no attachment stays as it came */
    assert_string_equal(got, "[null,{\"b\":{\"data\":[1,255],\"type\":\"Buffer\"},"
                             "\"far\":[{\"_placeholder\":true,\"num\":5}]}]");
    free(got);
    /* a fetchSockets answer to a serverSideEmit is not counted */
    ts_adp_rmsg_t socks = {.kind = TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE, .request_id = "r"};
    assert_int_equal(ts_adp_rreq_collect(&res, TS_ADP_REQ_SERVER_SIDE_EMIT, &socks), 0);
    /* fuzz_adp_rmsg: a socket without a handshake (a peer's answer may lack it) */
    char *rooms[] = {"S1"};
    ts_adp_rmsg_sock_t bare = {.id = "S1", .rooms = {rooms, 1}};
    ts_adp_rmsg_t one = {.kind = TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE, .request_id = "r",
                         .sockets = &bare, .nsockets = 1};
    assert_int_equal(ts_adp_rreq_collect(&res, TS_ADP_REQ_FETCH_SOCKETS, &one), 1);
    got = json_dumps(res.sockets, JSON_COMPACT);
    assert_string_equal(got, "[{\"id\":\"S1\",\"rooms\":[\"S1\"]}]");
    free(got);
    json_array_clear(res.sockets);
    res.answered--;
    assert_int_equal(ts_adp_rreq_collect(&res, TS_ADP_REQ_SERVER_SIDE_EMIT, &socks), 0);
    assert_int_equal(ts_adp_rreq_collect(&res, TS_ADP_REQ_FETCH_SOCKETS, &socks), 1);
    assert_int_equal(json_array_size(res.sockets), 0);
    assert_int_equal(res.answered, 3);
    json_decref(res.answers);
    json_decref(res.sockets);
    json_decref(data);
    json_decref(ph);
    json_decref(far);
    ts_buf_unref(bin);
}

/* ---- what the vectors lack ---- */

static void test_answers_the_format_lacks(void **state) {
    (void)state;
    json_t *list = json_pack("[s]", "r");
    const ts_adp_req_kind_t kinds[] = {TS_ADP_REQ_SOCKETS, TS_ADP_REQ_ALL_ROOMS,
                                       TS_ADP_REQ_SOCKETS_JOIN, TS_ADP_REQ_DISCONNECT_SOCKETS};
    for (size_t i = 0; i < 4; i++) {
        ts_adp_answer_t a = {.kind = kinds[i], .nsp = "/", .request_id = "r1", .requester = "u1",
                             .list = list};
        ts_adp_rmsg_wire_t w;
        /* sharded has no such answer: nothing to send */
        assert_int_equal(ts_adp_rreq_encode_answer(NULL, TS_ADP_RMSG_SHARDED, "me", &a, &w, NULL, 0), 1);
        assert_null(w.bytes);
        /* classic has: on the shared response channel */
        assert_int_equal(ts_adp_rreq_encode_answer(NULL, TS_ADP_RMSG_CLASSIC, "me", &a, &w, NULL, 0), 0);
        assert_string_equal((const char *)w.channel->data, "socket.io-response#/#");
        ts_adp_rmsg_wire_clear(&w);
    }
    json_decref(list);
}

static void test_ill_formed_answers(void **state) {
    (void)state;
    char err[160] = "";
    ts_adp_rmsg_wire_t w;
    json_t *bad_ids = json_pack("[i]", 1);
    ts_adp_answer_t a = {.kind = TS_ADP_REQ_SOCKETS, .nsp = "/", .request_id = "r", .list = bad_ids};
    assert_int_equal(ts_adp_rreq_encode_answer(NULL, TS_ADP_RMSG_CLASSIC, "me", &a, &w, err, sizeof err),
                     TS_EINVAL);
    assert_non_null(strstr(err, "ill-formed"));
    json_t *no_rooms = json_pack("[{s:s,s:{}}]", "id", "x", "handshake");
    a.kind = TS_ADP_REQ_FETCH_SOCKETS;
    a.list = no_rooms;
    assert_int_equal(ts_adp_rreq_encode_answer(NULL, TS_ADP_RMSG_SHARDED, "me", &a, &w, err, sizeof err),
                     TS_EINVAL);
    /* a sharded answer needs the requester's uid: its channel */
    json_t *ok = json_array();
    a.list = ok;
    a.requester = NULL;
    assert_int_equal(ts_adp_rreq_encode_answer(NULL, TS_ADP_RMSG_SHARDED, "me", &a, &w, err, sizeof err),
                     TS_EINVAL);
    a.requester = "them";
    assert_int_equal(ts_adp_rreq_encode_answer(NULL, TS_ADP_RMSG_SHARDED, "me", &a, &w, err, sizeof err), 0);
    assert_string_equal((const char *)w.channel->data, "socket.io#/#them#");
    ts_adp_rmsg_wire_clear(&w);
    /* an ack whose placeholder names no attachment */
    json_t *ph = json_pack("{s:b,s:i}", "_placeholder", 1, "num", 0);
    ts_adp_answer_t ack = {.kind = TS_ADP_REQ_BROADCAST_ACK, .is_ack = 1, .nsp = "/",
                           .request_id = "r", .requester = "them", .data = ph};
    assert_int_equal(ts_adp_rreq_encode_answer(NULL, TS_ADP_RMSG_CLASSIC, "me", &ack, &w, err, sizeof err),
                     TS_EINVAL);
    json_decref(ph);
    json_decref(ok);
    json_decref(no_rooms);
    json_decref(bad_ids);
}

static void test_not_requests(void **state) {
    (void)state;
    ts_adp_req_t r;
    ts_adp_rmsg_t m = {.kind = TS_ADP_RMSG_FETCH_SOCKETS, .uid = "other", .nsp = "/"};
    assert_int_equal(ts_adp_rreq_of(&m, "me", &r), 0); /* no requestId: nobody to answer */
    m.request_id = "r";
    assert_int_equal(ts_adp_rreq_of(&m, "me", &r), 1);
    m.uid = NULL; /* a response (classic responses carry no uid) */
    assert_int_equal(ts_adp_rreq_of(&m, "me", &r), 0);
    ts_adp_rmsg_t e = {.kind = TS_ADP_RMSG_SOCKETS_JOIN, .uid = "emitter", .nsp = "/", .has_opts = 1};
    assert_int_equal(ts_adp_rreq_of(&e, "me", &r), 1); /* an emitter's: acted on, not answered */
    assert_null(r.request_id);
    ts_adp_rmsg_t b = {.kind = TS_ADP_RMSG_BROADCAST, .uid = "other", .nsp = "/"};
    assert_int_equal(ts_adp_rreq_of(&b, "me", &r), 0);
    ts_adp_rmsg_t s = {.kind = TS_ADP_RMSG_SERVER_SIDE_EMIT, .uid = "other", .nsp = "/"};
    assert_int_equal(ts_adp_rreq_of(&s, "me", &r), 0); /* no event */
    assert_string_equal(ts_adp_req_kind_name(TS_ADP_REQ_BROADCAST_ACK), "BROADCAST_ACK");
    assert_string_equal(ts_adp_req_kind_name((ts_adp_req_kind_t)99), "?");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_from_node),
        cmocka_unit_test(test_answers_are_nodes_bytes),
        cmocka_unit_test(test_answers_the_format_lacks),
        cmocka_unit_test(test_ill_formed_answers),
        cmocka_unit_test(test_not_requests),
        cmocka_unit_test(test_requests_are_nodes_bytes),
        cmocka_unit_test(test_requests_we_do_not_make),
        cmocka_unit_test(test_collect_nodes_answers),
        cmocka_unit_test(test_collect_values),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(g_doc);
    return rc;
}
