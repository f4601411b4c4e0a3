/** Metrics of any plan (either planner), with the cost model's predicted bytes and time. */
import { uniqueKvTokens, type BackendCapabilities, type Batch, type Plan } from '@canopy/core';
import { costModel, CtaCost, type CostModelParams } from './cost.js';

export interface PlanMetrics {
  planner: string;
  /** Distinct (page, slot) pairs visible to some query of the batch. */
  uniqueKvTokens: number;
  /** Tokens of the distinct KV ranges the plan reads: row-split siblings of one chunk (same
   * position and segments, emitted next to each other) count once. Equals uniqueKvTokens when the
   * plan reads every shared token once. */
  kvTokensRead: number;
  /** Σ item tokens (core's planKvTokens): row-split siblings count again. */
  kvTokensLoaded: number;
  /** Distinct (page, slot) pairs the plan reads. */
  distinctKvTokensRead: number;
  workItems: number;
  /** items × KV heads: the CTAs the model schedules. */
  ctas: number;
  partials: number;
  maxPartialsPerQuery: number;
  /** Merge passes the model charges (0, 1 or 2). */
  mergeLevels: number;
  /** rows per KV head of each item (queries × GQA group) → items. */
  rowsHistogram: Record<number, number>;
  /** "rows×kvBlock" → items. */
  tileHistogram: Record<string, number>;
  /** Predicted DRAM bytes (KV, queries, partials, merge). */
  predictedBytes: number;
  predictedTimeUs: number;
  predicted: { kernelUs: number; avgLoadUs: number; maxCtaUs: number; mergeUs: number };
}

function sameRange(plan: Plan, i: number, j: number): boolean {
  if (plan.itemPos[i] !== plan.itemPos[j]) return false;
  const a0 = plan.itemSegBegin[i];
  const a1 = plan.itemSegBegin[i + 1];
  const b0 = plan.itemSegBegin[j];
  if (plan.itemSegBegin[j + 1] - b0 !== a1 - a0) return false;
  for (let s = 0; s < a1 - a0; s++) {
    if (plan.segPage[a0 + s] !== plan.segPage[b0 + s] || plan.segSlot[a0 + s] !== plan.segSlot[b0 + s] || plan.segTokens[a0 + s] !== plan.segTokens[b0 + s]) return false;
  }
  return true;
}

export function planMetrics(plan: Plan, batch: Batch, capabilities: BackendCapabilities, cost: Partial<CostModelParams> = {}): PlanMetrics {
  const model = costModel(capabilities, cost);
  const cc = new CtaCost(model, plan.config);
  const HK = plan.config.numKvHeads;
  const g = plan.config.numQoHeads / HK;
  const used = new Uint8Array(batch.numPages * batch.pageSize);
  let distinct = 0;
  let read = 0;
  let loaded = 0;
  let sumCta = 0;
  let maxCta = 0;
  let bytes = 0;
  const rowsHistogram: Record<number, number> = {};
  const tileHistogram: Record<string, number> = {};
  for (let i = 0; i < plan.numItems; i++) {
    let t = 0;
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) {
      const n = plan.segTokens[s];
      t += n;
      const b = plan.segPage[s] * batch.pageSize + plan.segSlot[s];
      for (let x = 0; x < n; x++) {
        if (!used[b + x]) {
          used[b + x] = 1;
          distinct++;
        }
      }
    }
    loaded += t;
    const sibling = i > 0 && sameRange(plan, i - 1, i);
    if (!sibling) read += t;
    const rows = (plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i]) * g;
    const tile = plan.tiles[plan.itemTile[i]];
    const f = sibling ? model.siblingByteFactor : 1;
    const c = cc.cta(rows, tile, t, f);
    sumCta += c * HK;
    if (c > maxCta) maxCta = c;
    bytes += cc.bytes(rows, t, f) * HK;
    rowsHistogram[rows] = (rowsHistogram[rows] ?? 0) + 1;
    const key = `${tile.rows}x${tile.kvBlock}`;
    tileHistogram[key] = (tileHistogram[key] ?? 0) + 1;
  }
  let maxP = 0;
  let mergeBytes = 0;
  for (let q = 0; q < plan.numQueries; q++) {
    const n = plan.mergeBegin[q + 1] - plan.mergeBegin[q];
    if (n > maxP) maxP = n;
    mergeBytes += cc.mergeBytes(n);
  }
  const mergeLevels = maxP <= 1 ? 0 : maxP > model.twoLevelMergeAt ? 2 : 1;
  const bw = model.bandwidthGBs * 1e3;
  const mergeUs = mergeLevels * model.mergeLaunchUs + mergeBytes / bw;
  const avgLoadUs = sumCta / model.parallelUnits;
  const kernelUs = Math.max(avgLoadUs, maxCta);
  return {
    planner: plan.planner,
    uniqueKvTokens: uniqueKvTokens(batch),
    kvTokensRead: read,
    kvTokensLoaded: loaded,
    distinctKvTokensRead: distinct,
    workItems: plan.numItems,
    ctas: plan.numItems * HK,
    partials: plan.numPartials,
    maxPartialsPerQuery: maxP,
    mergeLevels,
    rowsHistogram,
    tileHistogram,
    predictedBytes: bytes + mergeBytes,
    predictedTimeUs: kernelUs + mergeUs,
    predicted: { kernelUs, avgLoadUs, maxCtaUs: maxCta, mergeUs },
  };
}
