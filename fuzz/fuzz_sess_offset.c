/* fuzz_sess_offset.c - libFuzzer driver for the recovery offset reader
 * (ts_sess_offset_parse): what a stock client presents when it reconnects,
 * and the last argument of another node's broadcast, which order.c reads
 * to put a session's entries in their order. Checks the contracts: an
 * accepted offset is 19-38 bytes and reads back the same from what the
 * writer makes of its parts (the writer's form equals the input but for
 * the case of its hex digits); a refusal is TS_EINVAL and leaves nothing.
 * Seeds: fuzz/corpus/fuzz_sess_offset. */
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include "core/ts_err.h"
#include "core/ts_mem.h"
#include "core/ts_slice.h"
#include "session/ts_sess_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t epoch = 0, seq = 0;
    int rc = ts_sess_offset_parse(ts_slice(data, size), &epoch, &seq);
    if (rc != 0) {
        ts_assert(rc == TS_EINVAL);
        return 0;
    }
    ts_assert(size >= 19 && size < TS_SESS_OFFSET_MAX);
    char out[TS_SESS_OFFSET_MAX];
    size_t n = ts_sess_offset_format(out, epoch, seq);
    ts_assert(n == size && strncasecmp(out, (const char *)data, n) == 0);
    uint64_t e2, s2;
    ts_assert(ts_sess_offset_parse(ts_slice(out, n), &e2, &s2) == 0 && e2 == epoch && s2 == seq);
    return 0;
}
