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
  /**
   * Hybrid batches (prefill chunks beside decodes): 'separate' (default) plans the prefill
   * requests and the decode requests as two sets of groups in one plan (a shared node is read once
   * per set, as two separate launches would; one launch, one merge); 'packed' gives a node shared
   * by both kinds one group with all their queries. See hybrid.ts (H100: H2 2778 → 2455 µs).
   */
  hybridLayout?: 'packed' | 'separate';
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

// Initial values of typed-array fields (replaced before use): shared, not one per field and object.
const NO_I32 = new Int32Array(0);
const NO_F64 = new Float64Array(0);
const NO_U8 = new Uint8Array(0);

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
const U8S: Uint8Array[] = [];
function U8(slot: number, n: number): Uint8Array {
  let a = U8S[slot];
  if (!a || a.length < n) U8S[slot] = a = new Uint8Array(Math.max(64, n, 2 * (a?.length ?? 0)));
  return a;
}
function F(slot: number, n: number, zero = true): Float64Array {
  let a = F64[slot];
  if (!a || a.length < n) {
    a = new Float64Array(Math.max(64, n, 2 * (a?.length ?? 0)));
    F64[slot] = a;
  } else if (zero) a.fill(0, 0, n);
  return a;
}
// Under Node, plan buffers come from Buffer.allocUnsafeSlow: not zero-filled (every element of a
// plan is written), which saves a pass over the largest memory a plan touches; it never comes
// from the shared small-buffer pool. Elsewhere a plain Int32Array.
const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(size: number): Uint8Array } }).Buffer;
function freshInts(n: number): Int32Array {
  if (NodeBuffer && n >= 256) {
    const b = NodeBuffer.allocUnsafeSlow(n * 4);
    return new Int32Array(b.buffer, b.byteOffset, n);
  }
  return new Int32Array(n);
}

function configKey(config: Batch['config']): string {
  return `${config.numQoHeads}/${config.numKvHeads}/${config.headDim}/${config.kvDtype}`;
}
// The model objects depend only on (capabilities, options, config); consecutive plans of one
// state reuse them. Capabilities and options objects are treated as immutable once planned with.
let lastModel: { caps: BackendCapabilities; menu: unknown; units: number; bw: number | undefined; opts: PrefixPlannerOptions; cfg: string; model: CostModelParams; cost: CtaCost; tiles: TileChooser; waveByQ: Float64Array | null } | undefined;
function modelFor(caps: BackendCapabilities, opts: PrefixPlannerOptions, config: Batch['config']): { model: CostModelParams; cost: CtaCost; tiles: TileChooser; waveByQ: Float64Array | null } {
  const cfg = configKey(config);
  const l = lastModel;
  if (l && l.caps === caps && l.menu === caps.tileMenu && l.units === caps.parallelUnits && l.bw === caps.readBandwidthGBs && l.opts === opts && l.cfg === cfg) return l;
  const model = costModel(caps, opts.cost);
  const tiles = new TileChooser(caps.tileMenu);
  const waveByQ = waveWeights(model, tiles, config.numQoHeads / config.numKvHeads);
  lastModel = { caps, menu: caps.tileMenu, units: caps.parallelUnits, bw: caps.readBandwidthGBs, opts, cfg, model, cost: new CtaCost(model, config), tiles, waveByQ };
  return lastModel;
}

/** A CTA's weight in the wave term: 1, or from waveByQ by its row block's query count (a column of
 * `vis` queries cut into `nb` blocks). */
function ctaWaveWeight(waveByQ: Float64Array | null, vis: number, nb: number): number {
  return waveByQ === null ? 1 : waveByQ[nb <= 1 ? vis : ((vis + nb - 1) / nb) | 0];
}

/**
 * The wave term's weight of one CTA by its row block's query count q (index q ≤ the largest
 * tile's queries): waveSlots / the slots of its tile (model.tileWaveSlots: CTAs of tiles of at least
 * minRows rows fit that many at once, e.g. one per SM instead of two), so
 * ceil(Σ weights / waveSlots) counts waves of mixed tiles. null without tile entries (weight 1).
 */
function waveWeights(model: CostModelParams, tiles: TileChooser, g: number): Float64Array | null {
  const entries = model.tileWaveSlots;
  if (model.waveSlots <= 0 || entries.length === 0) return null;
  const qMax = Math.max(1, Math.floor(tiles.maxRows / g));
  const w = new Float64Array(qMax + 1);
  for (let q = 0; q <= qMax; q++) {
    const R = tiles.rowsFor(Math.max(1, q) * g);
    let slots = model.waveSlots;
    let best = -1;
    for (const e of entries) if (e.minRows <= R && e.minRows > best) ((best = e.minRows), (slots = e.waveSlots));
    w[q] = model.waveSlots / slots;
  }
  return w;
}

/**
 * What a split search found that does not depend on the leaf columns: the groups of splittable
 * non-leaf columns, their largest work, the partials, the non-leaf constant columns' sum and
 * maximum, and the chosen target. A decode step that only lengthens leaves redoes the search from
 * this and the leaves' own part (`splitSearchLeaves`): the same operations in the same order as
 * the full search.
 */
export class SplitCache {
  /** Layout generation this holds for (-1: nothing). */
  gen = -1;
  G = 0;
  groupCol: Int32Array = NO_I32;
  groupN: Int32Array = NO_I32;
  Wmax = 0;
  basePartials = 0;
  otherSum = 0;
  otherMax = 0;
  tau = Infinity;
}

/**
 * The leaf columns' part of a split search, built by a decode step's pass over the leaves (in
 * column order) exactly as splitSearch builds it: the constant (unsplittable) leaves' sum and
 * largest work, and the splittable leaves in runs of identical ones (`runs` first columns in
 * `runCol`, lengths in `runLen`) and their largest work.
 */
export class LeafSplit {
  sum = 0;
  max = 0;
  Wmax = 0;
  runs = 0;
  runCol: Int32Array = NO_I32;
  runLen: Int32Array = NO_I32;
  /** Before a pass: capacity for `n` runs, nothing counted. */
  reset(n: number): void {
    this.sum = 0;
    this.max = 0;
    this.Wmax = 0;
    this.runs = 0;
    if (this.runCol.length < n) {
      this.runCol = new Int32Array(Math.max(64, n));
      this.runLen = new Int32Array(Math.max(64, n));
    }
  }
}

/**
 * Runs of identical splittable columns (first column `split[z]`, length `runLen[z]`) merged into
 * groups in place (runs with identical columns further apart: the nodes of one tree level,
 * separated by their subtrees); returns the group count. Pairwise search, stopped past 64 groups.
 */
function mergeRuns(S: number, split: Int32Array, runLen: Int32Array, colW: Float64Array, colSum: Float64Array, colKmax: Int32Array, colNb: Int32Array, colVis: Int32Array): number {
  let G = 0;
  for (let z = 0; z < S; z++) {
    const c = split[z];
    const n = runLen[z];
    let y = 0;
    if (G <= 64) {
      for (; y < G; y++) {
        const p = split[y];
        if (colW[c] === colW[p] && colSum[c] === colSum[p] && colKmax[c] === colKmax[p] && colNb[c] === colNb[p] && colVis[c] === colVis[p]) break;
      }
    } else y = G;
    if (y < G) runLen[y] += n;
    else {
      split[G] = c;
      runLen[G++] = n;
    }
  }
  return G;
}

// Leaf items' tiles by token count, for the model and row count last asked (decode steps choose
// one per leaf, and leaves of many lengths would run the tile choice for each).
let tcTiles: TileChooser | undefined;
let tcCost: CtaCost | undefined;
let tcRows = -1;
let tcByT = new Int32Array(0);
function leafTileFor(tiles: TileChooser, cost: CtaCost, rows: number, T: number): number {
  if (tiles !== tcTiles || cost !== tcCost || rows !== tcRows) {
    tcTiles = tiles;
    tcCost = cost;
    tcRows = rows;
    tcByT.fill(-1);
  }
  if (T >= tcByT.length) {
    if (T >= 1 << 20) return tiles.choose(cost, rows, T);
    const a = new Int32Array(Math.min(1 << 20, Math.max(1024, 2 * tcByT.length, T + 1))).fill(-1);
    a.set(tcByT);
    tcByT = a;
  }
  let v = tcByT[T];
  if (v < 0) v = tcByT[T] = tiles.choose(cost, rows, T);
  return v;
}

