// Host-side plan preparation (tokRow, work units, direct-write slots, merge list), checked by
// executing the prepared arrays exactly as the kernels read them, in float64 on the CPU, and
// comparing with core's referenceAttention. This covers everything but the device arithmetic
// (which the conformance suite checks on the GPU).
import {
  CanopyError,
  kvToFloat32,
  randomKvCache,
  randomQueries,
  referenceAttention,
  softmaxScale,
  SeededRng,
  validatePlan,
  type BackendCapabilities,
  type PagedKvCache,
  type Plan,
} from '@canopy/core';
import { batchFromTree, buildCaseBatch, conformanceCases } from '@canopy/backend-testkit';
import { planners } from '@canopy/planner';
import { describe, expect, it } from 'vitest';
import { DEFAULT_FUSED_RATES, KERNEL_ROWS, SHORT_UNIT_TOKENS, TINY_UNIT_TOKENS, WGMMA_PIPE_MIN_RATIO, balancePlan, fusedComputeFraction, fusedStartFraction, kernelWarps, preparePlan, rowGroupsFor, wgmmaPipeWorthIt } from '../src/index.js';
import type { NativePlanDesc } from '../src/native.js';

const CAPS: BackendCapabilities = {
  kvDtypes: ['f16', 'f32'],
  headDims: [64, 128, 256],
  tileMenu: KERNEL_ROWS.map((rows) => ({ rows, kvBlock: 64 })),
  masks: ['none', 'causal'],
  gpuTimers: true,
  parallelUnits: 132,
};

/** Execute the prepared arrays the way the attention and merge kernels do (float64). */
function emulate(plan: Plan, d: NativePlanDesc, cache: PagedKvCache, queries: Float32Array, order: 'grouped' | 'sorted') {
  const { numQoHeads: H, headDim: D, group: G } = d;
  const HK = cache.numKvHeads;
  const K = kvToFloat32(cache.k);
  const V = kvToFloat32(cache.v);
  const scale = softmaxScale(plan.config);
  const out = new Float64Array(d.numQueries * H * D).fill(Number.NaN);
  const lse = new Float64Array(d.numQueries * H).fill(Number.NaN);
  const partO = new Float64Array(d.numPartials * H * D).fill(Number.NaN);
  const partLse = new Float64Array(d.numPartials * H).fill(Number.NaN);
  const work = order === 'grouped' ? d.workGrouped : d.workSorted;
  const covered = new Set<string>();
  for (let u = 0; u < work.length / 4; u++) {
    const [item, h, rb, rg] = work.subarray(u * 4, u * 4 + 4);
    const R = 16 * rg;
    const tb = d.itemTokBegin[item];
    const ntok = d.itemTokBegin[item + 1] - tb;
    const qb = d.itemQueryBegin[item];
    const nq = d.itemQueryBegin[item + 1] - qb;
    for (let r = 0; r < R; r++) {
      const gr = rb * R + r;
      if (gr >= nq * G) continue;
      const key = `${item}/${h}/${gr}`;
      expect(covered.has(key), `row ${key} computed twice`).toBe(false);
      covered.add(key);
      const lq = Math.floor(gr / G);
      const hq = h * G + (gr % G);
      const q = d.itemQueries[qb + lq];
      const lim = Math.min(Math.max(d.queryKvLimit[q] - d.itemPos[item], 0), ntok);
      const s = new Float64Array(lim);
      let m = -Infinity;
      for (let t = 0; t < lim; t++) {
        const ko = (d.tokRow[tb + t] * HK + h) * D;
        let dot = 0;
        for (let x = 0; x < D; x++) dot += queries[(q * H + hq) * D + x] * K[ko + x];
        s[t] = dot * scale;
        m = Math.max(m, s[t]);
      }
      const o = new Float64Array(D);
      let l = 0;
      for (let t = 0; t < lim; t++) {
        const w = Math.exp(s[t] - m);
        l += w;
        const vo = (d.tokRow[tb + t] * HK + h) * D;
        for (let x = 0; x < D; x++) o[x] += w * V[vo + x];
      }
      const slot = d.itemPartialBase[item] + lq;
      const dest = d.slotDest[slot];
      const [O, L, row] = dest >= 0 ? [out, lse, dest * H + hq] : [partO, partLse, slot * H + hq];
      for (let x = 0; x < D; x++) O[row * D + x] = l > 0 ? o[x] / l : 0;
      L[row] = l > 0 ? m + Math.log(l) : -Infinity;
    }
  }
  for (const q of d.mergeQueries) {
    for (let h = 0; h < H; h++) {
      let M = -Infinity;
      for (let j = d.mergeBegin[q]; j < d.mergeBegin[q + 1]; j++) M = Math.max(M, partLse[d.mergeSlots[j] * H + h]);
      const acc = new Float64Array(D);
      let L = 0;
      if (M > -Infinity) {
        for (let j = d.mergeBegin[q]; j < d.mergeBegin[q + 1]; j++) {
          const row = d.mergeSlots[j] * H + h;
          if (partLse[row] === -Infinity) continue;
          const w = Math.exp(partLse[row] - M);
          L += w;
          for (let x = 0; x < D; x++) acc[x] += w * partO[row * D + x];
        }
      }
      for (let x = 0; x < D; x++) out[(q * H + h) * D + x] = L > 0 ? acc[x] / L : 0;
      lse[q * H + h] = L > 0 ? M + Math.log(L) : -Infinity;
    }
  }
  return { out, lse, covered: covered.size };
}

