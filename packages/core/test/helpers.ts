import { CONTRACT_VERSION, queryKvLimits, queryRequestMap, type AttentionConfig, type Batch, type Plan } from '../src/index.js';

/** A batch of independent requests with the given token counts (own pages, last page partial). */
export function simpleBatch(config: AttentionConfig, tokens: number[], pageSize = 4, numQueries: number[] = []): Batch {
  let page = 0;
  const requests = tokens.map((L, r) => {
    const ids: number[] = [];
    const used: number[] = [];
    for (let left = L; left > 0; left -= pageSize) {
      ids.push(page++);
      used.push(Math.min(pageSize, left));
    }
    return { pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(used), numQueries: numQueries[r] ?? 1 };
  });
  return { config, numPages: page, pageSize, requests };
}

/**
 * Test-only plan builder, independent of @canopy/planner: each request's KV is cut into chunks of
 * `chunk` tokens (segment boundaries need not align with pages); one item per (request, chunk).
 */
export function chunkedPlan(batch: Batch, chunk: number): Plan {
  const qr = queryRequestMap(batch);
  const lim = queryKvLimits(batch);
  const segPage: number[] = [], segSlot: number[] = [], segTokens: number[] = [];
  const itemPos: number[] = [], itemSegBegin = [0], itemQueryBegin = [0], itemQueries: number[] = [], itemPartialBase: number[] = [];
  const perQuery: number[][] = Array.from(lim, () => []);
  let partial = 0;
  let qBase = 0;
  batch.requests.forEach((req) => {
    // token list
    const toks: Array<[number, number]> = [];
    req.pageIds.forEach((p, s) => {
      for (let j = 0; j < req.pageTokens[s]; j++) toks.push([p, j]);
    });
    for (let start = 0; start < toks.length; start += chunk) {
      const end = Math.min(toks.length, start + chunk);
      for (let t = start; t < end; ) {
        const [p, j] = toks[t];
        let n = 1;
        while (t + n < end && toks[t + n][0] === p && toks[t + n][1] === j + n) n++;
        segPage.push(p); segSlot.push(j); segTokens.push(n);
        t += n;
      }
      itemSegBegin.push(segPage.length);
      itemPos.push(start);
      itemPartialBase.push(partial);
      for (let k = 0; k < req.numQueries; k++) {
        const q = qBase + k;
        if (start >= lim[q]) continue; // fully masked: not part of this item
        itemQueries.push(q);
        perQuery[q].push(partial++);
      }
      itemQueryBegin.push(itemQueries.length);
    }
    qBase += req.numQueries;
  });
  const mergeBegin = [0];
  const mergeSlots: number[] = [];
  for (const list of perQuery) {
    mergeSlots.push(...list);
    mergeBegin.push(mergeSlots.length);
  }
  const numItems = itemPos.length;
  return {
    version: CONTRACT_VERSION,
    planner: 'test-chunked',
    config: batch.config,
    numQueries: lim.length,
    queryRequest: qr,
    queryKvLimit: lim,
    tiles: [{ rows: 16, kvBlock: 64 }],
    numItems,
    itemTile: new Int32Array(numItems),
    itemPos: Int32Array.from(itemPos),
    itemSegBegin: Int32Array.from(itemSegBegin),
    itemQueryBegin: Int32Array.from(itemQueryBegin),
    itemQueries: Int32Array.from(itemQueries),
    itemPartialBase: Int32Array.from(itemPartialBase),
    segPage: Int32Array.from(segPage),
    segSlot: Int32Array.from(segSlot),
    segTokens: Int32Array.from(segTokens),
    numPartials: partial,
    mergeBegin: Int32Array.from(mergeBegin),
    mergeSlots: Int32Array.from(mergeSlots),
  };
}
