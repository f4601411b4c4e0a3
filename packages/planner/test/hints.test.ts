import { describe, expect, it } from 'vitest';
import { validatePlan, type BackendCapabilities, type Plan } from '@canopy/core';
import { costModel, createPlannerState, nextDecodeBatch, prefixPlanner, stepPlanner } from '../src/index.js';
import { workload } from './workloads.js';

// The CUDA backend's menu and the hints it reports on an H100 (132 SMs): balance against 198
// concurrent CTAs, two 8-warp CTAs per SM for wave quantisation.
const CUDA_LIKE: BackendCapabilities = {
  kvDtypes: ['f16'],
  headDims: [64, 128, 256],
  tileMenu: [16, 32, 64, 128].map((rows) => ({ rows, kvBlock: 64 })),
  masks: ['none', 'causal'],
  gpuTimers: true,
  parallelUnits: 132,
  readBandwidthGBs: 3030,
  planningHints: { parallelUnits: 198, waveSlots: 264 },
};

/** CTAs (items × KV heads) that read the node of item 0's node (W5's root). */
function rootCtas(plan: Plan, numKvHeads: number): number {
  const root = plan.itemNode![0];
  let n = 0;
  for (let i = 0; i < plan.numItems; i++) if (plan.itemNode![i] === root) n++;
  return n * numKvHeads;
}

describe('planning hints (core PlanningHints)', () => {
  it('the cost model takes a backend hint, and an explicit option wins over it', () => {
    expect(costModel(CUDA_LIKE).parallelUnits).toBe(198);
    expect(costModel(CUDA_LIKE).waveSlots).toBe(264);
    expect(costModel(CUDA_LIKE, { parallelUnits: 100, waveSlots: 0 })).toMatchObject({ parallelUnits: 100, waveSlots: 0 });
    const { planningHints: _, ...plain } = CUDA_LIKE;
    expect(costModel(plain)).toMatchObject({ parallelUnits: 132, waveSlots: 0 });
  });

  it('takes the per-CTA overhead from the hints (ignoring a negative or non-finite one), an option over it', () => {
    expect(costModel(CUDA_LIKE).itemOverheadUs).toBe(1); // the default
    const hinted = { ...CUDA_LIKE, planningHints: { ...CUDA_LIKE.planningHints, itemOverheadUs: 4 } };
    expect(costModel(hinted).itemOverheadUs).toBe(4);
    expect(costModel(hinted, { itemOverheadUs: 2 }).itemOverheadUs).toBe(2);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(costModel({ ...CUDA_LIKE, planningHints: { itemOverheadUs: bad } }).itemOverheadUs).toBe(1);
    }
  });

  it('a larger per-CTA overhead never cuts a workload into more work items', () => {
    const tileWaves = { ...CUDA_LIKE, planningHints: { ...CUDA_LIKE.planningHints, tileWaveSlots: [{ minRows: 128, waveSlots: 132 }] } };
    for (const id of ['W1', 'W2', 'W3', 'W4', 'W5'] as const) {
      const b = workload(id);
      const items = (us: number) => {
        const plan = prefixPlanner(b, { ...tileWaves, planningHints: { ...tileWaves.planningHints, itemOverheadUs: us } });
        validatePlan(plan, b);
        return plan.numItems;
      };
      expect(items(4), id).toBeLessThanOrEqual(items(1));
      expect(items(16), id).toBeLessThanOrEqual(items(4));
    }
  });

  it('wave quantisation keeps the longest CTAs in whole waves (W5 root: one wave of ≤ 264)', () => {
    const b = workload('W5');
    const HK = b.config.numKvHeads;
    // Without the wave term, balancing against more units cuts the root into more CTAs than one
    // wave holds (the second wave measured 435 vs 352 µs on the H100).
    const noWaves = prefixPlanner(b, CUDA_LIKE, { cost: { parallelUnits: 215, waveSlots: 0 } });
    expect(rootCtas(noWaves, HK)).toBeGreaterThan(264);
    for (const pu of [165, 198, 215, 230, 264]) {
      const plan = prefixPlanner(b, CUDA_LIKE, { cost: { parallelUnits: pu } });
      validatePlan(plan, b);
      const n = rootCtas(plan, HK);
      expect(n, `parallelUnits ${pu}`).toBeLessThanOrEqual(264);
      // and the root is still split: one wave of many CTAs, not a few long ones
      expect(n, `parallelUnits ${pu}`).toBeGreaterThan(132);
    }
  });

  it('incremental steps give the plan of a fresh build under hints', () => {
    let b = workload('W1');
    const st = createPlannerState(b, CUDA_LIKE);
    for (let s = 0; s < 40; s++) {
      b = nextDecodeBatch(b);
      const got = stepPlanner(st, b);
      const want = prefixPlanner(b, CUDA_LIKE);
      expect(Array.from(got.itemTile)).toEqual(Array.from(want.itemTile));
      expect(Array.from(got.segTokens)).toEqual(Array.from(want.segTokens));
      expect(Array.from(got.itemQueryBegin)).toEqual(Array.from(want.itemQueryBegin));
    }
  });

  // 128-row tiles at one CTA per SM (the CUDA backend's pipelined wgmma tile), the others at two.
  const ONE_PER_SM_128: BackendCapabilities = { ...CUDA_LIKE, planningHints: { parallelUnits: 198, waveSlots: 264, tileWaveSlots: [{ minRows: 128, waveSlots: 132 }] } };

  it('per-tile wave slots: W5\'s 128-row root CTAs fill one wave of 132, not of 264', () => {
    const b = workload('W5');
    const HK = b.config.numKvHeads;
    expect(costModel(ONE_PER_SM_128).tileWaveSlots).toEqual([{ minRows: 128, waveSlots: 132 }]);
    const plain = prefixPlanner(b, CUDA_LIKE);
    const perTile = prefixPlanner(b, ONE_PER_SM_128);
    validatePlan(perTile, b);
    expect(rootCtas(plain, HK)).toBeGreaterThan(132);
    const n = rootCtas(perTile, HK);
    expect(n).toBeLessThanOrEqual(132);
    expect(n).toBeGreaterThan(66); // still one wave of many CTAs
    // the same tile entry with the global count changes nothing
    const same = prefixPlanner(b, { ...CUDA_LIKE, planningHints: { parallelUnits: 198, waveSlots: 264, tileWaveSlots: [{ minRows: 128, waveSlots: 264 }] } });
    expect(Array.from(same.segTokens)).toEqual(Array.from(plain.segTokens));
    expect(Array.from(same.itemQueryBegin)).toEqual(Array.from(plain.itemQueryBegin));
  });

  it('per-tile wave slots: incremental steps give the plan of a fresh build', () => {
    for (const id of ['W5', 'W1'] as const) {
      let b = workload(id);
      const st = createPlannerState(b, ONE_PER_SM_128);
      for (let s = 0; s < 30; s++) {
        b = nextDecodeBatch(b);
        const got = stepPlanner(st, b);
        const want = prefixPlanner(b, ONE_PER_SM_128);
        expect(Array.from(got.itemTile), `${id} step ${s}`).toEqual(Array.from(want.itemTile));
        expect(Array.from(got.segTokens), `${id} step ${s}`).toEqual(Array.from(want.segTokens));
        expect(Array.from(got.itemQueryBegin), `${id} step ${s}`).toEqual(Array.from(want.itemQueryBegin));
      }
    }
  });
});
