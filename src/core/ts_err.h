/* ts_err.h - the one table of tabsync error codes.
 * System errors pass through as libuv's negative values; ours live in
 * -1000..-1999, grouped by hundreds (protocol, limits, auth, store). */
#ifndef TS_ERR_H
#define TS_ERR_H

#define TS_ERRNO_MAP(X)                                                        \
    X(EINTERNAL, -1000, "internal error")                                      \
    X(ENOMEM, -1001, "out of memory")                                          \
    X(EINVAL, -1002, "invalid argument")                                       \
    X(ECLOSED, -1003, "object is closed")                                      \
    X(EPROTO, -1100, "malformed protocol data")                                \
    X(ETOOBIG, -1101, "message exceeds the configured limit")                  \
    X(EUTF8, -1102, "invalid UTF-8 in a text message")                         \
    X(EJSON, -1103, "invalid JSON")                                            \
    X(EVERSION, -1104, "unsupported protocol version")                         \
    X(ENOTFOUND, -1105, "no such session or namespace")                        \
    X(ESTATE, -1106, "request not valid in the current state")                 \
    X(ELIMIT, -1107, "limit exceeded")                                         \
    X(ETIMEDOUT, -1108, "timed out")                                           \
    X(EBACKPRESSURE, -1109, "peer is not reading fast enough")                 \
    X(EAUTH, -1200, "authentication failed")                                   \
    X(EFORBIDDEN, -1201, "forbidden")                                          \
    X(ETHROTTLED, -1300, "rate limit exceeded; retry later")                   \
    X(ECIRCUIT, -1301, "dependency unavailable (circuit open); retry later")   \
    X(ESTORE, -1400, "store unavailable")                                      \
    X(ESTALE, -1401, "stale leader term")                                      \
    X(ECONFLICT, -1402, "version conflict")                                    \
    X(EHELD, -1403, "lease held by another holder")                            \
    X(EDUP, -1404, "mutation already applied")                                 \
    X(ETOOOLD, -1405, "mutation older than the remembered window")

enum ts_err {
#define TS_ERR_ENUM_(name, code, msg) TS_##name = (code),
    TS_ERRNO_MAP(TS_ERR_ENUM_)
#undef TS_ERR_ENUM_
};

/* Message for humans; also understands libuv/errno codes. Never NULL. */
const char *ts_strerror(int err);
/* "TS_EPROTO" (or libuv's "ECONNRESET"), for logs and tests. Never NULL. */
const char *ts_err_name(int err);

#endif
