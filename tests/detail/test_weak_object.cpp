// The release rules of weakref objects and side tables that let a releaser
// skip its read-modify-write when it holds everything that is left
// (weak_object.hpp: weak_release, weak_sole_cleared; src/object.cpp:
// side_release). Their concurrency is in test_threads_core.cpp; here, the
// cases each rule must and must not take.
#include <functional>
#include <thread>

#include "support.hpp"

namespace weakref::testing {
namespace {

using WeakObjectRulesTest = Test;

detail::WeakObject* object_of(const ref<Node>& r) { return detail::HandleAccess::get(r); }

// Only a cleared weakref that one holder alone holds is left to that holder
// without a decrement: a live one may still gain the death's reference (the
// death takes it under the side lock, which the releaser has not taken).
TEST_F(WeakObjectRulesTest, OnlyAClearedWeakrefWithOneHolderIsTheHoldersAlone) {
  Strong<Node> n = make<Node>("n");
  ref<Node> r(n, [](const ref<Node>&) {});
  EXPECT_FALSE(detail::weak_sole_cleared(object_of(r))) << "live, one handle";
  ref<Node> copy = r;
  EXPECT_FALSE(detail::weak_sole_cleared(object_of(r))) << "live, two handles";
  ref<Node> basic(n);
  EXPECT_FALSE(detail::weak_sole_cleared(object_of(basic))) << "live basic ref: pinned";
  n.reset();
  EXPECT_FALSE(detail::weak_sole_cleared(object_of(r))) << "cleared, two handles";
  copy.reset();
  EXPECT_TRUE(detail::weak_sole_cleared(object_of(r))) << "cleared, one handle";
  EXPECT_TRUE(detail::weak_sole_cleared(object_of(basic))) << "cleared basic ref: unpinned";
}

// A side table outlives each of the units still held: releasing one of two
// dead weakrefs leaves the other's identity readable (the side table keeps
// the referent's address); the last release frees it.
TEST_F(WeakObjectRulesTest, ASideTableOutlivesEveryUnitButTheLast) {
  std::thread([] {}).join();  // the multi-threaded release paths
  for (int order = 0; order < 2; ++order) {
    Strong<Node> n = make<Node>("n");
    ref<Node> first(n, [](const ref<Node>&) {});
    ref<Node> second(n, [](const ref<Node>&) {});
    ref<Node> basic(n);
    const std::size_t identity = std::hash<ref<Node>>{}(second);
    n.reset();
    (order ? basic : first).reset();
    EXPECT_EQ(std::hash<ref<Node>>{}(second), identity);
    (order ? first : basic).reset();
    EXPECT_EQ(std::hash<ref<Node>>{}(second), identity);
    EXPECT_FALSE(second());
  }
}

}  // namespace
}  // namespace weakref::testing
