import {
  CONTRACT_VERSION,
  CanopyError,
  type AttentionBackend,
  type AttentionOutput,
  type BackendAvailability,
  type BackendCapabilities,
  type BackendCreateOptions,
  type BackendFactory,
  type DeviceProbe,
  type GroupTimingOptions,
  type PagedKvCache,
  type Plan,
  type PlanningHints,
  type RunOptions,
  type TimingOptions,
  type TimingResult,
} from '@canopy/core';
import { loadAddon, type NativeContext, type NativePlanDesc, type NativePlanHandle } from './native.js';
import { balancePlan } from './balance.js';
import { DEFAULT_FUSED_RATES, KERNEL_ROWS, TINY_UNIT_TOKENS, kernelWarps, preparePlan, type FusedRates, type KvShape } from './prepare.js';

/**
 * How work items are launched:
 * - 'streams': one tile kernel per tile shape (16/32/64/128 rows), each on its own stream, then the merge;
 * - 'persistent': one grid per CTA shape (4- and 8-warp tiles) side by side, each pulling work
 *   units longest-first from a counter;
 * - 'fused' (POD-Attention style): ONE grid of 8-warp CTAs, two per SM, with per-SM roles: a
 *   compute-role CTA runs the 8-warp units (prefill chunks, shared prefixes), a memory-role CTA
 *   runs the 4-warp units (decode) as two independent 4-warp halves; each steals from the other
 *   list when its own is empty. Head dim 256, and plans with only one kind of unit, run as
 *   'persistent'.
 * - 'auto' (the default): per plan, 'persistent' when its units need both CTA shapes (4-warp
 *   and 8-warp tiles: shared prefixes or prefill chunks beside decode leaves), else 'streams'.
 *   Measured on the H100 (docs/benchmarks/bench-h100-2026-11-23-v5.json, streams, and
 *   cuda-persistent-2026-11-23-v5.json): with several tile kernels on several streams the
 *   step time depends on how the kernels happen to share the SMs and is bimodal from run to run
 *   (W2 148 or 167 µs, W3 75 or 86), where the two persistent grids hold steady (W2 133, W3 79,
 *   W7 139 vs 145, H1 1.91 vs 1.96 ms) at 1–3% on W1, W6 and W8; a plan of one CTA shape (W4,
 *   the perRequest plans) is 0.5–1% faster as tile kernels ('streams').
 * All are captured into a CUDA graph per plan.
 */
export type LaunchStrategy = 'auto' | 'streams' | 'persistent' | 'fused';
export const LAUNCH_STRATEGIES: readonly LaunchStrategy[] = ['auto', 'streams', 'persistent', 'fused'];
export const DEFAULT_STRATEGY: LaunchStrategy = 'auto';
/** Strategy ids of the addon (native/addon.cpp `Strategy`). */
const STRATEGY_ID: Record<Exclude<LaunchStrategy, 'auto'>, number> = { streams: 0, persistent: 1, fused: 2 };

/**
 * What 'auto' runs a prepared plan with, from its work units per tile (`groupCount[i]`: units of
 * the KERNEL_ROWS[i]-row tile): 'persistent' when both CTA shapes (kernelWarps) occur, else
 * 'streams'. Several plans timed as one step: 'persistent' if any of them mixes.
 */
export function autoStrategy(groupCounts: ArrayLike<number>[], wgmmaPipe = false): 'streams' | 'persistent' {
  // The pipelined wgmma tile is launched by the streams strategy only.
  if (wgmmaPipe) return 'streams';
  const mixed = (gc: ArrayLike<number>) => {
    let fourWarp = 0;
    let eightWarp = 0;
    KERNEL_ROWS.forEach((rows, i) => {
      if (kernelWarps(0, rows / 16) === 4) fourWarp += gc[i];
      else eightWarp += gc[i];
    });
    return fourWarp > 0 && eightWarp > 0;
  };
  return groupCounts.some(mixed) ? 'persistent' : 'streams';
}
/** Concurrent plans one timeGroup may run (stream sets of the addon, kMaxGroup). */
export const MAX_CONCURRENT_GROUP = 8;

