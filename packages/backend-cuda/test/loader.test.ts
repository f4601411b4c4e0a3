// The addon loader's order (src/loader.ts), one test per branch: explicit path, prebuilt platform
// package, next to the module, local build, unavailable; plus fall-through when a candidate exists
// but does not load. I/O is injected (no GPU or nvcc needed); one test resolves a platform
// package through a real node_modules folder.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ADDON_ABI, addonCandidateList, detectLibc, loadFirstAddon, packageResolver, platformPackageName, type AddonCandidate } from '../src/loader.js';

const PREBUILT = '@canopy/backend-cuda-linux-x64-gnu';
const paths = {
  env: '/env/canopy_cuda.node',
  prebuilt: '/app/node_modules/@canopy/backend-cuda-linux-x64-gnu/canopy_cuda.node',
  beside: '/app/node_modules/@canopy/backend-cuda/dist/canopy_cuda.node',
  local: '/app/node_modules/@canopy/backend-cuda/build/canopy_cuda.node',
};

/** Candidates for a machine where `installed` lists which files exist. */
function scenario(installed: Array<keyof typeof paths>, opts: { env?: boolean; broken?: Array<keyof typeof paths>; abi?: Partial<Record<keyof typeof paths, number>> } = {}) {
  const candidates = addonCandidateList({
    envPath: opts.env ? paths.env : undefined,
    platformPackage: PREBUILT,
    resolvePackage: (name) => (name === PREBUILT && installed.includes('prebuilt') ? paths.prebuilt : undefined),
    besidePath: paths.beside,
    localBuildPath: paths.local,
  });
  const loaded: string[] = [];
  const exists = (p: string) => installed.some((k) => paths[k] === p);
  const load = (p: string) => {
    loaded.push(p);
    const key = (Object.keys(paths) as Array<keyof typeof paths>).find((k) => paths[k] === p)!;
    if (opts.broken?.includes(key)) throw new Error(`${p}: invalid ELF header`);
    return { abiVersion: opts.abi?.[key] ?? ADDON_ABI, from: key };
  };
  return { candidates, result: loadFirstAddon(candidates, exists, load, { platformPackage: PREBUILT }), loaded };
}

describe('candidate order', () => {
  it('env, prebuilt package, beside the module, local build', () => {
    const { candidates } = scenario(['prebuilt'], { env: true });
    expect(candidates.map((c: AddonCandidate) => c.source)).toEqual(['env', 'prebuilt', 'beside', 'local']);
  });

  it('an uninstalled platform package is not a candidate', () => {
    expect(scenario([]).candidates.map((c) => c.source)).toEqual(['beside', 'local']);
  });
});

describe('loadFirstAddon branches', () => {
  it('prebuilt platform package first when installed (even with a local build present)', () => {
    const { result, loaded } = scenario(['prebuilt', 'local']);
    expect(result).toMatchObject({ ok: true, source: 'prebuilt', path: paths.prebuilt });
    expect(loaded).toEqual([paths.prebuilt]);
  });

  it('local build when no prebuilt package is installed', () => {
    const { result } = scenario(['local']);
    expect(result).toMatchObject({ ok: true, source: 'local', path: paths.local });
  });

  it('a copy next to the module (app bundle) before the local build', () => {
    expect(scenario(['beside', 'local']).result).toMatchObject({ ok: true, source: 'beside' });
  });

  it('unavailable with the reason when nothing is there: where it looked and how to get an addon', () => {
    const { result, loaded } = scenario([]);
    expect(result.ok).toBe(false);
    expect(loaded).toEqual([]);
    if (!result.ok) {
      expect(result.reason).toMatch(/^CUDA addon canopy_cuda.node not built/);
      expect(result.reason).toContain(paths.local);
      expect(result.reason).toContain(`the prebuilt addon package ${PREBUILT} is not installed`);
      expect(result.reason).toContain('build:native');
      expect(result.tried).toEqual([paths.beside, paths.local]);
    }
  });

  it('a prebuilt binary that fails to load falls through to the local build', () => {
    const { result, loaded } = scenario(['prebuilt', 'local'], { broken: ['prebuilt'] });
    expect(result).toMatchObject({ ok: true, source: 'local' });
    expect(loaded).toEqual([paths.prebuilt, paths.local]);
  });

  it('every existing candidate failing: unavailable, each failure in the reason', () => {
    const { result } = scenario(['prebuilt', 'local'], { broken: ['prebuilt'], abi: { local: 7 } });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason).toMatch(/backend-cuda-linux-x64-gnu\/canopy_cuda.node failed to load: .*invalid ELF header/);
      expect(result.reason).toContain(`build/canopy_cuda.node has ABI 7, expected ${ADDON_ABI}: rebuild it`);
    }
  });

  it('an explicit $CANOPY_CUDA_ADDON that exists is the only choice, even when it fails', () => {
    expect(scenario(['env', 'prebuilt'], { env: true }).result).toMatchObject({ ok: true, source: 'env' });
    const { result, loaded } = scenario(['env', 'prebuilt', 'local'], { env: true, broken: ['env'] });
    expect(result.ok).toBe(false);
    expect(loaded).toEqual([paths.env]);
    if (!result.ok) expect(result.reason).toMatch(/\/env\/canopy_cuda.node failed to load/);
  });

  it('a $CANOPY_CUDA_ADDON that does not exist is skipped', () => {
    expect(scenario(['local'], { env: true }).result).toMatchObject({ ok: true, source: 'local' });
  });
});

