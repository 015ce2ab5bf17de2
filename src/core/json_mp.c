/* json_mp.c - canonical JSON text <-> msgpack, without a tree in between.
 * A broadcast between nodes travels as msgpack (@socket.io/redis-adapter's
 * classic format) while a node holds its events as canonical JSON text (the
 * relay fast path): going through a jansson tree each way cost four
 * conversions and about a third of a cross-node delivery's CPU
 * (docs/PERFORMANCE.md, "Across nodes"). Both directions here write the
 * very bytes the tree path writes (notepack's choices one way,
 * JSON.stringify's the other) and decline anything unusual, so the tree
 * path stays the reference: tests/core/test_json_mp.c and
 * fuzz/fuzz_adp_rmsg.c compare the two. */
#include "core/ts_json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"

#define MP_MAX_DEPTH 32             /* as canonical texts */
#define MP_SAFE_INT 9007199254740992ull /* 2^53 */

/* ---- writing msgpack as notepack does ---- */

static void put_be(ts_sbuf_t *o, uint8_t lead, uint64_t v, size_t n) {
    uint8_t b[9];
    b[0] = lead;
    for (size_t i = 0; i < n; i++) b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    ts_sbuf_append(o, b, n + 1);
}

/* The smallest encoding, unsigned for values >= 0 (msgpack_pack_int64's
 * and notepack's choice). */
static void mp_int(ts_sbuf_t *o, int64_t v) {
    if (v >= 0) {
        uint64_t u = (uint64_t)v;
        if (u < 0x80) ts_sbuf_putc(o, (char)u);
        else if (u <= 0xff) put_be(o, 0xcc, u, 1);
        else if (u <= 0xffff) put_be(o, 0xcd, u, 2);
        else if (u <= 0xffffffffu) put_be(o, 0xce, u, 4);
        else put_be(o, 0xcf, u, 8);
    } else if (v >= -32) {
        ts_sbuf_putc(o, (char)(uint8_t)(int8_t)v);
    } else if (v >= INT8_MIN) {
        put_be(o, 0xd0, (uint8_t)(int8_t)v, 1);
    } else if (v >= INT16_MIN) {
        put_be(o, 0xd1, (uint16_t)(int16_t)v, 2);
    } else if (v >= INT32_MIN) {
        put_be(o, 0xd2, (uint32_t)(int32_t)v, 4);
    } else {
        put_be(o, 0xd3, (uint64_t)v, 8);
    }
}

static void mp_str_hdr(ts_sbuf_t *o, size_t n) {
    if (n < 32) ts_sbuf_putc(o, (char)(0xa0 | n));
    else if (n <= 0xff) put_be(o, 0xd9, n, 1);
    else if (n <= 0xffff) put_be(o, 0xda, n, 2);
    else put_be(o, 0xdb, n, 4);
}

/* A container's header once its count is known: `at` is where 5 bytes were
 * reserved; the header takes what it needs and the body moves up. */
static void mp_patch_hdr(ts_sbuf_t *o, size_t at, int map, size_t n) {
    uint8_t h[5];
    size_t k;
    if (n < 16) h[0] = (uint8_t)((map ? 0x80 : 0x90) | n), k = 1;
    else if (n <= 0xffff) h[0] = map ? 0xde : 0xdc, h[1] = (uint8_t)(n >> 8), h[2] = (uint8_t)n, k = 3;
    else h[0] = map ? 0xdf : 0xdd, h[1] = (uint8_t)(n >> 24), h[2] = (uint8_t)(n >> 16),
         h[3] = (uint8_t)(n >> 8), h[4] = (uint8_t)n, k = 5;
    uint8_t *d = ts_sbuf_data(o);
    size_t len = ts_sbuf_len(o);
    memcpy(d + at, h, k);
    if (k < 5) {
        memmove(d + at + k, d + at + 5, len - at - 5);
        ts_sbuf_truncate(o, len - (5 - k));
    }
}

void ts_mp_put_head(ts_sbuf_t *o, ts_mp_container_t kind, size_t n) {
    int map = kind == TS_MP_MAP;
    if (n < 16) ts_sbuf_putc(o, (char)((map ? 0x80 : 0x90) | n));
    else if (n <= 0xffff) put_be(o, map ? 0xde : 0xdc, n, 2);
    else put_be(o, map ? 0xdf : 0xdd, n, 4);
}

void ts_mp_put_str(ts_sbuf_t *o, const void *s, size_t n) {
    mp_str_hdr(o, n);
    ts_sbuf_append(o, s, n);
}

void ts_mp_put_int(ts_sbuf_t *o, int64_t v) { mp_int(o, v); }

