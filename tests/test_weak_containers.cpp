// What WeakSet, WeakKeyDictionary and WeakValueDictionary promise alike
// (detail/weak_container.hpp, their common core), tested once over the three:
// one weakref per entry, entries that vanish with their object, iteration
// under deaths and mutations (bounded: it ends and yields each entry at most
// once), copies and moves, popping the newest entry, the collector's view,
// deaths on other threads. What only one of them does is in
// test_weak_set.cpp, test_weak_key_dictionary.cpp and
// test_weak_value_dictionary.cpp.
#include <iterator>
#include <ranges>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

// How each container holds "the entry of object x" (an object with a label):
// a WeakSet holds x, a WeakKeyDictionary maps x to its label, a
// WeakValueDictionary maps its label to x.
enum class Held { element, key, value };

template <Held held>
struct Holds {
  template <class X>
  using Container =
      std::conditional_t<held == Held::element, WeakSet<X>,
                         std::conditional_t<held == Held::key, WeakKeyDictionary<X, std::string>,
                                            WeakValueDictionary<std::string, X>>>;
  static constexpr const char* kEmptyPop =
      held == Held::element ? "'pop from empty WeakSet'" : "'popitem(): dictionary is empty'";

  // What finds x's entry.
  template <class X>
  static auto key(const Strong<X>& x) {
    if constexpr (held == Held::value)
      return label(x);
    else
      return x;
  }
  // x's entry as an element or a (key, value) pair.
  template <class X>
  static auto item_of(const Strong<X>& x) {
    if constexpr (held == Held::element)
      return x;
    else if constexpr (held == Held::key)
      return std::pair<Strong<X>, std::string>(x, label(x));
    else
      return std::pair<std::string, Strong<X>>(label(x), x);
  }
  template <class X>
  static std::string label(const Strong<X>& x) {
    return x ? x->label : "null";
  }
  template <class C, class X>
  static void put(C& c, const Strong<X>& x) {
    if constexpr (held == Held::element) {
      c.add(x);
    } else {
      auto [k, v] = item_of(x);
      c.set(k, v);
    }
  }
  template <class C, class X>
  static bool has(const C& c, const Strong<X>& x) {
    return c.contains(key(x));
  }
  template <class C, class X>
  static std::size_t drop(C& c, const Strong<X>& x) {
    return c.erase(key(x));
  }
  // The object of an iterated element or item (and its payload goes with it).
  template <class Item>
  static const auto& object(const Item& item) {
    if constexpr (held == Held::element) {
      return item;
    } else if constexpr (held == Held::key) {
      EXPECT_EQ(item.second, item.first->label);
      return item.first;
    } else {
      EXPECT_EQ(item.first, item.second->label);
      return item.second;
    }
  }
  template <class C>
  static auto pop_newest(C& c) {
    if constexpr (held == Held::element) {
      return c.pop();
    } else {
      auto item = c.popitem();
      auto x = object(item);
      return x;
    }
  }
};
using SetKind = Holds<Held::element>;
using KeyDictKind = Holds<Held::key>;
using ValueDictKind = Holds<Held::value>;

template <class Kind>
class WeakContainerTest : public Test {
 protected:
  using C = typename Kind::template Container<Node>;

  // Objects with distinct labels (the WeakValueDictionary's keys).
  Strong<Node> node() {
    std::string label = "n";  // (not "n" + ...: g++ 12 -O2 warns falsely, -Wrestrict)
    label += std::to_string(next_++);
    return make<Node>(std::move(label));
  }
  std::vector<Strong<Node>> nodes(int n) {
    std::vector<Strong<Node>> out;
    for (int i = 0; i < n; ++i) out.push_back(node());
    return out;
  }
  // Entries for two objects in a cycle, garbage once this returns.
  void put_cycle(C& c) {
    Strong<Node> x = node();
    Strong<Node> y = node();
    x->a = y;
    y->a = x;
    Kind::put(c, x);
    Kind::put(c, y);
  }
  // A container with the entries of xs, in order.
  C holding(const std::vector<Strong<Node>>& xs) {
    C c;
    put_all(c, xs);
    return c;
  }
  void put_all(C& c, const std::vector<Strong<Node>>& xs) {
    for (const auto& x : xs)
      if (x) Kind::put(c, x);
  }
  // The labels of the objects an iteration yields, in order.
  static std::vector<std::string> labels(const C& c) {
    std::vector<std::string> out;
    for (const auto& item : c) out.push_back(Kind::object(item)->label);
    return out;
  }
  static std::vector<std::string> labels_of(const std::vector<Strong<Node>>& xs) {
    std::vector<std::string> out;
    for (const auto& x : xs)
      if (x) out.push_back(x->label);
    return out;
  }

