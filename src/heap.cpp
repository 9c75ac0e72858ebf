// Collector heaps: registry, per-thread ownership, shared heaps and the
// shared heaps each thread holds, track / untrack, and the merge into the
// orphan heap at thread exit and at a shared heap's destruction. The model and the lock rules are
// at the top of heap.hpp.
#include "heap.hpp"

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "thread_check.hpp"
#include "weakref/detail/dcheck.hpp"

namespace weakref::detail {

namespace {

// Heaps are never freed (an index may be reused once its heap is empty), so
// a Heap* read from the table stays valid forever.
std::atomic<Heap*> g_heaps[kMaxHeaps];
std::atomic<std::uint32_t> g_limit{kOrphanHeap + 1};

struct Registry {
  Mutex mu;
  std::vector<Heap*> free;  // empty heaps of exited threads and destroyed
                            // shared heaps, for reuse
};
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_registry_made = (registry(), true);

Heap* make_orphan_heap() {
  auto* h = new Heap;
  h->index = kOrphanHeap;
  g_heaps[kOrphanHeap].store(h, std::memory_order_release);
  return h;
}

// A heap of a new index, or a free one; null when every index is in use.
Heap* new_heap(bool shared) {
  Registry& r = registry();
  std::lock_guard<Mutex> g(r.mu);
  if (!r.free.empty()) {
    Heap* h = r.free.back();
    r.free.pop_back();
    h->shared = shared;
    return h;
  }
  std::uint32_t i = g_limit.load(std::memory_order_relaxed);
  if (i >= kMaxHeaps) return nullptr;
  auto* h = new Heap;
  h->index = static_cast<std::uint16_t>(i);
  h->shared = shared;
  g_heaps[i].store(h, std::memory_order_release);
  g_limit.store(i + 1, std::memory_order_release);
  return h;
}

// Gives an empty heap's index back for reuse.
void free_heap(Heap* h) noexcept {
  try {
    Registry& r = registry();
    std::lock_guard<Mutex> g(r.mu);
    h->shared = false;
    r.free.push_back(h);
  } catch (...) {
    // The heap stays unused; nothing is lost but its index.
  }
}

// Moves every object of h to the orphan heap (h's thread is exiting, or h
// is a shared heap being destroyed: no collection of h runs).
void move_all_to_orphans(Heap* h) noexcept;
void merge_into_orphans(Heap* h) noexcept;

// Owns the thread's heap; its destructor runs at thread exit.
struct HeapOwner {
  Heap* heap = nullptr;
  ~HeapOwner() {
    if (heap && heap->index != kOrphanHeap) merge_into_orphans(heap);
    heap = nullptr;
  }
};
thread_local HeapOwner tls_owner;
thread_local Heap* tls_heap = nullptr;  // trivial: readable during shutdown
thread_local bool tls_heap_gone = false;

// The links around g are whole (GcList: prev->next == g == next->prev).
[[maybe_unused]] bool linked_in_list(GcHead* g) noexcept {
  return g->next != nullptr && gc_prev(g) != nullptr && gc_prev(g)->next == g &&
         gc_prev(g->next) == g;
}

void move_all_to_orphans(Heap* h) noexcept {
  Heap* o = orphan_heap();
  {
    std::lock_guard<SpinLock> go(o->lock);
    std::lock_guard<SpinLock> gh(h->lock);
    long merged = 0;
    for (GcList* list : {&h->gen[0], &h->gen[1], &h->gen[2], &h->permanent}) {
      for (GcHead* g = list->head.next; g != &list->head; g = g->next, ++merged) {
        // Every object listed in a heap carries its index (heap.hpp); this
        // heap's thread is exiting (or, for a shared heap, nobody holds its
        // lock), so no collection of it is running.
        WEAKREF_DCHECK(heap_index_of(ObjectHeader::from_gc(g)) == h->index,
                       "an object listed in a heap carries another heap's index");
        WEAKREF_DCHECK(!(g->prev & kPrevCollecting),
                       "an object of a heap no collection runs on is marked collecting");
        set_heap_index(ObjectHeader::from_gc(g), kOrphanHeap);
      }
    }
    // Counted towards the orphan heap's full-collection heuristic (CPython's
    // long_lived_pending), which automatic collections on every thread
    // consult (orphans_pending).
    o->long_lived_pending += merged;
    orphans_pending.store(o->long_lived_pending - o->long_lived_total / 4,
                          std::memory_order_relaxed);
    for (int i = 0; i < kGenerations; ++i) h->gen[i].merge_into(o->gen[kGenerations - 1]);
    h->permanent.merge_into(o->permanent);
    for (auto& c : h->count) c.store(0, std::memory_order_relaxed);
    h->long_lived_total = h->long_lived_pending = 0;
  }
}

void merge_into_orphans(Heap* h) noexcept {
  move_all_to_orphans(h);
  tls_heap = nullptr;
  tls_heap_gone = true;
  tls_heap_index = kOrphanHeap;
  free_heap(h);
}

// The shared heaps this thread holds, one entry per lock() in effect
// (innermost last). A pointer (trivial, so readable by other thread_local
// destructors at exit), to a vector made only by threads that use a
// SharedHeap and freed at their exit by HeldOwner.
thread_local std::vector<Heap*>* tls_held = nullptr;
struct HeldOwner {
  ~HeldOwner();
};
thread_local HeldOwner tls_held_owner;

}  // namespace

constinit thread_local std::uint32_t tls_heap_index = kNoHeap;
constinit std::atomic<long> orphans_pending{0};

Heap* orphan_heap() noexcept {
  static Heap* h = make_orphan_heap();
  return h;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_orphan_heap_made = (orphan_heap(), true);

Heap* current_heap() noexcept {
  if (Heap* h = tls_heap) return h;
  if (tls_heap_gone) return orphan_heap();
  orphan_heap();  // the orphan heap exists before any other
  Heap* h;
  try {
    h = new_heap(false);
  } catch (...) {
    h = nullptr;
  }
  if (!h) h = orphan_heap();  // no memory, or 65535 live heaps: share
  tls_heap = h;
  tls_owner.heap = h;
  tls_heap_index = h->index;
  return h;
}

Heap* make_shared_heap() {
  orphan_heap();  // the orphan heap exists before any other
  Heap* h = new_heap(true);
  if (!h) throw std::length_error("weakref::SharedHeap: every heap index (65535) is in use");
  return h;
}

void destroy_shared_heap(Heap* h) noexcept {
  WEAKREF_DCHECK(h->shared && !h->collecting.load(std::memory_order_relaxed),
                 "a shared heap destroyed while it is collected");
  move_all_to_orphans(h);
  free_heap(h);
}

constinit thread_local Heap* tls_shared_heap = nullptr;

namespace {
HeldOwner::~HeldOwner() {
  // (A thread exiting while it holds a SharedHeap breaks its rules; what
  // it makes from now on goes to its own heap, or the orphan heap.)
  tls_shared_heap = nullptr;
  delete std::exchange(tls_held, nullptr);
}
}  // namespace

void push_held_shared(Heap* h) {
  if (!tls_held) {
    tls_held = new std::vector<Heap*>;
    static_cast<void>(&tls_held_owner);  // constructed: its destructor runs at exit
  }
  tls_held->push_back(h);
  tls_shared_heap = h;
}

void pop_held_shared(Heap* h) noexcept {
  std::vector<Heap*>& held = *tls_held;
  auto it = std::find(held.rbegin(), held.rend(), h);
  WEAKREF_DCHECK(it != held.rend(), "a shared heap unlocked by a thread that does not hold it");
  if (it == held.rend()) return;
  held.erase(std::next(it).base());
  tls_shared_heap = held.empty() ? nullptr : held.back();
}

bool thread_holds_shared_heap(std::uint32_t index) noexcept {
  if (!tls_shared_heap) return false;  // holds none
  for (Heap* h : *tls_held)
    if (h->index == index) return true;
  return false;
}

std::size_t held_shared_heaps(Heap** out, std::size_t skip, std::size_t cap) noexcept {
  if (!tls_shared_heap) return 0;
  std::size_t n = 0;
  const std::vector<Heap*>& held = *tls_held;
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    // Distinct: a later entry of the same heap was counted already.
    if (std::find(held.rbegin(), it, *it) != it) continue;
    if (n >= skip && n - skip < cap) out[n - skip] = *it;
    ++n;
  }
  return n;
}

Heap* heap_at(std::uint32_t index) noexcept {
  return index < kMaxHeaps ? g_heaps[index].load(std::memory_order_acquire) : nullptr;
}

std::uint32_t heap_limit() noexcept { return g_limit.load(std::memory_order_acquire); }

std::uint32_t heap_index_of(ObjectHeader* h) noexcept { return h->count_word().heap(); }

static_assert(kMaxHeaps - 1 == ActiveWord::kMaxHeap, "every heap index fits the count word");

void set_heap_index(ObjectHeader* h, std::uint32_t index, bool shared) noexcept {
  WEAKREF_DCHECK(index < kMaxHeaps, "heap index out of range");
  const std::uint64_t flag = shared ? std::uint64_t{ActiveWord::kShared} : 0;
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (HeaderWord(w).has_side()) {
      auto& sw = HeaderWord(w).side()->word;
      std::uint64_t x = sw.load(std::memory_order_relaxed);
      while (!sw.compare_exchange_weak(x, SideWord(x).with_heap(index).raw() | flag,
                                       std::memory_order_acq_rel)) {
      }
      return;
    }
    if (h->word.compare_exchange_weak(w, HeaderWord(w).with_heap(index).raw() | flag,
                                      std::memory_order_acq_rel, std::memory_order_acquire))
      return;
  }
}

