import { describe, expect, it } from 'vitest';
import { planToJSON, REFERENCE_CAPABILITIES, uniqueKvTokens, validatePlan } from '@canopy/core';
import { buildTokenTree, explainPlan, perRequestPlanner, planMetrics, planners, prefixPlanner } from '../src/index.js';
import { H100_CAPS, treeBatch, W_TABLE, workload, type WorkloadId } from './workloads.js';

const IDS: WorkloadId[] = ['W1', 'W2', 'W3', 'W4', 'W5'];

describe('canonical workloads W1–W5', () => {
  for (const id of IDS) {
    for (const explicit of [false, true]) {
      it(`${id}${explicit ? ' (explicit tree)' : ''}: the prefix plan reads exactly the unique KV tokens, none twice`, () => {
        const batch = workload(id, explicit);
        expect(batch.requests.length).toBe(W_TABLE[id].requests);
        expect(uniqueKvTokens(batch)).toBe(W_TABLE[id].unique);
        const plan = prefixPlanner(batch, H100_CAPS);
        validatePlan(plan, batch);
        const m = planMetrics(plan, batch, H100_CAPS);
        expect(m.kvTokensRead).toBe(W_TABLE[id].unique);
        expect(m.distinctKvTokensRead).toBe(W_TABLE[id].unique);
        // also when planned for the reference backend (one unit): no shared node is fused away
        const ref = prefixPlanner(batch, REFERENCE_CAPABILITIES);
        validatePlan(ref, batch);
        expect(planMetrics(ref, batch, REFERENCE_CAPABILITIES).kvTokensRead).toBe(W_TABLE[id].unique);
        const base = perRequestPlanner(batch, H100_CAPS);
        validatePlan(base, batch);
        const mb = planMetrics(base, batch, H100_CAPS);
        expect(mb.kvTokensLoaded).toBe(W_TABLE[id].noSharing);
        expect(m.predictedTimeUs).toBeLessThanOrEqual(mb.predictedTimeUs);
      });
    }
  }

  it('page lists and explicit trees give the same plan for W1–W5 (explicit nodes coincide with the radix nodes)', () => {
    for (const id of IDS) {
      const a = prefixPlanner(workload(id), H100_CAPS);
      const b = prefixPlanner(workload(id, true), H100_CAPS);
      expect(planToJSON(b)).toEqual(planToJSON(a));
    }
  });

  it('W4 (no sharing): the prefix plan is no worse than perRequest under the cost model', () => {
    const batch = workload('W4');
    const m = planMetrics(prefixPlanner(batch, H100_CAPS), batch, H100_CAPS);
    const mb = planMetrics(perRequestPlanner(batch, H100_CAPS), batch, H100_CAPS);
    expect(m.predictedTimeUs).toBeLessThanOrEqual(mb.predictedTimeUs);
    expect(m.kvTokensLoaded).toBe(mb.kvTokensLoaded);
  });

  it('W5: the compute-heavy root is split into KV chunks and row blocks that fill the device', () => {
    const batch = workload('W5');
    const plan = prefixPlanner(batch, H100_CAPS);
    const rootItems: number[] = [];
    for (let i = 0; i < plan.numItems; i++) if (plan.itemNode![i] === 0) rootItems.push(i);
    const chunks = new Set(rootItems.map((i) => plan.itemPos[i]));
    expect(chunks.size).toBeGreaterThan(1);
    expect(rootItems.length / chunks.size).toBe(8); // 1024 rows per KV head / 128-row tiles
    for (const i of rootItems) expect(plan.tiles[plan.itemTile[i]].rows).toBe(128);
    // root CTAs alone cover the 132 units
    expect(rootItems.length * 8).toBeGreaterThanOrEqual(H100_CAPS.parallelUnits);
  });

  it('tiles follow the group size: one-query leaves get the 8-row tile, 16-query documents 64 rows', () => {
    const batch = workload('W2');
    const plan = prefixPlanner(batch, H100_CAPS);
    const tree = buildTokenTree(batch);
    for (let i = 0; i < plan.numItems; i++) {
      const n = plan.itemNode![i];
      const q = plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i];
      const rows = plan.tiles[plan.itemTile[i]].rows;
      expect(rows).toBeGreaterThanOrEqual(q * 4);
      if (tree.nodeTokens[n] === 256) expect(rows).toBe(8);
      if (tree.nodeTokens[n] === 4096) expect(rows).toBe(64);
    }
  });

  it('W2 token tree: root, 8 documents, 128 leaves; explainPlan prints groups, splits, tiles and merge lists', () => {
    const batch = workload('W2');
    const tree = buildTokenTree(batch);
    expect(tree.numNodes).toBe(137);
    expect(tree.nodeTokens[0]).toBe(1024);
    const docs = Array.from(tree.nodeTokens).filter((t) => t === 4096).length;
    expect(docs).toBe(8);
    const text = explainPlan(prefixPlanner(batch, H100_CAPS), tree);
    expect(text).toContain('token tree: 137 nodes, 66560 KV tokens');
    expect(text).toContain('node 0 (root): KV [0, 1024) = 1024 tokens in 64 page segments; 128 queries below');
    expect(text).toContain('group: 128 queries × 4 = 512 rows per KV head');
    expect(text).toMatch(/4 row blocks/);
    expect(text).toMatch(/merge: partials per query → queries: \d+→128/);
    expect(text).toContain("lists in KV order");
    expect(text).toContain('query 0 (request 0, sees 5376 tokens): slot 0 (item 0, node 0, KV [0, 1024))');
  });

  it('planners map', () => {
    const batch = workload('W1');
    expect(planners.prefix(batch, H100_CAPS).planner).toBe('prefix');
    expect(planners.perRequest(batch, H100_CAPS).planner).toBe('perRequest');
  });
});

