// fork() from a process whose other threads are using the library (issue 13,
// part 3): the child must be able to use the library at once -- make,
// weakrefs, callbacks, finalize, collect, the weak containers -- whatever
// locks the other threads held at the moment of the fork (src/fork.cpp).
//
// Worker threads hammer every kind of library lock (side tables, heaps,
// the finalize registry, the gc module, the unraisable hook, the
// allocator's registry through threads that come and go) while this thread
// forks again and again; each child runs a small program on the library
// and exits. A child that hangs is found by waiting for it with a generous
// deadline (then killed and reported); nothing here measures time.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "support.hpp"

namespace weakref::testing {
namespace {

#if defined(__SANITIZE_THREAD__)
constexpr const char* kNoFork = "ThreadSanitizer does not support fork() with threads running";
#elif defined(__SANITIZE_ADDRESS__)
constexpr const char* kNoFork =
    "AddressSanitizer's allocator is not fork-safe (a child hangs in operator new on a lock "
    "another thread held)";
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr const char* kNoFork = "ThreadSanitizer does not support fork() with threads running";
#elif __has_feature(address_sanitizer)
constexpr const char* kNoFork =
    "AddressSanitizer's allocator is not fork-safe (a child hangs in operator new on a lock "
    "another thread held)";
#else
constexpr const char* kNoFork = nullptr;
#endif
#else
constexpr const char* kNoFork = nullptr;
#endif

// What a child does: every kind of library operation, checked. Returns the
// exit status (0: all well).
int child_program() {
  int ran = 0, finalized = 0;
  {
    Strong<Node> a = make<Node>("a"), b = make<Node>("b");
    a->a = b;
    b->a = a;
    ref<Node> r(a, [&](const ref<Node>&) { ++ran; });
    finalize f(b, [&] { ++finalized; });
    WeakValueDictionary<int, Node> d;
    d.set(1, a);
    WeakSet<Node> s;
    s.add(b);
    a.reset();
    b.reset();
    if (gc::collect() < 2) return 1;
    if (r() || ran != 1 || finalized != 1) return 2;
    if (d.size() != 0 || s.size() != 0) return 3;
  }
  {
    // A thread of the child leaves a cycle to the orphan heap, which a
    // parent's thread may have been collecting at the moment of the fork.
    ref<Node> rt;
    std::thread([&] {
      Strong<Node> t = make<Node>("t");
      t->a = t;
      rt = t;
    }).join();
    if (gc::collect() < 1 || rt()) return 5;
  }
  {
    UnraisableCapture capture;
    Strong<Node> c = make<Node>("c");
    ref<Node> r(c, [](const ref<Node>&) { throw std::runtime_error("boom"); });
    c.reset();
    if (capture.messages.size() != 1) return 4;
  }
  return 0;
}

// Waits for the child; a child still running after `deadline` hangs.
bool wait_for(pid_t pid, int& status, std::chrono::seconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return true;
    if (std::chrono::steady_clock::now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(ForkTest, ChildUsesTheLibraryWhileOtherThreadsHeldItsLocks) {
  if (kNoFork) GTEST_SKIP() << kNoFork;
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  // Side-table locks, deaths with callbacks, weak containers.
  workers.emplace_back([&] {
    Strong<Node> keep = make<Node>("keep");
    WeakValueDictionary<int, Node> d;
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      Strong<Node> n = make<Node>("n");
      ref<Node> r1(n), r2(keep, [](const ref<Node>&) {});
      proxy<Node> p(n);
      d.set(i % 64, n);
      std::vector<ref<Node>> many(8, ref<Node>(keep));
    }
  });
  // Heap locks and collections (cycles with weakrefs: frozen objects),
  // finalizers, gc.callbacks, the unraisable hook.
  workers.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      Strong<Node> a = make<Node>("a"), b = make<Node>("b");
      a->a = b;
      b->a = a;
      ref<Node> r(a, [](const ref<Node>&) {});
      finalize f(b, [] {});
      a.reset();
      b.reset();
      gc::collect();
      get_unraisable_hook();
    }
  });
  // Threads that come and go: heap and allocator registries, the orphan
  // heap, exited threads' pools.
  workers.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      std::thread([] {
        Strong<Node> a = make<Node>("t");
        a->a = a;
        ref<Node> r(a);
      }).join();
    }
  });

  int hung = 0, failed = 0;
  constexpr int kForks = 200;
  for (int i = 0; i < kForks; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(child_program());
    int status = 0;
    if (!wait_for(pid, status, std::chrono::seconds(60))) {
      ++hung;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++failed;
      ADD_FAILURE() << "child " << i << ": " << (WIFEXITED(status) ? "exit status " : "signal ")
                    << (WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    // The parent goes on using the library too.
    Strong<Node> x = make<Node>("x");
    ref<Node> rx(x);
  }
  stop.store(true);
  for (auto& t : workers) t.join();
  EXPECT_EQ(hung, 0) << hung << " of " << kForks << " children hung";
  EXPECT_EQ(failed, 0);
  gc::collect();
}

}  // namespace
}  // namespace weakref::testing
