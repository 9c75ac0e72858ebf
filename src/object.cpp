// How an object dies (CPython's protocol, SPEC.md "How an object dies").
//
// The thread whose decref takes the strong count to zero runs the death:
//
//   1. untrack: a traced object leaves its collector heap first, so that a
//      collection started from a callback sees the references the dying
//      object still holds as outside references (never as garbage);
//   2. trashcan: past kMaxDepth nested deaths on this thread, the death is
//      queued and run by the outermost death on this thread, iteratively, so
//      releasing a 10-million-long chain never overflows the stack. The
//      queue never allocates (it is linked through the dying objects: see
//      DeathQueue below), so this holds when memory is exhausted too. A
//      collection opens a death scope while it breaks up garbage (a lower
//      limit, counted from the collection, whose queued deaths run before
//      the collection returns: kCollectorNesting in src/gc/collect.cpp), so that a
//      collection run from inside a cascade of deaths frees its garbage
//      before it returns, as one run from the top does;
//   3. tp_finalize (PEP 442), once per object: the count is set back to 1
//      while it runs; if it is still above 0 afterwards the object was
//      resurrected and the death stops here;
//   4. weakrefs: all of them are cleared at once and the callbacks of those
//      still held are gathered (callback_order: newest first); only then do
//      the callbacks run, each exception going to the unraisable hook;
//   5. ~T runs (releasing members, depth-first: each released member dies
//      completely before the next is released) and the block is freed;
//   6. the side table loses the object's unit and is freed with the last
//      weakref object.
// Steps 4-6 are die_with_weakrefs (src/weak_object.cpp) for an object with
// a side table: when its only weakref is a basic ref that nobody holds, no
// callback can run and nobody else can reach the side table, and the death
// frees both without a lock or an atomic read-modify-write.
//
// Threads: steps 1-6 run on one thread. Weak lockers on other threads fail
// from the moment the count is zero (step 0), so no one else can reach the
// object, nor make a new weakref to it (that takes a strong reference). The
// only shared state touched is the heap (under its lock) and the side table
// (under its lock).
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <ostream>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define WEAKREF_HAVE_CXXABI 1
#endif

#include "alloc.hpp"
#include "heap.hpp"
#include "thread_check.hpp"
#include "weakref/detail/atomics.hpp"
#include "weakref/detail/dcheck.hpp"
#include "weakref/detail/locks.hpp"
#include "weakref/detail/object.hpp"
#include "weakref/detail/weak_object.hpp"
#include "weakref/strong.hpp"
#include "weakref/unraisable.hpp"

namespace weakref::detail {

// ---------------------------------------------------------------------------
// Blocks

void* allocate_block(const TypeInfo& info) {
  void* p;
  if (info.align > 16)
    p = ::operator new(info.block_size, std::align_val_t(info.align));
  else
    p = pool_allocate(info.block_size);
  if (info.trace) {
    auto* g = reinterpret_cast<GcHead*>(static_cast<char*>(p) + info.offset - sizeof(ObjectHeader) -
                                        sizeof(GcHead));
    g->next = nullptr;
    g->prev = 0;
  }
  return p;
}

void free_block(void* block, const TypeInfo& info) noexcept {
  if (info.align > 16)
    ::operator delete(block, std::align_val_t(info.align));
  else
    pool_deallocate(block, info.block_size);
}

// ---------------------------------------------------------------------------
// Counts

// The header word after a strong increment on this thread (inline form).
HeaderWord incremented(HeaderWord w) noexcept {
  HeaderWord n = w.plus();
  if (w.frozen()) n = n.with(HeaderWord::kTouched);
  const std::uint32_t idx = w.heap();
  if (idx != kNoHeap && idx != tls_heap_index) n = n.with(HeaderWord::kShared);
  return n;
}

void incref_side(SideTable* s) noexcept {
  const SideWord old{rmw_fetch_add(s->word, SideWord::kOne, std::memory_order_relaxed)};
  WEAKREF_DCHECK(old.count() > 0,
                 "incref of an object whose count is 0 (side word; the caller holds no reference)");
  WEAKREF_DCHECK(old.count() < SideWord::kMaxCount, "strong count overflow (side word)");
  if (old.frozen())
    rmw_fetch_or(s->word, std::uint64_t{SideWord::kTouched}, std::memory_order_relaxed);
}

void incref_slow(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);  // (as in incref)
  for (;;) {
    if (HeaderWord(w).has_side()) {
      incref_side(HeaderWord(w).side());
      return;
    }
    if (h->word.compare_exchange_weak(w, incremented(HeaderWord(w)).raw(),
                                      std::memory_order_acquire, std::memory_order_acquire))
      return;
  }
}