void ts_mp_put_bool(ts_sbuf_t *o, int v) { ts_sbuf_putc(o, (char)(v ? 0xc3 : 0xc2)); }

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The canonical string at p (quotes included, `len` bytes) as a msgpack str.
 * Returns 0, or -1 for an escape the tree path must judge (NUL, a lone
 * surrogate). */
static int tx_string(ts_sbuf_t *o, const uint8_t *p, size_t len, int plain) {
    if (plain) {
        mp_str_hdr(o, len - 2);
        ts_sbuf_append(o, p + 1, len - 2);
        return 0;
    }
    uint8_t stack[256], *buf = len <= sizeof stack ? stack : ts_xmalloc(len);
    size_t n = 0;
    int rc = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        uint8_t c = p[i];
        if (c != '\\') {
            buf[n++] = c;
            continue;
        }
        c = p[++i];
        switch (c) {
        case '"': case '\\': case '/': buf[n++] = c; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            int v = 0;
            for (int j = 1; j <= 4; j++) {
                int h = hexval(p[i + (size_t)j]);
                if (h < 0) { rc = -1; goto out; }
                v = v << 4 | h;
            }
            i += 4;
            /* canonical texts escape control characters only; anything else
             * (NUL, surrogates) goes the tree path's way */
            if (v == 0 || v >= 0x20) { rc = -1; goto out; }
            buf[n++] = (uint8_t)v;
            break;
        }
        default: rc = -1; goto out;
        }
    }
    mp_str_hdr(o, n);
    ts_sbuf_append(o, buf, n);
out:
    if (buf != stack) free(buf);
    return rc;
}

/* The length of the string at p (quotes included) in a text already checked
 * canonical; *plain: no escapes. 0 if it is not one. */
static size_t str_len(const uint8_t *p, size_t n, int *plain) {
    if (!n || p[0] != '"') return 0;
    return ts_json_skip_string(p, n, plain);
}

/* Writes the canonical value at p and returns its length, or 0 to decline. */
static size_t tx_value(ts_sbuf_t *o, const uint8_t *p, size_t n, unsigned depth) {
    if (!n) return 0;
    switch (p[0]) {
    case '"': {
        int plain;
        size_t k = str_len(p, n, &plain);
        if (!k || tx_string(o, p, k, plain) < 0) return 0;
        return k;
    }
    case 't': ts_sbuf_putc(o, (char)0xc3); return 4;
    case 'f': ts_sbuf_putc(o, (char)0xc2); return 5;
    case 'n': ts_sbuf_putc(o, (char)0xc0); return 4;
    case '[':
    case '{': {
        int map = p[0] == '{';
        if (depth >= MP_MAX_DEPTH) return 0;
        size_t at = ts_sbuf_len(o), i = 1, count = 0;
        ts_sbuf_extend(o, 5);
        uint8_t close = map ? '}' : ']';
        while (i < n && p[i] != close) {
            if (count && p[i++] != ',') return 0;
            if (map) {
                int plain;
                size_t k = i < n ? str_len(p + i, n - i, &plain) : 0;
                if (!k || tx_string(o, p + i, k, plain) < 0) return 0;
                i += k;
                if (i >= n || p[i++] != ':') return 0;
            }
            size_t k = tx_value(o, p + i, n - i, depth + 1);
            if (!k) return 0;
            i += k;
            count++;
        }
        if (i >= n) return 0;
        mp_patch_hdr(o, at, map, count);
        return i + 1;
    }
    default: break;
    }
    /* a number: canonical, so -?digits[.digits][e[+-]digits] */
    size_t k = 0;
    int real = 0;
    while (k < n && (p[k] == '-' || p[k] == '+' || p[k] == '.' || p[k] == 'e' || p[k] == 'E' ||
                     (p[k] >= '0' && p[k] <= '9'))) {
        if (p[k] == '.' || p[k] == 'e' || p[k] == 'E') real = 1;
        k++;
    }
    if (!k || k > 40) return 0;
    if (!real) { /* within +-2^53 (canonical): 16 digits at most, no strtoll */
        int neg = p[0] == '-';
        uint64_t u = 0;
        for (size_t i = (size_t)neg; i < k; i++) u = u * 10 + (uint64_t)(p[i] - '0');
        if (k - (size_t)neg > 16 || u > MP_SAFE_INT) return 0;
        mp_int(o, neg ? -(int64_t)u : (int64_t)u);
        return k;
    }
    char num[48];
    memcpy(num, p, k);
    num[k] = '\0';
    double d = strtod(num, NULL);
    /* notepack writes whole numbers as integers (mp_pack in rmsg.c too) */
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        mp_int(o, (int64_t)d);
    } else {
        uint64_t u;
        memcpy(&u, &d, 8);
        put_be(o, 0xcb, u, 8);
    }
    return k;
}

