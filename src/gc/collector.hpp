// The collector's internals shared by its three sources (not installed):
//
//  * src/gc/collect.cpp: the algorithm, CPython's gc_collect_main for one
//    heap (steps 1-9; its invariants are stated at its top);
//  * src/gc/verify.cpp: step 5, the verification against other threads
//    (freezing, kTouched, the epoch; its protocol is stated at its top);
//  * src/gc/module.cpp: the gc module (collect() and the automatic
//    collections, enable/thresholds/debug flags, gc.garbage, gc.callbacks,
//    get_objects/get_referrers/get_referents, freeze).
//
// What is here: the process-wide Module state, the GcHead accessors the
// passes use (gc_refs in GcHead::prev, heap.hpp's layout), the ephemeron
// edges (shared by the reachable pass and the verification), and the
// functions one file calls in another. Everything is in
// weakref::gc::collector, internal to the library.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "../heap.hpp"
#include "weakref/detail/dcheck.hpp"
#include "weakref/detail/weak_object.hpp"
#include "weakref/gc.hpp"

namespace weakref::gc::collector {

using weakref::detail::ActiveWord;
using weakref::detail::CallbackBatch;
using weakref::detail::GcHead;
using weakref::detail::GcList;
using weakref::detail::HeaderWord;
using weakref::detail::Heap;
using weakref::detail::ObjectHeader;
using weakref::detail::SideWord;
using weakref::detail::SpinLock;
using weakref::detail::WeakObject;
namespace wd = weakref::detail;

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
// The one Module (never destroyed: usable during exit). module.cpp.
Module& module();

// ---------------------------------------------------------------------------
// GcHead bits (heap.hpp defines the layout)

using wd::kNextUnreachable;
using wd::kPrevCollecting;
using wd::kPrevFlags;
using wd::kRefsShift;

inline GcHead* next_of(const GcHead* g) noexcept {
  return reinterpret_cast<GcHead*>(reinterpret_cast<std::uintptr_t>(g->next) & ~kNextUnreachable);
}
inline std::uintptr_t gc_refs(const GcHead* g) noexcept { return g->prev >> kRefsShift; }
inline void set_refs(GcHead* g, std::uintptr_t n) noexcept {
  g->prev = (g->prev & kPrevFlags) | (n << kRefsShift);
}
inline void reset_refs(GcHead* g, std::uintptr_t n) noexcept {
  g->prev = kPrevCollecting | (n << kRefsShift);
}
inline bool collecting(const GcHead* g) noexcept { return g->prev & kPrevCollecting; }
inline void clear_collecting(GcHead* g) noexcept { g->prev &= ~kPrevCollecting; }

inline ObjectHeader* header_of(GcHead* g) noexcept { return ObjectHeader::from_gc(g); }

// The GcHead of h if h is listed in `heap` (so its GcHead is ours to read).
inline GcHead* own_gc(ObjectHeader* h, const Heap* heap) noexcept {
  if (!h->traced()) return nullptr;
  if (h->count_word().heap() != heap->index) return nullptr;
  GcHead* g = h->gc();
  return g->next ? g : nullptr;
}

// Clears g's kNextUnreachable mark; returns the next node.
inline GcHead* clear_mark(GcHead* g) noexcept {
  g->next = next_of(g);
  return g->next;
}

// CPython's validate_list (there under GC_DEBUG only): `list` is a
// consistent circular list (every node's prev link points back at the node
// before it) of traced objects of `heap` (the GcHead of another heap's
// object is never ours to read), with kPrevCollecting as `collecting` and
// kNextUnreachable on their next links as `unreachable` (the sentinel's
// next is never marked); and, when `expected` is given, `expected` nodes.
// Returns the number of nodes. It walks the whole list, a cache miss per
// object like a pass of the collector's, so it is called through
// WEAKREF_GC_VALIDATE (compiled out without WEAKREF_DCHECKS) and only where
// CPython calls it: around deduce_unreachable and before the finalizers.
inline constexpr std::size_t kAnyCount = ~std::size_t{0};
inline std::size_t validate_list(const GcList& list, const Heap* heap, bool collecting_set,
                                 bool unreachable_set, std::size_t expected = kAnyCount) noexcept {
  const GcHead* head = &list.head;
  WEAKREF_DCHECK(!(reinterpret_cast<std::uintptr_t>(head->next) & kNextUnreachable),
                 "validate_list: the sentinel's next link is marked unreachable");
  std::size_t n = 0;
  const GcHead* prev = head;
  for (const GcHead* g = next_of(head); g != head; prev = g, g = next_of(g), ++n) {
    WEAKREF_DCHECK(wd::gc_prev(g) == prev, "validate_list: a prev link does not point back");
    WEAKREF_DCHECK(collecting(g) == collecting_set, "validate_list: kPrevCollecting is wrong");
    WEAKREF_DCHECK(
        ((reinterpret_cast<std::uintptr_t>(g->next) & kNextUnreachable) != 0) == unreachable_set,
        "validate_list: kNextUnreachable is wrong");
    ObjectHeader* h = header_of(const_cast<GcHead*>(g));
    WEAKREF_DCHECK(h->traced() && h->count_word().heap() == heap->index,
                   "validate_list: an object of another heap (or untraced) in this heap's list");
  }
  WEAKREF_DCHECK(wd::gc_prev(head) == prev, "validate_list: the sentinel's prev is not the last");
  WEAKREF_DCHECK(expected == kAnyCount || n == expected,
                 "validate_list: the list does not hold the number of objects counted");
  return n;
}
#if WEAKREF_DCHECKS
#define WEAKREF_GC_VALIDATE(...) \
  static_cast<void>(::weakref::gc::collector::validate_list(__VA_ARGS__))
#else
#define WEAKREF_GC_VALIDATE(...) static_cast<void>(0)
#endif

// trace() must not throw (it only visits); the collector relies on it.
inline void trace(ObjectHeader* h, Visitor& v) noexcept { h->type->trace(h->object(), v); }

// Visitor callbacks that ignore what they are shown.
inline void no_strong(Visitor&, ObjectHeader*, void*, ObjectHeader* (*)(void*)) {}
inline void no_weak(Visitor&, WeakObject*, void*, WeakObject* (*)(void*)) {}
inline void no_keep(Visitor&, std::unique_ptr<Visitor::Kept>) {}

// ---------------------------------------------------------------------------
// Ephemerons (the WeakKeyDictionary entries; see "Ephemerons" at the top of
// collect.cpp)

// A reference from the value of an ephemeron whose key was not known to be
// reachable when its table was traced, to a young object.
struct EphemeronEdge {
  GcHead* key;    // null once the key was found reachable (resolved)
  GcHead* value;  // the young object the value refers to
  void* slot;     // the value's Strong<>, emptied (step 6) if the key is garbage
  ObjectHeader* (*take)(void*);
  std::uint32_t next;             // the key's next edge
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

// ---------------------------------------------------------------------------
// The passes (collect.cpp)

// Step 3: gc_refs of each young object -= the references from young.
void subtract_refs(GcList& young, Heap* heap);
// Step 4: moves to `unreachable` what is not reachable from an object with
// gc_refs > 0 (ephemeron values wait for their keys when `eph` is given).
std::size_t move_unreachable(GcList& young, GcList& unreachable, Heap* heap, Ephemerons* eph);
// Steps 1-9 for one heap, whose `collecting` flag the caller holds.
std::size_t collect_one(Heap* heap, int generation, int debug);

// ---------------------------------------------------------------------------
// Verification (verify.cpp)

// What the steps after 4 need to know about the garbage candidates.
struct GarbageFacts {
  bool verify = false;        // step 5: another thread may reach one
  bool weakrefs = false;      // one has weakrefs (a side table)
  bool weak_members = false;  // one holds weak handles
  bool finalizers = false;    // one has tp_finalize
};
GarbageFacts scan_unreachable(GcList& unreachable) noexcept;
std::size_t verify_unreachable(GcList& unreachable, GcList& survivors, Heap* heap, Ephemerons* eph,
                               bool taken);
void unfreeze_object(ObjectHeader* h) noexcept;
void unmark(ObjectHeader* h) noexcept;

// ---------------------------------------------------------------------------
// The module (module.cpp)

void debug_print(const char* text);
// A collection of one shared heap, whose user lock the caller holds
// (SharedHeap::collect): 0 at once from inside a collection on this thread.
std::size_t collect_shared(Heap* heap, int generation) noexcept;

}  // namespace weakref::gc::collector
