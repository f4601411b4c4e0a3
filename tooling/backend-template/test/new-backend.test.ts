import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { conformanceCases, runConformanceCase } from '@canopy/backend-testkit';
import type { BackendFactory } from '@canopy/core';
import { planners } from '@canopy/planner';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM script without types
import { newBackend } from '../scripts/new-backend.mjs';

const outside = mkdtempSync(join(tmpdir(), 'canopy-new-backend-'));
// inside the repo (test-output/ is git-ignored) so @canopy/* resolve from this package's node_modules
const inside = join(__dirname, '../test-output', `new-backend-${process.pid}`);
afterAll(() => {
  rmSync(outside, { recursive: true, force: true });
  rmSync(inside, { recursive: true, force: true });
});

describe('new-backend script', () => {
  it('copies and renames the template; outside the monorepo it pins published versions', () => {
    const r = newBackend(join(outside, 'pkg'), 'my-accel');
    expect(r.inRepo).toBe(false);
    const pkg = JSON.parse(readFileSync(join(r.target, 'package.json'), 'utf8'));
    expect(pkg.name).toBe('canopy-backend-my-accel');
    expect(pkg.dependencies['@canopy/core']).toBe('^0.1.0');
    expect(pkg.devDependencies['@canopy/backend-testkit']).toBe('^0.1.0');
    const src = readFileSync(join(r.target, 'src/index.ts'), 'utf8');
    expect(src).toContain('export class MyAccelBackend');
    expect(src).toContain('export const myAccelBackendFactory');
    expect(src).toContain('MY_ACCEL_CAPABILITIES');
    expect(src).not.toMatch(/[Tt]emplate(Backend|_CAPABILITIES)|'template'/);
    expect(readFileSync(join(r.target, 'test/conformance.test.ts'), 'utf8')).toContain('describeBackendConformance(myAccelBackendFactory)');
    expect(() => newBackend(join(outside, 'pkg'), 'again')).toThrow(/not an empty directory/);
    expect(() => newBackend(join(outside, 'x'), 'Bad Name')).toThrow(/lower case/);
  });

  it('the renamed backend still passes conformance cases', async () => {
    const r = newBackend(inside, 'renamed');
    expect(r.inRepo).toBe(true);
    const mod = (await import(pathToFileURL(join(r.target, 'src/index.ts')).href)) as Record<string, unknown>;
    const factory = mod.renamedBackendFactory as BackendFactory;
    expect(factory.name).toBe('renamed');
    const backend = await factory.create();
    try {
      for (const c of conformanceCases().filter((x) => /deep chain|prefill/.test(x.name))) {
        const res = await runConformanceCase(backend, c, planners.prefix);
        expect(res.maxOutErr, c.name).toBeLessThan(4e-3);
      }
    } finally {
      await backend.dispose();
    }
  });
});
