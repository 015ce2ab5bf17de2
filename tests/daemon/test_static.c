/* test_static.c - static file resolution over a temporary tree: normal
 * files, index pages, redirects, every traversal trick we know, symlink
 * escapes, ETag/304, content types, the 16 MiB cap and /vendor/. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/ts_dmn_static.h"

/* The fixture:
 *   <tmp>/secret.txt                  outside the root
 *   <tmp>/root/index.html             "<h1>home</h1>"
 *   <tmp>/root/app.js                 "console.log(1)"
 *   <tmp>/root/a b.css, sub/index.html, sub/deep/x.json, noindex/,
 *   <tmp>/root/.env, .well-known/security.txt, big.bin (16 MiB + 1)
 *   <tmp>/root/leak -> ../secret.txt  (symlink escape)
 *   <tmp>/root/leakdir -> ..          (symlink escape, directory)
 *   <tmp>/root/alias.js -> app.js     (symlink inside: allowed)
 *   <tmp>/root/fifo                   (not a regular file)
 *   <tmp>/nm/socket.io-client/dist/socket.io.min.js
 *   <tmp>/nm/socket.io-msgpack-parser/dist/extra.js */
typedef struct fx {
    char dir[64];
    char root[128];
    char nm[128];
} fx_t;

static void put(const char *dir, const char *rel, const char *content) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void mk(const char *dir, const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/ts_static_XXXXXX");
    if (!mkdtemp(fx->dir)) return -1;
    snprintf(fx->root, sizeof fx->root, "%s/root", fx->dir);
    snprintf(fx->nm, sizeof fx->nm, "%s/nm", fx->dir);
    put(fx->dir, "secret.txt", "TOP SECRET");
    mk(fx->dir, "root");
    put(fx->root, "index.html", "<h1>home</h1>");
    put(fx->root, "app.js", "console.log(1)");
    put(fx->root, "a b.css", "body{}");
    mk(fx->root, "sub");
    put(fx->root, "sub/index.html", "sub index");
    mk(fx->root, "sub/deep");
    put(fx->root, "sub/deep/x.json", "{}");
    mk(fx->root, "noindex");
    put(fx->root, ".env", "SECRET=1");
    mk(fx->root, ".well-known");
    put(fx->root, ".well-known/security.txt", "Contact: x");
    char p[512];
    snprintf(p, sizeof p, "%s/big.bin", fx->root);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, TS_DMN_STATIC_MAX_FILE + 1), 0);
    close(fd);
    snprintf(p, sizeof p, "%s/exact.bin", fx->root);
    fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, TS_DMN_STATIC_MAX_FILE), 0);
    close(fd);
    snprintf(p, sizeof p, "%s/leak", fx->root);
    assert_int_equal(symlink("../secret.txt", p), 0);
    snprintf(p, sizeof p, "%s/leakdir", fx->root);
    assert_int_equal(symlink("..", p), 0);
    snprintf(p, sizeof p, "%s/alias.js", fx->root);
    assert_int_equal(symlink("app.js", p), 0);
    snprintf(p, sizeof p, "%s/fifo", fx->root);
    assert_int_equal(mkfifo(p, 0644), 0);
    mk(fx->dir, "nm");
    mk(fx->nm, "socket.io-client");
    mk(fx->nm, "socket.io-client/dist");
    put(fx->nm, "socket.io-client/dist/socket.io.min.js", "/*! sio */");
    mk(fx->nm, "socket.io-msgpack-parser");
    mk(fx->nm, "socket.io-msgpack-parser/dist");
    put(fx->nm, "socket.io-msgpack-parser/dist/extra.js", "/*! mp */");
    mk(fx->nm, "@tabsync");
    mk(fx->nm, "@tabsync/client");
    mk(fx->nm, "@tabsync/client/dist");
    put(fx->nm, "@tabsync/client/dist/tabsync.js", "/*! ts */");
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fx_t *fx = *state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static int get(const char *root, const char *path, const char *inm, ts_dmn_static_res_t *res) {
    return ts_dmn_static_serve(root, ts_slice_str(path), ts_slice_str(inm ? inm : ""), res);
}

