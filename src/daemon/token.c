/* token.c - `tabsyncd token`: mints an HS256 session token for development
 * and tests, reading the secret exactly as the server does (the JWT flags
 * and TABSYNC_JWT_* variables go through the server's config parser), so a
 * token printed here is one the server with the same settings accepts. */
#include "daemon/ts_dmn_token.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "session/ts_sess_auth.h"

#define FINGERPRINT_MAX 512 /* = TS_SESS_FINGERPRINT_MAX (ts_sess_connect.h) */

const char *ts_dmn_token_usage(void) {
    return "Usage: tabsyncd token --user U --session S --device D [--fingerprint F]\n"
           "                      [--ttl SECONDS] [--audience A] [--issuer I]\n"
           "\n"
           "Prints a session token (an HS256 JWT) and a newline, for development and\n"
           "tests. It is signed with the server's first HS256 secret, taken from the\n"
           "same settings as the server: --jwt-secret-file FILE, --jwt-secret SECRET,\n"
           "TABSYNC_JWT_SECRET_FILE or TABSYNC_JWT_SECRET.\n"
           "\n"
           "  --user U          sub claim: the user\n"
           "  --session S       sid claim: the session\n"
           "  --device D        dev claim: the device\n"
           "                    (ids: 1-128 characters of A-Z a-z 0-9 . _ : @ -)\n"
           "  --fingerprint F   the device fingerprint the client will send;\n"
           "                    fp = lowercase hex SHA-256 of its bytes. Default: the\n"
           "                    device id (the client then sends D as fingerprint)\n"
           "  --ttl SECONDS     lifetime, 1..2592000 (30 days); default 3600\n"
           "  --audience A      aud claim; default --jwt-audience / TABSYNC_JWT_AUDIENCE\n"
           "  --issuer I        iss claim; default --jwt-issuer / TABSYNC_JWT_ISSUER\n"
           "  --help, -h        print this text\n"
           "\n"
           "Exit status: 0 with the token printed, 2 on a usage or configuration\n"
           "error, 1 if signing fails.\n"
           "Example: tabsyncd token --user alice --session s1 --device laptop-1\n";
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    fputs("tabsyncd token: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see tabsyncd token --help)\n", stderr);
    return 2;
}

/* The server settings this command reads: passed to the config parser. */
static const char *const pass_flags[] = {"jwt-secret", "jwt-secret-file", "jwt-audience",
                                         "jwt-issuer"};
static const char *const pass_env[] = {"TABSYNC_JWT_SECRET=", "TABSYNC_JWT_SECRET_FILE=",
                                       "TABSYNC_JWT_AUDIENCE=", "TABSYNC_JWT_ISSUER="};

typedef struct args {
    const char *user, *session, *device, *fingerprint, *ttl, *audience, *issuer;
} args_t;

/* A printable flag name for messages: at most 40 bytes, up to any '='. */
static const char *flag_name(const char *a, char *buf, size_t cap) {
    size_t n = strcspn(a, "=");
    if (n > 40) n = 40;
    snprintf(buf, cap, "%.*s", (int)n, a);
    for (char *p = buf; *p; p++)
        if (*p < 0x20 || *p >= 0x7f) *p = '?';
    return buf;
}

/* Splits argv into our own flags (into *a) and the server settings (into
 * cfg_argv, which starts with a program name). Returns 0, 1 for --help, or 2. */
static int split_args(int argc, char **argv, args_t *a, char **cfg_argv, int *cfg_argc) {
    static const char *const own[] = {"user", "session", "device", "fingerprint",
                                      "ttl",  "audience", "issuer"};
    const char **slots[] = {&a->user, &a->session, &a->device, &a->fingerprint,
                            &a->ttl,  &a->audience, &a->issuer};
    char fb[48];
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    *cfg_argc = 1;
    cfg_argv[0] = "tabsyncd";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || !arg[2])
            return usage_error("unexpected argument \"%s\"", flag_name(arg, fb, sizeof fb));
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        int found = 0;
        for (size_t k = 0; k < TS_ARRAY_LEN(own) && !found; k++) {
            if (strlen(own[k]) != nlen || strncmp(own[k], name, nlen) != 0) continue;
            found = 1;
            if (!value) {
                if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                    return usage_error("--%s needs a value", own[k]);
                value = argv[++i];
            }
            *slots[k] = value;
        }
        for (size_t k = 0; k < TS_ARRAY_LEN(pass_flags) && !found; k++) {
            if (strlen(pass_flags[k]) != nlen || strncmp(pass_flags[k], name, nlen) != 0)
                continue;
            found = 1;
            /* Checked here, not left to the config parser: the next argument
             * could be a secret starting with "--", which must not be taken
             * for a flag and echoed as unknown. */
            if (!value && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
                return usage_error("--%s needs a value (--%s=VALUE if it starts with --)",
                                   pass_flags[k], pass_flags[k]);
            cfg_argv[(*cfg_argc)++] = argv[i];
            if (!value) cfg_argv[(*cfg_argc)++] = argv[++i];
        }
        if (!found) return usage_error("unknown flag %s", flag_name(arg, fb, sizeof fb));
    }
    cfg_argv[*cfg_argc] = NULL;
    return 0;
}

static int check_id(const char *flag, const char *v) {
    if (!v) return usage_error("--%s is required", flag);
    if (!ts_sess_id_valid(v, strlen(v)))
        return usage_error("--%s must be 1-128 characters of A-Z a-z 0-9 . _ : @ -", flag);
    return 0;
}

