/* json.c - canonical JSON, shared by the Socket.IO codec and the /session
 * layer: a writer over jansson trees that produces JSON byte for byte as
 * JSON.stringify writes it (our own serializer: jansson's dumps differ in
 * numbers, escapes and key order), and a scanner that recognizes texts
 * already in that form (canonical) by one scan, without a jansson tree.
 *
 * The scanner only ever says "yes, canonical" or "not for me": any input it
 * does not accept (whitespace, other escapes, 1.0, -0, big integers,
 * duplicate keys, anything invalid) goes to jansson, whose answers and
 * errors stay the reference. So it may be strict, never lax:
 * fuzz/fuzz_sio_packet.c checks that every message the relay fast path
 * accepts decodes the same way through both paths.
 *
 * The same scan also makes JSON parsing cheaper where a tree is needed
 * (ts_json_loadb): jansson's lexer costs about 20 ns a byte (7 us for
 * a /session CONNECT's auth object), building the same tree from a text
 * known to be canonical about a twentieth of that. */
#include "core/ts_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"

#define CANON_MAX_DEPTH 32 /* deeper: not canonical (jansson's limit is 2048) */
#define CANON_MAX_KEYS 32  /* per object, for the duplicate check */

#define TS_JS_SAFE_INT 9007199254740992LL /* 2^53: every integer up to it is a double */

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* Eight bytes at a time ("Bit Twiddling Hacks", haszero/hasless): exact as
 * to whether such a byte is in the word, not which one. A relayed entry's
 * strings went through two bytewise loops per node (the UTF-8 check and
 * the escaping copy below: ~10 instructions a byte, with a call per piece
 * copied; callgrind, docs/PERFORMANCE.md "Across nodes"). */
#define W_ONES UINT64_C(0x0101010101010101)
#define W_HIGHS UINT64_C(0x8080808080808080)
static inline uint64_t word_at(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline uint64_t has_zero(uint64_t v) { return (v - W_ONES) & ~v & W_HIGHS; }
/* a control character, a quote or a backslash */
static inline uint64_t has_special(uint64_t v) {
    return ((v - W_ONES * 0x20) & ~v & W_HIGHS) | has_zero(v ^ (W_ONES * '"')) |
           has_zero(v ^ (W_ONES * '\\'));
}

/* ---- UTF-8 ---- */

size_t ts_json_utf8_seq(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    size_t k;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) k = 1, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) k = 2, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) k = 3, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
        if ((p[j] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k + 1;
}

int ts_json_utf8_no_nul(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) { /* ASCII without NUL, a word at a time */
            uint64_t v = word_at(p + i);
            if (!(v & W_HIGHS) && !has_zero(v)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = p[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = ts_json_utf8_seq(p + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* ---- writer: JSON as JSON.stringify writes it ---- */

void ts_json_string(ts_sbuf_t *s, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const uint8_t *u = (const uint8_t *)str;
    size_t plain = 0; /* bytes before the first one to escape */
    while (plain + 8 <= n && !has_special(word_at(u + plain))) plain += 8;
    while (plain < n && u[plain] >= 0x20 && u[plain] != '"' && u[plain] != '\\') plain++;
    if (plain == n) { /* the common case: one copy between the quotes */
        uint8_t *d = ts_sbuf_extend(s, n + 2);
        d[0] = '"';
        memcpy(d + 1, str, n);
        d[n + 1] = '"';
        return;
    }
    ts_sbuf_putc(s, '"');
    size_t run = plain; /* bytes copied as they are, flushed in one append */
    for (size_t i = plain; i < n; i++) {
        uint8_t c = (uint8_t)str[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        if (run) ts_sbuf_append(s, str + i - run, run);
        run = 0;
        char esc[6] = {'\\', 0};
        size_t k = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default: /* JS writes the other control characters as \u00xx, lower case */
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            k = 6;
        }
        ts_sbuf_append(s, esc, k);
    }
    if (run) ts_sbuf_append(s, str + n - run, run);
    ts_sbuf_putc(s, '"');
}

int ts_json_string_checked(ts_sbuf_t *s, const uint8_t *p, size_t n) {
    /* printable ASCII with nothing to escape (nearly every string between
     * nodes): valid as it is, one scan and one copy instead of a UTF-8
     * check and an escaping scan */
    size_t i = 0;
    while (i + 8 <= n && !((word_at(p + i) & W_HIGHS) | has_special(word_at(p + i)))) i += 8;
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') i++;
    if (i == n) {
        uint8_t *d = ts_sbuf_extend(s, n + 2);
        d[0] = '"';
        memcpy(d + 1, p, n);
        d[n + 1] = '"';
        return 0;
    }
    if (!ts_json_utf8_no_nul(p, n)) return -1;
    ts_json_string(s, (const char *)p, n);
    return 0;
}

/* Number::toString of ECMAScript: the shortest digits that read back as the
 * same double (found by trying 1..17 significant digits; glibc's printf
 * rounds correctly), laid out as plain digits for exponents -7 < e < 21
 * and as d.ddde+x otherwise. -0 prints "0"; jansson never holds NaN/inf. */
size_t ts_json_fmt_real(char out[TS_JSON_REAL_MAX], double v) {
    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        return 4;
    }
    if (v == 0) {
        out[0] = '0';
        return 1;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v) break;
    }
    char digits[24];
    size_t k = 0, o = 0;
    const char *q = buf;
    if (*q == '-') {
        out[o++] = '-';
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[k++] = *q;
    while (k > 1 && digits[k - 1] == '0') k--;
    int n = atoi(q + 1) + 1; /* the value is 0.digits x 10^n */
    if ((int)k <= n && n <= 21) {
        memcpy(out + o, digits, k), o += k;
        for (int i = (int)k; i < n; i++) out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, digits, (size_t)n), o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, digits + n, k - (size_t)n), o += k - (size_t)n;
    } else if (-6 < n && n <= 0) {
        out[o++] = '0', out[o++] = '.';
        for (int i = n; i < 0; i++) out[o++] = '0';
        memcpy(out + o, digits, k), o += k;
    } else {
        out[o++] = digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, k - 1), o += k - 1;
        }
        o += (size_t)snprintf(out + o, TS_JSON_REAL_MAX - o, "e%c%d", n - 1 >= 0 ? '+' : '-',
                              abs(n - 1));
    }
    return o;
}

