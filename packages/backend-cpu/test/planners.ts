import type { Planner } from '@canopy/core';
import * as plannerPkg from '@canopy/planner';
import { chunkedPlanner } from './chunked-planner.js';

/**
 * Planners the tests run: @canopy/planner's (perRequest, prefix) when that package exports them,
 * plus two chunked per-request planners of our own (splits and merges independent of it).
 */
export const testPlanners: Record<string, Planner> = {
  ...(((plannerPkg as Record<string, unknown>).planners as Record<string, Planner> | undefined) ?? {}),
  chunked7: chunkedPlanner(7),
  chunked64: chunkedPlanner(64),
};
