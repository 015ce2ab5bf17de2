/* test_config.c - tabsyncd configuration: defaults, every flag in both
 * syntaxes, every TABSYNC_* variable, precedence, --conformance, --listen
 * forms, every error message, --help/--version output, and the
 * authentication settings (secrets and their files, which no message may
 * echo; the public key check; the admin and publisher tokens). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/ts_dmn_config.h"

#define MAXARGS 12

/* Parses argv (NULL-terminated, without argv[0]) and envp (NULL-terminated)
 * on top of the defaults. */
static int run(ts_dmn_config_t *cfg, const char *const *args, const char *const *env, char *err,
               size_t errlen) {
    char *argv[MAXARGS + 2] = {"tabsyncd"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++) {
        assert_true(argc <= MAXARGS);
        argv[argc] = (char *)args[argc - 1];
    }
    char *envp[MAXARGS + 1] = {0};
    for (int i = 0; env && env[i]; i++) envp[i] = (char *)env[i];
    ts_dmn_config_defaults(cfg);
    return ts_dmn_config_parse(cfg, argc, argv, envp, err, errlen);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NOARGS ((const char *const *)NULL)

static void test_defaults(void **state) {
    (void)state;
    ts_dmn_config_t c;
    char err[256] = "x";
    assert_int_equal(run(&c, NOARGS, NOARGS, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 3000);
    assert_int_equal(c.ping_interval_ms, 25000);
    assert_int_equal(c.ping_timeout_ms, 20000);
    assert_int_equal(c.upgrade_timeout_ms, 10000);
    assert_int_equal(c.connect_timeout_ms, 45000);
    assert_int_equal(c.max_payload, 1000000);
    assert_int_equal(c.n_cors_origins, 0);
    assert_int_equal(c.cors_credentials, 0);
    assert_int_equal(c.parser_msgpack, 0);
    assert_int_equal(c.recovery_ms, 120000);
    assert_int_equal(c.log_level, TS_LOG_INFO);
    assert_string_equal(c.web_root, "");
    assert_string_equal(c.node_modules, "");
    assert_int_equal(c.conformance, 0);
    assert_int_equal(c.test_app, 0);
    assert_int_equal(c.http_max_header_bytes, 16384);
    assert_int_equal(c.http_max_headers, 64);
    assert_int_equal(c.http_request_timeout_ms, 10000);
    assert_int_equal(c.http_idle_timeout_ms, 5000);
    assert_int_equal(c.ws_max_send_queue, 16 * 1024 * 1024);
    assert_int_equal(c.shutdown_timeout_ms, 10000);
    assert_string_equal(c.tls_cert, "");
    assert_string_equal(c.tls_key, "");
    assert_int_equal(c.n_jwt_secrets, 0);
    assert_string_equal(c.jwt_secrets[0], "");
    assert_string_equal(c.jwt_secret_file, "");
    assert_string_equal(c.jwt_public_key, "");
    assert_string_equal(c.jwt_audience, "");
    assert_string_equal(c.jwt_issuer, "");
    assert_int_equal(c.jwt_leeway_s, 30);
    assert_string_equal(c.admin_token, "");
    assert_string_equal(c.admin_token_file, "");
    assert_string_equal(c.publisher_token, "");
    assert_string_equal(c.publisher_token_file, "");
    assert_int_equal(c.dev, 0);
}

/* ---- numeric options: one row each, every form generated from it ---- */

static const struct num_case {
    const char *flag, *env;
    size_t off;
    int is_size;
    unsigned long long lo, hi, dflt;
    const char *unit;
} nums[] = {
    {"ping-interval", "TABSYNC_PING_INTERVAL", offsetof(ts_dmn_config_t, ping_interval_ms), 0, 1,
     3600000, 25000, "milliseconds"},
    {"ping-timeout", "TABSYNC_PING_TIMEOUT", offsetof(ts_dmn_config_t, ping_timeout_ms), 0, 1,
     3600000, 20000, "milliseconds"},
    {"upgrade-timeout", "TABSYNC_UPGRADE_TIMEOUT", offsetof(ts_dmn_config_t, upgrade_timeout_ms),
     0, 1, 3600000, 10000, "milliseconds"},
    {"connect-timeout", "TABSYNC_CONNECT_TIMEOUT", offsetof(ts_dmn_config_t, connect_timeout_ms),
     0, 1, 3600000, 45000, "milliseconds"},
    {"max-payload", "TABSYNC_MAX_PAYLOAD", offsetof(ts_dmn_config_t, max_payload), 1, 1024,
     1073741824ull, 1000000, "bytes"},
    {"recovery-window", "TABSYNC_RECOVERY_WINDOW", offsetof(ts_dmn_config_t, recovery_ms), 0, 0,
     86400000, 120000, "milliseconds"},
    {"http-max-header-bytes", "TABSYNC_HTTP_MAX_HEADER_BYTES",
     offsetof(ts_dmn_config_t, http_max_header_bytes), 1, 1024, 1048576, 16384, "bytes"},
    {"http-max-headers", "TABSYNC_HTTP_MAX_HEADERS", offsetof(ts_dmn_config_t, http_max_headers),
     1, 1, 128, 64, "headers"},
    {"http-request-timeout", "TABSYNC_HTTP_REQUEST_TIMEOUT",
     offsetof(ts_dmn_config_t, http_request_timeout_ms), 0, 1, 3600000, 10000, "milliseconds"},
    {"http-idle-timeout", "TABSYNC_HTTP_IDLE_TIMEOUT",
     offsetof(ts_dmn_config_t, http_idle_timeout_ms), 0, 1, 3600000, 5000, "milliseconds"},
    {"max-send-queue", "TABSYNC_MAX_SEND_QUEUE", offsetof(ts_dmn_config_t, ws_max_send_queue), 1,
     65536, 1073741824ull, 16777216, "bytes"},
    {"shutdown-timeout", "TABSYNC_SHUTDOWN_TIMEOUT",
     offsetof(ts_dmn_config_t, shutdown_timeout_ms), 0, 0, 3600000, 10000, "milliseconds"},
    {"jwt-leeway", "TABSYNC_JWT_LEEWAY", offsetof(ts_dmn_config_t, jwt_leeway_s), 0, 0, 300, 30,
     "seconds"},
    /* a maximum below 9: "9" was taken (max - digit wrapped) */
    {"limit-strikes", "TABSYNC_LIMIT_STRIKES", offsetof(ts_dmn_config_t, limit_strikes), 0, 0, 8,
     5, "strikes"},
    {"history-cache", "TABSYNC_HISTORY_CACHE", offsetof(ts_dmn_config_t, hist_cache), 0, 1,
     10000000, 10000, "sessions"},
    {"history-cache-mb", "TABSYNC_HISTORY_CACHE_MB", offsetof(ts_dmn_config_t, hist_cache_mb), 0,
     1, 1048576, 256, "MiB"},
};

static unsigned long long get_num(const ts_dmn_config_t *c, const struct num_case *n) {
    const char *f = (const char *)c + n->off;
    if (n->is_size) {
        size_t z;
        memcpy(&z, f, sizeof z);
        return z;
    }
    uint32_t u;
    memcpy(&u, f, sizeof u);
    return u;
}

static void test_numbers_accepted(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        const struct num_case *n = &nums[i];
        ts_dmn_config_t c;
        char err[256], flag[64], eqform[96], envv[96], v[32], v2[32];
        snprintf(flag, sizeof flag, "--%s", n->flag);
        /* Values inside the range, different from the default. */
        unsigned long long a = n->lo == n->dflt ? n->lo + 1 : n->lo;
        unsigned long long b = n->hi;
        snprintf(v, sizeof v, "%llu", a);
        snprintf(v2, sizeof v2, "%llu", b);
        snprintf(eqform, sizeof eqform, "--%s=%llu", n->flag, b);
        snprintf(envv, sizeof envv, "%s=%llu", n->env, a);

        assert_int_equal(run(&c, NOARGS, NOARGS, err, sizeof err), 0);
        assert_int_equal(get_num(&c, n), n->dflt);

        assert_int_equal(run(&c, ARGS(flag, v), NOARGS, err, sizeof err), 0);
        assert_int_equal(get_num(&c, n), a);

        assert_int_equal(run(&c, ARGS(eqform), NOARGS, err, sizeof err), 0);
        assert_int_equal(get_num(&c, n), b);

        assert_int_equal(run(&c, NOARGS, ARGS(envv), err, sizeof err), 0);
        assert_int_equal(get_num(&c, n), a);

        /* The flag wins over the environment. */
        assert_int_equal(run(&c, ARGS(eqform), ARGS(envv), err, sizeof err), 0);
        assert_int_equal(get_num(&c, n), b);
        /* The later flag wins over an earlier one. */
        assert_int_equal(run(&c, ARGS(eqform, flag, v), NOARGS, err, sizeof err), 0);
        assert_int_equal(get_num(&c, n), a);
    }
}

static void test_numbers_rejected(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        const struct num_case *n = &nums[i];
        ts_dmn_config_t c;
        char err[256], want[256], arg[96], envv[96];

        /* Not a number, from the environment and from a flag. */
        snprintf(envv, sizeof envv, "%s=12x", n->env);
        assert_int_equal(run(&c, NOARGS, ARGS(envv), err, sizeof err), 2);
        snprintf(want, sizeof want,
                 "config: %s=\"12x\" is not a number of %s (expected an integer %llu..%llu)",
                 n->env, n->unit, n->lo, n->hi);
        assert_string_equal(err, want);

        snprintf(arg, sizeof arg, "--%s=-5", n->flag);
        assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
        snprintf(want, sizeof want,
                 "config: --%s=\"-5\" is not a number of %s (expected an integer %llu..%llu)",
                 n->flag, n->unit, n->lo, n->hi);
        assert_string_equal(err, want);

        /* One above the range. */
        snprintf(arg, sizeof arg, "--%s=%llu", n->flag, n->hi + 1);
        assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
        snprintf(want, sizeof want,
                 "config: --%s=\"%llu\" is too large (expected an integer %llu..%llu %s)",
                 n->flag, n->hi + 1, n->lo, n->hi, n->unit);
        assert_string_equal(err, want);

        /* One below, where there is room below. */
        if (n->lo > 0) {
            snprintf(envv, sizeof envv, "%s=%llu", n->env, n->lo - 1);
            assert_int_equal(run(&c, NOARGS, ARGS(envv), err, sizeof err), 2);
            snprintf(want, sizeof want,
                     "config: %s=\"%llu\" is too small (expected an integer %llu..%llu %s)",
                     n->env, n->lo - 1, n->lo, n->hi, n->unit);
            assert_string_equal(err, want);
        }

        /* Missing value at the end, or followed by another flag. */
        snprintf(arg, sizeof arg, "--%s", n->flag);
        assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
        assert_non_null(strstr(err, "needs a value"));
        assert_int_equal(run(&c, ARGS(arg, "--test-app"), NOARGS, err, sizeof err), 2);
        assert_non_null(strstr(err, "needs a value"));

        /* Huge numbers do not wrap around. */
        snprintf(arg, sizeof arg, "--%s=99999999999999999999999999", n->flag);
        assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
        assert_non_null(strstr(err, "is too large"));
    }
}

