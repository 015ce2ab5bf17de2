/* rmsg.c - codec of the npm @socket.io/redis-adapter 8.x wire format
 * (docs/REDIS-WIRE.md): decoding a message into ts_adp_rmsg_t (the encoder,
 * byte for byte as the Node adapter writes, is rmsg_enc.c). Both encodings
 * Node uses (JSON text and notepack.io msgpack) decode to one jansson tree
 * first, and one interpreter per format reads the fields from it; the
 * encoder builds the tree Node would build (same keys, same order) and
 * writes it as JSON text (ts_json_dump: JSON.stringify's bytes) or msgpack
 * (msgpack-c's packer).
 *
 * msgpack is read by a bounded reader of our own, not msgpack-c's unpacker:
 * msgpack_unpack sizes its zone from a container header, so the 5 bytes
 * dd ff ff ff 00 ask for 128 GB (measured with msgpack-c 4.0 under ASan),
 * and it reports fixext 1 and ext 8 of one byte alike where notepack gives
 * them different meanings (undefined, a one-byte ArrayBuffer).
 *
 * Decoding maps notepack.io 3.0.1's values (it reads notepack 2's too) as
 * JSON.stringify then sees them: bin (Buffers; ArrayBuffers and typed
 * arrays since notepack 3) and ext 8/16/32 of type 0 (notepack 2's
 * ArrayBuffer) become placeholders plus attachments; nil is null, and
 * notepack 2's undefined (fixext 1 type 0) drops a map key and is null in
 * an array; timestamps (ext -1) and notepack 2's Date (fixext 8 type 0)
 * are their toJSON() string; other exts [type, placeholder] as notepack's
 * [type, Buffer]; floats that are whole numbers in int64 range are
 * integers (JS has one number type), NaN and infinities null; invalid UTF-8
 * becomes U+FFFD as Buffer.toString does.
 * Stricter than Node on purpose: map keys are strings without NUL, an
 * object {"_placeholder":true} is refused (sio would take it for a binary),
 * and nesting, items, attachments and size are bounded (ts_adp_rmsg_cfg_t). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/rmsg_int.h"
#include "adapter/ts_adp_rmsg.h"
#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"

static const char *const kind_names[TS_ADP_RMSG_KIND_COUNT] = {
    [TS_ADP_RMSG_NONE] = "NONE",
    [TS_ADP_RMSG_BROADCAST] = "BROADCAST",
    [TS_ADP_RMSG_BROADCAST_WITH_ACK] = "BROADCAST_WITH_ACK",
    [TS_ADP_RMSG_SOCKETS_JOIN] = "SOCKETS_JOIN",
    [TS_ADP_RMSG_SOCKETS_LEAVE] = "SOCKETS_LEAVE",
    [TS_ADP_RMSG_DISCONNECT_SOCKETS] = "DISCONNECT_SOCKETS",
    [TS_ADP_RMSG_FETCH_SOCKETS] = "FETCH_SOCKETS",
    [TS_ADP_RMSG_SERVER_SIDE_EMIT] = "SERVER_SIDE_EMIT",
    [TS_ADP_RMSG_SOCKETS] = "SOCKETS",
    [TS_ADP_RMSG_ALL_ROOMS] = "ALL_ROOMS",
    [TS_ADP_RMSG_INITIAL_HEARTBEAT] = "INITIAL_HEARTBEAT",
    [TS_ADP_RMSG_HEARTBEAT] = "HEARTBEAT",
    [TS_ADP_RMSG_ADAPTER_CLOSE] = "ADAPTER_CLOSE",
    [TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE] = "FETCH_SOCKETS_RESPONSE",
    [TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE] = "SERVER_SIDE_EMIT_RESPONSE",
    [TS_ADP_RMSG_BROADCAST_CLIENT_COUNT] = "BROADCAST_CLIENT_COUNT",
    [TS_ADP_RMSG_BROADCAST_ACK] = "BROADCAST_ACK",
    [TS_ADP_RMSG_SOCKETS_RESPONSE] = "SOCKETS_RESPONSE",
    [TS_ADP_RMSG_ALL_ROOMS_RESPONSE] = "ALL_ROOMS_RESPONSE",
    [TS_ADP_RMSG_RESPONSE] = "RESPONSE",
};

const char *ts_adp_rmsg_kind_name(ts_adp_rmsg_kind_t kind) {
    return (unsigned)kind < TS_ADP_RMSG_KIND_COUNT ? kind_names[kind] : "?";
}

/* ---- shared ---------------------------------------------------------- */

lim_t ts_adp__rmsg_lim(const ts_adp_rmsg_cfg_t *cfg) {
    static const ts_adp_rmsg_cfg_t zero;
    if (!cfg) cfg = &zero;
    lim_t l;
    l.prefix = cfg->prefix ? cfg->prefix : TS_ADP_RMSG_PREFIX_DEFAULT;
    l.prefix_len = strlen(l.prefix);
    l.max_bytes = cfg->max_bytes ? cfg->max_bytes : TS_ADP_RMSG_MAX_BYTES_DEFAULT;
    l.max_items = cfg->max_items ? cfg->max_items : TS_ADP_RMSG_MAX_ITEMS_DEFAULT;
    l.max_attach = cfg->max_attach ? cfg->max_attach : TS_ADP_RMSG_MAX_ATTACH_DEFAULT;
    l.max_depth = cfg->max_depth ? cfg->max_depth : TS_ADP_RMSG_MAX_DEPTH_DEFAULT;
    return l;
}

int ts_adp__rmsg_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return TS_EINVAL;
}