 private:
  int next_ = 0;
};

using Kinds = ::testing::Types<SetKind, KeyDictKind, ValueDictKind>;
class KindNames {
 public:
  template <class Kind>
  static std::string GetName(int) {
    if (std::is_same_v<Kind, SetKind>) return "WeakSet";
    if (std::is_same_v<Kind, KeyDictKind>) return "WeakKeyDictionary";
    return "WeakValueDictionary";
  }
};
TYPED_TEST_SUITE(WeakContainerTest, Kinds, KindNames);

// -- Entries and their weakrefs --------------------------------------------------

TYPED_TEST(WeakContainerTest, OneEntryAndOneWeakrefPerObject) {
  using Kind = TypeParam;
  Strong<Node> a = this->node();
  typename TestFixture::C c;
  Kind::put(c, a);
  Kind::put(c, a);  // again: no second entry, one weakref
  EXPECT_EQ(c.size(), 1U);
  EXPECT_EQ(getweakrefcount(a), 1U);
  std::vector<ref<>> refs = getweakrefs(a);
  ASSERT_EQ(refs.size(), 1U);
  EXPECT_TRUE(refs[0].has_callback());
  EXPECT_TRUE(refs[0]() == a);
  EXPECT_TRUE(Kind::has(c, a));
  refs.clear();
  EXPECT_EQ(Kind::drop(c, a), 1U);
  EXPECT_EQ(getweakrefcount(a), 0U);  // the entry's weakref went with it
  EXPECT_EQ(Kind::drop(c, a), 0U);
  EXPECT_FALSE(Kind::has(c, a));
  EXPECT_THROW(Kind::put(c, Strong<Node>()), std::invalid_argument);  // Python's TypeError
  EXPECT_TRUE(c.empty());
}

TYPED_TEST(WeakContainerTest, EntryDisappearsWhenItsObjectDies) {
  Strong<Node> a = this->node(), b = this->node();
  auto c = this->holding({a, b});
  this->put_cycle(c);
  EXPECT_EQ(c.size(), 4U);
  const std::string b_label = b->label;
  a.reset();  // gone at once: size, lookups and iteration no longer see it
  EXPECT_EQ(c.size(), 3U);
  EXPECT_EQ(gc::collect(), 2U);  // a collected cycle's entries go too
  EXPECT_EQ(c.size(), 1U);
  EXPECT_EQ(TestFixture::labels(c), std::vector<std::string>{b_label});
  b.reset();
  EXPECT_TRUE(c.empty());
  EXPECT_TRUE(TestFixture::labels(c).empty());
}

// -- Iteration -------------------------------------------------------------------

TYPED_TEST(WeakContainerTest, IterationYieldsLiveEntriesInOrderHoldingTheObject) {
  using Kind = TypeParam;
  using C = typename TestFixture::C;
  std::vector<Strong<Node>> xs = this->nodes(3);
  C c = this->holding(xs);
  std::vector<long> counts;
  for (const auto& item : c) counts.push_back(Kind::object(item).use_count());
  EXPECT_EQ(counts, (std::vector<long>{2, 2, 2}));  // the vector's and the iterator's
  EXPECT_EQ(TestFixture::labels(c), TestFixture::labels_of(xs));
  static_assert(std::ranges::input_range<C>);
  static_assert(std::ranges::input_range<const C>);
  std::vector<typename C::value_type> all(c.begin(), c.end());
  EXPECT_EQ(all.size(), 3U);
  EXPECT_EQ(std::distance(c.cbegin(), c.cend()), 3);
}

