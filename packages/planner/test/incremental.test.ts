import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planToJSON, SeededRng, validatePlan, type Batch, type BatchRequest, type Plan } from '@canopy/core';
import { clonePlannerState, createPlannerState, nextDecodeBatch, prefixPlanner, stepPlanner } from '../src/index.js';
import { arbCaps, arbConfig, arbOpts, arbShape, shapeBatch } from './gen.js';
import { workload, H100_CAPS, bigTree, type WorkloadId } from './workloads.js';

/** `r` with `add` decode tokens appended: into its last page when it alone uses it and has room,
 * then into fresh pages numbered from `nextPage`. */
function appendTokens(r: BatchRequest, add: number, users: Map<number, number>, P: number, nextPage: number): { request: BatchRequest; nextPage: number } {
  const n = r.pageIds.length;
  const ids = Array.from(r.pageIds);
  const tks = Array.from(r.pageTokens);
  let left = add;
  if (users.get(ids[n - 1]) === 1 && tks[n - 1] < P) {
    const k = Math.min(left, P - tks[n - 1]);
    tks[n - 1] += k;
    left -= k;
  }
  while (left > 0) {
    const k = Math.min(left, P);
    ids.push(nextPage++);
    tks.push(k);
    left -= k;
  }
  return { request: { pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(tks), numQueries: 1 }, nextPage };
}

/**
 * One random decode step: some requests finish, survivors gain a token (in their last page when
 * they alone use it and it has room, else in a fresh page: copy-on-write), some join: forks of a
 * survivor (identical pages), requests sharing a prefix of a survivor, or fresh ones.
 */
function randomStep(prev: Batch, rng: SeededRng): { next: Batch; finished: number[]; joined: number } {
  const R = prev.requests.length;
  const finished: number[] = [];
  for (let r = 0; r < R; r++) if (rng.nextFloat() < 0.15) finished.push(r);
  const fin = new Set(finished);
  const surv = prev.requests.filter((_, r) => !fin.has(r));
  const users = new Map<number, number>();
  for (const r of surv) for (let i = 0; i < r.pageIds.length; i++) users.set(r.pageIds[i], (users.get(r.pageIds[i]) ?? 0) + 1);
  let nextPage = prev.numPages;
  const P = prev.pageSize;
  const requests: BatchRequest[] = surv.map((r) => {
    const add = rng.nextFloat() < 0.1 ? 1 + (rng.nextU32() % (2 * P)) : 1; // sometimes several tokens
    const grown = appendTokens(r, add, users, P, nextPage);
    nextPage = grown.nextPage;
    return grown.request;
  });
  let joined = 0;
  const nj = requests.length === 0 ? 1 + (rng.nextU32() % 3) : rng.nextU32() % 3;
  for (let j = 0; j < nj; j++) {
    const kind = requests.length === 0 ? 2 : rng.nextU32() % 3;
    let ids: number[] = [];
    let tks: number[] = [];
    if (kind < 2) {
      const src = requests[rng.nextU32() % requests.length];
      const m = kind === 0 ? src.pageIds.length : 1 + (rng.nextU32() % src.pageIds.length);
      ids = Array.from(src.pageIds.subarray(0, m));
      tks = Array.from(src.pageTokens.subarray(0, m));
    }
    if (kind > 0) {
      const own = 1 + (rng.nextU32() % (3 * P));
      for (let left = own; left > 0; left -= P) {
        ids.push(nextPage++);
        tks.push(Math.min(P, left));
      }
    }
    const L = tks.reduce((a, b) => a + b, 0);
    requests.push({ pageIds: Int32Array.from(ids), pageTokens: Int32Array.from(tks), numQueries: Math.min(L, 1 + (rng.nextU32() % 3)) });
    joined++;
  }
  return { next: { config: prev.config, numPages: nextPage, pageSize: P, requests }, finished, joined };
}

