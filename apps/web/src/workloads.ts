/**
 * The bench's canonical workloads (apps/bench/workloads/W*.json), bundled at build time as plain
 * JSON: the page reads the same files the CLI does and imports none of the CLI's (Node) code.
 */
import { checkTreeSpec, scaleTree, specPathTokens, specPoolBytes, type TreeSpec, type WorkloadScale } from './tree.js';

const files = import.meta.glob<unknown>('../../bench/workloads/W*.json', { eager: true, import: 'default' });

export const WORKLOADS: Map<string, TreeSpec> = new Map(
  Object.entries(files)
    .map(([path, json]) => [path.replace(/^.*\/(W\d+)\.json$/, '$1'), checkTreeSpec(json)] as const)
    .sort(([a], [b]) => Number(a.slice(1)) - Number(b.slice(1))),
);

export interface ScaleChoice {
  scale: WorkloadScale;
  /** Why the workload was shrunk (empty when it runs at full size). */
  reasons: string[];
}

export interface ScaleLimits {
  /** Largest KV pool (K or V) in bytes the backend takes. */
  maxPoolBytes: number;
  /** Largest Σ path tokens (KV a per-request plan reads) worth running on this backend. */
  maxPathTokens: number;
  /** Why that budget. */
  budgetReason: string;
}

/**
 * Halve the token scale until the KV pool fits the adapter and the work fits the budget; past
 * 1/64 of the tokens, halve the requests too. Explicit factors in `fixed` are kept as given.
 */
export function autoScale(spec: TreeSpec, limits: ScaleLimits, fixed: Partial<WorkloadScale> = {}): ScaleChoice {
  const scale: WorkloadScale = { tokens: fixed.tokens ?? 1, requests: fixed.requests ?? 1 };
  const reasons = new Set<string>();
  for (let guard = 0; guard < 40; guard++) {
    const t = scaleTree(spec, scale);
    const pool = specPoolBytes(t);
    const work = specPathTokens(t);
    let why: string | undefined;
    if (pool > limits.maxPoolBytes) why = `KV pool ${(pool / 2 ** 20).toFixed(0)} MiB > the adapter's ${(limits.maxPoolBytes / 2 ** 20).toFixed(0)} MiB limit`;
    else if (work > limits.maxPathTokens) why = limits.budgetReason;
    if (!why) break;
    if (fixed.tokens === undefined && scale.tokens > 1 / 64) scale.tokens /= 2;
    else if (fixed.requests === undefined && Math.round(spec.requests.length * scale.requests) > 1) scale.requests /= 2;
    else {
      reasons.add(`${why} (kept: scale fixed in the URL or at its minimum)`);
      break;
    }
    reasons.add(why);
  }
  return { scale, reasons: [...reasons] };
}
