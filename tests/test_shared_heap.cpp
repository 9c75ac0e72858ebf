// weakref::SharedHeap on one thread (mostly): its lock, where objects are
// made, its collections (explicit, with gc::collect, automatic), its
// destruction, and adoption (gc::adopt, SharedHeap::adopt, gc::disown).
// The concurrent cases are in test_threads_shared_heap.cpp.
#include <weakref/shared_heap.hpp>

#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

class SharedHeapTest : public ManualCollectionTest {};

// Cycles a <-> b, each watched by a weakref whose callback counts deaths.
struct Watch {
  int dead = 0;
  std::vector<ref<Node>> refs;
};
// Returns a (which holds b, which holds a).
Strong<Node> make_cycle(Watch& w) {
  Strong<Node> a = make<Node>("a"), b = make<Node>("b");
  a->a = b;
  b->a = a;
  w.refs.emplace_back(a, [&w](const ref<Node>&) { ++w.dead; });
  return a;
}

TEST_F(SharedHeapTest, LockIsRecursiveAndHeldSaysByWhom) {
  SharedHeap heap;
  EXPECT_FALSE(heap.held());
  heap.lock();
  EXPECT_TRUE(heap.held());
  EXPECT_TRUE(heap.try_lock());
  heap.lock();
  heap.unlock();
  heap.unlock();
  EXPECT_TRUE(heap.held());
  bool other_held = true, other_took = true;
  std::thread([&] {
    other_held = heap.held();
    other_took = heap.try_lock();
  }).join();
  EXPECT_FALSE(other_held);
  EXPECT_FALSE(other_took);
  heap.unlock();
  EXPECT_FALSE(heap.held());
  std::thread([&] {
    other_took = heap.try_lock();
    other_held = heap.held();
    if (other_took) heap.unlock();
  }).join();
  EXPECT_TRUE(other_took);
  EXPECT_TRUE(other_held);
}

// While held, traced objects go into the heap: the thread's own collection
// does not see them, the heap's does.
TEST_F(SharedHeapTest, ObjectsMadeWhileHeldGoIntoTheHeap) {
  SharedHeap heap;
  Watch w;
  {
    std::lock_guard<SharedHeap> lock(heap);
    make_cycle(w);
    make_cycle(w);
  }
  EXPECT_EQ(gc::collect(), 0U);
  EXPECT_EQ(w.dead, 0);
  EXPECT_EQ(heap.collect(), 4U);
  EXPECT_EQ(w.dead, 2);
  EXPECT_TRUE(gc::garbage().empty());
}

TEST_F(SharedHeapTest, TheInnermostHeldHeapReceives) {
  SharedHeap outer, inner;
  Watch in_outer, in_inner, in_outer_again;
  {
    std::lock_guard<SharedHeap> a(outer);
    make_cycle(in_outer);
    {
      std::lock_guard<SharedHeap> b(inner);
      make_cycle(in_inner);
      {
        std::lock_guard<SharedHeap> again(outer);  // recursive: innermost again
        make_cycle(in_outer_again);
      }
      make_cycle(in_inner);  // back to `inner`
    }
  }
  EXPECT_EQ(inner.collect(), 4U);
  EXPECT_EQ(in_inner.dead, 2);
  EXPECT_EQ(in_outer.dead + in_outer_again.dead, 0);
  EXPECT_EQ(outer.collect(), 4U);
  EXPECT_EQ(in_outer.dead, 1);
  EXPECT_EQ(in_outer_again.dead, 1);
}

// gc::collect() on a thread that holds shared heaps collects them too.
TEST_F(SharedHeapTest, GcCollectAlsoCollectsTheHeapsHeld) {
  SharedHeap heap;
  Watch w;
  std::lock_guard<SharedHeap> lock(heap);
  make_cycle(w);
  EXPECT_EQ(gc::collect(0), 2U);
  EXPECT_EQ(w.dead, 1);
}

// A collection's callbacks run with the lock held, and may take it again.
// gc::get_referrers reads the heaps whose members nobody else writes
// meanwhile: the calling thread's own, the orphan heap, and the SharedHeaps
// it holds.
TEST_F(SharedHeapTest, GetReferrersLooksAtTheHeapsHeld) {
  SharedHeap scene;
  std::lock_guard<SharedHeap> hold(scene);
  Strong<Node> target = make<Node>("target");
  Strong<Node> parent = make<Node>("parent");
  parent->a = target;
  auto found = gc::get_referrers(target);
  ASSERT_EQ(found.size(), 1U);
  EXPECT_EQ(found[0].get(), static_cast<void*>(parent.get()));
  {
    // Held under nine more: every held heap is read, however many.
    std::vector<std::unique_ptr<SharedHeap>> more;
    for (int i = 0; i < 9; ++i) {
      more.push_back(std::make_unique<SharedHeap>());
      more.back()->lock();
    }
    EXPECT_EQ(gc::get_referrers(target).size(), 1U);
    for (auto it = more.rbegin(); it != more.rend(); ++it) (*it)->unlock();
  }
  parent->a = nullptr;
  EXPECT_TRUE(gc::get_referrers(target).empty());
}

