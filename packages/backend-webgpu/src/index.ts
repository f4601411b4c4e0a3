export { WebGpuBackend, type WebGpuBackendOptions } from './backend.js';
export { webgpuBackendFactory } from './factory.js';
export { acquireDevice, getAdapter, getGpu, describeAdapter, type AcquireOptions, type DeviceInfo } from './device.js';
export {
  BLOCKED_VARIANTS,
  BLOCKED2_VARIANTS,
  blockedShape,
  blocked2Shape,
  decodeShape,
  CPU_VARIANTS,
  DEFAULT_VARIANTS,
  SUPPORTED_HEAD_DIMS,
  variantShape,
  pickVariant,
  type BlockedShape,
  type Blocked2Shape,
  type DecodeShape,
  type KernelVariant,
} from './variants.js';
export { prepareLayout, type PreparedLayout, type SplitPolicy } from './prepare.js';
export { specialize } from './specialize.js';
export { WGSL } from './shaders.js';
export { WEBGPU_CAPABILITIES, WEBGPU_CAPABILITY_NOTES } from './capabilities.js';
