// Atomic helpers: the single-threaded test, read-modify-writes that become
// plain loads and stores while the process has one thread, and the step of
// a spin-wait loop.
//
// Invariants:
//  * single_threaded() is true only while the process has exactly the
//    calling thread; once false in a process it is never observed true
//    again by a thread that could race with another (glibc clears
//    __libc_single_threaded before a new thread runs and never sets it
//    back while threads exist).
//  * Every rmw_* function has the result and memory effects of the
//    std::atomic member of the same name; only its cost differs. The
//    variables it updates stay std::atomic objects (plain = relaxed load and
//    store), so mixing the two paths is never a data race.
//  * rmw_compare_exchange may fail spuriously (it is compare_exchange_weak),
//    so its callers loop.
#pragma once

#include <atomic>
#include <thread>

#include "config.hpp"

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
[[gnu::always_inline]] inline bool single_threaded() noexcept {
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
[[gnu::always_inline]] inline T rmw_update(std::atomic<T>& a, Plain plain, Atomic atomic) noexcept {
  if (single_threaded()) {
    const T old = a.load(std::memory_order_relaxed);
    a.store(static_cast<T>(plain(old)), std::memory_order_relaxed);
    return old;
  }
  return atomic();
}
template <class T>
[[gnu::always_inline]] inline T rmw_fetch_add(std::atomic<T>& a, T v,
                                              std::memory_order mo) noexcept {
  return rmw_update(
      a, [v](T old) { return old + v; }, [&] { return a.fetch_add(v, mo); });
}
template <class T>
[[gnu::always_inline]] inline T rmw_fetch_sub(std::atomic<T>& a, T v,
                                              std::memory_order mo) noexcept {
  return rmw_update(
      a, [v](T old) { return old - v; }, [&] { return a.fetch_sub(v, mo); });
}
template <class T>
[[gnu::always_inline]] inline T rmw_fetch_or(std::atomic<T>& a, T v,
                                             std::memory_order mo) noexcept {
  return rmw_update(
      a, [v](T old) { return old | v; }, [&] { return a.fetch_or(v, mo); });
}
template <class T>
[[gnu::always_inline]] inline T rmw_fetch_and(std::atomic<T>& a, T v,
                                              std::memory_order mo) noexcept {
  return rmw_update(
      a, [v](T old) { return old & v; }, [&] { return a.fetch_and(v, mo); });
}
template <class T>
[[gnu::always_inline]] inline bool rmw_compare_exchange(std::atomic<T>& a, T& expected, T desired,
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

}  // namespace weakref::detail
