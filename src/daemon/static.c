/* static.c - resolves URL paths to files under a root and reads them.
 * Safety comes from two independent checks: the decoded path is
 * normalised segment by segment (no "..", no dot-files), and realpath() of
 * the result must still lie under realpath() of the root, which also
 * catches symlinks that point out of the tree. Every refusal is a 404. */
#include "daemon/ts_dmn_static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ts_mem.h"

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"png", "image/png"},
    {"svg", "image/svg+xml"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
    {"webmanifest", "application/manifest+json"},
};

const char *ts_dmn_static_content_type(const char *name) {
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) {
        for (size_t i = 0; i < TS_ARRAY_LEN(types); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0) return types[i].type;
    }
    return "application/octet-stream";
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long ts_dmn_static_decode(ts_slice_t in, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.p[i];
        if (c == '%') {
            int hi = i + 2 < in.len ? hexval(in.p[i + 1]) : -1;
            int lo = i + 2 < in.len ? hexval(in.p[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            c = (uint8_t)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    if (cap == 0) return -1;
    out[o] = '\0';
    return (long)o;
}

static int answer(ts_dmn_static_res_t *res, int status, const char *why) {
    res->status = status;
    res->why = why;
    return status;
}

/* Is `p` (a realpath) inside the directory `root` (a realpath)? */
static int inside(const char *root, const char *p) {
    size_t rl = strlen(root);
    if (rl == 1 && root[0] == '/') return p[0] == '/';
    return strncmp(p, root, rl) == 0 && (p[rl] == '/' || p[rl] == '\0');
}

static int appendf(char *buf, size_t cap, size_t *o, const char *s, size_t n) {
    if (*o + n + 1 > cap) return -1;
    memcpy(buf + *o, s, n);
    *o += n;
    buf[*o] = '\0';
    return 0;
}

/* Characters kept as they are in a Location path segment (RFC 3986 pchar
 * minus the few that could confuse a header or a browser). */
static int keep_in_url(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

/* Compares entity tags weakly (RFC 9110 8.8.3.2): W/ prefixes are ignored. */
static int etag_matches(ts_slice_t inm, const char *etag) {
    const char *mine = strncmp(etag, "W/", 2) == 0 ? etag + 2 : etag;
    size_t mlen = strlen(mine);
    size_t i = 0;
    while (i < inm.len) {
        while (i < inm.len && (inm.p[i] == ' ' || inm.p[i] == '\t' || inm.p[i] == ',')) i++;
        size_t start = i;
        while (i < inm.len && inm.p[i] != ',') i++;
        size_t end = i;
        while (end > start && (inm.p[end - 1] == ' ' || inm.p[end - 1] == '\t')) end--;
        const uint8_t *t = inm.p + start;
        size_t tl = end - start;
        if (tl == 1 && t[0] == '*') return 1;
        if (tl >= 2 && t[0] == 'W' && t[1] == '/') t += 2, tl -= 2;
        if (tl == mlen && memcmp(t, mine, mlen) == 0) return 1;
    }
    return 0;
}

/* Reads the open regular file `fd` (size known from fstat) into a new buffer. */
static ts_buf_t *read_all(int fd, size_t size) {
    ts_sbuf_t sb = TS_SBUF_INIT;
    ts_sbuf_reserve(&sb, size);
    size_t got = 0;
    /* Never more than fstat's size, so the limit holds even if the file
     * grows meanwhile; a file that shrank is served as it now is. */
    while (got < size) {
        uint8_t *at = ts_sbuf_extend(&sb, size - got);
        ssize_t n = read(fd, at, size - got);
        if (n < 0 && errno == EINTR) {
            ts_sbuf_truncate(&sb, got);
            continue;
        }
        if (n <= 0) {
            ts_sbuf_truncate(&sb, got);
            if (n < 0) {
                ts_sbuf_free(&sb);
                return NULL;
            }
            break;
        }
        got += (size_t)n;
        ts_sbuf_truncate(&sb, got);
    }
    return ts_sbuf_finish(&sb);
}

int ts_dmn_static_serve(const char *root, ts_slice_t path, ts_slice_t if_none_match,
                        ts_dmn_static_res_t *res) {
    memset(res, 0, sizeof(*res));
    if (!root || !root[0]) return answer(res, 404, "no web root configured");
    if (path.len == 0 || path.p[0] != '/') return answer(res, 404, "path does not start with /");

    char dec[TS_DMN_STATIC_MAX_PATH + 1];
    long dlen = ts_dmn_static_decode(path, dec, sizeof dec);
    if (dlen < 0) return answer(res, 404, "bad percent-encoding, NUL byte or path too long");

    char real_root[PATH_MAX];
    if (!realpath(root, real_root)) return answer(res, 404, "web root does not exist");

    /* Normalise: drop empty and "." segments, refuse ".." and dot-files. */
    char full[PATH_MAX], loc[sizeof res->location];
    size_t fo = 0, lo = 0;
    if (appendf(full, sizeof full, &fo, real_root, strlen(real_root)) != 0)
        return answer(res, 404, "path too long");
    loc[0] = '\0';
    const char *name = "index.html";
    for (char *seg = dec; *seg;) {
        char *slash = strchr(seg, '/');
        size_t sl = slash ? (size_t)(slash - seg) : strlen(seg);
        if (sl == 2 && seg[0] == '.' && seg[1] == '.') return answer(res, 404, "\"..\" segment");
        if (sl > 0 && !(sl == 1 && seg[0] == '.')) {
            if (seg[0] == '.' && !(sl == 11 && memcmp(seg, ".well-known", 11) == 0))
                return answer(res, 404, "dot-file");
            if (appendf(full, sizeof full, &fo, "/", 1) != 0 ||
                appendf(full, sizeof full, &fo, seg, sl) != 0)
                return answer(res, 404, "path too long");
            if (appendf(loc, sizeof loc, &lo, "/", 1) != 0) return answer(res, 404, "path too long");
            for (size_t i = 0; i < sl; i++) {
                unsigned char c = (unsigned char)seg[i];
                char enc[4];
                size_t el = 1;
                if (keep_in_url(c))
                    enc[0] = (char)c;
                else
                    el = (size_t)snprintf(enc, sizeof enc, "%%%02X", c);
                if (appendf(loc, sizeof loc, &lo, enc, el) != 0)
                    return answer(res, 404, "path too long");
            }
            name = full + fo - sl;
        }
        seg += sl + (slash ? 1 : 0);
    }
    int trailing_slash = dec[dlen - 1] == '/';

    char real[PATH_MAX];
    if (!realpath(full, real)) return answer(res, 404, "no such file");
    if (!inside(real_root, real)) return answer(res, 404, "path escapes the root");
    struct stat st;
    if (stat(real, &st) != 0) return answer(res, 404, "no such file");
    if (S_ISDIR(st.st_mode)) {
        if (!trailing_slash) {
            /* Built from the normalised segments, so "//host" can never
             * become a protocol-relative redirect to another site. */
            if (appendf(loc, sizeof loc, &lo, "/", 1) != 0) return answer(res, 404, "path too long");
            memcpy(res->location, loc, lo + 1);
            return answer(res, 301, NULL);
        }
        size_t rl = strlen(real);
        if (rl + sizeof "/index.html" > sizeof full) return answer(res, 404, "path too long");
        memcpy(full, real, rl);
        memcpy(full + rl, "/index.html", sizeof "/index.html");
        name = "index.html";
        if (!realpath(full, real)) return answer(res, 404, "directory without index.html");
        if (!inside(real_root, real)) return answer(res, 404, "path escapes the root");
    } else if (trailing_slash) {
        return answer(res, 404, "no such file (a file named as a directory)");
    }

    /* O_NONBLOCK: a FIFO planted in the tree must not hang the loop; it is
     * refused just below as not a regular file. */
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return answer(res, 404, "file cannot be opened");
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return answer(res, 404, "not a regular file");
    }
    if ((uint64_t)st.st_size > TS_DMN_STATIC_MAX_FILE) {
        close(fd);
        return answer(res, 500, "file exceeds the 16 MiB limit of static files");
    }
    snprintf(res->etag, sizeof res->etag, "W/\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    res->content_type = ts_dmn_static_content_type(name);
    if (if_none_match.len && etag_matches(if_none_match, res->etag)) {
        close(fd);
        return answer(res, 304, NULL);
    }
    res->body = read_all(fd, (size_t)st.st_size);
    close(fd);
    if (!res->body) {
        res->etag[0] = '\0';
        res->content_type = NULL;
        return answer(res, 500, "read error");
    }
    return answer(res, 200, NULL);
}

int ts_dmn_static_site(const char *web_root, const char *node_modules, ts_slice_t path,
                       ts_slice_t if_none_match, ts_dmn_static_res_t *res) {
    static const char prefix[] = "/vendor/";
    /* @tabsync/client is the npm workspace clients/js (node_modules/@tabsync/client
     * links to it): its dist/ holds the browser library's bundles. */
    static const char *const dists[] = {"socket.io-client/dist", "socket.io-msgpack-parser/dist",
                                        "@tabsync/client/dist"};
    const size_t pl = sizeof prefix - 1;
    if (path.len < pl || memcmp(path.p, prefix, pl) != 0)
        return ts_dmn_static_serve(web_root, path, if_none_match, res);

    memset(res, 0, sizeof(*res));
    /* "/vendor/x" -> "/x" under each dist folder; exactly one segment. */
    ts_slice_t rest = ts_slice(path.p + pl - 1, path.len - pl + 1);
    char dec[TS_DMN_STATIC_MAX_PATH + 1];
    long dlen = ts_dmn_static_decode(rest, dec, sizeof dec);
    if (dlen < 2 || strchr(dec + 1, '/'))
        return answer(res, 404, "/vendor/ serves single files only");
    if (!node_modules || !node_modules[0]) return answer(res, 404, "no node_modules configured");
    for (size_t i = 0; i < TS_ARRAY_LEN(dists); i++) {
        char dir[PATH_MAX];
        int n = snprintf(dir, sizeof dir, "%s/%s", node_modules, dists[i]);
        if (n < 0 || (size_t)n >= sizeof dir) return answer(res, 404, "node_modules path too long");
        int st = ts_dmn_static_serve(dir, rest, if_none_match, res);
        if (st == 200 || st == 304 || st == 500) return st;
        ts_dmn_static_res_deinit(res);
    }
    return answer(res, 404,
                  "not in socket.io-client/dist, socket.io-msgpack-parser/dist or @tabsync/client/dist");
}

void ts_dmn_static_res_deinit(ts_dmn_static_res_t *res) {
    ts_buf_unref(res->body);
    memset(res, 0, sizeof(*res));
}
