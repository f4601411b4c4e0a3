// scripts/device/trace-summary.mjs (the CANOPY_TRACE build's summariser) on synthetic records: runs
// split at gaps, per-kernel means and phase times, SM occupancy and the timeline, all computed by
// hand here from the records written below.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'device', 'trace-summary.mjs');

// "CTRACE kind smid startNs endNs item kvHead rowBlock rg [tA tB]"
const rec = (kind: number, sm: number, t0: number, t1: number, rg: number, tA = 0, tB = 0) =>
  `CTRACE ${kind} ${sm} ${t0} ${t1} 0 0 0 ${rg}${tA ? ` ${tA} ${tB}` : ''}`;

function summarise(lines: string[], ...args: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'canopy-trace-'));
  const file = join(dir, 'trace.txt');
  writeFileSync(file, lines.join('\n') + '\n');
  return execFileSync(process.execPath, [script, file, ...args], { encoding: 'utf8' });
}

describe('trace-summary.mjs', () => {
  const base = 1_000_000_000;
  // Run 1: two pipelined-tile units (kind 5) on SMs 0 and 1, 0–10 µs and 0–20 µs, with marks;
  // one merge CTA (kind 6) on SM 0, 20–22 µs. Run 2 starts 1 ms later: one 16-row unit.
  const run1 = [
    rec(5, 0, base, base + 10_000, 8, base + 2_000, base + 9_000),
    rec(5, 1, base, base + 20_000, 8, base + 4_000, base + 18_000),
    rec(6, 0, base + 20_000, base + 22_000, 0),
  ];
  const run2 = [rec(1, 3, base + 1_000_000, base + 1_008_000, 1)];
  const lines = ['profile W5 prefix auto/auto: 30.0 µs (run 1)', ...run1, 'profile W5 prefix auto/auto: 9.0 µs (run 2)', ...run2];

  it('splits runs at gaps and names them from the profile lines', () => {
    const out = summarise(lines);
    expect(out).toContain('4 traced units in 2 runs; 2 profile lines');
    expect(out).toMatch(/== run 1: W5 prefix auto\/auto \(event 30\.0 µs\) — traced span 22\.0 µs, 3 units/);
    expect(out).toMatch(/== run 2: W5 prefix auto\/auto \(event 9\.0 µs\) — traced span 8\.0 µs, 1 units/);
  });

  it('reports per-kernel means, phase marks, SM occupancy and the timeline', () => {
    const out = summarise(lines);
    // pipe units: mean (10 + 20) / 2 = 15 µs; prologue (2 + 4) / 2 = 3, loop (7 + 14) / 2 = 10.5, end (1 + 2) / 2 = 1.5
    expect(out).toMatch(/pipe128 rg8 +units +2 +mean +15\.00 µs +first start +0\.0 +last end +20\.0 +SMs 2 +\[prologue 3\.00 \| loop 10\.50 \| epilogue 1\.50 µs\]/);
    expect(out).toMatch(/merge +units +1 +mean +2\.00 µs +first start +20\.0 +last end +22\.0 +SMs 1\n/);
    // busy SM-time: SM 0 holds a CTA for 0–10 and 20–22 (12 µs), SM 1 for 0–20: 32 of 132 × 22 µs
    expect(out).toContain(`SM-time with a CTA resident: ${((100 * 32) / (132 * 22)).toFixed(1)}% of 132 × span`);
    // first slice (0–1.375 µs): both pipe units resident, no merge
    expect(out).toMatch(/timeline \(mean resident CTAs per slice of 1\.4 µs\): pipe128 rg8 \| merge\n +0\.0 µs +2 +0\n/);
    expect(out).toMatch(/tile16s rg1 +units +1 +mean +8\.00 µs/);
  });

  it('names every kernel kind the addon records, the 2-warp tiny tile (kind 3) included', () => {
    const out = summarise([
      'profile W5 prefix auto/auto: 12.0 µs (run 1)',
      rec(0, 0, base, base + 4_000, 2),
      rec(3, 1, base, base + 6_000, 1, base + 1_000, base + 5_000),
      rec(2, 2, base, base + 2_000, 4),
    ]);
    expect(out).toMatch(/tile rg2 +units +1 +mean +4\.00 µs/);
    expect(out).toMatch(/tile16t rg1 +units +1 +mean +6\.00 µs .*\[prologue 1\.00 \| loop 4\.00 \| epilogue 1\.00 µs\]/);
    expect(out).toMatch(/persist rg4 +units +1 +mean +2\.00 µs/);
  });

  it('--last-of N prints only the last run of each group of N', () => {
    const out = summarise(lines, '--last-of', '2');
    expect(out).not.toContain('== run 1:');
    expect(out).toContain('== run 2:');
  });
});
