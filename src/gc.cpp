// The cycle collector: CPython's Modules/gcmodule.c (3.11), for the heaps of
// heap.hpp, made safe against other threads.
//
// The algorithm (collect_heap), for generations 0..g of one heap:
//
//  1. Merge the younger generations into generation g: the "young" list.
//  2. update_refs: gc_refs := strong count, for every young object. A count
//     of 0 (a death begun on another thread, parked on the heap lock before
//     it touches anything) counts as 1: a dying object is never garbage, and
//     what it still refers to counts as referenced from outside.
//  3. subtract_refs: for every young object, gc_refs of each young object it
//     refers to -= 1. Now gc_refs counts the references from outside young.
//  4. move_unreachable: everything with gc_refs > 0, and everything reachable
//     from it, stays in young; the rest is moved to "unreachable".
//     (Steps 2-4 are deduce_unreachable; the same tricks as CPython: gc_refs
//     live in GcHead::prev, shifted, with the kPrevCollecting flag, while the
//     young list is singly linked; kNextUnreachable marks the unreachable
//     list until the pass ends.)
//  5. Verify against other threads (this is where we differ from CPython,
//     which has a GIL), when a candidate has weakrefs or was ever copied by
//     a thread other than the heap's owner (see needs_verification): every
//     unreachable object is frozen (kFrozen in its
//     count word: weak lockers now wait; strong increments also set
//     kTouched) and its count read in the same atomic step, then steps 3-4
//     run again on the unreachable set, touched objects counting as
//     referenced from outside; then every object is checked for a touch,
//     and if one was touched all of it is done again. Whatever turned out
//     reachable is unfrozen and survives.
//     Why it is enough: after its freeze nobody can reach an object through
//     a weakref, and a thread inside the set must copy a Strong out of a set
//     object to move, which touches the target. A reference held across an
//     object's freeze shows in the count read with it; one taken after it
//     shows as a touch, and the touch scan follows every count read.
//  6. Survivors move to generation g+1 (or stay in 2). The heap lock, held
//     since step 1, is released: from here on the unreachable list is private
//     to this thread (nobody else can reach its objects).
//  7. clear_weakrefs_and_unfreeze: every weakref to an unreachable object is
//     cleared, the callbacks of those still held are gathered across all the
//     garbage, and the objects are unfrozen (epoch bumped); steps 1 to this
//     one run inside the fork gate (src/fork.cpp). Then
//     handle_garbage_weakrefs_and_callbacks: weakrefs that are themselves
//     garbage (every handle to them sits in a traced member of an
//     unreachable object) are cleared too and their callbacks dropped
//     (bpo-38006: they could see torn-down objects), and the callbacks run.
//  8. finalize_garbage: tp_finalize of each unreachable object, once (PEP
//     442). If any ran, objects may have been resurrected: step 5 runs again
//     on the unreachable set, and the resurrected move to the old
//     generation; new weakrefs made to the rest are cleared (with callbacks).
//  9. delete_garbage: each remaining object is broken up by visiting its
//     members in clearing mode (CPython's tp_clear): the visited Strong<> and
//     weak members are emptied, and released after trace() returns (or at
//     once, with the object held alive until its trace returns, for
//     container members and when memory is short), so the cycles fall
//     apart by reference counting. With DEBUG_SAVEALL the objects
//     go to gc.garbage instead. While it runs, deaths nest at most
//     kCollectorNesting deep on this thread (the rest go through the death
//     queue): a million-long garbage chain otherwise recurses 50 deaths deep
//     again and again, and every return past the CPU's return-address stack
//     is mispredicted (a third of the time of such a collection). The order
//     of the C++ destructors within collected garbage is the only thing this
//     changes (docs/python-mapping.md, difference 34).
//
// Ephemerons (issue 15). A WeakKeyDictionary's live entry visits its value
// through Visitor::ephemeron(key's side table, value): the value's references
// keep what they refer to only while the key is alive on other grounds
// (JavaScript's WeakMap, cppgc's EphemeronPair). What changes, and only in
// the reachable pass and in verification:
//  * Steps 2-3 are unchanged: a value's references are internal references
//    of its table, subtracted like any other.
//  * Step 4: when a reachable table is traced, an entry whose key is a young
//    object of this heap not yet scanned as reachable (young_key: decided
//    from the key's side table, whose word says alive, not finalized and in
//    this heap before the key's header is read) defers its value's
//    references to young objects: each becomes an edge (key, target, slot)
//    in Ephemerons, chained per key behind an open-addressing index. When
//    the scan reaches a key as reachable (every reachable object is scanned
//    once), its chain is resolved: the targets are made reachable as
//    reachable_strong does (moved back from the unreachable list if need
//    be). Each edge is recorded once and resolved at most once, each key
//    looked up once per scan: chains of any length, across any number of
//    tables, cost linear time. References from a key that is not young (an
//    older generation, another heap, untraced, dying) are ordinary ones.
//  * Step 5: the edges whose key is still a candidate are subtracted from
//    their targets' counts (they are internal, waiting for the key), and the
//    re-run of step 4 resolves keys found held or touched. A thread reaches
//    a value only through its key (every access to an entry locks the key),
//    which shows in the key's count or touches it: the soundness argument of
//    step 5 holds for the keys, and the values follow them.
//  * Step 6: every edge still waiting (its key is garbage) whose target is
//    garbage has its slot emptied (the table lives: its death waits for the
//    heap lock, and only this thread writes its members); the collection
//    holds those references until step 9. The entry itself goes as for any
//    death of a key: its weakref's callback (step 7) queues it, and the
//    table's owner drops it at its next non-const call.
//  * Step 8's resurrection check discounts the references held (they are
//    the collection's); they are released just before step 9 breaks the
//    garbage up (after it, with DEBUG_SAVEALL, so that gc.garbage keeps the
//    garbage alive), and what only they held dies then.
//  Without memory for an edge, the reference is kept as an ordinary one
//  (less garbage found, never wrong garbage). Invariant: between step 4 and
//  step 6 an edge's key and target are objects of this heap (the heap lock
//  is held); after step 6 only the targets of taken references are read
//  (they are held).
//
// Invariants
//  * Only one collection per heap runs at a time (Heap::collecting, held
//    from before the "start" gc.callbacks until after the "stop" ones); a
//    collect() from inside one (any callback) returns 0 at once.
//  * A collection never fails for lack of memory, and never throws: the
//    collector allocates nothing it cannot do without. Its lists are
//    intrusive (GcHead links, the callback batch, the death queue); the
//    gc.callbacks list is read an entry at a time; counting the weak
//    handles held by garbage (step 7) falls back to a fixed buffer; clearing
//    (step 9) releases at once what its lists cannot hold; DEBUG_SAVEALL
//    leaves alive what gc.garbage cannot take. Only user code (callbacks,
//    finalizers, destructors) may meet an allocation failure, which goes
//    where its other exceptions go (the unraisable hook).
//  * The collector reads the GcHead of an object only when the object's heap
//    index is this heap (checked on the atomic count word first): GcHeads of
//    other heaps belong to other locks.
//  * User code runs only at steps 7 (callbacks), 8 (tp_finalize), 9 (deaths)
//    and in trace(); the heap lock is not held at 7-9.
#include <algorithm>
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <memory>
#include <new>
#include <unordered_set>

#include "alloc.hpp"
#include "heap.hpp"
#include "weakref/detail/weak_object.hpp"
#include "weakref/gc.hpp"
#include "weakref/unraisable.hpp"