function maxErr(a: Float64Array, b: Float64Array): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i] - b[i]);
    e = Number.isNaN(x) ? Infinity : Math.max(e, x);
  }
  return e;
}

function rowsOf(plan: Plan): number {
  const G = plan.config.numQoHeads / plan.config.numKvHeads;
  let n = 0;
  for (let i = 0; i < plan.numItems; i++) n += (plan.itemQueryBegin[i + 1] - plan.itemQueryBegin[i]) * G * plan.config.numKvHeads;
  return n;
}

describe('preparePlan executed as the kernels read it matches referenceAttention', () => {
  for (const c of conformanceCases()) {
    for (const [pname, planner] of Object.entries(planners)) {
      it(`${c.name} [${pname}]`, () => {
        const batch = buildCaseBatch(c);
        const cache = randomKvCache(batch.numPages, batch.pageSize, c.config, 5);
        const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
        const queries = randomQueries(nq, c.config, 6);
        const plan = planner(batch, CAPS);
        const d = preparePlan(plan, cache);
        const ref = referenceAttention(batch, cache, queries);
        for (const order of ['grouped', 'sorted'] as const) {
          const got = emulate(plan, d, cache, queries, order);
          expect(got.covered, 'every (item, KV head, row) exactly once').toBe(rowsOf(plan));
          expect(maxErr(got.out, ref.out)).toBeLessThan(1e-9);
          expect(maxErr(got.lse, ref.lse)).toBeLessThan(1e-9);
        }
        // Units grouped per tile kernel; the persistent list is two families by CTA shape.
        const counts = [0, 0, 0, 0];
        for (let u = 0; u < d.workGrouped.length / 4; u++) counts[[1, 2, 4, 8].indexOf(d.workGrouped[u * 4 + 3])]++;
        expect(Array.from(d.groupCount)).toEqual(counts);
        // Persistent list: one family (CTA shape) after the other, each longest first.
        const fam = Array.from({ length: d.workSorted.length / 4 }, (_, u) => kernelWarps(d.headDim, d.workSorted[u * 4 + 3]));
        expect(fam.filter((f, u) => u > 0 && f !== fam[u - 1]).length).toBeLessThanOrEqual(1);
      });
    }
  }
});

