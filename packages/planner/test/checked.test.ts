import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { validatePlan, type Batch, type BatchRequest } from '@canopy/core';
import { buildTokenTree, prefixPlanner } from '../src/index.js';
import { RadixTree } from '../src/tree.js';

const config = { numQoHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f16' as const };
const caps = { kvDtypes: ['f16' as const], headDims: [8], tileMenu: [{ rows: 8, kvBlock: 16 }], masks: ['none' as const, 'causal' as const], gpuTimers: false, parallelUnits: 4 };

/** Longest common prefix of two requests' segment lists (pages), compared one by one. */
function lcp(a: BatchRequest, b: BatchRequest): number {
  let j = 0;
  while (j < a.pageIds.length && j < b.pageIds.length && a.pageIds[j] === b.pageIds[j] && a.pageTokens[j] === b.pageTokens[j]) j++;
  return j;
}

/** Tokens of a request's first k pages. */
const tokensOf = (r: BatchRequest, k: number): number => r.pageTokens.subarray(0, k).reduce((s, t) => s + t, 0);

/**
 * Requests derived from a few bases by changing single pages (id or token count) anywhere,
 * cutting, and appending: page ids that do NOT name their prefix (the same id at the same index
 * after different pages), so the optimistic build's look at a node's last page can be fooled.
 */
const arbAdversarial = fc
  .record({
    pageSize: fc.constantFrom<number>(4, 16),
    bases: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 3 }),
    edits: fc.array(
      fc.record({ base: fc.nat(), at: fc.double({ min: 0, max: 1, noNaN: true }), kind: fc.constantFrom(0, 1, 2, 3), keep: fc.double({ min: 0.05, max: 1, noNaN: true }), extra: fc.nat(40) }),
      { minLength: 1, maxLength: 24 },
    ),
  })
  .map(({ pageSize, bases, edits }) => {
    const numPages = 1000;
    const baseLists = bases.map((n, b) => ({ ids: Array.from({ length: n }, (_, i) => (b * 311 + i) % 700), tks: Array.from({ length: n }, () => pageSize) }));
    const requests: BatchRequest[] = edits.map((e) => {
      const base = baseLists[e.base % baseLists.length];
      let ids = base.ids.slice();
      let tks = base.tks.slice();
      const at = Math.min(ids.length - 1, Math.floor(e.at * ids.length));
      if (e.kind === 0) ids[at] = 700 + (at % 50); // another page, same everything else
      else if (e.kind === 1) tks[at] = 1 + (at % pageSize); // same page, other token count
      else if (e.kind === 2) {
        const k = Math.max(1, Math.floor(e.keep * ids.length));
        ids = ids.slice(0, k);
        tks = tks.slice(0, k);
      }
      for (let i = 0; i < e.extra; i++) {
        ids.push(750 + ((i * 7 + e.extra) % 250));
        tks.push(1 + (i % pageSize));
      }
      return { pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(tks), numQueries: 1 };
    });
    return { config, numPages, pageSize, requests } as Batch;
  });

describe('optimistic tree build with a check (page ids that do not name their prefix)', () => {
  it('equals the exact page-by-page build; every pair of requests meets where their pages first differ', () => {
    fc.assert(
      fc.property(arbAdversarial, (batch) => {
        const t = buildTokenTree(batch);
        // exact reference: the page-by-page insert of every request
        const ref = new RadixTree(batch.numPages, batch.pageSize);
        ref.requests = batch.requests.slice();
        ref.reqLeaf = new Int32Array(batch.requests.length).fill(-1);
        batch.requests.forEach((_, r) => ref.insert(r, null));
        expect(t).toEqual(ref.toTokenTree(ref.canonicalOrder(), batch));
        // independent check: the deepest common node of two requests ends where they diverge
        const R = batch.requests.length;
        const leaf = Array.from(t.queryNode);
        const path = (x: number): number[] => {
          const p: number[] = [];
          for (; x !== -1; x = t.parent[x]) p.push(x);
          return p.reverse();
        };
        for (let a = 0; a < R; a++) {
          for (let b = a + 1; b < R; b++) {
            const pa = path(leaf[a]);
            const pb = path(leaf[b]);
            let k = 0;
            while (k < pa.length && k < pb.length && pa[k] === pb[k]) k++;
            const end = k === 0 ? 0 : t.nodePos[pa[k - 1]] + t.nodeTokens[pa[k - 1]];
            expect(end).toBe(tokensOf(batch.requests[a], lcp(batch.requests[a], batch.requests[b])));
          }
        }
        validatePlan(prefixPlanner(batch, caps), batch);
      }),
      { numRuns: 300 },
    );
  });

  it('a difference deep inside a long shared range (behind a matching last page) splits the node there', () => {
    const n = 200;
    const a = Array.from({ length: n }, (_, i) => i);
    const b = a.slice();
    b[77] = 500; // same first and last pages, one page in between differs
    const c = a.slice();
    const ct = new Array(n).fill(16);
    ct[150] = 9; // same pages, one token count differs
    const mk = (ids: number[], tks = new Array(n).fill(16)): BatchRequest => ({ pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(tks), numQueries: 1 });
    const batch: Batch = { config, numPages: 600, pageSize: 16, requests: [mk(a), mk(b), mk(c, ct), mk(a)] };
    const t = buildTokenTree(batch);
    // root [0, 77) → {a's rest [77, 200) → {[150, 200) of c... }}: pages 0..76 shared by all
    expect(t.nodeTokens[0]).toBe(77 * 16);
    const leaves = Array.from(t.queryNode);
    expect(leaves[0]).toBe(leaves[3]);
    expect(new Set(leaves).size).toBe(3);
    validatePlan(prefixPlanner(batch, caps), batch);
  });

  it('bad input hidden behind a matching last page is reported for the request that holds it, before later requests', () => {
    const n = 100;
    const a = Array.from({ length: n }, (_, i) => i);
    const b = a.slice();
    b[50] = 9999; // out of range, but request 1's last page matches request 0's
    const c = [...a, 300]; // fine
    const d = [...a, 9998]; // out of range in its own tail
    const mk = (ids: number[]): BatchRequest => ({ pageIds: Int32Array.from(ids), pageTokens: new Int32Array(ids.length).fill(16), numQueries: 1 });
    const batch: Batch = { config, numPages: 600, pageSize: 16, requests: [mk(a), mk(b), mk(c), mk(d)] };
    expect(() => buildTokenTree(batch)).toThrow(/request 1 segment 50: page id 9999/);
    // without request 1, request 3's own page is the first bad one
    const batch2: Batch = { ...batch, requests: [mk(a), mk(c), mk(d)] };
    expect(() => buildTokenTree(batch2)).toThrow(/request 2 segment 100: page id 9998/);
  });
});
