import { batchFromTree } from '@canopy/backend-testkit';
import { CanopyError, randomKvCache, randomQueries, referenceAttention, validatePlan, type AttentionConfig, type Plan } from '@canopy/core';
import { afterEach, describe, expect, it } from 'vitest';
import { CPU_CAPABILITIES, CpuBackend, cpuBackendFactory, cpuSimdAvailable } from '../src/index.js';
import { chunkedPlanner } from './chunked-planner.js';

const config: AttentionConfig = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };
// root of 90 tokens shared by 6 requests with own leaves; one request does a causal 5-token prefill
const spec = { parent: [-1, 0, 0, 0, 0, 0, 0], tokens: [90, 3, 17, 1, 40, 9, 12], requestAt: [1, 2, 3, 4, 5, 6], numQueries: [1, 1, 1, 5, 1, 1] };
const batch = batchFromTree(spec, config, 16, 7);
const cache = randomKvCache(batch.numPages, batch.pageSize, config, 11);
const queries = randomQueries(10, config, 12);
const plan = chunkedPlanner(32)(batch, CPU_CAPABILITIES);
validatePlan(plan, batch);
const ref = referenceAttention(batch, cache, queries);

function maxErr(a: Float32Array, b: Float64Array): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
}

const made: CpuBackend[] = [];
async function make(opts: Parameters<typeof CpuBackend.create>[0]) {
  const b = await CpuBackend.create(opts);
  made.push(b);
  return b;
}
afterEach(async () => {
  await Promise.all(made.splice(0).map((b) => b.dispose()));
});