static void strs_free(ts_adp_rmsg_strs_t *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

void ts_adp_rmsg_clear(ts_adp_rmsg_t *m) {
    free(m->uid);
    free(m->nsp);
    free(m->request_id);
    free(m->room);
    free(m->to);
    free(m->sid);
    free(m->packet.nsp);
    json_decref(m->packet.data);
    ts_buf_unref(m->packet.data_text);
    json_decref(m->data);
    strs_free(&m->opts.rooms);
    strs_free(&m->opts.except);
    strs_free(&m->rooms);
    for (size_t i = 0; i < m->nsockets; i++) {
        ts_adp_rmsg_sock_t *s = &m->sockets[i];
        free(s->id);
        json_decref(s->handshake);
        json_decref(s->data);
        strs_free(&s->rooms);
    }
    free(m->sockets);
    for (size_t i = 0; i < m->nattach; i++) ts_buf_unref(m->attach[i]);
    free(m->attach);
    memset(m, 0, sizeof(*m));
}

void ts_adp_rmsg_wire_clear(ts_adp_rmsg_wire_t *w) {
    ts_buf_unref(w->bytes);
    ts_buf_unref(w->channel);
    w->bytes = w->channel = NULL;
}

/* ---- decoding: msgpack (notepack.io) into a tree ----------------------- */

typedef struct rd {
    const uint8_t *start, *p, *end;
    lim_t lim;
    size_t items;
    ts_buf_t **attach; /* owned until handed to the message */
    size_t nattach, cap;
    char *err;
    size_t errlen;
} rd_t;

static size_t rd_left(const rd_t *r) { return (size_t)(r->end - r->p); }
static size_t rd_at(const rd_t *r) { return (size_t)(r->p - r->start); }

static int rd_need(rd_t *r, size_t n) {
    if (rd_left(r) < n)
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: truncated at byte %zu (%zu more needed, %zu left)",
                    rd_at(r), n, rd_left(r));
    return 0;
}

static uint64_t be(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

static int rd_uint(rd_t *r, size_t n, uint64_t *out) {
    int rc = rd_need(r, n);
    if (rc < 0) return rc;
    *out = be(r->p, n);
    r->p += n;
    return 0;
}

/* Counts an array element or map entry against max_items; a container that
 * announces more than the bytes left could hold is cut short right here
 * (every element takes at least a byte) instead of being allocated. */
static int rd_items(rd_t *r, uint64_t n, size_t min_bytes_each) {
    if (n > rd_left(r) / min_bytes_each)
        return ts_adp__rmsg_fail(r->err, r->errlen,
                    "msgpack: truncated at byte %zu (a container of %llu items in %zu bytes)",
                    rd_at(r), (unsigned long long)n, rd_left(r));
    if (n > r->lim.max_items - r->items)
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: more than %zu items in one message",
                    r->lim.max_items);
    r->items += (size_t)n;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at p, or 0 and in *bad how many
 * bytes one U+FFFD stands for (the "maximal subpart" rule of WHATWG's
 * decoder, which Node's Buffer.toString follows). */
static size_t utf8_len(const uint8_t *p, size_t n, size_t *bad) {
    uint8_t c = p[0], lo = 0x80, hi = 0xbf;
    size_t more;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        more = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        more = 2;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        more = 3;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= more; i++) {
        if (i >= n || p[i] < lo || p[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xbf;
    }
    return more + 1;
}

/* A jansson string of p[0..n) as Node decodes it; NULL-free keys are the
 * caller's business. */
static json_t *utf8_string(const uint8_t *p, size_t n) {
    size_t i = 0, bad = 0, k;
    while (i < n && (k = utf8_len(p + i, n - i, &bad)) != 0) i += k;
    if (i == n) return json_stringn_nocheck((const char *)p, n);
    ts_sbuf_t s = TS_SBUF_INIT;
    ts_sbuf_append(&s, p, i);
    while (i < n) {
        if ((k = utf8_len(p + i, n - i, &bad)) != 0) {
            ts_sbuf_append(&s, p + i, k);
            i += k;
        } else {
            ts_sbuf_append(&s, "\xef\xbf\xbd", 3);
            i += bad;
        }
    }
    json_t *j = json_stringn_nocheck((const char *)ts_sbuf_data(&s), ts_sbuf_len(&s));
    ts_sbuf_free(&s);
    return j;
}

/* JS numbers: whole values in int64 range as integers. */
static json_t *js_number(double v) {
    if (!isfinite(v)) return json_null();
    if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static int rd_bin(rd_t *r, size_t n, json_t **out) {
    int rc = rd_need(r, n);
    if (rc < 0) return rc;
    if (r->nattach >= r->lim.max_attach)
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: more than %zu binary values in one message",
                    r->lim.max_attach);
    if (r->nattach == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4;
        r->attach = ts_xrealloc(r->attach, r->cap * sizeof(*r->attach));
    }
    r->attach[r->nattach] = ts_buf_from(r->p, n);
    r->p += n;
    *out = json_pack("{s:b,s:I}", "_placeholder", 1, "num", (json_int_t)r->nattach++);
    return 0;
}

/* Civil date from days since 1970-01-01 (H. Hinnant's algorithm). */
static void civil(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* notepack's Date (int64 ms) as Date.prototype.toJSON writes it; null for
 * a time JS cannot hold (an Invalid Date). */
static json_t *js_date(int64_t ms) {
    if (ms > 8640000000000000LL || ms < -8640000000000000LL) return json_null();
    int64_t days = ms / 86400000, rem = ms % 86400000, y;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    unsigned mo, d;
    civil(days, &y, &mo, &d);
    char year[24], out[64];
    if (y >= 0 && y <= 9999)
        snprintf(year, sizeof(year), "%04d", (int)y);
    else
        snprintf(year, sizeof(year), "%c%06lld", y < 0 ? '-' : '+', (long long)(y < 0 ? -y : y));
    snprintf(out, sizeof(out), "%s-%02u-%02uT%02d:%02d:%02d.%03dZ", year, mo, d,
             (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
             (int)(rem % 1000));
    return json_string(out);
}

static int rd_value(rd_t *r, unsigned depth, json_t **out);

static int rd_array(rd_t *r, uint64_t n, unsigned depth, json_t **out) {
    if (depth + 1 > r->lim.max_depth)
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: nesting deeper than %u at byte %zu",
                    r->lim.max_depth, rd_at(r));
    int rc = rd_items(r, n, 1);
    if (rc < 0) return rc;
    json_t *a = json_array();
    for (uint64_t i = 0; i < n; i++) {
        json_t *v;
        if ((rc = rd_value(r, depth + 1, &v)) < 0) {
            json_decref(a);
            return rc;
        }
        json_array_append_new(a, v ? v : json_null()); /* undefined in an array: null */
    }
    *out = a;
    return 0;
}

static int rd_key(rd_t *r, json_t **key) {
    int rc = rd_need(r, 1);
    if (rc < 0) return rc;
    size_t at = rd_at(r);
    uint8_t c = *r->p++;
    uint64_t n;
    if (c >= 0xa0 && c <= 0xbf)
        n = c & 0x1f;
    else if (c >= 0xd9 && c <= 0xdb)
        rc = rd_uint(r, (size_t)1 << (c - 0xd9), &n);
    else
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: map key at byte %zu is not a string (0x%02x)",
                    at, c);
    if (rc < 0 || (rc = rd_need(r, n)) < 0) return rc;
    /* jansson keys are C strings: "a\0b" would silently become "a" */
    if (memchr(r->p, 0, n))
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: map key at byte %zu contains a NUL byte", at);
    *key = utf8_string(r->p, n);
    r->p += n;
    return 0;
}

static int rd_map(rd_t *r, uint64_t n, unsigned depth, json_t **out) {
    if (depth + 1 > r->lim.max_depth)
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: nesting deeper than %u at byte %zu",
                    r->lim.max_depth, rd_at(r));
    size_t at = rd_at(r);
    int rc = rd_items(r, n, 2);
    if (rc < 0) return rc;
    json_t *o = json_object();
    for (uint64_t i = 0; i < n; i++) {
        json_t *k = NULL, *v = NULL;
        if ((rc = rd_key(r, &k)) < 0 || (rc = rd_value(r, depth + 1, &v)) < 0) {
            json_decref(k);
            json_decref(o);
            return rc;
        }
        /* JS assignment: the last value of a repeated key wins, in the
         * first one's place; undefined deletes */
        if (v)
            json_object_set_new_nocheck(o, json_string_value(k), v);
        else
            json_object_del(o, json_string_value(k));
        json_decref(k);
    }
    if (ts_adp__rmsg_is_placeholder(o)) {
        json_decref(o);
        return ts_adp__rmsg_fail(r->err, r->errlen,
                    "msgpack: the map at byte %zu is a binary placeholder "
                    "{\"_placeholder\":true}, which tabsync reserves",
                    at);
    }
    *out = o;
    return 0;
}

/* new Date(t).toJSON() for a time computed as notepack computes it. */
static json_t *js_date_of(double t) {
    if (!isfinite(t) || t > 8.64e15 || t < -8.64e15) return json_null(); /* Invalid Date */
    return js_date((int64_t)trunc(t));
}

/* An ext of n bytes (its type byte next); lead is its first byte. */
static int rd_ext(rd_t *r, uint8_t lead, size_t n, unsigned depth, json_t **out) {
    int rc = rd_need(r, 1 + n);
    if (rc < 0) return rc;
    int fixed = lead >= 0xd4;
    int8_t type = (int8_t)*r->p++;
    const uint8_t *p = r->p;
    if (type == 0 && fixed && n == 1) { /* notepack 2's undefined */
        r->p += 1;
        *out = NULL;
        return 0;
    }
    if (type == 0 && fixed && n == 8) { /* notepack 2's Date: int64 ms */
        r->p += 8;
        *out = js_date((int64_t)be(p, 8));
        return 0;
    }
    if (type == 0 && !fixed) return rd_bin(r, n, out); /* notepack 2's ArrayBuffer */
    if (type == -1 && fixed && n == 4) {                /* timestamp 32 */
        r->p += 4;
        *out = js_date_of((double)be(p, 4) * 1e3);
        return 0;
    }
    if (type == -1 && fixed && n == 8) { /* timestamp 64: 30-bit ns, 34-bit s */
        uint32_t hi = (uint32_t)be(p, 4), lo = (uint32_t)be(p + 4, 4);
        r->p += 8;
        *out = js_date_of(((double)(hi & 3) * 4294967296.0 + lo) * 1e3 + (double)(hi >> 2) / 1e6);
        return 0;
    }
    if (type == -1 && lead == 0xc7) { /* timestamp 96: u32 ns, i64 s */
        /* notepack reads 12 bytes whatever the length says */
        if (n != 12)
            return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: timestamp of %zu bytes at byte %zu", n,
                        rd_at(r));
        int32_t hi = (int32_t)(uint32_t)be(p + 4, 4);
        r->p += 12;
        *out = js_date_of(((double)hi * 4294967296.0 + (double)be(p + 8, 4)) * 1e3 +
                          (double)be(p, 4) / 1e6);
        return 0;
    }
    /* notepack's [type, Buffer]: one level deeper, and an array of two */
    if (depth + 1 > r->lim.max_depth)
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: nesting deeper than %u at byte %zu",
                    r->lim.max_depth, rd_at(r));
    if (r->items + 2 > r->lim.max_items)
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: more than %zu items in one message",
                    r->lim.max_items);
    r->items += 2;
    json_t *bin;
    if ((rc = rd_bin(r, n, &bin)) < 0) return rc;
    *out = json_pack("[io]", (int)type, bin);
    return 0;
}

