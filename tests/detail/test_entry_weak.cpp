// The race between a container entry's death and its owner taking it out
// (include/weakref/detail/entry_weak.hpp): who wins the entry, and where
// each side marks it. The lone death (the entry is its referent's only
// weakref) claims under the side lock with a load and a store, so an owner
// that marks a linked entry out must do it under that lock too
// (entry_mark_out); once the death has cleared the weakref, the owner's mark
// is a fetch_or. The threads versions of these races are in
// test_threads_unit_share.cpp.
#include <atomic>
#include <thread>

#include "support.hpp"
#include "weakref/detail/entry_weak.hpp"
#include "weakref/detail/locks.hpp"

namespace weakref::testing {
namespace {

class EntryWeakTest : public Test {
 protected:
  void SetUp() override {
    Test::SetUp();
    ctrl_ = detail::control_create();
  }
  void TearDown() override {
    for (detail::EntryWeak* w = detail::control_close(ctrl_); w;) {
      detail::EntryWeak* next = w->queue_next();
      detail::weak_release(w);
      w = next;
    }
    detail::control_release(ctrl_);
    Test::TearDown();
  }
  // A new entry weakref to x, linked, with the one reference an entry has.
  detail::EntryWeak* attach(const Strong<Node>& x) {
    return detail::entry_attach(detail::StrongAccess::header(x), ctrl_, 0);
  }
  detail::ContainerControl* ctrl_ = nullptr;
};

// The owner marks the entry out first: the death finds the mark and leaves
// the entry alone (nothing counted, nothing queued), and the entry's
// reference stays the owner's to release.
TEST_F(EntryWeakTest, AnEntryMarkedOutIsNotClaimedByItsDeath) {
  Strong<Node> x = make<Node>("x");
  detail::EntryWeak* w = attach(x);
  EXPECT_EQ(detail::entry_mark_out(w) & detail::kEntryStates, 0U);
  x.reset();  // the lone death
  EXPECT_TRUE(w->cleared());
  EXPECT_EQ(ctrl_->dead.load(), 0);
  EXPECT_EQ(ctrl_->head.load(), 0U);
  detail::weak_release(w);
}

// The death claims first: it counts the claim and queues the weakref with
// the entry's reference; the owner's later mark (on a cleared weakref) sees
// the claim, and the queue's reference is released by whoever takes it.
TEST_F(EntryWeakTest, AnEntryClaimedByItsDeathIsTheQueues) {
  Strong<Node> x = make<Node>("x");
  detail::EntryWeak* w = attach(x);
  x.reset();
  EXPECT_EQ(ctrl_->dead.load(), 1);
  EXPECT_TRUE(detail::entry_mark_out(w) & detail::kEntryDead);
  EXPECT_EQ(detail::control_take(ctrl_), w);
  detail::weak_release(w);
}

// While the entry's weakref is linked, the owner's mark waits for the side
// lock, which the lone death holds while it reads and writes the claim: an
// owner that wrote without the lock could overwrite a claim made between
// its load and its store. (One-sided: a correct mark can never finish while
// the lock is held, however the threads are scheduled.)
TEST_F(EntryWeakTest, TheOwnersMarkOfALinkedEntryTakesTheSideLock) {
  Strong<Node> x = make<Node>("x");
  detail::EntryWeak* w = attach(x);
  detail::SideTable* s = w->side_table();
  std::atomic<bool> started{false};
  std::atomic<bool> done{false};
  s->lock.lock();
  std::thread owner([&] {
    started.store(true);
    (void)detail::entry_mark_out(w);
    done.store(true);
  });
  while (!started.load()) std::this_thread::yield();
  for (int i = 0; i < 2000; ++i) std::this_thread::yield();
  EXPECT_FALSE(done.load());
  s->lock.unlock();
  owner.join();
  EXPECT_TRUE(done.load());
  EXPECT_TRUE(w->ctrl_state.load() & detail::kEntryOut);
  x.reset();
  EXPECT_EQ(ctrl_->dead.load(), 0);
  detail::weak_release(w);
}

}  // namespace
}  // namespace weakref::testing
