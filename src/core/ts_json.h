/* ts_json.h - canonical JSON: texts written byte for byte as JSON.stringify
 * writes them, the check that a text is already such a text, and jansson
 * trees built from canonical texts without jansson's lexer. The Socket.IO
 * codec (sio) and the /session layer share it: a text written here can be
 * relayed, compared and logged as bytes. */
#ifndef TS_JSON_H
#define TS_JSON_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"
#include "core/ts_slice.h"

/* ---- writing: JSON as JSON.stringify writes it (json.c) ---- */

/* Appends the value `v` as JSON.stringify writes it (the bytes ts_sio_encode
 * writes for it): compact, keys in insertion order but JS's "array index"
 * keys first, numbers as JS writes them, integers beyond 2^53 as the nearest
 * double. A canonical text, fit for ts_sio_broadcast_raw. */
void ts_json_dump(ts_sbuf_t *out, json_t *v);
/* Appends `str[0..n)` as a JSON string exactly as JSON.stringify writes it. */
void ts_json_string(ts_sbuf_t *out, const char *str, size_t n);
/* The same for bytes from a peer: -1 (nothing appended) unless they are
 * UTF-8 without NUL (ts_json_utf8_no_nul). */
int ts_json_string_checked(ts_sbuf_t *out, const uint8_t *p, size_t n);

#define TS_JSON_REAL_MAX 40
/* Writes `v` as ECMAScript's Number::toString does (JSON.stringify's
 * numbers; "null" if not finite). Returns the length (< TS_JSON_REAL_MAX),
 * no NUL. */
size_t ts_json_fmt_real(char out[TS_JSON_REAL_MAX], double v);

/* ---- UTF-8 ---- */

/* Length (2-4) of the valid RFC 3629 UTF-8 sequence starting at p[0]
 * (>= 0x80), or 0 if it is not one (overlong, surrogate, > U+10FFFF, cut). */
size_t ts_json_utf8_seq(const uint8_t *p, size_t n);
/* 1 if p[0..n) is valid UTF-8 without NUL. */
int ts_json_utf8_no_nul(const uint8_t *p, size_t n);

/* ---- canonical texts: checked by one scan, no tree ----
 * A canonical text is the bytes JSON.stringify(JSON.parse(text)) gives back
 * unchanged, as far as one scan can tell: no whitespace, JSON.stringify's
 * escapes and numbers, integers within +-2^53, no duplicate, numeric
 * ("array index") or "_placeholder" keys (Socket.IO's binary placeholders,
 * which sio checks on a tree), no escapes in keys, at most 32 keys per
 * object and nesting up to 32. The scan may be strict, never lax:
 * a text it refuses may still be valid JSON, for jansson to judge. */

/* 1 if `text` is one canonical JSON value. */
int ts_json_is_canonical(ts_slice_t text);
/* Length of the canonical JSON value that starts at p (followed by
 * anything), or 0 if there is none: for walking canonical texts. */
size_t ts_json_canonical_len(const uint8_t *p, size_t n);
/* The same for a value found inside an enclosing text at nesting level
 * `depth` (1: the top level, as ts_json_canonical_len), so the 32 levels
 * count the enclosing ones too. */
size_t ts_json_canonical_len_at(const uint8_t *p, size_t n, unsigned depth);
/* Length, quotes included, of the canonical JSON string at p[0] == '"', or
 * 0 if it is not one. *plain: 1 if it has no escapes (the bytes between the
 * quotes are then its value). */
size_t ts_json_canonical_string_len(const uint8_t *p, size_t n, int *plain);

/* Length of the value at p in a text already known to be canonical (checked
 * by one of the above, or written by us), found without checking it again:
 * for walking such a text, several times cheaper than
 * ts_json_canonical_len. 0 if the value is cut. */
size_t ts_json_skip(const uint8_t *p, size_t n);
/* The same for a string (p[0] == '"'): its length, quotes included, or 0 if
 * it does not end; *plain: 1 if it has no escapes. */
size_t ts_json_skip_string(const uint8_t *p, size_t n, int *plain);