/* ---- everything that is not a number ---- */

typedef enum field {
    F_NONE,
    F_HOST_PORT,
    F_BOOL,
    F_STR,
    F_ORIGINS,
    F_PARSER,
    F_LOG,
    F_DURABILITY, /* want_n = durability * 10000 + group_commit_ms */
    F_U32,        /* a uint32_t field: want_n */
} field_t;

static const struct ok_case {
    const char *name;
    const char *args[MAXARGS];
    const char *env[4];
    field_t field;
    size_t off;         /* F_BOOL, F_STR */
    const char *want_s; /* host, string, or origins joined by ' ' */
    long want_n;        /* port, bool, parser_msgpack, log level */
} oks[] = {
    {"listen ipv4", {"--listen", "127.0.0.1:3000"}, {0}, F_HOST_PORT, 0, "127.0.0.1", 3000},
    {"listen any ipv4", {"--listen=0.0.0.0:8080"}, {0}, F_HOST_PORT, 0, "0.0.0.0", 8080},
    {"listen ipv6", {"--listen", "[::1]:3000"}, {0}, F_HOST_PORT, 0, "::1", 3000},
    {"listen ipv6 any", {"--listen=[::]:443"}, {0}, F_HOST_PORT, 0, "::", 443},
    {"listen port only", {"--listen", ":3001"}, {0}, F_HOST_PORT, 0, "127.0.0.1", 3001},
    {"listen port 0", {"--listen", "127.0.0.1:0"}, {0}, F_HOST_PORT, 0, "127.0.0.1", 0},
    {"listen port max", {"--listen", ":65535"}, {0}, F_HOST_PORT, 0, "127.0.0.1", 65535},
    {"listen localhost", {"--listen", "localhost:4000"}, {0}, F_HOST_PORT, 0, "127.0.0.1", 4000},
    {"listen env", {0}, {"TABSYNC_LISTEN=[::1]:9"}, F_HOST_PORT, 0, "::1", 9},
    {"listen flag over env",
     {"--listen", ":7"},
     {"TABSYNC_LISTEN=10.0.0.1:9"},
     F_HOST_PORT,
     0,
     "127.0.0.1",
     7},

    {"conformance bare", {"--conformance"}, {0}, F_BOOL, offsetof(ts_dmn_config_t, conformance),
     NULL, 1},
    {"conformance =true", {"--conformance=true"}, {0}, F_BOOL,
     offsetof(ts_dmn_config_t, conformance), NULL, 1},
    {"conformance env yes", {0}, {"TABSYNC_CONFORMANCE=yes"}, F_BOOL,
     offsetof(ts_dmn_config_t, conformance), NULL, 1},
    {"conformance env off by flag",
     {"--conformance=no"},
     {"TABSYNC_CONFORMANCE=1"},
     F_BOOL,
     offsetof(ts_dmn_config_t, conformance),
     NULL,
     0},
    {"test-app bare", {"--test-app"}, {0}, F_BOOL, offsetof(ts_dmn_config_t, test_app), NULL, 1},
    {"test-app env TRUE", {0}, {"TABSYNC_TEST_APP=TRUE"}, F_BOOL,
     offsetof(ts_dmn_config_t, test_app), NULL, 1},
    {"test-app env 0", {0}, {"TABSYNC_TEST_APP=0"}, F_BOOL, offsetof(ts_dmn_config_t, test_app),
     NULL, 0},
    {"cors-credentials bare", {"--cors-credentials"}, {0}, F_BOOL,
     offsetof(ts_dmn_config_t, cors_credentials), NULL, 1},
    {"cors-credentials env false", {0}, {"TABSYNC_CORS_CREDENTIALS=false"}, F_BOOL,
     offsetof(ts_dmn_config_t, cors_credentials), NULL, 0},
    {"cors-credentials flag =0 over env",
     {"--cors-credentials=0"},
     {"TABSYNC_CORS_CREDENTIALS=1"},
     F_BOOL,
     offsetof(ts_dmn_config_t, cors_credentials),
     NULL,
     0},

    {"cors one", {"--cors-origin", "https://a.example"}, {0}, F_ORIGINS, 0, "https://a.example",
     0},
    {"cors star", {"--cors-origin=*"}, {0}, F_ORIGINS, 0, "*", 0},
    {"cors repeated",
     {"--cors-origin", "https://a.example", "--cors-origin=http://localhost:5173"},
     {0},
     F_ORIGINS,
     0,
     "https://a.example http://localhost:5173",
     0},
    {"cors env list",
     {0},
     {"TABSYNC_CORS_ORIGINS=https://a.example, https://b.example:8443,"},
     F_ORIGINS,
     0,
     "https://a.example https://b.example:8443",
     0},
    {"cors flag replaces env",
     {"--cors-origin", "https://c.example"},
     {"TABSYNC_CORS_ORIGINS=https://a.example,https://b.example"},
     F_ORIGINS,
     0,
     "https://c.example",
     0},
    {"cors env later wins", {0}, {"TABSYNC_CORS_ORIGINS=*", "TABSYNC_CORS_ORIGINS=https://x.y"},
     F_ORIGINS, 0, "https://x.y", 0},

    {"durability default", {0}, {0}, F_DURABILITY, 0, NULL, TS_DMN_DUR_GROUP * 10000 + 2},
    {"durability sync", {"--durability", "sync"}, {0}, F_DURABILITY, 0, NULL,
     TS_DMN_DUR_SYNC * 10000 + 2},
    {"durability none env", {0}, {"TABSYNC_DURABILITY=none"}, F_DURABILITY, 0, NULL,
     TS_DMN_DUR_NONE * 10000 + 2},
    {"durability group:0", {"--durability=group:0"}, {0}, F_DURABILITY, 0, NULL, 0},
    {"durability group:1000", {"--durability=group:1000"}, {0}, F_DURABILITY, 0, NULL, 1000},
    {"durability group", {"--durability", "group"}, {"TABSYNC_DURABILITY=sync"}, F_DURABILITY, 0,
     NULL, 2},
    {"history off", {"--history", "off"}, {0}, F_BOOL, offsetof(ts_dmn_config_t, history), NULL,
     0},
    {"history default on", {0}, {0}, F_BOOL, offsetof(ts_dmn_config_t, history), NULL, 1},
    {"history env on", {"--history=off"}, {"TABSYNC_HISTORY=on"}, F_BOOL,
     offsetof(ts_dmn_config_t, history), NULL, 0},
    {"state-rules", {"--state-rules", "/"}, {0}, F_STR, offsetof(ts_dmn_config_t, state_rules),
     "/", 0},
    {"parser msgpack", {"--parser", "msgpack"}, {0}, F_PARSER, 0, NULL, 1},
    {"parser json", {"--parser=json"}, {"TABSYNC_PARSER=msgpack"}, F_PARSER, 0, NULL, 0},
    {"parser env", {0}, {"TABSYNC_PARSER=msgpack"}, F_PARSER, 0, NULL, 1},
    {"log-level debug", {"--log-level", "debug"}, {0}, F_LOG, 0, NULL, TS_LOG_DEBUG},
    {"log-level env off", {0}, {"TABSYNC_LOG_LEVEL=off"}, F_LOG, 0, NULL, TS_LOG_OFF},
    {"log-level flag over env", {"--log-level=error"}, {"TABSYNC_LOG_LEVEL=warn"}, F_LOG, 0, NULL,
     TS_LOG_ERROR},

    {"web + node-modules", {"--web", ".", "--node-modules=/"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, node_modules), "/", 0},
    {"web env", {0}, {"TABSYNC_WEB=/"}, F_STR, offsetof(ts_dmn_config_t, web_root), "/", 0},
    {"node-modules default from web", {"--web=."}, {0}, F_STR,
     offsetof(ts_dmn_config_t, node_modules), "./../node_modules", 0},
    {"node-modules env", {"--web=."}, {"TABSYNC_NODE_MODULES=/tmp"}, F_STR,
     offsetof(ts_dmn_config_t, node_modules), "/tmp", 0},
    {"empty env is unset", {0}, {"TABSYNC_WEB=", "TABSYNC_PING_INTERVAL="}, F_STR,
     offsetof(ts_dmn_config_t, web_root), "", 0},
    {"unknown TABSYNC_ variable ignored", {0}, {"TABSYNC_REDIS_URL=x", "TABSYNCX=1", "PATH=/bin"},
     F_NONE, 0, NULL, 0},

    {"dev bare", {"--dev"}, {0}, F_BOOL, offsetof(ts_dmn_config_t, dev), NULL, 1},
    {"dev env", {0}, {"TABSYNC_DEV=yes"}, F_BOOL, offsetof(ts_dmn_config_t, dev), NULL, 1},
    {"dev flag off over env", {"--dev=false"}, {"TABSYNC_DEV=1"}, F_BOOL,
     offsetof(ts_dmn_config_t, dev), NULL, 0},
    {"jwt-audience", {"--jwt-audience", "tabsync-api"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, jwt_audience), "tabsync-api", 0},
    {"jwt-audience env", {0}, {"TABSYNC_JWT_AUDIENCE=a"}, F_STR,
     offsetof(ts_dmn_config_t, jwt_audience), "a", 0},
    {"jwt-issuer", {"--jwt-issuer=https://idp.example"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, jwt_issuer), "https://idp.example", 0},
    {"jwt-issuer flag over env", {"--jwt-issuer=b"}, {"TABSYNC_JWT_ISSUER=a"}, F_STR,
     offsetof(ts_dmn_config_t, jwt_issuer), "b", 0},
    {"jwt-secret", {"--jwt-secret=0123456789abcdef0123456789abcdef"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, jwt_secrets), "0123456789abcdef0123456789abcdef", 0},
    {"jwt-secret env", {0}, {"TABSYNC_JWT_SECRET=0123456789abcdef0123456789abcdefXYZ"}, F_STR,
     offsetof(ts_dmn_config_t, jwt_secrets), "0123456789abcdef0123456789abcdefXYZ", 0},
    {"jwt-secret flag over a short env one",
     {"--jwt-secret", "0123456789abcdef0123456789abcdef"},
     {"TABSYNC_JWT_SECRET=short"},
     F_STR,
     offsetof(ts_dmn_config_t, jwt_secrets),
     "0123456789abcdef0123456789abcdef",
     0},
    {"admin-token", {"--admin-token=adm-0123456789abcdef0123456789abcdef"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, admin_token), "adm-0123456789abcdef0123456789abcdef", 0},
    {"admin-token env", {0}, {"TABSYNC_ADMIN_TOKEN=env-0123456789abcdef0123456789abcdef"}, F_STR,
     offsetof(ts_dmn_config_t, admin_token), "env-0123456789abcdef0123456789abcdef", 0},
    {"publisher-token", {"--publisher-token=pub-0123456789abcdef0123456789abcdef"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, publisher_token), "pub-0123456789abcdef0123456789abcdef", 0},
    {"publisher-token env", {0},
     {"TABSYNC_PUBLISHER_TOKEN=env-0123456789abcdef0123456789abcdef"}, F_STR,
     offsetof(ts_dmn_config_t, publisher_token), "env-0123456789abcdef0123456789abcdef", 0},
    {"store redis", {"--store", "redis://u:p@127.0.0.1:6380/2"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, store), "redis://u:p@127.0.0.1:6380/2", 0},
    {"store redis sentinel", {"--store", "redis+sentinel://s1,s2:26380/ts?replicas=1"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, store), "redis+sentinel://s1,s2:26380/ts?replicas=1", 0},
    {"store rediss sentinel", {"--store=rediss+sentinel://s1/ts", "--redis-prefix=a:"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, redis_prefix), "a:", 0},
    {"store memory", {0}, {"TABSYNC_STORE=memory"}, F_STR, offsetof(ts_dmn_config_t, store),
     "memory", 0},
    {"redis prefix", {"--store=rediss://h", "--redis-prefix=app1:"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, redis_prefix), "app1:", 0},
    {"redis adapter default", {0}, {0}, F_STR, offsetof(ts_dmn_config_t, redis_adapter),
     "classic", 0},
    {"redis adapter key default", {0}, {0}, F_STR, offsetof(ts_dmn_config_t, redis_adapter_key),
     "socket.io", 0},
    {"redis adapter sharded", {"--store=redis://h", "--redis-adapter=sharded"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, redis_adapter), "sharded", 0},
    {"redis adapter classic env", {0}, {"TABSYNC_STORE=redis://h", "TABSYNC_REDIS_ADAPTER=classic"},
     F_STR, offsetof(ts_dmn_config_t, redis_adapter), "classic", 0},
    {"redis adapter flag over env", {"--redis-adapter", "sharded"},
     {"TABSYNC_STORE=redis://h", "TABSYNC_REDIS_ADAPTER=classic"}, F_STR,
     offsetof(ts_dmn_config_t, redis_adapter), "sharded", 0},
    {"redis log layout default", {0}, {0}, F_U32, offsetof(ts_dmn_config_t, redis_log_layout),
     NULL, 2},
    {"redis log layout 1", {"--store=redis://h", "--redis-log-layout", "1"}, {0}, F_U32,
     offsetof(ts_dmn_config_t, redis_log_layout), NULL, 1},
    {"redis log layout env", {"--store=redis://h"}, {"TABSYNC_REDIS_LOG_LAYOUT=1"}, F_U32,
     offsetof(ts_dmn_config_t, redis_log_layout), NULL, 1},
    {"redis adapter key", {"--store=redis://h", "--redis-adapter-key", "myapp"}, {0}, F_STR,
     offsetof(ts_dmn_config_t, redis_adapter_key), "myapp", 0},
    {"redis adapter key env", {0}, {"TABSYNC_STORE=rediss://h", "TABSYNC_REDIS_ADAPTER_KEY=a#b"},
     F_STR, offsetof(ts_dmn_config_t, redis_adapter_key), "a#b", 0},
    {"publisher-token beside a different admin token",
     {"--publisher-token", "pub-0123456789abcdef0123456789abcdef"},
     {"TABSYNC_ADMIN_TOKEN=adm-0123456789abcdef0123456789abcdef"}, F_STR,
     offsetof(ts_dmn_config_t, publisher_token), "pub-0123456789abcdef0123456789abcdef", 0},
};