TYPED_TEST(WeakContainerTest, DeathsCausedByTheLoopBodyAreNeverYielded) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(10);
  auto c = this->holding(xs);
  std::vector<std::string> seen;
  std::vector<std::size_t> sizes;
  for (const auto& item : c) {
    seen.push_back(Kind::object(item)->label);
    if (seen.size() == 1) {
      xs[0].reset();  // the current entry: its object is held by the iteration
      xs[5].reset();
      xs[9].reset();
    }
    sizes.push_back(c.size());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"n0", "n1", "n2", "n3", "n4", "n6", "n7", "n8"}));
  // The current entry counted while held; gone once the iteration moved on.
  EXPECT_EQ(sizes.front(), 8U);
  EXPECT_EQ(sizes[1], 7U);
  EXPECT_EQ(c.size(), 7U);
}

// Issue #12 (2): removing and adding the current entry again used to yield
// it again, forever. An iteration sees the entries there when it began, each
// at most once, and ends.
TYPED_TEST(WeakContainerTest, RemovingAndAddingBackDuringIterationEnds) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(4);
  auto c = this->holding(xs);
  std::vector<std::string> seen;
  for (const auto& item : c) {
    const Strong<Node> x = Kind::object(item);
    seen.push_back(x->label);
    ASSERT_LE(seen.size(), 4U) << "the iteration does not end";
    Kind::drop(c, x);
    Kind::put(c, x);  // a new entry, at the end
  }
  EXPECT_EQ(seen, TestFixture::labels_of(xs));
  EXPECT_EQ(c.size(), 4U);
  EXPECT_EQ(TestFixture::labels(c), TestFixture::labels_of(xs));
  EXPECT_EQ(getweakrefcount(xs[0]), 1U);
}

TYPED_TEST(WeakContainerTest, EntriesAddedDuringAnIterationAreNotYielded) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(3);
  std::vector<Strong<Node>> added = this->nodes(40);  // enough to grow the table
  auto c = this->holding(xs);
  std::vector<std::string> seen;
  for (const auto& item : c) {
    seen.push_back(Kind::object(item)->label);
    if (seen.size() == 2) this->put_all(c, added);
  }
  EXPECT_EQ(seen, TestFixture::labels_of(xs));
  EXPECT_EQ(c.size(), 43U);
  // A new iteration sees them.
  EXPECT_EQ(TestFixture::labels(c).size(), 43U);
}

TYPED_TEST(WeakContainerTest, RemovingDuringIterationIsSafe) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(6);
  auto c = this->holding(xs);
  std::vector<std::string> seen;
  for (const auto& item : c) {
    seen.push_back(Kind::object(item)->label);
    if (seen.size() == 1) Kind::drop(c, xs[1]);  // a later entry: never yielded
    if (seen.size() == 3) c.clear();             // everything: the loop ends
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"n0", "n2", "n3"}));
  EXPECT_TRUE(c.empty());
  this->put_all(c, xs);
  seen.clear();
  for (const auto& item : c) {
    const Strong<Node> x = Kind::object(item);
    seen.push_back(x->label);
    Kind::drop(c, x);  // the current entry
  }
  EXPECT_EQ(seen, TestFixture::labels_of(xs));
  EXPECT_TRUE(c.empty());
}

TYPED_TEST(WeakContainerTest, CollectionRunFromACallbackDuringIteration) {
  using Kind = TypeParam;
  Strong<Node> a = this->node(), g = this->node();
  auto c = this->holding({a, g});
  this->put_cycle(c);
  int callbacks = 0;
  ref<Node> rg(g, [&](const ref<Node>&) {
    ++callbacks;
    EXPECT_EQ(gc::collect(), 2U);
  });
  std::vector<std::string> seen;
  for (const auto& item : c) {
    seen.push_back(Kind::object(item)->label);
    if (seen.size() == 1) g.reset();
  }
  EXPECT_EQ(callbacks, 1);
  EXPECT_EQ(seen, std::vector<std::string>{a->label});
  EXPECT_EQ(c.size(), 1U);
}

TYPED_TEST(WeakContainerTest, AbandonedIteratorKeepsTheContainerConsistent) {
  using Kind = TypeParam;
  Strong<Node> a = this->node(), b = this->node();
  auto c = this->holding({a, b});
  Strong<Node> b2 = this->node();
  {
    auto it = c.begin();
    EXPECT_TRUE(Kind::object(*it) == a);
    b.reset();
    EXPECT_EQ(c.size(), 1U);
    Kind::put(c, b2);
    EXPECT_EQ(c.size(), 2U);
    a.reset();
    EXPECT_EQ(c.size(), 2U);  // a is held by the iterator
  }
  EXPECT_EQ(c.size(), 1U);
  EXPECT_EQ(TestFixture::labels(c), std::vector<std::string>{b2->label});
}

