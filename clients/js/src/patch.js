// Immutable JSON updates with structural sharing: JSON Pointer (RFC 6901),
// JSON Patch (RFC 6902) plus tabsync's incr/sadd/srem, JSON Merge Patch
// (RFC 7396) and the server's `effects`. Nothing is ever modified in place:
// an update copies only the containers on the way to what it changes, so an
// unchanged subtree keeps its identity and subscribers can compare with ===.
// Error codes and edge cases follow tabsyncd (src/session/state.c), so that
// a change that fails here is one the server refuses too.

/** A refused operation; `code` is the server's error code for the same case. */
export class PatchError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'PatchError';
    this.code = code;
  }
}

const fail = (code, message) => {
  throw new PatchError(code, message);
};
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const INDEX = /^(0|[1-9][0-9]*)$/;

// A plain assignment of '__proto__' would change the prototype instead of
// adding the member a JSON document may well have.
function put(o, k, v) {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
}

/**
 * Splits an RFC 6901 JSON Pointer into its unescaped segments ('' is the root).
 * @param {string} p
 * @returns {string[]}
 * @throws {PatchError} bad_patch when p is not a JSON Pointer
 */
export function parsePointer(p) {
  if (typeof p !== 'string') fail('bad_patch', 'a JSON Pointer must be a string');
  if (p === '') return [];
  if (p[0] !== '/') fail('bad_patch', `"${p}" is not a JSON Pointer: it must start with "/"`);
  if (/~(?![01])/.test(p)) fail('bad_patch', `"${p}" is not a JSON Pointer: ~ must be followed by 0 or 1`);
  // ~1 before ~0, so that "~01" becomes "~1" and not "/"
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

const segsOf = (pointer) => (Array.isArray(pointer) ? pointer : parsePointer(pointer));

/**
 * The value at a JSON Pointer (or an array of segments), undefined when absent.
 * @param {*} doc
 * @param {string|string[]} pointer
 */
export function getPath(doc, pointer) {
  let cur = doc;
  for (const s of segsOf(pointer)) {
    if (Array.isArray(cur)) {
      if (!INDEX.test(s) || Number(s) >= cur.length) return undefined;
      cur = cur[Number(s)];
    } else if (isObj(cur) && has(cur, s)) {
      cur = cur[s];
    } else {
      return undefined;
    }
  }
  return cur;
}

/** JSON equality: objects regardless of member order. */
export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!has(b, k) || !deepEqual(a[k], b[k])) return false;
  return true;
}

function arrayIndex(arr, s, forAdd) {
  if (forAdd && s === '-') return arr.length;
  if (!INDEX.test(s)) fail('bad_path', `"${s}" is not an index of an array`);
  const i = Number(s);
  if (i > arr.length || (!forAdd && i === arr.length)) fail('bad_path', `index ${s} is out of range (size ${arr.length})`);
  return i;
}

// node with its child k replaced by v (node itself when v is already there)
function withChild(node, k, v) {
  if (Array.isArray(node)) {
    const i = Number(k);
    if (node[i] === v) return node;
    const a = node.slice();
    a[i] = v;
    return a;
  }
  if (has(node, k) && node[k] === v) return node;
  const o = { ...node };
  put(o, k, v);
  return o;
}

// Copies the containers from node down to the parent of segs' last segment
// and lets leaf(parent, lastSegment) return the new parent. `create`: missing
// object members on the way become {} (incr, sadd), else they are bad_path.
function edit(node, segs, i, leaf, create) {
  if (i === segs.length - 1) return leaf(node, segs[i]);
  const s = segs[i];
  let child;
  if (Array.isArray(node)) {
    child = node[arrayIndex(node, s, false)];
  } else if (isObj(node)) {
    child = has(node, s) ? node[s] : undefined;
    if (child === undefined) {
      if (!create) fail('bad_path', `/${segs.slice(0, i + 1).join('/')} does not exist`);
      child = {};
    }
  } else {
    fail('bad_path', `/${segs.slice(0, i).join('/')} is not an object or array`);
  }
  return withChild(node, s, edit(child, segs, i + 1, leaf, create));
}