static void test_ok_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof oks / sizeof oks[0]; i++) {
        const struct ok_case *k = &oks[i];
        ts_dmn_config_t c;
        char err[256] = "";
        int rc = run(&c, k->args[0] ? k->args : NOARGS, k->env[0] ? k->env : NOARGS, err,
                     sizeof err);
        if (rc != 0) fail_msg("%s: rc %d, err %s", k->name, rc, err);
        const char *f = (const char *)&c + k->off;
        int b;
        char joined[1024] = "";
        switch (k->field) {
        case F_NONE:
            break;
        case F_HOST_PORT:
            assert_string_equal(c.listen_host, k->want_s);
            assert_int_equal(c.listen_port, k->want_n);
            break;
        case F_BOOL:
            memcpy(&b, f, sizeof b);
            if (b != k->want_n) fail_msg("%s: got %d", k->name, b);
            break;
        case F_STR:
            assert_string_equal(f, k->want_s);
            break;
        case F_ORIGINS:
            for (size_t j = 0; j < c.n_cors_origins; j++) {
                if (j) strcat(joined, " ");
                strcat(joined, c.cors_origins[j]);
            }
            assert_string_equal(joined, k->want_s);
            break;
        case F_PARSER:
            assert_int_equal(c.parser_msgpack, k->want_n);
            break;
        case F_LOG:
            assert_int_equal(c.log_level, k->want_n);
            break;
        case F_DURABILITY:
            assert_int_equal((long)c.durability * 10000 + c.group_commit_ms, k->want_n);
            break;
        case F_U32: {
            uint32_t u;
            memcpy(&u, f, sizeof u);
            assert_int_equal(u, k->want_n);
            break;
        }
        }
    }
}

