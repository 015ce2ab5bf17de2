/* packet_raw.c - the relay fast path of the JSON string form: recognizing
 * an EVENT whose payload is already canonical JSON (what JSON.stringify
 * writes) by one scan, without a jansson tree, and encoding events whose
 * arguments are such texts by copying them.
 *
 * The scanner only ever says "yes, canonical" or "not for me": any input it
 * does not accept (whitespace, other escapes, 1.0, -0, big integers,
 * duplicate keys, anything invalid) goes through the full decoder, whose
 * answers and errors stay the reference. So it may be strict, never lax:
 * fuzz/fuzz_sio_packet.c checks that every accepted message decodes the
 * same way through both paths.
 *
 * The same scan also makes JSON parsing cheaper where a tree is needed
 * (ts_sio_json_loadb): jansson's lexer costs about 20 ns a byte (7 us for
 * a /session CONNECT's auth object), building the same tree from a text
 * known to be canonical about a twentieth of that. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "sio/packet_int.h"
#include "sio/ts_sio_packet.h"

#define CANON_MAX_DEPTH 32 /* deeper: the full decoder (limit 2048) */
#define CANON_MAX_KEYS 32  /* per object, for the duplicate check */

#define TS_JS_SAFE_INT 9007199254740992ULL /* 2^53 */

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

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
 * (Lone surrogates, which it writes as \udxxx, are refused by the full
 * decoder anyway.) */
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
            size_t k = ts_sio__utf8_seq(p + i, n - i);
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

/* A number: integers as digits up to 2^53 (the full decoder keeps them as
 * integers and the encoder writes them back as they are), other numbers
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
        if (v > TS_JS_SAFE_INT) return 0;
        if (v == 0 && p[0] == '-') return 0; /* JSON.stringify(-0) is "0" */
        return i;
    }
    char tmp[TS_SIO_REAL_MAX], out[TS_SIO_REAL_MAX];
    if (i >= sizeof tmp) return 0;
    memcpy(tmp, p, i);
    tmp[i] = '\0';
    double v = strtod(tmp, NULL);
    if (!isfinite(v)) return 0;
    size_t m = ts_sio__fmt_real(out, v);
    return m == i && memcmp(out, p, i) == 0 ? i : 0;
}

/* JS lists "array index" keys first (see dump_object in packet.c); the scan
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
        /* keys with escapes (jansson refuses NUL in them) are left to the
         * full decoder; so are placeholders, which stand for binary values */
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

size_t ts_sio_json_canonical_len(const uint8_t *p, size_t n) { return canon_value(p, n, 1); }

