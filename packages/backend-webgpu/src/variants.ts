import { CanopyError, type TileShape } from '@canopy/core';

/**
 * One attention kernel configuration (one compute pipeline per head dim and KV dtype). `rows` rows
 * (queries × GQA group of one KV head) share each KV block of `kvBlock` tokens loaded into
 * workgroup memory; `splits` groups of rows take disjoint tokens of a block (few-row units);
 * `dimsPerThread` sets how many head-dim values each invocation keeps in registers.
 */
export interface KernelVariant {
  rows: number;
  kvBlock: number;
  splits: number;
  dimsPerThread: number;
  /** Read KV straight from the pools instead of through workgroup memory (few-row, decode-like units). */
  direct?: boolean;
  /** Shared tiling only: load the next KV block into registers while computing on this one. */
  prefetch?: boolean;
  /**
   * Register-blocked kernel (attention_blocked.wgsl) for many-row units: each invocation computes
   * a micro-tile of scores and of the output. Where it does not fit the device (workgroup memory,
   * head dim) the variant runs the shared-tiling kernel with prefetch instead.
   */
  blocked?: boolean;
  /** Blocked kernel only: invocations per workgroup to aim for (default 128; benchmarks sweep it). */
  workgroupSize?: number;
  /**
   * Blocked kernel only: 2 runs the second layout (attention_blocked2.wgsl: 2 rows × 2 tokens per
   * invocation in S, the softmax step on the invocations that hold the scores); default 1.
   */
  blockedVersion?: 1 | 2;
  /** Blocked layout 2 only: row quads per invocation in O += P·V, tried first (default: the first of 1, 2, 4 that tiles). */
  pvRowQuads?: number;
  /**
   * Decode kernel (attention_decode.wgsl) for 4-row units: lane groups read whole K/V rows once
   * for all 4 rows (needs `subgroups`; a lane group is at most the minimum subgroup size, with up
   * to 8 raw words per lane); elsewhere the variant runs as given without this flag.
   * `workgroupSize` sets its invocations (default 128).
   */
  decode?: boolean;
  /** Decode kernel only: tokens per lane group per block (default 2). */
  tokensPerLane?: number;
  /** Split-KV: never cut this variant's items into chunks shorter than this (default: the policy's minChunk). */
  minChunk?: number;
  /** Split-KV: cut this variant's items into chunks of at most this many tokens even when units are plenty. */
  maxChunk?: number;
}

/**
 * The menu: decode-like items (4 rows = 1 query × GQA 4, KV read directly, 8 token splits), small
 * packs and big shared-prefix packs (KV blocks in workgroup memory, next block prefetched). Chosen
 * by the H100 sweeps in docs/benchmarks/webgpu-h100-2026-11-23*.json.
 */
export const DEFAULT_VARIANTS: readonly KernelVariant[] = [
  { rows: 4, kvBlock: 32, splits: 8, dimsPerThread: 32, direct: true },
  { rows: 16, kvBlock: 16, splits: 2, dimsPerThread: 32, prefetch: true },
  { rows: 64, kvBlock: 16, splits: 1, dimsPerThread: 64, prefetch: true },
];

/**
 * The GPU menu with the register-blocked kernel (the default on GPU adapters): the 16- and 64-row
 * (shared-prefix) tiles blocked, the decode-like 4-row variant as in DEFAULT_VARIANTS. On the H100
 * it beat DEFAULT_VARIANTS by 10–15% on W1, W2, W3, W5 and tied on W4
 * (docs/benchmarks/webgpu-h100-blocked-2026-11-23.json, config `blocked16`); 256 invocations for
 * the 64-row tile beat 128 there by 12–20%.
 */
export const BLOCKED_VARIANTS: readonly KernelVariant[] = [
  DEFAULT_VARIANTS[0],
  { ...DEFAULT_VARIANTS[1], blocked: true },
  { rows: 64, kvBlock: 16, splits: 1, dimsPerThread: 64, blocked: true, workgroupSize: 256 },
];

