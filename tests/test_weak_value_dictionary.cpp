// weakref::WeakValueDictionary: what only this dictionary does (keys that
// are values, a new weakref when a key is set again, a dead value's key is
// missing, operator[] as Python's d[k], reentrant key destructors, keys seen
// by the collector). What the three weak containers share is tested once in
// test_weak_containers.cpp.
#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <ranges>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using WeakValueDictionaryTest = Test;
using Dict = WeakValueDictionary<std::string, Node>;

std::vector<std::string> items(const Dict& d) {
  std::vector<std::string> out;
  for (const auto& [k, v] : d) out.push_back(k + "=" + v->label);
  std::sort(out.begin(), out.end());
  return out;
}
using L = std::vector<std::string>;

// Python's `d |= {k: v}`: a braced list of pairs on the right of |=.
TEST_F(WeakValueDictionaryTest, OrAssignTakesABracedList) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B");
  Dict d;
  d |= {{"x", a}, {"y", b}};
  d |= {{"x", b}};
  EXPECT_TRUE(d.at("x") == b);
  EXPECT_TRUE(d.at("y") == b);
  EXPECT_EQ(d.size(), 2U);
}

TEST_F(WeakValueDictionaryTest, SetGetAtContains) {
  Strong<Node> a = make<Node>("A");
  Dict d;
  d.set("k1", a);
  d.set("k2", a);
  EXPECT_EQ(d.size(), 2U);
  EXPECT_TRUE(d.get("k1") == a);
  EXPECT_TRUE(d.at("k2") == a);
  EXPECT_FALSE(d.get("zz"));
  Strong<Node> other = make<Node>("O");
  EXPECT_TRUE(d.get("zz", other) == other);
  EXPECT_TRUE(d.contains("k1"));
  EXPECT_FALSE(d.contains("zz"));
  EXPECT_EQ(getweakrefcount(a), 2U);  // one weakref per entry
  try {
    d.at("zz");
    FAIL() << "no KeyError";
  } catch (const KeyError& e) {
    EXPECT_STREQ(e.what(), "'zz'");  // Python's str(KeyError('zz'))
  }
  EXPECT_THROW(d.set("k3", Strong<Node>()), std::invalid_argument);
}

TEST_F(WeakValueDictionaryTest, OverwritingAKeyReplacesItsWeakref) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> c = make<Node>("C");
  Dict d{{"k1", a}, {"k3", a}};
  std::vector<ref<Node>> before = d.valuerefs();
  d.set("k3", c);
  EXPECT_EQ(getweakrefcount(a), 2U);  // k1's, and the old k3 ref held by `before`
  before.clear();
  EXPECT_EQ(getweakrefcount(a), 1U);
  EXPECT_EQ(getweakrefcount(c), 1U);
  d.set("k3", c);  // even with the same value: a new weakref
  EXPECT_EQ(getweakrefcount(c), 1U);
  EXPECT_EQ(items(d), (L{"k1=A", "k3=C"}));
  // The position is kept (insertion order).
  std::vector<std::string> keys;
  for (const std::string& k : d.keys()) keys.push_back(k);
  EXPECT_EQ(keys, (L{"k1", "k3"}));
}

// d[k] = v again with the same live value: Python makes a new KeyedRef, the
// newest weakref to v, so its callback (which removes the entry) runs before
// those of the weakrefs made since the first set. The entry's weakref is
// reused only when nobody else holds it, and then moves to where a new one
// would go.
TEST_F(WeakValueDictionaryTest, SettingTheSameValueAgainMakesTheNewestWeakref) {
  Strong<Node> a = make<Node>("A");
  Dict d;
  d.set("k", a);
  std::vector<std::size_t> sizes;
  ref<Node> r(a, [&](const ref<Node>&) { sizes.push_back(d.size()); });
  d.set("k", a);
  auto all = getweakrefs(a);
  ASSERT_EQ(all.size(), 2U);
  EXPECT_TRUE(all[0].is(d.valuerefs()[0]));
  EXPECT_TRUE(all[1].is(r));
  all.clear();
  a.reset();
  EXPECT_EQ(sizes, (std::vector<std::size_t>{0}));  // the entry's callback ran first
}

