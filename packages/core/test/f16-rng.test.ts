import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits, fromF16, randomQueries, SeededRng, toF16 } from '../src/index.js';

/** The documented mulberry32 recurrence, restated with BigInt arithmetic as an independent check. */
function* documentedSequence(seed: number) {
  const M = 2n ** 32n;
  let state = BigInt(seed >>> 0);
  const mul = (a: bigint, b: bigint) => (a * b) % M;
  for (;;) {
    state = (state + 0x6d2b79f5n) % M;
    let t = mul(state ^ (state >> 15n), state | 1n);
    t = t ^ ((t + mul(t ^ (t >> 7n), t | 61n)) % M);
    yield Number(t ^ (t >> 14n));
  }
}

describe('SeededRng', () => {
  it('follows the documented recurrence and float mapping', () => {
    for (const seed of [0, 1, 42, 0xffffffff]) {
      const rng = new SeededRng(seed);
      const doc = documentedSequence(seed);
      for (let i = 0; i < 200; i++) expect(rng.nextU32()).toBe(doc.next().value);
    }
    const q = randomQueries(2, { numQoHeads: 2, numKvHeads: 1, headDim: 4, kvDtype: 'f32' }, 9);
    const doc = documentedSequence(9);
    for (let i = 0; i < q.length; i++) expect(q[i]).toBe(Math.fround(-1 + 2 * ((doc.next().value as number) / 2 ** 32)));
  });
});

describe('f16', () => {
  it('round-trips every finite half exactly', () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h === 0x8000 ? 0x8000 : h);
    }
  });
  it('rounds to the nearest half (ties to even) and saturates to Inf', () => {
    fc.assert(
      fc.property(fc.float({ min: -60000, max: 60000, noNaN: true }), (x) => {
        const y = f16BitsToF32(f32ToF16Bits(x));
        // nearest: no other half is closer
        const h = f32ToF16Bits(x);
        for (const n of [h - 1, h + 1]) {
          if (n < 0 || n > 0xffff || (n & 0x7c00) === 0x7c00) continue;
          if (((n ^ h) & 0x8000) !== 0) continue;
          expect(Math.abs(f16BitsToF32(n) - x)).toBeGreaterThanOrEqual(Math.abs(y - x));
        }
      }),
    );
    expect(f16BitsToF32(f32ToF16Bits(1e6))).toBe(Number.POSITIVE_INFINITY);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(Array.from(fromF16(toF16([0.5, -2, 65504])))).toEqual([0.5, -2, 65504]);
  });
});
