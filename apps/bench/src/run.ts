/**
 * One bench run: for each workload × backend × planner, plan, execute, verify against the
 * reference (no time for a wrong result), time, and compute the roofline floor.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  attentionFlops,
  kvBytesPerToken,
  numQueriesOf,
  planKvTokens,
  randomKvCache,
  randomQueries,
  softmaxScale,
  uniqueKvTokens,
  validateBatch,
  validatePlan,
  visibleKvTokens,
  CanopyError,
  type AttentionBackend,
  type Batch,
  type BackendFactory,
  type DeviceProbe,
  type PagedKvCache,
} from '@canopy/core';
import { loadBackends, selectBackends } from './backends.js';
import { probeCpu } from './cpu-probe.js';
import { currentCommit, hostInfo, BENCH_VERSION } from './meta.js';
import { writeNpy } from './npy.js';
import { getPlanner, type PlannerName } from './planners.js';
import type { Io } from './progress.js';
import { Progress } from './progress.js';
import { RUN_SCHEMA_ID, type BackendInfo, type BenchRecord, type BenchRun, type FloorInfo } from './records.js';
import { CPU_POLICY, GPU_POLICY, timePlan, type TimingPolicy } from './timing.js';
import { batchRequestSpecs, buildBatch, describeScale, FULL_SCALE, isFullScale, scaleTree, type TreeSpec, type WorkloadScale } from './tree.js';
import { referenceSampleAsync, verify, type ReferenceSample } from './verify.js';
import { combineOutputs, splitHybrid, timeGroupPlans, timeInfo, type SubBatch } from './hybrid.js';

/** Default scale-down for CPU-class backends (priority < 50: the reference executor). */
export const CPU_DEFAULT_SCALE: WorkloadScale = { tokens: 1 / 16, requests: 1 / 8 };

export interface WorkloadInput {
  id: string;
  spec: TreeSpec;
  /** "builtin", "file:<path>", "sweep". */
  source: string;
  sweep?: { dim: string; value: number };
}

export interface RunConfig {
  workloads: WorkloadInput[];
  backend: string;
  backendModules: string[];
  planners: PlannerName[];
  seed: number;
  iters?: number;
  /** Applies to every backend when set (`--scale`, `--request-scale`). */
  scale?: WorkloadScale;
  /** Scale for CPU-class backends when `scale` is not set (`--full` makes it full size). */
  cpuScale: WorkloadScale;
  dump?: string;
  quiet: boolean;
  model: string | null;
  /** The prefix planner's `hybridLayout` option (`--hybrid-layout`); default: the planner's. */
  hybridLayout?: 'packed' | 'separate';
  command: string[];
  /** Override the timing budget per record, ms (tests). */
  budgetMs?: number;
  /** Seconds one backend call (upload, run, or a timing batch beyond its budget) may take before
   * the backend counts as hung (default 120 s on GPUs, 300 s on CPU-class backends at their
   * default scale, 3600 s at full size). */
  timeoutS?: number;
  /** Called with the run so far after every record (the CLI rewrites --json then). */
  onRecord?: (partial: BenchRun) => void;
}

interface Instance {
  spec: TreeSpec;
  scale: WorkloadScale;
  batch: Batch;
  queries: Float32Array;
  cache: PagedKvCache;
  ref?: ReferenceSample;
  /** Prefill and decode halves for the hybrid baselines (null: not a hybrid batch). */
  split?: [SubBatch, SubBatch] | null;
  dumped: boolean;
  dumpDir?: string;
}

/**
 * CPU-class backends run scaled-down workloads by default: the reference and CPU backends
 * (priority < 50), and GPU APIs running on a software device (Mesa lavapipe/llvmpipe, SwiftShader).
 */
export function isCpuClass(f: BackendFactory, device = ''): boolean {
  return f.priority < 50 || /llvmpipe|lavapipe|swiftshader|software rasterizer|\bcpu\b/i.test(device);
}