TEST_F(WeakValueDictionaryTest, AHeldEntryWeakrefIsNeitherRenewedNorReused) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d;
  d.set("k", a);
  ref<Node> held = d.valuerefs()[0];
  d.set("k", a);  // a new weakref: `held` stays a's
  EXPECT_EQ(getweakrefcount(a), 2U);
  EXPECT_FALSE(held.is(d.valuerefs()[0]));
  d.erase("k");
  d.set("j", b);  // may reuse the erased entry's weakref, never `held`
  EXPECT_TRUE(held() == a);
  EXPECT_EQ(getweakrefcount(a), 1U);
  EXPECT_EQ(getweakrefcount(b), 1U);
  EXPECT_TRUE(d.get("j") == b);
  a.reset();
  EXPECT_FALSE(held());
  EXPECT_TRUE(d.get("j") == b);
  EXPECT_EQ(d.size(), 1U);
}

// Entries whose values die, or that are erased, give their weakrefs to the
// next insertions (spares): each value still has exactly its own weakrefs.
TEST_F(WeakValueDictionaryTest, EntriesComeAndGoWithTheirValues) {
  Dict d;
  Strong<Node> keep = make<Node>("K");
  d.set("keep", keep);
  for (int i = 0; i < 40; ++i) {
    Strong<Node> v = make<Node>("V");
    d.set("v", v);
    ref<Node> r(v);
    EXPECT_EQ(getweakrefcount(v), 2U);
    EXPECT_TRUE(d.get("v") == v);
    EXPECT_TRUE(d.valuerefs().back()() == v);
    if (i % 3 == 1) d.erase("v");
    if (i % 3 == 2) d.set("v", keep);  // the entry's weakref is replaced
    v.reset();
    EXPECT_FALSE(r());
    EXPECT_EQ(d.size(), i % 3 == 2 ? 2U : 1U);
    EXPECT_EQ(d.contains("v"), i % 3 == 2);
    if (i % 3 == 2) d.erase("v");
  }
  EXPECT_TRUE(d.get("keep") == keep);
  EXPECT_EQ(getweakrefcount(keep), 1U);
}

// A key whose value died is missing, whatever its entry's state.
TEST_F(WeakValueDictionaryTest, KeyOfADeadValueIsMissing) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d{{"a", a}, {"b", b}};
  a.reset();
  EXPECT_EQ(d.size(), 1U);
  EXPECT_FALSE(d.get("a"));
  EXPECT_FALSE(d.contains("a"));
  EXPECT_EQ(d.count("a"), 0U);
  EXPECT_THROW(d.at("a"), KeyError);
  EXPECT_THROW(d.del("a"), KeyError);
  EXPECT_EQ(d.erase("a"), 0U);
  EXPECT_THROW(d.pop("a"), KeyError);
  EXPECT_EQ(items(d), (L{"b=B"}));
}

// Issue #12 (9): d[k] = v sets; reading d[k] is Python's d[k] (at()),
// KeyError when missing or dead: a weak value cannot be default-inserted.
TEST_F(WeakValueDictionaryTest, SubscriptSetsAndReadsLikePython) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d;
  d["k"] = a;
  std::string key = "j";
  d[key] = b;  // an lvalue key stays as it was
  EXPECT_EQ(key, "j");
  EXPECT_EQ(items(d), (L{"j=B", "k=A"}));
  EXPECT_EQ(getweakrefcount(a), 1U);
  Strong<Node> got = d["k"];
  EXPECT_TRUE(got == a);
  EXPECT_TRUE(d["k"] == a);
  EXPECT_EQ(d["j"]->label, "B");
  d["k"] = d["j"];  // k now maps to j's value
  EXPECT_TRUE(d.get("k") == b);
  {
    auto r = d["k"];  // a named reference: assignments keep its key
    r = a;
    r = a;
    EXPECT_TRUE(r == a);  // and reads what it set (holding it, as Python's r)
  }
  auto keep = [](const Strong<Node>& v) { return v; };
  EXPECT_TRUE(keep(d["k"]) == a);
  EXPECT_TRUE(d.get("k") == a);
  EXPECT_EQ(getweakrefcount(a), 1U);
  try {
    Strong<Node> missing = d["zz"];
    FAIL() << "no KeyError";
  } catch (const KeyError& e) {
    EXPECT_STREQ(e.what(), "'zz'");
  }
  EXPECT_FALSE(d.contains("zz"));  // reading inserted nothing
  got.reset();
  a.reset();
  EXPECT_THROW(d["k"]->name(), KeyError);  // dead
  const Dict& cd = d;
  EXPECT_TRUE(cd["j"] == b);
  EXPECT_THROW(cd["k"], KeyError);
  EXPECT_THROW(d["x"] = Strong<Node>(), std::invalid_argument);
}

