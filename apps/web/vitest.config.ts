import { packageProject } from '@canopy/presets/vitest';
import { wgslText } from './vite-plugins.js';

// Unit tests of the page's modules, the build check, and the end-to-end browser test
// (test/e2e.test.ts: builds the page, serves it and drives Debian's Chromium).
const config = packageProject('web', { testTimeout: 120_000, hookTimeout: 120_000 });
export default { ...config, plugins: [wgslText()] };
