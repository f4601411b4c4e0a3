import { kvBytesPerElement } from './config.js';
import { f32ToF16Bits } from './f16.js';
import type { AttentionConfig, PagedKvCache } from './types.js';

/**
 * Seeded generator (mulberry32), documented so outside tools can regenerate the same data:
 *
 *   state ← (state + 0x6D2B79F5) mod 2^32
 *   t ← (state XOR (state >>> 15)) · (state | 1)          (32-bit multiply, mod 2^32)
 *   t ← t XOR (t + ((t XOR (t >>> 7)) · (t | 61)))        (mod 2^32)
 *   u32 = t XOR (t >>> 14)
 *
 * The initial state is the seed as an unsigned 32-bit integer. `nextFloat()` = u32 / 2^32 in
 * [0, 1); `uniform(lo, hi)` = lo + (hi - lo) · nextFloat(). Data tensors are filled in flat
 * row-major order with `uniform(-1, 1)`, then rounded to the storage dtype (f32, or f16 round to
 * nearest even). Queries use seed `seed`, K uses `seed + 1`, V uses `seed + 2` (mod 2^32).
 */
export class SeededRng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.nextFloat();
  }
}

export function fillUniform(out: Float32Array, seed: number, lo = -1, hi = 1): Float32Array {
  const rng = new SeededRng(seed);
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform(lo, hi);
  return out;
}

/** `[numQueries, numQoHeads, headDim]` f32 queries, uniform in [-1, 1), from `seed`. */
export function randomQueries(numQueries: number, config: AttentionConfig, seed: number): Float32Array {
  return fillUniform(new Float32Array(numQueries * config.numQoHeads * config.headDim), seed);
}

function randomPool(n: number, dtype: 'f16' | 'f32', seed: number): Uint16Array | Float32Array {
  const rng = new SeededRng(seed);
  if (dtype === 'f32') {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rng.uniform(-1, 1);
    return a;
  }
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) a[i] = f32ToF16Bits(rng.uniform(-1, 1));
  return a;
}

/** A paged KV cache of random K (seed + 1) and V (seed + 2), uniform in [-1, 1), in config.kvDtype. */
export function randomKvCache(
  numPages: number,
  pageSize: number,
  config: AttentionConfig,
  seed: number,
): PagedKvCache {
  const n = numPages * pageSize * config.numKvHeads * config.headDim;
  if (n * kvBytesPerElement(config.kvDtype) > 2 ** 31) {
    // A plain JS typed array can hold more, but such pools are beyond any host test here.
    throw new RangeError(`randomKvCache: ${n} elements per pool is too large for a host buffer`);
  }
  return {
    numPages,
    pageSize,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    dtype: config.kvDtype,
    k: randomPool(n, config.kvDtype, (seed + 1) >>> 0),
    v: randomPool(n, config.kvDtype, (seed + 2) >>> 0),
  };
}
