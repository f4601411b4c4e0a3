/**
 * WebGPU benchmark driver for the device machine (and lavapipe, scaled down): W1–W5 with both
 * planners on the WebGPU backend, checked against referenceAttention on sampled queries, timed
 * with GPU timestamps, plus the WGSL read-bandwidth and f32 FMA probes. Writes one JSON.
 *
 *   node scripts/bundle-device.mjs            # → .device/webgpu/bench.mjs + dawn.node + index.js
 *   node .device/webgpu/bench.mjs --out r.json [--scale 0.05] [--iters 30] [--sweep] [--roles]
 *   (--workloads H1,H2,S1 runs the hybrid steps; --roles adds the one-dispatch configuration;
 *   --blocked adds the register-blocked kernel configurations; --b2 the blocked layout 2, decode
 *   kernel and chunk-bound configurations; --next split-KV bounds and decode settings on the default menu;
 *   --rowfit the maxRowPadding configurations; --configs a,b
 *   keeps only those; --planners prefix; --dispatch-times adds each dispatch's GPU time)
 *   The JSON is rewritten after every workload, so a run cut short still leaves its results.
 */
import {
  attentionFlops,
  kvBytesPerToken,
  randomKvCache,
  randomQueries,
  referenceAttention,
  uniqueKvTokens,
  validatePlan,
  type Batch,
  type Planner,
} from '@canopy/core';
import { perRequest, prefix } from '@canopy/planner';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBatch, scaleTree } from '../../../apps/bench/src/tree.js';
import { builtinWorkload } from '../../../apps/bench/src/workloads.js';
import { WebGpuBackend, BLOCKED_VARIANTS, BLOCKED2_VARIANTS, DEFAULT_VARIANTS, type KernelVariant, type WebGpuBackendOptions } from '../src/index.js';

declare const __CANOPY_COMMIT__: string;

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name: string): boolean => args.includes(`--${name}`);
const outPath = opt('out', 'webgpu-bench.json');
const scale = Number(opt('scale', '1'));
const iters = Number(opt('iters', '30'));
const warmup = Number(opt('warmup', '5'));
const workloads = opt('workloads', 'W1,W2,W3,W4,W5').split(',');
const samples = Number(opt('samples', '6'));
const log = (s: string): void => void process.stderr.write(`${s}\n`);

const here = dirname(fileURLToPath(import.meta.url));
const webgpuPath = opt('webgpu', join(here, 'index.js'));

interface Config {
  name: string;
  options: WebGpuBackendOptions;
}

