/* test_rmsg.c - the @socket.io/redis-adapter codec against golden vectors
 * captured from the real Node adapter (rmsg-vectors.json, written by
 * rmsg-vectors.mjs): every vector decodes to what Node's own decoder read
 * from it, every truncation of it fails cleanly, and our encoding of the
 * decoded message is the vector's bytes (or, where Node's bytes cannot be
 * reproduced, decodes to the same message); then round trips of every kind
 * in both formats, channels, limits and a table of malformed inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapter/rmsg_int.h"
#include "adapter/ts_adp_rmsg.h"
#include "core/ts_err.h"
#include "core/ts_json.h"

#define assert_ts_err(got, want)                                                                \
    do {                                                                                        \
        int g_ = (got), w_ = (want);                                                            \
        if (g_ != w_)                                                                           \
            fail_msg("%s: got %s (%d), want %s (%d)", #got, ts_err_name(g_), g_,                \
                     ts_err_name(w_), w_);                                                      \
    } while (0)

/* ---- the vectors ---------------------------------------------------------- */

static json_t *g_doc;

static json_t *vectors(void) {
    if (g_doc) return json_object_get(g_doc, "vectors");
    char path[4096];
    const char *env = getenv("TS_RMSG_VECTORS");
    if (env) {
        snprintf(path, sizeof(path), "%s", env);
    } else {
        /* next to this file (CMake compiles it by its absolute path) */
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

typedef struct vec {
    const char *name, *channel, *kind;
    ts_adp_rmsg_format_t format;
    int msgpack;
    uint8_t *bytes;
    size_t len;
    json_t *decoded, *attach;
} vec_t;

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

static vec_t vec_at(size_t i) {
    json_t *v = json_array_get(vectors(), i);
    vec_t x = {
        .name = json_string_value(json_object_get(v, "name")),
        .channel = json_string_value(json_object_get(v, "channel")),
        .kind = json_string_value(json_object_get(v, "kind")),
        .format = strcmp(json_string_value(json_object_get(v, "format")), "sharded") == 0
                      ? TS_ADP_RMSG_SHARDED
                      : TS_ADP_RMSG_CLASSIC,
        .msgpack = strcmp(json_string_value(json_object_get(v, "encoding")), "msgpack") == 0,
        .decoded = json_object_get(v, "decoded"),
        .attach = json_object_get(v, "attach"),
    };
    x.bytes = unhex(json_string_value(json_object_get(v, "hex")), &x.len);
    return x;
}

/* ---- the message as Node's objects: what the vector's `decoded` holds ---- */

static json_t *strs(const ts_adp_rmsg_strs_t *s) {
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++) json_array_append_new(a, json_string(s->v[i]));
    return a;
}

static json_t *opts_js(const ts_adp_rmsg_opts_t *o, int flags) {
    json_t *j = json_pack("{s:o,s:o}", "rooms", strs(&o->rooms), "except", strs(&o->except));
    if (!flags) return j;
    json_t *f = json_object();
    if (o->flags & TS_ADP_RMSG_F_VOLATILE) json_object_set_new(f, "volatile", json_true());
    if (o->flags & TS_ADP_RMSG_F_LOCAL) json_object_set_new(f, "local", json_true());
    if (o->flags & TS_ADP_RMSG_F_SINGLE) json_object_set_new(f, "expectSingleResponse", json_true());
    if (o->flags & TS_ADP_RMSG_F_COMPRESS)
        json_object_set_new(f, "compress", json_boolean(o->flags & TS_ADP_RMSG_F_COMPRESS_ON));
    if (o->flags & TS_ADP_RMSG_F_TIMEOUT)
        json_object_set_new(f, "timeout", json_integer((json_int_t)o->timeout_ms));
    json_object_set_new(j, "flags", f);
    return j;
}

static json_t *packet_js(const ts_adp_rmsg_packet_t *p) {
    json_t *j = json_pack("{s:i,s:O}", "type", p->type, "data", p->data);
    if (p->nsp) json_object_set_new(j, "nsp", json_string(p->nsp));
    if (p->id >= 0) json_object_set_new(j, "id", json_integer(p->id));
    return j;
}

static json_t *sockets_js(const ts_adp_rmsg_t *m) {
    json_t *a = json_array();
    for (size_t i = 0; i < m->nsockets; i++) {
        const ts_adp_rmsg_sock_t *s = &m->sockets[i];
        json_t *o = json_pack("{s:s,s:O,s:o}", "id", s->id, "handshake", s->handshake, "rooms",
                              strs(&s->rooms));
        if (s->data) json_object_set(o, "data", s->data);
        json_array_append_new(a, o);
    }
    return a;
}

static void set_opt(json_t *o, const char *k, json_t *v) {
    if (v) json_object_set(o, k, v);
}
static void set_optstr(json_t *o, const char *k, const char *v) {
    if (v) json_object_set_new(o, k, json_string(v));
}

/* Written here from the struct's fields, independently of the encoder. */
static json_t *as_node(const ts_adp_rmsg_t *m) {
    json_t *o = json_object();
    if (m->format == TS_ADP_RMSG_CLASSIC) {
        static const int ctype[TS_ADP_RMSG_KIND_COUNT] = {
            [TS_ADP_RMSG_SOCKETS] = 0,           [TS_ADP_RMSG_ALL_ROOMS] = 1,
            [TS_ADP_RMSG_SOCKETS_JOIN] = 2,      [TS_ADP_RMSG_SOCKETS_LEAVE] = 3,
            [TS_ADP_RMSG_DISCONNECT_SOCKETS] = 4, [TS_ADP_RMSG_FETCH_SOCKETS] = 5,
            [TS_ADP_RMSG_SERVER_SIDE_EMIT] = 6,  [TS_ADP_RMSG_BROADCAST_WITH_ACK] = 7,
            [TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE] = 6, [TS_ADP_RMSG_BROADCAST_CLIENT_COUNT] = 8,
            [TS_ADP_RMSG_BROADCAST_ACK] = 9,
        };
        switch (m->kind) {
        case TS_ADP_RMSG_BROADCAST:
            json_decref(o);
            return json_pack("[s,o,o]", m->uid, packet_js(&m->packet), opts_js(&m->opts, 1));
        case TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE:
            json_object_set_new(o, "sockets", sockets_js(m));
            break;
        case TS_ADP_RMSG_SOCKETS_RESPONSE: json_object_set_new(o, "sockets", strs(&m->rooms)); break;
        case TS_ADP_RMSG_ALL_ROOMS_RESPONSE: json_object_set_new(o, "rooms", strs(&m->rooms)); break;
        case TS_ADP_RMSG_RESPONSE: break;
        case TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE:
        case TS_ADP_RMSG_BROADCAST_ACK:
        case TS_ADP_RMSG_BROADCAST_CLIENT_COUNT:
            json_object_set_new(o, "type", json_integer(ctype[m->kind]));
            if (m->kind == TS_ADP_RMSG_BROADCAST_CLIENT_COUNT)
                json_object_set_new(o, "clientCount", json_integer((json_int_t)m->client_count));
            set_opt(o, m->kind == TS_ADP_RMSG_BROADCAST_ACK ? "packet" : "data", m->data);
            break;
        default:
            json_object_set_new(o, "uid", json_string(m->uid));
            json_object_set_new(o, "type", json_integer(ctype[m->kind]));
            if (m->kind == TS_ADP_RMSG_BROADCAST_WITH_ACK) {
                json_object_set_new(o, "packet", packet_js(&m->packet));
                json_object_set_new(o, "opts", opts_js(&m->opts, 1));
            } else if (m->has_opts) {
                json_object_set_new(o, "opts", opts_js(&m->opts, 0));
            }
            if (m->kind == TS_ADP_RMSG_SOCKETS) json_object_set_new(o, "rooms", strs(&m->rooms));
            if (m->kind == TS_ADP_RMSG_SOCKETS_JOIN || m->kind == TS_ADP_RMSG_SOCKETS_LEAVE) {
                if (m->has_opts)
                    json_object_set_new(o, "rooms", strs(&m->rooms));
                else
                    json_object_set_new(o, "room", json_string(m->rooms.v[0]));
            }
            if (m->kind == TS_ADP_RMSG_DISCONNECT_SOCKETS)
                json_object_set_new(o, "close", json_boolean(m->close));
            set_optstr(o, "sid", m->sid);
            set_opt(o, "data", m->data);
        }
        set_optstr(o, "requestId", m->request_id);
        return o;
    }
    static const int stype[TS_ADP_RMSG_KIND_COUNT] = {
        [TS_ADP_RMSG_INITIAL_HEARTBEAT] = 1,  [TS_ADP_RMSG_HEARTBEAT] = 2,
        [TS_ADP_RMSG_BROADCAST] = 3,          [TS_ADP_RMSG_BROADCAST_WITH_ACK] = 3,
        [TS_ADP_RMSG_SOCKETS_JOIN] = 4,       [TS_ADP_RMSG_SOCKETS_LEAVE] = 5,
        [TS_ADP_RMSG_DISCONNECT_SOCKETS] = 6, [TS_ADP_RMSG_FETCH_SOCKETS] = 7,
        [TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE] = 8, [TS_ADP_RMSG_SERVER_SIDE_EMIT] = 9,
        [TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE] = 10, [TS_ADP_RMSG_BROADCAST_CLIENT_COUNT] = 11,
        [TS_ADP_RMSG_BROADCAST_ACK] = 12,     [TS_ADP_RMSG_ADAPTER_CLOSE] = 13,
    };
    json_object_set_new(o, "type", json_integer(stype[m->kind]));
    json_object_set_new(o, "uid", json_string(m->uid));
    json_object_set_new(o, "nsp", json_string(m->nsp));
    if (stype[m->kind] < 3 || stype[m->kind] == 13) return o;
    json_t *d = json_object();
    set_optstr(d, "requestId", m->request_id);
    switch (m->kind) {
    case TS_ADP_RMSG_BROADCAST:
    case TS_ADP_RMSG_BROADCAST_WITH_ACK:
        json_object_set_new(d, "packet", packet_js(&m->packet));
        break;
    case TS_ADP_RMSG_SOCKETS_JOIN:
    case TS_ADP_RMSG_SOCKETS_LEAVE: json_object_set_new(d, "rooms", strs(&m->rooms)); break;
    case TS_ADP_RMSG_DISCONNECT_SOCKETS: json_object_set_new(d, "close", json_boolean(m->close)); break;
    case TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE: json_object_set_new(d, "sockets", sockets_js(m)); break;
    case TS_ADP_RMSG_BROADCAST_CLIENT_COUNT:
        json_object_set_new(d, "clientCount", json_integer((json_int_t)m->client_count));
        break;
    default: set_opt(d, "packet", m->data);
    }
    if (m->has_opts) json_object_set_new(d, "opts", opts_js(&m->opts, 1));
    json_object_set_new(o, "data", d);
    return o;
}

/* Where two trees first differ, as a path ("[1].data[3]"). */
static int first_diff(json_t *a, json_t *b, char *path, size_t cap) {
    size_t used = strlen(path);
    if (json_is_array(a) && json_is_array(b) && json_array_size(a) == json_array_size(b)) {
        for (size_t i = 0; i < json_array_size(a); i++) {
            snprintf(path + used, cap - used, "[%zu]", i);
            if (first_diff(json_array_get(a, i), json_array_get(b, i), path, cap)) return 1;
        }
        path[used] = '\0';
        return 0;
    }
    if (json_is_object(a) && json_is_object(b) && json_object_size(a) == json_object_size(b)) {
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) {
            snprintf(path + used, cap - used, ".%s", k);
            json_t *w = json_object_get(b, k);
            if (!w || first_diff(v, w, path, cap)) return 1;
        }
        path[used] = '\0';
        return 0;
    }
    return !json_equal(a, b);
}

