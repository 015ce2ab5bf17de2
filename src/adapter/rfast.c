/* rfast.c - a broadcast between nodes without a jansson tree. The common
 * broadcast (an event of canonical JSON text, no binary, no acks) is
 * written as a canonical text of the whole message and, for the classic
 * format, transcoded to msgpack in one pass (core/json_mp.c); a received
 * classic one is walked as msgpack and only its data transcoded back to
 * canonical text, a sharded one (JSON text) walked as it is. Each path
 * declines what it does not know, and the tree path in rmsg.c, the
 * reference, takes it: the bytes and the decoded message are
 * the same either way (tests/adapter/test_rmsg.c, fuzz/fuzz_adp_rmsg.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/rmsg_int.h"
#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"

/* ---- encoding ---- */

static void text_str(ts_sbuf_t *t, const char *s) { ts_json_string(t, s, strlen(s)); }

static void text_strs(ts_sbuf_t *t, const ts_adp_rmsg_strs_t *s) {
    ts_sbuf_putc(t, '[');
    for (size_t i = 0; i < s->n; i++) {
        if (i) ts_sbuf_putc(t, ',');
        text_str(t, s->v[i]);
    }
    ts_sbuf_putc(t, ']');
}

/* opts as opts_json (rmsg.c) writes them with flags, keys in its order. */
static void text_opts(ts_sbuf_t *t, const ts_adp_rmsg_opts_t *o) {
    ts_sbuf_append_str(t, "{\"rooms\":");
    text_strs(t, &o->rooms);
    ts_sbuf_append_str(t, ",\"except\":");
    text_strs(t, &o->except);
    ts_sbuf_append_str(t, ",\"flags\":{");
    const char *sep = "";
    if (o->flags & TS_ADP_RMSG_F_VOLATILE) ts_sbuf_append_str(t, "\"volatile\":true"), sep = ",";
    if (o->flags & TS_ADP_RMSG_F_COMPRESS) {
        ts_sbuf_printf(t, "%s\"compress\":%s", sep,
                       (o->flags & TS_ADP_RMSG_F_COMPRESS_ON) ? "true" : "false");
        sep = ",";
    }
    if (o->flags & TS_ADP_RMSG_F_LOCAL) ts_sbuf_printf(t, "%s\"local\":true", sep), sep = ",";
    if (o->flags & TS_ADP_RMSG_F_TIMEOUT) {
        ts_sbuf_printf(t, "%s\"timeout\":%llu", sep, (unsigned long long)o->timeout_ms);
        sep = ",";
    }
    if (o->flags & TS_ADP_RMSG_F_SINGLE) ts_sbuf_printf(t, "%s\"expectSingleResponse\":true", sep);
    ts_sbuf_append_str(t, "}}");
}

/* The same strings and opts written straight as msgpack: what transcoding
 * text_strs / text_opts gives, byte for byte (a C string has no NUL, so its
 * bytes are the str's). */
static void mp_cstr(ts_sbuf_t *o, const char *s) { ts_mp_put_str(o, s, strlen(s)); }

static void mp_strs(ts_sbuf_t *o, const ts_adp_rmsg_strs_t *s) {
    ts_mp_put_head(o, TS_MP_ARRAY, s->n);
    for (size_t i = 0; i < s->n; i++) mp_cstr(o, s->v[i]);
}

#define MP_KEY(o, lit) ts_mp_put_str((o), (lit), sizeof(lit) - 1)

