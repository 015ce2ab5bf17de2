/* ts_util.h - small helpers every layer needs: random ids, base64, bounded
 * string copies, monotonic milliseconds. */
#ifndef TS_UTIL_H
#define TS_UTIL_H
#include <stddef.h>
#include <stdint.h>

/* Fills `out` with `n` random URL-safe base64 characters (A-Z a-z 0-9 - _)
 * from the kernel's CSPRNG, then a NUL: out must hold n + 1 bytes. */
void ts_random_id(char *out, size_t n);
/* Cryptographically random bytes (getrandom). */
void ts_random_bytes(void *out, size_t n);

/* Standard base64 with padding. Returns the length written to `out`, which
 * must hold ts_b64_enc_len(n) + 1 bytes (NUL-terminated). */
#define ts_b64_enc_len(n) ((((n) + 2) / 3) * 4)
size_t ts_b64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes standard base64 (padding optional). `out` may equal `in` (in-place
 * decoding is safe: output never overtakes input). Returns the decoded
 * length, or -1 on an invalid character or length. */
long ts_b64_decode(const char *in, size_t n, uint8_t *out);
/* Unpadded base64url (RFC 4648 section 5, as JWTs use it): refuses '=', a
 * length of 4n+1 and non-zero leftover bits, so each value has exactly one
 * encoding. In-place decoding is safe. Returns the length or -1. */
long ts_b64url_decode(const char *in, size_t n, uint8_t *out);
/* Unpadded base64url of n bytes: the one encoding ts_b64url_decode takes
 * back. Returns the length written to `out`, which must hold
 * ts_b64url_enc_len(n) + 1 bytes (NUL-terminated). */
#define ts_b64url_enc_len(n) (((n) * 4 + 2) / 3)
size_t ts_b64url_encode(const uint8_t *in, size_t n, char *out);
/* 1 if `c` is in the base64url alphabet. */
int ts_b64url_char(unsigned char c);

/* Writes v in decimal into out (no NUL) and returns the length (1-20):
 * printf's cost was a fifth of a publish's instructions on paths that
 * write numbers per event (docs/PERFORMANCE.md). */
#define TS_U64_DEC_MAX 20
size_t ts_fmt_u64(char out[TS_U64_DEC_MAX], uint64_t v);

/* Copies src into dst[cap] (cap > 0), cut to cap - 1 bytes, NUL-terminated.
 * Returns strlen(src): a result >= cap means it was cut. (snprintf "%s"
 * does the same at several times the cost, on paths run per handshake.) */
size_t ts_strlcpy(char *dst, const char *src, size_t cap);
/* Makes a NUL-terminated message one line of valid UTF-8, in place (a
 * message that quotes what a peer sent, and a cut that may fall inside a
 * character): control bytes and bytes that are not part of a character
 * become '?'. */
void ts_str_one_line(char *s);
/* Formats a reason into why[0..whylen) as one line (ts_str_one_line) and
 * returns rc: `return ts_errf(why, len, TS_EPROTO, "rule %zu: ...", n);`. */
int ts_errf(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes parts[0] sep parts[1] ... sep parts[n-1] into dst[cap] (cap > 0)
 * the same way; returns the full length. */
size_t ts_strjoin(char *dst, size_t cap, char sep, const char *const *parts, size_t n);

/* Milliseconds of CLOCK_MONOTONIC; and wall-clock milliseconds since 1970. */
uint64_t ts_now_ms(void);
uint64_t ts_wall_ms(void);

#endif