/**
 * The split search (see README "Split"): writes each column's KV chunk count into colK. Columns
 * that cannot be split (kmax 1) add a constant; only the others are re-evaluated for each target
 * τ = Wmax / k. Total work only grows as τ shrinks, so the search stops once the total alone
 * exceeds the best predicted time. Shared by full builds and incremental patches, so both decide
 * identically (same operations in the same order). Leaf columns (`colLeaf`) and the others are
 * kept apart, each in column order: constant sums in two accumulators (then added), splittable
 * columns in runs of identical ones and groups of identical runs, the others' groups first. A
 * decode step redoes only the leaves' part. With `cache`, the others' part is kept there for
 * layout generation `gen`.
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
  waveSlots: number,
  colLeaf: Uint8Array,
  cache?: SplitCache,
  gen = -1,
  waveByQ: Float64Array | null = null,
): void {
  let otherSum = 0;
  let otherMax = 0;
  let otherWmax = 0;
  let basePartials = 0;
  // Splittable columns in runs of identical ones (the leaves of one parent usually are): each run
  // is evaluated once per target, times its length.
  const split = I(96, C, false);
  const runLen = I(131, C, false);
  let S = 0;
  const leaf = splitLeafScratch;
  leaf.reset(C);
  const lCol = leaf.runCol;
  const lLen = leaf.runLen;
  let LS = 0;
  for (let c = 0; c < C; c++) {
    basePartials += colVis[c];
    const W = colW[c];
    if (colLeaf[c] !== 0) {
      if (colKmax[c] === 1) {
        leaf.sum += HK * (colNb[c] * c0 + colSum[c]);
        if (W > leaf.max) leaf.max = W;
        continue;
      }
      if (W > leaf.Wmax) leaf.Wmax = W;
      if (LS > 0) {
        const p = lCol[LS - 1];
        if (W === colW[p] && colSum[c] === colSum[p] && colKmax[c] === colKmax[p] && colNb[c] === colNb[p] && colVis[c] === colVis[p]) {
          lLen[LS - 1]++;
          continue;
        }
      }
      lCol[LS] = c;
      lLen[LS++] = 1;
      continue;
    }
    if (colKmax[c] === 1) {
      otherSum += HK * (colNb[c] * c0 + colSum[c]);
      if (W > otherMax) otherMax = W;
      continue;
    }
    if (W > otherWmax) otherWmax = W;
    if (S > 0) {
      const p = split[S - 1];
      if (W === colW[p] && colSum[c] === colSum[p] && colKmax[c] === colKmax[p] && colNb[c] === colNb[p] && colVis[c] === colVis[p]) {
        runLen[S - 1]++;
        continue;
      }
    }
    split[S] = c;
    runLen[S++] = 1;
  }
  leaf.runs = LS;
  const G = mergeRuns(S, split, runLen, colW, colSum, colKmax, colNb, colVis);
  if (cache) {
    if (cache.groupCol.length < G) {
      cache.groupCol = new Int32Array(2 * G);
      cache.groupN = new Int32Array(2 * G);
    }
    cache.groupCol.set(split.subarray(0, G));
    cache.groupN.set(runLen.subarray(0, G));
    cache.G = G;
    cache.Wmax = otherWmax;
    cache.basePartials = basePartials;
    cache.otherSum = otherSum;
    cache.otherMax = otherMax;
    cache.gen = gen;
  }
  const bestTau = leafSearch(G, split, runLen, leaf, colW, colSum, colKmax, colNb, colVis, HK, c0, P, mergeLaunchUs, mergePerPartial, bwTot, NQ, waveSlots, otherWmax, otherSum, otherMax, basePartials, C, waveByQ);
  if (cache) cache.tau = bestTau;
  for (let c = 0; c < C; c++) {
    const W = colW[c];
    let k = 1;
    if (W > bestTau && colKmax[c] > 1) k = Math.min(colKmax[c], Math.ceil(W / bestTau));
    colK[c] = k;
  }
}
const splitLeafScratch = new LeafSplit();

/**
 * The targets search of splitSearch from the non-leaf part (groups `split`/`runLen` [0, G) —
 * overwritten past G — and the sums) and the leaves' part (`leaf`, whose runs are the leaf groups,
 * after the others'). `C` < 0: the constant columns cannot be listed (NaN where the wave term
 * needs them).
 */
function leafSearch(G: number, split: Int32Array, runLen: Int32Array, leaf: LeafSplit, colW: Float64Array, colSum: Float64Array, colKmax: Int32Array, colNb: Int32Array, colVis: Int32Array, HK: number, c0: number, P: number, mergeLaunchUs: number, mergePerPartial: number, bwTot: number, NQ: number, waveSlots: number, otherWmax: number, otherSum: number, otherMax: number, basePartials: number, C: number, waveByQ: Float64Array | null = null): number {
  // the leaves' runs are their groups (not merged further: leaves of many lengths make many runs)
  const LG = leaf.runs;
  for (let z = 0; z < LG; z++) {
    split[G + z] = leaf.runCol[z];
    runLen[G + z] = leaf.runLen[z];
  }
  const constSum = otherSum + leaf.sum;
  const constMax = otherMax > leaf.max ? otherMax : leaf.max;
  const Wmax = otherWmax > leaf.Wmax ? otherWmax : leaf.Wmax;
  return searchTau(G, LG, split, runLen, colW, colSum, colKmax, colNb, colVis, HK, c0, P, mergeLaunchUs, mergePerPartial, bwTot, NQ, waveSlots, Wmax, leaf.Wmax, constSum, constMax, basePartials, C, waveByQ);
}

/**
 * The split search of a decode step that changed only leaf columns (their inputs written, their
 * part in `leaf`), from a search of the same layout (`cache`): whether any column's chunk count
 * changes (a leaf's from 1: patches need leaves of one item); null where the wave term needs the
 * constant columns one by one (the caller runs splitSearch).
 */
export function splitSearchLeaves(cache: SplitCache, leaf: LeafSplit, colW: Float64Array, colSum: Float64Array, colKmax: Int32Array, colNb: Int32Array, colVis: Int32Array, colK: Int32Array, HK: number, c0: number, P: number, mergeLaunchUs: number, mergePerPartial: number, bwTot: number, NQ: number, waveSlots: number, waveByQ: Float64Array | null = null): boolean | null {
  const G = cache.G;
  const n = G + leaf.runs;
  const split = I(96, n, false);
  const runLen = I(131, n, false);
  split.set(cache.groupCol.subarray(0, G));
  runLen.set(cache.groupN.subarray(0, G));
  const tau = leafSearch(G, split, runLen, leaf, colW, colSum, colKmax, colNb, colVis, HK, c0, P, mergeLaunchUs, mergePerPartial, bwTot, NQ, waveSlots, cache.Wmax, cache.otherSum, cache.otherMax, cache.basePartials, -1, waveByQ);
  if (Number.isNaN(tau)) return null;
  // one chunk count per group (identical columns); leaves had one chunk, and keep it for τ ≥ their
  // largest work
  for (let z = 0, nz = tau >= leaf.Wmax ? G : G + leaf.runs; z < nz; z++) {
    const c = split[z];
    const W = colW[c];
    const k = chunksFor(W, tau, colKmax[c]);
    if (k !== (z < G ? colK[c] : 1)) return true;
  }
  cache.tau = tau;
  return false;
}

/** KV chunks of a column whose whole-node work is W, for the target chunk work τ: ceil(W / τ), at most kmax. */
function chunksFor(W: number, tau: number, kmax: number): number {
  if (!(W > tau)) return 1;
  const k = Math.ceil(W / tau);
  return k > kmax ? kmax : k;
}

/**
 * The candidates loop of the split search: the target τ with the lowest predicted time. `C` < 0:
 * the constant columns cannot be listed (splitSearchLeaves): NaN where the wave term needs them.
 */
