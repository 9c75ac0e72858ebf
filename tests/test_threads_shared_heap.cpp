// weakref::SharedHeap and adoption under concurrency (run under TSan, the
// `threads` label): cycles made by several threads into one shared heap and
// collected while they all live; subgraphs built on a worker and adopted by
// their owner; readers copying out of a shared graph while a writer edits it
// and a third thread collects it; adoptions racing full collections of the
// orphan heap. No timed assertions.
#include <weakref/shared_heap.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

class ThreadsSharedHeapTest : public ManualCollectionTest {};

// Counts the callbacks of the weakrefs it makes (thread-safe).
struct Deaths {
  std::atomic<int> n{0};
  std::mutex mu;
  std::vector<ref<Node>> refs;
  void watch(const Strong<Node>& x) {
    ref<Node> r(x, [this](const ref<Node>&) { n.fetch_add(1); });
    std::lock_guard<std::mutex> g(mu);
    refs.push_back(std::move(r));
  }
};

// Two threads make objects into one shared heap and link them into cycles
// that span what both made; one of them collects the heap while both live.
TEST_F(ThreadsSharedHeapTest, CyclesMadeByTwoThreadsAreCollectedWhileBothLive) {
  SharedHeap heap;
  Deaths deaths;
  constexpr int kRounds = 200;
  std::vector<Strong<Node>> slots(kRounds);  // guarded by heap's lock
  std::promise<void> checked;
  std::shared_future<void> checked_f = checked.get_future().share();
  std::promise<void> first_done, second_done;

  // The first thread makes x_i and parks it in slot i; the second makes y_i,
  // links x_i <-> y_i and drops both.
  std::thread first([&] {
    for (int i = 0; i < kRounds; ++i) {
      std::lock_guard<SharedHeap> lock(heap);
      slots[i] = make<Node>("x");
      deaths.watch(slots[i]);
    }
    first_done.set_value();
    checked_f.wait();
  });
  std::thread second([&] {
    for (int i = 0; i < kRounds;) {
      std::lock_guard<SharedHeap> lock(heap);
      if (!slots[i]) continue;
      Strong<Node> x = std::move(slots[i]);
      Strong<Node> y = make<Node>("y");
      deaths.watch(y);
      x->a = y;
      y->a = x;
      ++i;
    }
    second_done.set_value();
    checked_f.wait();
  });
  first_done.get_future().wait();
  second_done.get_future().wait();
  // Both threads live (each waits for `checked`).
  EXPECT_EQ(gc::collect(), 0U);  // not this thread's
  EXPECT_EQ(deaths.n.load(), 0);
  EXPECT_EQ(heap.collect(), 2U * kRounds);
  EXPECT_EQ(deaths.n.load(), 2 * kRounds);
  EXPECT_TRUE(gc::garbage().empty());
  checked.set_value();
  first.join();
  second.join();
}

// A worker builds a cyclic subgraph in its own heap and disowns it; the
// owner adopts it into its own heap and its collection collects the cycles,
// while the worker lives.
TEST_F(ThreadsSharedHeapTest, WorkerDisownsOwnerAdopts) {
  Deaths deaths;
  constexpr int kNodes = 100;
  std::promise<Strong<Node>> built;
  std::promise<void> checked;
  std::size_t disowned = 0;
  std::thread worker([&] {
    Strong<Node> root = make<Node>("root");
    Strong<Node> last = root;
    for (int i = 1; i < kNodes; ++i) {
      last->a = make<Node>("n");
      last->b = root;  // every node refers back to the root
      last = last->a;
    }
    last.reset();
    deaths.watch(root);
    disowned = gc::disown(root);
    built.set_value(std::move(root));
    checked.get_future().wait();  // lives until the checks are done
  });
  Strong<Node> root = built.get_future().get();
  EXPECT_EQ(disowned, static_cast<std::size_t>(kNodes));
  EXPECT_EQ(gc::adopt(root), static_cast<std::size_t>(kNodes));
  root.reset();
  EXPECT_EQ(gc::collect(0), static_cast<std::size_t>(kNodes));
  EXPECT_EQ(deaths.n.load(), 1);
  checked.set_value();
  worker.join();
}

// A worker adopts what it built into a shared heap itself; the owner
// collects the heap while the worker lives.
TEST_F(ThreadsSharedHeapTest, WorkerAdoptsIntoTheSharedHeap) {
  SharedHeap heap;
  Deaths deaths;
  std::promise<std::size_t> adopted;
  std::promise<void> checked;
  std::thread worker([&] {
    Strong<Node> a = make<Node>("a");
    a->a = make<Node>("b");
    a->a->a = make<Node>("c");
    a->a->a->a = a;
    deaths.watch(a);
    {
      std::lock_guard<SharedHeap> lock(heap);
      const std::size_t n = heap.adopt(a);
      a.reset();
      adopted.set_value(n);
    }
    checked.get_future().wait();  // lives until the checks are done
  });
  EXPECT_EQ(adopted.get_future().get(), 3U);
  EXPECT_EQ(heap.collect(), 3U);
  EXPECT_EQ(deaths.n.load(), 1);
  checked.set_value();
  worker.join();
}

