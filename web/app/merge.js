// merge.js - a line-based three-way merge for note text. When this device's
// edit of a note conflicts with another device's (the `version` strategy
// refuses the later one), the app merges both edits against the text they
// started from instead of letting one overwrite the other: changes to
// different lines both apply; where both changed the same lines, their
// lines come first and ours after, so nothing typed is lost.

// Hunks that turn a into b: [{s, e, lines}] = a[s..e) replaced by lines.
function hunks(a, b) {
  // common prefix and suffix first: edits are usually small
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre &&
    a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const A = a.slice(pre, a.length - suf);
  const B = b.slice(pre, b.length - suf);
  const n = A.length;
  const m = B.length;
  if (n === 0 && m === 0) return [];
  if (n * m > 4e6) return [{ s: pre, e: pre + n, lines: B }]; // too big for the table: one hunk
  // dp[i][j] = LCS length of A[i..] and B[j..]
  const w = m + 1;
  const dp = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i * w + j] = A[i] === B[j] ? dp[(i + 1) * w + j + 1] + 1
        : Math.max(dp[(i + 1) * w + j], dp[i * w + j + 1]);
    }
  }
  const out = [];
  let cur = null;
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && A[i] === B[j]) {
      cur = null;
      i++;
      j++;
      continue;
    }
    if (!cur) {
      cur = { s: pre + i, e: pre + i, lines: [] };
      out.push(cur);
    }
    if (j < m && (i === n || dp[i * w + j + 1] >= dp[(i + 1) * w + j])) {
      cur.lines.push(B[j++]);
    } else {
      i++;
      cur.e = pre + i;
    }
  }
  return out;
}

function apply(base, s, e, hs) {
  const out = [];
  let p = s;
  for (const h of hs) {
    out.push(...base.slice(p, h.s), ...h.lines);
    p = h.e;
  }
  out.push(...base.slice(p, e));
  return out;
}

/**
 * merge3(base, mine, theirs) -> {text, clean}: clean is false when both
 * sides changed the same lines (then both versions are kept, theirs first).
 */
export function merge3(base, mine, theirs) {
  if (mine === theirs || theirs === base) return { text: mine, clean: true };
  if (mine === base) return { text: theirs, clean: true };
  const A = base.split('\n');
  const all = [
    ...hunks(A, mine.split('\n')).map((h) => ({ ...h, side: 'mine' })),
    ...hunks(A, theirs.split('\n')).map((h) => ({ ...h, side: 'theirs' })),
  ].sort((x, y) => x.s - y.s || x.e - y.e);
  const out = [];
  let clean = true;
  let pos = 0;
  for (let k = 0; k < all.length;) {
    const group = [all[k]];
    const s = all[k].s;
    let e = all[k].e;
    k++;
    // overlapping ranges, or two insertions at the same place, form one group
    while (k < all.length && (all[k].s < e || (all[k].s === s && s === e && all[k].e === s))) {
      e = Math.max(e, all[k].e);
      group.push(all[k++]);
    }
    out.push(...A.slice(pos, s));
    const gm = group.filter((h) => h.side === 'mine');
    const gt = group.filter((h) => h.side === 'theirs');
    if (!gm.length) out.push(...apply(A, s, e, gt));
    else if (!gt.length) out.push(...apply(A, s, e, gm));
    else {
      const vm = apply(A, s, e, gm);
      const vt = apply(A, s, e, gt);
      if (vm.join('\n') === vt.join('\n')) out.push(...vm);
      else {
        clean = false;
        out.push(...vt, ...vm);
      }
    }
    pos = e;
  }
  out.push(...A.slice(pos));
  return { text: out.join('\n'), clean };
}
