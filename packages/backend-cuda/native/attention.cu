// Partial attention over one plan work item: the multi-tile tensor-core kernel family.
//
// Work unit = (item, KV head, row block). Rows = the item's queries × the GQA group
// (numQoHeads / numKvHeads), row r ↔ (local query r / group, query head kvHead·group + r % group).
//
// Tile shape: R = 16·RG rows (RG ∈ {1, 2, 4, 8} → 16, 32, 64, 128 rows) × 64 KV tokens per
// pipeline stage. CTA: 4 warps for RG 1–2, 8 warps for RG 4–8. Warp w owns the 16-row group
// w / KV_SPLIT and the token slice w % KV_SPLIT of every 64-token stage (KV_SPLIT = warps / RG:
// 4, 2, 2, 1), so a 1-query decode item still keeps 4 warps busy (FlashDecoding style) and a
// 128-row tile streams each KV token through shared memory once for 128 rows. Each thread holds
// the m16n8 accumulator fragments of S (its warp's tokens) and O (16 rows × headDim, f32) plus the
// running max/sum of rows lane/4 and lane/4 + 8.
//
// Data path: the item's K and V tokens (paged: token → page·pageSize + slot via `tokRow`) stream
// through shared memory with cp.async (16-byte chunks, zero-filled past the end) in 2–3 stages (the
// 8-warp tiles stage each stage's tokRow entries one stage ahead, see loadTile);
// Q rows are gathered once from the f32 query tensor into shared memory as fp16 pre-scaled by
// scale·log2(e) (4-warp tiles keep their Q fragments in registers). S = Q·Kᵀ and O += P·V use
// mma.sync m16n8k16 (fp16 in, f32 accumulate) with ldmatrix fragments (K plain, V transposed);
// the softmax runs online in registers in the exp2 domain. At the end the KV_SPLIT warps of a row
// group merge their (m, l, O) through shared memory and write (o, lse) either to the partial slot
// or, when the host marked the slot as the query's only partial, straight to the output.
//
// Bytes per unit: ntok·headDim·2·2 (K and V, fp16) read + rows·headDim·4 (Q) read +
// rows·(headDim+1)·4 written. FLOPs: 4·rows·ntok·headDim useful (the m16 tile pads rows to 16·RG).
//
// Who runs a unit (attnUnit is templated on a sync policy, never on threadIdx/__syncthreads):
// - a whole CTA (CtaSync): the tile kernels (one unit per CTA), the persistent kernels (one grid
//   per warp count pulling units from a counter) and the fused kernel's compute role;
// - one 4-warp half of an 8-warp CTA (HalfSync: threads 128·h.., named barrier 1 + h over 128
//   threads, its own half of shared memory): the fused kernel's memory role. The halves use a
//   32-row × 32-token tile, 2 stages (43 KB each for d128), and run rg 1 units on it as well
//   (rows past a unit's own 16·w.rg are padding; warps with only padding rows skip the math).
// Fused kernel (POD-style, attnFusedKernel below): one grid of 8-warp CTAs, two per SM, each
// taking a compute or memory role from a per-SM arrival counter (%smid) and host quotas, and
// switching to the other list when its own is empty.
#include "common.cuh"
#include "mma.cuh"

#include <cmath>

