/**
 * `canopy-bench plan`: planning time (full build and incremental step, medians) on W1–W5 and a
 * 1024-request 4-level tree, from @canopy/planner's `benchmarkPlanning`; and
 * `canopy-bench plan --workload W2 --explain`, which prints the planner's explanation of a plan.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CanopyError, REFERENCE_CAPABILITIES, validateBatch, type BackendCapabilities } from '@canopy/core';
import { loadBackends, selectBackends } from './backends.js';
import { intOption, UsageError, type Options } from './args.js';
import { currentCommit, hostInfo, BENCH_VERSION } from './meta.js';
import { collectWorkloads, configPatch } from './options.js';
import { getPlanner, plannerExtras, resolvePlanners } from './planners.js';
import type { Io } from './progress.js';
import { buildBatch, withConfig, type TreeConfig } from './tree.js';
import { planStressTree } from './workloads.js';
import { table } from './report-text.js';
import { fmtUs } from './run.js';

const DEFAULT_CONFIG: TreeConfig = { numQoHeads: 32, numKvHeads: 8, headDim: 128, pageSize: 16, kvDtype: 'f16' };

function need<T>(v: T | undefined, name: string): T {
  if (typeof v !== 'function') throw new CanopyError('no-planner', `@canopy/planner does not export ${name} (needed by canopy-bench plan)`);
  return v;
}

/** Capabilities to plan for: the reference backend's, or those of `--backend NAME`. */
async function capabilitiesFor(o: Options, io: Io): Promise<{ caps: BackendCapabilities; name: string }> {
  if (!o.backend || o.backend === 'reference') return { caps: REFERENCE_CAPABILITIES, name: 'reference' };
  const loaded = await loadBackends({ wanted: o.backend === 'auto' ? undefined : [o.backend], modules: o['backend-module'] ?? [] });
  const sel = await selectBackends(o.backend, loaded);
  if (sel.factories.length !== 1) throw new UsageError('plan takes one backend (--backend NAME)');
  const backend = await sel.factories[0].create();
  try {
    if (!o.quiet) io.err(sel.line);
    return { caps: backend.capabilities, name: sel.factories[0].name };
  } finally {
    await backend.dispose();
  }
}

export async function runPlanCommand(o: Options, io: Io): Promise<number> {
  const extras = plannerExtras();
  const { caps, name: capsName } = await capabilitiesFor(o, io);
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
      const plan = getPlanner(name)(batch, caps);
      io.out(`${workloads[0].id} · planner ${name} · capabilities of the ${capsName} backend`);
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
    const result = await benchmarkPlanning(batch, caps, { iters });
    results.push({ workload: w.id, requests: batch.requests.length, nodes: w.spec.nodes.length, result });
    if (!o.quiet) io.err(`planned ${w.id}`);
  }
  io.out(renderPlanTable(results));
  if (o.json) {
    mkdirSync(dirname(o.json), { recursive: true });
    const doc = { schema: 'canopy-bench/plan@1', tool: { name: 'canopy-bench', version: BENCH_VERSION }, createdAt: new Date().toISOString(), commit: currentCommit(), host: hostInfo(), capabilitiesOf: capsName, iters, results };
    writeFileSync(o.json, `${JSON.stringify(doc, null, 2)}\n`);
  }
  return 0;
}

/**
 * One row per workload. Quantile objects ({median, p10, p90}) become one "median (p10–p90)" cell;
 * fields ending in Us are shown as times; other numbers and strings as they are.
 */
function renderPlanTable(results: Array<{ workload: string; requests: number; nodes: number; result: unknown }>): string {
  const flat = results.map((r) => {
    const out: Record<string, string> = { workload: r.workload, requests: String(r.requests), nodes: String(r.nodes) };
    const num = (v: number, key: string) => (/Us$/.test(key) ? fmtUs(v) : Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1));
    const walk = (v: unknown, key: string): void => {
      if (typeof v === 'number') out[key] = num(v, key);
      else if (typeof v === 'string') out[key] = v;
      else if (v && typeof v === 'object' && !ArrayBuffer.isView(v) && !Array.isArray(v)) {
        const q = v as Record<string, unknown>;
        if (typeof q.median === 'number' && typeof q.p10 === 'number' && typeof q.p90 === 'number') {
          out[`${key} median (p10–p90)`] = `${num(q.median, key)} (${num(q.p10, key)}–${num(q.p90, key)})`;
          return;
        }
        for (const [k, x] of Object.entries(q)) walk(x, key ? `${key}.${k}` : k);
      }
    };
    walk(r.result, '');
    return out;
  });
  const cols = [...new Set(flat.flatMap((f) => Object.keys(f)))];
  return table(cols, flat.map((f) => cols.map((c) => f[c] ?? '')), 1).join('\n');
}
