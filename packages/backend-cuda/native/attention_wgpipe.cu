// Pipelined wgmma tile (FlashAttention-3's producer warpgroup, ping-pong and intra-warpgroup
// overlap): partial attention over one 128-row work unit on Hopper (sm_90a).
//
// Tile: R = 128 rows × KT = 64 KV tokens per stage, head dim D ∈ {64, 128}. CTA: 384 threads =
// two consumer warpgroups + one producer warpgroup; consumer warpgroup g owns rows 64g .. 64g + 63
// for every token of the unit (no KV split inside the CTA, so no end-of-unit combine), warp i of a
// group the wgmma accumulator rows 16i .. 16i + 15. One CTA per SM; setmaxnreg gives the consumers
// 224 registers and the producer 56. STAGES = 5 KV stages (D 128: 32 KB Q + 5 × 32 KB K/V = 192 KB
// of shared memory), each with a "full" and an "empty" mbarrier.
// Producer (128 threads): streams each tile's K/V pages with cp.async (16-byte chunks, zero-filled
// past the end) into its stage slot once the consumers freed it (empty barrier), and signals the
// slot's full barrier when its copies land (cp.async.mbarrier.arrive.noinc); page-table rows are
// loaded one tile ahead. It never waits on a CTA-wide barrier in the loop.
// Per consumer thread: Q of its warp's 16 rows as wgmma A fragments (D/4 registers, for the whole
// unit), O of rows lane/4 and lane/4 + 8 (m16n8 C layout, D/2 floats), S of the stage in flight
// (32 floats), P of two stages packed to fp16 (2 × 16 registers: the loop is unrolled by two so
// they swap roles without copies), the running max and sum of its two rows (exp2 domain, scores
// pre-scaled by scale·log2 e).
//
// Schedule, per consumer warpgroup: at stage j it waits for tile j's full barrier, issues
// S_j = Q·K_jᵀ (m64n64k16 × D/16, Q from registers, K from shared memory) and O += P_{j-1}·V_{j-1}
// (m64nDk16 × 4, P from registers) as two wgmma groups, waits for S_j only, runs the masked online
// softmax of S_j while the P·V group still occupies the tensor cores, then waits for P·V, frees
// tile j - 1's slot (one empty-barrier arrival per warp) and rescales O by the new maximum.
// Ping-pong: the two warpgroups take turns issuing a stage's wgmmas (named barriers 1 and 2), so
// one runs its softmax while the other's products run (the turns stay in step over the unit).
// Q (for its ldmatrix into registers), K and V sit in shared memory as 128-byte swizzled rows (see
// swizzledHalf): K is read as a K-major wgmma operand, V as an MN-major one.
// Measured on the H100 against the earlier form of this tile (both warpgroups copying and meeting at
// __syncthreads every stage), same call: W5 235 → 198 µs, H1 1293 → 1030, H2 1547 → 1364, S1 257 →
// 238 (docs/benchmarks/cuda-h100-wspipe-2026-11-24.json).
//
// Bytes per unit: ntok·D·2·2 (K, V fp16) + R·D·4 (Q f32) read, R·(D + 1)·4 written.
// FLOPs: 4·R·ntok·D (rows past the unit's own are zero padding, never written).
#include "common.cuh"
#include "mma.cuh"

#include <cmath>

