import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomKvCache, randomQueries, referenceAttention, uniqueKvTokens, validateBatch, type Batch, type PagedKvCache } from '@canopy/core';
import { readNpy, writeNpy } from '../src/npy.js';
import { verificationQueries } from '../src/verify.js';
import { buildBatch, scaleTree } from '../src/tree.js';
import { builtinWorkload } from '../src/workloads.js';
import { runCli, tempDir, TINY } from './helpers.js';

describe('.npy writer and reader', () => {
  it('round-trips f32 and f16 with a 64-byte aligned v1.0 header', () => {
    const dir = tempDir();
    const a = Float32Array.from({ length: 24 }, (_, i) => i * 0.25 - 3);
    writeNpy(join(dir, 'a.npy'), a, [2, 3, 4]);
    const raw = readFileSync(join(dir, 'a.npy'));
    expect(raw.subarray(0, 8)).toEqual(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]));
    const hlen = raw.readUInt16LE(8);
    expect((10 + hlen) % 64).toBe(0);
    expect(raw.toString('latin1', 10, 10 + hlen)).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3, 4\), \} *\n$/);
    expect(raw.length).toBe(10 + hlen + 24 * 4);
    const back = readNpy(join(dir, 'a.npy'));
    expect(back.shape).toEqual([2, 3, 4]);
    expect(Array.from(back.data)).toEqual(Array.from(a));
    const h = Uint16Array.from([0x3c00, 0xc000, 0x7bff]);
    writeNpy(join(dir, 'h.npy'), h, [3]);
    const hb = readNpy(join(dir, 'h.npy'));
    expect(hb.dtype).toBe('<f2');
    expect(hb.shape).toEqual([3]);
    expect(Array.from(hb.data)).toEqual([0x3c00, 0xc000, 0x7bff]);
    expect(() => writeNpy(join(dir, 'x.npy'), a, [5, 5])).toThrow(/shape \[5,5\] holds 25 values, data has 24/);
  });
});

describe('verification sample', () => {
  it('checks every query of small workloads and 64 evenly spread ones (first and last) of large ones', () => {
    const small = buildBatch(scaleTree(builtinWorkload('W1'), { tokens: 1 / 16, requests: 1 / 4 }));
    expect(verificationQueries(small)).toMatchObject({ mode: 'all' });
    const big = buildBatch(builtinWorkload('W5'));
    const { ids, mode } = verificationQueries(big);
    expect(mode).toBe('sample');
    expect(ids.length).toBe(64);
    expect(ids[0]).toBe(0);
    expect(ids[63]).toBe(255);
    for (let i = 1; i < 64; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]);
  });
});

