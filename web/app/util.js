// util.js - the few DOM and formatting helpers the app's modules share
// (no framework: elements are made with h() and updated in place, so a
// re-render never steals focus or the caret from what the user is typing).

export const $ = (id) => document.getElementById(id);

// h('li', {class: 'x', dataset: {id}, onclick}, child, 'text', …)
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    // through the CSSOM: the page's CSP blocks style attributes
    else if (k === 'style') Object.assign(el.style, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// Set text only when it changed (no needless layout, no screen-reader chatter).
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

// Keep a list's children keyed by id: make() builds a row, update(el, item)
// refreshes it; rows are moved, not rebuilt, so focus inside them survives.
export function reconcile(list, items, key, make, update) {
  const old = new Map();
  for (const el of list.children) old.set(el.dataset.key, el);
  let prev = null;
  for (const item of items) {
    const k = key(item);
    let el = old.get(k);
    if (el) old.delete(k);
    else {
      el = make(item);
      el.dataset.key = k;
    }
    update(el, item);
    const want = prev ? prev.nextSibling : list.firstChild;
    if (want !== el) list.insertBefore(el, want);
    prev = el;
  }
  for (const el of old.values()) el.remove();
}

// An icon from the sprite in index.html.
export function icon(name) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('class', 'i');
  svg.setAttribute('aria-hidden', 'true');
  const use = document.createElementNS(NS, 'use');
  use.setAttribute('href', `#i-${name}`);
  svg.append(use);
  return svg;
}

export function randomId(prefix, n = 10) {
  const a = new Uint8Array(n);
  crypto.getRandomValues(a);
  const abc = '0123456789abcdefghijklmnopqrstuvwxyz';
  return prefix + Array.from(a, (b) => abc[b % 36]).join('');
}

export function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

const rtf = typeof Intl !== 'undefined' && Intl.RelativeTimeFormat
  ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' }) : null;

export function ago(ms, now = Date.now()) {
  const s = Math.round((ms - now) / 1000);
  if (Math.abs(s) < 5) return 'just now';
  if (!rtf) return new Date(ms).toLocaleTimeString();
  if (Math.abs(s) < 60) return rtf.format(s, 'second');
  if (Math.abs(s) < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (Math.abs(s) < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86400), 'day');
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// JSON Pointer segment escaping (RFC 6901).
export const seg = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1');

// Read a path without the library (for snapshots of ts.state we already hold).
export function at(obj, ...keys) {
  let v = obj;
  for (const k of keys) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[k];
  }
  return v;
}

export function plural(n, one, many = one + 's') {
  return `${n} ${n === 1 ? one : many}`;
}

export function debounce(fn, ms) {
  let t = null;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => { t = null; fn(...args); }, ms);
  };
  d.pending = () => t !== null;
  d.flush = (...args) => {
    if (t === null) return;
    clearTimeout(t);
    t = null;
    fn(...args);
  };
  d.cancel = () => { clearTimeout(t); t = null; };
  return d;
}