void decref_side_word(std::uint64_t w) noexcept { decref_side(HeaderWord(w).side()); }

bool incref_if_alive(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);  // (as in incref)
  for (;;) {
    if (HeaderWord(w).has_side()) {
      SideTable* s = HeaderWord(w).side();
      std::uint64_t x = s->word.load(std::memory_order_relaxed);
      for (;;) {
        if (SideWord(x).count() == 0) return false;
        SideWord n = SideWord(x).plus();
        if (SideWord(x).frozen()) n = n.with(SideWord::kTouched);
        if (s->word.compare_exchange_weak(x, n.raw(), std::memory_order_acquire,
                                          std::memory_order_relaxed))
          return true;
      }
    }
    if (HeaderWord(w).count() == 0) return false;
    if (h->word.compare_exchange_weak(w, incremented(HeaderWord(w)).raw(),
                                      std::memory_order_acquire, std::memory_order_acquire))
      return true;
  }
}

std::uint32_t use_count(const ObjectHeader* h) noexcept {
  return h->count_word(std::memory_order_relaxed).count();
}

// A caller that reads the count at its own units holds them all: the object's
// unit is gone (or is among them: its death has ended), and units are added
// only while the object's unit is held (a new weakref needs the object
// alive; the collector clears the weakrefs of objects that still hold it;
// a death gives units out before it drops its own). So nobody else can
// change the count any more, and the side table goes with no RMW, as the
// quiet death's goes (weak_object.cpp). (Acquire: the releases of the other
// units happened before the free.)
void side_release(SideTable* s, std::uint32_t units) noexcept {
  if (s->weak.load(std::memory_order_acquire) == units) {
    free_side(s);
    return;
  }
  const std::uint32_t old = rmw_fetch_sub(s->weak, units, std::memory_order_acq_rel);
  WEAKREF_DCHECK(old >= units, "SideTable::weak released below 0");
  if (old == units) free_side(s);
}

// ---------------------------------------------------------------------------
// Death

namespace {

constexpr int kMaxDepth = 50;  // CPython's trashcan limit (PyTrash_UNWIND_LEVEL)

// Deaths queued past the nesting limit: a stack (last queued, first run, as
// CPython's trashcan), run by the outermost death of the current death scope
// (see DeathScope in heap.hpp). It never allocates, so it cannot fail: it is
// linked through memory that a dying object no longer needs and that no
// other thread reads once its count is 0 (the queue's invariant):
//
//   * a traced object's GcHead: die() has untracked it, so it is in no list
//     (GcHead::next is null, which is what pop restores); the collectors
//     read the GcHead only of objects in their heap's lists or reached
//     through a strong member, and a count of 0 means neither;
//   * an untraced object's count word, in the inline form: no weakref exists
//     to look at it and no Strong to read it. It holds 0 then (untraced
//     objects carry no heap index and are never frozen or shared), or
//     kFinalized after a resurrection; the entry's tag says which, and pop
//     writes it back;
//   * an untraced object with a side table: its header word (weak lockers
//     read the side table's word, never the header's), the entry being the
//     side table itself (its `object` gives the header back), and pop writes
//     the side form back into the header.
//
// An entry is such a pointer with the tag in its low 2 bits (headers are
// 16-aligned, side tables 8-aligned). The links live in the dying objects,
// so a million queued deaths cost no memory at all, and releasing a graph
// of any size or shape never nests deeper than the limit, even when no
// memory is left.
using Entry = std::uintptr_t;
constexpr Entry kTagTraced = 0;     // ObjectHeader*, link in its GcHead
constexpr Entry kTagInline = 1;     // ObjectHeader*, link in its word (was 0)
constexpr Entry kTagInlineFin = 2;  // same, the word was kFinalized
constexpr Entry kTagSide = 3;       // SideTable*, link in object's word
constexpr Entry kTagMask = 3;

struct DeathQueue {
  int depth = 0;          // deaths running on this thread in this scope
  int limit = kMaxDepth;  // past it, deaths are queued
  Entry top = 0;          // last queued (0: none)
  Entry base = 0;         // top when the current scope opened: not ours