// Python's `v = d[k]` binds the value: a port's `auto v = d[k];` holds it
// too, through later assignments, erasures and the dictionary's end; the
// KeyError of a missing key comes when v is read.
TEST_F(WeakValueDictionaryTest, ANamedSubscriptHoldsTheValueAsPythonsBinding) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  auto d = std::make_unique<Dict>();
  (*d)["k"] = a;
  auto v = (*d)["k"];
  auto missing = (*d)["zz"];  // no KeyError yet: d["zz"] = x must work
  (*d)["k"] = b;
  EXPECT_TRUE(v == a);
  EXPECT_EQ(v->label, "A");
  d->erase("k");
  d.reset();  // the dictionary is gone; v still reads its value
  Strong<Node> x = v;
  EXPECT_TRUE(x == a);
  a.reset();
  x.reset();
  EXPECT_EQ(v->label, "A");  // v keeps it alive, as Python's v
  try {
    Strong<Node> y = missing;
    FAIL() << "no KeyError";
  } catch (const KeyError& e) {
    EXPECT_STREQ(e.what(), "'zz'");
  }
}

TEST_F(WeakValueDictionaryTest, DelErasePopPopitemSetdefault) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d{{"a", a}, {"b", b}};
  EXPECT_TRUE(d.setdefault("a", b) == a);
  EXPECT_TRUE(d.setdefault("c", b) == b);
  EXPECT_TRUE(d.pop("c") == b);
  EXPECT_THROW(d.pop("c"), KeyError);
  EXPECT_FALSE(d.pop("c", nullptr));
  EXPECT_TRUE(d.pop("c", a) == a);
  EXPECT_EQ(d.erase("zz"), 0U);
  d.set("z", b);
  d.del("z");
  EXPECT_THROW(d.del("z"), KeyError);
  {
    auto [k, v] = d.popitem();  // the newest
    EXPECT_EQ(k, "b");
    EXPECT_TRUE(v == b);
    EXPECT_EQ(d.popitem().first, "a");
  }
  try {
    d.popitem();
    FAIL();
  } catch (const KeyError& e) {
    EXPECT_STREQ(e.what(), "'popitem(): dictionary is empty'");
  }
  // A dead value is skipped by popitem and setdefault.
  d.set("a", a);
  d.set("b", b);
  b.reset();
  EXPECT_EQ(d.popitem().first, "a");
  EXPECT_TRUE(d.empty());
  Strong<Node> c = make<Node>("C");
  d.set("c", c);
  c.reset();
  Strong<Node> e = make<Node>("E");
  EXPECT_TRUE(d.setdefault("c", e) == e);
}

TEST_F(WeakValueDictionaryTest, UpdateAndUnionOperators) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B"), c = make<Node>("C");
  Dict d1{{"1", a}};
  Dict d2{{"1", b}, {"2", a}};
  std::map<std::string, Strong<Node>> m{{"1", c}, {"3", b}};
  std::vector<std::pair<std::string, Strong<Node>>> pairs{{"5", c}, {"6", b}};

  Dict t1 = d1 | d2;
  EXPECT_EQ(items(t1), (L{"1=B", "2=A"}));
  Dict t2 = d2 | m;
  EXPECT_EQ(items(t2), (L{"1=C", "2=A", "3=B"}));
  Dict t3 = d1.copy();
  t3 |= pairs;
  EXPECT_EQ(items(t3), (L{"1=A", "5=C", "6=B"}));
  Dict t4 = m | d1;  // Python's __ror__
  EXPECT_EQ(items(t4), (L{"1=A", "3=B"}));
  d1 |= d2;
  EXPECT_EQ(d1, t1);
  d1.update({{"9", c}});
  EXPECT_TRUE(d1.get("9") == c);
  Dict from_range(pairs);
  EXPECT_EQ(items(from_range), (L{"5=C", "6=B"}));
  Dict from_iters(m.begin(), m.end());
  EXPECT_EQ(items(from_iters), (L{"1=C", "3=B"}));
  a.reset();
  EXPECT_FALSE(t1.contains("2"));
  EXPECT_FALSE(t4.contains("1"));
}