int ts_json_to_msgpack(ts_sbuf_t *out, ts_slice_t text) {
    if (!ts_json_is_canonical(text)) return TS_EINVAL;
    return ts_json_to_msgpack_canonical(out, text);
}

int ts_json_to_msgpack_canonical(ts_sbuf_t *out, ts_slice_t text) {
    size_t start = ts_sbuf_len(out);
    if (tx_value(out, text.p, text.len, 0) != text.len) {
        ts_sbuf_truncate(out, start);
        return TS_EINVAL;
    }
    return 0;
}

/* ---- reading msgpack into canonical text ---- */

typedef ts_mp_rd_t rd_t;

static int rd_be(rd_t *r, size_t n, uint64_t *v) {
    if ((size_t)(r->end - r->p) < n) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x = x << 8 | r->p[i];
    r->p += n;
    *v = x;
    return 0;
}

int ts_mp_rd_str(rd_t *r, const uint8_t **s, size_t *len) {
    if (r->p >= r->end) return -1;
    uint8_t c = *r->p++;
    uint64_t n;
    if (c >= 0xa0 && c <= 0xbf) n = c & 0x1f;
    else if (c >= 0xd9 && c <= 0xdb) {
        if (rd_be(r, (size_t)1 << (c - 0xd9), &n) < 0) return -1;
    } else return -1;
    if (n > (uint64_t)(r->end - r->p)) return -1;
    *s = r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

int ts_mp_rd_head(rd_t *r, uint64_t *n) {
    if (r->p >= r->end) return -1;
    uint8_t c = *r->p++;
    if (c >= 0x80 && c <= 0x9f) {
        *n = c & 0x0f;
        return c < 0x90;
    }
    if (c == 0xdc || c == 0xdd) return rd_be(r, c == 0xdc ? 2 : 4, n) < 0 ? -1 : 0;
    if (c == 0xde || c == 0xdf) return rd_be(r, c == 0xde ? 2 : 4, n) < 0 ? -1 : 1;
    return -1;
}

int ts_mp_rd_skip(rd_t *r) {
    /* values still to pass: each takes at least a byte, so a count beyond
     * the bytes left is a cut value (and `left` cannot overflow) */
    uint64_t left = 1, n;
    while (left) {
        if (left > (uint64_t)(r->end - r->p)) return -1;
        left--;
        uint8_t c = *r->p++;
        uint64_t skip = 0; /* bytes after the head */
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) continue;
        if (c <= 0x8f) { left += 2 * (uint64_t)(c & 0x0f); continue; }
        if (c <= 0x9f) { left += c & 0x0f; continue; }
        if (c <= 0xbf) {
            skip = c & 0x1f;
        } else if (c >= 0xc4 && c <= 0xc9) { /* bin, then ext (its type byte too): 8, 16, 32 */
            if (rd_be(r, (size_t)1 << ((c - 0xc4) % 3), &skip) < 0) return -1;
            skip += c >= 0xc7;
        } else if (c == 0xca || c == 0xcb) {
            skip = c == 0xca ? 4 : 8;
        } else if (c >= 0xcc && c <= 0xd3) { /* uint, int: 8, 16, 32, 64 */
            skip = (uint64_t)1 << ((c - 0xcc) & 3);
        } else if (c >= 0xd4 && c <= 0xd8) { /* fixext 1..16, and its type */
            skip = ((uint64_t)1 << (c - 0xd4)) + 1;
        } else if (c >= 0xd9 && c <= 0xdb) { /* str 8, 16, 32 */
            if (rd_be(r, (size_t)1 << (c - 0xd9), &skip) < 0) return -1;
        } else if (c >= 0xdc && c <= 0xdf) { /* array, map: 16, 32 */
            if (rd_be(r, c & 1 ? 4 : 2, &n) < 0) return -1;
            left += c >= 0xde ? 2 * n : n;
            continue;
        } else {
            return -1; /* 0xc1: never used */
        }
        if (skip > (uint64_t)(r->end - r->p)) return -1;
        r->p += skip;
    }
    return 0;
}

/* JS "array index" keys ("0".."4294967294") come first in an object;
 * declined, as the tree path orders them. */
