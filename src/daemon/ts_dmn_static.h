/* ts_dmn_static.h - static files for the web pages tabsyncd serves (the
 * --web root, and /vendor/ from node_modules). Pure functions of (roots,
 * URL path, If-None-Match) -> (status, type, ETag, body): the HTTP router
 * turns the result into a response; tests need no sockets. */
#ifndef TS_DMN_STATIC_H
#define TS_DMN_STATIC_H
#include <stddef.h>

#include "core/ts_buf.h"
#include "core/ts_slice.h"

#define TS_DMN_STATIC_MAX_FILE (16u * 1024u * 1024u) /* bigger files answer 500 */
#define TS_DMN_STATIC_MAX_PATH 1024                  /* decoded URL path bytes; longer -> 404 */

typedef struct ts_dmn_static_res {
    int status;               /* 200, 301, 304, 404 or 500 (also the return value) */
    const char *content_type; /* static string; set for 200 and 304, else NULL */
    char etag[64];            /* W/"<size hex>-<mtime ns hex>" for 200 and 304, else "" */
    char location[TS_DMN_STATIC_MAX_PATH + 2]; /* 301 only: the path plus "/" */
    ts_buf_t *body;           /* 200 only: returns new (the caller owns one
                                 reference); NULL otherwise */
    const char *why;          /* static text for logs when status >= 400, e.g.
                                 "path escapes the root"; never sent to peers */
} ts_dmn_static_res_t;

/* Serves `path` (the URL path, already split from the query, still
 * percent-encoded) from the directory `root` (borrowed; "" or NULL serves
 * nothing).
 *  - Percent-decoding; then NUL, ".." segments, dot-files (except
 *    /.well-known/) and anything whose realpath() leaves the root (symlink
 *    escape) answer 404, never 403, so nothing about the tree leaks.
 *  - "/" and directories serve their index.html; a directory named without
 *    a trailing slash answers 301 to "<path>/" so relative links work.
 *  - `if_none_match` (the raw header value; empty slice if absent) matching
 *    the ETag, or "*", answers 304 without a body.
 * Fills *res and returns res->status. The caller releases it with
 * ts_dmn_static_res_deinit. GET/HEAD handling is the caller's (for HEAD, send
 * the headers of the 200 and drop the body). */
int ts_dmn_static_serve(const char *root, ts_slice_t path, ts_slice_t if_none_match,
                        ts_dmn_static_res_t *res);

/* The site of tabsyncd: "/vendor/<file>" is looked up in
 * <node_modules>/socket.io-client/dist/, then
 * <node_modules>/socket.io-msgpack-parser/dist/, then
 * <node_modules>/@tabsync/client/dist/ (the browser library, clients/js)
 * (one path segment only: /vendor/socket.io.min.js,
 * /vendor/socket.io.msgpack.min.js, /vendor/tabsync.js, their .map);
 * every other path is served from `web_root`. Both roots are borrowed and
 * may be "" or NULL. Same contract as ts_dmn_static_serve. */
int ts_dmn_static_site(const char *web_root, const char *node_modules, ts_slice_t path,
                       ts_slice_t if_none_match, ts_dmn_static_res_t *res);

/* Drops the body reference, if any; *res may be reused. */
void ts_dmn_static_res_deinit(ts_dmn_static_res_t *res);

/* Content-Type for a file name by its extension (case-insensitive):
 * "text/html; charset=utf-8" for .html, ..., "application/octet-stream" when
 * unknown. Returns a static string. */
const char *ts_dmn_static_content_type(const char *name);

/* Percent-decodes the URL path `in` into `out` (cap bytes, NUL-terminated).
 * Returns the decoded length, or -1 on a bad escape, a decoded NUL, or an
 * output longer than cap - 1. '+' stays '+' (it is not a space in paths). */
long ts_dmn_static_decode(ts_slice_t in, char *out, size_t cap);

#endif
