// The library's two locks: SpinLock (short critical sections, no user code)
// and Mutex (std::mutex). Both are behind the fork gate (fork_gate.hpp).
//
// Invariants:
//  * No user code (destructors, callbacks, hooks, allocation that may run
//    them) runs while a SpinLock is held; so no thread can be created while
//    one is held, and a SpinLock taken while the process is single-threaded
//    (a plain store, outside the gate) is released before a second thread
//    exists.
//  * A lock taken by a multi-threaded process is inside the gate from
//    lock() to unlock(); a Mutex remembers whether its holder entered the
//    gate (the process may gain a thread while it is held), so that unlock()
//    leaves it exactly when lock() entered it.
#pragma once

#include <atomic>
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
