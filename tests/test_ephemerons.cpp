// WeakKeyDictionary entries are ephemerons for the collector (issue 15): a
// value keeps what it refers to only while its key is reachable on other
// grounds. A key whose only paths run through values of weak-keyed entries
// (its own or others', in any number of dictionaries) is found by
// gc::collect() with those values, and freed as any cyclic garbage
// (callbacks, finalizers); a key reachable from elsewhere keeps its value.
// The concurrent case is in test_threads_ephemerons.cpp (TSan).
#include <string>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

class EphemeronTest : public Test {
 protected:
  void SetUp() override {
    gc::disable();  // only the explicit collections
    Test::SetUp();
  }
  void TearDown() override {
    Test::TearDown();
    gc::enable();
  }
};

// A traced holder of a dictionary (a root while the test holds it).
struct Registry {
  WeakKeyDictionary<Node, Strong<Node>> attached;
  void trace(gc::Visitor& v) { v(attached); }
};

TEST_F(EphemeronTest, ValueReferringToItsOwnKey) {
  Strong<Registry> r = make<Registry>();
  int called = 0;
  ref<Node> watch;
  bool finalized = false;
  {
    Strong<Node> key = make<Node>("K");
    r->attached.set(key, key);
    watch = ref<Node>(key, [&](const ref<Node>&) { ++called; });
    finalize(key, [&] { finalized = true; });
  }
  const long live = g_live.load();
  EXPECT_EQ(r->attached.size(), 1U);
  EXPECT_EQ(gc::collect(), 1U);  // the key; the dictionary lives on
  EXPECT_EQ(g_live.load(), live - 1);
  EXPECT_EQ(called, 1);
  EXPECT_TRUE(finalized);
  EXPECT_FALSE(watch());
  EXPECT_EQ(r->attached.size(), 0U);
  r->attached.prune();
  EXPECT_EQ(gc::collect(), 0U);
}

// The widget/handler shape: the value is another object that refers back to
// the key (a handler capturing its widget), itself in a cycle.
TEST_F(EphemeronTest, ValueObjectReferringToItsKey) {
  Strong<Registry> r = make<Registry>();
  {
    Strong<Node> widget = make<Node>("widget");
    Strong<Node> handler = make<Node>("handler");
    handler->a = widget;
    handler->b = handler;
    r->attached.set(widget, handler);
  }
  const long live = g_live.load();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_EQ(g_live.load(), live - 2);
  EXPECT_TRUE(r->attached.empty());
}

// A's value refers to B, B's value (in another dictionary) refers to A.
TEST_F(EphemeronTest, MutualReferencesAcrossTwoDictionaries) {
  Strong<Registry> r1 = make<Registry>(), r2 = make<Registry>();
  ref<Node> wa, wb;
  {
    Strong<Node> a = make<Node>("A"), b = make<Node>("B");
    r1->attached.set(a, b);
    r2->attached.set(b, a);
    wa = ref<Node>(a);
    wb = ref<Node>(b);
  }
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_FALSE(wa());
  EXPECT_FALSE(wb());
  EXPECT_TRUE(r1->attached.empty());
  EXPECT_TRUE(r2->attached.empty());
}

// key i's value refers to key i+1, alternately in two dictionaries, entries
// inserted last-first (so that most values are traced before their key is
// known reachable).
std::vector<ref<Node>> make_chain(Registry& d1, Registry& d2, int n, Strong<Node>* first) {
  std::vector<Strong<Node>> keys;
  // Labels built by appending: g++ 12 -O3 warns falsely (-Wrestrict) on
  // "k" + std::to_string(i).
  for (int i = 0; i < n; ++i)
    keys.push_back(make<Node>(std::string("k").append(std::to_string(i))));
  for (int i = n - 1; i >= 0; --i) {
    Registry& d = i % 2 ? d2 : d1;
    d.attached.set(keys[static_cast<std::size_t>(i)], keys[static_cast<std::size_t>((i + 1) % n)]);
  }
  std::vector<ref<Node>> refs(keys.begin(), keys.end());
  if (first) *first = keys.front();
  return refs;
}

