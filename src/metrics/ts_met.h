/* ts_met.h - counters and gauges, rendered as Prometheus text at /metrics.
 * A fixed table (X-macros) rather than a registry: bumping a metric is one
 * add on a known address, which the hot paths can afford. Each thread (one
 * per event loop) has its own table, so bumps never contend or need atomic
 * instructions; /metrics sums the tables of every registered thread. */
#ifndef TS_MET_H
#define TS_MET_H
#include <stdint.h>

#include "core/ts_buf.h"

/* X(ID, "metric_name", "help") - monotonically increasing counters. */
#define TS_MET_COUNTERS(X)                                                                 \
    X(TCP_ACCEPTED, "tabsync_tcp_accepted_total", "TCP connections accepted")             \
    X(TCP_SHED, "tabsync_tcp_shed_total",                                                 \
      "connections closed as accepted: the process was out of file descriptors")          \
    X(HTTP_REQUESTS, "tabsync_http_requests_total", "HTTP requests parsed")               \
    X(BYTES_IN, "tabsync_bytes_received_total", "bytes read from sockets")                \
    X(BYTES_OUT, "tabsync_bytes_sent_total", "bytes written to sockets")                  \
    X(WRITES, "tabsync_socket_writes_total",                                              \
      "socket writes, one per connection per loop turn (writev calls, or sends in an io_uring batch)") \
    X(URING_SUBMITS, "tabsync_io_uring_submits_total",                                   \
      "io_uring_enter calls that carried a loop turn's writes (--io-uring)")               \
    X(WS_UPGRADES, "tabsync_ws_upgrades_total", "WebSocket handshakes completed")         \
    X(EIO_SESSIONS, "tabsync_eio_sessions_total", "Engine.IO sessions opened")            \
    X(EIO_UPGRADES, "tabsync_eio_upgrades_total", "Engine.IO polling->websocket upgrades") \
    X(EIO_PACKETS_IN, "tabsync_eio_packets_received_total", "Engine.IO packets received") \
    X(EIO_PACKETS_OUT, "tabsync_eio_packets_sent_total", "Engine.IO packets sent")        \
    X(SIO_CONNECTS, "tabsync_sio_connects_total", "Socket.IO namespace connections")      \
    X(SIO_PACKETS_IN, "tabsync_sio_packets_received_total", "Socket.IO packets received") \
    X(SIO_PACKETS_OUT, "tabsync_sio_packets_sent_total",                                  \
      "Socket.IO packets sent (a broadcast counts once per recipient)")                    \
    X(SIO_BROADCASTS, "tabsync_sio_broadcasts_total", "broadcasts encoded (once each)")   \
    X(SIO_REMOTE_SENT, "tabsync_sio_remote_sent_total", "broadcasts sent to the other nodes") \
    X(SIO_REMOTE_SEND_FAILED, "tabsync_sio_remote_send_failed_total",                     \
      "broadcasts that could not be sent to the other nodes")                              \
    X(SIO_REMOTE_RECEIVED, "tabsync_sio_remote_received_total",                           \
      "broadcasts of other nodes delivered here")                                          \
    X(SIO_REMOTE_BAD, "tabsync_sio_remote_bad_total",                                     \
      "messages of other nodes that could not be read")                                    \
    X(SIO_REMOTE_SKIPPED, "tabsync_sio_remote_skipped_total",                             \
      "broadcasts of other nodes to rooms with nobody here, dropped before decoding")      \
    X(SIO_RECOVERED, "tabsync_sio_recovered_total", "connections restored by recovery") \
    X(SIO_SAVED_DROPPED, "tabsync_sio_saved_dropped_total",                               \
      "saved recovery sessions dropped early: the count or byte bound (oldest first)")     \
    X(SIO_SAVED_DROPPED_ADDR, "tabsync_sio_saved_dropped_address_total",                  \
      "saved recovery sessions dropped early: one address's bound (its oldest first)")     \
    X(LOOP_HANDOFFS, "tabsync_loop_handoffs_total",                                       \
      "connections moved to the loop that holds their Engine.IO session")                  \
    X(SEND_COALESCED, "tabsync_send_coalesced_total",                                     \
      "queued packets replaced by a newer one with the same coalesce key (latest wins)")   \
    X(SEND_REORDERED, "tabsync_send_reordered_total",                                     \
      "packets queued ahead of others of a later delivery class")

