// weakref::WeakSet: Python's WeakSet, plus what the C++ spelling promises
// (iteration under deaths, one weakref per element, the collector's view).
#include <algorithm>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using WeakSetTest = Test;

std::vector<std::string> labels(const WeakSet<Node>& s) {
  std::vector<std::string> out;
  for (const Strong<Node>& n : s) out.push_back(n->label);
  return out;
}

TEST_F(WeakSetTest, AddingTwiceKeepsOneElementAndOneWeakref) {
  Strong<Node> a = make<Node>("A");
  WeakSet<Node> s;
  s.add(a);
  s.add(a);
  EXPECT_EQ(s.size(), 1U);
  EXPECT_EQ(getweakrefcount(a), 1U);
  std::vector<ref<>> refs = getweakrefs(a);
  ASSERT_EQ(refs.size(), 1U);
  EXPECT_TRUE(refs[0].has_callback());
  EXPECT_TRUE(refs[0]() == a);
  EXPECT_TRUE(s.contains(a));
  EXPECT_EQ(s.count(a), 1U);
}

TEST_F(WeakSetTest, ElementDisappearsWhenItsObjectDies) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  WeakSet<Node> s{a, b};
  EXPECT_EQ(s.size(), 2U);
  a.reset();
  EXPECT_EQ(s.size(), 1U);
  EXPECT_EQ(labels(s), std::vector<std::string>{"B"});
  b.reset();
  EXPECT_TRUE(s.empty());
}

TEST_F(WeakSetTest, ElementOfACollectedCycleDisappears) {
  WeakSet<Node> s;
  {
    Strong<Node> a = make<Node>("A");
    Strong<Node> b = make<Node>("B");
    a->a = b;
    b->a = a;
    s.add(a);
    s.add(b);
  }
  EXPECT_EQ(s.size(), 2U);
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_EQ(s.size(), 0U);
  EXPECT_TRUE(labels(s).empty());
}

TEST_F(WeakSetTest, RemoveDiscardEraseAndKeyErrorText) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  WeakSet<Node> s{a};
  EXPECT_EQ(s.erase(b), 0U);
  s.discard(b);
  try {
    s.remove(b);
    FAIL() << "no KeyError";
  } catch (const KeyError& e) {
    std::ostringstream os;
    os << b;
    EXPECT_EQ(e.what(), os.str());  // Python's repr of the element
  }
  EXPECT_THROW(s.remove(b), std::out_of_range);  // KeyError is an out_of_range
  s.remove(a);
  EXPECT_FALSE(s.contains(a));
  EXPECT_EQ(getweakrefcount(a), 0U);  // the element's weakref went with it
  s.add(a);
  EXPECT_EQ(s.erase(a), 1U);
  EXPECT_FALSE(s.contains(Strong<Node>()));
  EXPECT_THROW(s.add(Strong<Node>()), std::invalid_argument);
}

TEST_F(WeakSetTest, PopReturnsTheNewestLiveElementThenKeyError) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Strong<Node> c = make<Node>("C");
  WeakSet<Node> s{a, b, c};
  c.reset();
  EXPECT_TRUE(s.pop() == b);
  EXPECT_TRUE(s.pop() == a);
  try {
    s.pop();
    FAIL() << "no KeyError";
  } catch (const KeyError& e) {
    EXPECT_STREQ(e.what(), "'pop from empty WeakSet'");
  }
}

TEST_F(WeakSetTest, IterationYieldsLiveElementsInOrderHeldStrongly) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  WeakSet<Node> s{a, b};
  std::vector<long> counts;
  for (const Strong<Node>& n : s) counts.push_back(n.use_count());
  EXPECT_EQ(counts, (std::vector<long>{2, 2}));  // the variable and the iterator's hold
  EXPECT_EQ(labels(s), (std::vector<std::string>{"A", "B"}));
  static_assert(std::ranges::input_range<WeakSet<Node>>);
  static_assert(std::ranges::input_range<const WeakSet<Node>>);
  std::vector<Strong<Node>> all(s.begin(), s.end());
  EXPECT_EQ(all.size(), 2U);
  EXPECT_EQ(std::ranges::count_if(s, [](const Strong<Node>& n) { return n->label == "B"; }), 1);
}