TEST_F(SharedHeapTest, CallbacksRunWithTheLockHeld) {
  SharedHeap heap;
  bool held_in_callback = false, relocked = false;
  ref<Node> r;
  {
    std::lock_guard<SharedHeap> lock(heap);
    Strong<Node> a = make<Node>("a");
    a->a = make<Node>("b");
    a->a->a = a;
    r = ref<Node>(a, [&](const ref<Node>&) {
      held_in_callback = heap.held();
      std::lock_guard<SharedHeap> again(heap);
      relocked = true;
    });
  }
  EXPECT_EQ(heap.collect(), 2U);
  EXPECT_TRUE(held_in_callback);
  EXPECT_TRUE(relocked);
  EXPECT_FALSE(heap.held());
}

// Allocations into a shared heap count towards its own thresholds: the
// thread making them collects it.
TEST_F(SharedHeapTest, AutomaticCollectionOfASharedHeap) {
  SharedHeap heap;
  const auto saved = gc::get_threshold();
  gc::set_threshold(50, 10, 10);
  gc::enable();
  Watch w;
  {
    std::lock_guard<SharedHeap> lock(heap);
    for (int i = 0; i < 200; ++i) make_cycle(w);
  }
  gc::disable();
  gc::set_threshold(saved[0], saved[1], saved[2]);
  EXPECT_GT(w.dead, 100);  // collected while the loop ran
  heap.collect();
  EXPECT_EQ(w.dead, 200);
}

// Its objects outlive it, in the heap of no thread: a full collection on any
// thread collects their cycles.
TEST_F(SharedHeapTest, DestroyedHeapsObjectsGoToTheOrphanHeap) {
  Watch w;
  Strong<Node> kept;
  ref<Node> r_kept;
  {
    SharedHeap heap;
    std::lock_guard<SharedHeap> lock(heap);
    make_cycle(w);
    kept = make<Node>("kept");
    kept->a = make<Node>("child");
    kept->a->a = kept;
    r_kept = ref<Node>(kept);
  }
  EXPECT_EQ(gc::collect(0), 0U);  // not this thread's heap
  EXPECT_EQ(w.dead, 0);
  EXPECT_EQ(gc::collect(2), 2U);  // the orphan heap's
  EXPECT_EQ(w.dead, 1);
  EXPECT_EQ(kept->a->a, kept);  // alive and whole
  EXPECT_TRUE(gc::is_tracked(kept));
  kept.reset();
  EXPECT_TRUE(r_kept());
  EXPECT_EQ(gc::collect(2), 2U);
  EXPECT_FALSE(r_kept());
}

// A chain of n nodes whose last refers to the first.
Strong<Node> make_ring(int n) {
  Strong<Node> first = make<Node>("0"), last = first;
  for (int i = 1; i < n; ++i) {
    last->a = make<Node>(std::to_string(i));
    last = last->a;
  }
  last->a = first;
  return first;
}

TEST_F(SharedHeapTest, AdoptCountsWhatMoves) {
  SharedHeap heap;
  Strong<Node> ring = make_ring(10);
  ring->b = make<Node>("side");  // an eleventh, off the ring
  std::lock_guard<SharedHeap> lock(heap);
  EXPECT_EQ(heap.adopt(ring), 11U);
  EXPECT_EQ(heap.adopt(ring), 0U);  // in the heap already
  EXPECT_EQ(heap.adopt(Strong<Node>()), 0U);
  EXPECT_EQ(heap.adopt(make<Plain>()), 0U);  // untraced: in no heap
  EXPECT_EQ(gc::adopt(ring), 0U);            // a shared heap's: not the caller's to hand over
  EXPECT_EQ(gc::disown(ring), 0U);
}

// The objects adopted are the heap's: its collection collects them, the
// thread's own does not any more.
TEST_F(SharedHeapTest, AdoptedCyclesAreTheHeaps) {
  SharedHeap heap;
  Watch w;
  {
    Strong<Node> a = make_cycle(w);
    std::lock_guard<SharedHeap> lock(heap);
    EXPECT_EQ(heap.adopt(a), 2U);
  }
  EXPECT_EQ(gc::collect(), 0U);
  EXPECT_EQ(w.dead, 0);
  EXPECT_EQ(heap.collect(), 2U);
  EXPECT_EQ(w.dead, 1);
}

TEST_F(SharedHeapTest, AdoptRequiresTheLock) {
  SharedHeap heap;
  Strong<Node> n = make<Node>();
  EXPECT_THROW(heap.adopt(n), std::logic_error);
}