describe('platform package names', () => {
  it('Linux glibc and Windows get one; macOS, musl and 32-bit do not', () => {
    expect(platformPackageName('linux', 'x64', 'gnu')).toBe('@canopy/backend-cuda-linux-x64-gnu');
    expect(platformPackageName('linux', 'arm64', 'gnu')).toBe('@canopy/backend-cuda-linux-arm64-gnu');
    expect(platformPackageName('win32', 'x64')).toBe('@canopy/backend-cuda-win32-x64-msvc');
    expect(platformPackageName('linux', 'x64', 'musl')).toBeUndefined();
    expect(platformPackageName('darwin', 'arm64')).toBeUndefined();
    expect(platformPackageName('linux', 'ia32', 'gnu')).toBeUndefined();
  });

  it('this machine: libc detected on Linux, and the name follows it', () => {
    const libc = detectLibc();
    if (process.platform !== 'linux') return expect(libc).toBeUndefined();
    expect(['gnu', 'musl']).toContain(libc);
    expect(platformPackageName()).toBe(platformPackageName('linux', process.arch, libc));
    if (process.arch === 'x64' && libc === 'gnu') expect(platformPackageName()).toBe('@canopy/backend-cuda-linux-x64-gnu');
  });
});

describe('resolving an installed platform package through node_modules', () => {
  it('finds its main canopy_cuda.node from a module inside the depending package', () => {
    const root = mkdtempSync(join(tmpdir(), 'canopy-cuda-loader-'));
    const plat = join(root, 'node_modules/@canopy/backend-cuda-linux-x64-gnu');
    mkdirSync(plat, { recursive: true });
    writeFileSync(join(plat, 'package.json'), JSON.stringify({ name: '@canopy/backend-cuda-linux-x64-gnu', version: '0.1.0', os: ['linux'], cpu: ['x64'], libc: ['glibc'], main: 'canopy_cuda.node', exports: { '.': './canopy_cuda.node', './package.json': './package.json' } }));
    writeFileSync(join(plat, 'canopy_cuda.node'), 'not a shared object');
    const dist = join(root, 'node_modules/@canopy/backend-cuda/dist');
    mkdirSync(dist, { recursive: true });
    const resolve = packageResolver(pathToFileURL(join(dist, 'index.js')).href);
    expect(resolve('@canopy/backend-cuda-linux-x64-gnu')).toBe(join(plat, 'canopy_cuda.node'));
    expect(resolve('@canopy/backend-cuda-linux-arm64-gnu')).toBeUndefined();
    expect(packageResolver('https://example.com/x.js')('@canopy/backend-cuda-linux-x64-gnu')).toBeUndefined();
    rmSync(root, { recursive: true, force: true });
  });
});