namespace weakref::gc {

using weakref::detail::CallbackBatch;
using weakref::detail::GcHead;
using weakref::detail::GcList;
using weakref::detail::Heap;
using weakref::detail::ObjectHeader;
using weakref::detail::SpinLock;
using weakref::detail::WeakObject;
namespace bits = weakref::detail::bits;
namespace wd = weakref::detail;

namespace {

// ---------------------------------------------------------------------------
// Process-wide state (the "gc module")

struct Module {
  std::atomic<bool> enabled{true};
  std::atomic<long> threshold[3] = {700, 10, 10};
  std::atomic<int> debug{0};
  std::atomic<std::uint64_t> stats[3][3] = {};  // [gen][collections, collected, uncollectable]
  wd::Mutex mu;                                 // garbage and callbacks
  std::vector<Strong<void>> garbage;
  std::vector<std::pair<CallbackId, std::shared_ptr<const Callback>>> callbacks;
  CallbackId next_callback = 1;
};
Module& module() {
  static auto* m = new Module;  // never destroyed: usable during exit
  return *m;
}

// ---------------------------------------------------------------------------
// GcHead bits (heap.hpp defines the layout)

using wd::kNextUnreachable;
using wd::kPrevCollecting;
using wd::kPrevFlags;
using wd::kRefsShift;

GcHead* next_of(const GcHead* g) noexcept {
  return reinterpret_cast<GcHead*>(reinterpret_cast<std::uintptr_t>(g->next) &
                                   ~kNextUnreachable);
}
std::uintptr_t gc_refs(const GcHead* g) noexcept { return g->prev >> kRefsShift; }
void set_refs(GcHead* g, std::uintptr_t n) noexcept {
  g->prev = (g->prev & kPrevFlags) | (n << kRefsShift);
}
void reset_refs(GcHead* g, std::uintptr_t n) noexcept {
  g->prev = kPrevCollecting | (n << kRefsShift);
}
bool collecting(const GcHead* g) noexcept { return g->prev & kPrevCollecting; }
void clear_collecting(GcHead* g) noexcept { g->prev &= ~kPrevCollecting; }

ObjectHeader* header_of(GcHead* g) noexcept { return ObjectHeader::from_gc(g); }

std::atomic<std::uint64_t>& active_word(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  return (w & bits::kSide) ? wd::side_of(w)->word : h->word;
}
std::uint64_t read_word(ObjectHeader* h) noexcept {
  return active_word(h).load(std::memory_order_acquire);
}

// The GcHead of h if h is listed in `heap` (so its GcHead is ours to read).
GcHead* own_gc(ObjectHeader* h, const Heap* heap) noexcept {
  if (!h->traced()) return nullptr;
  if (bits::heap(read_word(h)) != heap->index) return nullptr;
  GcHead* g = h->gc();
  return g->next ? g : nullptr;
}

// ---------------------------------------------------------------------------
// Visitors

class Ephemerons;

struct HeapVisitor : Visitor {
  Heap* heap;
  GcHead* current = nullptr;  // the object being traced (subtract_refs)
  GcList* list = nullptr;  // young, for the reachable pass
  std::size_t moved_back = 0;  // unreachable -> young, in the reachable pass
  Ephemerons* eph = nullptr;   // the reachable pass's deferred value edges
  GcHead* eph_key = nullptr;   // the key of the ephemeron value being visited
  HeapVisitor(const Ops* ops, Heap* h) noexcept : Visitor(ops), heap(h) {}
};

// ---------------------------------------------------------------------------
// Ephemerons (the WeakKeyDictionary entries; see "Ephemerons" at the top)

// A reference from the value of an ephemeron whose key was not known to be
// reachable when its table was traced, to a young object.
struct EphemeronEdge {
  GcHead* key;    // null once the key was found reachable (resolved)
  GcHead* value;  // the young object the value refers to
  void* slot;     // the value's Strong<>, emptied (step 6) if the key is garbage
  ObjectHeader* (*take)(void*);
  std::uint32_t next;     // the key's next edge
  ObjectHeader* taken = nullptr;  // what step 6 took out of the slot
};

// The deferred edges, chained per key, and an open-addressing index from
// each key to its chain. Allocated without throwing: when memory runs out,
// defer() says so and the caller keeps the reference strong (the collection
// then finds less garbage, never wrong garbage).
class Ephemerons {
 public:
  static constexpr std::uint32_t npos = ~std::uint32_t{0};
  Ephemerons() = default;
  Ephemerons(const Ephemerons&) = delete;
  Ephemerons& operator=(const Ephemerons&) = delete;
  ~Ephemerons() { reset(); }
  void reset() noexcept {
    delete[] edges_;
    delete[] index_;
    edges_ = nullptr;
    index_ = nullptr;
    n_ = cap_ = mask_ = keys_ = waiting_ = 0;
  }

  // Keys whose edges wait for them to be found reachable.
  bool waiting() const noexcept { return waiting_ != 0; }
  std::size_t size() const noexcept { return n_; }

  bool defer(GcHead* key, GcHead* value, void* slot, ObjectHeader* (*take)(void*)) noexcept {
    if (n_ == cap_ && !grow_edges()) return false;
    if ((keys_ + 1) * 2 > (index_ ? mask_ + 1 : 0) && !grow_index()) return false;
    Slot& at = find(key);
    if (!at.key) {
      at = {key, npos};
      ++keys_;
    }
    if (at.head == npos) ++waiting_;
    edges_[n_] = {key, value, slot, take, at.head};
    at.head = static_cast<std::uint32_t>(n_++);
    return true;
  }

  // key was found reachable: f(value) for each of its waiting edges, which
  // are resolved.
  template <class F>
  void resolve(GcHead* key, F&& f) noexcept {
    if (!waiting_) return;
    Slot& at = find(key);
    if (!at.key || at.head == npos) return;
    --waiting_;
    for (std::uint32_t i = std::exchange(at.head, npos); i != npos; i = edges_[i].next) {
      edges_[i].key = nullptr;
      f(edges_[i].value);
    }
  }

  // f(edge) for every edge not resolved.
  template <class F>
  void for_each_waiting(F&& f) noexcept {
    for (std::size_t i = 0; i < n_; ++i)
      if (edges_[i].key) f(edges_[i]);
  }

 private:
  struct Slot {
    GcHead* key;
    std::uint32_t head;
  };
  Slot& find(GcHead* key) noexcept {
    // Fibonacci hashing: the top bits of the product.
    std::size_t i = (reinterpret_cast<std::uintptr_t>(key) * 0x9E3779B97F4A7C15ULL) >> shift_;
    for (;; i = (i + 1) & mask_)
      if (index_[i].key == key || !index_[i].key) return index_[i];
  }
  bool grow_edges() noexcept {
    const std::size_t cap = cap_ ? cap_ * 2 : 256;
    if (cap >= npos) return false;
    auto* e = new (std::nothrow) EphemeronEdge[cap];
    if (!e) return false;
    std::copy(edges_, edges_ + n_, e);
    delete[] edges_;
    edges_ = e;
    cap_ = cap;
    return true;
  }
  bool grow_index() noexcept {
    const std::size_t size = index_ ? (mask_ + 1) * 2 : 256;
    auto* fresh = new (std::nothrow) Slot[size]();
    if (!fresh) return false;
    Slot* old = std::exchange(index_, fresh);
    const std::size_t old_size = old ? mask_ + 1 : 0;
    mask_ = size - 1;
    shift_ = 64 - std::countr_zero(size);
    for (std::size_t i = 0; i < old_size; ++i)
      if (old[i].key) find(old[i].key) = old[i];
    delete[] old;
    return true;
  }

