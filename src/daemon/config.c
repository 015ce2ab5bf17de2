/* config.c - tabsyncd configuration: one table of options drives the
 * environment parser, the flag parser and the --help text, so a setting
 * cannot exist in one place and be missing from another. Parsing does no
 * I/O except printing --help/--version, checking that named paths exist,
 * and reading the secret and key files (--jwt-secret-file, --jwt-public-key,
 * --admin-token-file, --publisher-token-file), so that a bad one stops the
 * start with one line.
 * Secret values are never echoed in messages: only their length. */
#include "daemon/ts_dmn_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ts_mem.h"
#include "session/ts_sess_auth.h"

#define TS_DMN_VERSION "0.1.0"
#define MS_MAX 3600000u /* one hour: the ceiling of every timeout */
#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * 1024ull * 1024ull)

/* --conformance: what the official Engine.IO v4 / Socket.IO v5 suites'
 * reference servers are started with. Applied after everything else. */
#define CONF_PING_INTERVAL 300u
#define CONF_PING_TIMEOUT 200u
#define CONF_MAX_PAYLOAD 1000000u

typedef enum opt_kind {
    K_U32,     /* uint32_t, integer in [lo, hi] */
    K_SIZE,    /* size_t, integer in [lo, hi] */
    K_BOOL,    /* int 0/1 */
    K_PATH,    /* char[size] */
    K_LISTEN,  /* listen_host + listen_port */
    K_ORIGIN,  /* cors_origins, repeatable */
    K_PARSER,  /* parser_msgpack */
    K_LOGLEVEL, /* log_level */
    K_DURABILITY, /* durability + group_commit_ms: sync | group[:MS] | none */
    K_ONOFF,   /* int 0/1 from "on" / "off" */
    K_SECRET   /* char[size], never shown in messages or --help */
} opt_kind_t;

typedef struct opt {
    const char *flag;    /* without the leading "--" */
    const char *env;     /* TABSYNC_* */
    opt_kind_t kind;
    size_t off;          /* offsetof the field in ts_dmn_config_t */
    size_t size;         /* sizeof the field (K_PATH) */
    unsigned long long lo, hi; /* K_U32 / K_SIZE range, inclusive */
    const char *unit;    /* "milliseconds", "bytes": for messages */
    const char *meta;    /* value placeholder in --help */
    const char *group;   /* --help section; starts a new one when it changes */
    const char *help;    /* one line (or two, separated by \n) */
} opt_t;

#define OFF(f) offsetof(ts_dmn_config_t, f)
#define SZ(f) sizeof(((ts_dmn_config_t *)0)->f)

