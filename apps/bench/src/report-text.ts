/** Terminal report: one table per workload (and scale). */
import type { BenchRecord, BenchRun } from './records.js';
import { describeScale } from './tree.js';
import { fmtTflops, fmtUs } from './run.js';
import { SUMMARY_HEADER, summaryCells, summaryRows } from './summary.js';

export function fmtBytes(b: number): string {
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)} kB`;
  return `${b} B`;
}

export function fmtFlops(f: number): string {
  if (f >= 1e9) return `${(f / 1e9).toFixed(f >= 1e10 ? 1 : 2)} GFLOP`;
  return `${(f / 1e6).toFixed(1)} MFLOP`;
}

const int = (n: number): string => n.toLocaleString('en-US');
export const plural = (n: number, word: string): string => `${int(n)} ${word}${n === 1 ? '' : 's'}`;

export function fmtGBs(g: number): string {
  return `${g >= 100 ? g.toFixed(0) : g >= 10 ? g.toFixed(1) : g.toFixed(2)} GB/s`;
}

export interface Style {
  bold: (s: string) => string;
  dim: (s: string) => string;
  red: (s: string) => string;
  green: (s: string) => string;
}

export function style(color: boolean): Style {
  const wrap = (a: number, b: number) => (s: string) => (color ? `\x1b[${a}m${s}\x1b[${b}m` : s);
  return { bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), green: wrap(32, 39) };
}

/** Render rows as aligned columns (first `leftCols` left-aligned, the rest right-aligned). */
export function table(header: string[], rows: string[][], leftCols = 2): string[] {
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  const widths = header.map((h, i) => Math.max(visible(h), ...rows.map((r) => visible(r[i] ?? ''))));
  const pad = (s: string, i: number) => {
    const gap = ' '.repeat(widths[i] - visible(s));
    return i < leftCols ? s + gap : gap + s;
  };
  return [header.map(pad).join('  '), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map((r) => r.map(pad).join('  '))];
}

export function groupKey(r: BenchRecord): string {
  return `${r.workload}|${r.scale.tokens}|${r.scale.requests}${r.sweep ? `|${r.sweep.value}` : ''}`;
}

export function renderRun(run: BenchRun, color = false): string {
  const st = style(color);
  const lines: string[] = [];
  const groups = new Map<string, BenchRecord[]>();
  for (const r of run.records) {
    const k = groupKey(r);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  for (const recs of groups.values()) {
    const r0 = recs[0];
    lines.push('');
    lines.push(
      `${st.bold(`${r0.workload}  ${r0.workloadName}`)}  ${st.dim(
        `${int(r0.requests)} requests · unique KV ${int(r0.uniqueKvTokens)} tokens (${fmtBytes(r0.uniqueKvBytes)}) · without sharing ${fmtBytes(r0.kvBytesNoSharing)} · ${fmtFlops(r0.attentionFlops)} · ${r0.config.numQoHeads}/${r0.config.numKvHeads}/${r0.config.headDim} ${r0.config.kvDtype} · ${describeScale(r0.scale)}`,
      )}`,
    );
    const seen = new Set<string>();
    for (const r of recs) {
      if (seen.has(r.backend)) continue;
      seen.add(r.backend);
      const f = r.floor;
      if (f.floorUs === null) {
        lines.push(st.dim(`  floor (${r.backend}): unknown (no bandwidth or peak probe)`));
        continue;
      }
      const parts: string[] = [];
      if (f.bytesUs !== null) parts.push(`bytes ${fmtUs(f.bytesUs)} at ${fmtGBs(f.readBandwidthGBs!)}`);
      if (f.flopsUs !== null) parts.push(`FLOPs ${fmtUs(f.flopsUs)} at ${fmtTflops(f.peakTflops!)}`);
      lines.push(st.dim(`  floor (${r.backend}): ${parts.join(', ')} → ${fmtUs(f.floorUs)}, ${f.bound}-bound${f.source.startsWith('CPU') ? ' (CPU estimate)' : ''}`));
    }
    const rows = recs.map((r) => {
      const t = r.timeUs;
      const time = t ? `${fmtUs(t.median)} ${st.dim(`(${fmtUs(t.p10)}–${fmtUs(t.p90)})`)}` : st.red('no time');
      // A record that failed before planning has no plan to describe.
      const read = r.workItems === 0 ? '–' : `${(r.planKvBytes / r.uniqueKvBytes).toFixed(2)}× (${fmtBytes(r.planKvBytes)})`;
      const speed = r.speedupVsPerRequest === null ? '–' : r.speedupVsPerRequest >= 1.05 ? st.green(`${r.speedupVsPerRequest.toFixed(2)}×`) : `${r.speedupVsPerRequest.toFixed(2)}×`;
      return [
        r.backend,
        r.planner,
        time,
        r.bandwidthGBs === null ? '–' : r.bandwidthGBs.toFixed(r.bandwidthGBs < 10 ? 2 : 0),
        r.pctOfFloor === null ? '–' : `${r.pctOfFloor.toFixed(r.pctOfFloor < 10 ? 1 : 0)}%`,
        speed,
        read,
        r.workItems === 0 ? '–' : int(r.workItems),
        r.verification.passed ? r.verification.maxRelError.toExponential(1) : st.red(r.verification.checkedQueries > 0 ? 'WRONG' : 'FAIL'),
      ];
    });
    for (const l of table(['backend', 'planner', 'time (p10–p90)', 'GB/s', '% floor', 'vs perRequest', 'KV read / unique', 'items', 'rel err'], rows)) lines.push(`  ${l}`);
    for (const r of recs) if (r.failure) lines.push(st.red(`  ${r.backend} ${r.planner}: ${r.failure}`));
    const hy = recs.filter((r) => r.hybrid);
    if (hy.length > 0) {
      const h0 = hy[0].hybrid!;
      lines.push('');
      lines.push(
        st.dim(
          `  prefill + decode: fused = one plan of the whole batch (above); back to back / two streams = a prefill plan (${plural(h0.prefillRequests, 'request')}, ${int(h0.prefillQueries)} queries) and a decode plan (${plural(h0.decodeRequests, 'request')}) with the same planner, timed as one step (timeGroup serial / concurrent)`,
        ),
      );
      const hrows = hy.map((r) => hybridCells(r, st));
      for (const l of table(HYBRID_HEADER, hrows)) lines.push(`  ${l}`);
      for (const r of hy) if (r.hybrid!.note) lines.push((r.hybrid!.verification?.passed === false || r.hybrid!.note.startsWith('error') ? st.red : st.dim)(`  ${r.backend} ${r.planner}: ${r.hybrid!.note}`));
    }
  }
  const sum = summaryRows(run);
  if (sum.length > 1) {
    lines.push('');
    lines.push(st.bold('Summary'));
    for (const l of table(SUMMARY_HEADER, sum.map(summaryCells))) lines.push(`  ${l}`);
  }
  lines.push('');
  for (const n of run.notes) lines.push(st.dim(`Note: ${n}`));
  lines.push(
    st.dim(
      'GB/s: unique KV bytes / median time. % floor: max(unique bytes / read bandwidth, FLOPs / peak) / time. KV read / unique: bytes the plan reads over the bytes a perfect plan reads once.',
    ),
  );
  return lines.join('\n');
}

export const HYBRID_HEADER = ['backend', 'planner', 'fused', 'back to back', 'two streams', 'fused vs back to back', 'fused vs two streams', 'items fused / prefill+decode', 'rel err (split)'];

/** One row of the hybrid table (text; HTML uses the same cells without colour). */
export function hybridCells(r: BenchRecord, st: Style = style(false)): string[] {
  const h = r.hybrid!;
  const sp = (x: number | null): string => (x === null ? '–' : x >= 1.05 ? st.green(`${x.toFixed(2)}×`) : `${x.toFixed(2)}×`);
  const v = h.verification;
  return [
    r.backend,
    r.planner,
    r.timeUs ? fmtUs(r.timeUs.median) : '–',
    h.serialUs ? fmtUs(h.serialUs.median) : '–',
    h.concurrentUs ? fmtUs(h.concurrentUs.median) : '–',
    sp(h.fusedSpeedupVsSerial),
    sp(h.fusedSpeedupVsConcurrent),
    `${r.workItems === 0 ? '–' : int(r.workItems)} / ${h.workItems.prefill === 0 && h.workItems.decode === 0 ? '–' : `${int(h.workItems.prefill)}+${int(h.workItems.decode)}`}`,
    v === null ? '–' : v.passed ? v.maxRelError.toExponential(1) : st.red('WRONG'),
  ];
}