static void assert_json_equal(json_t *got, json_t *want, const char *what) {
    if (json_equal(got, want)) return;
    char path[512] = "";
    first_diff(got, want, path, sizeof(path));
    json_t *g = got, *w = want;
    /* print the differing values themselves */
    for (char *p = path; *p;) {
        char *next = strpbrk(p + 1, ".[");
        char seg[256];
        snprintf(seg, sizeof(seg), "%.*s", (int)(next ? next - p : (ptrdiff_t)strlen(p)), p);
        if (seg[0] == '[') {
            g = json_array_get(g, (size_t)atol(seg + 1));
            w = json_array_get(w, (size_t)atol(seg + 1));
        } else {
            g = json_object_get(g, seg + 1);
            w = json_object_get(w, seg + 1);
        }
        if (!next) break;
        p = next;
    }
    char *gs = json_dumps(g, JSON_COMPACT | JSON_ENCODE_ANY);
    char *ws = json_dumps(w, JSON_COMPACT | JSON_ENCODE_ANY);
    print_error("%s: differs at %s\n got  %.300s\n want %.300s\n", what, path[0] ? path : "(top)",
                gs, ws);
    free(gs);
    free(ws);
    fail();
}

static void assert_attach(const ts_adp_rmsg_t *m, json_t *want, const char *name) {
    if (m->nattach != json_array_size(want))
        fail_msg("%s: %zu attachments, want %zu", name, m->nattach, json_array_size(want));
    for (size_t i = 0; i < m->nattach; i++) {
        size_t n;
        uint8_t *b = unhex(json_string_value(json_array_get(want, i)), &n);
        if (m->attach[i]->len != n || memcmp(m->attach[i]->data, b, n) != 0)
            fail_msg("%s: attachment %zu differs", name, i);
        free(b);
    }
}

static ts_adp_rmsg_kind_t kind_by_name(const char *s) {
    for (int k = 0; k < TS_ADP_RMSG_KIND_COUNT; k++)
        if (strcmp(ts_adp_rmsg_kind_name((ts_adp_rmsg_kind_t)k), s) == 0) return (ts_adp_rmsg_kind_t)k;
    fail_msg("unknown kind %s in the vectors", s);
    return TS_ADP_RMSG_NONE;
}

/* ---- vectors: decode ------------------------------------------------------ */

static void check_vector_fields(const vec_t *v, const ts_adp_rmsg_t *m) {
    if (m->kind != kind_by_name(v->kind))
        fail_msg("%s: kind %s, want %s", v->name, ts_adp_rmsg_kind_name(m->kind), v->kind);
    assert_int_equal(m->format, v->format);
    assert_int_equal(m->msgpack, v->msgpack);
    json_t *node = as_node(m);
    assert_json_equal(node, v->decoded, v->name);
    json_decref(node);
    assert_attach(m, v->attach, v->name);
    /* the namespace and what the channel names */
    assert_non_null(m->nsp);
    char want[512];
    const char *ch = v->channel;
    if (v->format == TS_ADP_RMSG_SHARDED || m->kind == TS_ADP_RMSG_BROADCAST) {
        snprintf(want, sizeof(want), "socket.io#%s#", m->nsp);
        assert_true(strncmp(ch, want, strlen(want)) == 0);
        const char *tail = ch + strlen(want);
        const char *named = m->room ? m->room : m->to;
        if (!*tail) {
            assert_null(named);
        } else {
            assert_non_null(named);
            assert_int_equal(strlen(tail), strlen(named) + 1);
            assert_memory_equal(tail, named, strlen(named));
        }
    } else if (m->kind >= TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE) {
        snprintf(want, sizeof(want), "socket.io-response#%s#", m->nsp);
        assert_true(strncmp(ch, want, strlen(want)) == 0);
        assert_int_equal(m->to != NULL, strlen(ch) > strlen(want));
        assert_null(m->uid); /* classic responses carry none */
    } else {
        snprintf(want, sizeof(want), "socket.io-request#%s#", m->nsp);
        assert_string_equal(ch, want);
    }
    /* a classic broadcast to one room names it in the channel */
    if (v->format == TS_ADP_RMSG_CLASSIC && m->kind == TS_ADP_RMSG_BROADCAST)
        assert_int_equal(m->room != NULL, m->opts.rooms.n == 1);
}

