// The fork gate (src/fork.cpp explains it): fork() waits until no thread is
// inside a library lock, and keeps new ones out until it has returned, so a
// child process never inherits a lock held by a thread it does not have.
//
// Invariants:
//  * Every library lock (SpinLock, bit_lock, Mutex: locks.hpp) is taken inside
//    gate_enter() / gate_leave(), which count the calling thread's locks in
//    its record; enters and leaves pair up on one thread (the count never
//    goes below 0, and a thread's record is written by that thread only).
//  * The outermost enter of a thread checks the gate after its count is
//    visible to the forking thread (a compiler fence here; the forking
//    thread makes the other side of it with membarrier(), or, where the
//    system has none, fork_gate carries kGateFenced and every outermost
//    enter stores its count sequentially consistent).
//  * While kGateClosed is set, no thread holds a library lock except the
//    forking one's, and no outermost enter completes.
#pragma once

#include <atomic>
#include <cstdint>

#include "config.hpp"

namespace weakref::detail {

// A thread's count of the library locks it holds (one per thread, reused
// after the thread exits).
struct ForkGateRecord {
  std::atomic<std::uint32_t> held{0};  // written by its thread only
  std::atomic<bool> in_use{false};
  ForkGateRecord* next = nullptr;  // every record (push-only list)
};
// (Initial-exec: every library lock reads it; config.hpp.)
WEAKREF_TLS_INITIAL_EXEC WEAKREF_API extern constinit thread_local ForkGateRecord* tls_fork_record;
// Bit kGateClosed: a fork is waiting or running; kGateFenced: the system has
// no membarrier (outermost enters fence).
WEAKREF_API extern constinit std::atomic<std::uint32_t> fork_gate;
inline constexpr std::uint32_t kGateClosed = 1;
inline constexpr std::uint32_t kGateFenced = 2;
// Asymmetric fences, for a store-buffering pattern whose one side is hot:
// each side stores, then loads what the other stored, and one of the two
// loads must see the other's store. The hot side's store is
// light_fenced_store(): a plain store and a compiler fence while the other
// side can fence every thread with membarrier, else a sequentially
// consistent store (kGateFenced). The rare side stores sequentially
// consistent and calls heavy_fence() before its load; both loads are
// sequentially consistent (a plain load on x86). The fork gate is one user
// (src/fork.cpp); a death that borrows its weakref is another
// (src/weak_object.cpp).
template <class T>
[[gnu::always_inline]] inline void light_fenced_store(std::atomic<T>& a, T v) noexcept {
  if (fork_gate.load(std::memory_order_relaxed) & kGateFenced) {
    a.store(v, std::memory_order_seq_cst);
  } else {
    a.store(v, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
}
WEAKREF_API void heavy_fence() noexcept;

WEAKREF_API void gate_enter_slow(ForkGateRecord* r, std::uint32_t held_before) noexcept;
WEAKREF_API void gate_leave_slow() noexcept;

inline void gate_enter() noexcept {
  ForkGateRecord* r = tls_fork_record;
  if (r) [[likely]] {
    const std::uint32_t n = r->held.load(std::memory_order_relaxed);
    r->held.store(n + 1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (n != 0 || fork_gate.load(std::memory_order_relaxed) == 0) [[likely]]
      return;
    gate_enter_slow(r, n);
    return;
  }
  gate_enter_slow(nullptr, 0);
}
inline void gate_leave() noexcept {
  if (ForkGateRecord* r = tls_fork_record) [[likely]] {
    r->held.store(r->held.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    return;
  }
  gate_leave_slow();
}

}  // namespace weakref::detail
