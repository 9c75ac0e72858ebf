// detail::WeakTable, the table under the three weak containers, tested
// directly (include/weakref/detail/weak_table.hpp): insertion order and
// lookups, removals that wait while the table is pinned, entries that never
// move while pinned and are compacted after, deaths counted at once and
// drained by maintain(), bounded scans, restarted probes, swap.
#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "support.hpp"
#include "weakref/detail/weak_table.hpp"

namespace weakref::testing {
namespace {

// A payload that counts its live instances.
struct Counted {
  static inline int live = 0;
  int id;
  explicit Counted(int i) noexcept : id(i) { ++live; }
  Counted(Counted&& o) noexcept : id(o.id) { ++live; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  ~Counted() { --live; }
};

// Entries keyed by their payload, with a stored hash (as a
// WeakValueDictionary with a costly hash).
struct PayloadPolicy {
  using Payload = Counted;
  static constexpr bool kStoredHash = true;
};
// Entries keyed by their referent, the hash recomputed (as a WeakSet).
struct IdentityPolicy {
  using Payload = void;
  static constexpr bool kStoredHash = false;
  template <class E>
  static std::size_t entry_hash(const E& e) noexcept {
    return detail::identity_hash(e.side->object);
  }
};

using Table = detail::WeakTable<PayloadPolicy>;
using Pin = detail::IterationGuard<Table, false>;
constexpr std::uint32_t npos = Table::npos;

class WeakTableTest : public Test {
 protected:
  void TearDown() override {
    Test::TearDown();
    EXPECT_EQ(Counted::live, 0);
  }
  template <class T>
  static detail::EntryWeak* attach(T& t, const Strong<Node>& x) {
    return detail::entry_attach(detail::StrongAccess::header(x), t.control(), 0);
  }
  // Appends an entry for x with payload id at hash (hash defaults to id).
  static std::uint32_t insert(Table& t, const Strong<Node>& x, int id, std::size_t hash = 0) {
    return t.insert(hash ? hash : static_cast<std::size_t>(id), attach(t, x), id);
  }
  static std::uint32_t find(const Table& t, int id, std::size_t hash = 0) {
    return t.find(hash ? hash : static_cast<std::size_t>(id),
                  [id](std::uint32_t, const auto& e) { return e.p.value.id == id; });
  }
  static std::vector<Strong<Node>> nodes(int n) {
    std::vector<Strong<Node>> out;
    for (int i = 0; i < n; ++i) out.push_back(make<Node>());
    return out;
  }
};

// Removals empty their index slot and move later entries of the cluster
// back (no dummies): every other entry stays findable, whether the removal
// follows a lookup of the same entry (its slot is the hint) or not.
TEST_F(WeakTableTest, RemovalsInsideClustersKeepTheOthersFindable) {
  constexpr int kN = 60;
  std::vector<Strong<Node>> xs = nodes(kN);
  Table t;
  // Few distinct hashes, so that entries share long clusters, which wrap
  // around the end of the index.
  auto hash = [](int id) { return static_cast<std::size_t>(1 + id % 7) * 0x9E3779B9ULL; };
  for (int i = 0; i < kN; ++i) insert(t, xs[static_cast<std::size_t>(i)], i, hash(i));
  std::vector<int> order(kN);
  for (int i = 0; i < kN; ++i) order[static_cast<std::size_t>(i)] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  std::vector<std::uint32_t> idx(kN);
  for (int i = 0; i < kN; ++i) idx[static_cast<std::size_t>(i)] = find(t, i, hash(i));
  std::vector<bool> gone(kN, false);
  for (std::size_t step = 0; step < order.size(); ++step) {
    const int id = order[step];
    if (step % 2)
      t.remove(find(t, id, hash(id)));  // right after its lookup
    else
      t.remove(idx[static_cast<std::size_t>(id)]);  // after other lookups
    t.maintain();
    gone[static_cast<std::size_t>(id)] = true;
    for (int i = 0; i < kN; ++i) {
      const std::uint32_t at = find(t, i, hash(i));
      if (gone[static_cast<std::size_t>(i)])
        EXPECT_EQ(at, npos) << i;
      else
        EXPECT_EQ(at, idx[static_cast<std::size_t>(i)]) << i << " after removing " << id;
    }
    EXPECT_EQ(t.size(), order.size() - step - 1);
  }
}

TEST_F(WeakTableTest, AppendsInInsertionOrderAndFindsByHashAndMatch) {
  std::vector<Strong<Node>> xs = nodes(4);
  Table t;
  EXPECT_EQ(insert(t, xs[0], 10), 0U);
  EXPECT_EQ(insert(t, xs[1], 11), 1U);
  EXPECT_EQ(insert(t, xs[2], 12, 99), 2U);  // colliding hashes
  EXPECT_EQ(insert(t, xs[3], 13, 99), 3U);
  EXPECT_EQ(t.size(), 4U);
  EXPECT_EQ(t.used(), 4U);
  EXPECT_EQ(find(t, 11), 1U);
  EXPECT_EQ(find(t, 12, 99), 2U);
  EXPECT_EQ(find(t, 13, 99), 3U);
  EXPECT_EQ(find(t, 14, 99), npos);
  EXPECT_EQ(find(t, 14), npos);
  EXPECT_EQ(t.hash_at(2), 99U);
  const auto* e = t.find_entry(11, [](std::uint32_t i, const auto&) { return i == 1; });
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->p.value.id, 11);
  EXPECT_EQ(detail::entry_weak(e->w)->index, 1U);
  EXPECT_EQ(getweakrefcount(xs[0]), 1U);  // each entry owns one weakref
  EXPECT_EQ(Counted::live, 4);
}

TEST_F(WeakTableTest, RemovedPayloadsWaitWhileThePinHolds) {
  std::vector<Strong<Node>> xs = nodes(3);
  Table t;
  for (int i = 0; i < 3; ++i) insert(t, xs[static_cast<std::size_t>(i)], i + 1);
  {
    Pin pin(&t);
    t.remove(find(t, 2));
    t.maintain();
    EXPECT_EQ(t.size(), 2U);
    EXPECT_EQ(find(t, 2), npos);
    EXPECT_EQ(getweakrefcount(xs[1]), 0U);  // its weakref is released at once...
    EXPECT_EQ(Counted::live, 3);            // ...its payload when unpinned
    EXPECT_EQ(t.at(1).p.value.id, 2);       // still readable
    t.clear();
    EXPECT_EQ(t.size(), 0U);
    EXPECT_EQ(Counted::live, 3);
    EXPECT_EQ(t.used(), 3U);  // positions stay while pinned
  }
  EXPECT_EQ(Counted::live, 0);
  EXPECT_EQ(t.used(), 0U);  // free entries at the end are given back
}

TEST_F(WeakTableTest, EntriesDoNotMoveWhilePinnedAndAreCompactedAfter) {
  std::vector<Strong<Node>> xs = nodes(64);
  Table t;
  for (int i = 0; i < 56; ++i) insert(t, xs[static_cast<std::size_t>(i)], i + 1);
  const Counted* last = &t.at(55).p.value;
  for (int i = 1; i <= 40; ++i) t.remove(find(t, i));
  t.maintain();
  EXPECT_EQ(t.used(), 56U);  // holes stay until an insertion needs room
  {
    Pin pin(&t);
    insert(t, xs[56], 57);  // the segments are full: a new one, no compaction
    EXPECT_EQ(t.used(), 57U);
    EXPECT_EQ(&t.at(55).p.value, last);
  }
  for (int i = 57; i < 64; ++i) insert(t, xs[static_cast<std::size_t>(i)], i + 1);
  EXPECT_EQ(t.used(), 64U);
  for (int i = 41; i <= 57; ++i) t.remove(find(t, i));
  t.maintain();
  for (std::size_t i = 0; i < 57; ++i) xs[i] = make<Node>();
  for (int i = 100; i < 190; ++i) insert(t, xs[static_cast<std::size_t>(i % 57)], i);
  // Compacted on the way: live entries moved to the front, in order, their
  // weakrefs told their new index, the index rebuilt.
  EXPECT_EQ(t.size(), 7U + 90U);
  EXPECT_EQ(t.used(), 97U);
  EXPECT_EQ(t.at(0).p.value.id, 58);
  for (int i = 58; i <= 64; ++i) EXPECT_EQ(find(t, i), static_cast<std::uint32_t>(i - 58)) << i;
  for (int i = 100; i < 190; ++i) {
    const std::uint32_t idx = find(t, i);
    ASSERT_NE(idx, npos) << i;
    EXPECT_EQ(detail::entry_weak(t.at(idx).w)->index, idx);
  }
}

TEST_F(WeakTableTest, DeathsAreCountedAtOnceAndDrainedByMaintain) {
  std::vector<Strong<Node>> xs = nodes(3);
  Table t;
  for (int i = 0; i < 3; ++i) insert(t, xs[static_cast<std::size_t>(i)], i + 1);
  xs[2].reset();  // its callback queues the entry: no table access
  EXPECT_EQ(t.size(), 2U);
  EXPECT_EQ(t.used(), 3U);
  EXPECT_EQ(Counted::live, 3);
  EXPECT_NE(find(t, 3), npos);  // in the index until drained (lookups lock)
  xs[1].reset();
  t.remove(find(t, 2));  // removed by the owner after its death was queued
  EXPECT_EQ(t.size(), 1U);
  t.maintain();
  EXPECT_EQ(t.size(), 1U);
  EXPECT_EQ(find(t, 3), npos);
  EXPECT_EQ(Counted::live, 1);
  EXPECT_EQ(t.used(), 1U);
}

TEST_F(WeakTableTest, NextLiveStopsAtTheEndItIsGiven) {
  std::vector<Strong<Node>> xs = nodes(5);
  Table t;
  for (int i = 0; i < 3; ++i) insert(t, xs[static_cast<std::size_t>(i)], i + 1);
  Pin pin(&t);
  const std::uint32_t end = t.used();
  insert(t, xs[3], 4);
  insert(t, xs[4], 5);
  xs[1].reset();
  Strong<Node> cur;
  std::vector<std::uint32_t> seen;
  for (std::uint32_t i = t.next_live(0, end, cur); i != npos; i = t.next_live(i + 1, end, cur)) {
    EXPECT_TRUE(cur == xs[i]);
    seen.push_back(i);
  }
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{0, 2}));
  EXPECT_EQ(t.next_live(0, t.used(), cur), 0U);
  EXPECT_EQ(t.next_live(3, t.used(), cur), 3U);
}

