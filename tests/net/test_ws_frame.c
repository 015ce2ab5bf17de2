/* test_ws_frame.c - tests for src/net/ws_frame.c. The reader is checked with
 * a table: each row is a byte stream and the exact sequence of messages (or
 * the error) it must produce, fed whole, one byte at a time and split at
 * every offset, through a harness that behaves like a real caller. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/ts_buf.h"
#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "net/ts_ws_frame.h"

#define assert_ts_err(got, want)                                                   \
    do {                                                                           \
        int got_ = (got), want_ = (want);                                          \
        if (got_ != want_) {                                                       \
            print_error("%s != %s\n", ts_err_name(got_), ts_err_name(want_));      \
            fail();                                                                \
        }                                                                          \
    } while (0)

/* ---- harness: render what a reader produced as one comparable string ---- */

static const char *op_name(uint8_t op) {
    switch (op) {
    case TS_WS_OP_TEXT: return "TEXT";
    case TS_WS_OP_BINARY: return "BINARY";
    case TS_WS_OP_CLOSE: return "CLOSE";
    case TS_WS_OP_PING: return "PING";
    case TS_WS_OP_PONG: return "PONG";
    default: return "OP?";
    }
}

/* Payload as text: printable ASCII as is, other bytes as \xNN, and runs of
 * 8 or more equal bytes as {NN*count} so big frames fit in a table row. */
static void render_bytes(ts_sbuf_t *s, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t run = 1;
        while (i + run < n && p[i + run] == p[i]) run++;
        if (run >= 8) {
            ts_sbuf_printf(s, "{%02x*%zu}", p[i], run);
            i += run;
            continue;
        }
        uint8_t c = p[i++];
        if (c >= 0x20 && c < 0x7F && c != '\\' && c != '|' && c != '{')
            ts_sbuf_putc(s, (char)c);
        else
            ts_sbuf_printf(s, "\\x%02x", c);
    }
}

static void render_msg(ts_sbuf_t *s, const ts_ws_msg_t *m) {
    if (ts_sbuf_len(s)) ts_sbuf_append_str(s, " | ");
    ts_sbuf_append_str(s, op_name(m->opcode));
    if (m->opcode == TS_WS_OP_CLOSE) ts_sbuf_printf(s, " %u", m->close_code);
    ts_sbuf_putc(s, ':');
    render_bytes(s, m->data, m->len);
}

typedef struct run_out {
    char *got;        /* rendered messages, then "ERR ..." or "(N pending)" */
    char errmsg[128]; /* r.errmsg when an error ended the run */
} run_out_t;

/* Feeds in[0..n) to a fresh reader in chunks: of `step` bytes if step > 0,
 * else [0, split) and [split, n). Behaves like a socket reader: keeps the
 * unconsumed tail, appends the next chunk, calls again. */
static void run_stream(const uint8_t *in, size_t n, ts_ws_role_t role, size_t max,
                       size_t step, size_t split, run_out_t *out) {
    ts_ws_reader_t r;
    ts_ws_reader_init(&r, role, max);
    ts_sbuf_t s = TS_SBUF_INIT;
    uint8_t *pend = ts_xmalloc(n + 1);
    size_t plen = 0, fed = 0, consumed = 0;
    int rc = 0;
    out->errmsg[0] = '\0';
    while (fed < n && rc >= 0) {
        size_t c = step ? TS_MIN(step, n - fed) : (fed < split ? split : n - fed);
        memcpy(pend + plen, in + fed, c);
        plen += c;
        fed += c;
        for (;;) {
            size_t used = 999999999;
            ts_ws_msg_t m;
            rc = ts_ws_reader_feed(&r, pend, plen, &used, &m);
            assert_true(used <= plen);
            if (rc < 0) {
                ts_sbuf_printf(&s, "%sERR %s %u", ts_sbuf_len(&s) ? " | " : "",
                               ts_err_name(rc), r.close_code);
                assert_int_equal(r.err, rc);
                snprintf(out->errmsg, sizeof out->errmsg, "%s", ts_ws_reader_errmsg(&r));
                break;
            }
            if (rc == 1) {
                assert_true(m.len <= r.max_message);
                render_msg(&s, &m);
            } else {
                assert_int_equal(rc, 0);
            }
            consumed += used;
            memmove(pend, pend + used, plen - used);
            plen -= used;
            /* Bytes left for the next call must be exactly what was sent
             * (the reader unmasks in place only frames it consumes). */
            if (n <= 4096) assert_memory_equal(pend, in + consumed, plen);
            if (rc == 0) break;
        }
    }
    if (rc >= 0 && plen > 0)
        ts_sbuf_printf(&s, "%s(%zu pending)", ts_sbuf_len(&s) ? " | " : "", plen);
    free(pend);
    ts_ws_reader_deinit(&r);
    out->got = (char *)ts_sbuf_data(&s);
    out->got = ts_xstrdup(out->got);
    ts_sbuf_free(&s);
}

/* ---- the reader table -------------------------------------------------- */

#define B(lit) (const uint8_t *)(lit), sizeof(lit) - 1
/* Sets .in and .in_len; positional fields after it continue with .want. */
#define IN(lit) .in = (const uint8_t *)(lit), .in_len = sizeof(lit) - 1
#define TAIL(lit) .tail = (const uint8_t *)(lit), .tail_len = sizeof(lit) - 1
#define SRV TS_WS_SERVER
#define CLI TS_WS_CLIENT

typedef struct frame_case {
    const char *name;
    ts_ws_role_t role;
    const uint8_t *in; /* then pad_len bytes of pad, then tail */
    size_t in_len;
    const char *want;  /* rendered messages / "ERR <name> <close code>" */
    const char *want_msg; /* fragment of r.errmsg when want ends in ERR */
    size_t max;        /* max_message; 0 = the default (1000000) */
    size_t pad_len;
    uint8_t pad;
    const uint8_t *tail;
    size_t tail_len;
} frame_case_t;

/* Server rows mostly use the all-zero masking key (mask bit set, key
 * 00 00 00 00) so the payload stays readable; RFC rows use real keys. */
