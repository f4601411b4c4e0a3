import { mergePartials } from '@canopy/merge';
import { numQueriesOf, queryKvLimits, queryRequestMap, validateBatch, validateKvCache, validateQueries } from './batch.js';
import { gqaGroupSize, softmaxScale } from './config.js';
import { fail } from './errors.js';
import { kvToFloat32 } from './f16.js';
import { validatePlan } from './plan.js';
import {
  CONTRACT_VERSION,
  type AttentionBackend,
  type AttentionOutput,
  type BackendCapabilities,
  type BackendFactory,
  type Batch,
  type PagedKvCache,
  type Plan,
  type RunOptions,
  type TimingOptions,
  type GroupTimingOptions,
  type TimingResult,
} from './types.js';

// f16 pools are decoded once per cache object; references and the executor share the copy.
const decoded = new WeakMap<object, Float32Array>();
function asF32(arr: Uint16Array | Float32Array): Float32Array {
  let f = decoded.get(arr);
  if (!f) {
    f = kvToFloat32(arr);
    decoded.set(arr, f);
  }
  return f;
}

export interface ReferenceResult {
  /** `[rows, numQoHeads, headDim]`, rows in `queryIds` order. */
  out: Float64Array;
  /** `[rows, numQoHeads]` natural-log lse. */
  lse: Float64Array;
}

/**
 * Ground truth: float64 attention of each query over every KV token it sees (its request's
 * positions below its causal limit), with no plan and no merging. Independent of the planner and
 * of @canopy/merge on purpose: it is the oracle everything else is checked against.
 */
export function referenceAttention(
  batch: Batch,
  cache: PagedKvCache,
  queries: Float32Array,
  opts: { queryIds?: Int32Array } = {},
): ReferenceResult {
  validateBatch(batch);
  validateKvCache(cache, batch);
  validateQueries(queries, batch);
  const { numQoHeads: H, numKvHeads: HK, headDim: D } = batch.config;
  const group = gqaGroupSize(batch.config);
  const scale = softmaxScale(batch.config);
  const nq = numQueriesOf(batch);
  const ids = opts.queryIds ?? Int32Array.from({ length: nq }, (_, i) => i);
  const qr = queryRequestMap(batch);
  const lim = queryKvLimits(batch);
  const K = asF32(cache.k);
  const V = asF32(cache.v);
  const out = new Float64Array(ids.length * H * D);
  const lse = new Float64Array(ids.length * H);
  const acc = new Float64Array(D);
  let scores = new Float64Array(0);
  let rowBase = new Int32Array(0);
  ids.forEach((q, row) => {
    if (q < 0 || q >= nq) fail('bad-query-id', `referenceAttention: query id ${q} out of range [0, ${nq})`);
    const req = batch.requests[qr[q]];
    const L = lim[q];
    if (scores.length < L) {
      scores = new Float64Array(L);
      rowBase = new Int32Array(L);
    }
    // Token base offsets (in elements, head 0) for each visible position.
    let p = 0;
    for (let s = 0; s < req.pageIds.length && p < L; s++) {
      for (let j = 0; j < req.pageTokens[s] && p < L; j++, p++) {
        rowBase[p] = (req.pageIds[s] * cache.pageSize + j) * HK * D;
      }
    }
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      const qo = (q * H + h) * D;
      let m = Number.NEGATIVE_INFINITY;
      for (let t = 0; t < L; t++) {
        const ko = rowBase[t] + kvh * D;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += queries[qo + d] * K[ko + d];
        const sc = dot * scale;
        scores[t] = sc;
        if (sc > m) m = sc;
      }
      let sum = 0;
      acc.fill(0);
      for (let t = 0; t < L; t++) {
        const w = Math.exp(scores[t] - m);
        sum += w;
        const vo = rowBase[t] + kvh * D;
        for (let d = 0; d < D; d++) acc[d] += w * V[vo + d];
      }
      const ob = (row * H + h) * D;
      for (let d = 0; d < D; d++) out[ob + d] = acc[d] / sum;
      lse[row * H + h] = m + Math.log(sum);
    }
  });
  return { out, lse };
}

/** Capabilities of the reference executor: anything goes, slowly. */
export const REFERENCE_CAPABILITIES: BackendCapabilities = {
  kvDtypes: ['f16', 'f32'],
  headDims: [16, 32, 64, 80, 96, 128, 256],
  tileMenu: [
    { rows: 1, kvBlock: 64 },
    { rows: 16, kvBlock: 64 },
    { rows: 64, kvBlock: 64 },
    { rows: 128, kvBlock: 64 },
  ],
  masks: ['none', 'causal'],
  gpuTimers: false,
  parallelUnits: 1,
};

/**
 * Executes any valid plan on the CPU in float32 storage: each work item writes its partial states,
 * then @canopy/merge combines them. The embedded default backend, and the executor that proves a
 * plan's meaning matches `referenceAttention`.
 */
export class ReferenceBackend implements AttentionBackend {
  readonly name = 'reference';
  readonly contractVersion = CONTRACT_VERSION;
  readonly capabilities = REFERENCE_CAPABILITIES;
  readonly device = 'CPU (JavaScript reference executor)';
  private cache: PagedKvCache | undefined;
  private disposed = false;
  /** Skip validatePlan on every run (the bench validates once). */
  validate = true;

  async setKvCache(cache: PagedKvCache): Promise<void> {
    this.live();
    validateKvCache(cache);
    this.cache = cache;
  }

  private live(): void {
    if (this.disposed) fail('disposed', 'ReferenceBackend: used after dispose()');
  }

