/** Planning-speed measurement (CPU): full build and incremental decode step. */
import type { BackendCapabilities, Batch, BatchRequest } from '@canopy/core';
import type { PrefixPlannerOptions } from './prefix.js';
import { clonePlannerState, createPlannerState, stepPlanner } from './state.js';

/**
 * The next decode step of a batch: every request gains one token. It goes into the request's last
 * page when that page has room and no other request uses the page; otherwise into a fresh page
 * (ids from `batch.numPages` upward, as copy-on-write would). Returns the new batch (numPages
 * grown as needed).
 */
export function nextDecodeBatch(batch: Batch): Batch {
  const users = new Map<number, number>();
  for (const r of batch.requests) for (let i = 0; i < r.pageIds.length; i++) users.set(r.pageIds[i], (users.get(r.pageIds[i]) ?? 0) + 1);
  let nextPage = batch.numPages;
  const requests: BatchRequest[] = batch.requests.map((r) => {
    const n = r.pageIds.length;
    const last = r.pageIds[n - 1];
    if (r.pageTokens[n - 1] < batch.pageSize && users.get(last) === 1) {
      const pageTokens = r.pageTokens.slice();
      pageTokens[n - 1]++;
      return { pageIds: r.pageIds, pageTokens, numQueries: 1 };
    }
    const pageIds = new Int32Array(n + 1);
    pageIds.set(r.pageIds);
    pageIds[n] = nextPage++;
    const pageTokens = new Int32Array(n + 1);
    pageTokens.set(r.pageTokens);
    pageTokens[n] = 1;
    return { pageIds, pageTokens, numQueries: 1 };
  });
  return { config: batch.config, numPages: nextPage, pageSize: batch.pageSize, requests };
}

export interface Quantiles {
  median: number;
  p10: number;
  p90: number;
}

export interface PlanningBenchmark {
  requests: number;
  /** True when the batch carried an explicit tree: it is planned from its page lists instead
   * (the decode path; explicit trees make every step a full build). */
  explicitTreeDropped: boolean;
  iters: number;
  /** createPlannerState: radix tree + plan, µs (every page compared). */
  fullBuildUs: Quantiles;
  /** The same with `trustPageIds` (divergence found by binary search), µs. */
  fullBuildTrustedUs: Quantiles;
  /** stepPlanner from the state of `batch` to `nextDecodeBatch(batch)` (no request joins or
   * leaves), µs. The state is cloned before each timed step (not timed). */
  incrementalStepUs: Quantiles;
}

function quantiles(xs: number[]): Quantiles {
  const s = xs.slice().sort((a, b) => a - b);
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
  return { median: at(0.5), p10: at(0.1), p90: at(0.9) };
}

const nowUs = (): number => (globalThis.performance ? globalThis.performance.now() * 1e3 : Date.now() * 1e3);

export function benchmarkPlanning(
  input: Batch,
  capabilities: BackendCapabilities,
  opts: { iters?: number; warmup?: number; options?: PrefixPlannerOptions } = {},
): PlanningBenchmark {
  const explicitTreeDropped = input.tree !== undefined;
  let batch = input;
  if (explicitTreeDropped) batch = { config: batch.config, numPages: batch.numPages, pageSize: batch.pageSize, requests: batch.requests };
  const iters = opts.iters ?? 200;
  const warmup = opts.warmup ?? Math.min(50, iters);
  const next = nextDecodeBatch(batch);
  const full: number[] = [];
  for (let i = 0; i < warmup + iters; i++) {
    const t0 = nowUs();
    createPlannerState(batch, capabilities, opts.options);
    const dt = nowUs() - t0;
    if (i >= warmup) full.push(dt);
  }
  const trusted: number[] = [];
  const topts = { ...opts.options, trustPageIds: true };
  for (let i = 0; i < warmup + iters; i++) {
    const t0 = nowUs();
    createPlannerState(batch, capabilities, topts);
    const dt = nowUs() - t0;
    if (i >= warmup) trusted.push(dt);
  }
  const base = createPlannerState(batch, capabilities, opts.options);
  // Steady state: a state that has stepped before owns its two plan buffers (see
  // PrefixPlannerOptions.recyclePlans); give the replayed state buffers of that size.
  const warm = clonePlannerState(base);
  stepPlanner(warm, next);
  base.planBuffers = warm.planBuffers.map((b) => new Int32Array(b.length));
  const step: number[] = [];
  for (let i = 0; i < warmup + iters; i++) {
    const s = clonePlannerState(base);
    const t0 = nowUs();
    stepPlanner(s, next);
    const dt = nowUs() - t0;
    if (i >= warmup) step.push(dt);
  }
  return { requests: batch.requests.length, explicitTreeDropped, iters, fullBuildUs: quantiles(full), fullBuildTrustedUs: quantiles(trusted), incrementalStepUs: quantiles(step) };
}
