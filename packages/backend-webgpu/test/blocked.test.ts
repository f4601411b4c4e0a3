import { randomKvCache, randomQueries, type AttentionConfig, type KvDtype } from '@canopy/core';
import { batchFromTree, HYBRID_TREE, type TreeSpec } from '@canopy/backend-testkit';
import { prefix } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { BLOCKED_VARIANTS, BLOCKED2_VARIANTS, blockedShape, WebGpuBackend, type KernelVariant } from '../src/index.js';
import { gpuAvailability } from './gpu.js';
import { expectPlansMatchReference } from './check.js';
import { SHARED_TREE } from './plans.js';

const avail = await gpuAvailability();



const tiles = [{ rows: 4, kvBlock: 32 }, { rows: 16, kvBlock: 16 }, { rows: 64, kvBlock: 16 }];

describe('blocked kernel shapes', () => {
  it('tile the rows, tokens and head dim exactly, or are refused', () => {
    for (const [rows, kvBlock, d] of [
      [64, 16, 128],
      [64, 16, 64],
      [32, 16, 128],
      [16, 16, 128],
      [16, 8, 128],
      [16, 16, 256],
    ]) {
      const s = blockedShape(rows, kvBlock, d);
      expect(s, `${rows}/${kvBlock}/d${d}`).toBeDefined();
      // S = Q·Kᵀ: 4 rows × qkTokens tokens per invocation; O: pvRowQuads × 4 rows × pvVec4 × 4 dims
      expect((rows / 4) * (kvBlock / s!.qkTokens)).toBe(s!.workgroupSize);
      expect((rows / 4 / s!.pvRowQuads) * (d / 4 / s!.pvVec4)).toBe(s!.workgroupSize);
      expect(s!.workgroupSize).toBeGreaterThanOrEqual(rows);
    }
    // the H100's 64-row tile at d128 fits its 48 KiB; at d256 it needs more than any device gives
    expect(blockedShape(64, 16, 128)!.workgroupBytes).toBeLessThanOrEqual(48 * 1024);
    expect(blockedShape(64, 16, 256)!.workgroupBytes).toBeGreaterThan(64 * 1024);
    expect(blockedShape(6, 16, 64)).toBeUndefined();
  });
});

describe.skipIf(!avail.available)(`webgpu register-blocked kernel (${avail.reason})`, () => {
  // Three pipelines, forced on this (CPU) adapter: d64 f16 with the GPU menu's 64-row variant (256
  // invocations), the same with 128 (2 tokens per invocation in S, 2 row quads in O), and d128 f32
  // with 16 rows and 8-token blocks (2 row quads × 2 vec4 dims in O). GQA is a run-time value, so
  // each pipeline serves GQA 1 and 4.
  // (lavapipe runs these kernels slowly, so not every pipeline sees every GQA × tree pair)
  for (const [dtype, d, variant, cases] of [
    ['f16', 64, BLOCKED_VARIANTS[2], [[4, SHARED_TREE], [4, HYBRID_TREE], [1, HYBRID_TREE]]],
    ['f16', 64, { ...BLOCKED_VARIANTS[2], workgroupSize: 128 }, [[4, HYBRID_TREE]]],
    ['f32', 128, { rows: 16, kvBlock: 8, splits: 1, dimsPerThread: 32, blocked: true }, [[1, SHARED_TREE], [4, HYBRID_TREE]]],
  ] as Array<[KvDtype, number, KernelVariant, Array<[number, TreeSpec]>]>) {
    const what = cases.map(([g, t]) => `GQA ${g} ${t === SHARED_TREE ? 'shared' : 'hybrid'}`).join(', ');
    it(`matches the reference on tree, per-request and prefix plans (${dtype}, d${d}, ${variant.rows} rows, ${variant.workgroupSize ?? 128} invocations; ${what})`, async () => {
      const b = await WebGpuBackend.create({ variants: [variant] });
      try {
        await expectPlansMatchReference(b, dtype, d, cases, tiles, (kernels) => {
          expect(kernels.every((k) => k.includes('/blocked/')), `blocked kernel ran: ${kernels.join(', ')}`).toBe(true);
        });
      } finally {
        await b.dispose();
      }
    }, 300_000);
  }

  it('is the GPU default, off on CPU adapters, and CANOPY_WEBGPU_BLOCKED is checked', async () => {
    const b = await WebGpuBackend.create({ tiling: 'shared' });
    try {
      expect(b.blocked).toBe(!b.gpu.isCpu);
      expect(b.blockedMenu).toBe(2);
    } finally {
      await b.dispose();
    }
    const old = process.env.CANOPY_WEBGPU_BLOCKED;
    try {
      for (const [env, menu] of [['1', BLOCKED_VARIANTS], ['2', BLOCKED2_VARIANTS]] as const) {
        process.env.CANOPY_WEBGPU_BLOCKED = env;
        const forced = await WebGpuBackend.create({ tiling: 'shared' });
        expect(forced.blocked).toBe(true);
        expect(forced.blockedMenu).toBe(Number(env));
        expect(forced.capabilities.tileMenu).toEqual(menu.map((v) => ({ rows: v.rows, kvBlock: v.kvBlock })));
        await forced.dispose();
      }
      process.env.CANOPY_WEBGPU_BLOCKED = 'yes';
      await expect(WebGpuBackend.create()).rejects.toThrow(/CANOPY_WEBGPU_BLOCKED must be '0', '1' or '2', got "yes"/);
      delete process.env.CANOPY_WEBGPU_BLOCKED;
      await expect(WebGpuBackend.create({ blockedMenu: 3 as 2 })).rejects.toThrow(/blockedMenu must be 1 or 2, got 3/);
    } finally {
      if (old === undefined) delete process.env.CANOPY_WEBGPU_BLOCKED;
      else process.env.CANOPY_WEBGPU_BLOCKED = old;
    }
  });

  it('falls back to the shared-tiling kernel where the blocked one does not fit the workgroup memory', async () => {
    // 64 rows at d256 need 86 KiB of workgroup memory (more than lavapipe's 32 KiB or the H100's 48 KiB)
    const b = await WebGpuBackend.create({ variants: [{ rows: 64, kvBlock: 16, splits: 1, dimsPerThread: 64, blocked: true }], tiling: 'shared' });
    try {
      const config: AttentionConfig = { numQoHeads: 4, numKvHeads: 1, headDim: 256, kvDtype: 'f16' };
      const batch = batchFromTree({ parent: [-1], tokens: [20], requestAt: [0], numQueries: [1] }, config, 16);
      const cache = randomKvCache(batch.numPages, batch.pageSize, config, 1);
      await b.setKvCache(cache);
      const queries = randomQueries(1, config, 2);
      const l = b.layoutOf(prefix(batch, b.capabilities), queries);
      expect(l.kernels.length).toBe(1);
      expect(l.kernels[0]).not.toContain('/blocked/');
    } finally {
      await b.dispose();
    }
  });
});