static void dump_real(ts_sbuf_t *s, double v) {
    char buf[TS_JSON_REAL_MAX];
    ts_sbuf_append(s, buf, ts_json_fmt_real(buf, v));
}

/* JS objects list "array index" keys (canonical integers 0..2^32-2) first,
 * in ascending order, then the other keys in insertion order; JSON.stringify
 * follows that order, so JSON.parse('{"b":1,"1":2}') is written back as
 * {"1":2,"b":1}. */
static int index_key(const char *key, uint32_t *out) {
    if (!is_digit((uint8_t)key[0]) || (key[0] == '0' && key[1])) return 0;
    uint64_t v = 0;
    for (const char *c = key; *c; c++) {
        if (!is_digit((uint8_t)*c)) return 0;
        v = v * 10 + (uint64_t)(*c - '0');
        if (v > 4294967294u) return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

typedef struct idx_key {
    uint32_t idx;
    const char *key;
    json_t *val;
} idx_key_t;

static int cmp_idx(const void *a, const void *b) {
    uint32_t x = ((const idx_key_t *)a)->idx, y = ((const idx_key_t *)b)->idx;
    return (x > y) - (x < y);
}

static void dump_value(ts_sbuf_t *s, json_t *v);


static void dump_member(ts_sbuf_t *s, int *first, const char *key, json_t *val) {
    if (!*first) ts_sbuf_putc(s, ',');
    *first = 0;
    ts_json_string(s, key, strlen(key));
    ts_sbuf_putc(s, ':');
    dump_value(s, val);
}

static void dump_object(ts_sbuf_t *s, json_t *v) {
    const char *key;
    json_t *val;
    size_t nidx = 0;
    uint32_t idx;
    json_object_foreach(v, key, val) {
        if (index_key(key, &idx)) nidx++;
    }
    int first = 1;
    ts_sbuf_putc(s, '{');
    if (nidx) {
        idx_key_t *keys = ts_xmalloc(nidx * sizeof *keys);
        size_t i = 0;
        json_object_foreach(v, key, val) {
            if (index_key(key, &idx)) keys[i++] = (idx_key_t){idx, key, val};
        }
        qsort(keys, nidx, sizeof *keys, cmp_idx);
        for (i = 0; i < nidx; i++) dump_member(s, &first, keys[i].key, keys[i].val);
        free(keys);
    }
    json_object_foreach(v, key, val) {
        if (!nidx || !index_key(key, &idx)) dump_member(s, &first, key, val);
    }
    ts_sbuf_putc(s, '}');
}

static void dump_value(ts_sbuf_t *s, json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        dump_object(s, v);
        break;
    case JSON_ARRAY: {
        ts_sbuf_putc(s, '[');
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (i) ts_sbuf_putc(s, ',');
            dump_value(s, e);
        }
        ts_sbuf_putc(s, ']');
        break;
    }
    case JSON_STRING:
        ts_json_string(s, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        /* JS numbers are doubles: beyond 2^53 JSON.stringify writes the
         * nearest double, and so do we, or a relayed 1234000001930489374
         * would reach JS clients differently than from a Node server. */
        json_int_t i = json_integer_value(v);
        if (i > TS_JS_SAFE_INT || i < -TS_JS_SAFE_INT)
            dump_real(s, (double)i);
        else
            ts_sbuf_put_i64(s, (int64_t)i); /* not printf: per number, per event */
        break;
    }
    case JSON_REAL:
        dump_real(s, json_real_value(v));
        break;
    case JSON_TRUE:
        ts_sbuf_append_str(s, "true");
        break;
    case JSON_FALSE:
        ts_sbuf_append_str(s, "false");
        break;
    case JSON_NULL:
        ts_sbuf_append_str(s, "null");
        break;
    }
}

