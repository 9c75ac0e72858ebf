// Shared machinery of the weak containers (WeakValueDictionary,
// WeakKeyDictionary, WeakSet): the weakref object of one entry, the control
// block its callback shares with the container, and the hash table.
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
// What runs on which thread, and which state belongs to whom
//  * An EntryWeak's callback (invoke) runs on the thread where its referent
//    dies, possibly in the middle of an operation of the owning thread. It
//    never touches the table: it claims its entry (fetch_or kEntryDead on
//    ctrl_state), counts the claim in ContainerControl::dead and pushes the
//    weakref onto ContainerControl::head, a lock-free stack (Treiber push;
//    the owner takes the whole stack with one exchange: no ABA). The link
//    is WeakObject::prev: once a weakref has been cleared the core never
//    touches prev again (clear_weakrefs unlinks every weakref before any
//    callback runs, and CallbackBatch links through `next`).
//  * The table (entries, index, counters) belongs to the container object.
//    Non-const operations first apply the queued removals (drain); their fast
//    path is one relaxed load of `head`. Const operations never modify the
//    table: they treat entries whose referent is dead as absent, and size()
//    subtracts the claimed-but-not-drained entries. They modify only the
//    atomic iteration counter, so several threads may run them at once.
//  * ctrl_state's low bits settle the race between a death and the owner
//    removing the entry: the owner sets kEntryOut, the callback kEntryDead,
//    both with fetch_or, so exactly one of them sees the other's bit. A
//    callback that sees kEntryOut does nothing. Otherwise it counts the
//    claim in ContainerControl::dead, then sets kEntryCounted, then pushes.
//    An owner that sees kEntryDead waits for kEntryCounted (two atomic
//    instructions on the dying thread, no user code between them) and then
//    records that the counted claim belongs to an entry it has removed
//    (dead_removed_), which the drain settles. So size() = live - dead +
//    dead_removed is exact on the owner's thread at every moment.
//  * EntryWeak::index is written and read by the owner only (insertion,
//    compaction, drain).
//  * Each table entry also keeps the referent's side table (`side`, stable:
//    the entry's weakref holds a unit of SideTable::weak), and its word
//    says whether the referent is a base subobject at a nonzero offset
//    (kEntryOffset). Identity lookups compare `side` directly, and
//    entry_lock() works from the entry and the side table alone: the
//    weakref's own line is read only when the object's side word says that
//    some weakref to it has been cleared (kWeakCleared, object.hpp) or the
//    offset is nonzero, and frozen objects are left to weak_lock itself.
//  * Payload lifetime: the table never moves or destroys an entry while an
//    iteration or a payload destructor is running (iterating_ > 0, "pinned").
//    Removed payloads wait on the pending list and are destroyed when the
//    table is unpinned, so references handed out by an iteration stay valid
//    until it ends, and user code (destructors, Hash, KeyEqual, callbacks)
//    never sees a half-updated table.
//  * The index table and the segments are allocated by the owner; segments
//    are never reallocated, so entries do not move when the table grows.
//    Entries move only when an insertion compacts the table (a quarter or
//    more of it free) and free entries at the end are given back, both only
//    while nothing pins the table.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <new>
#include <ostream>
#include <ranges>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../gc.hpp"
#include "../ref.hpp"
#include "../strong.hpp"
#include "config.hpp"
#include "object.hpp"
#include "weak_object.hpp"

namespace weakref {

// Key policies of WeakKeyDictionary and WeakSet.
//
// by_identity (the default): two keys are the same key when they are the same
// object (Python's behaviour for classes without __eq__/__hash__).
struct by_identity {};

// by_value<Hash, KeyEqual>: keys hash and compare by the referent's value, as
// Python does for classes that define __hash__ and __eq__. The hash is
// computed once, at insertion (a lookup stays correct after other keys die).
// void means std::hash<K> / std::equal_to<K>.
template <class Hash = void, class KeyEqual = void>
struct by_value {};

}  // namespace weakref

