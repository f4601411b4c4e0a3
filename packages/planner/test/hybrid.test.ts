import { describe, expect, it } from 'vitest';
import { planToJSON, validatePlan, type Batch, type Plan } from '@canopy/core';
import { planErrorVsReference } from './gen.js';
import { createPlannerState, nextDecodeBatch, prefixPlanner, stepPlanner } from '../src/index.js';
import { H100_CAPS, treeBatch, W_CONFIG } from './workloads.js';

// H2's shape, scaled down: a shared root under decodes and prefill chunks (own leaves).
function h2Like(explicit: boolean): Batch {
  const parent = [-1];
  const tokens = [1024];
  const requestNode: number[] = [];
  const ownTokens: number[] = [];
  const numQueries: number[] = [];
  for (let i = 0; i < 2; i++) requestNode.push(0), ownTokens.push(96), numQueries.push(96);
  for (let i = 0; i < 24; i++) requestNode.push(0), ownTokens.push(32), numQueries.push(1);
  return treeBatch({ parent, tokens, requestNode, ownTokens, numQueries, explicit, config: { ...W_CONFIG, numQoHeads: 8, numKvHeads: 2, headDim: 64 } });
}

function itemsMixKinds(plan: Plan, batch: Batch): number {
  let mixed = 0;
  for (let i = 0; i < plan.numItems; i++) {
    let pre = false;
    let dec = false;
    for (let z = plan.itemQueryBegin[i]; z < plan.itemQueryBegin[i + 1]; z++) {
      if (batch.requests[plan.queryRequest[plan.itemQueries[z]]].numQueries > 1) pre = true;
      else dec = true;
    }
    if (pre && dec) mixed++;
  }
  return mixed;
}

describe("hybridLayout: 'separate'", () => {
  for (const explicit of [false, true]) {
    it(`plans prefill and decode queries in separate items, matching the reference (${explicit ? 'explicit tree' : 'page lists'})`, async () => {
      const batch = h2Like(explicit);
      const packed = prefixPlanner(batch, H100_CAPS, { hybridLayout: 'packed' });
      const separate = prefixPlanner(batch, H100_CAPS, { hybridLayout: 'separate' });
      validatePlan(packed, batch);
      validatePlan(separate, batch);
      // 'separate' is the default
      expect(planToJSON(prefixPlanner(batch, H100_CAPS))).toEqual(planToJSON(separate));
      // the packed plan mixes the two kinds on the shared root; the separate one never does
      expect(itemsMixKinds(packed, batch)).toBeGreaterThan(0);
      expect(itemsMixKinds(separate, batch)).toBe(0);
      expect(await planErrorVsReference(batch, separate, 5)).toBeLessThan(2e-4);
    });
  }

  it('decode-only batches are planned exactly as with the packed layout', () => {
    const b = h2Like(false);
    const dec: Batch = { ...b, requests: b.requests.filter((r) => r.numQueries === 1) };
    const a = prefixPlanner(dec, H100_CAPS, { hybridLayout: 'packed' });
    const s = prefixPlanner(dec, H100_CAPS, { hybridLayout: 'separate' });
    expect(Array.from(s.itemQueries)).toEqual(Array.from(a.itemQueries));
    expect(Array.from(s.segPage)).toEqual(Array.from(a.segPage));
  });

  it('steps equal fresh builds while the batch is hybrid and after the prefills finish', async () => {
    const opts = { hybridLayout: 'separate' as const };
    let b = h2Like(false);
    const st = createPlannerState(b, H100_CAPS, opts);
    const same = (got: Plan, want: Plan) => {
      expect(Array.from(got.itemQueries)).toEqual(Array.from(want.itemQueries));
      expect(Array.from(got.segTokens)).toEqual(Array.from(want.segTokens));
      expect(Array.from(got.mergeSlots)).toEqual(Array.from(want.mergeSlots));
    };
    for (let s = 0; s < 3; s++) {
      b = nextDecodeBatch(b);
      same(stepPlanner(st, b), prefixPlanner(b, H100_CAPS, opts));
    }
    // the two prefill requests finish: decode-only from here (incremental path again)
    const finished = [0, 1];
    b = nextDecodeBatch({ ...b, requests: b.requests.slice(2) });
    const got = stepPlanner(st, b, { finished, joined: 0 });
    same(got, prefixPlanner(b, H100_CAPS, opts));
    expect(await planErrorVsReference(b, got, 9)).toBeLessThan(2e-4);
    for (let s = 0; s < 3; s++) {
      b = nextDecodeBatch(b);
      same(stepPlanner(st, b), prefixPlanner(b, H100_CAPS));
    }
  });
});
