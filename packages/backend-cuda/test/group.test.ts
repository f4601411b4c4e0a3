// timeGroup and the launch-strategy option, on a fake addon context (no GPU): argument checks with
// clear errors, and what the backend hands the addon (one device copy per plan occurrence, the
// strategy id, serial vs concurrent). The GPU side runs in scripts/device/driver.ts.
import { CanopyError, randomKvCache, randomQueries, type AttentionConfig, type Plan } from '@canopy/core';
import { batchFromTree } from '@canopy/backend-testkit';
import { planners } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { CudaBackend, LAUNCH_STRATEGIES, MAX_CONCURRENT_GROUP, autoStrategy, createCudaBackend } from '../src/index.js';
import type { NativeContext, NativePlanDesc, NativePlanHandle } from '../src/native.js';

const CFG: AttentionConfig = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };

interface FakeHandle extends NativePlanHandle {
  id: number;
  desc: NativePlanDesc;
  disposed: boolean;
}

function fakeContext() {
  const handles: FakeHandle[] = [];
  const calls: Array<{ handles: FakeHandle[]; strategy: number; concurrent: boolean; warmup: number; iters: number; queries: Float32Array[] }> = [];
  const ctx: NativeContext = {
    info: () => ({
      name: 'Fake GPU',
      description: 'Fake GPU (sm_90, 4 SMs)',
      smCount: 4,
      l2Bytes: 1 << 20,
      totalGlobalMem: 8 * 2 ** 30,
      ccMajor: 9,
      ccMinor: 0,
      smemPerBlockOptin: 227 * 1024,
      theoreticalBandwidthGBs: 3000,
    }),
    setKvCache: async () => {},
    createPlan: (desc) => {
      const h: FakeHandle = { id: handles.length, desc, disposed: false, dispose: () => void (h.disposed = true) };
      handles.push(h);
      return h;
    },
    run: async () => ({ out: new Float32Array(0), lse: new Float32Array(0) }),
    time: async (_h, _q, _s, _w, iters) => new Float64Array(iters).fill(1),
    timeGroup: async (hs, queries, strategy, concurrent, warmup, iters) => {
      calls.push({ handles: hs as FakeHandle[], strategy, concurrent, warmup, iters, queries });
      return new Float64Array(iters).fill(hs.length);
    },
    probe: async () => ({ readBandwidthGBs: 2000, peakTflops: 600, peakUnits: 'fake' }),
    dispose: () => {},
  };
  return { ctx, handles, calls };
}

/** Two plans on one KV cache: a decode batch and a prefill chunk (different requests of one tree). */
async function setup() {
  const spec = { parent: [-1, 0, 0, -1], tokens: [100, 20, 30, 80], requestAt: [1, 2, 3], numQueries: [1, 1, 16] };
  const batch = batchFromTree(spec, CFG, 16);
  const decode = { ...batch, requests: batch.requests.slice(0, 2), tree: undefined };
  const prefill = { ...batch, requests: batch.requests.slice(2), tree: undefined };
  const fake = fakeContext();
  const backend = new CudaBackend(fake.ctx, 'persistent');
  await backend.setKvCache(randomKvCache(batch.numPages, batch.pageSize, CFG, 3));
  const pd = planners.prefix(decode, backend.capabilities);
  const pp = planners.prefix(prefill, backend.capabilities);
  const qd = randomQueries(pd.numQueries, CFG, 1);
  const qp = randomQueries(pp.numQueries, CFG, 2);
  return { backend, fake, pd, pp, qd, qp };
}

