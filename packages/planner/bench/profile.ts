// Profiling harness: loops one phase (PHASE=full|step|emit|canon|tree|treeTrusted|emitFresh|emitReuse)
// W (workload) N (iterations) times and prints wall-clock median, min and p10 (µs); use with --cpu-prof.
import { createPlannerState, stepPlanner, clonePlannerState, nextDecodeBatch, emitPrefixPlan } from '../src/index.js';
import { buildRadix } from '../src/tree.js';
import { splitSearch } from '../src/prefix.js';
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
  if (phase !== 'all' && phase !== name && !(phase === 'split' && name === 'splitOnly')) return;
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    pre?.(i);
    const t0 = performance.now();
    f(i);
    xs.push(performance.now() - t0);
  }
  xs.sort((a, b) => a - b);
  console.log(id.padEnd(8), name.padEnd(12), 'median µs', (xs[n >> 1] * 1e3).toFixed(1).padStart(7), 'min', (xs[0] * 1e3).toFixed(1).padStart(7), 'p10', (xs[Math.floor(n / 10)] * 1e3).toFixed(1).padStart(7));
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
let reuse = new Int32Array(0);
time('emitReuse', () =>
  emitPrefixPlan(fresh, ord, b, H100_CAPS, {}, (n) => {
    if (reuse.length < n) reuse = new Int32Array(n);
    return reuse;
  }),
);

if (phase === 'phases') {
  const acc: number[][] = [];
  for (let i = 0; i < n; i++) {
    emitPrefixPlan(fresh, ord, b, H100_CAPS, {}, (m) => {
      if (reuse.length < m) reuse = new Int32Array(m);
      return reuse;
    });
    const T = (globalThis as { __T?: number[] }).__T;
    if (!T) throw new Error('phases: add (globalThis as any).__T.push(performance.now()) marks to emitPrefixPlan first');
    const d = T.slice(1).map((t, k) => (t - T[k]) * 1e3);
    acc.push(d);
  }
  const med = acc[0].map((_, k) => acc.map((d) => d[k]).sort((x, y) => x - y)[Math.floor(n / 10)].toFixed(1));
  console.log(id, 'p10 phases (setup, blocks+fusion, columns+split, alloc, items, merge):', med.join(' '));
}
if (phase === 'stepPhases') {
  const acc: number[][] = [];
  for (let i = 0; i < n; i++) {
    const c2 = clonePlannerState(st);
    const t0 = performance.now();
    stepPlanner(c2, nb3);
    const t1 = performance.now();
    const T = (globalThis as { __S?: number[] }).__S!;
    acc.push([(T[0] - t0) * 1e3, ...T.slice(1).map((t, k) => (t - T[k]) * 1e3), (t1 - T[T.length - 1]) * 1e3]);
  }
  const med = acc[0].map((_, k) => acc.map((d) => d[k]).sort((x, y) => x - y)[Math.floor(n / 10)].toFixed(1));
  console.log(id, 'p10 step phases (pre, pass1, pass2, commit, split, model, write, end):', med.join(' '));
}
if (phase === 'loopPhases' || phase === 'loop') {
  const acc: number[][] = [];
  const xs: number[] = [];
  const s2 = createPlannerState(b, H100_CAPS);
  let bb = b;
  for (let i = 0; i < n; i++) {
    const nb2 = nextDecodeBatch(bb);
    const t0 = performance.now();
    stepPlanner(s2, nb2);
    const t1 = performance.now();
    xs.push((t1 - t0) * 1e3);
    const T = (globalThis as { __S?: number[] }).__S;
    if (T) acc.push([(T[0] - t0) * 1e3, ...T.slice(1).map((t, k) => (t - T[k]) * 1e3), (t1 - T[T.length - 1]) * 1e3]);
    bb = nb2;
  }
  xs.sort((x, y) => x - y);
  console.log(id, 'decode loop step median', xs[xs.length >> 1].toFixed(1), 'p10', xs[Math.floor(xs.length / 10)].toFixed(1), 'patched', s2.patched, '/', s2.steps);
  if (acc.length) {
    const med = acc[0].map((_, k) => acc.map((d) => d[k]).sort((x, y) => x - y)[acc.length >> 1].toFixed(1));
    console.log(id, 'median loop phases (pre, pass1, commit, split, copies, segments, end):', med.join(' '));
  }
}
if (phase === 'split') {
  const L = st.layout;
  const [HK, c0, P, ml, mpp, bw] = L.params;
  const K = new Int32Array(L.C);
  time('splitOnly', () => splitSearch(L.C, L.colW, L.colSum, L.colKmax, L.colNb, L.colVis, K, HK, c0, P, ml, mpp, bw, b.requests.length, L.params[8], L.colLeaf));
}
