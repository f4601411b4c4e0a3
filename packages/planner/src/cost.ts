/**
 * The planner's cost model. One work item runs as one CTA (thread block, workgroup) per KV head;
 * the device runs `parallelUnits` of them at a time. A CTA of an item with `rows` rows per KV head,
 * tile (R, B) and `t` KV tokens costs
 *
 *   ctaUs = itemOverheadUs                                   (launch share, load Q, write partial)
 *         + ceil(t / B) · blockOverheadUs                    (one loop trip per KV block)
 *         + bytes / (bandwidth / parallelUnits)              (its share of DRAM bandwidth)
 *         + R · ceil(t / B) · B · headDim · 4 / (flops / parallelUnits)   (QKᵀ and PV, padded tile)
 *
 *   bytes = t · 2 · headDim · kvBytes · byteFactor + rows · headDim · 4 · 2 + rows · 4
 *
 * where byteFactor is 1, or `siblingByteFactor` for the row-split siblings of a chunk (emitted next
 * to each other, they read the same KV while it is in L2). The kernel time is
 * max(Σ ctaUs / parallelUnits, max ctaUs) (a lower bound on a greedy schedule; wave quantisation is
 * ignored). Merging adds `mergeLaunchUs` (a second one when a query has more than
 * `twoLevelMergeAt` partials: the merge then runs in two levels) plus the bytes of reading every
 * partial of a query with more than one and writing its output.
 */
import { kvBytesPerElement, type AttentionConfig, type BackendCapabilities, type TileShape } from '@canopy/core';

export interface CostModelParams {
  /** DRAM read bandwidth, GB/s. Default: capabilities.readBandwidthGBs, else 1000. */
  bandwidthGBs: number;
  /** CTAs that run at once. Default: capabilities.parallelUnits. */
  parallelUnits: number;
  /** Machine balance: arithmetic per byte the units sustain at full bandwidth (FLOP/byte). The
   * FLOP rate is flopPerByte × bandwidth. Default 100 (H100 tensor cores reach ~295 at peak;
   * attention tiles reach about a third of it). */
  flopPerByte: number;
  /** Fixed cost of one CTA, µs. Default: capabilities.planningHints.itemOverheadUs, else 1. */
  itemOverheadUs: number;
  /** Cost of one KV-block loop trip (barriers, softmax rescale), µs. Default 0.01. */
  blockOverheadUs: number;
  /** Fixed cost of the merge pass, µs (paid once when any query has more than one partial). Default 2. */
  mergeLaunchUs: number;
  /** Bytes charged to a row-split sibling of a chunk, as a fraction of the first. Default 0.25. */
  siblingByteFactor: number;
  /** A query with more partials than this merges in two levels (a second pass). Default 64. */
  twoLevelMergeAt: number;
  /** CTA slots for wave quantisation (0: off): the CTAs within a factor 2 of the longest run in
   * ceil(count / waveSlots) waves. Default: capabilities.planningHints.waveSlots, else 0. */
  waveSlots: number;
  /** Tiles whose CTAs fit fewer (or more) at once than `waveSlots`: CTAs of a tile with at least
   * `minRows` rows count waveSlots / that entry's `waveSlots` each in the wave term (the largest
   * matching minRows wins). Default: capabilities.planningHints.tileWaveSlots, else none. */
  tileWaveSlots: ReadonlyArray<{ minRows: number; waveSlots: number }>;
}

export const COST_DEFAULTS = {
  bandwidthGBs: 1000,
  flopPerByte: 100,
  itemOverheadUs: 1,
  blockOverheadUs: 0.01,
  mergeLaunchUs: 2,
  siblingByteFactor: 0.25,
  twoLevelMergeAt: 64,
} as const;

export function costModel(capabilities: BackendCapabilities, overrides: Partial<CostModelParams> = {}): CostModelParams {
  return {
    bandwidthGBs: capabilities.readBandwidthGBs ?? COST_DEFAULTS.bandwidthGBs,
    // a backend's measured hints first (core's PlanningHints), then the caller's overrides
    parallelUnits: Math.max(1, (capabilities.planningHints?.parallelUnits ?? capabilities.parallelUnits) | 0),
    flopPerByte: COST_DEFAULTS.flopPerByte,
    itemOverheadUs: validHint(capabilities.planningHints?.itemOverheadUs) ?? COST_DEFAULTS.itemOverheadUs,
    blockOverheadUs: COST_DEFAULTS.blockOverheadUs,
    mergeLaunchUs: COST_DEFAULTS.mergeLaunchUs,
    siblingByteFactor: COST_DEFAULTS.siblingByteFactor,
    twoLevelMergeAt: COST_DEFAULTS.twoLevelMergeAt,
    waveSlots: Math.max(0, (capabilities.planningHints?.waveSlots ?? 0) | 0),
    tileWaveSlots: (capabilities.planningHints?.tileWaveSlots ?? []).filter((e) => e.minRows > 0 && e.waveSlots >= 1),
    ...overrides,
  };
}

