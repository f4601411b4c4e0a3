/**
 * Built-in workloads (W1–W8 decode steps, H1/H2/S1 hybrid steps, shipped as `workloads/*.json` and embedded at build time), model
 * presets for `--model`, and the tree families `sweep` varies.
 */
import { CanopyError } from '@canopy/core';
import W1 from '../workloads/W1.json' with { type: 'json' };
import W2 from '../workloads/W2.json' with { type: 'json' };
import W3 from '../workloads/W3.json' with { type: 'json' };
import W4 from '../workloads/W4.json' with { type: 'json' };
import W5 from '../workloads/W5.json' with { type: 'json' };
import W6 from '../workloads/W6.json' with { type: 'json' };
import W7 from '../workloads/W7.json' with { type: 'json' };
import W8 from '../workloads/W8.json' with { type: 'json' };
import H1 from '../workloads/H1.json' with { type: 'json' };
import H2 from '../workloads/H2.json' with { type: 'json' };
import S1 from '../workloads/S1.json' with { type: 'json' };
import { checkTreeSpec, type TreeConfig, type TreeSpec } from './tree.js';

const RAW: Record<string, unknown> = { W1, W2, W3, W4, W5, W6, W7, W8, H1, H2, S1 };

/** The canonical five (the default run). */
export const CANONICAL_WORKLOADS = ['W1', 'W2', 'W3', 'W4', 'W5'] as const;
/** Real-world shaped workloads (sources in workloads/README.md). */
export const REAL_WORLD_WORKLOADS = ['W6', 'W7', 'W8'] as const;
/** Hybrid steps: prefill chunks beside decodes (H1, H2) and speculative-decoding draft trees (S1). */
export const HYBRID_WORKLOADS = ['H1', 'H2', 'S1'] as const;
export const BUILTIN_WORKLOADS = [...CANONICAL_WORKLOADS, ...REAL_WORLD_WORKLOADS, ...HYBRID_WORKLOADS];

export function builtinWorkload(id: string): TreeSpec {
  const key = id.toUpperCase();
  const raw = RAW[key];
  if (!raw) {
    throw new CanopyError('unknown-workload', `unknown workload "${id}" (built in: ${BUILTIN_WORKLOADS.join(', ')}, "canonical", "hybrid" or "all"; use --tree FILE for your own)`);
  }
  return checkTreeSpec(raw, (path, detail) => {
    throw new CanopyError('bad-tree-json', `built-in workload ${key}: ${path}: ${detail}`);
  });
}

/** Expand `--workload` values: ids, comma lists, "all" (every built-in), "canonical" (W1–W5), "hybrid" (H1, H2, S1). */
export function resolveWorkloadIds(values: string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    for (const part of v.split(',').map((s) => s.trim()).filter(Boolean)) {
      const lower = part.toLowerCase();
      const ids =
        lower === 'all' ? BUILTIN_WORKLOADS : lower === 'canonical' ? [...CANONICAL_WORKLOADS] : lower === 'hybrid' ? [...HYBRID_WORKLOADS] : [part.toUpperCase()];
      for (const id of ids) {
        builtinWorkload(id); // throws a clear error for unknown ids
        if (!out.includes(id)) out.push(id);
      }
    }
  }
  return out;
}

/** Attention shapes of common models (query heads / KV heads / head dim). */
export const MODEL_PRESETS: Record<string, { label: string; numQoHeads: number; numKvHeads: number; headDim: number }> = {
  'llama-3-8b': { label: 'Llama-3-8B', numQoHeads: 32, numKvHeads: 8, headDim: 128 },
  'llama-3-70b': { label: 'Llama-3-70B', numQoHeads: 64, numKvHeads: 8, headDim: 128 },
  'llama-2-7b': { label: 'Llama-2-7B (MHA)', numQoHeads: 32, numKvHeads: 32, headDim: 128 },
  'qwen2-7b': { label: 'Qwen2-7B', numQoHeads: 28, numKvHeads: 4, headDim: 128 },
  'qwen2.5-32b': { label: 'Qwen2.5-32B', numQoHeads: 40, numKvHeads: 8, headDim: 128 },
  'mistral-7b': { label: 'Mistral-7B', numQoHeads: 32, numKvHeads: 8, headDim: 128 },
  'gemma-2-9b': { label: 'Gemma-2-9B', numQoHeads: 16, numKvHeads: 8, headDim: 256 },
};