static const opt_t opts[] = {
    {"listen", "TABSYNC_LISTEN", K_LISTEN, 0, 0, 0, 0, NULL, "HOST:PORT", "Listening",
     "Address to accept connections on: 127.0.0.1:3000, [::1]:3000,\n"
     "0.0.0.0:3000 (all interfaces), :3000 (= 127.0.0.1:3000).\n"
     "Port 0 picks a free port."},
    {"tls-cert", "TABSYNC_TLS_CERT", K_PATH, OFF(tls_cert), SZ(tls_cert), 0, 0, NULL, "FILE",
     "Listening", "PEM certificate chain; serve HTTPS/WSS instead of plain TCP."},
    {"tls-key", "TABSYNC_TLS_KEY", K_PATH, OFF(tls_key), SZ(tls_key), 0, 0, NULL, "FILE",
     "Listening", "PEM private key for --tls-cert (both or neither)."},

    {"io-uring", "TABSYNC_IO_URING", K_BOOL, OFF(io_uring), 0, 0, 0, NULL, NULL, "Listening",
     "Hand each loop turn's socket reads, then its writes, to the kernel\n"
     "in io_uring batches of 32 instead of a system call per socket\n"
     "(default on; --io-uring=0 turns it off). Without liburing, or where\n"
     "the kernel refuses io_uring (a sandbox, kernel.io_uring_disabled),\n"
     "each socket is read with recv and written with sendmsg."},

    {"defer-accept", "TABSYNC_DEFER_ACCEPT", K_BOOL, OFF(defer_accept), 0, 0, 0, NULL, NULL,
     "Listening",
     "Let the kernel hand a connection over once the client's first bytes\n"
     "are in (TCP_DEFER_ACCEPT), so that it is accepted and read in one\n"
     "wake-up (default on). A connection that sends nothing is handed over\n"
     "after about a second; one still silent when the node starts draining\n"
     "is reset, and its client connects again. Turn it off (--defer-accept=0)\n"
     "behind a load balancer that opens idle connections ahead of use."},

    {"ping-interval", "TABSYNC_PING_INTERVAL", K_U32, OFF(ping_interval_ms), 0, 1, MS_MAX,
     "milliseconds", "MS", "Engine.IO", "How often the server pings each client (pingInterval)."},
    {"ping-timeout", "TABSYNC_PING_TIMEOUT", K_U32, OFF(ping_timeout_ms), 0, 1, MS_MAX,
     "milliseconds", "MS", "Engine.IO",
     "How long a client may take to answer a ping before it is closed\n"
     "(pingTimeout)."},
    {"upgrade-timeout", "TABSYNC_UPGRADE_TIMEOUT", K_U32, OFF(upgrade_timeout_ms), 0, 1, MS_MAX,
     "milliseconds", "MS", "Engine.IO",
     "How long a polling-to-websocket upgrade may take before it is cancelled."},
    {"max-payload", "TABSYNC_MAX_PAYLOAD", K_SIZE, OFF(max_payload), 0, KIB, GIB, "bytes",
     "BYTES", "Engine.IO",
     "Largest message or polling request body accepted (maxPayload);\n"
     "a bigger one closes the connection."},
    {"max-send-queue", "TABSYNC_MAX_SEND_QUEUE", K_SIZE, OFF(ws_max_send_queue), 0, 64 * KIB,
     GIB, "bytes", "BYTES", "Engine.IO",
     "Bytes queued to one slow peer before it is disconnected\n"
     "(it catches up by replay when it reconnects)."},

    {"connect-timeout", "TABSYNC_CONNECT_TIMEOUT", K_U32, OFF(connect_timeout_ms), 0, 1, MS_MAX,
     "milliseconds", "MS", "Socket.IO",
     "Close a connection that has not joined any namespace after this long."},
    {"parser", "TABSYNC_PARSER", K_PARSER, 0, 0, 0, 0, NULL, "json|msgpack", "Socket.IO",
     "Packet encoding. Clients must use the same one\n"
     "(msgpack = the socket.io-msgpack-parser npm package)."},
    {"recovery-window", "TABSYNC_RECOVERY_WINDOW", K_U32, OFF(recovery_ms), 0, 0, 86400000u,
     "milliseconds", "MS", "Socket.IO",
     "Connection state recovery: how long a disconnected client may come back\n"
     "and get what it missed (maxDisconnectionDuration). 0 turns it off."},
    {"recovery-max-sessions", "TABSYNC_RECOVERY_MAX_SESSIONS", K_SIZE, OFF(recovery_max_sessions),
     0, 1, 10000000, "sessions", "N", "Socket.IO",
     "Saved sessions kept for recovery per namespace; over it the oldest go."},
    {"recovery-max-bytes", "TABSYNC_RECOVERY_MAX_BYTES", K_SIZE, OFF(recovery_max_bytes), 0, KIB,
     4096 * MIB, "bytes", "BYTES", "Socket.IO", "... and their memory per namespace."},
    {"recovery-max-per-address", "TABSYNC_RECOVERY_MAX_PER_ADDRESS", K_SIZE,
     OFF(recovery_max_per_addr), 0, 1, 10000000, "sessions", "N", "Socket.IO",
     "... and per client address (its oldest go first): a flood of abrupt\n"
     "disconnects from one address cannot push out everyone else's."},
    {"cors-origin", "TABSYNC_CORS_ORIGINS", K_ORIGIN, 0, 0, 0, 0, NULL, "ORIGIN", "Socket.IO",
     "Origin whose pages may use the polling transport cross-origin: its\n"
     "requests get CORS headers (https://app.example.com, or * for any).\n"
     "Repeat the flag for more (at most 16); the variable is comma-separated.\n"
     "None: no CORS headers: a page on another origin cannot read polling\n"
     "answers, so only pages served by tabsyncd can use polling.\n"
     "WebSocket origins are not checked: a page on any origin can connect.\n"
     "Safe while tabs authenticate with a token in the auth payload, which\n"
     "another site cannot read; no cookie authenticates (docs/SECURITY.md)."},
    {"cors-credentials", "TABSYNC_CORS_CREDENTIALS", K_BOOL, OFF(cors_credentials), 0, 0, 0,
     NULL, NULL, "Socket.IO",
     "Send Access-Control-Allow-Credentials: true to allowed origins (their\n"
     "cookies ride along; tabsyncd itself authenticates nobody by cookie)."},

    {"jwt-secret", "TABSYNC_JWT_SECRET", K_SECRET, OFF(jwt_secrets[0]), SZ(jwt_secrets[0]), 0, 0,
     NULL, "SECRET", "Authentication",
     "HS256 secret of session tokens, 32 to 512 bytes. On a command line\n"
     "other local users can read it: prefer the variable or the file."},
    {"jwt-secret-file", "TABSYNC_JWT_SECRET_FILE", K_PATH, OFF(jwt_secret_file),
     SZ(jwt_secret_file), 0, 0, NULL, "FILE", "Authentication",
     "File of HS256 secrets, one per line (at most 4, for rotation: all\n"
     "verify, the first one signs). Not together with --jwt-secret."},
    {"jwt-public-key", "TABSYNC_JWT_PUBLIC_KEY", K_PATH, OFF(jwt_public_key), SZ(jwt_public_key),
     0, 0, NULL, "FILE", "Authentication",
     "PEM public key of an identity provider that signs session tokens:\n"
     "RSA (2048 bits or more) enables RS256, EC P-256 enables ES256."},
    {"jwt-audience", "TABSYNC_JWT_AUDIENCE", K_PATH, OFF(jwt_audience), SZ(jwt_audience), 0, 0,
     NULL, "AUD", "Authentication",
     "Session tokens must carry this aud claim (unset: aud is not checked)."},
    {"jwt-issuer", "TABSYNC_JWT_ISSUER", K_PATH, OFF(jwt_issuer), SZ(jwt_issuer), 0, 0, NULL,
     "ISS", "Authentication",
     "Session tokens must carry this iss claim (unset: iss is not checked)."},
    {"jwt-leeway", "TABSYNC_JWT_LEEWAY", K_U32, OFF(jwt_leeway_s), 0, 0, TS_SESS_LEEWAY_MAX,
     "seconds", "SECONDS", "Authentication",
     "Clock skew tolerated when checking a token's exp, nbf and iat."},
    {"admin-token", "TABSYNC_ADMIN_TOKEN", K_SECRET, OFF(admin_token), SZ(admin_token), 0, 0,
     NULL, "TOKEN", "Authentication",
     "Bearer token of the admin HTTP API, 32 to 512 printable bytes.\n"
     "Unset: the admin API is off."},
    {"admin-token-file", "TABSYNC_ADMIN_TOKEN_FILE", K_PATH, OFF(admin_token_file),
     SZ(admin_token_file), 0, 0, NULL, "FILE", "Authentication",
     "File holding the admin token (surrounding whitespace is ignored)."},
    {"publisher-token", "TABSYNC_PUBLISHER_TOKEN", K_SECRET, OFF(publisher_token),
     SZ(publisher_token), 0, 0, NULL, "TOKEN", "Authentication",
     "Bearer token of the backend HTTP API (publish into a session's history,\n"
     "read or change its state), 32 to 512 printable bytes. Unset: off."},
    {"publisher-token-file", "TABSYNC_PUBLISHER_TOKEN_FILE", K_PATH, OFF(publisher_token_file),
     SZ(publisher_token_file), 0, 0, NULL, "FILE", "Authentication",
     "File holding the publisher token (surrounding whitespace is ignored)."},
    {"dev", "TABSYNC_DEV", K_BOOL, OFF(dev), 0, 0, 0, NULL, NULL, "Authentication",
     "Development mode: an HTTP endpoint mints session tokens for the demo\n"
     "page. Anyone who can reach the server gets a token: never in production."},

    {"limit-handshakes-per-ip", "TABSYNC_LIMIT_HANDSHAKES_PER_IP", K_U32,
     OFF(limit_handshakes_per_ip), 0, 0, 1000000, "handshakes per second", "N", "Limits (/session)",
     "Engine.IO handshakes per second from one address (burst the same);\n"
     "more get 429 with Retry-After. 0 = unlimited. Applies with /session on."},
    {"limit-conns-per-ip", "TABSYNC_LIMIT_CONNS_PER_IP", K_U32, OFF(limit_conns_per_ip), 0, 0,
     1000000, "connections", "N", "Limits (/session)",
     "Concurrent /session connections from one address. 0 = unlimited\n"
     "(the default: many users can share an address behind a NAT)."},
    {"limit-conns-per-user", "TABSYNC_LIMIT_CONNS_PER_USER", K_U32, OFF(limit_conns_per_user), 0,
     0, 1000000, "connections", "N", "Limits (/session)",
     "Concurrent /session connections of one user (all devices). 0 = unlimited."},
    {"limit-events-per-socket", "TABSYNC_LIMIT_EVENTS_PER_SOCKET", K_U32,
     OFF(limit_events_per_socket), 0, 0, 1000000, "events per second", "N", "Limits (/session)",
     "Events one socket may send per second (burst the same). 0 = unlimited."},
    {"limit-bytes-per-socket", "TABSYNC_LIMIT_BYTES_PER_SOCKET", K_U32,
     OFF(limit_bytes_per_socket), 0, 0, 1073741824u, "bytes per second", "BYTES",
     "Limits (/session)", "Bytes of events one socket may send per second. 0 = unlimited."},
    {"limit-events-per-user", "TABSYNC_LIMIT_EVENTS_PER_USER", K_U32,
     OFF(limit_events_per_user), 0, 0, 100000000, "events per second", "N", "Limits (/session)",
     "Events all /session sockets of one user may send per second together,\n"
     "over every connection (burst the same). 0 = ten times\n"
     "--limit-events-per-socket (unlimited when that is)."},
    {"limit-queue", "TABSYNC_LIMIT_QUEUE", K_U32, OFF(limit_queue), 0, 0, 100000, "events", "N",
     "Limits (/session)",
     "Events a socket over its rate may have waiting: they are handled at the\n"
     "rate the limits allow instead of refused. 0 = refuse at once."},
    {"limit-strikes", "TABSYNC_LIMIT_STRIKES", K_U32, OFF(limit_strikes), 0, 0, 8, "strikes",
     "N", "Limits (/session)",
     "Refused events within 10 s after which the socket is disconnected\n"
     "(1..8). 0 = never disconnect for that."},
    {"registry-ttl", "TABSYNC_REGISTRY_TTL", K_U32, OFF(registry_ttl_ms), 0, 1000, 3600000,
     "milliseconds", "MS", "Session store",
     "How long a tab stays registered without renewal (the server renews live\n"
     "tabs every third of it; a dead server's tabs expire)."},
    {"registry-sweep", "TABSYNC_REGISTRY_SWEEP", K_U32, OFF(registry_sweep_ms), 0, 10, 60000,
     "milliseconds", "MS", "Session store", "How often expired registry entries are removed."},
    {"store", "TABSYNC_STORE", K_PATH, OFF(store), SZ(store), 0, 0, NULL,
     "memory|redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]", "Session store",
     "Where registries, histories, state and leases live. memory (default):\n"
     "this process (with --store-sqlite for durability). redis://: a Redis\n"
     "server shared by every tabsyncd node of the deployment\n"
     "(docs/DEPLOYMENT.md); rediss:// with TLS; a primary found through\n"
     "Sentinel: redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/NAME."},
    {"redis-prefix", "TABSYNC_REDIS_PREFIX", K_PATH, OFF(redis_prefix), SZ(redis_prefix), 0, 0,
     NULL, "PREFIX", "Session store",
     "With --store redis://: the start of every key and channel (default ts:);\n"
     "deployments sharing one Redis use different prefixes."},
    {"redis-adapter", "TABSYNC_REDIS_ADAPTER", K_PATH, OFF(redis_adapter), SZ(redis_adapter), 0,
     0, NULL, "classic|sharded", "Session store",
     "With --store redis://: how broadcasts and server-side requests travel\n"
     "between the nodes, as npm @socket.io/redis-adapter does, so Node servers\n"
     "using it share the cluster: classic (createAdapter: PUBLISH) or\n"
     "sharded (createShardedAdapter: SPUBLISH, Redis 7; docs/REDIS-WIRE.md)."},
    {"redis-adapter-key", "TABSYNC_REDIS_ADAPTER_KEY", K_PATH, OFF(redis_adapter_key),
     SZ(redis_adapter_key), 0, 0, NULL, "KEY", "Session store",
     "The adapter's channel prefix: Node's `key` (classic) or `channelPrefix`\n"
     "(sharded). --redis-prefix does not apply to it."},
    {"redis-log-layout", "TABSYNC_REDIS_LOG_LAYOUT", K_U32, OFF(redis_log_layout), 0, 1, 2,
     "", "1|2", "Session store",
     "With --store redis://: how the session logs this node starts number\n"
     "their entries. 2 (default): a publish is one XADD (Redis 7). 1: as\n"
     "builds before 2026-12-06 do, which cannot write layout-2 logs: set it\n"
     "on upgraded nodes while such nodes remain (docs/DEPLOYMENT.md\n"
     "\"Upgrading the nodes\"). Both layouts are read and extended either way."},
    {"store-sqlite", "TABSYNC_STORE_SQLITE", K_PATH, OFF(store_sqlite), SZ(store_sqlite), 0, 0,
     NULL, "FILE", "Session store",
     "SQLite file that keeps event logs, state and lease terms across\n"
     "restarts. Default: memory only."},
    {"durability", "TABSYNC_DURABILITY", K_DURABILITY, 0, 0, 0, 0, NULL, "sync|group:MS|none",
     "Session store",
     "When a write to the SQLite file is acknowledged: sync = after its own\n"
     "fsync; group:MS = after the one fsync of everything within MS (0-1000);\n"
     "none = when written, without fsync (survives a crash of tabsyncd only)."},
    {"history", "TABSYNC_HISTORY", K_ONOFF, OFF(history), 0, 0, 0, NULL, "on|off",
     "Session history",
     "Keep each session's history and shared state (protocol v3). off: relay\n"
     "envelopes without logging them, as protocol v2 did."},
    {"state-rules", "TABSYNC_STATE_RULES", K_PATH, OFF(state_rules), SZ(state_rules), 0, 0, NULL,
     "FILE", "Session history",
     "JSON file of key path patterns -> conflict strategy (lww, version,\n"
     "counter, set); docs/CONSISTENCY.md. Default: lww everywhere."},
    {"snapshot-every", "TABSYNC_SNAPSHOT_EVERY", K_U32, OFF(snapshot_every), 0, 10, 1000000,
     "entries", "N", "Session history",
     "Snapshot a session's state every N entries of its history."},
    {"history-cache", "TABSYNC_HISTORY_CACHE", K_U32, OFF(hist_cache), 0, 1, 10000000,
     "sessions", "N", "Session history",
     "Sessions whose state each event loop keeps in memory (least recently\n"
     "used idle ones leave first; one that left is read again when used)."},
    {"history-cache-mb", "TABSYNC_HISTORY_CACHE_MB", K_U32, OFF(hist_cache_mb), 0, 1, 1048576,
     "MiB", "MB", "Session history",
     "And the bytes of their documents, per event loop."},
    {"history-retain-events", "TABSYNC_HISTORY_RETAIN_EVENTS", K_U32, OFF(retain_events), 0, 1,
     100000000u, "events", "N", "Session history",
     "Keep at least the newest N entries of each session ..."},
    {"history-retain-age", "TABSYNC_HISTORY_RETAIN_AGE", K_U32, OFF(retain_age_s), 0, 1,
     31536000u, "seconds", "SECONDS", "Session history",
     "... and every entry younger than this. Older ones are compacted into\n"
     "the snapshot: a client further behind gets the snapshot and the rest."},

    {"elect-lease", "TABSYNC_ELECT_LEASE", K_U32, OFF(elect_lease_ms), 0, 500, 60000,
     "milliseconds", "MS", "Leader election",
     "A leader's lease: without a heartbeat for this long, the backup leads.\n"
     "Leaders heartbeat every third of it."},
    {"elect-margin", "TABSYNC_ELECT_MARGIN", K_U32, OFF(elect_margin), 0, 0, 1000, "points", "N",
     "Leader election", "A candidate leads instead only when it scores this much more (of 1000)."},
    {"elect-min-tenure", "TABSYNC_ELECT_MIN_TENURE", K_U32, OFF(elect_min_tenure_ms), 0, 0,
     MS_MAX, "milliseconds", "MS", "Leader election", "No preemption of a leader before this."},
    {"elect-max-tenure", "TABSYNC_ELECT_MAX_TENURE", K_U32, OFF(elect_max_tenure_ms), 0, 0,
     MS_MAX, "milliseconds", "MS", "Leader election",
     "Hand leadership to the backup after this long (rotation). 0 = never."},
    {"elect-demote-below", "TABSYNC_ELECT_DEMOTE_BELOW", K_U32, OFF(elect_demote_below), 0, 0,
     1000, "points", "N", "Leader election",
     "A leader scoring under this yields to a better backup."},
    {"elect-weights", "TABSYNC_ELECT_WEIGHTS", K_PATH, OFF(elect_weights), SZ(elect_weights), 0,
     0, NULL, "PART=N,...", "Leader election",
     "Weights of the score: battery, connection, device, visibility, uptime\n"
     "(default battery=20,connection=30,device=15,visibility=25,uptime=10)."},
    {"elect-grant-secret", "TABSYNC_ELECT_GRANT_SECRET", K_SECRET, OFF(elect_grant_secret),
     SZ(elect_grant_secret), 0, 0, NULL, "SECRET", "Leader election",
     "HS256 key (32 to 512 bytes) signing the leader grants that backends\n"
     "verify. None: no grants (the HTTP check of terms still works)."},
    {"elect-tasks", "TABSYNC_ELECT_TASKS", K_PATH, OFF(elect_tasks), SZ(elect_tasks), 0, 0, NULL,
     "NAME[:MS],...", "Leader election",
     "Tasks of every session's election, assigned to tabs by capability;\n"
     "MS: reassigned after this long without progress (default 10000)."},

    {"http-max-header-bytes", "TABSYNC_HTTP_MAX_HEADER_BYTES", K_SIZE,
     OFF(http_max_header_bytes), 0, KIB, MIB, "bytes", "BYTES", "HTTP",
     "Request line + headers; a bigger request is answered 431."},
    {"http-max-headers", "TABSYNC_HTTP_MAX_HEADERS", K_SIZE, OFF(http_max_headers), 0, 1, 128,
     "headers", "N", "HTTP", "Header lines per request; more is answered 431."},
    {"http-request-timeout", "TABSYNC_HTTP_REQUEST_TIMEOUT", K_U32,
     OFF(http_request_timeout_ms), 0, 1, MS_MAX, "milliseconds", "MS", "HTTP",
     "Time allowed to receive a complete request (slow clients are closed)."},
    {"http-idle-timeout", "TABSYNC_HTTP_IDLE_TIMEOUT", K_U32, OFF(http_idle_timeout_ms), 0, 1,
     MS_MAX, "milliseconds", "MS", "HTTP",
     "Keep-alive: close an idle connection between requests after this long."},

    {"web", "TABSYNC_WEB", K_PATH, OFF(web_root), SZ(web_root), 0, 0, NULL, "DIR", "Web pages",
     "Serve the static files of this directory (the demo page: --web web)."},
    {"node-modules", "TABSYNC_NODE_MODULES", K_PATH, OFF(node_modules), SZ(node_modules), 0, 0,
     NULL, "DIR", "Web pages",
     "Where /vendor/ files come from: socket.io-client/dist,\n"
     "socket.io-msgpack-parser/dist and @tabsync/client/dist\n"
     "(the browser library).\n"
     "When unset and --web is set: <web>/../node_modules."},

    {"log-level", "TABSYNC_LOG_LEVEL", K_LOGLEVEL, 0, 0, 0, 0, NULL,
     "debug|info|warn|error|off", "Operation", "Least severe log record written to stderr."},
    {"workers", "TABSYNC_WORKERS", K_U32, OFF(workers), 0, 0, TS_DMN_MAX_WORKERS, "workers", "N",
     "Operation",
     "Event loops (threads), each accepting on the same port (SO_REUSEPORT);\n"
     "broadcasts reach every loop in one order. 0 = one per core."},
    {"shutdown-timeout", "TABSYNC_SHUTDOWN_TIMEOUT", K_U32, OFF(shutdown_timeout_ms), 0, 0,
     MS_MAX, "milliseconds", "MS", "Operation",
     "On SIGTERM/SIGINT, time given to clients to drain before closing.\n"
     "0 = close at once."},

    {"conformance", "TABSYNC_CONFORMANCE", K_BOOL, OFF(conformance), 0, 0, 0, NULL, NULL,
     "Testing",
     "Run as the official protocol suites expect. Overrides, after all other\n"
     "settings: ping-interval 300, ping-timeout 200, max-payload 1000000,\n"
     "recovery-window 0."},
    {"test-app", "TABSYNC_TEST_APP", K_BOOL, OFF(test_app), 0, 0, 0, NULL, NULL, "Testing",
     "Also register the namespaces used by the integration tests (tests/js)."},
};