/** Every request gains 1..2·pageSize tokens (in its last page when it alone uses it, else in fresh pages); nobody joins or leaves. */
function appendStep(prev: Batch, rng: SeededRng): Batch {
  const users = new Map<number, number>();
  for (const r of prev.requests) for (let i = 0; i < r.pageIds.length; i++) users.set(r.pageIds[i], (users.get(r.pageIds[i]) ?? 0) + 1);
  let nextPage = prev.numPages;
  const P = prev.pageSize;
  const requests: BatchRequest[] = prev.requests.map((r) => {
    const grown = appendTokens(r, rng.nextFloat() < 0.7 ? 1 : 1 + (rng.nextU32() % (2 * P)), users, P, nextPage);
    nextPage = grown.nextPage;
    return grown.request;
  });
  return { config: prev.config, numPages: nextPage, pageSize: P, requests };
}

let patchedTotal = 0;
let stepsTotal = 0;

describe('incremental planning', () => {
  it('a sequence of steps gives exactly the plans of fresh builds (random trees, finishes, joins, forks)', () => {
    fc.assert(
      fc.property(
        arbShape({ maxNodes: 8, maxTok: 40, maxReq: 8 }),
        arbConfig,
        arbCaps,
        arbOpts,
        fc.constantFrom(1, 4, 16),
        fc.integer({ min: 1, max: 2 ** 30 }),
        (shape, config, caps, opts, pageSize, seed) => {
          let batch = shapeBatch(shape, config, pageSize, false);
          const state = createPlannerState(batch, caps, opts);
          const rng = new SeededRng(seed);
          for (let t = 0; t < 10; t++) {
            const { next, finished, joined } = randomStep(batch, rng);
            const plan = stepPlanner(state, next, { finished, joined });
            validatePlan(plan, next);
            expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(next, caps, opts)));
            batch = next;
          }
          // (hybrid batches under the 'separate' layout are rebuilt by design)
          if (opts.hybridLayout === 'packed') expect(state.rebuilds).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('decode steps on W1–W5 and the 1024-request tree equal fresh builds', () => {
    for (const b0 of [...(['W1', 'W2', 'W3', 'W4', 'W5'] as WorkloadId[]).map((id) => workload(id)), bigTree()]) {
      let batch = b0;
      const state = createPlannerState(batch, H100_CAPS);
      for (let t = 0; t < 5; t++) {
        const next = nextDecodeBatch(batch);
        const plan = stepPlanner(state, next);
        expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(next, H100_CAPS)));
        batch = next;
      }
      validatePlan(state.plan, batch);
      expect(state.steps).toBe(5);
    }
  });

  it('append-only steps (random trees, one query per request, several tokens, page fills) patch the previous plan and equal fresh builds', () => {
    fc.assert(
      fc.property(
        arbShape({ maxNodes: 10, maxTok: 300, maxReq: 10, prefill: false }),
        arbConfig,
        arbCaps,
        arbOpts,
        fc.constantFrom(1, 4, 16),
        fc.integer({ min: 1, max: 2 ** 30 }),
        (shape, config, caps, opts, pageSize, seed) => {
          let batch = shapeBatch(shape, config, pageSize, false);
          const state = createPlannerState(batch, caps, opts);
          const rng = new SeededRng(seed);
          const held: Array<{ plan: Plan; json: unknown }> = [];
          for (let t = 0; t < 10; t++) {
            const next = appendStep(batch, rng);
            const plan = stepPlanner(state, next);
            validatePlan(plan, next);
            const json = planToJSON(plan);
            expect(json).toEqual(planToJSON(prefixPlanner(next, caps, opts)));
            // double buffering: the previous step's plan is still intact
            if (held.length) expect(planToJSON(held[held.length - 1].plan)).toEqual(held[held.length - 1].json);
            held.push({ plan, json });
            batch = next;
          }
          if (opts.hybridLayout === 'packed') expect(state.rebuilds).toBe(0);
          patchedTotal += state.patched;
          stepsTotal += state.steps;
        },
      ),
      { numRuns: 100 },
    );
    // many append-only steps take the patch path (about half here: small minChunkTokens in the
    // random options split leaves into several chunks, which a patch does not handle)
    expect(patchedTotal).toBeGreaterThan(stepsTotal * 0.3);
  });

  it('W1–W5 and the 1024-request tree: decode steps patch the plan; recyclePlans: false keeps every plan', () => {
    for (const b0 of [...(['W1', 'W2', 'W3', 'W4', 'W5'] as WorkloadId[]).map((id) => workload(id)), bigTree()]) {
      let batch = b0;
      const state = createPlannerState(batch, H100_CAPS);
      const keep = createPlannerState(batch, H100_CAPS, { recyclePlans: false });
      const plans: Plan[] = [];
      for (let t = 0; t < 3; t++) {
        batch = nextDecodeBatch(batch);
        stepPlanner(state, batch);
        plans.push(stepPlanner(keep, batch));
      }
      expect(state.patched).toBe(3);
      expect(planToJSON(state.plan)).toEqual(planToJSON(prefixPlanner(batch, H100_CAPS)));
      // without recycling every returned plan stays as it was
      plans.forEach((p, i) => expect(p.queryKvLimit[0]).toBe(plans[0].queryKvLimit[0] + i));
      expect(planToJSON(plans[2])).toEqual(planToJSON(state.plan));
    }
  });

  it('copies of a state step on their own (the benchmark replays steps on copies) and equal fresh builds', () => {
    for (const b0 of [workload('W5'), workload('W3'), bigTree()]) {
      let batch = b0;
      const state = createPlannerState(batch, H100_CAPS);
      for (let t = 0; t < 3; t++) stepPlanner(state, (batch = nextDecodeBatch(batch)));
      const before = planToJSON(state.plan);
      const next = nextDecodeBatch(batch);
      const fresh = planToJSON(prefixPlanner(next, H100_CAPS));
      for (let k = 0; k < 3; k++) {
        const copy = clonePlannerState(state);
        expect(planToJSON(stepPlanner(copy, next))).toEqual(fresh);
        expect(planToJSON(stepPlanner(copy, nextDecodeBatch(next)))).toEqual(planToJSON(prefixPlanner(nextDecodeBatch(next), H100_CAPS)));
      }
      // the original's plan and buffers are untouched by its copies' steps
      expect(planToJSON(state.plan)).toEqual(before);
      expect(planToJSON(stepPlanner(state, next))).toEqual(fresh);
    }
  });

  it('stale contents of a recycled buffer never reach a plan (the next buffer filled with garbage before each step)', () => {
    fc.assert(
      fc.property(arbShape({ maxNodes: 8, maxTok: 60, maxReq: 8 }), arbConfig, arbCaps, arbOpts, fc.integer({ min: 1, max: 2 ** 30 }), (shape, config, caps, opts, seed) => {
        let batch = shapeBatch(shape, config, 4, false);
        const state = createPlannerState(batch, caps, opts);
        const rng = new SeededRng(seed);
        for (let t = 0; t < 6; t++) {
          const { next, finished, joined } = randomStep(batch, rng);
          // the buffer the step writes (the other one holds the current plan, which it reads)
          const b = state.planBuffers[state.nextBuffer];
          if (b) {
            b.data.fill(-123456);
            b.gen = -1; // nothing known about its contents
          }
          const plan = stepPlanner(state, next, { finished, joined });
          expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(next, caps, opts)));
          batch = next;
        }
      }),
      { numRuns: 60 },
    );
  });

  it('explicit trees fall back to a full build', () => {
    const b = workload('W2', true);
    const state = createPlannerState(b, H100_CAPS);
    const next = { ...workload('W2', true) };
    const plan = stepPlanner(state, next);
    expect(state.rebuilds).toBe(1);
    expect(planToJSON(plan)).toEqual(planToJSON(prefixPlanner(next, H100_CAPS)));
  });

  it('rejects a delta that does not match the batches', () => {
    const b = workload('W1');
    const state = createPlannerState(b, H100_CAPS);
    expect(() => stepPlanner(state, nextDecodeBatch(b), { finished: [64] })).toThrow(/finished request 64 is not a request/);
    expect(() => stepPlanner(state, nextDecodeBatch(b), { finished: [1], joined: 0 })).toThrow(/new batch has 64/);
  });
});
