/**
 * Random batches for property tests (fast-check arbitraries): random trees with nodes of 1..N
 * tokens (many ending mid-page), requests at any node (internal ones too, identical ones, ones
 * sharing nothing), prefill queries, GQA ratios 1..8, small head dims, random tile menus.
 */
import fc from 'fast-check';
import { randomKvCache, randomQueries, referenceAttention, runReference, type AttentionConfig, type BackendCapabilities, type Batch, type Plan, type TileShape } from '@canopy/core';
import type { PrefixPlannerOptions } from '../src/index.js';
import { treeBatch } from './workloads.js';

export interface RandomCase {
  batch: Batch;
  caps: BackendCapabilities;
  /** prefix planner options that make splits and fusion likely on small trees */
  opts: PrefixPlannerOptions;
}

export const arbOpts: fc.Arbitrary<PrefixPlannerOptions> = fc.record({
  minChunkTokens: fc.constantFrom(1, 2, 3, 7, 16, 128),
  maxChunksPerNode: fc.constantFrom(1, 3, 256),
  fuse: fc.boolean(),
  trustPageIds: fc.boolean(),
  fuseMaxTokens: fc.constantFrom(0, 8, 64, 100000),
  hybridLayout: fc.constantFrom('packed' as const, 'separate' as const),
  cost: fc.record({
    itemOverheadUs: fc.constantFrom(0.001, 0.05, 1, 50),
    flopPerByte: fc.constantFrom(1, 100),
    siblingByteFactor: fc.constantFrom(0, 0.25, 1),
  }),
});

const gqa = fc.constantFrom(1, 2, 4, 8);

export const arbConfig: fc.Arbitrary<AttentionConfig> = fc
  .record({ kv: fc.constantFrom(1, 2), g: gqa, d: fc.constantFrom(4, 8), dtype: fc.constantFrom<'f16' | 'f32'>('f16', 'f32') })
  .map(({ kv, g, d, dtype }) => ({ numQoHeads: kv * g, numKvHeads: kv, headDim: d, kvDtype: dtype }));

export const arbCaps: fc.Arbitrary<BackendCapabilities> = fc
  .record({
    rows: fc.subarray([1, 2, 4, 8, 16, 32, 64, 128], { minLength: 1 }),
    blocks: fc.subarray([8, 16, 32, 64, 128], { minLength: 1 }),
    units: fc.integer({ min: 1, max: 200 }),
    bw: fc.option(fc.integer({ min: 50, max: 4000 }), { nil: undefined }),
  })
  .map(({ rows, blocks, units, bw }) => {
    const tileMenu: TileShape[] = rows.flatMap((r) => blocks.map((b) => ({ rows: r, kvBlock: b })));
    return { kvDtypes: ['f16', 'f32'], headDims: [4, 8], tileMenu, masks: ['none', 'causal'], gpuTimers: false, parallelUnits: units, readBandwidthGBs: bw };
  });

export interface TreeShape {
  parent: number[];
  tokens: number[];
  requestNode: number[];
  ownTokens: number[];
  numQueries: number[];
}

/** A random tree shape; `maxTok` bounds node lengths. */
export function arbShape(opts: { maxNodes?: number; maxTok?: number; maxReq?: number; prefill?: boolean } = {}): fc.Arbitrary<TreeShape> {
  const maxNodes = opts.maxNodes ?? 12;
  const maxTok = opts.maxTok ?? 40;
  const maxReq = opts.maxReq ?? 10;
  return fc
    .integer({ min: 1, max: maxNodes })
    .chain((n) =>
      fc.record({
        parent: fc.tuple(...Array.from({ length: n }, (_, i) => (i === 0 ? fc.constant(-1) : fc.integer({ min: -1, max: i - 1 })))),
        tokens: fc.array(fc.integer({ min: 1, max: maxTok }), { minLength: n, maxLength: n }),
        reqs: fc.array(
          fc.record({
            node: fc.integer({ min: 0, max: n - 1 }),
            own: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: maxTok })),
            nq: opts.prefill === false ? fc.constant(1) : fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }) }),
          }),
          { minLength: 1, maxLength: maxReq },
        ),
      }),
    )
    .map(({ parent, tokens, reqs }) => ({
      parent: parent as number[],
      tokens,
      requestNode: reqs.map((r) => r.node),
      ownTokens: reqs.map((r) => r.own),
      numQueries: reqs.map((r) => r.nq),
    }));
}

/** Build the batch; clamps numQueries to the request's KV length. */
export function shapeBatch(s: TreeShape, config: AttentionConfig, pageSize: number, explicit: boolean): Batch {
  const b = treeBatch({ parent: s.parent, tokens: s.tokens, requestNode: s.requestNode, ownTokens: s.ownTokens, numQueries: 1, config, pageSize, explicit });
  b.requests.forEach((r, i) => {
    let L = 0;
    for (let k = 0; k < r.pageTokens.length; k++) L += r.pageTokens[k];
    r.numQueries = Math.min(s.numQueries[i], L);
  });
  return b;
}

export function arbCase(opts: Parameters<typeof arbShape>[0] & { explicit?: boolean } = {}): fc.Arbitrary<RandomCase> {
  return fc
    .record({ shape: arbShape(opts), config: arbConfig, caps: arbCaps, pageSize: fc.constantFrom(1, 4, 16), explicit: opts.explicit === undefined ? fc.boolean() : fc.constant(opts.explicit), o: arbOpts })
    .map(({ shape, config, caps, pageSize, explicit, o }) => ({ batch: shapeBatch(shape, config, pageSize, explicit), caps, opts: o }));
}

/** Largest |out| and |lse| difference between the reference backend running `plan` and
 * `referenceAttention` (float64, no plan) on random KV and queries. */
export async function planErrorVsReference(batch: Batch, plan: Plan, seed: number): Promise<number> {
  const cache = randomKvCache(batch.numPages, batch.pageSize, batch.config, seed);
  const queries = randomQueries(plan.numQueries, batch.config, seed + 7);
  const ref = referenceAttention(batch, cache, queries);
  const got = await runReference(batch, cache, plan, queries);
  let maxErr = 0;
  for (let i = 0; i < ref.out.length; i++) maxErr = Math.max(maxErr, Math.abs(ref.out[i] - got.out[i]));
  for (let i = 0; i < ref.lse.length; i++) maxErr = Math.max(maxErr, Math.abs(ref.lse[i] - got.lse[i]));
  return maxErr;
}
