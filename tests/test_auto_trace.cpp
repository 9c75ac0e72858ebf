// Plain aggregates holding strong or weak references are traced without a
// trace() function (issue #12, item 7): a forgotten trace() no longer leaks
// cycles of plain structs. The compile-time rules are in
// tests/compile_fail/ok_auto_trace.cpp.
#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

std::atomic<long> g_links{0};

// Counts its instances, so that the test sees collected cycles die.
struct Counted {
  Counted() { ++g_links; }
  Counted(const Counted&) { ++g_links; }
  ~Counted() { --g_links; }
};

struct Link {
  std::string name;
  Strong<Link> next;
  Counted counted;
};

struct Inner {
  int x = 0;
  Strong<Link> link;
};
struct Everything {
  Counted counted;
  std::vector<Strong<Everything>> vec;
  std::map<std::string, Strong<Everything>> map;
  std::array<Strong<Everything>, 2> arr;
  std::optional<Strong<Everything>> opt;
  std::variant<int, Strong<Everything>> var;
  std::pair<std::string, Strong<Everything>> pair;
  std::unique_ptr<Inner> owned;
  Inner nested;
  unsigned bits : 4;
  ref<Everything> weak;
};

struct OptedOut {
  Strong<OptedOut> next;
  Counted counted;
};

struct HalfTraced {
  Strong<HalfTraced> seen, hidden;
  void trace(gc::Visitor& v) { v(seen); }  // the user's trace() is kept
};

}  // namespace
}  // namespace weakref::testing

template <>
inline constexpr bool weakref::gc::auto_trace<weakref::testing::OptedOut> = false;

namespace weakref::testing {
namespace {

class AutoTraceTest : public Test {
 protected:
  void TearDown() override {
    Test::TearDown();
    EXPECT_EQ(g_links.load(), 0) << "aggregates leaked by the test";
  }
};

TEST_F(AutoTraceTest, CycleOfPlainStructsIsCollected) {
  Strong<Link> a = make<Link>("a");
  Strong<Link> b = make<Link>("b");
  EXPECT_TRUE(gc::is_tracked(a));
  a->next = b;
  b->next = a;
  ref<Link> wa(a);
  a.reset();
  b.reset();
  EXPECT_FALSE(wa.expired());
  EXPECT_EQ(g_links.load(), 2);
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_TRUE(wa.expired());
  EXPECT_EQ(g_links.load(), 0);
}

TEST_F(AutoTraceTest, EveryKindOfFieldIsSeen) {
  Strong<Everything> hub = make<Everything>();
  std::vector<Strong<Everything>> leaves;
  for (int i = 0; i < 8; ++i) leaves.push_back(make<Everything>());
  hub->vec.push_back(leaves[0]);
  hub->map["k"] = leaves[1];
  hub->arr[1] = leaves[2];
  hub->opt = leaves[3];
  hub->var = leaves[4];
  hub->pair.second = leaves[5];
  Strong<Link> l1 = make<Link>("in unique_ptr");
  Strong<Link> l2 = make<Link>("in nested");
  hub->owned = std::make_unique<Inner>(Inner{1, l1});
  hub->nested.link = l2;
  hub->weak = leaves[6];
  hub->bits = 5;
  // Strong referents: everything but the weak one.
  std::vector<Strong<void>> referents = gc::get_referents(hub);
  EXPECT_EQ(referents.size(), 8U);
  for (int i = 0; i < 6; ++i)
    EXPECT_NE(std::find(referents.begin(), referents.end(), Strong<void>(leaves[i])),
              referents.end())
        << i;
  EXPECT_NE(std::find(referents.begin(), referents.end(), Strong<void>(l1)), referents.end());
  EXPECT_NE(std::find(referents.begin(), referents.end(), Strong<void>(l2)), referents.end());
  EXPECT_EQ(hub->bits, 5U);  // a bit-field beside them is fine
}

TEST_F(AutoTraceTest, CyclesThroughEveryKindOfFieldAreCollected) {
  const long before = g_links.load();
  {
    Strong<Everything> hub = make<Everything>();
    auto back = [&hub] {
      Strong<Everything> e = make<Everything>();
      e->var = hub;  // each leaf points back at the hub
      return e;
    };
    hub->vec.push_back(back());
    hub->map["k"] = back();
    hub->arr[0] = back();
    hub->opt = back();
    hub->var = back();
    hub->pair.second = back();
    Strong<Link> l = make<Link>("loop");
    hub->owned = std::make_unique<Inner>(Inner{1, l});
    hub->nested.link = l;
    l->next = l;
    hub->weak = hub->arr[0];
  }
  EXPECT_GT(g_links.load(), before);
  EXPECT_EQ(gc::collect(), 8U);  // the hub, its six leaves and the Link
  EXPECT_EQ(g_links.load(), before);
}

TEST_F(AutoTraceTest, WeakrefsInCollectedStructsDoNotCallBack) {
  // CPython: a weakref that is itself garbage never calls back.
  struct Watcher {
    Strong<Watcher> self_loop;
    ref<Node> watched;
  };
  int calls = 0;
  Strong<Node> target = make<Node>("target");
  {
    Strong<Watcher> w = make<Watcher>();
    w->self_loop = w;
    w->watched = ref<Node>(target, [&calls] { ++calls; });
  }
  EXPECT_EQ(gc::collect(), 1U);
  target.reset();
  EXPECT_EQ(calls, 0);
}

// The collector sees a struct's weak members: a weakref held by garbage to
// garbage is garbage itself and never calls back (CPython, bpo-38006).
TEST_F(AutoTraceTest, WeakMembersOfGarbageAreGarbage) {
  struct Pair {
    Strong<Pair> other;
    ref<Pair> watch;
  };
  int calls = 0;
  {
    Strong<Pair> a = make<Pair>();
    Strong<Pair> b = make<Pair>();
    a->other = b;
    b->other = a;
    a->watch = ref<Pair>(b, [&calls] { ++calls; });
  }
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_EQ(calls, 0);
}

TEST_F(AutoTraceTest, UserTraceIsKept) {
  Strong<HalfTraced> h = make<HalfTraced>();
  h->seen = make<HalfTraced>();
  h->hidden = make<HalfTraced>();
  EXPECT_EQ(gc::get_referents(h).size(), 1U);
  h->seen.reset();
  h->hidden.reset();
}

TEST_F(AutoTraceTest, OptedOutTypesAreNotTracked) {
  Strong<OptedOut> o = make<OptedOut>();
  EXPECT_FALSE(gc::is_tracked(o));
  o->next = o;  // a leak the collector cannot see, as with any untraced type
  gc::collect();
  EXPECT_EQ(o.use_count(), 2);
  o->next.reset();
}

TEST_F(AutoTraceTest, ManagedStandardContainersAreTraced) {
  using List = std::vector<Strong<void>>;
  Strong<List> a = make<List>();
  Strong<List> b = make<List>();
  EXPECT_TRUE(gc::is_tracked(a));
  a->push_back(b);
  b->push_back(a);
  ref<List> wa(a);
  a.reset();
  b.reset();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_TRUE(wa.expired());
}

}  // namespace
}  // namespace weakref::testing
