// The weakref object of one weak-container entry (EntryWeak), the control
// block its callback shares with the container (ContainerControl), and the
// rules that settle a referent's death racing the container's owner.
//
// Ownership
//  * Every entry owns exactly one EntryWeak (one reference), linked into its
//    referent's weakref list like any weakref, so getweakrefcount/getweakrefs
//    see it. Others may hold it too (valuerefs(), keyrefs(), getweakrefs()).
//  * ContainerControl is refcounted: one reference for the container (taken
//    lazily on the first insertion) and one per EntryWeak alive, so a callback
//    running on any thread after its container is gone still has a live
//    control block to look at.
//
// What runs on which thread
//  * An EntryWeak's callback (invoke, src/weak_container.cpp) runs on the
//    thread where its referent dies, possibly in the middle of an operation
//    of the owning thread. It never touches the table: it claims its entry
//    (fetch_or kEntryDead on ctrl_state: entry_claim) and pushes the
//    weakref onto ContainerControl::head (entry_queue), a lock-free stack
//    (Treiber push; the owner takes the whole stack with one exchange: no
//    ABA) whose head also counts what it holds (below). The link is
//    WeakObject::prev: once a weakref has been cleared the core never
//    touches prev again (clear_weakrefs unlinks every weakref before any
//    callback runs, and CallbackBatch links through `next`).
//  * The queue counts itself, so that a death costs one RMW on the
//    container's block, not two. The low bits of `head` (kQueueCount) hold
//    how many weakrefs the stack has, up to 7; a push beyond that adds one
//    to ContainerControl::queued_extra too, and control_take, which empties
//    the stack, takes those back (both rare: seven deaths queued between
//    two operations of the owner). control_queued() is the sum: the claims
//    queued and not yet taken by the owner.
//  * A death whose only weakref is an entry's (die_with_one_weakref,
//    src/weak_object.cpp) runs these steps itself, without a batch: the
//    claim (entry_claim_linked: a load and a store) under the side lock
//    while the weakref is still linked (so that nobody can free it: a won
//    claim makes the entry's reference the death's, no reference is
//    taken), then ~T, then the push (once pushed, the owner may free the
//    weakref and the side table at once). During ~T the claim is in a
//    thread-local list of the entry deaths in flight
//    (entry_deaths_in_flight), which size() subtracts: so size() is exact
//    on the dying thread during ~T (which runs after the entry has left the
//    container, as CPython's callback removes it before the object's
//    members go), on every thread once the killing release has returned,
//    and may count the entry or not on another thread meanwhile.
//  * ctrl_state's low bits settle the race between a death and the owner
//    removing the entry: the owner sets kEntryOut, the callback kEntryDead,
//    so that exactly one of them sees the other's bit. While the weakref is
//    linked, both do it under the referent's side lock, a load and a store
//    (entry_mark_out, entry_claim_linked: the lone death's claim, which
//    happens there); once a death has cleared and unlinked it, a callback
//    batch claims with fetch_or, and so does the owner. A callback that
//    sees kEntryOut does nothing. An owner that sees kEntryDead records
//    that the claim, queued or still to be, belongs to an entry it has
//    removed (WeakTable::dead_settled_, weak_table.hpp), which the drain
//    settles when it takes the weakref. It does not wait for the push: a
//    lone death pushes after ~T, which is user code.
//  * Once its callback has claimed an entry, the entry's reference on the
//    EntryWeak is the queue's: the owner, when it sees kEntryDead on taking
//    the entry out, does not release it; the drain does (or the callback,
//    when it finds the queue closed). So a death costs no reference count
//    update for the queue.
//  * The owner's usual removal needs no race at all: while the entry's
//    weakref is still linked (its referent has not begun clearing it) and
//    the entry alone holds it, the owner unlinks it under the referent's
//    side lock (weak_detach_sole), after which no death can see it, let
//    alone claim it; the weakref is then kept by the table as a spare for
//    its next insertion (WeakTable::keep_spare), as is a drained one that
//    nobody else holds. Spares keep their control reference.
//  * EntryWeak::index is written and read by the owner only (insertion,
//    compaction, drain).
//
// Locking an entry's referent
//  * Each table entry also keeps the referent's side table (stable: the
//    entry's weakref shares the object's unit of SideTable::weak while it is
//    linked, and holds one of its own once cleared: weak_object.hpp), and
//    its word says
//    whether the referent is a base subobject at a nonzero offset
//    (kEntryOffset). entry_lock() works from the entry and the side table
//    alone: the weakref's own line is read only when the object's side word
//    says that some weakref to it has been cleared (kWeakCleared, count_word.hpp)
//    or the offset is nonzero, and frozen objects are left to weak_lock
//    itself.
//
// Calls into the core (weak_object.hpp, src/weak_object.cpp) are few and
// in known places: attach_weak in entry_attach (called only by
// WeakContainer::attach), weak_lock_side in entry_lock, weak_release in the
// table's insertion guard and removal paths (weak_table.hpp), weak_alive and
// weak_acquire in WeakContainer::entry_refs; clear_weakrefs reaches entries
// through EntryWeak::invoke.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "../strong.hpp"
#include "atomics.hpp"
#include "config.hpp"
#include "object.hpp"
#include "weak_object.hpp"

