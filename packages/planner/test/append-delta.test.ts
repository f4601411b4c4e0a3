import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planToJSON, validatePlan, type Batch } from '@canopy/core';
import { createPlannerState, nextDecodeStep, prefixPlanner, stepPlanner } from '../src/index.js';
import { arbCaps, arbConfig, arbOpts, arbShape, planErrorVsReference, shapeBatch } from './gen.js';
import { H100_CAPS, treeBatch, workload } from './workloads.js';

/** Decode-only version of a random batch (the append account describes decode steps). */
function decodeOnly(b: Batch): Batch {
  return { ...b, requests: b.requests.map((r) => ({ ...r, numQueries: 1 })) };
}

describe("stepPlanner with the caller's append account (delta.appended)", () => {
  it('gives exactly the plans of fresh builds (random trees, page sizes, options)', () => {
    let patched = 0;
    fc.assert(
      fc.property(arbShape({ maxNodes: 8, maxTok: 40, maxReq: 8 }), arbConfig, arbCaps, arbOpts, fc.constantFrom(1, 4, 16), (shape, config, caps, opts, pageSize) => {
        let batch = decodeOnly(shapeBatch(shape, config, pageSize, false));
        const state = createPlannerState(batch, caps, opts);
        for (let t = 0; t < 12; t++) {
          const { batch: next, appended } = nextDecodeStep(batch);
          const plan = stepPlanner(state, next, { appended });
          validatePlan(plan, next);
          expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(next, caps, opts)));
          batch = next;
        }
        patched += state.patched;
      }),
      { numRuns: 120 },
    );
    // most steps took the patch path the account feeds (not a fallback that reads the batch)
    expect(patched).toBeGreaterThan(500);
  });

  it('on W1–W5 sized batches, across page boundaries', () => {
    for (const id of ['W1', 'W3', 'W5'] as const) {
      let b = workload(id);
      const st = createPlannerState(b, H100_CAPS);
      for (let t = 0; t < 20; t++) {
        const { batch: next, appended } = nextDecodeStep(b);
        expect(planToJSON(stepPlanner(st, next, { appended }))).toEqual(planToJSON(prefixPlanner(next, H100_CAPS)));
        b = next;
      }
      expect(st.patched, id).toBeGreaterThan(15);
    }
  });

  it('rejects impossible accounts with an error naming the problem, leaving the state usable', () => {
    let b = workload('W1');
    const st = createPlannerState(b, H100_CAPS);
    // a few steps so that the state's two plan buffers are both in use
    for (let t = 0; t < 3; t++) {
      const s = nextDecodeStep(b);
      stepPlanner(st, s.batch, { appended: s.appended });
      b = s.batch;
    }
    const held = st.plan;
    const heldJson = planToJSON(held);
    const { batch: next, appended } = nextDecodeStep(b);
    const R = next.requests.length;
    const bad = (a: { newPageRequests: ArrayLike<number>; newPageIds: ArrayLike<number> }, msg: RegExp, extra: object = {}) =>
      expect(() => stepPlanner(st, next, { appended: a, ...extra })).toThrow(msg);
    bad({ newPageRequests: [R], newPageIds: [0] }, new RegExp(`newPageRequests\\[0\\] = ${R} is not a request of the batch`));
    bad({ newPageRequests: [0, 0], newPageIds: [1, 2] }, /lists request 0 twice/);
    bad({ newPageRequests: [0], newPageIds: [next.numPages] }, /newPageIds\[0\]: page id \d+ out of range/);
    bad({ newPageRequests: [0, 1], newPageIds: [1] }, /newPageRequests has 2 entries, newPageIds 1/);
    bad(appended, /no request may finish or join/, { finished: [0] });
    // the plan handed out before stays intact, and the step then goes through
    expect(planToJSON(held)).toEqual(heldJson);
    expect(planToJSON(stepPlanner(st, next, { appended }))).toEqual(planToJSON(prefixPlanner(next, H100_CAPS)));
    expect(planToJSON(held)).toEqual(heldJson);
  });

  it('a full last page with no new page listed is refused; validate checks the account against the batch', () => {
    // page size 4, every request's last page fills within a few steps
    let b = workload('W3');
    const st = createPlannerState(b, H100_CAPS, { validate: true });
    let sawFull = false;
    for (let t = 0; t < 20; t++) {
      const { batch: next, appended } = nextDecodeStep(b);
      if (appended.newPageRequests.length > 0 && !sawFull) {
        sawFull = true;
        // drop the new pages from the account: the planner's records say those pages are full
        expect(() => stepPlanner(st, next, { appended: { newPageRequests: [], newPageIds: [] } })).toThrow(/its last page is full \(16 tokens\) but appended lists no new page for it/);
      } else if (t === 1) {
        // an account that claims a new page the batch does not have: only validate can tell
        expect(() => stepPlanner(st, next, { appended: { newPageRequests: [5], newPageIds: [next.numPages - 1] } })).toThrow(/request 5: the batch does not match appended/);
      }
      expect(planToJSON(stepPlanner(st, next, { appended }))).toEqual(planToJSON(prefixPlanner(next, H100_CAPS)));
      b = next;
    }
    expect(sawFull).toBe(true);
  });
});

