// Node binding of the Canopy CUDA backend (node-addon-api).
//
// Ownership: device memory lives in C++. `ContextCore` owns the KV pools and the streams;
// `PlanState` owns one plan's metadata arrays, work lists and output buffers, plus the CUDA graphs
// of its launch sequence. JS holds them through the `Context` and `PlanHandle` wrappers; memory is
// freed by `dispose()` or, failing that, by the wrappers' finalizers (shared_ptr: a run in flight
// keeps what it uses alive). GPU work runs in AsyncWorkers (libuv threads), serialized per
// context by a mutex, so `run`/`time`/`setKvCache` never block the event loop.
#define NAPI_VERSION 8
#define NAPI_CPP_EXCEPTIONS
#define NODE_ADDON_API_DISABLE_DEPRECATED
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.cuh"

namespace canopy {
namespace {

constexpr int kNumStreams = 4;  // one per tile kernel of the multi-stream strategy
constexpr int kMaxGroup = 8;    // plans one timeGroup call may run concurrently (a stream set each)

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }
  void alloc(size_t n) {
    reset();
    if (n == 0) n = 16;  // keep a valid pointer for empty arrays
    CANOPY_CUDA(cudaMalloc(&ptr, n));
    bytes = n;
  }
  void reset() {
    if (ptr) cudaFree(ptr);
    ptr = nullptr;
    bytes = 0;
  }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
};

struct PlanState;