/* One value; *out NULL means undefined. */
static int rd_value(rd_t *r, unsigned depth, json_t **out) {
    int rc = rd_need(r, 1);
    if (rc < 0) return rc;
    size_t at = rd_at(r);
    uint8_t c = *r->p++;
    uint64_t n;
    if (c < 0x80) {
        *out = json_integer(c);
        return 0;
    }
    if (c >= 0xe0) {
        *out = json_integer((int8_t)c);
        return 0;
    }
    if (c < 0x90) return rd_map(r, c & 0x0f, depth, out);
    if (c < 0xa0) return rd_array(r, c & 0x0f, depth, out);
    if (c < 0xc0) {
        n = c & 0x1f;
        goto str;
    }
    switch (c) {
    case 0xc0: *out = json_null(); return 0;
    case 0xc2: *out = json_false(); return 0;
    case 0xc3: *out = json_true(); return 0;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        if ((rc = rd_uint(r, (size_t)1 << (c - 0xc4), &n)) < 0) return rc;
        if (n > rd_left(r)) return rd_need(r, (size_t)n);
        return rd_bin(r, (size_t)n, out);
    case 0xc7:
    case 0xc8:
    case 0xc9:
        if ((rc = rd_uint(r, (size_t)1 << (c - 0xc7), &n)) < 0) return rc;
        if (n >= rd_left(r)) return rd_need(r, (size_t)n + 1);
        return rd_ext(r, c, (size_t)n, depth, out);
    case 0xca: {
        if ((rc = rd_uint(r, 4, &n)) < 0) return rc;
        uint32_t u = (uint32_t)n;
        float f;
        memcpy(&f, &u, 4);
        *out = js_number(f);
        return 0;
    }
    case 0xcb: {
        if ((rc = rd_uint(r, 8, &n)) < 0) return rc;
        double d;
        memcpy(&d, &n, 8);
        *out = js_number(d);
        return 0;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if ((rc = rd_uint(r, (size_t)1 << (c - 0xcc), &n)) < 0) return rc;
        *out = n > INT64_MAX ? json_real((double)n) : json_integer((json_int_t)n);
        return 0;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t w = (size_t)1 << (c - 0xd0);
        if ((rc = rd_uint(r, w, &n)) < 0) return rc;
        int64_t v = w == 8 ? (int64_t)n : (int64_t)(n ^ (1ull << (w * 8 - 1))) - (1ll << (w * 8 - 1));
        *out = json_integer(v);
        return 0;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return rd_ext(r, c, (size_t)1 << (c - 0xd4), depth, out);
    case 0xd9:
    case 0xda:
    case 0xdb:
        if ((rc = rd_uint(r, (size_t)1 << (c - 0xd9), &n)) < 0) return rc;
        goto str;
    case 0xdc:
    case 0xdd:
        if ((rc = rd_uint(r, c == 0xdc ? 2 : 4, &n)) < 0) return rc;
        return rd_array(r, n, depth, out);
    case 0xde:
    case 0xdf:
        if ((rc = rd_uint(r, c == 0xde ? 2 : 4, &n)) < 0) return rc;
        return rd_map(r, n, depth, out);
    default:
        return ts_adp__rmsg_fail(r->err, r->errlen, "msgpack: byte 0x%02x at %zu is not a msgpack type", c,
                    at);
    }
str:
    if (n > rd_left(r)) return rd_need(r, (size_t)n);
    *out = utf8_string(r->p, (size_t)n);
    r->p += n;
    return 0;
}

/* ---- decoding: JSON text into a tree ---------------------------------- */

/* One pass before jansson sees the text, so its memory and recursion are
 * bounded by ours: nesting, and an upper bound of the items (every ',' and
 * every container outside strings). */
static int json_prescan(rd_t *r) {
    unsigned depth = 0;
    size_t items = 0;
    int in_str = 0;
    for (const uint8_t *p = r->start; p < r->end; p++) {
        uint8_t c = *p;
        if (in_str) {
            if (c == '\\')
                p++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > r->lim.max_depth)
                return ts_adp__rmsg_fail(r->err, r->errlen, "json: nesting deeper than %u at byte %zu",
                            r->lim.max_depth, (size_t)(p - r->start));
            items++;
        } else if (c == ']' || c == '}') {
            if (depth) depth--;
        } else if (c == ',') {
            items++;
        }
        if (items > r->lim.max_items)
            return ts_adp__rmsg_fail(r->err, r->errlen, "json: more than %zu items in one message",
                        r->lim.max_items);
    }
    return 0;
}