TEST_F(WeakSetTest, DeathsCausedByTheLoopBodyAreNeverYielded) {
  std::vector<Strong<Node>> objs;
  WeakSet<Node> s;
  for (int i = 0; i < 10; ++i) {
    objs.push_back(make<Node>(std::to_string(i)));
    s.add(objs.back());
  }
  std::vector<std::string> seen;
  std::vector<std::size_t> sizes;
  for (const Strong<Node>& n : s) {
    seen.push_back(n->label);
    if (n->label == "0") {
      objs[0].reset();  // the current element: held by the iteration
      objs[5].reset();
      objs[9].reset();
    }
    sizes.push_back(s.size());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1", "2", "3", "4", "6", "7", "8"}));
  // The current element counted while held; gone once the iteration moved on.
  EXPECT_EQ(sizes.front(), 8U);
  EXPECT_EQ(sizes[1], 7U);
  EXPECT_EQ(s.size(), 7U);
}

TEST_F(WeakSetTest, MutationsDuringIterationAreSafe) {
  std::vector<Strong<Node>> objs;
  for (int i = 0; i < 6; ++i) objs.push_back(make<Node>(std::to_string(i)));
  WeakSet<Node> s{objs[0], objs[1], objs[2]};
  std::vector<std::string> seen;
  for (const Strong<Node>& n : s) {
    seen.push_back(n->label);
    if (n->label == "0") {
      s.remove(objs[1]);
      s.add(objs[3]);  // added during the iteration: yielded too
    }
    if (n->label == "2") s.clear();
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "2"}));
  EXPECT_TRUE(s.empty());
  for (auto& o : objs) s.add(o);
  seen.clear();
  for (const Strong<Node>& n : s) {
    seen.push_back(n->label);
    s.discard(n);  // removing the current element
  }
  EXPECT_EQ(seen.size(), 6U);
  EXPECT_TRUE(s.empty());
}

TEST_F(WeakSetTest, CollectionRunFromACallbackDuringIteration) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> g = make<Node>("G");
  WeakSet<Node> s{a, g};
  {
    Strong<Node> h = make<Node>("H");
    Strong<Node> i = make<Node>("I");
    h->a = i;
    i->a = h;
    s.add(h);
    s.add(i);
  }
  int callbacks = 0;
  ref<Node> rg(g, [&](const ref<Node>&) {
    ++callbacks;
    EXPECT_EQ(gc::collect(), 2U);
  });
  std::vector<std::string> seen;
  for (const Strong<Node>& n : s) {
    seen.push_back(n->label);
    if (n->label == "A") g.reset();
  }
  EXPECT_EQ(callbacks, 1);
  EXPECT_EQ(seen, std::vector<std::string>{"A"});
  EXPECT_EQ(s.size(), 1U);
}

TEST_F(WeakSetTest, AbandonedIteratorKeepsTheSetConsistent) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  WeakSet<Node> s{a, b};
  {
    auto it = s.begin();
    EXPECT_TRUE(*it == a);
    b.reset();
    EXPECT_EQ(s.size(), 1U);
    s.add(b = make<Node>("B2"));
    EXPECT_EQ(s.size(), 2U);
    a.reset();
    EXPECT_EQ(s.size(), 2U);  // a is held by the iterator
  }
  EXPECT_EQ(s.size(), 1U);
  EXPECT_EQ(labels(s), std::vector<std::string>{"B2"});
}

