import { CONTRACT_VERSION, queryKvLimits, queryRequestMap, requestQueryOffsets, type Batch, type BackendCapabilities, type Plan } from '@canopy/core';

/**
 * A plain planner for tests that needs nothing but core: each request's KV split into chunks of
 * `chunk` tokens (one work item per chunk, all of the request's queries), merged per query. It
 * exercises splitting, merging and causal masking; sharing is the real planners' business.
 */
export function chunkedPlanner(chunk: number) {
  return (batch: Batch, caps: BackendCapabilities): Plan => {
    const qr = queryRequestMap(batch);
    const lim = queryKvLimits(batch);
    const qoff = requestQueryOffsets(batch);
    const nq = qr.length;
    const itemPos: number[] = [];
    const itemSegBegin: number[] = [0];
    const itemQueryBegin: number[] = [0];
    const itemQueries: number[] = [];
    const itemPartialBase: number[] = [];
    const segPage: number[] = [];
    const segSlot: number[] = [];
    const segTokens: number[] = [];
    const slotsOf: number[][] = Array.from({ length: nq }, () => []);
    let numPartials = 0;
    batch.requests.forEach((req, r) => {
      // flatten the request's tokens into (page, slot) runs, then cut every `chunk` tokens
      let pos = 0;
      let itemStart = 0;
      const flush = (end: number) => {
        if (end === itemStart) return;
        itemPos.push(itemStart);
        itemSegBegin.push(segPage.length);
        itemPartialBase.push(numPartials);
        for (let q = qoff[r]; q < qoff[r + 1]; q++) {
          itemQueries.push(q);
          slotsOf[q].push(numPartials++);
        }
        itemQueryBegin.push(itemQueries.length);
        itemStart = end;
      };
      for (let s = 0; s < req.pageIds.length; s++) {
        let slot = 0;
        let left = req.pageTokens[s];
        while (left > 0) {
          const room = itemStart + chunk - pos;
          const n = Math.min(left, room);
          segPage.push(req.pageIds[s]);
          segSlot.push(slot);
          segTokens.push(n);
          slot += n;
          left -= n;
          pos += n;
          if (pos - itemStart === chunk) flush(pos);
        }
      }
      flush(pos);
    });
    const mergeBegin = [0];
    const mergeSlots: number[] = [];
    for (let q = 0; q < nq; q++) {
      mergeSlots.push(...slotsOf[q]);
      mergeBegin.push(mergeSlots.length);
    }
    const numItems = itemPos.length;
    return {
      version: CONTRACT_VERSION,
      planner: `chunked${chunk}`,
      config: batch.config,
      numQueries: nq,
      queryRequest: qr,
      queryKvLimit: lim,
      tiles: [caps.tileMenu[0]],
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
      numPartials,
      mergeBegin: Int32Array.from(mergeBegin),
      mergeSlots: Int32Array.from(mergeSlots),
    };
  };
}
