import { libraryBuild } from '@canopy/presets/tsup';

// Entries: the library surface (index), the browser-safe tree JSON module (tree, the package's
// "./tree" export, which apps/web bundles) and the CLI (cli.js, the package's bin; esbuild keeps
// the `#!/usr/bin/env node` line of src/cli.ts at the top of dist/cli.js). The optional backends
// stay external: dist/ loads them from node_modules at run time (skipped when absent). No .d.ts:
// this is an app (the self-contained build is `pnpm bundle`, scripts/bundle.mjs).
export default libraryBuild({
  entry: ['src/index.ts', 'src/tree.ts', 'src/cli.ts', 'src/verify-worker.ts'],
  platform: 'node',
  dts: false,
  external: ['@canopy/backend-cuda', '@canopy/backend-webgpu', '@canopy/backend-cpu', 'webgpu'],
});