static const struct err_case {
    const char *name;
    const char *args[MAXARGS];
    const char *env[4];
    const char *want; /* "config: ...)": the exact message; "config: ...": its
                         beginning; anything else: a fragment found in it */
} errs[] = {
    {"ping interval with unit", {0}, {"TABSYNC_PING_INTERVAL=25s"},
     "config: TABSYNC_PING_INTERVAL=\"25s\" is not a number of milliseconds (expected an integer "
     "1..3600000)"},
    {"camelCase flag", {"--pingInterval", "300"}, {0},
     "config: unknown flag --pingInterval (see tabsyncd --help)"},
    {"unknown flag with value", {"--nope=3"}, {0},
     "config: unknown flag --nope (see tabsyncd --help)"},
    {"single dash", {"-p"}, {0}, "config: unknown flag -p (see tabsyncd --help)"},
    {"positional", {"web"}, {0},
     "config: unexpected argument \"web\" (every setting is a --flag; see tabsyncd --help)"},
    {"bare --", {"--"}, {0}, "unexpected argument \"--\""},
    {"bool env", {0}, {"TABSYNC_CONFORMANCE=maybe"},
     "config: TABSYNC_CONFORMANCE=\"maybe\" is not a boolean (expected 1, 0, true, false, yes or "
     "no)"},
    {"bool flag value", {"--test-app=2"}, {0}, "config: --test-app=\"2\" is not a boolean"},
    {"parser", {"--parser", "xml"}, {0},
     "config: --parser=\"xml\" is not a parser (expected json or msgpack)"},
    {"parser env", {0}, {"TABSYNC_PARSER=JSON"}, "TABSYNC_PARSER=\"JSON\" is not a parser"},
    {"durability word", {"--durability", "fsync"}, {0},
     "config: --durability=\"fsync\" is not a durability (expected sync, group:MS with MS 0-1000, "
     "or none)"},
    {"durability group too long", {"--durability=group:1001"}, {0},
     "config: --durability=\"group:1001\" is not a durability"},
    {"durability group no number", {"--durability=group:"}, {0},
     "config: --durability=\"group:\" is not a durability"},
    {"durability group junk", {0}, {"TABSYNC_DURABILITY=group:5ms"},
     "config: TABSYNC_DURABILITY=\"group:5ms\" is not a durability"},
    {"history yes", {"--history=yes"}, {0}, "config: --history=\"yes\" is not on or off"},
    {"snapshot-every too small", {"--snapshot-every", "9"}, {0},
     "config: --snapshot-every=\"9\""},
    {"log level", {"--log-level=verbose"}, {0},
     "config: --log-level=\"verbose\" is not a log level (expected debug, info, warn, error or "
     "off)"},
    {"listen no port", {"--listen", "0.0.0.0"}, {0},
     "config: --listen=\"0.0.0.0\" is not HOST:PORT (expected e.g. 127.0.0.1:3000, [::1]:3000 or "
     ":3000)"},
    {"listen bad port", {"--listen", ":70000"}, {0},
     "config: --listen=\":70000\" has an invalid port (expected 0..65535; 0 picks a free port)"},
    {"listen empty port", {"--listen", "1.2.3.4:"}, {0}, "has an invalid port"},
    {"listen port sign", {"--listen", ":+80"}, {0}, "has an invalid port"},
    {"listen bad host", {"--listen=example.com:80"}, {0},
     "config: --listen=\"example.com:80\" has an invalid host (expected an IPv4 address, an IPv6 "
     "address in brackets, localhost, or nothing for 127.0.0.1)"},
    {"listen bad ipv4", {"--listen=1.2.3.256:80"}, {0}, "has an invalid host"},
    {"listen ipv6 unbracketed", {"--listen", "::1:3000"}, {0},
     "config: --listen=\"::1:3000\" has an IPv6 host without brackets (expected e.g. "
     "[::1]:3000)"},
    {"listen bracket not v6", {"--listen", "[1.2.3.4]:80"}, {0}, "has an invalid host"},
    {"listen empty brackets", {"--listen", "[]:80"}, {0}, "has an invalid host"},
    {"listen unclosed bracket", {"--listen", "[::1:80"}, {0}, "is not HOST:PORT"},
    {"listen env", {0}, {"TABSYNC_LISTEN=nope"}, "config: TABSYNC_LISTEN=\"nope\" is not HOST:PORT"},
    {"cors trailing slash", {"--cors-origin", "https://a.example/"}, {0},
     "config: --cors-origin: \"https://a.example/\" is not an origin (expected * or "
     "scheme://host[:port] without a path, e.g. https://app.example.com)"},
    {"cors no scheme", {0}, {"TABSYNC_CORS_ORIGINS=a.example"},
     "config: TABSYNC_CORS_ORIGINS: \"a.example\" is not an origin"},
    {"cors too many (env)",
     {0},
     {"TABSYNC_CORS_ORIGINS=http://a1,http://a2,http://a3,http://a4,http://a5,http://a6,http://"
      "a7,http://a8,http://a9,http://a10,http://a11,http://a12,http://a13,http://a14,http://"
      "a15,http://a16,http://a17"},
     "config: TABSYNC_CORS_ORIGINS: too many CORS origins (expected at most 16)"},
    {"web missing", {"--web", "/nonexistent/tabsync-web"}, {0},
     "config: --web=\"/nonexistent/tabsync-web\" is not a directory (expected the folder of the "
     "web pages)"},
    {"web env missing", {0}, {"TABSYNC_WEB=/nonexistent/w"},
     "config: TABSYNC_WEB=\"/nonexistent/w\" is not a directory"},
    {"web is a file", {"--web=/dev/null"}, {0}, "is not a directory"},
    {"node-modules missing", {"--node-modules", "/nonexistent/nm"}, {0},
     "config: --node-modules=\"/nonexistent/nm\" is not a directory"},
    {"tls cert without key", {"--tls-cert", "/dev/null"}, {0},
     "config: --tls-cert is set but --tls-key is not (TLS needs both a certificate and a key)"},
    {"tls key env without cert", {0}, {"TABSYNC_TLS_KEY=/dev/null"},
     "config: TABSYNC_TLS_KEY is set but --tls-cert is not"},
    {"tls unreadable", {"--tls-cert=/nonexistent/c.pem", "--tls-key=/dev/null"}, {0},
     "config: --tls-cert=\"/nonexistent/c.pem\" cannot be read (expected a readable PEM file)"},
    {"value needed", {"--web"}, {0}, "config: --web needs a value (expected --web DIR)"},
    {"control bytes escaped", {"--parser=a\x01\"b"}, {0},
     "config: --parser=\"a\\x01\\\"b\" is not a parser"},
    {"env error before flags", {"--parser=bad"}, {"TABSYNC_PING_TIMEOUT=x"},
     "config: TABSYNC_PING_TIMEOUT=\"x\""},

    {"jwt secret too short", {"--jwt-secret=tooshort-secret"}, {0},
     "config: --jwt-secret is 15 bytes; a secret needs at least 32 (generate one with: openssl "
     "rand -base64 48)"},
    {"jwt secret env too short", {0}, {"TABSYNC_JWT_SECRET=0123456789012345678901234567890"},
     "config: TABSYNC_JWT_SECRET is 31 bytes; a secret needs at least 32"},
    {"jwt secret and file", {"--jwt-secret-file=/dev/null"},
     {"TABSYNC_JWT_SECRET=0123456789abcdef0123456789abcdef"},
     "config: TABSYNC_JWT_SECRET and --jwt-secret-file are both set (use one; the file can hold "
     "several secrets)"},
    {"jwt secret file missing", {"--jwt-secret-file", "/nonexistent/secret"}, {0},
     "config: --jwt-secret-file=\"/nonexistent/secret\" cannot be read (No such file or "
     "directory)"},
    {"jwt secret file empty", {0}, {"TABSYNC_JWT_SECRET_FILE=/dev/null"},
     "config: TABSYNC_JWT_SECRET_FILE=\"/dev/null\" holds no secret (expected one per line) "
     "(generate one with: openssl rand -base64 48)"},
    {"jwt public key missing", {"--jwt-public-key=/nonexistent/k.pem"}, {0},
     "config: --jwt-public-key=\"/nonexistent/k.pem\" cannot be read"},
    {"jwt public key not a key", {0}, {"TABSYNC_JWT_PUBLIC_KEY=/dev/null"},
     "config: TABSYNC_JWT_PUBLIC_KEY=\"/dev/null\" is not usable: the public key is empty"},
    {"jwt leeway too large", {"--jwt-leeway=301"}, {0},
     "config: --jwt-leeway=\"301\" is too large (expected an integer 0..300 seconds)"},
    {"admin token too short", {"--admin-token", "short-admin"}, {0},
     "config: --admin-token is 11 bytes; a token needs at least 32"},
    {"admin token with a space", {0},
     {"TABSYNC_ADMIN_TOKEN=0123456789abcdef 0123456789abcdef"},
     "config: TABSYNC_ADMIN_TOKEN contains spaces or non-printable bytes (expected printable "
     "ASCII)"},
    {"admin token and file", {"--admin-token-file=/dev/null"},
     {"TABSYNC_ADMIN_TOKEN=0123456789abcdef0123456789abcdef"},
     "config: TABSYNC_ADMIN_TOKEN and --admin-token-file are both set (use one)"},
    {"admin token file empty", {"--admin-token-file=/dev/null"}, {0},
     "config: --admin-token-file=\"/dev/null\" is 0 bytes; a token needs at least 32"},
    {"publisher token too short", {"--publisher-token", "short-pub"}, {0},
     "config: --publisher-token is 9 bytes; a token needs at least 32"},
    {"publisher token with a control byte", {0},
     {"TABSYNC_PUBLISHER_TOKEN=0123456789abcdef\t0123456789abcdef"},
     "config: TABSYNC_PUBLISHER_TOKEN contains spaces or non-printable bytes (expected "
     "printable ASCII)"},
    {"publisher token and file", {"--publisher-token-file=/dev/null"},
     {"TABSYNC_PUBLISHER_TOKEN=0123456789abcdef0123456789abcdef"},
     "config: TABSYNC_PUBLISHER_TOKEN and --publisher-token-file are both set (use one)"},
    {"publisher token file empty", {"--publisher-token-file=/dev/null"}, {0},
     "config: --publisher-token-file=\"/dev/null\" is 0 bytes; a token needs at least 32"},
    {"publisher token = admin token",
     {"--publisher-token", "same-0123456789abcdef0123456789abcdef"},
     {"TABSYNC_ADMIN_TOKEN=same-0123456789abcdef0123456789abcdef"},
     "config: --publisher-token is the same as TABSYNC_ADMIN_TOKEN (a publisher must not get "
     "the admin API: use two tokens)"},
    {"secret needs a value", {"--jwt-secret"}, {0},
     "config: --jwt-secret needs a value (expected --jwt-secret SECRET)"},
    {"store not a store", {"--store=postgres://x"}, {0},
     "config: --store=\"postgres://x\" is not a store (expected memory or redis://HOST:PORT)"},
    {"store redis and sqlite", {"--store-sqlite=/tmp/x.db"}, {"TABSYNC_STORE=redis://127.0.0.1"},
     "config: --store-sqlite is the embedded store's file; with TABSYNC_STORE the history "
     "lives in Redis (set one of them)"},
    {"redis prefix without redis", {"--redis-prefix=a:"}, {0},
     "config: --redis-prefix is set but --store is not a redis:// URL"},
    {"redis adapter not a format", {"--store=redis://h", "--redis-adapter=cluster"}, {0},
     "config: --redis-adapter=\"cluster\" is not an adapter format (expected classic or "
     "sharded)"},
    {"redis adapter format case", {0}, {"TABSYNC_STORE=redis://h", "TABSYNC_REDIS_ADAPTER=Sharded"},
     "config: TABSYNC_REDIS_ADAPTER=\"Sharded\" is not an adapter format"},
    {"redis adapter without redis", {"--redis-adapter", "classic"}, {0},
     "config: --redis-adapter is set but --store is not a redis:// URL"},
    {"redis log layout without redis", {"--redis-log-layout", "2"}, {0},
     "config: --redis-log-layout is set but --store is not a redis:// URL"},
    {"redis log layout 3", {"--store=redis://h", "--redis-log-layout=3"}, {0},
     "config: --redis-log-layout=\"3\" is too large (expected an integer 1..2 )"},
    {"redis log layout 0", {0}, {"TABSYNC_STORE=redis://h", "TABSYNC_REDIS_LOG_LAYOUT=0"},
     "config: TABSYNC_REDIS_LOG_LAYOUT=\"0\" is too small (expected an integer 1..2 )"},
    {"redis adapter key without redis", {0}, {"TABSYNC_REDIS_ADAPTER_KEY=x", "TABSYNC_STORE=memory"},
     "config: TABSYNC_REDIS_ADAPTER_KEY is set but TABSYNC_STORE is not a redis:// URL"},
    {"redis adapter key empty", {"--store=redis://h", "--redis-adapter-key="}, {0},
     "config: --redis-adapter-key is empty (expected a channel prefix such as socket.io)"},
    {"redis adapter key control", {"--store=redis://h", "--redis-adapter-key=a\tb"}, {0},
     "config: --redis-adapter-key=\"a\\x09b\" has a control character"},
    {"redis adapter key too long",
     {"--store=redis://h",
      "--redis-adapter-key=0123456789012345678901234567890123456789012345678901234567890123"},
     {0}, "is too long (expected at most 63 bytes)"},
};

