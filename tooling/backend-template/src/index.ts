/**
 * A minimal, correct Canopy backend written against @canopy/core alone. Copy this package,
 * rename it, then make `run` fast: the straightforward loops below are the specification your
 * version must keep matching (the conformance kit in test/ checks it against float64 ground truth).
 */
import {
  CanopyError,
  CONTRACT_VERSION,
  gqaGroupSize,
  kvToFloat32,
  softmaxScale,
  validateKvCache,
  type AttentionBackend,
  type AttentionOutput,
  type BackendCapabilities,
  type BackendFactory,
  type PagedKvCache,
  type Plan,
  type RunOptions,
} from '@canopy/core';

/** What planners may ask of this backend. Be honest: the kit skips cases outside it and says why. */
export const TEMPLATE_CAPABILITIES: BackendCapabilities = {
  kvDtypes: ['f16', 'f32'],
  headDims: [16, 32, 64, 80, 96, 128, 256],
  // One tile: this backend has a single loop nest. A real one lists the shapes it has kernels for.
  tileMenu: [{ rows: 16, kvBlock: 64 }],
  masks: ['none', 'causal'],
  gpuTimers: false,
  parallelUnits: 1,
};

export class TemplateBackend implements AttentionBackend {
  readonly name = 'template';
  readonly contractVersion = CONTRACT_VERSION;
  readonly capabilities = TEMPLATE_CAPABILITIES;
  readonly device = 'CPU (template backend, plain JavaScript)';
  private kv: { k: Float32Array; v: Float32Array; cache: PagedKvCache } | undefined;
  private disposed = false;

  async setKvCache(cache: PagedKvCache): Promise<void> {
    if (this.disposed) throw new CanopyError('disposed', 'template: backend used after dispose()');
    validateKvCache(cache);
    // Decode/copy now ("upload"): the caller may reuse its arrays after this resolves.
    this.kv = { k: Float32Array.from(kvToFloat32(cache.k)), v: Float32Array.from(kvToFloat32(cache.v)), cache };
  }

  async run(plan: Plan, queries: Float32Array, options: RunOptions = {}): Promise<AttentionOutput> {
    if (this.disposed) throw new CanopyError('disposed', 'template: backend used after dispose()');
    const kv = this.kv;
    if (!kv) throw new CanopyError('no-kv', 'template: call setKvCache() before run()');
    const t0 = performance.now();
    const { numQoHeads: H, numKvHeads: HK, headDim: D } = plan.config;
    if (HK !== kv.cache.numKvHeads || D !== kv.cache.headDim) {
      throw new CanopyError('shape-mismatch', `template: plan is for ${HK} KV heads × ${D} dims, the KV cache holds ${kv.cache.numKvHeads} × ${kv.cache.headDim}`);
    }
    if (queries.length !== plan.numQueries * H * D) {
      throw new CanopyError('shape-mismatch', `template: queries have ${queries.length} values, the plan needs [${plan.numQueries}, ${H}, ${D}]`);
    }
    const group = gqaGroupSize(plan.config);
    const scale = softmaxScale(plan.config);
    const P = kv.cache.pageSize;

    // 1. Work items → partial states (o, lse) in their partial slots.
    const partO = new Float32Array(plan.numPartials * H * D);
    const partLse = new Float32Array(plan.numPartials * H).fill(-Infinity);
    const acc = new Float64Array(D);
    for (let i = 0; i < plan.numItems; i++) {
      // The item's tokens, in order: element offset of (token, KV head 0, dim 0) in the pools.
      const tokens: number[] = [];
      for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) {
        const page = plan.segPage[s];
        if (page < 0 || page >= kv.cache.numPages) throw new CanopyError('page-out-of-range', `template: work item ${i} reads page ${page}, outside [0, ${kv.cache.numPages})`);
        for (let j = 0; j < plan.segTokens[s]; j++) tokens.push((page * P + plan.segSlot[s] + j) * HK * D);
      }
      for (let x = plan.itemQueryBegin[i]; x < plan.itemQueryBegin[i + 1]; x++) {
        const q = plan.itemQueries[x];
        const slot = plan.itemPartialBase[i] + (x - plan.itemQueryBegin[i]);
        // Causal masking: the item's token t sits at position itemPos[i] + t; q sees positions < queryKvLimit[q].
        const visible = Math.max(0, Math.min(tokens.length, plan.queryKvLimit[q] - plan.itemPos[i]));
        for (let h = 0; h < H; h++) {
          const kvOff = Math.floor(h / group) * D; // GQA: query head h reads KV head h / group
          const qo = (q * H + h) * D;
          let m = -Infinity;
          let sum = 0;
          acc.fill(0);
          for (let t = 0; t < visible; t++) {
            const ko = tokens[t] + kvOff;
            let dot = 0;
            for (let d = 0; d < D; d++) dot += queries[qo + d] * kv.k[ko + d];
            const s = dot * scale;
            if (s > m) {
              // online softmax: rescale what was accumulated under the old maximum
              const c = Math.exp(m - s);
              sum *= c;
              for (let d = 0; d < D; d++) acc[d] *= c;
              m = s;
            }
            const w = Math.exp(s - m);
            sum += w;
            for (let d = 0; d < D; d++) acc[d] += w * kv.v[ko + d];
          }
          if (visible > 0) {
            const ob = (slot * H + h) * D;
            for (let d = 0; d < D; d++) partO[ob + d] = acc[d] / sum;
            partLse[slot * H + h] = m + Math.log(sum); // natural log
          } // else: the empty state (o = 0, lse = -Infinity) stays
        }
      }
    }

    // 2. Merge each query's partial slots (online-softmax merge; -Infinity lse = empty = identity).
    const out = new Float32Array(plan.numQueries * H * D);
    const lse = new Float32Array(plan.numQueries * H);
    for (let q = 0; q < plan.numQueries; q++) {
      const b = plan.mergeBegin[q];
      const e = plan.mergeBegin[q + 1];
      for (let h = 0; h < H; h++) {
        let m = -Infinity;
        for (let k = b; k < e; k++) m = Math.max(m, partLse[plan.mergeSlots[k] * H + h]);
        if (m === -Infinity) {
          lse[q * H + h] = -Infinity; // nothing visible: out stays 0
          continue;
        }
        let sum = 0;
        for (let k = b; k < e; k++) sum += Math.exp(partLse[plan.mergeSlots[k] * H + h] - m);
        const ob = (q * H + h) * D;
        for (let k = b; k < e; k++) {
          const s = plan.mergeSlots[k];
          const c = Math.exp(partLse[s * H + h] - m) / sum;
          for (let d = 0; d < D; d++) out[ob + d] += c * partO[(s * H + h) * D + d];
        }
        lse[q * H + h] = m + Math.log(sum);
      }
    }
    const res: AttentionOutput = { out, lse };
    if (options.timing) res.deviceTimeUs = (performance.now() - t0) * 1000;
    return res;
  }

  async dispose(): Promise<void> {
    this.kv = undefined;
    this.disposed = true;
  }
}

/** What the registry (and `canopy-bench --backend-module`) picks up. */
export const templateBackendFactory: BackendFactory = {
  name: 'template',
  contractVersion: CONTRACT_VERSION,
  priority: 1,
  async probe() {
    return { available: true, reason: 'plain JavaScript, runs anywhere' };
  },
  async create() {
    return new TemplateBackend();
  },
};
