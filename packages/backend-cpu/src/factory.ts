import { CONTRACT_VERSION, type BackendAvailability, type BackendCreateOptions, type BackendFactory } from '@canopy/core';
import { CpuBackend, type CpuBackendOptions } from './backend.js';

/** Worker threads need Node (or a runtime with node:worker_threads); the probe says why not. */
async function probeWorkers(): Promise<BackendAvailability> {
  try {
    const wt = await import('node:worker_threads');
    if (typeof wt.Worker !== 'function') return { available: false, reason: 'node:worker_threads has no Worker here' };
    if (typeof SharedArrayBuffer !== 'function') return { available: false, reason: 'SharedArrayBuffer is not available' };
    const os = await import('node:os');
    const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    return { available: true, reason: `${n} worker thread${n === 1 ? '' : 's'} (node:worker_threads)` };
  } catch (e) {
    return { available: false, reason: `node:worker_threads cannot be loaded (${(e as Error).message}); the CPU backend is Node-only` };
  }
}

/** A factory with fixed options (tests use `{ workers: 2, inlineBelow: 0 }` to force the worker path). */
export function createCpuBackendFactory(defaults: CpuBackendOptions = {}, name = 'cpu'): BackendFactory {
  return {
    name,
    contractVersion: CONTRACT_VERSION,
    priority: 10,
    probe: probeWorkers,
    async create(options?: BackendCreateOptions): Promise<CpuBackend> {
      return CpuBackend.create({ ...defaults, ...(options as CpuBackendOptions | undefined) });
    },
  };
}

/** Registry entry: priority 10, above the reference (0), below WebGPU (50) and CUDA (100). */
export const cpuBackendFactory: BackendFactory = createCpuBackendFactory();
