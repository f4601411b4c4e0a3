import { CONTRACT_VERSION, ReferenceBackend, type AttentionBackend, type GroupTimingOptions, type Plan } from '@canopy/core';
import { perRequestPlanner, planners } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { checkTimeGroup, conformanceCases, runConformanceCase } from '../src/index.js';

/** A backend with a classic bug: it forgets the last partial of every query with several. */
class DropsLastPartial extends ReferenceBackend {
  override async run(plan: Plan, queries: Float32Array) {
    const mergeSlots: number[] = [];
    const mergeBegin = [0];
    for (let q = 0; q < plan.numQueries; q++) {
      const b = plan.mergeBegin[q];
      const e = plan.mergeBegin[q + 1];
      for (let k = b; k < (e - b > 1 ? e - 1 : e); k++) mergeSlots.push(plan.mergeSlots[k]);
      mergeBegin.push(mergeSlots.length);
    }
    return super.run({ ...plan, mergeBegin: Int32Array.from(mergeBegin), mergeSlots: Int32Array.from(mergeSlots) }, queries);
  }
}

/** Another classic: an off-by-one that skips the last KV token of every work item. */
class SkipsLastToken extends ReferenceBackend {
  override async run(plan: Plan, queries: Float32Array) {
    const segTokens = plan.segTokens.slice();
    for (let i = 0; i < plan.numItems; i++) {
      const last = plan.itemSegBegin[i + 1] - 1;
      if (last >= plan.itemSegBegin[i] && segTokens[last] > 1) segTokens[last]--;
    }
    return super.run({ ...plan, segTokens }, queries);
  }
}

/** timeGroup that loses the last iteration's time. */
class ShortTimeGroup extends ReferenceBackend {
  override async timeGroup(plans: Plan[], queries: Float32Array[], o: GroupTimingOptions) {
    const r = await super.timeGroup(plans, queries, o);
    return { ...r, timesUs: r.timesUs.subarray(0, Math.max(0, r.timesUs.length - 1)) };
  }
}

/** timeGroup that times only the plans it has queries for instead of refusing the call. */
class LaxTimeGroup extends ReferenceBackend {
  override async timeGroup(plans: Plan[], queries: Float32Array[], o: GroupTimingOptions) {
    const n = Math.min(plans.length, queries.length);
    if (n === 0) return { timesUs: new Float64Array(o.iters), clock: 'wall' as const };
    return super.timeGroup(plans.slice(0, n), queries.slice(0, n), o);
  }
}

describe('the suite catches wrong backends', () => {
  it('timeGroup: the reference passes; a short result and a lax one that accepts bad input fail', async () => {
    await checkTimeGroup(new ReferenceBackend(), planners.prefix);
    await expect(checkTimeGroup(new ShortTimeGroup(), planners.prefix)).rejects.toThrow(/one time per iteration/);
    await expect(checkTimeGroup(new LaxTimeGroup(), planners.perRequest)).rejects.toThrow(/timeGroup accepted no plans/);
  });

  it('reports a large error for an off-by-one backend, with both planners', async () => {
    for (const planner of [planners.prefix, planners.perRequest]) {
      const c = conformanceCases().find((x) => x.name.startsWith('deep chain'))!;
      const r = await runConformanceCase(new SkipsLastToken(), c, planner);
      expect(r.maxOutErr).toBeGreaterThan(1e-2);
    }
  });

  it('reports a large error for a backend that drops partials', async () => {
    const b: AttentionBackend = new DropsLastPartial();
    expect(b.contractVersion).toBe(CONTRACT_VERSION);
    const c = conformanceCases().find((x) => x.name.startsWith('deep chain'))!;
    // chunks of 8 tokens give every query several partials
    const r = await runConformanceCase(b, c, (batch, caps) => perRequestPlanner(batch, caps, { chunkTokens: 8 }));
    expect(r.maxOutErr).toBeGreaterThan(1e-2);
  });
});