// A match that changes the table (user code: a by_value key's ==) makes the
// probe start again.
TEST_F(WeakTableTest, ProbeStartsAgainWhenTheMatchChangesTheTable) {
  std::vector<Strong<Node>> xs = nodes(4);
  Table t;
  for (int i = 0; i < 4; ++i) insert(t, xs[static_cast<std::size_t>(i)], i + 1, 7);
  int calls = 0;
  const std::uint32_t idx = t.find(7, [&](std::uint32_t i, const auto& e) {
    if (++calls == 1) {
      t.remove(i);  // claims the entry it removes: not an answer
      return true;
    }
    return e.p.value.id == 4;
  });
  EXPECT_EQ(idx, 3U);
  t.maintain();
  EXPECT_EQ(t.size(), 3U);
}

TEST_F(WeakTableTest, RemovingAndAddingAgainKeepsLookupsRight) {
  std::vector<Strong<Node>> xs = nodes(8);
  Table t;
  for (int round = 0; round < 2000; ++round) {
    const std::size_t k = static_cast<std::size_t>(round % 8);
    if (round >= 8) t.remove(find(t, round - 8, 5));
    insert(t, xs[k], round, 5);  // one hash: a long probe chain of dummies
    t.maintain();
  }
  EXPECT_EQ(t.size(), 8U);
  for (int id = 1992; id < 2000; ++id) EXPECT_NE(find(t, id, 5), npos) << id;
  EXPECT_EQ(find(t, 1991, 5), npos);
  EXPECT_EQ(Counted::live, 8);
}

