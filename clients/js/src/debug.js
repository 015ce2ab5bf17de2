// The debug console for development pages: a toggle button and a small
// self-styled panel showing the connection, transport, RTT, role and term
// per scope, the offline queue and the recent `log` entries with their
// correlation ids. Development builds only: no production bundle contains
// this file (the bundle test looks for the root element's id).
const ROOT_ID = 'tabsync-debug-console';
const SHOW_LOGS = 60;

const CSS = `
#${ROOT_ID}{position:fixed;right:12px;bottom:12px;z-index:2147483000;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#e8e8e8}
#${ROOT_ID} button.ts-toggle{display:block;margin-left:auto;border:0;border-radius:14px;padding:4px 10px;background:#20232a;color:#e8e8e8;cursor:pointer;box-shadow:0 1px 4px #0006}
#${ROOT_ID} .ts-dot{display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:6px;background:#888}
#${ROOT_ID} .ts-panel{width:min(440px,92vw);max-height:70vh;overflow:auto;margin-bottom:6px;padding:8px 10px;background:#20232aee;border-radius:8px;box-shadow:0 2px 12px #0008}
#${ROOT_ID} .ts-panel[hidden]{display:none}
#${ROOT_ID} h4{margin:8px 0 2px;font-size:11px;text-transform:uppercase;color:#9ab}
#${ROOT_ID} table{border-collapse:collapse;width:100%}
#${ROOT_ID} td{padding:0 6px 0 0;vertical-align:top;white-space:nowrap}
#${ROOT_ID} td.ts-wrap{white-space:normal;word-break:break-all}
#${ROOT_ID} .ts-in{color:#8fd}#${ROOT_ID} .ts-out{color:#fd8}#${ROOT_ID} .ts-info{color:#aaa}
`;
const DOT = { online: '#3c3', connecting: '#fc3', reconnecting: '#f93', offline: '#e44', closed: '#777' };

const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
const time = (at) => new Date(at).toTimeString().slice(0, 8);

// The console's CSS as a constructed stylesheet where the browser has them:
// a page with a strict Content-Security-Policy (no 'unsafe-inline' styles)
// refuses an inserted <style> element but not an adopted sheet. Elsewhere, a
// <style> element.
function addStyles(root) {
  const doc = document;
  if (typeof CSSStyleSheet === 'function' && Array.isArray(doc.adoptedStyleSheets)) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
    return () => { doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet); };
  }
  const style = el('style');
  style.textContent = CSS;
  root.prepend(style);
  return () => style.remove();
}

/**
 * Mounts the debug console into the page.
 * @param {import('./client.js').Client} ts the client to show
 * @param {{open?: boolean, parent?: HTMLElement, styles?: boolean}} [opts]
 *   styles: false leaves the styling to the page (the console's own sheet is not added)
 * @returns {{element: HTMLElement, toggle(open?: boolean): void, destroy(): void}}
 */
export function mountDebugConsole(ts, { open = false, parent, styles = true } = {}) {
  if (typeof document === 'undefined') throw new Error('mountDebugConsole needs a page (document)');
  document.getElementById(ROOT_ID)?.remove();
  const root = el('div', { id: ROOT_ID });
  const panel = el('div', { class: 'ts-panel' });
  const dot = el('span', { class: 'ts-dot' });
  const label = el('span');
  const button = el('button', { class: 'ts-toggle', type: 'button', title: 'tabsync debug console' }, dot, label);
  root.append(panel, button);
  const removeStyles = styles ? addStyles(root) : () => {};
  (parent ?? document.body).append(root);

  let shown = open;
  let pending = false;
  const row = (k, v) => el('tr', {}, el('td', {}, k), el('td', { class: 'ts-wrap' }, String(v ?? '–')));

  function render() {
    pending = false;
    const c = ts.connection;
    dot.style.background = DOT[c.status] ?? '#888';
    label.textContent = `tabsync ${c.status}${c.rttMs !== null ? ` ${c.rttMs} ms` : ''}`;
    panel.hidden = !shown;
    if (!shown) return;
    const conn = el('table', {},
      row('status', c.status),
      row('transport', c.transport),
      row('rtt', c.rttMs === null ? null : `${c.rttMs} ms`),
      row('quality', c.quality),
      row('reconnects', c.reconnects),
      row('next retry', c.nextRetryMs === null ? null : `${c.nextRetryMs} ms`),
      row('network', c.network ? `${c.network.effectiveType ?? '?'}${c.network.saveData ? ' saveData' : ''}` : null),
      row('last error', c.lastError ? `${c.lastError.code}: ${c.lastError.message}` : null),
      row('who', `${ts.user ?? '?'} / ${ts.session ?? '?'} — ${ts.device.id} / ${ts.tab}`));
    const elect = el('table', {});
    for (const scope of ['session', 'device']) {
      const v = ts.election.view(scope);
      if (!v) continue;
      const leader = v.leader ? `${v.leader.device}/${v.leader.tab}` : 'none';
      elect.append(row(scope, `${v.role}${ts.election.isLeader(scope) ? ' (acting)' : ''} · term ${v.term} · leader ${leader} · ${v.reason}`));
    }
    const q = ts.queue();
    const queue = el('table', {}, row('pending', q.length));
    for (const ch of q.slice(0, 5)) queue.append(row(`mut ${ch.mut}`, `${ch.status} · attempts ${ch.attempts}`));
    const logs = el('table', {});
    for (const e of (ts.logs ?? []).slice(-SHOW_LOGS).reverse()) {
      logs.append(el('tr', { class: `ts-${e.dir}` },
        el('td', {}, time(e.at)),
        el('td', {}, e.dir === 'in' ? '←' : e.dir === 'out' ? '→' : '·'),
        el('td', {}, e.name),
        el('td', { class: 'ts-wrap' }, `${e.cid ? `[${e.cid}] ` : ''}${e.summary ?? ''}`)));
    }
    panel.replaceChildren(
      el('h4', {}, 'connection'), conn,
      el('h4', {}, 'election'), elect,
      el('h4', {}, 'queue'), queue,
      el('h4', {}, `presence: ${ts.presence.peers.size} peers`),
      el('h4', {}, 'log'), logs);
  }
  // many events come in bursts: one render per frame at most
  const later = () => {
    if (pending) return;
    pending = true;
    (globalThis.requestAnimationFrame ?? setTimeout)(render);
  };
  const offs = ['status', 'election', 'leadership', 'queue', 'presence', 'log'].map((n) => ts.on(n, later));
  const toggle = (v = !shown) => {
    shown = !!v;
    render();
  };
  button.addEventListener('click', () => toggle());
  render();

  return {
    element: root,
    toggle,
    destroy() {
      for (const off of offs) off?.();
      removeStyles();
      root.remove();
    },
  };
}
