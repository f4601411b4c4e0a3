// Device helpers shared by the attention kernel families (attention.cu, attention_wgpipe.cu):
// cp.async copies, ldmatrix, mma.sync m16n8k16, wgmma (sm_90a) with shared-memory descriptors, the
// softmax's exp2 and the packing of S accumulators into A fragments. Header-only, internal linkage.
#pragma once
#include <cuda_fp16.h>
#include <cmath>

// Build switch (CANOPY_NVCC_DEFINES): 0 builds the softmax's exp2 as exp2f for comparison. It must
// be defined before fastExp2 below reads it: until this header existed the default was defined
// after its use, so `#if CANOPY_FAST_EXP2` saw an undefined macro and every build used exp2f.
#ifndef CANOPY_FAST_EXP2
#define CANOPY_FAST_EXP2 1
#endif

namespace canopy {
namespace {

__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;  // 0 source bytes → the 16 destination bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cpAsync4(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrixX4(unsigned (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrixX4T(unsigned (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

__device__ __forceinline__ void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                         unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- wgmma (sm_90a) for S = Q·Kᵀ in the 8-warp tiles -------------------------------------
// Only the sm_90a SASS has wgmma; the portable PTX (compute_90) falls back to mma.sync.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CANOPY_HAS_WGMMA 1
#else
#define CANOPY_HAS_WGMMA 0
#endif

#if CANOPY_HAS_WGMMA
// Shared-memory matrix descriptor, no swizzle: operands are stored as 8-row × 16-byte "core
// matrices" (128 contiguous bytes); lbo = byte stride between core matrices along K, sbo = along M/N.
__device__ __forceinline__ unsigned long long smemDesc(const void* p, unsigned lbo, unsigned sbo) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  return static_cast<unsigned long long>((a & 0x3FFFF) >> 4) |
         (static_cast<unsigned long long>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<unsigned long long>((sbo & 0x3FFFF) >> 4) << 32);
}
#endif
__device__ __forceinline__ void fenceProxyAsync() {
#if CANOPY_HAS_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// D[64 × N] (+)= A[64 × 16] · B[16 × N], A and B K-major in shared memory; per thread the
// accumulators come in the m16n8 C-fragment layout of the warp's 16 rows (d[j] = columns 8j..8j+7).
template <int N>
__device__ __forceinline__ void wgmmaSS(float (&d)[N / 8][4], unsigned long long da, unsigned long long db, int accumulate);

#if CANOPY_HAS_WGMMA
template <>
__device__ __forceinline__ void wgmmaSS<32>(float (&d)[4][4], unsigned long long da, unsigned long long db, int acc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3])
      : "l"(da), "l"(db), "r"(acc));
}
template <>
__device__ __forceinline__ void wgmmaSS<64>(float (&d)[8][4], unsigned long long da, unsigned long long db, int acc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,"
      "%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(da), "l"(db), "r"(acc));
}
#define CANOPY_D4(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
// m64n128 S tiles exist only in 128-token-stage builds (-DCANOPY_KT8=128, an experiment).
#if defined(CANOPY_KT8) && CANOPY_KT8 >= 128
template <>
__device__ __forceinline__ void wgmmaSS<128>(float (&d)[16][4], unsigned long long da, unsigned long long db, int acc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,"
      "%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,"
      "%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : CANOPY_D4(0), CANOPY_D4(1), CANOPY_D4(2), CANOPY_D4(3), CANOPY_D4(4), CANOPY_D4(5), CANOPY_D4(6), CANOPY_D4(7),
        CANOPY_D4(8), CANOPY_D4(9), CANOPY_D4(10), CANOPY_D4(11), CANOPY_D4(12), CANOPY_D4(13), CANOPY_D4(14), CANOPY_D4(15)
      : "l"(da), "l"(db), "r"(acc));
}
#endif
// D[64 × N] (+)= A[64 × 16] · B[16 × N] with A from registers (per warp the m16n8k16 A fragment of
// its 16 rows: exactly what packing the S accumulators gives) and B in shared memory MN-major (the
// transpose flag): core matrices of 8 tokens × 8 dims, 16-byte rows along N, as cp.async writes V.
template <int N>
__device__ __forceinline__ void wgmmaRS(float (&d)[N / 8][4], const unsigned (&a)[4], unsigned long long db);
template <>
__device__ __forceinline__ void wgmmaRS<64>(float (&d)[8][4], const unsigned (&a)[4], unsigned long long db) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,"
      "%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, 1, 1, 1, 1;\n"
      : CANOPY_D4(0), CANOPY_D4(1), CANOPY_D4(2), CANOPY_D4(3), CANOPY_D4(4), CANOPY_D4(5), CANOPY_D4(6), CANOPY_D4(7)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
