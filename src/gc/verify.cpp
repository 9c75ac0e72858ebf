// Step 5 of a collection (collect.cpp): the verification against other
// threads. CPython has a GIL, so the unreachable set it finds at step 4 is
// garbage; here other threads may copy and drop strong references and lock
// weakrefs at any time, also during a collection (gc.hpp's rule: only the
// heap's own thread writes the traced members of its objects; for a shared
// heap, only threads holding its lock, which every collection of it holds
// from step 1 to step 9: weakref/shared_heap.hpp). Steps 2-4
// read the counts one at a time, without stopping anyone, so an object they
// call unreachable may be held by another thread by the time they are done.
// This file decides which of the candidates are garbage after all.
//
// The protocol (the count word's bits are in detail/object.hpp):
//  * kInCollection (scan_unreachable, right after step 4, under the heap
//    lock): the candidate is in this collection's set, whose list becomes
//    private to the collecting thread at step 6; its death there (steps
//    7-9) unlists it without the heap lock (heap.hpp, untrack). Cleared
//    again (unmark) for every candidate that survives.
//  * When needed: only if a candidate has weakrefs (kSide) or was ever
//    copied by a thread that does not own its heap (kShared, sticky).
//    Without either, no other thread can hold or reach it: another thread
//    could only hold, and walk from, references it had when the counts were
//    read (they show in the counts) or got by copying (which marks the copy
//    kShared); the scan that looks follows every count read.
//  * Freezing: each candidate's word gets kFrozen, and its count is read in
//    the same atomic step (freeze_and_read). From then on a weak lock waits
//    (weak_lock_uncleared spins while kFrozen is set), and a strong increment
//    of the object also sets kTouched.
//  * Judging: gc_refs := the count read at the freeze (+1 if touched or 0),
//    steps 3-4 run again on the candidates alone (ephemeron edges whose key
//    is a candidate count as internal), and what is reachable from outside
//    the set is unfrozen, unmarked and survives. Then every remaining
//    candidate's word is read again: if one was touched (kTouched), all of
//    this is done again on what remains.
//  * Unfreezing (unfreeze_object) clears kFrozen and kTouched and bumps the
//    epoch (ActiveWord::kEpochMask): a weak locker's compare-and-swap prepared on a
//    word read before the freeze fails after it, and the locker starts over,
//    reading the cleared bit of its weakref after the word (weak_object.cpp,
//    weak_lock_uncleared). The garbage stays frozen until step 7 has cleared
//    its weakrefs (clear_weakrefs_and_unfreeze, collect.cpp): no locker can
//    reach it in between, and none after.
//  * Everything from the freeze to the unfreeze runs inside the fork gate
//    (src/fork.cpp): a fork child never finds objects frozen by a thread it
//    does not have.
//
// Why it is enough: each object's count is read after its own freeze
// (atomically with it), and the touched scan follows every count read. A
// thread holding an object across its freeze shows in that count; one that
// reaches an object after its freeze touches it (through a weakref it
// cannot: lockers wait); a thread that walks from a held object to another
// copies the edge, which stays (only the collecting thread writes the
// members of its heap's objects; for a shared heap, the collecting thread
// holds its lock), so what it reaches is reachable from what it held, and
// is kept with it. Ephemerons: a thread reaches a value only
// through its key (every access to an entry locks the key), which shows in
// the key's count or touches it; the values follow their keys.
//
// After finalizers ran (step 8), the same verification is run again on the
// remaining garbage (taken = true): objects resurrected by a finalizer
// survive, and the references the collection took out of ephemeron values
// at step 6 count as its own.
#include <cstdint>

#include "collector.hpp"

