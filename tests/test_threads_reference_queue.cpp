// ReferenceQueue under threads (ThreadSanitizer: the `threads` label):
// deaths posted from many threads to consumers that poll and wait, every
// entry received exactly once; finalizers posted while other threads call
// them; a queue destroyed while deaths are in flight.
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using ThreadsReferenceQueueTest = Test;
using namespace std::chrono_literals;

struct Item {
  int id;
  explicit Item(int i) : id(i) {}
};

TEST_F(ThreadsReferenceQueueTest, EveryDeathReachesExactlyOneConsumer) {
  constexpr int kProducers = 3, kPerProducer = 3000, kTotal = kProducers * kPerProducer;
  ReferenceQueue q;
  std::vector<std::atomic<int>> ran(kTotal);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p)
    threads.emplace_back([&, p] {
      std::vector<ref<Item>> keep;  // the refs must outlive the deaths
      for (int i = 0; i < kPerProducer; ++i) {
        const int id = p * kPerProducer + i;
        Strong<Item> item = make<Item>(id);
        if (i % 2)
          keep.push_back(q.ref(item, [&ran, id] { ran[id].fetch_add(1); }));
        else
          keep.push_back(q.ref(item));
        if (i % 3 == 0) std::this_thread::yield();
      }  // each item dies at the end of its iteration, on this thread
      // Entries hold their refs: dropping ours now must not matter.
    });
  // Two consumers: one polls, one waits.
  auto consume = [&](bool wait) {
    while (done.load() < kTotal) {
      std::optional<ReferenceQueue::Entry> e = wait ? q.wait_for(1ms) : q.poll();
      if (!e) {
        std::this_thread::yield();
        continue;
      }
      (*e)();
      done.fetch_add(1);
    }
  };
  std::thread c1(consume, false), c2(consume, true);
  for (auto& t : threads) t.join();
  c1.join();
  c2.join();
  EXPECT_EQ(done.load(), kTotal);
  EXPECT_TRUE(q.empty());
  for (int id = 0; id < kTotal; ++id) EXPECT_EQ(ran[id].load(), (id % kPerProducer) % 2) << id;
}

// An object holding its own queued ref: its death posts the ref (the
// queue's reference) while the death borrows it, and ~T drops the handle,
// before or after a pause that lets the consumer run and drop the entry.
// So the last release is ~T's (on the death's thread) or the consumer's
// (on another, while the death is still in ~T): either goes to the death
// (weak_object.hpp, "The death's borrow"). Every entry runs once, and
// nothing stays owed.
struct SelfQueued {
  ref<SelfQueued> self;
  bool drop_first = false;
  ~SelfQueued() {
    if (drop_first) self.reset();
    const auto until = std::chrono::steady_clock::now() + 20us;
    while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
  }
};

TEST_F(ThreadsReferenceQueueTest, QueuedRefsWhoseLastHandleGoesWithTheirReferent) {
  constexpr int kRounds = 2000;
  ReferenceQueue q;
  std::atomic<int> ran{0};
  std::atomic<int> done{0};
  std::thread consumer([&] {
    while (done.load() < kRounds) {
      if (std::optional<ReferenceQueue::Entry> e = q.poll()) {  // (busy: to race)
        (*e)();
        done.fetch_add(1);
      }
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    Strong<SelfQueued> n = make<SelfQueued>();
    n->drop_first = round % 2;
    n->self = q.ref(n, [&ran] { ran.fetch_add(1); });
    n.reset();
  }
  consumer.join();
  EXPECT_EQ(ran.load(), kRounds);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(detail::owed_releases(), 0U);
}

TEST_F(ThreadsReferenceQueueTest, BlockingPopWakesForDeathsOnOtherThreads) {
  constexpr int kDeaths = 2000;
  ReferenceQueue q;
  std::vector<Strong<Item>> items;
  std::vector<ref<Item>> refs;
  for (int i = 0; i < kDeaths; ++i) {
    items.push_back(make<Item>(i));
    refs.push_back(q.ref(items.back()));
  }
  std::thread killer([&items] {
    for (auto& it : items) {
      it.reset();
      std::this_thread::yield();
    }
  });
  std::vector<int> order;
  for (int i = 0; i < kDeaths; ++i) {
    ReferenceQueue::Entry e = q.pop();
    ASSERT_TRUE(e);
    ref<Item> r = e.as_ref<Item>();
    // One killer thread: posting order is its order of deaths.
    ASSERT_TRUE(r.is(refs[static_cast<std::size_t>(i)])) << i;
  }
  killer.join();
  EXPECT_FALSE(q.poll());
}

TEST_F(ThreadsReferenceQueueTest, FinalizersRunOnceWhilePostedAndCalled) {
  constexpr int kN = 2000;
  ReferenceQueue q;
  std::vector<std::atomic<int>> calls(kN);
  std::vector<Strong<Item>> items;
  std::vector<finalize> fins;
  for (int i = 0; i < kN; ++i) {
    items.push_back(make<Item>(i));
    fins.push_back(q.finalize(items.back(), [&calls, i] { calls[i].fetch_add(1); }));
  }
  std::atomic<bool> stop{false};
  std::thread killer([&] {
    for (auto& it : items) it.reset();
  });
  std::thread caller([&] {
    for (int i = kN - 1; i >= 0; i -= 2) fins[static_cast<std::size_t>(i)]();
  });
  std::thread owner([&] {
    while (!stop.load()) q.run_pending();
    q.run_pending();
  });
  killer.join();
  caller.join();
  stop.store(true);
  owner.join();
  for (int i = 0; i < kN; ++i) EXPECT_EQ(calls[i].load(), 1) << i;
}

TEST_F(ThreadsReferenceQueueTest, QueueDestroyedWhileDeathsAreInFlight) {
  for (int round = 0; round < 20; ++round) {
    auto token = std::make_shared<int>(0);
    std::atomic<int> callbacks{0}, finalized{0};
    std::vector<Strong<Item>> items;
    std::vector<ref<Item>> refs;
    std::vector<finalize> fins;
    auto q = std::make_unique<ReferenceQueue>();
    for (int i = 0; i < 200; ++i) {
      items.push_back(make<Item>(i));
      refs.push_back(q->ref(items.back(), [&callbacks, token] { callbacks.fetch_add(1); }));
      fins.push_back(q->finalize(items.back(), [&finalized, token] { finalized.fetch_add(1); }));
    }
    std::thread killer([&items] {
      for (auto& it : items) it.reset();
    });
    int dropped = 0;  // finalizer entries dropped unrun: detached
    std::thread poller([&q, &dropped] {
      for (int i = 0; i < 50; ++i)
        if (auto e = q->poll()) dropped += e->is_finalizer();
    });
    poller.join();
    q.reset();  // while the killer may still be posting
    killer.join();
    EXPECT_EQ(callbacks.load(), 0);
    // Each finalizer ran exactly once (settled by the queue's destruction or
    // by its death after it) or was detached by a dropped entry: never twice.
    int alive = 0;
    for (auto& f : fins) alive += f.alive();
    EXPECT_EQ(alive, 0);
    EXPECT_EQ(finalized.load() + dropped, 200);
    fins.clear();
    refs.clear();
    EXPECT_EQ(token.use_count(), 1) << "every callback and func destroyed";
  }
}

}  // namespace
}  // namespace weakref::testing