  EphemeronEdge* edges_ = nullptr;
  Slot* index_ = nullptr;
  std::size_t n_ = 0, cap_ = 0, mask_ = 0, keys_ = 0, waiting_ = 0;
  int shift_ = 64;
};

// The key of an ephemeron, when it is a young object of this collection not
// yet known to be reachable (else the value's references are ordinary ones):
// during the reachable pass, neither scanned (kPrevCollecting cleared) nor
// waiting to be scanned with gc_refs > 0 (on the tentatively unreachable
// list, kNextUnreachable, prev is a link and not gc_refs).
// The key is reached through its side table only (the entry's weakref holds
// it, so it stays readable while the key dies on another thread): its
// header is read only when the side word shows it alive, not finalized (a
// death runs tp_finalize with a count of 1, after leaving its heap) and in
// this heap, whose lock the caller holds (a death leaves the heap under that
// lock before its object is freed).
GcHead* young_key(wd::SideTable* s, const Heap* heap) noexcept {
  const std::uint64_t x = s->word.load(std::memory_order_acquire);
  if (bits::count(x) == 0 || (x & bits::kFinalized) || bits::heap(x) != heap->index)
    return nullptr;
  GcHead* g = s->object->gc();
  if (!g->next || !collecting(g)) return nullptr;  // not young, or scanned reachable
  // Not scanned yet, with references from outside (or already reached): the
  // scan will find it reachable, so the value's references are ordinary
  // ones (the common case: a key held elsewhere costs no edge).
  if (!(reinterpret_cast<std::uintptr_t>(g->next) & kNextUnreachable) && gc_refs(g) > 0)
    return nullptr;
  return g;
}

void no_weak(Visitor&, WeakObject*, void*, WeakObject* (*)(void*)) {}
void no_keep(Visitor&, std::unique_ptr<Visitor::Kept>) {}

// subtract_refs' visit_decref.
void decref_strong(Visitor& v, ObjectHeader* h, void*, ObjectHeader* (*)(void*)) {
  GcHead* g = own_gc(h, static_cast<HeapVisitor&>(v).heap);
  if (g && collecting(g) && gc_refs(g) > 0) set_refs(g, gc_refs(g) - 1);
}
// Notes that the object being traced holds weak handles: its garbage
// weakrefs must be cleared before anything is broken up (step 7).
void decref_weak(Visitor& v, WeakObject*, void*, WeakObject* (*)(void*)) {
  static_cast<HeapVisitor&>(v).current->prev |= wd::kPrevHasWeak;
}
const Visitor::Ops kDecrefOps{&decref_strong, &decref_weak, &no_keep, false, nullptr};

// move_unreachable's visit_reachable.
void reachable_strong(Visitor& v, ObjectHeader* h, void*, ObjectHeader* (*)(void*)) {
  auto& hv = static_cast<HeapVisitor&>(v);
  GcHead* g = own_gc(h, hv.heap);
  if (!g || !collecting(g)) return;
  if (reinterpret_cast<std::uintptr_t>(g->next) & kNextUnreachable) {
    // Moved to unreachable earlier, but reachable after all: back to young,
    // where the scan will reach it again.
    GcHead* prev = wd::gc_prev(g);
    GcHead* next = next_of(g);
    prev->next = g->next;  // keeps kNextUnreachable
    wd::gc_set_prev(next, prev);
    hv.list->append(g);
    set_refs(g, 1);
    ++hv.moved_back;
  } else if (gc_refs(g) == 0) {
    set_refs(g, 1);
  }
}
// The value of an ephemeron whose key is not known to be reachable yet: its
// references to young objects wait for the key (Ephemerons); those that
// cannot wait (a const slot, no memory) are ordinary references.
void defer_strong(Visitor& v, ObjectHeader* h, void* slot, ObjectHeader* (*take)(void*)) {
  auto& hv = static_cast<HeapVisitor&>(v);
  GcHead* g = own_gc(h, hv.heap);
  if (!g || !collecting(g)) return;
  if (take && hv.eph->defer(hv.eph_key, g, slot, take)) return;
  reachable_strong(v, h, slot, take);
}
const Visitor::Ops kDeferOps{&defer_strong, &no_weak, &no_keep, false, nullptr};
const Visitor::Ops* reachable_ephemeron(Visitor& v, wd::SideTable* key);
const Visitor::Ops kReachableOps{&reachable_strong, &no_weak, &no_keep, false,
                                 &reachable_ephemeron};
const Visitor::Ops* reachable_ephemeron(Visitor& v, wd::SideTable* key) {
  auto& hv = static_cast<HeapVisitor&>(v);
  if (!hv.eph) return &kReachableOps;
  hv.eph_key = young_key(key, hv.heap);
  return hv.eph_key ? &kDeferOps : &kReachableOps;
}

// Lists the weak handles held by the objects visited (step 7). `out` has
// room for `cap`; `seen` counts every handle visited, the first `skip` of
// them are not listed (the chunked fallback lists a window of them at a
// time), and `full` says that some did not fit.
struct WeakListVisitor : Visitor {
  std::uintptr_t* out = nullptr;
  std::size_t cap = 0, n = 0, seen = 0, skip = 0;
  bool full = false;
  explicit WeakListVisitor(const Ops* ops) noexcept : Visitor(ops) {}
};
void no_strong(Visitor&, ObjectHeader*, void*, ObjectHeader* (*)(void*)) {}
void list_weak(Visitor& v, WeakObject* w, void*, WeakObject* (*)(void*)) {
  auto& l = static_cast<WeakListVisitor&>(v);
  if (l.seen++ < l.skip) return;
  if (l.n == l.cap) {
    l.full = true;
    return;
  }
  l.out[l.n++] = reinterpret_cast<std::uintptr_t>(w);
}
const Visitor::Ops kWeakListOps{&no_strong, &list_weak, &no_keep, false, nullptr};

// tp_clear (step 9): empties the visited members. What they held is released
// after trace() returns, so that the object is intact during its own trace
// even if a release kills it -- or at once, with the object held alive by
// the visitor meanwhile ("held"), when a container member is cleared or the
// lists cannot grow: breaking garbage up never needs memory.
struct ClearVisitor : Visitor {
  ObjectHeader* current = nullptr;  // the object being cleared
  bool held = false;                // current has +1 from this visitor
  std::vector<ObjectHeader*> strongs;
  std::vector<WeakObject*> weaks;
  explicit ClearVisitor(const Ops* ops) noexcept : Visitor(ops) {}
  // From now on until its trace returns, current stays alive and what is
  // visited is released at once.
  void hold() noexcept {
    if (held) return;
    wd::incref(current);
    held = true;
  }
  // Releases what one trace() call emptied, in the order it was visited,
  // then drops the hold. Releasing may run deaths that clear other garbage
  // objects with their own visitor, so the lists are swapped out first
  // (keeping their capacity).
  void release() noexcept {
    if (strongs.size() == 1 && weaks.empty()) {
      // The common case, one strong member and nothing else: no list to swap.
      ObjectHeader* h = strongs.back();
      strongs.clear();
      wd::decref(h);
    } else if (!strongs.empty() || !weaks.empty()) {
      std::vector<ObjectHeader*> ss;
      std::vector<WeakObject*> ws;
      ss.swap(strongs);
      ws.swap(weaks);
      for (ObjectHeader* h : ss) wd::decref(h);
      for (WeakObject* w : ws) wd::weak_release(w);
      ss.clear();
      ws.clear();
      if (strongs.capacity() < ss.capacity()) strongs.swap(ss);
      if (weaks.capacity() < ws.capacity()) weaks.swap(ws);
    }
    if (held) {
      held = false;
      wd::decref(current);
    }
  }
};
void clear_strong(Visitor& v, ObjectHeader*, void* slot, ObjectHeader* (*take)(void*)) {
  if (!take) return;
  auto& c = static_cast<ClearVisitor&>(v);
  ObjectHeader* h = take(slot);
  if (!c.held) {
    try {
      c.strongs.push_back(h);
      return;
    } catch (...) {
      c.hold();
    }
  }
  wd::decref(h);
}
void clear_weak(Visitor& v, WeakObject*, void* slot, WeakObject* (*take)(void*)) {
  if (!take) return;
  auto& c = static_cast<ClearVisitor&>(v);
  WeakObject* w = take(slot);
  if (!c.held) {
    try {
      c.weaks.push_back(w);
      return;
    } catch (...) {
      c.hold();
    }
  }
  wd::weak_release(w);
}
// Visitor::keep_until_done: the object is held, the value (k, or a value
// destroyed by the caller right after this call) dies now.
void clear_keep(Visitor& v, std::unique_ptr<Visitor::Kept> k) {
  static_cast<ClearVisitor&>(v).hold();
  k.reset();
}
const Visitor::Ops kClearOps{&clear_strong, &clear_weak, &clear_keep, true, nullptr};

// get_referents.
struct ListVisitor : Visitor {
  std::vector<ObjectHeader*> found;
  explicit ListVisitor(const Ops* ops) noexcept : Visitor(ops) {}
};
void list_strong(Visitor& v, ObjectHeader* h, void*, ObjectHeader* (*)(void*)) {
  static_cast<ListVisitor&>(v).found.push_back(h);
}
const Visitor::Ops kListOps{&list_strong, &no_weak, &no_keep, false, nullptr};

// get_referrers.
struct FindVisitor : Visitor {
  const std::unordered_set<ObjectHeader*>* targets;
  bool hit = false;
  FindVisitor(const Ops* ops, const std::unordered_set<ObjectHeader*>* t) noexcept
      : Visitor(ops), targets(t) {}
};
void find_strong(Visitor& v, ObjectHeader* h, void*, ObjectHeader* (*)(void*)) {
  auto& f = static_cast<FindVisitor&>(v);
  if (f.targets->count(h)) f.hit = true;
}
const Visitor::Ops kFindOps{&find_strong, &no_weak, &no_keep, false, nullptr};

// trace() must not throw (it only visits); the collector relies on it.
void trace(ObjectHeader* h, Visitor& v) noexcept { h->type->trace(h->object(), v); }

// ---------------------------------------------------------------------------
// deduce_unreachable (steps 2-4)
//
// Every pass walks a list of objects scattered in memory, so passes are few
// and fused: the collector's cost is cache misses, one per object per pass.

// Step 2. A zero count means the object's death began on another thread,
// which now waits for the heap lock to unlist it: it is never garbage, so it
// counts as referenced from outside (and its members stay intact until the
// lock is released). Returns the number of objects.
std::size_t update_refs(GcList& young) noexcept {
  std::size_t n = 0;
  for (GcHead* g = young.head.next; g != &young.head; g = g->next, ++n) {
    std::uintptr_t c = bits::count(read_word(header_of(g)));
    reset_refs(g, c == 0 ? 1 : c);
  }
  return n;
}

void subtract_refs(GcList& young, Heap* heap) {
  HeapVisitor v(&kDecrefOps, heap);
  for (GcHead* g = young.head.next; g != &young.head; g = g->next) {
    v.current = g;
    trace(header_of(g), v);
  }
}

// Step 4. Leaves kNextUnreachable set on the unreachable list's links; the
// caller's next pass over it clears them (clear_mark). Returns the number of
// objects moved to `unreachable`.
std::size_t move_unreachable(GcList& young, GcList& unreachable, Heap* heap, Ephemerons* eph) {
  HeapVisitor v(&kReachableOps, heap);
  v.list = &young;
  v.eph = eph;
  std::size_t moved = 0;
  GcHead* prev = &young.head;
  GcHead* g = young.head.next;
  while (g != &young.head) {
    if (gc_refs(g)) {
      // Reachable from outside: traverse it (may append to young).
      trace(header_of(g), v);
      // A key (it has a side table) found reachable: the values waiting for
      // it are reachable too.
      if (eph && eph->waiting() &&
          (header_of(g)->word.load(std::memory_order_relaxed) & bits::kSide))
        eph->resolve(g, [&](GcHead* value) {
          reachable_strong(v, header_of(value), nullptr, nullptr);
        });
      wd::gc_set_prev(g, prev);
      clear_collecting(g);
      prev = g;
    } else {
      // Tentatively unreachable. young is singly linked here.
      prev->next = g->next;
      GcHead* last = wd::gc_prev(&unreachable.head);
      last->next = reinterpret_cast<GcHead*>(reinterpret_cast<std::uintptr_t>(g) |
                                             kNextUnreachable);
      wd::gc_set_prev(g, last);
      g->next = reinterpret_cast<GcHead*>(reinterpret_cast<std::uintptr_t>(&unreachable.head) |
                                          kNextUnreachable);
      unreachable.head.prev = reinterpret_cast<std::uintptr_t>(g);
      ++moved;
    }
    g = prev->next;
  }
  young.head.prev = reinterpret_cast<std::uintptr_t>(prev);
  unreachable.head.next = next_of(&unreachable.head);
  return moved - v.moved_back;
}

// Clears g's kNextUnreachable mark; returns the next node.
GcHead* clear_mark(GcHead* g) noexcept {
  g->next = next_of(g);
  return g->next;
}

// ---------------------------------------------------------------------------
// Freezing (step 5)

// Sets kFrozen on h's count word and returns the word as it is after that.
std::uint64_t freeze_and_read(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (w & bits::kSide)
      return wd::side_of(w)->word.fetch_or(bits::kFrozen, std::memory_order_acq_rel) |
             bits::kFrozen;
    if (h->word.compare_exchange_weak(w, w | bits::kFrozen, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      return w | bits::kFrozen;
  }
}

std::uint64_t unfrozen(std::uint64_t x) noexcept {
  std::uint64_t epoch = ((x & bits::kEpochMask) + (1ULL << bits::kEpochShift)) & bits::kEpochMask;
  return (x & ~(bits::kFrozen | bits::kTouched | bits::kEpochMask)) | epoch;
}

void unfreeze_object(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (w & bits::kSide) {
      auto& sw = wd::side_of(w)->word;
      std::uint64_t x = sw.load(std::memory_order_relaxed);
      while ((x & bits::kFrozen) &&
             !sw.compare_exchange_weak(x, unfrozen(x), std::memory_order_acq_rel)) {
      }
      return;
    }
    if (!(w & bits::kFrozen)) return;
    if (h->word.compare_exchange_weak(w, unfrozen(w), std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      return;
  }
}

// Back to a public list (resurrected, or kept alive): other threads may hold
// it from now on.
void unmark(ObjectHeader* h) noexcept {
  wd::rmw_fetch_and(active_word(h), ~bits::kInCollection, std::memory_order_acq_rel);
}

// What the steps after 4 need to know about the garbage candidates.
struct GarbageFacts {
  bool verify = false;       // step 5: another thread may reach one
  bool weakrefs = false;     // one has weakrefs (a side table)
  bool weak_members = false; // one holds weak handles
  bool finalizers = false;   // one has tp_finalize
};

// One pass over the candidates after step 4: clears the marks
// move_unreachable left, marks each kInCollection (atomically: until step 5
// is done another thread may still touch the word), and gathers the facts.
// Step 5 is needed only if a candidate can be reached by another thread,
// i.e. has weakrefs or was ever copied by a thread that does not own it
// (kShared): another thread could only hold, and walk from, references it
// had when the counts were read (they show in the counts) or got by copying,
// which marks the copy kShared; this pass follows every count read.
GarbageFacts scan_unreachable(GcList& unreachable) noexcept {
  GarbageFacts facts;
  for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = clear_mark(g)) {
    ObjectHeader* h = header_of(g);
    std::uint64_t w = h->word.load(std::memory_order_acquire);
    std::uint64_t old;
    for (;;) {
      if (w & bits::kSide) {
        old = wd::rmw_fetch_or(wd::side_of(w)->word, bits::kInCollection,
                               std::memory_order_acq_rel) |
              bits::kSide;
        break;
      }
      if (wd::rmw_compare_exchange(h->word, w, w | bits::kInCollection,
                                   std::memory_order_acq_rel, std::memory_order_acquire)) {
        old = w;
        break;
      }
    }
    if (old & (bits::kSide | bits::kShared)) facts.verify = true;
    if (old & bits::kSide) facts.weakrefs = true;
    if (g->prev & wd::kPrevHasWeak) facts.weak_members = true;
    if (h->type->finalize) facts.finalizers = true;
  }
  return facts;
}

// Step 5: moves from `unreachable` to `survivors` every object that another
// thread can reach. On entry the links of `unreachable` may carry
// kNextUnreachable marks. On return the objects left in `unreachable` are
// frozen, have kPrevCollecting set and clean links, no other thread holds a
// reference to them, and the result is their number.
//
// Soundness: each object's count is read after its own freeze (atomically
// with it), and the touched scan follows every count read. A thread holding
// an object across its freeze shows in that count; one that reaches an
// object after its freeze touches it; a thread that walks from a held
// object to another copies the edge, which stays (only the collecting thread
// writes the members of its heap's objects), so what it reaches is reachable
// from what it held.
std::size_t verify_unreachable(GcList& unreachable, GcList& survivors, Heap* heap,
                               Ephemerons* eph, bool taken) {
  std::size_t n = 0;
  for (;;) {
    if (unreachable.empty()) return 0;
    // Freeze, read the count (a touched object counts as held from outside).
    n = 0;
    for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = clear_mark(g), ++n) {
      std::uint64_t w = freeze_and_read(header_of(g));
      std::uintptr_t c = bits::count(w);
      if (c == 0 || (w & bits::kTouched)) ++c;
      reset_refs(g, c);
    }
    subtract_refs(unreachable, heap);
    // Ephemerons. Step 5: the references of reachable tables' values whose
    // keys are candidates are internal too, waiting for their keys as in
    // step 4. Step 8: the references taken out of such values (step 6) are
    // this collection's own until step 9.
    if (eph)
      eph->for_each_waiting([taken](EphemeronEdge& e) {
        if (taken ? e.taken && collecting(e.value)
                  : collecting(e.key) && collecting(e.value) && gc_refs(e.value) > 0)
          set_refs(e.value, gc_refs(e.value) - 1);
      });
    GcList still;
    n = move_unreachable(unreachable, still, heap, taken ? nullptr : eph);
    // What stayed is reachable from outside after all.
    for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = g->next) {
      unfreeze_object(header_of(g));
      unmark(header_of(g));
    }
    unreachable.merge_into(survivors);
    still.merge_into(unreachable);
    // The touched scan, after every count read.
    bool touched = false;
    for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = clear_mark(g))
      if (read_word(header_of(g)) & bits::kTouched) touched = true;
    if (!touched) return n;
  }
}

