/**
 * `canopy-bench sweep --dim prefix|requests|branching|leaf`: run both planners over a family of
 * trees that differ in one dimension and report where `prefix` starts to beat `perRequest`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { intOption, UsageError, type Options } from './args.js';
import { configPatch, runConfig, scaleOptions } from './options.js';
import type { Io } from './progress.js';
import type { BenchRecord, BenchRun, SweepInfo } from './records.js';
import { renderRun, style, table } from './report-text.js';
import { runBench, fmtUs, type WorkloadInput } from './run.js';
import type { TreeConfig } from './tree.js';
import { SWEEP_BASE, SWEEP_DEFAULT_VALUES, SWEEP_DIMS, sweepTree, type SweepDim, type SweepShape } from './workloads.js';

const DEFAULT_CONFIG: TreeConfig = { numQoHeads: 32, numKvHeads: 8, headDim: 128, pageSize: 16, kvDtype: 'f16' };

/**
 * A clear win: prefix at least 5% faster and the p10–p90 ranges apart (prefix p90 below
 * perRequest p10), so noise alone does not make a crossover. "Starts to win" is the first value
 * of the final run of clear wins (prefix keeps winning from there to the end of the sweep).
 */
export function isClearWin(prefix: BenchRecord, perRequest: BenchRecord): boolean {
  const a = prefix.timeUs;
  const b = perRequest.timeUs;
  return !!a && !!b && b.median / a.median >= 1.05 && a.p90 <= b.p10;
}

export function sweepCrossovers(run: BenchRun): SweepInfo['crossovers'] {
  const backends = [...new Set(run.records.map((r) => r.backend))];
  return backends.map((backend) => {
    const pts = run.records
      .filter((r) => r.backend === backend && r.planner === 'prefix' && r.sweep && r.speedupVsPerRequest !== null)
      .sort((a, b) => a.sweep!.value - b.sweep!.value);
    const base = (p: BenchRecord) => run.records.find((r) => r.backend === backend && r.planner === 'perRequest' && r.sweep?.value === p.sweep!.value)!;
    const wins = pts.map((p) => isClearWin(p, base(p)));
    let k = pts.length;
    while (k > 0 && wins[k - 1]) k--;
    const first = k < pts.length ? pts[k] : undefined;
    const best = pts.reduce<(typeof pts)[number] | undefined>((m, p) => (!m || p.speedupVsPerRequest! > m.speedupVsPerRequest! ? p : m), undefined);
    return {
      backend,
      firstWinValue: first ? first.sweep!.value : null,
      speedupAtFirstWin: first ? first.speedupVsPerRequest : null,
      maxSpeedup: best ? best.speedupVsPerRequest : null,
      maxSpeedupValue: best ? best.sweep!.value : null,
      winValues: pts.filter((_, i) => wins[i]).map((p) => p.sweep!.value),
    };
  });
}

