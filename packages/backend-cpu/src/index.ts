export {
  CpuBackend,
  cpuSimdAvailable,
  cpuCapabilities,
  CPU_CAPABILITIES,
  CPU_CAPABILITY_NOTES,
  CPU_HEAD_DIMS,
  CPU_TILE_MENU,
  CPU_MAX_KV_POOL_BYTES,
  type CpuBackendOptions,
} from './backend.js';
export { cpuBackendFactory, createCpuBackendFactory } from './factory.js';
export { makeKernel, wasmScratchBytes, type Kernel, type KernelPlan, type KernelIo, type KernelKv, type KernelWasm } from './kernel.js';
export { kernelWasmBytes, kernelWasmModule } from './wasm.js';