TEST_F(WeakSetTest, MovedWhileIterated) {
  std::vector<Strong<Node>> objs;
  WeakSet<Node> s;
  for (int i = 0; i < 5; ++i) {
    objs.push_back(make<Node>(std::to_string(i)));
    s.add(objs.back());
  }
  WeakSet<Node> target;
  std::vector<std::string> seen;
  for (const Strong<Node>& n : s) {
    seen.push_back(n->label);
    if (seen.size() == 2) target = std::move(s);  // s is emptied: the loop ends
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1"}));
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(target.size(), 5U);
  WeakSet<Node> other(std::move(target));
  EXPECT_EQ(other.size(), 5U);
  EXPECT_EQ(getweakrefcount(objs[0]), 1U);
}

TEST_F(WeakSetTest, PoppingEverythingFromALargeSet) {
  std::vector<Strong<Node>> objs;
  WeakSet<Node> s;
  for (int i = 0; i < 20000; ++i) {
    objs.push_back(make<Node>());
    s.add(objs.back());
  }
  std::size_t popped = 0;
  while (!s.empty()) {
    Strong<Node> x = s.pop();
    ASSERT_TRUE(x == objs[objs.size() - 1 - popped]);  // newest first
    ++popped;
  }
  EXPECT_EQ(popped, objs.size());
}

TEST_F(WeakSetTest, AlgebraMethodsAndOperators) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B"), c = make<Node>("C"),
               d = make<Node>("D");
  const WeakSet<Node> s1{a, b, c};
  const WeakSet<Node> s2{b, c, d};
  std::vector<Strong<Node>> v2{b, c, d};
  auto sorted = [](const WeakSet<Node>& s) {
    auto l = labels(s);
    std::sort(l.begin(), l.end());
    return l;
  };
  using L = std::vector<std::string>;
  EXPECT_EQ(sorted(s1.union_(s2)), (L{"A", "B", "C", "D"}));
  EXPECT_EQ(sorted(s1 | v2), (L{"A", "B", "C", "D"}));
  EXPECT_EQ(sorted(s1.intersection(v2)), (L{"B", "C"}));
  EXPECT_EQ(sorted(s1 & s2), (L{"B", "C"}));
  EXPECT_EQ(sorted(s1.difference(v2)), (L{"A"}));
  EXPECT_EQ(sorted(s1 - s2), (L{"A"}));
  EXPECT_EQ(sorted(s1.symmetric_difference(v2)), (L{"A", "D"}));
  EXPECT_EQ(sorted(s1 ^ s2), (L{"A", "D"}));

  WeakSet<Node> t = s1;
  t |= v2;
  EXPECT_EQ(sorted(t), (L{"A", "B", "C", "D"}));
  t &= s1;
  EXPECT_EQ(t, s1);
  t -= std::vector<Strong<Node>>{a};
  EXPECT_EQ(sorted(t), (L{"B", "C"}));
  t ^= s2;
  EXPECT_EQ(sorted(t), (L{"D"}));
  t.intersection_update(s2);
  t.difference_update(std::vector<Strong<Node>>{});
  t.symmetric_difference_update(std::vector<Strong<Node>>{a, a});
  EXPECT_EQ(sorted(t), (L{"A", "D"}));

  EXPECT_TRUE(s1.isdisjoint(std::vector<Strong<Node>>{d}));
  EXPECT_FALSE(s1.isdisjoint(s2));
  EXPECT_TRUE(s1.issuperset(std::vector<Strong<Node>>{a, b}));
  EXPECT_TRUE((s1 & s2).issubset(s1));
  EXPECT_TRUE((s1 & s2).issubset(std::vector<Strong<Node>>{b, c}));
  EXPECT_TRUE((s1 & s2) < s1);
  EXPECT_TRUE(s1 > (s1 & s2));
  EXPECT_TRUE(s1 <= s1);
  EXPECT_FALSE(s1 < s1);
  EXPECT_FALSE(s1 <= s2);
  EXPECT_FALSE(s1 >= s2);
  EXPECT_TRUE(s1 != s2);
  EXPECT_EQ(s1, s1.copy());

  // Results hold weakrefs of their own: members vanish from all at once.
  WeakSet<Node> u = s1 | s2;
  EXPECT_EQ(getweakrefcount(b), 3U);
  v2.clear();
  b.reset();
  EXPECT_EQ(sorted(u), (L{"A", "C", "D"}));
  EXPECT_EQ(sorted(s1), (L{"A", "C"}));
}

TEST_F(WeakSetTest, InPlaceOperationsOnItself) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B");
  const WeakSet<Node> s{a, b};
  WeakSet<Node> t = s;
  WeakSet<Node>& self = t;  // t op= t (an alias: clang warns about the literal form)
  t |= self;
  EXPECT_EQ(t, s);
  t &= self;
  EXPECT_EQ(t, s);
  t -= self;
  EXPECT_TRUE(t.empty());
  t = s;
  t ^= self;
  EXPECT_TRUE(t.empty());
}

