// weakref::WeakKeyDictionary: what only this dictionary does (values held
// strongly and their lifetime, an existing key keeps its weakref, operator[]
// and a read-only get, by_value keys, values seen by the collector). What the
// three weak containers share is tested once in test_weak_containers.cpp.
#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using WeakKeyDictionaryTest = Test;
using Dict = WeakKeyDictionary<Node, std::string>;
using L = std::vector<std::string>;

L items(const Dict& d) {
  L out;
  for (const auto& [k, v] : d) out.push_back(k->label + "=" + v);
  std::sort(out.begin(), out.end());
  return out;
}

// A value that counts its live instances.
struct Tracked {
  static inline int live = 0;
  int id = 0;
  explicit Tracked(int i = 0) : id(i) { ++live; }
  Tracked(const Tracked& o) : id(o.id) { ++live; }
  Tracked(Tracked&& o) noexcept : id(o.id) { ++live; }
  Tracked& operator=(const Tracked&) = default;
  Tracked& operator=(Tracked&&) noexcept = default;
  ~Tracked() { --live; }
  bool operator==(const Tracked& o) const { return id == o.id; }
};

TEST_F(WeakKeyDictionaryTest, SetGetAtContains) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d;
  d.set(a, "va");
  d.set(b, "vb");
  d.set(a, "va2");  // overwrite: the same weakref
  EXPECT_EQ(getweakrefcount(a), 1U);
  EXPECT_EQ(d.size(), 2U);
  EXPECT_EQ(d.at(a), "va2");
  EXPECT_EQ(d.get(b), std::optional<std::string>("vb"));
  Strong<Node> c = make<Node>("C");
  EXPECT_EQ(d.get(c), std::nullopt);
  EXPECT_EQ(d.get(c, "def"), "def");
  EXPECT_FALSE(d.contains(c));
  EXPECT_FALSE(d.contains(Strong<Node>()));
  try {
    d.at(c);
    FAIL() << "no KeyError";
  } catch (const KeyError& e) {
    std::ostringstream os;
    os << c;
    EXPECT_EQ(e.what(), os.str());
  }
  d.at(b) += "!";
  EXPECT_EQ(items(d), (L{"A=va2", "B=vb!"}));
  EXPECT_THROW(d.set(Strong<Node>(), "x"), std::invalid_argument);
}

// Issue #12 (9): operator[] is std::map's (reading a missing key inserts a
// value-initialized value), and get() hands out a read-only copy: a change
// to it would be lost, so it does not compile
// (tests/compile_fail/wkd_get_is_read_only.cpp).
// Python's `d |= {k: v}`: a braced list of pairs on the right of |=.
TEST_F(WeakKeyDictionaryTest, OrAssignTakesABracedList) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B");
  Dict d;
  d |= {{a, "1"}, {b, "2"}};
  d |= {{a, "3"}};
  EXPECT_EQ(d.at(a), "3");
  EXPECT_EQ(d.at(b), "2");
  EXPECT_EQ(d.size(), 2U);
}

TEST_F(WeakKeyDictionaryTest, SubscriptInsertsAndGetIsReadOnly) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  WeakKeyDictionary<Node, std::vector<int>> d;
  d[a].push_back(1);  // inserted, then changed in place
  d[a].push_back(2);
  EXPECT_EQ(d.at(a), (std::vector<int>{1, 2}));
  d[b] = {7};
  EXPECT_EQ(d.size(), 2U);
  EXPECT_EQ(getweakrefcount(a), 1U);
  EXPECT_TRUE(d[b] == std::vector<int>{7});
  static_assert(std::is_const_v<decltype(d.get(a))>);
  static_assert(std::is_const_v<std::remove_reference_t<decltype(*d.get(a))>>);
  static_assert(std::is_const_v<decltype(d.get(a, {}))>);
  std::optional<std::vector<int>> copy = d.get(a);  // a copy may be taken and changed
  copy->push_back(3);
  EXPECT_EQ(d.at(a).size(), 2U);
  EXPECT_EQ(d.get(b, {}), std::vector<int>{7});
  EXPECT_THROW(d[Strong<Node>()], std::invalid_argument);
  WeakKeyDictionary<Node, int> counts;
  ++counts[a];  // value-initialized: 0
  ++counts[a];
  EXPECT_EQ(counts.at(a), 2);
  static_assert(std::is_same_v<decltype(counts.get(a, 0)), int>);  // no const scalar
}

