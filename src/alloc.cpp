// The small-block allocator: every block of 512 bytes or less that the
// library allocates (objects made by make<T>, side tables, weakref objects)
// comes from here.
//
// Why: the collector walks lists of objects, and its cost is one cache miss
// per object per pass. glibc's malloc hands back freed chunks in an order
// that scatters consecutive allocations over the heap once memory has been
// reused, which made collections several times slower; and its malloc/free
// paths are long. Here, consecutive allocations of one size come from the
// same 64 KiB page, in address order at first and then from the page's own
// free list (like CPython's pymalloc).
//
// Structure
//  * A Page is 64 KiB, aligned to 64 KiB, holding blocks of one size class
//    (8, 16, 24, ..., 512 bytes). Its header is at its start, so the page of a
//    block is found by masking the block's address.
//  * A Pools object owns pages; each thread uses one Pools (tls_pools). When
//    a thread exits, its Pools gives back every empty page and its spare
//    chunk (trim), is marked `ownerless` and goes to a free stack; the next
//    new thread takes it over with the pages that still have blocks out (so
//    nothing has to be "abandoned"). Blocks that other threads free into an
//    ownerless Pools go to its pages' remote lists as usual, and the free
//    sets g_trim_pending; the pending blocks are then collected and the
//    pages and chunks they empty given back by the next thread start or
//    exit, or collection (pool_trim_exited), under the registry lock, which
//    makes its holder the owner of every Pools on the free stack. So a
//    program whose threads come and go keeps no more memory than its live
//    blocks need (docs/design.md has the figures, issue 13).
//  * allocate: from the current page of the size class: its local free list,
//    else its untouched tail, else another page with free blocks, else a
//    page that other threads freed blocks into, else a new page.
//  * deallocate on the owning thread: push on the page's local free list. A
//    page whose blocks are all free goes back to its 2 MiB chunk (one spare
//    page per class is kept); a chunk whose pages are all free goes back to
//    the system (one spare chunk per Pools is kept).
//  * deallocate on another thread: push on the page's `remote` stack (lock
//    free); the push that makes the stack non-empty also pushes the page on
//    its owner's `remote_pages` stack, where the owner collects it.
//
// Ownership and synchronization
//  * Page::local, bump, used and the available list links belong to the
//    owning Pools, i.e. to the one thread using it at a time (or, while it
//    is on the free stack, to the holder of the registry lock). Pages are
//    never transferred: Pools are (at thread exit / thread start, through a
//    mutex, which orders the two threads).
//  * Page::remote: many pushers, one taker (the owner, by exchange). A page
//    is on its owner's remote_pages stack at most once: only the push that
//    finds `remote` empty adds it, and the owner takes it off the stack
//    before it empties `remote`.
//  * `used` counts blocks handed out and not yet back on the local list; a
//    page is released only at used == 0, when no block of it is anywhere
//    else, so no remote push can follow.
//
// Routing (the section "Routing" below): the pools hide blocks from the
// memory tools a user runs (a use-after-free in a freed pool block, or a
// leaked cycle inside a page, is invisible to AddressSanitizer, LeakSanitizer
// and valgrind). So blocks come from the pools only when no such tool
// watches the process; otherwise every block goes to operator new, which
// the tool sees. Decided once, at the first allocation, for the whole
// process: the library itself built with AddressSanitizer; or the program
// built with it, LeakSanitizer or HWASan (their runtime's interface
// functions are present: weak references here, null without them); or a
// valgrind tool that replaces the allocator (memcheck, massif, dhat,
// helgrind, drd: their preload library is in LD_PRELOAD, and
// RUNNING_ON_VALGRIND, from the header-only valgrind.h when it was there at
// build time, confirms it; callgrind and cachegrind keep the pools); or
// WEAKREF_ALLOCATOR=system in the environment (=pools forces the pools).
// The pools' fast paths then test one relaxed load (g_pool_limit) in place
// of the constant size limit.
#include "alloc.hpp"

#include "weakref/detail/alloc_stats.hpp"
#include "weakref/detail/dcheck.hpp"

#include "weakref/detail/fault_injection.hpp"
#include "weakref/detail/locks.hpp"
#include "weakref/detail/object.hpp"
#include "weakref/detail/weak_object.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <mutex>
#include <new>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEAKREF_HAVE_VALGRIND_H 1
#endif