namespace canopy {
CANOPY_TRACE_BUFFER(traceDumpAttention)
namespace {


template <int D>
__host__ __device__ constexpr int rowStride() {
  return D + 8;  // 16-byte pad: the 8 rows an ldmatrix reads land in distinct bank groups
}

// Warp layout of a tile of 16·RG rows (see the header): m16 tiles per warp (MT), warps (NW),
// KV tokens per pipeline stage (KT). MT = 2 (two m16 tiles per warp sharing each K/V fragment,
// 4 warps for 128 rows) measured slower on the H100 than 8 warps of one m16 tile each (fewer
// warps per SM to hide latency: docs/benchmarks/cuda-h100-v3-mt2-*.json), so MT is 1; the code
// keeps MT general.
__host__ __device__ constexpr int mtFor(int /*d*/, int /*rg*/) { return 1; }
#ifndef CANOPY_ROW_PREFETCH
#define CANOPY_ROW_PREFETCH 2
#endif
#ifndef CANOPY_KT8
#define CANOPY_KT8 64
#endif
__host__ __device__ constexpr int warpsFor(int d, int rg) { return rg <= 2 ? 4 : mtFor(d, rg) == 2 ? 4 : 8; }
// KV tokens per stage. CANOPY_KT8 = 32 for the 8-warp tiles (3 stages deep, half the S
// registers under their 128-register cap) measured 20–25% slower on the H100 than 64
// (docs/benchmarks/cuda-h100-v8-kt32-*.json): twice the barriers per token.
[[maybe_unused]] __host__ __device__ constexpr int ktFor(int d, int rg) {
  return mtFor(d, rg) == 2 ? 32 : (warpsFor(d, rg) == 8 && d <= 128 ? CANOPY_KT8 : 64);
}
// 8-warp CTAs are capped at 128 registers so two fit per SM (16 warps); head dim 256 needs the
// registers for its O accumulators, and fits one CTA per SM in shared memory anyway.
// CANOPY_MMA8_BLOCKS=1 builds them for one CTA per SM instead: no register cap (Q fragments kept in
// registers, room for the compiler to load fragments ahead) and 3 stages in up to 220 KB.
#ifndef CANOPY_MMA8_BLOCKS
#define CANOPY_MMA8_BLOCKS 2
#endif
__host__ __device__ constexpr int minBlocksFor(int d, int nw) { return nw == 8 && d <= 128 ? CANOPY_MMA8_BLOCKS : 1; }
// Shared memory one CTA of a tile with nw warps may use: two per SM (113 KB each) unless the
// 8-warp tiles are built for one per SM.
__host__ __device__ constexpr size_t smemBudget(int d, int nw) {
  return nw == 8 && d <= 128 && CANOPY_MMA8_BLOCKS == 1 ? 220 * 1024 : 113 * 1024;
}
__host__ __device__ constexpr size_t cmax(size_t a, size_t b) { return a > b ? a : b; }
// Whether tiles of nw warps stage their page-table rows in a shared-memory ring (see loadTile):
// CANOPY_ROW_PREFETCH 0 none, 1 every tile, 2 (default) the 8-warp tiles only.
__host__ __device__ constexpr bool usesRowRing(int nw) {
  return CANOPY_ROW_PREFETCH == 1 || (CANOPY_ROW_PREFETCH == 2 && nw == 8);
}

template <int D, int RG, int STAGES, int KT = ktFor(D, RG), int NW = warpsFor(D, RG)>
__host__ __device__ constexpr size_t unitSmemBytes() {
  constexpr int MT = mtFor(D, RG);
  return size_t(16 * RG) * rowStride<D>() * 2                       // Q
         + cmax(size_t(STAGES) * 2 * KT * rowStride<D>() * 2,        // K, V stages, reused for
                size_t(NW) * MT * 16 * (D + 4) * 4 + 16 * RG * 4)    //   the end-of-unit combine (+ row destinations)
         + size_t(16 * RG) * 4                                       // row limits
         + (usesRowRing(NW) ? size_t(STAGES) * KT * 4 : 0);          // staged page-table rows
}

// Who runs a unit and how its threads synchronise. A unit's code never names threadIdx or
// __syncthreads directly: a whole CTA runs it with CtaSync; one 4-warp half of an 8-warp CTA
// (the fused strategy's memory role) runs it with HalfSync, on named barrier 1 + half over its
// 128 threads, so the two halves run different units independently.
struct CtaSync {
  static constexpr int kThreads = 0;  // any: blockDim.x
  static constexpr bool kTightRegs = false;
  __device__ __forceinline__ int tid() const { return threadIdx.x; }
  __device__ __forceinline__ void sync() const { __syncthreads(); }
};
// A whole CTA under a tight register cap (the fused kernel's compute role: two 8-warp CTAs per SM
// whatever CANOPY_MMA8_BLOCKS says).
struct CtaSyncTight : CtaSync {
  static constexpr bool kTightRegs = true;
};
struct HalfSync {
  static constexpr int kThreads = 128;
  // Inside a 256-thread CTA capped at 128 registers (two per SM): Q fragments in registers
  // would spill, so the half's tiles reload them from shared memory like the 8-warp tiles.
  static constexpr bool kTightRegs = true;
  int half;  // 0 or 1: threads [128·half, 128·half + 128)
  __device__ __forceinline__ int tid() const { return static_cast<int>(threadIdx.x) - 128 * half; }
  // bar.sync orders shared-memory accesses among the participating threads like __syncthreads.
  // Immediate barrier ids (1, 2) so ptxas reserves 3 barriers, not all 16.
  __device__ __forceinline__ void sync() const {
    if (half == 0) asm volatile("bar.sync 1, 128;\n" ::: "memory");
    else asm volatile("bar.sync 2, 128;\n" ::: "memory");
  }
};

// One work unit on a tile of 16·RG rows. The unit's own rows are [16·w.rg·rowBlock, +16·w.rg);
// normally w.rg == RG, but a smaller unit may run on a larger tile (the fused strategy's halves
// run rg 1 units on their 32-row tiles): rows past the unit's are padding, never written, and
// warps whose 16 rows are all padding skip the arithmetic (they still load and hit the barriers).
template <int D, int RG, int STAGES, bool WG, class Sync = CtaSync, int KT_ = ktFor(D, RG), int NW_ = warpsFor(D, RG)>
__device__ __forceinline__ void attnUnit(const AttnParams& p, const WorkUnit w, char* smem, const Sync sync = Sync{},
                                         [[maybe_unused]] TraceMarks* marks = nullptr) {
  constexpr int kWarps = NW_;  // warpsFor(D, RG) except in the 2-warp tiny tile
  constexpr int kThreads = kWarps * 32;
  static_assert(Sync::kThreads == 0 || Sync::kThreads == kThreads, "the sync policy must cover the tile's warps");
  constexpr int MT = mtFor(D, RG);
  constexpr int kKT = KT_;
  constexpr int R = 16 * RG;
  constexpr int KV_SPLIT = kWarps * MT / RG;
  constexpr int NT = kKT / KV_SPLIT;  // tokens of a stage one warp handles (16, 32, 64)
  constexpr int SN = NT / 8;          // S n-tiles per warp
  constexpr int DK = D / 16;          // k-steps of Q·Kᵀ
  constexpr int DN = D / 8;           // n-tiles of O
  constexpr int S = rowStride<D>();
  // Q fragments stay in registers for the 4-warp single-m-tile tiles; the others reload them.
  constexpr bool Q_IN_REGS = D <= 128 && MT == 1 && !Sync::kTightRegs && !(WG && CANOPY_HAS_WGMMA) &&
                             (kWarps == 4 || minBlocksFor(D, kWarps) == 1);
  static_assert(NT >= 16 && NT % 16 == 0, "a warp needs whole 16-token k-steps");
  // 8-warp tiles may compute S with wgmma: each warpgroup (4 warps, 64 rows) issues
  // m64n{NT}k16 from Q and K in shared memory (core-matrix layout instead of padded rows).
  // O += P·V then uses wgmma too (m64n{D}k16, P from registers, V MN-major in shared memory), so
  // head dims 64 and 128 only (256 would need 128 accumulator registers per thread).
  constexpr bool USE_WG = WG && CANOPY_HAS_WGMMA && kWarps == 8 && MT == 1 && (NT == 32 || NT == 64 || NT == 128) && D <= 128;
  // Warp ↔ (16-row group rgi, token slice ks): with wgmma the 4 warps of a warpgroup take 64
  // consecutive rows and share a token slice; otherwise the KV_SPLIT warps of a row group are adjacent.
  auto warpOf = [](int rg16, int k) { return USE_WG ? (k + (rg16 / 4) * KV_SPLIT) * 4 + rg16 % 4 : rg16 * KV_SPLIT + k; };

  __half* sQ = reinterpret_cast<__half*>(smem);
  __half* sKV = sQ + R * S;
  constexpr size_t kvBytes = cmax(size_t(STAGES) * 2 * kKT * S * 2, size_t(kWarps) * MT * 16 * (D + 4) * 4 + R * 4);
  int* sLim = reinterpret_cast<int*>(reinterpret_cast<char*>(sKV) + kvBytes);
  int* sRows = sLim + R;  // [STAGES][kKT] page-table rows of upcoming stages (ring tiles only, see stageRows)

  const int tid = sync.tid();
  const int warp = tid >> 5;
  const int lane = tid & 31;
  // the warp's rows: [rgi·16·MT, (rgi+1)·16·MT); its tokens of each stage: [ks·NT, (ks+1)·NT)
  const int rgi = USE_WG ? ((warp >> 2) / KV_SPLIT) * 4 + (warp & 3) : warp / KV_SPLIT;
  const int ks = USE_WG ? (warp >> 2) % KV_SPLIT : warp % KV_SPLIT;

  [[maybe_unused]] const int item = w.item;  // read by the trace build
  const int kvHead = w.kvHead;
  const int tokBegin = w.tokBegin;  // the item's ranges come with the unit (WorkUnit)
  const int ntok = w.ntok;
  const int qBegin = w.qBegin;
  const int nq = w.nq;
  const int pos0 = w.pos0;
  const int G = p.group;
  const int rowBase = w.rowBlock * 16 * w.rg;
  const int numRows = min(nq * G, rowBase + 16 * w.rg);  // end of the unit's rows

  // KV loads: every thread copies NI 16-byte chunks of K and NI of V per stage. In the 8-warp
  // tiles a stage's page-table rows (tokRow) are staged in shared memory ahead of time by 4-byte
  // cp.async in the group of the stage STAGES - 1 tiles earlier (a ring of STAGES slots), so
  // issuing a stage's copies never waits on a dependent global load: W5 (root-dominated) 337 →
  // 320 µs on the H100, same build otherwise (docs/benchmarks/cuda-h100-rows-2026-11-23.json,
  // call 3, CANOPY_ROW_PREFETCH 0 vs 2). The 4-warp tiles read their rows from
  // global memory right before their copies (the ring made long memory-bound decode units 1-2%
  // slower there). CANOPY_ROW_PREFETCH=0 / 1 builds neither / both with the ring, for comparison.
  constexpr int kChunks = kKT * (D / 8);  // 16-byte chunks of one K (or V) stage
  static_assert(kChunks % kThreads == 0, "every thread copies the same number of chunks");
  static_assert(kKT <= kThreads, "one thread per token stages the rows");
  constexpr int NI = kChunks / kThreads;
  // Chunk k of this thread: token t0 + k·tStep, dims c0..c0+7 (the same for every k). With wgmma,
  // 8 consecutive threads fill one core matrix (8 tokens × 16 bytes) so the shared-memory stores
  // do not conflict.
  static_assert(!USE_WG || kThreads % D == 0, "the wgmma chunk order repeats every D threads");
  constexpr int tStep = USE_WG ? 8 * kThreads / D : kThreads / (D / 8);
  constexpr bool kRing = usesRowRing(kWarps);
  auto stageRows = [&](int tile) {  // rows of `tile` into its ring slot, in the open cp.async group
    const int tok = tile * kKT + tid;
    if (kRing && tid < kKT && tok < ntok) cpAsync4(sRows + (tile % STAGES) * kKT + tid, p.tokRow + tokBegin + tok);
  };
  constexpr int kBatchRowsMaxTokens = 2048;
  // The mma.sync tiles' chunk k of this thread: token t0 + k·tStep, dims c0..c0+7 (consecutive
  // threads take consecutive 16-byte chunks of a token's row).
  // Rows of `tile` for this thread's chunks, read from global: every load goes out before any
  // copy (the prologue tiles: one memory latency for all of them).
  auto fetchRows = [&](int tile, int (&rows)[NI]) {
#pragma unroll
    for (int k = 0; k < NI; ++k) {
      const int tok = tile * kKT + tid / (D / 8) + k * tStep;
      rows[k] = tok < ntok ? p.tokRow[tokBegin + tok] : 0;
    }
  };
  auto copyRows = [&](int tile, const int (&rows)[NI]) {
    __half* sK = sKV + (tile % STAGES) * 2 * kKT * S;
    __half* sV = sK + kKT * S;
    // Derived from tid here, not kept live through the main loop (register pressure).
    const int t0 = tid / (D / 8);
    const int c0 = (tid % (D / 8)) * 8;
    const int rowElems = p.numKvHeads * D;  // elements per KV-pool row (token)
    const int headElem = kvHead * D + c0;   // this thread's first element within a row
#pragma unroll
    for (int k = 0; k < NI; ++k) {
      const int t = t0 + k * tStep;
      const bool ok = tile * kKT + t < ntok;
      const size_t off = ok ? static_cast<size_t>(rows[k]) * rowElems + headElem : 0;
      cpAsync16(sK + t * S + c0, p.k + off, ok);
      cpAsync16(sV + t * S + c0, p.v + off, ok);
    }
  };
  // Loop stages: fromRing, the rows were staged (ring tiles); else the 4-warp tiles read theirs
  // from global right here (measured on the H100, staging them ahead made the long memory-bound
  // decode units 1-2% slower, W4 415 → 423 µs, while it speeds up the compute-bound 8-warp tiles).
  auto loadTile = [&](int tile, bool fromRing) {
    if constexpr (!USE_WG) {
      if (kRing && fromRing) {
        int rows[NI];
        const int* ring = sRows + (tile % STAGES) * kKT;
#pragma unroll
        for (int k = 0; k < NI; ++k) rows[k] = ring[tid / (D / 8) + k * tStep];
        copyRows(tile, rows);
        return;
      }
      // Loop stages of the 4-warp tiles. Units up to kBatchRowsMaxTokens: all of a tile's rows,
      // then all its copies (one memory latency per stage): on the H100 W1 87.7 → 81.6 µs, W2
      // 129.7 → 124.4, perRequest W1 319 → 291, W4 450 → 436. Longer units: four chunks' rows,
      // then their copies, and so on, as before (batched, W4's 4608-token units went 414 → 421).
      // docs/benchmarks/cuda-h100-prologue-2026-11-23.json, calls 2-4.
      if (ntok <= kBatchRowsMaxTokens) {
        int rows[NI];
        fetchRows(tile, rows);
        copyRows(tile, rows);
        return;
      }
      __half* sK = sKV + (tile % STAGES) * 2 * kKT * S;
      __half* sV = sK + kKT * S;
#pragma unroll 4
      for (int i = tid; i < kChunks; i += kThreads) {
        const int t = i / (D / 8);
        const int c = (i % (D / 8)) * 8;
        const int tok = tile * kKT + t;
        const bool ok = tok < ntok;
        size_t off = 0;
        if (ok) off = (static_cast<size_t>(p.tokRow[tokBegin + tok]) * p.numKvHeads + kvHead) * D + c;
        cpAsync16(sK + t * S + c, p.k + off, ok);
        cpAsync16(sV + t * S + c, p.v + off, ok);
      }
      return;
    }
    __half* sK = sKV + (tile % STAGES) * 2 * kKT * S;
    __half* sV = sK + kKT * S;
    const int* ring = sRows + (tile % STAGES) * kKT;
    const int t0 = (tid & 7) + 8 * ((tid >> 3) / (D / 8));
    const int c0 = ((tid >> 3) % (D / 8)) * 8;
    const int rowElems = p.numKvHeads * D;
    const int headElem = kvHead * D + c0;
#pragma unroll
    for (int k = 0; k < NI; ++k) {
      const int t = t0 + k * tStep;
      const int tok = tile * kKT + t;
      const bool ok = tok < ntok;
      size_t off = 0;
      if (ok) off = static_cast<size_t>(kRing && fromRing ? ring[t] : p.tokRow[tokBegin + tok]) * rowElems + headElem;
      // K in core matrices: chunk (token t, dims c..c+7) at ((c/8)·(KT/8) + t/8)·128 + (t%8)·16
      // bytes; V MN-major for the P·V wgmma: core matrix (tokens t/8·8.., dims c..c+7) at
      // ((t/8)·(D/8) + c/8)·128 bytes, token t%8 its 16-byte row.
      cpAsync16(sK + ((c0 / 8) * (kKT / 8) + t / 8) * 64 + (t % 8) * 8, p.k + off, ok);
      cpAsync16(sV + ((t / 8) * (D / 8) + c0 / 8) * 64 + (t % 8) * 8, p.v + off, ok);
    }
  };

  // Start streaming KV before gathering Q so the first loads overlap the gather; the prologue
  // tiles' rows are all read before their copies (one memory latency for the prologue).
  const int tilesAll = (ntok + kKT - 1) / kKT;
  if constexpr (!USE_WG) {
    int rows0[STAGES - 1][NI];
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) fetchRows(s, rows0[s]);
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < tilesAll) copyRows(s, rows0[s]);
      stageRows(s + STAGES - 1);  // read at loop iteration s, after that iteration's wait
      cpAsyncCommit();
    }
  } else {
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < tilesAll) loadTile(s, false);
      stageRows(s + STAGES - 1);
      cpAsyncCommit();
    }
  }

  // Under the 128-register cap (8-warp tiles, the fused kernel's halves) 4 values in flight per
  // thread; 8 spilled there.
  constexpr int kGatherBatch = (kWarps == 8 || Sync::kTightRegs) ? 4 : 8;
  gatherUnitRows<R, D, kThreads, kGatherBatch>(p, tid, rowBase, numRows, qBegin, w.qFirst, kvHead, pos0, ntok, p.scaleLog2, sLim,
                                 [&](int r, int c, float4 v) {
                                   // wgmma reads Q as core matrices (like K, with R rows); mma.sync reads padded rows.
                                   __half* qd = USE_WG ? sQ + ((c / 8) * (R / 8) + r / 8) * 64 + (r % 8) * 8 + (c % 8) : sQ + r * S + c;
                                   __half2* dst = reinterpret_cast<__half2*>(qd);
                                   dst[0] = __floats2half2_rn(v.x, v.y);
                                   dst[1] = __floats2half2_rn(v.z, v.w);
                                 });
  // Where each row's (o, lse) goes: the partial slot's destination query when it is the query's
  // only partial, else -1. The 4-warp tiles (short, latency-bound units) load it here, so the main
  // loop hides its latency instead of the end of the unit; the 8-warp tiles, under their
  // 128-register cap, load it after the loop (one register through the loop made ptxas spill in
  // the 128-row tile). Either way it is staged in shared memory for the write loop: read there per
  // element, the load sat behind the loop's own global stores (the compiler must assume they
  // alias), a dependent round trip per iteration that made the 8-warp tiles' end of unit take
  // 10-18 µs on the H100 (CANOPY_TRACE, 2026-11-24).