TEST_F(WeakValueDictionaryTest, ValuerefsAreTheEntriesWeakrefs) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d{{"a", a}, {"b", b}};
  std::vector<ref<Node>> refs = d.valuerefs();
  ASSERT_EQ(refs.size(), 2U);
  EXPECT_TRUE(refs[0]() == a);
  EXPECT_TRUE(refs[1]() == b);
  EXPECT_EQ(getweakrefcount(a), 1U);
  EXPECT_TRUE(getweakrefs(a)[0].is(refs[0]));
  EXPECT_TRUE(refs[0].has_callback());
  d.clear();
  EXPECT_TRUE(refs[0]() == a);  // they outlive their entries
  a.reset();
  EXPECT_FALSE(refs[0]());
}

TEST_F(WeakValueDictionaryTest, CopyEqualityAndPrinting) {
  Strong<Node> a = make<Node>("A");
  Dict d{{"a", a}};
  Dict c = d;
  EXPECT_EQ(getweakrefcount(a), 2U);
  EXPECT_EQ(c, d);
  c.set("a", make<Node>("other"));  // dies at once: c is empty now
  EXPECT_TRUE(c.empty());
  EXPECT_NE(c, d);
  std::ostringstream os, addr;
  os << d;
  addr << "<WeakValueDictionary at " << static_cast<const void*>(&d) << ">";
  EXPECT_EQ(os.str(), addr.str());
  EXPECT_EQ(os.str().rfind("<WeakValueDictionary at 0x", 0), 0U);
}

TEST_F(WeakValueDictionaryTest, IterationViewsHoldTheValue) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d{{"a", a}, {"b", b}};
  std::vector<std::string> keys, values;
  for (const std::string& k : d.keys()) keys.push_back(k);
  for (const Strong<Node>& v : d.values()) values.push_back(v->label);
  EXPECT_EQ(keys, (L{"a", "b"}));
  EXPECT_EQ(values, (L{"A", "B"}));
  for (auto& [k, v] : d.items()) EXPECT_EQ(v.use_count(), 2) << k;
  const Dict& cd = d;
  std::size_t n = 0;
  for (const auto& item : cd) n += item.second ? 1 : 0;
  EXPECT_EQ(n, 2U);
  std::vector<std::pair<std::string, Strong<Node>>> copied(d.begin(), d.end());
  EXPECT_EQ(copied.size(), 2U);
  static_assert(std::ranges::input_range<Dict>);
  static_assert(std::ranges::input_range<const Dict>);
}

// The views are borrowed ranges: a ranges algorithm on a temporary view
// (`d.keys()`) returns an iterator into the dictionary, which stays usable
// after the view is gone.
TEST_F(WeakValueDictionaryTest, AlgorithmsOnTemporaryViewsReturnIterators) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d{{"a", a}, {"b", b}};
  auto k = std::ranges::find(d.keys(), std::string("b"));
  ASSERT_NE(k, d.keys().end());
  EXPECT_EQ(*k, "b");
  auto v = std::ranges::find_if(d.values(), [](const Strong<Node>& n) { return n->label == "A"; });
  ASSERT_NE(v, d.values().end());
  EXPECT_TRUE(*v == a);
  auto i = std::ranges::find_if(d.items(), [](const auto& kv) { return kv.first == "b"; });
  ASSERT_NE(i, d.items().end());
  EXPECT_TRUE(i->second == b);
  EXPECT_EQ(std::ranges::find(d.keys(), std::string("z")), d.keys().end());
}