// ---------------------------------------------------------------------------
// Debug output and callbacks

void debug_print(const char* text) {
  std::fputs(text, stderr);
  std::fflush(stderr);
}

void debug_cycle(const char* msg, ObjectHeader* h) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "gc: %s <%s %p>\n", msg, wd::type_name(*h->type->type),
                h->object());
  debug_print(buf);
}

// gc.callbacks, in list order, the list read afresh before each call (as
// CPython's invoke_gc_callback, which indexes the live list): a callback
// added or removed by another is seen. Allocates nothing.
void run_callbacks(Phase phase, const CallbackInfo& info) noexcept {
  for (std::size_t i = 0;; ++i) {
    std::shared_ptr<const Callback> cb;
    {
      std::lock_guard<wd::Mutex> g(module().mu);
      if (i >= module().callbacks.size()) return;
      cb = module().callbacks[i].second;
    }
    try {
      (*cb)(phase, info);
    } catch (...) {
      write_unraisable(std::current_exception(), "Exception ignored in",
                       "garbage collection callback");
    }
  }
}

// ---------------------------------------------------------------------------
// Steps 7-9

// Step 7, garbage weakrefs. A weakref is garbage when its every reference
// is a handle in a traced member of the garbage, or the one the callback
// batch took: refs == handles + (in batch). Those are cleared, and their
// callbacks dropped (bpo-38006: they could see torn-down objects).
//
// Counting the handles per weakref needs a list of them. It is allocated
// (two passes over the garbage that holds weak handles: count, then list);
// when that memory cannot be had, a fixed buffer is used a window of
// handles at a time (two more passes per window), so that this step, like
// the whole collection, never fails for lack of memory.
//
// A listed entry is a WeakObject address with tag bits: kInBatch marks the
// batch's entry of a weakref, which becomes kGarbageWeak when the weakref
// is garbage (the tags keep the sorted order: addresses are 8-aligned).
constexpr std::uintptr_t kInBatch = 1;
constexpr std::uintptr_t kGarbageWeak = 2;
constexpr std::uintptr_t kTags = 3;

