// weakref::SharedHeap (its user lock, its collection) and the moves of
// objects between heaps: gc::adopt, SharedHeap::adopt, gc::disown. The
// model is at the top of heap.hpp; the rules for users in
// weakref/shared_heap.hpp.
//
// The user lock: a std::mutex, with the holding thread (owner_) and its
// depth for recursion. Every lock() call of the holder is one entry of the
// thread's held list (heap.cpp: push_held_shared), so that the innermost
// heap is the one whose lock() ran last and is still in effect.
//
// An adoption (move_reachable)
//  * Which objects: from the root, through the strong references that
//    trace() visits, through objects the caller may hand over: those of its
//    own thread's heap and of the orphan heap. Every one of them not
//    already in the target moves. The walk stops at anything else (another
//    thread's heap, a shared heap, the target when it is a shared heap,
//    untraced objects), at objects in a collection's private garbage list
//    (kInCollection) and at dying ones (count 0).
//  * Under which locks: the heap locks of the orphan heap, the caller's own
//    heap and the target, taken in index order, held for the whole walk and
//    move (as a collection holds its heap's lock while it scans: only trace
//    functions run under them). So a collection of any of those heaps is
//    not in its steps 1-6 meanwhile; the objects' GcHeads are read only
//    after their count word says they belong to one of the locked heaps; a
//    concurrent adopter of the same orphan objects either finished before
//    (they carry its heap's index: the walk stops there, and never reads
//    members another thread may write by now) or waits for us.
//  * Why the members read are stable: the caller's own objects are written
//    only by the caller; objects of no thread are written by nobody (the
//    rule: a disowned object is not written, an exited thread writes
//    nothing) until adopted, which needs the orphan heap's lock we hold.
//  * A collection running concurrently on the orphan heap (any thread's full
//    collection), past its step 6: its private garbage list holds objects
//    marked kInCollection, which the walk never enters. A live root cannot
//    reach them anyway: step 5 found no reference to them from outside the
//    garbage, held or touched by any thread, after every count read; the
//    only way to one since is a finalizer of that collection storing a
//    reference to it (resurrection, judged again by the collection at step
//    8, under the heap lock). The kInCollection test covers that window.
//    The same holds for the caller's own heap when adopt runs from a
//    callback of its own collection.
//  * Untrack racing a death: an object whose death began (count 0) on
//    another thread is waiting for its heap's lock to unlist itself; it is
//    not moved, and lock_heap_of re-reads its index after locking anyway.
//  * The visited mark: kPrevCollecting in the GcHead, which is clear on
//    every object of a public list while its heap's lock is held (it is
//    set only within a collection's steps 1-6, and on its private garbage).
//    Set on each object the walk enters, cleared on all before the locks
//    are released.
//  * Counts: each moved object counts towards the target's generation-0
//    count (it is appended to generation 0) and leaves the source's, as an
//    untrack does; objects disowned join the orphan heap's oldest
//    generation and its full-collection heuristic (orphans_pending), as a
//    thread's at exit. Objects in the permanent generation (gc::freeze)
//    that move join the generations of the target.
//  * Memory: the walk's stack and list are allocated (under the heap
//    locks); without memory nothing has moved and std::bad_alloc is thrown
//    after the locks are released.
#include <algorithm>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include "gc/collector.hpp"
#include "heap.hpp"
#include "weakref/detail/dcheck.hpp"
#include "weakref/shared_heap.hpp"

#if defined(WEAKREF_CHECK_THREADS) && WEAKREF_CHECK_THREADS
#include "weakref/detail/thread_check.hpp"
#endif

namespace weakref {

namespace wd = weakref::detail;
using wd::ActiveWord;
using wd::GcHead;
using wd::GcList;
using wd::Heap;
using wd::ObjectHeader;

// ---------------------------------------------------------------------------
// SharedHeap

SharedHeap::SharedHeap() : heap_(wd::make_shared_heap()) {}

SharedHeap::~SharedHeap() {
  WEAKREF_DCHECK(!held(), "a SharedHeap destroyed by a thread that holds it");
  {
    // After the last holder's unlock (its writes are seen by the merge).
    std::lock_guard<std::mutex> g(mu_);
  }
  wd::destroy_shared_heap(heap_);
}

void SharedHeap::lock() {
  if (held()) {
    wd::push_held_shared(heap_);
    ++depth_;
    return;
  }
  mu_.lock();
  enter_locked();
}

bool SharedHeap::try_lock() {
  if (held()) {
    lock();
    return true;
  }
  if (!mu_.try_lock()) return false;
  enter_locked();
  return true;
}

void SharedHeap::enter_locked() {
  try {
    wd::push_held_shared(heap_);
  } catch (...) {
    mu_.unlock();
    throw;
  }
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  depth_ = 1;
}

void SharedHeap::unlock() noexcept {
  WEAKREF_DCHECK(held() && depth_ > 0, "SharedHeap::unlock by a thread that does not hold it");
  wd::pop_held_shared(heap_);
  if (--depth_ > 0) return;
  owner_.store(std::thread::id{}, std::memory_order_relaxed);
  mu_.unlock();
}

std::size_t SharedHeap::collect(int generation) {
  if (generation < 0 || generation > 2) throw std::invalid_argument("invalid generation");
  std::lock_guard<SharedHeap> g(*this);
  return gc::collector::collect_shared(heap_, generation);
}

// ---------------------------------------------------------------------------
// Adoption

namespace detail {

namespace {

// Collects the strong references an object's trace() visits.
struct EdgeVisitor : gc::Visitor {
  std::vector<ObjectHeader*>* out;
  bool failed = false;  // out of memory
  EdgeVisitor(const Ops* ops, std::vector<ObjectHeader*>* o) noexcept : Visitor(ops), out(o) {}
};
void edge_strong(gc::Visitor& v, ObjectHeader* h, void*, ObjectHeader* (*)(void*)) {
  auto& e = static_cast<EdgeVisitor&>(v);
  if (e.failed) return;
  try {
    e.out->push_back(h);
  } catch (...) {
    e.failed = true;
  }
}
const gc::Visitor::Ops kEdgeOps{&edge_strong, &gc::collector::no_weak, &gc::collector::no_keep,
                                false, nullptr};

// The heap locks an adoption holds: up to three heaps, taken in index order.
class HeapLocks {
 public:
  HeapLocks(Heap* a, Heap* b, Heap* c) noexcept {
    for (Heap* h : {a, b, c})
      if (std::find(heaps_, heaps_ + n_, h) == heaps_ + n_) heaps_[n_++] = h;
    // (Insertion by hand: g++ 12 -O2 warns -Warray-bounds in std::sort's
    // unrolled insertion over three elements.)
    for (int i = 1; i < n_; ++i)
      for (int j = i; j > 0 && heaps_[j]->index < heaps_[j - 1]->index; --j)
        std::swap(heaps_[j], heaps_[j - 1]);
    for (int i = 0; i < n_; ++i) heaps_[i]->lock.lock();
  }
  ~HeapLocks() {
    for (int i = n_; i-- > 0;) heaps_[i]->lock.unlock();
  }
  HeapLocks(const HeapLocks&) = delete;
  HeapLocks& operator=(const HeapLocks&) = delete;

