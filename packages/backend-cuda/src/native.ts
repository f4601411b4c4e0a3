/**
 * Locating and loading the compiled addon (`canopy_cuda.node`).
 *
 * The addon is optional: it exists only where `pnpm --filter @canopy/backend-cuda build:native`
 * ran with nvcc. Loading never throws; `loadAddon()` reports why it could not load and
 * `cudaAvailability()` adds what the CUDA runtime says about devices.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

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
  /** 8-warp tiles compute S = Q·Kᵀ with wgmma (sm_90a) instead of mma.sync. */
  wgmma: boolean;
  /** Estimated CTA-µs of the 4- and 8-warp families (sizes the persistent grids). */
  costWarps4: number;
  costWarps8: number;
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
  probe(): Promise<{ readBandwidthGBs: number; peakTflops: number; peakUnits: string }>;
  dispose(): void;
}

export interface NativeAddon {
  abiVersion: number;
  probeDevices(): NativeDeviceProbe;
  Context: new (device?: number) => NativeContext;
}

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string; tried: string[] };

/**
 * Where the addon is looked for, in order: `$CANOPY_CUDA_ADDON`, next to this module (a bundled
 * .mjs with the .node beside it), then the package's `build/` (from src/ or dist/).
 */
export function addonCandidates(): string[] {
  const out: string[] = [];
  const env = typeof process !== 'undefined' ? process.env.CANOPY_CUDA_ADDON : undefined;
  if (env) out.push(env);
  for (const rel of [`./${ADDON_FILE}`, `../build/${ADDON_FILE}`]) {
    try {
      out.push(fileURLToPath(new URL(rel, import.meta.url)));
    } catch {
      // import.meta.url is not a file: URL (e.g. a browser bundle): nothing to look for here
    }
  }
  return out;
}

/** Path of the built addon, or undefined when none exists (for bundling it next to an app). */
export function addonPath(): string | undefined {
  return addonCandidates().find((p) => existsSync(p));
}

let cached: AddonLoad | undefined;

/** Load the addon once; never throws. */
export function loadAddon(): AddonLoad {
  if (cached) return cached;
  const tried = addonCandidates();
  const found = tried.find((p) => existsSync(p));
  if (!found) {
    cached = {
      ok: false,
      tried,
      reason:
        `CUDA addon ${ADDON_FILE} not built (looked in ${tried.join(', ')}); build it with ` +
        '`pnpm --filter @canopy/backend-cuda build:native` on a machine with nvcc, or set CANOPY_CUDA_ADDON',
    };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    const addon = require(found) as NativeAddon;
    if (addon.abiVersion !== 1) {
      cached = { ok: false, tried, reason: `CUDA addon at ${found} has ABI ${addon.abiVersion}, expected 1: rebuild it` };
    } else {
      cached = { ok: true, addon, path: found };
    }
  } catch (e) {
    cached = { ok: false, tried, reason: `CUDA addon at ${found} failed to load: ${(e as Error).message}` };
  }
  return cached;
}

/** Test hook: forget the cached load (for example after CANOPY_CUDA_ADDON changed). */
export function resetAddonCache(): void {
  cached = undefined;
}
