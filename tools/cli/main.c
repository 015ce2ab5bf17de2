/* main.c - `tabsync`, the command-line client on libtabsync: connect to a
 * tabsyncd (or any Socket.IO v5 server), watch its events as JSON lines,
 * emit events (and wait for acks or answers), measure round trips; the
 * `session` command (/session namespace) lives in session.c. Built only on
 * the public API in tabsync.h, like any other user of the library. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tabsync.h>

#include "cli.h"

static const char usage_text[] =
    "Usage: tabsync connect URL [OPTIONS] [COMMAND [ARGS]]\n"
    "       tabsync session URL --token T --device ID [OPTIONS] [COMMAND [ARGS]]\n"
    "       tabsync --help | --version\n"
    "\n"
    "URL is ws://HOST:PORT/PATH or http://HOST:PORT/PATH, and wss:// or https://\n"
    "for TLS (port 443 by default); PATH is the server's Socket.IO path\n"
    "(/socket.io/ when empty). Over TLS the server's certificate is checked\n"
    "against the system's trusted certificates (or --cacert) and must be for HOST.\n"
    "\n"
    "tabsync connect: any Socket.IO v5 server (tabsyncd, or Node's socket.io)\n"
    "\n"
    "Connects over WebSocket and runs one command. Without a command it connects,\n"
    "prints the socket id and the Engine.IO settings, and disconnects: a quick check\n"
    "of a deployment.\n"
    "\n"
    "Commands:\n"
    "  watch                  print every event as one JSON line, until interrupted:\n"
    "                         {\"ts\":\"2025-01-02T03:04:05.678Z\",\"event\":\"NAME\",\"args\":[...]}\n"
    "                         (binary attachments follow as \"bin\":[base64,...]; an event\n"
    "                         that wants an ack shows \"ack\":ID)\n"
    "  emit EVENT [JSON_ARGS] send one event. JSON_ARGS is a JSON array of arguments;\n"
    "                         any other JSON value is sent as the only argument\n"
    "  ping                   round-trip times of an acknowledged event: N samples,\n"
    "                         then min/avg/max\n"
    "\n"
    "Options:\n"
    "  -n, --namespace NSP    namespace to connect to (default /)\n"
    "  -a, --auth JSON        auth object sent with CONNECT, e.g. '{\"token\":\"...\"}'\n"
    "  -p, --parser NAME      json (default) or msgpack; must be the server's parser\n"
    "  -t, --timeout MS       connect timeout, and ack/wait timeout (default 5000)\n"
    "      --cacert FILE      TLS: trust the certificates in FILE (PEM) instead of the\n"
    "                         system's: a private CA, or a self-signed server certificate\n"
    "  -k, --insecure         TLS: accept any certificate (debugging only: the traffic\n"
    "                         can then be read and changed by anyone on the path)\n"
    "  -r, --reconnect        watch: reconnect after a lost connection, with backoff and\n"
    "                         connection state recovery (missed events are replayed)\n"
    "  -q, --quiet            no status lines on stderr\n"
    "  -h, --help             this text\n"
    "  -V, --version          print the version\n"
    "\n"
    "Options of watch:\n"
    "  -c, --count N          exit after N events\n"
    "Options of emit:\n"
    "      --ack              wait for the server's ack and print its arguments (JSON)\n"
    "      --wait EVENT       then wait for EVENT and print it as watch would\n"
    "Options of ping:\n"
    "  -c, --count N          samples (default 5)\n"
    "  -i, --interval MS      pause between samples (default 200)\n"
    "      --event NAME       acknowledged event to send (default message-with-ack, which\n"
    "                         tabsyncd's default namespace answers with its arguments)\n"
    "\n"
    "\n"
    "Examples:\n"
    "  tabsync connect http://127.0.0.1:3000/\n"
    "  tabsync connect http://127.0.0.1:3000/ watch --reconnect\n"
    "  tabsync connect http://127.0.0.1:3000/ emit message '[\"hello\",1]' --wait message-back\n"
    "  tabsync connect http://127.0.0.1:3000/ emit message-with-ack '\"hi\"' --ack\n"
    "  tabsync connect ws://10.0.0.5:3000/socket.io/ --auth '{\"token\":\"...\"}' ping -c 20\n"
    "  tabsync connect wss://sync.example.com/ --cacert internal-ca.pem watch\n"
    "\n";

static const char usage_tail[] =
    "\n"
    "Status lines (connected, disconnected, reconnecting) go to stderr; results to stdout.\n"
    "\n"
    "Exit status: 0 success; 1 runtime failure (cannot connect, refused by the\n"
    "server, timeout, lost connection); 2 usage error. SIGINT or SIGTERM ends a\n"
    "command by closing its connection (within 5 s; a second signal: at once).\n";

static void print_help(void) {
    fputs(usage_text, stdout);
    fputs(ts_cli_session_help, stdout);
    fputs(usage_tail, stdout);
}

enum cmd { CMD_INFO, CMD_WATCH, CMD_EMIT, CMD_PING };

typedef struct cli {
    ts_cli_run_t run; /* first: the shared callbacks see it */
    enum cmd cmd;
    int reconnect, ack;
    int got_ack, got_wait; /* emit: what arrived of what --ack / --wait want */
    unsigned timeout_ms;
    long count;         /* watch: 0 = unlimited; ping: samples */
    unsigned interval;  /* ping */
    const char *event, *args, *wait_event, *ping_event;
    long seen;          /* events printed */
    int emitted;
    /* ping */
    long sent, answered, lost;
    uint64_t t0;
    double min, max, sum;
} cli_t;