let configs: Config[] = [
  // the shared-tiling menu (DEFAULT_VARIANTS) whatever CANOPY_WEBGPU_BLOCKED or the default says
  { name: 'shared', options: { blocked: false } },
  { name: 'default', options: {} },
];
// --roles: also every plan's attention units in one dispatch with role selection (attention_roles.wgsl)
if (flag('roles')) configs.push({ name: 'roles', options: { dispatch: 'roles' } });
// --rowfit: items whose rows would leave more than 25% (fit25) or any (fit0) of their tile's rows
// empty run as more row blocks of a smaller variant (maxRowPadding)
if (flag('rowfit')) configs.push({ name: 'fit25', options: { maxRowPadding: 0.25 } }, { name: 'fit0', options: { maxRowPadding: 0 } });
if (flag('blocked')) {
  // BLOCKED_VARIANTS (the GPU default since the 2026-11-23 runs): 4-row direct, 16- and 64-row blocked
  const [d4, b16, b64] = BLOCKED_VARIANTS;
  const r16 = DEFAULT_VARIANTS[1];
  configs.push(
    { name: 'blocked', options: { blocked: true, blockedMenu: 1 } },
    // only the 64-row tile blocked (the 16-row one on the shared-tiling kernel)
    { name: 'blocked64', options: { variants: [d4, r16, b64] } },
    // 8-token KV blocks (39 KiB of workgroup memory instead of 45: more workgroups per SM)
    { name: 'blocked-kv8', options: { variants: [d4, b16, { ...b64, kvBlock: 8, workgroupSize: 128 }] } },
    // 128 invocations: 2 tokens per invocation in S, 16 vec4 of O (BLOCKED_VARIANTS has 256)
    { name: 'blocked-wg128', options: { variants: [d4, b16, { ...b64, workgroupSize: 128 }] } },
    // more KV splits: W5's 64-row units are too few to fill the SMs at the default policy
    { name: 'blocked-split32', options: { blocked: true, split: { targetUnits: 132 * 32 } } },
  );
}
if (flag('b2')) {
  // issue #5 session 4: blocked layout 2 (attention_blocked2.wgsl), the decode kernel
  // (attention_decode.wgsl) and per-variant chunk bounds, against BLOCKED_VARIANTS ('blocked')
  const [d4, b16, b64] = BLOCKED_VARIANTS;
  const b16v2: KernelVariant = { ...b16, blockedVersion: 2 };
  const b64v2: KernelVariant = { ...b64, blockedVersion: 2 };
  const dec: KernelVariant = { ...d4, decode: true };
  configs.push(
    { name: 'blocked', options: { blocked: true, blockedMenu: 1 } },
    { name: 'b2', options: { variants: [d4, b16v2, b64v2] } },
    { name: 'b2-pv2', options: { variants: [d4, b16v2, { ...b64v2, pvRowQuads: 2 }] } },
    { name: 'b2-kv8', options: { variants: [d4, b16v2, { ...b64v2, kvBlock: 8 }] } },
    { name: 'dec', options: { variants: [dec, b16, b64] } },
    { name: 'dec-tt4', options: { variants: [{ ...dec, tokensPerLane: 4 }, b16, b64] } },
    { name: 'dec-tt1', options: { variants: [{ ...dec, tokensPerLane: 1 }, b16, b64] } },
    { name: 'dec-wg256', options: { variants: [{ ...dec, workgroupSize: 256 }, b16, b64] } },
    { name: 'b2dec', options: { variants: [dec, b16v2, b64v2] } },
    { name: 'b2dec-max4096', options: { variants: [dec, b16v2, { ...b64v2, maxChunk: 4096 }] } },
    { name: 'b2dec-min512', options: { variants: [dec, b16v2, { ...b64v2, minChunk: 512 }] } },
    { name: 'b2dec-split8', options: { variants: [dec, b16v2, b64v2], split: { targetUnits: 132 * 8 } } },
  );
}
if (flag('next')) {
  // next step (not yet measured): split-KV bounds and decode settings on BLOCKED2_VARIANTS, the
  // default menu since the b2 run. In that run targetUnits 132·8 gave W1 −10%, W3 −14%, W2 +7%;
  // minChunk 512 on the 64-row variant W2 −5%, W3 −6%, W1 +7% (both with 2 tokens per lane and 1
  // row quad); tokens per lane 1 → 2 → 4 gave W4 945 → 744 → 696 µs
  const [dec, b16, b64] = BLOCKED2_VARIANTS;
  configs.push(
    { name: 'blocked1', options: { blocked: true, blockedMenu: 1 } },
    { name: 'dec-tt8', options: { variants: [{ ...dec, tokensPerLane: 8 }, b16, b64] } },
    { name: 'dec-wg64', options: { variants: [{ ...dec, workgroupSize: 64 }, b16, b64] } },
    { name: 'split8', options: { split: { targetUnits: 132 * 8 } } },
    { name: 'min384', options: { variants: [dec, b16, { ...b64, minChunk: 384 }] } },
    { name: 'min256', options: { variants: [dec, b16, { ...b64, minChunk: 256 }] } },
    { name: 'dec-min256', options: { variants: [{ ...dec, minChunk: 256 }, b16, b64] } },
    { name: 'split12-min384', options: { variants: [dec, b16, { ...b64, minChunk: 384 }], split: { targetUnits: 132 * 12 } } },
    // the two winners of the first --next run (webgpu-h100-next-2026-11-23.json) as one configuration
    { name: 'wg64-min384', options: { variants: [{ ...dec, workgroupSize: 64 }, b16, { ...b64, minChunk: 384 }] } },
    { name: 'wg64-split12-min384', options: { variants: [{ ...dec, workgroupSize: 64 }, b16, { ...b64, minChunk: 384 }], split: { targetUnits: 132 * 12 } } },
  );
}
const only = opt('configs', '');
if (only) configs = configs.filter((c) => only.split(',').includes(c.name));
if (flag('sweep')) {
  const v = (rows: number, kvBlock: number, splits: number, dimsPerThread: number, direct = false): KernelVariant => ({ rows, kvBlock, splits, dimsPerThread, direct });
  const [d4, r16, r64] = DEFAULT_VARIANTS;
  configs.push(
    { name: 'prefetch', options: { variants: [d4, { ...r16, prefetch: true }, { ...r64, prefetch: true }] } },
    { name: 'dec-dpt16', options: { variants: [v(4, 32, 8, 16, true), r16, r64] } },
    { name: 'dec-shared', options: { variants: [v(4, 16, 8, 32), r16, r64] } },
    { name: 'r32', options: { variants: [d4, r16, v(32, 16, 1, 64), r64] } },
    { name: 'splitLess', options: { split: { targetUnits: 132 * 8, minChunk: 64 } } },
    { name: 'noSubgroups', options: { subgroups: false } },
  );
}