namespace canopy {
CANOPY_TRACE_BUFFER(traceDumpPipe)
namespace {

// Build switches (CANOPY_NVCC_DEFINES), for same-call A/B runs on the H100:
// CANOPY_PIPE_PINGPONG 1 (default): the consumer warpgroups' turns; 0 lets them issue freely
// (W5 201 vs 198 µs, H1 prefill 979–1031 vs 931–997, same calls).
// CANOPY_PIPE_STAGES (default 5): 6 fits D 128 too (227 KB) and measured the same.
// CANOPY_PIPE_RESCALE_SLACK (default 8; 0 = off): a row keeps its running maximum until a stage's
// maximum exceeds it by more than 8 (log2 units), so O is rarely rescaled (onlineSoftmaxStep).
// Same calls: H1's prefill 931 vs 937–984 µs, H2's 1125 vs 1168–1172, W5 196 vs 197–198
// (docs/benchmarks/cuda-h100-v9-tile-2026-11-24.json). 96-token stages (m64n96k16 for S, 4
// stages) were not faster there (H1 prefill 980–1061).
#ifndef CANOPY_PIPE_PINGPONG
#define CANOPY_PIPE_PINGPONG 1
#endif

[[maybe_unused]] constexpr bool kPipePingPong = CANOPY_PIPE_PINGPONG != 0;
constexpr int kPipeRows = 128;
constexpr int kPipeKT = 64;
constexpr int kPipeConsumers = 256;                        // two warpgroups of 64 rows each
constexpr int kPipeCopyThreads = 128;                      // the producer warpgroup: it issues every copy
constexpr int kPipeThreads = kPipeConsumers + kPipeCopyThreads;
#ifndef CANOPY_PIPE_STAGES
#define CANOPY_PIPE_STAGES 5
#endif
#ifndef CANOPY_PIPE_RESCALE_SLACK
#define CANOPY_PIPE_RESCALE_SLACK 8
#endif
constexpr int kPipeStages = CANOPY_PIPE_STAGES;
// Q values (float4) a consumer thread has in flight at once in the unit prologue's gather
// (CANOPY_PIPE_GATHER_BATCH; 16 = all of them at d128, one round trip). 16 measured slower on the
// H100 (W5 192.4-192.9 vs 188.4-188.7 µs, H1's prefill 1012-1021 vs 965-985) and its gather no
// shorter (6.6-7.1 vs 6.3-6.5 µs): the gather waits on bytes, not round trips
// (docs/benchmarks/cuda-h100-early-tiles-2026-11-24.json, call F).
#ifndef CANOPY_PIPE_GATHER_BATCH
#define CANOPY_PIPE_GATHER_BATCH 8
#endif
[[maybe_unused]] constexpr int kPipeGatherBatch = CANOPY_PIPE_GATHER_BATCH;  // unused where the PTX target has no wgmma
// setmaxnreg budgets: 384·168 registers at launch are redistributed as 128·56 for the producer
// and 256·224 for the consumers (65,536-register file, one CTA per SM). Fewer producer registers
// made ptxas spill in its loop; the consumers fit 224 without spills (230 when uncapped).
constexpr int kPipeProducerRegs = 56;
constexpr int kPipeConsumerRegs = 224;
static_assert(kPipeCopyThreads * kPipeProducerRegs + kPipeConsumers * kPipeConsumerRegs <= kPipeThreads * 168, "setmaxnreg budget");

template <int D>
constexpr size_t pipeSmemBytes() {
  return 1024                                              // alignment of the swizzle atoms
         + size_t(kPipeRows) * D * 2                       // Q (fp16)
         + size_t(kPipeStages) * 2 * kPipeKT * D * 2      // K, V stages
         + size_t(kPipeRows) * 4                           // row limits
         + size_t(kPipeStages) * 2 * 8;                    // full / empty mbarriers per stage
}

// Shared-memory layout of Q, K and V: 128-byte swizzled rows (wgmma's SWIZZLE_128B mode). A tile
// of `rows` rows × D dims is D/64 blocks of rows × 128 bytes (64 dims); 16-byte chunk j of row r is
// stored at chunk j ^ (r % 8) of its row, and every block starts on a 1024-byte boundary (the
// hardware applies the XOR from address bits 7-9). One layout serves K as a K-major operand and V
// as an MN-major one; a copy phase of 8 threads writes one row's 128 contiguous bytes of global
// memory to 8 distinct bank groups. (The unswizzled core-matrix layout needs 8 rows × 16 bytes per
// phase instead: 8 separate 32-byte sectors, which kept L2 at 78–85% of its throughput on W5.)
[[maybe_unused]] __device__ __forceinline__ int swizzledHalf(int rows, int r, int c) {  // element offset of (r, c..c+7)
  return (c / 64) * rows * 64 + r * 64 + (((c % 64) / 8) ^ (r % 8)) * 8;
}
[[maybe_unused]] constexpr unsigned long long kSwizzle128 = 1ull << 62;

#if CANOPY_HAS_WGMMA
__device__ __forceinline__ void wgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// S (+)= Q·Kᵀ for one 16-dim k-step with Q from registers (the m16n8k16 A fragment of the warp's
// 16 rows) and K in shared memory, K-major (imm-trans-b 0); `acc` 0 overwrites S.
__device__ __forceinline__ void wgmmaRSk64(float (&d)[8][4], const unsigned (&a)[4], unsigned long long db, int acc) {
#define CANOPY_S4(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,"
      "%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
      : CANOPY_S4(0), CANOPY_S4(1), CANOPY_S4(2), CANOPY_S4(3), CANOPY_S4(4), CANOPY_S4(5), CANOPY_S4(6), CANOPY_S4(7)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc));
#undef CANOPY_S4
}
// Pins a register's value at this point of the program: reads of a wgmma accumulator placed after
// a wait cannot be hoisted above it, and an A operand still being read by an unfinished wgmma
// keeps its register until the wait (the compiler sees the asm as reading and rewriting it).
__device__ __forceinline__ void pin(float& x) { asm volatile("" : "+f"(x)::"memory"); }
__device__ __forceinline__ void pin(unsigned& x) { asm volatile("" : "+r"(x)::"memory"); }