#ifndef CANOPY_EARLY_DEST
#define CANOPY_EARLY_DEST 1
#endif
  constexpr bool kEarlyDest = CANOPY_EARLY_DEST && kWarps <= 4;
  const int partialBase = w.partialBase;
  auto loadRowDest = [&]() {
    return tid < R && rowBase + tid < numRows ? p.slotDest[partialBase + (rowBase + tid) / G] : -1;
  };
  int rowDest = -1;
  if constexpr (kEarlyDest) rowDest = loadRowDest();
  if constexpr (USE_WG) fenceProxyAsync();  // generic-proxy stores of Q, read next by wgmma
  sync.sync();
  if (marks) CANOPY_TRACE_MARK(marks->a);

  // maxLim bounds the tiles to stream; below minLim (over the real rows) no row needs masking,
  // so those tiles skip the mask arithmetic. Padding rows (past numRows) are never written.
  int maxLim, minLim;
  unitLimits<R>(sLim, numRows - rowBase, ntok, maxLim, minLim);
  const int nTiles = (maxLim + kKT - 1) / kKT;
  const bool warpHasRows = rowBase + rgi * MT * 16 < numRows;
  const __half* sQw = sQ + rgi * MT * 16 * S;
  const int qRow = (lane & 7) + 8 * ((lane >> 3) & 1);
  const int qCol = 8 * (lane >> 4);
  unsigned qf[Q_IN_REGS ? DK : 1][4];
  if constexpr (Q_IN_REGS) {
#pragma unroll
    for (int kk = 0; kk < DK; ++kk) ldmatrixX4(qf[kk], sQw + qRow * S + kk * 16 + qCol);
  }

  float o[MT][DN][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < DN; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
  float mA[MT], mB[MT], lA[MT], lB[MT];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) mA[mt] = mB[mt] = -INFINITY, lA[mt] = lB[mt] = 0.f;

  for (int j = 0; j < nTiles; ++j) {
    cpAsyncWait<STAGES - 2>();
    if constexpr (USE_WG) fenceProxyAsync();  // cp.async data (generic proxy) is read by wgmma
    sync.sync();
    {
      const int nxt = j + STAGES - 1;
      if (nxt < nTiles) {
        loadTile(nxt, true);
        stageRows(nxt + STAGES - 1);  // its slot held tile nxt - 1's rows, read last iteration
      }
      cpAsyncCommit();
    }
    // A warp whose rows are all padding has nothing to compute (wgmma needs its whole warpgroup).
    if (!USE_WG && !warpHasRows) continue;
    const __half* sK = sKV + (j % STAGES) * 2 * kKT * S + ks * NT * S;
    const __half* sV = sK + kKT * S;

    float s[MT][SN][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int n = 0; n < SN; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#if CANOPY_HAS_WGMMA
    if constexpr (USE_WG) {
      const __half* sKc = sKV + (j % STAGES) * 2 * kKT * S;  // this stage's K, core-matrix layout
      const int row0 = ((warp >> 2) / KV_SPLIT) * 64;         // the warpgroup's first row
      wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < DK; ++kk) {
        const unsigned long long da = smemDesc(sQ + (2 * kk * (R / 8) + row0 / 8) * 64, (R / 8) * 128, 128);
        const unsigned long long db = smemDesc(sKc + (2 * kk * (kKT / 8) + ks * NT / 8) * 64, (kKT / 8) * 128, 128);
        wgmmaSS<NT>(s[0], da, db, kk > 0);
      }
      wgmmaCommitWait();
    }
#endif
#pragma unroll
    for (int kk = 0; kk < (USE_WG ? 0 : DK); ++kk) {
      unsigned a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if constexpr (Q_IN_REGS) {
#pragma unroll
          for (int e = 0; e < 4; ++e) a[mt][e] = qf[kk][e];
        } else {
          ldmatrixX4(a[mt], sQw + (mt * 16 + qRow) * S + kk * 16 + qCol);
        }
      }
#pragma unroll
      for (int nn = 0; nn < SN / 2; ++nn) {
        unsigned b[4];
        const int tok = nn * 16 + (lane & 7) + 8 * (lane >> 4);
        const int col = kk * 16 + 8 * ((lane >> 3) & 1);
        ldmatrixX4(b, sK + tok * S + col);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(s[mt][2 * nn], a[mt], b[0], b[1]);
          mma16816(s[mt][2 * nn + 1], a[mt], b[2], b[3]);
        }
      }
    }

    // Mask (positions at or past the row's limit, and the zero-filled tail) and online softmax.
    const int tokBase = j * kKT + ks * NT + 2 * (lane & 3);
    if ((j + 1) * kKT > minLim) {  // CTA-uniform: below minLim no row needs masking
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        // The limits of rows lane/4 and lane/4 + 8, read here rather than kept in registers
        // through the loop (the 8-warp tiles run at their 128-register cap).
        const int limA = sLim[(rgi * MT + mt) * 16 + (lane >> 2)];
        const int limB = sLim[(rgi * MT + mt) * 16 + (lane >> 2) + 8];
#pragma unroll
        for (int n = 0; n < SN; ++n) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int tok = tokBase + n * 8 + e;
            if (tok >= limA) s[mt][n][e] = -INFINITY;
            if (tok >= limB) s[mt][n][2 + e] = -INFINITY;
          }
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float alphaA, alphaB;
      onlineSoftmaxStep<SN>(s[mt], mA[mt], mB[mt], lA[mt], lB[mt], alphaA, alphaB);
      rescaleRows<DN>(o[mt], alphaA, alphaB);
    }

    // O += P·V: the S accumulators of two adjacent n-tiles form one A fragment (16 tokens).
