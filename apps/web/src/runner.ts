/**
 * One benchmark run in the page: tree → batch → random KV and queries (seeded) → each planner's
 * plan → the backend runs it → a sample of queries is checked against core's float64
 * `referenceAttention` → timed → floor from the backend's probe. The same steps as the bench CLI,
 * with nothing Node-only.
 */
import {
  ReferenceBackend,
  kvBytesPerToken,
  attentionFlops,
  numQueriesOf,
  planKvTokens,
  randomKvCache,
  randomQueries,
  referenceAttention,
  uniqueKvTokens,
  validateBatch,
  validatePlan,
  type AttentionBackend,
  type DeviceProbe,
  type KvDtype,
  type Plan,
} from '@canopy/core';
import { webgpuBackendFactory } from '@canopy/backend-webgpu';
import { getPlanner, type PlannerName } from './planners.js';
import { buildBatch, specPathTokens, type BuiltBatch, type TreeSpec } from './tree.js';

export type BackendChoice = 'auto' | 'webgpu' | 'reference';

/** Tolerances of @canopy/backend-testkit: out relative to max(1, max |ref|), lse absolute. */
export const TOLERANCE: Record<KvDtype, { out: number; lse: number }> = {
  f32: { out: 2e-4, lse: 2e-4 },
  f16: { out: 4e-3, lse: 4e-3 },
};

export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (SwiftShader, lavapipe, llvmpipe, or flagged as fallback). */
  software: boolean;
  features: string[];
}

export interface BackendSession {
  backend: AttentionBackend;
  kind: 'webgpu' | 'reference';
  adapter?: AdapterInfo;
  /** Why this is not the WebGPU backend, when it is not. */
  fallbackReason?: string;
  probe?: DeviceProbe;
  probed: boolean;
}

let current: { choice: BackendChoice; session: BackendSession } | undefined;

