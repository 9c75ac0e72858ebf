// The small-block allocator under threads (run under TSan): blocks freed on
// other threads than the one that allocated them, threads exiting with
// blocks still out, pools taken over by new threads.
#include <atomic>
#include <mutex>
#include <thread>

#include <weakref/detail/alloc_stats.hpp>

#include "support.hpp"

namespace weakref::testing {
namespace {

struct Sized {
  explicit Sized(int v) : value(v) { ++g_live; }
  ~Sized() { --g_live; }
  int value;
  char pad[40];
};

using ThreadsAllocTest = Test;

// Producer threads make objects and hand them over; consumer threads check
// and drop them (every free is a remote free).
TEST_F(ThreadsAllocTest, CrossThreadFrees) {
  std::mutex mu;
  std::vector<Strong<Sized>> queue;
  std::atomic<bool> done{false};
  std::atomic<long> checked{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 2; ++c)
    consumers.emplace_back([&] {
      for (;;) {
        // `done` is read before the queue: once it is set, every object is
        // in the queue, so an empty take means nothing more will come. Read
        // after, it could be set between a take that came too early and the
        // read, and both consumers leave objects unchecked.
        const bool producers_done = done.load();
        std::vector<Strong<Sized>> batch;
        {
          std::lock_guard<std::mutex> g(mu);
          batch.swap(queue);
        }
        for (auto& s : batch) {
          EXPECT_GE(s->value, 0);
          checked.fetch_add(1);
        }
        if (batch.empty() && producers_done) return;
        std::this_thread::yield();
      }
    });
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < 20000; ++i) {
        Strong<Sized> s = make<Sized>(p * 100000 + i);
        ref<Sized> r(s);  // side table and weakref object: pooled too
        std::lock_guard<std::mutex> g(mu);
        queue.push_back(std::move(s));
      }
    });
  for (auto& t : producers) t.join();
  done.store(true);
  for (auto& t : consumers) t.join();
  EXPECT_EQ(checked.load(), 40000);
}

// Threads that exit with blocks still out: the blocks stay valid, are freed
// later from another thread, and the exited thread's pools are reused.
TEST_F(ThreadsAllocTest, ThreadsExitWithBlocksOut) {
  std::vector<Strong<Sized>> kept;
  for (int round = 0; round < 20; ++round) {
    std::vector<Strong<Sized>> made;
    std::thread t([&] {
      for (int i = 0; i < 3000; ++i) made.push_back(make<Sized>(i));
      // Half die on this thread (local frees) before it exits.
      made.erase(made.begin(), made.begin() + 1500);
    });
    t.join();
    for (auto& s : made) EXPECT_LT(s->value, 3000);
    kept.insert(kept.end(), made.begin() + 1000, made.end());
    made.clear();  // freed here: remote frees into the exited thread's pages
  }
  EXPECT_EQ(kept.size(), 20U * 500);
  kept.clear();
}

// Issue 13, part 3: the memory of exited threads is given back. Threads
// allocate and exit; their blocks die on this thread (remote frees into the
// exited threads' pools, which nobody collected until a new thread took a
// pool over, and then only that one). After a collection (one of the
// points where pending remote frees into exited threads' pools are
// collected) the chunks are back with the system. pool_system_bytes()
// counts every thread's chunks.
TEST_F(ThreadsAllocTest, ExitedThreadsMemoryIsGivenBack) {
  if (!detail::pools_enabled()) GTEST_SKIP() << "AddressSanitizer build: blocks use operator new";
  gc::collect();
  const std::size_t start = detail::pool_system_bytes();
  std::size_t most = 0;
  for (int round = 0; round < 10; ++round) {
    std::vector<std::vector<Strong<Sized>>> made(8);
    std::vector<std::thread> threads;
    for (auto& m : made)
      threads.emplace_back([&m] {
        for (int i = 0; i < 20000; ++i) m.push_back(make<Sized>(i));  // ~1.3 MB each
      });
    for (auto& t : threads) t.join();
    most = std::max(most, detail::pool_system_bytes());
    made.clear();  // remote frees into the exited threads' pools
    gc::collect();
    EXPECT_LE(detail::pool_system_bytes(), start + (4U << 20))
        << "round " << round << ": exited threads' memory kept";
  }
  EXPECT_GT(most, start + (8U << 20)) << "the threads allocated less than the test assumes";
}

}  // namespace
}  // namespace weakref::testing