TEST_F(EphemeronTest, ChainOfAThousandIsGarbage) {
  Strong<Registry> d1 = make<Registry>(), d2 = make<Registry>();
  const std::vector<ref<Node>> refs = make_chain(*d1, *d2, 1000, nullptr);
  EXPECT_EQ(gc::collect(), 1000U);
  for (const ref<Node>& r : refs) EXPECT_FALSE(r());
  EXPECT_TRUE(d1->attached.empty());
  EXPECT_TRUE(d2->attached.empty());
}

// The same chain with its first key held from outside: every key is
// reachable through the values, so all of it stays; dropping it frees all.
TEST_F(EphemeronTest, ChainOfAThousandKeptByItsFirstKey) {
  Strong<Registry> d1 = make<Registry>(), d2 = make<Registry>();
  Strong<Node> first;
  const std::vector<ref<Node>> refs = make_chain(*d1, *d2, 1000, &first);
  EXPECT_EQ(gc::collect(), 0U);
  for (const ref<Node>& r : refs) EXPECT_TRUE(r());
  EXPECT_EQ(d1->attached.size() + d2->attached.size(), 1000U);
  // The values are intact.
  for (int i = 0; i < 1000; ++i) {
    Registry& d = i % 2 ? *d2 : *d1;
    Strong<Node> k = refs[static_cast<std::size_t>(i)]();
    ASSERT_TRUE(k);
    EXPECT_EQ(d.attached.at(k)->label, std::string("k").append(std::to_string((i + 1) % 1000)));
  }
  first.reset();
  EXPECT_EQ(gc::collect(), 1000U);
  EXPECT_TRUE(d1->attached.empty());
}

// A value reachable from outside keeps its key (through the value), and the
// entry stays; a key reachable from elsewhere keeps its value.
TEST_F(EphemeronTest, ValueReachableFromOutsideIsKept) {
  Strong<Registry> r = make<Registry>();
  Strong<Node> handler = make<Node>("handler");
  ref<Node> wk;
  {
    Strong<Node> widget = make<Node>("widget");
    handler->a = widget;
    r->attached.set(widget, handler);
    wk = ref<Node>(widget);
  }
  EXPECT_EQ(gc::collect(), 0U);
  ASSERT_TRUE(wk());
  EXPECT_EQ(r->attached.size(), 1U);
  EXPECT_EQ(r->attached.at(wk()), handler);
  EXPECT_EQ(handler->a, wk());
  handler.reset();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_TRUE(r->attached.empty());
}

TEST_F(EphemeronTest, KeyReachableFromElsewhereKeepsItsValue) {
  Strong<Registry> r = make<Registry>();
  Strong<Node> holder = make<Node>("holder");  // a traced referrer of the key
  ref<Node> wv;
  {
    Strong<Node> key = make<Node>("key"), value = make<Node>("value");
    value->a = key;
    value->b = value;
    holder->a = key;
    r->attached.set(key, value);
    wv = ref<Node>(value);
  }
  EXPECT_EQ(gc::collect(), 0U);
  ASSERT_TRUE(wv());
  EXPECT_EQ(wv()->a, holder->a);
  holder->a.reset();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_FALSE(wv());
}

// A key in an older generation than its dictionary and value: a young
// collection cannot judge it (its referrers are not traced), a full one can.
TEST_F(EphemeronTest, KeyInAnOlderGeneration) {
  Strong<Node> key = make<Node>("old key");
  gc::collect();  // key -> generation 2
  Strong<Registry> r = make<Registry>();
  r->attached.set(key, key);
  key.reset();
  EXPECT_EQ(gc::collect(0), 0U);
  EXPECT_EQ(r->attached.size(), 1U);
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_TRUE(r->attached.empty());
}

