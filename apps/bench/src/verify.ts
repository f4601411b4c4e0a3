/**
 * Checking a backend's output against `referenceAttention` (float64, no plan) before any time is
 * reported. The reference reads the very same KV pools (f16 pools are decoded exactly), so the
 * only differences are the backend's arithmetic.
 *
 * Which queries: all of them when the check is cheap (Σ visible tokens × query heads × head dim
 * ≤ 2^28 multiply-adds), otherwise 64 queries spread evenly over the batch, always including the
 * first and the last (query i·(Q-1)/63, rounded, for i = 0..63). A batch that mixes prefill chunks
 * (requests with several queries) and single-query requests would get nearly all of an even sample
 * from the chunks (H1: 2048 of 2176 queries), so it is sampled per kind instead: 32 queries spread
 * evenly over the prefill queries and 32 over the others (fewer of one kind: all of it, the rest
 * from the other), first and last of each included ('mixed-64').
 *
 * Tolerance: with s = max |reference out| over the checked rows,
 *   f16 KV: max |out - ref| ≤ 2e-3 · s and max |lse - ref lse| ≤ 2e-3 · max(1, max |ref lse|)
 *   f32 KV: the same with 1e-4.
 * (f16 kernels may round P or Q to f16: 2^-11 relative per product; f32 kernels should not.)
 * Any NaN or infinity fails.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { referenceAttention, type Batch, type KvDtype, type PagedKvCache, numQueriesOf, queryKvLimits } from '@canopy/core';

export const SAMPLE_QUERIES = 64;
export const FULL_CHECK_BUDGET = 2 ** 28;

export function toleranceFor(dtype: KvDtype): number {
  return dtype === 'f16' ? 2e-3 : 1e-4;
}

export type SampleMode = 'all' | 'sample' | 'mixed';

/** `n` of `from` spread evenly, first and last included. */
function spread(from: number[], n: number): number[] {
  if (n >= from.length) return from;
  if (n === 1) return [from[0]];
  return Array.from({ length: n }, (_, i) => from[Math.round((i * (from.length - 1)) / (n - 1))]);
}

export function verificationQueries(batch: Batch): { ids: Int32Array; mode: SampleMode } {
  const Q = numQueriesOf(batch);
  const lim = queryKvLimits(batch);
  let visible = 0;
  for (let q = 0; q < Q; q++) visible += lim[q];
  const cost = visible * batch.config.numQoHeads * batch.config.headDim;
  if (Q <= SAMPLE_QUERIES || cost <= FULL_CHECK_BUDGET) return { ids: Int32Array.from({ length: Q }, (_, i) => i), mode: 'all' };
  const prefill: number[] = [];
  const single: number[] = [];
  let q = 0;
  for (const r of batch.requests) for (let j = 0; j < r.numQueries; j++, q++) (r.numQueries > 1 ? prefill : single).push(q);
  if (prefill.length > 0 && single.length > 0) {
    const half = SAMPLE_QUERIES / 2;
    const nPre = Math.min(prefill.length, Math.max(half, SAMPLE_QUERIES - single.length));
    const nOne = Math.min(single.length, SAMPLE_QUERIES - nPre);
    const ids = Int32Array.from([...spread(prefill, nPre), ...spread(single, nOne)]).sort();
    return { ids, mode: 'mixed' };
  }
  const ids = new Int32Array(SAMPLE_QUERIES);
  for (let i = 0; i < SAMPLE_QUERIES; i++) ids[i] = Math.round((i * (Q - 1)) / (SAMPLE_QUERIES - 1));
  return { ids, mode: 'sample' };
}

export interface ReferenceSample {
  ids: Int32Array;
  mode: SampleMode;
  out: Float64Array;
  lse: Float64Array;
}

export function referenceSample(batch: Batch, cache: PagedKvCache, queries: Float32Array): ReferenceSample {
  const { ids, mode } = verificationQueries(batch);
  const r = referenceAttention(batch, cache, queries, { queryIds: ids });
  return { ids, mode, out: r.out, lse: r.lse };
}

/** The worker file beside this module (dist/ or the bundle); absent when running from sources. */
function workerUrl(): URL | undefined {
  for (const name of ['./verify-worker.mjs', './verify-worker.js']) {
    try {
      const u = new URL(name, import.meta.url);
      if (u.protocol === 'file:' && existsSync(fileURLToPath(u))) return u;
    } catch {
      /* not a file URL */
    }
  }
  return undefined;
}

function toShared<T extends Uint16Array | Float32Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const sab = new SharedArrayBuffer(a.byteLength);
  const copy = (a instanceof Float32Array ? new Float32Array(sab) : new Uint16Array(sab)) as T;
  copy.set(a);
  return copy;
}

/**
 * How many worker threads to check with: the reference is float64 JavaScript, and on the largest
 * workloads (W5: 17 GFLOP for 64 queries) one thread takes most of a GPU run's wall time. Each
 * worker decodes the pools to f32 for itself, so workers × (K + V in f32) stays under 8 GiB.
 * `CANOPY_VERIFY_WORKERS=N` overrides (0 or 1: in this thread).
 */
export function verifyWorkerCount(batch: Batch, cache: PagedKvCache, sampleCost: number): number {
  const env = typeof process !== 'undefined' ? process.env.CANOPY_VERIFY_WORKERS : undefined;
  if (env !== undefined && env !== '') return Math.max(0, Math.floor(Number(env)) || 0);
  if (sampleCost < 2 ** 30) return 0;
  const f32Bytes = 2 * cache.k.length * 4;
  const byMemory = Math.floor((8 * 2 ** 30) / Math.max(1, f32Bytes));
  return Math.max(0, Math.min(8, availableParallelism() - 1, byMemory));
}

