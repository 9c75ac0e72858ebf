// WeakTable<Policy>: the hash table of the weak containers. Entries are
// appended in insertion order to Segments (segments.hpp) and found through an
// open-addressing index of entry positions; each live entry owns one
// EntryWeak to its referent (entry_weak.hpp) and, for the dictionaries, a
// payload (WeakValueDictionary: its key; WeakKeyDictionary: its value).
//
// The policy (weak_policy.hpp) supplies `using Payload` (void for none),
// `kStoredHash` and, when the hash is not stored, `static std::size_t
// entry_hash(const E&)` that recomputes it from the payload or the
// referent's identity.
//
// Which state belongs to whom
//  * The table (entries, index, counters) belongs to the container object.
//    Non-const operations first apply the queued removals (maintain(): the
//    drain of deaths queued by entry callbacks, then the payloads removed
//    meanwhile); its fast path is two relaxed loads. Const operations never
//    modify the table: they treat entries whose referent is dead as absent,
//    and size() subtracts the claimed-but-not-drained entries. They modify
//    only the atomic iteration counter, so several threads may run them at
//    once.
//  * size() = live - queued_in - in_flight is exact on the owner's thread
//    whenever no death of a referent is in flight on another thread (one
//    that is may be counted or not: docs/threads.md), and once the release
//    that killed a referent has returned. queued_in is the claims pushed
//    and not yet taken by the drain whose entries are still in the table:
//    all of them (control_queued, entry_weak.hpp: one load of the queue's
//    head, which counts them) while dead_settled is 0, else a walk of the
//    queue that skips those marked kEntryOut (control_queued_in).
//    dead_settled (the owner's) counts the entries the owner removed itself
//    after their callback had claimed them (entry_retire), until the drain
//    takes their weakref: their claim may be queued already or not yet (a
//    lone death queues after ~T), and the owner does not wait. in_flight
//    counts the claims this thread's deaths hold during ~T, not pushed yet
//    (entry_deaths_in_flight). So the owner's side costs no
//    read-modify-write on the shared block.
//
// Positions and payload lifetime
//  * Entries are only ever appended (at used_). The table never moves or
//    destroys an entry while an iteration or a payload destructor is running
//    (iterating_ > 0, "pinned"). Removed payloads wait on the pending list and
//    are destroyed when the table is unpinned, so references handed out by
//    an iteration stay valid until it ends, and user code (destructors, Hash,
//    KeyEqual, callbacks) never sees a half-updated table. Hence an
//    iteration that stops at the used_ it saw when it began (next_live's
//    `end`) sees each entry present then at most once and none added after.
//  * The index table and the segments are allocated by the owner; segments
//    are never reallocated, so entries do not move when the table grows.
//    Entries move only when an insertion compacts the table (a quarter or
//    more of it free) and free entries at the end are given back, both only
//    while nothing pins the table.
//  * Insertion (insert, replace_weak) and removal (remove, clear, drain) are
//    written here once; the containers call them.
//
// The index and the write path (issue 11, phase 2)
//  * The index is linear probing over entry positions, at load 1/3..2/3. A
//    removal empties its slot by backward-shift deletion (unlink), so no
//    dummy slots pile up and an insert + erase cycle never rebuilds the
//    index; kDummy remains only as a value the probes skip.
//  * Entry weakrefs are recycled: one that the owner took out while nobody
//    else held it (drop_weak, entry_weak.hpp) or that a death cleared and
//    the drain released last (drop_cleared) is kept as a spare (up to
//    kMaxSpares, with its control reference) and relinked by the next
//    insertion instead of a new allocation.
//  * An emptied table keeps its first segment and a small index, so a cache
//    whose entries come and go one at a time allocates nothing per entry.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

#include "../strong.hpp"
#include "config.hpp"
#include "entry_weak.hpp"
#include "segments.hpp"
#include "weak_object.hpp"

