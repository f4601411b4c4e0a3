/**
 * The `prefix` planner: token tree → groups (one per node, every query of its subtree) → splits
 * (KV chunks sized by the cost model, tiny nodes fused into their children where that is cheaper)
 * → tiles → merge lists. See README.md for the model.
 */
import { CONTRACT_VERSION, fail, type BackendCapabilities, type Batch, type Plan } from '@canopy/core';
import { costModel, CtaCost, TileChooser, type CostModelParams } from './cost.js';
import { type RadixTree, VROOT } from './tree.js';

export interface PrefixPlannerOptions {
  /** Overrides of the cost model (defaults come from the capabilities, see `costModel`). */
  cost?: Partial<CostModelParams>;
  /** No KV chunk is cut shorter than this (tokens). Default 128. */
  minChunkTokens?: number;
  /** At most this many chunks per node. Default 256. */
  maxChunksPerNode?: number;
  /** Fuse tiny nodes into their children when the model says it is cheaper. Default true. */
  fuse?: boolean;
  /** Largest node (with what it carries from fused ancestors) that may be pushed into several
   * children, in tokens. Default 64. Chains (one child) fuse at any size. */
  fuseMaxTokens?: number;
  /**
   * Treat a page id at a given index as naming the whole prefix before it (true of a paged KV
   * cache whose pages are immutable and hold one prefix each, as with prefix caching): the tree
   * builder then finds where two requests diverge by binary search instead of comparing every
   * page. Faster full builds; wrong trees (hence wrong attention) if the assumption fails.
   * Default false: every page is compared (with a native memcmp where available).
   */
  trustPageIds?: boolean;
  /**
   * Incremental steps (`stepPlanner`) write their plans into two buffers owned by the state, used
   * in turn: the plan of step t stays intact while step t + 1 is planned (a backend may still be
   * executing it) and is overwritten by step t + 2. Copy a plan (for example
   * `planFromJSON(planToJSON(plan))`) to keep it longer. Fresh, zero-filled memory costs more than
   * the rest of a step (page faults on every use). Default true; false gives every step its own
   * arrays. Full builds (`prefixPlanner`, `createPlannerState`) always return fresh arrays.
   */
  recyclePlans?: boolean;
  /** Run core's full `validateBatch` first (always done for explicit trees). Default false: the
   * planner checks what it reads (page ids, token counts, query counts) as it goes. */
  validate?: boolean;
}

/** Split-search candidates: target CTA work = (largest column work) / k for these k. */
const K_CANDIDATES: number[] = (() => {
  const out: number[] = [];
  for (let k = 1; k <= 16; k++) out.push(k);
  for (let k = 20; k <= 4096; k = Math.ceil(k * 1.25)) out.push(k);
  return out;
})();

// Intermediate arrays live in module scratch, reused across plans (planning is synchronous and
// not re-entrant); allocating ~30 typed arrays per plan cost more than the planning itself.
const I32: Int32Array[] = [];
const F64: Float64Array[] = [];
function I(slot: number, n: number, zero = true): Int32Array {
  let a = I32[slot];
  if (!a || a.length < n) {
    a = new Int32Array(Math.max(64, n, 2 * (a?.length ?? 0)));
    I32[slot] = a;
  } else if (zero) a.fill(0, 0, n);
  return a;
}
function F(slot: number, n: number): Float64Array {
  let a = F64[slot];
  if (!a || a.length < n) {
    a = new Float64Array(Math.max(64, n, 2 * (a?.length ?? 0)));
    F64[slot] = a;
  } else a.fill(0, 0, n);
  return a;
}
// The model objects depend only on (capabilities, options, config); consecutive plans of one
// state reuse them. Capabilities and options objects are treated as immutable once planned with.
let lastModel: { caps: BackendCapabilities; menu: unknown; units: number; bw: number | undefined; opts: PrefixPlannerOptions; cfg: string; model: CostModelParams; cost: CtaCost; tiles: TileChooser } | undefined;
function modelFor(caps: BackendCapabilities, opts: PrefixPlannerOptions, config: Batch['config']): { model: CostModelParams; cost: CtaCost; tiles: TileChooser } {
  const cfg = `${config.numQoHeads}/${config.numKvHeads}/${config.headDim}/${config.kvDtype}`;
  const l = lastModel;
  if (l && l.caps === caps && l.menu === caps.tileMenu && l.units === caps.parallelUnits && l.bw === caps.readBandwidthGBs && l.opts === opts && l.cfg === cfg) return l;
  const model = costModel(caps, opts.cost);
  lastModel = { caps, menu: caps.tileMenu, units: caps.parallelUnits, bw: caps.readBandwidthGBs, opts, cfg, model, cost: new CtaCost(model, config), tiles: new TileChooser(caps.tileMenu) };
  return lastModel;
}

