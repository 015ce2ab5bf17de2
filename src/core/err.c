/* err.c - names and messages for the TS_E* table; anything outside our
 * range is handed to libuv, which knows errno and its own codes. */
#include "core/ts_err.h"

#include <uv.h>

const char *ts_strerror(int err) {
    switch (err) {
#define TS_ERR_MSG_(name, code, msg)                                           \
    case code:                                                                 \
        return msg;
        TS_ERRNO_MAP(TS_ERR_MSG_)
#undef TS_ERR_MSG_
    case 0:
        return "success";
    default:
        return uv_strerror(err);
    }
}

const char *ts_err_name(int err) {
    switch (err) {
#define TS_ERR_NAME_(name, code, msg)                                          \
    case code:                                                                 \
        return "TS_" #name;
        TS_ERRNO_MAP(TS_ERR_NAME_)
#undef TS_ERR_NAME_
    case 0:
        return "OK";
    default:
        return uv_err_name(err);
    }
}