describe('balancePlan splits long items into a plan that still means the same', () => {
  for (const c of conformanceCases()) {
    for (const [pname, planner] of Object.entries(planners)) {
      it(`${c.name} [${pname}]`, () => {
        const batch = buildCaseBatch(c);
        const cache = randomKvCache(batch.numPages, batch.pageSize, c.config, 11);
        const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
        const queries = randomQueries(nq, c.config, 12);
        const plan = planner(batch, CAPS);
        // Few slots and tiny pieces: force splits even on these small cases.
        const bal = balancePlan(plan, { slots: 2, minTokens: 4, targetFraction: 0.05 });
        validatePlan(bal, batch);
        const tokens = (p: Plan) => p.segTokens.reduce((a, b) => a + b, 0);
        expect(tokens(bal)).toBe(tokens(plan));
        const longest = (p: Plan) => Math.max(0, ...Array.from({ length: p.numItems }, (_, i) => p.segTokens.slice(p.itemSegBegin[i], p.itemSegBegin[i + 1]).reduce((a, b) => a + b, 0)));
        expect(longest(bal)).toBeLessThanOrEqual(longest(plan));
        const got = emulate(bal, preparePlan(bal, cache), cache, queries, 'sorted');
        const ref = referenceAttention(batch, cache, queries);
        expect(maxErr(got.out, ref.out)).toBeLessThan(1e-9);
        expect(maxErr(got.lse, ref.lse)).toBeLessThan(1e-9);
      });
    }
  }
  it('splits a long item into pieces of at least minTokens', () => {
    const c = conformanceCases().find((x) => x.name.startsWith('one request, d256, GQA 4'))!;
    const batch = buildCaseBatch(c);
    const plan = planners.perRequest(batch, CAPS);
    const bal = balancePlan(plan, { slots: 1, minTokens: 16, targetFraction: 0.01 });
    validatePlan(bal, batch);
    expect(bal.numItems).toBeGreaterThan(plan.numItems);
    const sizes = (p: Plan) =>
      Array.from({ length: p.numItems }, (_, i) => p.segTokens.slice(p.itemSegBegin[i], p.itemSegBegin[i + 1]).reduce((a, b) => a + b, 0));
    // Pieces are never cut below minTokens (items the planner made shorter stay as they were).
    expect(Math.min(...sizes(bal))).toBeGreaterThanOrEqual(Math.min(16, ...sizes(plan)));
  });
  it('leaves a balanced plan alone', () => {
    const c = conformanceCases()[0];
    const plan = planners.prefix(buildCaseBatch(c), CAPS);
    expect(balancePlan(plan, { slots: 1 })).toBe(plan);
  });
});

describe('any tile id runs', () => {
  it('tiles of 1 to 1000 rows assigned at random give the same result', () => {
    const c = conformanceCases().find((x) => x.name.startsWith('1000 requests'))!;
    const batch = buildCaseBatch(c);
    const cache = randomKvCache(batch.numPages, batch.pageSize, c.config, 8);
    const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
    const queries = randomQueries(nq, c.config, 9);
    const plan = planners.prefix(batch, CAPS);
    const rng = new SeededRng(3);
    const tiles = [1, 5, 16, 17, 48, 64, 100, 128, 1000].map((rows) => ({ rows, kvBlock: 64 }));
    const shuffled: Plan = { ...plan, tiles, itemTile: plan.itemTile.map(() => rng.nextU32() % tiles.length) };
    const got = emulate(shuffled, preparePlan(shuffled, cache), cache, queries, 'sorted');
    const ref = referenceAttention(batch, cache, queries);
    expect(maxErr(got.out, ref.out)).toBeLessThan(1e-9);
  });

  it('rowGroupsFor caps the tile at the rows the item has', () => {
    expect(rowGroupsFor(128, 4)).toBe(1);
    expect(rowGroupsFor(16, 1000)).toBe(1);
    expect(rowGroupsFor(64, 40)).toBe(4);
    expect(rowGroupsFor(1000, 1000)).toBe(8);
    expect(rowGroupsFor(32, 32)).toBe(2);
  });
});