/**
 * The split search (see README "Split"): writes each column's KV chunk count into colK. Columns
 * that cannot be split (kmax 1) add a constant; only the others are re-evaluated for each target
 * τ = Wmax / k. Total work only grows as τ shrinks, so the search stops once the total alone
 * exceeds the best predicted time. Shared by full builds and incremental patches, so both decide
 * identically (same operations in the same order).
 */
export function splitSearch(
  C: number,
  colW: Float64Array,
  colSum: Float64Array,
  colKmax: Int32Array,
  colNb: Int32Array,
  colVis: Int32Array,
  colK: Int32Array,
  HK: number,
  c0: number,
  P: number,
  mergeLaunchUs: number,
  mergePerPartial: number,
  bwTot: number,
  NQ: number,
): void {
  let Wmax = 0;
  for (let c = 0; c < C; c++) if (colW[c] > Wmax && colKmax[c] > 1) Wmax = colW[c];
  let constSum = 0;
  let constMax = 0;
  let basePartials = 0;
  const split = I(96, C, false);
  let S = 0;
  for (let c = 0; c < C; c++) {
    basePartials += colVis[c];
    if (colKmax[c] === 1) {
      constSum += HK * (colNb[c] * c0 + colSum[c]);
      if (colW[c] > constMax) constMax = colW[c];
    } else split[S++] = c;
  }
  let bestPred = Infinity;
  let bestTau = Infinity;
  if (Wmax > 0) {
    for (const kc of K_CANDIDATES) {
      const tau = Wmax / kc;
      let sum = constSum;
      let mx = constMax;
      let extraPartials = 0;
      for (let z = 0; z < S; z++) {
        const c = split[z];
        const W = colW[c];
        let k = 1;
        if (W > tau) {
          k = Math.ceil(W / tau);
          if (k > colKmax[c]) k = colKmax[c];
          extraPartials += (k - 1) * colVis[c];
        }
        sum += HK * (k * colNb[c] * c0 + colSum[c]);
        const w = W / k;
        if (w > mx) mx = w;
      }
      const total = sum / P;
      const merge = basePartials + extraPartials > NQ ? mergeLaunchUs + (extraPartials * mergePerPartial) / bwTot : 0;
      const pred = Math.max(total, mx + c0) + merge;
      if (pred < bestPred - 1e-9) {
        bestPred = pred;
        bestTau = tau;
      }
      if (total > bestPred) break;
    }
  }
  for (let c = 0; c < C; c++) {
    const W = colW[c];
    let k = 1;
    if (W > bestTau && colKmax[c] > 1) k = Math.min(colKmax[c], Math.ceil(W / bestTau));
    colK[c] = k;
  }
}

/**
 * Emit the plan of a radix tree in canonical order. Shared by fresh builds and incremental steps,
 * so both give identical plans for identical trees.
 */