namespace weakref::detail {

// ---------------------------------------------------------------------------
// Control block and entry weakref (src/weak_container.cpp)

inline constexpr std::uintptr_t kEntryDead = 1;     // claimed by its callback
inline constexpr std::uintptr_t kEntryOut = 2;      // removed by the owner
inline constexpr std::uintptr_t kEntryCounted = 4;  // the claim is in `dead`
inline constexpr std::uintptr_t kEntryStates = 7;
inline constexpr std::uintptr_t kQueueClosed = 1;  // ContainerControl::head

struct EntryWeak;

struct alignas(8) ContainerControl {
  std::atomic<std::uint32_t> refs{1};
  std::atomic<std::uintptr_t> head{0};  // EntryWeak* stack, or kQueueClosed
  std::atomic<std::ptrdiff_t> dead{0};  // claimed and not yet drained
};

WEAKREF_API ContainerControl* control_create();
WEAKREF_API void control_release(ContainerControl* c) noexcept;
// The queued weakrefs (each with one reference), newest first.
WEAKREF_API EntryWeak* control_take(ContainerControl* c) noexcept;
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

// A new entry weakref to h (caller holds a strong reference), linked into
// h's list; the caller owns the one reference.
WEAKREF_API EntryWeak* entry_attach(ObjectHeader* h, ContainerControl* c, std::ptrdiff_t offset);

[[noreturn]] WEAKREF_API void throw_key_error(const std::string& key);
[[noreturn]] WEAKREF_API void throw_length_error();
WEAKREF_API std::ostream& write_container_address(std::ostream& os, const char* name,
                                                  const void* self);

// The referent of an entry, as a T*, with one new strong reference; null when
// dead or cleared.
template <class T>
Strong<T> entry_lock(const EntryWeak* w) noexcept {
  SideTable* s = weak_lock_side(w);
  if (!s) return {};
  return StrongAccess::adopt(
      reinterpret_cast<T*>(static_cast<char*>(s->object->object()) + w->offset), s);
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
  std::uint64_t x = s->word.load(std::memory_order_acquire);
  for (;;) {
    if (bits::count(x) == 0) return {};
    if ((x & (bits::kFrozen | bits::kWeakCleared)) || (word & kEntryOffset)) [[unlikely]]
      return entry_lock_slow<T>(word);
    if (rmw_compare_exchange(s->word, x, x + bits::kOne, std::memory_order_acquire,
                             std::memory_order_acquire))
      return StrongAccess::adopt(static_cast<T*>(s->object->object()), s);
  }
}

// Whether the referent of a table entry is alive (the same reads, no CAS).
inline bool entry_alive(EntryWord word, const SideTable* s) noexcept {
  std::uint64_t x = s->word.load(std::memory_order_acquire);
  if (bits::count(x) == 0) return false;
  return !(x & bits::kWeakCleared) || !(entry_weak(word)->side.load(std::memory_order_acquire) & 1);
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
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  return (w & bits::kSide) ? side_of(w) : nullptr;
}

// ---------------------------------------------------------------------------
// Text of keys (KeyError, operator<<): Python's repr when it has one
// (detail::streamable, strong.hpp: the same trait Strong's operator<< uses).

template <class X>
void write_repr(std::ostream& os, const X& x) {
  if constexpr (is_strong<X>::value) {
    using T = typename X::element_type;
    if constexpr (!std::is_void_v<T> && streamable<T>) {
      if (x) {
        os << *x;
        return;
      }
    }
    os << x;
  } else if constexpr (std::is_convertible_v<const X&, std::string_view>) {
    os << '\'' << std::string_view(x) << '\'';
  } else if constexpr (streamable<X>) {
    os << x;
  } else {
    os << '<' << type_name(typeid(X)) << " object>";
  }
}

template <class X>
[[noreturn]] void key_error(const X& key) {
  std::ostringstream os;
  write_repr(os, key);
  throw_key_error(os.str());
}

// ---------------------------------------------------------------------------
// Entries

template <class P>
struct PayloadSlot {
  union {
    P value;
  };
  PayloadSlot() noexcept {}
  ~PayloadSlot() {}
  PayloadSlot(const PayloadSlot&) = delete;
  PayloadSlot& operator=(const PayloadSlot&) = delete;
};
template <>
struct PayloadSlot<void> {};

template <bool Stored>
struct HashSlot {
  std::size_t hash;
};
template <>
struct HashSlot<false> {};

template <class P, bool StoredHash>
struct Entry {
  EntryWord w;
  SideTable* side;  // the referent's (identity, and the lock's count word)
  [[no_unique_address]] HashSlot<StoredHash> h;
  [[no_unique_address]] PayloadSlot<P> p;
};

// Segment s holds kFirstSegment << s entries; segments are never moved, so
// an entry's address is stable until compaction.
template <class E>
class Segments {
 public:
  static constexpr std::uint32_t kFirstShift = 3;
  static constexpr std::uint64_t kFirst = 1U << kFirstShift;

