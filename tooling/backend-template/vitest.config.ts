import { defineProject } from 'vitest/config';

// Standalone (no @canopy/presets) so the folder still works once copied out of the monorepo.
// The "@canopy/source" condition makes workspace packages resolve to their TypeScript sources
// inside the monorepo; published packages ignore it.
export default defineProject({
  resolve: { conditions: ['@canopy/source'] },
  ssr: { resolve: { conditions: ['@canopy/source'] } },
  test: {
    name: 'backend-template',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
  },
});