WeakObject* weak_at(std::uintptr_t e) noexcept { return reinterpret_cast<WeakObject*>(e & ~kTags); }

// Traces the garbage that holds weak handles (all of it when `all`: after
// finalizers, which may have stored new weak handles anywhere).
void visit_weak_holders(GcList& unreachable, bool all, Visitor& v) noexcept {
  for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = g->next)
    if (all || (g->prev & wd::kPrevHasWeak)) trace(header_of(g), v);
}

// Given a sorted list of the weak handles held by the garbage (with the
// batch's entries tagged kInBatch), clears the garbage weakrefs and tags
// their batch entries kGarbageWeak.
void classify_runs(std::uintptr_t* list, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n;) {
    const std::uintptr_t w = list[i] & ~kTags;
    std::size_t handles = 0, batch_at = n;
    std::size_t j = i;
    for (; j < n && (list[j] & ~kTags) == w; ++j) {
      if (list[j] & kInBatch)
        batch_at = j;
      else
        ++handles;
    }
    const std::uint32_t in_batch = batch_at != n;
    if (handles && wd::clear_garbage_weak(weak_at(w), static_cast<std::uint32_t>(handles) + in_batch)) {
      if (in_batch) list[batch_at] = w | kGarbageWeak;
    }
    i = j;
  }
}

void drop_garbage_callbacks(CallbackBatch& batch, const std::uintptr_t* list, std::size_t n) {
  batch.drop_if([&](WeakObject* w) {
    return std::binary_search(list, list + n, reinterpret_cast<std::uintptr_t>(w) | kGarbageWeak);
  });
}

// The usual way: one list of every handle. False when its memory cannot be
// had (nothing done then).
bool find_garbage_weakrefs_listed(GcList& unreachable, bool all, CallbackBatch& batch) noexcept {
  WeakListVisitor count(&kWeakListOps);
  visit_weak_holders(unreachable, all, count);
  if (count.seen == 0) return true;
  std::size_t in_batch = 0;
  batch.for_each([&](WeakObject*) { ++in_batch; });
  const std::size_t size = count.seen + in_batch;
  std::unique_ptr<std::uintptr_t[]> list(new (std::nothrow) std::uintptr_t[size]);
  if (!list) return false;
  std::size_t n = 0;
  batch.for_each([&](WeakObject* w) { list[n++] = reinterpret_cast<std::uintptr_t>(w) | kInBatch; });
  WeakListVisitor fill(&kWeakListOps);
  fill.out = list.get() + n;
  fill.cap = size - n;
  visit_weak_holders(unreachable, all, fill);
  n += fill.n;
  std::sort(list.get(), list.get() + n);
  classify_runs(list.get(), n);
  drop_garbage_callbacks(batch, list.get(), n);
  return true;
}