describe('malformed plans fail with a CanopyError naming the problem', () => {
  const c = conformanceCases()[0];
  const batch = buildCaseBatch(c);
  const kv = { numPages: batch.numPages, pageSize: batch.pageSize, numKvHeads: c.config.numKvHeads, headDim: c.config.headDim };
  const plan = () => planners.prefix(batch, CAPS);
  it('page id out of range', () => {
    const p = plan();
    p.segPage = p.segPage.slice();
    p.segPage[0] = batch.numPages;
    expect(() => preparePlan(p, kv)).toThrow(CanopyError);
    expect(() => preparePlan(p, kv)).toThrow(/page id .* out of range/);
  });
  it('slots past the page end', () => {
    const p = plan();
    p.segSlot = p.segSlot.slice();
    p.segSlot[0] = batch.pageSize;
    expect(() => preparePlan(p, kv)).toThrow(/exceed page size/);
  });
  it('tile id out of range', () => {
    const p = plan();
    p.itemTile = p.itemTile.slice();
    p.itemTile[0] = p.tiles.length;
    expect(() => preparePlan(p, kv)).toThrow(/tile id/);
  });
  it('partial slot out of range', () => {
    const p = plan();
    p.mergeSlots = p.mergeSlots.slice();
    p.mergeSlots[0] = p.numPartials;
    expect(() => preparePlan(p, kv)).toThrow(/partial slot/);
  });
  it('KV shape differs from the plan', () => {
    expect(() => preparePlan(plan(), { ...kv, headDim: kv.headDim * 2 })).toThrow(/KV cache holds/);
  });
});

