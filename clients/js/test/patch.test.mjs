// Unit tests of src/patch.js: JSON Pointer, every RFC 6902 operation with the
// RFC's own examples (Appendix A) and error cases, tabsync's incr/sadd/srem,
// RFC 7396 merge (its Appendix A table), the server's effects, atomicity and
// structural sharing. Every input document is deep-frozen: an update that
// modified it in place would throw.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  PatchError, parsePointer, getPath, applyOps, applyMerge, applyEffects, deepEqual, reconcile,
} from '../src/patch.js';

function freeze(v) {
  if (v && typeof v === 'object') {
    Object.freeze(v);
    for (const k of Object.keys(v)) freeze(v[k]);
  }
  return v;
}

/** applyOps on a frozen copy of doc. */
const run = (doc, ops) => applyOps(freeze(structuredClone(doc)), ops);

/** Asserts that fn throws a PatchError with code. */
function refuses(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof PatchError, `expected a PatchError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

describe('JSON Pointer', () => {
  it('parses RFC 6901 pointers with escapes', () => {
    assert.deepEqual(parsePointer(''), []);
    assert.deepEqual(parsePointer('/'), ['']);
    assert.deepEqual(parsePointer('/foo/0'), ['foo', '0']);
    assert.deepEqual(parsePointer('/a~1b'), ['a/b']);
    assert.deepEqual(parsePointer('/m~0n'), ['m~n']);
    assert.deepEqual(parsePointer('/~01'), ['~1'], '~01 is "~1", not "/"');
  });
  it('refuses malformed pointers with bad_patch', () => {
    refuses(() => parsePointer('foo'), 'bad_patch');
    refuses(() => parsePointer('/a~'), 'bad_patch');
    refuses(() => parsePointer('/a~2'), 'bad_patch');
    refuses(() => parsePointer(7), 'bad_patch');
  });
  it('getPath reads objects and arrays, undefined when absent', () => {
    const doc = { foo: ['bar', 'baz'], '': 0, 'a/b': 1, 'm~n': 8, k: { x: null } };
    assert.equal(getPath(doc, ''), doc);
    assert.equal(getPath(doc, '/foo/1'), 'baz');
    assert.equal(getPath(doc, '/'), 0);
    assert.equal(getPath(doc, '/a~1b'), 1);
    assert.equal(getPath(doc, '/m~0n'), 8);
    assert.equal(getPath(doc, '/k/x'), null);
    assert.equal(getPath(doc, '/foo/2'), undefined);
    assert.equal(getPath(doc, '/foo/01'), undefined, 'leading zeros are not an index');
    assert.equal(getPath(doc, '/foo/-'), undefined);
    assert.equal(getPath(doc, '/nope/x'), undefined);
    assert.equal(getPath(doc, '/toString'), undefined, 'inherited members are not members');
  });
});

describe('JSON Patch: RFC 6902 Appendix A', () => {
  it('A.1 adding an object member', () => {
    assert.deepEqual(run({ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }]), { baz: 'qux', foo: 'bar' });
  });
  it('A.2 adding an array element', () => {
    assert.deepEqual(run({ foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }]), { foo: ['bar', 'qux', 'baz'] });
  });
  it('A.3 removing an object member', () => {
    assert.deepEqual(run({ baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }]), { foo: 'bar' });
  });
  it('A.4 removing an array element', () => {
    assert.deepEqual(run({ foo: ['bar', 'qux', 'baz'] }, [{ op: 'remove', path: '/foo/1' }]), { foo: ['bar', 'baz'] });
  });
  it('A.5 replacing a value', () => {
    assert.deepEqual(run({ baz: 'qux', foo: 'bar' }, [{ op: 'replace', path: '/baz', value: 'boo' }]), { baz: 'boo', foo: 'bar' });
  });
  it('A.6 moving a value', () => {
    const doc = { foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } };
    assert.deepEqual(run(doc, [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }]),
      { foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } });
  });
  it('A.7 moving an array element', () => {
    assert.deepEqual(run({ foo: ['all', 'grass', 'cows', 'eat'] }, [{ op: 'move', from: '/foo/1', path: '/foo/3' }]),
      { foo: ['all', 'cows', 'eat', 'grass'] });
  });
  it('A.8 testing a value: success', () => {
    const doc = { baz: 'qux', foo: ['a', 2, 'c'] };
    assert.deepEqual(run(doc, [{ op: 'test', path: '/baz', value: 'qux' }, { op: 'test', path: '/foo/1', value: 2 }]), doc);
  });
  it('A.9 testing a value: error', () => {
    refuses(() => run({ baz: 'qux' }, [{ op: 'test', path: '/baz', value: 'bar' }]), 'test_failed');
  });
  it('A.10 adding a nested member object', () => {
    assert.deepEqual(run({ foo: 'bar' }, [{ op: 'add', path: '/child', value: { grandchild: {} } }]), { foo: 'bar', child: { grandchild: {} } });
  });
  it('A.11 ignoring unrecognized elements', () => {
    assert.deepEqual(run({ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux', xyz: 123 }]), { foo: 'bar', baz: 'qux' });
  });
  it('A.12 adding to a nonexistent target', () => {
    refuses(() => run({ foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }]), 'bad_path');
  });
  it('A.14 ~ escape ordering', () => {
    const doc = { '/': 9, '~1': 10 };
    assert.deepEqual(run(doc, [{ op: 'test', path: '/~01', value: 10 }]), doc);
  });
  it('A.15 comparing strings and numbers', () => {
    refuses(() => run({ '/': 9, '~1': 10 }, [{ op: 'test', path: '/~01', value: '10' }]), 'test_failed');
  });
  it('A.16 adding an array value', () => {
    assert.deepEqual(run({ foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }]), { foo: ['bar', ['abc', 'def']] });
  });
});

describe('JSON Patch: each operation and its refusals', () => {
  it('add: at the end, replacing a member, the root; refusals', () => {
    assert.deepEqual(run({ a: [1] }, [{ op: 'add', path: '/a/1', value: 2 }]), { a: [1, 2] }, 'index == length appends');
    assert.deepEqual(run({ a: 1 }, [{ op: 'add', path: '/a', value: 2 }]), { a: 2 }, 'add on an existing member replaces it');
    assert.deepEqual(run({ a: 1 }, [{ op: 'add', path: '', value: { b: 2 } }]), { b: 2 });
    refuses(() => run({ a: [1] }, [{ op: 'add', path: '/a/2', value: 0 }]), 'bad_path');
    refuses(() => run({ a: [1] }, [{ op: 'add', path: '/a/01', value: 0 }]), 'bad_path');
    refuses(() => run({ a: [1] }, [{ op: 'add', path: '/a/x', value: 0 }]), 'bad_path');
    refuses(() => run({ a: 5 }, [{ op: 'add', path: '/a/x', value: 0 }]), 'bad_path');
    refuses(() => run({}, [{ op: 'add', path: '', value: [1] }]), 'type_mismatch');
    refuses(() => run({}, [{ op: 'add', path: '/x' }]), 'bad_patch');
  });
  it('add of __proto__ makes a member, not a prototype', () => {
    const out = run({}, [{ op: 'add', path: '/__proto__', value: { polluted: 1 } }]);
    assert.deepEqual(Object.keys(out), ['__proto__']);
    assert.equal(out.polluted, undefined);
    assert.equal({}.polluted, undefined);
  });
  it('remove: members and elements; refusals', () => {
    assert.deepEqual(run({ a: { b: 1, c: 2 } }, [{ op: 'remove', path: '/a/b' }]), { a: { c: 2 } });
    refuses(() => run({ a: 1 }, [{ op: 'remove', path: '/b' }]), 'bad_path');
    refuses(() => run({ a: [1] }, [{ op: 'remove', path: '/a/1' }]), 'bad_path');
    refuses(() => run({ a: 1 }, [{ op: 'remove', path: '' }]), 'bad_path');
    refuses(() => run({}, [{ op: 'remove', path: '/x/y' }]), 'bad_path');
  });
  it('replace: values, the root; refusals', () => {
    assert.deepEqual(run({ a: [1, 2] }, [{ op: 'replace', path: '/a/0', value: 9 }]), { a: [9, 2] });
    assert.deepEqual(run({ a: 1 }, [{ op: 'replace', path: '', value: { z: 1 } }]), { z: 1 });
    refuses(() => run({ a: 1 }, [{ op: 'replace', path: '/b', value: 1 }]), 'bad_path');
    refuses(() => run({ a: [] }, [{ op: 'replace', path: '/a/0', value: 1 }]), 'bad_path');
    refuses(() => run({ a: 1 }, [{ op: 'replace', path: '', value: 'x' }]), 'type_mismatch');
    refuses(() => run({ a: 1 }, [{ op: 'replace', path: '/a' }]), 'bad_patch');
  });
  it('move and copy; refusals', () => {
    assert.deepEqual(run({ a: { x: 1 } }, [{ op: 'copy', from: '/a', path: '/b' }]), { a: { x: 1 }, b: { x: 1 } });
    assert.deepEqual(run({ a: [1, 2] }, [{ op: 'copy', from: '/a/0', path: '/a/-' }]), { a: [1, 2, 1] });
    const doc = freeze({ a: 1 });
    assert.equal(applyOps(doc, [{ op: 'move', from: '/a', path: '/a' }]), doc, 'a move onto itself changes nothing');
    refuses(() => run({ a: 1 }, [{ op: 'move', from: '/b', path: '/c' }]), 'bad_path');
    refuses(() => run({ a: 1 }, [{ op: 'copy', from: '/b', path: '/c' }]), 'bad_path');
    refuses(() => run({ a: { b: {} } }, [{ op: 'move', from: '/a', path: '/a/b/c' }]), 'bad_path');
    refuses(() => run({ a: 1 }, [{ op: 'move', path: '/c' }]), 'bad_patch');
  });
  it('test: deep equality regardless of member order; a missing target fails', () => {
    const doc = { o: { a: 1, b: [1, { c: 2 }] } };
    assert.deepEqual(run(doc, [{ op: 'test', path: '/o', value: { b: [1, { c: 2 }], a: 1 } }]), doc);
    refuses(() => run(doc, [{ op: 'test', path: '/o', value: { a: 1 } }]), 'test_failed');
    refuses(() => run(doc, [{ op: 'test', path: '/nope', value: null }]), 'test_failed');
    refuses(() => run(doc, [{ op: 'test', path: '/o/b', value: [{ c: 2 }, 1] }]), 'test_failed');
  });
  it('malformed operations are bad_patch', () => {
    refuses(() => run({}, [{ op: 'frobnicate', path: '/a', value: 1 }]), 'bad_patch');
    refuses(() => run({}, [{ path: '/a', value: 1 }]), 'bad_patch');
    refuses(() => run({}, ['add']), 'bad_patch');
    refuses(() => run({}, [{ op: 'add', path: 'a', value: 1 }]), 'bad_patch');
    refuses(() => run({}, { op: 'add', path: '/a', value: 1 }), 'bad_patch');
  });
});

describe('tabsync operations: incr, sadd, srem', () => {
  it('incr: a missing target is 0, missing objects on the way are made', () => {
    assert.deepEqual(run({}, [{ op: 'incr', path: '/c/n', value: 2 }]), { c: { n: 2 } });
    assert.deepEqual(run({ c: { n: 2 } }, [{ op: 'incr', path: '/c/n', value: -5 }]), { c: { n: -3 } });
    assert.deepEqual(run({ l: [1, 2] }, [{ op: 'incr', path: '/l/1', value: 1.5 }]), { l: [1, 3.5] });
  });
  it('incr refusals', () => {
    refuses(() => run({ c: 'x' }, [{ op: 'incr', path: '/c', value: 1 }]), 'type_mismatch');
    refuses(() => run({ c: null }, [{ op: 'incr', path: '/c', value: 1 }]), 'type_mismatch');
    refuses(() => run({}, [{ op: 'incr', path: '/c', value: '1' }]), 'bad_patch');
    refuses(() => run({}, [{ op: 'incr', path: '/c' }]), 'bad_patch');
    refuses(() => run({ s: 3 }, [{ op: 'incr', path: '/s/x', value: 1 }]), 'bad_path');
    refuses(() => run({ l: [] }, [{ op: 'incr', path: '/l/0', value: 1 }]), 'bad_path');
    refuses(() => run({}, [{ op: 'incr', path: '', value: 1 }]), 'type_mismatch');
  });
  it('sadd: appends a value that is not a member (deep equality); missing = []', () => {
    assert.deepEqual(run({}, [{ op: 'sadd', path: '/t', value: 'a' }]), { t: ['a'] });
    assert.deepEqual(run({}, [{ op: 'sadd', path: '/x/t', value: 1 }]), { x: { t: [1] } });
    assert.deepEqual(run({ t: ['a'] }, [{ op: 'sadd', path: '/t', value: 'b' }]), { t: ['a', 'b'] });
    const doc = freeze({ t: [{ a: 1, b: 2 }], o: {} });
    assert.equal(applyOps(doc, [{ op: 'sadd', path: '/t', value: { b: 2, a: 1 } }]), doc, 'a member: nothing changes, not even identity');
    refuses(() => run({ t: 'a' }, [{ op: 'sadd', path: '/t', value: 'b' }]), 'type_mismatch');
    refuses(() => run({ t: {} }, [{ op: 'sadd', path: '/t', value: 'b' }]), 'type_mismatch');
    refuses(() => run({}, [{ op: 'sadd', path: '/t' }]), 'bad_patch');
  });
  it('srem: removes every deep-equal member; a missing set stays missing', () => {
    assert.deepEqual(run({ t: ['a', { k: [1] }, 'b', 'a'] }, [{ op: 'srem', path: '/t', value: 'a' }]), { t: [{ k: [1] }, 'b'] });
    assert.deepEqual(run({ t: [{ x: 1, y: 2 }] }, [{ op: 'srem', path: '/t', value: { y: 2, x: 1 } }]), { t: [] });
    const doc = freeze({ t: ['a'] });
    assert.equal(applyOps(doc, [{ op: 'srem', path: '/t', value: 'z' }]), doc);
    assert.equal(applyOps(doc, [{ op: 'srem', path: '/u/v', value: 'z' }]), doc);
    refuses(() => run({ t: 3 }, [{ op: 'srem', path: '/t', value: 3 }]), 'type_mismatch');
  });
});

describe('atomicity and structural sharing', () => {
  it('a refused patch throws and changes nothing (earlier operations included)', () => {
    const doc = freeze({ a: 1, b: { c: [1, 2] } });
    const before = structuredClone(doc);
    refuses(() => applyOps(doc, [
      { op: 'replace', path: '/a', value: 2 },
      { op: 'add', path: '/b/c/-', value: 3 },
      { op: 'test', path: '/a', value: 1 },
    ]), 'test_failed');
    assert.deepEqual(doc, before);
  });
  it('operations see the effect of the earlier ones', () => {
    assert.deepEqual(run({}, [
      { op: 'add', path: '/a', value: { n: 1 } },
      { op: 'incr', path: '/a/n', value: 1 },
      { op: 'test', path: '/a/n', value: 2 },
      { op: 'move', from: '/a', path: '/b' },
    ]), { b: { n: 2 } });
  });
  it('unchanged subtrees keep their identity; the path to a change is new', () => {
    const doc = freeze({ a: { x: 1, deep: { y: 1 } }, b: { y: 2 }, l: [{ k: 1 }, { k: 2 }] });
    const out = applyOps(doc, [{ op: 'replace', path: '/a/x', value: 5 }, { op: 'replace', path: '/l/1/k', value: 3 }]);
    assert.notEqual(out, doc);
    assert.notEqual(out.a, doc.a);
    assert.equal(out.a.deep, doc.a.deep);
    assert.equal(out.b, doc.b);
    assert.notEqual(out.l, doc.l);
    assert.equal(out.l[0], doc.l[0]);
    assert.notEqual(out.l[1], doc.l[1]);
  });
  it('a no-op (test only, replace by the same value) returns the same document', () => {
    const doc = freeze({ a: 1, o: { p: 1 } });
    assert.equal(applyOps(doc, [{ op: 'test', path: '/a', value: 1 }]), doc);
    assert.equal(applyOps(doc, [{ op: 'replace', path: '/a', value: 1 }]), doc);
  });
});

describe('JSON Merge Patch (RFC 7396 Appendix A)', () => {
  const cases = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, want] of cases) {
    it(`${JSON.stringify(target)} + ${JSON.stringify(patch)}`, () => {
      assert.deepEqual(applyMerge(freeze(structuredClone(target)), patch), want);
    });
  }
  it('keeps identity where nothing changed', () => {
    const doc = freeze({ a: { x: 1 }, b: { y: 1 } });
    assert.equal(applyMerge(doc, { a: { x: 1 }, c: null }), doc);
    const out = applyMerge(doc, { a: { x: 2 } });
    assert.equal(out.b, doc.b);
    assert.deepEqual(out, { a: { x: 2 }, b: { y: 1 } });
  });
});

describe('effects', () => {
  it('set (making missing parents) and del, in order', () => {
    const doc = freeze({ a: 1, keep: { k: 1 } });
    const out = applyEffects(doc, [
      { op: 'set', path: '/x/y/z', value: [1] },
      { op: 'del', path: '/a' },
      { op: 'del', path: '/missing/deep' },
      { op: 'set', path: '/b', value: null },
    ]);
    assert.deepEqual(out, { keep: { k: 1 }, x: { y: { z: [1] } }, b: null });
    assert.equal(out.keep, doc.keep);
  });
  it('the root: set replaces, del empties', () => {
    assert.deepEqual(applyEffects({ a: 1 }, [{ op: 'set', path: '', value: { b: 2 } }]), { b: 2 });
    assert.deepEqual(applyEffects({ a: 1 }, [{ op: 'del', path: '' }]), {});
  });
  it('a set through a scalar replaces it with an object (the server\'s value wins)', () => {
    assert.deepEqual(applyEffects({ a: 5 }, [{ op: 'set', path: '/a/b', value: 1 }]), { a: { b: 1 } });
  });
  it('an unknown effect op is refused', () => {
    refuses(() => applyEffects({}, [{ op: 'frob', path: '/a' }]), 'bad_patch');
  });
});

describe('deepEqual and reconcile', () => {
  it('deepEqual', () => {
    assert.ok(deepEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] }));
    assert.ok(deepEqual({ a: 1, b: 2 }, { b: 2, a: 1 }));
    assert.ok(!deepEqual({ a: 1 }, { a: 1, b: undefined }));
    assert.ok(!deepEqual([1, 2], [2, 1]));
    assert.ok(!deepEqual([], {}));
    assert.ok(!deepEqual(null, {}));
    assert.ok(!deepEqual('1', 1));
  });
  it('reconcile keeps the identity of deep-equal subtrees', () => {
    const prev = { a: { x: [1, 2] }, b: { y: 1 }, c: 1 };
    const next = { a: { x: [1, 2] }, b: { y: 2 }, c: 1 };
    const out = reconcile(prev, next);
    assert.deepEqual(out, next);
    assert.equal(out.a, prev.a);
    assert.equal(out.b, next.b);
    assert.equal(reconcile(prev, structuredClone(prev)), prev, 'all equal: the previous document itself');
    const grown = reconcile([{ k: 1 }], [{ k: 1 }, { k: 2 }]);
    assert.equal(grown.length, 2);
  });
});
