// weakref::WeakSet: what only a set does (remove/discard, pop's text, set
// algebra and comparisons, printing, by_value elements, type-erased
// elements). What the three weak containers share (entries and weakrefs,
// iteration under deaths and mutations, copies and moves, the collector,
// threads) is tested once in test_weak_containers.cpp.
#include <algorithm>
#include <functional>
#include <iterator>
#include <ranges>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
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

// A set's iterator is a std input iterator of Strong<T>; it++ gives the
// element it was at, still held.
TEST_F(WeakSetTest, IteratorsWorkWithStdAlgorithms) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  const WeakSet<Node> s{a, b};
  static_assert(std::input_iterator<WeakSet<Node>::iterator>);
  static_assert(std::input_iterator<WeakSet<Node>::const_iterator>);
  EXPECT_EQ(std::ranges::count_if(s, [](const Strong<Node>& n) { return n->label == "B"; }), 1);
  auto it = s.begin();
  auto was = it++;
  EXPECT_TRUE(*was == a);
  EXPECT_TRUE(*it == b);
  EXPECT_EQ(it->get(), b.get());
  EXPECT_TRUE(++it == s.end());
  EXPECT_EQ(labels(s), (std::vector<std::string>{"A", "B"}));
}

// Python's `WeakSet([a, b])` without naming the type: class template
// argument deduction from elements, a range or an iterator pair of Strong<T>.
TEST_F(WeakSetTest, DeducesTheElementType) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  WeakSet s{a, b};
  std::vector<Strong<Node>> v{b, a, b};
  WeakSet from_range(v);
  WeakSet from_iterators(v.begin(), v.end());
  static_assert(std::is_same_v<decltype(s), WeakSet<Node>>);
  static_assert(std::is_same_v<decltype(from_range), WeakSet<Node>>);
  static_assert(std::is_same_v<decltype(from_iterators), WeakSet<Node>>);
  EXPECT_EQ(labels(s), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(labels(from_range), (std::vector<std::string>{"B", "A"}));
  EXPECT_TRUE(from_iterators == from_range);
  a.reset();
  v.clear();
  EXPECT_EQ(labels(s), (std::vector<std::string>{"B"}));
  EXPECT_EQ(from_range.size(), 1U);
}

// Python's set literals as arguments: `s |= {b, c}`, `s.issubset({a, b})`.
// A braced list gives the template nothing to deduce; its default, a list
// of elements, takes it.
TEST_F(WeakSetTest, BracedListsWhereAPythonSetLiteralGoes) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B"), c = make<Node>("C");
  WeakSet<Node> s{a};
  s |= {b, c};
  EXPECT_EQ(s, (WeakSet<Node>{a, b, c}));
  s -= {c};
  EXPECT_EQ(s, (WeakSet<Node>{a, b}));
  s &= {a, c};
  EXPECT_EQ(s, (WeakSet<Node>{a}));
  s ^= {a, b};
  EXPECT_EQ(s, (WeakSet<Node>{b}));
  EXPECT_TRUE(s.issubset({a, b}));
  EXPECT_FALSE(s.issubset({a}));
  EXPECT_TRUE(s.issuperset({b}));
  EXPECT_FALSE(s.issuperset({a, b}));
  EXPECT_TRUE(s.isdisjoint({a, c}));
  EXPECT_FALSE(s.isdisjoint({b}));
  EXPECT_EQ(s.union_({a}), (WeakSet<Node>{a, b}));
  EXPECT_EQ(s.intersection({a, b}), (WeakSet<Node>{b}));
  EXPECT_EQ(s.difference({b}), WeakSet<Node>{});
  EXPECT_EQ(s.symmetric_difference({b, c}), (WeakSet<Node>{c}));
  s.update({a});
  s.symmetric_difference_update({a, c});
  EXPECT_EQ(s, (WeakSet<Node>{b, c}));
  s.intersection_update({c});
  EXPECT_EQ(s, (WeakSet<Node>{c}));
  s.difference_update({c});
  EXPECT_TRUE(s.empty());
}

TEST_F(WeakSetTest, AlgebraMethodsAndOperators) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B"), c = make<Node>("C"), d = make<Node>("D");
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

TEST_F(WeakSetTest, FindByValueGivesTheElement) {
  Strong<Name> a1 = make<Name>(Name{"a"});
  Strong<Name> a2 = make<Name>(Name{"a"});
  Strong<Name> b = make<Name>(Name{"b"});
  WeakSet<Name, by_value<>> s{a1, b};
  auto it = s.find(Name{"a"});
  ASSERT_TRUE(it != s.end());
  EXPECT_TRUE(*it == a1);  // the element, not an equal object
  EXPECT_TRUE(*s.find(a2) == a1);
  EXPECT_TRUE(*std::as_const(s).find(Name{"b"}) == b);
  EXPECT_TRUE(s.find(Name{"z"}) == s.end());
  EXPECT_TRUE(std::as_const(s).find(Name{"z"}) == s.cend());
  it = s.erase(it);
  EXPECT_TRUE(*it == b);
  EXPECT_FALSE(s.contains(Name{"a"}));
  EXPECT_EQ(getweakrefcount(a1), 0U);
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

}  // namespace
}  // namespace weakref::testing
