// The weak containers against deaths on other threads (run under TSan).
//
// Killer threads make the objects (so collections on the killer threads kill
// the cyclic ones), hand a copy to the owner, wait until the owner has put
// them in its container and dropped its copy, then drop the last references
// -- by count, or by collecting their own heap -- while the owner keeps using
// the container. The owner checks at every step that nothing dead is ever
// yielded and that lookups return the right objects. No timing is involved:
// threads wait for counters, never for clocks.
#include <atomic>
#include <barrier>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using ThreadsContainersTest = Test;

struct Obj {
  int key;
  std::atomic<int> alive{1};
  Strong<Obj> cycle;
  explicit Obj(int k) : key(k) { ++g_live; }
  ~Obj() {
    alive.store(0);
    cycle.reset();
    --g_live;
  }
  void trace(gc::Visitor& v) { v(cycle); }
};

constexpr int kKillers = 2;
constexpr int kRounds = 60;
constexpr int kBatch = 24;

// Objects travelling from the killers to the owner.
class Inbox {
 public:
  void push(std::vector<Strong<Obj>> batch) {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& o : batch) items_.push_back(std::move(o));
  }
  std::vector<Strong<Obj>> take() {
    std::lock_guard<std::mutex> g(mu_);
    return std::exchange(items_, {});
  }

 private:
  std::mutex mu_;
  std::vector<Strong<Obj>> items_;
};

// One killer: makes batches, waits until the owner consumed them, drops
// them (some by collecting cycles on this thread).
void killer(int id, Inbox& inbox, std::atomic<long>& consumed, std::atomic<long>& sent,
            std::atomic<int>& done) {
  std::mt19937 rng(static_cast<unsigned>(id) * 7919U + 1U);
  for (int round = 0; round < kRounds; ++round) {
    std::vector<Strong<Obj>> mine;
    std::vector<Strong<Obj>> copies;
    for (int i = 0; i < kBatch; ++i) {
      auto o = make<Obj>(id * 1000000 + round * kBatch + i);
      if (rng() % 3 == 0) o->cycle = o;  // dies only by collection
      copies.push_back(o);
      mine.push_back(std::move(o));
    }
    const long target = sent.fetch_add(kBatch) + kBatch;
    inbox.push(std::move(copies));
    unsigned spins = 0;
    while (consumed.load(std::memory_order_acquire) < target) detail::spin_pause(spins);
    std::shuffle(mine.begin(), mine.end(), rng);
    for (std::size_t i = 0; i < mine.size(); ++i) {
      mine[i].reset();  // often the last reference: the death runs here
      if (i % 8 == 7) gc::collect();
    }
    gc::collect();
  }
  done.fetch_add(1);
}

// Drives `owner_step` until every killer is done, feeding it the objects.
template <class Insert, class Step>
void run_owner(Insert insert, Step owner_step) {
  Inbox inbox;
  std::atomic<long> consumed{0}, sent{0};
  std::atomic<int> done{0};
  std::vector<std::thread> killers;
  for (int k = 0; k < kKillers; ++k)
    killers.emplace_back(killer, k, std::ref(inbox), std::ref(consumed), std::ref(sent),
                         std::ref(done));
  std::mt19937 rng(12345);
  while (done.load() < kKillers) {
    std::vector<Strong<Obj>> fresh = inbox.take();
    const long n = static_cast<long>(fresh.size());
    for (auto& o : fresh) insert(o);
    fresh.clear();  // the killers hold the last references now
    consumed.fetch_add(n, std::memory_order_release);
    owner_step(rng);
  }
  for (auto& t : killers) t.join();
  // A cycle whose killer collected while the owner held it for a moment
  // survived that collection; the killers' heaps are orphans now, which a
  // full collection here collects.
  gc::collect();
}

