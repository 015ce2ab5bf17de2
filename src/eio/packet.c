/* packet.c - Engine.IO v4 packet and polling-payload codec. Pure functions
 * over caller-owned bytes: a payload's pieces are split on 0x1e and "b"
 * pieces are base64-decoded in place, so decoding never allocates. */
#include "eio/ts_eio_packet.h"

#include <stdio.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_util.h"

enum { ITER_RUNNING = 0, ITER_DONE = 1, ITER_FAILED = 2 };

static int is_type_char(uint8_t c) { return c >= '0' && c <= '6'; }

int ts_eio_packet_decode(const uint8_t *p, size_t len, ts_eio_packet_t *out) {
    if (len == 0 || !is_type_char(p[0])) return TS_EPROTO;
    out->type = (uint8_t)(p[0] - '0');
    out->binary = 0;
    out->data = ts_slice(p + 1, len - 1);
    return 0;
}

void ts_eio_payload_iter_init(ts_eio_payload_iter_t *it, uint8_t *body, size_t len) {
    it->p = body;
    it->left = len;
    it->done = ITER_RUNNING;
    it->errmsg[0] = '\0';
}

/* Printable form of a byte for error messages: peer bytes are never echoed raw. */
static void describe_byte(char *out, size_t n, uint8_t c) {
    if (c >= 0x20 && c < 0x7f && c != '\'')
        snprintf(out, n, "'%c'", c);
    else
        snprintf(out, n, "0x%02x", c);
}

static int iter_fail(ts_eio_payload_iter_t *it) {
    it->done = ITER_FAILED;
    return TS_EPROTO;
}

int ts_eio_payload_next(ts_eio_payload_iter_t *it, ts_eio_packet_t *out) {
    if (it->done == ITER_DONE) return 0;
    if (it->done == ITER_FAILED) return TS_EPROTO; /* errmsg still says why */

    /* Node splits the whole body on the separator, so an empty body is one
     * empty piece, and a trailing separator ends with one: both are errors. */
    uint8_t *piece = it->p;
    uint8_t *rs = it->left ? memchr(piece, TS_EIO_RS, it->left) : NULL;
    size_t n = rs ? (size_t)(rs - piece) : it->left;
    if (rs) {
        it->p = rs + 1;
        it->left -= n + 1;
    } else {
        it->p += n;
        it->left = 0;
        it->done = ITER_DONE;
    }

    if (n == 0) {
        snprintf(it->errmsg, sizeof it->errmsg, "eio: empty packet in polling payload");
        return iter_fail(it);
    }
    if (piece[0] == 'b') {
        /* Decoding in place is safe: output never overtakes input. */
        long m = ts_b64_decode((const char *)piece + 1, n - 1, piece + 1);
        if (m < 0) {
            snprintf(it->errmsg, sizeof it->errmsg,
                     "eio: invalid base64 in a binary packet of %zu chars", n - 1);
            return iter_fail(it);
        }
        out->type = TS_EIO_MESSAGE;
        out->binary = 1;
        out->data = ts_slice(piece + 1, (size_t)m);
        return 1;
    }
    if (!is_type_char(piece[0])) {
        char c[8];
        describe_byte(c, sizeof c, piece[0]);
        snprintf(it->errmsg, sizeof it->errmsg,
                 "eio: unknown packet type %s in polling payload (expected 0-6 or b)", c);
        return iter_fail(it);
    }
    out->type = (uint8_t)(piece[0] - '0');
    out->binary = 0;
    out->data = ts_slice(piece + 1, n - 1);
    return 1;
}

size_t ts_eio_payload_size(int first, int binary, size_t len) {
    return (first ? 0 : 1) + 1 + (binary ? ts_b64_enc_len(len) : len);
}

void ts_eio_payload_append(ts_sbuf_t *payload, uint8_t type, int binary, const uint8_t *data,
                           size_t len) {
    int first = ts_sbuf_len(payload) == 0;
    ts_sbuf_reserve(payload, ts_eio_payload_size(first, binary, len));
    if (!first) ts_sbuf_putc(payload, (char)TS_EIO_RS);
    if (binary) {
        /* Binary is always a message: "b" replaces the type character. The
         * encoder's trailing NUL lands on the builder's spare byte. */
        ts_sbuf_putc(payload, 'b');
        char *at = (char *)ts_sbuf_extend(payload, ts_b64_enc_len(len));
        ts_b64_encode(data, len, at);
    } else {
        ts_sbuf_putc(payload, (char)('0' + type));
        if (len) ts_sbuf_append(payload, data, len);
    }
}
