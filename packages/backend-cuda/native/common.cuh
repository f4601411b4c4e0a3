// Shared declarations of the Canopy CUDA addon: the kernel parameter blocks and the host-side
// launchers implemented in the .cu files (one kernel family per file).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <stdexcept>
#include <string>

// CANOPY_TRACE: see the trace buffer below (a diagnostic build; 0 in every normal one).
#ifndef CANOPY_TRACE
#define CANOPY_TRACE 0
#endif
#if CANOPY_TRACE
#include <cstddef>
#include <cstdio>
#include <vector>
#endif

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

// CANOPY_TRACE=1 (a diagnostic build, CANOPY_NVCC_DEFINES): thread 0 of every CTA records one
// entry per work unit it ran (kind, %smid, %globaltimer at start and end, item, KV head, row block,
// rg, and the unit's prologue-end and loop-end marks where it sets them) in a device buffer of its
// translation unit; after each run() the host prints them as "CTRACE kind smid startNs endNs item
// kvHead rowBlock rg tA tB" lines (kind: 0 tile kernel, 1 short 16-row tile, 2 persistent grid,
// 3 tiny 16-row tile, 5 pipelined wgmma tile, 6 merge CTA), so a run's CTAs can be laid out per
// SM over time (scripts/device/trace-summary.mjs). An entry costs three global stores and one atomic per unit
// (printf from the kernels slowed W1 20×). Off in every normal build: nothing is compiled in.
// Marks a unit's code sets for the trace (thread 0's values are recorded).
struct TraceMarks {
  unsigned long long a = 0, b = 0;
};
#if CANOPY_TRACE
constexpr int kTraceCap = 1 << 16;  // entries per translation unit and run
struct TraceBuf {
  unsigned count;
  ulonglong2 e[kTraceCap][3];  // {t0, t1}, {kind << 56 | smid << 32 | item, kvHead << 40 | rowBlock << 8 | rg}, {tA, tB}
};
#ifdef __CUDACC__
__device__ __forceinline__ unsigned long long traceNowNs() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}
// tA, tB: optional marks inside the unit (0 when the kernel sets none): the prologue's end (Q
// gathered, first copies issued) and the main loop's end.
__device__ __forceinline__ void traceRecord(TraceBuf& buf, int kind, unsigned long long t0, int item, int head, int rowBlock, int rg,
                                            unsigned long long tA, unsigned long long tB) {
  unsigned sm;
  asm volatile("mov.u32 %0, %%smid;\n" : "=r"(sm));
  const unsigned long long t1 = traceNowNs();
  const unsigned i = atomicAdd(&buf.count, 1u);
  if (i >= kTraceCap) return;
  buf.e[i][0] = make_ulonglong2(t0, t1);
  buf.e[i][1] = make_ulonglong2((static_cast<unsigned long long>(kind) << 56) | (static_cast<unsigned long long>(sm) << 32) | static_cast<unsigned>(item),
                                (static_cast<unsigned long long>(head) << 40) | (static_cast<unsigned long long>(rowBlock) << 8) | static_cast<unsigned>(rg));
  buf.e[i][2] = make_ulonglong2(tA, tB);
}
#endif
// One buffer per translation unit (no relocatable device code) and its host-side dump.
#define CANOPY_TRACE_BUFFER(dumpName)                                                                       \
  static __device__ ::canopy::TraceBuf gTrace;                                                                     \
  void dumpName() {                                                                                         \
    unsigned n = 0;                                                                                         \
    CANOPY_CUDA(cudaMemcpyFromSymbol(&n, gTrace, sizeof n, 0));                                             \
    n = n < ::canopy::kTraceCap ? n : ::canopy::kTraceCap;                                                  \
    std::vector<ulonglong2> e(size_t(n) * 3);                                                               \
    if (n) CANOPY_CUDA(cudaMemcpyFromSymbol(e.data(), gTrace, e.size() * sizeof(ulonglong2), offsetof(::canopy::TraceBuf, e))); \
    for (unsigned i = 0; i < n; ++i) {                                                                      \
      const ulonglong2 t = e[3 * i], m = e[3 * i + 1], ab = e[3 * i + 2];                                   \
      std::printf("CTRACE %d %d %llu %llu %d %d %d %d %llu %llu\n", int(m.x >> 56), int((m.x >> 32) & 0xffffff), t.x, \
                  t.y, int(unsigned(m.x)), int(m.y >> 40), int((m.y >> 8) & 0xffffffff), int(m.y & 0xff), ab.x, ab.y); \
    }                                                                                                       \
    std::fflush(stdout);                                                                                    \
    const unsigned zero = 0;                                                                                \
    CANOPY_CUDA(cudaMemcpyToSymbol(gTrace, &zero, sizeof zero, 0));                                         \
  }
