// checklist.js - the checklist and the workspace labels. Items are an
// object keyed by id (/items/<id> = {text, done, at, by}; lww per field,
// so two devices editing different items, or different fields, never
// collide), the "checked off" tally is a `counter` (/counters/done:
// increments from every device add up, none lost), and the labels are an
// observed-remove `set` (/tags: a label added on one device while another
// removes it survives).
import { $, h, reconcile, setText, randomId, seg, plural } from './util.js';

export function createChecklist(app) {
  const { device } = app;
  const el = {
    form: $('item-form'), input: $('item-input'), list: $('items'), counter: $('done-counter'),
    summary: $('items-summary'), clear: $('btn-clear-done'),
    tags: $('tags'), tagForm: $('tag-form'), tagInput: $('tag-input'),
  };
  const items = () => app.state().items || {};
  const path = (id, f) => `/items/${seg(id)}${f ? `/${f}` : ''}`;

  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = el.input.value.trim();
    if (!text) return;
    const id = randomId('i', 8);
    // merge: makes /items if missing without replacing another device's items
    app.change({ merge: { items: { [id]: { text, done: false, at: Date.now(), by: device.name } } } });
    el.input.value = '';
  });

  function toggle(id, done) {
    const ops = [{ op: 'replace', path: path(id, 'done'), value: done }];
    // the tally counts check-offs: atomic with the check, so a check that is
    // refused (the item was deleted meanwhile) does not count
    if (done) ops.push({ op: 'incr', path: '/counters/done', value: 1 });
    app.change(ops);
  }

  function rename(id, text) {
    const t = text.trim();
    const it = items()[id];
    if (!it || !t || t === it.text) return;
    app.change([{ op: 'replace', path: path(id, 'text'), value: t }]);
  }

  el.clear.addEventListener('click', () => {
    const done = Object.entries(items()).filter(([, it]) => it && it.done);
    if (!done.length) return;
    app.change(done.map(([id]) => ({ op: 'remove', path: path(id) })));
    app.toast({ title: `Cleared ${plural(done.length, 'checked item')}` });
  });

  el.tagForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = el.tagInput.value.trim().toLowerCase();
    if (!t) return;
    if (!(app.state().tags || []).includes(t)) app.change([{ op: 'sadd', path: '/tags', value: t }]);
    el.tagInput.value = '';
  });

  const sortedItems = () => Object.entries(items())
    .filter(([, it]) => it && typeof it === 'object' && typeof it.text === 'string')
    .sort(([ka, a], [kb, b]) => (a.at || 0) - (b.at || 0) || (ka < kb ? -1 : 1));

  function render() {
    const s = app.state();
    const list = sortedItems();
    reconcile(el.list, list, ([id]) => id, ([id]) => {
      const box = h('input', {
        type: 'checkbox', class: 'item-check', dataset: { testid: 'item-toggle' },
        onchange: (e) => toggle(id, e.target.checked),
      });
      const text = h('input', {
        class: 'item-text', dataset: { testid: 'item-text' }, maxlength: '200',
        onchange: (e) => rename(id, e.target.value),
        onkeydown: (e) => { if (e.key === 'Enter') e.target.blur(); if (e.key === 'Escape') { e.target.value = items()[id]?.text || ''; e.target.blur(); } },
      });
      const del = h('button', {
        type: 'button', class: 'icon-btn small item-del', dataset: { testid: 'item-delete' },
        onclick: () => app.change([{ op: 'remove', path: path(id) }]),
      }, h('span', { 'aria-hidden': 'true' }, '✕'), h('span', { class: 'visually-hidden' }, 'Delete'));
      return h('li', { class: 'item', dataset: { testid: 'item', id } }, box, text, h('span', { class: 'item-by' }), del);
    }, (li, [id, it]) => {
      const [box, text, by, del] = li.children;
      const label = it.text;
      box.checked = !!it.done;
      box.setAttribute('aria-label', `${label}: ${it.done ? 'checked' : 'not checked'}`);
      if (document.activeElement !== text && text.value !== label) text.value = label;
      text.setAttribute('aria-label', `Item text: ${label}`);
      del.lastChild.textContent = `Delete ${label}`;
      setText(by, it.by && it.by !== device.name ? it.by : '');
      li.dataset.done = it.done ? 'true' : 'false';
      li.dataset.text = label;
    });
    if (!list.length) el.list.append(h('li', { class: 'empty-row', dataset: { key: '_empty' } }, 'Nothing to do. Add the first item above.'));
    const done = list.filter(([, it]) => it.done).length;
    setText(el.summary, list.length ? `${done} of ${list.length} done` : '');
    el.clear.hidden = done === 0;
    setText(el.counter, Number(s.counters?.done) || 0);

    const tags = Array.isArray(s.tags) ? [...s.tags].sort() : [];
    reconcile(el.tags, tags, (t) => `t:${t}`, (t) => h('li', { class: 'tag', dataset: { testid: 'tag', tag: t } },
      h('span', { text: t }),
      h('button', {
        type: 'button', class: 'tag-x', 'aria-label': `Remove label ${t}`,
        // srem removes only the adds this tab has seen (its base)
        onclick: () => app.change([{ op: 'srem', path: '/tags', value: t }], { base: 'current' }),
      }, '×')), () => {});
  }

  return { render };
}
