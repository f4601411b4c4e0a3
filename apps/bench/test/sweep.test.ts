import { describe, expect, it } from 'vitest';
import type { BenchRecord, BenchRun } from '../src/records.js';
import { crossoverSentence, isClearWin, sweepCrossovers } from '../src/sweep.js';

/** A record with just what the crossover logic reads. */
function rec(value: number, planner: 'perRequest' | 'prefix', median: number, spread: number, speedup: number | null = null): BenchRecord {
  return {
    backend: 'gpu',
    planner,
    sweep: { dim: 'requests', value },
    timeUs: { median, p10: median - spread, p90: median + spread, min: median - spread, iters: 30, clock: 'gpu', medianRelCi: 0.01, stable: true },
    speedupVsPerRequest: speedup,
  } as unknown as BenchRecord;
}

function sweepRun(points: Array<[number, number, number, number]>): BenchRun {
  // [value, perRequest median, prefix median, spread]
  const records = points.flatMap(([v, a, b, s]) => [rec(v, 'perRequest', a, s, 1), rec(v, 'prefix', b, s, a / b)]);
  return { records } as unknown as BenchRun;
}

describe('sweep crossover', () => {
  it('a clear win needs ≥ 5% and separated p10–p90 ranges', () => {
    expect(isClearWin(rec(1, 'prefix', 90, 2), rec(1, 'perRequest', 100, 2))).toBe(true);
    expect(isClearWin(rec(1, 'prefix', 90, 8), rec(1, 'perRequest', 100, 8))).toBe(false); // ranges overlap
    expect(isClearWin(rec(1, 'prefix', 97, 0.1), rec(1, 'perRequest', 100, 0.1))).toBe(false); // only 3%
  });

  it('starts to win at the first value of the final streak of clear wins', () => {
    const [c] = sweepCrossovers(sweepRun([[1, 100, 88, 10], [2, 100, 99, 1], [4, 200, 100, 5], [8, 400, 100, 5]]));
    expect(c.firstWinValue).toBe(4);
    expect(c.speedupAtFirstWin).toBeCloseTo(2, 9);
    expect(c.maxSpeedup).toBeCloseTo(4, 9);
    expect(c.maxSpeedupValue).toBe(8);
    expect(c.winValues).toEqual([4, 8]);
    expect(crossoverSentence('requests', c)).toBe('prefix starts to win at requests = 4 (2.00×) and keeps winning from there; best 4.00× at requests = 8');
  });

  it('wins that do not last to the end are listed, not called a crossover', () => {
    const [c] = sweepCrossovers(sweepRun([[16, 300, 100, 5], [64, 200, 100, 5], [256, 100, 110, 5]]));
    expect(c.firstWinValue).toBeNull();
    expect(c.winValues).toEqual([16, 64]);
    expect(crossoverSentence('leaf', c)).toMatch(/^prefix wins clearly at leaf = 16, 64 but not at the largest values swept/);
  });
});
