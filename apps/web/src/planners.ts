/** The planners of @canopy/planner the page runs, by the names the bench uses. */
import { planners } from '@canopy/planner';
import type { Planner } from '@canopy/core';

/** perRequest first: it is the baseline the speedups are relative to. */
export const PLANNER_NAMES = ['perRequest', 'prefix'] as const;
export type PlannerName = (typeof PLANNER_NAMES)[number];

export function getPlanner(name: PlannerName): Planner {
  const p = planners[name];
  if (!p) throw new Error(`@canopy/planner has no '${name}' planner`);
  return p;
}
