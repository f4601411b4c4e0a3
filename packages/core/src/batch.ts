import { validateConfig } from './config.js';
import { fail } from './errors.js';
import type { AttentionConfig, Batch, BatchRequest, ExplicitTree, PagedKvCache } from './types.js';

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

/** Total KV tokens of a request. */
export function requestKvTokens(req: BatchRequest): number {
  let n = 0;
  for (let i = 0; i < req.pageTokens.length; i++) n += req.pageTokens[i];
  return n;
}

export function numQueriesOf(batch: Batch): number {
  let n = 0;
  for (const r of batch.requests) n += r.numQueries;
  return n;
}

/** Request r owns queries [offsets[r], offsets[r + 1]). */
export function requestQueryOffsets(batch: Batch): Int32Array {
  const off = new Int32Array(batch.requests.length + 1);
  batch.requests.forEach((r, i) => (off[i + 1] = off[i] + r.numQueries));
  return off;
}

export function queryRequestMap(batch: Batch): Int32Array {
  const map = new Int32Array(numQueriesOf(batch));
  let q = 0;
  batch.requests.forEach((r, i) => {
    for (let j = 0; j < r.numQueries; j++) map[q++] = i;
  });
  return map;
}

/** Causal limit per query: query j of a request with L tokens and n queries sees positions < L - n + j + 1. */
export function queryKvLimits(batch: Batch): Int32Array {
  const lim = new Int32Array(numQueriesOf(batch));
  let q = 0;
  for (const r of batch.requests) {
    const L = requestKvTokens(r);
    for (let j = 0; j < r.numQueries; j++) lim[q++] = L - r.numQueries + j + 1;
  }
  return lim;
}

/**
 * Distinct KV tokens visible to some query: (page, slot) pairs. Every segment covers slots
 * [0, t) of its page, so a page contributes the largest t any request uses of it.
 */
export function uniqueKvTokens(batch: Batch): number {
  const used = new Int32Array(batch.numPages);
  for (const r of batch.requests) {
    for (let i = 0; i < r.pageIds.length; i++) {
      const p = r.pageIds[i];
      if (r.pageTokens[i] > used[p]) used[p] = r.pageTokens[i];
    }
  }
  let n = 0;
  for (let p = 0; p < used.length; p++) n += used[p];
  return n;
}

/** Σ over queries of the KV tokens each sees. */
export function visibleKvTokens(batch: Batch): number {
  const lim = queryKvLimits(batch);
  let n = 0;
  for (let q = 0; q < lim.length; q++) n += lim[q];
  return n;
}

/** Attention FLOPs of a step: q·k and p·v, 2 FLOPs per multiply-add each, per query head. */
export function attentionFlops(batch: Batch): number {
  return 4 * batch.config.headDim * batch.config.numQoHeads * visibleKvTokens(batch);
}

function checkTree(tree: ExplicitTree, batch: Batch): void {
  const n = tree.parent.length;
  if (tree.segBegin.length !== n + 1) {
    fail('bad-tree', `tree.segBegin has length ${tree.segBegin.length}, expected numNodes + 1 = ${n + 1}`);
  }
  if (tree.segBegin[0] !== 0 || tree.segBegin[n] !== tree.segPage.length || tree.segPage.length !== tree.segTokens.length) {
    fail('bad-tree', 'tree.segBegin must start at 0 and end at segPage.length (= segTokens.length)');
  }
  for (let i = 0; i < n; i++) {
    const p = tree.parent[i];
    if (p < -1 || p >= n || p === i) fail('bad-tree', `tree node ${i} has parent ${p}, not a node id or -1`);
    if (tree.segBegin[i + 1] < tree.segBegin[i]) fail('bad-tree', `tree.segBegin decreases at node ${i}`);
  }
  // Cycle check: walk up from every node, bounded by n steps.
  const state = new Uint8Array(n); // 0 new, 1 on stack, 2 done
  for (let i = 0; i < n; i++) {
    let x = i;
    const path: number[] = [];
    while (x !== -1 && state[x] === 0) {
      state[x] = 1;
      path.push(x);
      x = tree.parent[x];
    }
    if (x !== -1 && state[x] === 1) fail('bad-tree', `tree has a cycle through node ${x}`);
    for (const y of path) state[y] = 2;
  }
  for (let s = 0; s < tree.segPage.length; s++) checkSegment(batch, tree.segPage[s], tree.segTokens[s], `tree segment ${s}`);
  if (tree.requestLeaf.length !== batch.requests.length) {
    fail('bad-tree', `tree.requestLeaf has ${tree.requestLeaf.length} entries for ${batch.requests.length} requests`);
  }
  batch.requests.forEach((r, ri) => {
    const leaf = tree.requestLeaf[ri];
    if (!isInt(leaf) || leaf < 0 || leaf >= n) fail('bad-tree', `request ${ri} names missing tree node ${leaf}`);
    const path: number[] = [];
    for (let x = leaf; x !== -1; x = tree.parent[x]) path.push(x);
    path.reverse();
    let k = 0;
    for (const node of path) {
      for (let s = tree.segBegin[node]; s < tree.segBegin[node + 1]; s++, k++) {
        if (k >= r.pageIds.length || r.pageIds[k] !== tree.segPage[s] || r.pageTokens[k] !== tree.segTokens[s]) {
          fail('bad-tree', `request ${ri}: page segment ${k} differs from its tree path (node ${node}, tree segment ${s})`);
        }
      }
    }
    if (k !== r.pageIds.length) fail('bad-tree', `request ${ri} has ${r.pageIds.length} page segments, its tree path ${k}`);
  });
}