describe('--dump', () => {
  const dir = tempDir();
  const seed = 7;
  let manifest: {
    config: { numQoHeads: number; numKvHeads: number; headDim: number; pageSize: number; kvDtype: 'f16' | 'f32' };
    scale: number;
    seed: number;
    numPages: number;
    outputs: Array<{ backend: string; planner: string; out: string; lse: string }>;
  };
  let requests: Array<{ pageIds: number[]; pageTokens: number[]; numQueries: number }>;
  beforeAll(async () => {
    const r = await runCli(['--workload', 'W3', ...TINY, '--seed', String(seed), '--dump', dir]);
    expect(r.code, r.err).toBe(0);
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    requests = JSON.parse(readFileSync(join(dir, 'requests.json'), 'utf8'));
  }, 120_000);

  function batchFromFiles(): Batch {
    const c = manifest.config;
    return {
      config: { numQoHeads: c.numQoHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, kvDtype: c.kvDtype },
      numPages: manifest.numPages,
      pageSize: c.pageSize,
      requests: requests.map((r) => ({ pageIds: Int32Array.from(r.pageIds), pageTokens: Int32Array.from(r.pageTokens), numQueries: r.numQueries })),
    };
  }

  it('writes every file with the documented shapes and dtypes', () => {
    for (const f of ['q.npy', 'k.npy', 'v.npy', 'requests.json', 'out.npy', 'lse.npy', 'manifest.json', 'out.reference.prefix.npy', 'lse.reference.prefix.npy']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    const b = batchFromFiles();
    validateBatch(b);
    const Q = requests.length;
    const { numQoHeads: H, numKvHeads: HK, headDim: D, pageSize: P } = manifest.config;
    expect(readNpy(join(dir, 'q.npy'))).toMatchObject({ dtype: '<f4', shape: [Q, H, D] });
    expect(readNpy(join(dir, 'k.npy'))).toMatchObject({ dtype: '<f2', shape: [manifest.numPages, P, HK, D] });
    expect(readNpy(join(dir, 'v.npy'))).toMatchObject({ dtype: '<f2', shape: [manifest.numPages, P, HK, D] });
    expect(readNpy(join(dir, 'out.npy'))).toMatchObject({ dtype: '<f4', shape: [Q, H, D] });
    expect(readNpy(join(dir, 'lse.npy'))).toMatchObject({ dtype: '<f4', shape: [Q, H] });
    expect(manifest.scale).toBeCloseTo(1 / Math.sqrt(D), 12);
    expect(manifest.seed).toBe(seed);
    expect(manifest.outputs.map((o) => `${o.backend}/${o.planner}/${o.out}`)).toEqual(['reference/perRequest/out.npy', 'reference/prefix/out.reference.prefix.npy']);
    // the same tree the bench built (W3 at the test scale)
    const expected = buildBatch(scaleTree(builtinWorkload('W3'), { tokens: 1 / 64, requests: 1 / 8 }));
    expect(uniqueKvTokens(b)).toBe(uniqueKvTokens(expected));
    expect(requests.map((r) => r.pageIds)).toEqual(expected.requests.map((r) => Array.from(r.pageIds)));
  });

  it('inputs are the documented seeded data', () => {
    const b = batchFromFiles();
    const q = readNpy(join(dir, 'q.npy')).data;
    expect(Array.from(q)).toEqual(Array.from(randomQueries(requests.length, b.config, seed)));
    const cache = randomKvCache(b.numPages, b.pageSize, b.config, seed);
    expect(Buffer.from(readNpy(join(dir, 'k.npy')).data.buffer).equals(Buffer.from(cache.k.buffer))).toBe(true);
    expect(Buffer.from(readNpy(join(dir, 'v.npy')).data.buffer).equals(Buffer.from(cache.v.buffer))).toBe(true);
  });

  it('outputs match referenceAttention computed from the dumped files alone', () => {
    const b = batchFromFiles();
    const { numKvHeads: HK, headDim: D, pageSize: P } = manifest.config;
    const cache: PagedKvCache = {
      numPages: manifest.numPages,
      pageSize: P,
      numKvHeads: HK,
      headDim: D,
      dtype: 'f16',
      k: readNpy(join(dir, 'k.npy')).data as Uint16Array,
      v: readNpy(join(dir, 'v.npy')).data as Uint16Array,
    };
    const q = readNpy(join(dir, 'q.npy')).data as Float32Array;
    const ref = referenceAttention(b, cache, q);
    for (const [outFile, lseFile] of [['out.npy', 'lse.npy'], ['out.reference.prefix.npy', 'lse.reference.prefix.npy']]) {
      const out = readNpy(join(dir, outFile)).data;
      const lse = readNpy(join(dir, lseFile)).data;
      let maxRef = 0;
      let maxErr = 0;
      for (let i = 0; i < ref.out.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(ref.out[i]));
        maxErr = Math.max(maxErr, Math.abs(out[i] - ref.out[i]));
      }
      expect(maxErr / maxRef, outFile).toBeLessThan(1e-5);
      let lseErr = 0;
      for (let i = 0; i < ref.lse.length; i++) lseErr = Math.max(lseErr, Math.abs(lse[i] - ref.lse[i]));
      expect(lseErr, lseFile).toBeLessThan(1e-5);
      // every lse is finite (each query sees at least one token)
      expect(lse.every((x) => Number.isFinite(x))).toBe(true);
    }
  });
});