void ts_json_dump(ts_sbuf_t *out, json_t *v) { dump_value(out, v); }

/* ---- canonical texts ---- */

/* ASCII but the controls, '"' and '\\': the bytes a string takes as they are
 * (the common case, skipped by one table lookup each). */
#define PL(c) ((c) >= 0x20 && (c) < 0x80 && (c) != '"' && (c) != '\\')
#define PL4(c) PL(c), PL(c + 1), PL(c + 2), PL(c + 3)
#define PL16(c) PL4(c), PL4(c + 4), PL4(c + 8), PL4(c + 12)
static const uint8_t plain_byte[256] = {PL16(0x00), PL16(0x10), PL16(0x20), PL16(0x30),
                                        PL16(0x40), PL16(0x50), PL16(0x60), PL16(0x70)};
#undef PL16
#undef PL4
#undef PL

/* A string at p[0] == '"'. Returns its length with the quotes, or 0 if it is
 * not canonical. *plain: it has no escapes. JSON.stringify escapes exactly
 * '"', '\\' and the controls: \b \f \n \r \t, the others as \u00xx (lower
 * case); everything else (including '/' and non-ASCII) stays as it is.
 * (Lone surrogates, which it writes as \udxxx, are refused by jansson
 * anyway.) */
static size_t canon_string(const uint8_t *p, size_t n, int *plain) {
    int pl = 1;
    for (size_t i = 1; i < n;) {
        while (i < n && plain_byte[p[i]]) i++;
        if (i == n) break;
        uint8_t c = p[i];
        if (c == '"') {
            *plain = pl;
            return i + 1;
        }
        if (c < 0x20) return 0;
        if (c < 0x80 && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = ts_json_utf8_seq(p + i, n - i);
            if (!k) return 0;
            i += k;
            continue;
        }
        pl = 0;
        if (n - i < 2) return 0;
        uint8_t e = p[i + 1];
        if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
            i += 2;
            continue;
        }
        if (e != 'u' || n - i < 6 || p[i + 2] != '0' || p[i + 3] != '0') return 0;
        uint8_t hi = p[i + 4], lo = p[i + 5];
        if (hi != '0' && hi != '1') return 0;
        int lv = is_digit(lo) ? lo - '0' : (lo >= 'a' && lo <= 'f') ? lo - 'a' + 10 : -1;
        if (lv < 0) return 0;
        int v = (hi - '0') << 4 | lv;
        if (v == '\b' || v == '\t' || v == '\n' || v == '\f' || v == '\r') return 0;
        i += 6;
    }
    return 0;
}

/* A number: integers as digits up to 2^53 (jansson keeps them as integers
 * and ts_json_dump writes them back as they are), other numbers
 * only if they are already the shortest form ECMAScript would write. */