TEST_F(WeakSetTest, CopiesHaveTheirOwnWeakrefsMovesDoNot) {
  Strong<Node> a = make<Node>("A");
  WeakSet<Node> s{a};
  WeakSet<Node> c = s;
  EXPECT_EQ(getweakrefcount(a), 2U);
  WeakSet<Node> m = std::move(c);
  EXPECT_EQ(getweakrefcount(a), 2U);
  EXPECT_TRUE(m.contains(a));
  c = m;  // reuse of a moved-from set
  EXPECT_EQ(getweakrefcount(a), 3U);
  swap(c, s);
  EXPECT_TRUE(c.contains(a) && s.contains(a));
  m = WeakSet<Node>();
  EXPECT_EQ(getweakrefcount(a), 2U);
  a.reset();
  EXPECT_TRUE(c.empty() && s.empty());
}

TEST_F(WeakSetTest, PrintsLikePython) {
  WeakSet<Node> s;
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "WeakSet()");
  Strong<Node> a = make<Node>("A");
  s.add(a);
  std::ostringstream os2, obj;
  os2 << s;
  obj << a;
  EXPECT_EQ(os2.str(), "WeakSet({" + obj.str() + "})");
}

// by_value: Python's WeakSet of objects that define __eq__ and __hash__.
struct Name {
  std::string text;
  bool operator==(const Name& o) const { return text == o.text; }
};
std::ostream& operator<<(std::ostream& os, const Name& n) { return os << '\'' << n.text << '\''; }
}  // namespace
}  // namespace weakref::testing

template <>
struct std::hash<weakref::testing::Name> {
  std::size_t operator()(const weakref::testing::Name& n) const noexcept {
    return std::hash<std::string>{}(n.text);
  }
};

