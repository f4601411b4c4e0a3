import type { BackendCapabilities } from '@canopy/core';
import { DEFAULT_VARIANTS, SUPPORTED_HEAD_DIMS, variantTiles } from './variants.js';

/**
 * What the WebGPU backend reports on a GPU adapter before the device refines it (the capabilities
 * table in docs/capabilities.md is generated from this). A created backend narrows the fields
 * listed in WEBGPU_CAPABILITY_NOTES from the adapter's limits and features.
 */
export const WEBGPU_CAPABILITIES: BackendCapabilities = {
  kvDtypes: ['f16', 'f32'],
  headDims: [...SUPPORTED_HEAD_DIMS],
  tileMenu: variantTiles(DEFAULT_VARIANTS),
  masks: ['none', 'causal'],
  gpuTimers: true,
  parallelUnits: 132,
};

export const WEBGPU_CAPABILITY_NOTES: Record<string, string> = {
  headDims: 'head dims whose tiles fit the adapter\'s workgroup memory',
  tileMenu: 'CPU adapters (lavapipe, SwiftShader) get a one-variant menu with direct KV reads',
  gpuTimers: 'only where the adapter has `timestamp-query` (else wall time after onSubmittedWorkDone)',
  parallelUnits: 'guessed from the adapter (132 on an H100)',
  maxKvPoolBytes: 'min(maxStorageBufferBindingSize, maxBufferSize): 2 GiB on the H100, 128 MiB on lavapipe',
};