// Counts, per listed weakref, the handles visited (for the fallback).
struct WindowCountVisitor : Visitor {
  const std::uintptr_t* keys = nullptr;  // sorted, distinct, untagged
  std::size_t n = 0;
  std::uint32_t* counts = nullptr;
  explicit WindowCountVisitor(const Ops* ops) noexcept : Visitor(ops) {}
};
void window_count_weak(Visitor& v, WeakObject* w, void*, WeakObject* (*)(void*)) {
  auto& c = static_cast<WindowCountVisitor&>(v);
  const auto key = reinterpret_cast<std::uintptr_t>(w);
  const std::uintptr_t* at = std::lower_bound(c.keys, c.keys + c.n, key);
  if (at != c.keys + c.n && *at == key) ++c.counts[at - c.keys];
}
const Visitor::Ops kWindowCountOps{&no_strong, &window_count_weak, &no_keep, false, nullptr};

// Without memory: a fixed buffer (static, so that it costs nothing until it
// is used), one window of handles at a time. A weakref whose handles fall
// in several windows is judged again in each, with the same result.
void find_garbage_weakrefs_windowed(GcList& unreachable, bool all, CallbackBatch& batch) noexcept {
  constexpr std::size_t kWindow = 8192;
  static std::uintptr_t keys[kWindow];
  static std::uint32_t counts[kWindow];
  static wd::Mutex mu;
  std::lock_guard<wd::Mutex> lk(mu);
  for (std::size_t skip = 0;; skip += kWindow) {
    WeakListVisitor window(&kWeakListOps);
    window.out = keys;
    window.cap = kWindow;
    window.skip = skip;
    visit_weak_holders(unreachable, all, window);
    std::sort(keys, keys + window.n);
    const std::size_t n = static_cast<std::size_t>(std::unique(keys, keys + window.n) - keys);
    std::fill(counts, counts + n, 0U);
    WindowCountVisitor count(&kWindowCountOps);
    count.keys = keys;
    count.n = n;
    count.counts = counts;
    visit_weak_holders(unreachable, all, count);
    batch.for_each([&](WeakObject* w) {
      const auto key = reinterpret_cast<std::uintptr_t>(w);
      std::uintptr_t* at = std::lower_bound(keys, keys + n, key);
      if (at != keys + n && *at == key) *at |= kInBatch;
    });
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t in_batch = (keys[i] & kInBatch) != 0;
      WeakObject* w = weak_at(keys[i]);
      if (wd::clear_garbage_weak(w, counts[i] + in_batch)) {
        if (in_batch) keys[i] = reinterpret_cast<std::uintptr_t>(w) | kGarbageWeak;
      }
    }
    drop_garbage_callbacks(batch, keys, n);
    if (!window.full) return;
  }
}

// Step 7, in one pass over the garbage: clear every weakref to it
// (gathering the callbacks) and unfreeze it. Inside the fork gate (the
// caller's).
void clear_weakrefs_and_unfreeze(GcList& unreachable, CallbackBatch& batch) noexcept {
  for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = g->next) {
    ObjectHeader* h = header_of(g);
    std::uint64_t w = h->word.load(std::memory_order_acquire);
    if (w & bits::kSide) wd::clear_weakrefs(wd::side_of(w), batch);
    unfreeze_object(h);
  }
}

// Step 7, then: the weakrefs that are garbage themselves are cleared and
// their callbacks dropped (see above), and the other callbacks run.
// Allocates nothing it cannot do without.
void handle_garbage_weakrefs_and_callbacks(GcList& unreachable, CallbackBatch& batch,
                                           bool weak_members, bool all) noexcept {
  if (weak_members && !find_garbage_weakrefs_listed(unreachable, all, batch))
    find_garbage_weakrefs_windowed(unreachable, all, batch);
  // The list may change under the callbacks (objects dying): it is not
  // walked while they run.
  batch.run();
}

// Step 8: returns whether any tp_finalize ran. The unreachable list (n
// objects) is private to this thread (deaths of its objects happen on this
// thread), so it is walked without the heap lock: each object in turn goes
// to the back of the list before its tp_finalize runs, so that a death
// during one (which unlinks the dead) never breaks the walk, and after n
// turns every object still there has had its turn, in the list's order.
bool finalize_garbage(GcList& unreachable, std::size_t n) {
  bool any = false;
  for (; n > 0 && !unreachable.empty(); --n) {
    GcHead* g = unreachable.head.next;
    {
      wd::GateHold hold;  // a fork child may walk this list (fork.cpp)
      GcList::move(g, unreachable);
    }
    ObjectHeader* h = header_of(g);
    if (!h->type->finalize) continue;
    auto& word = active_word(h);
    if (word.fetch_or(bits::kFinalized, std::memory_order_acq_rel) & bits::kFinalized) continue;
    any = true;
    wd::incref(h);
    try {
      h->type->finalize(h->object());
    } catch (...) {
      wd::report_finalize_exception(h);
    }
    wd::decref(h);  // may die here: untrack unlinks it
  }
  return any;
}

// Step 9. The unreachable list is private to this thread; the heap lock is
// taken only to move a survivor to the shared old generation. Nothing here
// needs memory: ClearVisitor releases at once what its lists cannot hold,
// and an object that DEBUG_SAVEALL cannot append to gc.garbage stays alive
// in the old generation (CPython clears the MemoryError and does the same).
constexpr int kCollectorNesting = 4;

void delete_garbage(GcList& unreachable, GcList& old, Heap* heap, bool save_all) noexcept {
  struct Scope {
    wd::DeathScope saved = wd::open_death_scope(kCollectorNesting);
    ~Scope() { wd::close_death_scope(saved); }
  } scope;
  ClearVisitor v(&kClearOps);
  while (!unreachable.empty()) {
    GcHead* g = unreachable.head.next;
    ObjectHeader* h = header_of(g);
    if (save_all) {
      wd::incref(h);
      try {
        std::lock_guard<wd::Mutex> lk(module().mu);
        module().garbage.push_back(wd::StrongAccess::adopt(h->object(), h));
      } catch (...) {
        // Not saved: the adopted reference went with the exception, and the
        // object stays alive, uncollected, until a later collection.
      }
    } else {
      // What trace() empties is released after it returns (or at once, the
      // object held meanwhile: see ClearVisitor), so the object is intact
      // during its own trace even if a release kills it.
      v.current = h;
      trace(h, v);
      v.release();
    }
    if (unreachable.head.next == g) {  // still alive: it may die later
      unmark(h);
      std::lock_guard<SpinLock> lk(heap->lock);
      clear_collecting(g);
      GcList::move(g, old);
    }
  }
}

// Step 6, ephemerons: every reference that still waits for its key (the key
// is garbage) and leads to garbage is taken out of its value, under the heap
// lock (the table is a survivor: its death waits for the lock, and only this
// thread writes its members). The entry itself goes when its weakref's
// callback (step 7) queues it, as for any death of a key.
void take_garbage_values(Ephemerons& eph) noexcept {
  eph.for_each_waiting([](EphemeronEdge& e) {
    if (collecting(e.key) && collecting(e.value)) e.taken = e.take(e.slot);
  });
}

// Step 9, ephemerons: the references taken at step 6 are released (held
// until now, so that callbacks and finalizers see the garbage intact, as
// CPython's; the resurrection check after the finalizers discounts them).
// Garbage that nothing else holds dies here.
void release_garbage_values(Ephemerons& eph) noexcept {
  eph.for_each_waiting([](EphemeronEdge& e) {
    if (ObjectHeader* h = std::exchange(e.taken, nullptr)) wd::decref(h);
  });
  eph.reset();
}

// ---------------------------------------------------------------------------
// One collection

