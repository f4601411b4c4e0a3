import { f16BitsToF32, randomKvCache, randomQueries, softmaxScale } from '@canopy/core';
import { describe, expect, it } from 'vitest';
import { KEY_SPIKE_FACTOR, buildCaseBatch, conformanceCases, spikeKeys } from '../src/index.js';

describe('score-spike conformance case', () => {
  it('spikeKeys scales the keys of every n-th slot and nothing else', () => {
    const config = { numQoHeads: 2, numKvHeads: 1, headDim: 4, kvDtype: 'f16' as const };
    const cache = randomKvCache(2, 4, config, 3);
    const before = Float32Array.from(cache.k as Uint16Array, f16BitsToF32);
    const vBefore = (cache.v as Uint16Array).slice();
    spikeKeys(cache, 3);
    const after = Float32Array.from(cache.k as Uint16Array, f16BitsToF32);
    for (let i = 0; i < after.length; i++) {
      const slot = Math.floor(i / 4);
      const want = slot % 3 === 0 ? before[i] * KEY_SPIKE_FACTOR : before[i];
      expect(Math.abs(after[i] - want)).toBeLessThanOrEqual(Math.abs(want) * 1e-3);
    }
    expect(cache.v).toEqual(vBefore);
  });

  it('makes running maxima jump by more than 8 (log2 units) after the first 64 tokens, and by less too', () => {
    const c = conformanceCases().find((x) => x.keySpikes)!;
    expect(c).toBeDefined();
    const batch = buildCaseBatch(c);
    const seed = 1234; // runConformanceCase's default
    const cache = randomKvCache(batch.numPages, batch.pageSize, c.config, seed);
    spikeKeys(cache, c.keySpikes!);
    const nq = batch.requests.reduce((a, r) => a + r.numQueries, 0);
    const q = randomQueries(nq, c.config, seed + 7);
    const { numQoHeads: H, numKvHeads: HK, headDim: D } = c.config;
    const k = Float32Array.from(cache.k as Uint16Array, f16BitsToF32);
    const scale = softmaxScale(c.config) * Math.LOG2E;
    let bigLate = 0;
    let smallLate = 0;
    batch.requests.forEach((r, qi) => {
      const slots: number[] = [];
      r.pageIds.forEach((p, s) => {
        for (let t = 0; t < r.pageTokens[s]; t++) slots.push(p * batch.pageSize + t);
      });
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / (H / HK));
        let m = -Infinity;
        slots.forEach((slot, pos) => {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[(qi * H + h) * D + d] * k[(slot * HK + kh) * D + d];
          const sc = dot * scale;
          if (sc > m) {
            if (pos >= 64 && m > -Infinity) {
              if (sc - m > 8) bigLate++;
              else smallLate++;
            }
            m = sc;
          }
        });
      }
    });
    expect(bigLate).toBeGreaterThan(0);
    expect(smallLate).toBeGreaterThan(0);
  });
});