TEST_F(WeakValueDictionaryTest, KeysYieldedByAnIterationStayValidUntilItEnds) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Dict d{{std::string(100, 'a'), a}, {std::string(100, 'b'), b}};
  auto it = d.begin();
  const std::string& first_key = it->first;
  d.del(std::string(100, 'a'));  // removed while the iterator is alive
  a.reset();
  b.reset();
  EXPECT_EQ(d.size(), 0U);
  EXPECT_EQ(first_key, std::string(100, 'a'));  // still alive: destroyed at the end
  it = d.end();
  EXPECT_TRUE(d.empty());
}

// find() gives the (key, value) pair; an entry whose key was set again is
// the same entry (in its place), which erase() through the iterator removes.
TEST_F(WeakValueDictionaryTest, FindAndEraseThroughAnIterator) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  Strong<Node> c = make<Node>("C");
  Dict d{{"a", a}, {"b", b}, {"c", c}};
  auto it = d.find("b");
  ASSERT_TRUE(it != d.end());
  EXPECT_EQ(it->first, "b");
  EXPECT_TRUE(it->second == b);
  static_assert(std::is_same_v<decltype((it->first)), const std::string&>);
  d.set("b", a);                 // the entry keeps its place and gets a new weakref
  EXPECT_TRUE(it->second == b);  // what the iterator yielded
  it = d.erase(it);
  EXPECT_EQ(it->first, "c");
  EXPECT_FALSE(d.contains("b"));
  EXPECT_EQ(getweakrefcount(a), 1U);
  EXPECT_EQ(items(d), (L{"a=A", "c=C"}));
  c.reset();  // held by it
  EXPECT_TRUE(d.contains("c"));
  it = d.end();
  EXPECT_FALSE(d.contains("c"));
  EXPECT_TRUE(std::as_const(d).find("c") == d.cend());
}

// Keys whose destructor uses the dictionary (reentrancy while entries are
// being destroyed).
struct HookKey {
  int id = 0;
  std::function<void()> on_destroy;
  HookKey(int i, std::function<void()> f = {}) : id(i), on_destroy(std::move(f)) {}
  HookKey(HookKey&& o) noexcept : id(o.id), on_destroy(std::move(o.on_destroy)) {
    o.on_destroy = nullptr;
  }
  HookKey(const HookKey& o) : id(o.id) {}
  ~HookKey() {
    if (on_destroy) on_destroy();
  }
  bool operator==(const HookKey& o) const { return id == o.id; }
};
struct HookHash {
  std::size_t operator()(const HookKey& k) const noexcept { return static_cast<std::size_t>(k.id); }
};

TEST_F(WeakValueDictionaryTest, KeyDestructorMayUseTheDictionary) {
  WeakValueDictionary<HookKey, Node, HookHash> d;
  std::vector<Strong<Node>> objs;
  for (int i = 0; i < 20; ++i) objs.push_back(make<Node>(std::to_string(i)));
  for (int i = 0; i < 10; ++i) d.set(HookKey(i), objs[static_cast<std::size_t>(i)]);
  int destroyed = 0;
  d.set(HookKey(100,
                [&] {
                  ++destroyed;
                  for (int i = 10; i < 20; ++i)
                    d.set(HookKey(i), objs[static_cast<std::size_t>(i)]);
                  d.erase(HookKey(1));
                  EXPECT_EQ(d.size(), 18U);
                }),
        objs[0]);
  d.erase(HookKey(0));
  objs[0].reset();  // key 100's value dies: the entry is gone at once...
  EXPECT_EQ(d.size(), 9U);
  EXPECT_FALSE(d.contains(HookKey(100)));
  EXPECT_EQ(destroyed, 0);  // ...its key is destroyed by the next non-const call
  d.prune();
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(d.size(), 18U);
  std::size_t n = 0;
  for (const auto& [k, v] : d) n += (v && k.id != 1) ? 1 : 0;
  EXPECT_EQ(n, 18U);
  d.clear();
  EXPECT_TRUE(d.empty());
}

