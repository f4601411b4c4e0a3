// Shared vitest preset: resolve workspace packages to their TypeScript sources (the
// "@canopy/source" export condition) so tests never depend on stale dist/ output.
import { defineProject } from 'vitest/config';

/** @param {string} name @param {import('vitest/config').UserProjectConfigExport['test']} [test] */
export function packageProject(name, test = {}) {
  return defineProject({
    resolve: { conditions: ['@canopy/source'] },
    ssr: { resolve: { conditions: ['@canopy/source'] } },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      testTimeout: 60_000,
      ...test,
    },
  });
}
