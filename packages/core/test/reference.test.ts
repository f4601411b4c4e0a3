import { describe, expect, it } from 'vitest';
import {
  attentionFlops,
  fromF16,
  randomKvCache,
  randomQueries,
  referenceAttention,
  runReference,
  uniqueKvTokens,
  type AttentionConfig,
} from '../src/index.js';
import { chunkedPlan, simpleBatch } from './helpers.js';

const cfg: AttentionConfig = { numQoHeads: 4, numKvHeads: 2, headDim: 8, kvDtype: 'f32' };

/** Textbook softmax attention written independently of the library, for one query and head. */
function naive(q: number[], ks: number[][], vs: number[][], scale: number) {
  const s = ks.map((k) => scale * k.reduce((a, x, i) => a + x * q[i], 0));
  const m = Math.max(...s);
  const e = s.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  const o = vs[0].map((_, d) => vs.reduce((a, v, t) => a + (e[t] / z) * v[d], 0));
  return { o, lse: m + Math.log(z) };
}

describe('referenceAttention', () => {
  it('matches a textbook softmax on a tiny paged batch with GQA and a causal prefill chunk', () => {
    const batch = simpleBatch(cfg, [5, 9], 4, [1, 3]);
    const cache = randomKvCache(batch.numPages, batch.pageSize, cfg, 7);
    const qs = randomQueries(4, cfg, 3);
    const ref = referenceAttention(batch, cache, qs);
    const D = cfg.headDim;
    const at = (arr: Float32Array, page: number, slot: number, h: number) =>
      Array.from(arr.subarray(((page * batch.pageSize + slot) * cfg.numKvHeads + h) * D, ((page * batch.pageSize + slot) * cfg.numKvHeads + h) * D + D));
    const K = cache.k as Float32Array;
    const V = cache.v as Float32Array;
    // query 2 = request 1, query index 1 of 3: sees 9 - 3 + 1 + 1 = 8 tokens
    const cases: Array<[number, number, number]> = [ [0, 0, 5], [1, 1, 7], [2, 1, 8], [3, 1, 9] ];
    for (const [q, r, L] of cases) {
      const req = batch.requests[r];
      const toks: Array<[number, number]> = [];
      req.pageIds.forEach((p, s) => { for (let j = 0; j < req.pageTokens[s]; j++) toks.push([p, j]); });
      for (let h = 0; h < cfg.numQoHeads; h++) {
        const kvh = Math.floor(h / 2);
        const qv = Array.from(qs.subarray((q * cfg.numQoHeads + h) * D, (q * cfg.numQoHeads + h + 1) * D));
        const vis = toks.slice(0, L);
        const want = naive(qv, vis.map(([p, j]) => at(K, p, j, kvh)), vis.map(([p, j]) => at(V, p, j, kvh)), 1 / Math.sqrt(D));
        expect(ref.lse[q * cfg.numQoHeads + h]).toBeCloseTo(want.lse, 10);
        want.o.forEach((x, d) => expect(ref.out[(q * cfg.numQoHeads + h) * D + d]).toBeCloseTo(x, 10));
      }
    }
  });

  it('uses config.scale and decodes f16 pools', () => {
    const c16: AttentionConfig = { ...cfg, kvDtype: 'f16', scale: 0.3 };
    const batch = simpleBatch(c16, [6], 4);
    const cache = randomKvCache(batch.numPages, batch.pageSize, c16, 1);
    const qs = randomQueries(1, c16, 2);
    const ref = referenceAttention(batch, cache, qs);
    const K = fromF16(cache.k as Uint16Array);
    const V = fromF16(cache.v as Uint16Array);
    const D = 8;
    const tok = (arr: Float32Array, t: number) => { const p = batch.requests[0].pageIds[Math.floor(t / 4)]; return Array.from(arr.subarray(((p * 4 + (t % 4)) * 2) * D, ((p * 4 + (t % 4)) * 2) * D + D)); };
    const ks = [0, 1, 2, 3, 4, 5].map((t) => tok(K, t));
    const vs = [0, 1, 2, 3, 4, 5].map((t) => tok(V, t));
    const want = naive(Array.from(qs.subarray(0, D)), ks, vs, 0.3);
    expect(ref.lse[0]).toBeCloseTo(want.lse, 10);
    expect(ref.out[3]).toBeCloseTo(want.o[3], 10);
  });

  it('counts unique tokens and FLOPs', () => {
    const batch = simpleBatch(cfg, [5, 9], 4, [1, 3]);
    expect(uniqueKvTokens(batch)).toBe(14);
    expect(attentionFlops(batch)).toBe(4 * 8 * 4 * (5 + 7 + 8 + 9));
  });
});

describe('ReferenceBackend', () => {
  for (const chunk of [1, 3, 4, 100]) {
    it(`executes a plan chunked by ${chunk} to the reference (f16 and f32)`, async () => {
      for (const kvDtype of ['f16', 'f32'] as const) {
        const c = { ...cfg, kvDtype };
        const batch = simpleBatch(c, [1, 5, 17, 33], 4, [1, 2, 1, 4]);
        const cache = randomKvCache(batch.numPages, batch.pageSize, c, 11);
        const qs = randomQueries(8, c, 12);
        const ref = referenceAttention(batch, cache, qs);
        const got = await runReference(batch, cache, chunkedPlan(batch, chunk), qs);
        for (let i = 0; i < ref.out.length; i++) expect(Math.abs(got.out[i] - ref.out[i])).toBeLessThan(1e-5);
        for (let i = 0; i < ref.lse.length; i++) expect(Math.abs(got.lse[i] - ref.lse[i])).toBeLessThan(1e-5);
      }
    });
  }
});

describe('ReferenceBackend.timeGroup', () => {
  it('times several plans as one step and runs each on its own queries', async () => {
    const { ReferenceBackend } = await import('../src/index.js');
    const a = simpleBatch(cfg, [5, 9], 4, [1, 3]);
    const cache = randomKvCache(a.numPages, a.pageSize, cfg, 11);
    const be = new ReferenceBackend();
    await be.setKvCache(cache);
    const pa = chunkedPlan(a, 3);
    const qa = randomQueries(4, cfg, 5);
    const res = await be.timeGroup([pa, pa], [qa, qa], { warmup: 1, iters: 3, mode: 'serial' });
    expect(res.timesUs.length).toBe(3);
    expect(res.clock).toBe('wall');
    for (const t of res.timesUs) expect(t).toBeGreaterThan(0);
    await expect(be.timeGroup([pa], [qa, qa], { warmup: 0, iters: 1, mode: 'concurrent' })).rejects.toThrow(/one query tensor per plan/);
    // a plan whose queries do not fit its query tensor fails as run() would
    await expect(be.timeGroup([pa], [qa.subarray(0, 8)], { warmup: 0, iters: 1, mode: 'serial' })).rejects.toThrow();
    await be.dispose();
  });
});
