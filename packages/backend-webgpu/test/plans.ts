// Hand-made plans for tests (independent of @canopy/planner): KV ranges of tree nodes or whole
// requests, cut into chunks (splitting segments mid-page) and query groups. validatePlan checks them.
import { CONTRACT_VERSION, queryKvLimits, queryRequestMap, requestQueryOffsets, type Batch, type Plan, type TileShape } from '@canopy/core';
import type { TreeSpec } from '@canopy/backend-testkit';

interface Range {
  seg: Array<[number, number, number]>; // page, slot, tokens
  pos: number;
  queries: number[];
}

export interface TestPlanOptions {
  chunk: number;
  maxQueries: number;
  tiles: TileShape[];
  /** 'tree': one range per explicit-tree node (shared KV read once); 'request': one per request. */
  mode: 'tree' | 'request';
}

export function testPlan(batch: Batch, o: TestPlanOptions): Plan {
  const qoff = requestQueryOffsets(batch);
  const ranges: Range[] = [];
  if (o.mode === 'request') {
    batch.requests.forEach((r, i) => {
      const seg: Array<[number, number, number]> = [];
      for (let k = 0; k < r.pageIds.length; k++) seg.push([r.pageIds[k], 0, r.pageTokens[k]]);
      const qs: number[] = [];
      for (let q = qoff[i]; q < qoff[i + 1]; q++) qs.push(q);
      ranges.push({ seg, pos: 0, queries: qs });
    });
  } else {
    const t = batch.tree!;
    const n = t.parent.length;
    const pos = new Int32Array(n);
    const tokens = new Int32Array(n);
    for (let x = 0; x < n; x++) {
      for (let s = t.segBegin[x]; s < t.segBegin[x + 1]; s++) tokens[x] += t.segTokens[s];
      pos[x] = t.parent[x] < 0 ? 0 : pos[t.parent[x]] + tokens[t.parent[x]];
    }
    const nodeQueries: number[][] = Array.from({ length: n }, () => []);
    batch.requests.forEach((_, r) => {
      for (let x = t.requestLeaf[r]; x !== -1; x = t.parent[x]) for (let q = qoff[r]; q < qoff[r + 1]; q++) nodeQueries[x].push(q);
    });
    for (let x = 0; x < n; x++) {
      if (nodeQueries[x].length === 0) continue;
      const seg: Array<[number, number, number]> = [];
      for (let s = t.segBegin[x]; s < t.segBegin[x + 1]; s++) seg.push([t.segPage[s], 0, t.segTokens[s]]);
      ranges.push({ seg, pos: pos[x], queries: nodeQueries[x].sort((a, b) => a - b) });
    }
  }
  const itemPos: number[] = [];
  const itemSegBegin = [0];
  const itemQueryBegin = [0];
  const itemQueries: number[] = [];
  const itemPartialBase: number[] = [];
  const itemTile: number[] = [];
  const segPage: number[] = [];
  const segSlot: number[] = [];
  const segTokens: number[] = [];
  const G = batch.config.numQoHeads / batch.config.numKvHeads;
  let partials = 0;
  const slotsOf: number[][] = Array.from({ length: qoff[batch.requests.length] }, () => []);
  for (const r of ranges) {
    // flatten to tokens then cut into chunks
    const toks: Array<[number, number]> = [];
    for (const [p, s, n] of r.seg) for (let j = 0; j < n; j++) toks.push([p, s + j]);
    for (let c0 = 0; c0 < toks.length; c0 += o.chunk) {
      const c1 = Math.min(toks.length, c0 + o.chunk);
      for (let g0 = 0; g0 < r.queries.length; g0 += o.maxQueries) {
        const qs = r.queries.slice(g0, g0 + o.maxQueries);
        itemPos.push(r.pos + c0);
        // segments: runs of consecutive slots on one page
        for (let j = c0; j < c1; ) {
          let k = j + 1;
          while (k < c1 && toks[k][0] === toks[j][0] && toks[k][1] === toks[k - 1][1] + 1) k++;
          segPage.push(toks[j][0]);
          segSlot.push(toks[j][1]);
          segTokens.push(k - j);
          j = k;
        }
        itemSegBegin.push(segPage.length);
        itemPartialBase.push(partials);
        qs.forEach((q, j) => slotsOf[q].push(partials + j));
        partials += qs.length;
        itemQueries.push(...qs);
        itemQueryBegin.push(itemQueries.length);
        const rows = qs.length * G;
        let best = 0;
        o.tiles.forEach((t, i) => {
          if (Math.abs(t.rows - rows) < Math.abs(o.tiles[best].rows - rows)) best = i;
        });
        itemTile.push(best);
      }
    }
  }
  const mergeBegin = [0];
  const mergeSlots: number[] = [];
  for (const s of slotsOf) {
    mergeSlots.push(...s);
    mergeBegin.push(mergeSlots.length);
  }
  return {
    version: CONTRACT_VERSION,
    planner: `test-${o.mode}`,
    config: batch.config,
    numQueries: slotsOf.length,
    queryRequest: queryRequestMap(batch),
    queryKvLimit: queryKvLimits(batch),
    tiles: o.tiles,
    numItems: itemPos.length,
    itemTile: Int32Array.from(itemTile),
    itemPos: Int32Array.from(itemPos),
    itemSegBegin: Int32Array.from(itemSegBegin),
    itemQueryBegin: Int32Array.from(itemQueryBegin),
    itemQueries: Int32Array.from(itemQueries),
    itemPartialBase: Int32Array.from(itemPartialBase),
    segPage: Int32Array.from(segPage),
    segSlot: Int32Array.from(segSlot),
    segTokens: Int32Array.from(segTokens),
    numPartials: partials,
    mergeBegin: Int32Array.from(mergeBegin),
    mergeSlots: Int32Array.from(mergeSlots),
  };
}

/** Largest |got − ref| relative to max(1, max |ref|); NaN counts as infinite. */
export function maxErr(got: Float32Array, ref: Float64Array): number {
  let m = 0;
  let scale = 1;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    if (!(e <= m)) m = Number.isNaN(e) ? Infinity : e;
  }
  return m / scale;
}

/** Prefill requests (several queries each: causal limits) beside decodes, shared nodes seen by up
 * to 10 queries (40 rows at GQA 4: not a multiple of the tiles' rows). */
export const SHARED_TREE: TreeSpec = {
  parent: [-1, 0, 0, 1, 1, 2, -1],
  tokens: [45, 17, 64, 9, 33, 1, 70],
  requestAt: [3, 4, 5, 1, 2, 6, 3],
  numQueries: [1, 1, 1, 1, 3, 1, 2],
};