int ts_cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tabsync: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'tabsync --help'.\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

int ts_cli_option_error(const char *err) {
    static const char lib[] = "tls_ca_file: ";
    if (strncmp(err, lib, sizeof lib - 1) == 0)
        return ts_cli_usage_error("--cacert: %s", err + sizeof lib - 1);
    return ts_cli_usage_error("%s", err);
}

/* ---- output ---- */

void ts_cli_put_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void put_base64(FILE *f, const uint8_t *p, size_t n) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', f);
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        fputc(a[v >> 18], f), fputc(a[(v >> 12) & 63], f);
        fputc(a[(v >> 6) & 63], f), fputc(a[v & 63], f);
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        fputc(a[v >> 18], f), fputc(a[(v >> 12) & 63], f);
        fputc(i + 1 < n ? a[(v >> 6) & 63] : '=', f);
        fputc('=', f);
    }
    fputc('"', f);
}

void ts_cli_put_timestamp(FILE *f) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char buf[40];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "\"%s.%03ldZ\"", buf, ts.tv_nsec / 1000000);
}

static void print_event(const ts_client_event_t *ev) {
    fputs("{\"ts\":", stdout);
    ts_cli_put_timestamp(stdout);
    fputs(",\"event\":", stdout);
    ts_cli_put_json_string(stdout, ev->name);
    fprintf(stdout, ",\"args\":%s", ev->args_json);
    if (ev->nattach) {
        fputs(",\"bin\":[", stdout);
        for (size_t i = 0; i < ev->nattach; i++) {
            if (i) fputc(',', stdout);
            put_base64(stdout, ev->attach[i].data, ev->attach[i].len);
        }
        fputc(']', stdout);
    }
    if (ev->ack_id >= 0) fprintf(stdout, ",\"ack\":%lld", (long long)ev->ack_id);
    fputs("}\n", stdout);
    fflush(stdout);
}

/* ---- ending ---- */

/* ---- ping ---- */

static void ping_send(cli_t *x);

static void on_ping_timer(uv_timer_t *h) { ping_send(h->data); }

static void ping_next(cli_t *x) {
    if (x->sent >= x->count) {
        if (x->answered)
            printf("%ld samples, %ld lost: rtt min/avg/max = %.3f/%.3f/%.3f ms\n", x->sent,
                   x->lost, x->min, x->sum / (double)x->answered, x->max);
        else
            printf("%ld samples, %ld lost\n", x->sent, x->lost);
        fflush(stdout);
        ts_cli_finish(&x->run, x->lost ? EXIT_RUNTIME : EXIT_OK);
        return;
    }
    uv_timer_start(&x->run.timer, on_ping_timer, x->interval, 0);
}