namespace weakref::detail {

[[noreturn]] WEAKREF_API void throw_length_error();

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

template <class Policy>
class WeakTable {
 public:
  using Payload = typename Policy::Payload;
  static constexpr bool kHasPayload = !std::is_void_v<Payload>;
  static constexpr bool kStoredHash = Policy::kStoredHash;
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
    std::swap(dead_settled_, o.dead_settled_);
    std::swap(spare_, o.spare_);
    std::swap(spares_, o.spares_);
    segs_.swap(o.segs_);
    ++version_;
    ++o.version_;
  }

  bool iterating() const noexcept { return iterating_.load(std::memory_order_relaxed) != 0; }

  // -- Counts ---------------------------------------------------------------

  // Entries whose referent's death has not been queued yet.
  std::size_t size() const noexcept {
    return ctrl_ ? entries_unclaimed(live_, ctrl_, dead_settled_) : live_;
  }
  std::uint32_t used() const noexcept { return used_; }
  std::uint64_t version() const noexcept { return version_; }

  E& at(std::uint32_t i) const noexcept { return segs_[i]; }
  // The hash of entry i (stored, or recomputed by the policy).
  std::size_t hash_at(std::uint32_t i) const noexcept { return hash_of(at(i)); }

  // -- Maintenance (owner, non-const operations) -----------------------------

  // Applies queued removals and, when nothing pins the table, destroys the
  // payloads removed meanwhile. The fast path is two relaxed loads.
  void maintain() noexcept {
    if (ctrl_ && ctrl_->head.load(std::memory_order_relaxed) != 0) [[unlikely]]
      drain();
    if (pending_head_ != npos) [[unlikely]]
      flush();
  }

  // (Atomic read-modify-writes even in a single-threaded process: a plain
  // load and store here made the observer-churn benchmark's notify loop
  // slower, though this runs once per iteration; docs/performance.md, "The
  // write path".)
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

  // A spare entry weakref (entry_attach's `spare`), or null.
  EntryWeak* take_spare() noexcept {
    EntryWeak* w = spare_;
    if (w) {
      spare_ = static_cast<EntryWeak*>(std::exchange(w->next, nullptr));
      --spares_;
    }
    return w;
  }

  // Appends a live entry for w (the table takes w's reference, also on
  // failure) with a payload built from args. Returns its index.
  template <class... Args>
  std::uint32_t insert(std::size_t hash, EntryWeak* w, Args&&... args) {
    struct Guard {
      EntryWeak* w;
      ~Guard() {
        if (w) {
          entry_mark_out(w);
          weak_release(w);
        }
      }
    } guard{w};
    if (used_ == npos - 1) throw_length_error();
    if (used_ == segs_.capacity()) make_room();
    if ((filled_ + 1) * 3ULL > cap_ * 2ULL) rebuild_index(live_ + 1);
    const std::uint32_t idx = used_;
    E& e = at(idx);
    if constexpr (kHasPayload)
      ::new (static_cast<void*>(&e.p.value)) Payload(std::forward<Args>(args)...);
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
    w->index = idx;
    e.w = entry_word(w);
    e.side = w->side_table();
    ++version_;
    drop_weak(old);
  }

  // Removes live entry idx. Its payload is destroyed now, or when the last
  // iteration ends; call maintain() (or return to a caller that does) after.
  void remove(std::uint32_t idx) noexcept {
    EntryWeak* w = entry_weak(at(idx).w);
    unlink(idx);  // (while w, linked or with a unit, keeps the side table, which it may read)
    drop_weak(w);
  }