// The walk goes through the caller's objects and objects of no thread, and
// stops at anything else: an object of a shared heap here (and what it
// refers to, even the caller's own objects, stays where it is).
TEST_F(SharedHeapTest, AdoptStopsAtOtherHeaps) {
  SharedHeap other, target;
  Strong<Node> root = make<Node>("root");
  root->a = make<Node>("mine");
  Strong<Node> beyond = make<Node>("mine, beyond");
  {
    std::lock_guard<SharedHeap> lock(other);
    root->a->a = make<Node>("other's");
    root->a->a->a = beyond;
  }
  std::lock_guard<SharedHeap> lock(target);
  EXPECT_EQ(target.adopt(root), 2U);
  EXPECT_EQ(gc::adopt(beyond), 0U);  // already the caller's
  EXPECT_EQ(target.adopt(beyond), 1U);
}

// disown: to the heap of no thread (collected by full collections only);
// gc::adopt: back into the caller's own heap, walking through its own
// objects to reach those of no thread.
TEST_F(SharedHeapTest, DisownThenAdoptIntoTheOwnHeap) {
  Watch w;
  Strong<Node> a = make_cycle(w);
  Strong<Node> holder = make<Node>("holder");  // stays the caller's
  holder->a = a;
  EXPECT_EQ(gc::disown(a), 2U);
  EXPECT_EQ(gc::disown(a), 0U);
  EXPECT_EQ(gc::collect(0), 0U);
  EXPECT_EQ(gc::adopt(holder), 2U);  // through holder, to the disowned cycle
  EXPECT_EQ(gc::adopt(holder), 0U);
  holder.reset();
  a.reset();
  EXPECT_EQ(gc::collect(0), 2U);  // in the own heap's youngest generation
  EXPECT_EQ(w.dead, 1);
}

TEST_F(SharedHeapTest, DisownedObjectsAreCollectedByFullCollections) {
  Watch w;
  EXPECT_EQ(gc::disown(make_cycle(w)), 2U);
  EXPECT_EQ(gc::collect(1), 0U);
  EXPECT_EQ(w.dead, 0);
  EXPECT_EQ(gc::collect(2), 2U);
  EXPECT_EQ(w.dead, 1);
}

// An adoption from inside a collection (a finalizer, step 8) whose walk
// meets that collection's garbage: the garbage is left in the collection's
// private list (kInCollection), the rest moves.
struct Resurrector;
struct Holder {
  Strong<Resurrector> r;
  void trace(gc::Visitor& v) { v(r); }
};
struct Resurrector {
  Strong<Resurrector> partner;
  Strong<Holder> holder;  // where the finalizer puts this object
  SharedHeap* heap = nullptr;
  std::size_t adopted = 99;
  void trace(gc::Visitor& v) { v(partner); }  // (holder: not traced, on purpose)
  void tp_finalize() {
    if (!holder) return;
    holder->r = self(this);  // resurrected: reachable from holder
    std::lock_guard<SharedHeap> lock(*heap);
    adopted = heap->adopt(holder);
    holder.reset();
  }
};

TEST_F(SharedHeapTest, AdoptionInsideACollectionLeavesItsGarbage) {
  SharedHeap heap;
  Strong<Holder> holder = make<Holder>();
  std::size_t adopted = 0;
  {
    Strong<Resurrector> x = make<Resurrector>(), y = make<Resurrector>();
    x->partner = y;
    y->partner = x;
    x->holder = holder;
    x->heap = &heap;
  }
  EXPECT_EQ(gc::collect(), 0U);  // resurrected
  ASSERT_TRUE(holder->r);
  adopted = holder->r->adopted;
  EXPECT_EQ(adopted, 1U);  // the holder alone
  holder.reset();          // (the heap's now; dies: no cycle)
  EXPECT_EQ(gc::collect(), 2U);
}

// Adopting from a root of another live thread's heap moves nothing (that
// thread may be writing it; a check build stops the program instead).
TEST_F(SharedHeapTest, AdoptFromAnotherLiveThreadMovesNothing) {
#if defined(WEAKREF_CHECK_THREADS) && WEAKREF_CHECK_THREADS
  GTEST_SKIP() << "a check build stops the program (the rule check's own tests)";
#endif
  std::promise<Strong<Node>> made;
  std::promise<void> checked;
  std::thread t([&] {
    Strong<Node> n = make<Node>("theirs");
    n->a = make<Node>("theirs too");
    made.set_value(n);
    checked.get_future().wait();  // lives until the checks are done
  });
  Strong<Node> theirs = made.get_future().get();
  EXPECT_EQ(gc::adopt(theirs), 0U);
  SharedHeap heap;
  {
    std::lock_guard<SharedHeap> lock(heap);
    EXPECT_EQ(heap.adopt(theirs), 0U);
  }
  checked.set_value();
  t.join();
  theirs.reset();
}

}  // namespace
}  // namespace weakref::testing
