// Merge kernel: the online-softmax merge of a query's partial (o, lse) states.
//
// Tile: one warp per (query, query head) of the queries that have zero or several partial
// slots (a query with exactly one is written directly by the attention kernel). Lane l owns the
// VEC = headDim / 32 contiguous output elements [VEC·l, VEC·l + VEC) (one 8- or 16-byte load per
// slot, so a warp reads each partial row as one coalesced 256–1024-byte line).
// Slots are taken 32 at a time: lane j loads slot j's index and lse (independent loads), the warp
// reduces the max and the weights exp(lse − max) with shuffles, then every lane accumulates its
// elements over the batch with the slot index and weight broadcast by shuffle — no dependent
// global load inside the accumulation loop, which is unrolled so several rows are in flight
// (the first version walked the slots one dependent load chain at a time: W3's merge took 13 µs,
// docs/benchmarks/cuda-h100-ncu-w1-w3-w5-2026-11-23.json). The warp's first load is its
// MergeQuery record (query id, slot count and up to 12 slot ids, loaded together with each lane's
// slot id): record → lse → rows is the chain of dependent loads (it was query list → mergeBegin →
// mergeSlots → lse → rows). The host leaves out the slots that can hold no KV token
// (src/prepare.ts). Loading a batch's first rows beside its lse values was tried: 8 rows in flight
// took the kernel from 32 to 80 registers (d128), and at 32 registers eight 256-thread CTAs fill an
// SM, so W5's 1024 merge CTAs would no longer run in one wave.
// Bytes: per (query, head) and slot, headDim·4 + 4 read + 4 (slot id); headDim·4 + 4 written.
// FLOPs: ~2·headDim per slot.
#include "common.cuh"

#include <cmath>

namespace canopy {
CANOPY_TRACE_BUFFER(traceDumpMerge)
namespace {

template <int VEC>
struct Vec;
template <>
struct Vec<2> {
  float v[2];
  __device__ __forceinline__ void load(const float* p) {
    const float2 a = *reinterpret_cast<const float2*>(p);
    v[0] = a.x, v[1] = a.y;
  }
  __device__ __forceinline__ void store(float* p) const { *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]); }
};
template <>
struct Vec<4> {
  float v[4];
  __device__ __forceinline__ void load(const float* p) {
    const float4 a = *reinterpret_cast<const float4*>(p);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
  }
  __device__ __forceinline__ void store(float* p) const {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  }
};
template <>
struct Vec<8> {
  float v[8];
  __device__ __forceinline__ void load(const float* p) {
    const float4 a = *reinterpret_cast<const float4*>(p);
    const float4 b = *reinterpret_cast<const float4*>(p + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  }
  __device__ __forceinline__ void store(float* p) const {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    *reinterpret_cast<float4*>(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
  }
};

template <int D>
// Eight CTAs per SM (32 registers each) so a full chip of merge warps runs in one wave (d256: six).
__global__ void __launch_bounds__(256, D <= 128 ? 8 : 6) mergeKernel(MergeParams p) {
  constexpr int VEC = D / 32;
  CANOPY_TRACE_START(traceT0);
  const int warpId = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
  const int lane = threadIdx.x & 31;
  if (warpId >= p.numMergeQueries * p.numQoHeads) return;
  const MergeQuery* rec = p.queries + warpId / p.numQoHeads;
  // Lane j's inline slot id, loaded beside the record's fields (same 64 bytes, no dependency).
  const int inlineSlot = lane < kMergeInlineSlots ? rec->slots[lane] : 0;
  const int q = rec->query;
  const int count = rec->count;
  const int h = warpId % p.numQoHeads;
  // Running (max, sum of weights, weighted sum) over batches of 32 slots, rescaled as the max grows.
  float M = -INFINITY;
  float L = 0.f;
  float acc[VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) acc[i] = 0.f;
  const float* base = p.partO + VEC * lane;
  for (int j0 = 0; j0 < count; j0 += 32) {
    const int n = min(32, count - j0);
    size_t row = 0;
    float lse = -INFINITY;
    if (lane < n) {
      const int slot = count <= kMergeInlineSlots ? inlineSlot : p.mergeSlots[rec->slotBegin + j0 + lane];
      row = static_cast<size_t>(slot) * p.numQoHeads + h;
      lse = p.partLse[row];
    }
    float bm = lse;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) bm = fmaxf(bm, __shfl_xor_sync(0xffffffffu, bm, off));
    if (bm == -INFINITY) continue;  // only empty states in this batch: they contribute nothing
    const float Mn = fmaxf(M, bm);
    const float scale = __expf(M - Mn);  // 0 when M was -inf (nothing accumulated yet)
    M = Mn;
    const float w = __expf(lse - M);  // an empty state (lse = -inf) gets weight 0
    float ws = w;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) ws += __shfl_xor_sync(0xffffffffu, ws, off);
    L = L * scale + ws;
#pragma unroll
    for (int i = 0; i < VEC; ++i) acc[i] *= scale;
#pragma unroll 4
    for (int j = 0; j < n; ++j) {
      const float wj = __shfl_sync(0xffffffffu, w, j);
      const unsigned long long rj = __shfl_sync(0xffffffffu, static_cast<unsigned long long>(row), j);
      if (wj == 0.f) continue;  // warp-uniform
      Vec<VEC> x;
      x.load(base + rj * D);
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[i] += wj * x.v[i];
    }
  }
  float* dst = p.out + (static_cast<size_t>(q) * p.numQoHeads + h) * D + VEC * lane;
  const float inv = L > 0.f ? 1.f / L : 0.f;
  Vec<VEC> o;
#pragma unroll
  for (int i = 0; i < VEC; ++i) o.v[i] = acc[i] * inv;
  o.store(dst);
  if (lane == 0) {
    p.outLse[static_cast<size_t>(q) * p.numQoHeads + h] = L > 0.f ? M + logf(L) : -INFINITY;
  }
  CANOPY_TRACE_UNIT(6, traceT0, static_cast<int>(blockIdx.x), 0, 0, 0);
}

}  // namespace

void launchMerge(const MergeParams& p, int headDim, cudaStream_t stream) {
  if (p.numMergeQueries == 0) return;
  const long long warps = static_cast<long long>(p.numMergeQueries) * p.numQoHeads;
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>((warps * 32 + threads - 1) / threads);
  switch (headDim) {
    case 64: mergeKernel<64><<<blocks, threads, 0, stream>>>(p); break;
    case 128: mergeKernel<128><<<blocks, threads, 0, stream>>>(p); break;
    case 256: mergeKernel<256><<<blocks, threads, 0, stream>>>(p); break;
    default: throw CudaError("merge: unsupported head dim " + std::to_string(headDim));
  }
  CANOPY_LAUNCHED("mergeKernel launch");
}

}  // namespace canopy
