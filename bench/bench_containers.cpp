// The weak containers against hand-rolled std equivalents, in the same run:
//   WeakValueDictionary<int, V>  vs  std::unordered_map<int, std::weak_ptr<V>> + lock()
//   WeakSet<V>                   vs  std::unordered_set<V*>
// and their memory per entry (BM_memory_*: counters, one iteration each).
//
// Run: build/bench/bench/bench_containers
//      bench/cpython_containers.py puts the memory figures next to CPython's.
//
// Memory is counted net (in use after minus before), in two parts: a
// replaced global operator new (new_bytes_per_entry: the tables, std's nodes)
// and the library's small-block pages, where weakref objects and side tables
// live (weakref::detail::pool_committed_bytes(), 64 KiB pages in use; they do
// not come from operator new). bytes_per_entry, their sum, is the figure to
// compare with CPython's tracemalloc.
#include <benchmark/benchmark.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <numeric>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <weakref/detail/alloc_stats.hpp>
#include <weakref/weakref.hpp>

// -- Counting operator new (only while g_counting is set) -----------------------

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long long> g_new_bytes{0};  // net: allocated minus freed

void count(void* p, long long sign) {
  if (p && g_counting.load(std::memory_order_relaxed))
    g_new_bytes.fetch_add(sign * static_cast<long long>(malloc_usable_size(p)),
                          std::memory_order_relaxed);
}
void* counted_new(std::size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  count(p, 1);
  return p;
}
void* counted_new_aligned(std::size_t n, std::align_val_t a) {
  const std::size_t al = static_cast<std::size_t>(a);
  void* p = std::aligned_alloc(al, (n + al - 1) / al * al);
  if (!p) throw std::bad_alloc();
  count(p, 1);
  return p;
}
void counted_delete(void* p) noexcept {
  count(p, -1);
  std::free(p);
}
}  // namespace