export function modelPreset(name: string): Pick<TreeConfig, 'numQoHeads' | 'numKvHeads' | 'headDim'> & { label: string } {
  const key = name.toLowerCase().replace(/_/g, '-').replace(/^(llama|qwen|mistral|gemma)(\d)/, '$1-$2');
  const p = MODEL_PRESETS[key] ?? MODEL_PRESETS[name.toLowerCase()];
  if (!p) {
    throw new CanopyError('unknown-model', `unknown model "${name}" (presets: ${Object.values(MODEL_PRESETS).map((m) => m.label).join(', ')})`);
  }
  return p;
}

/** Dimensions `sweep` can vary. */
export const SWEEP_DIMS = ['prefix', 'requests', 'branching', 'leaf'] as const;
export type SweepDim = (typeof SWEEP_DIMS)[number];

export interface SweepShape {
  /** Tokens of the root every request shares. */
  prefix: number;
  requests: number;
  /** Groups under the root; each group has its own `mid`-token node (1 = no middle level). */
  branching: number;
  mid: number;
  /** Tokens of each request's own leaf. */
  leaf: number;
}

export const SWEEP_BASE: SweepShape = { prefix: 4096, requests: 64, branching: 1, mid: 1024, leaf: 256 };

export const SWEEP_DEFAULT_VALUES: Record<SweepDim, number[]> = {
  prefix: [0, 64, 256, 1024, 4096, 16384],
  requests: [1, 2, 4, 8, 16, 32, 64, 128, 256],
  branching: [1, 2, 4, 8, 16, 32, 64],
  leaf: [16, 64, 256, 1024, 4096],
};

/**
 * The sweep family: a root of `prefix` tokens; `branching` groups under it, each with a `mid`-token
 * node when branching > 1; requests spread evenly over the groups, each with its own `leaf`-token
 * leaf. prefix 0 means no shared root (every request independent when branching is 1).
 */
export function sweepTree(shape: SweepShape, config: TreeConfig): TreeSpec {
  const nodes: TreeSpec['nodes'] = [];
  const requests: TreeSpec['requests'] = [];
  const add = (parent: number | null, tokens: number): number => {
    nodes.push({ id: nodes.length, parent, tokens });
    return nodes.length - 1;
  };
  const root = shape.prefix > 0 ? add(null, shape.prefix) : null;
  const groups: Array<number | null> = [];
  const B = Math.max(1, Math.min(shape.branching, shape.requests));
  for (let g = 0; g < B; g++) groups.push(B > 1 ? add(root, shape.mid) : root);
  for (let r = 0; r < shape.requests; r++) {
    const g = groups[Math.floor((r * B) / shape.requests)];
    requests.push({ leaf: add(g, Math.max(1, shape.leaf)) });
  }
  return {
    name: `sweep prefix=${shape.prefix} requests=${shape.requests} branching=${B} leaf=${shape.leaf}`,
    config,
    nodes,
    requests,
  };
}

/** A 1024-request tree of 4 levels for planner timing: root 2048 → 8 × 512 → 64 × 256 → 1024 leaves × 64. */
export function planStressTree(config: TreeConfig): TreeSpec {
  const nodes: TreeSpec['nodes'] = [];
  const requests: TreeSpec['requests'] = [];
  const add = (parent: number | null, tokens: number): number => {
    nodes.push({ id: nodes.length, parent, tokens });
    return nodes.length - 1;
  };
  const root = add(null, 2048);
  for (let a = 0; a < 8; a++) {
    const n1 = add(root, 512);
    for (let b = 0; b < 8; b++) {
      const n2 = add(n1, 256);
      for (let c = 0; c < 16; c++) requests.push({ leaf: add(n2, 64) });
    }
  }
  return { name: '1024 requests, 4 levels', config, nodes, requests };
}
