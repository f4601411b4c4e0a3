import { CONTRACT_VERSION, ReferenceBackend, type AttentionBackend, type Plan } from '@canopy/core';
import { planners } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { conformanceCases, runConformanceCase } from '../src/index.js';

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

describe('the suite catches wrong backends', () => {
  it('reports a large error for a backend that drops partials', async () => {
    const b: AttentionBackend = new DropsLastPartial();
    expect(b.contractVersion).toBe(CONTRACT_VERSION);
    const c = conformanceCases().find((x) => x.name.startsWith('wide fan (40'))!;
    const r = await runConformanceCase(b, c, planners.prefix);
    expect(r.maxOutErr).toBeGreaterThan(1e-2);
  });
});
