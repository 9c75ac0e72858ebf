// weakref::getweakrefcount / getweakrefs.
#include "support.hpp"

namespace weakref::testing {
namespace {

using GetWeakrefsTest = Test;

TEST_F(GetWeakrefsTest, CountsEveryKindOfWeakref) {
  Strong<Node> n = make<Node>();
  EXPECT_EQ(getweakrefcount(n), 0U);
  EXPECT_EQ(getweakrefcount(Strong<Node>()), 0U);
  ref<Node> r(n);
  proxy<Node> p(n);
  WeakMethod m(n, &Node::name);
  finalize f(n, [] {});
  ref<Node> cb(n, [](const ref<Node>&) {});
  EXPECT_EQ(getweakrefcount(n), 5U);
  f.detach();
  EXPECT_EQ(getweakrefcount(n), 4U);
}

TEST_F(GetWeakrefsTest, ListsInCPythonOrder) {
  // basic ref, basic proxy, then the rest newest first.
  Strong<Node> n = make<Node>();
  ref<Node> c1(n, [](const ref<Node>&) {});
  proxy<Node> p(n);
  ref<Node> c2(n, [](const ref<Node>&) {});
  ref<Node> r(n);
  std::vector<ref<>> all = getweakrefs(n);
  ASSERT_EQ(all.size(), 4U);
  EXPECT_TRUE(all[0].is(r));
  EXPECT_TRUE(all[1].is(p));
  EXPECT_TRUE(all[2].is(c2));
  EXPECT_TRUE(all[3].is(c1));
  EXPECT_TRUE(all[1]() == n);
}

TEST_F(GetWeakrefsTest, DroppedWeakrefsLeaveTheList) {
  Strong<Node> n = make<Node>();
  auto r = std::make_unique<ref<Node>>(n, [](const ref<Node>&) {});
  EXPECT_EQ(getweakrefs(n).size(), 1U);
  r.reset();
  EXPECT_TRUE(getweakrefs(n).empty());
}

// CPython: `r = ref(o); del r` leaves getweakrefcount(o) == 0. Here the
// side table keeps the basic ref until o dies (so that the next ref(o) is one
// increment), but nobody holds it: it is neither counted nor listed, and the
// order of what is listed stays CPython's.
TEST_F(GetWeakrefsTest, ABasicRefNobodyHoldsIsNotCountedNorListed) {
  Strong<Node> n = make<Node>();
  {
    ref<Node> r(n);
    EXPECT_EQ(getweakrefcount(n), 1U);
  }
  EXPECT_EQ(getweakrefcount(n), 0U);
  EXPECT_TRUE(getweakrefs(n).empty());
  proxy<Node> p(n);
  ref<Node> cb(n, [](const ref<Node>&) {});
  std::vector<ref<>> all = getweakrefs(n);
  ASSERT_EQ(all.size(), 2U);
  EXPECT_TRUE(all[0].is(p));
  EXPECT_TRUE(all[1].is(cb));
  ref<Node> again(n);
  EXPECT_EQ(getweakrefcount(n), 3U);
  all = getweakrefs(n);
  ASSERT_EQ(all.size(), 3U);
  EXPECT_TRUE(all[0].is(again));
  EXPECT_TRUE(all[1].is(p));
  EXPECT_TRUE(all[2].is(cb));
  all.clear();
  again.reset();
  EXPECT_EQ(getweakrefcount(n), 2U);
}

}  // namespace
}  // namespace weakref::testing
