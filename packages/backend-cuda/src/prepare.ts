/**
 * Host-side preparation of a plan for the CUDA kernels (pure TypeScript, no GPU):
 *
 * - `tokRow`: every item token resolved to its KV row (page·pageSize + slot), so the kernel's
 *   loads are one indirection per token whatever the segment layout;
 * - work units (item, KV head, row block, rg): each item expands over KV heads, and its rows
 *   (queries × GQA group) are cut into tiles of 16, 32, 64 or 128 rows (the tile the planner chose,
 *   capped by the rows the item has). Two orders: grouped by tile kernel (multi-stream strategy)
 *   and longest-first (persistent strategy);
 * - `mergeBegin`/`mergeSlots`: each query's partial slots less those that can hold no KV token
 *   (empty states, nothing to merge);
 * - `slotDest`: a partial slot that is its query's only (non-empty) partial is written straight to
 *   the output; the merge kernel runs only over `mergeQueries` (zero or several partials).
 *
 * Every index is range-checked here, so a malformed plan fails with a CanopyError instead of a
 * device fault.
 */
import { CanopyError, softmaxScale, type Plan } from '@canopy/core';
import type { NativePlanDesc } from './native.js';

export interface KvShape {
  numPages: number;
  pageSize: number;
  numKvHeads: number;
  headDim: number;
}

/** Rows of the kernels' tiles: rg 16-row groups per CTA. */
export const KERNEL_ROWS = [16, 32, 64, 128] as const;
/** Bytes per KV element (f16). */
const KV_BYTES = 2;

/** Warps per CTA of the tile kernel for (head dim, rg), as in warpsFor in native/attention.cu
 * (the addon re-derives the persistent families from its own table; this only orders the list). */
export function kernelWarps(_headDim: number, rg: number): 4 | 8 {
  return rg <= 2 ? 4 : 8;
}

export function rowGroupsFor(tileRows: number, itemRows: number): 1 | 2 | 4 | 8 {
  const r = Math.min(Math.max(1, tileRows), Math.max(1, itemRows));
  return r <= 16 ? 1 : r <= 32 ? 2 : r <= 64 ? 4 : 8;
}

function bad(message: string): never {
  throw new CanopyError('invalid-plan', `CUDA backend: ${message}`);
}

/**
 * Rates the fused strategy's role split is estimated with: what the tile kernels sustain, not
 * datasheet peaks. Defaults from the H100 runs (README): the 8-warp tiles reach ~175 TFLOP/s on
 * compute-bound W5; 4-warp decode tiles stream ~2000–2900 GB/s.
 */
export interface FusedRates {
  computeTflops: number;
  memoryGBs: number;
}
export const DEFAULT_FUSED_RATES: FusedRates = { computeTflops: 175, memoryGBs: 2400 };

export interface PrepareOptions {
  /** 128-row units on the pipelined wgmma tile: true / false, or undefined for wgmmaPipeWorthIt. */
  wgmma?: boolean;
  fusedRates?: FusedRates;
  /** Longest 16-row unit for the 2-warp tiny tile (TINY_UNIT_TOKENS when undefined; 0 turns it off). */
  tinyUnitTokens?: number;
}

/**
 * Whether a plan's 128-row units should run on the pipelined wgmma tile (attention_wgpipe.cu; one
 * CTA per SM, streams strategy) rather than the mma.sync tile (two per SM, so 4-warp decode CTAs
 * share the SMs of long 128-row units, and the persistent strategy when a plan mixes both).
 * Yes when the plan has no 64-row units (which run on the 8-warp mma.sync tile either way), or
 * else when the 128-row units' predicted compute time is at least WGMMA_PIPE_MIN_RATIO × the
 * 4-warp units' predicted memory time (the fused strategy's rates). Measured on the H100, same
 * process (docs/benchmarks/cuda-h100-pipe-choice-2026-11-24.json; ratio in brackets): the tile
 * wins on W1 [0.44] 79.5 vs 80.8 µs (mma.sync, persistent), W6 [0.01] 423 vs 442, W8 [0.75] 72.7
 * vs 76.6 and W5 [14] 200 vs 316; on W2 [0.22] it loses (155.5 vs 123.6: its 64-row document
 * units run slowly beside it under 'streams'), and on W3 [1.15], whose 32 64-row units carry 6% of
 * the 128-row FLOPs, it is bimodal (66.9 in that file, but 65.5–81.6 µs p10–p90 and a median of
 * 79.1 over bench v12's 3840 timings, against a steady 75–76 on mma.sync), so 64-row units keep
 * the old rule. H1, H2 and S1 take the tile by the ratio.
 */
export const WGMMA_PIPE_MIN_RATIO = 2;

