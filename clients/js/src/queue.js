// Pure helpers of the offline queue: what a queued change looks like on the
// wire, which of them go out next, and what an answer means. The server
// remembers the newest 256 mutations per client (docs/CONSISTENCY.md
// "Exactly-once"); keeping at most 128 unacknowledged keeps every resend
// inside that window, so a lost ack can never turn into mutation_too_old.

export const MAX_BATCH = 64;
export const MAX_IN_FLIGHT = 128;

// refusals after which the same change (same mut) is simply sent again later
const RETRY = new Set(['store_unavailable', 'busy', 'throttled']);

/**
 * The records to send next: pending ones in mut order, at most `max`, and
 * never more than maxInFlight unacknowledged in all.
 * @param {object[]} records queue records ({mut, status: 'pending'|'sending', ...})
 * @param {{max?: number, inFlight?: number, maxInFlight?: number}} [opts]
 */
export function nextBatch(records, { max = MAX_BATCH, inFlight = 0, maxInFlight = MAX_IN_FLIGHT } = {}) {
  const room = Math.min(max, maxInFlight - inFlight);
  if (room <= 0) return [];
  return records
    .filter((r) => r.status === 'pending' && Number.isInteger(r.mut))
    .sort((a, b) => a.mut - b.mut)
    .slice(0, room);
}

/**
 * A record as the `state` message carries it (`patch` is the wire name of ops).
 * @param {object} r a queue record
 */
export function toWire(r) {
  const m = { v: 4, id: r.id, client: r.client, mut: r.mut, hlc: r.hlc };
  if (r.base != null) m.base = r.base;
  if (r.ops) m.patch = r.ops;
  else m.merge = r.merge;
  if (r.lead) m.lead = { scope: r.lead.scope, term: r.lead.term };
  if (r.type) m.type = r.type;
  return m;
}

/**
 * What an answer to one change means for its record:
 * 'confirmed' | 'duplicate' | 'conflict' | 'retry' | 'rejected'.
 * A missing or malformed answer counts as 'retry' (nothing is known).
 */
export function classifyAck(ack) {
  if (!ack || typeof ack !== 'object') return 'retry';
  if (ack.ok === true) return ack.duplicate ? 'duplicate' : 'confirmed';
  const code = ack.error?.code;
  if (code === 'conflict') return 'conflict';
  if (RETRY.has(code)) return 'retry';
  return 'rejected';
}

/**
 * One answer per change of a message of n changes: the batch ack's results,
 * or, when the whole message was refused (no results), that refusal for each.
 */
export function splitAck(n, ack) {
  if (ack && Array.isArray(ack.results) && ack.results.length === n) return ack.results;
  if (n === 1 && ack && !Array.isArray(ack.results)) return [ack];
  return Array.from({ length: n }, () => ack);
}
