// How an object dies (CPython's protocol, SPEC.md "How an object dies").
//
// The thread whose decref takes the strong count to zero runs the death:
//
//   1. untrack: a traced object leaves its collector heap first, so that a
//      collection started from a callback sees the references the dying
//      object still holds as outside references (never as garbage);
//   2. trashcan: past kMaxDepth nested deaths on this thread, the death is
//      queued and run by the outermost death on this thread, iteratively, so
//      releasing a 10-million-long chain never overflows the stack (the
//      collector lowers the limit while it breaks up garbage: see
//      kCollectorNesting in src/gc.cpp);
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
#include "weakref/detail/object.hpp"
#include "weakref/detail/weak_object.hpp"
#include "weakref/strong.hpp"
#include "weakref/unraisable.hpp"

namespace weakref::detail {

using namespace bits;

// ---------------------------------------------------------------------------
// Blocks

void* allocate_block(const TypeInfo& info) {
  void* p;
  if (info.align > 16)
    p = ::operator new(info.block_size, std::align_val_t(info.align));
  else
    p = pool_allocate(info.block_size);
  if (info.trace) {
    auto* g = reinterpret_cast<GcHead*>(static_cast<char*>(p) + info.offset -
                                        sizeof(ObjectHeader) - sizeof(GcHead));
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

// The word after a strong increment on this thread (inline form).
std::uint64_t incremented(std::uint64_t w) noexcept {
  std::uint64_t n = w + kOne;
  if (w & kFrozen) n |= kTouched;
  const std::uint32_t idx = heap(w);
  if (idx != kNoHeap && idx != tls_heap_index) n |= kShared;
  return n;
}

void incref_side(SideTable* s) noexcept {
  std::uint64_t old = rmw_fetch_add(s->word, kOne, std::memory_order_relaxed);
  if (old & kFrozen) rmw_fetch_or(s->word, kTouched, std::memory_order_relaxed);
}

void incref_slow(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (w & kSide) {
      incref_side(side_of(w));
      return;
    }
    if (h->word.compare_exchange_weak(w, incremented(w), std::memory_order_acquire,
                                      std::memory_order_acquire))
      return;
  }
}

void decref_side_word(std::uint64_t w) noexcept { decref_side(side_of(w)); }

bool incref_if_alive(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    if (w & kSide) {
      SideTable* s = side_of(w);
      std::uint64_t x = s->word.load(std::memory_order_relaxed);
      for (;;) {
        if (count(x) == 0) return false;
        std::uint64_t n = x + kOne;
        if (x & kFrozen) n |= kTouched;
        if (s->word.compare_exchange_weak(x, n, std::memory_order_acquire,
                                          std::memory_order_relaxed))
          return true;
      }
    }
    if (count(w) == 0) return false;
    if (h->word.compare_exchange_weak(w, incremented(w), std::memory_order_acquire,
                                      std::memory_order_acquire))
      return true;
  }
}

std::uint32_t use_count(const ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  if (w & kSide) w = side_of(w)->word.load(std::memory_order_relaxed);
  return count(w);
}

void side_release(SideTable* s, std::uint32_t units) noexcept {
  if (rmw_fetch_sub(s->weak, units, std::memory_order_acq_rel) == units) free_side(s);
}

// ---------------------------------------------------------------------------
// Death

namespace {

constexpr int kMaxDepth = 50;  // CPython's trashcan limit (PyTrash_UNWIND_LEVEL)

// Deaths queued past kMaxDepth: a stack, run by the outermost death of the
// thread (last queued, first run, as CPython's trashcan). Its first
// kInlineDeaths slots are part of the thread_local, which stays trivial so
// that it is usable at any point of thread shutdown; past them the stack
// grows in malloc'd memory, given back when the outermost death has emptied
// it. (The dying objects themselves cannot carry the link: an object with
// weakrefs has none of its own words free while other threads may still
// look at its side table, and a side table field for it would cost 8 bytes
// on every weakly referenced object.) If that memory cannot be had, the
// death runs at once, one level deeper.
constexpr std::size_t kInlineDeaths = 32;

struct DeathQueue {
  int depth = 0;
  int limit = kMaxDepth;
  std::size_t size = 0;
  std::size_t cap = kInlineDeaths;
  ObjectHeader** spill = nullptr;  // malloc'd, cap slots, when cap > inline
  ObjectHeader* inline_slots[kInlineDeaths] = {};

