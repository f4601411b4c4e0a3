import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BenchRun } from '../src/records.js';
import { runCli, tempDir } from './helpers.js';

const here = fileURLToPath(new URL('.', import.meta.url));

describe('several backends at different scales (a GPU next to the CPU reference)', () => {
  it('runs the GPU-class backend at full size and the reference scaled down, each compared within its own scale', async () => {
    const dir = tempDir();
    const tree = join(dir, 'tiny.json');
    const nodes = [{ id: 0, parent: null, tokens: 256 }, ...Array.from({ length: 8 }, (_, i) => ({ id: i + 1, parent: 0, tokens: 32 }))];
    writeFileSync(tree, JSON.stringify({ config: { numQoHeads: 4, numKvHeads: 2, headDim: 16, pageSize: 8, kvDtype: 'f32' }, nodes, requests: nodes.slice(1).map((n) => ({ leaf: n.id })) }));
    const r = await runCli(['--tree', tree, '--backend-module', join(here, 'fixtures', 'fake-gpu.mjs'), '--backend', 'fakegpu,reference', '--iters', '2', '--quiet', '--json', join(dir, 'r.json'), '--dump', join(dir, 'dump')]);
    expect(r.code, r.err).toBe(0);
    const run: BenchRun = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(run.records.map((x) => `${x.backend}/${x.planner}/${x.scaled}/${x.requests}`)).toEqual([
      'fakegpu/perRequest/false/8',
      'fakegpu/prefix/false/8',
      'reference/perRequest/true/1',
      'reference/prefix/true/1',
    ]);
    const gpu = run.records[0];
    expect(gpu.uniqueKvTokens).toBe(256 + 8 * 32);
    expect(gpu.floor.source).toBe('backend probe');
    expect(gpu.floor.bytesUs).toBeCloseTo((gpu.uniqueKvBytes / 1000e9) * 1e6, 9);
    expect(gpu.floor.flopsUs).toBeCloseTo((gpu.attentionFlops / 100e12) * 1e6, 9);
    for (const rec of run.records) {
      const base = run.records.find((x) => x.backend === rec.backend && x.planner === 'perRequest')!;
      expect(rec.speedupVsPerRequest).toBeCloseTo(base.timeUs!.median / rec.timeUs!.median, 9);
    }
    // one dump folder per (workload, scale)
    expect(existsSync(join(dir, 'dump', 'tiny', 'out.npy'))).toBe(true);
    expect(existsSync(join(dir, 'dump', 'tiny-scaled', 'out.npy'))).toBe(true);
    const m = JSON.parse(readFileSync(join(dir, 'dump', 'tiny', 'manifest.json'), 'utf8'));
    expect(m.outputs.map((o: { backend: string }) => o.backend)).toEqual(['fakegpu', 'fakegpu']);
    expect(r.out).toMatch(/tiny .*full size/);
    expect(r.out).toMatch(/tiny .*scaled down: tokens ×1\/16, requests ×1\/8/);
    expect(r.out).toMatch(/Summary[\s\S]*tiny +fakegpu +[\s\S]*tiny +reference \(scaled\)/);
    expect(r.err).toMatch(/reference: workloads scaled down/);
  });
});