async function webgpuAdapterInfo(): Promise<AdapterInfo | string> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return `this browser exposes no WebGPU (navigator.gpu is missing${window.isSecureContext ? '' : '; the page is not a secure context'})`;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return 'navigator.gpu.requestAdapter() returned no adapter';
  const i = adapter.info;
  const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`;
  const fallback = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter === true || (i as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const features: string[] = [];
  adapter.features.forEach((f) => features.push(f));
  return {
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    software: fallback || /swiftshader|lavapipe|llvmpipe|softpipe/i.test(text),
    features: features.sort(),
  };
}

/** The backend for a choice, created once and kept (a GPUDevice is expensive to make). */
export async function getBackend(choice: BackendChoice): Promise<BackendSession> {
  if (current && current.choice === choice) return current.session;
  if (current) await current.session.backend.dispose();
  current = undefined;
  let session: BackendSession | undefined;
  let reason: string | undefined;
  if (choice !== 'reference') {
    const info = await webgpuAdapterInfo();
    if (typeof info === 'string') {
      reason = info;
    } else {
      try {
        const gpu = (navigator as Navigator & { gpu: GPU }).gpu;
        const backend = await webgpuBackendFactory.create({ gpu });
        session = { backend, kind: 'webgpu', adapter: info, probed: false };
      } catch (e) {
        reason = `the WebGPU backend could not start: ${(e as Error).message}`;
      }
    }
    if (!session && choice === 'webgpu') throw new Error(`WebGPU backend asked for, but ${reason}`);
  }
  if (!session) {
    const backend = new ReferenceBackend();
    session = { backend, kind: 'reference', probed: false, ...(reason ? { fallbackReason: reason } : {}) };
  }
  current = { choice, session };
  return session;
}

export interface TimingSummary {
  medianUs: number;
  p10Us: number;
  p90Us: number;
  iters: number;
  clock: 'gpu' | 'wall';
}

/** Per-node coverage of one work item: which tree node, which token range of it. */
export interface ItemPiece {
  item: number;
  node: number;
  /** Token offsets within the node, [begin, end). */
  begin: number;
  end: number;
}

export interface PlannerResult {
  planner: PlannerName;
  plan: Plan;
  planTimeMs: number;
  workItems: number;
  partials: number;
  /** Σ item tokens (core's planKvTokens). */
  kvTokensRead: number;
  maxOutErr: number;
  maxLseErr: number;
  verified: boolean;
  /** The sampled rows the page computed (for an outside check): out `[rows, H, D]`, lse `[rows, H]`. */
  sampleOut: Float32Array;
  sampleLse: Float32Array;
  timing?: TimingSummary;
  floorUs?: number;
  pctOfFloor?: number;
  gbPerS?: number;
  speedupVsPerRequest?: number;
  pieces: ItemPiece[];
  error?: string;
}

export interface RunSettings {
  spec: TreeSpec;
  planners: PlannerName[];
  seed: number;
  warmup: number;
  iters: number;
  /** Queries checked against the float64 reference (evenly spread, first and last included). */
  sample: number;
}

export interface RunResult {
  settings: RunSettings;
  built: BuiltBatch;
  backend: string;
  backendKind: 'webgpu' | 'reference';
  device: string;
  adapter?: AdapterInfo;
  fallbackReason?: string;
  numQueries: number;
  uniqueKvTokens: number;
  pathTokens: number;
  kvBytesPerToken: number;
  attentionFlops: number;
  probe?: DeviceProbe;
  sampleIds: Int32Array;
  results: PlannerResult[];
  verified: boolean;
  maxOutErr: number;
  maxLseErr: number;
  tolerance: { out: number; lse: number };
}

export function sampleQueryIds(numQueries: number, sample: number): Int32Array {
  const k = Math.max(1, Math.min(numQueries, sample));
  const ids = new Int32Array(k);
  for (let i = 0; i < k; i++) ids[i] = k === 1 ? 0 : Math.round((i * (numQueries - 1)) / (k - 1));
  return ids;
}

function quantile(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Map every work item's KV segments onto the tree nodes that own those pages. */
export function itemPieces(plan: Plan, built: BuiltBatch): ItemPiece[] {
  const { batch, pageNode } = built;
  const tree = batch.tree!;
  // first token offset of each page within its node (pages of a node are consecutive)
  const pageOffset = new Int32Array(batch.numPages);
  for (let n = 0; n < tree.parent.length; n++) {
    let off = 0;
    for (let s = tree.segBegin[n]; s < tree.segBegin[n + 1]; s++) {
      pageOffset[tree.segPage[s]] = off;
      off += tree.segTokens[s];
    }
  }
  const pieces: ItemPiece[] = [];
  for (let i = 0; i < plan.numItems; i++) {
    let last: ItemPiece | undefined;
    for (let s = plan.itemSegBegin[i]; s < plan.itemSegBegin[i + 1]; s++) {
      const page = plan.segPage[s];
      const node = pageNode[page];
      const begin = pageOffset[page] + plan.segSlot[s];
      const end = begin + plan.segTokens[s];
      if (last && last.node === node && last.end === begin) last.end = end;
      else {
        last = { item: i, node, begin, end };
        pieces.push(last);
      }
    }
  }
  return pieces;
}

export type Progress = (message: string) => void;

export async function runWorkload(session: BackendSession, settings: RunSettings, progress: Progress = () => {}): Promise<RunResult> {
  const { spec } = settings;
  const built = buildBatch(spec);
  const { batch } = built;
  validateBatch(batch);
  const backend = session.backend;
  const nq = numQueriesOf(batch);
  progress(`KV cache: ${batch.numPages} pages, queries: ${nq}`);
  const cache = randomKvCache(batch.numPages, batch.pageSize, batch.config, settings.seed);
  const queries = randomQueries(nq, batch.config, settings.seed + 1);
  await backend.setKvCache(cache);

  if (!session.probed && backend.probe) {
    progress('probing the device (read bandwidth, arithmetic peak)');
    try {
      session.probe = await backend.probe();
    } catch (e) {
      console.warn('probe failed', e);
    }
  }
  session.probed = true;

  progress('reference (float64) on the sampled queries');
  const sampleIds = sampleQueryIds(nq, settings.sample);
  const ref = referenceAttention(batch, cache, queries, { queryIds: sampleIds });
  let maxRef = 1;
  for (let i = 0; i < ref.out.length; i++) maxRef = Math.max(maxRef, Math.abs(ref.out[i]));
  const { numQoHeads: H, headDim: D } = batch.config;
  const tolerance = TOLERANCE[batch.config.kvDtype];
  const unique = uniqueKvTokens(batch);
  const bpt = kvBytesPerToken(batch.config);
  const flops = attentionFlops(batch);
  const probe = session.probe;
  const bytesUs = probe?.readBandwidthGBs ? (unique * bpt) / (probe.readBandwidthGBs * 1e3) : undefined;
  const flopsUs = probe?.peakTflops ? flops / (probe.peakTflops * 1e6) : undefined;
  const floorUs = bytesUs === undefined && flopsUs === undefined ? undefined : Math.max(bytesUs ?? 0, flopsUs ?? 0);

  const results: PlannerResult[] = [];
  for (const name of settings.planners) {
    progress(`${name}: planning`);
    const t0 = performance.now();
    let plan: Plan;
    try {
      plan = getPlanner(name)(batch, backend.capabilities);
    } catch (e) {
      throw new Error(`${name} planner failed: ${(e as Error).message}`);
    }
    const planTimeMs = performance.now() - t0;
    validatePlan(plan, batch);
    progress(`${name}: running ${plan.numItems} work items on ${session.kind}`);
    const got = await backend.run(plan, queries);
    const sampleOut = new Float32Array(sampleIds.length * H * D);
    const sampleLse = new Float32Array(sampleIds.length * H);
    let maxOutErr = 0;
    let maxLseErr = 0;
    sampleIds.forEach((q, row) => {
      for (let j = 0; j < H * D; j++) {
        const v = got.out[q * H * D + j];
        sampleOut[row * H * D + j] = v;
        const e = Math.abs(v - ref.out[row * H * D + j]);
        if (!(e <= maxOutErr)) maxOutErr = Number.isNaN(e) ? Infinity : e;
      }
      for (let h = 0; h < H; h++) {
        const v = got.lse[q * H + h];
        sampleLse[row * H + h] = v;
        const e = Math.abs(v - ref.lse[row * H + h]);
        if (!(e <= maxLseErr)) maxLseErr = Number.isNaN(e) ? Infinity : e;
      }
    });
    maxOutErr /= maxRef;
    const verified = maxOutErr <= tolerance.out && maxLseErr <= tolerance.lse;
    const res: PlannerResult = {
      planner: name,
      plan,
      planTimeMs,
      workItems: plan.numItems,
      partials: plan.numPartials,
      kvTokensRead: planKvTokens(plan),
      maxOutErr,
      maxLseErr,
      verified,
      sampleOut,
      sampleLse,
      pieces: itemPieces(plan, built),
    };
    // No time for a wrong result (as in the bench).
    if (verified && settings.iters > 0) {
      progress(`${name}: timing ${settings.iters} iterations`);
      let timesUs: Float64Array;
      let clock: 'gpu' | 'wall';
      if (backend.time) {
        const t = await backend.time(plan, queries, { warmup: settings.warmup, iters: settings.iters });
        timesUs = t.timesUs;
        clock = t.clock;
      } else {
        for (let i = 0; i < settings.warmup; i++) await backend.run(plan, queries);
        timesUs = new Float64Array(settings.iters);
        for (let i = 0; i < settings.iters; i++) {
          const s = performance.now();
          await backend.run(plan, queries);
          timesUs[i] = (performance.now() - s) * 1000;
        }
        clock = 'wall';
      }
      const sorted = Float64Array.from(timesUs).sort();
      res.timing = { medianUs: quantile(sorted, 0.5), p10Us: quantile(sorted, 0.1), p90Us: quantile(sorted, 0.9), iters: sorted.length, clock };
      res.gbPerS = (unique * bpt) / (res.timing.medianUs * 1e3);
      if (floorUs !== undefined) {
        res.floorUs = floorUs;
        res.pctOfFloor = (floorUs / res.timing.medianUs) * 100;
      }
    }
    results.push(res);
  }
  const base = results.find((r) => r.planner === 'perRequest')?.timing?.medianUs;
  for (const r of results) if (base !== undefined && r.timing) r.speedupVsPerRequest = base / r.timing.medianUs;

  return {
    settings,
    built,
    backend: backend.name,
    backendKind: session.kind,
    device: backend.device,
    ...(session.adapter ? { adapter: session.adapter } : {}),
    ...(session.fallbackReason ? { fallbackReason: session.fallbackReason } : {}),
    numQueries: nq,
    uniqueKvTokens: unique,
    pathTokens: specPathTokens(spec),
    kvBytesPerToken: bpt,
    attentionFlops: flops,
    ...(probe ? { probe } : {}),
    sampleIds,
    results,
    verified: results.length > 0 && results.every((r) => r.verified),
    maxOutErr: Math.max(0, ...results.map((r) => r.maxOutErr)),
    maxLseErr: Math.max(0, ...results.map((r) => r.maxLseErr)),
    tolerance,
  };
}