export interface CudaCreateOptions extends BackendCreateOptions {
  device?: number;
  strategy?: LaunchStrategy;
  /** Split work items whose CTAs would run far longer than an even share of the chip (see
   * balance.ts). Default: false (mixed on the H100: a few % better on W1 and H2,
   * slower on W2, W3, W5 and S1; see README); CANOPY_CUDA_BALANCE=1 turns it on. */
  balance?: boolean;
  /** 128-row units on the pipelined wgmma tile (sm_90a; streams strategy) instead of mma.sync:
   * true, false, or undefined = decided per plan (wgmmaPipeWorthIt in prepare.ts; the default).
   * CANOPY_CUDA_WGMMA=1 / 0 forces it on / off. */
  wgmma?: boolean;
  /** 'fused' strategy: share (0–1) of the grid's CTAs that start in the compute role. Default:
   * estimated per plan from its units' FLOPs and bytes (prepare.ts); CANOPY_CUDA_FUSED_FRACTION. */
  fusedFraction?: number;
}

const HEAD_DIMS = [64, 128, 256];

/**
 * What every CUDA backend reports regardless of the GPU (the capabilities table is generated from
 * it). A created backend fills in the device-dependent fields listed in CUDA_CAPABILITY_NOTES.
 */
export const CUDA_CAPABILITIES: BackendCapabilities = {
  kvDtypes: ['f16'],
  headDims: [...HEAD_DIMS],
  tileMenu: KERNEL_ROWS.map((rows) => ({ rows, kvBlock: 64 })),
  masks: ['none', 'causal'],
  gpuTimers: true,
  parallelUnits: 132,
  planningHints: cudaPlanningHints(132, ''),
};

/**
 * Cost-model hints for planners (core's PlanningHints), fitted on the H100: balancing against
 * 1.5 × SMs of concurrent CTAs (latency-bound tiles gain from a second CTA per SM, less than 2×)
 * and wave quantisation at the two 8-warp CTAs an SM holds (W1 113 → 91 µs, W3 83 → 81, W5 391 →
 * 353 when fitted, docs/benchmarks/cuda-h100-plan-sweep-*.json), and 4 µs of fixed cost per CTA
 * (the trace build measured unit prologues of 4–9 µs and ends of 2–3 µs; the planner's default is
 * 1). Same bench call against pu=1.5,wq=2 (docs/benchmarks/cuda-h100-item-overhead-2026-11-24.json):
 * S1 287 → 257 µs, W7 126 → 113, W8 73.6 → 63.8, W5 201 either way; the driver's call there: W3
 * 72.8 → 68.3, W1 80.9 → 78.9, H1 1071 → 1031, H2 1340 → 1309. Wave slots of one CTA per SM for
 * the 128-row tiles (t128=1, the pipelined tile's occupancy) run W5's root as one wave of 128
 * units instead of two of 256, but cut S1's shared root into fewer, longer units: with canopy-bench
 * on the H100 (docs/benchmarks/cuda-h100-t128-2026-11-24.json) W5 190 → 179 µs and S1 246 →
 * 283–298 (the device driver's own draft-tree batch went 224 → 212, cuda-h100-early-tiles-*), and
 * alone (without the 4 µs) it cut H1's and H2's prefill into many KV chunks (H1 1482, H2 1655 µs).
 * So it stays off.
 */
export function cudaPlanningHints(smCount: number, env: string | undefined = process.env.CANOPY_CUDA_PLANNING_HINTS): PlanningHints {
  // CANOPY_CUDA_PLANNING_HINTS: "off", or "pu=F,wq=G,t128=H,ov=U" (pu, wq, t128: multiples of the
  // SM count, t128 the wave slots of 128-row tiles; ov: µs per CTA); any may be left out, which
  // leaves that hint unset, to compare settings on other workloads
  if (env === undefined || env === '') {
    return { parallelUnits: Math.round(1.5 * smCount), waveSlots: 2 * smCount, itemOverheadUs: 4 };
  }
  if (env === 'off') return {};
  const out: PlanningHints = {};
  for (const part of env.split(',')) {
    const m = /^(pu|wq|t128|ov)=([0-9]*\.?[0-9]+)$/.exec(part.trim());
    // (the pattern admits no sign: ov may be 0, the multiples must be positive)
    if (!m || (m[1] !== 'ov' && !(Number(m[2]) > 0))) {
      throw new CanopyError('bad-option', `CANOPY_CUDA_PLANNING_HINTS must be "off" or like "pu=1.5,wq=2,t128=1,ov=4" (pu, wq, t128: multiples of the SM count; ov: µs per CTA), got ${JSON.stringify(env)}`);
    }
    if (m[1] === 'ov') {
      out.itemOverheadUs = Number(m[2]);
      continue;
    }
    const v = Math.max(1, Math.round(Number(m[2]) * smCount));
    if (m[1] === 'pu') out.parallelUnits = v;
    else if (m[1] === 'wq') out.waveSlots = v;
    else out.tileWaveSlots = [{ minRows: 128, waveSlots: v }];
  }
  return out;
}