static void vectors_decode(void **state) {
    size_t n = json_array_size(vectors());
    assert_true(n >= 70);
    int seen[TS_ADP_RMSG_KIND_COUNT][2] = {{0}};
    for (size_t i = 0; i < n; i++) {
        vec_t v = vec_at(i);
        ts_adp_rmsg_t m;
        char err[256];
        int rc = ts_adp_rmsg_decode(NULL, v.format, ts_slice_str(v.channel), ts_slice(v.bytes, v.len),
                                    &m, err, sizeof(err));
        if (rc != 0) fail_msg("%s: %s", v.name, err);
        check_vector_fields(&v, &m);
        seen[m.kind][v.format]++;
        ts_adp_rmsg_clear(&m);
        free(v.bytes);
    }
    /* every kind Node sends (or answers) is among the vectors */
    static const ts_adp_rmsg_kind_t classic[] = {
        TS_ADP_RMSG_BROADCAST, TS_ADP_RMSG_BROADCAST_WITH_ACK, TS_ADP_RMSG_SOCKETS_JOIN,
        TS_ADP_RMSG_SOCKETS_LEAVE, TS_ADP_RMSG_DISCONNECT_SOCKETS, TS_ADP_RMSG_FETCH_SOCKETS,
        TS_ADP_RMSG_SERVER_SIDE_EMIT, TS_ADP_RMSG_SOCKETS, TS_ADP_RMSG_ALL_ROOMS,
        TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE, TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE,
        TS_ADP_RMSG_BROADCAST_CLIENT_COUNT, TS_ADP_RMSG_BROADCAST_ACK, TS_ADP_RMSG_SOCKETS_RESPONSE,
        TS_ADP_RMSG_ALL_ROOMS_RESPONSE, TS_ADP_RMSG_RESPONSE};
    static const ts_adp_rmsg_kind_t sharded[] = {
        TS_ADP_RMSG_BROADCAST, TS_ADP_RMSG_BROADCAST_WITH_ACK, TS_ADP_RMSG_SOCKETS_JOIN,
        TS_ADP_RMSG_SOCKETS_LEAVE, TS_ADP_RMSG_DISCONNECT_SOCKETS, TS_ADP_RMSG_FETCH_SOCKETS,
        TS_ADP_RMSG_SERVER_SIDE_EMIT, TS_ADP_RMSG_INITIAL_HEARTBEAT, TS_ADP_RMSG_HEARTBEAT,
        TS_ADP_RMSG_ADAPTER_CLOSE, TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE,
        TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE, TS_ADP_RMSG_BROADCAST_CLIENT_COUNT,
        TS_ADP_RMSG_BROADCAST_ACK};
    for (size_t i = 0; i < sizeof(classic) / sizeof(*classic); i++)
        if (!seen[classic[i]][0]) fail_msg("no classic vector of %s", ts_adp_rmsg_kind_name(classic[i]));
    for (size_t i = 0; i < sizeof(sharded) / sizeof(*sharded); i++)
        if (!seen[sharded[i]][1]) fail_msg("no sharded vector of %s", ts_adp_rmsg_kind_name(sharded[i]));
}

/* Every proper prefix of every vector fails with a reason, and leaves the
 * message zeroed (ASan checks nothing leaks). */
static void vectors_truncated(void **state) {
    size_t n = json_array_size(vectors());
    static const ts_adp_rmsg_t zero;
    for (size_t i = 0; i < n; i++) {
        vec_t v = vec_at(i);
        for (size_t cut = 0; cut < v.len; cut++) {
            ts_adp_rmsg_t m;
            char err[256] = "";
            uint8_t *copy = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees overreads */
            memcpy(copy, v.bytes, cut);
            int rc = ts_adp_rmsg_decode(NULL, v.format, ts_slice_str(v.channel), ts_slice(copy, cut),
                                        &m, err, sizeof(err));
            free(copy);
            if (rc != TS_EINVAL) fail_msg("%s cut at %zu: rc %d", v.name, cut, rc);
            assert_true(err[0] != '\0');
            assert_memory_equal(&m, &zero, sizeof(m));
        }
        free(v.bytes);
    }
}

/* ---- vectors: our encoding ---------------------------------------------- */

/* Vectors whose bytes we do not reproduce, and why (all decode to the same
 * message as Node's bytes; vectors_encode checks that). */
static const char *const not_byte_equal[][2] = {
    {"classic/broadcast numbers strings date",
     "a Date travels as a msgpack timestamp; tabsync has no date type and writes its toJSON() "
     "string (what a Socket.IO client receives anyway); and notepack writes -1.5e300 as int64 0"},
};

static const char *why_not_equal(const char *name) {
    for (size_t i = 0; i < sizeof(not_byte_equal) / sizeof(*not_byte_equal); i++)
        if (strcmp(not_byte_equal[i][0], name) == 0) return not_byte_equal[i][1];
    return NULL;
}

static ts_adp_rmsg_cfg_t cfg_for(const ts_adp_rmsg_t *m) {
    ts_adp_rmsg_cfg_t cfg = {0};
    cfg.specific_responses = m->format == TS_ADP_RMSG_CLASSIC && m->to != NULL;
    return cfg;
}

static void vectors_encode(void **state) {
    size_t n = json_array_size(vectors()), equal = 0;
    for (size_t i = 0; i < n; i++) {
        vec_t v = vec_at(i);
        ts_adp_rmsg_t m, again;
        char err[256];
        assert_int_equal(ts_adp_rmsg_decode(NULL, v.format, ts_slice_str(v.channel),
                                            ts_slice(v.bytes, v.len), &m, err, sizeof(err)),
                         0);
        ts_adp_rmsg_cfg_t cfg = cfg_for(&m);
        ts_adp_rmsg_wire_t w;
        if (ts_adp_rmsg_encode(&cfg, &m, &w, err, sizeof(err)) != 0) fail_msg("%s: %s", v.name, err);
        assert_string_equal((const char *)w.channel->data, v.channel);
        int same = w.bytes->len == v.len && memcmp(w.bytes->data, v.bytes, v.len) == 0;
        const char *why = why_not_equal(v.name);
        if (!same && !why) {
            print_error("%s:\n ours %.*s\n node %.*s\n", v.name, (int)w.bytes->len,
                        (const char *)w.bytes->data, (int)v.len, (const char *)v.bytes);
            fail_msg("%s: our encoding differs from Node's", v.name);
        }
        if (same && why) fail_msg("%s is byte-equal now: drop it from not_byte_equal", v.name);
        equal += same;
        /* either way it decodes to the same message */
        assert_int_equal(ts_adp_rmsg_decode(NULL, v.format, ts_buf_slice(w.channel),
                                            ts_buf_slice(w.bytes), &again, err, sizeof(err)),
                         0);
        json_t *a = as_node(&m), *b = as_node(&again);
        assert_json_equal(b, a, v.name);
        json_decref(a);
        json_decref(b);
        assert_int_equal(again.nattach, m.nattach);
        ts_adp_rmsg_clear(&again);
        ts_adp_rmsg_wire_clear(&w);
        ts_adp_rmsg_clear(&m);
        free(v.bytes);
    }
    assert_int_equal(equal, n - sizeof(not_byte_equal) / sizeof(*not_byte_equal));
}

/* The broadcast path from JSON text gives Node's bytes. */
static void vectors_encode_broadcast(void **state) {
    size_t n = json_array_size(vectors()), tried = 0;
    for (size_t i = 0; i < n; i++) {
        vec_t v = vec_at(i);
        ts_adp_rmsg_t m;
        char err[256];
        assert_int_equal(ts_adp_rmsg_decode(NULL, v.format, ts_slice_str(v.channel),
                                            ts_slice(v.bytes, v.len), &m, err, sizeof(err)),
                         0);
        if ((m.kind == TS_ADP_RMSG_BROADCAST || m.kind == TS_ADP_RMSG_BROADCAST_WITH_ACK) &&
            !why_not_equal(v.name)) {
            ts_sbuf_t text = TS_SBUF_INIT;
            ts_json_dump(&text, m.packet.data);
            ts_adp_rmsg_wire_t w;
            int rc = ts_adp_rmsg_encode_broadcast(NULL, v.format, m.uid, m.nsp, m.request_id,
                                                  ts_slice(ts_sbuf_data(&text), ts_sbuf_len(&text)),
                                                  TS_ADP_RMSG_TEXT_ANY, m.attach, m.nattach, &m.opts,
                                                  &w, err, sizeof(err));
            if (rc != 0) fail_msg("%s: %s", v.name, err);
            assert_string_equal((const char *)w.channel->data, v.channel);
            if (w.bytes->len != v.len || memcmp(w.bytes->data, v.bytes, v.len) != 0)
                fail_msg("%s: encode_broadcast differs from Node's bytes", v.name);
            ts_adp_rmsg_wire_clear(&w);
            ts_sbuf_free(&text);
            tried++;
        }
        ts_adp_rmsg_clear(&m);
        free(v.bytes);
    }
    assert_true(tried >= 20);
}

/* The paths without a tree (rfast.c): every plain broadcast Node sent is read
 * as text equal to ts_json_dump of the tree, with the same fields, and made
 * again from that text byte for byte as Node made it; every other message
 * reads as ts_adp_rmsg_decode reads it. */
