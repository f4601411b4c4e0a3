// Prints the W2 worked example for README.md (pnpm --filter @canopy/planner explain:w2 [perRequest]).
import { buildTokenTree, explainPlan, perRequestPlanner, planMetrics, prefixPlanner } from '../src/index.js';
import { H100_CAPS, workload } from '../test/workloads.js';

const batch = workload('W2');
const plan = process.argv[2] === 'perRequest' ? perRequestPlanner(batch, H100_CAPS) : prefixPlanner(batch, H100_CAPS);
console.log(explainPlan(plan, buildTokenTree(batch)));
const m = planMetrics(plan, batch, H100_CAPS);
console.log('\nmetrics:', JSON.stringify({ ...m, predicted: undefined }, null, 1));
console.log('predicted:', JSON.stringify(m.predicted));
