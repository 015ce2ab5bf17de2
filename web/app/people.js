// people.js - "Devices & tabs": who is here (presence: every tab of this
// workspace on every device, visible or in the background, what it has
// open) and who leads (the session scope's election: leader and backup
// with their scores, the parts of each score, the term and why the leader
// got it). Tabs join the election with scores on, so the view carries
// every member's score and parts (docs/ELECTION.md "The score").
import { $, h, reconcile, setText, clock, ago, plural, icon } from './util.js';

// Why a term began, from the view's reason when the term changed.
const WHY = {
  elected: 'elected: the best-scored candidate when there was no leader',
  handoff: 'the previous leader handed over (it resigned or closed)',
  lapse: 'the previous leader stopped heartbeating and its lease ran out',
  left: 'the previous leader’s tab went away',
  preempt: 'it scores clearly higher than the previous leader (by the margin)',
  rotation: 'the previous leader had led for the longest tenure allowed',
  demotion: 'the previous leader’s score fell below the demotion threshold',
};
const PARTS = ['battery', 'connection', 'device', 'visibility', 'uptime'];

export function createPeople(app) {
  const { ts, device } = app;
  const el = {
    leader: $('leader'), members: $('members'), count: $('peer-count'),
    chip: $('lead-chip'), chipLabel: $('lead-chip-label'),
  };
  let termSeen = null;
  let lastHolder = null;
  let termWhy = null;

  const self = () => `${device.id}/${ts.tab}`;
  const peers = () => ts.presence?.peers || new Map();

  function nameOf(dev, tab) {
    if (dev === device.id) return tab === ts.tab ? 'This tab' : `${device.name} (another tab)`;
    for (const p of peers().values()) if (p.device === dev && p.state?.name) return p.state.name;
    return `Device ${String(dev).slice(-4)}`;
  }
  const tabLabel = (tab) => `tab ${String(tab).replace(/^tab-/, '').slice(0, 4)}`;

  function partsOf(m) {
    const p = m?.parts;
    if (!p || typeof p !== 'object') return [];
    const keys = [...PARTS.filter((k) => k in p), ...Object.keys(p).filter((k) => !PARTS.includes(k))];
    return keys.map((k) => {
      const v = p[k];
      const f = typeof v === 'number' ? v : typeof v?.f === 'number' ? v.f : typeof v?.value === 'number' ? v.value : null;
      return { k, f: f === null ? null : (f > 1 ? f / 1000 : f), raw: v };
    });
  }

  function partsEl(m) {
    const parts = partsOf(m);
    if (!parts.length) return null;
    return h('ul', { class: 'parts', 'aria-label': 'Score parts' }, parts.map(({ k, f, raw }) => h('li', {
      dataset: { part: k }, title: `${k}: ${f === null ? JSON.stringify(raw) : Math.round(f * 100) + '%'}`,
    }, h('span', { class: 'part-k' }, k),
    h('span', { class: 'part-bar', 'aria-hidden': 'true' }, h('span', { style: { width: `${f === null ? 0 : Math.round(f * 100)}%` } })),
    h('span', { class: 'part-v' }, f === null ? '—' : `${Math.round(f * 100)}%`))));
  }

  function render() {
    const view = ts.election?.view('session') || null;
    const leading = !!ts.election?.isLeader('session');
    if (view && view.term !== termSeen) {
      // the reason of the view that brought a new term says why it began;
      // later views (join, score, …) keep that. A tab that joins during a
      // term only sees views of other kinds.
      termWhy = WHY[view.reason] || (termSeen === null && view.leader ? 'it was already leading when this tab joined' : null);
      termSeen = view.term;
    }
    const members = new Map();
    for (const m of view?.members || []) members.set(`${m.device}/${m.tab}`, m);

    // ---- leader card
    const L = view?.leader;
    const holder = L ? `${L.device}/${L.tab}` : '';
    el.leader.dataset.holder = holder;
    el.leader.dataset.self = String(holder === self());
    el.leader.dataset.term = String(view?.term ?? '');
    el.leader.dataset.role = view?.role || '';
    el.leader.replaceChildren();
    if (!view) {
      el.leader.append(h('p', { class: 'muted' }, ts.connection?.status === 'online' ? 'Waiting for the election…' : 'Not connected: no election.'));
    } else if (!L) {
      el.leader.append(h('p', { class: 'muted' }, `No leader yet (term ${view.term}).`));
    } else {
      const lm = members.get(holder) || L;
      const scores = [...members.values()].filter((m) => m.role !== 'observer' && typeof m.score === 'number');
      const best = scores.length ? Math.max(...scores.map((m) => m.score)) : null;
      const isBest = typeof L.score === 'number' && best !== null && L.score >= best;
      const B = view.backup;
      el.leader.append(
        h('div', { class: 'leader-head' },
          h('span', { class: 'crown big', 'aria-hidden': 'true' }, '♛'),
          h('div', {},
            h('p', { class: 'leader-name', dataset: { testid: 'leader-name' } },
              holder === self() ? 'This tab leads' : nameOf(L.device, L.tab)),
            h('p', { class: 'muted small-text' },
              `${holder === self() ? (leading ? 'holding the lease' : 'taking over…') : tabLabel(L.tab)} · term `,
              h('span', { dataset: { testid: 'leader-term' } }, String(view.term)),
              view.since ? ` · since ${clock(view.since)}` : '')),
          h('span', { class: 'score', dataset: { testid: 'leader-score' }, title: 'Score, 0–1000' }, typeof L.score === 'number' ? String(L.score) : '—')),
        h('p', { class: 'why', dataset: { testid: 'leader-why' } },
          h('strong', {}, 'Why: '), termWhy || 'it holds the lease',
          best !== null ? (isBest ? ` — and it has the best score of ${plural(scores.length, 'candidate')}.`
            : ` — a tab scoring ${best} does not take over until it leads by the margin, so leadership does not flap.`) : ''),
        partsEl(lm),
        h('p', { class: 'backup', dataset: { testid: 'backup', holder: B ? `${B.device}/${B.tab}` : '' } },
          h('span', { class: 'muted' }, 'Backup: '),
          B ? `${B.device === device.id && B.tab === ts.tab ? 'this tab' : `${nameOf(B.device, B.tab)} · ${tabLabel(B.tab)}`} (score ${B.score ?? '—'}) — takes over at once if the leader goes`
            : 'none yet'),
      );
    }
    const chip = !L ? 'No leader' : holder === self() ? 'This tab leads' : `Led by ${nameOf(L.device, L.tab)}`;
    // announced when the leader changes, not on every score update
    if (holder !== lastHolder) {
      if (lastHolder !== null && L) app.announce(holder === self() ? 'This tab now leads the workspace.' : `${nameOf(L.device, L.tab)} now leads the workspace.`);
      lastHolder = holder;
    }
    setText(el.chipLabel, chip);
    el.chip.dataset.self = String(holder === self());

    // ---- every tab: election members and presence peers
    const rows = new Map();
    const add = (dev, tab) => {
      const k = `${dev}/${tab}`;
      if (!rows.has(k)) rows.set(k, { k, dev, tab });
      return rows.get(k);
    };
    const me = add(device.id, ts.tab);
    me.presence = { name: device.name, type: device.type, visible: document.visibilityState === 'visible', note: app.notes?.selectedTitle() };
    for (const p of peers().values()) {
      const r = add(p.device, p.tab);
      r.presence = p.state || {};
      r.at = p.at;
    }
    for (const m of members.values()) add(m.device, m.tab).member = m;
    // this tab first, then by role (leader, backup, …), then by device
    const rank = (r) => (r.k === self() ? 0 : ({ leader: 1, backup: 2, follower: 3, observer: 4 })[r.member?.role] ?? 5);
    const list = [...rows.values()].sort((a, b) => rank(a) - rank(b) ||
      (a.dev === b.dev ? 0 : a.dev < b.dev ? -1 : 1) || (a.tab < b.tab ? -1 : 1));
    reconcile(el.members, list, (r) => r.k, () => h('li', { class: 'member', dataset: { testid: 'member' } },
      h('span', { class: 'dev-icon' }),
      h('div', { class: 'member-main' }, h('p', { class: 'member-name' }), h('p', { class: 'member-sub muted small-text' })),
      h('div', { class: 'member-side' }, h('span', { class: 'role' }), h('span', { class: 'score small' }))), (li, r) => {
      const p = r.presence || {};
      const m = r.member;
      const type = p.type || (r.dev === device.id ? device.type : 'browser');
      const visible = p.visible === undefined ? null : !!p.visible;
      li.dataset.holder = r.k;
      li.dataset.device = r.dev;
      li.dataset.type = type;
      li.dataset.visible = visible === null ? 'unknown' : String(visible);
      li.dataset.role = m?.role || 'none';
      li.dataset.self = String(r.k === self());
      const [ic, main, side] = li.children;
      const [role, score] = side.children;
      if (ic.dataset.type !== type) {
        ic.dataset.type = type;
        ic.replaceChildren(icon(type === 'mobile' ? 'phone' : 'laptop'));
      }
      ic.title = `${type === 'mobile' ? 'Phone' : 'Computer'}, ${visible === false ? 'in the background' : visible ? 'visible' : 'visibility unknown'}`;
      setText(main.children[0], r.k === self() ? 'This tab' : `${p.name || nameOf(r.dev, r.tab)}`);
      setText(main.children[1], [
        r.k === self() ? device.name : tabLabel(r.tab),
        visible === null ? '' : visible ? 'visible' : 'in the background',
        p.note ? `on “${p.note}”` : '',
        r.k !== self() && r.at ? `seen ${ago(r.at)}` : '',
      ].filter(Boolean).join(' · '));
      setText(role, m?.role || '');
      role.className = `role role-${m?.role || 'none'}`;
      // the parts of every member's score, not only the leader's: in the
      // tooltip and for screen readers
      const parts = partsOf(m).filter((x) => x.f !== null).map((x) => `${x.k} ${Math.round(x.f * 100)}%`).join(', ');
      const scoreText = typeof m?.score === 'number' ? `Score ${m.score} of 1000${parts ? `: ${parts}` : ''}` : '';
      setText(score, typeof m?.score === 'number' ? String(m.score) : '');
      score.title = scoreText;
      score.setAttribute('aria-label', scoreText);
      li.dataset.parts = parts;
    });
    setText(el.count, plural(list.length, 'tab'));
  }

  return { render, nameOf };
}