static void mp_opts(ts_sbuf_t *o, const ts_adp_rmsg_opts_t *op) {
    ts_mp_put_head(o, TS_MP_MAP, 3);
    MP_KEY(o, "rooms");
    mp_strs(o, &op->rooms);
    MP_KEY(o, "except");
    mp_strs(o, &op->except);
    MP_KEY(o, "flags");
    unsigned f = op->flags;
    size_t n = !!(f & TS_ADP_RMSG_F_VOLATILE) + !!(f & TS_ADP_RMSG_F_COMPRESS) +
               !!(f & TS_ADP_RMSG_F_LOCAL) + !!(f & TS_ADP_RMSG_F_TIMEOUT) +
               !!(f & TS_ADP_RMSG_F_SINGLE);
    ts_mp_put_head(o, TS_MP_MAP, n);
    if (f & TS_ADP_RMSG_F_VOLATILE) MP_KEY(o, "volatile"), ts_mp_put_bool(o, 1);
    if (f & TS_ADP_RMSG_F_COMPRESS)
        MP_KEY(o, "compress"), ts_mp_put_bool(o, f & TS_ADP_RMSG_F_COMPRESS_ON);
    if (f & TS_ADP_RMSG_F_LOCAL) MP_KEY(o, "local"), ts_mp_put_bool(o, 1);
    if (f & TS_ADP_RMSG_F_TIMEOUT) MP_KEY(o, "timeout"), ts_mp_put_int(o, (int64_t)op->timeout_ms);
    if (f & TS_ADP_RMSG_F_SINGLE) MP_KEY(o, "expectSingleResponse"), ts_mp_put_bool(o, 1);
}

/* Whether every string of the message outside its data is valid UTF-8:
 * what checking the whole text as canonical asked of them. */
static int strs_utf8(const ts_adp_rmsg_strs_t *s) {
    for (size_t i = 0; i < s->n; i++)
        if (!ts_json_utf8_no_nul((const uint8_t *)s->v[i], strlen(s->v[i]))) return 0;
    return 1;
}

static int cstr_utf8(const char *s) { return ts_json_utf8_no_nul((const uint8_t *)s, strlen(s)); }

/* [uid, {type: 2, data, nsp}, opts], classic_tree's BROADCAST: the fixed
 * parts written as msgpack, only the data transcoded. Writing the whole
 * message as text and transcoding it all cost ~13,500 instructions per
 * publish, 9,600 of them the transcoder's. */
static int classic_encode(const char *uid, const char *nsp, ts_slice_t data_json,
                      ts_adp_rmsg_text_t form, const ts_adp_rmsg_opts_t *opts, ts_buf_t **bytes) {
    if (form != TS_ADP_RMSG_TEXT_CANONICAL &&
        (!cstr_utf8(uid) || !cstr_utf8(nsp) || !strs_utf8(&opts->rooms) ||
         !strs_utf8(&opts->except) || !ts_json_is_canonical(data_json)))
        return TS_EINVAL;
    ts_sbuf_t mp = TS_SBUF_INIT;
    ts_sbuf_reserve(&mp, data_json.len + 128);
    ts_mp_put_head(&mp, TS_MP_ARRAY, 3);
    mp_cstr(&mp, uid);
    ts_mp_put_head(&mp, TS_MP_MAP, 3);
    MP_KEY(&mp, "type");
    ts_mp_put_int(&mp, 2);
    MP_KEY(&mp, "data");
    if (ts_json_to_msgpack_canonical(&mp, data_json)) {
        ts_sbuf_free(&mp);
        return TS_EINVAL;
    }
    MP_KEY(&mp, "nsp");
    mp_cstr(&mp, nsp);
    mp_opts(&mp, opts);
    *bytes = ts_sbuf_finish(&mp);
    return 0;
}