TEST_F(ThreadsContainersTest, WeakValueDictionaryUnderForeignDeaths) {
  WeakValueDictionary<int, Obj> d;
  std::vector<int> keys;
  long yielded = 0;
  // An entry whose value lives through the test, under a key no killer
  // uses: every pass has one entry it must yield. The killers' values may
  // all be dead by the time the owner iterates (a busy machine can run the
  // killers between the owner's hand-over and its pass, every time), so
  // they alone would not make `yielded` certain.
  Strong<Obj> anchor = make<Obj>(-1);
  run_owner(
      [&](const Strong<Obj>& o) {
        d.set(o->key, o);
        keys.push_back(o->key);
      },
      [&](std::mt19937& rng) {
        if (keys.empty()) return;
        d.set(anchor->key, anchor);  // back if popitem() took it
        for (int i = 0; i < 16; ++i) {
          const int k = keys[rng() % keys.size()];
          if (Strong<Obj> v = d.get(k)) {
            ASSERT_EQ(v->key, k);
            ASSERT_EQ(v->alive.load(), 1);
          }
          (void)d.contains(k);
        }
        std::size_t before = d.size();
        std::size_t n = 0;
        bool anchor_seen = false;
        for (auto& [k, v] : d) {
          ASSERT_EQ(v->key, k);
          ASSERT_EQ(v->alive.load(), 1);
          anchor_seen |= v == anchor;
          ++n;
        }
        ASSERT_TRUE(anchor_seen);
        yielded += static_cast<long>(n);
        ASSERT_LE(n, before);
        const int k = keys[rng() % keys.size()];
        switch (rng() % 4) {
          case 0:
            (void)d.erase(k);
            break;
          case 1:
            (void)d.pop(k, nullptr);
            break;
          case 2:
            if (!d.empty()) {
              try {
                auto item = d.popitem();
                ASSERT_EQ(item.second->key, item.first);
              } catch (const KeyError&) {  // everything died meanwhile
              }
            }
            break;
          default: {
            Strong<Obj> mine = make<Obj>(k);
            d.set(k, mine);
            ASSERT_TRUE(d.get(k) == mine);
          }
        }
        if (keys.size() > 4096) keys.erase(keys.begin(), keys.begin() + 2048);
      });
  anchor.reset();
  d.prune();
  EXPECT_EQ(d.size(), 0U);  // every value is dead now
  EXPECT_EQ(d.begin(), d.end());
  EXPECT_GT(yielded, 0);
}

TEST_F(ThreadsContainersTest, WeakKeyDictionaryUnderForeignDeaths) {
  struct Value {
    int key;
    std::shared_ptr<int> resource = std::make_shared<int>(1);
  };
  WeakKeyDictionary<Obj, Value> d;
  std::weak_ptr<int> any_resource;
  run_owner(
      [&](const Strong<Obj>& o) {
        d.set(o, Value{o->key});
        if (any_resource.expired()) any_resource = d.at(o).resource;
      },
      [&](std::mt19937& rng) {
        std::size_t n = 0;
        for (auto& [k, v] : d) {
          ASSERT_EQ(k->alive.load(), 1);
          ASSERT_EQ(v.key, k->key);
          if (n++ % 3 == 0) {
            if (auto copy = d.get(k)) {
              ASSERT_EQ(copy->key, k->key);
            }
          }
        }
        if (rng() % 8 == 0) d.prune();
        if (rng() % 16 == 0) {
          WeakKeyDictionary<Obj, Value> c = d.copy();
          for (auto& [k, v] : c) ASSERT_EQ(v.key, k->key);
        }
      });
  d.prune();
  EXPECT_EQ(d.size(), 0U);
  EXPECT_TRUE(any_resource.expired());  // values went with their keys
}

TEST_F(ThreadsContainersTest, WeakSetUnderForeignDeaths) {
  WeakSet<Obj> s;
  std::vector<ref<Obj>> recent;
  run_owner(
      [&](const Strong<Obj>& o) {
        s.add(o);
        s.add(o);
        recent.emplace_back(o);
      },
      [&](std::mt19937& rng) {
        for (const Strong<Obj>& o : s) ASSERT_EQ(o->alive.load(), 1);
        for (int i = 0; i < 8 && !recent.empty(); ++i) {
          const ref<Obj>& r = recent[rng() % recent.size()];
          if (Strong<Obj> o = r()) {
            if (rng() % 4 == 0)
              s.discard(o);
            else
              (void)s.contains(o);
          }
        }
        WeakSet<Obj> other = s.copy();
        ASSERT_LE((other & s).size(), other.size());
        if (rng() % 4 == 0) {
          try {
            Strong<Obj> p = s.pop();
            ASSERT_EQ(p->alive.load(), 1);
          } catch (const KeyError&) {
          }
        }
        if (recent.size() > 2048) recent.erase(recent.begin(), recent.begin() + 1024);
      });
  recent.clear();
  s.prune();
  EXPECT_TRUE(s.empty());
}