function floorOf(probe: ProbeResult, uniqueBytes: number, flops: number): FloorInfo {
  const bw = probe.readBandwidthGBs ?? null;
  const peak = probe.peakTflops ?? null;
  const bytesUs = bw ? uniqueBytes / (bw * 1e3) : null;
  const flopsUs = peak ? flops / (peak * 1e6) : null;
  const floorUs = bytesUs === null && flopsUs === null ? null : Math.max(bytesUs ?? 0, flopsUs ?? 0);
  const bound = floorUs === null ? null : (flopsUs ?? 0) > (bytesUs ?? 0) ? 'compute' : 'memory';
  return { bytesUs, flopsUs, floorUs, bound, readBandwidthGBs: bw, peakTflops: peak, peakUnits: probe.peakUnits ?? null, source: probe.source };
}

interface ProbeResult extends DeviceProbe {
  source: string;
}

async function probeBackend(backend: AttentionBackend, factory: BackendFactory): Promise<ProbeResult> {
  let p: DeviceProbe = {};
  let source = 'backend probe';
  if (backend.probe) {
    try {
      p = await backend.probe();
    } catch (e) {
      source = `backend probe failed: ${(e as Error).message}`;
    }
  }
  if (p.readBandwidthGBs === undefined && p.peakTflops === undefined && isCpuClass(factory, backend.device)) {
    // The JavaScript probe measures one thread; a backend that spreads work over threads gets
    // that arithmetic rate times its parallel units (bandwidth is shared, so it stays).
    const cpu = probeCpu();
    const units = Math.max(1, backend.capabilities.parallelUnits || 1);
    if (units === 1) return cpu;
    return { ...cpu, peakTflops: cpu.peakTflops! * units, peakUnits: `${cpu.peakUnits} × ${units} parallel units`, source: `${cpu.source}, × ${units} units` };
  }
  if (p.readBandwidthGBs === undefined && backend.capabilities.readBandwidthGBs !== undefined) {
    p = { ...p, readBandwidthGBs: backend.capabilities.readBandwidthGBs };
    source += ' + capabilities.readBandwidthGBs';
  }
  return { ...p, source };
}

function makeInstance(spec: TreeSpec, scale: WorkloadScale, seed: number): Instance {
  const scaled = scaleTree(spec, scale);
  const batch = buildBatch(scaled);
  validateBatch(batch);
  const queries = randomQueries(numQueriesOf(batch), batch.config, seed);
  const cache = randomKvCache(batch.numPages, batch.pageSize, batch.config, seed);
  return { spec: scaled, scale, batch, queries, cache, dumped: false };
}

function scaleKey(s: WorkloadScale): string {
  return `${s.tokens}:${s.requests}`;
}

