/* hist.h - a small HDR-style latency histogram for tsbench: log-linear
 * buckets (64 per power of two, so any recorded value is reported within
 * 1/64 = 1.6% of itself), fixed size, no allocation, mergeable. */
#ifndef TSB_HIST_H
#define TSB_HIST_H
#include <stdint.h>

#define TSB_HIST_SUB_BITS 6
#define TSB_HIST_SUB (1u << TSB_HIST_SUB_BITS)
#define TSB_HIST_BUCKETS (TSB_HIST_SUB + (64 - TSB_HIST_SUB_BITS) * TSB_HIST_SUB)

typedef struct tsb_hist {
    uint64_t count;
    uint64_t min, max; /* exact */
    double sum;
    uint64_t b[TSB_HIST_BUCKETS];
} tsb_hist_t;

void tsb_hist_init(tsb_hist_t *h);
void tsb_hist_record(tsb_hist_t *h, uint64_t v);
/* Adds every sample of `src` to `dst`. */
void tsb_hist_merge(tsb_hist_t *dst, const tsb_hist_t *src);
/* The value at quantile q (0..1): the highest value of the bucket holding the
 * q-th sample, clamped to the exact max; 0 when empty. */
uint64_t tsb_hist_quantile(const tsb_hist_t *h, double q);

/* Bucket index of v, and the range [lo, hi] of values sharing index i. */
uint32_t tsb_hist_index(uint64_t v);
void tsb_hist_range(uint32_t i, uint64_t *lo, uint64_t *hi);

#endif
