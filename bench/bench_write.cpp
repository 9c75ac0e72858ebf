// The write path: making weak references, registering objects in weak
// containers, and deaths of weakly referenced objects -- each row against the
// hand-rolled std code a user would write instead (the `_std` benchmark next
// to it), in the same run, in a single-threaded and then a multi-threaded
// process (bench_core.cpp explains the two modes; the `_mt` rows run after a
// thread has existed).
//
// Run: build/bench/bench/bench_write
//      bench/write_vs_std.py prints the ratio table, with CPython's figures
//      for the same steps timed in the same run.
//
// Rows (weakref vs std):
//   ref_existing       ref<T> r(obj) + drop, obj already has a weak reference
//                      vs weak_ptr<T> w(sp) + drop
//   make_ref_release   make + ref + drop the ref, then the object
//                      vs make_shared + weak_ptr (the same order)
//   make_ref_death     make + ref, the object dies first, then the ref goes
//                      vs make_shared + weak_ptr, shared_ptr reset first
//   make_callback_death  make + ref with a callback (taking the dead ref) +
//                      death vs shared_ptr with a deleter that calls back +
//                      weak_ptr
//   make_finalize_death  make + finalize(obj, func, arg) + death vs
//                      shared_ptr with a deleter that calls func(arg)
//   wvd_set_existing   WeakValueDictionary<std::string, T>::set on an
//                      existing key (1000 keys) vs unordered_map<string,
//                      weak_ptr> assignment
//   wvd_insert_erase   set a new key + erase it (1000 keys in the table)
//   wkd_insert_erase   WeakKeyDictionary<T, int> set + erase vs
//                      unordered_map<T*, pair<weak_ptr, int>>
//   weakset_add_discard  WeakSet<T> add + discard vs unordered_map<T*,
//                      weak_ptr> (a set of weak_ptr needs owner hashing)
//   cache_churn        WeakValueDictionary<std::string, T> as a cache of 1000
//                      keys whose values die at once: get misses, make, set,
//                      the value dies, its entry goes; vs unordered_map<string,
//                      weak_ptr>: find misses, make_shared, emplace, release,
//                      the expired entry erased (cache_churn_keep_std: the
//                      expired weak_ptr stays and is overwritten next time)
//   observer_churn     WeakSet of 1000 observers: one subscribes, one dies,
//                      then a notify over all (per step); vs a
//                      vector<weak_ptr> that erases expired entries while
//                      notifying
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>
#include <weakref/weakref.hpp>

#include "multithreaded.hpp"