  Segments() noexcept = default;
  Segments(const Segments&) = delete;
  Segments& operator=(const Segments&) = delete;
  ~Segments() { release_from(0); }

  void swap(Segments& o) noexcept { segs_.swap(o.segs_); }

  E& operator[](std::uint32_t i) const noexcept {
    const std::uint64_t u = std::uint64_t{i} + kFirst;
    const unsigned s = static_cast<unsigned>(std::bit_width(u)) - kFirstShift - 1;
    return segs_[s][u - (kFirst << s)];
  }
  std::uint64_t capacity() const noexcept {
    return segs_.empty() ? 0 : (kFirst << segs_.size()) - kFirst;
  }
  void grow() {
    const std::size_t n = kFirst << segs_.size();
    segs_.reserve(segs_.size() + 1);
    segs_.push_back(static_cast<E*>(::operator new(n * sizeof(E), std::align_val_t(alignof(E)))));
  }
  // Frees the segments needed only above `size` entries (none constructed).
  void shrink_to(std::uint32_t size) noexcept {
    std::size_t keep = 0;
    while (((kFirst << keep) - kFirst) < size) ++keep;
    release_from(keep);
  }

 private:
  void release_from(std::size_t keep) noexcept {
    while (segs_.size() > keep) {
      ::operator delete(segs_.back(), std::align_val_t(alignof(E)));
      segs_.pop_back();
    }
  }
  std::vector<E*> segs_;
};

// ---------------------------------------------------------------------------
// The table
//
// Traits supply: `using Payload` (void for none), `kStoredHash`, and, when
// the hash is not stored, `static std::size_t entry_hash(const E&)` that
// recomputes it from the payload or the referent's identity.

template <class Traits>
class WeakTable {
 public:
  using Payload = typename Traits::Payload;
  static constexpr bool kHasPayload = !std::is_void_v<Payload>;
  static constexpr bool kStoredHash = Traits::kStoredHash;
  using E = Entry<Payload, kStoredHash>;
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();

  WeakTable() noexcept = default;
  WeakTable(const WeakTable&) = delete;
  WeakTable& operator=(const WeakTable&) = delete;
  ~WeakTable() { destroy(); }

  // Exchanges the contents (not the iterations in progress). Only when
  // neither table is being iterated; the containers fall back to copying.
  void swap(WeakTable& o) noexcept {
    std::swap(ctrl_, o.ctrl_);
    std::swap(slots_, o.slots_);
    std::swap(shift_, o.shift_);
    std::swap(cap_, o.cap_);
    std::swap(filled_, o.filled_);
    std::swap(used_, o.used_);
    std::swap(live_, o.live_);
    std::swap(pending_head_, o.pending_head_);
    std::swap(dead_removed_, o.dead_removed_);
    segs_.swap(o.segs_);
    ++version_;
    ++o.version_;
  }

  bool iterating() const noexcept { return iterating_.load(std::memory_order_relaxed) != 0; }

  // -- Counts ---------------------------------------------------------------

