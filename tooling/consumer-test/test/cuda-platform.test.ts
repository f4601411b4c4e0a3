// The prebuilt CUDA platform package (scripts/packaging/make-cuda-platform-package.mjs): layout
// as CONTRIBUTING.md documents it, installable only where os/cpu/libc match, and found by Node's
// resolution from inside @canopy/backend-cuda the way the addon loader looks it up.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TARGETS, currentTarget, makePlatformPackage } from '../../../scripts/packaging/make-cuda-platform-package.mjs';

const scratch: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'canopy-cuda-plat-'));
  scratch.push(d);
  return d;
};
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('make-cuda-platform-package', () => {
  it('writes the documented layout, resolvable from the depending package', () => {
    const root = tempDir();
    const addon = join(root, 'canopy_cuda.node');
    writeFileSync(addon, 'stand-in for the shared object');
    const out = join(root, 'app/node_modules/@canopy/backend-cuda-linux-x64-gnu');
    const { manifest } = makePlatformPackage({ addon, target: 'linux-x64-gnu', out, version: '1.2.3' });
    expect(manifest).toMatchObject({
      name: '@canopy/backend-cuda-linux-x64-gnu',
      version: '1.2.3',
      os: ['linux'],
      cpu: ['x64'],
      libc: ['glibc'],
      main: 'canopy_cuda.node',
      files: ['canopy_cuda.node', 'LICENSE', 'README.md'],
    });
    expect(JSON.parse(readFileSync(join(out, 'package.json'), 'utf8'))).toEqual(manifest);
    expect(readFileSync(join(out, 'canopy_cuda.node'), 'utf8')).toBe('stand-in for the shared object');
    expect(readFileSync(join(out, 'LICENSE'), 'utf8')).toMatch(/MIT License/);
    // what the loader does: resolve the package name from a module inside @canopy/backend-cuda
    const cudaDist = join(root, 'app/node_modules/@canopy/backend-cuda/dist');
    mkdirSync(cudaDist, { recursive: true });
    expect(createRequire(join(cudaDist, 'index.js')).resolve('@canopy/backend-cuda-linux-x64-gnu')).toBe(join(out, 'canopy_cuda.node'));
  });

  it('refuses unknown targets and a missing addon', () => {
    const root = tempDir();
    expect(() => makePlatformPackage({ addon: join(root, 'x.node'), target: 'darwin-arm64', out: root, version: '0.1.0' })).toThrow(/no prebuilt CUDA target "darwin-arm64"/);
    expect(() => makePlatformPackage({ addon: join(root, 'x.node'), target: 'linux-x64-gnu', out: root, version: '0.1.0' })).toThrow(/build:native/);
  });

  it('names this machine the way the loader does (linux-<arch>-gnu|musl, win32-<arch>-msvc)', () => {
    const t = currentTarget();
    if (process.platform === 'linux') expect(t).toMatch(new RegExp(`^linux-${process.arch}-(gnu|musl)$`));
    expect(Object.keys(TARGETS)).toContain('linux-x64-gnu');
  });
});