export const CUDA_CAPABILITY_NOTES: Record<string, string> = {
  parallelUnits: 'the GPU\'s SM count (132 on an H100 SXM)',
  planningHints: 'parallelUnits 1.5 × SMs, waveSlots 2 × SMs, itemOverheadUs 4 (fitted on the H100, see cudaPlanningHints)',
  readBandwidthGBs: '90% of the datasheet bandwidth, replaced by the measured value after probe()',
  maxKvPoolBytes: '45% of the GPU memory per pool',
};

/** Availability with the reason: addon missing, no driver/device, or too old a GPU. */
export async function cudaAvailability(): Promise<BackendAvailability> {
  const load = loadAddon();
  if (!load.ok) return { available: false, reason: load.reason };
  let p;
  try {
    p = load.addon.probeDevices();
  } catch (e) {
    return { available: false, reason: `CUDA device probe failed: ${(e as Error).message}` };
  }
  if (!p.ok) return { available: false, reason: `no usable CUDA device: ${p.reason}` };
  return { available: true, reason: `${p.count} device(s); device 0: ${p.name} (sm_${p.ccMajor}${p.ccMinor}, ${p.smCount} SMs)` };
}

function strategyFrom(options: CudaCreateOptions | undefined): LaunchStrategy {
  const s = options?.strategy ?? (process.env.CANOPY_CUDA_STRATEGY as LaunchStrategy | undefined) ?? DEFAULT_STRATEGY;
  checkStrategy(s);
  return s;
}

function fusedFractionFrom(options: CudaCreateOptions | undefined): number | undefined {
  const env = process.env.CANOPY_CUDA_FUSED_FRACTION;
  const f = options?.fusedFraction ?? (env !== undefined && env !== '' ? Number(env) : undefined);
  if (f !== undefined && !(f >= 0 && f <= 1)) {
    throw new CanopyError('bad-option', `CUDA backend: fusedFraction must be a number in [0, 1], got '${String(f)}'`);
  }
  return f;
}

function checkStrategy(s: unknown): asserts s is LaunchStrategy {
  if (!LAUNCH_STRATEGIES.includes(s as LaunchStrategy)) {
    throw new CanopyError('bad-option', `CUDA backend: strategy must be one of ${LAUNCH_STRATEGIES.map((x) => `'${x}'`).join(', ')}, got '${String(s)}'`);
  }
}

