import {
  type AttentionConfig,
  f16BitsToF32,
  f32ToF16Bits,
  randomKvCache,
  randomQueries,
  referenceAttention,
  validatePlan,
  type AttentionBackend,
  type BackendFactory,
  type Batch,
  type KvDtype,
  type PagedKvCache,
  type Planner,
} from '@canopy/core';
import { planners as defaultPlanners } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { batchFromTree, conformanceCases, HYBRID_TREE, type ConformanceCase, type TreeSpec } from './trees.js';

export interface Tolerance {
  /** Max |out - ref| allowed, relative to max(1, max |ref|). */
  out: number;
  /** Max |lse - ref| allowed. */
  lse: number;
}

/** Default tolerances: f32 KV computes in f32; f16 KV allows backends that also round Q or P to f16 (tensor cores). */
export const DEFAULT_TOLERANCE: Record<KvDtype, Tolerance> = {
  f32: { out: 2e-4, lse: 2e-4 },
  f16: { out: 4e-3, lse: 4e-3 },
};

export interface ConformanceOptions {
  /** Planners to run every case with (default: both of @canopy/planner, perRequest and prefix). */
  planners?: Record<string, Planner>;
  tolerance?: Partial<Record<KvDtype, Tolerance>>;
  /** Only cases whose name matches. */
  filter?: RegExp;
  /** Skip the whole suite with this reason (e.g. no GPU outside CI). Shown in the test name. */
  skipReason?: string;
  /** Per-test timeout in ms. */
  timeoutMs?: number;
}

export interface CaseResult {
  maxOutErr: number;
  maxLseErr: number;
}

/** How much larger the spiked keys of a `keySpikes` case are (their scores ~12× the others').
 * Enough for running maxima to jump by more than 8 (log2 units) mid-stream (test/spikes.test.ts),
 * and within the f16 tolerance for kernels that round Q to fp16 for tensor cores: their lse error
 * grows with the scores' size (24× gave the CUDA backend 4.6e-3 against the 4e-3 tolerance, as an
 * emulation of that rounding predicts; 12× gives 1.6e-3). */
export const KEY_SPIKE_FACTOR = 12;

/** Multiply the keys (every KV head, every dim) of token slots 0, every, 2·every, … of the pool by
 * KEY_SPIKE_FACTOR, in place: a few scores far above the rest, at places a kernel cannot expect. */
export function spikeKeys(cache: PagedKvCache, every: number): void {
  const row = cache.numKvHeads * cache.headDim;
  const slots = cache.numPages * cache.pageSize;
  for (let t = 0; t < slots; t += every) {
    for (let i = t * row; i < (t + 1) * row; i++) {
      if (cache.k instanceof Uint16Array) cache.k[i] = f32ToF16Bits(f16BitsToF32(cache.k[i]) * KEY_SPIKE_FACTOR);
      else cache.k[i] *= KEY_SPIKE_FACTOR;
    }
  }
}

/** Run one case on a backend with one planner; returns the errors against the reference. */
export async function runConformanceCase(backend: AttentionBackend, c: ConformanceCase, planner: Planner, seed = 1234): Promise<CaseResult> {
  const batch = buildCaseBatch(c);
  const cache = randomKvCache(batch.numPages, batch.pageSize, c.config, seed);
  if (c.keySpikes) spikeKeys(cache, c.keySpikes);
  const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
  const queries = randomQueries(nq, c.config, seed + 7);
  const plan = planner(batch, backend.capabilities);
  validatePlan(plan, batch);
  await backend.setKvCache(cache);
  const got = await backend.run(plan, queries);
  const ref = referenceAttention(batch, cache, queries);
  expect(got.out.length).toBe(ref.out.length);
  expect(got.lse.length).toBe(ref.lse.length);
  let maxRef = 1;
  for (let i = 0; i < ref.out.length; i++) maxRef = Math.max(maxRef, Math.abs(ref.out[i]));
  let maxOutErr = 0;
  let maxLseErr = 0;
  for (let i = 0; i < ref.out.length; i++) {
    const e = Math.abs(got.out[i] - ref.out[i]);
    if (!(e <= maxOutErr)) maxOutErr = Number.isNaN(e) ? Infinity : e;
  }
  for (let i = 0; i < ref.lse.length; i++) {
    const e = Math.abs(got.lse[i] - ref.lse[i]);
    if (!(e <= maxLseErr)) maxLseErr = Number.isNaN(e) ? Infinity : e;
  }
  return { maxOutErr: maxOutErr / maxRef, maxLseErr };
}

