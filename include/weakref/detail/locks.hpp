// The library's locks: SpinLock (short critical sections, no user code),
// the bit lock (the same, in one bit of an atomic word: bit_lock, the side
// table's lock, object.hpp) and Mutex (std::mutex). All are behind the fork
// gate (fork_gate.hpp).
//
// Invariants:
//  * No user code (destructors, callbacks, hooks, allocation that may run
//    them) runs while a SpinLock or a bit lock is held; so no thread can be
//    created while one is held, and one taken while the process is
//    single-threaded (a plain store, outside the gate) is released before a
//    second thread exists.
//  * A lock taken by a multi-threaded process is inside the gate from
//    lock() to unlock(); a Mutex remembers whether its holder entered the
//    gate (the process may gain a thread while it is held), so that unlock()
//    leaves it exactly when lock() entered it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "atomics.hpp"
#include "fork_gate.hpp"

namespace weakref::detail {

// A test-and-test-and-set lock for short critical sections that never call
// user code. Satisfies Lockable (usable with std::lock_guard). Behind the
// fork gate once the process has threads.
class SpinLock {
 public:
  void lock() noexcept {
    // Single-threaded: nobody else can hold it (no user code runs under a
    // SpinLock, so no thread is created while one is held), nor fork.
    if (single_threaded()) {
      locked_.store(true, std::memory_order_relaxed);
      return;
    }
    gate_enter();
    unsigned spins = 0;
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) spin_pause(spins);
    }
  }
  bool try_lock() noexcept {
    if (single_threaded()) {
      if (locked_.load(std::memory_order_relaxed)) return false;
      locked_.store(true, std::memory_order_relaxed);
      return true;
    }
    gate_enter();
    if (!locked_.load(std::memory_order_relaxed) &&
        !locked_.exchange(true, std::memory_order_acquire))
      return true;
    gate_leave();
    return false;
  }
  void unlock() noexcept {
    locked_.store(false, std::memory_order_release);
    if (!single_threaded()) gate_leave();
  }

 private:
  std::atomic<bool> locked_{false};
};

// A SpinLock that is bit `kBit` of an atomic word: while it is held, only
// its holder writes the word (its stores keep the bit), and a
// compare-and-swap from a value without the bit may stand for a whole
// critical section (the side table's list head, object.hpp). bit_lock
// returns the word as it locked it, without the bit: reading the word
// right after the locked instruction would wait for that instruction to
// complete (no store forwarding from it). bit_unlock clears the bit
// (release: the critical section's writes go with it).
template <std::uintptr_t kBit>
[[gnu::always_inline]] inline std::uintptr_t bit_lock(std::atomic<std::uintptr_t>& word) noexcept {
  std::uintptr_t v = word.load(std::memory_order_relaxed);
  if (single_threaded()) {  // as SpinLock
    word.store(v | kBit, std::memory_order_relaxed);
    return v;
  }
  gate_enter();
  unsigned spins = 0;
  for (;;) {
    if (!(v & kBit) && word.compare_exchange_weak(v, v | kBit, std::memory_order_acquire,
                                                  std::memory_order_relaxed))
      return v;
    while ((v = word.load(std::memory_order_relaxed)) & kBit) spin_pause(spins);
  }
}
template <std::uintptr_t kBit>
[[gnu::always_inline]] inline void bit_unlock(std::atomic<std::uintptr_t>& word) noexcept {
  word.store(word.load(std::memory_order_relaxed) & ~kBit, std::memory_order_release);
  if (!single_threaded()) gate_leave();
}

// The library's std::mutex, behind the fork gate. (Whether it entered the
// gate is remembered: the process may gain a thread while one is held.)
class Mutex {
 public:
  void lock() {
    const bool gated = !single_threaded();
    if (gated) gate_enter();
    try {
      mu_.lock();
    } catch (...) {
      if (gated) gate_leave();
      throw;
    }
    gated_ = gated;
  }
  bool try_lock() noexcept {
    const bool gated = !single_threaded();
    if (gated) gate_enter();
    if (!mu_.try_lock()) {
      if (gated) gate_leave();
      return false;
    }
    gated_ = gated;
    return true;
  }
  void unlock() noexcept {
    const bool gated = gated_;
    mu_.unlock();
    if (gated) gate_leave();
  }

 private:
  std::mutex mu_;
  bool gated_ = false;  // the holder's
};

}  // namespace weakref::detail
