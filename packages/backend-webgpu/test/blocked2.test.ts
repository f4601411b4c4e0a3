import { randomKvCache, randomQueries, referenceAttention, validatePlan, type AttentionConfig, type KvDtype } from '@canopy/core';
import { batchFromTree, HYBRID_TREE, type TreeSpec } from '@canopy/backend-testkit';
import { prefix } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { BLOCKED_VARIANTS, BLOCKED2_VARIANTS, blocked2Shape, prepareLayout, WebGpuBackend, type KernelVariant } from '../src/index.js';
import { gpuAvailability } from './gpu.js';
import { expectPlansMatchReference } from './check.js';
import { maxErr, SHARED_TREE, testPlan } from './plans.js';

const avail = await gpuAvailability();

const tiles = [{ rows: 4, kvBlock: 32 }, { rows: 16, kvBlock: 16 }, { rows: 64, kvBlock: 16 }];
const B2: KernelVariant = { ...BLOCKED_VARIANTS[2], blockedVersion: 2 };

describe('blocked layout 2 shapes', () => {
  it('tile S in 2 × 2 and O exactly, fit the H100 at 64 rows × d128, or are refused', () => {
    for (const [rows, kvBlock, d] of [
      [64, 16, 128],
      [64, 16, 64],
      [32, 16, 128],
      [16, 16, 128],
      [16, 8, 128],
      [64, 16, 256],
    ]) {
      for (const sg of [true, false]) {
        const s = blocked2Shape(rows, kvBlock, d, sg);
        expect(s, `${rows}/${kvBlock}/d${d}`).toBeDefined();
        expect(s!.workgroupSize).toBe((rows / 2) * (kvBlock / 2));
        expect((rows / 4 / s!.pvRowQuads) * (d / 4 / s!.pvVec4)).toBe(s!.workgroupSize);
      }
    }
    // 46,864 bytes with subgroups, 48,912 without: both under the H100's 48 KiB
    expect(blocked2Shape(64, 16, 128, true)!.workgroupBytes).toBe(46864);
    expect(blocked2Shape(64, 16, 128, false)!.workgroupBytes).toBeLessThanOrEqual(48 * 1024);
    expect(blocked2Shape(64, 16, 128, true, 2)!.pvVec4).toBe(1);
    // a row-quad count that does not tile falls back to one that does (2 at d64 needs half a vec4)
    expect(blocked2Shape(64, 16, 128, true, 3)!.pvRowQuads).toBe(1);
    expect(blocked2Shape(64, 16, 64, true, 2)!.pvRowQuads).toBe(1);
    expect(blocked2Shape(64, 6, 128, true)).toBeUndefined(); // 3 tokens per lane group: not a power of two
    expect(blocked2Shape(64, 32, 128, true)).toBeUndefined(); // 512 invocations
    expect(blocked2Shape(6, 16, 64, true)).toBeUndefined();
  });

  it('per-variant chunk bounds: maxChunk splits a variant\'s long items, minChunk keeps them whole', () => {
    const config: AttentionConfig = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };
    const batch = batchFromTree(SHARED_TREE, config, 16, 7);
    const plan = testPlan(batch, { mode: 'tree', chunk: 1000, maxQueries: 16, tiles });
    const shape = { numQoHeads: 8, numKvHeads: 2, numPages: batch.numPages, pageSize: 16 };
    const many = { targetUnits: 1, minChunk: 16 };
    const plain = prepareLayout(plan, shape, [B2], many);
    const capped = prepareLayout(plan, shape, [{ ...B2, maxChunk: 16 }], many);
    expect(capped.numUnits).toBeGreaterThan(plain.numUnits);
    // every unit of the capped layout reads at most 16 tokens; the token total is unchanged
    for (let u = 0; u < capped.numUnits; u++) expect(capped.words[u * 8 + 1]).toBeLessThanOrEqual(16);
    expect(capped.unitTokens).toBe(plain.unitTokens);
    const few = { targetUnits: 1e6, minChunk: 16 };
    const split = prepareLayout(plan, shape, [B2], few);
    const whole = prepareLayout(plan, shape, [{ ...B2, minChunk: 1e9 }], few);
    expect(split.numUnits).toBeGreaterThan(whole.numUnits);
    expect(whole.numUnits).toBe(plain.numUnits);
  });
});

