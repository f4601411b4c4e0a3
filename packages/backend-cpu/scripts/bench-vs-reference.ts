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

interface Sample {
  wallUs: number;
  /** Process CPU time (all threads, workers included) during the run. */
  cpuUs: number;
}

async function sample(b: AttentionBackend, plan: Plan, q: Float32Array): Promise<Sample> {
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  await b.run(plan, q);
  const wallUs = (performance.now() - t0) * 1000;
  const u = process.cpuUsage(u0);
  return { wallUs, cpuUs: u.user + u.system };
}

/**
 * Alternate reference and CPU runs (after one warm-up each) so both see the same machine load:
 * this box is shared, and the ratio is what we report.
 */
async function compare(ref: AttentionBackend, refPlan: Plan, cpu: AttentionBackend, cpuPlan: Plan, q: Float32Array) {
  const warm = await sample(ref, refPlan, q);
  await sample(cpu, cpuPlan, q);
  const rounds = warm.wallUs > 2e6 ? 3 : warm.wallUs > 5e5 ? 5 : 9;
  const r: Sample[] = [];
  const c: Sample[] = [];
  for (let i = 0; i < rounds; i++) {
    r.push(await sample(ref, refPlan, q));
    c.push(await sample(cpu, cpuPlan, q));
  }
  const med = (xs: number[]) => median(Float64Array.from(xs));
  return {
    rounds,
    refWallUs: med(r.map((x) => x.wallUs)),
    cpuWallUs: med(c.map((x) => x.wallUs)),
    refCpuUs: med(r.map((x) => x.cpuUs)),
    cpuCpuUs: med(c.map((x) => x.cpuUs)),
  };
}

const ref = new ReferenceBackend();
ref.validate = false;
const cpu = await CpuBackend.create(workers === undefined ? {} : { workers });
const rows: Array<Record<string, unknown>> = [];
console.log(`device: ${cpu.device}; scale 1/${SCALE}`);
console.log('| workload | planner | unique KV tokens | reference ms | cpu ms | speed-up (wall) | CPU-time ratio | max abs diff |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|');
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
    const m = await compare(ref, refPlan, cpu, cpuPlan, queries);
    const speedup = m.refWallUs / m.cpuWallUs;
    const cpuTimeRatio = m.refCpuUs / m.cpuCpuUs;
    rows.push({
      workload: id,
      name: w.name,
      planner: pname,
      requests: batch.requests.length,
      uniqueKvTokens: uniqueKvTokens(batch),
      items: { reference: refPlan.numItems, cpu: cpuPlan.numItems },
      rounds: m.rounds,
      referenceMedianUs: m.refWallUs,
      cpuMedianUs: m.cpuWallUs,
      speedup,
      referenceCpuTimeUs: m.refCpuUs,
      cpuCpuTimeUs: m.cpuCpuUs,
      cpuTimeRatio,
      maxAbsDiffVsReference: diff,
    });
    console.log(
      `| ${id} | ${pname} | ${uniqueKvTokens(batch)} | ${(m.refWallUs / 1000).toFixed(1)} | ${(m.cpuWallUs / 1000).toFixed(1)} | **${speedup.toFixed(1)}×** | ${cpuTimeRatio.toFixed(1)}× | ${diff.toExponential(1)} |`,
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
  timing:
    'reference and cpu run() calls alternated after one warm-up each (3–9 rounds by duration); medians of wall time and of process CPU time (all threads). speedup = reference wall / cpu wall; cpuTimeRatio = reference CPU time / cpu CPU time (total work, robust to other load on the machine)',
  loadAverage: os.loadavg(),
  rows,
};
writeFileSync(outPath, JSON.stringify(report, null, 2) + '\n');
console.log(`wrote ${outPath}`);
