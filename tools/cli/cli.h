/* cli.h - what the commands of the `tabsync` CLI share: exit codes, usage
 * errors, number arguments and JSON-line output (main.c), and the entry of
 * the `session` command (session.c). */
#ifndef TS_CLI_H
#define TS_CLI_H
#include <stdio.h>

#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* Prints "tabsync: <message>" and the --help hint to stderr.
 * Returns: EXIT_USAGE. */
int ts_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a decimal in lo..hi into *out. Returns 0, or -1 after a usage
 * error naming `what`. */
int ts_cli_parse_num(const char *s, const char *what, long lo, long hi, long *out);

/* Writes s as a JSON string (quoted, escaped). */
void ts_cli_put_json_string(FILE *f, const char *s);

/* Writes the current UTC time as a quoted ISO 8601 string with ms. */
void ts_cli_put_timestamp(FILE *f);

/* The `session` part of `tabsync --help`. */
extern const char ts_cli_session_help[];

/* `tabsync session ...` (argv[1] is "session"). Returns: the exit code. */
int ts_cli_session_main(int argc, char **argv);

#endif
