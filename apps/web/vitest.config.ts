import { packageProject } from '@canopy/presets/vitest';

// The end-to-end test builds the page, serves it and drives Debian's Chromium (see test/e2e.test.ts).
export default packageProject('web', { testTimeout: 120_000, hookTimeout: 120_000 });