describe('CpuBackend', () => {
  it('matches the reference with 0, 1, 2 and 3 workers, several KV block and row pass sizes, SIMD on and off', async () => {
    for (const workers of [0, 1, 3]) {
      for (const simd of [true, false]) {
        for (const [kvBlock, rowsMax] of [
          [1, 128],
          [16, 3],
          [64, 128],
        ]) {
          const b = await make({ workers, kvBlock, rowsMax, inlineBelow: 0, simd });
          await b.setKvCache(cache);
          const got = await b.run(plan, queries);
          const what = `workers ${workers} simd ${simd} kvBlock ${kvBlock} rowsMax ${rowsMax}`;
          expect(maxErr(got.out, ref.out), what).toBeLessThan(1e-5);
          expect(maxErr(got.lse, ref.lse), what).toBeLessThan(1e-5);
        }
      }
    }
  });

  it('reports which inner loops it runs', async () => {
    expect(cpuSimdAvailable()).toBe(true); // Node 20 has WebAssembly SIMD
    expect((await make({ workers: 0 })).device).toMatch(/WebAssembly SIMD/);
    expect((await make({ workers: 0, simd: false })).device).toMatch(/JavaScript f32/);
  });

  it('dispose() terminates every worker thread', async () => {
    const b = await CpuBackend.create({ workers: 3, inlineBelow: 0 });
    expect(b.liveWorkers).toBe(3);
    await b.setKvCache(cache);
    await b.run(plan, queries);
    const ids = b.workerThreadIds;
    expect(new Set(ids).size).toBe(3);
    await b.dispose();
    expect(b.liveWorkers).toBe(0);
    await b.dispose(); // idempotent
    await expect(b.run(plan, queries)).rejects.toThrow(/after dispose/);
  });

  it('returns fresh arrays and copies the KV cache (the caller may reuse its buffers)', async () => {
    const b = await make({ workers: 2, inlineBelow: 0 });
    const mine = { ...cache, k: cache.k.slice(), v: cache.v.slice() };
    await b.setKvCache(mine);
    const r1 = await b.run(plan, queries);
    (mine.k as Uint16Array).fill(0); // caller overwrites its pools after upload
    r1.out.fill(42);
    const r2 = await b.run(plan, queries);
    expect(r2.out).not.toBe(r1.out);
    expect(maxErr(r2.out, ref.out)).toBeLessThan(1e-5);
  });

  it('serializes concurrent runs of different plans and query tensors', async () => {
    const b = await make({ workers: 2, inlineBelow: 0 });
    await b.setKvCache(cache);
    const plan2 = chunkedPlanner(5)(batch, CPU_CAPABILITIES);
    const q2 = randomQueries(10, config, 99);
    const ref2 = referenceAttention(batch, cache, q2);
    const [a, c, d] = await Promise.all([b.run(plan, queries), b.run(plan2, q2), b.run(plan, q2)]);
    expect(maxErr(a.out, ref.out)).toBeLessThan(1e-5);
    expect(maxErr(c.out, ref2.out)).toBeLessThan(1e-5);
    expect(maxErr(d.out, ref2.out)).toBeLessThan(1e-5);
  });

  it('evicts prepared plans beyond planCacheSize and still runs them again', async () => {
    const b = await make({ workers: 2, inlineBelow: 0, planCacheSize: 1 });
    await b.setKvCache(cache);
    const plans = [plan, chunkedPlanner(9)(batch, CPU_CAPABILITIES), plan];
    for (const p of plans) expect(maxErr((await b.run(p, queries)).out, ref.out)).toBeLessThan(1e-5);
  });

  it('time() reports wall-clock iterations', async () => {
    const b = await make({ workers: 2 });
    await b.setKvCache(cache);
    const t = await b.time!(plan, queries, { warmup: 1, iters: 3 });
    expect(t.clock).toBe('wall');
    expect(t.timesUs.length).toBe(3);
    for (const x of t.timesUs) expect(x).toBeGreaterThan(0);
  });

  it('probe() measures bandwidth and the SIMD arithmetic rate', async () => {
    const b = await make({ workers: 2 });
    const p = await b.probe!();
    expect(p.readBandwidthGBs).toBeGreaterThan(0.1);
    expect(p.peakTflops).toBeGreaterThan(1e-4);
    expect(p.peakTflops).toBeLessThan(10);
    expect(p.peakUnits).toMatch(/f32x4.*2 threads/);
  });

  it('raises CanopyError naming the problem', async () => {
    const b = await make({ workers: 1 });
    await expect(b.run(plan, queries)).rejects.toThrow(/setKvCache\(\) first/);
    await b.setKvCache(cache);
    await expect(b.run(plan, queries.subarray(1))).rejects.toThrow(CanopyError);
    await expect(b.run(plan, queries.subarray(1))).rejects.toThrow(/queries have 5119 values/);
    const badPage: Plan = { ...plan, segPage: plan.segPage.map((p, i) => (i === 3 ? 9999 : p)) };
    await expect(b.run(badPage, queries)).rejects.toThrow(/page id 9999 out of range/);
    const badSlot: Plan = { ...plan, mergeSlots: plan.mergeSlots.map((s) => (s === 0 ? 10_000 : s)) };
    await expect(b.run(badSlot, queries)).rejects.toThrow(/partial slot 10000/);
    const other = randomKvCache(4, 16, { ...config, headDim: 32 }, 1);
    await b.setKvCache(other);
    await expect(b.run(plan, queries)).rejects.toThrow(/KV cache holds 2 × 32/);
    await expect(CpuBackend.create({ workers: -1 })).rejects.toThrow(/workers must be/);
    // the backend still works after rejected runs
    await b.setKvCache(cache);
    expect(maxErr((await b.run(plan, queries)).out, ref.out)).toBeLessThan(1e-5);
  });

  it('factory: name, priority 10, available under Node', async () => {
    expect(cpuBackendFactory.name).toBe('cpu');
    expect(cpuBackendFactory.priority).toBe(10);
    const p = await cpuBackendFactory.probe();
    expect(p.available).toBe(true);
    const b = (await cpuBackendFactory.create({ workers: 1 })) as CpuBackend;
    made.push(b);
    expect(b.capabilities.parallelUnits).toBe(1);
    expect(b.device).toMatch(/CPU/);
  });
});