static const frame_case_t frame_cases[] = {
    /* RFC 6455 section 5.7 examples */
    {"rfc 5.7 single-frame unmasked text", CLI, IN("\x81\x05Hello"), "TEXT:Hello"},
    {"rfc 5.7 single-frame masked text", SRV,
     IN("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"), "TEXT:Hello"},
    {"rfc 5.7 fragmented unmasked text", CLI, IN("\x01\x03Hel\x80\x02lo"), "TEXT:Hello"},
    {"rfc 5.7 unmasked ping", CLI, IN("\x89\x05Hello"), "PING:Hello"},
    {"rfc 5.7 masked pong", SRV, IN("\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
     "PONG:Hello"},
    {"rfc 5.7 256-byte binary (16-bit length)", CLI, IN("\x82\x7e\x01\x00"), "BINARY:{78*256}",
     .pad_len = 256, .pad = 'x'},
    {"rfc 5.7 64 KiB binary (64-bit length)", CLI,
     IN("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"), "BINARY:{78*65536}", .pad_len = 65536,
     .pad = 'x'},
    {"64 KiB masked binary then a text", SRV,
     IN("\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"),
     "BINARY:{61*65536} | TEXT:ok", .pad_len = 65536, .pad = 'a',
     TAIL("\x81\x82\x00\x00\x00\x00ok")},
    {"masked fragmented text with real keys", SRV,
     IN("\x01\x83\x37\xfa\x21\x3d\x7f\x9f\x4d" "\x80\x82\x01\x02\x03\x04\x6d\x6d"), "TEXT:Hello"},

    /* ordinary traffic */
    {"empty text, zero masking key", SRV, IN("\x81\x80\x00\x00\x00\x00"), "TEXT:"},
    {"empty binary", CLI, IN("\x82\x00"), "BINARY:"},
    {"two messages in one read", CLI, IN("\x81\x02hi\x82\x03\x01\x02\x03"),
     "TEXT:hi | BINARY:\\x01\\x02\\x03"},
    {"binary in three fragments", CLI, IN("\x02\x01" "a" "\x00\x01" "b" "\x80\x01" "c"),
     "BINARY:abc"},
    {"fragmented text with empty fragments", CLI, IN("\x01\x00\x00\x00\x80\x00"), "TEXT:"},
    {"ping interleaved in a fragmented message", CLI,
     IN("\x01\x03Hel\x89\x02p1\x80\x02lo"), "PING:p1 | TEXT:Hello"},
    {"pong and close interleaved in a fragmented message", SRV,
     IN("\x01\x81\x00\x00\x00\x00" "a" "\x8a\x80\x00\x00\x00\x00"
       "\x00\x81\x00\x00\x00\x00" "b" "\x88\x82\x00\x00\x00\x00\x03\xe8"
       "\x80\x81\x00\x00\x00\x00" "c"),
     "PONG: | CLOSE 1000: | TEXT:abc"},
    {"fragmented message then a single frame", CLI, IN("\x02\x02" "ab" "\x80\x01" "c" "\x82\x01" "d"),
     "BINARY:abc | BINARY:d"},
    {"two fragmented messages back to back", CLI,
     IN("\x01\x01" "a" "\x80\x01" "b" "\x01\x01" "c" "\x80\x01" "d"), "TEXT:ab | TEXT:cd"},
    {"utf-8 2-byte sequence split across fragments", CLI, IN("\x01\x01\xce\x80\x01\xba"),
     "TEXT:\\xce\\xba"},
    {"utf-8 4-byte sequence split across three fragments", CLI,
     IN("\x01\x01\xf0\x00\x02\x9f\x98\x80\x01\x80"), "TEXT:\\xf0\\x9f\\x98\\x80"},
    {"binary payload is not utf-8 checked", CLI, IN("\x82\x02\xc0\x80"), "BINARY:\\xc0\\x80"},
    {"non-minimal 16-bit length is accepted", CLI, IN("\x81\x7e\x00\x02hi"), "TEXT:hi"},
    {"non-minimal 64-bit length is accepted", CLI,
     IN("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x03" "abc"), "BINARY:abc"},
    {"non-minimal length on a ping within 125", CLI, IN("\x89\x7e\x00\x01x"), "PING:x"},
    {"ping with 125 bytes", CLI, IN("\x89\x7d"), "PING:{70*125}", .pad_len = 125, .pad = 'p'},
    {"message exactly at the limit", CLI, IN("\x82\x04" "abcd"), "BINARY:abcd", .max = 4},
    {"fragmented message exactly at the limit", CLI, IN("\x02\x02" "ab" "\x80\x02" "cd"),
     "BINARY:abcd", .max = 4},
    {"close without payload is 1005", CLI, IN("\x88\x00"), "CLOSE 1005:"},
    {"close with code and reason", CLI, IN("\x88\x05\x03\xe8" "bye"), "CLOSE 1000:bye"},
    {"close masked with code only", SRV, IN("\x88\x82\x00\x00\x00\x00\x03\xe9"), "CLOSE 1001:"},
    {"close 1003", CLI, IN("\x88\x02\x03\xeb"), "CLOSE 1003:"},
    {"close 1007", CLI, IN("\x88\x02\x03\xef"), "CLOSE 1007:"},
    {"close 1011", CLI, IN("\x88\x02\x03\xf3"), "CLOSE 1011:"},
    {"close 3000", CLI, IN("\x88\x02\x0b\xb8"), "CLOSE 3000:"},
    {"close 4999", CLI, IN("\x88\x02\x13\x87"), "CLOSE 4999:"},
    {"close with utf-8 reason", CLI, IN("\x88\x04\x03\xe8\xce\xba"), "CLOSE 1000:\\xce\\xba"},

    /* need more bytes */
    {"lone first header byte waits", CLI, IN("\x81"), "(1 pending)"},
    {"partial 64-bit length waits", CLI, IN("\x82\x7f\x00\x00"), "(4 pending)"},
    {"masked frame waits for its key", SRV, IN("\x81\x85\x37\xfa"), "(4 pending)"},
    {"partial payload after a message waits", CLI, IN("\x81\x02hi\x81\x05He"),
     "TEXT:hi | (4 pending)"},
    {"non-final fragment is consumed while the final one is partial", CLI,
     IN("\x01\x03Hel\x80\x02l"), "(3 pending)"},

    /* protocol errors: 1002 */
    {"rsv1 set", CLI, IN("\xc1\x00"), "ERR TS_EPROTO 1002", "reserved bits 0x40 set"},
    {"rsv2 set", CLI, IN("\xa1\x00"), "ERR TS_EPROTO 1002", "reserved bits 0x20 set"},
    {"rsv3 set", SRV, IN("\x91\x80"), "ERR TS_EPROTO 1002", "reserved bits 0x10 set"},
    {"reserved data opcode 0x3", CLI, IN("\x83\x00"), "ERR TS_EPROTO 1002", "unknown opcode 0x3"},
    {"reserved data opcode 0x7", CLI, IN("\x87\x00"), "ERR TS_EPROTO 1002", "unknown opcode 0x7"},
    {"reserved control opcode 0xb", CLI, IN("\x8b\x00"), "ERR TS_EPROTO 1002",
     "unknown opcode 0xb"},
    {"reserved control opcode 0xf", CLI, IN("\x8f\x00"), "ERR TS_EPROTO 1002",
     "unknown opcode 0xf"},
    {"fragmented ping", CLI, IN("\x09\x00"), "ERR TS_EPROTO 1002", "opcode 0x9) with FIN=0"},
    {"fragmented close", CLI, IN("\x08\x00"), "ERR TS_EPROTO 1002", "opcode 0x8) with FIN=0"},
    {"ping with 126 bytes, from the header alone", CLI, IN("\x89\x7e\x00\x7e"),
     "ERR TS_EPROTO 1002", "payload of 126 bytes exceeds 125"},
    {"pong with a 64-bit length", CLI, IN("\x8a\x7f\x00\x00\x00\x00\x00\x00\x01\x00"),
     "ERR TS_EPROTO 1002", "payload of 256 bytes exceeds 125"},
    {"unmasked frame to a server", SRV, IN("\x81\x05Hello"), "ERR TS_EPROTO 1002",
     "unmasked frame from a client"},
    {"masked frame to a client", CLI, IN("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
     "ERR TS_EPROTO 1002", "masked frame from a server"},
    {"64-bit length with the msb set", CLI, IN("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00"),
     "ERR TS_EPROTO 1002", "most significant bit"},
    {"final continuation without a message", CLI, IN("\x80\x00"), "ERR TS_EPROTO 1002",
     "continuation frame without"},
    {"non-final continuation without a message", SRV, IN("\x00\x80\x00\x00\x00\x00"),
     "ERR TS_EPROTO 1002", "continuation frame without"},
    {"continuation after a complete message", CLI, IN("\x81\x01" "a" "\x80\x01" "b"),
     "TEXT:a | ERR TS_EPROTO 1002", "continuation frame without"},
    {"text while a fragmented message is open", CLI, IN("\x01\x01" "a" "\x81\x01" "b"),
     "ERR TS_EPROTO 1002", "new text frame while a fragmented"},
    {"binary while a fragmented message is open", CLI, IN("\x02\x01" "a" "\x02\x01" "b"),
     "ERR TS_EPROTO 1002", "new binary frame while a fragmented"},
    {"error after good messages", CLI, IN("\x81\x02hi\x89\x00\xc1\x00"),
     "TEXT:hi | PING: | ERR TS_EPROTO 1002", "reserved bits 0x40"},
    {"close with a 1-byte payload", CLI, IN("\x88\x01\x03"), "ERR TS_EPROTO 1002",
     "1-byte payload"},
    {"close code 0", CLI, IN("\x88\x02\x00\x00"), "ERR TS_EPROTO 1002", "invalid code 0"},
    {"close code 999", CLI, IN("\x88\x02\x03\xe7"), "ERR TS_EPROTO 1002", "invalid code 999"},
    {"close code 1004", CLI, IN("\x88\x02\x03\xec"), "ERR TS_EPROTO 1002", "invalid code 1004"},
    {"close code 1005 on the wire", CLI, IN("\x88\x02\x03\xed"), "ERR TS_EPROTO 1002",
     "invalid code 1005"},
    {"close code 1006 on the wire", CLI, IN("\x88\x02\x03\xee"), "ERR TS_EPROTO 1002",
     "invalid code 1006"},
    {"close code 1012 (outside 1007-1011)", CLI, IN("\x88\x02\x03\xf4"), "ERR TS_EPROTO 1002",
     "invalid code 1012"},
    {"close code 1015 on the wire", CLI, IN("\x88\x02\x03\xf7"), "ERR TS_EPROTO 1002",
     "invalid code 1015"},
    {"close code 2999", CLI, IN("\x88\x02\x0b\xb7"), "ERR TS_EPROTO 1002", "invalid code 2999"},
    {"close code 5000", CLI, IN("\x88\x02\x13\x88"), "ERR TS_EPROTO 1002", "invalid code 5000"},
    {"close code 65535", CLI, IN("\x88\x02\xff\xff"), "ERR TS_EPROTO 1002",
     "invalid code 65535"},

    /* invalid UTF-8: 1007 */
    {"text with an overlong sequence", CLI, IN("\x81\x02\xc0\x80"), "ERR TS_EUTF8 1007",
     "not valid UTF-8"},
    {"text with a surrogate", SRV, IN("\x81\x83\x00\x00\x00\x00\xed\xa0\x80"), "ERR TS_EUTF8 1007",
     "not valid UTF-8"},
    {"text above U+10FFFF", CLI, IN("\x81\x04\xf4\x90\x80\x80"), "ERR TS_EUTF8 1007",
     "not valid UTF-8"},
    {"text ends inside a sequence", CLI, IN("\x81\x01\xce"), "ERR TS_EUTF8 1007",
     "ends inside a UTF-8 sequence"},
    {"fragmented text ends inside a sequence", CLI, IN("\x01\x01\xe2\x80\x01\x82"),
     "ERR TS_EUTF8 1007", "ends inside a UTF-8 sequence"},
    {"invalid first fragment fails before the rest arrives", CLI, IN("\x01\x02" "a\xff"),
     "ERR TS_EUTF8 1007", "not valid UTF-8"},
    {"sequence broken across fragments", CLI, IN("\x01\x01\xce\x80\x01" "A"),
     "ERR TS_EUTF8 1007", "not valid UTF-8"},
    {"ping interleaved, then a bad continuation", CLI,
     IN("\x01\x01\xce\x89\x01" "x" "\x80\x01" "A"), "PING:x | ERR TS_EUTF8 1007",
     "not valid UTF-8"},
    {"close reason with invalid utf-8", CLI, IN("\x88\x04\x03\xe8\xc3\x28"), "ERR TS_EUTF8 1007",
     "reason is not valid UTF-8"},

    /* limits: 1009, detected from the header */
    {"frame over the default limit", CLI, IN("\x82\x7f\x00\x00\x00\x00\x00\x20\x00\x00"),
     "ERR TS_ETOOBIG 1009", "ws: frame payload of 2097152 bytes exceeds the limit of 1000000"},
    {"frame one byte over a small limit", SRV, IN("\x82\xfe\x03\xe9"), "ERR TS_ETOOBIG 1009",
     "frame payload of 1001 bytes exceeds the limit of 1000", .max = 1000},
    {"reassembled message over the limit", CLI, IN("\x02\x03" "abc" "\x80\x02"),
     "ERR TS_ETOOBIG 1009", "fragmented message of 5 bytes exceeds the limit of 4", .max = 4},
    {"ping over a tiny limit", CLI, IN("\x89\x05Hello"), "ERR TS_ETOOBIG 1009",
     "frame payload of 5 bytes exceeds the limit of 4", .max = 4},
    {"over the limit after an interleaved ping", CLI,
     IN("\x01\x02" "ab" "\x89\x01" "p" "\x80\x7e\x00\x09"), "PING:p | ERR TS_ETOOBIG 1009",
     "fragmented message of 11 bytes exceeds the limit of 10", .max = 10},
};

static uint8_t *row_bytes(const frame_case_t *c, size_t *n) {
    *n = c->in_len + c->pad_len + c->tail_len;
    uint8_t *b = ts_xmalloc(*n + 1);
    memcpy(b, c->in, c->in_len);
    memset(b + c->in_len, c->pad, c->pad_len);
    if (c->tail_len) memcpy(b + c->in_len + c->pad_len, c->tail, c->tail_len);
    return b;
}

static void check_run(const frame_case_t *c, const char *how, const run_out_t *o) {
    if (strcmp(o->got, c->want) != 0) {
        print_error("row \"%s\" fed %s:\n   got: %s\n  want: %s\n", c->name, how, o->got,
                    c->want);
        fail();
    }
    if (c->want_msg && !strstr(o->errmsg, c->want_msg)) {
        print_error("row \"%s\" fed %s: errmsg \"%s\" lacks \"%s\"\n", c->name, how, o->errmsg,
                    c->want_msg);
        fail();
    }
    if (!c->want_msg && o->errmsg[0]) {
        print_error("row \"%s\" fed %s: unexpected errmsg \"%s\"\n", c->name, how, o->errmsg);
        fail();
    }
}

static void test_frame_row(void **state) {
    const frame_case_t *c = *state;
    size_t n;
    uint8_t *in = row_bytes(c, &n);
    run_out_t o;
    char how[64];

    run_stream(in, n, c->role, c->max, n ? n : 1, 0, &o);
    check_run(c, "whole", &o);
    free(o.got);

    run_stream(in, n, c->role, c->max, 1, 0, &o);
    check_run(c, "one byte at a time", &o);
    free(o.got);

    /* Big rows: every split near both ends, then a stride through the
     * middle (every offset of a 64 KiB frame would be 4 G byte-copies). */
    for (size_t k = 0; k <= n; k++) {
        if (n > 4096 && k > 64 && k < n - 64 && k % 997 != 0) continue;
        run_stream(in, n, c->role, c->max, 0, k, &o);
        snprintf(how, sizeof how, "split at %zu", k);
        check_run(c, how, &o);
        free(o.got);
    }
    free(in);
}

/* ---- reader behaviour outside the table ---------------------------------- */

static void test_reader_defaults(void **state) {
    ts_ws_reader_t r;
    ts_ws_reader_init(&r, TS_WS_SERVER, 0);
    assert_int_equal(r.max_message, 1000000);
    assert_int_equal(r.role, TS_WS_SERVER);
    assert_int_equal(r.err, 0);
    ts_ws_reader_deinit(&r);
    ts_ws_reader_init(&r, TS_WS_CLIENT, 77);
    assert_int_equal(r.max_message, 77);
    ts_ws_reader_deinit(&r);
}

static void test_reader_error_is_sticky(void **state) {
    ts_ws_reader_t r;
    ts_ws_reader_init(&r, TS_WS_CLIENT, 0);
    uint8_t bad[] = {0xc1, 0x00, 0x81, 0x01, 'a'};
    size_t used = 5;
    ts_ws_msg_t m;
    assert_ts_err(ts_ws_reader_feed(&r, bad, sizeof bad, &used, &m), TS_EPROTO);
    assert_int_equal(r.close_code, TS_WS_CLOSE_PROTOCOL);
    uint8_t good[] = {0x81, 0x01, 'a'};
    assert_ts_err(ts_ws_reader_feed(&r, good, sizeof good, &used, &m), TS_EPROTO);
    assert_int_equal(used, 0);
    ts_ws_reader_deinit(&r);
}

static void test_reader_used_and_lifetime(void **state) {
    ts_ws_reader_t r;
    ts_ws_reader_init(&r, TS_WS_CLIENT, 0);
    uint8_t in[] = {0x01, 0x02, 'a', 'b', 0x89, 0x00, 0x80, 0x01, 'c', 0x82, 0x01, 'd'};
    size_t used;
    ts_ws_msg_t m;

    /* Only the first fragment: consumed, nothing to return. */
    assert_int_equal(ts_ws_reader_feed(&r, in, 4, &used, &m), 0);
    assert_int_equal(used, 4);
    /* Interleaved ping comes out pointing into the caller's bytes. */
    assert_int_equal(ts_ws_reader_feed(&r, in + 4, sizeof in - 4, &used, &m), 1);
    assert_int_equal(used, 2);
    assert_int_equal(m.opcode, TS_WS_OP_PING);
    assert_ptr_equal(m.data, in + 6);
    assert_int_equal(m.len, 0);
    /* Final fragment: the reassembled message lives in the reader. */
    assert_int_equal(ts_ws_reader_feed(&r, in + 6, sizeof in - 6, &used, &m), 1);
    assert_int_equal(used, 3);
    assert_int_equal(m.opcode, TS_WS_OP_TEXT);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.data, "abc", 3);
    assert_true(m.data < in || m.data >= in + sizeof in);
    /* The next message does not see stale fragments. */
    assert_int_equal(ts_ws_reader_feed(&r, in + 9, 3, &used, &m), 1);
    assert_int_equal(used, 3);
    assert_int_equal(m.opcode, TS_WS_OP_BINARY);
    assert_int_equal(m.len, 1);
    assert_memory_equal(m.data, "d", 1);
    assert_int_equal(ts_ws_reader_feed(&r, in, 0, &used, &m), 0);
    assert_int_equal(used, 0);
    assert_int_equal(ts_ws_reader_feed(&r, NULL, 0, &used, &m), 0);
    assert_int_equal(used, 0);
    ts_ws_reader_deinit(&r);

    /* Deinit in the middle of a fragmented message frees what it held. */
    ts_ws_reader_init(&r, TS_WS_CLIENT, 0);
    uint8_t frag[] = {0x02, 0x03, 'x', 'y', 'z'};
    assert_int_equal(ts_ws_reader_feed(&r, frag, sizeof frag, &used, &m), 0);
    assert_int_equal(used, 5);
    ts_ws_reader_deinit(&r);
}

/* A big reassembled message (its buffer is given back on the next feed)
 * followed by small ones: each comes out whole and alone. */
static void test_reader_big_then_small(void **state) {
    enum { BIG = 200000 };
    uint8_t *wire = ts_xmalloc(BIG + 64);
    size_t w = 0;
    w += ts_ws_frame_header(wire + w, TS_WS_OP_BINARY, 0, BIG / 2, NULL);
    memset(wire + w, 'A', BIG / 2);
    w += BIG / 2;
    w += ts_ws_frame_header(wire + w, TS_WS_OP_CONT, 1, BIG / 2, NULL);
    memset(wire + w, 'B', BIG / 2);
    w += BIG / 2;
    static const char tail[] = "\x01\x01x\x80\x01y\x02\x01z\x80\x00";
    memcpy(wire + w, tail, sizeof tail - 1);
    w += sizeof tail - 1;

    ts_ws_reader_t r;
    ts_ws_reader_init(&r, TS_WS_CLIENT, 0);
    size_t used, off = 0;
    ts_ws_msg_t m;
    assert_int_equal(ts_ws_reader_feed(&r, wire, w, &used, &m), 1);
    assert_int_equal(m.len, BIG);
    assert_int_equal(m.data[0], 'A');
    assert_int_equal(m.data[BIG - 1], 'B');
    off += used;
    assert_int_equal(ts_ws_reader_feed(&r, wire + off, w - off, &used, &m), 1);
    assert_int_equal(m.opcode, TS_WS_OP_TEXT);
    assert_int_equal(m.len, 2);
    assert_memory_equal(m.data, "xy", 2);
    off += used;
    assert_int_equal(ts_ws_reader_feed(&r, wire + off, w - off, &used, &m), 1);
    assert_int_equal(m.opcode, TS_WS_OP_BINARY);
    assert_int_equal(m.len, 1);
    assert_memory_equal(m.data, "z", 1);
    off += used;
    assert_int_equal(off, w);
    ts_ws_reader_deinit(&r);
    free(wire);
}

/* ---- UTF-8 --------------------------------------------------------------- */

enum { U_OK, U_BAD, U_PARTIAL };

static const struct utf8_case {
    const char *name;
    const char *in;
    size_t len;
    int want;
    size_t reject_at; /* U_BAD: bytes after which the DFA must be in REJECT */
} utf8_cases[] = {
#define U(lit) lit, sizeof(lit) - 1
    {"empty", U(""), U_OK, 0},
    {"ascii", U("Hello, world"), U_OK, 0},
    {"long ascii (fast path)", U("abcdefghijklmnopqrstuvwxyz0123456789"), U_OK, 0},
    {"2-byte U+00A9", U("\xc2\xa9"), U_OK, 0},
    {"3-byte U+20AC", U("\xe2\x82\xac"), U_OK, 0},
    {"4-byte U+1F600", U("\xf0\x9f\x98\x80"), U_OK, 0},
    {"lowest 2-byte U+0080", U("\xc2\x80"), U_OK, 0},
    {"lowest 3-byte U+0800", U("\xe0\xa0\x80"), U_OK, 0},
    {"lowest 4-byte U+10000", U("\xf0\x90\x80\x80"), U_OK, 0},
    {"last before surrogates U+D7FF", U("\xed\x9f\xbf"), U_OK, 0},
    {"first after surrogates U+E000", U("\xee\x80\x80"), U_OK, 0},
    {"U+FFFF", U("\xef\xbf\xbf"), U_OK, 0},
    {"highest U+10FFFF", U("\xf4\x8f\xbf\xbf"), U_OK, 0},
    {"kosme (greek)", U("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), U_OK, 0},
    {"ascii then multibyte after 8", U("abcdefghij\xe2\x82\xac" "klmnopqr"), U_OK, 0},
    {"overlong '/' C0 AF", U("\xc0\xaf"), U_BAD, 1},
    {"overlong C1 BF", U("\xc1\xbf"), U_BAD, 1},
    {"overlong 3-byte E0 80 AF", U("\xe0\x80\xaf"), U_BAD, 2},
    {"overlong 3-byte E0 9F BF", U("\xe0\x9f\xbf"), U_BAD, 2},
    {"overlong 4-byte F0 80 80 AF", U("\xf0\x80\x80\xaf"), U_BAD, 2},
    {"overlong 4-byte F0 8F BF BF", U("\xf0\x8f\xbf\xbf"), U_BAD, 2},
    {"surrogate U+D800", U("\xed\xa0\x80"), U_BAD, 2},
    {"surrogate U+DFFF", U("\xed\xbf\xbf"), U_BAD, 2},
    {"surrogate pair as CESU-8", U("\xed\xa0\xbd\xed\xb8\x80"), U_BAD, 2},
    {"above U+10FFFF: F4 90", U("\xf4\x90\x80\x80"), U_BAD, 2},
    {"above U+10FFFF: F5 lead", U("\xf5\x80\x80\x80"), U_BAD, 1},
    {"byte FF", U("\xff"), U_BAD, 1},
    {"byte FE after ascii", U("abcdefghijk\xfe"), U_BAD, 12},
    {"stray continuation 80", U("\x80"), U_BAD, 1},
    {"stray continuation after a full char", U("\xc2\xa9\xbf"), U_BAD, 3},
    {"lead byte then ascii", U("\xe2\x82" "A"), U_BAD, 3},
    {"lead byte then lead byte", U("\xc3\xc3"), U_BAD, 2},
    {"bad sequence then valid text (sticky)", U("\xc0\x80" "hello"), U_BAD, 1},
    {"valid then surrogate then valid", U("hello\xed\xa0\x80" "edited"), U_BAD, 7},
    {"truncated 2-byte", U("\xc2"), U_PARTIAL, 0},
    {"truncated 3-byte", U("\xe2\x82"), U_PARTIAL, 0},
    {"truncated 4-byte", U("\xf0\x9f\x98"), U_PARTIAL, 0},
    {"ascii then truncated 4-byte", U("abc\xf4\x8f"), U_PARTIAL, 0},
#undef U
};

static int classify(uint32_t st) {
    return st == TS_UTF8_ACCEPT ? U_OK : st == TS_UTF8_REJECT ? U_BAD : U_PARTIAL;
}

static void test_utf8_table(void **state) {
    static const char *names[] = {"valid", "invalid", "incomplete"};
    for (size_t i = 0; i < TS_ARRAY_LEN(utf8_cases); i++) {
        const struct utf8_case *c = &utf8_cases[i];
        const uint8_t *p = (const uint8_t *)c->in;
        int got = classify(ts_utf8_validate(TS_UTF8_ACCEPT, p, c->len));
        if (got != c->want) {
            print_error("utf8 row \"%s\" whole: got %s, want %s\n", c->name, names[got],
                        names[c->want]);
            fail();
        }
        /* One byte at a time, and the first byte where REJECT shows up. */
        uint32_t st = TS_UTF8_ACCEPT;
        size_t rejected_after = 0;
        for (size_t k = 0; k < c->len; k++) {
            st = ts_utf8_validate(st, p + k, 1);
            if (st == TS_UTF8_REJECT && rejected_after == 0) rejected_after = k + 1;
        }
        if (classify(st) != c->want || rejected_after != c->reject_at) {
            print_error("utf8 row \"%s\" bytewise: got %s (rejected after %zu), want %s (%zu)\n",
                        c->name, names[classify(st)], rejected_after, names[c->want],
                        c->reject_at);
            fail();
        }
        for (size_t k = 0; k <= c->len; k++) {
            st = ts_utf8_validate(ts_utf8_validate(TS_UTF8_ACCEPT, p, k), p + k, c->len - k);
            if (classify(st) != c->want) {
                print_error("utf8 row \"%s\" split at %zu: got %s, want %s\n", c->name, k,
                            names[classify(st)], names[c->want]);
                fail();
            }
        }
    }
}

/* Every code point U+0000..U+10FFFF (minus surrogates) encoded by hand is
 * accepted, every surrogate is rejected. */
static void test_utf8_all_code_points(void **state) {
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xC0 | cp >> 6);
            b[1] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | cp >> 12);
            b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | cp >> 18);
            b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        uint32_t want = cp >= 0xD800 && cp <= 0xDFFF ? TS_UTF8_REJECT : TS_UTF8_ACCEPT;
        uint32_t got = ts_utf8_validate(TS_UTF8_ACCEPT, b, n);
        if (got != want) {
            print_error("U+%04X: got state %u, want %u\n", cp, got, want);
            fail();
        }
    }
}