// The streams and events one execution of a plan uses: it is enqueued on `main`, forks onto the
// side streams (tile kernels or persistent families) and joins back. One set per plan that runs
// at the same time as others (timeGroup 'concurrent').
struct StreamSet {
  cudaStream_t main = nullptr;
  cudaStream_t side[kNumStreams] = {};
  cudaEvent_t fork = nullptr;
  cudaEvent_t join[kNumStreams] = {};
  cudaEvent_t done = nullptr;  // recorded on main after the plan (group join)
  void create() {
    CANOPY_CUDA(cudaStreamCreateWithFlags(&main, cudaStreamNonBlocking));
    for (int i = 0; i < kNumStreams; ++i) {
      CANOPY_CUDA(cudaStreamCreateWithFlags(&side[i], cudaStreamNonBlocking));
      CANOPY_CUDA(cudaEventCreateWithFlags(&join[i], cudaEventDisableTiming));
    }
    CANOPY_CUDA(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
    CANOPY_CUDA(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  }
  void destroy() {
    if (main) cudaStreamDestroy(main);
    for (int i = 0; i < kNumStreams; ++i) {
      if (side[i]) cudaStreamDestroy(side[i]);
      if (join[i]) cudaEventDestroy(join[i]);
      side[i] = nullptr;
      join[i] = nullptr;
    }
    if (fork) cudaEventDestroy(fork);
    if (done) cudaEventDestroy(done);
    main = nullptr;
    fork = done = nullptr;
  }
};

struct ContextCore {
  int device = 0;
  cudaDeviceProp prop{};
  std::mutex mu;
  bool disposed = false;
  StreamSet base;                                 // single-plan runs; timeGroup's capture stream
  std::vector<std::unique_ptr<StreamSet>> group;  // timeGroup 'concurrent': plan i on group[i] (lazy)
  cudaEvent_t groupFork = nullptr;
  cudaStream_t main = nullptr;  // = base.main
  DeviceBuffer k, v;
  int numPages = 0, pageSize = 0, numKvHeads = 0, headDim = 0;
  long long kvGeneration = 0;  // bumps on every setKvCache: graphs that captured old pools are stale
  std::set<PlanState*> plans;  // live plans (guarded by mu): dispose frees their memory too

  void init(int dev) {
    device = dev;
    CANOPY_CUDA(cudaSetDevice(dev));
    CANOPY_CUDA(cudaGetDeviceProperties(&prop, dev));
    base.create();
    main = base.main;
    CANOPY_CUDA(cudaEventCreateWithFlags(&groupFork, cudaEventDisableTiming));
    attnInit();
  }
  StreamSet& groupSet(size_t i) {
    while (group.size() <= i) {
      group.emplace_back(new StreamSet());
      group.back()->create();
    }
    return *group[i];
  }
  void releaseLocked();
  ~ContextCore() {
    std::lock_guard<std::mutex> lock(mu);
    releaseLocked();
  }
  void ensureLive() const {
    if (disposed) throw CudaError("the CUDA backend was disposed");
  }
};

enum Strategy { kStreams = 0, kPersistent = 1, kFused = 2 };
constexpr int kNumStrategies = 3;

Strategy strategyArg(const Napi::Value& v) {
  const int s = v.IsNumber() ? v.As<Napi::Number>().Int32Value() : -1;
  if (s < 0 || s >= kNumStrategies) throw Napi::RangeError::New(v.Env(), "strategy must be 0 (streams), 1 (persistent) or 2 (fused)");
  return static_cast<Strategy>(s);
}

struct PlanState {
  std::shared_ptr<ContextCore> core;
  int numQueries = 0, numQoHeads = 0, headDim = 0, group = 0, numPartials = 0;
  float scaleLog2 = 0.f;
  int numMergeQueries = 0;
  int groupCount[4] = {0, 0, 0, 0};  // work units per rg (1, 2, 4, 8) in the multi-stream layout
  int numWork = 0;
  int numFirst = 0;    // workSorted = [first family] + [other family] (families: 4- or 8-warp CTAs)
  int firstWarps = 8;  // warps per CTA of the first family
  bool wgmma = false;  // 128-row units on the pipelined wgmma tile where the SASS has it
  Rg1Tile rg1Tile = kRg1Default;  // the 16-row tile of rg-1 units under 'streams' (desc.shortRg1 / tinyRg1)
  int maxRg = 1;
  int persistentGrid[2] = {1, 1};  // CTAs of the first and second persistent grids (computed outside capture)
  bool fusedOk = false;            // head dim has the fused kernel (else 'fused' runs as 'persistent')
  int fusedGrid = 1;               // CTAs of the fused grid (SMs × CTAs per SM)
  int fusedQuota[2] = {0, 0};      // fused CTAs of per-SM slot 0 / 1 that start in the compute role
  DeviceBuffer tokRow, itemQueries, queryKvLimit, slotDest, mergeSlots, mergeQueries;
  DeviceBuffer workGrouped, workSorted, counter, fusedCounters;
  DeviceBuffer q, partO, partLse, out, outLse;
  cudaGraphExec_t graph[kNumStrategies] = {};
  long long graphGeneration[kNumStrategies] = {-1, -1, -1};
  bool freed = false;

  void freeLocked() {
    for (auto& g : graph) {
      if (g) cudaGraphExecDestroy(g);
      g = nullptr;
    }
    for (DeviceBuffer* b : {&tokRow, &itemQueries, &queryKvLimit, &slotDest, &mergeSlots,
                            &mergeQueries, &workGrouped, &workSorted, &counter, &fusedCounters, &q, &partO,
                            &partLse, &out, &outLse}) {
      b->reset();
    }
    freed = true;
  }
  ~PlanState() {
    std::lock_guard<std::mutex> lock(core->mu);
    core->plans.erase(this);
    if (!freed) {
      cudaSetDevice(core->device);
      freeLocked();
    }
  }

  AttnParams attnParams(const WorkUnit* work, int n) const {
    AttnParams p{};
    p.k = core->k.as<const __half>();
    p.v = core->v.as<const __half>();
    p.q = q.as<const float>();
    p.numKvHeads = core->numKvHeads;
    p.numQoHeads = numQoHeads;
    p.group = group;
    p.scaleLog2 = scaleLog2;
    p.tokRow = tokRow.as<const int>();
    p.itemQueries = itemQueries.as<const int>();
    p.queryKvLimit = queryKvLimit.as<const int>();
    p.slotDest = slotDest.as<const int>();
    p.partO = partO.as<float>();
    p.partLse = partLse.as<float>();
    p.out = out.as<float>();
    p.outLse = outLse.as<float>();
    p.work = work;
    p.numWork = n;
    p.counter = counter.as<int>();
    return p;
  }

  // The whole launch sequence of one execution on c.main (captured into a graph): the
  // attention launches of the strategy, then the merge, all ordered after what c.main holds.
  void enqueue(Strategy s, StreamSet& c) {
    // Nothing to fuse when one list is empty: the persistent family kernels run single-kind plans
    // faster than the fused roles (H100: decode-only 186 vs 162 µs, prefill-only 2221 vs 1992 µs:
    // the halves stream 32-token stages, the fused kernel's registers are shared by both roles).
    if (s == kFused && (!fusedOk || numFirst == 0 || numFirst == numWork)) s = kPersistent;
    if (s == kFused) {
      // One grid; the 8-warp units are one family of workSorted, the 4-warp units the other.
      CANOPY_CUDA(cudaMemsetAsync(fusedCounters.ptr, 0, fusedCounters.bytes, c.main));
      const WorkUnit* units = workSorted.as<const WorkUnit>();
      FusedParams f{};
      const bool eightFirst = firstWarps == 8;
      f.work8 = eightFirst ? units : units + numFirst;
      f.n8 = eightFirst ? numFirst : numWork - numFirst;
      f.work4 = eightFirst ? units + numFirst : units;
      f.n4 = numWork - f.n8;
      f.counters = fusedCounters.as<int>();
      f.computeQuota0 = fusedQuota[0];
      f.computeQuota1 = fusedQuota[1];
      launchAttnFused(attnParams(units, numWork), f, headDim, fusedGrid, c.main);
    } else if (s == kPersistent) {
      // Two persistent grids side by side (the family with the longest unit first), each with its own counter.
      CANOPY_CUDA(cudaMemsetAsync(counter.ptr, 0, 2 * sizeof(int), c.main));
      CANOPY_CUDA(cudaEventRecord(c.fork, c.main));
      const WorkUnit* units = workSorted.as<const WorkUnit>();
      const int counts[2] = {numFirst, numWork - numFirst};
      const int warps[2] = {firstWarps, 12 - firstWarps};
      int used = 0;
      for (int k = 0; k < 2; ++k) {
        if (counts[k] == 0) continue;
        cudaStream_t st = c.side[used];
        CANOPY_CUDA(cudaStreamWaitEvent(st, c.fork, 0));
        AttnParams ap = attnParams(units + (k == 0 ? 0 : numFirst), counts[k]);
        ap.counter = counter.as<int>() + k;
        launchAttnPersistent(ap, headDim, warps[k], wgmma, persistentGrid[k], st);
        CANOPY_CUDA(cudaEventRecord(c.join[used], st));
        ++used;
      }
      for (int i = 0; i < used; ++i) CANOPY_CUDA(cudaStreamWaitEvent(c.main, c.join[i], 0));
    } else {
      CANOPY_CUDA(cudaEventRecord(c.fork, c.main));
      int used = 0;
      static const int rgs[4] = {1, 2, 4, 8};
      int groupOffset[4];
      for (int g = 0, o = 0; g < 4; ++g) {
        groupOffset[g] = o;
        o += groupCount[g];
      }
      // Largest tiles first: their CTAs are the longest, so they should take SMs before the
      // short decode tiles fill the chip.
      for (int g = 3; g >= 0; --g) {
        const int n = groupCount[g];
        if (n == 0) continue;
        const int offset = groupOffset[g];
        cudaStream_t st = c.side[used];
        CANOPY_CUDA(cudaStreamWaitEvent(st, c.fork, 0));
        launchAttnTiles(attnParams(workGrouped.as<const WorkUnit>() + offset, n), headDim, rgs[g], wgmma, rg1Tile, st);
        CANOPY_CUDA(cudaEventRecord(c.join[used], st));
        ++used;
      }
      for (int i = 0; i < used; ++i) CANOPY_CUDA(cudaStreamWaitEvent(c.main, c.join[i], 0));
    }
    MergeParams m{};
    m.partO = partO.as<const float>();
    m.partLse = partLse.as<const float>();
    m.mergeSlots = mergeSlots.as<const int>();
    m.queries = mergeQueries.as<const MergeQuery>();
    m.numMergeQueries = numMergeQueries;
    m.numQoHeads = numQoHeads;
    m.out = out.as<float>();
    m.outLse = outLse.as<float>();
    launchMerge(m, headDim, c.main);
  }

  // Validate before capture starts (a throw inside a capture leaves the stream capturing).
  void checkRunnable() const {
    if (freed) throw CudaError("the plan handle was disposed");
    if (core->k.ptr == nullptr) throw CudaError("no KV cache: call setKvCache first");
  }

  // Graph of the launch sequence, captured once per (strategy, KV pools).
  cudaGraphExec_t graphFor(Strategy s) {
    if (graph[s] && graphGeneration[s] == core->kvGeneration) return graph[s];
    if (graph[s]) {
      cudaGraphExecDestroy(graph[s]);
      graph[s] = nullptr;
    }
    cudaGraph_t g = nullptr;
    CANOPY_CUDA(cudaStreamBeginCapture(core->main, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue(s, core->base);
    } catch (...) {
      cudaStreamEndCapture(core->main, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    CANOPY_CUDA(cudaStreamEndCapture(core->main, &g));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    CANOPY_CUDA(err);
    graph[s] = exec;
    graphGeneration[s] = core->kvGeneration;
    return exec;
  }
};

void ContextCore::releaseLocked() {
  if (disposed) return;
  disposed = true;
  cudaSetDevice(device);
  for (PlanState* p : plans) p->freeLocked();
  plans.clear();
  k.reset();
  v.reset();
  base.destroy();
  for (auto& g : group) g->destroy();
  group.clear();
  if (groupFork) cudaEventDestroy(groupFork);
  groupFork = nullptr;
  main = nullptr;
}

// ---------------------------------------------------------------------------------------------
// JS helpers

template <typename T>
std::vector<T> copyTyped(const Napi::Value& v, const char* name) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), std::string(name) + " must be a typed array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.ElementSize() != sizeof(T)) {
    throw Napi::TypeError::New(v.Env(), std::string(name) + " has the wrong element type");
  }
  const size_t n = ta.ElementLength();
  std::vector<T> out(n);
  if (n) {
    const uint8_t* base = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    std::memcpy(out.data(), base, n * sizeof(T));
  }
  return out;
}

template <typename T>
void upload(DeviceBuffer& b, const std::vector<T>& host) {
  b.alloc(host.size() * sizeof(T));
  if (!host.empty()) CANOPY_CUDA(cudaMemcpy(b.ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
}

// The device's WorkUnit records (common.cuh) from the host's (item, kvHead, rowBlock, rg) lists:
// each unit gets its item's token and query ranges, position and partial base, and the item's
// first query id when its queries are consecutive ids. Item indices and ranges are checked here
// (the kernels trust them).
std::vector<int32_t> expandWork(const std::vector<int32_t>& plain, const std::vector<int32_t>& itemTokBegin,
                                const std::vector<int32_t>& itemPos, const std::vector<int32_t>& itemQueryBegin,
                                const std::vector<int32_t>& itemQueries, const std::vector<int32_t>& itemPartialBase) {
  const size_t numItems = itemPos.size();
  if (itemTokBegin.size() != numItems + 1 || itemQueryBegin.size() != numItems + 1 || itemPartialBase.size() != numItems) {
    throw std::range_error("plan item arrays disagree on the number of items");
  }
  const size_t n = plain.size() / kPlanWorkUnitInts;
  std::vector<int32_t> out(n * kWorkUnitInts, 0);
  for (size_t u = 0; u < n; ++u) {
    const int32_t* in = plain.data() + u * kPlanWorkUnitInts;
    const int item = in[0];
    if (item < 0 || size_t(item) >= numItems) {
      throw std::range_error("work unit " + std::to_string(u) + ": item " + std::to_string(item) + " out of range [0, " +
                             std::to_string(numItems) + ")");
    }
    const int q0 = itemQueryBegin[item], q1 = itemQueryBegin[item + 1];
    if (q0 < 0 || q1 < q0 || size_t(q1) > itemQueries.size()) {
      throw std::range_error("work unit " + std::to_string(u) + ": query range of item " + std::to_string(item) + " out of range");
    }
    int qFirst = q1 > q0 ? itemQueries[q0] : -1;
    for (int x = q0 + 1; x < q1 && qFirst >= 0; ++x) {
      if (itemQueries[x] != itemQueries[x - 1] + 1) qFirst = -1;
    }
    int32_t* o = out.data() + u * kWorkUnitInts;
    o[0] = item, o[1] = in[1], o[2] = in[2], o[3] = in[3];
    o[4] = itemTokBegin[item];
    o[5] = itemTokBegin[item + 1] - itemTokBegin[item];
    o[6] = q0;
    o[7] = q1 - q0;
    o[8] = itemPos[item];
    o[9] = itemPartialBase[item];
    o[10] = qFirst;
  }
  return out;
}

// The merge kernel's MergeQuery records (common.cuh): each query to merge with its slot count, its
// range of mergeSlots, and its slots inline when they fit.
std::vector<int32_t> mergeQueryRecords(const std::vector<int32_t>& queries, const std::vector<int32_t>& mergeBegin,
                                       const std::vector<int32_t>& mergeSlots) {
  std::vector<int32_t> out(queries.size() * kMergeQueryInts, 0);
  for (size_t i = 0; i < queries.size(); ++i) {
    const int q = queries[i];
    if (q < 0 || size_t(q) + 1 >= mergeBegin.size()) {
      throw std::range_error("merge query " + std::to_string(q) + " out of range [0, " +
                             std::to_string(mergeBegin.size() ? mergeBegin.size() - 1 : 0) + ")");
    }
    const int b = mergeBegin[q], e = mergeBegin[q + 1];
    if (b < 0 || e < b || size_t(e) > mergeSlots.size()) {
      throw std::range_error("merge query " + std::to_string(q) + ": slot range out of range");
    }
    int32_t* o = out.data() + i * kMergeQueryInts;
    o[0] = q;
    o[1] = e - b;
    o[2] = b;
    for (int j = 0; j < e - b && j < kMergeInlineSlots; ++j) o[4 + j] = mergeSlots[b + j];
  }
  return out;
}

int getInt(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("plan field ") + key + " must be a number");
  return v.As<Napi::Number>().Int32Value();
}

std::string deviceDescription(const ContextCore& c) {
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  auto ver = [](int x) { return std::to_string(x / 1000) + "." + std::to_string((x % 1000) / 10); };
  return std::string(c.prop.name) + " (sm_" + std::to_string(c.prop.major) + std::to_string(c.prop.minor) +
         ", " + std::to_string(c.prop.multiProcessorCount) + " SMs, " +
         std::to_string(c.prop.totalGlobalMem >> 20) + " MiB, driver " + ver(driver) + ", runtime " +
         ver(runtime) + ")";
}

// ---------------------------------------------------------------------------------------------
// Async workers: GPU work off the event loop.

class TaskWorker : public Napi::AsyncWorker {
 public:
  TaskWorker(Napi::Env env, std::shared_ptr<ContextCore> core)
      : Napi::AsyncWorker(env), core_(std::move(core)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual void Work() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  void Execute() override {
    try {
      std::lock_guard<std::mutex> lock(core_->mu);
      core_->ensureLive();
      CANOPY_CUDA(cudaSetDevice(core_->device));
      Work();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Result(Env())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  std::shared_ptr<ContextCore> core_;
  Napi::Promise::Deferred deferred_;
};

class SetKvWorker : public TaskWorker {
 public:
  SetKvWorker(Napi::Env env, std::shared_ptr<ContextCore> core, Napi::TypedArray k, Napi::TypedArray v,
              int numPages, int pageSize, int numKvHeads, int headDim)
      : TaskWorker(env, std::move(core)), numPages_(numPages), pageSize_(pageSize),
        numKvHeads_(numKvHeads), headDim_(headDim) {
    // Keep the JS arrays alive while the copy runs on the worker thread.
    kRef_ = Napi::Persistent(k);
    vRef_ = Napi::Persistent(v);
    kPtr_ = static_cast<const uint8_t*>(k.ArrayBuffer().Data()) + k.ByteOffset();
    vPtr_ = static_cast<const uint8_t*>(v.ArrayBuffer().Data()) + v.ByteOffset();
    bytes_ = k.ByteLength();
  }

 protected:
  void Work() override {
    ContextCore& c = *core_;
    c.k.alloc(bytes_);
    c.v.alloc(bytes_);
    CANOPY_CUDA(cudaMemcpy(c.k.ptr, kPtr_, bytes_, cudaMemcpyHostToDevice));
    CANOPY_CUDA(cudaMemcpy(c.v.ptr, vPtr_, bytes_, cudaMemcpyHostToDevice));
    c.numPages = numPages_;
    c.pageSize = pageSize_;
    c.numKvHeads = numKvHeads_;
    c.headDim = headDim_;
    ++c.kvGeneration;
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  Napi::Reference<Napi::TypedArray> kRef_, vRef_;
  const uint8_t* kPtr_;
  const uint8_t* vPtr_;
  size_t bytes_;
  int numPages_, pageSize_, numKvHeads_, headDim_;
};

// Warm up, then one event between consecutive replays of `g` on `st`; no read-back in between.
std::vector<double> timeGraphReplays(cudaGraphExec_t g, cudaStream_t st, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) CANOPY_CUDA(cudaGraphLaunch(g, st));
  std::vector<cudaEvent_t> ev(iters + 1, nullptr);
  std::vector<double> times(iters);
  try {
    for (auto& e : ev) CANOPY_CUDA(cudaEventCreate(&e));
    CANOPY_CUDA(cudaEventRecord(ev[0], st));
    for (int i = 0; i < iters; ++i) {
      CANOPY_CUDA(cudaGraphLaunch(g, st));
      CANOPY_CUDA(cudaEventRecord(ev[i + 1], st));
    }
    CANOPY_CUDA(cudaStreamSynchronize(st));
    for (int i = 0; i < iters; ++i) {
      float ms = 0.f;
      CANOPY_CUDA(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
      times[i] = ms * 1000.0;
    }
  } catch (...) {
    for (auto& e : ev) if (e) cudaEventDestroy(e);
    throw;
  }
  for (auto& e : ev) cudaEventDestroy(e);
  return times;
}

class RunWorker : public TaskWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<ContextCore> core, std::shared_ptr<PlanState> plan,
            std::vector<float> queries, Strategy strategy, bool timing, int warmup, int iters)
      : TaskWorker(env, std::move(core)), plan_(std::move(plan)), queries_(std::move(queries)),
        strategy_(strategy), timing_(timing), warmup_(warmup), iters_(iters) {}

 protected:
  void Work() override {
    PlanState& p = *plan_;
    p.checkRunnable();
    cudaStream_t st = core_->main;
    CANOPY_CUDA(cudaMemcpyAsync(p.q.ptr, queries_.data(), queries_.size() * sizeof(float),
                                cudaMemcpyHostToDevice, st));
    cudaGraphExec_t g = p.graphFor(strategy_);
    if (iters_ > 0) {
      times_ = timeGraphReplays(g, st, warmup_, iters_);
      return;
    }
    // run(): poison the outputs and partials (NaN) first, so a slot the plan fails to write can
    // never pass for a result left by an earlier run.
    CANOPY_CUDA(cudaMemsetAsync(p.out.ptr, 0xff, p.out.bytes, st));
    CANOPY_CUDA(cudaMemsetAsync(p.outLse.ptr, 0xff, p.outLse.bytes, st));
    CANOPY_CUDA(cudaMemsetAsync(p.partO.ptr, 0xff, p.partO.bytes, st));
    CANOPY_CUDA(cudaMemsetAsync(p.partLse.ptr, 0xff, p.partLse.bytes, st));
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    if (timing_) {
      CANOPY_CUDA(cudaEventCreate(&e0));
      CANOPY_CUDA(cudaEventCreate(&e1));
      CANOPY_CUDA(cudaEventRecord(e0, st));
    }
    CANOPY_CUDA(cudaGraphLaunch(g, st));
    if (timing_) CANOPY_CUDA(cudaEventRecord(e1, st));
    const size_t outN = size_t(p.numQueries) * p.numQoHeads * p.headDim;
    const size_t lseN = size_t(p.numQueries) * p.numQoHeads;
    out_.resize(outN);
    lse_.resize(lseN);
    CANOPY_CUDA(cudaMemcpyAsync(out_.data(), p.out.ptr, outN * sizeof(float), cudaMemcpyDeviceToHost, st));
    CANOPY_CUDA(cudaMemcpyAsync(lse_.data(), p.outLse.ptr, lseN * sizeof(float), cudaMemcpyDeviceToHost, st));
    CANOPY_CUDA(cudaStreamSynchronize(st));
#if CANOPY_TRACE
    traceDumpAttention();
    traceDumpPipe();
    traceDumpMerge();
#endif
    if (timing_) {
      float ms = 0.f;
      CANOPY_CUDA(cudaEventElapsedTime(&ms, e0, e1));
      deviceUs_ = ms * 1000.0;
      cudaEventDestroy(e0);
      cudaEventDestroy(e1);
    }
  }
  Napi::Value Result(Napi::Env env) override {
    if (iters_ > 0) {
      Napi::Float64Array t = Napi::Float64Array::New(env, times_.size());
      std::copy(times_.begin(), times_.end(), t.Data());
      return t;
    }
    Napi::Object r = Napi::Object::New(env);
    Napi::Float32Array o = Napi::Float32Array::New(env, out_.size());
    std::copy(out_.begin(), out_.end(), o.Data());
    Napi::Float32Array l = Napi::Float32Array::New(env, lse_.size());
    std::copy(lse_.begin(), lse_.end(), l.Data());
    r.Set("out", o);
    r.Set("lse", l);
    if (timing_) r.Set("deviceTimeUs", Napi::Number::New(env, deviceUs_));
    return r;
  }

 private:
  std::shared_ptr<PlanState> plan_;
  std::vector<float> queries_;
  Strategy strategy_;
  bool timing_;
  int warmup_, iters_;
  std::vector<float> out_, lse_;
  std::vector<double> times_;
  double deviceUs_ = 0.0;
};

// timeGroup: several plans as one step, captured into one graph and replayed. 'serial': plan after
// plan on the base stream set (each its own launches and merge, back to back); 'concurrent':
// plan i on stream set i, forked from and joined back into the capture stream.
class GroupWorker : public TaskWorker {
 public:
  GroupWorker(Napi::Env env, std::shared_ptr<ContextCore> core, std::vector<std::shared_ptr<PlanState>> plans,
              std::vector<std::vector<float>> queries, Strategy strategy, bool concurrent, int warmup, int iters)
      : TaskWorker(env, std::move(core)), plans_(std::move(plans)), queries_(std::move(queries)),
        strategy_(strategy), concurrent_(concurrent), warmup_(warmup), iters_(iters) {}

 protected:
  void Work() override {
    ContextCore& c = *core_;
    for (auto& p : plans_) p->checkRunnable();
    if (concurrent_) {
      for (size_t i = 0; i < plans_.size(); ++i) c.groupSet(i);  // outside the capture
    }
    cudaStream_t st = c.main;
    for (size_t i = 0; i < plans_.size(); ++i) {
      CANOPY_CUDA(cudaMemcpyAsync(plans_[i]->q.ptr, queries_[i].data(), queries_[i].size() * sizeof(float),
                                  cudaMemcpyHostToDevice, st));
    }
    cudaGraph_t g = nullptr;
    CANOPY_CUDA(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    try {
      if (concurrent_) {
        CANOPY_CUDA(cudaEventRecord(c.groupFork, st));
        for (size_t i = 0; i < plans_.size(); ++i) {
          StreamSet& set = *c.group[i];
          CANOPY_CUDA(cudaStreamWaitEvent(set.main, c.groupFork, 0));
          plans_[i]->enqueue(strategy_, set);
          CANOPY_CUDA(cudaEventRecord(set.done, set.main));
        }
        for (size_t i = 0; i < plans_.size(); ++i) CANOPY_CUDA(cudaStreamWaitEvent(st, c.group[i]->done, 0));
      } else {
        for (auto& p : plans_) p->enqueue(strategy_, c.base);
      }
    } catch (...) {
      cudaStreamEndCapture(st, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    CANOPY_CUDA(cudaStreamEndCapture(st, &g));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    CANOPY_CUDA(err);
    try {
      times_ = timeGraphReplays(exec, st, warmup_, iters_);
    } catch (...) {
      cudaGraphExecDestroy(exec);
      throw;
    }
    cudaGraphExecDestroy(exec);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Float64Array t = Napi::Float64Array::New(env, times_.size());
    std::copy(times_.begin(), times_.end(), t.Data());
    return t;
  }

 private:
  std::vector<std::shared_ptr<PlanState>> plans_;
  std::vector<std::vector<float>> queries_;
  Strategy strategy_;
  bool concurrent_;
  int warmup_, iters_;
  std::vector<double> times_;
};

class ProbeWorker : public TaskWorker {
 public:
  ProbeWorker(Napi::Env env, std::shared_ptr<ContextCore> core) : TaskWorker(env, std::move(core)) {}

 protected:
  void Work() override {
    const int sms = core_->prop.multiProcessorCount;
    gbs_ = probeReadBandwidth(size_t(1) << 30, sms);
    tflops_ = probeMmaTflops(sms);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    r.Set("readBandwidthGBs", gbs_);
    r.Set("peakTflops", tflops_);
    r.Set("peakUnits", "mma.sync m16n8k16 fp16→f32 (tensor cores)");
    return r;
  }

 private:
  double gbs_ = 0, tflops_ = 0;
};

// ---------------------------------------------------------------------------------------------
// JS classes

class PlanHandle : public Napi::ObjectWrap<PlanHandle> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "PlanHandle", {InstanceMethod("dispose", &PlanHandle::Dispose)});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }
  PlanHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PlanHandle>(info) {}
  std::shared_ptr<PlanState> state;

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (state) {
      std::lock_guard<std::mutex> lock(state->core->mu);
      if (!state->freed) {
        cudaSetDevice(state->core->device);
        state->freeLocked();
      }
    }
    return info.Env().Undefined();
  }
};
Napi::FunctionReference* PlanHandle::ctor = nullptr;

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Context",
                       {InstanceMethod("info", &Context::Info), InstanceMethod("setKvCache", &Context::SetKvCache),
                        InstanceMethod("createPlan", &Context::CreatePlan), InstanceMethod("run", &Context::Run),
                        InstanceMethod("time", &Context::Time), InstanceMethod("timeGroup", &Context::TimeGroup),
                        InstanceMethod("probe", &Context::Probe),
                        InstanceMethod("dispose", &Context::Dispose)});
  }

  Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {
    const int dev = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
    core_ = std::make_shared<ContextCore>();
    try {
      core_->init(dev);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

 private:
  std::shared_ptr<ContextCore> core_;

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("name", std::string(core_->prop.name));
    r.Set("description", deviceDescription(*core_));
    r.Set("smCount", core_->prop.multiProcessorCount);
    r.Set("l2Bytes", core_->prop.l2CacheSize);
    r.Set("totalGlobalMem", double(core_->prop.totalGlobalMem));
    r.Set("ccMajor", core_->prop.major);
    r.Set("ccMinor", core_->prop.minor);
    r.Set("smemPerBlockOptin", double(core_->prop.sharedMemPerBlockOptin));
    int memClockKhz = 0, busBits = 0;
    cudaDeviceGetAttribute(&memClockKhz, cudaDevAttrMemoryClockRate, core_->device);
    cudaDeviceGetAttribute(&busBits, cudaDevAttrGlobalMemoryBusWidth, core_->device);
    // DDR: two transfers per clock.
    r.Set("theoreticalBandwidthGBs", 2.0 * memClockKhz * 1e3 * (busBits / 8.0) / 1e9);
    return r;
  }

  Napi::Value SetKvCache(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[0].IsTypedArray() || !info[1].IsTypedArray()) {
      throw Napi::TypeError::New(env, "setKvCache(k, v, numPages, pageSize, numKvHeads, headDim)");
    }
    auto k = info[0].As<Napi::TypedArray>();
    auto v = info[1].As<Napi::TypedArray>();
    if (k.ByteLength() != v.ByteLength()) throw Napi::RangeError::New(env, "K and V pools differ in size");
    auto* w = new SetKvWorker(env, core_, k, v, info[2].As<Napi::Number>().Int32Value(),
                              info[3].As<Napi::Number>().Int32Value(), info[4].As<Napi::Number>().Int32Value(),
                              info[5].As<Napi::Number>().Int32Value());
    Napi::Promise pr = w->Promise();
    w->Queue();
    return pr;
  }

  // createPlan(desc): desc holds the host-prepared arrays (see src/prepare.ts). Uploads once.
  Napi::Value CreatePlan(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "createPlan(desc)");
    Napi::Object d = info[0].As<Napi::Object>();
    auto st = std::make_shared<PlanState>();
    st->core = core_;
    st->numQueries = getInt(d, "numQueries");
    st->numQoHeads = getInt(d, "numQoHeads");
    st->headDim = getInt(d, "headDim");
    st->group = getInt(d, "group");
    st->numPartials = getInt(d, "numPartials");
    st->scaleLog2 = d.Get("scaleLog2").As<Napi::Number>().FloatValue();
    st->maxRg = getInt(d, "maxRg");
    auto gc = copyTyped<int32_t>(d.Get("groupCount"), "groupCount");
    for (int i = 0; i < 4 && i < int(gc.size()); ++i) st->groupCount[i] = gc[i];
    st->wgmma = d.Get("wgmma").ToBoolean().Value();
    st->rg1Tile = d.Get("tinyRg1").ToBoolean().Value()    ? kRg1Tiny
                  : d.Get("shortRg1").ToBoolean().Value() ? kRg1Short
                                                          : kRg1Default;
    auto wg = copyTyped<int32_t>(d.Get("workGrouped"), "workGrouped");
    auto ws = copyTyped<int32_t>(d.Get("workSorted"), "workSorted");
    if (wg.size() != ws.size() || wg.size() % kPlanWorkUnitInts) throw Napi::RangeError::New(env, "work lists differ");
    st->numWork = int(wg.size() / kPlanWorkUnitInts);
    // Persistent families: units whose tile kernel has the same warp count share a grid. The
    // split is derived here from the kernels' own table (never trusted from the caller): a stable
    // partition of the longest-first list, the family of the longest unit first.
    if (st->numWork > 0) {
      const int w0 = attnWarpsFor(st->headDim, ws[3]);
      std::vector<int32_t> first, second;
      for (int u = 0; u < st->numWork; ++u) {
        auto& dst = attnWarpsFor(st->headDim, ws[u * kPlanWorkUnitInts + 3]) == w0 ? first : second;
        dst.insert(dst.end(), ws.begin() + u * kPlanWorkUnitInts, ws.begin() + (u + 1) * kPlanWorkUnitInts);
      }
      st->numFirst = int(first.size() / kPlanWorkUnitInts);
      st->firstWarps = w0;
      first.insert(first.end(), second.begin(), second.end());
      ws.swap(first);
    }
    Napi::Value ff = d.Get("fusedComputeFraction");
    const double fusedFraction = ff.IsNumber() ? std::min(1.0, std::max(0.0, ff.As<Napi::Number>().DoubleValue())) : 0.5;
    auto mq = copyTyped<int32_t>(d.Get("mergeQueries"), "mergeQueries");
    st->numMergeQueries = int(mq.size());
    auto itemTokBegin = copyTyped<int32_t>(d.Get("itemTokBegin"), "itemTokBegin");
    auto itemPos = copyTyped<int32_t>(d.Get("itemPos"), "itemPos");
    auto itemQueryBegin = copyTyped<int32_t>(d.Get("itemQueryBegin"), "itemQueryBegin");
    auto itemQueries = copyTyped<int32_t>(d.Get("itemQueries"), "itemQueries");
    auto itemPartialBase = copyTyped<int32_t>(d.Get("itemPartialBase"), "itemPartialBase");
    auto mergeBegin = copyTyped<int32_t>(d.Get("mergeBegin"), "mergeBegin");
    auto mergeSlots = copyTyped<int32_t>(d.Get("mergeSlots"), "mergeSlots");
    std::vector<int32_t> wgUnits, wsUnits, mergeRecords;
    try {
      wgUnits = expandWork(wg, itemTokBegin, itemPos, itemQueryBegin, itemQueries, itemPartialBase);
      wsUnits = expandWork(ws, itemTokBegin, itemPos, itemQueryBegin, itemQueries, itemPartialBase);
      mergeRecords = mergeQueryRecords(mq, mergeBegin, mergeSlots);
    } catch (const std::exception& e) {
      throw Napi::RangeError::New(env, e.what());
    }
    {
      std::lock_guard<std::mutex> lock(core_->mu);
      try {
        core_->ensureLive();
        CANOPY_CUDA(cudaSetDevice(core_->device));
        // The per-item ranges travel inside each work unit (expandWork); the kernels still read
        // the item's query ids (when not consecutive) and page-table rows from these arrays.
        upload(st->tokRow, copyTyped<int32_t>(d.Get("tokRow"), "tokRow"));
        upload(st->itemQueries, itemQueries);
        upload(st->queryKvLimit, copyTyped<int32_t>(d.Get("queryKvLimit"), "queryKvLimit"));
        upload(st->slotDest, copyTyped<int32_t>(d.Get("slotDest"), "slotDest"));
        upload(st->mergeSlots, mergeSlots);
        upload(st->mergeQueries, mergeRecords);
        upload(st->workGrouped, wgUnits);
        upload(st->workSorted, wsUnits);
        st->counter.alloc(2 * sizeof(int));
        const size_t rowsQ = size_t(st->numQueries) * st->numQoHeads;
        const size_t rowsP = size_t(st->numPartials) * st->numQoHeads;
        st->q.alloc(rowsQ * st->headDim * sizeof(float));
        st->out.alloc(rowsQ * st->headDim * sizeof(float));
        st->outLse.alloc(rowsQ * sizeof(float));
        st->partO.alloc(rowsP * st->headDim * sizeof(float));
        st->partLse.alloc(rowsP * sizeof(float));
        // Both families get full-chip grids: sizing them by estimated work share measured slower
        // (docs/benchmarks/cuda-h100-v7-*.json), the hardware interleaves the two grids' CTAs.
        const int sms = core_->prop.multiProcessorCount;
        st->persistentGrid[0] = attnPersistentBlocksPerSm(st->headDim, st->firstWarps, st->wgmma) * sms;
        st->persistentGrid[1] = attnPersistentBlocksPerSm(st->headDim, 12 - st->firstWarps, st->wgmma) * sms;
        st->fusedOk = attnFusedSupported(st->headDim);
        if (st->fusedOk) {
          st->fusedCounters.alloc((4 + kFusedSmSlots) * sizeof(int));
          const int perSm = attnFusedBlocksPerSm(st->headDim);
          const int grid = perSm * sms;
          const int n8 = st->firstWarps == 8 ? st->numFirst : st->numWork - st->numFirst;
          const int n4 = st->numWork - n8;
          // CTAs that start in the compute role: the host's compute share, at least one of
          // each role while both lists have units (stealing evens out the estimate's error).
          int nc = int(std::lround(fusedFraction * grid));
          if (n8 == 0) nc = 0;
          else if (n4 == 0) nc = grid;
          else nc = std::min(std::max(nc, 1), grid - 1);
          st->fusedGrid = grid;
          st->fusedQuota[0] = std::min(nc, sms);  // slot 0 of each SM first: one CTA of each role per SM
          st->fusedQuota[1] = nc - st->fusedQuota[0];
        }
        // Outputs and partials start poisoned (NaN) so anything a plan fails to write shows.
        CANOPY_CUDA(cudaMemset(st->out.ptr, 0xff, st->out.bytes));
        CANOPY_CUDA(cudaMemset(st->outLse.ptr, 0xff, st->outLse.bytes));
        core_->plans.insert(st.get());
      } catch (const std::exception& e) {
        st->freeLocked();
        throw Napi::Error::New(env, e.what());
      }
    }
    Napi::Object h = PlanHandle::ctor->New({});
    PlanHandle::Unwrap(h)->state = st;
    return h;
  }

