// Shared tsup preset: ESM, .d.ts, sourcemaps, node20 target. Each library calls libraryBuild().
import { defineConfig } from 'tsup';

/** @param {Partial<import('tsup').Options>} overrides */
export function libraryBuild(overrides = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'neutral',
    ...overrides,
  });
}
