/* session.c - `tabsync session`: a tab of tabsyncd's /session namespace
 * from the command line, for a person debugging a deployment: connect with
 * a token (see who the server thinks you are), watch a session's events and
 * security notices as JSON lines, publish an envelope, report metadata,
 * print the session's history (protocol v3 `sync`, page after page).
 * Built on libtabsync's session API (ts_client_session_new and friends);
 * history entries are printed as the server's own texts, cut out of the
 * answer by a small JSON scanner rather than re-encoded. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tabsync.h>

#include "cli.h"

#define MAX_CAPS 32

const char ts_cli_session_help[] =
    "tabsync session: a tab of tabsyncd's /session namespace (docs/PROTOCOL.md)\n"
    "\n"
    "Connects to URL's /session namespace with a token bound to a device, prints\n"
    "the server's welcome {user, session, device, tab, proto, exp, node} as a JSON\n"
    "line, and runs one command. Without a command it exits after the welcome: a\n"
    "check that a token works. A refusal prints the server's reason and data.code\n"
    "(fingerprint_mismatch, token_expired, throttled, ...) and exits 1.\n"
    "\n"
    "Commands:\n"
    "  watch                  print the welcome, every event another tab publishes to\n"
    "                         this tab's session, user or device, and every security\n"
    "                         notice, one JSON line each, until interrupted:\n"
    "                         {\"ts\":\"...\",\"event\":\"welcome\",\"data\":{\"user\":...}}\n"
    "                         {\"ts\":\"...\",\"event\":\"event\",\"data\":{\"v\":2,\"type\":...,\n"
    "                          \"from\":{\"user\":...,\"device\":...,\"tab\":...}}}\n"
    "                         {\"ts\":\"...\",\"event\":\"security\",\"data\":{\"code\":...}}\n"
    "                         {\"ts\":\"...\",\"event\":\"error\",\"data\":{\"code\":...}}\n"
    "  publish TYPE [BODY]    publish an envelope of type TYPE with body BODY (any JSON\n"
    "                         value; default null) and print the server's answer,\n"
    "                         {\"ok\":true,\"id\":ID}; a refusal prints\n"
    "                         {\"ok\":false,\"error\":{\"code\":...}} and exits 1\n"
    "  metadata JSON          report this tab's metadata ({network, battery,\n"
    "                         visibility, type}) and print the answer\n"
    "  history                connect with protocol 3, print the session's history,\n"
    "                         one JSON line per entry in seq order ({\"kind\":\"event\"\n"
    "                         or \"change\",...,\"seq\":N}), asking `sync` again while\n"
    "                         the server says there is more. When the entries asked\n"
    "                         for were already compacted into a snapshot, the\n"
    "                         snapshot comes first, then the entries after it:\n"
    "                         {\"kind\":\"snapshot\",\"reason\":...,\"epoch\":...,\"seq\":N,\n"
    "                          \"ver\":V,\"state\":{...}}\n"
    "  elections              connect with protocol 4, join the session's elections\n"
    "                         (--scope) as an observer: never leads, is never backup,\n"
    "                         takes no tasks (the members get a \"join\" view). Prints\n"
    "                         the first view of each scope as a JSON line, then exits:\n"
    "                         {\"ts\":\"...\",\"event\":\"elect\",\"data\":{\"scope\":\n"
    "                          \"session\",\"term\":7,\"leader\":{\"device\",\"tab\",\n"
    "                          \"score\"}|null,\"backup\":...,\"role\":\"observer\",\n"
    "                          \"reason\":...,\"lease_ms\":...,\"hb_ms\":...,\"since\":...,\n"
    "                          \"tasks\":[{\"name\",\"assignee\",\"state\",\"pct\",\"term\",\n"
    "                          \"by\"}],\"members\":[{\"device\",\"tab\",\"role\",\"score\",\"parts\"}]}}\n"
    "                         (docs/ELECTION.md, \"The view\")\n"
    "\n"
    "Options of session:\n"
    "      --token T          the session token (a JWT, e.g. from `tabsyncd token`);\n"
    "                         default: the TABSYNC_TOKEN environment variable\n"
    "      --device ID        device id; must be the token's dev claim\n"
    "      --fingerprint F    device fingerprint; its SHA-256 must be the token's fp\n"
    "                         claim (default: the device id, as `tabsyncd token`\n"
    "                         assumes without --fingerprint)\n"
    "      --tab ID           this tab's id (default: a random tab-... id)\n"
    "      --type TYPE        device type: browser, mobile, desktop, server or cli\n"
    "                         (default cli)\n"
    "      --caps A,B         device capabilities\n"
    "  -t, --timeout MS       connect timeout, and answer timeout (default 5000)\n"
    "      --cacert FILE      TLS: trust the certificates in FILE (PEM), as for connect\n"
    "  -k, --insecure         TLS: accept any certificate (debugging only)\n"
    "  -q, --quiet            no status lines on stderr\n"
    "Options of watch:\n"
    "  -c, --count N          exit after N events (welcome and notices not counted)\n"
    "  -r, --reconnect        reconnect after a lost connection\n"
    "Options of publish:\n"
    "      --to SCOPE         session (default: every other tab of this session), user\n"
    "                         (every other tab of this user) or device (every other tab\n"
    "                         on this device)\n"
    "      --prio P           control, state, event (default), presence or telemetry\n"
    "      --id ID            envelope id (default: generated, printed in the answer)\n"
    "Options of history:\n"
    "      --after N          only the entries after seq N of the session's current\n"
    "                         epoch (default 0: all the server keeps)\n"
    "      --limit L          entries per sync answer, 1-1000 (default: the server's,\n"
    "                         500); every page is printed either way\n"
    "Options of elections:\n"
    "      --scope S          session, device (this device's tabs) or session,device\n"
    "                         (default)\n"
    "  -f, --follow           print every later view too, until interrupted\n"
    "      --candidate        take part instead of observing: this tab may lead (and\n"
    "                         then heartbeats) or be backup, and is given tasks; with\n"
    "                         --follow, a stand-in leader for debugging\n"
    "\n"
    "Examples:\n"
    "  export TABSYNC_TOKEN=$(tabsyncd token --jwt-secret \"$S\" --user alice \\\n"
    "                         --session s1 --device laptop --fingerprint fp1)\n"
    "  tabsync session http://127.0.0.1:3000/ --device laptop --fingerprint fp1 watch\n"
    "  tabsync session http://127.0.0.1:3000/ --device laptop --fingerprint fp1 \\\n"
    "          publish cart.update '{\"items\":3}' --to user\n"
    "  tabsync session http://127.0.0.1:3000/ --device laptop --fingerprint fp1 \\\n"
    "          metadata '{\"visibility\":\"hidden\"}'\n"
    "  tabsync session http://127.0.0.1:3000/ --device laptop --fingerprint fp1 \\\n"
    "          history --after 120\n"
    "  tabsync session http://127.0.0.1:3000/ --device laptop --fingerprint fp1 \\\n"
    "          elections --scope session\n";

enum scmd { S_INFO, S_WATCH, S_PUBLISH, S_METADATA, S_HISTORY, S_ELECT };

#define SYNC_DEPTH_MAX 256 /* nesting the history scanner follows */

