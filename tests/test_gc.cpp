// weakref::gc: the cycle collector and the gc module API.
#include <map>
#include <optional>
#include <unordered_map>
#include <variant>

#include "support.hpp"

namespace weakref::testing {
namespace {

// Automatic collection is off in these tests unless a test turns it on, so
// that every collection is the test's own (as the scenarios do).
class GcTest : public Test {
 protected:
  void SetUp() override {
    gc::disable();
    Test::SetUp();
  }
  void TearDown() override {
    gc::set_debug(0);
    gc::clear_callbacks();
    gc::clear_garbage();
    gc::set_threshold(700, 10, 10);
    Test::TearDown();
    gc::enable();
  }
};

std::function<void(const ref<Node>&)> record(std::vector<std::string>& log, std::string name) {
  return [&log, name](const ref<Node>&) { log.push_back(name); };
}

TEST_F(GcTest, CollectsTwoCycleAndSelfCycle) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B"), s = make<Node>("S");
  a->a = b;
  b->b = a;
  s->c = s;
  ref<Node> ra(a), rs(s);
  a.reset();
  b.reset();
  s.reset();
  EXPECT_TRUE(ra());  // cycles outlive their last outside reference
  EXPECT_TRUE(rs());
  EXPECT_EQ(gc::collect(), 3U);
  EXPECT_FALSE(ra());
  EXPECT_FALSE(rs());
  EXPECT_EQ(gc::collect(), 0U);
}

// Strongs made by weak locks keep their count on the side table; the
// collector must still see them as references to the object.
TEST_F(GcTest, CycleOfWeakLockedStrongsIsCollectedAndAReachableOneIsNot) {
  long before = g_live;
  Strong<Node> a = make<Node>("A"), b = make<Node>("B");
  ref<Node> ra(a), rb(b);
  a->a = rb();
  b->a = ra();
  Strong<Node> root = make<Node>("root"), kept = make<Node>("kept");
  ref<Node> rk(kept);
  root->a = rk();  // kept is reachable only through this member
  kept->a = rk();  // and a self-cycle, also through the side table
  kept.reset();
  a.reset();
  b.reset();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_FALSE(ra());
  EXPECT_FALSE(rb());
  ASSERT_TRUE(rk());
  EXPECT_EQ(rk()->label, "kept");
  root.reset();
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_FALSE(rk());
  EXPECT_EQ(g_live, before);
}

TEST_F(GcTest, ReachableCycleSurvives) {
  Strong<Node> a = make<Node>("A");
  a->a = make<Node>("B");
  a->a->a = a;
  EXPECT_EQ(gc::collect(), 0U);
  EXPECT_EQ(a->a->label, "B");
  Strong<Node> keep_b = a->a;
  a.reset();
  EXPECT_EQ(gc::collect(), 0U);  // still reachable through keep_b
  EXPECT_EQ(keep_b->a->label, "A");
  keep_b.reset();
  EXPECT_EQ(gc::collect(), 2U);
}

TEST_F(GcTest, ObjectOnlyReachableFromGarbageIsGarbage) {
  Strong<Node> a = make<Node>("A");
  a->a = a;
  a->b = make<Node>("C");
  a->b->a = make<Node>("D");
  a.reset();
  EXPECT_EQ(gc::collect(), 3U);  // C and D are found unreachable too
}

TEST_F(GcTest, CallbacksOfReachableWeakrefsRunNewestFirstPerObject) {
  // cycle_callbacks.scn
  std::vector<std::string> log;
  Strong<Node> a = make<Node>("A"), b = make<Node>("B");
  a->a = b;
  b->a = a;
  ref<Node> ra1(a, record(log, "ra1"));
  ref<Node> ra2(a, record(log, "ra2"));
  ref<Node> rb(b, record(log, "rb"));
  finalize fb(b, [&] { log.push_back("fb"); });
  a.reset();
  b.reset();
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(gc::collect(), 2U);
  auto pos = [&](const std::string& s) {
    return std::find(log.begin(), log.end(), s) - log.begin();
  };
  ASSERT_EQ(log.size(), 4U);
  EXPECT_LT(pos("ra2"), pos("ra1"));
  EXPECT_LT(pos("fb"), pos("rb"));
}

TEST_F(GcTest, GarbageWeakrefsNeverCallBack) {
  // garbage_weakref_slot.scn: a weakref held only by garbage is cleared
  // without callback, even when its referent dies in the same collection or
  // lives on; the same weakref also held from outside does call back.
  std::vector<std::string> log;
  Strong<Node> a = make<Node>("A"), b = make<Node>("B"), l = make<Node>("L");
  a->a = b;
  b->a = a;
  a->wa = ref<Node>(b, record(log, "w1"));  // garbage weakref to garbage
  b->wa = ref<Node>(a, record(log, "w2"));  // garbage weakref to garbage
  Strong<Node> holder = make<Node>("H");
  a->b = holder;                       // keeps nothing alive: holder has a name
  ref<Node> w4(b, record(log, "w4"));  // reachable weakref to garbage
  a->c = make<Node>("C");
  a->c->wa = ref<Node>(l, record(log, "w3"));  // garbage weakref to a live object
  EXPECT_EQ(getweakrefcount(b), 2U);
  EXPECT_EQ(getweakrefcount(l), 1U);
  a.reset();
  b.reset();
  EXPECT_EQ(gc::collect(), 3U);  // A, B and C (only reachable from them)
  EXPECT_EQ(log, std::vector<std::string>{"w4"});
  EXPECT_EQ(getweakrefcount(l), 0U);
  l.reset();
  EXPECT_EQ(log, std::vector<std::string>{"w4"});
}

TEST_F(GcTest, CallbacksGatheredAcrossAllGarbageBeforeAnyRuns) {
  // dropped_during_callbacks.scn (collector part): a callback dropping a
  // weakref of ANOTHER garbage object does not stop it.
  std::vector<std::string> log;
  Strong<Node> c = make<Node>("C"), d = make<Node>("D");
  c->a = d;
  d->a = c;
  auto t1 = std::make_unique<ref<Node>>(d, record(log, "t1"));
  auto s2 = std::make_unique<ref<Node>>(c, record(log, "s2"));
  ref<Node> s1(c, [&](const ref<Node>&) {
    log.push_back("s1");
    s2.reset();
    t1.reset();
  });
  c.reset();
  d.reset();
  EXPECT_EQ(gc::collect(), 2U);
  std::sort(log.begin(), log.end());
  EXPECT_EQ(log, (std::vector<std::string>{"s1", "s2", "t1"}));
}

TEST_F(GcTest, CollectFromCallbackReturnsZeroAndOrphanedCycleWaits) {
  // cb_collect.scn: a cycle cut loose by a callback during a collection
  // survives until the next collect.
  std::vector<std::string> log;
  std::vector<std::size_t> nested;
  Strong<Node> x = make<Node>("X"), y = make<Node>("Y");
  x->a = y;
  y->a = x;
  Strong<Node> z = make<Node>("Z");
  z->a = make<Node>("W");
  z->a->a = z;
  ref<Node> rz(z, record(log, "rz"));
  ref<Node> rx(x, [&](const ref<Node>&) {
    log.push_back("rx");
    nested.push_back(gc::collect());
    z.reset();  // Z-W is garbage now, but this collection started before
  });
  x.reset();
  y.reset();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_EQ(nested, std::vector<std::size_t>{0});
  EXPECT_EQ(log, std::vector<std::string>{"rx"});
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_EQ(log, (std::vector<std::string>{"rx", "rz"}));
}

TEST_F(GcTest, DyingObjectsReferencesCountAsOutsideReferences) {
  // cb_collect.scn, second part: during a refcount death's callbacks, the
  // cycle hanging off the dying object is not garbage yet.
  Strong<Node> f = make<Node>("F");
  f->a = make<Node>("P");
  f->a->a = make<Node>("Q");
  f->a->a->a = f->a;
  std::size_t in_callback = 99;
  finalize ff(f, [&] { in_callback = gc::collect(); });
  f.reset();
  EXPECT_EQ(in_callback, 0U);
  EXPECT_EQ(gc::collect(), 2U);
}

TEST_F(GcTest, CollectFromRefcountCallbackIsARealCollection) {
  Strong<Node> b = make<Node>("B"), c = make<Node>("C");
  b->a = c;
  c->a = b;
  b.reset();
  c.reset();
  Strong<Node> a = make<Node>("A");
  std::size_t found = 0;
  ref<Node> ra(a, [&](const ref<Node>&) { found = gc::collect(); });
  a.reset();
  EXPECT_EQ(found, 2U);
}

// Issue 13, part 1: a collection run from a callback deep inside a cascade
// of refcount deaths frees all of its garbage before it returns, as a
// collection run from the top does (the collector's lower nesting limit
// used to queue the third death of a cycle's break-up for the outermost
// death on the thread, after the collection).
TEST_F(GcTest, CollectionInsideACascadeFreesAllItsGarbageBeforeReturning) {
  for (int depth : {1, 3, 10, 45}) {
    SCOPED_TRACE(depth);
    // Garbage: a ring of 5 (breaking it up nests 5 deaths deep).
    {
      std::vector<Strong<Node>> ring;
      for (int i = 0; i < 5; ++i) ring.push_back(make<Node>("R"));
      for (int i = 0; i < 5; ++i) ring[i]->a = ring[(i + 1) % 5];
    }
    // A chain `depth` long whose last node's callback collects.
    Strong<Node> head = make<Node>("H");
    Node* last = head.get();
    for (int i = 1; i < depth; ++i) {
      last->a = make<Node>("C");
      last = last->a.get();
    }
    long live_before = 0, live_after = 0;
    std::size_t found = 0;
    ref<Node> r(self(last), [&](const ref<Node>&) {
      live_before = g_live;
      found = gc::collect();
      live_after = g_live;
    });
    head.reset();
    EXPECT_EQ(found, 5U);
    EXPECT_EQ(live_before - live_after, 5) << "garbage freed after collect() returned";
  }
}

// Deaths queued by the cascade before a collection started are not the
// collection's: they still run after it, when the outermost death ends (as
// CPython's trashcan runs them).
TEST_F(GcTest, DeathsQueuedBeforeANestedCollectionRunAfterIt) {
  // A chain 50 long: the 50th node's members X and Y die past the nesting
  // limit, queued (Y on top, so Y runs first).
  Strong<Node> head = make<Node>("H");
  Node* n = head.get();
  for (int i = 1; i < 50; ++i) {
    n->a = make<Node>("C");
    n = n->a.get();
  }
  n->a = make<Node>("X");
  n->b = make<Node>("Y");
  std::vector<std::string> log;
  ref<Node> rx(n->a, [&](const ref<Node>&) { log.push_back("x dies"); });
  ref<Node> ry(n->b, [&](const ref<Node>&) {
    log.push_back("y dies, collects");
    gc::collect();
    log.push_back("collected");
  });
  head.reset();
  EXPECT_EQ(log, (std::vector<std::string>{"y dies, collects", "collected", "x dies"}));
}

struct Phoenix {
  static inline Strong<Phoenix> saved;
  static inline int finalized = 0;
  Strong<Phoenix> other;
  bool resurrect = true;
  void trace(gc::Visitor& v) { v(other); }
  void tp_finalize() {
    ++finalized;
    if (resurrect) saved = self(this);
  }
};

TEST_F(GcTest, TpFinalizeRunsOnceAndResurrectionIsNotFreed) {
  Phoenix::finalized = 0;
  Strong<Phoenix> p = make<Phoenix>(), q = make<Phoenix>();
  p->other = q;
  q->other = p;
  q->resurrect = false;
  ref<Phoenix> rp(p), rq(q);
  p.reset();
  q.reset();
  EXPECT_EQ(gc::collect(), 0U);  // as CPython: the resurrected are not counted
  EXPECT_EQ(Phoenix::finalized, 2);
  ASSERT_TRUE(Phoenix::saved);
  EXPECT_TRUE(gc::is_finalized(Phoenix::saved));
  EXPECT_TRUE(Phoenix::saved->other);  // nothing was broken up
  // Weakrefs were cleared before the finalizers ran (CPython's order).
  EXPECT_FALSE(rp());
  EXPECT_FALSE(rq());
  // Once dropped again, the cycle is collected without finalizing again.
  Phoenix::saved.reset();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_EQ(Phoenix::finalized, 2);
}

TEST_F(GcTest, TpFinalizeOnRefcountDeath) {
  Phoenix::finalized = 0;
  Strong<Phoenix> p = make<Phoenix>();
  ref<Phoenix> r(p);
  p.reset();  // resurrected by its finalizer
  EXPECT_EQ(Phoenix::finalized, 1);
  ASSERT_TRUE(Phoenix::saved);
  EXPECT_TRUE(r());        // still the same live object
  Phoenix::saved.reset();  // dies for good, no second finalization
  EXPECT_EQ(Phoenix::finalized, 1);
  EXPECT_FALSE(r());
}

TEST_F(GcTest, TracksOnlyTracedTypes) {
  Strong<Node> n = make<Node>();
  Strong<Plain> p = make<Plain>();
  EXPECT_TRUE(gc::is_tracked(n));
  EXPECT_FALSE(gc::is_tracked(p));
  EXPECT_FALSE(gc::is_tracked(Strong<Node>()));
  bool found = false;
  for (auto& o : gc::get_objects())
    if (o == n) found = true;
  EXPECT_TRUE(found);
}

TEST_F(GcTest, GetReferrersAndReferents) {
  Strong<Node> a = make<Node>("A"), b = make<Node>("B"), c = make<Node>("C");
  a->a = c;
  b->b = c;
  c->wa = a;  // weak edges are not referents
  auto referrers = gc::get_referrers(c);
  ASSERT_EQ(referrers.size(), 2U);
  EXPECT_TRUE((referrers[0] == a && referrers[1] == b) || (referrers[0] == b && referrers[1] == a));
  auto referents = gc::get_referents(a, b);
  ASSERT_EQ(referents.size(), 2U);
  EXPECT_TRUE(referents[0] == c && referents[1] == c);
  EXPECT_TRUE(gc::get_referents(c).empty());
}

TEST_F(GcTest, GenerationCountsAndThresholds) {
  gc::collect();
  EXPECT_EQ(gc::get_count()[0], 0);
  std::vector<Strong<Node>> v;
  for (int i = 0; i < 5; ++i) v.push_back(make<Node>());
  EXPECT_EQ(gc::get_count()[0], 5);
  v.pop_back();
  EXPECT_EQ(gc::get_count()[0], 4);
  gc::collect(0);
  EXPECT_EQ(gc::get_count()[0], 0);
  EXPECT_EQ(gc::get_count()[1], 1);
  gc::collect(1);
  EXPECT_EQ(gc::get_count()[1], 0);
  EXPECT_EQ(gc::get_count()[2], 1);
  EXPECT_EQ(gc::get_threshold(), (std::array<long, 3>{700, 10, 10}));
  gc::set_threshold(5);
  EXPECT_EQ(gc::get_threshold(), (std::array<long, 3>{5, 10, 10}));
  gc::set_threshold(1, 2, 3);
  EXPECT_EQ(gc::get_threshold(), (std::array<long, 3>{1, 2, 3}));
  EXPECT_THROW(gc::collect(3), std::invalid_argument);
  EXPECT_THROW(gc::collect(-1), std::invalid_argument);
}

TEST_F(GcTest, AutomaticCollectionAtThreshold) {
  gc::set_threshold(10);
  gc::enable();
  EXPECT_TRUE(gc::isenabled());
  ref<Node> first;
  for (int i = 0; i < 30; ++i) {
    Strong<Node> n = make<Node>();
    n->a = n;
    if (i == 0) first = n;
  }
  EXPECT_FALSE(first());  // collected by allocation-triggered collections
  gc::disable();
  EXPECT_FALSE(gc::isenabled());
  Strong<Node> n = make<Node>();
  n->a = n;
  ref<Node> r(n);
  n.reset();
  for (int i = 0; i < 30; ++i) make<Node>();
  EXPECT_TRUE(r());  // disabled: nothing automatic
}

TEST_F(GcTest, FreezeMovesObjectsOutOfCollections) {
  Strong<Node> a = make<Node>("A");
  a->a = a;
  ref<Node> r(a);
  gc::freeze();
  EXPECT_GE(gc::get_freeze_count(), 1U);
  a.reset();
  EXPECT_EQ(gc::collect(), 0U);
  EXPECT_TRUE(r());
  gc::unfreeze();
  EXPECT_EQ(gc::get_freeze_count(), 0U);
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_FALSE(r());
}

TEST_F(GcTest, SaveAllKeepsGarbage) {
  gc::set_debug(gc::DEBUG_SAVEALL);
  Strong<Node> a = make<Node>("A");
  a->a = a;
  std::vector<std::string> log;
  ref<Node> r(a, record(log, "r"));
  a.reset();
  EXPECT_EQ(gc::collect(), 1U);
  auto garbage = gc::garbage();
  ASSERT_EQ(garbage.size(), 1U);
  EXPECT_EQ(exact_pointer_cast<Node>(garbage[0])->label, "A");
  EXPECT_EQ(log, std::vector<std::string>{"r"});  // weakrefs cleared as usual
  gc::set_debug(0);
  garbage.clear();
  gc::clear_garbage();
  EXPECT_EQ(gc::collect(), 1U);
}

TEST_F(GcTest, CallbacksSeeStartAndStop) {
  std::vector<std::string> phases;
  auto id = gc::add_callback([&](gc::Phase p, const gc::CallbackInfo& info) {
    phases.push_back(std::string(gc::to_string(p)) + " " + std::to_string(info.generation) + " " +
                     std::to_string(info.collected) + " " + std::to_string(info.uncollectable));
  });
  Strong<Node> a = make<Node>();
  a->a = a;
  a.reset();
  gc::collect(1);
  EXPECT_EQ(phases, (std::vector<std::string>{"start 1 0 0", "stop 1 1 0"}));
  EXPECT_TRUE(gc::remove_callback(id));
  EXPECT_FALSE(gc::remove_callback(id));
  gc::collect();
  EXPECT_EQ(phases.size(), 2U);
}

// Issue 13, part 3: a gc::callbacks callback that calls collect() gets 0,
// in both phases, as CPython's does (the collection is still running). The
// "stop" callback's nested collect() used to start a full collection,
// whose own "stop" callback collected again, until the stack overflowed.
TEST_F(GcTest, CollectFromGcCallbackReturnsZero) {
  std::vector<std::string> log;
  gc::add_callback([&](gc::Phase p, const gc::CallbackInfo&) {
    log.push_back(std::string(gc::to_string(p)) + " " + std::to_string(gc::collect()));
  });
  Strong<Node> a = make<Node>();
  a->a = a;
  a.reset();
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_EQ(log, (std::vector<std::string>{"start 0", "stop 0"}));
}

// Callbacks added or removed by a callback are seen by the same run, as
// CPython's live list is.
TEST_F(GcTest, GcCallbacksSeeTheLiveList) {
  std::vector<std::string> log;
  gc::CallbackId second = 0;
  gc::add_callback([&](gc::Phase p, const gc::CallbackInfo&) {
    log.push_back("first " + std::string(gc::to_string(p)));
    if (p == gc::Phase::start) gc::remove_callback(second);
  });
  second = gc::add_callback([&](gc::Phase p, const gc::CallbackInfo&) {
    log.push_back("second " + std::string(gc::to_string(p)));
  });
  gc::collect();
  EXPECT_EQ(log, (std::vector<std::string>{"first start", "first stop"}));
}

TEST_F(GcTest, StatsCountCollections) {
  auto before = gc::get_stats();
  Strong<Node> a = make<Node>();
  a->a = a;
  a.reset();
  gc::collect(2);
  auto after = gc::get_stats();
  EXPECT_EQ(after[2].collections, before[2].collections + 1);
  EXPECT_EQ(after[2].collected, before[2].collected + 1);
  EXPECT_EQ(after[2].uncollectable, before[2].uncollectable);
}

TEST_F(GcTest, DebugOutputLikeCPython) {
  gc::set_debug(gc::DEBUG_STATS | gc::DEBUG_COLLECTABLE);
  EXPECT_EQ(gc::get_debug(), gc::DEBUG_STATS | gc::DEBUG_COLLECTABLE);
  Strong<Node> a = make<Node>("A");
  a->a = a;
  a.reset();
  ::testing::internal::CaptureStderr();
  gc::collect();
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, ::testing::ContainsRegex(
                       "gc: collecting generation 2\\.\\.\\.\n"
                       "gc: objects in each generation: [0-9]+ [0-9]+ [0-9]+\n"
                       "gc: objects in permanent generation: 0\n"
                       "gc: collectable <weakref::testing::Node 0x[0-9a-f]+>\n"
                       "gc: done, 1 unreachable, 0 uncollectable, [0-9.]+s elapsed\n"));
  EXPECT_EQ(gc::DEBUG_LEAK, gc::DEBUG_COLLECTABLE | gc::DEBUG_UNCOLLECTABLE | gc::DEBUG_SAVEALL);
}

