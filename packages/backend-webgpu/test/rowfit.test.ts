import { randomKvCache, randomQueries, referenceAttention, validatePlan, type AttentionConfig } from '@canopy/core';
import { batchFromTree } from '@canopy/backend-testkit';
import { describe, expect, it } from 'vitest';
import { BLOCKED2_VARIANTS, pickVariant, WebGpuBackend } from '../src/index.js';
import { gpuAvailability } from './gpu.js';
import { maxErr, testPlan } from './plans.js';

const avail = await gpuAvailability();
const menu = BLOCKED2_VARIANTS; // 4, 16, 64 rows
const rowsOf = (i: number) => menu[i].rows;
const tile = (rows: number) => ({ rows, kvBlock: 16 });

describe('row blocks with maxRowPadding', () => {
  it('keeps the tile rule by default and trades padding rows for smaller variants when asked', () => {
    // default: the plan tile's rows decide (32 rows on a 64-row tile stay there)
    expect(rowsOf(pickVariant(menu, tile(64), 32))).toBe(64);
    expect(rowsOf(pickVariant(menu, tile(16), 8))).toBe(16);
    // 32 rows: half of a 64-row block empty → two 16-row blocks
    expect(rowsOf(pickVariant(menu, tile(64), 32, 0.25))).toBe(16);
    // 48 rows: a quarter empty is allowed at 0.25, not at 0.2 (then three 16-row blocks)
    expect(rowsOf(pickVariant(menu, tile(64), 48, 0.25))).toBe(64);
    expect(rowsOf(pickVariant(menu, tile(64), 48, 0.2))).toBe(16);
    // 8 rows on a 16-row tile: two 4-row (decode) blocks; 256 rows: 64-row blocks, none empty
    expect(rowsOf(pickVariant(menu, tile(16), 8, 0.25))).toBe(4);
    expect(rowsOf(pickVariant(menu, tile(64), 256, 0))).toBe(64);
    // never a larger variant than the tile's
    expect(rowsOf(pickVariant(menu, tile(16), 40, 0.2))).toBe(16); // 40 of 48 rows used
    expect(rowsOf(pickVariant(menu, tile(16), 40, 0))).toBe(4);
    // nothing fits the bound: the tile's variant
    expect(rowsOf(pickVariant(menu, tile(4), 3, 0))).toBe(4);
  });

  it('refuses a bound outside [0, 1)', async (ctx) => {
    if (!avail.available) return ctx.skip(avail.reason);
    await expect(WebGpuBackend.create({ maxRowPadding: 1 })).rejects.toThrow(/maxRowPadding must be in \[0, 1\)/);
    await expect(WebGpuBackend.create({ maxRowPadding: -0.1 })).rejects.toThrow(/maxRowPadding/);
  });
});

describe.skipIf(!avail.available)(`webgpu row blocks with maxRowPadding (${avail.reason})`, () => {
  it('32-row items on the 64-row tile run as 16-row blocks and match the reference', async () => {
    // forced GPU menu on this adapter; 8 requests × GQA 4 under a shared 70-token node = 32 rows
    const spec = { parent: [-1, 0, 0, 0, 0, 0, 0, 0, 0], tokens: [70, 5, 9, 3, 12, 1, 7, 4, 6], requestAt: [1, 2, 3, 4, 5, 6, 7, 8] };
    const config: AttentionConfig = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };
    const batch = batchFromTree(spec, config, 16, 3);
    const cache = randomKvCache(batch.numPages, batch.pageSize, config, 21);
    const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
    const queries = randomQueries(nq, config, 22);
    const ref = referenceAttention(batch, cache, queries);
    const plan = testPlan(batch, { mode: 'tree', chunk: 1000, maxQueries: 8, tiles: [tile(4), tile(16), tile(64)] });
    // the shared node's item (8 queries) on the 64-row tile, as the prefix planner puts W6's contexts
    const shared = Array.from({ length: plan.numItems }, (_, i) => i).filter((i) => plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i] === 8);
    expect(shared.length).toBe(1);
    plan.itemTile[shared[0]] = 2;
    validatePlan(plan, batch);
    const units: Record<string, number[]> = {};
    for (const [name, maxRowPadding] of [['tile', undefined], ['fit', 0.25]] as const) {
      const b = await WebGpuBackend.create({ tiling: 'shared', blocked: true, maxRowPadding, split: { targetUnits: 1 } }); // no KV split: unit counts are row blocks × heads
      try {
        await b.setKvCache(cache);
        const l = b.layoutOf(plan, queries);
        units[name] = l.variantUnits.map(([, n]) => n);
        const got = await b.run(plan, queries);
        expect(maxErr(got.out, ref.out), `out (${name})`).toBeLessThanOrEqual(2e-3);
        expect(maxErr(got.lse, ref.lse), `lse (${name})`).toBeLessThanOrEqual(2e-3);
      } finally {
        await b.dispose();
      }
    }
    // the shared node's item: one 64-row unit per KV head by the tile rule, two 16-row ones with the bound
    expect(units.tile[2]).toBe(2);
    expect(units.fit[2]).toBe(0);
    expect(units.fit[1]).toBe(units.tile[1] + 4);
  }, 300_000);
});