/* ---- encoding ------------------------------------------------------------ */

static const struct header_case {
    const char *name;
    uint8_t opcode;
    int fin;
    uint64_t len;
    const uint8_t *mask;
    const uint8_t *want;
    size_t want_len;
} header_cases[] = {
#define M (const uint8_t *)"\x37\xfa\x21\x3d"
    {"text 5", TS_WS_OP_TEXT, 1, 5, NULL, B("\x81\x05")},
    {"binary non-final empty", TS_WS_OP_BINARY, 0, 0, NULL, B("\x02\x00")},
    {"cont final 125", TS_WS_OP_CONT, 1, 125, NULL, B("\x80\x7d")},
    {"126 takes 16 bits", TS_WS_OP_BINARY, 1, 126, NULL, B("\x82\x7e\x00\x7e")},
    {"65535 takes 16 bits", TS_WS_OP_BINARY, 1, 65535, NULL, B("\x82\x7e\xff\xff")},
    {"65536 takes 64 bits", TS_WS_OP_BINARY, 1, 65536, NULL,
     B("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00")},
    {"2^32+5", TS_WS_OP_BINARY, 1, 0x100000005ull, NULL,
     B("\x82\x7f\x00\x00\x00\x01\x00\x00\x00\x05")},
    {"close 2", TS_WS_OP_CLOSE, 1, 2, NULL, B("\x88\x02")},
    {"masked text 5 (rfc 5.7)", TS_WS_OP_TEXT, 1, 5, M, B("\x81\x85\x37\xfa\x21\x3d")},
    {"masked 126", TS_WS_OP_TEXT, 1, 126, M, B("\x81\xfe\x00\x7e\x37\xfa\x21\x3d")},
    {"masked 65536 is the max header", TS_WS_OP_BINARY, 0, 65536, M,
     B("\x02\xff\x00\x00\x00\x00\x00\x01\x00\x00\x37\xfa\x21\x3d")},
#undef M
};

