import {
  CanopyError,
  CONTRACT_VERSION,
  f16BitsToF32,
  gqaGroupSize,
  softmaxScale,
  validateKvCache,
  type AttentionBackend,
  type AttentionOutput,
  type BackendCapabilities,
  type DeviceProbe,
  type PagedKvCache,
  type Plan,
  type RunOptions,
  type TileShape,
  type TimingOptions,
  type GroupTimingOptions,
  type TimingResult,
} from '@canopy/core';
import type { Worker as NodeWorker } from 'node:worker_threads';
import { makeKernel, wasmScratchBytes, type KernelIo, type KernelKv, type KernelPlan } from './kernel.js';
import { kernelWasmModule } from './wasm.js';
import { workerSource, type FromWorker, type ToWorker } from './worker-source.js';

export interface CpuBackendOptions {
  /** Worker threads (default `os.availableParallelism()`); 0 runs every plan on the calling thread. */
  workers?: number;
  /** KV tokens per cache block of the kernel (default 64: K and V blocks of 32 KiB each at d128). */
  kvBlock?: number;
  /**
   * Plans with less work than this (multiply-adds: Σ rows × visible tokens × headDim) run on the
   * calling thread: below it a worker round trip costs more than the work. Default 2^18; 0 sends
   * every plan to the workers.
   */
  inlineBelow?: number;
  /** Prepared plans kept (per Plan object; plans are treated as immutable). Default 8. */
  planCacheSize?: number;
  /**
   * Use the WebAssembly SIMD inner loops (default true where WebAssembly SIMD and shared memory
   * exist, the head dim is a multiple of 16 and the f32 pools fit a 4 GiB wasm memory); false:
   * plain JavaScript loops.
   */
  simd?: boolean;
  /** Rows (queries × GQA group) per SIMD pass; bounds the per-thread scratch. Default 128. */
  rowsMax?: number;
}

/**
 * Largest shared wasm memory the SIMD path allocates (pools + scratch): 65,535 pages, just under
 * the 4 GiB of wasm32; above it, JavaScript loops. Offsets past 2^31 wrap to negative i32 values
 * in JavaScript and are read back as the same unsigned addresses by wasm (checked by hand with
 * f16 pools decoding to 2.3 GB, against referenceAttention; too slow for the unit tests).
 */
const WASM_MAX_BYTES = 65535 * 65536;

/** Head dims the kernel is tested with; any multiple of 4 works. */
export const CPU_HEAD_DIMS = [16, 32, 64, 80, 96, 128, 256];

/**
 * The tile menu: the CPU kernel computes any number of rows against a KV block, so a tile here
 * only tells planners how to pack: big row counts are welcome (they reuse each K/V block more).
 */
export const CPU_TILE_MENU: TileShape[] = [
  { rows: 1, kvBlock: 64 },
  { rows: 16, kvBlock: 64 },
  { rows: 64, kvBlock: 64 },
  { rows: 256, kvBlock: 64 },
];

/**
 * Largest K (or V) pool accepted, in bytes of the cache's dtype (1 GiB). Pools are converted to f32
 * in a SharedArrayBuffer, so an f16 pool of 1 GiB takes 2 GiB here; element offsets stay int32.
 */
export const CPU_MAX_KV_POOL_BYTES = 2 ** 30;

/** Capabilities for a given worker count (what `create()` reports; the static part is the same on every machine). */
export function cpuCapabilities(parallelUnits = 1): BackendCapabilities {
  return {
    kvDtypes: ['f16', 'f32'],
    headDims: [...CPU_HEAD_DIMS],
    tileMenu: CPU_TILE_MENU.map((t) => ({ ...t })),
    maxKvPoolBytes: CPU_MAX_KV_POOL_BYTES,
    masks: ['none', 'causal'],
    gpuTimers: false,
    parallelUnits,
  };
}

/** The static capabilities (parallelUnits 1: the real count is the worker count of a created backend). */
export const CPU_CAPABILITIES: BackendCapabilities = cpuCapabilities(1);