static int is_index_key(const uint8_t *k, size_t n) {
    if (!n || n > 10 || (k[0] == '0' && n > 1)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9') return 0;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    return v < 0xffffffffull;
}

/* -1 for what is not UTF-8 without NUL: the tree path repairs or refuses */
static int put_text_string(ts_sbuf_t *o, const uint8_t *s, size_t n) {
    return ts_json_string_checked(o, s, n);
}

/* The tree path makes whole doubles integers and ts_json_dump writes
 * integers beyond 2^53 as the nearest double: either way, what JS's
 * Number::toString writes for the double. */
static int put_number(ts_sbuf_t *o, double d) {
    if (!isfinite(d)) return -1; /* null in the tree path */
    char buf[TS_JSON_REAL_MAX];
    ts_sbuf_append(o, buf, ts_json_fmt_real(buf, d));
    return 0;
}

static int from_value(ts_sbuf_t *o, rd_t *r, unsigned depth);

static int from_container(ts_sbuf_t *o, rd_t *r, uint64_t n, int map, unsigned depth) {
    if (depth >= MP_MAX_DEPTH || n > (uint64_t)(r->end - r->p)) return -1;
    /* keys seen, for duplicates (JS keeps the last in the first's place):
     * declined; objects of more than 32 keys too, as canonical texts */
    struct { const uint8_t *p; size_t n; } keys[32];
    if (map && n > 32) return -1;
    ts_sbuf_putc(o, map ? '{' : '[');
    for (uint64_t i = 0; i < n; i++) {
        if (i) ts_sbuf_putc(o, ',');
        if (map) {
            const uint8_t *k;
            size_t kl;
            if (ts_mp_rd_str(r, &k, &kl) < 0 || is_index_key(k, kl)) return -1;
            if (kl == 12 && memcmp(k, "_placeholder", 12) == 0) return -1;
            for (uint64_t j = 0; j < i; j++)
                if (keys[j].n == kl && memcmp(keys[j].p, k, kl) == 0) return -1;
            keys[i].p = k, keys[i].n = kl;
            if (put_text_string(o, k, kl) < 0) return -1;
            ts_sbuf_putc(o, ':');
        }
        if (from_value(o, r, depth + 1) < 0) return -1;
    }
    ts_sbuf_putc(o, map ? '}' : ']');
    return 0;
}

static int from_value(ts_sbuf_t *o, rd_t *r, unsigned depth) {
    if (r->p >= r->end) return -1;
    uint8_t c = *r->p;
    uint64_t n;
    if (c < 0x80 || c >= 0xe0) {
        r->p++;
        ts_sbuf_put_i64(o, c < 0x80 ? (int64_t)c : (int64_t)(int8_t)c);
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) goto str;
    r->p++;
    if (c < 0x90) return from_container(o, r, c & 0x0f, 1, depth);
    if (c < 0xa0) return from_container(o, r, c & 0x0f, 0, depth);
    switch (c) {
    case 0xc0: ts_sbuf_append(o, "null", 4); return 0;
    case 0xc2: ts_sbuf_append(o, "false", 5); return 0;
    case 0xc3: ts_sbuf_append(o, "true", 4); return 0;
    case 0xca: {
        if (rd_be(r, 4, &n) < 0) return -1;
        uint32_t u = (uint32_t)n;
        float f;
        memcpy(&f, &u, 4);
        return put_number(o, f);
    }
    case 0xcb: {
        if (rd_be(r, 8, &n) < 0) return -1;
        double d;
        memcpy(&d, &n, 8);
        return put_number(o, d);
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (rd_be(r, (size_t)1 << (c - 0xcc), &n) < 0 || n > MP_SAFE_INT) return -1;
        ts_sbuf_put_i64(o, (int64_t)n);
        return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        size_t w = (size_t)1 << (c - 0xd0);
        if (rd_be(r, w, &n) < 0) return -1;
        int64_t v = w == 8 ? (int64_t)n : (int64_t)(n ^ (1ull << (w * 8 - 1))) - (1ll << (w * 8 - 1));
        if (v < -(int64_t)MP_SAFE_INT || v > (int64_t)MP_SAFE_INT) return -1;
        ts_sbuf_put_i64(o, v);
        return 0;
    }
    case 0xd9: case 0xda: case 0xdb: r->p--; goto str;
    case 0xdc: case 0xdd:
        if (rd_be(r, c == 0xdc ? 2 : 4, &n) < 0) return -1;
        return from_container(o, r, n, 0, depth);
    case 0xde: case 0xdf:
        if (rd_be(r, c == 0xde ? 2 : 4, &n) < 0) return -1;
        return from_container(o, r, n, 1, depth);
    default: return -1; /* bin, ext (dates, undefined), reserved: the tree path's */
    }
str:;
    const uint8_t *s;
    size_t len;
    if (ts_mp_rd_str(r, &s, &len) < 0) return -1;
    return put_text_string(o, s, len);
}

size_t ts_json_from_msgpack(ts_sbuf_t *out, const uint8_t *p, size_t n) {
    return ts_json_from_msgpack_at(out, p, n, 0);
}

size_t ts_json_from_msgpack_at(ts_sbuf_t *out, const uint8_t *p, size_t n, unsigned depth) {
    size_t start = ts_sbuf_len(out);
    rd_t r = {p, p + n};
    if (from_value(out, &r, depth) < 0) {
        ts_sbuf_truncate(out, start);
        return 0;
    }
    return (size_t)(r.p - p);
}