function searchTau(
  S: number,
  LG: number,
  split: Int32Array,
  runLen: Int32Array,
  colW: Float64Array,
  colSum: Float64Array,
  colKmax: Int32Array,
  colNb: Int32Array,
  colVis: Int32Array,
  HK: number,
  c0: number,
  P: number,
  mergeLaunchUs: number,
  mergePerPartial: number,
  bwTot: number,
  NQ: number,
  waveSlots: number,
  Wmax: number,
  leafWmax: number,
  constSum: number,
  constMax: number,
  basePartials: number,
  C: number,
  waveByQ: Float64Array | null = null,
): number {
  let bestPred = Infinity;
  let bestTau = Infinity;
  // Groups [0, S) are the other columns', [S, S + LG) the leaves'. The leaf groups' terms are
  // summed apart (from 0, in group order) and then added; for every target τ ≥ leafWmax each of
  // them has one chunk, and that sum is the same constant (computed once, the same way).
  const SL = S + LG;
  let leafConst = 0;
  for (let z = S; z < SL; z++) {
    const c = split[z];
    leafConst += runLen[z] * HK * (1 * colNb[c] * c0 + colSum[c]);
  }
  if (Wmax > 0) {
    for (const kc of K_CANDIDATES) {
      const tau = Wmax / kc;
      let sum = constSum;
      let mx = constMax;
      let extraPartials = 0;
      const leavesWhole = tau >= leafWmax;
      // The leaf groups' terms go to `ls` (summed apart, then added: the order leafConst uses).
      let ls = 0;
      for (let z = 0, zEnd = leavesWhole ? S : SL; z < zEnd; z++) {
        const c = split[z];
        const n = runLen[z];
        const W = colW[c];
        const k = chunksFor(W, tau, colKmax[c]);
        extraPartials += n * (k - 1) * colVis[c];
        const t = n * HK * (k * colNb[c] * c0 + colSum[c]);
        if (z < S) sum += t;
        else ls += t;
        const w = W / k;
        if (w > mx) mx = w;
      }
      if (leavesWhole) {
        sum += leafConst;
        if (leafWmax > mx) mx = leafWmax;
      } else {
        sum += ls;
      }
      const total = sum / P;
      const merge = basePartials + extraPartials > NQ ? mergeLaunchUs + (extraPartials * mergePerPartial) / bwTot : 0;
      let longest = mx + c0;
      if (waveSlots > 0) {
        // Wave quantisation: the CTAs within a factor 2 of the longest run in ceil(n / slots)
        // waves of about the longest CTA's time (W5's root: 256 CTAs in 264 slots is one wave,
        // 320 are two, and the second wave costs more than the shorter CTAs saved).
        const thr = mx / 2;
        let big = 0;
        // (leaf groups with one chunk each count only from leafWmax ≥ thr)
        const ZL = leavesWhole && leafWmax < thr ? S : SL;
        for (let z = 0; z < ZL; z++) {
          const c = split[z];
          const W = colW[c];
          const k = chunksFor(W, tau, colKmax[c]);
          if (W / k >= thr) big += runLen[z] * HK * colNb[c] * k * ctaWaveWeight(waveByQ, colVis[c], colNb[c]);
        }
        if (constMax >= thr) {
          if (C < 0) return NaN;
          for (let c = 0; c < C; c++) if (colKmax[c] === 1 && colW[c] >= thr) big += HK * colNb[c] * ctaWaveWeight(waveByQ, colVis[c], colNb[c]);
        }
        longest *= Math.ceil(big / waveSlots);
      }
      const pred = Math.max(total, longest) + merge;
      if (pred < bestPred - 1e-9) {
        bestPred = pred;
        bestTau = tau;
      }
      if (total > bestPred) break;
    }
  }
  return bestTau;
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
  layout?: PlanLayout,
): Plan {
  const config = batch.config;
  const { model, cost, tiles, waveByQ } = modelFor(caps, opts, config);
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
  // each request object is read once here (they are scattered on the heap): its query count is
  // kept in nqOf for the two passes below
  const qoff = I(105, R + 1);
  const nqOf = I(100, R, false);
  const reqs = batch.requests;
  for (let r = 0; r < R; r++) {
    const raw = reqs[r].numQueries;
    // not a positive integer: -1, reported with the raw value below
    const nq = Number.isInteger(raw) && raw >= 1 && raw <= 0x3fffffff ? raw : -1;
    nqOf[r] = nq;
    qoff[r + 1] = qoff[r] + (nq > 0 ? nq : 0);
  }
  const NQ = qoff[R];
  const queryRequest = I(106, NQ);
  const queryKvLimit = I(107, NQ);
  const leafK = I(108, R);
  const vcnt = I(109, N);
  for (let r = 0; r < R; r++) {
    const leaf = idx[tree.reqLeaf[r]];
    leafK[r] = leaf;
    const L = pos[leaf] + tok[leaf];
    const nq = nqOf[r];
    if (!(nq >= 1 && nq <= L)) fail('bad-batch', `request ${r}: numQueries ${reqs[r].numQueries} must be 1..its KV tokens (${L})`);
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
    const nq = nqOf[r];
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
  // per node: row blocks and the per-token CTA cost of a block's rows (once, read by every pass)
  const nbK = I(132, N, false);
  const aK = F(133, N, false);
  {
    let lastNq = -1;
    let lastNb = 0;
    let lastA = 0;
    for (let k = 0; k < N; k++) {
      const nq = vcnt[k];
      if (nq !== lastNq) {
        lastNq = nq;
        // integer ceilings (Math.ceil of a quotient deoptimised this function again and again:
        // "lost precision")
        lastNb = nq <= qpb ? 1 : ((nq + qpb - 1) / qpb) | 0;
        const rows = (((nq + lastNb - 1) / lastNb) | 0) * g;
        let v = ptCache[rows];
        if (v === 0) v = ptCache[rows] = tiles.perToken(cost, rows);
        lastA = v;
      }
      nbK[k] = lastNb;
      aK[k] = lastA;
    }
  }

  // ---- fusion: push a node's KV down into its children's columns when cheaper
  const sib = model.siblingByteFactor;
  const byteSlope = cost.kvBytesTok / cost.bwUnit;
  const carry = I(112, N);
  const colPb = I(113, N);
  const pushed = I(97, N);
  // children per node (a node is a leaf where 0): counted by the fusion pass, else below
  const numKids = I(115, N);
  let kidsCounted = false;
  if (fuse) {
    const childVis = I(114, N);
    const pushSlope = F(121, N); // Σ_children blocks × per-token cost
    kidsCounted = true;
    for (let k = 0; k < N; k++) {
      const p = par[k];
      if (p >= 0) {
        childVis[p] += vcnt[k];
        numKids[p]++;
        pushSlope[p] += nbK[k] * aK[k];
      }
    }
    let anyPushed = false;
    for (let k = 0; k < N; k++) {
      const p = par[k];
      if (p >= 0 && pushed[p]) {
        carry[k] = carry[p] + tok[p];
        colPb[k] = colPb[p];
      } else colPb[k] = tree.pb[order[k]];
      const Tk = carry[k] + tok[k];
      if (numKids[k] > 0 && childVis[k] === vcnt[k] && (numKids[k] === 1 || Tk <= fuseMax)) {
        const T = Tk;
        const nb = nbK[k];
        // own items: nb blocks (siblings' bytes discounted as in the split model below) and one
        // more partial per query to merge; pushed: every child block reads the T tokens again
        const a = aK[k];
        const sep = (HK * (nb * c0 + T * (nb * a - (nb - 1) * (1 - sib) * byteSlope))) / P + (vcnt[k] * mergePerPartial) / bwTot;
        const push = (HK * T * pushSlope[k]) / P;
        if (push < sep) {
          pushed[k] = 1;
          anyPushed = true;
        }
      }
    }
    // The pass above prices a push at one read per child block, but a child may be pushed too:
    // the node's tokens are then read by every column below that child (W3 at 1/16 on one unit
    // with fuseMaxTokens ≥ 250: the shared root went to all 64 leaves, as many reads as
    // perRequest). Children first, re-price each push with the columns its tokens finally land
    // in, and keep the node's own items when that is not cheaper; then redo carries. (Nothing
    // pushed, as in W1–W5: nothing to re-price, and the carries and page starts above stand.)
    const dest = anyPushed ? F(130, N) : NO_F64; // Σ per-token cost of the blocks a pushed node's tokens are read by
    for (let k = anyPushed ? N - 1 : -1; k >= 0; k--) {
      const nb = nbK[k];
      const a = aK[k];
      if (pushed[k]) {
        const T = carry[k] + tok[k];
        const sep = (HK * (nb * c0 + T * (nb * a - (nb - 1) * (1 - sib) * byteSlope))) / P + (vcnt[k] * mergePerPartial) / bwTot;
        const push = (HK * T * dest[k]) / P;
        if (!(push < sep)) pushed[k] = 0;
      }
      const p = par[k];
      if (p >= 0) dest[p] += pushed[k] ? dest[k] : nb * a;
    }
    for (let k = 0; anyPushed && k < N; k++) {
      const p = par[k];
      if (p >= 0 && pushed[p]) {
        carry[k] = carry[p] + tok[p];
        colPb[k] = colPb[p];
      } else {
        carry[k] = 0;
        colPb[k] = tree.pb[order[k]];
      }
    }
  } else {
    for (let k = 0; k < N; k++) colPb[k] = tree.pb[order[k]];
  }

  // ---- columns (node groups that get items) and the split search
  let C = 0;
  for (let k = 0; k < N; k++) if (!pushed[k]) C++;
  const colNode = I(116, C, false);
  // A state's emit writes the per-column arrays straight into its layout (no copies after);
  // every one of them is written in full below.
  if (layout) layout.ensure(C);
  const colT = layout ? layout.colT : I(117, C, false);
  const colNb = layout ? layout.colNb : I(118, C, false);
  const colKmax = layout ? layout.colKmax : I(119, C, false);
  const colW = layout ? layout.colW : F(122, C, false); // max-CTA work (µs, without c0) of the unsplit column
  const colSum = layout ? layout.colSum : F(123, C, false); // Σ CTA work over blocks (µs, without c0), per KV head
  const colVis = layout ? layout.colVis : I(124, C, false);
  // leaf columns (nodes without children): the split search sums their constants apart
  if (!kidsCounted) for (let k = 0; k < N; k++) if (par[k] >= 0) numKids[par[k]]++;
  const colLeaf = layout ? layout.colLeaf : U8(0, C);
  // what a state's layout records per column besides (see the end), written in the same pass
  let nl = 0;
  {
    let c = 0;
    for (let k = 0; k < N; k++) {
      if (pushed[k]) continue;
      const T = carry[k] + tok[k];
      const nq = vcnt[k];
      const nb = nbK[k];
      const a = aK[k];
      const coef = nb * a - (nb - 1) * (1 - sib) * byteSlope;
      const leaf = numKids[k] === 0 ? 1 : 0;
      colNode[c] = k;
      colT[c] = T;
      colNb[c] = nb;
      colKmax[c] = Math.max(1, Math.min(maxChunks, Math.floor(T / minChunk)));
      colW[c] = T * a;
      colSum[c] = T * coef;
      colVis[c] = nq;
      colLeaf[c] = leaf;
      if (layout) {
        layout.colA[c] = a;
        layout.colCoef[c] = coef;
        layout.colPool[c] = order[k];
        layout.colCarry[c] = carry[k];
        layout.colPb[c] = colPb[k];
        if (leaf === 1) layout.leafCols[nl++] = c;
      }
      c++;
    }
  }
  const colK = layout ? layout.colK : I(120, C, false);
  const gen = layout ? ++layoutGen : -1;
  splitSearch(C, colW, colSum, colKmax, colNb, colVis, colK, HK, c0, P, model.mergeLaunchUs, mergePerPartial, bwTot, NQ, model.waveSlots, colLeaf, layout?.split, gen, waveByQ);

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
  // `alloc` (incremental steps) hands out a recycled buffer, `freshInts` uninitialised memory:
  // either way every array below is written in full up to its used length (mergeBegin is zeroed
  // for counting).
  const outInts = 2 * NQ + 5 * maxItems + 2 * (maxItems + 1) + 2 * maxIq + 3 * maxSegs + NQ + 1;
  const out = alloc ? alloc(outInts) : freshInts(outInts);
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
  mergeBegin.fill(0);
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
  const colItem = layout ? layout.colItem : I(125, C + 1, false);
  for (let c = 0; c < C; c++) {
    colItem[c] = ni;
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
    // page cursor over the column's pages
    const cpb = colPb[k];
    const lastPage = tree.pe[x] - 1 - cpb;
    if (K === 1 && nq === 1 && lastPage < 32) {
      // One chunk of the column's pages, one row block of one query (a decode leaf): the loop
      // below with K = nb = nq = 1 (the chunk ends at the last page, which holds T - off tokens)
      const cnt = lastPage + 1;
      for (let z = 0; z < cnt; z++) {
        segPage[ns + z] = ids[cpb + z];
        segTokens[ns + z] = tks[cpb + z];
        segSlot[ns + z] = 0;
      }
      segSlot[ns] = 0;
      const tl = tks[cpb + lastPage];
      if (cnt === 1) segTokens[ns] = T;
      else {
        segTokens[ns] = tks[cpb];
        segTokens[ns + lastPage] = tl;
      }
      const q = vq[vbeg[k]];
      if (queryKvLimit[q] > start) {
        itemQueries[nqi] = q;
        itemSegBegin[ni] = ns;
        itemSegBegin[ni + 1] = ns + cnt;
        itemQueryBegin[ni] = nqi;
        itemQueryBegin[ni + 1] = ++nqi;
        itemPos[ni] = start;
        if (g !== lastRows || T !== lastT) {
          lastRows = g;
          lastT = T;
          lastTile = tiles.choose(cost, g, T);
        }
        itemTile[ni] = lastTile;
        itemNode[ni] = k;
        ni++;
        ns += cnt;
      }
      continue;
    }
    const align = T / K >= 2 * pageSize;
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
      const cnt0 = cnt;
      // segments of the chunk's first row block at [sb, sb + cnt)
      // (fill, copyWithin and subarray each cost about 100 ns a call: loops below 32 entries)
      if (fullPages && cnt >= 32) {
        // pages before the column's last hold pageSize tokens: no need to read them
        segPage.set(ids.subarray(s0, s + 1), ns);
        segTokens.fill(pageSize, ns, ns + cnt);
        segSlot.fill(0, ns, ns + cnt);
      } else if (cnt >= 32) {
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
      const slot0 = a - off0;
      segSlot[ns] = slot0;
      if (cnt === 1) segTokens[ns] = b - a;
      else {
        segTokens[ns] = tks[s0] - slot0;
        segTokens[ns + cnt - 1] = b - off;
      }
      if (b === off + tks[s]) off += tks[s++];
      const t = b - a;
      const absA = start + a;
      // row blocks of the group: every emitted block reads the same segments, laid out one
      // after the other (copies made below, in bulk)
      const base = Math.floor(nq / nb);
      const extra = nq - base * nb;
      let qb = vbeg[k];
      let m = 0;
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
        itemSegBegin[ni] = sb + m * cnt0;
        itemSegBegin[ni + 1] = sb + (m + 1) * cnt0;
        m++;
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
      if (m > 1) {
        // copies of the first block's segments for its row-block siblings, doubling the copied
        // run each time (W5's root: 8 blocks in 3 copies per array instead of 7)
        const total = m * cnt0;
        for (let have = cnt0; have < total; ) {
          const c2 = have < total - have ? have : total - have;
          segPage.copyWithin(sb + have, sb, sb + c2);
          segTokens.copyWithin(sb + have, sb, sb + c2);
          have += c2;
        }
        segSlot.fill(0, sb + cnt0, sb + total);
        for (let z = 1; z < m; z++) segSlot[sb + z * cnt0] = slot0;
      }
      // every block of this chunk masked out: no segments
      ns = sb + m * cnt0;
      a = b;
    }
  }
  colItem[C] = ni;
  // partial slots: item i's queries take slots [itemQueryBegin[i], itemQueryBegin[i + 1])
  for (let z = 0; z < nqi; z++) mergeBegin[itemQueries[z] + 1]++;
  for (let q = 0; q < NQ; q++) mergeBegin[q + 1] += mergeBegin[q];
  const mc = I(98, NQ, false);
  mc.set(mergeBegin.subarray(0, NQ));
  // item order is node order (ancestors first) then chunk order: each list runs root → leaf
  for (let z = 0; z < nqi; z++) mergeSlots[mc[itemQueries[z]]++] = z;
  // partial slots: item i's queries take slots [itemQueryBegin[i], itemQueryBegin[i + 1])
  itemPartialBase.set(itemQueryBegin.subarray(0, ni));

  const plan: Plan = {
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
  if (layout) {
    // What an append-only step needs to patch this plan (see patchAppendPlan); the column arrays
    // above are already the layout's.
    layout.C = C;
    layout.gen = gen;
    layout.plan = plan;
    layout.inputs = [caps, caps.tileMenu, caps.parallelUnits, caps.readBandwidthGBs, opts, configKey(config)];
    // (colA, colCoef, colPool, colCarry, colPb and leafCols were written with the columns)
    let patchable = NQ === R;
    const leafCols = layout.leafCols;
    for (let z = 0; patchable && z < nl; z++) {
      const c = leafCols[z];
      if (colK[c] !== 1 || colNb[c] !== 1 || colVis[c] !== 1 || colItem[c + 1] - colItem[c] !== 1) patchable = false;
    }
    layout.numLeafCols = nl;
    // the account path's structural preconditions (see accountStep): request z owns leaf column z
    let excl = nl === R;
    let onePage = false;
    for (let z = 0; excl && z < nl; z++) {
      const x = layout.colPool[layout.leafCols[z]];
      if (tree.reqLeaf[z] !== x || tree.refCount[x] !== 1) excl = false;
      else if (tree.pe[x] - tree.pb[x] === 1) onePage = true;
    }
    layout.leafExclusive = excl;
    layout.onePageLeaves = onePage;
    layout.patchable = patchable;
    layout.g = g;
    layout.params = [HK, c0, P, model.mergeLaunchUs, mergePerPartial, bwTot, minChunk, maxChunks, model.waveSlots];
    layout.waveByQ = waveByQ;
  }
  return plan;
}

/**
 * Per-column record of the last plan a state emitted: enough to redo the split search for new
 * leaf lengths and to patch the plan when nothing else changed (an append-only decode step).
 */
let layoutGen = 0;

/**
 * A recycled plan buffer of a planner state. Patches write the segment arrays at fixed places
 * (capacity `segCap` each) and remember where each column's segments went: a buffer holds the
 * plan of two steps ago, so a shared column whose segments already sit at the same place (same
 * layout generation: no full emit since) is not copied again, and a leaf rewrites only from its
 * last page of then on (the caller promises earlier pages do not change).
 */
export class PlanBuffer {
  data: Int32Array = new Int32Array(0);
  /** Layout generation the recorded positions belong to; -1: nothing known (full emits). */
  gen = -1;
  segCap = 0;
  /** Offset of segPage in `data` when the positions were recorded. */
  segAt = -1;
  colPos: Int32Array = new Int32Array(0);
  colCnt: Int32Array = new Int32Array(0);
  /** The plan a patch last wrote here (views into `data`), while `gen` is known. */
  plan: Plan | undefined;
  /** The layout's `pageEpoch` when `colCnt` was last written for every column (writePatch):
   * equal to the layout's now, the leaves hold as many pages as then. */
  pageEpoch = -1;

  /** At least `ints` int32s, contents unknown (for a full emit). */
  take(ints: number): Int32Array {
    this.gen = -1;
    this.plan = undefined;
    if (this.data.length < ints) this.data = new Int32Array(Math.ceil(ints * 1.25) + 64);
    return this.data;
  }

  clone(): PlanBuffer {
    const b = new PlanBuffer();
    b.data = this.data.slice();
    b.gen = this.gen;
    b.segCap = this.segCap;
    b.segAt = this.segAt;
    b.colPos = this.colPos.slice();
    b.colCnt = this.colCnt.slice();
    b.pageEpoch = this.pageEpoch;
    const p = this.plan;
    if (p) {
      // the same views over the copy
      const map = <T extends Int32Array | undefined>(v: T): T => (v && v.buffer === this.data.buffer ? (new Int32Array(b.data.buffer, v.byteOffset, v.length) as T) : v);
      b.plan = { ...p };
      for (const k of Object.keys(p) as (keyof Plan)[]) {
        const v = p[k];
        if (v instanceof Int32Array) (b.plan as unknown as Record<string, unknown>)[k] = map(v);
      }
    }
    return b;
  }
}

export class PlanLayout {
  C = 0;
  /** Changes with every full emit (patches keep the shared columns, hence the generation). */
  gen = 0;
  /** The plan this layout describes (a patch starts from it). */
  plan: Plan | undefined;
  /** What the cost model was built from (capabilities, menu, units, bandwidth, options, config):
   * a patch needs all of them unchanged. */
  inputs: unknown[] = [];
  /** Every request has one query and every leaf column is one item (one chunk, one row block). */
  patchable = false;
  /** Request z's leaf is leaf column z's node, used by it alone (as of the last emit: decode
   * steps that patch keep the tree's shape). */
  leafExclusive = false;
  /** Some leaf held a single page at the last emit (its key changes when that page grows);
   * cleared by the account path once no leaf does (leaves only grow between emits). */
  onePageLeaves = false;
  /** Bumped whenever a leaf gains a page between emits (see PlanBuffer.pageEpoch). */
  pageEpoch = 0;
  /** The last split search's record for decode steps (see SplitCache). */
  split = new SplitCache();
  /** Steps taken by the account path (accountStep); decode steps (accountStep, batchStep) whose
   * split search ran from `split` and the leaves alone, and those that ran it in full (for
   * reports and tests). */
  accountSteps = 0;
  leafSearches = 0;
  fullSearches = 0;
  g = 1;
  /** HK, c0, parallel units, mergeLaunchUs, mergePerPartial, bwTot, minChunk, maxChunks, waveSlots. */
  params: number[] = [];
  /** The wave term's per-CTA weights by queries per row block (waveWeights), or null. */
  waveByQ: Float64Array | null = null;
  cap = 0;
  colPool: Int32Array = NO_I32;
  colLeaf: Uint8Array = NO_U8;
  /** The leaf columns, ascending. */
  leafCols: Int32Array = NO_I32;
  numLeafCols = 0;
  colCarry: Int32Array = NO_I32;
  colPb: Int32Array = NO_I32;
  colItem: Int32Array = NO_I32;
  colT: Int32Array = NO_I32;
  colKmax: Int32Array = NO_I32;
  colNb: Int32Array = NO_I32;
  colVis: Int32Array = NO_I32;
  colK: Int32Array = NO_I32;
  colW: Float64Array = NO_F64;
  colSum: Float64Array = NO_F64;
  colA: Float64Array = NO_F64;
  colCoef: Float64Array = NO_F64;

  ensure(C: number): void {
    if (this.cap >= C + 1) return;
    const n = Math.ceil((C + 1) * 1.25) + 8;
    this.cap = n;
    // one allocation: 4 float64 and 10 int32 arrays, then the leaf flags
    const buf = new ArrayBuffer(n * (4 * 8 + 10 * 4 + 1));
    let at = 0;
    const f = (): Float64Array => new Float64Array(buf, (at += n * 8) - n * 8, n);
    const i = (): Int32Array => new Int32Array(buf, (at += n * 4) - n * 4, n);
    this.colW = f();
    this.colSum = f();
    this.colA = f();
    this.colCoef = f();
    this.colPool = i();
    this.colCarry = i();
    this.colPb = i();
    this.colItem = i();
    this.colT = i();
    this.colKmax = i();
    this.colNb = i();
    this.colVis = i();
    this.colK = i();
    this.leafCols = i();
    this.colLeaf = new Uint8Array(buf, at, n);
  }

  clone(): PlanLayout {
    const l = new PlanLayout();
    Object.assign(l, this);
    for (const f of ['colPool', 'colLeaf', 'leafCols', 'colCarry', 'colPb', 'colItem', 'colT', 'colKmax', 'colNb', 'colVis', 'colK', 'colW', 'colSum', 'colA', 'colCoef'] as const) {
      (l as unknown as Record<string, Int32Array | Uint8Array | Float64Array>)[f] = this[f].slice();
    }
    l.params = this.params.slice();
    l.inputs = this.inputs.slice();
    const sc = new SplitCache();
    Object.assign(sc, this.split);
    sc.groupCol = this.split.groupCol.slice();
    sc.groupN = this.split.groupN.slice();
    l.split = sc;
    return l;
  }
}

/**
 * An append-only decode step (same requests in the same order, one query each, every request's
 * exclusive leaf extended in place; tree structure unchanged) as a patch of the previous plan:
 * shared columns keep their items, segments, query lists and merge lists (copied in bulk); only
 * the leaf items are rewritten (their pages, their tile) and every query's KV limit. The split
 * search is redone with the new leaf lengths first; when it changes any column's chunk count, or
 * the layout does not qualify, this returns null and the caller emits the plan in full. The result
 * equals `emitPrefixPlan` of the same tree (tested).
 */
export function patchAppendPlan(
  tree: RadixTree,
  batch: Batch,
  caps: BackendCapabilities,
  opts: PrefixPlannerOptions,
  L: PlanLayout,
  buffer?: PlanBuffer,
): Plan | null {
  const prev = L.plan;
  if (!L.patchable || !prev) return null;
  const reqs = batch.requests;
  const R = reqs.length;
  if (prev.numQueries !== R) return null;
  for (let r = 0; r < R; r++) if (reqs[r].numQueries !== 1) return null;
  const config = batch.config;
  const inp = L.inputs;
  if (inp[0] !== caps || inp[1] !== caps.tileMenu || inp[2] !== caps.parallelUnits || inp[3] !== caps.readBandwidthGBs || inp[4] !== opts || inp[5] !== configKey(config)) return null;
  const { cost, tiles } = modelFor(caps, opts, config);
  const C = L.C;
  const [HK, c0, P, mergeLaunchUs, mergePerPartial, bwTot, minChunk, maxChunks, waveSlots] = L.params;
  const { colLeaf, colPool, colCarry, colPb, colItem, colT, colKmax, colW, colSum, colA, colCoef } = L;
  const pSegBegin = prev.itemSegBegin;
  const NI = prev.numItems;
  let NS = pSegBegin[NI];
  const leaves = L.leafCols;
  const tTok = tree.tokens;
  const tPe = tree.pe;
  for (let z = 0, nl = L.numLeafCols; z < nl; z++) {
    const c = leaves[z];
    const x = colPool[c];
    // same expressions as the full build's column setup
    const T = colCarry[c] + tTok[x];
    colT[c] = T;
    colKmax[c] = Math.max(1, Math.min(maxChunks, Math.floor(T / minChunk)));
    colW[c] = T * colA[c];
    colSum[c] = T * colCoef[c];
    const i = colItem[c];
    NS += tPe[x] - colPb[c] - (pSegBegin[i + 1] - pSegBegin[i]);
  }
  const K = I(129, C, false);
  splitSearch(C, colW, colSum, colKmax, L.colNb, L.colVis, K, HK, c0, P, mergeLaunchUs, mergePerPartial, bwTot, R, waveSlots, L.colLeaf, L.split, L.gen, L.waveByQ);
  const prevK = L.colK;
  for (let c = 0; c < C; c++) if (K[c] !== prevK[c]) return null;
  const kvLimit = I(134, R, false);
  for (let r = 0; r < R; r++) {
    const x = tree.reqLeaf[r];
    kvLimit[r] = tree.pos[x] + tree.tokens[x];
  }
  return writePatch(tree, reqs, cost, tiles, L, NS, kvLimit, buffer);
}

/** Per request (indexed by request): the old last page's token count in the new batch, and the
 * new last page's id and token count (batchStep's and accountStep's records). */
interface LeafLast {
  oTok: Int32Array;
  nId: Int32Array;
  nTok: Int32Array;
}

/** `n` segments of a plan at `src` into the segment arrays at `dst` (bulk from 32 on). */
function copySegments(segPage: Int32Array, segSlot: Int32Array, segTokens: Int32Array, pPage: Int32Array, pSlot: Int32Array, pTok: Int32Array, src: number, dst: number, n: number): void {
  if (n >= 32) {
    segPage.set(pPage.subarray(src, src + n), dst);
    segSlot.set(pSlot.subarray(src, src + n), dst);
    segTokens.set(pTok.subarray(src, src + n), dst);
  } else {
    for (let z = 0; z < n; z++) {
      segPage[dst + z] = pPage[src + z];
      segSlot[dst + z] = pSlot[src + z];
      segTokens[dst + z] = pTok[src + z];
    }
  }
}

/** `n` whole pages (slot 0) from `ids`/`tks` at `src` into the segment arrays at `dst`
 * (bulk copies from 32 pages on: each call costs about 100 ns). */
function copyWholePages(segPage: Int32Array, segTokens: Int32Array, segSlot: Int32Array, dst: number, ids: Int32Array, tks: Int32Array, src: number, n: number): void {
  if (n >= 32) {
    segPage.set(ids.subarray(src, src + n), dst);
    segTokens.set(tks.subarray(src, src + n), dst);
    segSlot.fill(0, dst, dst + n);
  } else {
    for (let z = 0; z < n; z++) {
      segPage[dst + z] = ids[src + z];
      segTokens[dst + z] = tks[src + z];
      segSlot[dst + z] = 0;
    }
  }
}

/**
 * The patched plan of an append-only step (see patchAppendPlan): the previous plan's query, item
 * and merge arrays copied in bulk (kept where the buffer holds a plan of this layout generation),
 * the queries' KV limits from `kvLimit`, every leaf item's tile written again, and the segments:
 * the previous plan's copied in spans (one bulk copy per run of columns that stay consecutive),
 * each leaf's last page (and new one) then written from the step's records when `last` is given
 * and the leaf gained at most one page, else the leaf's pages from the request's page lists (only
 * from its last page of two steps ago on, when the recycled buffer still holds the rest).
 */
function writePatch(tree: RadixTree, reqs: Batch['requests'], cost: CtaCost, tiles: TileChooser, L: PlanLayout, NS: number, kvLimit: Int32Array, buffer: PlanBuffer | undefined, last?: LeafLast): Plan {
  const prev = L.plan!;
  const C = L.C;
  const { colLeaf, colPool, colPb, colItem, colT } = L;
  const pSegBegin = prev.itemSegBegin;
  const NI = prev.numItems;
  const R = reqs.length;

  const NIQ = prev.numPartials;
  const NQ = R;
  // Segment arrays at fixed places (capacity segCap each) so that a recycled buffer's segments
  // of two steps ago can stay where they are.
  const B = buffer;
  const pre = 2 * NQ + 5 * NI + 2 * (NI + 1) + NIQ;
  let known = B !== undefined && B.gen === L.gen && B.segAt === pre && B.segCap >= NS;
  const segCap = known ? B!.segCap : B ? Math.ceil(NS * 1.25) + 64 : NS;
  const outInts = pre + 3 * segCap + NQ + 1 + NIQ;
  let out: Int32Array;
  if (B) {
    if (B.data.length < outInts) {
      B.data = new Int32Array(Math.ceil(outInts * 1.25) + 64);
      known = false;
    }
    out = B.data;
    if (!known) {
      if (B.colPos.length < C) {
        B.colPos = new Int32Array(L.cap);
        B.colCnt = new Int32Array(L.cap);
      }
      B.colPos.fill(-1, 0, C);
    }
    B.gen = L.gen;
    B.segCap = segCap;
    B.segAt = pre;
  } else out = freshInts(outInts);
  const colPos = known || B ? B!.colPos : colItem; // colItem: placeholder, unused without a buffer
  const colCnt = known || B ? B!.colCnt : colItem;
  let at = 0;
  const view = (n: number): Int32Array => {
    const v = out.subarray(at, at + n);
    at += n;
    return v;
  };
  // A buffer holding a plan of this layout generation holds its queries, items and merge lists
  // at the same places already (only KV limits, tiles and segments change in decode steps).
  const queryRequest = view(NQ);
  if (!known) queryRequest.set(prev.queryRequest);
  const queryKvLimit = view(NQ);
  queryKvLimit.set(kvLimit.subarray(0, NQ));
  const itemTile = view(NI);
  itemTile.set(prev.itemTile);
  const itemPos = view(NI);
  if (!known) itemPos.set(prev.itemPos);
  const itemSegBegin = view(NI + 1);
  const itemQueryBegin = view(NI + 1);
  if (!known) itemQueryBegin.set(prev.itemQueryBegin);
  const itemPartialBase = view(NI);
  if (!known) itemPartialBase.set(prev.itemPartialBase);
  const itemNode = view(NI);
  if (!known) itemNode.set(prev.itemNode!);
  const itemQueries = view(NIQ);
  if (!known) itemQueries.set(prev.itemQueries);
  const segPage = out.subarray(at, at + NS);
  const segSlot = out.subarray(at + segCap, at + segCap + NS);
  const segTokens = out.subarray(at + 2 * segCap, at + 2 * segCap + NS);
  at += 3 * segCap;
  const mergeBegin = view(NQ + 1);
  if (!known) mergeBegin.set(prev.mergeBegin);
  const mergeSlots = view(NIQ);
  if (!known) mergeSlots.set(prev.mergeSlots);

  const pPage = prev.segPage;
  const pSlot = prev.segSlot;
  const pTok = prev.segTokens;
  const rows = L.g;
  let lastT = -1;
  let lastTile = 0;
  let ns = 0;
  // Segments copied from the previous plan go in spans, each one bulk copy: consecutive columns
  // whose segments stay consecutive (every column up to a leaf that gained a page, or one the
  // buffer already holds in place). The leaves' last segments are written after the copies.
  let sSrc = 0;
  let sDst = 0;
  let sLen = 0;
  const fixPos = I(144, R, false);
  const fixReq = I(145, R, false); // ~r where the leaf gained a page
  let nfix = 0;
  for (let c = 0; c < C; ) {
    if (colLeaf[c] === 0) {
      // a run of shared columns: items and segments as before, segments moved by a constant
      let c1 = c + 1;
      while (c1 < C && colLeaf[c1] === 0) c1++;
      const i0 = colItem[c];
      const i1 = colItem[c1];
      const p0 = pSegBegin[i0];
      const p1 = pSegBegin[i1];
      const d = ns - p0;
      for (let i = i0; i < i1; i++) itemSegBegin[i] = pSegBegin[i] + d;
      const here = B !== undefined && colPos[c] === ns && colCnt[c] === p1 - p0;
      if (B) {
        colPos[c] = ns;
        colCnt[c] = p1 - p0;
      }
      if (p1 > p0 && !here) {
        if (sLen > 0 && sSrc + sLen === p0 && sDst + sLen === ns) sLen += p1 - p0;
        else {
          copySegments(segPage, segSlot, segTokens, pPage, pSlot, pTok, sSrc, sDst, sLen);
          sSrc = p0;
          sDst = ns;
          sLen = p1 - p0;
        }
      }
      ns += p1 - p0;
      c = c1;
      continue;
    }
    // a leaf column: one item over the leaf's pages (and what it carries), whole pages
    const x = colPool[c];
    const i = colItem[c];
    const pb = colPb[c];
    const cnt = tree.pe[x] - pb;
    itemSegBegin[i] = ns;
    const q0 = pSegBegin[i];
    const oc = pSegBegin[i + 1] - q0;
    if (last !== undefined && (cnt === oc || cnt === oc + 1)) {
      // The previous plan holds the leaf's pages (whole pages, in order): copied from there (in
      // the span), the last page (and the new one) written below from the step's records.
      if (sLen > 0 && sSrc + sLen === q0 && sDst + sLen === ns) sLen += oc;
      else {
        copySegments(segPage, segSlot, segTokens, pPage, pSlot, pTok, sSrc, sDst, sLen);
        sSrc = q0;
        sDst = ns;
        sLen = oc;
      }
      const r = tree.src[x];
      fixPos[nfix] = ns + oc - 1;
      fixReq[nfix++] = cnt === oc ? r : ~r;
      if (B !== undefined) {
        colPos[c] = ns;
        colCnt[c] = cnt;
      }
    } else {
      const req = reqs[tree.src[x]];
      // the buffer may hold this leaf's segments of two steps ago at the same place: pages before
      // the last of then are unchanged
      let from = 0;
      if (B !== undefined) {
        if (colPos[c] === ns && colCnt[c] >= 1 && colCnt[c] <= cnt) from = colCnt[c] - 1;
        colPos[c] = ns;
        colCnt[c] = cnt;
      }
      copyWholePages(segPage, segTokens, segSlot, ns + from, req.pageIds, req.pageTokens, pb + from, cnt - from);
    }
    ns += cnt;
    const T = colT[c];
    if (T !== lastT) {
      lastT = T;
      lastTile = leafTileFor(tiles, cost, rows, T);
    }
    itemTile[i] = lastTile;
    c++;
  }
  copySegments(segPage, segSlot, segTokens, pPage, pSlot, pTok, sSrc, sDst, sLen);
  if (last !== undefined) {
    for (let f = 0; f < nfix; f++) {
      const e = fixPos[f];
      const r = fixReq[f];
      if (r >= 0) segTokens[e] = last.nTok[r];
      else {
        segTokens[e] = last.oTok[~r];
        segPage[e + 1] = last.nId[~r];
        segTokens[e + 1] = last.nTok[~r];
        segSlot[e + 1] = 0;
      }
    }
  }
  itemSegBegin[NI] = ns;
  const plan: Plan = {
    version: CONTRACT_VERSION,
    planner: 'prefix',
    // the previous plan's config and tile list (same inputs; plans treat them as read-only)
    config: prev.config,
    numQueries: NQ,
    queryRequest,
    queryKvLimit,
    tiles: prev.tiles,
    numItems: NI,
    itemTile,
    itemPos,
    itemSegBegin,
    itemQueryBegin,
    itemQueries,
    itemPartialBase,
    itemNode,
    segPage,
    segSlot,
    segTokens,
    numPartials: NIQ,
    mergeBegin,
    mergeSlots,
  };
  L.plan = plan;
  if (B) {
    B.plan = plan;
    B.pageEpoch = L.pageEpoch;
  }
  return plan;
}

/** What an append-only decode step changed, as the caller knows it (see StepDelta.appended). */
export interface AppendDelta {
  /** Requests whose new token started a new page. */
  newPageRequests: ArrayLike<number>;
  /** The page id each of them started (same order). */
  newPageIds: ArrayLike<number>;
}

/**
 * The common decode step (nobody finished or joined, every request has one query and its own leaf,
 * which gains tokens in its last page or in new pages after it, and the previous plan qualifies
 * for a patch), in two short passes over the requests (the general `stepPlanner` path takes about
 * ten): batchStep reads the batch, accountStep builds the same from the caller's account
 * (`appended`) and the state's records. Nothing is written until the step is known to fit: else
 * null, the state untouched, and the caller takes the general path (which also reports bad input).
 * Then the split search runs again with the new leaf lengths; when it keeps every chunk count the
 * plan is patched, else 'emit' (the tree is current, the caller emits in full). When the recycled
 * buffer holds the plan of two steps ago and no leaf gained a page since, that plan differs from
 * this one only in the queries' KV limits, the leaves' last segment and the leaves' tiles: only
 * those are written (O(requests), a few stores each); otherwise writePatch writes the new segment
 * layout (bulk copies of the previous plan's segments in spans).
 */
export function appendOnlyStep(tree: RadixTree, next: Batch, caps: BackendCapabilities, opts: PrefixPlannerOptions, L: PlanLayout, buffer: PlanBuffer | undefined, appended?: AppendDelta): Plan | 'emit' | null {
  const prev = L.plan;
  const reqs = next.requests;
  const R = reqs.length;
  // every request's own leaf, as of the last emit (the general path handles shared leaves)
  if (!L.patchable || !L.leafExclusive || !prev || prev.numQueries !== R || L.numLeafCols !== R || tree.reqLeaf.length !== R) return null;
  const inp = L.inputs;
  if (inp[0] !== caps || inp[1] !== caps.tileMenu || inp[2] !== caps.parallelUnits || inp[3] !== caps.readBandwidthGBs || inp[4] !== opts || inp[5] !== configKey(next.config)) return null;
  if (appended) return accountStep(tree, next, caps, opts, L, buffer, appended) ?? null;
  return batchStep(tree, next, caps, opts, L, buffer);
}

/**
 * The split search of a decode step that lengthened only leaves (their column inputs written,
 * `leaf` their part of the search as splitSearch builds it): whether any column's chunk count
 * changes. From the last search's record of the other columns (no pass over them), else in full.
 */
function leafSplitChanged(L: PlanLayout, R: number, leaf: LeafSplit): boolean {
  const [HK, c0, P, mergeLaunchUs, mergePerPartial, bwTot, , , waveSlots] = L.params;
  const cache = L.split;
  if (cache.gen === L.gen) {
    const changed = splitSearchLeaves(cache, leaf, L.colW, L.colSum, L.colKmax, L.colNb, L.colVis, L.colK, HK, c0, P, mergeLaunchUs, mergePerPartial, bwTot, R, waveSlots, L.waveByQ);
    if (changed !== null) {
      L.leafSearches++;
      return changed;
    }
  }
  L.fullSearches++;
  const C = L.C;
  const K = I(129, C, false);
  splitSearch(C, L.colW, L.colSum, L.colKmax, L.colNb, L.colVis, K, HK, c0, P, mergeLaunchUs, mergePerPartial, bwTot, R, waveSlots, L.colLeaf, cache, L.gen, L.waveByQ);
  const prevK = L.colK;
  for (let c = 0; c < C; c++) if (K[c] !== prevK[c]) return true;
  return false;
}

/** The leaves' part of the split search of a decode step (see leafSplitChanged). */
const stepLeaf = new LeafSplit();

/**
 * The pass both decode steps share, once the step's page records are committed (lastN, lastId and
 * the leaves' page ends; lastTok too when `gain` is given): every leaf grows by `gain[i]` tokens
 * (by one, its last page's count included, when `gain` is undefined), and the pass writes the
 * leaves and their columns, sums the leaves' split-search inputs, and rewrites the recycled plan of
 * two steps ago where no leaf gained a page since (`newPages` 0); else writePatch lays out the new
 * segments. 'emit' where the split search changes a chunk count.
 */
function stepLeaves(tree: RadixTree, next: Batch, caps: BackendCapabilities, opts: PrefixPlannerOptions, L: PlanLayout, B: PlanBuffer | undefined, newPages: number, gain: Int32Array | undefined, oTok: Int32Array): Plan | 'emit' {
  const reqs = next.requests;
  const R = reqs.length;
  const lastTok = tree.lastTok;
  const leafOf = tree.reqLeaf;
  tree.requests = reqs;
  tree.byteViews.length = 0;
  tree.numPages = next.numPages;
  const C = L.C;
  // The recycled buffer's plan (two steps ago) holds every leaf's pages when no leaf gained one
  // since: its last segment is the same page, and only token counts, KV limits and tiles change.
  // It is rewritten in the pass below; should the split search then change a chunk count, the
  // emit overwrites this same buffer.
  const old = B !== undefined && B.plan !== undefined && B.gen === L.gen && B.pageEpoch === L.pageEpoch && newPages === 0 && B.colPos.length >= C ? B.plan : undefined;
  if (newPages > 0) L.pageEpoch++;
  const [HK, c0, , , , , minChunk, maxChunks] = L.params;
  const { colCarry, colT, colKmax, colW, colSum, colA, colCoef, leafCols, colItem } = L;
  const { cost, tiles } = modelFor(caps, opts, next.config);
  const ttok = tree.tokens;
  const tpos = tree.pos;
  const kvLimit = old !== undefined ? old.queryKvLimit : I(134, R, false);
  const segTokens = old !== undefined ? old.segTokens : kvLimit;
  const itemTile = old !== undefined ? old.itemTile : kvLimit;
  const colPos = old !== undefined ? B!.colPos : leafCols;
  const bCnt = old !== undefined ? B!.colCnt : leafCols;
  const rows = L.g;
  let lastT = -1;
  let lastTile = 0;
  // the leaves' part of the split search (leaf columns in column order, which is request order)
  let leafSum = 0;
  let leafMax = 0;
  let leafWmax = 0;
  const leaf = stepLeaf;
  leaf.reset(R);
  const lCol = leaf.runCol;
  const lLen = leaf.runLen;
  let LS = 0;
  let pW = NaN;
  let pS = NaN;
  let pK = -1;
  for (let i = 0; i < R; i++) {
    const x = leafOf[i];
    const c = leafCols[i];
    let lt: number;
    let tk: number;
    if (gain === undefined) {
      lt = lastTok[i] + 1;
      lastTok[i] = lt;
      tk = ttok[x] + 1;
    } else {
      lt = lastTok[i];
      tk = ttok[x] + gain[i];
    }
    ttok[x] = tk;
    kvLimit[i] = tpos[x] + tk;
    // same expressions as the full build's column setup
    const T = colCarry[c] + tk;
    colT[c] = T;
    const km = Math.max(1, Math.min(maxChunks, Math.floor(T / minChunk)));
    colKmax[c] = km;
    const W = T * colA[c];
    colW[c] = W;
    const Sm = T * colCoef[c];
    colSum[c] = Sm;
    // the leaves' part of the split search, as splitSearch builds it (a leaf's row blocks and
    // queries are 1: colNb·c0 is c0, and runs compare work, sum and kmax alone)
    if (km === 1) {
      leafSum += HK * (c0 + Sm);
      if (W > leafMax) leafMax = W;
    } else {
      if (W > leafWmax) leafWmax = W;
      if (W === pW && Sm === pS && km === pK) lLen[LS - 1]++;
      else {
        lCol[LS] = c;
        lLen[LS++] = 1;
        pW = W;
        pS = Sm;
        pK = km;
      }
    }
    if (old !== undefined) {
      segTokens[colPos[c] + bCnt[c] - 1] = lt;
      if (T !== lastT) {
        lastT = T;
        lastTile = leafTileFor(tiles, cost, rows, T);
      }
      itemTile[colItem[c]] = lastTile;
    }
  }
  leaf.sum = leafSum;
  leaf.max = leafMax;
  leaf.Wmax = leafWmax;
  leaf.runs = LS;
  if (leafSplitChanged(L, R, leaf)) return 'emit';
  if (old === undefined) {
    const prev = L.plan!;
    return writePatch(tree, reqs, cost, tiles, L, prev.itemSegBegin[prev.numItems] + newPages, kvLimit, B, { oTok, nId: tree.lastId, nTok: lastTok });
  }
  const plan: Plan = { ...old };
  B!.plan = plan;
  L.plan = plan;
  return plan;
}

/**
 * The decode step read from the batch on a tree whose leaves are the requests' own
 * (`PlanLayout.leafExclusive`), in two passes over the requests: the first reads each request's
 * array lengths and its old and new last page entries (and any pages after the old last one) and
 * checks them against the state's records, writing nothing; then the records are committed and
 * stepLeaves, the pass accountStep ends with, writes the leaves, their column inputs and the plan.
 * Null (state untouched) where the step does not fit: the general path.
 */
function batchStep(tree: RadixTree, next: Batch, caps: BackendCapabilities, opts: PrefixPlannerOptions, L: PlanLayout, B: PlanBuffer | undefined): Plan | 'emit' | null {
  const reqs = next.requests;
  const R = reqs.length;
  const NP = next.numPages;
  const PS = next.pageSize;
  const lastN = tree.lastN;
  const lastId = tree.lastId;
  const lastTok = tree.lastTok;
  const leafOf = tree.reqLeaf;
  const tpb = tree.pb;
  const onePage = L.onePageLeaves;
  const nN = I(135, R, false);
  const nId = I(136, R, false);
  const nTok = I(137, R, false);
  const oTok = I(139, R, false); // the old last page's token count in the new batch
  const gain = I(140, R, false); // tokens gained
  let grow = 0;
  for (let i = 0; i < R; i++) {
    const q = reqs[i];
    const ids = q.pageIds;
    const tks = q.pageTokens;
    if (!(ids instanceof Int32Array) || !(tks instanceof Int32Array) || q.numQueries !== 1) return null;
    const n1 = ids.length;
    const n0 = lastN[i];
    if (tks.length !== n1 || n1 < n0) return null;
    const k0 = tks[n0 - 1];
    const lt = lastTok[i];
    // same last page, not shrunk; a single-page leaf whose page grew changes its key
    if (ids[n0 - 1] !== lastId[i] || !(k0 >= lt && k0 <= PS)) return null;
    if (onePage && k0 !== lt && tpb[leafOf[i]] === n0 - 1) return null;
    let d = k0 - lt;
    for (let s = n0; s < n1; s++) {
      const pg = ids[s];
      const k = tks[s];
      if (!(pg >= 0 && pg < NP && k >= 1 && k <= PS)) return null;
      d += k;
    }
    nN[i] = n1;
    nId[i] = ids[n1 - 1];
    nTok[i] = tks[n1 - 1];
    oTok[i] = k0;
    gain[i] = d;
    grow += n1 - n0;
  }
  // commit the records; the leaves' pass is accountStep's (stepLeaves)
  for (let i = 0; i < R; i++) {
    const n1 = nN[i];
    lastN[i] = n1;
    tree.pe[leafOf[i]] = n1;
    lastId[i] = nId[i];
    lastTok[i] = nTok[i];
  }
  return stepLeaves(tree, next, caps, opts, L, B, grow, gain, oTok);
}

// Stamps for accountStep's marks (no clearing between steps).
let markStamp = 0;

/**
 * The decode step with the caller's account (`appended`) on a tree whose leaves are the requests'
 * own (`PlanLayout.leafExclusive`), in one pass over the requests (stepLeaves, shared with
 * batchStep): it updates the state's records,
 * the leaves and their columns, sums the leaves' split-search inputs, and (where the recycled
 * buffer holds the plan of two steps ago and no leaf gained a page since) rewrites that plan's
 * query KV limits, leaf items' last segment token counts and tiles; no request object is read.
 * The split search then runs from the last one's record and the leaves' part (leafSplitChanged).
 * Where a leaf gained a page, writePatch writes the new segment layout instead. Returns
 * undefined (nothing written) where a leaf is a single page that grows (its key changes: the
 * general path), and refuses impossible accounts before writing anything.
 */
function accountStep(tree: RadixTree, next: Batch, caps: BackendCapabilities, opts: PrefixPlannerOptions, L: PlanLayout, B: PlanBuffer | undefined, appended: AppendDelta): Plan | 'emit' | undefined {
  const reqs = next.requests;
  const R = reqs.length;
  const NP = next.numPages;
  const PS = next.pageSize;
  const lastN = tree.lastN;
  const lastId = tree.lastId;
  const lastTok = tree.lastTok;
  const leafOf = tree.reqLeaf;
  const tpe = tree.pe;
  const { newPageRequests: nr, newPageIds: np } = appended;
  const nnew = nr.length;
  if (nnew !== np.length) fail('bad-delta', `appended.newPageRequests has ${nr.length} entries, newPageIds ${np.length}`);
  // the account's new pages, checked before anything is written
  const mark = I(142, R, false);
  if (++markStamp > 0x3fffffff) {
    mark.fill(0);
    markStamp = 1;
  }
  const st = markStamp;
  for (let z = 0; z < nnew; z++) {
    const i = nr[z];
    const pg = np[z];
    if (!(Number.isInteger(i) && i >= 0 && i < R)) fail('bad-delta', `appended.newPageRequests[${z}] = ${i} is not a request of the batch (0..${R - 1})`);
    if (mark[i] === st) fail('bad-delta', `appended.newPageRequests lists request ${i} twice`);
    if (!(Number.isInteger(pg) && pg >= 0 && pg < NP)) fail('page-out-of-range', `appended.newPageIds[${z}]: page id ${pg} out of range [0, ${NP})`);
    mark[i] = st;
  }
  for (let i = 0; i < R; i++) {
    if (lastTok[i] >= PS && mark[i] !== st) fail('bad-delta', `request ${i}: its last page is full (${PS} tokens) but appended lists no new page for it`);
  }
  if (L.onePageLeaves) {
    // a single-page leaf whose page grows changes its key (general path); once no leaf is a
    // single page, none becomes one before the next emit
    const tpb = tree.pb;
    let any = false;
    for (let i = 0; i < R; i++) {
      const x = leafOf[i];
      if (tpe[x] - tpb[x] === 1) {
        any = true;
        if (mark[i] !== st) return undefined;
      }
    }
    if (!any) L.onePageLeaves = false;
  }
  if (opts.validate) {
    // check the account against the batch itself
    const newId = I(143, R, false);
    for (let z = 0; z < nnew; z++) newId[nr[z]] = np[z];
    for (let i = 0; i < R; i++) {
      const q = reqs[i];
      const isNew = mark[i] === st;
      const n0 = lastN[i];
      const n1 = isNew ? n0 + 1 : n0;
      const id = isNew ? newId[i] : lastId[i];
      const tok = isNew ? 1 : lastTok[i] + 1;
      const oTok = isNew ? lastTok[i] : tok;
      if (q.pageIds.length !== n1 || q.pageIds[n1 - 1] !== id || q.pageTokens[n1 - 1] !== tok || q.pageTokens[n0 - 1] !== oTok || q.numQueries !== 1) {
        fail('bad-delta', `request ${i}: the batch does not match appended (expected ${n1} pages ending with page ${id} holding ${tok} tokens)`);
      }
    }
  }
  // commit: new pages first (their old last page keeps its tokens)
  const oTok = I(139, R, false); // the old last page's tokens, for requests that started a page
  for (let z = 0; z < nnew; z++) {
    const i = nr[z];
    oTok[i] = lastTok[i];
    lastN[i]++;
    lastId[i] = np[z];
    lastTok[i] = 0;
    tpe[leafOf[i]]++;
  }
  L.accountSteps++;
  return stepLeaves(tree, next, caps, opts, L, B, nnew, undefined, oTok);
}
