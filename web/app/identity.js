// identity.js - who this page is for tabsyncd's --dev demo: the workspace
// (session) and user from the address (#w=<name>&u=<user>), this browser
// profile's device id and fingerprint (kept in localStorage, so every tab
// of the profile is one device), a readable device name, and a token
// function that asks /api/dev/token afresh before every (re)connect.
import { randomId, randomHex } from './util.js';

const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
const DEVICE_KEY = 'tabsync-app.device';

export function fromHash(hash = location.hash) {
  const q = new URLSearchParams(hash.replace(/^#/, ''));
  const w = q.get('w');
  const u = q.get('u');
  return {
    workspace: w && ID_RE.test(w) ? w : 'demo',
    user: u && ID_RE.test(u) ? u : 'me',
  };
}

export const validWorkspace = (s) => ID_RE.test(s);

function guessType() {
  const ua = navigator.userAgent;
  if (navigator.userAgentData?.mobile || /Mobi|Android|iPhone|iPad/.test(ua)) return 'mobile';
  return 'browser';
}

function guessName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox'
    : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone/.test(ua) ? 'iPhone' : /iPad/.test(ua) ? 'iPad'
    : /Mac OS X/.test(ua) ? 'Mac' : /Windows/.test(ua) ? 'Windows' : /CrOS/.test(ua) ? 'ChromeOS'
      : /Linux/.test(ua) ? 'Linux' : 'a computer';
  return `${browser} on ${os}`;
}

// One device per browser profile: the id and fingerprint the token is
// bound to must be the same in every tab, and survive reloads.
export function loadDevice() {
  let d = null;
  try { d = JSON.parse(localStorage.getItem(DEVICE_KEY) || 'null'); } catch { d = null; }
  if (!d || !ID_RE.test(d.id || '') || !/^[0-9a-f]{32,64}$/.test(d.fingerprint || '')) {
    d = { id: randomId('dev-', 10), fingerprint: randomHex(16) };
  }
  if (!d.name) d.name = guessName();
  d.type = guessType();
  try { localStorage.setItem(DEVICE_KEY, JSON.stringify(d)); } catch { /* private mode: per page */ }
  return d;
}

export function saveDeviceName(device, name) {
  device.name = name.trim().slice(0, 40) || guessName();
  try { localStorage.setItem(DEVICE_KEY, JSON.stringify(device)); } catch { /* ignore */ }
}

// The library calls this before each connect: a fresh token every time,
// so an expired one never blocks a reconnect.
export function tokenSource({ user, workspace, device }) {
  return async () => {
    const q = new URLSearchParams({
      user, session: workspace, device: device.id, fingerprint: device.fingerprint, ttl: '3600',
    });
    const res = await fetch(`/api/dev/token?${q}`, { cache: 'no-store' });
    if (!res.ok) {
      let why = `HTTP ${res.status}`;
      try { why = (await res.json()).error?.message || why; } catch { /* not JSON */ }
      throw new Error(`no token: ${why}`);
    }
    return (await res.json()).token;
  };
}