// -- find() and erase(iterator) ------------------------------------------------------
// std's idioms, no Python counterpart (python-mapping.md#find-and-erase-through-iterators).

TYPED_TEST(WeakContainerTest, FindHitMissAndDeadOrNullKey) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(3);
  auto c = this->holding(xs);
  auto it = c.find(Kind::key(xs[1]));
  static_assert(std::is_same_v<decltype(it), typename TestFixture::C::iterator>);
  ASSERT_TRUE(it != c.end());
  EXPECT_TRUE(Kind::object(*it) == xs[1]);      // what range-for yields
  EXPECT_EQ(Kind::object(*it).use_count(), 2);  // the vector's and the iterator's
  ++it;                                         // goes on in insertion order
  ASSERT_TRUE(it != c.end());
  EXPECT_TRUE(Kind::object(*it) == xs[2]);
  EXPECT_TRUE(++it == c.end());
  EXPECT_TRUE(c.find(Kind::key(this->node())) == c.end());  // never there
  if constexpr (std::is_same_v<Kind, ValueDictKind>) {
    xs[0].reset();  // its key is there, its value dead
    EXPECT_TRUE(c.find("n0") == c.end());
  } else {
    EXPECT_TRUE(c.find(Strong<Node>()) == c.end());
  }
}

TYPED_TEST(WeakContainerTest, FindOnAConstContainer) {
  using Kind = TypeParam;
  using C = typename TestFixture::C;
  std::vector<Strong<Node>> xs = this->nodes(2);
  const C c = this->holding(xs);
  auto it = c.find(Kind::key(xs[0]));
  static_assert(std::is_same_v<decltype(it), typename C::const_iterator>);
  ASSERT_TRUE(it != c.end());
  EXPECT_TRUE(Kind::object(*it) == xs[0]);
  EXPECT_TRUE(c.find(Kind::key(this->node())) == c.cend());
  // A non-const container's iterators convert to const_iterators.
  C m = this->holding(xs);
  typename C::const_iterator ci = m.find(Kind::key(xs[1]));
  EXPECT_TRUE(ci == m.find(Kind::key(xs[1])));
  EXPECT_TRUE(Kind::object(*ci) == xs[1]);
  EXPECT_TRUE(ci != std::as_const(m).end());
}

// The iterator holds the referent, as an iteration's does: the entry stays
// until it moves on.
TYPED_TEST(WeakContainerTest, FindIteratorKeepsItsEntryWhenTheObjectIsReleased) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(2);
  auto c = this->holding(xs);
  const auto key = Kind::key(xs[0]);
  {
    auto it = c.find(key);
    ASSERT_TRUE(it != c.end());
    if constexpr (std::is_same_v<Kind, ValueDictKind>) xs[0].reset();  // (else key holds it)
    Node* x = Kind::object(*it).get();
    EXPECT_EQ(x->label, "n0");
    EXPECT_EQ(c.size(), 2U);
    EXPECT_TRUE(c.contains(key));
  }
  if constexpr (std::is_same_v<Kind, ValueDictKind>) {
    EXPECT_EQ(c.size(), 1U);  // released with the iterator
    EXPECT_FALSE(c.contains(key));
  }
}

TYPED_TEST(WeakContainerTest, EraseWhileIteratingRemovesEveryOtherEntry) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(10);
  auto c = this->holding(xs);
  std::vector<std::string> seen;
  for (auto it = c.begin(); it != c.end();) {
    seen.push_back(Kind::object(*it)->label);
    if (seen.size() % 2 == 1)
      it = c.erase(it);
    else
      ++it;
  }
  EXPECT_EQ(seen, TestFixture::labels_of(xs));  // each entry once
  EXPECT_EQ(c.size(), 5U);
  EXPECT_EQ(TestFixture::labels(c), (std::vector<std::string>{"n1", "n3", "n5", "n7", "n9"}));
  EXPECT_EQ(getweakrefcount(xs[0]), 0U);  // the entry's weakref went with it
  EXPECT_EQ(getweakrefcount(xs[1]), 1U);
  for (std::size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(Kind::has(c, xs[i]), i % 2 == 1);
}

