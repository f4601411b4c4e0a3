/**
 * Hybrid batches (prefill chunks beside decodes) planned as two query sets in one plan
 * (`PrefixPlannerOptions.hybridLayout: 'separate'`, the default). With the 'packed' layout a node
 * shared by prefill and decode requests gets one group holding both kinds of queries: its row
 * blocks mix compute-bound prefill rows with the decodes, and the split search sizes the node's
 * chunks for the union (H2: 2304 queries on W5's root, 72 row blocks in one chunk, which runs in
 * a third, mostly empty wave). 'separate' plans the prefill requests and the decode requests as two
 * sub-batches with the same planner and concatenates the two plans: a shared node is read once by
 * each set (as two separate launches would read it), but everything runs in one launch with one
 * merge pass.
 */
import { CONTRACT_VERSION, requestQueryOffsets, type Batch, type Plan } from '@canopy/core';

/** Whether a batch has both prefill requests (several queries) and decode requests (one). */
export function isHybridBatch(batch: Batch): boolean {
  let pre = false;
  let dec = false;
  for (const r of batch.requests) {
    if (r.numQueries > 1) pre = true;
    else dec = true;
    if (pre && dec) return true;
  }
  return false;
}

export interface HybridPart {
  /** The sub-batch (a subset of the requests, same pages and config; an explicit tree kept whole). */
  batch: Batch;
  /** Whole-batch index of each of the sub-batch's requests, in order. */
  requests: number[];
  /** Whole-batch query id of each of the sub-batch's queries, in order. */
  queryIds: Int32Array;
}

/** The prefill and decode halves of a hybrid batch (request order kept within each). */
export function splitHybridBatch(batch: Batch): [HybridPart, HybridPart] {
  const off = requestQueryOffsets(batch);
  const make = (pick: (nq: number) => boolean): HybridPart => {
    const reqs: number[] = [];
    batch.requests.forEach((r, i) => pick(r.numQueries) && reqs.push(i));
    const sub: Batch = { config: batch.config, numPages: batch.numPages, pageSize: batch.pageSize, requests: reqs.map((i) => batch.requests[i]) };
    // nodes no request of the half reaches are simply unused
    if (batch.tree) sub.tree = { ...batch.tree, requestLeaf: Int32Array.from(reqs, (i) => batch.tree!.requestLeaf[i]) };
    let n = 0;
    for (const i of reqs) n += off[i + 1] - off[i];
    const queryIds = new Int32Array(n);
    n = 0;
    for (const i of reqs) for (let q = off[i]; q < off[i + 1]; q++) queryIds[n++] = q;
    return { batch: sub, requests: reqs, queryIds };
  };
  return [make((nq) => nq > 1), make((nq) => nq <= 1)];
}

/**
 * One plan of the whole batch from the plans of its parts: items, segments and partial slots of
 * part k follow those of parts before it; query ids are mapped back to the whole batch; each
 * query's merge list is its part's list (slots offset). Both plans must use the same tile menu.
 * `itemNode` is dropped (the parts number their tree nodes independently).
 */
export function concatPlans(batch: Batch, parts: HybridPart[], plans: Plan[]): Plan {
  const off = requestQueryOffsets(batch);
  const NQ = off[batch.requests.length];
  let NI = 0;
  let NS = 0;
  let NIQ = 0;
  for (const p of plans) {
    NI += p.numItems;
    NS += p.itemSegBegin[p.numItems];
    NIQ += p.itemQueryBegin[p.numItems];
  }
  const queryRequest = new Int32Array(NQ);
  for (let r = 0; r < batch.requests.length; r++) queryRequest.fill(r, off[r], off[r + 1]);
  const queryKvLimit = new Int32Array(NQ);
  const itemTile = new Int32Array(NI);
  const itemPos = new Int32Array(NI);
  const itemSegBegin = new Int32Array(NI + 1);
  const itemQueryBegin = new Int32Array(NI + 1);
  const itemPartialBase = new Int32Array(NI);
  const itemQueries = new Int32Array(NIQ);
  const segPage = new Int32Array(NS);
  const segSlot = new Int32Array(NS);
  const segTokens = new Int32Array(NS);
  const mergeBegin = new Int32Array(NQ + 1);
  // per whole query: its part and the query's index there
  const partOf = new Int32Array(NQ);
  const indexIn = new Int32Array(NQ);
  let i0 = 0;
  let s0 = 0;
  let q0 = 0;
  let p0 = 0;
  const slotBase: number[] = [];
  plans.forEach((p, k) => {
    const ids = parts[k].queryIds;
    for (let j = 0; j < ids.length; j++) {
      partOf[ids[j]] = k;
      indexIn[ids[j]] = j;
      queryKvLimit[ids[j]] = p.queryKvLimit[j];
    }
    const ni = p.numItems;
    itemTile.set(p.itemTile.subarray(0, ni), i0);
    itemPos.set(p.itemPos.subarray(0, ni), i0);
    for (let i = 0; i < ni; i++) {
      itemSegBegin[i0 + i] = s0 + p.itemSegBegin[i];
      itemQueryBegin[i0 + i] = q0 + p.itemQueryBegin[i];
      itemPartialBase[i0 + i] = p0 + p.itemPartialBase[i];
    }
    const nq = p.itemQueryBegin[ni];
    for (let z = 0; z < nq; z++) itemQueries[q0 + z] = ids[p.itemQueries[z]];
    const ns = p.itemSegBegin[ni];
    segPage.set(p.segPage.subarray(0, ns), s0);
    segSlot.set(p.segSlot.subarray(0, ns), s0);
    segTokens.set(p.segTokens.subarray(0, ns), s0);
    slotBase.push(p0);
    i0 += ni;
    s0 += ns;
    q0 += nq;
    p0 += p.numPartials;
  });
  itemSegBegin[NI] = s0;
  itemQueryBegin[NI] = q0;
  for (let q = 0; q < NQ; q++) {
    const p = plans[partOf[q]];
    const j = indexIn[q];
    mergeBegin[q + 1] = mergeBegin[q] + p.mergeBegin[j + 1] - p.mergeBegin[j];
  }
  const mergeSlots = new Int32Array(mergeBegin[NQ]);
  for (let q = 0; q < NQ; q++) {
    const k = partOf[q];
    const p = plans[k];
    const j = indexIn[q];
    let at = mergeBegin[q];
    for (let z = p.mergeBegin[j]; z < p.mergeBegin[j + 1]; z++) mergeSlots[at++] = slotBase[k] + p.mergeSlots[z];
  }
  return {
    version: CONTRACT_VERSION,
    planner: plans[0].planner,
    config: { ...batch.config },
    numQueries: NQ,
    queryRequest,
    queryKvLimit,
    tiles: plans[0].tiles.map((t) => ({ rows: t.rows, kvBlock: t.kvBlock })),
    numItems: NI,
    itemTile,
    itemPos,
    itemSegBegin,
    itemQueryBegin,
    itemQueries,
    itemPartialBase,
    segPage,
    segSlot,
    segTokens,
    numPartials: p0,
    mergeBegin,
    mergeSlots,
  };
}