Heap* lock_heap_of(ObjectHeader* h) noexcept {
  for (;;) {
    std::uint32_t i = heap_index_of(h);
    Heap* heap = heap_at(i);
    if (!heap) heap = orphan_heap();
    heap->lock.lock();
    // The one way to reach an object's GcHead outside a collection: under
    // the lock of the heap whose index the object carries.
    if (heap_index_of(h) == heap->index) return heap;
    heap->lock.unlock();
  }
}

namespace {

// Lists h in `heap`; an object of a shared heap is marked shared from the
// start (`shared`): any thread holding the heap may copy it (incref's fast
// path then), and its garbage is verified (step 5).
template <bool shared>
[[gnu::always_inline]] inline void track_into(ObjectHeader* h, Heap* heap) noexcept {
  constexpr std::uint64_t fresh =
      shared ? HeaderWord::initial().with(HeaderWord::kShared).raw() : HeaderWord::initial().raw();
  if (h->word.load(std::memory_order_relaxed) == HeaderWord::initial().raw()) {
    // Only make<T>'s reference exists: no other thread can hold the object.
    h->word.store(HeaderWord(fresh).with_heap(heap->index).raw(), std::memory_order_relaxed);
  } else {
    // The constructor took strong references to the object (self(this)) or
    // made weakrefs to it (the word may be in side form): set the heap
    // index alone, and mark the object shared, since what it handed out
    // may have reached other threads (src/gc/verify.cpp verifies it then).
    // (Those may make its first weakref meanwhile: as set_heap_index.)
    set_heap_index(h, heap->index, true);
  }
  member_index_add(h);  // WEAKREF_CHECK_THREADS (src/thread_check.hpp)
  std::lock_guard<SpinLock> g(heap->lock);
  heap->gen[0].append(h->gc());
  rmw_fetch_add(heap->count[0], 1L, std::memory_order_relaxed);
}

}  // namespace

