/* ts_jptr.h - JSON Pointer (RFC 6901): parse a pointer text into its
 * segments, escape segments back into text, look a pointer up in a jansson
 * tree, and the segment-wise prefix tests the state engine needs.
 *
 * Every valid pointer text is canonical (a segment's '~' and '/' are always
 * escaped, and nothing else can be), so "a's segments are a prefix of b's"
 * is a byte test on the texts at a '/' boundary: no parsing needed. */
#ifndef TS_JPTR_H
#define TS_JPTR_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TS_JPTR_MAX_DEPTH 64  /* segments */
#define TS_JPTR_MAX_LEN 1024  /* bytes of pointer text */

/* A parsed pointer, self-contained (no pointers into the text). About
 * 1.4 KiB: fine on the stack, not meant to be kept by the thousand. */
typedef struct ts_jptr {
    uint32_t n;                       /* segments; 0 = the whole document ("") */
    uint16_t off[TS_JPTR_MAX_DEPTH];  /* segment i starts at buf + off[i], NUL-terminated */
    uint16_t len[TS_JPTR_MAX_DEPTH];  /* its unescaped length */
    uint16_t end[TS_JPTR_MAX_DEPTH];  /* the text of the first i + 1 segments is text[0..end[i]) */
    char buf[TS_JPTR_MAX_LEN + 1];    /* unescaped segments */
} ts_jptr_t;

/* Parses `text[0..len)`. "" is the root; anything else starts with '/'.
 * Returns 0, TS_EPROTO (no leading '/', a '~' not followed by 0 or 1, a NUL
 * byte) or TS_ETOOBIG (over TS_JPTR_MAX_LEN bytes or TS_JPTR_MAX_DEPTH
 * segments); *why (if not NULL) then points to a static phrase such as
 * "must start with \"/\"". */
int ts_jptr_parse(ts_jptr_t *p, const char *text, size_t len, const char **why);

static inline const char *ts_jptr_seg(const ts_jptr_t *p, size_t i) { return p->buf + p->off[i]; }
/* Length of the text of the first k segments (0 for k = 0). */
static inline size_t ts_jptr_prefix_len(const ts_jptr_t *p, size_t k) {
    return k == 0 ? 0 : p->end[k - 1];
}

/* Escapes one segment (~ -> ~0, / -> ~1) into out[cap] (NUL-terminated when
 * cap > 0, cut to fit). Returns the full escaped length, as snprintf does. */
size_t ts_jptr_escape(char *out, size_t cap, const char *seg, size_t len);
/* Appends "/" + escaped seg to the pointer text path[0..*len) held in
 * path[cap]. Returns 0, or TS_ETOOBIG (path unchanged) if the result would
 * exceed TS_JPTR_MAX_LEN bytes or not fit in cap - 1. */
int ts_jptr_append(char *path, size_t *len, size_t cap, const char *seg, size_t seglen);

/* Reads an array index segment: decimal digits without leading zeros, or
 * "-" (the position past the end, = size) when allow_end. Returns 0 and
 * *out <= size (< size unless it is the "-" or "size" of an append),
 * TS_EPROTO if seg is not an index, TS_ENOTFOUND if it is past the end
 * (past the last element; for allow_end, past size). */
int ts_jptr_index(const char *seg, size_t len, size_t size, int allow_end, size_t *out);

/* The value at the first n segments of p in `root`, or NULL (absent, or a
 * segment that is not a valid index of an array on the way). Borrowed. */
json_t *ts_jptr_get(const json_t *root, const ts_jptr_t *p, size_t n);
/* Same for a text; NULL also when the text is not a valid pointer. */
json_t *ts_jptr_get_text(const json_t *root, const char *text, size_t len);

/* 1 if a's segments are a prefix of b's (equal included); both valid texts. */
int ts_jptr_is_prefix(const char *a, size_t alen, const char *b, size_t blen);
/* 1 if one of a, b is a prefix of the other (equal, ancestor or descendant). */
static inline int ts_jptr_overlap(const char *a, size_t alen, const char *b, size_t blen) {
    return ts_jptr_is_prefix(a, alen, b, blen) || ts_jptr_is_prefix(b, blen, a, alen);
}
/* Length of the parent's text (the text up to the last '/'): the last
 * segment's escaped text is text[parent_len + 1 .. len). 0 for the root and
 * its children. */
size_t ts_jptr_parent_len(const char *text, size_t len);

#endif