// Resurrection: a key's tp_finalize saves it. As for any garbage, its
// weakrefs (the entry's among them) were cleared and their callbacks run
// before the finalizer; the key lives on, out of the dictionary, with the
// value that referred to it released.
struct Phoenix {
  static inline Strong<Phoenix> saved;
  static inline int finalized = 0;
  std::string label;
  Strong<Phoenix> other;
  bool resurrect = true;
  explicit Phoenix(std::string l) : label(std::move(l)) {}
  void trace(gc::Visitor& v) { v(other); }
  void tp_finalize() {
    ++finalized;
    if (resurrect) saved = self(this);
  }
};

// Finalizers that do not resurrect: the garbage is found and freed by this
// collection (the references the collection took out of the values do not
// count as resurrections in the check after the finalizers).
TEST_F(EphemeronTest, FinalizedGarbageIsNotTakenForResurrected) {
  Phoenix::finalized = 0;
  struct Table {
    WeakKeyDictionary<Phoenix, Strong<Phoenix>> d;
    void trace(gc::Visitor& v) { v(d); }
  };
  Strong<Table> t = make<Table>();
  ref<Phoenix> wk, wv;
  {
    Strong<Phoenix> key = make<Phoenix>("key"), handler = make<Phoenix>("handler");
    key->resurrect = handler->resurrect = false;
    handler->other = key;
    t->d.set(key, handler);
    wk = ref<Phoenix>(key);
    wv = ref<Phoenix>(handler);
  }
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_EQ(Phoenix::finalized, 2);
  EXPECT_FALSE(wk());
  EXPECT_FALSE(wv());
  EXPECT_TRUE(t->d.empty());
}

// The value resurrects itself: its key, which it refers to, lives on with
// it (CPython's rule: what a resurrected object reaches survives).
TEST_F(EphemeronTest, ValueResurrectedByItsFinalizerKeepsItsKey) {
  Phoenix::finalized = 0;
  struct Table {
    WeakKeyDictionary<Phoenix, Strong<Phoenix>> d;
    void trace(gc::Visitor& v) { v(d); }
  };
  Strong<Table> t = make<Table>();
  {
    Strong<Phoenix> key = make<Phoenix>("key"), handler = make<Phoenix>("handler");
    key->resurrect = false;
    handler->other = key;
    t->d.set(key, handler);
  }
  EXPECT_EQ(gc::collect(), 0U);
  ASSERT_TRUE(Phoenix::saved);
  EXPECT_EQ(Phoenix::saved->label, "handler");
  ASSERT_TRUE(Phoenix::saved->other);
  EXPECT_EQ(Phoenix::saved->other->label, "key");
  EXPECT_TRUE(t->d.empty());  // the key's weakrefs were cleared before
  Phoenix::saved.reset();     // both go by reference counting
  EXPECT_EQ(gc::collect(), 0U);
}

TEST_F(EphemeronTest, KeyResurrectedByItsFinalizer) {
  Phoenix::finalized = 0;
  struct Table {
    WeakKeyDictionary<Phoenix, Strong<Phoenix>> d;
    void trace(gc::Visitor& v) { v(d); }
  };
  Strong<Table> t = make<Table>();
  int callbacks = 0;
  ref<Phoenix> watch;
  {
    Strong<Phoenix> key = make<Phoenix>("key");
    t->d.set(key, key);
    watch = ref<Phoenix>(key, [&](const ref<Phoenix>&) { ++callbacks; });
  }
  EXPECT_EQ(gc::collect(), 0U);  // resurrected: not counted as found (CPython)
  EXPECT_EQ(callbacks, 1);
  EXPECT_EQ(Phoenix::finalized, 1);
  ASSERT_TRUE(Phoenix::saved);
  EXPECT_EQ(Phoenix::saved->label, "key");
  EXPECT_FALSE(watch());  // cleared before the finalizer, for good
  EXPECT_TRUE(t->d.empty());
  // Alive and consistent: it can be a key again, and dies normally.
  t->d.set(Phoenix::saved, Strong<Phoenix>());
  EXPECT_EQ(t->d.size(), 1U);
  ref<Phoenix> again(Phoenix::saved);
  Phoenix::saved.reset();
  EXPECT_FALSE(again());
  EXPECT_TRUE(t->d.empty());
}