#if CANOPY_HAS_WGMMA
    if constexpr (USE_WG) {
      // The warpgroup's token slice of this stage's V (MN-major core matrices, see loadTile):
      // 16 tokens per k-step; byte offsets: next 8 tokens (K) (D/8)·128, next 8 dims (N) 128.
      const __half* sVc = sKV + (j % STAGES) * 2 * kKT * S + kKT * S;
      // Every A fragment is packed before the fence: a register written between two wgmmas
      // makes ptxas inject another warpgroup.arrive (its C7519 note).
      unsigned a[NT / 16][4];
#pragma unroll
      for (int kk = 0; kk < NT / 16; ++kk) packP(a[kk], s[0], kk);
      wgmmaFence();  // the A registers (P) and the rescaled O were written by ordinary instructions
#pragma unroll
      for (int kk = 0; kk < NT / 16; ++kk) {
        const unsigned long long db =
            smemDesc(sVc + ((ks * NT + 16 * kk) / 8) * (D / 8) * 64, (D / 8) * 128, 128);
        wgmmaRS<D>(o[0], a[kk], db);
      }
      wgmmaCommitWait();
    }
#endif
#pragma unroll
    for (int kk = 0; kk < (USE_WG ? 0 : NT / 16); ++kk) {
      unsigned a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) packP(a[mt], s[mt], kk);
