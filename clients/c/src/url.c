/* url.c - parses the server URL a libtabsync user gives (ws://, http://,
 * wss://, https://) into what a connection needs: TLS or not, host and port
 * to resolve, the Host header and the Engine.IO request target. Pure, no
 * allocation. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client_int.h"

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return TS_EINVAL;
}

static int url_char_ok(unsigned char ch) { return ch > 0x20 && ch < 0x7f; }

int ts_client__url_parse(const char *url, ts_client__url_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!url || !*url) return fail(err, errlen, "url: missing (expected ws://HOST:PORT/socket.io/)");
    for (const char *q = url; *q; q++)
        if (!url_char_ok((unsigned char)*q))
            return fail(err, errlen, "url: \"%s\" contains a space or a non-ASCII character", url);

    static const struct {
        const char *prefix;
        int tls;
    } schemes[] = {{"ws://", 0}, {"http://", 0}, {"wss://", 1}, {"https://", 1}};
    const char *rest = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && !rest; i++) {
        size_t k = strlen(schemes[i].prefix);
        if (strncasecmp(url, schemes[i].prefix, k) == 0) {
            rest = url + k;
            out->tls = schemes[i].tls;
        }
    }
    if (!rest) {
        const char *colon = strstr(url, "://");
        if (colon)
            return fail(err, errlen,
                        "url: scheme \"%.*s\" is not supported (expected ws://, wss://, http:// "
                        "or https://)",
                        (int)(colon - url), url);
        return fail(err, errlen, "url: \"%s\" has no scheme (expected ws://HOST:PORT/PATH)", url);
    }

    /* authority ends at the first '/', '?' or '#' */
    size_t alen = strcspn(rest, "/?#");
    const char *auth = rest, *after = rest + alen;
    if (memchr(auth, '@', alen))
        return fail(err, errlen, "url: user information (user@host) is not supported");
    const char *host = auth, *port = NULL;
    size_t hlen;
    if (alen && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close) return fail(err, errlen, "url: IPv6 address without a closing ']'");
        host = auth + 1;
        hlen = (size_t)(close - host);
        const char *p = close + 1;
        if (p < after) {
            if (*p != ':') return fail(err, errlen, "url: unexpected text after ']'");
            port = p + 1;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        hlen = colon ? (size_t)(colon - auth) : alen;
        if (colon) port = colon + 1;
    }
    if (hlen == 0) return fail(err, errlen, "url: \"%s\" has no host", url);
    if (hlen >= sizeof out->host) return fail(err, errlen, "url: host name is too long");
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';

    uint16_t default_port = out->tls ? 443 : 80;
    out->port = default_port;
    if (port) {
        size_t plen = (size_t)(after - port);
        unsigned long v = 0;
        if (plen == 0 || plen > 5)
            return fail(err, errlen, "url: port \"%.*s\" is not a port number (expected 1-65535)",
                        (int)plen, port);
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                return fail(err, errlen,
                            "url: port \"%.*s\" is not a port number (expected 1-65535)",
                            (int)plen, port);
            v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (v == 0 || v > 65535)
            return fail(err, errlen, "url: port \"%.*s\" is not a port number (expected 1-65535)",
                        (int)plen, port);
        out->port = (uint16_t)v;
    }
    int v6 = host != auth;
    if (out->port == default_port)
        snprintf(out->host_header, sizeof out->host_header, "%s%s%s", v6 ? "[" : "", out->host,
                 v6 ? "]" : "");
    else
        snprintf(out->host_header, sizeof out->host_header, "%s%s%s:%u", v6 ? "[" : "",
                 out->host, v6 ? "]" : "", out->port);

    /* path, then query; a fragment is dropped, as browsers do */
    size_t plen = strcspn(after, "?#");
    const char *path = after;
    const char *query = NULL;
    size_t qlen = 0;
    if (path[plen] == '?') {
        query = path + plen + 1;
        qlen = strcspn(query, "#");
    }
    const char *use_path = path;
    size_t use_len = plen;
    if (plen == 0 || (plen == 1 && path[0] == '/')) {
        use_path = "/socket.io/";
        use_len = strlen(use_path);
    }
    int n = snprintf(out->target, sizeof out->target, "%.*s?EIO=4&transport=websocket%s%.*s",
                     (int)use_len, use_path, qlen ? "&" : "", (int)qlen, query ? query : "");
    if (n < 0 || (size_t)n >= sizeof out->target)
        return fail(err, errlen, "url: path and query are too long (at most %zu bytes)",
                    sizeof out->target - 30);
    return 0;
}
