// One weak reference object: what a Python weakref / proxy / WeakMethod /
// finalize's internal ref / container entry ref is. Public handles (ref<T>,
// proxy<T>, WeakMethod, ...) are counted pointers to a WeakObject, so copies
// of a handle are the same weakref object.
//
// Ownership and locking
//  * WeakObject::refs counts the handles and internal holders (a finalizer's
//    registration, a container entry, a pending callback batch, and the
//    side table's pin, below). The last release unlinks the object from its
//    referent's list and deletes it (running the callback's destructor
//    outside any lock).
//  * The pin: the object's basic ref (kind ref, no callback) holds one
//    extra reference, owned by its side table, from its creation until its
//    referent dies (kWeakPinned in `state`; SideTable::head carries
//    kHeadPinned while it is the live basic ref at the head). Its count
//    therefore never reaches zero while the referent lives, so ref(obj) may
//    take it with one increment and no lock (basic_ref): a maker holds a
//    strong reference, so the referent cannot die under it, and nothing else
//    drops the pin. What counts or lists weakrefs (getweakrefcount,
//    getweakrefs, the collector's "held only by garbage" test) does not count
//    the pin: weak_holders(). A basic ref therefore lives (40 bytes) until
//    its referent dies, even when no handle holds it.
//  * When the collector clears a pinned basic ref while its referent lives
//    (the ref was held only by garbage), it keeps its pin and stays in the
//    list, cleared, after every live weakref (a "retired" basic ref: a maker
//    that read `head` before the clear may still be incrementing it). List
//    walkers skip cleared entries; the referent's death drops the pin. A
//    maker racing with that clear is settled by kRetiring: the collector
//    marks the ref, then reads its count; the maker increments the count,
//    then reads the mark (seq_cst both), so either the collector sees the
//    new holder and leaves the ref alone, or the maker backs off to the slow
//    path (clear_garbage_weak, basic_ref).
//  * Units of SideTable::weak (who owns which; the side table is freed when
//    the count reaches 0). The object owns one while it lives. Every
//    WeakObject owns one, so the side table outlives it and `side` is always
//    safe to read, except the *sharers*: the live pinned basic ref, and a
//    linked, uncleared container entry weakref (shares_unit).
//    A sharer cannot outlive the object's unit without being
//    cleared first, so it shares that unit: making or linking one costs no
//    count update, and neither does unlinking an entry weakref (its
//    owner's weak_detach_sole, its last release). When a sharer leaves its
//    list otherwise, it gets a unit of its own before anybody can see it
//    cleared (a release that sees the cleared bit drops one):
//     - the referent's death: the pinned basic ref takes the object's unit
//       over (no count update: the death holds its pin until ~T has run);
//       so does a lone entry weakref whose entry the death claimed (the
//       death holds the entry's reference until it queues it, after ~T:
//       die_with_one_entry); every other sharer (and a lone entry weakref
//       whose owner won the claim) gets one, in one fetch_add under the
//       side lock, and the death drops the object's unit after ~T (~T may
//       read the side table: self());
//     - the collector clearing them (clear_weakrefs, clear_garbage_weak)
//       while the object lives: one fetch_add each time.
//    So a side table whose count is 1 holds no weakref but perhaps sharers.
//    The quiet death (die_with_weakrefs) frees it with no lock and no RMW
//    when it also finds `head` saying that the list is empty or holds the
//    pinned basic ref alone, with the side lock free (`head` 0, or that ref
//    tagged kHeadPinned and nothing else), that ref held only by its pin.
//    An entry weakref's unlinker (the owner's weak_detach_sole, a last
//    release, the collector) gives up no unit, so the count cannot tell a
//    death that the unlinker is still inside the side lock; `head` does:
//    the lock is its bit 2 (object.hpp), and the unlock, the unlinker's last
//    access to the side table, is a store of `head` (a one-swap unlink is a
//    single compare-and-swap of it). Anyone else either links (with a strong
//    reference: before the death) or unlinks a weakref that holds a unit
//    until after its unlock; so a death that reads the count 1 and then such
//    a `head` (acquire both) comes after every access to the side table but
//    its own (the count it read is the drop of the last unit, or no unit was
//    ever added), and nobody can lock it any more.
//  * Memory: the first weakref of an object made by ref, proxy, WeakMethod
//    or finalize shares one block with the side table (kInBlock, in front:
//    weak_memory). Its destruction leaves the memory to the side table,
//    which outlives it (above), unless its side table was never published
//    (another thread's came first): then it frees the block (weak_free).
//  * Bit 0 of `side` marks a cleared weakref: set when its referent died or
//    was found garbage, or when the collector found the weakref itself
//    garbage (its referent may then live on). A cleared weakref never locks
//    again. `side` is written only under the side lock once the weakref is
//    linked, and not at all once it is cleared, but for bit 1
//    (kSideExtraUnit): a death that claimed a weakref (not a sharer) for its
//    callback may, before releasing it, hand it the object's unit of
//    SideTable::weak too (one count update less), which its last release
//    then drops. A cleared former sharer holds exactly one unit. A
//    finalizer that ran or was detached before its referent died leaves the
//    list without being cleared (unlink_weak).
//  * prev/next/linked/lent and the pin belong to the side lock. Once a
//    WeakObject has been cleared (unlinked by the referent's death), `next`
//    is reused as the link of a callback batch (CallbackBatch) or of the
//    dying thread's list of pins to drop, owned by the dying thread.
//  * The death's borrow. A death that finds one weakref with a callback in
//    its referent's list (die_with_one_weakref, the usual case) runs the
//    callback without taking a reference to it, as CPython's
//    PyObject_ClearWeakRefs does (it checks that the weakref's count is not
//    0, under the side lock here, and borrows it): it sets kBorrowed (under
//    the lock, before the cleared bit), runs the callback and ~T, gives the
//    weakref the object's unit of SideTable::weak (kSideExtraUnit) and
//    marks it done (kSideDeathDone), both in one release store of `side`
//    (which nobody else writes once the weakref is cleared; `state` is no
//    place for it: a ReferenceQueue's consumer may be setting kCallableGone
//    there by then), its last access to the weakref. A last release that
//    finds kBorrowed without kSideDeathDone (weak_release_last; acquire
//    loads) frees nothing: it gives its reference to the death
//    (owe_to_death), which releases it when done. On the death's own
//    thread (a callback or ~T that drops the last handle) a thread-local
//    list of the deaths in progress finds it; from another thread it goes on
//    a global list of owed releases, and the two sides settle through an
//    asymmetric store-buffering pair (fork_gate.hpp: light_fenced_store,
//    heavy_fence): the death stores kSideDeathDone and then reads whether
//    any release is owed (a load of a global), the other thread stores its
//    owed release and then reads kSideDeathDone; one of the two sees the
//    other and settles it. So a weakref whose callback ran costs its death no
//    count update: a death with threads saves two RMWs (measured: make +
//    callback ref + death 51.6 -> 38.3 ns), and a release during the window
//    costs its thread a short wait for the death and then, if the death
//    is still running, a membarrier (a rare race), or nothing (its own
//    thread). Nobody frees a borrowed weakref before kSideDeathDone: a
//    release handed to the death keeps `refs` at 1 or more until the death
//    drops it.
//  * A callback runs at most once: only the batch that cleared the object
//    (or the death that borrowed it) may run it. Its callable is destroyed
//    right after it ran (with no lock held: it is user code), or with the
//    weakref object if it never runs, so what it captured is released at
//    the referent's death as in CPython (which clears wr_callback), not
//    when the last handle goes.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "atomics.hpp"
#include "config.hpp"
#include "object.hpp"
#include "thread_check.hpp"

