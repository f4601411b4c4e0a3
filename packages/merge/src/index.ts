/**
 * Online-softmax merge of partial attention states.
 *
 * A partial state covers a subset S of a query's KV tokens: `lse = log Σ_{j∈S} exp(s_j)` (natural
 * log of the sum of exponentials of the scaled scores s_j = scale · q·k_j) and
 * `o = Σ_{j∈S} softmax_S(s)_j · v_j`, the attention output restricted to S.
 * Two states over disjoint sets merge exactly into the state over their union:
 *
 *   lse = m + log(exp(lse_a - m) + exp(lse_b - m)),   m = max(lse_a, lse_b)
 *   o   = exp(lse_a - lse) · o_a + exp(lse_b - lse) · o_b
 *
 * The empty state (lse = -Infinity, o = 0) is the identity. Merging two empty states must give the
 * empty state, not NaN: with m = -Infinity the naive formula computes (-Inf) - (-Inf) = NaN.
 *
 * Base-2 lse: kernels that use exp2 (scores pre-multiplied by log2(e)) produce
 * `lse2 = log2 Σ 2^(s_j · log2 e)`. Convert with `lse = lse2 · ln 2` (see `lse2ToNatural`).
 */

export interface PartialState {
  o: Float64Array | Float32Array;
  lse: number;
}

export class MergeError extends Error {
  override name = 'MergeError';
}

/** The identity of merging: no tokens seen. */
export function emptyState(dim: number): PartialState {
  return { o: new Float64Array(dim), lse: Number.NEGATIVE_INFINITY };
}

/** Convert a base-2 log-sum-exp (as written by exp2-based kernels) to natural log. */
export function lse2ToNatural(lse2: number): number {
  return lse2 * Math.LN2;
}

/** Convert a natural-log lse to base 2. */
export function naturalToLse2(lse: number): number {
  return lse * Math.LOG2E;
}

function checkState(s: PartialState, what: string): void {
  if (Number.isNaN(s.lse) || s.lse === Number.POSITIVE_INFINITY) {
    throw new MergeError(`${what}: lse is ${s.lse}; a partial state's lse must be finite or -Infinity (empty)`);
  }
  const o = s.o;
  for (let d = 0; d < o.length; d++) {
    if (!Number.isFinite(o[d])) {
      throw new MergeError(`${what}: o[${d}] is ${o[d]}; partial outputs must be finite`);
    }
  }
}

/** Merge two partial states over disjoint token sets. Returns a new Float64 state. */
export function mergeStates(a: PartialState, b: PartialState): PartialState {
  if (a.o.length !== b.o.length) {
    throw new MergeError(`mergeStates: head dims differ (${a.o.length} vs ${b.o.length})`);
  }
  checkState(a, 'mergeStates(a)');
  checkState(b, 'mergeStates(b)');
  const dim = a.o.length;
  const o = new Float64Array(dim);
  if (a.lse === Number.NEGATIVE_INFINITY && b.lse === Number.NEGATIVE_INFINITY) {
    return { o, lse: Number.NEGATIVE_INFINITY };
  }
  const m = Math.max(a.lse, b.lse);
  const wa = Math.exp(a.lse - m); // exp(-Inf) = 0 for an empty side
  const wb = Math.exp(b.lse - m);
  const sum = wa + wb;
  const lse = m + Math.log(sum);
  const ca = wa / sum;
  const cb = wb / sum;
  for (let d = 0; d < dim; d++) o[d] = ca * a.o[d] + cb * b.o[d];
  return { o, lse };
}

