import { randomKvCache, randomQueries, type AttentionConfig, type KvDtype } from '@canopy/core';
import { batchFromTree, HYBRID_TREE, type TreeSpec } from '@canopy/backend-testkit';
import { prefix } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { BLOCKED2_VARIANTS, decodeShape, WebGpuBackend, type KernelVariant } from '../src/index.js';
import { gpuAvailability } from './gpu.js';
import { expectPlansMatchReference } from './check.js';
import { SHARED_TREE } from './plans.js';

const avail = await gpuAvailability();
const tiles = [{ rows: 4, kvBlock: 32 }, { rows: 16, kvBlock: 16 }, { rows: 64, kvBlock: 16 }];

describe('decode kernel shapes', () => {
  it('lane groups within a subgroup, one or more raw words per lane, else refused', () => {
    // d128 f16 on the H100: 16 lanes × 1 word per token row, 8 groups of 128 invocations
    expect(decodeShape(4, 128, 'f16', 32)).toMatchObject({ lanesPerToken: 16, wordsPerLane: 1, groups: 8, workgroupBytes: 8 * 4 * 32 * 16 + 8 * 32 });
    expect(decodeShape(4, 128, 'f32', 32)).toMatchObject({ lanesPerToken: 32, wordsPerLane: 1, groups: 4 });
    expect(decodeShape(4, 256, 'f32', 32)).toMatchObject({ lanesPerToken: 32, wordsPerLane: 2 });
    // lavapipe's subgroups of 4 (128-bit vectors) or 8
    expect(decodeShape(4, 64, 'f16', 4, 64, 4)).toMatchObject({ lanesPerToken: 4, wordsPerLane: 2, groups: 16, tokensPerLane: 4 });
    expect(decodeShape(4, 64, 'f16', 8)).toMatchObject({ lanesPerToken: 8, wordsPerLane: 1 });
    expect(decodeShape(4, 96, 'f16', 32)).toMatchObject({ lanesPerToken: 4, wordsPerLane: 3 }); // 12 words
    expect(decodeShape(4, 256, 'f32', 4)).toBeUndefined(); // 16 words per lane
    expect(decodeShape(16, 128, 'f16', 32)).toBeUndefined(); // 4-row units only
  });
});

describe.skipIf(!avail.available)(`webgpu decode kernel (${avail.reason})`, () => {
  // Forced on this (CPU) adapter (lavapipe's subgroups have 8 lanes, or 4 with 128-bit vectors as
  // in CI: then 2 words per lane): f16 d64 and f32 d32 (8 raw words per token row), tree plans with 4-row tiles (several row blocks per item, rows past the item's end),
  // per-request plans (chunks of 7 tokens: partial blocks), prefix plans of a hybrid tree (causal
  // prefill rows), GQA 1 and 4. The other variant is the shared-tiling 16-row one.
  for (const [dtype, d, variant, cases] of [
    ['f16', 64, BLOCKED2_VARIANTS[0], [[4, SHARED_TREE], [4, HYBRID_TREE], [1, HYBRID_TREE]]],
    ['f32', 32, { ...BLOCKED2_VARIANTS[0], workgroupSize: 64, tokensPerLane: 3 }, [[1, SHARED_TREE], [4, HYBRID_TREE]]],
    ['f16', 64, { ...BLOCKED2_VARIANTS[0], workgroupSize: 128 }, [[4, SHARED_TREE], [1, HYBRID_TREE]]],
  ] as Array<[KvDtype, number, KernelVariant, Array<[number, TreeSpec]>]>) {
    const what = cases.map(([g, t]) => `GQA ${g} ${t === SHARED_TREE ? 'shared' : 'hybrid'}`).join(', ');
    it(`matches the reference (${dtype}, d${d}, ${variant.workgroupSize ?? 128} invocations, ${variant.tokensPerLane} tokens per lane; ${what})`, async () => {
      const b = await WebGpuBackend.create({ variants: [variant, { rows: 16, kvBlock: 16, splits: 1, dimsPerThread: 32 }], tiling: 'shared' });
      try {
        await expectPlansMatchReference(b, dtype, d, cases, [tiles[0]], (kernels) => {
          expect(kernels[0], `decode kernel ran: ${kernels.join(', ')}`).toContain('/decode/');
        });
      } finally {
        await b.dispose();
      }
    }, 300_000);
  }

  it('falls back to the variant as given without subgroups', async () => {
    const b = await WebGpuBackend.create({ variants: [BLOCKED2_VARIANTS[0]], subgroups: false, tiling: 'shared' });
    try {
      const config: AttentionConfig = { numQoHeads: 4, numKvHeads: 1, headDim: 64, kvDtype: 'f16' };
      const batch = batchFromTree({ parent: [-1], tokens: [20], requestAt: [0], numQueries: [1] }, config, 16);
      await b.setKvCache(randomKvCache(batch.numPages, batch.pageSize, config, 1));
      const queries = randomQueries(1, config, 2);
      const l = b.layoutOf(prefix(batch, b.capabilities), queries);
      expect(l.kernels[0]).not.toContain('/decode/');
    } finally {
      await b.dispose();
    }
  });
});
