// Standalone check of wgmma.m64n128k16 with A (P) from registers and B (V) in shared memory stored
// MN-major (token rows of 8 contiguous dims: the layout cp.async writes), no swizzle. Tries both
// assignments of the descriptor's two byte offsets and reports which one matches a CPU product.
// Build: nvcc -gencode=arch=compute_90a,code=sm_90a -o wgmma-check wgmma-check.cu
#include <cuda_fp16.h>
#include <cstdio>
#include <cstdlib>
#include <cmath>

__device__ __forceinline__ unsigned long long desc(const void* p, unsigned lbo, unsigned sbo) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  return static_cast<unsigned long long>((a & 0x3FFFF) >> 4) |
         (static_cast<unsigned long long>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<unsigned long long>((sbo & 0x3FFFF) >> 4) << 32);
}

#define R8(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
__device__ __forceinline__ void wgmmaRS128(float (&d)[16][4], const unsigned (&a)[4], unsigned long long db) {
  asm volatile(
      "{\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63},"
      " {%64,%65,%66,%67}, %68, 1, 1, 1, 1;\n"
      "}\n"
      : R8(0), R8(1), R8(2), R8(3), R8(4), R8(5), R8(6), R8(7), R8(8), R8(9), R8(10), R8(11), R8(12), R8(13), R8(14), R8(15)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}

__global__ void k(const __half* A, const __half* V, float* out, int swap) {
  __shared__ __align__(128) __half sV[16 * 128];
  const int tid = threadIdx.x;
  // V[t][d] (16 tokens × 128 dims) → core matrix (t/8, d/8) at ((t/8)·16 + d/8)·64 halves, row t%8
  for (int i = tid; i < 16 * 16; i += 128) {
    const int t = i / 16, c = (i % 16) * 8;
    for (int e = 0; e < 8; ++e) sV[((t / 8) * 16 + c / 8) * 64 + (t % 8) * 8 + e] = V[t * 128 + c + e];
  }
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();
  const int warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  auto h2 = [&](int r, int c) {
    __half2 v = __halves2half2(A[r * 16 + c], A[r * 16 + c + 1]);
    return *reinterpret_cast<unsigned*>(&v);
  };
  const int r0 = warp * 16 + g;
  unsigned a[4] = {h2(r0, 2 * t), h2(r0 + 8, 2 * t), h2(r0, 2 * t + 8), h2(r0 + 8, 2 * t + 8)};
  float d[16][4];
  for (int j = 0; j < 16; ++j) d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0.f;
  const unsigned kStride = 16 * 128, nStride = 128;  // bytes between core matrices along K, along N
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
  wgmmaRS128(d, a, swap ? desc(sV, nStride, kStride) : desc(sV, kStride, nStride));
  asm volatile("wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  for (int j = 0; j < 16; ++j) {
    out[r0 * 128 + 8 * j + 2 * t] = d[j][0];
    out[r0 * 128 + 8 * j + 2 * t + 1] = d[j][1];
    out[(r0 + 8) * 128 + 8 * j + 2 * t] = d[j][2];
    out[(r0 + 8) * 128 + 8 * j + 2 * t + 1] = d[j][3];
  }
}

int main() {
  __half hA[64 * 16], hV[16 * 128];
  float fA[64 * 16], fV[16 * 128];
  srand(7);
  for (int i = 0; i < 64 * 16; ++i) { fA[i] = (rand() % 17 - 8) / 8.f; hA[i] = __float2half(fA[i]); }
  for (int i = 0; i < 16 * 128; ++i) { fV[i] = (rand() % 17 - 8) / 8.f; hV[i] = __float2half(fV[i]); }
  __half *dA, *dV; float* dO;
  cudaMalloc(&dA, sizeof hA); cudaMalloc(&dV, sizeof hV); cudaMalloc(&dO, 64 * 128 * 4);
  cudaMemcpy(dA, hA, sizeof hA, cudaMemcpyHostToDevice);
  cudaMemcpy(dV, hV, sizeof hV, cudaMemcpyHostToDevice);
  int good = -1;
  for (int swap = 0; swap < 2; ++swap) {
    cudaMemset(dO, 0, 64 * 128 * 4);
    k<<<1, 128>>>(dA, dV, dO, swap);
    cudaError_t e = cudaDeviceSynchronize();
    static float o[64 * 128];
    cudaMemcpy(o, dO, sizeof o, cudaMemcpyDeviceToHost);
    double maxErr = 0;
    for (int r = 0; r < 64; ++r)
      for (int c = 0; c < 128; ++c) {
        double s = 0;
        for (int kk = 0; kk < 16; ++kk) s += fA[r * 16 + kk] * fV[kk * 128 + c];
        maxErr = fmax(maxErr, fabs(s - o[r * 128 + c]));
      }
    printf("wgmma RS m64n128k16, V MN-major, %s: cuda=%s maxErr=%g\n", swap ? "LBO=N-stride SBO=K-stride" : "LBO=K-stride SBO=N-stride",
           cudaGetErrorString(e), maxErr);
    if (e == cudaSuccess && maxErr < 1e-3 && good < 0) good = swap;
  }
  printf("RESULT %s\n", good < 0 ? "neither" : good == 0 ? "lbo=k" : "lbo=n");
  return good < 0;
}