static void on_ping_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud) {
    cli_t *x = ud;
    if (x->run.done) return;
    if (status < 0) {
        x->lost++;
        printf("seq=%ld %s\n", x->sent, ts_client_strerror(status));
    } else {
        double ms = (double)(uv_hrtime() - x->t0) / 1e6;
        if (!x->answered || ms < x->min) x->min = ms;
        if (ms > x->max) x->max = ms;
        x->sum += ms;
        x->answered++;
        printf("seq=%ld rtt=%.3f ms\n", x->sent, ms);
    }
    fflush(stdout);
    ping_next(x);
}

static void ping_send(cli_t *x) {
    char args[64];
    x->sent++;
    snprintf(args, sizeof args, "[%ld,\"tabsync-ping\"]", x->sent);
    x->t0 = uv_hrtime();
    int rc = ts_client_emit_ack(x->run.c, x->ping_event, args, on_ping_ack, x, x->timeout_ms);
    if (rc < 0) {
        fprintf(stderr, "tabsync: cannot emit %s: %s\n", x->ping_event, ts_client_strerror(rc));
        ts_cli_finish(&x->run, rc == TS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME);
    }
}

/* ---- emit ---- */

static void on_wait_timeout(uv_timer_t *h) {
    cli_t *x = h->data;
    fprintf(stderr, "tabsync: no %s within %u ms\n",
            x->ack && !x->got_ack ? "ack" : x->wait_event, x->timeout_ms);
    ts_cli_finish(&x->run, EXIT_RUNTIME);
}

static void on_emit_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud) {
    cli_t *x = ud;
    if (x->run.done) return;
    if (status < 0) {
        fprintf(stderr, "tabsync: no ack for %s: %s\n", x->event, ts_client_strerror(status));
        ts_cli_finish(&x->run, EXIT_RUNTIME);
        return;
    }
    printf("%s\n", reply->args_json);
    fflush(stdout);
    x->got_ack = 1;
    if (!x->wait_event || x->got_wait) ts_cli_finish(&x->run, EXIT_OK);
}

/* JSON_ARGS: an array is the argument list; another value is one argument. */
static char *make_args(const char *a) {
    if (!a) return NULL;
    const char *p = a;
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    size_t n = strlen(a);
    char *out = malloc(n + 3);
    if (!out) return NULL;
    if (*p == '[')
        memcpy(out, a, n + 1);
    else
        snprintf(out, n + 3, "[%s]", a);
    return out;
}

static void do_emit(cli_t *x) {
    char *args = make_args(x->args);
    if (x->args && !args) {
        ts_cli_finish(&x->run, EXIT_RUNTIME);
        return;
    }
    int rc = x->ack ? ts_client_emit_ack(x->run.c, x->event, args, on_emit_ack, x, x->timeout_ms)
                    : ts_client_emit(x->run.c, x->event, args);
    free(args);
    if (rc < 0) {
        if (rc == TS_EINVAL)
            fprintf(stderr,
                    "tabsync: cannot emit %s: the name is reserved or JSON_ARGS is not valid "
                    "JSON\nTry 'tabsync --help'.\n",
                    x->event);
        else
            fprintf(stderr, "tabsync: cannot emit %s: %s\n", x->event, ts_client_strerror(rc));
        ts_cli_finish(&x->run, rc == TS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME);
        return;
    }
    x->emitted = 1;
    if (!x->ack && !x->wait_event) {
        ts_cli_finish(&x->run, EXIT_OK); /* the close waits for the bytes to go out */
        return;
    }
    uv_timer_start(&x->run.timer, on_wait_timeout, x->timeout_ms, 0);
}

/* ---- client callbacks ---- */

