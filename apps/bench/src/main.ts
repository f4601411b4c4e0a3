/** canopy-bench's entry: `main(argv, io)` returns the exit code (0 ok, 1 wrong result or failure, 2 usage). */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { CanopyError } from '@canopy/core';
import { HELP, parseCli, UsageError, type Options } from './args.js';
import { compareRuns, loadRun, renderComparison } from './compare.js';
import { summaryMarkdown } from './summary.js';
import { renderHtml } from './html.js';
import { BENCH_VERSION } from './meta.js';
import { runPlanCommand } from './plan-cmd.js';
import { processIo, type Io } from './progress.js';
import type { BenchRun } from './records.js';
import { renderRun } from './report-text.js';
import { runBench } from './run.js';
import { collectWorkloads, runConfig } from './options.js';
import { runSweep } from './sweep.js';
import { BUILTIN_WORKLOADS, builtinWorkload, MODEL_PRESETS } from './workloads.js';
import { loadBackends } from './backends.js';

function writeOut(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

export async function writeReports(run: BenchRun, o: Options, io: Io): Promise<void> {
  if (o.json) {
    writeOut(o.json, `${JSON.stringify(run, null, 2)}\n`);
    if (!o.quiet) io.err(`wrote ${o.json}`);
  }
  if (o.html) {
    writeOut(o.html, await renderHtml(run));
    if (!o.quiet) io.err(`wrote ${o.html}`);
  }
}

function useColor(o: Options, io: Io): boolean {
  if (o['no-color'] || process.env.NO_COLOR) return false;
  return !!o.color || (io.isTTY && !!process.stdout.isTTY);
}

async function listCommand(io: Io): Promise<number> {
  io.out('Workloads:');
  for (const id of BUILTIN_WORKLOADS) {
    const s = builtinWorkload(id);
    io.out(`  ${id}  ${s.name ?? ''}: ${s.description ?? ''}`);
  }
  io.out('\nModel presets (query heads / KV heads / head dim):');
  for (const m of Object.values(MODEL_PRESETS)) io.out(`  ${m.label}: ${m.numQoHeads}/${m.numKvHeads}/${m.headDim}`);
  io.out('\nBackends:');
  const loaded = await loadBackends();
  const reports = await loaded.registry.probeAll();
  for (const r of reports) io.out(`  ${r.name} (priority ${r.priority}): ${r.available ? 'available' : 'unavailable'}: ${r.reason}`);
  for (const l of loaded.loads.filter((x) => !x.loaded)) io.out(`  ${l.name}: skipped: ${l.reason}`);
  return 0;
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  try {
    const { command, options: o, positionals } = parseCli(argv);
    if (o.version) {
      io.out(BENCH_VERSION);
      return 0;
    }
    if (o.help || command === 'help') {
      io.out(HELP);
      return 0;
    }
    if (o.workload && o.tree && command === 'plan') throw new UsageError('plan takes --workload or --tree, not both');
    switch (command) {
      case 'list':
        return await listCommand(io);
      case 'compare': {
        if (positionals.length !== 2) throw new UsageError(`compare needs two JSON files (compare A.json B.json), got ${positionals.length}`);
        const threshold = o.threshold === undefined ? undefined : Number(o.threshold);
        if (threshold !== undefined && !(threshold >= 0)) throw new UsageError(`--threshold must be a percentage ≥ 0, got "${o.threshold}"`);
        const cmp = compareRuns(positionals[0], positionals[1], threshold);
        io.out(renderComparison(cmp, useColor(o, io)));
        if (o.json) writeOut(o.json, `${JSON.stringify(cmp, null, 2)}\n`);
        return cmp.regressions > 0 && threshold !== undefined ? 1 : 0;
      }
      case 'report': {
        // Re-render a saved run: terminal tables, and --html FILE from its JSON.
        if (positionals.length !== 1) throw new UsageError(`report needs one run JSON (report RUN.json [--html FILE]), got ${positionals.length}`);
        const saved = loadRun(positionals[0]);
        io.out(renderRun(saved, useColor(o, io)));
        if (o.html) {
          writeOut(o.html, await renderHtml(saved));
          if (!o.quiet) io.err(`wrote ${o.html}`);
        }
        return 0;
      }
      case 'summary': {
        if (positionals.length !== 1) throw new UsageError(`summary needs one run JSON (summary RUN.json), got ${positionals.length}`);
        io.out(summaryMarkdown(loadRun(positionals[0]), positionals[0]));
        return 0;
      }
      case 'plan':
        return await runPlanCommand(o, io);
      case 'sweep': {
        const res = await runSweep(o, argv, io);
        io.out(res.text(useColor(o, io)));
        await writeReports(res.run, o, io);
        return res.ok ? 0 : 1;
      }
      case 'run': {
        const workloads = collectWorkloads(o);
        const cfg = runConfig(o, argv, workloads);
        // Rewrite --json after every record: a run cut short (a time limit) keeps what it measured.
        if (o.json) cfg.onRecord = (partial) => writeOut(o.json!, `${JSON.stringify(partial, null, 2)}\n`);
        const { run, ok } = await runBench(cfg, io);
        io.out(renderRun(run, useColor(o, io)));
        await writeReports(run, o, io);
        if (!ok) io.err('some runs failed or gave wrong results: no time is reported for those (exit code 1)');
        return ok ? 0 : 1;
      }
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`canopy-bench: ${e.message}`);
      return 2;
    }
    if (e instanceof CanopyError) {
      io.err(`canopy-bench: ${e.message}`);
      return 2;
    }
    io.err(`canopy-bench: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
  return 0;
}
