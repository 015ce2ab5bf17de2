/* fuzz_ws_frame.c - libFuzzer driver for the RFC 6455 reader. Input: one
 * byte of chunk-size limit (0 = one chunk), one byte of PRNG seed for the
 * chunk sizes (seeds >= 128 also shrink max_message to 8..1024 bytes, so
 * the limits are reachable with small inputs), then the byte stream. The stream goes to a server-role and a
 * client-role reader, whole and in chunks; both feeds must agree, every
 * message must satisfy the codec's invariants and re-encode round-trips. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "net/ts_ws_frame.h"

#define FUZZ_MAX_MESSAGE (64u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct outcome {
    uint64_t hash; /* FNV-1a over every message produced */
    size_t nmsg;
    int rc;        /* last return: 0 or the error */
    uint16_t close_code;
    char errmsg[128];
} outcome_t;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int close_code_ok(uint16_t c) {
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

/* Decodes `wire` as one frame with a fresh reader of `role`; it must give
 * back exactly (op, p, n), or for CLOSE the code and a prefix of p. */
static void expect_roundtrip(ts_ws_role_t role, uint8_t *wire, size_t wl, uint8_t op,
                             uint16_t code, const uint8_t *p, size_t n) {
    ts_ws_reader_t r;
    ts_ws_reader_init(&r, role, FUZZ_MAX_MESSAGE);
    size_t used = 0;
    ts_ws_msg_t m;
    int rc = ts_ws_reader_feed(&r, wire, wl, &used, &m);
    ts_assert(rc == 1);
    ts_assert(used == wl);
    ts_assert(m.opcode == op);
    if (op == TS_WS_OP_CLOSE) {
        ts_assert(m.close_code == code);
        ts_assert(m.len <= n && (m.len == 0 || memcmp(m.data, p, m.len) == 0));
    } else {
        ts_assert(m.len == n && (n == 0 || memcmp(m.data, p, n) == 0));
    }
    ts_ws_reader_deinit(&r);
}

static void check_msg(const ts_ws_reader_t *r, const ts_ws_msg_t *m) {
    ts_assert(m->len <= r->max_message);
    ts_assert(m->len == 0 || m->data != NULL);
    switch (m->opcode) {
    case TS_WS_OP_TEXT:
        ts_assert(ts_utf8_validate(TS_UTF8_ACCEPT, m->data, m->len) == TS_UTF8_ACCEPT);
        break;
    case TS_WS_OP_BINARY: break;
    case TS_WS_OP_PING:
    case TS_WS_OP_PONG: ts_assert(m->len <= 125); break;
    case TS_WS_OP_CLOSE:
        ts_assert(m->len <= 123);
        ts_assert(m->close_code == TS_WS_CLOSE_NO_STATUS ? m->len == 0
                                                         : close_code_ok(m->close_code));
        ts_assert(ts_utf8_validate(TS_UTF8_ACCEPT, m->data, m->len) == TS_UTF8_ACCEPT);
        break;
    default: ts_assert(!"unexpected opcode");
    }
}

/* Re-encodes a decoded message both ways: unmasked (server frame, read by
 * a client) and masked with a key from the payload (read by a server). */
static void roundtrip(const ts_ws_msg_t *m) {
    if (m->opcode == TS_WS_OP_CLOSE) {
        /* encode_close takes a C string: the reason stops at a NUL. */
        char reason[124];
        size_t rl = strnlen((const char *)m->data, m->len);
        memcpy(reason, m->data, rl);
        reason[rl] = '\0';
        ts_buf_t *b = ts_ws_frame_encode_close(m->close_code, reason);
        expect_roundtrip(TS_WS_CLIENT, b->data, b->len, TS_WS_OP_CLOSE, m->close_code, m->data,
                         rl);
        ts_buf_unref(b);
        return;
    }
    ts_buf_t *b = ts_ws_frame_encode(m->opcode, m->data, m->len);
    expect_roundtrip(TS_WS_CLIENT, b->data, b->len, m->opcode, 0, m->data, m->len);
    ts_buf_unref(b);

    uint8_t key[4] = {0x5a, 0xa5, 0x3c, 0xc3};
    for (size_t i = 0; i < 4 && i < m->len; i++) key[i] ^= m->data[i];
    uint8_t *wire = ts_xmalloc(TS_WS_MAX_HEADER + m->len + 1);
    size_t hl = ts_ws_frame_header(wire, m->opcode, 1, m->len, key);
    ts_assert(hl <= TS_WS_MAX_HEADER);
    if (m->len) memcpy(wire + hl, m->data, m->len);
    ts_ws_mask(wire + hl, m->len, key, 0);
    expect_roundtrip(TS_WS_SERVER, wire, hl + m->len, m->opcode, 0, m->data, m->len);
    free(wire);
}

/* Feeds in[0..n) like a socket reader would: chunks of 1..limit bytes from
 * a PRNG (limit 0: everything at once), unconsumed bytes kept. */
static void run(ts_ws_role_t role, size_t max, const uint8_t *in, size_t n, unsigned limit,
                uint32_t seed, int check_roundtrip, outcome_t *o) {
    ts_ws_reader_t r;
    ts_ws_reader_init(&r, role, max);
    memset(o, 0, sizeof *o);
    o->hash = 0xcbf29ce484222325ull;
    uint8_t *pend = ts_xmalloc(n + 1);
    size_t plen = 0, fed = 0;
    uint32_t rng = seed * 2654435761u + 1;
    while (fed < n && o->rc == 0) {
        size_t c = n - fed;
        if (limit) {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            size_t want = 1 + rng % limit;
            if (want < c) c = want;
        }
        memcpy(pend + plen, in + fed, c);
        plen += c;
        fed += c;
        for (;;) {
            size_t used = (size_t)-1;
            ts_ws_msg_t m;
            int rc = ts_ws_reader_feed(&r, pend, plen, &used, &m);
            if (rc < 0) {
                ts_assert(rc == r.err);
                ts_assert((rc == TS_EPROTO && r.close_code == TS_WS_CLOSE_PROTOCOL) ||
                          (rc == TS_EUTF8 && r.close_code == TS_WS_CLOSE_BAD_DATA) ||
                          (rc == TS_ETOOBIG && r.close_code == TS_WS_CLOSE_TOO_BIG));
                ts_assert(strncmp(ts_ws_reader_errmsg(&r), "ws: ", 4) == 0);
                o->rc = rc;
                o->close_code = r.close_code;
                snprintf(o->errmsg, sizeof o->errmsg, "%s", ts_ws_reader_errmsg(&r));
                break;
            }
            ts_assert(used <= plen);
            ts_assert(rc == 0 || rc == 1);
            if (rc == 1) {
                check_msg(&r, &m);
                o->nmsg++;
                o->hash = fnv(o->hash, &m.opcode, 1);
                o->hash = fnv(o->hash, &m.close_code, sizeof m.close_code);
                o->hash = fnv(o->hash, &m.len, sizeof m.len);
                o->hash = fnv(o->hash, m.data, m.len);
                if (check_roundtrip) roundtrip(&m);
            }
            memmove(pend, pend + used, plen - used);
            plen -= used;
            if (rc == 0) break;
        }
    }
    free(pend);
    ts_ws_reader_deinit(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    unsigned limit = data[0];
    uint32_t seed = data[1];
    size_t max = seed < 128 ? FUZZ_MAX_MESSAGE : (seed - 127u) * 8u;
    const uint8_t *stream = data + 2;
    size_t n = size - 2;

    static const ts_ws_role_t roles[] = {TS_WS_SERVER, TS_WS_CLIENT};
    for (size_t i = 0; i < 2; i++) {
        outcome_t whole, chunked;
        run(roles[i], max, stream, n, 0, 0, 1, &whole);
        run(roles[i], max, stream, n, limit, seed, 0, &chunked);
        /* Any split of the input gives the same messages and the same end. */
        ts_assert(whole.nmsg == chunked.nmsg);
        ts_assert(whole.hash == chunked.hash);
        ts_assert(whole.rc == chunked.rc);
        ts_assert(whole.close_code == chunked.close_code);
        ts_assert(strcmp(whole.errmsg, chunked.errmsg) == 0);
    }

    /* The validator's incremental contract: any split, same verdict. */
    uint32_t st1 = ts_utf8_validate(TS_UTF8_ACCEPT, stream, n);
    size_t cut = n ? seed % (n + 1) : 0;
    uint32_t st2 = ts_utf8_validate(ts_utf8_validate(TS_UTF8_ACCEPT, stream, cut), stream + cut,
                                    n - cut);
    ts_assert(st1 == st2);
    return 0;
}
