// notes.js - the notes panel: a list and an editor. A note is
// /notes/<id> = {title, text, at, by}; its text is under the server's
// `version` strategy (web/state-rules.json), so an edit made against an
// old version of the text (offline, or while another device typed) is
// refused with the current text instead of silently overwriting it. The
// app then merges the two edits line by line (merge.js), sends the result
// and says so in a toast and under the editor. What an edit was based on
// is kept in localStorage until the server has it, so a reload between
// the edit and its conflict still merges.
import { $, h, reconcile, setText, randomId, seg, ago, debounce, clock } from './util.js';
import { merge3 } from './merge.js';

const SAVE_MS = 400; // typing pause before a save: fewer changes, still live

export function createNotes(app) {
  const { ts, device } = app;
  const el = {
    list: $('note-list'), editor: $('editor'), empty: $('editor-empty'),
    title: $('note-title'), text: $('note-text'), meta: $('note-meta'),
    notice: $('note-notice'), btnNew: $('btn-new-note'), btnDelete: $('btn-delete-note'),
    back: $('btn-back'), box: document.querySelector('.notes'),
  };
  const selKey = app.key('note');
  const editsKey = app.key('edits');
  let selected = sessionStorage.getItem(selKey) || null;
  // the text the editor was last filled from, and the version it had then:
  // the base of the next save while no edit of this note is outstanding
  let loaded = { id: null, text: '', ver: 0 };
  // per note with edits the server has not confirmed: {baseText, baseVer, mine}
  let edits = {};
  try { edits = JSON.parse(localStorage.getItem(editsKey) || '{}') || {}; } catch { edits = {}; }
  const persist = () => {
    try { localStorage.setItem(editsKey, JSON.stringify(edits)); } catch { /* full: in memory */ }
  };
  const mergesDue = new Map(); // note id -> the newest conflict seen for it
  let lastNotice = null;
  let presenceNote = null; // the title other tabs see us on

  const notes = () => app.state().notes || {};
  const textPath = (id) => `/notes/${seg(id)}/text`;
  const noteOf = (path) => {
    const m = /^\/notes\/([^/]+)/.exec(path || '');
    return m ? m[1].replace(/~1/g, '/').replace(/~0/g, '~') : null;
  };
  const titleOf = (n) => (n && n.title && n.title.trim()) || 'Untitled';

  function select(id, { focus = null } = {}) {
    if (selected !== id) {
      saveText.flush();
      saveTitle.flush();
    }
    selected = id;
    if (id) sessionStorage.setItem(selKey, id);
    else sessionStorage.removeItem(selKey);
    loaded = { id: null, text: '', ver: 0 };
    hideNotice();
    render();
    if (focus === 'title') el.title.focus();
    if (focus === 'text') el.text.focus();
    app.show('notes');
  }

  // ---- saving ----------------------------------------------------------------

  function sendText(id, text, base) {
    return app.change([
      { op: 'replace', path: textPath(id), value: text },
      { op: 'add', path: `/notes/${seg(id)}/at`, value: Date.now() },
      { op: 'add', path: `/notes/${seg(id)}/by`, value: device.name },
    ], { base });
  }

  const saveText = debounce(() => {
    const id = loaded.id;
    if (!id || !notes()[id]) return;
    const text = el.text.value;
    const rec = edits[id] || (edits[id] = { baseText: loaded.text, baseVer: loaded.ver, mine: text });
    rec.mine = text;
    persist();
    if (text === (notes()[id].text ?? '')) return;
    sendText(id, text, rec.baseVer);
  }, SAVE_MS);

  const saveTitle = debounce(() => {
    const id = loaded.id;
    const n = id && notes()[id];
    if (!n || el.title.value === (n.title ?? '')) return;
    app.change([
      { op: 'add', path: `/notes/${seg(id)}/title`, value: el.title.value },
      { op: 'add', path: `/notes/${seg(id)}/at`, value: Date.now() },
      { op: 'add', path: `/notes/${seg(id)}/by`, value: device.name },
    ]);
  }, SAVE_MS);

  el.text.addEventListener('input', () => saveText());
  el.text.addEventListener('blur', () => saveText.flush());
  el.title.addEventListener('input', () => saveTitle());
  el.title.addEventListener('blur', () => saveTitle.flush());
  el.title.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      saveTitle.flush();
      el.text.focus();
    }
  });

  // on a phone the list and the editor take turns
  el.back.addEventListener('click', () => select(null));

  el.btnNew.addEventListener('click', () => {
    const id = randomId('n', 8);
    // a merge patch creates /notes when it is missing without replacing it
    // (two devices making their first note at once keep both)
    app.change({ merge: { notes: { [id]: { title: '', text: '', at: Date.now(), by: device.name } } } },
      { base: 'current' });
    select(id, { focus: 'title' });
  });

  el.btnDelete.addEventListener('click', () => {
    const id = loaded.id;
    const n = id && notes()[id];
    if (!n) return;
    saveText.cancel();
    saveTitle.cancel();
    const copy = { ...n, text: el.text.value };
    delete edits[id];
    persist();
    app.change([{ op: 'remove', path: `/notes/${seg(id)}` }]);
    const rest = sorted().filter(([k]) => k !== id);
    select(rest.length ? rest[0][0] : null);
    app.toast({
      title: `Deleted “${titleOf(copy)}”`,
      actions: [{
        label: 'Undo',
        run: () => {
          app.change({ merge: { notes: { [id]: { ...copy, at: Date.now(), by: device.name } } } },
            { base: 'current' });
          select(id);
        },
      }],
    });
  });

  // ---- conflicts ----------------------------------------------------------------

  // The library asks what to do with a refused `version` change: 'drop' (we
  // merge and resend ourselves) when every conflict is a note we hold the
  // base of; else 'rebase' (ours is re-applied on theirs: the toast then
  // offers theirs back).
  function decide(conflict) {
    const list = conflict?.conflicts || conflict?.conflict?.conflicts ||
      conflict?.change?.conflict?.conflicts || [];
    if (!list.length) return 'rebase';
    return list.every((c) => { const id = noteOf(c.path); return id && edits[id]; }) ? 'drop' : 'rebase';
  }

  function onConflict({ conflicts = [], resolution } = {}) {
    for (const c of conflicts) {
      const id = noteOf(c.path);
      if (!id) continue;
      if (resolution === 'dropped' && edits[id]) {
        const prev = mergesDue.get(id);
        if (!prev || (c.ver ?? 0) >= (prev.ver ?? 0)) mergesDue.set(id, c);
        // several queued saves of one note conflict at once: merge once
        setTimeout(() => runMerge(id), 30);
      } else if (resolution === 'rebased') {
        const n = notes()[id];
        const theirs = typeof c.value === 'string' ? c.value : null;
        app.toast({
          kind: 'conflict', timeout: 12000,
          title: `Your edit to “${titleOf(n)}” was rebased on ${who(n)}’s`,
          body: 'Yours replaced theirs.',
          actions: theirs === null ? [] : [{
            label: 'Restore theirs',
            run: () => sendText(id, theirs, 'current'),
          }],
        });
      }
    }
  }

  function who(n) {
    return n && n.by && n.by !== device.name ? n.by : 'another device';
  }

  function runMerge(id) {
    const c = mergesDue.get(id);
    mergesDue.delete(id);
    const rec = edits[id];
    if (!c || !rec) return;
    const n = notes()[id];
    const showing = loaded.id === id;
    // what we wrote: the last save, or the editor if typing has not been
    // saved yet (the editor may already show the rolled-back text)
    const mine = showing && saveText.pending() ? el.text.value : rec.mine;
    if (typeof c.value !== 'string' || !n) {
      // the note was deleted elsewhere: keep what was written as a new note
      delete edits[id];
      persist();
      const nid = randomId('n', 8);
      app.change({ merge: { notes: { [nid]: { title: `${titleOf(n) || 'Note'} (recovered)`, text: mine, at: Date.now(), by: device.name } } } },
        { base: 'current' });
      app.toast({ kind: 'conflict', title: 'A note you edited was deleted on another device', body: 'Your text was kept as a new note.' });
      if (showing) select(nid);
      return;
    }
    const theirs = c.value;
    const { text, clean } = merge3(rec.baseText, mine, theirs);
    saveText.cancel();
    edits[id] = { baseText: theirs, baseVer: c.ver, mine: text };
    persist();
    if (showing) {
      loaded = { id, text: theirs, ver: c.ver };
      putText(text);
    }
    if (text !== theirs) sendText(id, text, c.ver);
    const name = who(n);
    const title = `Your edit to “${titleOf(n)}” was rebased on ${name}’s`;
    const body = clean ? 'Both edits are kept.' : 'You both changed the same lines: theirs first, then yours.';
    app.toast({ kind: 'conflict', title, body, timeout: 10000, actions: showing ? [] : [{ label: 'Open', run: () => select(id) }] });
    lastNotice = { id, text: `Merged at ${clock(Date.now())} with an edit from ${name}. ${body}` };
    showNotice();
    app.conflicts.push({ note: id, at: Date.now(), clean, with: name });
  }

  // ---- rendering ---------------------------------------------------------------

  function showNotice() {
    if (lastNotice && lastNotice.id === selected) {
      el.notice.hidden = false;
      setText(el.notice, lastNotice.text);
    } else hideNotice();
  }
  function hideNotice() { el.notice.hidden = true; }

  // Replace the textarea's text, keeping the caret where it was relative
  // to the text around it.
  function putText(text) {
    const ta = el.text;
    if (ta.value === text) return;
    const focused = document.activeElement === ta;
    const { selectionStart: s, selectionEnd: e, value: old } = ta;
    ta.value = text;
    if (focused) {
      const keep = old.slice(0, s) === text.slice(0, s);
      const d = keep ? 0 : text.length - old.length;
      ta.setSelectionRange(Math.max(0, s + d), Math.max(0, e + d));
    }
  }

  const sorted = () => Object.entries(notes())
    .filter(([, n]) => n && typeof n === 'object')
    .sort(([ka, a], [kb, b]) => (b.at || 0) - (a.at || 0) || (ka < kb ? -1 : 1));

  function render() {
    const list = sorted();
    if (selected && !notes()[selected] && app.docKnown()) selected = null;
    if (!selected && list.length && !app.isPhone()) selected = list[0][0];

    reconcile(el.list, list, ([id]) => id, ([id]) => {
      const b = h('button', { type: 'button', class: 'note-btn', onclick: () => select(id, { focus: 'text' }) },
        h('span', { class: 'note-btn-title' }), h('span', { class: 'note-btn-snippet' }), h('span', { class: 'note-btn-meta' }));
      return h('li', { dataset: { testid: 'note-item', id } }, b);
    }, (li, [id, n]) => {
      const b = li.firstChild;
      setText(b.children[0], titleOf(n));
      setText(b.children[1], (n.text || '').split('\n').find((l) => l.trim()) || 'No text');
      setText(b.children[2], `${n.at ? ago(n.at) : ''}${n.by ? ` · ${n.by === device.name ? 'you' : n.by}` : ''}`);
      if (id === selected) b.setAttribute('aria-current', 'true');
      else b.removeAttribute('aria-current');
      li.dataset.pending = edits[id] ? 'true' : 'false';
    });
    if (!list.length) {
      el.list.append(h('li', { class: 'empty-row', dataset: { key: '_empty' } }, 'No notes yet.'));
    }

    const n = selected && notes()[selected];
    el.box.dataset.mode = n ? 'edit' : 'list';
    const shown = n ? titleOf(n) : null;
    if (shown !== presenceNote) {
      presenceNote = shown;
      app.presence({ note: shown });
    }
    el.editor.hidden = !n;
    el.empty.hidden = !!n;
    el.editor.dataset.id = n ? selected : '';
    if (!n) return;
    if (document.activeElement !== el.title && !saveTitle.pending()) {
      if (el.title.value !== (n.title ?? '')) el.title.value = n.title ?? '';
    }
    const stateText = n.text ?? '';
    if (loaded.id !== selected) {
      const rec = edits[selected];
      loaded = rec ? { id: selected, text: rec.baseText, ver: rec.baseVer }
        : { id: selected, text: stateText, ver: app.confirmedVer() };
      el.text.value = stateText;
    } else if (el.text.value !== stateText) {
      if (mergesDue.has(selected)) {
        // the library took our refused edit back; the merge puts it in again
      } else if (saveText.pending()) {
        // someone changed it while we type: our save, made against the old
        // version, will be refused and merged; say so now
        lastNotice = { id: selected, text: `${who(n)} is changing this note too: your typing will be merged with theirs.` };
      } else {
        putText(stateText);
        if (!edits[selected]) loaded = { id: selected, text: stateText, ver: app.confirmedVer() };
      }
    } else if (!edits[selected] && !saveText.pending()) {
      loaded = { id: selected, text: stateText, ver: app.confirmedVer() };
    }
    setText(el.meta, [
      n.at ? `Edited ${ago(n.at)}` : '',
      n.by ? `on ${n.by === device.name ? 'this device' : n.by}` : '',
      edits[selected] ? '· saving…' : '',
    ].filter(Boolean).join(' '));
    showNotice();
  }

  // Once the queue holds no save of a note and the document shows what we
  // wrote, its edit record (the merge base) is no longer needed.
  function onQueue(queue) {
    const busy = new Set();
    for (const item of queue || []) {
      // a patch names paths; a merge (new notes, undo) names note ids
      if (Array.isArray(item.ops)) {
        for (const op of item.ops) {
          const id = op && noteOf(op.path);
          if (id) busy.add(id);
        }
      } else for (const id of Object.keys(item.ops?.merge?.notes || {})) busy.add(id);
    }
    let changed = false;
    for (const [id, rec] of Object.entries(edits)) {
      if (busy.has(id) || mergesDue.has(id) || (loaded.id === id && saveText.pending())) continue;
      const n = notes()[id];
      if (!n || (n.text ?? '') === rec.mine) {
        delete edits[id];
        changed = true;
        if (loaded.id === id && n) loaded = { id, text: rec.mine, ver: app.confirmedVer() };
      }
    }
    if (changed) {
      persist();
      render();
    }
  }

  return {
    render, decide, onConflict, onQueue, select,
    selectedTitle: () => (selected ? titleOf(notes()[selected]) : null),
    edits: () => edits,
  };
}