  // Entries whose referent's death has not been queued yet.
  std::size_t size() const noexcept {
    std::ptrdiff_t dead = ctrl_ ? ctrl_->dead.load(std::memory_order_acquire) : 0;
    std::ptrdiff_t n = static_cast<std::ptrdiff_t>(live_) - dead + dead_removed_;
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  std::uint32_t used() const noexcept { return used_; }
  std::uint64_t version() const noexcept { return version_; }

  E& at(std::uint32_t i) const noexcept { return segs_[i]; }

  // -- Maintenance (owner, non-const operations) -----------------------------

  // Applies queued removals and, when nothing pins the table, destroys the
  // payloads removed meanwhile. The fast path is two relaxed loads.
  void maintain() noexcept {
    if (ctrl_ && ctrl_->head.load(std::memory_order_relaxed) != 0) [[unlikely]]
      drain();
    if (pending_head_ != npos) [[unlikely]]
      flush();
  }

  void pin() const noexcept { iterating_.fetch_add(1, std::memory_order_relaxed); }
  void unpin_const() const noexcept { iterating_.fetch_sub(1, std::memory_order_relaxed); }
  void unpin() noexcept {
    if (iterating_.fetch_sub(1, std::memory_order_relaxed) == 1) maintain();
  }

  // -- Lookup ----------------------------------------------------------------

  // The index of the live entry with this hash for which match(index, entry)
  // is true, or npos. match may run user code: when the table changed
  // meanwhile, the probe starts again (as CPython's dict lookup does).
  template <class F>
  std::uint32_t find(std::size_t hash, F&& match) const {
    return probe(hash, std::forward<F>(match)).first;
  }
  // The same, as the entry itself (null when absent).
  template <class F>
  const E* find_entry(std::size_t hash, F&& match) const {
    return probe(hash, std::forward<F>(match)).second;
  }

  // -- Insertion and removal (owner) -------------------------------------------

  ContainerControl* control() {
    if (!ctrl_) ctrl_ = control_create();
    return ctrl_;
  }

  // Appends a live entry for w (the table takes w's reference, also on
  // failure) with a payload built from args. Returns its index.
  template <class... Args>
  std::uint32_t insert(std::size_t hash, EntryWeak* w, Args&&... args) {
    struct Guard {
      EntryWeak* w;
      ~Guard() {
        if (w) {
          w->ctrl_state.fetch_or(kEntryOut, std::memory_order_acq_rel);
          weak_release(w);
        }
      }
    } guard{w};
    if (used_ == npos - 1) throw_length_error();
    if (used_ == segs_.capacity()) make_room();
    if ((filled_ + 1) * 3ULL > cap_ * 2ULL) rebuild_index(live_ + 1);
    const std::uint32_t idx = used_;
    E& e = at(idx);
    if constexpr (kHasPayload) ::new (static_cast<void*>(&e.p.value)) Payload(std::forward<Args>(args)...);
    e.w = entry_word(w);
    e.side = w->side_table();
    if constexpr (kStoredHash) e.h.hash = hash;
    w->index = idx;
    guard.w = nullptr;
    ++used_;
    ++live_;
    ++version_;
    put_slot(hash, idx);
    return idx;
  }

  // Replaces the weakref of live entry idx (a WeakValueDictionary overwrite).
  void replace_weak(std::uint32_t idx, EntryWeak* w) noexcept {
    E& e = at(idx);
    EntryWeak* old = entry_weak(e.w);
    retire(old);
    w->index = idx;
    e.w = entry_word(w);
    e.side = w->side_table();
    ++version_;
    weak_release(old);
  }

  // Removes live entry idx. Its payload is destroyed now, or when the last
  // iteration ends; call maintain() (or return to a caller that does) after.
  void remove(std::uint32_t idx) noexcept {
    EntryWeak* w = entry_weak(at(idx).w);
    retire(w);
    unlink(idx);
    weak_release(w);
  }

  // Removes every entry.
  void clear() noexcept {
    if (!used_) return;
    for (std::uint32_t i = 0; i < used_; ++i) {
      E& e = at(i);
      if (!entry_live(e.w)) continue;
      EntryWeak* w = entry_weak(e.w);
      retire(w);
      weak_release(w);
      make_pending(i);
    }
    live_ = 0;
    filled_ = 0;
    for (std::uint32_t i = 0; i < cap_; ++i) slots_[i] = kEmpty;
    ++version_;
    if (!kHasPayload && !iterating()) {
      used_ = 0;
      release_storage();
    }
    maintain();
  }

  // -- Iteration ---------------------------------------------------------------

  // The first entry at or after pos whose referent is alive, locked into
  // `out`; npos at the end.
  template <class T>
  std::uint32_t next_live(std::uint32_t pos, Strong<T>& out) const noexcept {
    for (; pos < used_; ++pos) {
      EntryWord w = at(pos).w;
      if (!entry_live(w)) continue;
      out = entry_lock<T>(w, at(pos).side);
      if (out) return pos;
    }
    return npos;
  }

  // Calls f(index, entry) for every live entry (no locking).
  template <class F>
  void for_each_live(F&& f) const {
    for (std::uint32_t i = 0; i < used_; ++i)
      if (entry_live(at(i).w)) f(i, at(i));
  }

  // Collector support: f(entry word slot, entry) for live entries and
  // g(payload) for every payload alive (live or pending).
  template <class F, class G>
  void trace_entries(F&& f, G&& g) {
    for (std::uint32_t i = 0; i < used_; ++i) {
      E& e = at(i);
      if (entry_live(e.w)) f(e);
      if constexpr (kHasPayload)
        if (e.w) g(e.p.value);
    }
  }

 private:
  static constexpr std::uint32_t kEmpty = npos;
  static constexpr std::uint32_t kDummy = npos - 1;

  template <class F>
  std::pair<std::uint32_t, const E*> probe(std::size_t hash, F&& match) const {
    if (!cap_) return {npos, nullptr};
    for (;;) {
      const std::uint64_t v0 = version_;
      bool restart = false;
      for (std::size_t i = slot_of(hash);; i = (i + 1) & (cap_ - 1)) {
        const std::uint32_t s = slots_[i];
        if (s == kEmpty) return {npos, nullptr};
        if (s == kDummy) continue;
        const E& e = at(s);
        if constexpr (kStoredHash)
          if (e.h.hash != hash) continue;
        const bool yes = match(s, e);
        if (version_ != v0) {
          restart = true;
          break;
        }
        if (yes) return {s, &e};
      }
      if (!restart) return {npos, nullptr};
    }
  }

  std::size_t slot_of(std::size_t hash) const noexcept {
    return static_cast<std::size_t>((std::uint64_t{hash} * 0x9E3779B97F4A7C15ULL) >> shift_);
  }

  static std::size_t hash_of(const E& e) noexcept {
    if constexpr (kStoredHash)
      return e.h.hash;
    else
      return Traits::entry_hash(e);
  }

  void put_slot(std::size_t hash, std::uint32_t idx) noexcept {
    for (std::size_t i = slot_of(hash);; i = (i + 1) & (cap_ - 1)) {
      std::uint32_t& s = slots_[i];
      if (s == kEmpty) ++filled_;
      if (s == kEmpty || s == kDummy) {
        s = idx;
        return;
      }
    }
  }

  // The owner's side of the death race (see the top of this file).
  void retire(EntryWeak* w) noexcept {
    std::uintptr_t st = w->ctrl_state.fetch_or(kEntryOut, std::memory_order_acq_rel);
    if (!(st & kEntryDead)) return;  // its callback will see kEntryOut
    unsigned spins = 0;
    while (!(st & kEntryCounted)) {  // the callback is between claim and count
      spin_pause(spins);
      st = w->ctrl_state.load(std::memory_order_acquire);
    }
    ++dead_removed_;
  }

  // Takes live entry idx out of the index (its weakref is dealt with by the
  // caller) and queues its payload for destruction.
  void unlink(std::uint32_t idx) noexcept {
    const std::size_t hash = hash_of(at(idx));
    for (std::size_t i = slot_of(hash);; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i] == idx) {
        slots_[i] = kDummy;
        break;
      }
    }
    --live_;
    ++version_;
    make_pending(idx);
  }