#pragma unroll
      for (int dn = 0; dn < DN / 2; ++dn) {
        unsigned b[4];
        const int tok = kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
        const int col = dn * 16 + 8 * (lane >> 4);
        ldmatrixX4T(b, sV + tok * S + col);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(o[mt][2 * dn], a[mt], b[0], b[1]);
          mma16816(o[mt][2 * dn + 1], a[mt], b[2], b[3]);
        }
      }
    }
  }
  if constexpr (!kEarlyDest) rowDest = loadRowDest();
  cpAsyncWait<0>();
  if (marks) CANOPY_TRACE_MARK(marks->b);
  sync.sync();  // every warp is done with the stage buffers: reuse them to combine

  // Per (warp, m-tile) 16-row block: O (unnormalised), running max and sum, through shared memory.
  constexpr int OS = D + 2;  // padded row (floats) so the float2 stores of a quad spread over banks
  float* sO = reinterpret_cast<float*>(sKV);  // [kWarps·MT][16][OS]
  float* sM = sO + kWarps * MT * 16 * OS;      // [kWarps·MT][16]
  float* sL = sM + kWarps * MT * 16;
  int* sDest = reinterpret_cast<int*>(sL + kWarps * MT * 16);  // [R]
  static_assert(size_t(kWarps) * MT * 16 * (OS + 2) * 4 + R * 4 <= kvBytes, "combine area must fit");
  if (tid < R) sDest[tid] = rowDest;
  {
    const int g = lane >> 2;
    const int t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float la = lA[mt], lb = lB[mt];
      la += __shfl_xor_sync(0xffffffffu, la, 1);
      la += __shfl_xor_sync(0xffffffffu, la, 2);
      lb += __shfl_xor_sync(0xffffffffu, lb, 1);
      lb += __shfl_xor_sync(0xffffffffu, lb, 2);
      const int blk = warp * MT + mt;
      float* ow = sO + blk * 16 * OS;
#pragma unroll
      for (int dn = 0; dn < DN; ++dn) {
        *reinterpret_cast<float2*>(ow + g * OS + dn * 8 + 2 * t) = make_float2(o[mt][dn][0], o[mt][dn][1]);
        *reinterpret_cast<float2*>(ow + (g + 8) * OS + dn * 8 + 2 * t) = make_float2(o[mt][dn][2], o[mt][dn][3]);
      }
      if (t == 0) {
        sM[blk * 16 + g] = mA[mt];
        sM[blk * 16 + g + 8] = mB[mt];
        sL[blk * 16 + g] = la;
        sL[blk * 16 + g + 8] = lb;
      }
    }
  }
  sync.sync();

  for (int i = tid; i < R * (D / 2); i += kThreads) {
    const int r = i / (D / 2);
    const int c = (i % (D / 2)) * 2;
    const int gr = rowBase + r;
    if (gr >= numRows) continue;
    // 16-row block b of the tile is m-tile b % MT of the warps warpOf(b / MT, k).
    const int b = r / 16;
    const int lr = r % 16;
    float M = -INFINITY;
#pragma unroll
    for (int k = 0; k < KV_SPLIT; ++k) M = fmaxf(M, sM[(warpOf(b / MT, k) * MT + b % MT) * 16 + lr]);
    float L = 0.f;
    float2 acc = make_float2(0.f, 0.f);
    if (M != -INFINITY) {
#pragma unroll
      for (int k = 0; k < KV_SPLIT; ++k) {
        const int blk = warpOf(b / MT, k) * MT + b % MT;
        const float f = exp2f(sM[blk * 16 + lr] - M);
        L += sL[blk * 16 + lr] * f;
        const float2 v = *reinterpret_cast<const float2*>(sO + (blk * 16 + lr) * OS + c);
        acc.x += v.x * f;
        acc.y += v.y * f;
      }
    }
    float lse;
    if (L > 0.f) {
      const float inv = 1.f / L;
      acc.x *= inv;
      acc.y *= inv;
      lse = (M + log2f(L)) * 0.69314718055994531f;
    } else {
      acc = make_float2(0.f, 0.f);
      lse = -INFINITY;  // the empty state: this item holds nothing the query sees
    }
    const int lq = gr / G;
    const int hq = kvHead * G + gr % G;
    const int slot = partialBase + lq;
    const int dest = sDest[r];
    float* oDst;
    float* lseDst;
    if (dest >= 0) {
      oDst = p.out + (static_cast<size_t>(dest) * p.numQoHeads + hq) * D;
      lseDst = p.outLse + static_cast<size_t>(dest) * p.numQoHeads + hq;
    } else {
      oDst = p.partO + (static_cast<size_t>(slot) * p.numQoHeads + hq) * D;
      lseDst = p.partLse + static_cast<size_t>(slot) * p.numQoHeads + hq;
    }
    *reinterpret_cast<float2*>(oDst + c) = acc;
    if (c == 0) *lseDst = lse;
  }
}

// Stages: 3 where two CTAs per SM still fit (≤ 113 KB each), else 2.
template <int D, int RG>
__host__ __device__ constexpr int tileStages() {
  return unitSmemBytes<D, RG, 3>() <= smemBudget(D, warpsFor(D, RG)) ? 3 : 2;
}

// CTAs per SM of the wgmma kernels: 2 (under the 128-register cap, like the mma.sync tiles) or 1
// (no cap, 3 stages wherever they fit in an SM). A build-time switch for measuring both.
// CANOPY_WG_PIPE=0 runs the 128-row wgmma units on attnUnit's wgmma path (each product waited for
// before the softmax) instead of the pipelined tile of attention_wgpipe.cu, for comparison.
#ifndef CANOPY_WG_PIPE
#define CANOPY_WG_PIPE 1
#endif
// Whether a launch asking for wgmma runs this file's wgmma path (attnUnit with WG): only in
// CANOPY_WG_PIPE=0 builds; otherwise the 128-row units take the pipelined tile and everything else
// mma.sync.
constexpr bool attnUnitWgmma(bool wgmma) { return wgmma && !CANOPY_WG_PIPE; }
#ifndef CANOPY_WG_MIN_BLOCKS
#define CANOPY_WG_MIN_BLOCKS 2
#endif
template <int D, int RG>
__host__ __device__ constexpr int tileStagesWg() {
  return CANOPY_WG_MIN_BLOCKS == 1 ? (unitSmemBytes<D, RG, 3>() <= 220 * 1024 ? 3 : 2) : tileStages<D, RG>();
}
__host__ __device__ constexpr int minBlocksWg(int d, int nw) { return CANOPY_WG_MIN_BLOCKS == 1 ? 1 : minBlocksFor(d, nw); }