/** Fields a created backend sets from the machine (read by the capabilities-table generator). */
export const CPU_CAPABILITY_NOTES: Partial<Record<keyof BackendCapabilities, string>> = {
  parallelUnits: 'the worker count: `os.availableParallelism()` unless `workers` is given',
};

interface Prepared {
  id: number;
  kp: KernelPlan;
  io: KernelIo;
  units: Int32Array;
  /** Work in multiply-adds, for the inline decision. */
  work: number;
  needsMerge: boolean;
  /** Per worker: unit list and merge query range. */
  parts: Array<{ units: Int32Array; qBegin: number; qEnd: number }>;
  /** Workers that have this plan loaded. */
  loaded: boolean;
}

interface WorkerSlot {
  w: NodeWorker;
  pending: Map<number, { resolve: () => void; reject: (e: Error) => void }>;
  alive: boolean;
}

let compiled: WebAssembly.Module | null | undefined;
/** Compiled once per process; null where WebAssembly SIMD is unavailable. */
function wasmModule(): WebAssembly.Module | undefined {
  if (compiled === undefined) compiled = kernelWasmModule() ?? null;
  return compiled ?? undefined;
}

/** Whether this runtime runs the SIMD inner loops (WebAssembly SIMD + shared memory). */
export function cpuSimdAvailable(): boolean {
  return wasmModule() !== undefined;
}

let f16Table: Float32Array | undefined;
/** f16 bit pattern → f32, all 65536 of them: conversion becomes one table load per element. */
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

function sharedF32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(Math.max(1, n) * 4), 0, n);
}

function sharedI32(src: ArrayLike<number>): Int32Array {
  const a = new Int32Array(new SharedArrayBuffer(Math.max(1, src.length) * 4), 0, src.length);
  a.set(src);
  return a;
}

const fail = (code: string, message: string): never => {
  throw new CanopyError(code, `cpu: ${message}`);
};

/**
 * CPU backend: worker threads share the f32 KV pools (SharedArrayBuffer) and execute a plan's
 * (work item, KV head range) units, balanced by cost; partial states of split queries are merged by the
 * workers too. Node-only (node:worker_threads, loaded lazily so importing the package elsewhere
 * does not fail).
 */