namespace weakref::detail {

enum class WeakKind : std::uint8_t {
  ref,        // weakref::ref
  proxy,      // weakref::proxy
  method,     // weakref::WeakMethod
  finalizer,  // the ref inside a weakref::finalize
  container,  // an entry of a weak container
};

// WeakObject::state bits.
inline constexpr std::uint8_t kWeakPinned = 1;    // the side table holds a
                                                  // reference (under the side
                                                  // lock; basic refs only)
inline constexpr std::uint8_t kCallableGone = 2;  // the callback's callable
                                                  // has been destroyed
inline constexpr std::uint8_t kInBlock = 4;       // allocated right after a
                                                  // side table (weak_memory)
inline constexpr std::uint8_t kRetiring = 8;      // the collector is clearing
                                                  // this pinned basic ref
                                                  // (clear_garbage_weak)
inline constexpr std::uint8_t kBorrowed = 32;     // a death runs the callback
                                                  // with no reference of its
                                                  // own (die_with_one_weakref;
                                                  // kSideDeathDone: done)

// WeakObject::side, low bits.
inline constexpr std::uintptr_t kSideCleared = 1;    // see below
inline constexpr std::uintptr_t kSideExtraUnit = 2;  // the weakref also holds
                                                     // the dead object's unit
                                                     // of SideTable::weak
inline constexpr std::uintptr_t kSideDeathDone = 4;  // the death that borrowed
                                                     // the weakref is done
                                                     // with it (kBorrowed)
inline constexpr std::uintptr_t kSideBits = 7;
static_assert(alignof(SideTable) >= 8, "three low bits of a SideTable* are free");

struct WEAKREF_API WeakObject {
  std::atomic<std::uintptr_t> side;  // SideTable* | kSideCleared, kSideExtraUnit, kSideDeathDone
  std::atomic<std::uint32_t> refs{1};
  const WeakKind kind;
  const bool has_callback;
  bool linked : 1 = false;             // in side's list (under side lock)
  bool lent : 1 = false;               // getweakrefs took a reference on it
                                       // while linked (SideTable::head; under
                                       // side lock)
  std::atomic<std::uint8_t> state{0};  // kWeakPinned, kCallableGone, ...
  WeakObject* prev = nullptr;
  WeakObject* next = nullptr;

