/* handshake.c - the client half of the RFC 6455 opening handshake: the
 * upgrade request, and a strict check of the server's answer (status 101,
 * Upgrade, Connection, Sec-WebSocket-Accept; no extension or subprotocol
 * we did not ask for). Pure: bytes in, verdict out. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client_int.h"

int ts_client__handshake_request(const ts_client__url_t *u, const char *key, char *out,
                                 size_t cap) {
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "User-Agent: libtabsync/" TS_CLIENT_VERSION_STRING "\r\n"
                     "\r\n",
                     u->target, u->host_header, key);
    if (n < 0 || (size_t)n >= cap) return TS_ETOOBIG;
    return n;
}

static int fail(char *err, size_t n, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t n, int rc, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Case-insensitive search for `tok` as a whole element of a comma list. */
static int has_token(const char *v, size_t vlen, const char *tok) {
    size_t tl = strlen(tok), i = 0;
    while (i < vlen) {
        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < vlen && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0) return 1;
    }
    return 0;
}

/* Printable copy for messages: at most 60 bytes, odd bytes as '?'. */
static void sample(char *dst, size_t cap, const char *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap && i < 60; i++)
        dst[k++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    dst[k] = '\0';
}

int ts_client__handshake_parse(const uint8_t *p, size_t len, const char *accept, size_t *used,
                               char *err, size_t errlen) {
    *used = 0;
    const char *s = (const char *)p;
    size_t head = 0;
    for (size_t i = 3; i < len; i++) {
        if (s[i - 3] == '\r' && s[i - 2] == '\n' && s[i - 1] == '\r' && s[i] == '\n') {
            head = i + 1;
            break;
        }
        if (i + 1 > TS_CLIENT__MAX_RESPONSE_HEAD) break;
    }
    if (!head) {
        if (len >= TS_CLIENT__MAX_RESPONSE_HEAD)
            return fail(err, errlen, TS_ETOOBIG,
                        "handshake: response head exceeds %d bytes without an end",
                        TS_CLIENT__MAX_RESPONSE_HEAD);
        /* fail early on something that is not HTTP at all */
        size_t k = len < 5 ? len : 5;
        if (memcmp(s, "HTTP/", k) != 0) {
            char smp[64];
            sample(smp, sizeof smp, s, len);
            return fail(err, errlen, TS_EPROTO, "handshake: the server did not answer HTTP: \"%s\"",
                        smp);
        }
        return 0;
    }

    /* status line */
    const char *eol = memchr(s, '\r', head);
    size_t llen = (size_t)(eol - s);
    char line[128];
    sample(line, sizeof line, s, llen);
    if (llen < 12 || memcmp(s, "HTTP/1.1 ", 9) != 0 || (llen > 12 && s[12] != ' '))
        return fail(err, errlen, TS_EPROTO, "handshake: malformed status line \"%s\"", line);
    if (memcmp(s + 9, "101", 3) != 0)
        return fail(err, errlen, TS_EPROTO,
                    "handshake: the server answered \"%s\" (expected 101 Switching Protocols); "
                    "is the URL's path the server's Socket.IO path?",
                    line);

    int upgrade = 0, connection = 0, got_accept = 0;
    const char *q = eol + 2, *end = s + head - 2; /* end: the final empty line */
    while (q < end) {
        const char *le = memchr(q, '\r', (size_t)(end - q + 1));
        if (!le || le[1] != '\n')
            return fail(err, errlen, TS_EPROTO, "handshake: header line without CRLF");
        const char *colon = memchr(q, ':', (size_t)(le - q));
        if (!colon || colon == q) {
            char smp[64];
            sample(smp, sizeof smp, q, (size_t)(le - q));
            return fail(err, errlen, TS_EPROTO, "handshake: malformed header line \"%s\"", smp);
        }
        size_t nlen = (size_t)(colon - q);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t')) v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        size_t vlen = (size_t)(ve - v);
#define NAME_IS(lit) (nlen == sizeof(lit) - 1 && strncasecmp(q, lit, nlen) == 0)
        if (NAME_IS("Upgrade")) {
            upgrade = has_token(v, vlen, "websocket");
        } else if (NAME_IS("Connection")) {
            connection = has_token(v, vlen, "upgrade");
        } else if (NAME_IS("Sec-WebSocket-Accept")) {
            if (vlen != 28 || memcmp(v, accept, 28) != 0) {
                char smp[64];
                sample(smp, sizeof smp, v, vlen);
                return fail(err, errlen, TS_EPROTO,
                            "handshake: Sec-WebSocket-Accept \"%s\" does not match the key "
                            "(expected \"%s\")",
                            smp, accept);
            }
            got_accept = 1;
        } else if (NAME_IS("Sec-WebSocket-Extensions") && vlen) {
            return fail(err, errlen, TS_EPROTO,
                        "handshake: the server selected an extension we did not offer");
        } else if (NAME_IS("Sec-WebSocket-Protocol") && vlen) {
            return fail(err, errlen, TS_EPROTO,
                        "handshake: the server selected a subprotocol we did not offer");
        }
#undef NAME_IS
        q = le + 2;
    }
    if (!upgrade)
        return fail(err, errlen, TS_EPROTO, "handshake: 101 without \"Upgrade: websocket\"");
    if (!connection)
        return fail(err, errlen, TS_EPROTO, "handshake: 101 without \"Connection: Upgrade\"");
    if (!got_accept)
        return fail(err, errlen, TS_EPROTO, "handshake: 101 without Sec-WebSocket-Accept");
    *used = head;
    return 1;
}
