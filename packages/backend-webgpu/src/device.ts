import { CanopyError } from '@canopy/core';

/** What the backend learned about the adapter/device it runs on. */
export interface DeviceInfo {
  device: GPUDevice;
  /** Whether the backend created the device (and so destroys it on dispose). */
  owned: boolean;
  description: string;
  features: Set<string>;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  isNvidia: boolean;
  /** A CPU implementation (lavapipe/llvmpipe, SwiftShader, WARP). */
  isCpu: boolean;
}

export interface AcquireOptions {
  /** A GPUDevice to run on (browser or Node); the backend leaves it alive on dispose. */
  device?: GPUDevice;
  /** A GPU object (`navigator.gpu`, or `create()` of the npm `webgpu` package). */
  gpu?: GPU;
  /** Dawn toggles for the Node `webgpu` module's `create()`, when the backend loads it. */
  dawnFlags?: string[];
  /** Use `subgroups` when the device has them (default true); false forces the fallback. */
  subgroups?: boolean;
}

// Limits the kernels want above the WebGPU defaults: asked for up to what the adapter has.
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBuffersPerShaderStage',
] as const;

const WANTED_FEATURES = ['subgroups', 'timestamp-query', 'shader-f16'];

// Dawn quantizes timestamp queries to ~65.5 µs by default (a browser mitigation against timing
// attacks); a benchmark needs the real GPU clock, so the Node loader turns that off.
const DEFAULT_DAWN_FLAGS: string[] = ['disable-dawn-features=timestamp_quantization'];

let nodeGpu: GPU | undefined;

/**
 * The GPU object: the caller's, the page's `navigator.gpu`, or the npm `webgpu` package (Dawn) in
 * Node. The module name is held in a variable so browser bundlers do not try to include it.
 */
export async function getGpu(opts: AcquireOptions = {}): Promise<GPU> {
  if (opts.gpu) return opts.gpu;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (nodeGpu && !opts.dawnFlags) return nodeGpu;
  const name = 'webgpu';
  let mod: { create: (flags: string[]) => GPU };
  try {
    mod = (await import(/* @vite-ignore */ name)) as typeof mod;
  } catch (e) {
    throw new CanopyError(
      'no-webgpu',
      `webgpu: no WebGPU here (no navigator.gpu and the npm package 'webgpu' could not be loaded: ${(e as Error).message}). ` +
        `In Node install 'webgpu' (Dawn); on a machine without a GPU install Mesa's lavapipe Vulkan driver (Debian: mesa-vulkan-drivers from bookworm-backports, Mesa 25.x).`,
    );
  }
  const gpu = mod.create(opts.dawnFlags ?? DEFAULT_DAWN_FLAGS);
  if (!opts.dawnFlags) nodeGpu = gpu;
  return gpu;
}

export async function getAdapter(opts: AcquireOptions = {}): Promise<GPUAdapter> {
  const gpu = await getGpu(opts);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new CanopyError(
      'no-adapter',
      'webgpu: no WebGPU adapter found. Without a GPU install Mesa lavapipe (Debian bookworm: mesa-vulkan-drivers from bookworm-backports, Mesa 25.x; Mesa 22.3 is refused by Dawn).',
    );
  }
  return adapter;
}

export function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'WebGPU adapter';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return `WebGPU: ${parts.join(' / ') || 'unknown adapter'}`;
}

export async function acquireDevice(opts: AcquireOptions = {}): Promise<DeviceInfo> {
  let device = opts.device;
  let owned = false;
  let info: GPUAdapterInfo | undefined;
  if (!device) {
    const adapter = await getAdapter(opts);
    info = adapter.info;
    const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
    const requiredLimits: Record<string, number> = {};
    for (const k of WANTED_LIMITS) requiredLimits[k] = adapter.limits[k];
    try {
      device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    } catch (e) {
      throw new CanopyError('adapter-refused', `webgpu: the adapter refused a device (${(e as Error).message})`);
    }
    owned = true;
  } else {
    info = device.adapterInfo;
  }
  const features = new Set<string>();
  for (const f of device.features as unknown as Iterable<string>) features.add(f);
  if (opts.subgroups === false) features.delete('subgroups');
  const description = describeAdapter(info);
  return {
    device,
    owned,
    description,
    features,
    subgroupMinSize: info?.subgroupMinSize ?? 0,
    subgroupMaxSize: info?.subgroupMaxSize ?? 0,
    isNvidia: /nvidia/i.test(description),
    isCpu: info?.architecture === 'software' || /llvmpipe|lavapipe|swiftshader|warp/i.test(description),
  };
}