void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void operator delete(void* p) noexcept { counted_delete(p); }
void operator delete[](void* p) noexcept { counted_delete(p); }
void operator delete(void* p, std::size_t) noexcept { counted_delete(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_delete(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_delete(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_delete(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_delete(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_delete(p); }

namespace {

struct Payload {
  long value = 1;
};

// Lookups walk a random permutation of the keys (a power-of-two table of
// them, so the index is a mask).
std::vector<int> lookup_order(int n) {
  std::vector<int> keys(static_cast<std::size_t>(n));
  std::iota(keys.begin(), keys.end(), 0);
  std::mt19937 rng(42);
  std::shuffle(keys.begin(), keys.end(), rng);
  std::vector<int> order(std::bit_ceil(static_cast<std::size_t>(std::max(n, 1024))));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = keys[i % keys.size()];
  return order;
}

// -- WeakValueDictionary::get vs unordered_map<int, weak_ptr>::find + lock -----

void BM_wvd_get(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<weakref::Strong<Payload>> values;
  weakref::WeakValueDictionary<int, Payload> d;
  for (int i = 0; i < n; ++i) {
    values.push_back(weakref::make<Payload>());
    d.set(i, values.back());
  }
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  for (auto _ : state) {
    weakref::Strong<Payload> v = d.get(order[i++ & mask]);
    benchmark::DoNotOptimize(v.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_wvd_get)->Arg(1000)->Arg(100000);

void BM_std_weak_map_get(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::shared_ptr<Payload>> values;
  std::unordered_map<int, std::weak_ptr<Payload>> m;
  for (int i = 0; i < n; ++i) {
    values.push_back(std::make_shared<Payload>());
    m[i] = values.back();
  }
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = m.find(order[i++ & mask]);
    std::shared_ptr<Payload> v = it != m.end() ? it->second.lock() : nullptr;
    benchmark::DoNotOptimize(v.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_std_weak_map_get)->Arg(1000)->Arg(100000);

// Lookups whose value is then used (read), as a program would: the object's
// line is needed anyway (here it also holds the count a release reads).
void BM_wvd_get_use(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<weakref::Strong<Payload>> values;
  weakref::WeakValueDictionary<int, Payload> d;
  for (int i = 0; i < n; ++i) {
    values.push_back(weakref::make<Payload>());
    d.set(i, values.back());
  }
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  long sum = 0;
  for (auto _ : state) {
    if (weakref::Strong<Payload> v = d.get(order[i++ & mask])) sum += v->value;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_wvd_get_use)->Arg(1000)->Arg(100000);

void BM_std_weak_map_get_use(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::shared_ptr<Payload>> values;
  std::unordered_map<int, std::weak_ptr<Payload>> m;
  for (int i = 0; i < n; ++i) {
    values.push_back(std::make_shared<Payload>());
    m[i] = values.back();
  }
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  long sum = 0;
  for (auto _ : state) {
    auto it = m.find(order[i++ & mask]);
    if (it != m.end())
      if (std::shared_ptr<Payload> v = it->second.lock()) sum += v->value;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_std_weak_map_get_use)->Arg(1000)->Arg(100000);

// The same lookups on dead values (entries whose object died).
void BM_wvd_get_dead(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<weakref::Strong<Payload>> values;
  weakref::WeakValueDictionary<int, Payload> d;
  for (int i = 0; i < n; ++i) {
    values.push_back(weakref::make<Payload>());
    d.set(i, values.back());
  }
  values.clear();  // every entry gone; lookups miss
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(d.get(order[i++ & mask]).get());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_wvd_get_dead)->Arg(1000);

void BM_std_weak_map_get_dead(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::shared_ptr<Payload>> values;
  std::unordered_map<int, std::weak_ptr<Payload>> m;
  for (int i = 0; i < n; ++i) {
    values.push_back(std::make_shared<Payload>());
    m[i] = values.back();
  }
  values.clear();
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = m.find(order[i++ & mask]);
    benchmark::DoNotOptimize(it != m.end() ? it->second.lock().get() : nullptr);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_std_weak_map_get_dead)->Arg(1000);

// -- set: overwrite an existing key; insert n fresh keys -------------------------

void BM_wvd_set_overwrite(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<weakref::Strong<Payload>> values;
  weakref::WeakValueDictionary<int, Payload> d;
  for (int i = 0; i < n; ++i) {
    values.push_back(weakref::make<Payload>());
    d.set(i, values.back());
  }
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  for (auto _ : state) {
    const int k = order[i++ & mask];
    d.set(k, values[static_cast<std::size_t>(k)]);  // a new weakref, as Python
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_wvd_set_overwrite)->Arg(1000);

void BM_std_weak_map_set_overwrite(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::shared_ptr<Payload>> values;
  std::unordered_map<int, std::weak_ptr<Payload>> m;
  for (int i = 0; i < n; ++i) {
    values.push_back(std::make_shared<Payload>());
    m[i] = values.back();
  }
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  for (auto _ : state) {
    const int k = order[i++ & mask];
    m[k] = values[static_cast<std::size_t>(k)];
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_std_weak_map_set_overwrite)->Arg(1000);

// n insertions into an empty container, then its destruction.
void BM_wvd_insert(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<weakref::Strong<Payload>> values;
  for (int i = 0; i < n; ++i) values.push_back(weakref::make<Payload>());
  for (auto _ : state) {
    weakref::WeakValueDictionary<int, Payload> d;
    for (int i = 0; i < n; ++i) d.set(i, values[static_cast<std::size_t>(i)]);
    benchmark::DoNotOptimize(d.size());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_wvd_insert)->Arg(1000);

void BM_std_weak_map_insert(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::shared_ptr<Payload>> values;
  for (int i = 0; i < n; ++i) values.push_back(std::make_shared<Payload>());
  for (auto _ : state) {
    std::unordered_map<int, std::weak_ptr<Payload>> m;
    for (int i = 0; i < n; ++i) m[i] = values[static_cast<std::size_t>(i)];
    benchmark::DoNotOptimize(m.size());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_std_weak_map_insert)->Arg(1000);

// -- WeakSet vs unordered_set of raw pointers ---------------------------------------

void BM_weakset_contains(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<weakref::Strong<Payload>> objs;
  weakref::WeakSet<Payload> s;
  for (int i = 0; i < n; ++i) {
    objs.push_back(weakref::make<Payload>());
    s.add(objs.back());
  }
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(s.contains(objs[static_cast<std::size_t>(order[i++ & mask])]));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_weakset_contains)->Arg(1000)->Arg(100000);

void BM_std_set_contains(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::unique_ptr<Payload>> objs;
  std::unordered_set<Payload*> s;
  for (int i = 0; i < n; ++i) {
    objs.push_back(std::make_unique<Payload>());
    s.insert(objs.back().get());
  }
  const std::vector<int> order = lookup_order(n);
  const std::size_t mask = order.size() - 1;
  std::size_t i = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(s.count(objs[static_cast<std::size_t>(order[i++ & mask])].get()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_std_set_contains)->Arg(1000)->Arg(100000);

// n adds into an empty set, then its destruction. The objects already have a
// side table (made once, before timing), as they would in a program that
// adds them to several sets.
void BM_weakset_add(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<weakref::Strong<Payload>> objs;
  std::vector<weakref::ref<Payload>> basic;
  for (int i = 0; i < n; ++i) {
    objs.push_back(weakref::make<Payload>());
    basic.emplace_back(objs.back());
  }
  for (auto _ : state) {
    weakref::WeakSet<Payload> s;
    for (const auto& o : objs) s.add(o);
    benchmark::DoNotOptimize(s.size());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_weakset_add)->Arg(1000);

void BM_std_set_add(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::unique_ptr<Payload>> objs;
  for (int i = 0; i < n; ++i) objs.push_back(std::make_unique<Payload>());
  for (auto _ : state) {
    std::unordered_set<Payload*> s;
    for (const auto& o : objs) s.insert(o.get());
    benchmark::DoNotOptimize(s.size());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_std_set_add)->Arg(1000);

// Iteration: every live element held for its step.
void BM_weakset_iterate(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<weakref::Strong<Payload>> objs;
  weakref::WeakSet<Payload> s;
  for (int i = 0; i < n; ++i) {
    objs.push_back(weakref::make<Payload>());
    s.add(objs.back());
  }
  for (auto _ : state) {
    long sum = 0;
    for (const auto& o : s) sum += o->value;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_weakset_iterate)->Arg(1000);

// -- Memory per entry ---------------------------------------------------------------

struct Measure {
  long long new_bytes;
  long long pool_bytes;
};
// What the calling thread occupies outside operator new: the library's
// small-block pages (weakref objects, side tables), counted page by page.
long long in_use() { return static_cast<long long>(weakref::detail::pool_committed_bytes()); }
template <class F>
Measure measure(F&& fill) {
  g_new_bytes.store(0);
  const long long before = in_use();
  g_counting.store(true);
  fill();
  g_counting.store(false);
  return {g_new_bytes.load(), in_use() - before};
}
void report(benchmark::State& state, const Measure& m, long n) {
  state.counters["new_bytes_per_entry"] = static_cast<double>(m.new_bytes) / static_cast<double>(n);
  state.counters["bytes_per_entry"] =
      static_cast<double>(m.new_bytes + m.pool_bytes) / static_cast<double>(n);
}

// Containers of n entries over objects made beforehand. Arg 1: the objects
// had no weakref yet, so the first entry also makes each one's side table
// (CPython objects carry their weakref list slot from birth instead).
template <class Fill>
void memory_case(benchmark::State& state, Fill fill) {
  const long n = state.range(0);
  const bool fresh = state.range(1) != 0;
  for (auto _ : state) {
    std::vector<weakref::Strong<Payload>> objs;
    std::vector<weakref::ref<Payload>> basic;
    for (long i = 0; i < n; ++i) objs.push_back(weakref::make<Payload>());
    if (!fresh)
      for (const auto& o : objs) basic.emplace_back(o);
    Measure m{};
    auto keep = fill(objs, m);
    report(state, m, n);
    benchmark::DoNotOptimize(&keep);
  }
}

void BM_memory_weakset(benchmark::State& state) {
  memory_case(state, [](const std::vector<weakref::Strong<Payload>>& objs, Measure& m) {
    auto s = std::make_unique<weakref::WeakSet<Payload>>();
    m = measure([&] {
      for (const auto& o : objs) s->add(o);
    });
    return s;
  });
}
BENCHMARK(BM_memory_weakset)->Args({100000, 1})->Args({100000, 0})->Iterations(1);

void BM_memory_wvd(benchmark::State& state) {
  memory_case(state, [](const std::vector<weakref::Strong<Payload>>& objs, Measure& m) {
    auto d = std::make_unique<weakref::WeakValueDictionary<long, Payload>>();
    m = measure([&] {
      long k = 1000000;
      for (const auto& o : objs) d->set(k++, o);
    });
    return d;
  });
}
BENCHMARK(BM_memory_wvd)->Args({100000, 1})->Args({100000, 0})->Iterations(1);

void BM_memory_wkd(benchmark::State& state) {
  memory_case(state, [](const std::vector<weakref::Strong<Payload>>& objs, Measure& m) {
    auto d = std::make_unique<weakref::WeakKeyDictionary<Payload, long>>();
    m = measure([&] {
      for (const auto& o : objs) d->set(o, 1);
    });
    return d;
  });
}
BENCHMARK(BM_memory_wkd)->Args({100000, 1})->Args({100000, 0})->Iterations(1);

// The std equivalents, for scale.
void BM_memory_std_weak_map(benchmark::State& state) {
  const long n = state.range(0);
  for (auto _ : state) {
    std::vector<std::shared_ptr<Payload>> objs;
    for (long i = 0; i < n; ++i) objs.push_back(std::make_shared<Payload>());
    auto m = std::make_unique<std::unordered_map<long, std::weak_ptr<Payload>>>();
    Measure me = measure([&] {
      long k = 1000000;
      for (const auto& o : objs) (*m)[k++] = o;
    });
    report(state, me, n);
  }
}
BENCHMARK(BM_memory_std_weak_map)->Arg(100000)->Iterations(1);

void BM_memory_std_set(benchmark::State& state) {
  const long n = state.range(0);
  for (auto _ : state) {
    std::vector<std::unique_ptr<Payload>> objs;
    for (long i = 0; i < n; ++i) objs.push_back(std::make_unique<Payload>());
    auto s = std::make_unique<std::unordered_set<Payload*>>();
    Measure me = measure([&] {
      for (const auto& o : objs) s->insert(o.get());
    });
    report(state, me, n);
  }
}
BENCHMARK(BM_memory_std_set)->Arg(100000)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
