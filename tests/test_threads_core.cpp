// Concurrency of the object model and weak references (run under TSan).
#include <atomic>
#include <barrier>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using ThreadsCoreTest = Test;

// While a process has one thread, counts are updated with plain loads and
// stores (detail/config.hpp, as libstdc++'s shared_ptr does). This test runs
// first in its process: it builds objects, side tables and weakrefs while
// single-threaded, then hammers the same counts from several threads, and
// the counts must come out exact.
TEST_F(ThreadsCoreTest, CountsMadeSingleThreadedStayExactWhenThreadsStart) {
  struct Payload {
    int value = 7;
  };
  const bool started_single = detail::single_threaded();
  std::vector<Strong<Payload>> objs;
  std::vector<ref<Payload>> refs;
  for (int i = 0; i < 64; ++i) {
    objs.push_back(make<Payload>());
    if (i % 2) refs.emplace_back(objs.back());  // half with a side table
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < 500; ++round)
        for (std::size_t i = 0; i < objs.size(); ++i) {
          Strong<Payload> copy = objs[i];
          if (i % 2) {
            Strong<Payload> locked = refs[i / 2]();
            EXPECT_EQ(locked->value, 7);
          }
        }
    });
  for (auto& t : threads) t.join();
  EXPECT_FALSE(detail::single_threaded());
  for (const Strong<Payload>& o : objs) EXPECT_EQ(o.use_count(), 1U);
  objs.clear();
  for (const ref<Payload>& r : refs) EXPECT_FALSE(r());
  if (!started_single) GTEST_SKIP() << "the process already had threads: nothing to transition";
}

// The weakref race: one thread dereferences a weakref while another releases
// the last strong reference. Each lock either sees the live object (and keeps
// it alive while using it) or null; never a destroyed object.
TEST_F(ThreadsCoreTest, LockRacesWithLastRelease) {
  struct Payload {
    std::atomic<int> alive{1};
    int data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ~Payload() { alive.store(0); }
  };
  constexpr int kRounds = 2000;
  for (int round = 0; round < kRounds; ++round) {
    Strong<Payload> obj = make<Payload>();
    ref<Payload> r(obj);
    std::atomic<int> callbacks{0};
    ref<Payload> rc(obj, [&](const ref<Payload>&) { callbacks.fetch_add(1); });
    std::barrier sync(2);
    std::thread reader([&] {
      sync.arrive_and_wait();
      for (int i = 0; i < 50; ++i) {
        if (Strong<Payload> s = r()) {
          EXPECT_EQ(s->alive.load(), 1);
          int sum = 0;
          for (int v : s->data) sum += v;
          EXPECT_EQ(sum, 36);
        }
      }
    });
    sync.arrive_and_wait();
    obj.reset();
    reader.join();
    EXPECT_FALSE(r());
    EXPECT_EQ(callbacks.load(), 1);
  }
}

// Copies of the same object made and dropped on many threads.
TEST_F(ThreadsCoreTest, ConcurrentCopiesAndWeakrefCreation) {
  Strong<Node> shared = make<Node>("S");
  std::atomic<int> callbacks{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        Strong<Node> copy = shared;
        ref<Node> basic(copy);
        ref<Node> cb(copy, [&](const ref<Node>&) { callbacks.fetch_add(1); });
        proxy<Node> p(copy);
        EXPECT_EQ(p->label, "S");
        EXPECT_TRUE(basic() == copy);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared.use_count(), 1);
  EXPECT_EQ(getweakrefcount(shared), 0U);
  shared.reset();
  EXPECT_EQ(callbacks.load(), 0);  // every callback weakref died first
}

// The first weak reference races with strong copies (the inline -> side
// table switch of the count word).
TEST_F(ThreadsCoreTest, SideTableSwitchRacesWithCounting) {
  for (int round = 0; round < 500; ++round) {
    Strong<Plain> obj = make<Plain>();
    std::barrier sync(3);
    std::thread copier([&] {
      sync.arrive_and_wait();
      for (int i = 0; i < 100; ++i) {
        Strong<Plain> c = obj;
      }
    });
    std::thread weak_maker([&] {
      sync.arrive_and_wait();
      ref<Plain> r(obj);
      EXPECT_TRUE(r());
    });
    sync.arrive_and_wait();
    copier.join();
    weak_maker.join();
    EXPECT_EQ(obj.use_count(), 1);
  }
}

// Callbacks run on the thread that releases the last strong reference.
TEST_F(ThreadsCoreTest, CallbackRunsOnReleasingThread) {
  Strong<Node> n = make<Node>();
  std::thread::id where;
  ref<Node> r(n, [&](const ref<Node>&) { where = std::this_thread::get_id(); });
  std::thread t([moved = std::move(n)]() mutable { moved.reset(); });
  const std::thread::id releaser = t.get_id();
  t.join();
  EXPECT_EQ(where, releaser);
}

// Finalizers called from several threads at once run exactly once.
TEST_F(ThreadsCoreTest, FinalizerRunsOnce) {
  for (int round = 0; round < 300; ++round) {
    Strong<Node> n = make<Node>();
    std::atomic<int> calls{0};
    finalize f(n, [&] { calls.fetch_add(1); });
    std::barrier sync(3);
    std::thread a([&] {
      sync.arrive_and_wait();
      f();
    });
    std::thread b([&] {
      sync.arrive_and_wait();
      n.reset();
    });
    sync.arrive_and_wait();
    f();
    a.join();
    b.join();
    EXPECT_EQ(calls.load(), 1);
  }
}

}  // namespace
}  // namespace weakref::testing
