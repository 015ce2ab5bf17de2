// settings.js - the settings sheet and what it controls: the workspace's
// title, theme and accent (/settings/*, lww: the last writer wins, every
// device follows), and this device's own name (localStorage, sent in
// presence) and which workspace to open. The theme is also remembered
// locally so the next load paints in it before the document arrives.
import { $, setText, debounce } from './util.js';
import { saveDeviceName, validWorkspace } from './identity.js';

const THEMES = ['system', 'light', 'dark'];
const ACCENTS = ['indigo', 'teal', 'rose', 'amber'];
const LOOK_KEY = 'tabsync-app.look';

export function applyCachedLook() {
  try {
    const { theme, accent } = JSON.parse(localStorage.getItem(LOOK_KEY) || '{}');
    if (THEMES.includes(theme)) document.documentElement.dataset.theme = theme;
    if (ACCENTS.includes(accent)) document.documentElement.dataset.accent = accent;
  } catch { /* first visit */ }
}

export function createSettings(app) {
  const { device } = app;
  const el = {
    dialog: $('settings'), form: $('settings-form'), open: $('btn-settings'),
    title: $('set-title'), deviceName: $('set-device-name'), ws: $('set-workspace'), openWs: $('btn-open-ws'),
    wsTitle: $('ws-title'), wsName: $('ws-name'), me: $('me-label'), build: $('build-info'),
  };
  setText(el.wsName, app.workspace);
  el.ws.value = app.workspace;
  el.deviceName.value = device.name;
  setText(el.build, app.build === 'prod'
    ? 'Production build: /vendor/tabsync.js, no debug console.'
    : 'Development build: /vendor/tabsync.dev.js with the debug console ({ } in the top bar). Add ?build=prod to the address for the production build.');

  const settings = () => app.state().settings || {};

  el.open.addEventListener('click', () => {
    el.title.value = settings().title || '';
    el.deviceName.value = device.name;
    el.dialog.showModal();
  });
  // a click on the backdrop closes the sheet
  el.dialog.addEventListener('click', (e) => { if (e.target === el.dialog) el.dialog.close(); });

  const saveTitle = debounce(() => {
    const t = el.title.value.trim().slice(0, 80);
    if (t !== (settings().title || '')) app.change({ merge: { settings: { title: t } } });
  }, 400);
  el.title.addEventListener('input', () => saveTitle());
  el.title.addEventListener('change', () => saveTitle.flush());
  el.dialog.addEventListener('close', () => {
    saveTitle.flush();
    saveName();
  });

  for (const r of el.form.querySelectorAll('input[name=theme], input[name=accent]')) {
    r.addEventListener('change', () => {
      if (r.checked && settings()[r.name] !== r.value) app.change({ merge: { settings: { [r.name]: r.value } } });
    });
  }

  function saveName() {
    const v = el.deviceName.value.trim();
    if (v && v !== device.name) {
      saveDeviceName(device, v);
      app.presence({ name: device.name });
      app.renderAll();
    }
  }
  el.deviceName.addEventListener('change', saveName);

  function openWorkspace() {
    const w = el.ws.value.trim();
    if (!validWorkspace(w)) {
      el.ws.setCustomValidity('1–64 letters, digits, . _ or -');
      el.ws.reportValidity();
      return;
    }
    el.ws.setCustomValidity('');
    location.hash = `w=${encodeURIComponent(w)}`;
  }
  el.openWs.addEventListener('click', openWorkspace);
  el.ws.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      openWorkspace();
    }
  });

  function render() {
    const s = settings();
    const title = (s.title && String(s.title).trim()) || 'Untitled workspace';
    setText(el.wsTitle, title);
    document.title = `${title} · tabsync`;
    if (document.activeElement !== el.title && !saveTitle.pending()) el.title.value = s.title || '';
    const theme = THEMES.includes(s.theme) ? s.theme : 'system';
    const accent = ACCENTS.includes(s.accent) ? s.accent : 'indigo';
    document.documentElement.dataset.theme = theme;
    document.documentElement.dataset.accent = accent;
    for (const r of el.form.querySelectorAll('input[name=theme], input[name=accent]')) {
      r.checked = r.value === (r.name === 'theme' ? theme : accent);
    }
    try { localStorage.setItem(LOOK_KEY, JSON.stringify({ theme, accent })); } catch { /* ignore */ }
    setText(el.me, `${app.user} · ${device.name}`);
  }

  return { render };
}