/**
 * The GPU default since the 2026-11-23 session-4 H100 run (docs/benchmarks/webgpu-h100-b2-2026-11-23.json):
 * the decode kernel (attention_decode.wgsl, 4 tokens per lane group) for the 4-row tile and the
 * blocked kernel's layout 2 (attention_blocked2.wgsl) for the 16- and 64-row tiles (2 row quads
 * per invocation in O at 64 rows). Against BLOCKED_VARIANTS in that run: the decode kernel alone
 * W4 934 → 696 µs (tokensPerLane 4; 744 with 2), W1 453 → 430, W2 825 → 795; layout 2 with 2 row
 * quads alone W5 3899 → 3777, W1 → 437, W3 486 → 470; both (with 1 row quad and 2 tokens per
 * lane, config b2dec) faster on all five.
 * Then (webgpu-h100-next*-2026-11-23.json, one process per run): 64 invocations for the decode
 * kernel (W4 693 → 652 µs, no workload slower) and chunks of at least 384 tokens for the 64-row
 * tile (fewer, longer units: W1 416 → 374, W3 471 → 435 with both, W2 791 → 794, W5 3766 → 3751;
 * config `wg64-min384`). A smaller split target for every unit (targetUnits 132·12) helped W1/W3
 * as much but cost W4 13% with the 64-invocation decode kernel, so it is not in the default.
 */
export const BLOCKED2_VARIANTS: readonly KernelVariant[] = [
  { ...DEFAULT_VARIANTS[0], decode: true, tokensPerLane: 4, workgroupSize: 64 },
  { ...BLOCKED_VARIANTS[1], blockedVersion: 2 },
  { ...BLOCKED_VARIANTS[2], blockedVersion: 2, pvRowQuads: 2, minChunk: 384 },
];

/** CPU adapters (lavapipe): one direct 16-row variant, no token splits. */
export const CPU_VARIANTS: readonly KernelVariant[] = [{ rows: 16, kvBlock: 16, splits: 1, dimsPerThread: 32, direct: true }];

export const SUPPORTED_HEAD_DIMS = [32, 64, 128, 256];

export interface VariantShape extends KernelVariant {
  headDim: number;
  /** lanes per row */
  tpr: number;
  workgroupSize: number;
  /** workgroup memory in vec4<f32> for KV blocks and the split combine */
  smemVec4: number;
  /** total workgroup bytes, including the shared-memory reduction when subgroups are missing */
  workgroupBytes: number;
}

/**
 * The shape a variant runs with for a head dim. `direct`: KV read straight from the pools (no KV
 * in workgroup memory); without subgroups it keeps whole rows per invocation so no cross-lane
 * reduction is needed. `oneSplit`: no token splits (no barriers at all, for CPU adapters).
 */
export function variantShape(v: KernelVariant, headDim: number, useSubgroups: boolean, direct = false, oneSplit = false): VariantShape {
  const splits = oneSplit ? 1 : v.splits;
  const dpt = direct && !useSubgroups ? headDim : Math.min(v.dimsPerThread, headDim);
  if (headDim % 8 !== 0 || dpt % 4 !== 0 || headDim % dpt !== 0) {
    throw new CanopyError('unsupported-head-dim', `webgpu: head dim ${headDim} does not split into ${dpt}-value slices`);
  }
  const tpr = headDim / dpt;
  if (v.kvBlock % splits !== 0) throw new CanopyError('bad-variant', `webgpu: kvBlock ${v.kvBlock} is not a multiple of splits ${splits}`);
  const workgroupSize = v.rows * tpr * splits;
  const d4 = headDim / 4;
  const combine = splits > 1 ? (splits - 1) * v.rows * (d4 + 1) : 0;
  const smemVec4 = Math.max(1, direct ? combine : Math.max(2 * v.kvBlock * d4, combine));
  const reduceBytes = useSubgroups || tpr === 1 ? 0 : workgroupSize * (v.kvBlock / splits) * 4;
  return { ...v, splits, dimsPerThread: dpt, headDim, tpr, workgroupSize, smemVec4, workgroupBytes: smemVec4 * 16 + 32 + reduceBytes };
}

export function variantTiles(variants: readonly KernelVariant[]): TileShape[] {
  return variants.map((v) => ({ rows: v.rows, kvBlock: v.kvBlock }));
}