typedef struct scli {
    ts_cli_run_t run; /* first: the shared callbacks see it */
    enum scmd cmd;
    int reconnect, sent;
    long count, seen;
    unsigned timeout_ms;
    const char *type, *body, *id, *json;
    ts_client_scope_t to;
    ts_client_prio_t prio;
    /* history */
    long after, limit;    /* the last seq printed (or asked from); limit 0: the server's */
    char epoch[40];       /* the epoch to ask in, as a JSON string; "" = none */
    unsigned long long printed;
    /* elections */
    unsigned scopes, seen_scopes; /* masks of ts_client_elect_scope_t */
    int follow, candidate;
} scli_t;

/* {"ts":...,"event":NAME,"data":JSON} */
static void print_line(const char *name, const char *json) {
    fputs("{\"ts\":", stdout);
    ts_cli_put_timestamp(stdout);
    fputs(",\"event\":", stdout);
    ts_cli_put_json_string(stdout, name);
    fprintf(stdout, ",\"data\":%s}\n", json);
    fflush(stdout);
}

/* ---- reading the sync answer ----
 * The answer arrives as the server wrote it (libtabsync passes JSON texts
 * on as JSON.stringify would write them); entries are printed as they are,
 * so the scanner only finds where values start and end. */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* The end of the JSON value at p, or NULL if there is none (or it nests
 * deeper than `depth`). */
