#!/usr/bin/env node
// Bundles the GPU driver (scripts/device/driver.ts, with the conformance suite and planners
// inlined, vitest replaced by a shim) into one .mjs and copies the built addon beside it, for
// the device machine, which has Node but no node_modules:
//   node scripts/bundle-device.mjs [outDir]   (default: <repo>/.device/cuda)
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(pkgDir, '..', '..');
const outDir = resolve(process.argv[2] ?? join(repo, '.device', 'cuda'));
mkdirSync(outDir, { recursive: true });
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repo }).toString().trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages/backend-cuda'], { cwd: repo }).toString().trim();
  if (dirty) commit += '+dirty';
} catch {
  // not a git checkout
}
await build({
  entryPoints: [join(pkgDir, 'scripts', 'device', 'driver.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: join(outDir, 'driver.mjs'),
  conditions: ['@canopy/source'],
  alias: { vitest: join(pkgDir, 'scripts', 'device', 'vitest-shim.ts') },
  define: { __CANOPY_COMMIT__: JSON.stringify(commit) },
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
});
const addon = join(pkgDir, 'build', 'canopy_cuda.node');
if (existsSync(addon)) copyFileSync(addon, join(outDir, 'canopy_cuda.node'));
else console.warn(`bundle-device: ${addon} missing; run build:native first`);
console.log(`bundle-device: wrote ${outDir}/driver.mjs (commit ${commit})`);