template <>
__device__ __forceinline__ void wgmmaRS<128>(float (&d)[16][4], const unsigned (&a)[4], unsigned long long db) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,"
      "%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,"
      "%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, 1, 1, 1, 1;\n"
      : CANOPY_D4(0), CANOPY_D4(1), CANOPY_D4(2), CANOPY_D4(3), CANOPY_D4(4), CANOPY_D4(5), CANOPY_D4(6), CANOPY_D4(7),
        CANOPY_D4(8), CANOPY_D4(9), CANOPY_D4(10), CANOPY_D4(11), CANOPY_D4(12), CANOPY_D4(13), CANOPY_D4(14), CANOPY_D4(15)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
#undef CANOPY_D4
__device__ __forceinline__ void wgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmmaCommitWait() {
  asm volatile("wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
#endif

// 2^x for the softmax: one MUFU.EX2 (flushing denormal results to 0, far below the tolerance of
// an f32-accumulated fp16 attention) instead of exp2f's extra range-scaling instructions; -inf
// gives +0. CANOPY_FAST_EXP2=0 builds the exp2f version for comparison.
__device__ __forceinline__ float fastExp2(float x) {
#if CANOPY_FAST_EXP2
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
#else
  return exp2f(x);
#endif
}

__device__ __forceinline__ unsigned packHalf2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<unsigned*>(&h);
}

// The A fragment (16 rows × 16 tokens, fp16) of O += P·V for k-step kk: the S accumulators of the
// two n-tiles 2·kk and 2·kk + 1 (their m16n8 C layout is the m16n8k16 A layout, for mma.sync and
// for wgmma with A from registers alike).
template <int SN>
__device__ __forceinline__ void packP(unsigned (&a)[4], const float (&s)[SN][4], int kk) {
  a[0] = packHalf2(s[2 * kk][0], s[2 * kk][1]);
  a[1] = packHalf2(s[2 * kk][2], s[2 * kk][3]);
  a[2] = packHalf2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = packHalf2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}


// One online-softmax step over a warp's S accumulators for one KV stage (m16n8 C layout, SN
// n-tiles of 8 tokens; row A = lane/4 holds elements 0 and 1, row B = lane/4 + 8 elements 2 and
// 3): the rows' maxima over the quad, the new running maxima mA/mB, S overwritten with
// P = 2^(S − m) (scores in the exp2 domain), the running sums lA/lB rescaled and increased, and the
// factors the rows' O must be rescaled by returned in alphaA/alphaB.
// SLACK > 0 (log2 units): a row keeps its running maximum while the stage's maximum exceeds it by
// at most SLACK, so alpha stays exactly 1 and O is not rescaled (P then reaches 2^SLACK at most,
// well inside fp16 and f32; the final O / l and lse use the same maximum, so results are unchanged
// up to rounding). 0: the maximum follows every increase.
template <int SN, int SLACK = 0>
__device__ __forceinline__ void onlineSoftmaxStep(float (&s)[SN][4], float& mA, float& mB, float& lA, float& lB,
                                                  float& alphaA, float& alphaB) {
  float mxA = -INFINITY, mxB = -INFINITY;
#pragma unroll
  for (int n = 0; n < SN; ++n) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      mxA = fmaxf(mxA, s[n][e]);
      mxB = fmaxf(mxB, s[n][2 + e]);
    }
  }
  mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 1));
  mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 2));
  mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 1));
  mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 2));
  float mNewA = fmaxf(mA, mxA);
  float mNewB = fmaxf(mB, mxB);
  if constexpr (SLACK > 0) {
    if (mxA <= mA + float(SLACK)) mNewA = mA;  // false while mA is -inf and the stage has a score
    if (mxB <= mB + float(SLACK)) mNewB = mB;
  }
  // A row with nothing visible yet keeps m = -inf; shift by 0 then so exp2 gives 0, not NaN.
  const float shA = mNewA == -INFINITY ? 0.f : mNewA;
  const float shB = mNewB == -INFINITY ? 0.f : mNewB;
  alphaA = fastExp2(mA - shA);
  alphaB = fastExp2(mB - shB);
  mA = mNewA;
  mB = mNewB;
  float sumA = 0.f, sumB = 0.f;
#pragma unroll
  for (int n = 0; n < SN; ++n) {
    s[n][0] = fastExp2(s[n][0] - shA);
    s[n][1] = fastExp2(s[n][1] - shA);
    s[n][2] = fastExp2(s[n][2] - shB);
    s[n][3] = fastExp2(s[n][3] - shB);
    sumA += s[n][0] + s[n][1];
    sumB += s[n][2] + s[n][3];
  }
  lA = lA * alphaA + sumA;
  lB = lB * alphaB + sumB;
}