// Integer keys: their hash is recomputed, not stored.
TEST_F(WeakValueDictionaryTest, IntegerKeys) {
  Strong<Node> x = make<Node>("X");
  WeakValueDictionary<int, Node> d;
  for (int i = 1; i < 1000; ++i) d.set(i, x);
  EXPECT_EQ(d.size(), 999U);
  for (int i = 1; i < 1000; i += 2) d.del(i);
  EXPECT_EQ(d.size(), 499U);
  for (int i = 2; i < 1000; i += 2) ASSERT_TRUE(d.contains(i)) << i;
  EXPECT_FALSE(d.contains(1));
  d[1] = x;
  EXPECT_EQ(*d.keys().begin(), 2);  // insertion order: 1 is new
  x.reset();
  EXPECT_TRUE(d.empty());
}

// -- The collector ---------------------------------------------------------------

struct Cache {
  WeakValueDictionary<Strong<Node>, Node> by_node;  // keys hold references
  Strong<Cache> self;
  void trace(gc::Visitor& v) { v(by_node, self); }
};

TEST_F(WeakValueDictionaryTest, KeysAreVisitedAndGarbageDictionaryIsCleared) {
  Strong<Node> value = make<Node>("V");
  {
    Strong<Cache> c = make<Cache>();
    c->self = c;
    Strong<Node> key = make<Node>("K");
    key->a = key;  // garbage too once dropped
    c->by_node.set(key, value);
    EXPECT_EQ(gc::collect(), 0U);
    EXPECT_EQ(gc::get_referents(c).size(), 2U);  // the key, and self
  }
  EXPECT_EQ(getweakrefcount(value), 1U);
  EXPECT_EQ(gc::collect(), 2U);  // the cache and its key
  EXPECT_EQ(getweakrefcount(value), 0U);
}

// Lookups read the weakref's own cleared bit only once some weakref to the
// value has been cleared (kWeakCleared in its side word). Here the collector
// clears one that garbage held, while the value lives on: the entries must
// still lock it, and a new weakref to it must work.
TEST_F(WeakValueDictionaryTest, LookupsStayRightAfterAnotherWeakrefToTheValueIsCleared) {
  Strong<Node> x = make<Node>("X");
  Dict d{{"x", x}};
  {
    Strong<Node> g = make<Node>("G");
    g->a = g;
    g->wa = ref<Node>(x);  // the basic ref, held by garbage only
  }
  EXPECT_EQ(gc::collect(), 1U);
  const detail::SideTable* s = detail::side_if_any(detail::StrongAccess::header(x));
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(detail::SideWord(s->word.load()).weak_cleared());
  EXPECT_EQ(d.get("x"), x);
  EXPECT_TRUE(d.contains("x"));
  EXPECT_EQ(d.at("x"), x);
  EXPECT_EQ(d.size(), 1U);
  EXPECT_EQ(items(d), (L{"x=X"}));
  Dict later{{"x", x}};
  EXPECT_EQ(later.get("x"), x);
  ref<Node> again(x);
  EXPECT_EQ(again(), x);
  x.reset();
  EXPECT_FALSE(d.get("x"));
  EXPECT_FALSE(later.contains("x"));
  EXPECT_FALSE(again());
  EXPECT_EQ(d.size(), 0U);
}

// A dictionary in garbage: the collector clears its entries' weakrefs (they
// are garbage themselves) although the value lives. A finalizer of the
// garbage then finds the entry cleared, whatever its value's count says.
struct FinalizingCache {
  Dict d;
  Strong<FinalizingCache> self;
  Strong<Node>* seen = nullptr;
  void trace(gc::Visitor& v) { v(d, self); }
  void tp_finalize() { *seen = d.get("x"); }
};

TEST_F(WeakValueDictionaryTest, GarbageDictionarysClearedEntryStaysClearedInFinalizers) {
  Strong<Node> x = make<Node>("X");
  Strong<Node> seen = make<Node>("not run");
  {
    Strong<FinalizingCache> c = make<FinalizingCache>();
    c->self = c;
    c->seen = &seen;
    c->d.set("x", x);
  }
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_FALSE(seen);
  EXPECT_EQ(x->label, "X");
  EXPECT_EQ(getweakrefcount(x), 0U);
}

}  // namespace
}  // namespace weakref::testing
