/* store.c - the backend-independent part of the store interface: argument
 * checks every backend shares (so all refuse the same inputs the same way)
 * and opening/closing through the ops table. */
#include "store/ts_store.h"

#include <stdio.h>

int ts_store__check_id(ts_slice_t id) {
    if (id.len == 0 || id.len > TS_STORE_ID_MAX || !id.p) return TS_EINVAL;
    for (size_t i = 0; i < id.len; i++)
        if (id.p[i] < 0x20 || id.p[i] == 0x7f) return TS_EINVAL;
    return 0;
}

int ts_store__check_key(const ts_store_reg_key_t *k) {
    if (!k) return TS_EINVAL;
    int rc = ts_store__check_id(k->session);
    if (!rc) rc = ts_store__check_id(k->device);
    if (!rc) rc = ts_store__check_id(k->tab);
    return rc;
}

int ts_store__check_ttl(uint64_t ttl_ms) {
    return ttl_ms == 0 || ttl_ms > TS_STORE_TTL_MAX ? TS_EINVAL : 0;
}

int ts_store_open(ts_store_t *st, const ts_store_ops_t *ops, const ts_store_cfg_t *cfg,
                  struct uv_loop_s *loop, char *err, size_t errlen) {
    st->ops = ops;
    st->self = NULL;
    if (err && errlen) err[0] = '\0';
    if (!ops || !cfg || !loop) {
        if (err && errlen) snprintf(err, errlen, "store: missing backend, config or loop");
        return TS_EINVAL;
    }
    void *self = NULL;
    int rc = ops->open(&self, cfg, loop, err, errlen);
    if (rc) return rc;
    st->self = self;
    return 0;
}

int ts_store_close(ts_store_t *st, ts_store_close_cb cb, void *ud) {
    if (!st->self) return TS_ECLOSED;
    void *self = st->self;
    st->self = NULL; /* every wrapper now answers TS_ECLOSED */
    st->ops->close(self, cb, ud);
    return 0;
}

int ts_store_attach(ts_store_t *out, ts_store_t *st, struct uv_loop_s *loop) {
    out->ops = st->ops;
    out->self = NULL;
    if (!st->self) return TS_ECLOSED;
    if (!st->ops->attach || !loop) return TS_EINVAL;
    return st->ops->attach(st->self, loop, &out->self);
}
