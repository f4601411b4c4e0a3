import { SeededRng, type AttentionConfig, type Batch, type BatchRequest, type ExplicitTree } from '@canopy/core';

/** A token tree described by node sizes: node n has `tokens[n]` KV tokens and parent `parent[n]` (-1: root). */
export interface TreeSpec {
  parent: number[];
  tokens: number[];
  /** Node each request sits at (its KV is the path root → node). */
  requestAt: number[];
  /** Query tokens per request (default 1: decode). */
  numQueries?: number[];
}

/**
 * Lay a tree out in a paged KV cache: each node gets its own pages (its last page may be partly
 * filled), pages are numbered in node order, optionally shuffled so page ids are not sorted.
 * Returns the batch with an explicit tree; drop `batch.tree` to make planners discover sharing
 * from page ids alone.
 */
export function batchFromTree(spec: TreeSpec, config: AttentionConfig, pageSize: number, shuffleSeed?: number): Batch {
  const n = spec.parent.length;
  const nodePages: number[][] = [];
  let numPages = 0;
  for (let i = 0; i < n; i++) {
    const pages: number[] = [];
    for (let left = spec.tokens[i]; left > 0; left -= pageSize) pages.push(numPages++);
    nodePages.push(pages);
  }
  if (shuffleSeed !== undefined) {
    const perm = Array.from({ length: numPages }, (_, i) => i);
    const rng = new SeededRng(shuffleSeed);
    for (let i = perm.length - 1; i > 0; i--) {
      const j = rng.nextU32() % (i + 1);
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    for (const pages of nodePages) pages.forEach((p, k) => (pages[k] = perm[p]));
  }
  const segBegin = [0];
  const segPage: number[] = [];
  const segTokens: number[] = [];
  for (let i = 0; i < n; i++) {
    nodePages[i].forEach((p, k) => {
      segPage.push(p);
      segTokens.push(Math.min(pageSize, spec.tokens[i] - k * pageSize));
    });
    segBegin.push(segPage.length);
  }
  const requests: BatchRequest[] = spec.requestAt.map((leaf, r) => {
    const path: number[] = [];
    for (let x = leaf; x !== -1; x = spec.parent[x]) path.push(x);
    path.reverse();
    const ids: number[] = [];
    const used: number[] = [];
    for (const node of path) {
      for (let s = segBegin[node]; s < segBegin[node + 1]; s++) {
        ids.push(segPage[s]);
        used.push(segTokens[s]);
      }
    }
    return { pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(used), numQueries: spec.numQueries?.[r] ?? 1 };
  });
  const tree: ExplicitTree = {
    parent: Int32Array.from(spec.parent),
    segBegin: Int32Array.from(segBegin),
    segPage: Int32Array.from(segPage),
    segTokens: Int32Array.from(segTokens),
    requestLeaf: Int32Array.from(spec.requestAt),
  };
  return { config, numPages: Math.max(numPages, 1), pageSize, requests, tree };
}

/** A random tree: `nodes` nodes, each attached to a random earlier node, sizes in [minTokens, maxTokens]. */
export function randomTreeSpec(seed: number, nodes: number, minTokens: number, maxTokens: number, requests: number): TreeSpec {
  const rng = new SeededRng(seed);
  const parent: number[] = [-1];
  const tokens: number[] = [minTokens + (rng.nextU32() % (maxTokens - minTokens + 1))];
  for (let i = 1; i < nodes; i++) {
    // bias towards recent nodes for depth, sometimes a new root (forest)
    const r = rng.nextFloat();
    parent.push(r < 0.05 ? -1 : r < 0.5 ? i - 1 : rng.nextU32() % i);
    tokens.push(minTokens + (rng.nextU32() % (maxTokens - minTokens + 1)));
  }
  const requestAt: number[] = [];
  for (let r = 0; r < requests; r++) requestAt.push(rng.nextU32() % nodes);
  return { parent, tokens, requestAt };
}

/**
 * A hybrid step: a 37-token shared node with two decodes and three prefill requests under it
 * (chunks of 20 queries = its whole 20-token leaf, 6 queries of a 13-token leaf, and 9 queries of
 * a 4-token leaf, so the chunk reaches 5 tokens into the shared node), plus an unrelated request.
 */
export const HYBRID_TREE: TreeSpec = {
  parent: [-1, 0, 0, 0, 0, 0, -1],
  tokens: [37, 20, 13, 4, 3, 17, 9],
  requestAt: [4, 1, 2, 5, 3, 6],
  numQueries: [1, 20, 6, 1, 9, 1],
};

/**
 * Two requests (contexts of 6 and 11 tokens under a shared 19-token root), each with a query at
 * its context and a draft tree of one-token nodes with a query on every node: request A's tree
 * branches 3, then 2 under its first node, then 1 (3 + 2 + 1 = 6 nodes); request B's is a chain
 * of 2 and a sibling (3 nodes).
 */
export function draftTreeSpec(): TreeSpec {
  const parent = [-1, 0, 0];
  const tokens = [19, 6, 11];
  const requestAt = [1, 2];
  const add = (p: number): number => {
    parent.push(p);
    tokens.push(1);
    requestAt.push(parent.length - 1);
    return parent.length - 1;
  };
  const a = [add(1), add(1), add(1)];
  const a2 = [add(a[0]), add(a[0])];
  add(a2[1]);
  const b1 = add(2);
  add(b1);
  add(2);
  return { parent, tokens, requestAt };
}

export interface ConformanceCase {
  name: string;
  config: AttentionConfig;
  pageSize: number;
  spec: TreeSpec;
  /** Keep the explicit tree on the batch (otherwise sharing must be found from page ids). */
  explicitTree: boolean;
  /** Needs causal masking (prefill chunks). */
  causal: boolean;
  /** Shuffle page ids with this seed (page order must not matter). */
  shuffleSeed?: number;
  /** Scale the keys of every `keySpikes`-th token slot by KEY_SPIKE_FACTOR (see spikeKeys). */
  keySpikes?: number;
}

const cfg = (numQoHeads: number, numKvHeads: number, headDim: number, kvDtype: 'f16' | 'f32'): AttentionConfig => ({
  numQoHeads,
  numKvHeads,
  headDim,
  kvDtype,
});

/**
 * The conformance cases: shapes that break kernels (deep chains, wide fans, single-token nodes,
 * nodes ending mid-page, one request, a thousand requests, no sharing, causal prefill chunks,
 * random forests) across GQA ratios 1/4/8, head dims 64/128/256 and f16/f32 KV. Small token
 * counts keep the float64 reference fast; shapes, not sizes, are what go wrong.
 */
export function conformanceCases(): ConformanceCase[] {
  const cases: ConformanceCase[] = [];
  const add = (name: string, config: AttentionConfig, pageSize: number, spec: TreeSpec, explicitTree = true, causal = false, shuffleSeed?: number, keySpikes?: number) =>
    cases.push({ name, config, pageSize, spec, explicitTree, causal, shuffleSeed, keySpikes });

  // Deep chain: 14 nodes of 1..23 tokens; requests at several depths.
  const chainTokens = [23, 1, 7, 16, 1, 1, 9, 17, 3, 1, 12, 5, 8, 2];
  add(
    'deep chain, mid-page node ends, GQA 4, d64, f16',
    cfg(8, 2, 64, 'f16'),
    16,
    { parent: chainTokens.map((_, i) => i - 1), tokens: chainTokens, requestAt: [13, 6, 13, 2] },
  );
  // Wide fan: root of 37 tokens, 40 leaves of 1..9 tokens.
  const fan = { parent: [-1], tokens: [37], requestAt: [] as number[] };
  for (let i = 1; i <= 40; i++) {
    fan.parent.push(0);
    fan.tokens.push(1 + (i % 9));
    fan.requestAt.push(i);
  }
  add('wide fan (40 leaves), GQA 8, d128, f32', cfg(8, 1, 128, 'f32'), 16, fan);
  add('wide fan found from page ids (no explicit tree), GQA 4, d128, f16', cfg(8, 2, 128, 'f16'), 8, fan, false);
  // Single-token nodes in a binary tree of depth 5.
  const bin = { parent: [-1], tokens: [1], requestAt: [] as number[] };
  for (let i = 1; i < 31; i++) {
    bin.parent.push(Math.floor((i - 1) / 2));
    bin.tokens.push(1);
  }
  for (let i = 15; i < 31; i++) bin.requestAt.push(i);
  add('single-token nodes, binary depth 5, GQA 1, d64, f16', cfg(4, 4, 64, 'f16'), 4, bin);
  add('one request, d256, GQA 4, f16', cfg(8, 2, 256, 'f16'), 16, { parent: [-1], tokens: [100], requestAt: [0] });
  add('one request, d256, GQA 1, f32', cfg(2, 2, 256, 'f32'), 16, { parent: [-1, 0], tokens: [64, 33], requestAt: [1] });
  // 1000 requests under one shared root.
  const many = { parent: [-1], tokens: [20], requestAt: [] as number[] };
  for (let i = 1; i <= 1000; i++) {
    many.parent.push(0);
    many.tokens.push(1 + (i % 3));
    many.requestAt.push(i);
  }
  add('1000 requests sharing a root, GQA 4, d64, f16', cfg(8, 2, 64, 'f16'), 16, many);
  // No sharing.
  add(
    'no sharing (5 independent requests), GQA 4, d128, f16',
    cfg(8, 2, 128, 'f16'),
    16,
    { parent: [-1, -1, -1, -1, -1], tokens: [70, 1, 16, 33, 130], requestAt: [0, 1, 2, 3, 4] },
  );
  // Score spikes: some keys 12× larger, scattered through a shared root long enough for several
  // KV stages, so a row's running maximum jumps far above its earlier value mid-stream (and
  // sometimes only a little): every online-softmax rescaling path runs. 40 requests × GQA 4 =
  // 160 rows per KV head fill a 128-row unit.
  const spiky = { parent: [-1], tokens: [300], requestAt: [] as number[] };
  for (let i = 1; i <= 40; i++) {
    spiky.parent.push(0);
    spiky.tokens.push(1 + (i % 5));
    spiky.requestAt.push(i);
  }
  add('score spikes in a 300-token shared root (40 requests), GQA 4, d128, f16', cfg(8, 2, 128, 'f16'), 16, spiky, true, false, undefined, 29);
  // Requests sitting on internal nodes too (a query at a node with children).
  add(
    'queries on internal nodes, GQA 8, d64, f32',
    cfg(16, 2, 64, 'f32'),
    8,
    { parent: [-1, 0, 0, 1, 1], tokens: [20, 9, 13, 4, 17], requestAt: [0, 1, 3, 4, 2, 1] },
  );
  // Causal prefill chunks next to decodes.
  add(
    'prefill chunks (causal) beside decodes sharing a prefix, GQA 4, d64, f16',
    cfg(8, 2, 64, 'f16'),
    16,
    { parent: [-1, 0, 0, 0], tokens: [40, 24, 5, 11], requestAt: [1, 2, 3], numQueries: [24, 1, 3] },
    true,
    true,
  );
  // Hybrid steps (issue #7): prefill chunks under a shared node together with decodes. Chunks of
  // a whole leaf, of part of a leaf, and one longer than its leaf (it reaches into the shared node).
  add(
    'hybrid: prefill chunks and decodes under one shared node, GQA 4, d64, f16',
    cfg(8, 2, 64, 'f16'),
    16,
    HYBRID_TREE,
    true,
    true,
  );
  add('hybrid found from page ids (no explicit tree), GQA 8, d128, f32', cfg(8, 1, 128, 'f32'), 8, HYBRID_TREE, false, true, 31);
  // Speculative decoding: a query on every node of small draft trees (one-token nodes) under two
  // requests' contexts that share a root; each draft query sees its ancestors only.
  add('draft trees: a query on every one-token draft node, GQA 4, d64, f16', cfg(8, 2, 64, 'f16'), 4, draftTreeSpec(), true, false);
  add('draft trees found from page ids, GQA 1, d64, f32', cfg(4, 4, 64, 'f32'), 4, draftTreeSpec(), false, false, 77);
  // Random forests, with and without explicit trees, shuffled page ids.
  for (const [seed, gqa, d, dt] of [
    [1, 4, 64, 'f16'],
    [2, 8, 128, 'f32'],
    [3, 1, 64, 'f16'],
    [4, 4, 256, 'f16'],
  ] as const) {
    add(
      `random forest seed ${seed}, GQA ${gqa}, d${d}, ${dt}`,
      cfg(gqa * 2, 2, d, dt),
      16,
      randomTreeSpec(seed, 24, 1, 40, 12),
      seed % 2 === 0,
      false,
      100 + seed,
    );
  }
  return cases;
}
