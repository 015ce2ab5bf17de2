// The development bundle's entry (dist/tabsync.dev.js): the library plus the
// debug console, which production bundles must not contain.
export * from './index.js';
export { mountDebugConsole } from './debug.js';
