// The no-GPU path: CI has no GPU (and maybe no nvcc); the package must load, report why it is
// unavailable, and refuse to create a backend with a clear error. On a GPU machine the same
// tests check the available side instead.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendRegistry, CanopyError, referenceBackendFactory } from '@canopy/core';
import { afterEach, describe, expect, it } from 'vitest';
import { addonCandidates, addonPath, createCudaBackend, cudaAvailability, cudaBackendFactory, loadAddon, resetAddonCache } from '../src/index.js';

const savedEnv = process.env.CANOPY_CUDA_ADDON;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.CANOPY_CUDA_ADDON;
  else process.env.CANOPY_CUDA_ADDON = savedEnv;
  resetAddonCache();
});

describe('factory', () => {
  it('is named cuda with priority 100 and the current contract', () => {
    expect(cudaBackendFactory.name).toBe('cuda');
    expect(cudaBackendFactory.priority).toBe(100);
    expect(cudaBackendFactory.contractVersion).toBe(1);
  });
});

describe('without the addon', () => {
  it('reports unavailable with the reason and create() throws a CanopyError', async () => {
    process.env.CANOPY_CUDA_ADDON = '/nonexistent/canopy_cuda.node';
    resetAddonCache();
    // The env override is looked at first; make the other candidates irrelevant by checking the reason text only when none exists.
    const others = addonCandidates().slice(1).filter((p) => existsSync(p));
    const a = await cudaAvailability();
    if (others.length === 0) {
      expect(a.available).toBe(false);
      expect(a.reason).toMatch(/not built/);
      expect(a.reason).toContain('/nonexistent/canopy_cuda.node');
      await expect(createCudaBackend()).rejects.toThrow(CanopyError);
      await expect(cudaBackendFactory.create()).rejects.toThrow(/CUDA backend unavailable: CUDA addon canopy_cuda.node not built/);
    } else {
      // A built addon sits beside the sources: the loader falls back to it (the override only adds a first candidate).
      expect(loadAddon().ok).toBe(true);
    }
  });

  it('a file that is not an addon fails to load with the loader error', async () => {
    const bogus = join(mkdtempSync(join(tmpdir(), 'canopy-cuda-')), 'canopy_cuda.node');
    writeFileSync(bogus, 'not a shared object');
    process.env.CANOPY_CUDA_ADDON = bogus;
    resetAddonCache();
    const r = loadAddon();
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/failed to load/);
  });
});

describe('with whatever this machine has', () => {
  it('available() agrees with create(): either a backend or a CanopyError carrying the same reason', async () => {
    const a = await cudaAvailability();
    expect(typeof a.reason).toBe('string');
    expect(a.reason!.length).toBeGreaterThan(10);
    if (a.available) {
      const b = await createCudaBackend();
      expect(b.capabilities.parallelUnits).toBeGreaterThan(0);
      expect(b.device).toMatch(/sm_\d+/);
      await b.dispose();
      await b.dispose(); // idempotent
      await expect(b.setKvCache({ numPages: 1, pageSize: 1, numKvHeads: 1, headDim: 64, dtype: 'f16', k: new Uint16Array(64), v: new Uint16Array(64) })).rejects.toThrow(/after dispose/);
    } else {
      const err = await createCudaBackend().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CanopyError);
      expect((err as CanopyError).code).toBe('backend-unavailable');
      expect((err as Error).message).toContain(a.reason!);
    }
  });

  it('when the addon is built but there is no GPU, the reason carries CUDA’s error text', async () => {
    const a = await cudaAvailability();
    if (a.available || !addonPath()) return; // needs exactly: addon present, no usable device
    expect(a.reason).toMatch(/no usable CUDA device: cudaGetDeviceCount failed: cuda\w+: .+/);
  });

  it('the registry lists it and pickBest falls back when it is unavailable', async () => {
    const reg = new BackendRegistry();
    reg.register(referenceBackendFactory);
    reg.register(cudaBackendFactory);
    expect(reg.list()[0].name).toBe('cuda');
    const { factory, reports } = await reg.pickBest();
    const cuda = reports.find((r) => r.name === 'cuda')!;
    expect(factory.name).toBe(cuda.available ? 'cuda' : 'reference');
  });
});
