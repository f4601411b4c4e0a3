/**
 * Hybrid prefill + decode steps (issue #7): the baselines a fused plan of the whole batch is
 * compared with. The batch is split into a prefill batch (requests with several queries: prefill
 * chunks) and a decode batch (the single-query requests); each is planned with the same planner
 * and the two plans are timed as one step with `backend.timeGroup`: 'serial' (back to back on one
 * queue or stream) and 'concurrent' (two streams, where the backend can overlap them).
 *
 * Both sub-plans are run and their outputs put back in the whole batch's query order, then
 * checked against the same reference sample as the fused plan: no time for a wrong result.
 */
import { validateBatch, type AttentionBackend, type Batch, type GroupMode, type Plan } from '@canopy/core';
import { isHybridBatch, splitHybridBatch } from '@canopy/planner';
import type { TimeInfo } from './records.js';
export type { HybridInfo } from './records.js';
import { timeWith, type TimingOutcome, type TimingPolicy } from './timing.js';

export interface SubBatch {
  kind: 'prefill' | 'decode';
  batch: Batch;
  /** Request indices of the whole batch, in order. */
  requests: number[];
  /** Query ids of the whole batch this sub-batch's queries are, in order. */
  queryIds: Int32Array;
  /** The sub-batch's query tensor (rows of the whole batch's). */
  queries: Float32Array;
}

/** The prefill and decode halves of a batch, or null when it is not hybrid (one kind only). The
 * split is the planner's own (`splitHybridBatch`: requests with several queries are prefill). */
export function splitHybrid(batch: Batch, queries: Float32Array): [SubBatch, SubBatch] | null {
  if (!isHybridBatch(batch)) return null;
  const row = batch.config.numQoHeads * batch.config.headDim;
  const kinds = ['prefill', 'decode'] as const;
  const [pre, dec] = splitHybridBatch(batch).map((part, k): SubBatch => {
    validateBatch(part.batch);
    const qs = new Float32Array(part.queryIds.length * row);
    part.queryIds.forEach((q, j) => qs.set(queries.subarray(q * row, (q + 1) * row), j * row));
    return { kind: kinds[k], batch: part.batch, requests: part.requests, queryIds: part.queryIds, queries: qs };
  });
  return [pre, dec];
}

/** Put the sub-batches' outputs back into the whole batch's query order. */
export function combineOutputs(batch: Batch, parts: SubBatch[], outs: Array<{ out: Float32Array; lse: Float32Array }>, numQueries: number): { out: Float32Array; lse: Float32Array } {
  const H = batch.config.numQoHeads;
  const row = H * batch.config.headDim;
  const out = new Float32Array(numQueries * row).fill(Number.NaN);
  const lse = new Float32Array(numQueries * H).fill(Number.NaN);
  parts.forEach((p, k) => {
    const o = outs[k];
    p.queryIds.forEach((q, j) => {
      out.set(o.out.subarray(j * row, (j + 1) * row), q * row);
      lse.set(o.lse.subarray(j * H, (j + 1) * H), q * H);
    });
  });
  return { out, lse };
}

/** Time the plans as one step with `timeGroup` under the bench's adaptive policy. */
export function timeGroupPlans(
  backend: AttentionBackend,
  plans: Plan[],
  queries: Float32Array[],
  mode: GroupMode,
  policy: TimingPolicy,
  onProgress?: (done: number, target: number) => void,
): Promise<TimingOutcome> {
  const tg = backend.timeGroup?.bind(backend);
  if (!tg) throw new Error(`${backend.name} has no timeGroup`);
  return timeWith((warmup, iters) => tg(plans, queries, { warmup, iters, mode }), policy, onProgress);
}

export function timeInfo(t: TimingOutcome): TimeInfo {
  return { median: t.median, p10: t.p10, p90: t.p90, min: t.min, iters: t.iters, clock: t.clock, medianRelCi: Number.isFinite(t.medianRelCi) ? t.medianRelCi : -1, stable: t.stable };
}