static void vectors_text_paths(void **state) {
    (void)state;
    size_t n = json_array_size(vectors()), fast[2] = {0, 0}, peek_rooms[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        vec_t v = vec_at(i);
        ts_adp_rmsg_t m, t;
        char err[256];
        ts_slice_t ch = ts_slice_str(v.channel), bytes = ts_slice(v.bytes, v.len);
        assert_int_equal(ts_adp_rmsg_decode(NULL, v.format, ch, bytes, &m, err, sizeof err), 0);
        assert_int_equal(ts_adp_rmsg_decode_text(NULL, v.format, ch, bytes, &t, err, sizeof err), 0);
        assert_int_equal(t.kind, m.kind);
        assert_string_equal(t.nsp, m.nsp);
        int plain = m.kind == TS_ADP_RMSG_BROADCAST && !m.nattach;
        /* every classic broadcast's rooms (binary ones too) read ahead of
         * decoding, as the decoder reads them; nothing sharded */
        ts_slice_t pr[8];
        size_t np;
        int peeked = ts_adp_rmsg_peek_rooms(v.format, bytes, pr, 8, &np);
        if (v.format == TS_ADP_RMSG_CLASSIC && m.kind == TS_ADP_RMSG_BROADCAST) {
            if (!peeked) fail_msg("%s: rooms not read ahead", v.name);
            assert_int_equal(np, m.opts.rooms.n);
            for (size_t r = 0; r < np; r++) {
                assert_int_equal(pr[r].len, strlen(m.opts.rooms.v[r]));
                assert_memory_equal(pr[r].p, m.opts.rooms.v[r], pr[r].len);
            }
            peek_rooms[np > 0]++;
            if (np) assert_int_equal(ts_adp_rmsg_peek_rooms(v.format, bytes, pr, np - 1, &np), 0);
        } else if (v.format == TS_ADP_RMSG_SHARDED) {
            assert_int_equal(peeked, 0);
        }
        if (t.packet.data_text) {
            assert_true(plain && !t.packet.data);
            ts_sbuf_t want = TS_SBUF_INIT;
            ts_json_dump(&want, m.packet.data);
            assert_int_equal(t.packet.data_text->len, ts_sbuf_len(&want));
            assert_memory_equal(t.packet.data_text->data, ts_sbuf_data(&want), ts_sbuf_len(&want));
            /* a classic message's elements are noted as the walk passes them */
            assert_int_equal(t.packet.nitems > 0, v.format == TS_ADP_RMSG_CLASSIC);
            assert_true(ts_adp__rmsg_items_agree(&t.packet));
            assert_string_equal(t.uid, m.uid);
            assert_true(!t.room == !m.room);
            assert_int_equal(t.opts.rooms.n, m.opts.rooms.n);
            assert_int_equal(t.opts.except.n, m.opts.except.n);
            assert_int_equal(t.opts.flags, m.opts.flags);
            assert_true(ts_adp_rmsg_is_from(v.format, bytes, m.uid));
            assert_false(ts_adp_rmsg_is_from(v.format, bytes, "someone else"));
            char shorter[64];
            snprintf(shorter, sizeof shorter, "%.*s", (int)strlen(m.uid) - 1, m.uid + 1);
            assert_false(ts_adp_rmsg_is_from(v.format, bytes, shorter)); /* a suffix of it */
            /* checked, and vouched for as canonical (not checked): the same bytes */
            for (int form = TS_ADP_RMSG_TEXT_ANY; form <= TS_ADP_RMSG_TEXT_CANONICAL; form++) {
                ts_buf_t *out = NULL;
                assert_int_equal(ts_adp__rmsg_fast_broadcast(v.format, m.uid, m.nsp,
                                                             ts_buf_slice(t.packet.data_text),
                                                             (ts_adp_rmsg_text_t)form, &m.opts, &out),
                                 0);
                if (!why_not_equal(v.name) &&
                    (out->len != v.len || memcmp(out->data, v.bytes, v.len)))
                    fail_msg("%s: the text path's bytes (form %d) differ from Node's", v.name, form);
                ts_buf_unref(out);
            }
            ts_sbuf_free(&want);
            fast[v.format]++;
        } else {
            assert_ptr_equal(t.packet.data == NULL, m.packet.data == NULL);
        }
        ts_adp_rmsg_clear(&t);
        ts_adp_rmsg_clear(&m);
        free(v.bytes);
    }
    /* the vectors' plain broadcasts: to all, to rooms, except, volatile, ... */
    assert_true(fast[TS_ADP_RMSG_CLASSIC] >= 4);
    assert_true(fast[TS_ADP_RMSG_SHARDED] >= 4);
    assert_true(peek_rooms[0] >= 1 && peek_rooms[1] >= 2); /* to all; to rooms */

    /* is_from: the uid at the head of a classic message, in any str width;
     * never for a sharded one or another uid */
    static const struct {
        const char *b;
        size_t n;
        int want;
    } heads[] = {{"\x93\xa2" "ab", 4, 1},          {"\x93\xd9\x02" "ab", 5, 1},
                 {"\x93\xda\x00\x02" "ab", 6, 1}, {"\x93\xdb\x00\x00\x00\x02" "ab", 8, 1},
                 {"\x93\xa2" "ax", 4, 0},          {"\x93\xa3" "ab", 4, 0},
                 {"\x93\xda\x00", 3, 0},          {"\x92\xa2" "ab", 4, 0}};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        ts_slice_t b = ts_slice(heads[i].b, heads[i].n);
        assert_int_equal(ts_adp_rmsg_is_from(TS_ADP_RMSG_CLASSIC, b, "ab"), heads[i].want);
        assert_false(ts_adp_rmsg_is_from(TS_ADP_RMSG_SHARDED, b, "ab"));
    }
    /* and a sharded message's tail: its last two members, read from the end */
    static const struct {
        const char *b;
        int want;
    } tails[] = {{"{\"type\":3,\"uid\":\"ab\",\"nsp\":\"/\"}", 1},
                 {"{\"uid\":\"ab\",\"nsp\":\"/\"}", 0}, /* not after others: decoded instead */
                 {"{\"data\":{},\"uid\":\"ab\",\"nsp\":\"/\"}", 1},
                 {"{\"data\":{},\"uid\":\"ab\",\"nsp\":\"\"}", 1},
                 {"{\"data\":{},\"uid\":\"xab\",\"nsp\":\"/\"}", 0},
                 {"{\"data\":{},\"uid\":\"ab\",\"nsp\":\"/a\\\"b\"}", 0}, /* an escape in the nsp */
                 {"{\"data\":{},\"uid\":\"ab\",\"nsp\":\"/\"} ", 0},
                 {"{\"data\":{},\"nsp\":\"/\",\"uid\":\"ab\"}", 0},
                 {"\"uid\":\"ab\",\"nsp\":\"/\"}", 0},
                 {"\",\"nsp\":\"/\"}", 0}};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++)
        if (ts_adp_rmsg_is_from(TS_ADP_RMSG_SHARDED, ts_slice_str(tails[i].b), "ab") != tails[i].want)
            fail_msg("is_from(%s) != %d", tails[i].b, tails[i].want);

    /* a fuzzer's find: flags "" (two bytes, like {}) is no object: refused
     * by both paths */
    static const char bad[] = "\x93\xa6" "Pma4Bt" "\x83\xa4" "type" "\x02\xa4" "data" "\x92\xa7"
                              "from-b2" "\xa2" "hi" "\xa3" "nsp" "\xa1/\x83\xa5" "rooms" "\x90\xa6"
                              "except" "\x90\xa5" "flags" "\xa0";
    ts_adp_rmsg_t m;
    char err[256];
    ts_slice_t b = ts_slice(bad, sizeof bad - 1);
    assert_int_equal(ts_adp_rmsg_decode_text(NULL, TS_ADP_RMSG_CLASSIC, ts_slice_str("socket.io#/#"),
                                             b, &m, err, sizeof err),
                     TS_EINVAL);
    assert_non_null(strstr(err, "flags"));
}

/* ---- round trips of every kind ---------------------------------------------- */

static char *S(const char *s) { return (char *)s; }
static char *room_a[] = {"a"}, *room_ab[] = {"a", "b"}, *room_x[] = {"x"};

static ts_buf_t *g_bins[2];

static ts_adp_rmsg_t base(ts_adp_rmsg_format_t f, ts_adp_rmsg_kind_t k) {
    ts_adp_rmsg_t m = {.format = f, .kind = k, .uid = S("node-1"), .nsp = S("/chat"),
                       .packet = {.id = -1}};
    return m;
}