describe('timeGroup', () => {
  it('hands the addon one device copy per plan, the strategy and the mode', async () => {
    const { backend, fake, pd, pp, qd, qp } = await setup();
    const r = await backend.timeGroup([pp, pd], [qp, qd], { mode: 'serial', warmup: 3, iters: 5 });
    expect(r.clock).toBe('gpu');
    expect(Array.from(r.timesUs)).toEqual([2, 2, 2, 2, 2]);
    expect(fake.calls).toHaveLength(1);
    const c = fake.calls[0];
    expect(c.concurrent).toBe(false);
    expect(c.strategy).toBe(1); // persistent
    expect([c.warmup, c.iters]).toEqual([3, 5]);
    expect(c.handles[0].desc.numQueries).toBe(pp.numQueries);
    expect(c.handles[1].desc.numQueries).toBe(pd.numQueries);
    expect(c.queries[0]).toBe(qp);

    backend.strategy = 'fused';
    await backend.timeGroup([pp, pd], [qp, qd], { mode: 'concurrent', warmup: 0, iters: 2 });
    expect(fake.calls[1].concurrent).toBe(true);
    expect(fake.calls[1].strategy).toBe(2);
    // The cached device copies are reused: no new uploads for the same plans.
    expect(fake.calls[1].handles.map((h) => h.id)).toEqual(c.handles.map((h) => h.id));
  });

  it('gives a plan that appears twice its own temporary device copy', async () => {
    const { backend, fake, pd, qd } = await setup();
    const copy: Plan = { ...pd }; // same arrays: the content cache maps it to the same handle
    await backend.timeGroup([pd, copy, pd], [qd, qd, qd], { mode: 'concurrent', warmup: 0, iters: 1 });
    const hs = fake.calls[0].handles;
    expect(new Set(hs.map((h) => h.id)).size).toBe(3);
    // The extra copies are freed after the call; the cached one stays.
    expect(hs[0].disposed).toBe(false);
    expect(hs[1].disposed).toBe(true);
    expect(hs[2].disposed).toBe(true);
  });

  it('rejects bad arguments with CanopyErrors that name the problem', async () => {
    const { backend, fake, pd, pp, qd, qp } = await setup();
    const opts = { mode: 'serial' as const, warmup: 0, iters: 1 };
    await expect(backend.timeGroup([], [], opts)).rejects.toThrow(/at least one plan/);
    await expect(backend.timeGroup([pd, pp], [qd], opts)).rejects.toThrow(/one query tensor per plan \(2 plans, 1 query tensors\)/);
    await expect(backend.timeGroup([pd], [qd], { ...opts, mode: 'parallel' as never })).rejects.toThrow(/mode must be 'serial' or 'concurrent', got 'parallel'/);
    await expect(backend.timeGroup([pd], [qd], { ...opts, iters: 0 })).rejects.toThrow(/iters >= 1/);
    await expect(backend.timeGroup([pd, pp], [qp, qd], opts)).rejects.toThrow(/plan 0: queries must be a Float32Array of \[2, 8, 64\]/);
    const many = Array.from({ length: MAX_CONCURRENT_GROUP + 1 }, () => pd);
    await expect(backend.timeGroup(many, many.map(() => qd), { ...opts, mode: 'concurrent' })).rejects.toThrow(/at most 8 plans concurrently, got 9/);
    await expect(backend.timeGroup([pd], [qd], opts)).resolves.toBeDefined();
    backend.strategy = 'bogus' as never;
    await expect(backend.timeGroup([pd], [qd], opts)).rejects.toThrow(CanopyError);
    expect(fake.calls).toHaveLength(1); // only the valid call reached the addon
    await backend.dispose();
    backend.strategy = 'persistent';
    await expect(backend.timeGroup([pd], [qd], opts)).rejects.toThrow(/used after dispose/);
  });
});

describe('launch strategy option', () => {
  it('lists auto, streams, persistent and fused', () => {
    expect([...LAUNCH_STRATEGIES]).toEqual(['auto', 'streams', 'persistent', 'fused']);
  });

  it('rejects an unknown strategy before looking for a GPU', async () => {
    await expect(createCudaBackend({ strategy: 'pod' as never })).rejects.toThrow(/strategy must be one of 'auto', 'streams', 'persistent', 'fused', got 'pod'/);
    const saved = process.env.CANOPY_CUDA_STRATEGY;
    process.env.CANOPY_CUDA_STRATEGY = 'hybrid';
    try {
      await expect(createCudaBackend()).rejects.toThrow(/got 'hybrid'/);
    } finally {
      if (saved === undefined) delete process.env.CANOPY_CUDA_STRATEGY;
      else process.env.CANOPY_CUDA_STRATEGY = saved;
    }
  });

  it('passes the fused strategy id to run and time', async () => {
    const { backend, fake, pd, qd } = await setup();
    const seen: number[] = [];
    fake.ctx.run = async (_h, _q, s) => (seen.push(s), { out: new Float32Array(0), lse: new Float32Array(0) });
    fake.ctx.time = async (_h, _q, s, _w, n) => (seen.push(s), new Float64Array(n));
    for (const s of LAUNCH_STRATEGIES) {
      backend.strategy = s;
      await backend.run(pd, qd);
      await backend.time(pd, qd, { warmup: 0, iters: 1 });
    }
    // auto: the decode plan uses 4-warp tiles only → streams (0).
    expect(seen).toEqual([0, 0, 0, 0, 1, 1, 2, 2]);
  });

  it('auto: persistent exactly when some plan needs both CTA shapes', () => {
    expect(autoStrategy([[3, 1, 0, 0]])).toBe('streams');
    expect(autoStrategy([[0, 0, 2, 5]])).toBe('streams');
    expect(autoStrategy([[2, 0, 1, 0]])).toBe('persistent');
    expect(autoStrategy([[0, 1, 0, 1]])).toBe('persistent');
    expect(autoStrategy([[1, 0, 0, 0], [0, 0, 1, 0]])).toBe('streams'); // no single plan mixes
    expect(autoStrategy([[1, 0, 0, 0], [1, 0, 0, 1]])).toBe('persistent');
    expect(autoStrategy([[0, 0, 0, 0]])).toBe('streams');
    // The pipelined wgmma tile runs under 'streams' only, mixed plan or not.
    expect(autoStrategy([[2, 0, 1, 0]], true)).toBe('streams');
    expect(autoStrategy([[0, 1, 0, 1]], false)).toBe('persistent');
  });

  it('auto resolves per plan from its prepared work units', async () => {
    const { backend, fake, pd, pp, qd, qp } = await setup();
    const spec = { parent: [-1, 0, 0, -1], tokens: [100, 20, 30, 80], requestAt: [1, 2, 3], numQueries: [1, 1, 16] };
    const batch = batchFromTree(spec, CFG, 16);
    const whole = planners.prefix({ ...batch, tree: undefined }, backend.capabilities);
    const qw = randomQueries(whole.numQueries, CFG, 4);
    backend.strategy = 'auto';
    const seen: number[] = [];
    fake.ctx.run = async (_h, _q, s) => (seen.push(s), { out: new Float32Array(0), lse: new Float32Array(0) });
    await backend.run(pd, qd); // decode: 2 queries × GQA 4 = 8 rows per node → 4-warp tiles only
    await backend.run(pp, qp); // prefill chunk alone: 16 × 4 = 64 rows → 8-warp tiles only
    await backend.run(whole, qw); // both in one plan
    const gc = (plan: Plan) => (fake.handles.find((h) => h.desc.numQueries === plan.numQueries && !h.disposed) as FakeHandle).desc.groupCount;
    const mixed = (g: Int32Array) => g[0] + g[1] > 0 && g[2] + g[3] > 0;
    expect(mixed(gc(pd))).toBe(false);
    expect(mixed(gc(pp))).toBe(false);
    expect(mixed(gc(whole))).toBe(true);
    expect(seen).toEqual([0, 0, 1]);
    await backend.timeGroup([pp, pd], [qp, qd], { mode: 'serial', warmup: 0, iters: 1 });
    await backend.timeGroup([whole, pd], [qw, qd], { mode: 'serial', warmup: 0, iters: 1 });
    expect(fake.calls.map((c) => c.strategy)).toEqual([0, 1]);
  });
});

