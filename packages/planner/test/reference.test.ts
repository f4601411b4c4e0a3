import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomKvCache, randomQueries, referenceAttention, runReference, type Batch, type Plan } from '@canopy/core';
import { perRequestPlanner, prefixPlanner } from '../src/index.js';
import { arbCase, planErrorVsReference } from './gen.js';

async function expectMatches(batch: Batch, plan: Plan, seed: number): Promise<void> {
  expect(await planErrorVsReference(batch, plan, seed)).toBeLessThan(2e-4);
}

describe('reference backend executing planner output matches referenceAttention', () => {
  it('prefix (with random splits, fusion, tiles) and perRequest plans, random trees with prefill', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase({ maxNodes: 8, maxTok: 24, maxReq: 6 }), fc.integer({ min: 1, max: 1e6 }), async ({ batch, caps, opts }, seed) => {
        await expectMatches(batch, prefixPlanner(batch, caps, opts), seed);
        await expectMatches(batch, perRequestPlanner(batch, caps, { chunkTokens: 1 + (seed % 9) }), seed);
      }),
      { numRuns: 60 },
    );
  });

  it('a plan whose results would differ is caught (the check is not vacuous)', async () => {
    const batch: Batch = {
      config: { numQoHeads: 2, numKvHeads: 1, headDim: 4, kvDtype: 'f32' },
      numPages: 4,
      pageSize: 4,
      requests: [
        { pageIds: Int32Array.of(0, 1), pageTokens: Int32Array.of(4, 3), numQueries: 1 },
        { pageIds: Int32Array.of(0, 2), pageTokens: Int32Array.of(4, 2), numQueries: 2 },
      ],
    };
    const plan = prefixPlanner(batch, { kvDtypes: ['f32'], headDims: [4], tileMenu: [{ rows: 8, kvBlock: 4 }], masks: ['none', 'causal'], gpuTimers: false, parallelUnits: 4 });
    await expectMatches(batch, plan, 3);
    const cache = randomKvCache(batch.numPages, batch.pageSize, batch.config, 3);
    const queries = randomQueries(plan.numQueries, batch.config, 10);
    // a different KV pool gives different outputs
    const other = randomKvCache(batch.numPages, batch.pageSize, batch.config, 4);
    const a = referenceAttention(batch, cache, queries);
    const b = await runReference(batch, other, plan, queries);
    expect(Math.max(...a.out.map((x, i) => Math.abs(x - b.out[i])))).toBeGreaterThan(1e-3);
  });
});