static void roundtrip_one(const ts_adp_rmsg_cfg_t *cfg, const ts_adp_rmsg_t *m,
                          const char *want_channel, int want_msgpack) {
    ts_adp_rmsg_wire_t w;
    char err[256];
    if (ts_adp_rmsg_encode(cfg, m, &w, err, sizeof(err)) != 0)
        fail_msg("%s: %s", ts_adp_rmsg_kind_name(m->kind), err);
    assert_string_equal((const char *)w.channel->data, want_channel);
    assert_int_equal(w.bytes->data[0] != '{', want_msgpack);
    ts_adp_rmsg_t d;
    if (ts_adp_rmsg_decode(cfg, m->format, ts_buf_slice(w.channel), ts_buf_slice(w.bytes), &d, err,
                           sizeof(err)) != 0)
        fail_msg("%s: %s", ts_adp_rmsg_kind_name(m->kind), err);
    assert_int_equal(d.kind, m->kind);
    assert_string_equal(d.nsp, m->nsp);
    json_t *a = as_node(m), *b = as_node(&d);
    assert_json_equal(b, a, ts_adp_rmsg_kind_name(m->kind));
    json_decref(a);
    json_decref(b);
    assert_int_equal(d.nattach, want_msgpack ? m->nattach : 0);
    for (size_t i = 0; i < d.nattach; i++) {
        assert_int_equal(d.attach[i]->len, m->attach[i]->len);
        assert_memory_equal(d.attach[i]->data, m->attach[i]->data, d.attach[i]->len);
    }
    ts_adp_rmsg_clear(&d);
    ts_adp_rmsg_wire_clear(&w);
}

static void roundtrip_all_kinds(void **state) {
    g_bins[0] = ts_buf_from("\x01\x02", 2);
    g_bins[1] = ts_buf_from("", 0);
    json_t *args = json_loads("[\"ev\",1,-2,2.5,\"s\",null,true,{\"k\":[1]}]", 0, NULL);
    json_t *bargs = json_loads("[\"ev\",{\"_placeholder\":true,\"num\":0},"
                               "[{\"_placeholder\":true,\"num\":1}]]", 0, NULL);
    json_t *hs = json_loads("{\"headers\":{\"host\":\"h\"},\"issued\":1700000000000,"
                            "\"query\":{\"EIO\":\"4\"},\"auth\":{}}", 0, NULL);
    json_t *sdata = json_loads("{\"user\":\"u\",\"pic\":{\"_placeholder\":true,\"num\":0}}", 0, NULL);
    ts_adp_rmsg_sock_t socks[] = {
        {.id = S("abcdefghijklmnopqrst"), .handshake = hs,
         .rooms = {(char *[]){S("abcdefghijklmnopqrst"), S("r")}, 2}, .data = sdata}};
    for (int f = 0; f < 2; f++) {
        ts_adp_rmsg_format_t fmt = (ts_adp_rmsg_format_t)f;
        const char *bc = f ? "socket.io#/chat#" : "socket.io#/chat#";
        const char *req = f ? "socket.io#/chat#" : "socket.io-request#/chat#";
        const char *resp = f ? "socket.io#/chat#node-0#" : "socket.io-response#/chat#";
        ts_adp_rmsg_t m;

        /* broadcasts: all, one room (its channel), with binaries, with acks */
        m = base(fmt, TS_ADP_RMSG_BROADCAST);
        m.packet.type = 2;
        m.packet.data = args;
        m.has_opts = 1;
        m.opts.except = (ts_adp_rmsg_strs_t){room_x, 1};
        m.opts.flags = TS_ADP_RMSG_F_VOLATILE | TS_ADP_RMSG_F_COMPRESS | TS_ADP_RMSG_F_TIMEOUT;
        m.opts.timeout_ms = 1500;
        if (!f) m.packet.nsp = S("/chat");
        roundtrip_one(NULL, &m, bc, !f);
        m.opts.rooms = (ts_adp_rmsg_strs_t){room_a, 1};
        m.room = S("a");
        roundtrip_one(NULL, &m, f ? "socket.io#/chat#a#" : "socket.io#/chat#a#", !f);
        m.room = NULL;
        m.opts.rooms = (ts_adp_rmsg_strs_t){room_ab, 2};
        m.packet.data = bargs;
        m.attach = g_bins;
        m.nattach = 2;
        roundtrip_one(NULL, &m, bc, 1);
        m.kind = TS_ADP_RMSG_BROADCAST_WITH_ACK;
        m.request_id = S("req-1");
        m.opts.rooms = (ts_adp_rmsg_strs_t){room_a, 1}; /* never a room channel */
        roundtrip_one(NULL, &m, req, 1);
        m.packet.data = args;
        m.nattach = 0;
        roundtrip_one(NULL, &m, req, !f);

        /* join / leave / disconnect / fetch */
        m = base(fmt, TS_ADP_RMSG_SOCKETS_JOIN);
        m.has_opts = 1;
        m.opts.rooms = (ts_adp_rmsg_strs_t){room_a, 1};
        m.rooms = (ts_adp_rmsg_strs_t){room_ab, 2};
        roundtrip_one(NULL, &m, req, 0);
        m.kind = TS_ADP_RMSG_SOCKETS_LEAVE;
        roundtrip_one(NULL, &m, req, 0);
        m.kind = TS_ADP_RMSG_DISCONNECT_SOCKETS;
        m.rooms = (ts_adp_rmsg_strs_t){0};
        m.close = 1;
        roundtrip_one(NULL, &m, req, 0);
        m.kind = TS_ADP_RMSG_FETCH_SOCKETS;
        m.close = 0;
        m.request_id = S("req-2");
        roundtrip_one(NULL, &m, req, 0);

        /* serverSideEmit, with and without ack, with a binary */
        m = base(fmt, TS_ADP_RMSG_SERVER_SIDE_EMIT);
        m.data = args;
        roundtrip_one(NULL, &m, req, 0);
        m.request_id = S("req-3");
        roundtrip_one(NULL, &m, req, 0);
        if (f) {
            m.data = bargs;
            m.attach = g_bins;
            m.nattach = 2;
            roundtrip_one(NULL, &m, req, 1);
        }

        /* responses */
        m = base(fmt, TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE);
        m.request_id = S("req-2");
        m.to = S("node-0");
        if (!f) m.uid = NULL;
        m.sockets = socks;
        m.nsockets = 1;
        m.attach = g_bins;
        m.nattach = f ? 1 : 0;
        if (f) {
            roundtrip_one(NULL, &m, resp, 1);
        } else {
            json_object_del(sdata, "pic");
            roundtrip_one(&(ts_adp_rmsg_cfg_t){.specific_responses = 1}, &m,
                          "socket.io-response#/chat#node-0#", 0);
            m.to = NULL;
            roundtrip_one(NULL, &m, resp, 0);
            json_object_set_new(sdata, "pic", json_pack("{s:b,s:i}", "_placeholder", 1, "num", 0));
        }
        m.sockets = NULL;
        m.nsockets = 0;
        m.nattach = 0;
        m.to = S("node-0");
        m.kind = TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE;
        m.data = json_pack("{s:i}", "ok", 1);
        roundtrip_one(NULL, &m, resp, 0);
        m.kind = TS_ADP_RMSG_BROADCAST_ACK;
        roundtrip_one(NULL, &m, resp, !f);
        json_decref(m.data);
        m.data = NULL; /* an undefined answer */
        roundtrip_one(NULL, &m, resp, !f);
        m.kind = TS_ADP_RMSG_BROADCAST_CLIENT_COUNT;
        m.client_count = 70000;
        roundtrip_one(NULL, &m, resp, 0);

        if (f) {
            m = base(fmt, TS_ADP_RMSG_INITIAL_HEARTBEAT);
            roundtrip_one(NULL, &m, req, 0);
            m.kind = TS_ADP_RMSG_HEARTBEAT;
            roundtrip_one(NULL, &m, req, 0);
            m.kind = TS_ADP_RMSG_ADAPTER_CLOSE;
            roundtrip_one(NULL, &m, req, 0);
        } else {
            m = base(fmt, TS_ADP_RMSG_SOCKETS);
            m.request_id = S("r9");
            m.rooms = (ts_adp_rmsg_strs_t){room_ab, 2};
            roundtrip_one(NULL, &m, req, 0);
            m.kind = TS_ADP_RMSG_ALL_ROOMS;
            m.rooms = (ts_adp_rmsg_strs_t){0};
            roundtrip_one(NULL, &m, req, 0);
            m.kind = TS_ADP_RMSG_SOCKETS_JOIN; /* the one-socket form */
            m.sid = S("abcdefghijklmnopqrst");
            m.rooms = (ts_adp_rmsg_strs_t){room_a, 1};
            roundtrip_one(NULL, &m, req, 0);
            m.kind = TS_ADP_RMSG_DISCONNECT_SOCKETS;
            m.rooms = (ts_adp_rmsg_strs_t){0};
            roundtrip_one(NULL, &m, req, 0);
            m = base(fmt, TS_ADP_RMSG_SOCKETS_RESPONSE);
            m.uid = NULL;
            m.request_id = S("r9");
            m.rooms = (ts_adp_rmsg_strs_t){room_ab, 2};
            roundtrip_one(NULL, &m, resp, 0);
            m.kind = TS_ADP_RMSG_ALL_ROOMS_RESPONSE;
            roundtrip_one(NULL, &m, resp, 0);
            m.kind = TS_ADP_RMSG_RESPONSE;
            m.rooms = (ts_adp_rmsg_strs_t){0};
            roundtrip_one(NULL, &m, resp, 0);
        }
    }
    json_decref(args);
    json_decref(bargs);
    json_decref(hs);
    json_decref(sdata);
    ts_buf_unref(g_bins[0]);
    ts_buf_unref(g_bins[1]);
}