describe.skipIf(!avail.available)(`webgpu register-blocked kernel, layout 2 (${avail.reason})`, () => {
  it('the GPU default menu (BLOCKED2_VARIANTS: decode kernel, layout 2 at 16 and 64 rows) matches the reference', async () => {
    // forced on this (CPU) adapter through `tiling`; d64 f16, GQA 4: tree plans with all three tiles
    // and prefix plans of the shared and hybrid trees
    const b = await WebGpuBackend.create({ tiling: 'shared', blocked: true });
    try {
      expect(b.capabilities.tileMenu).toEqual(BLOCKED2_VARIANTS.map((v) => ({ rows: v.rows, kvBlock: v.kvBlock })));
      const ran = new Set<string>();
      for (const spec of [SHARED_TREE, HYBRID_TREE]) {
        const config: AttentionConfig = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };
        const batch = batchFromTree(spec, config, 16, 7);
        const cache = randomKvCache(batch.numPages, batch.pageSize, config, 11);
        const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
        const queries = randomQueries(nq, config, 12);
        const ref = referenceAttention(batch, cache, queries);
        await b.setKvCache(cache);
        for (const plan of [testPlan(batch, { mode: 'tree', chunk: 40, maxQueries: 16, tiles }), prefix(batch, b.capabilities)]) {
          validatePlan(plan, batch);
          const l = b.layoutOf(plan, queries);
          for (const k of l.kernels) ran.add(k.split('/')[3]);
          const got = await b.run(plan, queries);
          if (b.capabilities.gpuTimers) {
            // per-dispatch timing: the attention dispatches in order, then the merge when there is one
            const dt = await b.timeDispatches(plan, queries, { warmup: 0, iters: 2 });
            expect(dt.map((d) => d.kernel)).toEqual([...l.kernels, ...(l.mergeCount > 0 ? ['m/64'] : [])]);
            for (const d of dt) expect(d.us > 0 && d.workgroups > 0, JSON.stringify(d)).toBe(true);
          }
          expect(maxErr(got.out, ref.out), `out (${plan.planner})`).toBeLessThanOrEqual(2e-3);
          expect(maxErr(got.lse, ref.lse), `lse (${plan.planner})`).toBeLessThanOrEqual(2e-3);
        }
      }
      expect([...ran].sort()).toEqual(['blocked2', 'decode']);
    } finally {
      await b.dispose();
    }
  }, 300_000);

  // Forced on this (CPU) adapter: d64 f16 with 64 rows × 8 tokens (128 invocations; row reductions
  // over 4 lanes by subgroup shuffles, which lavapipe's 4- or 8-wide subgroups allow), 64 rows × 16
  // tokens (256 invocations) with the workgroup-memory reductions and 48-token chunks (maxChunk),
  // and d128 f32 with 16 rows, 8-token blocks and 2 row quads per invocation in O.
  for (const [dtype, d, variant, subgroups, cases] of [
    ['f16', 64, { ...B2, kvBlock: 8 }, true, [[4, SHARED_TREE], [4, HYBRID_TREE], [1, HYBRID_TREE]]],
    ['f16', 64, { ...B2, maxChunk: 48 }, false, [[4, SHARED_TREE], [1, HYBRID_TREE]]],
    ['f32', 128, { rows: 16, kvBlock: 8, splits: 1, dimsPerThread: 32, blocked: true, blockedVersion: 2, pvRowQuads: 2 }, true, [[1, SHARED_TREE], [4, HYBRID_TREE]]],
  ] as Array<[KvDtype, number, KernelVariant, boolean, Array<[number, TreeSpec]>]>) {
    const what = cases.map(([g, t]) => `GQA ${g} ${t === SHARED_TREE ? 'shared' : 'hybrid'}`).join(', ');
    it(`matches the reference on tree, per-request and prefix plans (${dtype}, d${d}, ${variant.rows} rows × ${variant.kvBlock} tokens, ${subgroups ? 'subgroup' : 'workgroup-memory'} reductions${variant.maxChunk ? `, chunks ≤ ${variant.maxChunk}` : ''}; ${what})`, async () => {
      const b = await WebGpuBackend.create({ variants: [variant], subgroups });
      try {
        const sgWanted = subgroups && b.gpu.features.has('subgroups') && b.gpu.subgroupMinSize >= variant.kvBlock / 2;
        await expectPlansMatchReference(b, dtype, d, cases, tiles, (kernels) => {
          expect(kernels.every((k) => k.includes('/blocked2/')), `blocked layout 2 ran: ${kernels.join(', ')}`).toBe(true);
          expect(kernels.every((k) => k.endsWith(`/${sgWanted}`)), `reductions: ${kernels.join(', ')}`).toBe(true);
        });
      } finally {
        await b.dispose();
      }
    }, 300_000);
  }
});