TEST_F(WeakTableTest, SwapExchangesContents) {
  std::vector<Strong<Node>> xs = nodes(3);
  Table a, b;
  insert(a, xs[0], 1);
  insert(b, xs[1], 2);
  insert(b, xs[2], 3);
  a.swap(b);
  EXPECT_EQ(a.size(), 2U);
  EXPECT_EQ(b.size(), 1U);
  EXPECT_NE(find(a, 3), npos);
  EXPECT_NE(find(b, 1), npos);
  xs[2].reset();  // the death reaches the table that holds the entry now
  EXPECT_EQ(a.size(), 1U);
  EXPECT_EQ(b.size(), 1U);
}

TEST_F(WeakTableTest, TablesWithoutPayloadRecomputeTheHash) {
  std::vector<Strong<Node>> xs = nodes(20);
  detail::WeakTable<IdentityPolicy> t;
  auto hash = [](const Strong<Node>& x) {
    return detail::identity_hash(detail::StrongAccess::header(x));
  };
  for (const auto& x : xs) t.insert(hash(x), attach(t, x));
  for (std::size_t i = 0; i < xs.size(); i += 2) xs[i].reset();
  t.maintain();
  EXPECT_EQ(t.size(), 10U);
  for (std::size_t i = 1; i < xs.size(); i += 2) {
    const detail::SideTable* s = detail::side_if_any(detail::StrongAccess::header(xs[i]));
    EXPECT_NE(t.find(hash(xs[i]), [s](std::uint32_t, const auto& e) { return e.side == s; }), npos);
  }
  EXPECT_EQ(t.hash_at(t.used() - 1), hash(xs[19]));
}

}  // namespace
}  // namespace weakref::testing
