/* ts_dmn_token.h - `tabsyncd token`: mint a development session token with
 * the server's own HS256 secret, and build the server's token verifier from
 * its configuration. */
#ifndef TS_DMN_TOKEN_H
#define TS_DMN_TOKEN_H
#include <stddef.h>

#include "daemon/ts_dmn_config.h"

struct ts_sess_auth;

/* `tabsyncd token --user U --session S --device D [--fingerprint F]
 * [--ttl SECONDS] [--audience A] [--issuer I]`, with the secret taken from
 * the same settings as the server (--jwt-secret, --jwt-secret-file,
 * TABSYNC_JWT_SECRET, TABSYNC_JWT_SECRET_FILE; --audience/--issuer default
 * to --jwt-audience/--jwt-issuer, TABSYNC_JWT_AUDIENCE/_ISSUER). Without
 * --fingerprint the fp claim is the SHA-256 of the device id, so a client
 * that sends its device id as its fingerprint connects.
 * argv[0] is the subcommand ("token"); main calls it as
 * ts_dmn_token_main(argc - 1, argv + 1, envp). Prints the token and a
 * newline on stdout and returns 0; --help: the usage on stdout, 0; a usage
 * error: one line on stderr, 2; a failure to sign: one line, 1. */
int ts_dmn_token_main(int argc, char **argv, char **envp);
/* The --help text of `tabsyncd token`. */
const char *ts_dmn_token_usage(void);

/* Builds the /session token verifier from `cfg` (secrets, public key file,
 * audience, issuer, leeway). Returns 0 with *out (free with
 * ts_sess_auth_free), or TS_EINVAL with a one-line reason in `err`. */
int ts_dmn_auth_new(const ts_dmn_config_t *cfg, struct ts_sess_auth **out, char *err,
                    size_t errlen);

#endif
