import { CanopyError, type Plan } from '@canopy/core';
import { pickVariant, type KernelVariant } from './variants.js';

/** Words per unit record in the plan buffer (see `Unit` in attention.wgsl). */
export const UNIT_WORDS = 8;

export interface SplitPolicy {
  /** Aim for at least this many workgroups; items are split along KV (FlashDecoding style) below it. */
  targetUnits: number;
  /** Never split an item's KV into chunks shorter than this many tokens. */
  minChunk: number;
}

export interface PreparedLayout {
  /** Everything the kernels read, in one u32 array (uploaded once per plan). */
  words: Uint32Array;
  /** Per variant: [first unit, unit count]. */
  variantUnits: Array<[number, number]>;
  offTok: number;
  offItemQ: number;
  offLimit: number;
  offDirect: number;
  offMergeQuery: number;
  offMergeBegin: number;
  offMergeList: number;
  mergeCount: number;
  /** Internal partial slots (plan slots × KV chunks of their item). */
  numInternal: number;
  numUnits: number;
  /** KV tokens the units read per KV head (Σ unit tokens). */
  unitTokens: number;
}

interface Shape {
  numQoHeads: number;
  numKvHeads: number;
  numPages: number;
  pageSize: number;
}

/**
 * Lay a plan out for the kernels: expand items over KV heads, row blocks and KV chunks into work
 * units grouped by kernel variant, give every (item, chunk, query) an internal partial slot, and
 * turn the plan's merge lists into lists over internal slots. Checks every id it uses.
 */
