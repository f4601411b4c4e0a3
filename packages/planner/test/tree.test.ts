import { describe, expect, it } from 'vitest';
import { CanopyError, validatePlan, type Batch, type BackendCapabilities } from '@canopy/core';
import { buildTokenTree, createPlannerState, perRequestPlanner, planMetrics, prefixPlanner, stepPlanner } from '../src/index.js';

const config = { numQoHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f16' as const };
const caps: BackendCapabilities = { kvDtypes: ['f16'], headDims: [8], tileMenu: [{ rows: 8, kvBlock: 16 }, { rows: 32, kvBlock: 16 }], masks: ['none', 'causal'], gpuTimers: false, parallelUnits: 8 };
const req = (ids: number[], tks: number[], numQueries = 1) => ({ pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(tks), numQueries });

describe('token tree', () => {
  it('page lists: requests share whole identical segments; a page used with different token counts is not shared', () => {
    const batch: Batch = {
      config,
      numPages: 10,
      pageSize: 4,
      requests: [req([0, 1, 2], [4, 4, 2]), req([0, 1, 3], [4, 4, 4]), req([0, 1, 2], [4, 4, 3]), req([5], [1])],
    };
    const t = buildTokenTree(batch);
    // root [0,1] → {[2:2], [3], [2:3]}, plus the independent root [5]
    expect(t.numNodes).toBe(5);
    expect(Array.from(t.parent)).toEqual([-1, 0, 0, 0, -1]);
    expect(t.nodeTokens[0]).toBe(8);
    expect(Array.from(t.queryNode)).toEqual([1, 2, 3, 4]);
  });

  it('a request whose pages are a prefix of another sits at an internal node', () => {
    const batch: Batch = { config, numPages: 4, pageSize: 4, requests: [req([0, 1, 2], [4, 4, 4]), req([0], [4], 2)] };
    const t = buildTokenTree(batch);
    expect(t.numNodes).toBe(2);
    expect(Array.from(t.queryNode)).toEqual([1, 0, 0]);
    validatePlan(prefixPlanner(batch, caps), batch);
  });

  it('explicit tree and pages at once: identical explicit roots merge, explicit boundaries stay, a chain is fused into one group', () => {
    const batch: Batch = {
      config,
      numPages: 8,
      pageSize: 4,
      requests: [req([0, 1, 2], [4, 4, 4]), req([0, 1, 3], [4, 4, 4]), req([0, 1, 5, 6, 7], [4, 4, 4, 4, 4])],
      tree: {
        // node 0 and node 1 are separate explicit roots holding the same pages [0, 1]
        parent: Int32Array.of(-1, -1, 0, 1, 0, 4),
        segBegin: Int32Array.of(0, 2, 4, 5, 6, 8, 9),
        segPage: Int32Array.of(0, 1, 0, 1, 2, 3, 5, 6, 7),
        segTokens: Int32Array.of(4, 4, 4, 4, 4, 4, 4, 4, 4),
        requestLeaf: Int32Array.of(2, 3, 5),
      },
    };
    const t = buildTokenTree(batch);
    // shared root [0,1]; children [2], [3], [5,6] → [7] (explicit boundary kept)
    expect(t.numNodes).toBe(5);
    expect(Array.from(t.nodeTokens)).toEqual([8, 4, 4, 8, 4]);
    expect(Array.from(t.parent)).toEqual([-1, 0, 0, 0, 3]);
    const plan = prefixPlanner(batch, caps);
    validatePlan(plan, batch);
    // nodes 3 and 4 have the same single query: one column, no item of its own for node 3
    expect(Array.from(plan.itemNode!)).not.toContain(3);
    // the 8-token root is tiny: the model pushes it into its 3 children (read 3 times, 2 extra)
    expect(Array.from(plan.itemNode!)).not.toContain(0);
    const m = planMetrics(plan, batch, caps);
    expect(m.kvTokensRead).toBe(m.uniqueKvTokens + 2 * 8);
    // without fusion every node is its own group and every token is read once
    const plain = prefixPlanner(batch, caps, { fuse: false });
    validatePlan(plain, batch);
    expect(new Set(plain.itemNode).size).toBe(5);
    expect(planMetrics(plain, batch, caps).kvTokensRead).toBe(m.uniqueKvTokens);
  });
});

describe('bad input gets a CanopyError naming the problem', () => {
  const good = (): Batch => ({ config, numPages: 4, pageSize: 4, requests: [req([0, 1], [4, 2])] });
  const expectError = (f: () => unknown, re: RegExp) => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CanopyError);
    expect((err as Error).message).toMatch(re);
  };

  it('cycles in an explicit tree', () => {
    const b = good();
    b.tree = { parent: Int32Array.of(1, 0), segBegin: Int32Array.of(0, 1, 2), segPage: Int32Array.of(0, 1), segTokens: Int32Array.of(4, 2), requestLeaf: Int32Array.of(1) };
    expectError(() => prefixPlanner(b, caps), /cycle/);
    expectError(() => buildTokenTree(b), /cycle/);
  });

  it('a request naming a missing node', () => {
    const b = good();
    b.tree = { parent: Int32Array.of(-1, 0), segBegin: Int32Array.of(0, 1, 2), segPage: Int32Array.of(0, 1), segTokens: Int32Array.of(4, 2), requestLeaf: Int32Array.of(7) };
    expectError(() => prefixPlanner(b, caps), /request 0 names missing tree node 7/);
  });

  it('page ids out of range, bad token counts, bad query counts', () => {
    const b = good();
    b.requests.push(req([0, 9], [4, 1]));
    expectError(() => prefixPlanner(b, caps), /request 1 segment 1: page id 9 out of range \[0, 4\)/);
    expectError(() => perRequestPlanner(b, caps), /request 1 segment 1: page id 9 out of range/);
    const c = good();
    c.requests[0].pageTokens[1] = 5;
    expectError(() => prefixPlanner(c, caps), /uses 5 tokens of page 1; must be 1..pageSize \(4\)/);
    const d = good();
    d.requests[0].numQueries = 7;
    expectError(() => prefixPlanner(d, caps), /request 0: numQueries 7 must be 1..its KV tokens \(6\)/);
    for (const bad of [0, 1.5, -2, Number.NaN, 2 ** 40]) {
      const f = good();
      f.requests[0].numQueries = bad;
      expectError(() => prefixPlanner(f, caps), new RegExp(`request 0: numQueries ${bad} must be 1\\.\\.its KV tokens`));
    }
    const e = good();
    e.requests[0] = req([], []);
    expectError(() => prefixPlanner(e, caps), /request 0 has no KV pages/);
  });

  it('an empty tile menu; a bad page in an incremental step', () => {
    expectError(() => prefixPlanner(good(), { ...caps, tileMenu: [] }), /tileMenu/);
    const s = createPlannerState(good(), caps);
    expectError(() => stepPlanner(s, { config, numPages: 4, pageSize: 4, requests: [req([0, 1, 11], [4, 4, 1])] }), /page id 11 out of range/);
    // the state is still usable after the failed step
    const next: Batch = { config, numPages: 4, pageSize: 4, requests: [req([0, 1], [4, 3])] };
    validatePlan(stepPlanner(s, next), next);
  });
});