/* X(ID, "metric_name", "help") - values that go up and down. */
#define TS_MET_GAUGES(X)                                                                   \
    X(TCP_OPEN, "tabsync_tcp_connections", "open TCP connections")                        \
    X(EIO_OPEN, "tabsync_eio_sessions", "open Engine.IO sessions")                        \
    X(EIO_OPEN_WS, "tabsync_eio_sessions_websocket", "open Engine.IO sessions on websocket") \
    X(SIO_SOCKETS, "tabsync_sio_sockets", "connected Socket.IO namespace sockets")        \
    X(SIO_SAVED, "tabsync_sio_saved_sessions", "saved recovery sessions (every namespace)") \
    X(SIO_SAVED_BYTES, "tabsync_sio_saved_bytes", "memory of the saved recovery sessions") \
    X(SEND_QUEUE_BYTES, "tabsync_send_queue_bytes", "bytes queued for sending, all peers")

/* X(ID, "kind") - tabsync_errors_total{kind="..."}: every refusal of peer input. */
#define TS_MET_ERRORS(X)                                                                   \
    X(HTTP_BAD_REQUEST, "http_bad_request")                                               \
    X(HTTP_TOO_LARGE, "http_too_large")                                                   \
    X(HTTP_TIMEOUT, "http_timeout")                                                       \
    X(WS_PROTOCOL, "ws_protocol")                                                         \
    X(WS_TOO_BIG, "ws_too_big")                                                           \
    X(WS_UTF8, "ws_utf8")                                                                 \
    X(WS_HANDSHAKE, "ws_handshake")                                                       \
    X(SLOW_CONSUMER, "slow_consumer")                                                     \
    X(EIO_BAD_REQUEST, "eio_bad_request")                                                 \
    X(CORS_ORIGIN, "cors_origin") /* a request from an origin --cors-origin does not allow */ \
    X(EIO_PARSE, "eio_parse")                                                             \
    X(EIO_PING_TIMEOUT, "eio_ping_timeout")                                               \
    X(EIO_TOO_LARGE, "eio_too_large")                                                     \
    X(SIO_PARSE, "sio_parse")                                                             \
    X(SIO_BAD_NAMESPACE, "sio_bad_namespace")                                             \
    X(SIO_CONNECT_REFUSED, "sio_connect_refused")                                        \
    X(SIO_CONNECT_FLOOD, "sio_connect_flood")

enum ts_met_counter_id {
#define TS_MET_ENUM_(id, name, help) TS_MET_##id,
    TS_MET_COUNTERS(TS_MET_ENUM_) TS_MET_NCOUNTERS
};
enum ts_met_gauge_id { TS_MET_GAUGES(TS_MET_ENUM_) TS_MET_NGAUGES };
#undef TS_MET_ENUM_
enum ts_met_error_id {
#define TS_MET_ERR_ENUM_(id, kind) TS_MET_ERR_##id,
    TS_MET_ERRORS(TS_MET_ERR_ENUM_) TS_MET_NERRORS
#undef TS_MET_ERR_ENUM_
};

typedef struct ts_met {
    uint64_t counters[TS_MET_NCOUNTERS];
    int64_t gauges[TS_MET_NGAUGES];
    uint64_t errors[TS_MET_NERRORS];
} ts_met_t;

/* This thread's table. */
extern _Thread_local ts_met_t ts_met;

/* Adds this thread's table to what ts_met_render sums (the main thread's is
 * registered at startup by the daemon; each loop thread registers itself). */
void ts_met_thread_register(void);
/* Before a registered thread exits: its counts are kept (folded into a
 * total of finished threads), its gauges dropped. */
void ts_met_thread_unregister(void);
/* The sum over every registered thread (and finished ones' counters). */
void ts_met_snapshot(ts_met_t *out);

/* Only the owning thread writes a table, so a bump is a plain load and
 * store (no lock prefix); both are relaxed atomics because /metrics reads
 * the table from another thread. */
#define TS_MET_BUMP_(field, n)                                                     \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), \
                     __ATOMIC_RELAXED)
#define TS_MET_ADD(id, n) TS_MET_BUMP_(ts_met.counters[TS_MET_##id], (uint64_t)(n))
#define TS_MET_INC(id) TS_MET_ADD(id, 1)
#define TS_MET_GAUGE_ADD(id, n) TS_MET_BUMP_(ts_met.gauges[TS_MET_##id], (int64_t)(n))
#define TS_MET_ERR(id) TS_MET_BUMP_(ts_met.errors[TS_MET_ERR_##id], 1)

/* Appends the Prometheus text exposition (version 0.0.4) of every metric,
 * summed over threads. */
void ts_met_render(ts_sbuf_t *out);

#endif