static size_t canon_number(const uint8_t *p, size_t n) {
    size_t i = p[0] == '-';
    if (i >= n || !is_digit(p[i])) return 0;
    size_t int_start = i;
    if (p[i] == '0')
        i++;
    else
        while (i < n && is_digit(p[i])) i++;
    int integral = 1;
    if (i < n && p[i] == '.') {
        integral = 0;
        size_t d = ++i;
        while (i < n && is_digit(p[i])) i++;
        if (i == d) return 0;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        integral = 0;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        size_t d = i;
        while (i < n && is_digit(p[i])) i++;
        if (i == d) return 0;
    }
    if (integral) {
        size_t nd = i - int_start;
        if (nd > 16) return 0;
        uint64_t v = 0;
        for (size_t k = int_start; k < i; k++) v = v * 10 + (uint64_t)(p[k] - '0');
        if (v > (uint64_t)TS_JS_SAFE_INT) return 0;
        if (v == 0 && p[0] == '-') return 0; /* JSON.stringify(-0) is "0" */
        return i;
    }
    char tmp[TS_JSON_REAL_MAX], out[TS_JSON_REAL_MAX];
    if (i >= sizeof tmp) return 0;
    memcpy(tmp, p, i);
    tmp[i] = '\0';
    double v = strtod(tmp, NULL);
    if (!isfinite(v)) return 0;
    size_t m = ts_json_fmt_real(out, v);
    return m == i && memcmp(out, p, i) == 0 ? i : 0;
}

/* JS lists "array index" keys first (see dump_object above); the scan
 * refuses them rather than checking their order. */
static int is_index_key(const uint8_t *k, size_t n) {
    if (n == 0 || n > 10 || !is_digit(k[0]) || (k[0] == '0' && n > 1)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(k[i])) return 0;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    return v <= 4294967294u;
}

static size_t canon_value(const uint8_t *p, size_t n, unsigned depth);

static size_t canon_array(const uint8_t *p, size_t n, unsigned depth) {
    size_t i = 1;
    if (i < n && p[i] == ']') return 2;
    for (;;) {
        size_t k = canon_value(p + i, n - i, depth + 1);
        if (!k) return 0;
        i += k;
        if (i >= n) return 0;
        if (p[i] == ']') return i + 1;
        if (p[i] != ',') return 0;
        i++;
    }
}

static size_t canon_object(const uint8_t *p, size_t n, unsigned depth) {
    ts_slice_t keys[CANON_MAX_KEYS];
    size_t nkeys = 0, i = 1;
    if (i < n && p[i] == '}') return 2;
    for (;;) {
        int plain;
        if (i >= n || p[i] != '"' || nkeys == CANON_MAX_KEYS) return 0;
        size_t k = canon_string(p + i, n - i, &plain);
        /* keys with escapes (jansson refuses NUL in them) are left to
         * jansson; so are "_placeholder" keys, which stand for binary values
         * in Socket.IO packets (the sio decoder checks them on a tree) */
        if (!k || !plain) return 0;
        ts_slice_t key = {p + i + 1, k - 2};
        if (is_index_key(key.p, key.len) || ts_slice_eq_str(key, "_placeholder")) return 0;
        /* canonical texts are equal exactly when the strings are */
        for (size_t j = 0; j < nkeys; j++)
            if (ts_slice_eq(keys[j], key)) return 0;
        keys[nkeys++] = key;
        i += k;
        if (i >= n || p[i] != ':') return 0;
        i++;
        k = canon_value(p + i, n - i, depth + 1);
        if (!k) return 0;
        i += k;
        if (i >= n) return 0;
        if (p[i] == '}') return i + 1;
        if (p[i] != ',') return 0;
        i++;
    }
}

static size_t lit(const uint8_t *p, size_t n, const char *word, size_t wl) {
    return n >= wl && memcmp(p, word, wl) == 0 ? wl : 0;
}

/* Length of the canonical value at p, or 0. */
static size_t canon_value(const uint8_t *p, size_t n, unsigned depth) {
    if (n == 0 || depth > CANON_MAX_DEPTH) return 0;
    int plain;
    switch (p[0]) {
    case '"': return canon_string(p, n, &plain);
    case '{': return canon_object(p, n, depth);
    case '[': return canon_array(p, n, depth);
    case 't': return lit(p, n, "true", 4);
    case 'f': return lit(p, n, "false", 5);
    case 'n': return lit(p, n, "null", 4);
    default: return p[0] == '-' || is_digit(p[0]) ? canon_number(p, n) : 0;
    }
}