/* After a parse with JSON_DECODE_INT_AS_REAL: back to integers where JS
 * would print an integer (the tree's numbers then look as msgpack's do). */
static json_t *ints_again(json_t *v) {
    if (json_is_real(v)) {
        json_t *n = js_number(json_real_value(v));
        json_decref(v);
        return n;
    }
    size_t i;
    json_t *e;
    const char *k;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e) json_array_set_new(v, i, ints_again(json_incref(e)));
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, e) json_object_set_new_nocheck(v, k, ints_again(json_incref(e)));
    }
    return v;
}

static int no_placeholders(rd_t *r, json_t *v) {
    size_t i;
    json_t *e;
    const char *k;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e) if (no_placeholders(r, e) < 0) return TS_EINVAL;
    } else if (json_is_object(v)) {
        if (ts_adp__rmsg_is_placeholder(v))
            return ts_adp__rmsg_fail(r->err, r->errlen,
                        "json: an object {\"_placeholder\":true}, which tabsync reserves");
        json_object_foreach(v, k, e) if (no_placeholders(r, e) < 0) return TS_EINVAL;
    }
    return 0;
}

/* JSON.parse's reading: integers too big for int64 are doubles (jansson
 * refuses them), NUL in strings is fine. */
json_t *ts_adp__rmsg_load_json(const uint8_t *p, size_t n, json_error_t *je) {
    json_t *t = ts_json_loadb(p, n, JSON_ALLOW_NUL, je);
    if (!t && json_error_code(je) == json_error_numeric_overflow) {
        t = ts_json_loadb(p, n, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, je);
        if (t) t = ints_again(t);
    }
    return t;
}