template <int D, int RG, int STAGES, bool WG>
__global__ void __launch_bounds__(warpsFor(D, RG) * 32, WG ? minBlocksWg(D, warpsFor(D, RG)) : minBlocksFor(D, warpsFor(D, RG))) attnTileKernel(AttnParams p) {
  extern __shared__ __align__(16) char smem[];
  CANOPY_TRACE_START(t0);
  const WorkUnit w = p.work[blockIdx.x];
  TraceMarks marks;
  attnUnit<D, RG, STAGES, WG>(p, w, smem, CtaSync{}, &marks);
  CANOPY_TRACE_UNIT_AB(0, t0, w.item, w.kvHead, w.rowBlock, RG, marks.a, marks.b);
}

// The 16-row tile for plans whose 16-row units are all short (at most SHORT_UNIT_TOKENS = 2048
// visible tokens each; the host decides per plan, src/prepare.ts): three CTAs per SM (a 168-register cap, 2 stages,
// 72 KB of shared memory) instead of the default's two (3 stages, 108 KB), so more of these
// latency-bound units are in flight. Measured on the H100 with every 16-row tile built this way
// (docs/benchmarks/cuda-h100-rg1-2026-11-23.json): W5 (2048 units of 64 tokens) 242 → 231 µs, S1
// 277 → 256, perRequest W1 292 → 274 (922-token units); but W4's 4608-token units 413 → 463, hence
// the length limit.
constexpr int kShortTileBlocks = 3;
template <int D>
__global__ void __launch_bounds__(128, kShortTileBlocks) attnTileShortKernel(AttnParams p) {
  extern __shared__ __align__(16) char smem[];
  CANOPY_TRACE_START(t0);
  const WorkUnit w = p.work[blockIdx.x];
  TraceMarks marks;
  attnUnit<D, 1, 2, false>(p, w, smem, CtaSync{}, &marks);
  CANOPY_TRACE_UNIT_AB(1, t0, w.item, w.kvHead, w.rowBlock, 1, marks.a, marks.b);
}
template <int D>
__host__ __device__ constexpr bool hasShortTile() {
  return D <= 128 && (unitSmemBytes<D, 1, 2>() + 1024) * kShortTileBlocks <= 228 * 1024;
}

// The 16-row tile for plans whose 16-row units are all tiny (at most the host's tiny-unit limit
// of visible tokens, e.g. W5's 64-token leaves, a draft tree's nodes): 2 warps (each 16 rows ×
// 16 of a stage's tokens), 32-token stages, 2 stages: 39 KB of shared memory at d128 and a
// 168-register cap, so five CTAs per SM instead of the short tile's three. Such units are latency
// bound (the trace build put W5's leaf units at 4 µs of prologue, 1.5 of loop and 2.5 of end
// each, three per SM): more of them in flight per SM is what moves their phase.
constexpr int kTinyTileWarps = 2;
constexpr int kTinyTileKT = 32;
constexpr int kTinyTileBlocks = 5;
template <int D>
__global__ void __launch_bounds__(kTinyTileWarps * 32, kTinyTileBlocks) attnTileTinyKernel(AttnParams p) {
  extern __shared__ __align__(16) char smem[];
  CANOPY_TRACE_START(t0);
  const WorkUnit w = p.work[blockIdx.x];
  TraceMarks marks;
  attnUnit<D, 1, 2, false, CtaSync, kTinyTileKT, kTinyTileWarps>(p, w, smem, CtaSync{}, &marks);
  CANOPY_TRACE_UNIT_AB(3, t0, w.item, w.kvHead, w.rowBlock, 1, marks.a, marks.b);
}
template <int D>
__host__ __device__ constexpr size_t tinyTileSmem() {
  return unitSmemBytes<D, 1, 2, kTinyTileKT, kTinyTileWarps>();
}
template <int D>
__host__ __device__ constexpr bool hasTinyTile() {
  return D <= 128 && (tinyTileSmem<D>() + 1024) * kTinyTileBlocks <= 228 * 1024;
}

// Persistent variant: a grid sized to the chip pulls work units (sorted longest first on the
// host) from a global counter and dispatches on each unit's rg. Tiles of different warp counts
// cannot share a CTA shape, so there is one persistent kernel per warp count (a "family": the
// rg whose tile kernel has NW warps); the host launches the families side by side on two
// streams, each with its own list and counter.
template <int D, int NW>
__host__ __device__ constexpr bool inFamily(int rg) { return warpsFor(D, rg) == NW; }

template <int D, int NW>
__host__ __device__ constexpr size_t familySmem(int stages) {
  size_t m = 0;
  if (inFamily<D, NW>(1)) m = cmax(m, stages == 3 ? unitSmemBytes<D, 1, 3>() : unitSmemBytes<D, 1, 2>());
  if (inFamily<D, NW>(2)) m = cmax(m, stages == 3 ? unitSmemBytes<D, 2, 3>() : unitSmemBytes<D, 2, 2>());
  if (inFamily<D, NW>(4)) m = cmax(m, stages == 3 ? unitSmemBytes<D, 4, 3>() : unitSmemBytes<D, 4, 2>());
  if (inFamily<D, NW>(8)) m = cmax(m, stages == 3 ? unitSmemBytes<D, 8, 3>() : unitSmemBytes<D, 8, 2>());
  return m;
}

template <int D, int NW>
__host__ __device__ constexpr int persistentStages() {
  return familySmem<D, NW>(3) <= smemBudget(D, NW) ? 3 : 2;
}
// The fused kernel's 8-warp role always runs two CTAs per SM.
template <int D>
__host__ __device__ constexpr int fusedStages8() {
  return familySmem<D, 8>(3) <= 113 * 1024 ? 3 : 2;
}

template <int D, int NW, bool WG>
__global__ void __launch_bounds__(NW * 32, WG ? minBlocksWg(D, NW) : minBlocksFor(D, NW)) attnPersistentKernel(AttnParams p) {
  extern __shared__ __align__(16) char smem[];
  constexpr int ST = persistentStages<D, NW>();
  __shared__ int sNext;
  for (;;) {
    if (threadIdx.x == 0) sNext = atomicAdd(p.counter, 1);
    __syncthreads();
    const int wi = sNext;
    __syncthreads();  // all threads read sNext before thread 0 may overwrite it
    if (wi >= p.numWork) break;
    const WorkUnit w = p.work[wi];
    CANOPY_TRACE_START(t0);
    TraceMarks marks;
    switch (w.rg) {
      case 1: if constexpr (inFamily<D, NW>(1)) attnUnit<D, 1, ST, WG>(p, w, smem, CtaSync{}, &marks); break;
      case 2: if constexpr (inFamily<D, NW>(2)) attnUnit<D, 2, ST, WG>(p, w, smem, CtaSync{}, &marks); break;
      case 4: if constexpr (inFamily<D, NW>(4)) attnUnit<D, 4, ST, WG>(p, w, smem, CtaSync{}, &marks); break;
      default: if constexpr (inFamily<D, NW>(8)) attnUnit<D, 8, ST, WG>(p, w, smem, CtaSync{}, &marks); break;
    }
    CANOPY_TRACE_UNIT_AB(2, t0, w.item, w.kvHead, w.rowBlock, w.rg, marks.a, marks.b);
    __syncthreads();  // the next unit overwrites shared memory this one read last
  }
}