TEST_F(WeakKeyDictionaryTest, KeysAreObjectsNotLabels) {
  Strong<Node> a = make<Node>("A");
  Dict d{{a, "old"}};
  Strong<Node> a2 = make<Node>("A");  // same label, another object
  d.set(a2, "new");
  EXPECT_EQ(items(d), (L{"A=new", "A=old"}));
}

TEST_F(WeakKeyDictionaryTest, EntryAndValueGoWhenTheKeyDies) {
  {
    WeakKeyDictionary<Node, Tracked> d;
    Strong<Node> a = make<Node>("A");
    Strong<Node> b = make<Node>("B");
    d.set(a, Tracked(1));
    d.set(b, Tracked(2));
    EXPECT_EQ(Tracked::live, 2);
    a.reset();
    EXPECT_EQ(d.size(), 1U);
    EXPECT_EQ(Tracked::live, 2);  // destroyed by the next non-const call
    d.prune();
    EXPECT_EQ(Tracked::live, 1);
    {
      Strong<Node> x = make<Node>("X");
      x->a = x;
      d.set(x, Tracked(3));
    }
    EXPECT_EQ(gc::collect(), 1U);
    EXPECT_EQ(d.size(), 1U);
    d.set(b, Tracked(4));  // applies the queued removal first
    EXPECT_EQ(Tracked::live, 1);
    EXPECT_EQ(d.at(b).id, 4);
  }
  EXPECT_EQ(Tracked::live, 0);
}

TEST_F(WeakKeyDictionaryTest, DelErasePopPopitemSetdefault) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Strong<Node> c = make<Node>("C");
  Dict d{{a, "va"}, {b, "vb"}};
  EXPECT_EQ(d.setdefault(a, "zz"), "va");
  EXPECT_EQ(d.setdefault(c, "vc"), "vc");
  d.setdefault(c) += "!";
  EXPECT_EQ(d.at(c), "vc!");
  EXPECT_EQ(d.pop(c), "vc!");
  EXPECT_THROW(d.pop(c), KeyError);
  EXPECT_EQ(d.pop(c, "def"), "def");
  EXPECT_EQ(d.erase(c), 0U);
  EXPECT_THROW(d.del(c), KeyError);
  d.set(c, "vc");
  d.del(c);
  EXPECT_EQ(getweakrefcount(c), 0U);
  {
    auto [k, v] = d.popitem();  // the newest
    EXPECT_TRUE(k == b);
    EXPECT_EQ(v, "vb");
  }
  d.set(c, "vc");
  c.reset();  // dead entries are skipped
  EXPECT_EQ(d.popitem().second, "va");
  try {
    d.popitem();
    FAIL();
  } catch (const KeyError& e) {
    EXPECT_STREQ(e.what(), "'popitem(): dictionary is empty'");
  }
}

TEST_F(WeakKeyDictionaryTest, UpdateUnionEqualityCopy) {
  Strong<Node> o1 = make<Node>("1"), o2 = make<Node>("2"), o3 = make<Node>("3");
  using IntDict = WeakKeyDictionary<Node, int>;
  IntDict d1{{o1, 1}, {o2, 2}};
  IntDict d2{{o3, 3}, {o1, 4}};
  std::map<Strong<Node>, int> m{{o2, 5}, {o3, 6}};
  std::vector<std::pair<Strong<Node>, int>> pairs{{o2, 7}, {o3, 8}};
  auto dump = [](const IntDict& d) {
    L out;
    for (const auto& [k, v] : d) out.push_back(k->label + "=" + std::to_string(v));
    std::sort(out.begin(), out.end());
    return out;
  };
  IntDict t1 = d1 | d2;
  EXPECT_EQ(dump(t1), (L{"1=4", "2=2", "3=3"}));
  IntDict t2 = d2 | m;
  EXPECT_EQ(dump(t2), (L{"1=4", "2=5", "3=6"}));
  IntDict t3 = d1.copy();
  t3 |= pairs;
  EXPECT_EQ(dump(t3), (L{"1=1", "2=7", "3=8"}));
  IntDict t4 = m | d1;
  EXPECT_EQ(dump(t4), (L{"1=1", "2=2", "3=6"}));
  d1 |= d2;
  EXPECT_EQ(d1, t1);
  EXPECT_NE(d1, t2);
  EXPECT_EQ(getweakrefcount(o1), 6U);  // d1, d2, t1..t4
  o1.reset();
  for (const IntDict* d : {&t1, &t2, &t3, &t4}) {
    for (const int& v : d->values()) {
      EXPECT_NE(v, 4);
      EXPECT_NE(v, 1);
    }
  }
}