// The 16-byte chunks of one token row of K and of V (same page-table row, same offset in their
// pools) into shared memory at sK and sK + vOffset; zero-filled when !valid. The global addresses
// are formed inside the asm (row · rowBytes + head base) so the compiler cannot hoist a stage's 64-bit
// addresses into registers ahead of the copies: the producer warpgroup runs with few registers.
__device__ __forceinline__ void cpAsyncKV16(unsigned sK, unsigned vOffset, const void* kHead, const void* vHead,
                                            int row, int rowBytes, bool valid) {
  asm volatile(
      "{\n.reg .u64 gk, gv;\n.reg .u32 sv;\n"
      "mad.wide.s32 gk, %3, %4, %1;\n"
      "mad.wide.s32 gv, %3, %4, %2;\n"
      "add.u32 sv, %0, %6;\n"
      "cp.async.cg.shared.global [%0], [gk], 16, %5;\n"
      "cp.async.cg.shared.global [sv], [gv], 16, %5;\n}\n" ::"r"(sK),
      "l"(kHead), "l"(vHead), "r"(row), "r"(rowBytes), "r"(valid ? 16 : 0), "r"(vOffset)
      : "memory");
}

// mbarriers (shared memory, 8 bytes): a phase completes after `count` arrivals; waiters poll the
// phase parity.
__device__ __forceinline__ unsigned smemAddr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbarInit(unsigned long long* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smemAddr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbarArrive(unsigned long long* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smemAddr(bar)) : "memory");
}
// One arrival once every cp.async this thread issued so far has landed (.noinc: the barrier's
// count includes it).
__device__ __forceinline__ void mbarArriveOnCopies(unsigned long long* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smemAddr(bar)) : "memory");
}
__device__ __forceinline__ void mbarWait(unsigned long long* bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(smemAddr(bar)),
      "r"(parity)
      : "memory");
}
template <int N>
__device__ __forceinline__ void setMaxRegsInc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N>
__device__ __forceinline__ void setMaxRegsDec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }
// Named barriers 1 and 2 order the consumer warpgroups' wgmma issue (ping-pong).
__device__ __forceinline__ void namedSync(int id) { asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory"); }
// The one meeting of producer and consumers after the prologue. The two roles reach it from
// different branches, which __syncthreads does not allow: it works on the H100, but
// compute-sanitizer's synccheck reports divergent threads at the producer's __syncthreads and
// aborts the kernel (docs/benchmarks/cuda-h100-synccheck-2026-11-24.json). A named barrier with an
// explicit count (barrier 3 over all 384 threads) may be reached from different code; built with
// CANOPY_PIPE_NAMED_BARRIER=1 it replaces the pair. Not the default yet: it has not run on a GPU.
#ifndef CANOPY_PIPE_NAMED_BARRIER
#define CANOPY_PIPE_NAMED_BARRIER 0
#endif
__device__ __forceinline__ void unitBarrier() {
  if constexpr (CANOPY_PIPE_NAMED_BARRIER) asm volatile("bar.sync 3, %0;\n" ::"n"(kPipeThreads) : "memory");
  else __syncthreads();
}
__device__ __forceinline__ void namedArrive(int id) { asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory"); }
#endif

template <int D>
__global__ void __launch_bounds__(kPipeThreads, 1) attnPipeKernel(AttnParams p) {
#if CANOPY_HAS_WGMMA
  extern __shared__ __align__(1024) char smemRaw[];
  char* smem = smemRaw + ((1024 - (static_cast<unsigned>(__cvta_generic_to_shared(smemRaw)) & 1023)) & 1023);
  constexpr int R = kPipeRows, KT = kPipeKT, ST = kPipeStages;
  constexpr int DK = D / 16;  // k-steps of Q·Kᵀ
  constexpr int DN = D / 8;   // n-tiles of O per warp
  constexpr int SN = KT / 8;  // n-tiles of S per warp
  constexpr int PK = KT / 16; // k-steps of P·V
  constexpr int CT = kPipeCopyThreads;
  constexpr int NI = KT * (D / 8) / CT;  // 16-byte K (and V) chunks per copying thread per stage
  constexpr int tStep = 8 * CT / D;
  static_assert(NI >= 1 && KT * (D / 8) % CT == 0, "every copying thread copies the same number of chunks");
  static_assert((CT / 8) % (D / 64) == 0, "a copy phase is one row's 64 dims");
  static_assert(KT == 64, "wgmmaRSk64: S is m64n64 per warpgroup");
  __half* sQ = reinterpret_cast<__half*>(smem);
  __half* sKV = sQ + R * D;
  int* sLim = reinterpret_cast<int*>(sKV + ST * 2 * KT * D);
  unsigned long long* fullBar = reinterpret_cast<unsigned long long*>(sLim + R);  // tile landed
  unsigned long long* emptyBar = fullBar + ST;                                     // slot read

  CANOPY_TRACE_START(traceT0);
  const WorkUnit w = p.work[blockIdx.x];
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;

  [[maybe_unused]] const int item = w.item;  // read by the trace build
  const int kvHead = w.kvHead;
  const int tokBegin = w.tokBegin;  // the item's ranges come with the unit (WorkUnit)
  const int ntok = w.ntok;
  const int qBegin = w.qBegin;
  const int nq = w.nq;
  const int pos0 = w.pos0;
  const int G = p.group;
  const int rowBase = w.rowBlock * R;
  const int numRows = min(nq * G, rowBase + R);
  const int tilesAll = (ntok + KT - 1) / KT;

  // Chunk k of a copying thread (index ct): token t0 + k·tStep, dims c0 .. c0 + 7; the 8 threads of
  // a copy phase take the 8 chunks of one token's 64-dim block (128 contiguous bytes).
  const int ct = tid - kPipeConsumers;  // producer thread index (consumers never copy)
  const int t0 = (ct >> 3) / (D / 64);
  const int c0 = ((ct >> 3) % (D / 64)) * 64 + (ct & 7) * 8;
  const int* rowsOf = p.tokRow + tokBegin;
  const int rowElems = p.numKvHeads * D;
  const int headElem = kvHead * D + c0;
  int rowNext[NI];  // page-table rows of the next tile this thread copies
  auto fetchRowsInto = [&](int tile, int (&rows)[NI]) {
#pragma unroll
    for (int k = 0; k < NI; ++k) {
      const int tok = tile * KT + t0 + k * tStep;
      rows[k] = tok < ntok ? __ldg(rowsOf + tok) : 0;
    }
  };
  auto fetchRows = [&](int tile) { fetchRowsInto(tile, rowNext); };
  const __half* kHead = p.k + headElem;
  const __half* vHead = p.v + headElem;
  auto loadTileFrom = [&](int tile, const int (&rows)[NI]) {  // the copies of `tile`
    const unsigned sK = smemAddr(sKV + (tile % ST) * 2 * KT * D);
#pragma unroll
    for (int k = 0; k < NI; ++k) {
      const int t = t0 + k * tStep;
      const bool ok = tile * KT + t < ntok;
      cpAsyncKV16(sK + 2 * swizzledHalf(KT, t, c0), KT * D * 2, kHead, vHead, ok ? rows[k] : 0, rowElems * 2, ok);
    }
  };
  auto loadTile = [&](int tile) { loadTileFrom(tile, rowNext); };
  // Prologue copies of tiles first and first + 1 (n ≤ 2 of them): their page-table rows loaded
  // together (one memory latency, not one per tile; two tiles' rows fit the producer's registers),
  // then each tile's copies and its full-barrier arrival.
  auto prologueCopies = [&](int first, int n) {
    int rows0[2][NI];
#pragma unroll
    for (int s = 0; s < 2; ++s)
      if (s < n) fetchRowsInto(first + s, rows0[s]);
#pragma unroll
    for (int s = 0; s < 2; ++s)
      if (s < n) {
        if (first + s < tilesAll) loadTileFrom(first + s, rows0[s]);
        mbarArriveOnCopies(fullBar + first + s);
      }
  };

  if (tid == 0) {
    for (int s = 0; s < ST; ++s) {
      mbarInit(fullBar + s, CT);  // one .noinc arrival per producer thread
      mbarInit(emptyBar + s, kPipeConsumers / 32);  // one arrival per consumer warp
    }
  }
  __syncthreads();
  if (tid >= kPipeConsumers) {
    // ---- producer warpgroup: stream every tile into its slot once the consumers freed it ----
    setMaxRegsDec<kPipeProducerRegs>();
    // The first ST tiles need no free slot: copied while the consumers gather Q (tiles past the
    // unit's last needed one are copied for nothing and never read).
#pragma unroll
    for (int b = 0; b < ST; b += 2) prologueCopies(b, b + 2 <= ST ? 2 : ST - b);
    fetchRows(ST);
    unitBarrier();  // Q and the row limits are in shared memory
    int maxLim = 0;   // as unitLimits, in few registers (not unrolled)
#pragma unroll 1
    for (int r = 0; r < R; ++r) maxLim = max(maxLim, sLim[r]);
    const int nTiles = (maxLim + KT - 1) / KT;
    for (int n = ST; n < nTiles; ++n) {
      mbarWait(emptyBar + n % ST, ((n / ST) - 1) & 1);  // tile n - ST's P·V is done
      loadTile(n);
      mbarArriveOnCopies(fullBar + n % ST);
      if (n + 1 < nTiles) fetchRows(n + 1);
    }
    cpAsyncCommit();
    cpAsyncWait<0>();  // no copy may still target shared memory when the CTA exits
    return;
  }
  setMaxRegsInc<kPipeConsumerRegs>();

  // ---- consumer warpgroups ----
  const int row0 = (warp >> 2) * 64;                       // the warpgroup's first row
  const int rowA = row0 + 16 * (warp & 3) + (lane >> 2);   // this thread's rows: rowA, rowA + 8
  [[maybe_unused]] unsigned long long traceA = 0, traceB = 0;
#if defined(CANOPY_TRACE_PROLOGUE) && CANOPY_TRACE_PROLOGUE == 1
  // Diagnostic trace build: tA when the unit record has arrived, tB when Q is gathered.
  asm volatile("" ::"r"(w.item), "r"(w.qFirst) : "memory");
  CANOPY_TRACE_MARK(traceA);
#endif
  gatherUnitRows<R, D, kPipeConsumers, kPipeGatherBatch>(p, tid, rowBase, numRows, qBegin, w.qFirst, kvHead, pos0, ntok, p.scaleLog2, sLim,
                                       [&](int r, int c, float4 v) {
                                         __half2* dst = reinterpret_cast<__half2*>(sQ + swizzledHalf(R, r, c) + (c % 8));
                                         dst[0] = __floats2half2_rn(v.x, v.y);
                                         dst[1] = __floats2half2_rn(v.z, v.w);
                                       });
#if defined(CANOPY_TRACE_PROLOGUE)
  // Diagnostic trace build: tB (1) or tA (2) when this thread's Q rows are gathered.
  if (CANOPY_TRACE_PROLOGUE == 1) CANOPY_TRACE_MARK(traceB);
  else CANOPY_TRACE_MARK(traceA);
#endif
  fenceProxyAsync();
  unitBarrier();  // with the producer's: Q and the row limits are in shared memory
#if !defined(CANOPY_TRACE_PROLOGUE)
  CANOPY_TRACE_MARK(traceA);
#elif CANOPY_TRACE_PROLOGUE == 2
  CANOPY_TRACE_MARK(traceB);  // diagnostic: after the CTA barrier
#endif

  // Tiles to stream (the longest row's limit); below minLim no row of the unit needs masking.
  int maxLim, minLim;
  unitLimits<R>(sLim, numRows - rowBase, ntok, maxLim, minLim);
  const int nTiles = (maxLim + KT - 1) / KT;
  const int limA = sLim[rowA];
  const int limB = sLim[rowA + 8];

  float o[DN][4];
#pragma unroll
  for (int i = 0; i < DN; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;
  float s[SN][4];
  unsigned pA[PK][4], pB[PK][4];  // P of two consecutive tiles (see stage below)

  // wgmma descriptors, all computed before a stage's wgmma.fence: ptxas serialises wgmmas when
  // ordinary instructions define their operands between the fence and the wait (its C7513 note).
  // Q's are fixed per warpgroup; K's and V's advance by one stage slot per tile.
  // K-major (Q, K): k-step kk reads dims 16kk.. = 32-byte column (kk % 4) of block kk / 4, 8-row
  // groups 1024 bytes apart (SBO; LBO unused). MN-major (V): k-step kk reads tokens 16kk.. (two
  // 8-token groups, SBO 1024), dims in 64-dim blocks KT·128 bytes apart (LBO).
  // Q stays in registers for the whole unit: the A fragments of the warp's 16 rows (ldmatrix from
  // the swizzled rows), so S's wgmmas read only K from shared memory. (With Q from shared memory
  // too, two warpgroups' m64n64k16 read 128 bytes per cycle at the tensor cores' rate: all of the
  // SM's shared-memory bandwidth.)
  unsigned qf[DK][4];
  {
    const int r = 16 * (warp & 3) + row0 + (lane & 15);
#pragma unroll
    for (int kk = 0; kk < DK; ++kk) ldmatrixX4(qf[kk], sQ + swizzledHalf(R, r, kk * 16 + 8 * (lane >> 4)));
  }
  const unsigned long long dK0 = smemDesc(sKV, 16, 1024) | kSwizzle128;
  const unsigned long long dV0 = smemDesc(sKV + KT * D, KT * 128, 1024) | kSwizzle128;
  // Descriptor start addresses count 16-byte units: one stage slot is 2·KT·D halves.
  auto slotDesc = [&](unsigned long long base, int tile) {
    return base + static_cast<unsigned long long>((tile % ST) * (2 * KT * D * 2 / 16));
  };
  auto issueS = [&](unsigned long long dK) {
#pragma unroll
    for (int kk = 0; kk < DK; ++kk) wgmmaRSk64(s, qf[kk], dK + ((kk / 4) * KT * 128 + (kk % 4) * 32) / 16, kk > 0);
  };
  auto issuePV = [&](unsigned long long dV, const unsigned (&pk)[PK][4]) {
#pragma unroll
    for (int kk = 0; kk < PK; ++kk) wgmmaRS<D>(o, pk[kk], dV + kk * 16 * 128 / 16);
  };
  auto pinS = [&]() {
#pragma unroll
    for (int n = 0; n < SN; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) pin(s[n][e]);
  };
  auto pinPV = [&](unsigned (&pk)[PK][4]) {
#pragma unroll
    for (int n = 0; n < DN; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) pin(o[n][e]);
#pragma unroll
    for (int kk = 0; kk < PK; ++kk)
#pragma unroll
      for (int e = 0; e < 4; ++e) pin(pk[kk][e]);
  };
  // Masked online softmax of S (tile `tile`): P packed into pNext, the running max/sum updated;
  // returns the factors O must be rescaled by.
  auto softmax = [&](int tile, unsigned (&pNext)[PK][4], float& alphaA, float& alphaB) {
    if ((tile + 1) * KT > minLim) {  // CTA-uniform
      const int tokBase = tile * KT + 2 * (lane & 3);
#pragma unroll
      for (int n = 0; n < SN; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int tok = tokBase + n * 8 + e;
          if (tok >= limA) s[n][e] = -INFINITY;
          if (tok >= limB) s[n][2 + e] = -INFINITY;
        }
    }
    onlineSoftmaxStep<SN, CANOPY_PIPE_RESCALE_SLACK>(s, mA, mB, lA, lB, alphaA, alphaB);
#pragma unroll
    for (int kk = 0; kk < PK; ++kk) packP(pNext[kk], s, kk);
  };
  // Tile j's K/V are in shared memory and visible to this thread's wgmmas: the producer's full
  // barrier for the tile completed (its cp.async writes, generic proxy, landed), then a proxy fence
  // before the async-proxy reads.
  auto tileReady = [&](int j) {
    mbarWait(fullBar + j % ST, (j / ST) & 1);
    fenceProxyAsync();
  };
  // Ping-pong: warpgroup g issues its stage's wgmmas after the other one issued its own.
  const int wg = warp >> 2;
  auto turnBegin = [&]() {
    if constexpr (kPipePingPong) namedSync(1 + wg);
  };
  auto turnEnd = [&](bool last) {
    if constexpr (kPipePingPong) {
      if (!last || wg == 0) namedArrive(2 - wg);
    }
  };
  if constexpr (kPipePingPong) {
    if (wg == 1 && nTiles > 0) namedArrive(1);  // warpgroup 0 goes first
  }

  if (nTiles > 0) {
    tileReady(0);
    const unsigned long long dK = slotDesc(dK0, 0);
    turnBegin();
    wgmmaFence();
    issueS(dK);
    wgmmaCommit();
    turnEnd(false);
    wgmmaWait<0>();
    pinS();
    float alphaA, alphaB;  // O is still zero: nothing to rescale
    softmax(0, pA, alphaA, alphaB);
  }
  // Stage j: S_j and P_{j-1}·V_{j-1} in flight together, the softmax of S_j under the P·V.
  // pPrev holds P_{j-1}, pNew receives P_j; the loop is unrolled by two so the two P buffers swap
  // roles without register copies (a copy of P right before the next stage's wgmmas made ptxas
  // serialise them, its C7513 note).
  auto stage = [&](int j, unsigned (&pPrev)[PK][4], unsigned (&pNew)[PK][4]) {
    tileReady(j);
    const unsigned long long dK = slotDesc(dK0, j);
    const unsigned long long dV = slotDesc(dV0, j - 1);
    turnBegin();
    wgmmaFence();  // P and the rescaled O were written by ordinary instructions
    issueS(dK);
    wgmmaCommit();
    issuePV(dV, pPrev);
    wgmmaCommit();
    turnEnd(false);
    wgmmaWait<1>();  // S_j done; P·V of tile j - 1 still running
    pinS();
    float alphaA, alphaB;
    softmax(j, pNew, alphaA, alphaB);
    wgmmaWait<0>();
    pinPV(pPrev);
    __syncwarp();
    if (lane == 0) mbarArrive(emptyBar + (j - 1) % ST);  // tile j - 1's slot is free
    rescaleRows<DN>(o, alphaA, alphaB);
  };
  int j = 1;
  for (; j + 1 < nTiles; j += 2) {
    stage(j, pA, pB);
    stage(j + 1, pB, pA);
  }
  if (j < nTiles) stage(j++, pA, pB);
  if (nTiles > 0) {
    // P of the last tile: pA when nTiles is odd (stages alternate A→B, B→A from tile 0 in pA).
    const unsigned long long dV = slotDesc(dV0, nTiles - 1);
    turnBegin();
    wgmmaFence();
    if (nTiles & 1) issuePV(dV, pA);
    else issuePV(dV, pB);
    wgmmaCommit();
    turnEnd(true);
    wgmmaWait<0>();
    if (nTiles & 1) pinPV(pA);
    else pinPV(pB);
  }
#if !defined(CANOPY_TRACE_PROLOGUE)
  CANOPY_TRACE_MARK(traceB);
#endif

  // Each thread holds whole rows' partial sums: reduce the quad's, normalise, write.
  lA += __shfl_xor_sync(0xffffffffu, lA, 1);
  lA += __shfl_xor_sync(0xffffffffu, lA, 2);
  lB += __shfl_xor_sync(0xffffffffu, lB, 1);
  lB += __shfl_xor_sync(0xffffffffu, lB, 2);
  const int partialBase = w.partialBase;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int gr = rowBase + rowA + 8 * h;
    if (gr >= numRows) continue;
    const float L = h ? lB : lA;
    const float M = h ? mB : mA;
    const float inv = L > 0.f ? 1.f / L : 0.f;
    const float lse = L > 0.f ? (M + log2f(L)) * 0.69314718055994531f : -INFINITY;  // empty: -inf
    const int hq = kvHead * G + gr % G;
    const int slot = partialBase + gr / G;
    const int dest = p.slotDest[slot];
    float* oDst = dest >= 0 ? p.out + (static_cast<size_t>(dest) * p.numQoHeads + hq) * D
                            : p.partO + (static_cast<size_t>(slot) * p.numQoHeads + hq) * D;
    float* lseDst = dest >= 0 ? p.outLse + static_cast<size_t>(dest) * p.numQoHeads + hq
                              : p.partLse + static_cast<size_t>(slot) * p.numQoHeads + hq;
    const int c = 2 * (lane & 3);
#pragma unroll
    for (int dn = 0; dn < DN; ++dn)
      *reinterpret_cast<float2*>(oDst + dn * 8 + c) = make_float2(o[dn][2 * h] * inv, o[dn][2 * h + 1] * inv);
    if (c == 0) *lseDst = lse;
  }
  CANOPY_TRACE_UNIT_AB(5, traceT0, item, kvHead, w.rowBlock, 8, traceA, traceB);
#else
  // Only the sm_90a SASS has wgmma; the host never launches this kernel elsewhere (attnPipeSupported).
  __trap();
#endif
}

// Whether the current device runs the sm_90a SASS (compute capability 9.0 exactly): newer GPUs
// would JIT the portable PTX, which has no wgmma.
bool deviceIsSm90() {
  static int cached[64];  // 0 unknown, 1 yes, 2 no; per device ordinal
  int dev = 0;
  CANOPY_CUDA(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return false;
  if (cached[dev] == 0) {
    int major = 0, minor = 0;
    CANOPY_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CANOPY_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    cached[dev] = major == 9 && minor == 0 ? 1 : 2;
  }
  return cached[dev] == 1;
}

}  // namespace

bool attnPipeSupported(int headDim) { return (headDim == 64 || headDim == 128) && deviceIsSm90(); }

void launchAttnPipe(const AttnParams& p, int headDim, cudaStream_t stream) {
  if (headDim == 64) {
    attnPipeKernel<64><<<p.numWork, kPipeThreads, pipeSmemBytes<64>(), stream>>>(p);
  } else if (headDim == 128) {
    attnPipeKernel<128><<<p.numWork, kPipeThreads, pipeSmemBytes<128>(), stream>>>(p);
  } else {
    throw CudaError("launchAttnPipe: head dim " + std::to_string(headDim) + " has no pipelined wgmma tile");
  }
  CANOPY_LAUNCHED("attnPipeKernel launch");
}

void attnPipeInit() {
  CANOPY_CUDA(cudaFuncSetAttribute(attnPipeKernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(pipeSmemBytes<64>())));
  CANOPY_CUDA(cudaFuncSetAttribute(attnPipeKernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(pipeSmemBytes<128>())));
}

}  // namespace canopy
