/* test_token.c - `tabsyncd token`: runs ts_dmn_token_main with captured
 * stdout/stderr and checks that what it prints is a token the server's own
 * verifier (built from the same settings by ts_dmn_auth_new) accepts and
 * binds; then one row per usage error, each a single line and exit 2. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/ts_err.h"
#include "daemon/ts_dmn_token.h"
#include "session/ts_sess_auth.h"

#define SECRET "token-test-secret-0123456789abcdef0123"
#define SECRET2 "token-test-secret-two-0123456789abcdef"
#define ENV_SECRET "TABSYNC_JWT_SECRET=" SECRET
#define MAXARGS 16

static char out[16384], errout[4096];

/* Runs `tabsyncd token ARGS...` with `env`; captures stdout and stderr. */
static int run(const char *const *args, const char *const *env) {
    char *argv[MAXARGS + 2] = {"token"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++) argv[argc] = (char *)args[argc - 1];
    char *envp[MAXARGS + 1] = {0};
    for (int i = 0; env && env[i]; i++) envp[i] = (char *)env[i];

    char po[] = "/tmp/ts_tok_out_XXXXXX", pe[] = "/tmp/ts_tok_err_XXXXXX";
    int fo = mkstemp(po), fe = mkstemp(pe);
    assert_true(fo >= 0 && fe >= 0);
    fflush(stdout);
    fflush(stderr);
    int so = dup(STDOUT_FILENO), se = dup(STDERR_FILENO);
    dup2(fo, STDOUT_FILENO);
    dup2(fe, STDERR_FILENO);
    int rc = ts_dmn_token_main(argc, argv, envp);
    fflush(stdout);
    fflush(stderr);
    dup2(so, STDOUT_FILENO);
    dup2(se, STDERR_FILENO);
    close(so);
    close(se);
    char *bufs[] = {out, errout};
    size_t caps[] = {sizeof out, sizeof errout};
    int fds[] = {fo, fe};
    for (int i = 0; i < 2; i++) {
        lseek(fds[i], 0, SEEK_SET);
        ssize_t n = read(fds[i], bufs[i], caps[i] - 1);
        bufs[i][n > 0 ? n : 0] = '\0';
        close(fds[i]);
    }
    unlink(po);
    unlink(pe);
    return rc;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const *)NULL)

/* A verifier as the server builds it from the same settings. */
static ts_sess_auth_t *server_verifier(const char *const *secrets, size_t n, const char *aud,
                                       const char *iss) {
    ts_dmn_config_t cfg;
    ts_dmn_config_defaults(&cfg);
    for (size_t i = 0; i < n; i++) snprintf(cfg.jwt_secrets[i], sizeof cfg.jwt_secrets[i], "%s", secrets[i]);
    cfg.n_jwt_secrets = n;
    if (aud) snprintf(cfg.jwt_audience, sizeof cfg.jwt_audience, "%s", aud);
    if (iss) snprintf(cfg.jwt_issuer, sizeof cfg.jwt_issuer, "%s", iss);
    ts_sess_auth_t *a = NULL;
    char err[256];
    if (ts_dmn_auth_new(&cfg, &a, err, sizeof err) != 0) fail_msg("verifier: %s", err);
    return a;
}

/* The printed token: exactly one line. */
static const char *printed_token(void) {
    size_t n = strlen(out);
    assert_true(n > 20);
    assert_int_equal(out[n - 1], '\n');
    out[n - 1] = '\0';
    assert_null(strchr(out, '\n'));
    return out;
}

static void test_help(void **state) {
    (void)state;
    assert_int_equal(run(ARGS("--help"), NONE), 0);
    assert_string_equal(out, ts_dmn_token_usage());
    assert_non_null(strstr(out, "--fingerprint F"));
    assert_string_equal(errout, "");
    /* --help wins over anything else. */
    assert_int_equal(run(ARGS("--bogus", "-h"), ARGS("TABSYNC_JWT_SECRET=short")), 0);
    assert_string_equal(out, ts_dmn_token_usage());
}

