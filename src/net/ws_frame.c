/* ws_frame.c - RFC 6455 frame codec. Pure functions over byte buffers, no
 * sockets and no hidden state, so the same code serves the server,
 * libtabsync and the fuzzer. The reader only ever consumes whole frames:
 * a frame is unmasked in place once all of its bytes are present, so bytes
 * the caller keeps for the next call are never touched. */
#include "net/ts_ws_frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <nettle/sha1.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"

#define WS_DEFAULT_MAX_MESSAGE 1000000u /* socket.io's maxHttpBufferSize */
#define WS_MAX_CONTROL 125u
#define WS_FRAG_KEEP (64u * 1024u) /* reassembly buffer kept between messages */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- UTF-8 ------------------------------------------------------------ */

/* States of the validating DFA. ACCEPT and REJECT are the header's values;
 * the others say what the next byte must be (RFC 3629 table 3-7). */
enum {
    U8_ACCEPT = TS_UTF8_ACCEPT,
    U8_REJECT = TS_UTF8_REJECT,
    U8_TAIL1,   /* one more 80..BF */
    U8_TAIL2,   /* two more 80..BF */
    U8_TAIL3,   /* three more 80..BF */
    U8_E0,      /* after E0: A0..BF (no overlong 3-byte forms) */
    U8_ED,      /* after ED: 80..9F (no surrogates D800..DFFF) */
    U8_F0,      /* after F0: 90..BF (no overlong 4-byte forms) */
    U8_F4,      /* after F4: 80..8F (nothing above U+10FFFF) */
};

static uint32_t utf8_lead(uint8_t c) {
    if (c < 0x80) return U8_ACCEPT;
    if (c < 0xC2) return U8_REJECT; /* stray continuation, or overlong C0/C1 */
    if (c < 0xE0) return U8_TAIL1;
    if (c == 0xE0) return U8_E0;
    if (c == 0xED) return U8_ED;
    if (c < 0xF0) return U8_TAIL2;
    if (c == 0xF0) return U8_F0;
    if (c < 0xF4) return U8_TAIL3;
    if (c == 0xF4) return U8_F4;
    return U8_REJECT; /* F5..FF never appear in UTF-8 */
}

static uint32_t utf8_step(uint32_t state, uint8_t c) {
    switch (state) {
    case U8_ACCEPT: return utf8_lead(c);
    case U8_TAIL1: return (c & 0xC0) == 0x80 ? U8_ACCEPT : U8_REJECT;
    case U8_TAIL2: return (c & 0xC0) == 0x80 ? U8_TAIL1 : U8_REJECT;
    case U8_TAIL3: return (c & 0xC0) == 0x80 ? U8_TAIL2 : U8_REJECT;
    case U8_E0: return c >= 0xA0 && c <= 0xBF ? U8_TAIL1 : U8_REJECT;
    case U8_ED: return c >= 0x80 && c <= 0x9F ? U8_TAIL1 : U8_REJECT;
    case U8_F0: return c >= 0x90 && c <= 0xBF ? U8_TAIL2 : U8_REJECT;
    case U8_F4: return c >= 0x80 && c <= 0x8F ? U8_TAIL2 : U8_REJECT;
    default: return U8_REJECT; /* REJECT is sticky; unknown states too */
    }
}

uint32_t ts_utf8_validate(uint32_t state, const uint8_t *p, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (state == U8_REJECT) return U8_REJECT;
        if (state == U8_ACCEPT) {
            /* Text is mostly ASCII: skip it 8 bytes at a time. */
            while (i + 8 <= len) {
                uint64_t v;
                memcpy(&v, p + i, 8);
                if (v & UINT64_C(0x8080808080808080)) break;
                i += 8;
            }
            while (i < len && p[i] < 0x80) i++;
            if (i == len) break;
        }
        state = utf8_step(state, p[i++]);
    }
    return state;
}

/* ---- masking and encoding --------------------------------------------- */

void ts_ws_mask(uint8_t *p, size_t len, const uint8_t mask[4], size_t offset) {
    uint8_t m8[8];
    for (size_t k = 0; k < 8; k++) m8[k] = mask[(offset + k) & 3];
    uint64_t m64;
    memcpy(&m64, m8, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= m64;
        memcpy(p + i, &v, 8);
    }
    /* i is a multiple of 8 here, so m8 is still in phase. */
    for (; i < len; i++) p[i] ^= m8[i & 7];
}

