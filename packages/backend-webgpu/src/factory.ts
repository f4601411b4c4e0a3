import { CONTRACT_VERSION, type BackendAvailability, type BackendCreateOptions, type BackendFactory } from '@canopy/core';
import { WebGpuBackend, type WebGpuBackendOptions } from './backend.js';
import { describeAdapter, getAdapter } from './device.js';

/** Registry entry: priority 50 (between CPU and CUDA). The probe says why WebGPU is unavailable. */
export const webgpuBackendFactory: BackendFactory = {
  name: 'webgpu',
  contractVersion: CONTRACT_VERSION,
  priority: 50,
  async probe(): Promise<BackendAvailability> {
    try {
      const adapter = await getAdapter();
      const description = describeAdapter(adapter.info);
      // A CPU adapter (lavapipe, SwiftShader, WARP) works but is slower than a native CPU backend:
      // say so, so that automatic selection prefers native backends.
      const emulated = adapter.info?.architecture === 'software' || /llvmpipe|lavapipe|swiftshader|warp/i.test(description);
      return { available: true, reason: description, emulated };
    } catch (e) {
      return { available: false, reason: (e as Error).message };
    }
  },
  async create(options?: BackendCreateOptions): Promise<WebGpuBackend> {
    return WebGpuBackend.create((options ?? {}) as WebGpuBackendOptions);
  },
};
