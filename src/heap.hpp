// Collector heaps: where traced objects are listed between collections.
//
// Model (as cppgc): every thread that makes traced objects has its own heap;
// an object belongs to the heap of the thread that made it (its index is in
// the object's count word, bits 16..31). gc::collect() collects the calling
// thread's heap; references from anywhere else count as outside references.
// When a thread exits, its heap's objects move to the orphan heap (index
// kOrphanHeap), which full collections on any thread also collect, and
// which any thread's automatic collection check collects on its own once it
// has received enough (orphans_pending). Index 0 (kNoHeap) means "not in
// any heap" (untraced objects).
//
// Shared heaps (weakref::SharedHeap, src/shared_heap.cpp): a heap with an
// index of its own that no thread owns (Heap::shared). A thread that holds a
// SharedHeap's user lock puts the traced objects it makes into the innermost
// one it holds (tls_shared_heap; track()), marked kShared at once (any
// thread may copy them: the collector's step 5 verifies their garbage), and
// collects it while it holds it (SharedHeap::collect, its automatic
// collections, gc::collect). Only threads holding that lock write the traced
// members of its objects, and every collection of it holds the lock: while
// one runs, nobody writes them, as for a thread's heap during its own
// collection. tls_heap_index stays the thread's own heap (incref's fast path
// compares against it; shared objects pass it by their kShared bit). A
// destroyed shared heap's objects go to the orphan heap, and its index is
// reused, as a thread's at exit.
//
// Locking
//  * Heap::lock guards the generation lists, the permanent list, the counts
//    and the GcHead links of every object listed in this heap. Track and
//    untrack take it; the collector holds it while it scans (it calls only
//    trace functions then, never callbacks); so does an adoption while it
//    walks and moves objects (src/shared_heap.cpp). A SharedHeap's user lock
//    is another lock (a recursive std::mutex held while user code runs,
//    outside the fork gate); Heap::lock is taken under it, never the reverse.
//  * Lock order: heap index ascending (the orphan heap, 0, first); a heap
//    lock is never held while taking a side-table lock, except by the
//    collector's freeze step, which takes side locks under its own heap lock
//    (side locks are leaves).
//  * Every lock here is taken inside the fork gate (detail/fork_gate.hpp,
//    src/fork.cpp), like every library lock; so is every change a
//    collection makes to its private garbage list (Heap::in_collection),
//    which a fork child may walk.
//  * An object's heap index changes only when its heap is merged into the
//    orphan heap (a thread's exit, a SharedHeap's destruction), or when it is
//    adopted or disowned (gc::adopt, SharedHeap::adopt, gc::disown), always
//    under the locks of both heaps; untrack re-reads the index after locking
//    and retries if it moved (lock_heap_of). An object in a collection's
//    private garbage list (kInCollection) is never moved.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "weakref/detail/atomics.hpp"
#include "weakref/detail/fork_gate.hpp"
#include "weakref/detail/locks.hpp"
#include "weakref/detail/object.hpp"

namespace weakref::detail {

inline constexpr int kGenerations = 3;
inline constexpr std::uint32_t kMaxHeaps = 1U << 16;

// Low bits of GcHead::prev (CPython's _PyGC_PREV_MASK_*).
inline constexpr std::uintptr_t kPrevCollecting = 1;  // in the set being collected
inline constexpr std::uintptr_t kPrevHasWeak = 2;     // trace() visited a weak member
                                                      // (set by subtract_refs)
inline constexpr std::uintptr_t kPrevFlags = 3;
inline constexpr int kRefsShift = 2;  // gc_refs live above the flags
// Low bit of GcHead::next while in move_unreachable's unreachable list.
inline constexpr std::uintptr_t kNextUnreachable = 1;

inline GcHead* gc_prev(const GcHead* g) noexcept {
  return reinterpret_cast<GcHead*>(g->prev & ~kPrevFlags);
}
inline void gc_set_prev(GcHead* g, GcHead* p) noexcept {
  g->prev = reinterpret_cast<std::uintptr_t>(p) | (g->prev & kPrevFlags);
}

// A circular doubly linked list of GcHeads with a sentinel.
struct GcList {
  GcHead head;
  GcList() noexcept { init(); }
  GcList(const GcList&) = delete;
  GcList& operator=(const GcList&) = delete;
  void init() noexcept {
    head.next = &head;
    head.prev = reinterpret_cast<std::uintptr_t>(&head);
  }
  bool empty() const noexcept { return head.next == &head; }
  void append(GcHead* g) noexcept {
    GcHead* last = gc_prev(&head);
    gc_set_prev(g, last);
    last->next = g;
    g->next = &head;
    head.prev = reinterpret_cast<std::uintptr_t>(g);
  }
  static void remove(GcHead* g) noexcept {
    GcHead* p = gc_prev(g);
    GcHead* n = g->next;
    p->next = n;
    gc_set_prev(n, p);
    g->next = nullptr;
    g->prev &= kPrevFlags;
  }
  static void move(GcHead* g, GcList& to) noexcept {
    GcHead* p = gc_prev(g);
    GcHead* n = g->next;
    p->next = n;
    gc_set_prev(n, p);
    to.append(g);
  }
  // Appends every node of *this to `to`; *this becomes empty.
  void merge_into(GcList& to) noexcept {
    if (empty()) return;
    GcHead* to_last = gc_prev(&to.head);
    GcHead* first = head.next;
    GcHead* last = gc_prev(&head);
    to_last->next = first;
    gc_set_prev(first, to_last);
    last->next = &to.head;
    to.head.prev = reinterpret_cast<std::uintptr_t>(last);
    init();
  }
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const GcHead* g = head.next; g != &head; g = g->next) ++n;
    return n;
  }
};