// Fused strategy (POD-Attention style): ONE persistent grid of identical 8-warp CTAs, two per SM,
// for a batch that mixes compute-bound units (8-warp tiles, rg 4/8: prefill chunks and shared
// prefixes under many queries) and memory-bound units (4-warp tiles, rg 1/2: decode). Each CTA
// takes a role when it starts: its SM slot (a per-SM arrival counter on %smid) and a per-slot
// ticket against the host's quotas decide whether it starts as
//  - compute role: the whole CTA pulls 8-warp units (f.work8, longest first) and runs them with
//    __syncthreads, exactly as the persistent 8-warp grid does;
//  - memory role: the CTA splits into two independent 4-warp halves, each in its own half of
//    shared memory, each pulling 4-warp units from f.work4 and syncing on its own named barrier
//    (bar.sync 1 + half, 128). The halves run every 4-warp unit on a 32-row × 32-token tile,
//    2 stages (KV_SPLIT 2: a 16-row decode unit keeps 2 of the 4 warps computing, all 4 loading),
//    because two 64-token 4-warp tiles do not fit in half of an 8-warp CTA's shared memory.
// When a role's list is empty the CTA switches to the other list (the halves rejoin on a
// __syncthreads first), so neither kind of unit leaves SMs idle at the tail. The quotas come
// from the host's estimate of compute time (8-warp units' FLOPs) vs memory time (4-warp units'
// bytes): slot 0 of every SM starts as compute first, so when both are needed an SM holds one
// CTA of each kind, the tensor-core-heavy and the bandwidth-heavy side by side. (Measured on the
// H100, that split loses to starting every CTA on the compute list whenever compute is at least
// half the estimate: long prefill units then fill both slots of every SM and the halves pick up
// decode as the list drains; the host's quotas follow that rule, prepare.ts fusedStartFraction.)
// Costs per SM: the compute role is the persistent 8-warp kernel's; a memory-role CTA streams
// 2 × 32 tokens × headDim × 4 bytes per stage pair per half (two halves, 2 stages each).
// Head dims 64 and 128 (256 fits one CTA per SM; the host falls back to 'persistent').
constexpr int kFusedHalfKT = 32;
template <int D>
__host__ __device__ constexpr size_t fusedHalfSmem() {
  return (unitSmemBytes<D, 2, 2, kFusedHalfKT>() + 127) / 128 * 128;
}
template <int D>
__host__ __device__ constexpr size_t fusedSmem() {
  return cmax(familySmem<D, 8>(fusedStages8<D>()), 2 * fusedHalfSmem<D>());
}

template <int D>
__global__ void __launch_bounds__(256, 2) attnFusedKernel(AttnParams p, FusedParams f) {
  extern __shared__ __align__(16) char smem[];
  constexpr int ST8 = fusedStages8<D>();
  static_assert(warpsFor(D, 4) == 8 && warpsFor(D, 8) == 8 && warpsFor(D, 2) == 4, "fused roles assume 8-warp rg 4/8, 4-warp rg 1/2");
  __shared__ int sNext[3];  // [0] the whole CTA's next unit, [1 + h] half h's
  __shared__ int sRole;
  if (threadIdx.x == 0) {
    unsigned smid;
    asm volatile("mov.u32 %0, %%smid;\n" : "=r"(smid));
    const int slot = atomicAdd(f.counters + 4 + (smid % kFusedSmSlots), 1) & 1;
    const int ticket = atomicAdd(f.counters + 2 + slot, 1);
    sRole = ticket < (slot == 0 ? f.computeQuota0 : f.computeQuota1) ? 1 : 0;
  }
  __syncthreads();
  const bool computeFirst = sRole != 0;

  auto computeRole = [&]() {
    for (;;) {
      if (threadIdx.x == 0) sNext[0] = atomicAdd(f.counters + 0, 1);
      __syncthreads();
      const int wi = sNext[0];
      __syncthreads();  // all threads read sNext before thread 0 may overwrite it
      if (wi >= f.n8) break;
      const WorkUnit w = f.work8[wi];
      if (w.rg == 8) attnUnit<D, 8, ST8, false, CtaSyncTight>(p, w, smem);
      else attnUnit<D, 4, ST8, false, CtaSyncTight>(p, w, smem);
      __syncthreads();  // the next unit overwrites shared memory this one read last
    }
  };
  auto memoryRole = [&]() {
    const HalfSync hs{static_cast<int>(threadIdx.x >> 7)};
    char* hsmem = smem + hs.half * fusedHalfSmem<D>();
    for (;;) {
      if (hs.tid() == 0) sNext[1 + hs.half] = atomicAdd(f.counters + 1, 1);
      hs.sync();
      const int wi = sNext[1 + hs.half];
      hs.sync();
      if (wi >= f.n4) break;
      attnUnit<D, 2, 2, false, HalfSync, kFusedHalfKT>(p, f.work4[wi], hsmem, hs);
      hs.sync();
    }
    __syncthreads();  // both halves done before the CTA uses shared memory as one
  };
  // One copy of each role's loop (two inlined copies cost registers under the 128 cap).
#pragma unroll 1
  for (int phase = 0; phase < 2; ++phase) {
    if ((phase == 0) == computeFirst) computeRole();
    else memoryRole();
  }
}

template <int D, int RG>
size_t tileSmem() {
  return unitSmemBytes<D, RG, tileStages<D, RG>()>();
}
template <int D, int RG>
size_t tileSmemWg() {
  return unitSmemBytes<D, RG, tileStagesWg<D, RG>()>();
}
template <int D, int NW>
size_t persistentSmem() {
  return familySmem<D, NW>(persistentStages<D, NW>());
}

// wgmma variants exist for the 8-warp kernels only (4-warp tiles always use mma.sync).
template <int D, int RG>
void launchTileD(const AttnParams& p, bool wg, Rg1Tile rg1Tile, cudaStream_t stream) {
  constexpr int ST = tileStages<D, RG>();
  if constexpr (RG == 1 && hasTinyTile<D>()) {
    if (rg1Tile == kRg1Tiny) {
      attnTileTinyKernel<D><<<p.numWork, kTinyTileWarps * 32, tinyTileSmem<D>(), stream>>>(p);
      CANOPY_LAUNCHED("attnTileTinyKernel launch");
      return;
    }
  }
  if constexpr (RG == 1 && hasShortTile<D>()) {
    if (rg1Tile != kRg1Default) {
      attnTileShortKernel<D><<<p.numWork, 128, unitSmemBytes<D, 1, 2>(), stream>>>(p);
      CANOPY_LAUNCHED("attnTileShortKernel launch");
      return;
    }
  }
  if constexpr (warpsFor(D, RG) == 8) {
    // 128-row wgmma units run on the pipelined tile (attention_wgpipe.cu) where the GPU has it;
    // in the default build every other unit runs on mma.sync (this file's wgmma path is kept for
    // comparison, CANOPY_WG_PIPE=0).
    if (CANOPY_WG_PIPE && RG == 8 && wg && attnPipeSupported(D)) {
      launchAttnPipe(p, D, stream);
      return;
    }
    if (attnUnitWgmma(wg)) {
      attnTileKernel<D, RG, tileStagesWg<D, RG>(), true><<<p.numWork, warpsFor(D, RG) * 32, tileSmemWg<D, RG>(), stream>>>(p);
      CANOPY_LAUNCHED("attnTileKernel launch");
      return;
    }
  }
  attnTileKernel<D, RG, ST, false><<<p.numWork, warpsFor(D, RG) * 32, tileSmem<D, RG>(), stream>>>(p);
  CANOPY_LAUNCHED("attnTileKernel launch");
}

