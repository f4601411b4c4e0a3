/**
 * Planning-speed benchmark: medians of a full build and of an incremental decode step for W1–W5
 * and a 1024-request 4-level tree, on this machine's CPU. Writes docs/benchmarks/plan-<date>.json.
 * Run: pnpm --filter @canopy/planner bench:plan
 */
import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, getPriority, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchmarkPlanning, createPlannerState, nextDecodeBatch, nextDecodeStep, planMetrics, prefixPlanner, perRequestPlanner, quantiles, stepPlanner } from '../src/index.js';
import { bigTree, H100_CAPS, workload, type WorkloadId } from '../test/workloads.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const iters = Number(process.env.ITERS ?? 300);
const cases: Array<[string, ReturnType<typeof workload>]> = [
  ...(['W1', 'W2', 'W3', 'W4', 'W5'] as WorkloadId[]).map((id) => [id, workload(id)] as [string, ReturnType<typeof workload>]),
  ['tree1024', bigTree()],
].filter(([name]) => !process.env.CASES || process.env.CASES.split(',').includes(name as string)) as Array<[string, ReturnType<typeof workload>]>;
// Machine-speed reference: ns per element of a plain typed-array sum (≈0.3–0.5 on an idle modern core).
function calibrate(): number {
  const a = new Int32Array(1 << 20).map((_, i) => i & 1023);
  let best = Infinity;
  for (let r = 0; r < 30; r++) {
    const t0 = performance.now();
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i];
    const dt = performance.now() - t0;
    if (dt < best) best = dt;
    (globalThis as { sink?: number }).sink = s;
  }
  return (best * 1e6) / a.length;
}
const calBefore = calibrate();
const loadBefore = loadavg();
// The input a full build must read: every request's page ids and token counts (the tree build
// compares them all). Median µs of summing them in a plain loop, for scale.
function inputReadUs(batch: ReturnType<typeof workload>): number {
  const xs: number[] = [];
  for (let r = 0; r < 101; r++) {
    const t0 = performance.now();
    let s = 0;
    for (const q of batch.requests) {
      const a = q.pageIds;
      const b = q.pageTokens;
      for (let i = 0; i < a.length; i++) s += a[i] + b[i];
    }
    xs.push(performance.now() - t0);
    (globalThis as { sink?: number }).sink = s;
  }
  xs.sort((a, b) => a - b);
  return xs[50] * 1e3;
}
// Warm the JIT on every shape first, so the first workload measured is not the one that pays for
// compilation and for the deoptimisations the next shapes cause.
for (const [, batch] of cases) benchmarkPlanning(batch, H100_CAPS, { iters: 40, warmup: 10 });
// A decode loop: one state stepped through consecutive batches, each built (untimed) by
// nextDecodeBatch right before its step. That copies every request's page list (2 MB for W5), so
// the step then reads the batch from colder caches than the replayed step does.
function decodeLoop(batch: ReturnType<typeof workload>, steps: number): { samples: number[]; patched: number; steps: number } {
  const st = createPlannerState(batch, H100_CAPS);
  let b = batch;
  const xs: number[] = [];
  for (let i = 0; i < steps + 5; i++) {
    const nb = nextDecodeBatch(b);
    const t0 = performance.now();
    stepPlanner(st, nb);
    const dt = (performance.now() - t0) * 1e3;
    if (i >= 5) xs.push(dt);
    b = nb;
  }
  return { samples: xs, patched: st.patched, steps: st.steps };
}
// Decode loops over batches built beforehand (so that building them, and collecting what that
// leaves behind, does not fall inside the timed steps), stepping with the batch alone or with the
// caller's account of each step (stepPlanner's delta.appended: which requests started a new page),
// which spares the step reading every request's page lists.
// Steps of the prebuilt loops with the account that took the account path (accountStep), and of
// those, the ones whose split search ran from the last one's record (per case).
const accountPath = new Map<string, { steps: number; accountSteps: number; leafSearches: number }>();
function prebuiltLoop(batch: ReturnType<typeof workload>, steps: number, account: boolean, name = ''): number[] {
  const seq: Array<ReturnType<typeof nextDecodeStep>> = [];
  let b = batch;
  for (let i = 0; i < steps + 5; i++) {
    const s = nextDecodeStep(b);
    seq.push(s);
    b = s.batch;
  }
  const st = createPlannerState(batch, H100_CAPS);
  const xs: number[] = [];
  for (let i = 0; i < seq.length; i++) {
    const { batch: nb, appended } = seq[i];
    const t0 = performance.now();
    stepPlanner(st, nb, account ? { appended } : undefined);
    const dt = (performance.now() - t0) * 1e3;
    if (i >= 5) xs.push(dt);
  }
  if (account) {
    const a = accountPath.get(name) ?? { steps: 0, accountSteps: 0, leafSearches: 0 };
    a.steps += seq.length;
    a.accountSteps += st.layout.accountSteps;
    a.leafSearches += st.layout.leafSearches;
    accountPath.set(name, a);
  }
  return xs;
}
// The floor of any step over this Batch layout: merely reading every request's last page id and
// token count, on batches built the same way as in decodeLoop (each request's page lists are
// separate heap objects, mostly not in cache by the time the step runs).
function touchLoop(batch: ReturnType<typeof workload>, steps: number): number[] {
  let b = batch;
  const xs: number[] = [];
  let sink = 0;
  for (let i = 0; i < steps + 5; i++) {
    const nb = nextDecodeBatch(b);
    const reqs = nb.requests;
    const t0 = performance.now();
    for (let r = 0; r < reqs.length; r++) {
      const q = reqs[r];
      const n = q.pageIds.length;
      sink += q.pageIds[n - 1] + q.pageTokens[n - 1];
    }
    const dt = (performance.now() - t0) * 1e3;
    if (i >= 5) xs.push(dt);
    b = nb;
  }
  (globalThis as { sink?: number }).sink = sink;
  return xs;
}
// Rounds: every case is measured ROUNDS times with ITERS / ROUNDS iterations, cases interleaved,
// and the quantiles are taken over all samples of a case. Other jobs on this machine come and go
// in bursts of seconds; interleaving spreads them over all cases instead of hitting one.
const rounds = Number(process.env.ROUNDS ?? 5);
const per = Math.max(1, Math.ceil(iters / rounds));
// Warm-up rounds (WARMUP_ROUNDS, default 2): every measurement of every case, run and discarded
// before the timed rounds. On this 2-core machine, optimizing the planner's large functions takes
// TurboFan tens of milliseconds on the second core (shared with other jobs), and the steps'
// first runs send some back for another compile; meanwhile the code runs unoptimized, 3-4×
// slower (W5's full build: ~600 µs instead of ~170 µs, in whole rounds of v3-style runs). Timed
// rounds then measure the steady state a planner stepping every decode step is in.
const warmupRounds = Number(process.env.WARMUP_ROUNDS ?? 2);
for (let round = 0; round < warmupRounds; round++) {
  for (const [, batch] of cases) {
    benchmarkPlanning(batch, H100_CAPS, { iters: per, warmup: 25 });
    decodeLoop(batch, Math.min(per, 40));
    touchLoop(batch, Math.min(per, 40));
    prebuiltLoop(batch, Math.min(per, 40), false);
    prebuiltLoop(batch, Math.min(per, 40), true);
  }
}
type Samples = { fullBuildUs: number[]; fullBuildTrustedUs: number[]; incrementalStepUs: number[]; joinFinishStepUs: number[]; loop: number[]; pre: number[]; preAccount: number[]; touch: number[]; patched: number; steps: number };
const acc = new Map<string, Samples>(cases.map(([name]) => [name, { fullBuildUs: [], fullBuildTrustedUs: [], incrementalStepUs: [], joinFinishStepUs: [], loop: [], pre: [], preAccount: [], touch: [], patched: 0, steps: 0 }]));
for (let round = 0; round < rounds; round++) {
  for (const [name, batch] of cases) {
    const b = benchmarkPlanning(batch, H100_CAPS, { iters: per, warmup: 25, keepSamples: true });
    const a = acc.get(name)!;
    for (const k of ['fullBuildUs', 'fullBuildTrustedUs', 'incrementalStepUs', 'joinFinishStepUs'] as const) a[k].push(...b.samples![k]);
    const loop = decodeLoop(batch, Math.min(per, 40));
    a.loop.push(...loop.samples);
    a.touch.push(...touchLoop(batch, Math.min(per, 40)));
    a.pre.push(...prebuiltLoop(batch, Math.min(per, 40), false));
    a.preAccount.push(...prebuiltLoop(batch, Math.min(per, 40), true, name));
    a.patched += loop.patched;
    a.steps += loop.steps;
  }
}
const results = cases.map(([name, batch]) => {
  const a = acc.get(name)!;
  const full = quantiles(a.fullBuildUs);
  const trusted = quantiles(a.fullBuildTrustedUs);
  const step = quantiles(a.incrementalStepUs);
  const join = quantiles(a.joinFinishStepUs);
  const loop = { ...quantiles(a.loop), patched: a.patched, steps: a.steps };
  const m = planMetrics(prefixPlanner(batch, H100_CAPS), batch, H100_CAPS);
  const base = planMetrics(perRequestPlanner(batch, H100_CAPS), batch, H100_CAPS);
  const row = {
    workload: name,
    requests: batch.requests.length,
    samples: a.fullBuildUs.length,
    fullBuildUs: full,
    fullBuildTrustedUs: trusted,
    incrementalStepUs: step,
    joinFinishStepUs: join,
    decodeLoopStepUs: loop,
    prebuiltLoopStepUs: quantiles(a.pre),
    prebuiltLoopAccountStepUs: quantiles(a.preAccount),
    prebuiltLoopAccountPath: accountPath.get(name),
    stepInputTouchUs: quantiles(a.touch),
    inputPages: batch.requests.reduce((n, q) => n + q.pageIds.length, 0),
    inputReadUs: inputReadUs(batch),
    plan: { workItems: m.workItems, uniqueKvTokens: m.uniqueKvTokens, kvTokensRead: m.kvTokensRead, kvTokensLoaded: m.kvTokensLoaded, predictedTimeUs: m.predictedTimeUs },
    perRequestPredictedTimeUs: base.predictedTimeUs,
  };
  console.log(
    `${name.padEnd(9)} ${String(row.requests).padStart(5)} req  full ${full.median.toFixed(1).padStart(8)} µs (p10 ${full.p10.toFixed(1)}, p90 ${full.p90.toFixed(1)})  trusted ${trusted.median.toFixed(1).padStart(7)} µs  step ${step.median.toFixed(1).padStart(7)} µs (p10 ${step.p10.toFixed(1)}, p90 ${step.p90.toFixed(1)})  join/finish ${join.median.toFixed(1).padStart(7)} µs  loop ${loop.median.toFixed(1).padStart(7)} µs (${loop.patched}/${loop.steps} patched, input touch ${quantiles(a.touch).median.toFixed(1)})  prebuilt ${quantiles(a.pre).median.toFixed(1).padStart(6)} µs, with account ${quantiles(a.preAccount).median.toFixed(1).padStart(6)} µs (p90 ${quantiles(a.preAccount).p90.toFixed(1)})  items ${m.workItems}`,
  );
  return row;
});
let commit = 'unknown';
try {
  commit = execSync('git rev-parse HEAD', { cwd: root }).toString().trim();
} catch {}
const date = new Date().toISOString();
const out = {
  benchmark: 'planner: prefix plan build (full) and incremental decode step',
  date,
  commit,
  machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, niceness: getPriority() },
  capabilities: 'H100-like: 132 units, 3350 GB/s, tiles rows 1/8/16/32/64/128 × kvBlock 32/64/128',
  iters,
  rounds,
  warmupRounds,
  units: 'microseconds (wall clock, performance.now); median/p10/p90 over all samples of a case: ROUNDS rounds of ITERS/ROUNDS iterations each (after 25 warm-up iterations per round), cases interleaved round by round',
  notes:
    'fullBuildUs: createPlannerState (radix tree comparing every page + plan). fullBuildTrustedUs: the same with trustPageIds. incrementalStepUs: stepPlanner for an append-only decode step (nextDecodeBatch: one token appended to every request; the previous plan is patched), from a state that has stepped twice already (its two recycled plan buffers hold the last two plans, as in a decode loop); each timed step runs on a fresh copy of that state (copies made untimed, 16 at a time). joinFinishStepUs: stepPlanner for a step where request 0 finishes and a fork of the last request joins (tree update + full emit into a recycled buffer). decodeLoopStepUs: one state stepped through consecutive decode batches (each built untimed by nextDecodeBatch just before, which copies every page list: colder caches than the replayed step), with how many steps were patches. prebuiltLoopStepUs / prebuiltLoopAccountStepUs: the decode loop over batches built beforehand (no batch building or its garbage collection between steps), stepping with the batch alone / with the caller’s account of each step (stepPlanner delta.appended); prebuiltLoopAccountPath: of those steps with the account, how many took the account path (accountStep: one pass over the requests) and how many of these redid the split search from the last one’s record (leafSearches) rather than over every column. stepInputTouchUs: the floor of any step over this batch layout, reading the last page id and token count of every request on batches built as in the decode loop. inputPages / inputReadUs: page entries of the batch and the median µs of merely summing all page ids and token counts in a loop (what any exact full build must read). Load average of the machine before and after is recorded: other jobs shared its 2 cores. warmupRounds: rounds of every measurement of every case run and discarded before the timed rounds (runs before v4 had none: their first rounds could run partly unoptimized code).',
  loadAverage: { before: loadBefore, after: loadavg() },
  calibrationNsPerElement: { before: calBefore, after: calibrate() },
  results,
  // BASELINE=<json of an earlier planner's run, same machine, right before this one>: kept here so
  // that before/after are compared under the same conditions (this machine's speed varies by 2×
  // with what else runs on its host; see calibrationNsPerElement)
  ...(process.env.BASELINE ? { baseline: { label: process.env.BASELINE_LABEL ?? 'baseline', ...JSON.parse(readFileSync(process.env.BASELINE, 'utf8')) } } : {}),
};
if (process.env.WRITE !== '0') {
  // OUT names the file (e.g. plan-2026-11-23-v2.json) so that a day's earlier run is kept
  const file = resolve(root, 'docs/benchmarks', process.env.OUT ?? `plan-${date.slice(0, 10)}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${file}`);
}