static const struct ok_row {
    const char *path;
    const char *body;
    const char *type;
} oks[] = {
    {"/", "<h1>home</h1>", "text/html; charset=utf-8"},
    {"/index.html", "<h1>home</h1>", "text/html; charset=utf-8"},
    {"/app.js", "console.log(1)", "text/javascript; charset=utf-8"},
    {"/%61pp.js", "console.log(1)", "text/javascript; charset=utf-8"},
    {"/a%20b.css", "body{}", "text/css; charset=utf-8"},
    {"/sub/", "sub index", "text/html; charset=utf-8"},
    {"/sub/deep/x.json", "{}", "application/json"},
    {"//sub///deep/./x.json", "{}", "application/json"},
    {"/sub%2Fdeep%2fx.json", "{}", "application/json"},
    {"/alias.js", "console.log(1)", "text/javascript; charset=utf-8"},
    {"/.well-known/security.txt", "Contact: x", "text/plain; charset=utf-8"},
};

static void test_serves_files(void **state) {
    fx_t *fx = *state;
    for (size_t i = 0; i < sizeof oks / sizeof oks[0]; i++) {
        ts_dmn_static_res_t r;
        int st = get(fx->root, oks[i].path, NULL, &r);
        if (st != 200) fail_msg("%s: status %d (%s)", oks[i].path, st, r.why ? r.why : "");
        assert_int_equal(r.status, 200);
        assert_non_null(r.body);
        assert_int_equal(r.body->len, strlen(oks[i].body));
        assert_memory_equal(r.body->data, oks[i].body, r.body->len);
        assert_string_equal(r.content_type, oks[i].type);
        assert_int_equal(strncmp(r.etag, "W/\"", 3), 0);
        assert_null(r.why);
        ts_dmn_static_res_deinit(&r);
        assert_null(r.body);
    }
}

static const struct nf_row {
    const char *path;
    int status;
    const char *why; /* fragment of res.why */
} nfs[] = {
    {"/../secret.txt", 404, "\"..\""},
    {"/../etc/passwd", 404, "\"..\""},
    {"/%2e%2e/secret.txt", 404, "\"..\""},
    {"/%2E%2E%2fsecret.txt", 404, "\"..\""},
    {"/sub/../../secret.txt", 404, "\"..\""},
    {"/a/../../x", 404, "\"..\""},
    {"/sub/..", 404, "\"..\""},
    {"/..%5c..%5csecret.txt", 404, "dot-file"}, /* backslash is a name byte here */
    {"/app.js%00.html", 404, "NUL"},
    {"/%00", 404, "NUL"},
    {"/bad%zzescape", 404, "percent"},
    {"/trunc%2", 404, "percent"},
    {"/trunc%", 404, "percent"},
    {"/leak", 404, "escapes"},
    {"/leakdir/secret.txt", 404, "escapes"},
    {"/leakdir/", 404, "escapes"},
    {"/.env", 404, "dot-file"},
    {"/sub/.hidden", 404, "dot-file"},
    {"/%2eenv", 404, "dot-file"},
    {"/missing.html", 404, "no such file"},
    {"/app.js/", 404, "no such file"},
    {"/noindex/", 404, "without index.html"},
    {"/fifo", 404, "not a regular file"},
    {"", 404, "start with /"},
    {"app.js", 404, "start with /"},
    {"/big.bin", 500, "16 MiB"},
};

static void test_refuses(void **state) {
    fx_t *fx = *state;
    for (size_t i = 0; i < sizeof nfs / sizeof nfs[0]; i++) {
        ts_dmn_static_res_t r;
        int st = get(fx->root, nfs[i].path, NULL, &r);
        if (st != nfs[i].status)
            fail_msg("%s: status %d (want %d), why %s", nfs[i].path, st, nfs[i].status,
                     r.why ? r.why : "-");
        assert_null(r.body);
        assert_null(r.content_type);
        assert_string_equal(r.etag, "");
        assert_non_null(r.why);
        if (!strstr(r.why, nfs[i].why))
            fail_msg("%s: why \"%s\" lacks \"%s\"", nfs[i].path, r.why, nfs[i].why);
        ts_dmn_static_res_deinit(&r);
    }
}