static void test_frame_header_table(void **state) {
    for (size_t i = 0; i < TS_ARRAY_LEN(header_cases); i++) {
        const struct header_case *c = &header_cases[i];
        uint8_t out[TS_WS_MAX_HEADER + 4];
        memset(out, 0xEE, sizeof out);
        size_t n = ts_ws_frame_header(out, c->opcode, c->fin, c->len, c->mask);
        if (n != c->want_len || memcmp(out, c->want, n) != 0) {
            ts_sbuf_t g = TS_SBUF_INIT, w = TS_SBUF_INIT;
            render_bytes(&g, out, n);
            render_bytes(&w, c->want, c->want_len);
            print_error("header row \"%s\": got %s, want %s\n", c->name, ts_sbuf_data(&g),
                        ts_sbuf_data(&w));
            ts_sbuf_free(&g);
            ts_sbuf_free(&w);
            fail();
        }
        assert_true(n <= TS_WS_MAX_HEADER);
        assert_int_equal(out[n], 0xEE); /* nothing written past the header */
    }
}

static void test_frame_encode(void **state) {
    ts_buf_t *b = ts_ws_frame_encode(TS_WS_OP_TEXT, "Hello", 5);
    assert_int_equal(b->len, 7);
    assert_memory_equal(b->data, "\x81\x05Hello", 7);
    ts_buf_unref(b);

    b = ts_ws_frame_encode(TS_WS_OP_PING, NULL, 0);
    assert_int_equal(b->len, 2);
    assert_memory_equal(b->data, "\x89\x00", 2);
    ts_buf_unref(b);

    uint8_t big[300];
    memset(big, 'z', sizeof big);
    b = ts_ws_frame_encode(TS_WS_OP_BINARY, big, sizeof big);
    assert_int_equal(b->len, 4 + 300);
    assert_memory_equal(b->data, "\x82\x7e\x01\x2c", 4);
    assert_memory_equal(b->data + 4, big, 300);
    ts_buf_unref(b);
}