 private:
  Heap* heaps_[3] = {};
  int n_ = 0;
};

}  // namespace

std::size_t move_reachable(ObjectHeader* root, SharedHeap* into, bool disown) {
  if (into && !into->held())
    throw std::logic_error("weakref::SharedHeap::adopt: the calling thread does not hold the heap");
  if (!root->traced()) return 0;
  Heap* own = current_heap();
  Heap* orphans = orphan_heap();
  Heap* target = disown ? orphans : into ? into->heap_ : own;
  const bool to_shared = target->shared;
  // Objects the walk may enter: those of these heaps (their locks held).
  auto source_of = [&](ObjectHeader* h) -> Heap* {
    if (!h->traced()) return nullptr;
    const ActiveWord w = h->count_word();
    if (w.in_collection() || w.count() == 0) return nullptr;
    Heap* heap = w.heap() == own->index ? own : w.heap() == orphans->index ? orphans : nullptr;
    if (!heap || !h->gc()->next) return nullptr;  // untracked: dying
    return heap;
  };

#if defined(WEAKREF_CHECK_THREADS) && WEAKREF_CHECK_THREADS
  if (!disown) {
    const std::uint32_t i = heap_index_of(root);
    if (i != kNoHeap && i != own->index && i != kOrphanHeap && i != target->index &&
        !thread_holds_shared_heap(i))
      thread_rule_violation("adopting an object another thread still writes", root);
  }
#endif

  std::vector<ObjectHeader*> visited;  // entered, marked kPrevCollecting
  std::vector<ObjectHeader*> stack;
  std::size_t moved = 0;
  bool failed = false;
  {
    GateHold hold;
    HeapLocks locks(orphans, own, target);
    auto enter = [&](ObjectHeader* h) -> bool {
      if (!source_of(h)) return true;
      GcHead* g = h->gc();
      if (g->prev & kPrevCollecting) return true;  // entered already
      try {
        visited.push_back(h);
      } catch (...) {
        return false;
      }
      g->prev |= kPrevCollecting;
      try {
        stack.push_back(h);
      } catch (...) {
        return false;
      }
      return true;
    };
    failed = !enter(root);
    // Depth first: the stack holds the objects entered and not yet traced;
    // each trace lists the object's edges, which are entered in turn.
    std::vector<ObjectHeader*> edges;
    EdgeVisitor v(&kEdgeOps, &edges);
    while (!failed && !stack.empty()) {
      ObjectHeader* h = stack.back();
      stack.pop_back();
      edges.clear();
      gc::collector::trace(h, v);
      if (v.failed) {
        failed = true;
        break;
      }
      for (ObjectHeader* e : edges)
        if (!enter(e)) {
          failed = true;
          break;
        }
    }
    long from_own = 0, from_orphans = 0;
    for (ObjectHeader* h : visited) {
      GcHead* g = h->gc();
      g->prev &= ~kPrevCollecting;
      if (failed) continue;
      Heap* source = source_of(h);
      WEAKREF_DCHECK(source, "an object entered by the walk left its heap under its lock");
      if (source == target) continue;
      GcList::move(g, target == orphans ? target->gen[kGenerations - 1] : target->gen[0]);
      set_heap_index(h, target->index, to_shared);
      ++(source == own ? from_own : from_orphans);
      ++moved;
    }
    if (!failed && moved) {
      const long n = static_cast<long>(moved);
      if (from_own) {
        const long c = own->count[0].load(std::memory_order_relaxed);
        own->count[0].store(c > from_own ? c - from_own : 0, std::memory_order_relaxed);
      }
      if (from_orphans) {
        orphans->long_lived_pending = std::max(0L, orphans->long_lived_pending - from_orphans);
        orphans_pending.store(orphans->long_lived_pending - orphans->long_lived_total / 4,
                              std::memory_order_relaxed);
      }
      if (target == orphans) {
        orphans->long_lived_pending += n;
        orphans_pending.store(orphans->long_lived_pending - orphans->long_lived_total / 4,
                              std::memory_order_relaxed);
      } else {
        target->count[0].fetch_add(n, std::memory_order_relaxed);
      }
    }
  }
  if (failed) throw std::bad_alloc();
  return moved;
}

}  // namespace detail
}  // namespace weakref
