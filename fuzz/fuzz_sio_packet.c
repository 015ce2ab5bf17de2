/* fuzz_sio_packet.c - libFuzzer driver for the Socket.IO string-form
 * decoder (TS_SIO_PARSER_JSON; the msgpack half has its own driver).
 * Input: one byte of options (low nibble: max_attachments, 15 = default),
 * then Engine.IO messages separated by 0x1e; a message starting with 0x01
 * is binary (the rest of it), any other is text (without the '4'). Every
 * complete packet must satisfy the decoder's contract, encode, decode back
 * to an equal packet, and encode again to the very same bytes. Every text
 * message is also offered to the relay fast path (packet_raw.c): whatever
 * it takes, the full decoder must take too, with the same namespace, id,
 * name and values, and each argument must encode back to its exact text.
 * And from its first '[' or '{' on, every text message is parsed by
 * ts_json_loadb and json_loadb, which must build the same tree or
 * both refuse. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "core/ts_json.h"
#include "core/ts_mem.h"
#include "sio/packet_int.h"
#include "sio/ts_sio_packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Equality as JS sees it: numbers are doubles (1 and 1.0 are one number,
 * and so are 2^53 + 1 and 2^53). */
static int json_eq_js(json_t *a, json_t *b) {
    if (!a || !b) return a == b;
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq_js(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) {
            if (!json_eq_js(v, json_object_get(b, k))) return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

static void check_error(const ts_sio_decoder_t *d, int rc, const ts_sio_packet_t *out) {
    ts_assert(rc == TS_EPROTO || rc == TS_EJSON || rc == TS_ELIMIT);
    ts_assert(d->err == rc && d->errmsg[0] != '\0');
    ts_assert(out->nsp == NULL && out->data == NULL && out->attach == NULL);
}

static void check_packet(const ts_sio_decoder_t *d, const ts_sio_packet_t *pkt) {
    ts_assert(pkt->type <= TS_SIO_CONNECT_ERROR);
    ts_assert(pkt->nsp && pkt->nsp[0] == '/');
    ts_assert(pkt->id >= TS_SIO_NO_ID);
    ts_assert(pkt->nattach <= d->max_attachments);
    ts_assert(pkt->nattach == 0 || pkt->type == TS_SIO_EVENT || pkt->type == TS_SIO_ACK);
    for (size_t i = 0; i < pkt->nattach; i++) ts_assert(pkt->attach[i] != NULL);
    if (pkt->type == TS_SIO_DISCONNECT) ts_assert(pkt->data == NULL);
    if (pkt->type == TS_SIO_EVENT && pkt->data) {
        json_t *name = json_array_get(pkt->data, 0);
        ts_assert(json_is_number(name) || json_is_string(name));
    }
    /* the shared check is idempotent on what the decoder accepted */
    ts_sio_decoder_t chk;
    ts_sio_decoder_init(&chk, TS_SIO_PARSER_JSON);
    ts_assert(ts_sio__check_shape(&chk, pkt) == 0);
    ts_sio_decoder_deinit(&chk);
}

static void check_roundtrip(const ts_sio_decoder_t *d, const ts_sio_packet_t *pkt) {
    ts_sio_encoded_t enc;
    ts_assert(ts_sio_encode(TS_SIO_PARSER_JSON, pkt, &enc) == 0);
    ts_assert(enc.n == 1 + pkt->nattach);
    ts_assert(!enc.msgs[0].binary && enc.msgs[0].buf->len >= 2 && enc.msgs[0].buf->data[0] == '4');
    for (size_t i = 0; i < pkt->nattach; i++)
        ts_assert(enc.msgs[1 + i].binary && enc.msgs[1 + i].buf == pkt->attach[i]);

    ts_sio_decoder_t d2;
    ts_sio_decoder_init(&d2, TS_SIO_PARSER_JSON);
    d2.max_attachments = d->max_attachments;
    ts_sio_packet_t back;
    int rc = 0;
    for (size_t i = 0; i < enc.n; i++) {
        const ts_buf_t *b = enc.msgs[i].buf;
        rc = enc.msgs[i].binary ? ts_sio_decoder_feed(&d2, b->data, b->len, 1, &back)
                                : ts_sio_decoder_feed(&d2, b->data + 1, b->len - 1, 0, &back);
        ts_assert(rc == (i + 1 == enc.n ? 1 : 0));
    }
    ts_assert(back.type == pkt->type && back.id == pkt->id && back.nattach == pkt->nattach);
    ts_assert(strcmp(back.nsp, pkt->nsp) == 0);
    ts_assert(json_eq_js(back.data, pkt->data));
    for (size_t i = 0; i < pkt->nattach; i++)
        ts_assert(back.attach[i]->len == pkt->attach[i]->len &&
                  memcmp(back.attach[i]->data, pkt->attach[i]->data, back.attach[i]->len) == 0);

    /* encoding is a fixed point after one round */
    ts_sio_encoded_t enc2;
    ts_assert(ts_sio_encode(TS_SIO_PARSER_JSON, &back, &enc2) == 0);
    ts_assert(enc2.n == enc.n);
    ts_assert(enc2.msgs[0].buf->len == enc.msgs[0].buf->len &&
              memcmp(enc2.msgs[0].buf->data, enc.msgs[0].buf->data, enc.msgs[0].buf->len) == 0);
    ts_sio_encoded_clear(&enc2);
    ts_sio_packet_clear(&back);
    ts_sio_decoder_deinit(&d2);
    ts_sio_encoded_clear(&enc);
}

static void check_raw(const uint8_t *msg, size_t n) {
    ts_sio_raw_event_t ev;
    if (ts_sio_raw_event_parse(msg, n, &ev) != 1) return;
    ts_assert(ev.nargs <= TS_SIO_RAW_MAX_ARGS);
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
    ts_sio_packet_t pkt;
    ts_assert(ts_sio_decoder_feed(&d, msg, n, 0, &pkt) == 1);
    ts_assert(pkt.type == TS_SIO_EVENT && pkt.nattach == 0 && pkt.id == ev.id);
    ts_assert(ts_slice_eq_str(ev.nsp, pkt.nsp));
    ts_assert(json_array_size(pkt.data) == 1 + ev.nargs);
    json_t *name = json_array_get(pkt.data, 0);
    ts_assert(json_is_string(name) && json_string_length(name) == ev.name.len &&
              memcmp(json_string_value(name), ev.name.p, ev.name.len) == 0);
    for (size_t i = 0; i < ev.nargs; i++) {
        ts_slice_t t = ev.args[i].text;
        ts_assert(ts_json_is_canonical(t));
        ts_assert(ts_json_skip(t.p, t.len) == t.len); /* the walker of checked texts */
        json_t *one = json_pack("[sO]", "x", json_array_get(pkt.data, i + 1));
        ts_sio_packet_t p1 = {.type = TS_SIO_EVENT, .nsp = "/", .id = TS_SIO_NO_ID, .data = one};
        ts_sio_encoded_t enc;
        ts_assert(ts_sio_encode(TS_SIO_PARSER_JSON, &p1, &enc) == 0);
        const ts_buf_t *b = enc.msgs[0].buf; /* 42["x",<text>] */
        ts_assert(b->len == 8 + t.len && memcmp(b->data + 7, t.p, t.len) == 0);
        ts_sio_encoded_clear(&enc);
        json_decref(one);
    }
    /* re-encoding the relay from the texts gives what the tree encoder gives */
    ts_sio_encoded_t a, b;
    ts_assert(ts_sio_encode_raw(pkt.nsp, pkt.id, json_string_value(name), ev.args, ev.nargs, NULL,
                                &a) == 0);
    ts_assert(ts_sio_encode(TS_SIO_PARSER_JSON, &pkt, &b) == 0);
    ts_assert(a.msgs[0].buf->len == b.msgs[0].buf->len &&
              memcmp(a.msgs[0].buf->data, b.msgs[0].buf->data, a.msgs[0].buf->len) == 0);
    ts_sio_encoded_clear(&a);
    ts_sio_encoded_clear(&b);
    ts_sio_packet_clear(&pkt);
    ts_sio_decoder_deinit(&d);
}

/* ts_json_loadb builds json_loadb's tree or refuses as it does. */
static void check_loadb_one(const uint8_t *p, size_t n, size_t flags) {
    json_t *a = ts_json_loadb(p, n, flags, NULL);
    json_t *b = json_loadb((const char *)p, n, flags, NULL);
    ts_assert(!a == !b);
    if (!a) return;
    char *da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
    char *db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
    ts_assert(strcmp(da, db) == 0 && json_equal(a, b));
    free(da);
    free(db);
    json_decref(a);
    json_decref(b);
}

static void check_loadb(const uint8_t *msg, size_t n) {
    /* the packet's payload starts at its first '[' or '{' */
    size_t i = 0;
    while (i < n && msg[i] != '[' && msg[i] != '{') i++;
    const uint8_t *p = msg + i;
    n -= i;
    check_loadb_one(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL);
    check_loadb_one(p, n, JSON_REJECT_DUPLICATES);
    check_loadb_one(p, n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ts_sio_decoder_t d;
    ts_sio_decoder_init(&d, TS_SIO_PARSER_JSON);
    if ((data[0] & 15) != 15) d.max_attachments = data[0] & 15;
    const uint8_t *p = data + 1, *end = data + size;
    while (p <= end) {
        const uint8_t *sep = memchr(p, 0x1e, (size_t)(end - p));
        const uint8_t *stop = sep ? sep : end;
        int binary = stop > p && p[0] == 0x01;
        const uint8_t *m = p + binary;
        size_t n = (size_t)(stop - m);
        /* exact-size copy so ASan sees any overread */
        uint8_t *msg = ts_xmalloc(n ? n : 1);
        if (n) memcpy(msg, m, n);
        if (!binary) {
            check_raw(msg, n);
            check_loadb(msg, n);
        }
        ts_sio_packet_t pkt;
        int rc = ts_sio_decoder_feed(&d, msg, n, binary, &pkt);
        free(msg);
        if (rc == 1) {
            check_packet(&d, &pkt);
            check_roundtrip(&d, &pkt);
            ts_sio_packet_clear(&pkt);
        } else if (rc == 0) {
            ts_assert(pkt.nsp == NULL && pkt.data == NULL);
        } else {
            check_error(&d, rc, &pkt);
        }
        if (!sep) break;
        p = sep + 1;
    }
    ts_sio_decoder_deinit(&d);
    return 0;
}
