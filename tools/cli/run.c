/* run.c - the part of running a `tabsync` command that every command
 * shares: status lines, ending, signals, and the client callbacks whose
 * handling does not depend on the command. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

void ts_cli_status(ts_cli_run_t *r, const char *fmt, ...) {
    if (r->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("tabsync: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void on_client_closed(ts_client_t *c, void *user) {
    ts_cli_run_t *r = user;
    (void)c;
    r->c = NULL;
    uv_close((uv_handle_t *)&r->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&r->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    /* Closing the handles gave the signals their default action back: one
     * that comes now, while the loop winds down, would kill the command
     * (status 130) instead of letting it exit with the code it already has
     * (cli/session saw that once under load). The command is ending anyway. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
}

void ts_cli_finish(ts_cli_run_t *r, int code) {
    if (r->done) return;
    r->done = 1;
    r->exit_code = code;
    uv_timer_stop(&r->timer);
    ts_client_close(r->c, on_client_closed);
}

static void on_disconnect(ts_client_t *c, const char *reason, int will_reconnect, void *user) {
    (void)c;
    if (will_reconnect) {
        ts_cli_status(user, "disconnected (%s)", reason);
        return;
    }
    fprintf(stderr, "tabsync: disconnected (%s)\n", reason);
    ts_cli_finish(user, EXIT_RUNTIME);
}

static void on_connect_error(ts_client_t *c, const char *message, const char *data_json,
                             void *user) {
    (void)c;
    fprintf(stderr, "tabsync: the server refused the connection: %s%s%s\n", message,
            data_json ? " " : "", data_json ? data_json : "");
    ts_cli_finish(user, EXIT_RUNTIME);
}

static void on_error(ts_client_t *c, int err, const char *msg, void *user) {
    (void)err;
    if (ts_client_state(c) == TS_CLIENT_DISCONNECTED) {
        fprintf(stderr, "tabsync: %s\n", msg);
        ts_cli_finish(user, EXIT_RUNTIME);
    } else {
        ts_cli_status(user, "%s", msg);
    }
}

static void on_reconnect_attempt(ts_client_t *c, unsigned attempt, unsigned delay_ms,
                                 void *user) {
    (void)c;
    ts_cli_status(user, "reconnecting in %u ms (attempt %u)", delay_ms, attempt);
}

void ts_cli_common_callbacks(ts_client_callbacks_t *cb) {
    cb->on_disconnect = on_disconnect;
    cb->on_connect_error = on_connect_error;
    cb->on_error = on_error;
    cb->on_reconnect_attempt = on_reconnect_attempt;
}

static void on_signal(uv_signal_t *h, int signum) {
    ts_cli_run_t *r = h->data;
    (void)signum;
    ts_cli_status(r, "interrupted");
    ts_cli_finish(r, r->signal_ok ? EXIT_OK : EXIT_RUNTIME);
}

int ts_cli_run(ts_cli_run_t *r) {
    uv_signal_init(r->loop, &r->sigint);
    uv_signal_init(r->loop, &r->sigterm);
    uv_timer_init(r->loop, &r->timer);
    r->sigint.data = r->sigterm.data = r->timer.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    int rc = ts_client_connect(r->c);
    if (rc < 0) {
        fprintf(stderr, "tabsync: cannot connect to %s: %s\n", r->url, ts_client_strerror(rc));
        ts_cli_finish(r, EXIT_RUNTIME);
    }
    uv_run(r->loop, UV_RUN_DEFAULT);
    uv_loop_close(r->loop);
    return r->exit_code;
}
