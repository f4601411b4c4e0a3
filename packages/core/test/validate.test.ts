import { describe, expect, it } from 'vitest';
import {
  CanopyError,
  planFromJSON,
  planToJSON,
  randomKvCache,
  randomQueries,
  validateBatch,
  validateKvCache,
  validatePlan,
  validateQueries,
  type AttentionConfig,
  type Plan,
} from '../src/index.js';
import { chunkedPlan, simpleBatch } from './helpers.js';

const cfg: AttentionConfig = { numQoHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f32' };

function clone(plan: Plan): Plan {
  return planFromJSON(JSON.parse(JSON.stringify(planToJSON(plan))));
}

function expectCanopyError(fn: () => void, pattern: RegExp) {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CanopyError);
  expect((err as Error).message).toMatch(pattern);
}

describe('validateBatch', () => {
  it('accepts a good batch', () => {
    expect(() => validateBatch(simpleBatch(cfg, [3, 9], 4))).not.toThrow();
  });
  it('names out-of-range pages, overlong segments, bad GQA and bad query counts', () => {
    const b = simpleBatch(cfg, [3, 9], 4);
    b.requests[1].pageIds[2] = 99;
    expectCanopyError(() => validateBatch(b), /request 1 segment 2: page id 99 out of range \[0, 4\)/);
    const b2 = simpleBatch(cfg, [3, 9], 4);
    b2.requests[0].pageTokens[0] = 5;
    expectCanopyError(() => validateBatch(b2), /request 0 segment 0: uses 5 tokens of page 0; must be 1..pageSize \(4\)/);
    expectCanopyError(() => validateBatch(simpleBatch({ ...cfg, numQoHeads: 5 }, [3], 4)), /numQoHeads \(5\) must be a multiple of config.numKvHeads \(2\)/);
    expectCanopyError(() => validateBatch(simpleBatch(cfg, [3], 4, [4])), /numQueries 4 must be 1..its KV tokens \(3\)/);
  });
  it('checks explicit trees: cycles, missing nodes, paths that differ from page lists', () => {
    const b = simpleBatch(cfg, [4, 4], 4);
    // two requests sharing node 0 (page 0) with own leaves on pages 1 and 2
    b.numPages = 3;
    b.requests[0].pageIds = Int32Array.from([0, 1]);
    b.requests[0].pageTokens = Int32Array.from([4, 2]);
    b.requests[1].pageIds = Int32Array.from([0, 2]);
    b.requests[1].pageTokens = Int32Array.from([4, 3]);
    b.tree = {
      parent: Int32Array.from([-1, 0, 0]),
      segBegin: Int32Array.from([0, 1, 2, 3]),
      segPage: Int32Array.from([0, 1, 2]),
      segTokens: Int32Array.from([4, 2, 3]),
      requestLeaf: Int32Array.from([1, 2]),
    };
    expect(() => validateBatch(b)).not.toThrow();
    b.tree.requestLeaf[1] = 7;
    expectCanopyError(() => validateBatch(b), /request 1 names missing tree node 7/);
    b.tree.requestLeaf[1] = 1;
    expectCanopyError(() => validateBatch(b), /request 1: page segment 1 differs from its tree path/);
    b.tree.requestLeaf[1] = 2;
    b.tree.parent = Int32Array.from([2, 0, 1]);
    expectCanopyError(() => validateBatch(b), /cycle/);
  });
});

describe('validateKvCache and validateQueries', () => {
  it('names shape mismatches and non-finite values', () => {
    const b = simpleBatch(cfg, [5], 4);
    const cache = randomKvCache(b.numPages, 4, cfg, 1);
    expect(() => validateKvCache(cache, b)).not.toThrow();
    (cache.k as Float32Array)[17] = Number.NaN;
    expectCanopyError(() => validateKvCache(cache, b), /KV cache k has NaN at element 17 \(page 0, slot 1, head 0, dim 1\)/);
    const short = { ...randomKvCache(b.numPages, 4, cfg, 1), k: new Float32Array(3) };
    expectCanopyError(() => validateKvCache(short, b), /KV cache k has 3 elements, expected/);
    const c16 = randomKvCache(b.numPages, 4, { ...cfg, kvDtype: 'f16' }, 1);
    (c16.v as Uint16Array)[0] = 0x7e00;
    expectCanopyError(() => validateKvCache(c16), /KV cache v has a NaN\/Inf f16 at element 0/);
    const q = randomQueries(1, cfg, 1);
    expect(() => validateQueries(q, b)).not.toThrow();
    q[9] = Number.POSITIVE_INFINITY;
    expectCanopyError(() => validateQueries(q, b), /query 0 head 1 dim 1 is Infinity/);
    expectCanopyError(() => validateQueries(new Float32Array(5), b), /queries have 5 values, expected \[1 queries, 4 heads, 8\]/);
  });
});

describe('validatePlan', () => {
  const batch = simpleBatch(cfg, [5, 9, 1], 4, [1, 3, 1]);
  const good = chunkedPlan(batch, 3);

  it('accepts a correct plan and survives a JSON round trip', () => {
    expect(() => validatePlan(good, batch)).not.toThrow();
    const back = clone(good);
    expect(back).toEqual(good);
    expect(() => validatePlan(back, batch)).not.toThrow();
  });

  it('finds a token covered twice', () => {
    const p = clone(good);
    p.itemPos[1] = 2; // item 1 now claims positions 2..4, overlapping item 0
    expectCanopyError(() => validatePlan(p, batch), /work item 1: .*position 2/);
  });

  it('finds a token covered by nothing', () => {
    const p = clone(good);
    p.segTokens[0] = 2; // item 0 reads one token less
    expectCanopyError(() => validatePlan(p, batch), /query 0 \(request 0\): KV position 2 is covered by no work item/);
  });

  it('finds out-of-range pages, tiles, queries and slots', () => {
    let p = clone(good);
    p.segPage[0] = 50;
    expectCanopyError(() => validatePlan(p, batch), /work item 0, segment 0: page id 50 out of range/);
    p = clone(good);
    p.itemTile[2] = 3;
    expectCanopyError(() => validatePlan(p, batch), /work item 2: tile id 3 outside plan.tiles/);
    p = clone(good);
    p.itemQueries[0] = 42;
    expectCanopyError(() => validatePlan(p, batch), /work item 0: query id 42 out of range/);
    p = clone(good);
    p.itemPartialBase[1] = 0;
    expectCanopyError(() => validatePlan(p, batch), /partial slot 0 is written twice/);
  });

  it('finds wrong tokens, wrong merge lists and wrong causal limits', () => {
    let p = clone(good);
    p.segSlot[0] = 1; // right page, shifted slots
    expectCanopyError(() => validatePlan(p, batch), /work item 0: token 0 \(position 0\) is page 0 slot 1, but query 0 \(request 0\) has page 0 slot 0 there/);
    p = clone(good);
    p.mergeSlots[0] = p.mergeSlots[p.mergeSlots.length - 1];
    expectCanopyError(() => validatePlan(p, batch), /merge list of query 0: slot \d+ holds a partial of query 4/);
    p = clone(good);
    p.queryKvLimit[1] = 9;
    expectCanopyError(() => validatePlan(p, batch), /plan.queryKvLimit\[1\] = 9, the batch's causal limit is 7/);
    p = clone(good);
    p.config = { ...p.config, headDim: 16 };
    expectCanopyError(() => validatePlan(p, batch), /plan.config .* differs from the batch's config/);
  });
});