int ts_adp__rmsg_fast_broadcast(ts_adp_rmsg_format_t format, const char *uid, const char *nsp,
                                ts_slice_t data_json, ts_adp_rmsg_text_t form,
                                const ts_adp_rmsg_opts_t *opts, ts_buf_t **bytes) {
    static const ts_adp_rmsg_opts_t none;
    if (!opts) opts = &none;
    if (!data_json.len || data_json.p[0] != '[') return TS_EINVAL;
    if ((opts->flags & TS_ADP_RMSG_F_TIMEOUT) && opts->timeout_ms > 9007199254740992ull)
        return TS_EINVAL;
    for (size_t i = 0; i < opts->rooms.n; i++)
        if (!opts->rooms.v[i]) return TS_EINVAL;
    for (size_t i = 0; i < opts->except.n; i++)
        if (!opts->except.v[i]) return TS_EINVAL;
    if (format == TS_ADP_RMSG_CLASSIC) return classic_encode(uid, nsp, data_json, form, opts, bytes);
    ts_sbuf_t t = TS_SBUF_INIT;
    /* one allocation for the whole message (growing by doubling cost 5 %
     * of a node's CPU here) */
    ts_sbuf_reserve(&t, data_json.len + 256);
    /* {type: 3, data: {packet: {type, data}, opts}, uid, nsp}: sharded_tree's
     * BROADCAST, as ts_json_dump writes it when the text is canonical */
    ts_sbuf_append_str(&t, "{\"type\":3,\"data\":{\"packet\":{\"type\":2,\"data\":");
    ts_sbuf_append(&t, data_json.p, data_json.len);
    ts_sbuf_append_str(&t, "},\"opts\":");
    text_opts(&t, opts);
    ts_sbuf_append_str(&t, "},\"uid\":");
    text_str(&t, uid);
    ts_sbuf_append_str(&t, ",\"nsp\":");
    text_str(&t, nsp);
    ts_sbuf_putc(&t, '}');
    if (form != TS_ADP_RMSG_TEXT_CANONICAL &&
        !ts_json_is_canonical(ts_slice(ts_sbuf_data(&t), ts_sbuf_len(&t)))) {
        ts_sbuf_free(&t);
        return TS_EINVAL;
    }
    *bytes = ts_sbuf_finish(&t);
    return 0;
}

/* ---- decoding: a walk over a canonical text ---- */

typedef struct walk {
    const uint8_t *p, *end;
    /* the nesting level of the values met (1: the top), each checked as
     * canonical as it is passed; 0: a text checked already (skipped) */
    unsigned depth;
} walk_t;

static int eat(walk_t *w, uint8_t c) {
    if (w->p >= w->end || *w->p != c) return -1;
    w->p++;
    return 0;
}

/* The next value's span, checked as canonical on the way (a sharded
 * message is walked once: checking it whole first, then skipping its parts,
 * scanned it twice, ~16,000 instructions per /session entry, callgrind);
 * within a part checked already, skipped. */
static int value(walk_t *w, ts_slice_t *v) {
    size_t n = (size_t)(w->end - w->p);
    size_t k = w->depth ? ts_json_canonical_len_at(w->p, n, w->depth) : ts_json_skip(w->p, n);
    if (!k) return -1;
    *v = ts_slice(w->p, k);
    w->p += k;
    return 0;
}

/* A string without escapes: its value, copied (returns new). */
static char *plain_str(ts_slice_t v) {
    int plain;
    if (!v.len || v.p[0] != '"' || ts_json_canonical_string_len(v.p, v.len, &plain) != v.len ||
        !plain)
        return NULL;
    return ts_xstrndup((const char *)v.p + 1, v.len - 2);
}

/* The next member's key of an object, the walk left at its value: 1, or
 * 0 at the end. A value the caller descends into is walked in place, not
 * skipped first: a message's data is the bulk of it. */
static int member_key(walk_t *w, int first, ts_slice_t *key) {
    if (w->p < w->end && *w->p == '}') {
        w->p++;
        return 0;
    }
    if (!first && eat(w, ',') < 0) return -1;
    int plain;
    size_t k = ts_json_canonical_string_len(w->p, (size_t)(w->end - w->p), &plain);
    if (!k || !plain) return -1;
    *key = ts_slice(w->p + 1, k - 2);
    w->p += k;
    return eat(w, ':') < 0 ? -1 : 1;
}

/* The next member of an object: 1 with its key and value, 0 at the end. */
static int member(walk_t *w, int first, ts_slice_t *key, ts_slice_t *v) {
    int r = member_key(w, first, key);
    if (r == 1 && value(w, v) < 0) return -1;
    return r;
}

static int key_is(ts_slice_t k, const char *lit) {
    size_t n = strlen(lit);
    return k.len == n && memcmp(k.p, lit, n) == 0;
}

static int strs(ts_slice_t v, ts_adp_rmsg_strs_t *out) {
    walk_t w = {v.p, v.p + v.len, 0}; /* a part checked already */
    if (eat(&w, '[') < 0) return -1;
    for (size_t i = 0; w.p < w.end && *w.p != ']'; i++) {
        ts_slice_t s;
        if ((i && eat(&w, ',') < 0) || value(&w, &s) < 0) return -1;
        char *str = plain_str(s);
        if (!str) return -1;
        out->v = ts_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        out->v[out->n++] = str;
    }
    return 0;
}

