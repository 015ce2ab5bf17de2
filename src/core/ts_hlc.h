/* ts_hlc.h - hybrid logical clock: wall-clock milliseconds with a 10-bit
 * logical counter underneath, as one integer (ms * 1024 + logical) that
 * stays below 2^53 so JavaScript reads it exactly until wall ms reach 2^43
 * (the year 2248; 12 bits would have ended in 2039). 1,024 values per ms
 * and clock are plenty: more only borrow from the next millisecond. Every value a clock hands out is strictly
 * greater than every value it handed out or received before, whatever the
 * wall clock does; a remote value too far in the future is refused rather
 * than adopted (it would win every last-writer-wins race for as long).
 * One clock may be shared by several threads: updates are compare-exchange
 * loops on `last`. */
#ifndef TS_HLC_H
#define TS_HLC_H
#include <stddef.h>
#include <stdint.h>

#define TS_HLC_LOGICAL_BITS 10
#define TS_HLC_LOGICAL_MAX ((1u << TS_HLC_LOGICAL_BITS) - 1)  /* 1023 */

typedef struct ts_hlc {
    uint64_t last; /* the greatest value handed out or received; 0 = none */
} ts_hlc_t;

#define TS_HLC_INIT {0}

static inline uint64_t ts_hlc_make(uint64_t ms, uint32_t logical) {
    return (ms << TS_HLC_LOGICAL_BITS) | (logical & TS_HLC_LOGICAL_MAX);
}
static inline uint64_t ts_hlc_ms(uint64_t h) { return h >> TS_HLC_LOGICAL_BITS; }
static inline uint32_t ts_hlc_logical(uint64_t h) { return (uint32_t)(h & TS_HLC_LOGICAL_MAX); }

/* A new timestamp for a local event at wall-clock `wall_ms`: the wall
 * time with logical 0 if that is ahead of everything seen, else last + 1
 * (a full logical part carries into the next millisecond). */
uint64_t ts_hlc_now(ts_hlc_t *c, uint64_t wall_ms);

/* Merges a timestamp received from elsewhere. Returns TS_EINVAL (clock
 * unchanged) if remote's milliseconds are more than max_ahead_ms ahead of
 * wall_ms; else 0 and *out = a new local timestamp greater than both
 * `remote` and everything before. */
int ts_hlc_recv(ts_hlc_t *c, uint64_t remote, uint64_t wall_ms, uint64_t max_ahead_ms,
                uint64_t *out);

/* Writes "<ms>.<logical>" (e.g. "1700000000000.3") into out[cap]; returns
 * its length as snprintf does. */
size_t ts_hlc_format(uint64_t h, char *out, size_t cap);

#endif
