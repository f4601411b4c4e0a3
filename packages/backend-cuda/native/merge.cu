// Merge kernel: the online-softmax merge of a query's partial (o, lse) states.
//
// Tile: one warp per (query, query head) of the queries that have zero or several partial
// slots (a query with exactly one is written directly by the attention kernel). Lane l owns the
// output elements d = l, l + 32, … (headDim / 32 of them) and accumulates them in f32 over the
// query's slots: pass 1 finds max lse, pass 2 sums exp(lse - max)·o.
// Bytes: per (query, head) and slot, headDim·4 + 4 read; headDim·4 + 4 written. FLOPs: ~2·headDim per slot.
#include "common.cuh"

#include <cmath>

namespace canopy {
namespace {

template <int D>
__global__ void __launch_bounds__(256) mergeKernel(MergeParams p) {
  constexpr int PER = D / 32;
  const int warpId = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
  const int lane = threadIdx.x & 31;
  if (warpId >= p.numMergeQueries * p.numQoHeads) return;
  const int q = p.queries[warpId / p.numQoHeads];
  const int h = warpId % p.numQoHeads;
  const int b = p.mergeBegin[q];
  const int e = p.mergeBegin[q + 1];
  float M = -INFINITY;
  for (int j = b + lane; j < e; j += 32) {
    M = fmaxf(M, p.partLse[static_cast<size_t>(p.mergeSlots[j]) * p.numQoHeads + h]);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
  float acc[PER];
#pragma unroll
  for (int i = 0; i < PER; ++i) acc[i] = 0.f;
  float L = 0.f;
  if (M != -INFINITY) {
    for (int j = b; j < e; ++j) {
      const size_t row = static_cast<size_t>(p.mergeSlots[j]) * p.numQoHeads + h;
      const float lse = p.partLse[row];
      if (lse == -INFINITY) continue;  // an empty state contributes nothing
      const float wgt = __expf(lse - M);
      L += wgt;
      const float* src = p.partO + row * D;
#pragma unroll
      for (int i = 0; i < PER; ++i) acc[i] += wgt * src[lane + 32 * i];
    }
  }
  float* dst = p.out + (static_cast<size_t>(q) * p.numQoHeads + h) * D;
  const float inv = L > 0.f ? 1.f / L : 0.f;
#pragma unroll
  for (int i = 0; i < PER; ++i) dst[lane + 32 * i] = acc[i] * inv;
  if (lane == 0) {
    p.outLse[static_cast<size_t>(q) * p.numQoHeads + h] = L > 0.f ? M + logf(L) : -INFINITY;
  }
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