export function emitPrefixPlan(
  tree: RadixTree,
  order: Int32Array,
  batch: Batch,
  caps: BackendCapabilities,
  opts: PrefixPlannerOptions,
  alloc?: (ints: number) => Int32Array,
): Plan {
  const config = batch.config;
  const { model, cost, tiles } = modelFor(caps, opts, config);
  const minChunk = Math.max(1, opts.minChunkTokens ?? 128);
  const maxChunks = Math.max(1, opts.maxChunksPerNode ?? 256);
  const fuse = opts.fuse ?? true;
  const fuseMax = opts.fuseMaxTokens ?? 64;
  const g = config.numQoHeads / config.numKvHeads;
  const HK = config.numKvHeads;
  const P = model.parallelUnits;
  const c0 = model.itemOverheadUs;
  const bwTot = model.bandwidthGBs * 1e3;
  const mergePerPartial = (config.headDim + 1) * 4 * config.numQoHeads; // bytes to read one partial
  const pageSize = batch.pageSize;

  const N = order.length;
  const R = batch.requests.length;
  // canonical index of each pool node
  const idx = I(101, tree.cap, false);
  const par = I(102, N);
  const pos = I(103, N);
  const tok = I(104, N);
  for (let k = 0; k < N; k++) {
    const x = order[k];
    idx[x] = k;
    const p = tree.parent[x];
    par[k] = p === VROOT ? -1 : idx[p];
    pos[k] = tree.pos[x];
    tok[k] = tree.tokens[x];
  }

  // ---- queries
  const qoff = I(105, R + 1);
  for (let r = 0; r < R; r++) qoff[r + 1] = qoff[r] + batch.requests[r].numQueries;
  const NQ = qoff[R];
  const queryRequest = I(106, NQ);
  const queryKvLimit = I(107, NQ);
  const leafK = I(108, R);
  const vcnt = I(109, N);
  for (let r = 0; r < R; r++) {
    const leaf = idx[tree.reqLeaf[r]];
    leafK[r] = leaf;
    const L = pos[leaf] + tok[leaf];
    const nq = batch.requests[r].numQueries;
    if (!(Number.isInteger(nq) && nq >= 1 && nq <= L)) fail('bad-batch', `request ${r}: numQueries ${nq} must be 1..its KV tokens (${L})`);
    const base = L - nq;
    for (let j = 0, q = qoff[r]; j < nq; j++, q++) {
      queryRequest[q] = r;
      queryKvLimit[q] = base + j + 1;
    }
    // queries j ≥ pos - base see node at pos (their limit base + j + 1 > pos)
    for (let x = leaf; x !== -1; x = par[x]) {
      const jmin = pos[x] - base;
      vcnt[x] += jmin <= 0 ? nq : nq - jmin;
    }
  }
  const vbeg = I(110, N + 1);
  for (let k = 0; k < N; k++) vbeg[k + 1] = vbeg[k] + vcnt[k];
  const vq = I(111, vbeg[N]);
  const cur = I(99, N, false);
  cur.set(vbeg.subarray(0, N));
  for (let r = 0; r < R; r++) {
    const nq = batch.requests[r].numQueries;
    const leaf = leafK[r];
    const base = pos[leaf] + tok[leaf] - nq;
    const q0 = qoff[r];
    for (let x = leaf; x !== -1; x = par[x]) {
      let j = pos[x] - base;
      if (j < 0) j = 0;
      let c = cur[x];
      for (; j < nq; j++) vq[c++] = q0 + j;
      cur[x] = c;
    }
  }

  // ---- row blocks: a group with more rows than the largest tile is split by rows
  const qpb = Math.max(1, Math.floor(tiles.maxRows / g));
  const ptCache = F(95, Math.max(tiles.maxRows, g) + 1);
  const perTok = (rows: number): number => {
    let v = ptCache[rows];
    if (v === 0) v = ptCache[rows] = tiles.perToken(cost, rows);
    return v;
  };
  const nbOf = (nq: number): number => Math.ceil(nq / qpb);
  const rowsOf = (nq: number): number => Math.ceil(nq / nbOf(nq)) * g;

  // ---- fusion: push a node's KV down into its children's columns when cheaper
  const sib = model.siblingByteFactor;
  const byteSlope = cost.kvBytesTok / cost.bwUnit;
  const carry = I(112, N);
  const colPb = I(113, N);
  const pushed = I(97, N);
  if (fuse) {
    const childVis = I(114, N);
    const pushSlope = F(121, N); // Σ_children blocks × per-token cost
    const numKids = I(115, N);
    for (let k = 0; k < N; k++) {
      const p = par[k];
      if (p >= 0) {
        childVis[p] += vcnt[k];
        numKids[p]++;
        const nb = nbOf(vcnt[k]);
        pushSlope[p] += nb * perTok(rowsOf(vcnt[k]));
      }
    }
    for (let k = 0; k < N; k++) {
      const p = par[k];
      if (p >= 0 && pushed[p]) {
        carry[k] = carry[p] + tok[p];
        colPb[k] = colPb[p];
      } else colPb[k] = tree.pb[order[k]];
      const Tk = carry[k] + tok[k];
      if (numKids[k] > 0 && childVis[k] === vcnt[k] && (numKids[k] === 1 || Tk <= fuseMax)) {
        const T = Tk;
        const nb = nbOf(vcnt[k]);
        // own items: nb blocks (siblings' bytes discounted as in the split model below) and one
        // more partial per query to merge; pushed: every child block reads the T tokens again
        const a = perTok(rowsOf(vcnt[k]));
        const sep = (HK * (nb * c0 + T * (nb * a - (nb - 1) * (1 - sib) * byteSlope))) / P + (vcnt[k] * mergePerPartial) / bwTot;
        const push = (HK * T * pushSlope[k]) / P;
        if (push < sep) pushed[k] = 1;
      }
    }
  } else {
    for (let k = 0; k < N; k++) colPb[k] = tree.pb[order[k]];
  }

  // ---- columns (node groups that get items) and the split search
  let C = 0;
  for (let k = 0; k < N; k++) if (!pushed[k]) C++;
  const colNode = I(116, C);
  const colT = I(117, C);
  const colNb = I(118, C);
  const colKmax = I(119, C);
  const colW = F(122, C); // max-CTA work (µs, without c0) of the unsplit column
  const colSum = F(123, C); // Σ CTA work over blocks (µs, without c0), per KV head
  {
    let c = 0;
    for (let k = 0; k < N; k++) {
      if (pushed[k]) continue;
      const T = carry[k] + tok[k];
      const nq = vcnt[k];
      const nb = nbOf(nq);
      const a = perTok(rowsOf(nq));
      colNode[c] = k;
      colT[c] = T;
      colNb[c] = nb;
      colKmax[c] = Math.max(1, Math.min(maxChunks, Math.floor(T / minChunk)));
      colW[c] = T * a;
      colSum[c] = T * (nb * a - (nb - 1) * (1 - sib) * byteSlope);
      c++;
    }
  }
  const colVis = I(124, C);
  for (let c = 0; c < C; c++) colVis[c] = vcnt[colNode[c]];
  const colK = I(120, C);
  splitSearch(C, colW, colSum, colKmax, colNb, colVis, colK, HK, c0, P, model.mergeLaunchUs, mergePerPartial, bwTot, NQ);

  // ---- emit items
  let maxItems = 0;
  let maxIq = 0;
  let maxSegs = 0;
  for (let c = 0; c < C; c++) {
    const k = colNode[c];
    const x = order[k];
    maxItems += colK[c] * colNb[c];
    maxIq += colK[c] * vcnt[k];
    maxSegs += colNb[c] * (tree.pe[x] - colPb[k] + colK[c]);
  }
  // The plan's arrays are views into one fresh buffer, each with room for its upper bound
  // (exact for decode; prefill masking and chunk cuts may leave a little unused), written in
  // place: no second copy of the large arrays.
  // `alloc` (incremental steps) hands out a recycled buffer: its contents are stale, so every
  // array below is written in full up to its used length (mergeBegin is zeroed for counting).
  const outInts = 2 * NQ + 5 * maxItems + 2 * (maxItems + 1) + 2 * maxIq + 3 * maxSegs + NQ + 1;
  const out = alloc ? alloc(outInts) : new Int32Array(outInts);
  let at = 0;
  const view = (n: number): Int32Array => {
    const v = out.subarray(at, at + n);
    at += n;
    return v;
  };
  const outQueryRequest = view(NQ);
  outQueryRequest.set(queryRequest.subarray(0, NQ));
  const outQueryKvLimit = view(NQ);
  outQueryKvLimit.set(queryKvLimit.subarray(0, NQ));
  const itemTile = view(maxItems);
  const itemPos = view(maxItems);
  const itemSegBegin = view(maxItems + 1);
  const itemQueryBegin = view(maxItems + 1);
  const itemPartialBase = view(maxItems);
  const itemNode = view(maxItems);
  const itemQueries = view(maxIq);
  const segPage = view(maxSegs);
  const segSlot = view(maxSegs);
  const segTokens = view(maxSegs);
  const mergeBegin = view(NQ + 1);
  if (alloc) mergeBegin.fill(0);
  const mergeSlots = view(maxIq);
  itemSegBegin[0] = 0;
  itemQueryBegin[0] = 0;
  let ni = 0;
  let nqi = 0;
  let ns = 0;
  // consecutive items mostly share rows and length: remember the last tile choice
  let lastRows = -1;
  let lastT = -1;
  let lastTile = 0;
  for (let c = 0; c < C; c++) {
    const k = colNode[c];
    const x = order[k];
    const req = batch.requests[tree.src[x]];
    const ids = req.pageIds;
    const tks = req.pageTokens;
    const T = colT[c];
    const K = colK[c];
    const nb = colNb[c];
    const nq = vcnt[k];
    const start = pos[k] - carry[k];
    const align = T / K >= 2 * pageSize;
    // page cursor over the column's pages
    const cpb = colPb[k];
    const lastPage = tree.pe[x] - 1 - cpb;
    // every page but the last holds pageSize tokens (each holds at most that many)
    const fullPages = T - tks[cpb + lastPage] === lastPage * pageSize;
    let s = cpb;
    let off = 0; // column offset of page s's first token
    let a = 0;
    for (let j = 0; j < K; j++) {
      let b = j + 1 === K ? T : Math.floor(((j + 1) * T) / K);
      if (align && j + 1 < K) b = Math.round(b / pageSize) * pageSize;
      // segments of [a, b): whole pages copied in bulk, the first and last cut where the chunk
      // starts or ends inside a page. Invariant: page s holds column offsets [off, off + tks[s]).
      const sb = ns;
      const s0 = s;
      const off0 = off;
      if (fullPages) {
        // pages before the column's last are full: the page holding offset b - 1 is direct
        const e = cpb + Math.min(((b - 1) / pageSize) | 0, lastPage);
        off = (e - cpb) * pageSize;
        s = e;
      } else while (off + tks[s] < b) off += tks[s++];
      const cnt = s - s0 + 1;
      if (cnt >= 32) {
        segPage.set(ids.subarray(s0, s + 1), ns);
        segTokens.set(tks.subarray(s0, s + 1), ns);
        segSlot.fill(0, ns, ns + cnt);
      } else {
        for (let z = 0; z < cnt; z++) {
          segPage[ns + z] = ids[s0 + z];
          segTokens[ns + z] = tks[s0 + z];
          segSlot[ns + z] = 0;
        }
      }
      segSlot[ns] = a - off0;
      if (cnt === 1) segTokens[ns] = b - a;
      else {
        segTokens[ns] -= a - off0;
        segTokens[ns + cnt - 1] = b - off;
      }
      ns += cnt;
      if (b === off + tks[s]) off += tks[s++];
      const se = ns;
      const t = b - a;
      const absA = start + a;
      // row blocks of the group
      const base = Math.floor(nq / nb);
      const extra = nq - base * nb;
      let qb = vbeg[k];
      let emitted = false;
      for (let blk = 0; blk < nb; blk++) {
        const cnt = base + (blk < extra ? 1 : 0);
        const q0 = nqi;
        for (let z = qb; z < qb + cnt; z++) {
          const q = vq[z];
          // causal mask: a query whose limit is at or before the chunk start sees none of it
          if (queryKvLimit[q] > absA) itemQueries[nqi++] = q;
        }
        qb += cnt;
        const got = nqi - q0;
        if (got === 0) continue;
        let segStart = sb;
        if (emitted) {
          // row-split sibling: the same KV segments again, right after the first
          segStart = ns;
          segPage.copyWithin(ns, sb, se);
          segSlot.copyWithin(ns, sb, se);
          segTokens.copyWithin(ns, sb, se);
          ns += se - sb;
        }
        emitted = true;
        itemSegBegin[ni] = segStart;
        itemSegBegin[ni + 1] = ns;
        itemQueryBegin[ni] = q0;
        itemQueryBegin[ni + 1] = nqi;
        itemPos[ni] = absA;
        const rows = got * g;
        if (rows !== lastRows || t !== lastT) {
          lastRows = rows;
          lastT = t;
          lastTile = tiles.choose(cost, rows, t);
        }
        itemTile[ni] = lastTile;
        itemNode[ni] = k;
        ni++;
      }
      // every block of this chunk masked out: drop its segments
      if (!emitted) ns = sb;
      a = b;
    }
  }
  // partial slots: item i's queries take slots [itemQueryBegin[i], itemQueryBegin[i + 1])
  for (let z = 0; z < nqi; z++) mergeBegin[itemQueries[z] + 1]++;
  for (let q = 0; q < NQ; q++) mergeBegin[q + 1] += mergeBegin[q];
  const mc = I(98, NQ, false);
  mc.set(mergeBegin.subarray(0, NQ));
  // item order is node order (ancestors first) then chunk order: each list runs root → leaf
  for (let z = 0; z < nqi; z++) mergeSlots[mc[itemQueries[z]]++] = z;
  // partial slots: item i's queries take slots [itemQueryBegin[i], itemQueryBegin[i + 1])
  itemPartialBase.set(itemQueryBegin.subarray(0, ni));

  return {
    version: CONTRACT_VERSION,
    planner: 'prefix',
    config: { ...config },
    numQueries: NQ,
    queryRequest: outQueryRequest,
    queryKvLimit: outQueryKvLimit,
    tiles: tiles.menu.map((t) => ({ rows: t.rows, kvBlock: t.kvBlock })),
    numItems: ni,
    itemTile: itemTile.subarray(0, ni),
    itemPos: itemPos.subarray(0, ni),
    itemSegBegin: itemSegBegin.subarray(0, ni + 1),
    itemQueryBegin: itemQueryBegin.subarray(0, ni + 1),
    itemQueries: itemQueries.subarray(0, nqi),
    itemPartialBase: itemPartialBase.subarray(0, ni),
    itemNode: itemNode.subarray(0, ni),
    segPage: segPage.subarray(0, ns),
    segSlot: segSlot.subarray(0, ns),
    segTokens: segTokens.subarray(0, ns),
    numPartials: nqi,
    mergeBegin,
    mergeSlots: mergeSlots.subarray(0, nqi),
  };
}
