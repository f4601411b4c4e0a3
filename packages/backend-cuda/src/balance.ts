/**
 * Backend-side load balancing: split the KV range of work items whose CTAs would run far longer
 * than an even share of the chip, so that a plan shaped for another machine (or a cost model that
 * misjudges these kernels) still fills every SM.
 *
 * The result is a plan by the same contract: an item of k pieces becomes k items over consecutive
 * slices of its KV (same queries and tile; itemPos shifted, so causal masks still hold), each
 * writing its own partial slots, and the affected queries' merge lists name the new slots next to
 * the old one. Nothing else changes, so `validatePlan` accepts it and the merge gives the same
 * attention (online-softmax merging is exact up to rounding).
 *
 * Cost of one CTA, in µs of one of the two CTA slots of an H100 SM (measured: a 16-row tile
 * streams ~20 tokens/µs, a 128-row tile ~13): a fixed launch/Q/partial cost plus tokens / rate.
 */
import type { Plan } from '@canopy/core';
import { rowGroupsFor } from './prepare.js';

export interface BalanceOptions {
  /** CTAs that run at once (SMs × CTAs per SM). */
  slots: number;
  /** No piece shorter than this many tokens. Default 256. */
  minTokens?: number;
  /** Target longest CTA as a fraction of the per-slot average. Default 1/2. */
  targetFraction?: number;
}

const TOKENS_PER_US: Record<number, number> = { 1: 20, 2: 18, 4: 15, 8: 13 };
const FIXED_US = 2;

export function ctaCostUs(tokens: number, rg: number): number {
  return FIXED_US + tokens / (TOKENS_PER_US[rg] ?? 13);
}

export function balancePlan(plan: Plan, opts: BalanceOptions): Plan {
  const minTokens = opts.minTokens ?? 256;
  const frac = opts.targetFraction ?? 1 / 2;
  const G = plan.config.numQoHeads / plan.config.numKvHeads;
  const HK = plan.config.numKvHeads;
  const n = plan.numItems;
  const tokens = new Int32Array(n);
  const rgOf = new Int32Array(n);
  const blocks = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) tokens[i] += plan.segTokens[s];
    const nq = plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i];
    const tile = plan.tiles[plan.itemTile[i]];
    rgOf[i] = rowGroupsFor(tile ? tile.rows : 16, nq * G);
    blocks[i] = Math.ceil((nq * G) / (16 * rgOf[i]));
    if (nq > 0) total += ctaCostUs(tokens[i], rgOf[i]) * HK * blocks[i];
  }
  const target = Math.max((total / Math.max(1, opts.slots)) * frac, ctaCostUs(minTokens, 8));
  const pieces = new Int32Array(n).fill(1);
  let any = false;
  for (let i = 0; i < n; i++) {
    const nq = plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i];
    if (nq === 0) continue;
    const c = ctaCostUs(tokens[i], rgOf[i]);
    if (c <= target) continue;
    const k = Math.min(Math.ceil(c / target), Math.max(1, Math.floor(tokens[i] / minTokens)));
    if (k > 1) {
      pieces[i] = k;
      any = true;
    }
  }
  if (!any) return plan;

  // Rebuild the item arrays; piece 0 keeps the item's slots, the others get fresh slots.
  const itemTile: number[] = [];
  const itemPos: number[] = [];
  const itemSegBegin: number[] = [0];
  const itemQueryBegin: number[] = [0];
  const itemQueries: number[] = [];
  const itemPartialBase: number[] = [];
  const itemNode: number[] = [];
  const segPage: number[] = [];
  const segSlot: number[] = [];
  const segTokens: number[] = [];
  let numPartials = plan.numPartials;
  // extra[slot] = the slots added for the pieces of the item that owns `slot`
  const extra = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const q0 = plan.itemQueryBegin[i];
    const q1 = plan.itemQueryBegin[i + 1];
    const nq = q1 - q0;
    const k = pieces[i];
    // Piece boundaries in tokens: multiples of 64 (full pipeline stages) when pieces are long
    // enough for the rounding not to matter, exact otherwise.
    const unit = tokens[i] / k >= 128 ? 64 : 1;
    const bounds: number[] = [0];
    for (let j = 1; j < k; j++) {
      const b = Math.round((tokens[i] * j) / k / unit) * unit;
      bounds.push(Math.min(Math.max(b, bounds[j - 1] + 1), tokens[i]));
    }
    bounds.push(tokens[i]);
    let seg = plan.itemSegBegin[i];
    let segOff = 0; // tokens of `seg` already consumed
    for (let j = 0; j < k; j++) {
      const want = bounds[j + 1] - bounds[j];
      if (want <= 0 && k > 1) continue;
      let left = want;
      while (left > 0) {
        const avail = plan.segTokens[seg] - segOff;
        const take = Math.min(avail, left);
        segPage.push(plan.segPage[seg]);
        segSlot.push(plan.segSlot[seg] + segOff);
        segTokens.push(take);
        left -= take;
        segOff += take;
        if (segOff === plan.segTokens[seg]) {
          seg++;
          segOff = 0;
        }
      }
      itemSegBegin.push(segTokens.length);
      itemTile.push(plan.itemTile[i]);
      itemPos.push(plan.itemPos[i] + bounds[j]);
      for (let x = q0; x < q1; x++) itemQueries.push(plan.itemQueries[x]);
      itemQueryBegin.push(itemQueries.length);
      itemNode.push(plan.itemNode ? plan.itemNode[i] : -1);
      if (j === 0) {
        itemPartialBase.push(plan.itemPartialBase[i]);
      } else {
        itemPartialBase.push(numPartials);
        for (let lq = 0; lq < nq; lq++) {
          const orig = plan.itemPartialBase[i] + lq;
          let list = extra.get(orig);
          if (!list) extra.set(orig, (list = []));
          list.push(numPartials + lq);
        }
        numPartials += nq;
      }
    }
  }
  const mergeBegin = new Int32Array(plan.numQueries + 1);
  const mergeSlots: number[] = [];
  for (let q = 0; q < plan.numQueries; q++) {
    mergeBegin[q] = mergeSlots.length;
    for (let j = plan.mergeBegin[q]; j < plan.mergeBegin[q + 1]; j++) {
      const s = plan.mergeSlots[j];
      mergeSlots.push(s);
      const more = extra.get(s);
      if (more) mergeSlots.push(...more);
    }
  }
  mergeBegin[plan.numQueries] = mergeSlots.length;
  const out: Plan = {
    ...plan,
    numItems: itemTile.length,
    itemTile: Int32Array.from(itemTile),
    itemPos: Int32Array.from(itemPos),
    itemSegBegin: Int32Array.from(itemSegBegin),
    itemQueryBegin: Int32Array.from(itemQueryBegin),
    itemQueries: Int32Array.from(itemQueries),
    itemPartialBase: Int32Array.from(itemPartialBase),
    segPage: Int32Array.from(segPage),
    segSlot: Int32Array.from(segSlot),
    segTokens: Int32Array.from(segTokens),
    numPartials,
    mergeBegin,
    mergeSlots: Int32Array.from(mergeSlots),
  };
  if (plan.itemNode) out.itemNode = Int32Array.from(itemNode);
  return out;
}