static void test_mint_env_secret(void **state) {
    (void)state;
    assert_int_equal(run(ARGS("--user", "alice", "--session", "s1", "--device", "laptop-1"),
                         ARGS("PATH=/bin", ENV_SECRET, "TABSYNC_PING_INTERVAL=broken")),
                     0);
    assert_string_equal(errout, "");
    const char *tok = printed_token();
    const char *secrets[] = {SECRET};
    ts_sess_auth_t *a = server_verifier(secrets, 1, NULL, NULL);
    ts_sess_claims_t c;
    ts_sess_deny_t d;
    int64_t now = (int64_t)time(NULL);
    if (ts_sess_auth_verify(a, tok, strlen(tok), now, &c, &d) != 0) fail_msg("%s", d.msg);
    assert_string_equal(c.sub, "alice");
    assert_string_equal(c.sid, "s1");
    assert_string_equal(c.dev, "laptop-1");
    assert_int_equal(c.exp - c.iat, 3600);
    assert_true(c.iat >= now - 5 && c.iat <= now);
    /* No --fingerprint: the device id is the fingerprint. */
    assert_int_equal(ts_sess_auth_bind(&c, "laptop-1", 8, "laptop-1", 8, &d), 0);
    assert_int_equal(ts_sess_auth_bind(&c, "laptop-1", 8, "other", 5, &d), TS_EAUTH);
    /* Expired after its hour (leeway 30 s). */
    assert_int_equal(ts_sess_auth_verify(a, tok, strlen(tok), c.exp + 30, &c, &d), TS_EAUTH);
    assert_int_equal(d.reason, TS_SESS_R_TOKEN_EXPIRED);
    ts_sess_auth_free(a);
}

static void test_mint_file_and_options(void **state) {
    (void)state;
    char path[] = "/tmp/ts_tok_secret_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = SECRET2 "\n" SECRET "\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    char envf[128];
    snprintf(envf, sizeof envf, "TABSYNC_JWT_SECRET_FILE=%s", path);

    /* The first secret of the file signs; the server verifies with both. */
    assert_int_equal(run(ARGS("--user=bob", "--session=s-9", "--device", "phone:7",
                              "--fingerprint", "Mozilla/5.0 (Android) 412x915", "--ttl", "60",
                              "--audience", "tabsync-api", "--issuer=dev-cli"),
                         ARGS(envf)),
                     0);
    const char *tok = printed_token();
    const char *both[] = {SECRET, SECRET2};
    ts_sess_auth_t *a = server_verifier(both, 2, "tabsync-api", "dev-cli");
    ts_sess_claims_t c;
    ts_sess_deny_t d;
    int64_t now = (int64_t)time(NULL);
    if (ts_sess_auth_verify(a, tok, strlen(tok), now, &c, &d) != 0) fail_msg("%s", d.msg);
    assert_int_equal(c.exp - c.iat, 60);
    assert_string_equal(c.dev, "phone:7");
    const char *fp = "Mozilla/5.0 (Android) 412x915";
    assert_int_equal(ts_sess_auth_bind(&c, "phone:7", 7, fp, strlen(fp), &d), 0);
    ts_sess_auth_free(a);
    const char *only_first[] = {SECRET};
    a = server_verifier(only_first, 1, NULL, NULL); /* SECRET2 signed it */
    assert_int_equal(ts_sess_auth_verify(a, tok, strlen(tok), now, &c, &d), TS_EAUTH);
    assert_int_equal(d.reason, TS_SESS_R_TOKEN_BAD_SIGNATURE);
    ts_sess_auth_free(a);

    /* --jwt-secret-file as a flag, audience and issuer from the server's settings. */
    char flag[128];
    snprintf(flag, sizeof flag, "--jwt-secret-file=%s", path);
    assert_int_equal(run(ARGS("--user", "u", "--session", "s", "--device", "d", flag),
                         ARGS("TABSYNC_JWT_AUDIENCE=aud-1", "TABSYNC_JWT_ISSUER=iss-1")),
                     0);
    tok = printed_token();
    const char *second[] = {SECRET2};
    a = server_verifier(second, 1, "aud-1", "iss-1");
    if (ts_sess_auth_verify(a, tok, strlen(tok), now, &c, &d) != 0) fail_msg("%s", d.msg);
    ts_sess_auth_free(a);
    unlink(path);
}