static void decode_close(ts_buf_t *b, uint16_t *code, char *reason, size_t cap) {
    ts_ws_reader_t r;
    ts_ws_reader_init(&r, TS_WS_CLIENT, 0);
    size_t used;
    ts_ws_msg_t m;
    int rc = ts_ws_reader_feed(&r, b->data, b->len, &used, &m);
    if (rc != 1) print_error("close frame not accepted: %s\n", ts_ws_reader_errmsg(&r));
    assert_int_equal(rc, 1);
    assert_int_equal(used, b->len);
    assert_int_equal(m.opcode, TS_WS_OP_CLOSE);
    assert_true(m.len < cap);
    memcpy(reason, m.data, m.len);
    reason[m.len] = '\0';
    *code = m.close_code;
    ts_ws_reader_deinit(&r);
}

static void test_frame_encode_close(void **state) {
    uint16_t code;
    char reason[200];

    ts_buf_t *b = ts_ws_frame_encode_close(1000, "bye");
    assert_int_equal(b->len, 7);
    assert_memory_equal(b->data, "\x88\x05\x03\xe8" "bye", 7);
    decode_close(b, &code, reason, sizeof reason);
    assert_int_equal(code, 1000);
    assert_string_equal(reason, "bye");
    ts_buf_unref(b);

    b = ts_ws_frame_encode_close(TS_WS_CLOSE_TOO_BIG, NULL);
    assert_int_equal(b->len, 4);
    assert_memory_equal(b->data, "\x88\x02\x03\xf1", 4);
    ts_buf_unref(b);

    /* 1005 means "no code" and must never be sent: empty close. */
    b = ts_ws_frame_encode_close(TS_WS_CLOSE_NO_STATUS, "ignored");
    assert_int_equal(b->len, 2);
    assert_memory_equal(b->data, "\x88\x00", 2);
    decode_close(b, &code, reason, sizeof reason);
    assert_int_equal(code, TS_WS_CLOSE_NO_STATUS);
    ts_buf_unref(b);

    /* A long ASCII reason is cut to fill exactly 125 bytes. */
    char longr[301];
    memset(longr, 'r', 300);
    longr[300] = '\0';
    b = ts_ws_frame_encode_close(1001, longr);
    assert_int_equal(b->len, 2 + 125);
    assert_int_equal(b->data[1], 125);
    decode_close(b, &code, reason, sizeof reason);
    assert_int_equal(code, 1001);
    assert_int_equal(strlen(reason), 123);
    ts_buf_unref(b);

    /* A cut that would split a UTF-8 character backs off to its start, so
     * the peer's reader still accepts the reason. */
    char utf[301];
    memset(utf, 'a', 122);
    strcpy(utf + 122, "\xe2\x82\xac and more");
    b = ts_ws_frame_encode_close(4000, utf);
    decode_close(b, &code, reason, sizeof reason);
    assert_int_equal(code, 4000);
    assert_int_equal(strlen(reason), 122);
    assert_int_equal(b->len, 2 + 2 + 122);
    ts_buf_unref(b);
}

