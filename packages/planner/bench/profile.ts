// Profiling harness (not committed output): loops one phase for --cpu-prof.
import { createPlannerState, stepPlanner, clonePlannerState, nextDecodeBatch, emitPrefixPlan } from '../src/index.js';
import { buildRadix } from '../src/tree.js';
import { workload, bigTree, H100_CAPS, type WorkloadId } from '../test/workloads.js';

const id = process.env.W ?? 'W4';
const b = id === 'tree1024' ? bigTree() : workload(id as WorkloadId);
const nb = nextDecodeBatch(b);
const st = createPlannerState(b, H100_CAPS);
// steady state: two steps taken (recycled buffers hold the last two plans), then replay a third
const b2 = nextDecodeBatch(nb);
stepPlanner(st, nb);
stepPlanner(st, b2);
const nb3 = nextDecodeBatch(b2);
const n = Number(process.env.N ?? 2000);
const phase = process.env.PHASE ?? 'all';
const time = (name: string, f: (i: number) => void, pre?: (i: number) => void): void => {
  if (phase !== 'all' && phase !== name) return;
  let tot = 0;
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    pre?.(i);
    const t0 = performance.now();
    f(i);
    const dt = performance.now() - t0;
    xs.push(dt);
    tot += dt;
  }
  xs.sort((a, b) => a - b);
  console.log(id, name, 'median µs', (xs[n >> 1] * 1e3).toFixed(1), 'min', (xs[0] * 1e3).toFixed(1));
};
time('full', () => createPlannerState(b, H100_CAPS));
let c = clonePlannerState(st);
time('step', () => stepPlanner(c, nb3), () => (c = clonePlannerState(st)));
time('emit', () => emitPrefixPlan(st.tree, st.order, b2, H100_CAPS, {}));
time('canon', () => st.tree.canonicalOrder());
time('tree', () => buildRadix(b));
time('treeTrusted', () => buildRadix(b, true));
const fresh = buildRadix(b);
const ord = fresh.canonicalOrder();
time('emitFresh', () => emitPrefixPlan(fresh, ord, b, H100_CAPS, {}));
