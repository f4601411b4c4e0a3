/**
 * Test-side batch builders: the canonical workloads W1–W5 and a generic "tree" batch (nodes with
 * token counts, requests at nodes), with or without an explicit tree. Pages are allocated per node
 * in order; a node whose length is not a multiple of the page size ends mid-page.
 */
import type { AttentionConfig, BackendCapabilities, Batch, BatchRequest, ExplicitTree } from '@canopy/core';

export const W_CONFIG: AttentionConfig = { numQoHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' };

/** An H100-like device: 132 SMs, 3.35 TB/s, the multi-tile menu of the issue. */
export const H100_CAPS: BackendCapabilities = {
  kvDtypes: ['f16'],
  headDims: [64, 128],
  tileMenu: [1, 8, 16, 32, 64, 128].flatMap((rows) => [32, 64, 128].map((kvBlock) => ({ rows, kvBlock }))),
  masks: ['none', 'causal'],
  gpuTimers: true,
  parallelUnits: 132,
  readBandwidthGBs: 3350,
};

export interface TreeSpec {
  /** parent of each node (parent < node), -1 for roots */
  parent: number[];
  tokens: number[];
  /** node each request sits at */
  requestNode: number[];
  /** tokens of each request's own leaf under its node (0: none) */
  ownTokens?: number | number[];
  numQueries?: number | number[];
  config?: AttentionConfig;
  pageSize?: number;
  /** also attach the explicit tree */
  explicit?: boolean;
  /** extra unused pages at the end of the pool */
  sparePages?: number;
}

export function treeBatch(spec: TreeSpec): Batch {
  const P = spec.pageSize ?? 16;
  const config = spec.config ?? W_CONFIG;
  const n = spec.parent.length;
  let nextPage = 0;
  const segPage: number[] = [];
  const segTokens: number[] = [];
  const segBegin: number[] = [0];
  const parent: number[] = spec.parent.slice();
  const alloc = (tokens: number): void => {
    for (let t = tokens; t > 0; t -= P) {
      segPage.push(nextPage++);
      segTokens.push(Math.min(P, t));
    }
    segBegin.push(segPage.length);
  };
  for (let i = 0; i < n; i++) {
    if (!(spec.parent[i] < i)) throw new Error('treeBatch: parents must precede children');
    alloc(spec.tokens[i]);
  }
  const requestLeaf: number[] = [];
  spec.requestNode.forEach((node, r) => {
    const own = Array.isArray(spec.ownTokens) ? spec.ownTokens[r] : (spec.ownTokens ?? 0);
    if (own > 0) {
      parent.push(node);
      alloc(own);
      requestLeaf.push(parent.length - 1);
    } else requestLeaf.push(node);
  });
  const requests: BatchRequest[] = requestLeaf.map((leaf, r) => {
    const path: number[] = [];
    for (let x = leaf; x !== -1; x = parent[x]) path.push(x);
    path.reverse();
    const ids: number[] = [];
    const tks: number[] = [];
    for (const x of path) {
      for (let s = segBegin[x]; s < segBegin[x + 1]; s++) {
        ids.push(segPage[s]);
        tks.push(segTokens[s]);
      }
    }
    const nq = Array.isArray(spec.numQueries) ? spec.numQueries[r] : (spec.numQueries ?? 1);
    return { pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(tks), numQueries: nq };
  });
  const batch: Batch = { config, numPages: nextPage + (spec.sparePages ?? 0), pageSize: P, requests };
  if (spec.explicit) {
    const tree: ExplicitTree = {
      parent: Int32Array.from(parent),
      segBegin: Int32Array.from(segBegin),
      segPage: Int32Array.from(segPage),
      segTokens: Int32Array.from(segTokens),
      requestLeaf: Int32Array.from(requestLeaf),
    };
    batch.tree = tree;
  }
  return batch;
}

export type WorkloadId = 'W1' | 'W2' | 'W3' | 'W4' | 'W5';

/** Expected unique KV tokens and tokens without sharing (the foundation issue's table). */
export const W_TABLE: Record<WorkloadId, { requests: number; unique: number; noSharing: number }> = {
  W1: { requests: 64, unique: 36_864, noSharing: 294_912 },
  W2: { requests: 128, unique: 66_560, noSharing: 688_128 },
  W3: { requests: 64, unique: 17_312, noSharing: 296_960 },
  W4: { requests: 64, unique: 294_912, noSharing: 294_912 },
  W5: { requests: 256, unique: 32_768, noSharing: 4_210_688 },
};

export function workload(id: WorkloadId, explicit = false): Batch {
  switch (id) {
    case 'W1':
      return treeBatch({ parent: [-1], tokens: [4096], requestNode: new Array(64).fill(0), ownTokens: 512, explicit });
    case 'W2': {
      const parent = [-1, ...new Array(8).fill(0)];
      const tokens = [1024, ...new Array(8).fill(4096)];
      const requestNode = Array.from({ length: 128 }, (_, r) => 1 + Math.floor(r / 16));
      return treeBatch({ parent, tokens, requestNode, ownTokens: 256, explicit });
    }
    case 'W3': {
      // root 4000; 4-ary levels of internal 256-token nodes at depths 1 and 2; 64 leaves of 128
      const parent = [-1];
      const tokens = [4000];
      const level1: number[] = [];
      for (let i = 0; i < 4; i++) {
        parent.push(0);
        tokens.push(256);
        level1.push(parent.length - 1);
      }
      const level2: number[] = [];
      for (const p of level1) {
        for (let i = 0; i < 4; i++) {
          parent.push(p);
          tokens.push(256);
          level2.push(parent.length - 1);
        }
      }
      const requestNode = level2.flatMap((p) => [p, p, p, p]);
      return treeBatch({ parent, tokens, requestNode, ownTokens: 128, explicit });
    }
    case 'W4':
      return treeBatch({ ...independent(64, 4608), explicit });
    case 'W5':
      return treeBatch({ parent: [-1], tokens: [16384], requestNode: new Array(256).fill(0), ownTokens: 64, explicit });
  }
}

function independent(n: number, tokens: number): Pick<TreeSpec, 'parent' | 'tokens' | 'requestNode'> {
  return { parent: new Array(n).fill(-1), tokens: new Array(n).fill(tokens), requestNode: Array.from({ length: n }, (_, i) => i) };
}

/** 1024 requests under a 4-level tree: root 2048 → 4 × 1024 → 16 × 512 → 64 × 256, 16 requests of 128 own tokens each under the 64. */
export function bigTree(explicit = false): Batch {
  const parent = [-1];
  const tokens = [2048];
  let level = [0];
  for (const t of [1024, 512, 256]) {
    const nxt: number[] = [];
    for (const p of level) {
      for (let i = 0; i < 4; i++) {
        parent.push(p);
        tokens.push(t);
        nxt.push(parent.length - 1);
      }
    }
    level = nxt;
  }
  const requestNode = level.flatMap((p) => new Array(16).fill(p));
  return treeBatch({ parent, tokens, requestNode, ownTokens: 128, explicit });
}