// Steps 1-9 for one heap, whose `collecting` flag the caller holds.
std::size_t collect_one(Heap* heap, int generation, int debug) {
  GcList unreachable;
  Ephemerons eph;
  std::size_t found = 0;
  GarbageFacts facts;
  GcList* old;
  // Step 7 (nothing to do without weakrefs, weak members or finalizers
  // when nothing was frozen).
  bool step7;
  CallbackBatch batch;
  {
    // From the scan until the garbage is unfrozen (step 7), inside the fork
    // gate: a fork child never finds objects frozen by a thread it does not
    // have (fork.cpp).
    wd::GateHold hold;
    {
      std::lock_guard<SpinLock> lk(heap->lock);
      // Generation counts, as CPython.
      if (generation + 1 < wd::kGenerations)
        heap->count[generation + 1].fetch_add(1, std::memory_order_relaxed);
      for (int i = 0; i <= generation; ++i) heap->count[i].store(0, std::memory_order_relaxed);

      // Step 1.
      for (int i = 0; i < generation; ++i) heap->gen[i].merge_into(heap->gen[generation]);
      GcList& young = heap->gen[generation];
      old = generation + 1 < wd::kGenerations ? &heap->gen[generation + 1] : &young;
      // Steps 2-4.
      std::size_t n_young = update_refs(young);
      subtract_refs(young, heap);
      found = move_unreachable(young, unreachable, heap, &eph);
      facts = scan_unreachable(unreachable);
      // Step 5.
      if (facts.verify) found = verify_unreachable(unreachable, young, heap, &eph, false);
      // Step 6 (ephemerons): the values of garbage keys let go of the
      // garbage they refer to (this collection holds it until step 9).
      if (eph.size()) take_garbage_values(eph);
      // Step 6.
      if (old != &young) {
        if (generation == wd::kGenerations - 2)
          heap->long_lived_pending += static_cast<long>(n_young - found);
        young.merge_into(*old);
      } else {
        heap->long_lived_pending = 0;
        heap->long_lived_total = static_cast<long>(n_young - found);
        if (heap->index == wd::kOrphanHeap)
          wd::orphans_pending.store(0, std::memory_order_relaxed);
      }
      heap->in_collection = &unreachable;
    }
    step7 = facts.verify || facts.weakrefs || facts.weak_members || facts.finalizers;
    if (step7) clear_weakrefs_and_unfreeze(unreachable, batch);
  }

  if (debug & DEBUG_COLLECTABLE)
    for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = g->next)
      debug_cycle("collectable", header_of(g));

  struct Collecting {  // untrack's lock-free path for this heap's garbage
    Heap* saved = wd::tls_collecting;
    explicit Collecting(Heap* h) { wd::tls_collecting = h; }
    ~Collecting() { wd::tls_collecting = saved; }
  } collecting_here(heap);
  if (step7) handle_garbage_weakrefs_and_callbacks(unreachable, batch, facts.weak_members, false);
  // Step 8.
  if (facts.finalizers && finalize_garbage(unreachable, found)) {
    // Step 8: finalizers may have resurrected objects.
    CallbackBatch more;
    {
      wd::GateHold hold;  // (frozen again until unfrozen below)
      GcList resurrected;
      {
        std::lock_guard<SpinLock> lk(heap->lock);
        // As CPython, resurrected objects are not counted as found.
        found = verify_unreachable(unreachable, resurrected, heap, &eph, true);
        for (GcHead* g = resurrected.head.next; g != &resurrected.head; g = g->next) {
          clear_collecting(g);
          unmark(header_of(g));
        }
        resurrected.merge_into(*old);
      }
      // Weakrefs made to the garbage by the finalizers, and weak handles they
      // stored in it: cleared now, with their callbacks, before anything is
      // broken up.
      clear_weakrefs_and_unfreeze(unreachable, more);
    }
    handle_garbage_weakrefs_and_callbacks(unreachable, more, true, true);
  }
  // Step 9 (the references taken from ephemerons' values released first, or,
  // with DEBUG_SAVEALL, once gc.garbage holds the garbage).
  if (eph.size() && !(debug & DEBUG_SAVEALL)) release_garbage_values(eph);
  delete_garbage(unreachable, *old, heap, debug & DEBUG_SAVEALL);
  if (eph.size()) release_garbage_values(eph);
  {
    std::lock_guard<SpinLock> lk(heap->lock);
    heap->in_collection = nullptr;
  }
  return found;
}

// Collections running on this thread (their callbacks' collect() and
// automatic collections do nothing): one collection per thread at a time.
constinit thread_local int tls_collections = 0;

// The heaps one collection covers: the caller's, and the orphan heap for a
// full collection (a fixed array: a collection allocates nothing).
struct HeapSet {
  Heap* heaps[2] = {nullptr, nullptr};
  int n = 0;
  Heap** begin() noexcept { return heaps; }
  Heap** end() noexcept { return heaps + n; }
};

// One collection (gc_collect_main + its callbacks) of the given heaps: the
// first is the caller's; a heap already being collected is skipped (if it
// is the caller's, nothing happens and 0 is returned). The heaps stay
// marked as being collected until the "stop" callbacks have returned, so
// that a collect() from a callback returns 0 (CPython's gcstate->collecting
// covers its callbacks too).
std::size_t collect_heaps(HeapSet set, int generation) noexcept {
  HeapSet heaps;
  for (Heap* h : set)
    if (!h->collecting.exchange(true, std::memory_order_acq_rel)) heaps.heaps[heaps.n++] = h;
  if (heaps.n == 0) return 0;
  struct Release {
    HeapSet& heaps;
    Release(HeapSet& h) noexcept : heaps(h) {
      ++tls_collections;
      for (Heap* heap : heaps) heap->collector = wd::current_collector_token();
    }
    ~Release() {
      for (Heap* h : heaps) {
        h->collector = nullptr;
        h->collecting.store(false, std::memory_order_release);
      }
      --tls_collections;
      // Much of what a collection frees may belong to exited threads' pools.
      wd::pool_trim_exited();
    }
  } release{heaps};

  Module& m = module();
  const int debug = m.debug.load(std::memory_order_relaxed);
  run_callbacks(Phase::start, {generation, 0, 0});
  const auto t0 = std::chrono::steady_clock::now();
  if (debug & DEBUG_STATS) {
    std::size_t sizes[wd::kGenerations] = {0, 0, 0};
    std::size_t permanent = 0;
    for (Heap* h : heaps) {
      std::lock_guard<SpinLock> lk(h->lock);
      for (int i = 0; i < wd::kGenerations; ++i) sizes[i] += h->gen[i].size();
      permanent += h->permanent.size();
    }
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "gc: collecting generation %d...\n"
                  "gc: objects in each generation: %zu %zu %zu\n"
                  "gc: objects in permanent generation: %zu\n",
                  generation, sizes[0], sizes[1], sizes[2], permanent);
    debug_print(buf);
  }
  std::size_t found = 0;
  for (Heap* h : heaps) found += collect_one(h, generation, debug);

  m.stats[generation][0].fetch_add(1, std::memory_order_relaxed);
  m.stats[generation][1].fetch_add(found, std::memory_order_relaxed);
  if (debug & DEBUG_STATS) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[160];
    std::snprintf(buf, sizeof buf, "gc: done, %zu unreachable, 0 uncollectable, %.4fs elapsed\n",
                  found, secs);
    debug_print(buf);
  }
  run_callbacks(Phase::stop, {generation, found, 0});
  return found;
}