size_t ts_json_canonical_len(const uint8_t *p, size_t n) { return canon_value(p, n, 1); }

size_t ts_json_canonical_len_at(const uint8_t *p, size_t n, unsigned depth) {
    return canon_value(p, n, depth);
}

size_t ts_json_canonical_string_len(const uint8_t *p, size_t n, int *plain) {
    return n && p[0] == '"' ? canon_string(p, n, plain) : 0;
}

/* A string is scanned a word at a time for its first quote or backslash
 * (the lowest byte has_zero flags is exact), and past its first 64 bytes
 * with memchr, which glibc does 32 bytes at a time: a relayed envelope's
 * strings are mostly short keys and one long body, and a cross-node entry
 * is walked several times (callgrind: the bytewise loop was ~9 % of a
 * cross-node delivery's instructions; docs/PERFORMANCE.md "Across nodes"). */
#define SKIP_WORDS 64

static inline size_t skip_string(const uint8_t *p, size_t n, int *plain) {
    size_t i = 1;
    *plain = 1;
    for (;;) {
        if (i + 8 <= n) {
            uint64_t v = word_at(p + i);
            uint64_t m = has_zero(v ^ (W_ONES * '"')) | has_zero(v ^ (W_ONES * '\\'));
            if (!m) {
                i += 8;
                if (i >= SKIP_WORDS) break;
                continue;
            }
            i += (size_t)__builtin_ctzll(m) / 8;
        } else {
            while (i < n && p[i] != '"' && p[i] != '\\') i++;
            if (i >= n) return 0;
        }
        if (p[i] == '"') return i + 1;
        *plain = 0; /* a backslash: it and what it escapes */
        i += 2;
        if (i >= SKIP_WORDS) break;
    }
    while (i < n) {
        const uint8_t *q = memchr(p + i, '"', n - i);
        if (!q) return 0;
        size_t j = (size_t)(q - p);
        if (memchr(p + i, '\\', j - i)) {
            *plain = 0;
            /* escaped if an odd run of backslashes is before it (p[0] is
             * the opening quote: the run stops there) */
            size_t b = 0;
            while (p[j - 1 - b] == '\\') b++;
            if (b & 1) {
                i = j + 1;
                continue;
            }
        }
        return j + 1;
    }
    return 0;
}

size_t ts_json_skip_string(const uint8_t *p, size_t n, int *plain) { return skip_string(p, n, plain); }

/* No checks: brackets are counted outside strings, a string ends at its
 * first unescaped quote, a scalar at what ends a value. */
size_t ts_json_skip(const uint8_t *p, size_t n) {
    size_t i = 0;
    unsigned depth = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == '"') {
            int plain;
            size_t k = skip_string(p + i, n - i, &plain);
            if (!k) return 0;
            i += k;
        } else if (c == '{' || c == '[') {
            depth++, i++;
            continue;
        } else if (c == '}' || c == ']') {
            if (!depth) return i; /* a scalar ended by what encloses it */
            depth--, i++;
        } else if (!depth && (c == ',' || c == ':')) {
            return i;
        } else {
            i++;
            continue;
        }
        if (!depth) return i; /* a string or a container is complete */
    }
    return depth ? 0 : i;
}

int ts_json_is_canonical(ts_slice_t text) {
    return text.len > 0 && canon_value(text.p, text.len, 1) == text.len;
}

/* ---- building a jansson tree from a canonical text ---- */

/* Each build_* is given a value that canon_value accepted, so the shape is
 * known good; it returns the value (and its length in *used), or NULL for
 * the one thing the scan allows and the caller's flags may not: a NUL
 * inside a string without JSON_ALLOW_NUL. */
static json_t *build_value(const uint8_t *p, size_t n, size_t flags, size_t *used);

static int hexval(uint8_t c) { return is_digit(c) ? c - '0' : c - 'a' + 10; }