/** Write the dump files of an instance (inputs once; outputs per backend/planner). */
function dumpInputs(inst: Instance, dir: string, workload: string, seed: number): void {
  mkdirSync(dir, { recursive: true });
  const { batch, cache } = inst;
  const { numQoHeads: H, numKvHeads: HK, headDim: D, kvDtype } = batch.config;
  const Q = numQueriesOf(batch);
  writeNpy(join(dir, 'q.npy'), inst.queries, [Q, H, D]);
  writeNpy(join(dir, 'k.npy'), cache.k, [cache.numPages, cache.pageSize, HK, D]);
  writeNpy(join(dir, 'v.npy'), cache.v, [cache.numPages, cache.pageSize, HK, D]);
  // draft nodes add requests of their own after the file's (batchRequestSpecs)
  const leafIds = batchRequestSpecs(inst.spec).map((r) => r.leaf);
  const requests = batch.requests.map((r, i) => ({
    request: i,
    leaf: leafIds[i],
    numQueries: r.numQueries,
    pageIds: Array.from(r.pageIds),
    pageTokens: Array.from(r.pageTokens),
  }));
  writeFileSync(join(dir, 'requests.json'), `${JSON.stringify(requests)}\n`);
  const manifest = {
    schema: 'canopy-bench/dump@1',
    workload,
    config: { ...inst.spec.config },
    scale: softmaxScale(batch.config),
    seed,
    seeds: { queries: seed, k: (seed + 1) >>> 0, v: (seed + 2) >>> 0, generator: '@canopy/core SeededRng (mulberry32), uniform [-1, 1)' },
    workloadScale: inst.scale,
    numPages: batch.numPages,
    pageSize: batch.pageSize,
    numQueries: Q,
    files: {
      'q.npy': { dtype: '<f4', shape: [Q, H, D] },
      'k.npy': { dtype: kvDtype === 'f16' ? '<f2' : '<f4', shape: [cache.numPages, cache.pageSize, HK, D] },
      'v.npy': { dtype: kvDtype === 'f16' ? '<f2' : '<f4', shape: [cache.numPages, cache.pageSize, HK, D] },
      'requests.json': 'per request: page ids and tokens used per page (slots [0, tokens) of each page), in order',
      'out.npy': { dtype: '<f4', shape: [Q, H, D] },
      'lse.npy': { dtype: '<f4', shape: [Q, H], note: 'natural log' },
    },
    outputs: [] as Array<{ backend: string; planner: string; out: string; lse: string }>,
    commit: currentCommit(),
  };
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

function dumpOutput(dir: string, first: boolean, backend: string, planner: string, batch: Batch, out: Float32Array, lse: Float32Array): void {
  const { numQoHeads: H, headDim: D } = batch.config;
  const Q = numQueriesOf(batch);
  const suffix = first ? '' : `.${backend}.${planner}`;
  writeNpy(join(dir, `out${suffix}.npy`), out, [Q, H, D]);
  writeNpy(join(dir, `lse${suffix}.npy`), lse, [Q, H]);
  // Record which run each output file holds.
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readText(path)) as { outputs: Array<Record<string, string>> };
  m.outputs.push({ backend, planner, out: `out${suffix}.npy`, lse: `lse${suffix}.npy` });
  writeFileSync(path, `${JSON.stringify(m, null, 2)}\n`);
}

function readText(p: string): string {
  return readFileSync(p, 'utf8');
}

/** Set when a backend hung: its native work may keep the process alive, so the CLI exits explicitly. */
export let hungBackends = false;

class TimeoutError extends Error {}

/** Wait for `p`, but at most `ms`; on timeout call `onTimeout` and throw (the call itself cannot be cancelled). */
async function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new TimeoutError(`${what} did not finish within ${Math.round(ms / 1000)} s (the backend counts as hung; --timeout S changes the limit)`));
    }, ms);
    timer.unref?.();
  });
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** Speedups against perRequest on the same workload, backend and scale (and sweep point). */
function fillSpeedups(records: BenchRecord[]): void {
  for (const r of records) {
    const base = records.find((b) => b.workload === r.workload && b.backend === r.backend && b.planner === 'perRequest' && scaleKey(b.scale) === scaleKey(r.scale) && b.sweep?.value === r.sweep?.value);
    r.speedupVsPerRequest = base?.timeUs && r.timeUs ? base.timeUs.median / r.timeUs.median : null;
  }
}

type Live = { factory: BackendFactory; backend: AttentionBackend; policy: TimingPolicy; timeoutMs: number; dead?: string };

/**
 * The hybrid baselines of one record: plan the prefill and the decode half with the same planner,
 * run both and check them against the reference like any plan, then time them as one step with
 * timeGroup, back to back ('serial') and on two streams ('concurrent'). Fills `rec.hybrid`;
 * returns false when a baseline gave a wrong result or failed.
 */