  std::shared_ptr<PlanState> planArg(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "expected a plan handle");
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.InstanceOf(PlanHandle::ctor->Value())) throw Napi::TypeError::New(info.Env(), "expected a plan handle");
    return PlanHandle::Unwrap(o)->state;
  }

  // run(plan, queries, strategy, timing) → Promise<{ out, lse, deviceTimeUs? }>
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto plan = planArg(info);
    auto q = copyTyped<float>(info[1], "queries");
    if (q.size() != size_t(plan->numQueries) * plan->numQoHeads * plan->headDim) {
      throw Napi::RangeError::New(env, "queries length does not match the plan");
    }
    const Strategy s = strategyArg(info[2]);
    const bool timing = info.Length() > 3 && info[3].ToBoolean().Value();
    auto* w = new RunWorker(env, core_, plan, std::move(q), s, timing, 0, 0);
    Napi::Promise pr = w->Promise();
    w->Queue();
    return pr;
  }

  // time(plan, queries, strategy, warmup, iters) → Promise<Float64Array> (µs per iteration)
  Napi::Value Time(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto plan = planArg(info);
    auto q = copyTyped<float>(info[1], "queries");
    if (q.size() != size_t(plan->numQueries) * plan->numQoHeads * plan->headDim) {
      throw Napi::RangeError::New(env, "queries length does not match the plan");
    }
    const Strategy s = strategyArg(info[2]);
    const int warmup = std::max(0, info[3].As<Napi::Number>().Int32Value());
    const int iters = std::max(1, info[4].As<Napi::Number>().Int32Value());
    auto* w = new RunWorker(env, core_, plan, std::move(q), s, false, warmup, iters);
    Napi::Promise pr = w->Promise();
    w->Queue();
    return pr;
  }

  // timeGroup(plans[], queries[], strategy, concurrent, warmup, iters) → Promise<Float64Array>
  Napi::Value TimeGroup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[0].IsArray() || !info[1].IsArray()) {
      throw Napi::TypeError::New(env, "timeGroup(plans, queries, strategy, concurrent, warmup, iters)");
    }
    Napi::Array hs = info[0].As<Napi::Array>();
    Napi::Array qs = info[1].As<Napi::Array>();
    if (hs.Length() == 0 || hs.Length() != qs.Length()) throw Napi::RangeError::New(env, "timeGroup: one query tensor per plan, at least one plan");
    const bool concurrent = info[3].ToBoolean().Value();
    if (concurrent && hs.Length() > size_t(kMaxGroup)) {
      throw Napi::RangeError::New(env, "timeGroup: at most " + std::to_string(kMaxGroup) + " concurrent plans");
    }
    std::vector<std::shared_ptr<PlanState>> plans;
    std::vector<std::vector<float>> queries;
    for (uint32_t i = 0; i < hs.Length(); ++i) {
      Napi::Value h = hs.Get(i);
      if (!h.IsObject() || !h.As<Napi::Object>().InstanceOf(PlanHandle::ctor->Value())) {
        throw Napi::TypeError::New(env, "timeGroup: plans[" + std::to_string(i) + "] is not a plan handle");
      }
      auto p = PlanHandle::Unwrap(h.As<Napi::Object>())->state;
      for (auto& o : plans) {
        // One handle twice would share its buffers and counters between two executions.
        if (o == p) throw Napi::RangeError::New(env, "timeGroup: plan handle " + std::to_string(i) + " appears twice");
      }
      auto q = copyTyped<float>(qs.Get(i), "queries");
      if (q.size() != size_t(p->numQueries) * p->numQoHeads * p->headDim) {
        throw Napi::RangeError::New(env, "timeGroup: queries[" + std::to_string(i) + "] length does not match its plan");
      }
      plans.push_back(std::move(p));
      queries.push_back(std::move(q));
    }
    const Strategy s = strategyArg(info[2]);
    const int warmup = std::max(0, info[4].As<Napi::Number>().Int32Value());
    const int iters = std::max(1, info[5].As<Napi::Number>().Int32Value());
    auto* w = new GroupWorker(env, core_, std::move(plans), std::move(queries), s, concurrent, warmup, iters);
    Napi::Promise pr = w->Promise();
    w->Queue();
    return pr;
  }

  Napi::Value Probe(const Napi::CallbackInfo& info) {
    auto* w = new ProbeWorker(info.Env(), core_);
    Napi::Promise pr = w->Promise();
    w->Queue();
    return pr;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->releaseLocked();
    return info.Env().Undefined();
  }
};

