/* ts_sio_packet.h - Socket.IO v5 packets and the two parsers that carry
 * them: the default JSON string form with binary attachments, and the
 * msgpack form of the npm socket.io-msgpack-parser. Both decode to the same
 * in-memory packet: a jansson tree in which every binary value stands as a
 * placeholder {"_placeholder":true,"num":i}, and an array of attachments. */
#ifndef TS_SIO_PACKET_H
#define TS_SIO_PACKET_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"

typedef enum ts_sio_type {
    TS_SIO_CONNECT = 0,
    TS_SIO_DISCONNECT = 1,
    TS_SIO_EVENT = 2,
    TS_SIO_ACK = 3,
    TS_SIO_CONNECT_ERROR = 4,
    TS_SIO_BINARY_EVENT = 5, /* string form only; decoded as EVENT */
    TS_SIO_BINARY_ACK = 6,   /* string form only; decoded as ACK */
} ts_sio_type_t;

#define TS_SIO_MAX_ATTACHMENTS_DEFAULT 10
#define TS_SIO_NO_ID (-1)

typedef struct ts_sio_packet {
    uint8_t type;        /* CONNECT..CONNECT_ERROR: a decoder turns 5/6 into 2/3 */
    char *nsp;           /* owned, NUL-terminated, "/" by default */
    int64_t id;          /* ack id, or TS_SIO_NO_ID */
    json_t *data;        /* owned reference, NULL when the packet had none */
    size_t nattach;      /* binary values referenced by placeholders in data */
    ts_buf_t **attach;   /* owned references, nattach of them */
} ts_sio_packet_t;

/* Frees the packet's members (not the struct itself) and zeroes it. */
void ts_sio_packet_clear(ts_sio_packet_t *pkt);

/* One Engine.IO message produced by an encoder. */
/* A text message's bytes start with the Engine.IO message type '4'
 * ("42[\"hi\"]"), so Engine.IO sends the buffer as it is, shared by every
 * recipient of a broadcast, without copying. Binary messages are the raw
 * bytes (Engine.IO adds no type to those). */
typedef struct ts_sio_wire {
    ts_buf_t *buf;  /* owned reference */
    uint8_t binary; /* 0: text message, 1: binary message */
} ts_sio_wire_t;

typedef struct ts_sio_encoded {
    size_t n;            /* messages, in send order */
    ts_sio_wire_t *msgs; /* owned */
} ts_sio_encoded_t;
void ts_sio_encoded_clear(ts_sio_encoded_t *enc);

typedef enum ts_sio_parser_kind {
    TS_SIO_PARSER_JSON = 0,    /* socket.io-parser (default) */
    TS_SIO_PARSER_MSGPACK = 1, /* socket.io-msgpack-parser */
} ts_sio_parser_kind_t;

/* Stateful decoder for one connection: a BINARY_EVENT header waits for
 * its attachments, which arrive as the following binary messages. */
typedef struct ts_sio_decoder {
    /* public: set before use (ts_sio_decoder_init sets defaults) */
    ts_sio_parser_kind_t kind;
    size_t max_attachments; /* default 10 */
    /* read-only: set when a call returns < 0 */
    int err;
    char errmsg[128];
    /* private */
    ts_sio_packet_t pending; /* a binary packet collecting attachments */
    size_t received;
    int waiting;
} ts_sio_decoder_t;

void ts_sio_decoder_init(ts_sio_decoder_t *d, ts_sio_parser_kind_t kind);
void ts_sio_decoder_deinit(ts_sio_decoder_t *d);
/* Feeds one Engine.IO message's data (text without the '4', or binary
 * bytes). Returns 1 when *out holds a
 * complete packet (caller owns it, clear with ts_sio_packet_clear), 0 when
 * more attachments are awaited, < 0 (TS_EPROTO, TS_EJSON, TS_ELIMIT) on
 * any input Node's parser rejects, with d->errmsg saying why; after an
 * error the connection must be closed. A decoded EVENT's data is NULL (no
 * payload, as Node's parser allows) or an array whose first element is a
 * string that is not a reserved name, or a number. */
