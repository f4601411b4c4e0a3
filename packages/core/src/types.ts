/**
 * The Canopy contract: plain data that flows batch → token tree → plan → backend → output.
 *
 * Everything on a hot path is a flat typed array. Objects appear only where there is one per
 * request or per backend, never per token.
 */

/** Version of this contract. A backend declares the version it was written against; the
 * registry refuses a backend whose major version differs (see `registry.ts`). */
export const CONTRACT_VERSION = 1;

/** KV storage element type. `f16` pools hold IEEE-754 binary16 bit patterns in a `Uint16Array`. */
export type KvDtype = 'f16' | 'f32';

export interface AttentionConfig {
  numQoHeads: number;
  /** GQA: numQoHeads % numKvHeads === 0; query head h reads KV head floor(h / (numQoHeads / numKvHeads)). */
  numKvHeads: number;
  headDim: number;
  /** Softmax scale applied to q·k; defaults to 1 / sqrt(headDim) (see `softmaxScale`). */
  scale?: number;
  kvDtype: KvDtype;
}

/** Storage for one KV pool: f16 bit patterns or f32 values. */
export type KvArray = Uint16Array | Float32Array;

/**
 * Paged KV cache. K and V pools are laid out `[numPages, pageSize, numKvHeads, headDim]`,
 * row-major: element (page, slot, head, d) sits at
 * `((page * pageSize + slot) * numKvHeads + head) * headDim + d`.
 */
export interface PagedKvCache {
  numPages: number;
  pageSize: number;
  numKvHeads: number;
  headDim: number;
  dtype: KvDtype;
  k: KvArray;
  v: KvArray;
}

/**
 * One request of a batch. Its KV sequence is the concatenation of its page segments in order:
 * segment i is slots [0, pageTokens[i]) of page pageIds[i]. A page that is not full may sit in
 * the middle (a shared node that ends mid-page is followed by the request's own pages).
 *
 * The request carries `numQueries` query tokens. They are the last `numQueries` tokens of its
 * KV sequence and attend causally: query j (0-based) of a request with L KV tokens sees KV
 * positions [0, L - numQueries + j + 1). A decode step has numQueries = 1 and sees all L tokens.
 */
export interface BatchRequest {
  pageIds: Int32Array;
  pageTokens: Int32Array;
  numQueries: number;
}

/**
 * An explicit token tree given with a batch (for example from the bench's `--tree` JSON).
 * Node n owns the page segments `[segBegin[n], segBegin[n + 1])` of `segPage`/`segTokens`.
 * `requestLeaf[r]` is the node request r sits at; its KV is the path root → leaf.
 * When present, every request's pageIds/pageTokens must equal the concatenation of its path's
 * segments (`validateBatch` checks this).
 */
export interface ExplicitTree {
  parent: Int32Array; // -1 for a root
  segBegin: Int32Array; // length numNodes + 1
  segPage: Int32Array;
  segTokens: Int32Array;
  requestLeaf: Int32Array;
}

export interface Batch {
  config: AttentionConfig;
  /** Shape of the paged cache the page ids index into. */
  numPages: number;
  pageSize: number;
  requests: BatchRequest[];
  /** Optional explicit tree; planners may use it instead of discovering sharing from page ids. */
  tree?: ExplicitTree;
}

/**
 * Token tree: the planner's view of a batch. Nodes own KV segments; a query sits at a node and
 * attends to every KV token on its root path (restricted by `queryKvLimit`, see Plan).
 */
export interface TokenTree {
  numNodes: number;
  parent: Int32Array; // -1 for a root; parents precede children (parent[n] < n)
  /** Absolute position (tokens from the root) of the node's first token. */
  nodePos: Int32Array;
  /** Total KV tokens of the node. */
  nodeTokens: Int32Array;
  segBegin: Int32Array; // length numNodes + 1
  segPage: Int32Array;
  segTokens: Int32Array;
  /** Node each query sits at (the deepest node on its path). */
  queryNode: Int32Array;
}

/** A tile shape of a backend's menu: rows (queries × GQA group per KV head) by KV block tokens. */
export interface TileShape {
  rows: number;
  kvBlock: number;
}