static void test_err_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const struct err_case *k = &errs[i];
        ts_dmn_config_t c;
        char err[512] = "";
        int rc = run(&c, k->args[0] ? k->args : NOARGS, k->env[0] ? k->env : NOARGS, err,
                     sizeof err);
        if (rc != 2) fail_msg("%s: rc %d (want 2)", k->name, rc);
        assert_null(strchr(err, '\n'));
        size_t wl = strlen(k->want);
        if (strncmp(k->want, "config: ", 8) == 0 && k->want[wl - 1] == ')') {
            if (strcmp(err, k->want) != 0) fail_msg("%s:\n got %s\nwant %s", k->name, err, k->want);
        } else if (strncmp(k->want, "config: ", 8) == 0) {
            if (strncmp(err, k->want, wl) != 0)
                fail_msg("%s:\n got %s\nwant prefix %s", k->name, err, k->want);
        } else if (!strstr(err, k->want)) {
            fail_msg("%s:\n got %s\nwant fragment %s", k->name, err, k->want);
        }
        assert_int_equal(strncmp(err, "config: ", 8), 0);
        /* A secret given to a row never shows up in its message. */
        for (size_t a = 0; a < MAXARGS && k->args[a]; a++) {
            const char *v = strchr(k->args[a], '=');
            if (strstr(k->args[a], "secret=") || strstr(k->args[a], "token="))
                if (strstr(err, v + 1)) fail_msg("%s: the secret is echoed: %s", k->name, err);
        }
        for (size_t e = 0; e < 4 && k->env[e]; e++)
            if (strstr(k->env[e], "_SECRET=") || strstr(k->env[e], "_TOKEN="))
                if (strstr(err, strchr(k->env[e], '=') + 1))
                    fail_msg("%s: the secret is echoed: %s", k->name, err);
    }
}