static void on_connect(ts_client_t *c, int recovered, void *user) {
    cli_t *x = user;
    ts_cli_status(&x->run, "connected to %s as %s%s", x->run.url, ts_client_id(c),
           recovered ? " (session recovered)" : "");
    switch (x->cmd) {
    case CMD_INFO: {
        unsigned pi, pt;
        size_t mp;
        ts_client_engine_info(c, &pi, &pt, &mp);
        printf("{\"id\":");
        ts_cli_put_json_string(stdout, ts_client_id(c));
        printf(",\"recovery\":%s,\"pingInterval\":%u,\"pingTimeout\":%u,\"maxPayload\":%zu}\n",
               ts_client_pid(c) ? "true" : "false", pi, pt, mp);
        fflush(stdout);
        ts_cli_finish(&x->run, EXIT_OK);
        break;
    }
    case CMD_EMIT:
        if (!x->emitted) do_emit(x);
        break;
    case CMD_PING:
        if (!x->sent) ping_send(x);
        break;
    case CMD_WATCH:
        break;
    }
}

static void on_event(ts_client_t *c, const ts_client_event_t *ev, void *user) {
    cli_t *x = user;
    if (x->run.done) return;
    if (x->cmd == CMD_WATCH) {
        print_event(ev);
        if (x->count && ++x->seen >= x->count) ts_cli_finish(&x->run, EXIT_OK);
    } else if (x->cmd == CMD_EMIT && x->wait_event && !x->got_wait && x->emitted &&
               strcmp(ev->name, x->wait_event) == 0) {
        /* it may come before the ack (the server emits, then answers) */
        print_event(ev);
        x->got_wait = 1;
        if (!x->ack || x->got_ack) ts_cli_finish(&x->run, EXIT_OK);
    }
}

/* ---- arguments ---- */