// the value at parent[k] for the leaf functions (undefined when absent)
function childAt(parent, k, what) {
  if (Array.isArray(parent)) return parent[arrayIndex(parent, k, false)];
  if (isObj(parent)) return has(parent, k) ? parent[k] : undefined;
  return fail('bad_path', `the parent of ${what} is not an object or array`);
}

function rootObject(v) {
  if (!isObj(v)) fail('type_mismatch', 'the document root must be an object');
  return v;
}

function add(doc, segs, value) {
  if (!segs.length) return rootObject(value);
  return edit(doc, segs, 0, (p, k) => {
    if (Array.isArray(p)) {
      const a = p.slice();
      a.splice(arrayIndex(p, k, true), 0, value);
      return a;
    }
    if (!isObj(p)) fail('bad_path', `the parent of ${k} is not an object or array`);
    return withChild(p, k, value);
  }, false);
}

function remove(doc, segs) {
  if (!segs.length) fail('bad_path', 'the document root cannot be removed');
  return edit(doc, segs, 0, (p, k) => {
    if (Array.isArray(p)) {
      const a = p.slice();
      a.splice(arrayIndex(p, k, false), 1);
      return a;
    }
    if (!isObj(p) || !has(p, k)) fail('bad_path', `${k} does not exist`);
    const o = { ...p };
    delete o[k];
    return o;
  }, false);
}

function replace(doc, segs, value) {
  if (!segs.length) return rootObject(value);
  return edit(doc, segs, 0, (p, k) => {
    if (childAt(p, k, k) === undefined) fail('bad_path', `${k} does not exist`);
    return withChild(p, k, value);
  }, false);
}

function needValue(op) {
  if (op.value === undefined) fail('bad_patch', `${op.op}: value is missing`);
}

function applyOp(doc, op) {
  if (!isObj(op)) fail('bad_patch', 'an operation must be an object');
  const segs = parsePointer(op.path);
  switch (op.op) {
    case 'add':
      needValue(op);
      return add(doc, segs, op.value);
    case 'remove':
      return remove(doc, segs);
    case 'replace':
      needValue(op);
      return replace(doc, segs, op.value);
    case 'test': {
      needValue(op);
      const cur = getPath(doc, segs);
      if (cur === undefined) fail('test_failed', `${op.path} does not exist`);
      if (!deepEqual(cur, op.value)) fail('test_failed', `the value at ${op.path} is not the tested value`);
      return doc;
    }
    case 'move':
    case 'copy': {
      const from = parsePointer(op.from);
      const v = getPath(doc, from);
      if (v === undefined) fail('bad_path', `from ${op.from} does not exist`);
      if (op.op === 'copy') return add(doc, segs, v);
      if (op.from === op.path) return doc;
      if (op.path.startsWith(`${op.from}/`)) fail('bad_path', `cannot move ${op.from} into its own child ${op.path}`);
      return add(remove(doc, from), segs, v);
    }
    case 'incr':
      if (typeof op.value !== 'number') fail('bad_patch', 'incr: value must be a number');
      if (!segs.length) fail('type_mismatch', 'the document root is not a number');
      return edit(doc, segs, 0, (p, k) => {
        const cur = childAt(p, k, op.path);
        if (cur !== undefined && typeof cur !== 'number') fail('type_mismatch', `${op.path} is not a number`);
        const v = (cur ?? 0) + op.value;
        if (!Number.isFinite(v)) fail('counter_overflow', `${op.path} would not be a finite number`);
        return withChild(p, k, v);
      }, true);
    case 'sadd':
    case 'srem': {
      needValue(op);
      if (!segs.length) fail('type_mismatch', 'the document root is not an array (a set)');
      const cur = getPath(doc, segs);
      if (cur !== undefined && !Array.isArray(cur)) fail('type_mismatch', `${op.path} is not an array (a set)`);
      if (op.op === 'srem') {
        if (!cur) return doc; // removing from a missing set creates nothing
        const kept = cur.filter((e) => !deepEqual(e, op.value));
        return kept.length === cur.length ? doc : edit(doc, segs, 0, (p, k) => withChild(p, k, kept), false);
      }
      if (cur && cur.some((e) => deepEqual(e, op.value))) return doc;
      const next = cur ? [...cur, op.value] : [op.value];
      return edit(doc, segs, 0, (p, k) => {
        childAt(p, k, op.path); // a path through a scalar or a bad index is bad_path
        return withChild(p, k, next);
      }, true);
    }
    default:
      return fail('bad_patch', `unknown op "${op.op}" (add, remove, replace, move, copy, test, incr, sadd, srem)`);
  }
}

