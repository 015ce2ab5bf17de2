/* packet_raw.c - the relay fast path of the JSON string form: recognizing
 * an EVENT whose payload is already canonical JSON (what JSON.stringify
 * writes) by one scan of core's canonical-JSON scanner (core/ts_json.h),
 * without a jansson tree, and encoding events whose arguments are such
 * texts by copying them.
 *
 * The fast path only ever says "yes, canonical" or "not for me": any input
 * it does not accept (whitespace, other escapes, 1.0, -0, big integers,
 * duplicate keys, anything invalid) goes through the full decoder, whose
 * answers and errors stay the reference. So it may be strict, never lax:
 * fuzz/fuzz_sio_packet.c checks that every accepted message decodes the
 * same way through both paths. */
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"
#include "sio/ts_sio_packet.h"

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int reserved_n(const uint8_t *p, size_t n) {
    char name[16];
    if (n >= sizeof name) return 0; /* longer than every reserved name */
    memcpy(name, p, n);
    name[n] = '\0';
    return ts_sio_is_reserved_event(name);
}

/* Mirrors decode_string in packet.c for "2[<nsp>,][<id>][...]". */
int ts_sio_raw_event_parse(const uint8_t *p, size_t len, ts_sio_raw_event_t *out) {
    if (len < 4 || p[0] != '2') return 0;
    size_t pos = 1;
    out->nsp = TS_SLICE_LIT("/");
    if (p[pos] == '/') {
        const uint8_t *comma = memchr(p + pos, ',', len - pos);
        if (!comma) return 0; /* no payload then */
        size_t end = (size_t)(comma - p);
        if (!ts_json_utf8_no_nul(p + pos, end - pos)) return 0;
        out->nsp = ts_slice(p + pos, end - pos);
        pos = end + 1;
    }
    out->id = TS_SIO_NO_ID;
    if (pos < len && is_digit(p[pos])) {
        int64_t id = 0;
        while (pos < len && is_digit(p[pos])) {
            int digit = p[pos] - '0';
            if (id > (INT64_MAX - digit) / 10) return 0;
            id = id * 10 + digit;
            pos++;
        }
        out->id = id;
    }
    if (pos >= len || p[pos] != '[') return 0;
    pos++;
    int plain;
    size_t k =
        pos < len && p[pos] == '"' ? ts_json_canonical_string_len(p + pos, len - pos, &plain) : 0;
    if (!k || !plain) return 0;
    out->name = ts_slice(p + pos + 1, k - 2);
    if (reserved_n(out->name.p, out->name.len)) return 0;
    pos += k;
    out->nargs = 0;
    while (pos < len && p[pos] == ',') {
        pos++;
        if (out->nargs == TS_SIO_RAW_MAX_ARGS) return 0;
        k = ts_json_canonical_len_at(p + pos, len - pos, 2);
        if (!k) return 0;
        out->args[out->nargs++] = (ts_sio_raw_arg_t){ts_slice(p + pos, k), NULL};
        pos += k;
    }
    return pos + 1 == len && p[pos] == ']';
}

int ts_sio_decoder_feed_raw(const ts_sio_decoder_t *d, const uint8_t *p, size_t len, int binary,
                            ts_sio_raw_event_t *out) {
    if (d->kind != TS_SIO_PARSER_JSON || binary || d->waiting) return 0;
    return ts_sio_raw_event_parse(p, len, out);
}

int ts_sio_encode_raw(const char *nsp, int64_t id, const char *event,
                      const ts_sio_raw_arg_t *args, size_t nargs, const char *offset,
                      ts_sio_encoded_t *out) {
    out->n = 0;
    out->msgs = NULL;
    if (!nsp) nsp = "/";
    int root = strcmp(nsp, "/") == 0;
    if (!root && (nsp[0] != '/' || strchr(nsp, ','))) return TS_EINVAL;
    if (id < TS_SIO_NO_ID) return TS_EINVAL;
    /* one allocation: the fixed parts, the texts, and room for escapes */
    size_t need = 48 + (root ? 0 : strlen(nsp)) + (event ? 2 * strlen(event) : 0) +
                  (offset ? 2 * strlen(offset) : 0);
    for (size_t i = 0; i < nargs; i++) need += args[i].text.len + 1;
    ts_sbuf_t s = TS_SBUF_INIT;
    ts_sbuf_reserve(&s, need);
    ts_sbuf_append(&s, event ? "42" : "43", 2);
    if (!root) {
        ts_sbuf_append_str(&s, nsp);
        ts_sbuf_putc(&s, ',');
    }
    if (id != TS_SIO_NO_ID) {
        char num[24];
        size_t k = sizeof num;
        uint64_t v = (uint64_t)id;
        do num[--k] = (char)('0' + v % 10); while ((v /= 10) != 0);
        ts_sbuf_append(&s, num + k, sizeof num - k);
    }
    ts_sbuf_putc(&s, '[');
    int first = 1;
    if (event) {
        ts_json_string(&s, event, strlen(event));
        first = 0;
    }
    for (size_t i = 0; i < nargs; i++) {
        if (!first) ts_sbuf_putc(&s, ',');
        first = 0;
        ts_sbuf_append(&s, args[i].text.p, args[i].text.len);
    }
    if (offset) {
        if (!first) ts_sbuf_putc(&s, ',');
        ts_json_string(&s, offset, strlen(offset));
    }
    ts_sbuf_putc(&s, ']');
    out->msgs = ts_xcalloc(1, sizeof *out->msgs);
    out->msgs[0] = (ts_sio_wire_t){ts_sbuf_finish(&s), 0};
    out->n = 1;
    return 0;
}