static void test_no_root_and_missing_root(void **state) {
    (void)state;
    ts_dmn_static_res_t r;
    assert_int_equal(get(NULL, "/", NULL, &r), 404);
    assert_int_equal(get("", "/", NULL, &r), 404);
    assert_int_equal(get("/nonexistent/tabsync", "/", NULL, &r), 404);
}

static void test_long_path(void **state) {
    fx_t *fx = *state;
    char p[TS_DMN_STATIC_MAX_PATH + 10];
    p[0] = '/';
    memset(p + 1, 'a', sizeof p - 2);
    p[sizeof p - 1] = '\0';
    ts_dmn_static_res_t r;
    assert_int_equal(get(fx->root, p, NULL, &r), 404);
    assert_null(r.body);
}

static void test_exact_limit_is_served(void **state) {
    fx_t *fx = *state;
    ts_dmn_static_res_t r;
    assert_int_equal(get(fx->root, "/exact.bin", NULL, &r), 200);
    assert_int_equal(r.body->len, TS_DMN_STATIC_MAX_FILE);
    assert_string_equal(r.content_type, "application/octet-stream");
    ts_dmn_static_res_deinit(&r);
}

static void test_redirects_directories(void **state) {
    fx_t *fx = *state;
    static const struct {
        const char *path, *location;
    } rows[] = {
        {"/sub", "/sub/"},
        {"//sub", "/sub/"}, /* never a protocol-relative "//host/" */
        {"/sub/deep", "/sub/deep/"},
        {"/./sub/./deep", "/sub/deep/"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ts_dmn_static_res_t r;
        assert_int_equal(get(fx->root, rows[i].path, NULL, &r), 301);
        assert_string_equal(r.location, rows[i].location);
        assert_null(r.body);
        ts_dmn_static_res_deinit(&r);
    }
    /* Names are re-encoded in the Location. */
    mk(fx->root, "we ird\"dir");
    put(fx->root, "we ird\"dir/index.html", "w");
    ts_dmn_static_res_t r;
    assert_int_equal(get(fx->root, "/we%20ird%22dir", NULL, &r), 301);
    assert_string_equal(r.location, "/we%20ird%22dir/");
    assert_int_equal(get(fx->root, "/we%20ird%22dir/", NULL, &r), 200);
    assert_memory_equal(r.body->data, "w", 1);
    ts_dmn_static_res_deinit(&r);
}

static void test_etag_304(void **state) {
    fx_t *fx = *state;
    ts_dmn_static_res_t r;
    assert_int_equal(get(fx->root, "/app.js", NULL, &r), 200);
    char etag[64];
    snprintf(etag, sizeof etag, "%s", r.etag);
    /* W/"<size hex>-...": app.js has 14 bytes. */
    assert_int_equal(strncmp(etag, "W/\"e-", 5), 0);
    ts_dmn_static_res_deinit(&r);

    char list[256], strong[64];
    snprintf(list, sizeof list, "\"nope\", %s , W/\"x\"", etag);
    snprintf(strong, sizeof strong, "%s", etag + 2); /* weak comparison ignores W/ */
    const char *matching[] = {etag, list, strong, "*"};
    for (size_t i = 0; i < sizeof matching / sizeof matching[0]; i++) {
        assert_int_equal(get(fx->root, "/app.js", matching[i], &r), 304);
        assert_null(r.body);
        assert_string_equal(r.etag, etag);
        assert_string_equal(r.content_type, "text/javascript; charset=utf-8");
        ts_dmn_static_res_deinit(&r);
    }
    const char *other[] = {"W/\"0-0\"", "\"nope\"", ",", "W/"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_int_equal(get(fx->root, "/app.js", other[i], &r), 200);
        assert_non_null(r.body);
        ts_dmn_static_res_deinit(&r);
    }

    /* A changed file gets a new ETag, so the old one no longer matches. */
    put(fx->root, "app.js", "console.log(22)");
    assert_int_equal(get(fx->root, "/app.js", etag, &r), 200);
    assert_string_not_equal(r.etag, etag);
    assert_int_equal(r.body->len, 15);
    ts_dmn_static_res_deinit(&r);
    put(fx->root, "app.js", "console.log(1)");

    /* The ETag of "/" is the one of index.html. */
    ts_dmn_static_res_t a, b;
    assert_int_equal(get(fx->root, "/", NULL, &a), 200);
    assert_int_equal(get(fx->root, "/index.html", NULL, &b), 200);
    assert_string_equal(a.etag, b.etag);
    ts_dmn_static_res_deinit(&a);
    ts_dmn_static_res_deinit(&b);
}

static void test_content_types(void **state) {
    (void)state;
    static const struct {
        const char *name, *type;
    } rows[] = {
        {"a.html", "text/html; charset=utf-8"},
        {"A.HTML", "text/html; charset=utf-8"},
        {"x.js", "text/javascript; charset=utf-8"},
        {"x.mjs", "text/javascript; charset=utf-8"},
        {"x.css", "text/css; charset=utf-8"},
        {"x.json", "application/json"},
        {"socket.io.min.js.map", "application/json"},
        {"x.png", "image/png"},
        {"x.svg", "image/svg+xml"},
        {"favicon.ico", "image/x-icon"},
        {"robots.txt", "text/plain; charset=utf-8"},
        {"x.wasm", "application/wasm"},
        {"site.webmanifest", "application/manifest+json"},
        {"x.bin", "application/octet-stream"},
        {"Makefile", "application/octet-stream"},
        {".js", "application/octet-stream"},
        {"dir.js/file", "application/octet-stream"},
        {"/a/b/c.svg", "image/svg+xml"},
        {"x.", "application/octet-stream"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_string_equal(ts_dmn_static_content_type(rows[i].name), rows[i].type);
}

static void test_decode(void **state) {
    (void)state;
    char out[16];
    assert_int_equal(ts_dmn_static_decode(ts_slice_str("/a%20b+c"), out, sizeof out), 6);
    assert_string_equal(out, "/a b+c");
    assert_int_equal(ts_dmn_static_decode(ts_slice_str("%41%4a%4A"), out, sizeof out), 3);
    assert_string_equal(out, "AJJ");
    assert_int_equal(ts_dmn_static_decode(ts_slice_str("%"), out, sizeof out), -1);
    assert_int_equal(ts_dmn_static_decode(ts_slice_str("%4"), out, sizeof out), -1);
    assert_int_equal(ts_dmn_static_decode(ts_slice_str("%g0"), out, sizeof out), -1);
    assert_int_equal(ts_dmn_static_decode(ts_slice_str("a%00"), out, sizeof out), -1);
    assert_int_equal(ts_dmn_static_decode(ts_slice("a\0b", 3), out, sizeof out), -1);
    /* Exactly fits (15 bytes + NUL), then one too many. */
    assert_int_equal(ts_dmn_static_decode(ts_slice_str("0123456789abcde"), out, sizeof out), 15);
    assert_int_equal(ts_dmn_static_decode(ts_slice_str("0123456789abcdef"), out, sizeof out), -1);
    assert_int_equal(ts_dmn_static_decode(ts_slice_str(""), out, sizeof out), 0);
    assert_string_equal(out, "");
}

static void test_vendor(void **state) {
    fx_t *fx = *state;
    ts_dmn_static_res_t r;
    const ts_slice_t none = ts_slice_str("");
    assert_int_equal(
        ts_dmn_static_site(fx->root, fx->nm, ts_slice_str("/vendor/socket.io.min.js"), none, &r),
        200);
    assert_memory_equal(r.body->data, "/*! sio */", 10);
    assert_string_equal(r.content_type, "text/javascript; charset=utf-8");
    char etag[64];
    snprintf(etag, sizeof etag, "%s", r.etag);
    ts_dmn_static_res_deinit(&r);
    assert_int_equal(ts_dmn_static_site(fx->root, fx->nm, ts_slice_str("/vendor/socket.io.min.js"),
                                        ts_slice_str(etag), &r),
                     304);
    ts_dmn_static_res_deinit(&r);
    /* Second folder. */
    assert_int_equal(
        ts_dmn_static_site(fx->root, fx->nm, ts_slice_str("/vendor/extra.js"), none, &r), 200);
    assert_memory_equal(r.body->data, "/*! mp */", 9);
    ts_dmn_static_res_deinit(&r);
    /* Third: the browser library's bundles. */
    assert_int_equal(
        ts_dmn_static_site(fx->root, fx->nm, ts_slice_str("/vendor/tabsync.js"), none, &r), 200);
    assert_memory_equal(r.body->data, "/*! ts */", 9);
    assert_string_equal(r.content_type, "text/javascript; charset=utf-8");
    ts_dmn_static_res_deinit(&r);
    /* Everything else goes to the web root. */
    assert_int_equal(ts_dmn_static_site(fx->root, fx->nm, ts_slice_str("/"), none, &r), 200);
    assert_memory_equal(r.body->data, "<h1>home</h1>", 13);
    ts_dmn_static_res_deinit(&r);
    assert_int_equal(ts_dmn_static_site(fx->root, fx->nm, ts_slice_str("/vendorx"), none, &r),
                     404);

    static const char *const bad[] = {
        "/vendor/",          "/vendor/missing.js",       "/vendor/../root/index.html",
        "/vendor/%2e%2e",    "/vendor/dist/x.js",        "/vendor/..%2fsocket.io-client",
        "/vendor/a%2fb.js",  "/vendor/%00",              "/vendor/.",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = ts_dmn_static_site(fx->root, fx->nm, ts_slice_str(bad[i]), none, &r);
        if (st != 404) fail_msg("%s: status %d", bad[i], st);
        assert_null(r.body);
        assert_non_null(r.why);
    }
    /* Without node_modules /vendor/ is just absent; the web root still works. */
    assert_int_equal(
        ts_dmn_static_site(fx->root, "", ts_slice_str("/vendor/socket.io.min.js"), none, &r), 404);
    assert_int_equal(ts_dmn_static_site(fx->root, NULL, ts_slice_str("/app.js"), none, &r), 200);
    ts_dmn_static_res_deinit(&r);
}

/* The real package, when npm installed it: what the demo page loads. */
static void test_vendor_real_package(void **state) {
    (void)state;
    /* CMake compiles with absolute paths: find the source tree from there. */
    char nm[512];
    const char *me = __FILE__, *cut = strstr(me, "/tests/daemon/test_static.c");
    if (!cut) skip();
    snprintf(nm, sizeof nm, "%.*s/node_modules", (int)(cut - me), me);
    char probe[600];
    snprintf(probe, sizeof probe, "%s/socket.io-client/dist/socket.io.min.js", nm);
    if (access(probe, R_OK) != 0) skip();
    ts_dmn_static_res_t r;
    assert_int_equal(ts_dmn_static_site(NULL, nm, ts_slice_str("/vendor/socket.io.min.js"),
                                        ts_slice_str(""), &r),
                     200);
    assert_true(r.body->len > 10000);
    assert_non_null(strstr((const char *)r.body->data, "Socket.IO"));
    ts_dmn_static_res_deinit(&r);
    assert_int_equal(ts_dmn_static_site(NULL, nm, ts_slice_str("/vendor/socket.io.min.js.map"),
                                        ts_slice_str(""), &r),
                     200);
    assert_string_equal(r.content_type, "application/json");
    ts_dmn_static_res_deinit(&r);
}

static void test_shared_body(void **state) {
    fx_t *fx = *state;
    ts_dmn_static_res_t r;
    assert_int_equal(get(fx->root, "/app.js", NULL, &r), 200);
    /* The body is an ordinary ts_buf_t: a write queue can keep it after deinit. */
    ts_buf_t *kept = ts_buf_ref(r.body);
    ts_dmn_static_res_deinit(&r);
    assert_int_equal(kept->len, 14);
    assert_int_equal(kept->data[kept->len], '\0');
    ts_buf_unref(kept);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serves_files),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_no_root_and_missing_root),
        cmocka_unit_test(test_long_path),
        cmocka_unit_test(test_exact_limit_is_served),
        cmocka_unit_test(test_redirects_directories),
        cmocka_unit_test(test_etag_304),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_vendor),
        cmocka_unit_test(test_vendor_real_package),
        cmocka_unit_test(test_shared_body),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
