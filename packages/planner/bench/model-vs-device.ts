/**
 * The cost model's predicted time against device measurements: reads a backend benchmark JSON
 * (docs/benchmarks/cuda-*.json with `capabilities` and `workloads[]` rows of
 * { workload, planner, strategy, numItems, medianUs }), plans W1–W5 for its capabilities and prints
 * predicted vs measured (best strategy) per planner.
 * Run: pnpm --filter @canopy/planner exec tsup --config bench/tsup.config.ts && node .bench-build/model-vs-device.js FILE
 */
import { readFileSync } from 'node:fs';
import type { BackendCapabilities } from '@canopy/core';
import { perRequestPlanner, planMetrics, prefixPlanner } from '../src/index.js';
import { workload, type WorkloadId } from '../test/workloads.js';

const file = process.argv[2];
if (!file) throw new Error('usage: model-vs-device FILE.json');
const doc = JSON.parse(readFileSync(file, 'utf8')) as {
  capabilities: BackendCapabilities;
  workloads: Array<{ workload: string; planner: string; strategy: string; numItems: number; medianUs: number }>;
};
const caps = doc.capabilities;
console.log(`capabilities: ${caps.parallelUnits} units, ${caps.readBandwidthGBs?.toFixed(0)} GB/s, tiles ${caps.tileMenu.map((t) => `${t.rows}×${t.kvBlock}`).join(' ')}`);
console.log('| workload | planner | items (plan / measured run) | predicted µs | measured µs (best strategy) | measured / predicted |');
console.log('|---|---|---:|---:|---:|---:|');
for (const id of ['W1', 'W2', 'W3', 'W4', 'W5'] as WorkloadId[]) {
  const b = workload(id);
  for (const [name, f] of [['prefix', prefixPlanner], ['perRequest', perRequestPlanner]] as const) {
    const plan = f(b, caps);
    const m = planMetrics(plan, b, caps);
    const rows = doc.workloads.filter((w) => w.workload === id && w.planner === name);
    if (rows.length === 0) continue;
    const best = rows.reduce((a, c) => (c.medianUs < a.medianUs ? c : a));
    console.log(`| ${id} | ${name} | ${plan.numItems} / ${best.numItems} | ${m.predictedTimeUs.toFixed(0)} | ${best.medianUs.toFixed(0)} (${best.strategy}) | ${(best.medianUs / m.predictedTimeUs).toFixed(2)} |`);
  }
}
