import { readFileSync } from 'node:fs';
import { packageProject } from '@canopy/presets/vitest';
import type { Plugin } from 'vite';

// Import .wgsl files as text, as tsup's text loader does in the build.
const wgslText: Plugin = {
  name: 'canopy-wgsl-text',
  enforce: 'pre',
  load(id) {
    if (!id.endsWith('.wgsl')) return null;
    return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
  },
};

const config = packageProject('backend-webgpu', { testTimeout: 120_000 });
export default { ...config, plugins: [wgslText] };