async function hybridBaselines(
  l: Live,
  inst: Instance,
  split: [SubBatch, SubBatch],
  plannerName: PlannerName,
  rec: BenchRecord,
  label: string,
  progress: Progress,
  debugNote: (m: string) => void,
): Promise<boolean> {
  const [pre, dec] = split;
  const h: NonNullable<BenchRecord['hybrid']> = {
    prefillRequests: pre.requests.length,
    prefillQueries: pre.queryIds.length,
    decodeRequests: dec.requests.length,
    decodeQueries: dec.queryIds.length,
    workItems: { prefill: 0, decode: 0 },
    verification: null,
    serialUs: null,
    concurrentUs: null,
    fusedSpeedupVsSerial: null,
    fusedSpeedupVsConcurrent: null,
  };
  rec.hybrid = h;
  if (!l.backend.timeGroup) {
    h.note = `${l.factory.name} has no timeGroup: no back-to-back baselines`;
    return true;
  }
  const what = `${label} prefill+decode baselines`;
  try {
    const planner = getPlanner(plannerName);
    const plans = split.map((part) => {
      const plan = planner(part.batch, l.backend.capabilities);
      validatePlan(plan, part.batch);
      return plan;
    });
    h.workItems = { prefill: plans[0].numItems, decode: plans[1].numItems };
    progress.update(label, 'running prefill and decode plans');
    debugNote(`${what}: running the two plans`);
    const outs = [];
    for (let k = 0; k < 2; k++) outs.push(await withTimeout(l.backend.run(plans[k], split[k].queries), l.timeoutMs, 'run', () => (l.dead = 'hung in run()')));
    const { batch } = inst;
    const both = combineOutputs(batch, split, outs, numQueriesOf(batch));
    inst.ref ??= await referenceSampleAsync(batch, inst.cache, inst.queries, debugNote);
    h.verification = verify(batch, inst.ref, both.out, both.lse);
    if (!h.verification.passed) {
      h.note = `wrong result from the prefill/decode plans: ${h.verification.detail}`;
      progress.note(`ERROR ${what}: ${h.note} — no time reported`);
      return false;
    }
    const queries = split.map((p) => p.queries);
    for (const mode of ['serial', 'concurrent'] as const) {
      const t = await withTimeout(
        timeGroupPlans(l.backend, plans, queries, mode, l.policy, (done, target) => progress.update(label, `timing ${mode} ${done}/${target}`)),
        l.timeoutMs + l.policy.budgetMs,
        'timing',
        () => (l.dead = 'hung while timing'),
      );
      const info = timeInfo(t);
      const speedup = rec.timeUs ? info.median / rec.timeUs.median : null;
      if (mode === 'serial') {
        h.serialUs = info;
        h.fusedSpeedupVsSerial = speedup;
      } else {
        h.concurrentUs = info;
        h.fusedSpeedupVsConcurrent = speedup;
      }
    }
    return true;
  } catch (e) {
    h.note = `error: ${(e as Error).message}`;
    progress.note(`ERROR ${what}: ${(e as Error).message}`);
    return false;
  }
}

export interface RunResult {
  run: BenchRun;
  /** The line `--backend` selection printed. */
  backendLine: string;
  ok: boolean;
}

const DEBUG = typeof process !== 'undefined' && !!process.env.CANOPY_BENCH_DEBUG;
const tStart = performance.now();
function debug(io: Io, msg: string): void {
  if (DEBUG) io.err(`[debug ${((performance.now() - tStart) / 1000).toFixed(2)}s] ${msg}`);
}

