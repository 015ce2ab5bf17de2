/* packet_msgpack.c - Socket.IO packets in the msgpack form of npm
 * socket.io-msgpack-parser 3.0.2 (notepack.io 2.2.0): one msgpack map per
 * packet, binary values inline as `bin`. Decoding yields the same tree as
 * the JSON parser (bin -> placeholder + attachment); encoding writes the
 * bytes Node writes, keys in the order socket.io builds its packet objects.
 *
 * The decoder is a bounded recursive-descent reader of our own rather than
 * msgpack-c's unpacker, for three reasons found while testing msgpack-c 4.0:
 * it allocates count * 24 bytes up front from an array/map header (a 5-byte
 * message asks for gigabytes), its nesting limit is a compiled-in 32, and it
 * reports fixext 1 and ext 8 alike although notepack gives them different
 * meanings (`d4 00 00` is undefined, `c7 01 00 xx` a one-byte ArrayBuffer).
 * The encoder uses msgpack-c's packer, whose choices match notepack's.
 *
 * Value mapping (decode), as notepack.io 2.2.0 then JSON.stringify see it:
 *   nil/bool/str/array/map      -> null/bool/string/array/object
 *   ints                        -> integer; uint64 > INT64_MAX -> real
 *   float32/64                  -> integral and in int64 range -> integer
 *                                  (JS has one number type), else real;
 *                                  NaN/Infinity -> null (jansson has none)
 *   bin, ext 8/16/32 of type 0  -> placeholder + attachment (Buffer,
 *                                  ArrayBuffer)
 *   fixext 1 type 0 (undefined) -> map value: key dropped; array element:
 *                                  null; packet key: absent
 *   fixext 8 type 0 (Date, ms)  -> ISO-8601 string, as Date.toJSON
 *   any other ext               -> [type, placeholder] like notepack's
 *                                  [type, Buffer]
 *   invalid UTF-8 in str        -> U+FFFD replacement (Buffer.toString)
 * Stricter than Node, on purpose: map keys must be str (Node coerces
 * anything to a string key), a map {"_placeholder":true,...} is refused
 * (it would be taken for a binary placeholder), `id` must be 0..INT64_MAX,
 * `nsp` and map keys must not contain NUL, nesting deeper than 64 is
 * refused. */
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "sio/packet_int.h"

#define MP_MAX_DEPTH 64       /* containers, the packet map included */
#define MP_MAX_ENC_DEPTH 1000 /* jansson trees built by our own code */

/* ---- decoding -------------------------------------------------------- */

typedef struct mp_rd {
    const uint8_t *start, *p, *end;
    ts_sio_decoder_t *d;
    int collect;       /* 1 inside `data`: bin becomes placeholder + attachment */
    ts_buf_t **attach; /* collected attachments, owned */
    size_t nattach, cap;
} mp_rd_t;

__attribute__((format(printf, 2, 3))) static int mp_fail(mp_rd_t *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(r->d->errmsg, sizeof(r->d->errmsg), "msgpack: ");
    vsnprintf(r->d->errmsg + n, sizeof(r->d->errmsg) - (size_t)n, fmt, ap);
    va_end(ap);
    r->d->err = TS_EPROTO;
    return TS_EPROTO;
}

static size_t mp_left(const mp_rd_t *r) { return (size_t)(r->end - r->p); }

static int mp_need(mp_rd_t *r, size_t n) {
    if (mp_left(r) < n)
        return mp_fail(r, "truncated input at byte %zu (need %zu more, have %zu)",
                       (size_t)(r->p - r->start), n, mp_left(r));
    return 0;
}