  async run(plan: Plan, queries: Float32Array, options: RunOptions = {}): Promise<AttentionOutput> {
    this.live();
    const cache = this.cache;
    if (!cache) fail('no-kv', 'ReferenceBackend.run: call setKvCache() first');
    const t0 = performance.now();
    const cfg = plan.config;
    if (cfg.numKvHeads !== cache.numKvHeads || cfg.headDim !== cache.headDim) {
      fail('shape-mismatch', `plan is for ${cfg.numKvHeads} KV heads × ${cfg.headDim} dims, the KV cache holds ${cache.numKvHeads} × ${cache.headDim}`);
    }
    const out: AttentionOutput = executePlanWithScale(plan, cache, queries, cfg.numQoHeads, gqaGroupSize(cfg), softmaxScale(cfg));
    if (options.timing) out.deviceTimeUs = (performance.now() - t0) * 1000;
    return out;
  }


  async time(plan: Plan, queries: Float32Array, options: TimingOptions): Promise<TimingResult> {
    return this.timeGroup([plan], [queries], { ...options, mode: 'serial' });
  }

  /** Plans run one after another (the host executor has nothing to overlap), whatever the mode. */
  async timeGroup(plans: Plan[], queries: Float32Array[], options: GroupTimingOptions): Promise<TimingResult> {
    if (plans.length === 0 || plans.length !== queries.length) {
      fail('bad-option', `timeGroup needs one query tensor per plan and at least one plan (got ${plans.length} plans, ${queries.length} query tensors)`);
    }
    const once = async () => {
      for (let p = 0; p < plans.length; p++) await this.run(plans[p], queries[p]);
    };
    for (let i = 0; i < options.warmup; i++) await once();
    const timesUs = new Float64Array(options.iters);
    for (let i = 0; i < options.iters; i++) {
      const t0 = performance.now();
      await once();
      timesUs[i] = (performance.now() - t0) * 1000;
    }
    return { timesUs, clock: 'wall' };
  }

  async dispose(): Promise<void> {
    this.cache = undefined;
    this.disposed = true;
  }
}

/**
 * Execute a plan in f32: per (item, query, head) an online-softmax pass over the item's visible
 * tokens, then the batched merge. Exposed for tests and for backends that want a CPU fallback.
 */
export function executePlanWithScale(
  plan: Plan,
  cache: PagedKvCache,
  queries: Float32Array,
  H: number,
  group: number,
  scale: number,
): AttentionOutput {
  const D = cache.headDim;
  const HK = cache.numKvHeads;
  const P = cache.pageSize;
  if (queries.length !== plan.numQueries * H * D) {
    fail('shape-mismatch', `queries have ${queries.length} values, the plan needs [${plan.numQueries}, ${H}, ${D}]`);
  }
  const K = asF32(cache.k);
  const V = asF32(cache.v);
  const partO = new Float32Array(plan.numPartials * H * D);
  const partLse = new Float32Array(plan.numPartials * H).fill(Number.NEGATIVE_INFINITY);
  const acc = new Float64Array(D);
  let base = new Int32Array(0);
  for (let i = 0; i < plan.numItems; i++) {
    // token element offsets of this item
    let T = 0;
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) T += plan.segTokens[s];
    if (base.length < T) base = new Int32Array(T);
    let k = 0;
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) {
      const page = plan.segPage[s];
      if (page < 0 || page >= cache.numPages) fail('page-out-of-range', `work item ${i}: page id ${page} out of range [0, ${cache.numPages})`);
      for (let j = 0; j < plan.segTokens[s]; j++) base[k++] = (page * P + plan.segSlot[s] + j) * HK * D;
    }
    const pos0 = plan.itemPos[i];
    for (let x = plan.itemQueryBegin[i]; x < plan.itemQueryBegin[i + 1]; x++) {
      const q = plan.itemQueries[x];
      const slot = plan.itemPartialBase[i] + (x - plan.itemQueryBegin[i]);
      const visible = Math.max(0, Math.min(T, plan.queryKvLimit[q] - pos0));
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        const qo = (q * H + h) * D;
        let m = Number.NEGATIVE_INFINITY;
        let sum = 0;
        acc.fill(0);
        for (let t = 0; t < visible; t++) {
          const ko = base[t] + kvh * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += queries[qo + d] * K[ko + d];
          const sc = Math.fround(dot * scale);
          if (sc > m) {
            const c = Math.exp(m - sc);
            sum *= c;
            for (let d = 0; d < D; d++) acc[d] *= c;
            m = sc;
          }
          const w = Math.exp(sc - m);
          sum += w;
          for (let d = 0; d < D; d++) acc[d] += w * V[ko + d];
        }
        const ob = (slot * H + h) * D;
        if (visible > 0) {
          for (let d = 0; d < D; d++) partO[ob + d] = acc[d] / sum;
          partLse[slot * H + h] = m + Math.log(sum);
        }
      }
    }
  }
  const out = new Float32Array(plan.numQueries * H * D);
  const lse = new Float32Array(plan.numQueries * H);
  mergePartials({ partO, partLse, numHeads: H, headDim: D, mergeBegin: plan.mergeBegin, mergeSlots: plan.mergeSlots, out, outLse: lse });
  return { out, lse };
}

export const referenceBackendFactory: BackendFactory = {
  name: 'reference',
  contractVersion: CONTRACT_VERSION,
  priority: 0,
  async probe() {
    return { available: true, reason: 'always available (JavaScript, float32)' };
  },
  async create() {
    return new ReferenceBackend();
  },
};

/** Validate a plan against a batch then execute it on the reference backend (convenience for tests). */
export async function runReference(batch: Batch, cache: PagedKvCache, plan: Plan, queries: Float32Array): Promise<AttentionOutput> {
  validatePlan(plan, batch);
  const b = new ReferenceBackend();
  await b.setKvCache(cache);
  try {
    return await b.run(plan, queries);
  } finally {
    await b.dispose();
  }
}
