// A weak value cache shared by threads, in the same run:
//   ConcurrentWeakValueDictionary<uint64_t, V>  (sharded; get: a per-thread reader slot)
//   std::unordered_map<uint64_t, std::weak_ptr<V>> + std::shared_mutex  (get: shared)
//   std::unordered_map<uint64_t, std::weak_ptr<V>> + std::mutex
// with 1 and 2 threads, on two workloads over 4096 live values picked at
// random per operation:
//   read_mostly: 95% get (and a read of the value), 5% set of the same value;
//   mixed:       50% get, 50% set;
//   read_own:    95% get, 5% set, each thread on its own half of the keys
//                (halves, not odd and even: values made one after the other
//                share cache lines): the values' count lines are not
//                shared, so what the threads share is the structure alone
//                (the shards, the lock words).
// In read_mostly, a get returns a strong reference: both threads update the
// counts of the same 4096 values, and each such update may wait for the
// value's cache line to come from the other core, whatever the structure
// around it does (std's weak_ptr::lock as this library's get). read_own
// takes that away and shows the structure's own scaling.
// Each benchmark counts items (operations) over all its threads: with
// UseRealTime, items_per_second is the throughput of the whole run, so
// threads:2 / threads:1 is the scaling (2.0 = perfect on 2 cores).
//
// CPU is the CPU time per operation of each thread: when it grows from
// threads:1 to threads:2, the threads are slowing each other down (a lock
// word or line bouncing between the cores). Real time is only meaningful on
// an otherwise idle machine (on a loaded one, threads wait for a core).
//
// Run: build/bench/bench/bench_concurrent_cache --benchmark_repetitions=5
//        --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// (Built with the others: bench/CMakeLists.txt builds every bench_*.cpp.)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>
#include <weakref/weakref.hpp>

namespace {

constexpr std::uint64_t kKeys = 4096;

struct Value {
  std::uint64_t payload;
  explicit Value(std::uint64_t p) : payload(p) {}
};

// xorshift64*: per thread, no shared state.
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  std::uint64_t operator()() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
};

struct Weakref {
  std::vector<weakref::Strong<Value>> values;
  weakref::ConcurrentWeakValueDictionary<std::uint64_t, Value> d;
  Weakref() {
    for (std::uint64_t k = 0; k < kKeys; ++k) {
      values.push_back(weakref::make<Value>(k));
      d.set(k, values.back());
    }
  }
  std::uint64_t get(std::uint64_t k) const {
    weakref::Strong<Value> v = d.get(k);
    return v ? v->payload : 0;
  }
  void set(std::uint64_t k) { d.set(k, values[k]); }
};

template <class Mutex, bool kShared>
struct StdMap {
  std::vector<std::shared_ptr<Value>> values;
  std::unordered_map<std::uint64_t, std::weak_ptr<Value>> map;
  mutable Mutex m;
  StdMap() {
    for (std::uint64_t k = 0; k < kKeys; ++k) {
      values.push_back(std::make_shared<Value>(k));
      map[k] = values.back();
    }
  }
  std::uint64_t get(std::uint64_t k) const {
    std::shared_ptr<Value> v;
    {
      auto lock = [&] {
        if constexpr (kShared)
          return std::shared_lock<Mutex>(m);
        else
          return std::unique_lock<Mutex>(m);
      }();
      auto it = map.find(k);
      if (it != map.end()) v = it->second.lock();
    }
    return v ? v->payload : 0;
  }
  void set(std::uint64_t k) {
    std::weak_ptr<Value> w = values[k];
    std::unique_lock<Mutex> lock(m);
    map[k] = std::move(w);
  }
};
using StdSharedMutex = StdMap<std::shared_mutex, true>;
using StdMutex = StdMap<std::mutex, false>;

// One instance per type for the whole run, built before any thread uses it
// (function-local static: thread-safe initialization), never destroyed.
template <class Impl>
Impl& instance() {
  static Impl* impl = new Impl;
  return *impl;
}

template <class Impl, int kReadPercent, bool kOwnKeys = false>
void BM_cache(benchmark::State& state) {
  Impl& impl = instance<Impl>();
  Rng rng(static_cast<std::uint64_t>(state.thread_index()) + 1);
  const auto lane = static_cast<std::uint64_t>(state.thread_index()) & 1;
  for (auto _ : state) {
    const std::uint64_t r = rng();
    const std::uint64_t k = kOwnKeys ? lane * (kKeys / 2) + r % (kKeys / 2) : r % kKeys;
    if (static_cast<int>((r >> 32) % 100) < kReadPercent)
      benchmark::DoNotOptimize(impl.get(k));
    else
      impl.set(k);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

#define WEAKREF_CACHE_BENCH(Impl, ...) \
  BENCHMARK_TEMPLATE(BM_cache, Impl, __VA_ARGS__)->Threads(1)->Threads(2)->UseRealTime()

// read_mostly
WEAKREF_CACHE_BENCH(Weakref, 95);
WEAKREF_CACHE_BENCH(StdSharedMutex, 95);
WEAKREF_CACHE_BENCH(StdMutex, 95);
// mixed
WEAKREF_CACHE_BENCH(Weakref, 50);
WEAKREF_CACHE_BENCH(StdSharedMutex, 50);
WEAKREF_CACHE_BENCH(StdMutex, 50);
// read_own
WEAKREF_CACHE_BENCH(Weakref, 95, true);
WEAKREF_CACHE_BENCH(StdSharedMutex, 95, true);
WEAKREF_CACHE_BENCH(StdMutex, 95, true);

}  // namespace

BENCHMARK_MAIN();
