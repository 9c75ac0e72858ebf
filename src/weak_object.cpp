// Weak reference objects: creation and reuse, the per-object list in CPython's
// order, locking the referent, clearing on death, and callback batches.
// Ownership and lock rules are at the top of weak_object.hpp.
//
// The list of an object's weakrefs (SideTable::head) is kept exactly as
// CPython keeps it (Objects/weakrefobject.c): the basic ref (no callback)
// first, then the basic proxy, then every other weakref, newest first. Death
// walks the list from the head, so callbacks run newest first. Retired basic
// refs (cleared by the collector, still pinned: weak_object.hpp) follow every
// live weakref, and every walker skips them.
//
// Costs, counted in atomic read-modify-writes (RMWs; a plain load and store
// each while the process is single-threaded, atomics.hpp):
//  * the first weakref of an object: the header's compare-and-swap that
//    publishes the side table, made with the weakref already linked;
//  * ref(obj) when obj has a basic ref: one increment (basic_ref, inline);
//    the handle's release: one decrement, never the last while obj lives;
//  * a death without callbacks whose only weakref is a basic ref that nobody
//    holds: none (die_with_weakrefs' quiet path frees both blocks);
//  * a container entry weakref linked, then unlinked by its owner: the side
//    lock each time (it shares the object's unit: weak_object.hpp);
//  * a death whose only weakref is a container entry's: the side lock, the
//    entry's count, its push on the owner's queue (the claim is a store
//    under the lock: entry_weak.hpp);
//  * a death whose only weakref has a callback (a callback ref, a
//    finalizer): the side lock; the death borrows the weakref for its
//    callback (weak_object.hpp), with no count update on it;
//  * other deaths: the side lock, one claim per callback weakref still held,
//    the batch's release of each, a unit for the entry weakrefs (one
//    fetch_add), and the side table's unit;
//  * the last release of a cleared weakref, and the drop of a side table's
//    last units, when the releaser holds them all: none, two loads say so
//    (weak_release, side_release). A callback ref or finalizer whose handle
//    goes after the death pays neither its decrement nor the side table's.
#include <mutex>
#include <new>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "alloc.hpp"
#include "weakref/detail/atomics.hpp"
#include "weakref/detail/dcheck.hpp"
#include "weakref/detail/entry_weak.hpp"
#include "weakref/detail/fork_gate.hpp"
#include "weakref/detail/locks.hpp"
#include "weakref/detail/weak_object.hpp"
#include "weakref/ref.hpp"
#include "weakref/unraisable.hpp"

namespace weakref::detail {

WeakObject::~WeakObject() = default;

// Each thread keeps the last freed block of a side table with its first
// weakref (SideTable::block), and its next such block of the same size is
// that one: a ref (or callback ref, or finalizer) to a fresh object that dies
// then costs no allocator call for it (measured: make + ref + release 30 ->
// 24 ns in one thread; first_basic and weak_memory make these blocks,
// free_side frees them). The slot is trivial (usable during thread
// shutdown); an owner object registered with the first cached block gives it
// back when the thread exits and closes the slot (kClosed) for whatever dies
// after it. Not under AddressSanitizer (where the pools are off too), so that
// ASan keeps seeing every block.
namespace {
#if defined(__SANITIZE_ADDRESS__)  // as src/alloc.cpp's kUsePools
constexpr bool kCacheBlocks = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kCacheBlocks = false;
#else
constexpr bool kCacheBlocks = true;
#endif
#else
constexpr bool kCacheBlocks = true;
#endif
void* const kClosed = reinterpret_cast<void*>(1);
// One thread-local object, so that free_side and side_block_allocate find
// all three fields from one thread-pointer computation.
struct SpareBlock {
  void* block = nullptr;  // or kClosed
  std::size_t size = 0;
  bool owned = false;  // tls_spare_owner registered
};
WEAKREF_TLS_INITIAL_EXEC constinit thread_local SpareBlock tls_spare;
struct SpareBlockOwner {
  ~SpareBlockOwner() {
    void* b = std::exchange(tls_spare.block, kClosed);
    if (b && b != kClosed) pool_deallocate(b, tls_spare.size);
  }
};
thread_local SpareBlockOwner tls_spare_owner;

// The thread's spare block, taken, if it has `size` bytes; else null.
[[gnu::always_inline]] inline void* take_spare_block(std::size_t size) noexcept {
  SpareBlock& t = tls_spare;
  void* b = t.block;
  if (!kCacheBlocks || t.size != size || !b || b == kClosed) return nullptr;
  t.block = nullptr;
  return b;
}

void* side_block_allocate(std::size_t size) {
  if (void* b = take_spare_block(size)) return b;
  return pool_allocate(size);
}

// The thread's first cached block: registers the thread-exit hand-back
// (out of line, a tail call of free_side: it runs once per thread), then
// keeps s unless the registration closed the slot (the thread exits).
[[gnu::noinline]] void keep_first_spare(SideTable* s, std::size_t size) noexcept {
  tls_spare.owned = true;
  (void)&tls_spare_owner;
  if (tls_spare.block) {
    pool_deallocate(s, size);
    return;
  }
  tls_spare.block = s;
  tls_spare.size = size;
}
}  // namespace

void free_side(SideTable* s) noexcept {
  if (!s->block) {
    delete s;
    return;
  }
  const std::size_t size = s->block * kSideBlockUnit;  // with its first weakref
  if (kCacheBlocks) {
    SpareBlock& t = tls_spare;
    if (!t.block) {
      if (!t.owned) [[unlikely]]
        return keep_first_spare(s, size);
      t.block = s;
      t.size = size;
      return;
    }
  }
  pool_deallocate(s, size);
}

void throw_null_referent() {
  throw std::invalid_argument("cannot create weak reference to 'NoneType' object");
}

namespace {

// The side lock for a scope. first(): the list's head as locked (read it
// rather than `head`, which would wait for the lock's instruction to
// complete: object.hpp).
class SideGuard {
 public:
  explicit SideGuard(SideTable* s) noexcept : s_(s), head_(s->lock()) {}
  ~SideGuard() { s_->unlock(); }
  SideGuard(const SideGuard&) = delete;
  SideGuard& operator=(const SideGuard&) = delete;
  std::uintptr_t head() const noexcept { return head_; }
  WeakObject* first() const noexcept { return reinterpret_cast<WeakObject*>(head_ & ~kHeadBits); }

