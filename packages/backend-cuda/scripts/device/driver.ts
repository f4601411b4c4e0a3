/**
 * GPU driver for @canopy/backend-cuda, bundled into one .mjs (scripts/bundle-device.mjs) and run
 * on the device machine next to canopy_cuda.node:
 *
 *   node driver.mjs --out result.json [--mode full|small] [--strategies streams,persistent]
 *                   [--workloads W1,W2,W3,W4,W5] [--iters 100] [--warmup 20] [--no-conformance]
 *
 * 1. availability + device probe (read bandwidth, mma.sync TFLOP/s);
 * 2. the backend-testkit conformance suite (the same code vitest runs, through a vitest shim),
 *    once per launch strategy;
 * 3. W1–W5 (full size) × planners (perRequest, prefix) × strategies: correctness of a few queries
 *    against referenceAttention, then GPU-timed runs: median µs, GB/s on unique KV bytes, % of floor.
 * 4. `--hybrid H1,H2,S1`: hybrid prefill+decode batches built here (see hybridSpec): one plan of
 *    the whole batch per strategy and planner, and the prefill-only + decode-only plans timed as
 *    one step with timeGroup ('serial': back to back, 'concurrent': two streams); outputs of
 *    every plan checked against referenceAttention on a few queries.
 * `--mode small` runs only the conformance suite (for compute-sanitizer).
 */
import { writeFileSync } from 'node:fs';
import {
  attentionFlops,
  numQueriesOf,
  randomQueries,
  requestQueryOffsets,
  referenceBackendFactory,
  referenceAttention,
  uniqueKvTokens,
  validatePlan,
  type AttentionConfig,
  type Batch,
  type BackendFactory,
  type PagedKvCache,
  type Plan,
  type Planner,
} from '@canopy/core';
import { batchFromTree, describeBackendConformance, type TreeSpec } from '@canopy/backend-testkit';
import { planners, prefixPlanner } from '@canopy/planner';
import { KERNEL_ROWS, balancePlan, preparePlan, cudaAvailability, createCudaBackend, type CudaBackend, type LaunchStrategy } from '../../src/index.js';
import { runCollected, type TestResult } from './vitest-shim.js';

import W6 from '../../../../apps/bench/workloads/W6.json' with { type: 'json' };
import W7 from '../../../../apps/bench/workloads/W7.json' with { type: 'json' };
import W8 from '../../../../apps/bench/workloads/W8.json' with { type: 'json' };

interface BenchTree {
  nodes: { id: number; parent: number | null; tokens: number }[];
  requests: { leaf: number }[];
}
const BENCH_TREES: Record<string, BenchTree> = { W6, W7, W8 };
declare const __CANOPY_COMMIT__: string;

