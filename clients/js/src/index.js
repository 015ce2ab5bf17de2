// The package's entry point (@tabsync/client): createClient and the few
// values that exist at run time; everything else is types (types/index.d.ts).
export { createClient } from './client.js';
export { PRESENCE_TYPE } from './presence.js';

/** The /session protocol version this library speaks (docs/PROTOCOL.md). */
export const PROTOCOL = 4;
