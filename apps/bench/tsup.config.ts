import { libraryBuild } from '@canopy/presets/tsup';

// Two entries: the library surface (index) and the CLI (cli.js, the package's bin; esbuild keeps
// the `#!/usr/bin/env node` line of src/cli.ts at the top of dist/cli.js).
export default libraryBuild({
  entry: ['src/index.ts', 'src/cli.ts'],
  platform: 'node',
});
