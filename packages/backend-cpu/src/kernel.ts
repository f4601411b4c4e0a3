/**
 * The CPU attention kernel. It runs both on the main thread (small plans, `workers: 0`) and inside
 * worker threads. Workers get it as source text: `makeKernel.toString()` is evaluated in the
 * worker (see `worker-source.ts`), so `makeKernel` must stay self-contained: no imports, no
 * references to anything outside its own body except JavaScript globals (Math, typed arrays).
 * Types below are erased at build time and are safe to use.
 */

/** A plan flattened for execution; every array may live on a SharedArrayBuffer. */
export interface KernelPlan {
  numQoHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Query heads per KV head (GQA group). */
  group: number;
  scale: number;
  /** KV tokens per block: all rows of a unit are computed against one block while it is in cache. */
  kvBlock: number;
  numQueries: number;
  queryKvLimit: Int32Array;
  itemPos: Int32Array;
  itemQueryBegin: Int32Array;
  itemQueries: Int32Array;
  itemPartialBase: Int32Array;
  /** Item i's tokens are `tokBase[tokBegin[i] .. tokBegin[i + 1])`: element offset of (token, KV head 0, d 0). */
  tokBegin: Int32Array;
  tokBase: Int32Array;
  /** For each partial slot: the query it is the only merge slot of (written straight to the output), else -1. */
  slotDirect: Int32Array;
  mergeBegin: Int32Array;
  mergeSlots: Int32Array;
}

/** Per-plan input/output buffers (shared with workers). */
export interface KernelIo {
  queries: Float32Array;
  partO: Float32Array;
  partLse: Float32Array;
  out: Float32Array;
  lse: Float32Array;
}

export interface KernelKv {
  /** The f32 pools (views into `wasm.memory` when the SIMD path is on). */
  k: Float32Array;
  v: Float32Array;
  /** WebAssembly SIMD inner loops (see wasm.ts); absent: plain JavaScript loops. */
  wasm?: KernelWasm;
}

export interface KernelWasm {
  module: WebAssembly.Module;
  /** Shared memory holding the pools and one scratch region per thread. */
  memory: WebAssembly.Memory;
  /** Byte offsets of the pools and of this thread's scratch region. */
  kOff: number;
  vOff: number;
  scratchOff: number;
  /** Rows per pass (the scratch holds this many query rows and accumulators). */
  rowsMax: number;
  /** KV tokens per block (scratch score rows hold this many). */
  kvBlock: number;
}

/** Bytes of one thread's scratch region for the SIMD path. */
export function wasmScratchBytes(rowsMax: number, headDim: number, kvBlock: number): number {
  // q and acc rows, a score row per row, then c, m, l, vis per row, then the block's token offsets
  const b = rowsMax * headDim * 4 * 2 + rowsMax * kvBlock * 4 + rowsMax * 4 * 4 + kvBlock * 4;
  return Math.ceil(b / 64) * 64;
}

export interface Kernel {
  /** Compute work units u in [begin, end): item `units[3u]`, KV heads `[units[3u + 1], units[3u + 2])`. */
  runUnits(p: KernelPlan, kv: KernelKv, io: KernelIo, units: Int32Array, begin: number, end: number): void;
  /** Merge the partial slots of queries [qBegin, qEnd) that have zero or several slots. */
  mergeQueries(p: KernelPlan, io: KernelIo, qBegin: number, qEnd: number): void;
}