function checkSegment(batch: Batch, page: number, tokens: number, where: string): void {
  if (!isInt(page) || page < 0 || page >= batch.numPages) {
    fail('page-out-of-range', `${where}: page id ${page} out of range [0, ${batch.numPages})`);
  }
  if (!isInt(tokens) || tokens < 1 || tokens > batch.pageSize) {
    fail('bad-segment', `${where}: uses ${tokens} tokens of page ${page}; must be 1..pageSize (${batch.pageSize})`);
  }
}

/** Check a batch's shape and ids; throws CanopyError naming the first problem. */
export function validateBatch(batch: Batch): void {
  validateConfig(batch.config);
  if (!isInt(batch.numPages) || batch.numPages < 1) fail('bad-batch', `batch.numPages must be a positive integer, got ${batch.numPages}`);
  if (!isInt(batch.pageSize) || batch.pageSize < 1) fail('bad-batch', `batch.pageSize must be a positive integer, got ${batch.pageSize}`);
  if (!Array.isArray(batch.requests) || batch.requests.length === 0) fail('bad-batch', 'batch.requests must be a non-empty array');
  batch.requests.forEach((r, ri) => {
    if (!(r.pageIds instanceof Int32Array) || !(r.pageTokens instanceof Int32Array)) {
      fail('bad-batch', `request ${ri}: pageIds and pageTokens must be Int32Arrays`);
    }
    if (r.pageIds.length !== r.pageTokens.length) {
      fail('bad-batch', `request ${ri}: pageIds has ${r.pageIds.length} entries, pageTokens ${r.pageTokens.length}`);
    }
    for (let i = 0; i < r.pageIds.length; i++) checkSegment(batch, r.pageIds[i], r.pageTokens[i], `request ${ri} segment ${i}`);
    const L = requestKvTokens(r);
    if (!isInt(r.numQueries) || r.numQueries < 1 || r.numQueries > L) {
      fail('bad-batch', `request ${ri}: numQueries ${r.numQueries} must be 1..its KV tokens (${L})`);
    }
  });
  if (batch.tree) checkTree(batch.tree, batch);
}

/** Check a KV cache's shape and values against a config (and a batch's page range). */
export function validateKvCache(cache: PagedKvCache, batch?: Batch, config?: AttentionConfig): void {
  const cfg = config ?? batch?.config;
  const expected = cache.numPages * cache.pageSize * cache.numKvHeads * cache.headDim;
  for (const [name, arr] of [['k', cache.k], ['v', cache.v]] as const) {
    const want = cache.dtype === 'f16' ? Uint16Array : Float32Array;
    if (!(arr instanceof want)) fail('bad-kv', `KV cache ${name} must be a ${want.name} for dtype ${cache.dtype}`);
    if (arr.length !== expected) {
      fail(
        'shape-mismatch',
        `KV cache ${name} has ${arr.length} elements, expected [numPages ${cache.numPages}, pageSize ${cache.pageSize}, numKvHeads ${cache.numKvHeads}, headDim ${cache.headDim}] = ${expected}`,
      );
    }
    if (arr instanceof Float32Array) {
      for (let i = 0; i < arr.length; i++) {
        if (!Number.isFinite(arr[i])) fail('non-finite', `KV cache ${name} has ${arr[i]} at element ${i} (${describeKvIndex(cache, i)})`);
      }
    } else {
      for (let i = 0; i < arr.length; i++) {
        if ((arr[i] & 0x7c00) === 0x7c00) fail('non-finite', `KV cache ${name} has a NaN/Inf f16 at element ${i} (${describeKvIndex(cache, i)})`);
      }
    }
  }
  if (cfg) {
    if (cfg.numKvHeads !== cache.numKvHeads || cfg.headDim !== cache.headDim || cfg.kvDtype !== cache.dtype) {
      fail(
        'shape-mismatch',
        `KV cache is ${cache.numKvHeads} heads × ${cache.headDim} dims ${cache.dtype}, config wants ${cfg.numKvHeads} × ${cfg.headDim} ${cfg.kvDtype}`,
      );
    }
  }
  if (batch) {
    if (batch.pageSize !== cache.pageSize) fail('shape-mismatch', `batch pageSize ${batch.pageSize} ≠ KV cache pageSize ${cache.pageSize}`);
    if (batch.numPages > cache.numPages) fail('page-out-of-range', `batch addresses ${batch.numPages} pages, the KV cache has ${cache.numPages}`);
  }
}

function describeKvIndex(cache: PagedKvCache, i: number): string {
  const d = i % cache.headDim;
  const h = Math.floor(i / cache.headDim) % cache.numKvHeads;
  const tok = Math.floor(i / (cache.headDim * cache.numKvHeads));
  return `page ${Math.floor(tok / cache.pageSize)}, slot ${tok % cache.pageSize}, head ${h}, dim ${d}`;
}

/** Check a query tensor `[numQueries, numQoHeads, headDim]` f32 with finite values. */
export function validateQueries(queries: Float32Array, batch: Batch): void {
  const nq = numQueriesOf(batch);
  const { numQoHeads, headDim } = batch.config;
  if (!(queries instanceof Float32Array)) fail('bad-queries', 'queries must be a Float32Array');
  if (queries.length !== nq * numQoHeads * headDim) {
    fail('shape-mismatch', `queries have ${queries.length} values, expected [${nq} queries, ${numQoHeads} heads, ${headDim}] = ${nq * numQoHeads * headDim}`);
  }
  for (let i = 0; i < queries.length; i++) {
    if (!Number.isFinite(queries[i])) {
      const q = Math.floor(i / (numQoHeads * headDim));
      const h = Math.floor(i / headDim) % numQoHeads;
      fail('non-finite', `query ${q} head ${h} dim ${i % headDim} is ${queries[i]}`);
    }
  }
}
