/* jptr.c - JSON Pointer (RFC 6901) over jansson trees. Pure functions; the
 * parsed form copies the unescaped segments, so it never points into the
 * caller's text. */
#include "core/ts_jptr.h"

#include <string.h>

#include "core/ts_err.h"

static int fail(const char **why, const char *msg, int rc) {
    if (why) *why = msg;
    return rc;
}

int ts_jptr_parse(ts_jptr_t *p, const char *text, size_t len, const char **why) {
    p->n = 0;
    if (len == 0) return 0;
    if (len > TS_JPTR_MAX_LEN) return fail(why, "is longer than 1024 bytes", TS_ETOOBIG);
    if (text[0] != '/') return fail(why, "must start with \"/\"", TS_EPROTO);
    /* Each segment loses its '/' and gains a NUL, escapes only shrink: the
     * unescaped form never needs more than len bytes. */
    size_t o = 0, i = 0;
    while (i < len) {
        if (p->n == TS_JPTR_MAX_DEPTH)
            return fail(why, "has more than 64 segments", TS_ETOOBIG);
        i++;
        size_t start = o;
        while (i < len && text[i] != '/') {
            char c = text[i];
            if (c == '\0') return fail(why, "contains a NUL byte", TS_EPROTO);
            if (c == '~') {
                if (i + 1 >= len || (text[i + 1] != '0' && text[i + 1] != '1'))
                    return fail(why, "has a ~ not followed by 0 or 1 (write ~0 for ~, ~1 for /)",
                                TS_EPROTO);
                c = text[i + 1] == '0' ? '~' : '/';
                i += 2;
            } else {
                i++;
            }
            p->buf[o++] = c;
        }
        p->off[p->n] = (uint16_t)start;
        p->len[p->n] = (uint16_t)(o - start);
        p->end[p->n] = (uint16_t)i;
        p->buf[o++] = '\0';
        p->n++;
    }
    return 0;
}

size_t ts_jptr_escape(char *out, size_t cap, const char *seg, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = seg[i], e = 0;
        if (c == '~') e = '0';
        else if (c == '/') e = '1';
        if (e) {
            if (n + 2 < cap) {
                out[n] = '~';
                out[n + 1] = e;
            } else if (n + 1 < cap) {
                cap = n + 1; /* never write half an escape */
            }
            n += 2;
        } else {
            if (n + 1 < cap) out[n] = c;
            n++;
        }
    }
    if (cap > 0) out[n < cap ? n : cap - 1] = '\0';
    return n;
}

int ts_jptr_append(char *path, size_t *len, size_t cap, const char *seg, size_t seglen) {
    size_t need = ts_jptr_escape(NULL, 0, seg, seglen);
    size_t total = *len + 1 + need;
    if (total > TS_JPTR_MAX_LEN || total + 1 > cap) return TS_ETOOBIG;
    path[*len] = '/';
    ts_jptr_escape(path + *len + 1, need + 1, seg, seglen);
    *len = total;
    return 0;
}

int ts_jptr_index(const char *seg, size_t len, size_t size, int allow_end, size_t *out) {
    if (len == 1 && seg[0] == '-') {
        if (!allow_end) return TS_ENOTFOUND;
        *out = size;
        return 0;
    }
    if (len == 0 || len > 19 || (len > 1 && seg[0] == '0')) return TS_EPROTO;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (seg[i] < '0' || seg[i] > '9') return TS_EPROTO;
        v = v * 10 + (size_t)(seg[i] - '0'); /* 19 digits fit in 64 bits */
    }
    if (v > size || (v == size && !allow_end)) return TS_ENOTFOUND;
    *out = v;
    return 0;
}

json_t *ts_jptr_get(const json_t *root, const ts_jptr_t *p, size_t n) {
    json_t *cur = (json_t *)root;
    for (size_t i = 0; i < n && cur; i++) {
        const char *s = ts_jptr_seg(p, i);
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, s, p->len[i]);
        } else if (json_is_array(cur)) {
            size_t idx;
            if (ts_jptr_index(s, p->len[i], json_array_size(cur), 0, &idx) != 0) return NULL;
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
    }
    return cur;
}

json_t *ts_jptr_get_text(const json_t *root, const char *text, size_t len) {
    ts_jptr_t p;
    if (ts_jptr_parse(&p, text, len, NULL) != 0) return NULL;
    return ts_jptr_get(root, &p, p.n);
}

int ts_jptr_is_prefix(const char *a, size_t alen, const char *b, size_t blen) {
    if (alen > blen || memcmp(a, b, alen) != 0) return 0;
    return alen == blen || b[alen] == '/';
}

size_t ts_jptr_parent_len(const char *text, size_t len) {
    while (len > 0 && text[len - 1] != '/') len--;
    return len > 0 ? len - 1 : 0;
}
