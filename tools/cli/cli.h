/* cli.h - what the commands of the `tabsync` CLI share: exit codes, usage
 * errors, number arguments and JSON-line output (main.c), and the entry of
 * the `session` command (session.c). */
#ifndef TS_CLI_H
#define TS_CLI_H
#include <stdio.h>
#include <uv.h>

#include "tabsync.h"

#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* Prints "tabsync: <message>" and the --help hint to stderr.
 * Returns: EXIT_USAGE. */
int ts_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A usage error for ts_client_new's / ts_client_session_new's TS_EINVAL
 * sentence, with the library's option name turned into the flag that set
 * it ("tls_ca_file: ..." becomes "--cacert: ..."). Returns: EXIT_USAGE. */
int ts_cli_option_error(const char *err);

/* Parses a decimal in lo..hi into *out. Returns 0, or -1 after a usage
 * error naming `what`. */
int ts_cli_parse_num(const char *s, const char *what, long lo, long hi, long *out);

/* Writes s as a JSON string (quoted, escaped). */
void ts_cli_put_json_string(FILE *f, const char *s);

/* Writes the current UTC time as a quoted ISO 8601 string with ms. */
void ts_cli_put_timestamp(FILE *f);

/* What every command's run shares: each command's state struct starts with
 * it, so the client's `user` pointer serves the shared callbacks (run.c)
 * and the command's own. */
typedef struct ts_cli_run {
    uv_loop_t *loop;
    ts_client_t *c;
    uv_signal_t sigint, sigterm;
    uv_timer_t timer; /* the command's own use (wait timeout, ping pacing) */
    uv_timer_t guard; /* after ts_cli_finish: exits if the close does not complete */
    const char *url;
    int quiet, done, exit_code;
    int signal_ok;    /* SIGINT/SIGTERM ends the command with success (watch) */
} ts_cli_run_t;

/* "tabsync: <message>" on stderr unless --quiet. */
void ts_cli_status(ts_cli_run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the command with exit code `code` (the first call wins). */
void ts_cli_finish(ts_cli_run_t *r, int code);
/* Installs the callbacks every command handles the same way: disconnect,
 * connect error, error, reconnect attempt. */
void ts_cli_common_callbacks(ts_client_callbacks_t *cb);
/* Connects r->c (created by the caller with user = r), runs the loop until
 * the command finishes, and returns its exit code. */
int ts_cli_run(ts_cli_run_t *r);

/* The `session` part of `tabsync --help`. */
extern const char ts_cli_session_help[];

/* `tabsync session ...` (argv[1] is "session"). Returns: the exit code. */
int ts_cli_session_main(int argc, char **argv);

#endif
