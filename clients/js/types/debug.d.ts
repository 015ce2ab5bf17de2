// Types of @tabsync/client/debug: the debug console (development builds only).
import type { TabsyncClient } from './index.js';

export interface DebugConsole {
  /** The root element (id "tabsync-debug-console"). */
  readonly element: HTMLElement;
  /** Opens or closes the panel (flips it without an argument). */
  toggle(open?: boolean): void;
  /** Removes the console from the page and stops listening. */
  destroy(): void;
}

/**
 * Adds a toggle button and a panel to the page (document.body unless `parent`).
 * Its CSS is an adopted stylesheet (allowed by a strict Content-Security-Policy),
 * or a <style> element where the browser has no constructed stylesheets;
 * `styles: false` leaves the styling to the page.
 */
export function mountDebugConsole(
  ts: TabsyncClient,
  opts?: { open?: boolean; parent?: HTMLElement; styles?: boolean },
): DebugConsole;