namespace {

struct Payload {
  long value = 1;
  void notify() noexcept { ++value; }
};

constexpr int kKeys = 1000;

// A fixed pseudo-random order of 0..n-1 (the same on both sides).
std::vector<int> shuffled(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  std::mt19937 rng(12345);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

std::vector<std::string> keys(const char* prefix, int n) {
  std::vector<std::string> k;
  for (int i = 0; i < n; ++i) k.push_back(prefix + std::to_string(i));
  return k;
}

// -- Weak references -----------------------------------------------------------

void BM_ref_existing(benchmark::State& state) {
  auto obj = weakref::make<Payload>();
  weakref::ref<Payload> first(obj);
  for (auto _ : state) {
    weakref::ref<Payload> r(obj);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ref_existing);

void BM_ref_existing_std(benchmark::State& state) {
  auto obj = std::make_shared<Payload>();
  std::weak_ptr<Payload> first(obj);
  for (auto _ : state) {
    std::weak_ptr<Payload> w(obj);
    benchmark::DoNotOptimize(w);
  }
}
BENCHMARK(BM_ref_existing_std);

void BM_make_ref_release(benchmark::State& state) {
  for (auto _ : state) {
    auto obj = weakref::make<Payload>();
    weakref::ref<Payload> r(obj);
    benchmark::DoNotOptimize(r);
  }  // r goes, then obj
}
BENCHMARK(BM_make_ref_release);

void BM_make_ref_release_std(benchmark::State& state) {
  for (auto _ : state) {
    auto obj = std::make_shared<Payload>();
    std::weak_ptr<Payload> w(obj);
    benchmark::DoNotOptimize(w);
  }
}
BENCHMARK(BM_make_ref_release_std);

void BM_make_ref_death(benchmark::State& state) {
  for (auto _ : state) {
    auto obj = weakref::make<Payload>();
    weakref::ref<Payload> r(obj);
    obj.reset();  // dies while r lives
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_make_ref_death);

void BM_make_ref_death_std(benchmark::State& state) {
  for (auto _ : state) {
    auto obj = std::make_shared<Payload>();
    std::weak_ptr<Payload> w(obj);
    obj.reset();
    benchmark::DoNotOptimize(w);
  }
}
BENCHMARK(BM_make_ref_death_std);

void BM_make_callback_death(benchmark::State& state) {
  long calls = 0;
  for (auto _ : state) {
    auto obj = weakref::make<Payload>();
    weakref::ref<Payload> r(obj, [&calls](const weakref::ref<Payload>&) { ++calls; });
    obj.reset();
  }
  benchmark::DoNotOptimize(calls);
}
BENCHMARK(BM_make_callback_death);

// A death callback written with std: a deleter that calls back.
void BM_make_callback_death_std(benchmark::State& state) {
  long calls = 0;
  for (auto _ : state) {
    std::shared_ptr<Payload> obj(new Payload, [&calls](Payload* p) {
      ++calls;
      delete p;
    });
    std::weak_ptr<Payload> w(obj);
    obj.reset();
  }
  benchmark::DoNotOptimize(calls);
}
BENCHMARK(BM_make_callback_death_std);

void BM_make_finalize_death(benchmark::State& state) {
  long calls = 0;
  for (auto _ : state) {
    auto obj = weakref::make<Payload>();
    weakref::finalize f(
        obj, [&calls](long n) { calls += n; }, 1L);
    obj.reset();
  }
  benchmark::DoNotOptimize(calls);
}
BENCHMARK(BM_make_finalize_death);

void BM_make_finalize_death_std(benchmark::State& state) {
  long calls = 0;
  for (auto _ : state) {
    std::shared_ptr<Payload> obj(new Payload, [&calls, n = 1L](Payload* p) {
      calls += n;
      delete p;
    });
    obj.reset();
  }
  benchmark::DoNotOptimize(calls);
}
BENCHMARK(BM_make_finalize_death_std);

// -- Weak containers (baseline: phase 2 of issue 11) ------------------------------

void BM_wvd_set_existing(benchmark::State& state) {
  const auto k = keys("key", kKeys);
  std::vector<weakref::Strong<Payload>> values;
  weakref::WeakValueDictionary<std::string, Payload> d;
  for (int i = 0; i < kKeys; ++i) {
    values.push_back(weakref::make<Payload>());
    d.set(k[static_cast<std::size_t>(i)], values.back());
  }
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto j = static_cast<std::size_t>(order[i++ % kKeys]);
    d.set(k[j], values[j]);
  }
}
BENCHMARK(BM_wvd_set_existing);

void BM_wvd_set_existing_std(benchmark::State& state) {
  const auto k = keys("key", kKeys);
  std::vector<std::shared_ptr<Payload>> values;
  std::unordered_map<std::string, std::weak_ptr<Payload>> d;
  for (int i = 0; i < kKeys; ++i) {
    values.push_back(std::make_shared<Payload>());
    d[k[static_cast<std::size_t>(i)]] = values.back();
  }
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto j = static_cast<std::size_t>(order[i++ % kKeys]);
    d[k[j]] = values[j];
  }
}
BENCHMARK(BM_wvd_set_existing_std);

void BM_wvd_insert_erase(benchmark::State& state) {
  const auto k = keys("key", kKeys);
  const auto fresh = keys("new", kKeys);
  std::vector<weakref::Strong<Payload>> values;
  weakref::WeakValueDictionary<std::string, Payload> d;
  for (int i = 0; i < kKeys; ++i) {
    values.push_back(weakref::make<Payload>());
    d.set(k[static_cast<std::size_t>(i)], values.back());
  }
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto j = static_cast<std::size_t>(order[i++ % kKeys]);
    d.set(fresh[j], values[j]);
    d.erase(fresh[j]);
  }
}
BENCHMARK(BM_wvd_insert_erase);

void BM_wvd_insert_erase_std(benchmark::State& state) {
  const auto k = keys("key", kKeys);
  const auto fresh = keys("new", kKeys);
  std::vector<std::shared_ptr<Payload>> values;
  std::unordered_map<std::string, std::weak_ptr<Payload>> d;
  for (int i = 0; i < kKeys; ++i) {
    values.push_back(std::make_shared<Payload>());
    d[k[static_cast<std::size_t>(i)]] = values.back();
  }
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto j = static_cast<std::size_t>(order[i++ % kKeys]);
    d[fresh[j]] = values[j];
    d.erase(fresh[j]);
  }
}
BENCHMARK(BM_wvd_insert_erase_std);

