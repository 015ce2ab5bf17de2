/* util.c - random ids, base64, string copies and clocks shared by all
 * layers. */
#include "core/ts_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/ts_json.h"
#include "core/ts_mem.h"

void ts_random_bytes(void *out, size_t n) {
    uint8_t *p = out;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) continue; /* EINTR; getrandom never fails otherwise here */
        p += r;
        n -= (size_t)r;
    }
}

/* Ids take their bytes from a per-thread pool filled by getrandom 512 bytes
 * at a time: a handshake draws three ids (Engine.IO sid, Socket.IO id and
 * pid), and one system call per ~8 handshakes instead of three each shows
 * in the handshake rate. Every byte is handed out once and wiped. (No
 * process of ours forks; a child would share its parent's pool.) */
static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#define ID_POOL 512
static _Thread_local struct {
    uint8_t b[ID_POOL];
    size_t left; /* the unused bytes are b[0..left) */
} id_pool;

void ts_random_id(char *out, size_t n) {
    size_t done = 0;
    while (done < n) {
        if (id_pool.left == 0) {
            ts_random_bytes(id_pool.b, ID_POOL);
            id_pool.left = ID_POOL;
        }
        size_t k = TS_MIN(n - done, id_pool.left);
        uint8_t *raw = id_pool.b + id_pool.left - k;
        for (size_t i = 0; i < k; i++) out[done + i] = b64url_alpha[raw[i] & 63];
        memset(raw, 0, k);
        id_pool.left -= k;
        done += k;
    }
    out[n] = '\0';
}

/* Shared encoder: `pad` writes the last group's '=' (standard base64). */
static size_t b64_encode(const uint8_t *in, size_t n, char *out, const char *alpha, int pad) {
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = alpha[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad) out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t ts_b64_encode(const uint8_t *in, size_t n, char *out) {
    return b64_encode(in, n, out, b64_alpha, 1);
}

size_t ts_b64url_encode(const uint8_t *in, size_t n, char *out) {
    return b64_encode(in, n, out, b64url_alpha, 0);
}

/* Value of each byte in the standard (+/) and the URL-safe (-_) alphabet,
 * or -1: one lookup per character (a token's 300 are decoded on every
 * /session handshake). */
/* (the cast: clang checks the conversion of every arm, taken or not) */
#define B64V(c, u)                                                                                 \
    (int8_t)((c) >= 'A' && (c) <= 'Z' ? (c) - 'A'                                                  \
     : (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26                                                   \
     : (c) >= '0' && (c) <= '9' ? (c) - '0' + 52                                                   \
     : (c) == ((u) ? '-' : '+') ? 62                                                               \
     : (c) == ((u) ? '_' : '/') ? 63                                                               \
                                : -1)
#define B64V4(c, u) B64V(c, u), B64V(c + 1, u), B64V(c + 2, u), B64V(c + 3, u)
#define B64V16(c, u) B64V4(c, u), B64V4(c + 4, u), B64V4(c + 8, u), B64V4(c + 12, u)
#define B64V256(u)                                                                                 \
    B64V16(0x00, u), B64V16(0x10, u), B64V16(0x20, u), B64V16(0x30, u), B64V16(0x40, u),           \
        B64V16(0x50, u), B64V16(0x60, u), B64V16(0x70, u), B64V16(0x80, u), B64V16(0x90, u),       \
        B64V16(0xa0, u), B64V16(0xb0, u), B64V16(0xc0, u), B64V16(0xd0, u), B64V16(0xe0, u),       \
        B64V16(0xf0, u)
static const int8_t b64_std[256] = {B64V256(0)};
static const int8_t b64_url[256] = {B64V256(1)};
#undef B64V256
#undef B64V16
#undef B64V4
#undef B64V

static int b64_val(unsigned char c, int url) { return (url ? b64_url : b64_std)[c]; }

/* Shared decoder. `strict`: leftover bits must be zero, so every value has
 * exactly one encoding (what signatures need). */
static long b64_decode(const char *in, size_t n, uint8_t *out, int url, int strict) {
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)in[i], url);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (strict && bits && (acc & ((1u << bits) - 1))) return -1;
    return (long)o;
}

long ts_b64_decode(const char *in, size_t n, uint8_t *out) {
    while (n > 0 && in[n - 1] == '=') n--;
    return b64_decode(in, n, out, 0, 0);
}

long ts_b64url_decode(const char *in, size_t n, uint8_t *out) { return b64_decode(in, n, out, 1, 1); }

int ts_b64url_char(unsigned char c) { return b64_val(c, 1) >= 0; }

void ts_str_one_line(char *s) {
    uint8_t *p = (uint8_t *)s;
    size_t left = strlen(s);
    while (left) {
        size_t k = *p < 0x80 ? 1 : ts_json_utf8_seq(p, left);
        if (k == 0 || (k == 1 && (*p < 0x20 || *p == 0x7f))) {
            *p = '?';
            k = 1;
        }
        p += k;
        left -= k;
    }
}

int ts_errf(char *why, size_t whylen, int rc, const char *fmt, ...) {
    if (whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
        ts_str_one_line(why);
    }
    return rc;
}

size_t ts_fmt_u64(char out[TS_U64_DEC_MAX], uint64_t v) {
    char d[TS_U64_DEC_MAX], *e = d + sizeof d, *q = e;
    do *--q = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    memcpy(out, q, (size_t)(e - q));
    return (size_t)(e - q);
}

size_t ts_strlcpy(char *dst, const char *src, size_t cap) {
    size_t n = strlen(src), k = n < cap ? n : cap - 1;
    memcpy(dst, src, k);
    dst[k] = '\0';
    return n;
}

size_t ts_strjoin(char *dst, size_t cap, char sep, const char *const *parts, size_t n) {
    size_t o = 0; /* the full length so far; dst holds min(o, cap - 1) bytes */
    for (size_t i = 0; i < n; i++) {
        if (i) {
            if (o + 1 < cap) dst[o] = sep;
            o++;
        }
        if (o < cap) ts_strlcpy(dst + o, parts[i], cap - o);
        o += strlen(parts[i]);
    }
    dst[o < cap ? o : cap - 1] = '\0';
    return o;
}

uint64_t ts_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ts_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
