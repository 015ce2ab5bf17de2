/* rmsg_int.h - private to the wire format (rmsg.c, rfast.c): the fast paths
 * the codec tries before its jansson tree. */
#ifndef TS_ADP_RMSG_INT_H
#define TS_ADP_RMSG_INT_H
#include "adapter/ts_adp_rmsg.h"

/* The message of a plain broadcast (no acks, no binary) whose data is the
 * canonical text `data_json` (borrowed), as the tree path would write it:
 * msgpack for the classic format, JSON text for the sharded one. Returns 0
 * with *bytes (returns new), or TS_EINVAL (nothing made): the text is not
 * canonical or has what only the tree path handles. */
int ts_adp__rmsg_fast_broadcast(ts_adp_rmsg_format_t format, const char *uid, const char *nsp,
                                ts_slice_t data_json, const ts_adp_rmsg_opts_t *opts,
                                ts_buf_t **bytes);

/* Reads a plain broadcast (classic msgpack or sharded JSON) without a tree:
 * fills uid, nsp (sharded), kind, has_opts, opts, msgpack and the packet,
 * its data as canonical text in packet.data_text (packet.data NULL).
 * Returns 0, or TS_EINVAL with *m zeroed for anything else (the tree path
 * then reads it, and judges it). The channel is the caller's to check. */
int ts_adp__rmsg_fast_decode(ts_adp_rmsg_format_t format, ts_slice_t bytes, ts_adp_rmsg_t *m);

#endif