size_t ts_ws_frame_header(uint8_t *out, uint8_t opcode, int fin, uint64_t len,
                          const uint8_t *mask) {
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    uint8_t mbit = mask ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(mbit | len);
    } else if (len <= 0xFFFF) {
        out[n++] = mbit | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = mbit | 127;
        for (int s = 56; s >= 0; s -= 8) out[n++] = (uint8_t)(len >> s);
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

ts_buf_t *ts_ws_frame_encode(uint8_t opcode, const void *payload, size_t len) {
    uint8_t hdr[TS_WS_MAX_HEADER];
    size_t hl = ts_ws_frame_header(hdr, opcode, 1, len, NULL);
    ts_buf_t *b = ts_buf_new(hl + len);
    memcpy(b->data, hdr, hl);
    if (len) memcpy(b->data + hl, payload, len);
    return b;
}

ts_buf_t *ts_ws_frame_encode_close(uint16_t code, const char *reason) {
    /* 1005 means "no code": RFC 6455 7.4.1 forbids it on the wire, so the
     * frame goes out with an empty body (and then no reason either). */
    if (code == TS_WS_CLOSE_NO_STATUS || code == 0)
        return ts_ws_frame_encode(TS_WS_OP_CLOSE, NULL, 0);
    uint8_t body[WS_MAX_CONTROL];
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_MAX_CONTROL - 2) {
        rlen = WS_MAX_CONTROL - 2;
        /* Never cut a UTF-8 sequence: the peer would fail us with 1007. */
        while (rlen > 0 && ((uint8_t)reason[rlen] & 0xC0) == 0x80) rlen--;
    }
    if (rlen) memcpy(body + 2, reason, rlen);
    return ts_ws_frame_encode(TS_WS_OP_CLOSE, body, 2 + rlen);
}

/* ---- SHA-1, for Sec-WebSocket-Accept only ----------------------------
 * Not a security use. Nettle's rather than OpenSSL's: the first EVP_Digest
 * of a process loads OpenSSL's provider machinery (about 2 MB resident,
 * measured with tsbench idle) that a server without TLS has no other use
 * for, and every EVP call pays an algorithm fetch. */

void ts_ws__sha1(const void *data, size_t len, uint8_t out[20]) {
    struct sha1_ctx ctx;
    sha1_init(&ctx);
    sha1_update(&ctx, len, data);
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, out);
}

int ts_ws_accept_key(const char *key, size_t key_len, char out[29]) {
    uint8_t raw[24];
    out[0] = '\0';
    if (key_len != 24 || ts_b64_decode(key, key_len, raw) != 16) return TS_EPROTO;
    char buf[24 + sizeof WS_GUID];
    memcpy(buf, key, 24);
    memcpy(buf + 24, WS_GUID, sizeof WS_GUID - 1);
    uint8_t md[20];
    ts_ws__sha1(buf, 24 + sizeof WS_GUID - 1, md);
    ts_b64_encode(md, 20, out);
    return 0;
}

/* ---- reader ------------------------------------------------------------ */

void ts_ws_reader_init(ts_ws_reader_t *r, ts_ws_role_t role, size_t max_message) {
    memset(r, 0, sizeof *r);
    r->role = (uint8_t)role;
    if (!max_message) max_message = WS_DEFAULT_MAX_MESSAGE;
    /* a message over 4 GiB could not be buffered anyway (net keeps 32-bit lengths) */
    r->max_message = max_message > UINT32_MAX ? UINT32_MAX : (uint32_t)max_message;
    r->utf8_state = TS_UTF8_ACCEPT;
}

static _Thread_local char reader_msg[128];

const char *ts_ws_reader_errmsg(const ts_ws_reader_t *r) { return r->err ? reader_msg : ""; }

void ts_ws_reader_deinit(ts_ws_reader_t *r) {
    ts_sbuf_free(&r->frag);
    r->frag_opcode = 0;
    r->utf8_state = TS_UTF8_ACCEPT;
}

__attribute__((format(printf, 4, 5))) static int fail(ts_ws_reader_t *r, int err,
                                                      uint16_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reader_msg, sizeof reader_msg, fmt, ap);
    va_end(ap);
    r->err = err;
    r->close_code = code;
    return err;
}

