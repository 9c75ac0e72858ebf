// Internal configuration shared by every header: export macro, CPU pause.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

#if !defined(WEAKREF_NO_SINGLE_THREADED_FAST_PATH) && __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define WEAKREF_HAVE_SINGLE_THREADED 1
#endif

#if defined(_WIN32) && defined(WEAKREF_SHARED)
#if defined(WEAKREF_BUILDING)
#define WEAKREF_API __declspec(dllexport)
#else
#define WEAKREF_API __declspec(dllimport)
#endif
#elif defined(WEAKREF_SHARED)
#define WEAKREF_API __attribute__((visibility("default")))
#else
#define WEAKREF_API
#endif

namespace weakref::detail {

// One step of a spin-wait loop: a CPU pause hint, and every 64 steps a yield
// so that a waiter never starves the thread it waits for on a busy core.
inline void spin_pause(unsigned& spins) noexcept {
  if ((++spins & 63U) == 0) {
    std::this_thread::yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Whether the process has only the calling thread (glibc >= 2.32's
// __libc_single_threaded, which libstdc++'s shared_ptr consults for the same
// purpose). While it is true, no other thread exists to race with a count
// update, so the reference counts use a plain load and store instead of a
// locked read-modify-write; the first pthread_create clears it before the new
// thread runs, so a thread can never observe a count half-updated this way.
// Counts stay std::atomic objects (relaxed operations), so this is not a data
// race in C++ terms. Like libstdc++'s, it assumes threads are made with
// pthread_create (or std::thread) and that signal handlers do not copy or
// drop references. Define WEAKREF_NO_SINGLE_THREADED_FAST_PATH to turn it off.
inline bool single_threaded() noexcept {
#ifdef WEAKREF_HAVE_SINGLE_THREADED
  return __libc_single_threaded != 0;
#else
  return false;
#endif
}

// Atomic read-modify-writes that become a plain load and store while the
// process is single-threaded (see single_threaded()). Same results and
// memory effects as the std::atomic member of the same name otherwise.
// rmw_update is their one shape: `plain` computes the new value from the
// old, `atomic` is the std::atomic operation to use otherwise.
template <class T, class Plain, class Atomic>
inline T rmw_update(std::atomic<T>& a, Plain plain, Atomic atomic) noexcept {
  if (single_threaded()) {
    const T old = a.load(std::memory_order_relaxed);
    a.store(static_cast<T>(plain(old)), std::memory_order_relaxed);
    return old;
  }
  return atomic();
}
template <class T>
inline T rmw_fetch_add(std::atomic<T>& a, T v, std::memory_order mo) noexcept {
  return rmw_update(a, [v](T old) { return old + v; }, [&] { return a.fetch_add(v, mo); });
}
template <class T>
inline T rmw_fetch_sub(std::atomic<T>& a, T v, std::memory_order mo) noexcept {
  return rmw_update(a, [v](T old) { return old - v; }, [&] { return a.fetch_sub(v, mo); });
}
template <class T>
inline T rmw_fetch_or(std::atomic<T>& a, T v, std::memory_order mo) noexcept {
  return rmw_update(a, [v](T old) { return old | v; }, [&] { return a.fetch_or(v, mo); });
}
template <class T>
inline T rmw_fetch_and(std::atomic<T>& a, T v, std::memory_order mo) noexcept {
  return rmw_update(a, [v](T old) { return old & v; }, [&] { return a.fetch_and(v, mo); });
}
template <class T>
inline bool rmw_compare_exchange(std::atomic<T>& a, T& expected, T desired,
                                 std::memory_order success,
                                 std::memory_order failure) noexcept {
  if (single_threaded()) {
    const T cur = a.load(std::memory_order_relaxed);
    if (cur != expected) {
      expected = cur;
      return false;
    }
    a.store(desired, std::memory_order_relaxed);
    return true;
  }
  return a.compare_exchange_weak(expected, desired, success, failure);
}

// ---------------------------------------------------------------------------
// The fork gate (src/fork.cpp explains it): fork() waits until no thread is
// inside a library lock, and keeps new ones out until it has returned, so a
// child process never inherits a lock held by a thread it does not have.
// Every library lock (SpinLock, Mutex) is taken inside gate_enter() /
// gate_leave(), which count the calling thread's locks in its record. The
// outermost enter of a thread checks the gate, after its count is visible
// to the forking thread (a compiler fence here; the forking thread makes
// the other side of it with membarrier(), or, where the system has none,
// every outermost enter stores its count sequentially consistent).
struct ForkGateRecord {
  std::atomic<std::uint32_t> held{0};  // written by its thread only
  std::atomic<bool> in_use{false};
  ForkGateRecord* next = nullptr;      // every record (push-only list)
};
WEAKREF_API extern constinit thread_local ForkGateRecord* tls_fork_record;
// Bit kGateClosed: a fork is waiting or running; kGateFenced: the system has
// no membarrier (outermost enters fence).
WEAKREF_API extern constinit std::atomic<std::uint32_t> fork_gate;
inline constexpr std::uint32_t kGateClosed = 1;
inline constexpr std::uint32_t kGateFenced = 2;
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

template <class>
inline constexpr bool dependent_false = false;

}  // namespace weakref::detail