 private:
  SideTable* s_;
  std::uintptr_t head_;
};

// The value of SideTable::head for a list starting at w (linked), without
// the lock bit: tagged kHeadPinned when w is the live, pinned basic ref,
// kHeadOthers when w has a successor, or is lent and not that ref
// (object.hpp).
std::uintptr_t head_word(const WeakObject* w) noexcept {
  if (!w) return 0;
  auto v = reinterpret_cast<std::uintptr_t>(w);
  const bool basic = w->pinned() && !w->cleared();
  if (basic) v |= kHeadPinned;
  if (w->next || (!basic && w->lent)) v |= kHeadOthers;
  return v;
}

WeakObject* list_head(const SideTable* s) noexcept {
  return reinterpret_cast<WeakObject*>(s->head.load(std::memory_order_relaxed) & ~kHeadBits);
}

// Under the side lock (which it keeps), after every change of the list (its
// tags depend on the whole list); release: a basic_ref() that reads
// kHeadPinned sees the pin and the ref's fields.
void set_head(SideTable* s, WeakObject* w) noexcept {
  s->head.store(head_word(w) | kHeadLocked, std::memory_order_release);
}

// Sets w's cleared bit. Every write of `side` after w is linked holds the
// side lock, so a store does it (release: see weak_release_last).
void mark_cleared(WeakObject* w) noexcept {
  w->side.store(w->side.load(std::memory_order_relaxed) | 1, std::memory_order_release);
}

void unlink(SideTable* s, WeakObject* w) noexcept {
  WEAKREF_DCHECK(w->linked, "unlink of a weakref that is in no list");
  WEAKREF_DCHECK(w->prev ? w->prev->next == w : list_head(s) == w,
                 "a linked weakref is its predecessor's next, or the list's head");
  WEAKREF_DCHECK(!w->next || w->next->prev == w, "a linked weakref is its successor's prev");
  WeakObject* first = w->prev ? list_head(s) : w->next;
  if (w->prev) w->prev->next = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = nullptr;
  w->linked = false;
  w->lent = false;
  set_head(s, first);
}

void insert_after(SideTable* s, WeakObject* prev, WeakObject* w) noexcept {
  WEAKREF_DCHECK(!w->linked, "a weakref inserted into a list twice");
  WeakObject* first = list_head(s);
  if (!prev) {
    w->prev = nullptr;
    w->next = first;
    if (first) first->prev = w;
    first = w;
  } else {
    w->prev = prev;
    w->next = prev->next;
    if (prev->next) prev->next->prev = w;
    prev->next = w;
  }
  w->linked = true;
  set_head(s, first);
}

void append(SideTable* s, WeakObject* w) noexcept {
  WeakObject* last = list_head(s);
  while (last && last->next) last = last->next;
  insert_after(s, last, w);
}

// CPython's get_basic_refs: the callback-less ref at the head, and the
// callback-less proxy right after it (retired refs are never there: they
// follow every live weakref).
void basic_refs(WeakObject* first, WeakObject*& ref, WeakObject*& proxy) noexcept {
  ref = proxy = nullptr;
  WeakObject* w = first;
  if (w && !w->has_callback && w->kind == WeakKind::ref && !w->cleared()) {
    ref = w;
    w = w->next;
  }
  if (w && !w->has_callback && w->kind == WeakKind::proxy && !w->cleared()) proxy = w;
}

// When w is alone in s's list, not lent and the lock free (a bare `head`:
// object.hpp), unlinks it with one swap (no lock, no fork gate), and says
// so. The caller holds the only reference to w, or none (its last
// release): nobody can take one meanwhile without changing `head` for good
// (a copy needs a holder; getweakrefs takes none from a count of 0 and
// marks what it takes lent). The swap is the caller's last access to s:
// the quiet death may follow at once.
[[gnu::always_inline]] inline bool unlink_alone(SideTable* s, WeakObject* w) noexcept {
  std::uintptr_t alone = reinterpret_cast<std::uintptr_t>(w);
  if (s->head.load(std::memory_order_relaxed) != alone ||
      !rmw_compare_exchange(s->head, alone, std::uintptr_t{0}, std::memory_order_acq_rel,
                            std::memory_order_relaxed))
    return false;
  w->linked = false;  // (its prev and next are null: it was alone)
  return true;
}

// Sets up a new basic ref or proxy. A basic ref is pinned from birth: one
// reference for the caller, one for the side table.
WeakObject* init_basic(WeakObject* w) noexcept {
  if (w->kind == WeakKind::ref) {
    w->state.store(w->state.load(std::memory_order_relaxed) | kWeakPinned,
                   std::memory_order_relaxed);
    w->refs.store(2, std::memory_order_relaxed);
  }
  return w;
}

// The side table in front of a weakref object made in a block (kInBlock).
SideTable* block_front(const WeakObject* w) noexcept {
  return reinterpret_cast<SideTable*>(
      const_cast<char*>(reinterpret_cast<const char*>(w) - sizeof(SideTable)));
}

// Makes h's side table (from inline word x) with w as its one weakref and
// publishes both with the header's compare-and-swap: in the front of w's
// block when w has one, else in a block of its own. False, with nothing
// changed, when another thread published a side table first. Throws (w
// untouched) when the side table cannot be allocated.
bool publish_first(ObjectHeader* h, WeakObject* w, std::uint64_t x) {
  const bool in_block = w->state.load(std::memory_order_relaxed) & kInBlock;
  SideTable* s = in_block ? block_front(w) : new SideTable(h, SideWord::from_header(HeaderWord(x)));
  // The object's unit, and w's unless w shares the object's (the pinned
  // basic ref, an entry weakref: weak_object.hpp).
  const bool basic = w->pinned();
  s->weak.store(basic || shares_unit(w) ? 1 : 2, std::memory_order_relaxed);
  w->side.store(reinterpret_cast<std::uintptr_t>(s), std::memory_order_relaxed);
  w->prev = w->next = nullptr;
  w->linked = true;
  s->head.store(reinterpret_cast<std::uintptr_t>(w) | (basic ? kHeadPinned : 0),
                std::memory_order_relaxed);
  for (;;) {
    s->word.store(SideWord::from_header(HeaderWord(x)).raw(), std::memory_order_relaxed);
    // Release: whoever reads the side form sees s and w initialised.
    if (rmw_compare_exchange(h->word, x, HeaderWord::of_side(s).raw(), std::memory_order_acq_rel,
                             std::memory_order_acquire))
      return true;
    if (HeaderWord(x).has_side()) {
      // w keeps its block (with an unused front) if it has one.
      w->side.store(0, std::memory_order_relaxed);
      w->linked = false;
      if (!in_block) delete s;
      return false;
    }
  }
}

// Clears the list starting at w (its side lock held, `head` already reset):
// every weakref is unlinked and marked cleared; those with a callback that
// someone still holds go into `batch` with a reference of the batch; pinned
// ones lose their pin, whose reference goes onto `unpinned` (linked through
// `next`) to be released after the lock (weak_release may delete). The
// sharers of the object's unit of SideTable::weak need one of their own
// from now on, before any is marked cleared (a release that sees the bit
// drops a unit): at the object's death the live basic ref takes the
// object's over (returns true: the death does not release it; it holds the
// pin until after ~T), every other sharer gets a new one, all in one
// fetch_add.
bool clear_list(SideTable* s, WeakObject* w, CallbackBatch& batch, bool (*skip)(WeakObject*, void*),
                void* ctx, bool at_death, WeakObject*& unpinned) noexcept {
  bool unit_taken = false;
  std::uint32_t units = 0;
  for (WeakObject* v = w; v; v = v->next) {
    if (shares_unit(v)) {  // (linked, so uncleared)
      ++units;
    } else if (v->pinned() && !v->cleared()) {  // the live basic ref
      if (at_death)
        unit_taken = true;
      else
        ++units;
    }
  }
  if (units) rmw_fetch_add(s->weak, units, std::memory_order_relaxed);
  while (w) {
    WeakObject* next = w->next;
    w->prev = w->next = nullptr;
    w->linked = false;
    if (w->pinned()) {
      // The pin's reference keeps w alive until it is released below.
      w->state.store(w->state.load(std::memory_order_relaxed) & ~kWeakPinned,
                     std::memory_order_relaxed);
      if (!w->cleared()) mark_cleared(w);  // the live basic ref (else a retired one)
      w->next = unpinned;
      unpinned = w;
    } else {
      // Take the callback's reference before setting the cleared bit: once
      // the bit is visible, a weak_release that drops the last reference
      // deletes w without this lock (see there), so nothing here may touch w
      // after the bit unless it holds a reference.
      const bool call = w->has_callback && !(skip && skip(w, ctx)) && weak_try_acquire(w);
      mark_cleared(w);
      if (call) batch.push(w);
    }
    w = next;
  }
  return unit_taken;
}

// The death's borrow (weak_object.hpp). The deaths in progress on this
// thread that borrow their weakref, innermost first (a callback may kill
// another object), each with the releases its own thread handed to it.
struct Borrow {
  WeakObject* w;
  std::uint32_t owed;
  Borrow* outer;
};
WEAKREF_TLS_INITIAL_EXEC constinit thread_local Borrow* tls_borrows = nullptr;

// The claims of container entries that deaths in progress on this thread
// hold during ~T, innermost first (entry_weak.hpp: entry_deaths_in_flight).
struct EntryDeath {
  const EntryWeak* w;
  EntryDeath* outer;
};
WEAKREF_TLS_INITIAL_EXEC constinit thread_local EntryDeath* tls_entry_deaths = nullptr;

// Releases handed to a death by other threads, one node each (a weakref's
// own fields are not free for it: a ReferenceQueue links the weakrefs it
// holds through `prev`, and a callback may post its weakref to one). Under
// g_owed_lock; g_owed_count is the list's length, which a death reads with
// one load after setting kSideDeathDone.
struct OwedRelease {
  WeakObject* w;
  OwedRelease* next;
};
constinit SpinLock g_owed_lock;
OwedRelease* g_owed = nullptr;
std::atomic<std::size_t> g_owed_count{0};

// Drops the owed releases of the weakrefs whose deaths are done. Any thread
// may: an owed release is a reference like any other, and after kSideDeathDone
// (acquire) the death no longer touches its weakref.
[[gnu::noinline]] void settle_owed() noexcept {
  OwedRelease* ready = nullptr;
  {
    std::lock_guard<SpinLock> g(g_owed_lock);
    OwedRelease** link = &g_owed;
    while (OwedRelease* o = *link) {
      if (o->w->side.load(std::memory_order_seq_cst) & kSideDeathDone) {
        *link = o->next;
        o->next = ready;
        ready = o;
        g_owed_count.store(g_owed_count.load(std::memory_order_relaxed) - 1,
                           std::memory_order_relaxed);
      } else {
        link = &o->next;
      }
    }
  }
  while (OwedRelease* o = ready) {
    ready = o->next;
    WeakObject* w = o->w;
    delete o;
    weak_release(w);  // the owed reference: may be the last
  }
}

// weak_release_last's hand-over of a last release of w to the death that
// borrows it. The reference goes back into `refs` (unless still counted),
// then to the death: through this thread's list of deaths when it is one of
// them (a callback or ~T dropping the last handle), else through g_owed,
// whose count's store this heavy_fence orders before settle_owed's reads of
// kSideDeathDone (the death's light_fenced_store of it orders the other
// way: fork_gate.hpp): one of the two sides settles it. With no memory for
// the node, this thread waits for the death to be done instead (a deadlock
// only if that callback or ~T waits for this thread meanwhile, and only out
// of memory).
constexpr unsigned kOweSpins = 32;  // CPU pause steps, ~1-4 us

[[gnu::noinline]] void owe_to_death(WeakObject* w, bool counted) noexcept {
  if (!counted) rmw_fetch_add(w->refs, 1U, std::memory_order_relaxed);
  for (Borrow* b = tls_borrows; b; b = b->outer) {
    if (b->w == w) {
      ++b->owed;
      return;
    }
  }
  // The death is usually a few steps from done (in ~T, or a callback that
  // posted to a ReferenceQueue this thread drains): a short wait for it
  // first spares the system call.
  for (unsigned spins = 0; spins < kOweSpins;) {
    if (w->side.load(std::memory_order_acquire) & kSideDeathDone) {
      weak_release(w);
      return;
    }
    spin_pause(spins);  // (counts)
  }
  auto* o = new (std::nothrow) OwedRelease{w, nullptr};
  if (!o) [[unlikely]] {
    unsigned spins = 0;
    while (!(w->side.load(std::memory_order_acquire) & kSideDeathDone)) spin_pause(spins);
    weak_release(w);
    return;
  }
  {
    std::lock_guard<SpinLock> g(g_owed_lock);
    o->next = g_owed;
    g_owed = o;
    g_owed_count.store(g_owed_count.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  }
  heavy_fence();
  settle_owed();
}

void release_unpinned(WeakObject* w) noexcept {
  while (w) {
    WeakObject* next = w->next;
    w->next = nullptr;
    weak_release(w);
    w = next;
  }
}

}  // namespace

bool weak_try_acquire(WeakObject* w) noexcept {
  std::uint32_t n = w->refs.load(std::memory_order_relaxed);
  while (n != 0) {
    if (rmw_compare_exchange(w->refs, n, n + 1, std::memory_order_acquire,
                             std::memory_order_relaxed))
      return true;
  }
  return false;
}

void weak_release_last(WeakObject* w, bool counted) noexcept {
  SideTable* s = w->side_table();
  // A cleared weakref is already unlinked: clear_list and clear_garbage_weak set
  // linked = false before the release that sets the cleared bit, which this
  // acquire load sees (a retired basic ref is cleared and linked, but it is
  // pinned: its count reaches zero only after the death that unlinks it).
  // Only a live one needs the lock to leave the list.
  bool shared = false;
  if (s && !w->cleared()) {
    if (unlink_alone(s, w)) {
      shared = shares_unit(w);
    } else {
      SideGuard g(s);
      if (w->linked) {
        shared = shares_unit(w);
        unlink(s, w);
      }
    }
  }
  WEAKREF_DCHECK(!w->linked, "a weakref whose last reference goes is unlinked (a cleared one was)");
  // A death borrows w: the release is its (acquire: after kSideDeathDone,
  // what the death wrote, kSideExtraUnit among it, is seen below).
  if ((w->state.load(std::memory_order_acquire) & kBorrowed) &&
      !(w->side.load(std::memory_order_acquire) & kSideDeathDone)) [[unlikely]] {
    owe_to_death(w, counted);
    return;
  }
  if (shared) {
    // It had no unit: past the unlock, the side table may be gone (a quiet
    // death), and nothing here reads it.
    WEAKREF_DCHECK(!(w->state.load(std::memory_order_relaxed) & kInBlock),
                   "a sharer of the object's unit is not in its side table's block");
    weak_free(w);
    return;
  }
  const std::uint32_t units = (w->side.load(std::memory_order_relaxed) & kSideExtraUnit) ? 2 : 1;
  // The callback's destructor may run user code: no lock held.
  if ((w->state.load(std::memory_order_relaxed) & kInBlock) && block_front(w) == s) {
    w->~WeakObject();  // its memory goes with the side table's block
    side_release(s, units);
    return;
  }
  weak_free(w);
  if (s) side_release(s, units);
}

// The order matters. A collector clears the weakrefs of garbage while the
// objects are frozen, then unfreezes them, bumping the epoch. So a locker
// reads the count word first and the cleared bit after it: if the word it
// read is the unfrozen one of the new epoch, the clear (made before the
// unfreeze) is visible; if it read an older word, its compare-and-swap
// fails because the epoch changed, and it starts over. (The inline
// weak_lock read the cleared bit once already, to fail fast; that early read
// proves nothing about the word, so it is read again here, in this order.)
SideTable* weak_lock_uncleared(const WeakObject* w) noexcept {
  auto* s = w->side_table();
  unsigned spins = 0;
  for (;;) {
    std::uint64_t x = s->word.load(std::memory_order_acquire);
    if (SideWord(x).count() == 0) return nullptr;
    if (SideWord(x).frozen()) {  // a collector is judging the object: wait for it
      spin_pause(spins);
      continue;
    }
    if (w->side.load(std::memory_order_acquire) & 1) return nullptr;
    if (rmw_compare_exchange(s->word, x, SideWord(x).plus().raw(), std::memory_order_acquire,
                             std::memory_order_relaxed))
      return s;
  }
}

bool weak_alive(const WeakObject* w) noexcept {
  std::uintptr_t v = w->side.load(std::memory_order_acquire);
  if (v & 1) return false;
  const SideWord x{reinterpret_cast<SideTable*>(v)->word.load(std::memory_order_acquire)};
  return x.count() != 0;
}

WeakMemory weak_memory(ObjectHeader* h, std::size_t size, std::size_t align) {
  const std::size_t total = sizeof(SideTable) + size;
  if (!HeaderWord(h->word.load(std::memory_order_acquire)).has_side() &&
      align <= alignof(SideTable) && total <= kMaxPooledSize && total / kSideBlockUnit <= 255) {
    void* block = side_block_allocate(total);
    auto* s = ::new (block) SideTable(h, SideWord());  // published by attach_weak
    s->block = static_cast<std::uint8_t>(total / kSideBlockUnit);
    return {static_cast<char*>(block) + sizeof(SideTable), true};
  }
  return {pool_allocate(size), false};  // WeakObject::operator new's
}

void weak_memory_free(WeakMemory m, std::size_t size) noexcept {
  if (m.in_block)
    pool_deallocate(static_cast<char*>(m.p) - sizeof(SideTable), sizeof(SideTable) + size);
  else
    pool_deallocate(m.p, size);
}

void weak_free(WeakObject* w) noexcept {
  if (!(w->state.load(std::memory_order_relaxed) & kInBlock)) {
    delete w;
    return;
  }
  // In a block: the block goes with the side table in its front, unless
  // that side table was never published (another was first): then w owns
  // the block.
  SideTable* front = block_front(w);
  const bool owns_block = w->side_table() != front;
  w->~WeakObject();
  if (owns_block) pool_deallocate(front, front->block * kSideBlockUnit);
}

namespace {

// The first weakref of h (from inline word x), a basic one: made in one
// block with h's side table, both initialised at once, and published with
// the header's compare-and-swap (no lock).
constexpr std::size_t kFirstBasicSize = sizeof(SideTable) + sizeof(WeakObject);
static_assert(kFirstBasicSize % kSideBlockUnit == 0 && kFirstBasicSize <= kMaxPooledSize);

// Builds the side table and the basic ref in `block` (kFirstBasicSize
// bytes), each field written once; not published yet.
[[gnu::always_inline]] inline WeakObject* build_first_basic(void* block, ObjectHeader* h,
                                                            std::uint64_t x,
                                                            WeakKind kind) noexcept {
  const bool pin = kind == WeakKind::ref;  // see publish_first for the units
  auto* s = static_cast<SideTable*>(block);
  auto* w = reinterpret_cast<WeakObject*>(s + 1);
  ::new (block) SideTable(h, SideWord::from_header(HeaderWord(x)), pin ? 1 : 2,
                          kFirstBasicSize / kSideBlockUnit,
                          reinterpret_cast<std::uintptr_t>(w) | (pin ? kHeadPinned : 0));
  ::new (static_cast<void*>(w)) WeakObject(kind, reinterpret_cast<std::uintptr_t>(s), pin ? 2 : 1,
                                           pin ? kInBlock | kWeakPinned : kInBlock);
  return w;
}

// Publishes w's side table (in front of it) with the header's
// compare-and-swap, from header word x (as last read). Null, with the block
// freed, when another thread published a side table first.
[[gnu::noinline]] WeakObject* publish_first_basic(ObjectHeader* h, std::uint64_t x,
                                                  WeakObject* w) noexcept {
  SideTable* s = block_front(w);
  for (;;) {
    if (HeaderWord(x).has_side()) {
      free_side(s);  // (both trivially destroyed)
      return nullptr;
    }
    // (The word x as now: a failed attempt found another count.)
    s->word.store(SideWord::from_header(HeaderWord(x)).raw(), std::memory_order_relaxed);
    if (rmw_compare_exchange(h->word, x, HeaderWord::of_side(s).raw(), std::memory_order_acq_rel,
                             std::memory_order_acquire))
      return w;
  }
}

// basic_weak once h has a side table: one critical section reuses the basic
// weakref, or makes and links it. Allocating a WeakObject runs no user code
// (its operator new is the library's small-block allocator), so it may
// happen under the side lock; if it throws, nothing has changed.
[[gnu::noinline]] WeakObject* basic_weak_listed(SideTable* s, WeakKind kind) {
  SideGuard g(s);
  WeakObject *r, *p;
  basic_refs(g.first(), r, p);
  WeakObject* found = kind == WeakKind::ref ? r : p;
  if (found && weak_try_acquire(found)) return found;
  WeakObject* w = init_basic(new WeakObject(kind, false));
  w->side.store(reinterpret_cast<std::uintptr_t>(s), std::memory_order_relaxed);
  if (!w->pinned()) rmw_fetch_add(s->weak, 1U, std::memory_order_relaxed);
  // A basic proxy whose last handle is going (found, count 0) stays where it
  // is until its release unlinks it; the new one goes in front of it.
  insert_after(s, kind == WeakKind::ref ? nullptr : r, w);
  return w;
}

// The first weakref of h (inline word x) when the thread has no spare block
// for it, or its first publication failed: a new block, then as basic_weak.
[[gnu::noinline]] WeakObject* first_basic(ObjectHeader* h, std::uint64_t x, WeakKind kind,
                                          WeakObject* w) {
  if (!w) w = build_first_basic(pool_allocate(kFirstBasicSize), h, x, kind);
  if (WeakObject* published = publish_first_basic(h, x, w)) return published;
  return basic_weak_listed(HeaderWord(h->word.load(std::memory_order_acquire)).side(), kind);
}

}  // namespace

// The usual case, a first weakref made from the thread's spare block and
// published at the first try, calls nothing (no frame): every other case
// goes on in a function of its own.
WeakObject* basic_weak(ObjectHeader* h, WeakKind kind) {
  std::uint64_t x = h->word.load(std::memory_order_acquire);
  if (HeaderWord(x).has_side()) return basic_weak_listed(HeaderWord(x).side(), kind);
  void* block = take_spare_block(kFirstBasicSize);
  if (!block) [[unlikely]]
    return first_basic(h, x, kind, nullptr);
  WeakObject* w = build_first_basic(block, h, x, kind);
  if (rmw_compare_exchange(h->word, x, HeaderWord::of_side(block_front(w)).raw(),
                           std::memory_order_acq_rel, std::memory_order_acquire)) [[likely]]
    return w;
  return first_basic(h, x, kind, w);
}

WeakObject* basic_ref_retiring(ObjectHeader* h, WeakObject* w) {
  weak_release(w);  // w stays pinned until h dies: not the last reference
  return basic_weak(h, WeakKind::ref);
}

WeakObject* attach_weak(ObjectHeader* h, WeakObject* w) {
  std::uint64_t x = h->word.load(std::memory_order_acquire);
  if (!HeaderWord(x).has_side()) {
    bool published;
    try {
      published = publish_first(h, w, x);
    } catch (...) {
      weak_free(w);
      throw;
    }
    if (published) return w;
    x = h->word.load(std::memory_order_acquire);
  }
  SideTable* s = HeaderWord(x).side();
  w->side.store(reinterpret_cast<std::uintptr_t>(s), std::memory_order_relaxed);
  // A unit of its own, unless it shares the object's (weak_object.hpp).
  if (!shares_unit(w)) rmw_fetch_add(s->weak, 1U, std::memory_order_relaxed);
  // An empty list, the lock free: one swap links w (object.hpp). (w is
  // nobody else's until it succeeds.)
  if (std::uintptr_t empty = 0; s->head.load(std::memory_order_relaxed) == empty) {
    w->prev = w->next = nullptr;
    w->linked = true;
    if (rmw_compare_exchange(s->head, empty, head_word(w), std::memory_order_acq_rel,
                             std::memory_order_relaxed))
      return w;
    w->linked = false;
  }
  SideGuard g(s);
  WeakObject *r, *p;
  basic_refs(g.first(), r, p);
  insert_after(s, p ? p : r, w);
  return w;
}

bool weak_detach_sole(WeakObject* w) noexcept {
  SideTable* s = w->side_table();
  const bool shared = shares_unit(w);
  if (w->refs.load(std::memory_order_acquire) == 1 && unlink_alone(s, w)) {
    if (!shared) side_release(s);
    return true;
  }
  {
    SideGuard g(s);
    // Linked: not cleared (a death or the collector unlinks what it clears,
    // under this lock). One reference, the caller's: nobody else can take
    // one (a copy needs a holder; getweakrefs takes its references under
    // this lock).
    if (!w->linked || w->refs.load(std::memory_order_acquire) != 1) return false;
    unlink(s, w);
  }
  // A sharer had no unit: past the unlock, the side table may be gone.
  if (!shared) side_release(s);
  return true;
}

bool weak_renew(WeakObject* w) noexcept {
  SideTable* s = w->side_table();
  // Alone in the list, not lent, the lock free (object.hpp), held by the
  // caller alone: it is linked, where a new one would go. Two loads.
  if (s->head.load(std::memory_order_acquire) == reinterpret_cast<std::uintptr_t>(w) &&
      w->refs.load(std::memory_order_acquire) == 1)
    return true;
  SideGuard g(s);
  if (!w->linked || w->refs.load(std::memory_order_acquire) != 1) return false;
  WeakObject *r, *p;
  basic_refs(g.first(), r, p);
  WeakObject* newest_after = p ? p : r;  // where attach_weak links a new one
  if (w->prev != newest_after) {
    unlink(s, w);
    insert_after(s, newest_after, w);
  }
  return true;
}

void unlink_weak(WeakObject* w) noexcept {
  SideTable* s = w->side_table();
  if (!s) return;
  SideGuard g(s);
  if (w->linked) unlink(s, w);
}

void clear_weakrefs(SideTable* s, CallbackBatch& batch, bool (*skip)(WeakObject*, void*),
                    void* ctx) noexcept {
  WeakObject* unpinned = nullptr;
  {
    SideGuard g(s);
    WeakObject* w = g.first();
    // Before any cleared bit (see kWeakCleared): a locker that then succeeds
    // on a word without the flag locked before this clear began.
    if (w) rmw_fetch_or(s->word, std::uint64_t{SideWord::kWeakCleared}, std::memory_order_acq_rel);
    s->head.store(kHeadLocked, std::memory_order_relaxed);
    clear_list(s, w, batch, skip, ctx, false, unpinned);
  }
  release_unpinned(unpinned);
}

bool clear_garbage_weak(WeakObject* w, std::uint32_t holders) noexcept {
  SideTable* s = w->side_table();
  SideGuard g(s);
  if (weak_holders(w) != holders) return false;
  if (w->cleared()) return true;  // by its referent's death or collection
  rmw_fetch_or(s->word, std::uint64_t{SideWord::kWeakCleared},
               std::memory_order_acq_rel);  // as above
  if (!w->pinned()) {
    if (w->linked) {
      // A sharer needs a unit of its own before it is seen cleared.
      if (shares_unit(w)) rmw_fetch_add(s->weak, 1U, std::memory_order_relaxed);
      unlink(s, w);
    }
    mark_cleared(w);
    return true;
  }
  // The live basic ref. Every holder but a basic_ref() increment takes this
  // lock or a handle (which the garbage alone has). Such an increment is
  // followed by a seq_cst read of `state`, this kRetiring mark by one of the
  // count: one of the two sees the other. If it is this one, the mark is
  // taken back and w stays (nothing but makers reads the mark: r() never
  // sees it); else that maker backs off to the slow path, behind this lock.
  const std::uint8_t st = w->state.load(std::memory_order_relaxed);
  w->state.store(st | kRetiring, std::memory_order_seq_cst);
  if (weak_holders(w) != holders) {
    w->state.store(st, std::memory_order_relaxed);
    return false;
  }
  mark_cleared(w);
  // It keeps its pin until its referent dies: a maker that read `head`
  // before this clear may be incrementing it right now. It is retired to the
  // end of the list, where only the death looks at it, with a unit of
  // SideTable::weak of its own (it no longer shares the object's).
  unlink(s, w);
  rmw_fetch_add(s->weak, 1U, std::memory_order_relaxed);
  append(s, w);
  return true;
}

namespace {

// The general case of die_with_weakrefs (out of line: the quiet case stays
// small).
[[gnu::noinline]] void die_clearing(ObjectHeader* h, SideTable* s) noexcept {
  WeakObject* unpinned = nullptr;
  CallbackBatch batch;
  bool unit_taken;
  {
    SideGuard g(s);
    WeakObject* w = g.first();
    s->head.store(kHeadLocked, std::memory_order_relaxed);
    unit_taken = clear_list(s, w, batch, nullptr, nullptr, true, unpinned);
  }
  batch.run();
  h->type->destroy(h);
  // Only now: the live basic ref may hold the side table's last unit, and
  // ~T may read the side table (self() does).
  release_unpinned(unpinned);
  if (!unit_taken) side_release(s);
}

// The pinned basic ref (head: SideTable::head as read) is the only
// weakref, and handles hold it: no callback to run; it is cleared, and takes
// the object's unit over. False (nothing done) if a collector retired it
// meanwhile, under the lock (it then has a unit of its own).
[[gnu::noinline]] bool die_with_pinned_basic(ObjectHeader* h, SideTable* s,
                                             std::uintptr_t head) noexcept {
  auto* basic = reinterpret_cast<WeakObject*>(head & ~kHeadBits);
  {
    SideGuard g(s);
    if (g.head() != head) return false;
    s->head.store(kHeadLocked, std::memory_order_relaxed);
    basic->linked = false;
    basic->state.store(basic->state.load(std::memory_order_relaxed) & ~kWeakPinned,
                       std::memory_order_relaxed);
    mark_cleared(basic);
  }
  h->type->destroy(h);
  weak_release(basic);  // the pin's
  return true;
}

// die_with_one_weakref's case of an entry weakref w, called with the side
// lock held and w unlinked: its callback is the claim of its entry
// (EntryWeak::invoke's steps), made here while w is still unreachable to
// its other holders' last release (which would need this lock to unlink
// it), so that nobody can free it: a won claim makes the entry's reference
// the death's, with no reference taken; w then takes the object's unit over
// (that reference keeps w, and so the unit, until w is queued, after ~T). A
// lost claim (the owner is dropping the entry) leaves w nothing that holds
// it: it gets a unit of its own before it is seen cleared. During ~T the
// claim is in flight (tls_entry_deaths): size() counts it out on this thread.
[[gnu::noinline]] void die_with_one_entry(ObjectHeader* h, SideTable* s, EntryWeak* w) noexcept {
  const bool claimed = entry_claim_linked(w);
  WEAKREF_DCHECK(!claimed || w->refs.load(std::memory_order_relaxed) != 0,
                 "a claimed entry still holds its weakref");
  if (!claimed) rmw_fetch_add(s->weak, 1U, std::memory_order_relaxed);
  mark_cleared(w);
  s->unlock();
  if (!claimed) {
    h->type->destroy(h);
    side_release(s);
    return;
  }
  EntryDeath death{w, tls_entry_deaths};
  tls_entry_deaths = &death;
  h->type->destroy(h);
  tls_entry_deaths = death.outer;
  entry_queue(w);  // last: the owner may free w and the side table from then on
}

// The common case of one weakref that is not the pinned basic ref (a
// callback ref, a finalizer, a container entry...): the same steps as
// die_clearing without the batch and the list walk; also an empty list (a
// weakref that left it still holds its unit, or the quiet death found the
// lock held). False (nothing done) when the list is not that.
[[gnu::noinline]] bool die_with_one_weakref(ObjectHeader* h, SideTable* s) noexcept {
  WeakObject* w;
  bool call;
  const std::uintptr_t head = s->lock();
  w = reinterpret_cast<WeakObject*>(head & ~kHeadBits);
  if (!w) {
    s->head.store(kHeadLocked, std::memory_order_relaxed);
    s->unlock();
    h->type->destroy(h);
    side_release(s);
    return true;
  }
  if ((head & kHeadPinned) || w->next || w->pinned()) {
    s->unlock();
    return false;
  }
  s->head.store(kHeadLocked, std::memory_order_relaxed);
  w->linked = false;
  if (shares_unit(w)) {  // an entry weakref
    die_with_one_entry(h, s, static_cast<EntryWeak*>(w));
    return true;
  }
  // A weakref whose count is already 0 (its last release waits for this
  // lock) is not called, as in CPython. Else the death borrows it
  // (weak_object.hpp): kBorrowed before the cleared bit, so that a last
  // release that sees either sees it.
  call = w->has_callback && w->refs.load(std::memory_order_relaxed) != 0;
  if (call)
    w->state.store(w->state.load(std::memory_order_relaxed) | kBorrowed, std::memory_order_relaxed);
  mark_cleared(w);
  s->unlock();
  if (!call) {
    h->type->destroy(h);
    side_release(s);
    return true;
  }
  Borrow borrow{w, 0, tls_borrows};
  tls_borrows = &borrow;
  try {
    w->invoke();
  } catch (...) {
    report_callback_exception(w);
  }
  h->type->destroy(h);
  tls_borrows = borrow.outer;
  // w outlives the object's part in the side table: it takes the object's
  // unit over, one count update less; and the death is done with it. One
  // store, the death's last access to w unless a release is owed to it
  // (nothing else writes `side` once it is cleared).
  light_fenced_store(w->side,
                     w->side.load(std::memory_order_relaxed) | kSideExtraUnit | kSideDeathDone);
  if (g_owed_count.load(std::memory_order_seq_cst) != 0) [[unlikely]]
    settle_owed();
  for (std::uint32_t n = borrow.owed; n; --n) weak_release(w);
  return true;
}

}  // namespace

void die_with_weakrefs(ObjectHeader* h, SideTable* s) noexcept {
  WEAKREF_DCHECK(SideWord(s->word.load(std::memory_order_relaxed)).count() == 0,
                 "the death of an object whose count is not 0");
  WEAKREF_DCHECK(s->weak.load(std::memory_order_relaxed) >= 1,
                 "a dying object's side table has lost the object's unit");
  // The count is zero for good: nobody can make a weakref to h any more
  // (that takes a strong reference) nor lock one. When the side table's
  // units say that no weakref but the sharers exists, `head` that no entry
  // weakref is (or was, weak_object.hpp) linked, and the pinned basic ref,
  // if any, is held only by its pin, nobody else can reach either: no
  // callback can run, nobody is in the list, and both go without a lock or
  // an RMW. (Acquire loads: the releases that brought the counts there
  // happened before them.)
  if (s->weak.load(std::memory_order_acquire) == 1) {
    const std::uintptr_t head = s->head.load(std::memory_order_acquire);
    // An empty list, or the pinned basic ref alone; the lock free.
    if (head == 0 || (head & kHeadBits) == kHeadPinned) {
      auto* basic = reinterpret_cast<WeakObject*>(head & ~kHeadBits);
      if (!basic || basic->refs.load(std::memory_order_acquire) == 1) {
        h->type->destroy(h);  // before the side table goes: self() reads it
        // A basic ref in the side table's block goes with it (its destructor
        // does nothing).
        if (basic &&
            !((basic->state.load(std::memory_order_relaxed) & kInBlock) && block_front(basic) == s))
          weak_free(basic);
        free_side(s);
        return;
      }
      if (die_with_pinned_basic(h, s, head)) return;
    } else if (!(head & kHeadPinned) && die_with_one_weakref(h, s)) {
      return;  // a lone entry weakref, sharing the object's unit
    }
  } else if (die_with_one_weakref(h, s)) {
    return;
  }
  die_clearing(h, s);
}

std::size_t owed_releases() noexcept { return g_owed_count.load(std::memory_order_acquire); }

std::ptrdiff_t entry_deaths_in_flight(const ContainerControl* c) noexcept {
  std::ptrdiff_t n = 0;
  // An entry the owner took out meanwhile (kEntryOut) has left its table.
  for (const EntryDeath* d = tls_entry_deaths; d; d = d->outer)
    n += d->w->control() == c && !(d->w->ctrl_state.load(std::memory_order_relaxed) & kEntryOut);
  return n;
}

std::size_t weak_count(ObjectHeader* h) noexcept {
  const HeaderWord x{h->word.load(std::memory_order_acquire)};
  if (!x.has_side()) return 0;
  SideTable* s = x.side();
  SideGuard g(s);
  std::size_t n = 0;
  for (WeakObject* w = g.first(); w; w = w->next)
    if (!w->cleared() && weak_holders(w) != 0) ++n;
  return n;
}

std::vector<WeakObject*> weak_list(ObjectHeader* h) {
  std::vector<WeakObject*> out;
  const HeaderWord x{h->word.load(std::memory_order_acquire)};
  if (!x.has_side()) return out;
  SideTable* s = x.side();
  // Never allocate under the side lock: size the vector, then fill it under
  // the lock if the list still fits, else grow and try again.
  for (;;) {
    std::size_t need = 0;
    {
      SideGuard g(s);
      for (WeakObject* w = g.first(); w; w = w->next) ++need;
      if (need <= out.capacity()) {
        for (WeakObject* w = g.first(); w; w = w->next)
          if (!w->cleared() && weak_holders(w) != 0 && weak_try_acquire(w)) {
            out.push_back(w);
            w->lent = true;
          }
        // A lent head is no longer alone for weak_detach_sole's swap
        // (object.hpp), even once the list changes, until it leaves the list.
        set_head(s, g.first());
        return out;
      }
    }
    out.reserve(need);
  }
}

// ---------------------------------------------------------------------------
// Callback batches

void CallbackBatch::push(WeakObject* w) noexcept {
  w->next = nullptr;
  if (tail_)
    tail_->next = w;
  else
    head_ = w;
  tail_ = w;
}

void CallbackBatch::run() noexcept {
  while (WeakObject* w = head_) {
    head_ = w->next;
    if (!head_) tail_ = nullptr;
    w->next = nullptr;
    try {
      w->invoke();
    } catch (...) {
      report_callback_exception(w);
    }
    weak_release(w);
  }
}

void CallbackBatch::drop() noexcept {
  while (WeakObject* w = head_) {
    head_ = w->next;
    if (!head_) tail_ = nullptr;
    w->next = nullptr;
    weak_release(w);
  }
}

// ---------------------------------------------------------------------------
// Text

void write_weak(std::ostream& os, const WeakObject* w) {
  const void* self = w;
  if (!w) {
    os << "<weakref at 0x0; empty>";
    return;
  }
  ObjectHeader* h = weak_lock(w);
  const bool proxy = w->kind == WeakKind::proxy;
  if (!h) {
    os << (proxy ? "<weakproxy at " : "<weakref at ") << self << "; dead>";
    return;
  }
  const char* name = type_name(*h->type->type);
  const void* obj = h->object();
  if (proxy)
    os << "<weakproxy at " << self << " to " << name << " at " << obj << '>';
  else
    os << "<weakref at " << self << "; to '" << name << "' at " << obj << '>';
  decref(h);
}

std::string weak_repr(const WeakObject* w) {
  std::ostringstream os;
  write_weak(os, w);
  return os.str();
}

void report_callback_exception(const WeakObject* w) noexcept {
  std::string what;
  try {
    what = "weakref callback of " + weak_repr(w);
  } catch (...) {
  }
  write_unraisable(std::current_exception(), "Exception ignored in", std::move(what));
}

}  // namespace weakref::detail