typedef struct ws_hdr {
    int fin;
    uint8_t opcode;
    int masked;
    uint8_t mask[4];
    uint64_t len;
} ws_hdr_t;

static int is_control(uint8_t op) { return (op & 0x08) != 0; }

/* Parses and checks one frame header at p[0..n). Returns its length, 0 if
 * more bytes are needed, or < 0. Each check only looks at bytes before the
 * point where it sits, so the first error found does not depend on how the
 * input was split. */
static int parse_header(ts_ws_reader_t *r, const uint8_t *p, size_t n, ws_hdr_t *h) {
    if (n < 2) return 0;
    uint8_t b0 = p[0], b1 = p[1];
    h->fin = (b0 & 0x80) != 0;
    h->opcode = b0 & 0x0F;
    h->masked = (b1 & 0x80) != 0;
    if (b0 & 0x70)
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                    "ws: frame with reserved bits 0x%02x set (no extension negotiated)",
                    b0 & 0x70);
    switch (h->opcode) {
    case TS_WS_OP_CONT:
    case TS_WS_OP_TEXT:
    case TS_WS_OP_BINARY:
    case TS_WS_OP_CLOSE:
    case TS_WS_OP_PING:
    case TS_WS_OP_PONG: break;
    default:
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL, "ws: frame with unknown opcode 0x%x",
                    h->opcode);
    }
    if (is_control(h->opcode) && !h->fin)
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                    "ws: control frame (opcode 0x%x) with FIN=0 (control frames cannot be "
                    "fragmented)",
                    h->opcode);
    if (r->role == TS_WS_SERVER && !h->masked)
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                    "ws: unmasked frame from a client (clients must mask)");
    if (r->role == TS_WS_CLIENT && h->masked)
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                    "ws: masked frame from a server (servers must not mask)");
    if (h->opcode == TS_WS_OP_CONT && r->frag_opcode == 0)
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                    "ws: continuation frame without a fragmented message in progress");
    if ((h->opcode == TS_WS_OP_TEXT || h->opcode == TS_WS_OP_BINARY) && r->frag_opcode != 0)
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                    "ws: new %s frame while a fragmented message is in progress",
                    h->opcode == TS_WS_OP_TEXT ? "text" : "binary");

    size_t hl = 2;
    uint8_t len7 = b1 & 0x7F;
    if (len7 == 126) {
        if (n < 4) return 0;
        h->len = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (len7 == 127) {
        if (n < 10) return 0;
        h->len = 0;
        for (int i = 2; i < 10; i++) h->len = h->len << 8 | p[i];
        hl = 10;
        if (h->len >> 63)
            return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                        "ws: 64-bit frame length with the most significant bit set");
    } else {
        h->len = len7;
    }
    /* Non-minimal length encodings (126 + a length < 126) are accepted:
     * RFC 6455 says "minimal", but nothing is ambiguous about them. */
    if (is_control(h->opcode) && h->len > WS_MAX_CONTROL)
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                    "ws: control frame (opcode 0x%x) payload of %llu bytes exceeds 125",
                    h->opcode, (unsigned long long)h->len);
    if (h->opcode == TS_WS_OP_CONT) {
        size_t have = ts_sbuf_len(&r->frag);
        if (h->len > r->max_message - have) /* have <= max_message always */
            return fail(r, TS_ETOOBIG, TS_WS_CLOSE_TOO_BIG,
                        "ws: fragmented message of %llu bytes exceeds the limit of %zu",
                        (unsigned long long)(h->len + have), (size_t)r->max_message);
    } else if (h->len > r->max_message) {
        return fail(r, TS_ETOOBIG, TS_WS_CLOSE_TOO_BIG,
                    "ws: frame payload of %llu bytes exceeds the limit of %zu",
                    (unsigned long long)h->len, (size_t)r->max_message);
    }
    if (h->masked) {
        if (n < hl + 4) return 0;
        memcpy(h->mask, p + hl, 4);
        hl += 4;
    }
    return (int)hl;
}

