import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planToJSON, validatePlan, type Batch } from '@canopy/core';
import { createPlannerState, nextDecodeStep, prefixPlanner, stepPlanner } from '../src/index.js';
import { arbCaps, arbConfig, arbOpts, arbShape, shapeBatch } from './gen.js';
import { H100_CAPS, workload } from './workloads.js';

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
