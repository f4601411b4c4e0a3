import { randomKvCache, randomQueries, referenceAttention, validatePlan, type AttentionConfig } from '@canopy/core';
import { batchFromTree, type TreeSpec } from '@canopy/backend-testkit';
import { describe, expect, it } from 'vitest';
import { WebGpuBackend, DEFAULT_VARIANTS } from '../src/index.js';
import { gpuAvailability } from './gpu.js';
import { testPlan } from './plans.js';

const avail = await gpuAvailability();
const tiles = [{ rows: 4, kvBlock: 32 }, { rows: 16, kvBlock: 16 }, { rows: 64, kvBlock: 16 }];

function maxErr(got: Float32Array, ref: Float64Array): number {
  let m = 0;
  let scale = 1;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    if (!(e <= m)) m = Number.isNaN(e) ? Infinity : e;
  }
  return m / scale;
}

const shared: TreeSpec = {
  parent: [-1, 0, 0, 1, 1, 2, -1],
  tokens: [45, 17, 64, 9, 33, 1, 70],
  requestAt: [3, 4, 5, 1, 2, 6, 3],
  numQueries: [1, 1, 1, 1, 3, 1, 2],
};

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
      const batch = batchFromTree(shared, config, 16, 7);
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