// A shared graph: a fixed array of slots, each holding a 2-cycle. A writer
// replaces cycles under the lock, linking each new one to the one it
// replaces and back (x->b = old, old->c = x) and cutting the old one's link
// to its own predecessor (old->b), so that replaced cycles become garbage;
// readers copy Strongs out under the lock, walk them there, and use and
// drop them outside it; a collector collects the heap; weakrefs to the
// graph are locked without the lock. Nothing held may ever be broken up.
// (Outside the lock the readers read only `a` and `label`, which nobody
// writes once the object is published.)
TEST_F(ThreadsSharedHeapTest, ReadersWriterAndCollectorOnOneGraph) {
  struct Graph {
    std::vector<Strong<Node>> slots;
    std::vector<ref<Node>> weak;  // guarded by the heap's lock too
  };
  SharedHeap heap;
  constexpr int kSlots = 16;
  Graph g{std::vector<Strong<Node>>(kSlots), std::vector<ref<Node>>(kSlots)};
  std::atomic<bool> done{false};
  std::atomic<long> reads{0}, collections{0};

  auto pair = [](const char* l) {
    Strong<Node> x = make<Node>(l);
    x->a = make<Node>(l);
    x->a->a = x;
    return x;
  };
  {
    std::lock_guard<SharedHeap> lock(heap);
    for (int i = 0; i < kSlots; ++i) {
      g.slots[i] = pair("init");
      g.weak[i] = ref<Node>(g.slots[i]);
    }
  }
  std::thread writer([&] {
    for (unsigned i = 0; !done.load(); ++i) {
      std::lock_guard<SharedHeap> lock(heap);
      const unsigned k = i % kSlots;
      Strong<Node> x = pair("w");
      Strong<Node>& old = g.slots[k];
      x->b = old;
      old->c = x;
      old->b.reset();
      old = x;
      g.weak[k] = ref<Node>(x);
    }
  });
  auto reader = [&] {
    std::vector<Strong<Node>> kept;
    for (unsigned i = 0; !done.load(); ++i) {
      Strong<Node> x;
      ref<Node> w;
      {
        std::lock_guard<SharedHeap> lock(heap);
        x = g.slots[i % kSlots];
        w = g.weak[(i * 7) % kSlots];
        // Walk under the lock: members are read only while it is held.
        Strong<Node> y = x;
        for (int step = 0; step < 4 && y; ++step) {
          ASSERT_TRUE(y->a) << "a held object was broken up";
          y = step % 2 ? y->b : y->a;
        }
      }
      // Outside it: the Strong copied out stays valid, its object whole.
      EXPECT_EQ(x->a->a, x) << "(label " << x->label << ")";
      if (Strong<Node> z = w()) {
        EXPECT_TRUE(z->label == "w" || z->label == "init");
      }
      if (i % 5 == 0) kept.push_back(x);
      if (kept.size() > 8) kept.erase(kept.begin());
      reads.fetch_add(1);
    }
  };
  std::thread r1(reader), r2(reader);
  std::thread collector([&] {
    while (!done.load()) {
      heap.collect(static_cast<int>(collections.load() % 3));
      collections.fetch_add(1);
    }
  });
  while (reads.load() < 3000 || collections.load() < 100) std::this_thread::yield();
  done.store(true);
  writer.join();
  r1.join();
  r2.join();
  collector.join();
  {
    std::lock_guard<SharedHeap> lock(heap);
    for (auto& s : g.slots) s.reset();
  }
  heap.collect();
  for (auto& w : g.weak) EXPECT_FALSE(w());
}

// Workers disown cycles and hand them over; an adopter adopts them into a
// shared heap and drops them, while another thread runs full collections
// (which collect the orphan heap the adopter takes from). The adopted cycles
// are collected while every thread lives.
TEST_F(ThreadsSharedHeapTest, AdoptionsRaceFullCollections) {
  SharedHeap heap;
  std::mutex mu;
  std::vector<Strong<Node>> handed;  // guarded by mu
  std::atomic<bool> done{false};
  std::atomic<int> made{0}, adopted{0};
  constexpr int kPerWorker = 300;
  auto worker = [&] {
    for (int i = 0; i < kPerWorker; ++i) {
      Strong<Node> x = make<Node>("x");
      x->a = make<Node>("y");
      x->a->a = x;
      x->b = make<Node>("garbage");  // a cycle disowned and dropped at once
      x->b->a = x->b;
      x->b.reset();
      gc::disown(x);
      made.fetch_add(1);
      std::lock_guard<std::mutex> g(mu);
      handed.push_back(std::move(x));
    }
  };
  std::thread collector([&] {
    while (!done.load()) gc::collect();
  });
  std::thread w1(worker), w2(worker);
  std::thread adopter([&] {
    while (adopted.load() < 2 * kPerWorker) {
      Strong<Node> x;
      {
        std::lock_guard<std::mutex> g(mu);
        if (handed.empty()) continue;
        x = std::move(handed.back());
        handed.pop_back();
      }
      std::lock_guard<SharedHeap> lock(heap);
      EXPECT_EQ(heap.adopt(x), 2U);
      EXPECT_EQ(x->a->a, x);
      adopted.fetch_add(1);
    }
  });
  w1.join();
  w2.join();
  adopter.join();
  done.store(true);
  collector.join();
  EXPECT_EQ(heap.collect(), 2U * 2 * kPerWorker);  // while this thread lives
}

}  // namespace
}  // namespace weakref::testing
