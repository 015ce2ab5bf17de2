/* fuzz_eio_packet.c - libFuzzer driver for the Engine.IO v4 codec. The
 * input is a polling payload body: it is iterated (base64 pieces decode in
 * place), every packet is checked against its piece of the input and
 * re-encoded; the rebuilt payload must iterate to the same packets and be
 * exactly as long as ts_eio_payload_size predicted. The whole input is
 * also decoded as one WebSocket text packet, which must re-encode to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "eio/ts_eio_packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PACKETS 4096

typedef struct seen {
    uint8_t type, binary;
    size_t len;
    uint64_t hash;
} seen_t;

static uint64_t fnv(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* exact-size copy (ASan sees any overread); never reads data when size is 0 */
static uint8_t *copy(const uint8_t *data, size_t size) {
    uint8_t *p = ts_xmalloc(size ? size : 1);
    if (size) memcpy(p, data, size);
    return p;
}

static void check_single(const uint8_t *data, size_t size) {
    uint8_t *in = copy(data, size);
    ts_eio_packet_t pk;
    int rc = ts_eio_packet_decode(in, size, &pk);
    if (rc == 0) {
        ts_assert(size >= 1 && data[0] >= '0' && data[0] <= '6');
        ts_assert(pk.type == data[0] - '0' && !pk.binary);
        ts_assert(pk.data.p == in + 1 && pk.data.len == size - 1);
        ts_sbuf_t sb = TS_SBUF_INIT;
        ts_eio_payload_append(&sb, pk.type, 0, pk.data.p, pk.data.len);
        ts_buf_t *b = ts_sbuf_finish(&sb);
        ts_assert(b->len == size && memcmp(b->data, data, size) == 0);
        ts_buf_unref(b);
    } else {
        ts_assert(rc == TS_EPROTO);
        ts_assert(size == 0 || data[0] < '0' || data[0] > '6');
    }
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_single(data, size);

    uint8_t *body = copy(data, size);
    static seen_t seen[MAX_PACKETS];
    size_t n = 0, predicted = 0;
    int any_binary = 0;
    ts_sbuf_t sb = TS_SBUF_INIT;
    ts_eio_payload_iter_t it;
    ts_eio_packet_t pk;
    int rc;
    ts_eio_payload_iter_init(&it, body, size);
    while ((rc = ts_eio_payload_next(&it, &pk)) == 1 && n < MAX_PACKETS) {
        ts_assert(pk.type <= TS_EIO_NOOP);
        ts_assert(pk.data.len == 0 ||
                  (pk.data.p >= body + 1 && pk.data.p + pk.data.len <= body + size));
        ts_assert(memchr(pk.data.p, TS_EIO_RS, pk.data.len) == NULL || pk.binary);
        if (pk.binary) {
            any_binary = 1;
            ts_assert(pk.type == TS_EIO_MESSAGE);
            ts_assert(data[pk.data.p - 1 - body] == 'b');
        } else {
            /* a text piece is untouched and is itself a valid single packet */
            size_t off = (size_t)(pk.data.p - 1 - body);
            ts_assert(data[off] == '0' + pk.type);
            ts_assert(memcmp(data + off + 1, pk.data.p, pk.data.len) == 0);
            ts_eio_packet_t one;
            ts_assert(ts_eio_packet_decode(body + off, pk.data.len + 1, &one) == 0);
            ts_assert(one.type == pk.type && one.data.len == pk.data.len);
        }
        seen[n] = (seen_t){pk.type, pk.binary, pk.data.len, fnv(pk.data.p, pk.data.len)};
        predicted += ts_eio_payload_size(n == 0, pk.binary, pk.data.len);
        ts_eio_payload_append(&sb, pk.type, pk.binary, pk.data.p, pk.data.len);
        ts_assert(ts_sbuf_len(&sb) == predicted);
        n++;
    }
    if (rc < 0) {
        ts_assert(rc == TS_EPROTO && it.errmsg[0] != '\0');
        ts_assert(ts_eio_payload_next(&it, &pk) == TS_EPROTO);
    }
    if (rc == 0) ts_assert(ts_eio_payload_next(&it, &pk) == 0);

    /* the rebuilt payload reads back as the same packets, then ends */
    ts_buf_t *b = ts_sbuf_finish(&sb);
    if (n > 0) {
        ts_eio_payload_iter_init(&it, b->data, b->len);
        for (size_t i = 0; i < n; i++) {
            ts_assert(ts_eio_payload_next(&it, &pk) == 1);
            ts_assert(pk.type == seen[i].type && pk.binary == seen[i].binary);
            ts_assert(pk.data.len == seen[i].len && fnv(pk.data.p, pk.data.len) == seen[i].hash);
        }
        ts_assert(ts_eio_payload_next(&it, &pk) == 0);
        /* a valid body without base64 pieces re-encodes to itself */
        if (rc == 0 && !any_binary)
            ts_assert(b->len == size && memcmp(b->data, data, size) == 0);
    }
    ts_buf_unref(b);
    free(body);
    return 0;
}