// Objects 0..n-1 are in the container, n..2n-1 are added and removed.
void BM_wkd_insert_erase(benchmark::State& state) {
  std::vector<weakref::Strong<Payload>> objs;
  weakref::WeakKeyDictionary<Payload, int> d;
  for (int i = 0; i < 2 * kKeys; ++i) objs.push_back(weakref::make<Payload>());
  for (int i = 0; i < kKeys; ++i) d.set(objs[static_cast<std::size_t>(i)], i);
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& o = objs[static_cast<std::size_t>(kKeys + order[i++ % kKeys])];
    d.set(o, 1);
    d.erase(o);
  }
}
BENCHMARK(BM_wkd_insert_erase);

void BM_wkd_insert_erase_std(benchmark::State& state) {
  std::vector<std::shared_ptr<Payload>> objs;
  std::unordered_map<const Payload*, std::pair<std::weak_ptr<Payload>, int>> d;
  for (int i = 0; i < 2 * kKeys; ++i) objs.push_back(std::make_shared<Payload>());
  for (int i = 0; i < kKeys; ++i) {
    const auto& o = objs[static_cast<std::size_t>(i)];
    d[o.get()] = {o, i};
  }
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& o = objs[static_cast<std::size_t>(kKeys + order[i++ % kKeys])];
    d[o.get()] = {o, 1};
    d.erase(o.get());
  }
}
BENCHMARK(BM_wkd_insert_erase_std);

void BM_weakset_add_discard(benchmark::State& state) {
  std::vector<weakref::Strong<Payload>> objs;
  weakref::WeakSet<Payload> s;
  for (int i = 0; i < 2 * kKeys; ++i) objs.push_back(weakref::make<Payload>());
  for (int i = 0; i < kKeys; ++i) s.add(objs[static_cast<std::size_t>(i)]);
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& o = objs[static_cast<std::size_t>(kKeys + order[i++ % kKeys])];
    s.add(o);
    s.discard(o);
  }
}
BENCHMARK(BM_weakset_add_discard);

void BM_weakset_add_discard_std(benchmark::State& state) {
  std::vector<std::shared_ptr<Payload>> objs;
  std::unordered_map<const Payload*, std::weak_ptr<Payload>> s;
  for (int i = 0; i < 2 * kKeys; ++i) objs.push_back(std::make_shared<Payload>());
  for (int i = 0; i < kKeys; ++i) {
    const auto& o = objs[static_cast<std::size_t>(i)];
    s.emplace(o.get(), o);
  }
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& o = objs[static_cast<std::size_t>(kKeys + order[i++ % kKeys])];
    s.emplace(o.get(), o);
    s.erase(o.get());
  }
}
BENCHMARK(BM_weakset_add_discard_std);

void BM_cache_churn(benchmark::State& state) {
  const auto k = keys("key", kKeys);
  weakref::WeakValueDictionary<std::string, Payload> cache;
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = k[static_cast<std::size_t>(order[i++ % kKeys])];
    weakref::Strong<Payload> v = cache.get(key);
    if (!v) {
      v = weakref::make<Payload>();
      cache.set(key, v);
    }
    benchmark::DoNotOptimize(v->value);
  }  // v dies: its entry goes
}
BENCHMARK(BM_cache_churn);

