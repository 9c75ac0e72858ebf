// Internal configuration shared by every header: export macro, CPU pause.
#pragma once

#include <atomic>
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

// A test-and-test-and-set lock for short critical sections that never call
// user code. Satisfies Lockable (usable with std::lock_guard).
class SpinLock {
 public:
  void lock() noexcept {
    // Single-threaded: nobody else can hold it (no user code runs under a
    // SpinLock, so no thread is created while one is held).
    if (single_threaded()) {
      locked_.store(true, std::memory_order_relaxed);
      return;
    }
    unsigned spins = 0;
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) spin_pause(spins);
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

template <class>
inline constexpr bool dependent_false = false;

}  // namespace weakref::detail