// The iterator holds the last reference to each object: it dies when the
// loop moves past it, after its entry is gone.
TYPED_TEST(WeakContainerTest, EraseWhileIteratingWhenTheIteratorHoldsTheLastReference) {
  std::vector<Strong<Node>> xs = this->nodes(6);
  auto c = this->holding(xs);
  std::vector<ref<Node>> watch{ref<Node>(xs[1]), ref<Node>(xs[4])};  // (not alone)
  const long live = g_live.load();
  std::size_t visited = 0;
  for (auto it = c.begin(); it != c.end();) {
    xs[visited++].reset();
    EXPECT_EQ(g_live, live - static_cast<long>(visited) + 1);  // held by it
    it = c.erase(it);
    EXPECT_EQ(g_live, live - static_cast<long>(visited));  // gone with it
    EXPECT_EQ(c.size(), xs.size() - visited);
  }
  EXPECT_EQ(visited, 6U);
  EXPECT_TRUE(c.empty());
  EXPECT_TRUE(TestFixture::labels(c).empty());
  EXPECT_FALSE(watch[0]() || watch[1]());
}

TYPED_TEST(WeakContainerTest, EraseOfTheLastEntryReturnsEnd) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(3);
  auto c = this->holding(xs);
  xs[2].reset();  // the last live entry is now xs[1]'s
  auto next = c.erase(c.find(Kind::key(xs[1])));
  EXPECT_TRUE(next == c.end());
  EXPECT_EQ(c.size(), 1U);
  auto only = c.begin();
  EXPECT_TRUE(c.erase(only) == c.end());
  EXPECT_TRUE(c.empty());
}

TYPED_TEST(WeakContainerTest, EraseThroughFindAndThroughAConstIterator) {
  using Kind = TypeParam;
  using C = typename TestFixture::C;
  std::vector<Strong<Node>> xs = this->nodes(4);
  C c = this->holding(xs);
  auto next = c.erase(c.find(Kind::key(xs[1])));
  static_assert(std::is_same_v<decltype(next), typename C::iterator>);
  ASSERT_TRUE(next != c.end());
  EXPECT_TRUE(Kind::object(*next) == xs[2]);
  EXPECT_FALSE(Kind::has(c, xs[1]));
  EXPECT_EQ(getweakrefcount(xs[1]), 0U);
  typename C::const_iterator ci = c.find(Kind::key(xs[2]));
  next = c.erase(ci);
  ASSERT_TRUE(next != c.end());
  EXPECT_TRUE(Kind::object(*next) == xs[3]);
  EXPECT_EQ(c.size(), 2U);
  EXPECT_EQ(TestFixture::labels(c), (std::vector<std::string>{"n0", "n3"}));
}

// What an erased iterator yielded stays valid until the iterations end (the
// payload waits, as for any removal during an iteration); erasing an entry
// that a removal by key took out meanwhile removes nothing more.
TYPED_TEST(WeakContainerTest, ErasedEntryStaysReadableAndErasingItAgainIsHarmless) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(3);
  auto c = this->holding(xs);
  auto it = c.find(Kind::key(xs[0]));
  auto next = c.erase(it);
  EXPECT_EQ(Kind::object(*it)->label, "n0");  // (a dictionary's payload is checked too)
  EXPECT_TRUE(Kind::object(*next) == xs[1]);
  EXPECT_EQ(Kind::drop(c, xs[1]), 1U);  // taken out under next
  next = c.erase(next);
  EXPECT_EQ(c.size(), 1U);
  EXPECT_TRUE(Kind::object(*next) == xs[2]);
  it = c.end();
  next = c.end();
  EXPECT_EQ(TestFixture::labels(c), std::vector<std::string>{"n2"});
}

