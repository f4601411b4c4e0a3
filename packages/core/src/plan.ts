import { queryKvLimits, queryRequestMap, requestKvTokens } from './batch.js';
import { fail } from './errors.js';
import { CONTRACT_VERSION, type AttentionConfig, type Batch, type Plan, type TileShape } from './types.js';

/** KV tokens work item i reads. */
export function itemTokens(plan: Plan, i: number): number {
  let n = 0;
  for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) n += plan.segTokens[s];
  return n;
}

/** KV tokens the whole plan reads (Σ over items; a token read by two items counts twice). */
export function planKvTokens(plan: Plan): number {
  let n = 0;
  for (let s = 0; s < plan.segTokens.length; s++) n += plan.segTokens[s];
  // Segments not referenced by any item are not read.
  const used = plan.numItems > 0 ? plan.itemSegBegin[plan.numItems] - plan.itemSegBegin[0] : 0;
  if (used !== plan.segTokens.length) {
    n = 0;
    for (let i = 0; i < plan.numItems; i++) n += itemTokens(plan, i);
  }
  return n;
}

const INT_FIELDS = [
  'queryRequest',
  'queryKvLimit',
  'itemTile',
  'itemPos',
  'itemSegBegin',
  'itemQueryBegin',
  'itemQueries',
  'itemPartialBase',
  'segPage',
  'segSlot',
  'segTokens',
  'mergeBegin',
  'mergeSlots',
] as const;

function checkLen(plan: Plan, field: (typeof INT_FIELDS)[number], want: number): void {
  const a = plan[field];
  if (!(a instanceof Int32Array)) fail('bad-plan', `plan.${field} must be an Int32Array`);
  if (a.length !== want) fail('bad-plan', `plan.${field} has length ${a.length}, expected ${want}`);
}

/**
 * Check that a plan computes exactly the batch's attention: every (query, visible KV token) pair
 * is covered by exactly one work item, each item's tokens are the ones its queries' requests hold at
 * those positions, every id is in range, every partial slot is written once and merged into the
 * query it belongs to. Throws a CanopyError naming the first offending item, segment or query.
 */