/** `referenceSample`, spread over worker threads when that pays (see verifyWorkerCount). */
export async function referenceSampleAsync(batch: Batch, cache: PagedKvCache, queries: Float32Array, onNote?: (s: string) => void): Promise<ReferenceSample> {
  const { ids, mode } = verificationQueries(batch);
  const lim = queryKvLimits(batch);
  let visible = 0;
  for (const q of ids) visible += lim[q];
  const cost = visible * batch.config.numQoHeads * batch.config.headDim;
  const n = Math.min(verifyWorkerCount(batch, cache, cost), ids.length);
  const url = n >= 2 ? workerUrl() : undefined;
  if (!url) {
    const r = referenceAttention(batch, cache, queries, { queryIds: ids });
    return { ids, mode, out: r.out, lse: r.lse };
  }
  onNote?.(`verifying ${ids.length} queries with ${n} worker threads`);
  const shared: PagedKvCache = { ...cache, k: toShared(cache.k), v: toShared(cache.v) };
  const { numQoHeads: H, headDim: D } = batch.config;
  const out = new Float64Array(ids.length * H * D);
  const lse = new Float64Array(ids.length * H);
  // Contiguous slices of the sample, one per worker.
  const jobs = Array.from({ length: n }, (_, w) => {
    const a = Math.floor((w * ids.length) / n);
    const b = Math.floor(((w + 1) * ids.length) / n);
    return { a, b };
  });
  await Promise.all(
    jobs.map(
      ({ a, b }) =>
        new Promise<void>((resolveJob, rejectJob) => {
          const worker = new Worker(url, { workerData: { canopyVerify: true, job: { batch, cache: shared, queries, ids: ids.slice(a, b) } } });
          worker.once('message', (m: { out: Float64Array; lse: Float64Array }) => {
            out.set(m.out, a * H * D);
            lse.set(m.lse, a * H);
            resolveJob();
            void worker.terminate();
          });
          worker.once('error', rejectJob);
          worker.once('exit', (code) => {
            if (code !== 0) rejectJob(new Error(`verification worker exited with code ${code}`));
          });
        }),
    ),
  );
  return { ids, mode, out, lse };
}

export interface Verification {
  passed: boolean;
  maxAbsError: number;
  /** maxAbsError / max |reference out|. */
  maxRelError: number;
  lseMaxAbsError: number;
  checkedQueries: number;
  totalQueries: number;
  /** 'mixed-64': 32 prefill-chunk queries and 32 others, each kind spread evenly. */
  sample: 'all' | 'even-64' | 'mixed-64';
  tolerance: number;
  /** Why it failed (first offending value), when it did. */
  detail?: string;
}

export function verify(batch: Batch, ref: ReferenceSample, out: Float32Array, lse: Float32Array): Verification {
  const { numQoHeads: H, headDim: D, kvDtype } = batch.config;
  const Q = numQueriesOf(batch);
  const tol = toleranceFor(kvDtype);
  let maxRef = 0;
  for (let i = 0; i < ref.out.length; i++) maxRef = Math.max(maxRef, Math.abs(ref.out[i]));
  let maxRefLse = 0;
  for (let i = 0; i < ref.lse.length; i++) maxRefLse = Math.max(maxRefLse, Math.abs(ref.lse[i]));
  let maxAbs = 0;
  let lseMax = 0;
  let detail: string | undefined;
  const shapeOk = out.length === Q * H * D && lse.length === Q * H;
  if (!shapeOk) {
    detail = `output has ${out.length} values and lse ${lse.length}; expected [${Q}, ${H}, ${D}] and [${Q}, ${H}]`;
  } else {
    for (let k = 0; k < ref.ids.length && !detail; k++) {
      const q = ref.ids[k];
      for (let h = 0; h < H; h++) {
        const got = lse[q * H + h];
        const want = ref.lse[k * H + h];
        const e = Math.abs(got - want);
        if (!Number.isFinite(got)) {
          detail = `query ${q} head ${h}: lse is ${got}`;
          break;
        }
        if (e > lseMax) lseMax = e;
        for (let d = 0; d < D; d++) {
          const g = out[(q * H + h) * D + d];
          if (!Number.isFinite(g)) {
            detail = `query ${q} head ${h} dim ${d}: output is ${g}`;
            break;
          }
          const err = Math.abs(g - ref.out[(k * H + h) * D + d]);
          if (err > maxAbs) maxAbs = err;
        }
        if (detail) break;
      }
    }
  }
  const maxRel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
  const lseTol = tol * Math.max(1, maxRefLse);
  if (!detail && maxRel > tol) detail = `max |out - reference| = ${maxAbs.toExponential(3)} is ${maxRel.toExponential(3)} of max |reference| (tolerance ${tol})`;
  if (!detail && lseMax > lseTol) detail = `max |lse - reference lse| = ${lseMax.toExponential(3)} (tolerance ${lseTol.toExponential(3)})`;
  return {
    passed: !detail,
    maxAbsError: maxAbs,
    maxRelError: maxRel,
    lseMaxAbsError: lseMax,
    checkedQueries: ref.ids.length,
    totalQueries: Q,
    sample: ref.mode === 'all' ? 'all' : ref.mode === 'mixed' ? 'mixed-64' : 'even-64',
    tolerance: tol,
    ...(detail ? { detail } : {}),
  };
}