/** A non-negative finite hint, else undefined (the default applies). */
function validHint(x: number | undefined): number | undefined {
  return x !== undefined && Number.isFinite(x) && x >= 0 ? x : undefined;
}

/** Per-CTA rates derived from the model for one attention config. */
export class CtaCost {
  /** bytes per µs per CTA */
  readonly bwUnit: number;
  /** FLOP per µs per CTA */
  readonly flopUnit: number;
  /** KV bytes of one token of one KV head (K and V). */
  readonly kvBytesTok: number;
  readonly headDim: number;
  readonly numKvHeads: number;
  readonly numQoHeads: number;
  readonly group: number;

  constructor(
    readonly m: CostModelParams,
    config: AttentionConfig,
  ) {
    const bw = m.bandwidthGBs * 1e3; // bytes/µs
    this.bwUnit = bw / m.parallelUnits;
    this.flopUnit = (bw * m.flopPerByte) / m.parallelUnits;
    this.kvBytesTok = 2 * config.headDim * kvBytesPerElement(config.kvDtype);
    this.headDim = config.headDim;
    this.numKvHeads = config.numKvHeads;
    this.numQoHeads = config.numQoHeads;
    this.group = config.numQoHeads / config.numKvHeads;
  }

  /** Bytes one CTA moves. */
  bytes(rows: number, t: number, byteFactor: number): number {
    return t * this.kvBytesTok * byteFactor + rows * this.headDim * 8 + rows * 4;
  }

  /** µs of one CTA (see the module comment). */
  cta(rows: number, tile: TileShape, t: number, byteFactor: number): number {
    const blocks = Math.ceil(t / tile.kvBlock);
    return (
      this.m.itemOverheadUs +
      blocks * this.m.blockOverheadUs +
      this.bytes(rows, t, byteFactor) / this.bwUnit +
      (tile.rows * blocks * tile.kvBlock * this.headDim * 4) / this.flopUnit
    );
  }

  /** Bytes of merge traffic for one query with `partials` partial states (0 when it has one). */
  mergeBytes(partials: number): number {
    if (partials <= 1) return 0;
    return (partials * (this.headDim + 1) + this.headDim) * 4 * this.numQoHeads;
  }
}

/** A tile menu sorted for lookups, with the per-row-count best KV block chosen by the model. */
export class TileChooser {
  readonly menu: TileShape[];
  /** distinct row counts, ascending */
  readonly rowSizes: number[];
  readonly maxRows: number;
  private byRows: Map<number, number[]>;

  constructor(menu: TileShape[]) {
    this.menu = menu.map((t) => ({ rows: t.rows, kvBlock: t.kvBlock }));
    this.byRows = new Map();
    this.menu.forEach((t, i) => {
      const l = this.byRows.get(t.rows);
      if (l) l.push(i);
      else this.byRows.set(t.rows, [i]);
    });
    this.rowSizes = [...this.byRows.keys()].sort((a, b) => a - b);
    this.maxRows = this.rowSizes[this.rowSizes.length - 1];
  }

  /** Smallest menu row count ≥ rows, else the largest. */
  rowsFor(rows: number): number {
    for (const r of this.rowSizes) if (r >= rows) return r;
    return this.maxRows;
  }

  /** Tile index for an item: smallest fitting rows, KV block by the cost model. */
  choose(cost: CtaCost, rows: number, t: number): number {
    const list = this.byRows.get(this.rowsFor(rows))!;
    if (list.length === 1) return list[0];
    let best = list[0];
    let bestC = Infinity;
    for (const i of list) {
      const c = cost.cta(rows, this.menu[i], t, 1);
      if (c < bestC - 1e-12) {
        bestC = c;
        best = i;
      }
    }
    return best;
  }

  /** Tile index with the smallest fitting rows and the largest KV block (the perRequest rule). */
  largestBlock(rows: number): number {
    const list = this.byRows.get(this.rowsFor(rows))!;
    let best = list[0];
    for (const i of list) if (this.menu[i].kvBlock > this.menu[best].kvBlock) best = i;
    return best;
  }

  /** Per-token µs of a CTA with this many rows (padded to the tile), for the split search. */
  perToken(cost: CtaCost, rows: number): number {
    const R = this.rowsFor(rows);
    const list = this.byRows.get(R)!;
    let B = 0;
    for (const i of list) B = Math.max(B, this.menu[i].kvBlock);
    return cost.kvBytesTok / cost.bwUnit + (R * cost.headDim * 4) / cost.flopUnit + cost.m.blockOverheadUs / B;
  }
}