export function validatePlan(plan: Plan, batch: Batch): void {
  if (plan.version !== CONTRACT_VERSION) fail('bad-plan', `plan.version ${plan.version} ≠ contract version ${CONTRACT_VERSION}`);
  const nq = queryRequestMap(batch).length;
  const pc = plan.config;
  const bc = batch.config;
  if (!pc || pc.numQoHeads !== bc.numQoHeads || pc.numKvHeads !== bc.numKvHeads || pc.headDim !== bc.headDim || pc.kvDtype !== bc.kvDtype || (pc.scale ?? 0) !== (bc.scale ?? 0)) {
    fail('bad-plan', `plan.config ${JSON.stringify(pc)} differs from the batch's config ${JSON.stringify(bc)}`);
  }
  if (plan.numQueries !== nq) fail('bad-plan', `plan has ${plan.numQueries} queries, the batch ${nq}`);
  const ni = plan.numItems;
  checkLen(plan, 'queryRequest', nq);
  checkLen(plan, 'queryKvLimit', nq);
  checkLen(plan, 'itemTile', ni);
  checkLen(plan, 'itemPos', ni);
  checkLen(plan, 'itemSegBegin', ni + 1);
  checkLen(plan, 'itemQueryBegin', ni + 1);
  checkLen(plan, 'itemPartialBase', ni);
  checkLen(plan, 'mergeBegin', nq + 1);
  const nseg = plan.segPage.length;
  checkLen(plan, 'segSlot', nseg);
  checkLen(plan, 'segTokens', nseg);
  checkLen(plan, 'itemQueries', plan.itemQueries.length);
  checkLen(plan, 'mergeSlots', plan.mergeSlots.length);
  if (!Array.isArray(plan.tiles) || plan.tiles.length === 0) fail('bad-plan', 'plan.tiles must list at least one tile shape');

  const qr = queryRequestMap(batch);
  const lim = queryKvLimits(batch);
  for (let q = 0; q < nq; q++) {
    if (plan.queryRequest[q] !== qr[q]) fail('bad-plan', `plan.queryRequest[${q}] = ${plan.queryRequest[q]}, the batch says request ${qr[q]}`);
    if (plan.queryKvLimit[q] !== lim[q]) fail('bad-plan', `plan.queryKvLimit[${q}] = ${plan.queryKvLimit[q]}, the batch's causal limit is ${lim[q]}`);
  }

  // Per request: global slot id (page * pageSize + slot) of each KV position, built lazily.
  const P = batch.pageSize;
  const reqTokens: (Int32Array | undefined)[] = new Array(batch.requests.length);
  const tokensOf = (r: number): Int32Array => {
    let t = reqTokens[r];
    if (!t) {
      const req = batch.requests[r];
      t = new Int32Array(requestKvTokens(req));
      let k = 0;
      for (let s = 0; s < req.pageIds.length; s++) for (let j = 0; j < req.pageTokens[s]; j++) t[k++] = req.pageIds[s] * P + j;
      reqTokens[r] = t;
    }
    return t;
  };

  const covered: (Uint8Array | undefined)[] = new Array(nq);
  const slotOwner = new Int32Array(plan.numPartials).fill(-1);
  if (plan.itemSegBegin[0] !== 0 && ni > 0) fail('bad-plan', 'plan.itemSegBegin[0] must be 0');
  if (plan.itemQueryBegin[0] !== 0) fail('bad-plan', 'plan.itemQueryBegin[0] must be 0');
  if (plan.itemQueryBegin[ni] !== plan.itemQueries.length) fail('bad-plan', 'plan.itemQueryBegin must end at itemQueries.length');

  const itemSlots = new Int32Array(2048);
  for (let i = 0; i < ni; i++) {
    const where = `work item ${i}`;
    const tile = plan.itemTile[i];
    if (tile < 0 || tile >= plan.tiles.length) fail('bad-plan', `${where}: tile id ${tile} outside plan.tiles [0, ${plan.tiles.length})`);
    const sb = plan.itemSegBegin[i];
    const se = plan.itemSegBegin[i + 1];
    if (se < sb || se > nseg) fail('bad-plan', `${where}: segment range [${sb}, ${se}) invalid (there are ${nseg})`);
    // Flatten this item's tokens to global slot ids.
    let T = 0;
    for (let s = sb; s < se; s++) {
      const page = plan.segPage[s];
      const slot = plan.segSlot[s];
      const tok = plan.segTokens[s];
      if (page < 0 || page >= batch.numPages) fail('page-out-of-range', `${where}, segment ${s}: page id ${page} out of range [0, ${batch.numPages})`);
      if (tok < 1 || slot < 0 || slot + tok > P) fail('bad-plan', `${where}, segment ${s}: slots [${slot}, ${slot + tok}) outside a page of ${P}`);
      T += tok;
    }
    const ids = T <= itemSlots.length ? itemSlots : new Int32Array(T);
    let k = 0;
    for (let s = sb; s < se; s++) for (let j = 0; j < plan.segTokens[s]; j++) ids[k++] = plan.segPage[s] * P + plan.segSlot[s] + j;
    const pos0 = plan.itemPos[i];
    if (pos0 < 0) fail('bad-plan', `${where}: itemPos ${pos0} is negative`);

    const qb = plan.itemQueryBegin[i];
    const qe = plan.itemQueryBegin[i + 1];
    if (qe < qb) fail('bad-plan', `${where}: query range [${qb}, ${qe}) invalid`);
    const base = plan.itemPartialBase[i];
    if (base < 0 || base + (qe - qb) > plan.numPartials) {
      fail('bad-plan', `${where}: partial slots [${base}, ${base + qe - qb}) outside [0, ${plan.numPartials})`);
    }
    for (let x = qb; x < qe; x++) {
      const q = plan.itemQueries[x];
      if (q < 0 || q >= nq) fail('bad-plan', `${where}: query id ${q} out of range [0, ${nq})`);
      const slot = base + (x - qb);
      if (slotOwner[slot] !== -1) fail('bad-plan', `${where}: partial slot ${slot} is written twice (also for query ${slotOwner[slot]})`);
      slotOwner[slot] = q;
      const r = qr[q];
      const rt = tokensOf(r);
      let cov = covered[q];
      if (!cov) cov = covered[q] = new Uint8Array(lim[q]);
      for (let t = 0; t < T; t++) {
        const p = pos0 + t;
        if (p >= lim[q]) {
          if (p >= rt.length) fail('bad-plan', `${where}: position ${p} is past the ${rt.length} KV tokens of request ${r} (query ${q})`);
          continue; // masked for this query
        }
        if (rt[p] !== ids[t]) {
          fail('bad-plan', `${where}: token ${t} (position ${p}) is page ${Math.floor(ids[t] / P)} slot ${ids[t] % P}, but query ${q} (request ${r}) has page ${Math.floor(rt[p] / P)} slot ${rt[p] % P} there`);
        }
        if (cov[p]) fail('bad-plan', `${where}: query ${q} sees position ${p} a second time`);
        cov[p] = 1;
      }
    }
  }
  for (let q = 0; q < nq; q++) {
    const cov = covered[q];
    for (let p = 0; p < lim[q]; p++) {
      if (!cov || !cov[p]) fail('bad-plan', `query ${q} (request ${qr[q]}): KV position ${p} is covered by no work item`);
    }
  }
  // Merge lists: exactly the slots written for each query.
  if (plan.mergeBegin[0] !== 0 || plan.mergeBegin[nq] !== plan.mergeSlots.length) fail('bad-plan', 'plan.mergeBegin must run from 0 to mergeSlots.length');
  const listed = new Uint8Array(plan.numPartials);
  for (let q = 0; q < nq; q++) {
    for (let x = plan.mergeBegin[q]; x < plan.mergeBegin[q + 1]; x++) {
      const s = plan.mergeSlots[x];
      if (s < 0 || s >= plan.numPartials) fail('bad-plan', `merge list of query ${q}: slot ${s} out of range [0, ${plan.numPartials})`);
      if (slotOwner[s] !== q) fail('bad-plan', `merge list of query ${q}: slot ${s} holds a partial of query ${slotOwner[s]}`);
      if (listed[s]) fail('bad-plan', `merge list of query ${q}: slot ${s} listed twice`);
      listed[s] = 1;
    }
  }
  for (let s = 0; s < plan.numPartials; s++) {
    if (slotOwner[s] !== -1 && !listed[s]) fail('bad-plan', `partial slot ${s} (query ${slotOwner[s]}) is in no merge list`);
  }
  if (plan.itemNode && plan.itemNode.length !== ni) fail('bad-plan', `plan.itemNode has length ${plan.itemNode.length}, expected ${ni}`);
}