int ts_dmn_token_main(int argc, char **argv, char **envp) {
    args_t a = {0};
    char **cfg_argv = ts_xcalloc((size_t)argc + 2, sizeof *cfg_argv);
    int cfg_argc = 0;
    int rc = split_args(argc, argv, &a, cfg_argv, &cfg_argc);
    if (rc == 1) {
        free(cfg_argv);
        fputs(ts_dmn_token_usage(), stdout);
        fflush(stdout);
        return 0;
    }
    if (rc) {
        free(cfg_argv);
        return rc;
    }

    /* Only the JWT settings of the environment: a broken unrelated variable
     * must not stop a developer from getting a token. */
    size_t n_env = 0;
    for (char **e = envp; e && *e; e++) n_env++;
    char **env = ts_xcalloc(n_env + 1, sizeof *env);
    size_t k = 0;
    for (char **e = envp; e && *e; e++)
        for (size_t j = 0; j < TS_ARRAY_LEN(pass_env); j++)
            if (strncmp(*e, pass_env[j], strlen(pass_env[j])) == 0) env[k++] = *e;

    ts_dmn_config_t *cfg = ts_xmalloc(sizeof *cfg);
    char err[512];
    ts_dmn_config_defaults(cfg);
    rc = ts_dmn_config_parse(cfg, cfg_argc, cfg_argv, env, err, sizeof err);
    free(cfg_argv);
    free(env);
    if (rc) {
        fprintf(stderr, "tabsyncd token: %s\n", err);
        goto out;
    }
    if ((rc = check_id("user", a.user)) || (rc = check_id("session", a.session)) ||
        (rc = check_id("device", a.device)))
        goto out;
    unsigned long long ttl = TS_SESS_MINT_TTL_DEFAULT;
    if (a.ttl) {
        char *end = NULL;
        ttl = strtoull(a.ttl, &end, 10);
        if (!*a.ttl || *end || a.ttl[0] == '-' || a.ttl[0] == '+' || ttl < 1 ||
            ttl > TS_SESS_MINT_TTL_MAX) {
            rc = usage_error("--ttl must be an integer 1..2592000 (seconds)");
            goto out;
        }
    }
    if (a.fingerprint) {
        size_t fl = strlen(a.fingerprint);
        int ok = fl > 0 && fl <= FINGERPRINT_MAX;
        for (size_t i = 0; ok && i < fl; i++)
            ok = (unsigned char)a.fingerprint[i] >= 0x20 && a.fingerprint[i] != 0x7f;
        if (!ok) {
            rc = usage_error("--fingerprint must be 1-512 bytes without control characters");
            goto out;
        }
    }
    if (cfg->n_jwt_secrets == 0) {
        fputs("tabsyncd token: no HS256 secret is configured (set TABSYNC_JWT_SECRET_FILE, "
              "--jwt-secret-file, TABSYNC_JWT_SECRET or --jwt-secret, as for the server)\n",
              stderr);
        rc = 2;
        goto out;
    }
    ts_sess_mint_t m = {
        .user = a.user,
        .session = a.session,
        .device = a.device,
        .fingerprint = a.fingerprint,
        .now = (int64_t)time(NULL),
        .ttl_s = (uint32_t)ttl,
        .audience = a.audience ? a.audience : cfg->jwt_audience,
        .issuer = a.issuer ? a.issuer : cfg->jwt_issuer,
    };
    char *tok = NULL;
    if (ts_sess_auth_mint_hs256(cfg->jwt_secrets[0], strlen(cfg->jwt_secrets[0]), &m, &tok, err,
                                sizeof err) != 0) {
        fprintf(stderr, "tabsyncd token: %s\n", err);
        rc = 1;
        goto out;
    }
    printf("%s\n", tok);
    fflush(stdout);
    free(tok);
    rc = 0;
out:
    explicit_bzero(cfg, sizeof *cfg); /* our copy of the secrets */
    free(cfg);
    return rc;
}

int ts_dmn_auth_new(const ts_dmn_config_t *cfg, struct ts_sess_auth **out, char *err,
                    size_t errlen) {
    ts_sess_auth_cfg_t ac;
    ts_sess_auth_cfg_init(&ac);
    for (size_t i = 0; i < cfg->n_jwt_secrets && i < TS_SESS_MAX_SECRETS; i++)
        ac.secrets[i] = ts_slice_str(cfg->jwt_secrets[i]);
    ac.n_secrets = cfg->n_jwt_secrets;
    char *pem = NULL;
    size_t pem_len = 0;
    if (cfg->jwt_public_key[0]) {
        char why[200];
        if (ts_sess_auth_read_file(cfg->jwt_public_key, TS_SESS_PEM_MAX, &pem, &pem_len, why,
                                   sizeof why) != 0) {
            if (err && errlen) snprintf(err, errlen, "auth: %s %s", cfg->jwt_public_key, why);
            return TS_EINVAL;
        }
        ac.public_key_pem = pem;
        ac.public_key_len = pem_len;
    }
    ac.audience = cfg->jwt_audience;
    ac.issuer = cfg->jwt_issuer;
    ac.leeway_s = cfg->jwt_leeway_s;
    int rc = ts_sess_auth_new(&ac, out, err, errlen);
    free(pem);
    return rc;
}
