/** The one-table summary of a run: per workload and backend, perRequest vs prefix. */
import type { BenchRecord, BenchRun } from './records.js';
import { fmtUs } from './run.js';

export interface SummaryRow {
  workload: string;
  backend: string;
  scaled: boolean;
  perRequestUs: number | null;
  prefixUs: number | null;
  speedup: number | null;
  prefixPctOfFloor: number | null;
  prefixGBs: number | null;
  kvReadRatioPerRequest: number | null;
  kvReadRatioPrefix: number | null;
}

export function summaryRows(run: BenchRun): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const key = (r: BenchRecord) => `${r.workload}|${r.backend}|${r.scale.tokens}|${r.scale.requests}`;
  const seen = new Set<string>();
  for (const r of run.records) {
    if (r.sweep || seen.has(key(r))) continue;
    seen.add(key(r));
    const same = run.records.filter((x) => key(x) === key(r));
    const pr = same.find((x) => x.planner === 'perRequest');
    const px = same.find((x) => x.planner === 'prefix');
    rows.push({
      workload: r.workload,
      backend: r.backend,
      scaled: r.scaled,
      perRequestUs: pr?.timeUs?.median ?? null,
      prefixUs: px?.timeUs?.median ?? null,
      speedup: px?.speedupVsPerRequest ?? null,
      prefixPctOfFloor: px?.pctOfFloor ?? null,
      prefixGBs: px?.bandwidthGBs ?? null,
      kvReadRatioPerRequest: pr ? pr.planKvBytes / pr.uniqueKvBytes : null,
      kvReadRatioPrefix: px ? px.planKvBytes / px.uniqueKvBytes : null,
    });
  }
  return rows;
}

const cell = (v: number | null, f: (x: number) => string): string => (v === null ? '–' : f(v));

export function summaryCells(r: SummaryRow): string[] {
  return [
    r.workload,
    `${r.backend}${r.scaled ? ' (scaled)' : ''}`,
    cell(r.perRequestUs, fmtUs),
    cell(r.prefixUs, fmtUs),
    cell(r.speedup, (x) => `${x.toFixed(2)}×`),
    cell(r.prefixPctOfFloor, (x) => `${x.toFixed(0)}%`),
    cell(r.prefixGBs, (x) => x.toFixed(x < 10 ? 2 : 0)),
    cell(r.kvReadRatioPerRequest, (x) => `${x.toFixed(2)}×`),
    cell(r.kvReadRatioPrefix, (x) => `${x.toFixed(2)}×`),
  ];
}

export const SUMMARY_HEADER = ['workload', 'backend', 'perRequest', 'prefix', 'speedup', 'prefix % of floor', 'prefix GB/s', 'KV read perRequest', 'KV read prefix'];

/** Markdown for the README: the table plus the date, device and commit it came from. */
export function summaryMarkdown(run: BenchRun, file?: string): string {
  const devices = [...new Set(run.backends.filter((b) => b.used).map((b) => `${b.name}: ${b.device ?? '?'}`))].join('; ');
  const lines = [
    `Measured ${run.createdAt.slice(0, 10)} on ${devices}, commit \`${run.commit.slice(0, 12)}\`${file ? ` ([${file.replace(/^.*[\\/]/, '')}](${file}))` : ''}.`,
    '',
    `| ${SUMMARY_HEADER.join(' | ')} |`,
    `| ${SUMMARY_HEADER.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`,
    ...summaryRows(run).map((r) => `| ${summaryCells(r).join(' | ')} |`),
    '',
    'Median time of one decode step (attention only). Speedup: perRequest / prefix. Floor: max(unique KV bytes / measured read bandwidth, attention FLOPs / measured peak). KV read: bytes the plan reads / unique KV bytes.',
  ];
  return lines.join('\n');
}
