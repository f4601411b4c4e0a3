import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { validatePlan } from '@canopy/core';
import { benchmarkPlanning, nextDecodeBatch, perRequestPlanner, planMetrics, prefixPlanner } from '../src/index.js';
import { arbCase } from './gen.js';
import { H100_CAPS, workload } from './workloads.js';

describe('tiles and metrics', () => {
  it('every item fits its tile when the menu has a tile that fits; metrics add up', () => {
    fc.assert(
      fc.property(arbCase(), ({ batch, caps, opts }) => {
        const g = batch.config.numQoHeads / batch.config.numKvHeads;
        const maxRows = Math.max(...caps.tileMenu.map((t) => t.rows));
        for (const plan of [prefixPlanner(batch, caps, opts), perRequestPlanner(batch, caps)]) {
          for (let i = 0; i < plan.numItems; i++) {
            const rows = (plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i]) * g;
            const tile = plan.tiles[plan.itemTile[i]];
            expect(caps.tileMenu).toContainEqual(tile);
            if (g <= maxRows) {
              expect(rows).toBeLessThanOrEqual(tile.rows);
              // smallest fitting row count
              for (const t of caps.tileMenu) if (t.rows >= rows) expect(t.rows).toBeGreaterThanOrEqual(tile.rows);
            } else expect(tile.rows).toBe(maxRows);
          }
          const m = planMetrics(plan, batch, caps);
          expect(Object.values(m.rowsHistogram).reduce((a, b) => a + b, 0)).toBe(plan.numItems);
          expect(Object.values(m.tileHistogram).reduce((a, b) => a + b, 0)).toBe(plan.numItems);
          expect(m.kvTokensRead).toBeLessThanOrEqual(m.kvTokensLoaded);
          expect(m.distinctKvTokensRead).toBe(m.uniqueKvTokens);
          expect(m.predictedTimeUs).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('benchmark helpers', () => {
  it('nextDecodeBatch appends one token per request (copy-on-write for shared or full pages)', () => {
    const b = workload('W1');
    const n = nextDecodeBatch(b);
    validatePlan(prefixPlanner(n, H100_CAPS), n);
    n.requests.forEach((r, i) => {
      const o = b.requests[i];
      const sum = (a: Int32Array) => a.reduce((x, y) => x + y, 0);
      expect(sum(r.pageTokens)).toBe(sum(o.pageTokens) + 1);
    });
    expect(n.numPages).toBe(b.numPages + 64); // every 512-token leaf ends on a full page
  });

  it('benchmarkPlanning reports quantiles for full builds and steps', () => {
    const r = benchmarkPlanning(workload('W3'), H100_CAPS, { iters: 5, warmup: 1 });
    for (const q of [r.fullBuildUs, r.fullBuildTrustedUs, r.incrementalStepUs, r.incrementalStepAccountUs, r.joinFinishStepUs]) {
      expect(q.p10).toBeLessThanOrEqual(q.median);
      expect(q.median).toBeLessThanOrEqual(q.p90);
      expect(q.median).toBeGreaterThan(0);
    }
    expect(r.requests).toBe(64);
    expect(r.explicitTreeDropped).toBe(false);
    expect(benchmarkPlanning(workload('W3', true), H100_CAPS, { iters: 2, warmup: 0 }).explicitTreeDropped).toBe(true);
  });
});
