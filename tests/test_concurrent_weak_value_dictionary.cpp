// weakref::ConcurrentWeakValueDictionary on one thread: the mapping's
// semantics, entries leaving as values die or are collected, writes
// replacing and removing entries. Threads: test_threads_concurrent_cache.cpp.
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using ConcurrentDictTest = Test;
using Dict = ConcurrentWeakValueDictionary<std::string, Node>;

TEST_F(ConcurrentDictTest, GetSetAtContains) {
  Dict d;
  EXPECT_TRUE(d.empty());
  Strong<Node> a = make<Node>("a");
  d.set("a", a);
  EXPECT_EQ(d.get("a"), a);
  EXPECT_EQ(d.at("a"), a);
  EXPECT_TRUE(d.contains("a"));
  EXPECT_EQ(d.size(), 1U);
  EXPECT_FALSE(d.get("b"));
  EXPECT_EQ(d.get("b", a), a);
  EXPECT_FALSE(d.contains("b"));
  EXPECT_THROW(d.at("b"), KeyError);
  EXPECT_EQ(getweakrefcount(a), 1U);
  EXPECT_THROW(d.set("n", Strong<Node>()), std::invalid_argument);
  EXPECT_EQ(d.size(), 1U);
}

TEST_F(ConcurrentDictTest, EntryLeavesWhenItsValueDies) {
  Dict d;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  d.set("a", a);
  d.set("b", b);
  a.reset();
  EXPECT_FALSE(d.get("a"));
  EXPECT_FALSE(d.contains("a"));
  EXPECT_EQ(d.size(), 1U);
  EXPECT_EQ(d.keys(), std::vector<std::string>{"b"});
  EXPECT_THROW(d.at("a"), KeyError);
  EXPECT_EQ(d.erase("a"), 0U) << "a dead entry is already gone";
  EXPECT_EQ(d.size(), 1U);
  d.prune();
  EXPECT_EQ(d.size(), 1U);
}

TEST_F(ConcurrentDictTest, DeathsAreAppliedByTheNextWriteOfTheShard) {
  ConcurrentWeakValueDictionary<std::string, Node> d(1);  // one shard
  std::vector<Strong<Node>> nodes;
  for (int i = 0; i < 10; ++i) {
    nodes.push_back(make<Node>(std::to_string(i)));
    d.set(std::to_string(i), nodes.back());
  }
  nodes.erase(nodes.begin(), nodes.begin() + 5);
  EXPECT_EQ(d.size(), 5U);
  Strong<Node> x = make<Node>("x");
  d.set("x", x);  // drains the five deaths
  EXPECT_EQ(d.size(), 6U);
  for (int i = 0; i < 5; ++i) d.set(std::to_string(i), x);  // reuse the freed slots
  EXPECT_EQ(d.size(), 11U);
  EXPECT_EQ(getweakrefcount(x), 6U);
}

// A key that counts its live copies: shows when entries are destroyed.
struct CountedKey {
  static inline int live = 0;
  int k;
  explicit CountedKey(int x) : k(x) { ++live; }
  CountedKey(const CountedKey& o) : k(o.k) { ++live; }
  ~CountedKey() { --live; }
  bool operator==(const CountedKey& o) const { return k == o.k; }
};
struct CountedKeyHash {
  std::size_t operator()(const CountedKey& c) const { return std::hash<int>{}(c.k); }
};

TEST_F(ConcurrentDictTest, DeadEntriesAreDestroyedByTheNextWriteOrPrune) {
  ConcurrentWeakValueDictionary<CountedKey, Node, CountedKeyHash> d(1);
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  d.set(CountedKey(1), a);
  d.set(CountedKey(2), b);
  EXPECT_EQ(CountedKey::live, 2);
  a.reset();
  EXPECT_EQ(CountedKey::live, 2) << "the death only marks the entry";
  EXPECT_EQ(d.size(), 1U);
  d.set(CountedKey(2), b);  // a write to the shard
  EXPECT_EQ(CountedKey::live, 1);
  b.reset();
  d.prune();
  EXPECT_EQ(CountedKey::live, 0);
  EXPECT_TRUE(d.empty());
}

TEST_F(ConcurrentDictTest, SetReplacesTheEntry) {
  Dict d;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  d.set("k", a);
  d.set("k", b);
  EXPECT_EQ(d.get("k"), b);
  EXPECT_EQ(getweakrefcount(a), 0U);
  EXPECT_EQ(getweakrefcount(b), 1U);
  a.reset();
  EXPECT_EQ(d.get("k"), b);
  b.reset();
  EXPECT_FALSE(d.get("k"));
  EXPECT_EQ(d.size(), 0U);
}