describe('fused strategy role split', () => {
  it('fusedComputeFraction weighs compute time against memory time', () => {
    const rates = { computeTflops: 100, memoryGBs: 1000 };
    expect(fusedComputeFraction(0, 1e9, rates)).toBe(0);
    expect(fusedComputeFraction(1e12, 0, rates)).toBe(1);
    // 1e12 FLOP at 100 TFLOP/s = 10 ms; 1e10 B at 1000 GB/s = 10 ms → half.
    expect(fusedComputeFraction(1e12, 1e10, rates)).toBeCloseTo(0.5, 12);
    expect(fusedComputeFraction(0, 0, rates)).toBe(0.5);
  });

  it('fusedStartFraction starts every CTA on the compute list once compute is at least half', () => {
    expect(fusedStartFraction(0.5)).toBe(1);
    expect(fusedStartFraction(0.97)).toBe(1);
    expect(fusedStartFraction(0.3)).toBe(0.3);
    expect(fusedStartFraction(0)).toBe(0);
  });

  it('counts only visible tokens: a causal prefill chunk costs about half its square', () => {
    const cfg = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' as const };
    // One request of 1024 tokens whose last 512 are queries (8-warp tiles) and 32 decodes of 256 tokens (4-warp tiles).
    const spec = { parent: [-1, -1], tokens: [1024, 256], requestAt: [0, ...Array(32).fill(1)], numQueries: [512, ...Array(32).fill(1)] };
    const batch = batchFromTree(spec, cfg, 16);
    const caps = { ...CAPS, tileMenu: [{ rows: 16, kvBlock: 64 }, { rows: 128, kvBlock: 64 }] };
    const plan = planners.perRequest(batch, caps);
    validatePlan(plan, batch);
    const kv = { numPages: batch.numPages, pageSize: 16, numKvHeads: 2, headDim: 64 };
    const rates = { computeTflops: 1, memoryGBs: 1 };
    const d = preparePlan(plan, kv, { fusedRates: rates });
    // Independent count: per 8-warp unit, tile rows × the largest visible prefix of its queries.
    let flops = 0;
    let bytes = 0;
    const G = 4;
    for (let u = 0; u < d.workSorted.length / 4; u++) {
      const [item, , rb, rg] = d.workSorted.subarray(u * 4, u * 4 + 4);
      const R = 16 * rg;
      const q0 = plan.itemQueryBegin[item];
      const nq = plan.itemQueryBegin[item + 1] - q0;
      const ntok = d.itemTokBegin[item + 1] - d.itemTokBegin[item];
      let vis = 0;
      for (let r = rb * R; r < Math.min((rb + 1) * R, nq * G); r++) {
        const q = plan.itemQueries[q0 + Math.floor(r / G)];
        vis = Math.max(vis, Math.min(ntok, plan.queryKvLimit[q] - plan.itemPos[item]));
      }
      if (kernelWarps(64, rg) === 8) flops += 4 * R * vis * 64;
      else bytes += vis * 64 * 2 * 2;
    }
    expect(flops).toBeGreaterThan(0);
    expect(bytes).toBeGreaterThan(0);
    // Causal: less than if every prefill unit read its whole item.
    let fullFlops = 0;
    for (let u = 0; u < d.workSorted.length / 4; u++) {
      const [item, , , rg] = d.workSorted.subarray(u * 4, u * 4 + 4);
      if (kernelWarps(64, rg) === 8) fullFlops += 4 * 16 * rg * (d.itemTokBegin[item + 1] - d.itemTokBegin[item]) * 64;
    }
    expect(flops).toBeLessThan(0.9 * fullFlops);
    const estimate = fusedComputeFraction(flops, bytes, rates);
    expect(estimate).toBeGreaterThan(0);
    expect(estimate).toBeLessThan(1);
    expect(d.fusedComputeFraction).toBe(fusedStartFraction(estimate));
    // Memory-heavy rates: the estimate drops below one half and is used as is.
    const slowMem = { computeTflops: 1e6, memoryGBs: 1e-3 };
    const d2 = preparePlan(plan, kv, { fusedRates: slowMem });
    expect(d2.fusedComputeFraction).toBeCloseTo(fusedComputeFraction(flops, bytes, slowMem), 12);
    expect(d2.fusedComputeFraction).toBeLessThan(0.5);
  });
});