/* {rooms, except, flags}, flags {} or volatile only: what tabsyncd and
 * socket.io send for a plain broadcast; anything else is the tree path's. */
static int opts_of(ts_slice_t v, ts_adp_rmsg_opts_t *o) {
    walk_t w = {v.p, v.p + v.len, 0}; /* a part checked already */
    ts_slice_t k, x;
    int r, seen = 0;
    if (eat(&w, '{') < 0) return -1;
    for (int first = 1; (r = member(&w, first, &k, &x)) == 1; first = 0) {
        if (key_is(k, "rooms") && !(seen & 1)) {
            if (strs(x, &o->rooms) < 0) return -1;
            seen |= 1;
        } else if (key_is(k, "except") && !(seen & 2)) {
            if (strs(x, &o->except) < 0) return -1;
            seen |= 2;
        } else if (key_is(k, "flags") && !(seen & 4)) {
            if (x.len == 2 && x.p[0] == '{') { /* {} */
            } else if (x.len == 17 && memcmp(x.p, "{\"volatile\":true}", 17) == 0) {
                o->flags |= TS_ADP_RMSG_F_VOLATILE;
            } else {
                return -1;
            }
            seen |= 4;
        } else {
            return -1;
        }
    }
    return r < 0 ? -1 : 0;
}

/* {type: 2, data: [...][, nsp]}, walked in place from w */
static int packet_of(walk_t *wp, ts_adp_rmsg_packet_t *pkt, ts_slice_t *data) {
    walk_t w = *wp;
    ts_slice_t k, x;
    int r, seen = 0;
    if (eat(&w, '{') < 0) return -1;
    w.depth++;
    for (int first = 1; (r = member(&w, first, &k, &x)) == 1; first = 0) {
        if (key_is(k, "type") && !(seen & 1) && x.len == 1 && x.p[0] == '2') {
            seen |= 1;
        } else if (key_is(k, "data") && !(seen & 2) && x.p[0] == '[') {
            *data = x;
            seen |= 2;
        } else if (key_is(k, "nsp") && !(seen & 4) && (pkt->nsp = plain_str(x)) != NULL) {
            seen |= 4;
        } else {
            return -1;
        }
    }
    if (r < 0 || (seen & 3) != 3) return -1;
    pkt->type = 2;
    pkt->id = -1;
    wp->p = w.p;
    return 0;
}

/* {type: 3, data: {packet, opts}, uid, nsp} */
static int sharded_of(ts_slice_t text, ts_adp_rmsg_t *m, ts_slice_t *data) {
    walk_t w = {text.p, text.p + text.len, 2};
    ts_slice_t k, x;
    int r, seen = 0;
    if (eat(&w, '{') < 0) return -1;
    for (int first = 1; (r = member_key(&w, first, &k)) == 1; first = 0) {
        if (key_is(k, "data") && !(seen & 8)) {
            /* walked in place: the packet's data is passed once */
            ts_slice_t dk, dx;
            int dr, dseen = 0;
            if (eat(&w, '{') < 0) return -1;
            w.depth = 3;
            for (int f = 1; (dr = member_key(&w, f, &dk)) == 1; f = 0) {
                if (key_is(dk, "packet") && !(dseen & 1) && packet_of(&w, &m->packet, data) == 0)
                    dseen |= 1;
                else if (key_is(dk, "opts") && !(dseen & 2) && value(&w, &dx) == 0 &&
                         opts_of(dx, &m->opts) == 0)
                    dseen |= 2;
                else
                    return -1; /* requestId: a broadcast with acks */
            }
            if (dr < 0 || dseen != 3) return -1;
            w.depth = 2;
            seen |= 8;
            continue;
        }
        if (value(&w, &x) < 0) return -1;
        if (key_is(k, "type") && !(seen & 1) && x.len == 1 && x.p[0] == '3') {
            seen |= 1;
        } else if (key_is(k, "uid") && !(seen & 2) && (m->uid = plain_str(x)) != NULL) {
            seen |= 2;
        } else if (key_is(k, "nsp") && !(seen & 4) && (m->nsp = plain_str(x)) != NULL) {
            seen |= 4;
        } else {
            return -1;
        }
    }
    if (r < 0 || seen != 15 || w.p != w.end) return -1;
    /* a sharded packet has no nsp of its own */
    if (m->packet.nsp) return -1;
    return 0;
}