export function buildCaseBatch(c: ConformanceCase): Batch {
  const batch = batchFromTree(c.spec, c.config, c.pageSize, c.shuffleSeed);
  if (!c.explicitTree) delete batch.tree;
  return batch;
}

/**
 * Check `backend.timeGroup` (optional in the contract) on a hybrid step: the prefill requests of
 * `HYBRID_TREE` and its decodes planned separately and timed as one step in both modes. It must
 * return `iters` finite times, leave the backend able to run both plans correctly afterwards, and
 * reject bad input (no plans, a query tensor missing, a query tensor of the wrong size).
 * Throws (vitest assertions) on the first problem. Needs causal masks and head dim 64, f16 KV.
 */
export async function checkTimeGroup(backend: AttentionBackend, planner: Planner, seed = 4321): Promise<void> {
  const group = backend.timeGroup?.bind(backend);
  if (!group) throw new Error(`${backend.name} has no timeGroup`);
  const config: AttentionConfig = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };
  const whole = batchFromTree(HYBRID_TREE, config, 16, 5);
  const cache = randomKvCache(whole.numPages, whole.pageSize, config, seed);
  // the same tree and page shuffle, so both halves index the one cache
  const half = (prefill: boolean): TreeSpec => {
    const keep = HYBRID_TREE.requestAt.map((_, r) => r).filter((r) => (HYBRID_TREE.numQueries![r] > 1) === prefill);
    return { ...HYBRID_TREE, requestAt: keep.map((r) => HYBRID_TREE.requestAt[r]), numQueries: keep.map((r) => HYBRID_TREE.numQueries![r]) };
  };
  const batches = [batchFromTree(half(true), config, 16, 5), batchFromTree(half(false), config, 16, 5)];
  const queries = batches.map((b, i) => randomQueries(b.requests.reduce((a, r) => a + r.numQueries, 0), config, seed + 1 + i));
  await backend.setKvCache(cache);
  const plans = batches.map((b) => {
    const p = planner(b, backend.capabilities);
    validatePlan(p, b);
    return p;
  });
  for (const mode of ['serial', 'concurrent'] as const) {
    const r = await group(plans, queries, { warmup: 1, iters: 3, mode });
    expect(r.timesUs.length, `timeGroup(${mode}) returns one time per iteration`).toBe(3);
    for (const t of r.timesUs) expect(Number.isFinite(t) && t >= 0, `timeGroup(${mode}) time ${t} µs`).toBe(true);
    expect(['gpu', 'wall']).toContain(r.clock);
  }
  const one = await group([plans[1]], [queries[1]], { warmup: 0, iters: 2, mode: 'serial' });
  expect(one.timesUs.length, 'timeGroup of one plan').toBe(2);
  // the plans still run correctly after being timed together
  const tol = DEFAULT_TOLERANCE.f16;
  for (let i = 0; i < 2; i++) {
    const got = await backend.run(plans[i], queries[i]);
    const ref = referenceAttention(batches[i], cache, queries[i]);
    let maxRef = 1;
    for (let k = 0; k < ref.out.length; k++) maxRef = Math.max(maxRef, Math.abs(ref.out[k]));
    let err = 0;
    for (let k = 0; k < ref.out.length; k++) {
      const e = Math.abs(got.out[k] - ref.out[k]);
      if (!(e <= err)) err = Number.isNaN(e) ? Infinity : e;
    }
    expect(err / maxRef, `${i === 0 ? 'prefill' : 'decode'} plan after timeGroup`).toBeLessThanOrEqual(tol.out);
  }
  const opts = { warmup: 0, iters: 1, mode: 'serial' as const };
  const mustReject = async (what: string, call: () => Promise<unknown>): Promise<void> => {
    let threw = false;
    try {
      await call();
    } catch {
      threw = true;
    }
    if (!threw) throw new Error(`timeGroup accepted ${what}; it must reject it`);
  };
  await mustReject('no plans', () => group([], [], opts));
  await mustReject('two plans with one query tensor', () => group(plans, [queries[0]], opts));
  await mustReject('a query tensor of the wrong size', () => group(plans, [queries[0], queries[1].subarray(1)], opts));
}