#define N_OPTS TS_ARRAY_LEN(opts)

void ts_dmn_config_defaults(ts_dmn_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 3000;
    cfg->ping_interval_ms = 25000;
    cfg->ping_timeout_ms = 20000;
    cfg->upgrade_timeout_ms = 10000;
    cfg->connect_timeout_ms = 45000;
    cfg->max_payload = 1000000;
    cfg->n_cors_origins = 0;
    cfg->cors_credentials = 0;
    cfg->io_uring = 1;
    cfg->defer_accept = 1;
    cfg->parser_msgpack = 0;
    cfg->recovery_ms = 120000;
    cfg->recovery_max_sessions = 10000;
    cfg->recovery_max_bytes = 16 * MIB;
    cfg->recovery_max_per_addr = 1000;
    cfg->log_level = TS_LOG_INFO;
    cfg->conformance = 0;
    cfg->test_app = 0;
    cfg->http_max_header_bytes = 16384;
    cfg->http_max_headers = 64;
    cfg->http_request_timeout_ms = 10000;
    cfg->http_idle_timeout_ms = 5000;
    cfg->ws_max_send_queue = 16 * MIB;
    cfg->shutdown_timeout_ms = 10000;
    cfg->workers = 1;
    snprintf(cfg->redis_adapter, sizeof cfg->redis_adapter, "classic");
    cfg->redis_log_layout = 2;
    snprintf(cfg->redis_adapter_key, sizeof cfg->redis_adapter_key, "%s", "socket.io");
    cfg->jwt_leeway_s = TS_SESS_LEEWAY_DEFAULT;
    cfg->limit_handshakes_per_ip = 50;
    cfg->limit_queue = 1000;
    cfg->history = 1;
    cfg->durability = TS_DMN_DUR_GROUP;
    cfg->group_commit_ms = 2;
    cfg->snapshot_every = 1000;
    cfg->hist_cache = 10000;
    cfg->hist_cache_mb = 256;
    cfg->retain_events = 10000;
    cfg->retain_age_s = 86400;
    cfg->limit_conns_per_user = 100;
    cfg->limit_events_per_socket = 100;
    cfg->limit_bytes_per_socket = 1048576;
    cfg->limit_strikes = 5;
    cfg->registry_ttl_ms = 30000;
    cfg->registry_sweep_ms = 1000;
    cfg->elect_lease_ms = 3000;
    cfg->elect_margin = 100;
    cfg->elect_min_tenure_ms = 2000;
    cfg->elect_max_tenure_ms = 3600000;
    cfg->elect_demote_below = 200;
}