/* ---- decoding a classic message: a walk over its msgpack ----
 * [uid, {type: 2, data, nsp?}, {rooms, except, flags}] (the shape a
 * sharded message's packet and opts have as text), read where it lies
 * (ts_mp_rd_*): only the data is transcoded, into the canonical text the tabs get. Transcoding
 * the whole message and walking the text again (its strings scanned once
 * more) cost a received /session entry ~24,700 instructions on one of two
 * nodes, the most of its user time (callgrind, docs/PERFORMANCE.md "Across
 * nodes"). Whatever this walk does not take goes the tree path's way, as
 * from the text: the fuzzer holds the two to the same result. */

/* A str whose JSON text has no escape (what plain_str takes from a text:
 * UTF-8 without NUL, control characters, quotes or backslashes). */
static int mw_str(ts_mp_rd_t *w, const uint8_t **s, size_t *n) {
    if (ts_mp_rd_str(w, s, n) < 0) return -1;
    for (size_t i = 0; i < *n; i++)
        if ((*s)[i] < 0x20 || (*s)[i] == '"' || (*s)[i] == '\\') return -1;
    return ts_json_utf8_no_nul(*s, *n) ? 0 : -1;
}

static char *mw_plain_str(ts_mp_rd_t *w) {
    const uint8_t *s;
    size_t n;
    return mw_str(w, &s, &n) < 0 ? NULL : ts_xstrndup((const char *)s, n);
}

static int mw_key(ts_mp_rd_t *w, ts_slice_t *k) {
    const uint8_t *s;
    size_t n;
    if (mw_str(w, &s, &n) < 0) return -1;
    *k = ts_slice(s, n);
    return 0;
}

static int mw_strs(ts_mp_rd_t *w, ts_adp_rmsg_strs_t *out) {
    uint64_t n;
    if (ts_mp_rd_head(w, &n) != 0 || n > (uint64_t)(w->end - w->p)) return -1;
    for (uint64_t i = 0; i < n; i++) {
        char *str = mw_plain_str(w);
        if (!str) return -1;
        out->v = ts_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        out->v[out->n++] = str;
    }
    return 0;
}

/* as opts_of takes them from a text */
static int mw_opts(ts_mp_rd_t *w, ts_adp_rmsg_opts_t *o) {
    uint64_t n, fn;
    int seen = 0;
    ts_slice_t k;
    if (ts_mp_rd_head(w, &n) != 1) return -1;
    for (uint64_t i = 0; i < n; i++) {
        if (mw_key(w, &k) < 0) return -1;
        if (key_is(k, "rooms") && !(seen & 1)) {
            if (mw_strs(w, &o->rooms) < 0) return -1;
            seen |= 1;
        } else if (key_is(k, "except") && !(seen & 2)) {
            if (mw_strs(w, &o->except) < 0) return -1;
            seen |= 2;
        } else if (key_is(k, "flags") && !(seen & 4)) {
            if (ts_mp_rd_head(w, &fn) != 1 || fn > 1) return -1;
            if (fn == 1) { /* {volatile: true} */
                if (mw_key(w, &k) < 0 || !key_is(k, "volatile") || w->p >= w->end || *w->p++ != 0xc3)
                    return -1;
                o->flags |= TS_ADP_RMSG_F_VOLATILE;
            }
            seen |= 4;
        } else {
            return -1;
        }
    }
    return 0;
}

/* The data array [name, args...] transcoded into `data` element by
 * element, each element's place noted (sio relays them without skipping
 * the text again: ~2,500 instructions per message). What
 * ts_json_from_msgpack_at writes for the whole array two levels in (as in
 * [uid, {data: ...}]), and declined alike. */