/**
 * A plan: work items plus a merge schedule, all in flat typed arrays.
 *
 * Queries are numbered globally: query q belongs to request `queryRequest[q]`; the batch's
 * requests own consecutive query ids in request order. The query tensor is
 * `[numQueries, numQoHeads, headDim]` f32.
 *
 * Work item i reads the KV segments `[itemSegBegin[i], itemSegBegin[i + 1])` of
 * `segPage`/`segSlot`/`segTokens` (segment s = slots [segSlot[s], segSlot[s] + segTokens[s]) of
 * page segPage[s]), in order; those tokens have absolute positions itemPos[i], itemPos[i] + 1, ….
 * It computes attention for the queries `itemQueries[itemQueryBegin[i] .. itemQueryBegin[i + 1])`
 * (all query heads of each, so rows per KV head = queries × numQoHeads / numKvHeads) and writes
 * one partial state per (query, query head) into partial slot
 * `itemPartialBase[i] + (local query index)`: `[numPartials, numQoHeads, headDim]` o and
 * `[numPartials, numQoHeads]` lse.
 *
 * Masking: query q sees only KV positions < `queryKvLimit[q]`. Positions of an item at or past
 * the limit are skipped; an item whose tokens are all masked for a query yields the empty state.
 *
 * Merge: query q's output is the online-softmax merge of the partial slots
 * `mergeSlots[mergeBegin[q] .. mergeBegin[q + 1])`. A query with exactly one partial may be
 * written directly by a backend.
 */
export interface Plan {
  version: typeof CONTRACT_VERSION;
  /** Name of the planner that produced it ("perRequest", "prefix", …). */
  planner: string;
  /** The batch's attention config (head counts, head dim, softmax scale, KV dtype): a backend
   * needs it to execute the plan; planners copy `batch.config`. */
  config: AttentionConfig;
  numQueries: number;
  queryRequest: Int32Array;
  queryKvLimit: Int32Array;
  tiles: TileShape[];

  numItems: number;
  itemTile: Int32Array;
  itemPos: Int32Array;
  itemSegBegin: Int32Array; // numItems + 1
  itemQueryBegin: Int32Array; // numItems + 1
  itemQueries: Int32Array;
  itemPartialBase: Int32Array;
  /** Optional: the tree node each item reads (for reports); -1 where not meaningful. */
  itemNode?: Int32Array;

  segPage: Int32Array;
  segSlot: Int32Array;
  segTokens: Int32Array;

  numPartials: number;
  mergeBegin: Int32Array; // numQueries + 1
  mergeSlots: Int32Array;
}

/** What a backend can do. Planners read this (through core only) to shape their plans. */
export interface BackendCapabilities {
  kvDtypes: KvDtype[];
  headDims: number[];
  /** Tile shapes the backend has kernels for; `plan.tiles` should be drawn from it. */
  tileMenu: TileShape[];
  /** Largest page size supported, if limited. */
  maxPageSize?: number;
  /** Largest KV pool in bytes (per K or V), if limited. */
  maxKvPoolBytes?: number;
  /** Masks the backend implements: 'causal' means queryKvLimit below the path length. */
  masks: Array<'none' | 'causal'>;
  /** Whether `run` can report device-side timings (GPU timers). */
  gpuTimers: boolean;
  /** Parallel units work items spread over (SMs, workgroup slots, worker threads). */
  parallelUnits: number;
  /** Approximate read bandwidth in GB/s, for cost models (a probe may refine it). */
  readBandwidthGBs?: number;
  /** Optional hints a backend measured for planners' cost models; planners may ignore them and
   * a caller's explicit planner options win over them. */
  planningHints?: PlanningHints;
}

/**
 * What a backend knows about scheduling its kernels that a planner cannot derive from the
 * fields above. All optional; a planner without a use for one ignores it.
 */
export interface PlanningHints {
  /** Work items the device effectively runs at once when balancing long items against the
   * total (default: `parallelUnits`). */
  parallelUnits?: number;
  /** Slots the largest work items (the longest CTAs) occupy at once: when their count exceeds
   * a multiple of this, a further wave runs (wave quantisation). Omitted: not modelled. */
  waveSlots?: number;
  /** Tiles whose CTAs fit a different number at once (e.g. one per SM where `waveSlots` counts
   * two): the CTAs of tiles with at least `minRows` rows occupy `waveSlots` slots of their own
   * (the entry with the largest matching minRows applies). Omitted: every tile as `waveSlots`. */
  tileWaveSlots?: ReadonlyArray<{ minRows: number; waveSlots: number }>;
  /** Fixed cost of one work unit (CTA) in µs beyond its KV streaming and arithmetic: launch
   * share, gathering its queries, filling the pipeline, writing its partial. Planners weigh it
   * against splitting KV into more, shorter units. Omitted: the planner's default. */
  itemOverheadUs?: number;
}

