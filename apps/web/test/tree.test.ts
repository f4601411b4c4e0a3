/** The page's tree JSON handling, scaling and the data behind its tree picture (no browser needed). */
import { CanopyError, requestKvTokens, uniqueKvTokens, validateBatch, validatePlan, REFERENCE_CAPABILITIES } from '@canopy/core';
import { planners } from '@canopy/planner';
import { describe, expect, test } from 'vitest';
import { itemPieces } from '../src/runner.js';
import { buildBatch, parseTreeJson, scaleTree, specPathTokens, specPoolBytes, treeToJson } from '../src/tree.js';
import { layoutTree, nodeReads } from '../src/treeview.js';
import { WORKLOADS, autoScale } from '../src/workloads.js';

// The brief's table: unique KV tokens and KV tokens without sharing.
const CANONICAL: Record<string, [number, number, number]> = {
  W1: [64, 36_864, 294_912],
  W2: [128, 66_560, 688_128],
  W3: [64, 17_312, 296_960],
  W4: [64, 294_912, 294_912],
  W5: [256, 32_768, 4_210_688],
};

describe('workloads', () => {
  test('the bench workload files are bundled and build valid batches with the canonical sizes', () => {
    for (const id of ['W1', 'W2', 'W3', 'W4', 'W5']) expect(WORKLOADS.has(id), id).toBe(true);
    for (const [id, spec] of WORKLOADS) {
      const { batch } = buildBatch(spec);
      validateBatch(batch);
      const want = CANONICAL[id];
      if (!want) continue;
      expect(batch.requests.length, id).toBe(want[0]);
      expect(uniqueKvTokens(batch), id).toBe(want[1]);
      expect(specPathTokens(spec), id).toBe(want[2]);
      expect(batch.requests.reduce((a, r) => a + requestKvTokens(r), 0), id).toBe(want[2]);
    }
  });

  test('scaling keeps an even spread of requests and shrinks every node', () => {
    const w1 = WORKLOADS.get('W1')!;
    const s = scaleTree(w1, { tokens: 1 / 8, requests: 1 / 4 });
    expect(s.requests.length).toBe(16);
    expect(s.requests[0]).toEqual(w1.requests[0]);
    expect(s.requests[15]).toEqual(w1.requests[63]);
    expect(s.nodes.length).toBe(17);
    expect(s.nodes[0].tokens).toBe(512);
    expect(s.nodes.slice(1).every((n) => n.tokens === 64)).toBe(true);
    validateBatch(buildBatch(s).batch);
  });

  test('autoScale fits the KV pool limit and the work budget, and keeps factors fixed by the caller', () => {
    const w1 = WORKLOADS.get('W1')!;
    const a = autoScale(w1, { maxPoolBytes: 16 * 2 ** 20, maxPathTokens: 40_000, budgetReason: 'slow' });
    const t = scaleTree(w1, a.scale);
    expect(specPoolBytes(t)).toBeLessThanOrEqual(16 * 2 ** 20);
    expect(specPathTokens(t)).toBeLessThanOrEqual(40_000);
    expect(a.scale.tokens).toBe(1 / 8); // 294,912 → 36,864 path tokens
    expect(a.reasons.length).toBeGreaterThan(0);
    // 1/8 of W1 allocates 288 pages: 9 MiB per pool, over an 8 MiB limit
    expect(autoScale(w1, { maxPoolBytes: 8 * 2 ** 20, maxPathTokens: Infinity, budgetReason: '' }).scale.tokens).toBe(1 / 16);
    const b = autoScale(w1, { maxPoolBytes: Infinity, maxPathTokens: 40_000, budgetReason: 'slow' }, { tokens: 1 / 4 });
    expect(b.scale.tokens).toBe(1 / 4);
    expect(specPathTokens(scaleTree(w1, b.scale))).toBeLessThanOrEqual(40_000);
    expect(autoScale(w1, { maxPoolBytes: Infinity, maxPathTokens: Infinity, budgetReason: '' })).toEqual({ scale: { tokens: 1, requests: 1 }, reasons: [] });
  });
});