TEST_F(WeakKeyDictionaryTest, KeyrefsAreTheEntriesWeakrefs) {
  Strong<Node> a = make<Node>("A");
  Dict d{{a, "va"}};
  std::vector<ref<Node>> refs = d.keyrefs();
  ASSERT_EQ(refs.size(), 1U);
  EXPECT_TRUE(refs[0]() == a);
  EXPECT_TRUE(getweakrefs(a)[0].is(refs[0]));
  d.del(a);
  EXPECT_TRUE(refs[0]() == a);
  a.reset();
  EXPECT_FALSE(refs[0]());
}

TEST_F(WeakKeyDictionaryTest, IterationHoldsTheKeyAndValuesAreMutable) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d{{a, "va"}, {b, "vb"}};
  for (auto& [k, v] : d) {
    EXPECT_EQ(k.use_count(), 2);
    v += "!";
  }
  for (std::string& v : d.values()) v += "?";
  L keys;
  for (const Strong<Node>& k : d.keys()) keys.push_back(k->label);
  EXPECT_EQ(keys, (L{"A", "B"}));
  EXPECT_EQ(items(d), (L{"A=va!?", "B=vb!?"}));
  static_assert(std::ranges::input_range<Dict>);
  static_assert(std::ranges::input_range<const Dict>);
}

// find() gives a (key, value) pair whose value is the entry's own; erase()
// through an iterator destroys the value once the last iteration ends.
TEST_F(WeakKeyDictionaryTest, FindChangesValuesAndErasedValuesLiveUntilTheIterationEnds) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d{{a, "va"}, {b, "vb"}};
  auto it = d.find(a);
  ASSERT_TRUE(it != d.end());
  EXPECT_TRUE(it->first == a);
  it->second += "!";
  EXPECT_EQ(d.at(a), "va!");
  EXPECT_TRUE(std::as_const(d).find(b)->second == "vb");
  static_assert(std::is_same_v<decltype((std::as_const(d).find(b)->second)), const std::string&>);

  std::vector<Strong<Node>> objs;
  WeakKeyDictionary<Node, Tracked> t;
  for (int i = 0; i < 4; ++i) {
    objs.push_back(make<Node>(std::to_string(i)));
    t.set(objs.back(), Tracked(i));
  }
  const int live = Tracked::live;
  {
    auto first = t.begin();
    for (auto i = t.begin(); i != t.end();) {
      if (i->second.id % 2)
        ++i;
      else
        i = t.erase(i);
    }
    EXPECT_EQ(t.size(), 2U);
    EXPECT_EQ(first->second.id, 0);  // erased, still readable
    EXPECT_EQ(Tracked::live, live);  // waiting for `first`
  }
  EXPECT_EQ(Tracked::live, live - 2);
  EXPECT_FALSE(t.contains(objs[0]));
  EXPECT_EQ(t.at(objs[1]).id, 1);
  // Without another iteration, erase() destroys the value when it returns end().
  EXPECT_TRUE(t.erase(t.find(objs[3])) == t.end());
  EXPECT_EQ(Tracked::live, live - 3);
}

