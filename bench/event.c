/* event.c - formatting and recognising the benchmark event (event.h). */
#include "event.h"

#include <stdio.h>
#include <string.h>

static unsigned digits(uint64_t v) {
    unsigned n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

size_t tsb_ev_format(char out[TSB_EV_MAX], const char *verb, uint32_t room, const tsb_ev_t *ev) {
    return tsb_ev_format_sized(out, TSB_EV_MAX, verb, room, ev, TSB_EV_SIZE);
}

size_t tsb_ev_format_sized(char *out, size_t cap, const char *verb, uint32_t room,
                           const tsb_ev_t *ev, size_t size) {
    /* delivered form: 42["b",{"p":  ,"s":  ,"t":  ,"x":"  "}] */
    size_t fixed = 12 + 5 + 5 + 6 + 3;
    size_t used = fixed + digits(ev->p) + digits(ev->s) + digits(ev->t);
    size_t pad = used < size ? size - used : 0;
    int n = snprintf(out, cap, "42[\"%s\",\"r%u\",\"b\",{\"p\":%u,\"s\":%u,\"t\":%llu,\"x\":\"",
                     verb, room, ev->p, ev->s, (unsigned long long)ev->t);
    if (n < 0 || (size_t)n + pad + 3 >= cap) return 0;
    memset(out + n, 'x', pad);
    memcpy(out + n + pad, "\"}]", 4);
    return (size_t)n + pad + 3;
}

/* Parses an unsigned decimal at *pp, advancing it. Returns 0 if none. */
static int num(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    if (p >= end || *p < '0' || *p > '9') return 0;
    while (p < end && *p >= '0' && *p <= '9') {
        uint64_t d = (uint64_t)(*p++ - '0');
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10)) return 0;
        v = v * 10 + d;
    }
    *pp = p;
    *out = v;
    return 1;
}

static int lit(const uint8_t **pp, const uint8_t *end, const char *s) {
    size_t n = strlen(s);
    if ((size_t)(end - *pp) < n || memcmp(*pp, s, n) != 0) return 0;
    *pp += n;
    return 1;
}

int tsb_ev_parse(const uint8_t *d, size_t n, tsb_ev_t *ev) {
    const uint8_t *p = d, *end = d + n;
    uint64_t pv, sv, tv;
    if (!lit(&p, end, "42[\"b\",{\"p\":") || !num(&p, end, &pv) || pv > UINT32_MAX ||
        !lit(&p, end, ",\"s\":") || !num(&p, end, &sv) || sv > UINT32_MAX ||
        !lit(&p, end, ",\"t\":") || !num(&p, end, &tv) || !lit(&p, end, ",\"x\":\""))
        return 0;
    const uint8_t *q = memchr(p, '"', (size_t)(end - p));
    if (!q) return 0;
    p = q + 1;
    if (!lit(&p, end, "}")) return 0;
    ev->p = (uint32_t)pv;
    ev->s = (uint32_t)sv;
    ev->t = tv;
    ev->offset = NULL;
    ev->offset_len = 0;
    if (p + 1 == end && *p == ']') return 1;
    /* ,"<offset>"] : the recovery offset appended by the server */
    if (!lit(&p, end, ",\"") || end - p < 2 || end[-1] != ']' || end[-2] != '"') return 0;
    const uint8_t *o = p, *oe = end - 2;
    if (memchr(o, '"', (size_t)(oe - o)) || memchr(o, '\\', (size_t)(oe - o))) return 0;
    ev->offset = (const char *)o;
    ev->offset_len = (size_t)(oe - o);
    return 1;
}

size_t tsb_sev_format(char *out, size_t cap, uint64_t ack, const tsb_ev_t *ev, size_t size) {
    int head = snprintf(out, cap, "42/session,%llu[\"publish\",", (unsigned long long)ack);
    if (head < 0 || (size_t)head >= cap) return 0;
    int n = snprintf(out + head, cap - (size_t)head,
                     "{\"v\":4,\"type\":\"b\",\"id\":\"e%u\",\"body\":{\"p\":%u,\"s\":%u,\"t\":%llu,"
                     "\"x\":\"",
                     ev->s, ev->p, ev->s, (unsigned long long)ev->t);
    if (n < 0) return 0;
    size_t used = (size_t)n + 3; /* the envelope's closing "}} */
    size_t pad = used < size ? size - used : 0;
    size_t len = (size_t)head + (size_t)n + pad + 4;
    if (len >= cap) return 0;
    char *p = out + head + n;
    memset(p, 'x', pad);
    memcpy(p + pad, "\"}}]", 5);
    return len;
}

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const char *s) {
    size_t n = strlen(s);
    for (; (size_t)(end - p) >= n; p++) {
        const uint8_t *q = memchr(p, s[0], (size_t)(end - p) - n + 1);
        if (!q) return NULL;
        if (memcmp(q, s, n) == 0) return q + n;
        p = q;
    }
    return NULL;
}

int tsb_sev_parse(const uint8_t *d, size_t n, tsb_ev_t *ev) {
    const uint8_t *p = d, *end = d + n;
    uint64_t pv, sv, tv;
    /* a history entry may carry its recovery offset as a last argument */
    if (!lit(&p, end, "42/session,[\"event\",{") || end - p < 2 || end[-1] != ']') return 0;
    p = find(p, end, "\"body\":{\"p\":");
    if (!p || !num(&p, end, &pv) || pv > UINT32_MAX || !lit(&p, end, ",\"s\":") ||
        !num(&p, end, &sv) || sv > UINT32_MAX || !lit(&p, end, ",\"t\":") || !num(&p, end, &tv) ||
        !lit(&p, end, ",\"x\":\""))
        return 0;
    const uint8_t *q = memchr(p, '"', (size_t)(end - p));
    if (!q) return 0;
    p = q + 1;
    if (!lit(&p, end, "}")) return 0;
    ev->p = (uint32_t)pv;
    ev->s = (uint32_t)sv;
    ev->t = tv;
    ev->offset = NULL;
    ev->offset_len = 0;
    return 1;
}

int tsb_sev_ack(const uint8_t *d, size_t n, uint64_t *id, int *ok) {
    const uint8_t *p = d, *end = d + n;
    if (!lit(&p, end, "43/session,") || !num(&p, end, id) || !lit(&p, end, "[{\"ok\":")) return 0;
    *ok = lit(&p, end, "true");
    return 1;
}