TYPED_TEST(WeakContainerTest, EraseIfFoundByArgumentDependentLookup) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(7);
  auto c = this->holding(xs);
  xs[4].reset();  // dead entries are not offered
  std::vector<std::string> offered;
  const std::size_t n = erase_if(c, [&](const auto& item) {
    const std::string label = Kind::object(item)->label;
    offered.push_back(label);
    return label != "n2" && label != "n5";
  });
  EXPECT_EQ(n, 4U);
  EXPECT_EQ(offered, (std::vector<std::string>{"n0", "n1", "n2", "n3", "n5", "n6"}));
  EXPECT_EQ(TestFixture::labels(c), (std::vector<std::string>{"n2", "n5"}));
  EXPECT_EQ(c.size(), 2U);
  EXPECT_EQ(erase_if(c, [](const auto&) { return false; }), 0U);
  EXPECT_EQ(c.size(), 2U);
}

// erase(iterator)'s precondition, checked in builds with WEAKREF_DCHECKS.
TEST(WeakContainerDeathTest, EraseNeedsADereferenceableIteratorOfTheContainer) {
  if (!WEAKREF_DCHECKS) GTEST_SKIP() << "built with WEAKREF_DCHECKS off";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Strong<Node> a = make<Node>("a");
  WeakSet<Node> s{a}, other{a};
  const char* kMessage = "erase\\(iterator\\): not a dereferenceable iterator of this container";
  EXPECT_DEATH(s.erase(s.end()), kMessage);
  EXPECT_DEATH(s.erase(other.begin()), kMessage);
  EXPECT_DEATH(s.erase(std::as_const(other).find(a)), kMessage);
  EXPECT_EQ(s.size(), 1U);
}

// -- Copies and moves ------------------------------------------------------------

TYPED_TEST(WeakContainerTest, CopiesHaveTheirOwnWeakrefsMovesDoNot) {
  using Kind = TypeParam;
  using C = typename TestFixture::C;
  Strong<Node> a = this->node();
  C s;
  Kind::put(s, a);
  C c = s;
  EXPECT_EQ(getweakrefcount(a), 2U);
  C m = std::move(c);
  EXPECT_EQ(getweakrefcount(a), 2U);
  EXPECT_TRUE(Kind::has(m, a));
  c = m;  // reuse of a moved-from container
  EXPECT_EQ(getweakrefcount(a), 3U);
  swap(c, s);
  EXPECT_TRUE(Kind::has(c, a) && Kind::has(s, a));
  c.swap(m);
  EXPECT_TRUE(Kind::has(c, a) && Kind::has(m, a));
  m = C();
  EXPECT_EQ(getweakrefcount(a), 2U);
  C d = s.copy();
  EXPECT_EQ(getweakrefcount(a), 3U);
  a.reset();
  EXPECT_TRUE(c.empty() && s.empty() && d.empty());
}

TYPED_TEST(WeakContainerTest, MovedWhileIterated) {
  using Kind = TypeParam;
  using C = typename TestFixture::C;
  std::vector<Strong<Node>> xs = this->nodes(5);
  C c = this->holding(xs);
  C target;
  std::vector<std::string> seen;
  for (const auto& item : c) {
    seen.push_back(Kind::object(item)->label);
    if (seen.size() == 2) target = std::move(c);  // copied, c emptied: the loop ends
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"n0", "n1"}));
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(target.size(), 5U);
  C other(std::move(target));
  EXPECT_EQ(other.size(), 5U);
  EXPECT_EQ(TestFixture::labels(other), TestFixture::labels_of(xs));
  EXPECT_EQ(getweakrefcount(xs[0]), 1U);
}

TYPED_TEST(WeakContainerTest, UnionAndUpdateMakeWeakrefsOfTheirOwn) {
  using Kind = TypeParam;
  using C = typename TestFixture::C;
  std::vector<Strong<Node>> xs = this->nodes(3);
  C a, b;
  Kind::put(a, xs[0]);
  Kind::put(a, xs[1]);
  Kind::put(b, xs[1]);
  Kind::put(b, xs[2]);
  C u = a | b;
  EXPECT_EQ(TestFixture::labels(u), TestFixture::labels_of(xs));
  EXPECT_EQ(getweakrefcount(xs[1]), 3U);
  a |= b;
  EXPECT_EQ(TestFixture::labels(a), TestFixture::labels_of(xs));
  C from_range(u);
  from_range.update(b);
  EXPECT_EQ(from_range.size(), 3U);
  xs[1].reset();  // vanishes from all at once
  EXPECT_EQ(u.size(), 2U);
  EXPECT_EQ(a.size(), 2U);
  EXPECT_EQ(b.size(), 1U);
}