namespace weakref::detail {

// --- Fault injection (weakref/detail/fault_injection.hpp) --------------------

namespace fault {

#if defined(WEAKREF_FAULT_INJECTION)
namespace {
struct State {
  std::uint64_t count = 0;
  std::uint64_t at = 0;  // 0: disarmed
  bool from = false;     // fail every point from `at` on
  bool injected = false;
};
constinit thread_local State tls_fault;
}  // namespace

bool built_in() noexcept { return true; }
void fail_at(std::uint64_t n) noexcept { tls_fault = {0, n, false, false}; }
void fail_from(std::uint64_t n) noexcept { tls_fault = {0, n, true, false}; }
void disarm() noexcept { tls_fault.at = 0; }
std::uint64_t count() noexcept { return tls_fault.count; }
bool injected() noexcept { return tls_fault.injected; }
bool should_fail() noexcept {
  State& s = tls_fault;
  const std::uint64_t n = ++s.count;
  if (s.at == 0 || n < s.at || (n > s.at && !s.from)) return false;
  s.injected = true;
  return true;
}
#else
bool built_in() noexcept { return false; }
void fail_at(std::uint64_t) noexcept {}
void fail_from(std::uint64_t) noexcept {}
void disarm() noexcept {}
std::uint64_t count() noexcept { return 0; }
bool injected() noexcept { return false; }
bool should_fail() noexcept { return false; }
#endif

}  // namespace fault

namespace {

// One allocation point of the library (see fault_injection.hpp): throws
// std::bad_alloc when the test hook says so; nothing without the hook.
inline void fault_point() {
#if defined(WEAKREF_FAULT_INJECTION)
  if (fault::should_fail()) throw std::bad_alloc();
#endif
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUsePools = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kUsePools = false;
#else
constexpr bool kUsePools = true;
#endif
#else
constexpr bool kUsePools = true;
#endif

constexpr std::size_t kPageSize = 64 * 1024;
// Size classes step by 8 bytes: a block is aligned to the largest power of
// two (up to 64) dividing its class size, which is at least the alignment
// of any type of that size; objects' blocks are rounded up to 16 bytes by
// their TypeInfo (the header is 16-aligned). The step matters for the
// 8-mod-16 sizes the library allocates most: a basic weakref object is 40
// bytes and a weak container's entry weakref 56, not 48 and 64.
constexpr std::size_t kGranule = 8;
constexpr std::size_t kClasses = kMaxPooledSize / kGranule;
// Side tables have a class of their own, apart from the objects of their
// size: an object and the side table made right after it would otherwise
// share a line, so the side tables that weak lookups go through would be
// spread over twice the lines (docs/performance.md, "Weak containers").
// Apart, they are two to a line.
constexpr std::uint32_t kSideClass = kClasses;

constexpr std::size_t class_block_size(std::uint32_t c) {
  return c == kSideClass ? sizeof(SideTable) : (c + 1) * kGranule;
}

struct Pools;

struct alignas(64) Page {
  std::atomic<void*> remote{nullptr};  // blocks freed by other threads
  Page* remote_next = nullptr;         // link in owner->remote_pages
  Pools* const owner;
  const std::uint32_t block_size;
  const std::uint32_t cls;
  // Owner only:
  void* local = nullptr;  // free list
  char* bump;             // untouched tail: [bump, end)
  char* const end;
  std::uint32_t used = 0;
  bool available = false;  // on the class's available list
  bool current = false;    // its class's current page (ClassPool::current)
  Page* prev = nullptr;    // available list links
  Page* next = nullptr;
  struct Chunk* const chunk;  // the chunk this page was carved from

  Page(Pools* o, std::uint32_t c, struct Chunk* ch)
      : owner(o),
        block_size(static_cast<std::uint32_t>(class_block_size(c))),
        cls(c),
        bump(reinterpret_cast<char*>(this) + header_size()),
        end(reinterpret_cast<char*>(this) + kPageSize -
            (kPageSize - header_size()) % class_block_size(c)),
        chunk(ch) {}

  static constexpr std::size_t header_size() { return (sizeof(Page) + 63) / 64 * 64; }
  bool has_free() const noexcept { return local != nullptr || bump < end; }
};

struct ClassPool {
  Page* current = nullptr;
  Page* available = nullptr;  // pages (other than current) with free blocks
  Page* spare = nullptr;      // an empty page kept for reuse
};

// Pages are carved from 2 MiB chunks, one system allocation per 32 pages:
// glibc serves an aligned 64 KiB request with its own mmap (and the free with
// a munmap), which made page turnover the largest cost of freeing garbage.
// A chunk whose pages are all free again goes back to the system, except one
// kept per Pools for reuse. Chunks belong to their Pools (owner thread only).
struct Chunk {
  void* base;                  // kChunkSize bytes, kChunkSize-aligned
  std::uint32_t carved = 0;    // pages handed out from the untouched tail
  std::uint32_t in_use = 0;    // carved pages that hold a live Page
  void* free_pages = nullptr;  // released page memory (linked through it)
  Chunk* prev = nullptr;       // Pools::partial links (chunks with room)
  Chunk* next = nullptr;
  bool partial = false;
};
constexpr std::size_t kChunkPages = 32;
constexpr std::size_t kChunkSize = kChunkPages * kPageSize;

struct Pools {
  std::atomic<Page*> remote_pages{nullptr};
  ClassPool cls[kClasses + 1];  // the size classes, then kSideClass
  Pools* next_free = nullptr;
  Chunk* partial = nullptr;            // chunks with free or uncarved pages
  Chunk* spare_chunk = nullptr;        // an empty chunk kept for reuse
  std::size_t pages = 0;               // pages carved and not given back
  std::atomic<bool> ownerless{false};  // on the free stack (its thread exited)
};

// Chunks held from the system, process-wide (pool_system_bytes()).
std::atomic<std::size_t> g_chunks{0};
// Set by a remote free that made a page of an ownerless Pools pending: the
// free stack has memory to give back (trim_ownerless).
std::atomic<bool> g_trim_pending{false};

// --- Pools per thread -------------------------------------------------------

struct PoolRegistry {
  Mutex mu;
  Pools* free = nullptr;
};
PoolRegistry& registry() {
  static auto* r = new PoolRegistry;  // never destroyed: used during exit
  return *r;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_registry_made = (registry(), true);

void trim(Pools* p) noexcept;
void trim_ownerless_locked(PoolRegistry& r) noexcept;

Pools* take_pools() {
  PoolRegistry& r = registry();
  {
    std::lock_guard<Mutex> g(r.mu);
    if (g_trim_pending.load(std::memory_order_relaxed)) trim_ownerless_locked(r);
    if (Pools* p = r.free) {
      r.free = p->next_free;
      p->next_free = nullptr;
      p->ownerless.store(false, std::memory_order_relaxed);
      return p;
    }
  }
  return new Pools;
}

// At thread exit. The Pools gives back what it holds empty and goes to the
// free stack, where its pages with blocks still out stay until a new thread
// takes it over; what other threads free into it meanwhile is given back
// by trim_ownerless.
void give_back_pools(Pools* p) noexcept {
  // Before the trim's exchange of remote_pages (acq_rel): a remote free
  // that pushes after it sees `ownerless` and asks for a trim.
  p->ownerless.store(true, std::memory_order_seq_cst);
  trim(p);
  PoolRegistry& r = registry();
  std::lock_guard<Mutex> g(r.mu);
  p->next_free = r.free;
  r.free = p;
  if (g_trim_pending.load(std::memory_order_relaxed)) trim_ownerless_locked(r);
}

WEAKREF_TLS_INITIAL_EXEC thread_local Pools* tls_pools =
    nullptr;  // trivial: readable during shutdown

struct PoolsOwner {
  ~PoolsOwner() {
    if (Pools* p = tls_pools) {
      tls_pools = nullptr;
      give_back_pools(p);
    }
  }
};
thread_local PoolsOwner tls_pools_owner;

// A thread's first allocation: out of line, so that the allocation fast
// path stays small enough to need few registers.
[[gnu::noinline]] Pools* first_pools() {
  Pools* p = take_pools();
  tls_pools = p;
  (void)&tls_pools_owner;  // registers the thread-exit hand-back
  return p;
}

// --- Pages ------------------------------------------------------------------

Page* page_of(void* block) noexcept {
  return reinterpret_cast<Page*>(reinterpret_cast<std::uintptr_t>(block) & ~(kPageSize - 1));
}

// The two owner-only doubly linked lists here (a class's available pages,
// a Pools' chunks with room) share these: `head` is the list, and the node's
// prev/next are its links.
template <class Node>
void list_push(Node*& head, Node* n) noexcept {
  n->prev = nullptr;
  n->next = head;
  if (head) head->prev = n;
  head = n;
}

template <class Node>
void list_remove(Node*& head, Node* n) noexcept {
  if (n->prev)
    n->prev->next = n->next;
  else
    head = n->next;
  if (n->next) n->next->prev = n->prev;
  n->prev = n->next = nullptr;
}

void available_push(ClassPool& cp, Page* pg) noexcept {
  pg->available = true;
  list_push(cp.available, pg);
}

void available_remove(ClassPool& cp, Page* pg) noexcept {
  list_remove(cp.available, pg);
  pg->available = false;
}

// --- Chunks -------------------------------------------------------------------

bool chunk_has_room(const Chunk* c) noexcept {
  return c->free_pages != nullptr || c->carved < kChunkPages;
}

void partial_push(Pools* pools, Chunk* c) noexcept {
  c->partial = true;
  list_push(pools->partial, c);
}

void partial_remove(Pools* pools, Chunk* c) noexcept {
  list_remove(pools->partial, c);
  c->partial = false;
}

// Chunks after a thread's first are backed by one 2 MiB huge page where the
// system does so on request (Linux, transparent_hugepage=madvise or always):
// a collection walks every object, and freeing garbage gives whole chunks
// back, so 512 page-table entries per chunk cost TLB misses on the walks
// and page-table work on every fault and munmap (docs/performance.md, "The
// collector"). A program whose small blocks fit
// in one chunk keeps 4 KiB pages, so its resident memory stays what it
// touched.
void advise_huge_page(void* base) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  ::madvise(base, kChunkSize, MADV_HUGEPAGE);  // advice only: failure is fine
#else
  (void)base;
#endif
}

void free_chunk_memory(void* base) noexcept {
  std::free(base);
  g_chunks.fetch_sub(1, std::memory_order_relaxed);
}

// Memory for one page, from a chunk with room, else a new (or the spare)
// chunk. Pages of a fresh chunk are handed out in address order.
void* take_page_memory(Pools* pools, Chunk*& from) {
  Chunk* c = pools->partial;
  if (!c) {
    if ((c = pools->spare_chunk)) {
      pools->spare_chunk = nullptr;
    } else {
      fault_point();
      void* base = std::aligned_alloc(kChunkSize, kChunkSize);
      if (!base) throw std::bad_alloc();
      g_chunks.fetch_add(1, std::memory_order_relaxed);
      // No chunk with room and no spare: any chunk this thread holds is
      // full, so `pages` says whether this one is its first.
      if (pools->pages != 0) advise_huge_page(base);
      c = new (std::nothrow) Chunk{base};
      if (!c) {
        free_chunk_memory(base);
        throw std::bad_alloc();
      }
    }
    partial_push(pools, c);
  }
  void* mem;
  if (c->free_pages) {
    mem = c->free_pages;
    c->free_pages = *static_cast<void**>(mem);
  } else {
    mem = static_cast<char*>(c->base) + c->carved * kPageSize;
    ++c->carved;
  }
  ++c->in_use;
  ++pools->pages;
  if (!chunk_has_room(c)) partial_remove(pools, c);
  from = c;
  return mem;
}

// Gives a page's memory back to its chunk; an empty chunk becomes the spare
// or goes back to the system.
void give_page_memory(Pools* pools, Chunk* c, void* mem) noexcept {
  WEAKREF_DCHECK(c->in_use > 0 && pools->pages > 0, "page given back to a chunk twice");
  *static_cast<void**>(mem) = c->free_pages;
  c->free_pages = mem;
  --c->in_use;
  --pools->pages;
  if (c->in_use != 0) {
    if (!c->partial) partial_push(pools, c);
    return;
  }
  if (c->partial) partial_remove(pools, c);
  c->free_pages = nullptr;  // reuse starts over from the chunk's start
  c->carved = 0;
  if (!pools->spare_chunk) {
    pools->spare_chunk = c;
    return;
  }
  free_chunk_memory(c->base);
  delete c;
}

// A page with no block out: keep it as the class's spare or give it back.
void release_page(ClassPool& cp, Page* pg) noexcept {
  WEAKREF_DCHECK(pg->used == 0, "release of a page with blocks out");
  if (pg->available) available_remove(cp, pg);
  if (!cp.spare) {
    cp.spare = pg;
    return;
  }
  Pools* owner = pg->owner;
  Chunk* c = pg->chunk;
  pg->~Page();
  give_page_memory(owner, c, pg);
}

Page* new_page(Pools* owner, std::uint32_t cls) {
  ClassPool& cp = owner->cls[cls];
  if (Page* pg = cp.spare) {
    cp.spare = nullptr;
    return pg;
  }
  Chunk* c = nullptr;
  void* mem = take_page_memory(owner, c);
  return ::new (mem) Page(owner, cls, c);
}

// Moves the blocks other threads freed into pg's local list.
void collect_remote(Page* pg) noexcept {
  // acq_rel: the pusher that finds `remote` empty next writes remote_next,
  // which must come after our reset of it.
  void* list = pg->remote.exchange(nullptr, std::memory_order_acq_rel);
  while (list) {
    void* next = *static_cast<void**>(list);
    WEAKREF_DCHECK(pg->used > 0, "more blocks freed into a page than it handed out");
    *static_cast<void**>(list) = pg->local;
    pg->local = list;
    --pg->used;
    list = next;
  }
}

// Takes the pages other threads freed blocks into, collects them, and files
// each where it belongs (available list, or back to the system).
void collect_remote_pages(Pools* pools) noexcept {
  // acq_rel: see give_back_pools.
  Page* pg = pools->remote_pages.exchange(nullptr, std::memory_order_acq_rel);
  while (pg) {
    Page* next = pg->remote_next;
    WEAKREF_DCHECK(pg->owner == pools, "a page on a Pools' remote_pages stack belongs to it");
    pg->remote_next = nullptr;
    collect_remote(pg);
    ClassPool& cp = pools->cls[pg->cls];
    if (pg != cp.current) {
      if (pg->used == 0)
        release_page(cp, pg);
      else if (!pg->available && pg->has_free())
        available_push(cp, pg);
    }
    pg = next;
  }
}

void* pop_block(Page* pg) noexcept {
  WEAKREF_DCHECK(pg->has_free(), "allocation from a full page");
  void* b = pg->local;
  if (b) {
    pg->local = *static_cast<void**>(b);
  } else {
    b = pg->bump;
    pg->bump += pg->block_size;
  }
  ++pg->used;
  return b;
}

[[gnu::noinline]] void* allocate_slow(Pools* pools, std::uint32_t cls) {
  ClassPool& cp = pools->cls[cls];
  // Remote blocks are only ever collected through remote_pages, so that a
  // page is on that stack exactly while its `remote` list is non-empty.
  collect_remote_pages(pools);
  if (cp.current && cp.current->has_free()) return pop_block(cp.current);
  Page* pg = cp.available;
  if (pg) {
    available_remove(cp, pg);
  } else {
    pg = new_page(pools, cls);
  }
  // The old current page is full; it gets back on the available list when
  // one of its blocks is freed.
  WEAKREF_DCHECK(pg->owner == pools && pg->cls == cls, "a class's page is of its Pools and class");
  if (cp.current) cp.current->current = false;
  cp.current = pg;
  pg->current = true;
  return pop_block(pg);
}

void remote_free(Page* pg, void* block) noexcept {
  void* head = pg->remote.load(std::memory_order_relaxed);
  do {
    *static_cast<void**>(block) = head;
  } while (!pg->remote.compare_exchange_weak(head, block, std::memory_order_acq_rel,
                                             std::memory_order_relaxed));
  if (head) return;
  // acq_rel above: finding `remote` emptied by the owner's collect_remote,
  // we also see its reset of remote_next before we write it.
  // The first pending block: tell the owner about the page.
  Pools* owner = pg->owner;
  Page* top = owner->remote_pages.load(std::memory_order_relaxed);
  do {
    pg->remote_next = top;
  } while (!owner->remote_pages.compare_exchange_weak(top, pg, std::memory_order_acq_rel,
                                                      std::memory_order_relaxed));
  // An exited thread's Pools collects nothing by itself.
  if (owner->ownerless.load(std::memory_order_seq_cst))
    g_trim_pending.store(true, std::memory_order_relaxed);
}

// --- Exited threads' memory -----------------------------------------------------

// A page with no block out goes back to its chunk (no spare kept).
void free_page(Pools* pools, Page* pg) noexcept {
  WEAKREF_DCHECK(pg->used == 0 && pg->owner == pools, "free of a page with blocks out");
  ClassPool& cp = pools->cls[pg->cls];
  if (pg->available) available_remove(cp, pg);
  if (cp.current == pg) cp.current = nullptr;
  pg->current = false;
  Chunk* c = pg->chunk;
  pg->~Page();
  give_page_memory(pools, c, pg);
}

// Gives back everything `pools` holds empty: the blocks freed into it by
// other threads are collected, and every page with no block out, every
// spare page and the spare chunk go back (the chunks to the system). The
// caller has the Pools to itself: its thread at exit, or the registry lock
// while it is on the free stack.
void trim(Pools* pools) noexcept {
  collect_remote_pages(pools);
  for (ClassPool& cp : pools->cls) {
    if (Page* pg = cp.spare) {
      cp.spare = nullptr;
      free_page(pools, pg);
    }
    if (cp.current && cp.current->used == 0) free_page(pools, cp.current);
  }
  if (Chunk* c = pools->spare_chunk) {
    pools->spare_chunk = nullptr;
    free_chunk_memory(c->base);
    delete c;
  }
}

void trim_ownerless_locked(PoolRegistry& r) noexcept {
  g_trim_pending.store(false, std::memory_order_relaxed);
  for (Pools* p = r.free; p; p = p->next_free) trim(p);
}

}  // namespace

// --- Routing: the pools, or operator new for the user's memory tools --------
// (see the top of this file). Every block handed out or taken back passes
// through g_pool_limit: kMaxPooledSize when blocks come from the pools, 0
// when they go to operator new, and 0 before the first allocation decides.
// A block exists only after that decision, so a free always sees its final
// value.

}  // namespace weakref::detail

#if !defined(__SANITIZE_ADDRESS__) && defined(__GNUC__)
// The sanitizer runtimes' interface functions: defined when the program is
// linked with the runtime, null otherwise (weak references, no dependency).
extern "C" {
__attribute__((weak)) void __asan_poison_memory_region(void const volatile*, std::size_t);
__attribute__((weak)) void __lsan_ignore_object(const void*);
__attribute__((weak)) void __hwasan_init();
}
#endif

namespace weakref::detail {

namespace {

enum class Route : int { undecided, pools, system };
constinit std::atomic<Route> g_route{Route::undecided};
constinit std::atomic<std::size_t> g_pool_limit{0};

bool sanitizer_in_process() noexcept {
#if !defined(__SANITIZE_ADDRESS__) && defined(__GNUC__)
  return &__asan_poison_memory_region != nullptr || &__lsan_ignore_object != nullptr ||
         &__hwasan_init != nullptr;
#else
  return false;
#endif
}

// Whether the process runs under a valgrind tool that watches the heap:
// memcheck, massif, dhat, helgrind and drd preload a library of their own
// (vgpreload_<tool>) that replaces malloc and operator new; the profilers
// (callgrind, cachegrind) preload only vgpreload_core and keep the pools,
// which are then what they measure.
bool valgrind_watches_heap() noexcept {
#if defined(WEAKREF_HAVE_VALGRIND_H)
  if (!RUNNING_ON_VALGRIND) return false;
#endif
  const char* preload = std::getenv("LD_PRELOAD");
  if (!preload) return false;
  for (const char* p = preload; (p = std::strstr(p, "vgpreload_")) != nullptr; p += 10) {
    if (std::strncmp(p + 10, "core", 4) != 0) return true;
  }
  return false;
}

Route choose_route() noexcept {
  if (!kUsePools) return Route::system;  // the library is built with ASan
  if (const char* env = std::getenv("WEAKREF_ALLOCATOR")) {
    if (std::strcmp(env, "system") == 0 || std::strcmp(env, "malloc") == 0) return Route::system;
    if (std::strcmp(env, "pools") == 0) return Route::pools;
  }
  if (sanitizer_in_process() || valgrind_watches_heap()) return Route::system;
  return Route::pools;
}

// The route, decided on first use (every thread decides the same).
[[gnu::noinline]] Route decide_route() noexcept {
  Route r = g_route.load(std::memory_order_acquire);
  if (r != Route::undecided) return r;
  r = choose_route();
  g_pool_limit.store(r == Route::pools ? kMaxPooledSize : 0, std::memory_order_relaxed);
  g_route.store(r, std::memory_order_release);
  return r;
}

inline bool use_pools() noexcept {
  if (g_pool_limit.load(std::memory_order_relaxed) != 0) [[likely]]
    return true;
  return decide_route() == Route::pools;
}

}  // namespace

bool pools_enabled() noexcept { return use_pools(); }

std::size_t pool_committed_bytes() noexcept {
  const Pools* p = tls_pools;
  return p ? p->pages * kPageSize : 0;
}

std::size_t pool_system_bytes() noexcept {
  return g_chunks.load(std::memory_order_relaxed) * kChunkSize;
}

void pool_trim_exited() noexcept {
  if (!g_trim_pending.load(std::memory_order_relaxed)) return;
  PoolRegistry& r = registry();
  std::unique_lock<Mutex> g(r.mu, std::try_to_lock);
  if (g.owns_lock()) trim_ownerless_locked(r);
}

namespace {
// A thread's first allocation gets its Pools first; out of line, and a
// tail call from the fast path, which then keeps nothing across a call.
[[gnu::noinline]] void* allocate_first(std::uint32_t cls) {
  return allocate_slow(first_pools(), cls);
}
inline void* allocate_in(std::uint32_t cls) {
  Pools* pools = tls_pools;
  if (!pools) [[unlikely]]
    return allocate_first(cls);
  Page* pg = pools->cls[cls].current;
  if (pg && pg->has_free()) [[likely]]
    return pop_block(pg);
  return allocate_slow(pools, cls);
}
}  // namespace

namespace {
inline std::uint32_t class_of(std::size_t size) noexcept {
  return static_cast<std::uint32_t>((size + kGranule - 1) / kGranule - 1);
}

// Out of line, so that pool_allocate's fast path keeps its shape (no frame).
[[gnu::noinline]] void* allocate_large_or_unpooled(std::size_t size) {
  if (size <= kMaxPooledSize && use_pools()) return allocate_in(class_of(size));
  return ::operator new(size);
}
}  // namespace

void* pool_allocate(std::size_t size) {
  fault_point();
  if (size > g_pool_limit.load(std::memory_order_relaxed)) [[unlikely]]
    return allocate_large_or_unpooled(size);
  return allocate_in(class_of(size));
}

namespace {
// A block freed on its page's owner thread, back on the page's local list,
// when the page is not its class's current one: the page goes on the
// available list, or is released when it has no block out. Out of line, so
// that pool_deallocate's fast path (the current page) needs no frame.
[[gnu::noinline]] void deallocated_off_current(Pools* pools, Page* pg) noexcept {
  ClassPool& cp = pools->cls[pg->cls];
  WEAKREF_DCHECK(pg != cp.current, "Page::current is false on the current page");
  if (pg->used == 0)  // every block is back: none can be on `remote`
    release_page(cp, pg);
  else if (!pg->available)
    available_push(cp, pg);
}
}  // namespace

void pool_deallocate(void* block, std::size_t size) noexcept {
  if (size > g_pool_limit.load(std::memory_order_relaxed)) [[unlikely]] {
    ::operator delete(block);
    return;
  }
  Page* pg = page_of(block);
  // The block is one of its page's: inside the block area, on a block
  // boundary, of a class that holds `size` bytes.
  WEAKREF_DCHECK(static_cast<char*>(block) >= reinterpret_cast<char*>(pg) + Page::header_size() &&
                     static_cast<char*>(block) < pg->end,
                 "freed block outside its page's blocks");
  WEAKREF_DCHECK((static_cast<char*>(block) - reinterpret_cast<char*>(pg) - Page::header_size()) %
                         pg->block_size ==
                     0,
                 "freed block not on a block boundary of its page");
  WEAKREF_DCHECK(size <= pg->block_size, "block freed with a size larger than its class");
  Pools* pools = tls_pools;
  // (A page's owner is never null: a thread without pools frees remotely.)
  if (pg->owner != pools) [[unlikely]] {
    remote_free(pg, block);
    return;
  }
  WEAKREF_DCHECK(pg->used > 0, "more blocks freed into a page than it handed out");
  *static_cast<void**>(block) = pg->local;
  pg->local = block;
  --pg->used;
  if (pg->current) [[likely]]
    return;
  deallocated_off_current(pools, pg);
}

void* SideTable::operator new(std::size_t size) {
  fault_point();
  if (!use_pools()) [[unlikely]]
    return ::operator new(size);
  return allocate_in(kSideClass);
}
void SideTable::operator delete(void* p, std::size_t size) noexcept { pool_deallocate(p, size); }
void* WeakObject::operator new(std::size_t size) { return pool_allocate(size); }
void WeakObject::operator delete(void* p, std::size_t size) noexcept { pool_deallocate(p, size); }

}  // namespace weakref::detail