  // Removes every entry.
  void clear() noexcept {
    if (!used_) return;
    for (std::uint32_t i = 0; i < used_; ++i) {
      E& e = at(i);
      if (!entry_live(e.w)) continue;
      EntryWeak* w = entry_weak(e.w);
      if (!retire(w)) weak_release(w);  // (else the queue's now)
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

  // The first entry in [pos, end) whose referent is alive, locked into
  // `out`; npos if none. An iteration passes the used() it saw when it
  // began as `end` (see the top of this file).
  template <class T>
  std::uint32_t next_live(std::uint32_t pos, std::uint32_t end, Strong<T>& out) const noexcept {
    for (; pos < end; ++pos) {
      EntryWord w = at(pos).w;
      if (!entry_live(w)) continue;
      if (Strong<T> s = entry_lock<T>(w, at(pos).side)) {
        out = std::move(s);
        return pos;
      }
    }
    return npos;
  }

  // Calls f(index, entry) for every live entry (no locking).
  template <class F>
  void for_each_live(F&& f) const {
    for (std::uint32_t i = 0; i < used_; ++i)
      if (entry_live(at(i).w)) f(i, at(i));
  }

  // Collector support: f(entry) for live entries and g(payload) for every
  // payload alive (live or pending); a live entry's f comes right before the
  // g of its payload (WeakContainer::trace pairs them).
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
        if (yes) {
          hit_slot_.store(static_cast<std::uint32_t>(i), std::memory_order_relaxed);
          return {s, &e};
        }
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
      return Policy::entry_hash(e);
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

  // The owner takes entry w out (entry_weak.hpp settles the race with its
  // callback). True when the callback had claimed it: the entry's reference
  // is then the death queue's, which the drain releases.
  bool retire(EntryWeak* w) noexcept {
    if (!entry_retire(w)) return false;
    ++dead_settled_;
    return true;
  }

  // The owner's release of the weakref of an entry it has taken out. When
  // the entry alone holds it and it is still linked (its referent has not
  // begun clearing it), it leaves the referent's list under the side lock:
  // no callback can claim it after that, so the death race needs no
  // settling, and it becomes a spare. Else the race is settled (retire)
  // and the entry's reference dropped, unless its callback has it.
  void drop_weak(EntryWeak* w) noexcept {
    if (weak_detach_sole(w)) {
      keep_spare(w);
      return;
    }
    if (!retire(w)) weak_release(w);
  }

  // w is out of its referent's list for good, held by the table alone and
  // holds no unit of its side table's count: its memory is kept for the next
  // insertion (entry_attach's `spare`), up to kMaxSpares of them.
  void keep_spare(EntryWeak* w) noexcept {
    if (spares_ >= kMaxSpares) {
      delete w;
      return;
    }
    entry_reset(w);
    w->next = spare_;
    spare_ = w;
    ++spares_;
  }

  // Drops the queue's reference (the entry's, handed over by its callback)
  // on w, a drained weakref cleared by its referent's death: w becomes a
  // spare when nobody else holds it (weak_sole_cleared: a cleared weakref
  // gains no holder), after dropping the unit of SideTable::weak that the
  // death gave it (weak_object.hpp).
  void drop_cleared(EntryWeak* w) noexcept {
    if (spares_ < kMaxSpares && weak_sole_cleared(w)) {
      const std::uintptr_t v = w->side.load(std::memory_order_relaxed);
      side_release(w->side_table(), (v & kSideExtraUnit) ? 2 : 1);
      keep_spare(w);
      return;
    }
    weak_release(w);
  }

  // Takes live entry idx out of the index (its weakref is dealt with by the
  // caller) and queues its payload for destruction.
  // The slot is emptied by backward-shift deletion (Knuth's Algorithm R for
  // linear probing): the entries after it in its cluster that may live
  // there move back, so removals leave no dummies and never make the index
  // rebuild itself (an insert + erase cycle otherwise filled it with dummies
  // and rebuilt it every few hundred steps).
  void unlink(std::uint32_t idx) noexcept {
    E& e = at(idx);
    const std::size_t mask = cap_ - 1;
    // The slot that the lookup before found, when the owner removes an
    // entry (not when the drain does: its lookup was of another key).
    std::size_t i = hit_slot_.load(std::memory_order_relaxed);
    if (i >= cap_ || slots_[i] != idx) {
      i = slot_of(hash_of(e));
      while (slots_[i] != idx) i = (i + 1) & mask;
    }
    for (std::size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
      const std::uint32_t s = slots_[j];
      if (s == kEmpty) break;
      if (s == kDummy) continue;
      // s (at j) may move to i when i is on its probe path: home .. j.
      const std::size_t home = slot_of(hash_of(at(s)));
      if (((i - home) & mask) <= ((j - home) & mask)) {
        slots_[i] = s;
        i = j;
      }
    }
    slots_[i] = kEmpty;
    --filled_;
    --live_;
    ++version_;
    make_pending(idx, e);
  }

  void make_pending(std::uint32_t idx) noexcept { make_pending(idx, at(idx)); }
  void make_pending(std::uint32_t idx, E& e) noexcept {
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

  [[gnu::noinline]] void drain() noexcept {
    EntryWeak* w = control_take(ctrl_);
    while (w) {
      EntryWeak* next = w->queue_next();
      // Only the owner sets kEntryOut, and the callback is done with
      // ctrl_state once it has pushed w: a load. An entry the owner removed
      // already left the table then (retire counted its claim as settled).
      if (!(w->ctrl_state.load(std::memory_order_relaxed) & kEntryOut))
        unlink(w->index);
      else
        --dead_settled_;
      drop_cleared(w);
      w = next;
    }
  }

  // Destroys the payloads of removed entries while nothing pins the table.
  // The table is pinned meanwhile: destructors are user code and may use it.
  [[gnu::noinline]] void flush() noexcept {
    if (iterating()) return;
    if constexpr (kHasPayload) {
      // A non-const call: no other thread uses the table meanwhile, so the
      // pin is a plain update (no read-modify-write).
      iterating_.store(1, std::memory_order_relaxed);
      while (pending_head_ != npos) {
        const std::uint32_t idx = pending_head_;
        E& e = at(idx);
        pending_head_ = static_cast<std::uint32_t>(e.w >> 1);
        e.w = 0;
        e.p.value.~Payload();
      }
      iterating_.store(iterating_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      if (iterating()) return;  // an iteration started by a destructor
    }
    trim();
    // An emptied table gives its memory back, but for the first segment and
    // an index of that size: a cache whose entries come and go one at a
    // time would otherwise allocate and free both at every insertion.
    if (!used_ && !live_ && (segs_.beyond_first() || cap_ > kSmallIndex)) release_storage();
  }

  static constexpr std::uint32_t kSmallIndex = 2 * Segments<E>::kFirst;

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
    while (EntryWeak* w = take_spare()) delete w;
    // The entries first: a claimed entry's weakref is held by the queue
    // only (its reference became the queue's), which the close releases.
    for (std::uint32_t i = 0; i < used_; ++i) {
      E& e = at(i);
      if (entry_live(e.w)) {
        EntryWeak* w = entry_weak(e.w);
        // Claimed: the reference is the queue's (released below, or by the
        // callback, which finds the queue closed).
        if (!(entry_mark_out(w) & kEntryDead)) weak_release(w);
      }
      if constexpr (kHasPayload)
        if (e.w) e.p.value.~Payload();
      e.w = 0;
    }
    if (ctrl_) {
      for (EntryWeak* w = control_close(ctrl_); w;) {
        EntryWeak* next = w->queue_next();
        weak_release(w);
        w = next;
      }
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
  std::ptrdiff_t dead_settled_ = 0;  // claims of removed entries, not drained (size())
  static constexpr std::uint32_t kMaxSpares = 8;
  EntryWeak* spare_ = nullptr;  // spare entry weakrefs, linked by `next`
  std::uint32_t spares_ = 0;
  std::uint64_t version_ = 0;                        // bumped by every structural change
  mutable std::atomic<std::uint32_t> iterating_{0};  // iterations + pins
  // The index slot of the last entry a lookup found (a hint for unlink;
  // const lookups on several threads may write it).
  mutable std::atomic<std::uint32_t> hit_slot_{0};
  Segments<E> segs_;
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
