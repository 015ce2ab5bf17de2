/* packet.c - Socket.IO v5 packets in the string form of the npm
 * socket.io-parser: the decoder (one text message, then its binary
 * attachments), the encoder (JSON written byte for byte as JSON.stringify
 * writes it, by core's ts_json_dump over the jansson tree), the shape checks
 * both parsers share, and the dispatch to the msgpack half (packet_msgpack.c).
 *
 * Where we differ from Node's parser (all on inputs no socket.io client
 * sends; each closes the connection where Node would not):
 *  - attachment counts and ack ids are plain digit runs (Node takes anything
 *    Number() accepts, e.g. "51.0-", " 1-"); an ack id above INT64_MAX is an
 *    error (Node rounds it to a double);
 *  - JSON is parsed by jansson: lone surrogate escapes ("\ud800"), NUL in an
 *    object key, numbers beyond the double range (1e400, Node: Infinity) and
 *    nesting deeper than 2048 are errors. Integers beyond int64 are kept as
 *    doubles, like JS does (the payload is re-parsed with INT_AS_REAL), and
 *    the encoder writes integers beyond 2^53 as the nearest double, as
 *    JSON.stringify would (so int64 values above 2^53 lose precision on the
 *    wire, exactly as they would through a Node server);
 *  - a namespace must be valid UTF-8 without NUL (it becomes a C string);
 *  - an empty string is an error (Node: Number("") is 0, so it reads as a
 *    CONNECT to "/"), and a space is not an ack id (Node: "2 [1]" has id 0);
 *  - an object {"_placeholder":true,...} in a packet without attachments is
 *    an error (Node keeps it as a plain object); in our representation every
 *    such object stands for a binary value, so it must name an attachment. */
#include "sio/ts_sio_packet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"
#include "sio/packet_int.h"

/* ---- packets and encoded messages ---- */

void ts_sio_packet_clear(ts_sio_packet_t *pkt) {
    free(pkt->nsp);
    json_decref(pkt->data);
    for (size_t i = 0; i < pkt->nattach; i++)
        if (pkt->attach) ts_buf_unref(pkt->attach[i]);
    free(pkt->attach);
    memset(pkt, 0, sizeof *pkt);
    pkt->id = TS_SIO_NO_ID;
}

void ts_sio_encoded_clear(ts_sio_encoded_t *enc) {
    for (size_t i = 0; i < enc->n; i++) ts_buf_unref(enc->msgs[i].buf);
    free(enc->msgs);
    enc->msgs = NULL;
    enc->n = 0;
}

static const char *const reserved_events[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

int ts_sio_is_reserved_event(const char *name) {
    for (size_t i = 0; i < TS_ARRAY_LEN(reserved_events); i++)
        if (strcmp(name, reserved_events[i]) == 0) return 1;
    return 0;
}

__attribute__((format(printf, 3, 4))) static int fail(ts_sio_decoder_t *d, int code,
                                                      const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->errmsg, sizeof d->errmsg, fmt, ap);
    va_end(ap);
    d->err = code;
    return code;
}

/* ---- shape checks (both parsers) ---- */

/* Walks `v`: every object whose "_placeholder" is true must carry a "num"
 * naming one of the `nattach` attachments. An integral real num (1.0, or
 * any number of a payload re-parsed with INT_AS_REAL) is rewritten as an
 * integer so users can read it with json_integer_value. Does not descend
 * into placeholders (Node replaces them whole). Returns 0, or -1 with a
 * description in msg. */
static int walk_placeholders(json_t *v, size_t nattach, int fix, char *msg, size_t msglen) {
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (walk_placeholders(e, nattach, fix, msg, msglen) < 0) return -1;
        }
        return 0;
    }
    if (!json_is_object(v)) return 0;
    if (json_is_true(json_object_get(v, "_placeholder"))) {
        json_t *num = json_object_get(v, "num");
        double n;
        if (json_is_integer(num)) {
            n = (double)json_integer_value(num);
        } else if (json_is_real(num) && json_real_value(num) == floor(json_real_value(num))) {
            n = json_real_value(num);
            if (fix && n >= 0 && n < (double)nattach)
                json_object_set_new(v, "num", json_integer((json_int_t)n));
        } else {
            snprintf(msg, msglen, "placeholder without an integer \"num\"");
            return -1;
        }
        if (n < 0 || n >= (double)nattach) {
            snprintf(msg, msglen, "placeholder num %.0f out of range (%zu attachments)", n,
                     nattach);
            return -1;
        }
        return 0;
    }
    const char *key;
    json_t *e;
    json_object_foreach(v, key, e) {
        if (walk_placeholders(e, nattach, fix, msg, msglen) < 0) return -1;
    }
    return 0;
}