  WeakObject(WeakKind k, bool cb) noexcept : side(0), kind(k), has_callback(cb) {}
  // A weakref made linked, with its fields' final values (a first basic
  // ref: src/weak_object.cpp, first_basic).
  WeakObject(WeakKind k, std::uintptr_t s, std::uint32_t n, std::uint8_t st) noexcept
      : side(s), refs(n), kind(k), has_callback(false), linked(true), state(st) {}
  WeakObject(const WeakObject&) = delete;
  WeakObject& operator=(const WeakObject&) = delete;
  virtual ~WeakObject();
  // From the library's small-block allocator (src/alloc.cpp); the sized
  // delete gets the dynamic size through the virtual destructor.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;
  // Runs the callback. Only called by a CallbackBatch or a death that
  // borrows the weakref (see the top), at most once.
  virtual void invoke() {}

  SideTable* side_table() const noexcept {
    return reinterpret_cast<SideTable*>(side.load(std::memory_order_acquire) & ~kSideBits);
  }
  bool cleared() const noexcept { return side.load(std::memory_order_acquire) & 1; }
  bool pinned() const noexcept { return state.load(std::memory_order_relaxed) & kWeakPinned; }
};
static_assert(alignof(WeakObject) > kHeadBits, "SideTable::head tags a WeakObject* (object.hpp)");

// weak_release()'s last release: unlinks w if needed and deletes it.
// `counted`: the caller's reference is still in `refs` (weak_sole_cleared
// decided it without a decrement); else the decrement brought it to 0. While
// a death borrows w (kBorrowed without kSideDeathDone: see "The death's borrow"
// above), the release is handed to that death instead (w's reference is
// given back to it first, when not counted).
WEAKREF_API void weak_release_last(WeakObject* w, bool counted) noexcept;
// The caller's reference to a cleared weakref that nobody else holds is the
// last one for good: a cleared weakref gains a holder only from one that
// already holds it (a copy; getweakrefs, a death and the collector pass
// cleared weakrefs by; a retired basic ref is cleared but pinned, so a
// handle to it reads 2). Two loads then decide it, with no decrement, as
// libstdc++'s _M_release does when it reads both its counts at 1. (Acquire
// both: the bit, so that the reference a death or the collector took before
// setting it is seen; the count, so that every other holder's release
// happened before the deletion.) A handle released after its referent's
// death, the usual end of a callback ref or a finalizer, pays no RMW. (Not
// tested while the process is single-threaded: its decrement is a plain
// load and store then, and a handle released while its referent lives, the
// usual case, pays no extra test.)
[[gnu::always_inline]] inline bool weak_sole_cleared(const WeakObject* w) noexcept {
  return (w->side.load(std::memory_order_acquire) & 1) &&
         w->refs.load(std::memory_order_acquire) == 1;
}
[[gnu::always_inline]] inline void weak_release(WeakObject* w) noexcept {
  if (!single_threaded() && weak_sole_cleared(w)) [[unlikely]] {
    weak_release_last(w, true);
    return;
  }
  if (rmw_fetch_sub(w->refs, 1U, std::memory_order_acq_rel) == 1) [[unlikely]]
    weak_release_last(w, false);
}

// Callbacks gathered when referents die, run in order: newest first per
// referent, as CPython's PyObject_ClearWeakRefs / handle_weakrefs do. Each
// entry holds one reference to its WeakObject.
class WEAKREF_API CallbackBatch {
 public:
  CallbackBatch() = default;
  CallbackBatch(const CallbackBatch&) = delete;
  CallbackBatch& operator=(const CallbackBatch&) = delete;
  ~CallbackBatch() { run(); }
  void push(WeakObject* w) noexcept;
  bool empty() const noexcept { return head_ == nullptr; }
  // Runs and releases every gathered callback. Exceptions go to the
  // unraisable hook; the remaining callbacks still run.
  void run() noexcept;
  // Releases the gathered weakrefs without running their callbacks.
  void drop() noexcept;
  // Calls f(WeakObject*) for each gathered weakref, in order.
  template <class F>
  void for_each(F&& f) const {
    for (WeakObject* w = head_; w; w = w->next) f(w);
  }
  // Releases, without running their callbacks, the gathered weakrefs for
  // which pred(WeakObject*) is true.
  template <class Pred>
  void drop_if(Pred&& pred) noexcept {
    WeakObject** link = &head_;
    tail_ = nullptr;
    while (WeakObject* w = *link) {
      if (pred(w)) {
        *link = w->next;
        w->next = nullptr;
        weak_release(w);
      } else {
        tail_ = w;
        link = &w->next;
      }
    }
  }