// The visitor understands the standard containers and wrappers.
struct Bag {
  std::vector<Strong<Bag>> vec;
  std::map<std::string, Strong<Bag>> by_name;
  std::map<Strong<Bag>, int> by_key;
  std::optional<Strong<Bag>> maybe;
  std::variant<int, Strong<Bag>> either;
  std::pair<int, Strong<Bag>> pair;
  std::unique_ptr<Node> owned;
  std::array<Strong<Bag>, 2> arr;
  std::vector<ref<Bag>> weak;
  void trace(gc::Visitor& v) { v(vec, by_name, by_key, maybe, either, pair, owned, arr, weak); }
};

TEST_F(GcTest, VisitorHandlesStandardContainers) {
  auto check = [](auto link) {
    Strong<Bag> a = make<Bag>(), b = make<Bag>();
    link(*a, b);
    link(*b, a);
    ref<Bag> ra(a), rb(b);
    a.reset();
    b.reset();
    EXPECT_EQ(gc::collect(), 2U);
    EXPECT_FALSE(ra());
    EXPECT_FALSE(rb());
  };
  check([](Bag& x, Strong<Bag> y) { x.vec.push_back(y); });
  check([](Bag& x, Strong<Bag> y) { x.by_name["k"] = y; });
  check([](Bag& x, Strong<Bag> y) { x.by_key[y] = 1; });
  check([](Bag& x, Strong<Bag> y) { x.maybe = y; });
  check([](Bag& x, Strong<Bag> y) { x.either = y; });
  check([](Bag& x, Strong<Bag> y) { x.pair.second = y; });
  check([](Bag& x, Strong<Bag> y) { x.arr[1] = y; });
  // Through an owned traced member.
  Strong<Bag> a = make<Bag>();
  a->owned = std::make_unique<Node>("inner");
  Strong<Node> n = make<Node>("N");
  a->owned->a = n;
  n->wa = ref<Node>(n);
  EXPECT_EQ(gc::get_referents(a).size(), 1U);
  a.reset();
}