static const char *skip_value(const char *p, int depth) {
    p = skip_ws(p);
    if (*p == '"') {
        for (p++; *p != '"'; p++)
            if (!*p || (*p == '\\' && !*++p)) return NULL;
        return p + 1;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        if (depth <= 0) return NULL;
        p = skip_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                if (*skip_ws(p) != '"' || !(p = skip_value(p, 0))) return NULL;
                p = skip_ws(p);
                if (*p++ != ':') return NULL;
            }
            if (!(p = skip_value(p, depth - 1))) return NULL;
            p = skip_ws(p);
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
        }
    }
    const char *start = p; /* a number, true, false or null */
    while (*p && strchr("+-.0123456789Eaeflnrstu", *p)) p++;
    return p > start ? p : NULL;
}

/* The value of member `key` (a name without escapes) of the object at obj:
 * its start, with *len; NULL if absent or not an object. */
static const char *member(const char *obj, const char *key, size_t *len) {
    const char *p = skip_ws(obj);
    if (*p++ != '{') return NULL;
    size_t klen = strlen(key);
    for (p = skip_ws(p); *p == '"';) {
        const char *k = p + 1, *kend = skip_value(p, 0);
        if (!kend) return NULL;
        p = skip_ws(kend);
        if (*p++ != ':') return NULL;
        const char *v = skip_ws(p), *vend = skip_value(v, SYNC_DEPTH_MAX);
        if (!vend) return NULL;
        if ((size_t)(kend - 1 - k) == klen && memcmp(k, key, klen) == 0) {
            *len = (size_t)(vend - v);
            return v;
        }
        p = skip_ws(vend);
        if (*p != ',') return NULL;
        p = skip_ws(p + 1);
    }
    return NULL;
}

static int member_true(const char *obj, const char *key) {
    size_t n;
    const char *v = member(obj, key, &n);
    return v && n == 4 && memcmp(v, "true", 4) == 0;
}

/* An integer member, or -1. */
static long long member_int(const char *obj, const char *key) {
    size_t n;
    const char *v = member(obj, key, &n);
    return v && *v >= '0' && *v <= '9' ? strtoll(v, NULL, 10) : -1;
}

/* ---- history ---- */

static void on_synced(ts_client_t *c, int st, const ts_client_event_t *reply, void *ud);

/* Asks for the entries after x->after, in x->epoch. */
static int ask_sync(scli_t *x) {
    char args[200];
    int n = snprintf(args, sizeof args, "[{\"after\":%ld", x->after);
    if (x->epoch[0]) n += snprintf(args + n, sizeof args - (size_t)n, ",\"epoch\":%s", x->epoch);
    if (x->limit) n += snprintf(args + n, sizeof args - (size_t)n, ",\"limit\":%ld", x->limit);
    snprintf(args + n, sizeof args - (size_t)n, "}]");
    return ts_client_emit_ack(x->run.c, "sync", args, on_synced, x, x->timeout_ms);
}

/* Prints one sync answer; returns 1 when more is to be asked for. */
static int print_sync(scli_t *x, const char *a) {
    size_t n, elen;
    const char *epoch = member(a, "epoch", &elen);
    if (epoch && elen < sizeof x->epoch) {
        memcpy(x->epoch, epoch, elen);
        x->epoch[elen] = '\0';
    }
    const char *snap = member(a, "snapshot", &n);
    if (member_true(a, "reset") && snap && *snap == '{') {
        size_t rlen = 0;
        const char *reason = member(a, "reason", &rlen);
        fputs("{\"kind\":\"snapshot\"", stdout);
        if (reason) printf(",\"reason\":%.*s", (int)rlen, reason);
        if (epoch) printf(",\"epoch\":%.*s", (int)elen, epoch);
        const char *in = skip_ws(snap + 1);
        printf("%s%.*s\n", *in == '}' ? "" : ",", (int)(n - (size_t)(in - snap)), in);
        long long seq = member_int(snap, "seq");
        if (seq >= 0) x->after = (long)seq;
    }
    const char *p = member(a, "entries", &n);
    if (p && *p == '[') {
        const char *end = p + n - 1; /* the closing bracket */
        for (p = skip_ws(p + 1); p < end;) {
            const char *e = skip_value(p, SYNC_DEPTH_MAX);
            if (!e) break;
            printf("%.*s\n", (int)(e - p), p);
            x->printed++;
            long long seq = member_int(p, "seq");
            if (seq >= 0) x->after = (long)seq;
            p = skip_ws(e);
            if (*p == ',') p = skip_ws(p + 1);
        }
    }
    fflush(stdout);
    return member_true(a, "more");
}

