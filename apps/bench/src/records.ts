/**
 * The bench's JSON output (`--json FILE`): one document per run with one record per
 * (workload, backend, planner). Schema: `schema/run.schema.json` (id `canopy-bench/run@1`).
 */
import type { Verification } from './verify.js';
import type { HostInfo } from './meta.js';
import type { TreeConfig, WorkloadScale } from './tree.js';

export const RUN_SCHEMA_ID = 'canopy-bench/run@1';

export interface FloorInfo {
  /** Unique KV bytes / read bandwidth. */
  bytesUs: number | null;
  /** Attention FLOPs / arithmetic peak. */
  flopsUs: number | null;
  /** The larger of the two: the step cannot be faster. */
  floorUs: number | null;
  bound: 'memory' | 'compute' | null;
  readBandwidthGBs: number | null;
  peakTflops: number | null;
  peakUnits: string | null;
  /** Who measured the ceilings ("backend probe", "CPU estimate …", "capabilities"). */
  source: string;
}

export interface TimeInfo {
  median: number;
  p10: number;
  p90: number;
  min: number;
  iters: number;
  clock: 'gpu' | 'wall';
  /** ~95% CI half-width of the median, relative to it. */
  medianRelCi: number;
  stable: boolean;
}

export interface BenchRecord {
  workload: string;
  workloadName: string;
  /** "builtin", "file:<path>", or "sweep". */
  source: string;
  scale: WorkloadScale;
  scaled: boolean;
  sweep?: { dim: string; value: number };
  backend: string;
  planner: string;
  device: string;
  commit: string;
  config: TreeConfig & { softmaxScale: number };
  requests: number;
  queries: number;
  nodes: number;
  uniqueKvTokens: number;
  uniqueKvBytes: number;
  /** KV tokens/bytes every request reading its own path (no sharing). */
  kvTokensNoSharing: number;
  kvBytesNoSharing: number;
  /** KV tokens/bytes the plan's work items read. */
  planKvTokens: number;
  planKvBytes: number;
  attentionFlops: number;
  workItems: number;
  partials: number;
  /** Wall time the planner took to build this plan, in µs (one call). */
  planTimeUs: number;
  verification: Verification;
  /** Null when the result was wrong (no time is reported for a wrong result) or the run failed. */
  timeUs: TimeInfo | null;
  /** Unique KV bytes / median time. */
  bandwidthGBs: number | null;
  floor: FloorInfo;
  /** floorUs / median × 100. */
  pctOfFloor: number | null;
  /** perRequest median / this median, same workload, backend and scale. */
  speedupVsPerRequest: number | null;
  /** Why this record has no time (wrong result, backend error). */
  failure?: string;
  /** Hybrid batches (prefill chunks beside decodes): this record's plan is the fused one; these
   * are the back-to-back and two-stream baselines with the same planner (see hybrid.ts). */
  hybrid?: HybridInfo;
}

/** What a hybrid record adds: the split, the baselines' times and their check. */
export interface HybridInfo {
  prefillRequests: number;
  prefillQueries: number;
  decodeRequests: number;
  decodeQueries: number;
  /** Work items of the prefill and the decode plan. */
  workItems: { prefill: number; decode: number };
  /** The two sub-plans' outputs, put together, against the reference (null: not run). */
  verification: Verification | null;
  /** Prefill then decode plan on one queue/stream (timeGroup mode 'serial'). */
  serialUs: TimeInfo | null;
  /** The two plans on two streams where the backend can overlap them (mode 'concurrent'). */
  concurrentUs: TimeInfo | null;
  /** Serial median / fused median (> 1: the one plan of the whole batch is faster). */
  fusedSpeedupVsSerial: number | null;
  /** Concurrent median / fused median. */
  fusedSpeedupVsConcurrent: number | null;
  /** Why the baselines have no time (no timeGroup, a wrong result, an error). */
  note?: string;
}


export interface BackendInfo {
  name: string;
  used: boolean;
  reason: string;
  device?: string;
  from?: string;
  probe?: {
    readBandwidthGBs: number | null;
    peakTflops: number | null;
    peakUnits: string | null;
    source: string;
  };
}

export interface SweepInfo {
  dim: string;
  values: number[];
  base: Record<string, number>;
  /** Per backend: where prefix starts to win clearly (and keeps winning), the speedup there, the best one, and every clear win. */
  crossovers: Array<{ backend: string; firstWinValue: number | null; speedupAtFirstWin: number | null; maxSpeedup: number | null; maxSpeedupValue: number | null; winValues: number[] }>;
}

export interface BenchRun {
  schema: typeof RUN_SCHEMA_ID;
  tool: { name: 'canopy-bench'; version: string };
  createdAt: string;
  commit: string;
  command: string[];
  host: HostInfo;
  options: { seed: number; iters: number | null; planners: string[]; backend: string; model: string | null };
  backends: BackendInfo[];
  records: BenchRecord[];
  sweep?: SweepInfo;
  /** Free-form notes (scale-downs, verification policy). */
  notes: string[];
  /** False while a run is in progress (the JSON is rewritten after every record). */
  complete: boolean;
}