static json_t *build_string(const uint8_t *p, size_t n, size_t flags, size_t *used) {
    /* Already checked: without a backslash, the first quote ends it. */
    const uint8_t *q = memchr(p + 1, '"', n - 1);
    if (!memchr(p + 1, '\\', (size_t)(q - p) - 1)) {
        *used = (size_t)(q - p) + 1;
        return json_stringn_nocheck((const char *)p + 1, *used - 2);
    }
    int plain;
    size_t k = canon_string(p, n, &plain);
    *used = k;
    /* unescaping never lengthens */
    char stack[256];
    char *out = k <= sizeof stack ? stack : ts_xmalloc(k);
    size_t o = 0;
    for (size_t i = 1; i < k - 1;) {
        if (p[i] != '\\') {
            out[o++] = (char)p[i++];
            continue;
        }
        uint8_t e = p[i + 1];
        switch (e) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': out[o++] = (char)(hexval(p[i + 4]) << 4 | hexval(p[i + 5])); break;
        default: out[o++] = (char)e; break; /* '"' or '\\' */
        }
        i += e == 'u' ? 6 : 2;
    }
    json_t *v = NULL;
    if ((flags & JSON_ALLOW_NUL) || !memchr(out, '\0', o)) v = json_stringn_nocheck(out, o);
    if (out != stack) free(out);
    return v;
}

static json_t *build_number(const uint8_t *p, size_t n, size_t flags, size_t *used) {
    size_t k = canon_number(p, n);
    *used = k;
    /* (canonical numbers write their exponent with 'e', never 'E') */
    if (!memchr(p, '.', k) && !memchr(p, 'e', k)) {
        int neg = p[0] == '-';
        json_int_t v = 0;
        for (size_t i = (size_t)neg; i < k; i++) v = v * 10 + (p[i] - '0');
        if (neg) v = -v;
        /* within +-2^53 (canon_number), so a double holds it exactly */
        return flags & JSON_DECODE_INT_AS_REAL ? json_real((double)v) : json_integer(v);
    }
    char tmp[TS_JSON_REAL_MAX];
    memcpy(tmp, p, k); /* k < TS_JSON_REAL_MAX: canon_number checked it */
    tmp[k] = '\0';
    return json_real(strtod(tmp, NULL));
}

static json_t *build_array(const uint8_t *p, size_t n, size_t flags, size_t *used) {
    json_t *a = json_array();
    size_t i = 1;
    if (p[i] != ']') {
        for (;;) {
            size_t k;
            json_t *v = build_value(p + i, n - i, flags, &k);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
            i += k;
            if (p[i] == ']') break;
            i++; /* ',' */
        }
    }
    *used = i + 1;
    return a;
}

static json_t *build_object(const uint8_t *p, size_t n, size_t flags, size_t *used) {
    json_t *o = json_object();
    size_t i = 1;
    if (p[i] != '}') {
        for (;;) {
            /* keys are plain (no escapes), distinct, without NUL */
            const uint8_t *q = memchr(p + i + 1, '"', n - i - 1);
            const char *key = (const char *)p + i + 1;
            size_t klen = (size_t)(q - p) - i - 1, k;
            i += klen + 3; /* the quotes and ':' */
            json_t *v = build_value(p + i, n - i, flags, &k);
            if (!v) {
                json_decref(o);
                return NULL;
            }
            json_object_setn_new_nocheck(o, key, klen, v);
            i += k;
            if (p[i] == '}') break;
            i++; /* ',' */
        }
    }
    *used = i + 1;
    return o;
}

static json_t *build_value(const uint8_t *p, size_t n, size_t flags, size_t *used) {
    switch (p[0]) {
    case '"': return build_string(p, n, flags, used);
    case '{': return build_object(p, n, flags, used);
    case '[': return build_array(p, n, flags, used);
    case 't': *used = 4; return json_true();
    case 'f': *used = 5; return json_false();
    case 'n': *used = 4; return json_null();
    default: return build_number(p, n, flags, used);
    }
}

json_t *ts_json_loadb(const uint8_t *p, size_t n, size_t flags, json_error_t *err) {
    /* Without JSON_DECODE_ANY jansson wants an object or an array on top; the
     * other flags this fast path knows are JSON_ALLOW_NUL and INT_AS_REAL,
     * and duplicates, which canonical texts never have. */
    const size_t known = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL |
                         JSON_REJECT_DUPLICATES;
    if (n && !(flags & ~known) && ((flags & JSON_DECODE_ANY) || p[0] == '{' || p[0] == '[') &&
        canon_value(p, n, 1) == n) {
        size_t used;
        json_t *v = build_value(p, n, flags, &used);
        if (v) return v;
    }
    return json_loadb((const char *)p, n, flags, err);
}
