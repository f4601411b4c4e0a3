import { execFileSync } from 'node:child_process';
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

// Node runs eval'd worker code as CommonJS, or as an ES module when the process says so
// (--input-type=module is inherited by workers); idle workers must not keep a process alive.
it('works in a plain Node process, ESM or CommonJS worker evaluation, and lets it exit without dispose()', () => {
  const script = `
    const m = await import(${JSON.stringify(pathToFileURL(outfile).href)});
    const cfg = { numQoHeads: 4, numKvHeads: 2, headDim: 32, kvDtype: 'f32' };
    const n = 2 * 16 * 2 * 32;
    const cache = { numPages: 2, pageSize: 16, numKvHeads: 2, headDim: 32, dtype: 'f32', k: new Float32Array(n).fill(0.5), v: new Float32Array(n).fill(2) };
    const plan = { version: 1, planner: 't', config: cfg, numQueries: 1, queryRequest: Int32Array.of(0), queryKvLimit: Int32Array.of(20),
      tiles: [{ rows: 1, kvBlock: 64 }], numItems: 1, itemTile: Int32Array.of(0), itemPos: Int32Array.of(0), itemSegBegin: Int32Array.of(0, 2),
      itemQueryBegin: Int32Array.of(0, 1), itemQueries: Int32Array.of(0), itemPartialBase: Int32Array.of(0),
      segPage: Int32Array.of(1, 0), segSlot: Int32Array.of(0, 0), segTokens: Int32Array.of(16, 4), numPartials: 1,
      mergeBegin: Int32Array.of(0, 1), mergeSlots: Int32Array.of(0) };
    const b = await m.CpuBackend.create({ workers: 2, inlineBelow: 0 });
    await b.setKvCache(cache);
    const r = await b.run(plan, new Float32Array(4 * 32).fill(0.1));
    // uniform scores: every output is the V value 2, lse = ln(20) + 0.1 * 0.5 * 32 / sqrt(32)
    console.log(JSON.stringify({ out: r.out[0], lse: r.lse[0], workers: b.liveWorkers }));
  `;
  for (const args of [
    ['--input-type=module', '-e', script], // workers inherit the flag: eval'd as an ES module
    ['-e', `(async () => {${script}})()`], // eval'd as CommonJS
  ]) {
    const out = execFileSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000 });
    const r = JSON.parse(out.trim().split('\n').pop()!);
    expect(r.out).toBeCloseTo(2, 5);
    expect(r.lse).toBeCloseTo(Math.log(20) + (0.1 * 0.5 * 32) / Math.sqrt(32), 5);
    expect(r.workers).toBe(2); // not disposed, yet the process exited by itself
  }
});