function median(a: Float64Array): number {
  const s = Array.from(a).sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const mod = (await import(webgpuPath)) as { create: (flags: string[]) => GPU };
  const gpu = mod.create(['enable-dawn-features=allow_unsafe_apis', 'disable-dawn-features=timestamp_quantization']);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter');
  const info = adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: unknown[] };
  const adapterReport = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    subgroupMinSize: info.subgroupMinSize,
    subgroupMaxSize: info.subgroupMaxSize,
    features: [...(adapter.features as unknown as Iterable<string>)].sort(),
    // class instances with getters: copy the fields so JSON shows them
    subgroupMatrixConfigs: (info.subgroupMatrixConfigs ?? []).map((c) => {
      const x = c as Record<string, unknown>;
      return { componentType: x.componentType, resultComponentType: x.resultComponentType, M: x.M, N: x.N, K: x.K };
    }),
    limits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
    },
  };
  log(`adapter: ${JSON.stringify(adapterReport)}`);
  state.adapter = adapterReport;

  // --planners prefix: only the prefix planner (perRequest plans run the 4-row variant only)
  const wantPlanners = opt('planners', 'perRequest,prefix').split(',');
  const planners: Record<string, Planner> = Object.fromEntries(Object.entries({ perRequest, prefix }).filter(([n]) => wantPlanners.includes(n)));
  const probeBackend = await WebGpuBackend.create({ gpu });
  const probe = await probeBackend.probe();
  log(`probe: ${JSON.stringify(probe)}`);
  state.probe = probe;
  await probeBackend.dispose();

  const results = state.results;
  for (const w of workloads) {
    let spec = builtinWorkload(w);
    if (scale !== 1) spec = scaleTree(spec, { tokens: scale, requests: 1 });
    const batch: Batch = buildBatch(spec);
    const cfg = batch.config;
    const t0 = performance.now();
    const cache = randomKvCache(batch.numPages, batch.pageSize, cfg, 42);
    const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
    const queries = randomQueries(nq, cfg, 43);
    const uniq = uniqueKvTokens(batch);
    const uniqueBytes = uniq * kvBytesPerToken(cfg);
    const flops = attentionFlops(batch);
    // sampled queries for the correctness check (spread over the batch)
    const ids = Int32Array.from({ length: Math.min(samples, nq) }, (_, i) => Math.floor((i * (nq - 1)) / Math.max(1, Math.min(samples, nq) - 1)));
    const ref = referenceAttention(batch, cache, queries, { queryIds: ids });
    log(`${w}: ${nq} queries, ${uniq} unique KV tokens, ${(uniqueBytes / 1e6).toFixed(1)} MB, ${(flops / 1e9).toFixed(2)} GFLOP (setup ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    const floorBwUs = probe.readBandwidthGBs ? uniqueBytes / (probe.readBandwidthGBs * 1e3) : undefined;
    const floorFlopUs = probe.peakTflops ? flops / (probe.peakTflops * 1e6) : undefined;
    for (const c of configs) {
      const b = await WebGpuBackend.create({ gpu, ...c.options });
      try {
        await b.setKvCache(cache);
        const row: Record<string, unknown> = { workload: w, config: c.name, scale, numQueries: nq, uniqueKvTokens: uniq, uniqueKvBytes: uniqueBytes, flops };
        for (const [pname, planner] of Object.entries(planners)) {
          const plan = planner(batch, b.capabilities);
          validatePlan(plan, batch);
          const got = await b.run(plan, queries);
          let maxErr = 0;
          const H = cfg.numQoHeads;
          const D = cfg.headDim;
          ids.forEach((q, k) => {
            for (let x = 0; x < H * D; x++) maxErr = Math.max(maxErr, Math.abs(got.out[q * H * D + x] - ref.out[k * H * D + x]));
            for (let h = 0; h < H; h++) maxErr = Math.max(maxErr, Math.abs(got.lse[q * H + h] - ref.lse[k * H + h]));
          });
          const t = await b.time(plan, queries, { warmup, iters });
          const us = median(t.timesUs);
          const layout = b.layoutOf(plan, queries);
          // --dispatch-times: each dispatch in its own timestamped pass (where the time goes)
          const dispatchTimes = flag('dispatch-times') && t.clock === 'gpu' ? await b.timeDispatches(plan, queries, { warmup, iters }) : undefined;
          row[pname] = {
            us,
            minUs: Math.min(...t.timesUs),
            clock: t.clock,
            gbs: uniqueBytes / (us * 1e3),
            pctOfBwFloor: floorBwUs ? (100 * floorBwUs) / us : undefined,
            pctOfFloor: floorBwUs && floorFlopUs ? (100 * Math.max(floorBwUs, floorFlopUs)) / us : undefined,
            maxErr,
            items: plan.numItems,
            tiles: plan.tiles,
            ...layout,
            ...(dispatchTimes ? { dispatchTimes } : {}),
          };
          log(`  ${c.name} ${pname}: ${us.toFixed(1)} µs, ${(uniqueBytes / (us * 1e3)).toFixed(0)} GB/s, err ${maxErr.toExponential(2)}, ${plan.numItems} items, ${layout.numUnits} units`);
          if (dispatchTimes) log(`    dispatches: ${dispatchTimes.map((d) => `${d.kernel} ×${d.workgroups} ${d.us.toFixed(1)} µs`).join(' | ')}`);
        }
        const pr = row.prefix as { us: number } | undefined;
        const pq = row.perRequest as { us: number } | undefined;
        if (pr && pq) row.speedup = pq.us / pr.us;
        row.floorBwUs = floorBwUs;
        row.floorFlopUs = floorFlopUs;
        results.push(row);
      } finally {
        await b.dispose();
      }
    }
    write();
  }
  write();
  log(`wrote ${outPath}`);
}

/** What write() puts in the JSON (filled in as the run goes). */
const state: { adapter?: unknown; probe?: unknown; results: unknown[] } = { results: [] };

function write(): void {
  const report = {
    tool: '@canopy/backend-webgpu scripts/bench-device.ts',
    date: new Date().toISOString(),
    commit: typeof __CANOPY_COMMIT__ === 'string' ? __CANOPY_COMMIT__ : 'unknown',
    node: process.version,
    adapter: state.adapter,
    probe: state.probe,
    configs: configs.map((c) => ({ name: c.name, options: c.options })),
    iters,
    warmup,
    results: state.results,
  };
  writeFileSync(outPath, JSON.stringify(report, null, 1));
}

main().then(
  () => process.exit(0),
  (e) => {
    log(`FAILED: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