  void make_pending(std::uint32_t idx) noexcept {
    E& e = at(idx);
    if constexpr (kHasPayload) {
      e.w = (static_cast<EntryWord>(pending_head_) << 1) | 1;
      pending_head_ = idx;
    } else {
      e.w = 0;  // nothing to destroy: free at once
      if (!iterating()) trim();
    }
  }

  // Gives back the free entries at the end (pop() and popitem() scan from
  // there); only while nothing pins the table.
  void trim() noexcept {
    while (used_ && at(used_ - 1).w == 0) --used_;
  }

  void drain() noexcept {
    EntryWeak* w = control_take(ctrl_);
    while (w) {
      EntryWeak* next = w->queue_next();
      ctrl_->dead.fetch_sub(1, std::memory_order_relaxed);
      if (w->ctrl_state.fetch_or(kEntryOut, std::memory_order_acq_rel) & kEntryOut) {
        --dead_removed_;  // the owner removed this entry already
      } else {
        unlink(w->index);
        weak_release(w);  // the entry's reference
      }
      weak_release(w);  // the queue's reference
      w = next;
    }
  }

  // Destroys the payloads of removed entries while nothing pins the table.
  // The table is pinned meanwhile: destructors are user code and may use it.
  void flush() noexcept {
    if (iterating()) return;
    if constexpr (kHasPayload) {
      pin();
      while (pending_head_ != npos) {
        const std::uint32_t idx = pending_head_;
        E& e = at(idx);
        pending_head_ = static_cast<std::uint32_t>(e.w >> 1);
        e.w = 0;
        e.p.value.~Payload();
      }
      iterating_.fetch_sub(1, std::memory_order_relaxed);
      if (iterating()) return;  // an iteration started by a destructor
    }
    trim();
    if (!used_ && !live_) release_storage();
  }