describe('tree JSON', () => {
  const ok = { config: { numQoHeads: 4, numKvHeads: 2, headDim: 16, pageSize: 16, kvDtype: 'f32' }, nodes: [{ id: 0, parent: null, tokens: 40 }, { id: 7, parent: 0, tokens: 9 }], requests: [{ leaf: 7 }, { leaf: 0 }] };
  const bad = (patch: (o: typeof ok) => unknown): string => {
    const o = structuredClone(ok);
    const v = patch(o) ?? o;
    try {
      parseTreeJson(JSON.stringify(v));
    } catch (e) {
      expect(e).toBeInstanceOf(CanopyError);
      return (e as Error).message;
    }
    throw new Error('expected the tree to be refused');
  };

  test('keeps prefill chunks and draft nodes through the editor format', () => {
    const hybrid = {
      config: ok.config,
      nodes: [
        { id: 0, parent: null, tokens: 40 },
        { id: 1, parent: 0, tokens: 12 },
        { id: 2, parent: 0, tokens: 1, draft: true },
        { id: 3, parent: 2, tokens: 1, draft: true },
      ],
      requests: [{ leaf: 1, queries: 5 }],
    };
    const spec = parseTreeJson(JSON.stringify(hybrid));
    const text = treeToJson(spec);
    expect(text).toContain('"queries":5');
    expect(text).toContain('"draft":true');
    expect(parseTreeJson(text)).toEqual(spec);
    const { batch } = buildBatch(spec);
    validateBatch(batch);
    // the chunk request plus one single-query request per draft node
    expect(batch.requests.map((r) => r.numQueries)).toEqual([5, 1, 1]);
  });

  test('round-trips through the editor format', () => {
    const spec = parseTreeJson(JSON.stringify(ok));
    expect(parseTreeJson(treeToJson(spec))).toEqual(spec);
    const { batch } = buildBatch(spec);
    validateBatch(batch);
    expect(batch.requests.map(requestKvTokens)).toEqual([49, 40]);
    // node 0: 40 tokens = pages 16 + 16 + 8 (partial last page); node 7 its own page of 9
    expect(Array.from(batch.tree!.segTokens)).toEqual([16, 16, 8, 9]);
  });

  test('errors name the field', () => {
    expect(() => parseTreeJson('{')).toThrow(/does not parse/);
    expect(bad((o) => ((o.nodes[1].parent = 3), o))).toMatch(/nodes\[1\]\.parent: node 3 does not exist/);
    expect(bad((o) => ((o.nodes[1].tokens = 0), o))).toMatch(/nodes\[1\]\.tokens: must be a positive integer/);
    expect(bad((o) => ((o.nodes[0].parent = 7 as unknown as null), o))).toMatch(/loops/);
    expect(bad((o) => ((o.requests[0].leaf = 5), o))).toMatch(/requests\[0\]\.leaf: node 5 does not exist/);
    expect(bad((o) => ((o.config.numQoHeads = 3), o))).toMatch(/config\.numQoHeads: 3 is not a multiple/);
    expect(bad((o) => ({ ...o, extra: 1 }))).toMatch(/extra: unknown field/);
    expect(bad((o) => ((o.nodes[1].id = 0), o))).toMatch(/nodes\[1\]\.id: duplicate id 0/);
  });
});

describe('tree picture data', () => {
  const spec = scaleTree(WORKLOADS.get('W2')!, { tokens: 1 / 16, requests: 1 / 4 });
  const built = buildBatch(spec);

  test('layout: every subtree is a contiguous run of request columns', () => {
    const L = layoutTree(built);
    const tree = built.batch.tree!;
    expect(L.numCols).toBe(built.batch.requests.length);
    expect(new Set(L.requestCol).size).toBe(L.numCols);
    for (let n = 0; n < tree.parent.length; n++) {
      const inside = Array.from(tree.requestLeaf.keys()).filter((r) => {
        for (let x = tree.requestLeaf[r]; x >= 0; x = tree.parent[x]) if (x === n) return true;
        return false;
      });
      expect(L.colEnd[n] - L.colBegin[n], `node ${n}`).toBe(inside.length);
      for (const r of inside) expect(L.requestCol[r] >= L.colBegin[n] && L.requestCol[r] < L.colEnd[n]).toBe(true);
      if (tree.parent[n] >= 0) {
        expect(L.colBegin[n]).toBeGreaterThanOrEqual(L.colBegin[tree.parent[n]]);
        expect(L.colEnd[n]).toBeLessThanOrEqual(L.colEnd[tree.parent[n]]);
      }
    }
  });

  test('work-item pieces: prefix reads every node once, perRequest reads a node once per request under it', () => {
    const L = layoutTree(built);
    const pre = planners.prefix(built.batch, REFERENCE_CAPABILITIES);
    const per = planners.perRequest(built.batch, REFERENCE_CAPABILITIES);
    validatePlan(pre, built.batch);
    validatePlan(per, built.batch);
    const readsPre = nodeReads(built, itemPieces(pre, built));
    const readsPer = nodeReads(built, itemPieces(per, built));
    for (let n = 0; n < readsPre.length; n++) {
      expect(readsPre[n], `prefix node ${n}`).toBeGreaterThanOrEqual(1);
      expect(readsPer[n], `perRequest node ${n}`).toBe(L.colEnd[n] - L.colBegin[n]);
    }
    // Pieces stay inside their node.
    for (const p of itemPieces(pre, built)) {
      expect(p.begin).toBeGreaterThanOrEqual(0);
      expect(p.end).toBeGreaterThan(p.begin);
    }
  });
});
