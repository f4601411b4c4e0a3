/** Where a run happened: tool version, commit, host. */
import { execFileSync } from 'node:child_process';
import { cpus, platform, arch, totalmem } from 'node:os';

declare const __CANOPY_COMMIT__: string | undefined;
declare const __CANOPY_BENCH_VERSION__: string | undefined;

export const BENCH_VERSION: string = typeof __CANOPY_BENCH_VERSION__ === 'string' ? __CANOPY_BENCH_VERSION__ : '0.1.0';

let commitCache: string | undefined;

/** Commit of the code that runs: $CANOPY_COMMIT, else the one baked into a bundle, else `git rev-parse`. */
export function currentCommit(): string {
  if (commitCache) return commitCache;
  const env = process.env.CANOPY_COMMIT;
  if (env) return (commitCache = env);
  if (typeof __CANOPY_COMMIT__ === 'string' && __CANOPY_COMMIT__) return (commitCache = __CANOPY_COMMIT__);
  try {
    const sha = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    let dirty = false;
    try {
      dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    } catch {
      /* no status: report the sha alone */
    }
    commitCache = dirty ? `${sha}-dirty` : sha;
  } catch {
    commitCache = 'unknown';
  }
  return commitCache;
}

export interface HostInfo {
  node: string;
  platform: string;
  arch: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
}

export function hostInfo(): HostInfo {
  const c = cpus();
  return {
    node: process.version,
    platform: platform(),
    arch: arch(),
    cpus: c.length,
    cpuModel: c[0]?.model?.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  };
}