export function wgmmaPipeWorthIt(rg8Flops: number, memoryBytes: number, rates: FusedRates = DEFAULT_FUSED_RATES, rg4Flops = 0): boolean {
  if (rg8Flops <= 0) return false;
  if (rg4Flops <= 0) return true;
  const tc = rg8Flops / (rates.computeTflops * 1e12);
  const tm = memoryBytes / (rates.memoryGBs * 1e9);
  return tc >= WGMMA_PIPE_MIN_RATIO * tm;
}

/**
 * Longest 16-row unit (visible KV tokens) for which a plan's 16-row units run on the tile built for
 * three CTAs per SM (`attnTileShortKernel`, native/attention.cu) under the streams strategy.
 * With every 16-row tile built that way, the H100 ran short units faster (W5's 64-token leaves: 242
 * → 231 µs; perRequest W1's 922-token units: 292 → 274) and W4's 4608-token units 12% slower
 * (docs/benchmarks/cuda-h100-rg1-2026-11-23.json).
 */
export const SHORT_UNIT_TOKENS = 2048;

/**
 * Longest 16-row unit (visible KV tokens) for which a plan's 16-row units run on the 2-warp tile
 * built for five CTAs per SM (`attnTileTinyKernel`, native/attention.cu) under the streams
 * strategy: tiny units (W5's 64-token leaves, draft-tree nodes) are latency bound, and more of
 * them per SM is what moves them.
 */
export const TINY_UNIT_TOKENS = 256;

/**
 * Share of the fused grid's CTAs that should start in the compute role: predicted time of the
 * 8-warp units (padded tile FLOPs over visible tokens / computeTflops) over that plus the time
 * of the 4-warp units (K+V bytes of their visible tokens / memoryGBs). 0 without 8-warp units,
 * 1 without 4-warp units.
 */
export function fusedComputeFraction(computeFlops: number, memoryBytes: number, rates: FusedRates = DEFAULT_FUSED_RATES): number {
  const tc = computeFlops / (rates.computeTflops * 1e12);
  const tm = memoryBytes / (rates.memoryGBs * 1e9);
  if (tc + tm <= 0) return 0.5;
  return tc / (tc + tm);
}

/**
 * Share of the fused grid's CTAs that START in the compute role, from the estimate above. The H100
 * runs (docs/benchmarks/cuda-h100-hybrid-2026-11-23.json) decide the rule: splitting the chip by
 * the estimate (POD's per-SM mix from the start) left fewer CTAs on long prefill units and added a
 * wave (H1: 3037 µs vs 2330 with every CTA compute-first; S1 343 vs 336; H2 within 0.5%), so when
 * compute dominates every CTA starts on the compute list and the 4-warp halves take the decode
 * units as that list drains (work stealing). Below one half the estimate is used as is.
 */
export function fusedStartFraction(estimate: number): number {
  return estimate >= 0.5 ? 1 : estimate;
}