static int json_tree(rd_t *r, json_t **out) {
    int rc = json_prescan(r);
    if (rc < 0) return rc;
    json_error_t je;
    json_t *t = ts_adp__rmsg_load_json(r->p, rd_left(r), &je);
    if (!t)
        return ts_adp__rmsg_fail(r->err, r->errlen, "json: %s at byte %d", je.text, je.position);
    if ((rc = no_placeholders(r, t)) < 0) {
        json_decref(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- decoding: fields from the tree -------------------------------------- */

typedef struct dec {
    const char *what; /* "classic broadcast", for messages */
    char *err;
    size_t errlen;
} dec_t;

__attribute__((format(printf, 2, 3))) static int dfail(dec_t *d, const char *fmt, ...) {
    if (d->err && d->errlen) {
        int n = snprintf(d->err, d->errlen, "%s: ", d->what);
        if (n > 0 && (size_t)n < d->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return TS_EINVAL;
}

/* A string without NUL (ids, rooms, namespaces), copied into *out. Numbers
 * become their JS text: Node lets a room be a number (socket.join(1)). */
static int as_str(dec_t *d, json_t *v, const char *name, char **out) {
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (memchr(json_string_value(v), 0, n)) return dfail(d, "%s contains a NUL byte", name);
        *out = ts_xstrndup(json_string_value(v), n);
        return 0;
    }
    if (json_is_integer(v)) {
        char b[32];
        snprintf(b, sizeof(b), "%lld", (long long)json_integer_value(v));
        *out = ts_xstrdup(b);
        return 0;
    }
    if (json_is_real(v)) {
        char b[TS_JSON_REAL_MAX + 1];
        b[ts_json_fmt_real(b, json_real_value(v))] = '\0';
        *out = ts_xstrdup(b);
        return 0;
    }
    return dfail(d, "%s is not a string", name);
}

static int get_str(dec_t *d, json_t *o, const char *key, int required, char **out) {
    json_t *v = json_object_get(o, key);
    if (!v) return required ? dfail(d, "%s is missing", key) : 0;
    return as_str(d, v, key, out);
}

static int get_strs(dec_t *d, json_t *o, const char *key, int required,
                    ts_adp_rmsg_strs_t *out) {
    json_t *a = json_object_get(o, key);
    if (!a) return required ? dfail(d, "%s is missing", key) : 0;
    if (!json_is_array(a)) return dfail(d, "%s is not an array", key);
    size_t n = json_array_size(a);
    out->v = ts_xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        int rc = as_str(d, json_array_get(a, i), key, &out->v[i]);
        if (rc < 0) return rc; /* out->n counts only what was set: the caller frees */
        out->n = i + 1;
    }
    return 0;
}

static int get_uint(dec_t *d, json_t *o, const char *key, uint64_t max, uint64_t *out) {
    json_t *v = json_object_get(o, key);
    if (!v) return dfail(d, "%s is missing", key);
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        (uint64_t)json_integer_value(v) <= max) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    return dfail(d, "%s is not an integer in 0..%llu", key, (unsigned long long)max);
}

static int get_bool(json_t *o, const char *key) { return json_is_true(json_object_get(o, key)); }

static int get_opts(dec_t *d, json_t *o, ts_adp_rmsg_opts_t *opts) {
    json_t *v = json_object_get(o, "opts");
    if (!v) return dfail(d, "opts is missing");
    if (!json_is_object(v)) return dfail(d, "opts is not an object");
    int rc;
    if ((rc = get_strs(d, v, "rooms", 0, &opts->rooms)) < 0 ||
        (rc = get_strs(d, v, "except", 0, &opts->except)) < 0)
        return rc;
    json_t *f = json_object_get(v, "flags");
    if (!f || json_is_null(f)) return 0;
    if (!json_is_object(f)) return dfail(d, "opts.flags is not an object");
    if (json_is_true(json_object_get(f, "volatile"))) opts->flags |= TS_ADP_RMSG_F_VOLATILE;
    if (json_is_true(json_object_get(f, "local"))) opts->flags |= TS_ADP_RMSG_F_LOCAL;
    if (json_is_true(json_object_get(f, "expectSingleResponse")))
        opts->flags |= TS_ADP_RMSG_F_SINGLE;
    json_t *c = json_object_get(f, "compress");
    if (json_is_boolean(c))
        opts->flags |= TS_ADP_RMSG_F_COMPRESS | (json_is_true(c) ? TS_ADP_RMSG_F_COMPRESS_ON : 0);
    json_t *t = json_object_get(f, "timeout");
    if (t) {
        if (json_is_integer(t) && json_integer_value(t) >= 0)
            opts->timeout_ms = (uint64_t)json_integer_value(t);
        else if (json_is_real(t) && json_real_value(t) >= 0 && json_real_value(t) < 9.2e18)
            opts->timeout_ms = (uint64_t)json_real_value(t);
        else
            return dfail(d, "opts.flags.timeout is not a number of milliseconds");
        opts->flags |= TS_ADP_RMSG_F_TIMEOUT;
    }
    return 0;
}

static int get_packet(dec_t *d, json_t *o, int need_nsp, ts_adp_rmsg_packet_t *pkt) {
    json_t *p = json_object_get(o, "packet");
    if (!p) return dfail(d, "packet is missing");
    if (!json_is_object(p)) return dfail(d, "packet is not an object");
    json_t *t = json_object_get(p, "type");
    if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > 6)
        return dfail(d, "packet.type is not a Socket.IO packet type (0-6)");
    pkt->type = (int)json_integer_value(t);
    json_t *data = json_object_get(p, "data");
    if (!json_is_array(data)) return dfail(d, "packet.data is not an array");
    pkt->data = json_incref(data);
    pkt->id = -1;
    json_t *id = json_object_get(p, "id");
    if (id) {
        if (!json_is_integer(id) || json_integer_value(id) < 0)
            return dfail(d, "packet.id is not a non-negative integer");
        pkt->id = json_integer_value(id);
    }
    int rc = get_str(d, p, "nsp", 0, &pkt->nsp);
    if (rc < 0) return rc;
    if (need_nsp && !pkt->nsp) pkt->nsp = ts_xstrdup("/"); /* as RedisAdapter.onmessage */
    return 0;
}

static int get_sockets(dec_t *d, json_t *o, ts_adp_rmsg_t *m) {
    json_t *a = json_object_get(o, "sockets");
    if (!json_is_array(a)) return dfail(d, "sockets is not an array");
    size_t n = json_array_size(a);
    m->sockets = ts_xcalloc(n ? n : 1, sizeof(*m->sockets));
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_object(s)) return dfail(d, "sockets[%zu] is not an object", i);
        ts_adp_rmsg_sock_t *k = &m->sockets[i];
        m->nsockets = i + 1;
        int rc;
        if ((rc = get_str(d, s, "id", 1, &k->id)) < 0 ||
            (rc = get_strs(d, s, "rooms", 0, &k->rooms)) < 0)
            return rc;
        json_t *h = json_object_get(s, "handshake");
        if (h && !json_is_object(h)) return dfail(d, "sockets[%zu].handshake is not an object", i);
        k->handshake = json_incref(h);
        k->data = json_incref(json_object_get(s, "data"));
    }
    return 0;
}

static int get_int_type(dec_t *d, json_t *o, int *type) {
    json_t *t = json_object_get(o, "type");
    if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > 99)
        return dfail(d, "type is missing or not a message type");
    *type = (int)json_integer_value(t);
    return 0;
}

/* Classic: [uid, packet, opts] on the broadcast channel. */
static int classic_broadcast(dec_t *d, json_t *t, ts_adp_rmsg_t *m) {
    if (!json_is_array(t) || json_array_size(t) < 3)
        return dfail(d, "not an array [uid, packet, opts]");
    int rc = as_str(d, json_array_get(t, 0), "uid", &m->uid);
    if (rc < 0) return rc;
    /* reuse the object readers: {"packet": ..., "opts": ...} */
    json_t *o = json_pack("{sOsO}", "packet", json_array_get(t, 1), "opts", json_array_get(t, 2));
    rc = get_packet(d, o, 1, &m->packet);
    if (rc == 0) rc = get_opts(d, o, &m->opts);
    json_decref(o);
    m->has_opts = 1;
    m->kind = TS_ADP_RMSG_BROADCAST;
    return rc;
}