static int is_event_name_ok(const json_t *first) {
    if (json_is_number(first)) return 1;
    if (!json_is_string(first)) return 0;
    /* "connect\u0000x" is not "connect" */
    const char *s = json_string_value(first);
    return strlen(s) != json_string_length(first) || !ts_sio_is_reserved_event(s);
}

int ts_sio__check_shape(ts_sio_decoder_t *d, const ts_sio_packet_t *pkt) {
    const json_t *data = pkt->data;
    /* Node's string decoder validates a payload only when there is one, so
     * "2", "3" and "4" decode with data undefined (the server then treats an
     * EVENT/ACK as having no arguments). The msgpack parser checks every
     * packet, absent data included. */
    int absent_ok = data == NULL && d->kind == TS_SIO_PARSER_JSON;
    if (!pkt->nsp) return fail(d, TS_EPROTO, "sio: packet without a namespace");
    if (pkt->id < TS_SIO_NO_ID) return fail(d, TS_EPROTO, "sio: negative ack id");
    switch (pkt->type) {
    case TS_SIO_CONNECT:
        if (data && !json_is_object(data))
            return fail(d, TS_EPROTO, "sio: invalid payload: CONNECT takes an object");
        break;
    case TS_SIO_DISCONNECT:
        if (data) return fail(d, TS_EPROTO, "sio: invalid payload: DISCONNECT takes none");
        break;
    case TS_SIO_EVENT:
        if (absent_ok) break;
        if (!json_is_array(data) || json_array_size(data) == 0)
            return fail(d, TS_EPROTO, "sio: invalid payload: EVENT takes a non-empty array");
        if (!is_event_name_ok(json_array_get(data, 0)))
            return fail(d, TS_EPROTO,
                        "sio: invalid payload: event name must be a number or a string "
                        "other than a reserved name");
        break;
    case TS_SIO_ACK:
        if (absent_ok) break;
        if (!json_is_array(data))
            return fail(d, TS_EPROTO, "sio: invalid payload: ACK takes an array");
        break;
    case TS_SIO_CONNECT_ERROR:
        if (absent_ok) break;
        if (!json_is_string(data) && !json_is_object(data))
            return fail(d, TS_EPROTO,
                        "sio: invalid payload: CONNECT_ERROR takes a string or an object");
        break;
    default:
        return fail(d, TS_EPROTO, "sio: unknown packet type %u", pkt->type);
    }
    char msg[96];
    if (data && walk_placeholders((json_t *)data, pkt->nattach, 1, msg, sizeof msg) < 0)
        return fail(d, TS_EPROTO, "sio: illegal attachments: %s", msg);
    return 0;
}

/* ---- string decoder ---- */

void ts_sio_decoder_init(ts_sio_decoder_t *d, ts_sio_parser_kind_t kind) {
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->max_attachments = TS_SIO_MAX_ATTACHMENTS_DEFAULT;
    d->pending.id = TS_SIO_NO_ID;
}

void ts_sio_decoder_deinit(ts_sio_decoder_t *d) {
    ts_sio_packet_clear(&d->pending);
    d->waiting = 0;
    d->received = 0;
}

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int parse_json(ts_sio_decoder_t *d, const uint8_t *p, size_t n, json_t **out) {
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_error_t err;
    json_t *v = ts_json_loadb(p, n, flags, &err);
    if (!v && json_error_code(&err) == json_error_numeric_overflow) {
        /* JSON.parse turns 12345678901234567890 into a double; so do we.
         * INT_AS_REAL applies to the whole payload, which our encoder
         * writes back the same way (integral doubles print as integers). */
        v = json_loadb((const char *)p, n, flags | JSON_DECODE_INT_AS_REAL, &err);
    }
    if (!v)
        return fail(d, TS_EJSON, "sio: invalid JSON payload at byte %d: %s", err.position,
                    err.text);
    *out = v;
    return 0;
}

/* Decodes "<type>[<n>-][<nsp>,][<id>][<json>]" (the Engine.IO '4' already
 * stripped) into *pkt, which the caller has zeroed; returns 0 or < 0 with
 * *pkt possibly half-filled (the caller clears it). */