namespace weakref::testing {
namespace {

TEST_F(WeakSetTest, ByValueElementsCompareTheirReferents) {
  Strong<Name> a1 = make<Name>(Name{"a"});
  Strong<Name> a2 = make<Name>(Name{"a"});
  Strong<Name> b = make<Name>(Name{"b"});
  WeakSet<Name, by_value<>> s{a1, b};
  s.add(a2);  // equal to a1: no new element, no new weakref
  EXPECT_EQ(s.size(), 2U);
  EXPECT_EQ(getweakrefcount(a2), 0U);
  EXPECT_TRUE(s.contains(a2));
  EXPECT_TRUE(s.contains(Name{"a"}));  // any equal value
  EXPECT_FALSE(s.contains(Name{"z"}));
  try {
    s.remove(Name{"z"});
    FAIL();
  } catch (const KeyError& e) {
    EXPECT_STREQ(e.what(), "'z'");
  }
  s.remove(a2);  // removes a1's element
  EXPECT_FALSE(s.contains(a1));
  s.add(a2);
  EXPECT_EQ(getweakrefcount(a2), 1U);
  a2.reset();  // a1 is equal but is not the element
  EXPECT_FALSE(s.contains(a1));
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "WeakSet({'b'})");
}

// The hash is computed at insertion: a dead element's stored hash keeps the
// table right, and an element whose value changed is found by its old hash
// only (Python caches a weakref's hash the same way).
TEST_F(WeakSetTest, ByValueHashIsComputedAtInsertion) {
  std::vector<Strong<Name>> names;
  WeakSet<Name, by_value<>> s;
  for (int i = 0; i < 50; ++i) {
    std::string text = "n";  // not "n" + to_string(i): g++ 12 -O3's false -Wrestrict
    text += std::to_string(i);
    names.push_back(make<Name>(Name{text}));
    s.add(names.back());
  }
  names[3]->text = "changed";
  EXPECT_FALSE(s.contains(Name{"changed"}));
  EXPECT_FALSE(s.contains(Name{"n3"}));  // found by hash, but no longer equal
  for (int i = 0; i < 50; i += 2) names[static_cast<std::size_t>(i)].reset();
  EXPECT_EQ(s.size(), 25U);
  for (int i = 1; i < 50; i += 2)  // names[3] now hashes differently
    EXPECT_EQ(s.contains(names[static_cast<std::size_t>(i)]), i != 3) << i;
  names.clear();
  EXPECT_TRUE(s.empty());
}

// A comparison that drops the last reference to another element (CPython's
// test_weak_keyed_cascading_deletes, for sets): lookups restart and stay
// right.
TEST_F(WeakSetTest, ByValueComparisonThatKillsAnotherElement) {
  struct Key {
    int value;
    std::function<void()>* on_compare;
    bool operator==(const Key& o) const {
      if (*on_compare) std::exchange(*on_compare, nullptr)();
      return value == o.value;
    }
  };
  struct KeyHash {
    std::size_t operator()(const Key&) const noexcept { return 7; }  // all collide
  };
  std::function<void()> hook;
  std::vector<Strong<Key>> keys;
  WeakSet<Key, by_value<KeyHash>> s;
  for (int i = 0; i < 4; ++i) {
    keys.push_back(make<Key>(Key{i, &hook}));
    s.add(keys.back());
  }
  hook = [&] { keys[0].reset(); };
  EXPECT_TRUE(s.contains(Key{3, &hook}));
  EXPECT_EQ(s.size(), 3U);
  hook = [&] { keys[1].reset(); };
  s.remove(Key{2, &hook});
  EXPECT_EQ(s.size(), 1U);
}

// Elements seen through a base class are the same element as the object.
TEST_F(WeakSetTest, ElementsThroughABaseClass) {
  struct Base {
    virtual ~Base() = default;
    int base = 1;
  };
  struct Other {
    virtual ~Other() = default;
    int other = 2;
  };
  struct Both : Other, Base {
    int both = 3;
  };
  Strong<Both> x = make<Both>();
  Strong<Base> as_base = x;
  WeakSet<Base> s{as_base};
  EXPECT_TRUE(s.contains(x));
  s.add(x);
  EXPECT_EQ(s.size(), 1U);
  for (const Strong<Base>& b : s) EXPECT_EQ(b->base, 1);
  EXPECT_TRUE(s.pop() == as_base);
}

// Elements of any type, as ref<> (Python's sets hold anything weakly
// referenceable).
TEST_F(WeakSetTest, TypeErasedElements) {
  Strong<Node> a = make<Node>("A");
  Strong<Plain> b = make<Plain>(7);
  WeakSet<void> s{Strong<void>(a), Strong<void>(b)};
  WeakKeyDictionary<void, int> d;
  d.set(a, 1);
  d.set(b, 2);
  EXPECT_TRUE(s.contains(a));
  EXPECT_EQ(d.at(b), 2);
  EXPECT_EQ(getweakrefcount(a), 2U);
  a.reset();
  EXPECT_EQ(s.size(), 1U);
  EXPECT_EQ(d.size(), 1U);
  for (const Strong<void>& x : s) EXPECT_EQ(exact_pointer_cast<Plain>(x)->value, 7);
}

// -- The collector ---------------------------------------------------------------

struct Holder {
  WeakSet<Node> set;
  Strong<Holder> self;
  void trace(gc::Visitor& v) { v(set, self); }
};

TEST_F(WeakSetTest, SetHeldByGarbageIsCollectedAndItsWeakrefsDropped) {
  Strong<Node> live = make<Node>("live");
  int other_callbacks = 0;
  detail::ContainerControl* ctrl = nullptr;
  {
    Strong<Holder> h = make<Holder>();
    h->self = h;
    Strong<Node> dead = make<Node>("dead");
    dead->a = dead;
    h->set.add(live);
    h->set.add(dead);
    ref<Node> r(dead, [&](const ref<Node>&) { ++other_callbacks; });
    {
      // White box: keep the set's control block to see whether an entry
      // callback ran (it would count the death in `dead`).
      std::vector<ref<>> refs = getweakrefs(live);
      ASSERT_EQ(refs.size(), 1U);
      ctrl = static_cast<detail::EntryWeak*>(detail::HandleAccess::get(refs[0]))->control();
      ctrl->refs.fetch_add(1);
    }
    EXPECT_EQ(getweakrefcount(live), 1U);
    dead.reset();
    h.reset();
    UnraisableCapture capture;
    EXPECT_EQ(gc::collect(), 2U);  // the holder and `dead`; the set is inside
    EXPECT_TRUE(capture.messages.empty());
    EXPECT_EQ(other_callbacks, 1);  // r is not garbage: it calls back
  }
  // CPython's rule: weakrefs that are garbage themselves never call back.
  EXPECT_EQ(ctrl->dead.load(), 0);
  detail::control_release(ctrl);
  EXPECT_EQ(getweakrefcount(live), 0U);  // the set's weakref is gone
}

TEST_F(WeakSetTest, TracedSetExposesItsWeakrefs) {
  Strong<Holder> h = make<Holder>();
  Strong<Node> a = make<Node>("A");
  h->set.add(a);
  // The holder is reachable: nothing collected, the element survives.
  EXPECT_EQ(gc::collect(), 0U);
  EXPECT_TRUE(h->set.contains(a));
  // A managed set is itself a traced object (it has trace()).
  Strong<WeakSet<Node>> managed = make<WeakSet<Node>>();
  managed->add(a);
  EXPECT_TRUE(gc::is_tracked(managed));
  EXPECT_EQ(getweakrefcount(a), 2U);
}

// A weakref handed out by getweakrefs outlives the set; its later death must
// find the set's control block alive and the set gone.
TEST_F(WeakSetTest, EntryWeakrefOutlivesItsSet) {
  Strong<Node> a = make<Node>("A");
  std::vector<ref<>> kept;
  {
    WeakSet<Node> s{a};
    kept = getweakrefs(a);
  }
  ASSERT_EQ(kept.size(), 1U);
  EXPECT_TRUE(kept[0]() == a);
  a.reset();
  EXPECT_FALSE(kept[0]());
}

TEST_F(WeakSetTest, DeathOnAnotherThreadIsSeenAfterItCompletes) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  WeakSet<Node> s{a, b};
  std::thread t([x = std::move(a)]() mutable { x.reset(); });
  t.join();
  EXPECT_EQ(s.size(), 1U);
  EXPECT_EQ(labels(s), std::vector<std::string>{"B"});
  s.add(a = make<Node>("A2"));
  EXPECT_EQ(s.size(), 2U);
}