static int classic_request(dec_t *d, json_t *t, ts_adp_rmsg_t *m) {
    if (!json_is_object(t)) return dfail(d, "not an object");
    int type = 0, rc; /* set by get_int_type when it returns 0 (gcc -O3 cannot tell) */
    if ((rc = get_int_type(d, t, &type)) < 0 || (rc = get_str(d, t, "uid", 1, &m->uid)) < 0 ||
        (rc = get_str(d, t, "requestId", 0, &m->request_id)) < 0)
        return rc;
    /* what Node answers carries the requestId back: no answer without one */
    int answered = type == C_SOCKETS || type == C_ALL_ROOMS || type == C_REMOTE_FETCH ||
                   ((type == C_REMOTE_JOIN || type == C_REMOTE_LEAVE ||
                     type == C_REMOTE_DISCONNECT) &&
                    !json_object_get(t, "opts"));
    if (answered && !m->request_id) return dfail(d, "requestId is missing");
    switch (type) {
    case C_SOCKETS:
        m->kind = TS_ADP_RMSG_SOCKETS;
        return get_strs(d, t, "rooms", 0, &m->rooms);
    case C_ALL_ROOMS:
        m->kind = TS_ADP_RMSG_ALL_ROOMS;
        return 0;
    case C_REMOTE_JOIN:
    case C_REMOTE_LEAVE:
    case C_REMOTE_DISCONNECT:
        m->kind = type == C_REMOTE_JOIN    ? TS_ADP_RMSG_SOCKETS_JOIN
                  : type == C_REMOTE_LEAVE ? TS_ADP_RMSG_SOCKETS_LEAVE
                                           : TS_ADP_RMSG_DISCONNECT_SOCKETS;
        m->close = get_bool(t, "close");
        if (json_object_get(t, "opts")) {
            m->has_opts = 1;
            if ((rc = get_opts(d, t, &m->opts)) < 0) return rc;
            return type == C_REMOTE_DISCONNECT ? 0 : get_strs(d, t, "rooms", 1, &m->rooms);
        }
        /* the one-socket form older versions send: {sid, room} / {sid, close} */
        if ((rc = get_str(d, t, "sid", 1, &m->sid)) < 0) return rc;
        if (type == C_REMOTE_DISCONNECT) return 0;
        m->rooms.v = ts_xcalloc(1, sizeof(char *));
        if ((rc = get_str(d, t, "room", 1, &m->rooms.v[0])) < 0) return rc;
        m->rooms.n = 1;
        return 0;
    case C_REMOTE_FETCH:
        m->kind = TS_ADP_RMSG_FETCH_SOCKETS;
        m->has_opts = 1;
        return get_opts(d, t, &m->opts);
    case C_SERVER_SIDE_EMIT: {
        m->kind = TS_ADP_RMSG_SERVER_SIDE_EMIT;
        json_t *data = json_object_get(t, "data");
        if (!json_is_array(data)) return dfail(d, "data is not an array [event, ...args]");
        m->data = json_incref(data);
        return 0;
    }
    case C_BROADCAST:
        m->kind = TS_ADP_RMSG_BROADCAST_WITH_ACK;
        m->has_opts = 1;
        if (!m->request_id) return dfail(d, "requestId is missing");
        if ((rc = get_packet(d, t, 1, &m->packet)) < 0) return rc;
        return get_opts(d, t, &m->opts);
    default:
        return dfail(d, "unknown request type %d", type);
    }
}

static int classic_response(dec_t *d, json_t *t, ts_adp_rmsg_t *m) {
    if (!json_is_object(t)) return dfail(d, "not an object");
    int rc = get_str(d, t, "requestId", 1, &m->request_id);
    if (rc < 0) return rc;
    json_t *type = json_object_get(t, "type");
    if (type) {
        int ty = 0;
        if ((rc = get_int_type(d, t, &ty)) < 0) return rc;
        switch (ty) {
        case C_SERVER_SIDE_EMIT:
            m->kind = TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE;
            m->data = json_incref(json_object_get(t, "data"));
            return 0;
        case C_BROADCAST_CLIENT_COUNT:
            m->kind = TS_ADP_RMSG_BROADCAST_CLIENT_COUNT;
            return get_uint(d, t, "clientCount", 1ull << 53, &m->client_count);
        case C_BROADCAST_ACK:
            m->kind = TS_ADP_RMSG_BROADCAST_ACK;
            m->data = json_incref(json_object_get(t, "packet"));
            return 0;
        default:
            return dfail(d, "unknown response type %d", ty);
        }
    }
    json_t *socks = json_object_get(t, "sockets");
    if (socks) {
        /* Both answers carry `sockets` and no type: ids answer SOCKETS, objects
         * REMOTE_FETCH. An empty list is taken for the latter (8.x sends no
         * SOCKETS request); the requester knows which by its requestId. */
        if (json_is_array(socks) && json_is_string(json_array_get(socks, 0))) {
            m->kind = TS_ADP_RMSG_SOCKETS_RESPONSE;
            return get_strs(d, t, "sockets", 1, &m->rooms);
        }
        m->kind = TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE;
        return get_sockets(d, t, m);
    }
    if (json_object_get(t, "rooms")) {
        m->kind = TS_ADP_RMSG_ALL_ROOMS_RESPONSE;
        return get_strs(d, t, "rooms", 1, &m->rooms);
    }
    m->kind = TS_ADP_RMSG_RESPONSE;
    return 0;
}

