/** Planning-speed measurement (CPU): full build and incremental decode step. */
import type { BackendCapabilities, Batch, BatchRequest } from '@canopy/core';
import type { PrefixPlannerOptions } from './prefix.js';
import { clonePlannerState, createPlannerState, stepPlanner, type PlannerState, type StepDelta } from './state.js';

/**
 * The next decode step of a batch: every request gains one token. It goes into the request's last
 * page when that page has room and no other request uses the page; otherwise into a fresh page
 * (ids from `batch.numPages` upward, as copy-on-write would). Returns the new batch (numPages
 * grown as needed).
 */
export function nextDecodeBatch(batch: Batch): Batch {
  return nextDecodeStep(batch).batch;
}

/**
 * `nextDecodeBatch` with the step's account for `stepPlanner`'s `appended` delta: the requests
 * that started a new page and its id.
 */
export function nextDecodeStep(batch: Batch): { batch: Batch; appended: { newPageRequests: Int32Array; newPageIds: Int32Array } } {
  const users = new Map<number, number>();
  for (const r of batch.requests) for (let i = 0; i < r.pageIds.length; i++) users.set(r.pageIds[i], (users.get(r.pageIds[i]) ?? 0) + 1);
  let nextPage = batch.numPages;
  const newReq: number[] = [];
  const newIds: number[] = [];
  const requests: BatchRequest[] = batch.requests.map((r, i) => {
    const n = r.pageIds.length;
    const last = r.pageIds[n - 1];
    if (r.pageTokens[n - 1] < batch.pageSize && users.get(last) === 1) {
      const pageTokens = r.pageTokens.slice();
      pageTokens[n - 1]++;
      return { pageIds: r.pageIds, pageTokens, numQueries: 1 };
    }
    const pageIds = new Int32Array(n + 1);
    pageIds.set(r.pageIds);
    newReq.push(i);
    newIds.push(nextPage);
    pageIds[n] = nextPage++;
    const pageTokens = new Int32Array(n + 1);
    pageTokens.set(r.pageTokens);
    pageTokens[n] = 1;
    return { pageIds, pageTokens, numQueries: 1 };
  });
  return {
    batch: { config: batch.config, numPages: nextPage, pageSize: batch.pageSize, requests },
    appended: { newPageRequests: Int32Array.from(newReq), newPageIds: Int32Array.from(newIds) },
  };
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
  /** stepPlanner for an append-only decode step (`nextDecodeBatch`: every request gains one
   * token, nobody joins or leaves), from a state that has already stepped twice (its recycled
   * plan buffers hold the last two plans), µs. Each timed step runs on a fresh copy of that state
   * (copies made untimed, 16 at a time). */
  incrementalStepUs: Quantiles;
  /** The same step with the caller's account of it (`stepPlanner(state, next, { appended })`:
   * which requests started a new page), which spares reading the requests' page lists, µs. */
  incrementalStepAccountUs: Quantiles;
  /** stepPlanner for a step in which request 0 finishes and a fork of the last request joins
   * (tree update plus a full emit of the plan), µs. */
  joinFinishStepUs: Quantiles;
  /** The individual times (µs) behind each quantile set, when asked for with `keepSamples`. */
  samples?: { fullBuildUs: number[]; fullBuildTrustedUs: number[]; incrementalStepUs: number[]; incrementalStepAccountUs: number[]; joinFinishStepUs: number[] };
}

export function quantiles(xs: number[]): Quantiles {
  const s = xs.slice().sort((a, b) => a - b);
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
  return { median: at(0.5), p10: at(0.1), p90: at(0.9) };
}

const nowUs = (): number => (globalThis.performance ? globalThis.performance.now() * 1e3 : Date.now() * 1e3);

export function benchmarkPlanning(
  input: Batch,
  capabilities: BackendCapabilities,
  opts: { iters?: number; warmup?: number; options?: PrefixPlannerOptions; keepSamples?: boolean } = {},
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
  // Steady state: the replayed state has stepped twice already (batch → b1 → b2), so its two
  // plan buffers exist and hold the plans of the last two steps, as in a decode loop.
  const b1 = nextDecodeBatch(batch);
  const b2 = nextDecodeBatch(b1);
  const s3 = nextDecodeStep(b2);
  const b3 = s3.batch;
  const base = createPlannerState(batch, capabilities, opts.options);
  stepPlanner(base, b1);
  stepPlanner(base, b2);
  // Clones are made 16 at a time before their steps are timed, so that the garbage collection
  // the copies cause falls mostly outside the timed steps.
  const timeStep = (next: Batch, delta: StepDelta): number[] => {
    const out: number[] = [];
    const states: PlannerState[] = [];
    for (let i = 0; i < warmup + iters; ) {
      states.length = 0;
      for (let k = 0; k < 16; k++) states.push(clonePlannerState(base));
      for (let k = 0; k < 16 && i < warmup + iters; k++, i++) {
        const t0 = nowUs();
        stepPlanner(states[k], next, delta);
        const dt = nowUs() - t0;
        if (i >= warmup) out.push(dt);
      }
    }
    return out;
  };
  const step = timeStep(b3, {});
  const stepAccount = timeStep(b3, { appended: s3.appended });
  // A step where request 0 finishes and a request joins: a fork of the last request (its pages
  // up to its last one, then a fresh page of one token).
  const last = b3.requests[b3.requests.length - 1];
  const n = last.pageIds.length;
  const fork: BatchRequest = { pageIds: Int32Array.of(...last.pageIds.subarray(0, n - 1), b3.numPages), pageTokens: Int32Array.of(...last.pageTokens.subarray(0, n - 1), 1), numQueries: 1 };
  const joinBatch: Batch = { config: b3.config, numPages: b3.numPages + 1, pageSize: b3.pageSize, requests: [...b3.requests.slice(1), fork] };
  const join = timeStep(joinBatch, { finished: [0], joined: 1 });
  return { requests: batch.requests.length, explicitTreeDropped, iters, fullBuildUs: quantiles(full), fullBuildTrustedUs: quantiles(trusted), incrementalStepUs: quantiles(step), incrementalStepAccountUs: quantiles(stepAccount), joinFinishStepUs: quantiles(join), ...(opts.keepSamples ? { samples: { fullBuildUs: full, fullBuildTrustedUs: trusted, incrementalStepUs: step, incrementalStepAccountUs: stepAccount, joinFinishStepUs: join } } : {}) };
}
