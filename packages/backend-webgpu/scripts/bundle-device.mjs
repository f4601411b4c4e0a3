#!/usr/bin/env node
// Bundle scripts/bench-device.ts (planners, core, WGSL inlined) into one .mjs and copy Dawn
// (dawn.node + the webgpu package's index.js) beside it, for the device machine, which has
// Node but no node_modules:   node scripts/bundle-device.mjs [outDir]  (default <repo>/.device/webgpu)
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(pkgDir, '..', '..');
const outDir = resolve(process.argv[2] ?? join(repo, '.device', 'webgpu'));
mkdirSync(join(outDir, 'dist', 'linux-x64'), { recursive: true });
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repo }).toString().trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages/backend-webgpu'], { cwd: repo }).toString().trim();
  if (dirty) commit += '+dirty';
} catch {
  // not a git checkout
}
await build({
  entryPoints: [join(pkgDir, 'scripts', 'bench-device.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: join(outDir, 'bench.mjs'),
  conditions: ['@canopy/source'],
  loader: { '.wgsl': 'text' },
  external: ['webgpu'],
  define: { __CANOPY_COMMIT__: JSON.stringify(commit) },
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
});
const webgpu = realpathSync(join(pkgDir, 'node_modules', 'webgpu'));
copyFileSync(join(webgpu, 'index.js'), join(outDir, 'index.js'));
copyFileSync(join(webgpu, 'dist', 'linux-x64', 'dawn.node'), join(outDir, 'dist', 'linux-x64', 'dawn.node'));
console.log(`bundle-device: wrote ${outDir}/bench.mjs, index.js, dist/linux-x64/dawn.node (commit ${commit})`);
