/* fuzz_sio_msgpack.c - libFuzzer driver for the msgpack Socket.IO packet
 * decoder. The input is one binary Engine.IO message fed to a decoder of
 * kind TS_SIO_PARSER_MSGPACK. A decoded packet must re-encode, decode back
 * to the same packet (tree and attachment bytes), and re-encode to the very
 * same bytes: our encoding is a fixed point. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "sio/ts_sio_packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void assert_same_packet(const ts_sio_packet_t *a, const ts_sio_packet_t *b) {
    ts_assert(a->type == b->type);
    ts_assert(a->type <= TS_SIO_CONNECT_ERROR);
    ts_assert(strcmp(a->nsp, b->nsp) == 0);
    ts_assert(a->id == b->id);
    ts_assert((a->data == NULL) == (b->data == NULL));
    ts_assert(!a->data || json_equal(a->data, b->data));
    ts_assert(a->nattach == b->nattach);
    for (size_t i = 0; i < a->nattach; i++) {
        ts_assert(a->attach[i]->len == b->attach[i]->len);
        ts_assert(memcmp(a->attach[i]->data, b->attach[i]->data, a->attach[i]->len) == 0);
    }
}

static ts_buf_t *encode_one(const ts_sio_packet_t *pkt) {
    ts_sio_encoded_t enc;
    int rc = ts_sio_encode(TS_SIO_PARSER_MSGPACK, pkt, &enc);
    ts_assert(rc == 0);
    ts_assert(enc.n == 1);
    ts_assert(enc.msgs[0].binary == 1);
    ts_buf_t *b = ts_buf_ref(enc.msgs[0].buf);
    ts_sio_encoded_clear(&enc);
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_MSGPACK);
    ts_sio_packet_t pkt;
    int rc = ts_sio_decoder_feed(&d, data, size, 1, &pkt);
    ts_assert(rc == 1 || rc < 0); /* one message is one packet: never "need more" */
    if (rc < 0) {
        ts_assert(d.err == rc);
        ts_assert(d.errmsg[0] != '\0');
        ts_assert(pkt.data == NULL && pkt.nsp == NULL && pkt.attach == NULL);
        ts_sio_decoder_deinit(&d);
        return 0;
    }

    ts_buf_t *wire = encode_one(&pkt);
    ts_sio_decoder_t d2;
    ts_sio_decoder_init(&d2, TS_SIO_PARSER_MSGPACK);
    ts_sio_packet_t again;
    rc = ts_sio_decoder_feed(&d2, wire->data, wire->len, 1, &again);
    ts_assert(rc == 1);
    assert_same_packet(&pkt, &again);

    ts_buf_t *wire2 = encode_one(&again);
    ts_assert(wire2->len == wire->len);
    ts_assert(memcmp(wire2->data, wire->data, wire->len) == 0);

    ts_buf_unref(wire2);
    ts_buf_unref(wire);
    ts_sio_packet_clear(&again);
    ts_sio_packet_clear(&pkt);
    ts_sio_decoder_deinit(&d2);
    ts_sio_decoder_deinit(&d);
    return 0;
}