static int sharded_message(dec_t *d, json_t *t, ts_adp_rmsg_t *m) {
    if (!json_is_object(t)) return dfail(d, "not an object");
    int type = 0, rc;
    if ((rc = get_int_type(d, t, &type)) < 0 || (rc = get_str(d, t, "uid", 1, &m->uid)) < 0 ||
        (rc = get_str(d, t, "nsp", 1, &m->nsp)) < 0)
        return rc;
    if (type == S_INITIAL_HEARTBEAT || type == S_HEARTBEAT || type == S_ADAPTER_CLOSE) {
        m->kind = type == S_INITIAL_HEARTBEAT ? TS_ADP_RMSG_INITIAL_HEARTBEAT
                  : type == S_HEARTBEAT       ? TS_ADP_RMSG_HEARTBEAT
                                              : TS_ADP_RMSG_ADAPTER_CLOSE;
        return 0;
    }
    if (type < S_BROADCAST || type > S_BROADCAST_ACK) return dfail(d, "unknown message type %d", type);
    json_t *data = json_object_get(t, "data");
    if (!json_is_object(data)) return dfail(d, "data is not an object");
    if ((rc = get_str(d, data, "requestId", 0, &m->request_id)) < 0) return rc;
    int need_rid = 1;
    switch (type) {
    case S_BROADCAST:
        m->kind = m->request_id ? TS_ADP_RMSG_BROADCAST_WITH_ACK : TS_ADP_RMSG_BROADCAST;
        m->has_opts = 1;
        if ((rc = get_packet(d, data, 0, &m->packet)) < 0) return rc;
        return get_opts(d, data, &m->opts);
    case S_SOCKETS_JOIN:
    case S_SOCKETS_LEAVE:
        m->kind = type == S_SOCKETS_JOIN ? TS_ADP_RMSG_SOCKETS_JOIN : TS_ADP_RMSG_SOCKETS_LEAVE;
        m->has_opts = 1;
        if ((rc = get_opts(d, data, &m->opts)) < 0) return rc;
        return get_strs(d, data, "rooms", 1, &m->rooms);
    case S_DISCONNECT_SOCKETS:
        m->kind = TS_ADP_RMSG_DISCONNECT_SOCKETS;
        m->has_opts = 1;
        m->close = get_bool(data, "close");
        return get_opts(d, data, &m->opts);
    case S_FETCH_SOCKETS:
        m->kind = TS_ADP_RMSG_FETCH_SOCKETS;
        m->has_opts = 1;
        if (!m->request_id) return dfail(d, "data.requestId is missing");
        return get_opts(d, data, &m->opts);
    case S_SERVER_SIDE_EMIT: {
        m->kind = TS_ADP_RMSG_SERVER_SIDE_EMIT;
        json_t *pkt = json_object_get(data, "packet");
        if (!json_is_array(pkt)) return dfail(d, "data.packet is not an array [event, ...args]");
        m->data = json_incref(pkt);
        return 0;
    }
    case S_FETCH_SOCKETS_RESPONSE:
        m->kind = TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE;
        rc = get_sockets(d, data, m);
        break;
    case S_SERVER_SIDE_EMIT_RESPONSE:
    case S_BROADCAST_ACK:
        m->kind = type == S_BROADCAST_ACK ? TS_ADP_RMSG_BROADCAST_ACK
                                          : TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE;
        m->data = json_incref(json_object_get(data, "packet"));
        break;
    case S_BROADCAST_CLIENT_COUNT:
        m->kind = TS_ADP_RMSG_BROADCAST_CLIENT_COUNT;
        rc = get_uint(d, data, "clientCount", 1ull << 53, &m->client_count);
        break;
    default:
        need_rid = 0;
    }
    if (rc == 0 && need_rid && !m->request_id) return dfail(d, "data.requestId is missing");
    return rc;
}

/* ---- decoding: channels ------------------------------------------------ */

static int starts(ts_slice_t s, size_t at, const char *lit, size_t n) {
    return s.len >= at + n && memcmp(s.p + at, lit, n) == 0;
}

/* The part of `ch` after `head` (length hl, already matched) up to a final
 * '#': NULL when nothing follows head, TS_EINVAL when it does not end so. */
static int chan_tail(ts_slice_t ch, size_t hl, char **out, char *err, size_t errlen) {
    *out = NULL;
    if (ch.len == hl) return 0;
    if (ch.p[ch.len - 1] != '#')
        return ts_adp__rmsg_fail(err, errlen, "channel \"%.*s\" does not end with '#'", (int)TS_MIN(ch.len, 200),
                    (const char *)ch.p);
    if (ch.len - 1 > hl) *out = ts_xstrndup((const char *)ch.p + hl, ch.len - 1 - hl);
    return 0;
}

/* Moves the attachments a kept tree refers to into m->attach, numbered
 * in the order the trees are walked (the input's order for every message
 * Node sends); binaries in fields the decoder ignores are dropped, so the
 * placeholders and the attachments always match one to one. */
static void move_attach(json_t *v, rd_t *r, ts_adp_rmsg_t *m) {
    size_t i;
    json_t *x;
    const char *k;
    if (ts_adp__rmsg_is_placeholder(v)) {
        size_t num = (size_t)json_integer_value(json_object_get(v, "num"));
        if (TS_NEVER(num >= r->nattach || !r->attach[num])) return;
        m->attach[m->nattach] = r->attach[num];
        r->attach[num] = NULL;
        json_object_set_new_nocheck(v, "num", json_integer((json_int_t)m->nattach++));
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) move_attach(x, r, m);
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, x) move_attach(x, r, m);
    }
}

static void keep_attachments(ts_adp_rmsg_t *m, rd_t *r) {
    if (!r->nattach) return;
    m->attach = ts_xcalloc(r->nattach, sizeof(*m->attach));
    if (m->packet.data) move_attach(m->packet.data, r, m);
    if (m->data) move_attach(m->data, r, m);
    for (size_t i = 0; i < m->nsockets; i++) {
        if (m->sockets[i].handshake) move_attach(m->sockets[i].handshake, r, m);
        if (m->sockets[i].data) move_attach(m->sockets[i].data, r, m);
    }
    for (size_t i = 0; i < r->nattach; i++) ts_buf_unref(r->attach[i]);
    free(r->attach);
    r->attach = NULL;
    r->nattach = 0;
    if (!m->nattach) {
        free(m->attach);
        m->attach = NULL;
    }
}

typedef enum { CH_BROADCAST, CH_REQUEST, CH_RESPONSE } chan_class_t;