/* Where Node writes JSON, a Buffer travels as its toJSON(). */
static void json_messages_carry_buffers_as_node_does(void **state) {
    ts_buf_t *b = ts_buf_from("\x07\xff", 2);
    json_t *args = json_loads("[\"ev\",{\"_placeholder\":true,\"num\":0}]", 0, NULL);
    ts_adp_rmsg_t m = base(TS_ADP_RMSG_CLASSIC, TS_ADP_RMSG_SERVER_SIDE_EMIT);
    m.data = args;
    m.attach = &b;
    m.nattach = 1;
    ts_adp_rmsg_wire_t w;
    assert_int_equal(ts_adp_rmsg_encode(NULL, &m, &w, NULL, 0), 0);
    assert_string_equal((const char *)w.bytes->data,
                        "{\"uid\":\"node-1\",\"type\":6,\"data\":[\"ev\",{\"type\":\"Buffer\","
                        "\"data\":[7,255]}]}");
    ts_adp_rmsg_wire_clear(&w);
    json_decref(args);
    ts_buf_unref(b);
}

/* Channels: sharded dynamic rooms and socket ids, prefixes. */
static void channels(void **state) {
    char *sid[] = {"abcdefghijklmnopqrst"};
    ts_adp_rmsg_opts_t o = {.rooms = {sid, 1}};
    ts_adp_rmsg_wire_t w;
    struct {
        ts_adp_rmsg_cfg_t cfg;
        ts_adp_rmsg_format_t f;
        char **room;
        const char *want;
    } cases[] = {
        {{0}, TS_ADP_RMSG_SHARDED, sid, "socket.io#/#"},
        {{.submode = TS_ADP_RMSG_SUB_DYNAMIC_PRIVATE}, TS_ADP_RMSG_SHARDED, sid,
         "socket.io#/#abcdefghijklmnopqrst#"},
        {{.submode = TS_ADP_RMSG_SUB_STATIC}, TS_ADP_RMSG_SHARDED, room_a, "socket.io#/#"},
        {{0}, TS_ADP_RMSG_SHARDED, room_a, "socket.io#/#a#"},
        {{.prefix = "app"}, TS_ADP_RMSG_CLASSIC, sid, "app#/#abcdefghijklmnopqrst#"},
        {{.prefix = "app"}, TS_ADP_RMSG_SHARDED, room_a, "app#/#a#"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        o.rooms.v = cases[i].room;
        assert_int_equal(ts_adp_rmsg_encode_broadcast(&cases[i].cfg, cases[i].f, "u", "/", NULL,
                                                      TS_SLICE_LIT("[\"e\"]"), TS_ADP_RMSG_TEXT_ANY,
                                                      NULL, 0, &o, &w,
                                                      NULL, 0),
                         0);
        assert_string_equal((const char *)w.channel->data, cases[i].want);
        ts_adp_rmsg_t m;
        char err[200];
        if (ts_adp_rmsg_decode(&cases[i].cfg, cases[i].f, ts_buf_slice(w.channel),
                               ts_buf_slice(w.bytes), &m, err, sizeof(err)) != 0)
            fail_msg("case %zu: %s", i, err);
        ts_adp_rmsg_clear(&m);
        ts_adp_rmsg_wire_clear(&w);
    }
}

/* ---- malformed input ------------------------------------------------------ */

static const struct bad {
    const char *name;
    ts_adp_rmsg_format_t f;
    const char *channel;
    const char *hex; /* or text when it starts with '=' */
    const char *want; /* a fragment of the reason */
} bad[] = {
    {"empty", TS_ADP_RMSG_CLASSIC, "socket.io#/#", "", "empty message"},
    {"foreign prefix", TS_ADP_RMSG_CLASSIC, "other#/#", "93a1759081a474797065029090", "prefix"},
    {"other channel", TS_ADP_RMSG_CLASSIC, "socket.io-x#/#", "=\"x\"", "not a classic"},
    {"request channel with a tail", TS_ADP_RMSG_CLASSIC, "socket.io-request#/#x#", "={}",
     "is not <prefix>-request"},
    {"broadcast not an array", TS_ADP_RMSG_CLASSIC, "socket.io#/#", "81a17501", "not an array"},
    {"broadcast of another namespace", TS_ADP_RMSG_CLASSIC, "socket.io#/#",
     "93a17583a47479706502a46461746190a36e7370a22f6181a5726f6f6d7390", "namespace \"/a\""},
    {"broadcast without opts", TS_ADP_RMSG_CLASSIC, "socket.io#/#", "92a17582a47479706502a46461746190",
     "not an array"},
    {"packet.data not an array", TS_ADP_RMSG_CLASSIC, "socket.io#/#",
     "93a17582a47479706502a46461746101" "80", "packet.data"},
    {"packet.type out of range", TS_ADP_RMSG_CLASSIC, "socket.io#/#",
     "93a17582a47479706509a46461746190" "80", "packet.type"},
    {"opts.rooms not strings", TS_ADP_RMSG_CLASSIC, "socket.io#/#",
     "93a17582a47479706502a4646174619081a5726f6f6d7391c0", "rooms is not a string"},
    {"trailing bytes", TS_ADP_RMSG_CLASSIC, "socket.io#/#",
     "93a17582a47479706502a464617461908000", "trailing"},
    {"reserved c1", TS_ADP_RMSG_CLASSIC, "socket.io#/#", "c1", "not a msgpack type"},
    {"top-level undefined", TS_ADP_RMSG_SHARDED, "socket.io#/#", "d40000", "undefined"},
    {"array32 of 4G elements", TS_ADP_RMSG_CLASSIC, "socket.io#/#", "ddffffffff00", "truncated"},
    {"map32 of 4G entries", TS_ADP_RMSG_SHARDED, "socket.io#/#", "dfffffffff00", "truncated"},
    {"bin32 past the end", TS_ADP_RMSG_SHARDED, "socket.io#/#", "c6ffffffff00", "truncated"},
    {"str past the end", TS_ADP_RMSG_SHARDED, "socket.io#/#", "a5616263", "truncated"},
    {"non-string key", TS_ADP_RMSG_SHARDED, "socket.io#/#", "810101", "not a string"},
    {"NUL in a key", TS_ADP_RMSG_SHARDED, "socket.io#/#", "81a2610001", "NUL"},
    {"spoofed placeholder", TS_ADP_RMSG_SHARDED, "socket.io#/#",
     "81ac5f706c616365686f6c646572c3", "placeholder"},
    {"json spoofed placeholder", TS_ADP_RMSG_SHARDED, "socket.io#/#",
     "={\"type\":9,\"uid\":\"u\",\"nsp\":\"/\",\"data\":{\"packet\":[\"e\",{\"_placeholder\":true,\"num\":0}]}}",
     "placeholder"},
    {"bad json", TS_ADP_RMSG_SHARDED, "socket.io#/#", "={\"type\":", "json:"},
    {"sharded type 0", TS_ADP_RMSG_SHARDED, "socket.io#/#", "={\"type\":0,\"uid\":\"u\",\"nsp\":\"/\"}",
     "unknown message type"},
    {"sharded type 14", TS_ADP_RMSG_SHARDED, "socket.io#/#",
     "={\"type\":14,\"uid\":\"u\",\"nsp\":\"/\",\"data\":{}}", "unknown message type"},
    {"sharded without uid", TS_ADP_RMSG_SHARDED, "socket.io#/#", "={\"type\":2,\"nsp\":\"/\"}",
     "uid is missing"},
    {"sharded on another namespace's channel", TS_ADP_RMSG_SHARDED, "socket.io#/x#",
     "={\"type\":2,\"uid\":\"u\",\"nsp\":\"/\"}", "namespace \"/\""},
    {"sharded channel without a final #", TS_ADP_RMSG_SHARDED, "socket.io#/#room",
     "={\"type\":2,\"uid\":\"u\",\"nsp\":\"/\"}", "does not end"},
    {"sharded fetch without requestId", TS_ADP_RMSG_SHARDED, "socket.io#/#",
     "={\"type\":7,\"uid\":\"u\",\"nsp\":\"/\",\"data\":{\"opts\":{\"rooms\":[],\"except\":[]}}}",
     "requestId is missing"},
    {"sharded count not a number", TS_ADP_RMSG_SHARDED, "socket.io#/#u#",
     "={\"type\":11,\"uid\":\"u\",\"nsp\":\"/\",\"data\":{\"requestId\":\"r\",\"clientCount\":\"3\"}}",
     "clientCount"},
    {"classic unknown request", TS_ADP_RMSG_CLASSIC, "socket.io-request#/#",
     "={\"uid\":\"u\",\"type\":42}", "unknown request type 42"},
    {"classic request with requestId a map", TS_ADP_RMSG_CLASSIC, "socket.io-request#/#",
     "={\"uid\":\"u\",\"type\":1,\"requestId\":{}}", "requestId is not a string"},
    {"classic response without requestId", TS_ADP_RMSG_CLASSIC, "socket.io-response#/#",
     "={\"rooms\":[]}", "requestId is missing"},
    {"classic join without sid or opts", TS_ADP_RMSG_CLASSIC, "socket.io-request#/#",
     "={\"uid\":\"u\",\"type\":2,\"requestId\":\"r\"}", "sid is missing"},
    /* found by fuzz_adp_rmsg: the one-socket form without a requestId
     * decoded, and then could not be encoded (nor answered) */
    {"classic one-socket leave without requestId", TS_ADP_RMSG_CLASSIC, "socket.io-request#/#",
     "={\"uid\":\"legacy\",\"requestid\":\"r\",\"type\":3,\"sid\":\"s\",\"room\":\"x\"}",
     "requestId is missing"},
    {"classic fetch without requestId", TS_ADP_RMSG_CLASSIC, "socket.io-request#/#",
     "={\"uid\":\"u\",\"type\":5,\"opts\":{}}", "requestId is missing"},
    {"timestamp 96 of 8 bytes", TS_ADP_RMSG_SHARDED, "socket.io#/#", "c708ff0000000000000000",
     "timestamp of 8 bytes"},
    {"classic sse without data", TS_ADP_RMSG_CLASSIC, "socket.io-request#/#",
     "={\"uid\":\"u\",\"type\":6}", "data is not an array"},
    {"room with NUL", TS_ADP_RMSG_SHARDED, "socket.io#/#",
     "={\"type\":4,\"uid\":\"u\",\"nsp\":\"/\",\"data\":{\"opts\":{\"rooms\":[\"a\\u0000b\"]},\"rooms\":[]}}",
     "NUL"},
};

static void malformed(void **state) {
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        size_t len;
        uint8_t *b;
        if (bad[i].hex[0] == '=') {
            len = strlen(bad[i].hex + 1);
            b = malloc(len + 1);
            memcpy(b, bad[i].hex + 1, len);
        } else {
            b = unhex(bad[i].hex, &len);
        }
        ts_adp_rmsg_t m;
        char err[256] = "";
        int rc = ts_adp_rmsg_decode(NULL, bad[i].f, ts_slice_str(bad[i].channel), ts_slice(b, len),
                                    &m, err, sizeof(err));
        if (rc != TS_EINVAL) {
            if (rc == 0) ts_adp_rmsg_clear(&m);
            fail_msg("%s: rc %d, want TS_EINVAL", bad[i].name, rc);
        }
        if (!strstr(err, bad[i].want))
            fail_msg("%s: reason \"%s\" lacks \"%s\"", bad[i].name, err, bad[i].want);
        /* found by fuzz_adp_rmsg: a refused channel left m.format set */
        static const ts_adp_rmsg_t zero;
        assert_memory_equal(&m, &zero, sizeof(m));
        free(b);
    }
}

