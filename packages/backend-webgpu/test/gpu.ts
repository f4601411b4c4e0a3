// Test environment: in CI a missing WebGPU adapter is a failure; elsewhere the GPU tests skip
// with a message saying how to get one.
import { webgpuBackendFactory } from '../src/index.js';

export const HOW_TO_GET_AN_ADAPTER =
  "no WebGPU adapter: install Mesa lavapipe (Debian bookworm: 'bash scripts/setup.sh --system', i.e. mesa-vulkan-drivers from bookworm-backports, Mesa 25.x) or run on a machine with a GPU";

export async function gpuAvailability(): Promise<{ available: boolean; reason: string }> {
  const p = await webgpuBackendFactory.probe();
  if (p.available) return { available: true, reason: p.reason ?? '' };
  if (process.env.CI) throw new Error(`CI requires a WebGPU adapter: ${p.reason}`);
  return { available: false, reason: `${HOW_TO_GET_AN_ADAPTER} (${p.reason})` };
}
