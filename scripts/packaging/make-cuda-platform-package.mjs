#!/usr/bin/env node
// Make the prebuilt-addon package for one platform from a built canopy_cuda.node (see
// CONTRIBUTING.md, "Prebuilt CUDA binaries"; the loader is packages/backend-cuda/src/loader.ts).
//
//   pnpm --filter @canopy/backend-cuda build:native           # on a machine of the target platform
//   node scripts/packaging/make-cuda-platform-package.mjs [--addon FILE] [--target linux-x64-gnu] [--out DIR]
//   cd DIR && npm publish --access public
//
// Defaults: the addon at packages/backend-cuda/build/canopy_cuda.node, this machine's target, and
// packages/backend-cuda/build/platform/<target> (build/ is ignored by git: never commit .node files).
// The version is @canopy/backend-cuda's, which lists the package in optionalDependencies at
// exactly that version.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './lib.mjs';

export const TARGETS = {
  'linux-x64-gnu': { os: ['linux'], cpu: ['x64'], libc: ['glibc'] },
  'linux-arm64-gnu': { os: ['linux'], cpu: ['arm64'], libc: ['glibc'] },
  'win32-x64-msvc': { os: ['win32'], cpu: ['x64'] },
};

export function currentTarget() {
  if (process.platform === 'win32') return `win32-${process.arch}-msvc`;
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  const glibc = process.report?.getReport()?.header?.glibcVersionRuntime;
  return `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`;
}

/**
 * Write the platform package folder; returns its path and manifest.
 * @param {{ addon: string, target: string, out: string, version: string }} o
 */
export function makePlatformPackage(o) {
  const t = TARGETS[o.target];
  if (!t) throw new Error(`no prebuilt CUDA target "${o.target}" (known: ${Object.keys(TARGETS).join(', ')})`);
  if (!existsSync(o.addon)) throw new Error(`addon ${o.addon} not found: run \`pnpm --filter @canopy/backend-cuda build:native\` first`);
  const name = `@canopy/backend-cuda-${o.target}`;
  const manifest = {
    name,
    version: o.version,
    description: `Prebuilt CUDA addon of @canopy/backend-cuda for ${o.target} (loaded automatically when installed).`,
    license: 'MIT',
    ...t,
    main: 'canopy_cuda.node',
    exports: { '.': './canopy_cuda.node', './package.json': './package.json' },
    files: ['canopy_cuda.node', 'LICENSE', 'README.md'],
    publishConfig: { access: 'public' },
  };
  mkdirSync(o.out, { recursive: true });
  writeFileSync(join(o.out, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  copyFileSync(o.addon, join(o.out, 'canopy_cuda.node'));
  copyFileSync(join(repoRoot, 'LICENSE'), join(o.out, 'LICENSE'));
  writeFileSync(
    join(o.out, 'README.md'),
    `# ${name}\n\nThe prebuilt CUDA addon of [@canopy/backend-cuda](https://www.npmjs.com/package/@canopy/backend-cuda) ${o.version} for ${o.target}.\n` +
      'Do not install it directly: `@canopy/backend-cuda` lists it as an optional dependency and loads it first when present.\n',
  );
  return { dir: o.out, manifest };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (k, d) => {
    const i = process.argv.indexOf(k);
    return i > 0 ? process.argv[i + 1] : d;
  };
  const cudaDir = join(repoRoot, 'packages/backend-cuda');
  const target = arg('--target', currentTarget());
  try {
    const { dir, manifest } = makePlatformPackage({
      addon: resolve(arg('--addon', join(cudaDir, 'build/canopy_cuda.node'))),
      target,
      out: resolve(arg('--out', join(cudaDir, 'build/platform', target))),
      version: JSON.parse(readFileSync(join(cudaDir, 'package.json'), 'utf8')).version,
    });
    console.log(`wrote ${manifest.name}@${manifest.version} in ${dir}; publish with: cd ${dir} && npm publish --access public`);
  } catch (e) {
    console.error(`make-cuda-platform-package: ${e.message}`);
    process.exit(1);
  }
}
