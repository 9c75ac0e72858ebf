// The collector under concurrency (run under TSan): an object found
// unreachable must never be broken up while another thread just obtained a
// strong reference to it through a weakref, or walked to it from one.
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "support.hpp"

namespace weakref::testing {
namespace {

class ThreadsGcTest : public ManualCollectionTest {};

// The owner makes 2-cycles, publishes a weakref to one member, drops its
// references and collects; the other thread locks the published weakref,
// walks the cycle (copying Strongs out of members), sometimes keeps an
// object for a while, and checks the cycle is intact whenever it holds one.
TEST_F(ThreadsGcTest, WeakLockAndWalkDuringCollection) {
  std::mutex mu;
  ref<Node> published;
  std::atomic<bool> done{false};
  std::atomic<long> seen_alive{0}, seen_dead{0};

  std::thread other([&] {
    std::vector<Strong<Node>> kept;
    unsigned i = 0;
    while (!done.load()) {
      ref<Node> r;
      {
        std::lock_guard<std::mutex> g(mu);
        r = published;
      }
      Strong<Node> x = r();
      if (!x) {
        seen_dead.fetch_add(1);
        continue;
      }
      seen_alive.fetch_add(1);
      // Walk: x -> y -> x, dropping the previous hold each step.
      for (int step = 0; step < 4; ++step) {
        Strong<Node> next = x->a;
        ASSERT_TRUE(next) << "a held object was broken up";
        ASSERT_TRUE(next->a) << "a held object's partner was broken up";
        x = next;
      }
      if (++i % 7 == 0) kept.push_back(x);  // resurrect for a while
      if (kept.size() > 5) kept.erase(kept.begin());
    }
  });

  std::size_t collected = 0;
  // At least 3000 rounds, and on until the other thread has locked a few
  // times meanwhile: on a busy machine (or one core) an optimized build can
  // finish 3000 rounds before that thread first runs.
  for (int round = 0; round < 3000 || seen_alive.load() + seen_dead.load() < 100; ++round) {
    Strong<Node> x = make<Node>("x"), y = make<Node>("y");
    x->a = y;
    y->a = x;
    {
      std::lock_guard<std::mutex> g(mu);
      published = ref<Node>(x);
    }
    x.reset();
    y.reset();
    collected += gc::collect(0);
  }
  done.store(true);
  other.join();
  {
    std::lock_guard<std::mutex> g(mu);
    published.reset();
  }
  collected += gc::collect();
  EXPECT_GT(collected, 0U);
  EXPECT_GT(seen_alive.load() + seen_dead.load(), 0);
  std::printf("locks: %ld alive, %ld dead; collected %zu\n", seen_alive.load(), seen_dead.load(),
              collected);
}

// Strong references to the owner's objects dropped on another thread while
// the owner collects: deaths of listed objects wait for the heap lock.
TEST_F(ThreadsGcTest, ForeignDeathsDuringCollection) {
  for (int round = 0; round < 200; ++round) {
    std::vector<Strong<Node>> batch;
    for (int i = 0; i < 200; ++i) {
      Strong<Node> n = make<Node>("n");
      if (i % 2) n->a = n;  // half of them cyclic
      batch.push_back(n);
    }
    std::vector<Strong<Node>> mine(batch.begin(), batch.begin() + 100);
    std::thread dropper([moved = std::move(batch)]() mutable { moved.clear(); });
    gc::collect();
    mine.clear();
    dropper.join();
    gc::collect();
  }
}

// Every thread has its own heap; collecting one does not touch the others.
TEST_F(ThreadsGcTest, HeapPerThread) {
  std::atomic<std::size_t> total{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 100; ++i) {
          Strong<Node> a = make<Node>("a"), b = make<Node>("b");
          a->a = b;
          b->a = a;
        }
        total.fetch_add(gc::collect());
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(total.load(), 3U * 50 * 100 * 2);
}

// Cycles left by an exited thread go to the orphan heap and are collected by
// a full collection on any thread.
TEST_F(ThreadsGcTest, ExitedThreadsCyclesAreCollected) {
  ref<Node> r;
  std::thread t([&] {
    Strong<Node> a = make<Node>("a");
    a->a = a;
    r = a;
  });
  t.join();
  EXPECT_TRUE(r());
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_FALSE(r());
}

// Issue 13, part 3: threads that come and go, each leaving cyclic garbage
// (fewer objects than the automatic threshold, so no collection of their
// own ever runs): the exited threads' objects count towards every thread's
// automatic collection, so the garbage stays bounded without an explicit
// collect(). (It used to pile up in the orphan heap until one: 100% of it.)
TEST(ThreadsGcAutoTest, ExitedThreadsGarbageIsCollectedAutomatically) {
  gc::collect();
  ASSERT_TRUE(gc::isenabled());
  const long start = g_live.load();
  constexpr int kRounds = 100, kThreads = 4, kCycles = 100;  // 120 000 objects
  long most = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([] {
        for (int i = 0; i < kCycles; ++i) {
          Strong<Node> a = make<Node>(), b = make<Node>(), c = make<Node>();
          a->a = b;
          b->a = c;
          c->a = a;
        }
      });
    for (auto& t : threads) t.join();
    most = std::max(most, g_live.load() - start);
  }
  // The orphan heap is collected once it received more than the threshold
  // (700) beyond a quarter of its survivors: a few rounds' worth at most.
  EXPECT_LT(most, 10000) << "garbage of exited threads piles up";
  gc::collect();
  EXPECT_EQ(g_live.load(), start);
}

}  // namespace
}  // namespace weakref::testing