/**
 * The variant that runs a plan tile: the one with exactly its rows, else the smallest with at
 * least its rows, else the largest (the kernel then loops over row blocks). A tile id is a hint.
 * With `maxRowPadding` (0–1), an item whose `rows` would leave more than that share of the
 * variant's rows empty runs on a smaller variant instead (see below).
 */
export function pickVariant(variants: readonly KernelVariant[], tile: TileShape | undefined, rows: number, maxRowPadding?: number): number {
  const byTile = variantForRows(variants, tile ? tile.rows : rows);
  if (maxRowPadding === undefined || rows <= 0) return byTile;
  // The largest variant up to the tile's whose row blocks leave at most maxRowPadding of their
  // rows empty: an item of 32 rows on a 64-row tile runs as two 16-row blocks (each reads the KV
  // again, but no f32 FMAs go to padding rows).
  let best = -1;
  for (let i = 0; i < variants.length; i++) {
    const R = variants[i].rows;
    if (R > variants[byTile].rows || (best >= 0 && R <= variants[best].rows)) continue;
    if (1 - rows / (Math.ceil(rows / R) * R) <= maxRowPadding) best = i;
  }
  return best >= 0 ? best : byTile;
}

/** The variant with exactly `want` rows, else the smallest with more, else the largest. */
function variantForRows(variants: readonly KernelVariant[], want: number): number {
  let best = -1;
  for (let i = 0; i < variants.length; i++) {
    const r = variants[i].rows;
    if (r === want) return i;
    if (r >= want && (best < 0 || r < variants[best].rows)) best = i;
  }
  if (best >= 0) return best;
  let big = 0;
  for (let i = 1; i < variants.length; i++) if (variants[i].rows > variants[big].rows) big = i;
  return big;
}

/**
 * Sizes of the register-blocked kernel (attention_blocked.wgsl) for `rows` rows, KV blocks of
 * `kvBlock` tokens and a head dim. Workgroup: at most `threads` invocations unless the output tile
 * would exceed 16 vec4 (64 f32 registers) per invocation. S = Q·Kᵀ: 4 rows × `qkTokens` tokens per
 * invocation; O += P·V: `pvRowQuads` × 4 rows × `pvVec4` × 4 dims per invocation.
 */
export interface BlockedShape {
  rows: number;
  kvBlock: number;
  headDim: number;
  workgroupSize: number;
  qkTokens: number;
  pvRowQuads: number;
  pvVec4: number;
  /** qT + K/V block (padded rows) + P + row alphas + the token count */
  workgroupBytes: number;
}

/** The blocked kernel's shape, or undefined when the sizes do not tile (the host then falls back). */
export function blockedShape(rows: number, kvBlock: number, headDim: number, threads = 128): BlockedShape | undefined {
  if (rows % 4 !== 0 || rows < 8 || headDim % 8 !== 0 || kvBlock < 4) return undefined;
  const d4 = headDim / 4;
  const rq4 = rows / 4;
  let wg = Math.min(threads, (rows * kvBlock) / 4);
  // keep the per-invocation output tile at <= 16 vec4
  if ((rows * d4) / wg > 16) wg = (rows * d4) / 16;
  if (!Number.isInteger(wg) || wg < rows || wg > 256) return undefined;
  const qkTokens = (rows * kvBlock) / (4 * wg);
  if (!Number.isInteger(qkTokens) || qkTokens < 1 || kvBlock % qkTokens !== 0) return undefined;
  const perThread = (rows * d4) / wg; // O vec4 per invocation
  for (const pvRowQuads of [2, 1, 4]) {
    const pvVec4 = perThread / (4 * pvRowQuads);
    if (!Number.isInteger(pvVec4) || pvVec4 < 1 || rq4 % pvRowQuads !== 0 || d4 % pvVec4 !== 0) continue;
    if ((rq4 / pvRowQuads) * (d4 / pvVec4) !== wg) continue;
    const workgroupBytes = headDim * rows * 4 + kvBlock * (d4 + 1) * 16 + kvBlock * rows * 4 + rows * 4 + 16;
    return { rows, kvBlock, headDim, workgroupSize: wg, qkTokens, pvRowQuads, pvVec4, workgroupBytes };
  }
  return undefined;
}

