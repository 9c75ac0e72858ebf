// Running a benchmark in a multi-threaded process.
//
// While a process has one thread, both this library and libstdc++'s
// shared_ptr replace atomic read-modify-writes by plain ones
// (__libc_single_threaded; include/weakref/detail/atomics.hpp), so a
// benchmark's figures are those of a single-threaded program. The first
// multithreaded<> benchmark starts (and joins) a thread, which turns that off
// for the rest of the run, on both sides: the _mt rows repeat the main ones
// with atomic counts. Register them after the single-threaded rows.
#pragma once

#include <benchmark/benchmark.h>

#include <thread>

inline void make_process_multithreaded() {
  static const bool done = [] {
    std::thread([] {}).join();
    return true;
  }();
  (void)done;
}

// The same benchmark, run in a process that has had a second thread.
template <void (*Bench)(benchmark::State&)>
void multithreaded(benchmark::State& state) {
  make_process_multithreaded();
  Bench(state);
}
