/**
 * Locating and loading the compiled addon (`canopy_cuda.node`).
 *
 * The addon is optional: it comes from a prebuilt platform package or from an explicit
 * `build:native` with nvcc (order in loader.ts). Loading never throws; `loadAddon()` reports
 * why it could not load and `cudaAvailability()` adds what the CUDA runtime says about devices.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { addonCandidateList, loadFirstAddon, packageResolver, platformPackageName, type AddonCandidate, type AddonLoadResult } from './loader.js';

export const ADDON_FILE = 'canopy_cuda.node';

export interface NativeDeviceProbe {
  ok: boolean;
  count: number;
  reason?: string;
  name?: string;
  ccMajor?: number;
  ccMinor?: number;
  smCount?: number;
  runtimeVersion: number;
}

export interface NativeDeviceInfo {
  name: string;
  description: string;
  smCount: number;
  l2Bytes: number;
  totalGlobalMem: number;
  ccMajor: number;
  ccMinor: number;
  smemPerBlockOptin: number;
  theoreticalBandwidthGBs: number;
}

/** Host-prepared plan arrays handed to `Context.createPlan` (see prepare.ts). */
export interface NativePlanDesc {
  numQueries: number;
  numQoHeads: number;
  headDim: number;
  group: number;
  numPartials: number;
  scaleLog2: number;
  maxRg: number;
  /** 128-row units run on the pipelined wgmma tile (sm_90a, streams strategy) instead of mma.sync. */
  wgmma: boolean;
  /** Every 16-row unit streams at most SHORT_UNIT_TOKENS visible tokens: the streams strategy then
   * runs them on the 16-row tile built for three CTAs per SM (native/attention.cu). */
  shortRg1: boolean;
  /** Every 16-row unit streams at most the tiny-unit limit (TINY_UNIT_TOKENS): the streams strategy
   * then runs them on the 2-warp 16-row tile built for five CTAs per SM. */
  tinyRg1: boolean;
  /** Fused strategy: share of its CTAs that start in the compute role (8-warp units), from the
   * estimated compute time of those units vs the memory time of the 4-warp units
   * (fusedComputeFraction → fusedStartFraction in prepare.ts). */
  fusedComputeFraction: number;
  groupCount: Int32Array;
  workGrouped: Int32Array;
  workSorted: Int32Array;
  itemTokBegin: Int32Array;
  tokRow: Int32Array;
  itemPos: Int32Array;
  itemQueryBegin: Int32Array;
  itemQueries: Int32Array;
  itemPartialBase: Int32Array;
  queryKvLimit: Int32Array;
  slotDest: Int32Array;
  /** Each query's partial slots to merge: the plan's, less the slots that can hold no KV token. */
  mergeBegin: Int32Array;
  mergeSlots: Int32Array;
  mergeQueries: Int32Array;
}

export interface NativePlanHandle {
  dispose(): void;
}

export interface NativeContext {
  info(): NativeDeviceInfo;
  setKvCache(k: Uint16Array, v: Uint16Array, numPages: number, pageSize: number, numKvHeads: number, headDim: number): Promise<void>;
  createPlan(desc: NativePlanDesc): NativePlanHandle;
  run(plan: NativePlanHandle, queries: Float32Array, strategy: number, timing: boolean): Promise<{ out: Float32Array; lse: Float32Array; deviceTimeUs?: number }>;
  time(plan: NativePlanHandle, queries: Float32Array, strategy: number, warmup: number, iters: number): Promise<Float64Array>;
  /** Several plans as one captured step: serial (back to back on one stream) or concurrent (a stream set each). */
  timeGroup(plans: NativePlanHandle[], queries: Float32Array[], strategy: number, concurrent: boolean, warmup: number, iters: number): Promise<Float64Array>;
  probe(): Promise<{ readBandwidthGBs: number; peakTflops: number; peakUnits: string }>;
  dispose(): void;
}

export interface NativeAddon {
  abiVersion: number;
  probeDevices(): NativeDeviceProbe;
  Context: new (device?: number) => NativeContext;
}

export type AddonLoad = AddonLoadResult<NativeAddon>;

/** Candidates in load order; see loader.ts (env, prebuilt platform package, beside, local build). */
function candidateList(): AddonCandidate[] {
  const rel = (r: string) => {
    try {
      return fileURLToPath(new URL(r, import.meta.url));
    } catch {
      return undefined; // import.meta.url is not a file: URL (e.g. a browser bundle): nothing to look for here
    }
  };
  return addonCandidateList({
    envPath: typeof process !== 'undefined' ? process.env.CANOPY_CUDA_ADDON : undefined,
    platformPackage: platformPackageName(),
    resolvePackage: packageResolver(import.meta.url),
    besidePath: rel(`./${ADDON_FILE}`),
    localBuildPath: rel(`../build/${ADDON_FILE}`),
  });
}

/**
 * Where the addon is looked for, in order: `$CANOPY_CUDA_ADDON`, the prebuilt platform package
 * (`@canopy/backend-cuda-linux-x64-gnu`, …) when installed, next to this module (a bundled .mjs
 * with the .node beside it), then the package's `build/` (from src/ or dist/).
 */
export function addonCandidates(): string[] {
  return candidateList().map((c) => c.path);
}

/** Path of the built addon, or undefined when none exists (for bundling it next to an app). */
export function addonPath(): string | undefined {
  return addonCandidates().find((p) => existsSync(p));
}

let cached: AddonLoad | undefined;

/** Load the addon once; never throws. */
export function loadAddon(): AddonLoad {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  cached = loadFirstAddon<NativeAddon>(candidateList(), existsSync, (p) => require(p) as NativeAddon, { platformPackage: platformPackageName() });
  return cached;
}

/** Test hook: forget the cached load (for example after CANOPY_CUDA_ADDON changed). */
export function resetAddonCache(): void {
  cached = undefined;
}
