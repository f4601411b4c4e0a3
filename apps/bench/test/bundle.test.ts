import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const app = fileURLToPath(new URL('..', import.meta.url));

function sizeOf(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const s = statSync(p);
    n += s.isDirectory() ? sizeOf(p) : s.size;
  }
  return n;
}

describe('self-contained bundle', () => {
  it('builds bench.mjs (+ native parts), under 40 MiB, and runs with only Node', () => {
    const out = join(tempDir(), 'bundle');
    execFileSync(process.execPath, [join(app, 'scripts', 'bundle.mjs')], { env: { ...process.env, CANOPY_BUNDLE_DIR: out }, stdio: 'pipe' });
    expect(existsSync(join(out, 'bench.mjs'))).toBe(true);
    expect(existsSync(join(out, 'verify-worker.mjs'))).toBe(true);
    expect(sizeOf(out)).toBeLessThan(40 * 2 ** 20);
    // Run it from a directory outside the workspace, so nothing resolves from the repo's node_modules.
    const cwd = tempDir();
    const r = spawnSync(process.execPath, [join(out, 'bench.mjs'), '--workload', 'W1', '--backend', 'reference', '--iters', '3', '--quiet', '--scale', '1/64', '--request-scale', '1/8', '--html', 'r.html'], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, NODE_PATH: '' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/W1 {2}shared system prompt/);
    expect(r.stdout).toMatch(/reference +prefix/);
    // the charting library works bundled (no canvas, no network)
    expect(readFileSync(join(cwd, 'r.html'), 'utf8')).toContain('<svg');
    // Verification spread over worker threads (the bundle's verify-worker.mjs) agrees with the backend too.
    const par = spawnSync(process.execPath, [join(out, 'bench.mjs'), '--workload', 'W3', '--backend', 'reference', '--iters', '2', '--quiet', '--scale', '1/64', '--request-scale', '1/4'], {
      cwd: tempDir(),
      encoding: 'utf8',
      env: { ...process.env, CANOPY_VERIFY_WORKERS: '3', CANOPY_BENCH_DEBUG: '1' },
    });
    expect(par.status, par.stderr).toBe(0);
    expect(par.stderr).toMatch(/verifying 16 queries with 3 worker threads/);
    expect(par.stdout).toMatch(/reference +prefix .* \d\.\de-\d+/);
    // a hybrid step (prefill chunk + decodes): fused, back-to-back and two-stream times, all verified
    const hy = spawnSync(process.execPath, [join(out, 'bench.mjs'), '--workload', 'H1', '--backend', 'reference', '--iters', '3', '--quiet', '--scale', '1/256', '--request-scale', '1/16'], {
      cwd: tempDir(),
      encoding: 'utf8',
    });
    expect(hy.status, hy.stderr).toBe(0);
    expect(hy.stdout).toMatch(/reference +prefix +[\d.]+ [µm]?s +[\d.]+ [µm]?s +[\d.]+ [µm]?s +[\d.]+× +[\d.]+×/);
    const list = spawnSync(process.execPath, [join(out, 'bench.mjs'), 'list'], { cwd: tempDir(), encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    // every optional backend is either loaded or skipped with a reason; the bundle itself never crashes on them
    expect(list.stdout).toMatch(/reference \(priority 0\): available/);
  }, 120_000);
});
