import {
  CanopyError,
  CONTRACT_VERSION,
  softmaxScale,
  type AttentionBackend,
  type AttentionOutput,
  type BackendCapabilities,
  type DeviceProbe,
  type GroupTimingOptions,
  type PagedKvCache,
  type Plan,
  type RunOptions,
  type TimingOptions,
  type TimingResult,
} from '@canopy/core';
import { acquireDevice, type AcquireOptions, type DeviceInfo } from './device.js';
import { prepareLayout, type PreparedLayout, type SplitPolicy } from './prepare.js';
import { WGSL } from './shaders.js';
import { BufferUsage, MapMode } from './usage.js';
import { specialize } from './specialize.js';
import { rolesModule, type RoleBody } from './roles.js';
import {
  BLOCKED_VARIANTS,
  BLOCKED2_VARIANTS,
  blockedShape,
  blocked2Shape,
  decodeShape,
  CPU_VARIANTS,
  DEFAULT_VARIANTS,
  SUPPORTED_HEAD_DIMS,
  variantShape,
  variantTiles,
  type BlockedShape,
  type Blocked2Shape,
  type DecodeShape,
  type KernelVariant,
  type VariantShape,
} from './variants.js';

export interface WebGpuBackendOptions extends AcquireOptions {
  /** Kernel menu override (benchmarks sweep it). */
  variants?: KernelVariant[];
  /** Parallel units for the split heuristic and capabilities (default: a guess from the adapter). */
  parallelUnits?: number;
  /** Split-KV policy override. */
  split?: Partial<SplitPolicy>;
  /**
   * Row blocks (0–1, default: off): an item whose rows would leave more than this share of its
   * variant's rows empty runs as more row blocks of a smaller variant (32 rows on the 64-row tile:
   * two 16-row blocks), trading KV re-reads for f32 FMAs not spent on padding rows.
   */
  maxRowPadding?: number;
  /** Plans kept uploaded (by object identity) between runs. */
  planCacheSize?: number;
  /**
   * 'shared': KV blocks through workgroup memory, read once per unit (GPUs). 'direct': KV read
   * straight from the pools, no barriers (default on CPU adapters such as lavapipe, whose shader
   * compiler takes tens of seconds on the barrier-heavy kernel and gains nothing from it).
   */
  tiling?: 'shared' | 'direct';
  /**
   * How a plan's attention work units are dispatched. 'per-variant' (default): one dispatch per
   * kernel variant over its units. 'roles': all units in one dispatch whose workgroups pick their
   * variant from the unit ranges (attention_roles.wgsl), so prefill-like and decode-like units of
   * a hybrid batch share one launch; used when the variants have one workgroup size (the default
   * menus do), else per-variant. Default from the CANOPY_WEBGPU_DISPATCH environment variable.
   */
  dispatch?: 'per-variant' | 'roles';
  /**
   * Run many-row (shared-prefix) tiles on the register-blocked kernel instead of the shared-tiling
   * one (menu DEFAULT_VARIANTS). Default from the CANOPY_WEBGPU_BLOCKED environment variable
   * ('0' off, '1' or '2' on with that `blockedMenu`), else on for GPU adapters and off for CPU ones
   * (whose default menu is CPU_VARIANTS anyway; this picks the menu when `tiling` is given).
   * Ignored when `variants` is given (mark variants `blocked` there).
   */
  blocked?: boolean;
  /**
   * Which blocked menu: 2 (default) BLOCKED2_VARIANTS (decode kernel for 4-row tiles, blocked
   * layout 2 for 16/64 rows), 1 BLOCKED_VARIANTS (the session-3 menu: blocked layout 1, the
   * `direct` 4-row variant). Default from CANOPY_WEBGPU_BLOCKED ('1' or '2'), else 2.
   */
  blockedMenu?: 1 | 2;
}

interface Dispatch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  x: number;
  y: number;
  /** Merge dispatches read what the attention dispatches wrote. */
  merge?: boolean;
  /** The pipeline's cache key (reports: which kernel ran). */
  key: string;
}

/** Timestamp writes of a pass: at its beginning, its end, or both (query indices). */
interface PassTimestamps {
  set: GPUQuerySet;
  begin?: number;
  end?: number;
}

const PARAMS_STRIDE = 256; // minUniformBufferOffsetAlignment upper bound
const LOG2E = 1.4426950408889634;

interface KvState {
  cache: PagedKvCache;
  k: GPUBuffer;
  v: GPUBuffer;
}

interface Prepared {
  layout: PreparedLayout;
  buffers: GPUBuffer[];
  queries: GPUBuffer;
  out: GPUBuffer;
  readback: GPUBuffer;
  dispatches: Dispatch[];
  outBytes: number;
  lseBytes: number;
}

/**
 * WebGPU backend: WGSL kernels that execute any Canopy plan. One queue submission per run holds
 * every dispatch: one per kernel variant over all its work units (workgroup id → unit through the
 * plan buffer), then one merge dispatch for the queries with several partials.
 */
export class WebGpuBackend implements AttentionBackend {
  readonly name = 'webgpu';
  readonly contractVersion = CONTRACT_VERSION;
  readonly capabilities: BackendCapabilities;
  readonly device: string;
  readonly gpu: DeviceInfo;
  private readonly variants: KernelVariant[];
  private readonly policy: SplitPolicy;
  private readonly maxRowPadding: number | undefined;
  private readonly planCacheSize: number;
  private kv: KvState | undefined;
  private readonly plans = new Map<Plan, Prepared>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly pipelineKeys = new Map<GPUComputePipeline, string>();
  private readonly live = new Set<GPUBuffer>();
  private disposed = false;
  private readonly timestamps: boolean;
  readonly tiling: 'shared' | 'direct';
  readonly dispatch: 'per-variant' | 'roles';
  /** Whether the GPU menu is a blocked one (option `blocked` / CANOPY_WEBGPU_BLOCKED). */
  readonly blocked: boolean;
  /** Which blocked menu: 2 BLOCKED2_VARIANTS, 1 BLOCKED_VARIANTS (option `blockedMenu` / CANOPY_WEBGPU_BLOCKED). */
  readonly blockedMenu: 1 | 2;