/* ---- error messages ---------------------------------------------------- */

typedef struct ctx {
    ts_dmn_config_t *cfg;
    char *err;
    size_t errlen;
    int flag_origins; /* set once the first --cors-origin replaced the env list */
    signed char from_env[N_OPTS]; /* who set each option last: -1 nobody, 0 flag, 1 env */
} ctx_t;

static int fail(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ctx_t *c, const char *fmt, ...) {
    if (c->err && c->errlen) {
        int n = snprintf(c->err, c->errlen, "config: ");
        if (n > 0 && (size_t)n < c->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return 2;
}

/* A value as it may appear in a one-line message: at most 60 bytes,
 * quotes, backslashes and non-printable bytes escaped. */
static const char *show(const char *v, char *buf, size_t cap) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (o + 8 >= cap) {
            snprintf(buf + o, cap - o, "...");
            return buf;
        }
        if (*p == '"' || *p == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", *p);
        else
            buf[o++] = (char)*p;
    }
    buf[o] = '\0';
    return buf;
}
#define SHOW_CAP 72

/* How the setter is named in messages: "TABSYNC_X" or "--x". */
static void where_name(const opt_t *o, int from_env, char *buf, size_t cap) {
    if (from_env)
        snprintf(buf, cap, "%s", o->env);
    else
        snprintf(buf, cap, "--%s", o->flag);
}

/* ---- value parsers ------------------------------------------------------ */

/* Parses a plain decimal integer: digits only. Returns 0 ok, -1 not a
 * number, 1 bigger than `max` (then *out is untouched). */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out) {
    if (!*s) return -1;
    unsigned long long v = 0;
    int big = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (!big) {
            unsigned d = (unsigned)(*p - '0');
            if (d > max || v > (max - d) / 10) /* max - d must not wrap (max < 9) */
                big = 1;
            else
                v = v * 10 + d;
        }
    }
    if (big) return 1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    static const char *yes[] = {"1", "true", "yes"};
    static const char *no[] = {"0", "false", "no"};
    for (size_t i = 0; i < TS_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

static int set_number(ctx_t *c, const opt_t *o, const char *wn, const char *v) {
    char sv[SHOW_CAP];
    unsigned long long n = 0;
    int rc = parse_uint(v, o->hi, &n);
    if (rc < 0)
        return fail(c, "%s=\"%s\" is not a number of %s (expected an integer %llu..%llu)", wn,
                    show(v, sv, sizeof sv), o->unit, o->lo, o->hi);
    if (rc > 0)
        return fail(c, "%s=\"%s\" is too large (expected an integer %llu..%llu %s)", wn,
                    show(v, sv, sizeof sv), o->lo, o->hi, o->unit);
    if (n < o->lo)
        return fail(c, "%s=\"%s\" is too small (expected an integer %llu..%llu %s)", wn,
                    show(v, sv, sizeof sv), o->lo, o->hi, o->unit);
    char *field = (char *)c->cfg + o->off;
    if (o->kind == K_U32) {
        uint32_t u = (uint32_t)n;
        memcpy(field, &u, sizeof u);
    } else {
        size_t z = (size_t)n;
        memcpy(field, &z, sizeof z);
    }
    return 0;
}

/* "127.0.0.1:3000", "[::1]:3000", ":3000", "localhost:3000". */
static int set_listen(ctx_t *c, const char *wn, const char *v) {
    char sv[SHOW_CAP];
    const char *colon, *host;
    size_t hostlen;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || close[1] != ':')
            return fail(c, "%s=\"%s\" is not HOST:PORT (expected e.g. [::1]:3000)", wn,
                        show(v, sv, sizeof sv));
        host = v + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (!colon)
            return fail(c,
                        "%s=\"%s\" is not HOST:PORT (expected e.g. 127.0.0.1:3000, "
                        "[::1]:3000 or :3000)",
                        wn, show(v, sv, sizeof sv));
        host = v;
        hostlen = (size_t)(colon - v);
        if (memchr(host, ':', hostlen))
            return fail(c, "%s=\"%s\" has an IPv6 host without brackets (expected e.g. [::1]:3000)",
                        wn, show(v, sv, sizeof sv));
    }
    unsigned long long port = 0;
    if (parse_uint(colon + 1, 65535, &port) != 0)
        return fail(c, "%s=\"%s\" has an invalid port (expected 0..65535; 0 picks a free port)",
                    wn, show(v, sv, sizeof sv));

    char hbuf[sizeof c->cfg->listen_host];
    if (hostlen >= sizeof hbuf)
        return fail(c, "%s=\"%s\" has an invalid host (expected an IP address)", wn,
                    show(v, sv, sizeof sv));
    memcpy(hbuf, host, hostlen);
    hbuf[hostlen] = '\0';
    unsigned char addr[16];
    if (v[0] != '[' && (hostlen == 0 || strcasecmp(hbuf, "localhost") == 0)) {
        snprintf(hbuf, sizeof hbuf, "127.0.0.1");
    } else if (v[0] == '[' ? inet_pton(AF_INET6, hbuf, addr) != 1
                           : inet_pton(AF_INET, hbuf, addr) != 1) {
        return fail(c,
                    "%s=\"%s\" has an invalid host (expected an IPv4 address, an IPv6 address "
                    "in brackets, localhost, or nothing for 127.0.0.1)",
                    wn, show(v, sv, sizeof sv));
    }
    memcpy(c->cfg->listen_host, hbuf, sizeof hbuf);
    c->cfg->listen_port = (uint16_t)port;
    return 0;
}