export function preparePlan(plan: Plan, kv: KvShape, opts: PrepareOptions = {}): NativePlanDesc {
  const cfg = plan.config;
  const H = cfg.numQoHeads;
  const HK = cfg.numKvHeads;
  const D = cfg.headDim;
  if (HK !== kv.numKvHeads || D !== kv.headDim) {
    throw new CanopyError(
      'shape-mismatch',
      `CUDA backend: plan is for ${HK} KV heads × ${D} dims, the KV cache holds ${kv.numKvHeads} × ${kv.headDim}`,
    );
  }
  if (H % HK !== 0) bad(`numQoHeads ${H} is not a multiple of numKvHeads ${HK}`);
  const G = H / HK;
  const nItems = plan.numItems;
  const nQ = plan.numQueries;
  const nP = plan.numPartials;
  if (plan.itemSegBegin.length !== nItems + 1 || plan.itemQueryBegin.length !== nItems + 1) {
    bad('itemSegBegin/itemQueryBegin must have numItems + 1 entries');
  }
  if (plan.mergeBegin.length !== nQ + 1) bad('mergeBegin must have numQueries + 1 entries');
  if (plan.queryKvLimit.length !== nQ) bad('queryKvLimit must have numQueries entries');
  if (plan.itemPos.length !== nItems) bad('itemPos must have numItems entries');

  // Tokens → KV rows.
  const itemTokBegin = new Int32Array(nItems + 1);
  let total = 0;
  for (let i = 0; i < nItems; i++) {
    itemTokBegin[i] = total;
    const s0 = plan.itemSegBegin[i];
    const s1 = plan.itemSegBegin[i + 1];
    if (s0 > s1 || s1 > plan.segPage.length) bad(`work item ${i}: segment range [${s0}, ${s1}) out of range`);
    for (let s = s0; s < s1; s++) total += plan.segTokens[s];
  }
  itemTokBegin[nItems] = total;
  const tokRow = new Int32Array(total);
  let k = 0;
  for (let i = 0; i < nItems; i++) {
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) {
      const page = plan.segPage[s];
      const slot = plan.segSlot[s];
      const n = plan.segTokens[s];
      if (page < 0 || page >= kv.numPages) bad(`work item ${i}: page id ${page} out of range [0, ${kv.numPages})`);
      if (slot < 0 || n < 0 || slot + n > kv.pageSize) bad(`work item ${i}: slots [${slot}, ${slot + n}) exceed page size ${kv.pageSize}`);
      const row0 = page * kv.pageSize + slot;
      for (let j = 0; j < n; j++) tokRow[k++] = row0 + j;
    }
  }

  // Work units.
  const units: Array<[number, number, number, number, number]> = []; // item, kvHead, rowBlock, rg, visible tokens
  let computeFlops = 0; // 8-warp units (fused strategy's compute role)
  let rg8Flops = 0; // 128-row units (the pipelined wgmma tile's)
  let rg4Flops = 0; // 64-row units (8-warp mma.sync tile)
  let rg1MaxTokens = 0; // longest 16-row unit
  let memoryBytes = 0; // 4-warp units (memory role)
  let maxRg = 1;
  // Partial slots that can hold no KV token: the item's tokens all lie at or past the query's KV
  // limit (a causal prefill row before a later KV chunk, a query beside a node it does not see).
  // Their state is empty (lse −inf), so the merge leaves them out: it reads none of their rows,
  // and a query left with one real partial has it written straight to the output.
  const slotEmpty = new Uint8Array(Math.max(nP, 0));
  for (let i = 0; i < nItems; i++) {
    const q0 = plan.itemQueryBegin[i];
    const q1 = plan.itemQueryBegin[i + 1];
    if (q0 > q1 || q1 > plan.itemQueries.length) bad(`work item ${i}: query range [${q0}, ${q1}) out of range`);
    const nq = q1 - q0;
    if (nq === 0) continue;
    for (let x = q0; x < q1; x++) {
      const q = plan.itemQueries[x];
      if (q < 0 || q >= nQ) bad(`work item ${i}: query id ${q} out of range [0, ${nQ})`);
    }
    const base = plan.itemPartialBase[i];
    if (base < 0 || base + nq > nP) bad(`work item ${i}: partial slots [${base}, ${base + nq}) out of range [0, ${nP})`);
    const ntok = itemTokBegin[i + 1] - itemTokBegin[i];
    // KV tokens of this item that the item's local query x sees (≤ 0: none).
    const visibleOf = (x: number) => Math.min(ntok, plan.queryKvLimit[plan.itemQueries[q0 + x]] - plan.itemPos[i]);
    for (let x = 0; x < nq; x++) if (visibleOf(x) <= 0) slotEmpty[base + x] = 1;
    const t = plan.itemTile[i];
    if (t < 0 || t >= plan.tiles.length) bad(`work item ${i}: tile id ${t} out of range [0, ${plan.tiles.length})`);
    const rows = nq * G;
    const rg = rowGroupsFor(plan.tiles[t].rows, rows);
    maxRg = Math.max(maxRg, rg);
    const R = 16 * rg;
    const blocks = Math.ceil(rows / R);
    const visible = new Int32Array(blocks);
    for (let b = 0; b < blocks; b++) {
      // Tokens the block streams: the kernel stops at its rows' largest visible position, so a
      // causal prefill block near the chunk start is short (costs and the longest-first order use this).
      let vis = 0;
      const xEnd = Math.ceil(Math.min(rows, (b + 1) * R) / G);
      for (let x = Math.floor((b * R) / G); x < xEnd && vis < ntok; x++) {
        vis = Math.max(vis, visibleOf(x));
      }
      vis = Math.max(0, vis);
      if (kernelWarps(D, rg) === 8) computeFlops += HK * 4 * R * vis * D;
      else memoryBytes += HK * vis * D * 2 * KV_BYTES;
      if (rg === 8) rg8Flops += HK * 4 * R * vis * D;
      if (rg === 4) rg4Flops += HK * 4 * R * vis * D;
      if (rg === 1) rg1MaxTokens = Math.max(rg1MaxTokens, vis);
      visible[b] = vis;
    }
    // item → KV head → row block: the units that share one KV chunk sit next to each other, so
    // they run together and their repeated reads of that chunk hit L2.
    for (let h = 0; h < HK; h++) for (let b = 0; b < blocks; b++) units.push([i, h, b, rg, visible[b]]);
  }
  // Each query's partial slots, less the empty ones.
  const mergeBegin = new Int32Array(nQ + 1);
  const mergeSlotList: number[] = [];
  for (let q = 0; q < nQ; q++) {
    const b = plan.mergeBegin[q];
    const e = plan.mergeBegin[q + 1];
    if (b > e || e > plan.mergeSlots.length) bad(`query ${q}: merge range [${b}, ${e}) out of range`);
    mergeBegin[q] = mergeSlotList.length;
    for (let j = b; j < e; j++) {
      const s = plan.mergeSlots[j];
      if (s < 0 || s >= nP) bad(`query ${q}: partial slot ${s} out of range [0, ${nP})`);
      if (!slotEmpty[s]) mergeSlotList.push(s);
    }
  }
  mergeBegin[nQ] = mergeSlotList.length;
  const mergeSlots = Int32Array.from(mergeSlotList);

  // Partials written directly vs merged.
  const slotDest = new Int32Array(Math.max(nP, 0)).fill(-1);
  const merge: number[] = [];
  for (let q = 0; q < nQ; q++) {
    const b = mergeBegin[q];
    const e = mergeBegin[q + 1];
    if (e - b === 1 && slotDest[mergeSlots[b]] === -1) slotDest[mergeSlots[b]] = q;
    else merge.push(q);
  }
  // A slot claimed as direct by one query but also listed by another must go through the merge.
  for (const q of merge) {
    for (let j = mergeBegin[q]; j < mergeBegin[q + 1]; j++) {
      const s = mergeSlots[j];
      const owner = slotDest[s];
      if (owner !== -1 && owner !== q) {
        slotDest[s] = -1;
        merge.push(owner);
      }
    }
  }
  const mergeQueries = Int32Array.from(new Set(merge)).sort();

  // Work unit lists.
  const pack = (list: typeof units): Int32Array => {
    const out = new Int32Array(list.length * 4);
    list.forEach((u, j) => out.set([u[0], u[1], u[2], u[3]], j * 4));
    return out;
  };
  const rgIndex = (rg: number) => (rg === 1 ? 0 : rg === 2 ? 1 : rg === 4 ? 2 : 3);
  const groupCount = new Int32Array(4);
  for (const u of units) groupCount[rgIndex(u[3])]++;
  // Stable sorts keep the item → head → block adjacency within equal keys.
  const grouped = [...units].sort((a, b) => rgIndex(a[3]) - rgIndex(b[3]) || b[4] - a[4]);
  // Longest first (tokens × a rough per-row cost) so the persistent grid's tail is short.
  const cost = (u: (typeof units)[number]) => u[4] * (1 + 0.25 * u[3]);
  // The persistent strategy runs one grid per CTA shape ("family": 4- or 8-warp tile kernels,
  // see kernelWarps), side by side; each family's list is longest first, and the family holding
  // the longest unit goes first in the list and is launched first (the addon re-partitions the
  // list by its own warp table, keeping this order).
  const fam8 = units.filter((u) => kernelWarps(D, u[3]) === 8).sort((a, b) => cost(b) - cost(a));
  const fam4 = units.filter((u) => kernelWarps(D, u[3]) === 4).sort((a, b) => cost(b) - cost(a));
  const eightFirst = fam8.length > 0 && (fam4.length === 0 || cost(fam8[0]) >= cost(fam4[0]));
  const sorted = eightFirst ? [...fam8, ...fam4] : [...fam4, ...fam8];
  return {
    numQueries: nQ,
    numQoHeads: H,
    headDim: D,
    group: G,
    numPartials: nP,
    scaleLog2: softmaxScale(cfg) * Math.LOG2E,
    maxRg,
    wgmma: opts.wgmma ?? wgmmaPipeWorthIt(rg8Flops, memoryBytes, opts.fusedRates, rg4Flops),
    shortRg1: rg1MaxTokens <= SHORT_UNIT_TOKENS,
    tinyRg1: rg1MaxTokens <= Math.min(SHORT_UNIT_TOKENS, opts.tinyUnitTokens ?? TINY_UNIT_TOKENS),
    fusedComputeFraction: fusedStartFraction(fusedComputeFraction(computeFlops, memoryBytes, opts.fusedRates)),
    groupCount,
    workGrouped: pack(grouped),
    workSorted: pack(sorted),
    itemTokBegin,
    tokRow,
    itemPos: Int32Array.from(plan.itemPos),
    itemQueryBegin: Int32Array.from(plan.itemQueryBegin),
    itemQueries: Int32Array.from(plan.itemQueries),
    itemPartialBase: Int32Array.from(plan.itemPartialBase),
    queryKvLimit: Int32Array.from(plan.queryKvLimit),
    slotDest,
    mergeBegin,
    mergeSlots,
    mergeQueries,
  };
}