export function makeKernel(): Kernel {
  // Scratch grows to the largest unit seen and is reused: no allocation per unit.
  let qbuf = new Float64Array(0);
  let acc = new Float64Array(0);
  let rowMax = new Float64Array(0);
  let rowSum = new Float64Array(0);
  let rowVis = new Int32Array(0);
  let scores = new Float64Array(0);

  function ensure(rows: number, D: number, B: number): void {
    if (qbuf.length < rows * D) {
      qbuf = new Float64Array(rows * D);
      acc = new Float64Array(rows * D);
    }
    if (rowMax.length < rows) {
      rowMax = new Float64Array(rows);
      rowSum = new Float64Array(rows);
      rowVis = new Int32Array(rows);
    }
    if (scores.length < B) scores = new Float64Array(B);
  }

  /**
   * One (work item, KV head): rows = the item's queries × the query heads of this KV head. The
   * item's KV is walked in blocks of `kvBlock` tokens; every row is computed against a block while
   * it is hot in L1/L2 (KV-guided grouping: shared KV is read from memory once per item, not once
   * per query). Online softmax with one rescale per (row, block).
   */
  function unit(p: KernelPlan, K: Float32Array, V: Float32Array, io: KernelIo, i: number, hk: number): void {
    const D = p.headDim;
    const H = p.numQoHeads;
    const G = p.group;
    const B = p.kvBlock;
    const D4 = D - (D % 4);
    const tb = p.tokBegin[i];
    const T = p.tokBegin[i + 1] - tb;
    const pos0 = p.itemPos[i];
    const xb = p.itemQueryBegin[i];
    const nx = p.itemQueryBegin[i + 1] - xb;
    const rows = nx * G;
    ensure(rows, D, B);
    const Q = io.queries;
    const scale = p.scale;
    const tokBase = p.tokBase;
    let maxVis = 0;
    for (let x = 0; x < nx; x++) {
      const q = p.itemQueries[xb + x];
      let vis = p.queryKvLimit[q] - pos0;
      if (vis < 0) vis = 0;
      if (vis > T) vis = T;
      if (vis > maxVis) maxVis = vis;
      for (let g = 0; g < G; g++) {
        const r = x * G + g;
        rowVis[r] = vis;
        rowMax[r] = -Infinity;
        rowSum[r] = 0;
        const qo = (q * H + hk * G + g) * D;
        const ro = r * D;
        // the softmax scale is folded into the query once
        for (let d = 0; d < D; d++) {
          qbuf[ro + d] = Q[qo + d] * scale;
          acc[ro + d] = 0;
        }
      }
    }
    const hkOff = hk * D;
    for (let t0 = 0; t0 < maxVis; t0 += B) {
      const t1 = t0 + B < maxVis ? t0 + B : maxVis;
      for (let r = 0; r < rows; r++) {
        const te = t1 < rowVis[r] ? t1 : rowVis[r];
        const n = te - t0;
        if (n <= 0) continue;
        const ro = r * D;
        let mx = -Infinity;
        for (let t = 0; t < n; t++) {
          const ko = tokBase[tb + t0 + t] + hkOff;
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let s3 = 0;
          let d = 0;
          for (; d < D4; d += 4) {
            s0 += qbuf[ro + d] * K[ko + d];
            s1 += qbuf[ro + d + 1] * K[ko + d + 1];
            s2 += qbuf[ro + d + 2] * K[ko + d + 2];
            s3 += qbuf[ro + d + 3] * K[ko + d + 3];
          }
          for (; d < D; d++) s0 += qbuf[ro + d] * K[ko + d];
          const s = s0 + s1 + s2 + s3;
          scores[t] = s;
          if (s > mx) mx = s;
        }
        let m = rowMax[r];
        let sum = rowSum[r];
        if (mx > m) {
          if (m !== -Infinity) {
            const c = Math.exp(m - mx);
            sum *= c;
            for (let d = 0; d < D; d++) acc[ro + d] *= c;
          }
          m = mx;
          rowMax[r] = m;
        }
        for (let t = 0; t < n; t++) {
          const w = Math.exp(scores[t] - m);
          sum += w;
          const vo = tokBase[tb + t0 + t] + hkOff;
          let d = 0;
          for (; d < D4; d += 4) {
            acc[ro + d] += w * V[vo + d];
            acc[ro + d + 1] += w * V[vo + d + 1];
            acc[ro + d + 2] += w * V[vo + d + 2];
            acc[ro + d + 3] += w * V[vo + d + 3];
          }
          for (; d < D; d++) acc[ro + d] += w * V[vo + d];
        }
        rowSum[r] = sum;
      }
    }
    const pb = p.itemPartialBase[i];
    for (let x = 0; x < nx; x++) {
      const slot = pb + x;
      const direct = p.slotDirect[slot];
      for (let g = 0; g < G; g++) {
        const r = x * G + g;
        const h = hk * G + g;
        // a query whose only partial is this slot is written straight into the output
        const o = direct >= 0 ? io.out : io.partO;
        const l = direct >= 0 ? io.lse : io.partLse;
        const row = direct >= 0 ? direct : slot;
        const ob = (row * H + h) * D;
        const ro = r * D;
        const sum = rowSum[r];
        if (sum > 0) {
          const inv = 1 / sum;
          for (let d = 0; d < D; d++) o[ob + d] = acc[ro + d] * inv;
          l[row * H + h] = rowMax[r] + Math.log(sum);
        } else {
          // every token of the item is masked for this query: the empty state
          for (let d = 0; d < D; d++) o[ob + d] = 0;
          l[row * H + h] = -Infinity;
        }
      }
    }
  }

  // WebAssembly instance per shared memory (a new KV cache brings a new memory)
  let wasmMemory: WebAssembly.Memory | undefined;
  let wasmQk: (...a: number[]) => void = () => {};
  let wasmPv: (...a: number[]) => void = () => {};
  let wasmSm: (...a: number[]) => void = () => {};
  let F: Float32Array = new Float32Array(0);
  let I: Int32Array = new Int32Array(0);

  /**
   * The same computation as `unit` in WebAssembly (see wasm.ts), for KV heads [h0, h1) of item i:
   * per block of KV tokens and per head, `qk` scores the head's rows against the block (SIMD),
   * `sm` turns scores into weights in place and keeps the running max and sum, `pv` rescales and
   * accumulates V (SIMD). Heads inside the block loop: a token's heads are contiguous in the
   * pools, so a block of all heads streams through memory in order (one token = one 4 KiB run at
   * 8 heads × d128 f32) instead of 512-byte slices 4 KiB apart. Rows of all heads go in passes of
   * at most `rowsMax` (the scratch size); JavaScript only stages queries, token offsets, outputs.
   */
  function unitWasm(p: KernelPlan, W: KernelWasm, io: KernelIo, i: number, h0: number, h1: number): void {
    if (wasmMemory !== W.memory) {
      const inst = new WebAssembly.Instance(W.module, { env: { mem: W.memory } });
      const ex = inst.exports as unknown as Record<'qk' | 'pv' | 'sm', (...a: number[]) => void>;
      wasmQk = ex.qk;
      wasmPv = ex.pv;
      wasmSm = ex.sm;
      wasmMemory = W.memory;
      F = new Float32Array(W.memory.buffer);
      I = new Int32Array(W.memory.buffer);
    }
    const D = p.headDim;
    const H = p.numQoHeads;
    const G = p.group;
    const B = W.kvBlock;
    const RM = W.rowsMax;
    const qPtr = W.scratchOff;
    const accPtr = qPtr + RM * D * 4;
    const scPtr = accPtr + RM * D * 4;
    const cPtr = scPtr + RM * B * 4;
    const mPtr = cPtr + RM * 4;
    const lPtr = mPtr + RM * 4;
    const visPtr = lPtr + RM * 4;
    const tokPtr = visPtr + RM * 4;
    const qEl = qPtr >> 2;
    const accEl = accPtr >> 2;
    const mEl = mPtr >> 2;
    const lEl = lPtr >> 2;
    const visEl = visPtr >> 2;
    const tokEl = tokPtr >> 2;
    const tb = p.tokBegin[i];
    const T = p.tokBegin[i + 1] - tb;
    const pos0 = p.itemPos[i];
    const xb = p.itemQueryBegin[i];
    const nx = p.itemQueryBegin[i + 1] - xb;
    const rowsAll = nx * G;
    const Q = io.queries;
    const scale = p.scale;
    const tokBase = p.tokBase;
    const perHead = rowsAll;
    const total = perHead * (h1 - h0);
    const D4 = D * 4;
    for (let R0 = 0; R0 < total; R0 += RM) {
      const rows = total - R0 < RM ? total - R0 : RM;
      let maxVis = 0;
      for (let r = 0; r < rows; r++) {
        const R = R0 + r;
        const hh = (R / perHead) | 0;
        const rr = R - hh * perHead;
        const x = (rr / G) | 0;
        const g = rr - x * G;
        const q = p.itemQueries[xb + x];
        let vis = p.queryKvLimit[q] - pos0;
        if (vis < 0) vis = 0;
        if (vis > T) vis = T;
        if (vis > maxVis) maxVis = vis;
        I[visEl + r] = vis;
        F[mEl + r] = -Infinity;
        F[lEl + r] = 0;
        const qo = (q * H + (h0 + hh) * G + g) * D;
        const ro = r * D;
        for (let d = 0; d < D; d++) {
          F[qEl + ro + d] = Q[qo + d] * scale;
          F[accEl + ro + d] = 0;
        }
      }
      for (let t0 = 0; t0 < maxVis; t0 += B) {
        const nb = maxVis - t0 < B ? maxVis - t0 : B;
        for (let j = 0; j < nb; j++) I[tokEl + j] = tokBase[tb + t0 + j] * 4; // byte offsets (wrap as u32 past 2^31)
        // one call triple per head present in this pass (rows of a head are contiguous)
        for (let r = 0; r < rows; ) {
          const hh = ((R0 + r) / perHead) | 0;
          let e = (hh + 1) * perHead - R0;
          if (e > rows) e = rows;
          const n = e - r;
          const hOff = (h0 + hh) * D4;
          wasmQk(n, D4, nb, tokPtr, qPtr + r * D4, scPtr + r * B * 4, B * 4, W.kOff + hOff);
          wasmSm(n, nb, t0, scPtr + r * B * 4, B * 4, visPtr + r * 4, mPtr + r * 4, lPtr + r * 4, cPtr + r * 4);
          wasmPv(n, D4, nb, tokPtr, scPtr + r * B * 4, B * 4, cPtr + r * 4, accPtr + r * D4, W.vOff + hOff);
          r = e;
        }
      }
      const pb = p.itemPartialBase[i];
      for (let r = 0; r < rows; r++) {
        const R = R0 + r;
        const hh = (R / perHead) | 0;
        const rr = R - hh * perHead;
        const x = (rr / G) | 0;
        const g = rr - x * G;
        const slot = pb + x;
        const direct = p.slotDirect[slot];
        const h = (h0 + hh) * G + g;
        const o = direct >= 0 ? io.out : io.partO;
        const l = direct >= 0 ? io.lse : io.partLse;
        const row = direct >= 0 ? direct : slot;
        const ob = (row * H + h) * D;
        const ro = accEl + r * D;
        const sum = F[lEl + r];
        if (sum > 0) {
          const inv = 1 / sum;
          for (let d = 0; d < D; d++) o[ob + d] = F[ro + d] * inv;
          l[row * H + h] = F[mEl + r] + Math.log(sum);
        } else {
          for (let d = 0; d < D; d++) o[ob + d] = 0;
          l[row * H + h] = -Infinity;
        }
      }
    }
  }

  function runUnits(p: KernelPlan, kv: KernelKv, io: KernelIo, units: Int32Array, begin: number, end: number): void {
    const W = kv.wasm;
    if (W && p.headDim % 16 === 0) {
      for (let u = begin; u < end; u++) unitWasm(p, W, io, units[3 * u], units[3 * u + 1], units[3 * u + 2]);
      return;
    }
    for (let u = begin; u < end; u++) {
      for (let hk = units[3 * u + 1]; hk < units[3 * u + 2]; hk++) unit(p, kv.k, kv.v, io, units[3 * u], hk);
    }
  }

  function mergeQueries(p: KernelPlan, io: KernelIo, qBegin: number, qEnd: number): void {
    const H = p.numQoHeads;
    const D = p.headDim;
    const partO = io.partO;
    const partLse = io.partLse;
    for (let q = qBegin; q < qEnd; q++) {
      const b = p.mergeBegin[q];
      const e = p.mergeBegin[q + 1];
      if (e - b === 1 && p.slotDirect[p.mergeSlots[b]] === q) continue; // written by its item
      for (let h = 0; h < H; h++) {
        let m = -Infinity;
        for (let k = b; k < e; k++) {
          const l = partLse[p.mergeSlots[k] * H + h];
          if (l > m) m = l;
        }
        const ob = (q * H + h) * D;
        for (let d = 0; d < D; d++) io.out[ob + d] = 0;
        if (m === -Infinity) {
          io.lse[q * H + h] = -Infinity; // no token visible at all: the empty state
          continue;
        }
        let sum = 0;
        for (let k = b; k < e; k++) sum += Math.exp(partLse[p.mergeSlots[k] * H + h] - m);
        for (let k = b; k < e; k++) {
          const s = p.mergeSlots[k];
          const c = Math.exp(partLse[s * H + h] - m) / sum;
          if (c === 0) continue;
          const pb = (s * H + h) * D;
          for (let d = 0; d < D; d++) io.out[ob + d] += c * partO[pb + d];
        }
        io.lse[q * H + h] = m + Math.log(sum);
      }
    }
  }

  return { runUnits, mergeQueries };
}
