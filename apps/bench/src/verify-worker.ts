/**
 * Worker for parallel verification: computes `referenceAttention` for a slice of the sampled
 * queries. Built as its own file next to the CLI (dist/verify-worker.js, bundle/verify-worker.mjs);
 * the KV pools arrive in SharedArrayBuffers, so no worker copies them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { referenceAttention, type Batch, type PagedKvCache } from '@canopy/core';

interface Job {
  batch: Batch;
  cache: PagedKvCache;
  queries: Float32Array;
  ids: Int32Array;
}

if (parentPort && workerData && (workerData as { canopyVerify?: boolean }).canopyVerify) {
  const { batch, cache, queries, ids } = (workerData as { job: Job }).job;
  const r = referenceAttention(batch, cache, queries, { queryIds: ids });
  parentPort.postMessage({ out: r.out, lse: r.lse }, [r.out.buffer as ArrayBuffer, r.lse.buffer as ArrayBuffer]);
}
