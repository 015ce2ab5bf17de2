/* run.c - the part of running a `tabsync` command that every command
 * shares: status lines, ending, signals, and the client callbacks whose
 * handling does not depend on the command. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

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
    uv_close((uv_handle_t *)&r->guard, on_handle_closed);
    /* Closing the handles gave the signals their default action back: one
     * that comes now, while the loop winds down, would kill the command
     * (status 130) instead of letting it exit with the code it already has
     * (cli/session saw that once under load). The command is ending anyway. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
}

#define CLOSE_GUARD_MS 5000 /* libtabsync's own close waits at most 1 s for the server */

/* The close did not complete: the command ends anyway, with its code. A
 * command that neither finishes nor answers SIGTERM (it is finishing
 * already) could only be killed (cli/session timed out once so under
 * AddressSanitizer on a loaded machine). */
static void on_guard(uv_timer_t *t) {
    ts_cli_run_t *r = t->data;
    fprintf(stderr, "tabsync: the connection did not close within %d ms; exiting\n", CLOSE_GUARD_MS);
    fflush(NULL);
    _exit(r->exit_code);
}

void ts_cli_finish(ts_cli_run_t *r, int code) {
    if (r->done) return;
    r->done = 1;
    r->exit_code = code;
    uv_timer_stop(&r->timer);
    uv_timer_start(&r->guard, on_guard, CLOSE_GUARD_MS, 0);
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
    if (r->done) { /* a second one while closing: now */
        fflush(NULL);
        _exit(r->exit_code);
    }
    ts_cli_status(r, "interrupted");
    ts_cli_finish(r, r->signal_ok ? EXIT_OK : EXIT_RUNTIME);
}

int ts_cli_run(ts_cli_run_t *r) {
    uv_signal_init(r->loop, &r->sigint);
    uv_signal_init(r->loop, &r->sigterm);
    uv_timer_init(r->loop, &r->timer);
    uv_timer_init(r->loop, &r->guard);
    r->sigint.data = r->sigterm.data = r->timer.data = r->guard.data = r;
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
