// The cycle collector's algorithm: CPython's Modules/gcmodule.c (3.11),
// gc_collect_main and its passes, for the heaps of heap.hpp, made safe
// against other threads. The verification against other threads (step 5)
// is in verify.cpp, the gc module's API in module.cpp, what they share in
// collector.hpp.
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
//  5. Verify against other threads (where we differ from CPython, which has
//     a GIL), when a candidate has weakrefs or was ever copied by a thread
//     other than the heap's owner: the candidates are frozen (weak lockers
//     wait, strong increments mark them touched), steps 3-4 run again on
//     them with the counts read at the freeze, until no candidate was
//     touched; whatever turned out reachable is unfrozen and survives.
//     The protocol and why it is enough: src/gc/verify.cpp.
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
//     is mispredicted (docs/performance.md has the figures). The order
//     of the C++ destructors within collected garbage is the only thing this
//     changes (docs/python-mapping.md#bounded-death-nesting).
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
#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "collector.hpp"
#include "weakref/detail/weak_object.hpp"

namespace weakref::gc::collector {

namespace {

// ---------------------------------------------------------------------------
// Visitors

struct HeapVisitor : Visitor {
  Heap* heap;
  GcHead* current = nullptr;   // the object being traced (subtract_refs)
  GcList* list = nullptr;      // young, for the reachable pass
  std::size_t moved_back = 0;  // unreachable -> young, in the reachable pass
  Ephemerons* eph = nullptr;   // the reachable pass's deferred value edges
  GcHead* eph_key = nullptr;   // the key of the ephemeron value being visited
  HeapVisitor(const Ops* ops, Heap* h) noexcept : Visitor(ops), heap(h) {}
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
  const SideWord x{s->word.load(std::memory_order_acquire)};
  if (x.count() == 0 || x.finalized() || x.heap() != heap->index) return nullptr;
  GcHead* g = s->object->gc();
  if (!g->next || !collecting(g)) return nullptr;  // not young, or scanned reachable
  // Not scanned yet, with references from outside (or already reached): the
  // scan will find it reachable, so the value's references are ordinary
  // ones (the common case: a key held elsewhere costs no edge).
  if (!(reinterpret_cast<std::uintptr_t>(g->next) & kNextUnreachable) && gc_refs(g) > 0)
    return nullptr;
  return g;
}

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

// ---------------------------------------------------------------------------
// deduce_unreachable (steps 2-4)
//
// Every pass walks a list of objects scattered in memory, so passes are few
// and fused: the collector's cost is cache misses, one per object per pass.

// Step 2. A zero count means the object's death began on another thread,
// which now waits for the heap lock to unlist it: it is never garbage, so it
// counts as referenced from outside (and its members stay intact until the
// lock is released). Returns the number of objects.
std::size_t update_refs(GcList& young, const Heap* heap) noexcept {
  std::size_t n = 0;
  for (GcHead* g = young.head.next; g != &young.head; g = g->next, ++n) {
    const ActiveWord w = header_of(g)->count_word();
    WEAKREF_DCHECK(w.heap() == heap->index, "update_refs: an object of another heap in young");
    std::uintptr_t c = w.count();
    reset_refs(g, c == 0 ? 1 : c);
  }
  return n;
}

}  // namespace

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
          HeaderWord(header_of(g)->word.load(std::memory_order_relaxed)).has_side())
        eph->resolve(
            g, [&](GcHead* value) { reachable_strong(v, header_of(value), nullptr, nullptr); });
      wd::gc_set_prev(g, prev);
      clear_collecting(g);
      prev = g;
    } else {
      // Tentatively unreachable. young is singly linked here.
      prev->next = g->next;
      GcHead* last = wd::gc_prev(&unreachable.head);
      last->next =
          reinterpret_cast<GcHead*>(reinterpret_cast<std::uintptr_t>(g) | kNextUnreachable);
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
  WEAKREF_DCHECK(moved >= v.moved_back, "move_unreachable: moved back more than it moved");
  return moved - v.moved_back;
}

namespace {

// ---------------------------------------------------------------------------
// Debug output

void debug_cycle(const char* msg, ObjectHeader* h) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "gc: %s <%s %p>\n", msg, wd::type_name(*h->type->type),
                h->object());
  debug_print(buf);
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
    if (handles &&
        wd::clear_garbage_weak(weak_at(w), static_cast<std::uint32_t>(handles) + in_batch)) {
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
  batch.for_each(
      [&](WeakObject* w) { list[n++] = reinterpret_cast<std::uintptr_t>(w) | kInBatch; });
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
    const HeaderWord w{h->word.load(std::memory_order_acquire)};
    if (w.has_side()) wd::clear_weakrefs(w.side(), batch);
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
    auto& word = h->active_word();  // h is private garbage: no thread switches its word
    if (ActiveWord(word.fetch_or(ActiveWord::kFinalized, std::memory_order_acq_rel)).finalized())
      continue;
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
void take_garbage_values(Ephemerons& eph, const Heap* heap) noexcept {
  eph.for_each_waiting([&](EphemeronEdge& e) {
    WEAKREF_DCHECK(header_of(e.key)->count_word().heap() == heap->index &&
                       header_of(e.value)->count_word().heap() == heap->index,
                   "an ephemeron edge's key or target left this heap before step 6");
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
}  // namespace

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
      // Steps 2-4 (CPython's deduce_unreachable, validated as there).
      WEAKREF_GC_VALIDATE(young, heap, false, false);
      std::size_t n_young = update_refs(young, heap);
      subtract_refs(young, heap);
      found = move_unreachable(young, unreachable, heap, &eph);
      WEAKREF_GC_VALIDATE(young, heap, false, false, n_young - found);
      WEAKREF_GC_VALIDATE(unreachable, heap, true, true, found);
      facts = scan_unreachable(unreachable);
      // Step 5.
      if (facts.verify) {
        found = verify_unreachable(unreachable, young, heap, &eph, false);
        WEAKREF_GC_VALIDATE(young, heap, false, false, n_young - found);
      }
      WEAKREF_GC_VALIDATE(unreachable, heap, true, false, found);
      // Step 6 (ephemerons): the values of garbage keys let go of the
      // garbage they refer to (this collection holds it until step 9).
      if (eph.size()) take_garbage_values(eph, heap);
      // Step 6.
      if (old != &young) {
        if (generation == wd::kGenerations - 2)
          heap->long_lived_pending += static_cast<long>(n_young - found);
        young.merge_into(*old);
      } else {
        heap->long_lived_pending = 0;
        heap->long_lived_total = static_cast<long>(n_young - found);
        if (heap->index == wd::kOrphanHeap) wd::orphans_pending.store(0, std::memory_order_relaxed);
      }
      WEAKREF_DCHECK(heap->in_collection == nullptr, "two collections of one heap at once");
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
  // Step 8 (the garbage left by the callbacks' deaths validated first, as
  // CPython does before finalize_garbage).
  WEAKREF_GC_VALIDATE(unreachable, heap, true, false);
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
        WEAKREF_GC_VALIDATE(unreachable, heap, true, false, found);
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

}  // namespace weakref::gc::collector
