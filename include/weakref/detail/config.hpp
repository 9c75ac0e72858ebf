// Internal configuration shared by every header: export macro, CPU pause.
#pragma once

#include <atomic>
#include <thread>

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

// A test-and-test-and-set lock for short critical sections that never call
// user code. Satisfies Lockable (usable with std::lock_guard).
class SpinLock {
 public:
  void lock() noexcept {
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
