// The kernel tests' reference check: for each (GQA, tree) case, a hand-made tree plan, a
// per-request plan (7-token chunks: partial blocks) and the prefix planner's plan run on the
// backend and match referenceAttention; `ran` asserts which kernels each plan's layout used.
import { randomKvCache, randomQueries, referenceAttention, validatePlan, type AttentionConfig, type KvDtype, type Plan, type TileShape } from '@canopy/core';
import { batchFromTree, type TreeSpec } from '@canopy/backend-testkit';
import { prefix } from '@canopy/planner';
import { expect } from 'vitest';
import type { WebGpuBackend } from '../src/index.js';
import { maxErr, SHARED_TREE, testPlan } from './plans.js';

export async function expectPlansMatchReference(
  b: WebGpuBackend,
  dtype: KvDtype,
  d: number,
  cases: Array<[number, TreeSpec]>,
  treeTiles: TileShape[],
  ran: (kernels: string[]) => void,
): Promise<void> {
  for (const [gqa, spec] of cases) {
    const config: AttentionConfig = { numQoHeads: 2 * gqa, numKvHeads: 2, headDim: d, kvDtype: dtype };
    const batch = batchFromTree(spec, config, 16, 7);
    const cache = randomKvCache(batch.numPages, batch.pageSize, config, 3 + gqa);
    const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
    const queries = randomQueries(nq, config, 5 + gqa);
    const ref = referenceAttention(batch, cache, queries);
    await b.setKvCache(cache);
    const plans: Plan[] = [
      testPlan(batch, { mode: 'tree', chunk: 20, maxQueries: 3, tiles: treeTiles }),
      testPlan(batch, { mode: 'request', chunk: 7, maxQueries: 2, tiles: [{ rows: 1, kvBlock: 16 }] }),
      prefix(batch, b.capabilities),
    ];
    for (const plan of plans) {
      validatePlan(plan, batch);
      ran(b.layoutOf(plan, queries).kernels);
      const got = await b.run(plan, queries);
      const tol = dtype === 'f16' ? 2e-3 : 2e-4;
      const what = `${plan.planner}, GQA ${gqa}, ${spec === SHARED_TREE ? 'shared' : 'hybrid'} tree`;
      expect(maxErr(got.out, ref.out), `out (${what})`).toBeLessThanOrEqual(tol);
      expect(maxErr(got.lse, ref.lse), `lse (${what})`).toBeLessThanOrEqual(tol);
    }
  }
}