static int decode(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format, ts_slice_t channel,
                  ts_slice_t bytes, int want_text, ts_adp_rmsg_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (err && errlen) err[0] = '\0';
    lim_t lim = ts_adp__rmsg_lim(cfg);
    if (format != TS_ADP_RMSG_CLASSIC && format != TS_ADP_RMSG_SHARDED)
        return ts_adp__rmsg_fail(err, errlen, "unknown format %d", (int)format);
    if (bytes.len == 0) return ts_adp__rmsg_fail(err, errlen, "empty message");
    if (bytes.len > lim.max_bytes)
        return ts_adp__rmsg_fail(err, errlen, "message of %zu bytes exceeds the limit of %zu", bytes.len,
                    lim.max_bytes);
    if (memchr(channel.p, 0, channel.len)) return ts_adp__rmsg_fail(err, errlen, "channel contains a NUL byte");
    const char *pfx = lim.prefix;
    size_t pl = lim.prefix_len;

    /* which classic channel: <p>#, <p>-request#, <p>-response# */
    chan_class_t cls = CH_BROADCAST;
    size_t head = 0; /* where the namespace starts in the channel */
    if (!starts(channel, 0, pfx, pl))
        return ts_adp__rmsg_fail(err, errlen, "channel \"%.*s\" does not start with the prefix \"%s\"",
                    (int)TS_MIN(channel.len, 200), (const char *)channel.p, pfx);
    if (format == TS_ADP_RMSG_CLASSIC && starts(channel, pl, "-request#", 9)) {
        cls = CH_REQUEST;
        head = pl + 9;
    } else if (format == TS_ADP_RMSG_CLASSIC && starts(channel, pl, "-response#", 10)) {
        cls = CH_RESPONSE;
        head = pl + 10;
    } else if (starts(channel, pl, "#", 1)) {
        head = pl + 1;
    } else {
        return ts_adp__rmsg_fail(err, errlen, "channel \"%.*s\" is not a %s channel of prefix \"%s\"",
                    (int)TS_MIN(channel.len, 200), (const char *)channel.p,
                    format == TS_ADP_RMSG_CLASSIC ? "classic adapter" : "sharded adapter", pfx);
    }

    rd_t r = {.start = bytes.p, .p = bytes.p, .end = bytes.p + bytes.len, .lim = lim,
              .err = err, .errlen = errlen};
    json_t *t = NULL;
    int rc = 0;
    /* a plain broadcast as text (rfast.c), within our limits: the fast path
     * nests at most 32 deep and every item takes a byte at least */
    int fast = want_text && cls == CH_BROADCAST && lim.max_depth >= 32 &&
               bytes.len <= lim.max_items && ts_adp__rmsg_fast_decode(format, bytes, out) == 0;
    /* Node: the classic broadcast is always msgpack; everything else is
     * JSON when it starts with '{' */
    if (fast) {
    } else if (bytes.p[0] == '{' && !(format == TS_ADP_RMSG_CLASSIC && cls == CH_BROADCAST)) {
        rc = json_tree(&r, &t);
    } else {
        out->msgpack = 1;
        rc = rd_value(&r, 0, &t);
        if (rc == 0 && r.p != r.end)
            rc = ts_adp__rmsg_fail(err, errlen, "msgpack: %zu trailing bytes after the message", rd_left(&r));
        if (rc == 0 && !t) rc = ts_adp__rmsg_fail(err, errlen, "msgpack: the message is undefined");
    }
    if (rc < 0) goto done;

    dec_t d = {.err = err, .errlen = errlen};
    if (format == TS_ADP_RMSG_SHARDED) {
        d.what = "sharded message";
        if (!fast && (rc = sharded_message(&d, t, out)) < 0) goto done;
        /* <p>#<nsp># [<room or requester uid>#] */
        size_t nl = strlen(out->nsp);
        if (!starts(channel, head, out->nsp, nl) || !starts(channel, head + nl, "#", 1)) {
            rc = ts_adp__rmsg_fail(err, errlen, "sharded message of namespace \"%s\" on channel \"%.*s\"",
                      out->nsp, (int)TS_MIN(channel.len, 200), (const char *)channel.p);
            goto done;
        }
        char *tail;
        if ((rc = chan_tail(channel, head + nl + 1, &tail, err, errlen)) < 0) goto done;
        switch (out->kind) {
        case TS_ADP_RMSG_FETCH_SOCKETS_RESPONSE:
        case TS_ADP_RMSG_SERVER_SIDE_EMIT_RESPONSE:
        case TS_ADP_RMSG_BROADCAST_CLIENT_COUNT:
        case TS_ADP_RMSG_BROADCAST_ACK: out->to = tail; break;
        default: out->room = tail;
        }
    } else if (cls == CH_BROADCAST) {
        d.what = "classic broadcast";
        if (!fast && (rc = classic_broadcast(&d, t, out)) < 0) goto done;
        /* <p>#<packet.nsp># [<room>#] */
        const char *nsp = out->packet.nsp;
        size_t nl = strlen(nsp);
        if (!starts(channel, head, nsp, nl) || !starts(channel, head + nl, "#", 1)) {
            rc = ts_adp__rmsg_fail(err, errlen, "classic broadcast of namespace \"%s\" on channel \"%.*s\"",
                      nsp, (int)TS_MIN(channel.len, 200), (const char *)channel.p);
            goto done;
        }
        out->nsp = ts_xstrdup(nsp);
        if ((rc = chan_tail(channel, head + nl + 1, &out->room, err, errlen)) < 0) goto done;
    } else {
        /* <p>-request#<nsp>#, <p>-response#<nsp>#[<uid>#]: namespaces with
         * '#' cannot be told from a response channel's uid; the first '#'
         * ends the namespace */
        const uint8_t *end = channel.p + channel.len;
        const uint8_t *hash = memchr(channel.p + head, '#', channel.len - head);
        if (!hash || (cls == CH_REQUEST && hash + 1 != end)) {
            rc = ts_adp__rmsg_fail(err, errlen, "channel \"%.*s\" is not <prefix>-%s#<nsp>#%s",
                      (int)TS_MIN(channel.len, 200), (const char *)channel.p,
                      cls == CH_REQUEST ? "request" : "response", cls == CH_REQUEST ? "" : "[<uid>#]");
            goto done;
        }
        out->nsp = ts_xstrndup((const char *)channel.p + head, (size_t)(hash - channel.p) - head);
        if (cls == CH_RESPONSE &&
            (rc = chan_tail(channel, (size_t)(hash - channel.p) + 1, &out->to, err, errlen)) < 0)
            goto done;
        d.what = cls == CH_REQUEST ? "classic request" : "classic response";
        rc = cls == CH_REQUEST ? classic_request(&d, t, out) : classic_response(&d, t, out);
    }

done:
    json_decref(t);
    if (rc < 0) {
        for (size_t i = 0; i < r.nattach; i++) ts_buf_unref(r.attach[i]);
        free(r.attach);
        ts_adp_rmsg_clear(out);
        if (err && errlen && !err[0]) ts_adp__rmsg_fail(err, errlen, "invalid message");
        return TS_EINVAL;
    }
    out->format = format;
    keep_attachments(out, &r);
    return 0;
}

int ts_adp_rmsg_decode(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                       ts_slice_t channel, ts_slice_t bytes, ts_adp_rmsg_t *out, char *err,
                       size_t errlen) {
    return decode(cfg, format, channel, bytes, 0, out, err, errlen);
}

int ts_adp_rmsg_decode_text(const ts_adp_rmsg_cfg_t *cfg, ts_adp_rmsg_format_t format,
                            ts_slice_t channel, ts_slice_t bytes, ts_adp_rmsg_t *out, char *err,
                            size_t errlen) {
    return decode(cfg, format, channel, bytes, 1, out, err, errlen);
}