void track(ObjectHeader* h) noexcept {
  WEAKREF_DCHECK(h->gc()->next == nullptr, "track of an object already in a heap list");
  WEAKREF_DCHECK(heap_index_of(h) == kNoHeap, "track of an object that has a heap index");
  // The innermost shared heap the thread holds, else its own.
  if (Heap* shared = tls_shared_heap) [[unlikely]]
    track_into<true>(h, shared);
  else
    track_into<false>(h, current_heap());
}

void track_again(ObjectHeader* h) noexcept {
  Heap* heap = lock_heap_of(h);
  WEAKREF_DCHECK(heap_index_of(h) == heap->index, "GcHead reached under another heap's lock");
  if (!h->gc()->next) heap->gen[0].append(h->gc());
  heap->lock.unlock();
}

constinit thread_local Heap* tls_collecting = nullptr;

void untrack(ObjectHeader* h) noexcept {
  member_index_remove(h);  // WEAKREF_CHECK_THREADS (src/thread_check.hpp)
  if (Heap* c = tls_collecting) {
    const ActiveWord w = h->count_word();
    if (w.in_collection() && w.heap() == c->index) {
      GateHold hold;  // a fork child may walk this list (fork.cpp)
      WEAKREF_DCHECK(linked_in_list(h->gc()), "the collection's garbage list is broken");
      GcList::remove(h->gc());
      return;
    }
  }
  Heap* heap = lock_heap_of(h);
  WEAKREF_DCHECK(heap_index_of(h) == heap->index, "GcHead reached under another heap's lock");
  if (h->gc()->next) {
    WEAKREF_DCHECK(linked_in_list(h->gc()), "a heap list is broken");
    GcList::remove(h->gc());
    if (heap->count[0].load(std::memory_order_relaxed) > 0)
      rmw_fetch_sub(heap->count[0], 1L, std::memory_order_relaxed);
  }
  heap->lock.unlock();
}

const void* current_collector_token() noexcept {
  static constinit thread_local char token = 0;
  return &token;
}

void heaps_after_fork_in_child() noexcept {
  for_each_heap([](Heap& h) {
    if (!h.collecting.load(std::memory_order_relaxed)) return;
    if (h.collector == current_collector_token()) return;  // this thread's own
    if (GcList* l = h.in_collection) {
      for (GcHead* g = l->head.next; g != &l->head; g = g->next) {
        ObjectHeader* o = ObjectHeader::from_gc(g);
        // (The only thread of the child: the word cannot switch meanwhile.)
        o->active_word().fetch_and(~std::uint64_t{ActiveWord::kInCollection},
                                   std::memory_order_relaxed);
        g->prev &= ~kPrevCollecting;
      }
      l->merge_into(h.gen[kGenerations - 1]);
      h.in_collection = nullptr;
    }
    h.collector = nullptr;
    h.collecting.store(false, std::memory_order_relaxed);
  });
}

}  // namespace weakref::detail