#define CANOPY_TRACE_START(var) const unsigned long long var = ::canopy::traceNowNs()
#define CANOPY_TRACE_UNIT(kind, t0, item, head, rowBlock, rg) CANOPY_TRACE_UNIT_AB(kind, t0, item, head, rowBlock, rg, 0ull, 0ull)
#define CANOPY_TRACE_UNIT_AB(kind, t0, item, head, rowBlock, rg, tA, tB)                            \
  do {                                                                                              \
    if (threadIdx.x == 0) traceRecord(gTrace, (kind), (t0), (item), (head), (rowBlock), (rg), (tA), (tB)); \
  } while (0)
// Marks inside a unit: thread 0's %globaltimer into a variable the unit hands to its caller.
#define CANOPY_TRACE_MARK(var) var = ::canopy::traceNowNs()
void traceDumpAttention();
void traceDumpPipe();
void traceDumpMerge();
#else
#define CANOPY_TRACE_BUFFER(dumpName)
#define CANOPY_TRACE_START(var)
#define CANOPY_TRACE_UNIT(kind, t0, item, head, rowBlock, rg)
#define CANOPY_TRACE_UNIT_AB(kind, t0, item, head, rowBlock, rg, tA, tB)
#define CANOPY_TRACE_MARK(var)
#endif

// One work unit of the attention kernels: (item, KV head, block of tile rows). `rg` is the
// number of 16-row groups of the tile kernel that runs it (1, 2, 4 or 8 → 16, 32, 64, 128 rows).
// The rest is the unit's item, copied in by the host (PlanState::expandWork in addon.cpp) so the
// record the CTA loads first already holds what its prologue needs: reading the item's ranges
// from the per-item arrays was one more dependent global load (a full memory latency, 1–2 µs on
// a loaded H100) before the Q gather and the first page-table rows, and another before the
// epilogue's writes (the partial base). `qFirst` is the item's first query id when its queries
// are consecutive ids (then row r's query is qFirst + r / group with no load), else -1.
struct alignas(16) WorkUnit {
  int item;
  int kvHead;
  int rowBlock;
  int rg;
  int tokBegin;     // the item's first entry of tokRow
  int ntok;         // its KV tokens
  int qBegin;       // its first entry of itemQueries
  int nq;           // its queries
  int pos0;         // absolute position of its first KV token
  int partialBase;  // its first partial slot
  int qFirst;       // first query id if consecutive, else -1
  int pad;
};
static_assert(sizeof(WorkUnit) == 48, "three 16-byte loads");
constexpr int kWorkUnitInts = 12;   // int32s per WorkUnit
constexpr int kPlanWorkUnitInts = 4;  // int32s per unit in the host's work lists (item, kvHead, rowBlock, rg)

// Everything the partial-attention kernels read and write. All pointers are device pointers.
struct AttnParams {
  const __half* k;  // [numPages * pageSize, numKvHeads, headDim]
  const __half* v;
  const float* q;   // [numQueries, numQoHeads, headDim]
  int numKvHeads;
  int numQoHeads;
  int group;         // numQoHeads / numKvHeads
  float scaleLog2;   // softmax scale * log2(e): scores are kept in the exp2 domain
  const int* tokRow;         // page * pageSize + slot of each item token, in item order (WorkUnit::tokBegin)
  const int* itemQueries;    // the items' query ids, item by item (WorkUnit::qBegin)
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

// One query to merge, as one 64-byte record: its id, its number of partial slots, and the slots
// themselves when there are at most kMergeInlineSlots (else they are mergeSlots[slotBegin ..]).
// A merge lane loads its slot id from the record at the same time as the warp loads the record,
// so record → (lse, rows) is the whole chain of dependent loads (it was query list → mergeBegin
// → mergeSlots → lse → rows).
constexpr int kMergeInlineSlots = 12;
struct alignas(64) MergeQuery {
  int query;
  int count;
  int slotBegin;
  int pad;
  int slots[kMergeInlineSlots];
};
static_assert(sizeof(MergeQuery) == 64, "one 64-byte record per merged query");
constexpr int kMergeQueryInts = 16;
struct MergeParams {
  const float* partO;
  const float* partLse;
  const int* mergeSlots;
  const MergeQuery* queries;  // the queries to merge (those without a direct write)
  int numMergeQueries;
  int numQoHeads;
  float* out;
  float* outLse;
};

// attention.cu
// Launch the tile kernel for `rg` over params.work[0 .. params.numWork).
// `wgmma`: the 128-row units run on the pipelined wgmma tile where the GPU has it (attention_wgpipe.cu).
// `rg1Tile`: which 16-row tile runs the rg-1 units of this launch (the host decides per plan,
// src/prepare.ts: every unit short, SHORT_UNIT_TOKENS, or tiny, TINY_UNIT_TOKENS).
enum Rg1Tile : int {
  kRg1Default = 0,  // the 16-row tile kernel (3 stages, two CTAs per SM)
  kRg1Short = 1,    // the three-CTAs-per-SM tile
  kRg1Tiny = 2,     // the 2-warp, five-CTAs-per-SM tile (the short one where a head dim has none)
};
void launchAttnTiles(const AttnParams& p, int headDim, int rg, bool wgmma, Rg1Tile rg1Tile, cudaStream_t stream);
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
