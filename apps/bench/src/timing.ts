/**
 * Timing a plan on a backend: warm-up, then batches of iterations until the median is stable
 * (~95% confidence half-width of the median under 2% of it), the iteration cap, or the time
 * budget is reached. GPU timers (`backend.time`) when the backend has them, else wall clock
 * around `run`.
 */
import type { AttentionBackend, Plan, TimingResult } from '@canopy/core';
import { summarize, type Summary } from './stats.js';

export interface TimingPolicy {
  warmup: number;
  /** Fixed iteration count (`--iters`): no adaptivity. */
  fixedIters?: number;
  minIters: number;
  maxIters: number;
  /** Wall-clock budget for the timed part, in ms. */
  budgetMs: number;
  /** Target relative half-width of the median's confidence interval. */
  targetRelCi: number;
}

export const GPU_POLICY: TimingPolicy = { warmup: 10, minIters: 30, maxIters: 5000, budgetMs: 3000, targetRelCi: 0.02 };
// CPU-class runs take 10 ms to seconds and the default CPU run must finish in a couple of
// minutes: one warm-up run (on top of the verification run) and at least 3 timed ones.
export const CPU_POLICY: TimingPolicy = { warmup: 1, minIters: 3, maxIters: 30, budgetMs: 2500, targetRelCi: 0.02 };

export interface TimingOutcome extends Summary {
  iters: number;
  clock: 'gpu' | 'wall';
  /** Whether the stability target was met (false: stopped by the cap or the budget). */
  stable: boolean;
}

export async function timePlan(
  backend: AttentionBackend,
  plan: Plan,
  queries: Float32Array,
  policy: TimingPolicy,
  onProgress?: (done: number, target: number) => void,
): Promise<TimingOutcome> {
  const timeBatch = async (warmup: number, iters: number): Promise<TimingResult> => {
    if (backend.time) return backend.time(plan, queries, { warmup, iters });
    for (let i = 0; i < warmup; i++) await backend.run(plan, queries);
    const timesUs = new Float64Array(iters);
    for (let i = 0; i < iters; i++) {
      const s = performance.now();
      await backend.run(plan, queries);
      timesUs[i] = (performance.now() - s) * 1000;
    }
    return { timesUs, clock: 'wall' };
  };
  return timeWith(timeBatch, policy, onProgress);
}

/**
 * The adaptive loop over any timer: `timeBatch(warmup, iters)` returns `iters` per-iteration times
 * (warm-up only on the first call). Used for single plans and for `timeGroup` steps.
 */
export async function timeWith(
  timeBatch: (warmup: number, iters: number) => Promise<TimingResult>,
  policy: TimingPolicy,
  onProgress?: (done: number, target: number) => void,
): Promise<TimingOutcome> {
  const times: number[] = [];
  let clock: 'gpu' | 'wall' = 'wall';
  const t0 = performance.now();
  let first = true;
  const target = policy.fixedIters ?? policy.minIters;
  let next = target;
  for (;;) {
    const n = Math.max(1, next);
    const r = await timeBatch(first ? policy.warmup : 0, n);
    clock = r.clock;
    for (const t of r.timesUs) times.push(t);
    first = false;
    const s = summarize(times);
    const cap = policy.fixedIters ?? policy.maxIters;
    onProgress?.(times.length, policy.fixedIters ?? Math.max(times.length, Math.min(cap, times.length * 2)));
    const elapsed = performance.now() - t0;
    const stable = s.medianRelCi <= policy.targetRelCi;
    if (policy.fixedIters !== undefined || (times.length >= policy.minIters && stable) || times.length >= cap || elapsed >= policy.budgetMs) {
      return { ...s, iters: times.length, clock, stable };
    }
    // Double the sample, but not past the cap or (at the current median) the budget.
    const perIterMs = Math.max(1e-3, s.median / 1000);
    const left = Math.floor((policy.budgetMs - elapsed) / perIterMs);
    next = Math.max(1, Math.min(times.length, cap - times.length, left));
  }
}