/* Limits: depth, items, attachments, size; and the values Node reads
 * specially (undefined, Date, other exts, float32, invalid UTF-8). */
static void limits_and_values(void **state) {
    char err[256];
    ts_adp_rmsg_t m;
    /* nesting: the message's array, the packet map, then 32 data arrays
     * make 34 levels, over the default 32 */
    ts_sbuf_t s = TS_SBUF_INIT;
    ts_sbuf_append(&s, "\x93\xa1u\x83\xa4type\x02\xa4" "data", 15);
    for (int d = 0; d < 31; d++) ts_sbuf_putc(&s, (char)0x91);
    ts_sbuf_putc(&s, (char)0x90);
    ts_sbuf_append(&s, "\xa3nsp\xa1/\x80", 7);
    ts_buf_t *ok = ts_sbuf_finish(&s);
    assert_ts_err(ts_adp_rmsg_decode(NULL, TS_ADP_RMSG_CLASSIC, TS_SLICE_LIT("socket.io#/#"),
                                     ts_buf_slice(ok), &m, err, sizeof(err)),
                  TS_EINVAL);
    assert_non_null(strstr(err, "nesting deeper than 32"));
    ts_adp_rmsg_cfg_t cfg = {.max_depth = 40};
    assert_int_equal(ts_adp_rmsg_decode(&cfg, TS_ADP_RMSG_CLASSIC, TS_SLICE_LIT("socket.io#/#"),
                                        ts_buf_slice(ok), &m, err, sizeof(err)),
                     0);
    ts_adp_rmsg_clear(&m);
    cfg = (ts_adp_rmsg_cfg_t){.max_items = 10};
    assert_ts_err(ts_adp_rmsg_decode(&cfg, TS_ADP_RMSG_CLASSIC, TS_SLICE_LIT("socket.io#/#"),
                                     ts_buf_slice(ok), &m, err, sizeof(err)),
                  TS_EINVAL);
    cfg = (ts_adp_rmsg_cfg_t){.max_bytes = 10};
    assert_ts_err(ts_adp_rmsg_decode(&cfg, TS_ADP_RMSG_CLASSIC, TS_SLICE_LIT("socket.io#/#"),
                                     ts_buf_slice(ok), &m, err, sizeof(err)),
                  TS_EINVAL);
    assert_non_null(strstr(err, "exceeds the limit"));
    ts_buf_unref(ok);

    /* JSON nesting is bounded before jansson parses */
    ts_sbuf_t js = TS_SBUF_INIT;
    ts_sbuf_append_str(&js, "{\"type\":9,\"uid\":\"u\",\"nsp\":\"/\",\"data\":{\"packet\":");
    for (int d = 0; d < 100; d++) ts_sbuf_putc(&js, '[');
    for (int d = 0; d < 100; d++) ts_sbuf_putc(&js, ']');
    ts_sbuf_append_str(&js, "}}");
    ts_buf_t *jb = ts_sbuf_finish(&js);
    assert_ts_err(ts_adp_rmsg_decode(NULL, TS_ADP_RMSG_SHARDED, TS_SLICE_LIT("socket.io#/#"),
                                     ts_buf_slice(jb), &m, err, sizeof(err)),
                  TS_EINVAL);
    assert_non_null(strstr(err, "json: nesting"));
    ts_buf_unref(jb);

    /* attachments: 3 bins over a limit of 2 */
    static const uint8_t three[] = {0x84, 0xa4, 't', 'y', 'p', 'e', 0x09, 0xa3, 'u', 'i', 'd',
                                    0xa1, 'u', 0xa3, 'n', 's', 'p', 0xa1, '/', 0xa4, 'd', 'a',
                                    't', 'a', 0x81, 0xa6, 'p', 'a', 'c', 'k', 'e', 't', 0x93,
                                    0xc4, 0x00, 0xc4, 0x01, 0x05, 0xc7, 0x01, 0x00, 0x06};
    cfg = (ts_adp_rmsg_cfg_t){.max_attach = 2};
    assert_ts_err(ts_adp_rmsg_decode(&cfg, TS_ADP_RMSG_SHARDED, TS_SLICE_LIT("socket.io#/#"),
                                     ts_slice(three, sizeof(three)), &m, err, sizeof(err)),
                  TS_EINVAL);
    assert_non_null(strstr(err, "binary values"));
    assert_int_equal(ts_adp_rmsg_decode(NULL, TS_ADP_RMSG_SHARDED, TS_SLICE_LIT("socket.io#/#"),
                                        ts_slice(three, sizeof(three)), &m, err, sizeof(err)),
                     0);
    assert_int_equal(m.nattach, 3); /* bin 8 (empty), bin 8, ext 8 of type 0 (ArrayBuffer) */
    assert_int_equal(m.attach[2]->len, 1);
    assert_int_equal(m.attach[2]->data[0], 6);
    ts_adp_rmsg_clear(&m);

    /* values: [undefined, Date(0), ext 5 fixext 2, float32 1.5, float64 3.0,
     * "\xff" (invalid UTF-8), uint64 max, -2^63, timestamp 32, timestamp 64,
     * timestamp 96, fixext 4 of type 0 (not an ArrayBuffer: [0, bin])] */
    static const uint8_t vals[] = {
        0x84, 0xa4, 't', 'y', 'p', 'e', 0x09, 0xa3, 'u', 'i', 'd', 0xa1, 'u', 0xa3, 'n', 's', 'p',
        0xa1, '/', 0xa4, 'd', 'a', 't', 'a', 0x81, 0xa6, 'p', 'a', 'c', 'k', 'e', 't', 0x9c,
        0xd4, 0x00, 0x00,                               /* undefined */
        0xd7, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,             /* Date(0) */
        0xd5, 0x05, 0xaa, 0xbb,                         /* ext 5 */
        0xca, 0x3f, 0xc0, 0x00, 0x00,                   /* 1.5f */
        0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0,             /* 3.0 */
        0xa1, 0xff,                                     /* invalid UTF-8 */
        0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* 2^64 - 1 */
        0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0,                /* -2^63 */
        0xd6, 0xff, 0x65, 0x93, 0x7d, 0x25,             /* 2024-01-02T03:04:05Z */
        0xd7, 0xff, 0xa1, 0xa8, 0x0c, 0x00, 0x65, 0x93, 0x7d, 0x25, /* + 678 ms */
        0xc7, 0x0c, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* -1 s + 1 ns */
        0xd6, 0x00, 1, 2, 3, 4,
    };
    assert_int_equal(ts_adp_rmsg_decode(NULL, TS_ADP_RMSG_SHARDED, TS_SLICE_LIT("socket.io#/#"),
                                        ts_slice(vals, sizeof(vals)), &m, err, sizeof(err)),
                     0);
    json_t *want = json_pack("[n,s,[i,{s:b,s:i}],f,i,s,f,I,s,s,s,[i,{s:b,s:i}]]",
                             "1970-01-01T00:00:00.000Z", 5, "_placeholder", 1, "num", 0, 1.5, 3,
                             "\xef\xbf\xbd", 18446744073709551615.0, (json_int_t)INT64_MIN,
                             "2024-01-02T03:04:05.000Z", "2024-01-02T03:04:05.678Z",
                             "1969-12-31T23:59:59.001Z", 0, "_placeholder", 1, "num", 1);
    assert_json_equal(m.data, want, "values");
    json_decref(want);
    ts_adp_rmsg_clear(&m);
}