export interface RunOptions {
  /** Measure device time of this run. */
  timing?: boolean;
}

/** Output of one run: `[numQueries, numQoHeads, headDim]` and `[numQueries, numQoHeads]` (natural log). */
export interface AttentionOutput {
  out: Float32Array;
  lse: Float32Array;
  /** Device time in µs when timing was asked for and the backend can measure it. */
  deviceTimeUs?: number;
}

export interface TimingOptions {
  warmup: number;
  iters: number;
}

/**
 * How `timeGroup` runs several plans as one step. 'serial': one after another on one queue or
 * stream (separate kernels back to back); 'concurrent': the backend may overlap them (CUDA: one
 * stream per plan). Hybrid prefill+decode baselines time a prefill plan and a decode plan this
 * way against one plan of the whole batch.
 */
export type GroupMode = 'serial' | 'concurrent';

export interface GroupTimingOptions extends TimingOptions {
  mode: GroupMode;
}

/** Per-iteration times in µs and how they were taken. */
export interface TimingResult {
  timesUs: Float64Array;
  clock: 'gpu' | 'wall';
}

/** Results of a backend's measured ceilings (see the bench's roofline). */
export interface DeviceProbe {
  readBandwidthGBs?: number;
  /** Arithmetic peak of the units the kernels use, in TFLOP/s. */
  peakTflops?: number;
  peakUnits?: string;
}

/**
 * A backend executes plans. Implement it against `@canopy/core` alone.
 * Lifecycle: `setKvCache` (uploads the pools), then any number of `run`/`time`, then `dispose`.
 */
export interface AttentionBackend {
  readonly name: string;
  /** Contract version this backend was written against (CONTRACT_VERSION at the time). */
  readonly contractVersion: number;
  readonly capabilities: BackendCapabilities;
  /** Human-readable device description (GPU/adapter/driver or CPU). */
  readonly device: string;
  setKvCache(cache: PagedKvCache): Promise<void>;
  run(plan: Plan, queries: Float32Array, options?: RunOptions): Promise<AttentionOutput>;
  /** Time `iters` executions of a plan after `warmup`, without reading results back each time. */
  time?(plan: Plan, queries: Float32Array, options: TimingOptions): Promise<TimingResult>;
  /** Optional: time several plans executed as one step, plan i on `queries[i]` (each plan's own
   * query tensor). Each entry of the result covers all plans of one iteration. */
  timeGroup?(plans: Plan[], queries: Float32Array[], options: GroupTimingOptions): Promise<TimingResult>;
  /** Measure bandwidth and arithmetic ceilings of this device. */
  probe?(): Promise<DeviceProbe>;
  dispose(): Promise<void>;
}

export interface BackendAvailability {
  available: boolean;
  /** Why not (or a note when available). */
  reason?: string;
  /** The backend runs on a software emulation of its device (a CPU WebGPU adapter such as
   * lavapipe or SwiftShader): usable, but automatic selection prefers native backends. */
  emulated?: boolean;
}

export interface BackendCreateOptions {
  /** Backend-specific options (for example a GPUDevice for WebGPU). */
  [key: string]: unknown;
}

/** What a plugin registers: a name, a priority for auto-selection, a probe and a factory. */
export interface BackendFactory {
  readonly name: string;
  readonly contractVersion: number;
  /** Higher is preferred by `pickBest`. Reference: 0, CPU: 10, WebGPU: 50, CUDA: 100. */
  readonly priority: number;
  probe(): Promise<BackendAvailability>;
  create(options?: BackendCreateOptions): Promise<AttentionBackend>;
}

/**
 * A planner turns a batch into a plan for a backend with the given capabilities. Planners live
 * outside core (see `@canopy/planner`) and know no backend: they see only capabilities.
 */
export type Planner = (batch: Batch, capabilities: BackendCapabilities) => Plan;