/* An origin is compared byte for byte with the browser's Origin header,
 * so a trailing slash or a path would silently never match: refuse it. */
static int add_origin(ctx_t *c, const char *wn, const char *v, size_t len) {
    char sv[SHOW_CAP], tmp[512];
    snprintf(tmp, sizeof tmp, "%.*s", (int)TS_MIN(len, sizeof tmp - 1), v);
    ts_dmn_config_t *cfg = c->cfg;
    if (len >= sizeof cfg->cors_origins[0])
        return fail(c, "%s: origin \"%s\" is too long (expected at most %zu bytes)", wn,
                    show(tmp, sv, sizeof sv), sizeof cfg->cors_origins[0] - 1);
    int ok = len == 1 && v[0] == '*';
    if (!ok) {
        const char *sep = strstr(tmp, "://");
        ok = sep && sep > tmp && sep[3] != '\0' && !strchr(sep + 3, '/');
        for (const char *p = tmp; ok && *p; p++)
            if (!isgraph((unsigned char)*p) || *p == ',') ok = 0;
    }
    if (!ok)
        return fail(c,
                    "%s: \"%s\" is not an origin (expected * or scheme://host[:port] "
                    "without a path, e.g. https://app.example.com)",
                    wn, show(tmp, sv, sizeof sv));
    if (cfg->n_cors_origins >= TS_DMN_MAX_ORIGINS)
        return fail(c, "%s: too many CORS origins (expected at most %d)", wn, TS_DMN_MAX_ORIGINS);
    memcpy(cfg->cors_origins[cfg->n_cors_origins], v, len);
    cfg->cors_origins[cfg->n_cors_origins][len] = '\0';
    cfg->n_cors_origins++;
    return 0;
}

static int set_origins(ctx_t *c, const char *wn, const char *v, int from_env) {
    if (from_env) {
        /* The variable is the whole list: it replaces, items are comma-separated. */
        c->cfg->n_cors_origins = 0;
        const char *p = v;
        while (*p) {
            const char *end = strchr(p, ',');
            if (!end) end = p + strlen(p);
            const char *a = p, *b = end;
            while (a < b && isspace((unsigned char)*a)) a++;
            while (b > a && isspace((unsigned char)b[-1])) b--;
            if (b > a) {
                int rc = add_origin(c, wn, a, (size_t)(b - a));
                if (rc) return rc;
            }
            p = *end ? end + 1 : end;
        }
        return 0;
    }
    /* Flags override the environment: the first --cors-origin starts a new list. */
    if (!c->flag_origins) {
        c->cfg->n_cors_origins = 0;
        c->flag_origins = 1;
    }
    return add_origin(c, wn, v, strlen(v));
}

static int apply(ctx_t *c, const opt_t *o, const char *v, int from_env) {
    char wn[64], sv[SHOW_CAP];
    where_name(o, from_env, wn, sizeof wn);
    c->from_env[o - opts] = (signed char)(from_env != 0);
    ts_dmn_config_t *cfg = c->cfg;
    switch (o->kind) {
    case K_U32:
    case K_SIZE:
        return set_number(c, o, wn, v);
    case K_BOOL: {
        int b;
        if (parse_bool(v, &b) != 0)
            return fail(c, "%s=\"%s\" is not a boolean (expected 1, 0, true, false, yes or no)",
                        wn, show(v, sv, sizeof sv));
        memcpy((char *)cfg + o->off, &b, sizeof b);
        return 0;
    }
    case K_PATH: {
        size_t len = strlen(v);
        if (len >= o->size)
            return fail(c, "%s=\"%s\" is too long (expected at most %zu bytes)", wn,
                        show(v, sv, sizeof sv), o->size - 1);
        memcpy((char *)cfg + o->off, v, len + 1);
        return 0;
    }
    case K_SECRET: {
        size_t len = strlen(v);
        if (len >= o->size)
            return fail(c, "%s is %zu bytes; at most %zu are accepted", wn, len, o->size - 1);
        memcpy((char *)cfg + o->off, v, len + 1);
        return 0;
    }
    case K_LISTEN:
        return set_listen(c, wn, v);
    case K_ORIGIN:
        return set_origins(c, wn, v, from_env);
    case K_PARSER:
        if (strcmp(v, "json") == 0)
            cfg->parser_msgpack = 0;
        else if (strcmp(v, "msgpack") == 0)
            cfg->parser_msgpack = 1;
        else
            return fail(c, "%s=\"%s\" is not a parser (expected json or msgpack)", wn,
                        show(v, sv, sizeof sv));
        return 0;
    case K_ONOFF:
        if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
            int on = v[1] == 'n';
            memcpy((char *)cfg + o->off, &on, sizeof on);
            return 0;
        }
        return fail(c, "%s=\"%s\" is not on or off", wn, show(v, sv, sizeof sv));
    case K_DURABILITY: {
        char *end = NULL;
        unsigned long ms = 2;
        if (strcmp(v, "sync") == 0)
            cfg->durability = TS_DMN_DUR_SYNC;
        else if (strcmp(v, "none") == 0)
            cfg->durability = TS_DMN_DUR_NONE;
        else if (strcmp(v, "group") == 0 ||
                 (strncmp(v, "group:", 6) == 0 && v[6] >= '0' && v[6] <= '9' &&
                  (ms = strtoul(v + 6, &end, 10), *end == '\0') && ms <= 1000))
            cfg->durability = TS_DMN_DUR_GROUP;
        else
            return fail(c,
                        "%s=\"%s\" is not a durability (expected sync, group:MS with MS "
                        "0-1000, or none)",
                        wn, show(v, sv, sizeof sv));
        cfg->group_commit_ms = (uint32_t)ms;
        return 0;
    }
    case K_LOGLEVEL:
        if (ts_log_level_parse(v, &cfg->log_level) != 0)
            return fail(c,
                        "%s=\"%s\" is not a log level (expected debug, info, warn, error or "
                        "off)",
                        wn, show(v, sv, sizeof sv));
        return 0;
    }
    return 0;
}

