/* packet_int.h - private to sio: the msgpack half of the packet codec,
 * called by packet.c's dispatch on ts_sio_parser_kind_t, and the pieces of
 * the JSON writer that the canonical-JSON scanner (packet_raw.c) shares. */
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

/* Length (2-4) of the valid RFC 3629 UTF-8 sequence starting at p[0]
 * (>= 0x80), or 0 if it is not one (overlong, surrogate, > U+10FFFF, cut). */
size_t ts_sio__utf8_seq(const uint8_t *p, size_t n);
/* 1 if p[0..n) is valid UTF-8 without NUL. */
int ts_sio__utf8_no_nul(const uint8_t *p, size_t n);

#define TS_SIO_REAL_MAX 40
/* Writes `v` as ECMAScript's Number::toString does (JSON.stringify's
 * numbers; "null" if not finite). Returns the length (< TS_SIO_REAL_MAX),
 * no NUL. */
size_t ts_sio__fmt_real(char out[TS_SIO_REAL_MAX], double v);

#endif