/* json_loadb(p, n, flags, err) with a fast path: a canonical text (see
 * ts_json_is_canonical) is built into a tree directly, without
 * jansson's lexer; anything else, and any flag other than JSON_DECODE_ANY,
 * JSON_ALLOW_NUL, JSON_DECODE_INT_AS_REAL and JSON_REJECT_DUPLICATES, goes
 * to json_loadb, whose answers and errors stay the reference. Either way
 * the result is the same tree (same types, values and key order):
 * tests/core/test_json.c and fuzz/fuzz_sio_packet.c check it. */
json_t *ts_json_loadb(const uint8_t *p, size_t n, size_t flags, json_error_t *err);

/* ---- canonical texts and msgpack (json_mp.c) ----
 * Between nodes a broadcast travels as msgpack; here it is canonical text.
 * Both directions write what the tree path writes (a jansson tree encoded
 * as notepack encodes, or dumped with ts_json_dump) and decline whatever
 * they do not handle, for the caller to take the tree path. */

/* Appends to `out` the msgpack of the canonical text `text` (borrowed), as
 * notepack encodes JSON.parse(text): the smallest integer encodings, whole
 * numbers as integers, float64 otherwise, keys in text order (canonical
 * texts have no "array index" keys). Returns 0, or TS_EINVAL (nothing
 * appended) if the text is not canonical or has an escape the tree path
 * must judge (\u0000, a lone surrogate). */
int ts_json_to_msgpack(ts_sbuf_t *out, ts_slice_t text);
/* The same for a text the caller built from canonical texts only: not
 * checked again (a malformed one still fails, TS_EINVAL, without reading
 * past its end). */
int ts_json_to_msgpack_canonical(ts_sbuf_t *out, ts_slice_t text);
/* Reads the msgpack value at p[0..n) and appends it to `out` as the canonical
 * text ts_json_dump writes for the tree the adapter's decoder builds from it.
 * Returns the bytes read (> 0), or 0 (nothing appended) for a value it
 * declines: bin and ext values (Buffers, dates, undefined), map keys that
 * are not strings, repeated, "array index" or "_placeholder", more than 32
 * keys in a map, strings that are not UTF-8 or hold NUL, integers beyond
 * +-2^53, nesting beyond 32, and anything cut or invalid. */
size_t ts_json_from_msgpack(ts_sbuf_t *out, const uint8_t *p, size_t n);
/* The same for a value found inside an enclosing msgpack value at nesting
 * level `depth` (0: the top, as ts_json_from_msgpack), so the 32 levels
 * count the enclosing ones too. */
size_t ts_json_from_msgpack_at(ts_sbuf_t *out, const uint8_t *p, size_t n, unsigned depth);

/* Reading msgpack where it lies, a value at a time (for walking a message
 * whose parts are known: adapter/rfast.c). */
typedef struct ts_mp_rd {
    const uint8_t *p, *end;
} ts_mp_rd_t;
/* The next value if it is a str (any width): its bytes (borrowed) and
 * length; -1 if it is not one or is cut. */
int ts_mp_rd_str(ts_mp_rd_t *r, const uint8_t **s, size_t *len);
/* The next value's head if it is an array (0) or a map (1), with its
 * count; -1 if it is neither or is cut. */
int ts_mp_rd_head(ts_mp_rd_t *r, uint64_t *n);
/* Passes the next value, whatever it is (containers whole, at any depth:
 * no recursion); -1 if it is cut or not msgpack (0xc1). */
int ts_mp_rd_skip(ts_mp_rd_t *r);

/* Writing msgpack as notepack does (the smallest form), for the parts of a
 * message that are not text (adapter/rfast.c): what ts_json_to_msgpack
 * writes for the same values, byte for byte. */
typedef enum { TS_MP_ARRAY, TS_MP_MAP } ts_mp_container_t;
void ts_mp_put_head(ts_sbuf_t *out, ts_mp_container_t kind, size_t n);
/* A str of s[0..n) (borrowed), bytes as they are. */
void ts_mp_put_str(ts_sbuf_t *out, const void *s, size_t n);
void ts_mp_put_int(ts_sbuf_t *out, int64_t v);
void ts_mp_put_bool(ts_sbuf_t *out, int v);

#endif