export class CpuBackend implements AttentionBackend {
  readonly name = 'cpu';
  readonly contractVersion = CONTRACT_VERSION;
  readonly capabilities: BackendCapabilities;
  readonly device: string;
  private readonly kernel = makeKernel();
  private readonly kvBlock: number;
  private readonly inlineBelow: number;
  private readonly planCacheSize: number;
  private readonly simd: boolean;
  private readonly rowsMax: number;
  private readonly workers: WorkerSlot[];
  private kv: (KernelKv & { cache: Pick<PagedKvCache, 'numPages' | 'pageSize' | 'numKvHeads' | 'headDim' | 'dtype'> }) | undefined;
  private readonly plans = new Map<Plan, Prepared>();
  private nextPlanId = 1;
  private seq = 1;
  private disposed = false;
  private broken: Error | undefined;
  /** Runs are serialized: per-plan buffers are reused between runs. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(workers: WorkerSlot[], device: string, opts: CpuBackendOptions) {
    this.workers = workers;
    this.device = device;
    this.kvBlock = opts.kvBlock ?? 64;
    this.inlineBelow = opts.inlineBelow ?? 2 ** 18;
    this.planCacheSize = Math.max(1, opts.planCacheSize ?? 8);
    this.simd = opts.simd ?? true;
    this.rowsMax = opts.rowsMax ?? 128;
    this.capabilities = cpuCapabilities(Math.max(1, workers.length));
  }

  static async create(opts: CpuBackendOptions = {}): Promise<CpuBackend> {
    const kvBlock = opts.kvBlock ?? 64;
    if (!Number.isInteger(kvBlock) || kvBlock < 1) fail('bad-option', `kvBlock must be a positive integer, got ${opts.kvBlock}`);
    const rowsMax = opts.rowsMax ?? 128;
    if (!Number.isInteger(rowsMax) || rowsMax < 1) fail('bad-option', `rowsMax must be a positive integer, got ${opts.rowsMax}`);
    const os = await import('node:os');
    const n = opts.workers ?? (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
    if (!Number.isInteger(n) || n < 0) fail('bad-option', `workers must be a non-negative integer, got ${opts.workers}`);
    const slots: WorkerSlot[] = [];
    if (n > 0) {
      const { Worker } = await import('node:worker_threads');
      const src = workerSource();
      for (let i = 0; i < n; i++) {
        const w = new Worker(src, { eval: true, name: `canopy-cpu-${i}` });
        const slot: WorkerSlot = { w, pending: new Map(), alive: true };
        w.on('message', (m: FromWorker) => {
          const p = slot.pending.get(m.seq);
          if (!p) return;
          slot.pending.delete(m.seq);
          if (m.type === 'done') p.resolve();
          else p.reject(new CanopyError('worker-failed', `cpu: worker ${i} failed: ${m.message}`));
          if (slot.pending.size === 0) w.unref();
        });
        const die = (why: string) => {
          slot.alive = false;
          for (const p of slot.pending.values()) p.reject(new CanopyError('worker-failed', `cpu: worker ${i} ${why}`));
          slot.pending.clear();
        };
        w.on('error', (e) => die(`crashed: ${e.message}`));
        w.on('exit', (code) => die(`exited (code ${code})`));
        // idle workers must not keep the process alive; a worker is ref'd while it has work
        w.unref();
        slots.push(slot);
      }
    }
    const cpus = os.cpus();
    const model = cpus[0]?.model?.trim() || 'unknown CPU';
    const simd = (opts.simd ?? true) && cpuSimdAvailable();
    const device = `CPU: ${model}, ${cpus.length} logical cores, ${n} worker thread${n === 1 ? '' : 's'} (${simd ? 'WebAssembly SIMD' : 'JavaScript'} f32)`;
    return new CpuBackend(slots, device, opts);
  }

  /** Worker threads still running (0 after dispose). */
  get liveWorkers(): number {
    return this.workers.filter((s) => s.alive).length;
  }

  /** Thread ids of the workers (for tests and diagnostics). */
  get workerThreadIds(): number[] {
    return this.workers.map((s) => s.w.threadId);
  }

  private check(): void {
    if (this.disposed) fail('disposed', 'backend used after dispose()');
    if (this.broken) throw this.broken;
  }

  private send(i: number, msg: ToWorker & { seq: number }): Promise<void> {
    const slot = this.workers[i];
    if (!slot.alive) return Promise.reject(new CanopyError('worker-failed', `cpu: worker ${i} is not running`));
    return new Promise<void>((resolve, reject) => {
      slot.pending.set(msg.seq, { resolve, reject });
      slot.w.ref();
      slot.w.postMessage(msg);
    });
  }

  private async all(make: (i: number, seq: number) => ToWorker & { seq: number }): Promise<void> {
    try {
      await Promise.all(this.workers.map((_, i) => this.send(i, make(i, this.seq++))));
    } catch (e) {
      // a failed worker leaves shared buffers half written; refuse further runs
      this.broken = e as Error;
      throw e;
    }
  }

