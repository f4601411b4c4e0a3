/** The planners the bench compares, from @canopy/planner. */
import { CanopyError, type Batch, type BackendCapabilities, type Plan, type Planner } from '@canopy/core';
import * as plannerPkg from '@canopy/planner';

export const PLANNER_NAMES = ['perRequest', 'prefix'] as const;
export type PlannerName = (typeof PLANNER_NAMES)[number];

/** What the bench uses of @canopy/planner beyond the planners themselves (`plan` command). */
export interface PlannerExtras {
  explainPlan?: (plan: Plan, tree: unknown) => string;
  planMetrics?: (...args: unknown[]) => unknown;
  benchmarkPlanning?: (batch: Batch, capabilities: BackendCapabilities, opts: { iters: number }) => unknown;
  buildTokenTree?: (batch: Batch) => unknown;
}

const pkg = plannerPkg as unknown as { planners?: Partial<Record<PlannerName, Planner>> } & Record<string, unknown> & PlannerExtras;

export function getPlanner(name: PlannerName, hybridLayout?: 'packed' | 'separate'): Planner {
  if (hybridLayout !== undefined && name === 'prefix') {
    const f = pkg.prefixPlanner as ((b: Batch, c: BackendCapabilities, o: { hybridLayout: string }) => Plan) | undefined;
    if (typeof f !== 'function') throw new CanopyError('no-planner', '@canopy/planner does not provide prefixPlanner (needed for --hybrid-layout)');
    const opts = { hybridLayout };
    return (batch, capabilities) => f(batch, capabilities, opts);
  }
  const p = pkg.planners?.[name] ?? (pkg[`${name}Planner`] as Planner | undefined);
  if (typeof p !== 'function') throw new CanopyError('no-planner', `@canopy/planner does not provide the "${name}" planner`);
  return p;
}

export function plannerExtras(): PlannerExtras {
  return pkg;
}

/** `--planner perRequest|prefix|both` (comma lists allowed). */
export function resolvePlanners(spec: string): PlannerName[] {
  const out: PlannerName[] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (part.toLowerCase() === 'both' || part.toLowerCase() === 'all') {
      for (const n of PLANNER_NAMES) if (!out.includes(n)) out.push(n);
      continue;
    }
    const n = PLANNER_NAMES.find((p) => p.toLowerCase() === part.toLowerCase());
    if (!n) throw new CanopyError('unknown-planner', `unknown planner "${part}" (perRequest, prefix or both)`);
    if (!out.includes(n)) out.push(n);
  }
  if (out.length === 0) throw new CanopyError('unknown-planner', '--planner needs perRequest, prefix or both');
  return out;
}
