/* packet_int.h - private to sio: the msgpack half of the packet codec,
 * called by packet.c's dispatch on ts_sio_parser_kind_t, and the shape
 * checks both parsers share. */
#ifndef TS_SIO_PACKET_INT_H
#define TS_SIO_PACKET_INT_H
#include "sio/ts_sio_packet.h"

/* Decodes one binary Engine.IO message holding one msgpack-encoded packet.
 * Binary values (msgpack bin) become placeholders + attachments, so the
 * result looks exactly like a decoded JSON packet. Returns 1 or < 0 with
 * d->err/d->errmsg set (TS_EPROTO). */
int ts_sio__msgpack_decode(ts_sio_decoder_t *d, const uint8_t *p, size_t len,
                           ts_sio_packet_t *out);
/* Encodes `pkt` as one msgpack map (placeholders back to bin values) into
 * one binary message. Returns 0 or TS_EINVAL. */
int ts_sio__msgpack_encode(const ts_sio_packet_t *pkt, ts_sio_encoded_t *out);
/* Shared validation of a decoded packet's shape (both parsers): returns 0
 * or TS_EPROTO with d->errmsg set. */
int ts_sio__check_shape(ts_sio_decoder_t *d, const ts_sio_packet_t *pkt);

#endif
