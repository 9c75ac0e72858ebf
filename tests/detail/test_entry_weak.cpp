// The race between a container entry's death and its owner taking it out
// (include/weakref/detail/entry_weak.hpp): who wins the entry, and where
// each side marks it. The lone death (the entry is its referent's only
// weakref) claims under the side lock with a load and a store, so an owner
// that marks a linked entry out must do it under that lock too
// (entry_mark_out); once the death has cleared the weakref, the owner's mark
// is a fetch_or. The threads versions of these races are in
// test_threads_unit_share.cpp. The death queue counts itself in its head
// (ContainerControl: up to 7, the rest in queued_extra).
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

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
  EXPECT_EQ(detail::control_queued(ctrl_), 0);
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
  EXPECT_EQ(detail::control_queued(ctrl_), 1);
  EXPECT_TRUE(detail::entry_mark_out(w) & detail::kEntryDead);
  EXPECT_EQ(detail::control_take(ctrl_), w);
  detail::weak_release(w);
}

// The queue's head counts up to 7 claims; the 8th and later are counted in
// queued_extra, which the owner's take brings back to 0. Every count is
// exact between the pushes.
TEST_F(EntryWeakTest, TheQueueCountsItsClaimsBeyondWhatItsHeadHolds) {
  constexpr int kDeaths = 20;
  std::vector<detail::EntryWeak*> pushed;
  for (int i = 0; i < kDeaths; ++i) {
    Strong<Node> x = make<Node>("x");
    pushed.push_back(attach(x));
    x.reset();
    EXPECT_EQ(detail::control_queued(ctrl_), i + 1);
    EXPECT_EQ(ctrl_->head.load() & detail::kQueueCount,
              static_cast<std::uintptr_t>(std::min(i + 1, 7)));
    EXPECT_EQ(detail::control_queued_in(ctrl_), i + 1);
  }
  EXPECT_EQ(ctrl_->queued_extra.load(), kDeaths - 7);
  // An entry the owner takes out after its claim is queued is not "in".
  EXPECT_TRUE(detail::entry_mark_out(pushed[3]) & detail::kEntryDead);
  EXPECT_EQ(detail::control_queued_in(ctrl_), kDeaths - 1);
  int taken = 0;
  for (detail::EntryWeak* w = detail::control_take(ctrl_); w;) {
    EXPECT_EQ(w, pushed[static_cast<std::size_t>(kDeaths - 1 - taken)]);  // newest first
    detail::EntryWeak* next = w->queue_next();
    detail::weak_release(w);
    w = next;
    ++taken;
  }
  EXPECT_EQ(taken, kDeaths);
  EXPECT_EQ(ctrl_->head.load(), 0U);
  EXPECT_EQ(ctrl_->queued_extra.load(), 0);
  EXPECT_EQ(detail::control_queued(ctrl_), 0);
}

// Deaths on two threads push while the owner takes on a third: every claim
// is taken once, and once all is taken, nothing is left counted. (Under
// TSan, the pushes' release and the take's acquire carry the links.)
TEST_F(EntryWeakTest, PushesFromThreadsAndTheOwnersTakesCountEachClaimOnce) {
  constexpr int kPerThread = 3000;
  std::atomic<int> done{0};
  std::atomic<int> taken{0};
  auto drain = [&] {
    for (detail::EntryWeak* w = detail::control_take(ctrl_); w;) {
      detail::EntryWeak* next = w->queue_next();
      detail::weak_release(w);
      w = next;
      taken.fetch_add(1);
    }
  };
  auto killer = [&] {
    for (int i = 0; i < kPerThread; ++i) {
      Strong<Node> x = make<Node>("x");
      (void)attach(x);
      x.reset();  // the lone death claims and pushes
    }
    done.fetch_add(1);
  };
  std::thread a(killer), b(killer);
  while (done.load() < 2) {
    EXPECT_GE(detail::control_queued(ctrl_), 0);  // high for a moment at most, never low
    drain();
  }
  a.join();
  b.join();
  drain();
  EXPECT_EQ(taken.load(), 2 * kPerThread);
  EXPECT_EQ(ctrl_->queued_extra.load(), 0);
  EXPECT_EQ(detail::control_queued(ctrl_), 0);
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
  s->lock();
  std::thread owner([&] {
    started.store(true);
    (void)detail::entry_mark_out(w);
    done.store(true);
  });
  while (!started.load()) std::this_thread::yield();
  for (int i = 0; i < 2000; ++i) std::this_thread::yield();
  EXPECT_FALSE(done.load());
  s->unlock();
  owner.join();
  EXPECT_TRUE(done.load());
  EXPECT_TRUE(w->ctrl_state.load() & detail::kEntryOut);
  x.reset();
  EXPECT_EQ(detail::control_queued(ctrl_), 0);
  detail::weak_release(w);
}

