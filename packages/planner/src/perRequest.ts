/**
 * The no-sharing baseline (FlashDecoding-style): every request is planned alone over its whole KV,
 * so shared prefixes are read once per request. Each request's queries form one group (split by
 * rows when they exceed the largest tile); its KV is cut into chunks:
 *
 * - `chunkTokens` given: chunks of that many tokens (the last one shorter);
 * - otherwise: with `items` = Σ row blocks, when items < 2 × parallelUnits every request is cut
 *   into ceil(2 × parallelUnits / items) even chunks, but no chunk below `minChunkTokens`
 *   (default 256) — few requests then still fill the device, many requests stay whole.
 *
 * Tile: the smallest menu row count ≥ queries × (numQoHeads / numKvHeads) (else the largest), with
 * the largest KV block the menu has for it.
 */
import { CONTRACT_VERSION, fail, type BackendCapabilities, type Batch, type Plan } from '@canopy/core';
import { TileChooser } from './cost.js';
import { checkBatchShape } from './state.js';

export interface PerRequestOptions {
  /** Fixed KV chunk length in tokens. */
  chunkTokens?: number;
  /** Smallest chunk the automatic split makes (tokens). Default 256. */
  minChunkTokens?: number;
}

export function perRequestPlanner(batch: Batch, capabilities: BackendCapabilities, options: PerRequestOptions = {}): Plan {
  checkBatchShape(batch);
  if (!capabilities || !Array.isArray(capabilities.tileMenu) || capabilities.tileMenu.length === 0) {
    fail('bad-capabilities', 'capabilities.tileMenu must list at least one tile shape');
  }
  if (options.chunkTokens !== undefined && !(Number.isInteger(options.chunkTokens) && options.chunkTokens >= 1)) {
    fail('bad-options', `chunkTokens must be a positive integer, got ${options.chunkTokens}`);
  }
  const config = batch.config;
  const g = config.numQoHeads / config.numKvHeads;
  const tiles = new TileChooser(capabilities.tileMenu);
  const qpb = Math.max(1, Math.floor(tiles.maxRows / g));
  const reqs = batch.requests;
  const R = reqs.length;
  const L = new Int32Array(R);
  let NQ = 0;
  let blocks = 0;
  for (let r = 0; r < R; r++) {
    const req = reqs[r];
    let n = 0;
    for (let s = 0; s < req.pageTokens.length; s++) {
      const k = req.pageTokens[s];
      const pg = req.pageIds[s];
      if (!(pg >= 0 && pg < batch.numPages) || (pg | 0) !== pg) fail('page-out-of-range', `request ${r} segment ${s}: page id ${pg} out of range [0, ${batch.numPages})`);
      if (!(k >= 1 && k <= batch.pageSize) || (k | 0) !== k) fail('bad-segment', `request ${r} segment ${s}: uses ${k} tokens of page ${pg}; must be 1..pageSize (${batch.pageSize})`);
      n += k;
    }
    L[r] = n;
    const nq = req.numQueries;
    if (!(Number.isInteger(nq) && nq >= 1 && nq <= n)) fail('bad-batch', `request ${r}: numQueries ${nq} must be 1..its KV tokens (${n})`);
    NQ += nq;
    blocks += Math.ceil(nq / qpb);
  }
  const minChunk = Math.max(1, options.minChunkTokens ?? 256);
  const target = 2 * Math.max(1, capabilities.parallelUnits | 0);
  const autoK = blocks < target ? Math.ceil(target / blocks) : 1;
  const chunksOf = (r: number): number =>
    options.chunkTokens ? Math.ceil(L[r] / options.chunkTokens) : Math.max(1, Math.min(autoK, Math.floor(L[r] / minChunk)));

  let maxItems = 0;
  let maxSegs = 0;
  let maxIq = 0;
  for (let r = 0; r < R; r++) {
    const k = chunksOf(r);
    const nb = Math.ceil(reqs[r].numQueries / qpb);
    maxItems += k * nb;
    maxIq += k * reqs[r].numQueries;
    maxSegs += nb * (reqs[r].pageIds.length + k);
  }
  const queryRequest = new Int32Array(NQ);
  const queryKvLimit = new Int32Array(NQ);
  const itemTile = new Int32Array(maxItems);
  const itemPos = new Int32Array(maxItems);
  const itemSegBegin = new Int32Array(maxItems + 1);
  const itemQueryBegin = new Int32Array(maxItems + 1);
  const itemPartialBase = new Int32Array(maxItems);
  const itemQueries = new Int32Array(maxIq);
  const segPage = new Int32Array(maxSegs);
  const segSlot = new Int32Array(maxSegs);
  const segTokens = new Int32Array(maxSegs);
  let ni = 0;
  let nqi = 0;
  let ns = 0;
  let q0 = 0;
  for (let r = 0; r < R; r++) {
    const req = reqs[r];
    const nq = req.numQueries;
    const T = L[r];
    for (let j = 0; j < nq; j++) {
      queryRequest[q0 + j] = r;
      queryKvLimit[q0 + j] = T - nq + j + 1;
    }
    const K = chunksOf(r);
    const nb = Math.ceil(nq / qpb);
    const base = Math.floor(nq / nb);
    const extra = nq - base * nb;
    let s = 0;
    let off = 0;
    let a = 0;
    for (let j = 0; j < K; j++) {
      const b = j + 1 === K ? T : options.chunkTokens ? (j + 1) * options.chunkTokens : Math.floor(((j + 1) * T) / K);
      const sb = ns;
      while (off < b) {
        const pt = req.pageTokens[s];
        const lo = a > off ? a : off;
        const hi = b < off + pt ? b : off + pt;
        segPage[ns] = req.pageIds[s];
        segSlot[ns] = lo - off;
        segTokens[ns] = hi - lo;
        ns++;
        if (off + pt <= b) {
          off += pt;
          s++;
        } else break;
      }
      const se = ns;
      let emitted = false;
      let qb = 0;
      for (let blk = 0; blk < nb; blk++) {
        const cnt = base + (blk < extra ? 1 : 0);
        const start = nqi;
        for (let z = qb; z < qb + cnt; z++) if (queryKvLimit[q0 + z] > a) itemQueries[nqi++] = q0 + z;
        qb += cnt;
        const got = nqi - start;
        if (got === 0) continue;
        let segStart = sb;
        if (emitted) {
          segStart = ns;
          segPage.copyWithin(ns, sb, se);
          segSlot.copyWithin(ns, sb, se);
          segTokens.copyWithin(ns, sb, se);
          ns += se - sb;
        }
        emitted = true;
        itemSegBegin[ni] = segStart;
        itemSegBegin[ni + 1] = ns;
        itemQueryBegin[ni] = start;
        itemQueryBegin[ni + 1] = nqi;
        itemPartialBase[ni] = start;
        itemPos[ni] = a;
        itemTile[ni] = tiles.largestBlock(got * g);
        ni++;
      }
      if (!emitted) ns = sb;
      a = b;
    }
    q0 += nq;
  }
  const mergeBegin = new Int32Array(NQ + 1);
  for (let z = 0; z < nqi; z++) mergeBegin[itemQueries[z] + 1]++;
  for (let q = 0; q < NQ; q++) mergeBegin[q + 1] += mergeBegin[q];
  const mergeSlots = new Int32Array(nqi);
  const mc = mergeBegin.slice(0, NQ);
  for (let z = 0; z < nqi; z++) mergeSlots[mc[itemQueries[z]]++] = z;
  const trim = (x: Int32Array, n: number): Int32Array => (x.length === n ? x : x.slice(0, n));
  return {
    version: CONTRACT_VERSION,
    planner: 'perRequest',
    config: { ...config },
    numQueries: NQ,
    queryRequest,
    queryKvLimit,
    tiles: tiles.menu,
    numItems: ni,
    itemTile: trim(itemTile, ni),
    itemPos: trim(itemPos, ni),
    itemSegBegin: trim(itemSegBegin, ni + 1),
    itemQueryBegin: trim(itemQueryBegin, ni + 1),
    itemQueries: trim(itemQueries, nqi),
    itemPartialBase: trim(itemPartialBase, ni),
    segPage: trim(segPage, ns),
    segSlot: trim(segSlot, ns),
    segTokens: trim(segTokens, ns),
    numPartials: nqi,
    mergeBegin,
    mergeSlots,
  };
}
