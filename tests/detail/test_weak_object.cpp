// The release rules of weakref objects and side tables that let a releaser
// skip its read-modify-write when it holds everything that is left
// (weak_object.hpp: weak_release, weak_sole_cleared; src/object.cpp:
// side_release), and the death's borrow of a callback weakref
// (weak_object.hpp): releases during the callback or ~T are handed to the
// death. Their concurrency is in test_threads_core.cpp; here, the cases each
// rule must and must not take. (Under AddressSanitizer, a weakref freed too
// early is a use after free, one never freed a leak.)
#include <functional>
#include <optional>
#include <thread>
#include <vector>

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

// The death borrows its one callback weakref (no reference of its own): a
// callback that drops the last handle to it still reads it through its
// argument, and the death frees it after the callback, once.
TEST_F(WeakObjectRulesTest, ACallbackMayDropTheLastHandleOfItsOwnWeakref) {
  for (const bool threads : {false, true}) {
    if (threads) std::thread([] {}).join();  // the multi-threaded release paths
    int calls = 0;
    std::optional<ref<Node>> holder;
    Strong<Node> n = make<Node>("n");
    holder.emplace(n, [&](const ref<Node>& self) {
      ++calls;
      const std::size_t identity = std::hash<ref<Node>>{}(self);
      holder.reset();  // the last handle: its release goes to the death
      EXPECT_FALSE(self());
      EXPECT_EQ(std::hash<ref<Node>>{}(self), identity);
      EXPECT_EQ(detail::weak_holders(detail::HandleAccess::get(self)), 1U)
          << "the release handed to the death keeps the weakref counted";
    });
    n.reset();
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(holder.has_value());
    EXPECT_EQ(detail::owed_releases(), 0U);
  }
}

// A callback that keeps a copy of its argument, and one that makes a copy
// and drops it after the last other handle went (the count goes 1 -> 0 ->
// 1 -> 0 under the borrow): the copy kept outlives the death and is a dead
// ref; everything is freed once.
TEST_F(WeakObjectRulesTest, ACallbackMayCopyItsBorrowedWeakref) {
  std::optional<ref<Node>> kept;
  {
    Strong<Node> n = make<Node>("n");
    ref<Node> r(n, [&](const ref<Node>& self) { kept = self; });
    n.reset();
  }
  ASSERT_TRUE(kept.has_value());
  EXPECT_FALSE((*kept)());
  EXPECT_EQ(detail::weak_holders(detail::HandleAccess::get(*kept)), 1U);
  kept.reset();

  int calls = 0;
  std::optional<ref<Node>> holder;
  Strong<Node> n = make<Node>("n");
  holder.emplace(n, [&](const ref<Node>& self) {
    ++calls;
    holder.reset();
    ref<Node> copy = self;  // from the borrow alone
    std::vector<ref<Node>> more(3, copy);
    EXPECT_FALSE(copy());
  });
  n.reset();
  EXPECT_EQ(calls, 1);
}

// ~T dropping the last handle to its own callback weakref (an object that
// watches itself): the callback has run by then, and the death frees the
// weakref after ~T.
TEST_F(WeakObjectRulesTest, TheDestructorMayDropTheLastHandleOfTheBorrowedWeakref) {
  int calls = 0;
  Strong<Node> n = make<Node>("self-watching");
  n->wa = ref<Node>(n, [&](const ref<Node>& self) {
    ++calls;
    EXPECT_FALSE(self());
  });
  n.reset();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(detail::owed_releases(), 0U);
}

// Deaths nest: a callback kills another object whose callback drops the
// last handle to the outer weakref, and the outer callback drops the inner
// one's: each release goes to the death that borrows that weakref.
TEST_F(WeakObjectRulesTest, NestedDeathsEachSettleTheirOwnBorrow) {
  std::vector<std::string> order;
  std::optional<ref<Node>> outer_ref, inner_ref;
  Strong<Node> outer = make<Node>("outer");
  Strong<Node> inner = make<Node>("inner");
  inner_ref.emplace(inner, [&](const ref<Node>&) {
    order.push_back("inner");
    outer_ref.reset();
  });
  outer_ref.emplace(outer, [&](const ref<Node>& self) {
    order.push_back("outer");
    inner.reset();  // dies here, on this thread, inside this callback
    EXPECT_FALSE(outer_ref.has_value());
    inner_ref.reset();
    EXPECT_FALSE(self());
  });
  outer.reset();
  EXPECT_EQ(order, (std::vector<std::string>{"outer", "inner"}));
  EXPECT_EQ(detail::owed_releases(), 0U);
}

// A finalizer whose handles are all gone: the registry's reference is the
// last one, and the finalizer's own call drops it (its registration ends)
// while its death borrows it.
TEST_F(WeakObjectRulesTest, AFinalizerWithoutHandlesEndsItsRegistrationDuringItsCall) {
  int calls = 0;
  Strong<Node> n = make<Node>("n");
  finalize(n, [&] { ++calls; });
  n.reset();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(detail::owed_releases(), 0U);
}

}  // namespace
}  // namespace weakref::testing