// The owner's usual insertion and removal of an entry (the weak
// containers' add and discard) take no lock: an entry weakref linked into
// an empty list, and unlinked when it is alone there, is one
// compare-and-swap of SideTable::head (object.hpp). A head that is neither
// the pinned basic ref nor tagged is bare: alone, not lent, lock free.
TEST_F(EntryWeakTest, ALoneEntryIsLinkedAndUnlinkedWithOneSwapOfTheHead) {
  Strong<Node> x = make<Node>("x");
  detail::EntryWeak* w = attach(x);
  detail::SideTable* s = w->side_table();
  const auto bare = reinterpret_cast<std::uintptr_t>(w);
  EXPECT_EQ(s->head.load(), bare);
  EXPECT_TRUE(w->linked);
  EXPECT_EQ(getweakrefcount(x), 1U);
  ASSERT_TRUE(detail::weak_detach_sole(w));
  EXPECT_FALSE(w->linked);
  EXPECT_EQ(s->head.load(), 0U);  // empty, the lock free: the quiet death may follow
  EXPECT_EQ(getweakrefcount(x), 0U);
  // Linked again (a table's spare), then behind a second weakref: no longer
  // alone, so its removal takes the lock and leaves the other in place.
  detail::entry_reset(w);
  EXPECT_EQ(detail::entry_attach(detail::StrongAccess::header(x), ctrl_, 0, w), w);
  EXPECT_EQ(s->head.load(), bare);
  ref<Node> other(x, [](const ref<Node>&) {});
  detail::EntryWeak* newer = attach(x);
  EXPECT_EQ(s->head.load(), reinterpret_cast<std::uintptr_t>(newer) | detail::kHeadOthers);
  EXPECT_TRUE(detail::weak_detach_sole(w));
  EXPECT_TRUE(detail::weak_detach_sole(newer));
  EXPECT_EQ(getweakrefcount(x), 1U);
  delete w;
  delete newer;
}

// getweakrefs takes references under the side lock; an entry it took one
// on is marked lent, and its head tagged, for as long as it stays linked:
// the owner's one-swap removal, which reads the count and then `head`,
// could otherwise miss a reference taken between the two and recycle a
// weakref that somebody else holds.
TEST_F(EntryWeakTest, AnEntryLentByGetweakrefsIsNotSwappedOutOfItsList) {
  Strong<Node> x = make<Node>("x");
  detail::EntryWeak* w = attach(x);
  detail::SideTable* s = w->side_table();
  const auto bare = reinterpret_cast<std::uintptr_t>(w);
  {
    std::vector<ref<>> held = getweakrefs(x);
    ASSERT_EQ(held.size(), 1U);
    EXPECT_TRUE(w->lent);
    EXPECT_EQ(s->head.load(), bare | detail::kHeadOthers);
    EXPECT_FALSE(detail::weak_detach_sole(w));  // held elsewhere
    EXPECT_TRUE(w->linked);
  }
  // Released, but still lent while linked: the removal takes the lock,
  // which clears the mark.
  EXPECT_EQ(s->head.load(), bare | detail::kHeadOthers);
  ASSERT_TRUE(detail::weak_detach_sole(w));
  EXPECT_FALSE(w->linked);
  EXPECT_FALSE(w->lent);
  EXPECT_EQ(getweakrefcount(x), 0U);
  delete w;
}

// The side lock is bit 2 of `head`: while another thread holds it, the
// one-swap paths fail and wait for it like any locker.
TEST_F(EntryWeakTest, TheSwapPathsWaitForTheSideLock) {
  Strong<Node> x = make<Node>("x");
  detail::EntryWeak* w = attach(x);
  detail::SideTable* s = w->side_table();
  std::thread([] {}).join();  // a multi-threaded process: the lock's CAS path
  std::atomic<bool> started{false};
  std::atomic<bool> done{false};
  s->lock();
  EXPECT_TRUE(s->head.load() & detail::kHeadLocked);
  std::thread owner([&] {
    started.store(true);
    EXPECT_TRUE(detail::weak_detach_sole(w));
    done.store(true);
  });
  while (!started.load()) std::this_thread::yield();
  for (int i = 0; i < 2000; ++i) std::this_thread::yield();
  EXPECT_FALSE(done.load());
  EXPECT_TRUE(w->linked);
  s->unlock();
  owner.join();
  EXPECT_TRUE(done.load());
  EXPECT_FALSE(w->linked);
  EXPECT_EQ(s->head.load() & ~detail::kHeadOthers, 0U);
  delete w;
}

}  // namespace
}  // namespace weakref::testing