int ts_sio_json_is_canonical(ts_slice_t text) {
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
    char tmp[TS_SIO_REAL_MAX];
    memcpy(tmp, p, k); /* k < TS_SIO_REAL_MAX: canon_number checked it */
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

json_t *ts_sio_json_loadb(const uint8_t *p, size_t n, size_t flags, json_error_t *err) {
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

static int reserved_n(const uint8_t *p, size_t n) {
    char name[16];
    if (n >= sizeof name) return 0; /* longer than every reserved name */
    memcpy(name, p, n);
    name[n] = '\0';
    return ts_sio_is_reserved_event(name);
}

/* Mirrors decode_string in packet.c for "2[<nsp>,][<id>][...]". */
int ts_sio_raw_event_parse(const uint8_t *p, size_t len, ts_sio_raw_event_t *out) {
    if (len < 4 || p[0] != '2') return 0;
    size_t pos = 1;
    out->nsp = TS_SLICE_LIT("/");
    if (p[pos] == '/') {
        const uint8_t *comma = memchr(p + pos, ',', len - pos);
        if (!comma) return 0; /* no payload then */
        size_t end = (size_t)(comma - p);
        if (!ts_sio__utf8_no_nul(p + pos, end - pos)) return 0;
        out->nsp = ts_slice(p + pos, end - pos);
        pos = end + 1;
    }
    out->id = TS_SIO_NO_ID;
    if (pos < len && is_digit(p[pos])) {
        int64_t id = 0;
        while (pos < len && is_digit(p[pos])) {
            int digit = p[pos] - '0';
            if (id > (INT64_MAX - digit) / 10) return 0;
            id = id * 10 + digit;
            pos++;
        }
        out->id = id;
    }
    if (pos >= len || p[pos] != '[') return 0;
    pos++;
    int plain;
    size_t k = pos < len && p[pos] == '"' ? canon_string(p + pos, len - pos, &plain) : 0;
    if (!k || !plain) return 0;
    out->name = ts_slice(p + pos + 1, k - 2);
    if (reserved_n(out->name.p, out->name.len)) return 0;
    pos += k;
    out->nargs = 0;
    while (pos < len && p[pos] == ',') {
        pos++;
        if (out->nargs == TS_SIO_RAW_MAX_ARGS) return 0;
        k = canon_value(p + pos, len - pos, 2);
        if (!k) return 0;
        out->args[out->nargs++] = (ts_sio_raw_arg_t){ts_slice(p + pos, k), NULL};
        pos += k;
    }
    return pos + 1 == len && p[pos] == ']';
}

int ts_sio_decoder_feed_raw(const ts_sio_decoder_t *d, const uint8_t *p, size_t len, int binary,
                            ts_sio_raw_event_t *out) {
    if (d->kind != TS_SIO_PARSER_JSON || binary || d->waiting) return 0;
    return ts_sio_raw_event_parse(p, len, out);
}

int ts_sio_encode_raw(const char *nsp, int64_t id, const char *event,
                      const ts_sio_raw_arg_t *args, size_t nargs, const char *offset,
                      ts_sio_encoded_t *out) {
    out->n = 0;
    out->msgs = NULL;
    if (!nsp) nsp = "/";
    int root = strcmp(nsp, "/") == 0;
    if (!root && (nsp[0] != '/' || strchr(nsp, ','))) return TS_EINVAL;
    if (id < TS_SIO_NO_ID) return TS_EINVAL;
    /* one allocation: the fixed parts, the texts, and room for escapes */
    size_t need = 48 + (root ? 0 : strlen(nsp)) + (event ? 2 * strlen(event) : 0) +
                  (offset ? 2 * strlen(offset) : 0);
    for (size_t i = 0; i < nargs; i++) need += args[i].text.len + 1;
    ts_sbuf_t s = TS_SBUF_INIT;
    ts_sbuf_reserve(&s, need);
    ts_sbuf_append(&s, event ? "42" : "43", 2);
    if (!root) {
        ts_sbuf_append_str(&s, nsp);
        ts_sbuf_putc(&s, ',');
    }
    if (id != TS_SIO_NO_ID) {
        char num[24];
        size_t k = sizeof num;
        uint64_t v = (uint64_t)id;
        do num[--k] = (char)('0' + v % 10); while ((v /= 10) != 0);
        ts_sbuf_append(&s, num + k, sizeof num - k);
    }
    ts_sbuf_putc(&s, '[');
    int first = 1;
    if (event) {
        ts_sio_json_string(&s, event, strlen(event));
        first = 0;
    }
    for (size_t i = 0; i < nargs; i++) {
        if (!first) ts_sbuf_putc(&s, ',');
        first = 0;
        ts_sbuf_append(&s, args[i].text.p, args[i].text.len);
    }
    if (offset) {
        if (!first) ts_sbuf_putc(&s, ',');
        ts_sio_json_string(&s, offset, strlen(offset));
    }
    ts_sbuf_putc(&s, ']');
    out->msgs = ts_xcalloc(1, sizeof *out->msgs);
    out->msgs[0] = (ts_sio_wire_t){ts_sbuf_finish(&s), 0};
    out->n = 1;
    return 0;
}