  /** Copies the pools (f16 decoded) into shared f32 memory: the caller may reuse its arrays afterwards. */
  async setKvCache(cache: PagedKvCache): Promise<void> {
    return this.serial(async () => {
      this.check();
      validateKvCache(cache);
      const n = cache.numPages * cache.pageSize * cache.numKvHeads * cache.headDim;
      const bytes = n * (cache.dtype === 'f16' ? 2 : 4);
      if (bytes > CPU_MAX_KV_POOL_BYTES) {
        fail('kv-too-large', `a KV pool of ${bytes} bytes exceeds maxKvPoolBytes ${CPU_MAX_KV_POOL_BYTES}`);
      }
      // SIMD path: pools live in a shared wasm memory after one scratch region per thread
      // (slot 0: the calling thread, slot i + 1: worker i)
      const module = this.simd && cache.headDim % 16 === 0 ? wasmModule() : undefined;
      const scratch = wasmScratchBytes(this.rowsMax, cache.headDim, this.kvBlock);
      const kOff = scratch * (this.workers.length + 1);
      const total = kOff + 2 * n * 4;
      let k: Float32Array;
      let v: Float32Array;
      let wasm: { module: WebAssembly.Module; memory: WebAssembly.Memory } | undefined;
      if (module && total <= WASM_MAX_BYTES) {
        const pages = Math.ceil(total / 65536);
        const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
        k = new Float32Array(memory.buffer, kOff, n);
        v = new Float32Array(memory.buffer, kOff + n * 4, n);
        wasm = { module, memory };
      } else {
        k = sharedF32(n);
        v = sharedF32(n);
      }
      if (cache.dtype === 'f16') {
        const lut = f16Lut();
        const sk = cache.k as Uint16Array;
        const sv = cache.v as Uint16Array;
        for (let e = 0; e < n; e++) {
          k[e] = lut[sk[e]];
          v[e] = lut[sv[e]];
        }
      } else {
        k.set((cache.k as Float32Array).subarray(0, n));
        v.set((cache.v as Float32Array).subarray(0, n));
      }
      const wasmFor = (slot: number) =>
        wasm && { ...wasm, kOff, vOff: kOff + n * 4, scratchOff: scratch * slot, rowsMax: this.rowsMax, kvBlock: this.kvBlock };
      // prepared plans hold token offsets computed for the old geometry
      this.dropPlans();
      this.kv = {
        k,
        v,
        wasm: wasmFor(0),
        cache: { numPages: cache.numPages, pageSize: cache.pageSize, numKvHeads: cache.numKvHeads, headDim: cache.headDim, dtype: cache.dtype },
      };
      if (this.workers.length > 0) {
        await this.all((i, seq) => ({ type: 'kv', seq, k, v, wasm: wasmFor(i + 1) }));
      }
    });
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const r = this.queue.then(f, f);
    this.queue = r.catch(() => undefined);
    return r;
  }

  private dropPlans(): void {
    for (const p of this.plans.values()) {
      if (p.loaded) this.workers.forEach((s) => s.alive && s.w.postMessage({ type: 'drop', id: p.id } satisfies ToWorker));
    }
    this.plans.clear();
  }