const args = process.argv.slice(2);
const arg = (name: string, def?: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const flag = (name: string) => args.includes(`--${name}`);
const outPath = arg('out', 'cuda-result.json')!;
const mode = arg('mode', 'full');
const strategies = arg('strategies', 'streams,persistent')!.split(',') as LaunchStrategy[];
const hybridIds = (arg('hybrid', '') ?? '').split(',').filter(Boolean);
const hybridVariants = (arg('hybrid-variants', '') ?? '').split(',').filter(Boolean);
// --wgmma 0,1,auto: mma.sync, the pipelined wgmma tile for 128-row units, or the backend's per-plan choice.
const wgmmaModes = arg('wgmma', '0')!.split(',').map((x) => (x === 'auto' ? undefined : x === '1'));
const wgmmaName = (w: boolean | undefined) => (w === undefined ? 'auto' : w ? 'wgmma' : 'mma');
const balanceModes = arg('balance', '1,0')!.split(',').map((x) => x === '1');
const workloadIds = arg('workloads', 'W1,W2,W3,W4,W5')!.split(',').filter(Boolean);
const iters = Number(arg('iters', '100'));
// Extra prefix-planner variants with cost-model and planner overrides, e.g. --variants pu264:fpb80,fpb40
// (pu = parallelUnits, fpb = flopPerByte, bw = bandwidthGBs, ov = itemOverheadUs in tenths of a µs,
// sib = siblingByteFactor in hundredths, mc = minChunkTokens, wq = waveSlots, nofuse): to find the model parameters
// that fit these kernels.
const variants: Record<string, Planner> = {};
for (const v of (arg('variants', '') ?? '').split(',').filter(Boolean)) {
  const cost: Record<string, number> = {};
  const opts: { minChunkTokens?: number; fuse?: boolean } = {};
  for (const kv of v.split(':')) {
    if (kv === 'nofuse') {
      opts.fuse = false;
      continue;
    }
    const m = /^(pu|fpb|bw|ov|sib|mc|wq)(\d+)$/.exec(kv);
    if (!m) throw new Error(`bad variant ${v}`);
    const x = Number(m[2]);
    if (m[1] === 'mc') opts.minChunkTokens = x;
    else if (m[1] === 'ov') cost.itemOverheadUs = x / 10;
    else if (m[1] === 'sib') cost.siblingByteFactor = x / 100;
    else if (m[1] === 'wq') cost.waveSlots = x;
    else cost[m[1] === 'pu' ? 'parallelUnits' : m[1] === 'fpb' ? 'flopPerByte' : 'bandwidthGBs'] = x;
  }
  variants[`prefix@${v}`] = (batch, caps) => prefixPlanner(batch, caps, { cost, ...opts });
}
const warmup = Number(arg('warmup', '20'));

// The issue's measured H100 ceilings: floor = max(unique KV bytes / BW, FLOPs / GEMM rate).
const FLOOR_BW_GBS = 3123;
const FLOOR_TFLOPS = 772;
const PEERS: Record<string, { floor: number; pat: number; flashinferCascade: number; goalPrefix: number }> = {
  W1: { floor: 48.4, pat: 88, flashinferCascade: 96, goalPrefix: 60 },
  W2: { floor: 87.3, pat: 138, flashinferCascade: 166, goalPrefix: 110 },
  W3: { floor: 22.7, pat: 79, flashinferCascade: 100, goalPrefix: 35 },
  W4: { floor: 386.8, pat: 421, flashinferCascade: 415, goalPrefix: 415 },
  W5: { floor: 89.4, pat: 301, flashinferCascade: 289, goalPrefix: 115 },
};

const log = (s: string) => console.log(s);
const result: Record<string, unknown> = {
  commit: typeof __CANOPY_COMMIT__ === 'string' ? __CANOPY_COMMIT__ : 'unknown',
  date: new Date().toISOString(),
  args,
};

function save() {
  writeFileSync(outPath, JSON.stringify(result, null, 1));
}

const CONFIG: AttentionConfig = { numQoHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' };

function workloadSpec(id: string): TreeSpec {
  const parent: number[] = [];
  const tokens: number[] = [];
  const requestAt: number[] = [];
  const node = (p: number, t: number) => (parent.push(p), tokens.push(t), parent.length - 1);
  switch (id) {
    case 'W1': {
      const root = node(-1, 4096);
      for (let r = 0; r < 64; r++) requestAt.push(node(root, 512));
      break;
    }
    case 'W2': {
      const root = node(-1, 1024);
      for (let d = 0; d < 8; d++) {
        const doc = node(root, 4096);
        for (let r = 0; r < 16; r++) requestAt.push(node(doc, 256));
      }
      break;
    }
    case 'W3': {
      const root = node(-1, 4000);
      for (let a = 0; a < 4; a++) {
        const na = node(root, 256);
        for (let b = 0; b < 4; b++) {
          const nb = node(na, 256);
          for (let c = 0; c < 4; c++) requestAt.push(node(nb, 128));
        }
      }
      break;
    }
    case 'W4':
      for (let r = 0; r < 64; r++) requestAt.push(node(-1, 4608));
      break;
    case 'W5': {
      const root = node(-1, 16384);
      for (let r = 0; r < 256; r++) requestAt.push(node(root, 64));
      break;
    }
    case 'W6':
    case 'W7':
    case 'W8': {
      // The bench's built-in trees (apps/bench/workloads/*.json, bundled): nodes in id order.
      const w = BENCH_TREES[id];
      for (const n of w.nodes) node(n.parent ?? -1, n.tokens);
      for (const r of w.requests) requestAt.push(r.leaf);
      break;
    }
    default:
      throw new Error(`unknown workload ${id}`);
  }
  return { parent, tokens, requestAt };
}

/** Random f16 KV (never zeros): sign, exponent 8..14 (|x| in [2^-7, 1)), random mantissa. Fast enough for 600 MB pools. */
function fastRandomKv(numPages: number, pageSize: number, cfg: AttentionConfig, seed: number): PagedKvCache {
  const n = numPages * pageSize * cfg.numKvHeads * cfg.headDim;
  const fill = (s: number) => {
    const a = new Uint16Array(n);
    let x = (s * 2654435761) >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const e = 8 + ((x >>> 10) % 7);
      a[i] = (x & 0x83ff) | (e << 10);
    }
    return a;
  };
  return { numPages, pageSize, numKvHeads: cfg.numKvHeads, headDim: cfg.headDim, dtype: 'f16', k: fill(seed), v: fill(seed + 1) };
}

/**
 * Hybrid batches (issue 7), with which requests are prefill and which decode:
 * - H1: one request of 16384 KV tokens whose last 2048 are a causal prefill chunk (2048 queries),
 *   plus 128 decode requests sharing a 4096-token prefix, each with its own 512-token leaf;
 * - H2: W5's tree (16384-token root, 256 decodes with own 64-token leaves) plus four requests
 *   under the same root, each with its own 512-token leaf that is a 512-query prefill chunk;
 * - S1: tree speculation, 8 requests sharing a 4096-token prefix, each with a 64-node draft tree
 *   (binary, one token per node) hanging from the prefix, a 1-query request at every draft node
 *   (512 requests; no prefill part).
 */
function hybridSpec(id: string): { spec: TreeSpec; prefill: number[] } {
  const parent: number[] = [];
  const tokens: number[] = [];
  const requestAt: number[] = [];
  const numQueries: number[] = [];
  const prefill: number[] = [];
  const node = (p: number, t: number) => (parent.push(p), tokens.push(t), parent.length - 1);
  const request = (at: number, nq: number) => {
    if (nq > 1) prefill.push(requestAt.length);
    requestAt.push(at);
    numQueries.push(nq);
  };
  switch (id) {
    case 'H1': {
      request(node(-1, 16384), 2048);
      const prefix = node(-1, 4096);
      for (let r = 0; r < 128; r++) request(node(prefix, 512), 1);
      break;
    }
    case 'H2': {
      const root = node(-1, 16384);
      for (let r = 0; r < 256; r++) request(node(root, 64), 1);
      for (let r = 0; r < 4; r++) request(node(root, 512), 512);
      break;
    }
    case 'S1': {
      const root = node(-1, 4096);
      for (let r = 0; r < 8; r++) {
        const ids: number[] = [];
        for (let k = 0; k < 64; k++) ids.push(node(k === 0 ? root : ids[(k - 1) >> 1], 1));
        for (const n of ids) request(n, 1);
      }
      break;
    }
    default:
      throw new Error(`unknown hybrid batch ${id}`);
  }
  return { spec: { parent, tokens, requestAt, numQueries }, prefill };
}

/** The requests `keep` of a batch (same KV cache and tree; query ids renumbered in order). */
function subBatch(batch: Batch, keep: number[]): Batch {
  const out: Batch = { ...batch, requests: keep.map((r) => batch.requests[r]) };
  if (batch.tree) out.tree = { ...batch.tree, requestLeaf: Int32Array.from(keep.map((r) => batch.tree!.requestLeaf[r])) };
  return out;
}

/** Max |out − ref| / max(1, |ref|) and max |lse − ref| over `ids` (ref rows in ids order). */
function checkOutputs(got: { out: Float32Array; lse: Float32Array }, ref: { out: Float64Array; lse: Float64Array }, ids: Int32Array) {
  const H = CONFIG.numQoHeads;
  const D = CONFIG.headDim;
  let maxRef = 1;
  let outErr = 0;
  let lseErr = 0;
  ids.forEach((q, row) => {
    for (let i = 0; i < H * D; i++) maxRef = Math.max(maxRef, Math.abs(ref.out[row * H * D + i]));
    for (let i = 0; i < H * D; i++) {
      const e = Math.abs(got.out[q * H * D + i] - ref.out[row * H * D + i]);
      outErr = Number.isNaN(e) ? Infinity : Math.max(outErr, e);
    }
    for (let h = 0; h < H; h++) {
      const e = Math.abs(got.lse[q * H + h] - ref.lse[row * H + h]);
      lseErr = Number.isNaN(e) ? Infinity : Math.max(lseErr, e);
    }
  });
  outErr /= maxRef;
  return { queries: Array.from(ids), maxOutErr: outErr, maxLseErr: lseErr, pass: outErr <= 4e-3 && lseErr <= 4e-3 };
}

async function hybrid(backend: CudaBackend) {
  const rows: Record<string, unknown>[] = [];
  const hIters = Number(arg('hybrid-iters', '50'));
  const hWarm = Number(arg('hybrid-warmup', '10'));
  for (const id of hybridIds) {
    const { spec, prefill } = hybridSpec(id);
    const batch = batchFromTree(spec, CONFIG, 16);
    const decodeIds = batch.requests.map((_, r) => r).filter((r) => !prefill.includes(r));
    const parts: Array<[string, Batch]> = [['whole', batch]];
    if (prefill.length > 0) parts.push(['prefill', subBatch(batch, prefill)], ['decode', subBatch(batch, decodeIds)]);
    const cache = fastRandomKv(batch.numPages, batch.pageSize, CONFIG, 23);
    await backend.setKvCache(cache);
    const info: Record<string, unknown> = { id, requests: batch.requests.length, prefillRequests: prefill.length };
    const prepared: Record<string, { batch: Batch; queries: Float32Array; ref: { out: Float64Array; lse: Float64Array }; ids: Int32Array; flops: number; unique: number }> = {};
    for (const [name, b] of parts) {
      const nq = numQueriesOf(b);
      const queries = randomQueries(nq, CONFIG, 101 + name.length);
      // First, middle and last query, plus the first query of every request kind boundary.
      const ids = Int32Array.from(new Set([0, Math.floor(nq / 2), nq - 1, ...requestQueryOffsets(b).slice(1, 3)].filter((q) => q < nq))).sort();
      prepared[name] = { batch: b, queries, ref: referenceAttention(b, cache, queries, { queryIds: ids }), ids, flops: attentionFlops(b), unique: uniqueKvTokens(b) };
      info[`${name}Queries`] = nq;
      info[`${name}Flops`] = attentionFlops(b);
      info[`${name}UniqueKvTokens`] = uniqueKvTokens(b);
    }
    log(`${id}: ${JSON.stringify(info)}`);
    const plans: Record<string, Record<string, Plan>> = {};
    // 'prefix-separate': the prefix planner with hybridLayout 'separate' (prefill and decode
    // queries in separate groups of one plan); only its whole-batch plan is timed.
    // --variants apply here too (their whole-batch and split plans are timed like prefix's).
    const hybridPlanners: Record<string, Planner> = { ...(planners as Record<string, Planner>), 'prefix-separate': (b, c) => prefixPlanner(b, c, { hybridLayout: 'separate' }), ...variants };
    for (const [pname, planner] of Object.entries(hybridPlanners)) {
      plans[pname] = {};
      for (const [name, b] of parts) {
        const t0 = performance.now();
        const plan = planner(b, backend.capabilities);
        validatePlan(plan, b);
        plans[pname][name] = plan;
        log(`  ${id} ${pname} ${name}: ${plan.numItems} items, ${plan.numPartials} partials, planned in ${(performance.now() - t0).toFixed(0)} ms`);
      }
    }
    const row = (r: Record<string, unknown>) => {
      rows.push({ batch: id, ...r });
      result.hybrid = { batches: hybridIds, rows };
      save();
      log(`  ${id} ${String(r.layout).padEnd(22)} ${String(r.planner).padEnd(10)} ${String(r.strategy).padEnd(10)} ${(r.medianUs as number).toFixed(1).padStart(9)} µs  ${r.check ? `err ${JSON.stringify(r.check)}` : ''}`);
    };
    for (const strategy of strategies) {
      backend.strategy = strategy;
      for (const pname of Object.keys(plans)) {
        // One plan of the whole batch (one launch sequence: with 'fused', one attention kernel).
        const w = prepared.whole;
        const got = await backend.run(plans[pname].whole, w.queries);
        const check = checkOutputs(got, w.ref, w.ids);
        const t = await backend.time(plans[pname].whole, w.queries, { warmup: hWarm, iters: hIters });
        row({ layout: 'whole', planner: pname, strategy, medianUs: median(t.timesUs), p10Us: pct(t.timesUs, 10), p90Us: pct(t.timesUs, 90), numItems: plans[pname].whole.numItems, check });
        if (!prepared.prefill || pname !== 'prefix') continue;
        // The baselines: prefill-only and decode-only plans, each checked, then timed as one step.
        const pre = prepared.prefill;
        const dec = prepared.decode;
        const checks = {
          prefill: checkOutputs(await backend.run(plans[pname].prefill, pre.queries), pre.ref, pre.ids),
          decode: checkOutputs(await backend.run(plans[pname].decode, dec.queries), dec.ref, dec.ids),
        };
        for (const mode of ['serial', 'concurrent'] as const) {
          const g = await backend.timeGroup([plans[pname].prefill, plans[pname].decode], [pre.queries, dec.queries], { mode, warmup: hWarm, iters: hIters });
          row({ layout: mode === 'serial' ? 'back-to-back' : 'two-streams', planner: pname, strategy, medianUs: median(g.timesUs), p10Us: pct(g.timesUs, 10), p90Us: pct(g.timesUs, 90), check: checks });
        }
        // Each part alone (what the back-to-back sum is made of).
        for (const part of ['prefill', 'decode'] as const) {
          const t1 = await backend.time(plans[pname][part], prepared[part].queries, { warmup: hWarm, iters: hIters });
          row({ layout: `${part}-only`, planner: pname, strategy, medianUs: median(t1.timesUs), p10Us: pct(t1.timesUs, 10), p90Us: pct(t1.timesUs, 90), numItems: plans[pname][part].numItems });
        }
      }
    }
    // Variants of the whole-batch plan (prefix planner): e.g. fused:f1 (every CTA starts in the
    // compute role), fused:bal (backend balancing: long units split into KV pieces), persistent:bal.
    for (const v of hybridVariants) {
      const [strategy, ...mods] = v.split(':') as [LaunchStrategy, ...string[]];
      backend.strategy = strategy;
      backend.balance = mods.includes('bal');
      backend.wgmma = mods.includes('wg');  // wgmma tiles (sm_90a) for the 8-warp units
      const f = mods.find((m) => /^f[0-9.]+$/.test(m));
      backend.fusedFraction = f ? Number(f.slice(1)) : undefined;
      const w = prepared.whole;
      const check = checkOutputs(await backend.run(plans.prefix.whole, w.queries), w.ref, w.ids);
      const t = await backend.time(plans.prefix.whole, w.queries, { warmup: hWarm, iters: hIters });
      row({ layout: 'whole', variant: v, planner: 'prefix', strategy, medianUs: median(t.timesUs), p10Us: pct(t.timesUs, 10), p90Us: pct(t.timesUs, 90), check });
      if (prepared.prefill && (mods.includes('bal') || mods.includes('wg'))) {
        const pre = prepared.prefill;
        const dec = prepared.decode;
        const g = await backend.timeGroup([plans.prefix.prefill, plans.prefix.decode], [pre.queries, dec.queries], { mode: 'serial', warmup: hWarm, iters: hIters });
        row({ layout: 'back-to-back', variant: v, planner: 'prefix', strategy, medianUs: median(g.timesUs), p10Us: pct(g.timesUs, 10), p90Us: pct(g.timesUs, 90) });
      }
    }
    backend.balance = false;
    backend.wgmma = undefined;
    backend.fusedFraction = undefined;
    const summary: Record<string, unknown> = { batch: id, ...info };
    const pick = (layout: string, strategy?: string) =>
      rows
        .filter((r) => r.batch === id && r.layout === layout && r.planner === 'prefix' && !r.variant && (!strategy || r.strategy === strategy))
        .sort((a, b) => (a.medianUs as number) - (b.medianUs as number))[0];
    const bestVariant = rows
      .filter((r) => r.batch === id && r.layout === 'whole' && r.variant)
      .sort((a, b) => (a.medianUs as number) - (b.medianUs as number))[0];
    summary.bestVariant = bestVariant ? { variant: bestVariant.variant, medianUs: bestVariant.medianUs } : undefined;
    const fused = pick('whole', 'fused');
    const whole = pick('whole');
    const b2b = pick('back-to-back');
    const two = pick('two-streams');
    Object.assign(summary, {
      fusedUs: fused?.medianUs,
      bestWholeUs: whole?.medianUs,
      bestWholeStrategy: whole?.strategy,
      backToBackUs: b2b?.medianUs,
      backToBackStrategy: b2b?.strategy,
      twoStreamsUs: two?.medianUs,
      twoStreamsStrategy: two?.strategy,
      fusedSpeedupVsBackToBack: b2b && fused ? (b2b.medianUs as number) / (fused.medianUs as number) : undefined,
      prefillFlopsTflopsAtFused: fused ? prepared.whole.flops / ((fused.medianUs as number) * 1e-6) / 1e12 : undefined,
    });
    log(`  ${id} summary: ${JSON.stringify(summary)}`);
    (result.hybridSummary ??= [] as unknown[]) as unknown[];
    (result.hybridSummary as unknown[]).push(summary);
    save();
  }
  return rows;
}

function median(a: Float64Array | number[]): number {
  const s = Array.from(a).sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}
function pct(a: Float64Array, p: number): number {
  const s = Array.from(a).sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function conformance(strategy: LaunchStrategy, wgmma: boolean | undefined): Promise<TestResult[]> {
  const factory: BackendFactory = {
    name: `cuda-${strategy}-${wgmmaName(wgmma)}`,
    contractVersion: 1,
    priority: 100,
    probe: cudaAvailability,
    create: () => createCudaBackend({ strategy, wgmma }),
  };
  describeBackendConformance(factory, { planners: planners as Record<string, Planner> });
  return runCollected(log);
}

async function bench(backend: CudaBackend) {
  const rows: Record<string, unknown>[] = [];
  for (const id of workloadIds) {
    const batch: Batch = batchFromTree(workloadSpec(id), CONFIG, 16);
    const unique = uniqueKvTokens(batch);
    const uniqueBytes = unique * CONFIG.numKvHeads * CONFIG.headDim * 2 * 2;
    const flops = attentionFlops(batch);
    const floorUs = Math.max((uniqueBytes / (FLOOR_BW_GBS * 1e9)) * 1e6, (flops / (FLOOR_TFLOPS * 1e12)) * 1e6);
    const t0 = performance.now();
    const cache = fastRandomKv(batch.numPages, batch.pageSize, CONFIG, 17);
    await backend.setKvCache(cache);
    const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
    const queries = randomQueries(nq, CONFIG, 99);
    log(`${id}: ${batch.requests.length} requests, ${unique} unique KV tokens (${(uniqueBytes / 1e6).toFixed(1)} MB), floor ${floorUs.toFixed(1)} µs; KV ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // A few queries checked against the float64 reference (first, middle, last).
    const checkIds = Int32Array.from(new Set([0, Math.floor(nq / 2), nq - 1]));
    const ref = referenceAttention(batch, cache, queries, { queryIds: checkIds });
    for (const [pname, planner] of Object.entries({ ...(planners as Record<string, Planner>), ...variants })) {
      const plan = planner(batch, backend.capabilities);
      validatePlan(plan, batch);
      for (const [strategy, wgmma, balance] of strategies.flatMap((st) =>
        wgmmaModes.flatMap((w) => balanceModes.map((b) => [st, w, b] as const)),
      )) {
        backend.strategy = strategy;
        backend.wgmma = wgmma;
        backend.balance = balance;
        const check = checkOutputs(await backend.run(plan, queries), ref, checkIds);
        const t = await backend.time(plan, queries, { warmup, iters });
        const med = median(t.timesUs);
        const row = {
          workload: id,
          planner: pname,
          strategy,
          wgmma,
          balance,
          numItems: plan.numItems,
          numPartials: plan.numPartials,
          medianUs: med,
          p10Us: pct(t.timesUs, 10),
          p90Us: pct(t.timesUs, 90),
          uniqueKvTokens: unique,
          uniqueKvBytes: uniqueBytes,
          flops,
          gbsUnique: uniqueBytes / (med * 1e-6) / 1e9,
          floorUs,
          pctOfFloor: (floorUs / med) * 100,
          check,
          peers: PEERS[id],
        };
        rows.push(row);
        log(
          `  ${id} ${pname.padEnd(10)} ${strategy.padEnd(10)} ${wgmmaName(wgmma).padEnd(5)} ${balance ? 'bal' : '   '} ${med.toFixed(1).padStart(8)} µs  ${row.gbsUnique.toFixed(0).padStart(5)} GB/s  ${row.pctOfFloor.toFixed(0).padStart(3)}% floor  err ${check.maxOutErr.toExponential(1)}/${check.maxLseErr.toExponential(1)}  items ${plan.numItems}`,
        );
        result.workloads = rows;
        save();
      }
    }
  }
  return rows;
}

async function main() {
  if (flag('selftest')) {
    // Exercise the shim and the suite with the CPU reference backend (no GPU needed).
    describeBackendConformance(referenceBackendFactory, { planners: planners as Record<string, Planner> });
    const r = await runCollected(log);
    result.selftest = { pass: r.filter((x) => x.status === 'pass').length, fail: r.filter((x) => x.status === 'fail').length };
    save();
    return;
  }
  if (flag('dry')) {
    // CPU dry run: plan W1–W5 with both planners for an H100-like capability set and prepare them.
    const caps = {
      kvDtypes: ['f16' as const],
      headDims: [64, 128, 256],
      tileMenu: KERNEL_ROWS.map((rows) => ({ rows, kvBlock: 64 })),
      masks: ['none' as const, 'causal' as const],
      gpuTimers: true,
      parallelUnits: 132,
    };
    for (const id of workloadIds) {
      const batch = batchFromTree(workloadSpec(id), CONFIG, 16);
      for (const [pname, planner] of Object.entries(planners as Record<string, Planner>)) {
        const t0 = performance.now();
        const plan = planner(batch, caps);
        validatePlan(plan, batch);
        const t1 = performance.now();
        for (const bal of [false, true]) {
          const eff = bal ? balancePlan(plan, { slots: 264 }) : plan;
          validatePlan(eff, batch);
          const d = preparePlan(eff, { numPages: batch.numPages, pageSize: 16, numKvHeads: 8, headDim: 128 });
          const t2 = performance.now();
          log(`${id} ${pname}${bal ? '+balance' : ''}: ${eff.numItems} items, ${d.workSorted.length / 4} units (rg groups ${Array.from(d.groupCount)}), ${d.tokRow.length} tokens read, ${d.mergeQueries.length} merged queries; plan ${(t1 - t0).toFixed(0)} ms, prepare ${(t2 - t1).toFixed(0)} ms`);
        }
      }
    }
    for (const id of hybridIds) {
      const { spec, prefill } = hybridSpec(id);
      const batch = batchFromTree(spec, CONFIG, 16);
      const decodeIds = batch.requests.map((_, r) => r).filter((r) => !prefill.includes(r));
      const parts: Array<[string, Batch]> = [['whole', batch]];
      if (prefill.length > 0) parts.push(['prefill', subBatch(batch, prefill)], ['decode', subBatch(batch, decodeIds)]);
      for (const [name, b] of parts) {
        for (const [pname, planner] of Object.entries(planners as Record<string, Planner>)) {
          const t0 = performance.now();
          const plan = planner(b, caps);
          validatePlan(plan, b);
          const t1 = performance.now();
          const d = preparePlan(plan, { numPages: b.numPages, pageSize: 16, numKvHeads: 8, headDim: 128 });
          const t2 = performance.now();
          log(`${id} ${name} ${pname}: ${numQueriesOf(b)} queries, ${(attentionFlops(b) / 1e9).toFixed(1)} GFLOP, ${plan.numItems} items, ${d.workSorted.length / 4} units (rg groups ${Array.from(d.groupCount)}), fused compute fraction ${d.fusedComputeFraction.toFixed(3)}, ${d.mergeQueries.length} merged queries; plan ${(t1 - t0).toFixed(0)} ms, prepare ${(t2 - t1).toFixed(0)} ms`);
        }
      }
    }
    return;
  }
  const avail = await cudaAvailability();
  result.availability = avail;
  log(`availability: ${JSON.stringify(avail)}`);
  save();
  if (!avail.available) {
    process.exitCode = 2;
    return;
  }
  if (!flag('no-conformance')) {
    const conf: Record<string, unknown> = {};
    for (const [s, w] of strategies.flatMap((st) => wgmmaModes.map((x) => [st, x] as const))) {
      const key = `${s}-${wgmmaName(w)}`;
      log(`--- conformance (${key}) ---`);
      const r = await conformance(s, w);
      conf[key] = {
        pass: r.filter((x) => x.status === 'pass').length,
        fail: r.filter((x) => x.status === 'fail').length,
        skip: r.filter((x) => x.status === 'skip').length,
        tests: r,
      };
      result.conformance = conf;
      save();
    }
  }
  if (mode === 'small') return;
  if (mode === 'profile') {
    // One run per workload × planner (prefix and --variants) × strategy × --wgmma mode, for ncu
    // (no timing loops); --profile-runs N runs each N times (a CANOPY_TRACE build prints every
    // run's CTAs; the later runs are warm).
    const backend = await createCudaBackend();
    const runs = Number(arg('profile-runs', '1'));
    for (const id of workloadIds) {
      const batch: Batch = batchFromTree(workloadSpec(id), CONFIG, 16);
      await backend.setKvCache(fastRandomKv(batch.numPages, batch.pageSize, CONFIG, 17));
      const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
      for (const [pname, planner] of Object.entries({ prefix: (planners as Record<string, Planner>).prefix, ...variants })) {
        const plan = planner(batch, backend.capabilities);
        for (const strategy of strategies)
          for (const wgmma of wgmmaModes) {
            backend.strategy = strategy;
            backend.wgmma = wgmma;
            for (let k = 0; k < runs; k++) {
              const r = await backend.run(plan, randomQueries(nq, CONFIG, 99), { timing: true });
              log(`profile ${id} ${pname} ${strategy}/${wgmmaName(wgmma)}: ${r.deviceTimeUs?.toFixed(1)} µs (run ${k + 1})`);
            }
          }
      }
    }
    await backend.dispose();
    return;
  }
  const backend = await createCudaBackend();
  result.device = backend.device;
  result.capabilities = backend.capabilities;
  result.probe = await backend.probe();
  log(`device: ${backend.device}; probe ${JSON.stringify(result.probe)}`);
  save();
  if (hybridIds.length > 0) await hybrid(backend);
  const rows = await bench(backend);
  // Summary: per workload, prefix vs perRequest with the faster strategy of each, and the strategy comparison.
  const summary: Record<string, unknown>[] = [];
  for (const id of workloadIds) {
    const best = (p: string) =>
      rows.filter((r) => r.workload === id && r.planner === p).sort((a, b) => (a.medianUs as number) - (b.medianUs as number))[0];
    const pre = best('prefix');
    const per = best('perRequest');
    if (!pre || !per) continue;
    summary.push({
      workload: id,
      prefixUs: pre.medianUs,
      prefixStrategy: `${pre.strategy}+${wgmmaName(pre.wgmma as boolean | undefined)}${pre.balance ? '+balance' : ''}`,
      perRequestUs: per.medianUs,
      perRequestStrategy: `${per.strategy}+${wgmmaName(per.wgmma as boolean | undefined)}${per.balance ? '+balance' : ''}`,
      speedup: (per.medianUs as number) / (pre.medianUs as number),
      prefixGBs: pre.gbsUnique,
      prefixPctFloor: pre.pctOfFloor,
      goalPrefixUs: PEERS[id]?.goalPrefix,
    });
  }
  result.summary = summary;
  // Geometric-mean time of each launch configuration over all (workload, planner) rows.
  const byConfig: Record<string, number> = {};
  for (const s of strategies) {
    for (const w of wgmmaModes) {
      for (const b of balanceModes) {
        const sel = rows.filter((r) => r.strategy === s && r.wgmma === w && r.balance === b);
        byConfig[`${s}-${wgmmaName(w)}${b ? '-balance' : ''}`] = Math.exp(
          sel.reduce((a, r) => a + Math.log(r.medianUs as number), 0) / Math.max(1, sel.length),
        );
      }
    }
  }
  result.configGeomeanUs = byConfig;
  log(`geomean µs by configuration: ${JSON.stringify(byConfig)}`);
  save();
  log('--- summary ---');
  for (const s of summary) {
    log(
      `${s.workload}: prefix ${(s.prefixUs as number).toFixed(1)} µs (${s.prefixStrategy}, ${(s.prefixPctFloor as number).toFixed(0)}% floor, goal ${s.goalPrefixUs}) | perRequest ${(s.perRequestUs as number).toFixed(1)} µs (${s.perRequestStrategy}) | speedup ${(s.speedup as number).toFixed(2)}x`,
    );
  }
  await backend.dispose();
}

main().catch((e) => {
  result.error = (e as Error).stack ?? String(e);
  save();
  console.error(e);
  process.exitCode = 1;
});