// Iterators whose elements are rvalues, and ranges of items.
TYPED_TEST(WeakContainerTest, BuiltFromIteratorsOfRvaluesAndFromRanges) {
  using Kind = TypeParam;
  using C = typename TestFixture::C;
  std::vector<Strong<Node>> xs = this->nodes(3);
  std::vector<decltype(Kind::item_of(xs[0]))> items;
  for (const auto& x : xs) items.push_back(Kind::item_of(x));
  C from_iterators(std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
  C from_range(items);
  C updated;
  updated.update(items);
  for (const C* c : {&from_iterators, &from_range, &updated})
    EXPECT_EQ(TestFixture::labels(*c), TestFixture::labels_of(xs));
  EXPECT_EQ(getweakrefcount(xs[0]), 3U);
}

// -- Popping ---------------------------------------------------------------------

TYPED_TEST(WeakContainerTest, PopsTheNewestLiveEntryThenKeyError) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs = this->nodes(3);
  auto c = this->holding(xs);
  xs[2].reset();  // dead entries are skipped
  EXPECT_TRUE(Kind::pop_newest(c) == xs[1]);
  EXPECT_TRUE(Kind::pop_newest(c) == xs[0]);
  EXPECT_EQ(getweakrefcount(xs[0]), 0U);
  try {
    Kind::pop_newest(c);
    FAIL() << "no KeyError";
  } catch (const KeyError& e) {
    EXPECT_STREQ(e.what(), Kind::kEmptyPop);
  }
  // Many: newest first, each exactly once.
  std::vector<Strong<Node>> many = this->nodes(5000);
  this->put_all(c, many);
  std::size_t popped = 0;
  while (!c.empty()) {
    ASSERT_TRUE(Kind::pop_newest(c) == many[many.size() - 1 - popped]);
    ++popped;
  }
  EXPECT_EQ(popped, many.size());
}

TYPED_TEST(WeakContainerTest, ManyEntriesGrowCompactAndShrink) {
  using Kind = TypeParam;
  std::vector<Strong<Node>> xs;
  typename TestFixture::C c;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 2000; ++i) {
      xs.push_back(this->node());
      Kind::put(c, xs.back());
    }
    EXPECT_EQ(c.size(), xs.size());
    for (std::size_t i = 0; i < xs.size(); i += 3) xs[i].reset();
    std::erase(xs, nullptr);
    EXPECT_EQ(c.size(), xs.size());
    for (const auto& x : xs) ASSERT_TRUE(Kind::has(c, x));
  }
  EXPECT_EQ(TestFixture::labels(c), TestFixture::labels_of(xs));
  xs.clear();
  EXPECT_TRUE(c.empty());
  Kind::put(c, this->node());  // dies at once
  EXPECT_TRUE(c.empty());
}

// -- Objects through a base class -------------------------------------------------

struct Base {
  virtual ~Base() = default;
  std::string label = "base";
};
struct Other {
  virtual ~Other() = default;
  int other = 2;
};
struct Both : Other, Base {};  // Base at a nonzero offset

TYPED_TEST(WeakContainerTest, ObjectsThroughABaseClassAtAnOffset) {
  using Kind = TypeParam;
  Strong<Both> x = make<Both>();
  Strong<Base> as_base = x;
  ASSERT_NE(static_cast<const void*>(as_base.get()), static_cast<const void*>(x.get()));
  typename Kind::template Container<Base> c;
  Kind::put(c, as_base);
  Kind::put(c, Strong<Base>(x));  // the same object
  EXPECT_EQ(c.size(), 1U);
  for (const auto& item : c) EXPECT_EQ(Kind::object(item).get(), as_base.get());
  EXPECT_TRUE(Kind::pop_newest(c) == as_base);
  Kind::put(c, as_base);
  x.reset();
  as_base.reset();
  EXPECT_TRUE(c.empty());
}

// -- The collector ------------------------------------------------------------------

template <class C>
struct Holder {
  C container;
  Strong<Holder> self;
  void trace(gc::Visitor& v) { v(container, self); }
};

