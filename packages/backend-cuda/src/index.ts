/**
 * @canopy/backend-cuda: Canopy's CUDA backend for Hopper GPUs (sm_90a + PTX), a node-addon-api
 * addon executing any Canopy plan with tensor-core partial-attention kernels and a merge kernel.
 *
 * The addon is built explicitly (`build:native`); without it, or without a GPU, the factory's
 * probe reports `available: false` with the reason and `create()` throws a CanopyError.
 */
export {
  CUDA_CAPABILITIES,
  cudaPlanningHints,
  tinyUnitTokensFrom,
  CUDA_CAPABILITY_NOTES,
  CudaBackend,
  DEFAULT_STRATEGY,
  autoStrategy,
  LAUNCH_STRATEGIES,
  MAX_CONCURRENT_GROUP,
  createCudaBackend,
  cudaAvailability,
  cudaBackendFactory,
  type CudaCreateOptions,
  type LaunchStrategy,
} from './backend.js';
export { ADDON_FILE, addonCandidates, addonPath, loadAddon, resetAddonCache } from './native.js';
export {
  DEFAULT_FUSED_RATES,
  KERNEL_ROWS,
  fusedComputeFraction,
  fusedStartFraction,
  kernelWarps,
  preparePlan,
  rowGroupsFor,
  WGMMA_PIPE_MIN_RATIO,
  SHORT_UNIT_TOKENS,
  TINY_UNIT_TOKENS,
  wgmmaPipeWorthIt,
  type FusedRates,
  type KvShape,
  type PrepareOptions,
} from './prepare.js';
export { balancePlan, ctaCostUs, type BalanceOptions } from './balance.js';
