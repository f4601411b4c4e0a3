/**
 * `canopy-bench plan`: planning time (full build and incremental step, medians) on W1–W5 and a
 * 1024-request 4-level tree, from @canopy/planner's `benchmarkPlanning`; and
 * `canopy-bench plan --workload W2 --explain`, which prints the planner's explanation of a plan.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CanopyError, REFERENCE_CAPABILITIES, validateBatch } from '@canopy/core';
import { intOption, UsageError, type Options } from './args.js';
import { currentCommit, hostInfo, BENCH_VERSION } from './meta.js';
import { collectWorkloads, configPatch } from './options.js';
import { getPlanner, plannerExtras, resolvePlanners } from './planners.js';
import type { Io } from './progress.js';
import { buildBatch, withConfig, type TreeConfig } from './tree.js';
import { planStressTree } from './workloads.js';

const DEFAULT_CONFIG: TreeConfig = { numQoHeads: 32, numKvHeads: 8, headDim: 128, pageSize: 16, kvDtype: 'f16' };

function need<T>(v: T | undefined, name: string): T {
  if (typeof v !== 'function') throw new CanopyError('no-planner', `@canopy/planner does not export ${name} (needed by canopy-bench plan)`);
  return v;
}

export async function runPlanCommand(o: Options, io: Io): Promise<number> {
  const extras = plannerExtras();
  const workloads = collectWorkloads(o);
  if (o.explain) {
    if (workloads.length !== 1) throw new UsageError('plan --explain needs exactly one workload (--workload W or --tree FILE)');
    const planners = resolvePlanners(o.planner ?? 'prefix');
    const batch = buildBatch(workloads[0].spec);
    validateBatch(batch);
    const explain = need(extras.explainPlan, 'explainPlan');
    const buildTokenTree = need(extras.buildTokenTree, 'buildTokenTree');
    const tree = buildTokenTree(batch);
    for (const name of planners) {
      const plan = getPlanner(name)(batch, REFERENCE_CAPABILITIES);
      io.out(`${workloads[0].id} · planner ${name} · capabilities of the reference backend`);
      io.out(explain(plan, tree));
      io.out('');
    }
    return 0;
  }
  const benchmarkPlanning = need(extras.benchmarkPlanning, 'benchmarkPlanning');
  const iters = intOption(o.iters, 'iters', 1, 20);
  const inputs = o.workload || o.tree ? workloads : [...workloads, { id: 'T1024', spec: withConfig(planStressTree(DEFAULT_CONFIG), configPatch(o)), source: 'builtin' }];
  const results: Array<{ workload: string; requests: number; nodes: number; result: unknown }> = [];
  for (const w of inputs) {
    const batch = buildBatch(w.spec);
    validateBatch(batch);
    const result = await benchmarkPlanning(batch, REFERENCE_CAPABILITIES, { iters });
    results.push({ workload: w.id, requests: batch.requests.length, nodes: w.spec.nodes.length, result });
    if (!o.quiet) io.err(`planned ${w.id}`);
  }
  io.out(renderPlanTable(results));
  if (o.json) {
    mkdirSync(dirname(o.json), { recursive: true });
    const doc = { schema: 'canopy-bench/plan@1', tool: { name: 'canopy-bench', version: BENCH_VERSION }, createdAt: new Date().toISOString(), commit: currentCommit(), host: hostInfo(), iters, results };
    writeFileSync(o.json, `${JSON.stringify(doc, null, 2)}\n`);
  }
  return 0;
}

/** Flatten numeric fields of each result (whatever benchmarkPlanning reports) into one table. */
function renderPlanTable(results: Array<{ workload: string; requests: number; nodes: number; result: unknown }>): string {
  const flat = results.map((r) => {
    const out: Record<string, string> = { workload: r.workload, requests: String(r.requests), nodes: String(r.nodes) };
    const walk = (v: unknown, prefix: string): void => {
      if (typeof v === 'number') out[prefix] = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
      else if (typeof v === 'string') out[prefix] = v;
      else if (v && typeof v === 'object' && !ArrayBuffer.isView(v) && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(x, prefix ? `${prefix}.${k}` : k);
    };
    walk(r.result, '');
    return out;
  });
  const cols = [...new Set(flat.flatMap((f) => Object.keys(f)))];
  const widths = cols.map((c) => Math.max(c.length, ...flat.map((f) => (f[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cols), widths.map((w) => '─'.repeat(w)).join('  '), ...flat.map((f) => line(cols.map((c) => f[c] ?? '')))].join('\n');
}
