import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { emptyState, lse2ToNatural, mergeMany, mergePartials, mergeStates, MergeError, naturalToLse2, type PartialState } from '../src/index.js';

/** Softmax attention over scores s with values v (rows), in float64: the independent reference. */
function attend(s: number[], v: number[][]): PartialState {
  const m = Math.max(...s);
  let z = 0;
  const o = new Float64Array(v[0].length);
  s.forEach((x, i) => {
    const w = Math.exp(x - m);
    z += w;
    v[i].forEach((y, d) => (o[d] += w * y));
  });
  for (let d = 0; d < o.length; d++) o[d] /= z;
  return { o, lse: m + Math.log(z) };
}

const close = (a: PartialState, b: PartialState, tol = 1e-9) => {
  if (a.lse === -Infinity || b.lse === -Infinity) expect(a.lse).toBe(b.lse);
  else expect(Math.abs(a.lse - b.lse)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b.lse)));
  a.o.forEach((x, d) => expect(Math.abs(x - b.o[d])).toBeLessThanOrEqual(tol));
};

const DIM = 3;
const state = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  {
    weight: 5,
    arbitrary: fc.record({
      o: fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: DIM, maxLength: DIM }),
      lse: fc.double({ min: -1e4, max: 1e4, noNaN: true }),
    }),
  },
).map((s): PartialState => (s ? { o: Float64Array.from(s.o), lse: s.lse } : emptyState(DIM)));

describe('mergeStates', () => {
  it('is commutative and associative within float tolerance', () => {
    fc.assert(
      fc.property(state, state, state, (a, b, c) => {
        close(mergeStates(a, b), mergeStates(b, a));
        close(mergeStates(mergeStates(a, b), c), mergeStates(a, mergeStates(b, c)), 1e-8);
      }),
    );
  });
  it('has the empty state as identity, and two empties stay empty (not NaN)', () => {
    fc.assert(fc.property(state, (a) => close(mergeStates(a, emptyState(DIM)), a, 0)));
    const e = mergeStates(emptyState(DIM), emptyState(DIM));
    expect(e.lse).toBe(-Infinity);
    expect(Array.from(e.o)).toEqual([0, 0, 0]);
    expect(mergeMany([emptyState(2), emptyState(2)]).lse).toBe(-Infinity);
  });
  it('merging the partials of any split equals attention over the whole score vector', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e4, max: 1e4, noNaN: true }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 59 }), { maxLength: 8 }),
        fc.integer(),
        (scores, cuts, seed) => {
          const v = scores.map((_, i) => [Math.sin(i + seed), Math.cos(i * seed), (i % 7) - 3]);
          const bounds = [...new Set([0, scores.length, ...cuts.filter((c) => c < scores.length)])].sort((a, b) => a - b);
          const parts: PartialState[] = [];
          for (let k = 0; k + 1 < bounds.length; k++) parts.push(attend(scores.slice(bounds[k], bounds[k + 1]), v.slice(bounds[k], bounds[k + 1])));
          const whole = attend(scores, v);
          close(mergeMany(parts), whole, 1e-9);
          close(parts.reduce((a, b) => mergeStates(a, b)), whole, 1e-9);
        },
      ),
    );
  });
  it('stays exact for very uneven splits (1 token vs 100k) and scores near ±1e4', () => {
    const n = 100_000;
    const scores = Array.from({ length: n + 1 }, (_, i) => 1e4 * Math.sin(i * 0.37));
    const v = scores.map((_, i) => [Math.cos(i), (i % 13) / 13, 1]);
    const whole = attend(scores, v);
    const merged = mergeStates(attend(scores.slice(0, 1), v.slice(0, 1)), attend(scores.slice(1), v.slice(1)));
    close(merged, whole, 1e-9);
    const merged2 = mergeStates(attend(scores.slice(0, n), v.slice(0, n)), attend(scores.slice(n), v.slice(n)));
    close(merged2, whole, 1e-9);
  });
  it('rejects NaN with a message naming it', () => {
    expect(() => mergeStates({ o: Float64Array.of(1), lse: NaN }, emptyState(1))).toThrow(MergeError);
    expect(() => mergeStates({ o: Float64Array.of(NaN), lse: 0 }, emptyState(1))).toThrow(/o\[0\] is NaN/);
    expect(() => mergeStates(emptyState(2), emptyState(3))).toThrow(/head dims differ/);
  });
  it('converts base-2 lse to natural', () => {
    const s = [0.3, -1.2, 2.5];
    const lse = Math.log(s.reduce((a, x) => a + Math.exp(x), 0));
    const lse2 = Math.log2(s.reduce((a, x) => a + 2 ** (x * Math.LOG2E), 0));
    expect(lse2ToNatural(lse2)).toBeCloseTo(lse, 12);
    expect(naturalToLse2(lse)).toBeCloseTo(lse2, 12);
  });
});

describe('mergePartials (batched)', () => {
  it('equals mergeMany per (query, head), handles queries with zero or one partial, and names bad slots', () => {
    fc.assert(
      fc.property(fc.array(fc.array(state, { maxLength: 4 }), { minLength: 1, maxLength: 6 }), (perQuery) => {
        const H = 1;
        const all = perQuery.flat();
        const partO = new Float32Array(all.length * DIM);
        const partLse = new Float32Array(all.length);
        const mergeBegin = new Int32Array(perQuery.length + 1);
        const mergeSlots: number[] = [];
        // store slots in reverse to prove order independence
        const order = all.map((_, i) => all.length - 1 - i);
        all.forEach((s, i) => {
          const slot = order[i];
          partO.set(s.o, slot * DIM);
          partLse[slot] = s.lse;
        });
        let k = 0;
        perQuery.forEach((list, q) => {
          list.forEach(() => mergeSlots.push(order[k++]));
          mergeBegin[q + 1] = mergeSlots.length;
        });
        const out = new Float64Array(perQuery.length * DIM);
        const outLse = new Float64Array(perQuery.length);
        mergePartials({ partO, partLse, numHeads: H, headDim: DIM, mergeBegin, mergeSlots: Int32Array.from(mergeSlots), out, outLse });
        k = 0;
        perQuery.forEach((list, q) => {
          const f32 = list.map((s) => ({ o: Float32Array.from(s.o), lse: Math.fround(s.lse) }));
          const want = f32.length ? mergeMany(f32) : emptyState(DIM);
          close({ o: out.subarray(q * DIM, q * DIM + DIM), lse: outLse[q] }, want, 1e-9);
        });
      }),
    );
    expect(() =>
      mergePartials({ partO: new Float32Array(2), partLse: new Float32Array(2), numHeads: 1, headDim: 1, mergeBegin: Int32Array.of(0, 1), mergeSlots: Int32Array.of(5), out: new Float32Array(1), outLse: new Float32Array(1) }),
    ).toThrow(/query 0 lists slot 5, outside \[0, 2\)/);
    expect(() =>
      mergePartials({ partO: new Float32Array(1), partLse: Float32Array.of(NaN), numHeads: 1, headDim: 1, mergeBegin: Int32Array.of(0, 1), mergeSlots: Int32Array.of(0), out: new Float32Array(1), outLse: new Float32Array(1) }),
    ).toThrow(/partial slot 0 head 0 has lse NaN/);
  });
});