  // Out of line: die() stays small enough to need few registers.
  [[gnu::noinline]] void push(ObjectHeader* h) noexcept {
    Entry e;
    if (h->traced()) {
      WEAKREF_DCHECK(h->gc()->next == nullptr, "a queued death's GcHead is still in a heap list");
      h->gc()->next = reinterpret_cast<GcHead*>(top);
      e = reinterpret_cast<Entry>(h) | kTagTraced;
    } else {
      const HeaderWord w{h->word.load(std::memory_order_relaxed)};
      if (w.has_side()) {
        e = reinterpret_cast<Entry>(w.side()) | kTagSide;
      } else {
        WEAKREF_DCHECK(w == HeaderWord() || w == HeaderWord().with(HeaderWord::kFinalized),
                       "an untraced dying object's inline word is 0 or kFinalized");
        e = reinterpret_cast<Entry>(h) | (w.finalized() ? kTagInlineFin : kTagInline);
      }
      h->word.store(top, std::memory_order_relaxed);
    }
    top = e;
  }
  // The last queued death, its borrowed word restored (top != base).
  ObjectHeader* pop() noexcept {
    WEAKREF_DCHECK(top != base, "pop of an empty death queue");
    const Entry e = top;
    const Entry tag = e & kTagMask;
    if (tag == kTagSide) {
      auto* s = reinterpret_cast<SideTable*>(e & ~kTagMask);
      ObjectHeader* h = s->object;
      top = h->word.load(std::memory_order_relaxed);
      h->word.store(HeaderWord::of_side(s).raw(), std::memory_order_relaxed);
      return h;
    }
    auto* h = reinterpret_cast<ObjectHeader*>(e & ~kTagMask);
    if (tag == kTagTraced) {
      top = reinterpret_cast<Entry>(h->gc()->next);
      h->gc()->next = nullptr;
    } else {
      top = h->word.load(std::memory_order_relaxed);
      h->word.store(tag == kTagInlineFin ? HeaderWord().with(HeaderWord::kFinalized).raw() : 0,
                    std::memory_order_relaxed);
    }
    return h;
  }
};
static_assert(std::is_trivially_destructible_v<DeathQueue>);
static_assert(alignof(ObjectHeader) > kTagMask && alignof(SideTable) > kTagMask);
WEAKREF_TLS_INITIAL_EXEC constinit thread_local DeathQueue tls_deaths;  // no initialization guard

// Step 3: returns true when tp_finalize resurrected the object.
bool run_tp_finalize(ObjectHeader* h) noexcept {
  // The count is 0: no other thread holds h, so its word cannot switch to
  // the side form meanwhile.
  std::atomic<std::uint64_t>& word = h->active_word();
  std::uint64_t raw = word.load(std::memory_order_relaxed);
  for (;;) {
    const ActiveWord w{raw};
    if (w.finalized()) return false;
    if (word.compare_exchange_weak(raw, w.plus().with(ActiveWord::kFinalized).raw(),
                                   std::memory_order_acq_rel))
      break;
  }
  if (h->traced()) track_again(h);
  try {
    h->type->finalize(h->object());
  } catch (...) {
    report_finalize_exception(h);
  }
  if (h->traced()) untrack(h);
  // Drop the hook's reference as decref does, following the side form: the
  // hook may have made the first weakref to the object, moving the count to
  // a new side table (CPython bug #1377858's case, a weakref made in
  // __del__), or handed the object to another thread, which may make it
  // while this runs.
  std::uint64_t old = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (HeaderWord(old).has_side()) {
      old = rmw_fetch_sub(HeaderWord(old).side()->word, SideWord::kOne, std::memory_order_acq_rel);
      break;
    }
    if (h->word.compare_exchange_weak(old, HeaderWord(old).minus().raw(), std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      break;
  }
  WEAKREF_DCHECK(ActiveWord(old).count() > 0, "tp_finalize's own reference is gone");
  if (ActiveWord(old).count() == 1) return false;
  // Resurrected: someone took a new strong reference. Its release will run
  // the death again, without tp_finalize.
  if (h->traced()) {
    track_again(h);
    member_index_add(h);  // checked again (src/thread_check.hpp)
  }
  return true;
}

// Inline in die (one call and one load of h->type less per death) and in
// run_queued_deaths.
[[gnu::always_inline]] inline void die_now(ObjectHeader* h) noexcept {
  const TypeInfo* type = h->type;
  if (type->finalize && run_tp_finalize(h)) return;
  const HeaderWord w{h->word.load(std::memory_order_acquire)};
  if (w.has_side())
    die_with_weakrefs(h, w.side());  // steps 4-6, src/weak_object.cpp
  else
    type->destroy(h);  // (tp_finalize cannot change the type)
}

// The outermost death of the scope runs the queued ones.
[[gnu::noinline]] void run_queued_deaths(DeathQueue& q) noexcept {
  while (q.top != q.base) die_now(q.pop());
}

}  // namespace

void die(ObjectHeader* h) noexcept {
  WEAKREF_DCHECK(h->count_word(std::memory_order_relaxed).count() == 0,
                 "die() of an object whose count is not 0");
  if (h->traced()) untrack(h);
  DeathQueue& q = tls_deaths;
  if (q.depth >= q.limit) [[unlikely]] {
    q.push(h);
    return;
  }
  ++q.depth;
  die_now(h);
  if (q.depth == 1 && q.top != q.base) run_queued_deaths(q);
  --q.depth;
}

DeathScope open_death_scope(int limit) noexcept {
  DeathQueue& q = tls_deaths;
  DeathScope saved{q.depth, q.limit, q.base};
  q.depth = 0;
  q.limit = limit;
  q.base = q.top;
  return saved;
}

void close_death_scope(const DeathScope& saved) noexcept {
  DeathQueue& q = tls_deaths;
  q.depth = 1;  // (only with a limit of 0 can anything be left here)
  run_queued_deaths(q);
  q.depth = saved.depth;
  q.limit = saved.limit;
  q.base = saved.base;
}

// ---------------------------------------------------------------------------
// Names and text

namespace {
using TypeNames = std::unordered_map<const std::type_info*, std::string>;
TypeNames* type_names() {
  static auto* names = new TypeNames;  // never destroyed: deaths at exit name types
  return names;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_type_names_made = (type_names(), true);
}  // namespace

const char* type_name(const std::type_info& t) noexcept {
  static constinit Mutex mu;
  TypeNames* names = type_names();
  try {
    std::lock_guard<Mutex> g(mu);
    auto it = names->find(&t);
    if (it != names->end()) return it->second.c_str();
    std::string name = t.name();
#ifdef WEAKREF_HAVE_CXXABI
    int status = 0;
    char* d = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
    if (status == 0 && d) name = d;
    std::free(d);
#endif
    return names->emplace(&t, std::move(name)).first->second.c_str();
  } catch (...) {
    return t.name();
  }
}

void report_finalize_exception(ObjectHeader* h) noexcept {
  std::string what;
  try {
    // (appended piece by piece: GCC 12 -O3 warns falsely on operator+ here)
    what = "<";
    what += type_name(*h->type->type);
    what += " object>.tp_finalize";
  } catch (...) {
  }
  write_unraisable(std::current_exception(), "Exception ignored in", std::move(what));
}

}  // namespace weakref::detail

namespace weakref {

std::ostream& write_object(std::ostream& os, const detail::ObjectHeader* h) {
  if (!h) return os << "None";
  auto* hh = const_cast<detail::ObjectHeader*>(h);
  return os << '<' << detail::type_name(*h->type->type) << " object at "
            << static_cast<const void*>(hh->object()) << '>';
}

}  // namespace weakref