namespace weakref::detail {

inline constexpr std::uintptr_t kEntryDead = 1;  // claimed by its callback
inline constexpr std::uintptr_t kEntryOut = 2;   // removed by the owner
inline constexpr std::uintptr_t kEntryStates = 7;
// ContainerControl::head: EntryWeak* | how many it holds (up to 7), or
// kQueueClosed (no pointer: a stack that holds a weakref has one).
inline constexpr std::uintptr_t kQueueCount = 7;
inline constexpr std::uintptr_t kQueueClosed = 1;
static_assert(alignof(WeakObject) > kQueueCount, "ContainerControl::head counts in its low bits");

struct EntryWeak;

struct alignas(8) ContainerControl {
  std::atomic<std::uint32_t> refs{1};
  std::atomic<std::uintptr_t> head{0};  // EntryWeak* stack | count, or kQueueClosed
  // Queued beyond the 7 that head counts (a pusher adds before its push,
  // and takes it back if the owner took the stack meanwhile: the sum may
  // read one high for a moment, never low).
  std::atomic<std::ptrdiff_t> queued_extra{0};
};

WEAKREF_API ContainerControl* control_create();
WEAKREF_API void control_release(ContainerControl* c) noexcept;
// The queued weakrefs (each with the reference its entry had), newest first.
WEAKREF_API EntryWeak* control_take(ContainerControl* c) noexcept;
// The claims queued and not taken yet (see the top). Exact when no push is
// in flight.
inline std::ptrdiff_t control_queued(const ContainerControl* c) noexcept {
  const std::uintptr_t h = c->head.load(std::memory_order_acquire);
  const std::ptrdiff_t n = h == kQueueClosed ? 0 : static_cast<std::ptrdiff_t>(h & kQueueCount);
  return n + c->queued_extra.load(std::memory_order_relaxed);
}
// The claims queued but those of entries that the owner took out itself
// (kEntryOut): a walk of the queue, for the owner (or a const operation of
// its container) only, used while some claim it met when taking an entry
// out is not drained yet (WeakTable::dead_settled_).
WEAKREF_API std::ptrdiff_t control_queued_in(const ContainerControl* c) noexcept;
// How many claims of c's entries still in their table this thread's deaths
// hold in flight: made, and to be pushed once ~T has run
// (die_with_one_entry, src/weak_object.cpp).
WEAKREF_API std::ptrdiff_t entry_deaths_in_flight(const ContainerControl* c) noexcept;
// A container's size(): its `entries` (the table's, which already left out
// those the owner took out) less the claims of those still in it, queued or
// in flight on this thread (WeakTable::size(), weak_table.hpp, says when
// this is exact). `settled`: the owner's count of entries it took out after
// their callback had claimed them, not drained yet (dead_settled); while it
// is not 0, the queue is walked to leave their claims out.
inline std::size_t entries_unclaimed(std::size_t entries, const ContainerControl* c,
                                     std::ptrdiff_t settled) noexcept {
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(entries) -
                           (settled ? control_queued_in(c) : control_queued(c)) -
                           entry_deaths_in_flight(c);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}
// Closes the queue for good (the container is going away) and returns what
// was queued.
WEAKREF_API EntryWeak* control_close(ContainerControl* c) noexcept;

struct WEAKREF_API EntryWeak final : WeakObject {
  std::atomic<std::uintptr_t> ctrl_state;  // ContainerControl* | kEntry* bits
  std::uint32_t index = 0;                 // position in the table (owner)
  std::int32_t offset = 0;                 // T subobject - complete object