static void test_cors_flag_limit(void **state) {
    (void)state;
    const char *args[MAXARGS * 3] = {0};
    char vals[17][32];
    int n = 0;
    for (int i = 0; i < 16; i++) {
        snprintf(vals[i], sizeof vals[i], "--cors-origin=http://h%d", i);
        args[n++] = vals[i];
    }
    char *argv[40] = {"tabsyncd"};
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    ts_dmn_config_t c;
    char err[256];
    ts_dmn_config_defaults(&c);
    assert_int_equal(ts_dmn_config_parse(&c, n + 1, argv, NULL, err, sizeof err), 0);
    assert_int_equal(c.n_cors_origins, 16);
    assert_string_equal(c.cors_origins[15], "http://h15");
    snprintf(vals[16], sizeof vals[16], "--cors-origin=http://h16");
    argv[n + 1] = vals[16];
    ts_dmn_config_defaults(&c);
    assert_int_equal(ts_dmn_config_parse(&c, n + 2, argv, NULL, err, sizeof err), 2);
    assert_string_equal(err, "config: --cors-origin: too many CORS origins (expected at most 16)");

    /* Too long for the 256-byte slot. */
    char longv[400] = "--cors-origin=https://";
    memset(longv + strlen(longv), 'a', 300);
    longv[sizeof longv - 1] = '\0';
    char *argv2[] = {"tabsyncd", longv};
    ts_dmn_config_defaults(&c);
    assert_int_equal(ts_dmn_config_parse(&c, 2, argv2, NULL, err, sizeof err), 2);
    assert_non_null(strstr(err, "is too long (expected at most 255 bytes)"));
    assert_non_null(strstr(err, "...")); /* the value is shortened in the message */
}

static void test_path_too_long(void **state) {
    (void)state;
    char longv[700] = "--web=/";
    memset(longv + 7, 'd', 600);
    longv[607] = '\0';
    char *argv[] = {"tabsyncd", longv};
    ts_dmn_config_t c;
    char err[256];
    ts_dmn_config_defaults(&c);
    assert_int_equal(ts_dmn_config_parse(&c, 2, argv, NULL, err, sizeof err), 2);
    assert_non_null(strstr(err, "config: --web=\"/ddd"));
    assert_non_null(strstr(err, "is too long (expected at most 511 bytes)"));
}