static int close_code_valid(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

static int on_close(ts_ws_reader_t *r, uint8_t *p, size_t len, ts_ws_msg_t *out) {
    out->opcode = TS_WS_OP_CLOSE;
    if (len == 0) {
        out->data = p;
        out->len = 0;
        out->close_code = TS_WS_CLOSE_NO_STATUS;
        return 1;
    }
    if (len == 1)
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL,
                    "ws: close frame with a 1-byte payload (a code needs 2 bytes)");
    unsigned code = (unsigned)p[0] << 8 | p[1];
    if (!close_code_valid(code))
        return fail(r, TS_EPROTO, TS_WS_CLOSE_PROTOCOL, "ws: close frame with invalid code %u",
                    code);
    if (ts_utf8_validate(TS_UTF8_ACCEPT, p + 2, len - 2) != TS_UTF8_ACCEPT)
        return fail(r, TS_EUTF8, TS_WS_CLOSE_BAD_DATA,
                    "ws: close frame reason is not valid UTF-8");
    out->data = p + 2;
    out->len = len - 2;
    out->close_code = (uint16_t)code;
    return 1;
}

/* Handles one complete, unmasked frame. Returns 1 with *out set, 0 when the
 * frame was a non-final fragment (stored), or < 0. */
static int on_frame(ts_ws_reader_t *r, const ws_hdr_t *h, uint8_t *p, size_t len,
                    ts_ws_msg_t *out) {
    memset(out, 0, sizeof *out);
    if (is_control(h->opcode)) {
        if (h->opcode == TS_WS_OP_CLOSE) return on_close(r, p, len, out);
        out->opcode = h->opcode;
        out->data = p;
        out->len = len;
        return 1;
    }
    uint8_t op = h->opcode == TS_WS_OP_CONT ? r->frag_opcode : h->opcode;
    uint32_t state = h->opcode == TS_WS_OP_CONT ? r->utf8_state : TS_UTF8_ACCEPT;
    if (op == TS_WS_OP_TEXT) {
        state = ts_utf8_validate(state, p, len);
        if (state == TS_UTF8_REJECT)
            return fail(r, TS_EUTF8, TS_WS_CLOSE_BAD_DATA,
                        "ws: text message is not valid UTF-8");
        if (h->fin && state != TS_UTF8_ACCEPT)
            return fail(r, TS_EUTF8, TS_WS_CLOSE_BAD_DATA,
                        "ws: text message ends inside a UTF-8 sequence");
    }
    if (h->opcode != TS_WS_OP_CONT && h->fin) {
        out->opcode = op;
        out->data = p;
        out->len = len;
        return 1;
    }
    ts_sbuf_append(&r->frag, p, len);
    if (!h->fin) {
        r->frag_opcode = op;
        r->utf8_state = state;
        return 0;
    }
    /* The reassembled bytes stay in r->frag until the next feed. */
    r->frag_opcode = 0;
    r->utf8_state = TS_UTF8_ACCEPT;
    out->opcode = op;
    out->data = ts_sbuf_data(&r->frag);
    out->len = ts_sbuf_len(&r->frag);
    return 1;
}

int ts_ws_reader_feed(ts_ws_reader_t *r, uint8_t *data, size_t len, size_t *used,
                      ts_ws_msg_t *out) {
    *used = 0;
    if (r->err) return r->err;
    /* A message reassembled in r->frag was valid until this call. Keep a
     * small buffer for the next one; give a big one back, so an idle
     * connection does not hold on to its largest message. */
    if (r->frag_opcode == 0) {
        if (ts_sbuf_len(&r->frag) > WS_FRAG_KEEP)
            ts_sbuf_free(&r->frag);
        else
            ts_sbuf_truncate(&r->frag, 0);
    }
    size_t pos = 0;
    for (;;) {
        if (len - pos < 2) { /* also keeps data == NULL, len == 0 legal */
            *used = pos;
            return 0;
        }
        ws_hdr_t h = {0};
        int hl = parse_header(r, data + pos, len - pos, &h);
        if (hl <= 0) {
            *used = pos;
            return hl;
        }
        size_t avail = len - pos - (size_t)hl;
        if (avail < h.len) { /* wait for the whole frame */
            *used = pos;
            return 0;
        }
        uint8_t *p = data + pos + hl;
        size_t plen = (size_t)h.len;
        if (h.masked) ts_ws_mask(p, plen, h.mask, 0);
        pos += (size_t)hl + plen;
        int rc = on_frame(r, &h, p, plen, out);
        if (rc != 0) {
            *used = pos;
            return rc;
        }
    }
}