export async function runBench(cfg: RunConfig, io: Io): Promise<RunResult> {
  const wanted = ['auto', 'all'].includes(cfg.backend.toLowerCase()) ? undefined : cfg.backend.toLowerCase().split(',').map((s) => s.trim());
  const loaded = await loadBackends({ wanted, modules: cfg.backendModules });
  const selection = await selectBackends(cfg.backend, loaded);
  if (!cfg.quiet || cfg.backend.toLowerCase() === 'auto') io.err(selection.line);

  const commit = currentCommit();
  const startedAt = new Date().toISOString();
  const notes: string[] = [
    'verification: all queries when Σ visible tokens × query heads × head dim ≤ 2^28, else 64 queries spread evenly (first and last included; batches mixing prefill chunks and decodes: 32 of each kind); tolerance 2e-3 (f16 KV) or 1e-4 (f32 KV) of max |reference out|',
  ];
  const backends: BackendInfo[] = selection.notes.map((n) => ({
    name: n.name,
    used: n.used,
    reason: n.reason,
    from: loaded.loads.find((l) => l.name === n.name)?.from,
  }));

  // Create each backend and measure its ceilings once per run.
  const live: Array<{ factory: BackendFactory; backend: AttentionBackend; probe: ProbeResult; policy: TimingPolicy; cpuClass: boolean; timeoutMs: number; dead?: string }> = [];
  for (const factory of selection.factories) {
    debug(io, `creating ${factory.name}`);
    const info = backends.find((b) => b.name === factory.name)!;
    let backend: AttentionBackend;
    let probe: ProbeResult;
    try {
      backend = await factory.create();
      debug(io, `probing ${factory.name}`);
      probe = await probeBackend(backend, factory);
      debug(io, `probed ${factory.name}`);
    } catch (e) {
      // A backend that probed available but fails to start is skipped, not fatal to the others.
      info.used = false;
      info.reason = `failed to start: ${(e as Error).message}`;
      io.err(`${factory.name} skipped: ${info.reason}`);
      continue;
    }
    const cpuClass = isCpuClass(factory, backend.device);
    const base = cpuClass ? CPU_POLICY : GPU_POLICY;
    const policy: TimingPolicy = { ...base, ...(cfg.iters ? { fixedIters: cfg.iters, warmup: Math.min(base.warmup, cfg.iters) } : {}), ...(cfg.budgetMs ? { budgetMs: cfg.budgetMs } : {}) };
    // Scaled-down CPU runs take seconds; full-size ones on the JavaScript reference take minutes.
    const cpuFull = isFullScale(cfg.scale ?? cfg.cpuScale);
    const timeoutMs = (cfg.timeoutS ?? (cpuClass ? (cpuFull ? 3600 : 300) : 120)) * 1000;
    live.push({ factory, backend, probe, policy, cpuClass, timeoutMs });
    info.device = backend.device;
    info.probe = { readBandwidthGBs: probe.readBandwidthGBs ?? null, peakTflops: probe.peakTflops ?? null, peakUnits: probe.peakUnits ?? null, source: probe.source };
    if (!cfg.quiet) {
      const bw = probe.readBandwidthGBs ? `${probe.readBandwidthGBs >= 100 ? probe.readBandwidthGBs.toFixed(0) : probe.readBandwidthGBs.toFixed(2)} GB/s read` : 'read bandwidth unknown';
      const pk = probe.peakTflops ? `${fmtTflops(probe.peakTflops)} (${probe.peakUnits ?? 'units not given'})` : 'arithmetic peak unknown';
      io.err(`${factory.name}: ${backend.device}; ${bw}, ${pk} [${probe.source}]`);
    }
  }

  if (live.length === 0) throw new CanopyError('no-backend', `no backend could be started: ${backends.map((b) => `${b.name}: ${b.reason}`).join('; ')}`);
  const scaleFor = (l: { cpuClass: boolean }): WorkloadScale => cfg.scale ?? (l.cpuClass ? cfg.cpuScale : FULL_SCALE);
  const distinctScales = new Set(live.map((l) => scaleKey(scaleFor(l))));
  for (const l of live) {
    const s = scaleFor(l);
    if (!isFullScale(s)) {
      const note = `${l.factory.name}: workloads ${describeScale(s)} (${cfg.scale ? 'as asked' : `a CPU-class backend: full sizes are for GPUs; --full runs them at full size`})`;
      notes.push(note);
      io.err(note);
    }
  }

  if (live.some((l) => l.factory.name === 'reference')) {
    notes.push(
      'reference: the JavaScript reference executor computes every (query, KV token) pair on its own, so a plan that reads shared KV once cannot make it faster; its times show the plans run correctly, not what sharing buys (that is for GPU backends)',
    );
  }
  const total = cfg.workloads.length * live.length * cfg.planners.length;
  const progress = new Progress(io, total, cfg.quiet);
  const records: BenchRecord[] = [];
  let ok = true;
  const multiDump = cfg.workloads.length * distinctScales.size > 1;

  // The run document, also written after every record (`onProgress`) so a run cut short keeps its results.
  const makeDoc = (complete: boolean): BenchRun => ({
    schema: RUN_SCHEMA_ID,
    tool: { name: 'canopy-bench', version: BENCH_VERSION },
    createdAt: startedAt,
    commit,
    command: cfg.command,
    host: hostInfo(),
    options: { seed: cfg.seed, iters: cfg.iters ?? null, planners: cfg.planners, backend: cfg.backend, model: cfg.model, ...(cfg.hybridLayout ? { hybridLayout: cfg.hybridLayout } : {}) },
    backends,
    records,
    notes,
    complete,
  });

  try {
    for (const w of cfg.workloads) {
      const instances = new Map<string, Instance>();
      for (const l of live) {
        const scale = scaleFor(l);
        const key = scaleKey(scale);
        let inst = instances.get(key);
        if (!inst) {
          progress.update(`${w.id}: generating data`);
          inst = makeInstance(w.spec, scale, cfg.seed);
          instances.set(key, inst);
          if (cfg.dump) {
            inst.dumpDir = multiDump ? join(cfg.dump, isFullScale(scale) || distinctScales.size === 1 ? w.id : `${w.id}-scaled`) : cfg.dump;
          }
        }
        const { batch } = inst;
        // A backend that hung earlier is not called again; a failed upload fails this workload's records.
        let unusable = l.dead;
        if (!unusable) {
          progress.update(`${w.id} ${l.factory.name}: uploading KV`);
          debug(io, `${w.id}: setKvCache on ${l.factory.name}`);
          try {
            await withTimeout(l.backend.setKvCache(inst.cache), l.timeoutMs, 'setKvCache', () => (l.dead = 'hung in setKvCache'));
            debug(io, `${w.id}: KV set`);
          } catch (e) {
            unusable = `setKvCache failed: ${(e as Error).message}`;
          }
        }
        const bpt = kvBytesPerToken(batch.config);
        const uniq = uniqueKvTokens(batch);
        const noShare = visibleKvTokens(batch);
        const flops = attentionFlops(batch);
        const floor = floorOf(l.probe, uniq * bpt, flops);
        for (const plannerName of cfg.planners) {
          const label = `${w.id} ${l.factory.name} ${plannerName}`;
          progress.update(label, 'planning');
          const rec: BenchRecord = {
            workload: w.id,
            workloadName: inst.spec.name ?? w.id,
            source: w.source,
            scale,
            scaled: !isFullScale(scale),
            ...(w.sweep ? { sweep: w.sweep } : {}),
            backend: l.factory.name,
            planner: plannerName,
            device: l.backend.device,
            commit,
            config: { ...inst.spec.config, softmaxScale: softmaxScale(batch.config) },
            requests: batch.requests.length,
            queries: numQueriesOf(batch),
            nodes: inst.spec.nodes.length,
            uniqueKvTokens: uniq,
            uniqueKvBytes: uniq * bpt,
            kvTokensNoSharing: noShare,
            kvBytesNoSharing: noShare * bpt,
            planKvTokens: 0,
            planKvBytes: 0,
            attentionFlops: flops,
            workItems: 0,
            partials: 0,
            planTimeUs: 0,
            verification: { passed: false, maxAbsError: NaN, maxRelError: NaN, lseMaxAbsError: NaN, checkedQueries: 0, totalQueries: numQueriesOf(batch), sample: 'all', tolerance: 0 },
            timeUs: null,
            bandwidthGBs: null,
            floor,
            pctOfFloor: null,
            speedupVsPerRequest: null,
          };
          try {
            if (l.dead) throw new Error(`skipped: the backend ${l.dead} earlier in this run`);
            if (unusable) throw new Error(unusable);
            const planner = getPlanner(plannerName, cfg.hybridLayout);
            const tp = performance.now();
            const plan = planner(batch, l.backend.capabilities);
            rec.planTimeUs = (performance.now() - tp) * 1000;
            validatePlan(plan, batch);
            rec.workItems = plan.numItems;
            rec.partials = plan.numPartials;
            rec.planKvTokens = planKvTokens(plan);
            rec.planKvBytes = rec.planKvTokens * bpt;
            debug(io, `${label}: planned (${plan.numItems} items), running`);
            progress.update(label, 'running');
            const result = await withTimeout(l.backend.run(plan, inst.queries), l.timeoutMs, 'run', () => (l.dead = 'hung in run()'));
            debug(io, `${label}: ran, verifying`);
            progress.update(label, 'verifying');
            inst.ref ??= await referenceSampleAsync(batch, inst.cache, inst.queries, (m) => debug(io, m));
            rec.verification = verify(batch, inst.ref, result.out, result.lse);
            if (inst.dumpDir) {
              if (!inst.dumped) {
                dumpInputs(inst, inst.dumpDir, w.id, cfg.seed);
              }
              dumpOutput(inst.dumpDir, !inst.dumped, l.factory.name, plannerName, batch, result.out, result.lse);
              inst.dumped = true;
            }
            if (!rec.verification.passed) {
              rec.failure = `wrong result: ${rec.verification.detail}`;
              ok = false;
              progress.note(`ERROR ${label}: ${rec.failure} — no time reported`);
            } else {
              debug(io, `${label}: verified, timing`);
              const t = await withTimeout(
                timePlan(l.backend, plan, inst.queries, l.policy, (done, target) => progress.update(label, `timing ${done}/${target}`)),
                l.timeoutMs + l.policy.budgetMs,
                'timing',
                () => (l.dead = 'hung while timing'),
              );
              rec.timeUs = { median: t.median, p10: t.p10, p90: t.p90, min: t.min, iters: t.iters, clock: t.clock, medianRelCi: Number.isFinite(t.medianRelCi) ? t.medianRelCi : -1, stable: t.stable };
              rec.bandwidthGBs = rec.uniqueKvBytes / (t.median * 1e3);
              rec.pctOfFloor = floor.floorUs !== null ? (floor.floorUs / t.median) * 100 : null;
            }
          } catch (e) {
            rec.failure = `error: ${(e as Error).message}`;
            ok = false;
            progress.note(`ERROR ${label}: ${(e as Error).message}`);
          }
          if (inst.split === undefined) inst.split = splitHybrid(batch, inst.queries);
          if (inst.split && !l.dead && !unusable) {
            const hybridOk = await hybridBaselines(l, inst, inst.split, plannerName, rec, label, progress, (m) => debug(io, m));
            if (!hybridOk) ok = false;
          }
          records.push(rec);
          fillSpeedups(records);
          cfg.onRecord?.(makeDoc(false));
          progress.step(rec.timeUs ? `${label}: ${fmtUs(rec.timeUs.median)} (p10 ${fmtUs(rec.timeUs.p10)}, p90 ${fmtUs(rec.timeUs.p90)}, ${rec.timeUs.iters} iters)` : `${label}: ${rec.failure}`);
        }
      }
    }
  } finally {
    progress.clear();
    // A hung backend may never finish its work: do not wait for it (the CLI exits regardless).
    for (const l of live) if (!l.dead) await l.backend.dispose().catch(() => undefined);
    if (live.some((l) => l.dead)) hungBackends = true;
  }

  fillSpeedups(records);
  const run = makeDoc(true);
  return { run, backendLine: selection.line, ok };
}

export function fmtUs(us: number): string {
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e4) return `${(us / 1e3).toFixed(1)} ms`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(2)} ms`;
  if (us >= 100) return `${us.toFixed(0)} µs`;
  return `${us.toFixed(1)} µs`;
}

export function fmtTflops(t: number): string {
  return t >= 1 ? `${t.toFixed(t >= 100 ? 0 : 1)} TFLOP/s` : `${(t * 1000).toFixed(2)} GFLOP/s`;
}