template <int D, int RG>
void initTile() {
  if constexpr (RG == 1 && hasTinyTile<D>()) {
    CANOPY_CUDA(cudaFuncSetAttribute(attnTileTinyKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(tinyTileSmem<D>())));
  }
  if constexpr (RG == 1 && hasShortTile<D>()) {
    CANOPY_CUDA(cudaFuncSetAttribute(attnTileShortKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(unitSmemBytes<D, 1, 2>())));
  }
  CANOPY_CUDA(cudaFuncSetAttribute(attnTileKernel<D, RG, tileStages<D, RG>(), false>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, int(tileSmem<D, RG>())));
  if constexpr (warpsFor(D, RG) == 8) {
    CANOPY_CUDA(cudaFuncSetAttribute(attnTileKernel<D, RG, tileStagesWg<D, RG>(), true>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, int(tileSmemWg<D, RG>())));
  }
}
template <int D, int NW>
void initPersistent() {
  CANOPY_CUDA(cudaFuncSetAttribute(attnPersistentKernel<D, NW, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   int(persistentSmem<D, NW>())));
  if constexpr (NW == 8) {
    CANOPY_CUDA(cudaFuncSetAttribute(attnPersistentKernel<D, NW, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(persistentSmem<D, NW>())));
  }
}
template <int D>
void initD() {
  initTile<D, 1>();
  initTile<D, 2>();
  initTile<D, 4>();
  initTile<D, 8>();
  initPersistent<D, 4>();
  initPersistent<D, 8>();
  if constexpr (D <= 128) {
    CANOPY_CUDA(cudaFuncSetAttribute(attnFusedKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(fusedSmem<D>())));
  }
}

template <int D, int NW>
int persistentPerSm(bool wg) {
  int n = 0;
  if (NW == 8 && wg) {
    CANOPY_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attnPersistentKernel<D, NW, true>, NW * 32,
                                                              persistentSmem<D, NW>()));
  } else {
    CANOPY_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attnPersistentKernel<D, NW, false>, NW * 32,
                                                              persistentSmem<D, NW>()));
  }
  return n < 1 ? 1 : n;
}

template <int D, int NW>
void launchPersistentD(const AttnParams& p, int grid, bool wg, cudaStream_t stream) {
  if constexpr (NW == 8) {
    if (wg) {
      attnPersistentKernel<D, NW, true><<<grid, NW * 32, persistentSmem<D, NW>(), stream>>>(p);
      CANOPY_LAUNCHED("attnPersistentKernel launch");
      return;
    }
  }
  attnPersistentKernel<D, NW, false><<<grid, NW * 32, persistentSmem<D, NW>(), stream>>>(p);
  CANOPY_LAUNCHED("attnPersistentKernel launch");
}

template <int D>
int fusedPerSm() {
  int n = 0;
  CANOPY_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attnFusedKernel<D>, 256, fusedSmem<D>()));
  return n < 1 ? 1 : n;
}

}  // namespace

bool attnFusedSupported(int headDim) { return headDim == 64 || headDim == 128; }

int attnFusedBlocksPerSm(int headDim) {
  switch (headDim) {
    case 64: return fusedPerSm<64>();
    case 128: return fusedPerSm<128>();
    default: throw CudaError("attention: fused strategy: unsupported head dim " + std::to_string(headDim));
  }
}

void launchAttnFused(const AttnParams& p, const FusedParams& f, int headDim, int gridBlocks, cudaStream_t stream) {
  if (f.n4 + f.n8 == 0) return;
  switch (headDim) {
    case 64: attnFusedKernel<64><<<gridBlocks, 256, fusedSmem<64>(), stream>>>(p, f); break;
    case 128: attnFusedKernel<128><<<gridBlocks, 256, fusedSmem<128>(), stream>>>(p, f); break;
    default: throw CudaError("attention: fused strategy: unsupported head dim " + std::to_string(headDim));
  }
  CANOPY_LAUNCHED("attnFusedKernel launch");
}

int attnWarpsFor(int headDim, int rg) { return warpsFor(headDim, rg); }

void attnInit() {
  initD<64>();
  initD<128>();
  initD<256>();
  attnPipeInit();
}

void launchAttnTiles(const AttnParams& p, int headDim, int rg, bool wgmma, Rg1Tile rg1Tile, cudaStream_t stream) {
  if (p.numWork == 0) return;
  switch (headDim * 16 + rg) {
#define CANOPY_TILE_CASE(D, RG) \
  case D * 16 + RG: launchTileD<D, RG>(p, wgmma, rg1Tile, stream); break;
    CANOPY_TILE_CASE(64, 1) CANOPY_TILE_CASE(64, 2) CANOPY_TILE_CASE(64, 4) CANOPY_TILE_CASE(64, 8)
    CANOPY_TILE_CASE(128, 1) CANOPY_TILE_CASE(128, 2) CANOPY_TILE_CASE(128, 4) CANOPY_TILE_CASE(128, 8)
    CANOPY_TILE_CASE(256, 1) CANOPY_TILE_CASE(256, 2) CANOPY_TILE_CASE(256, 4) CANOPY_TILE_CASE(256, 8)
#undef CANOPY_TILE_CASE
    default: throw CudaError("attention: unsupported head dim " + std::to_string(headDim) + " / rg " + std::to_string(rg));
  }
}

int attnPersistentBlocksPerSm(int headDim, int warps, bool wgmma) {
  wgmma = attnUnitWgmma(wgmma);
  switch (headDim * 16 + warps) {
    case 64 * 16 + 4: return persistentPerSm<64, 4>(wgmma);
    case 64 * 16 + 8: return persistentPerSm<64, 8>(wgmma);
    case 128 * 16 + 4: return persistentPerSm<128, 4>(wgmma);
    case 128 * 16 + 8: return persistentPerSm<128, 8>(wgmma);
    case 256 * 16 + 4: return persistentPerSm<256, 4>(wgmma);
    case 256 * 16 + 8: return persistentPerSm<256, 8>(wgmma);
    default: throw CudaError("attention: unsupported head dim " + std::to_string(headDim));
  }
}

void launchAttnPersistent(const AttnParams& p, int headDim, int warps, bool wgmma, int gridBlocks, cudaStream_t stream) {
  if (p.numWork == 0) return;
  wgmma = attnUnitWgmma(wgmma);
  const int grid = gridBlocks < p.numWork ? gridBlocks : p.numWork;
  switch (headDim * 16 + warps) {
    case 64 * 16 + 4: launchPersistentD<64, 4>(p, grid, wgmma, stream); break;
    case 64 * 16 + 8: launchPersistentD<64, 8>(p, grid, wgmma, stream); break;
    case 128 * 16 + 4: launchPersistentD<128, 4>(p, grid, wgmma, stream); break;
    case 128 * 16 + 8: launchPersistentD<128, 8>(p, grid, wgmma, stream); break;
    case 256 * 16 + 4: launchPersistentD<256, 4>(p, grid, wgmma, stream); break;
    case 256 * 16 + 8: launchPersistentD<256, 8>(p, grid, wgmma, stream); break;
    default: throw CudaError("attention: unsupported head dim " + std::to_string(headDim));
  }
}

}  // namespace canopy
