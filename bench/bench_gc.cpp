// The collector on the three shapes of issue 4, timed around gc::collect()
// only (manual time), plus build+drop+collect, a chain of ephemerons
// (WeakKeyDictionary entries, issue 15) next to them, and the same shapes
// in a SharedHeap (issue 14: BM_gc_shared_heap_*, collected by
// SharedHeap::collect, next to the thread-owned heap's rows). bench/gc_vs_cpython.py runs
// this program and the same shapes in CPython and prints both.
//   build/bench/bench/bench_gc [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <chrono>
#include <mutex>
#include <vector>
#include <weakref/weakref.hpp>

namespace {

struct GNode {
  weakref::Strong<GNode> next;
  void trace(weakref::gc::Visitor& v) { v(next); }
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// N objects in N/2 two-cycles, all garbage.
void build_cycles(long n) {
  for (long i = 0; i < n / 2; ++i) {
    auto a = weakref::make<GNode>();
    auto b = weakref::make<GNode>();
    a->next = b;
    b->next = a;
  }
}

// An N-node list whose last node points back to the first, all garbage.
void build_list_cycle(long n) {
  auto head = weakref::make<GNode>();
  GNode* tail = head.get();
  for (long i = 1; i < n; ++i) {
    tail->next = weakref::make<GNode>();
    tail = tail->next.get();
  }
  tail->next = head;
}

// Built into `shared` (holding it) and collected by shared->collect() when
// it is given; else the thread's own heap and gc::collect().
template <class Build>
void run_garbage(benchmark::State& state, Build build, bool include_build,
                 weakref::SharedHeap* shared = nullptr) {
  const long n = state.range(0);
  weakref::gc::disable();
  weakref::gc::collect();
  for (auto _ : state) {
    auto t0 = Clock::now();
    if (shared) {
      std::lock_guard<weakref::SharedHeap> lock(*shared);
      build(n);
    } else {
      build(n);
    }
    auto t1 = Clock::now();
    std::size_t found = shared ? shared->collect() : weakref::gc::collect();
    double collect_s = seconds_since(t1);
    double total_s = seconds_since(t0);
    if (found != static_cast<std::size_t>(n)) state.SkipWithError("wrong count");
    state.SetIterationTime(include_build ? total_s : collect_s);
  }
  state.counters["objects_per_second"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  weakref::gc::enable();
}

void BM_gc_cycles_garbage(benchmark::State& s) { run_garbage(s, build_cycles, false); }
void BM_gc_list_cycle(benchmark::State& s) { run_garbage(s, build_list_cycle, false); }
void BM_total_cycles_garbage(benchmark::State& s) { run_garbage(s, build_cycles, true); }
void BM_total_list_cycle(benchmark::State& s) { run_garbage(s, build_list_cycle, true); }
void BM_gc_shared_heap_cycles_garbage(benchmark::State& s) {
  weakref::SharedHeap heap;
  run_garbage(s, build_cycles, false, &heap);
}
void BM_gc_shared_heap_list_cycle(benchmark::State& s) {
  weakref::SharedHeap heap;
  run_garbage(s, build_list_cycle, false, &heap);
}

// N live tracked objects, nothing to free: a full collection's scan (of
// `shared`, when given: made into it, collected by shared->collect()).
void run_live(benchmark::State& state, weakref::SharedHeap* shared) {
  const long n = state.range(0);
  weakref::gc::disable();
  std::vector<weakref::Strong<GNode>> live;
  live.reserve(static_cast<std::size_t>(n));
  {
    std::unique_lock<weakref::SharedHeap> lock;
    if (shared) lock = std::unique_lock<weakref::SharedHeap>(*shared);
    for (long i = 0; i < n; ++i) live.push_back(weakref::make<GNode>());
    for (long i = 1; i < n; i += 2)
      live[static_cast<std::size_t>(i)]->next = live[static_cast<std::size_t>(i - 1)];
  }
  weakref::gc::collect();
  if (shared) shared->collect();
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::size_t found = shared ? shared->collect() : weakref::gc::collect();
    state.SetIterationTime(seconds_since(t0));
    if (found != 0) state.SkipWithError("live objects collected");
  }
  state.counters["objects_per_second"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  live.clear();
  weakref::gc::enable();
}
void BM_gc_live(benchmark::State& state) { run_live(state, nullptr); }
void BM_gc_shared_heap_live(benchmark::State& state) {
  weakref::SharedHeap heap;
  run_live(state, &heap);
}

// Ephemerons (issue 15): a traced table holding a WeakKeyDictionary of N
// entries whose value refers to the next entry's key, a chain the collector
// resolves key by key. Timed around gc::collect() only, next to the plain
// shapes above (BM_gc_list_cycle: N garbage objects, BM_gc_live: N live).
struct ETable {
  weakref::WeakKeyDictionary<GNode, weakref::Strong<GNode>> d;
  void trace(weakref::gc::Visitor& v) { v(d); }
};

// Key i's value is key i-1 (key 0's is the last key): the keys are listed
// in the order 0..N-1, so with the last key held from outside every key is
// first thought unreachable, then found reachable through the previous
// one's value (moved back from the unreachable list): the worst order.
std::vector<weakref::Strong<GNode>> build_ephemeron_chain(ETable& t, long n) {
  std::vector<weakref::Strong<GNode>> keys;
  keys.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) keys.push_back(weakref::make<GNode>());
  for (long i = 0; i < n; ++i)
    t.d.set(keys[static_cast<std::size_t>(i)], keys[static_cast<std::size_t>((i + n - 1) % n)]);
  return keys;
}

// N entries, all garbage (every key reachable only through values).
void BM_gc_ephemeron_chain_garbage(benchmark::State& state) {
  const long n = state.range(0);
  weakref::gc::disable();
  weakref::gc::collect();
  auto t = weakref::make<ETable>();
  for (auto _ : state) {
    build_ephemeron_chain(*t, n);  // the keys' own references go here
    auto t0 = Clock::now();
    std::size_t found = weakref::gc::collect();
    state.SetIterationTime(seconds_since(t0));
    if (found != static_cast<std::size_t>(n)) state.SkipWithError("wrong count");
    t->d.prune();
  }
  state.counters["objects_per_second"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  weakref::gc::enable();
}

// The same chain kept alive by its last key: every entry resolved, nothing
// freed (the table is in the young generation again at each collection).
void BM_gc_ephemeron_chain_live(benchmark::State& state) {
  const long n = state.range(0);
  weakref::gc::disable();
  weakref::gc::collect();
  auto t = weakref::make<ETable>();
  weakref::Strong<GNode> last = build_ephemeron_chain(*t, n).back();
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::size_t found = weakref::gc::collect();
    state.SetIterationTime(seconds_since(t0));
    if (found != 0 || t->d.size() != static_cast<std::size_t>(n))
      state.SkipWithError("live entries collected");
  }
  state.counters["objects_per_second"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  last.reset();
  weakref::gc::collect();
  weakref::gc::enable();
}

// The common case: N entries whose keys are held from outside (a vector),
// each value referring to its key. The values' references cost as ordinary
// ones: nothing waits for a key known to be reachable.
void BM_gc_ephemeron_keys_held(benchmark::State& state) {
  const long n = state.range(0);
  weakref::gc::disable();
  weakref::gc::collect();
  auto t = weakref::make<ETable>();
  std::vector<weakref::Strong<GNode>> keys;
  keys.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) {
    keys.push_back(weakref::make<GNode>());
    t->d.set(keys.back(), keys.back());
  }
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::size_t found = weakref::gc::collect();
    state.SetIterationTime(seconds_since(t0));
    if (found != 0) state.SkipWithError("live entries collected");
  }
  state.counters["objects_per_second"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  keys.clear();
  weakref::gc::collect();
  weakref::gc::enable();
}

constexpr long kMillion = 1'000'000;
// Every benchmark: a timed collection of a heap of `state.range(0)` objects
// (manual time, milliseconds); by default, a million.
void collection(benchmark::internal::Benchmark* b) {
  b->UseManualTime()->Unit(benchmark::kMillisecond);
}
void million_objects(benchmark::internal::Benchmark* b) { collection(b->Arg(kMillion)); }
BENCHMARK(BM_gc_cycles_garbage)->Apply(million_objects);
BENCHMARK(BM_gc_live)->Apply(million_objects);
BENCHMARK(BM_gc_list_cycle)->Apply(million_objects);
BENCHMARK(BM_total_cycles_garbage)->Apply(million_objects);
BENCHMARK(BM_total_list_cycle)->Apply(million_objects);
BENCHMARK(BM_gc_shared_heap_cycles_garbage)->Apply(million_objects);
BENCHMARK(BM_gc_shared_heap_live)->Apply(million_objects);
BENCHMARK(BM_gc_shared_heap_list_cycle)->Apply(million_objects);
BENCHMARK(BM_gc_ephemeron_chain_garbage)->Apply(million_objects);
BENCHMARK(BM_gc_ephemeron_chain_live)->Apply(million_objects);
BENCHMARK(BM_gc_ephemeron_keys_held)->Apply(million_objects);
// Linearity: the time per live object must not grow with the heap.
BENCHMARK(BM_gc_ephemeron_chain_live)->Arg(kMillion / 4)->Arg(4 * kMillion)->Apply(collection);
BENCHMARK(BM_gc_live)
    ->Arg(kMillion / 4)
    ->Arg(kMillion / 2)
    ->Arg(2 * kMillion)
    ->Arg(4 * kMillion)
    ->Apply(collection);

}  // namespace

BENCHMARK_MAIN();
