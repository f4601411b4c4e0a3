/**
 * Where the CUDA addon comes from, in order (layout: CONTRIBUTING.md, "Prebuilt CUDA binaries"):
 *
 * 1. `$CANOPY_CUDA_ADDON`: an explicit path. When it exists it is the only choice (a failure to
 *    load it is reported, not papered over by another copy).
 * 2. The prebuilt platform package, an optional dependency such as
 *    `@canopy/backend-cuda-linux-x64-gnu`, whose main file is `canopy_cuda.node`. npm installs
 *    only the one matching the machine's os/cpu/libc; it is absent elsewhere.
 * 3. `canopy_cuda.node` next to the loading module (an app bundle that copied it there).
 * 4. A local build, `build/canopy_cuda.node` in this package (`npm run build:native`, needs nvcc).
 * 5. Otherwise unavailable, with the places looked at and how to get an addon.
 *
 * A candidate that exists but fails to load (or has the wrong ABI) is recorded and the next one
 * is tried, so a prebuilt binary that does not fit the driver still lets a local build win.
 * Everything here takes its I/O as arguments so each branch is testable without a GPU.
 */
import { createRequire } from 'node:module';

export const ADDON_FILENAME = 'canopy_cuda.node';
export const ADDON_ABI = 2; // 2: strategy 2 (fused), Context.timeGroup
const PACKAGE_NAME = '@canopy/backend-cuda';

export type AddonSource = 'env' | 'prebuilt' | 'beside' | 'local';

export interface AddonCandidate {
  source: AddonSource;
  path: string;
}

/** Platforms a prebuilt package may exist for: CUDA runs on Linux (glibc) and Windows. */
const PREBUILT_TARGETS = new Set(['linux-x64-gnu', 'linux-arm64-gnu', 'win32-x64-msvc']);

/** The C library on Linux: glibc reports its version in the process report, musl does not. */
export function detectLibc(): 'gnu' | 'musl' | undefined {
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  if (proc?.platform !== 'linux') return undefined;
  try {
    const header = (proc.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    return header?.glibcVersionRuntime ? 'gnu' : 'musl';
  } catch {
    return 'gnu';
  }
}

/**
 * Name of the prebuilt package for a platform (`@canopy/backend-cuda-linux-x64-gnu`), or
 * undefined where no prebuilt binary is made (macOS, musl, 32-bit).
 */
export function platformPackageName(
  platform: string = (globalThis as { process?: NodeJS.Process }).process?.platform ?? 'browser',
  arch: string = (globalThis as { process?: NodeJS.Process }).process?.arch ?? 'unknown',
  libc: string | undefined = platform === 'linux' ? detectLibc() : undefined,
): string | undefined {
  const abi = platform === 'linux' ? libc : platform === 'win32' ? 'msvc' : undefined;
  if (!abi) return undefined;
  const target = `${platform}-${arch}-${abi}`;
  return PREBUILT_TARGETS.has(target) ? `${PACKAGE_NAME}-${target}` : undefined;
}

export interface CandidateOptions {
  /** `$CANOPY_CUDA_ADDON`. */
  envPath?: string;
  /** The platform package's name (undefined: none for this platform). */
  platformPackage?: string;
  /** Path of an installed package's main file, or undefined when it is not installed. */
  resolvePackage: (name: string) => string | undefined;
  /** Paths next to the loading module and of the local build (from its import.meta.url). */
  besidePath?: string;
  localBuildPath?: string;
}

/** All candidates in load order (existing or not). */
export function addonCandidateList(o: CandidateOptions): AddonCandidate[] {
  const out: AddonCandidate[] = [];
  if (o.envPath) out.push({ source: 'env', path: o.envPath });
  if (o.platformPackage) {
    const p = o.resolvePackage(o.platformPackage);
    if (p) out.push({ source: 'prebuilt', path: p });
  }
  if (o.besidePath) out.push({ source: 'beside', path: o.besidePath });
  if (o.localBuildPath) out.push({ source: 'local', path: o.localBuildPath });
  return out;
}

/**
 * Resolver for installed packages as seen from the module at `fromUrl` (node_modules lookup,
 * so a platform package installed as this package's optional dependency is found).
 */
export function packageResolver(fromUrl: string): (name: string) => string | undefined {
  return (name) => {
    try {
      return createRequire(fromUrl).resolve(name);
    } catch {
      return undefined; // not installed (or no file: URL, as in a browser bundle)
    }
  };
}

export type AddonLoadResult<A> =
  | { ok: true; addon: A; path: string; source: AddonSource; tried: string[] }
  | { ok: false; reason: string; tried: string[] };

/**
 * Load the first candidate that exists and loads with the expected ABI. Never throws.
 * @param load  `require` for a .node file (throws when the shared object does not load)
 */
export function loadFirstAddon<A extends { abiVersion?: unknown }>(
  candidates: AddonCandidate[],
  exists: (path: string) => boolean,
  load: (path: string) => A,
  opts: { platformPackage?: string } = {},
): AddonLoadResult<A> {
  const tried = candidates.map((c) => c.path);
  const failures: string[] = [];
  for (const c of candidates) {
    if (!exists(c.path)) continue;
    let failure: string;
    try {
      const addon = load(c.path);
      if (addon?.abiVersion === ADDON_ABI) return { ok: true, addon, path: c.path, source: c.source, tried };
      failure = `CUDA addon at ${c.path} has ABI ${String(addon?.abiVersion)}, expected ${ADDON_ABI}: ${c.source === 'prebuilt' ? 'update the prebuilt package to match' : 'rebuild it'}`;
    } catch (e) {
      failure = `CUDA addon at ${c.path} failed to load: ${String((e as Error)?.message ?? e).split('\n')[0]}`;
    }
    failures.push(failure);
    // An explicit path is what the user asked for: report its failure rather than load another copy.
    if (c.source === 'env') break;
  }
  if (failures.length) return { ok: false, tried, reason: failures.join('; ') };
  const prebuilt = opts.platformPackage
    ? `the prebuilt addon package ${opts.platformPackage} is not installed (install it where it is published for your release), `
    : 'no prebuilt addon exists for this platform; ';
  return {
    ok: false,
    tried,
    reason:
      `CUDA addon ${ADDON_FILENAME} not built (looked in ${tried.join(', ') || 'nowhere'}); ${prebuilt}` +
      'or build it with `pnpm --filter @canopy/backend-cuda build:native` (`npm run build:native` in the installed package) on a machine with nvcc, or set CANOPY_CUDA_ADDON',
  };
}