// d[k] = v again with the same live value: the entry keeps its weakref,
// which moves to where a new one would go (Python makes a new KeyedRef, the
// newest weakref to v): the entry's callback runs before those of weakrefs
// made since the first set, so theirs see the entry gone.
TEST_F(ConcurrentDictTest, SettingTheSameValueAgainMakesTheNewestWeakref) {
  Strong<Node> a = make<Node>("a");
  Dict d;
  d.set("k", a);
  std::vector<std::size_t> sizes;
  ref<Node> r(a, [&](const ref<Node>&) { sizes.push_back(d.size()); });
  for (int i = 0; i < 3; ++i) d.set("k", a);
  EXPECT_EQ(getweakrefcount(a), 2U);
  auto all = getweakrefs(a);
  ASSERT_EQ(all.size(), 2U);
  EXPECT_TRUE(all[1].is(r));
  all.clear();
  EXPECT_EQ(d.get("k"), a);
  a.reset();
  EXPECT_EQ(sizes, (std::vector<std::size_t>{0}));  // the entry's callback ran first
  EXPECT_FALSE(d.get("k"));
  // A dead entry is not renewed: setting a new value makes a new entry.
  Strong<Node> b = make<Node>("b");
  d.set("k", b);
  EXPECT_EQ(d.get("k"), b);
  EXPECT_EQ(d.size(), 1U);
  EXPECT_EQ(getweakrefcount(b), 1U);
}

TEST_F(ConcurrentDictTest, SetdefaultKeepsTheLiveValue) {
  Dict d;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  EXPECT_EQ(d.setdefault("k", a), a);
  EXPECT_EQ(d.setdefault("k", b), a);
  EXPECT_EQ(getweakrefcount(b), 0U);
  a.reset();
  EXPECT_EQ(d.setdefault("k", b), b) << "a dead value is replaced";
  EXPECT_EQ(d.get("k"), b);
}

TEST_F(ConcurrentDictTest, EraseAndPop) {
  Dict d;
  Strong<Node> a = make<Node>("a");
  d.set("a", a);
  d.set("b", a);
  EXPECT_EQ(d.erase("a"), 1U);
  EXPECT_EQ(d.erase("a"), 0U);
  EXPECT_EQ(d.pop("b"), a);
  EXPECT_FALSE(d.pop("b"));
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(getweakrefcount(a), 0U);
}

TEST_F(ConcurrentDictTest, ItemsAndClear) {
  Dict d;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  d.set("a", a);
  d.set("b", b);
  auto items = d.items();
  ASSERT_EQ(items.size(), 2U);
  for (auto& [k, v] : items) EXPECT_EQ(v->label, k);
  d.clear();
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(getweakrefcount(a), 0U);
}

TEST_F(ConcurrentDictTest, CollectedValuesLeave) {
  Dict d;
  Strong<Node> a = make<Node>("a");
  a->a = a;  // a self-cycle
  d.set("a", a);
  ref<Node> r(a);
  a.reset();
  EXPECT_TRUE(d.contains("a"));
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_FALSE(d.contains("a"));
  EXPECT_EQ(d.size(), 0U);
}

struct Base {
  virtual ~Base() = default;
  int base = 1;
};
struct Derived : Plain, Base {};

TEST_F(ConcurrentDictTest, ValuesThroughABaseAtAnOffset) {
  ConcurrentWeakValueDictionary<int, Base> d;
  Strong<Derived> x = make<Derived>();
  d.set(1, x);
  Strong<Base> got = d.get(1);
  ASSERT_TRUE(got);
  EXPECT_EQ(got.get(), static_cast<Base*>(x.get()));
  x.reset();
  got.reset();
  EXPECT_FALSE(d.get(1));
}

TEST_F(ConcurrentDictTest, DictionaryDestroyedBeforeItsValues) {
  Strong<Node> a = make<Node>("a");
  {
    Dict d;
    d.set("a", a);
    d.set("b", a);
  }
  EXPECT_EQ(getweakrefcount(a), 0U);
  Strong<Node> b = make<Node>("b");
  {
    Dict d;
    d.set("b", b);
    b.reset();  // queued, never drained: the destructor settles it
  }
}

TEST_F(ConcurrentDictTest, ShardCounts) {
  EXPECT_EQ(Dict().shard_count(), 64U);
  EXPECT_EQ(Dict(0).shard_count(), 1U);
  EXPECT_EQ(Dict(5).shard_count(), 8U);
  Dict one(1);
  Strong<Node> a = make<Node>("a");
  for (int i = 0; i < 100; ++i) one.set(std::to_string(i), a);
  EXPECT_EQ(one.size(), 100U);
}

}  // namespace
}  // namespace weakref::testing