namespace weakref::gc::collector {

namespace {

// Sets kFrozen on h's count word and returns the word as it is after that.
// (A compare-and-swap on the header's word: another thread may switch it to
// the side form meanwhile, by making the first weakref.)
ActiveWord freeze_and_read(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (HeaderWord(w).has_side())
      return ActiveWord(
                 HeaderWord(w).side()->word.fetch_or(SideWord::kFrozen, std::memory_order_acq_rel))
          .with(ActiveWord::kFrozen);
    const std::uint64_t frozen = HeaderWord(w).with(HeaderWord::kFrozen).raw();
    if (h->word.compare_exchange_weak(w, frozen, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      return ActiveWord(frozen);
  }
}

}  // namespace

void unfreeze_object(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (HeaderWord(w).has_side()) {
      auto& sw = HeaderWord(w).side()->word;
      std::uint64_t x = sw.load(std::memory_order_relaxed);
      while (SideWord(x).frozen() && !sw.compare_exchange_weak(x, SideWord(x).unfrozen().raw(),
                                                               std::memory_order_acq_rel)) {
      }
      return;
    }
    if (!HeaderWord(w).frozen()) return;
    if (h->word.compare_exchange_weak(w, HeaderWord(w).unfrozen().raw(), std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      return;
  }
}

// Back to a public list (resurrected, or kept alive): other threads may hold
// it from now on. A compare-and-swap on the header's word (as in
// scan_unreachable), since another thread may switch it to the side form
// meanwhile by making the first weakref.
void unmark(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (HeaderWord(w).has_side()) {
      wd::rmw_fetch_and(HeaderWord(w).side()->word, ~std::uint64_t{SideWord::kInCollection},
                        std::memory_order_acq_rel);
      return;
    }
    if (wd::rmw_compare_exchange(h->word, w, HeaderWord(w).without(HeaderWord::kInCollection).raw(),
                                 std::memory_order_acq_rel, std::memory_order_acquire))
      return;
  }
}

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
    ActiveWord old;
    bool side = false;
    for (;;) {
      if (HeaderWord(w).has_side()) {
        old = ActiveWord(wd::rmw_fetch_or(HeaderWord(w).side()->word,
                                          std::uint64_t{SideWord::kInCollection},
                                          std::memory_order_acq_rel));
        side = true;
        break;
      }
      if (wd::rmw_compare_exchange(h->word, w, HeaderWord(w).with(HeaderWord::kInCollection).raw(),
                                   std::memory_order_acq_rel, std::memory_order_acquire)) {
        old = ActiveWord(w);
        break;
      }
    }
    WEAKREF_DCHECK(!old.has_any(ActiveWord::kInCollection, ActiveWord::kFrozen),
                   "a candidate of this collection is already frozen or in a collection");
    if (side || old.shared()) facts.verify = true;
    if (side) facts.weakrefs = true;
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
// Soundness: see "Why it is enough" at the top of this file.
std::size_t verify_unreachable(GcList& unreachable, GcList& survivors, Heap* heap, Ephemerons* eph,
                               bool taken) {
  std::size_t n = 0;
  for (;;) {
    if (unreachable.empty()) return 0;
    // Freeze, read the count (a touched object counts as held from outside).
    n = 0;
    for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = clear_mark(g), ++n) {
      const ActiveWord w = freeze_and_read(header_of(g));
      std::uintptr_t c = w.count();
      if (c == 0 || w.touched()) ++c;
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
      WEAKREF_DCHECK(
          !header_of(g)->count_word().has_any(ActiveWord::kFrozen, ActiveWord::kInCollection),
          "a survivor of the verification is left frozen or marked");
    }
    unreachable.merge_into(survivors);
    still.merge_into(unreachable);
    // The touched scan, after every count read.
    bool touched = false;
    for (GcHead* g = unreachable.head.next; g != &unreachable.head; g = clear_mark(g)) {
      const ActiveWord w = header_of(g)->count_word();
      WEAKREF_DCHECK(w.frozen() && w.in_collection(),
                     "a candidate is not frozen and marked at the touched scan");
      if (w.touched()) touched = true;
    }
    if (!touched) return n;
  }
}

}  // namespace weakref::gc::collector