describe('the account path (one pass over the requests, split search from the last one)', () => {
  /** A batch whose request objects count reads of their fields (every field, by getters). */
  function counting(b: Batch): { batch: Batch; reads: () => number } {
    let n = 0;
    const requests = b.requests.map((r) => {
      const o = {} as Batch['requests'][number];
      for (const k of Object.keys(r) as (keyof typeof r)[]) {
        Object.defineProperty(o, k, {
          enumerable: true,
          get: () => {
            n++;
            return r[k];
          },
        });
      }
      return o;
    });
    return { batch: { ...b, requests }, reads: () => n };
  }

  it('long decode loops (leaves growing past the split threshold, wave slots on and off, per tile or not, steps with and without the account mixed) equal fresh builds; the previous plan stays intact', () => {
    let fast = 0;
    let leafOnly = 0;
    fc.assert(
      fc.property(
        arbShape({ maxNodes: 6, maxTok: 40, maxReq: 6, prefill: false }),
        arbConfig,
        arbCaps,
        fc.constantFrom(4, 16),
        fc.constantFrom(0, 3, 40),
        fc.constantFrom(8, 16, 128),
        fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
        fc.boolean(),
        (shape, config, caps0, pageSize, waveSlots, minChunkTokens, withAccount, tileWave) => {
          // tileWave: tiles of ≥ 16 rows hold half the slots (per-tile wave weights)
          const tileWaveSlots = tileWave ? [{ minRows: 16, waveSlots: Math.max(1, waveSlots >> 1) }] : undefined;
          const caps = waveSlots ? { ...caps0, planningHints: { waveSlots, ...(tileWaveSlots ? { tileWaveSlots } : {}) } } : caps0;
          const opts = { minChunkTokens };
          let batch = decodeOnly(shapeBatch(shape, config, pageSize, false));
          const state = createPlannerState(batch, caps, opts);
          let prevPlan = state.plan;
          let prevJson = planToJSON(prevPlan);
          for (let t = 0; t < 40; t++) {
            const { batch: next, appended } = nextDecodeStep(batch);
            const plan = stepPlanner(state, next, withAccount[t] ? { appended } : {});
            expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(next, caps, opts)));
            // recycled buffers: step t's plan survives step t + 1
            expect(planToJSON(prevPlan)).toEqual(prevJson);
            prevPlan = plan;
            prevJson = planToJSON(plan);
            batch = next;
          }
          fast += state.layout.accountSteps;
          leafOnly += state.layout.leafSearches;
        },
      ),
      { numRuns: 60 },
    );
    // most steps with the account took the account path, most of them with the split search
    // from the record alone (the full search there is covered by the reference-backend test)
    expect(fast).toBeGreaterThan(500);
    expect(leafOnly).toBeGreaterThan(300);
  });

  it('reads no request object of the batch (W1, 40 steps) and writes to no batch handed in', () => {
    let b = workload('W1');
    const st = createPlannerState(b, H100_CAPS);
    const first = b;
    const firstReqs = first.requests.slice();
    let total = 0;
    for (let t = 0; t < 40; t++) {
      const { batch, appended } = nextDecodeStep(b);
      const c = counting(batch);
      const before = st.layout.accountSteps;
      const plan = stepPlanner(st, c.batch, { appended });
      expect(st.layout.accountSteps).toBe(before + 1);
      if (plan.numItems > 0 && c.reads() === 0) total++;
      expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(batch, H100_CAPS)));
      b = batch;
    }
    // every step but those emitting in full (chunk counts changed) read nothing of the requests
    expect(total).toBeGreaterThan(35);
    // no batch handed in earlier was written to
    expect(first.requests).toEqual(firstReqs);
  });

  it('its plans run correctly on the reference backend (a small tree, 40 steps)', async () => {
    let b = treeBatch({ parent: [-1, 0, 0], tokens: [40, 9, 21], requestNode: [1, 1, 2, 0], ownTokens: [5, 17, 3, 30], pageSize: 4, config: { numQoHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f32' } });
    const caps = { ...H100_CAPS, kvDtypes: ['f32' as const], headDims: [8] };
    const opts = { minChunkTokens: 32, fuse: false };
    const st = createPlannerState(b, caps, opts);
    for (let t = 0; t < 40; t++) {
      const { batch, appended } = nextDecodeStep(b);
      const plan = stepPlanner(st, batch, { appended });
      if (t % 8 === 7) expect(await planErrorVsReference(batch, plan, t)).toBeLessThan(2e-4);
      b = batch;
    }
    expect(st.layout.accountSteps).toBeGreaterThan(25);
    // a leaf passes 2 · minChunkTokens within the loop (its split then makes the plan
    // unpatchable: general steps); until then the split search ran from the record
    expect(st.layout.leafSearches).toBeGreaterThan(20);
  });

  it('where the wave term needs the constant columns one by one, the split search runs in full (few wave slots)', () => {
    const caps = { ...H100_CAPS, planningHints: { waveSlots: 3 } };
    for (const account of [true, false]) {
      let b = treeBatch({ parent: [-1, 0, 0], tokens: [300, 90, 210], requestNode: [1, 1, 2, 0], ownTokens: [5, 17, 3, 30], pageSize: 4 });
      const st = createPlannerState(b, caps);
      for (let t = 0; t < 30; t++) {
        const { batch, appended } = nextDecodeStep(b);
        expect(planToJSON(stepPlanner(st, batch, account ? { appended } : {}))).toEqual(planToJSON(prefixPlanner(batch, caps)));
        b = batch;
      }
      expect(st.layout.fullSearches).toBeGreaterThan(5);
    }
  });

  it('leaves of many lengths (pages gained every step, tiles and splits per leaf) equal fresh builds', () => {
    // 64 requests under a 2-level tree, own lengths 1..700 tokens: every step some leaf starts a page
    const parent = [-1, 0, 0, 0, 0];
    const requestNode = Array.from({ length: 64 }, (_, i) => 1 + (i % 4));
    const ownTokens = requestNode.map((_, i) => 1 + ((i * 7919) % 700));
    for (const minChunkTokens of [128, 16]) {
      const opts = { minChunkTokens };
      let b = treeBatch({ parent, tokens: [1500, 300, 200, 100, 40], requestNode, ownTokens, pageSize: 16 });
      const st = createPlannerState(b, H100_CAPS, opts);
      for (let t = 0; t < 40; t++) {
        const { batch, appended } = nextDecodeStep(b);
        expect(planToJSON(stepPlanner(st, batch, t % 3 === 2 ? {} : { appended }))).toEqual(planToJSON(prefixPlanner(batch, H100_CAPS, opts)));
        b = batch;
      }
      expect(st.patched).toBeGreaterThan(30);
    }
  });

  it('single-page leaves (whose key changes as the page grows) go through the general step', () => {
    // requests forking at a page boundary: each leaf is one page of one token
    let b = treeBatch({ parent: [-1], tokens: [64], requestNode: [0, 0, 0, 0], ownTokens: 1, pageSize: 16 });
    const st = createPlannerState(b, H100_CAPS);
    for (let t = 0; t < 40; t++) {
      const { batch, appended } = nextDecodeStep(b);
      expect(planToJSON(stepPlanner(st, batch, { appended }))).toEqual(planToJSON(prefixPlanner(batch, H100_CAPS)));
      b = batch;
    }
    // once every leaf has a second page, the account path takes the steps again
    expect(st.layout.accountSteps).toBeGreaterThan(20);
  });
});

describe('the account path when leaves change a shared node’s split', () => {
  it('leaf growth that changes a shared node’s chunk count (found by search) gives the fresh build’s plan', () => {
    const cases = [
      { parent: [-1, 0], tokens: [2908, 1332], requestNode: [0, 0], ownTokens: [81, 97] },
      { parent: [-1, 0, 0], tokens: [1052, 1008, 1408], requestNode: [1, 0, 0, 0, 1, 1, 0, 1, 0, 0], ownTokens: [89, 65, 49, 25, 41, 97, 73, 57, 17, 73] },
      { parent: [-1, 0], tokens: [2340, 752], requestNode: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], ownTokens: [89, 9, 49, 9, 9, 25, 105, 97, 81, 25] },
      { parent: [-1], tokens: [2684], requestNode: [0, 0, 0, 0, 0, 0], ownTokens: [105, 105, 97, 41, 1, 33] },
    ];
    let changedK = 0;
    // with the account, and with the batch alone (the same split search from the record)
    for (const spec of cases.flatMap((c) => [{ ...c, account: true }, { ...c, account: false }])) {
      let b = treeBatch({ ...spec, pageSize: 16 });
      const st = createPlannerState(b, H100_CAPS);
      let items = st.plan.numItems;
      for (let t = 0; t < 60; t++) {
        const { batch, appended } = nextDecodeStep(b);
        const plan = stepPlanner(st, batch, spec.account ? { appended } : {});
        expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(batch, H100_CAPS)));
        if (plan.numItems !== items) changedK++;
        items = plan.numItems;
        b = batch;
      }
    }
    expect(changedK).toBeGreaterThan(6);
  });
});