function sameArrays(a: NativePlanDesc, b: NativePlanDesc): boolean {
  for (const key of Object.keys(a) as Array<keyof NativePlanDesc>) {
    const x = a[key];
    const y = b[key];
    if (x instanceof Int32Array && y instanceof Int32Array) {
      if (x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    } else if (x !== y) {
      return false;
    }
  }
  return true;
}

interface CachedPlan {
  desc: NativePlanDesc;
  /** The backend's wgmma setting the plan was prepared under (undefined: per-plan choice). */
  wgmma: boolean | undefined;
  balanced: boolean;
  fusedFraction: number | undefined;
  handle: NativePlanHandle;
}

export class CudaBackend implements AttentionBackend {
  readonly name = 'cuda';
  readonly contractVersion = CONTRACT_VERSION;
  readonly capabilities: BackendCapabilities;
  readonly device: string;
  strategy: LaunchStrategy;
  /** See CudaCreateOptions.wgmma (undefined: chosen per plan). */
  wgmma: boolean | undefined;
  balance: boolean;
  /** Fixed compute-role share for 'fused' (undefined: estimated per plan). */
  fusedFraction: number | undefined;
  /** Longest 16-row unit for the 2-warp tiny tile: CANOPY_CUDA_TINY_TOKENS, else TINY_UNIT_TOKENS. */
  tinyUnitTokens: number = tinyUnitTokensFrom(process.env.CANOPY_CUDA_TINY_TOKENS);
  private ctx: NativeContext | undefined;
  private kv: KvShape | undefined;
  /** Plans seen before, by identity: re-running one uploads nothing but the queries. */
  private byPlan = new WeakMap<Plan, CachedPlan>();
  /** Recent plans by content: a new Plan object with the same arrays reuses the device copy. */
  private recent: CachedPlan[] = [];
  private static readonly RECENT = 4;

  constructor(ctx: NativeContext, strategy: LaunchStrategy, wgmma?: boolean, balance = false, fusedFraction?: number) {
    this.ctx = ctx;
    this.strategy = strategy;
    this.wgmma = wgmma;
    this.balance = balance;
    this.fusedFraction = fusedFraction;
    const info = ctx.info();
    this.device = info.description;
    this.capabilities = {
      ...CUDA_CAPABILITIES,
      headDims: [...CUDA_CAPABILITIES.headDims],
      tileMenu: CUDA_CAPABILITIES.tileMenu.map((t) => ({ ...t })),
      parallelUnits: info.smCount,
      planningHints: cudaPlanningHints(info.smCount),
      // About 90% of the datasheet figure is what a streaming read reaches (H100: 2985 of 3352 GB/s
      // measured by probe()); probe() replaces it with the measured value.
      readBandwidthGBs: info.theoreticalBandwidthGBs > 0 ? Math.round(info.theoreticalBandwidthGBs * 0.9) : undefined,
      // Pools are single allocations; leave room for plans, partials and outputs.
      maxKvPoolBytes: Math.floor(info.totalGlobalMem * 0.45),
    };
  }

  private live(): NativeContext {
    if (!this.ctx) throw new CanopyError('disposed', 'CUDA backend: used after dispose()');
    return this.ctx;
  }

  async setKvCache(cache: PagedKvCache): Promise<void> {
    const ctx = this.live();
    if (cache.dtype !== 'f16' || !(cache.k instanceof Uint16Array) || !(cache.v instanceof Uint16Array)) {
      throw new CanopyError('unsupported-dtype', `CUDA backend: KV dtype ${cache.dtype} not supported (f16 pools as Uint16Array only)`);
    }
    if (!HEAD_DIMS.includes(cache.headDim)) {
      throw new CanopyError('unsupported-head-dim', `CUDA backend: head dim ${cache.headDim} not supported (${HEAD_DIMS.join(', ')})`);
    }
    const n = cache.numPages * cache.pageSize * cache.numKvHeads * cache.headDim;
    if (cache.k.length !== n || cache.v.length !== n) {
      throw new CanopyError(
        'shape-mismatch',
        `CUDA backend: KV pools hold ${cache.k.length}/${cache.v.length} values, [${cache.numPages}, ${cache.pageSize}, ${cache.numKvHeads}, ${cache.headDim}] needs ${n}`,
      );
    }
    if (2 * n > (this.capabilities.maxKvPoolBytes ?? Infinity)) {
      throw new CanopyError('too-large', `CUDA backend: KV pool of ${2 * n} bytes exceeds maxKvPoolBytes ${this.capabilities.maxKvPoolBytes}`);
    }
    await ctx.setKvCache(cache.k, cache.v, cache.numPages, cache.pageSize, cache.numKvHeads, cache.headDim);
    this.kv = { numPages: cache.numPages, pageSize: cache.pageSize, numKvHeads: cache.numKvHeads, headDim: cache.headDim };
    // Plans were range-checked against the old pool shape.
    this.dropPlans();
  }

  private dropPlans(): void {
    for (const c of this.recent) c.handle.dispose();
    this.recent = [];
    this.byPlan = new WeakMap();
  }

  /** Rates the fused strategy splits its roles by: the kernels' sustained rates (prepare.ts), the
   * bandwidth scaled from the capabilities (measured after probe()). */
  private fusedRates(): FusedRates {
    const bw = this.capabilities.readBandwidthGBs;
    return { computeTflops: DEFAULT_FUSED_RATES.computeTflops, memoryGBs: bw ? 0.8 * bw : DEFAULT_FUSED_RATES.memoryGBs };
  }

  private prepare(plan: Plan): NativePlanDesc {
    const kv = this.kv;
    if (!kv) throw new CanopyError('no-kv', 'CUDA backend: call setKvCache() before run()');
    // Two CTA slots per SM: what the 8-warp and the 4-warp decode tiles both fit.
    const effective = this.balance ? balancePlan(plan, { slots: 2 * this.capabilities.parallelUnits }) : plan;
    const desc = preparePlan(effective, kv, { wgmma: this.wgmma, fusedRates: this.fusedRates(), tinyUnitTokens: this.tinyUnitTokens });
    if (this.fusedFraction !== undefined) desc.fusedComputeFraction = this.fusedFraction;
    return desc;
  }

  /** The device copy of a plan: by identity, else by content among recent plans, else uploaded. */
  private planEntry(plan: Plan): CachedPlan {
    const ctx = this.live();
    if (!this.kv) throw new CanopyError('no-kv', 'CUDA backend: call setKvCache() before run()');
    const hit = this.byPlan.get(plan);
    if (hit && hit.wgmma === this.wgmma && hit.balanced === this.balance && hit.fusedFraction === this.fusedFraction) return hit;
    const desc = this.prepare(plan);
    let entry = this.recent.find((c) => sameArrays(c.desc, desc));
    if (!entry) {
      entry = { desc, wgmma: this.wgmma, balanced: this.balance, fusedFraction: this.fusedFraction, handle: ctx.createPlan(desc) };
      this.recent.unshift(entry);
      // Older entries may still be referenced through byPlan; their memory goes with the handle's finalizer.
      if (this.recent.length > CudaBackend.RECENT) this.recent.length = CudaBackend.RECENT;
    }
    this.byPlan.set(plan, entry);
    return entry;
  }

  private checkQueries(plan: Plan, queries: Float32Array): void {
    const need = plan.numQueries * plan.config.numQoHeads * plan.config.headDim;
    if (!(queries instanceof Float32Array) || queries.length !== need) {
      throw new CanopyError(
        'shape-mismatch',
        `CUDA backend: queries must be a Float32Array of [${plan.numQueries}, ${plan.config.numQoHeads}, ${plan.config.headDim}] = ${need} values`,
      );
    }
  }

  async run(plan: Plan, queries: Float32Array, options: RunOptions = {}): Promise<AttentionOutput> {
    this.checkQueries(plan, queries);
    const entry = this.planEntry(plan);
    const r = await this.live().run(entry.handle, queries, this.strategyId([entry.desc]), !!options.timing);
    const out: AttentionOutput = { out: r.out, lse: r.lse };
    if (r.deviceTimeUs !== undefined) out.deviceTimeUs = r.deviceTimeUs;
    return out;
  }

  async time(plan: Plan, queries: Float32Array, options: TimingOptions): Promise<TimingResult> {
    this.checkQueries(plan, queries);
    if (!(options.iters >= 1)) throw new CanopyError('bad-option', 'CUDA backend: time() needs iters >= 1');
    const entry = this.planEntry(plan);
    const timesUs = await this.live().time(entry.handle, queries, this.strategyId([entry.desc]), Math.max(0, options.warmup | 0), options.iters | 0);
    return { timesUs, clock: 'gpu' };
  }

  /** The addon's strategy id for plans prepared as `descs` ('auto' resolved by autoStrategy). */
  private strategyId(descs: NativePlanDesc[]): number {
    checkStrategy(this.strategy); // the field is public: catch a bad assignment here, not in C++
    return STRATEGY_ID[this.strategy === 'auto' ? autoStrategy(descs.map((d) => d.groupCount), descs.some((d) => d.wgmma)) : this.strategy];
  }

  /**
   * Time several plans executed as one step (plan i on queries[i]), captured into one CUDA graph
   * and replayed; each entry of timesUs covers all plans of one iteration (cudaEvents).
   * - 'serial': the plans one after another on one stream, each with its own launches (this
   *   backend's strategy) and merge: separate kernels back to back;
   * - 'concurrent': plan i on its own stream set, forked from and joined into one stream
   *   (at most MAX_CONCURRENT_GROUP plans).
   * A Plan given twice (or two plans with identical arrays) gets a separate device copy for each
   * occurrence, since two executions must not share output buffers and work counters.
   */
  async timeGroup(plans: Plan[], queries: Float32Array[], options: GroupTimingOptions): Promise<TimingResult> {
    if (!Array.isArray(plans) || plans.length === 0) throw new CanopyError('bad-option', 'CUDA backend: timeGroup() needs at least one plan');
    if (!Array.isArray(queries) || queries.length !== plans.length) {
      throw new CanopyError('bad-option', `CUDA backend: timeGroup() needs one query tensor per plan (${plans.length} plans, ${Array.isArray(queries) ? queries.length : 'no'} query tensors)`);
    }
    const mode = options?.mode;
    if (mode !== 'serial' && mode !== 'concurrent') {
      throw new CanopyError('bad-option', `CUDA backend: timeGroup() mode must be 'serial' or 'concurrent', got '${String(mode)}'`);
    }
    if (!(options.iters >= 1)) throw new CanopyError('bad-option', 'CUDA backend: timeGroup() needs iters >= 1');
    if (mode === 'concurrent' && plans.length > MAX_CONCURRENT_GROUP) {
      throw new CanopyError('bad-option', `CUDA backend: timeGroup() runs at most ${MAX_CONCURRENT_GROUP} plans concurrently, got ${plans.length}`);
    }
    plans.forEach((p, i) => {
      try {
        this.checkQueries(p, queries[i]);
      } catch (e) {
        throw new CanopyError('shape-mismatch', `CUDA backend: timeGroup() plan ${i}: ${(e as Error).message.replace(/^CUDA backend: /, '')}`);
      }
    });
    const ctx = this.live();
    const handles: NativePlanHandle[] = [];
    const descs: NativePlanDesc[] = [];
    const fresh: NativePlanHandle[] = [];
    try {
      for (const p of plans) {
        const entry = this.planEntry(p);
        let h = entry.handle;
        if (handles.includes(h)) {
          h = ctx.createPlan(this.prepare(p));
          fresh.push(h);
        }
        handles.push(h);
        descs.push(entry.desc);
      }
      const timesUs = await ctx.timeGroup(handles, queries, this.strategyId(descs), mode === 'concurrent', Math.max(0, options.warmup | 0), options.iters | 0);
      return { timesUs, clock: 'gpu' };
    } finally {
      for (const h of fresh) h.dispose();
    }
  }

  async probe(): Promise<DeviceProbe> {
    const r = await this.live().probe();
    this.capabilities.readBandwidthGBs = r.readBandwidthGBs;
    return r;
  }

  async dispose(): Promise<void> {
    if (!this.ctx) return;
    this.dropPlans();
    this.ctx.dispose();
    this.ctx = undefined;
    this.kv = undefined;
  }
}

/** CANOPY_CUDA_TINY_TOKENS: the tiny-tile limit in visible tokens (0 turns the tile off), else TINY_UNIT_TOKENS. */
export function tinyUnitTokensFrom(env: string | undefined): number {
  if (env === undefined || env === '') return TINY_UNIT_TOKENS;
  const n = Number(env);
  if (!/^\d+$/.test(env.trim()) || !Number.isSafeInteger(n)) {
    throw new CanopyError('bad-option', `CANOPY_CUDA_TINY_TOKENS must be a whole number of KV tokens (0 turns the tiny tile off), got ${JSON.stringify(env)}`);
  }
  return n;
}

/** The wgmma setting: the option, else CANOPY_CUDA_WGMMA (1 / 0), else undefined (per plan). */
function wgmmaFrom(options?: CudaCreateOptions): boolean | undefined {
  if (options?.wgmma !== undefined) {
    if (typeof options.wgmma !== 'boolean') throw new CanopyError('bad-option', `CUDA backend: wgmma must be true, false or undefined, got '${String(options.wgmma)}'`);
    return options.wgmma;
  }
  const env = process.env.CANOPY_CUDA_WGMMA;
  if (env === undefined || env === '') return undefined;
  if (env !== '0' && env !== '1') {
    throw new CanopyError('bad-option', `CANOPY_CUDA_WGMMA must be 1 (pipelined wgmma tile), 0 (mma.sync) or unset (chosen per plan), got ${JSON.stringify(env)}`);
  }
  return env === '1';
}

/** Create a CUDA backend; throws a CanopyError with the reason when CUDA is unavailable. */
export async function createCudaBackend(options?: CudaCreateOptions): Promise<CudaBackend> {
  const strategy = strategyFrom(options);
  const fusedFraction = fusedFractionFrom(options); // bad values fail here, before the GPU is looked for
  const wgmma = wgmmaFrom(options);
  const avail = await cudaAvailability();
  if (!avail.available) throw new CanopyError('backend-unavailable', `CUDA backend unavailable: ${avail.reason}`);
  const load = loadAddon();
  if (!load.ok) throw new CanopyError('backend-unavailable', `CUDA backend unavailable: ${load.reason}`);
  let ctx: NativeContext;
  try {
    ctx = new load.addon.Context(options?.device ?? 0);
  } catch (e) {
    throw new CanopyError('backend-unavailable', `CUDA backend unavailable: ${(e as Error).message}`);
  }
  const balance = options?.balance ?? process.env.CANOPY_CUDA_BALANCE === '1';
  return new CudaBackend(ctx, strategy, wgmma, balance, fusedFraction);
}

export const cudaBackendFactory: BackendFactory = {
  name: 'cuda',
  contractVersion: CONTRACT_VERSION,
  priority: 100,
  probe: cudaAvailability,
  create: (options?: BackendCreateOptions) => createCudaBackend(options as CudaCreateOptions | undefined),
};
