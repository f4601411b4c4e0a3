/** Order statistics for timings. */

/** Linear-interpolated quantile (numpy's default) of sorted values. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

export interface Summary {
  median: number;
  p10: number;
  p90: number;
  min: number;
  /** Half-width of the ~95% confidence interval of the median, relative to the median. */
  medianRelCi: number;
}

/**
 * Median with a distribution-free ~95% confidence interval: the order statistics at ranks
 * n/2 ∓ 0.98·√n (binomial normal approximation). Used to stop iterating once the median is stable.
 */
export function summarize(values: ArrayLike<number>): Summary {
  const s = sortedCopy(values);
  const n = s.length;
  const median = quantileSorted(s, 0.5);
  let medianRelCi = Number.POSITIVE_INFINITY;
  if (n >= 5) {
    const half = 0.98 * Math.sqrt(n);
    const lo = Math.max(0, Math.floor(n / 2 - half));
    const hi = Math.min(n - 1, Math.ceil(n / 2 + half));
    medianRelCi = median > 0 ? (s[hi] - s[lo]) / (2 * median) : 0;
  }
  return { median, p10: quantileSorted(s, 0.1), p90: quantileSorted(s, 0.9), min: s[0], medianRelCi };
}
