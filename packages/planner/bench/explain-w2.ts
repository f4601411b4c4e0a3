// Prints the W2 worked example for README.md: pnpm --filter @canopy/planner explain:w2 [perRequest] [reference]
// (reference: plan for the reference backend's capabilities instead of the H100-like ones).
import { REFERENCE_CAPABILITIES } from '@canopy/core';
import { buildTokenTree, explainPlan, perRequestPlanner, planMetrics, prefixPlanner } from '../src/index.js';
import { H100_CAPS, workload } from '../test/workloads.js';

const args = process.argv.slice(2);
const caps = args.includes('reference') ? REFERENCE_CAPABILITIES : H100_CAPS;
const batch = workload('W2');
const plan = args.includes('perRequest') ? perRequestPlanner(batch, caps) : prefixPlanner(batch, caps);
console.log(explainPlan(plan, buildTokenTree(batch)));
const m = planMetrics(plan, batch, caps);
console.log('\nmetrics:', JSON.stringify({ ...m, predicted: undefined }, null, 1));
console.log('predicted:', JSON.stringify(m.predicted));