/**
 * Applies a JSON Patch (RFC 6902 + incr/sadd/srem) and returns the new
 * document. Atomic: on a refusal it throws and `doc` is untouched.
 * @param {*} doc
 * @param {object[]} ops
 * @throws {PatchError}
 */
export function applyOps(doc, ops) {
  if (!Array.isArray(ops)) fail('bad_patch', 'a patch must be an array of operations');
  let d = doc;
  for (const op of ops) d = applyOp(d, op);
  return d;
}

/**
 * Applies an RFC 7396 JSON Merge Patch; returns the new document (doc itself
 * when nothing changes).
 */
export function applyMerge(doc, patch) {
  if (!isObj(patch)) return patch;
  let out = isObj(doc) ? doc : {};
  let copied = out !== doc;
  for (const k of Object.keys(patch)) {
    const v = patch[k];
    const cur = has(out, k) ? out[k] : undefined;
    if (v === null) {
      if (cur === undefined) continue;
      if (!copied) out = { ...out };
      copied = true;
      delete out[k];
      continue;
    }
    const nv = applyMerge(cur, v);
    if (nv === cur && has(out, k)) continue;
    if (!copied) out = { ...out };
    copied = true;
    put(out, k, nv);
  }
  return out;
}

function setIn(node, segs, i, v) {
  const o = isObj(node) ? node : {};
  const k = segs[i];
  const cur = has(o, k) ? o[k] : undefined;
  const nv = i === segs.length - 1 ? v : setIn(cur, segs, i + 1, v);
  if (nv === cur && o === node && has(o, k)) return node;
  const c = { ...o };
  put(c, k, nv);
  return c;
}

function delIn(node, segs, i) {
  const k = segs[i];
  if (!isObj(node) || !has(node, k)) return node;
  if (i === segs.length - 1) {
    const c = { ...node };
    delete c[k];
    return c;
  }
  return withChild(node, k, delIn(node[k], segs, i + 1));
}

/**
 * Applies the server's effects ([{op:'set', path, value} | {op:'del', path}],
 * final values of disjoint subtrees). A set creates missing parent objects
 * (effects never point inside arrays: the server names the whole array).
 */
export function applyEffects(doc, effects) {
  let d = doc;
  for (const ef of effects) {
    const segs = parsePointer(ef.path);
    if (ef.op === 'set') d = segs.length ? setIn(d, segs, 0, ef.value) : ef.value;
    else if (ef.op === 'del') d = segs.length ? delIn(d, segs, 0) : {};
    else fail('bad_patch', `unknown effect op "${ef.op}"`);
  }
  return d;
}

/**
 * `next` with every subtree that is deep-equal to the same place in `prev`
 * replaced by prev's: identities survive a recompute that rebuilt values
 * (a set from the server, a re-applied sadd), so === keeps meaning "unchanged".
 * Walks only where the identities differ.
 */
export function reconcile(prev, next) {
  if (prev === next || typeof prev !== 'object' || typeof next !== 'object' || !prev || !next) return next;
  if (Array.isArray(prev) !== Array.isArray(next)) return next;
  let samePrev = true;
  let sameNext = true;
  let out;
  if (Array.isArray(next)) {
    out = next.map((v, i) => (i < prev.length ? reconcile(prev[i], v) : v));
    samePrev = out.length === prev.length;
    out.forEach((v, i) => {
      if (v !== prev[i]) samePrev = false;
      if (v !== next[i]) sameNext = false;
    });
  } else {
    out = {};
    const keys = Object.keys(next);
    samePrev = keys.length === Object.keys(prev).length;
    for (const k of keys) {
      const v = has(prev, k) ? reconcile(prev[k], next[k]) : next[k];
      if (!has(prev, k) || v !== prev[k]) samePrev = false;
      if (v !== next[k]) sameNext = false;
      put(out, k, v);
    }
  }
  return samePrev ? prev : sameNext ? next : out;
}
