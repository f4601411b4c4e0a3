// Device ceilings for the roofline: a streaming-read kernel (HBM read bandwidth) and an
// mma.sync m16n8k16 throughput kernel (fp16 in, f32 accumulate: the unit the attention kernels use).
//
// Read kernel: grid-stride over the buffer, each thread loads 4 independent 16-byte vectors per
// step (coalesced across the warp) and folds them into a sum written once per thread, so the
// loads cannot be dropped. Bytes: the buffer once per launch.
// MMA kernel: every warp issues 8 independent m16n8k16 MMAs per iteration on register operands
// (no memory traffic); FLOPs = 2·16·8·16 per MMA.
#include "common.cuh"

#include <algorithm>
#include <vector>

namespace canopy {
namespace {

__global__ void __launch_bounds__(512) readKernel(const float4* __restrict__ src, size_t n4, float* sink) {
  float acc = 0.f;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n4; i += 4 * stride) {
    const float4 a = __ldcs(src + i);
    const float4 b = __ldcs(src + i + stride);
    const float4 c = __ldcs(src + i + 2 * stride);
    const float4 d = __ldcs(src + i + 3 * stride);
    acc += (a.x + b.y) + (c.z + d.w);
  }
  for (; i < n4; i += stride) acc += __ldcs(src + i).x;
  sink[static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x] = acc;
}

__global__ void mmaKernel(int iters, float* sink) {
  unsigned a[4] = {threadIdx.x, threadIdx.x * 3u, threadIdx.x * 5u, threadIdx.x * 7u};
  for (int i = 0; i < 4; ++i) a[i] = (a[i] & 0x03ff03ffu) | 0x30003000u;  // small finite halves
  const unsigned b0 = a[0] ^ 0x00010001u, b1 = a[1] ^ 0x00010001u;
  float c[8][4] = {};
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
          "{%8,%9}, {%0,%1,%2,%3};\n"
          : "+f"(c[k][0]), "+f"(c[k][1]), "+f"(c[k][2]), "+f"(c[k][3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
  }
  float s = 0.f;
  for (int k = 0; k < 8; ++k) s += c[k][0] + c[k][1] + c[k][2] + c[k][3];
  sink[static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x] = s;
}

template <typename F>
double medianMs(F launch, int reps) {
  cudaEvent_t e0, e1;
  CANOPY_CUDA(cudaEventCreate(&e0));
  CANOPY_CUDA(cudaEventCreate(&e1));
  std::vector<float> ms;
  launch();  // warm-up
  CANOPY_CUDA(cudaDeviceSynchronize());
  for (int r = 0; r < reps; ++r) {
    CANOPY_CUDA(cudaEventRecord(e0));
    launch();
    CANOPY_CUDA(cudaEventRecord(e1));
    CANOPY_CUDA(cudaEventSynchronize(e1));
    float t = 0.f;
    CANOPY_CUDA(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

double probeReadBandwidth(size_t bytes, int smCount) {
  const size_t n4 = bytes / 16;
  float4* buf = nullptr;
  float* sink = nullptr;
  const int threads = 512, blocks = smCount * 4;
  CANOPY_CUDA(cudaMalloc(&buf, n4 * 16));
  try {
    CANOPY_CUDA(cudaMalloc(&sink, sizeof(float) * threads * blocks));
    CANOPY_CUDA(cudaMemset(buf, 0x3c, n4 * 16));  // finite, non-zero halves/floats
    const double ms = medianMs(
        [&] {
          readKernel<<<blocks, threads>>>(buf, n4, sink);
          CANOPY_LAUNCHED("readKernel launch");
        },
        7);
    cudaFree(sink);
    cudaFree(buf);
    return static_cast<double>(n4 * 16) / (ms * 1e-3) / 1e9;
  } catch (...) {
    cudaFree(sink);
    cudaFree(buf);
    throw;
  }
}

double probeMmaTflops(int smCount) {
  float* sink = nullptr;
  const int threads = 256, blocks = smCount * 4, iters = 4096;
  CANOPY_CUDA(cudaMalloc(&sink, sizeof(float) * threads * blocks));
  try {
    const double ms = medianMs(
        [&] {
          mmaKernel<<<blocks, threads>>>(iters, sink);
          CANOPY_LAUNCHED("mmaKernel launch");
        },
        5);
    cudaFree(sink);
    const double flops = double(blocks) * (threads / 32) * iters * 8 * (2.0 * 16 * 8 * 16);
    return flops / (ms * 1e-3) / 1e12;
  } catch (...) {
    cudaFree(sink);
    throw;
  }
}

}  // namespace canopy