int ts_cli_parse_num(const char *s, const char *what, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        ts_cli_usage_error("%s \"%s\" is not a number from %ld to %ld", what, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    cli_t x;
    memset(&x, 0, sizeof x);
    x.timeout_ms = 5000;
    x.interval = 200;
    x.ping_event = "message-with-ack";
    const char *nsp = "/", *auth = NULL, *parser = "json";
    long count = -1;

    if (argc < 2)
        return ts_cli_usage_error("missing command (expected: connect URL ... or session URL ...)");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_help();
        return EXIT_OK;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("tabsync %s\n", ts_client_version());
        return EXIT_OK;
    }
    if (strcmp(argv[1], "session") == 0) return ts_cli_session_main(argc, argv);
    if (strcmp(argv[1], "connect") != 0)
        return ts_cli_usage_error("unknown command \"%s\" (expected connect or session)", argv[1]);

    enum { OPT_ACK = 1000, OPT_WAIT, OPT_EVENT, OPT_CACERT };
    static const struct option longopts[] = {
        {"namespace", required_argument, NULL, 'n'}, {"auth", required_argument, NULL, 'a'},
        {"parser", required_argument, NULL, 'p'},    {"timeout", required_argument, NULL, 't'},
        {"reconnect", no_argument, NULL, 'r'},       {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},            {"version", no_argument, NULL, 'V'},
        {"count", required_argument, NULL, 'c'},     {"interval", required_argument, NULL, 'i'},
        {"ack", no_argument, NULL, OPT_ACK},         {"wait", required_argument, NULL, OPT_WAIT},
        {"event", required_argument, NULL, OPT_EVENT}, {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, 'k'},        {NULL, 0, NULL, 0},
    };
    int o;
    long v;
    opterr = 0;
    optind = 2;
    const char *cacert = NULL;
    int insecure = 0;
    while ((o = getopt_long(argc, argv, ":n:a:p:t:rqhVc:i:k", longopts, NULL)) != -1) {
        switch (o) {
        case 'n': nsp = optarg; break;
        case 'a': auth = optarg; break;
        case 'p': parser = optarg; break;
        case 't':
            if (ts_cli_parse_num(optarg, "--timeout", 1, 3600000, &v) < 0) return EXIT_USAGE;
            x.timeout_ms = (unsigned)v;
            break;
        case 'r': x.reconnect = 1; break;
        case 'q': x.run.quiet = 1; break;
        case 'h': print_help(); return EXIT_OK;
        case 'V': printf("tabsync %s\n", ts_client_version()); return EXIT_OK;
        case 'c':
            if (ts_cli_parse_num(optarg, "--count", 1, 100000000, &count) < 0)
                return EXIT_USAGE;
            break;
        case 'i':
            if (ts_cli_parse_num(optarg, "--interval", 0, 3600000, &v) < 0) return EXIT_USAGE;
            x.interval = (unsigned)v;
            break;
        case OPT_ACK: x.ack = 1; break;
        case OPT_WAIT: x.wait_event = optarg; break;
        case OPT_EVENT: x.ping_event = optarg; break;
        case OPT_CACERT: cacert = optarg; break;
        case 'k': insecure = 1; break;
        case ':': return ts_cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return ts_cli_usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    char **pos = argv + optind;
    if (npos < 1) return ts_cli_usage_error("connect: missing URL");
    x.run.url = pos[0];
    const char *cmd = npos > 1 ? pos[1] : NULL;
    int nargs = npos > 2 ? npos - 2 : 0;
    char **args = pos + 2;
    if (!cmd) {
        x.cmd = CMD_INFO;
    } else if (strcmp(cmd, "watch") == 0) {
        x.cmd = CMD_WATCH;
        if (nargs) return ts_cli_usage_error("watch: unexpected argument \"%s\"", args[0]);
    } else if (strcmp(cmd, "emit") == 0) {
        x.cmd = CMD_EMIT;
        if (nargs < 1) return ts_cli_usage_error("emit: missing EVENT");
        if (nargs > 2)
            return ts_cli_usage_error("emit: unexpected argument \"%s\" (quote JSON_ARGS)",
                                      args[2]);
        x.event = args[0];
        x.args = nargs > 1 ? args[1] : NULL;
    } else if (strcmp(cmd, "ping") == 0) {
        x.cmd = CMD_PING;
        if (nargs) return ts_cli_usage_error("ping: unexpected argument \"%s\"", args[0]);
    } else {
        return ts_cli_usage_error("unknown command \"%s\" (expected watch, emit or ping)", cmd);
    }
    if ((x.ack || x.wait_event) && x.cmd != CMD_EMIT)
        return ts_cli_usage_error("--ack and --wait belong to emit");
    if (x.reconnect && x.cmd != CMD_WATCH)
        return ts_cli_usage_error("--reconnect belongs to watch");
    if (count > 0 && x.cmd != CMD_WATCH && x.cmd != CMD_PING)
        return ts_cli_usage_error("--count belongs to watch and ping");
    x.count = count > 0 ? count : (x.cmd == CMD_PING ? 5 : 0);

    ts_client_opts_t opts;
    ts_client_opts_init(&opts);
    opts.url = x.run.url;
    opts.nsp = nsp;
    opts.auth_json = auth;
    if (strcmp(parser, "json") == 0)
        opts.parser = TS_CLIENT_PARSER_JSON;
    else if (strcmp(parser, "msgpack") == 0)
        opts.parser = TS_CLIENT_PARSER_MSGPACK;
    else
        return ts_cli_usage_error("--parser \"%s\" is not a parser (expected json or msgpack)",
                                  parser);
    opts.reconnection = x.reconnect;
    opts.connect_timeout_ms = x.timeout_ms;
    opts.tls_ca_file = cacert;
    opts.tls_insecure = insecure;
    opts.cb.on_connect = on_connect;
    opts.cb.on_event = on_event;
    ts_cli_common_callbacks(&opts.cb);
    opts.user = &x;

    x.run.loop = uv_default_loop();
    char err[300];
    int rc = ts_client_new(x.run.loop, &opts, &x.run.c, err, sizeof err);
    if (rc < 0) {
        if (rc == TS_EINVAL) return ts_cli_option_error(err);
        fprintf(stderr, "tabsync: %s\n", ts_client_strerror(rc));
        return EXIT_RUNTIME;
    }
    x.run.signal_ok = x.cmd == CMD_WATCH;
    return ts_cli_run(&x.run);
}
