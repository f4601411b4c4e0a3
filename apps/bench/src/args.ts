/** Command-line parsing for canopy-bench: errors are UsageErrors (exit code 2) naming the option. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CanopyError } from '@canopy/core';

export class UsageError extends CanopyError {
  constructor(message: string) {
    super('usage', message);
  }
}

export const COMMANDS = ['run', 'sweep', 'compare', 'report', 'summary', 'plan', 'list', 'help'] as const;
export type Command = (typeof COMMANDS)[number];

const COMMON = {
  workload: { type: 'string', short: 'w', multiple: true },
  tree: { type: 'string', multiple: true },
  backend: { type: 'string', short: 'b' },
  'backend-module': { type: 'string', multiple: true },
  planner: { type: 'string', short: 'p' },
  'hybrid-layout': { type: 'string' },
  seed: { type: 'string' },
  iters: { type: 'string' },
  json: { type: 'string' },
  html: { type: 'string' },
  dump: { type: 'string' },
  model: { type: 'string', short: 'm' },
  'kv-dtype': { type: 'string' },
  'page-size': { type: 'string' },
  scale: { type: 'string' },
  'request-scale': { type: 'string' },
  full: { type: 'boolean' },
  timeout: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  color: { type: 'boolean' },
  'no-color': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  // sweep
  dim: { type: 'string' },
  values: { type: 'string' },
  prefix: { type: 'string' },
  requests: { type: 'string' },
  branching: { type: 'string' },
  leaf: { type: 'string' },
  // compare
  threshold: { type: 'string' },
  // plan
  explain: { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

export type Options = {
  [K in keyof typeof COMMON]?: (typeof COMMON)[K] extends { type: 'boolean' } ? boolean : (typeof COMMON)[K] extends { multiple: true } ? string[] : string;
};

export interface Parsed {
  command: Command;
  options: Options;
  positionals: string[];
}

export function parseCli(argv: string[]): Parsed {
  let command: Command = 'run';
  let rest = argv;
  if (argv[0] && !argv[0].startsWith('-')) {
    if (!(COMMANDS as readonly string[]).includes(argv[0])) {
      throw new UsageError(`unknown command "${argv[0]}" (commands: ${COMMANDS.join(', ')}; default: run)`);
    }
    command = argv[0] as Command;
    rest = argv.slice(1);
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: COMMON, allowPositionals: true, strict: true });
    if (!['compare', 'summary', 'report'].includes(command) && positionals.length > 0) {
      throw new UsageError(`unexpected argument "${positionals[0]}" (options start with --; see canopy-bench --help)`);
    }
    return { command, options: values as Options, positionals };
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${msg} (see canopy-bench --help)`);
  }
}

export function intOption(v: string | undefined, name: string, min: number, fallback: number): number;
export function intOption(v: string | undefined, name: string, min: number): number | undefined;
export function intOption(v: string | undefined, name: string, min: number, fallback?: number): number | undefined {
  if (v === undefined) return fallback;
  if (!/^-?\d+$/.test(v.trim())) throw new UsageError(`--${name} must be an integer, got "${v}"`);
  const n = Number(v);
  if (n < min) throw new UsageError(`--${name} must be at least ${min}, got ${n}`);
  return n;
}

/** A factor in (0, 1]: "0.25", "1/16". */
export function factorOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(\d+(?:\.\d+)?))?\s*$/.exec(v);
  const f = m ? Number(m[1]) / (m[2] ? Number(m[2]) : 1) : NaN;
  if (!(f > 0 && f <= 1)) throw new UsageError(`--${name} must be a factor in (0, 1] such as 0.25 or 1/16, got "${v}"`);
  return f;
}

export const HELP = `canopy-bench: what prefix-aware attention buys on your GPU and your batch shapes

Usage:
  canopy-bench [run] [options]            benchmark workloads × backends × planners
  canopy-bench sweep --dim D [options]    vary one dimension; show where prefix starts to win
  canopy-bench compare A.json B.json      ratios between two runs (regressions)
  canopy-bench report RUN.json [--html F] re-render a saved run (tables, HTML page)
  canopy-bench summary RUN.json           the run's summary as a Markdown table (for a README)
  canopy-bench plan [--workload W] [--explain] [--json FILE]
                                          planning time (full build, incremental step) / explain a plan
  canopy-bench list                       workloads, model presets and backends

Workloads:
  -w, --workload W     W1..W8, H1, H2, S1 (comma list or repeated), "canonical" (W1–W5, the
                       default), "hybrid" (H1, H2, S1) or "all".
                       W1–W5 are the canonical decode steps; W6 chat serving, W7 RAG, W8 agent tree
                       search are real-world shaped (sources in apps/bench/workloads/README.md);
                       H1, H2 mix prefill chunks with decodes (also timed as a prefill batch and a
                       decode batch back to back and on two streams, where the backend can), S1 is
                       speculative decoding with draft trees.
      --tree FILE      your own tree JSON (repeatable):
                       {"config": {"numQoHeads": 32, "numKvHeads": 8, "headDim": 128, "pageSize": 16,
                        "kvDtype": "f16"}, "nodes": [{"id": 0, "parent": null, "tokens": 4096},
                        {"id": 1, "parent": 0, "tokens": 512}], "requests": [{"leaf": 1}]}
                       optional: "queries": n on a request (a prefill chunk: the last n tokens of
                       its path), "draft": true on a one-token node (a draft token with a query)
  -m, --model NAME     attention shape preset (Llama-3-8B, Llama-3-70B, Qwen2-7B, Mistral-7B, …)
      --kv-dtype f16|f32, --page-size N   override the workload's KV dtype / page size

Backends and planners:
  -b, --backend B      auto (default: CUDA, then WebGPU, then reference), all, or a comma list
                       (reference, cuda, webgpu, …)
      --backend-module PATH   also load backends (BackendFactory exports) from a module
  -p, --planner P      perRequest, prefix or both (default)
      --hybrid-layout L   prefix planner on hybrid batches: separate (the planner's default: the
                       two kinds in separate groups of one plan) or packed (one group per shared
                       node with prefill and decode queries)

Measurement:
      --seed N         data seed (default 1): queries use N, K N+1, V N+2
      --iters N        exactly N timed iterations (default: adaptive until the median is stable)
      --scale F        multiply every node's tokens by F (0 < F ≤ 1), on every backend
      --request-scale F   keep a fraction F of the requests (evenly spread)
      --timeout S      seconds one backend call may take before the backend counts as hung and
                       is skipped for the rest of the run (default 120 on GPUs, 300 on CPUs,
                       3600 on CPUs at full size)
      --full           run the reference backend at full size too (default there: tokens ×1/16,
                       requests ×1/8; GPU backends always run full size unless --scale is given)

Output:
      --json FILE      records (schema apps/bench/schema/run.schema.json)
      --html FILE      self-contained report page with SVG charts
      --dump DIR       q.npy, k.npy, v.npy, requests.json, out.npy, lse.npy, manifest.json
  -q, --quiet          plain progress lines, no bar, fewer notes
      --no-color       no ANSI colours

Sweep: --dim prefix|requests|branching|leaf [--values a,b,c] [--prefix N --requests N
       --branching N --leaf N] (base: prefix 4096, requests 64, branching 1, leaf 256)
Compare: --threshold PCT   exit 1 when any median is slower by more than PCT percent

Every run checks its output against referenceAttention (all queries when cheap, else 64 spread
evenly) and reports no time for a wrong result (exit code 1).`;
