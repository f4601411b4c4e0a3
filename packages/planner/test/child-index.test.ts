import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planToJSON, SeededRng, validatePlan, type Batch, type BatchRequest } from '@canopy/core';
import { buildTokenTree, createPlannerState, prefixPlanner, stepPlanner } from '../src/index.js';
import { buildRadix, RadixTree, VROOT } from '../src/tree.js';

const config = { numQoHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f16' as const };
const caps = { kvDtypes: ['f16' as const], headDims: [8], tileMenu: [{ rows: 8, kvBlock: 16 }, { rows: 16, kvBlock: 32 }], masks: ['none' as const, 'causal' as const], gpuTimers: false, parallelUnits: 4 };

/** Every node's children, found by walking its list, are found by findChild under their keys;
 * the child index holds exactly the children of indexed nodes (no stale entries). */
function checkIndex(t: RadixTree): void {
  let entries = 0;
  const alive = new Set<number>([VROOT]);
  for (let r = 0; r < t.reqLeaf.length; r++) for (let x = t.reqLeaf[r]; x > VROOT; x = t.parent[x]) alive.add(x);
  for (const n of alive) {
    let kids = 0;
    for (let c = t.firstChild[n]; c !== -1; c = t.nextSib[c]) {
      expect(t.parent[c]).toBe(n);
      expect(t.findChild(n, t.key[c])).toBe(c);
      kids++;
    }
    expect(kids).toBe(t.numChildren[n]);
    if (t.indexed[n] === 1) entries += kids;
  }
  expect(t.ixCount).toBe(entries);
  let occupied = 0;
  for (let s = 0; s < t.ixP.length; s++) if (t.ixP[s] !== 0) occupied++;
  expect(occupied).toBe(entries);
}

/** Requests under a few shared prefixes, many per prefix (nodes with more than 8 children, which
 * the child index serves), own tails of 1–3 pages, some ending on their prefix. */
function wideBatch(rng: SeededRng, P: number): Batch {
  const requests: BatchRequest[] = [];
  let next = 0;
  const prefixes = 1 + (rng.nextU32() % 3);
  for (let p = 0; p < prefixes; p++) {
    const len = 1 + (rng.nextU32() % 4);
    const ids = Array.from({ length: len }, () => next++);
    const n = 6 + (rng.nextU32() % 20);
    for (let i = 0; i < n; i++) {
      const own = rng.nextU32() % 4;
      const rid = ids.slice();
      const rtk = ids.map(() => P);
      for (let k = 0; k < own; k++) {
        rid.push(next++);
        rtk.push(k + 1 === own ? 1 + (rng.nextU32() % P) : P);
      }
      requests.push({ pageIds: Int32Array.from(rid), pageTokens: Int32Array.from(rtk), numQueries: 1 });
    }
  }
  return { config, numPages: next, pageSize: P, requests };
}

/** Finishes, one token for every survivor (in place when it alone uses its last page and that
 * has room, else a fresh page), joins (forks and requests sharing part of a survivor's pages). */
function wideStep(prev: Batch, rng: SeededRng): { next: Batch; finished: number[]; joined: number } {
  const R = prev.requests.length;
  const finished: number[] = [];
  for (let r = 0; r < R; r++) if (rng.nextFloat() < 0.2) finished.push(r);
  const fin = new Set(finished);
  const surv = prev.requests.filter((_, r) => !fin.has(r));
  const users = new Map<number, number>();
  for (const q of surv) for (const id of q.pageIds) users.set(id, (users.get(id) ?? 0) + 1);
  let nextPage = prev.numPages;
  const P = prev.pageSize;
  const requests: BatchRequest[] = surv.map((q) => {
    const ids = Array.from(q.pageIds);
    const tks = Array.from(q.pageTokens);
    const n = ids.length;
    if (users.get(ids[n - 1]) === 1 && tks[n - 1] < P) tks[n - 1]++;
    else {
      ids.push(nextPage++);
      tks.push(1);
    }
    return { pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(tks), numQueries: 1 };
  });
  let joined = 0;
  const nj = rng.nextU32() % 12;
  for (let j = 0; j < nj && requests.length > 0; j++) {
    const src = requests[rng.nextU32() % requests.length];
    const m = rng.nextFloat() < 0.5 ? src.pageIds.length : 1 + (rng.nextU32() % src.pageIds.length);
    const ids = Array.from(src.pageIds.subarray(0, m));
    const tks = Array.from(src.pageTokens.subarray(0, m));
    if (rng.nextFloat() < 0.7) {
      ids.push(nextPage++);
      tks.push(1 + (rng.nextU32() % P));
    }
    requests.push({ pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(tks), numQueries: 1 });
    joined++;
  }
  if (requests.length === 0) {
    requests.push({ pageIds: Int32Array.of(nextPage++), pageTokens: Int32Array.of(1), numQueries: 1 });
    joined++;
  }
  return { next: { config: prev.config, numPages: nextPage, pageSize: P, requests }, finished, joined };
}

describe('child index (nodes with many children)', () => {
  it('steps with finishes, joins, forks and growing one-page leaves under wide nodes equal fresh builds; the index holds exactly the children', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 30 }), fc.constantFrom(1, 4, 16), (seed, P) => {
        const rng = new SeededRng(seed);
        let batch = wideBatch(rng, P);
        const state = createPlannerState(batch, caps);
        checkIndex(state.tree);
        for (let s = 0; s < 12; s++) {
          const { next, finished, joined } = wideStep(batch, rng);
          const plan = stepPlanner(state, next, { finished, joined });
          validatePlan(plan, next);
          expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(next, caps)));
          checkIndex(state.tree);
          batch = next;
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a full build with thousands of children under one node and thousands of roots finds every child', () => {
    const requests: BatchRequest[] = [];
    for (let i = 0; i < 3000; i++) requests.push({ pageIds: Int32Array.of(0, 1, 2 + i), pageTokens: Int32Array.of(16, 16, 5), numQueries: 1 });
    for (let i = 0; i < 3000; i++) requests.push({ pageIds: Int32Array.of(4000 + i), pageTokens: Int32Array.of(3), numQueries: 1 });
    const batch: Batch = { config, numPages: 8000, pageSize: 16, requests };
    const t = buildRadix(batch);
    checkIndex(t);
    const tree = buildTokenTree(batch);
    expect(tree.numNodes).toBe(1 + 3000 + 3000);
  });
});