static int decode_string(ts_sio_decoder_t *d, const uint8_t *p, size_t len, ts_sio_packet_t *pkt) {
    if (len == 0) return fail(d, TS_EPROTO, "sio: empty packet");
    if (p[0] < '0' || p[0] > '6') {
        if (p[0] >= 0x20 && p[0] < 0x7f)
            return fail(d, TS_EPROTO, "sio: unknown packet type '%c'", p[0]);
        return fail(d, TS_EPROTO, "sio: unknown packet type 0x%02x", p[0]);
    }
    uint8_t type = (uint8_t)(p[0] - '0');
    size_t pos = 1;

    if (type == TS_SIO_BINARY_EVENT || type == TS_SIO_BINARY_ACK) {
        size_t start = pos, n = 0;
        while (pos < len && p[pos] != '-') {
            if (!is_digit(p[pos]))
                return fail(d, TS_EPROTO, "sio: illegal attachments: count is not a number");
            if (n <= d->max_attachments) n = n * 10 + (size_t)(p[pos] - '0');
            pos++;
        }
        if (pos == len) return fail(d, TS_EPROTO, "sio: illegal attachments: no '-' after count");
        if (pos == start || n < 1)
            return fail(d, TS_EPROTO, "sio: illegal attachments: count must be at least 1");
        if (n > d->max_attachments)
            return fail(d, TS_ELIMIT, "sio: too many attachments (limit %zu)",
                        d->max_attachments);
        pkt->nattach = n;
        pos++; /* '-' */
        type = type == TS_SIO_BINARY_EVENT ? TS_SIO_EVENT : TS_SIO_ACK;
    }
    pkt->type = type;

    if (pos < len && p[pos] == '/') {
        /* runs to the next ',' or the end: the client sends "40/custom" */
        const uint8_t *comma = memchr(p + pos, ',', len - pos);
        size_t end = comma ? (size_t)(comma - p) : len;
        if (!ts_json_utf8_no_nul(p + pos, end - pos))
            return fail(d, TS_EPROTO, "sio: namespace is not valid UTF-8 (or holds NUL)");
        pkt->nsp = ts_xstrndup((const char *)p + pos, end - pos);
        pos = comma ? end + 1 : end;
    } else {
        pkt->nsp = ts_xstrdup("/");
    }

    if (pos < len && is_digit(p[pos])) {
        int64_t id = 0;
        while (pos < len && is_digit(p[pos])) {
            int digit = p[pos] - '0';
            if (id > (INT64_MAX - digit) / 10)
                return fail(d, TS_EPROTO, "sio: ack id too large");
            id = id * 10 + digit;
            pos++;
        }
        pkt->id = id;
    }

    if (pos < len) {
        int rc = parse_json(d, p + pos, len - pos, &pkt->data);
        if (rc < 0) return rc;
    }
    return ts_sio__check_shape(d, pkt);
}

static void packet_zero(ts_sio_packet_t *pkt) {
    memset(pkt, 0, sizeof *pkt);
    pkt->id = TS_SIO_NO_ID;
}

/* A decoding error ends the connection: drop a half-collected packet. */
static int feed_fail(ts_sio_decoder_t *d, int rc) {
    ts_sio_packet_clear(&d->pending);
    d->waiting = 0;
    d->received = 0;
    return rc;
}