 private:
  WeakObject* head_ = nullptr;
  WeakObject* tail_ = nullptr;
};

// Whether w shares its referent's unit of SideTable::weak while it is linked
// and uncleared (see the top of this file): container entry weakrefs. (The
// live pinned basic ref shares it too, by its pin.)
inline bool shares_unit(const WeakObject* w) noexcept { return w->kind == WeakKind::container; }

inline void weak_acquire(WeakObject* w) noexcept {
  rmw_fetch_add(w->refs, 1U, std::memory_order_relaxed);
}
// +1 on w unless its last holder is already releasing it.
WEAKREF_API bool weak_try_acquire(WeakObject* w) noexcept;
// The holders of w that getweakrefcount and the collector count: its
// references but the side table's pin.
// (seq_cst: see clear_garbage_weak)
inline std::uint32_t weak_holders(const WeakObject* w) noexcept {
  return w->refs.load(std::memory_order_seq_cst) - (w->pinned() ? 1U : 0U);
}

// The referent with +1 strong count, or null when it is dead or the weakref
// was cleared. A cleared weakref never locks again, so that case is decided
// inline (a dead ref's r() costs one load, as weak_ptr::lock()'s does).
// weak_lock_side() gives the referent's side table instead, for a Strong
// that keeps its count there (StrongAccess::adopt(p, SideTable*): its
// release then does not read the referent's header).
WEAKREF_API SideTable* weak_lock_uncleared(const WeakObject* w) noexcept;
inline SideTable* weak_lock_side(const WeakObject* w) noexcept {
  if (w->side.load(std::memory_order_acquire) & 1) return nullptr;
  return weak_lock_uncleared(w);
}
inline ObjectHeader* weak_lock(const WeakObject* w) noexcept {
  SideTable* s = weak_lock_side(w);
  return s ? s->object : nullptr;
}
WEAKREF_API bool weak_alive(const WeakObject* w) noexcept;
// Referent identity, stable after death (hash of a ref).
inline std::uintptr_t weak_identity(const WeakObject* w) noexcept {
  return reinterpret_cast<std::uintptr_t>(w->side_table()->object);
}

// Reuses the basic (callback-less) ref or proxy of h, or makes one.
// Caller holds a strong reference to h. Returns with +1 for the caller.
WEAKREF_API WeakObject* basic_weak(ObjectHeader* h, WeakKind kind);

// basic_ref()'s back-off: drops the reference just taken on w (which the
// collector is retiring) and makes or finds the basic ref under the lock.
WEAKREF_API WeakObject* basic_ref_retiring(ObjectHeader* h, WeakObject* w);

// basic_ref()'s increment of the pinned basic ref w of h. Against a
// collector clearing w as garbage meanwhile: this increment and its
// kRetiring mark are each followed by a read of the other's word (seq_cst
// both), so it sees the increment (and leaves w alone) or this sees the mark
// (and takes the slow path: w stays pinned until h dies, so this release
// cannot free it).
// (A single-threaded process has no collector racing it: a plain
// increment.)
[[gnu::always_inline]] inline WeakObject* take_pinned(ObjectHeader* h, WeakObject* w) {
  if (single_threaded()) {
    w->refs.store(w->refs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return w;
  }
  w->refs.fetch_add(1U, std::memory_order_seq_cst);
  if (!(w->state.load(std::memory_order_seq_cst) & kRetiring)) [[likely]]
    return w;
  return basic_ref_retiring(h, w);
}

// basic_weak(h, WeakKind::ref), inline while h has a pinned basic ref: the
// pin keeps it alive while h lives, and the caller's strong reference keeps
// h alive, so one increment takes it (see the top of this file), and one
// load checks that the collector has not cleared it meanwhile.
[[gnu::always_inline]] inline WeakObject* basic_ref(ObjectHeader* h) {
  const HeaderWord x{h->word.load(std::memory_order_acquire)};
  if (x.has_side()) {
    SideTable* s = x.side();
    // Usually the basic ref sits right after the side table, in its block
    // (the first weakref of most objects is a ref): its address then needs
    // no load of `head`, which only confirms it (a predicted branch), so the
    // increment does not wait for that load.
    auto* in_block = reinterpret_cast<WeakObject*>(s + 1);
    const std::uintptr_t head = s->head.load(std::memory_order_acquire);
    if (head == (reinterpret_cast<std::uintptr_t>(in_block) | kHeadPinned)) [[likely]]
      return take_pinned(h, in_block);
    if (head & kHeadPinned) return take_pinned(h, reinterpret_cast<WeakObject*>(head & ~kHeadBits));
  }
  return basic_weak(h, WeakKind::ref);
}

// Memory for a new weakref object to h of `size` bytes (a WeakObject
// subclass). While h has no side table, it is the tail of a block whose
// front is room for h's side table (in_block): attach_weak then makes the
// side table there, and both are one allocation. The caller sets kInBlock
// in the new object's state when in_block; it gives the memory back with
// weak_memory_free if the construction fails.
struct WeakMemory {
  void* p;
  bool in_block;
};
WEAKREF_API WeakMemory weak_memory(ObjectHeader* h, std::size_t size, std::size_t align);
WEAKREF_API void weak_memory_free(WeakMemory m, std::size_t size) noexcept;
// Destroys and frees a weakref object that is not (or no longer) linked and
// that nobody holds, wherever its memory came from.
WEAKREF_API void weak_free(WeakObject* w) noexcept;

// Links a new WeakObject (with its references set, owned by the caller)
// into h's list, after the basic ref and proxy (so callbacks run newest
// first); the first weakref of h makes h's side table with w already in it
// (in the front of w's block when w has kInBlock). Returns w; on failure
// (no memory for the side table) frees w and throws.
WEAKREF_API WeakObject* attach_weak(ObjectHeader* h, WeakObject* w);

// A new W(args...) attached to h (weak_memory + attach_weak).
template <class W, class... A>
W* make_attached(ObjectHeader* h, A&&... args) {
  const WeakMemory m = weak_memory(h, sizeof(W), alignof(W));
  W* w;
  try {
    w = ::new (m.p) W(std::forward<A>(args)...);
  } catch (...) {
    weak_memory_free(m, sizeof(W));
    throw;
  }
  if (m.in_block) w->state.store(kInBlock, std::memory_order_relaxed);
  attach_weak(h, w);
  return w;
}
// For a weakref object that the caller alone holds (one reference) and that
// is still linked (not cleared), under its side table's lock:
//  * weak_detach_sole takes it out of its referent's list for good (and
//    drops its unit of SideTable::weak, unless it shared the object's): no
//    callback can run for it any more, and the caller may reuse its memory
//    (a weak container's removed entry); it reads nothing of the side table
//    after releasing the lock;
//  * weak_renew moves it to where attach_weak would link a new weakref (the
//    newest, after the basic ref and proxy): what a new weakref in its place
//    would be, for a container entry set again to the same referent.
// False, w untouched, when w is cleared, unlinked or held by anyone else.
WEAKREF_API bool weak_detach_sole(WeakObject* w) noexcept;
WEAKREF_API bool weak_renew(WeakObject* w) noexcept;
// Takes w out of its referent's list without clearing it (a finalizer that
// ran or was detached before its referent died: getweakrefcount no longer
// counts it).
WEAKREF_API void unlink_weak(WeakObject* w) noexcept;

// The collector's clear of a garbage object's weakrefs: marks every weakref
// of the object cleared, unlinks them all, and pushes those with callbacks
// (still held by someone) into `batch`. `skip` filters weakrefs whose
// callback must be dropped (the collector's rule for weakrefs that are
// garbage themselves).
WEAKREF_API void clear_weakrefs(SideTable* s, CallbackBatch& batch,
                                bool (*skip)(WeakObject*, void*) = nullptr,
                                void* ctx = nullptr) noexcept;
// The collector's clear of a weakref that is garbage itself (every holder
// but `holders` handles of the garbage and its own batch's reference is
// gone), on its own, without callback. False, w untouched, when it finds w
// held by someone else after all (a basic_ref() racing with it).
WEAKREF_API bool clear_garbage_weak(WeakObject* w, std::uint32_t holders) noexcept;
// Steps 4-6 of a death (src/object.cpp) for an object with side table s:
// clears its weakrefs, runs the callbacks, destroys the object, releases s.
WEAKREF_API void die_with_weakrefs(ObjectHeader* h, SideTable* s) noexcept;

// getweakrefcount / getweakrefs on a header (caller holds a strong ref).
WEAKREF_API std::size_t weak_count(ObjectHeader* h) noexcept;
WEAKREF_API std::vector<WeakObject*> weak_list(ObjectHeader* h);  // each +1

// CPython-style text of a weakref object (used by operator<< and by the
// unraisable hook).
WEAKREF_API void write_weak(std::ostream& os, const WeakObject* w);
WEAKREF_API std::string weak_repr(const WeakObject* w);

// How many borrowed weakrefs have releases owed to their deaths by other
// threads and not settled yet (see "The death's borrow" above; for tests:
// 0 whenever no death that borrows is in progress).
WEAKREF_API std::size_t owed_releases() noexcept;

// Exception escaping a weakref callback -> unraisable hook.
WEAKREF_API void report_callback_exception(const WeakObject* w) noexcept;

// A weakref with a callback, for ref, proxy and WeakMethod: calls f(handle)
// (or f()) when the referent dies, handle being a Handle to this weakref.
// The callable is destroyed as soon as it has run.
template <class Handle, class F>
struct CallbackWeakObject final : WeakObject {
  template <class G>
  CallbackWeakObject(WeakKind k, G&& g) : WeakObject(k, true) {
    ::new (static_cast<void*>(&f_)) F(std::forward<G>(g));
  }
  ~CallbackWeakObject() override { destroy_callable(); }

  void invoke() override;

 private:
  void destroy_callable() noexcept {
    if (state.load(std::memory_order_relaxed) & kCallableGone) return;
    state.store(state.load(std::memory_order_relaxed) | kCallableGone, std::memory_order_relaxed);
    f_.~F();
  }
  union {
    F f_;  // destroyed by destroy_callable(), at most once
  };
};

// Access to a handle's WeakObject for the library's own components.
struct HandleAccess {
  template <class H>
  static WeakObject* get(const H& h) noexcept {
    return h.w_;
  }
  // Gives up the handle's reference without releasing it (collector).
  template <class H>
  static WeakObject* take(H& h) noexcept {
    return std::exchange(h.w_, nullptr);
  }
};

// The callback's handle borrows the batch's reference (CallbackBatch::run
// holds one while invoke runs) or the death's borrow (see the top): a
// callback taking `const Handle&` (or a Handle by value: a copy, with its own
// reference) costs no count update.
template <class Handle, class F>
void CallbackWeakObject<Handle, F>::invoke() {
  struct Destroy {
    CallbackWeakObject* self;
    ~Destroy() { self->destroy_callable(); }
  } destroy{this};
  if constexpr (std::is_invocable_v<F&, const Handle&>) {
    Handle h = Handle::adopt_weak_object(this);
    struct Disown {
      Handle& h;
      ~Disown() { HandleAccess::take(h); }
    } disown{h};
    f_(std::as_const(h));
  } else if constexpr (std::is_invocable_v<F&, Handle>) {
    weak_acquire(this);
    f_(Handle::adopt_weak_object(this));
  } else {
    f_();
  }
}

// Base of every public weak handle: one counted reference to a WeakObject.
class WEAKREF_API WeakHandle {
 public:
  // Identity: are both handles the same weakref object?
  bool is(const WeakHandle& other) const noexcept { return w_ == other.w_; }

 protected:
  WeakHandle() noexcept = default;
  explicit WeakHandle(WeakObject* adopted) noexcept : w_(adopted) {}
  WeakHandle(const WeakHandle& o) noexcept : w_(o.w_) {
    if (w_) weak_acquire(w_);
  }
  WeakHandle(WeakHandle&& o) noexcept : w_(o.w_) {
    note_member_write(&o);
    o.w_ = nullptr;
  }
  WeakHandle& operator=(const WeakHandle& o) noexcept {
    note_member_write(this);
    WeakHandle(o).exchange(*this);
    return *this;
  }
  WeakHandle& operator=(WeakHandle&& o) noexcept {
    note_member_write(this);
    WeakHandle(std::move(o)).exchange(*this);
    return *this;
  }
  [[gnu::always_inline]] ~WeakHandle() {
    if (w_) weak_release(w_);
  }
  void swap_handle(WeakHandle& o) noexcept {
    note_member_write(this);
    note_member_write(&o);
    exchange(o);
  }
  void reset_handle() noexcept {
    note_member_write(this);
    WeakHandle().exchange(*this);
  }

  WeakObject* w_ = nullptr;
  friend struct HandleAccess;

 private:
  // swap_handle() without the thread check (detail/thread_check.hpp): the
  // assignments check the handle they write, not their temporary.
  void exchange(WeakHandle& o) noexcept { std::swap(w_, o.w_); }
};

}  // namespace weakref::detail