static void test_conformance_overrides(void **state) {
    (void)state;
    ts_dmn_config_t c;
    char err[256];
    /* Whatever was asked elsewhere, the suites' values win. */
    assert_int_equal(run(&c, ARGS("--ping-interval", "1000", "--conformance", "--max-payload=2048",
                                  "--recovery-window=5000"),
                         ARGS("TABSYNC_PING_TIMEOUT=9"), err, sizeof err),
                     0);
    assert_int_equal(c.conformance, 1);
    assert_int_equal(c.ping_interval_ms, 300);
    assert_int_equal(c.ping_timeout_ms, 200);
    assert_int_equal(c.max_payload, 1000000);
    assert_int_equal(c.recovery_ms, 0);
    /* Unrelated settings are kept. */
    assert_int_equal(run(&c, ARGS("--conformance", "--listen", ":0", "--parser", "msgpack"),
                         NOARGS, err, sizeof err),
                     0);
    assert_int_equal(c.listen_port, 0);
    assert_int_equal(c.parser_msgpack, 1);
    assert_int_equal(c.connect_timeout_ms, 45000);
}

static void test_files(void **state) {
    (void)state;
    char dir[] = "/tmp/ts_cfg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char web[128], cert[128], key[128];
    snprintf(web, sizeof web, "%s/web", dir);
    snprintf(cert, sizeof cert, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    assert_int_equal(mkdir(web, 0755), 0);
    FILE *f = fopen(cert, "w");
    assert_non_null(f);
    fclose(f);
    f = fopen(key, "w");
    assert_non_null(f);
    fclose(f);

    ts_dmn_config_t c;
    char err[512], wantnm[160], certenv[160];
    assert_int_equal(run(&c, ARGS("--web", web, "--tls-cert", cert, "--tls-key", key), NOARGS,
                         err, sizeof err),
                     0);
    snprintf(wantnm, sizeof wantnm, "%s/../node_modules", web);
    assert_string_equal(c.web_root, web);
    assert_string_equal(c.node_modules, wantnm);
    assert_string_equal(c.tls_cert, cert);
    assert_string_equal(c.tls_key, key);

    snprintf(certenv, sizeof certenv, "TABSYNC_TLS_CERT=%s", cert);
    char keyenv[160];
    snprintf(keyenv, sizeof keyenv, "TABSYNC_TLS_KEY=%s", key);
    assert_int_equal(run(&c, NOARGS, ARGS(certenv, keyenv), err, sizeof err), 0);
    assert_string_equal(c.tls_key, key);

    /* An unreadable key (not when running as root: root reads anything). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(key, 0), 0);
        assert_int_equal(run(&c, NOARGS, ARGS(certenv, keyenv), err, sizeof err), 2);
        assert_non_null(strstr(err, "TABSYNC_TLS_KEY=\""));
        assert_non_null(strstr(err, "cannot be read"));
    }
    unlink(cert);
    unlink(key);
    rmdir(web);
    rmdir(dir);
}

/* Runs the parser with stdout redirected to a file; returns what it printed. */
static int capture(const char *const *args, char *out, size_t cap) {
    char path[] = "/tmp/ts_cfg_out_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    ts_dmn_config_t c;
    char err[256] = "";
    int rc = run(&c, args, ARGS("TABSYNC_PING_INTERVAL=broken"), err, sizeof err);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, out, cap - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    assert_string_equal(err, "");
    return rc;
}

static void test_help_and_version(void **state) {
    (void)state;
    static char out[32768]; /* the usage text is over 16 KiB */
    /* --help wins even over a broken environment and other bad flags. */
    assert_int_equal(capture(ARGS("--bogus", "--help"), out, sizeof out), 1);
    assert_string_equal(out, ts_dmn_config_usage());
    assert_int_equal(capture(ARGS("-h"), out, sizeof out), 1);
    assert_string_equal(out, ts_dmn_config_usage());
    assert_int_equal(capture(ARGS("--version"), out, sizeof out), 1);
    assert_string_equal(out, "tabsyncd 0.1.0\n");
}

static void test_usage_lists_everything(void **state) {
    (void)state;
    const char *u = ts_dmn_config_usage();
    assert_ptr_equal(u, ts_dmn_config_usage()); /* built once */
    assert_int_equal(strncmp(u, "Usage: tabsyncd", 15), 0);
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char flag[64], range[64];
        snprintf(flag, sizeof flag, "--%s ", nums[i].flag);
        if (!strstr(u, flag)) fail_msg("usage lacks %s", flag);
        if (!strstr(u, nums[i].env)) fail_msg("usage lacks %s", nums[i].env);
        snprintf(range, sizeof range, "range %llu", nums[i].lo);
        if (!strstr(u, range)) fail_msg("usage lacks %s", range);
    }
    static const char *const other[] = {
        "--listen HOST:PORT", "TABSYNC_LISTEN",   "--cors-origin ORIGIN", "TABSYNC_CORS_ORIGINS",
        "--cors-credentials", "TABSYNC_CORS_CREDENTIALS", "--parser json|msgpack", "TABSYNC_PARSER",
        "--log-level",        "TABSYNC_LOG_LEVEL", "--web DIR",           "TABSYNC_WEB",
        "--node-modules DIR", "TABSYNC_NODE_MODULES", "--conformance",    "TABSYNC_CONFORMANCE",
        "--test-app",         "TABSYNC_TEST_APP",  "--tls-cert FILE",     "TABSYNC_TLS_CERT",
        "--tls-key FILE",     "TABSYNC_TLS_KEY",   "--help",              "--version",
        "--jwt-secret SECRET", "TABSYNC_JWT_SECRET", "--jwt-secret-file FILE",
        "TABSYNC_JWT_SECRET_FILE", "--jwt-public-key FILE", "TABSYNC_JWT_PUBLIC_KEY",
        "--jwt-audience AUD", "TABSYNC_JWT_AUDIENCE", "--jwt-issuer ISS", "TABSYNC_JWT_ISSUER",
        "--admin-token TOKEN", "TABSYNC_ADMIN_TOKEN", "--admin-token-file FILE",
        "TABSYNC_ADMIN_TOKEN_FILE", "--publisher-token TOKEN", "TABSYNC_PUBLISHER_TOKEN",
        "--publisher-token-file FILE", "TABSYNC_PUBLISHER_TOKEN_FILE", "--dev ", "TABSYNC_DEV", "default 30, range 0..300",
        "--redis-adapter classic|sharded", "TABSYNC_REDIS_ADAPTER", "--redis-adapter-key KEY",
        "TABSYNC_REDIS_ADAPTER_KEY", "default classic", "default socket.io",
        "default 127.0.0.1:3000", "default 25000, range 1..3600000",
        "default 1000000, range 1024..1073741824 (1 KiB..1 GiB)",
        "default 16777216 (16 MiB)", "ping-interval 300, ping-timeout 200, max-payload 1000000",
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (!strstr(u, other[i])) fail_msg("usage lacks \"%s\"", other[i]);
    /* --cors-origin promises no origin check it does not make (issue #14):
     * it governs polling's CORS headers, WebSocket origins are not checked. */
    const char *cors = strstr(u, "--cors-origin ORIGIN");
    const char *cors_end = cors ? strstr(cors, "--cors-credentials") : NULL;
    if (!cors || !cors_end) fail_msg("usage lacks the --cors-origin row");
    static const char *const cors_says[] = {"polling", "CORS headers",
                                            "WebSocket origins are not checked",
                                            "token in the auth payload", "docs/SECURITY.md"};
    for (size_t i = 0; i < sizeof cors_says / sizeof cors_says[0]; i++) {
        const char *at = strstr(cors, cors_says[i]);
        if (!at || at > cors_end) fail_msg("--cors-origin's help lacks \"%s\"", cors_says[i]);
    }
    if (strstr(u, "only pages served by tabsyncd can connect"))
        fail_msg("usage still promises that only pages served by tabsyncd can connect");
    /* Readable on an 80-column terminal. */
    for (const char *l = u; *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (len > 80) fail_msg("usage line too long (%zu): %.*s", len, (int)len, l);
        l += len + (nl ? 1 : 0);
    }
}

/* ---- authentication files ---- */

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

#define SEC_A "secret-A-0123456789abcdef0123456789abcdef"
#define SEC_B "secret-B-0123456789abcdef0123456789abcdef"

static void test_auth_files(void **state) {
    (void)state;
    char dir[] = "/tmp/ts_cfg_auth_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], arg[1300], envv[200], err[512];
    ts_dmn_config_t c;
    snprintf(path, sizeof path, "%s/secrets", dir);
    snprintf(arg, sizeof arg, "--jwt-secret-file=%s", path);
    snprintf(envv, sizeof envv, "TABSYNC_JWT_SECRET_FILE=%s", path);

    /* Several secrets, blank lines, CRLF and surrounding blanks. */
    const char two[] = "\n  " SEC_A "\r\n\n\t" SEC_B "  \n\n";
    write_file(path, two, sizeof two - 1);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 0);
    assert_int_equal(c.n_jwt_secrets, 2);
    assert_string_equal(c.jwt_secrets[0], SEC_A);
    assert_string_equal(c.jwt_secrets[1], SEC_B);
    assert_int_equal(run(&c, NOARGS, ARGS(envv), err, sizeof err), 0);
    assert_int_equal(c.n_jwt_secrets, 2);

    /* One secret without a final newline. */
    write_file(path, SEC_A, strlen(SEC_A));
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 0);
    assert_int_equal(c.n_jwt_secrets, 1);
    assert_string_equal(c.jwt_secrets[0], SEC_A);

    /* A short line: named by its number, its value not shown. */
    const char short_line[] = SEC_A "\nshort-one\n";
    write_file(path, short_line, sizeof short_line - 1);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
    assert_non_null(strstr(err, "\": line 2 is 9 bytes; a secret needs at least 32"));
    assert_null(strstr(err, "short-one"));
    assert_int_equal(c.n_jwt_secrets, 0); /* nothing half-loaded */
    assert_string_equal(c.jwt_secrets[0], "");

    /* Five secrets: too many. */
    const char five[] = SEC_A "\n" SEC_B "\n" SEC_A "\n" SEC_B "\n" SEC_A "\n";
    write_file(path, five, sizeof five - 1);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
    assert_non_null(strstr(err, "holds more than 4 secrets"));
    assert_null(strstr(err, "secret-A"));

    /* A NUL byte. */
    write_file(path, SEC_A "\0x", strlen(SEC_A) + 2);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
    assert_non_null(strstr(err, "contains a NUL byte"));

    /* A secret line of 513 bytes; a 512-byte one is fine. */
    char big[600];
    memset(big, 'z', 513);
    write_file(path, big, 513);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
    assert_non_null(strstr(err, "line 1 is 513 bytes; a secret may have at most 512"));
    write_file(path, big, 512);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 0);
    assert_int_equal(strlen(c.jwt_secrets[0]), 512);

    /* --jwt-secret of 513 bytes is refused when applied, without its value. */
    char flag[600] = "--jwt-secret=";
    memset(flag + strlen(flag), 'q', 513);
    flag[13 + 513] = '\0';
    assert_int_equal(run(&c, ARGS(flag), NOARGS, err, sizeof err), 2);
    assert_string_equal(err, "config: --jwt-secret is 513 bytes; at most 512 are accepted");

    /* Admin token file: whitespace around it is ignored. */
    snprintf(path, sizeof path, "%s/admin", dir);
    snprintf(arg, sizeof arg, "--admin-token-file=%s", path);
    const char adm[] = "  adm-0123456789abcdef0123456789abcdef\n";
    write_file(path, adm, sizeof adm - 1);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 0);
    assert_string_equal(c.admin_token, "adm-0123456789abcdef0123456789abcdef");
    const char adm_space[] = "adm-0123456789abcdef 0123456789abcdef\n";
    write_file(path, adm_space, sizeof adm_space - 1);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 2);
    assert_non_null(strstr(err, "contains spaces or non-printable bytes"));
    assert_null(strstr(err, "adm-0123"));
    assert_string_equal(c.admin_token, "");
    /* The publisher token file: the same rules; its value is never shown,
     * and it may not be the admin token. */
    snprintf(arg, sizeof arg, "--publisher-token-file=%s", path);
    const char pub[] = "\tpub-0123456789abcdef0123456789abcdef\r\n";
    write_file(path, pub, sizeof pub - 1);
    assert_int_equal(run(&c, ARGS(arg), NOARGS, err, sizeof err), 0);
    assert_string_equal(c.publisher_token, "pub-0123456789abcdef0123456789abcdef");
    assert_int_equal(run(&c, ARGS(arg, "--admin-token=pub-0123456789abcdef0123456789abcdef"),
                         NOARGS, err, sizeof err),
                     2);
    assert_non_null(strstr(err, "--publisher-token-file is the same as --admin-token"));
    assert_null(strstr(err, "pub-0123"));
    assert_string_equal(c.publisher_token, "");
    unlink(path);

    /* Public keys: the test keys of tests/session/keys. */
    char here[1024], keys[1100];
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(keys, sizeof keys, "%s/../session/keys", dirname(here));
    static const struct {
        const char *file;
        int rc;
        const char *fragment;
    } pk[] = {
        {"rsa_public.pem", 0, NULL},
        {"ec_public.pem", 0, NULL},
        {"rsa_private.pem", 2, "is not usable: this is a private key"},
        {"ec384_public.pem", 2, "is not usable: the EC key is on curve secp384r1"},
        {"rsa1024_public.pem", 2, "is not usable: the RSA key has 1024 bits"},
        {"README.md", 2, "is not usable: not a PEM public key"},
    };
    for (size_t i = 0; i < sizeof pk / sizeof pk[0]; i++) {
        snprintf(arg, sizeof arg, "--jwt-public-key=%s/%s", keys, pk[i].file);
        int rc = run(&c, ARGS(arg), NOARGS, err, sizeof err);
        if (rc != pk[i].rc) fail_msg("%s: rc %d: %s", pk[i].file, rc, err);
        if (pk[i].fragment && !strstr(err, pk[i].fragment))
            fail_msg("%s: \"%s\" lacks \"%s\"", pk[i].file, err, pk[i].fragment);
        if (!rc) assert_non_null(strstr(c.jwt_public_key, pk[i].file));
    }
    /* A secret and a public key together: both kept. */
    snprintf(arg, sizeof arg, "--jwt-public-key=%s/rsa_public.pem", keys);
    assert_int_equal(run(&c, ARGS(arg, "--jwt-secret=" SEC_A), NOARGS, err, sizeof err), 0);
    assert_int_equal(c.n_jwt_secrets, 1);

    snprintf(path, sizeof path, "%s/secrets", dir);
    unlink(path);
    rmdir(dir);
}

static void test_small_err_buffer(void **state) {
    (void)state;
    ts_dmn_config_t c;
    char err[16];
    assert_int_equal(run(&c, ARGS("--nope"), NOARGS, err, sizeof err), 2);
    assert_string_equal(err, "config: unknown");
    assert_int_equal(run(&c, ARGS("--nope"), NOARGS, NULL, 0), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_numbers_accepted),
        cmocka_unit_test(test_numbers_rejected),
        cmocka_unit_test(test_ok_table),
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_cors_flag_limit),
        cmocka_unit_test(test_path_too_long),
        cmocka_unit_test(test_conformance_overrides),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_usage_lists_everything),
        cmocka_unit_test(test_auth_files),
        cmocka_unit_test(test_small_err_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
