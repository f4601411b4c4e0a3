import { describe, expect, it } from 'vitest';
import { BackendRegistry, CanopyError, CONTRACT_VERSION, getDefaultRegistry, referenceBackendFactory, type BackendFactory } from '../src/index.js';

const fake = (name: string, priority: number, available: boolean | 'throw', contractVersion = CONTRACT_VERSION): BackendFactory => ({
  name,
  priority,
  contractVersion,
  async probe() {
    if (available === 'throw') throw new Error('driver exploded');
    return available ? { available: true } : { available: false, reason: `${name} has no device` };
  },
  async create() {
    throw new Error('not used');
  },
});

describe('BackendRegistry', () => {
  it('picks the best available backend and says why others were skipped', async () => {
    const r = new BackendRegistry();
    r.register(referenceBackendFactory);
    r.register(fake('gpu-a', 100, false));
    r.register(fake('gpu-b', 50, 'throw'));
    r.register(fake('cpu', 10, true));
    const { factory, reports } = await r.pickBest();
    expect(factory.name).toBe('cpu');
    expect(reports.every((x) => x.emulated === false)).toBe(true);
    expect(reports.map((x) => [x.name, x.available, x.reason])).toEqual([
      ['gpu-a', false, 'gpu-a has no device'],
      ['gpu-b', false, 'probe failed: driver exploded'],
      ['cpu', true, 'available'],
      ['reference', true, 'always available (JavaScript, float32)'],
    ]);
  });
  it('prefers a native backend to a higher-priority emulated one, and uses the emulated one when alone', async () => {
    const emulatedGpu: BackendFactory = { ...fake('webgpu-sw', 50, true), async probe() { return { available: true, reason: 'lavapipe', emulated: true }; } };
    const r = new BackendRegistry();
    r.register(emulatedGpu);
    r.register(fake('cpu', 10, true));
    expect((await r.pickBest()).factory.name).toBe('cpu');
    r.unregister('cpu');
    const { factory, reports } = await r.pickBest();
    expect(factory.name).toBe('webgpu-sw');
    expect(reports[0].emulated).toBe(true);
  });
  it('refuses a backend of another contract version, and duplicates unless replacing', () => {
    const r = new BackendRegistry();
    expect(() => r.register(fake('old', 1, true, CONTRACT_VERSION + 1))).toThrow(/written for Canopy contract v2/);
    r.register(fake('x', 1, true));
    r.register(fake('x', 1, true)); // idempotent: another copy of the same plugin
    expect(() => r.register(fake('x', 2, true))).toThrow(CanopyError);
    r.register(fake('x', 2, true), { replace: true });
    expect(r.get('x')?.priority).toBe(2);
  });
  it('fails clearly when nothing is available', async () => {
    const r = new BackendRegistry();
    r.register(fake('gpu', 1, false));
    await expect(r.pickBest()).rejects.toThrow(/no backend is available: gpu: gpu has no device/);
  });
  it('shares the default registry across module copies through globalThis', () => {
    const a = getDefaultRegistry();
    const key = Object.getOwnPropertySymbols(globalThis).find((s) => s.description?.includes('@canopy/core.backend-registry'));
    expect(key).toBeDefined();
    expect((globalThis as any)[key!]).toBe(a);
    expect(getDefaultRegistry()).toBe(a);
  });
});