  void release_storage() noexcept {
    segs_.shrink_to(0);
    ::operator delete(slots_);
    slots_ = nullptr;
    cap_ = filled_ = 0;
    shift_ = 64;
  }

  // Before appending to full segments: compact when at least a quarter of
  // the entries are free and nothing pins the table, else add a segment.
  void make_room() {
    const std::uint32_t holes = used_ - live_;
    if (!iterating() && pending_head_ == npos && holes && holes * 4ULL >= used_) {
      compact();
      if (used_ < segs_.capacity()) return;
    }
    segs_.grow();
  }

  void compact() noexcept {
    static_assert(!kHasPayload || std::is_nothrow_move_constructible_v<Payload>,
                  "weak containers need nothrow-movable keys and values");
    std::uint32_t dst = 0;
    for (std::uint32_t src = 0; src < used_; ++src) {
      E& e = at(src);
      if (!entry_live(e.w)) continue;
      if (src != dst) {
        E& d = at(dst);
        d.w = e.w;
        d.side = e.side;
        if constexpr (kStoredHash) d.h.hash = e.h.hash;
        if constexpr (kHasPayload) {
          ::new (static_cast<void*>(&d.p.value)) Payload(std::move(e.p.value));
          e.p.value.~Payload();
        }
        e.w = 0;
      }
      entry_weak(at(dst).w)->index = dst;
      ++dst;
    }
    used_ = dst;
    ++version_;
    if (cap_) rebuild_slots(cap_);
  }

  // The index doubles when 2/3 full: after a rebuild it is at most half
  // full, so its load stays between 1/3 and 2/3 (CPython's dict keeps 2/3).
  void rebuild_index(std::uint32_t live) {
    std::uint64_t want = std::max<std::uint64_t>(8, std::uint64_t{live} * 2);
    std::uint32_t cap = static_cast<std::uint32_t>(std::bit_ceil(want));
    // Same size when dummies, not entries, filled the table.
    if (cap_ && cap < cap_) cap = cap_;
    auto* fresh = static_cast<std::uint32_t*>(::operator new(sizeof(std::uint32_t) * cap));
    ::operator delete(slots_);
    slots_ = fresh;
    rebuild_slots(cap);
  }

  void rebuild_slots(std::uint32_t cap) noexcept {
    cap_ = cap;
    shift_ = 64 - static_cast<std::uint32_t>(std::countr_zero(cap));
    filled_ = 0;
    for (std::uint32_t i = 0; i < cap_; ++i) slots_[i] = kEmpty;
    for (std::uint32_t i = 0; i < used_; ++i)
      if (entry_live(at(i).w)) put_slot(hash_of(at(i)), i);
  }

  void destroy() noexcept {
    if (ctrl_) {
      for (EntryWeak* w = control_close(ctrl_); w;) {
        EntryWeak* next = w->queue_next();
        weak_release(w);
        w = next;
      }
    }
    for (std::uint32_t i = 0; i < used_; ++i) {
      E& e = at(i);
      if (entry_live(e.w)) {
        EntryWeak* w = entry_weak(e.w);
        w->ctrl_state.fetch_or(kEntryOut, std::memory_order_acq_rel);
        weak_release(w);
      }
      if constexpr (kHasPayload)
        if (e.w) e.p.value.~Payload();
      e.w = 0;
    }
    used_ = live_ = 0;
    release_storage();
    if (ctrl_) control_release(std::exchange(ctrl_, nullptr));
  }

  ContainerControl* ctrl_ = nullptr;
  std::uint32_t* slots_ = nullptr;  // entry index, kEmpty or kDummy
  std::uint32_t shift_ = 64;        // 64 - log2(cap_)
  std::uint32_t cap_ = 0;           // power of two, or 0
  std::uint32_t filled_ = 0;        // slots not kEmpty
  std::uint32_t used_ = 0;          // entries appended (live, pending or free)
  std::uint32_t live_ = 0;          // entries in the index
  std::uint32_t pending_head_ = npos;
  std::ptrdiff_t dead_removed_ = 0;
  std::uint64_t version_ = 0;       // bumped by every structural change
  mutable std::atomic<std::uint32_t> iterating_{0};  // iterations + pins
  Segments<E> segs_;
};

