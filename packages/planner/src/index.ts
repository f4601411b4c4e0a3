/**
 * @canopy/planner: turns a batch into a plan (see README.md).
 *
 * - `perRequestPlanner`: the no-sharing baseline (every request alone, FlashDecoding-style splits).
 * - `prefixPlanner`: token tree → one group per node → cost-model splits and tiles → merge lists;
 *   reads every shared KV token once. `createPlannerState` / `stepPlanner` plan decode steps
 *   incrementally.
 */
import type { Planner } from '@canopy/core';
import { perRequestPlanner } from './perRequest.js';
import { prefixPlanner } from './state.js';

export { costModel, COST_DEFAULTS, CtaCost, TileChooser, type CostModelParams } from './cost.js';
export { emitPrefixPlan, type AppendDelta, type PrefixPlannerOptions } from './prefix.js';
export { perRequestPlanner, type PerRequestOptions } from './perRequest.js';
export {
  buildTokenTree,
  clonePlannerState,
  createPlannerState,
  prefixPlanner,
  stateTokenTree,
  stepPlanner,
  type PlannerState,
  type StepDelta,
} from './state.js';
export { planMetrics, type PlanMetrics } from './metrics.js';
export { explainPlan } from './explain.js';
export { benchmarkPlanning, nextDecodeBatch, nextDecodeStep, quantiles, type PlanningBenchmark, type Quantiles } from './bench.js';
export { RadixTree } from './tree.js';
export { concatPlans, isHybridBatch, splitHybridBatch, type HybridPart } from './hybrid.js';

/** The baseline as a core `Planner`. */
export const perRequest: Planner = (batch, capabilities) => perRequestPlanner(batch, capabilities);
/** The prefix planner as a core `Planner`. */
export const prefix: Planner = (batch, capabilities) => prefixPlanner(batch, capabilities);

/** Planners by name (`canopy-bench --planner NAME`). */
export const planners: Record<'perRequest' | 'prefix', Planner> = { perRequest, prefix };