export async function runSweep(o: Options, argv: string[], io: Io): Promise<{ run: BenchRun; ok: boolean; text: (color: boolean) => string }> {
  if (!o.dim) throw new UsageError(`sweep needs --dim (${SWEEP_DIMS.join(', ')})`);
  const dim = o.dim as SweepDim;
  if (!SWEEP_DIMS.includes(dim)) throw new UsageError(`unknown sweep dimension "${o.dim}" (${SWEEP_DIMS.join(', ')})`);
  if (o.workload || o.tree) throw new UsageError('sweep builds its own trees: use --prefix/--requests/--branching/--leaf for the base shape, not --workload/--tree');
  const values = o.values
    ? o.values.split(',').map((v) => {
        const n = Number(v.trim());
        if (!Number.isInteger(n) || n < (dim === 'prefix' ? 0 : 1)) throw new UsageError(`--values: "${v}" is not a valid ${dim} (an integer ≥ ${dim === 'prefix' ? 0 : 1})`);
        return n;
      })
    : SWEEP_DEFAULT_VALUES[dim];
  const base: SweepShape = {
    ...SWEEP_BASE,
    prefix: intOption(o.prefix, 'prefix', 0, SWEEP_BASE.prefix),
    requests: intOption(o.requests, 'requests', 1, SWEEP_BASE.requests),
    branching: intOption(o.branching, 'branching', 1, SWEEP_BASE.branching),
    leaf: intOption(o.leaf, 'leaf', 1, SWEEP_BASE.leaf),
  };
  const config = { ...DEFAULT_CONFIG, ...configPatch(o) };
  const workloads: WorkloadInput[] = values.map((value) => ({
    id: `${dim}=${value}`,
    spec: sweepTree({ ...base, [dim]: value }, config),
    source: 'sweep',
    sweep: { dim, value },
  }));
  const cfg = runConfig({ ...o, planner: o.planner ?? 'both' }, argv, workloads);
  if (o.json) mkdirSync(dirname(o.json), { recursive: true });
  if (o.json) cfg.onRecord = (partial) => writeFileSync(o.json!, `${JSON.stringify(partial, null, 2)}\n`);
  // A requests sweep keeps its request counts on the CPU: only tokens are scaled there.
  if (!o.scale && !o['request-scale'] && !o.full) cfg.cpuScale = { ...scaleOptions(o).cpuScale, requests: 1 };
  const { run, ok } = await runBench(cfg, io);
  run.sweep = { dim, values, base: { ...base }, crossovers: sweepCrossovers(run) };

  const text = (color: boolean): string => {
    const st = style(color);
    const lines: string[] = [];
    const fixed = Object.entries(base)
      .filter(([k]) => k !== dim && !(k === 'mid' && base.branching === 1 && dim !== 'branching'))
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    lines.push(st.bold(`sweep over ${dim}`) + st.dim(`  (${fixed}; ${config.numQoHeads}/${config.numKvHeads}/${config.headDim} ${config.kvDtype})`));
    for (const c of run.sweep!.crossovers) {
      const rows = values.map((v) => {
        const pr = run.records.find((r) => r.backend === c.backend && r.sweep?.value === v && r.planner === 'perRequest');
        const px = run.records.find((r) => r.backend === c.backend && r.sweep?.value === v && r.planner === 'prefix');
        const sp = px?.speedupVsPerRequest ?? null;
        return [
          String(v),
          pr?.timeUs ? fmtUs(pr.timeUs.median) : '–',
          px?.timeUs ? fmtUs(px.timeUs.median) : '–',
          sp === null ? '–' : px && pr && isClearWin(px, pr) ? st.green(`${sp.toFixed(2)}× ✓`) : `${sp.toFixed(2)}×  `,
          px ? `${(px.planKvBytes / px.uniqueKvBytes).toFixed(2)}×` : '–',
          pr ? `${(pr.planKvBytes / pr.uniqueKvBytes).toFixed(2)}×` : '–',
        ];
      });
      lines.push('');
      lines.push(`  ${c.backend}${run.records.find((r) => r.backend === c.backend)?.scaled ? st.dim(' (scaled down)') : ''}`);
      for (const l of table([dim, 'perRequest', 'prefix', 'speedup', 'prefix KV read/unique', 'perRequest KV read/unique'], rows, 1)) lines.push(`  ${l}`);
      lines.push(`  ${crossoverSentence(dim, c)}`);
    }
    lines.push(st.dim('  ✓ a clear win: prefix ≥ 5% faster and its p10–p90 range below perRequest\'s'));
    if (o.quiet) return lines.join('\n');
    return `${lines.join('\n')}\n${st.dim('\nDetails per point:')}${renderRun(run, color)}`;
  };
  return { run, ok, text };
}

export function crossoverSentence(dim: string, c: SweepInfo['crossovers'][number]): string {
  const best = c.maxSpeedup === null ? '' : `; best ${c.maxSpeedup.toFixed(2)}× at ${dim} = ${c.maxSpeedupValue}`;
  if (c.firstWinValue !== null) return `prefix starts to win at ${dim} = ${c.firstWinValue} (${c.speedupAtFirstWin!.toFixed(2)}×) and keeps winning from there${best}`;
  if (c.winValues.length) return `prefix wins clearly at ${dim} = ${c.winValues.join(', ')} but not at the largest values swept${best}`;
  return `prefix does not clearly beat perRequest at any ${dim} swept${best}`;
}