// CPython's issue #28427, the hard way: a producer hands the owner value
// i+1, then at once drops the last reference to value i, which the owner is
// replacing by i+1 at that very moment. A death racing with the replacement
// of its own entry must never make size() wrong on the owner's thread, nor
// remove the new value.
TEST_F(ThreadsContainersTest, ReplacedEntriesRacingWithTheirDeaths) {
  constexpr int kSteps = 20000;
  WeakValueDictionary<int, Obj> d;
  WeakSet<Obj> s;
  std::mutex mu;
  Strong<Obj> slot;
  std::atomic<int> published{0}, taken{0};
  std::thread producer([&] {
    Strong<Obj> cur;
    unsigned spins = 0;
    for (int i = 1; i <= kSteps; ++i) {
      Strong<Obj> next = make<Obj>(i);
      {
        std::lock_guard<std::mutex> g(mu);
        slot = next;
      }
      published.store(i, std::memory_order_release);
      cur.reset();  // the last reference to the value being replaced
      while (taken.load(std::memory_order_acquire) < i) detail::spin_pause(spins);
      cur = std::move(next);
    }
  });
  unsigned spins = 0;
  for (int i = 1; i <= kSteps; ++i) {
    while (published.load(std::memory_order_acquire) < i) detail::spin_pause(spins);
    Strong<Obj> o;
    {
      std::lock_guard<std::mutex> g(mu);
      o = std::move(slot);
    }
    d.set(10, o);
    ASSERT_EQ(d.size(), 1U);
    ASSERT_TRUE(d.get(10) == o);
    s.clear();
    s.add(o);
    ASSERT_EQ(s.size(), 1U);
    o.reset();  // the producer holds the last reference now
    taken.store(i, std::memory_order_release);
  }
  producer.join();
  d.prune();
  s.prune();
  EXPECT_EQ(d.size(), 0U);
  EXPECT_EQ(s.size(), 0U);
}

// Const operations on several threads at once (readers under a shared lock),
// one writer under the exclusive lock, and foreign deaths all the while.
TEST_F(ThreadsContainersTest, ConstReadersShareTheContainer) {
  WeakSet<Obj> s;
  WeakValueDictionary<int, Obj> d;
  std::shared_mutex mu;
  std::atomic<bool> stop{false};
  std::atomic<long> generation{0};  // one read pass per writer step
  std::atomic<long> passes{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&] {
      long seen = -1;
      unsigned spins = 0;
      // At least one pass each, even when the owner finished before this
      // thread first ran (a busy machine): `passes` below counts on it.
      while (seen == -1 || !stop.load()) {
        const long g = generation.load();
        if (g == seen) {
          detail::spin_pause(spins);
          continue;
        }
        seen = g;
        std::shared_lock<std::shared_mutex> lock(mu);
        for (const Strong<Obj>& o : std::as_const(s)) {
          ASSERT_EQ(o->alive.load(), 1);
          ASSERT_TRUE(s.contains(o));
        }
        for (const auto& [k, v] : std::as_const(d)) {
          ASSERT_EQ(v->key, k);
          if (Strong<Obj> again = d.get(k)) {
            ASSERT_EQ(again->key, k);
          }
        }
        (void)s.size();
        (void)d.size();
        passes.fetch_add(1);
      }
    });
  run_owner(
      [&](const Strong<Obj>& o) {
        std::unique_lock<std::shared_mutex> g(mu);
        s.add(o);
        d.set(o->key, o);
      },
      [&](std::mt19937& rng) {
        if (rng() % 4 == 0) {
          std::unique_lock<std::shared_mutex> g(mu);
          s.prune();
          d.prune();
        }
        generation.fetch_add(1);
      });
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_GT(passes.load(), 0);
  s.prune();
  d.prune();
  EXPECT_TRUE(s.empty());
  EXPECT_TRUE(d.empty());
}

// Containers destroyed while their objects die on other threads: callbacks
// that arrive afterwards find the control block alive and the queue closed.
TEST_F(ThreadsContainersTest, ContainerDestroyedWhileDeathsAreInFlight) {
  for (int round = 0; round < 200; ++round) {
    std::vector<Strong<Obj>> objs;
    for (int i = 0; i < 16; ++i) objs.push_back(make<Obj>(i));
    auto s = std::make_unique<WeakSet<Obj>>();
    auto d = std::make_unique<WeakKeyDictionary<Obj, int>>();
    auto v = std::make_unique<WeakValueDictionary<int, Obj>>();
    for (auto& o : objs) {
      s->add(o);
      d->set(o, o->key);
      v->set(o->key, o);
    }
    std::barrier sync(2);
    std::thread t([&, mine = std::move(objs)]() mutable {
      sync.arrive_and_wait();
      for (auto& o : mine) o.reset();
    });
    sync.arrive_and_wait();
    if (round % 2) {
      s.reset();
      d.reset();
      v.reset();
    } else {
      v.reset();
      (void)s->size();
      d.reset();
      s.reset();
    }
    t.join();
  }
}

}  // namespace
}  // namespace weakref::testing
