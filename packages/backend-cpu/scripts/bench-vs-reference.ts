/**
 * CPU backend vs the reference backend on the canonical workloads W1–W5 with every node's token
 * count divided by SCALE (default 16), same heads, dims, dtype and page size, both planners, one
 * process. Writes a JSON report and prints a Markdown table.
 *
 *   pnpm --filter @canopy/backend-cpu bench [-- --scale 16 --out ../../docs/benchmarks/x.json]
 *
 * Each backend executes the plan its own capabilities produce; both are timed with time(). The CPU output is checked against
 * the reference backend's output on the same batch (max abs difference reported).
 */
import { execSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { batchFromTree, type TreeSpec } from '@canopy/backend-testkit';
import { randomKvCache, randomQueries, ReferenceBackend, uniqueKvTokens, validatePlan, type AttentionBackend, type AttentionConfig, type Plan } from '@canopy/core';
import { planners } from '@canopy/planner';
import { CpuBackend } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const SCALE = Number(arg('scale', '16'));
const WORKLOADS = arg('workloads', 'W1,W2,W3,W4,W5').split(',');
const date = new Date().toISOString().slice(0, 10);
const outPath = resolve(arg('out', resolve(root, `docs/benchmarks/cpu-vs-reference-${date}.json`)));
const workers = arg('workers', '') === '' ? undefined : Number(arg('workers', ''));

interface WorkloadJson {
  name: string;
  config: AttentionConfig & { pageSize: number };
  nodes: Array<{ id: number; parent: number | null; tokens: number }>;
  requests: Array<{ leaf: number }>;
}

function loadScaled(id: string): { spec: TreeSpec; config: AttentionConfig; pageSize: number; name: string } {
  const w = JSON.parse(readFileSync(resolve(root, `apps/bench/workloads/${id}.json`), 'utf8')) as WorkloadJson;
  const index = new Map(w.nodes.map((n, i) => [n.id, i]));
  const spec: TreeSpec = {
    parent: w.nodes.map((n) => (n.parent === null ? -1 : index.get(n.parent)!)),
    tokens: w.nodes.map((n) => Math.max(1, Math.round(n.tokens / SCALE))),
    requestAt: w.requests.map((r) => index.get(r.leaf)!),
  };
  const { pageSize, ...config } = w.config;
  return { spec, config, pageSize, name: w.name };
}

function median(a: Float64Array): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timeIt(b: AttentionBackend, plan: Plan, q: Float32Array, budgetMs: number): Promise<{ medianUs: number; iters: number }> {
  // one warm-up run, then as many as fit the budget (at least 3)
  const t0 = performance.now();
  await b.run(plan, q);
  const once = performance.now() - t0;
  const iters = Math.max(3, Math.min(50, Math.floor(budgetMs / Math.max(once, 0.01))));
  const t = await b.time!(plan, q, { warmup: 0, iters });
  return { medianUs: median(t.timesUs), iters };
}

const ref = new ReferenceBackend();
ref.validate = false;
const cpu = await CpuBackend.create(workers === undefined ? {} : { workers });
const rows: Array<Record<string, unknown>> = [];
console.log(`device: ${cpu.device}; scale 1/${SCALE}`);
console.log('| workload | planner | unique KV tokens | reference ms | cpu ms | speed-up | max abs diff |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const id of WORKLOADS) {
  const w = loadScaled(id);
  const batch = batchFromTree(w.spec, w.config, w.pageSize, 1);
  const cache = randomKvCache(batch.numPages, batch.pageSize, w.config, 42);
  const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
  const queries = randomQueries(nq, w.config, 43);
  await ref.setKvCache(cache);
  await cpu.setKvCache(cache);
  for (const [pname, planner] of Object.entries(planners)) {
    const refPlan = planner(batch, ref.capabilities);
    const cpuPlan = planner(batch, cpu.capabilities);
    validatePlan(refPlan, batch);
    validatePlan(cpuPlan, batch);
    const r = await ref.run(refPlan, queries);
    const c = await cpu.run(cpuPlan, queries);
    let diff = 0;
    for (let i = 0; i < r.out.length; i++) diff = Math.max(diff, Math.abs(r.out[i] - c.out[i]));
    const tr = await timeIt(ref, refPlan, queries, 3000);
    const tc = await timeIt(cpu, cpuPlan, queries, 2000);
    const speedup = tr.medianUs / tc.medianUs;
    rows.push({
      workload: id,
      name: w.name,
      planner: pname,
      requests: batch.requests.length,
      uniqueKvTokens: uniqueKvTokens(batch),
      items: { reference: refPlan.numItems, cpu: cpuPlan.numItems },
      referenceMedianUs: tr.medianUs,
      referenceIters: tr.iters,
      cpuMedianUs: tc.medianUs,
      cpuIters: tc.iters,
      speedup,
      maxAbsDiffVsReference: diff,
    });
    console.log(
      `| ${id} | ${pname} | ${uniqueKvTokens(batch)} | ${(tr.medianUs / 1000).toFixed(2)} | ${(tc.medianUs / 1000).toFixed(2)} | ${speedup.toFixed(2)}× | ${diff.toExponential(1)} |`,
    );
  }
}
await cpu.dispose();
await ref.dispose();

let commit = 'unknown';
try {
  commit = execSync('git rev-parse HEAD', { cwd: root }).toString().trim();
} catch {
  /* not a checkout */
}
const report = {
  benchmark: 'cpu-vs-reference',
  date: new Date().toISOString(),
  commit,
  device: cpu.device,
  cpuModel: os.cpus()[0]?.model,
  logicalCores: os.cpus().length,
  node: process.version,
  workers: cpu.capabilities.parallelUnits,
  scale: `every node's tokens / ${SCALE} (rounded, at least 1); heads, head dim, dtype, page size as in apps/bench/workloads`,
  timing: 'median wall time of time() iterations after one warm-up run() (CPU: results not copied out; reference: time() = run())',
  rows,
};
writeFileSync(outPath, JSON.stringify(report, null, 2) + '\n');
console.log(`wrote ${outPath}`);