// ---------------------------------------------------------------------------
// Weakly held keys (WeakKeyDictionary keys, WeakSet elements) under a policy.

template <class X>
concept strong_like = is_strong<std::remove_cvref_t<X>>::value;

// A range of elements convertible to E (constructors, update, set algebra).
template <class R, class E>
concept range_of = std::ranges::input_range<R> &&
                   std::is_convertible_v<std::ranges::range_reference_t<R>, E>;

// A range of (key, value) pairs (std::map, a vector of pairs, a dictionary).
template <class R, class K, class V>
concept pair_range_of =
    std::ranges::input_range<R> && requires(std::ranges::range_reference_t<R> p) {
      { std::get<0>(p) } -> std::convertible_to<K>;
      { std::get<1>(p) } -> std::convertible_to<V>;
    };

template <class T, class Policy>
struct WeakKeyOps;

template <class T>
struct WeakKeyOps<T, by_identity> {
  static constexpr bool kIdentity = true;
  static constexpr bool kStoredHash = false;

  template <class E>
  static std::size_t entry_hash(const E& e) noexcept {
    return identity_hash(e.side->object);
  }
  static std::size_t hash(const Strong<T>& x) noexcept {
    return identity_hash(StrongAccess::header(x));
  }
  // The live entry for x, or npos. No user code runs.
  template <class Table>
  static std::uint32_t find(const Table& t, const Strong<T>& x, Strong<T>&) {
    ObjectHeader* h = StrongAccess::header(x);
    if (!h) return Table::npos;
    const SideTable* s = side_if_any(h);
    if (!s) return Table::npos;  // no weakref at all: in no container
    return t.find(identity_hash(h),
                  [s](std::uint32_t, const auto& e) noexcept { return e.side == s; });
  }
  static bool equal(const Strong<T>& a, const Strong<T>& b) noexcept { return a == b; }
};

template <class T, class H, class Eq>
struct WeakKeyOps<T, by_value<H, Eq>> {
  static_assert(!std::is_void_v<T>, "by_value needs the key's type");
  using Hash = std::conditional_t<std::is_void_v<H>, std::hash<T>, H>;
  using KeyEqual = std::conditional_t<std::is_void_v<Eq>, std::equal_to<T>, Eq>;
  static constexpr bool kIdentity = false;
  static constexpr bool kStoredHash = true;

  static std::size_t hash(const T& v) { return Hash{}(v); }
  static std::size_t hash(const Strong<T>& x) { return Hash{}(*x); }
  // The live entry whose referent equals v; `held` keeps that referent alive
  // for the caller. Candidates are locked for the comparison, which is user
  // code (it may even drop the last reference to other keys); the table's
  // find() starts again if the table changed meanwhile.
  template <class Table>
  static std::uint32_t find_value(const Table& t, std::size_t hash, const T& v, Strong<T>& held) {
    return t.find(hash, [&](std::uint32_t, const auto& e) {
      Strong<T> c = entry_lock<T>(e.w, e.side);
      if (!c || !KeyEqual{}(*c, v)) return false;
      held = std::move(c);
      return true;
    });
  }
  template <class Table>
  static std::uint32_t find(const Table& t, const Strong<T>& x, Strong<T>& held) {
    if (!x) return Table::npos;
    return find_value(t, hash(x), *x, held);
  }
  static bool equal(const Strong<T>& a, const Strong<T>& b) {
    return a == b || (a && b && KeyEqual{}(*a, *b));
  }
};

// Registration of one iteration (an iterator that has not reached its end).
// Non-const iterations apply pending removals when the last one ends.
template <class Table, bool Const>
class IterationGuard {
 public:
  IterationGuard() noexcept = default;
  explicit IterationGuard(const Table* t) noexcept : t_(t) {
    if (t_) t_->pin();
  }
  IterationGuard(const IterationGuard& o) noexcept : IterationGuard(o.t_) {}
  IterationGuard(IterationGuard&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  IterationGuard& operator=(IterationGuard o) noexcept {
    std::swap(t_, o.t_);
    return *this;
  }
  ~IterationGuard() { reset(); }
  void reset() noexcept {
    if (!t_) return;
    const Table* t = std::exchange(t_, nullptr);
    if constexpr (Const)
      t->unpin_const();
    else
      const_cast<Table*>(t)->unpin();
  }
  const Table* table() const noexcept { return t_; }

 private:
  const Table* t_ = nullptr;
};

}  // namespace weakref::detail