/** Merge any number of states (order-independent up to rounding). Empty input → error. */
export function mergeMany(states: readonly PartialState[]): PartialState {
  if (states.length === 0) throw new MergeError('mergeMany: no states given (pass emptyState(dim) for none)');
  const dim = states[0].o.length;
  let m = Number.NEGATIVE_INFINITY;
  states.forEach((s, i) => {
    if (s.o.length !== dim) throw new MergeError(`mergeMany: state ${i} has dim ${s.o.length}, expected ${dim}`);
    checkState(s, `mergeMany(states[${i}])`);
    if (s.lse > m) m = s.lse;
  });
  const o = new Float64Array(dim);
  if (m === Number.NEGATIVE_INFINITY) return { o, lse: m };
  let sum = 0;
  for (const s of states) sum += Math.exp(s.lse - m);
  for (const s of states) {
    const c = Math.exp(s.lse - m) / sum;
    if (c === 0) continue;
    for (let d = 0; d < dim; d++) o[d] += c * s.o[d];
  }
  return { o, lse: m + Math.log(sum) };
}

export interface MergePartialsArgs {
  /** `[numPartials, numHeads, headDim]` partial outputs. */
  partO: Float32Array | Float64Array;
  /** `[numPartials, numHeads]` partial lse (natural log; -Infinity for empty). */
  partLse: Float32Array | Float64Array;
  numHeads: number;
  headDim: number;
  /** Query q merges slots `mergeSlots[mergeBegin[q] .. mergeBegin[q + 1])`. */
  mergeBegin: Int32Array;
  mergeSlots: Int32Array;
  /** `[numQueries, numHeads, headDim]` output, written. */
  out: Float32Array | Float64Array;
  /** `[numQueries, numHeads]` output lse, written. */
  outLse: Float32Array | Float64Array;
}

/**
 * Batched merge over flat arrays, as backends and the reference executor use it: for each query
 * and head, merge the listed partial slots into `out`/`outLse`. A query with no slots gets the
 * empty state (o = 0, lse = -Infinity). NaN in an input lse or output raises a MergeError naming
 * the slot.
 */
export function mergePartials(args: MergePartialsArgs): void {
  const { partO, partLse, numHeads: H, headDim: D, mergeBegin, mergeSlots, out, outLse } = args;
  const numQueries = mergeBegin.length - 1;
  const numPartials = partLse.length / H;
  if (partO.length !== numPartials * H * D) {
    throw new MergeError(`mergePartials: partO has ${partO.length} values, expected ${numPartials}×${H}×${D}`);
  }
  if (out.length < numQueries * H * D || outLse.length < numQueries * H) {
    throw new MergeError(`mergePartials: outputs too small for ${numQueries} queries × ${H} heads × ${D}`);
  }
  for (let q = 0; q < numQueries; q++) {
    const b = mergeBegin[q];
    const e = mergeBegin[q + 1];
    for (let h = 0; h < H; h++) {
      let m = Number.NEGATIVE_INFINITY;
      for (let k = b; k < e; k++) {
        const slot = mergeSlots[k];
        if (slot < 0 || slot >= numPartials) {
          throw new MergeError(`mergePartials: query ${q} lists slot ${slot}, outside [0, ${numPartials})`);
        }
        const l = partLse[slot * H + h];
        if (Number.isNaN(l) || l === Number.POSITIVE_INFINITY) {
          throw new MergeError(`mergePartials: partial slot ${slot} head ${h} has lse ${l}`);
        }
        if (l > m) m = l;
      }
      const ob = (q * H + h) * D;
      if (m === Number.NEGATIVE_INFINITY) {
        for (let d = 0; d < D; d++) out[ob + d] = 0;
        outLse[q * H + h] = m;
        continue;
      }
      let sum = 0;
      for (let k = b; k < e; k++) sum += Math.exp(partLse[mergeSlots[k] * H + h] - m);
      for (let d = 0; d < D; d++) out[ob + d] = 0;
      for (let k = b; k < e; k++) {
        const slot = mergeSlots[k];
        const c = Math.exp(partLse[slot * H + h] - m) / sum;
        if (c === 0) continue;
        const pb = (slot * H + h) * D;
        for (let d = 0; d < D; d++) {
          const v = partO[pb + d];
          if (!Number.isFinite(v)) {
            throw new MergeError(`mergePartials: partial slot ${slot} head ${h} has o[${d}] = ${v}`);
          }
          out[ob + d] += c * v;
        }
      }
      outLse[q * H + h] = m + Math.log(sum);
    }
  }
}
