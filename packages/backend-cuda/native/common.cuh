// Shared declarations of the Canopy CUDA addon: the kernel parameter blocks and the host-side
// launchers implemented in the .cu files (one kernel family per file).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace canopy {

// Every CUDA call goes through this: a failure becomes a C++ exception carrying CUDA's own error
// text, which the addon turns into a JS Error.
struct CudaError : std::runtime_error {
  explicit CudaError(const std::string& what) : std::runtime_error(what) {}
};

inline void check(cudaError_t err, const char* what, const char* file, int line) {
  if (err != cudaSuccess) {
    throw CudaError(std::string(what) + " failed: " + cudaGetErrorName(err) + ": " +
                    cudaGetErrorString(err) + " (" + file + ":" + std::to_string(line) + ")");
  }
}

#define CANOPY_CUDA(call) ::canopy::check((call), #call, __FILE__, __LINE__)
// After a launch: configuration errors show up in cudaGetLastError.
#define CANOPY_LAUNCHED(name) ::canopy::check(cudaGetLastError(), name, __FILE__, __LINE__)

// One work unit of the attention kernels: (item, KV head, block of tile rows). `rg` is the
// number of 16-row groups of the tile kernel that runs it (1, 2, 4 or 8 → 16, 32, 64, 128 rows).
struct WorkUnit {
  int item;
  int kvHead;
  int rowBlock;
  int rg;
};

// Everything the partial-attention kernels read and write. All pointers are device pointers.
struct AttnParams {
  const __half* k;  // [numPages * pageSize, numKvHeads, headDim]
  const __half* v;
  const float* q;   // [numQueries, numQoHeads, headDim]
  int numKvHeads;
  int numQoHeads;
  int group;         // numQoHeads / numKvHeads
  float scaleLog2;   // softmax scale * log2(e): scores are kept in the exp2 domain
  const int* itemTokBegin;   // [numItems + 1] offsets into tokRow
  const int* tokRow;         // page * pageSize + slot of each item token, in item order
  const int* itemPos;        // absolute position of each item's first token
  const int* itemQueryBegin; // [numItems + 1]
  const int* itemQueries;
  const int* itemPartialBase;
  const int* queryKvLimit;
  const int* slotDest;  // per partial slot: the query it is the only partial of, else -1
  float* partO;         // [numPartials, numQoHeads, headDim]
  float* partLse;       // [numPartials, numQoHeads] (natural log)
  float* out;           // [numQueries, numQoHeads, headDim]
  float* outLse;        // [numQueries, numQoHeads]
  const WorkUnit* work;
  int numWork;
  int* counter;  // persistent kernel's work counter (zeroed before each launch)
};

// The fused strategy's two work lists and counters (see attnFusedKernel in attention.cu).
constexpr int kFusedSmSlots = 1024;  // per-SM arrival counters, indexed by %smid mod this
struct FusedParams {
  const WorkUnit* work8;  // compute list: 8-warp units (rg 4/8), longest first
  int n8;
  const WorkUnit* work4;  // memory list: 4-warp units (rg 1/2), longest first
  int n4;
  // [0] compute-list counter, [1] memory-list counter, [2]/[3] role tickets of per-SM slot 0/1,
  // [4, 4 + kFusedSmSlots) per-SM arrival counters; zeroed before each launch.
  int* counters;
  int computeQuota0;  // CTAs of per-SM slot 0 that start in the compute role
  int computeQuota1;  // … of slot 1
};

struct MergeParams {
  const float* partO;
  const float* partLse;
  const int* mergeBegin;   // [numQueries + 1]
  const int* mergeSlots;
  const int* queries;      // the queries to merge (those without a direct write)
  int numMergeQueries;
  int numQoHeads;
  float* out;
  float* outLse;
};

// attention.cu
// Launch the tile kernel for `rg` over params.work[0 .. params.numWork).
// `wgmma`: the 128-row units run on the pipelined wgmma tile where the GPU has it (attention_wgpipe.cu).
// `shortUnits`: every unit of this launch is short (SHORT_UNIT_TOKENS in src/prepare.ts);
// rg 1 then runs on the three-CTAs-per-SM 16-row tile.
void launchAttnTiles(const AttnParams& p, int headDim, int rg, bool wgmma, bool shortUnits, cudaStream_t stream);
// Launch the persistent kernel with `warps` warps per CTA (4: runs rg 1 and 2; 8: rg 4 and 8)
// on `gridBlocks` CTAs (capped at the number of work units).
void launchAttnPersistent(const AttnParams& p, int headDim, int warps, bool wgmma, int gridBlocks,
                          cudaStream_t stream);
// Warps per CTA of the tile kernel for (head dim, rg).
int attnWarpsFor(int headDim, int rg);
// CTAs of that persistent kernel (its wgmma variant when `wgmma`) that fit on one SM.
int attnPersistentBlocksPerSm(int headDim, int warps, bool wgmma);
// Fused strategy: one grid of 8-warp CTAs with per-SM compute/memory roles (head dims 64, 128).
bool attnFusedSupported(int headDim);
int attnFusedBlocksPerSm(int headDim);
void launchAttnFused(const AttnParams& p, const FusedParams& f, int headDim, int gridBlocks, cudaStream_t stream);
// Raise the dynamic shared memory limits of every attention kernel (once per device).
void attnInit();

// attention_wgpipe.cu: the pipelined wgmma tile for 128-row units (head dims 64, 128; sm_90a SASS,
// so compute capability 9.0 only). launchAttnTiles uses it for rg 8 when wgmma is asked for.
bool attnPipeSupported(int headDim);
void launchAttnPipe(const AttnParams& p, int headDim, cudaStream_t stream);
void attnPipeInit();

// merge.cu
void launchMerge(const MergeParams& p, int headDim, cudaStream_t stream);

// probe.cu
// Streaming read of `bytes` bytes; returns GB/s measured with events (median of a few runs).
double probeReadBandwidth(size_t bytes, int smCount);
// mma.sync m16n8k16 (fp16 in, f32 accumulate) throughput in TFLOP/s.
double probeMmaTflops(int smCount);

}  // namespace canopy