static const struct err_case {
    const char *name;
    const char *args[MAXARGS];
    const char *env[4];
    int rc;
    const char *fragment;
} errs[] = {
    {"no user", {"--session", "s", "--device", "d"}, {ENV_SECRET}, 2,
     "tabsyncd token: --user is required (see tabsyncd token --help)"},
    {"no session", {"--user", "u", "--device", "d"}, {ENV_SECRET}, 2, "--session is required"},
    {"no device", {"--user", "u", "--session", "s"}, {ENV_SECRET}, 2, "--device is required"},
    {"bad user id", {"--user", "a b", "--session", "s", "--device", "d"}, {ENV_SECRET}, 2,
     "--user must be 1-128 characters of A-Z a-z 0-9 . _ : @ -"},
    {"bad session id", {"--user", "u", "--session", "s/1", "--device", "d"}, {ENV_SECRET}, 2,
     "--session must be"},
    {"user without value", {"--session", "s", "--device", "d", "--user"}, {ENV_SECRET}, 2,
     "--user needs a value"},
    {"user followed by a flag", {"--user", "--session", "s", "--device", "d"}, {ENV_SECRET}, 2,
     "--user needs a value"},
    {"ttl 0", {"--user", "u", "--session", "s", "--device", "d", "--ttl", "0"}, {ENV_SECRET}, 2,
     "--ttl must be an integer 1..2592000 (seconds)"},
    {"ttl words", {"--user", "u", "--session", "s", "--device", "d", "--ttl=1h"}, {ENV_SECRET}, 2,
     "--ttl must be"},
    {"ttl too long", {"--user", "u", "--session", "s", "--device", "d", "--ttl", "2592001"},
     {ENV_SECRET}, 2, "--ttl must be"},
    {"ttl negative", {"--user", "u", "--session", "s", "--device", "d", "--ttl=-5"}, {ENV_SECRET},
     2, "--ttl must be"},
    {"fingerprint with a newline", {"--user", "u", "--session", "s", "--device", "d",
                                    "--fingerprint", "a\nb"},
     {ENV_SECRET}, 2, "--fingerprint must be"},
    {"no secret", {"--user", "u", "--session", "s", "--device", "d"}, {"PATH=/bin"}, 2,
     "no HS256 secret is configured"},
    {"short secret", {"--user", "u", "--session", "s", "--device", "d"},
     {"TABSYNC_JWT_SECRET=short"}, 2,
     "tabsyncd token: config: TABSYNC_JWT_SECRET is 5 bytes; a secret needs at least 32"},
    {"missing secret file", {"--user", "u", "--session", "s", "--device", "d",
                             "--jwt-secret-file", "/nonexistent/s"},
     {0}, 2, "config: --jwt-secret-file=\"/nonexistent/s\" cannot be read"},
    {"secret flag followed by a flag-like secret",
     {"--user", "u", "--session", "s", "--device", "d", "--jwt-secret", "--0123456789abcdef0123456789abcdef"},
     {0}, 2, "--jwt-secret needs a value (--jwt-secret=VALUE if it starts with --)"},
    {"unknown flag", {"--user", "u", "--session", "s", "--device", "d", "--listen=:3000"},
     {ENV_SECRET}, 2, "tabsyncd token: unknown flag --listen (see tabsyncd token --help)"},
    {"positional", {"alice"}, {ENV_SECRET}, 2, "unexpected argument \"alice\""},
};

static void test_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const struct err_case *k = &errs[i];
        int rc = run(k->args[0] ? k->args : NONE, k->env[0] ? k->env : NONE);
        if (rc != k->rc) fail_msg("%s: rc %d (want %d): %s", k->name, rc, k->rc, errout);
        if (!strstr(errout, k->fragment))
            fail_msg("%s: stderr \"%s\" lacks \"%s\"", k->name, errout, k->fragment);
        size_t n = strlen(errout);
        if (n == 0 || errout[n - 1] != '\n' || strchr(errout, '\n') != errout + n - 1)
            fail_msg("%s: stderr is not one line: \"%s\"", k->name, errout);
        if (out[0]) fail_msg("%s: printed a token anyway", k->name);
        if (strstr(errout, "0123456789abcdef0123")) fail_msg("%s: secret echoed", k->name);
    }
}

static void test_auth_new_from_config(void **state) {
    (void)state;
    ts_dmn_config_t cfg;
    ts_dmn_config_defaults(&cfg);
    snprintf(cfg.jwt_public_key, sizeof cfg.jwt_public_key, "/nonexistent/key.pem");
    ts_sess_auth_t *a = NULL;
    char err[256];
    assert_int_equal(ts_dmn_auth_new(&cfg, &a, err, sizeof err), TS_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "/nonexistent/key.pem cannot be read"));
    /* No key at all: a verifier that refuses everything. */
    cfg.jwt_public_key[0] = '\0';
    assert_int_equal(ts_dmn_auth_new(&cfg, &a, err, sizeof err), 0);
    assert_int_equal(ts_sess_auth_algs(a), 0);
    ts_sess_auth_free(a);
    /* A leeway from the config is used. */
    cfg.jwt_leeway_s = 301;
    assert_int_equal(ts_dmn_auth_new(&cfg, &a, err, sizeof err), TS_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_mint_env_secret),
        cmocka_unit_test(test_mint_file_and_options),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_auth_new_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