describe('per-plan choice of the pipelined wgmma tile', () => {
  it('takes the tile for plans without 64-row units, else compares compute with memory time', () => {
    const r = DEFAULT_FUSED_RATES;
    const bytesFor = (us: number) => us * 1e-6 * r.memoryGBs * 1e9;
    const flopsFor = (us: number) => us * 1e-6 * r.computeTflops * 1e12;
    expect(wgmmaPipeWorthIt(0, 0)).toBe(false); // no 128-row units
    expect(wgmmaPipeWorthIt(flopsFor(10), 0)).toBe(true); // nothing else to share the SMs with
    // without 64-row work the tile wins whatever the decode memory time
    expect(wgmmaPipeWorthIt(flopsFor(10), bytesFor(1000))).toBe(true);
    // with any 64-row work, the compute/memory ratio decides
    expect(wgmmaPipeWorthIt(flopsFor(10), bytesFor(1000), r, flopsFor(0.1))).toBe(false);
    const rg4 = flopsFor(1);
    expect(wgmmaPipeWorthIt(flopsFor(10), bytesFor(10 / (WGMMA_PIPE_MIN_RATIO * 0.99)), r, rg4)).toBe(false); // memory a bit longer
    expect(wgmmaPipeWorthIt(flopsFor(10), bytesFor(10 / (WGMMA_PIPE_MIN_RATIO * 1.01)), r, rg4)).toBe(true);
  });

  // Shapes of W1 (a shared root under many long leaves: memory time dominates) and W5 (a long root
  // under many short leaves: compute dominates), at a smaller scale (both sides scale with tokens).
  const CFG128 = { numQoHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' as const };
  const shape = (root: number, requests: number, leaf: number) => ({
    parent: [-1, ...Array.from({ length: requests }, () => 0)],
    tokens: [root, ...Array.from({ length: requests }, () => leaf)],
    requestAt: Array.from({ length: requests }, (_, i) => i + 1),
  });
  const choose = (root: number, requests: number, leaf: number) => {
    const batch = batchFromTree(shape(root, requests, leaf), CFG128, 16);
    const plan = planners.prefix(batch, { ...CAPS, kvDtypes: ['f16'] });
    const kv = { numPages: batch.numPages, pageSize: batch.pageSize, numKvHeads: 8, headDim: 128 };
    const d = preparePlan(plan, kv);
    return { pipe: d.wgmma, rg8Units: d.groupCount[3], forced: preparePlan(plan, kv, { wgmma: false }).wgmma };
  };
  it('picks the pipelined tile for W1- and W5-shaped steps, mma.sync for a W2-shaped one', () => {
    const w1 = choose(512, 64, 64);
    expect(w1.rg8Units).toBeGreaterThan(0);
    expect(w1.pipe).toBe(true);
    const w5 = choose(2048, 256, 8);
    expect(w5.rg8Units).toBeGreaterThan(0);
    expect(w5.pipe).toBe(true);
    expect(w5.forced).toBe(false); // an explicit setting wins
    // W2's shape: shared documents under 16 requests each (64-row units) outweigh the root's 128-row units
    const docs = 4;
    const tree = {
      parent: [-1, ...Array.from({ length: docs }, () => 0), ...Array.from({ length: docs * 16 }, (_, i) => 1 + Math.floor(i / 16))],
      tokens: [256, ...Array.from({ length: docs }, () => 1024), ...Array.from({ length: docs * 16 }, () => 16)],
      requestAt: Array.from({ length: docs * 16 }, (_, i) => 1 + docs + i),
    };
    const batch = batchFromTree(tree, CFG128, 16);
    const plan = planners.prefix(batch, { ...CAPS, kvDtypes: ['f16'] });
    const d = preparePlan(plan, { numPages: batch.numPages, pageSize: batch.pageSize, numKvHeads: 8, headDim: 128 });
    expect(d.groupCount[2]).toBeGreaterThan(0); // 64-row units
    expect(d.groupCount[3]).toBeGreaterThan(0); // 128-row units
    expect(d.wgmma).toBe(false);
  });
});

describe('short 16-row units', () => {
  it('flags plans whose 16-row units all stream at most SHORT_UNIT_TOKENS tokens', () => {
    const cfg = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' as const };
    const kv = (b: { numPages: number; pageSize: number }) => ({ numPages: b.numPages, pageSize: b.pageSize, numKvHeads: 2, headDim: 64 });
    // one parallel unit: the perRequest planner then keeps each request in one unit (no KV split)
    const caps = { ...CAPS, kvDtypes: ['f16' as const], tileMenu: [{ rows: 16, kvBlock: 64 }], parallelUnits: 1 };
    const plan = (tokens: number) => {
      const batch = batchFromTree({ parent: [-1, -1], tokens: [tokens, 64], requestAt: [0, 1] }, cfg, 16);
      return { d: preparePlan(planners.perRequest(batch, caps), kv(batch)), batch };
    };
    expect(plan(SHORT_UNIT_TOKENS).d.shortRg1).toBe(true);
    expect(plan(SHORT_UNIT_TOKENS + 16).d.shortRg1).toBe(false);
  });
  it('flags plans whose 16-row units all stream at most the tiny-unit limit (TINY_UNIT_TOKENS or the option; 0 is off)', () => {
    const cfg = { numQoHeads: 8, numKvHeads: 2, headDim: 64, kvDtype: 'f16' as const };
    const caps = { ...CAPS, kvDtypes: ['f16' as const], tileMenu: [{ rows: 16, kvBlock: 64 }], parallelUnits: 1 };
    const plan = (tokens: number, tinyUnitTokens?: number) => {
      const batch = batchFromTree({ parent: [-1, -1], tokens: [tokens, 48], requestAt: [0, 1] }, cfg, 16);
      const kv = { numPages: batch.numPages, pageSize: batch.pageSize, numKvHeads: 2, headDim: 64 };
      return preparePlan(planners.perRequest(batch, caps), kv, { tinyUnitTokens });
    };
    expect(plan(TINY_UNIT_TOKENS).tinyRg1).toBe(true);
    expect(plan(TINY_UNIT_TOKENS + 16).tinyRg1).toBe(false);
    expect(plan(TINY_UNIT_TOKENS + 16).shortRg1).toBe(true);
    expect(plan(64, 0).tinyRg1).toBe(false);
    expect(plan(64, 64).tinyRg1).toBe(true);
    expect(plan(80, 64).tinyRg1).toBe(false);
    // never above the short-unit limit (the tiny tile is a short tile)
    expect(plan(SHORT_UNIT_TOKENS + 16, 1 << 20).tinyRg1).toBe(false);
  });
});

describe('empty partial slots', () => {
  it('leaves out of the merge the slots that can hold no KV token, and writes a query left with one partial directly', () => {
    // A 48-token prefill chunk on a 16-token context, its KV cut into 8-token pieces: a causal row
    // sees only the pieces before its own position, so most (row, piece) slots are empty.
    const cfg = { numQoHeads: 4, numKvHeads: 2, headDim: 32, kvDtype: 'f32' as const };
    const batch = batchFromTree({ parent: [-1], tokens: [64], requestAt: [0], numQueries: [48] }, cfg, 8);
    const cache = randomKvCache(batch.numPages, batch.pageSize, cfg, 21);
    const queries = randomQueries(48, cfg, 22);
    const plan = balancePlan(planners.perRequest(batch, CAPS), { slots: 64, minTokens: 8, targetFraction: 0.01 });
    validatePlan(plan, batch);
    const d = preparePlan(plan, cache);
    // Independent count of the slots with a visible token.
    let nonEmpty = 0;
    for (let i = 0; i < plan.numItems; i++) {
      const ntok = plan.segTokens.slice(plan.itemSegBegin[i], plan.itemSegBegin[i + 1]).reduce((a, b) => a + b, 0);
      for (let x = plan.itemQueryBegin[i]; x < plan.itemQueryBegin[i + 1]; x++) {
        if (Math.min(ntok, plan.queryKvLimit[plan.itemQueries[x]] - plan.itemPos[i]) > 0) nonEmpty++;
      }
    }
    expect(plan.mergeSlots.length).toBeGreaterThan(nonEmpty); // the plan does list empty slots
    expect(d.mergeSlots.length).toBe(nonEmpty);
    // A query whose plan lists several slots but only one with a token is written directly.
    const madeDirect = Array.from({ length: 48 }, (_, q) => q).filter(
      (q) => plan.mergeBegin[q + 1] - plan.mergeBegin[q] > 1 && d.mergeBegin[q + 1] - d.mergeBegin[q] === 1,
    );
    expect(madeDirect.length).toBeGreaterThan(0);
    for (const q of madeDirect) {
      expect(d.slotDest[d.mergeSlots[d.mergeBegin[q]]]).toBe(q);
      expect(Array.from(d.mergeQueries)).not.toContain(q);
    }
    const ref = referenceAttention(batch, cache, queries);
    for (const order of ['grouped', 'sorted'] as const) {
      const got = emulate(plan, d, cache, queries, order);
      expect(maxErr(got.out, ref.out)).toBeLessThan(1e-9);
      expect(maxErr(got.lse, ref.lse)).toBeLessThan(1e-9);
    }
  });
});
