import { randomKvCache, randomQueries, referenceAttention, validatePlan, type AttentionConfig } from '@canopy/core';
import { batchFromTree, HYBRID_TREE } from '@canopy/backend-testkit';
import { prefix } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { WebGpuBackend, DEFAULT_VARIANTS } from '../src/index.js';
import { gpuAvailability } from './gpu.js';
import { maxErr, SHARED_TREE, testPlan } from './plans.js';

const avail = await gpuAvailability();
const tiles = [{ rows: 4, kvBlock: 32 }, { rows: 16, kvBlock: 16 }, { rows: 64, kvBlock: 16 }];



describe.skipIf(!avail.available)(`webgpu kernels (${avail.reason})`, () => {
  // The default CPU configuration ('direct', one variant) over dtypes, GQA and subgroups, and the
  // GPU menu (direct few-row variant with token splits, prefetching workgroup-memory tiles with
  // split combine) on one shape: each new pipeline costs lavapipe tens of seconds (README).
  for (const [dtype, gqa, d, subgroups, tiling] of [
    ['f16', 4, 64, true, undefined],
    ['f32', 1, 64, false, undefined],
    ['f16', 4, 64, true, 'gpu'],
  ] as const) {
    it(`tree and per-request plans match the reference (${dtype}, GQA ${gqa}, d${d}, subgroups ${subgroups}, ${tiling ?? 'cpu'} menu)`, async () => {
      const config: AttentionConfig = { numQoHeads: 2 * gqa, numKvHeads: 2, headDim: d, kvDtype: dtype };
      const batch = batchFromTree(SHARED_TREE, config, 16, 7);
      const cache = randomKvCache(batch.numPages, batch.pageSize, config, 3);
      const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
      const queries = randomQueries(nq, config, 5);
      const ref = referenceAttention(batch, cache, queries);
      const b = await WebGpuBackend.create(
        tiling === 'gpu' ? { subgroups, tiling: 'shared', variants: [DEFAULT_VARIANTS[0], DEFAULT_VARIANTS[1]] } : { subgroups },
      );
      try {
        await b.setKvCache(cache);
        for (const plan of [
          testPlan(batch, { mode: 'tree', chunk: 20, maxQueries: 3, tiles }),
          testPlan(batch, { mode: 'tree', chunk: 1000, maxQueries: 64, tiles }),
          testPlan(batch, { mode: 'request', chunk: 1000, maxQueries: 1, tiles }),
          testPlan(batch, { mode: 'request', chunk: 7, maxQueries: 2, tiles: [{ rows: 1, kvBlock: 16 }] }),
        ]) {
          validatePlan(plan, batch);
          const got = await b.run(plan, queries);
          const tol = dtype === 'f16' ? 2e-3 : 2e-4;
          expect(maxErr(got.out, ref.out), `out ${plan.planner}`).toBeLessThanOrEqual(tol);
          expect(maxErr(got.lse, ref.lse), `lse ${plan.planner}`).toBeLessThanOrEqual(tol);
        }
      } finally {
        await b.dispose();
      }
    });
  }
});

describe.skipIf(!avail.available)(`webgpu one-dispatch mode (${avail.reason})`, () => {
  it('all attention units of a hybrid plan in one dispatch (roles) match the reference and the per-variant dispatches', async () => {
    // prefill chunks and decodes under one shared node: 16-row units (chunks, shared prefix) and
    // 4-row direct units (decode leaves) in one plan
    const config: AttentionConfig = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };
    const batch = batchFromTree(HYBRID_TREE, config, 16, 9);
    const cache = randomKvCache(batch.numPages, batch.pageSize, config, 21);
    const queries = randomQueries(batch.requests.reduce((a, r) => a + r.numQueries, 0), config, 22);
    const ref = referenceAttention(batch, cache, queries);
    const menu = [DEFAULT_VARIANTS[0], DEFAULT_VARIANTS[1]];
    const outs: Float32Array[] = [];
    for (const dispatch of ['per-variant', 'roles'] as const) {
      const b = await WebGpuBackend.create({ subgroups: true, tiling: 'shared', variants: menu, dispatch });
      try {
        await b.setKvCache(cache);
        const plan = prefix(batch, b.capabilities);
        validatePlan(plan, batch);
        const l = b.layoutOf(plan, queries);
        expect(l.variantUnits.every(([, n]) => n > 0), 'the plan uses both variants').toBe(true);
        // one dispatch with roles where the variants share a workgroup size (they do with subgroups)
        expect(l.attentionDispatches).toBe(dispatch === 'roles' && b.gpu.features.has('subgroups') ? 1 : 2);
        const got = await b.run(plan, queries);
        expect(maxErr(got.out, ref.out), `out (${dispatch})`).toBeLessThanOrEqual(2e-3);
        expect(maxErr(got.lse, ref.lse), `lse (${dispatch})`).toBeLessThanOrEqual(2e-3);
        outs.push(got.out);
        const t = await b.timeGroup([plan], [queries], { warmup: 0, iters: 2, mode: 'concurrent' });
        expect(t.timesUs.length).toBe(2);
      } finally {
        await b.dispose();
      }
    }
    let diff = 0;
    for (let i = 0; i < outs[0].length; i++) diff = Math.max(diff, Math.abs(outs[0][i] - outs[1][i]));
    expect(diff).toBeLessThan(1e-5);
    // a cold lavapipe compiles the one-dispatch module (both bodies) for a minute or more
  }, 300_000);

  it('refuses an unknown dispatch mode', async () => {
    await expect(WebGpuBackend.create({ dispatch: 'fused' as never })).rejects.toThrow(/dispatch must be 'per-variant' or 'roles', got "fused"/);
  });
});
