import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { uniqueKvTokens, validatePlan, type Batch, type TokenTree } from '@canopy/core';
import { buildTokenTree, perRequestPlanner, planMetrics, prefixPlanner } from '../src/index.js';
import { arbCase, arbCaps, arbConfig, arbOpts, shapeBatch } from './gen.js';
import { treeBatch } from './workloads.js';

/** The tree is faithful: every request's root path spells its pages; radix invariants hold. */
function checkTree(tree: TokenTree, batch: Batch): void {
  const N = tree.numNodes;
  const kids = new Map<number, number[]>();
  for (let n = 0; n < N; n++) {
    const p = tree.parent[n];
    expect(p).toBeLessThan(n);
    expect(tree.nodePos[n]).toBe(p < 0 ? 0 : tree.nodePos[p] + tree.nodeTokens[p]);
    let t = 0;
    for (let s = tree.segBegin[n]; s < tree.segBegin[n + 1]; s++) t += tree.segTokens[s];
    expect(t).toBe(tree.nodeTokens[n]);
    expect(t).toBeGreaterThan(0);
    const l = kids.get(p) ?? [];
    l.push(n);
    kids.set(p, l);
  }
  // siblings start with different segments
  for (const [, l] of kids) {
    const keys = new Set(l.map((n) => `${tree.segPage[tree.segBegin[n]]}:${tree.segTokens[tree.segBegin[n]]}`));
    expect(keys.size).toBe(l.length);
  }
  let q = 0;
  batch.requests.forEach((r) => {
    const leaf = tree.queryNode[q];
    for (let j = 0; j < r.numQueries; j++) expect(tree.queryNode[q + j]).toBe(leaf);
    q += r.numQueries;
    const path: number[] = [];
    for (let x = leaf; x !== -1; x = tree.parent[x]) path.push(x);
    path.reverse();
    const ids: number[] = [];
    const tks: number[] = [];
    for (const x of path) for (let s = tree.segBegin[x]; s < tree.segBegin[x + 1]; s++) (ids.push(tree.segPage[s]), tks.push(tree.segTokens[s]));
    expect(ids).toEqual(Array.from(r.pageIds));
    expect(tks).toEqual(Array.from(r.pageTokens));
  });
  if (!batch.tree) {
    // radix compression: a node with one child has a request ending at it
    const here = new Int32Array(N);
    for (let i = 0; i < tree.queryNode.length; i++) here[tree.queryNode[i]]++;
    for (let n = 0; n < N; n++) if ((kids.get(n)?.length ?? 0) === 1) expect(here[n]).toBeGreaterThan(0);
  }
}

describe('random trees and batches (fast-check)', () => {
  it('prefix and perRequest plans pass validatePlan; the token tree is faithful', () => {
    fc.assert(
      fc.property(arbCase(), ({ batch, caps, opts }) => {
        checkTree(buildTokenTree(batch), batch);
        validatePlan(prefixPlanner(batch, caps), batch);
        validatePlan(prefixPlanner(batch, caps, opts), batch);
        validatePlan(perRequestPlanner(batch, caps), batch);
        validatePlan(perRequestPlanner(batch, caps, { minChunkTokens: opts.minChunkTokens }), batch);
      }),
      { numRuns: 800 },
    );
  });

  it('without fusion the prefix plan reads every visible KV token exactly once', () => {
    fc.assert(
      fc.property(arbCase(), ({ batch, caps, opts }) => {
        const plan = prefixPlanner(batch, caps, { ...opts, fuse: false, hybridLayout: 'packed' });
        validatePlan(plan, batch);
        const m = planMetrics(plan, batch, caps);
        expect(m.kvTokensRead).toBe(uniqueKvTokens(batch));
        expect(m.distinctKvTokensRead).toBe(uniqueKvTokens(batch));
      }),
      { numRuns: 500 },
    );
  });

  it('fixed perRequest chunks cover each request once', () => {
    fc.assert(
      fc.property(arbCase(), fc.integer({ min: 1, max: 50 }), ({ batch, caps }, chunk) => {
        validatePlan(perRequestPlanner(batch, caps, { chunkTokens: chunk }), batch);
      }),
      { numRuns: 300 },
    );
  });

  it('deep chains of single-token and mid-page nodes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 120 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 120, maxLength: 120 }),
        fc.integer({ min: 1, max: 30 }),
        arbConfig,
        arbCaps,
        fc.constantFrom(1, 4, 16),
        arbOpts,
        (depth, toks, nreq, config, caps, pageSize, opts) => {
          const parent = Array.from({ length: depth }, (_, i) => i - 1);
          const requestNode = Array.from({ length: nreq }, (_, r) => (r * 7919) % depth);
          const batch = shapeBatch(
            { parent, tokens: toks.slice(0, depth), requestNode, ownTokens: requestNode.map((_, r) => r % 3), numQueries: requestNode.map((_, r) => 1 + (r % 4)) },
            config,
            pageSize,
            false,
          );
          checkTree(buildTokenTree(batch), batch);
          validatePlan(prefixPlanner(batch, caps), batch);
          validatePlan(prefixPlanner(batch, caps, opts), batch);
          validatePlan(perRequestPlanner(batch, caps), batch);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('wide fans, one request, requests sharing nothing', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 64 }), fc.boolean(), arbConfig, arbCaps, (n, rootTok, share, config, caps) => {
        const batch = share
          ? treeBatch({ parent: [-1], tokens: [rootTok], requestNode: new Array(n).fill(0), ownTokens: Array.from({ length: n }, (_, i) => (i % 5) + 1), config, pageSize: 4 })
          : treeBatch({ parent: new Array(n).fill(-1), tokens: Array.from({ length: n }, (_, i) => (i % 9) + 1), requestNode: Array.from({ length: n }, (_, i) => i), config, pageSize: 4 });
        checkTree(buildTokenTree(batch), batch);
        validatePlan(prefixPlanner(batch, caps), batch);
        validatePlan(perRequestPlanner(batch, caps), batch);
      }),
      { numRuns: 40 },
    );
  });

  it('thousands of requests', () => {
    const batch = treeBatch({
      parent: [-1, 0, 0, 1, 2, -1],
      tokens: [100, 37, 20, 5, 64, 9],
      requestNode: Array.from({ length: 3000 }, (_, i) => i % 6),
      ownTokens: Array.from({ length: 3000 }, (_, i) => i % 4),
      config: { numQoHeads: 8, numKvHeads: 1, headDim: 8, kvDtype: 'f16' },
      pageSize: 16,
    });
    const caps = { kvDtypes: ['f16' as const], headDims: [8], tileMenu: [{ rows: 16, kvBlock: 64 }, { rows: 128, kvBlock: 64 }], masks: ['none' as const, 'causal' as const], gpuTimers: false, parallelUnits: 108 };
    checkTree(buildTokenTree(batch), batch);
    validatePlan(prefixPlanner(batch, caps), batch);
    validatePlan(perRequestPlanner(batch, caps), batch);
  });
});