// probeDevices(): whether a usable device exists, with CUDA's error text when not.
Napi::Value ProbeDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  r.Set("runtimeVersion", runtime);
  if (err != cudaSuccess) {
    r.Set("ok", false);
    r.Set("count", 0);
    r.Set("reason", std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(err) + ": " +
                        cudaGetErrorString(err));
    cudaGetLastError();  // clear the sticky-free error so later calls report their own
    return r;
  }
  if (count == 0) {
    r.Set("ok", false);
    r.Set("count", 0);
    r.Set("reason", "no CUDA device found (cudaGetDeviceCount returned 0)");
    return r;
  }
  cudaDeviceProp prop{};
  const cudaError_t e2 = cudaGetDeviceProperties(&prop, 0);
  if (e2 != cudaSuccess) {
    r.Set("ok", false);
    r.Set("count", count);
    r.Set("reason", std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(e2));
    return r;
  }
  r.Set("count", count);
  r.Set("name", std::string(prop.name));
  r.Set("ccMajor", prop.major);
  r.Set("ccMinor", prop.minor);
  r.Set("smCount", prop.multiProcessorCount);
  if (prop.major < 9) {
    r.Set("ok", false);
    r.Set("reason", std::string("device ") + prop.name + " has compute capability " +
                        std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                        "; the kernels are built for sm_90 (Hopper) and newer");
    return r;
  }
  r.Set("ok", true);
  return r;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probeDevices", Napi::Function::New(env, ProbeDevices));
  exports.Set("Context", Context::Init(env));
  exports.Set("PlanHandle", PlanHandle::Init(env));
  exports.Set("abiVersion", Napi::Number::New(env, 2));  // = ADDON_ABI in src/loader.ts
  return exports;
}

}  // namespace
}  // namespace canopy

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return canopy::Init(env, exports); }

NODE_API_MODULE(canopy_cuda, InitModule)
