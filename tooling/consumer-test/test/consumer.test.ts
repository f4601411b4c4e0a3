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
  // No GPU toolchain is assumed: the CUDA package installed and answers with a reason either way.
  expect(typeof s.ts.cuda.reason).toBe('string');
}, 600_000);
