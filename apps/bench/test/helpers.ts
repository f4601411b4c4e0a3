import { mkdtempSync } from 'node:fs';
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

export function tempDir(prefix = 'canopy-bench-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Tiny-workload flags: every test run is a fraction of a second on the reference backend. */
export const TINY = ['--backend', 'reference', '--iters', '3', '--quiet', '--scale', '1/64', '--request-scale', '1/8'];