  private constructor(info: DeviceInfo, opts: WebGpuBackendOptions) {
    this.gpu = info;
    this.device = info.description;
    // CPU adapters get one variant: lavapipe spends tens of seconds on the first dispatch of each
    // new pipeline (see README), and workgroup-memory tiling buys nothing on a CPU.
    const envBlocked = typeof process !== 'undefined' ? process.env?.CANOPY_WEBGPU_BLOCKED : undefined;
    if (envBlocked !== undefined && envBlocked !== '' && envBlocked !== '0' && envBlocked !== '1' && envBlocked !== '2') {
      throw new CanopyError('bad-option', `webgpu: CANOPY_WEBGPU_BLOCKED must be '0', '1' or '2', got ${JSON.stringify(envBlocked)}`);
    }
    if (opts.blockedMenu !== undefined && opts.blockedMenu !== 1 && opts.blockedMenu !== 2) {
      throw new CanopyError('bad-option', `webgpu: blockedMenu must be 1 or 2, got ${JSON.stringify(opts.blockedMenu)}`);
    }
    // default on GPUs: faster on every shared-prefix workload on the H100 (README)
    this.blocked = opts.blocked ?? (envBlocked === '1' || envBlocked === '2' ? true : envBlocked === '0' ? false : !info.isCpu);
    // menu 2 (decode kernel, blocked layout 2): faster than menu 1 on W1–W5 on the H100 (README)
    this.blockedMenu = opts.blockedMenu ?? (envBlocked === '1' ? 1 : 2);
    const gpuMenu = this.blocked ? (this.blockedMenu === 1 ? BLOCKED_VARIANTS : BLOCKED2_VARIANTS) : DEFAULT_VARIANTS;
    this.variants = (opts.variants ?? (info.isCpu && opts.tiling === undefined ? CPU_VARIANTS : gpuMenu)).map((v) => ({ ...v }));
    const lim = info.device.limits;
    const units = opts.parallelUnits ?? guessParallelUnits(info);
    // H100 sweep (docs/benchmarks/webgpu-h100-*.json): 16 units per parallel unit and 32-token
    // minimum chunks beat 8 / 64 on W1–W2 and tie elsewhere
    this.policy = { targetUnits: units * 16, minChunk: 32, ...opts.split };
    if (opts.maxRowPadding !== undefined && !(opts.maxRowPadding >= 0 && opts.maxRowPadding < 1)) {
      throw new CanopyError('bad-option', `webgpu: maxRowPadding must be in [0, 1), got ${JSON.stringify(opts.maxRowPadding)}`);
    }
    this.maxRowPadding = opts.maxRowPadding;
    this.planCacheSize = opts.planCacheSize ?? 4;
    this.timestamps = info.features.has('timestamp-query');
    this.tiling = opts.tiling ?? (info.isCpu ? 'direct' : 'shared');
    const envDispatch = typeof process !== 'undefined' ? process.env?.CANOPY_WEBGPU_DISPATCH : undefined;
    const dispatch = opts.dispatch ?? (envDispatch || 'per-variant');
    if (dispatch !== 'per-variant' && dispatch !== 'roles') {
      throw new CanopyError('bad-option', `webgpu: dispatch must be 'per-variant' or 'roles', got ${JSON.stringify(dispatch)}${opts.dispatch ? '' : ' (from CANOPY_WEBGPU_DISPATCH)'}`);
    }
    this.dispatch = dispatch;
    this.capabilities = {
      kvDtypes: ['f16', 'f32'],
      headDims: SUPPORTED_HEAD_DIMS.filter((d) => this.variants.every((v) => this.fits(v, d))),
      tileMenu: variantTiles(this.variants),
      masks: ['none', 'causal'],
      gpuTimers: this.timestamps,
      parallelUnits: units,
      maxKvPoolBytes: Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize),
      readBandwidthGBs: info.isNvidia ? 3000 : 20,
    };
    info.device.lost.then((l) => {
      if (!this.disposed && l.reason !== 'destroyed') console.warn(`webgpu: device lost: ${l.message}`);
    });
  }

  static async create(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const info = await acquireDevice(opts);
    return new WebGpuBackend(info, opts);
  }

  private useSubgroupsFor(tpr: number): boolean {
    return this.gpu.features.has('subgroups') && this.gpu.subgroupMinSize >= tpr;
  }

  /**
   * The variant as it runs for a head dim on this device: KV blocks are halved until the
   * workgroup memory fits (d256 on 32 KiB devices), or undefined when nothing fits.
   */
  private fitted(v: KernelVariant, headDim: number): { shape: VariantShape; subgroups: boolean; direct: boolean; blocked?: BlockedShape; blocked2?: Blocked2Shape } | undefined {
    const lim = this.gpu.device.limits;
    if (v.blocked && v.blockedVersion === 2) {
      // layout 2: halve the KV block until the workgroup memory fits; else the shared-tiling kernel
      for (let kvBlock = v.kvBlock; kvBlock >= 4; kvBlock /= 2) {
        const bs = blocked2Shape(v.rows, kvBlock, headDim, this.useSubgroupsFor(kvBlock / 2), v.pvRowQuads);
        if (!bs) continue;
        if (bs.workgroupSize > lim.maxComputeInvocationsPerWorkgroup || bs.workgroupSize > lim.maxComputeWorkgroupSizeX) continue;
        if (bs.workgroupBytes > lim.maxComputeWorkgroupStorageSize) continue;
        const shape: VariantShape = { ...v, kvBlock, splits: 1, dimsPerThread: headDim, headDim, tpr: 1, workgroupSize: bs.workgroupSize, smemVec4: 0, workgroupBytes: bs.workgroupBytes };
        return { shape, subgroups: bs.subgroups, direct: false, blocked2: bs };
      }
      return this.fitted({ ...v, blocked: false, prefetch: true, direct: false }, headDim);
    }
    if (v.blocked) {
      // halve the KV block until the workgroup memory fits; else the shared-tiling kernel runs it
      for (let kvBlock = v.kvBlock; kvBlock >= 4; kvBlock /= 2) {
        const bs = blockedShape(v.rows, kvBlock, headDim, v.workgroupSize);
        if (!bs) continue;
        if (bs.workgroupSize > lim.maxComputeInvocationsPerWorkgroup || bs.workgroupSize > lim.maxComputeWorkgroupSizeX) continue;
        if (bs.workgroupBytes > lim.maxComputeWorkgroupStorageSize) continue;
        const shape: VariantShape = { ...v, kvBlock, splits: 1, dimsPerThread: headDim, headDim, tpr: 1, workgroupSize: bs.workgroupSize, smemVec4: 0, workgroupBytes: bs.workgroupBytes };
        return { shape, subgroups: false, direct: false, blocked: bs };
      }
      return this.fitted({ ...v, blocked: false, prefetch: true, direct: false }, headDim);
    }
    const direct = this.tiling === 'direct' || v.direct === true;
    const oneSplit = this.tiling === 'direct';
    // shrink the KV block first, then the token splits (whose combine area does not shrink)
    for (let splits = oneSplit ? 1 : v.splits; splits >= 1; splits /= 2) {
      for (let kvBlock = v.kvBlock; kvBlock >= splits && kvBlock % splits === 0; kvBlock /= 2) {
        let shape: VariantShape;
        let subgroups: boolean;
        try {
          const tpr = variantShape({ ...v, kvBlock, splits }, headDim, this.useSubgroupsFor(1), direct, oneSplit).tpr;
          subgroups = tpr > 1 && this.useSubgroupsFor(tpr);
          shape = variantShape({ ...v, kvBlock, splits }, headDim, subgroups, direct, oneSplit);
        } catch {
          return undefined;
        }
        if (shape.workgroupSize > lim.maxComputeInvocationsPerWorkgroup || shape.workgroupSize > lim.maxComputeWorkgroupSizeX) continue;
        if (shape.workgroupBytes <= lim.maxComputeWorkgroupStorageSize) return { shape, subgroups, direct };
      }
      if (splits % 2 !== 0) break;
    }
    return undefined;
  }

  private fits(v: KernelVariant, headDim: number): boolean {
    return this.fitted(v, headDim) !== undefined;
  }

  private check(): void {
    if (this.disposed) throw new CanopyError('disposed', 'webgpu: backend used after dispose()');
  }

  private createBuffer(size: number, usage: number, label: string): GPUBuffer {
    // Mapped at creation (zeros) so Dawn counts the buffer as initialized: its lazy clear on first
    // use took lavapipe close to a minute per new buffer set, on the first run of every plan.
    const b = this.gpu.device.createBuffer({ size: Math.max(16, Math.ceil(size / 16) * 16), usage, label, mappedAtCreation: true });
    b.unmap();
    this.live.add(b);
    return b;
  }

  private destroyBuffer(b: GPUBuffer): void {
    if (this.live.delete(b)) b.destroy();
  }

  /** Buffers this backend holds now (tests check dispose frees them all). */
  get liveBuffers(): number {
    return this.live.size;
  }

  async setKvCache(cache: PagedKvCache): Promise<void> {
    this.check();
    const { numPages, pageSize, numKvHeads, headDim, dtype } = cache;
    if (dtype !== 'f16' && dtype !== 'f32') throw new CanopyError('unsupported-dtype', `webgpu: KV dtype '${String(dtype)}' is not supported (f16, f32)`);
    if (!this.capabilities.headDims.includes(headDim)) {
      throw new CanopyError('unsupported-head-dim', `webgpu: head dim ${headDim} is not supported (supported: ${this.capabilities.headDims.join(', ')})`);
    }
    const elems = numPages * pageSize * numKvHeads * headDim;
    if (cache.k.length !== elems || cache.v.length !== elems) {
      throw new CanopyError('shape-mismatch', `webgpu: KV pools hold ${cache.k.length}/${cache.v.length} values, [${numPages}, ${pageSize}, ${numKvHeads}, ${headDim}] needs ${elems}`);
    }
    const wantArray = dtype === 'f16' ? Uint16Array : Float32Array;
    if (!(cache.k instanceof wantArray) || !(cache.v instanceof wantArray)) {
      throw new CanopyError('shape-mismatch', `webgpu: ${dtype} KV pools must be ${wantArray.name}s`);
    }
    const bytes = cache.k.byteLength;
    const limit = this.capabilities.maxKvPoolBytes ?? Infinity;
    if (bytes > limit) {
      throw new CanopyError(
        'kv-too-large',
        `webgpu: a KV pool of ${bytes} bytes exceeds this device's maxStorageBufferBindingSize/maxBufferSize of ${limit} bytes (${this.device}); use fewer pages per pool`,
      );
    }
    if (this.kv) {
      this.destroyBuffer(this.kv.k);
      this.destroyBuffer(this.kv.v);
      this.kv = undefined;
    }
    // the plan layouts do not depend on the KV contents, but their bind groups hold the old pools
    this.clearPlans();
    const usage = BufferUsage.STORAGE | BufferUsage.COPY_DST;
    const k = this.createBuffer(bytes, usage, 'canopy-kv-k');
    const v = this.createBuffer(bytes, usage, 'canopy-kv-v');
    this.upload(k, cache.k);
    this.upload(v, cache.v);
    this.kv = { cache, k, v };
    await this.gpu.device.queue.onSubmittedWorkDone();
  }

  private upload(dst: GPUBuffer, src: ArrayBufferView): void {
    const u8 = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    const CH = 64 << 20;
    for (let o = 0; o < u8.byteLength; o += CH) {
      const n = Math.min(CH, u8.byteLength - o);
      if (n % 4 === 0) writeBuf(this.gpu.device.queue, dst, o, u8, o, n);
      else {
        const pad = new Uint8Array(Math.ceil(n / 4) * 4);
        pad.set(u8.subarray(o, o + n));
        writeBuf(this.gpu.device.queue, dst, o, pad);
      }
    }
  }

  /** One variant's body as it runs for the cache's head dim: files, constants and pipeline key. */
  private variantBody(v: KernelVariant, D: number): RoleBody & { key: string; workgroupSize: number; blocked?: boolean } {
    if (v.decode) {
      const dtype = this.kv?.cache.dtype === 'f32' ? 'f32' : 'f16';
      const lim = this.gpu.device.limits;
      // the combine area grows with the lane groups: halve the workgroup until it fits (narrow
      // subgroups mean short lane groups, so many of them)
      let ds: DecodeShape | undefined;
      for (let wg = v.workgroupSize ?? 128; wg >= 1 && this.gpu.features.has('subgroups'); wg /= 2) {
        ds = decodeShape(v.rows, D, dtype, this.gpu.subgroupMinSize, wg, v.tokensPerLane);
        if (!ds || ds.workgroupBytes <= lim.maxComputeWorkgroupStorageSize) break;
      }
      if (ds && ds.workgroupSize <= lim.maxComputeInvocationsPerWorkgroup && ds.workgroupBytes <= lim.maxComputeWorkgroupStorageSize) {
        return {
          key: `decode/${v.rows}/${ds.workgroupSize}/${ds.tokensPerLane}/${ds.lanesPerToken}`,
          files: [WGSL.attentionDecode],
          constants: { WG: ds.workgroupSize, TT: ds.tokensPerLane, LPT: ds.lanesPerToken },
          redWords: 0,
          smemVec4: 0,
          subgroups: true,
          // no role body: per-variant dispatches (like the blocked kernel)
          blocked: true,
          workgroupSize: ds.workgroupSize,
        };
      }
      // no subgroups, or too many words per lane: the variant as given
      return this.variantBody({ ...v, decode: false, workgroupSize: undefined }, D);
    }
    const f = this.fitted(v, D);
    if (!f) throw new CanopyError('unsupported-head-dim', `webgpu: kernel rows ${v.rows} does not fit head dim ${D} on this device`);
    const { shape: s, subgroups: sg, direct } = f;
    if (f.blocked2) {
      const bs = f.blocked2;
      return {
        key: `blocked2/${bs.rows}/${bs.kvBlock}/${bs.workgroupSize}/${bs.pvRowQuads}/${bs.pvVec4}/${bs.subgroups}`,
        // the row reduction first: blocked_rows_subgroup.wgsl starts with its `enable` directive
        files: [bs.subgroups ? WGSL.blockedRowsSubgroup : WGSL.blockedRowsShared, WGSL.attentionBlocked2, WGSL.blockedKvStage],
        constants: { ROWS: bs.rows, KV_BLOCK: bs.kvBlock, WG: bs.workgroupSize, PV_RQ: bs.pvRowQuads, PV_D4: bs.pvVec4 },
        redWords: 0,
        smemVec4: 0,
        subgroups: bs.subgroups,
        blocked: true,
        workgroupSize: bs.workgroupSize,
      };
    }
    if (f.blocked) {
      const bs = f.blocked;
      return {
        key: `blocked/${bs.rows}/${bs.kvBlock}/${bs.workgroupSize}/${bs.qkTokens}/${bs.pvRowQuads}/${bs.pvVec4}`,
        files: [WGSL.attentionBlocked, WGSL.blockedKvStage],
        constants: { ROWS: bs.rows, KV_BLOCK: bs.kvBlock, WG: bs.workgroupSize, QK_ST: bs.qkTokens, PV_RQ: bs.pvRowQuads, PV_D4: bs.pvVec4 },
        redWords: 0,
        smemVec4: 0,
        subgroups: false,
        blocked: true,
        workgroupSize: bs.workgroupSize,
      };
    }
    const tile = direct ? 'direct' : v.prefetch ? 'prefetch' : 'shared';
    return {
      key: `${s.rows}/${s.kvBlock}/${s.splits}/${s.tpr}/${sg}/${tile}`,
      files: [sg ? WGSL.reduceSubgroup : WGSL.reduceShared, WGSL.attention, tile === 'direct' ? WGSL.tileDirect : tile === 'prefetch' ? WGSL.tilePrefetch : WGSL.tileShared],
      constants: { TPR: s.tpr, SPLITS: s.splits, ROWS: s.rows, WG: s.workgroupSize, KV_BLOCK: s.kvBlock, SMEM_VEC4: s.smemVec4 },
      redWords: sg || s.tpr === 1 ? 0 : s.workgroupSize * (s.kvBlock / s.splits),
      smemVec4: s.smemVec4,
      subgroups: sg,
      workgroupSize: s.workgroupSize,
    };
  }

  /**
   * Whether the variants can share one dispatch on this device for head dim D: one workgroup
   * size, and the shared workgroup memory (largest KV/combine area + reduction) within the limit.
   */
  private rolesFit(D: number): boolean {
    let bodies: ReturnType<WebGpuBackend['variantBody']>[];
    try {
      bodies = this.variants.map((v) => this.variantBody(v, D));
    } catch {
      return false;
    }
    const wg = bodies[0].workgroupSize;
    // the blocked kernel has its own workgroup arrays and no role body: per-variant dispatches then
    if (bodies.some((b) => b.blocked)) return false;
    if (bodies.some((b) => b.workgroupSize !== wg) || bodies.length > 8) return false;
    const bytes = Math.max(...bodies.map((b) => b.smemVec4)) * 16 + 4 + Math.max(0, ...bodies.map((b) => b.redWords)) * 4;
    return bytes <= this.gpu.device.limits.maxComputeWorkgroupStorageSize;
  }

  private pipeline(kind: 'attention' | 'merge' | 'roles', v: KernelVariant | undefined, plan: Plan): GPUComputePipeline {
    const kv = this.kv!;
    const D = kv.cache.headDim;
    const kvFile = kv.cache.dtype === 'f16' ? WGSL.kvF16 : WGSL.kvF32;
    let key: string;
    let code: string;
    if (kind === 'attention') {
      const b = this.variantBody(v!, D);
      key = `a/${D}/${kv.cache.dtype}/${b.key}`;
      const existing = this.pipelines.get(key);
      if (existing) return existing;
      // the reduction file first: reduce_subgroup.wgsl starts with its `enable` directive
      code = specialize([b.files[0], WGSL.attentionCommon, ...b.files.slice(1), kvFile], { HEAD_DIM: D, ...b.constants });
    } else if (kind === 'roles') {
      const bodies = this.variants.map((x) => this.variantBody(x, D));
      key = `r/${D}/${kv.cache.dtype}/${bodies.map((b) => b.key).join('+')}`;
      const existing = this.pipelines.get(key);
      if (existing) return existing;
      code = rolesModule([specialize([WGSL.attentionCommon], { HEAD_DIM: D }), kvFile], bodies, WGSL.attentionRoles, bodies[0].workgroupSize);
    } else {
      key = `m/${D}`;
      const existing = this.pipelines.get(key);
      if (existing) return existing;
      code = specialize([WGSL.merge], { HEAD_DIM: D });
    }
    const device = this.gpu.device;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code, label: key });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
    // compiled on first use and cached; errors surface on the run that needed the pipeline
    this.pendingErrors.push(
      device.popErrorScope().then((err) => (err ? new CanopyError('wgsl-error', `webgpu: pipeline ${key} failed: ${err.message}`) : undefined)),
    );
    this.pipelines.set(key, pipeline);
    this.pipelineKeys.set(pipeline, key);
    return pipeline;
  }

  private pendingErrors: Array<Promise<CanopyError | undefined>> = [];

  private async flushErrors(): Promise<void> {
    const errs = await Promise.all(this.pendingErrors.splice(0));
    const e = errs.find((x) => x);
    if (e) throw e;
  }

  private prepare(plan: Plan, queries: Float32Array): Prepared {
    const kv = this.kv;
    if (!kv) throw new CanopyError('no-kv', 'webgpu: call setKvCache() before run()');
    const cfg = plan.config;
    const D = kv.cache.headDim;
    if (!cfg || cfg.numKvHeads !== kv.cache.numKvHeads || cfg.headDim !== D) {
      throw new CanopyError('shape-mismatch', `webgpu: plan is for ${cfg?.numKvHeads} KV heads × ${cfg?.headDim} dims, the KV cache holds ${kv.cache.numKvHeads} × ${D}`);
    }
    if (cfg.kvDtype !== kv.cache.dtype) throw new CanopyError('shape-mismatch', `webgpu: plan says KV dtype ${cfg.kvDtype}, the KV cache holds ${kv.cache.dtype}`);
    if (cfg.numQoHeads % cfg.numKvHeads !== 0) throw new CanopyError('invalid-config', `webgpu: ${cfg.numQoHeads} query heads do not split over ${cfg.numKvHeads} KV heads`);
    const H = cfg.numQoHeads;
    if (queries.length !== plan.numQueries * H * D) {
      throw new CanopyError('shape-mismatch', `webgpu: queries have ${queries.length} values, the plan needs [${plan.numQueries}, ${H}, ${D}] = ${plan.numQueries * H * D}`);
    }
    const hit = this.plans.get(plan);
    if (hit) {
      // refresh LRU order
      this.plans.delete(plan);
      this.plans.set(plan, hit);
      return hit;
    }
    const layout = prepareLayout(plan, { numQoHeads: H, numKvHeads: cfg.numKvHeads, numPages: kv.cache.numPages, pageSize: kv.cache.pageSize }, this.variants, this.policy, this.maxRowPadding);
    const S = BufferUsage.STORAGE;
    const planBuf = this.createBuffer(layout.words.byteLength, S | BufferUsage.COPY_DST, 'canopy-plan');
    writeBuf(this.gpu.device.queue, planBuf, 0, layout.words);
    const nDisp = this.variants.length + 1;
    const params = this.createBuffer(nDisp * PARAMS_STRIDE, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'canopy-params');
    const qBuf = this.createBuffer(queries.byteLength, S | BufferUsage.COPY_DST, 'canopy-queries');
    // o then lse in one buffer each (see attention.wgsl)
    const partBuf = this.createBuffer(layout.numInternal * H * (D + 1) * 4, S, 'canopy-partials');
    const outBytes = plan.numQueries * H * D * 4;
    const lseBytes = plan.numQueries * H * 4;
    const outBuf = this.createBuffer(outBytes + lseBytes, S | BufferUsage.COPY_SRC, 'canopy-out');
    const readback = this.createBuffer(outBytes + lseBytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'canopy-readback');
    const partLseOffset = layout.numInternal * H * D;
    const outLseOffset = plan.numQueries * H * D;

    const pdata = new Uint32Array((nDisp * PARAMS_STRIDE) / 4);
    const dispatches: Prepared['dispatches'] = [];
    const maxX = this.gpu.device.limits.maxComputeWorkgroupsPerDimension;
    const entries = (p: GPUComputePipeline, slot: number, withKv: boolean): GPUBindGroup => {
      const e: GPUBindGroupEntry[] = [
        // attention Params (attention_common.wgsl) are 96 bytes with the role ranges, merge's 32
        { binding: 0, resource: { buffer: params, offset: slot * PARAMS_STRIDE, size: withKv ? 96 : 64 } },
        { binding: 1, resource: { buffer: planBuf } },
        { binding: 3, resource: { buffer: partBuf } },
        { binding: 5, resource: { buffer: outBuf } },
      ];
      if (withKv) e.push({ binding: 2, resource: { buffer: qBuf } }, { binding: 7, resource: { buffer: kv.k } }, { binding: 8, resource: { buffer: kv.v } });
      return this.gpu.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: e });
    };
    const attnParams = (slot: number, first: number, count: number, x: number): void => {
      const o = (slot * PARAMS_STRIDE) / 4;
      pdata.set([first, count, x, layout.offTok, layout.offItemQ, layout.offLimit, layout.offDirect, H / cfg.numKvHeads, H, cfg.numKvHeads], o);
      new Float32Array(pdata.buffer, (o + 10) * 4, 1)[0] = softmaxScale(cfg) * LOG2E;
      pdata[o + 11] = partLseOffset;
      pdata[o + 12] = outLseOffset;
      // roleEnd (one-dispatch mode): variant v runs the units below the end of its range
      layout.variantUnits.forEach(([f, c], v) => (pdata[o + 16 + v] = f + c));
    };
    if (this.dispatch === 'roles' && layout.numUnits > 0 && this.rolesFit(D)) {
      // every attention unit in one dispatch; variants are contiguous unit ranges (prepareLayout)
      const x = Math.min(layout.numUnits, maxX);
      const y = Math.ceil(layout.numUnits / x);
      attnParams(0, 0, layout.numUnits, x);
      const p = this.pipeline('roles', undefined, plan);
      dispatches.push({ pipeline: p, bindGroup: entries(p, 0, true), x, y, key: this.pipelineKeys.get(p) ?? '' });
    } else {
      for (let vi = 0; vi < this.variants.length; vi++) {
        const [first, count] = layout.variantUnits[vi];
        if (count === 0) continue;
        const x = Math.min(count, maxX);
        const y = Math.ceil(count / x);
        attnParams(vi, first, count, x);
        const p = this.pipeline('attention', this.variants[vi], plan);
        dispatches.push({ pipeline: p, bindGroup: entries(p, vi, true), x, y, key: this.pipelineKeys.get(p) ?? '' });
      }
    }
    if (layout.mergeCount > 0) {
      const n = layout.mergeCount * H;
      const x = Math.min(n, maxX);
      const y = Math.ceil(n / x);
      const slot = this.variants.length;
      pdata.set([layout.mergeCount, x, layout.offMergeQuery, layout.offMergeBegin, layout.offMergeList, H, partLseOffset, outLseOffset], (slot * PARAMS_STRIDE) / 4);
      const p = this.pipeline('merge', undefined, plan);
      dispatches.push({ pipeline: p, bindGroup: entries(p, slot, false), x, y, merge: true, key: this.pipelineKeys.get(p) ?? '' });
    }
    writeBuf(this.gpu.device.queue, params, 0, pdata);
    const prepared: Prepared = {
      layout,
      buffers: [planBuf, params, qBuf, partBuf, outBuf, readback],
      queries: qBuf,
      out: outBuf,
      readback,
      dispatches,
      outBytes,
      lseBytes,
    };
    this.plans.set(plan, prepared);
    while (this.plans.size > this.planCacheSize) {
      const [oldPlan, old] = this.plans.entries().next().value as [Plan, Prepared];
      this.plans.delete(oldPlan);
      for (const b of old.buffers) this.destroyBuffer(b);
    }
    return prepared;
  }

  private encodePass(enc: GPUCommandEncoder, p: Prepared, ts?: { set: GPUQuerySet; index: number }): void {
    this.encodeDispatches(enc, p.dispatches, ts ? { set: ts.set, begin: ts.index, end: ts.index + 1 } : undefined);
  }

  /** One compute pass holding `dispatches` in order (Dawn puts barriers only where a buffer's use changes). */
  private encodeDispatches(enc: GPUCommandEncoder, dispatches: readonly Dispatch[], ts?: PassTimestamps): void {
    const timestampWrites: GPUComputePassTimestampWrites | undefined = ts
      ? { querySet: ts.set, ...(ts.begin !== undefined ? { beginningOfPassWriteIndex: ts.begin } : {}), ...(ts.end !== undefined ? { endOfPassWriteIndex: ts.end } : {}) }
      : undefined;
    const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : {});
    for (const d of dispatches) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.x, d.y);
    }
    pass.end();
  }

  /**
   * One step of several prepared plans. 'serial': each plan's pass after the previous one (what
   * running them one after another does, in one submission). 'concurrent': WebGPU has one queue
   * and no streams, so the closest thing is one pass with the plans' attention dispatches
   * interleaved (plan A's first variant, plan B's first, A's second, …) and the merges last:
   * neighbouring dispatches write different buffers, so Dawn needs no barrier between them and the
   * driver may overlap them. Timestamps: the step's first pass begins, its last pass ends.
   */
  private encodeGroup(enc: GPUCommandEncoder, ps: readonly Prepared[], mode: 'serial' | 'concurrent', ts?: { set: GPUQuerySet; index: number }): void {
    if (mode === 'concurrent' && ps.length > 1) {
      const attn = ps.map((p) => p.dispatches.filter((d) => !d.merge));
      const order: Dispatch[] = [];
      for (let k = 0; k < Math.max(...attn.map((a) => a.length)); k++) for (const a of attn) if (k < a.length) order.push(a[k]);
      for (const p of ps) for (const d of p.dispatches) if (d.merge) order.push(d);
      this.encodeDispatches(enc, order, ts ? { set: ts.set, begin: ts.index, end: ts.index + 1 } : undefined);
      return;
    }
    ps.forEach((p, i) => {
      const t = ts ? { set: ts.set, ...(i === 0 ? { begin: ts.index } : {}), ...(i === ps.length - 1 ? { end: ts.index + 1 } : {}) } : undefined;
      this.encodeDispatches(enc, p.dispatches, t);
    });
  }

  async run(plan: Plan, queries: Float32Array, options: RunOptions = {}): Promise<AttentionOutput> {
    this.check();
    const p = this.prepare(plan, queries);
    const device = this.gpu.device;
    writeBuf(device.queue, p.queries, 0, queries);
    const timing = options.timing === true;
    const useTs = timing && this.timestamps;
    let qs: GPUQuerySet | undefined;
    let tsBuf: GPUBuffer | undefined;
    let tsRead: GPUBuffer | undefined;
    const enc = device.createCommandEncoder();
    if (useTs) {
      qs = device.createQuerySet({ type: 'timestamp', count: 2 });
      tsBuf = this.createBuffer(16, BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, 'canopy-ts');
      tsRead = this.createBuffer(16, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'canopy-ts-read');
    }
    this.encodePass(enc, p, qs ? { set: qs, index: 0 } : undefined);
    if (qs && tsBuf && tsRead) {
      enc.resolveQuerySet(qs, 0, 2, tsBuf, 0);
      enc.copyBufferToBuffer(tsBuf, 0, tsRead, 0, 16);
    }
    const outAligned = p.outBytes;
    enc.copyBufferToBuffer(p.out, 0, p.readback, 0, Math.ceil((p.outBytes + p.lseBytes) / 4) * 4);
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await this.flushErrors();
    let deviceTimeUs: number | undefined;
    try {
      if (timing && !useTs) {
        await device.queue.onSubmittedWorkDone();
        deviceTimeUs = (performance.now() - t0) * 1000;
      }
      await p.readback.mapAsync(MapMode.READ);
      const bytes = p.readback.getMappedRange();
      const out = new Float32Array(bytes.slice(0, p.outBytes));
      const lse = new Float32Array(bytes.slice(outAligned, outAligned + p.lseBytes));
      p.readback.unmap();
      // the kernels write the empty state's lse as -1e30; the contract says -Infinity
      for (let i = 0; i < lse.length; i++) if (lse[i] <= -1e29) lse[i] = Number.NEGATIVE_INFINITY;
      if (tsRead) {
        await tsRead.mapAsync(MapMode.READ);
        const t = new BigInt64Array(tsRead.getMappedRange().slice(0));
        tsRead.unmap();
        deviceTimeUs = Number(t[1] - t[0]) / 1000;
      }
      return deviceTimeUs === undefined ? { out, lse } : { out, lse, deviceTimeUs };
    } finally {
      if (tsBuf) this.destroyBuffer(tsBuf);
      if (tsRead) this.destroyBuffer(tsRead);
      qs?.destroy();
    }
  }

  async time(plan: Plan, queries: Float32Array, options: TimingOptions): Promise<TimingResult> {
    this.check();
    const p = this.prepare(plan, queries);
    writeBuf(this.gpu.device.queue, p.queries, 0, queries);
    return this.timeSteps((enc, ts) => this.encodePass(enc, p, ts), options);
  }

  /**
   * Where a run's time goes: each dispatch of the plan (attention variants, then the merge) in its
   * own timestamped compute pass, `warmup` runs then `iters` timed ones; per dispatch the kernel's
   * key, its workgroup count and the median µs. Consecutive dispatches of a run already wait for
   * each other (they write the same buffers), so the pass boundaries add little. Needs
   * `timestamp-query`.
   */
  async timeDispatches(plan: Plan, queries: Float32Array, options: TimingOptions): Promise<Array<{ kernel: string; workgroups: number; us: number }>> {
    this.check();
    if (!this.timestamps) throw new CanopyError('bad-option', `webgpu: timeDispatches needs the timestamp-query feature (${this.device} lacks it)`);
    const p = this.prepare(plan, queries);
    const device = this.gpu.device;
    writeBuf(device.queue, p.queries, 0, queries);
    const ds = p.dispatches;
    const iters = Math.max(1, options.iters | 0);
    const warm = Math.max(0, options.warmup | 0);
    if (warm > 0) {
      const enc = device.createCommandEncoder();
      for (let i = 0; i < warm; i++) for (const d of ds) this.encodeDispatches(enc, [d]);
      device.queue.submit([enc.finish()]);
    }
    await this.flushErrors();
    const times = ds.map(() => new Float64Array(iters));
    const per = Math.max(1, Math.floor(2048 / ds.length)); // iterations per query set (4096 timestamps at most)
    for (let s0 = 0; s0 < iters; s0 += per) {
      const n = Math.min(per, iters - s0);
      const us = await this.timestampPairs(n * ds.length, (enc, set) => {
        for (let i = 0; i < n; i++) ds.forEach((d, k) => this.encodeDispatches(enc, [d], { set, begin: 2 * (i * ds.length + k), end: 2 * (i * ds.length + k) + 1 }));
      });
      for (let i = 0; i < n; i++) for (let k = 0; k < ds.length; k++) times[k][s0 + i] = us[i * ds.length + k];
    }
    return ds.map((d, k) => {
      const sorted = Array.from(times[k]).sort((a, b) => a - b);
      return { kernel: d.key, workgroups: d.x * d.y, us: sorted[Math.floor(sorted.length / 2)] };
    });
  }

  /**
   * One submission that records `pairs` begin/end timestamp pairs (pair k at query indices 2k and
   * 2k + 1 of `set`, written by `encode`), resolved and read back: each pair's duration in µs.
   */
  private async timestampPairs(pairs: number, encode: (enc: GPUCommandEncoder, set: GPUQuerySet) => void): Promise<Float64Array> {
    const device = this.gpu.device;
    const count = 2 * pairs;
    const qs = device.createQuerySet({ type: 'timestamp', count });
    const res = this.createBuffer(8 * count, BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, 'canopy-ts');
    const rd = this.createBuffer(8 * count, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'canopy-ts-read');
    try {
      const enc = device.createCommandEncoder();
      encode(enc, qs);
      enc.resolveQuerySet(qs, 0, count, res, 0);
      enc.copyBufferToBuffer(res, 0, rd, 0, 8 * count);
      device.queue.submit([enc.finish()]);
      await rd.mapAsync(MapMode.READ);
      const t = new BigInt64Array(rd.getMappedRange().slice(0));
      rd.unmap();
      const us = new Float64Array(pairs);
      for (let k = 0; k < pairs; k++) us[k] = Number(t[2 * k + 1] - t[2 * k]) / 1000;
      return us;
    } finally {
      this.destroyBuffer(res);
      this.destroyBuffer(rd);
      qs.destroy();
    }
  }

  /**
   * The timing loop of `time` and `timeGroup`: `encodeStep` records one step (with its begin/end
   * timestamps at `ts` when given); `warmup` steps in one submission, then `iters` timed steps
   * (GPU timestamps when the adapter has them, else wall time per submission).
   */
  private async timeSteps(
    encodeStep: (enc: GPUCommandEncoder, ts?: { set: GPUQuerySet; index: number }) => void,
    options: TimingOptions,
  ): Promise<TimingResult> {
    const device = this.gpu.device;
    const iters = Math.max(1, options.iters | 0);
    const warm = Math.max(0, options.warmup | 0);
    if (warm > 0) {
      const enc = device.createCommandEncoder();
      for (let i = 0; i < warm; i++) encodeStep(enc);
      device.queue.submit([enc.finish()]);
    }
    await this.flushErrors();
    await device.queue.onSubmittedWorkDone();
    const timesUs = new Float64Array(iters);
    if (!this.timestamps) {
      for (let i = 0; i < iters; i++) {
        const enc = device.createCommandEncoder();
        encodeStep(enc);
        const t0 = performance.now();
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
        timesUs[i] = (performance.now() - t0) * 1000;
      }
      return { timesUs, clock: 'wall' };
    }
    const CH = 1024; // steps per query set (2 timestamps each, maxQuerySetSize is 4096)
    for (let s = 0; s < iters; s += CH) {
      const n = Math.min(CH, iters - s);
      timesUs.set(await this.timestampPairs(n, (enc, set) => {
        for (let i = 0; i < n; i++) encodeStep(enc, { set, index: 2 * i });
      }), s);
    }
    return { timesUs, clock: 'gpu' };
  }

  /**
   * Time several plans as one step (the contract's optional `timeGroup`): plan i on `queries[i]`,
   * `iters` steps after `warmup`, each step's time from the beginning of its first pass to the end
   * of its last (GPU timestamps when the adapter has them, else wall time per submission). See
   * `encodeGroup` for what 'serial' and 'concurrent' encode.
   */
  async timeGroup(plans: Plan[], queries: Float32Array[], options: GroupTimingOptions): Promise<TimingResult> {
    this.check();
    if (!Array.isArray(plans) || !Array.isArray(queries) || plans.length === 0 || plans.length !== queries.length) {
      throw new CanopyError('bad-option', `webgpu: timeGroup needs one query tensor per plan and at least one plan (got ${plans?.length} plans, ${queries?.length} query tensors)`);
    }
    const mode = options.mode;
    if (mode !== 'serial' && mode !== 'concurrent') throw new CanopyError('bad-option', `webgpu: timeGroup mode must be 'serial' or 'concurrent', got ${JSON.stringify(mode)}`);
    if (plans.length > this.planCacheSize) {
      throw new CanopyError('bad-option', `webgpu: timeGroup of ${plans.length} plans needs planCacheSize ≥ ${plans.length} (it is ${this.planCacheSize})`);
    }
    // prepare every plan first (shape errors surface before any work), then check none was evicted
    const ps = plans.map((p, i) => this.prepare(p, queries[i]));
    if (ps.some((p, i) => this.plans.get(plans[i]) !== p)) {
      throw new CanopyError('bad-option', `webgpu: timeGroup plans did not all fit the plan cache (planCacheSize ${this.planCacheSize})`);
    }
    ps.forEach((p, i) => writeBuf(this.gpu.device.queue, p.queries, 0, queries[i]));
    return this.timeSteps((enc, ts) => this.encodeGroup(enc, ps, mode, ts), options);
  }

  /** Streaming read bandwidth and f32 FMA peak, both from WGSL kernels on this device. */
  async probe(): Promise<DeviceProbe> {
    this.check();
    const device = this.gpu.device;
    const lim = device.limits;
    const bytes = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize, this.gpu.isNvidia ? 1 << 30 : 64 << 20) & ~0xffff;
    const src = this.createBuffer(bytes, BufferUsage.STORAGE | BufferUsage.COPY_DST, 'canopy-probe-src');
    const sink = this.createBuffer(64, BufferUsage.STORAGE, 'canopy-probe-sink');
    const uni = this.createBuffer(2 * PARAMS_STRIDE, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'canopy-probe-params');
    try {
      // random-ish contents so the XOR fold never matches the sink condition; written in chunks
      const chunk = new Uint32Array(1 << 20);
      for (let i = 0; i < chunk.length; i++) chunk[i] = (Math.imul(i + 1, 2654435761) ^ (i >>> 3)) >>> 0;
      for (let o = 0; o < bytes; o += chunk.byteLength) writeBuf(device.queue, src, o, chunk, 0, Math.min(chunk.length, (bytes - o) / 4));
      const nVec = bytes / 16;
      const groups = this.gpu.isNvidia ? 132 * 32 : 64;
      const stride = groups * 256;
      const fmaGroups = this.gpu.isNvidia ? 132 * 64 : 16;
      const fmaIters = this.gpu.isNvidia ? 4096 : 256;
      writeBuf(device.queue, uni, 0, new Uint32Array([nVec, stride, 0, 0]));
      writeBuf(device.queue, uni, PARAMS_STRIDE, new Uint32Array([fmaIters, 0, 0, 0]));
      const mk = (code: string): GPUComputePipeline =>
        device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
      const readP = mk(WGSL.probeRead);
      const fmaP = mk(WGSL.probeFma);
      const readBG = device.createBindGroup({
        layout: readP.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uni, offset: 0, size: 16 } },
          { binding: 1, resource: { buffer: src } },
          { binding: 2, resource: { buffer: sink } },
        ],
      });
      const fmaBG = device.createBindGroup({
        layout: fmaP.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uni, offset: PARAMS_STRIDE, size: 16 } },
          { binding: 1, resource: { buffer: sink } },
        ],
      });
      const timeIt = async (pipe: GPUComputePipeline, bg: GPUBindGroup, n: number, reps: number): Promise<number> => {
        const fake: Prepared = { dispatches: [{ pipeline: pipe, bindGroup: bg, x: n, y: 1, key: 'probe' }] } as unknown as Prepared;
        const times: number[] = [];
        for (let r = 0; r < reps; r++) times.push(await this.timeDispatch(fake));
        times.sort((a, b) => a - b);
        return times[Math.floor(times.length / 2)];
      };
      await timeIt(readP, readBG, groups, 2);
      const readUs = await timeIt(readP, readBG, groups, 7);
      await timeIt(fmaP, fmaBG, fmaGroups, 1);
      const fmaUs = await timeIt(fmaP, fmaBG, fmaGroups, 5);
      const flops = 2 * 4 * 8 * fmaIters * fmaGroups * 256;
      return {
        readBandwidthGBs: bytes / (readUs * 1e3),
        peakTflops: flops / (fmaUs * 1e6),
        peakUnits: `f32 FMA (WGSL)${this.timestamps ? '' : ', wall clock'}`,
      };
    } finally {
      this.destroyBuffer(src);
      this.destroyBuffer(sink);
      this.destroyBuffer(uni);
    }
  }

  /** Time one pass of a prepared dispatch list in µs (GPU timestamps when available). */
  private async timeDispatch(p: Prepared): Promise<number> {
    const device = this.gpu.device;
    if (!this.timestamps) {
      const enc = device.createCommandEncoder();
      this.encodePass(enc, p);
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      return (performance.now() - t0) * 1000;
    }
    const qs = device.createQuerySet({ type: 'timestamp', count: 2 });
    const res = this.createBuffer(16, BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, 'canopy-ts');
    const rd = this.createBuffer(16, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'canopy-ts-read');
    try {
      const enc = device.createCommandEncoder();
      this.encodePass(enc, p, { set: qs, index: 0 });
      enc.resolveQuerySet(qs, 0, 2, res, 0);
      enc.copyBufferToBuffer(res, 0, rd, 0, 16);
      device.queue.submit([enc.finish()]);
      await rd.mapAsync(MapMode.READ);
      const t = new BigInt64Array(rd.getMappedRange().slice(0));
      rd.unmap();
      return Number(t[1] - t[0]) / 1000;
    } finally {
      this.destroyBuffer(res);
      this.destroyBuffer(rd);
      qs.destroy();
    }
  }

  /** Work-unit statistics of a plan on this backend (for reports). */
  layoutOf(
    plan: Plan,
    queries: Float32Array,
  ): { numUnits: number; numInternal: number; mergeCount: number; variantUnits: Array<[number, number]>; attentionDispatches: number; kernels: string[] } {
    const p = this.prepare(plan, queries);
    const l = p.layout;
    const attn = p.dispatches.filter((d) => !d.merge);
    // kernels: the attention pipelines' keys in dispatch order ('a/<dim>/<dtype>/blocked/…' for the blocked kernel)
    return { numUnits: l.numUnits, numInternal: l.numInternal, mergeCount: l.mergeCount, variantUnits: l.variantUnits, attentionDispatches: attn.length, kernels: attn.map((d) => d.key) };
  }

  private clearPlans(): void {
    for (const p of this.plans.values()) for (const b of p.buffers) this.destroyBuffer(b);
    this.plans.clear();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    try {
      await this.gpu.device.queue.onSubmittedWorkDone();
    } catch {
      // a lost device has nothing left to wait for
    }
    this.clearPlans();
    for (const b of [...this.live]) this.destroyBuffer(b);
    this.kv = undefined;
    this.pipelines.clear();
    this.disposed = true;
    if (this.gpu.owned) this.gpu.device.destroy();
  }
}

function guessParallelUnits(info: DeviceInfo): number {
  if (/H100/i.test(info.description)) return 132;
  if (/H200/i.test(info.description)) return 132;
  if (info.isNvidia) return 80;
  if (/llvmpipe|lavapipe|swiftshader/i.test(info.description)) return 4;
  return 32;
}

/** queue.writeBuffer for any typed array (TypeScript 5.9 types them over ArrayBufferLike). */
function writeBuf(queue: GPUQueue, dst: GPUBuffer, offset: number, data: ArrayBufferView, dataOffset?: number, size?: number): void {
  queue.writeBuffer(dst, offset, data as unknown as GPUAllowSharedBufferSource, dataOffset, size);
}