  explicit EntryWeak(ContainerControl* c) noexcept;
  ~EntryWeak() override;
  void invoke() override;

  ContainerControl* control() const noexcept {
    return reinterpret_cast<ContainerControl*>(ctrl_state.load(std::memory_order_relaxed) &
                                               ~kEntryStates);
  }
  // Next weakref in a queue taken from ContainerControl::head.
  EntryWeak* queue_next() const noexcept { return static_cast<EntryWeak*>(prev); }
};

// The steps of an entry's callback (above). entry_claim claims the entry
// against its owner's removal: true when the claim is the death's (the
// entry's reference is then the claimer's, to be handed to entry_queue);
// entry_queue pushes the weakref, with the entry's reference, for the
// owner's drain, counting it (or releases it when the container is gone).
inline bool entry_claim(EntryWeak* w) noexcept {
  if (w->ctrl_state.load(std::memory_order_acquire) & kEntryOut) return false;  // removed already
  return !(rmw_fetch_or(w->ctrl_state, kEntryDead, std::memory_order_acq_rel) & kEntryOut);
}
// entry_claim for a death that holds the side lock while w is still linked
// (die_with_one_entry): an owner marks a linked entry out only under that
// lock (entry_mark_out), and nothing else writes ctrl_state before w is
// cleared, so a load and a store settle it.
inline bool entry_claim_linked(EntryWeak* w) noexcept {
  const std::uintptr_t st = w->ctrl_state.load(std::memory_order_relaxed);
  if (st & kEntryOut) return false;
  w->ctrl_state.store(st | kEntryDead, std::memory_order_relaxed);
  return true;
}
// The owner's mark of an entry it takes out (kEntryOut), returning
// ctrl_state as it was: kEntryDead set means the entry's callback claimed it
// first. Under the referent's side lock while w is linked (a store: see
// entry_claim_linked), else one fetch_or (the claimer is then a callback
// batch, which claims with a fetch_or too, or a death that has left the lock).
WEAKREF_API std::uintptr_t entry_mark_out(EntryWeak* w) noexcept;
WEAKREF_API void entry_queue(EntryWeak* w) noexcept;

// A new entry weakref to h (caller holds a strong reference), linked into
// h's list; the caller owns the one reference. `spare` (or null) is an
// entry weakref of c made as new by entry_reset, used instead of a new one.
WEAKREF_API EntryWeak* entry_attach(ObjectHeader* h, ContainerControl* c, std::ptrdiff_t offset,
                                    EntryWeak* spare = nullptr);

// Makes w -- out of its referent's list for good, no unit of SideTable::weak,
// held by the caller alone -- as a new EntryWeak of its container, for
// entry_attach to link again (a table's spare entry weakrefs, weak_table.hpp).
inline void entry_reset(EntryWeak* w) noexcept {
  w->side.store(0, std::memory_order_relaxed);
  w->refs.store(1, std::memory_order_relaxed);
  w->state.store(0, std::memory_order_relaxed);
  w->prev = w->next = nullptr;
  w->linked = false;
  w->lent = false;
  w->ctrl_state.store(reinterpret_cast<std::uintptr_t>(w->control()), std::memory_order_relaxed);
}

// The owner's side of the death race, when it takes an entry out: true when
// the entry's callback had claimed it first (its push may still be to come);
// else the callback will see kEntryOut.
inline bool entry_retire(EntryWeak* w) noexcept { return entry_mark_out(w) & kEntryDead; }

// The referent of an entry, as a T*, with one new strong reference; null when
// dead or cleared.
template <class T>
Strong<T> entry_lock(const EntryWeak* w) noexcept {
  SideTable* s = weak_lock_side(w);
  if (!s) return {};
  return StrongAccess::adopt(
      reinterpret_cast<T*>(static_cast<char*>(s->object->object()) + w->offset), s);
}

// The referent's address as entry_lock computes it (a ref handle keeps it for
// when its referent is alive); no dereference of the object.
template <class T>
T* entry_pointer(const EntryWeak* w) noexcept {
  // (The offset may be negative: sign-extended, then added modulo 2^N.)
  return reinterpret_cast<T*>(reinterpret_cast<std::uintptr_t>(w->side_table()->object) +
                              sizeof(ObjectHeader) +
                              static_cast<std::uintptr_t>(static_cast<std::intptr_t>(w->offset)));
}

// An entry's first word: 0 = free slot; odd = removed, its payload waiting
// for the table to be unpinned ((next pending index << 1) | 1); otherwise the
// EntryWeak* of a live entry, with kEntryOffset set when the referent is a
// base subobject at a nonzero offset from its complete object.
using EntryWord = std::uintptr_t;
inline constexpr EntryWord kEntryOffset = 2;
static_assert(alignof(EntryWeak) >= 4, "EntryWord keeps two tag bits");
inline bool entry_live(EntryWord w) noexcept { return w != 0 && !(w & 1); }
inline EntryWeak* entry_weak(EntryWord w) noexcept {
  return reinterpret_cast<EntryWeak*>(w & ~kEntryOffset);
}
inline EntryWord entry_word(EntryWeak* w) noexcept {
  return reinterpret_cast<EntryWord>(w) | (w->offset != 0 ? kEntryOffset : 0);
}

// entry_lock's rare cases, out of line so that lookups stay small enough to
// inline: the object is frozen, a weakref to it was cleared, or the
// referent is at a nonzero offset.
template <class T>
[[gnu::noinline, gnu::cold]] Strong<T> entry_lock_slow(EntryWord word) noexcept {
  return entry_lock<T>(entry_weak(word));
}

// The referent of a table entry, locked from the entry's word and the
// referent's side table. The protocol is weak_lock's (src/weak_object.cpp):
// read the count word, then the weakref's cleared bit, then CAS on the word
// read, and read both again after a failed CAS; while a collector has the
// object frozen, weak_lock itself waits. The cleared bit is needed only if
// the word has kWeakCleared: a clear sets that flag (an RMW on the word)
// before any cleared bit, so a CAS that succeeds on a word without it came
// before every clear. Neither the weakref's nor the referent's line is
// touched on the fast path, and the Strong returned keeps the side table as
// its count's place (CountRef, object.hpp), so its release does not touch
// the referent's line either.
template <class T>
[[gnu::always_inline]] inline Strong<T> entry_lock(EntryWord word, SideTable* s) noexcept {
  std::uint64_t x = s->word.load(std::memory_order_acquire);  // (as in incref)
  for (;;) {
    if (SideWord(x).count() == 0) return {};
    if (SideWord(x).has_any(SideWord::kFrozen, SideWord::kWeakCleared) || (word & kEntryOffset))
        [[unlikely]]
      return entry_lock_slow<T>(word);
    if (rmw_compare_exchange(s->word, x, SideWord(x).plus().raw(), std::memory_order_acquire,
                             std::memory_order_acquire))
      return StrongAccess::adopt(static_cast<T*>(s->object->object()), s);
  }
}

// Whether the referent of a table entry is alive (the same reads, no CAS).
inline bool entry_alive(EntryWord word, const SideTable* s) noexcept {
  const SideWord x{s->word.load(std::memory_order_acquire)};
  if (x.count() == 0) return false;
  return !x.weak_cleared() || !(entry_weak(word)->side.load(std::memory_order_acquire) & 1);
}

inline std::ptrdiff_t subobject_offset(const void* p, ObjectHeader* h) noexcept {
  return static_cast<const char*>(p) - static_cast<const char*>(h->object());
}

// Identity hash of an object (its header address); the same for every
// Strong<> to it, whatever the static type.
inline std::size_t identity_hash(const ObjectHeader* h) noexcept {
  return static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(h) >> 4);
}

// The side table of h, or null when h has no weakref at all (then no
// container holds it).
inline SideTable* side_if_any(const ObjectHeader* h) noexcept {
  const HeaderWord w{h->word.load(std::memory_order_acquire)};
  return w.has_side() ? w.side() : nullptr;
}

// A container's entry (its weakref, and the side table it refers to) set
// again to the same live referent (h, the value at `offset` in it): the
// weakref, which nobody else holds, moves to where a new one would go and
// is the new one (weak_renew; nobody can tell them apart). False, nothing
// done, when the entry refers to another object or its weakref is cleared
// or held elsewhere: the caller then makes a new entry weakref. The owner's
// call (WeakContainer::put_value, ConcurrentWeakValueDictionary::set).
inline bool entry_renew(EntryWord word, const SideTable* entry_side, const ObjectHeader* h,
                        std::ptrdiff_t offset) noexcept {
  EntryWeak* w = entry_weak(word);
  return entry_side == side_if_any(h) && w->offset == offset && weak_renew(w);
}

}  // namespace weakref::detail
