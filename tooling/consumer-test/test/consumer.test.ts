// The consumer test (scripts/packaging/consumer-test.mjs): pack, install the tarballs with npm
// into a fresh project outside the workspace, import every package, run W1 (prefix planner,
// reference backend) against referenceAttention from ESM and from type-checked TypeScript.
import { expect, it } from 'vitest';
import { consumerTest } from '../../../scripts/packaging/consumer-test.mjs';

it('installed tarballs work in a fresh ESM + TypeScript project', async () => {
  const lines: string[] = [];
  const s = await consumerTest({ log: (l: string) => lines.push(l) });
  expect(s.packages).toEqual(expect.arrayContaining(['@canopy/core', '@canopy/merge', '@canopy/planner', '@canopy/backend-cuda']));
  for (const n of s.packages) expect(s.imports[n], n).toBeGreaterThan(0);
  expect(s.esm.planner).toBe('prefix');
  expect(s.esm.maxErr).toBeLessThan(1e-4);
  expect(s.esm.kvTokensRead).toBeLessThan(s.esm.kvTokensWithoutSharing / 4);
  expect(s.ts.maxErr).toBeLessThan(1e-4);
  // Installing @canopy/backend-cuda built and downloaded nothing: it reports itself unavailable,
  // with where it looked and how to get an addon (prebuilt package or build:native).
  expect(s.ts.cuda.available).toBe(false);
  expect(s.ts.cuda.reason).toMatch(/^CUDA addon canopy_cuda\.node not built \(looked in .*node_modules\/@canopy\/backend-cuda\/build\/canopy_cuda\.node\)/);
  expect(s.ts.cuda.reason).toMatch(/build:native/);
}, 600_000);
