/** `canopy-bench compare A.json B.json`: ratios of B to A for records present in both. */
import { readFileSync } from 'node:fs';
import { CanopyError } from '@canopy/core';
import { RUN_SCHEMA_ID, type BenchRecord, type BenchRun } from './records.js';
import { style, table } from './report-text.js';
import { fmtUs } from './run.js';

export interface ComparisonRow {
  key: string;
  workload: string;
  backend: string;
  planner: string;
  scale: string;
  aUs: number | null;
  bUs: number | null;
  /** B median / A median (> 1: B is slower). */
  ratio: number | null;
  speedupA: number | null;
  speedupB: number | null;
  regression: boolean;
}

export interface Comparison {
  a: { file: string; commit: string; createdAt: string; device: string };
  b: { file: string; commit: string; createdAt: string; device: string };
  thresholdPct: number | null;
  rows: ComparisonRow[];
  onlyInA: string[];
  onlyInB: string[];
  regressions: number;
  /** Geometric mean of the ratios that have both times. */
  geomeanRatio: number | null;
}

export function loadRun(file: string): BenchRun {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CanopyError('bad-run-file', `${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let run: BenchRun;
  try {
    run = JSON.parse(text) as BenchRun;
  } catch (e) {
    throw new CanopyError('bad-run-file', `${file}: not JSON: ${(e as Error).message}`);
  }
  if (!run || run.schema !== RUN_SCHEMA_ID || !Array.isArray(run.records)) {
    throw new CanopyError('bad-run-file', `${file}: not a canopy-bench run (expected "schema": "${RUN_SCHEMA_ID}" and "records")`);
  }
  return run;
}

function keyOf(r: BenchRecord): string {
  const scale = r.scaled ? ` @${r.scale.tokens}/${r.scale.requests}` : '';
  const sweep = r.sweep ? ` ${r.sweep.dim}=${r.sweep.value}` : '';
  return `${r.workload}${sweep} ${r.backend} ${r.planner}${scale} ${r.config.numQoHeads}/${r.config.numKvHeads}/${r.config.headDim}/${r.config.kvDtype}`;
}

const deviceOf = (run: BenchRun): string => [...new Set(run.records.map((r) => r.device))].join(', ') || 'none';

export function compareRuns(fileA: string, fileB: string, thresholdPct?: number): Comparison {
  const A = loadRun(fileA);
  const B = loadRun(fileB);
  const mapA = new Map(A.records.map((r) => [keyOf(r), r]));
  const mapB = new Map(B.records.map((r) => [keyOf(r), r]));
  const rows: ComparisonRow[] = [];
  let logSum = 0;
  let logN = 0;
  for (const [key, a] of mapA) {
    const b = mapB.get(key);
    if (!b) continue;
    const aUs = a.timeUs?.median ?? null;
    const bUs = b.timeUs?.median ?? null;
    const ratio = aUs !== null && bUs !== null ? bUs / aUs : null;
    if (ratio !== null) {
      logSum += Math.log(ratio);
      logN++;
    }
    const regression = (thresholdPct !== undefined && ratio !== null && ratio > 1 + thresholdPct / 100) || (aUs !== null && bUs === null);
    rows.push({
      key,
      workload: a.workload,
      backend: a.backend,
      planner: a.planner,
      scale: a.scaled ? `${a.scale.tokens}/${a.scale.requests}` : 'full',
      aUs,
      bUs,
      ratio,
      speedupA: a.speedupVsPerRequest,
      speedupB: b.speedupVsPerRequest,
      regression,
    });
  }
  const info = (file: string, run: BenchRun) => ({ file, commit: run.commit, createdAt: run.createdAt, device: deviceOf(run) });
  return {
    a: info(fileA, A),
    b: info(fileB, B),
    thresholdPct: thresholdPct ?? null,
    rows,
    onlyInA: [...mapA.keys()].filter((k) => !mapB.has(k)),
    onlyInB: [...mapB.keys()].filter((k) => !mapA.has(k)),
    regressions: rows.filter((r) => r.regression).length,
    geomeanRatio: logN ? Math.exp(logSum / logN) : null,
  };
}

export function renderComparison(c: Comparison, color = false): string {
  const st = style(color);
  const lines = [
    `A: ${c.a.file} (${c.a.commit.slice(0, 12)}, ${c.a.createdAt}, ${c.a.device})`,
    `B: ${c.b.file} (${c.b.commit.slice(0, 12)}, ${c.b.createdAt}, ${c.b.device})`,
    '',
  ];
  const rows = c.rows.map((r) => {
    const ratio = r.ratio === null ? '–' : `${r.ratio.toFixed(3)}`;
    const change = r.ratio === null ? (r.aUs !== null && r.bUs === null ? 'B has no time' : '–') : `${r.ratio >= 1 ? '+' : ''}${((r.ratio - 1) * 100).toFixed(1)}%`;
    const mark = r.regression ? st.red(`${change} REGRESSION`) : r.ratio !== null && r.ratio < 0.95 ? st.green(change) : change;
    return [
      r.workload,
      r.backend,
      r.planner,
      r.scale,
      r.aUs === null ? '–' : fmtUs(r.aUs),
      r.bUs === null ? '–' : fmtUs(r.bUs),
      ratio,
      mark,
      r.speedupA === null ? '–' : `${r.speedupA.toFixed(2)}×`,
      r.speedupB === null ? '–' : `${r.speedupB.toFixed(2)}×`,
    ];
  });
  lines.push(...table(['workload', 'backend', 'planner', 'scale', 'A median', 'B median', 'B/A', 'change', 'A vs perReq', 'B vs perReq'], rows, 4));
  lines.push('');
  if (c.geomeanRatio !== null) lines.push(`geometric mean B/A: ${c.geomeanRatio.toFixed(3)} over ${c.rows.filter((r) => r.ratio !== null).length} records`);
  if (c.thresholdPct !== null) lines.push(`regressions (slower by more than ${c.thresholdPct}%, or no time in B): ${c.regressions}`);
  if (c.onlyInA.length) lines.push(st.dim(`only in A: ${c.onlyInA.join('; ')}`));
  if (c.onlyInB.length) lines.push(st.dim(`only in B: ${c.onlyInB.join('; ')}`));
  if (c.rows.length === 0) lines.push('no records in common (same workload, backend, planner, scale and shape)');
  return lines.join('\n');
}