static void on_synced(ts_client_t *c, int st, const ts_client_event_t *reply, void *ud) {
    scli_t *x = ud;
    (void)c;
    if (x->run.done) return;
    if (st < 0) {
        fprintf(stderr, "tabsync: no answer to sync: %s\n", ts_client_strerror(st));
        ts_cli_finish(&x->run, EXIT_RUNTIME);
        return;
    }
    const char *a = skip_ws(reply->args_json);
    const char *end = *a == '[' ? skip_value(skip_ws(a + 1), SYNC_DEPTH_MAX) : NULL;
    a = skip_ws(a + 1);
    if (!end || *a != '{') {
        fprintf(stderr, "tabsync: the server's sync answer is not an object: %.200s\n",
                reply->args_json);
        ts_cli_finish(&x->run, EXIT_RUNTIME);
        return;
    }
    if (!member_true(a, "ok")) {
        fprintf(stderr, "tabsync: sync refused: %.*s\n", (int)(end - a), a);
        ts_cli_finish(&x->run, EXIT_RUNTIME);
        return;
    }
    long from = x->after;
    if (!print_sync(x, a)) {
        ts_cli_status(&x->run, "history: %llu entries, up to seq %ld", x->printed, x->after);
        ts_cli_finish(&x->run, EXIT_OK);
        return;
    }
    if (x->after <= from) { /* asking again would get the same page */
        fprintf(stderr, "tabsync: the server said more but sent nothing after seq %ld\n", from);
        ts_cli_finish(&x->run, EXIT_RUNTIME);
        return;
    }
    int rc = ask_sync(x);
    if (rc < 0) {
        fprintf(stderr, "tabsync: cannot send: %s\n", ts_client_strerror(rc));
        ts_cli_finish(&x->run, EXIT_RUNTIME);
    }
}

/* ---- commands ---- */

static void on_answer(ts_client_t *c, int st, const ts_client_result_t *r, void *ud) {
    scli_t *x = ud;
    const char *what = x->cmd == S_PUBLISH ? "publish" : "metadata";
    if (x->run.done) return;
    if (st < 0) {
        fprintf(stderr, "tabsync: no answer to %s: %s\n", what, ts_client_strerror(st));
        ts_cli_finish(&x->run, EXIT_RUNTIME);
        return;
    }
    printf("%s\n", r->json);
    fflush(stdout);
    if (r->ok) {
        ts_cli_finish(&x->run, EXIT_OK);
        return;
    }
    if (r->retry_after_ms)
        fprintf(stderr, "tabsync: %s refused: %s: %s (retry after %lld ms)\n", what,
                r->code ? r->code : "?", r->message ? r->message : "",
                (long long)r->retry_after_ms);
    else
        fprintf(stderr, "tabsync: %s refused: %s: %s\n", what, r->code ? r->code : "?",
                r->message ? r->message : "");
    ts_cli_finish(&x->run, EXIT_RUNTIME);
}

static void run_command(scli_t *x) {
    int rc = 0;
    if (x->cmd == S_PUBLISH)
        rc = ts_client_publish(x->run.c, x->type, x->id, x->body, x->to, x->prio, on_answer, x);
    else if (x->cmd == S_METADATA)
        rc = ts_client_set_metadata(x->run.c, x->json, on_answer, x);
    else if (x->cmd == S_HISTORY)
        rc = ask_sync(x);
    if (rc == TS_EINVAL) {
        fprintf(stderr, "tabsync: %s\nTry 'tabsync --help'.\n",
                x->cmd == S_PUBLISH ? "publish: BODY is not valid JSON"
                                    : "metadata: JSON is not a JSON object");
        ts_cli_finish(&x->run, EXIT_USAGE);
    } else if (rc < 0) {
        fprintf(stderr, "tabsync: cannot send: %s\n", ts_client_strerror(rc));
        ts_cli_finish(&x->run, EXIT_RUNTIME);
    }
}

/* ---- client callbacks ---- */

static void on_elect_view(ts_client_t *c, const ts_client_elect_view_t *v, void *user) {
    scli_t *x = user;
    if (x->run.done || x->cmd != S_ELECT) return;
    print_line("elect", v->json);
    x->seen_scopes |= (unsigned)v->scope;
    if (!x->follow && (x->seen_scopes & x->scopes) == x->scopes) ts_cli_finish(&x->run, EXIT_OK);
}

