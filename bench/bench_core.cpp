// Core operations against their std::shared_ptr / std::weak_ptr equivalents,
// in the same run, in a single-threaded and then a multi-threaded process.
// Run: build/bench/bench/bench_core
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>
#include <weakref/weakref.hpp>

#include "multithreaded.hpp"

namespace {

struct Payload {
  int value = 1;
};

// r() then dropping the Strong, against weak_ptr::lock() then dropping the
// shared_ptr: the whole "use a weak reference" step.
void BM_ref_lock(benchmark::State& state) {
  auto obj = weakref::make<Payload>();
  weakref::ref<Payload> r(obj);
  for (auto _ : state) {
    weakref::Strong<Payload> s = r();
    benchmark::DoNotOptimize(s.get());
  }
}
BENCHMARK(BM_ref_lock);

void BM_weak_ptr_lock(benchmark::State& state) {
  auto obj = std::make_shared<Payload>();
  std::weak_ptr<Payload> w(obj);
  for (auto _ : state) {
    std::shared_ptr<Payload> s = w.lock();
    benchmark::DoNotOptimize(s.get());
  }
}
BENCHMARK(BM_weak_ptr_lock);

// The same on a dead referent (the cache-miss path).
void BM_ref_lock_dead(benchmark::State& state) {
  auto obj = weakref::make<Payload>();
  weakref::ref<Payload> r(obj);
  obj.reset();
  for (auto _ : state) benchmark::DoNotOptimize(r().get());
}
BENCHMARK(BM_ref_lock_dead);

void BM_weak_ptr_lock_dead(benchmark::State& state) {
  auto obj = std::make_shared<Payload>();
  std::weak_ptr<Payload> w(obj);
  obj.reset();
  for (auto _ : state) benchmark::DoNotOptimize(w.lock().get());
}
BENCHMARK(BM_weak_ptr_lock_dead);

// Strong copy + release against shared_ptr copy + release, with and without
// a weak reference existing (side-table form vs inline form).
void BM_strong_copy(benchmark::State& state) {
  auto obj = weakref::make<Payload>();
  weakref::ref<Payload> r;
  if (state.range(0)) r = obj;
  for (auto _ : state) {
    weakref::Strong<Payload> c = obj;
    benchmark::DoNotOptimize(c.get());
  }
}
BENCHMARK(BM_strong_copy)->Arg(0)->Arg(1)->ArgName("with_weakref");

void BM_shared_ptr_copy(benchmark::State& state) {
  auto obj = std::make_shared<Payload>();
  for (auto _ : state) {
    std::shared_ptr<Payload> c = obj;
    benchmark::DoNotOptimize(c.get());
  }
}
BENCHMARK(BM_shared_ptr_copy);

// Making and dropping an object.
void BM_make(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(weakref::make<Payload>().get());
}
BENCHMARK(BM_make);

void BM_make_shared(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::make_shared<Payload>().get());
}
BENCHMARK(BM_make_shared);

// Making a weak reference to a fresh object (allocates the side table and
// the weakref object), against weak_ptr from a fresh shared_ptr.
void BM_make_with_ref(benchmark::State& state) {
  for (auto _ : state) {
    auto obj = weakref::make<Payload>();
    weakref::ref<Payload> r(obj);
    benchmark::DoNotOptimize(r.expired());
  }
}
BENCHMARK(BM_make_with_ref);

void BM_make_shared_with_weak_ptr(benchmark::State& state) {
  for (auto _ : state) {
    auto obj = std::make_shared<Payload>();
    std::weak_ptr<Payload> w(obj);
    benchmark::DoNotOptimize(w.expired());
  }
}
BENCHMARK(BM_make_shared_with_weak_ptr);

// A death with one callback.
void BM_death_with_callback(benchmark::State& state) {
  long calls = 0;
  for (auto _ : state) {
    auto obj = weakref::make<Payload>();
    weakref::ref<Payload> r(obj, [&calls] { ++calls; });
    obj.reset();
  }
  benchmark::DoNotOptimize(calls);
}
BENCHMARK(BM_death_with_callback);

// ---------------------------------------------------------------------------
// Everything below runs in a multi-threaded process (multithreaded.hpp):
// the _mt rows repeat the main ones with atomic counts on both sides.

BENCHMARK(multithreaded<BM_ref_lock>)->Name("BM_ref_lock_mt");
BENCHMARK(multithreaded<BM_weak_ptr_lock>)->Name("BM_weak_ptr_lock_mt");
BENCHMARK(multithreaded<BM_ref_lock_dead>)->Name("BM_ref_lock_dead_mt");
BENCHMARK(multithreaded<BM_weak_ptr_lock_dead>)->Name("BM_weak_ptr_lock_dead_mt");
BENCHMARK(multithreaded<BM_strong_copy>)
    ->Name("BM_strong_copy_mt")
    ->Arg(0)
    ->Arg(1)
    ->ArgName("with_weakref");
BENCHMARK(multithreaded<BM_shared_ptr_copy>)->Name("BM_shared_ptr_copy_mt");
BENCHMARK(multithreaded<BM_make>)->Name("BM_make_mt");
BENCHMARK(multithreaded<BM_make_shared>)->Name("BM_make_shared_mt");
BENCHMARK(multithreaded<BM_make_with_ref>)->Name("BM_make_with_ref_mt");
BENCHMARK(multithreaded<BM_make_shared_with_weak_ptr>)->Name("BM_make_shared_with_weak_ptr_mt");
BENCHMARK(multithreaded<BM_death_with_callback>)->Name("BM_death_with_callback_mt");

// r() from several threads on one object (contended counts).
void BM_ref_lock_threads(benchmark::State& state) {
  static weakref::Strong<Payload> obj;
  static weakref::ref<Payload> r;
  if (state.thread_index() == 0) {
    obj = weakref::make<Payload>();
    r = obj;
  }
  for (auto _ : state) benchmark::DoNotOptimize(r().get());
  if (state.thread_index() == 0) {
    r.reset();
    obj.reset();
  }
}
BENCHMARK(BM_ref_lock_threads)->Threads(2);

void BM_weak_ptr_lock_threads(benchmark::State& state) {
  static std::shared_ptr<Payload> obj;
  static std::weak_ptr<Payload> w;
  if (state.thread_index() == 0) {
    obj = std::make_shared<Payload>();
    w = obj;
  }
  for (auto _ : state) benchmark::DoNotOptimize(w.lock().get());
  if (state.thread_index() == 0) {
    w.reset();
    obj.reset();
  }
}
BENCHMARK(BM_weak_ptr_lock_threads)->Threads(2);

}  // namespace

BENCHMARK_MAIN();
