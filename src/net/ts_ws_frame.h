/* ts_ws_frame.h - RFC 6455 codec: pure functions over byte buffers, no
 * sockets and no hidden state, so the same code serves the server,
 * libtabsync (client role, masked frames) and the fuzzer. */
#ifndef TS_WS_FRAME_H
#define TS_WS_FRAME_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_buf.h"

enum {
    TS_WS_OP_CONT = 0x0,
    TS_WS_OP_TEXT = 0x1,
    TS_WS_OP_BINARY = 0x2,
    TS_WS_OP_CLOSE = 0x8,
    TS_WS_OP_PING = 0x9,
    TS_WS_OP_PONG = 0xA,
};

enum {
    TS_WS_CLOSE_NORMAL = 1000,
    TS_WS_CLOSE_GOING_AWAY = 1001,
    TS_WS_CLOSE_PROTOCOL = 1002,
    TS_WS_CLOSE_UNSUPPORTED = 1003,
    TS_WS_CLOSE_NO_STATUS = 1005, /* never on the wire: "close had no code" */
    TS_WS_CLOSE_ABNORMAL = 1006,  /* never on the wire */
    TS_WS_CLOSE_BAD_DATA = 1007,  /* invalid UTF-8 in a text message */
    TS_WS_CLOSE_POLICY = 1008,
    TS_WS_CLOSE_TOO_BIG = 1009,
    TS_WS_CLOSE_INTERNAL = 1011,
};

typedef enum ts_ws_role {
    TS_WS_SERVER = 0, /* peer frames must be masked; ours are not */
    TS_WS_CLIENT = 1, /* peer frames must not be masked; ours are */
} ts_ws_role_t;

#define TS_WS_MAX_HEADER 14 /* 2 + 8 (length) + 4 (mask) */

/* One complete message or control frame handed to the caller. */
typedef struct ts_ws_msg {
    uint8_t opcode;      /* TS_WS_OP_TEXT, _BINARY, _CLOSE, _PING or _PONG */
    const uint8_t *data; /* unmasked payload (for CLOSE: the reason text) */
    size_t len;
    uint16_t close_code; /* CLOSE only: the peer's code, or 1005 if none */
} ts_ws_msg_t;

/* Incremental reader: frames in, messages out. Reassembles fragmented
 * messages, validates UTF-8 of text messages (also across fragments), and
 * passes control frames interleaved between fragments straight through. */
typedef struct ts_ws_reader {
    /* Public (set before the first feed), read-only (set when feed returns
     * < 0) and private fields are interleaved so that the order leaves no
     * holes (32 bytes): every WebSocket connection embeds one. The error's
     * text is not here: ts_ws_reader_errmsg. */
    ts_sbuf_t frag;       /* private: fragments reassembled so far */
    uint32_t max_message; /* public: bytes of a whole (reassembled) message; 0 = 1 MB
                           * (ts_ws_reader_init clamps larger limits to 4 GiB - 1) */
    int err;              /* read-only: TS_EPROTO, TS_ETOOBIG, TS_EUTF8 */
    uint32_t utf8_state;  /* private */
    uint16_t close_code;  /* read-only: what to send the peer: 1002, 1007 or 1009 */
    uint8_t frag_opcode;  /* private: TEXT/BINARY while a fragmented message is open */
    uint8_t role;         /* public: ts_ws_role_t */
} ts_ws_reader_t;

void ts_ws_reader_init(ts_ws_reader_t *r, ts_ws_role_t role, size_t max_message);
/* Why the last feed failed, e.g. "ws: frame with reserved bits 0x40 set";
 * "" while r->err is 0. Borrowed from a per-thread buffer, valid until the
 * next reader error on the same thread: read it right after the failing
 * call. (A buffer in the reader would cost every idle WebSocket 128 bytes,
 * a pointer 8, which is what keeps ts_conn in a 384-byte jemalloc class.) */
const char *ts_ws_reader_errmsg(const ts_ws_reader_t *r);
void ts_ws_reader_deinit(ts_ws_reader_t *r);

/* Feeds bytes. `data` is mutable: payloads are unmasked in place.
 * Returns 1 when *out holds a message: `*used` bytes were consumed, and
 * out->data points into `data` or into the reader, valid until the next
 * call. Returns 0 when no further message can be produced from `data`:
 * `*used` bytes were consumed (whole frames, e.g. non-final fragments,
 * stored internally); the caller keeps data[*used..len) and calls again with
 * more bytes appended. Returns < 0 on a protocol violation (r->err,
 * r->close_code, ts_ws_reader_errmsg say which); the connection must be closed.
 * Limits are enforced from the frame header, before the payload arrives. */
int ts_ws_reader_feed(ts_ws_reader_t *r, uint8_t *data, size_t len, size_t *used,
                      ts_ws_msg_t *out);

/* Writes a frame header into `out` (TS_WS_MAX_HEADER bytes) and returns its
 * length. `mask` is NULL for unmasked (server) frames. */
size_t ts_ws_frame_header(uint8_t *out, uint8_t opcode, int fin, uint64_t len,
                          const uint8_t *mask);
/* Returns new: a complete unmasked single frame (header + payload). */
ts_buf_t *ts_ws_frame_encode(uint8_t opcode, const void *payload, size_t len);
/* Returns new: a CLOSE frame with `code` and a reason (truncated to fit 125). */
ts_buf_t *ts_ws_frame_encode_close(uint16_t code, const char *reason);
/* XOR-masks p[0..len) in place as if p started at payload offset `offset`. */
void ts_ws_mask(uint8_t *p, size_t len, const uint8_t mask[4], size_t offset);

/* Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key (SHA-1 + base64).
 * `out` receives 28 characters and a NUL. Returns 0, or TS_EPROTO if the
 * key is not 24 base64 characters encoding 16 bytes. */
int ts_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Internal, for the accept key and its tests: the 20-byte SHA-1 digest of
 * data[0..len). Not for anything that needs a secure hash. */
void ts_ws__sha1(const void *data, size_t len, uint8_t out[20]);

/* Incremental UTF-8 validation (Hoehrmann-style DFA). state starts at 0;
 * returns the new state: 0 = complete and valid so far, 1 = invalid (sticky),
 * other = inside a multi-byte sequence. */
#define TS_UTF8_ACCEPT 0u
#define TS_UTF8_REJECT 1u
uint32_t ts_utf8_validate(uint32_t state, const uint8_t *p, size_t len);

#endif