// O of rows A and B (m16n8 C layout, DN n-tiles) times the online-softmax step's factors. Once the
// running maxima settle, alpha is exactly 1 for the whole warp: the multiplies are skipped then.
template <int DN>
__device__ __forceinline__ void rescaleRows(float (&o)[DN][4], float alphaA, float alphaB) {
  if (!__all_sync(0xffffffffu, alphaA == 1.f && alphaB == 1.f)) {
#pragma unroll
    for (int dn = 0; dn < DN; ++dn) {
      o[dn][0] *= alphaA;
      o[dn][1] *= alphaA;
      o[dn][2] *= alphaB;
      o[dn][3] *= alphaB;
    }
  }
}

// The unit prologue's global reads: the unit's rows' query vectors (f32 [query, head, D]), handed
// to `store(r, c, value)` pre-scaled by `scale` (row r, dims c..c+3), and every row's KV limit
// into sLim. Row → query id → values is two dependent global loads (one when the unit's queries
// are consecutive ids, WorkUnit::qFirst: the id is then computed); here a batch's index loads go
// out together, then its value loads (and the limits' second load), so the prologue costs about
// two memory latencies instead of two per row: ncu on W5's 128-row units put the old loop's
// load-use waits at 6% of the pipelined tile's stall samples and the whole prologue at 17%
// (docs/benchmarks/cuda-h100-wgpipe-2026-11-23.json, call 4). Needs R ≤ THREADS. MAX_BATCH: values
// per thread in flight at once (kernels under a register cap take fewer).
template <int R, int D, int THREADS, int MAX_BATCH, class Params, class Store>
__device__ __forceinline__ void gatherUnitRows(const Params& p, int tid, int rowBase, int numRows, int qBegin,
                                               int qFirst, int kvHead, int pos0, int ntok, float scale, int* sLim,
                                               Store store) {
  constexpr int PER = R * (D / 4) / THREADS;  // float4 values per thread
  constexpr int BATCH = PER < MAX_BATCH ? PER : MAX_BATCH;  // 4·BATCH registers of values in flight
  static_assert(PER * THREADS == R * (D / 4) && PER % BATCH == 0, "whole float4s per thread");
  static_assert(R <= THREADS, "one row limit per thread");
  const int G = p.group;
  // Query id of the unit's local query x: no load when the item's queries are consecutive ids.
  auto queryOf = [&](int x) { return qFirst >= 0 ? qFirst + x : p.itemQueries[qBegin + x]; };
  const int limQid = tid < R && rowBase + tid < numRows ? queryOf((rowBase + tid) / G) : -1;
  int limRaw = 0;
#pragma unroll 1
  for (int b = 0; b < PER; b += BATCH) {
    int qid[BATCH];
#pragma unroll
    for (int k = 0; k < BATCH; ++k) {
      const int gr = rowBase + (tid + (b + k) * THREADS) / (D / 4);
      qid[k] = gr < numRows ? queryOf(gr / G) : -1;
    }
    if (b == 0 && limQid >= 0) limRaw = p.queryKvLimit[limQid];
    float4 val[BATCH];
#pragma unroll
    for (int k = 0; k < BATCH; ++k) {
      const int i = tid + (b + k) * THREADS;
      const int gr = rowBase + i / (D / 4);
      val[k] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (qid[k] >= 0) {
        const int hq = kvHead * G + gr % G;
        val[k] = *reinterpret_cast<const float4*>(p.q + (static_cast<size_t>(qid[k]) * p.numQoHeads + hq) * D + (i % (D / 4)) * 4);
      }
    }
#pragma unroll
    for (int k = 0; k < BATCH; ++k) {
      const int i = tid + (b + k) * THREADS;
      store(i / (D / 4), (i % (D / 4)) * 4,
            make_float4(val[k].x * scale, val[k].y * scale, val[k].z * scale, val[k].w * scale));
    }
  }
  if (tid < R) sLim[tid] = limQid >= 0 ? min(max(limRaw - pos0, 0), ntok) : 0;
}

// Largest KV limit over a unit's rows, and the smallest over its real rows (those before
// realRows), read from sLim after a barrier by every thread. (A warp-shuffle reduction here made
// ptxas serialise the pipelined tile's wgmmas, its C7520 note: the arrive it inserts before the
// wgmmas ended up on a path it could not prove warp-uniform.)
template <int R>
__device__ __forceinline__ void unitLimits(const int* sLim, int realRows, int ntok, int& maxLim, int& minLim) {
  maxLim = 0;
  minLim = ntok;
  for (int r = 0; r < R; ++r) {
    maxLim = max(maxLim, sLim[r]);
    if (r < realRows) minLim = min(minLim, sLim[r]);
  }
}

}  // namespace
}  // namespace canopy