static int mw_data(ts_mp_rd_t *w, ts_adp_rmsg_packet_t *pkt, ts_sbuf_t *data) {
    uint64_t n;
    if (ts_mp_rd_head(w, &n) != 0 || n > (uint64_t)(w->end - w->p)) return -1;
    pkt->nitems = n <= TS_ADP_RMSG_ITEMS_MAX ? (size_t)n : 0;
    ts_sbuf_putc(data, '[');
    for (uint64_t i = 0; i < n; i++) {
        if (i) ts_sbuf_putc(data, ',');
        size_t at = ts_sbuf_len(data);
        size_t used = ts_json_from_msgpack_at(data, w->p, (size_t)(w->end - w->p), 3);
        if (!used) return -1;
        w->p += used;
        if (pkt->nitems) pkt->items[i] = (ts_adp_rmsg_span_t){at, ts_sbuf_len(data) - at};
    }
    ts_sbuf_putc(data, ']');
    return 0;
}

/* as packet_of takes it from a text: {type: 2, data: [...][, nsp]}, the
 * data transcoded into `data` */
static int mw_packet(ts_mp_rd_t *w, ts_adp_rmsg_packet_t *pkt, ts_sbuf_t *data) {
    uint64_t n;
    int seen = 0;
    ts_slice_t k;
    if (ts_mp_rd_head(w, &n) != 1) return -1;
    for (uint64_t i = 0; i < n; i++) {
        if (mw_key(w, &k) < 0 || w->p >= w->end) return -1;
        uint8_t c = *w->p;
        if (key_is(k, "type") && !(seen & 1) && c == 0x02) {
            w->p++;
            seen |= 1;
        } else if (key_is(k, "data") && !(seen & 2) && ((c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd)) {
            if (mw_data(w, pkt, data) < 0) return -1;
            seen |= 2;
        } else if (key_is(k, "nsp") && !(seen & 4) && (pkt->nsp = mw_plain_str(w)) != NULL) {
            seen |= 4;
        } else {
            return -1;
        }
    }
    if ((seen & 3) != 3) return -1;
    pkt->type = 2;
    pkt->id = -1;
    return 0;
}

/* [uid, packet, opts] */
static int classic_mp(ts_slice_t bytes, ts_adp_rmsg_t *m, ts_sbuf_t *data) {
    ts_mp_rd_t w = {bytes.p, bytes.p + bytes.len};
    uint64_t n;
    if (ts_mp_rd_head(&w, &n) != 0 || n != 3 || !(m->uid = mw_plain_str(&w)) ||
        mw_packet(&w, &m->packet, data) < 0 || mw_opts(&w, &m->opts) < 0 || w.p != w.end)
        return -1;
    if (!m->packet.nsp) m->packet.nsp = ts_xstrdup("/"); /* as RedisAdapter.onmessage */
    return 0;
}

int ts_adp__rmsg_fast_decode(ts_adp_rmsg_format_t format, ts_slice_t bytes, ts_adp_rmsg_t *m) {
    ts_sbuf_t d = TS_SBUF_INIT;
    ts_slice_t data = {0};
    int rc;
    if (format == TS_ADP_RMSG_CLASSIC) {
        ts_sbuf_reserve(&d, bytes.len + bytes.len / 2 + 64);
        rc = classic_mp(bytes, m, &d);
        m->msgpack = 1;
        data = ts_slice(ts_sbuf_data(&d), ts_sbuf_len(&d));
    } else {
        /* canonical throughout, checked as it is walked */
        rc = bytes.len && bytes.p[0] == '{' ? sharded_of(bytes, m, &data) : -1;
    }
    if (rc == 0) {
        m->kind = TS_ADP_RMSG_BROADCAST;
        m->has_opts = 1;
        m->packet.data_text = format == TS_ADP_RMSG_CLASSIC ? ts_sbuf_finish(&d)
                                                            : ts_buf_from(data.p, data.len);
    } else {
        ts_adp_rmsg_clear(m);
        ts_sbuf_free(&d);
    }
    return rc == 0 ? 0 : TS_EINVAL;
}

int ts_adp_rmsg_peek_rooms(ts_adp_rmsg_format_t format, ts_slice_t bytes, ts_slice_t *rooms,
                           size_t cap, size_t *nrooms) {
    ts_mp_rd_t w = {bytes.p, bytes.p + bytes.len};
    uint64_t n, nr;
    const uint8_t *k;
    size_t kl;
    int seen = 0;
    *nrooms = 0;
    /* [uid, packet, {key: value, ...}]: the uid and the packet passed whole */
    if (format != TS_ADP_RMSG_CLASSIC || ts_mp_rd_head(&w, &n) != 0 || n != 3 ||
        ts_mp_rd_skip(&w) < 0 || ts_mp_rd_skip(&w) < 0 || ts_mp_rd_head(&w, &n) != 1)
        return 0;
    for (uint64_t i = 0; i < n; i++) {
        if (ts_mp_rd_str(&w, &k, &kl) < 0) return 0;
        if (!(kl == 5 && memcmp(k, "rooms", 5) == 0)) {
            if (ts_mp_rd_skip(&w) < 0) return 0;
            continue;
        }
        if (seen++ || ts_mp_rd_head(&w, &nr) != 0 || nr > cap) return 0; /* twice, or too many */
        for (uint64_t j = 0; j < nr; j++) {
            /* a name the decoder would not take as it is (not UTF-8, NUL):
             * the tree path's business */
            if (ts_mp_rd_str(&w, &k, &kl) < 0 || !ts_json_utf8_no_nul(k, kl)) return 0;
            rooms[(*nrooms)++] = ts_slice(k, kl);
        }
    }
    return 1;
}

/* A sharded message as ClusterAdapter.publish makes it (and we do): the uid
 * and the namespace are its last members, {..., "uid":"<uid>","nsp":"<nsp>"}.
 * Read from the end: the namespace's string (no quote or backslash in it),
 * then the exact bytes before it. In a JSON text they can only be the top
 * level's members (a string's own quotes would be escaped); a text that is
 * not JSON and looks like ours is dropped, as its decoding would drop it. */
static int sharded_from(ts_slice_t b, const char *uid) {
    static const char uk[] = ",\"uid\":\"", nk[] = "\",\"nsp\":\"";
    size_t ul = strlen(uid);
    if (b.len < sizeof uk - 1 + ul + sizeof nk - 1 + 2 || b.p[b.len - 1] != '}' ||
        b.p[b.len - 2] != '"')
        return 0;
    const uint8_t *o = b.p + b.len - 2; /* the namespace's closing quote */
    do {
        if (o == b.p) return 0;
        o--;
    } while (*o != '"' && *o != '\\');
    size_t need = sizeof uk - 1 + ul + sizeof nk - 2; /* nk's last quote is *o */
    if (*o != '"' || (size_t)(o - b.p) < need) return 0;
    const uint8_t *at = o + 1 - need - 1;
    return memcmp(at, uk, sizeof uk - 1) == 0 && memcmp(at + sizeof uk - 1, uid, ul) == 0 &&
           memcmp(at + sizeof uk - 1 + ul, nk, sizeof nk - 1) == 0;
}

int ts_adp_rmsg_is_from(ts_adp_rmsg_format_t format, ts_slice_t bytes, const char *uid) {
    if (format == TS_ADP_RMSG_SHARDED) return sharded_from(bytes, uid);
    /* [uid, packet, opts]: fixarray 3 (what notepack writes), then a str */
    if (format != TS_ADP_RMSG_CLASSIC || bytes.len < 2 || bytes.p[0] != 0x93) return 0;
    uint8_t c = bytes.p[1];
    size_t at, n = 0;
    if ((c & 0xe0) == 0xa0) {
        at = 2, n = c & 0x1f;
    } else if (c >= 0xd9 && c <= 0xdb) {
        size_t w = (size_t)1 << (c - 0xd9); /* str 8, 16, 32 */
        if (bytes.len < 2 + w) return 0;
        for (size_t i = 0; i < w; i++) n = n << 8 | bytes.p[2 + i];
        at = 2 + w;
    } else {
        return 0;
    }
    return n == strlen(uid) && bytes.len - at >= n && memcmp(bytes.p + at, uid, n) == 0;
}
