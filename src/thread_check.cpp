// The thread rule and its check (weakref/detail/thread_check.hpp): who may
// write the traced members of which heap's objects, the message that stops
// the program when the rule is broken, and, with WEAKREF_CHECK_THREADS, the
// index of traced objects' extents (src/thread_check.hpp) that tells
// whether a handle being written is a traced member.
//
// The index: kShards shards, each a SpinLock and an ordered map from an
// object's start address to its end and header. An object is entered in the
// shard of every 64 KiB region it overlaps (objects are small: usually one),
// so a lookup locks one shard, the one of the address's region, and the
// entry with the greatest start not above the address is the only object
// that can contain it (objects do not overlap). The SpinLocks are behind the
// fork gate, as every library lock; nothing runs under them but the map's
// search and relinking (nodes are made and freed outside: node handles).
#include "thread_check.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <utility>

#include "heap.hpp"
#include "weakref/detail/count_word.hpp"
#include "weakref/detail/locks.hpp"
#include "weakref/detail/object.hpp"

namespace weakref::detail {

namespace {

const char* describe_object_heap(std::uint32_t index) noexcept {
  if (index == kNoHeap) return "no heap: untraced";
  if (index == kOrphanHeap)
    return "the orphan heap: objects of exited threads, and disowned ones, which no thread may "
           "write before adopting them";
  if (index == tls_heap_index) return "the calling thread's own heap";
  if (Heap* h = heap_at(index); h && h->shared)
    return thread_holds_shared_heap(index) ? "a shared heap this thread holds"
                                           : "a shared heap this thread does not hold";
  return "the heap of another thread";
}

const char* describe_thread_heap(std::uint32_t index) noexcept {
  if (index == kNoHeap) return "a thread that has no heap yet (it has made no traced object)";
  if (index == kOrphanHeap)
    return "a thread whose own heap is gone (it is exiting: its objects are in the orphan heap)";
  return "a thread whose heap is";
}

}  // namespace

// Own heap: the thread's current heap index, unless that is the orphan heap
// (an exiting thread's, after its heap merged there, or that of a thread
// beyond the 65535 heaps: other threads' full collections read the orphan
// heap's objects, so no thread writes them).
bool thread_may_write(std::uint32_t index) noexcept {
  if (index == kNoHeap) return true;  // untraced objects have no rule
  if (index != kOrphanHeap && index == tls_heap_index) return true;
  return thread_holds_shared_heap(index);
}

void thread_rule_violation(const char* rule, ObjectHeader* object) noexcept {
  const std::uint32_t heap = object->count_word().heap();
  const std::uint32_t mine = tls_heap_index;
  // stdio, not iostreams (as dcheck_failed): usable anywhere.
  std::fprintf(stderr,
               "weakref: thread rule violated: %s: object of type %s at %p in heap %u (%s), "
               "by %s",
               rule, type_name(*object->type->type), object->object(), static_cast<unsigned>(heap),
               describe_object_heap(heap), describe_thread_heap(mine));
  if (mine != kNoHeap && mine != kOrphanHeap) std::fprintf(stderr, " %u", mine);
  Heap* held[8];
  const std::size_t n = held_shared_heaps(held, 0, 8);
  if (n == 0) {
    std::fprintf(stderr, " (holds no shared heap)\n");
  } else {
    std::fprintf(stderr, " (holds shared heap%s", n == 1 ? "" : "s");
    for (std::size_t i = 0; i < n && i < 8; ++i)
      std::fprintf(stderr, "%s %u", i ? "," : "", static_cast<unsigned>(held[i]->index));
    std::fprintf(stderr, "%s)\n", n > 8 ? ", ..." : "");
  }
  std::fflush(stderr);
  std::abort();
}

bool thread_checks_enabled_in_library() noexcept { return WEAKREF_CHECK_THREADS != 0; }

#if WEAKREF_CHECK_THREADS

namespace {

// Map nodes from malloc: invisible to the fault injection's allocation count
// and to a test's replaced operator new.
template <class T>
struct MallocAllocator {
  using value_type = T;
  MallocAllocator() noexcept = default;
  template <class U>
  MallocAllocator(const MallocAllocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(std::size_t n) {
    if (void* p = std::malloc(n * sizeof(T))) return static_cast<T*>(p);
    throw std::bad_alloc();
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const MallocAllocator<U>&) const noexcept {
    return true;
  }
};

struct Extent {
  std::uintptr_t end;
  ObjectHeader* header;
};
using ExtentMap = std::map<std::uintptr_t, Extent, std::less<>,
                           MallocAllocator<std::pair<const std::uintptr_t, Extent>>>;

constexpr int kRegionShift = 16;
constexpr std::size_t kShards = 64;

struct alignas(64) Shard {
  SpinLock lock;
  ExtentMap map;
};

Shard* shards() noexcept {
  static auto* s = new Shard[kShards];  // never freed: used until the process ends
  return s;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_shards_made = (shards(), true);

std::size_t shard_of_region(std::uintptr_t region) noexcept {
  return static_cast<std::size_t>((region * 0x9E3779B97F4A7C15ULL) >> 58) % kShards;
}

// Calls f(shard index) once for each shard that holds [start, end).
template <class F>
void for_each_shard_of(std::uintptr_t start, std::uintptr_t end, F&& f) {
  const std::uintptr_t first = start >> kRegionShift;
  const std::uintptr_t last = (end - 1) >> kRegionShift;
  if (last - first + 1 >= kShards) {
    for (std::size_t i = 0; i < kShards; ++i) f(i);
    return;
  }
  bool seen[kShards] = {};
  for (std::uintptr_t r = first; r <= last; ++r) {
    const std::size_t i = shard_of_region(r);
    if (!seen[i]) {
      seen[i] = true;
      f(i);
    }
  }
}

std::uintptr_t start_of(ObjectHeader* h) noexcept {
  return reinterpret_cast<std::uintptr_t>(h->object());
}
std::uintptr_t end_of(ObjectHeader* h) noexcept {
  return start_of(h) + (h->type->size ? h->type->size : 1);
}

// What a lookup found, read under the shard's lock (while the object is in
// the index its block is not freed).
struct Found {
  ObjectHeader* header;
  ActiveWord word;
};

bool lookup(const void* p, Found& found) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  Shard& s = shards()[shard_of_region(a >> kRegionShift)];
  std::lock_guard<SpinLock> g(s.lock);
  auto it = s.map.upper_bound(a);
  if (it == s.map.begin()) return false;
  --it;
  if (a >= it->second.end) return false;
  found.header = it->second.header;
  found.word = it->second.header->count_word();
  return true;
}

constexpr const char* kWriteRule = "writing a traced member from a thread that may not write it";

}  // namespace

void member_index_add(ObjectHeader* h) noexcept {
  const std::uintptr_t start = start_of(h);
  const std::uintptr_t end = end_of(h);
  try {
    for_each_shard_of(start, end, [&](std::size_t i) {
      ExtentMap one;  // the node is made here, outside the shard's lock
      one.emplace(start, Extent{end, h});
      ExtentMap::node_type node = one.extract(one.begin());
      Shard& s = shards()[i];
      std::lock_guard<SpinLock> g(s.lock);
      auto r = s.map.insert(std::move(node));
      // (An entry left at this address could only be a stale one: replace it.)
      if (!r.inserted) r.position->second = Extent{end, h};
    });
  } catch (...) {
    // No memory for the entry: this object is not checked.
  }
}

void member_index_remove(ObjectHeader* h) noexcept {
  const std::uintptr_t start = start_of(h);
  for_each_shard_of(start, end_of(h), [&](std::size_t i) {
    ExtentMap::node_type node;  // freed after the lock is released
    Shard& s = shards()[i];
    std::lock_guard<SpinLock> g(s.lock);
    auto it = s.map.find(start);
    if (it != s.map.end() && it->second.header == h) node = s.map.extract(it);
  });
}

void check_member_write(const void* member) noexcept {
  Found f;
  if (!lookup(member, f)) return;   // not a member of a tracked object
  if (f.word.count() == 0) return;  // dying
  const std::uint32_t heap = f.word.heap();
  // The collecting thread breaking its garbage up (steps 7-9: callbacks,
  // tp_finalize, clearing), as untrack() recognizes it.
  if (f.word.in_collection()) {
    if (Heap* c = tls_collecting; c && c->index == heap) return;
  }
  if (thread_may_write(heap)) return;
  thread_rule_violation(kWriteRule, f.header);
}

#endif  // WEAKREF_CHECK_THREADS

}  // namespace weakref::detail