int ts_sio_decoder_feed(ts_sio_decoder_t *d, const uint8_t *p, size_t len, int binary,
                        ts_sio_packet_t *out);

/* Encodes a packet. For the JSON parser, a packet with attachments becomes
 * BINARY_EVENT/BINARY_ACK plus one binary message per attachment; compact
 * JSON with keys in insertion order, exactly as JSON.stringify would write
 * it. For msgpack, one binary message. Returns 0 or TS_EINVAL (a packet
 * that cannot be encoded, e.g. a placeholder out of range). */
int ts_sio_encode(ts_sio_parser_kind_t kind, const ts_sio_packet_t *pkt, ts_sio_encoded_t *out);

/* Reserved event names: a client EVENT with one of them is invalid. */
int ts_sio_is_reserved_event(const char *name);

/* ---- raw events: the relay fast path (packet_raw.c) ----
 * Most events a client sends are written by JSON.stringify, and a server
 * that relays them would write the very same bytes again. A raw event
 * describes such a packet by slices of the received message instead of a
 * jansson tree, so a relay copies the argument bytes instead of parsing
 * and re-serializing them. */

/* One argument of an event as canonical JSON text: the bytes
 * JSON.stringify(JSON.parse(text)) gives back unchanged. */
typedef struct ts_sio_raw_arg {
    ts_slice_t text; /* borrowed */
    const char *str; /* a string argument without escapes: its value,
                        NUL-terminated (set by the sio server), else NULL */
} ts_sio_raw_arg_t;

#define TS_SIO_RAW_MAX_ARGS 16

typedef struct ts_sio_raw_event {
    ts_slice_t nsp;  /* borrowed; "/" when the packet names none */
    int64_t id;      /* ack id, or TS_SIO_NO_ID */
    ts_slice_t name; /* the event name's bytes (a string without escapes) */
    size_t nargs;
    ts_sio_raw_arg_t args[TS_SIO_RAW_MAX_ARGS]; /* text set, str NULL */
} ts_sio_raw_event_t;

/* Recognizes the common packet without building a tree: a text EVENT (no
 * attachments) whose name is a string without escapes and whose payload
 * is canonical JSON (ts_json_is_canonical in core/ts_json.h: no
 * whitespace, JSON.stringify's escapes and numbers, integers within
 * +-2^53, no duplicate, numeric or "_placeholder" keys, nesting up to 32),
 * with at most 16 arguments. `p` is the message without
 * the Engine.IO '4'. Returns 1 and fills *out (borrowing from p), or 0
 * for anything else, valid or not: the caller then decodes the message
 * with ts_sio_decoder_feed. When it returns 1, ts_sio_decoder_feed would
 * have accepted the message too, as an EVENT of the same namespace, id and
 * values, each argument encoding back to exactly its text. */
int ts_sio_raw_event_parse(const uint8_t *p, size_t len, ts_sio_raw_event_t *out);
/* The same for a decoder's connection: 0 as well when the decoder is not
 * the JSON parser, the message is binary, or attachments are awaited. */
int ts_sio_decoder_feed_raw(const ts_sio_decoder_t *d, const uint8_t *p, size_t len, int binary,
                            ts_sio_raw_event_t *out);
/* Encodes, for the JSON parser, an EVENT [event, args..., offset?] (event
 * not NULL) or an ACK [args...] (event NULL) whose arguments are canonical
 * texts: the bytes ts_sio_encode writes for the same values. `offset` (a
 * recovery offset) may be NULL. Returns 0 or TS_EINVAL (an invalid
 * namespace or id). */
int ts_sio_encode_raw(const char *nsp, int64_t id, const char *event,
                      const ts_sio_raw_arg_t *args, size_t nargs, const char *offset,
                      ts_sio_encoded_t *out);

#endif
