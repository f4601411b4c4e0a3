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
      return { available: true, reason: describeAdapter(adapter.info) };
    } catch (e) {
      return { available: false, reason: (e as Error).message };
    }
  },
  async create(options?: BackendCreateOptions): Promise<WebGpuBackend> {
    return WebGpuBackend.create((options ?? {}) as WebGpuBackendOptions);
  },
};
