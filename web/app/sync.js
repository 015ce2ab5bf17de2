// sync.js - what the user needs to trust the sync: the connection badge
// (online / reconnecting / offline, with the number of changes waiting),
// the offline banner, the connection facts, "Your recent changes" with each
// change's state (pending → confirmed, rejected with the reason, or
// conflict with how it was resolved), and toasts.
import { $, h, setText, plural, clock } from './util.js';

const KEEP = 30; // activity rows kept
const LABEL = {
  connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting…',
  offline: 'Offline', closed: 'Closed',
};

// A short human description of a change, from its operations (also for
// changes restored from the offline queue after a reload).
export function describe(ops, state = {}) {
  const item = (id) => state.items?.[id]?.text;
  const note = (id) => state.notes?.[id]?.title || 'a note';
  const q = (s) => `“${String(s).slice(0, 40)}”`;
  if (ops && !Array.isArray(ops) && ops.merge) {
    const m = ops.merge;
    if (m.items) {
      const [id, it] = Object.entries(m.items)[0] || [];
      return it && it.text ? `Added ${q(it.text)}` : `Changed ${q(item(id) || 'an item')}`;
    }
    if (m.notes) {
      const [, n] = Object.entries(m.notes)[0] || [];
      return n && n.title ? `Restored note ${q(n.title)}` : 'New note';
    }
    if (m.settings) {
      const [k, v] = Object.entries(m.settings)[0] || [];
      return k === 'title' ? `Renamed the workspace ${q(v)}` : `Set ${k} to ${v}`;
    }
    return 'Changed the workspace';
  }
  const list = Array.isArray(ops) ? ops : [];
  const first = list[0] || {};
  const p = String(first.path || '').split('/').slice(1);
  if (p[0] === 'items') {
    if (first.op === 'remove' && list.length > 1) return `Cleared ${plural(list.length, 'checked item')}`;
    if (first.op === 'remove') return `Deleted ${q(item(p[1]) || 'an item')}`;
    if (p[2] === 'done') return `${first.value ? 'Checked' : 'Unchecked'} ${q(item(p[1]) || 'an item')}`;
    if (p[2] === 'text') return `Renamed an item to ${q(first.value)}`;
  }
  if (p[0] === 'notes') {
    if (first.op === 'remove') return `Deleted note ${q(note(p[1]))}`;
    if (p[2] === 'text') return `Edited note ${q(note(p[1]))}`;
    if (p[2] === 'title') return `Renamed a note ${q(first.value || 'Untitled')}`;
  }
  if (p[0] === 'tags') return `${first.op === 'srem' ? 'Removed' : 'Added'} label ${q(first.value)}`;
  if (p[0] === 'counters') return 'Counted';
  return `Changed ${first.path || 'the workspace'}`;
}

