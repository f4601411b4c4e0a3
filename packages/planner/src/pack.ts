import { CONTRACT_VERSION, type AttentionConfig, type Plan, type TileShape } from '@canopy/core';

/** Plan fields, each as (source array, length to copy). */
export interface PlanParts {
  planner: string;
  config: AttentionConfig;
  tiles: TileShape[];
  numQueries: number;
  numItems: number;
  numPartials: number;
  queryRequest: Int32Array;
  queryKvLimit: Int32Array;
  itemTile: Int32Array;
  itemPos: Int32Array;
  itemSegBegin: Int32Array;
  itemQueryBegin: Int32Array;
  itemQueries: Int32Array;
  itemPartialBase: Int32Array;
  itemNode?: Int32Array;
  numSegs: number;
  segPage: Int32Array;
  segSlot: Int32Array;
  segTokens: Int32Array;
  mergeBegin: Int32Array;
  mergeSlots: Int32Array;
}

/**
 * Copy the parts into one fresh ArrayBuffer and return the plan whose arrays are views into it
 * (one allocation per plan instead of fifteen; each view has its own byteOffset and length).
 */
export function packPlan(x: PlanParts): Plan {
  const NQ = x.numQueries;
  const ni = x.numItems;
  const nqi = x.itemQueryBegin[ni];
  const ns = x.numSegs;
  const lens = [NQ, NQ, ni, ni, ni + 1, ni + 1, nqi, ni, x.itemNode ? ni : 0, ns, ns, ns, NQ + 1, nqi];
  let total = 0;
  for (const l of lens) total += l;
  const buf = new Int32Array(total);
  let off = 0;
  const take = (src: Int32Array | undefined, n: number): Int32Array => {
    const v = buf.subarray(off, off + n);
    if (src && n > 0) v.set(n === src.length ? src : src.subarray(0, n));
    off += n;
    return v;
  };
  const plan: Plan = {
    version: CONTRACT_VERSION,
    planner: x.planner,
    config: { ...x.config },
    numQueries: NQ,
    queryRequest: take(x.queryRequest, NQ),
    queryKvLimit: take(x.queryKvLimit, NQ),
    tiles: x.tiles.map((t) => ({ rows: t.rows, kvBlock: t.kvBlock })),
    numItems: ni,
    itemTile: take(x.itemTile, ni),
    itemPos: take(x.itemPos, ni),
    itemSegBegin: take(x.itemSegBegin, ni + 1),
    itemQueryBegin: take(x.itemQueryBegin, ni + 1),
    itemQueries: take(x.itemQueries, nqi),
    itemPartialBase: take(x.itemPartialBase, ni),
    segPage: new Int32Array(0),
    segSlot: new Int32Array(0),
    segTokens: new Int32Array(0),
    numPartials: x.numPartials,
    mergeBegin: new Int32Array(0),
    mergeSlots: new Int32Array(0),
  };
  if (x.itemNode) plan.itemNode = take(x.itemNode, ni);
  plan.segPage = take(x.segPage, ns);
  plan.segSlot = take(x.segSlot, ns);
  plan.segTokens = take(x.segTokens, ns);
  plan.mergeBegin = take(x.mergeBegin, NQ + 1);
  plan.mergeSlots = take(x.mergeSlots, nqi);
  return plan;
}
