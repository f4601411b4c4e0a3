/**
 * Ceilings for a backend that does not measure its own (the JavaScript reference executor): a
 * streaming read of a 64 MiB buffer for bandwidth and an 8-way independent multiply-add loop for
 * arithmetic. Both are single-threaded JavaScript rates, so the floor they give is a CPU estimate.
 */
import type { DeviceProbe } from '@canopy/core';

export function probeCpu(): DeviceProbe & { source: string } {
  // Read bandwidth: sum a 64 MiB Float64Array; best of 5 passes after a warm-up.
  const a = new Float64Array(8 << 20);
  for (let i = 0; i < a.length; i++) a[i] = i & 7;
  let best = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let pass = 0; pass < 6; pass++) {
    const t0 = performance.now();
    let s0 = 0,
      s1 = 0,
      s2 = 0,
      s3 = 0;
    for (let i = 0; i < a.length; i += 4) {
      s0 += a[i];
      s1 += a[i + 1];
      s2 += a[i + 2];
      s3 += a[i + 3];
    }
    const dt = performance.now() - t0;
    sink += s0 + s1 + s2 + s3;
    if (pass > 0) best = Math.min(best, dt);
  }
  const readBandwidthGBs = a.byteLength / (best * 1e6);

  // Arithmetic: 8 independent chains of x = x * m + c (2 FLOPs each), best of 5.
  const N = 4_000_000;
  let bestF = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < 6; pass++) {
    let x0 = 1, x1 = 2, x2 = 3, x3 = 4, x4 = 5, x5 = 6, x6 = 7, x7 = 8;
    const m = 0.999999, c = 1e-7;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      x0 = x0 * m + c; x1 = x1 * m + c; x2 = x2 * m + c; x3 = x3 * m + c;
      x4 = x4 * m + c; x5 = x5 * m + c; x6 = x6 * m + c; x7 = x7 * m + c;
    }
    const dt = performance.now() - t0;
    sink += x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
    if (pass > 0) bestF = Math.min(bestF, dt);
  }
  const peakTflops = (N * 8 * 2) / (bestF * 1e9);
  if (sink === 42) console.log(''); // keep the loops from being optimised away
  return { readBandwidthGBs, peakTflops, peakUnits: 'JavaScript f64 multiply-add per thread', source: 'CPU estimate (bench JavaScript probe)' };
}