TEST_F(WeakKeyDictionaryTest, DeathsAndMutationsDuringIteration) {
  std::vector<Strong<Node>> objs;
  WeakKeyDictionary<Node, Tracked> d;
  for (int i = 0; i < 8; ++i) {
    objs.push_back(make<Node>(std::to_string(i)));
    d.set(objs.back(), Tracked(i));
  }
  L seen;
  Tracked* value3 = &d.at(objs[3]);
  for (auto& [k, v] : d) {
    seen.push_back(k->label);
    if (k->label == "0") {
      objs[3].reset();  // dies: never yielded; its value waits for the end
      d.del(objs[5]);
      d.set(make<Node>("tmp"), Tracked(99));  // dies at once
      d.set(objs[1], Tracked(11));
      EXPECT_EQ(d.size(), 6U);
      EXPECT_EQ(Tracked::live, 9);  // removed values wait for the end; 99 too
      EXPECT_EQ(value3->id, 3);     // still alive during the iteration
    }
    if (k->label == "1") {
      EXPECT_EQ(v.id, 11);
    }
  }
  EXPECT_EQ(seen, (L{"0", "1", "2", "4", "6", "7"}));
  EXPECT_EQ(Tracked::live, 6);  // pending values went when the iteration ended
  d.clear();
  EXPECT_EQ(Tracked::live, 0);
}

TEST_F(WeakKeyDictionaryTest, MovedWhileIteratedKeepsYieldedValuesAlive) {
  std::vector<Strong<Node>> objs;
  WeakKeyDictionary<Node, Tracked> d;
  for (int i = 0; i < 4; ++i) {
    objs.push_back(make<Node>(std::to_string(i)));
    d.set(objs.back(), Tracked(i));
  }
  WeakKeyDictionary<Node, Tracked> target;
  int steps = 0;
  for (auto& [k, v] : d) {
    ++steps;
    target = std::move(d);  // d is emptied; v stays valid to the end
    EXPECT_EQ(v.id, 0);
  }
  EXPECT_EQ(steps, 1);
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(target.size(), 4U);
  EXPECT_EQ(Tracked::live, 4);
  target.clear();
  EXPECT_EQ(Tracked::live, 0);
}

// Values whose destructor uses the dictionary.
TEST_F(WeakKeyDictionaryTest, ValueDestructorMayUseTheDictionary) {
  using Hook = std::shared_ptr<int>;  // deleter = the hook
  WeakKeyDictionary<Node, Hook> d;
  std::vector<Strong<Node>> objs;
  for (int i = 0; i < 10; ++i) objs.push_back(make<Node>(std::to_string(i)));
  int fired = 0;
  auto hook = [&](int i) {
    return Hook(new int(i), [&d, &objs, &fired](int* p) {
      ++fired;
      delete p;
      d.erase(objs[9]);
      d.set(objs[8], Hook());
      EXPECT_FALSE(d.contains(objs[9]));
    });
  };
  d.set(objs[0], hook(0));
  d.set(objs[9], Hook());
  d.set(objs[0], hook(1));  // the old value's destructor runs inside set()
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(d.size(), 2U);
  d.set(objs[9], Hook());
  objs[0].reset();
  d.prune();
  EXPECT_EQ(fired, 2);
  EXPECT_EQ(d.size(), 1U);
  d.set(objs[1], hook(2));
  d.clear();  // hook(2)'s destructor runs in clear() and sets objs[8] again
  EXPECT_EQ(fired, 3);
  EXPECT_EQ(d.size(), 1U);
  EXPECT_TRUE(d.contains(objs[8]));
}

// -- by_value keys ------------------------------------------------------------------

// CPython's test Object: equal and hashed by `arg` (an explicit Hash here;
// test_weak_set.cpp uses std::hash).
struct Object {
  int arg;
  bool operator==(const Object& o) const { return arg == o.arg; }
};
struct ObjectHash {
  std::size_t operator()(const Object& o) const noexcept { return std::hash<int>{}(o.arg); }
};

