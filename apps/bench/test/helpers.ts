import { mkdtempSync, rmSync } from 'node:fs';
import { afterAll } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/main.js';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Run canopy-bench in-process with captured output (no TTY: plain progress lines). */
export async function runCli(argv: string[]): Promise<CliResult> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    out: (s) => (out += s.endsWith('\n') ? s : `${s}\n`),
    err: (s) => (err += s.endsWith('\n') ? s : `${s}\n`),
    isTTY: false,
  });
  return { code, out, err };
}

const created: string[] = [];

/** A fresh temporary folder, removed after the test file's tests (bundles there are ~25 MiB). */
export function tempDir(prefix = 'canopy-bench-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  created.push(d);
  return d;
}

afterAll(() => {
  for (const d of created.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Tiny-workload flags: every test run is a fraction of a second on the reference backend. */
export const TINY = ['--backend', 'reference', '--iters', '3', '--quiet', '--scale', '1/64', '--request-scale', '1/8'];