/* ---- masking --------------------------------------------------------------- */

static uint32_t rng_state = 0x12345678u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_mask(void **state) {
    /* RFC 5.7: the masked "Hello". */
    uint8_t hello[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    ts_ws_mask(hello, 5, key, 0);
    assert_memory_equal(hello, "Hello", 5);

    /* Against a byte-by-byte reference, every length and offset phase. */
    uint8_t buf[80], ref[80], orig[80];
    for (size_t len = 0; len <= 70; len++) {
        for (size_t off = 0; off < 9; off++) {
            uint8_t mk[4];
            for (int i = 0; i < 4; i++) mk[i] = (uint8_t)rnd();
            for (size_t i = 0; i < len; i++) orig[i] = buf[i] = ref[i] = (uint8_t)rnd();
            for (size_t i = 0; i < len; i++) ref[i] ^= mk[(off + i) % 4];
            ts_ws_mask(buf, len, mk, off);
            assert_memory_equal(buf, ref, len);
            ts_ws_mask(buf, len, mk, off); /* involution */
            assert_memory_equal(buf, orig, len);
            /* Unaligned start. */
            memcpy(ref + 3, orig, len);
            ts_ws_mask(ref + 3, len, mk, off);
            for (size_t i = 0; i < len; i++)
                assert_int_equal(ref[3 + i], orig[i] ^ mk[(off + i) % 4]);
        }
    }

    /* Masking a payload in pieces with offsets equals masking it at once. */
    uint8_t whole[1000], parts[1000];
    for (size_t i = 0; i < sizeof whole; i++) whole[i] = parts[i] = (uint8_t)rnd();
    ts_ws_mask(whole, sizeof whole, key, 0);
    size_t cuts[] = {0, 1, 4, 7, 8, 13, 500, 999, 1000};
    for (size_t i = 0; i + 1 < TS_ARRAY_LEN(cuts); i++)
        ts_ws_mask(parts + cuts[i], cuts[i + 1] - cuts[i], key, cuts[i]);
    assert_memory_equal(whole, parts, sizeof whole);
}

/* ---- accept key ---------------------------------------------------------- */

static const struct key_case {
    const char *name;
    const char *key;
    size_t len;
    const char *want; /* NULL: TS_EPROTO */
} key_cases[] = {
    {"rfc 6455 1.3 example", "dGhlIHNhbXBsZSBub25jZQ==", 24, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
    {"second key", "x3JJHMbDL1EzLkh9GBhXDw==", 24, "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
    {"key_len bounds a longer string", "dGhlIHNhbXBsZSBub25jZQ==trailing", 24,
     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
    {"empty", "", 0, NULL},
    {"23 characters", "dGhlIHNhbXBsZSBub25jZQ=", 23, NULL},
    {"25 characters", "dGhlIHNhbXBsZSBub25jZQ===", 25, NULL},
    {"24 characters decoding to 18 bytes", "dGhlIHNhbXBsZSBub25jZQAA", 24, NULL},
    {"24 characters decoding to 17 bytes", "dGhlIHNhbXBsZSBub25jZQA=", 24, NULL},
    {"too much padding", "dGhlIHNhbXBsZSBub25jZ===", 24, NULL},
    {"invalid character", "dGhlIHNhbXBsZSBub25j*Q==", 24, NULL},
    {"embedded space", "dGhlIHNhbXBs ZSBub25jZQ=", 24, NULL},
};

static void test_accept_key(void **state) {
    for (size_t i = 0; i < TS_ARRAY_LEN(key_cases); i++) {
        const struct key_case *c = &key_cases[i];
        char out[29];
        memset(out, 'X', sizeof out);
        int rc = ts_ws_accept_key(c->key, c->len, out);
        if (c->want) {
            if (rc != 0 || strcmp(out, c->want) != 0) {
                print_error("key row \"%s\": rc %s, got %.29s, want %s\n", c->name,
                            ts_err_name(rc), out, c->want);
                fail();
            }
        } else if (rc != TS_EPROTO) {
            print_error("key row \"%s\": rc %d, want TS_EPROTO\n", c->name, rc);
            fail();
        }
    }
}

/* ---- round trips ---------------------------------------------------------- */

static void fill_payload(uint8_t *p, size_t n, int text) {
    /* Text: a valid UTF-8 mix (ASCII, 2-, 3- and 4-byte characters). */
    static const char *chunks[] = {"a", "\xce\xba", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "z"};
    size_t i = 0;
    if (!text) {
        for (; i < n; i++) p[i] = (uint8_t)rnd();
        return;
    }
    while (i < n) {
        const char *ch = chunks[rnd() % TS_ARRAY_LEN(chunks)];
        size_t l = strlen(ch);
        if (i + l > n) ch = "a", l = 1;
        memcpy(p + i, ch, l);
        i += l;
    }
}

static void expect_one(ts_ws_reader_t *r, uint8_t *wire, size_t n, uint8_t op,
                       const uint8_t *payload, size_t len) {
    size_t used;
    ts_ws_msg_t m;
    int rc = ts_ws_reader_feed(r, wire, n, &used, &m);
    if (rc != 1) print_error("op %s len %zu: rc %d (%s)\n", op_name(op), len, rc, ts_ws_reader_errmsg(r));
    assert_int_equal(rc, 1);
    assert_int_equal(used, n);
    assert_int_equal(m.opcode, op);
    assert_int_equal(m.len, len);
    if (len) assert_memory_equal(m.data, payload, len);
}

static const size_t rt_sizes[] = {0, 1, 7, 8, 125, 126, 127, 65535, 65536, 70001};

/* Server role encodes (unmasked); a client-role reader decodes. */
static void test_roundtrip_server_to_client(void **state) {
    const uint8_t ops[] = {TS_WS_OP_TEXT, TS_WS_OP_BINARY, TS_WS_OP_PING, TS_WS_OP_PONG};
    for (size_t o = 0; o < TS_ARRAY_LEN(ops); o++) {
        for (size_t s = 0; s < TS_ARRAY_LEN(rt_sizes); s++) {
            size_t n = rt_sizes[s];
            if ((ops[o] & 8) && n > 125) continue;
            uint8_t *p = ts_xmalloc(n + 1);
            fill_payload(p, n, ops[o] == TS_WS_OP_TEXT);
            ts_buf_t *b = ts_ws_frame_encode(ops[o], p, n);
            ts_ws_reader_t r;
            ts_ws_reader_init(&r, TS_WS_CLIENT, 0);
            expect_one(&r, b->data, b->len, ops[o], p, n);
            ts_ws_reader_deinit(&r);
            ts_buf_unref(b);
            free(p);
        }
    }
}

/* Client role encodes (masked with ts_ws_frame_header + ts_ws_mask, in up
 * to four fragments with their own keys); a server-role reader decodes. */
static size_t client_encode(uint8_t *out, uint8_t op, const uint8_t *p, size_t n, size_t nfrag) {
    size_t w = 0, done = 0;
    for (size_t f = 0; f < nfrag; f++) {
        size_t part = f + 1 == nfrag ? n - done : (n - done) / (nfrag - f);
        uint8_t key[4];
        for (int i = 0; i < 4; i++) key[i] = (uint8_t)rnd();
        w += ts_ws_frame_header(out + w, f == 0 ? op : TS_WS_OP_CONT, f + 1 == nfrag, part, key);
        memcpy(out + w, p + done, part);
        ts_ws_mask(out + w, part, key, 0);
        w += part;
        done += part;
    }
    return w;
}

static void test_roundtrip_client_to_server(void **state) {
    const uint8_t ops[] = {TS_WS_OP_TEXT, TS_WS_OP_BINARY, TS_WS_OP_PING};
    for (size_t o = 0; o < TS_ARRAY_LEN(ops); o++) {
        for (size_t s = 0; s < TS_ARRAY_LEN(rt_sizes); s++) {
            for (size_t nfrag = 1; nfrag <= 4; nfrag++) {
                size_t n = rt_sizes[s];
                if ((ops[o] & 8) && (n > 125 || nfrag > 1)) continue;
                uint8_t *p = ts_xmalloc(n + 1);
                /* Fragments cut text at arbitrary bytes, often inside a
                 * character: the reader must carry UTF-8 state across. */
                fill_payload(p, n, ops[o] == TS_WS_OP_TEXT);
                uint8_t *wire = ts_xmalloc(n + 4 * TS_WS_MAX_HEADER);
                size_t wl = client_encode(wire, ops[o], p, n, nfrag);
                ts_ws_reader_t r;
                ts_ws_reader_init(&r, TS_WS_SERVER, 0);
                expect_one(&r, wire, wl, ops[o], p, n);
                ts_ws_reader_deinit(&r);
                free(wire);
                free(p);
            }
        }
    }
}

/* A long mixed stream in random chunk sizes gives the messages in order. */
static void test_roundtrip_stream_random_chunks(void **state) {
    enum { NMSG = 200 };
    uint8_t *wire = ts_xmalloc(NMSG * (300 + 4 * TS_WS_MAX_HEADER));
    uint8_t ops[NMSG];
    size_t lens[NMSG], wl = 0;
    uint8_t *payloads[NMSG];
    for (int i = 0; i < NMSG; i++) {
        ops[i] = i % 7 == 3 ? TS_WS_OP_PING : i % 2 ? TS_WS_OP_TEXT : TS_WS_OP_BINARY;
        lens[i] = rnd() % (ops[i] == TS_WS_OP_PING ? 126 : 300);
        payloads[i] = ts_xmalloc(lens[i] + 1);
        fill_payload(payloads[i], lens[i], ops[i] == TS_WS_OP_TEXT);
        wl += client_encode(wire + wl, ops[i], payloads[i], lens[i],
                            ops[i] == TS_WS_OP_PING ? 1 : 1 + rnd() % 4);
    }
    for (int round = 0; round < 20; round++) {
        ts_ws_reader_t r;
        ts_ws_reader_init(&r, TS_WS_SERVER, 0);
        uint8_t *copy = ts_xmemdup(wire, wl); /* the reader unmasks in place */
        uint8_t *pend = ts_xmalloc(wl);
        size_t plen = 0, fed = 0;
        int next = 0;
        while (fed < wl) {
            size_t want = 1 + rnd() % (round < 10 ? 16 : 700); /* TS_MIN evaluates twice */
            size_t c = TS_MIN(wl - fed, want);
            memcpy(pend + plen, copy + fed, c);
            plen += c;
            fed += c;
            for (;;) {
                size_t used;
                ts_ws_msg_t m;
                int rc = ts_ws_reader_feed(&r, pend, plen, &used, &m);
                if (rc < 0) print_error("round %d, message %d: %s\n", round, next, ts_ws_reader_errmsg(&r));
                assert_true(rc >= 0);
                if (rc == 1) {
                    assert_true(next < NMSG);
                    assert_int_equal(m.opcode, ops[next]);
                    assert_int_equal(m.len, lens[next]);
                    if (m.len) assert_memory_equal(m.data, payloads[next], m.len);
                    next++;
                }
                memmove(pend, pend + used, plen - used);
                plen -= used;
                if (rc == 0) break;
            }
        }
        assert_int_equal(next, NMSG);
        assert_int_equal(plen, 0);
        free(pend);
        free(copy);
        ts_ws_reader_deinit(&r);
    }
    for (int i = 0; i < NMSG; i++) free(payloads[i]);
    free(wire);
}

/* SHA-1 of the accept key: the FIPS 180 examples and, for every length from
 * 0 to 300 bytes (each padding case), the same digest as OpenSSL. */
static void sha1_hex(const uint8_t *d, char out[41]) {
    for (int i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_sha1_fips(void **state) {
    (void)state;
    static const struct {
        const char *in;
        const char *want;
    } rows[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        /* RFC 6455 1.3: key + GUID of the handshake example */
        {"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
         "b37a4f2cc0624f1690f64606cf385945b2bec4ea"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint8_t d[20];
        char got[41];
        ts_ws__sha1(rows[i].in, strlen(rows[i].in), d);
        sha1_hex(d, got);
        assert_string_equal(got, rows[i].want);
    }
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    uint8_t d[20];
    char got[41];
    ts_ws__sha1(million, 1000000, d);
    sha1_hex(d, got);
    assert_string_equal(got, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(million);
}

static void test_sha1_same_as_openssl(void **state) {
    (void)state;
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t len = 0; len <= sizeof buf; len++) {
        uint8_t ours[20], theirs[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        ts_ws__sha1(buf, len, ours);
        assert_true(EVP_Digest(buf, len, theirs, &n, EVP_sha1(), NULL));
        assert_int_equal(n, 20);
        if (memcmp(ours, theirs, 20) != 0) fail_msg("digest differs for %zu bytes", len);
    }
}

int main(void) {
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_reader_defaults),
        cmocka_unit_test(test_reader_error_is_sticky),
        cmocka_unit_test(test_reader_used_and_lifetime),
        cmocka_unit_test(test_reader_big_then_small),
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_all_code_points),
        cmocka_unit_test(test_frame_header_table),
        cmocka_unit_test(test_frame_encode),
        cmocka_unit_test(test_frame_encode_close),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_sha1_fips),
        cmocka_unit_test(test_sha1_same_as_openssl),
        cmocka_unit_test(test_roundtrip_server_to_client),
        cmocka_unit_test(test_roundtrip_client_to_server),
        cmocka_unit_test(test_roundtrip_stream_random_chunks),
    };
    /* One cmocka test per table row, named after the row, so a failure
     * says which row broke. */
    struct CMUnitTest tests[TS_ARRAY_LEN(frame_cases) + TS_ARRAY_LEN(fixed)];
    size_t n = 0;
    for (size_t i = 0; i < TS_ARRAY_LEN(frame_cases); i++)
        tests[n++] = (struct CMUnitTest){frame_cases[i].name, test_frame_row, NULL, NULL,
                                         (void *)&frame_cases[i]};
    for (size_t i = 0; i < TS_ARRAY_LEN(fixed); i++) tests[n++] = fixed[i];
    return cmocka_run_group_tests_name("ws_frame", tests, NULL, NULL);
}