TEST_F(WeakKeyDictionaryTest, ByValueKeys) {
  using VDict = WeakKeyDictionary<Object, int, by_value<ObjectHash>>;
  Strong<Object> k1 = make<Object>(Object{1});
  Strong<Object> k1b = make<Object>(Object{1});
  VDict d;
  d.set(k1, 10);
  d.set(k1b, 11);  // equal key: the value changes, the key (and weakref) stay
  EXPECT_EQ(d.size(), 1U);
  EXPECT_EQ(getweakrefcount(k1b), 0U);
  EXPECT_EQ(d.at(Object{1}), 11);
  EXPECT_TRUE(d.contains(Object{1}));
  EXPECT_FALSE(d.contains(Object{2}));
  EXPECT_TRUE(d.keys().begin()->get() == k1.get());
  EXPECT_THROW(d.at(Object{2}), KeyError);
  k1.reset();  // the key object died: an equal object is no key
  EXPECT_FALSE(d.contains(k1b));
  d.set(k1b, 12);
  EXPECT_EQ(getweakrefcount(k1b), 1U);
  // Many keys with colliding hashes, some dead: lookups stay right.
  std::vector<Strong<Object>> keys;
  for (int i = 0; i < 100; ++i) {
    keys.push_back(make<Object>(Object{i % 7 == 0 ? 1000 + i : i}));
    d.set(keys.back(), i);
  }
  for (std::size_t i = 0; i < keys.size(); i += 3) keys[i].reset();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i]) {
      EXPECT_EQ(d.at(keys[i]), static_cast<int>(i));
    }
  }
}

TEST_F(WeakKeyDictionaryTest, FindByValueKeys) {
  using VDict = WeakKeyDictionary<Object, int, by_value<ObjectHash>>;
  Strong<Object> k1 = make<Object>(Object{1});
  Strong<Object> k1b = make<Object>(Object{1});
  VDict d{{k1, 10}};
  auto it = d.find(Object{1});
  ASSERT_TRUE(it != d.end());
  EXPECT_TRUE(it->first == k1);  // the entry's key, not an equal object
  EXPECT_TRUE(std::as_const(d).find(k1b)->first == k1);
  EXPECT_TRUE(d.find(Object{2}) == d.end());
  EXPECT_TRUE(std::as_const(d).find(Object{2}) == d.cend());
  d.erase(it);
  EXPECT_TRUE(d.empty());
}

// -- The collector -------------------------------------------------------------------

struct Registry {
  WeakKeyDictionary<Node, Strong<Node>> attached;  // values hold references
  Strong<Registry> self;
  void trace(gc::Visitor& v) { v(attached, self); }
};

TEST_F(WeakKeyDictionaryTest, ValuesAreVisitedByTheCollector) {
  Strong<Registry> r = make<Registry>();
  Strong<Node> key = make<Node>("K");
  {
    Strong<Node> payload = make<Node>("P");
    payload->a = payload;  // a cycle kept alive only through the dictionary
    r->attached.set(key, payload);
  }
  EXPECT_EQ(gc::collect(), 0U);  // reachable through the registry
  EXPECT_EQ(gc::get_referents(r).size(), 1U);
  key.reset();  // the entry goes; the payload cycle is now garbage
  r->attached.prune();
  EXPECT_EQ(gc::collect(), 1U);
}

// Unlike CPython, a value that refers to its own key does not keep it alive:
// entries are ephemerons, and the key goes at the next collection while the
// dictionary lives (docs/python-mapping.md, "Ephemerons"; the cases are in
// test_ephemerons.cpp). When the dictionary is garbage too, all of it goes.
TEST_F(WeakKeyDictionaryTest, ValueReferringToItsKeyAndGarbageDictionary) {
  Strong<Registry> r = make<Registry>();
  {
    Strong<Node> key = make<Node>("K");
    r->attached.set(key, key);
  }
  EXPECT_EQ(gc::collect(), 1U);  // the key
  EXPECT_EQ(r->attached.size(), 0U);
  {
    Strong<Node> key = make<Node>("K2");
    r->attached.set(key, key);
  }
  r->self = r;
  r.reset();
  EXPECT_EQ(gc::collect(), 2U);  // the registry and the key
}

TEST_F(WeakKeyDictionaryTest, DeathOnAnotherThreadDestroysTheValueOnTheOwner) {
  WeakKeyDictionary<Node, Tracked> d;
  Strong<Node> a = make<Node>("A");
  d.set(a, Tracked(1));
  std::thread t([x = std::move(a)]() mutable {
    x.reset();
    EXPECT_EQ(Tracked::live, 1);  // not destroyed on the dying thread
  });
  t.join();
  EXPECT_EQ(d.size(), 0U);
  d.prune();
  EXPECT_EQ(Tracked::live, 0);
}

}  // namespace
}  // namespace weakref::testing