  /** Flatten a plan for the kernel, check it against the cache, split its units over the workers. */
  private prepare(plan: Plan): Prepared {
    const kv = this.kv!;
    const cache = kv.cache;
    const cfg = plan.config;
    if (!cfg) fail('bad-plan', 'plan.config is missing');
    if (cfg.numKvHeads !== cache.numKvHeads || cfg.headDim !== cache.headDim) {
      fail('shape-mismatch', `plan is for ${cfg.numKvHeads} KV heads × ${cfg.headDim} dims, the KV cache holds ${cache.numKvHeads} × ${cache.headDim}`);
    }
    const H = cfg.numQoHeads;
    const HK = cfg.numKvHeads;
    const D = cfg.headDim;
    const G = gqaGroupSize(cfg);
    const ni = plan.numItems;
    const nq = plan.numQueries;
    const np = plan.numPartials;
    const P = cache.pageSize;
    // token offsets per item
    const tokBegin = new Int32Array(ni + 1);
    let total = 0;
    for (let i = 0; i < ni; i++) {
      tokBegin[i] = total;
      for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) total += plan.segTokens[s];
    }
    tokBegin[ni] = total;
    const tokBase = new Int32Array(new SharedArrayBuffer(Math.max(1, total) * 4), 0, total);
    let k = 0;
    for (let i = 0; i < ni; i++) {
      for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) {
        const page = plan.segPage[s];
        const slot0 = plan.segSlot[s];
        const n = plan.segTokens[s];
        if (page < 0 || page >= cache.numPages) fail('page-out-of-range', `work item ${i}: page id ${page} out of range [0, ${cache.numPages})`);
        if (slot0 < 0 || n < 0 || slot0 + n > P) fail('bad-plan', `work item ${i}: segment ${s} covers slots [${slot0}, ${slot0 + n}) of a ${P}-slot page`);
        for (let j = 0; j < n; j++) tokBase[k++] = (page * P + slot0 + j) * HK * D;
      }
    }
    // partial slots that are the only slot of their query are written straight into the output
    const slotDirect = new Int32Array(Math.max(np, 0)).fill(-1);
    let needsMerge = false;
    for (let q = 0; q < nq; q++) {
      const b = plan.mergeBegin[q];
      const e = plan.mergeBegin[q + 1];
      for (let x = b; x < e; x++) {
        const s = plan.mergeSlots[x];
        if (s < 0 || s >= np) fail('bad-plan', `query ${q} merges partial slot ${s}, outside [0, ${np})`);
      }
      if (e - b === 1) slotDirect[plan.mergeSlots[b]] = q;
      else needsMerge = true;
    }
    // work of each item per KV head: rows × visible tokens × D
    const headCost = new Float64Array(ni);
    let work = 0;
    for (let i = 0; i < ni; i++) {
      const T = tokBegin[i + 1] - tokBegin[i];
      let vis = 0;
      for (let x = plan.itemQueryBegin[i]; x < plan.itemQueryBegin[i + 1]; x++) {
        const q = plan.itemQueries[x];
        if (q < 0 || q >= nq) fail('bad-plan', `work item ${i} lists query ${q}, outside [0, ${nq})`);
        const slot = plan.itemPartialBase[i] + (x - plan.itemQueryBegin[i]);
        if (slot < 0 || slot >= np) fail('bad-plan', `work item ${i} writes partial slot ${slot}, outside [0, ${np})`);
        const d = slotDirect[slot];
        if (d >= 0 && d !== q) fail('bad-plan', `partial slot ${slot} (work item ${i}, query ${q}) is merged into query ${d}`);
        vis += Math.max(0, Math.min(T, plan.queryKvLimit[q] - plan.itemPos[i]));
      }
      headCost[i] = vis * G * D;
      work += headCost[i] * HK;
    }
    // Units: (item, range of KV heads). All heads of an item together stream its tokens in memory
    // order; an item heavier than its share of a worker is cut into head ranges so the workers
    // can balance (one head per unit at most).
    const W = this.workers.length;
    const target = W > 0 ? work / (W * 8) : Infinity;
    const unitList: number[] = [];
    const costs: number[] = [];
    for (let i = 0; i < ni; i++) {
      const per = Math.max(1, Math.min(HK, Math.floor(target / Math.max(1, headCost[i]))));
      const groups = Math.ceil(HK / per);
      for (let g = 0; g < groups; g++) {
        const h0 = Math.floor((g * HK) / groups);
        const h1 = Math.floor(((g + 1) * HK) / groups);
        unitList.push(i, h0, h1);
        costs.push((headCost[i] + 64 * D) * (h1 - h0));
      }
    }
    const units = Int32Array.from(unitList);
    const parts: Prepared['parts'] = [];
    if (W > 0) {
      // longest processing time first: biggest unit to the least loaded worker
      const order = costs.map((_, u) => u).sort((a, b) => costs[b] - costs[a]);
      const load = new Float64Array(W);
      const lists: number[][] = Array.from({ length: W }, () => []);
      for (const u of order) {
        let best = 0;
        for (let w = 1; w < W; w++) if (load[w] < load[best]) best = w;
        load[best] += costs[u];
        lists[best].push(u);
      }
      // merge work split into contiguous query ranges of similar slot counts
      const mergeTotal = plan.mergeBegin[nq] - plan.mergeBegin[0];
      let q = 0;
      for (let w = 0; w < W; w++) {
        const qb = q;
        const tgt = plan.mergeBegin[0] + (mergeTotal * (w + 1)) / W;
        while (q < nq && (w === W - 1 || plan.mergeBegin[q + 1] <= tgt)) q++;
        const list = lists[w].sort((a, b) => a - b); // item order: neighbouring pages together
        const wu = new Int32Array(new SharedArrayBuffer(Math.max(1, list.length * 12)), 0, list.length * 3);
        list.forEach((u, j) => {
          wu[3 * j] = units[3 * u];
          wu[3 * j + 1] = units[3 * u + 1];
          wu[3 * j + 2] = units[3 * u + 2];
        });
        parts.push({ units: wu, qBegin: qb, qEnd: w === W - 1 ? nq : q });
      }
    }
    const kp: KernelPlan = {
      numQoHeads: H,
      numKvHeads: HK,
      headDim: D,
      group: G,
      scale: softmaxScale(cfg),
      kvBlock: this.kvBlock,
      numQueries: nq,
      queryKvLimit: sharedI32(plan.queryKvLimit),
      itemPos: sharedI32(plan.itemPos),
      itemQueryBegin: sharedI32(plan.itemQueryBegin),
      itemQueries: sharedI32(plan.itemQueries),
      itemPartialBase: sharedI32(plan.itemPartialBase),
      tokBegin: sharedI32(tokBegin),
      tokBase,
      slotDirect: sharedI32(slotDirect),
      mergeBegin: sharedI32(plan.mergeBegin),
      mergeSlots: sharedI32(plan.mergeSlots),
    };
    const io: KernelIo = {
      queries: sharedF32(nq * H * D),
      partO: sharedF32(np * H * D),
      partLse: sharedF32(np * H),
      out: sharedF32(nq * H * D),
      lse: sharedF32(nq * H),
    };
    return { id: this.nextPlanId++, kp, io, units, work, needsMerge, parts, loaded: false };
  }

  private getPrepared(plan: Plan): Prepared {
    let p = this.plans.get(plan);
    if (p) {
      // most recently used last
      this.plans.delete(plan);
      this.plans.set(plan, p);
      return p;
    }
    p = this.prepare(plan);
    this.plans.set(plan, p);
    while (this.plans.size > this.planCacheSize) {
      const [oldPlan, old] = this.plans.entries().next().value as [Plan, Prepared];
      this.plans.delete(oldPlan);
      if (old.loaded) this.workers.forEach((s) => s.alive && s.w.postMessage({ type: 'drop', id: old.id } satisfies ToWorker));
    }
    return p;
  }

  /** Execute; results stay in the plan's shared buffers. */
  private async execute(plan: Plan, queries: Float32Array): Promise<Prepared> {
    this.check();
    const kv = this.kv;
    if (!kv) return fail('no-kv', 'run: call setKvCache() first');
    if (!plan || plan.version !== CONTRACT_VERSION) fail('bad-plan', `plan.version ${plan?.version} ≠ contract version ${CONTRACT_VERSION}`);
    const cfg = plan.config;
    const want = plan.numQueries * (cfg?.numQoHeads ?? 0) * (cfg?.headDim ?? 0);
    if (!(queries instanceof Float32Array) || queries.length !== want) {
      fail('shape-mismatch', `queries have ${queries?.length} values, the plan needs [${plan.numQueries}, ${cfg?.numQoHeads}, ${cfg?.headDim}]`);
    }
    const p = this.getPrepared(plan);
    p.io.queries.set(queries);
    if (this.workers.length === 0 || p.work < this.inlineBelow) {
      this.kernel.runUnits(p.kp, kv, p.io, p.units, 0, p.units.length / 3);
      this.kernel.mergeQueries(p.kp, p.io, 0, p.kp.numQueries);
      return p;
    }
    if (!p.loaded) {
      await this.all((i, seq) => ({ type: 'plan', seq, id: p.id, plan: p.kp, io: p.io, units: p.parts[i].units, qBegin: p.parts[i].qBegin, qEnd: p.parts[i].qEnd }));
      p.loaded = true;
    }
    await this.all((_, seq) => ({ type: 'run', seq, id: p.id }));
    if (p.needsMerge) await this.all((_, seq) => ({ type: 'merge', seq, id: p.id }));
    return p;
  }

  /** Returns fresh arrays (copies of the shared output buffers). */
  async run(plan: Plan, queries: Float32Array, options: RunOptions = {}): Promise<AttentionOutput> {
    return this.serial(async () => {
      const t0 = performance.now();
      const p = await this.execute(plan, queries);
      const res: AttentionOutput = { out: p.io.out.slice(), lse: p.io.lse.slice() };
      if (options.timing) res.deviceTimeUs = (performance.now() - t0) * 1000;
      return res;
    });
  }

  /** Wall-clock times of `iters` runs after `warmup`, without copying results out. */
  async time(plan: Plan, queries: Float32Array, options: TimingOptions): Promise<TimingResult> {
    return this.timeGroup([plan], [queries], { ...options, mode: 'serial' });
  }

  /** Several plans as one step: they run one after another in both modes (the workers already
   * share every plan's items; there is nothing left to overlap). */
  async timeGroup(plans: Plan[], queries: Float32Array[], options: GroupTimingOptions): Promise<TimingResult> {
    if (plans.length === 0 || plans.length !== queries.length) {
      throw new CanopyError('bad-option', `CPU backend: timeGroup needs one query tensor per plan and at least one plan (got ${plans.length} plans, ${queries.length} query tensors)`);
    }
    return this.serial(async () => {
      const once = async () => {
        for (let p = 0; p < plans.length; p++) await this.execute(plans[p], queries[p]);
      };
      for (let i = 0; i < options.warmup; i++) await once();
      const timesUs = new Float64Array(options.iters);
      for (let i = 0; i < options.iters; i++) {
        const t0 = performance.now();
        await once();
        timesUs[i] = (performance.now() - t0) * 1000;
      }
      return { timesUs, clock: 'wall' as const };
    });
  }

  /**
   * Ceilings for the bench's roofline, measured on the calling thread with the kernel's own code:
   * read bandwidth = one f32x4 streaming pass over 64 MiB (best of 4; one thread, so a lower
   * bound on what all workers can pull); arithmetic = the SIMD score loop (qk, 2 FLOP per
   * multiply-add) on a cache-resident block, times the worker count.
   */
  async probe(): Promise<DeviceProbe> {
    this.check();
    const module = wasmModule();
    if (!module) return {};
    const bytes = 64 << 20;
    const memory = new WebAssembly.Memory({ initial: bytes / 65536 + 64, maximum: bytes / 65536 + 64, shared: true });
    const ex = new WebAssembly.Instance(module, { env: { mem: memory } }).exports as unknown as {
      qk: (...a: number[]) => void;
      stream: (ptr: number, bytes: number) => number;
    };
    const f32 = new Float32Array(memory.buffer);
    for (let i = 0; i < f32.length; i += 1024) f32[i] = 1; // touch every page
    let best = Infinity;
    for (let pass = 0; pass < 5; pass++) {
      const t0 = performance.now();
      ex.stream(64 << 10, bytes);
      if (pass > 0) best = Math.min(best, performance.now() - t0);
    }
    // qk: 128 rows × 64 tokens × d128 in the first 4 MiB (q at 0, K block at 1 MiB)
    const rows = 128;
    const nb = 64;
    const D = 128;
    const tok = new Int32Array(memory.buffer, 512 << 10, nb);
    for (let t = 0; t < nb; t++) tok[t] = t * D * 4;
    const run = () => ex.qk(rows, D * 4, nb, 512 << 10, 0, 600 << 10, nb * 4, 1 << 20);
    run();
    let bestF = Infinity;
    const reps = 50;
    for (let pass = 0; pass < 4; pass++) {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) run();
      bestF = Math.min(bestF, performance.now() - t0);
    }
    const flops = 2 * rows * nb * D * reps;
    const units = Math.max(1, this.workers.length);
    return {
      readBandwidthGBs: bytes / (best * 1e6),
      peakTflops: (flops / (bestF * 1e9)) * units,
      peakUnits: `WebAssembly f32x4 mul+add (score loop) × ${units} thread${units === 1 ? '' : 's'}`,
    };
  }

  /** Terminates the worker threads and releases the pools. Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.plans.clear();
    this.kv = undefined;
    await Promise.all(this.workers.map((s) => (s.alive ? s.w.terminate() : Promise.resolve(0))));
    for (const s of this.workers) s.alive = false;
  }
}