// CPython's gc_collect_generations: the oldest generation over threshold.
void collect_generations(Heap* heap) noexcept {
  Module& m = module();
  for (int i = wd::kGenerations - 1; i >= 0; --i) {
    if (heap->count[i].load(std::memory_order_relaxed) >
        m.threshold[i].load(std::memory_order_relaxed)) {
      if (i == wd::kGenerations - 1) {
        std::lock_guard<SpinLock> lk(heap->lock);
        if (heap->long_lived_pending < heap->long_lived_total / 4) continue;
      }
      HeapSet set;
      set.heaps[set.n++] = heap;
      collect_heaps(set, i);
      return;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API

std::size_t collect(int generation) {
  if (generation < 0 || generation > 2) throw std::invalid_argument("invalid generation");
  if (tls_collections) return 0;
  Heap* own = wd::current_heap();
  if (own->collecting.load(std::memory_order_acquire)) return 0;
  HeapSet set;
  set.heaps[set.n++] = own;
  if (generation == 2 && own != wd::orphan_heap()) set.heaps[set.n++] = wd::orphan_heap();
  return collect_heaps(set, generation);
}

void enable() noexcept { module().enabled.store(true, std::memory_order_relaxed); }
void disable() noexcept { module().enabled.store(false, std::memory_order_relaxed); }
bool isenabled() noexcept { return module().enabled.load(std::memory_order_relaxed); }

std::array<long, 3> get_count() noexcept {
  Heap* h = wd::current_heap();
  return {h->count[0].load(), h->count[1].load(), h->count[2].load()};
}
std::array<long, 3> get_threshold() noexcept {
  Module& m = module();
  return {m.threshold[0].load(), m.threshold[1].load(), m.threshold[2].load()};
}
void set_threshold(long t0) noexcept { module().threshold[0].store(t0); }
void set_threshold(long t0, long t1) noexcept {
  set_threshold(t0);
  module().threshold[1].store(t1);
}
void set_threshold(long t0, long t1, long t2) noexcept {
  set_threshold(t0, t1);
  module().threshold[2].store(t2);
}

void set_debug(int flags) noexcept { module().debug.store(flags); }
int get_debug() noexcept { return module().debug.load(); }

std::vector<Strong<void>> get_objects(std::optional<int> generation) {
  if (generation && (*generation < 0 || *generation > 2))
    throw std::invalid_argument("generation parameter must be less than the number of available "
                                "generations (3)");
  std::vector<Strong<void>> out;
  std::vector<ObjectHeader*> found;
  wd::for_each_heap([&](Heap& heap) {
    std::lock_guard<SpinLock> lk(heap.lock);
    for (int i = 0; i < wd::kGenerations; ++i) {
      if (generation && *generation != i) continue;
      for (GcHead* g = heap.gen[i].head.next; g != &heap.gen[i].head; g = g->next) {
        ObjectHeader* h = header_of(g);
        if (wd::incref_if_alive(h)) found.push_back(h);
      }
    }
  });
  out.reserve(found.size());
  for (ObjectHeader* h : found) out.push_back(wd::StrongAccess::adopt(h->object(), h));
  return out;
}

namespace detail {

std::vector<Strong<void>> referrers(std::vector<ObjectHeader*> targets) {
  std::unordered_set<ObjectHeader*> set(targets.begin(), targets.end());
  std::vector<ObjectHeader*> found;
  std::vector<Heap*> heaps{wd::current_heap()};
  if (heaps[0] != wd::orphan_heap()) heaps.push_back(wd::orphan_heap());
  for (Heap* heap : heaps) {
    std::lock_guard<SpinLock> lk(heap->lock);
    for (GcList* list : {&heap->gen[0], &heap->gen[1], &heap->gen[2], &heap->permanent})
      for (GcHead* g = list->head.next; g != &list->head; g = g->next) {
        ObjectHeader* h = header_of(g);
        if (bits::count(read_word(h)) == 0) continue;
        FindVisitor v(&kFindOps, &set);
        trace(h, v);
        if (v.hit && wd::incref_if_alive(h)) found.push_back(h);
      }
  }
  std::vector<Strong<void>> out;
  for (ObjectHeader* h : found) out.push_back(wd::StrongAccess::adopt(h->object(), h));
  return out;
}

std::vector<Strong<void>> referents(std::vector<ObjectHeader*> objects) {
  ListVisitor v(&kListOps);
  for (ObjectHeader* h : objects)
    if (h->traced()) trace(h, v);
  std::vector<Strong<void>> out;
  out.reserve(v.found.size());
  for (ObjectHeader* h : v.found) {
    wd::incref(h);
    out.push_back(wd::StrongAccess::adopt(h->object(), h));
  }
  return out;
}

bool is_tracked(ObjectHeader* h) noexcept {
  if (!h->traced()) return false;
  Heap* heap = wd::lock_heap_of(h);
  bool tracked = h->gc()->next != nullptr;
  heap->lock.unlock();
  return tracked;
}

bool is_finalized(ObjectHeader* h) noexcept { return read_word(h) & bits::kFinalized; }

}  // namespace detail

void freeze() noexcept {
  Heap* h = wd::current_heap();
  std::lock_guard<SpinLock> lk(h->lock);
  for (auto& g : h->gen) g.merge_into(h->permanent);
  for (auto& c : h->count) c.store(0, std::memory_order_relaxed);
}
void unfreeze() noexcept {
  Heap* h = wd::current_heap();
  std::lock_guard<SpinLock> lk(h->lock);
  h->permanent.merge_into(h->gen[wd::kGenerations - 1]);
}
std::size_t get_freeze_count() noexcept {
  Heap* h = wd::current_heap();
  std::lock_guard<SpinLock> lk(h->lock);
  return h->permanent.size();
}

std::vector<Strong<void>> garbage() {
  std::lock_guard<wd::Mutex> g(module().mu);
  return module().garbage;
}
void clear_garbage() {
  std::vector<Strong<void>> old;
  {
    std::lock_guard<wd::Mutex> g(module().mu);
    old.swap(module().garbage);
  }
}

std::string_view to_string(Phase p) noexcept { return p == Phase::start ? "start" : "stop"; }

CallbackId add_callback(Callback cb) {
  auto p = std::make_shared<const Callback>(std::move(cb));
  std::lock_guard<wd::Mutex> g(module().mu);
  CallbackId id = module().next_callback++;
  module().callbacks.emplace_back(id, std::move(p));
  return id;
}
bool remove_callback(CallbackId id) {
  std::shared_ptr<const Callback> old;
  std::lock_guard<wd::Mutex> g(module().mu);
  auto& v = module().callbacks;
  auto it = std::find_if(v.begin(), v.end(), [&](auto& e) { return e.first == id; });
  if (it == v.end()) return false;
  old = std::move(it->second);
  v.erase(it);
  return true;
}
void clear_callbacks() {
  std::vector<std::pair<CallbackId, std::shared_ptr<const Callback>>> old;
  std::lock_guard<wd::Mutex> g(module().mu);
  old.swap(module().callbacks);
}

std::array<GenerationStats, 3> get_stats() noexcept {
  std::array<GenerationStats, 3> out{};
  for (int i = 0; i < 3; ++i)
    out[i] = {module().stats[i][0].load(), module().stats[i][1].load(),
              module().stats[i][2].load()};
  return out;
}

}  // namespace weakref::gc

namespace weakref::detail {

void gc_on_allocate() noexcept {
  gc::Module& m = gc::module();
  if (!m.enabled.load(std::memory_order_relaxed)) return;
  const long t0 = m.threshold[0].load(std::memory_order_relaxed);
  if (t0 == 0) return;
  Heap* heap = current_heap();
  const bool own = heap->count[0].load(std::memory_order_relaxed) > t0;
  // Exited threads' objects count towards every thread's automatic
  // collection: whoever allocates next collects them (a full collection of
  // the orphan heap alone), so that garbage left by short-lived threads is
  // bounded without an explicit collect().
  const bool orphans = orphans_pending.load(std::memory_order_relaxed) > t0;
  if (!own && !orphans) [[likely]]
    return;
  if (gc::tls_collections || heap->collecting.load(std::memory_order_relaxed)) return;
  if (own) gc::collect_generations(heap);
  if (orphans && orphans_pending.load(std::memory_order_relaxed) > t0) {
    gc::HeapSet set;
    set.heaps[set.n++] = orphan_heap();
    gc::collect_heaps(set, 2);
  }
}

}  // namespace weakref::detail