static void on_elect_timeout(uv_timer_t *h) {
    scli_t *x = h->data;
    fprintf(stderr, "tabsync: no election view within %u ms\n", x->timeout_ms);
    ts_cli_finish(&x->run, EXIT_RUNTIME);
}

static void on_welcome(ts_client_t *c, const ts_client_welcome_t *w, void *user) {
    scli_t *x = user;
    if (x->run.done) return;
    ts_cli_status(&x->run, "connected to %s as user %s, session %s, device %s, tab %s", x->run.url,
           w->user ? w->user : "?", w->session ? w->session : "?", w->device ? w->device : "?",
           w->tab ? w->tab : "?");
    if (x->cmd == S_INFO || x->cmd == S_WATCH) print_line("welcome", w->json);
    if (x->cmd == S_HISTORY && !x->sent) {
        /* --after N counts in the epoch the session is in now */
        size_t n;
        const char *epoch = member(w->json, "epoch", &n);
        if (epoch && *epoch == '"' && n < sizeof x->epoch) {
            memcpy(x->epoch, epoch, n);
            x->epoch[n] = '\0';
        }
    }
    if (x->cmd == S_INFO) {
        ts_cli_finish(&x->run, EXIT_OK);
    } else if (x->cmd == S_ELECT) {
        /* the views come unasked, after the welcome */
        if (!x->follow && !x->sent)
            uv_timer_start(&x->run.timer, on_elect_timeout, x->timeout_ms, 0);
        x->sent = 1;
    } else if (x->cmd != S_WATCH && !x->sent) {
        x->sent = 1;
        run_command(x);
    }
}

static void on_envelope(ts_client_t *c, const ts_client_envelope_t *e, void *user) {
    scli_t *x = user;
    if (x->run.done || x->cmd != S_WATCH) return;
    print_line("event", e->json);
    if (x->count && ++x->seen >= x->count) ts_cli_finish(&x->run, EXIT_OK);
}

static void on_security(ts_client_t *c, const ts_client_security_t *s, void *user) {
    scli_t *x = user;
    if (x->run.done) return;
    if (x->cmd == S_WATCH)
        print_line("security", s->json);
    else
        ts_cli_status(&x->run, "security notice: %s: %s", s->code ? s->code : "?",
               s->message ? s->message : "");
}

static void on_refused(ts_client_t *c, const ts_client_result_t *r, void *user) {
    scli_t *x = user;
    if (x->run.done) return;
    if (x->cmd == S_WATCH)
        print_line("error", r->json);
    else
        ts_cli_status(&x->run, "the server refused an event: %s: %s", r->code ? r->code : "?",
               r->message ? r->message : "");
}

/* ---- arguments ---- */

/* Index of `value` in names[first..n), or -1 after a usage error. */
static int pick(const char *value, const char *what, const char *const *names, int first, int n,
                const char *expected) {
    for (int i = first; i < n; i++)
        if (strcmp(value, names[i]) == 0) return i;
    ts_cli_usage_error("%s \"%s\" is not accepted (expected %s)", what, value, expected);
    return -1;
}

