/* ts_eio_packet.h - Engine.IO v4 packet and polling-payload codec. Pure:
 * no sockets, no session state; the fuzzer and the unit tables drive it. */
#ifndef TS_EIO_PACKET_H
#define TS_EIO_PACKET_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"
#include "core/ts_slice.h"

typedef enum ts_eio_type {
    TS_EIO_OPEN = 0,
    TS_EIO_CLOSE = 1,
    TS_EIO_PING = 2,
    TS_EIO_PONG = 3,
    TS_EIO_MESSAGE = 4,
    TS_EIO_UPGRADE = 5,
    TS_EIO_NOOP = 6,
} ts_eio_type_t;

#define TS_EIO_RS 0x1e /* record separator between packets of a polling payload */

typedef struct ts_eio_packet {
    uint8_t type;    /* ts_eio_type_t */
    uint8_t binary;  /* 1: binary message (data are raw bytes) */
    ts_slice_t data; /* after the type character; borrowed from the input */
} ts_eio_packet_t;

/* Decodes one text packet as carried by a WebSocket text message:
 * "<type digit><data>". Returns 0 or TS_EPROTO (empty input, type not 0-6). */
int ts_eio_packet_decode(const uint8_t *p, size_t len, ts_eio_packet_t *out);

/* Iterates over the packets of a polling POST body ("4a<RS>bAQID<RS>2").
 * Base64 pieces ("b...") are decoded in place, so `body` is mutable and
 * the packets point into it. */
typedef struct ts_eio_payload_iter {
    uint8_t *p;   /* private: next piece */
    size_t left;  /* private */
    int done;     /* private */
    char errmsg[96]; /* read-only: why next returned TS_EPROTO */
} ts_eio_payload_iter_t;

void ts_eio_payload_iter_init(ts_eio_payload_iter_t *it, uint8_t *body, size_t len);
/* Returns 1 with *out set, 0 at the end, or TS_EPROTO for an invalid piece
 * (empty piece, unknown type, bad base64); the packets before it were valid. */
int ts_eio_payload_next(ts_eio_payload_iter_t *it, ts_eio_packet_t *out);

/* Appends one packet to a polling payload under construction, writing the
 * separator first unless the payload is empty: text as "<type><data>",
 * binary messages as "b<base64>". */
void ts_eio_payload_append(ts_sbuf_t *payload, uint8_t type, int binary, const uint8_t *data,
                           size_t len);

/* Size that ts_eio_payload_append would add (for maxPayload accounting). */
size_t ts_eio_payload_size(int first, int binary, size_t len);

#endif
