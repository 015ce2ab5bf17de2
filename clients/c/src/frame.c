/* frame.c - what libtabsync writes: a growable output buffer that reports
 * allocation failure instead of aborting, and masked client frames built
 * with the shared codec's header writer and mask function. */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

int ts_client__obuf_reserve(ts_client__obuf_t *o, size_t extra) {
    if (extra > SIZE_MAX / 2 - o->len) return TS_ENOMEM;
    size_t need = o->len + extra;
    if (need <= o->cap) return 0;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(o->p, cap);
    if (!p) return TS_ENOMEM;
    o->p = p;
    o->cap = cap;
    return 0;
}

int ts_client__obuf_append(ts_client__obuf_t *o, const void *p, size_t len) {
    int rc = ts_client__obuf_reserve(o, len);
    if (rc < 0) return rc;
    if (len) memcpy(o->p + o->len, p, len);
    o->len += len;
    return 0;
}

void ts_client__obuf_free(ts_client__obuf_t *o) {
    free(o->p);
    memset(o, 0, sizeof *o);
}

size_t ts_client__ws_frame_size(size_t len) {
    size_t h = 2 + 4;
    if (len > 65535)
        h += 8;
    else if (len > 125)
        h += 2;
    return h + len;
}

int ts_client__ws_append(ts_client__obuf_t *o, uint8_t opcode, const void *payload, size_t len,
                         const uint8_t mask[4]) {
    int rc = ts_client__obuf_reserve(o, ts_client__ws_frame_size(len));
    if (rc < 0) return rc;
    uint8_t *w = o->p + o->len;
    size_t h = ts_ws_frame_header(w, opcode, 1, len, mask);
    if (len) memcpy(w + h, payload, len);
    ts_ws_mask(w + h, len, mask, 0);
    o->len += h + len;
    return 0;
}

uint64_t ts_client__rand(uint64_t *state) {
    uint64_t x = *state;
    if (x == 0) x = 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