TEST_F(WeakSetTest, ManyElementsGrowCompactAndShrink) {
  std::vector<Strong<Node>> objs;
  WeakSet<Node> s;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 2000; ++i) {
      objs.push_back(make<Node>());
      s.add(objs.back());
    }
    EXPECT_EQ(s.size(), objs.size());
    for (std::size_t i = 0; i < objs.size(); i += 3) objs[i].reset();
    std::erase(objs, nullptr);
    EXPECT_EQ(s.size(), objs.size());
    for (const auto& o : objs) ASSERT_TRUE(s.contains(o));
  }
  std::size_t n = 0;
  for (const Strong<Node>& x : s) n += x ? 1 : 0;
  EXPECT_EQ(n, objs.size());
  objs.clear();
  EXPECT_TRUE(s.empty());
  s.add(make<Node>());  // dies at once
  EXPECT_TRUE(s.empty());
}

// CPython's len() counts an element until its removal callback has run: a
// callback of the dying object registered after the add (so run before the
// element's own, newest first) sees len(s) == 1 but no element.
TEST_F(WeakSetTest, SizeCountsAnElementUntilItsCallbackRunsAsInCPython) {
  WeakSet<Node> s;
  Strong<Node> a = make<Node>("A");
  s.add(a);
  std::size_t size_seen = 99, elements_seen = 99;
  ref<Node> later(a, [&] {
    size_seen = s.size();
    elements_seen = static_cast<std::size_t>(std::distance(s.begin(), s.end()));
  });
  a.reset();
  EXPECT_EQ(size_seen, 1U);
  EXPECT_EQ(elements_seen, 0U);
  EXPECT_EQ(s.size(), 0U);
  EXPECT_TRUE(s.empty());
}

}  // namespace
}  // namespace weakref::testing
