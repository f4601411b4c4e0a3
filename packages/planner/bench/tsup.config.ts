// Bundles the benchmark with the workspace sources (the @canopy/source condition), so it needs no
// prior build of @canopy/core.
import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { 'plan-bench': 'bench/plan-bench.ts', profile: 'bench/profile.ts', 'explain-w2': 'bench/explain-w2.ts', summary: 'bench/summary.ts', 'w3-small': 'bench/w3-small.ts', 'model-vs-device': 'bench/model-vs-device.ts' },
  outDir: '.bench-build',
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  dts: false,
  clean: true,
  noExternal: [/@canopy\//],
  esbuildOptions(options) {
    options.conditions = ['@canopy/source'];
  },
});
