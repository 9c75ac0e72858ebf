// ConcurrentWeakValueDictionary under threads (ThreadSanitizer: the
// `threads` label): readers, writers and killers on one dictionary at once;
// setdefault races; a dictionary destroyed while its values die elsewhere.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using ThreadsConcurrentCacheTest = Test;

struct Item {
  int key;
  explicit Item(int k) : key(k) {}
};

TEST_F(ThreadsConcurrentCacheTest, ReadersWritersAndDeathsAtOnce) {
  constexpr int kKeys = 256, kRounds = 4000;
  ConcurrentWeakValueDictionary<int, Item> d(8);
  std::atomic<bool> stop{false};
  std::atomic<long> hits{0}, wrong{0};
  auto reader = [&] {
    unsigned x = 12345;
    while (!stop.load(std::memory_order_relaxed)) {
      x = x * 1103515245 + 12345;
      const int k = static_cast<int>((x >> 8) % kKeys);
      if (Strong<Item> v = d.get(k)) {
        hits.fetch_add(1, std::memory_order_relaxed);
        if (v->key != k) wrong.fetch_add(1);
      }
      (void)d.contains(k);
      if ((x & 255) == 0) (void)d.size();
    }
  };
  // Writers keep values alive in their own slots for a while, then drop
  // them: the deaths happen on the writer threads and on the killer.
  auto writer = [&](int id) {
    std::vector<Strong<Item>> mine(kKeys);
    for (int r = 0; r < kRounds; ++r) {
      const int k = (r * 7 + id * 13) % kKeys;
      Strong<Item> v = make<Item>(k);
      switch (r % 4) {
        case 0:
          d.set(k, v);
          break;
        case 1: {
          Strong<Item> got = d.setdefault(k, v);
          if (got->key != k) wrong.fetch_add(1);
          break;
        }
        case 2:
          (void)d.erase(k);
          break;
        case 3:
          (void)d.pop(k);
          break;
      }
      mine[static_cast<std::size_t>(k)] = std::move(v);  // the previous one dies here
    }
  };
  std::thread r1(reader), r2(reader);
  std::thread w1(writer, 1), w2(writer, 2);
  w1.join();
  w2.join();
  stop.store(true);
  r1.join();
  r2.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(d.size(), 0U) << "every value died with its writer's slots";
  d.prune();
  EXPECT_TRUE(d.keys().empty());
}

// Values dying while another thread erases their entries: the removal and
// the death's claim settle who counts the entry (entry_retire), or size()
// goes wrong and the drain erases a slot that is gone.
TEST_F(ThreadsConcurrentCacheTest, DeathsRaceWithErase) {
  constexpr int kKeys = 4, kRounds = 20000;
  ConcurrentWeakValueDictionary<int, Item> d(1);
  std::atomic<bool> stop{false};
  std::thread killer([&] {
    for (int r = 0; r < kRounds; ++r) {
      Strong<Item> v = make<Item>(r % kKeys);
      d.set(r % kKeys, v);
      d.set((r + 1) % kKeys, v);
    }  // v dies here, while the eraser works on its keys
    stop.store(true);
  });
  std::thread eraser([&] {
    int k = 0;
    while (!stop.load()) {
      (void)d.erase(k);
      (void)d.pop((k + 1) % kKeys);
      k = (k + 1) % kKeys;
    }
  });
  killer.join();
  eraser.join();
  EXPECT_EQ(d.size(), 0U);
  d.prune();
  EXPECT_TRUE(d.keys().empty());
  EXPECT_EQ(d.size(), 0U);
}

TEST_F(ThreadsConcurrentCacheTest, SetdefaultRacersAgreeOnTheFirstValue) {
  constexpr int kKeys = 2000;
  ConcurrentWeakValueDictionary<int, Item> d;
  std::vector<Strong<Item>> a(kKeys), b(kKeys);
  std::vector<Strong<Item>> mine_a, mine_b;
  for (int k = 0; k < kKeys; ++k) {
    mine_a.push_back(make<Item>(k));
    mine_b.push_back(make<Item>(k));
  }
  std::thread ta([&] {
    for (int k = 0; k < kKeys; ++k)
      a[static_cast<std::size_t>(k)] = d.setdefault(k, mine_a[static_cast<std::size_t>(k)]);
  });
  std::thread tb([&] {
    for (int k = kKeys - 1; k >= 0; --k)
      b[static_cast<std::size_t>(k)] = d.setdefault(k, mine_b[static_cast<std::size_t>(k)]);
  });
  ta.join();
  tb.join();
  for (int k = 0; k < kKeys; ++k) {
    const auto i = static_cast<std::size_t>(k);
    EXPECT_EQ(a[i], b[i]) << k;
    EXPECT_EQ(d.get(k), a[i]) << k;
  }
  EXPECT_EQ(d.size(), static_cast<std::size_t>(kKeys));
}

TEST_F(ThreadsConcurrentCacheTest, ValuesDieOnOtherThreadsWhileTheDictionaryGoes) {
  for (int round = 0; round < 20; ++round) {
    std::vector<Strong<Item>> values;
    auto d = std::make_unique<ConcurrentWeakValueDictionary<int, Item>>(4);
    for (int k = 0; k < 300; ++k) {
      values.push_back(make<Item>(k));
      d->set(k, values.back());
    }
    std::thread killer([&values] {
      for (auto& v : values) v.reset();
    });
    for (int k = 0; k < 100; ++k) (void)d->get(k);
    d.reset();
    killer.join();
  }
}

}  // namespace
}  // namespace weakref::testing
