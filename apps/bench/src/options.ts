/** Turning parsed options into workloads and a run configuration (shared by run, sweep and plan). */
import { readFileSync } from 'node:fs';
import { CanopyError } from '@canopy/core';
import { factorOption, intOption, UsageError, type Options } from './args.js';
import { resolvePlanners } from './planners.js';
import { CPU_DEFAULT_SCALE, type RunConfig, type WorkloadInput } from './run.js';
import { parseTreeJson, withConfig, type TreeConfig, type TreeSpec, type WorkloadScale } from './tree.js';
import { builtinWorkload, modelPreset, resolveWorkloadIds, CANONICAL_WORKLOADS } from './workloads.js';

export function configPatch(o: Options): Partial<TreeConfig> {
  const patch: Partial<TreeConfig> = {};
  if (o.model) {
    const m = modelPreset(o.model);
    patch.numQoHeads = m.numQoHeads;
    patch.numKvHeads = m.numKvHeads;
    patch.headDim = m.headDim;
  }
  if (o['kv-dtype'] !== undefined) {
    if (o['kv-dtype'] !== 'f16' && o['kv-dtype'] !== 'f32') throw new UsageError(`--kv-dtype must be f16 or f32, got "${o['kv-dtype']}"`);
    patch.kvDtype = o['kv-dtype'];
  }
  const ps = intOption(o['page-size'], 'page-size', 1);
  if (ps !== undefined) patch.pageSize = ps;
  return patch;
}

/** The workloads named by --workload/--tree (default: W1–W5), with config overrides applied. */
export function collectWorkloads(o: Options, defaults: readonly string[] = CANONICAL_WORKLOADS): WorkloadInput[] {
  const patch = configPatch(o);
  const out: WorkloadInput[] = [];
  const ids = o.workload?.length ? resolveWorkloadIds(o.workload) : o.tree?.length ? [] : [...defaults];
  for (const id of ids) out.push({ id, spec: withConfig(builtinWorkload(id), patch), source: 'builtin' });
  for (const file of o.tree ?? []) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new CanopyError('bad-tree-file', `--tree ${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const spec: TreeSpec = withConfig(parseTreeJson(text, file), patch);
    const base = file.replace(/^.*[\\/]/, '').replace(/\.json$/i, '');
    out.push({ id: base, spec, source: `file:${file}` });
  }
  return out;
}

export function scaleOptions(o: Options): { scale?: WorkloadScale; cpuScale: WorkloadScale } {
  const t = factorOption(o.scale, 'scale');
  const r = factorOption(o['request-scale'], 'request-scale');
  const scale = t !== undefined || r !== undefined ? { tokens: t ?? 1, requests: r ?? 1 } : undefined;
  return { scale, cpuScale: o.full ? { tokens: 1, requests: 1 } : CPU_DEFAULT_SCALE };
}

function hybridLayoutOption(v: string | undefined): 'packed' | 'separate' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'packed' && v !== 'separate') throw new UsageError(`--hybrid-layout must be packed or separate, got "${v}"`);
  return v;
}

export function runConfig(o: Options, argv: string[], workloads: WorkloadInput[]): RunConfig {
  return {
    workloads,
    backend: o.backend ?? 'auto',
    backendModules: o['backend-module'] ?? [],
    planners: resolvePlanners(o.planner ?? 'both'),
    seed: intOption(o.seed, 'seed', 0, 1),
    iters: intOption(o.iters, 'iters', 1),
    ...scaleOptions(o),
    dump: o.dump,
    timeoutS: intOption(o.timeout, 'timeout', 1),
    quiet: !!o.quiet,
    model: o.model ? modelPreset(o.model).label : null,
    hybridLayout: hybridLayoutOption(o['hybrid-layout']),
    command: argv,
  };
}