describe('fusion prices what a push really reads', () => {
  it('W3 at 1/16 tokens on one unit: the 250-token shared root is never pushed down to the 64 leaves', () => {
    // root 250 → 4 × 16 → 16 × 16 → 64 leaves of 8: the 16-token nodes are pushed into the
    // leaves, so pushing the root along would read it 64 times (as perRequest does); the push is
    // priced at its real destinations. (With fuseMaxTokens ≥ 250 the model may still push the
    // root into its 4 children: 4 reads of 250 tokens cost less than 2 more CTAs per KV head at
    // itemOverheadUs = 1 on one unit.)
    const parent = [-1, 0, 0, 0, 0];
    const tokens = [250, 16, 16, 16, 16];
    for (let p = 1; p <= 4; p++) for (let i = 0; i < 4; i++) (parent.push(p), tokens.push(16));
    const requestNode = Array.from({ length: 64 }, (_, r) => 5 + Math.floor(r / 4));
    const batch = treeBatch({ parent, tokens, requestNode, ownTokens: 8 });
    const caps = REFERENCE_CAPABILITIES;
    const base = planMetrics(perRequestPlanner(batch, caps), batch, caps);
    for (const fuseMaxTokens of [64, 300, 1e9]) {
      const plan = prefixPlanner(batch, caps, { fuseMaxTokens });
      validatePlan(plan, batch);
      // distinct KV ranges that read the root's first token
      const rootReads = new Set<number>();
      for (let i = 0; i < plan.numItems; i++) if (plan.itemPos[i] === 0) rootReads.add(plan.itemNode![i]);
      expect(rootReads.size).toBeLessThanOrEqual(4);
      if (fuseMaxTokens === 64) expect(Array.from(plan.itemNode!)).toContain(0);
      const m = planMetrics(plan, batch, caps);
      expect(m.kvTokensRead).toBeLessThan(base.kvTokensLoaded / 4);
      expect(m.predictedTimeUs).toBeLessThan(base.predictedTimeUs);
    }
  });
});

describe('plans follow the device', () => {
  it('more parallel units → more KV chunks; a bigger tile menu → fewer row blocks', () => {
    const batch = workload('W1');
    const few = prefixPlanner(batch, { ...H100_CAPS, parallelUnits: 4 });
    const many = prefixPlanner(batch, { ...H100_CAPS, parallelUnits: 1024 });
    validatePlan(few, batch);
    validatePlan(many, batch);
    expect(many.numItems).toBeGreaterThan(few.numItems);
    const small = prefixPlanner(batch, { ...H100_CAPS, tileMenu: [{ rows: 16, kvBlock: 64 }] });
    validatePlan(small, batch);
    // root: 64 queries × 4 rows = 256 rows → 16 row blocks of 4 queries with 16-row tiles
    const rootItems = Array.from(small.itemNode!).filter((n) => n === 0).length;
    const rootChunks = new Set(Array.from(small.itemPos).filter((_, i) => small.itemNode![i] === 0)).size;
    expect(rootItems / rootChunks).toBe(16);
  });
});

describe('explainPlan of a perRequest plan', () => {
  it('lists items per request', () => {
    const batch = workload('W2');
    const text = explainPlan(perRequestPlanner(batch, H100_CAPS), buildTokenTree(batch));
    expect(text).toContain('items per request');
    expect(text).toMatch(/request 0: 1 query × 4 = 4 rows per KV head; \d+ KV chunks? of/);
    expect(text).not.toContain('items without a node');
  });
});
