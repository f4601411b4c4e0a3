import { CanopyError, randomKvCache, randomQueries, referenceAttention, type AttentionConfig } from '@canopy/core';
import { batchFromTree } from '@canopy/backend-testkit';
import { perRequest, prefix } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { WebGpuBackend, getAdapter, webgpuBackendFactory } from '../src/index.js';
import { gpuAvailability } from './gpu.js';

const avail = await gpuAvailability();

const config: AttentionConfig = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' };
const spec = { parent: [-1, 0, 0], tokens: [40, 9, 23], requestAt: [1, 2, 2], numQueries: [1, 2, 1] };

function maxErr(got: Float32Array, ref: Float64Array): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(got[i] - ref[i]));
  return m;
}

/** A device whose createBuffer/destroy are counted, to prove dispose frees every buffer. */
async function countedDevice(): Promise<{ device: GPUDevice; live: () => number }> {
  const adapter = await getAdapter();
  const device = await adapter.requestDevice({
    requiredFeatures: [...(adapter.features as unknown as Iterable<string>)].filter((f) => f === 'subgroups' || f === 'timestamp-query') as GPUFeatureName[],
    requiredLimits: {
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
    },
  });
  const alive = new Set<GPUBuffer>();
  const create = device.createBuffer.bind(device);
  device.createBuffer = (desc: GPUBufferDescriptor) => {
    const b = create(desc);
    alive.add(b);
    const destroy = b.destroy.bind(b);
    b.destroy = () => {
      alive.delete(b);
      destroy();
    };
    return b;
  };
  return { device, live: () => alive.size };
}

describe.skipIf(!avail.available)(`webgpu lifecycle (${avail.reason})`, () => {
  it('repeated create / run / dispose frees every GPU buffer', async () => {
    const { device, live } = await countedDevice();
    const batch = batchFromTree(spec, config, 16, 3);
    const cache = randomKvCache(batch.numPages, batch.pageSize, config, 11);
    const queries = randomQueries(4, config, 12);
    const ref = referenceAttention(batch, cache, queries);
    for (let round = 0; round < 3; round++) {
      const b = await WebGpuBackend.create({ device, planCacheSize: 1 });
      await b.setKvCache(cache);
      for (const planner of [prefix, perRequest, prefix]) {
        const plan = planner(batch, b.capabilities);
        const got = await b.run(plan, queries, { timing: true });
        expect(maxErr(got.out, ref.out)).toBeLessThan(2e-3);
        expect(got.deviceTimeUs).toBeGreaterThan(0);
      }
      const t = await b.time(prefix(batch, b.capabilities), queries, { warmup: 1, iters: 3 });
      expect(t.timesUs.length).toBe(3);
      expect(live()).toBeGreaterThan(0);
      await b.dispose();
      expect(live()).toBe(0);
      expect(b.liveBuffers).toBe(0);
      await expect(b.run(plan0(batch, b), queries)).rejects.toThrow(/after dispose/);
    }
    device.destroy();
  });

  it('refuses bad input with errors that name the problem', async () => {
    const b = await WebGpuBackend.create();
    try {
      const batch = batchFromTree(spec, config, 16, 3);
      const cache = randomKvCache(batch.numPages, batch.pageSize, config, 11);
      const queries = randomQueries(4, config, 12);
      const plan = prefix(batch, b.capabilities);
      await expect(b.run(plan, queries)).rejects.toThrow(/setKvCache/);
      await b.setKvCache(cache);
      await expect(b.run(plan, queries.subarray(1))).rejects.toThrow(CanopyError);
      const bad = { ...plan, segPage: plan.segPage.map((p) => p + 1000) };
      await expect(b.run(bad, queries)).rejects.toThrow(/page id \d+ out of range/);
      await expect(b.setKvCache({ ...cache, headDim: 48, k: new Uint16Array(0), v: new Uint16Array(0) })).rejects.toThrow(/head dim 48/);
    } finally {
      await b.dispose();
    }
  });

  it('refuses a KV pool larger than the binding limit up front, naming both sizes', async () => {
    const b = await WebGpuBackend.create();
    try {
      const limit = b.capabilities.maxKvPoolBytes!;
      // a fake pool whose length claims more than the limit (no memory behind it is touched)
      const pages = Math.ceil(limit / (16 * 2 * 64 * 2)) + 1;
      const fake = { length: pages * 16 * 2 * 64, byteLength: pages * 16 * 2 * 64 * 2 };
      Object.setPrototypeOf(fake, Uint16Array.prototype);
      const cache = { numPages: pages, pageSize: 16, numKvHeads: 2, headDim: 64, dtype: 'f16' as const, k: fake as unknown as Uint16Array, v: fake as unknown as Uint16Array };
      await expect(b.setKvCache(cache)).rejects.toThrow(new RegExp(`${fake.byteLength} bytes exceeds .* ${limit} bytes`));
    } finally {
      await b.dispose();
    }
  });

  it('probe measures read bandwidth and f32 FMA rate', async () => {
    const b = await webgpuBackendFactory.create();
    try {
      const p = await b.probe!();
      expect(p.readBandwidthGBs).toBeGreaterThan(0);
      expect(p.peakTflops).toBeGreaterThan(0);
    } finally {
      await b.dispose();
    }
  });
});

function plan0(batch: ReturnType<typeof batchFromTree>, b: WebGpuBackend) {
  return perRequest(batch, b.capabilities);
}