/* Found by fuzz_adp_rmsg: a binary in a field the decoder ignores (here
 * packet.extra) left an attachment no placeholder named; it is dropped and
 * the kept ones renumbered. */
static void unreferenced_binaries_dropped(void **state) {
    static const uint8_t msg[] = {
        0x93, 0xa1, 'u', 0x84, 0xa5, 'e', 'x', 't', 'r', 'a', 0xc4, 0x01, 0xee, 0xa4, 't', 'y',
        'p', 'e', 0x02, 0xa4, 'd', 'a', 't', 'a', 0x92, 0xa1, 'e', 0xc4, 0x02, 'h', 'i', 0xa3,
        'n', 's', 'p', 0xa1, '/', 0x80};
    ts_adp_rmsg_t m;
    char err[256];
    assert_int_equal(ts_adp_rmsg_decode(NULL, TS_ADP_RMSG_CLASSIC, TS_SLICE_LIT("socket.io#/#"),
                                        ts_slice(msg, sizeof(msg)), &m, err, sizeof(err)),
                     0);
    assert_int_equal(m.nattach, 1);
    assert_int_equal(m.attach[0]->len, 2);
    assert_memory_equal(m.attach[0]->data, "hi", 2);
    json_t *want = json_pack("[s,{s:b,s:i}]", "e", "_placeholder", 1, "num", 0);
    assert_json_equal(m.packet.data, want, "renumbered");
    json_decref(want);
    ts_adp_rmsg_clear(&m);
}

/* Encoding errors: missing fields, a placeholder without its buffer. */
static void encode_errors(void **state) {
    ts_adp_rmsg_wire_t w;
    char err[256];
    ts_adp_rmsg_t m = base(TS_ADP_RMSG_SHARDED, TS_ADP_RMSG_BROADCAST);
    assert_ts_err(ts_adp_rmsg_encode(NULL, &m, &w, err, sizeof(err)), TS_EINVAL);
    assert_non_null(strstr(err, "packet.data is missing"));
    assert_null(w.bytes);
    m.packet.data = json_loads("[\"e\",{\"_placeholder\":true,\"num\":1}]", 0, NULL);
    assert_ts_err(ts_adp_rmsg_encode(NULL, &m, &w, err, sizeof(err)), TS_EINVAL);
    assert_non_null(strstr(err, "placeholder"));
    json_decref(m.packet.data);
    m = base(TS_ADP_RMSG_CLASSIC, TS_ADP_RMSG_HEARTBEAT);
    assert_ts_err(ts_adp_rmsg_encode(NULL, &m, &w, err, sizeof(err)), TS_EINVAL);
    m = base(TS_ADP_RMSG_SHARDED, TS_ADP_RMSG_ALL_ROOMS);
    assert_ts_err(ts_adp_rmsg_encode(NULL, &m, &w, err, sizeof(err)), TS_EINVAL);
    m = base(TS_ADP_RMSG_SHARDED, TS_ADP_RMSG_BROADCAST_ACK);
    m.request_id = S("r");
    assert_ts_err(ts_adp_rmsg_encode(NULL, &m, &w, err, sizeof(err)), TS_EINVAL);
    assert_non_null(strstr(err, "to (the requester's uid) is missing"));
    assert_ts_err(ts_adp_rmsg_encode_broadcast(NULL, TS_ADP_RMSG_CLASSIC, "u", "/", NULL,
                                               TS_SLICE_LIT("{\"a\":1}"), TS_ADP_RMSG_TEXT_ANY, NULL,
                                               0, NULL, &w, err,
                                               sizeof(err)),
                  TS_EINVAL);
    assert_ts_err(ts_adp_rmsg_encode_broadcast(NULL, TS_ADP_RMSG_CLASSIC, "u", "/", NULL,
                                               TS_SLICE_LIT("[1,"), TS_ADP_RMSG_TEXT_ANY, NULL, 0,
                                               NULL, &w, err,
                                               sizeof(err)),
                  TS_EINVAL);
}

/* notepack's Object.keys order: array-index keys first, ascending. */
static void index_keys_first(void **state) {
    json_t *args = json_loads("[{\"b\":1,\"10\":2,\"2\":3,\"01\":4}]", 0, NULL);
    ts_adp_rmsg_opts_t o = {0};
    ts_adp_rmsg_wire_t w;
    ts_sbuf_t t = TS_SBUF_INIT;
    ts_json_dump(&t, args);
    assert_int_equal(ts_adp_rmsg_encode_broadcast(NULL, TS_ADP_RMSG_CLASSIC, "u", "/", NULL,
                                                  ts_slice(ts_sbuf_data(&t), ts_sbuf_len(&t)),
                                                  TS_ADP_RMSG_TEXT_ANY, NULL, 0, &o, &w, NULL, 0),
                     0);
    /* ... a4 "data" 91 84 a1 "2" 03 a2 "10" 02 a1 "b" 01 a2 "01" 04 */
    static const uint8_t want[] = {0x91, 0x84, 0xa1, '2', 0x03, 0xa2, '1', '0', 0x02,
                                   0xa1, 'b',  0x01, 0xa2, '0', '1', 0x04};
    assert_non_null(memmem(w.bytes->data, w.bytes->len, want, sizeof(want)));
    ts_adp_rmsg_wire_clear(&w);
    ts_sbuf_free(&t);
    json_decref(args);
}

static int teardown_doc(void **state) {
    json_decref(g_doc);
    g_doc = NULL;
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors_decode),
        cmocka_unit_test(vectors_truncated),
        cmocka_unit_test(vectors_encode),
        cmocka_unit_test(vectors_encode_broadcast),
        cmocka_unit_test(vectors_text_paths),
        cmocka_unit_test(roundtrip_all_kinds),
        cmocka_unit_test(json_messages_carry_buffers_as_node_does),
        cmocka_unit_test(channels),
        cmocka_unit_test(malformed),
        cmocka_unit_test(limits_and_values),
        cmocka_unit_test(unreferenced_binaries_dropped),
        cmocka_unit_test(encode_errors),
        cmocka_unit_test(index_keys_first),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_doc);
}