describe('the exact build skips comparing the very same memory', () => {
  it('requests sharing page arrays (the same objects) plan as requests with copies of them', () => {
    const ids = Int32Array.from({ length: 300 }, (_, i) => i);
    const tks = new Int32Array(300).fill(16);
    const shared: BatchRequest[] = [];
    const copies: BatchRequest[] = [];
    for (let r = 0; r < 6; r++) {
      // the same arrays, requests of different lengths through views would not be the same
      // object: both kinds
      const own = r % 2 === 0 ? { pageIds: ids, pageTokens: tks } : { pageIds: ids.subarray(0, 200 + r), pageTokens: tks.subarray(0, 200 + r) };
      shared.push({ ...own, numQueries: 1 });
      copies.push({ pageIds: own.pageIds.slice(), pageTokens: own.pageTokens.slice(), numQueries: 1 });
    }
    // the same ids object with other token counts must still diverge where the counts do
    const tks2 = tks.slice();
    tks2[250] = 7;
    shared.push({ pageIds: ids, pageTokens: tks2, numQueries: 1 });
    copies.push({ pageIds: ids.slice(), pageTokens: tks2.slice(), numQueries: 1 });
    const a: Batch = { config, numPages: 300, pageSize: 16, requests: shared };
    const b: Batch = { config, numPages: 300, pageSize: 16, requests: copies };
    expect(buildTokenTree(a)).toEqual(buildTokenTree(b));
    expect(planToJSON(prefixPlanner(a, caps))).toEqual(planToJSON(prefixPlanner(b, caps)));
    // the last request leaves the others' path at page 250
    const t = buildTokenTree(a);
    const leaf = t.queryNode[6];
    expect(t.nodePos[leaf]).toBe(250 * 16);
  });
});