export function prepareLayout(plan: Plan, shape: Shape, variants: readonly KernelVariant[], policy: SplitPolicy, maxRowPadding?: number): PreparedLayout {
  const { numQoHeads: H, numKvHeads: HK, numPages, pageSize } = shape;
  const G = H / HK;
  const n = plan.numItems;
  const nq = plan.numQueries;
  need(plan.itemSegBegin.length === n + 1 && plan.itemQueryBegin.length === n + 1, 'itemSegBegin/itemQueryBegin must have numItems + 1 entries');
  need(plan.itemTile.length >= n && plan.itemPos.length >= n && plan.itemPartialBase.length >= n, 'item arrays shorter than numItems');
  need(plan.queryKvLimit.length >= nq && plan.mergeBegin.length === nq + 1, 'queryKvLimit/mergeBegin do not match numQueries');

  const itemTok = new Int32Array(n);
  const itemVar = new Int32Array(n);
  let totalTok = 0;
  for (let i = 0; i < n; i++) {
    let t = 0;
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) {
      const page = plan.segPage[s];
      const slot = plan.segSlot[s];
      const len = plan.segTokens[s];
      if (!(page >= 0 && page < numPages)) fail(`work item ${i}: page id ${page} out of range [0, ${numPages})`);
      if (!(slot >= 0 && len >= 0 && slot + len <= pageSize)) fail(`work item ${i}: segment slots [${slot}, ${slot + len}) outside a page of ${pageSize}`);
      t += len;
    }
    itemTok[i] = t;
    totalTok += t;
    const qn = plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i];
    need(qn >= 0, `work item ${i}: negative query count`);
    itemVar[i] = pickVariant(variants, plan.tiles[plan.itemTile[i]], qn * G, maxRowPadding);
  }

  // Row blocks per item and the KV chunk length (backend-side split-KV when units are few).
  const rowBlocks = new Int32Array(n);
  let baseUnits = 0;
  let work = 0;
  for (let i = 0; i < n; i++) {
    const rows = (plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i]) * G;
    rowBlocks[i] = Math.max(1, Math.ceil(rows / variants[itemVar[i]].rows));
    baseUnits += rowBlocks[i] * HK;
    work += itemTok[i] * rowBlocks[i] * HK;
  }
  let chunk = Number.POSITIVE_INFINITY;
  if (baseUnits < policy.targetUnits && work > 0) chunk = Math.max(policy.minChunk, Math.ceil(work / policy.targetUnits));
  const nsplit = new Int32Array(n);
  const chunkLen = new Int32Array(n);
  const splitBase = new Int32Array(n);
  let numInternal = 0;
  let numUnits = 0;
  for (let i = 0; i < n; i++) {
    const v = variants[itemVar[i]];
    const kb = v.kvBlock;
    // per-variant bounds on the chunk length (e.g. longer chunks for the blocked kernel's units)
    let c = chunk;
    if (v.minChunk !== undefined && Number.isFinite(c)) c = Math.max(c, v.minChunk);
    if (v.maxChunk !== undefined) c = Math.min(c, Math.max(v.maxChunk, policy.minChunk));
    const ns = itemTok[i] === 0 ? 1 : Math.max(1, Math.ceil(itemTok[i] / c));
    const len = Math.ceil(Math.ceil(itemTok[i] / ns) / kb) * kb;
    nsplit[i] = Math.max(1, Math.ceil(itemTok[i] / Math.max(len, 1)));
    chunkLen[i] = Math.max(len, 1);
    splitBase[i] = numInternal;
    numInternal += nsplit[i] * (plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i]);
    numUnits += nsplit[i] * rowBlocks[i] * HK;
  }

  // Plan slot → (item, local query); then each query's internal slot list.
  const slotItem = new Int32Array(plan.numPartials).fill(-1);
  for (let i = 0; i < n; i++) {
    const qn = plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i];
    for (let j = 0; j < qn; j++) {
      const p = plan.itemPartialBase[i] + j;
      if (!(p >= 0 && p < plan.numPartials)) fail(`work item ${i}: partial slot ${p} out of range [0, ${plan.numPartials})`);
      slotItem[p] = i;
      const q = plan.itemQueries[plan.itemQueryBegin[i] + j];
      if (!(q >= 0 && q < nq)) fail(`work item ${i}: query id ${q} out of range [0, ${nq})`);
    }
  }
  const direct = new Uint32Array(nq);
  const mergeQ: number[] = [];
  const mergeBeginArr: number[] = [0];
  const mergeList: number[] = [];
  for (let q = 0; q < nq; q++) {
    let count = 0;
    for (let k = plan.mergeBegin[q]; k < plan.mergeBegin[q + 1]; k++) {
      const p = plan.mergeSlots[k];
      if (!(p >= 0 && p < plan.numPartials) || slotItem[p] < 0) fail(`query ${q}: merge slot ${p} is not written by any work item`);
      count += nsplit[slotItem[p]];
    }
    if (count === 0) fail(`query ${q} has no partial states to merge`);
    if (count === 1) {
      direct[q] = 1;
      continue;
    }
    mergeQ.push(q);
    for (let k = plan.mergeBegin[q]; k < plan.mergeBegin[q + 1]; k++) {
      const p = plan.mergeSlots[k];
      const i = slotItem[p];
      const qn = plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i];
      const lq = p - plan.itemPartialBase[i];
      for (let c = 0; c < nsplit[i]; c++) mergeList.push(splitBase[i] + c * qn + lq);
    }
    mergeBeginArr.push(mergeList.length);
  }

  // One u32 array: units (grouped by variant) | token rows | item queries | limits | direct | merge.
  const offTok = numUnits * UNIT_WORDS;
  const offItemQ = offTok + totalTok;
  const offLimit = offItemQ + plan.itemQueries.length;
  const offDirect = offLimit + nq;
  const offMergeQuery = offDirect + nq;
  const offMergeBegin = offMergeQuery + mergeQ.length;
  const offMergeList = offMergeBegin + mergeBeginArr.length;
  const words = new Uint32Array(Math.max(4, offMergeList + mergeList.length));

  const tokBase = new Int32Array(n);
  let w = offTok;
  for (let i = 0; i < n; i++) {
    tokBase[i] = w - offTok;
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) {
      const row0 = plan.segPage[s] * pageSize + plan.segSlot[s];
      for (let j = 0; j < plan.segTokens[s]; j++) words[w++] = row0 + j;
    }
  }
  words.set(plan.itemQueries, offItemQ);
  for (let q = 0; q < nq; q++) words[offLimit + q] = Math.max(0, plan.queryKvLimit[q]);
  words.set(direct, offDirect);
  words.set(mergeQ, offMergeQuery);
  words.set(mergeBeginArr, offMergeBegin);
  words.set(mergeList, offMergeList);

  const variantUnits: Array<[number, number]> = [];
  let u = 0;
  let unitTokens = 0;
  for (let v = 0; v < variants.length; v++) {
    const first = u;
    const R = variants[v].rows;
    for (let i = 0; i < n; i++) {
      if (itemVar[i] !== v) continue;
      const qn = plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i];
      for (let c = 0; c < nsplit[i]; c++) {
        const t0 = c * chunkLen[i];
        const nt = Math.max(0, Math.min(chunkLen[i], itemTok[i] - t0));
        // units of one chunk sit together so the heads and row blocks reading it share the L2
        for (let h = 0; h < HK; h++) {
          for (let b = 0; b < rowBlocks[i]; b++) {
            const o = u * UNIT_WORDS;
            words[o] = tokBase[i] + t0;
            words[o + 1] = nt;
            words[o + 2] = plan.itemPos[i] + t0;
            words[o + 3] = h;
            words[o + 4] = plan.itemQueryBegin[i];
            words[o + 5] = qn * G;
            words[o + 6] = b * R;
            words[o + 7] = splitBase[i] + c * qn;
            u++;
          }
        }
        unitTokens += nt;
      }
    }
    variantUnits.push([first, u - first]);
  }
  return {
    words,
    variantUnits,
    offTok,
    offItemQ,
    offLimit,
    offDirect,
    offMergeQuery,
    offMergeBegin,
    offMergeList,
    mergeCount: mergeQ.length,
    numInternal,
    numUnits,
    unitTokens,
  };
}

function fail(msg: string): never {
  throw new CanopyError('invalid-plan', `webgpu: ${msg}`);
}

function need(ok: boolean, msg: string): void {
  if (!ok) fail(msg);
}