  ObjectHeader** slots() noexcept { return spill ? spill : inline_slots; }

  bool push(ObjectHeader* h) noexcept {
    if (size == cap && !grow()) [[unlikely]]
      return false;
    slots()[size++] = h;
    return true;
  }
  // Out of line: die() stays small enough to need few registers.
  [[gnu::noinline]] bool grow() noexcept {
    const std::size_t n = cap * 2;
    auto* p = static_cast<ObjectHeader**>(std::malloc(n * sizeof(ObjectHeader*)));
    if (!p) return false;
    std::memcpy(p, slots(), size * sizeof(ObjectHeader*));
    std::free(spill);
    spill = p;
    cap = n;
    return true;
  }
  ObjectHeader* pop() noexcept { return size ? slots()[--size] : nullptr; }
  void release_spill() noexcept {
    std::free(spill);
    spill = nullptr;
    cap = kInlineDeaths;
  }
};
static_assert(std::is_trivially_destructible_v<DeathQueue>);
constinit thread_local DeathQueue tls_deaths;  // no initialization guard

std::atomic<std::uint64_t>& active_word(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  return (w & kSide) ? side_of(w)->word : h->word;
}

// Step 3: returns true when tp_finalize resurrected the object.
bool run_tp_finalize(ObjectHeader* h) noexcept {
  std::atomic<std::uint64_t>& word = active_word(h);
  std::uint64_t w = word.load(std::memory_order_relaxed);
  for (;;) {
    if (w & kFinalized) return false;
    if (word.compare_exchange_weak(w, (w + kOne) | kFinalized, std::memory_order_acq_rel))
      break;
  }
  if (h->traced()) track_again(h);
  try {
    h->type->finalize(h->object());
  } catch (...) {
    report_finalize_exception(h);
  }
  if (h->traced()) untrack(h);
  // Look the word up again: the hook may have made the first weakref to the
  // object, moving the count to a new side table (CPython bug #1377858's
  // case, a weakref made in __del__).
  std::atomic<std::uint64_t>& after = active_word(h);
  w = after.load(std::memory_order_relaxed);
  while (!after.compare_exchange_weak(w, w - kOne, std::memory_order_acq_rel)) {
  }
  if (count(w) == 1) return false;
  // Resurrected: someone took a new strong reference. Its release will run
  // the death again, without tp_finalize.
  if (h->traced()) track_again(h);
  return true;
}

void die_now(ObjectHeader* h) noexcept {
  if (h->type->finalize && run_tp_finalize(h)) return;
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  if (w & kSide)
    die_with_weakrefs(h, side_of(w));  // steps 4-6, src/weak_object.cpp
  else
    h->type->destroy(h);
}

// The outermost death of the thread runs the queued ones.
[[gnu::noinline]] void run_queued_deaths(DeathQueue& q) noexcept {
  while (ObjectHeader* p = q.pop()) die_now(p);
  if (q.spill) q.release_spill();
}

}  // namespace

void die(ObjectHeader* h) noexcept {
  if (h->traced()) untrack(h);
  DeathQueue& q = tls_deaths;
  if (q.depth >= q.limit && q.push(h)) return;
  ++q.depth;
  die_now(h);
  if (q.depth == 1 && q.size) run_queued_deaths(q);
  --q.depth;
}

int exchange_death_nesting_limit(int limit) noexcept {
  return std::exchange(tls_deaths.limit, limit);
}

// ---------------------------------------------------------------------------
// Names and text

const char* type_name(const std::type_info& t) noexcept {
  static std::mutex mu;
  static auto* names = new std::unordered_map<const std::type_info*, std::string>;
  try {
    std::lock_guard<std::mutex> g(mu);
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
