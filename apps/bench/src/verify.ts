/**
 * Checking a backend's output against `referenceAttention` (float64, no plan) before any time is
 * reported. The reference reads the very same KV pools (f16 pools are decoded exactly), so the
 * only differences are the backend's arithmetic.
 *
 * Which queries: all of them when the check is cheap (Σ visible tokens × query heads × head dim
 * ≤ 2^28 multiply-adds), otherwise 64 queries spread evenly over the batch, always including the
 * first and the last (query i·(Q-1)/63, rounded, for i = 0..63).
 *
 * Tolerance: with s = max |reference out| over the checked rows,
 *   f16 KV: max |out - ref| ≤ 2e-3 · s and max |lse - ref lse| ≤ 2e-3 · max(1, max |ref lse|)
 *   f32 KV: the same with 1e-4.
 * (f16 kernels may round P or Q to f16: 2^-11 relative per product; f32 kernels should not.)
 * Any NaN or infinity fails.
 */
import { referenceAttention, type Batch, type KvDtype, type PagedKvCache, numQueriesOf, queryKvLimits } from '@canopy/core';

export const SAMPLE_QUERIES = 64;
export const FULL_CHECK_BUDGET = 2 ** 28;

export function toleranceFor(dtype: KvDtype): number {
  return dtype === 'f16' ? 2e-3 : 1e-4;
}

export function verificationQueries(batch: Batch): { ids: Int32Array; mode: 'all' | 'sample' } {
  const Q = numQueriesOf(batch);
  const lim = queryKvLimits(batch);
  let visible = 0;
  for (let q = 0; q < Q; q++) visible += lim[q];
  const cost = visible * batch.config.numQoHeads * batch.config.headDim;
  if (Q <= SAMPLE_QUERIES || cost <= FULL_CHECK_BUDGET) return { ids: Int32Array.from({ length: Q }, (_, i) => i), mode: 'all' };
  const ids = new Int32Array(SAMPLE_QUERIES);
  for (let i = 0; i < SAMPLE_QUERIES; i++) ids[i] = Math.round((i * (Q - 1)) / (SAMPLE_QUERIES - 1));
  return { ids, mode: 'sample' };
}

export interface ReferenceSample {
  ids: Int32Array;
  mode: 'all' | 'sample';
  out: Float64Array;
  lse: Float64Array;
}

export function referenceSample(batch: Batch, cache: PagedKvCache, queries: Float32Array): ReferenceSample {
  const { ids, mode } = verificationQueries(batch);
  const r = referenceAttention(batch, cache, queries, { queryIds: ids });
  return { ids, mode, out: r.out, lse: r.lse };
}

export interface Verification {
  passed: boolean;
  maxAbsError: number;
  /** maxAbsError / max |reference out|. */
  maxRelError: number;
  lseMaxAbsError: number;
  checkedQueries: number;
  totalQueries: number;
  sample: 'all' | 'even-64';
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
    sample: ref.mode === 'all' ? 'all' : 'even-64',
    tolerance: tol,
    ...(detail ? { detail } : {}),
  };
}
