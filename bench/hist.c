/* hist.c - log-linear latency histogram (see hist.h). Values below 64 have
 * a bucket each; above, each power of two [2^e, 2^(e+1)) is split into 64
 * equal buckets, which is HdrHistogram's layout with 2 significant digits. */
#include "hist.h"

#include <string.h>

void tsb_hist_init(tsb_hist_t *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

uint32_t tsb_hist_index(uint64_t v) {
    if (v < TSB_HIST_SUB) return (uint32_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= SUB_BITS */
    unsigned shift = e - TSB_HIST_SUB_BITS;
    uint32_t sub = (uint32_t)(v >> shift) - TSB_HIST_SUB; /* 0..63 */
    return TSB_HIST_SUB + shift * TSB_HIST_SUB + sub;
}

void tsb_hist_range(uint32_t i, uint64_t *lo, uint64_t *hi) {
    if (i < TSB_HIST_SUB) {
        *lo = *hi = i;
        return;
    }
    unsigned shift = (i - TSB_HIST_SUB) / TSB_HIST_SUB;
    uint64_t sub = (i - TSB_HIST_SUB) % TSB_HIST_SUB + TSB_HIST_SUB;
    *lo = sub << shift;
    *hi = *lo + ((uint64_t)1 << shift) - 1;
}

void tsb_hist_record(tsb_hist_t *h, uint64_t v) {
    h->b[tsb_hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void tsb_hist_merge(tsb_hist_t *dst, const tsb_hist_t *src) {
    for (uint32_t i = 0; i < TSB_HIST_BUCKETS; i++) dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t tsb_hist_quantile(const tsb_hist_t *h, double q) {
    if (!h->count) return 0;
    if (q <= 0) return h->min;
    /* rank of the sample wanted, 1-based: ceil(q * count) */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count) rank++;
    if (rank < 1) rank = 1;
    if (rank > h->count) rank = h->count;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < TSB_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            tsb_hist_range(i, &lo, &hi);
            if (hi > h->max) hi = h->max;
            if (hi < h->min) hi = h->min;
            return hi;
        }
    }
    return h->max;
}