/**
 * Sizes of the second blocked layout (attention_blocked2.wgsl): S = Q·Kᵀ in 2 rows × 2 tokens per
 * invocation, so the workgroup is (rows / 2) × (kvBlock / 2) invocations; O += P·V in `pvRowQuads`
 * × 4 rows × `pvVec4` × 4 dims. `subgroups`: the row reductions use subgroup shuffles (else a
 * workgroup-memory area of one vec2 per invocation).
 */
export interface Blocked2Shape {
  rows: number;
  kvBlock: number;
  headDim: number;
  workgroupSize: number;
  pvRowQuads: number;
  pvVec4: number;
  subgroups: boolean;
  /** q (padded rows) + K/V block (padded rows) + P (padded) + row alphas + token count (+ reduction area) */
  workgroupBytes: number;
}

export function blocked2Shape(rows: number, kvBlock: number, headDim: number, subgroups: boolean, pvRowQuads?: number): Blocked2Shape | undefined {
  if (rows % 4 !== 0 || rows < 8 || headDim % 8 !== 0 || kvBlock < 4 || kvBlock % 2 !== 0) return undefined;
  const tp = kvBlock / 2;
  if ((tp & (tp - 1)) !== 0) return undefined;
  const d4 = headDim / 4;
  const rq4 = rows / 4;
  const wg = (rows * kvBlock) / 4;
  if (wg > 256 || wg < 8) return undefined;
  const perThread = (rows * d4) / wg; // O vec4 per invocation
  if (!Number.isInteger(perThread) || perThread > 16) return undefined;
  // a requested row-quad count is tried first; where it does not tile the others are tried
  for (const rq of pvRowQuads ? [pvRowQuads, 1, 2, 4] : [1, 2, 4]) {
    const pvVec4 = perThread / (4 * rq);
    if (!Number.isInteger(pvVec4) || pvVec4 < 1 || rq4 % rq !== 0 || d4 % pvVec4 !== 0) continue;
    if ((rq4 / rq) * (d4 / pvVec4) !== wg) continue;
    const workgroupBytes = rows * (d4 + 1) * 16 + kvBlock * (d4 + 1) * 16 + kvBlock * (rq4 + 1) * 16 + rows * 4 + 16 + (subgroups ? 0 : wg * 8);
    return { rows, kvBlock, headDim, workgroupSize: wg, pvRowQuads: rq, pvVec4, subgroups, workgroupBytes };
  }
  return undefined;
}

/** Sizes of the decode kernel (attention_decode.wgsl), or undefined when it does not apply. */
export interface DecodeShape {
  workgroupSize: number;
  tokensPerLane: number;
  /** lanes per token row: a power of two dividing the row's raw words (8 halves for f16, 4 floats for f32), at most the minimum subgroup size */
  lanesPerToken: number;
  /** raw words per lane per token row */
  wordsPerLane: number;
  groups: number;
  workgroupBytes: number;
}

export function decodeShape(rows: number, headDim: number, dtype: 'f16' | 'f32', subgroupMinSize: number, workgroupSize = 128, tokensPerLane = 2): DecodeShape | undefined {
  if (rows !== 4 || headDim % 8 !== 0 || tokensPerLane < 1) return undefined;
  const words = dtype === 'f16' ? headDim / 8 : headDim / 4;
  let lanesPerToken = 1;
  while (lanesPerToken * 2 <= subgroupMinSize && words % (lanesPerToken * 2) === 0) lanesPerToken *= 2;
  const wordsPerLane = words / lanesPerToken;
  // more than 8 words per lane: q and o of 4 rows would not stay in registers
  if (subgroupMinSize < 1 || wordsPerLane > 8 || workgroupSize % lanesPerToken !== 0) return undefined;
  const groups = workgroupSize / lanesPerToken;
  const workgroupBytes = groups * 4 * (headDim / 4) * 16 + groups * 32;
  return { workgroupSize, tokensPerLane, lanesPerToken, wordsPerLane, groups, workgroupBytes };
}
