// Ephemerons under concurrency (run under TSan): keys of a WeakKeyDictionary
// held, locked and dropped by another thread while the owner's collections
// resolve the dictionary's entries. A key (or value) that the other thread
// holds is never broken up; a key it drops mid-collection is freed, by that
// thread's release or by a later collection; nothing leaks.
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

class ThreadsEphemeronTest : public ManualCollectionTest {};

struct Registry {
  WeakKeyDictionary<Node, Strong<Node>> handlers;
  void trace(gc::Visitor& v) { v(handlers); }
};

// Each round the owner makes keys (widgets) whose values (handlers) refer
// back to them, gives strong references to some and weakrefs to all to the
// other thread, drops its own and collects. The other thread drops the
// strong ones at random moments and locks the weak ones, walking from a
// locked widget to its handler (a weak member) and back: whatever it holds
// must be intact.
TEST_F(ThreadsEphemeronTest, DeathsAndLocksOnAnotherThreadDuringCollection) {
  std::mutex mu;
  std::vector<Strong<Node>> handed;  // strong references for the other thread
  std::vector<ref<Node>> published;  // weakrefs to every widget
  std::atomic<bool> done{false};
  std::atomic<long> alive{0}, dead{0};

  std::thread other([&] {
    std::vector<Strong<Node>> held;
    unsigned i = 0;
    while (!done.load()) {
      ref<Node> r;
      {
        std::lock_guard<std::mutex> g(mu);
        if (!handed.empty()) {
          held.push_back(std::move(handed.back()));
          handed.pop_back();
        }
        if (!published.empty()) r = published[i % published.size()];
      }
      if (Strong<Node> w = r()) {
        alive.fetch_add(1);
        ASSERT_EQ(w->label, "widget") << "a locked widget was broken up";
        if (Strong<Node> h = w->wa()) {
          ASSERT_TRUE(h->a) << "a held handler was broken up";
          ASSERT_EQ(h->a, w);
        }
      } else {
        dead.fetch_add(1);
      }
      if (++i % 3 == 0 && !held.empty()) held.erase(held.begin());  // a death here
      if (held.size() > 8) held.clear();
    }
  });

  Strong<Registry> registry = make<Registry>();
  std::size_t collected = 0;
  for (int round = 0; round < 400 || alive.load() + dead.load() < 100; ++round) {
    {
      std::vector<Strong<Node>> widgets;
      for (int k = 0; k < 20; ++k) {
        Strong<Node> w = make<Node>("widget");
        Strong<Node> h = make<Node>("handler");
        h->a = w;  // the handler captures its widget
        w->wa = h;
        registry->handlers.set(w, h);
        widgets.push_back(w);
      }
      std::lock_guard<std::mutex> g(mu);
      published.clear();
      for (std::size_t k = 0; k < widgets.size(); ++k) {
        published.emplace_back(widgets[k]);
        if (k % 2) handed.push_back(widgets[k]);
      }
    }
    collected += gc::collect();
    registry->handlers.prune();
  }
  done.store(true);
  other.join();
  {
    std::lock_guard<std::mutex> g(mu);
    handed.clear();
    published.clear();
  }
  collected += gc::collect();
  registry->handlers.prune();
  EXPECT_TRUE(registry->handlers.empty());
  EXPECT_GT(collected, 0U);
  std::printf("locks: %ld alive, %ld dead; collected %zu\n", alive.load(), dead.load(), collected);
}

// Keys from another thread's heap (here the orphan heap: their thread has
// exited), dropped by a third thread that collects that heap while the
// owner collects its own: the owner's collections never look at those keys'
// objects, only at their side tables, and treat them as held (ephemerons
// are resolved within one heap; docs/design.md). The values keep them until
// the dictionary lets go.
TEST_F(ThreadsEphemeronTest, KeysOfAnotherHeapDyingThere) {
  Strong<Registry> registry = make<Registry>();
  std::size_t set = 0;
  for (int round = 0; round < 50; ++round) {
    std::vector<Strong<Node>> keys;
    std::thread maker([&] {
      for (int k = 0; k < 20; ++k) keys.push_back(make<Node>("foreign"));
    });
    maker.join();
    for (const Strong<Node>& k : keys) registry->handlers.set(k, k), ++set;
    std::thread dropper([moved = std::move(keys)]() mutable {
      moved.clear();
      gc::collect();  // the orphan heap: exited threads' objects
    });
    gc::collect(0);
    dropper.join();
    gc::collect();
    registry->handlers.prune();
  }
  gc::collect();
  EXPECT_EQ(registry->handlers.size(), set);
  registry->handlers.clear();  // the keys die here, by reference counting
}

}  // namespace
}  // namespace weakref::testing