TYPED_TEST(WeakContainerTest, ContainerInGarbageIsClearedAndItsWeakrefsNeverCallBack) {
  using Kind = TypeParam;
  using H = Holder<typename TestFixture::C>;
  Strong<Node> live = this->node();
  int other_callbacks = 0;
  detail::ContainerControl* ctrl = nullptr;
  {
    Strong<H> h = make<H>();
    h->self = h;
    Strong<Node> dead = this->node();
    dead->a = dead;
    Kind::put(h->container, live);
    Kind::put(h->container, dead);
    ref<Node> r(dead, [&](const ref<Node>&) { ++other_callbacks; });
    {
      // White box: keep the control block to see whether an entry callback
      // ran (it would queue the death).
      std::vector<ref<>> refs = getweakrefs(live);
      ASSERT_EQ(refs.size(), 1U);
      ctrl = static_cast<detail::EntryWeak*>(detail::HandleAccess::get(refs[0]))->control();
      ctrl->refs.fetch_add(1);
    }
    dead.reset();
    h.reset();
    UnraisableCapture capture;
    EXPECT_EQ(gc::collect(), 2U);  // the holder and `dead`; the container is inside
    EXPECT_TRUE(capture.messages.empty());
    EXPECT_EQ(other_callbacks, 1);  // r is not garbage: it calls back
  }
  // CPython's rule: weakrefs that are garbage themselves never call back.
  EXPECT_EQ(detail::control_queued(ctrl), 0);
  detail::control_release(ctrl);
  EXPECT_EQ(getweakrefcount(live), 0U);  // the container's weakref is gone
}

TYPED_TEST(WeakContainerTest, TracedAsAMemberAndAsAManagedObject) {
  using Kind = TypeParam;
  using C = typename TestFixture::C;
  Strong<Holder<C>> h = make<Holder<C>>();
  Strong<Node> a = this->node();
  Kind::put(h->container, a);
  EXPECT_EQ(gc::collect(), 0U);  // reachable: nothing collected
  EXPECT_TRUE(Kind::has(h->container, a));
  Strong<C> managed = make<C>();  // a container is itself a traced object
  Kind::put(*managed, a);
  EXPECT_TRUE(gc::is_tracked(managed));
  EXPECT_EQ(getweakrefcount(a), 2U);
}

// A weakref handed out by getweakrefs outlives the container; its later death
// must find the control block alive and the container gone.
TYPED_TEST(WeakContainerTest, EntryWeakrefOutlivesItsContainer) {
  using Kind = TypeParam;
  Strong<Node> a = this->node();
  std::vector<ref<>> kept;
  {
    typename TestFixture::C c;
    Kind::put(c, a);
    kept = getweakrefs(a);
  }
  ASSERT_EQ(kept.size(), 1U);
  EXPECT_TRUE(kept[0]() == a);
  a.reset();
  EXPECT_FALSE(kept[0]());
}

// -- Threads and the callback order ----------------------------------------------------

TYPED_TEST(WeakContainerTest, DeathOnAnotherThreadIsSeenAfterItCompletes) {
  using Kind = TypeParam;
  Strong<Node> a = this->node(), b = this->node();
  auto c = this->holding({a, b});
  std::thread t([x = std::move(a)]() mutable { x.reset(); });
  t.join();
  EXPECT_EQ(c.size(), 1U);
  EXPECT_EQ(TestFixture::labels(c), std::vector<std::string>{b->label});
  Kind::put(c, a = this->node());
  EXPECT_EQ(c.size(), 2U);
}

// CPython's len() counts an entry until its removal callback has run: a
// callback of the dying object registered after the entry (so run before the
// entry's own, newest first) sees size 1 but no entry.
TYPED_TEST(WeakContainerTest, SizeCountsAnEntryUntilItsCallbackRunsAsInCPython) {
  using Kind = TypeParam;
  typename TestFixture::C c;
  Strong<Node> a = this->node();
  Kind::put(c, a);
  std::size_t size_seen = 99, entries_seen = 99;
  ref<Node> later(a, [&] {
    size_seen = c.size();
    entries_seen = static_cast<std::size_t>(std::distance(c.begin(), c.end()));
  });
  a.reset();
  EXPECT_EQ(size_seen, 1U);
  EXPECT_EQ(entries_seen, 0U);
  EXPECT_EQ(c.size(), 0U);
  EXPECT_TRUE(c.empty());
}

}  // namespace
}  // namespace weakref::testing