TEST_F(GcTest, CallbackMayAllocateDropAndMakeWeakrefs) {
  std::vector<ref<Node>> made;
  int inner = 0;
  Strong<Node> a = make<Node>("A");
  a->a = a;
  ref<Node> ra(a, [&](const ref<Node>&) {
    for (int i = 0; i < 50; ++i) {
      Strong<Node> x = make<Node>("x");
      x->a = x;  // new garbage, for the next collection
      made.emplace_back(x, [&](const ref<Node>&) { ++inner; });
    }
  });
  a.reset();
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_EQ(inner, 0);
  EXPECT_EQ(gc::collect(), 50U);
  EXPECT_EQ(inner, 50);
}

TEST_F(GcTest, LongListWithCycleAtTheEnd) {
  Strong<Node> head = make<Node>("0");
  Node* tail = head.get();
  for (int i = 1; i < 100'000; ++i) {
    tail->a = make<Node>(std::to_string(i));
    tail = tail->a.get();
  }
  tail->a = head;
  head.reset();
  EXPECT_EQ(gc::collect(), 100'000U);
}

// A binary tree whose nodes log their death before releasing their children
// (left, then right): released by reference counting, the log is the tree in
// pre-order, as in CPython while the nesting stays under its trashcan limit.
struct TreeNode {
  int id;
  std::vector<int>* log;
  Strong<TreeNode> left, right, back;
  TreeNode(int i, std::vector<int>* l) : id(i), log(l) {}
  ~TreeNode() {
    log->push_back(id);
    left.reset();
    right.reset();
  }
  void trace(gc::Visitor& v) { v(left, right, back); }
};

Strong<TreeNode> make_tree(int depth, int& next_id, std::vector<int>& log,
                           std::vector<int>& preorder) {
  auto n = make<TreeNode>(next_id++, &log);
  preorder.push_back(n->id);
  if (depth > 1) {
    n->left = make_tree(depth - 1, next_id, log, preorder);
    n->right = make_tree(depth - 1, next_id, log, preorder);
  }
  return n;
}

TEST_F(GcTest, CollectingADeepGarbageTreeKeepsRefcountDeathOrderAfterwards) {
  // Garbage: a tree 12 levels deep (4095 nodes, deeper than the nesting the
  // collector allows itself) whose leftmost leaf points back to the root.
  std::vector<int> garbage_log, garbage_preorder;
  int id = 0;
  {
    Strong<TreeNode> root = make_tree(12, id, garbage_log, garbage_preorder);
    TreeNode* leaf = root.get();
    while (leaf->left) leaf = leaf->left.get();
    leaf->back = root;
  }
  EXPECT_EQ(gc::collect(), 4095U);
  // In an order of its own (python-mapping.md#bounded-death-nesting).
  EXPECT_EQ(garbage_log.size(), 4095U);

  // After the collection, a refcount release nests deaths as CPython does:
  // a tree 10 levels deep dies in pre-order.
  std::vector<int> log, preorder;
  Strong<TreeNode> root = make_tree(10, id, log, preorder);
  root.reset();
  EXPECT_EQ(log, preorder);
}

}  // namespace
}  // namespace weakref::testing