int ts_cli_session_main(int argc, char **argv) {
    scli_t x;
    memset(&x, 0, sizeof x);
    x.timeout_ms = 5000;
    const char *token = getenv("TABSYNC_TOKEN"), *device = NULL, *fingerprint = NULL;
    const char *tab = NULL, *type = "cli", *caps_arg = NULL, *to = NULL, *prio = NULL;
    long count = 0, v;
    int history_opts = 0, elect_opts = 0;
    const char *scope_arg = NULL;

    enum { O_TOKEN = 1000, O_DEVICE, O_FP, O_TAB, O_TYPE, O_CAPS, O_TO, O_PRIO, O_ID, O_CACERT,
           O_AFTER, O_LIMIT, O_SCOPE, O_CANDIDATE };
    static const struct option longopts[] = {
        {"token", required_argument, NULL, O_TOKEN},  {"device", required_argument, NULL, O_DEVICE},
        {"fingerprint", required_argument, NULL, O_FP}, {"tab", required_argument, NULL, O_TAB},
        {"type", required_argument, NULL, O_TYPE},    {"caps", required_argument, NULL, O_CAPS},
        {"to", required_argument, NULL, O_TO},        {"prio", required_argument, NULL, O_PRIO},
        {"id", required_argument, NULL, O_ID},        {"timeout", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},            {"count", required_argument, NULL, 'c'},
        {"reconnect", no_argument, NULL, 'r'},        {"help", no_argument, NULL, 'h'},
        {"cacert", required_argument, NULL, O_CACERT}, {"insecure", no_argument, NULL, 'k'},
        {"after", required_argument, NULL, O_AFTER},  {"limit", required_argument, NULL, O_LIMIT},
        {"scope", required_argument, NULL, O_SCOPE},  {"follow", no_argument, NULL, 'f'},
        {"candidate", no_argument, NULL, O_CANDIDATE}, {NULL, 0, NULL, 0},
    };
    int o;
    opterr = 0;
    optind = 2;
    const char *cacert = NULL;
    int insecure = 0;
    while ((o = getopt_long(argc, argv, ":t:qc:rhkf", longopts, NULL)) != -1) {
        switch (o) {
        case O_TOKEN: token = optarg; break;
        case O_DEVICE: device = optarg; break;
        case O_FP: fingerprint = optarg; break;
        case O_TAB: tab = optarg; break;
        case O_TYPE: type = optarg; break;
        case O_CAPS: caps_arg = optarg; break;
        case O_TO: to = optarg; break;
        case O_PRIO: prio = optarg; break;
        case O_ID: x.id = optarg; break;
        case O_CACERT: cacert = optarg; break;
        case 'k': insecure = 1; break;
        case O_AFTER:
            /* 2^53 - 1: the largest seq a JSON number holds exactly */
            if (ts_cli_parse_num(optarg, "--after", 0, 9007199254740991L, &x.after) < 0)
                return EXIT_USAGE;
            history_opts = 1;
            break;
        case O_LIMIT:
            if (ts_cli_parse_num(optarg, "--limit", 1, 1000, &x.limit) < 0) return EXIT_USAGE;
            history_opts = 1;
            break;
        case 't':
            if (ts_cli_parse_num(optarg, "--timeout", 1, 3600000, &v) < 0) return EXIT_USAGE;
            x.timeout_ms = (unsigned)v;
            break;
        case 'q': x.run.quiet = 1; break;
        case 'c':
            if (ts_cli_parse_num(optarg, "--count", 1, 100000000, &count) < 0) return EXIT_USAGE;
            break;
        case 'r': x.reconnect = 1; break;
        case O_SCOPE: scope_arg = optarg; elect_opts = 1; break;
        case 'f': x.follow = 1; elect_opts = 1; break;
        case O_CANDIDATE: x.candidate = 1; elect_opts = 1; break;
        case 'h': fputs(ts_cli_session_help, stdout); return EXIT_OK;
        case ':': return ts_cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return ts_cli_usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    char **pos = argv + optind;
    if (npos < 1) return ts_cli_usage_error("session: missing URL");
    x.run.url = pos[0];
    const char *cmd = npos > 1 ? pos[1] : NULL;
    int nargs = npos > 2 ? npos - 2 : 0;
    char **args = pos + 2;
    if (!cmd) {
        x.cmd = S_INFO;
    } else if (strcmp(cmd, "watch") == 0) {
        x.cmd = S_WATCH;
        if (nargs) return ts_cli_usage_error("watch: unexpected argument \"%s\"", args[0]);
    } else if (strcmp(cmd, "publish") == 0) {
        x.cmd = S_PUBLISH;
        if (nargs < 1) return ts_cli_usage_error("publish: missing TYPE");
        if (nargs > 2)
            return ts_cli_usage_error("publish: unexpected argument \"%s\" (quote BODY)", args[2]);
        x.type = args[0];
        x.body = nargs > 1 ? args[1] : NULL;
    } else if (strcmp(cmd, "metadata") == 0) {
        x.cmd = S_METADATA;
        if (nargs != 1) return ts_cli_usage_error("metadata: expected one JSON argument");
        x.json = args[0];
    } else if (strcmp(cmd, "history") == 0) {
        x.cmd = S_HISTORY;
        if (nargs) return ts_cli_usage_error("history: unexpected argument \"%s\"", args[0]);
    } else if (strcmp(cmd, "elections") == 0) {
        x.cmd = S_ELECT;
        if (nargs) return ts_cli_usage_error("elections: unexpected argument \"%s\"", args[0]);
    } else {
        return ts_cli_usage_error("unknown command \"%s\" (expected watch, publish, metadata, "
                                  "history or elections)",
                                  cmd);
    }
    if (!token || !*token)
        return ts_cli_usage_error("session: missing --token (or TABSYNC_TOKEN in the environment)");
    if (!device || !*device) return ts_cli_usage_error("session: missing --device");
    if ((to || prio || x.id) && x.cmd != S_PUBLISH)
        return ts_cli_usage_error("--to, --prio and --id belong to publish");
    if ((count || x.reconnect) && x.cmd != S_WATCH)
        return ts_cli_usage_error("--count and --reconnect belong to watch");
    if (history_opts && x.cmd != S_HISTORY)
        return ts_cli_usage_error("--after and --limit belong to history");
    if (elect_opts && x.cmd != S_ELECT)
        return ts_cli_usage_error("--scope, --follow and --candidate belong to elections");
    x.scopes = TS_CLIENT_ELECT_SESSION | TS_CLIENT_ELECT_DEVICE;
    if (scope_arg) {
        if (strcmp(scope_arg, "session") == 0)
            x.scopes = TS_CLIENT_ELECT_SESSION;
        else if (strcmp(scope_arg, "device") == 0)
            x.scopes = TS_CLIENT_ELECT_DEVICE;
        else if (strcmp(scope_arg, "session,device") != 0 &&
                 strcmp(scope_arg, "device,session") != 0)
            return ts_cli_usage_error("--scope \"%s\" is not accepted (expected session, device "
                                      "or session,device)",
                                      scope_arg);
    }
    x.count = count;
    static const char *const scopes[] = {"session", "user", "device"};
    static const char *const prios[] = {"default", "control", "state", "event", "presence",
                                        "telemetry"};
    int k = to ? pick(to, "--to", scopes, 0, 3, "session, user or device") : 0;
    if (k < 0) return EXIT_USAGE;
    x.to = (ts_client_scope_t)k;
    k = prio ? pick(prio, "--prio", prios, 1, 6, "control, state, event, presence or telemetry")
             : 0;
    if (k < 0) return EXIT_USAGE;
    x.prio = (ts_client_prio_t)k;

    /* --caps a,b,c */
    char capbuf[1024];
    const char *caps[MAX_CAPS];
    size_t ncaps = 0;
    if (caps_arg) {
        if (strlen(caps_arg) >= sizeof capbuf)
            return ts_cli_usage_error("--caps: longer than %zu bytes", sizeof capbuf - 1);
        strcpy(capbuf, caps_arg);
        for (char *save = NULL, *p = strtok_r(capbuf, ",", &save); p;
             p = strtok_r(NULL, ",", &save)) {
            if (ncaps == MAX_CAPS) return ts_cli_usage_error("--caps: more than %d", MAX_CAPS);
            caps[ncaps++] = p;
        }
    }

    ts_client_session_opts_t so;
    ts_client_session_opts_init(&so);
    so.client.url = x.run.url;
    so.client.reconnection = x.reconnect;
    so.client.connect_timeout_ms = x.timeout_ms;
    so.client.tls_ca_file = cacert;
    so.client.tls_insecure = insecure;
    ts_cli_common_callbacks(&so.client.cb);
    so.client.user = &x;
    so.token = token;
    so.device_id = device;
    so.fingerprint = fingerprint ? fingerprint : device;
    so.device_type = type;
    so.caps = caps;
    so.ncaps = ncaps;
    so.tab_id = tab;
    so.ack_timeout_ms = x.timeout_ms;
    so.proto = x.cmd == S_HISTORY ? 3 : 0; /* the history is protocol 3's */
    if (x.cmd == S_ELECT) {                /* protocol 4: joined at connect */
        so.elect_scopes = x.scopes;
        so.elect_observer = !x.candidate;
        so.elect_scores = 1;
        so.scb.on_elect = on_elect_view;
    }
    so.scb.on_welcome = on_welcome;
    so.scb.on_envelope = on_envelope;
    so.scb.on_security = on_security;
    so.scb.on_refused = on_refused;

    x.run.loop = uv_default_loop();
    char err[300];
    int rc = ts_client_session_new(x.run.loop, &so, &x.run.c, err, sizeof err);
    if (rc < 0) {
        if (rc == TS_EINVAL) return ts_cli_option_error(err);
        fprintf(stderr, "tabsync: %s\n", ts_client_strerror(rc));
        return EXIT_RUNTIME;
    }
    x.run.signal_ok = x.cmd == S_WATCH || (x.cmd == S_ELECT && x.follow);
    return ts_cli_run(&x.run);
}