static uint64_t be_read(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Reads an n-byte big-endian length or count. */
static int mp_len(mp_rd_t *r, size_t n, size_t *out) {
    int rc = mp_need(r, n);
    if (rc < 0) return rc;
    *out = (size_t)be_read(r->p, n);
    r->p += n;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at p[0..n), or 0 with *bad set
 * to how many bytes one U+FFFD replaces (WHATWG "maximal subpart", what
 * Node's Buffer.toString('utf8') does). */
static size_t utf8_seq(const uint8_t *p, size_t n, size_t *bad) {
    uint8_t b = p[0], lo = 0x80, hi = 0xbf;
    size_t more;
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf) {
        more = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
        more = 2;
        if (b == 0xe0) lo = 0xa0;
        if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        more = 3;
        if (b == 0xf0) lo = 0x90;
        if (b == 0xf4) hi = 0x8f;
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

/* Returns p itself when valid, else a new repaired copy in *tmp. */
static const char *utf8_fix(const uint8_t *p, size_t n, char **tmp, size_t *outlen) {
    size_t i = 0, bad = 0;
    *tmp = NULL;
    *outlen = n;
    while (i < n) {
        size_t k = utf8_seq(p + i, n - i, &bad);
        if (!k) break;
        i += k;
    }
    if (i == n) return (const char *)p;
    /* Each bad byte becomes at most 3 bytes, each good byte stays 1. */
    char *o = ts_xmalloc(n * 3 + 1);
    memcpy(o, p, i);
    size_t w = i;
    while (i < n) {
        size_t k = utf8_seq(p + i, n - i, &bad);
        if (k) {
            memcpy(o + w, p + i, k);
            w += k;
            i += k;
        } else {
            memcpy(o + w, "\xef\xbf\xbd", 3);
            w += 3;
            i += bad;
        }
    }
    o[w] = '\0';
    *outlen = w;
    *tmp = o;
    return o;
}

static json_t *mp_string(const uint8_t *p, size_t n) {
    char *tmp;
    size_t len;
    const char *s = utf8_fix(p, n, &tmp, &len);
    json_t *j = json_stringn_nocheck(s, len);
    free(tmp);
    return j;
}

static json_t *mp_number(double v) {
    if (!isfinite(v)) return json_null();
    if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static void rd_drop_attach(mp_rd_t *r) {
    for (size_t i = 0; i < r->nattach; i++) ts_buf_unref(r->attach[i]); /* NULL ok */
    r->nattach = 0;
}

/* Binary values per packet: each becomes a buffer and a placeholder object,
 * so a packet of empty bins would multiply its size in memory many times;
 * JSON packets are held to 10 attachments, msgpack ones to this. */
#define MP_MAX_BINARIES 256

static int mp_bin_room(mp_rd_t *r) {
    if (r->collect && r->nattach >= MP_MAX_BINARIES)
        return mp_fail(r, "more than %d binary values in one packet", MP_MAX_BINARIES);
    return 0;
}

static json_t *mp_bin(mp_rd_t *r, const uint8_t *p, size_t n) {
    if (!r->collect) return json_null(); /* bin outside `data`: discarded anyway */
    if (r->nattach == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4;
        r->attach = ts_xrealloc(r->attach, r->cap * sizeof(*r->attach));
    }
    size_t num = r->nattach;
    r->attach[r->nattach++] = ts_buf_from(p, n);
    return json_pack("{s:b,s:I}", "_placeholder", 1, "num", (json_int_t)num);
}

static void days_to_civil(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468; /* H. Hinnant's civil_from_days */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* notepack's Date: milliseconds since the epoch; Date.prototype.toJSON. */
static json_t *mp_date(const uint8_t *p) {
    int64_t ms = (int64_t)be_read(p, 8);
    if (ms > 8640000000000000LL || ms < -8640000000000000LL) return json_null();
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    int64_t y;
    unsigned mo, d;
    days_to_civil(days, &y, &mo, &d);
    char year[16], out[48];
    if (y >= 0 && y <= 9999)
        snprintf(year, sizeof(year), "%04d", (int)y);
    else
        snprintf(year, sizeof(year), "%c%06d", y < 0 ? '-' : '+', (int)(y < 0 ? -y : y));
    snprintf(out, sizeof(out), "%s-%02u-%02uT%02d:%02d:%02d.%03dZ", year, mo, d,
             (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
             (int)(rem % 1000));
    return json_string(out);
}

static int read_value(mp_rd_t *r, int depth, json_t **out);

/* An ext value; p points at its payload of n bytes. An ext of another type
 * becomes the array [type, binary]: one level deeper than the ext itself,
 * so it counts against the nesting limit (else re-encoding it as an array
 * could produce a packet that the decoder refuses). */
static int mp_ext(mp_rd_t *r, int8_t type, size_t n, int fixed, int depth, json_t **out) {
    int rc = mp_need(r, n);
    if (rc < 0) return rc;
    const uint8_t *p = r->p;
    r->p += n;
    if (type == 0 && fixed && n == 1) {
        *out = NULL; /* undefined */
        return 0;
    }
    if (type == 0 && fixed && n == 8) {
        *out = mp_date(p);
        return 0;
    }
    if (mp_bin_room(r) < 0) return r->d->err;
    if (type == 0 && !fixed) {
        *out = mp_bin(r, p, n); /* ArrayBuffer / typed array from Node */
        return 0;
    }
    if (depth + 1 > MP_MAX_DEPTH) return mp_fail(r, "nesting deeper than %d", MP_MAX_DEPTH);
    json_t *a = json_array();
    json_array_append_new(a, json_integer(type));
    json_array_append_new(a, mp_bin(r, p, n));
    *out = a;
    return 0;
}

static int read_array(mp_rd_t *r, size_t n, int depth, json_t **out) {
    if (depth > MP_MAX_DEPTH) return mp_fail(r, "nesting deeper than %d", MP_MAX_DEPTH);
    if (n > mp_left(r)) return mp_need(r, n); /* every element takes a byte */
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *v;
        int rc = read_value(r, depth, &v);
        if (rc < 0) {
            json_decref(a);
            return rc;
        }
        json_array_append_new(a, v ? v : json_null()); /* undefined -> null */
    }
    *out = a;
    return 0;
}

/* Reads a str header + body; anything else is not a valid map key. */
static int read_key(mp_rd_t *r, const uint8_t **kp, size_t *kn) {
    int rc = mp_need(r, 1);
    if (rc < 0) return rc;
    uint8_t b = *r->p;
    size_t at = (size_t)(r->p - r->start), n;
    r->p++;
    if (b >= 0xa0 && b <= 0xbf)
        n = b & 0x1f;
    else if (b >= 0xd9 && b <= 0xdb)
        rc = mp_len(r, (size_t)1 << (b - 0xd9), &n);
    else
        return mp_fail(r, "map key at byte %zu is not a string (type byte 0x%02x)", at, b);
    if (rc < 0) return rc;
    if ((rc = mp_need(r, n)) < 0) return rc;
    /* jansson's C-string key API (json_object_get, json_equal, the JSON
     * encoder's iteration) would see "a\0b" as "a": refuse it, as the JSON
     * half does. */
    if (memchr(r->p, 0, n)) return mp_fail(r, "map key at byte %zu contains a NUL byte", at);
    *kp = r->p;
    *kn = n;
    r->p += n;
    return 0;
}

static int read_map(mp_rd_t *r, size_t n, int depth, json_t **out) {
    if (depth > MP_MAX_DEPTH) return mp_fail(r, "nesting deeper than %d", MP_MAX_DEPTH);
    if (n > mp_left(r) / 2) return mp_need(r, n * 2);
    json_t *obj = json_object();
    for (size_t i = 0; i < n; i++) {
        const uint8_t *kp = NULL;
        size_t kn = 0, klen = 0;
        json_t *v;
        int rc = read_key(r, &kp, &kn);
        if (rc == 0) rc = read_value(r, depth, &v);
        if (rc < 0) {
            json_decref(obj);
            return rc;
        }
        char *tmp;
        const char *key = utf8_fix(kp, kn, &tmp, &klen);
        if (v)
            json_object_setn_new_nocheck(obj, key, klen, v);
        else
            json_object_deln(obj, key, klen); /* obj[key] = undefined */
        free(tmp);
    }
    if (json_is_true(json_object_get(obj, "_placeholder"))) {
        json_decref(obj);
        return mp_fail(r, "a map with \"_placeholder\": true is reserved for binary values");
    }
    *out = obj;
    return 0;
}

/* Reads one value whose container is at `depth`. *out = NULL: undefined. */
static int read_value(mp_rd_t *r, int depth, json_t **out) {
    int rc = mp_need(r, 1);
    if (rc < 0) return rc;
    size_t at = (size_t)(r->p - r->start), n;
    uint8_t b = *r->p++;
    if (b <= 0x7f) {
        *out = json_integer(b);
        return 0;
    }
    if (b >= 0xe0) {
        *out = json_integer((int8_t)b);
        return 0;
    }
    if (b <= 0x8f) return read_map(r, b & 0x0f, depth + 1, out);
    if (b <= 0x9f) return read_array(r, b & 0x0f, depth + 1, out);
    if (b <= 0xbf) {
        n = b & 0x1f;
        goto str;
    }
    switch (b) {
    case 0xc0: *out = json_null(); return 0;
    case 0xc2: *out = json_false(); return 0;
    case 0xc3: *out = json_true(); return 0;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        if ((rc = mp_len(r, (size_t)1 << (b - 0xc4), &n)) < 0) return rc;
        if ((rc = mp_need(r, n)) < 0) return rc;
        if ((rc = mp_bin_room(r)) < 0) return rc;
        *out = mp_bin(r, r->p, n);
        r->p += n;
        return 0;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        if ((rc = mp_len(r, (size_t)1 << (b - 0xc7), &n)) < 0) return rc;
        if ((rc = mp_need(r, 1)) < 0) return rc;
        return mp_ext(r, (int8_t)*r->p++, n, 0, depth, out);
    case 0xca:
    case 0xcb: {
        size_t w = b == 0xca ? 4 : 8;
        if ((rc = mp_need(r, w)) < 0) return rc;
        uint64_t bits = be_read(r->p, w);
        r->p += w;
        double v;
        if (w == 4) {
            float f;
            uint32_t b32 = (uint32_t)bits;
            memcpy(&f, &b32, 4);
            v = f;
        } else {
            memcpy(&v, &bits, 8);
        }
        *out = mp_number(v);
        return 0;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        size_t w = (size_t)1 << (b - 0xcc);
        if ((rc = mp_need(r, w)) < 0) return rc;
        uint64_t v = be_read(r->p, w);
        r->p += w;
        *out = v > INT64_MAX ? json_real((double)v) : json_integer((json_int_t)v);
        return 0;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t w = (size_t)1 << (b - 0xd0);
        if ((rc = mp_need(r, w)) < 0) return rc;
        uint64_t v = be_read(r->p, w);
        r->p += w;
        if (w < 8 && (v >> (w * 8 - 1))) v |= ~(uint64_t)0 << (w * 8); /* sign-extend */
        *out = json_integer((json_int_t)(int64_t)v);
        return 0;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        if ((rc = mp_need(r, 1)) < 0) return rc;
        return mp_ext(r, (int8_t)*r->p++, (size_t)1 << (b - 0xd4), 1, depth, out);
    case 0xd9:
    case 0xda:
    case 0xdb:
        if ((rc = mp_len(r, (size_t)1 << (b - 0xd9), &n)) < 0) return rc;
        goto str;
    case 0xdc:
    case 0xdd:
        if ((rc = mp_len(r, (size_t)2 << (b - 0xdc), &n)) < 0) return rc;
        return read_array(r, n, depth + 1, out);
    case 0xde:
    case 0xdf:
        if ((rc = mp_len(r, (size_t)2 << (b - 0xde), &n)) < 0) return rc;
        return read_map(r, n, depth + 1, out);
    default: /* 0xc1, never used */
        return mp_fail(r, "invalid type byte 0x%02x at byte %zu", b, at);
    }
str:
    if ((rc = mp_need(r, n)) < 0) return rc;
    *out = mp_string(r->p, n);
    r->p += n;
    return 0;
}


/* Renumbers placeholders in traversal order (the order the encoder writes
 * them) and moves their attachments from `old` to `neu`. Needed when a
 * duplicate key replaced a value holding binaries (their attachments are
 * left unreferenced) or replaced a value in place (nums out of order). */
static void renumber(json_t *v, ts_buf_t **old, ts_buf_t **neu, size_t *k) {
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) renumber(e, old, neu, k);
    } else if (json_is_object(v)) {
        if (json_is_true(json_object_get(v, "_placeholder"))) {
            /* ours: user maps that look like this were refused */
            size_t num = (size_t)json_integer_value(json_object_get(v, "num"));
            neu[*k] = old[num];
            old[num] = NULL;
            json_object_set_new(v, "num", json_integer((json_int_t)*k));
            (*k)++;
            return;
        }
        const char *key;
        json_t *e;
        json_object_foreach(v, key, e) renumber(e, old, neu, k);
    }
}

static void compact_attach(mp_rd_t *r, json_t *data) {
    if (r->nattach == 0) return;
    ts_buf_t **neu = ts_xcalloc(r->nattach, sizeof(*neu));
    size_t k = 0;
    renumber(data, r->attach, neu, &k);
    rd_drop_attach(r); /* the unreferenced ones; moved ones are NULL */
    free(r->attach);
    r->attach = neu;
    r->nattach = k;
    r->cap = k;
}

enum { K_TYPE, K_NSP, K_DATA, K_ID, K_OTHER, K_N };

static int key_slot(const uint8_t *k, size_t n) {
    static const char *const names[] = {"type", "nsp", "data", "id"};
    for (int i = 0; i < K_OTHER; i++)
        if (n == strlen(names[i]) && memcmp(k, names[i], n) == 0) return i;
    return K_OTHER;
}

/* socket.io-msgpack-parser's isDataValid. */
static int data_valid(int type, const json_t *data) {
    switch (type) {
    case TS_SIO_CONNECT: return !data || json_is_object(data);
    case TS_SIO_DISCONNECT: return !data;
    case TS_SIO_CONNECT_ERROR: return json_is_string(data) || json_is_object(data);
    default: return json_is_array(data);
    }
}

/* Reads the packet map into v[]; later duplicates win, as in JS. */
static int read_packet(mp_rd_t *r, json_t *v[K_N]) {
    int rc = mp_need(r, 1);
    if (rc < 0) return mp_fail(r, "empty message");
    uint8_t b = *r->p++;
    size_t n;
    if (b >= 0x80 && b <= 0x8f)
        n = b & 0x0f;
    else if (b == 0xde || b == 0xdf)
        rc = mp_len(r, (size_t)2 << (b - 0xde), &n);
    else
        return mp_fail(r, "a packet must be a map (type byte 0x%02x)", b);
    if (rc < 0) return rc;
    if (n > mp_left(r) / 2) return mp_need(r, n * 2);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *kp = NULL;
        size_t kn = 0;
        json_t *val;
        if ((rc = read_key(r, &kp, &kn)) < 0) return rc;
        int slot = key_slot(kp, kn);
        if (slot == K_DATA) rd_drop_attach(r);
        r->collect = slot == K_DATA;
        rc = read_value(r, 1, &val);
        r->collect = 0;
        if (rc < 0) return rc;
        if (slot == K_OTHER) {
            json_decref(val);
            continue;
        }
        json_decref(v[slot]);
        v[slot] = val;
    }
    if (r->p != r->end) return mp_fail(r, "%zu trailing bytes after the packet", mp_left(r));
    return 0;
}

int ts_sio__msgpack_decode(ts_sio_decoder_t *d, const uint8_t *p, size_t len,
                           ts_sio_packet_t *out) {
    mp_rd_t r = {.start = p, .p = p, .end = p + len, .d = d};
    json_t *v[K_N] = {NULL};
    memset(out, 0, sizeof(*out));
    out->id = TS_SIO_NO_ID;
    int rc = read_packet(&r, v);
    if (rc < 0) goto fail;

    json_int_t type = json_is_integer(v[K_TYPE]) ? json_integer_value(v[K_TYPE]) : -1;
    if (type < TS_SIO_CONNECT || type > TS_SIO_CONNECT_ERROR) {
        rc = mp_fail(&r, "invalid packet type");
        goto fail;
    }
    if (!json_is_string(v[K_NSP])) {
        rc = mp_fail(&r, "invalid namespace");
        goto fail;
    }
    const char *nsp = json_string_value(v[K_NSP]);
    if (strlen(nsp) != json_string_length(v[K_NSP])) {
        rc = mp_fail(&r, "namespace contains a NUL byte");
        goto fail;
    }
    if (!data_valid((int)type, v[K_DATA])) {
        rc = mp_fail(&r, "invalid payload for packet type %d", (int)type);
        goto fail;
    }
    if (v[K_ID] && !(json_is_integer(v[K_ID]) && json_integer_value(v[K_ID]) >= 0)) {
        rc = mp_fail(&r, "invalid packet id");
        goto fail;
    }

    compact_attach(&r, v[K_DATA]);
    out->type = (uint8_t)type;
    out->nsp = ts_xstrdup(nsp);
    out->id = v[K_ID] ? (int64_t)json_integer_value(v[K_ID]) : TS_SIO_NO_ID;
    out->data = v[K_DATA];
    v[K_DATA] = NULL;
    out->nattach = r.nattach;
    out->attach = r.attach;
    r.attach = NULL;
    r.nattach = 0;
    for (int i = 0; i < K_N; i++) json_decref(v[i]);

    rc = ts_sio__check_shape(d, out);
    if (rc < 0) {
        d->err = rc;
        json_decref(out->data);
        for (size_t i = 0; i < out->nattach; i++) ts_buf_unref(out->attach[i]);
        free(out->attach);
        free(out->nsp);
        memset(out, 0, sizeof(*out));
        out->id = TS_SIO_NO_ID;
        return rc;
    }
    return 1;

fail:
    for (int i = 0; i < K_N; i++) json_decref(v[i]);
    rd_drop_attach(&r);
    free(r.attach);
    return rc;
}

/* ---- encoding -------------------------------------------------------- */

static int sbuf_write(void *data, const char *buf, size_t len) {
    ts_sbuf_append(data, buf, len);
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
    msgpack_pack_str_with_body(pk, s, n);
}

/* notepack writes a JS number that is integral (and finite) as an int. */
static void pack_real(msgpack_packer *pk, double v) {
    if (v == floor(v)) {
        if (v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
            msgpack_pack_int64(pk, (int64_t)v);
            return;
        }
        if (v > 0 && v < 18446744073709551616.0) {
            msgpack_pack_uint64(pk, (uint64_t)v);
            return;
        }
        /* Beyond 64 bits notepack 2.2.0 writes garbage (cf 00..00 for 1e300);
         * we write the float64 instead. */
    }
    msgpack_pack_double(pk, v);
}

static int pack_value(msgpack_packer *pk, const ts_sio_packet_t *pkt, const json_t *v,
                      int depth) {
    if (depth > MP_MAX_ENC_DEPTH) return TS_EINVAL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (json_is_true(json_object_get(v, "_placeholder"))) {
            json_t *num = json_object_get(v, "num");
            double n = json_is_integer(num) ? (double)json_integer_value(num)
                       : json_is_real(num)  ? json_real_value(num)
                                            : -1;
            if (!(n >= 0 && n < (double)pkt->nattach && n == floor(n))) return TS_EINVAL;
            const ts_buf_t *b = pkt->attach[(size_t)n];
            if (!b) return TS_EINVAL;
            msgpack_pack_bin_with_body(pk, b->data, b->len);
            return 0;
        }
        const char *key;
        size_t klen;
        json_t *val;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_keylen_foreach((json_t *)v, key, klen, val) {
            pack_str(pk, key, klen);
            int rc = pack_value(pk, pkt, val, depth + 1);
            if (rc < 0) return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, val) {
            int rc = pack_value(pk, pkt, val, depth + 1);
            if (rc < 0) return rc;
        }
        return 0;
    }
    case JSON_STRING: pack_str(pk, json_string_value(v), json_string_length(v)); return 0;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(v)); return 0;
    case JSON_REAL: pack_real(pk, json_real_value(v)); return 0;
    case JSON_TRUE: msgpack_pack_true(pk); return 0;
    case JSON_FALSE: msgpack_pack_false(pk); return 0;
    case JSON_NULL: msgpack_pack_nil(pk); return 0;
    }
    return TS_EINVAL;
}

/* Key order is the insertion order of the objects socket.io 4.8 builds:
 * emit() {type, data, id?} then packet() adds nsp; an ack is
 * {id, type, data} + nsp; CONNECT {type, data} + nsp; DISCONNECT {type} +
 * nsp. (The "Invalid namespace" CONNECT_ERROR of client.js is built as
 * {type, nsp, data}; ours uses the socket middleware order {type, data}.) */
int ts_sio__msgpack_encode(const ts_sio_packet_t *pkt, ts_sio_encoded_t *out) {
    memset(out, 0, sizeof(*out));
    int type = pkt->type;
    if (type == TS_SIO_BINARY_EVENT) type = TS_SIO_EVENT;
    if (type == TS_SIO_BINARY_ACK) type = TS_SIO_ACK;
    if (type > TS_SIO_CONNECT_ERROR) return TS_EINVAL;
    int has_id = pkt->id != TS_SIO_NO_ID;
    if (has_id && pkt->id < 0) return TS_EINVAL;
    const char *nsp = pkt->nsp ? pkt->nsp : "/";

    ts_sbuf_t sb = TS_SBUF_INIT;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, sbuf_write);
    msgpack_pack_map(&pk, 2 + (pkt->data != NULL) + (size_t)has_id);
    if (has_id && type == TS_SIO_ACK) {
        pack_str(&pk, "id", 2);
        msgpack_pack_int64(&pk, pkt->id);
    }
    pack_str(&pk, "type", 4);
    msgpack_pack_int64(&pk, type);
    if (pkt->data) {
        pack_str(&pk, "data", 4);
        int rc = pack_value(&pk, pkt, pkt->data, 1);
        if (rc < 0) {
            ts_sbuf_free(&sb);
            return rc;
        }
    }
    if (has_id && type != TS_SIO_ACK) {
        pack_str(&pk, "id", 2);
        msgpack_pack_int64(&pk, pkt->id);
    }
    pack_str(&pk, "nsp", 3);
    pack_str(&pk, nsp, strlen(nsp));

    out->msgs = ts_xmalloc(sizeof(*out->msgs));
    out->msgs[0].buf = ts_sbuf_finish(&sb);
    out->msgs[0].binary = 1;
    out->n = 1;
    return 0;
}
