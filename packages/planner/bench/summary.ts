// Markdown table of plan metrics for W1–W5, both planners (pnpm --filter @canopy/planner exec ... for README).
import { perRequestPlanner, planMetrics, prefixPlanner } from '../src/index.js';
import { H100_CAPS, workload, type WorkloadId } from '../test/workloads.js';

console.log('| workload | planner | work items | KV tokens read | KV tokens loaded | max partials/query | predicted bytes (MB) | predicted µs |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|');
for (const id of ['W1', 'W2', 'W3', 'W4', 'W5'] as WorkloadId[]) {
  const b = workload(id);
  for (const [name, f] of [['prefix', prefixPlanner], ['perRequest', perRequestPlanner]] as const) {
    const m = planMetrics(f(b, H100_CAPS), b, H100_CAPS);
    console.log(`| ${id} | ${name} | ${m.workItems} | ${m.kvTokensRead} | ${m.kvTokensLoaded} | ${m.maxPartialsPerQuery} | ${(m.predictedBytes / 1e6).toFixed(0)} | ${m.predictedTimeUs.toFixed(0)} |`);
  }
}