/** Plain-JSON form of a plan (typed arrays become number arrays). */
export interface PlanJSON {
  version: number;
  planner: string;
  numQueries: number;
  numItems: number;
  numPartials: number;
  tiles: TileShape[];
  config: AttentionConfig;
  [field: string]: unknown;
}

export function planToJSON(plan: Plan): PlanJSON {
  const json: PlanJSON = {
    version: plan.version,
    planner: plan.planner,
    numQueries: plan.numQueries,
    numItems: plan.numItems,
    numPartials: plan.numPartials,
    tiles: plan.tiles.map((t) => ({ rows: t.rows, kvBlock: t.kvBlock })),
    config: { ...plan.config },
  };
  for (const f of INT_FIELDS) json[f] = Array.from(plan[f]);
  if (plan.itemNode) json.itemNode = Array.from(plan.itemNode);
  return json;
}

export function planFromJSON(json: PlanJSON | string): Plan {
  const j = (typeof json === 'string' ? JSON.parse(json) : json) as PlanJSON;
  if (j.version !== CONTRACT_VERSION) fail('bad-plan', `plan JSON version ${j.version} ≠ contract version ${CONTRACT_VERSION}`);
  const ints = {} as Record<(typeof INT_FIELDS)[number], Int32Array>;
  for (const f of INT_FIELDS) {
    const a = j[f];
    if (!Array.isArray(a) || !a.every((x) => Number.isInteger(x))) fail('bad-plan', `plan JSON field ${f} must be an array of integers`);
    ints[f] = Int32Array.from(a as number[]);
  }
  for (const f of ['numQueries', 'numItems', 'numPartials'] as const) {
    if (!Number.isInteger(j[f]) || (j[f] as number) < 0) fail('bad-plan', `plan JSON field ${f} must be a non-negative integer`);
  }
  const plan: Plan = {
    version: CONTRACT_VERSION,
    planner: String(j.planner),
    numQueries: j.numQueries,
    numItems: j.numItems,
    numPartials: j.numPartials,
    tiles: j.tiles.map((t) => ({ rows: t.rows, kvBlock: t.kvBlock })),
    config: { ...j.config },
    ...ints,
  };
  if (Array.isArray(j.itemNode)) plan.itemNode = Int32Array.from(j.itemNode as number[]);
  return plan;
}