// The std counterpart of the same behaviour: the entry goes when its value
// has died (here, as soon as the step has dropped it), as the weak
// dictionary's entry does.
void BM_cache_churn_std(benchmark::State& state) {
  const auto k = keys("key", kKeys);
  std::unordered_map<std::string, std::weak_ptr<Payload>> cache;
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = k[static_cast<std::size_t>(order[i++ % kKeys])];
    auto it = cache.find(key);
    std::shared_ptr<Payload> v;
    if (it != cache.end()) v = it->second.lock();
    if (!v) {
      v = std::make_shared<Payload>();
      if (it != cache.end())
        it->second = v;
      else
        it = cache.emplace(key, v).first;
    }
    benchmark::DoNotOptimize(v->value);
    v.reset();  // the value dies: the user erases its expired entry
    if (it->second.expired()) cache.erase(it);
  }
}
BENCHMARK(BM_cache_churn_std);

// A cheaper std variant that the weak dictionary cannot mirror: the expired
// weak_ptr stays in the map (with its control block) until its key is set
// again, so no step erases or inserts a node. Shown for reference.
void BM_cache_churn_keep_std(benchmark::State& state) {
  const auto k = keys("key", kKeys);
  std::unordered_map<std::string, std::weak_ptr<Payload>> cache;
  const auto order = shuffled(kKeys);
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = k[static_cast<std::size_t>(order[i++ % kKeys])];
    std::weak_ptr<Payload>& slot = cache[key];
    std::shared_ptr<Payload> v = slot.lock();
    if (!v) {
      v = std::make_shared<Payload>();
      slot = v;
    }
    benchmark::DoNotOptimize(v->value);
  }  // v dies; its expired weak_ptr stays until overwritten
}
BENCHMARK(BM_cache_churn_keep_std);

// Per step: the oldest of 1000 observers dies, a new one subscribes, and
// every subscriber is notified.
void BM_observer_churn(benchmark::State& state) {
  std::vector<weakref::Strong<Payload>> alive;
  weakref::WeakSet<Payload> subscribers;
  for (int i = 0; i < kKeys; ++i) {
    alive.push_back(weakref::make<Payload>());
    subscribers.add(alive.back());
  }
  std::size_t oldest = 0;
  for (auto _ : state) {
    alive[oldest] = weakref::make<Payload>();  // the old one dies
    subscribers.add(alive[oldest]);
    oldest = (oldest + 1) % kKeys;
    for (const weakref::Strong<Payload>& o : subscribers) o->notify();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_observer_churn);

void BM_observer_churn_std(benchmark::State& state) {
  std::vector<std::shared_ptr<Payload>> alive;
  std::vector<std::weak_ptr<Payload>> subscribers;
  for (int i = 0; i < kKeys; ++i) {
    alive.push_back(std::make_shared<Payload>());
    subscribers.push_back(alive.back());
  }
  std::size_t oldest = 0;
  for (auto _ : state) {
    alive[oldest] = std::make_shared<Payload>();
    subscribers.push_back(alive[oldest]);
    oldest = (oldest + 1) % kKeys;
    // Notify, compacting the expired entries away in the same pass.
    std::size_t out = 0;
    for (std::size_t in = 0; in < subscribers.size(); ++in) {
      if (std::shared_ptr<Payload> o = subscribers[in].lock()) {
        o->notify();
        if (out != in) subscribers[out] = std::move(subscribers[in]);
        ++out;
      }
    }
    subscribers.resize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_observer_churn_std);

// ---------------------------------------------------------------------------
// The same rows in a multi-threaded process (multithreaded.hpp).

#define WEAKREF_MT(name)                                        \
  BENCHMARK(multithreaded<BM_##name>)->Name("BM_" #name "_mt"); \
  BENCHMARK(multithreaded<BM_##name##_std>)->Name("BM_" #name "_std_mt")

WEAKREF_MT(ref_existing);
WEAKREF_MT(make_ref_release);
WEAKREF_MT(make_ref_death);
WEAKREF_MT(make_callback_death);
WEAKREF_MT(make_finalize_death);
WEAKREF_MT(wvd_set_existing);
WEAKREF_MT(wvd_insert_erase);
WEAKREF_MT(wkd_insert_erase);
WEAKREF_MT(weakset_add_discard);
WEAKREF_MT(cache_churn);
WEAKREF_MT(observer_churn);
BENCHMARK(multithreaded<BM_cache_churn_keep_std>)->Name("BM_cache_churn_keep_std_mt");

}  // namespace

BENCHMARK_MAIN();