struct Heap {
  SpinLock lock;
  GcList gen[kGenerations];
  GcList permanent;  // gc::freeze()
  // CPython's generation counts. Written under `lock`; atomic so that the
  // allocation fast path may read them without it.
  std::atomic<long> count[kGenerations] = {0, 0, 0};
  long long_lived_total = 0;  // CPython 3.11 full-collection heuristic
  long long_lived_pending = 0;
  std::atomic<bool> collecting{false};
  std::uint16_t index = 0;
  bool shared = false;  // a SharedHeap's (set and cleared under the registry's lock)
  // For a fork child (src/fork.cpp): the thread collecting this heap (the
  // address of a thread_local of its, set with `collecting`), and the
  // private garbage list of its steps 7-9 (set and cleared under `lock`;
  // changed only inside the fork gate).
  const void* collector = nullptr;
  GcList* in_collection = nullptr;
};

// Inside the fork gate (weakref/detail/fork_gate.hpp) for as long as it lives,
// when the process has threads: a fork waits until it is gone.
class GateHold {
 public:
  GateHold() noexcept : on_(!single_threaded()) {
    if (on_) gate_enter();
  }
  ~GateHold() {
    if (on_) gate_leave();
  }
  GateHold(const GateHold&) = delete;
  GateHold& operator=(const GateHold&) = delete;

 private:
  bool on_;
};

// In a fork child: the collections that threads which do not exist in the
// child had in progress are abandoned, their garbage given back to its heap
// (src/fork.cpp).
void heaps_after_fork_in_child() noexcept;
// What identifies the calling thread in Heap::collector.
const void* current_collector_token() noexcept;

// The calling thread's heap (made on first use; the orphan heap once the
// thread's heap is gone at thread exit).
Heap* current_heap() noexcept;
Heap* orphan_heap() noexcept;
Heap* heap_at(std::uint32_t index) noexcept;
// Objects the orphan heap received from exited threads since its last full
// collection, beyond a quarter of those that survived it (CPython's rule for
// full collections: long_lived_pending against long_lived_total / 4). Read
// by every automatic collection check (gc_on_allocate), written under the
// orphan heap's lock.
extern std::atomic<long> orphans_pending;
// Calls f(Heap&) for every heap that exists now.
template <class F>
void for_each_heap(F&& f);
std::uint32_t heap_limit() noexcept;  // indices below this may be in use

std::uint32_t heap_index_of(ObjectHeader* h) noexcept;
// Sets the heap index in the object's active count word (and kShared, when
// `shared`: the object moves to a shared heap).
void set_heap_index(ObjectHeader* h, std::uint32_t index, bool shared = false) noexcept;

// Shared heaps (weakref::SharedHeap). make_shared_heap registers a heap of
// its own index (throws std::bad_alloc, or std::length_error when every
// index is in use); destroy_shared_heap moves its objects to the orphan
// heap, as at a thread's exit, and gives its index back for reuse.
Heap* make_shared_heap();
void destroy_shared_heap(Heap* h) noexcept;
// The shared heaps whose user lock the calling thread holds: one entry per
// lock() call still in effect, the innermost (most recent) last.
// push_held_shared may throw std::bad_alloc (then nothing changed);
// pop_held_shared removes the most recent entry of h.
void push_held_shared(Heap* h);
void pop_held_shared(Heap* h) noexcept;
// The innermost shared heap the calling thread holds (where track() puts
// its objects), or null: one thread_local load, for track() and
// gc_on_allocate().
extern constinit thread_local Heap* tls_shared_heap;
// Does the calling thread hold the SharedHeap of heap index `index`? (The
// thread rule check calls it: src/thread_check.cpp.)
bool thread_holds_shared_heap(std::uint32_t index) noexcept;
// The distinct shared heaps the calling thread holds, innermost first:
// writes those after the first `skip` to out[0..cap); returns how many it
// holds in all.
std::size_t held_shared_heaps(Heap** out, std::size_t skip, std::size_t cap) noexcept;

// Locks the heap that h is listed in (following a concurrent merge).
Heap* lock_heap_of(ObjectHeader* h) noexcept;

// Unlists a dying object. Objects marked kInCollection are in the private
// garbage list of the collection running on this thread (tls_collecting):
// they are unlinked without the heap lock, since no other thread touches
// that list.
void untrack(ObjectHeader* h) noexcept;
// The heap whose collection runs steps 7-9 on this thread, or null.
extern constinit thread_local Heap* tls_collecting;
// Re-lists an object that left its heap during its death (tp_finalize).
void track_again(ObjectHeader* h) noexcept;

// A death scope (src/object.cpp, step 2 of a death): while it is open,
// deaths on this thread nest at most `limit` deep counted from its opening,
// the rest are queued, and the queued ones run within the scope (by its
// outermost death, or at the latest by close_death_scope), never after it.
// Deaths queued before the scope opened stay queued for the death that
// queued them. The collector opens one while it breaks up garbage
// (src/gc/collect.cpp, step 9): its garbage is freed before collect() returns even
// when collect() runs inside a cascade of deaths (a callback's).
struct DeathScope {
  int depth;
  int limit;
  std::uintptr_t base;
};
DeathScope open_death_scope(int limit) noexcept;
void close_death_scope(const DeathScope& saved) noexcept;

template <class F>
void for_each_heap(F&& f) {
  std::uint32_t n = heap_limit();
  for (std::uint32_t i = 0; i < n; ++i)
    if (Heap* h = heap_at(i)) f(*h);
}

}  // namespace weakref::detail