int ts_sio_decoder_feed(ts_sio_decoder_t *d, const uint8_t *p, size_t len, int binary,
                        ts_sio_packet_t *out) {
    packet_zero(out); /* on any return but 1, *out owns nothing */
    d->err = 0;
    d->errmsg[0] = '\0';

    if (d->kind == TS_SIO_PARSER_MSGPACK) {
        if (!binary)
            return fail(d, TS_EPROTO, "sio: text message on a connection using the msgpack parser");
        int rc = ts_sio__msgpack_decode(d, p, len, out);
        if (rc < 0) {
            if (d->err == 0) d->err = rc;
            return rc;
        }
        /* the msgpack half checks too; a second look is cheap and keeps
         * the contract of this function in one place */
        rc = ts_sio__check_shape(d, out);
        if (rc < 0) ts_sio_packet_clear(out);
        return rc < 0 ? rc : 1;
    }
    if (d->kind != TS_SIO_PARSER_JSON) return fail(d, TS_EINVAL, "sio: unknown parser kind");

    if (binary) {
        if (!d->waiting)
            return feed_fail(d, fail(d, TS_EPROTO,
                                     "sio: binary message but no attachment is expected"));
        d->pending.attach[d->received++] = ts_buf_from(p, len);
        if (d->received < d->pending.nattach) return 0;
        *out = d->pending;
        packet_zero(&d->pending);
        d->waiting = 0;
        d->received = 0;
        return 1;
    }
    if (d->waiting)
        return feed_fail(d, fail(d, TS_EPROTO,
                                 "sio: text message while %zu of %zu attachments are expected",
                                 d->pending.nattach - d->received, d->pending.nattach));

    ts_sio_packet_t pkt;
    packet_zero(&pkt);
    int rc = decode_string(d, p, len, &pkt);
    if (rc < 0) {
        /* nattach counted slots that were never allocated */
        pkt.nattach = 0;
        ts_sio_packet_clear(&pkt);
        return rc;
    }
    if (pkt.nattach == 0) {
        *out = pkt;
        return 1;
    }
    pkt.attach = ts_xcalloc(pkt.nattach, sizeof *pkt.attach);
    d->pending = pkt;
    d->waiting = 1;
    d->received = 0;
    return 0;
}

/* ---- encoder: JSON written by ts_json_dump, as JSON.stringify writes it ---- */

static int encode_json(const ts_sio_packet_t *pkt, ts_sio_encoded_t *out) {
    uint8_t type = pkt->type;
    if (type == TS_SIO_BINARY_EVENT) type = TS_SIO_EVENT;
    if (type == TS_SIO_BINARY_ACK) type = TS_SIO_ACK;
    if (type > TS_SIO_CONNECT_ERROR) return TS_EINVAL;
    const char *nsp = pkt->nsp ? pkt->nsp : "/";
    int root = strcmp(nsp, "/") == 0;
    /* the decoder reads a namespace only from a '/' up to a ',' */
    if (!root && (nsp[0] != '/' || strchr(nsp, ','))) return TS_EINVAL;
    if (pkt->id < TS_SIO_NO_ID) return TS_EINVAL;
    if (pkt->nattach > 0) {
        if (type != TS_SIO_EVENT && type != TS_SIO_ACK) return TS_EINVAL;
        if (!pkt->attach) return TS_EINVAL;
        for (size_t i = 0; i < pkt->nattach; i++)
            if (!pkt->attach[i]) return TS_EINVAL;
    }
    char msg[96];
    if (pkt->data && walk_placeholders(pkt->data, pkt->nattach, 0, msg, sizeof msg) < 0)
        return TS_EINVAL;

    ts_sbuf_t s = TS_SBUF_INIT;
    ts_sbuf_putc(&s, '4'); /* Engine.IO message, so the buffer goes out as it is */
    if (pkt->nattach > 0)
        ts_sbuf_printf(&s, "%c%zu-", type == TS_SIO_EVENT ? '5' : '6', pkt->nattach);
    else
        ts_sbuf_putc(&s, (char)('0' + type));
    if (!root) {
        ts_sbuf_append_str(&s, nsp);
        ts_sbuf_putc(&s, ',');
    }
    if (pkt->id != TS_SIO_NO_ID) ts_sbuf_printf(&s, "%lld", (long long)pkt->id);
    if (pkt->data && !json_is_null(pkt->data)) ts_json_dump(&s, pkt->data); /* Node: null != data */

    out->msgs = ts_xcalloc(1 + pkt->nattach, sizeof *out->msgs);
    out->msgs[0] = (ts_sio_wire_t){ts_sbuf_finish(&s), 0};
    for (size_t i = 0; i < pkt->nattach; i++)
        out->msgs[1 + i] = (ts_sio_wire_t){ts_buf_ref(pkt->attach[i]), 1};
    out->n = 1 + pkt->nattach;
    return 0;
}

int ts_sio_encode(ts_sio_parser_kind_t kind, const ts_sio_packet_t *pkt, ts_sio_encoded_t *out) {
    out->n = 0;
    out->msgs = NULL;
    switch (kind) {
    case TS_SIO_PARSER_JSON:
        return encode_json(pkt, out);
    case TS_SIO_PARSER_MSGPACK:
        return ts_sio__msgpack_encode(pkt, out);
    }
    return TS_EINVAL;
}