describe('wgmma option', () => {
  it('rejects bad values before looking for a GPU', async () => {
    await expect(createCudaBackend({ wgmma: 'yes' as unknown as boolean })).rejects.toThrow(/wgmma must be true, false or undefined, got 'yes'/);
    const saved = process.env.CANOPY_CUDA_WGMMA;
    process.env.CANOPY_CUDA_WGMMA = 'on';
    try {
      await expect(createCudaBackend()).rejects.toThrow(/CANOPY_CUDA_WGMMA must be 1 \(pipelined wgmma tile\), 0 \(mma.sync\) or unset/);
    } finally {
      if (saved === undefined) delete process.env.CANOPY_CUDA_WGMMA;
      else process.env.CANOPY_CUDA_WGMMA = saved;
    }
  });

  it('a forced setting reaches the addon and runs under streams when auto; each setting has its own device copy', async () => {
    const { backend, fake, pd, qd } = await setup();
    backend.strategy = 'auto';
    const seen: number[] = [];
    fake.ctx.run = async (_h, _q, s) => (seen.push(s), { out: new Float32Array(0), lse: new Float32Array(0) });
    backend.wgmma = undefined;
    await backend.run(pd, qd); // decode plan: no 128-row units, so the per-plan choice is mma.sync
    expect(fake.handles[0].desc.wgmma).toBe(false);
    backend.wgmma = true;
    await backend.run(pd, qd);
    expect(fake.handles).toHaveLength(2);
    expect(fake.handles[1].desc.wgmma).toBe(true);
    expect(seen).toEqual([0, 0]);
  });
});

describe('fused compute fraction option', () => {
  it('rejects values outside [0, 1] before looking for a GPU', async () => {
    await expect(createCudaBackend({ fusedFraction: 1.5 })).rejects.toThrow(/fusedFraction must be a number in \[0, 1\], got '1.5'/);
    const saved = process.env.CANOPY_CUDA_FUSED_FRACTION;
    process.env.CANOPY_CUDA_FUSED_FRACTION = 'lots';
    try {
      await expect(createCudaBackend()).rejects.toThrow(/got 'NaN'/);
    } finally {
      if (saved === undefined) delete process.env.CANOPY_CUDA_FUSED_FRACTION;
      else process.env.CANOPY_CUDA_FUSED_FRACTION = saved;
    }
  });

  it('overrides the estimated share in the plan handed to the addon, one device copy per setting', async () => {
    const { backend, fake, pd, qd } = await setup();
    await backend.run(pd, qd);
    const estimated = fake.handles[0].desc.fusedComputeFraction;
    expect(estimated).toBeGreaterThanOrEqual(0);
    expect(estimated).toBeLessThanOrEqual(1);
    backend.fusedFraction = 1;
    await backend.run(pd, qd);
    expect(fake.handles).toHaveLength(2);
    expect(fake.handles[1].desc.fusedComputeFraction).toBe(1);
    backend.fusedFraction = undefined;
    await backend.run(pd, qd);
    expect(fake.handles).toHaveLength(2); // back to the first copy (content cache)
  });
});
