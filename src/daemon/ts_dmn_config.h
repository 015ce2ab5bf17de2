/* ts_dmn_config.h - tabsyncd configuration: defaults, then TABSYNC_*
 * environment variables, then command-line flags (later wins). Every bad
 * value is a one-line message saying what, where and what was expected. */
#ifndef TS_DMN_CONFIG_H
#define TS_DMN_CONFIG_H
#include <stddef.h>
#include <stdint.h>

#include "core/ts_log.h"

#define TS_DMN_MAX_ORIGINS 16
#define TS_DMN_MAX_WORKERS 64
#define TS_DMN_MAX_JWT_SECRETS 4 /* = TS_SESS_MAX_SECRETS (session/ts_sess_auth.h) */
#define TS_DMN_SECRET_MAX 512    /* bytes; = TS_SESS_SECRET_MAX */
#define TS_DMN_SECRET_MIN 32     /* bytes; shorter secrets are refused at startup */

typedef enum ts_dmn_durability {
    TS_DMN_DUR_GROUP = 0,
    TS_DMN_DUR_SYNC,
    TS_DMN_DUR_NONE,
} ts_dmn_durability_t;

typedef struct ts_dmn_config {
    char listen_host[64];      /* --listen HOST:PORT, TABSYNC_LISTEN; default 127.0.0.1 */
    uint16_t listen_port;      /* default 3000; 0 = pick a free port */
    uint32_t ping_interval_ms; /* --ping-interval, TABSYNC_PING_INTERVAL; default 25000 */
    uint32_t ping_timeout_ms;  /* --ping-timeout, TABSYNC_PING_TIMEOUT; default 20000 */
    uint32_t upgrade_timeout_ms; /* --upgrade-timeout; default 10000 */
    uint32_t connect_timeout_ms; /* --connect-timeout (no namespace joined); default 45000 */
    size_t max_payload;        /* --max-payload, TABSYNC_MAX_PAYLOAD; bytes; default 1000000 */
    char cors_origins[TS_DMN_MAX_ORIGINS][256]; /* --cors-origin (repeatable, or
                                  comma-separated in TABSYNC_CORS_ORIGINS); "*" = any */
    size_t n_cors_origins;     /* 0 = no CORS headers at all (Node's default) */
    int cors_credentials;      /* --cors-credentials; default 0 */
    int io_uring;              /* --io-uring: a loop turn's reads and writes in io_uring batches; default 1 */
    int defer_accept;          /* --defer-accept: accept a connection once its first bytes are in; default 1 */
    int parser_msgpack;        /* --parser json|msgpack, TABSYNC_PARSER; default json */
    uint32_t recovery_ms;      /* --recovery-window MS, TABSYNC_RECOVERY_WINDOW; default
                                  120000; 0 = connection state recovery off */
    size_t recovery_max_sessions; /* --recovery-max-sessions: default 10000 */
    size_t recovery_max_bytes;    /* --recovery-max-bytes: default 16 MiB */
    size_t recovery_max_per_addr; /* --recovery-max-per-address: default 1000 */
    ts_log_level_t log_level;  /* --log-level, TABSYNC_LOG_LEVEL; default info */
    char web_root[512];        /* --web DIR, TABSYNC_WEB; static files; "" = none */
    char node_modules[512];    /* --node-modules DIR, TABSYNC_NODE_MODULES: where
                                  /vendor/socket.io.min.js comes from; default
                                  "<web>/../node_modules" */
    int conformance;           /* --conformance: the official suites' server setup */
    int test_app;              /* --test-app: namespaces used by tests/js */
    /* HTTP limits and timeouts (net) */
    size_t http_max_header_bytes; /* --http-max-header-bytes; default 16384 */
    size_t http_max_headers;      /* --http-max-headers; default 64 */
    uint32_t http_request_timeout_ms; /* --http-request-timeout; default 10000 */
    uint32_t http_idle_timeout_ms;    /* --http-idle-timeout (keep-alive); default 5000 */
    size_t ws_max_send_queue;     /* --max-send-queue: bytes queued to one peer
                                     before it is cut off; default 16 MB */
    uint32_t shutdown_timeout_ms; /* --shutdown-timeout: drain time on SIGTERM; default 10000 */
    uint32_t workers;          /* --workers N, TABSYNC_WORKERS: event loops (threads);
                                  0 = one per core; default 1 */
    char tls_cert[512];        /* --tls-cert FILE, TABSYNC_TLS_CERT; "" = plain TCP */
    char tls_key[512];         /* --tls-key FILE, TABSYNC_TLS_KEY */
    /* Authentication (docs/SECURITY.md). Secrets are never logged and never
     * appear in error messages. */
    char jwt_secrets[TS_DMN_MAX_JWT_SECRETS][TS_DMN_SECRET_MAX + 1]; /* HS256 secrets:
                                  --jwt-secret / TABSYNC_JWT_SECRET (one), or the
                                  lines of --jwt-secret-file; the first one mints */
    size_t n_jwt_secrets;      /* 0 = HS256 off */
    char jwt_secret_file[512]; /* --jwt-secret-file, TABSYNC_JWT_SECRET_FILE */
    char jwt_public_key[512];  /* --jwt-public-key FILE, TABSYNC_JWT_PUBLIC_KEY: PEM
                                  (RSA -> RS256, EC P-256 -> ES256); checked at parse */
    char jwt_audience[256];    /* --jwt-audience; "" = aud not checked */
    char jwt_issuer[256];      /* --jwt-issuer; "" = iss not checked */
    uint32_t jwt_leeway_s;     /* --jwt-leeway SECONDS; default 30, 0..300 */
    char admin_token[TS_DMN_SECRET_MAX + 1]; /* --admin-token / TABSYNC_ADMIN_TOKEN, or
                                  the content of --admin-token-file; "" = admin API off */
    char admin_token_file[512]; /* --admin-token-file, TABSYNC_ADMIN_TOKEN_FILE */
    char publisher_token[TS_DMN_SECRET_MAX + 1]; /* --publisher-token /
                                  TABSYNC_PUBLISHER_TOKEN, or the content of
                                  --publisher-token-file; "" = backend API off;
                                  never equal to admin_token */
    char publisher_token_file[512]; /* --publisher-token-file, TABSYNC_PUBLISHER_TOKEN_FILE */
    int dev;                   /* --dev, TABSYNC_DEV: development token endpoint; default 0 */
    /* Limits of the /session namespace (docs/SECURITY.md); 0 = unlimited */
    uint32_t limit_handshakes_per_ip; /* --limit-handshakes-per-ip: per second; default 50 */
    uint32_t limit_conns_per_ip;      /* --limit-conns-per-ip: default 0 (NATs share addresses) */
    uint32_t limit_conns_per_user;    /* --limit-conns-per-user: default 100 */
    uint32_t limit_events_per_socket; /* --limit-events-per-socket: per second; default 100 */
    uint32_t limit_bytes_per_socket;  /* --limit-bytes-per-socket: per second; default 1 MiB */
    uint32_t limit_events_per_user;   /* --limit-events-per-user: per second, all of a user's
                                         sockets; default 0 = 10 x limit_events_per_socket */
    uint32_t limit_queue;             /* --limit-queue: events waiting per socket over its
                                         rate (slowed down, not refused); default 1000 */
    uint32_t limit_strikes;           /* --limit-strikes: refusals in 10 s before a disconnect;
                                         default 5 */
    /* The session store */
    uint32_t registry_ttl_ms;   /* --registry-ttl: default 30000 */
    uint32_t registry_sweep_ms; /* --registry-sweep: default 1000 */
    char store_sqlite[512];     /* --store-sqlite FILE: durable log/state; "" = memory only */
    char store[512];            /* --store memory|redis://...: the backend; "" = memory */
    char redis_prefix[65];      /* --redis-prefix P: keys and channels; "" = "ts:" */
    char redis_adapter[16];     /* --redis-adapter classic|sharded: the wire format between
                                   nodes (@socket.io/redis-adapter); default "classic" */
    char redis_adapter_key[64]; /* --redis-adapter-key KEY: its channel prefix (Node's key /
                                   channelPrefix); default "socket.io" */
    uint32_t redis_log_layout;  /* --redis-log-layout 1|2: the stream ids of the session logs
                                   this node starts; default 2 (1: a rolling upgrade) */
    ts_dmn_durability_t durability; /* --durability sync|group:MS|none; default group:2 */
    uint32_t group_commit_ms;   /* the MS of group:MS */
    /* The session history (protocol v3; docs/CONSISTENCY.md) */
    int history;                /* --history on|off; default on */
    char state_rules[512];      /* --state-rules FILE; "" = lww everywhere */
    uint32_t snapshot_every;    /* --snapshot-every N entries; default 1000 */
    uint32_t hist_cache;        /* --history-cache N sessions per loop; default 10000 */
    uint32_t hist_cache_mb;     /* --history-cache-mb MB of their documents per loop; default 256 */
    uint32_t retain_events;     /* --history-retain-events N; default 10000 */
    uint32_t retain_age_s;      /* --history-retain-age SECONDS; default 86400 */
    /* Leader election (docs/ELECTION.md) */
    uint32_t elect_lease_ms;      /* --elect-lease MS; default 3000 */
    uint32_t elect_margin;        /* --elect-margin N; default 100 */
    uint32_t elect_min_tenure_ms; /* --elect-min-tenure MS; default 2000 */
    uint32_t elect_max_tenure_ms; /* --elect-max-tenure MS; default 3600000, 0 = never */
    uint32_t elect_demote_below;  /* --elect-demote-below N; default 200 */
    char elect_weights[160];      /* --elect-weights battery=20,...; "" = the defaults */
    char elect_grant_secret[513]; /* --elect-grant-secret: HS256 key of leader grants */
    char elect_tasks[1024];       /* --elect-tasks name[:stall_ms],... */
} ts_dmn_config_t;

/* Fills `cfg` with the defaults. */
void ts_dmn_config_defaults(ts_dmn_config_t *cfg);
/* Applies `envp` (TABSYNC_* only), then argv[1..argc). Returns 0; 1 if
 * --help or --version was handled (text already printed on stdout, exit 0);
 * or 2 on a usage error (the message is in `err`, one line). */
int ts_dmn_config_parse(ts_dmn_config_t *cfg, int argc, char **argv, char **envp, char *err,
                        size_t errlen);
/* The --help text. */
const char *ts_dmn_config_usage(void);

#endif
