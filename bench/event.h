/* event.h - the benchmark's own event: a 150-byte JSON Socket.IO EVENT
 * carrying the publisher's number, its sequence number and its send time.
 * Formatted and recognised by hand (no JSON tree) because a load generator
 * must spend less CPU per message than the server it measures. */
#ifndef TSB_EVENT_H
#define TSB_EVENT_H
#include <stddef.h>
#include <stdint.h>

#define TSB_EV_SIZE 150 /* bytes of the delivered Engine.IO text packet */
#define TSB_EV_MAX 512  /* room for any publish packet we format */

typedef struct tsb_ev {
    uint32_t p;          /* publisher number */
    uint32_t s;          /* publisher's sequence number, from 0 */
    uint64_t t;          /* publisher's send time, ns of CLOCK_MONOTONIC */
    const char *offset;  /* recovery offset (last argument) or NULL; not NUL-terminated */
    size_t offset_len;
} tsb_ev_t;

/* Writes the Engine.IO text packet a publisher sends:
 * 42["<verb>","r<room>","b",{"p":P,"s":S,"t":T,"x":"xxx..."}]
 * padded so that the event each receiver gets, 42["b",{...}], is exactly
 * TSB_EV_SIZE bytes. Returns its length (< TSB_EV_MAX). */
size_t tsb_ev_format(char out[TSB_EV_MAX], const char *verb, uint32_t room, const tsb_ev_t *ev);

/* The same, padded so that the delivered event is `size` bytes (at least
 * what the numbers need); `out` holds `cap` bytes. Returns the length, or 0
 * if it does not fit. */
size_t tsb_ev_format_sized(char *out, size_t cap, const char *verb, uint32_t room,
                           const tsb_ev_t *ev, size_t size);

/* Recognises a delivered event 42["b",{"p":P,"s":S,"t":T,"x":"..."}] with an
 * optional trailing offset string argument. Returns 1 and fills *ev, or 0
 * if the packet is anything else (the caller decodes it the slow way). */
int tsb_ev_parse(const uint8_t *d, size_t n, tsb_ev_t *ev);

/* /session (docs/PROTOCOL.md): the same numbers travel in the body of an
 * envelope. Writes the Engine.IO text packet of a `publish` with ack id
 * `ack`: 42/session,ACK["publish",{"v":4,"type":"b","id":"e<S>","body":
 * {"p":P,"s":S,"t":T,"x":"xxx..."}}], the envelope (the object) padded to
 * `size` bytes (at least what the numbers need). `out` holds `cap` bytes.
 * Returns the length, or 0 if it does not fit. */
size_t tsb_sev_format(char *out, size_t cap, uint64_t ack, const tsb_ev_t *ev, size_t size);

/* Recognises a delivered envelope 42/session,["event",{...,"body":{"p":P,
 * "s":S,"t":T,"x":"..."},...}] (relayed, or a history entry with kind, ts
 * and seq around it). Returns 1 and fills *ev (no offset), or 0 if the
 * packet is anything else. */
int tsb_sev_parse(const uint8_t *d, size_t n, tsb_ev_t *ev);

/* Recognises the ack of a publish, 43/session,ID[{"ok":...}]. Returns 1 and
 * sets *id and *ok (1 when the answer starts {"ok":true), or 0 if the packet
 * is anything else. */
int tsb_sev_ack(const uint8_t *d, size_t n, uint64_t *id, int *ok);

#endif