/**
 * Register the conformance suite for a backend with vitest: every case × every planner, compared
 * with `referenceAttention` (float64) at a tolerance per KV dtype. Cases the backend's capabilities
 * rule out (head dim, dtype, causal masks) are registered as skipped with the reason, never
 * silently dropped.
 *
 *   describeBackendConformance(myBackendFactory);
 */
export function describeBackendConformance(factory: BackendFactory, options: ConformanceOptions = {}): void {
  const planners = options.planners ?? (defaultPlanners as Record<string, Planner>);
  const tol = { ...DEFAULT_TOLERANCE, ...options.tolerance };
  const cases = conformanceCases().filter((c) => !options.filter || options.filter.test(c.name));
  describe(`conformance: ${factory.name}`, () => {
    if (options.skipReason) {
      it.skip(`skipped: ${options.skipReason}`, () => {});
      return;
    }
    let backend: AttentionBackend | undefined;
    const get = async () => (backend ??= await factory.create());

    for (const c of cases) {
      for (const [plannerName, planner] of Object.entries(planners)) {
        const title = `${c.name} [${plannerName}]`;
        it(
          title,
          async (ctx) => {
            const b = await get();
            const caps = b.capabilities;
            const why = !caps.headDims.includes(c.config.headDim)
              ? `head dim ${c.config.headDim} not in capabilities.headDims`
              : !caps.kvDtypes.includes(c.config.kvDtype)
                ? `KV dtype ${c.config.kvDtype} not in capabilities.kvDtypes`
                : c.causal && !caps.masks.includes('causal')
                  ? 'causal masks not in capabilities.masks'
                  : undefined;
            if (why) {
              ctx.skip(why);
              return;
            }
            const r = await runConformanceCase(b, c, planner);
            const t = tol[c.config.kvDtype];
            expect(r.maxOutErr, `max |out - ref| / max(1, |ref|) for ${title}`).toBeLessThanOrEqual(t.out);
            expect(r.maxLseErr, `max |lse - ref| for ${title}`).toBeLessThanOrEqual(t.lse);
          },
          options.timeoutMs ?? 120_000,
        );
      }
    }
    it('timeGroup: two plans timed as one step (serial, concurrent), bad input rejected', async (ctx) => {
      const b = await get();
      const caps = b.capabilities;
      if (!b.timeGroup) return ctx.skip('the backend has no timeGroup (optional)');
      if (!caps.headDims.includes(64) || !caps.kvDtypes.includes('f16') || !caps.masks.includes('causal')) return ctx.skip('needs head dim 64, f16 KV and causal masks');
      await checkTimeGroup(b, Object.values(planners)[0]);
    }, options.timeoutMs ?? 120_000);
    it('dispose() then a fresh create() still works', async () => {
      const b = await get();
      await b.dispose();
      backend = undefined;
      const b2 = await get();
      const c = cases[0] ?? conformanceCases()[0];
      const planner = Object.values(planners)[0];
      if (!b2.capabilities.headDims.includes(c.config.headDim)) return;
      const r = await runConformanceCase(b2, c, planner);
      expect(r.maxOutErr).toBeLessThanOrEqual(tol[c.config.kvDtype].out);
      await b2.dispose();
      backend = undefined;
    });
  });
}
