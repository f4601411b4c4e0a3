import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { batchFromTree } from '@canopy/backend-testkit';
import { BackendRegistry, loadBackendModule, randomKvCache, randomQueries, referenceAttention, type AttentionConfig } from '@canopy/core';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CPU_CAPABILITIES } from '../src/index.js';
import { chunkedPlanner } from './chunked-planner.js';

// Workers run the kernel from its source text (Function.prototype.toString). A bundler may rewrite
// identifiers inside those bodies (esbuild turns `require` into `__require`), so check that a
// bundled copy of the package, as tsup builds it, still runs plans on its workers.
const dir = mkdtempSync(join(tmpdir(), 'canopy-cpu-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const outfile = join(dir, 'index.mjs');

beforeAll(async () => {
  await build({
    entryPoints: [join(__dirname, '../src/index.ts')],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    conditions: ['@canopy/source'],
    outfile,
    logLevel: 'silent',
  });
});

it('a bundled build runs plans on worker threads', async () => {
  const mod = (await import(pathToFileURL(outfile).href)) as typeof import('../src/index.js');
  const config: AttentionConfig = { numQoHeads: 4, numKvHeads: 2, headDim: 32, kvDtype: 'f32' };
  const batch = batchFromTree({ parent: [-1, 0, 0], tokens: [50, 7, 20], requestAt: [1, 2] }, config, 16);
  const cache = randomKvCache(batch.numPages, batch.pageSize, config, 3);
  const queries = randomQueries(2, config, 4);
  const b = await mod.CpuBackend.create({ workers: 2, inlineBelow: 0 });
  try {
    await b.setKvCache(cache);
    const got = await b.run(chunkedPlanner(16)(batch, CPU_CAPABILITIES), queries);
    const ref = referenceAttention(batch, cache, queries);
    let err = 0;
    for (let i = 0; i < ref.out.length; i++) err = Math.max(err, Math.abs(got.out[i] - ref.out[i]));
    expect(err).toBeLessThan(1e-5);
  } finally {
    await b.dispose();
  }
});

it('loads as a plugin module through loadBackendModule (what canopy-bench --backend-module does)', async () => {
  const registry = new BackendRegistry();
  const factories = await loadBackendModule(outfile, { registry });
  expect(factories.map((f) => [f.name, f.priority])).toEqual([['cpu', 10]]);
  expect((await registry.pickBest()).factory.name).toBe('cpu');
  const b = await factories[0].create({ workers: 1 });
  try {
    expect(b.device).toMatch(/1 worker thread/);
  } finally {
    await b.dispose();
  }
});