// A callback run by the collection changes and even destroys the dictionary
// whose values the collection has released.
TEST_F(EphemeronTest, CallbackMutatesAndDestroysTheDictionary) {
  Strong<Registry> r = make<Registry>();
  Strong<Node> survivor = make<Node>("survivor");
  ref<Node> watch;
  {
    Strong<Node> key = make<Node>("K");
    r->attached.set(key, key);
    r->attached.set(survivor, make<Node>("v"));
    watch = ref<Node>(key, [&](const ref<Node>&) {
      r->attached.set(make<Node>("new"), Strong<Node>());  // dies at once
      r->attached.erase(survivor);
      r.reset();
    });
  }
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_FALSE(r);
  EXPECT_FALSE(watch());
}

// Keys that are not traced objects are never collected (an untraced object
// is not the collector's): such a value keeps its key, as before.
TEST_F(EphemeronTest, UntracedKeysAreOutsideTheCollector) {
  struct Table {
    WeakKeyDictionary<Plain, Strong<Plain>> d;
    void trace(gc::Visitor& v) { v(d); }
  };
  Strong<Table> t = make<Table>();
  ref<Plain> wk;
  {
    Strong<Plain> key = make<Plain>(1);
    t->d.set(key, key);
    wk = ref<Plain>(key);
  }
  EXPECT_EQ(gc::collect(), 0U);
  EXPECT_TRUE(wk());
  t->d.clear();
  EXPECT_FALSE(wk());
}

// Values of other shapes: a struct holding several references, a vector.
TEST_F(EphemeronTest, CompositeValues) {
  struct Meta {
    std::string name;
    Strong<Node> owner;
    std::vector<Strong<Node>> more;
  };
  struct Table {
    WeakKeyDictionary<Node, Meta> d;
    void trace(gc::Visitor& v) { v(d); }
  };
  Strong<Table> t = make<Table>();
  Strong<Node> kept = make<Node>("kept");
  {
    Strong<Node> key = make<Node>("K");
    Strong<Node> extra = make<Node>("extra");
    extra->a = key;
    t->d.set(key, Meta{"m", key, {extra, kept}});
    t->d.set(kept, Meta{"kept", kept, {}});
  }
  EXPECT_EQ(gc::collect(), 2U);  // K and extra
  EXPECT_EQ(t->d.size(), 1U);
  EXPECT_EQ(t->d.at(kept).owner, kept);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->label, "kept");
}

// DEBUG_SAVEALL keeps the garbage in gc.garbage, alive.
TEST_F(EphemeronTest, SaveAllKeepsTheKeyAndItsValue) {
  Strong<Registry> r = make<Registry>();
  ref<Node> wk;
  {
    Strong<Node> key = make<Node>("K");
    Strong<Node> handler = make<Node>("H");
    handler->a = key;
    r->attached.set(key, handler);
    wk = ref<Node>(key);
  }
  const long live = g_live.load() - 2;
  gc::set_debug(gc::DEBUG_SAVEALL);
  EXPECT_EQ(gc::collect(), 2U);
  gc::set_debug(0);
  EXPECT_EQ(gc::garbage().size(), 2U);
  EXPECT_FALSE(wk());  // its weakrefs were cleared
  EXPECT_TRUE(r->attached.empty());
  gc::clear_garbage();  // gone by reference counting: the entry let go
  EXPECT_EQ(g_live.load(), live);
  EXPECT_EQ(gc::collect(), 0U);
}

}  // namespace
}  // namespace weakref::testing