/* ---- sources ------------------------------------------------------------ */

static const opt_t *find_flag(const char *name, size_t len) {
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].flag) == len && memcmp(opts[i].flag, name, len) == 0) return &opts[i];
    return NULL;
}

/* Unknown TABSYNC_* variables are ignored: other components (and later
 * versions) own names in the same prefix. */
static int apply_env(ctx_t *c, char **envp) {
    if (!envp) return 0;
    for (char **e = envp; *e; e++) {
        if (strncmp(*e, "TABSYNC_", 8) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        size_t nlen = (size_t)(eq - *e);
        for (size_t i = 0; i < N_OPTS; i++) {
            if (strlen(opts[i].env) != nlen || memcmp(opts[i].env, *e, nlen) != 0) continue;
            /* An empty variable means "not set", as shells and compose files
             * often export empty values. */
            if (eq[1] == '\0') break;
            int rc = apply(c, &opts[i], eq + 1, 1);
            if (rc) return rc;
            break;
        }
    }
    return 0;
}

static int apply_argv(ctx_t *c, int argc, char **argv) {
    char sv[SHOW_CAP];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (a[0] == '-' && a[1] != '\0' && strcmp(a, "--") != 0)
                return fail(c, "unknown flag %s (see tabsyncd --help)", show(a, sv, sizeof sv));
            return fail(c,
                        "unexpected argument \"%s\" (every setting is a --flag; see tabsyncd "
                        "--help)",
                        show(a, sv, sizeof sv));
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *o = find_flag(name, nlen);
        if (!o) {
            char fl[SHOW_CAP];
            snprintf(fl, sizeof fl, "%.*s", (int)TS_MIN(nlen + 2, sizeof fl - 1), a);
            return fail(c, "unknown flag %s (see tabsyncd --help)", show(fl, sv, sizeof sv));
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (o->kind == K_BOOL) {
            v = "1";
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            v = argv[++i];
        } else {
            return fail(c, "--%s needs a value (expected --%s %s)", o->flag, o->flag, o->meta);
        }
        int rc = apply(c, o, v, 0);
        if (rc) return rc;
    }
    return 0;
}

/* The name of whoever set `flag` last ("--web" or "TABSYNC_WEB"), for
 * messages about checks that run after all sources were applied. */
static const char *setter(const ctx_t *c, const char *flag, char *buf, size_t cap) {
    const opt_t *o = find_flag(flag, strlen(flag));
    ts_assert(o != NULL);
    where_name(o, c->from_env[o - opts] == 1, buf, cap);
    return buf;
}

/* Did a flag or the environment set `flag`? */
static int was_set(const ctx_t *c, const char *flag) {
    const opt_t *o = find_flag(flag, strlen(flag));
    ts_assert(o != NULL);
    return c->from_env[o - opts] >= 0;
}

/* ---- authentication ------------------------------------------------------ */

#define SECRET_FILE_MAX 16384
#define GEN_HINT "(generate one with: openssl rand -base64 48)"

static int bad_secret_len(ctx_t *c, const char *who, size_t len, const char *what) {
    if (len < TS_DMN_SECRET_MIN)
        return fail(c, "%s is %zu bytes; a %s needs at least %d " GEN_HINT, who, len, what,
                    TS_DMN_SECRET_MIN);
    if (len > TS_DMN_SECRET_MAX)
        return fail(c, "%s is %zu bytes; a %s may have at most %d", who, len, what,
                    TS_DMN_SECRET_MAX);
    return 0;
}

/* Reads a secret file. Returns 0 with *out (free()), or 2 after fail(). */
static int read_secret_file(ctx_t *c, const char *flag, const char *path, char **out,
                            size_t *len) {
    char wn[64], sv[SHOW_CAP], why[160];
    if (ts_sess_auth_read_file(path, SECRET_FILE_MAX, out, len, why, sizeof why) != 0)
        return fail(c, "%s=\"%s\" %s", setter(c, flag, wn, sizeof wn), show(path, sv, sizeof sv),
                    why);
    if (memchr(*out, '\0', *len)) {
        free(*out);
        return fail(c, "%s=\"%s\" contains a NUL byte (expected text secrets)",
                    setter(c, flag, wn, sizeof wn), show(path, sv, sizeof sv));
    }
    return 0;
}

static int is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

static int load_jwt_secrets(ctx_t *c) {
    ts_dmn_config_t *cfg = c->cfg;
    char wn[64], wn2[64], sv[SHOW_CAP], who[160];
    if (cfg->jwt_secrets[0][0] && cfg->jwt_secret_file[0])
        return fail(c, "%s and %s are both set (use one; the file can hold several secrets)",
                    setter(c, "jwt-secret", wn, sizeof wn),
                    setter(c, "jwt-secret-file", wn2, sizeof wn2));
    if (cfg->jwt_secrets[0][0]) {
        int rc = bad_secret_len(c, setter(c, "jwt-secret", wn, sizeof wn),
                                strlen(cfg->jwt_secrets[0]), "secret");
        if (rc) return rc;
        cfg->n_jwt_secrets = 1;
        return 0;
    }
    if (!cfg->jwt_secret_file[0]) return 0;
    char *text;
    size_t len;
    int rc = read_secret_file(c, "jwt-secret-file", cfg->jwt_secret_file, &text, &len);
    if (rc) return rc;
    size_t line = 0;
    for (char *p = text; *p;) {
        char *end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        line++;
        char *a = p, *b = end;
        while (a < b && is_blank(*a)) a++;
        while (b > a && is_blank(b[-1])) b--;
        p = *end ? end + 1 : end;
        if (a == b) continue;
        snprintf(who, sizeof who, "%s=\"%s\": line %zu",
                 setter(c, "jwt-secret-file", wn, sizeof wn),
                 show(cfg->jwt_secret_file, sv, sizeof sv), line);
        if (cfg->n_jwt_secrets == TS_DMN_MAX_JWT_SECRETS) {
            rc = fail(c, "%s=\"%s\" holds more than %d secrets",
                      setter(c, "jwt-secret-file", wn, sizeof wn),
                      show(cfg->jwt_secret_file, sv, sizeof sv), TS_DMN_MAX_JWT_SECRETS);
            break;
        }
        if ((rc = bad_secret_len(c, who, (size_t)(b - a), "secret"))) break;
        memcpy(cfg->jwt_secrets[cfg->n_jwt_secrets], a, (size_t)(b - a));
        cfg->jwt_secrets[cfg->n_jwt_secrets][b - a] = '\0';
        cfg->n_jwt_secrets++;
    }
    explicit_bzero(text, len); /* our copy of a secret */
    free(text);
    if (!rc && cfg->n_jwt_secrets == 0)
        rc = fail(c, "%s=\"%s\" holds no secret (expected one per line) " GEN_HINT,
                  setter(c, "jwt-secret-file", wn, sizeof wn),
                  show(cfg->jwt_secret_file, sv, sizeof sv));
    if (rc) {
        memset(cfg->jwt_secrets, 0, sizeof cfg->jwt_secrets);
        cfg->n_jwt_secrets = 0;
    }
    return rc;
}

/* A bearer token of the HTTP API (--admin-token, --publisher-token): the
 * flag or variable `flag`, or the content of `flag`-file. */
static int load_bearer_token(ctx_t *c, const char *flag, char *token, size_t cap,
                             const char *file) {
    char wn[64], wn2[64], sv[SHOW_CAP], who[160], file_flag[40];
    snprintf(file_flag, sizeof file_flag, "%s-file", flag);
    if (token[0] && file[0])
        return fail(c, "%s and %s are both set (use one)", setter(c, flag, wn, sizeof wn),
                    setter(c, file_flag, wn2, sizeof wn2));
    if (file[0]) {
        char *text;
        size_t len;
        int rc = read_secret_file(c, file_flag, file, &text, &len);
        if (rc) return rc;
        char *a = text, *b = text + len;
        while (a < b && is_blank(*a)) a++;
        while (b > a && is_blank(b[-1])) b--;
        snprintf(who, sizeof who, "%s=\"%s\"", setter(c, file_flag, wn, sizeof wn),
                 show(file, sv, sizeof sv));
        rc = bad_secret_len(c, who, (size_t)(b - a), "token");
        if (!rc) {
            memcpy(token, a, (size_t)(b - a));
            token[b - a] = '\0';
        }
        explicit_bzero(text, len); /* our copy of a secret */
        free(text);
        if (rc) return rc;
    } else if (token[0]) {
        snprintf(who, sizeof who, "%s", setter(c, flag, wn, sizeof wn));
        int rc = bad_secret_len(c, who, strlen(token), "token");
        if (rc) return rc;
    } else {
        return 0;
    }
    /* It travels in an HTTP header (Authorization: Bearer ...). */
    for (const char *p = token; *p; p++)
        if (*p <= ' ' || *p >= 0x7f) {
            explicit_bzero(token, cap);
            return fail(c, "%s contains spaces or non-printable bytes (expected printable ASCII)",
                        who);
        }
    return 0;
}

static int load_api_tokens(ctx_t *c) {
    ts_dmn_config_t *cfg = c->cfg;
    int rc = load_bearer_token(c, "admin-token", cfg->admin_token, sizeof cfg->admin_token,
                               cfg->admin_token_file);
    if (!rc)
        rc = load_bearer_token(c, "publisher-token", cfg->publisher_token,
                               sizeof cfg->publisher_token, cfg->publisher_token_file);
    if (rc || !cfg->admin_token[0] || strcmp(cfg->admin_token, cfg->publisher_token) != 0)
        return rc;
    /* one token would open both APIs: a backend could read every registry */
    char wn[64], wn2[64];
    explicit_bzero(cfg->publisher_token, sizeof cfg->publisher_token);
    return fail(c, "%s is the same as %s (a publisher must not get the admin API: use two tokens)",
                setter(c, cfg->publisher_token_file[0] ? "publisher-token-file" : "publisher-token",
                       wn, sizeof wn),
                setter(c, cfg->admin_token_file[0] ? "admin-token-file" : "admin-token", wn2,
                       sizeof wn2));
}

static int check_public_key(ctx_t *c) {
    ts_dmn_config_t *cfg = c->cfg;
    if (!cfg->jwt_public_key[0]) return 0;
    char wn[64], sv[SHOW_CAP], why[200];
    char *pem;
    size_t len;
    if (ts_sess_auth_read_file(cfg->jwt_public_key, TS_SESS_PEM_MAX, &pem, &len, why,
                               sizeof why) != 0)
        return fail(c, "%s=\"%s\" %s", setter(c, "jwt-public-key", wn, sizeof wn),
                    show(cfg->jwt_public_key, sv, sizeof sv), why);
    int rc = ts_sess_auth_key_check(pem, len, why, sizeof why);
    free(pem);
    if (rc < 0)
        return fail(c, "%s=\"%s\" is not usable: %s", setter(c, "jwt-public-key", wn, sizeof wn),
                    show(cfg->jwt_public_key, sv, sizeof sv), why);
    return 0;
}

static int finish_auth(ctx_t *c) {
    int rc = load_jwt_secrets(c);
    if (!rc) rc = load_api_tokens(c);
    if (!rc) rc = check_public_key(c);
    return rc;
}

/* Checks across fields and against the file system, after all sources. */
static int finish(ctx_t *c) {
    ts_dmn_config_t *cfg = c->cfg;
    char sv[SHOW_CAP], wn[64], wn2[64];
    struct stat st;
    if (cfg->web_root[0] && (stat(cfg->web_root, &st) != 0 || !S_ISDIR(st.st_mode)))
        return fail(c, "%s=\"%s\" is not a directory (expected the folder of the web pages)",
                    setter(c, "web", wn, sizeof wn), show(cfg->web_root, sv, sizeof sv));
    if (cfg->node_modules[0] && (stat(cfg->node_modules, &st) != 0 || !S_ISDIR(st.st_mode)))
        return fail(c, "%s=\"%s\" is not a directory (expected the folder where npm installed "
                       "socket.io-client)",
                    setter(c, "node-modules", wn, sizeof wn),
                    show(cfg->node_modules, sv, sizeof sv));
    if (cfg->web_root[0] && !cfg->node_modules[0]) {
        /* Not checked: without it only /vendor/ answers 404. */
        int n = snprintf(cfg->node_modules, sizeof cfg->node_modules, "%s/../node_modules",
                         cfg->web_root);
        if (n < 0 || (size_t)n >= sizeof cfg->node_modules)
            return fail(c, "%s=\"%s\" is too long to derive the node_modules path from it "
                           "(set --node-modules)",
                        setter(c, "web", wn, sizeof wn), show(cfg->web_root, sv, sizeof sv));
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0])
        return fail(c, "%s is set but %s is not (TLS needs both a certificate and a key)",
                    setter(c, cfg->tls_cert[0] ? "tls-cert" : "tls-key", wn, sizeof wn),
                    setter(c, cfg->tls_cert[0] ? "tls-key" : "tls-cert", wn2, sizeof wn2));
    const char *files[] = {cfg->tls_cert, cfg->tls_key};
    const char *names[] = {"tls-cert", "tls-key"};
    for (size_t i = 0; i < 2; i++)
        if (files[i][0] && access(files[i], R_OK) != 0)
            return fail(c, "%s=\"%s\" cannot be read (expected a readable PEM file)",
                        setter(c, names[i], wn, sizeof wn), show(files[i], sv, sizeof sv));
    static const char *const schemes[] = {"redis://", "rediss://", "redis+sentinel://",
                                          "rediss+sentinel://"};
    int redis = 0;
    for (size_t i = 0; i < TS_ARRAY_LEN(schemes); i++)
        redis |= !strncmp(cfg->store, schemes[i], strlen(schemes[i]));
    if (cfg->store[0] && !redis && strcmp(cfg->store, "memory") != 0)
        return fail(c, "%s=\"%s\" is not a store (expected memory or redis://HOST:PORT)",
                    setter(c, "store", wn, sizeof wn), show(cfg->store, sv, sizeof sv));
    if (redis && cfg->store_sqlite[0])
        return fail(c, "%s is the embedded store's file; with %s the history lives in Redis "
                       "(set one of them)",
                    setter(c, "store-sqlite", wn, sizeof wn), setter(c, "store", wn2, sizeof wn2));
    if (!redis && cfg->redis_prefix[0])
        return fail(c, "%s is set but %s is not a redis:// URL",
                    setter(c, "redis-prefix", wn, sizeof wn), setter(c, "store", wn2, sizeof wn2));
    if (strcmp(cfg->redis_adapter, "classic") != 0 &&
        strcmp(cfg->redis_adapter, "sharded") != 0)
        return fail(c, "%s=\"%s\" is not an adapter format (expected classic or sharded)",
                    setter(c, "redis-adapter", wn, sizeof wn),
                    show(cfg->redis_adapter, sv, sizeof sv));
    for (const char *p = cfg->redis_adapter_key; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(c, "%s=\"%s\" has a control character (expected a channel prefix "
                           "such as socket.io)",
                        setter(c, "redis-adapter-key", wn, sizeof wn),
                        show(cfg->redis_adapter_key, sv, sizeof sv));
    if (!cfg->redis_adapter_key[0])
        return fail(c, "%s is empty (expected a channel prefix such as socket.io)",
                    setter(c, "redis-adapter-key", wn, sizeof wn));
    const char *adapter_flags[] = {"redis-adapter", "redis-adapter-key", "redis-log-layout"};
    for (size_t i = 0; i < TS_ARRAY_LEN(adapter_flags); i++)
        if (!redis && was_set(c, adapter_flags[i]))
            return fail(c, "%s is set but %s is not a redis:// URL",
                        setter(c, adapter_flags[i], wn, sizeof wn),
                        setter(c, "store", wn2, sizeof wn2));
    int rc = finish_auth(c);
    if (rc) return rc;
    if (cfg->conformance) {
        cfg->ping_interval_ms = CONF_PING_INTERVAL;
        cfg->ping_timeout_ms = CONF_PING_TIMEOUT;
        cfg->max_payload = CONF_MAX_PAYLOAD;
        cfg->recovery_ms = 0;
    }
    return 0;
}

int ts_dmn_config_parse(ts_dmn_config_t *cfg, int argc, char **argv, char **envp, char *err,
                        size_t errlen) {
    if (err && errlen) err[0] = '\0';
    /* --help and --version win over any bad setting: a person asking for
     * help must get it even with a broken environment. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(ts_dmn_config_usage(), stdout);
            fflush(stdout);
            return 1;
        }
        if (strcmp(argv[i], "--version") == 0) {
            puts("tabsyncd " TS_DMN_VERSION);
            fflush(stdout);
            return 1;
        }
    }
    ctx_t c = {.cfg = cfg, .err = err, .errlen = errlen};
    memset(c.from_env, -1, sizeof c.from_env);
    int rc = apply_env(&c, envp);
    if (!rc) rc = apply_argv(&c, argc, argv);
    if (!rc) rc = finish(&c);
    return rc;
}

/* ---- --help ------------------------------------------------------------- */

static void default_text(const opt_t *o, const ts_dmn_config_t *d, char *buf, size_t cap) {
    const char *field = (const char *)d + o->off;
    switch (o->kind) {
    case K_U32: {
        uint32_t u;
        memcpy(&u, field, sizeof u);
        snprintf(buf, cap, "%u", u);
        break;
    }
    case K_SIZE: {
        size_t z;
        memcpy(&z, field, sizeof z);
        snprintf(buf, cap, "%zu", z);
        break;
    }
    case K_BOOL:
        snprintf(buf, cap, "off");
        break;
    case K_PATH:
        snprintf(buf, cap, "%s", field[0] ? field : "none");
        break;
    case K_SECRET:
        snprintf(buf, cap, "none");
        break;
    case K_LISTEN:
        snprintf(buf, cap, "%.40s:%u", d->listen_host, d->listen_port);
        break;
    case K_ORIGIN:
        snprintf(buf, cap, "none");
        break;
    case K_PARSER:
        snprintf(buf, cap, "%s", d->parser_msgpack ? "msgpack" : "json");
        break;
    case K_LOGLEVEL:
        snprintf(buf, cap, "info");
        break;
    case K_ONOFF:
        snprintf(buf, cap, "on");
        break;
    case K_DURABILITY:
        snprintf(buf, cap, "group:%u", d->group_commit_ms);
        break;
    }
}

/* "16 MiB" for exact multiples of KiB/MiB/GiB, else "". */
static void human_size(unsigned long long n, char *buf, size_t cap) {
    if (n >= GIB && n % GIB == 0)
        snprintf(buf, cap, "%llu GiB", n / GIB);
    else if (n >= MIB && n % MIB == 0)
        snprintf(buf, cap, "%llu MiB", n / MIB);
    else if (n >= KIB && n % KIB == 0)
        snprintf(buf, cap, "%llu KiB", n / KIB);
    else
        buf[0] = '\0';
}

static void usage_append(char *buf, size_t cap, size_t *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void usage_append(char *buf, size_t cap, size_t *o, const char *fmt, ...) {
    if (*o >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (n > 0) *o = TS_MIN(cap, *o + (size_t)n);
}

const char *ts_dmn_config_usage(void) {
    static char text[32768]; /* 14 KiB in use (issue #14); usage_append stops at the end */
    if (text[0]) return text;
    size_t o = 0, cap = sizeof text;
    ts_dmn_config_t d;
    ts_dmn_config_defaults(&d);
    usage_append(
        text, cap, &o,
        "Usage: tabsyncd [--flag VALUE | --flag=VALUE]...\n"
        "\n"
        "tabsyncd is a Socket.IO v5 / Engine.IO v4 server for keeping browser tabs and\n"
        "devices in sync. Each setting has a flag and a TABSYNC_* environment variable;\n"
        "defaults are overridden by the environment, which flags override.\n"
        "Durations are integer milliseconds, sizes integer bytes. Switches are bare\n"
        "flags (--conformance) or --flag=true|false; in the environment they take\n"
        "1/0, true/false or yes/no. An empty variable counts as unset.\n");
    const char *group = NULL;
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_t *op = &opts[i];
        if (!group || strcmp(group, op->group) != 0) {
            group = op->group;
            usage_append(text, cap, &o, "\n%s:\n", group);
        }
        char head[96], def[64], range[96] = "";
        snprintf(head, sizeof head, "--%s%s%s", op->flag, op->meta ? " " : "",
                 op->meta ? op->meta : "");
        default_text(op, &d, def, sizeof def);
        if (op->kind == K_SIZE && strcmp(op->unit, "bytes") == 0) {
            char lo[40], hi[40];
            human_size(op->lo, lo, sizeof lo);
            human_size(op->hi, hi, sizeof hi);
            snprintf(range, sizeof range, ", range %llu..%llu (%s..%s)", op->lo, op->hi, lo, hi);
            char human[40];
            human_size(strtoull(def, NULL, 10), human, sizeof human);
            if (human[0]) snprintf(def + strlen(def), sizeof def - strlen(def), " (%s)", human);
        } else if (op->kind == K_U32 || op->kind == K_SIZE) {
            snprintf(range, sizeof range, ", range %llu..%llu", op->lo, op->hi);
        }
        usage_append(text, cap, &o, "  %-38s %s\n", head, op->env);
        for (const char *line = op->help; *line;) {
            const char *nl = strchr(line, '\n');
            int len = (int)(nl ? (size_t)(nl - line) : strlen(line));
            usage_append(text, cap, &o, "      %.*s\n", len, line);
            line += len + (nl ? 1 : 0);
        }
        usage_append(text, cap, &o, "      default %s%s\n", def, range);
    }
    usage_append(text, cap, &o,
                 "\nOther:\n"
                 "  --help, -h                         print this text and exit\n"
                 "  --version                          print \"tabsyncd " TS_DMN_VERSION
                 "\" and exit\n"
                 "\nExit status: 0 after --help/--version, 2 on a bad setting (the message\n"
                 "says which one), 1 when the server fails at run time.\n"
                 "Example: tabsyncd --listen :3000 --web web --cors-origin "
                 "https://app.example.com\n");
    return text;
}