export function createSync(app) {
  const { ts } = app;
  const el = {
    conn: $('conn'), label: $('conn-label'), pendingWrap: $('pending-wrap'), pending: $('pending-count'),
    pendingWord: $('pending-word'), detail: $('conn-detail'), banner: $('offline-banner'),
    status: $('f-status'), transport: $('f-transport'), rtt: $('f-rtt'), reconnects: $('f-reconnects'),
    ver: $('sync-ver'), activity: $('activity'), empty: $('activity-empty'), toasts: $('toasts'),
    navPending: $('nav-pending'),
  };
  // One row per change. A row made here holds its Change object, whose id
  // the library fills in once it has numbered the change; a row for a
  // change restored from the queue (made before a reload, or in another
  // tab of this browser) knows only the id.
  const rows = [];
  let queueLen = 0;
  let lastStatus = null;
  const idOf = (r) => r.change?.id || r.id || null;
  const find = (c) => rows.find((r) => r.change === c) || (c.id ? rows.find((r) => idOf(r) === c.id) : null);

  function row(r, label, status, detail = '') {
    if (!r.li) {
      r.li = h('li', { class: 'act', dataset: { testid: 'activity-item' } },
        h('span', { class: 'act-dot', 'aria-hidden': 'true' }),
        h('div', { class: 'act-main' }, h('p', { class: 'act-label' }), h('p', { class: 'act-detail muted small-text' })),
        h('span', { class: 'act-status' }));
      r.at = Date.now();
      rows.unshift(r);
      el.activity.prepend(r.li);
      while (rows.length > KEEP) rows.pop().li.remove();
    }
    const [, main, st] = r.li.children;
    if (label) setText(main.children[0], label);
    setText(main.children[1], detail || clock(r.at));
    r.li.dataset.status = status;
    if (idOf(r)) r.li.dataset.id = idOf(r);
    setText(st, status);
    r.status = status;
    el.empty.hidden = rows.length > 0;
    return r;
  }

  // A change made here: a row now, updated when it settles.
  function track(change, label) {
    if (!change) return;
    row({ change }, label, change.status || 'pending');
    Promise.resolve(change.done).then((c) => settled(c || change)).catch(() => {});
  }

  function settled(c) {
    if (!c) return;
    const r = find(c);
    if (!r) {
      // the library's rebase of a change is a new change: its row is the
      // original's (which names it in rebasedAs)
      const orig = rows.find((x) => x.settled?.rebasedAs && x.settled.rebasedAs === c.id);
      if (orig) {
        row(orig, null, c.status === 'confirmed' ? 'rebased' : c.status,
          c.status === 'confirmed' ? 're-applied on the newer version, then confirmed' : reason(c));
      }
      return;
    }
    // it settles once, but is heard of twice (its done promise and the
    // library's settled event)
    if (r.settled === c && r.status === rowStatus(c)) return;
    r.settled = c;
    if (c.conflict) {
      row(r, null, 'conflict', c.conflict.resolution === 'rebased'
        ? 'another device changed it first: yours was re-applied on theirs'
        : 'another device changed it first: both edits merged');
      return;
    }
    row(r, null, c.status, c.status === 'confirmed'
      ? `${clock(Date.now())}${c.result?.duplicate ? ' · the server already had it' : ''}${c.result?.ver ? ` · v${c.result.ver}` : ''}`
      : reason(c));
    if (c.status === 'rejected') {
      // the library has taken it back from the screen: say what and why
      const label = r.li.querySelector('.act-label').textContent;
      toast({ kind: 'error', title: `Not saved: ${label}`, body: friendly(c.error), timeout: 10000 });
    }
  }
  const friendly = (e = {}) => ({
    bad_path: 'It was deleted on another device.',
    test_failed: 'It changed on another device first.',
    too_large: 'The workspace is full.',
    not_leader: 'Only the leading tab may do that.',
  })[e.code] || `${e.code || 'refused'}: ${e.message || ''}`;
  const rowStatus = (c) => (c.conflict ? 'conflict' : c.status);
  const reason = (c) => (c.error ? `${friendly(c.error)} (${c.error.code})` : '');

  // Changes waiting in the offline queue (also ones made before a reload,
  // or in another tab of this browser) get a row too.
  function onQueue(queue) {
    queueLen = (queue || []).length;
    for (const item of queue || []) {
      if (item.id && !rows.some((r) => idOf(r) === item.id)) {
        row({ id: item.id }, describe(item.ops, app.state()), 'pending', 'saved on this device, not sent yet');
      }
    }
    // a change of another tab that left the queue was sent by that tab
    const inQueue = new Set((queue || []).map((q) => q.id));
    for (const r of rows) {
      if (!r.change && r.status === 'pending' && !inQueue.has(r.id)) row(r, null, 'confirmed', 'sent');
    }
    render();
  }

  function render() {
    const c = ts.connection || {};
    const status = c.status || 'connecting';
    el.conn.dataset.status = status;
    let label = LABEL[status] || status;
    if (status === 'reconnecting' && c.nextRetryMs) label = `Reconnecting in ${Math.max(1, Math.round(c.nextRetryMs / 1000))} s`;
    if (status === 'online' && c.quality === 'poor') label = 'Online · slow';
    setText(el.label, label);
    el.pendingWrap.hidden = queueLen === 0;
    setText(el.pending, queueLen);
    setText(el.pendingWord, queueLen === 1 ? 'change waiting' : 'changes waiting');
    el.conn.dataset.pending = String(queueLen);
    el.navPending.hidden = queueLen === 0;
    setText(el.navPending, queueLen);
    el.banner.hidden = status !== 'offline';
    const detail = `${label}. ${queueLen ? `${plural(queueLen, 'change')} waiting to sync.` : 'Everything is synced.'}`;
    el.conn.setAttribute('aria-label', `Connection: ${detail}`);
    if (status !== lastStatus) {
      // announced once per change of status, not on every queue tick
      setText(el.detail, detail);
      lastStatus = status;
    }
    setText(el.status, `${LABEL[status] || status}${c.lastError && status !== 'online' ? ` (${c.lastError.code || c.lastError.message})` : ''}`);
    el.status.dataset.status = status;
    setText(el.transport, c.transport || '—');
    setText(el.rtt, typeof c.rttMs === 'number' ? `${Math.round(c.rttMs)} ms` : '—');
    setText(el.reconnects, c.reconnects ?? 0);
    setText(el.ver, `v${ts.confirmed?.ver ?? 0}`);
  }

  // toast({title, body?, kind?, actions?: [{label, run}], timeout?})
  function toast({ title, body = '', kind = 'info', actions = [], timeout = 6000 }) {
    const close = () => {
      t.classList.add('leaving');
      setTimeout(() => t.remove(), 200);
    };
    const t = h('div', { class: `toast toast-${kind}`, dataset: { testid: 'toast', kind } },
      h('div', { class: 'toast-main' }, h('p', { class: 'toast-title' }, title), body ? h('p', { class: 'toast-body' }, body) : null),
      actions.map((a) => h('button', { type: 'button', class: 'btn small', onclick: () => { close(); a.run(); } }, a.label)),
      h('button', { type: 'button', class: 'icon-btn small', 'aria-label': 'Dismiss', onclick: close }, '✕'));
    el.toasts.append(t);
    while (el.toasts.children.length > 4) el.toasts.firstElementChild.remove();
    if (timeout) setTimeout(close, timeout);
    return t;
  }

  // one polite announcement (the status region) for screen readers
  const announce = (text) => setText(el.detail, text);

  return { render, track, settled, onQueue, toast, announce };
}
